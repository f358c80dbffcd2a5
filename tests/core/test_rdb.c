/*
 * test_rdb - core/rdb's reply decoders and rdb_log_error, on replies
 * built by hiredis's own reader from RESP text: the redisReply values a
 * callback gets, with no server and no loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rdb.h"
#include "tests/logcap.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* reply_n - the one reply in RESP text resp[0..len), as a callback gets it. */
static redisReply *
reply_n(const char *resp, size_t len)
{
	redisReader *rd = redisReaderCreate();
	void *r = NULL;

	ck_assert_ptr_nonnull(rd);
	ck_assert_int_eq(redisReaderFeed(rd, resp, len), REDIS_OK);
	ck_assert_int_eq(redisReaderGetReply(rd, &r), REDIS_OK);
	ck_assert_msg(r != NULL, "incomplete RESP: %s", resp);
	redisReaderFree(rd);
	return r;
}

/* reply - reply_n() of NUL-terminated RESP text. */
static redisReply *
reply(const char *resp)
{
	return reply_n(resp, strlen(resp));
}

/* --- rdb_reply_int -------------------------------------------------------- */

static const struct int_case {
	const char *resp;
	int64_t want;
} int_cases[] = {
	{ ":0\r\n", 0 },
	{ ":42\r\n", 42 },
	{ ":9223372036854775807\r\n", INT64_MAX },
	{ ":-5\r\n", -5 },                           /* Redis's own negative */
	{ "$2\r\n42\r\n", 42 },                       /* digits in a bulk string */
	{ "$19\r\n9223372036854775807\r\n", INT64_MAX },
	{ "$21\r\n184467440737095516160\r\n", -1 },  /* overflow */
	{ "$2\r\n-5\r\n", -1 },                       /* a sign is not a digit */
	{ "$3\r\n4.5\r\n", -1 },
	{ "$3\r\n 45\r\n", -1 },
	{ "$0\r\n\r\n", -1 },
	{ "$-1\r\n", -1 },                            /* nil */
	{ "+42\r\n", -1 },                            /* status, not a string */
	{ "-ERR 42\r\n", -1 },
	{ "*1\r\n:42\r\n", -1 },
};

START_TEST(test_reply_int)
{
	const struct int_case *c = &int_cases[_i];
	redisReply *r = reply(c->resp);

	ck_assert_msg(rdb_reply_int(r) == c->want, "%s: got %lld", c->resp,
	    (long long)rdb_reply_int(r));
	freeReplyObject(r);
}
END_TEST

/* --- rdb_reply_u64 -------------------------------------------------------- */

static const struct u64_case {
	const char *resp;
	bool ok;
	uint64_t want;
} u64_cases[] = {
	{ ":0\r\n", true, 0 },
	{ ":1700000000000\r\n", true, 1700000000000u },
	{ ":9223372036854775807\r\n", true, INT64_MAX },
	{ ":-1\r\n", false, 0 },                             /* negative */
	{ "$20\r\n18446744073709551615\r\n", true, UINT64_MAX },
	{ "$13\r\n1700000000000\r\n", true, 1700000000000u },
	/* ZSCORE's scores: a number string, cut to whole units. */
	{ "$15\r\n1700000000000.5\r\n", true, 1700000000000u },
	{ "$5\r\n1e+15\r\n", true, 1000000000000000u },
	{ "$20\r\n18446744073709551616\r\n", false, 0 },     /* 2^64: overflow */
	{ "$6\r\n1e+300\r\n", false, 0 },
	{ "$3\r\ninf\r\n", false, 0 },
	{ "$3\r\nnan\r\n", false, 0 },
	{ "$2\r\n-1\r\n", false, 0 },                        /* negative */
	{ "$4\r\n-1.5\r\n", false, 0 },
	{ "$3\r\n12x\r\n", false, 0 },
	{ "$0\r\n\r\n", false, 0 },
	{ "$32\r\n00000000000000000000000000000001\r\n", true, 1 },
	{ "$33\r\n0000000000000000000000000000001.0\r\n", false, 0 }, /* too long a float */
	{ "$-1\r\n", false, 0 },                             /* nil */
	{ "+1\r\n", false, 0 },                              /* status */
	{ "-ERR 1\r\n", false, 0 },
	{ "*1\r\n:1\r\n", false, 0 },
};

START_TEST(test_reply_u64)
{
	const struct u64_case *c = &u64_cases[_i];
	redisReply *r = reply(c->resp);
	uint64_t v = 12345;

	ck_assert_msg(rdb_reply_u64(r, &v) == c->ok, "%s: want %s", c->resp,
	    c->ok ? "true" : "false");
	if (c->ok)
		ck_assert_msg(v == c->want, "%s: got %llu", c->resp, (unsigned long long)v);
	freeReplyObject(r);
}
END_TEST

START_TEST(test_reply_u64_null)
{
	uint64_t v = 7;

	ck_assert(!rdb_reply_u64(NULL, &v));
	ck_assert_uint_eq(v, 7);
}
END_TEST

/* --- rdb_reply_str and rdb_reply_array ------------------------------------- */

START_TEST(test_reply_str)
{
	static const char *const not_str[] = {
		"$-1\r\n", ":1\r\n", "+OK\r\n", "-ERR no\r\n", "*1\r\n$1\r\na\r\n", "*-1\r\n",
	};
	const char *p = NULL;
	size_t len = 99;
	redisReply *r;

	r = reply("$5\r\nhello\r\n");
	ck_assert(rdb_reply_str(r, &p, &len));
	ck_assert_uint_eq(len, 5);
	ck_assert_mem_eq(p, "hello", 5);
	freeReplyObject(r);
	/* Binary-safe: the length counts, not a NUL. */
	r = reply_n("$3\r\na\0b\r\n", 9);
	ck_assert(rdb_reply_str(r, &p, &len));
	ck_assert_uint_eq(len, 3);
	ck_assert_mem_eq(p, "a\0b", 3);
	freeReplyObject(r);
	r = reply("$0\r\n\r\n");
	ck_assert(rdb_reply_str(r, &p, &len));
	ck_assert_uint_eq(len, 0);
	freeReplyObject(r);

	for (size_t i = 0; i < NELEM(not_str); i++) {
		p = NULL;
		len = 99;
		r = reply(not_str[i]);
		ck_assert_msg(!rdb_reply_str(r, &p, &len), "%s", not_str[i]);
		ck_assert_ptr_null(p);
		ck_assert_uint_eq(len, 99);
		freeReplyObject(r);
	}
	ck_assert(!rdb_reply_str(NULL, &p, &len));
}
END_TEST

START_TEST(test_reply_array)
{
	redisReply *r;
	const char *p;
	size_t len;
	uint64_t v;

	r = reply("*3\r\n:7\r\n$2\r\nid\r\n$-1\r\n");
	ck_assert(rdb_reply_array(r, 0));
	ck_assert(rdb_reply_array(r, 3));
	ck_assert(!rdb_reply_array(r, 4));
	/* The decoders work on the elements, nil ones included. */
	ck_assert(rdb_reply_u64(r->element[0], &v));
	ck_assert_uint_eq(v, 7);
	ck_assert(rdb_reply_str(r->element[1], &p, &len));
	ck_assert_mem_eq(p, "id", 2);
	ck_assert(!rdb_reply_str(r->element[2], &p, &len));
	ck_assert(!rdb_reply_u64(r->element[2], &v));
	ck_assert_int_eq(rdb_reply_int(r->element[2]), -1);
	/* An array is none of the scalars. */
	ck_assert(!rdb_reply_u64(r, &v));
	ck_assert(!rdb_reply_str(r, &p, &len));
	ck_assert_int_eq(rdb_reply_int(r), -1);
	freeReplyObject(r);

	r = reply("*0\r\n");
	ck_assert(rdb_reply_array(r, 0));
	ck_assert(!rdb_reply_array(r, 1));
	freeReplyObject(r);

	/* Nested: an element that is an array itself. */
	r = reply("*2\r\n*1\r\n:1\r\n:2\r\n");
	ck_assert(rdb_reply_array(r, 2));
	ck_assert(rdb_reply_array(r->element[0], 1));
	ck_assert(!rdb_reply_array(r->element[1], 0));
	freeReplyObject(r);

	/* A nil array, and everything else, is no array. */
	static const char *const not_array[] = {
		"*-1\r\n", "$-1\r\n", ":3\r\n", "$1\r\n3\r\n", "+OK\r\n", "-ERR no\r\n",
	};

	for (size_t i = 0; i < NELEM(not_array); i++) {
		r = reply(not_array[i]);
		ck_assert_msg(!rdb_reply_array(r, 0), "%s", not_array[i]);
		freeReplyObject(r);
	}
	ck_assert(!rdb_reply_array(NULL, 0));
}
END_TEST

/* --- rdb_reply_status ------------------------------------------------------ */

static const struct status_case {
	int status;
	const char *resp;   /* NULL: no reply (a lost connection, a cancel) */
	int want;
} status_cases[] = {
	{ 0, ":1\r\n", 0 },
	{ 0, "+OK\r\n", 0 },
	{ -EIO, "-ESTALE lease lost\r\n", -ESTALE },
	{ -EIO, "-EEXIST already queued\r\n", -EEXIST },
	{ -EIO, "-ESTALE\r\n", -ESTALE },
	{ -EIO, "-ERR unknown command\r\n", -EIO },
	{ -EIO, "-NOSCRIPT No matching script\r\n", -EIO },
	{ -EIO, "-estale lower case\r\n", -EIO },
	{ -EIO, "-ERR ESTALE not first\r\n", -EIO },
	/* Only an error reply names an errno, whatever its text. */
	{ -EIO, "$6\r\nESTALE\r\n", -EIO },
	{ -EIO, "+ESTALE\r\n", -EIO },
	{ 0, "$6\r\nESTALE\r\n", 0 },
	/* Statuses without a reply pass through. */
	{ -ECONNRESET, NULL, -ECONNRESET },
	{ -ECANCELED, NULL, -ECANCELED },
	{ -EIO, NULL, -EIO },
};

START_TEST(test_reply_status)
{
	const struct status_case *c = &status_cases[_i];
	redisReply *r = c->resp != NULL ? reply(c->resp) : NULL;

	ck_assert_msg(rdb_reply_status(c->status, r) == c->want, "%d %s: got %d",
	    c->status, c->resp != NULL ? c->resp : "NULL", rdb_reply_status(c->status, r));
	if (r != NULL)
		freeReplyObject(r);
}
END_TEST

/* --- rdb_log_error ---------------------------------------------------------- */

START_TEST(test_log_error)
{
	char out[1024];
	redisReply *r;

	/* An error reply with -EIO: one line, its text quoted. */
	r = reply("-ERR wrong \"type\"\r\n");
	rdb_log_error("queue", "claim", -EIO, r);
	logcap_read(out, sizeof out);
	ck_assert_msg(strstr(out, "level=error") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "component=queue") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "event=redis_error") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "op=claim") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "error=\"ERR wrong \\\"type\\\"\"") != NULL, "%s", out);
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	/* The same reply under another status: not Redis's error to log. */
	rdb_log_error("queue", "claim", 0, r);
	rdb_log_error("queue", "claim", -ECONNRESET, r);
	ck_assert_uint_eq(logcap_read(out, sizeof out), 0);
	freeReplyObject(r);

	/* Not an error reply, or none at all: nothing. */
	r = reply("$3\r\nERR\r\n");
	rdb_log_error("policy", "rate", -EIO, r);
	freeReplyObject(r);
	r = reply("+OK\r\n");
	rdb_log_error("policy", "rate", -EIO, r);
	freeReplyObject(r);
	rdb_log_error("policy", "rate", -EIO, NULL);
	rdb_log_error("policy", "rate", -ECANCELED, NULL);
	ck_assert_uint_eq(logcap_read(out, sizeof out), 0);
}
END_TEST

Suite *
rdb_suite(void)
{
	Suite *s = suite_create("rdb");
	TCase *tc;

	tc = tcase_create("reply");
	tcase_add_loop_test(tc, test_reply_int, 0, (int)NELEM(int_cases));
	tcase_add_loop_test(tc, test_reply_u64, 0, (int)NELEM(u64_cases));
	tcase_add_test(tc, test_reply_u64_null);
	tcase_add_test(tc, test_reply_str);
	tcase_add_test(tc, test_reply_array);
	tcase_add_loop_test(tc, test_reply_status, 0, (int)NELEM(status_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("log");
	tcase_add_checked_fixture(tc, logcap_setup, logcap_teardown);
	tcase_add_test(tc, test_log_error);
	suite_add_tcase(s, tc);
	return s;
}
