/*
 * test_imap_parse - mailbox/imap_parse, imap_args and mutf7: the reader
 * fed whole, byte by byte and in odd chunks (same events), synchronising
 * and LITERAL+ literals, every limit at its boundary, the hostile inputs
 * of issue 12 (huge and absurd literals, 1 MB lines, 100,000 nested
 * parentheses, NUL and 8-bit bytes, unterminated strings) each with its
 * error and the next command read normally; the tokens; sequence sets,
 * FETCH, STORE, SEARCH, dates, mailbox names, LIST patterns, modified
 * UTF-7 and the string writers.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "mailbox/imap_args.h"
#include "mailbox/imap_parse.h"
#include "mailbox/mutf7.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define MB (1024 * 1024)

/*
 * transcript - feed data in chunks of `chunk` bytes (0: all at once) and
 * write one line per event: "C <raw command>" (the bytes as assembled,
 * CR, LF and NUL shown as \r \n \0), "+" for CONTINUE, "E <tag|*> <text>",
 * "F <text>".  Literals are accepted unless reject_sync.
 */
static void
transcript(struct imap_reader *r, const char *data, size_t len, size_t chunk,
    bool reject_sync, struct buf *out)
{
	size_t off = 0;

	while (off < len) {
		size_t n = chunk == 0 || len - off < chunk ? len - off : chunk;

		while (n > 0) {
			size_t used = 0;
			enum imap_rd_status st = imap_reader_feed(r, data + off, n, &used);
			struct imap_cmd cmd;
			char err[IMAP_ERR_MAX];

			ck_assert_uint_le(used, n);
			off += used;
			n -= used;
			switch (st) {
			case IMAP_RD_NEEDMORE:
				ck_assert_uint_eq(n, 0);
				break;
			case IMAP_RD_CONTINUE:
				buf_appends(out, "+\n");
				if (reject_sync)
					imap_reader_reject(r);
				break;
			case IMAP_RD_COMMAND:
				/* The bytes as assembled (the tokeniser then edits them in place). */
				buf_appends(out, "C ");
				for (size_t i = 0; i < r->cmd.len; i++) {
					char c = r->cmd.data[i];

					if (c == '\r')
						buf_appends(out, "\\r");
					else if (c == '\n')
						buf_appends(out, "\\n");
					else if (c == '\0')
						buf_appends(out, "\\0");
					else
						buf_appendc(out, c);
				}
				buf_appendc(out, '\n');
				ck_assert_int_ge(imap_reader_take(r, &cmd, err, sizeof err), -EINVAL);
				imap_cmd_free(&cmd);
				ck_assert(imap_reader_idle(r));
				ck_assert_uint_eq(r->cmd.cap, 0);
				break;
			case IMAP_RD_ERROR:
				buf_appendf(out, "E %s %s\n",
				    imap_reader_tag(r) ? imap_reader_tag(r) : "*", imap_reader_error(r));
				ck_assert(imap_reader_idle(r));
				ck_assert_uint_eq(r->cmd.cap, 0);
				break;
			case IMAP_RD_FATAL:
				buf_appendf(out, "F %s\n", imap_reader_error(r));
				return;
			}
		}
	}
}

static char *
run(const struct imap_limits *lim, const char *data, size_t len, size_t chunk, bool reject)
{
	struct imap_reader r;
	struct buf out = BUF_INIT;

	imap_reader_init(&r, lim);
	transcript(&r, data, len, chunk, reject, &out);
	imap_reader_free(&r);
	buf_appendc(&out, '\0');
	return buf_steal(&out, NULL);
}

static void
expect(const struct imap_limits *lim, const char *data, size_t len, const char *want)
{
	static const size_t chunks[] = { 0, 1, 2, 3, 7, 64 };

	for (size_t i = 0; i < NELEM(chunks); i++) {
		char *got = run(lim, data, len, chunks[i], false);

		ck_assert_msg(strcmp(got, want) == 0, "chunk %zu:\n%s\nwant:\n%s", chunks[i], got,
		    want);
		free(got);
	}
}

static struct imap_limits
limits(bool before_login)
{
	struct imap_limits lim;

	imap_limits_default(&lim, before_login);
	return lim;
}

/* --- the reader ------------------------------------------------------------------------- */

START_TEST(simple_commands)
{
	struct imap_limits lim = limits(true);
	const char in[] = "a1 CAPABILITY\r\na2 NOOP\nA3 LOGIN bob \"s3cr\\\"t\"\r\n";

	expect(&lim, in, strlen(in),
	    "C a1 CAPABILITY\\r\\n\n"
	    "C a2 NOOP\\n\n"
	    "C A3 LOGIN bob \"s3cr\\\"t\"\\r\\n\n");
}
END_TEST

START_TEST(sync_literal)
{
	struct imap_limits lim = limits(false);
	static const char in[] = "a APPEND INBOX (\\Seen) {5}\r\nab\0\r\n {2+}\r\nxy\r\nb NOOP\r\n";

	expect(&lim, in, sizeof in - 1,
	    "+\n"
	    "C a APPEND INBOX (\\Seen) {5}\\r\\nab\\0\\r\\n {2+}\\r\\nxy\\r\\n\n"
	    "C b NOOP\\r\\n\n");
}
END_TEST

START_TEST(literal_plus_no_continue)
{
	struct imap_limits lim = limits(true);
	const char in[] = "a LOGIN {3+}\r\nbob {4+}\r\npass\r\n";

	expect(&lim, in, strlen(in), "C a LOGIN {3+}\\r\\nbob {4+}\\r\\npass\\r\\n\n");
}
END_TEST

START_TEST(zero_literal)
{
	struct imap_limits lim = limits(true);
	const char in[] = "a LOGIN {0}\r\n {0+}\r\n\r\n";

	expect(&lim, in, strlen(in), "+\nC a LOGIN {0}\\r\\n {0+}\\r\\n\\r\\n\n");
}
END_TEST

START_TEST(huge_sync_before_login)
{
	struct imap_limits lim = limits(true);
	const char in[] = "a LOGIN {4294967295}\r\nb NOOP\r\n";
	struct imap_reader r;
	size_t used;

	expect(&lim, in, strlen(in),
	    "E a literal of 4294967295 bytes exceeds the 8192-byte limit before login\n"
	    "C b NOOP\\r\\n\n");
	/* The announcement allocates nothing. */
	imap_reader_init(&r, &lim);
	ck_assert_int_eq(imap_reader_feed(&r, in, 22, &used), IMAP_RD_ERROR);
	ck_assert_uint_eq(used, 22);
	ck_assert_ptr_null(r.cmd.data);
	imap_reader_free(&r);
}
END_TEST

START_TEST(absurd_literal_fatal)
{
	struct imap_limits lim = limits(false);
	const char a[] = "a APPEND INBOX {18446744073709551616}\r\n";
	const char b[] = "a APPEND INBOX {4294967296}\r\n";
	const char c[] = "a APPEND INBOX {99999999999999999999999999999+}\r\n";

	expect(&lim, a, strlen(a), "F literal size of 20 digits is beyond any limit\n");
	expect(&lim, b, strlen(b), "F literal of 4294967296 bytes is beyond the 4294967295-byte cap\n");
	expect(&lim, c, strlen(c), "F literal size of 29 digits is beyond any limit\n");
}
END_TEST

START_TEST(big_sync_after_login)
{
	struct imap_limits lim = limits(false);
	const char in[] = "a APPEND INBOX {4294967295}\r\nb NOOP\r\n";

	lim.max_literal = 25 * MB;
	expect(&lim, in, strlen(in),
	    "E a literal of 4294967295 bytes exceeds the 26214400-byte limit\nC b NOOP\\r\\n\n");
}
END_TEST

START_TEST(nonsync_over_limit_skipped)
{
	struct imap_limits lim = limits(true);
	struct buf in = BUF_INIT;
	char *got;

	buf_appends(&in, "a LOGIN {8193+}\r\n");
	for (int i = 0; i < 8193; i++)
		buf_appendc(&in, i % 2 ? '\n' : 'x');
	buf_appends(&in, " {3+}\r\nabc\r\nb NOOP\r\n");
	expect(&lim, in.data, in.len,
	    "E a literal of 8193 bytes exceeds the 8192-byte limit before login\nC b NOOP\\r\\n\n");
	/* At the limit it is read. */
	buf_reset(&in);
	buf_appends(&in, "a LOGIN {8192+}\r\n");
	for (int i = 0; i < 8192; i++)
		buf_appendc(&in, 'y');
	buf_appends(&in, "\r\n");
	got = run(&lim, in.data, in.len, 0, false);
	ck_assert_str_eq(got + strlen(got) - 6, "y\\r\\n\n");
	ck_assert(strncmp(got, "C a LOGIN", 9) == 0);
	free(got);
	buf_free(&in);
}
END_TEST

/* A refused LITERAL+ literal too large to read and drop ends the connection at once. */
START_TEST(nonsync_huge_is_fatal)
{
	struct imap_limits lim = limits(true);
	const char a[] = "a LOGIN {1000000000+}\r\nxxxx";
	char want[IMAP_ERR_MAX + 8];

	snprintf(want, sizeof want, "F non-synchronising literal of 1000000000 bytes exceeds the "
	    "8192-byte limit before login\n");
	expect(&lim, a, strlen(a), want);
	/* Just above what is read and dropped, also after login. */
	lim = limits(false);
	lim.max_literal = 100;
	expect(&lim, "a APPEND INBOX {65537+}\r\n", 25,
	    "F non-synchronising literal of 65537 bytes exceeds the 100-byte limit\n");
}
END_TEST

START_TEST(rejected_sync_literal)
{
	struct imap_limits lim = limits(false);
	const char in[] = "a APPEND Nope {10}\r\nb NOOP\r\n";
	char *got;

	got = run(&lim, in, strlen(in), 0, true);
	ck_assert_str_eq(got, "+\nC b NOOP\\r\\n\n");
	free(got);
	got = run(&lim, in, strlen(in), 1, true);
	ck_assert_str_eq(got, "+\nC b NOOP\\r\\n\n");
	free(got);
}
END_TEST

START_TEST(line_limit_boundary)
{
	struct imap_limits lim = limits(true);
	const char ok[] = "a NOOP 012345678\r\n";  /* 16 bytes before CRLF */
	const char bad[] = "a NOOP 0123456789\r\nb NOOP\r\n";
	const char bare[] = "a NOOP 012345678\nb NOOP 0123456789\n";

	lim.max_line = 16;
	expect(&lim, ok, strlen(ok), "C a NOOP 012345678\\r\\n\n");
	expect(&lim, bad, strlen(bad), "E a line longer than 16 bytes\nC b NOOP\\r\\n\n");
	expect(&lim, bare, strlen(bare), "C a NOOP 012345678\\n\nE b line longer than 16 bytes\n");
}
END_TEST

START_TEST(megabyte_line)
{
	struct imap_limits lim = limits(true);
	struct imap_reader r;
	char *line = malloc(MB);
	size_t used;

	memset(line, 'x', MB);
	memcpy(line, "tag1 SEARCH ", 12);
	imap_reader_init(&r, &lim);
	ck_assert_int_eq(imap_reader_feed(&r, line, MB, &used), IMAP_RD_NEEDMORE);
	/* Nothing of the line beyond the limit is held. */
	ck_assert_uint_eq(r.cmd.cap, 0);
	ck_assert_int_eq(imap_reader_feed(&r, "\r\nb NOOP\r\n", 10, &used), IMAP_RD_ERROR);
	ck_assert_str_eq(imap_reader_tag(&r), "tag1");
	ck_assert_str_eq(imap_reader_error(&r), "line longer than 65536 bytes");
	ck_assert_int_eq(imap_reader_feed(&r, "\r\nb NOOP\r\n" + used, 10 - used, &used),
	    IMAP_RD_COMMAND);
	imap_reader_free(&r);
	free(line);
}
END_TEST

START_TEST(command_limit_boundary)
{
	struct imap_limits lim = limits(false);
	const char ok[] = "a X {4}\r\nabcd\r\n";     /* 15 bytes */
	const char bad[] = "a X {5}\r\nabcde\r\nb Y\r\n"; /* 16 bytes */
	const char badline[] = "a X 12345678901\r\nb Y\r\n";

	lim.max_command = 15;
	expect(&lim, ok, strlen(ok), "+\nC a X {4}\\r\\nabcd\\r\\n\n");
	expect(&lim, bad, strlen(bad), "+\nE a command longer than 15 bytes\nC b Y\\r\\n\n");
	expect(&lim, badline, strlen(badline), "E a command longer than 15 bytes\nC b Y\\r\\n\n");
}
END_TEST

START_TEST(nul_byte)
{
	struct imap_limits lim = limits(true);
	static const char in[] = "a NO\0OP\r\nb NOOP\r\nc\0 NOOP\r\n";

	expect(&lim, in, sizeof in - 1,
	    "E a NUL byte in command\nC b NOOP\\r\\n\nE * NUL byte in command\n");
	expect(&lim, "a NOOP \0\r\n", 10, "E a NUL byte in command\n");
}
END_TEST

START_TEST(idle_memory)
{
	struct imap_limits lim = limits(true);
	struct imap_reader r;
	struct imap_cmd cmd;
	char err[IMAP_ERR_MAX];
	size_t used;

	ck_assert_uint_le(sizeof r, 512);
	imap_reader_init(&r, &lim);
	ck_assert_ptr_null(r.cmd.data);
	ck_assert_int_eq(imap_reader_feed(&r, "a NOOP\r\n", 8, &used), IMAP_RD_COMMAND);
	ck_assert_int_eq(imap_reader_feed(&r, "b", 1, &used), IMAP_RD_COMMAND);
	ck_assert_uint_eq(used, 0);
	ck_assert_int_eq(imap_reader_take(&r, &cmd, err, sizeof err), 0);
	ck_assert_ptr_null(r.cmd.data);
	ck_assert_str_eq(cmd.tag, "a");
	ck_assert_str_eq(cmd.name, "NOOP");
	imap_cmd_free(&cmd);
	imap_reader_free(&r);
}
END_TEST

START_TEST(fatal_sticks)
{
	struct imap_limits lim = limits(true);
	struct imap_reader r;
	size_t used;

	imap_reader_init(&r, &lim);
	ck_assert_int_eq(imap_reader_feed(&r, "a X {99999999999}\r\nb NOOP\r\n", 27, &used),
	    IMAP_RD_FATAL);
	ck_assert_uint_eq(used, 19);
	ck_assert_int_eq(imap_reader_feed(&r, "b NOOP\r\n", 8, &used), IMAP_RD_FATAL);
	ck_assert_uint_eq(used, 0);
	imap_reader_free(&r);
}
END_TEST

/* --- the tokeniser ---------------------------------------------------------------------- */

/* parse - tokenise a copy of s; returns imap_cmd_parse's result. */
static int
parse(const char *s, size_t len, struct imap_cmd *cmd, char *err, size_t errsz)
{
	struct imap_limits lim = limits(false);
	char *copy = malloc(len + 1);

	memcpy(copy, s, len);
	return imap_cmd_parse(cmd, copy, len, &lim, err, errsz);
}

START_TEST(tokens_tree)
{
	const char in[] = "a1 UID FETCH 1:*,7 (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>"
	    " (x NIL 42 \"q\\\\\")) {3}\r\nl\0t 18446744073709551616\r\n";
	struct imap_cmd cmd;
	char err[IMAP_ERR_MAX];
	const struct imap_tok *t, *l;

	ck_assert_int_eq(parse(in, sizeof in - 1, &cmd, err, sizeof err), 0);
	ck_assert_str_eq(cmd.tag, "a1");
	ck_assert_str_eq(cmd.name, "UID");
	t = cmd.args;
	ck_assert(imap_tok_eq(t, "fetch"));
	t = imap_tok_next(t);
	ck_assert_int_eq(t->type, IMAP_TOK_ATOM);
	ck_assert_uint_eq(t->len, 5);
	l = imap_tok_next(t);
	ck_assert_int_eq(l->type, IMAP_TOK_LIST);
	ck_assert_uint_eq(l->n, 3);
	ck_assert_uint_eq(l->skip, 8);
	t = l + 2;
	ck_assert(t->bracket);
	ck_assert_uint_eq(t->len, strlen("BODY.PEEK[HEADER.FIELDS (From To)]<0.100>"));
	t = imap_tok_next(t);
	ck_assert_int_eq(t->type, IMAP_TOK_LIST);
	ck_assert_int_eq(t[1].type, IMAP_TOK_ATOM);
	ck_assert_int_eq(t[2].type, IMAP_TOK_NIL);
	ck_assert_int_eq(t[3].type, IMAP_TOK_NUMBER);
	ck_assert_uint_eq(t[3].num, 42);
	ck_assert_int_eq(t[4].type, IMAP_TOK_QUOTED);
	ck_assert_uint_eq(t[4].len, 2);
	ck_assert(memcmp(t[4].s, "q\\", 2) == 0);
	t = imap_tok_next(l);
	ck_assert_int_eq(t->type, IMAP_TOK_LITERAL);
	ck_assert_uint_eq(t->len, 3);
	ck_assert(memcmp(t->s, "l\0t", 3) == 0);
	ck_assert(!t->nonsync);
	t = imap_tok_next(t);
	ck_assert_int_eq(t->type, IMAP_TOK_NUMBER);
	ck_assert(t->big);
	ck_assert(imap_tok_next(t) == cmd.args + cmd.nargs);
	for (size_t i = 0; i < cmd.nargs; i++)
		if (cmd.args[i].type != IMAP_TOK_LIST)
			ck_assert(cmd.args[i].s >= cmd.raw &&
			    cmd.args[i].s + cmd.args[i].len <= cmd.raw + cmd.raw_len);
	imap_cmd_free(&cmd);
}
END_TEST

static const struct bad_case {
	const char *in;
	int rc;
	const char *err;
} bad_cases[] = {
	{ "a SEARCH SUBJECT \"open\r\n", -EINVAL, "unterminated quoted string" },
	{ "a SELECT caf\xc3\xa9\r\n", -EINVAL, "8-bit byte in atom" },
	{ "a LOGIN \"x\\n\"\r\n", -EINVAL, "bad escape in quoted string (only \\\\ and \\\")" },
	{ "a X (a (b)\r\n", -EINVAL, "unterminated list: missing ')'" },
	{ "a X a)\r\n", -EINVAL, "')' without '('" },
	{ "a X  a\r\n", -EINVAL, "stray space" },
	{ "a X a \r\n", -EINVAL, "stray space" },
	{ "a X (a)b\r\n", -EINVAL, "missing space between arguments" },
	{ "a X {3}x\r\n", -EINVAL, "a literal announcement must end the line" },
	{ "a X BODY[HEADER\r\n", -EINVAL, "unterminated [section]" },
	{ "a X ab\"c\r\n", -EINVAL, "'\"' inside an atom" },
	{ "a X a\tb\r\n", -EINVAL, "control byte 0x09 in atom" },
	{ "a\r\n", -EBADMSG, "missing or invalid tag" },
	{ " NOOP\r\n", -EBADMSG, "missing or invalid tag" },
	{ "+ NOOP\r\n", -EBADMSG, "missing or invalid tag" },
	{ "a* NOOP\r\n", -EBADMSG, "missing or invalid tag" },
	{ "a \r\n", -EINVAL, "missing command name" },
	{ "a NO\xff\r\n", -EINVAL, "8-bit byte in command name" },
	{ "a NO(OP\r\n", -EINVAL, "bad character '(' in command name" },
};

START_TEST(tokens_bad)
{
	const struct bad_case *c = &bad_cases[_i];
	struct imap_cmd cmd;
	char err[IMAP_ERR_MAX] = "";

	ck_assert_int_eq(parse(c->in, strlen(c->in), &cmd, err, sizeof err), c->rc);
	ck_assert_str_eq(err, c->err);
	if (c->rc == -EINVAL)
		ck_assert_str_eq(cmd.tag, "a");
	else
		ck_assert_ptr_null(cmd.tag);
	imap_cmd_free(&cmd);
}
END_TEST

START_TEST(nesting_limit)
{
	struct imap_limits lim = limits(false);
	struct buf in = BUF_INIT;
	struct imap_cmd cmd;
	char err[IMAP_ERR_MAX];
	char *copy;

	/* 32 deep is fine, 33 is not. */
	for (unsigned depth = 32; depth <= 33; depth++) {
		buf_reset(&in);
		buf_appends(&in, "a X ");
		for (unsigned i = 0; i < depth; i++)
			buf_appendc(&in, '(');
		for (unsigned i = 0; i < depth; i++)
			buf_appendc(&in, ')');
		buf_appends(&in, "\r\n");
		copy = buf_steal(&in, NULL);
		ck_assert_int_eq(imap_cmd_parse(&cmd, copy, strlen(copy), &lim, err, sizeof err),
		    depth == 32 ? 0 : -EINVAL);
		if (depth == 33)
			ck_assert_str_eq(err, "list nested deeper than 32");
		imap_cmd_free(&cmd);
	}
	/* 100,000 open parentheses: the line limit, then (raised) the depth. */
	buf_appends(&in, "a X ");
	for (unsigned i = 0; i < 100000; i++)
		buf_appendc(&in, '(');
	buf_appends(&in, "\r\n");
	{
		char *got;

		got = run(&lim, in.data, in.len, 0, false);
		ck_assert_str_eq(got, "E a line longer than 65536 bytes\n");
		free(got);
	}
	lim.max_line = 200000;
	copy = buf_steal(&in, NULL);
	ck_assert_int_eq(imap_cmd_parse(&cmd, copy, strlen(copy), &lim, err, sizeof err), -EINVAL);
	ck_assert_str_eq(err, "list nested deeper than 32");
	imap_cmd_free(&cmd);
}
END_TEST

START_TEST(token_limit)
{
	struct imap_limits lim = limits(false);
	struct imap_cmd cmd;
	char err[IMAP_ERR_MAX];

	lim.max_tokens = 3;
	ck_assert_int_eq(imap_cmd_parse(&cmd, strdup("a X a b c\r\n"), 11, &lim, err, sizeof err), 0);
	imap_cmd_free(&cmd);
	ck_assert_int_eq(imap_cmd_parse(&cmd, strdup("a X a (b c)\r\n"), 13, &lim, err, sizeof err),
	    -EINVAL);
	ck_assert_str_eq(err, "more than 3 arguments");
	imap_cmd_free(&cmd);
}
END_TEST

/* --- sequence sets ---------------------------------------------------------------------- */

static const struct seq_case {
	const char *in;
	int rc;
	size_t n;
	uint32_t lo0, hi0, lo_last, hi_last;
} seq_cases[] = {
	{ "1", 0, 1, 1, 1, 1, 1 },
	{ "1:5", 0, 1, 1, 5, 1, 5 },
	{ "5:1", 0, 1, 1, 5, 1, 5 },
	{ "*", 0, 1, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX },
	{ "*:*", 0, 1, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX },
	{ "1:*", 0, 1, 1, UINT32_MAX, 1, UINT32_MAX },
	{ "*:3", 0, 1, 3, UINT32_MAX, 3, UINT32_MAX },
	{ "2,4:7,9,12:*", 0, 4, 2, 2, 12, UINT32_MAX },
	{ "4294967294", 0, 1, 4294967294u, 4294967294u, 4294967294u, 4294967294u },
	{ "0", -EINVAL, 0, 0, 0, 0, 0 },
	{ "1:0", -EINVAL, 0, 0, 0, 0, 0 },
	{ "4294967295", -EINVAL, 0, 0, 0, 0, 0 },
	{ "4294967296", -EINVAL, 0, 0, 0, 0, 0 },
	{ "99999999999999999999", -EINVAL, 0, 0, 0, 0, 0 },
	{ "", -EINVAL, 0, 0, 0, 0, 0 },
	{ "1,", -EINVAL, 0, 0, 0, 0, 0 },
	{ ",1", -EINVAL, 0, 0, 0, 0, 0 },
	{ "1::2", -EINVAL, 0, 0, 0, 0, 0 },
	{ "1:2:3", -EINVAL, 0, 0, 0, 0, 0 },
	{ "01", -EINVAL, 0, 0, 0, 0, 0 },
	{ "a", -EINVAL, 0, 0, 0, 0, 0 },
};

START_TEST(seqsets)
{
	const struct seq_case *c = &seq_cases[_i];
	struct imap_seqset set;
	char err[IMAP_ERR_MAX];

	ck_assert_int_eq(imap_seqset_parse(c->in, strlen(c->in), &set, err, sizeof err), c->rc);
	ck_assert_uint_eq(set.n, c->n);
	if (c->rc == 0) {
		ck_assert_uint_eq(set.v[0].lo, c->lo0);
		ck_assert_uint_eq(set.v[0].hi, c->hi0);
		ck_assert_uint_eq(set.v[set.n - 1].lo, c->lo_last);
		ck_assert_uint_eq(set.v[set.n - 1].hi, c->hi_last);
	} else {
		ck_assert_ptr_null(set.v);
	}
	imap_seqset_free(&set);
}
END_TEST

START_TEST(seqset_bound)
{
	struct buf b = BUF_INIT;
	struct imap_seqset set;
	char err[IMAP_ERR_MAX];

	for (int i = 0; i < IMAP_SEQ_RANGES_MAX; i++)
		buf_appends(&b, i ? ",1" : "1");
	ck_assert_int_eq(imap_seqset_parse(b.data, b.len, &set, err, sizeof err), 0);
	ck_assert_uint_eq(set.n, IMAP_SEQ_RANGES_MAX);
	imap_seqset_free(&set);
	buf_appends(&b, ",1");
	ck_assert_int_eq(imap_seqset_parse(b.data, b.len, &set, err, sizeof err), -EINVAL);
	ck_assert_str_eq(err, "more than 10000 ranges in sequence set");
	ck_assert_int_eq(imap_seqset_parse("0", 1, &set, err, sizeof err), -EINVAL);
	ck_assert_str_eq(err, "0 is not a message number");
	buf_free(&b);
}
END_TEST

/* --- FETCH, STORE, SEARCH ---------------------------------------------------------------- */

/* with_args - tokenise "t X <args>\r\n"; the arguments start at cmd->args. */
static void
with_args(const char *args, struct imap_cmd *cmd)
{
	struct buf b = BUF_INIT;
	char err[IMAP_ERR_MAX];
	size_t len;
	char *s;

	buf_appendf(&b, "t X %s\r\n", args);
	s = buf_steal(&b, &len);
	ck_assert_msg(parse(s, len, cmd, err, sizeof err) == 0, "%s: %s", args, err);
	free(s);
}

static const struct imap_tok *
args_end(const struct imap_cmd *cmd)
{
	return cmd->args + cmd->nargs;
}

static const struct fetch_case {
	const char *in;
	int rc;
	size_t n;
	const char *resp_last; /* or the error */
} fetch_cases[] = {
	{ "ALL", 0, 4, "ENVELOPE" },
	{ "fast", 0, 3, "RFC822.SIZE" },
	{ "FULL", 0, 5, "BODY" },
	{ "uid", 0, 1, "UID" },
	{ "(FLAGS UID MODSEQ BODYSTRUCTURE RFC822.HEADER)", 0, 5, "RFC822.HEADER" },
	{ "BODY.PEEK[HEADER]", 0, 1, "BODY[HEADER]" },
	{ "body[]<0.100>", 0, 1, "BODY[]<0>" },
	{ "BODY[1.2.MIME]", 0, 1, "BODY[1.2.MIME]" },
	{ "BODY[3]", 0, 1, "BODY[3]" },
	{ "BODY[1.TEXT]", 0, 1, "BODY[1.TEXT]" },
	{ "(UID BODY.PEEK[HEADER.FIELDS (From To \"X-Kurier\")])", 0, 2,
	    "BODY[HEADER.FIELDS (From To X-Kurier)]" },
	{ "BODY[HEADER.FIELDS.NOT (Received)]<10.5>", 0, 1, "BODY[HEADER.FIELDS.NOT (Received)]<10>" },
	{ "(FLAGS) (CHANGEDSINCE 12345)", 0, 1, "FLAGS" },
	{ "(FLAGS) (CHANGEDSINCE 1 VANISHED)", 0, 1, "FLAGS" },
	{ "BODY[MIME]", -EINVAL, 0, "MIME needs a part number" },
	{ "BODY[0]", -EINVAL, 0, "bad part number in section" },
	{ "BODY[HEADER.FIELDS]", -EINVAL, 0, "HEADER.FIELDS needs a list of field names" },
	{ "BODY[HEADER.FIELDS ()]", -EINVAL, 0, "empty header field list" },
	{ "BODY[]<0.0>", -EINVAL, 0, "bad <partial>" },
	{ "BODY[]<5>", -EINVAL, 0, "bad <partial>" },
	{ "BODY[FOO]", -EINVAL, 0, "unknown section" },
	{ "(ALL)", -EINVAL, 0, "unknown fetch attribute ALL" },
	{ "()", -EINVAL, 0, "a fetch list holds 1 to 64 attributes" },
	{ "RFC822.FOO", -EINVAL, 0, "unknown fetch attribute RFC822.FOO" },
	{ "(FLAGS) (VANISHED)", -EINVAL, 0, "VANISHED needs CHANGEDSINCE" },
	{ "(FLAGS) (CHANGEDSINCE x)", -EINVAL, 0, "CHANGEDSINCE needs a mod-sequence" },
	{ "(FLAGS) (CHANGEDSINCE 1) x", -EINVAL, 0, "too many FETCH arguments" },
};

START_TEST(fetch)
{
	const struct fetch_case *c = &fetch_cases[_i];
	struct imap_cmd cmd;
	struct imap_fetch f;
	char err[IMAP_ERR_MAX] = "";

	with_args(c->in, &cmd);
	ck_assert_int_eq(imap_fetch_parse(cmd.args, args_end(&cmd), &f, err, sizeof err), c->rc);
	if (c->rc == 0) {
		ck_assert_uint_eq(f.n, c->n);
		ck_assert_str_eq(f.v[f.n - 1].resp, c->resp_last);
	} else {
		ck_assert_str_eq(err, c->resp_last);
		ck_assert_uint_eq(f.n, 0);
	}
	imap_fetch_free(&f);
	imap_cmd_free(&cmd);
}
END_TEST

START_TEST(fetch_details)
{
	struct imap_cmd cmd;
	struct imap_fetch f;
	char err[IMAP_ERR_MAX];

	with_args("(BODY.PEEK[1.2.HEADER.FIELDS (Subject)]<7.9> BODY) (VANISHED CHANGEDSINCE 77)", &cmd);
	ck_assert_int_eq(imap_fetch_parse(cmd.args, args_end(&cmd), &f, err, sizeof err), 0);
	ck_assert_int_eq(f.v[0].kind, IMAP_FA_SECTION);
	ck_assert(f.v[0].peek);
	ck_assert_uint_eq(f.v[0].nparts, 2);
	ck_assert_uint_eq(f.v[0].part[1], 2);
	ck_assert_int_eq(f.v[0].section, IMAP_SEC_FIELDS);
	ck_assert_uint_eq(f.v[0].nfields, 1);
	ck_assert(f.v[0].partial);
	ck_assert_uint_eq(f.v[0].origin, 7);
	ck_assert_uint_eq(f.v[0].count, 9);
	ck_assert_str_eq(f.v[0].resp, "BODY[1.2.HEADER.FIELDS (Subject)]<7>");
	ck_assert_int_eq(f.v[1].kind, IMAP_FA_BODY);
	ck_assert(f.vanished);
	ck_assert_uint_eq(f.changedsince, 77);
	imap_fetch_free(&f);
	imap_cmd_free(&cmd);
}
END_TEST

static const struct store_case {
	const char *in;
	int rc;
	enum imap_store_op op;
	bool silent;
	const char *flags; /* or the error */
} store_cases[] = {
	{ "+FLAGS (\\Seen)", 0, IMAP_STORE_ADD, false, "\\Seen" },
	{ "-flags.silent \\deleted $Junk", 0, IMAP_STORE_REMOVE, true, "\\Deleted $Junk" },
	{ "FLAGS ()", 0, IMAP_STORE_SET, false, "" },
	{ "(UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Flagged)", 0, IMAP_STORE_ADD, true,
	    "\\Flagged" },
	{ "+FLAGS (\\Recent)", -EINVAL, 0, false, "\\Recent cannot be stored" },
	{ "+FLAGS (\\Bogus)", -EINVAL, 0, false, "unknown system flag \\Bogus" },
	{ "+FLAGS (a%b)", -EINVAL, 0, false, "bad character in flag" },
	{ "+FLAGS (\"x\")", -EINVAL, 0, false, "a flag is an atom" },
	{ "+FLAGS (a) b", -EINVAL, 0, false, "too many STORE arguments" },
	{ "LABELS (a)", -EINVAL, 0, false, "STORE needs FLAGS, +FLAGS or -FLAGS" },
	{ "+FLAGS", -EINVAL, 0, false, "STORE needs flags" },
	{ "(UNCHANGEDSINCE) FLAGS (a)", -EINVAL, 0, false, "bad STORE modifier" },
};

START_TEST(store)
{
	const struct store_case *c = &store_cases[_i];
	struct imap_cmd cmd;
	struct imap_store s;
	char err[IMAP_ERR_MAX] = "";

	with_args(c->in, &cmd);
	ck_assert_int_eq(imap_store_parse(cmd.args, args_end(&cmd), &s, err, sizeof err), c->rc);
	if (c->rc == 0) {
		ck_assert_int_eq(s.op, c->op);
		ck_assert_int_eq(s.silent, c->silent);
		ck_assert_str_eq(s.flags, c->flags);
		ck_assert(mbox_valid_flags(s.flags));
	} else {
		ck_assert_str_eq(err, c->flags);
		ck_assert_ptr_null(s.flags);
	}
	imap_store_free(&s);
	imap_cmd_free(&cmd);
}
END_TEST

START_TEST(store_unchangedsince)
{
	struct imap_cmd cmd;
	struct imap_store s;
	char err[IMAP_ERR_MAX];

	with_args("(UNCHANGEDSINCE 320162338) FLAGS a", &cmd);
	ck_assert_int_eq(imap_store_parse(cmd.args, args_end(&cmd), &s, err, sizeof err), 0);
	ck_assert(s.unchangedsince_set);
	ck_assert_uint_eq(s.unchangedsince, 320162338);
	imap_store_free(&s);
	imap_cmd_free(&cmd);
}
END_TEST

/* shape - the search tree as text: "AND(SEEN,NOT(FROM))". */
static void
shape(const struct imap_search *s, struct buf *b)
{
	static const char *const names[] = {
		[IMAP_SK_AND] = "AND", [IMAP_SK_OR] = "OR", [IMAP_SK_NOT] = "NOT",
		[IMAP_SK_ALL] = "ALL", [IMAP_SK_SEEN] = "SEEN", [IMAP_SK_UNSEEN] = "UNSEEN",
		[IMAP_SK_FROM] = "FROM", [IMAP_SK_SUBJECT] = "SUBJECT", [IMAP_SK_HEADER] = "HEADER",
		[IMAP_SK_SINCE] = "SINCE", [IMAP_SK_LARGER] = "LARGER", [IMAP_SK_UID] = "UID",
		[IMAP_SK_SEQ] = "SEQ", [IMAP_SK_MODSEQ] = "MODSEQ", [IMAP_SK_KEYWORD] = "KEYWORD",
		[IMAP_SK_DELETED] = "DELETED", [IMAP_SK_BEFORE] = "BEFORE",
	};

	buf_appends(b, s->key < NELEM(names) && names[s->key] ? names[s->key] : "?");
	if (s->str != NULL)
		buf_appendf(b, "=%.*s", (int)s->str_len, s->str);
	if (s->nsub > 0) {
		buf_appendc(b, '(');
		for (size_t i = 0; i < s->nsub; i++) {
			if (i > 0)
				buf_appendc(b, ',');
			shape(s->sub[i], b);
		}
		buf_appendc(b, ')');
	}
}

static const struct search_case {
	const char *in;
	int rc;
	const char *out; /* the shape, or the error */
} search_cases[] = {
	{ "ALL", 0, "AND(ALL)" },
	{ "CHARSET UTF-8 SUBJECT \"caf\xc3\xa9\" UNSEEN", 0, "AND(SUBJECT=caf\xc3\xa9,UNSEEN)" },
	{ "charset us-ascii seen", 0, "AND(SEEN)" },
	{ "OR SEEN NOT FROM bob (DELETED LARGER 10)", 0,
	    "AND(OR(SEEN,NOT(FROM=bob)),AND(DELETED,LARGER))" },
	{ "1:5,7 UID 3:* HEADER X-Kurier-Id {2}\r\nab", 0, "AND(SEQ,UID,HEADER=ab)" },
	{ "SINCE 7-Dec-2026 BEFORE \"1-jan-2027\"", 0, "AND(SINCE,BEFORE)" },
	{ "MODSEQ \"/flags/\\\\draft\" all 620162338", 0, "AND(MODSEQ)" },
	{ "MODSEQ 5 KEYWORD $Junk", 0, "AND(MODSEQ,KEYWORD=$Junk)" },
	{ "CHARSET KOI8-R SUBJECT x", -ENOTSUP, "unsupported charset KOI8-R" },
	{ "SINCE 32-Dec-2026", -EINVAL, "bad date (want d-Mon-yyyy)" },
	{ "SINCE 29-Feb-2026", -EINVAL, "bad date (want d-Mon-yyyy)" },
	{ "FROM", -EINVAL, "search key needs an argument" },
	{ "OR SEEN", -EINVAL, "search key missing" },
	{ "FOO", -EINVAL, "unknown search key FOO" },
	{ "0", -EINVAL, "0 is not a message number" },
	{ "LARGER 4294967296", -EINVAL, "search key needs a number" },
	{ "()", -EINVAL, "empty search group" },
	{ "MODSEQ \"/flags/x\" mine 5", -EINVAL, "MODSEQ entry type must be priv, shared or all" },
	{ "NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT SEEN", -EINVAL,
	    "search program nested deeper than 16" },
	{ "NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT SEEN", 0,
	    "AND(NOT(NOT(NOT(NOT(NOT(NOT(NOT(NOT(NOT(NOT(NOT(NOT(NOT(NOT(NOT(SEEN))))))))))))))))" },
};

START_TEST(search)
{
	const struct search_case *c = &search_cases[_i];
	struct imap_cmd cmd;
	struct imap_search *s;
	char err[IMAP_ERR_MAX] = "";
	struct buf b = BUF_INIT;

	with_args(c->in, &cmd);
	ck_assert_int_eq(imap_search_parse(cmd.args, args_end(&cmd), &s, err, sizeof err), c->rc);
	if (c->rc == 0) {
		shape(s, &b);
		buf_appendc(&b, '\0');
		ck_assert_str_eq(b.data, c->out);
	} else {
		ck_assert_str_eq(err, c->out);
		ck_assert_ptr_null(s);
	}
	buf_free(&b);
	imap_search_free(s);
	imap_cmd_free(&cmd);
}
END_TEST

START_TEST(search_values)
{
	struct imap_cmd cmd;
	struct imap_search *s;
	char err[IMAP_ERR_MAX];

	with_args("SINCE 7-dec-2026 LARGER 4294967295 UID 5:1 HEADER Subject \"\"", &cmd);
	ck_assert_int_eq(imap_search_parse(cmd.args, args_end(&cmd), &s, err, sizeof err), 0);
	ck_assert_uint_eq(s->nsub, 4);
	ck_assert_int_eq(s->sub[0]->date, 1796601600);
	ck_assert_uint_eq(s->sub[1]->num, 4294967295u);
	ck_assert_uint_eq(s->sub[2]->set.n, 1);
	ck_assert_uint_eq(s->sub[2]->set.v[0].lo, 1);
	ck_assert_uint_eq(s->sub[2]->set.v[0].hi, 5);
	ck_assert_uint_eq(s->sub[3]->field_len, 7);
	ck_assert_uint_eq(s->sub[3]->str_len, 0);
	imap_search_free(s);
	imap_cmd_free(&cmd);
}
END_TEST

/* --- dates ---------------------------------------------------------------------------------- */

START_TEST(dates)
{
	time_t t;

	ck_assert_int_eq(imap_date_parse("7-Dec-2026", 10, &t), 0);
	ck_assert_int_eq(t, 1796601600);
	ck_assert_int_eq(imap_date_parse("07-DEC-2026", 11, &t), 0);
	ck_assert_int_eq(t, 1796601600);
	ck_assert_int_eq(imap_date_parse("29-Feb-2024", 11, &t), 0);
	ck_assert_int_eq(t, 1709164800);
	ck_assert_int_eq(imap_date_parse("29-Feb-2026", 11, &t), -EINVAL);
	ck_assert_int_eq(imap_date_parse("0-Dec-2026", 10, &t), -EINVAL);
	ck_assert_int_eq(imap_date_parse("7-Dez-2026", 10, &t), -EINVAL);
	ck_assert_int_eq(imap_date_parse("7-Dec-26", 8, &t), -EINVAL);
	ck_assert_int_eq(imap_date_parse("007-Dec-2026", 12, &t), -EINVAL);
	ck_assert_int_eq(imap_datetime_parse("07-Dec-2026 12:00:00 +0100", 26, &t), 0);
	ck_assert_int_eq(t, 1796641200);
	ck_assert_int_eq(imap_datetime_parse(" 7-Dec-2026 10:00:00 -0100", 26, &t), 0);
	ck_assert_int_eq(t, 1796641200);
	ck_assert_int_eq(imap_datetime_parse("07-Dec-2026 24:00:00 +0100", 26, &t), -EINVAL);
	ck_assert_int_eq(imap_datetime_parse("07-Dec-2026 12:00:00 0100", 25, &t), -EINVAL);
	ck_assert_int_eq(imap_datetime_parse("07-Dec-2026 12:00:00 +0160", 26, &t), -EINVAL);
	ck_assert_int_eq(imap_datetime_parse("7-Dec-2026 12:00:00 +0100 ", 26, &t), -EINVAL);
}
END_TEST

/* --- modified UTF-7, names, patterns ------------------------------------------------------ */

static const struct mutf7_case {
	const char *wire;
	const char *utf8;
} mutf7_cases[] = {
	{ "INBOX", "INBOX" },
	{ "&ZeVnLIqe-", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
	{ "Entw&APw-rfe", "Entw\xc3\xbcrfe" },
	{ "&2D3eAA-", "\xf0\x9f\x98\x80" },
	{ "a&-b", "a&b" },
	{ "&AOk-/x&AOk-", "\xc3\xa9/x\xc3\xa9" },
	{ "", "" },
};

START_TEST(mutf7_both_ways)
{
	const struct mutf7_case *c = &mutf7_cases[_i];
	struct buf b = BUF_INIT;
	char err[IMAP_ERR_MAX];

	ck_assert_int_eq(mutf7_decode(c->wire, strlen(c->wire), &b, err, sizeof err), 0);
	ck_assert_uint_eq(b.len, strlen(c->utf8));
	ck_assert(memcmp(b.len ? b.data : "", c->utf8, b.len) == 0);
	buf_reset(&b);
	ck_assert_int_eq(mutf7_encode(c->utf8, strlen(c->utf8), &b, err, sizeof err), 0);
	ck_assert_uint_eq(b.len, strlen(c->wire));
	ck_assert(memcmp(b.len ? b.data : "", c->wire, b.len) == 0);
	buf_free(&b);
}
END_TEST

static const struct mutf7_bad {
	const char *in;
	const char *err;
} mutf7_bad_decode[] = {
	{ "&AGE-", "printable ASCII encoded in name (not the shortest form)" },
	{ "&ZeVnLIqe", "unterminated '&' sequence in name" },
	{ "&", "unterminated '&' sequence in name" },
	{ "&ZeV-", "bad modified base64 padding in name" },
	{ "&AOl-", "bad modified base64 padding in name" },
	{ "&2D0-", "unpaired UTF-16 surrogate in name" },
	{ "&3gDYPQ-", "unpaired UTF-16 surrogate in name" },
	{ "&AOk-&AOk-", "two '&' sequences back to back in name" },
	{ "&AAA-", "control character in name" },
	{ "&Ze/n-", "bad modified base64 in name" },
	{ "caf\xc3\xa9", "8-bit byte in name (not modified UTF-7)" },
	{ "a\tb", "control byte in name" },
};

START_TEST(mutf7_decode_bad)
{
	const struct mutf7_bad *c = &mutf7_bad_decode[_i];
	struct buf b = BUF_INIT;
	char err[IMAP_ERR_MAX] = "";

	ck_assert_int_eq(mutf7_decode(c->in, strlen(c->in), &b, err, sizeof err), -EINVAL);
	ck_assert_str_eq(err, c->err);
	buf_free(&b);
}
END_TEST

START_TEST(mutf7_encode_bad)
{
	static const char *const bad[] = {
		"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe6\x97", "a\x01", "\x80",
	};
	struct buf b = BUF_INIT;
	char err[IMAP_ERR_MAX];

	for (size_t i = 0; i < NELEM(bad); i++) {
		ck_assert_int_eq(mutf7_encode(bad[i], strlen(bad[i]), &b, err, sizeof err), -EINVAL);
		buf_reset(&b);
	}
	buf_free(&b);
}
END_TEST

static const struct name_case {
	const char *in;
	int rc;
	const char *out; /* or the error */
} name_cases[] = {
	{ "inbox", 0, "INBOX" },
	{ "InBoX/Sent", 0, "INBOX/Sent" },
	{ "Inboxes", 0, "Inboxes" },
	{ "Archive/2026", 0, "Archive/2026" },
	{ "Entw&APw-rfe", 0, "Entw&APw-rfe" },
	{ "../bob/INBOX", -EINVAL, "'.' or '..' level in mailbox name" },
	{ "a/./b", -EINVAL, "'.' or '..' level in mailbox name" },
	{ "/etc", -EINVAL, "mailbox name starts with '/'" },
	{ "~bob", -EINVAL, "mailbox name starts with '~'" },
	{ "a*", -EINVAL, "wildcard '*' or '%' in mailbox name" },
	{ "a%", -EINVAL, "wildcard '*' or '%' in mailbox name" },
	{ "a//b", -EINVAL, "empty level in mailbox name" },
	{ "a/", -EINVAL, "empty level in mailbox name" },
	{ "", -EINVAL, "empty mailbox name" },
	{ "caf\xc3\xa9", -EINVAL, "8-bit byte in name (not modified UTF-7)" },
};

START_TEST(mailbox_names)
{
	const struct name_case *c = &name_cases[_i];
	struct buf b = BUF_INIT;
	char err[IMAP_ERR_MAX] = "";

	ck_assert_int_eq(imap_mailbox_name(c->in, strlen(c->in), &b, err, sizeof err), c->rc);
	if (c->rc == 0)
		ck_assert_str_eq(b.data, c->out);
	else
		ck_assert_str_eq(err, c->out);
	buf_free(&b);
}
END_TEST

START_TEST(mailbox_name_long)
{
	char name[MBOX_FOLDER_MAX + 2];
	struct buf b = BUF_INIT;
	char err[IMAP_ERR_MAX];

	memset(name, 'a', sizeof name);
	ck_assert_int_eq(imap_mailbox_name(name, MBOX_FOLDER_MAX, &b, err, sizeof err), 0);
	ck_assert_int_eq(imap_mailbox_name(name, MBOX_FOLDER_MAX + 1, &b, err, sizeof err), -EINVAL);
	ck_assert_str_eq(err, "mailbox name longer than 512 bytes");
	buf_free(&b);
}
END_TEST

static const struct match_case {
	const char *pattern, *name;
	bool match;
} match_cases[] = {
	{ "*", "INBOX/Sent", true },
	{ "%", "INBOX/Sent", false },
	{ "%", "INBOX", true },
	{ "INBOX/%", "INBOX/Sent", true },
	{ "INBOX/%", "INBOX/Sent/x", false },
	{ "INBOX/*", "INBOX/Sent/x", true },
	{ "I*x", "INBOX/Sent/x", true },
	{ "I%x", "INBOX/Sent/x", false },
	{ "", "", true },
	{ "", "a", false },
	{ "a", "", false },
	{ "%*", "", true },
	{ "Arch%", "Archive", true },
	{ "arch%", "Archive", false },
};

START_TEST(list_match)
{
	const struct match_case *c = &match_cases[_i];

	ck_assert_int_eq(imap_list_match(c->pattern, strlen(c->pattern), c->name,
	    strlen(c->name)), c->match);
}
END_TEST

START_TEST(list_match_hostile)
{
	char pattern[IMAP_PATTERN_MAX + 1], name[MBOX_FOLDER_MAX];

	/* "%*%*...%*b" against "aaaa...a": exponential with backtracking, n*m here. */
	for (size_t i = 0; i < IMAP_PATTERN_MAX - 1; i++)
		pattern[i] = i % 2 ? '*' : '%';
	pattern[IMAP_PATTERN_MAX - 1] = 'b';
	memset(name, 'a', sizeof name);
	ck_assert(!imap_list_match(pattern, IMAP_PATTERN_MAX, name, sizeof name));
	name[sizeof name - 1] = 'b';
	ck_assert(imap_list_match(pattern, IMAP_PATTERN_MAX, name, sizeof name));
	ck_assert(!imap_list_match(pattern, IMAP_PATTERN_MAX + 1, name, sizeof name));
}
END_TEST

/* --- strings in responses ------------------------------------------------------------------ */

START_TEST(put_strings)
{
	struct buf b = BUF_INIT;

	imap_put_astring(&b, "INBOX", 5);
	buf_appendc(&b, ' ');
	imap_put_astring(&b, "NIL", 3);
	buf_appendc(&b, ' ');
	imap_put_astring(&b, "", 0);
	buf_appendc(&b, ' ');
	imap_put_astring(&b, "a b\"c\\", 6);
	buf_appendc(&b, ' ');
	imap_put_astring(&b, "x\r\ny", 4);
	buf_appendc(&b, ' ');
	imap_put_string(&b, "caf\xc3\xa9", 5);
	buf_appendc(&b, ' ');
	imap_put_nstring(&b, NULL, 0);
	buf_appendc(&b, ' ');
	imap_put_nstring(&b, "NIL", 3);
	buf_appendc(&b, ' ');
	imap_put_string(&b, "a\0b", 3);
	ck_assert_uint_eq(b.len, strlen("INBOX \"NIL\" \"\" \"a b\\\"c\\\\\" {4}\r\nx\r\ny "
	    "{5}\r\ncaf\xc3\xa9 NIL \"NIL\" {3}\r\na") + 2);
	ck_assert(memcmp(b.data, "INBOX \"NIL\" \"\" \"a b\\\"c\\\\\" {4}\r\nx\r\ny {5}\r\ncaf\xc3\xa9"
	    " NIL \"NIL\" {3}\r\na\0b", b.len) == 0);
	buf_free(&b);
}
END_TEST

Suite *
imap_parse_suite(void)
{
	Suite *s = suite_create("imap_parse");
	TCase *rd = tcase_create("reader");
	TCase *tok = tcase_create("tokens");
	TCase *args = tcase_create("args");
	TCase *names = tcase_create("names");

	tcase_add_test(rd, simple_commands);
	tcase_add_test(rd, sync_literal);
	tcase_add_test(rd, literal_plus_no_continue);
	tcase_add_test(rd, zero_literal);
	tcase_add_test(rd, huge_sync_before_login);
	tcase_add_test(rd, absurd_literal_fatal);
	tcase_add_test(rd, big_sync_after_login);
	tcase_add_test(rd, nonsync_over_limit_skipped);
	tcase_add_test(rd, nonsync_huge_is_fatal);
	tcase_add_test(rd, rejected_sync_literal);
	tcase_add_test(rd, line_limit_boundary);
	tcase_add_test(rd, megabyte_line);
	tcase_add_test(rd, command_limit_boundary);
	tcase_add_test(rd, nul_byte);
	tcase_add_test(rd, idle_memory);
	tcase_add_test(rd, fatal_sticks);
	suite_add_tcase(s, rd);
	tcase_add_test(tok, tokens_tree);
	tcase_add_loop_test(tok, tokens_bad, 0, NELEM(bad_cases));
	tcase_add_test(tok, nesting_limit);
	tcase_add_test(tok, token_limit);
	suite_add_tcase(s, tok);
	tcase_add_loop_test(args, seqsets, 0, NELEM(seq_cases));
	tcase_add_test(args, seqset_bound);
	tcase_add_loop_test(args, fetch, 0, NELEM(fetch_cases));
	tcase_add_test(args, fetch_details);
	tcase_add_loop_test(args, store, 0, NELEM(store_cases));
	tcase_add_test(args, store_unchangedsince);
	tcase_add_loop_test(args, search, 0, NELEM(search_cases));
	tcase_add_test(args, search_values);
	tcase_add_test(args, dates);
	suite_add_tcase(s, args);
	tcase_add_loop_test(names, mutf7_both_ways, 0, NELEM(mutf7_cases));
	tcase_add_loop_test(names, mutf7_decode_bad, 0, NELEM(mutf7_bad_decode));
	tcase_add_test(names, mutf7_encode_bad);
	tcase_add_loop_test(names, mailbox_names, 0, NELEM(name_cases));
	tcase_add_test(names, mailbox_name_long);
	tcase_add_loop_test(names, list_match, 0, NELEM(match_cases));
	tcase_add_test(names, list_match_hostile);
	tcase_add_test(names, put_strings);
	suite_add_tcase(s, names);
	return s;
}
