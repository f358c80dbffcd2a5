/*
 * qtest - helpers for the queue suite.  See qtest.h.
 */
#include "tests/queue/qtest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rfc5322.h"
#include "core/str.h"
#include "tests/redis_test.h"

static uint64_t
fake_clock(void *arg)
{
	return ((struct qt *)arg)->now;
}

static uint32_t
fake_rand(void *arg)
{
	return ((struct qt *)arg)->rnd;
}

void
qt_wait(struct qt *t, const bool *done)
{
	redis_test_wait(&t->loop, done, 10000, "the queue");
}

void
qt_open(struct qt *t, void (*tweak)(struct config *cfg))
{
	bool up = false;

	memset(t, 0, sizeof *t);
	config_defaults(&t->cfg);
	redis_test_config(&t->cfg, "kt");
	if (tweak != NULL)
		tweak(&t->cfg);
	ck_assert_int_eq(uv_loop_init(&t->loop), 0);
	t->now = 1790000000000ULL;
	t->rnd = 0x7fffffff;
	ck_assert_int_eq(queue_open(&t->q, &t->loop, &t->cfg, "test"), 0);
	queue_set_clock(t->q, fake_clock, t);
	queue_set_rand(t->q, fake_rand, t);
	queue_on_state(t->q, redis_test_on_up, &up);
	qt_wait(t, &up);
	queue_on_state(t->q, NULL, NULL);
	t->sync = redis_test_connect(&t->cfg);
}

void
qt_close(struct qt *t)
{
	bool closed = false;

	/* Drop this test's keys. */
	redis_test_disconnect(t->sync, t->cfg.redis.prefix);
	queue_close(t->q, redis_test_on_closed, &closed);
	qt_wait(t, &closed);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&t->loop), 0);
}

struct result {
	bool done;
	int status;
	char id[QID_SIZE];
	uint64_t n;
	struct queue_job **jobs;
	size_t njobs;
	struct queue_info info;
	struct queue_stats stats;
	struct queue_dest_stats dest;
	const char *want_domain;
};

static void
on_enqueued(void *arg, int status, const char *id)
{
	struct result *r = arg;

	r->status = status;
	str_copy(r->id, id, sizeof r->id);
	r->done = true;
}

int
qt_enqueue(struct qt *t, enum queue_stream stream, const char *sender,
    const char *const *rcpts, size_t n, const char *msg, char id[QID_SIZE])
{
	struct envelope env;
	struct result r = { 0 };
	size_t hlen;
	int rc;

	envelope_init(&env);
	env.stream = stream;
	envelope_set(&env.sender, sender);
	envelope_set(&env.user, "shop");
	envelope_set(&env.client, "127.0.0.1");
	envelope_set(&env.helo, "web1.example");
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(envelope_add_rcpt(&env, rcpts[i], NULL, 0), 0);
	hlen = rfc5322_head_len(msg, strlen(msg));
	rc = queue_enqueue(t->q, &env, msg, hlen, msg + hlen, strlen(msg) - hlen, on_enqueued, &r);
	envelope_free(&env);
	if (rc < 0)
		return rc;
	qt_wait(t, &r.done);
	if (id != NULL)
		memcpy(id, r.id, QID_SIZE);
	return r.status;
}

struct many {
	size_t left;
	bool done;
	int failures;
};

static void
on_many(void *arg, int status, const char *id)
{
	struct many *m = arg;

	(void)id;
	if (status < 0)
		m->failures++;
	if (--m->left == 0)
		m->done = true;
}

void
qt_enqueue_many(struct qt *t, enum queue_stream stream, const char *rcpt, size_t n)
{
	static const char msg[] = "From: a@shop.example\r\nSubject: x\r\n\r\nhello\r\n";
	struct many m = { n, n == 0, 0 };
	size_t hlen = rfc5322_head_len(msg, sizeof msg - 1);

	for (size_t i = 0; i < n; i++) {
		struct envelope env;

		envelope_init(&env);
		env.stream = stream;
		envelope_set(&env.sender, "a@shop.example");
		ck_assert_int_eq(envelope_add_rcpt(&env, rcpt, NULL, 0), 0);
		ck_assert_int_eq(queue_enqueue(t->q, &env, msg, hlen, msg + hlen,
		    sizeof msg - 1 - hlen, on_many, &m), 0);
		envelope_free(&env);
		/* Keep the pipeline bounded. */
		if (i % 2000 == 1999)
			while (m.left > n - i - 1 + 500)
				uv_run(&t->loop, UV_RUN_ONCE);
	}
	qt_wait(t, &m.done);
	ck_assert_int_eq(m.failures, 0);
}

static void
on_claimed(void *arg, int status, struct queue_job **jobs, size_t n)
{
	struct result *r = arg;

	r->status = status;
	if (n > 0) {
		r->jobs = malloc(n * sizeof *jobs);
		memcpy(r->jobs, jobs, n * sizeof *jobs);
	}
	r->njobs = n;
	r->done = true;
}

struct queue_job **
qt_claim(struct qt *t, unsigned max, size_t *n)
{
	struct result r = { 0 };

	ck_assert_int_eq(queue_claim(t->q, max, on_claimed, &r), 0);
	qt_wait(t, &r.done);
	ck_assert_int_eq(r.status, 0);
	*n = r.njobs;
	return r.jobs;
}

void
qt_free_jobs(struct queue_job **jobs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		queue_job_free(jobs[i]);
	free(jobs);
}

static void
on_status(void *arg, int status)
{
	struct result *r = arg;

	r->status = status;
	r->done = true;
}

int
qt_complete(struct qt *t, struct queue_job *job)
{
	struct result r = { 0 };
	int rc = queue_complete(t->q, job, on_status, &r);

	if (rc < 0)
		return rc;
	qt_wait(t, &r.done);
	return r.status;
}

int
qt_release(struct qt *t, struct queue_job *job)
{
	struct result r = { 0 };
	int rc = queue_release(t->q, job, on_status, &r);

	if (rc < 0)
		return rc;
	qt_wait(t, &r.done);
	return r.status;
}

int
qt_renew(struct qt *t, struct queue_job *job)
{
	struct result r = { 0 };
	int rc = queue_renew(t->q, job, on_status, &r);

	if (rc < 0)
		return rc;
	qt_wait(t, &r.done);
	return r.status;
}

int
qt_keep_sig(struct qt *t, struct queue_job *job, const char *sig)
{
	struct result r = { 0 };
	int rc = queue_keep_sig(t->q, job, sig, strlen(sig), on_status, &r);

	if (rc < 0)
		return rc;
	qt_wait(t, &r.done);
	return r.status;
}

static void
on_reaped(void *arg, int status, size_t n)
{
	struct result *r = arg;

	r->status = status;
	r->n = n;
	r->done = true;
}

size_t
qt_reap(struct qt *t)
{
	struct result r = { 0 };

	ck_assert_int_eq(queue_reap(t->q, on_reaped, &r), 0);
	qt_wait(t, &r.done);
	ck_assert_int_eq(r.status, 0);
	return (size_t)r.n;
}

static void
on_fetched(void *arg, int status, struct queue_info *infos, size_t n)
{
	struct result *r = arg;

	r->status = status;
	if (status == 0 && n == 1) {
		/* Move the entry out; queue frees the emptied one. */
		r->info = infos[0];
		memset(&infos[0], 0, sizeof infos[0]);
	}
	r->done = true;
}

int
qt_fetch(struct qt *t, const char *id, struct queue_info *out)
{
	struct result r = { 0 };
	const char *ids[1] = { id };

	ck_assert_int_eq(queue_fetch(t->q, ids, 1, on_fetched, &r), 0);
	qt_wait(t, &r.done);
	*out = r.info;
	return r.status;
}

static void
on_count(void *arg, int status, uint64_t n)
{
	struct result *r = arg;

	r->status = status;
	r->n = n;
	r->done = true;
}

int
qt_retry(struct qt *t, const char *id, uint64_t *n)
{
	struct result r = { 0 };

	ck_assert_int_eq(queue_retry(t->q, id, on_count, &r), 0);
	qt_wait(t, &r.done);
	if (n != NULL)
		*n = r.n;
	return r.status;
}

int
qt_mark_bounced(struct qt *t, const char *id, uint32_t rcpt_idx, const char *addr,
    const char *reply)
{
	struct result r = { 0 };
	struct queue_bounce b = { id, rcpt_idx, addr, reply, "mx.one.example" };
	int rc = queue_mark_bounced(t->q, &b, on_status, &r);

	if (rc < 0)
		return rc;
	qt_wait(t, &r.done);
	return r.status;
}

int
qt_delete(struct qt *t, const char *id)
{
	struct result r = { 0 };
	int rc = queue_delete(t->q, id, on_status, &r);

	if (rc < 0)
		return rc;
	qt_wait(t, &r.done);
	return r.status;
}

static void
on_stats(void *arg, int status, const struct queue_stats *st)
{
	struct result *r = arg;

	r->status = status;
	if (st != NULL) {
		r->stats = *st;
		r->stats.dest = NULL;
		r->stats.ndest = 0;
		memset(&r->dest, 0, sizeof r->dest);
		for (size_t i = 0; r->want_domain && i < st->ndest; i++) {
			if (strcmp(st->dest[i].domain, r->want_domain) == 0) {
				r->dest.due += st->dest[i].due;
				r->dest.later += st->dest[i].later;
				r->dest.inflight = st->dest[i].inflight;
			}
		}
	}
	r->done = true;
}

int
qt_stats(struct qt *t, struct queue_stats *out)
{
	struct result r = { 0 };

	ck_assert_int_eq(queue_stats(t->q, on_stats, &r), 0);
	qt_wait(t, &r.done);
	*out = r.stats;
	return r.status;
}

int
qt_dest(struct qt *t, const char *domain, struct queue_dest_stats *out)
{
	struct result r = { 0 };

	r.want_domain = domain;
	ck_assert_int_eq(queue_stats(t->q, on_stats, &r), 0);
	qt_wait(t, &r.done);
	*out = r.dest;
	return r.status;
}

const char *
qt_key(struct qt *t, const char *suffix)
{
	return redis_test_key(t->cfg.redis.prefix, suffix);
}
