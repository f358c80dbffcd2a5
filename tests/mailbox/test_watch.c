/*
 * test_watch - mailbox/watch: the announcement parser over a table of
 * good and bad lines, and the subscriber against a real redis-server
 * ($KURIER_TEST_REDIS): every change of the store arrives as an event,
 * other prefixes' do not, and a core/rdb subscriber takes no commands.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/rdb.h"
#include "mailbox/store.h"
#include "mailbox/watch.h"
#include "tests/logcap.h"
#include "tests/redis_test.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define MSG "Subject: x\r\n\r\nbody\r\n"

static const struct {
	const char *channel, *line;
	int rc;
	enum mbox_event_kind kind;
	const char *user;
	uint64_t mailbox, modseq;
	const char *uids, *name;
} cases[] = {
	{ "p:mbx:shop", "append 7 57 42 INBOX", 0, MBOX_EV_APPEND, "shop", 7, 57, "42", "INBOX" },
	{ "p:mbx:a@b.example", "flags 3 9 1:4,7 Sent Items", 0, MBOX_EV_FLAGS, "a@b.example", 3, 9,
	    "1:4,7", "Sent Items" },
	{ "p:mbx:shop", "expunge 1 12 3,5:9 a/b c", 0, MBOX_EV_EXPUNGE, "shop", 1, 12, "3,5:9", "a/b c" },
	{ "p:mbx:shop", "create 4 Entw&APw-rfe", 0, MBOX_EV_CREATE, "shop", 4, 0, "", "Entw&APw-rfe" },
	{ "p:mbx:shop", "rename 4 new name ", 0, MBOX_EV_RENAME, "shop", 4, 0, "", "new name " },
	{ "p:mbx:shop", "delete 4 x", 0, MBOX_EV_DELETE, "shop", 4, 0, "", "x" },
	{ "q:mbx:shop", "append 7 57 42 INBOX", -EINVAL, 0, "", 0, 0, "", "" },
	{ "p:mbx:", "append 7 57 42 INBOX", -EINVAL, 0, "", 0, 0, "", "" },
	{ "p:mbx:bad user", "append 7 57 42 INBOX", -EINVAL, 0, "", 0, 0, "", "" },
	{ "p:mbx:shop", "", -EINVAL, 0, "", 0, 0, "", "" },
	{ "p:mbx:shop", "append 7 57 42", -EINVAL, 0, "", 0, 0, "", "" },
	{ "p:mbx:shop", "append 7 57 42 ", -EINVAL, 0, "", 0, 0, "", "" },
	{ "p:mbx:shop", "append x 57 42 INBOX", -EINVAL, 0, "", 0, 0, "", "" },
	{ "p:mbx:shop", "append 7 -1 42 INBOX", -EINVAL, 0, "", 0, 0, "", "" },
	{ "p:mbx:shop", "append 7 57 4a INBOX", -EINVAL, 0, "", 0, 0, "", "" },
	{ "p:mbx:shop", "append  7 57 42 INBOX", -EINVAL, 0, "", 0, 0, "", "" },
	{ "p:mbx:shop", "move 7 57 42 INBOX", -EINVAL, 0, "", 0, 0, "", "" },
	{ "p:mbx:shop", "create 4", -EINVAL, 0, "", 0, 0, "", "" },
	{ "p:mbx:shop", "create 99999999999999999999 x", -EINVAL, 0, "", 0, 0, "", "" },
};

START_TEST(parse_table)
{
	struct mbox_event ev;
	const char *ch = cases[_i].channel, *line = cases[_i].line;

	ck_assert_int_eq(mbox_event_parse("p:", ch, strlen(ch), line, strlen(line), &ev),
	    cases[_i].rc);
	if (cases[_i].rc < 0)
		return;
	ck_assert_int_eq(ev.kind, cases[_i].kind);
	ck_assert_str_eq(ev.user, cases[_i].user);
	ck_assert_uint_eq(ev.mailbox, cases[_i].mailbox);
	ck_assert_uint_eq(ev.modseq, cases[_i].modseq);
	ck_assert_uint_eq(ev.uids_len, strlen(cases[_i].uids));
	ck_assert_mem_eq(ev.uids, cases[_i].uids, ev.uids_len);
	ck_assert_uint_eq(ev.name_len, strlen(cases[_i].name));
	ck_assert_mem_eq(ev.name, cases[_i].name, ev.name_len);
}
END_TEST

/* What the watch received, one line per event: "user kind mailbox modseq uids name". */
struct seen {
	char text[4096];
	size_t len;
	unsigned n;
};

static void
on_event(void *arg, const struct mbox_event *ev)
{
	static const char *const names[] = { "append", "flags", "expunge", "create", "rename",
		"delete" };
	struct seen *s = arg;
	int n;

	n = snprintf(s->text + s->len, sizeof s->text - s->len, "%s %s %" PRIu64 " %" PRIu64
	    " %.*s %.*s\n", ev->user, names[ev->kind], ev->mailbox, ev->modseq,
	    (int)ev->uids_len, ev->uids, (int)ev->name_len, ev->name);
	ck_assert(n > 0 && (size_t)n < sizeof s->text - s->len);
	s->len += (size_t)n;
	s->n++;
}

/* Counts the watch's state changes: ups and downs. */
struct updown {
	unsigned up, down;
};

static void
on_updown(void *arg, bool up)
{
	struct updown *u = arg;

	if (up)
		u->up++;
	else
		u->down++;
}

static void
on_done(void *arg, int status)
{
	*(int *)arg = status == 0 ? 1 : status;
}

static void
on_appended(void *arg, int status, uint32_t uv, uint32_t uid)
{
	(void)uv, (void)uid;
	*(int *)arg = status == 0 ? 1 : status;
}

static void
wait_int(uv_loop_t *loop, int *v)
{
	for (int i = 0; i < 1000 && *v == 0; i++)
		redis_test_sleep(loop, 10);
	ck_assert_int_eq(*v, 1);
}

static void
open_store(uv_loop_t *loop, const struct config *cfg, struct mbox_store **st)
{
	bool up = false;
	char err[128];

	ck_assert_int_eq(mbox_store_open(st, loop, cfg, err, sizeof err), 0);
	mbox_on_state(*st, redis_test_on_up, &up);
	redis_test_wait(loop, &up, 10000, "the store");
	mbox_on_state(*st, NULL, NULL);
}

static void
close_store(uv_loop_t *loop, struct mbox_store *st)
{
	bool closed = false;

	mbox_store_close(st, redis_test_on_closed, &closed);
	redis_test_wait(loop, &closed, 10000, "the store's close");
}

START_TEST(every_change_arrives)
{
	uv_loop_t loop;
	struct config cfg, other;
	struct mbox_store *st, *st2;
	struct mbox_watch *w;
	struct seen s = { .len = 0 };
	struct mbox_append a = { .user = "shop", .folder = "INBOX", .data = MSG,
		.len = strlen(MSG), .flags = "" };
	bool up = false, closed = false;
	int done;
	char want[1024];
	redisContext *sync;

	config_defaults(&cfg);
	redis_test_config(&cfg, "kw");
	config_defaults(&other);
	redis_test_config(&other, "kw");
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(mbox_watch_open(&w, &loop, &cfg, on_event, &s), 0);
	mbox_watch_on_state(w, redis_test_on_up, &up);
	redis_test_wait(&loop, &up, 10000, "the watch");
	ck_assert(mbox_watch_is_up(w));
	open_store(&loop, &cfg, &st);
	open_store(&loop, &other, &st2);

	/* Another prefix's change is not ours. */
	done = 0;
	ck_assert_int_eq(mbox_append(st2, &a, on_appended, &done), 0);
	wait_int(&loop, &done);
	done = 0;
	ck_assert_int_eq(mbox_append(st, &a, on_appended, &done), 0);
	wait_int(&loop, &done);
	done = 0;
	ck_assert_int_eq(mbox_create(st, "shop", "Sent Items", on_done, &done), 0);
	wait_int(&loop, &done);
	done = 0;
	ck_assert_int_eq(mbox_rename(st, "shop", "Sent Items", "Gesendet", on_done, &done), 0);
	wait_int(&loop, &done);
	done = 0;
	a.user = "u2@x.example";
	ck_assert_int_eq(mbox_append(st, &a, on_appended, &done), 0);
	wait_int(&loop, &done);
	for (int i = 0; i < 500 && s.n < 4; i++)
		redis_test_sleep(&loop, 10);
	/* Mailbox ids: 1 INBOX of shop, 2 Sent Items, 3 INBOX of u2. */
	snprintf(want, sizeof want,
	    "shop append 1 2 1 INBOX\n"
	    "shop create 2 0  Sent Items\n"
	    "shop rename 2 0  Gesendet\n"
	    "u2@x.example append 3 2 1 INBOX\n");
	ck_assert_str_eq(s.text, want);
	ck_assert_uint_eq(s.n, 4);

	/* The connection killed: the watch says so, subscribes again, goes on. */
	{
		struct updown ud = { 0, 0 };
		redisReply *r;

		mbox_watch_on_state(w, on_updown, &ud);
		sync = redis_test_connect(&cfg);
		r = redis_test_cmd(sync, "CLIENT KILL TYPE pubsub");
		ck_assert_int_ge(r->integer, 1);
		freeReplyObject(r);
		redisFree(sync);
		for (int i = 0; i < 1000 && ud.up == 0; i++)
			redis_test_sleep(&loop, 10);
		ck_assert_uint_eq(ud.down, 1);
		ck_assert_uint_eq(ud.up, 1);
		done = 0;
		a.user = "shop";
		ck_assert_int_eq(mbox_append(st, &a, on_appended, &done), 0);
		wait_int(&loop, &done);
		for (int i = 0; i < 500 && s.n < 5; i++)
			redis_test_sleep(&loop, 10);
		ck_assert_uint_eq(s.n, 5);
		ck_assert_ptr_nonnull(strstr(s.text, "\nshop append 1 3 2 INBOX\n"));
		mbox_watch_on_state(w, NULL, NULL);
	}

	/* A subscriber connection takes no commands. */
	{
		struct rdb *db;
		struct rdb_opts o;
		const char *argv[] = { "PING" };
		bool up2 = false, closed2 = false;

		rdb_opts_from_config(&o, &cfg, "test", NULL);
		o.psubscribe = "nothing:*";
		ck_assert_int_eq(rdb_open(&db, &loop, &o, redis_test_on_up, &up2), 0);
		redis_test_wait(&loop, &up2, 10000, "the subscriber");
		ck_assert_int_eq(rdb_cmd(db, NULL, NULL, 1, argv, NULL), -EINVAL);
		ck_assert_int_eq(rdb_cmdf(db, NULL, NULL, "PING"), -EINVAL);
		rdb_close(db, redis_test_on_closed, &closed2);
		redis_test_wait(&loop, &closed2, 10000, "the subscriber's close");
	}

	mbox_watch_close(w, redis_test_on_closed, &closed);
	redis_test_wait(&loop, &closed, 10000, "the watch's close");
	close_store(&loop, st);
	close_store(&loop, st2);
	sync = redis_test_connect(&cfg);
	redis_test_disconnect(sync, cfg.redis.prefix);
	sync = redis_test_connect(&other);
	redis_test_disconnect(sync, other.redis.prefix);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	config_free(&cfg);
	config_free(&other);
}
END_TEST

Suite *
watch_suite(void)
{
	Suite *s = suite_create("watch");
	TCase *tc = tcase_create("parse");
	TCase *live = tcase_create("redis");

	tcase_add_loop_test(tc, parse_table, 0, (int)NELEM(cases));
	suite_add_tcase(s, tc);
	tcase_set_timeout(live, 60);
	tcase_add_checked_fixture(live, unit_pool_fresh, NULL);
	tcase_add_checked_fixture(live, logcap_setup, logcap_teardown);
	tcase_add_test(live, every_change_arrives);
	suite_add_tcase(s, live);
	return s;
}
