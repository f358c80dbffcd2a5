/*
 * queue_admin - the queue's administration (kurierctl queue): fetch a
 * message with its jobs, list a set a page at a time, retry now, delete,
 * the counts of queue_stats(), and marking a recipient bounced when a
 * return comes back for it (queue_mark_bounced).  Each is one script of queue/lua/;
 * this file builds its arguments and decodes its reply.  See queue.h for
 * the contract.
 */
#include "queue/queue.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/rdb.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "queue/queue_int.h"

extern const char queue_lua_retry[], queue_lua_delete[], queue_lua_fetch[],
    queue_lua_stats[], queue_lua_list[], queue_lua_bounce[];

struct rdb_script queue__script_retry = { "retry", queue_lua_retry, "" };
struct rdb_script queue__script_delete = { "delete", queue_lua_delete, "" };
struct rdb_script queue__script_fetch = { "fetch", queue_lua_fetch, "" };
struct rdb_script queue__script_stats = { "stats", queue_lua_stats, "" };
struct rdb_script queue__script_list = { "list", queue_lua_list, "" };
struct rdb_script queue__script_bounce = { "bounce", queue_lua_bounce, "" };

/* --- administration --------------------------------------------------------- */

void
queue_info_free(struct queue_info *info)
{
	envelope_free(&info->env);
	for (size_t i = 0; i < info->njobs; i++)
		jobstate_free(&info->jobs[i].st);
	free(info->jobs);
	memset(info, 0, sizeof *info);
}

struct fetch_req {
	queue_fetch_cb *cb;
	void *arg;
};

static void
set_corrupt(struct queue_info *info, const char *why)
{
	info->corrupt = true;
	if (info->why[0] == '\0')
		str_copy(info->why, why, sizeof info->why);
}

static void
decode_info(struct queue_info *info, const redisReply *e)
{
	const char *p;
	size_t len;
	uint64_t v;
	const redisReply *jobs;
	bool envelope_ok = true;

	if (!rdb_reply_array(e, 2) || !rdb_reply_str(e->element[0], &p, &len))
		return;
	str_copyn(info->id, p, len, sizeof info->id);
	if (!rdb_reply_u64(e->element[1], &v) || v == 0 || !rdb_reply_array(e, 10))
		return;
	info->exists = true;
	if (rdb_reply_str(e->element[4], &p, &len))
		str_copyn(info->state, p, len, sizeof info->state);
	if (rdb_reply_str(e->element[5], &p, &len) && len > 0)
		str_to_u64n(p, len, &info->done_ms);
	if (rdb_reply_str(e->element[6], &p, &len) && len > 0) {
		str_copyn(info->why, p, len, sizeof info->why);
		info->corrupt = true;
	}
	rdb_reply_u64(e->element[7], &info->head_len);
	rdb_reply_u64(e->element[8], &info->body_len);
	if (strcmp(info->state, "corrupt") == 0)
		info->corrupt = true;
	if (!rdb_reply_str(e->element[2], &p, &len) || envelope_decode(&info->env, p, len) < 0) {
		set_corrupt(info, "envelope record unreadable");
		envelope_ok = false;
	} else if (strcmp(info->env.id, info->id) != 0) {
		envelope_free(&info->env);
		set_corrupt(info, "envelope belongs to another id");
		envelope_ok = false;
	}
	/* The jobs are read even when the envelope is not: domain, due, lease. */
	jobs = e->element[9];
	if (!rdb_reply_array(jobs, 0))
		return;
	info->jobs = xcalloc(jobs->elements ? jobs->elements : 1, sizeof *info->jobs);
	for (size_t i = 0; i < jobs->elements; i++) {
		const redisReply *j = jobs->element[i];
		struct queue_jobinfo *ji = &info->jobs[info->njobs];
		const char *dp;
		size_t dl;

		if (!rdb_reply_array(j, 4) || !rdb_reply_str(j->element[0], &dp, &dl))
			continue;
		if (!rdb_reply_str(j->element[1], &p, &len) || jobstate_decode(&ji->st, p, len) < 0 ||
		    (envelope_ok && jobstate_check(&ji->st, &info->env) < 0)) {
			jobstate_free(&ji->st);
			ji->st.domain = xmemdup0(dp, dl);
			set_corrupt(info, "recipient state record unreadable");
		}
		ji->queued = rdb_reply_u64(j->element[2], &ji->due_ms);
		ji->leased = rdb_reply_u64(j->element[3], &ji->lease_until_ms);
		info->njobs++;
	}
}

static void
on_fetched(void *arg, int status, redisReply *r)
{
	struct fetch_req *req = arg;
	struct queue_info *infos = NULL;
	size_t n = 0;

	if (status == 0 && !rdb_reply_array(r, 0))
		status = -EPROTO;
	if (status < 0) {
		log_redis_error("fetch", status, r);
		req->cb(req->arg, status, NULL, 0);
		free(req);
		return;
	}
	n = r->elements;
	infos = xcalloc(n ? n : 1, sizeof *infos);
	for (size_t i = 0; i < n; i++)
		decode_info(&infos[i], r->element[i]);
	req->cb(req->arg, 0, infos, n);
	for (size_t i = 0; i < n; i++)
		queue_info_free(&infos[i]);
	free(infos);
	free(req);
}

int
queue_fetch(struct queue *q, const char *const *ids, size_t n,
    queue_fetch_cb *cb, void *arg)
{
	struct fetch_req *req;
	struct args a;

	args_init(&a);
	args_adds(&a, prefix(q));
	for (size_t i = 0; i < n; i++)
		args_adds(&a, ids[i]);
	req = xcalloc(1, sizeof *req);
	req->cb = cb;
	req->arg = arg;
	return args_eval_req(q, &queue__script_fetch, 0, &a, on_fetched, req);
}

struct list_req {
	queue_list_cb *cb;
	void *arg;
};

static void
on_listed(void *arg, int status, redisReply *r)
{
	struct list_req *req = arg;
	char (*ids)[QID_SIZE] = NULL;
	struct queue_cursor next;
	uint64_t total = 0;
	size_t n = 0;

	memset(&next, 0, sizeof next);
	if (status == 0 && (!rdb_reply_array(r, 1) || !rdb_reply_u64(r->element[0], &total) ||
	    r->elements % 2 != 1))
		status = -EPROTO;
	if (status == 0) {
		ids = xcalloc(r->elements / 2 + 1, sizeof *ids);
		for (size_t i = 1; i + 1 < r->elements; i += 2) {
			const char *p;
			size_t len;
			uint64_t score;

			if (!rdb_reply_str(r->element[i], &p, &len) || len != QID_LEN ||
			    !rdb_reply_u64(r->element[i + 1], &score))
				continue;
			str_copyn(ids[n++], p, len, QID_SIZE);
			next.score = score;
			memcpy(next.id, ids[n - 1], QID_SIZE);
		}
	} else {
		log_redis_error("list", status, r);
	}
	req->cb(req->arg, status, total, ids, n, &next);
	free(ids);
	free(req);
}

int
queue_list(struct queue *q, enum queue_set set, const struct queue_cursor *after,
    unsigned count, queue_list_cb *cb, void *arg)
{
	static const char *const names[] = { "active", "done", "corrupt" };
	struct list_req *req;
	struct args a;

	if ((unsigned)set > QSET_CORRUPT || count == 0)
		return -EINVAL;
	args_init(&a);
	args_adds(&a, prefix(q));
	args_adds(&a, names[set]);
	if (after != NULL && after->id[0] != '\0') {
		args_addf(&a, "%" PRIu64, after->score);
		args_adds(&a, after->id);
	} else {
		args_adds(&a, "");
		args_adds(&a, "");
	}
	args_addf(&a, "%u", count);
	args_addf(&a, "%" PRIu64, queue_now(q));
	args_addf(&a, "%" PRIu64, q->cfg.queue.retention_ms);
	req = xcalloc(1, sizeof *req);
	req->cb = cb;
	req->arg = arg;
	return args_eval_req(q, &queue__script_list, 0, &a, on_listed, req);
}

struct count_req {
	queue_count_cb *cb;
	void *arg;
};

static void
on_retried(void *arg, int status, redisReply *r)
{
	struct count_req *req = arg;
	uint64_t n = 0;

	if (status == 0 && r->type == REDIS_REPLY_INTEGER && r->integer < 0)
		status = -ENOENT;
	else if (status == 0 && !rdb_reply_u64(r, &n))
		status = -EPROTO;
	if (status < 0 && status != -ENOENT)
		log_redis_error("retry", status, r);
	req->cb(req->arg, status, n);
	free(req);
}

int
queue_retry(struct queue *q, const char *id, queue_count_cb *cb, void *arg)
{
	struct count_req *req;
	struct args a;

	args_init(&a);
	args_adds(&a, prefix(q));
	args_addf(&a, "%" PRIu64, queue_now(q));
	args_adds(&a, id ? id : "");
	req = xcalloc(1, sizeof *req);
	req->cb = cb;
	req->arg = arg;
	return args_eval_req(q, &queue__script_retry, 0, &a, on_retried, req);
}

static void
on_deleted(void *arg, int status, redisReply *r)
{
	struct status_req *req = arg;

	if (status == 0 && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
		status = -ENOENT;
	if (status == 0)
		log_info("queue", "deleted", "id=%s", req->job);
	else if (status != -ENOENT)
		log_redis_error("delete", status, r);
	req->cb(req->arg, status);
	free(req);
}

int
queue_delete(struct queue *q, const char *id, queue_status_cb *cb, void *arg)
{
	struct status_req *req;
	struct args a;

	if (!qid_valid(id))
		return -EINVAL;
	args_init(&a);
	args_adds(&a, prefix(q));
	args_adds(&a, id);
	req = queue__status_req(cb, arg, "delete");
	str_copy(req->job, id, sizeof req->job);
	return args_eval_req(q, &queue__script_delete, 0, &a, on_deleted, req);
}

struct stats_req {
	queue_stats_cb *cb;
	void *arg;
};

static void
on_stats(void *arg, int status, redisReply *r)
{
	struct stats_req *req = arg;
	struct queue_stats st;
	static const struct {
		const char *name;
		size_t off;
	} counters[] = {
		{ "enqueued", offsetof(struct queue_stats, enqueued) },
		{ "recipients", offsetof(struct queue_stats, recipients) },
		{ "delivered", offsetof(struct queue_stats, delivered) },
		{ "deferred", offsetof(struct queue_stats, deferred) },
		{ "bounced", offsetof(struct queue_stats, bounced) },
		{ "suppressed", offsetof(struct queue_stats, suppressed) },
		{ "expired", offsetof(struct queue_stats, expired) },
		{ "deleted", offsetof(struct queue_stats, deleted) },
		{ "corrupt", offsetof(struct queue_stats, quarantined) },
	};

	memset(&st, 0, sizeof st);
	if (status == 0 && (!rdb_reply_array(r, 5) || !rdb_reply_u64(r->element[0], &st.active) ||
	    !rdb_reply_u64(r->element[1], &st.done) || !rdb_reply_u64(r->element[2], &st.corrupt) ||
	    !rdb_reply_u64(r->element[3], &st.leased) || !rdb_reply_array(r->element[4], 0)))
		status = -EPROTO;
	if (status < 0) {
		log_redis_error("stats", status, r);
		req->cb(req->arg, status, NULL);
		free(req);
		return;
	}
	for (size_t i = 0; i + 1 < r->element[4]->elements; i += 2) {
		const char *p;
		size_t len;

		if (!rdb_reply_str(r->element[4]->element[i], &p, &len))
			continue;
		for (size_t k = 0; k < sizeof counters / sizeof counters[0]; k++) {
			if (strlen(counters[k].name) == len && memcmp(counters[k].name, p, len) == 0)
				rdb_reply_u64(r->element[4]->element[i + 1],
				    (uint64_t *)(void *)((char *)&st + counters[k].off));
		}
	}
	st.dest = xcalloc(r->elements, sizeof *st.dest);
	for (size_t i = 5; i < r->elements; i++) {
		const redisReply *d = r->element[i];
		struct queue_dest_stats *ds = &st.dest[st.ndest];
		const char *sp, *dp;
		size_t sl, dl;

		if (!rdb_reply_array(d, 5) || !rdb_reply_str(d->element[0], &sp, &sl) || sl != 1 ||
		    !rdb_reply_str(d->element[1], &dp, &dl))
			continue;
		ds->stream = sp[0];
		ds->domain = xmemdup0(dp, dl);
		rdb_reply_u64(d->element[2], &ds->due);
		rdb_reply_u64(d->element[3], &ds->later);
		rdb_reply_u64(d->element[4], &ds->inflight);
		st.ndest++;
	}
	req->cb(req->arg, 0, &st);
	for (size_t i = 0; i < st.ndest; i++)
		free(st.dest[i].domain);
	free(st.dest);
	free(req);
}

int
queue_stats(struct queue *q, queue_stats_cb *cb, void *arg)
{
	struct stats_req *req;
	struct args a;

	args_init(&a);
	args_adds(&a, prefix(q));
	args_addf(&a, "%" PRIu64, queue_now(q));
	args_addf(&a, "%" PRIu64, q->cfg.queue.retention_ms);
	req = xcalloc(1, sizeof *req);
	req->cb = cb;
	req->arg = arg;
	return args_eval_req(q, &queue__script_stats, 0, &a, on_stats, req);
}

/* --- returns ------------------------------------------------------------------ */

/* Attempts of read, change and compare-and-set before -EAGAIN. */
#define MARK_TRIES 5

struct mark_req {
	struct queue *q;
	queue_status_cb *cb;
	void *arg;
	char id[QID_SIZE];
	uint32_t rcpt_idx;
	char *addr;
	char *reply;
	char *mta;
	unsigned tries;
};

static int mark_read(struct mark_req *mr);

static void
mark_done(struct mark_req *mr, int status)
{
	mr->cb(mr->arg, status);
	free(mr->addr);
	free(mr->reply);
	free(mr->mta);
	free(mr);
}

/* The job and position of the recipient mr names in info, or -ENOENT. */
static int
mark_find(const struct mark_req *mr, const struct queue_info *info, size_t *job, size_t *pos)
{
	const struct env_rcpt *er;

	if (mr->rcpt_idx >= info->env.nrcpt)
		return -ENOENT;
	er = &info->env.rcpt[mr->rcpt_idx];
	for (size_t j = 0; j < info->njobs; j++) {
		const struct jobstate *st = &info->jobs[j].st;

		if (st->domain == NULL || strcmp(st->domain, er->domain) != 0)
			continue;
		for (size_t k = 0; k < st->n; k++) {
			const char *a = info->env.rcpt[st->r[k].idx].addr;

			if (mr->addr == NULL ? st->r[k].idx == mr->rcpt_idx : strcasecmp(a, mr->addr) == 0) {
				*job = j;
				*pos = k;
				return 0;
			}
		}
	}
	return -ENOENT;
}

static void
on_marked(void *arg, int status, redisReply *r)
{
	struct mark_req *mr = arg;
	int64_t v;
	int rc;

	if (status == 0 && (r == NULL || r->type != REDIS_REPLY_INTEGER))
		status = -EPROTO;
	if (status < 0) {
		log_redis_error("bounce", status, r);
		mark_done(mr, status);
		return;
	}
	v = r->integer;
	if (v == 0) {
		/* A worker wrote the record in between: read it again. */
		if (++mr->tries >= MARK_TRIES) {
			mark_done(mr, -EAGAIN);
			return;
		}
		rc = mark_read(mr);
		if (rc < 0)
			mark_done(mr, rc);
		return;
	}
	if (v == 2)
		log_info("queue", "removed", "id=%s", mr->id);
	mark_done(mr, v == -1 ? -EBUSY : v == -2 ? -ENOENT : 0);
}

static void
on_mark_fetched(void *arg, int status, struct queue_info *infos, size_t n)
{
	struct mark_req *mr = arg;
	struct queue *q = mr->q;
	const struct queue_info *info = n == 1 ? &infos[0] : NULL;
	struct jobstate st;
	struct rcpt_status *rs, *r;
	struct buf old = BUF_INIT, rec = BUF_INIT;
	const struct env_rcpt *er;
	bool finishes = true;
	size_t j, k;
	struct args a;
	int rc;

	if (status < 0) {
		mark_done(mr, status);
		return;
	}
	if (info == NULL || !info->exists) {
		mark_done(mr, -ENOENT);
		return;
	}
	if (info->corrupt || info->env.nrcpt == 0) {
		mark_done(mr, -EBADMSG);
		return;
	}
	if ((rc = mark_find(mr, info, &j, &k)) < 0) {
		mark_done(mr, rc);
		return;
	}
	st = info->jobs[j].st;
	if (st.r[k].state == RCPT_BOUNCED || st.r[k].state == RCPT_SUPPRESSED) {
		mark_done(mr, -EALREADY);
		return;
	}
	/* The record as stored (encoding is canonical), then the changed one. */
	jobstate_encode(&st, &old);
	rs = xcalloc(st.n, sizeof *rs);
	memcpy(rs, st.r, st.n * sizeof *rs);
	r = &rs[k];
	if (rcpt_state_final(r->state))
		finishes = false;
	r->state = RCPT_BOUNCED;
	r->next_ms = 0;
	r->updated_ms = queue_now(q);
	r->reply = mr->reply;
	for (size_t i = 0; i < st.n && finishes; i++)
		if (!rcpt_state_final(rs[i].state))
			finishes = false;
	st.r = rs;
	jobstate_encode(&st, &rec);
	er = &info->env.rcpt[r->idx];

	args_init(&a);
	args_adds(&a, prefix(q));
	args_addf(&a, "%" PRIu64, queue_now(q));
	args_adds(&a, mr->id);
	args_adds(&a, st.domain);
	args_add(&a, old.data, old.len);
	args_add(&a, rec.data, rec.len);
	args_adds(&a, finishes ? "1" : "0");
	args_addf(&a, "%" PRIu64, q->cfg.queue.retention_ms);
	args_addf(&a, "%" PRIu64, q->cfg.queue.events_max);
	args_adds(&a, er->addr);
	args_addf(&a, "%" PRIu32, r->attempts);
	args_adds(&a, mr->reply);
	args_adds(&a, er->orcpt ? er->orcpt : "");
	args_addf(&a, "%u", er->notify);
	args_adds(&a, mr->mta ? mr->mta : "");
	rc = args_eval(q, &queue__script_bounce, 0, &a, on_marked, mr);
	buf_free(&old);
	buf_free(&rec);
	free(rs);
	if (rc < 0)
		mark_done(mr, rc);
}

static int
mark_read(struct mark_req *mr)
{
	const char *ids[1] = { mr->id };

	return queue_fetch(mr->q, ids, 1, on_mark_fetched, mr);
}

int
queue_mark_bounced(struct queue *q, const struct queue_bounce *b,
    queue_status_cb *cb, void *arg)
{
	struct mark_req *mr;
	int rc;

	if (b == NULL || b->id == NULL || !qid_valid(b->id) || b->reply == NULL)
		return -EINVAL;
	mr = xcalloc(1, sizeof *mr);
	mr->q = q;
	mr->cb = cb;
	mr->arg = arg;
	str_copy(mr->id, b->id, sizeof mr->id);
	mr->rcpt_idx = b->rcpt_idx;
	mr->addr = b->addr ? xstrdup(b->addr) : NULL;
	mr->reply = xstrdup(b->reply);
	mr->mta = b->mta ? xstrdup(b->mta) : NULL;
	rc = mark_read(mr);
	if (rc < 0) {
		free(mr->addr);
		free(mr->reply);
		free(mr->mta);
		free(mr);
	}
	return rc;
}
