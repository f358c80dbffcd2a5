/*
 * queue_int.h - what queue.c (lifecycle, the worker path) and
 * queue_admin.c (administration) share; included only inside queue/.
 *
 * struct queue is made and freed by queue.c (queue_open/close); the
 * admin calls only read it.  A script call's arguments are built in a
 * struct args (below), which owns the strings it formats and is freed by
 * args_eval_on() whatever it returns.
 */
#ifndef KURIER_QUEUE_QUEUE_INT_H
#define KURIER_QUEUE_QUEUE_INT_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/rdb.h"
#include "core/xmalloc.h"
#include "queue/queue.h"
#include "queue/schedule.h"

/* queue_admin.c's scripts, loaded with the worker's on every connect. */
extern struct rdb_script queue__script_retry, queue__script_delete,
    queue__script_fetch, queue__script_stats, queue__script_list,
    queue__script_bounce;
/* queue_events.c's scripts, likewise. */
extern struct rdb_script queue__script_events, queue__script_msgread,
    queue__script_dropbody;

struct queue {
	uv_loop_t *loop;
	struct config cfg;
	struct schedule sched;
	struct rdb *db;                /* everything but enqueues; pool[0] */
	/*
	 * Enqueues rotate over [redis] connections.  Redis reads one batch per
	 * client per event-loop pass and fsyncs once per pass, so several
	 * connections put more messages behind each fsync: measured 30-50 %
	 * more accepted messages a second than one connection.
	 */
	struct rdb *pool[32];
	unsigned npool;
	unsigned next;
	unsigned closing_conns;        /* connections not yet closed by queue_close */
	queue_clock_fn *clock;
	void *clock_arg;
	queue_rand_fn *rand;
	void *rand_arg;
	void (*state_cb)(void *arg, bool up);
	void *state_arg;
	queue_closed_cb *closed_cb;
	void *closed_arg;
	unsigned internal;     /* writes of our own in flight (quarantine) */
	bool closing;
};

/* Arguments of one script call, with the numbers and keys they own. */
struct args {
	size_t n, cap;
	const char **v;
	size_t *len;
	struct buf own;        /* owned strings, NUL-separated */
	size_t *own_off;       /* offsets into own for owned entries, or SIZE_MAX */
};

static inline void
args_init(struct args *a)
{
	memset(a, 0, sizeof *a);
}

static inline void
args_free(struct args *a)
{
	free(a->v);
	free(a->len);
	free(a->own_off);
	buf_free(&a->own);
}

static inline void
args_grow(struct args *a)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->v = xreallocarray(a->v, a->cap, sizeof *a->v);
		a->len = xreallocarray(a->len, a->cap, sizeof *a->len);
		a->own_off = xreallocarray(a->own_off, a->cap, sizeof *a->own_off);
	}
}

/* A borrowed argument: p must outlive the rdb_eval() call. */
static inline void
args_add(struct args *a, const void *p, size_t len)
{
	args_grow(a);
	a->v[a->n] = p;
	a->len[a->n] = len;
	a->own_off[a->n] = SIZE_MAX;
	a->n++;
}

static inline void
args_adds(struct args *a, const char *s)
{
	args_add(a, s, strlen(s));
}

/* An owned argument, formatted; its pointer is fixed in args_finish(). */
static inline void args_addf(struct args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void
args_addf(struct args *a, const char *fmt, ...)
{
	va_list ap;
	size_t start = a->own.len;
	char tmp[512];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof tmp)
		log_panic("queue", "args_overflow", "fmt=%s", fmt);
	buf_append(&a->own, tmp, (size_t)n + 1);
	args_grow(a);
	a->v[a->n] = NULL;
	a->len[a->n] = (size_t)n;
	a->own_off[a->n] = start;
	a->n++;
}

static inline void
args_finish(struct args *a)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->own_off[i] != SIZE_MAX)
			a->v[i] = a->own.data + a->own_off[i];
}

static inline int
args_eval_on(struct rdb *db, struct rdb_script *s, int nkeys, struct args *a,
    rdb_reply_cb *cb, void *arg)
{
	int rc;

	args_finish(a);
	rc = rdb_eval(db, s, cb, arg, nkeys, (int)a->n, a->v, a->len);
	args_free(a);
	return rc;
}

static inline int
args_eval(struct queue *q, struct rdb_script *s, int nkeys, struct args *a,
    rdb_reply_cb *cb, void *arg)
{
	return args_eval_on(q->db, s, nkeys, a, cb, arg);
}

/*
 * args_eval_req - args_eval() with req, a request on the heap that the
 * reply's callback frees, as its argument; req is freed here when the
 * call could not be sent (the callback will not run).
 */
static inline int
args_eval_req(struct queue *q, struct rdb_script *s, int nkeys, struct args *a,
    rdb_reply_cb *cb, void *req)
{
	int rc = args_eval(q, s, nkeys, a, cb, req);

	if (rc < 0)
		free(req);
	return rc;
}

static inline const char *
prefix(const struct queue *q)
{
	return q->cfg.redis.prefix;
}

/* log_redis_error - rdb_log_error() as the queue's. */
static inline void
log_redis_error(const char *what, int status, const redisReply *r)
{
	rdb_log_error("queue", what, status, r);
}

/* reply_status - rdb_reply_status(): a script's ESTALE or EEXIST as an errno. */
static inline int
reply_status(int status, const redisReply *r)
{
	return rdb_reply_status(status, r);
}

/* A call answered with a status only (renew, complete, release, delete). */
struct status_req {
	queue_status_cb *cb;
	void *arg;
	char what[QID_SIZE + 8];
	char job[300];
	bool done_log;
};

/*
 * queue__status_req - a request for on_status() in queue.c, whose
 * queue_status_cb gets the script's status; what names it in logs.
 */
struct status_req *queue__status_req(queue_status_cb *cb, void *arg, const char *what);

#endif
