/*
 * test_smtp_data - relay/smtp_data: the end of DATA is CR LF "." CR LF and
 * nothing else (SMTP smuggling), dot-unstuffing, flags, size cap, and
 * the same result whatever the input's split.
 */
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "relay/smtp_data.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define M(s) s, sizeof(s) - 1

/* Flags. */
#define LF 1u           /* bare_lf */
#define CR 2u           /* bare_cr */
#define NUL 4u          /* nul */

#define END SMTP_DATA_END
#define MORE SMTP_DATA_MORE

static const struct data_case {
	const char *in;
	size_t len;
	int rc;
	size_t consumed;        /* of in, on END; len on MORE */
	const char *out;
	size_t outlen;
	unsigned flags;
} data_cases[] = {
	/* The terminator; the start of the data counts as after CR LF. */
	{ M(".\r\n"), END, 3, M(""), 0 },
	{ M(".\r\nQUIT\r\n"), END, 3, M(""), 0 },
	{ M("a\r\n.\r\n"), END, 6, M("a\r\n"), 0 },
	{ M("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), END, 6, M("a\r\n"), 0 },
	{ M("\r\n.\r\n"), END, 5, M("\r\n"), 0 },
	{ M("Subject: x\r\n\r\nbody\r\n.\r\n"), END, 23, M("Subject: x\r\n\r\nbody\r\n"), 0 },
	{ M("a\r\n.\r\n.\r\n"), END, 6, M("a\r\n"), 0 },
	/* Not yet. */
	{ M(""), MORE, 0, M(""), 0 },
	{ M("a"), MORE, 1, M("a"), 0 },
	{ M("a\r\n"), MORE, 3, M("a\r\n"), 0 },
	{ M("a\r\n."), MORE, 4, M("a\r\n"), 0 },
	{ M("a\r\n.\r"), MORE, 5, M("a\r\n"), 0 },
	{ M("."), MORE, 1, M(""), 0 },
	/* Smuggling: none of these ends the data. */
	{ M("a\n.\nMAIL FROM:<x@y>\r\n.\r\n"), END, 24, M("a\n.\nMAIL FROM:<x@y>\r\n"), LF },
	{ M("a\n.\n"), MORE, 4, M("a\n.\n"), LF },
	{ M("a\r.\r"), MORE, 4, M("a\r.\r"), CR },
	{ M("a\r.\rX\r\n.\r\n"), END, 10, M("a\r.\rX\r\n"), CR },
	/* After a bare LF no line starts: the dot is data, not stuffing. */
	{ M("a\n.\r\nX\r\n.\r\n"), END, 11, M("a\n.\r\nX\r\n"), LF },
	{ M("a\n..\r\n.\r\n"), END, 9, M("a\n..\r\n"), LF },
	/* CR LF "." then LF or CR: stuffing dropped, the rest is data. */
	{ M("a\r\n.\nX\r\n.\r\n"), END, 11, M("a\r\n\nX\r\n"), LF },
	{ M("a\r\n.\rX\r\n.\r\n"), END, 11, M("a\r\n\rX\r\n"), CR },
	{ M("a\r\n.\r\r\n.\r\n"), END, 10, M("a\r\n\r\r\n"), CR },
	{ M("a\r\n.\r.\r\n.\r\n"), END, 11, M("a\r\n\r.\r\n"), CR },
	{ M("\n.\r\n"), MORE, 4, M("\n.\r\n"), LF },
	{ M("\n.\n"), MORE, 3, M("\n.\n"), LF },
	{ M(".\n"), MORE, 2, M("\n"), LF },
	{ M(".\r"), MORE, 2, M(""), 0 },
	{ M(".\rX"), MORE, 3, M("\rX"), CR },
	{ M("\r.\r\n"), MORE, 4, M("\r.\r\n"), CR },
	{ M("a\r\r\n.\r\n"), END, 7, M("a\r\r\n"), CR },
	{ M("a\n\r\n.\r\n"), END, 7, M("a\n\r\n"), LF },
	{ M("a\r\n\n.\r\n"), MORE, 7, M("a\r\n\n.\r\n"), LF },
	{ M("a\r\n \r\n.\r\n"), END, 9, M("a\r\n \r\n"), 0 },
	{ M("a\r\n.\x00\r\n.\r\n"), END, 10, M("a\r\n\x00\r\n"), NUL },
	/* Dot-unstuffing (RFC 5321 4.5.2). */
	{ M("..x\r\n.\r\n"), END, 8, M(".x\r\n"), 0 },
	{ M("...\r\n.\r\n"), END, 8, M("..\r\n"), 0 },
	{ M(".x\r\n.\r\n"), END, 7, M("x\r\n"), 0 },
	{ M("a\r\n..\r\n.\r\n"), END, 10, M("a\r\n.\r\n"), 0 },
	{ M("a\r\n.. \r\n.\r\n"), END, 11, M("a\r\n. \r\n"), 0 },
	{ M("a.\r\n.b.\r\n.\r\n"), END, 12, M("a.\r\nb.\r\n"), 0 },
	/* Bytes are otherwise kept. */
	{ M("a\0b\r\n.\r\n"), END, 8, M("a\0b\r\n"), NUL },
	{ M("\0\r\n.\r\n"), END, 6, M("\0\r\n"), NUL },
	{ M("\xff\xfe\x80\r\n.\r\n"), END, 8, M("\xff\xfe\x80\r\n"), 0 },
	{ M("a\tb\x7f\r\n.\r\n"), END, 9, M("a\tb\x7f\r\n"), 0 },
};

struct run {
	int rc;
	size_t consumed;
	struct buf out;
	struct smtp_data_result r;
};

/*
 * feed - run the reader over in[0..len) cut at the given offsets (sorted,
 * each at most len), stopping at END as a session would.
 */
static void
feed(struct run *run, const char *in, size_t len, const size_t *cuts, size_t ncuts,
    uint64_t max)
{
	struct smtp_data d;
	size_t pos = 0, n;

	buf_init(&run->out);
	smtp_data_init(&d, &run->out, max);
	run->rc = SMTP_DATA_MORE;
	for (size_t k = 0; k <= ncuts; k++) {
		size_t next = k < ncuts ? cuts[k] : len;

		run->rc = smtp_data_feed(&d, in + pos, next - pos, &n);
		ck_assert_uint_le(n, next - pos);
		if (run->rc == SMTP_DATA_MORE)
			ck_assert_uint_eq(n, next - pos);
		pos += n;
		if (run->rc == SMTP_DATA_END)
			break;
	}
	run->consumed = pos;
	run->r = *smtp_data_result(&d);
	ck_assert(run->r.consumed == pos);
}

static void
check_case(const struct data_case *c, const struct run *run)
{
	ck_assert_int_eq(run->rc, c->rc);
	ck_assert_uint_eq(run->consumed, c->consumed);
	ck_assert_uint_eq(run->out.len, c->outlen);
	ck_assert_mem_eq(run->out.data, c->out, c->outlen);
	ck_assert(run->r.size == c->outlen);
	ck_assert_int_eq(run->r.bare_lf, (c->flags & LF) != 0);
	ck_assert_int_eq(run->r.bare_cr, (c->flags & CR) != 0);
	ck_assert_int_eq(run->r.nul, (c->flags & NUL) != 0);
	ck_assert(!run->r.too_big && !run->r.line_too_long);
}

START_TEST(test_whole)
{
	struct run run;

	feed(&run, data_cases[_i].in, data_cases[_i].len, NULL, 0, UINT64_MAX);
	check_case(&data_cases[_i], &run);
	buf_free(&run.out);
}
END_TEST

/* One cut at every offset: same output, same end. */
START_TEST(test_split)
{
	const struct data_case *c = &data_cases[_i];
	struct run run;

	for (size_t cut = 0; cut <= c->len; cut++) {
		feed(&run, c->in, c->len, &cut, 1, UINT64_MAX);
		check_case(c, &run);
		buf_free(&run.out);
	}
}
END_TEST

/* A byte at a time, and two cuts at every pair of offsets. */
START_TEST(test_bytewise)
{
	const struct data_case *c = &data_cases[_i];
	size_t cuts[64];
	struct run run;

	ck_assert_uint_lt(c->len, NELEM(cuts));
	for (size_t k = 0; k < c->len; k++)
		cuts[k] = k + 1;
	feed(&run, c->in, c->len, cuts, c->len, UINT64_MAX);
	check_case(c, &run);
	buf_free(&run.out);
	for (size_t a = 0; a <= c->len; a++)
		for (size_t b = a; b <= c->len; b++) {
			cuts[0] = a;
			cuts[1] = b;
			feed(&run, c->in, c->len, cuts, 2, UINT64_MAX);
			check_case(c, &run);
			buf_free(&run.out);
		}
}
END_TEST

START_TEST(test_after_end)
{
	struct smtp_data d;
	struct buf out = BUF_INIT;
	size_t n = 99;

	smtp_data_init(&d, &out, UINT64_MAX);
	ck_assert_int_eq(smtp_data_feed(&d, M("x\r\n.\r\nNOOP\r\n"), &n), SMTP_DATA_END);
	ck_assert_uint_eq(n, 6);
	ck_assert_int_eq(smtp_data_feed(&d, M("more\r\n"), &n), SMTP_DATA_END);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(out.len, 3);
	ck_assert(smtp_data_result(&d)->consumed == 6);
	/* init starts over and appends to what out holds. */
	smtp_data_init(&d, &out, UINT64_MAX);
	ck_assert_int_eq(smtp_data_feed(&d, M("y\r\n.\r\n"), &n), SMTP_DATA_END);
	ck_assert_str_eq(out.data, "x\r\ny\r\n");
	buf_free(&out);
}
END_TEST

/* Over max_size: the first max_size bytes kept, the end still found. */
static const struct big_case {
	const char *in;
	size_t len;
	uint64_t max;
	size_t consumed;
	bool too_big;
	const char *out;
	size_t outlen;
	uint64_t size;
} big_cases[] = {
	{ M("0123456789\r\n.\r\nQUIT\r\n"), 5, 15, true, M("01234"), 12 },
	{ M("0123456789\r\n.\r\nQUIT\r\n"), 12, 15, false, M("0123456789\r\n"), 12 },
	{ M("0123456789\r\n.\r\nQUIT\r\n"), 11, 15, true, M("0123456789\r"), 12 },
	{ M("0123456789\r\n.\r\nQUIT\r\n"), 0, 15, true, M(""), 12 },
	{ M("a\r\n..\r\n.\r\n"), 6, 10, false, M("a\r\n.\r\n"), 6 },
	{ M("a\r\n..\r\n.\r\n"), 4, 10, true, M("a\r\n."), 6 },
	{ M("a\r\n..\r\n.\r\n"), 3, 10, true, M("a\r\n"), 6 },
	/* The held-back CR of ".\r" + "b" is stored within the cap too. */
	{ M("a\r\n.\rb\r\n.\r\n"), 4, 11, true, M("a\r\n\r"), 7 },
	{ M("a\r\n.\rb\r\n.\r\n"), 3, 11, true, M("a\r\n"), 7 },
	{ M(".\r\n"), 0, 3, false, M(""), 0 },
};

START_TEST(test_too_big)
{
	const struct big_case *c = &big_cases[_i];
	struct run run;

	for (size_t cut = 0; cut <= c->len; cut++) {
		feed(&run, c->in, c->len, &cut, 1, c->max);
		ck_assert_int_eq(run.rc, SMTP_DATA_END);
		ck_assert_int_eq(run.r.too_big, c->too_big);
		ck_assert_uint_eq(run.out.len, c->outlen);
		ck_assert_mem_eq(run.out.data, c->out, c->outlen);
		ck_assert(run.r.size == c->size);
		ck_assert_uint_le(run.out.len, c->max);
		ck_assert_uint_eq(run.consumed, c->consumed);
		buf_free(&run.out);
	}
}
END_TEST

/* RFC 5321 4.5.3.1.6: 998 octets and CR LF; the stuffed dot counts. */
START_TEST(test_line_length)
{
	static const struct {
		size_t n;       /* octets before CR LF, dot and bare CR included */
		bool dot;       /* the line starts with a stuffed dot */
		bool bare_cr;   /* ends in CR CR LF */
		bool too_long;
	} cases[] = {
		{ 998, false, false, false },
		{ 999, false, false, true },
		{ 998, true, false, false },    /* "." + 997 */
		{ 999, true, false, true },     /* "." + 998 */
		{ 998, false, true, false },    /* 997 + bare CR */
		{ 999, false, true, true },     /* 998 + bare CR */
		{ 5000, false, false, true },
	};
	char in[6000];

	for (size_t k = 0; k < NELEM(cases); k++) {
		struct run run;
		size_t len = 0;

		memcpy(in, "a\r\n", 3);
		len = 3;
		if (cases[k].dot)
			in[len++] = '.';
		memset(in + len, 'x', cases[k].n - cases[k].dot - cases[k].bare_cr);
		len += cases[k].n - cases[k].dot - cases[k].bare_cr;
		if (cases[k].bare_cr)
			in[len++] = '\r';
		memcpy(in + len, "\r\nb\r\n.\r\n", 8);
		len += 8;
		feed(&run, in, len, NULL, 0, UINT64_MAX);
		ck_assert_int_eq(run.rc, SMTP_DATA_END);
		ck_assert_uint_eq(run.consumed, len);
		ck_assert_msg(run.r.line_too_long == cases[k].too_long, "case %zu", k);
		ck_assert_int_eq(run.r.bare_cr, cases[k].bare_cr);
		ck_assert_uint_eq(run.out.len, len - 3 - cases[k].dot);
		buf_free(&run.out);
	}
}
END_TEST

/* 10 MB of body in 1 KB pieces, stuffed lines included. */
START_TEST(test_large)
{
	const size_t total = 10u << 20, chunk = 1024;
	struct smtp_data d;
	struct buf in = BUF_INIT, out = BUF_INIT, want = BUF_INIT;
	size_t pos = 0, n;
	int rc = SMTP_DATA_MORE;
	unsigned line = 0;

	while (in.len < total) {
		/* Every 7th line starts with a dot, stuffed on the wire. */
		if (line % 7 == 0) {
			buf_appends(&in, "..dotted line\r\n");
			buf_appends(&want, ".dotted line\r\n");
		} else {
			buf_appendf(&in, "line %u of the body, some text to fill it up\r\n", line);
			buf_appendf(&want, "line %u of the body, some text to fill it up\r\n", line);
		}
		line++;
	}
	buf_appends(&in, ".\r\nQUIT\r\n");

	smtp_data_init(&d, &out, UINT64_MAX);
	while (pos < in.len && rc == SMTP_DATA_MORE) {
		size_t k = in.len - pos < chunk ? in.len - pos : chunk;

		rc = smtp_data_feed(&d, in.data + pos, k, &n);
		pos += n;
	}
	ck_assert_int_eq(rc, SMTP_DATA_END);
	ck_assert_uint_eq(pos, in.len - strlen("QUIT\r\n"));
	ck_assert_uint_eq(out.len, want.len);
	ck_assert(memcmp(out.data, want.data, want.len) == 0);
	ck_assert(smtp_data_result(&d)->size == want.len);
	ck_assert(!smtp_data_result(&d)->bare_lf && !smtp_data_result(&d)->bare_cr);
	ck_assert(!smtp_data_result(&d)->line_too_long && !smtp_data_result(&d)->too_big);
	/* Storage grows with the message only. */
	ck_assert_uint_le(out.cap, 2 * want.len + 2048);
	buf_free(&in);
	buf_free(&out);
	buf_free(&want);
}
END_TEST

/* Over the cap, nothing more is stored however much is fed. */
START_TEST(test_large_capped)
{
	const size_t chunk = 4096, max = 1000;
	char block[4096];
	struct smtp_data d;
	struct buf out = BUF_INIT;
	size_t n;

	memset(block, 'x', sizeof block);
	for (size_t k = 63; k < sizeof block; k += 64) {
		block[k - 1] = '\r';
		block[k] = '\n';
	}
	smtp_data_init(&d, &out, max);
	for (int k = 0; k < 1000; k++) {
		ck_assert_int_eq(smtp_data_feed(&d, block, chunk, &n), SMTP_DATA_MORE);
		ck_assert_uint_eq(n, chunk);
	}
	ck_assert_int_eq(smtp_data_feed(&d, M(".\r\n"), &n), SMTP_DATA_END);
	ck_assert(smtp_data_result(&d)->too_big);
	ck_assert(smtp_data_result(&d)->size == 1000u * chunk);
	ck_assert_uint_eq(out.len, max);
	ck_assert_uint_le(out.cap, 8192);
	buf_free(&out);
}
END_TEST

Suite *
smtp_data_suite(void)
{
	Suite *s = suite_create("smtp_data");
	TCase *tc;

	tc = tcase_create("end");
	tcase_add_loop_test(tc, test_whole, 0, (int)NELEM(data_cases));
	tcase_add_loop_test(tc, test_split, 0, (int)NELEM(data_cases));
	tcase_add_loop_test(tc, test_bytewise, 0, (int)NELEM(data_cases));
	tcase_add_test(tc, test_after_end);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_loop_test(tc, test_too_big, 0, (int)NELEM(big_cases));
	tcase_add_test(tc, test_line_length);
	tcase_add_test(tc, test_large);
	tcase_add_test(tc, test_large_capped);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}
