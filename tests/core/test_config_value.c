/*
 * test_config_value - core/config_value: each value parser on its own,
 * with the exact reason of each refusal, and the formatters giving back
 * the text a value came from.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/config_value.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* --- endpoints ------------------------------------------------------------ */

static const struct ep_case {
	const char *in;
	bool allow_unix;
	const char *host;
	unsigned port;
	const char *unix_path;
	const char *why;   /* NULL when valid */
} ep_cases[] = {
	{ "127.0.0.1:6379", true, "127.0.0.1", 6379, "", NULL },
	{ "[::1]:587", false, "::1", 587, "", NULL },
	{ "[2001:db8::25]:25", false, "2001:db8::25", 25, "", NULL },
	{ "unix:/run/redis.sock", true, "", 0, "/run/redis.sock", NULL },
	{ "localhost:25", false, "localhost", 25, "", NULL },
	{ "mail.example.com:65535", false, "mail.example.com", 65535, "", NULL },
	{ "x:1", false, "x", 1, "", NULL },
	{ "unix:/run/redis.sock", false, NULL, 0, NULL,
	    "a unix socket is not allowed here" },
	{ "unix:", true, NULL, 0, NULL,
	    "unix socket path must be absolute (unix:/run/redis/redis.sock)" },
	{ "host", true, NULL, 0, NULL, "expected host:port" },
	{ "", true, NULL, 0, NULL, "expected host:port" },
	{ "[::1]", true, NULL, 0, NULL, "expected [IPv6-address]:port" },
	{ "[::1", true, NULL, 0, NULL, "expected [IPv6-address]:port" },
	{ "[]:25", true, NULL, 0, NULL, "missing host before the port" },
	{ "::1:6379", true, NULL, 0, NULL, "IPv6 addresses go in brackets: [::1]:port" },
	{ "host:0", true, NULL, 0, NULL, "port must be a number from 1 to 65535" },
	{ "host:65536", true, NULL, 0, NULL, "port must be a number from 1 to 65535" },
	{ "host:+25", true, NULL, 0, NULL, "port must be a number from 1 to 65535" },
	{ "host:smtp", true, NULL, 0, NULL, "port must be a number from 1 to 65535" },
	{ "ho\tst:25", true, NULL, 0, NULL,
	    "host contains a character not allowed in a host name or address" },
	{ "h\xc3\xa9:25", true, NULL, 0, NULL,
	    "host contains a character not allowed in a host name or address" },
	{ "[a]b]:25", true, NULL, 0, NULL, "expected [IPv6-address]:port" },
};

START_TEST(test_endpoint)
{
	const struct ep_case *c = &ep_cases[_i];
	struct config_endpoint ep;
	const char *why = NULL;
	char back[512];
	int rc;

	memset(&ep, 0x5a, sizeof ep);
	rc = config_parse_endpoint(c->in, c->allow_unix, &ep, &why);
	if (c->why != NULL) {
		ck_assert_msg(rc == -EINVAL, "\"%s\": rc %d", c->in, rc);
		ck_assert_ptr_nonnull(why);
		ck_assert_str_eq(why, c->why);
		return;
	}
	ck_assert_msg(rc == 0, "\"%s\": %s", c->in, why ? why : "?");
	ck_assert_str_eq(ep.host, c->host);
	ck_assert_uint_eq(ep.port, c->port);
	ck_assert_str_eq(ep.unix_path, c->unix_path);
	/* Formatting gives back the text it came from. */
	ck_assert_str_eq(config_endpoint_str(&ep, back, sizeof back), c->in);
}
END_TEST

START_TEST(test_endpoint_lengths)
{
	char in[400], want[300];
	struct config_endpoint ep;
	const char *why = NULL;

	/* 107 bytes of path fit sun_path with its NUL; 108 do not. */
	memset(want, 'p', 107);
	want[0] = '/';
	want[107] = '\0';
	snprintf(in, sizeof in, "unix:%s", want);
	ck_assert_int_eq(config_parse_endpoint(in, true, &ep, &why), 0);
	ck_assert_str_eq(ep.unix_path, want);
	snprintf(in, sizeof in, "unix:%sp", want);
	ck_assert_int_eq(config_parse_endpoint(in, true, &ep, &why), -EINVAL);
	ck_assert_str_eq(why, "unix socket path too long (107 bytes at most)");

	memset(want, 'h', 255);
	want[255] = '\0';
	snprintf(in, sizeof in, "%s:25", want);
	ck_assert_int_eq(config_parse_endpoint(in, false, &ep, &why), 0);
	ck_assert_str_eq(ep.host, want);
	snprintf(in, sizeof in, "%sh:25", want);
	ck_assert_int_eq(config_parse_endpoint(in, false, &ep, &why), -EINVAL);
	ck_assert_str_eq(why, "host name too long");
}
END_TEST

/* --- roles ---------------------------------------------------------------- */

static const struct roles_case {
	const char *in;
	int rc;
	unsigned roles;
} roles_cases[] = {
	{ "relay", 0, ROLE_RELAY },
	{ "deliver", 0, ROLE_DELIVER },
	{ "mailbox", 0, ROLE_MAILBOX },
	{ "relay,deliver,mailbox", 0, ROLE_ALL },
	{ "mailbox,relay", 0, ROLE_RELAY | ROLE_MAILBOX },
	{ " Relay ,\tDELIVER ", 0, ROLE_RELAY | ROLE_DELIVER },
	{ "relay,relay", 0, ROLE_RELAY },
	{ "", -EINVAL, 0 },
	{ "smtp", -EINVAL, 0 },
	{ ",relay", -EINVAL, 0 },
	{ "relay,,deliver", -EINVAL, 0 },
	{ "relay deliver", -EINVAL, 0 },
	{ "rel", -EINVAL, 0 },
	{ "relayx", -EINVAL, 0 },
};

START_TEST(test_roles_parse)
{
	const struct roles_case *c = &roles_cases[_i];
	unsigned roles = 0xdead;
	const char *why = NULL;
	int rc;

	rc = config_parse_roles(c->in, &roles, &why);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d", c->in, rc);
	if (rc == 0) {
		ck_assert_uint_eq(roles, c->roles);
	} else {
		ck_assert_uint_eq(roles, 0xdead);
		ck_assert_ptr_nonnull(why);
	}
}
END_TEST

START_TEST(test_roles_str)
{
	static const char *const want[8] = {
		"", "relay", "deliver", "relay,deliver", "mailbox", "relay,mailbox",
		"deliver,mailbox", "relay,deliver,mailbox",
	};
	char dst[64];
	unsigned back;
	const char *why;

	for (unsigned r = 0; r < 8; r++) {
		ck_assert_ptr_eq(config_roles_str(r, dst, sizeof dst), dst);
		ck_assert_str_eq(dst, want[r]);
		if (r == 0)
			continue;
		ck_assert_int_eq(config_parse_roles(dst, &back, &why), 0);
		ck_assert_uint_eq(back, r);
	}
	/* A short buffer holds the names that fit whole. */
	ck_assert_str_eq(config_roles_str(ROLE_ALL, dst, 10), "relay");
	ck_assert_str_eq(config_roles_str(ROLE_ALL, dst, 14), "relay,deliver");
	ck_assert_str_eq(config_roles_str(ROLE_ALL, dst, 1), "");
}
END_TEST

/* --- retry lists and booleans --------------------------------------------- */

START_TEST(test_retry_parse)
{
	uint64_t ms[CONFIG_RETRY_MAX];
	char in[CONFIG_RETRY_MAX * 4 + 8];
	unsigned n = 99;
	const char *why = NULL;
	size_t len = 0;

	ck_assert_int_eq(config_parse_retry(" 5m, 10m ,1h", ms, &n, &why), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(ms[0], 300000);
	ck_assert_uint_eq(ms[1], 600000);
	ck_assert_uint_eq(ms[2], 3600000);

	n = 99;
	ck_assert_int_eq(config_parse_retry("", ms, &n, &why), -EINVAL);
	ck_assert_str_eq(why, "retry needs at least one interval");
	ck_assert_uint_eq(n, 99);
	ck_assert_int_eq(config_parse_retry("5m,,10m", ms, &n, &why), -EINVAL);
	ck_assert_str_eq(why, "retry has an empty entry (5m,,10m?)");
	ck_assert_int_eq(config_parse_retry("5m,999ms", ms, &n, &why), -EINVAL);
	ck_assert_str_eq(why,
	    "retry is a comma-separated list of durations of 1s or more (5m,10m,1h)");

	/* CONFIG_RETRY_MAX intervals fit; one more does not. */
	for (unsigned i = 0; i < CONFIG_RETRY_MAX; i++)
		len += (size_t)snprintf(in + len, sizeof in - len, "%s1h", i ? "," : "");
	ck_assert_int_eq(config_parse_retry(in, ms, &n, &why), 0);
	ck_assert_uint_eq(n, CONFIG_RETRY_MAX);
	snprintf(in + len, sizeof in - len, ",1h");
	ck_assert_int_eq(config_parse_retry(in, ms, &n, &why), -EINVAL);
	ck_assert_str_eq(why, "retry lists at most 32 intervals");
}
END_TEST

static const struct bool_case {
	const char *in;
	int rc;
	bool value;
} bool_cases[] = {
	{ "yes", 0, true }, { "true", 0, true }, { "on", 0, true },
	{ "no", 0, false }, { "false", 0, false }, { "off", 0, false },
	{ "Yes", -EINVAL, false }, { "1", -EINVAL, false }, { "", -EINVAL, false },
	{ "yes ", -EINVAL, false }, { "y", -EINVAL, false },
};

START_TEST(test_bool_parse)
{
	const struct bool_case *c = &bool_cases[_i];
	bool b = !c->value;
	int rc;

	rc = config_parse_bool(c->in, &b);
	ck_assert_msg(rc == c->rc, "\"%s\": rc %d", c->in, rc);
	if (rc == 0)
		ck_assert(b == c->value);
	else
		ck_assert(b == !c->value);  /* untouched */
}
END_TEST

Suite *
config_value_suite(void)
{
	Suite *s = suite_create("config_value");
	TCase *tc;

	tc = tcase_create("values");
	tcase_add_loop_test(tc, test_endpoint, 0, (int)NELEM(ep_cases));
	tcase_add_test(tc, test_endpoint_lengths);
	tcase_add_loop_test(tc, test_roles_parse, 0, (int)NELEM(roles_cases));
	tcase_add_test(tc, test_roles_str);
	tcase_add_test(tc, test_retry_parse);
	tcase_add_loop_test(tc, test_bool_parse, 0, (int)NELEM(bool_cases));
	suite_add_tcase(s, tc);
	return s;
}
