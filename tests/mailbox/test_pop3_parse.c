/*
 * test_pop3_parse - mailbox/pop3_parse: every command's argument syntax
 * (message numbers at their bounds, PASS with spaces, AUTH with and
 * without an initial response), the refusals with their text, and the
 * multi-line body writer (dot-stuffing, CRLF, TOP's line count).
 */
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "mailbox/pop3_parse.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct parse_case {
	const char *line;
	const char *err; /* NULL: parsed */
	enum pop3_verb verb;
	uint32_t msg, lines;
	const char *arg;     /* NULL: none */
	const char *initial; /* NULL: none */
} parse_cases[] = {
	{ "USER shop", NULL, POP3_USER, 0, 0, "shop", NULL },
	{ "user  shop ", NULL, POP3_USER, 0, 0, "shop", NULL },
	{ "USER", "syntax: USER name", POP3_USER, 0, 0, NULL, NULL },
	{ "USER a b", "syntax: USER name", POP3_USER, 0, 0, NULL, NULL },
	{ "USER 01234567890123456789012345678901234567890", "argument longer than 40 characters",
	    POP3_USER, 0, 0, NULL, NULL },
	{ "PASS two words ", NULL, POP3_PASS, 0, 0, "two words ", NULL },
	{ "PASS", "syntax: PASS password", POP3_PASS, 0, 0, NULL, NULL },
	{ "PASS ", "syntax: PASS password", POP3_PASS, 0, 0, NULL, NULL },
	{ "AUTH", NULL, POP3_AUTH, 0, 0, NULL, NULL },
	{ "AUTH PLAIN", NULL, POP3_AUTH, 0, 0, "PLAIN", NULL },
	{ "AUTH PLAIN AGFiAGM=", NULL, POP3_AUTH, 0, 0, "PLAIN", "AGFiAGM=" },
	{ "AUTH PLAIN a b", "syntax: AUTH mechanism [initial-response]", POP3_AUTH, 0, 0, NULL, NULL },
	{ "STLS", NULL, POP3_STLS, 0, 0, NULL, NULL },
	{ "stls x", "syntax: STLS", POP3_STLS, 0, 0, NULL, NULL },
	{ "CAPA", NULL, POP3_CAPA, 0, 0, NULL, NULL },
	{ "QUIT", NULL, POP3_QUIT, 0, 0, NULL, NULL },
	{ "STAT", NULL, POP3_STAT, 0, 0, NULL, NULL },
	{ "LIST", NULL, POP3_LIST, 0, 0, NULL, NULL },
	{ "LIST 7", NULL, POP3_LIST, 7, 0, NULL, NULL },
	{ "LIST 1 2", "syntax: LIST [msg]", POP3_LIST, 0, 0, NULL, NULL },
	{ "UIDL 4294967295", NULL, POP3_UIDL, 4294967295u, 0, NULL, NULL },
	{ "RETR 1", NULL, POP3_RETR, 1, 0, NULL, NULL },
	{ "RETR 0", "invalid message number", POP3_RETR, 0, 0, NULL, NULL },
	{ "RETR 4294967296", "invalid message number", POP3_RETR, 0, 0, NULL, NULL },
	{ "RETR 99999999999", "invalid message number", POP3_RETR, 0, 0, NULL, NULL },
	{ "RETR -1", "invalid message number", POP3_RETR, 0, 0, NULL, NULL },
	{ "RETR +1", "invalid message number", POP3_RETR, 0, 0, NULL, NULL },
	{ "RETR 1x", "invalid message number", POP3_RETR, 0, 0, NULL, NULL },
	{ "RETR", "syntax: RETR msg", POP3_RETR, 0, 0, NULL, NULL },
	{ "DELE 3", NULL, POP3_DELE, 3, 0, NULL, NULL },
	{ "DELE 3 4", "syntax: DELE msg", POP3_DELE, 0, 0, NULL, NULL },
	{ "TOP 2 0", NULL, POP3_TOP, 2, 0, NULL, NULL },
	{ "TOP 2 4294967295", NULL, POP3_TOP, 2, 4294967295u, NULL, NULL },
	{ "TOP 2", "syntax: TOP msg n", POP3_TOP, 0, 0, NULL, NULL },
	{ "TOP 2 -1", "invalid line count", POP3_TOP, 0, 0, NULL, NULL },
	{ "NOOP", NULL, POP3_NOOP, 0, 0, NULL, NULL },
	{ "RSET", NULL, POP3_RSET, 0, 0, NULL, NULL },
	{ "APOP shop 0123", NULL, POP3_APOP, 0, 0, NULL, NULL },
	{ "APOP shop", "syntax: APOP name digest", POP3_APOP, 0, 0, NULL, NULL },
	{ "", "empty command", POP3_USER, 0, 0, NULL, NULL },
	{ "   ", "empty command", POP3_USER, 0, 0, NULL, NULL },
	{ "RETRX 1", "unknown command", POP3_USER, 0, 0, NULL, NULL },
	{ "LAST", "unknown command", POP3_USER, 0, 0, NULL, NULL },
	{ "NOOP\t", "control character in command", POP3_USER, 0, 0, NULL, NULL },
};

START_TEST(test_parse)
{
	const struct parse_case *c = &parse_cases[_i];
	struct pop3_cmd cmd;
	const char *err = pop3_parse(c->line, strlen(c->line), &cmd);

	if (c->err != NULL) {
		ck_assert_msg(err != NULL, "%s: parsed", c->line);
		ck_assert_str_eq(err, c->err);
		return;
	}
	ck_assert_msg(err == NULL, "%s: %s", c->line, err);
	ck_assert_int_eq(cmd.verb, c->verb);
	ck_assert_uint_eq(cmd.msg, c->msg);
	ck_assert_uint_eq(cmd.lines, c->lines);
	if (c->arg == NULL) {
		ck_assert_ptr_null(cmd.arg);
	} else {
		ck_assert_uint_eq(cmd.arglen, strlen(c->arg));
		ck_assert_mem_eq(cmd.arg, c->arg, cmd.arglen);
	}
	if (c->initial == NULL) {
		ck_assert_ptr_null(cmd.initial);
	} else {
		ck_assert_uint_eq(cmd.initial_len, strlen(c->initial));
		ck_assert_mem_eq(cmd.initial, c->initial, cmd.initial_len);
	}
}
END_TEST

START_TEST(test_nul)
{
	struct pop3_cmd cmd;

	ck_assert_str_eq(pop3_parse("NO\0OP", 5, &cmd), "NUL byte in command");
	ck_assert_str_eq(pop3_verb_name(POP3_RETR), "RETR");
}
END_TEST

static const struct put_case {
	const char *msg;
	bool top;
	uint32_t lines;
	const char *out;
} put_cases[] = {
	{ "A: b\r\n\r\nbody\r\n", false, 0, "A: b\r\n\r\nbody\r\n.\r\n" },
	/* Bare LF and a last line without an end get CRLF. */
	{ "A: b\n\nbody\nlast", false, 0, "A: b\r\n\r\nbody\r\nlast\r\n.\r\n" },
	/* A line starting with '.' gets another; "." alone becomes "..". */
	{ "A: b\r\n\r\n.\r\n..x\r\n.y\r\nz.\r\n", false, 0,
	    "A: b\r\n\r\n..\r\n...x\r\n..y\r\nz.\r\n.\r\n" },
	{ "", false, 0, ".\r\n" },
	{ "A: b\r\nC: d\r\n\r\n1\r\n2\r\n3\r\n", true, 0, "A: b\r\nC: d\r\n\r\n.\r\n" },
	{ "A: b\r\nC: d\r\n\r\n1\r\n2\r\n3\r\n", true, 2, "A: b\r\nC: d\r\n\r\n1\r\n2\r\n.\r\n" },
	{ "A: b\r\n\r\n1\r\n", true, 100, "A: b\r\n\r\n1\r\n.\r\n" },
	/* No body at all: TOP gives the header. */
	{ "A: b\r\n", true, 5, "A: b\r\n.\r\n" },
};

START_TEST(test_put)
{
	const struct put_case *c = &put_cases[_i];
	struct buf b;

	buf_init(&b);
	pop3_put_message(&b, c->msg, strlen(c->msg), c->top, c->lines);
	ck_assert_uint_eq(buf_unread(&b), strlen(c->out));
	ck_assert_mem_eq(buf_rptr(&b), c->out, strlen(c->out));
	buf_free(&b);
}
END_TEST

Suite *
pop3_parse_suite(void)
{
	Suite *s = suite_create("pop3_parse");
	TCase *tc = tcase_create("pop3_parse");

	tcase_add_loop_test(tc, test_parse, 0, (int)NELEM(parse_cases));
	tcase_add_test(tc, test_nul);
	tcase_add_loop_test(tc, test_put, 0, (int)NELEM(put_cases));
	suite_add_tcase(s, tc);
	return s;
}
