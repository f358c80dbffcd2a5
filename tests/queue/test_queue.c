/*
 * test_queue - the queue's contract, against a real redis-server
 * ($KURIER_TEST_REDIS), with a fake clock.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/rfc5322.h"
#include "core/str.h"
#include "tests/queue/qtest.h"
#include "tests/redis_test.h"
#include "tests/suites.h"

#define MSG "From: Shop <orders@shop.example>\r\nTo: a@one.example\r\n" \
	"Subject: Your order\r\n\r\nThanks for your order.\r\n"
#define MINUTE (60000ULL)

static const char *const three[] = {
	"a@one.example", "b@One.Example", "c@two.example",
};

static void on_closed(void *arg);

static struct queue_job *
job_for(struct queue_job **jobs, size_t n, const char *domain)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(jobs[i]->domain, domain) == 0)
			return jobs[i];
	ck_abort_msg("no job for %s", domain);
	return NULL;
}

static void
set_all(struct queue_job *job, enum rcpt_state st, const char *reply)
{
	for (size_t i = 0; i < job->st.n; i++)
		ck_assert_int_eq(queue_job_set(job, i, st, reply), 0);
}

static long long
xlen_events(struct qt *t)
{
	redisReply *r = redis_test_cmd(t->sync, "XLEN %s", qt_key(t, "events"));
	long long n = r->integer;

	freeReplyObject(r);
	return n;
}

START_TEST(enqueue_claim_deliver)
{
	struct qt t;
	struct queue_job **jobs;
	struct queue_info info;
	struct queue_stats st;
	char id[QID_SIZE];
	size_t n;
	uint64_t completed_ns = 0;

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "orders@shop.example", three, 3, MSG, id), 0);
	ck_assert(qid_valid(id));

	/* Stored once, one job per domain, recipients grouped by domain. */
	ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
	ck_assert(info.exists && !info.corrupt);
	ck_assert_str_eq(info.state, "active");
	ck_assert_uint_eq(info.env.nrcpt, 3);
	ck_assert_str_eq(info.env.sender, "orders@shop.example");
	ck_assert_str_eq(info.env.user, "shop");
	ck_assert_uint_eq(info.env.size, strlen(MSG));
	ck_assert_uint_eq(info.head_len + info.body_len, strlen(MSG));
	ck_assert_uint_eq(info.njobs, 2);
	ck_assert(info.jobs[0].queued && !info.jobs[0].leased);
	queue_info_free(&info);

	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 2);
	{
		struct queue_job *one = job_for(jobs, n, "one.example");
		struct queue_job *two = job_for(jobs, n, "two.example");

		ck_assert_uint_eq(one->st.n, 2);
		ck_assert_uint_eq(two->st.n, 1);
		ck_assert_str_eq(one->env.rcpt[one->st.r[1].idx].addr, "b@One.Example");
		/* The message comes back byte for byte. */
		ck_assert_uint_eq(one->msg_len, strlen(MSG));
		ck_assert_mem_eq(one->msg, MSG, strlen(MSG));
		ck_assert_uint_eq(one->head_len, strstr(MSG, "\r\n\r\n") + 4 - MSG);
		ck_assert(!queue_job_expired(t.q, one));
		/* Claimed jobs are not handed out twice. */
		{
			size_t m;
			struct queue_job **again = qt_claim(&t, 10, &m);

			ck_assert_uint_eq(m, 0);
			qt_free_jobs(again, m);
		}
		set_all(one, RCPT_DELIVERED, "250 2.0.0 Ok: queued as X");
		ck_assert_int_eq(qt_complete(&t, one), 0);
		ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
		ck_assert_str_eq(info.state, "active");
		queue_info_free(&info);
		set_all(two, RCPT_DELIVERED, "250 ok");
		completed_ns = uv_hrtime();
		ck_assert_int_eq(qt_complete(&t, two), 0);
	}
	qt_free_jobs(jobs, n);

	/* Done: out of the queue, readable without the body, with a TTL. */
	ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
	ck_assert_str_eq(info.state, "done");
	ck_assert_uint_eq(info.body_len, 0);
	ck_assert_uint_gt(info.head_len, 0);
	ck_assert_uint_eq(info.done_ms, t.now);
	ck_assert_uint_eq(info.jobs[0].st.r[0].state, RCPT_DELIVERED);
	ck_assert_uint_eq(info.jobs[0].st.r[0].attempts, 1);
	ck_assert_str_eq(info.jobs[0].st.r[0].reply, "250 2.0.0 Ok: queued as X");
	queue_info_free(&info);
	{
		char key[128];
		redisReply *r;

		snprintf(key, sizeof key, "m:%s", id);
		r = redis_test_cmd(t.sync, "PTTL %s", qt_key(&t, key));
		/* The retention, less at most the time since the completion was sent. */
		ck_assert_int_ge(r->integer, (long long)t.cfg.queue.retention_ms -
		    (long long)((uv_hrtime() - completed_ns) / 1000000) - 1);
		ck_assert_int_le(r->integer, (long long)t.cfg.queue.retention_ms);
		freeReplyObject(r);
	}
	ck_assert_int_eq(qt_stats(&t, &st), 0);
	ck_assert_uint_eq(st.active, 0);
	ck_assert_uint_eq(st.done, 1);
	ck_assert_uint_eq(st.enqueued, 1);
	ck_assert_uint_eq(st.recipients, 3);
	ck_assert_uint_eq(st.delivered, 3);
	ck_assert_int_eq(xlen_events(&t), 3);
	qt_close(&t);
}
END_TEST

/* The state of the recipient at envelope index idx, from a fresh fetch. */
static enum rcpt_state
rcpt_state_of(struct qt *t, const char *id, uint32_t idx, char *reply, size_t replysz)
{
	struct queue_info info;
	enum rcpt_state st = RCPT_NSTATES;

	ck_assert_int_eq(qt_fetch(t, id, &info), 0);
	ck_assert(info.exists);
	for (size_t j = 0; j < info.njobs; j++)
		for (size_t k = 0; k < info.jobs[j].st.n; k++)
			if (info.jobs[j].st.r[k].idx == idx) {
				st = info.jobs[j].st.r[k].state;
				if (reply != NULL)
					str_copy(reply, info.jobs[j].st.r[k].reply ? info.jobs[j].st.r[k].reply : "",
					    replysz);
			}
	queue_info_free(&info);
	return st;
}

static long long
stat_of(struct qt *t, const char *name)
{
	redisReply *r = redis_test_cmd(t->sync, "HGET %s %s", qt_key(t, "stats"), name);
	long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;

	freeReplyObject(r);
	return v;
}

/*
 * A return after the delivery: the delivered recipient becomes bounced,
 * counted, with an event marked returned; a repeated return changes
 * nothing more; the other recipient keeps its state.
 */
START_TEST(mark_bounced_after_delivery)
{
	struct qt t;
	struct queue_job **jobs;
	char id[QID_SIZE], reply[256];
	size_t n;
	redisReply *r;

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", three, 3, MSG, id), 0);
	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		set_all(jobs[i], RCPT_DELIVERED, "250 2.0.0 ok");
		ck_assert_int_eq(qt_complete(&t, jobs[i]), 0);
	}
	qt_free_jobs(jobs, n);
	ck_assert_int_eq(xlen_events(&t), 3);
	ck_assert_int_eq(rcpt_state_of(&t, id, 1, NULL, 0), RCPT_DELIVERED);

	ck_assert_int_eq(qt_mark_bounced(&t, id, 1, NULL, "returned: 5.1.1 user unknown"), 0);
	ck_assert_int_eq(rcpt_state_of(&t, id, 1, reply, sizeof reply), RCPT_BOUNCED);
	ck_assert_str_eq(reply, "returned: 5.1.1 user unknown");
	ck_assert_int_eq(rcpt_state_of(&t, id, 0, NULL, 0), RCPT_DELIVERED);
	ck_assert_int_eq(rcpt_state_of(&t, id, 2, NULL, 0), RCPT_DELIVERED);
	ck_assert_int_eq(stat_of(&t, "bounced"), 1);
	ck_assert_int_eq(xlen_events(&t), 4);
	r = redis_test_cmd(t.sync, "XREVRANGE %s + - COUNT 1", qt_key(&t, "events"));
	ck_assert_uint_eq(r->elements, 1);
	{
		redisReply *f = r->element[0]->element[1];
		int seen = 0;

		for (size_t i = 0; i + 1 < f->elements; i += 2) {
			const char *k = f->element[i]->str, *v = f->element[i + 1]->str;

			if (strcmp(k, "id") == 0 && strcmp(v, id) == 0)
				seen |= 1;
			if (strcmp(k, "rcpt") == 0 && strcmp(v, "b@One.Example") == 0)
				seen |= 2;
			if (strcmp(k, "state") == 0 && strcmp(v, "bounced") == 0)
				seen |= 4;
			if (strcmp(k, "returned") == 0 && strcmp(v, "1") == 0)
				seen |= 8;
			if (strcmp(k, "domain") == 0 && strcmp(v, "one.example") == 0)
				seen |= 16;
		}
		ck_assert_int_eq(seen, 31);
	}
	freeReplyObject(r);

	/* The same return again: idempotent. */
	ck_assert_int_eq(qt_mark_bounced(&t, id, 1, NULL, "returned again"), -EALREADY);
	ck_assert_int_eq(stat_of(&t, "bounced"), 1);
	ck_assert_int_eq(xlen_events(&t), 4);
	ck_assert_int_eq(rcpt_state_of(&t, id, 1, reply, sizeof reply), RCPT_BOUNCED);
	ck_assert_str_eq(reply, "returned: 5.1.1 user unknown");
	qt_close(&t);
}
END_TEST

/* A job token names the job's first recipient; the address picks the one. */
START_TEST(mark_bounced_by_address_in_job)
{
	struct qt t;
	struct queue_job **jobs;
	char id[QID_SIZE];
	size_t n;

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", three, 3, MSG, id), 0);
	jobs = qt_claim(&t, 10, &n);
	for (size_t i = 0; i < n; i++) {
		set_all(jobs[i], RCPT_DELIVERED, "250 ok");
		ck_assert_int_eq(qt_complete(&t, jobs[i]), 0);
	}
	qt_free_jobs(jobs, n);
	ck_assert_int_eq(qt_mark_bounced(&t, id, 0, "B@one.example", "5.1.1"), 0);
	ck_assert_int_eq(rcpt_state_of(&t, id, 0, NULL, 0), RCPT_DELIVERED);
	ck_assert_int_eq(rcpt_state_of(&t, id, 1, NULL, 0), RCPT_BOUNCED);
	/* Not a recipient of that domain, or of the message: unknown. */
	ck_assert_int_eq(qt_mark_bounced(&t, id, 0, "c@two.example", "5.1.1"), -ENOENT);
	ck_assert_int_eq(qt_mark_bounced(&t, id, 7, NULL, "5.1.1"), -ENOENT);
	ck_assert_int_eq(qt_mark_bounced(&t, "0000000000000000", 0, NULL, "5.1.1"), -ENOENT);
	ck_assert_int_eq(qt_mark_bounced(&t, "not a queue id", 0, NULL, "5.1.1"), -EINVAL);
	ck_assert_int_eq(stat_of(&t, "bounced"), 1);
	qt_close(&t);
}
END_TEST

/*
 * A leased job is not touched (its completion would overwrite the mark);
 * a pending recipient marked bounced finishes its job and, being the
 * last, the message.
 */
START_TEST(mark_bounced_leased_then_pending)
{
	struct qt t;
	struct queue_job **jobs;
	struct queue_info info;
	char id[QID_SIZE];
	size_t n;
	const char *const one[] = { "x@one.example" };

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", one, 1, MSG, id), 0);
	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(qt_mark_bounced(&t, id, 0, NULL, "5.1.1"), -EBUSY);
	set_all(jobs[0], RCPT_DEFERRED, "451 4.3.0 later");
	ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
	qt_free_jobs(jobs, n);
	ck_assert_int_eq(rcpt_state_of(&t, id, 0, NULL, 0), RCPT_DEFERRED);
	ck_assert_int_eq(qt_mark_bounced(&t, id, 0, NULL, "5.1.1 returned"), 0);
	ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
	ck_assert_str_eq(info.state, "done");
	ck_assert(!info.jobs[0].queued);
	ck_assert_int_eq(info.jobs[0].st.r[0].state, RCPT_BOUNCED);
	queue_info_free(&info);
	/* Nothing is left to claim. */
	t.now += 24 * 60 * MINUTE;
	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 0);
	qt_free_jobs(jobs, n);
	qt_close(&t);
}
END_TEST

START_TEST(events_carry_outcome)
{
	struct qt t;
	struct queue_job **jobs;
	char id[QID_SIZE];
	size_t n;
	redisReply *r;
	const char *const rc[] = { "x@one.example" };

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, id), 0);
	jobs = qt_claim(&t, 1, &n);
	ck_assert_uint_eq(n, 1);
	set_all(jobs[0], RCPT_BOUNCED, "550 5.1.1 <x@one.example>: no such user");
	queue_job_set_mta(jobs[0], "mx.one.example[192.0.2.7]");
	ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
	qt_free_jobs(jobs, n);
	r = redis_test_cmd(t.sync, "XRANGE %s - +", qt_key(&t, "events"));
	ck_assert_uint_eq(r->elements, 1);
	{
		redisReply *f = r->element[0]->element[1];
		bool seen_state = false, seen_reply = false, seen_id = false, seen_mta = false;

		for (size_t i = 0; i + 1 < f->elements; i += 2) {
			if (strcmp(f->element[i]->str, "state") == 0) {
				ck_assert_str_eq(f->element[i + 1]->str, "bounced");
				seen_state = true;
			} else if (strcmp(f->element[i]->str, "reply") == 0) {
				ck_assert_str_eq(f->element[i + 1]->str, "550 5.1.1 <x@one.example>: no such user");
				seen_reply = true;
			} else if (strcmp(f->element[i]->str, "id") == 0) {
				ck_assert_str_eq(f->element[i + 1]->str, id);
				seen_id = true;
			} else if (strcmp(f->element[i]->str, "mta") == 0) {
				ck_assert_str_eq(f->element[i + 1]->str, "mx.one.example[192.0.2.7]");
				seen_mta = true;
			}
		}
		ck_assert(seen_state && seen_reply && seen_id && seen_mta);
	}
	freeReplyObject(r);
	qt_close(&t);
}
END_TEST

/*
 * Signatures kept by the first job come with every later claim of the
 * message, the first kept stay, and only a lease holder may keep them.
 */
START_TEST(signatures_kept_with_the_message)
{
	struct qt t;
	struct queue_job **jobs, **again;
	char id[QID_SIZE];
	size_t n, n2;
	redisReply *r;
	const char *const rc[] = { "a@one.example", "b@two.example" };

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 2, MSG, id), 0);
	jobs = qt_claim(&t, 2, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_null(jobs[0]->sig);
	ck_assert_int_eq(qt_keep_sig(&t, jobs[0], "DKIM-Signature: one\r\n"), 0);
	/* The second job of the message signed at the same time: first wins. */
	ck_assert_int_eq(qt_keep_sig(&t, jobs[1], "DKIM-Signature: two\r\n"), 0);
	set_all(jobs[1], RCPT_DELIVERED, "250 ok");
	ck_assert_int_eq(qt_complete(&t, jobs[1]), 0);
	set_all(jobs[0], RCPT_DEFERRED, "451 4.3.0 later");
	ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
	/* No lease, no write. */
	ck_assert_int_eq(qt_keep_sig(&t, jobs[0], "DKIM-Signature: three\r\n"), -ESTALE);
	t.now += 24 * 3600 * 1000ULL;
	again = qt_claim(&t, 1, &n2);
	ck_assert_uint_eq(n2, 1);
	ck_assert_str_eq(again[0]->sig, "DKIM-Signature: one\r\n");
	ck_assert_uint_eq(again[0]->sig_len, strlen("DKIM-Signature: one\r\n"));
	set_all(again[0], RCPT_DELIVERED, "250 ok");
	ck_assert_int_eq(qt_complete(&t, again[0]), 0);
	/* Done: the signatures go with the body. */
	{
		char key[128];

		snprintf(key, sizeof key, "m:%s", id);
		r = redis_test_cmd(t.sync, "HEXISTS %s sig", qt_key(&t, key));
		ck_assert_int_eq(r->integer, 0);
		freeReplyObject(r);
	}
	qt_free_jobs(jobs, n);
	qt_free_jobs(again, n2);
	qt_close(&t);
}
END_TEST

START_TEST(deferred_then_delivered)
{
	struct qt t;
	struct queue_job **jobs;
	struct queue_info info;
	char id[QID_SIZE];
	size_t n;
	const char *const rc[] = { "x@one.example" };
	uint64_t t0;

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, id), 0);
	t0 = t.now;
	jobs = qt_claim(&t, 1, &n);
	ck_assert_uint_eq(n, 1);
	set_all(jobs[0], RCPT_DEFERRED, "451 4.3.0 try again later");
	t.rnd = 0; /* lowest jitter: 5m - 10% = 270 s */
	ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
	qt_free_jobs(jobs, n);

	ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
	ck_assert_uint_eq(info.jobs[0].st.r[0].state, RCPT_DEFERRED);
	ck_assert_uint_eq(info.jobs[0].st.r[0].next_ms, t0 + 270000);
	ck_assert_uint_eq(info.jobs[0].due_ms, t0 + 270000);
	ck_assert_str_eq(info.jobs[0].st.r[0].reply, "451 4.3.0 try again later");
	queue_info_free(&info);

	/* Not due before its time. */
	t.now = t0 + 269999;
	jobs = qt_claim(&t, 1, &n);
	ck_assert_uint_eq(n, 0);
	qt_free_jobs(jobs, n);
	t.now = t0 + 270000;
	jobs = qt_claim(&t, 1, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(jobs[0]->st.r[0].attempts, 1);
	ck_assert_uint_eq(jobs[0]->st.r[0].state, RCPT_DEFERRED);
	set_all(jobs[0], RCPT_DELIVERED, "250 ok");
	ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
	qt_free_jobs(jobs, n);

	ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
	ck_assert_str_eq(info.state, "done");
	ck_assert_uint_eq(info.jobs[0].st.r[0].attempts, 2);
	queue_info_free(&info);
	qt_close(&t);
}
END_TEST

START_TEST(retry_schedule_jitter_and_repeat)
{
	struct qt t;
	struct queue_job **jobs;
	char id[QID_SIZE];
	size_t n;
	const char *const rc[] = { "x@one.example" };
	/* Default schedule 5m,10m,30m,1h,2h,4h,8h, then 8h again. */
	static const uint64_t expect[] = { 5, 10, 30, 60, 120, 240, 480, 480, 480 };

	qt_open(&t, NULL);
	t.rnd = 0;
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, id), 0);
	for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++) {
		uint64_t before = t.now;
		struct queue_info info;

		jobs = qt_claim(&t, 1, &n);
		ck_assert_uint_eq(n, 1);
		set_all(jobs[0], RCPT_DEFERRED, "421 busy");
		ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
		qt_free_jobs(jobs, n);
		ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
		/* rnd 0 is the low end of the jitter: 90 % of the interval. */
		ck_assert_uint_eq(info.jobs[0].due_ms - before, expect[k] * MINUTE * 9 / 10);
		t.now = info.jobs[0].due_ms;
		queue_info_free(&info);
	}
	qt_close(&t);
}
END_TEST

static void
short_lifetime(struct config *cfg)
{
	cfg->deliver.retry_ms[0] = 10 * MINUTE;
	cfg->deliver.nretry = 1;
	cfg->deliver.lifetime_ms = 25 * MINUTE;
}

START_TEST(expired_after_lifetime)
{
	struct qt t;
	struct queue_job **jobs;
	struct queue_info info;
	char id[QID_SIZE];
	size_t n;
	const char *const rc[] = { "x@one.example" };
	uint64_t t0;
	struct queue_stats st;

	qt_open(&t, short_lifetime);
	t.rnd = 0x7fffffff;
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, id), 0);
	t0 = t.now;
	/* Attempts at 0, ~10m, ~20m; the next would pass 25m: clamped to 25m. */
	for (int k = 0; k < 3; k++) {
		jobs = qt_claim(&t, 1, &n);
		ck_assert_uint_eq(n, 1);
		ck_assert(!queue_job_expired(t.q, jobs[0]));
		set_all(jobs[0], RCPT_DEFERRED, "451 4.4.1 timeout");
		ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
		qt_free_jobs(jobs, n);
		ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
		ck_assert_str_eq(info.state, "active");
		t.now = info.jobs[0].due_ms;
		queue_info_free(&info);
	}
	ck_assert_uint_eq(t.now, t0 + 25 * MINUTE);
	jobs = qt_claim(&t, 1, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert(queue_job_expired(t.q, jobs[0]));
	/* A deferral at the deadline expires the recipient. */
	set_all(jobs[0], RCPT_DEFERRED, "451 4.4.1 timeout");
	ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
	qt_free_jobs(jobs, n);
	ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
	ck_assert_str_eq(info.state, "done");
	ck_assert_uint_eq(info.jobs[0].st.r[0].state, RCPT_EXPIRED);
	ck_assert_str_eq(info.jobs[0].st.r[0].reply, "451 4.4.1 timeout");
	queue_info_free(&info);
	ck_assert_int_eq(qt_stats(&t, &st), 0);
	ck_assert_uint_eq(st.expired, 1);
	ck_assert_uint_eq(st.deferred, 3);
	qt_close(&t);
}
END_TEST

START_TEST(partial_outcomes)
{
	struct qt t;
	struct queue_job **jobs;
	struct queue_info info;
	char id[QID_SIZE];
	size_t n;
	const char *const rc[] = { "a@one.example", "b@one.example", "c@one.example", "d@one.example" };

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 4, MSG, id), 0);
	jobs = qt_claim(&t, 1, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(jobs[0]->st.n, 4);
	ck_assert_int_eq(queue_job_set(jobs[0], 0, RCPT_DELIVERED, "250 ok"), 0);
	ck_assert_int_eq(queue_job_set(jobs[0], 1, RCPT_BOUNCED, "550 5.1.1 unknown"), 0);
	ck_assert_int_eq(queue_job_set(jobs[0], 2, RCPT_DEFERRED, "452 4.2.2 mailbox full"), 0);
	ck_assert_int_eq(queue_job_set(jobs[0], 3, RCPT_SUPPRESSED, "suppressed: hard bounce"), 0);
	ck_assert_int_eq(queue_job_set(jobs[0], 3, RCPT_QUEUED, NULL), -EINVAL);
	ck_assert_int_eq(queue_job_set(jobs[0], 4, RCPT_DELIVERED, NULL), -EINVAL);
	ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
	qt_free_jobs(jobs, n);

	ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
	ck_assert_str_eq(info.state, "active");
	ck_assert_uint_eq(info.jobs[0].st.r[0].state, RCPT_DELIVERED);
	ck_assert_uint_eq(info.jobs[0].st.r[1].state, RCPT_BOUNCED);
	ck_assert_uint_eq(info.jobs[0].st.r[2].state, RCPT_DEFERRED);
	ck_assert_uint_eq(info.jobs[0].st.r[3].state, RCPT_SUPPRESSED);
	ck_assert_uint_eq(info.jobs[0].st.r[3].attempts, 0);
	t.now = info.jobs[0].due_ms;
	queue_info_free(&info);

	/* Only the deferred one is still to do; final ones keep their state. */
	jobs = qt_claim(&t, 1, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(jobs[0]->st.r[0].state, RCPT_DELIVERED);
	ck_assert_int_eq(queue_job_set(jobs[0], 2, RCPT_DELIVERED, "250 ok"), 0);
	ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
	qt_free_jobs(jobs, n);
	ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
	ck_assert_str_eq(info.state, "done");
	ck_assert_uint_eq(info.jobs[0].st.r[0].attempts, 1);
	ck_assert_uint_eq(info.jobs[0].st.r[2].attempts, 2);
	queue_info_free(&info);
	ck_assert_int_eq(xlen_events(&t), 5);
	qt_close(&t);
}
END_TEST

START_TEST(untouched_recipients_come_back_now)
{
	struct qt t;
	struct queue_job **jobs;
	char id[QID_SIZE];
	size_t n;
	const char *const rc[] = { "a@one.example", "b@one.example" };

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 2, MSG, id), 0);
	jobs = qt_claim(&t, 1, &n);
	ck_assert_int_eq(queue_job_set(jobs[0], 0, RCPT_DELIVERED, "250 ok"), 0);
	ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
	qt_free_jobs(jobs, n);
	jobs = qt_claim(&t, 1, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(jobs[0]->st.r[1].state, RCPT_QUEUED);
	ck_assert_uint_eq(jobs[0]->st.r[1].attempts, 0);
	qt_free_jobs(jobs, n);
	qt_close(&t);
}
END_TEST

START_TEST(lease_expiry_after_worker_death)
{
	struct qt t;
	struct queue_job **dead, **jobs;
	struct queue_info info;
	char id[QID_SIZE];
	size_t n, m;
	const char *const rc[] = { "x@one.example" };

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, id), 0);
	dead = qt_claim(&t, 1, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
	ck_assert(info.jobs[0].leased && !info.jobs[0].queued);
	ck_assert_uint_eq(info.jobs[0].lease_until_ms, t.now + t.cfg.queue.lease_ms);
	queue_info_free(&info);

	/* The worker says nothing; one ms before the lease ends it still holds. */
	t.now += t.cfg.queue.lease_ms - 1;
	ck_assert_uint_eq(qt_reap(&t), 0);
	t.now += 1;
	ck_assert_uint_eq(qt_reap(&t), 1);
	jobs = qt_claim(&t, 1, &m);
	ck_assert_uint_eq(m, 1);
	ck_assert_str_eq(jobs[0]->id, id);
	ck_assert_str_ne(jobs[0]->token, dead[0]->token);

	/* The late worker cannot complete; the new one can. */
	set_all(dead[0], RCPT_DELIVERED, "250 ok");
	ck_assert_int_eq(qt_complete(&t, dead[0]), -ESTALE);
	ck_assert_int_eq(qt_renew(&t, dead[0]), -ESTALE);
	set_all(jobs[0], RCPT_DELIVERED, "250 ok");
	ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
	qt_free_jobs(dead, n);
	qt_free_jobs(jobs, m);
	ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
	ck_assert_str_eq(info.state, "done");
	ck_assert_uint_eq(info.jobs[0].st.r[0].attempts, 1);
	queue_info_free(&info);
	qt_close(&t);
}
END_TEST

START_TEST(claim_reaps_expired_leases)
{
	struct qt t;
	struct queue_job **dead, **jobs;
	size_t n, m;
	const char *const rc[] = { "x@one.example" };

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, NULL), 0);
	dead = qt_claim(&t, 1, &n);
	t.now += t.cfg.queue.lease_ms;
	/* No separate reaper ran: the claim itself returns the job. */
	jobs = qt_claim(&t, 1, &m);
	ck_assert_uint_eq(m, 1);
	qt_free_jobs(dead, n);
	qt_free_jobs(jobs, m);
	qt_close(&t);
}
END_TEST

START_TEST(renew_keeps_the_lease)
{
	struct qt t;
	struct queue_job **jobs, **other;
	size_t n, m;
	const char *const rc[] = { "x@one.example" };

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, NULL), 0);
	jobs = qt_claim(&t, 1, &n);
	t.now += t.cfg.queue.lease_ms - 1000;
	ck_assert_int_eq(qt_renew(&t, jobs[0]), 0);
	t.now += 2000;
	other = qt_claim(&t, 1, &m);
	ck_assert_uint_eq(m, 0);
	qt_free_jobs(other, m);
	set_all(jobs[0], RCPT_DELIVERED, "250 ok");
	ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
	qt_free_jobs(jobs, n);
	qt_close(&t);
}
END_TEST

START_TEST(release_without_attempt)
{
	struct qt t;
	struct queue_job **jobs;
	size_t n;
	const char *const rc[] = { "x@one.example" };

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, NULL), 0);
	jobs = qt_claim(&t, 1, &n);
	ck_assert_int_eq(queue_job_set(jobs[0], 0, RCPT_DELIVERED, "ignored"), 0);
	ck_assert_int_eq(qt_release(&t, jobs[0]), 0);
	qt_free_jobs(jobs, n);
	jobs = qt_claim(&t, 1, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(jobs[0]->st.r[0].state, RCPT_QUEUED);
	ck_assert_uint_eq(jobs[0]->st.r[0].attempts, 0);
	qt_free_jobs(jobs, n);
	qt_close(&t);
}
END_TEST

static void
cap5(struct config *cfg)
{
	cfg->deliver.per_destination = 5;
}

START_TEST(fairness_with_one_flooded_destination)
{
	struct qt t;
	struct queue_job **jobs;
	size_t n, others = 0, flood = 0;
	const size_t nflood = 100000;
	char dom[64];

	qt_open(&t, cap5);
	qt_enqueue_many(&t, STREAM_TRANSACTIONAL, "victim@flood.example", nflood);
	/* Others arrive later than every flooded message. */
	t.now += 1000;
	for (int i = 0; i < 8; i++) {
		char rc[64];
		const char *r[1] = { rc };

		snprintf(rc, sizeof rc, "user@d%d.example", i);
		ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", r, 1, MSG, NULL), 0);
	}
	jobs = qt_claim(&t, 20, &n);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(jobs[i]->domain, "flood.example") == 0)
			flood++;
		else
			others++;
	}
	/* Every other destination is served in the first claim, and the
	 * flooded one gets no more than its cap in flight. */
	ck_assert_uint_eq(others, 8);
	ck_assert_uint_le(flood, 5);
	ck_assert_uint_ge(flood, 1);
	qt_free_jobs(jobs, n);
	{
		struct queue_dest_stats d;

		ck_assert_int_eq(qt_dest(&t, "flood.example", &d), 0);
		ck_assert_uint_eq(d.inflight, flood);
		ck_assert_uint_eq(d.due, nflood - flood);
	}
	/* The cap holds on later claims too while those five are out. */
	t.now += 1;
	jobs = qt_claim(&t, 100, &n);
	ck_assert_uint_eq(n, 5 - flood);
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(jobs[i]->domain, "flood.example");
	{
		struct queue_job **more;
		size_t m;

		t.now += 1;
		more = qt_claim(&t, 100, &m);
		ck_assert_uint_eq(m, 0);
		qt_free_jobs(more, m);
		/* One completes: its slot is taken by the very next claim. */
		ck_assert_uint_gt(n, 0);
		set_all(jobs[0], RCPT_DELIVERED, "250 ok");
		ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
		t.now += 1;
		more = qt_claim(&t, 100, &m);
		ck_assert_uint_eq(m, 1);
		ck_assert_str_eq(more[0]->domain, "flood.example");
		qt_free_jobs(more, m);
	}
	qt_free_jobs(jobs, n);
	(void)dom;
	qt_close(&t);
}
END_TEST

START_TEST(rotation_between_due_destinations)
{
	struct qt t;
	struct queue_job **jobs;
	size_t n;
	int seen_a = 0, seen_b = 0;

	qt_open(&t, NULL);
	/* Both destinations have plenty due; claims of 2 alternate fairly. */
	qt_enqueue_many(&t, STREAM_TRANSACTIONAL, "x@a.example", 50);
	qt_enqueue_many(&t, STREAM_TRANSACTIONAL, "x@b.example", 50);
	for (int round = 0; round < 10; round++) {
		t.now += 1;
		jobs = qt_claim(&t, 1, &n);
		ck_assert_uint_eq(n, 1);
		if (strcmp(jobs[0]->domain, "a.example") == 0)
			seen_a++;
		else
			seen_b++;
		qt_free_jobs(jobs, n);
	}
	ck_assert_int_eq(seen_a, 5);
	ck_assert_int_eq(seen_b, 5);
	qt_close(&t);
}
END_TEST

START_TEST(transactional_before_broadcast)
{
	struct qt t;
	struct queue_job **jobs;
	size_t n;
	char id[QID_SIZE];
	const char *const rc[] = { "reset@one.example" };

	qt_open(&t, NULL);
	qt_enqueue_many(&t, STREAM_BROADCAST, "reader@news.example", 2000);
	t.now += 1000;
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, id), 0);
	jobs = qt_claim(&t, 1, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(jobs[0]->id, id);
	ck_assert_int_eq(jobs[0]->stream, STREAM_TRANSACTIONAL);
	qt_free_jobs(jobs, n);
	/* With the transactional work out, broadcast work flows. */
	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 10);
	ck_assert_int_eq(jobs[0]->stream, STREAM_BROADCAST);
	qt_free_jobs(jobs, n);
	qt_close(&t);
}
END_TEST

START_TEST(corrupt_record_is_quarantined)
{
	struct qt t;
	struct queue_job **jobs;
	struct queue_info info;
	struct queue_stats st;
	char bad[QID_SIZE], good[QID_SIZE], key[64];
	const char *const rb[] = { "x@one.example" };
	const char *const rg[] = { "y@one.example" };
	size_t n;

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rb, 1, MSG, bad), 0);
	t.now += 1;
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rg, 1, MSG, good), 0);
	snprintf(key, sizeof key, "m:%s", bad);
	/* A record cut short, as a partial write or a bad edit would leave it. */
	freeReplyObject(redis_test_cmd(t.sync, "HSET %s env %b", qt_key(&t, key), "E1i16:01ABC", (size_t)11));

	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(jobs[0]->id, good);
	qt_free_jobs(jobs, n);

	ck_assert_int_eq(qt_fetch(&t, bad, &info), 0);
	ck_assert(info.exists);
	ck_assert(info.corrupt);
	if (strcmp(info.state, "corrupt") != 0) {
		/* Tell apart "not quarantined yet" from "misread". */
		redisReply *now = redis_test_cmd(t.sync, "HGET %s state", qt_key(&t, key));

		ck_abort_msg("fetch saw state %s; Redis holds %s now", info.state,
		    now->str ? now->str : "(nil)");
	}
	ck_assert_str_eq(info.why, "envelope record unreadable");
	queue_info_free(&info);
	ck_assert_int_eq(qt_stats(&t, &st), 0);
	ck_assert_uint_eq(st.corrupt, 1);
	ck_assert_uint_eq(st.quarantined, 1);
	ck_assert_uint_eq(st.leased, 1);
	/* Not handed out again. */
	t.now += t.cfg.queue.lease_ms;
	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(jobs[0]->id, good);
	qt_free_jobs(jobs, n);
	qt_close(&t);
}
END_TEST

START_TEST(corrupt_job_state_is_quarantined)
{
	struct qt t;
	struct queue_job **jobs;
	struct queue_info info;
	char id[QID_SIZE], key[64];
	const char *const rc[] = { "x@one.example" };
	size_t n;

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, id), 0);
	snprintf(key, sizeof key, "m:%s", id);
	/* Index 7 does not exist in a one-recipient envelope. */
	freeReplyObject(redis_test_cmd(t.sync, "HSET %s j:one.example %s", qt_key(&t, key), "J1d11:one.exampleR1:7S1:0.0:"));
	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 0);
	qt_free_jobs(jobs, n);
	ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
	ck_assert(info.corrupt);
	ck_assert_str_eq(info.why, "recipient state does not match the envelope");
	queue_info_free(&info);
	qt_close(&t);
}
END_TEST

START_TEST(retry_makes_due_now)
{
	struct qt t;
	struct queue_job **jobs;
	char id[QID_SIZE], id2[QID_SIZE];
	const char *const rc[] = { "x@one.example" };
	const char *const rc2[] = { "y@two.example" };
	size_t n;
	uint64_t cnt;

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, id), 0);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc2, 1, MSG, id2), 0);
	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		set_all(jobs[i], RCPT_DEFERRED, "451 later");
		ck_assert_int_eq(qt_complete(&t, jobs[i]), 0);
	}
	qt_free_jobs(jobs, n);
	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 0);
	qt_free_jobs(jobs, n);

	ck_assert_int_eq(qt_retry(&t, id, &cnt), 0);
	ck_assert_uint_eq(cnt, 1);
	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(jobs[0]->id, id);
	qt_free_jobs(jobs, n);

	ck_assert_int_eq(qt_retry(&t, NULL, &cnt), 0);
	ck_assert_uint_eq(cnt, 1); /* id is leased now: only id2 was queued */
	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(jobs[0]->id, id2);
	qt_free_jobs(jobs, n);
	ck_assert_int_eq(qt_retry(&t, "0000000000000000", &cnt), -ENOENT);
	qt_close(&t);
}
END_TEST

START_TEST(delete_message)
{
	struct qt t;
	struct queue_job **jobs;
	struct queue_info info;
	struct queue_stats st;
	char id[QID_SIZE], id2[QID_SIZE];
	const char *const rc[] = { "x@one.example", "z@two.example" };
	size_t n;

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 2, MSG, id), 0);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, id2), 0);
	ck_assert_int_eq(qt_delete(&t, id), 0);
	ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
	ck_assert(!info.exists);
	queue_info_free(&info);
	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(jobs[0]->id, id2);
	/* Deleted while a worker holds it: the worker's result is refused. */
	ck_assert_int_eq(qt_delete(&t, id2), 0);
	set_all(jobs[0], RCPT_DELIVERED, "250 ok");
	ck_assert_int_eq(qt_complete(&t, jobs[0]), -ESTALE);
	qt_free_jobs(jobs, n);
	ck_assert_int_eq(qt_delete(&t, id), -ENOENT);
	ck_assert_int_eq(qt_delete(&t, "not-an-id"), -EINVAL);
	ck_assert_int_eq(qt_stats(&t, &st), 0);
	ck_assert_uint_eq(st.active, 0);
	ck_assert_uint_eq(st.leased, 0);
	ck_assert_uint_eq(st.deleted, 2);
	qt_close(&t);
}
END_TEST

struct list_res {
	struct queue_cursor next;
	bool done;
	int status;
	uint64_t total;
	size_t n;
	char ids[8][QID_SIZE];
};

static void
on_list(void *arg, int status, uint64_t total, char (*ids)[QID_SIZE], size_t n,
    const struct queue_cursor *next)
{
	struct list_res *r = arg;

	r->next = *next;
	r->status = status;
	r->total = total;
	r->n = n;
	for (size_t i = 0; i < n && i < 8; i++)
		memcpy(r->ids[i], ids[i], QID_SIZE);
	r->done = true;
}

static void
list_page(struct qt *t, enum queue_set set, const struct queue_cursor *after,
    unsigned count, struct list_res *r)
{
	memset(r, 0, sizeof *r);
	ck_assert_int_eq(queue_list(t->q, set, after, count, on_list, r), 0);
	qt_wait(t, &r->done);
	ck_assert_int_eq(r->status, 0);
}

START_TEST(list_pages_in_order)
{
	struct qt t;
	char ids[6][QID_SIZE];
	const char *const rc[] = { "x@one.example" };
	struct list_res r;
	struct queue_cursor cur;

	qt_open(&t, NULL);
	for (int i = 0; i < 6; i++) {
		/* Two messages share each arrival ms: the cursor must split ties. */
		t.now += i % 2 == 0 ? 10 : 0;
		ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, ids[i]), 0);
	}
	list_page(&t, QSET_ACTIVE, NULL, 3, &r);
	ck_assert_uint_eq(r.total, 6);
	ck_assert_uint_eq(r.n, 3);
	ck_assert_str_eq(r.ids[0], ids[0]);
	ck_assert_str_eq(r.ids[2], ids[2]);
	cur = r.next;
	ck_assert_str_eq(cur.id, ids[2]);
	/* Two listed ids leave the set before the next page: nothing is skipped. */
	ck_assert_int_eq(qt_delete(&t, ids[0]), 0);
	ck_assert_int_eq(qt_delete(&t, ids[1]), 0);
	list_page(&t, QSET_ACTIVE, &cur, 3, &r);
	ck_assert_uint_eq(r.total, 4);
	ck_assert_uint_eq(r.n, 3);
	ck_assert_str_eq(r.ids[0], ids[3]);
	ck_assert_str_eq(r.ids[2], ids[5]);
	cur = r.next;
	list_page(&t, QSET_ACTIVE, &cur, 3, &r);
	ck_assert_uint_eq(r.n, 0);
	qt_close(&t);
}
END_TEST

START_TEST(done_set_trimmed_after_retention)
{
	struct qt t;
	struct queue_job **jobs;
	struct queue_stats st;
	const char *const rc[] = { "x@one.example" };
	size_t n;

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, NULL), 0);
	jobs = qt_claim(&t, 1, &n);
	set_all(jobs[0], RCPT_DELIVERED, "250 ok");
	ck_assert_int_eq(qt_complete(&t, jobs[0]), 0);
	qt_free_jobs(jobs, n);
	ck_assert_int_eq(qt_stats(&t, &st), 0);
	ck_assert_uint_eq(st.done, 1);
	/* Nothing else completes; the id still leaves the done set in time. */
	t.now += t.cfg.queue.retention_ms + 1;
	ck_assert_int_eq(qt_stats(&t, &st), 0);
	ck_assert_uint_eq(st.done, 0);
	qt_close(&t);
}
END_TEST

START_TEST(corrupt_envelope_keeps_its_jobs_visible)
{
	struct qt t;
	struct queue_info info;
	char id[QID_SIZE], key[64];
	const char *const rc[] = { "x@one.example", "y@two.example" };

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 2, MSG, id), 0);
	snprintf(key, sizeof key, "m:%s", id);
	freeReplyObject(redis_test_cmd(t.sync, "HSET %s env garbage", qt_key(&t, key)));
	ck_assert_int_eq(qt_fetch(&t, id, &info), 0);
	ck_assert(info.corrupt);
	ck_assert_uint_eq(info.njobs, 2);
	ck_assert_str_eq(info.jobs[0].st.domain, "one.example");
	ck_assert(info.jobs[1].queued);
	queue_info_free(&info);
	qt_close(&t);
}
END_TEST

START_TEST(close_lets_quarantine_finish)
{
	struct qt t;
	struct queue_job **jobs;
	char id[QID_SIZE], key[64];
	const char *const rc[] = { "x@one.example" };
	size_t n;
	bool closed = false;
	redisReply *r;
	redisContext *sync;
	struct timeval tv = { 5, 0 };
	char prefix[64];

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", rc, 1, MSG, id), 0);
	snprintf(key, sizeof key, "m:%s", id);
	freeReplyObject(redis_test_cmd(t.sync, "HSET %s env garbage", qt_key(&t, key)));
	jobs = qt_claim(&t, 1, &n);
	ck_assert_uint_eq(n, 0);
	qt_free_jobs(jobs, n);
	/* Close at once: the quarantine sent by the claim still lands. */
	str_copy(prefix, t.cfg.redis.prefix, sizeof prefix);
	sync = redisConnectWithTimeout(t.cfg.redis.address.host, t.cfg.redis.address.port, tv);
	queue_close(t.q, on_closed, &closed);
	qt_wait(&t, &closed);
	uv_run(&t.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&t.loop), 0);
	r = redisCommand(sync, "ZSCORE %scorrupt %s", prefix, id);
	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	freeReplyObject(r);
	r = redisCommand(sync, "EVAL %s 0 %s",
	    "for _, k in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do redis.call('DEL', k) end return 1",
	    prefix);
	freeReplyObject(r);
	redisFree(sync);
	redisFree(t.sync);
}
END_TEST

START_TEST(thousand_recipients_stored_once)
{
	struct qt t;
	struct queue_job **jobs;
	char id[QID_SIZE], key[64];
	const char **rc = malloc(1000 * sizeof *rc);
	char (*addr)[64] = malloc(1000 * sizeof *addr);
	size_t n, total = 0;
	redisReply *r;

	for (int i = 0; i < 1000; i++) {
		snprintf(addr[i], sizeof addr[i], "reader%d@list%d.example", i, i % 5);
		rc[i] = addr[i];
	}
	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_BROADCAST, "news@shop.example", rc, 1000, MSG, id), 0);
	snprintf(key, sizeof key, "m:%s", id);
	r = redis_test_cmd(t.sync, "HSTRLEN %s body", qt_key(&t, key));
	ck_assert_int_eq(r->integer, (long long)strlen(strstr(MSG, "\r\n\r\n") + 4));
	freeReplyObject(r);
	jobs = qt_claim(&t, 10, &n);
	ck_assert_uint_eq(n, 5);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(jobs[i]->st.n, 200);
		total += jobs[i]->st.n;
	}
	ck_assert_uint_eq(total, 1000);
	qt_free_jobs(jobs, n);
	free(rc);
	free(addr);
	qt_close(&t);
}
END_TEST

START_TEST(refuses_without_recipients)
{
	struct qt t;

	qt_open(&t, NULL);
	ck_assert_int_eq(qt_enqueue(&t, STREAM_TRANSACTIONAL, "s@shop.example", NULL, 0, MSG, NULL), -EINVAL);
	qt_close(&t);
}
END_TEST

static void
stop_loop(uv_timer_t *h)
{
	uv_stop(h->loop);
}

static void
on_closed(void *arg)
{
	*(bool *)arg = true;
}

START_TEST(down_redis_refuses_at_once)
{
	uv_loop_t loop;
	struct config cfg;
	struct queue *q;
	struct envelope env;
	const char *why;
	bool closed = false;
	uv_timer_t tm;

	config_defaults(&cfg);
	/* Port 1 on loopback: nothing listens there. */
	ck_assert_int_eq(config_parse_endpoint("127.0.0.1:1", false, &cfg.redis.address, &why), 0);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(queue_open(&q, &loop, &cfg, "test"), 0);
	/* Let the first connect fail. */
	uv_timer_init(&loop, &tm);
	uv_timer_start(&tm, stop_loop, 300, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert(!queue_is_up(q));
	envelope_init(&env);
	envelope_set(&env.sender, "s@shop.example");
	ck_assert_int_eq(envelope_add_rcpt(&env, "x@one.example", NULL, 0), 0);
	ck_assert_int_eq(queue_enqueue(q, &env, MSG, rfc5322_head_len(MSG, strlen(MSG)),
	    MSG + rfc5322_head_len(MSG, strlen(MSG)),
	    strlen(MSG) - rfc5322_head_len(MSG, strlen(MSG)), NULL, NULL), -ENOTCONN);
	envelope_free(&env);
	uv_close((uv_handle_t *)&tm, NULL);
	queue_close(q, on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert(closed);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

Suite *
queue_suite(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = tcase_create("redis");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, unit_pool_fresh, NULL);
	tcase_add_test(tc, enqueue_claim_deliver);
	tcase_add_test(tc, events_carry_outcome);
	tcase_add_test(tc, mark_bounced_after_delivery);
	tcase_add_test(tc, mark_bounced_by_address_in_job);
	tcase_add_test(tc, mark_bounced_leased_then_pending);
	tcase_add_test(tc, signatures_kept_with_the_message);
	tcase_add_test(tc, deferred_then_delivered);
	tcase_add_test(tc, retry_schedule_jitter_and_repeat);
	tcase_add_test(tc, expired_after_lifetime);
	tcase_add_test(tc, partial_outcomes);
	tcase_add_test(tc, untouched_recipients_come_back_now);
	tcase_add_test(tc, lease_expiry_after_worker_death);
	tcase_add_test(tc, claim_reaps_expired_leases);
	tcase_add_test(tc, renew_keeps_the_lease);
	tcase_add_test(tc, release_without_attempt);
	tcase_add_test(tc, fairness_with_one_flooded_destination);
	tcase_add_test(tc, rotation_between_due_destinations);
	tcase_add_test(tc, transactional_before_broadcast);
	tcase_add_test(tc, corrupt_record_is_quarantined);
	tcase_add_test(tc, corrupt_job_state_is_quarantined);
	tcase_add_test(tc, retry_makes_due_now);
	tcase_add_test(tc, delete_message);
	tcase_add_test(tc, list_pages_in_order);
	tcase_add_test(tc, done_set_trimmed_after_retention);
	tcase_add_test(tc, corrupt_envelope_keeps_its_jobs_visible);
	tcase_add_test(tc, close_lets_quarantine_finish);
	tcase_add_test(tc, thousand_recipients_stored_once);
	tcase_add_test(tc, refuses_without_recipients);
	tcase_add_test(tc, down_redis_refuses_at_once);
	suite_add_tcase(s, tc);
	return s;
}

