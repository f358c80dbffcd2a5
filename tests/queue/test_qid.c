/*
 * test_qid - queue/qid: format, uniqueness, time order, validation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/qid.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define QID_TIME_MAX ((1ULL << 50) - 1)  /* 10 characters of 5 bits */

static const uint64_t times[] = {
	0, 1, 31, 32, 1023, 1024, 1000000, 1700000000000ULL, 1700000000001ULL,
	1763820840123ULL, 4102444800000ULL, QID_TIME_MAX - 1, QID_TIME_MAX,
};

START_TEST(test_format)
{
	char id[QID_SIZE];

	memset(id, '#', sizeof id);
	qid_new(id, 1700000000000ULL);
	ck_assert_uint_eq(strlen(id), QID_LEN);
	ck_assert(qid_valid(id));
	ck_assert_uint_eq(qid_time(id), 1700000000000ULL);
}
END_TEST

START_TEST(test_time_prefix)
{
	static const struct {
		uint64_t ms;
		const char *prefix;
	} cases[] = {
		{ 0, "0000000000" },
		{ 1, "0000000001" },
		{ 31, "000000000Z" },
		{ 32, "0000000010" },
		{ 10 * 32 + 18, "00000000AJ" },
		{ QID_TIME_MAX, "ZZZZZZZZZZ" },
	};
	char id[QID_SIZE];

	for (size_t i = 0; i < NELEM(cases); i++) {
		qid_new(id, cases[i].ms);
		ck_assert_msg(strncmp(id, cases[i].prefix, 10) == 0, "%ju: %s",
		    (uintmax_t)cases[i].ms, id);
	}
}
END_TEST

START_TEST(test_time_round_trip)
{
	char id[QID_SIZE];

	for (size_t i = 0; i < NELEM(times); i++) {
		qid_new(id, times[i]);
		ck_assert(qid_valid(id));
		ck_assert_msg(qid_time(id) == times[i], "%ju -> %s -> %ju",
		    (uintmax_t)times[i], id, (uintmax_t)qid_time(id));
	}
	ck_assert_uint_eq(qid_time("0000000001ZZZZZZ"), 1);
	ck_assert_uint_eq(qid_time("000000000Z000000"), 31);
	ck_assert_uint_eq(qid_time("0000000010000000"), 32);
}
END_TEST

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

START_TEST(test_unique)
{
	enum { N = 100000 };
	char (*ids)[QID_SIZE] = calloc(N, sizeof *ids);

	ck_assert_ptr_nonnull(ids);
	/*
	 * The same millisecond for all: only the counter tells them apart.
	 * (Plain ifs in the loops: a passing ck_assert costs microseconds.)
	 */
	for (size_t i = 0; i < N; i++) {
		qid_new(ids[i], 1763820840123ULL);
		if (!qid_valid(ids[i]) || strncmp(ids[i], ids[0], 10) != 0)
			ck_abort_msg("id %zu: %s", i, ids[i]);
	}
	qsort(ids, N, sizeof *ids, cmp_id);
	for (size_t i = 1; i < N; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0)
			ck_abort_msg("duplicate %s", ids[i]);
	ck_assert_str_lt(ids[0], ids[N - 1]);
	free(ids);
}
END_TEST

START_TEST(test_sorts_by_time)
{
	char prev[QID_SIZE], id[QID_SIZE];
	uint64_t t = 1700000000000ULL;

	for (size_t i = 1; i < NELEM(times); i++) {
		qid_new(prev, times[i - 1]);
		qid_new(id, times[i]);
		ck_assert_msg(strcmp(prev, id) < 0, "%s !< %s", prev, id);
	}
	/* Whatever the counter, a later millisecond sorts later. */
	qid_new(prev, t);
	for (int i = 0; i < 5000; i++) {
		t += 1 + (uint64_t)(i % 7) * 997;
		qid_new(id, t);
		if (strcmp(prev, id) >= 0)
			ck_abort_msg("%s !< %s", prev, id);
		memcpy(prev, id, sizeof id);
	}
}
END_TEST

static const struct valid_case {
	const char *s;
	bool valid;
} valid_cases[] = {
	{ "0123456789ABCDEF", true },
	{ "0000000000000000", true },
	{ "ZZZZZZZZZZZZZZZZ", true },
	{ "GHJKMNPQRSTVWXYZ", true },
	{ "", false },
	{ "0123456789ABCDE", false },
	{ "0123456789ABCDEF0", false },
	{ "0123456789abcdef", false },
	{ "0123456789ABCDEf", false },
	{ "I123456789ABCDEF", false },
	{ "0L23456789ABCDEF", false },
	{ "01O3456789ABCDEF", false },
	{ "012U456789ABCDEF", false },
	{ "0123456789ABCDE-", false },
	{ "0123456789ABCDE ", false },
	{ "0123456789ABCD\xc3\x89", false },
	{ "01234567\n9ABCDEF", false },
};

START_TEST(test_valid)
{
	const struct valid_case *c = &valid_cases[_i];

	ck_assert_msg(qid_valid(c->s) == c->valid, "\"%s\" should be %s", c->s,
	    c->valid ? "valid" : "invalid");
}
END_TEST

START_TEST(test_valid_embedded_nul)
{
	static const char s[] = "0123456789ABCD\0F";

	ck_assert(!qid_valid(s));
}
END_TEST

Suite *
qid_suite(void)
{
	Suite *s = suite_create("qid");
	TCase *tc = tcase_create("qid");

	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_time_prefix);
	tcase_add_test(tc, test_time_round_trip);
	tcase_add_test(tc, test_unique);
	tcase_add_test(tc, test_sorts_by_time);
	tcase_add_loop_test(tc, test_valid, 0, (int)NELEM(valid_cases));
	tcase_add_test(tc, test_valid_embedded_nul);
	suite_add_tcase(s, tc);
	return s;
}
