/*
 * test_dest - policy/dest: destination groups (an mx section, a section
 * named like the domain, the built-in Google/Microsoft/Yahoo rules and a
 * section tuning one), throttle reply matching, the hard-bounce
 * classifier and what an SPF preflight verdict means.  The configuration
 * is parsed from text, as kurierd reads it.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "policy/dest.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static struct config cfg;

static void
load(const char *text)
{
	char err[CONFIG_ERR_MAX];

	config_free(&cfg);
	ck_assert_msg(config_load_string(&cfg, "test.conf", text, err, sizeof err) == 0,
	    "config: %s", err);
}

static void
teardown(void)
{
	config_free(&cfg);
}

static const char base[] =
    "[server]\nhostname = relay.example.net\n"
    "[deliver]\nmax_messages_per_connection = 77\n";

/* The throttle patterns of d as one string, "a b c". */
static const char *
patterns(const struct policy_dest *d, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; d->throttle[i] != NULL; i++)
		off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? " " : "", d->throttle[i]);
	return buf;
}

START_TEST(test_unknown_domain_defaults)
{
	struct policy_dest d;
	char pb[256];

	load(base);
	policy_dest_for(&cfg, "Example.ORG", "mx1.example.org", &d);
	ck_assert_str_eq(d.group, "example.org");
	ck_assert_uint_eq(d.dkim, CONFIG_DKIM_ALL);
	ck_assert_int_eq(d.require_tls, CONFIG_TLS_OPTIONAL);
	ck_assert_uint_eq(d.max_connections, 0);
	ck_assert_uint_eq(d.max_messages_per_connection, 77);
	ck_assert_uint_eq(d.max_messages_per_minute, 0);
	ck_assert_str_eq(patterns(&d, pb, sizeof pb), "");
	ck_assert(!d.builtin);
	/* No MX host known (a route): domain rules only. */
	policy_dest_for(&cfg, "example.org", NULL, &d);
	ck_assert_str_eq(d.group, "example.org");
}
END_TEST

START_TEST(test_builtin_google)
{
	static const char *const hosts[] = {
		"gmail-smtp-in.l.google.com", "ALT1.ASPMX.L.GOOGLE.COM.", "aspmx.l.google.com",
		"alt2.gmail-smtp-in.l.googlemail.com",
	};
	struct policy_dest d;
	char pb[256];

	load(base);
	for (size_t i = 0; i < NELEM(hosts); i++) {
		policy_dest_for(&cfg, "shop-customer.example", hosts[i], &d);
		ck_assert_msg(strcmp(d.group, "gmail.com") == 0, "%s: group %s", hosts[i], d.group);
		ck_assert(d.builtin);
		ck_assert_uint_eq(d.max_connections, 20);
		ck_assert_uint_eq(d.max_messages_per_connection, 100);
		ck_assert_uint_eq(d.max_messages_per_minute, 3000);
		ck_assert_str_eq(patterns(&d, pb, sizeof pb), "4.7.28");
	}
	/* A host merely ending in "google.com" without the dot is not Google's. */
	policy_dest_for(&cfg, "x.example", "notgoogle.com", &d);
	ck_assert_str_eq(d.group, "x.example");
	policy_dest_for(&cfg, "x.example", "google.com.evil.example", &d);
	ck_assert_str_eq(d.group, "x.example");
}
END_TEST

START_TEST(test_builtin_microsoft_yahoo)
{
	struct policy_dest d;
	char pb[256];

	load(base);
	policy_dest_for(&cfg, "contoso.example", "contoso-example.mail.protection.outlook.com", &d);
	ck_assert_str_eq(d.group, "outlook.com");
	ck_assert_uint_eq(d.max_connections, 10);
	ck_assert_uint_eq(d.max_messages_per_connection, 50);
	ck_assert_uint_eq(d.max_messages_per_minute, 1200);
	ck_assert_str_eq(patterns(&d, pb, sizeof pb), "4.7.5* 4.7.6*");
	policy_dest_for(&cfg, "hotmail.com", "hotmail-com.olc.protection.outlook.com", &d);
	ck_assert_str_eq(d.group, "outlook.com");

	policy_dest_for(&cfg, "yahoo.com", "mta5.am0.yahoodns.net", &d);
	ck_assert_str_eq(d.group, "yahoo.com");
	ck_assert_uint_eq(d.max_connections, 10);
	ck_assert_uint_eq(d.max_messages_per_connection, 20);
	ck_assert_uint_eq(d.max_messages_per_minute, 600);
	ck_assert_str_eq(patterns(&d, pb, sizeof pb), "TSS04 TS01 TS02 TS03");
	policy_dest_for(&cfg, "aol.com", "mx-aol.mail.gm0.yahoodns.net", &d);
	ck_assert_str_eq(d.group, "yahoo.com");
}
END_TEST

START_TEST(test_mx_section_groups)
{
	struct policy_dest d;

	load("[deliver]\nper_destination = 5\n"
	    "[destination shared-mx]\nmx = .mx.test, mail.other.test\nmax_connections = 1\n"
	    "max_messages_per_minute = 3\nthrottle = 4.7.99\n"
	    "[destination b.test]\ndkim = rsa\nmax_connections = 4\n");
	policy_dest_for(&cfg, "a.test", "one.mx.test", &d);
	ck_assert_str_eq(d.group, "shared-mx");
	ck_assert_uint_eq(d.max_connections, 1);
	ck_assert_uint_eq(d.max_messages_per_minute, 3);
	ck_assert_uint_eq(d.max_messages_per_connection, 100);   /* [deliver] default */
	ck_assert_str_eq(d.throttle[0], "4.7.99");
	ck_assert_ptr_null(d.throttle[1]);
	/* A domain section that shapes (max_connections) is a group of its own. */
	policy_dest_for(&cfg, "b.test", "two.mx.test", &d);
	ck_assert_str_eq(d.group, "b.test");
	ck_assert_uint_eq(d.dkim, CONFIG_DKIM_RSA);
	ck_assert_uint_eq(d.max_connections, 4);
	policy_dest_for(&cfg, "c.test", "MAIL.OTHER.TEST", &d);
	ck_assert_str_eq(d.group, "shared-mx");
	/* Exact host pattern: another host of other.test is not in it. */
	policy_dest_for(&cfg, "c.test", "mail2.other.test", &d);
	ck_assert_str_eq(d.group, "c.test");
	/* The bare suffix "mx.test" is not under ".mx.test". */
	policy_dest_for(&cfg, "c.test", "mx.test", &d);
	ck_assert_str_eq(d.group, "c.test");
	/* Elsewhere, the section named like the domain. */
	policy_dest_for(&cfg, "B.test", "mx.b.test", &d);
	ck_assert_str_eq(d.group, "b.test");
	ck_assert_uint_eq(d.dkim, CONFIG_DKIM_RSA);
	ck_assert_uint_eq(d.max_connections, 4);
	ck_assert_ptr_null(d.throttle[0]);
	/* Without an MX host (a route) the mx section cannot apply. */
	policy_dest_for(&cfg, "a.test", NULL, &d);
	ck_assert_str_eq(d.group, "a.test");
}
END_TEST

START_TEST(test_section_tunes_builtin)
{
	struct policy_dest d;
	char pb[256];

	load("[destination gmail.com]\nmax_connections = 5\nrequire_tls = verify\n"
	    "[destination yahoo.com]\nthrottle = TSS09\n");
	/* Google-hosted: the built-in rule with gmail.com's keys over it. */
	policy_dest_for(&cfg, "customer.example", "aspmx.l.google.com", &d);
	ck_assert_str_eq(d.group, "gmail.com");
	ck_assert_uint_eq(d.max_connections, 5);
	ck_assert_uint_eq(d.max_messages_per_connection, 100);
	ck_assert_uint_eq(d.max_messages_per_minute, 3000);
	ck_assert_int_eq(d.require_tls, CONFIG_TLS_VERIFY);
	ck_assert_str_eq(patterns(&d, pb, sizeof pb), "4.7.28");
	ck_assert(d.builtin);
	/* gmail.com itself: the same group and values. */
	policy_dest_for(&cfg, "gmail.com", "gmail-smtp-in.l.google.com", &d);
	ck_assert_str_eq(d.group, "gmail.com");
	ck_assert_uint_eq(d.max_connections, 5);
	ck_assert_uint_eq(d.max_messages_per_minute, 3000);
	/* A domain section without shaping keys stays in the group with its own dkim/TLS. */
	load("[destination customer.example]\ndkim = rsa\nrequire_tls = yes\n"
	    "[destination shaped.example]\nmax_connections = 2\n"
	    "[destination yahoo.com]\nthrottle = TSS09\n");
	policy_dest_for(&cfg, "customer.example", "aspmx.l.google.com", &d);
	ck_assert_str_eq(d.group, "gmail.com");
	ck_assert_uint_eq(d.dkim, CONFIG_DKIM_RSA);
	ck_assert_int_eq(d.require_tls, CONFIG_TLS_REQUIRED);
	ck_assert_uint_eq(d.max_connections, 20);
	ck_assert_str_eq(patterns(&d, pb, sizeof pb), "4.7.28");
	policy_dest_for(&cfg, "other.example", "aspmx.l.google.com", &d);
	ck_assert_uint_eq(d.dkim, CONFIG_DKIM_ALL);
	ck_assert_int_eq(d.require_tls, CONFIG_TLS_OPTIONAL);
	policy_dest_for(&cfg, "shaped.example", "aspmx.l.google.com", &d);
	ck_assert_str_eq(d.group, "shaped.example");
	ck_assert_uint_eq(d.max_connections, 2);
	ck_assert_ptr_null(d.throttle[0]);
	/* A throttle list replaces the built-in one; the rest stays. */
	policy_dest_for(&cfg, "yahoo.com", "mta6.am0.yahoodns.net", &d);
	ck_assert_str_eq(patterns(&d, pb, sizeof pb), "TSS09");
	ck_assert_uint_eq(d.max_connections, 10);
	ck_assert_uint_eq(d.max_messages_per_connection, 20);
}
END_TEST

START_TEST(test_throttled)
{
	static const struct {
		const char *mx, *reply;
		bool want;
	} cases[] = {
		{ "aspmx.l.google.com", "421 4.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail", true },
		{ "aspmx.l.google.com", "421-4.7.28 first line\n421 4.7.28 second line", true },
		{ "aspmx.l.google.com", "450 4.7.28 rate limited", true },
		/* Google's general "try again later" is not a throttle. */
		{ "aspmx.l.google.com", "421 4.7.0 Try again later, closing connection.", false },
		/* Only 4xx: a 5xx with the code is a refusal, not a slow-down. */
		{ "aspmx.l.google.com", "550 4.7.28 odd", false },
		{ "aspmx.l.google.com", "250 2.0.0 OK 4.7.28", false },
		{ "aspmx.l.google.com", "421 4.7.280 other", false },
		{ "x.mail.protection.outlook.com", "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77719)", true },
		{ "x.mail.protection.outlook.com", "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.", true },
		{ "x.mail.protection.outlook.com", "451 4.7.651 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.", true },
		{ "x.mail.protection.outlook.com", "451 4.4.0 Message failed to be made redundant", false },
		{ "x.mail.protection.outlook.com", "550 5.7.500 refused", false },
		{ "mta7.am0.yahoodns.net", "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1", true },
		{ "mta7.am0.yahoodns.net", "451 Message temporarily deferred - [TS02].", true },
		{ "mta7.am0.yahoodns.net", "421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred", true },
		{ "mta7.am0.yahoodns.net", "421 4.7.0 [XTSS04] nope", false },
		{ "mta7.am0.yahoodns.net", "421 4.7.0 Try later", false },
		{ "mta7.am0.yahoodns.net", "554 5.7.9 Message not accepted for policy reasons [TSS04]", false },
		{ "mx.unknown.example", "421 4.7.28 slow down", false },
		{ "mx.unknown.example", "", false },
		{ "mx.unknown.example", "4", false },
	};
	struct policy_dest d;

	load(base);
	for (size_t i = 0; i < NELEM(cases); i++) {
		policy_dest_for(&cfg, "x.example", cases[i].mx, &d);
		ck_assert_msg(policy_dest_throttled(&d, cases[i].reply) == cases[i].want,
		    "%s: \"%s\" want %d", cases[i].mx, cases[i].reply, cases[i].want);
	}
}
END_TEST

START_TEST(test_throttled_prefix_pattern)
{
	struct policy_dest d;

	load("[destination slow.test]\nthrottle = 4.7.5*, busy, TS0*\n");
	policy_dest_for(&cfg, "slow.test", "mx.slow.test", &d);
	ck_assert(policy_dest_throttled(&d, "451 4.7.5 x"));
	ck_assert(policy_dest_throttled(&d, "451 4.7.599 x"));
	ck_assert(!policy_dest_throttled(&d, "451 4.7.49 x"));
	ck_assert(!policy_dest_throttled(&d, "451 4.7.6 x"));
	ck_assert(policy_dest_throttled(&d, "421 Server BUSY, come back"));
	ck_assert(!policy_dest_throttled(&d, "421 Server busybody"));
	ck_assert(policy_dest_throttled(&d, "421 [TS03] later"));
	ck_assert(!policy_dest_throttled(&d, "421 [TSS04] later"));
}
END_TEST

START_TEST(test_hard_bounce)
{
	static const struct {
		const char *reply;
		bool want;
	} cases[] = {
		{ "550 5.1.1 The email account that you tried to reach does not exist.", true },
		{ "550-5.1.1 first\n550 5.1.1 second", true },
		{ "550 5.1.2 bad destination system", true },
		{ "553 5.1.3 bad address syntax", true },
		{ "550 5.1.6 mailbox has moved", true },
		{ "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", true },
		{ "550 5.2.1 mailbox disabled", true },
		{ "550 user unknown", true },
		{ "551 No such user here", true },
		{ "553 sorry, that mailbox does not exist", true },
		/* Policy refusals, full mailboxes, temporary replies: no. */
		{ "550 5.7.1 Message rejected as spam; user unknown", false },
		{ "554 5.7.1 relay denied", false },
		{ "552 5.2.2 mailbox full", false },
		{ "452 4.2.2 over quota", false },
		{ "450 4.1.1 user unknown (try again)", false },
		{ "450 user unknown", false },
		{ "550 5.1.0 other address status", false },
		{ "550 5.1.11 not a hard code", false },
		{ "554 user unknown", false },
		{ "550 mailbox unavailable", false },
		{ "250 2.1.5 ok", false },
		{ "", false },
		{ "55", false },
	};

	for (size_t i = 0; i < NELEM(cases); i++)
		ck_assert_msg(policy_hard_bounce(cases[i].reply) == cases[i].want,
		    "\"%s\" want %d", cases[i].reply, cases[i].want);
}
END_TEST

START_TEST(test_spf_decide)
{
	static const char *const failing[] = {
		"fail", "softfail", "none", "permerror", "temperror", "whatever",
	};

	load("[deliver]\nspf_preflight = defer\n");
	ck_assert_int_eq(policy_spf_decide(&cfg, "pass"), POLICY_SPF_DELIVER);
	ck_assert_int_eq(policy_spf_decide(&cfg, "neutral"), POLICY_SPF_WARN);
	for (size_t i = 0; i < NELEM(failing); i++)
		ck_assert_int_eq(policy_spf_decide(&cfg, failing[i]), POLICY_SPF_DEFER);
	load("[deliver]\nspf_preflight = warn\n");
	ck_assert_int_eq(policy_spf_decide(&cfg, "pass"), POLICY_SPF_DELIVER);
	for (size_t i = 0; i < NELEM(failing); i++)
		ck_assert_int_eq(policy_spf_decide(&cfg, failing[i]), POLICY_SPF_WARN);
	load("[deliver]\nspf_preflight = off\n");
	for (size_t i = 0; i < NELEM(failing); i++)
		ck_assert_int_eq(policy_spf_decide(&cfg, failing[i]), POLICY_SPF_DELIVER);
}
END_TEST

Suite *
dest_suite(void)
{
	Suite *s = suite_create("dest");
	TCase *tc = tcase_create("dest");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_unknown_domain_defaults);
	tcase_add_test(tc, test_builtin_google);
	tcase_add_test(tc, test_builtin_microsoft_yahoo);
	tcase_add_test(tc, test_mx_section_groups);
	tcase_add_test(tc, test_section_tunes_builtin);
	tcase_add_test(tc, test_throttled);
	tcase_add_test(tc, test_throttled_prefix_pattern);
	tcase_add_test(tc, test_hard_bounce);
	tcase_add_test(tc, test_spf_decide);
	suite_add_tcase(s, tc);
	return s;
}
