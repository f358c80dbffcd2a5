/*
 * queue - kurier's durable mail queue in Redis.
 *
 * A message is stored once: envelope, header section, body, and one job
 * per recipient domain holding the state of that domain's recipients.
 * Workers claim jobs (message x domain) with a lease, deliver, and
 * complete them with an outcome per recipient; a lease that is neither
 * renewed nor completed in time returns the job to the queue.  Deferred
 * recipients come back on the configured retry schedule until lifetime;
 * a message whose recipients are all final leaves the queue and stays
 * readable (without its body) for the retention period.  Every outcome
 * is also published on a capped Redis stream.
 *
 * All calls are asynchronous on the caller's libuv loop.  Each call that
 * returns 0 calls its callback exactly once; one that returns a negative
 * errno (-ENOTCONN while Redis is down, -EINVAL for bad arguments) never
 * does.  Arguments are borrowed for the duration of the call only.
 * Key layout and which script touches which keys: queue/README.md.
 * Files: queue.c (lifecycle and the worker path), queue_admin.c (fetch,
 * list, retry, delete, stats); queue_int.h is what they share.
 */
#ifndef KURIER_QUEUE_QUEUE_H
#define KURIER_QUEUE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "queue/envelope.h"

struct queue;

typedef uint64_t queue_clock_fn(void *arg);
typedef uint32_t queue_rand_fn(void *arg);
typedef void queue_closed_cb(void *arg);
/* status: 0, or a negative errno. */
typedef void queue_status_cb(void *arg, int status);

/*
 * queue_open - connect to [redis] and serve [queue]/[deliver] settings of
 * cfg (copied).  name tags the connection in logs ("kurierd",
 * "kurierctl").  The queue reconnects by itself; queue_is_up() says
 * whether calls can succeed now.
 */
int queue_open(struct queue **out, uv_loop_t *loop, const struct config *cfg,
    const char *name);
/*
 * queue_close - cancel pending calls (their callbacks get -ECANCELED) and
 * free.  Writes the queue makes on its own (quarantining an unreadable
 * record found by a claim) are let finish first.
 */
void queue_close(struct queue *q, queue_closed_cb *cb, void *arg);
bool queue_is_up(const struct queue *q);
/* queue_last_error - why the Redis connection last failed ("" when none). */
const char *queue_last_error(const struct queue *q);
/* queue_on_state - be told when the Redis connection comes up or goes down. */
void queue_on_state(struct queue *q, void (*cb)(void *arg, bool up), void *arg);
/* Tests: replace the wall clock (ms since the epoch) and the jitter source. */
void queue_set_clock(struct queue *q, queue_clock_fn *fn, void *arg);
void queue_set_rand(struct queue *q, queue_rand_fn *fn, void *arg);
uint64_t queue_now(const struct queue *q);

/* --- submission ----------------------------------------------------------- */

typedef void queue_enqueue_cb(void *arg, int status, const char *id);

/*
 * queue_enqueue - store a message durably.  env holds sender, recipients
 * and the rest; its arrival and size are set here, and its id unless it
 * already holds a valid one made with qid_new() (the id is also passed
 * to cb).  The message comes apart, as the caller found it: head[0..
 * head_len) is the header section with the empty line that ends it,
 * body[0..body_len) the body, CRLF line ends; they are stored as the
 * record's head and body, never scanned here.  Both are borrowed for the
 * call only.  cb runs after Redis replied: status 0 means the message is
 * stored (with the bundled redis.conf, in the fsynced AOF).  -EINVAL
 * (returned, cb not called): no recipients, or a field longer than
 * ENV_FIELD_MAX; -EIO: Redis refused (out of memory, ...); -ECONNRESET:
 * the connection broke before the reply, so the message may or may not
 * be stored (the submitter must retry: delivery is at-least-once).
 */
int queue_enqueue(struct queue *q, struct envelope *env, const void *head,
    size_t head_len, const void *body, size_t body_len, queue_enqueue_cb *cb,
    void *arg);

/* --- delivery ------------------------------------------------------------- */

/* One claimed job: one message and the recipients of one domain. */
struct queue_job {
	char id[QID_SIZE];
	char *domain;
	enum queue_stream stream;
	char token[24];        /* the lease; completes only if still ours */
	uint64_t claimed_ms;   /* queue clock at the claim */
	struct envelope env;
	struct jobstate st;    /* recipients of domain, as stored */
	char *msg;             /* header section then body */
	size_t head_len;
	size_t msg_len;
	char *sig;             /* kept DKIM signature headers (queue_keep_sig), or NULL */
	size_t sig_len;
	char mta[300];         /* queue_job_set_mta: the host that answered */
	/* Set with queue_job_set(); RCPT_NSTATES = unchanged. */
	enum rcpt_state *outcome;
	char **reply;
};

/*
 * cb receives the claimed jobs; it owns them (queue_job_free each) but
 * not the array.  A job whose record cannot be read is logged by id,
 * quarantined and left out.
 */
typedef void queue_claim_cb(void *arg, int status, struct queue_job **jobs,
    size_t njobs);

/*
 * queue_claim - lease up to max due jobs (transactional before broadcast,
 * destinations in rotation, at most [deliver] per_destination jobs in
 * flight per domain), returning expired leases to the queue first.
 */
int queue_claim(struct queue *q, unsigned max, queue_claim_cb *cb, void *arg);
/* queue_renew - extend the lease of a job still held; -ESTALE when lost. */
int queue_renew(struct queue *q, const struct queue_job *job,
    queue_status_cb *cb, void *arg);

/*
 * queue_job_set - the outcome of the recipient at position i of
 * job->st.r: RCPT_DELIVERED, RCPT_DEFERRED, RCPT_BOUNCED,
 * RCPT_SUPPRESSED or RCPT_EXPIRED, with the reply (copied, may be NULL).
 * Recipients left unset keep their state and are not counted as tried.
 */
int queue_job_set(struct queue_job *job, size_t i, enum rcpt_state outcome,
    const char *reply);
/*
 * queue_job_set_mta - the remote host ("name[address]") whose replies the
 * outcomes are; it goes into each outcome event (a DSN's Remote-MTA).
 */
void queue_job_set_mta(struct queue_job *job, const char *mta);
/*
 * queue_keep_sig - store the message's DKIM signature headers with it
 * while job's lease is held, so later jobs and attempts of the message
 * reuse them (claims return them in job->sig).  The first stored
 * signatures stay: a second call does nothing.  -ESTALE: lease lost.
 */
int queue_keep_sig(struct queue *q, const struct queue_job *job, const void *sig,
    size_t len, queue_status_cb *cb, void *arg);
/* queue_job_expired - whether the job's message is past [deliver] lifetime. */
bool queue_job_expired(const struct queue *q, const struct queue_job *job);
void queue_job_free(struct queue_job *job);

/*
 * queue_complete - record the outcomes set on job and give up its lease.
 * Deferred recipients get their next attempt from the retry schedule, or
 * expire past lifetime; if any recipient of the domain is still pending
 * the job is queued again, else it is final.  -ESTALE: the lease was lost
 * (another worker has the job now, or it was deleted); nothing written.
 * job stays the caller's.
 */
int queue_complete(struct queue *q, struct queue_job *job, queue_status_cb *cb,
    void *arg);
/*
 * queue_release - give a job back without an attempt (shutdown): it is
 * due again at once, no recipient state changes.
 */
int queue_release(struct queue *q, struct queue_job *job, queue_status_cb *cb,
    void *arg);
/*
 * queue_release_at - as queue_release, but due at due_ms (queue clock)
 * rather than at once: a destination that asked us to slow down.
 */
int queue_release_at(struct queue *q, struct queue_job *job, uint64_t due_ms,
    queue_status_cb *cb, void *arg);
/*
 * queue_complete_at - as queue_complete, but deferred recipients are due
 * again at due_ms instead of on the retry schedule (still one attempt
 * each, still expiring past lifetime).
 */
int queue_complete_at(struct queue *q, struct queue_job *job, uint64_t due_ms,
    queue_status_cb *cb, void *arg);
/* queue_reap - return jobs whose lease expired; cb gets how many. */
int queue_reap(struct queue *q, void (*cb)(void *arg, int status, size_t n),
    void *arg);

/* --- outcome events (queue_events.c) ----------------------------------------- */

/*
 * One entry of the events stream: a recipient's outcome, as complete
 * wrote it (queue/README.md).  Strings are the entry's, "" when empty.
 */
struct queue_event {
	char eid[48];          /* stream entry id, "ms-seq" */
	uint64_t ms;           /* when it was written (the id's time, Redis's clock) */
	char id[QID_SIZE];     /* queue id of the message */
	char *domain;
	char *rcpt;
	enum rcpt_state state;
	uint32_t attempts;
	char *reply;
	char *orcpt;
	unsigned notify;       /* NOTIFY_* bits, 0 when absent */
	char *mta;             /* "name[address]" of the remote host, or "" */
	enum queue_stream stream;
	bool returned;         /* returned=1: an asynchronous return marked it bounced */
	bool claimed;          /* taken over from a consumer that held it too long */
	bool bad;              /* unreadable fields: acknowledge it and move on */
};

/* cb owns nothing: the events are freed after it returns. */
typedef void queue_events_cb(void *arg, int status, struct queue_event *ev, size_t n);

/*
 * queue_events_read - up to max events for consumer (a name unique to
 * this process) of the consumer group group of the events stream: first
 * events that another consumer (or this one) read and did not
 * acknowledge for longer than claim_idle_ms (XAUTOCLAIM: a consumer that
 * died), then new ones (XREADGROUP, never blocking the connection).
 * Each event is handed to one consumer of the group at a time and stays
 * pending until queue_events_ack().  The group is made on first use,
 * starting at events younger than since_ms before now (so a new
 * group does not report the whole capped stream again).
 */
int queue_events_read(struct queue *q, const char *group, const char *consumer, unsigned max,
    uint64_t claim_idle_ms, uint64_t since_ms, queue_events_cb *cb, void *arg);
/* queue_events_ack - the events eids[0..n) of group are handled for good. */
int queue_events_ack(struct queue *q, const char *group, const char *const *eids, size_t n,
    queue_status_cb *cb, void *arg);

/* A message as a report needs it: envelope, header section, body if still kept. */
struct queue_msg {
	char id[QID_SIZE];
	bool exists;
	bool done;             /* every recipient final (the body is then kept only for RET=FULL) */
	struct envelope env;
	char *head;            /* header section with its empty line */
	size_t head_len;
	char *body;            /* NULL when dropped or not asked for */
	size_t body_len;
};
/* cb owns nothing: m is freed after it returns.  -EBADMSG: unreadable envelope. */
typedef void queue_msg_cb(void *arg, int status, const struct queue_msg *m);
/* queue_msg_read - read message id, with its body when body is true (and still kept). */
int queue_msg_read(struct queue *q, const char *id, bool body, queue_msg_cb *cb, void *arg);
/*
 * queue_drop_body - drop the body of a message that is done (kept after
 * it was done because the sender asked for RET=FULL, until its reports
 * are made).  Nothing for a message still in the queue.
 */
int queue_drop_body(struct queue *q, const char *id, queue_status_cb *cb, void *arg);

/* --- administration --------------------------------------------------------- */

struct queue_jobinfo {
	struct jobstate st;    /* st.domain always set; st.n 0 if unreadable */
	bool queued;           /* waiting in its destination queue */
	uint64_t due_ms;       /* when queued */
	bool leased;           /* claimed by a worker now */
	uint64_t lease_until_ms;
};

struct queue_info {
	char id[QID_SIZE];
	bool exists;
	bool corrupt;          /* record unreadable, or quarantined */
	char state[16];        /* "active", "done", "corrupt" */
	char why[256];         /* why it is corrupt */
	uint64_t done_ms;
	uint64_t head_len, body_len;  /* body_len 0 once done */
	struct envelope env;   /* empty when corrupt */
	size_t njobs;
	struct queue_jobinfo *jobs;
};

void queue_info_free(struct queue_info *info);

/* cb gets n entries in the order of ids; they are freed after cb returns. */
typedef void queue_fetch_cb(void *arg, int status, struct queue_info *infos,
    size_t n);
/* queue_fetch - read messages without their bodies (show, list). */
int queue_fetch(struct queue *q, const char *const *ids, size_t n,
    queue_fetch_cb *cb, void *arg);

enum queue_set {
	QSET_ACTIVE,
	QSET_DONE,
	QSET_CORRUPT,
};
/* Where a listing stopped; all zero means "from the start". */
struct queue_cursor {
	uint64_t score;
	char id[QID_SIZE];
};

/* next is where the following page starts; a page shorter than asked ends the set. */
typedef void queue_list_cb(void *arg, int status, uint64_t total,
    char (*ids)[QID_SIZE], size_t n, const struct queue_cursor *next);
/*
 * queue_list - up to count ids of a set after the cursor, oldest first.
 * Pages by position, not offset, so ids leaving the set meanwhile do not
 * make a page skip others.  after may be NULL (from the start).
 */
int queue_list(struct queue *q, enum queue_set set,
    const struct queue_cursor *after, unsigned count, queue_list_cb *cb,
    void *arg);

/* cb gets the number of jobs made due now, or -ENOENT for an unknown id. */
typedef void queue_count_cb(void *arg, int status, uint64_t n);
/* queue_retry - make one message's queued jobs due now (id NULL: all). */
int queue_retry(struct queue *q, const char *id, queue_count_cb *cb, void *arg);
/* queue_delete - remove a message and its jobs; -ENOENT when unknown. */
int queue_delete(struct queue *q, const char *id, queue_status_cb *cb, void *arg);

/* --- returns ------------------------------------------------------------------ */

/* Which recipient a return is about, and what to record. */
struct queue_bounce {
	const char *id;        /* the queue id the VERP token names */
	uint32_t rcpt_idx;     /* the token's recipient index (envelope order) */
	/*
	 * NULL: rcpt_idx is the recipient.  Else the recipient of rcpt_idx's
	 * domain whose address is addr (case-insensitive): a job token names
	 * the job's first recipient and the report its Final-Recipient.
	 */
	const char *addr;
	const char *reply;     /* the recipient's new last reply (copied) */
	const char *mta;       /* the reporting MTA for the event, or NULL */
};

/*
 * queue_mark_bounced - a return says b->addr (or rcpt_idx) bounced after
 * the fact: mark that recipient bounced in its job record, also when it
 * was delivered first, count it in stats "bounced" and append an outcome
 * event (state bounced, with the field returned=1) to P events.  A
 * recipient that was still pending makes its job final when it was the
 * last; the message leaves the queue when that was its last job, as in
 * queue_complete.  The record is read, changed here and written back
 * only if unchanged meanwhile (script bounce), re-read a few times when
 * a worker wrote it in between.
 * cb statuses: 0 marked; -EALREADY already bounced, or suppressed (never
 * sent): nothing written, no event, so a repeated return is harmless;
 * -ENOENT unknown message or recipient; -EBUSY the job is leased by a
 * worker now (its completion would overwrite the mark: try later);
 * -EBADMSG the record is corrupt; -EAGAIN it kept changing; else the
 * connection's statuses.  -EINVAL (returned): bad id or NULL reply.
 */
int queue_mark_bounced(struct queue *q, const struct queue_bounce *b,
    queue_status_cb *cb, void *arg);

struct queue_dest_stats {
	char stream;           /* 't', 'b', or '-' (only in flight) */
	char *domain;
	uint64_t due, later, inflight;
};

struct queue_stats {
	uint64_t active, done, corrupt, leased;
	/* Totals since the queue was created. */
	uint64_t enqueued, recipients, delivered, deferred, bounced, suppressed,
	    expired, deleted, quarantined;
	size_t ndest;
	struct queue_dest_stats *dest;
};
typedef void queue_stats_cb(void *arg, int status, const struct queue_stats *st);
int queue_stats(struct queue *q, queue_stats_cb *cb, void *arg);

#endif
