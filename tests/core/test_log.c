/*
 * test_log - core/log: one line per event with its fixed fields, level
 * filtering, and log_quote()'s escaping and cutting.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "tests/logcap.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit) lit, sizeof(lit) - 1

static time_t started;   /* before the test logged anything */

static void
capture_setup(void)
{
	started = time(NULL);
	logcap_setup();
}

static size_t
count_char(const char *s, size_t len, char c)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += s[i] == c;
	return n;
}

/*
 * Check "time=YYYY-MM-DDTHH:MM:SS.mmmZ " at the start of line, a time
 * between the test's start and now, and return what follows it.
 */
static const char *
after_time(const char *line)
{
	static const char shape[] = "time=dddd-dd-ddTdd:dd:dd.dddZ ";
	struct tm tm;
	time_t t, now;

	for (size_t i = 0; i < sizeof shape - 1; i++) {
		if (shape[i] == 'd')
			ck_assert_msg(line[i] >= '0' && line[i] <= '9',
			    "not a digit at %zu: %s", i, line);
		else
			ck_assert_msg(line[i] == shape[i],
			    "'%c' at %zu: %s", shape[i], i, line);
	}
	memset(&tm, 0, sizeof tm);
	ck_assert_ptr_nonnull(strptime(line + 5, "%Y-%m-%dT%H:%M:%S", &tm));
	t = timegm(&tm);
	now = time(NULL);
	/* Stamped while the test ran, however long it took. */
	ck_assert_msg(t >= started && t <= now, "time %jd, test from %jd to %jd",
	    (intmax_t)t, (intmax_t)started, (intmax_t)now);
	return line + sizeof shape - 1;
}

START_TEST(test_line_fields)
{
	char out[LOG_LINE_MAX * 2];
	size_t len;

	log_info("queue", "enqueued", "id=%s size=%d to=%s", "0ABC", 512,
	    "<a@b>");
	len = logcap_read(out, sizeof out);
	ck_assert_uint_gt(len, 0);
	ck_assert_uint_eq(count_char(out, len, '\n'), 1);
	ck_assert_int_eq(out[len - 1], '\n');
	ck_assert_str_eq(after_time(out),
	    "level=info component=queue event=enqueued id=0ABC size=512 to=<a@b>\n");
}
END_TEST

START_TEST(test_one_line_per_event)
{
	char out[LOG_LINE_MAX * 2];
	const char *nl;
	size_t len;

	log_warn("relay", "tls_failed", "peer=%s", "1.2.3.4");
	log_error("deliver", "deferred", "id=%s", "X");
	len = logcap_read(out, sizeof out);
	ck_assert_uint_eq(count_char(out, len, '\n'), 2);
	nl = strchr(out, '\n');
	ck_assert_ptr_nonnull(nl);
	ck_assert_int_eq(strncmp(after_time(out),
	    "level=warn component=relay event=tls_failed peer=1.2.3.4\n",
	    (size_t)(nl + 1 - after_time(out))), 0);
	ck_assert_str_eq(after_time(nl + 1),
	    "level=error component=deliver event=deferred id=X\n");
}
END_TEST

START_TEST(test_level_filter)
{
	char out[LOG_LINE_MAX * 2];
	size_t len;

	log_set_level(LOG_WARN);
	ck_assert_int_eq(log_get_level(), LOG_WARN);
	log_debug("c", "e1", "n=%d", 1);
	log_info("c", "e2", "n=%d", 2);
	ck_assert_uint_eq(logcap_read(out, sizeof out), 0);
	log_warn("c", "e3", "n=%d", 3);
	log_error("c", "e4", "n=%d", 4);
	len = logcap_read(out, sizeof out);
	ck_assert_uint_eq(count_char(out, len, '\n'), 2);
	ck_assert_ptr_nonnull(strstr(out, "level=warn component=c event=e3 n=3\n"));
	ck_assert_ptr_nonnull(strstr(out, "level=error component=c event=e4 n=4\n"));

	log_set_level(LOG_DEBUG);
	log_debug("c", "e5", "n=%d", 5);
	len = logcap_read(out, sizeof out);
	ck_assert_uint_eq(count_char(out, len, '\n'), 1);
	ck_assert_str_eq(after_time(out), "level=debug component=c event=e5 n=5\n");

	log_set_level(LOG_ERROR);
	log_warn("c", "e6", "n=%d", 6);
	ck_assert_uint_eq(logcap_read(out, sizeof out), 0);
	log_msg(LOG_ERROR, "c", "e7", "n=%d", 7);
	ck_assert_uint_gt(logcap_read(out, sizeof out), 0);
	ck_assert_ptr_nonnull(strstr(out, "level=error component=c event=e7 n=7\n"));
}
END_TEST

START_TEST(test_newlines_never_split)
{
	char out[LOG_LINE_MAX * 2];
	size_t len;

	log_info("smtpd", "cmd", "text=%s tail=%d", "a\nb\r\nc\rd\n", 9);
	len = logcap_read(out, sizeof out);
	ck_assert_uint_eq(count_char(out, len, '\n'), 1);
	ck_assert_uint_eq(count_char(out, len, '\r'), 0);
	ck_assert_str_eq(after_time(out),
	    "level=info component=smtpd event=cmd text=a b  c d  tail=9\n");
}
END_TEST

START_TEST(test_long_line_cut)
{
	char out[LOG_LINE_MAX * 4];
	char *big = malloc(3 * LOG_LINE_MAX);
	size_t len;

	ck_assert_ptr_nonnull(big);
	memset(big, 'x', 3 * LOG_LINE_MAX - 1);
	big[3 * LOG_LINE_MAX - 1] = '\0';
	log_info("c", "big", "v=%s", big);
	free(big);
	len = logcap_read(out, sizeof out);
	ck_assert_uint_le(len, LOG_LINE_MAX);
	ck_assert_uint_gt(len, LOG_LINE_MAX - 8);
	ck_assert_uint_eq(count_char(out, len, '\n'), 1);
	ck_assert_int_eq(out[len - 1], '\n');
	ck_assert_int_eq(out[len - 2], 'x');
	ck_assert_ptr_nonnull(strstr(out, " level=info component=c event=big v=xxx"));
}
END_TEST

START_TEST(test_quoted_value_in_line)
{
	char out[LOG_LINE_MAX * 2], q[128];

	log_info("smtpd", "helo", "name=%s",
	    log_quote(q, sizeof q, S("evil\r\nlevel=error \"x\"")));
	logcap_read(out, sizeof out);
	ck_assert_str_eq(after_time(out),
	    "level=info component=smtpd event=helo name=\"evil\\r\\nlevel=error \\\"x\\\"\"\n");
}
END_TEST

static void
do_fatal(void *arg)
{
	log_fatal("core", "bind_failed", "addr=%s", (const char *)arg);
}

static void
do_panic(void *arg)
{
	log_panic("core", "bug", "x=%d", *(const int *)arg);
}

START_TEST(test_fatal_exits)
{
	char out[LOG_LINE_MAX * 2];
	int status;

	/* Filtering does not apply: fatal is always told, then exit 1. */
	log_set_level(LOG_ERROR);
	status = unit_child_status(do_fatal, "0.0.0.0:25");
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 1);
	logcap_read(out, sizeof out);
	ck_assert_str_eq(after_time(out),
	    "level=fatal component=core event=bind_failed addr=0.0.0.0:25\n");
}
END_TEST

START_TEST(test_panic_aborts)
{
	char out[LOG_LINE_MAX * 2];
	int status, x = 7;

	log_set_level(LOG_ERROR);
	status = unit_child_status(do_panic, &x);
	ck_assert(WIFSIGNALED(status));
	ck_assert_int_eq(WTERMSIG(status), SIGABRT);
	logcap_read(out, sizeof out);
	ck_assert_str_eq(after_time(out), "level=panic component=core event=bug x=7\n");
}
END_TEST

/* --- log_quote ----------------------------------------------------------- */

static const struct quote_case {
	const char *in;
	size_t len;
	const char *out;
} quote_cases[] = {
	{ S(""), "\"\"" },
	{ S("plain"), "\"plain\"" },
	{ S("a b"), "\"a b\"" },
	{ S("a\"b"), "\"a\\\"b\"" },
	{ S("a\\b"), "\"a\\\\b\"" },
	{ S("l1\nl2"), "\"l1\\nl2\"" },
	{ S("\r\t"), "\"\\r\\t\"" },
	{ S("\x01\x1f\x1b"), "\"\\x01\\x1f\\x1b\"" },
	{ S("a\0b"), "\"a\\x00b\"" },
	{ S("\x7f\x80\xff"), "\"\\x7f\\x80\\xff\"" },
	{ S("caf\xc3\xa9"), "\"caf\\xc3\\xa9\"" },
	{ S(" ~!#$%&'()*+,-./:;<=>?@[]^_`{|}"), "\" ~!#$%&'()*+,-./:;<=>?@[]^_`{|}\"" },
};

START_TEST(test_quote_table)
{
	const struct quote_case *c = &quote_cases[_i];
	char dst[256];

	ck_assert_ptr_eq(log_quote(dst, sizeof dst, c->in, c->len), dst);
	ck_assert_str_eq(dst, c->out);
}
END_TEST

START_TEST(test_quote_cut)
{
	char dst[16];

	ck_assert_str_eq(log_quote(dst, 8, S("abcdefghij")), "\"ab...\"");
	ck_assert_str_eq(log_quote(dst, 16, S("abcdefghijklmnop")),
	    "\"abcdefghij...\"");
	/* An escape is never cut in half. */
	ck_assert_str_eq(log_quote(dst, 10, S("\x01\x01\x01")), "\"\\x01...\"");
	ck_assert_str_eq(log_quote(dst, 10, S("a\"\"\"\"")), "\"a\\\"...\"");
	/* Too small to hold anything useful: empty, still terminated. */
	memset(dst, '#', sizeof dst);
	ck_assert_str_eq(log_quote(dst, 7, S("abc")), "");
	ck_assert_int_eq(dst[1], '#');
	ck_assert_str_eq(log_quote(dst, 1, S("abc")), "");
}
END_TEST

START_TEST(test_quote_cut_bounds)
{
	char in[300], dst[512];

	/* Mixed widths: plain, two-byte and four-byte escapes. */
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = "a\"\n\x01z\xff\\"[i % 7];
	for (size_t size = 8; size < 200; size++) {
		size_t len;

		memset(dst, '#', sizeof dst);
		log_quote(dst, size, in, sizeof in);
		len = strlen(dst);
		ck_assert_uint_lt(len, size);
		ck_assert_int_eq(dst[0], '"');
		ck_assert_msg(len >= 5 && strcmp(dst + len - 4, "...\"") == 0,
		    "size %zu: %s", size, dst);
		for (size_t k = size; k < sizeof dst; k++)
			if (dst[k] != '#')
				ck_abort_msg("size %zu: byte %zu written", size, k);
	}
	/* Big enough for all of it: no cut. */
	log_quote(dst, sizeof dst, in, 40);
	ck_assert_ptr_null(strstr(dst, "..."));
	ck_assert_int_eq(dst[strlen(dst) - 1], '"');
}
END_TEST

START_TEST(test_quotes)
{
	char dst[32];

	ck_assert_str_eq(log_quotes(dst, sizeof dst, NULL), "\"\"");
	ck_assert_str_eq(log_quotes(dst, sizeof dst, "a\tb"), "\"a\\tb\"");
}
END_TEST

static const struct level_case {
	const char *s;
	int rc;
	enum log_level level;
} level_cases[] = {
	{ "debug", 0, LOG_DEBUG },
	{ "info", 0, LOG_INFO },
	{ "warn", 0, LOG_WARN },
	{ "error", 0, LOG_ERROR },
	{ "INFO", 0, LOG_INFO },
	{ "Error", 0, LOG_ERROR },
	{ "warning", -EINVAL, 0 },
	{ "fatal", -EINVAL, 0 },
	{ "", -EINVAL, 0 },
	{ " info", -EINVAL, 0 },
	{ "inf", -EINVAL, 0 },
};

START_TEST(test_level_parse)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	const struct level_case *c = &level_cases[_i];
	enum log_level lv = (enum log_level)99;

	ck_assert_int_eq(log_level_parse(c->s, &lv), c->rc);
	if (c->rc == 0) {
		ck_assert_int_eq(lv, c->level);
		ck_assert_str_eq(log_level_name(lv), names[c->level]);
	} else {
		ck_assert_int_eq(lv, 99);
	}
}
END_TEST

START_TEST(test_level_name)
{
	ck_assert_str_eq(log_level_name(LOG_DEBUG), "debug");
	ck_assert_str_eq(log_level_name(LOG_WARN), "warn");
	ck_assert_str_eq(log_level_name((enum log_level)4), "?");
	ck_assert_str_eq(log_level_name((enum log_level)-1), "?");
}
END_TEST

Suite *
log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc;

	tc = tcase_create("lines");
	tcase_add_checked_fixture(tc, capture_setup, logcap_teardown);
	tcase_add_test(tc, test_line_fields);
	tcase_add_test(tc, test_one_line_per_event);
	tcase_add_test(tc, test_level_filter);
	tcase_add_test(tc, test_newlines_never_split);
	tcase_add_test(tc, test_long_line_cut);
	tcase_add_test(tc, test_quoted_value_in_line);
	tcase_add_test(tc, test_fatal_exits);
	tcase_add_test(tc, test_panic_aborts);
	suite_add_tcase(s, tc);

	tc = tcase_create("quote");
	tcase_add_loop_test(tc, test_quote_table, 0, (int)NELEM(quote_cases));
	tcase_add_test(tc, test_quote_cut);
	tcase_add_test(tc, test_quote_cut_bounds);
	tcase_add_test(tc, test_quotes);
	tcase_add_loop_test(tc, test_level_parse, 0, (int)NELEM(level_cases));
	tcase_add_test(tc, test_level_name);
	suite_add_tcase(s, tc);
	return s;
}
