/*
 * test_ingest - the inbound MX's sink (mailbox/ingest.h) against a real
 * redis-server ($KURIER_TEST_REDIS), with the real queue, policy module
 * and mailbox store on one loop: which recipients take returns, and what
 * a hard bounce, a complaint, soft bounces and an auto-reply do to the
 * queue record, the suppression list and the user's INBOX.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/str.h"
#include "mailbox/ingest.h"
#include "mailbox/store.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "queue/verp.h"
#include "tests/redis_test.h"
#include "tests/suites.h"

#define WAIT_MS 10000
#define CORPUS "../shared/testdata/bounces/bounce"
#define SECRET "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define CONF_BASE "[deliver]\nverp_secret = " SECRET "\n[domain shop.example]\n" \
	          "[policy]\nsuppress_bounces = yes\n"

struct it {
	uv_loop_t loop;
	struct config cfg;
	struct queue *q;
	struct policy *p;
	struct mbox_store *st;
	struct ingest *in;
	uint8_t key[VERP_KEY_LEN];
	redisContext *sync;
};

/* What a callback got. */
struct res {
	bool done;
	int status;
	int calls;
	enum ingest_verdict v;
	char id[QID_SIZE];
	struct queue_job **jobs;
	size_t njobs;
	struct policy_sup_entry e[4];
	size_t n;
	struct mbox_msgs *msgs;
	struct mbox_body *body;
};

static void
it_wait(struct it *t, const bool *done)
{
	redis_test_wait(&t->loop, done, WAIT_MS, "ingest");
}

static void
it_open(struct it *t, const char *extra)
{
	char conf[2048], err[CONFIG_ERR_MAX];
	bool up = false;

	memset(t, 0, sizeof *t);
	snprintf(conf, sizeof conf, "%s%s", CONF_BASE, extra ? extra : "");
	ck_assert_msg(config_load_string(&t->cfg, "test", conf, err, sizeof err) == 0, "config: %s", err);
	redis_test_config(&t->cfg, "ki");
	ck_assert_int_eq(uv_loop_init(&t->loop), 0);
	ck_assert_int_eq(queue_open(&t->q, &t->loop, &t->cfg, "test"), 0);
	queue_on_state(t->q, redis_test_on_up, &up);
	it_wait(t, &up);
	queue_on_state(t->q, NULL, NULL);
	ck_assert_int_eq(policy_open(&t->p, &t->loop, &t->cfg, "test"), 0);
	for (int i = 0; i < 500 && !policy_is_up(t->p); i++)
		redis_test_sleep(&t->loop, 10);
	ck_assert(policy_is_up(t->p));
	ck_assert_int_eq(mbox_store_open(&t->st, &t->loop, &t->cfg, err, sizeof err), 0);
	up = false;
	mbox_on_state(t->st, redis_test_on_up, &up);
	it_wait(t, &up);
	mbox_on_state(t->st, NULL, NULL);
	ck_assert_msg(ingest_open(&t->in, &t->loop, &t->cfg, t->q, t->p, t->st, err, sizeof err) == 0,
	    "ingest_open: %s", err);
	ck_assert_int_eq(verp_load_key(t->cfg.deliver.verp_secret, t->cfg.server.data_dir, t->key,
	                     err, sizeof err),
	    0);
	t->sync = redis_test_connect(&t->cfg);
}

static void
it_close(struct it *t)
{
	bool closed = false, qc = false, pc = false, sc = false;

	ingest_close(t->in, redis_test_on_closed, &closed);
	it_wait(t, &closed);
	redis_test_disconnect(t->sync, t->cfg.redis.prefix);
	mbox_store_close(t->st, redis_test_on_closed, &sc);
	it_wait(t, &sc);
	policy_close(t->p, redis_test_on_closed, &pc);
	it_wait(t, &pc);
	queue_close(t->q, redis_test_on_closed, &qc);
	it_wait(t, &qc);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&t->loop), 0);
	config_free(&t->cfg);
}

/* --- the queue side ------------------------------------------------------------- */

static void
on_enqueued(void *arg, int status, const char *id)
{
	struct res *r = arg;

	r->status = status;
	if (id != NULL)
		str_copy(r->id, id, sizeof r->id);
	r->done = true;
}

/* A message of user shop from orders@shop.example to rcpts, delivered to all. */
static void
it_sent(struct it *t, const char *user, const char *const *rcpts, size_t n, char id[QID_SIZE])
{
	static const char head[] = "From: orders@shop.example\r\nSubject: Your order\r\n\r\n";
	static const char body[] = "Thanks.\r\n";
	struct envelope env;
	struct res r = { 0 };

	envelope_init(&env);
	envelope_set(&env.sender, "orders@shop.example");
	envelope_set(&env.user, user);
	envelope_set(&env.client, "192.0.2.1");
	envelope_set(&env.helo, "web.shop.example");
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(envelope_add_rcpt(&env, rcpts[i], NULL, 0), 0);
	ck_assert_int_eq(queue_enqueue(t->q, &env, head, sizeof head - 1, body, sizeof body - 1,
	                     on_enqueued, &r),
	    0);
	it_wait(t, &r.done);
	ck_assert_int_eq(r.status, 0);
	memcpy(id, r.id, QID_SIZE);
	envelope_free(&env);
}

static void
on_claimed(void *arg, int status, struct queue_job **jobs, size_t n)
{
	struct res *r = arg;

	r->status = status;
	r->jobs = n > 0 ? malloc(n * sizeof *jobs) : NULL;
	if (n > 0)
		memcpy(r->jobs, jobs, n * sizeof *jobs);
	r->njobs = n;
	r->done = true;
}

static void
on_status(void *arg, int status)
{
	struct res *r = arg;

	r->status = status;
	r->calls++;
	r->done = true;
}

/* Deliver every due job: each recipient 250. */
static void
it_deliver_all(struct it *t)
{
	struct res r = { 0 };

	ck_assert_int_eq(queue_claim(t->q, 100, on_claimed, &r), 0);
	it_wait(t, &r.done);
	ck_assert_int_eq(r.status, 0);
	for (size_t i = 0; i < r.njobs; i++) {
		struct res c = { 0 };

		for (size_t k = 0; k < r.jobs[i]->st.n; k++)
			queue_job_set(r.jobs[i], k, RCPT_DELIVERED, "250 2.0.0 ok");
		ck_assert_int_eq(queue_complete(t->q, r.jobs[i], on_status, &c), 0);
		it_wait(t, &c.done);
		ck_assert_int_eq(c.status, 0);
		queue_job_free(r.jobs[i]);
	}
	free(r.jobs);
}

static void
on_fetched(void *arg, int status, struct queue_info *infos, size_t n)
{
	enum rcpt_state *st = arg;

	ck_assert_int_eq(status, 0);
	ck_assert_uint_eq(n, 1);
	for (size_t j = 0; j < infos[0].njobs; j++)
		for (size_t k = 0; k < infos[0].jobs[j].st.n; k++)
			if (infos[0].jobs[j].st.r[k].idx < 8)
				st[infos[0].jobs[j].st.r[k].idx] = infos[0].jobs[j].st.r[k].state;
	st[8] = RCPT_QUEUED; /* done marker */
}

/* The state of recipient idx of message id. */
static enum rcpt_state
it_state(struct it *t, const char *id, uint32_t idx)
{
	enum rcpt_state st[9];
	const char *ids[1] = { id };

	for (int i = 0; i < 9; i++)
		st[i] = RCPT_NSTATES;
	ck_assert_int_eq(queue_fetch(t->q, ids, 1, on_fetched, st), 0);
	for (int i = 0; i < 1000 && st[8] == RCPT_NSTATES; i++)
		uv_run(&t->loop, UV_RUN_ONCE);
	ck_assert_int_eq(st[8], RCPT_QUEUED);
	return st[idx];
}

static void
it_verp(struct it *t, const char *id, uint32_t idx, bool job, char *out, size_t size)
{
	ck_assert_int_gt(verp_encode(t->key, id, idx, job, "bounces.shop.example", out, size), 0);
}

/* --- the ingest calls ------------------------------------------------------------- */

static void
on_rcpt(void *arg, enum ingest_verdict v)
{
	struct res *r = arg;

	r->v = v;
	r->calls++;
	r->done = true;
}

static int
it_rcpt(struct it *t, const char *addr, enum ingest_verdict *v)
{
	struct res r = { 0 };
	int rc = ingest_rcpt(t->in, addr, on_rcpt, &r);

	if (rc < 0)
		return rc;
	ck_assert(!r.done); /* never from inside the call */
	it_wait(t, &r.done);
	ck_assert_int_eq(r.calls, 1);
	*v = r.v;
	return 0;
}

static void
on_stored(void *arg, int status, const char *id)
{
	struct res *r = arg;

	r->status = status;
	r->calls++;
	if (id != NULL)
		str_copy(r->id, id, sizeof r->id);
	r->done = true;
}

/* Hand msg (head and body split at the empty line) to ingest for rcpt. */
static int
it_store(struct it *t, const char *rcpt, const char *msg)
{
	struct envelope env;
	struct res r = { 0 };
	const char *sep = strstr(msg, "\r\n\r\n");
	size_t hlen;
	int rc;

	ck_assert(sep != NULL);
	hlen = (size_t)(sep - msg) + 4;
	envelope_init(&env);
	envelope_set(&env.sender, "");
	envelope_set(&env.client, "192.0.2.9");
	ck_assert_int_eq(envelope_add_rcpt(&env, rcpt, NULL, 0), 0);
	qid_new(env.id, 1700000000000ULL);
	rc = ingest_store(t->in, &env, msg, hlen, msg + hlen, strlen(msg) - hlen, on_stored, &r);
	if (rc == 0) {
		ck_assert(!r.done);
		it_wait(t, &r.done);
		ck_assert_int_eq(r.calls, 1);
		ck_assert_str_eq(r.id, env.id);
		rc = r.status;
	}
	envelope_free(&env);
	return rc;
}

/* --- what came of it -------------------------------------------------------------- */

static void
on_sup(void *arg, int status, const struct policy_sup_entry *e, size_t n)
{
	struct res *r = arg;

	r->status = status;
	r->n = n < 4 ? n : 4;
	memcpy(r->e, e, r->n * sizeof *e);
	r->done = true;
}

/* The suppression reason of addr under shop.example, or "". */
static const char *
it_sup(struct it *t, const char *addr)
{
	static char why[32];
	struct res r = { 0 };

	ck_assert_int_eq(policy_sup_check(t->p, "shop.example", addr, on_sup, &r), 0);
	it_wait(t, &r.done);
	ck_assert_int_eq(r.status, 0);
	why[0] = '\0';
	for (size_t i = 0; i < r.n; i++)
		str_copy(why, policy_sup_reason_name(r.e[i].reason), sizeof why);
	return why;
}

static void
on_msgs(void *arg, int status, struct mbox_msgs *list)
{
	struct res *r = arg;

	r->status = status;
	r->msgs = list;
	r->done = true;
}

static void
on_body(void *arg, int status, struct mbox_body *b)
{
	struct res *r = arg;

	r->status = status;
	r->body = b;
	r->done = true;
}

/* Messages in user's INBOX; -ENOENT as 0. */
static size_t
it_inbox_count(struct it *t, const char *user)
{
	struct res r = { 0 };
	size_t n;

	ck_assert_int_eq(mbox_list(t->st, user, "INBOX", NULL, 0, 0, on_msgs, &r), 0);
	it_wait(t, &r.done);
	if (r.status == -ENOENT)
		return 0;
	ck_assert_int_eq(r.status, 0);
	n = r.msgs->n;
	mbox_msgs_free(r.msgs);
	return n;
}

/* The raw bytes of the newest message of user's INBOX (caller frees). */
static char *
it_inbox_last(struct it *t, const char *user)
{
	struct res r = { 0 }, b = { 0 };
	uint32_t uid;
	char *data;

	ck_assert_int_eq(mbox_list(t->st, user, "INBOX", NULL, 0, 0, on_msgs, &r), 0);
	it_wait(t, &r.done);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_gt(r.msgs->n, 0);
	uid = r.msgs->v[r.msgs->n - 1].uid;
	mbox_msgs_free(r.msgs);
	ck_assert_int_eq(mbox_fetch(t->st, user, "INBOX", uid, on_body, &b), 0);
	it_wait(t, &b.done);
	ck_assert_int_eq(b.status, 0);
	data = strdup(b.body->data);
	mbox_body_free(b.body);
	ck_assert(data != NULL);
	return data;
}

static long long
it_events(struct it *t)
{
	redisReply *r = redis_test_cmd(t->sync, "XLEN %s", redis_test_key(t->cfg.redis.prefix, "events"));
	long long n = r->integer;

	freeReplyObject(r);
	return n;
}

/* --- returns ----------------------------------------------------------------------- */

static void
dsn(char *out, size_t size, const char *verp, const char *rcpt, const char *status,
    const char *diag, int n)
{
	snprintf(out, size,
	    "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
	    "To: %s\r\n"
	    "Subject: Undelivered Mail Returned to Sender\r\n"
	    "Message-ID: <r%d@mx.example.net>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"BB\"\r\n"
	    "\r\n"
	    "--BB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered (%d).\r\n\r\n"
	    "--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; mx.example.net\r\n\r\n"
	    "Final-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n"
	    "Diagnostic-Code: smtp; %s\r\n\r\n"
	    "--BB\r\nContent-Type: text/rfc822-headers\r\n\r\n"
	    "From: orders@shop.example\r\nTo: %s\r\nSubject: Your order\r\n\r\n--BB--\r\n",
	    verp, n, n, rcpt, status, diag, rcpt);
}

static void
arf(char *out, size_t size, const char *verp, const char *rcpt)
{
	snprintf(out, size,
	    "From: Feedback Loop <fbl@isp.example>\r\nTo: %s\r\nSubject: Abuse report\r\n"
	    "Message-ID: <c1@isp.example>\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=feedback-report; boundary=\"CC\"\r\n\r\n"
	    "--CC\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n"
	    "--CC\r\nContent-Type: message/feedback-report\r\n\r\n"
	    "Feedback-Type: abuse\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n"
	    "Original-Rcpt-To: <%s>\r\nOriginal-Mail-From: <%s>\r\n\r\n"
	    "--CC\r\nContent-Type: text/rfc822-headers\r\n\r\n"
	    "From: orders@shop.example\r\nTo: %s\r\nSubject: Your order\r\n\r\n--CC--\r\n",
	    verp, rcpt, verp, rcpt);
}

/* RCPT: what is taken, what is refused, and how. */
START_TEST(rcpt_verdicts)
{
	struct it t;
	char id[QID_SIZE], unknown[QID_SIZE], a[300], forged[300];
	const char *const rc[] = { "gone@example.net" };
	enum ingest_verdict v;

	it_open(&t, "[mailbox]\npostmaster = admin\n");
	it_sent(&t, "shop", rc, 1, id);
	it_verp(&t, id, 0, false, a, sizeof a);
	ck_assert_int_eq(it_rcpt(&t, a, &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_OK);
	/* Any case: an MTA may fold the local part. */
	str_lower(a);
	ck_assert_int_eq(it_rcpt(&t, a, &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_OK);
	/* One MAC digit changed. */
	str_copy(forged, a, sizeof forged);
	{
		char *at = strchr(forged, '@');

		at[-1] = at[-1] == '0' ? '1' : '0';
	}
	ck_assert_int_eq(it_rcpt(&t, forged, &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_UNKNOWN);
	/* A signed token for a message the queue never had. */
	qid_new(unknown, 1600000000000ULL);
	it_verp(&t, unknown, 0, false, a, sizeof a);
	ck_assert_int_eq(it_rcpt(&t, a, &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_UNKNOWN);
	/* A recipient index the message does not have. */
	it_verp(&t, id, 3, false, a, sizeof a);
	ck_assert_int_eq(it_rcpt(&t, a, &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_UNKNOWN);
	/* Another address of the bounce domain. */
	ck_assert_int_eq(it_rcpt(&t, "someone@bounces.shop.example", &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_UNKNOWN);
	/* Foreign domains, the sending domain itself included. */
	ck_assert_int_eq(it_rcpt(&t, "user@example.org", &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_RELAY);
	ck_assert_int_eq(it_rcpt(&t, "orders@shop.example", &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_RELAY);
	ck_assert_int_eq(it_rcpt(&t, "no-at-sign", &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_RELAY);
	/* The role addresses, with [mailbox] postmaster. */
	ck_assert_int_eq(it_rcpt(&t, "postmaster@bounces.shop.example", &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_OK);
	ck_assert_int_eq(it_rcpt(&t, "Abuse@Bounces.Shop.Example", &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_OK);
	ck_assert_int_eq(it_rcpt(&t, "postmaster@example.org", &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_RELAY);
	it_close(&t);

	/* Without it, nobody's mailbox would take them. */
	it_open(&t, NULL);
	ck_assert_int_eq(it_rcpt(&t, "postmaster@bounces.shop.example", &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_UNKNOWN);
	ck_assert_int_eq(it_rcpt(&t, "abuse@bounces.shop.example", &v), 0);
	ck_assert_int_eq(v, INGEST_RCPT_UNKNOWN);
	it_close(&t);
}
END_TEST

/*
 * A hard bounce after the delivery: the recipient is bounced in the
 * queue (one event), suppressed for the sending domain, and the report
 * is in the user's INBOX with the X-Kurier fields on top.  The same
 * return again changes nothing and stores nothing twice.
 */
START_TEST(hard_bounce_marks_suppresses_stores)
{
	struct it t;
	char id[QID_SIZE], a[300], msg[4096], *got;
	const char *const rc[] = { "gone@example.net", "ok@example.net" };
	long long ev;

	it_open(&t, NULL);
	it_sent(&t, "shop", rc, 2, id);
	it_deliver_all(&t);
	ck_assert_int_eq(it_state(&t, id, 0), RCPT_DELIVERED);
	ev = it_events(&t);
	it_verp(&t, id, 0, false, a, sizeof a);
	dsn(msg, sizeof msg, a, "gone@example.net", "5.1.1",
	    "550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown", 1);
	ck_assert_int_eq(it_store(&t, a, msg), 0);

	ck_assert_int_eq(it_state(&t, id, 0), RCPT_BOUNCED);
	ck_assert_int_eq(it_state(&t, id, 1), RCPT_DELIVERED);
	ck_assert_int_eq(it_events(&t), ev + 1);
	ck_assert_str_eq(it_sup(&t, "gone@example.net"), "hard-bounce");
	ck_assert_str_eq(it_sup(&t, "ok@example.net"), "");
	ck_assert_uint_eq(it_inbox_count(&t, "shop"), 1);
	got = it_inbox_last(&t, "shop");
	ck_assert_msg(strncmp(got, "X-Kurier-Class: hard\r\nX-Kurier-Reason: user-unknown\r\n"
	                           "X-Kurier-Recipient: gone@example.net\r\nX-Kurier-Queue-Id: ",
	                  105) == 0,
	    "got: %.200s", got);
	ck_assert(strstr(got, id) != NULL);
	ck_assert(strstr(got, "\r\nFrom: Mail Delivery System") != NULL);
	free(got);

	/* Delivered again by the remote MTA: the same return. */
	ck_assert_int_eq(it_store(&t, a, msg), 0);
	ck_assert_int_eq(it_events(&t), ev + 1);
	ck_assert_uint_eq(it_inbox_count(&t, "shop"), 1);
	it_close(&t);
}
END_TEST

/* A job token: the report's Final-Recipient picks the recipient among the job. */
START_TEST(job_token_picks_recipient)
{
	struct it t;
	char id[QID_SIZE], a[300], msg[4096];
	const char *const rc[] = { "first@example.net", "second@example.net" };

	it_open(&t, NULL);
	it_sent(&t, "shop", rc, 2, id);
	it_deliver_all(&t);
	it_verp(&t, id, 0, true, a, sizeof a);
	dsn(msg, sizeof msg, a, "second@example.net", "5.1.1", "550 5.1.1 user unknown", 2);
	ck_assert_int_eq(it_store(&t, a, msg), 0);
	ck_assert_int_eq(it_state(&t, id, 0), RCPT_DELIVERED);
	ck_assert_int_eq(it_state(&t, id, 1), RCPT_BOUNCED);
	ck_assert_str_eq(it_sup(&t, "second@example.net"), "hard-bounce");
	ck_assert_str_eq(it_sup(&t, "first@example.net"), "");
	it_close(&t);
}
END_TEST

/* A job token whose report names none of the job's recipients: stored, nothing acted on. */
START_TEST(job_token_report_names_nobody_of_ours)
{
	struct it t;
	char id[QID_SIZE], a[300], msg[4096], *got;
	const char *const rc[] = { "first@example.net", "second@example.net" };

	it_open(&t, NULL);
	it_sent(&t, "shop", rc, 2, id);
	it_deliver_all(&t);
	it_verp(&t, id, 0, true, a, sizeof a);
	dsn(msg, sizeof msg, a, "forwarded@elsewhere.example", "5.1.1", "550 5.1.1 user unknown", 5);
	ck_assert_int_eq(it_store(&t, a, msg), 0);
	ck_assert_int_eq(it_state(&t, id, 0), RCPT_DELIVERED);
	ck_assert_int_eq(it_state(&t, id, 1), RCPT_DELIVERED);
	ck_assert_str_eq(it_sup(&t, "first@example.net"), "");
	ck_assert_str_eq(it_sup(&t, "forwarded@elsewhere.example"), "");
	got = it_inbox_last(&t, "shop");
	ck_assert_msg(strstr(got, "X-Kurier-Recipient: forwarded@elsewhere.example\r\n") != NULL, "got: %.200s", got);
	free(got);
	it_close(&t);
}
END_TEST

/* An ARF complaint suppresses with reason complaint and bounces nothing. */
START_TEST(complaint_suppresses)
{
	struct it t;
	char id[QID_SIZE], a[300], msg[4096], *got;
	const char *const rc[] = { "angry@example.net" };

	it_open(&t, NULL);
	it_sent(&t, "shop", rc, 1, id);
	it_deliver_all(&t);
	it_verp(&t, id, 0, false, a, sizeof a);
	arf(msg, sizeof msg, a, "angry@example.net");
	ck_assert_int_eq(it_store(&t, a, msg), 0);
	ck_assert_int_eq(it_state(&t, id, 0), RCPT_DELIVERED);
	ck_assert_str_eq(it_sup(&t, "angry@example.net"), "complaint");
	got = it_inbox_last(&t, "shop");
	ck_assert(strncmp(got, "X-Kurier-Class: complaint\r\n", 27) == 0);
	free(got);
	it_close(&t);
}
END_TEST

/* soft_bounce_limit soft bounces suppress; one fewer does not; a repeat does not count. */
START_TEST(soft_bounces_up_to_the_limit)
{
	struct it t;
	char id[QID_SIZE], a[300], msg[4096], *got;
	const char *const rc[] = { "full@example.net" };

	it_open(&t, "[mailbox]\nsoft_bounce_limit = 3\n");
	it_sent(&t, "shop", rc, 1, id);
	it_deliver_all(&t);
	it_verp(&t, id, 0, false, a, sizeof a);
	for (int i = 1; i <= 3; i++) {
		dsn(msg, sizeof msg, a, "full@example.net", "4.2.2", "452 4.2.2 Mailbox full, over quota", i);
		ck_assert_int_eq(it_store(&t, a, msg), 0);
		/* The same return twice counts once. */
		ck_assert_int_eq(it_store(&t, a, msg), 0);
		ck_assert_str_eq(it_sup(&t, "full@example.net"), i < 3 ? "" : "soft-bounce-limit");
	}
	ck_assert_int_eq(it_state(&t, id, 0), RCPT_DELIVERED);
	ck_assert_uint_eq(it_inbox_count(&t, "shop"), 3);
	got = it_inbox_last(&t, "shop");
	ck_assert(strncmp(got, "X-Kurier-Class: soft\r\nX-Kurier-Reason: mailbox-full\r\n", 52) == 0);
	free(got);
	it_close(&t);
}
END_TEST

/* An out-of-office reply is stored and changes nothing. */
START_TEST(auto_reply_changes_nothing)
{
	struct it t;
	char id[QID_SIZE], a[300], msg[1024], *got;
	const char *const rc[] = { "away@example.net" };

	it_open(&t, NULL);
	it_sent(&t, "", rc, 1, id);
	it_deliver_all(&t);
	it_verp(&t, id, 0, false, a, sizeof a);
	snprintf(msg, sizeof msg, "From: Ann <away@example.net>\r\nTo: %s\r\n"
	                          "Subject: Out of Office: Your order\r\nAuto-Submitted: auto-replied\r\n\r\n"
	                          "I am out of the office until Monday.\r\n",
	    a);
	/* No user on the message and no trusted_user: nowhere to keep it. */
	ck_assert_int_eq(it_store(&t, a, msg), 0);
	ck_assert_uint_eq(it_inbox_count(&t, "shop"), 0);
	it_close(&t);

	it_open(&t, "[relay]\ntrusted_user = shop\n");
	it_sent(&t, "", rc, 1, id);
	it_deliver_all(&t);
	it_verp(&t, id, 0, false, a, sizeof a);
	snprintf(msg, sizeof msg, "From: Ann <away@example.net>\r\nTo: %s\r\n"
	                          "Subject: Out of Office: Your order\r\nAuto-Submitted: auto-replied\r\n\r\n"
	                          "I am out of the office until Monday.\r\n",
	    a);
	ck_assert_int_eq(it_store(&t, a, msg), 0);
	ck_assert_int_eq(it_state(&t, id, 0), RCPT_DELIVERED);
	ck_assert_str_eq(it_sup(&t, "away@example.net"), "");
	got = it_inbox_last(&t, "shop");
	ck_assert(strncmp(got, "X-Kurier-Class: auto-reply\r\nX-Kurier-Reason: auto-reply\r\n", 56) == 0);
	free(got);
	it_close(&t);
}
END_TEST

/*
 * postmaster@ goes to [mailbox] postmaster's INBOX; a report in it that
 * carries our return path still acts on the recipient.  Header values
 * from the report never break the X-Kurier fields.
 */
START_TEST(postmaster_mailbox)
{
	struct it t;
	char id[QID_SIZE], a[300], msg[4096], *got;
	const char *const rc[] = { "angry@example.net" };

	it_open(&t, "[mailbox]\npostmaster = admin\n");
	it_sent(&t, "shop", rc, 1, id);
	it_deliver_all(&t);
	it_verp(&t, id, 0, false, a, sizeof a);
	arf(msg, sizeof msg, a, "angry@example.net");
	ck_assert_int_eq(it_store(&t, "postmaster@bounces.shop.example", msg), 0);
	ck_assert_uint_eq(it_inbox_count(&t, "admin"), 1);
	ck_assert_uint_eq(it_inbox_count(&t, "shop"), 0);
	ck_assert_str_eq(it_sup(&t, "angry@example.net"), "complaint");
	/* Plain mail to abuse@: stored, class none. */
	ck_assert_int_eq(it_store(&t, "abuse@bounces.shop.example",
	                     "From: someone@example.org\r\nSubject: hello\r\n\r\nA question.\r\n"),
	    0);
	ck_assert_uint_eq(it_inbox_count(&t, "admin"), 2);
	got = it_inbox_last(&t, "admin");
	ck_assert(strncmp(got, "X-Kurier-Class: none\r\n", 22) == 0);
	ck_assert(strstr(got, "X-Kurier-Queue-Id: \r\n") != NULL);
	free(got);
	it_close(&t);
}
END_TEST

/*
 * A return while a worker holds the job's lease: 451 (-EBUSY), nothing
 * stored; the sender's retry, after the job is completed, does it all.
 */
START_TEST(leased_job_answers_451_then_retry_works)
{
	struct it t;
	struct res r = { 0 };
	char id[QID_SIZE], a[300], msg[4096];
	const char *const rc[] = { "gone@example.net" };

	it_open(&t, NULL);
	it_sent(&t, "shop", rc, 1, id);
	ck_assert_int_eq(queue_claim(t.q, 10, on_claimed, &r), 0);
	it_wait(&t, &r.done);
	ck_assert_uint_eq(r.njobs, 1);
	it_verp(&t, id, 0, false, a, sizeof a);
	dsn(msg, sizeof msg, a, "gone@example.net", "5.1.1", "550 5.1.1 user unknown", 3);
	ck_assert_int_eq(it_store(&t, a, msg), -EBUSY);
	ck_assert_uint_eq(it_inbox_count(&t, "shop"), 0);
	ck_assert_str_eq(it_sup(&t, "gone@example.net"), "");
	{
		struct res c = { 0 };

		queue_job_set(r.jobs[0], 0, RCPT_DELIVERED, "250 ok");
		ck_assert_int_eq(queue_complete(t.q, r.jobs[0], on_status, &c), 0);
		it_wait(&t, &c.done);
		ck_assert_int_eq(c.status, 0);
		queue_job_free(r.jobs[0]);
		free(r.jobs);
	}
	ck_assert_int_eq(it_store(&t, a, msg), 0);
	ck_assert_int_eq(it_state(&t, id, 0), RCPT_BOUNCED);
	ck_assert_str_eq(it_sup(&t, "gone@example.net"), "hard-bounce");
	ck_assert_uint_eq(it_inbox_count(&t, "shop"), 1);
	it_close(&t);
}
END_TEST

/*
 * The message left the queue between RCPT and the end of DATA: the
 * return is kept for [relay] trusted_user, nothing else happens.
 */
START_TEST(message_gone_is_kept_for_trusted_user)
{
	struct it t;
	char unknown[QID_SIZE], a[300], msg[4096], *got;

	it_open(&t, "[relay]\ntrusted_user = site\n");
	qid_new(unknown, 1600000000000ULL);
	it_verp(&t, unknown, 0, false, a, sizeof a);
	dsn(msg, sizeof msg, a, "gone@example.net", "5.1.1", "550 5.1.1 user unknown", 4);
	ck_assert_int_eq(it_store(&t, a, msg), 0);
	ck_assert_uint_eq(it_inbox_count(&t, "site"), 1);
	ck_assert_str_eq(it_sup(&t, "gone@example.net"), "");
	got = it_inbox_last(&t, "site");
	ck_assert_msg(strncmp(got, "X-Kurier-Class: hard\r\nX-Kurier-Reason: user-unknown\r\n"
	                           "X-Kurier-Recipient: gone@example.net\r\nX-Kurier-Queue-Id: \r\n",
	                  110) == 0,
	    "got: %.200s", got);
	free(got);
	it_close(&t);
}
END_TEST

/* What a report says of itself never breaks out of the X-Kurier fields. */
START_TEST(field_values_are_sanitised)
{
	struct it t;
	char msg[8192], long_local[400], *got, *line, *end;

	it_open(&t, "[mailbox]\npostmaster = admin\n");
	memset(long_local, 'x', sizeof long_local - 1);
	long_local[sizeof long_local - 1] = '\0';
	/* 8-bit bytes and a 400-byte address in the report's Final-Recipient. */
	snprintf(msg, sizeof msg,
	    "From: MAILER-DAEMON@mx.example.net\r\nTo: postmaster@bounces.shop.example\r\n"
	    "Subject: Undelivered\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"BB\"\r\n\r\n"
	    "--BB\r\nContent-Type: text/plain\r\n\r\nfailed\r\n\r\n"
	    "--BB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
	    "Final-Recipient: rfc822; \xc3\xa9%s@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
	    "--BB--\r\n",
	    long_local);
	ck_assert_int_eq(it_store(&t, "postmaster@bounces.shop.example", msg), 0);
	got = it_inbox_last(&t, "admin");
	ck_assert(strncmp(got, "X-Kurier-Class: ", 16) == 0);
	line = strstr(got, "X-Kurier-Recipient: ");
	ck_assert(line != NULL);
	end = strstr(line, "\r\n");
	ck_assert(end != NULL);
	ck_assert_uint_le((size_t)(end - line), strlen("X-Kurier-Recipient: ") + 256);
	for (const char *p = line; p < end; p++)
		ck_assert_msg((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f, "byte 0x%02x",
		    (unsigned char)*p);
	/* The four fields, then the report as it came. */
	ck_assert(strstr(got, "X-Kurier-Queue-Id: \r\nFrom: MAILER-DAEMON") != NULL);
	free(got);
	it_close(&t);
}
END_TEST

/*
 * The real-world corpus, every file a return to postmaster@ (CRLF line
 * ends, as the session hands them on): each is taken and stored, with
 * the four X-Kurier fields on top, printable, whatever the file holds.
 */
START_TEST(corpus_through_the_postmaster_mailbox)
{
	struct it t;
	DIR *d;
	struct dirent *e;
	unsigned n = 0;

	d = opendir(CORPUS);
	ck_assert_msg(d != NULL, "%s: %s", CORPUS, strerror(errno));
	it_open(&t, "[mailbox]\npostmaster = admin\n");
	while ((e = readdir(d)) != NULL) {
		char path[512], *raw, *crlf, *got;
		struct envelope env;
		struct res r = { 0 };
		FILE *f;
		long len;
		size_t m = 0, hlen;
		const char *sep;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", CORPUS, e->d_name);
		f = fopen(path, "rb");
		ck_assert_msg(f != NULL, "%s", path);
		fseek(f, 0, SEEK_END);
		len = ftell(f);
		rewind(f);
		raw = malloc((size_t)len + 1);
		crlf = malloc(2 * (size_t)len + 3);
		ck_assert(raw != NULL && crlf != NULL);
		ck_assert_uint_eq(fread(raw, 1, (size_t)len, f), (size_t)len);
		fclose(f);
		for (long i = 0; i < len; i++) {
			if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r'))
				crlf[m++] = '\r';
			crlf[m++] = raw[i];
		}
		crlf[m] = '\0';
		sep = memmem(crlf, m, "\r\n\r\n", 4);
		hlen = sep ? (size_t)(sep - crlf) + 4 : m;
		envelope_init(&env);
		ck_assert_int_eq(envelope_add_rcpt(&env, "postmaster@bounces.shop.example", NULL, 0), 0);
		qid_new(env.id, 1700000000000ULL + n);
		ck_assert_int_eq(ingest_store(t.in, &env, crlf, hlen, crlf + hlen, m - hlen, on_stored, &r), 0);
		it_wait(&t, &r.done);
		ck_assert_msg(r.status == 0, "%s: %d", e->d_name, r.status);
		envelope_free(&env);
		free(raw);
		free(crlf);
		n++;
		/* Every 64th: the fields on top are four printable lines. */
		if (n % 64 == 1) {
			const char *p;
			int lines = 0;

			got = it_inbox_last(&t, "admin");
			for (p = got; lines < 4; p++) {
				ck_assert_msg(*p != '\0', "%s: cut short", e->d_name);
				if (p[0] == '\r' && p[1] == '\n') {
					lines++;
					p++;
					continue;
				}
				ck_assert_msg((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f,
				    "%s: byte 0x%02x in the X-Kurier fields", e->d_name, (unsigned char)*p);
			}
			ck_assert(strncmp(got, "X-Kurier-Class: ", 16) == 0);
			free(got);
		}
	}
	closedir(d);
	ck_assert_uint_ge(n, 600);
	/* Identical files store once (the dedup key); nearly all are distinct. */
	ck_assert_uint_ge(it_inbox_count(&t, "admin"), n - n / 10);
	it_close(&t);
}
END_TEST

/* Redis down: a VERP recipient and a return are refused at once (451); a foreign domain still gets its 550. */
START_TEST(redis_down_refuses_at_once)
{
	struct config cfg;
	uv_loop_t loop;
	struct queue *q;
	struct policy *p;
	struct mbox_store *st;
	struct ingest *in;
	struct envelope env;
	struct res r = { 0 };
	uint8_t key[VERP_KEY_LEN];
	char err[CONFIG_ERR_MAX], id[QID_SIZE], a[300];
	bool qc = false, pc = false, sc = false, ic = false;

	ck_assert_int_eq(config_load_string(&cfg, "test", CONF_BASE, err, sizeof err), 0);
	str_copy(cfg.redis.address.host, "127.0.0.1", sizeof cfg.redis.address.host);
	cfg.redis.address.port = 1; /* nothing listens there */
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(queue_open(&q, &loop, &cfg, "test"), 0);
	ck_assert_int_eq(policy_open(&p, &loop, &cfg, "test"), 0);
	ck_assert_int_eq(mbox_store_open(&st, &loop, &cfg, err, sizeof err), 0);
	ck_assert_int_eq(ingest_open(&in, &loop, &cfg, q, p, st, err, sizeof err), 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(verp_load_key(cfg.deliver.verp_secret, cfg.server.data_dir, key, err, sizeof err), 0);
	qid_new(id, 1700000000000ULL);
	ck_assert_int_gt(verp_encode(key, id, 0, false, "bounces.shop.example", a, sizeof a), 0);
	ck_assert_int_eq(ingest_rcpt(in, a, on_rcpt, &r), -ENOTCONN);
	ck_assert_int_eq(ingest_rcpt(in, "x@example.org", on_rcpt, &r), 0);
	redis_test_wait(&loop, &r.done, WAIT_MS, "ingest");
	ck_assert_int_eq(r.v, INGEST_RCPT_RELAY);
	envelope_init(&env);
	ck_assert_int_eq(ingest_store(in, &env, "", 0, "", 0, on_stored, &r), -EINVAL);
	ck_assert_int_eq(envelope_add_rcpt(&env, a, NULL, 0), 0);
	ck_assert_int_eq(ingest_store(in, &env, "S: x\r\n\r\n", 8, "b\r\n", 3, on_stored, &r), -ENOTCONN);
	envelope_free(&env);
	ingest_close(in, redis_test_on_closed, &ic);
	ck_assert(ic);
	mbox_store_close(st, redis_test_on_closed, &sc);
	policy_close(p, redis_test_on_closed, &pc);
	queue_close(q, redis_test_on_closed, &qc);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert(qc && pc && sc);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	config_free(&cfg);
}
END_TEST

Suite *
ingest_suite(void)
{
	Suite *s = suite_create("ingest");
	TCase *tc = tcase_create("redis");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, rcpt_verdicts);
	tcase_add_test(tc, hard_bounce_marks_suppresses_stores);
	tcase_add_test(tc, job_token_picks_recipient);
	tcase_add_test(tc, job_token_report_names_nobody_of_ours);
	tcase_add_test(tc, complaint_suppresses);
	tcase_add_test(tc, soft_bounces_up_to_the_limit);
	tcase_add_test(tc, auto_reply_changes_nothing);
	tcase_add_test(tc, postmaster_mailbox);
	tcase_add_test(tc, leased_job_answers_451_then_retry_works);
	tcase_add_test(tc, message_gone_is_kept_for_trusted_user);
	tcase_add_test(tc, field_values_are_sanitised);
	tcase_add_test(tc, corpus_through_the_postmaster_mailbox);
	tcase_add_test(tc, redis_down_refuses_at_once);
	suite_add_tcase(s, tc);
	return s;
}
