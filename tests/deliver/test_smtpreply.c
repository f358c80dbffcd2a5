/*
 * test_smtpreply - deliver/smtpreply: replies read whole, split anyhow
 * or a byte at a time with the same result; the bounds on lines, size
 * and line count; the kept text; enhanced codes; EHLO keywords.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/smtpreply.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define M(s) s, sizeof(s) - 1

static const struct reply_case {
	const char *in;
	size_t len;
	int rc;                 /* of the first feed over the whole input */
	size_t used;
	int code;
	unsigned nlines;
	const char *text;
	const char *esc;
} reply_cases[] = {
	{ M("220 mx.example ESMTP\r\n"), SMTPREPLY_DONE, 22, 220, 1, "220 mx.example ESMTP", "" },
	{ M("250\r\n"), SMTPREPLY_DONE, 5, 250, 1, "250", "" },
	{ M("250 \r\n"), SMTPREPLY_DONE, 6, 250, 1, "250", "" },
	{ M("354 go ahead\n"), SMTPREPLY_DONE, 13, 354, 1, "354 go ahead", "" },
	{ M("550-5.1.1 No such user\r\n550-5.1.1 here\r\n550 5.1.1 at all\r\n"),
	  SMTPREPLY_DONE, 58, 550, 3, "550 5.1.1 No such user / 5.1.1 here / 5.1.1 at all", "5.1.1" },
	{ M("250-a\r\n250-\r\n250 b\r\n"), SMTPREPLY_DONE, 20, 250, 3, "250 a / b", "" },
	/* Only the first reply is taken. */
	{ M("250 ok\r\n354 go\r\n"), SMTPREPLY_DONE, 8, 250, 1, "250 ok", "" },
	/* Not complete yet. */
	{ M(""), SMTPREPLY_MORE, 0, 0, 0, "", "" },
	{ M("250"), SMTPREPLY_MORE, 3, 0, 0, "", "" },
	{ M("250-a\r\n"), SMTPREPLY_MORE, 7, 250, 1, "250 a", "" },
	{ M("250-a\r\n250 b\r"), SMTPREPLY_MORE, 13, 250, 1, "250 a", "" },
	/* Printable text only. */
	{ M("421 a\tb\x01\x7f\xc3\xa9 \r\n"), SMTPREPLY_DONE, 14, 421, 1, "421 a b???? ", "" },
	{ M("500 a\0b\r\n"), SMTPREPLY_DONE, 9, 500, 1, "500 a?b", "" },
	/* A bare CR inside a line is text, not a line end. */
	{ M("250 a\rb\r\n"), SMTPREPLY_DONE, 9, 250, 1, "250 a?b", "" },
	/* Enhanced codes. */
	{ M("250 2.0.0 Ok\r\n"), SMTPREPLY_DONE, 14, 250, 1, "250 2.0.0 Ok", "2.0.0" },
	{ M("451 4.7.1\r\n"), SMTPREPLY_DONE, 11, 451, 1, "451 4.7.1", "4.7.1" },
	{ M("550 5.123.456 x\r\n"), SMTPREPLY_DONE, 17, 550, 1, "550 5.123.456 x", "5.123.456" },
	{ M("550 5.1234.1 x\r\n"), SMTPREPLY_DONE, 16, 550, 1, "550 5.1234.1 x", "" },
	{ M("550 5.1 x\r\n"), SMTPREPLY_DONE, 11, 550, 1, "550 5.1 x", "" },
	{ M("550 3.1.1 x\r\n"), SMTPREPLY_DONE, 13, 550, 1, "550 3.1.1 x", "" },
	{ M("550 5.1.1x\r\n"), SMTPREPLY_DONE, 12, 550, 1, "550 5.1.1x", "" },
	{ M("550 5..1 x\r\n"), SMTPREPLY_DONE, 12, 550, 1, "550 5..1 x", "" },
	/* Malformed. */
	{ M("2x0 hi\r\n"), -EPROTO, 8, 0, 0, "", "" },
	{ M("150 hi\r\n"), -EPROTO, 8, 0, 0, "", "" },
	{ M("650 hi\r\n"), -EPROTO, 8, 0, 0, "", "" },
	{ M("25\r\n"), -EPROTO, 4, 0, 0, "", "" },
	{ M("\r\n"), -EPROTO, 2, 0, 0, "", "" },
	{ M("250x\r\n"), -EPROTO, 6, 0, 0, "", "" },
	{ M("250-a\r\n251 b\r\n"), -EPROTO, 14, 250, 1, "250 a", "" },
	{ M("HTTP/1.1 400 Bad Request\r\n"), -EPROTO, 26, 0, 0, "", "" },
};

static void
check_case(const struct reply_case *tc, const struct smtpreply_reader *rd,
    int rc, size_t used)
{
	ck_assert_int_eq(rc, tc->rc);
	ck_assert_uint_eq(used, tc->used);
	if (rc == SMTPREPLY_DONE || rc == SMTPREPLY_MORE) {
		ck_assert_int_eq(rd->r.code, tc->code);
		ck_assert_uint_eq(rd->r.nlines, tc->nlines);
		ck_assert_str_eq(rd->r.text, tc->text);
		ck_assert_uint_eq(rd->r.textlen, strlen(tc->text));
		ck_assert_str_eq(rd->r.esc, tc->esc);
	} else {
		ck_assert_ptr_nonnull(rd->why);
	}
}

START_TEST(test_whole)
{
	const struct reply_case *tc = &reply_cases[_i];
	struct smtpreply_reader rd;
	size_t used;
	int rc;

	smtpreply_init(&rd);
	rc = smtpreply_feed(&rd, tc->in, tc->len, &used);
	check_case(tc, &rd, rc, used);
}
END_TEST

/* A byte at a time: the same reply, the same end. */
START_TEST(test_bytewise)
{
	const struct reply_case *tc = &reply_cases[_i];
	struct smtpreply_reader rd;
	size_t used, total = 0;
	int rc = SMTPREPLY_MORE;

	smtpreply_init(&rd);
	for (size_t i = 0; i < tc->len && rc == SMTPREPLY_MORE; i++) {
		rc = smtpreply_feed(&rd, tc->in + i, 1, &used);
		ck_assert_uint_le(used, 1);
		total += used;
		if (rc < 0)
			total = i + 1;
	}
	check_case(tc, &rd, rc, total);
}
END_TEST

START_TEST(test_split)
{
	const struct reply_case *tc = &reply_cases[_i];

	for (size_t cut = 0; cut <= tc->len; cut++) {
		struct smtpreply_reader rd;
		size_t used, used2 = 0;
		int rc;

		smtpreply_init(&rd);
		rc = smtpreply_feed(&rd, tc->in, cut, &used);
		if (rc == SMTPREPLY_MORE) {
			ck_assert_uint_eq(used, cut);
			rc = smtpreply_feed(&rd, tc->in + cut, tc->len - cut, &used2);
			used += used2;
		}
		check_case(tc, &rd, rc, used);
	}
}
END_TEST

/* Pipelined replies in one buffer come out one by one. */
START_TEST(test_sequence)
{
	static const char in[] = "250 2.1.0 Ok\r\n550-5.1.1 no\r\n550 5.1.1 user\r\n354 go\r\n";
	static const int codes[] = { 250, 550, 354 };
	struct smtpreply_reader rd;
	const char *p = in;
	size_t len = sizeof in - 1, used;

	smtpreply_init(&rd);
	for (size_t i = 0; i < NELEM(codes); i++) {
		ck_assert_int_eq(smtpreply_feed(&rd, p, len, &used), SMTPREPLY_DONE);
		ck_assert_int_eq(rd.r.code, codes[i]);
		p += used;
		len -= used;
	}
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(rd.r.text, "354 go");
	/* A new reply starts clean. */
	ck_assert_int_eq(smtpreply_feed(&rd, "2", 1, &used), SMTPREPLY_MORE);
	ck_assert_int_eq(rd.r.code, 0);
	ck_assert_uint_eq(rd.r.textlen, 0);
}
END_TEST

/* After an error the reader stays stopped. */
START_TEST(test_error_sticks)
{
	struct smtpreply_reader rd;
	size_t used;

	smtpreply_init(&rd);
	ck_assert_int_eq(smtpreply_feed(&rd, M("x\r\n"), &used), -EPROTO);
	ck_assert_str_eq(rd.why, "bad reply code");
	ck_assert_int_eq(smtpreply_feed(&rd, M("250 ok\r\n"), &used), -EPROTO);
	ck_assert_uint_eq(used, 0);
	smtpreply_init(&rd);
	ck_assert_int_eq(smtpreply_feed(&rd, M("250 ok\r\n"), &used), SMTPREPLY_DONE);
}
END_TEST

static char *
repeat(char ch, size_t n)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

/* A line of "250 " and n - 4 more bytes, then end, in a buffer of 4000. */
static char *
long_line(size_t n, const char *end)
{
	char *s = repeat('a', 4000);

	memcpy(s, "250 ", 4);
	memcpy(s + n, end, strlen(end));
	return s;
}

/* SMTPREPLY_LINE_MAX bytes of line pass (with CRLF or LF); one more does not. */
START_TEST(test_line_max)
{
	static const struct {
		size_t n;
		const char *end;
		int rc;
	} cases[] = {
		{ SMTPREPLY_LINE_MAX, "\r\n", SMTPREPLY_DONE },
		{ SMTPREPLY_LINE_MAX, "\n", SMTPREPLY_DONE },
		{ SMTPREPLY_LINE_MAX + 1, "\r\n", -EPROTO },
		{ SMTPREPLY_LINE_MAX + 1, "\n", -EPROTO },
	};
	struct smtpreply_reader rd;
	size_t used;
	char *line;

	for (size_t i = 0; i < NELEM(cases); i++) {
		line = long_line(cases[i].n, cases[i].end);
		smtpreply_init(&rd);
		ck_assert_int_eq(smtpreply_feed(&rd, line, cases[i].n + strlen(cases[i].end),
		    &used), cases[i].rc);
		if (cases[i].rc == SMTPREPLY_DONE) {
			ck_assert(rd.r.cut);
			ck_assert_uint_eq(rd.r.textlen, SMTPREPLY_TEXT_SIZE - 1);
			ck_assert_str_eq(rd.r.text + SMTPREPLY_TEXT_SIZE - 4, "...");
			ck_assert_int_eq(strncmp(rd.r.text, "250 aaaa", 8), 0);
		} else {
			ck_assert_str_eq(rd.why, "reply line too long");
		}
		free(line);
	}
	/* No line end at all: refused as soon as the line is too long. */
	line = long_line(4, "");
	smtpreply_init(&rd);
	ck_assert_int_eq(smtpreply_feed(&rd, line, 1000, &used), SMTPREPLY_MORE);
	ck_assert_int_eq(smtpreply_feed(&rd, line + 1000, 1000, &used), SMTPREPLY_MORE);
	ck_assert_int_eq(smtpreply_feed(&rd, line + 2000, 1000, &used), -EPROTO);
	ck_assert_uint_le(used, 1000);
	ck_assert_str_eq(rd.why, "reply line too long");
	free(line);
}
END_TEST

/* Up to SMTPREPLY_LINES_MAX lines; one more is refused. */
START_TEST(test_lines_max)
{
	struct smtpreply_reader rd;
	size_t used;
	int rc = SMTPREPLY_MORE;

	smtpreply_init(&rd);
	for (unsigned i = 0; i < SMTPREPLY_LINES_MAX - 1; i++)
		ck_assert_int_eq(smtpreply_feed(&rd, M("250-x\r\n"), &used), SMTPREPLY_MORE);
	ck_assert_int_eq(smtpreply_feed(&rd, M("250 x\r\n"), &used), SMTPREPLY_DONE);
	ck_assert_uint_eq(rd.r.nlines, SMTPREPLY_LINES_MAX);

	smtpreply_init(&rd);
	for (unsigned i = 0; i < SMTPREPLY_LINES_MAX && rc == SMTPREPLY_MORE; i++)
		rc = smtpreply_feed(&rd, M("250-x\r\n"), &used);
	ck_assert_int_eq(rc, SMTPREPLY_MORE);
	ck_assert_int_eq(smtpreply_feed(&rd, M("250 x\r\n"), &used), -EPROTO);
	ck_assert_str_eq(rd.why, "too many reply lines");
}
END_TEST

/* Lines of len bytes ("250-" ... CRLF, or "250 " for the last). */
static char *
reply_line(size_t len, bool last)
{
	char *s = repeat('b', len);

	memcpy(s, last ? "250 " : "250-", 4);
	memcpy(s + len - 2, "\r\n", 2);
	return s;
}

/* SMTPREPLY_SIZE_MAX bytes of reply; a byte more is refused. */
START_TEST(test_size_max)
{
	const size_t rest = SMTPREPLY_SIZE_MAX - 32 * 2000;
	struct smtpreply_reader rd;
	char *line = reply_line(2000, false), *last;
	size_t used;

	for (int extra = 0; extra <= 1; extra++) {
		smtpreply_init(&rd);
		for (unsigned n = 0; n < 32; n++)
			ck_assert_int_eq(smtpreply_feed(&rd, line, 2000, &used), SMTPREPLY_MORE);
		last = reply_line(rest + (size_t)extra, true);
		if (extra == 0) {
			ck_assert_int_eq(smtpreply_feed(&rd, last, rest, &used), SMTPREPLY_DONE);
			ck_assert_uint_eq(rd.r.size, SMTPREPLY_SIZE_MAX);
			ck_assert_uint_eq(rd.r.nlines, 33);
		} else {
			ck_assert_int_eq(smtpreply_feed(&rd, last, rest + 1, &used), -EPROTO);
			ck_assert_str_eq(rd.why, "reply too long");
		}
		free(last);
	}
	free(line);
}
END_TEST

/* Long replies: the text is cut with "...", the reply still read whole. */
START_TEST(test_text_cut)
{
	struct smtpreply_reader rd;
	size_t used;

	smtpreply_init(&rd);
	for (unsigned i = 0; i < 100; i++)
		ck_assert_int_eq(smtpreply_feed(&rd, M("550-5.7.1 blocked listed\r\n"), &used),
		    SMTPREPLY_MORE);
	ck_assert_int_eq(smtpreply_feed(&rd, M("550 5.7.1 end\r\n"), &used), SMTPREPLY_DONE);
	ck_assert(rd.r.cut);
	ck_assert_uint_eq(strlen(rd.r.text), SMTPREPLY_TEXT_SIZE - 1);
	ck_assert_uint_eq(rd.r.textlen, SMTPREPLY_TEXT_SIZE - 1);
	ck_assert_int_eq(strncmp(rd.r.text, "550 5.7.1 blocked listed / 5.7.1 blocked", 40), 0);
	ck_assert_str_eq(rd.r.text + SMTPREPLY_TEXT_SIZE - 4, "...");
	ck_assert_str_eq(rd.r.esc, "5.7.1");
	ck_assert_uint_eq(rd.r.nlines, 101);
}
END_TEST

static const struct ehlo_case {
	const char *reply;
	unsigned ext;
	uint64_t size_max;
	unsigned auth;
} ehlo_cases[] = {
	{ "250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n"
	  "250-SMTPUTF8\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n"
	  "250-AUTH PLAIN LOGIN CRAM-MD5\r\n250 CHUNKING\r\n",
	  SMTPREPLY_EXT_PIPELINING | SMTPREPLY_EXT_SIZE | SMTPREPLY_EXT_8BITMIME |
	  SMTPREPLY_EXT_SMTPUTF8 | SMTPREPLY_EXT_DSN | SMTPREPLY_EXT_ENHANCEDSTATUSCODES |
	  SMTPREPLY_EXT_STARTTLS | SMTPREPLY_EXT_AUTH, 35882577,
	  SMTPREPLY_AUTH_PLAIN | SMTPREPLY_AUTH_LOGIN },
	/* Case does not matter; the first line is the greeting, not a keyword. */
	{ "250-PIPELINING\r\n250-pipelining\r\n250 size\r\n",
	  SMTPREPLY_EXT_PIPELINING | SMTPREPLY_EXT_SIZE, 0, 0 },
	{ "250-PIPELINING\r\n250 8BITMIME\r\n", SMTPREPLY_EXT_8BITMIME, 0, 0 },
	/* SIZE: 0, none, junk, too big mean no known limit. */
	{ "250-x\r\n250 SIZE 0\r\n", SMTPREPLY_EXT_SIZE, 0, 0 },
	{ "250-x\r\n250 SIZE 12k\r\n", SMTPREPLY_EXT_SIZE, 0, 0 },
	{ "250-x\r\n250 SIZE 99999999999999999999999\r\n", SMTPREPLY_EXT_SIZE, 0, 0 },
	{ "250-x\r\n250 SIZE  1000 2000\r\n", SMTPREPLY_EXT_SIZE, 1000, 0 },
	/* AUTH: the old "AUTH=" spelling, unknown mechanisms, only LOGIN. */
	{ "250-x\r\n250 AUTH=LOGIN\r\n", SMTPREPLY_EXT_AUTH, 0, SMTPREPLY_AUTH_LOGIN },
	{ "250-x\r\n250 AUTH CRAM-MD5 XOAUTH2\r\n", SMTPREPLY_EXT_AUTH, 0, 0 },
	{ "250-x\r\n250-AUTH\r\n250 AUTH=PLAIN\r\n", SMTPREPLY_EXT_AUTH, 0, SMTPREPLY_AUTH_PLAIN },
	/* Look-alikes are not keywords. */
	{ "250-x\r\n250-PIPELININGX\r\n250-X8BITMIME\r\n250-DSNX\r\n250 STARTTLSX\r\n", 0, 0, 0 },
	{ "250-x\r\n250 \r\n", 0, 0, 0 },
	/* A refusal's lines are not keywords. */
	{ "550-x\r\n550 PIPELINING\r\n", 0, 0, 0 },
	{ "250 x PIPELINING\r\n", 0, 0, 0 },
};

START_TEST(test_ehlo)
{
	const struct ehlo_case *tc = &ehlo_cases[_i];
	struct smtpreply_reader rd;
	size_t used;

	smtpreply_init(&rd);
	rd.ehlo = true;
	ck_assert_int_eq(smtpreply_feed(&rd, tc->reply, strlen(tc->reply), &used), SMTPREPLY_DONE);
	ck_assert_uint_eq(used, strlen(tc->reply));
	ck_assert_uint_eq(rd.r.ehlo.ext, tc->ext);
	ck_assert_uint_eq(rd.r.ehlo.size_max, tc->size_max);
	ck_assert_uint_eq(rd.r.ehlo.auth, tc->auth);
}
END_TEST

/* Without the ehlo flag, keywords are not parsed. */
START_TEST(test_ehlo_off)
{
	struct smtpreply_reader rd;
	size_t used;

	smtpreply_init(&rd);
	ck_assert_int_eq(smtpreply_feed(&rd, M("250-x\r\n250 PIPELINING\r\n"), &used),
	    SMTPREPLY_DONE);
	ck_assert_uint_eq(rd.r.ehlo.ext, 0);
}
END_TEST

START_TEST(test_line)
{
	const char *text, *why = NULL;
	size_t tl;
	bool last;
	int code;

	ck_assert_int_eq(smtpreply_line(M("250-x y"), &code, &last, &text, &tl, &why), 0);
	ck_assert_int_eq(code, 250);
	ck_assert(!last);
	ck_assert_uint_eq(tl, 3);
	ck_assert_int_eq(strncmp(text, "x y", 3), 0);
	ck_assert_int_eq(smtpreply_line(M("599"), &code, &last, &text, &tl, &why), 0);
	ck_assert(last);
	ck_assert_uint_eq(tl, 0);
	ck_assert_int_eq(smtpreply_line(M("25O ok"), &code, &last, &text, &tl, &why), -EPROTO);
	ck_assert_str_eq(why, "bad reply code");
	ck_assert_int_eq(smtpreply_line(M("250\tok"), &code, &last, &text, &tl, &why), -EPROTO);
	ck_assert_str_eq(why, "bad reply separator");
}
END_TEST

Suite *
smtpreply_suite(void)
{
	Suite *s = suite_create("smtpreply");
	TCase *tc;

	tc = tcase_create("read");
	tcase_add_loop_test(tc, test_whole, 0, (int)NELEM(reply_cases));
	tcase_add_loop_test(tc, test_bytewise, 0, (int)NELEM(reply_cases));
	tcase_add_loop_test(tc, test_split, 0, (int)NELEM(reply_cases));
	tcase_add_test(tc, test_sequence);
	tcase_add_test(tc, test_error_sticks);
	tcase_add_test(tc, test_line);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_line_max);
	tcase_add_test(tc, test_lines_max);
	tcase_add_test(tc, test_size_max);
	tcase_add_test(tc, test_text_cut);
	suite_add_tcase(s, tc);

	tc = tcase_create("ehlo");
	tcase_add_loop_test(tc, test_ehlo, 0, (int)NELEM(ehlo_cases));
	tcase_add_test(tc, test_ehlo_off);
	suite_add_tcase(s, tc);
	return s;
}
