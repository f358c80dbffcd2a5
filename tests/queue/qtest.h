/*
 * qtest - drive the queue API against the real redis-server named by
 * $KURIER_TEST_REDIS (host:port), one loop per test, a fake clock, and
 * a key prefix of its own per test so tests never see each other's keys.
 */
#ifndef KURIER_TESTS_QTEST_H
#define KURIER_TESTS_QTEST_H

#include <check.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "queue/queue.h"

struct qt {
	uv_loop_t loop;
	struct config cfg;
	struct queue *q;
	uint64_t now;          /* the fake clock, ms */
	uint32_t rnd;          /* what the jitter source returns */
	redisContext *sync;    /* a plain connection for inspection */
};

/* qt_open - a queue on a fresh prefix; cfg tweaks may be made in tweak. */
void qt_open(struct qt *t, void (*tweak)(struct config *cfg));
void qt_close(struct qt *t);
/* qt_wait - run the loop until *done, failing the test after 10 s. */
void qt_wait(struct qt *t, const bool *done);

/* qt_enqueue - enqueue; returns 0 with the id copied to id, or the error. */
int qt_enqueue(struct qt *t, enum queue_stream stream, const char *sender,
    const char *const *rcpts, size_t n, const char *msg, char id[QID_SIZE]);
/* qt_enqueue_many - n messages to one recipient, pipelined. */
void qt_enqueue_many(struct qt *t, enum queue_stream stream, const char *rcpt,
    size_t n);
/* qt_claim - claim up to max; *n set; free with qt_free_jobs. */
struct queue_job **qt_claim(struct qt *t, unsigned max, size_t *n);
void qt_free_jobs(struct queue_job **jobs, size_t n);
int qt_complete(struct qt *t, struct queue_job *job);
int qt_release(struct qt *t, struct queue_job *job);
int qt_renew(struct qt *t, struct queue_job *job);
int qt_keep_sig(struct qt *t, struct queue_job *job, const char *sig);
size_t qt_reap(struct qt *t);
/* qt_fetch - one message's info into out (caller frees with queue_info_free). */
int qt_fetch(struct qt *t, const char *id, struct queue_info *out);
int qt_retry(struct qt *t, const char *id, uint64_t *n);
int qt_delete(struct qt *t, const char *id);
/* qt_mark_bounced - queue_mark_bounced; returns its status (addr may be NULL). */
int qt_mark_bounced(struct qt *t, const char *id, uint32_t rcpt_idx, const char *addr,
    const char *reply);
/* qt_stats - stats copied into out; destinations dropped. */
int qt_stats(struct qt *t, struct queue_stats *out);
/* qt_dest - inflight/due/later of one destination from a fresh stats call. */
int qt_dest(struct qt *t, const char *domain, struct queue_dest_stats *out);
/* qt_key - the test's prefix + suffix into a static buffer. */
const char *qt_key(struct qt *t, const char *suffix);

#endif
