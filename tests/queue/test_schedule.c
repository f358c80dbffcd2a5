/*
 * test_schedule - queue/schedule: retry intervals, jitter bounds, the
 * last attempt at the deadline, and expiry.
 */
#include <stdint.h>

#include "queue/schedule.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define DAY_MS (86400000ULL)
#define ARRIVAL (1700000000000ULL)

static const uint64_t retry[] = { 300000, 600000, 1800000 };
static const struct schedule sched = { retry, NELEM(retry), 5 * DAY_MS };

/* rnd picks delay - 10% + rnd % (2 * span + 1); span is 10% of delay. */
static const struct next_case {
	uint32_t attempts;
	uint32_t rnd;
	uint64_t delay;
} next_cases[] = {
	{ 1, 0, 270000 },
	{ 1, 1, 270001 },
	{ 1, 30000, 300000 },
	{ 1, 60000, 330000 },
	{ 1, 60001, 270000 },
	{ 1, UINT32_MAX, 305714 },
	{ 0, 0, 270000 },            /* 0 counts as the first attempt */
	{ 2, 0, 540000 },
	{ 2, 120000, 660000 },
	{ 2, UINT32_MAX, 551504 },
	{ 3, 0, 1620000 },
	{ 3, 180000, 1800000 },
	{ 3, 360000, 1980000 },
	{ 3, UINT32_MAX, 1775365 },
	/* Past the list, the last interval repeats. */
	{ 4, 180000, 1800000 },
	{ 100, 0, 1620000 },
	{ UINT32_MAX, 360000, 1980000 },
};

START_TEST(test_next_table)
{
	const struct next_case *c = &next_cases[_i];
	uint64_t now = ARRIVAL + 60000, next = 0;

	ck_assert(schedule_next(&sched, ARRIVAL, now, c->attempts, c->rnd, &next));
	ck_assert_msg(next - now == c->delay, "attempts %u rnd %u: delay %ju, want %ju",
	    c->attempts, c->rnd, (uintmax_t)(next - now), (uintmax_t)c->delay);
}
END_TEST

START_TEST(test_jitter_bounds)
{
	static const uint32_t fixed[] = {
		0, 1, 2, 12345, 0x7fffffff, 0x80000000, 0xfffffffe, UINT32_MAX,
	};
	uint64_t lo_seen = UINT64_MAX, hi_seen = 0;

	for (uint32_t attempts = 1; attempts <= 5; attempts++) {
		uint64_t base = retry[attempts <= 3 ? attempts - 1 : 2];
		uint64_t lo = base - base / 10, hi = base + base / 10;

		for (uint32_t k = 0; k < 20000 + NELEM(fixed); k++) {
			uint32_t rnd = k < NELEM(fixed) ? fixed[k] : k * 2654435761u;
			uint64_t now = ARRIVAL + 1000, next = 0, d;

			/* Plain ifs: a passing ck_assert costs microseconds. */
			if (!schedule_next(&sched, ARRIVAL, now, attempts, rnd, &next))
				ck_abort_msg("attempts %u rnd %u: expired", attempts, rnd);
			d = next - now;
			if (d < lo || d > hi)
				ck_abort_msg("attempts %u rnd %u: %ju", attempts, rnd,
				    (uintmax_t)d);
			if (attempts == 1) {
				lo_seen = d < lo_seen ? d : lo_seen;
				hi_seen = d > hi_seen ? d : hi_seen;
			}
		}
	}
	/* Both ends are reachable, so the spread really is +-10%. */
	ck_assert_uint_eq(lo_seen, 270000);
	ck_assert_uint_le(hi_seen, 330000);
	ck_assert_uint_ge(hi_seen, 329000);
}
END_TEST

START_TEST(test_no_jitter_when_tiny)
{
	static const uint64_t r[] = { 9 };
	struct schedule s = { r, 1, DAY_MS };
	uint64_t next = 0;

	/* 10% of 9 ms rounds to nothing: exact. */
	ck_assert(schedule_next(&s, ARRIVAL, ARRIVAL, 1, UINT32_MAX, &next));
	ck_assert_uint_eq(next, ARRIVAL + 9);
	ck_assert(schedule_next(&s, ARRIVAL, ARRIVAL, 7, 12345, &next));
	ck_assert_uint_eq(next, ARRIVAL + 9);
}
END_TEST

START_TEST(test_single_interval)
{
	static const uint64_t r[] = { 3600000 };
	struct schedule s = { r, 1, 5 * DAY_MS };
	uint64_t next = 0;

	for (uint32_t a = 1; a < 50; a++) {
		ck_assert(schedule_next(&s, ARRIVAL, ARRIVAL + a, a, 360000, &next));
		ck_assert_uint_eq(next, ARRIVAL + a + 3600000);
	}
}
END_TEST

START_TEST(test_last_attempt_clamped)
{
	uint64_t deadline = ARRIVAL + 5 * DAY_MS, next = 0;

	/* Even the shortest jittered delay would overshoot. */
	ck_assert(schedule_next(&sched, ARRIVAL, deadline - 100000, 1, 0, &next));
	ck_assert_uint_eq(next, deadline);
	ck_assert(schedule_next(&sched, ARRIVAL, deadline - 1, 9, UINT32_MAX, &next));
	ck_assert_uint_eq(next, deadline);
	/* Just fits: not clamped. */
	ck_assert(schedule_next(&sched, ARRIVAL, deadline - 270001, 1, 0, &next));
	ck_assert_uint_eq(next, deadline - 1);
	ck_assert(schedule_next(&sched, ARRIVAL, deadline - 270000, 1, 0, &next));
	ck_assert_uint_eq(next, deadline);
}
END_TEST

START_TEST(test_expired_at_deadline)
{
	uint64_t deadline = ARRIVAL + 5 * DAY_MS, next = 4242;

	ck_assert(!schedule_next(&sched, ARRIVAL, deadline, 3, 0, &next));
	ck_assert(!schedule_next(&sched, ARRIVAL, deadline + 1, 3, 0, &next));
	ck_assert(!schedule_next(&sched, ARRIVAL, deadline + 30 * DAY_MS, 1, 0, &next));
	ck_assert_uint_eq(next, 4242);

	ck_assert(schedule_expired(&sched, ARRIVAL, deadline));
	ck_assert(schedule_expired(&sched, ARRIVAL, deadline + 1));
	ck_assert(!schedule_expired(&sched, ARRIVAL, deadline - 1));
	ck_assert(!schedule_expired(&sched, ARRIVAL, ARRIVAL));
	ck_assert(!schedule_expired(&sched, ARRIVAL, 0));
}
END_TEST

START_TEST(test_walk_to_expiry)
{
	uint64_t now = ARRIVAL, next = 0;
	uint32_t attempts = 0;

	/* Fail every attempt at its scheduled time until expiry. */
	while (schedule_next(&sched, ARRIVAL, now, ++attempts, 180000, &next)) {
		ck_assert_uint_gt(next, now);
		ck_assert_uint_le(next, ARRIVAL + 5 * DAY_MS);
		now = next;
		ck_assert_uint_lt(attempts, 1000);
	}
	ck_assert(schedule_expired(&sched, ARRIVAL, now));
	ck_assert_uint_eq(now, ARRIVAL + 5 * DAY_MS);
	/*
	 * rnd 180000 gives 329998 and 599999 ms for the first two, then
	 * exactly 30m; the attempt at the deadline is the one that expires.
	 */
	ck_assert_uint_eq(attempts, 3 + (5 * DAY_MS - 929997 + 1799999) / 1800000);
	ck_assert_uint_eq(attempts, 243);
}
END_TEST

Suite *
schedule_suite(void)
{
	Suite *s = suite_create("schedule");
	TCase *tc = tcase_create("schedule");

	tcase_add_loop_test(tc, test_next_table, 0, (int)NELEM(next_cases));
	tcase_add_test(tc, test_jitter_bounds);
	tcase_add_test(tc, test_no_jitter_when_tiny);
	tcase_add_test(tc, test_single_interval);
	tcase_add_test(tc, test_last_attempt_clamped);
	tcase_add_test(tc, test_expired_at_deadline);
	tcase_add_test(tc, test_walk_to_expiry);
	suite_add_tcase(s, tc);
	return s;
}
