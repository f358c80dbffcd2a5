/*
 * test_buf - core/buf: the growable buffer and the bounded line reader.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "tests/suites.h"

/* A string literal with its length, embedded NULs included. */
#define S(lit) lit, sizeof(lit) - 1

static void
assert_unread(const struct buf *b, const char *want, size_t wantlen)
{
	ck_assert_uint_eq(buf_unread(b), wantlen);
	ck_assert_mem_eq(buf_rptr(b), want, wantlen);
	if (b->data != NULL)
		ck_assert_int_eq(b->data[b->len], '\0');
}

START_TEST(test_init_empty)
{
	struct buf a = BUF_INIT, b;
	const char *line = NULL;
	size_t len = 0;
	bool bare = false;

	buf_init(&b);
	ck_assert_ptr_null(a.data);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(buf_unread(&a), 0);
	ck_assert_str_eq(buf_rptr(&a), "");
	ck_assert_int_eq(buf_getline(&a, 512, &line, &len, &bare), BUF_NEEDMORE);
	ck_assert_ptr_null(line);
	buf_free(&a);
	buf_free(&b);
	ck_assert_ptr_null(a.data);
}
END_TEST

START_TEST(test_append)
{
	struct buf b = BUF_INIT;

	buf_append(&b, "ab", 2);
	buf_appends(&b, "cd");
	buf_appendc(&b, 'e');
	buf_appendf(&b, "-%d-%s-%05.1f", 42, "x", 2.5);
	buf_append(&b, "", 0);
	assert_unread(&b, S("abcde-42-x-002.5"));
	ck_assert_str_eq(b.data, "abcde-42-x-002.5");
	ck_assert_uint_eq(b.len, 16);
	ck_assert_uint_ge(b.cap, b.len + 1);
	buf_free(&b);
}
END_TEST

START_TEST(test_append_binary)
{
	static const char bin[] = { 'a', '\0', '\r', '\n', '\0', (char)0xff };
	struct buf b = BUF_INIT;

	buf_append(&b, bin, sizeof bin);
	buf_append(&b, bin, sizeof bin);
	ck_assert_uint_eq(buf_unread(&b), 2 * sizeof bin);
	ck_assert_mem_eq(b.data, bin, sizeof bin);
	ck_assert_mem_eq(b.data + sizeof bin, bin, sizeof bin);
	ck_assert_int_eq(b.data[b.len], '\0');
	buf_free(&b);
}
END_TEST

START_TEST(test_appendf_long)
{
	struct buf b = BUF_INIT;
	char *want = malloc(10001);

	ck_assert_ptr_nonnull(want);
	memset(want, 'q', 10000);
	want[10000] = '\0';
	buf_appends(&b, "<");
	buf_appendf(&b, "%s>", want);
	ck_assert_uint_eq(buf_unread(&b), 10002);
	ck_assert_int_eq(b.data[0], '<');
	ck_assert_mem_eq(b.data + 1, want, 10000);
	ck_assert_int_eq(b.data[10001], '>');
	ck_assert_int_eq(b.data[10002], '\0');
	free(want);
	buf_free(&b);
}
END_TEST

START_TEST(test_reserve_commit)
{
	struct buf b = BUF_INIT;
	char *p;

	buf_appends(&b, "head:");
	p = buf_reserve(&b, 100);
	ck_assert_ptr_eq(p, b.data + 5);
	ck_assert_uint_ge(b.cap, 5 + 100 + 1);
	memcpy(p, "12345", 5);
	/* Nothing counts until committed. */
	ck_assert_uint_eq(buf_unread(&b), 5);
	buf_commit(&b, 5);
	assert_unread(&b, S("head:12345"));
	p = buf_reserve(&b, 0);
	ck_assert_ptr_eq(p, b.data + b.len);
	buf_commit(&b, 0);
	assert_unread(&b, S("head:12345"));
	buf_free(&b);
}
END_TEST

START_TEST(test_consume_reset)
{
	struct buf b = BUF_INIT;
	char *data;

	buf_appends(&b, "hello world");
	buf_consume(&b, 6);
	assert_unread(&b, S("world"));
	buf_consume(&b, 0);
	assert_unread(&b, S("world"));
	data = b.data;
	buf_consume(&b, 5);
	/* Everything read: positions restart, the allocation stays. */
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.pos, 0);
	ck_assert_ptr_eq(b.data, data);
	ck_assert_str_eq(buf_rptr(&b), "");
	buf_appends(&b, "again");
	buf_reset(&b);
	ck_assert_uint_eq(buf_unread(&b), 0);
	ck_assert_ptr_eq(b.data, data);
	ck_assert_str_eq(b.data, "");
	buf_free(&b);
}
END_TEST

START_TEST(test_compaction)
{
	struct buf b = BUF_INIT;
	char first[60], want[30];
	size_t cap;

	for (size_t i = 0; i < sizeof first; i++)
		first[i] = (char)('A' + i % 26);
	buf_append(&b, first, sizeof first);
	cap = b.cap;
	ck_assert_uint_eq(cap, 64);
	buf_consume(&b, 50);
	/* 60 + 20 + 1 > 64, but only 10 bytes are unread: move, not grow. */
	buf_append(&b, "abcdefghijklmnopqrst", 20);
	ck_assert_uint_eq(b.cap, cap);
	ck_assert_uint_eq(b.pos, 0);
	memcpy(want, first + 50, 10);
	memcpy(want + 10, "abcdefghijklmnopqrst", 20);
	assert_unread(&b, want, sizeof want);
	/* Growing past cap with consumed bytes keeps the unread ones too. */
	buf_consume(&b, 25);
	buf_append(&b, first, sizeof first);
	ck_assert_uint_eq(b.pos, 0);
	ck_assert_uint_eq(buf_unread(&b), 5 + sizeof first);
	ck_assert_mem_eq(buf_rptr(&b), "pqrst", 5);
	ck_assert_mem_eq(buf_rptr(&b) + 5, first, sizeof first);
	buf_free(&b);
}
END_TEST

START_TEST(test_steal)
{
	struct buf b = BUF_INIT;
	size_t len = 99;
	char *d;

	buf_appends(&b, "skip:keep");
	buf_consume(&b, 5);
	d = buf_steal(&b, &len);
	ck_assert_uint_eq(len, 4);
	ck_assert_str_eq(d, "keep");
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len + b.pos + b.cap, 0);
	free(d);

	/* An empty buffer still hands over a NUL-terminated allocation. */
	d = buf_steal(&b, &len);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(d, "");
	free(d);
	d = buf_steal(&b, NULL);
	ck_assert_str_eq(d, "");
	free(d);
	buf_free(&b);
}
END_TEST

static void
consume_too_much(void *arg)
{
	struct buf *b = arg;
	int fd = open("/dev/null", O_WRONLY);

	log_set_fd(fd);
	buf_consume(b, 4);
}

START_TEST(test_consume_too_much)
{
	struct buf b = BUF_INIT;
	int status;

	/* A bug in the caller: log_panic() aborts rather than read past len. */
	buf_appends(&b, "abc");
	status = unit_child_status(consume_too_much, &b);
	ck_assert(WIFSIGNALED(status));
	ck_assert_int_eq(WTERMSIG(status), SIGABRT);
	assert_unread(&b, S("abc"));
	buf_free(&b);
}
END_TEST

/* --- buf_getline --------------------------------------------------------- */

struct gl_step {
	int rc;
	const char *line;  /* when rc == 0 */
	size_t len;
	bool bare_lf;
};

#define OK(lit, bare) { 0, lit, sizeof(lit) - 1, bare }
#define NEEDMORE { BUF_NEEDMORE, NULL, 0, false }
#define TOOLONG { BUF_TOOLONG, NULL, 0, false }

static const struct gl_case {
	const char *name;
	const char *in;
	size_t inlen;
	size_t max;
	struct gl_step steps[4];
	size_t nsteps;
	size_t left;  /* unread bytes after the steps */
} gl_cases[] = {
	{ "crlf lines", S("HELO a\r\nMAIL\r\n"), 512,
	    { OK("HELO a", false), OK("MAIL", false), NEEDMORE }, 3, 0 },
	{ "bare lf", S("bare\nnext\r\n"), 512,
	    { OK("bare", true), OK("next", false), NEEDMORE }, 3, 0 },
	{ "partial", S("QUIT\r\nDAT"), 512,
	    { OK("QUIT", false), NEEDMORE, NEEDMORE }, 3, 3 },
	{ "cr without lf", S("partial\r"), 512, { NEEDMORE }, 1, 8 },
	{ "empty crlf", S("\r\n\n"), 512,
	    { OK("", false), OK("", true), NEEDMORE }, 3, 0 },
	{ "lone cr inside", S("a\rb\r\n"), 512, { OK("a\rb", false) }, 1, 0 },
	{ "only last cr stripped", S("x\r\r\n"), 512, { OK("x\r", false) }, 1, 0 },
	{ "nul inside", S("a\0b\0\r\n"), 512, { OK("a\0b\0", false) }, 1, 0 },
	{ "high bytes", S("\xc3\xa9\xff\r\n"), 512, { OK("\xc3\xa9\xff", false) }, 1, 0 },
	{ "exactly max crlf", S("12345678\r\nz\r\n"), 8,
	    { OK("12345678", false), OK("z", false) }, 2, 0 },
	{ "exactly max lf", S("12345678\n"), 8, { OK("12345678", true) }, 1, 0 },
	{ "max+1 crlf", S("123456789\r\nok\r\n"), 8,
	    { TOOLONG, OK("ok", false), NEEDMORE }, 3, 0 },
	{ "max+1 lf", S("123456789\nok\n"), 8,
	    { TOOLONG, OK("ok", true), NEEDMORE }, 3, 0 },
	{ "much too long", S("0123456789abcdefghijklmnop\r\nnext\r\n"), 8,
	    { TOOLONG, OK("next", false), NEEDMORE }, 3, 0 },
	{ "too long then partial", S("0123456789\r\nne"), 8,
	    { TOOLONG, NEEDMORE }, 2, 2 },
	{ "max bytes and cr, lf pending", S("12345678\r"), 8, { NEEDMORE }, 1, 9 },
	{ "max+1 bytes, no lf yet", S("123456789"), 8, { NEEDMORE }, 1, 9 },
	{ "max+2 bytes without lf", S("1234567890"), 8, { TOOLONG, NEEDMORE }, 2, 0 },
	{ "long without lf", S("0123456789abcdefghij0123456789"), 8,
	    { TOOLONG, NEEDMORE }, 2, 0 },
	{ "max zero", S("\r\nx\r\n\n"), 0,
	    { OK("", false), TOOLONG, OK("", true), NEEDMORE }, 4, 0 },
};

START_TEST(test_getline_table)
{
	const struct gl_case *c = &gl_cases[_i];
	struct buf b = BUF_INIT;

	buf_append(&b, c->in, c->inlen);
	for (size_t k = 0; k < c->nsteps; k++) {
		const struct gl_step *st = &c->steps[k];
		const char *line = NULL;
		size_t len = 12345;
		bool bare = !st->bare_lf;
		int rc;

		rc = buf_getline(&b, c->max, &line, &len, &bare);
		ck_assert_msg(rc == st->rc, "%s: step %zu: rc %d, want %d",
		    c->name, k, rc, st->rc);
		if (rc != 0)
			continue;
		ck_assert_msg(len == st->len, "%s: step %zu: len %zu, want %zu",
		    c->name, k, len, st->len);
		ck_assert_msg(memcmp(line, st->line, len) == 0,
		    "%s: step %zu: wrong line", c->name, k);
		ck_assert_msg(bare == st->bare_lf, "%s: step %zu: bare_lf %d",
		    c->name, k, (int)bare);
	}
	ck_assert_msg(buf_unread(&b) == c->left, "%s: %zu bytes left, want %zu",
	    c->name, buf_unread(&b), c->left);
	ck_assert_mem_eq(buf_rptr(&b), c->in + c->inlen - c->left, c->left);
	buf_free(&b);
}
END_TEST

START_TEST(test_getline_split_appends)
{
	static const char *const parts[] = {
		"MA", "IL FROM:<a", "@b>", "\r", "\nRC", "PT TO:<c@d>\r\n",
	};
	struct buf b = BUF_INIT;
	const char *line;
	size_t len;
	bool bare;

	for (size_t i = 0; i < 4; i++) {
		buf_appends(&b, parts[i]);
		ck_assert_int_eq(buf_getline(&b, 512, &line, &len, &bare), BUF_NEEDMORE);
	}
	ck_assert_uint_eq(buf_unread(&b), 16);
	buf_appends(&b, parts[4]);
	ck_assert_int_eq(buf_getline(&b, 512, &line, &len, &bare), 0);
	ck_assert_uint_eq(len, 15);
	ck_assert_mem_eq(line, "MAIL FROM:<a@b>", 15);
	ck_assert(!bare);
	ck_assert_int_eq(buf_getline(&b, 512, &line, &len, &bare), BUF_NEEDMORE);
	assert_unread(&b, S("RC"));
	buf_appends(&b, parts[5]);
	ck_assert_int_eq(buf_getline(&b, 512, &line, &len, &bare), 0);
	ck_assert_uint_eq(len, 13);
	ck_assert_mem_eq(line, "RCPT TO:<c@d>", 13);
	ck_assert_uint_eq(buf_unread(&b), 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_getline_bytewise)
{
	static const char in[] = "EHLO x\r\nbare\n\r\nNOOP\r\n";
	static const char *const want[] = { "EHLO x", "bare", "", "NOOP" };
	static const bool want_bare[] = { false, true, false, false };
	struct buf b = BUF_INIT;
	size_t got = 0;

	/* One byte per read, as a slow client sends them. */
	for (size_t i = 0; i < sizeof in - 1; i++) {
		const char *line;
		size_t len;
		bool bare;
		int rc;

		buf_appendc(&b, in[i]);
		rc = buf_getline(&b, 64, &line, &len, &bare);
		if (rc == BUF_NEEDMORE)
			continue;
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_lt(got, 4);
		ck_assert_uint_eq(len, strlen(want[got]));
		ck_assert_mem_eq(line, want[got], len);
		ck_assert_int_eq(bare, want_bare[got]);
		ck_assert_int_eq(in[i], '\n');
		got++;
	}
	ck_assert_uint_eq(got, 4);
	ck_assert_uint_eq(buf_unread(&b), 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_getline_toolong_streamed)
{
	struct buf b = BUF_INIT;
	char chunk[100];
	const char *line;
	size_t len;
	bool bare;

	/*
	 * A flood without LF: refused once, then dropped as it comes, memory
	 * bounded; the flood ends at its LF, and only the line after it reads.
	 */
	memset(chunk, 'x', sizeof chunk);
	for (int i = 0; i < 50; i++) {
		buf_append(&b, chunk, sizeof chunk);
		ck_assert_int_eq(buf_getline(&b, 16, &line, &len, &bare),
		    i == 0 ? BUF_TOOLONG : BUF_NEEDMORE);
		ck_assert_uint_eq(buf_unread(&b), 0);
	}
	ck_assert_uint_le(b.cap, 128);
	buf_appends(&b, "RSET\r\n");
	ck_assert_int_eq(buf_getline(&b, 16, &line, &len, &bare), BUF_NEEDMORE);
	buf_appends(&b, "NOOP\r\n");
	ck_assert_int_eq(buf_getline(&b, 16, &line, &len, &bare), 0);
	ck_assert_uint_eq(len, 4);
	ck_assert_mem_eq(line, "NOOP", 4);
	buf_free(&b);
}
END_TEST

START_TEST(test_getline_lines_stay_valid)
{
	struct buf b = BUF_INIT;
	const char *l1, *l2;
	size_t n1, n2;
	bool bare;

	/* Two lines read back to back: the first stays valid (no growth). */
	buf_appends(&b, "one\r\ntwo\r\n");
	ck_assert_int_eq(buf_getline(&b, 10, &l1, &n1, &bare), 0);
	ck_assert_int_eq(buf_getline(&b, 10, &l2, &n2, &bare), 0);
	ck_assert_mem_eq(l1, "one", 3);
	ck_assert_mem_eq(l2, "two", 3);
	ck_assert_ptr_eq(l2, l1 + 5);
	ck_assert_uint_eq(buf_unread(&b), 0);
	/* Appending afterwards neither moves nor grows a small buffer. */
	buf_appends(&b, "three\r\n");
	ck_assert_int_eq(buf_getline(&b, 10, &l1, &n1, &bare), 0);
	ck_assert_uint_eq(n1, 5);
	ck_assert_mem_eq(l1, "three", 5);
	ck_assert_uint_eq(b.cap, 64);
	buf_free(&b);
}
END_TEST

START_TEST(test_getline_long_line_tail_skipped)
{
	struct buf b = BUF_INIT;
	const char *line;
	size_t len;
	bool bare;
	char big[100];

	/* 60 bytes of a line whose end comes in later reads. */
	memset(big, 'x', 60);
	buf_append(&b, big, 60);
	ck_assert_int_eq(buf_getline(&b, 20, &line, &len, &bare), BUF_TOOLONG);
	ck_assert_uint_eq(buf_unread(&b), 0);
	/* More of the same line: dropped, nothing to read yet. */
	buf_append(&b, big, 30);
	ck_assert_int_eq(buf_getline(&b, 20, &line, &len, &bare), BUF_NEEDMORE);
	ck_assert_uint_eq(buf_unread(&b), 0);
	/* Its end, and the next line: the tail never reads as a line. */
	buf_appends(&b, "tail\r\nNEXT\r\n");
	ck_assert_int_eq(buf_getline(&b, 20, &line, &len, &bare), 0);
	ck_assert_uint_eq(len, 4);
	ck_assert_mem_eq(line, "NEXT", 4);
	/* buf_reset forgets the skipping (a new stream after STARTTLS). */
	buf_append(&b, big, 60);
	ck_assert_int_eq(buf_getline(&b, 20, &line, &len, &bare), BUF_TOOLONG);
	buf_reset(&b);
	buf_appends(&b, "fresh\r\n");
	ck_assert_int_eq(buf_getline(&b, 20, &line, &len, &bare), 0);
	ck_assert_mem_eq(line, "fresh", 5);
	buf_free(&b);
}
END_TEST

Suite *
buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc;

	tc = tcase_create("buffer");
	tcase_add_test(tc, test_init_empty);
	tcase_add_test(tc, test_getline_long_line_tail_skipped);
	tcase_add_test(tc, test_append);
	tcase_add_test(tc, test_append_binary);
	tcase_add_test(tc, test_appendf_long);
	tcase_add_test(tc, test_reserve_commit);
	tcase_add_test(tc, test_consume_reset);
	tcase_add_test(tc, test_compaction);
	tcase_add_test(tc, test_steal);
	tcase_add_test(tc, test_consume_too_much);
	suite_add_tcase(s, tc);

	tc = tcase_create("getline");
	tcase_add_loop_test(tc, test_getline_table, 0,
	    (int)(sizeof gl_cases / sizeof gl_cases[0]));
	tcase_add_test(tc, test_getline_split_appends);
	tcase_add_test(tc, test_getline_bytewise);
	tcase_add_test(tc, test_getline_toolong_streamed);
	tcase_add_test(tc, test_getline_lines_stay_valid);
	suite_add_tcase(s, tc);
	return s;
}
