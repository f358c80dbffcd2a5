/*
 * test_imap_mime - mailbox/imap_mime: ENVELOPE, BODY and BODYSTRUCTURE
 * of hand-made messages against strings written from RFC 3501's grammar
 * (a plain message, a delivery report with its three parts, groups,
 * routes, encoded-words kept, 8-bit text as literals, a multipart with
 * no boundary), BODY[section] byte ranges checked against the raw
 * bytes, malformed section specs, partial ranges, search text (RFC 2047,
 * base64 and Latin-1 decoding, case folding), the Date field, hostile
 * input (deep nesting, NUL bytes), and the corpus of real returns in
 * ../shared/testdata/bounces: every message's BODYSTRUCTURE is balanced
 * with GMime's number of parts, HEADER + TEXT is the whole message, and
 * each top-level leaf's BODY[n] is exactly GMime's content range.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "mailbox/imap_mime.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define CORPUS "../shared/testdata/bounces"

/* --- helpers ----------------------------------------------------------------------------- */

static struct imap_msg *
parse(const char *s)
{
	return imap_msg_parse(s, strlen(s));
}

static void
assert_envelope(const char *msg, const char *want)
{
	struct imap_msg *m = parse(msg);
	struct buf out = BUF_INIT;

	imap_msg_envelope(m, &out);
	ck_assert_str_eq(out.data, want);
	ck_assert(imap_syntax_check(out.data, out.len, NULL));
	buf_free(&out);
	imap_msg_free(m);
}

static void
assert_body(const char *msg, bool ext, const char *want)
{
	struct imap_msg *m = parse(msg);
	struct buf out = BUF_INIT;

	imap_msg_bodystructure(m, ext, &out);
	ck_assert_str_eq(out.data, want);
	ck_assert(imap_syntax_check(out.data, out.len, NULL));
	buf_free(&out);
	imap_msg_free(m);
}

/* assert_section - BODY[spec] of msg is want (NULL: the spec is refused). */
static void
assert_section(const char *msg, const char *spec, const char *want)
{
	struct imap_msg *m = parse(msg);
	struct buf scratch = BUF_INIT;
	const char *data;
	size_t dlen;
	int rc = imap_msg_section(m, spec, strlen(spec), &scratch, &data, &dlen);

	if (want == NULL) {
		ck_assert_msg(rc == -EINVAL, "[%s] accepted", spec);
	} else {
		ck_assert_msg(rc == 0, "[%s] refused", spec);
		ck_assert_msg(dlen == strlen(want) && memcmp(data, want, dlen) == 0,
		    "[%s] is \"%.*s\", want \"%s\"", spec, (int)dlen, data, want);
	}
	buf_free(&scratch);
	imap_msg_free(m);
}

/* --- a plain message (RFC 3501 7.4.2's own example) ---------------------------------------- */

static const char plain[] =
    "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
    "From: Fred Foobar <foobar@Blurdybloop.COM>\r\n"
    "Subject: afternoon meeting\r\n"
    "To: mooch@owatagu.siam.edu\r\n"
    "Message-Id: <B27397-0100000@Blurdybloop.COM>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=US-ASCII\r\n"
    "\r\n"
    "Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n";

static const char plain_head[] =
    "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
    "From: Fred Foobar <foobar@Blurdybloop.COM>\r\n"
    "Subject: afternoon meeting\r\n"
    "To: mooch@owatagu.siam.edu\r\n"
    "Message-Id: <B27397-0100000@Blurdybloop.COM>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=US-ASCII\r\n"
    "\r\n";

START_TEST(test_plain)
{
	const char *fred = "((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.COM\"))";
	char want[1024];

	snprintf(want, sizeof want,
	    "(\"Mon, 7 Feb 1994 21:52:25 -0800 (PST)\" \"afternoon meeting\" %s %s %s "
	    "((NIL NIL \"mooch\" \"owatagu.siam.edu\")) NIL NIL NIL "
	    "\"<B27397-0100000@Blurdybloop.COM>\")",
	    fred, fred, fred);
	assert_envelope(plain, want);
	assert_body(plain, false, "(\"text\" \"plain\" (\"charset\" \"US-ASCII\") NIL NIL \"7BIT\" 55 1)");
	assert_body(plain, true,
	    "(\"text\" \"plain\" (\"charset\" \"US-ASCII\") NIL NIL \"7BIT\" 55 1 NIL NIL NIL NIL)");
	assert_section(plain, "", plain);
	assert_section(plain, "HEADER", plain_head);
	assert_section(plain, "TEXT", "Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n");
	assert_section(plain, "1", "Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n");
	assert_section(plain, "header.fields (subject FROM)",
	    "From: Fred Foobar <foobar@Blurdybloop.COM>\r\nSubject: afternoon meeting\r\n\r\n");
	assert_section(plain, "HEADER.FIELDS.NOT (Date From Subject To Message-Id MIME-Version)",
	    "Content-Type: text/plain; charset=US-ASCII\r\n\r\n");
	assert_section(plain, "HEADER.FIELDS (X-None)", "\r\n");
	/* Part 2 of a one-part message, HEADER of a part that is no message: nothing. */
	assert_section(plain, "2", "");
	assert_section(plain, "1.1", "");
	assert_section(plain, "1.HEADER", "");
}
END_TEST

/* --- a delivery report -------------------------------------------------------------------- */

static const char report[] =
    "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
    "To: bounce+abc@bounces.example.com\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "Date: Tue, 3 Mar 2026 10:00:00 +0000\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
    "\tboundary=\"XX\"\r\n"
    "\r\n"
    "This is a MIME-encapsulated message.\r\n"
    "\r\n"
    "--XX\r\n"
    "Content-Description: Notification\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n"
    "I'm sorry.\r\n"
    "--XX\r\n"
    "Content-Description: Delivery report\r\n"
    "Content-Type: message/delivery-status\r\n"
    "\r\n"
    "Reporting-MTA: dns; mx.example.net\r\n"
    "\r\n"
    "Final-Recipient: rfc822; joe@example.org\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "\r\n"
    "--XX\r\n"
    "Content-Description: Undelivered Message\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: Shop <shop@example.com>\r\n"
    "To: joe@example.org\r\n"
    "Subject: Your order\r\n"
    "Message-ID: <o1@example.com>\r\n"
    "\r\n"
    "Thanks.\r\n"
    "\r\n"
    "--XX--\r\n";

#define SHOP "((\"Shop\" NIL \"shop\" \"example.com\"))"
#define INNER_ENV "(NIL \"Your order\" " SHOP " " SHOP " " SHOP \
	" ((NIL NIL \"joe\" \"example.org\")) NIL NIL NIL \"<o1@example.com>\")"

START_TEST(test_report_structure)
{
	assert_body(report, true,
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL \"Notification\" \"7BIT\" 10 1 NIL NIL NIL NIL)"
	    "(\"message\" \"delivery-status\" NIL NIL \"Delivery report\" \"7BIT\" 111 NIL NIL NIL NIL)"
	    "(\"message\" \"rfc822\" NIL NIL \"Undelivered Message\" \"7BIT\" 114 " INNER_ENV
	    " (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 9 1 NIL NIL NIL NIL) 6"
	    " NIL NIL NIL NIL)"
	    " \"report\" (\"report-type\" \"delivery-status\" \"boundary\" \"XX\") NIL NIL NIL)");
	assert_body(report, false,
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL \"Notification\" \"7BIT\" 10 1)"
	    "(\"message\" \"delivery-status\" NIL NIL \"Delivery report\" \"7BIT\" 111)"
	    "(\"message\" \"rfc822\" NIL NIL \"Undelivered Message\" \"7BIT\" 114 " INNER_ENV
	    " (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 9 1) 6)"
	    " \"report\")");
	assert_envelope(report,
	    "(\"Tue, 3 Mar 2026 10:00:00 +0000\" \"Undelivered Mail Returned to Sender\" "
	    "((\"Mail Delivery System\" NIL \"MAILER-DAEMON\" \"mx.example.net\")) "
	    "((\"Mail Delivery System\" NIL \"MAILER-DAEMON\" \"mx.example.net\")) "
	    "((\"Mail Delivery System\" NIL \"MAILER-DAEMON\" \"mx.example.net\")) "
	    "((NIL NIL \"bounce+abc\" \"bounces.example.com\")) NIL NIL NIL NIL)");
}
END_TEST

START_TEST(test_report_sections)
{
	assert_section(report, "1", "I'm sorry.");
	assert_section(report, "2.MIME",
	    "Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n");
	assert_section(report, "2",
	    "Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; joe@example.org\r\n"
	    "Action: failed\r\nStatus: 5.1.1\r\n");
	assert_section(report, "3",
	    "From: Shop <shop@example.com>\r\nTo: joe@example.org\r\nSubject: Your order\r\n"
	    "Message-ID: <o1@example.com>\r\n\r\nThanks.\r\n");
	assert_section(report, "3.HEADER",
	    "From: Shop <shop@example.com>\r\nTo: joe@example.org\r\nSubject: Your order\r\n"
	    "Message-ID: <o1@example.com>\r\n\r\n");
	assert_section(report, "3.TEXT", "Thanks.\r\n");
	assert_section(report, "3.1", "Thanks.\r\n");
	assert_section(report, "3.1.MIME",
	    "From: Shop <shop@example.com>\r\nTo: joe@example.org\r\nSubject: Your order\r\n"
	    "Message-ID: <o1@example.com>\r\n\r\n");
	assert_section(report, "3.HEADER.FIELDS (message-id \"subject\")",
	    "Subject: Your order\r\nMessage-ID: <o1@example.com>\r\n\r\n");
	/* A folded field comes whole. */
	assert_section(report, "HEADER.FIELDS (Content-Type)",
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"XX\"\r\n\r\n");
	assert_section(report, "TEXT",
	    strstr(report, "\r\n\r\n") + 4);
	assert_section(report, "4", "");
	assert_section(report, "1.1", "");
	assert_section(report, "2.HEADER", "");
	assert_section(report, "4.MIME", "");
}
END_TEST

/* Specs the server must answer BAD. */
static const char *const bad_specs[] = {
	"0", "01", "1.", "1..2", "1HEADER", ".HEADER", "MIME", "HEADER.FIELDS",
	"HEADER.FIELDS ()", "HEADER.FIELDS (a", "HEADER.FIELDS (a)x", "HEADER.FIELDS(a)",
	"TEXT ", "FOO", "1.FOO", "HEADER.FIELDS (\"a)", "99999999999",
};

START_TEST(test_bad_specs)
{
	assert_section(report, bad_specs[_i], NULL);
}
END_TEST

START_TEST(test_partial)
{
	size_t off, n;

	imap_partial(10, 0, 4, &off, &n);
	ck_assert_uint_eq(off, 0);
	ck_assert_uint_eq(n, 4);
	imap_partial(10, 8, 4, &off, &n);
	ck_assert_uint_eq(off, 8);
	ck_assert_uint_eq(n, 2);
	imap_partial(10, 10, 4, &off, &n);
	ck_assert_uint_eq(n, 0);
	imap_partial(10, UINT64_MAX, UINT64_MAX, &off, &n);
	ck_assert_uint_eq(n, 0);
	imap_partial(10, 3, UINT64_MAX, &off, &n);
	ck_assert_uint_eq(off, 3);
	ck_assert_uint_eq(n, 7);
}
END_TEST

/* --- addresses and strings ------------------------------------------------------------------ */

static const char groups[] =
    "From: =?UTF-8?Q?J=C3=B6rg?= <jorg@example.de>\r\n"
    "To: undisclosed-recipients:;\r\n"
    "Cc: Team: a@x.org, \"B, Bee\" <b@y.org>;, c@z.org\r\n"
    "Subject: =?ISO-8859-1?Q?caf=E9?= ok\r\n"
    "Sender:\r\n"
    "Reply-To: <@route.example:r@example.net>\r\n"
    "Bcc: nodomain\r\n"
    "In-Reply-To: <p@x>\r\n"
    "\r\n"
    "body\r\n";

START_TEST(test_groups)
{
	const char *jorg = "((\"=?UTF-8?Q?J=C3=B6rg?=\" NIL \"jorg\" \"example.de\"))";
	char want[1024];

	snprintf(want, sizeof want,
	    "(NIL \"=?ISO-8859-1?Q?caf=E9?= ok\" %s %s ((NIL \"@route.example\" \"r\" \"example.net\")) "
	    "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) "
	    "((NIL NIL \"Team\" NIL)(NIL NIL \"a\" \"x.org\")(\"B, Bee\" NIL \"b\" \"y.org\")"
	    "(NIL NIL NIL NIL)(NIL NIL \"c\" \"z.org\")) "
	    "((NIL NIL \"nodomain\" \"MISSING_DOMAIN\")) \"<p@x>\" NIL)",
	    jorg, jorg);
	assert_envelope(groups, want);
}
END_TEST

START_TEST(test_strings)
{
	/* 8-bit text and a quote: a literal; folded Subject unfolded; no From at all. */
	assert_envelope("Subject: caf\xc3\xa9\r\nIn-Reply-To: a \"b\" \\c\r\n"
			"Message-ID:\r\n <m@x>\r\n\r\nx\r\n",
	    "(NIL {5}\r\ncaf\xc3\xa9 NIL NIL NIL NIL NIL NIL \"a \\\"b\\\" \\\\c\" \"<m@x>\")");
	/* A NUL byte is dropped from a literal. */
	{
		static const char nul[] = "Subject: a\0b\xff\r\n\r\nx";
		struct imap_msg *m = imap_msg_parse(nul, sizeof nul - 1);
		struct buf out = BUF_INIT;

		imap_msg_envelope(m, &out);
		ck_assert_uint_eq(out.len, strlen("(NIL {3}\r\nab\xff NIL NIL NIL NIL NIL NIL NIL NIL)"));
		ck_assert_mem_eq(out.data, "(NIL {3}\r\nab\xff NIL NIL NIL NIL NIL NIL NIL NIL)", out.len);
		buf_free(&out);
		imap_msg_free(m);
	}
	/* A display name in a comment; an address with a comment in it. */
	assert_envelope("From: joe@example.org (Joe Q. Public)\r\nTo: Ann <ann(x)@ex.org>\r\n\r\n",
	    "(NIL NIL ((\"Joe Q. Public\" NIL \"joe\" \"example.org\")) "
	    "((\"Joe Q. Public\" NIL \"joe\" \"example.org\")) "
	    "((\"Joe Q. Public\" NIL \"joe\" \"example.org\")) "
	    "((\"Ann\" NIL \"ann(x)\" \"ex.org\")) NIL NIL NIL NIL)");
}
END_TEST

/* --- odd structures ------------------------------------------------------------------------- */

START_TEST(test_no_boundary)
{
	assert_body("Content-Type: multipart/mixed\r\n\r\nno parts here\r\n", false,
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")");
}
END_TEST

START_TEST(test_bare_lf_default)
{
	/* Bare LF, no Content-Type, a part without header, no close delimiter. */
	static const char msg[] =
	    "Subject: x\n"
	    "Content-Type: multipart/mixed; boundary=b\n"
	    "\n"
	    "--b\n"
	    "\n"
	    "one\n"
	    "--b\n"
	    "Content-Type: image/png\n"
	    "Content-Transfer-Encoding: base64\n"
	    "Content-Disposition: attachment; filename=\"a.png\"\n"
	    "Content-Language: en, de\n"
	    "Content-Location: http://x/a.png\n"
	    "\n"
	    "iVBORw0KGgo=\n";

	assert_body(msg, true,
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 3 1 NIL NIL NIL NIL)"
	    "(\"image\" \"png\" NIL NIL NIL \"base64\" 13 NIL (\"attachment\" (\"filename\" \"a.png\")) "
	    "(\"en\" \"de\") \"http://x/a.png\")"
	    " \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)");
	assert_section(msg, "1", "one");
	assert_section(msg, "1.MIME", "\n");
	assert_section(msg, "2", "iVBORw0KGgo=\n");
}
END_TEST

START_TEST(test_deep_nesting)
{
	struct buf msg = BUF_INIT, out = BUF_INIT;
	struct imap_msg *m;
	size_t depth = 0, max = 0;

	for (int i = 0; i < 300; i++)
		buf_appendf(&msg, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i);
	buf_appends(&msg, "\r\ndeep\r\n");
	m = imap_msg_parse(msg.data, msg.len);
	imap_msg_bodystructure(m, true, &out);
	ck_assert(imap_syntax_check(out.data, out.len, NULL));
	for (size_t i = 0; i < out.len; i++) {
		if (out.data[i] == '(' && ++depth > max)
			max = depth;
		if (out.data[i] == ')')
			depth--;
	}
	/* Each level one list, plus the innermost part's own lists. */
	ck_assert_uint_le(max, IMAP_MIME_DEPTH_MAX + 4);
	buf_free(&out);
	buf_free(&msg);
	imap_msg_free(m);
}
END_TEST

START_TEST(test_empty_and_garbage)
{
	static const char *const inputs[] = { "", "\r\n", "no header at all", "\0\0\0",
		"Content-Type: message/rfc822\r\n\r\n", "Content-Type: multipart/x; boundary=\"\"\r\n\r\n--\r\n" };

	for (size_t i = 0; i < NELEM(inputs); i++) {
		size_t len = i == 3 ? 3 : strlen(inputs[i]);
		struct imap_msg *m = imap_msg_parse(inputs[i], len);
		struct buf out = BUF_INIT, scratch = BUF_INIT;
		const char *h, *t;
		size_t hl, tl;

		imap_msg_bodystructure(m, true, &out);
		ck_assert_msg(imap_syntax_check(out.data, out.len, NULL), "%zu: %s", i, out.data);
		buf_reset(&out);
		imap_msg_envelope(m, &out);
		ck_assert(imap_syntax_check(out.data, out.len, NULL));
		ck_assert_int_eq(imap_msg_section(m, "HEADER", 6, &scratch, &h, &hl), 0);
		ck_assert_int_eq(imap_msg_section(m, "TEXT", 4, &scratch, &t, &tl), 0);
		ck_assert_uint_eq(hl + tl, len);
		buf_free(&out);
		buf_free(&scratch);
		imap_msg_free(m);
	}
}
END_TEST

/* --- search --------------------------------------------------------------------------------- */

static const char latin[] =
    "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <jm@example.de>\r\n"
    "Subject: =?UTF-8?B?w4RwZmVs?= und Birnen\r\n"
    "Date: Wed, 4 Mar 2026 23:30:00 -0500\r\n"
    "Content-Type: multipart/mixed; boundary=q\r\n"
    "\r\n"
    "--q\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Gr=FC=DFe aus K=F6ln\r\n"
    "--q\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "U0VDUkVUIHdvcmQ=\r\n"
    "--q\r\n"
    "Content-Type: application/octet-stream\r\n"
    "\r\n"
    "binaryneedle\r\n"
    "--q--\r\n";

START_TEST(test_search_text)
{
	struct imap_msg *m = parse(latin);
	struct buf out = BUF_INIT;

	ck_assert_uint_eq(imap_msg_header_text(m, "from", &out), 1);
	ck_assert_str_eq(out.data, "J\xc3\xb6rg M\xc3\xbcller <jm@example.de>");
	buf_reset(&out);
	ck_assert_uint_eq(imap_msg_header_text(m, "Subject", &out), 1);
	ck_assert_str_eq(out.data, "\xc3\x84pfel und Birnen");
	ck_assert(imap_text_match(out.data, out.len, "\xc3\xa4PFEL", 6));
	ck_assert(!imap_text_match(out.data, out.len, "pfirsich", 8));
	buf_reset(&out);
	ck_assert_uint_eq(imap_msg_header_text(m, "Cc", &out), 0);
	ck_assert_uint_eq(out.len, 0);
	imap_msg_body_text(m, false, &out);
	ck_assert_ptr_nonnull(strstr(out.data, "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln"));
	ck_assert_ptr_nonnull(strstr(out.data, "SECRET word"));
	ck_assert_ptr_null(strstr(out.data, "binaryneedle"));
	ck_assert_ptr_null(strstr(out.data, "Birnen"));
	ck_assert(imap_text_match(out.data, out.len, "K\xc3\x96LN", 5));
	buf_reset(&out);
	imap_msg_body_text(m, true, &out);
	ck_assert_ptr_nonnull(strstr(out.data, "Birnen"));
	ck_assert_ptr_nonnull(strstr(out.data, "SECRET word"));
	buf_free(&out);
	imap_msg_free(m);
}
END_TEST

START_TEST(test_search_embedded)
{
	struct imap_msg *m = parse(report);
	struct buf out = BUF_INIT;

	imap_msg_body_text(m, false, &out);
	ck_assert_ptr_nonnull(strstr(out.data, "I'm sorry."));
	ck_assert_ptr_nonnull(strstr(out.data, "Your order"));
	ck_assert_ptr_nonnull(strstr(out.data, "Thanks."));
	ck_assert_ptr_null(strstr(out.data, "Final-Recipient"));
	buf_free(&out);
	imap_msg_free(m);
}
END_TEST

START_TEST(test_match)
{
	ck_assert(imap_text_match("Hello World", 11, "WORLD", 5));
	/* ASCII on both sides (the fast path): the same answers as folding. */
	ck_assert(imap_text_match("550 5.1.1 User Unknown", 22, "user unknown", 12));
	ck_assert(!imap_text_match("550 5.1.1 User Unknown", 22, "user unknowns", 13));
	ck_assert(imap_text_match("xxab", 4, "AB", 2));
	ck_assert(!imap_text_match("a", 1, "ab", 2));
	/* A non-ASCII needle against ASCII text: folded (KELVIN SIGN folds to k). */
	ck_assert(imap_text_match("kurier", 6, "\xe2\x84\xaaURIER", 8));
	ck_assert(imap_text_match("abc", 3, "", 0));
	ck_assert(!imap_text_match("", 0, "a", 1));
	ck_assert(imap_text_match("\xc3\x89T\xc3\x89", 5, "\xc3\xa9t\xc3\xa9", 5));
	/* Invalid UTF-8 is tolerated, not matched as anything else. */
	ck_assert(imap_text_match("a\xff" "b needle", 10, "NEEDLE", 6));
	ck_assert(!imap_text_match("a\xff" "b", 3, "ab", 2));
}
END_TEST

START_TEST(test_date)
{
	struct imap_msg *m = parse(latin);
	time_t when;
	long day;

	ck_assert_int_eq(imap_msg_date(m, &when, &day), 0);
	/* 2026-03-05 04:30 UTC; written as 4 March. */
	ck_assert_int_eq((long long)when, 1772685000LL);
	ck_assert_int_eq(day, 20516);
	imap_msg_free(m);
	m = parse("Subject: x\r\n\r\n");
	ck_assert_int_eq(imap_msg_date(m, &when, &day), -ENOENT);
	imap_msg_free(m);
	m = parse("Date: the day after tomorrow\r\n\r\n");
	ck_assert_int_eq(imap_msg_date(m, &when, &day), -EINVAL);
	imap_msg_free(m);
}
END_TEST

/* --- the corpus ------------------------------------------------------------------------------- */

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p;
	long n;

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	p = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return p;
}

/* content_range - where GMime's content stream of leaf o lies in the message. */
static bool
content_range(GMimeObject *o, gint64 *start, gint64 *end)
{
	GMimeDataWrapper *w;
	GMimeStream *s;

	if (!GMIME_IS_PART(o) || (w = g_mime_part_get_content(GMIME_PART(o))) == NULL)
		return false;
	s = g_mime_data_wrapper_get_stream(w);
	*start = s->bound_start;
	*end = s->bound_end;
	return true;
}

/* section - BODY[spec] of m, asserted accepted and inside the message. */
static void
section(struct imap_msg *m, const char *spec, struct buf *scratch, const char **d, size_t *dl)
{
	size_t len;
	const char *raw = imap_msg_raw(m, &len);

	ck_assert_int_eq(imap_msg_section(m, spec, strlen(spec), scratch, d, dl), 0);
	ck_assert(*dl == 0 || (*d >= raw && *d + *dl <= raw + len));
}

static void
corpus_one(const char *name, const char *msg, size_t len)
{
	struct imap_msg *m = imap_msg_parse(msg, len);
	struct buf out = BUF_INIT, scratch = BUF_INIT;
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(msg, len);
	GMimeParser *p = g_mime_parser_new_with_stream(st);
	GMimeMessage *gm = g_mime_parser_construct_message(p, NULL);
	GMimeObject *top = gm != NULL ? g_mime_message_get_mime_part(gm) : NULL;
	const char *h, *t, *d, *raw;
	size_t hl, tl, dl, rawlen, nlists = 0;
	gint64 cs, ce;

	raw = imap_msg_raw(m, &rawlen);
	ck_assert(rawlen == len && memcmp(raw, msg, len) == 0);
	imap_msg_bodystructure(m, true, &out);
	ck_assert_msg(imap_syntax_check(out.data, out.len, &nlists), "%s: %s", name, out.data);
	if (top != NULL && GMIME_IS_MULTIPART(top) && g_mime_multipart_get_count(GMIME_MULTIPART(top)) > 0)
		ck_assert_msg(nlists == (size_t)g_mime_multipart_get_count(GMIME_MULTIPART(top)),
		    "%s: %zu parts listed, GMime has %d", name, nlists,
		    g_mime_multipart_get_count(GMIME_MULTIPART(top)));
	buf_reset(&out);
	imap_msg_bodystructure(m, false, &out);
	ck_assert_msg(imap_syntax_check(out.data, out.len, NULL), "%s", name);
	buf_reset(&out);
	imap_msg_envelope(m, &out);
	ck_assert_msg(imap_syntax_check(out.data, out.len, NULL), "%s", name);

	section(m, "HEADER", &scratch, &h, &hl);
	section(m, "TEXT", &scratch, &t, &tl);
	ck_assert_msg(hl + tl == len && h == raw && h + hl == t,
	    "%s: HEADER + TEXT is not the message", name);
	section(m, "1", &scratch, &d, &dl);
	/* Every leaf directly below the top is GMime's own content range. */
	if (top != NULL && GMIME_IS_MULTIPART(top)) {
		int n = g_mime_multipart_get_count(GMIME_MULTIPART(top));

		for (int i = 0; i < n; i++) {
			char spec[16];

			snprintf(spec, sizeof spec, "%d", i + 1);
			section(m, spec, &scratch, &d, &dl);
			if (content_range(g_mime_multipart_get_part(GMIME_MULTIPART(top), i), &cs, &ce))
				ck_assert_msg(d - raw == cs && (gint64)dl == ce - cs,
				    "%s: part %d at [%td,%td), GMime [%ld,%ld)", name, i + 1, d - raw,
				    d - raw + (ptrdiff_t)dl, (long)cs, (long)ce);
		}
	} else if (top != NULL && content_range(top, &cs, &ce)) {
		ck_assert_msg(d - raw == cs && (gint64)dl == ce - cs, "%s: body at [%td,+%zu), GMime [%ld,%ld)",
		    name, d - raw, dl, (long)cs, (long)ce);
	}
	buf_reset(&out);
	imap_msg_body_text(m, true, &out);
	ck_assert_uint_le(out.len, IMAP_MIME_TEXT_MAX);
	if (gm != NULL)
		g_object_unref(gm);
	g_object_unref(p);
	g_object_unref(st);
	buf_free(&out);
	buf_free(&scratch);
	imap_msg_free(m);
}

START_TEST(test_corpus)
{
	DIR *d = opendir(CORPUS "/bounce");
	struct dirent *e;
	size_t n = 0;

	ck_assert_msg(d != NULL, "%s/bounce: %s (the corpus must be beside the repository)", CORPUS,
	    strerror(errno));
	while ((e = readdir(d)) != NULL) {
		char path[512];
		size_t len;
		char *msg;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/bounce/%s", CORPUS, e->d_name);
		msg = slurp(path, &len);
		/* imap_msg_parse copies: the comparison below is against these bytes. */
		corpus_one(e->d_name, msg, len);
		free(msg);
		n++;
	}
	closedir(d);
	ck_assert_uint_ge(n, 600);
}
END_TEST

Suite *
imap_mime_suite(void)
{
	Suite *s = suite_create("imap_mime");
	TCase *tc = tcase_create("fetch");
	TCase *ts = tcase_create("search");
	TCase *tcc = tcase_create("corpus");

	tcase_add_test(tc, test_plain);
	tcase_add_test(tc, test_report_structure);
	tcase_add_test(tc, test_report_sections);
	tcase_add_loop_test(tc, test_bad_specs, 0, (int)NELEM(bad_specs));
	tcase_add_test(tc, test_partial);
	tcase_add_test(tc, test_groups);
	tcase_add_test(tc, test_strings);
	tcase_add_test(tc, test_no_boundary);
	tcase_add_test(tc, test_bare_lf_default);
	tcase_add_test(tc, test_deep_nesting);
	tcase_add_test(tc, test_empty_and_garbage);
	suite_add_tcase(s, tc);
	tcase_add_test(ts, test_search_text);
	tcase_add_test(ts, test_search_embedded);
	tcase_add_test(ts, test_match);
	tcase_add_test(ts, test_date);
	suite_add_tcase(s, ts);
	/* The corpus under ASan takes a while on a busy machine. */
	tcase_set_timeout(tcc, 300);
	tcase_add_test(tcc, test_corpus);
	suite_add_tcase(s, tcc);
	return s;
}
