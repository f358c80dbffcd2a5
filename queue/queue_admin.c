/*
 * queue_admin - the queue's administration (kurierctl queue): fetch a
 * message with its jobs, list a set a page at a time, retry now, delete,
 * and the counts of queue_stats().  Each is one script of queue/lua/;
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

#include "core/log.h"
#include "core/rdb.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "queue/queue_int.h"

extern const char queue_lua_retry[], queue_lua_delete[], queue_lua_fetch[],
    queue_lua_stats[], queue_lua_list[];

struct rdb_script queue__script_retry = { "retry", queue_lua_retry, "" };
struct rdb_script queue__script_delete = { "delete", queue_lua_delete, "" };
struct rdb_script queue__script_fetch = { "fetch", queue_lua_fetch, "" };
struct rdb_script queue__script_stats = { "stats", queue_lua_stats, "" };
struct rdb_script queue__script_list = { "list", queue_lua_list, "" };

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
	int rc;

	args_init(&a);
	args_adds(&a, prefix(q));
	for (size_t i = 0; i < n; i++)
		args_adds(&a, ids[i]);
	req = xcalloc(1, sizeof *req);
	req->cb = cb;
	req->arg = arg;
	rc = args_eval(q, &queue__script_fetch, 0, &a, on_fetched, req);
	if (rc < 0)
		free(req);
	return rc;
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
	int rc;

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
	rc = args_eval(q, &queue__script_list, 0, &a, on_listed, req);
	if (rc < 0)
		free(req);
	return rc;
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
	int rc;

	args_init(&a);
	args_adds(&a, prefix(q));
	args_addf(&a, "%" PRIu64, queue_now(q));
	args_adds(&a, id ? id : "");
	req = xcalloc(1, sizeof *req);
	req->cb = cb;
	req->arg = arg;
	rc = args_eval(q, &queue__script_retry, 0, &a, on_retried, req);
	if (rc < 0)
		free(req);
	return rc;
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
	int rc;

	if (!qid_valid(id))
		return -EINVAL;
	args_init(&a);
	args_adds(&a, prefix(q));
	args_adds(&a, id);
	req = queue__status_req(cb, arg, "delete");
	str_copy(req->job, id, sizeof req->job);
	rc = args_eval(q, &queue__script_delete, 0, &a, on_deleted, req);
	if (rc < 0)
		free(req);
	return rc;
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
	int rc;

	args_init(&a);
	args_adds(&a, prefix(q));
	args_addf(&a, "%" PRIu64, queue_now(q));
	args_addf(&a, "%" PRIu64, q->cfg.queue.retention_ms);
	req = xcalloc(1, sizeof *req);
	req->cb = cb;
	req->arg = arg;
	rc = args_eval(q, &queue__script_stats, 0, &a, on_stats, req);
	if (rc < 0)
		free(req);
	return rc;
}
