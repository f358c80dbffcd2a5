/*
 * queue - the Redis-backed mail queue, its lifecycle and the worker path:
 * enqueue, claim, renew, complete, release (queue_admin.c has the
 * administration: fetch, list, retry, delete, stats).  See queue.h for
 * the contract and queue/README.md for the key layout; the atomic steps
 * are the Lua scripts in queue/lua/, and this file builds their
 * arguments, decodes their replies and holds the parts that are policy
 * rather than storage (retry schedule, expiry, outcome counting).
 */
#include "queue/queue.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/log.h"
#include "core/rdb.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "queue/queue_int.h"
#include "queue/schedule.h"

extern const char queue_lua_enqueue[], queue_lua_claim[], queue_lua_complete[],
    queue_lua_renew[], queue_lua_quarantine[], queue_lua_sig[];

static struct rdb_script s_enqueue = { "enqueue", queue_lua_enqueue, "" };
static struct rdb_script s_claim = { "claim", queue_lua_claim, "" };
static struct rdb_script s_complete = { "complete", queue_lua_complete, "" };
static struct rdb_script s_renew = { "renew", queue_lua_renew, "" };
static struct rdb_script s_sig = { "sig", queue_lua_sig, "" };
static struct rdb_script s_quarantine = { "quarantine", queue_lua_quarantine, "" };

static struct rdb_script *const scripts[] = {
	&s_enqueue, &s_claim, &s_complete, &s_renew, &s_quarantine, &queue__script_retry,
	&queue__script_delete, &queue__script_fetch, &queue__script_stats, &queue__script_list, &s_sig,
	&queue__script_bounce, &queue__script_events, &queue__script_msgread, &queue__script_dropbody,
	NULL,
};

/* The next pool connection that is up, or NULL. */
static struct rdb *
pool_pick(struct queue *q)
{
	for (unsigned i = 0; i < q->npool; i++) {
		struct rdb *db = q->pool[q->next++ % q->npool];

		if (rdb_is_up(db))
			return db;
	}
	return NULL;
}

/* --- lifecycle ------------------------------------------------------------- */

static uint64_t
wall_clock(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint32_t
random_u32(void *arg)
{
	uint32_t r;

	(void)arg;
	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
		r = (uint32_t)wall_clock(NULL) * 2654435761u;
	return r;
}

static void
on_state(void *arg, bool up)
{
	struct queue *q = arg;

	if (q->state_cb != NULL)
		q->state_cb(q->state_arg, up);
}

int
queue_open(struct queue **out, uv_loop_t *loop, const struct config *cfg,
    const char *name)
{
	struct queue *q = xcalloc(1, sizeof *q);

	q->loop = loop;
	config_copy(&q->cfg, cfg);
	q->sched.retry_ms = q->cfg.deliver.retry_ms;
	q->sched.nretry = q->cfg.deliver.nretry;
	q->sched.lifetime_ms = q->cfg.deliver.lifetime_ms;
	q->clock = wall_clock;
	q->rand = random_u32;
	*out = q;
	q->npool = cfg->redis.connections ? cfg->redis.connections : 1;
	if (q->npool > sizeof q->pool / sizeof q->pool[0])
		q->npool = sizeof q->pool / sizeof q->pool[0];
	/* Only the first reports up/down: the others follow the same Redis. */
	rdb_open_config(&q->pool[0], loop, cfg, name, scripts, on_state, q);
	for (unsigned i = 1; i < q->npool; i++) {
		char pname[32];

		/* "kurierd/2": log lines tell the pool's connections apart. */
		snprintf(pname, sizeof pname, "%s/%u", name ? name : "queue", i + 1);
		rdb_open_config(&q->pool[i], loop, cfg, pname, scripts, NULL, NULL);
	}
	q->db = q->pool[0];
	return 0;
}

static void
on_rdb_closed(void *arg)
{
	struct queue *q = arg;
	queue_closed_cb *cb = q->closed_cb;
	void *cb_arg = q->closed_arg;

	if (--q->closing_conns > 0)
		return;
	config_free(&q->cfg);
	free(q);
	if (cb != NULL)
		cb(cb_arg);
}

static void
close_all(struct queue *q)
{
	q->closing_conns = q->npool;
	for (unsigned i = 0; i < q->npool; i++)
		rdb_close(q->pool[i], on_rdb_closed, q);
}

void
queue_close(struct queue *q, queue_closed_cb *cb, void *arg)
{
	q->closed_cb = cb;
	q->closed_arg = arg;
	q->state_cb = NULL;
	q->closing = true;
	/* A quarantine in flight finishes first; its callback closes. */
	if (q->internal == 0)
		close_all(q);
}

const char *
queue_last_error(const struct queue *q)
{
	return rdb_last_error(q->db);
}

bool
queue_is_up(const struct queue *q)
{
	return rdb_is_up(q->db);
}

void
queue_on_state(struct queue *q, void (*cb)(void *arg, bool up), void *arg)
{
	q->state_cb = cb;
	q->state_arg = arg;
}

void
queue_set_clock(struct queue *q, queue_clock_fn *fn, void *arg)
{
	q->clock = fn ? fn : wall_clock;
	q->clock_arg = arg;
}

void
queue_set_rand(struct queue *q, queue_rand_fn *fn, void *arg)
{
	q->rand = fn ? fn : random_u32;
	q->rand_arg = arg;
}

uint64_t
queue_now(const struct queue *q)
{
	return q->clock(q->clock_arg);
}

/* --- enqueue -------------------------------------------------------------- */

struct enqueue_req {
	queue_enqueue_cb *cb;
	void *arg;
	char id[QID_SIZE];
};

static void
on_enqueued(void *arg, int status, redisReply *r)
{
	struct enqueue_req *req = arg;

	status = reply_status(status, r);
	if (status < 0)
		log_redis_error("enqueue", status, r);
	req->cb(req->arg, status, req->id);
	free(req);
}

int
queue_enqueue(struct queue *q, struct envelope *env, const void *head,
    size_t head_len, const void *body, size_t body_len, queue_enqueue_cb *cb,
    void *arg)
{
	struct enqueue_req *req;
	struct rdb *db;
	struct jobstate *jobs;
	struct buf envrec = BUF_INIT, *jobrec;
	struct args a;
	size_t njobs;
	uint64_t now;
	char st;
	int rc;

	if (envelope_check(env) < 0)
		return -EINVAL;
	if ((db = pool_pick(q)) == NULL)
		return -ENOTCONN;
	now = queue_now(q);
	/* A caller that needs the id first (for Received:) made it already. */
	if (!qid_valid(env->id))
		qid_new(env->id, now);
	env->arrival_ms = now;
	env->size = head_len + body_len;
	if (env->sender == NULL)
		envelope_set(&env->sender, "");
	envelope_encode(env, &envrec);
	jobs = envelope_jobs(env, &njobs);
	jobrec = xcalloc(njobs, sizeof *jobrec);
	st = stream_code(env->stream);

	args_init(&a);
	args_addf(&a, "%sm:%s", prefix(q), env->id);
	args_addf(&a, "%sactive", prefix(q));
	args_addf(&a, "%sd:%c", prefix(q), st);
	args_addf(&a, "%sstats", prefix(q));
	for (size_t i = 0; i < njobs; i++)
		args_addf(&a, "%sq:%c:%s", prefix(q), st, jobs[i].domain);
	args_adds(&a, env->id);
	args_addf(&a, "%" PRIu64, now);
	args_add(&a, &st, 1);
	args_add(&a, envrec.data, envrec.len);
	args_add(&a, head, head_len);
	args_add(&a, body, body_len);
	args_addf(&a, "%zu", njobs);
	for (size_t i = 0; i < njobs; i++) {
		jobstate_encode(&jobs[i], &jobrec[i]);
		args_adds(&a, jobs[i].domain);
		args_add(&a, jobrec[i].data, jobrec[i].len);
	}
	args_addf(&a, "%zu", env->nrcpt);

	req = xcalloc(1, sizeof *req);
	req->cb = cb;
	req->arg = arg;
	memcpy(req->id, env->id, QID_SIZE);
	rc = args_eval_on(db, &s_enqueue, 4 + (int)njobs, &a, on_enqueued, req);
	if (rc < 0)
		free(req);
	for (size_t i = 0; i < njobs; i++) {
		jobstate_free(&jobs[i]);
		buf_free(&jobrec[i]);
	}
	free(jobs);
	free(jobrec);
	buf_free(&envrec);
	return rc;
}

/* --- claim ---------------------------------------------------------------- */

struct claim_req {
	struct queue *q;
	queue_claim_cb *cb;
	void *arg;
	void (*reap_cb)(void *arg, int status, size_t n);
};

void
queue_job_free(struct queue_job *job)
{
	if (job == NULL)
		return;
	for (size_t i = 0; job->reply != NULL && i < job->st.n; i++)
		free(job->reply[i]);
	free(job->reply);
	free(job->outcome);
	free(job->domain);
	free(job->msg);
	free(job->sig);
	envelope_free(&job->env);
	jobstate_free(&job->st);
	free(job);
}

struct quarantine_req {
	struct queue *q;
	char what[QID_SIZE + 260];
};

static void
on_quarantined(void *arg, int status, redisReply *r)
{
	struct quarantine_req *req = arg;
	struct queue *q = req->q;
	const char *what = req->what;

	if (status < 0) {
		char eq[300];

		log_error("queue", "quarantine_failed", "job=%s status=%d error=%s", what, status,
		    r && r->type == REDIS_REPLY_ERROR ? log_quote(eq, sizeof eq, r->str, r->len) : "\"\"");
	}
	free(req);
	if (--q->internal == 0 && q->closing)
		close_all(q);
}

/* Take an unreadable job out of the queue and keep it for inspection. */
static void
quarantine(struct queue *q, const char *id, const char *dom, const char *token,
    const char *why)
{
	struct args a;
	char qi[64], qd[300];
	struct quarantine_req *req;

	log_error("queue", "corrupt_record", "id=%s domain=%s reason=%s action=quarantined hint=\"inspect with kurierctl queue show %s\"",
	    log_quotes(qi, sizeof qi, id), log_quotes(qd, sizeof qd, dom), why, id);
	req = xcalloc(1, sizeof *req);
	req->q = q;
	snprintf(req->what, sizeof req->what, "%s/%s", id, dom);
	args_init(&a);
	args_adds(&a, prefix(q));
	args_addf(&a, "%" PRIu64, queue_now(q));
	args_adds(&a, id);
	args_adds(&a, dom);
	args_adds(&a, token);
	args_adds(&a, why);
	if (args_eval(q, &s_quarantine, 0, &a, on_quarantined, req) < 0)
		free(req);
	else
		q->internal++;
}

/* Decode one claimed entry; NULL (quarantined) when it cannot be read. */
static struct queue_job *
decode_job(struct queue *q, const redisReply *e, uint64_t now)
{
	const char *id, *dom, *st, *env, *head, *body, *js, *sig;
	size_t idl, doml, stl, envl, headl, bodyl, jsl, sigl;
	char idbuf[64], tok[24];
	uint64_t token;
	struct queue_job *job;
	const char *why = NULL;

	if (!rdb_reply_array(e, 9) || !rdb_reply_str(e->element[0], &id, &idl) ||
	    !rdb_reply_str(e->element[1], &dom, &doml) || !rdb_reply_str(e->element[2], &st, &stl) ||
	    !rdb_reply_u64(e->element[3], &token) || !rdb_reply_str(e->element[4], &env, &envl) ||
	    !rdb_reply_str(e->element[5], &head, &headl) || !rdb_reply_str(e->element[6], &body, &bodyl) ||
	    !rdb_reply_str(e->element[7], &js, &jsl) || !rdb_reply_str(e->element[8], &sig, &sigl)) {
		log_error("queue", "bad_claim_reply", "hint=\"queue scripts and kurierd versions differ?\"");
		return NULL;
	}
	snprintf(tok, sizeof tok, "%" PRIu64, token);
	str_copyn(idbuf, id, idl, sizeof idbuf);
	job = xcalloc(1, sizeof *job);
	job->domain = xmemdup0(dom, doml);
	str_copy(job->token, tok, sizeof job->token);
	job->claimed_ms = now;
	job->stream = stl == 1 && st[0] == 'b' ? STREAM_BROADCAST : STREAM_TRANSACTIONAL;
	if (idl != QID_LEN || !qid_valid(idbuf))
		why = "bad id";
	else if (envelope_decode(&job->env, env, envl) < 0)
		why = "envelope record unreadable";
	else if (strcmp(job->env.id, idbuf) != 0)
		why = "envelope belongs to another id";
	else if (jobstate_decode(&job->st, js, jsl) < 0)
		why = "recipient state record unreadable";
	else if (strcmp(job->st.domain, job->domain) != 0 || jobstate_check(&job->st, &job->env) < 0)
		why = "recipient state does not match the envelope";
	if (why != NULL) {
		quarantine(q, idbuf, job->domain, job->token, why);
		queue_job_free(job);
		return NULL;
	}
	memcpy(job->id, idbuf, QID_SIZE);
	job->msg_len = headl + bodyl;
	job->head_len = headl;
	job->msg = xmalloc(job->msg_len + 1);
	memcpy(job->msg, head, headl);
	memcpy(job->msg + headl, body, bodyl);
	job->msg[job->msg_len] = '\0';
	if (sigl > 0) {
		job->sig = xmemdup0(sig, sigl);
		job->sig_len = sigl;
	}
	job->outcome = xcalloc(job->st.n, sizeof *job->outcome);
	job->reply = xcalloc(job->st.n, sizeof *job->reply);
	for (size_t i = 0; i < job->st.n; i++)
		job->outcome[i] = RCPT_NSTATES;
	return job;
}

static void
on_claimed(void *arg, int status, redisReply *r)
{
	struct claim_req *req = arg;
	struct queue_job **jobs = NULL;
	size_t njobs = 0, nreaped = 0;
	uint64_t now = 0;

	if (status == 0 && (!rdb_reply_array(r, 2) || !rdb_reply_u64(r->element[0], &now) ||
	    !rdb_reply_array(r->element[1], 0)))
		status = -EPROTO;
	if (status < 0) {
		log_redis_error("claim", status, r);
		if (req->reap_cb)
			req->reap_cb(req->arg, status, 0);
		else
			req->cb(req->arg, status, NULL, 0);
		free(req);
		return;
	}
	nreaped = r->element[1]->elements;
	for (size_t i = 0; i < nreaped; i++) {
		const redisReply *j = r->element[1]->element[i];
		char qj[300];

		log_warn("queue", "lease_expired", "job=%s action=requeued hint=\"a worker died or stalled\"",
		    j->type == REDIS_REPLY_STRING ? log_quote(qj, sizeof qj, j->str, j->len) : "?");
	}
	if (req->reap_cb) {
		req->reap_cb(req->arg, 0, nreaped);
		free(req);
		return;
	}
	if (r->elements > 2)
		jobs = xcalloc(r->elements - 2, sizeof *jobs);
	for (size_t i = 2; i < r->elements; i++) {
		struct queue_job *job = decode_job(req->q, r->element[i], now);

		if (job != NULL)
			jobs[njobs++] = job;
	}
	req->cb(req->arg, 0, jobs, njobs);
	free(jobs);
	free(req);
}

static int
claim(struct queue *q, unsigned max, struct claim_req *req)
{
	struct args a;

	args_init(&a);
	args_adds(&a, prefix(q));
	args_addf(&a, "%" PRIu64, queue_now(q));
	args_addf(&a, "%" PRIu64, q->cfg.queue.lease_ms);
	args_addf(&a, "%u", max);
	args_addf(&a, "%u", q->cfg.deliver.per_destination);
	args_addf(&a, "%" PRIu64, q->cfg.queue.retention_ms);
	return args_eval_req(q, &s_claim, 0, &a, on_claimed, req);
}

int
queue_claim(struct queue *q, unsigned max, queue_claim_cb *cb, void *arg)
{
	struct claim_req *req;

	if (max == 0)
		return -EINVAL;
	req = xcalloc(1, sizeof *req);
	req->q = q;
	req->cb = cb;
	req->arg = arg;
	return claim(q, max, req);
}

int
queue_reap(struct queue *q, void (*cb)(void *arg, int status, size_t n), void *arg)
{
	struct claim_req *req = xcalloc(1, sizeof *req);

	req->q = q;
	req->reap_cb = cb;
	req->arg = arg;
	return claim(q, 0, req);
}

/* --- renew, complete, release ----------------------------------------------- */

static void
on_status(void *arg, int status, redisReply *r)
{
	struct status_req *req = arg;

	status = reply_status(status, r);
	if (status == 0 && r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 2 &&
	    req->done_log)
		log_info("queue", "removed", "id=%s", req->job);
	if (status < 0 && status != -ESTALE)
		log_redis_error(req->what, status, r);
	req->cb(req->arg, status);
	free(req);
}

struct status_req *
queue__status_req(queue_status_cb *cb, void *arg, const char *what)
{
	struct status_req *req = xcalloc(1, sizeof *req);

	req->cb = cb;
	req->arg = arg;
	str_copy(req->what, what, sizeof req->what);
	return req;
}

int
queue_renew(struct queue *q, const struct queue_job *job, queue_status_cb *cb,
    void *arg)
{
	struct status_req *req;
	struct args a;

	args_init(&a);
	args_adds(&a, prefix(q));
	args_addf(&a, "%s/%s", job->id, job->domain);
	args_adds(&a, job->token);
	args_addf(&a, "%" PRIu64, queue_now(q) + q->cfg.queue.lease_ms);
	req = queue__status_req(cb, arg, "renew");
	return args_eval_req(q, &s_renew, 0, &a, on_status, req);
}

int
queue_job_set(struct queue_job *job, size_t i, enum rcpt_state outcome,
    const char *reply)
{
	if (i >= job->st.n || outcome == RCPT_QUEUED || outcome >= RCPT_NSTATES)
		return -EINVAL;
	job->outcome[i] = outcome;
	free(job->reply[i]);
	job->reply[i] = reply ? xstrdup(reply) : NULL;
	return 0;
}

void
queue_job_set_mta(struct queue_job *job, const char *mta)
{
	str_copy(job->mta, mta ? mta : "", sizeof job->mta);
}

int
queue_keep_sig(struct queue *q, const struct queue_job *job, const void *sig,
    size_t len, queue_status_cb *cb, void *arg)
{
	struct status_req *req;
	struct args a;

	args_init(&a);
	args_adds(&a, prefix(q));
	args_addf(&a, "%s/%s", job->id, job->domain);
	args_adds(&a, job->token);
	args_adds(&a, job->id);
	args_add(&a, sig, len);
	req = queue__status_req(cb, arg, "sig");
	return args_eval_req(q, &s_sig, 0, &a, on_status, req);
}

bool
queue_job_expired(const struct queue *q, const struct queue_job *job)
{
	return schedule_expired(&q->sched, job->env.arrival_ms, job->claimed_ms);
}

static const char *const stat_names[RCPT_NSTATES] = {
	[RCPT_DEFERRED] = "deferred",
	[RCPT_DELIVERED] = "delivered",
	[RCPT_BOUNCED] = "bounced",
	[RCPT_SUPPRESSED] = "suppressed",
	[RCPT_EXPIRED] = "expired",
};

/*
 * Apply the outcomes to job->st, then send it; release = no outcomes,
 * due at once.  at (0 = unset): when released, due then; when completed,
 * deferred recipients are due then instead of on the retry schedule.
 */
static int
finish(struct queue *q, struct queue_job *job, bool release, uint64_t at,
    queue_status_cb *cb, void *arg)
{
	struct jobstate st = job->st;
	struct rcpt_status *rs;
	uint64_t now = queue_now(q), due = 0;
	uint64_t counts[RCPT_NSTATES] = { 0 };
	unsigned nstats = 0;
	struct buf rec = BUF_INIT;
	struct status_req *req;
	struct args a, ev;
	int rc;

	/* Work on a copy: job->st stays as claimed if the call fails. */
	rs = xcalloc(st.n, sizeof *rs);
	memcpy(rs, st.r, st.n * sizeof *rs);
	st.r = rs;
	args_init(&ev);
	for (size_t i = 0; i < st.n && !release; i++) {
		struct rcpt_status *r = &rs[i];
		enum rcpt_state o = job->outcome[i];
		const struct env_rcpt *er = &job->env.rcpt[r->idx];

		if (o == RCPT_NSTATES)
			continue;
		if (o == RCPT_DELIVERED || o == RCPT_DEFERRED || o == RCPT_BOUNCED)
			r->attempts++;
		r->state = o;
		r->updated_ms = now;
		r->next_ms = 0;
		r->reply = job->reply[i] ? job->reply[i] : r->reply;
		if (o == RCPT_DEFERRED && !schedule_next(&q->sched, job->env.arrival_ms, now,
		    r->attempts, q->rand(q->rand_arg), &r->next_ms))
			r->state = RCPT_EXPIRED;
		else if (o == RCPT_DEFERRED && at > 0)
			r->next_ms = at;
		counts[r->state]++;
		args_adds(&ev, er->addr);
		args_adds(&ev, rcpt_state_name(r->state));
		args_addf(&ev, "%" PRIu32, r->attempts);
		args_adds(&ev, r->reply ? r->reply : "");
		args_adds(&ev, er->orcpt ? er->orcpt : "");
		args_addf(&ev, "%u", er->notify);
		args_adds(&ev, job->mta);
	}
	for (size_t i = 0; i < st.n; i++) {
		uint64_t when;

		if (rcpt_state_final(rs[i].state))
			continue;
		when = rs[i].state == RCPT_DEFERRED && !release ? rs[i].next_ms :
		    release && at > now ? at : now;
		if (when == 0)
			when = now;
		if (due == 0 || when < due)
			due = when;
	}
	jobstate_encode(&st, &rec);

	args_init(&a);
	args_adds(&a, prefix(q));
	args_addf(&a, "%" PRIu64, now);
	args_adds(&a, job->id);
	args_adds(&a, job->domain);
	args_adds(&a, job->token);
	args_add(&a, rec.data, rec.len);
	args_addf(&a, "%" PRIu64, due);
	args_addf(&a, "%" PRIu64, q->cfg.queue.retention_ms);
	args_addf(&a, "%" PRIu64, q->cfg.queue.events_max);
	args_adds(&a, job->env.ret == RET_FULL ? "1" : "0");
	for (int s = 0; s < RCPT_NSTATES; s++)
		nstats += counts[s] > 0;
	args_addf(&a, "%u", nstats);
	for (int s = 0; s < RCPT_NSTATES; s++) {
		if (counts[s] == 0)
			continue;
		args_adds(&a, stat_names[s]);
		args_addf(&a, "%" PRIu64, counts[s]);
	}
	args_finish(&ev);
	for (size_t i = 0; i < ev.n; i++)
		args_add(&a, ev.v[i], ev.len[i]);

	req = queue__status_req(cb, arg, release ? "release" : "complete");
	str_copy(req->job, job->id, sizeof req->job);
	req->done_log = true;
	rc = args_eval(q, &s_complete, 0, &a, on_status, req);
	if (rc < 0)
		free(req);
	args_free(&ev);
	buf_free(&rec);
	free(rs);
	return rc;
}

int
queue_complete(struct queue *q, struct queue_job *job, queue_status_cb *cb,
    void *arg)
{
	return finish(q, job, false, 0, cb, arg);
}

int
queue_complete_at(struct queue *q, struct queue_job *job, uint64_t due_ms,
    queue_status_cb *cb, void *arg)
{
	return finish(q, job, false, due_ms, cb, arg);
}

int
queue_release(struct queue *q, struct queue_job *job, queue_status_cb *cb,
    void *arg)
{
	return finish(q, job, true, 0, cb, arg);
}

int
queue_release_at(struct queue *q, struct queue_job *job, uint64_t due_ms,
    queue_status_cb *cb, void *arg)
{
	return finish(q, job, true, due_ms, cb, arg);
}
