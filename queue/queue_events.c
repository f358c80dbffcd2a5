/*
 * queue_events - what the mailbox role's reporter reads of the queue:
 * the outcome events through a consumer group (events.lua, XACK), the
 * message a report is about (msgread.lua) and the drop of a RET=FULL
 * body once its reports are made (dropbody.lua).  See queue.h for the
 * contract.
 */
#include "queue/queue.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rdb.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "queue/queue_int.h"

extern const char queue_lua_events[], queue_lua_msgread[], queue_lua_dropbody[];

struct rdb_script queue__script_events = { "events", queue_lua_events, "" };
struct rdb_script queue__script_msgread = { "msgread", queue_lua_msgread, "" };
struct rdb_script queue__script_dropbody = { "dropbody", queue_lua_dropbody, "" };

struct events_req {
	queue_events_cb *cb;
	void *arg;
};

static char *
dup_field(const redisReply *r)
{
	const char *p;
	size_t len;

	if (!rdb_reply_str(r, &p, &len))
		return xstrdup("");
	return xmemdup0(p, len);
}

/* decode_event - one stream entry { id, { field, value, ... } } into ev. */
static bool
decode_event(struct queue_event *ev, const redisReply *e, bool claimed)
{
	const redisReply *f;
	const char *p, *dash;
	size_t len;
	uint64_t v;
	bool have_id = false, have_state = false;

	memset(ev, 0, sizeof *ev);
	ev->claimed = claimed;
	if (!rdb_reply_array(e, 2) || !rdb_reply_str(e->element[0], &p, &len) ||
	    len >= sizeof ev->eid)
		return false;
	memcpy(ev->eid, p, len);
	ev->eid[len] = '\0';
	dash = strchr(ev->eid, '-');
	if (dash != NULL)
		str_to_u64n(ev->eid, (size_t)(dash - ev->eid), &ev->ms);
	f = e->element[1];
	ev->bad = true;
	if (!rdb_reply_array(f, 0) || f->elements % 2 != 0)
		goto fill;
	for (size_t i = 0; i + 1 < f->elements; i += 2) {
		const redisReply *val = f->element[i + 1];

		if (!rdb_reply_str(f->element[i], &p, &len))
			continue;
#define IS(name) (len == sizeof(name) - 1 && memcmp(p, name, len) == 0)
		if (IS("id")) {
			const char *ip;
			size_t il;

			if (rdb_reply_str(val, &ip, &il) && il == QID_LEN) {
				memcpy(ev->id, ip, il);
				ev->id[il] = '\0';
				have_id = true;
			}
		} else if (IS("domain")) {
			free(ev->domain);
			ev->domain = dup_field(val);
		} else if (IS("rcpt")) {
			free(ev->rcpt);
			ev->rcpt = dup_field(val);
		} else if (IS("state")) {
			char *s = dup_field(val);

			have_state = rcpt_state_parse(s, &ev->state) == 0;
			free(s);
		} else if (IS("attempts")) {
			if (rdb_reply_u64(val, &v) && v <= UINT32_MAX)
				ev->attempts = (uint32_t)v;
		} else if (IS("reply")) {
			free(ev->reply);
			ev->reply = dup_field(val);
		} else if (IS("orcpt")) {
			free(ev->orcpt);
			ev->orcpt = dup_field(val);
		} else if (IS("notify")) {
			if (rdb_reply_u64(val, &v) && v <= 0xff)
				ev->notify = (unsigned)v;
		} else if (IS("mta")) {
			free(ev->mta);
			ev->mta = dup_field(val);
		} else if (IS("returned")) {
			ev->returned = rdb_reply_u64(val, &v) && v != 0;
		} else if (IS("stream")) {
			const char *sp;
			size_t sl;

			if (rdb_reply_str(val, &sp, &sl) && sl == 1)
				ev->stream = sp[0] == 'b' ? STREAM_BROADCAST : STREAM_TRANSACTIONAL;
		}
#undef IS
	}
	ev->bad = !have_id || !have_state;
fill:
	if (ev->domain == NULL)
		ev->domain = xstrdup("");
	if (ev->rcpt == NULL)
		ev->rcpt = xstrdup("");
	if (ev->reply == NULL)
		ev->reply = xstrdup("");
	if (ev->orcpt == NULL)
		ev->orcpt = xstrdup("");
	if (ev->mta == NULL)
		ev->mta = xstrdup("");
	if (ev->rcpt[0] == '\0')
		ev->bad = true;
	return true;
}

static void
event_free(struct queue_event *ev)
{
	free(ev->domain);
	free(ev->rcpt);
	free(ev->reply);
	free(ev->orcpt);
	free(ev->mta);
}

static void
on_events(void *arg, int status, redisReply *r)
{
	struct events_req *req = arg;
	struct queue_event *ev = NULL;
	size_t n = 0, cap = 0;

	if (status == 0 && !rdb_reply_array(r, 2))
		status = -EPROTO;
	if (status < 0) {
		log_redis_error("events", status, r);
		req->cb(req->arg, status, NULL, 0);
		free(req);
		return;
	}
	for (int k = 0; k < 2; k++)
		if (rdb_reply_array(r->element[k], 0))
			cap += r->element[k]->elements;
	ev = xcalloc(cap ? cap : 1, sizeof *ev);
	for (int k = 0; k < 2; k++) {
		const redisReply *list = r->element[k];

		if (!rdb_reply_array(list, 0))
			continue;
		for (size_t i = 0; i < list->elements; i++)
			if (decode_event(&ev[n], list->element[i], k == 0))
				n++;
	}
	req->cb(req->arg, 0, ev, n);
	for (size_t i = 0; i < n; i++)
		event_free(&ev[i]);
	free(ev);
	free(req);
}

int
queue_events_read(struct queue *q, const char *group, const char *consumer, unsigned max,
    uint64_t claim_idle_ms, uint64_t since_ms, queue_events_cb *cb, void *arg)
{
	struct events_req *req;
	struct args a;
	uint64_t now = queue_now(q);

	if (max == 0 || group[0] == '\0' || consumer[0] == '\0')
		return -EINVAL;
	args_init(&a);
	args_adds(&a, prefix(q));
	args_adds(&a, group);
	args_adds(&a, consumer);
	args_addf(&a, "%u", max);
	args_addf(&a, "%" PRIu64, claim_idle_ms);
	args_addf(&a, "%" PRIu64 "-0", now > since_ms ? now - since_ms : 0);
	req = xcalloc(1, sizeof *req);
	req->cb = cb;
	req->arg = arg;
	return args_eval_req(q, &queue__script_events, 0, &a, on_events, req);
}

/* A call answered with a status that needs no decoding (events_ack, dropbody). */
struct ack_req {
	queue_status_cb *cb;
	void *arg;
	const char *what; /* static: names the call in logs */
};

static struct ack_req *
ack_req_new(queue_status_cb *cb, void *arg, const char *what)
{
	struct ack_req *req = xcalloc(1, sizeof *req);

	req->cb = cb;
	req->arg = arg;
	req->what = what;
	return req;
}

static void
on_acked(void *arg, int status, redisReply *r)
{
	struct ack_req *req = arg;

	if (status < 0)
		log_redis_error(req->what, status, r);
	req->cb(req->arg, status);
	free(req);
}

int
queue_events_ack(struct queue *q, const char *group, const char *const *eids, size_t n,
    queue_status_cb *cb, void *arg)
{
	const char **argv;
	size_t *lens;
	struct ack_req *req;
	char key[128];
	int rc;

	if (n == 0 || n > 100000)
		return -EINVAL;
	snprintf(key, sizeof key, "%sevents", prefix(q));
	argv = xcalloc(n + 3, sizeof *argv);
	lens = xcalloc(n + 3, sizeof *lens);
	argv[0] = "XACK";
	argv[1] = key;
	argv[2] = group;
	for (size_t i = 0; i < n; i++)
		argv[i + 3] = eids[i];
	for (size_t i = 0; i < n + 3; i++)
		lens[i] = strlen(argv[i]);
	req = ack_req_new(cb, arg, "events_ack");
	rc = rdb_cmd(q->db, on_acked, req, (int)(n + 3), argv, lens);
	if (rc < 0)
		free(req);
	free(argv);
	free(lens);
	return rc;
}

struct msg_req {
	queue_msg_cb *cb;
	void *arg;
	char id[QID_SIZE];
};

static void
on_msgread(void *arg, int status, redisReply *r)
{
	struct msg_req *req = arg;
	struct queue_msg m;
	const char *p;
	size_t len;

	memset(&m, 0, sizeof m);
	envelope_init(&m.env);
	memcpy(m.id, req->id, sizeof m.id);
	if (status < 0) {
		log_redis_error("msgread", status, r);
	} else if (r != NULL && r->type == REDIS_REPLY_NIL) {
		/* Gone: retention passed, or deleted. */
	} else if (!rdb_reply_array(r, 4) || !rdb_reply_str(r->element[0], &p, &len)) {
		status = -EPROTO;
	} else if (envelope_decode(&m.env, p, len) < 0 || strcmp(m.env.id, req->id) != 0) {
		envelope_free(&m.env);
		envelope_init(&m.env);
		status = -EBADMSG;
	} else {
		m.exists = true;
		if (rdb_reply_str(r->element[1], &p, &len)) {
			m.head = xmemdup0(p, len);
			m.head_len = len;
		}
		m.done = rdb_reply_str(r->element[2], &p, &len) && len == 4 && memcmp(p, "done", 4) == 0;
		if (rdb_reply_str(r->element[3], &p, &len)) {
			m.body = xmemdup0(p, len);
			m.body_len = len;
		}
	}
	req->cb(req->arg, status, &m);
	envelope_free(&m.env);
	free(m.head);
	free(m.body);
	free(req);
}

int
queue_msg_read(struct queue *q, const char *id, bool body, queue_msg_cb *cb, void *arg)
{
	struct msg_req *req;
	struct args a;

	if (strlen(id) != QID_LEN)
		return -EINVAL;
	args_init(&a);
	args_adds(&a, prefix(q));
	args_adds(&a, id);
	args_adds(&a, body ? "1" : "0");
	req = xcalloc(1, sizeof *req);
	req->cb = cb;
	req->arg = arg;
	memcpy(req->id, id, QID_SIZE);
	return args_eval_req(q, &queue__script_msgread, 0, &a, on_msgread, req);
}

int
queue_drop_body(struct queue *q, const char *id, queue_status_cb *cb, void *arg)
{
	struct ack_req *req;
	struct args a;

	if (strlen(id) != QID_LEN)
		return -EINVAL;
	args_init(&a);
	args_adds(&a, prefix(q));
	args_adds(&a, id);
	req = ack_req_new(cb, arg, "dropbody");
	return args_eval_req(q, &queue__script_dropbody, 0, &a, on_acked, req);
}
