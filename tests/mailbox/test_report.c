/*
 * test_report - mailbox/report, the reporter, against a real
 * redis-server ($KURIER_TEST_REDIS): the queue (tests/queue/qtest.h),
 * the mailbox store and the reporter on one loop, the wall clock.
 * Which outcome makes a report (NOTIFY absent, NEVER, SUCCESS, a delay
 * past delay_warning, once per recipient), and what makes none but is
 * acknowledged all the same: an event of a message that is gone, an
 * unreadable event, an
 * asynchronous return (returned=1), a message without a user when
 * [relay] trusted_user is empty; an event handled again (a consumer
 * that died after storing) is found made (report_duplicate) and stores
 * nothing.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rfc5322.h"
#include "mailbox/report.h"
#include "mailbox/store.h"
#include "tests/logcap.h"
#include "tests/queue/qtest.h"
#include "tests/redis_test.h"
#include "tests/suites.h"

#define MSG "From: Shop <orders@shop.example>\r\nTo: a@one.example\r\n" \
	"Subject: Your order\r\n\r\nThanks for your order.\r\n"

struct rt {
	struct qt t;
	struct mbox_store *st;
	struct report *rep;
	char log[65536];
	size_t loglen;
};

static uint64_t
wall_ms(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
tweak(struct config *cfg)
{
	cfg->queue.lease_ms = 1000;           /* claims after 2 s */
	cfg->mailbox.delay_warning_ms = 1;
	cfg->relay.trusted_user[0] = '\0';
	snprintf(cfg->server.hostname, sizeof cfg->server.hostname, "kurier.test");
}

static void
rt_open(struct rt *r)
{
	char err[256];
	bool up = false;

	memset(r, 0, sizeof *r);
	qt_open(&r->t, tweak);
	queue_set_clock(r->t.q, wall_ms, NULL);
	ck_assert_int_eq(mbox_store_open(&r->st, &r->t.loop, &r->t.cfg, err, sizeof err), 0);
	mbox_on_state(r->st, redis_test_on_up, &up);
	qt_wait(&r->t, &up);
	mbox_on_state(r->st, NULL, NULL);
	ck_assert_int_eq(report_open(&r->rep, &r->t.loop, &r->t.cfg, r->t.q, r->st, NULL,
	    "test:1", err, sizeof err), 0);
}

static void
rt_close(struct rt *r)
{
	bool closed = false, sclosed = false;

	report_close(r->rep, redis_test_on_closed, &closed);
	qt_wait(&r->t, &closed);
	mbox_store_close(r->st, redis_test_on_closed, &sclosed);
	qt_wait(&r->t, &sclosed);
	qt_close(&r->t);
}

static void
drain_log(struct rt *r)
{
	if (r->loglen + 1 < sizeof r->log)
		r->loglen += logcap_read(r->log + r->loglen, sizeof r->log - r->loglen);
	else {
		char junk[4096];

		logcap_read(junk, sizeof junk);
	}
}

static long long
pending(struct rt *r)
{
	redisReply *x = redis_test_cmd(r->t.sync, "XPENDING %s reports", qt_key(&r->t, "events"));
	long long n = x->type == REDIS_REPLY_ARRAY && x->elements > 0 ? x->element[0]->integer : -1;

	freeReplyObject(x);
	return n;
}

/* inbox - messages in user's INBOX, from the store's keys (mailbox/README.md). */
static long long
inbox(struct rt *r, const char *user)
{
	char suffix[128];
	redisReply *x;
	long long n = 0;

	snprintf(suffix, sizeof suffix, "mbx:u:%s", user);
	x = redis_test_cmd(r->t.sync, "HGET %s INBOX", qt_key(&r->t, suffix));
	if (x->type == REDIS_REPLY_STRING) {
		char m[64];

		snprintf(suffix, sizeof suffix, "mbx:x:%s", x->str);
		snprintf(m, sizeof m, "%s", qt_key(&r->t, suffix));
		freeReplyObject(x);
		x = redis_test_cmd(r->t.sync, "ZCARD %s", m);
		n = x->integer;
	}
	freeReplyObject(x);
	return n;
}

/* all_read - the group has been handed every entry of the stream. */
static bool
all_read(struct rt *r)
{
	redisReply *last = redis_test_cmd(r->t.sync, "XREVRANGE %s + - COUNT 1", qt_key(&r->t, "events"));
	redisReply *g = redis_test_cmd(r->t.sync, "XINFO GROUPS %s", qt_key(&r->t, "events"));
	bool ok = false;

	if (last->type == REDIS_REPLY_ARRAY && last->elements == 1 && g->type == REDIS_REPLY_ARRAY &&
	    g->elements == 1) {
		const redisReply *grp = g->element[0];

		for (size_t i = 0; i + 1 < grp->elements; i += 2)
			if (strcmp(grp->element[i]->str, "last-delivered-id") == 0)
				ok = strcmp(grp->element[i + 1]->str, last->element[0]->element[0]->str) == 0;
	}
	freeReplyObject(last);
	freeReplyObject(g);
	return ok;
}

/*
 * settle - run the loop until every event was read and acknowledged and
 * the log holds want (NULL: anything), or fail after 15 s.
 */
static void
settle(struct rt *r, const char *want)
{
	uint64_t end = uv_hrtime() + 15000000000ULL;

	while (uv_hrtime() < end) {
		uv_run(&r->t.loop, UV_RUN_ONCE);
		drain_log(r);
		if (all_read(r) && pending(r) == 0 && (want == NULL || strstr(r->log, want) != NULL))
			return;
	}
	ck_abort_msg("not settled (pending %lld); want \"%s\"; log:\n%s", pending(r),
	    want ? want : "", r->log);
}

struct enq {
	bool done;
	int status;
	char id[QID_SIZE];
};

static void
on_enq(void *arg, int status, const char *id)
{
	struct enq *e = arg;

	e->done = true;
	e->status = status;
	if (status == 0)
		memcpy(e->id, id, QID_SIZE);
}

/* enqueue - one recipient with NOTIFY bits, user as given. */
static void
enqueue(struct rt *r, const char *user, unsigned notify, char id[QID_SIZE])
{
	struct envelope env;
	struct enq e = { 0 };
	size_t hlen = rfc5322_head_len(MSG, strlen(MSG));

	envelope_init(&env);
	envelope_set(&env.sender, "orders@shop.example");
	envelope_set(&env.user, user);
	envelope_set(&env.client, "127.0.0.1");
	envelope_set(&env.helo, "web1.example");
	ck_assert_int_eq(envelope_add_rcpt(&env, "a@one.example", NULL, notify), 0);
	ck_assert_int_eq(queue_enqueue(r->t.q, &env, MSG, hlen, MSG + hlen, strlen(MSG) - hlen,
	    on_enq, &e), 0);
	envelope_free(&env);
	qt_wait(&r->t, &e.done);
	ck_assert_int_eq(e.status, 0);
	memcpy(id, e.id, QID_SIZE);
}

/* outcome - claim the one job and complete it with st. */
static void
outcome(struct rt *r, enum rcpt_state st, const char *reply)
{
	struct queue_job **jobs;
	size_t n;

	jobs = qt_claim(&r->t, 10, &n);
	ck_assert_uint_eq(n, 1);
	queue_job_set_mta(jobs[0], "mx.one.example[192.0.2.1]");
	ck_assert_int_eq(queue_job_set(jobs[0], 0, st, reply), 0);
	ck_assert_int_eq(qt_complete(&r->t, jobs[0]), 0);
	qt_free_jobs(jobs, n);
}

START_TEST(which_outcomes_report)
{
	struct rt r;
	char id[QID_SIZE], want[200];

	rt_open(&r);
	enqueue(&r, "shop", 0, id);
	outcome(&r, RCPT_BOUNCED, "550 5.1.1 no such user");
	snprintf(want, sizeof want, "event=report_stored id=%s user=shop rcpts=1 action=failed uid=1", id);
	settle(&r, want);
	ck_assert_int_eq(inbox(&r, "shop"), 1);

	enqueue(&r, "shop", NOTIFY_NEVER, id);
	outcome(&r, RCPT_BOUNCED, "550 5.1.1 no such user");
	enqueue(&r, "shop", 0, id);
	outcome(&r, RCPT_DELIVERED, "250 2.0.0 ok");
	enqueue(&r, "shop", NOTIFY_SUCCESS | NOTIFY_FAILURE, id);
	outcome(&r, RCPT_DELIVERED, "250 2.0.0 ok");
	snprintf(want, sizeof want, "event=report_stored id=%s user=shop rcpts=1 action=delivered", id);
	settle(&r, want);
	ck_assert_int_eq(inbox(&r, "shop"), 2);

	/* Deferred past delay_warning (1 ms): one warning, however often deferred. */
	enqueue(&r, "shop", 0, id);
	redis_test_sleep(&r.t.loop, 20);    /* past arrival + 1 ms, whatever the machine's speed */
	outcome(&r, RCPT_DEFERRED, "451 4.7.1 greylisted");
	snprintf(want, sizeof want, "event=report_stored id=%s user=shop rcpts=1 action=delayed", id);
	settle(&r, want);
	ck_assert_int_eq(inbox(&r, "shop"), 3);
	{
		/* Due again after the retry schedule: make it due now. */
		uint64_t n = 0;

		ck_assert_int_eq(qt_retry(&r.t, id, &n), 0);
	}
	outcome(&r, RCPT_DEFERRED, "451 4.7.1 greylisted again");
	settle(&r, NULL);
	ck_assert_int_eq(inbox(&r, "shop"), 3);
	snprintf(want, sizeof want, "id=%s user=shop rcpts=1 action=delayed", id);
	ck_assert_ptr_eq(strstr(strstr(r.log, want) + 1, want), NULL);
	rt_close(&r);
}
END_TEST

START_TEST(needless_events_acknowledged)
{
	struct rt r;
	char id[QID_SIZE];
	redisReply *x;

	rt_open(&r);
	/* A message without a user, and no trusted_user. */
	enqueue(&r, "", 0, id);
	outcome(&r, RCPT_BOUNCED, "550 5.1.1 no such user");
	settle(&r, "reason=no_user");
	/* An event of a message that is gone. */
	x = redis_test_cmd(r.t.sync, "XADD %s * id 0000000000000000 domain one.example rcpt a@one.example "
	    "state bounced attempts 1 reply x orcpt %s notify 0 mta %s stream t", qt_key(&r.t, "events"),
	    "", "");
	freeReplyObject(x);
	settle(&r, "reason=message_gone");
	/* An unreadable event, and an asynchronous return's event. */
	x = redis_test_cmd(r.t.sync, "XADD %s * garbage yes", qt_key(&r.t, "events"));
	freeReplyObject(x);
	x = redis_test_cmd(r.t.sync, "XADD %s * id %s domain one.example rcpt a@one.example "
	    "state bounced attempts 1 reply x orcpt %s notify 0 mta %s stream t returned 1",
	    qt_key(&r.t, "events"), id, "", "");
	freeReplyObject(x);
	settle(&r, "event=event_unreadable");
	ck_assert_int_eq(inbox(&r, "shop"), 0);
	ck_assert(strstr(r.log, "event=report_stored") == NULL);
	rt_close(&r);
}
END_TEST

START_TEST(event_handled_again_makes_no_second_report)
{
	struct rt r;
	char id[QID_SIZE], want[200], eid[64];
	redisReply *x;

	rt_open(&r);
	enqueue(&r, "shop", 0, id);
	outcome(&r, RCPT_BOUNCED, "550 5.1.1 no such user");
	snprintf(want, sizeof want, "event=report_stored id=%s", id);
	settle(&r, want);
	ck_assert_int_eq(inbox(&r, "shop"), 1);
	/* As if a consumer had stored the report and died before XACK. */
	x = redis_test_cmd(r.t.sync, "XRANGE %s - + COUNT 1", qt_key(&r.t, "events"));
	ck_assert(x->type == REDIS_REPLY_ARRAY && x->elements == 1);
	snprintf(eid, sizeof eid, "%s", x->element[0]->element[0]->str);
	freeReplyObject(x);
	x = redis_test_cmd(r.t.sync, "XCLAIM %s reports dead 0 %s IDLE 100000 FORCE",
	    qt_key(&r.t, "events"), eid);
	freeReplyObject(x);
	ck_assert_int_eq(pending(&r), 1);
	snprintf(want, sizeof want, "event=report_duplicate id=%s user=shop action=failed uid=1", id);
	settle(&r, want);
	ck_assert(strstr(r.log, "event=events_claimed") != NULL);
	ck_assert_int_eq(inbox(&r, "shop"), 1);
	rt_close(&r);
}
END_TEST

Suite *
report_suite(void)
{
	Suite *s = suite_create("report");
	TCase *tc = tcase_create("reporter");

	tcase_add_checked_fixture(tc, unit_pool_fresh, NULL);
	tcase_add_checked_fixture(tc, logcap_setup, logcap_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, which_outcomes_report);
	tcase_add_test(tc, needless_events_acknowledged);
	tcase_add_test(tc, event_handled_again_makes_no_second_report);
	suite_add_tcase(s, tc);
	return s;
}
