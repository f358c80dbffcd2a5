/*
 * test_ipcount - core/ipcount: the per-address limit holds exactly at
 * the limit, addresses count apart (also when they share a bucket), and
 * an address's entry goes when its last connection ends.
 */
#include <stdio.h>

#include "core/ipcount.h"
#include "tests/suites.h"

START_TEST(test_limit)
{
	struct ipcount *t = ipcount_new();

	for (unsigned i = 0; i < 3; i++)
		ck_assert(ipcount_take(t, "192.0.2.1", 3));
	ck_assert(!ipcount_take(t, "192.0.2.1", 3));
	ck_assert_uint_eq(ipcount_get(t, "192.0.2.1"), 3);
	/* Another address is not held back by the first one's count. */
	ck_assert(ipcount_take(t, "2001:db8::1", 3));
	ipcount_release(t, "192.0.2.1");
	ck_assert(ipcount_take(t, "192.0.2.1", 3));
	ck_assert(!ipcount_take(t, "192.0.2.2", 0));
	ck_assert_uint_eq(ipcount_get(t, "192.0.2.2"), 0);
	ipcount_free(t);
}
END_TEST

START_TEST(test_many)
{
	struct ipcount *t = ipcount_new();
	char ip[64];

	/* More addresses than buckets: every one keeps its own count. */
	for (unsigned i = 0; i < 5000; i++) {
		snprintf(ip, sizeof ip, "10.%u.%u.1", i / 256, i % 256);
		ck_assert(ipcount_take(t, ip, 2));
		ck_assert(ipcount_take(t, ip, 2));
		ck_assert(!ipcount_take(t, ip, 2));
	}
	for (unsigned i = 0; i < 5000; i++) {
		snprintf(ip, sizeof ip, "10.%u.%u.1", i / 256, i % 256);
		ipcount_release(t, ip);
		ck_assert_uint_eq(ipcount_get(t, ip), 1);
		ipcount_release(t, ip);
		ck_assert_uint_eq(ipcount_get(t, ip), 0);
		/* Released past zero: ignored. */
		ipcount_release(t, ip);
		ck_assert_uint_eq(ipcount_get(t, ip), 0);
	}
	ipcount_free(t);
	ipcount_free(NULL);
}
END_TEST

Suite *
ipcount_suite(void)
{
	Suite *s = suite_create("ipcount");
	TCase *tc = tcase_create("ipcount");

	tcase_add_test(tc, test_limit);
	tcase_add_test(tc, test_many);
	suite_add_tcase(s, tc);
	return s;
}
