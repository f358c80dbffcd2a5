/*
 * report - the reporter: outcome events in, delivery status
 * notifications out.  See report.h.
 *
 * One batch at a time, one step at a time: read events, acknowledge the
 * ones that need no report, then per group of events (one message, one
 * kind) read the message, compose, store in the user's INBOX, maybe
 * queue a copy to the sender, acknowledge; at the end drop the bodies
 * kept for RET=FULL of messages that are done.  report_enter() is the
 * one writer of the step; a step that finished hands over to the next
 * on the next loop turn (the step timer).
 */
#include "mailbox/report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/rdb.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "mailbox/dsn.h"
#include "mailbox/store.h"
#include "policy/policy.h"
#include "queue/queue.h"

/* A new group starts at events this much older than now (not the whole capped stream). */
#define REPORT_GROUP_SINCE_MS (10 * 60 * 1000)

enum report_step {
	STEP_IDLE,       /* waiting for the poll timer */
	STEP_READ,       /* queue_events_read in flight */
	STEP_GATHER,     /* waiting for more failures of the batch's messages */
	STEP_READ_MORE,  /* the second queue_events_read in flight */
	STEP_ACK_SKIP,   /* acknowledging events that make no report */
	STEP_GROUP,      /* next group: read its message */
	STEP_WARNED,     /* which delayed recipients were warned before (HMGET) */
	STEP_MSG,        /* queue_msg_read in flight */
	STEP_MSG_BODY,   /* queue_msg_read with the body (RET=FULL) in flight */
	STEP_APPEND,     /* mbox_append in flight */
	STEP_SUP,        /* policy_sup_filter in flight (dsn_to_sender) */
	STEP_ENQUEUE,    /* queue_enqueue in flight (dsn_to_sender) */
	STEP_MARK,       /* recording the delayed recipients warned (HSET) */
	STEP_ACK,        /* acknowledging the group's events */
	STEP_DROP,       /* dropping kept bodies */
	STEP_CLOSED,
};

static const char *const step_names[] = {
	"idle", "read", "gather", "read_more", "ack_skip", "group", "warned", "msg", "msg_body", "append", "sup", "enqueue", "mark", "ack", "drop",
	"closed",
};

struct rev {
	char eid[48];
	uint64_t ms;
	char id[QID_SIZE];
	enum rcpt_state state;
	unsigned notify;
	enum dsn_action kind;
	bool warned;         /* delayed: a warning named it before */
	bool in_report;      /* in the report being made */
	char *rcpt, *reply, *orcpt, *mta;
};

struct rgroup {
	char id[QID_SIZE];
	enum dsn_action kind;
	size_t *ev;          /* indices into report.ev */
	size_t n;
};

struct report {
	uv_loop_t *loop;
	const struct config *cfg;
	struct queue *q;
	struct mbox_store *st;
	struct policy *pol;
	struct rdb *db;              /* the delay warnings' markers */
	bool db_closed;              /* rdb_close() called */
	char consumer[300];
	uv_timer_t poll;
	uv_timer_t step_timer;
	enum report_step step;
	bool closing;
	bool paused;                 /* last batch failed on Redis: logged once */
	void (*closed)(void *arg);
	void *closed_arg;
	unsigned open_handles;

	/* The batch. */
	struct rev *ev;
	size_t nev;
	bool full;                   /* the read filled the batch: poll again at once */
	struct rgroup *groups;
	size_t ngroups, cur;
	char **skip;                 /* eids needing no report */
	size_t nskip;
	size_t drop_next;

	/* The group in flight. */
	struct buf out;              /* the composed report */
	size_t out_head;             /* its header section's length, blank line included */
	char user[300];
	char sender[ENV_FIELD_MAX + 1];
	size_t nrcpt;
	int stored;                  /* the append's status: 0 or -EEXIST */
};

static void report_enter(struct report *r, enum report_step next);
static void next_group(struct report *r);
static void batch_end(struct report *r, int status);
static void on_poll(uv_timer_t *t);
static void on_db_closed(void *arg);
static void read_msg(struct report *r);
static void on_step(uv_timer_t *t);
static void gather_more(struct report *r);
static void on_events(void *arg, int status, struct queue_event *ev, size_t n);

static bool
transient(int status)
{
	return status == -ENOTCONN || status == -ECONNRESET || status == -ECANCELED ||
	    status == -EIO || status == -ETIMEDOUT;
}

static const char *
kind_name(enum dsn_action k)
{
	return k == DSN_DELIVERED ? "delivered" : k == DSN_DELAYED ? "delayed" : "failed";
}

static void
batch_free(struct report *r)
{
	for (size_t i = 0; i < r->nev; i++) {
		free(r->ev[i].rcpt);
		free(r->ev[i].reply);
		free(r->ev[i].orcpt);
		free(r->ev[i].mta);
	}
	free(r->ev);
	for (size_t i = 0; i < r->ngroups; i++)
		free(r->groups[i].ev);
	free(r->groups);
	for (size_t i = 0; i < r->nskip; i++)
		free(r->skip[i]);
	free(r->skip);
	r->ev = NULL;
	r->groups = NULL;
	r->skip = NULL;
	r->nev = r->ngroups = r->nskip = r->cur = r->drop_next = 0;
	buf_reset(&r->out);
}

static void
release(struct report *r)
{
	if (--r->open_handles > 0)
		return;
	batch_free(r);
	buf_free(&r->out);
	if (r->closed != NULL)
		r->closed(r->closed_arg);
	free(r);
}

static void
on_handle_closed(uv_handle_t *h)
{
	release(h->data);
}

static void
on_db_closed(void *arg)
{
	release(arg);
}

/* report_enter - the one writer of r->step; logs the change at debug level. */
static void
report_enter(struct report *r, enum report_step next)
{
	log_debug("report", "step", "from=%s to=%s", step_names[r->step], step_names[next]);
	r->step = next;
	if (next == STEP_IDLE && r->closing) {
		r->step = STEP_CLOSED;
		uv_close((uv_handle_t *)&r->poll, on_handle_closed);
		uv_close((uv_handle_t *)&r->step_timer, on_handle_closed);
		if (!r->db_closed) {
			r->db_closed = true;
			rdb_close(r->db, on_db_closed, r);
		}
	}
}

/* --- what an event asks for -------------------------------------------------------- */

/*
 * event_kind - the report an event makes, or false for none.  RFC 3461
 * 4.1: NOTIFY absent means FAILURE (and, by our choice, DELAY).
 */
static bool
event_kind(const struct report *r, const struct queue_event *e, enum dsn_action *kind)
{
	unsigned nt = e->notify;

	if (nt & NOTIFY_NEVER)
		return false;
	switch (e->state) {
	case RCPT_BOUNCED:
	case RCPT_EXPIRED:
	case RCPT_SUPPRESSED:
		*kind = DSN_FAILED;
		return nt == 0 || (nt & NOTIFY_FAILURE);
	case RCPT_DELIVERED:
		*kind = DSN_DELIVERED;
		return (nt & NOTIFY_SUCCESS) != 0;
	case RCPT_DEFERRED:
		*kind = DSN_DELAYED;
		return r->cfg->mailbox.delay_warning_ms > 0 && (nt == 0 || (nt & NOTIFY_DELAY));
	default:
		return false;
	}
}

static void
add_skip(struct report *r, const char *eid)
{
	r->skip = xreallocarray(r->skip, r->nskip + 1, sizeof *r->skip);
	r->skip[r->nskip++] = xstrdup(eid);
}

static void
add_to_group(struct report *r, size_t i, enum dsn_action kind)
{
	const struct rev *e = &r->ev[i];
	struct rgroup *g = NULL;

	for (size_t k = 0; k < r->ngroups; k++)
		if (r->groups[k].kind == kind && strcmp(r->groups[k].id, e->id) == 0)
			g = &r->groups[k];
	if (g == NULL) {
		r->groups = xreallocarray(r->groups, r->ngroups + 1, sizeof *r->groups);
		g = &r->groups[r->ngroups++];
		memset(g, 0, sizeof *g);
		memcpy(g->id, e->id, QID_SIZE);
		g->kind = kind;
	}
	g->ev = xreallocarray(g->ev, g->n + 1, sizeof *g->ev);
	g->ev[g->n++] = i;
}

/* --- steps ------------------------------------------------------------------------ */

/*
 * stopping - report_close() was called: start no new call (the queue and
 * the store may be closing under us after the grace period); the rest of
 * the batch stays pending for another node.  True when the batch ended.
 */
static bool
stopping(struct report *r)
{
	if (!r->closing)
		return false;
	batch_end(r, -ECANCELED);
	return true;
}

static void
on_step(uv_timer_t *t)
{
	struct report *r = t->data;

	if (stopping(r))
		return;
	if (r->step == STEP_GATHER)
		gather_more(r);
	else if (r->step == STEP_GROUP)
		next_group(r);
	else if (r->step == STEP_DROP)
		batch_end(r, 0);
}

/* gather_more - the second read of a batch, after the gathering wait. */
static void
gather_more(struct report *r)
{
	int rc;

	if (stopping(r))
		return;
	report_enter(r, STEP_READ_MORE);
	rc = queue_events_read(r->q, REPORT_GROUP, r->consumer,
	    (unsigned)(REPORT_BATCH - r->nev - r->nskip), 2 * r->cfg->queue.lease_ms,
	    REPORT_GROUP_SINCE_MS, on_events, r);
	if (rc < 0)
		batch_end(r, rc);
}

/* hand_over - run the next step on the next loop turn. */
static void
hand_over(struct report *r, enum report_step next)
{
	report_enter(r, next);
	uv_timer_start(&r->step_timer, on_step, 0, 0);
}

static void on_dropped(void *arg, int status);

/* batch_end - drop kept bodies of the batch's messages, then idle. */
static void
batch_end(struct report *r, int status)
{
	if (status == 0 && !r->closing) {
		while (r->drop_next < r->ngroups) {
			const struct rgroup *g = &r->groups[r->drop_next++];
			bool seen = false;

			for (size_t k = 0; k + 1 < r->drop_next; k++)
				seen |= strcmp(r->groups[k].id, g->id) == 0;
			if (seen)
				continue;
			report_enter(r, STEP_DROP);
			if (queue_drop_body(r->q, g->id, on_dropped, r) == 0)
				return;
		}
		if (r->paused)
			log_info("report", "resumed", "consumer=%s", r->consumer);
		r->paused = false;
	} else if (!r->paused && !r->closing) {
		r->paused = true;
		log_warn("report", "paused", "consumer=%s error=\"%s\" hint=\"events stay pending and are handled when Redis answers again\"",
		    r->consumer, uv_strerror(status));
	}
	batch_free(r);
	report_enter(r, STEP_IDLE);
	if (r->step == STEP_IDLE && status == 0 && r->full)
		uv_timer_start(&r->poll, on_poll, 0, REPORT_POLL_MS);
}

static void
on_dropped(void *arg, int status)
{
	struct report *r = arg;

	(void)status;   /* a body left is dropped with the message at retention */
	hand_over(r, STEP_DROP);
}

static void
on_group_acked(void *arg, int status)
{
	struct report *r = arg;

	if (status < 0) {
		batch_end(r, status);
		return;
	}
	r->cur++;
	hand_over(r, STEP_GROUP);
}

static void
ack_group(struct report *r)
{
	const struct rgroup *g = &r->groups[r->cur];
	const char **eids;
	int rc;

	if (stopping(r))
		return;
	eids = xcalloc(g->n, sizeof *eids);
	for (size_t i = 0; i < g->n; i++)
		eids[i] = r->ev[g->ev[i]].eid;
	report_enter(r, STEP_ACK);
	rc = queue_events_ack(r->q, REPORT_GROUP, eids, g->n, on_group_acked, r);
	free(eids);
	if (rc < 0)
		batch_end(r, rc);
}

static void
on_enqueued(void *arg, int status, const char *id)
{
	struct report *r = arg;
	const struct rgroup *g = &r->groups[r->cur];

	if (status == 0)
		log_info("report", "report_sent", "id=%s to=<%s> report_id=%s", g->id, r->sender, id);
	else
		log_warn("report", "report_send_failed", "id=%s to=<%s> error=\"%s\"", g->id, r->sender,
		    uv_strerror(status));
	ack_group(r);
}

static void
on_sup(void *arg, int status, const bool *suppressed, char *const *why, size_t n)
{
	struct report *r = arg;
	const struct rgroup *g = &r->groups[r->cur];
	struct envelope env;
	int rc;

	(void)why;
	if (status < 0 || n != 1) {
		log_warn("report", "report_send_failed", "id=%s to=<%s> error=\"suppression list unreadable: %s\"",
		    g->id, r->sender, uv_strerror(status < 0 ? status : -EPROTO));
		ack_group(r);
		return;
	}
	if (stopping(r))
		return;
	if (suppressed[0]) {
		log_info("report", "report_not_sent", "id=%s to=<%s> reason=suppressed", g->id, r->sender);
		ack_group(r);
		return;
	}
	envelope_init(&env);
	env.stream = STREAM_TRANSACTIONAL;
	envelope_set(&env.sender, "");
	envelope_set(&env.user, r->user);
	envelope_set(&env.client, "127.0.0.1");
	envelope_set(&env.helo, r->cfg->server.hostname);
	if (envelope_add_rcpt(&env, r->sender, NULL, NOTIFY_NEVER) < 0) {
		log_info("report", "report_not_sent", "id=%s to=<%s> reason=bad_address", g->id, r->sender);
		envelope_free(&env);
		ack_group(r);
		return;
	}
	report_enter(r, STEP_ENQUEUE);
	rc = queue_enqueue(r->q, &env, r->out.data, r->out_head, r->out.data + r->out_head,
	    r->out.len - r->out_head, on_enqueued, r);
	envelope_free(&env);
	if (rc < 0)
		on_enqueued(r, rc, "");
}

/* after_stored - the report is in the INBOX (made now, or before): the copy, then the acknowledgement. */
static void
after_stored(struct report *r)
{
	const char *addr;
	int rc;

	if (r->stored != 0 || !r->cfg->mailbox.dsn_to_sender || r->sender[0] == '\0' ||
	    r->pol == NULL) {
		ack_group(r);
		return;
	}
	if (stopping(r))
		return;
	/* RFC 3461 6.2: never a report about a report; our copy goes with a null reverse-path. */
	addr = r->sender;
	report_enter(r, STEP_SUP);
	rc = policy_sup_filter(r->pol, r->cfg->server.hostname, &addr, 1, on_sup, r);
	if (rc < 0)
		on_sup(r, rc, NULL, NULL, 0);
}

static void
on_marked(void *arg, int status, redisReply *reply)
{
	struct report *r = arg;

	if (status < 0) {
		rdb_log_error("report", "delay_mark", status, reply);
		batch_end(r, status);
		return;
	}
	after_stored(r);
}

/*
 * Delay warnings are recorded per recipient in P dsnw:ID (recipient -> 1,
 * kept [deliver] lifetime + 1 day): a recipient is named in one warning.
 */
static struct rdb_script s_mark = {
	"dsnw",
	"for i = 2, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], '1') end\n"
	"redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
	"return 1\n",
	"",
};

/* mark_warned - record the recipients of the delay warning just stored. */
static void
mark_warned(struct report *r)
{
	const struct rgroup *g = &r->groups[r->cur];
	const char **args;
	size_t *lens, n = 0;
	char key[200], ttl[32];
	int rc;

	if (stopping(r))
		return;
	if (s_mark.sha[0] == '\0')
		rdb_script_init(&s_mark);
	snprintf(key, sizeof key, "%sdsnw:%s", r->cfg->redis.prefix, g->id);
	snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)(r->cfg->deliver.lifetime_ms + 86400000ULL));
	args = xcalloc(g->n + 2, sizeof *args);
	lens = xcalloc(g->n + 2, sizeof *lens);
	args[n++] = key;
	args[n++] = ttl;
	for (size_t i = 0; i < g->n; i++)
		if (r->ev[g->ev[i]].in_report)
			args[n++] = r->ev[g->ev[i]].rcpt;
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(args[i]);
	report_enter(r, STEP_MARK);
	rc = rdb_eval(r->db, &s_mark, on_marked, r, 1, (int)n, args, lens);
	free(args);
	free(lens);
	if (rc < 0)
		batch_end(r, rc);
}

static void
on_appended(void *arg, int status, uint32_t uidvalidity, uint32_t uid)
{
	struct report *r = arg;
	const struct rgroup *g = &r->groups[r->cur];

	(void)uidvalidity;
	if (status < 0 && status != -EEXIST) {
		log_warn("report", "report_store_failed", "id=%s user=%s action=%s error=\"%s\"", g->id,
		    r->user, kind_name(g->kind), uv_strerror(status));
		if (transient(status)) {
			batch_end(r, status);
			return;
		}
		ack_group(r);
		return;
	}
	if (status == -EEXIST)
		/* Made before (an event handled again after a node died): nothing more. */
		log_info("report", "report_duplicate", "id=%s user=%s action=%s uid=%u", g->id, r->user,
		    kind_name(g->kind), uid);
	else
		log_info("report", "report_stored", "id=%s user=%s rcpts=%zu action=%s uid=%u", g->id,
		    r->user, r->nrcpt, kind_name(g->kind), uid);
	r->stored = status;
	if (g->kind == DSN_DELAYED)
		mark_warned(r);
	else
		after_stored(r);
}

/* compose - the group's report from its message m into r->out; false when none is due. */
static bool
compose(struct report *r, const struct rgroup *g, const struct queue_msg *m)
{
	struct dsn_rcpt *rc = xcalloc(g->n, sizeof *rc);
	struct dsn_report rep;
	char unique[160];
	const char *sep;
	size_t n = 0;
	int status;

	for (size_t i = 0; i < g->n; i++) {
		const struct rev *e = &r->ev[g->ev[i]];
		bool seen = false;

		/*
		 * A delay is reported from arrival + delay_warning on (RFC 3461
		 * leaves when to us), once per recipient.
		 */
		r->ev[g->ev[i]].in_report = false;
		if (g->kind == DSN_DELAYED &&
		    (e->warned || e->ms < m->env.arrival_ms + r->cfg->mailbox.delay_warning_ms))
			continue;
		/* A recipient twice in the batch (deferred again meanwhile) is named once. */
		for (size_t k = 0; k < i && !seen; k++)
			seen = r->ev[g->ev[k]].in_report && strcmp(r->ev[g->ev[k]].rcpt, e->rcpt) == 0;
		if (seen)
			continue;
		r->ev[g->ev[i]].in_report = true;
		rc[n].addr = e->rcpt;
		rc[n].orcpt = e->orcpt[0] ? e->orcpt : NULL;
		rc[n].action = g->kind;
		rc[n].expired = e->state == RCPT_EXPIRED;
		rc[n].reply = e->reply[0] ? e->reply : NULL;
		rc[n].remote_mta = e->mta;
		rc[n].last_attempt_ms = e->ms;
		n++;
	}
	if (n == 0) {
		free(rc);
		return false;
	}
	snprintf(unique, sizeof unique, "%s.%s.%s", g->id, kind_name(g->kind), r->ev[g->ev[0]].eid);
	for (char *p = unique; *p; p++)
		if (*p == '-')
			*p = '.';
	memset(&rep, 0, sizeof rep);
	rep.hostname = r->cfg->server.hostname;
	rep.to = m->env.sender[0] ? m->env.sender : NULL;
	rep.queue_id = g->id;
	rep.unique = unique;
	rep.envid = m->env.envid;
	rep.arrival_ms = m->env.arrival_ms;
	rep.now_ms = queue_now(r->q);
	rep.retry_until_ms = m->env.arrival_ms + r->cfg->deliver.lifetime_ms;
	rep.ret_full = m->env.ret == RET_FULL && g->kind == DSN_FAILED;
	rep.head = m->head;
	rep.head_len = m->head_len;
	rep.body = m->body;
	rep.body_len = m->body_len;
	rep.rcpt = rc;
	rep.nrcpt = n;
	buf_reset(&r->out);
	status = dsn_compose(&rep, &r->out);
	free(rc);
	if (status < 0)
		return false;
	sep = strstr(r->out.data, "\r\n\r\n");
	r->out_head = sep ? (size_t)(sep - r->out.data) + 4 : 0;
	r->nrcpt = n;
	return true;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * warned_set_hash - FNV-1a of the sorted recipients of the delay warning
 * being made: the same recipients, deferred again before they were
 * marked (a node died in between), give the same dedup key.
 */
static uint64_t
warned_set_hash(const struct report *r, const struct rgroup *g)
{
	const char **v = xcalloc(g->n + 1, sizeof *v);
	uint64_t h = 14695981039346656037ULL;
	size_t n = 0;

	for (size_t i = 0; i < g->n; i++)
		if (r->ev[g->ev[i]].in_report)
			v[n++] = r->ev[g->ev[i]].rcpt;
	qsort(v, n, sizeof *v, cmp_str);
	for (size_t i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++)
			h = (h ^ *p) * 1099511628211ULL;
		h = (h ^ ',') * 1099511628211ULL;
	}
	free(v);
	return h;
}

static void
on_msg(void *arg, int status, const struct queue_msg *m)
{
	struct report *r = arg;
	const struct rgroup *g = &r->groups[r->cur];
	struct mbox_append a;
	char key[200];
	const char *user;
	int rc;

	if (status < 0 && transient(status)) {
		batch_end(r, status);
		return;
	}
	if (stopping(r))
		return;
	if (status < 0 || !m->exists) {
		log_warn("report", "report_skipped", "id=%s action=%s reason=%s", g->id, kind_name(g->kind),
		    status < 0 ? "message_unreadable" : "message_gone");
		ack_group(r);
		return;
	}
	/* RET=FULL: read again with the body (only failures carry it, RFC 3461 4.3). */
	if (m->env.ret == RET_FULL && g->kind == DSN_FAILED && m->body == NULL && r->step == STEP_MSG) {
		report_enter(r, STEP_MSG_BODY);
		rc = queue_msg_read(r->q, g->id, true, on_msg, r);
		if (rc < 0)
			batch_end(r, rc);
		return;
	}
	user = m->env.user[0] ? m->env.user : r->cfg->relay.trusted_user;
	if (user[0] == '\0') {
		log_warn("report", "report_skipped", "id=%s action=%s reason=no_user hint=\"set [relay] trusted_user for mail submitted without AUTH\"",
		    g->id, kind_name(g->kind));
		ack_group(r);
		return;
	}
	if (!compose(r, g, m)) {
		/* A deferral before arrival + delay_warning: nothing yet. */
		ack_group(r);
		return;
	}
	str_copy(r->user, user, sizeof r->user);
	str_copy(r->sender, m->env.sender, sizeof r->sender);
	if (g->kind == DSN_DELAYED)
		snprintf(key, sizeof key, "dsn:%s:delayed:%016" PRIx64, g->id, warned_set_hash(r, g));
	else
		snprintf(key, sizeof key, "dsn:%s:%s:%s", g->id, kind_name(g->kind), r->ev[g->ev[0]].eid);
	memset(&a, 0, sizeof a);
	a.user = r->user;
	a.folder = "INBOX";
	a.data = r->out.data;
	a.len = r->out.len;
	a.flags = "";
	a.dedup_key = key;
	report_enter(r, STEP_APPEND);
	rc = mbox_append(r->st, &a, on_appended, r);
	if (rc < 0)
		on_appended(r, rc, 0, 0);
}

static void
on_warned(void *arg, int status, redisReply *reply)
{
	struct report *r = arg;
	const struct rgroup *g = &r->groups[r->cur];

	if (status == 0 && (!rdb_reply_array(reply, g->n) || reply->elements != g->n))
		status = -EPROTO;
	if (status < 0) {
		rdb_log_error("report", "delay_warned", status, reply);
		batch_end(r, status);
		return;
	}
	for (size_t i = 0; i < g->n; i++)
		r->ev[g->ev[i]].warned = reply->element[i]->type == REDIS_REPLY_STRING;
	read_msg(r);
}

/* read_warned - which recipients of a delay group were named in a warning before. */
static void
read_warned(struct report *r)
{
	const struct rgroup *g = &r->groups[r->cur];
	const char **args = xcalloc(g->n + 2, sizeof *args);
	size_t *lens = xcalloc(g->n + 2, sizeof *lens);
	char key[200];
	int rc;

	snprintf(key, sizeof key, "%sdsnw:%s", r->cfg->redis.prefix, g->id);
	args[0] = "HMGET";
	args[1] = key;
	for (size_t i = 0; i < g->n; i++)
		args[i + 2] = r->ev[g->ev[i]].rcpt;
	for (size_t i = 0; i < g->n + 2; i++)
		lens[i] = strlen(args[i]);
	report_enter(r, STEP_WARNED);
	rc = rdb_cmd(r->db, on_warned, r, (int)(g->n + 2), args, lens);
	free(args);
	free(lens);
	if (rc < 0)
		batch_end(r, rc);
}

static void
read_msg(struct report *r)
{
	int rc;

	if (stopping(r))
		return;
	report_enter(r, STEP_MSG);
	rc = queue_msg_read(r->q, r->groups[r->cur].id, false, on_msg, r);
	if (rc < 0)
		batch_end(r, rc);
}

static void
next_group(struct report *r)
{
	if (stopping(r))
		return;
	if (r->cur >= r->ngroups) {
		r->drop_next = 0;
		batch_end(r, 0);
		return;
	}
	r->stored = 0;
	if (r->groups[r->cur].kind == DSN_DELAYED)
		read_warned(r);
	else
		read_msg(r);
}

static void
on_skip_acked(void *arg, int status)
{
	struct report *r = arg;

	if (status < 0) {
		batch_end(r, status);
		return;
	}
	hand_over(r, STEP_GROUP);
}

/* gather_ms - how long a batch waits for more failures of its messages. */
static uint64_t
gather_ms(const struct report *r)
{
	uint64_t half = r->cfg->queue.lease_ms / 2;

	/* Well below the claim time (2 x lease), so nobody takes the batch meanwhile. */
	return half < REPORT_GATHER_MS ? half : REPORT_GATHER_MS;
}

/* read_done - the batch is read: group it, acknowledge what needs no report, go on. */
static void
read_done(struct report *r)
{
	int rc;

	if (stopping(r))
		return;
	for (size_t i = 0; i < r->nev; i++)
		add_to_group(r, i, r->ev[i].kind);
	if (r->nskip == 0) {
		hand_over(r, STEP_GROUP);
		return;
	}
	report_enter(r, STEP_ACK_SKIP);
	rc = queue_events_ack(r->q, REPORT_GROUP, (const char *const *)r->skip, r->nskip,
	    on_skip_acked, r);
	if (rc < 0)
		batch_end(r, rc);
}

static void
on_events(void *arg, int status, struct queue_event *ev, size_t n)
{
	struct report *r = arg;
	size_t claimed = 0;
	uint64_t now = queue_now(r->q), newest = 0, wait;

	if (status < 0) {
		batch_end(r, status);
		return;
	}
	r->full = r->nev + r->nskip + n >= REPORT_BATCH;
	r->ev = xreallocarray(r->ev, r->nev + n + 1, sizeof *r->ev);
	for (size_t i = 0; i < n; i++) {
		const struct queue_event *e = &ev[i];
		struct rev *d = &r->ev[r->nev];
		enum dsn_action kind;

		claimed += e->claimed;
		if (e->bad || e->returned || !event_kind(r, e, &kind)) {
			if (e->bad)
				log_warn("report", "event_unreadable", "eid=%s", e->eid);
			add_skip(r, e->eid);
			continue;
		}
		memset(d, 0, sizeof *d);
		memcpy(d->eid, e->eid, sizeof d->eid);
		memcpy(d->id, e->id, sizeof d->id);
		d->ms = e->ms;
		d->state = e->state;
		d->notify = e->notify;
		d->kind = kind;
		d->rcpt = xstrdup(e->rcpt);
		d->reply = xstrdup(e->reply);
		d->orcpt = xstrdup(e->orcpt);
		d->mta = xstrdup(e->mta);
		r->nev++;
		if (kind != DSN_DELAYED && e->ms > newest)
			newest = e->ms;
	}
	if (claimed > 0)
		log_info("report", "events_claimed", "consumer=%s count=%zu", r->consumer, claimed);
	/*
	 * A failure that has just happened may have company: other recipients
	 * of the message (other domains, other jobs) failing a moment later.
	 * Wait until the newest is gather_ms old, read once more, and report
	 * them together.
	 */
	if (r->step == STEP_READ && !r->full && newest > 0 && newest + gather_ms(r) > now) {
		wait = newest + gather_ms(r) - now;
		report_enter(r, STEP_GATHER);
		uv_timer_start(&r->step_timer, on_step, wait < gather_ms(r) ? wait : gather_ms(r), 0);
		return;
	}
	read_done(r);
}

static void
on_poll(uv_timer_t *t)
{
	struct report *r = t->data;
	int rc;

	if (r->step != STEP_IDLE || r->closing)
		return;
	if (!queue_is_up(r->q))
		return;
	report_enter(r, STEP_READ);
	rc = queue_events_read(r->q, REPORT_GROUP, r->consumer, REPORT_BATCH,
	    2 * r->cfg->queue.lease_ms, REPORT_GROUP_SINCE_MS, on_events, r);
	if (rc < 0)
		batch_end(r, rc);
}

int
report_open(struct report **out, uv_loop_t *loop, const struct config *cfg,
    struct queue *q, struct mbox_store *st, struct policy *pol, const char *consumer,
    char *err, size_t errsz)
{
	struct report *r;
	int rc;

	if (consumer == NULL || consumer[0] == '\0' || strlen(consumer) >= sizeof r->consumer)
		return str_err(err, errsz, -EINVAL, "report: consumer name empty or too long");
	r = xcalloc(1, sizeof *r);
	r->loop = loop;
	r->cfg = cfg;
	r->q = q;
	r->st = st;
	r->pol = pol;
	str_copy(r->consumer, consumer, sizeof r->consumer);
	buf_init(&r->out);
	if ((rc = rdb_open_config(&r->db, loop, cfg, "kurierd-report", NULL, NULL, NULL)) < 0) {
		free(r);
		return str_err(err, errsz, rc, "report: Redis connection: %s", uv_strerror(rc));
	}
	uv_timer_init(loop, &r->poll);
	uv_timer_init(loop, &r->step_timer);
	r->poll.data = r->step_timer.data = r;
	r->open_handles = 3;   /* two timers, the connection */
	r->step = STEP_IDLE;
	uv_timer_start(&r->poll, on_poll, REPORT_POLL_MS, REPORT_POLL_MS);
	log_info("report", "started", "consumer=%s group=%s claim_idle_ms=%" PRIu64 " delay_warning_ms=%" PRIu64 " dsn_to_sender=%s",
	    r->consumer, REPORT_GROUP, 2 * cfg->queue.lease_ms, cfg->mailbox.delay_warning_ms,
	    cfg->mailbox.dsn_to_sender ? "yes" : "no");
	*out = r;
	return 0;
}

void
report_close(struct report *r, void (*closed)(void *arg), void *arg)
{
	r->closing = true;
	r->closed = closed;
	r->closed_arg = arg;
	uv_timer_stop(&r->poll);
	/* A batch in flight ends by itself (its calls answer or fail) and closes then. */
	if (r->step == STEP_IDLE)
		report_enter(r, STEP_IDLE);
}

void
report_cancel(struct report *r)
{
	if (!r->closing || r->db_closed)
		return;
	r->db_closed = true;
	rdb_close(r->db, on_db_closed, r);
}
