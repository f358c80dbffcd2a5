/*
 * test_str - core/str: bounded copies, strict number, size and duration
 * parsing, the host-name and user-name checks at their boundaries, and
 * str_err.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/str.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct copy_case {
	const char *src;
	size_t size;
	ssize_t rc;
	const char *dst;
} copy_cases[] = {
	{ "abc", 4, 3, "abc" },
	{ "abc", 100, 3, "abc" },
	{ "abcd", 4, -E2BIG, "abc" },
	{ "abcdefgh", 4, -E2BIG, "abc" },
	{ "", 1, 0, "" },
	{ "a", 1, -E2BIG, "" },
	{ "a", 2, 1, "a" },
};

START_TEST(test_copy)
{
	const struct copy_case *c = &copy_cases[_i];
	char dst[128];

	memset(dst, '#', sizeof dst);
	ck_assert_int_eq(str_copy(dst, c->src, c->size), c->rc);
	ck_assert_str_eq(dst, c->dst);
	/* Nothing written past size. */
	for (size_t i = c->size; i < sizeof dst; i++)
		ck_assert_int_eq(dst[i], '#');
}
END_TEST

START_TEST(test_copyn)
{
	static const char raw[3] = { 'x', 'y', 'z' };  /* no NUL */
	char dst[8];

	memset(dst, '#', sizeof dst);
	ck_assert_int_eq(str_copyn(dst, "abcdef", 3, sizeof dst), 3);
	ck_assert_str_eq(dst, "abc");
	ck_assert_int_eq(str_copyn(dst, raw, sizeof raw, 4), 3);
	ck_assert_str_eq(dst, "xyz");
	ck_assert_int_eq(str_copyn(dst, "abcdefgh", 8, sizeof dst), -E2BIG);
	ck_assert_str_eq(dst, "abcdefg");
	ck_assert_int_eq(str_copyn(dst, "abcdef", 6, 6), -E2BIG);
	ck_assert_str_eq(dst, "abcde");
	ck_assert_int_eq(str_copyn(dst, "ignored", 0, sizeof dst), 0);
	ck_assert_str_eq(dst, "");
	/* Embedded NULs are copied as bytes. */
	ck_assert_int_eq(str_copyn(dst, "a\0b", 3, sizeof dst), 3);
	ck_assert_mem_eq(dst, "a\0b\0", 4);
	/* size 0 cannot hold the NUL: refused, dst untouched. */
	memset(dst, '#', sizeof dst);
	ck_assert_int_eq(str_copyn(dst, "a", 1, 0), -E2BIG);
	ck_assert_int_eq(dst[0], '#');
}
END_TEST

static const struct u64_case {
	const char *s;
	int rc;
	uint64_t v;
} u64_cases[] = {
	{ "0", 0, 0 },
	{ "7", 0, 7 },
	{ "007", 0, 7 },
	{ "26214400", 0, 26214400 },
	{ "18446744073709551615", 0, UINT64_MAX },
	{ "18446744073709551616", -ERANGE, 0 },
	{ "18446744073709551620", -ERANGE, 0 },
	{ "99999999999999999999", -ERANGE, 0 },
	{ "184467440737095516150", -ERANGE, 0 },
	{ "", -EINVAL, 0 },
	{ "-1", -EINVAL, 0 },
	{ "+1", -EINVAL, 0 },
	{ "-0", -EINVAL, 0 },
	{ " 1", -EINVAL, 0 },
	{ "1 ", -EINVAL, 0 },
	{ "1\n", -EINVAL, 0 },
	{ "12a", -EINVAL, 0 },
	{ "0x10", -EINVAL, 0 },
	{ "1e3", -EINVAL, 0 },
	{ "1.0", -EINVAL, 0 },
	{ "1_000", -EINVAL, 0 },
};

START_TEST(test_to_u64)
{
	const struct u64_case *c = &u64_cases[_i];
	uint64_t v = 4242;
	int rc;

	rc = str_to_u64(c->s, &v);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d, want %d", c->s, rc, c->rc);
	if (c->rc == 0)
		ck_assert_msg(v == c->v, "\"%s\": %ju", c->s, (uintmax_t)v);
	else
		ck_assert_msg(v == 4242, "\"%s\": out written on error", c->s);
}
END_TEST

START_TEST(test_to_u64n)
{
	uint64_t v = 0;

	ck_assert_int_eq(str_to_u64n("123456", 3, &v), 0);
	ck_assert_uint_eq(v, 123);
	ck_assert_int_eq(str_to_u64n("42:rest", 2, &v), 0);
	ck_assert_uint_eq(v, 42);
	ck_assert_int_eq(str_to_u64n("42:rest", 3, &v), -EINVAL);
	ck_assert_int_eq(str_to_u64n("5", 0, &v), -EINVAL);
	ck_assert_int_eq(str_to_u64n("1\0" "2", 3, &v), -EINVAL);
}
END_TEST

static const struct u64_case size_cases[] = {
	{ "26214400", 0, 26214400 },
	{ "0", 0, 0 },
	{ "25M", 0, 25ULL << 20 },
	{ "25m", 0, 25ULL << 20 },
	{ "512k", 0, 512ULL << 10 },
	{ "512K", 0, 512ULL << 10 },
	{ "1G", 0, 1ULL << 30 },
	{ "1g", 0, 1ULL << 30 },
	{ "10MB", 0, 10ULL << 20 },
	{ "10mb", 0, 10ULL << 20 },
	{ "10Mb", 0, 10ULL << 20 },
	{ "4kB", 0, 4096 },
	{ "1GB", 0, 1ULL << 30 },
	{ "7B", 0, 7 },
	{ "7b", 0, 7 },
	{ "17179869183G", 0, UINT64_MAX - (1ULL << 30) + 1 },
	{ "17179869184G", -ERANGE, 0 },
	{ "18014398509481984K", -ERANGE, 0 },
	{ "99999999999999999999", -ERANGE, 0 },
	{ "", -EINVAL, 0 },
	{ "M", -EINVAL, 0 },
	{ "MB", -EINVAL, 0 },
	{ "10X", -EINVAL, 0 },
	{ "1T", -EINVAL, 0 },
	{ "10KiB", -EINVAL, 0 },
	{ "10kbyt", -EINVAL, 0 },
	{ "10kilobytes", -EINVAL, 0 },
	{ "10MiB", -EINVAL, 0 },
	{ "10BM", -EINVAL, 0 },
	{ "1.5M", -EINVAL, 0 },
	{ "-1M", -EINVAL, 0 },
	{ " 1M", -EINVAL, 0 },
	{ "1 M", -EINVAL, 0 },
	{ "1M ", -EINVAL, 0 },
	{ "M1", -EINVAL, 0 },
	{ "1M1", -EINVAL, 0 },
};

START_TEST(test_to_size)
{
	const struct u64_case *c = &size_cases[_i];
	uint64_t v = 4242;
	int rc;

	rc = str_to_size(c->s, &v);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d, want %d", c->s, rc, c->rc);
	if (c->rc == 0)
		ck_assert_msg(v == c->v, "\"%s\": %ju, want %ju", c->s,
		    (uintmax_t)v, (uintmax_t)c->v);
}
END_TEST

static const struct u64_case duration_cases[] = {
	{ "30s", 0, 30000 },
	{ "5m", 0, 300000 },
	{ "2h", 0, 7200000 },
	{ "5d", 0, 432000000 },
	{ "1w", 0, 604800000 },
	{ "250ms", 0, 250 },
	{ "90", 0, 90000 },
	{ "0", 0, 0 },
	{ "0s", 0, 0 },
	{ "0ms", 0, 0 },
	{ "90m", 0, 5400000 },
	{ "365d", 0, 31536000000ULL },
	{ "18446744073709551615ms", 0, UINT64_MAX },
	{ "18446744073709551615s", -ERANGE, 0 },
	{ "100000000000w", -ERANGE, 0 },
	{ "99999999999999999999ms", -ERANGE, 0 },
	{ "", -EINVAL, 0 },
	{ "s", -EINVAL, 0 },
	{ "ms", -EINVAL, 0 },
	{ "5x", -EINVAL, 0 },
	{ "5y", -EINVAL, 0 },
	{ "5min", -EINVAL, 0 },
	{ "5sec", -EINVAL, 0 },
	{ "5mss", -EINVAL, 0 },
	{ "5mins", -EINVAL, 0 },
	{ "5seconds", -EINVAL, 0 },
	{ "5 m", -EINVAL, 0 },
	{ " 5m", -EINVAL, 0 },
	{ "5m ", -EINVAL, 0 },
	{ "-5m", -EINVAL, 0 },
	{ "+5m", -EINVAL, 0 },
	{ "1.5h", -EINVAL, 0 },
	{ "m5", -EINVAL, 0 },
	{ "5m30s", -EINVAL, 0 },
};

START_TEST(test_to_duration)
{
	const struct u64_case *c = &duration_cases[_i];
	uint64_t v = 4242;
	int rc;

	rc = str_to_duration_ms(c->s, &v);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d, want %d", c->s, rc, c->rc);
	if (c->rc == 0)
		ck_assert_msg(v == c->v, "\"%s\": %ju, want %ju", c->s,
		    (uintmax_t)v, (uintmax_t)c->v);
}
END_TEST

static const struct fmt_case {
	uint64_t ms;
	const char *s;
} fmt_cases[] = {
	{ 0, "0ms" },
	{ 1, "1ms" },
	{ 250, "250ms" },
	{ 1500, "1500ms" },
	{ 1000, "1s" },
	{ 30000, "30s" },
	{ 90000, "90s" },
	{ 300000, "5m" },
	{ 5400000, "90m" },
	{ 7200000, "2h" },
	{ 86400000, "1d" },
	{ 432000000, "5d" },
	{ 691200000, "8d" },
	{ 604800000, "1w" },
	{ 1209600000, "2w" },
	{ 31536000000ULL, "365d" },
	{ 604800001, "604800001ms" },
};

START_TEST(test_duration_format)
{
	const struct fmt_case *c = &fmt_cases[_i];
	char dst[32];
	uint64_t back = 4242;

	ck_assert_ptr_eq(str_duration(dst, sizeof dst, c->ms), dst);
	ck_assert_str_eq(dst, c->s);
	/* The text parses back to the same number. */
	ck_assert_int_eq(str_to_duration_ms(dst, &back), 0);
	ck_assert_uint_eq(back, c->ms);
}
END_TEST

START_TEST(test_duration_round_trip)
{
	static const char *const texts[] = {
		"30s", "5m", "2h", "5d", "1w", "250ms", "10m", "8h", "3w", "59s",
	};
	char dst[32];
	uint64_t ms;

	for (size_t i = 0; i < NELEM(texts); i++) {
		ck_assert_int_eq(str_to_duration_ms(texts[i], &ms), 0);
		ck_assert_str_eq(str_duration(dst, sizeof dst, ms), texts[i]);
	}
	/* Every whole number of ms up to a bit over a day survives. */
	for (uint64_t v = 0; v < 90000000; v += 999983) {
		uint64_t back = 0;

		str_duration(dst, sizeof dst, v);
		ck_assert_int_eq(str_to_duration_ms(dst, &back), 0);
		ck_assert_uint_eq(back, v);
	}
	/* A short buffer holds a NUL-terminated prefix. */
	ck_assert_str_eq(str_duration(dst, 3, 1500), "15");
}
END_TEST

static const struct trim_case {
	const char *in;
	const char *out;
} trim_cases[] = {
	{ "", "" },
	{ "x", "x" },
	{ "  a b \t\r\n", "a b" },
	{ "\v\fx\f", "x" },
	{ " \t \r\n ", "" },
	{ "keep  inner  space", "keep  inner  space" },
	{ "\xc2\xa0nbsp\xc2\xa0", "\xc2\xa0nbsp\xc2\xa0" },
};

START_TEST(test_trim)
{
	const struct trim_case *c = &trim_cases[_i];
	char buf[64], *r;

	ck_assert_int_ge(str_copy(buf, c->in, sizeof buf), 0);
	r = str_trim(buf);
	ck_assert_str_eq(r, c->out);
	ck_assert(r >= buf && r <= buf + strlen(c->in));
}
END_TEST

START_TEST(test_lower_prefix)
{
	char s[] = "MiXeD-123_AZaz@[]\xc3\x84\xff";
	char empty[] = "";

	ck_assert_ptr_eq(str_lower(s), s);
	ck_assert_str_eq(s, "mixed-123_azaz@[]\xc3\x84\xff");
	ck_assert_str_eq(str_lower(empty), "");

	ck_assert(str_has_prefix("unix:/run/redis.sock", "unix:"));
	ck_assert(str_has_prefix("unix:", "unix:"));
	ck_assert(str_has_prefix("anything", ""));
	ck_assert(!str_has_prefix("unix", "unix:"));
	ck_assert(!str_has_prefix("Unix:/x", "unix:"));
	ck_assert(!str_has_prefix("", "u"));
}
END_TEST

/* --- host names ----------------------------------------------------------- */

/* Texts of n bytes: labels of 63 'a' joined by dots, the last one cut. */
static void
long_name(char *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (i % 64 == 63) ? '.' : 'a';
	dst[n] = '\0';
}

static const struct host_case {
	const char *in;
	bool ok;
} host_cases[] = {
	{ "example.com", true },
	{ "localhost", true },
	{ "a", true },
	{ "1", true },
	{ "MX1.Example.NET", true },
	{ "a-b.c-d", true },
	{ "a--b.example", true },             /* inner double hyphen */
	{ "xn--bcher-kva.example", true },
	{ "0.0.0.0", true },                  /* digits are letters here */
	{ "", false },
	{ ".", false },
	{ ".example.com", false },            /* empty first label */
	{ "example.com.", false },            /* trailing dot */
	{ "example..com", false },
	{ "-a.example", false },
	{ "a-.example", false },
	{ "example.com-", false },
	{ "a.-b", false },
	{ "exa_mple.com", false },
	{ "exa mple.com", false },
	{ "example.com\n", false },
	{ "ex\xc3\xa4mple.com", false },       /* U-label: not LDH */
	{ "*.example.com", false },
	{ "[127.0.0.1]", false },
	{ "host:25", false },
	/* 63 bytes in a label pass, 64 do not. */
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x", true },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.x", false },
	{ "x.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false },
};

START_TEST(test_hostname)
{
	const struct host_case *c = &host_cases[_i];

	ck_assert_msg(str_is_hostname(c->in) == c->ok, "\"%s\": want %s", c->in,
	    c->ok ? "true" : "false");
	ck_assert(str_is_hostname_n(c->in, strlen(c->in)) == c->ok);
}
END_TEST

START_TEST(test_hostname_lengths)
{
	char name[STR_HOSTNAME_MAX + 8];

	/* 253 bytes in all pass, 254 do not (and a longer text is not read past). */
	long_name(name, STR_HOSTNAME_MAX);
	ck_assert(str_is_hostname(name));
	ck_assert(str_is_hostname_n(name, STR_HOSTNAME_MAX));
	long_name(name, STR_HOSTNAME_MAX + 1);
	ck_assert(!str_is_hostname(name));
	ck_assert(!str_is_hostname_n(name, STR_HOSTNAME_MAX + 1));
	long_name(name, STR_HOSTNAME_MAX + 7);
	ck_assert(!str_is_hostname(name));

	/* _n reads only len bytes, and a NUL inside them fails. */
	ck_assert(str_is_hostname_n("example.com junk", 11));
	ck_assert(!str_is_hostname_n("example.com junk", 12));
	ck_assert(!str_is_hostname_n("exa\0mple", 8));
	ck_assert(!str_is_hostname_n("example", 0));
	ck_assert(str_is_hostname_n("example.", 7));
	ck_assert(!str_is_hostname_n("example.", 8));
}
END_TEST

static const struct user_case {
	const char *in;
	bool ok;
} user_cases[] = {
	{ "shop", true },
	{ "a", true },
	{ "Shop-1", true },
	{ "a.b_c@d+e-f.example", true },
	{ "shop@example.com", true },
	{ "-", true },                        /* no rule on where '-' may stand */
	{ "", false },
	{ "a b", false },
	{ "a:b", false },
	{ "a*", false },
	{ "a/b", false },
	{ "a\tb", false },
	{ "shop\n", false },
	{ "na\xc3\xafve", false },             /* ASCII only */
	/* 64 characters pass, 65 do not. */
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false },
};

START_TEST(test_username)
{
	const struct user_case *c = &user_cases[_i];

	ck_assert_msg(str_is_username(c->in) == c->ok, "\"%s\": want %s", c->in,
	    c->ok ? "true" : "false");
}
END_TEST

/* --- error messages ------------------------------------------------------- */

START_TEST(test_err)
{
	char err[16];

	memset(err, 'x', sizeof err);
	ck_assert_int_eq(str_err(err, sizeof err, -EINVAL, "%s: %d", "key", 7), -EINVAL);
	ck_assert_str_eq(err, "key: 7");
	ck_assert_int_eq(str_err(err, sizeof err, 0, "ok"), 0);
	ck_assert_str_eq(err, "ok");
	/* Cut to fit, always terminated. */
	ck_assert_int_eq(str_err(err, sizeof err, -E2BIG, "%s", "0123456789abcdefghij"), -E2BIG);
	ck_assert_str_eq(err, "0123456789abcde");
	/* Nothing to write into: only the code comes back. */
	ck_assert_int_eq(str_err(NULL, 0, -ENOENT, "%s", "gone"), -ENOENT);
	err[0] = 'z';
	ck_assert_int_eq(str_err(err, 0, -EPERM, "%s", "no room"), -EPERM);
	ck_assert_int_eq(err[0], 'z');
	errno = 1234;
	ck_assert_int_eq(str_err(err, sizeof err, -EIO, "%s", "x"), -EIO);
	ck_assert_int_eq(errno, 1234);
}
END_TEST

Suite *
str_suite(void)
{
	Suite *s = suite_create("str");
	TCase *tc;

	tc = tcase_create("copy");
	tcase_add_loop_test(tc, test_copy, 0, (int)NELEM(copy_cases));
	tcase_add_test(tc, test_copyn);
	tcase_add_loop_test(tc, test_trim, 0, (int)NELEM(trim_cases));
	tcase_add_test(tc, test_lower_prefix);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_to_u64, 0, (int)NELEM(u64_cases));
	tcase_add_test(tc, test_to_u64n);
	tcase_add_loop_test(tc, test_to_size, 0, (int)NELEM(size_cases));
	tcase_add_loop_test(tc, test_to_duration, 0, (int)NELEM(duration_cases));
	tcase_add_loop_test(tc, test_duration_format, 0, (int)NELEM(fmt_cases));
	tcase_add_test(tc, test_duration_round_trip);
	suite_add_tcase(s, tc);

	tc = tcase_create("check");
	tcase_add_loop_test(tc, test_hostname, 0, (int)NELEM(host_cases));
	tcase_add_test(tc, test_hostname_lengths);
	tcase_add_loop_test(tc, test_username, 0, (int)NELEM(user_cases));
	tcase_add_test(tc, test_err);
	suite_add_tcase(s, tc);
	return s;
}
