/*
 * test_queue_events - what the reporter reads of the queue, against a
 * real redis-server ($KURIER_TEST_REDIS): outcome events through a
 * consumer group (each once, pending until acknowledged, claimed from a
 * consumer that held them too long), a message read with and without
 * its body, and the body a RET=FULL message keeps after it is done until
 * queue_drop_body.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/rfc5322.h"
#include "core/xmalloc.h"
#include "tests/queue/qtest.h"
#include "tests/redis_test.h"
#include "tests/suites.h"

#define MSG "From: Shop <orders@shop.example>\r\nTo: a@one.example\r\n" \
	"Subject: Your order\r\n\r\nThanks for your order.\r\nBODY-LINE\r\n"

struct got_events {
	bool done;
	int status;
	size_t n;
	struct queue_event ev[16];   /* strings copied */
};

static void
on_events(void *arg, int status, struct queue_event *ev, size_t n)
{
	struct got_events *g = arg;

	g->done = true;
	g->status = status;
	g->n = n;
	for (size_t i = 0; i < n && i < 16; i++) {
		g->ev[i] = ev[i];
		g->ev[i].domain = xstrdup(ev[i].domain);
		g->ev[i].rcpt = xstrdup(ev[i].rcpt);
		g->ev[i].reply = xstrdup(ev[i].reply);
		g->ev[i].orcpt = xstrdup(ev[i].orcpt);
		g->ev[i].mta = xstrdup(ev[i].mta);
	}
}

static void
got_free(struct got_events *g)
{
	for (size_t i = 0; i < g->n && i < 16; i++) {
		free(g->ev[i].domain);
		free(g->ev[i].rcpt);
		free(g->ev[i].reply);
		free(g->ev[i].orcpt);
		free(g->ev[i].mta);
	}
	memset(g, 0, sizeof *g);
}

static void
read_events(struct qt *t, const char *consumer, uint64_t idle, struct got_events *g)
{
	memset(g, 0, sizeof *g);
	ck_assert_int_eq(queue_events_read(t->q, "reports", consumer, 16, idle, 600000, on_events, g), 0);
	qt_wait(t, &g->done);
	ck_assert_int_eq(g->status, 0);
}

struct status {
	bool done;
	int status;
};

static void
on_status(void *arg, int status)
{
	struct status *s = arg;

	s->done = true;
	s->status = status;
}

static long long
pending(struct qt *t)
{
	redisReply *r = redis_test_cmd(t->sync, "XPENDING %s reports", qt_key(t, "events"));
	long long n = r->type == REDIS_REPLY_ARRAY && r->elements > 0 ? r->element[0]->integer : -1;

	freeReplyObject(r);
	return n;
}

/* outcomes - enqueue one message to three recipients, bounce one, deliver two. */
static void
outcomes(struct qt *t, char id[QID_SIZE])
{
	static const char *const rcpts[] = { "a@one.example", "b@one.example", "c@one.example" };
	struct queue_job **jobs;
	size_t n;

	ck_assert_int_eq(qt_enqueue(t, STREAM_TRANSACTIONAL, "orders@shop.example", rcpts, 3, MSG, id), 0);
	jobs = qt_claim(t, 10, &n);
	ck_assert_uint_eq(n, 1);
	queue_job_set_mta(jobs[0], "mx.one.example[192.0.2.1]");
	ck_assert_int_eq(queue_job_set(jobs[0], 0, RCPT_BOUNCED, "550 5.1.1 no such user"), 0);
	ck_assert_int_eq(queue_job_set(jobs[0], 1, RCPT_DELIVERED, "250 2.0.0 ok"), 0);
	ck_assert_int_eq(queue_job_set(jobs[0], 2, RCPT_DELIVERED, "250 2.0.0 ok"), 0);
	ck_assert_int_eq(qt_complete(t, jobs[0]), 0);
	qt_free_jobs(jobs, n);
}

START_TEST(events_once_each)
{
	struct qt t;
	struct got_events g;
	struct status s = { 0 };
	const char *eids[3];
	char id[QID_SIZE];

	qt_open(&t, NULL);
	outcomes(&t, id);
	read_events(&t, "node1:1", 60000, &g);
	ck_assert_uint_eq(g.n, 3);
	ck_assert_str_eq(g.ev[0].id, id);
	ck_assert_str_eq(g.ev[0].rcpt, "a@one.example");
	ck_assert_str_eq(g.ev[0].domain, "one.example");
	ck_assert_int_eq(g.ev[0].state, RCPT_BOUNCED);
	ck_assert_str_eq(g.ev[0].reply, "550 5.1.1 no such user");
	ck_assert_str_eq(g.ev[0].mta, "mx.one.example[192.0.2.1]");
	ck_assert_uint_eq(g.ev[0].attempts, 1);
	ck_assert_uint_eq(g.ev[0].notify, 0);
	ck_assert(!g.ev[0].claimed && !g.ev[0].bad && !g.ev[0].returned);
	ck_assert_uint_gt(g.ev[0].ms, 0);
	ck_assert_int_eq(g.ev[1].state, RCPT_DELIVERED);
	ck_assert_int_eq(g.ev[2].state, RCPT_DELIVERED);
	ck_assert_int_eq(pending(&t), 3);

	/* Another consumer gets none of them while they are fresh. */
	{
		struct got_events g2;

		read_events(&t, "node2:1", 60000, &g2);
		ck_assert_uint_eq(g2.n, 0);
		got_free(&g2);
	}
	for (int i = 0; i < 3; i++)
		eids[i] = g.ev[i].eid;
	ck_assert_int_eq(queue_events_ack(t.q, "reports", eids, 3, on_status, &s), 0);
	qt_wait(&t, &s.done);
	ck_assert_int_eq(s.status, 0);
	ck_assert_int_eq(pending(&t), 0);
	/* Acknowledged: nobody gets them again, not even by claiming. */
	{
		struct got_events g3;

		read_events(&t, "node3:1", 0, &g3);
		ck_assert_uint_eq(g3.n, 0);
		got_free(&g3);
	}
	got_free(&g);
	qt_close(&t);
}
END_TEST

START_TEST(events_claimed_from_a_dead_consumer)
{
	struct qt t;
	struct got_events g, g2;
	char id[QID_SIZE];

	qt_open(&t, NULL);
	outcomes(&t, id);
	read_events(&t, "dead:1", 60000, &g);
	ck_assert_uint_eq(g.n, 3);
	/* Held longer than the idle time (0 here): the next reader takes them over. */
	read_events(&t, "live:1", 0, &g2);
	ck_assert_uint_eq(g2.n, 3);
	for (size_t i = 0; i < 3; i++) {
		ck_assert(g2.ev[i].claimed);
		ck_assert_str_eq(g2.ev[i].eid, g.ev[i].eid);
	}
	ck_assert_int_eq(pending(&t), 3);
	got_free(&g);
	got_free(&g2);
	qt_close(&t);
}
END_TEST

struct got_msg {
	bool done;
	int status;
	bool exists, is_done;
	char *head, *body;
	enum dsn_ret ret;
	char user[64];
};

static void
on_msg(void *arg, int status, const struct queue_msg *m)
{
	struct got_msg *g = arg;

	g->done = true;
	g->status = status;
	g->exists = m->exists;
	g->is_done = m->done;
	g->head = m->head ? xstrdup(m->head) : NULL;
	g->body = m->body ? xstrdup(m->body) : NULL;
	g->ret = m->env.ret;
	if (m->env.user != NULL)
		snprintf(g->user, sizeof g->user, "%s", m->env.user);
}

static void
read_msg(struct qt *t, const char *id, bool body, struct got_msg *g)
{
	free(g->head);
	free(g->body);
	memset(g, 0, sizeof *g);
	ck_assert_int_eq(queue_msg_read(t->q, id, body, on_msg, g), 0);
	qt_wait(t, &g->done);
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

/* enqueue_ret - one recipient, RET as given. */
static void
enqueue_ret(struct qt *t, enum dsn_ret ret, char id[QID_SIZE])
{
	struct envelope env;
	struct enq e = { 0 };
	size_t hlen = rfc5322_head_len(MSG, strlen(MSG));

	envelope_init(&env);
	envelope_set(&env.sender, "orders@shop.example");
	envelope_set(&env.user, "shop");
	envelope_set(&env.client, "127.0.0.1");
	envelope_set(&env.helo, "web1.example");
	env.ret = ret;
	ck_assert_int_eq(envelope_add_rcpt(&env, "a@one.example", NULL, NOTIFY_FAILURE), 0);
	ck_assert_int_eq(queue_enqueue(t->q, &env, MSG, hlen, MSG + hlen, strlen(MSG) - hlen, on_enq, &e), 0);
	envelope_free(&env);
	qt_wait(t, &e.done);
	ck_assert_int_eq(e.status, 0);
	memcpy(id, e.id, QID_SIZE);
}

static void
bounce_all(struct qt *t)
{
	struct queue_job **jobs;
	size_t n;

	jobs = qt_claim(t, 10, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(queue_job_set(jobs[0], 0, RCPT_BOUNCED, "550 5.1.1 no"), 0);
	ck_assert_int_eq(qt_complete(t, jobs[0]), 0);
	qt_free_jobs(jobs, n);
}

START_TEST(ret_full_keeps_the_body_until_dropped)
{
	struct qt t;
	struct got_msg g = { 0 };
	struct status s = { 0 };
	char full[QID_SIZE], hdrs[QID_SIZE];

	qt_open(&t, NULL);
	enqueue_ret(&t, RET_FULL, full);
	/* In the queue: the body is there, with or without RET. */
	read_msg(&t, full, true, &g);
	ck_assert_int_eq(g.status, 0);
	ck_assert(g.exists && !g.is_done);
	ck_assert_int_eq(g.ret, RET_FULL);
	ck_assert_str_eq(g.user, "shop");
	ck_assert(strstr(g.head, "Subject: Your order\r\n\r\n") != NULL);
	ck_assert(strstr(g.body, "BODY-LINE") != NULL);
	/* A drop while queued does nothing: the workers need it. */
	ck_assert_int_eq(queue_drop_body(t.q, full, on_status, &s), 0);
	qt_wait(&t, &s.done);
	ck_assert_int_eq(s.status, 0);
	read_msg(&t, full, false, &g);
	ck_assert_ptr_null(g.body);
	bounce_all(&t);
	/* Done, RET=FULL: the body stays for the report. */
	read_msg(&t, full, true, &g);
	ck_assert(g.exists && g.is_done);
	ck_assert_ptr_nonnull(g.body);
	ck_assert(strstr(g.body, "BODY-LINE") != NULL);
	memset(&s, 0, sizeof s);
	ck_assert_int_eq(queue_drop_body(t.q, full, on_status, &s), 0);
	qt_wait(&t, &s.done);
	ck_assert_int_eq(s.status, 0);
	read_msg(&t, full, true, &g);
	ck_assert(g.exists && g.is_done);
	ck_assert_ptr_null(g.body);
	ck_assert_ptr_nonnull(g.head);

	/* Without RET=FULL the body goes when the message is done. */
	enqueue_ret(&t, RET_HDRS, hdrs);
	bounce_all(&t);
	read_msg(&t, hdrs, true, &g);
	ck_assert(g.exists && g.is_done);
	ck_assert_ptr_null(g.body);

	/* Unknown: not there, no error. */
	read_msg(&t, "0000000000000000", true, &g);
	ck_assert_int_eq(g.status, 0);
	ck_assert(!g.exists);
	ck_assert_int_eq(queue_msg_read(t.q, "short", true, on_msg, &g), -EINVAL);
	free(g.head);
	free(g.body);
	qt_close(&t);
}
END_TEST

Suite *
queue_events_suite(void)
{
	Suite *s = suite_create("queue_events");
	TCase *tc = tcase_create("events");

	tcase_add_checked_fixture(tc, unit_pool_fresh, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, events_once_each);
	tcase_add_test(tc, events_claimed_from_a_dead_consumer);
	tcase_add_test(tc, ret_full_keeps_the_body_until_dropped);
	suite_add_tcase(s, tc);
	return s;
}
