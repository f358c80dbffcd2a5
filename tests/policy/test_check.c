/*
 * test_check - policy/check: the stateless decisions (size, recipient
 * count, sender and recipient domains, the header From) and the
 * core/rfc5322 scanner and From parser beneath them.  Every rule is
 * tried at its boundary: the last value allowed and the first refused.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/rfc5322.h"
#include "policy/check.h"
#include "tests/suites.h"

static void
cfg_with(struct config *cfg, const char *text)
{
	char err[CONFIG_ERR_MAX];

	ck_assert_msg(config_load_string(cfg, "test", text, err, sizeof err) == 0,
	    "config: %s", err);
}

START_TEST(size_boundary)
{
	struct config cfg;
	struct policy_result res;

	cfg_with(&cfg, "[relay]\nmax_message_size = 2048\n");
	ck_assert(policy_check_size(&cfg, 0, &res));
	ck_assert(policy_check_size(&cfg, 2048, &res));
	ck_assert_int_eq(res.verdict, POLICY_OK);
	ck_assert_ptr_null(res.rule);
	ck_assert_str_eq(res.reply, "");
	ck_assert(!policy_check_size(&cfg, 2049, &res));
	ck_assert_int_eq(res.verdict, POLICY_REJECT);
	ck_assert_str_eq(res.rule, "limit.size");
	ck_assert_str_eq(res.reply,
	    "552 5.3.4 Message size exceeds fixed maximum message size (2048 bytes)");
	config_free(&cfg);
}
END_TEST

START_TEST(rcpt_count_boundary)
{
	struct config cfg;
	struct policy_result res;

	cfg_with(&cfg, "[relay]\nmax_recipients = 3\n");
	/* nrcpt recipients accepted so far; may one more come? */
	ck_assert(policy_check_rcpt_count(&cfg, 0, &res));
	ck_assert(policy_check_rcpt_count(&cfg, 2, &res));
	ck_assert(!policy_check_rcpt_count(&cfg, 3, &res));
	ck_assert_int_eq(res.verdict, POLICY_TEMPFAIL);
	ck_assert_str_eq(res.rule, "limit.recipients");
	ck_assert_str_eq(res.reply, "452 4.5.3 Too many recipients (at most 3 per message)");
	config_free(&cfg);
}
END_TEST

START_TEST(sender_domains)
{
	struct policy_result res;
	const char *doms = "shop.example news.shop.example";

	ck_assert(policy_check_sender(doms, "shop.example", false, &res));
	ck_assert(policy_check_sender(doms, "SHOP.Example", false, &res));
	ck_assert(policy_check_sender(doms, "shop.example.", false, &res));
	ck_assert(policy_check_sender(doms, "news.shop.example", true, &res));
	/* Subdomains do not inherit, nor do parents or look-alikes. */
	ck_assert(!policy_check_sender(doms, "mail.shop.example", false, &res));
	ck_assert_int_eq(res.verdict, POLICY_REJECT);
	ck_assert_str_eq(res.rule, "sender.envelope");
	ck_assert_str_eq(res.reply, "550 5.7.1 Sender address not allowed for this user");
	ck_assert(!policy_check_sender(doms, "example", true, &res));
	ck_assert_str_eq(res.rule, "sender.header");
	ck_assert(!policy_check_sender(doms, "shop.exampl", false, &res));
	ck_assert(!policy_check_sender(doms, "xshop.example", false, &res));
	ck_assert(!policy_check_sender(doms, "", false, &res));
	ck_assert(!policy_check_sender("", "shop.example", false, &res));
	/* The reply never lists the allowed domains. */
	ck_assert_ptr_null(strstr(res.reply, "shop"));
}
END_TEST

START_TEST(rcpt_domains)
{
	struct policy_result res;

	ck_assert(policy_check_rcpt_domain("", "anything.example", &res));
	ck_assert_int_eq(res.verdict, POLICY_OK);
	ck_assert(policy_check_rcpt_domain("a.example b.example", "B.EXAMPLE", &res));
	ck_assert(!policy_check_rcpt_domain("a.example b.example", "c.example", &res));
	ck_assert_int_eq(res.verdict, POLICY_REJECT);
	ck_assert_str_eq(res.rule, "recipient.domain");
	ck_assert_str_eq(res.reply, "550 5.7.1 Recipient domain not allowed for this user");
	ck_assert(!policy_check_rcpt_domain("a.example", "sub.a.example", &res));
}
END_TEST

/* The header cases: message, allowed domains, expected reply ("" = OK), From domain. */
static const struct {
	const char *name, *msg, *reply, *domain;
} hcases[] = {
	{ "none", "To: a@b.example\r\nSubject: x\r\n\r\nbody\r\n",
	  "550 5.6.0 Message has no From header", "" },
	{ "one", "From: Shop <info@shop.example>\r\nTo: a@b.example\r\n\r\nbody\r\n",
	  "", "shop.example" },
	{ "addr-spec", "From: info@Shop.Example\r\n\r\n", "", "shop.example" },
	{ "bare LF", "From: info@shop.example\nTo: x@y\n\nbody\n", "", "shop.example" },
	{ "no body", "From: info@shop.example\r\n", "", "shop.example" },
	{ "two fields", "From: a@shop.example\r\nFrom: b@shop.example\r\n\r\n",
	  "550 5.6.0 Message has several From headers", "" },
	{ "two fields, case", "From: a@shop.example\r\nfROM : b@shop.example\r\n\r\n",
	  "550 5.6.0 Message has several From headers", "" },
	{ "group", "From: Team: a@shop.example;\r\n\r\n",
	  "550 5.6.0 Message has a group in its From header", "" },
	{ "empty group", "From: undisclosed-recipients:;\r\n\r\n",
	  "550 5.6.0 Message has a group in its From header", "" },
	{ "two mailboxes", "From: a@shop.example, b@shop.example\r\n\r\n",
	  "550 5.6.0 Message has a From header with several addresses", "" },
	{ "unparsable", "From: <a@shop.example\r\n\r\n",
	  "550 5.6.0 Message has an unparsable From header", "" },
	{ "no @", "From: shop\r\n\r\n",
	  "550 5.6.0 Message has an unparsable From header", "" },
	{ "empty", "From:\r\n\r\n",
	  "550 5.6.0 Message has an unparsable From header", "" },
	{ "folded", "From: \"Shop, Inc.\"\r\n\t(sales)\r\n <info@shop.example>\r\nTo: x@y\r\n\r\n",
	  "", "shop.example" },
	{ "comment and quoted", "From: \"a@evil.example\" <info@shop.example> (x@y)\r\n\r\n",
	  "", "shop.example" },
	{ "From in the body only", "To: x@y\r\n\r\nFrom: info@shop.example\r\n",
	  "550 5.6.0 Message has no From header", "" },
	{ "domain not allowed", "From: info@evil.example\r\n\r\n",
	  "550 5.7.1 Sender address not allowed for this user", "evil.example" },
	{ "subdomain not allowed", "From: info@mail.shop.example\r\n\r\n",
	  "550 5.7.1 Sender address not allowed for this user", "mail.shop.example" },
	{ "Sender is not From", "Sender: info@shop.example\r\n\r\n",
	  "550 5.6.0 Message has no From header", "" },
};

START_TEST(headers)
{
	const char *m = hcases[_i].msg;
	struct policy_result res;
	char dom[256];
	bool ok;

	memset(&res, 0x55, sizeof res);
	ok = policy_check_headers("shop.example", m, strlen(m), dom, sizeof dom, &res);
	ck_assert_msg(ok == (hcases[_i].reply[0] == '\0'), "case %s", hcases[_i].name);
	ck_assert_msg(strcmp(res.reply, hcases[_i].reply) == 0, "case %s: got \"%s\"",
	    hcases[_i].name, res.reply);
	ck_assert_msg(strcmp(dom, hcases[_i].domain) == 0, "case %s: domain \"%s\"",
	    hcases[_i].name, dom);
	if (ok) {
		ck_assert_int_eq(res.verdict, POLICY_OK);
		ck_assert_ptr_null(res.rule);
	} else {
		ck_assert_int_eq(res.verdict, POLICY_REJECT);
		ck_assert_str_eq(res.rule, strncmp(res.reply, "550 5.7.1", 9) == 0 ?
		    "sender.header" : "header.from");
	}
}
END_TEST

/* Only msg[0..len) is read: a From beyond len is not seen. */
START_TEST(headers_bounded)
{
	const char m[] = "To: x@y\r\nFrom: info@shop.example\r\n\r\n";
	struct policy_result res;
	char dom[256];

	ck_assert(!policy_check_headers("shop.example", m, 9, dom, sizeof dom, &res));
	ck_assert_str_eq(res.reply, "550 5.6.0 Message has no From header");
	ck_assert(policy_check_headers("shop.example", m, sizeof m - 1, dom, sizeof dom, &res));
}
END_TEST

START_TEST(rfc5322_scanner)
{
	const char m[] = "A: 1\r\nB: 2\r\n\t3\r\nno colon\r\n\r\nbody";
	struct rfc5322_scan s;
	const char *f;
	size_t fl;

	rfc5322_scan_init(&s, m, sizeof m - 1);
	ck_assert(rfc5322_next(&s, &f, &fl));
	ck_assert_int_eq((int)fl, 4);
	ck_assert(rfc5322_field_is(f, fl, "a"));
	ck_assert(rfc5322_next(&s, &f, &fl));
	ck_assert_int_eq((int)fl, 8);
	ck_assert(memcmp(f, "B: 2\r\n\t3", 8) == 0);
	ck_assert(rfc5322_next(&s, &f, &fl));
	ck_assert_ptr_null(rfc5322_field_colon(f, fl));
	ck_assert(!rfc5322_field_is(f, fl, "no colon"));
	ck_assert(!rfc5322_next(&s, &f, &fl));
	ck_assert_ptr_nonnull(s.body);
	ck_assert_str_eq(s.body, "body");
}
END_TEST

START_TEST(rfc5322_from)
{
	struct rfc5322_from fr;
	const char *f = "From: Team: a@X.example, <b@y.example>;, c@z.example";

	ck_assert(rfc5322_from_parse(f, strlen(f), &fr));
	ck_assert_uint_eq(fr.nmbox, 3);
	ck_assert_uint_eq(fr.ngroup, 1);
	ck_assert_str_eq(fr.domain, "x.example");
	f = "From: a@[192.0.2.1]";
	ck_assert(rfc5322_from_parse(f, strlen(f), &fr));
	ck_assert_str_eq(fr.domain, "[192.0.2.1]");
	f = "From: ((((nested)))) a@b.example";
	ck_assert(rfc5322_from_parse(f, strlen(f), &fr));
	ck_assert_uint_eq(fr.nmbox, 1);
	f = "From: a@b.example (unterminated";
	ck_assert(!rfc5322_from_parse(f, strlen(f), &fr));
	ck_assert_str_eq(fr.why, "unterminated comment");
	f = "no colon";
	ck_assert(!rfc5322_from_parse(f, strlen(f), &fr));
}
END_TEST

Suite *
check_suite(void)
{
	Suite *s = suite_create("check");
	TCase *tc = tcase_create("pure");

	tcase_add_test(tc, size_boundary);
	tcase_add_test(tc, rcpt_count_boundary);
	tcase_add_test(tc, sender_domains);
	tcase_add_test(tc, rcpt_domains);
	tcase_add_loop_test(tc, headers, 0, (int)(sizeof hcases / sizeof hcases[0]));
	tcase_add_test(tc, headers_bounded);
	tcase_add_test(tc, rfc5322_scanner);
	tcase_add_test(tc, rfc5322_from);
	suite_add_tcase(s, tc);
	return s;
}
