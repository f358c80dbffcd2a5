/*
 * test_store - the mailbox store's contract (mailbox/store.h) against a
 * real redis-server ($KURIER_TEST_REDIS): UIDs and MODSEQ across append,
 * flags, copy, move and expunge, shared raw bytes, dedup, the limits,
 * folders, subscriptions, concurrent appends on two connections,
 * announcements, bad names and a Redis that is down.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#include "core/config.h"
#include "mailbox/store.h"
#include "tests/logcap.h"
#include "tests/redis_test.h"
#include "tests/suites.h"

#define MSG1 "From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered\r\n\r\nsorry\r\n"
#define MSG2 "From: a@b.example\r\nSubject: two\r\n\r\nbody two\r\n"
#define DAY (86400000ULL)

struct mt {
	uv_loop_t loop;
	struct config cfg;
	struct mbox_store *st;
	redisContext *sync;
};

/* What a callback got; one call at a time per struct. */
struct res {
	bool done;
	int status;
	int64_t count;
	uint32_t uv, uid;
	struct mbox_status s;
	struct mbox_folders *folders;
	struct mbox_msgs *msgs;
	struct mbox_body *body;
	struct mbox_flags_result *flags;
	struct mbox_copy_result *copy;
	struct mbox_uids *uids;
	struct mbox_stats *stats;
	struct mbox_subscriptions *subs;
	struct mbox_uidlist *uidlist;
};

static void
mt_wait(struct mt *t, const bool *done)
{
	redis_test_wait(&t->loop, done, 10000, "the mailbox store");
}

static void
mt_open_on(struct mt *t, struct mbox_store **st)
{
	bool up = false;
	char err[256];

	ck_assert_int_eq(mbox_store_open(st, &t->loop, &t->cfg, err, sizeof err), 0);
	mbox_on_state(*st, redis_test_on_up, &up);
	mt_wait(t, &up);
	mbox_on_state(*st, NULL, NULL);
}

static void
mt_open(struct mt *t, void (*tweak)(struct config *cfg))
{
	memset(t, 0, sizeof *t);
	config_defaults(&t->cfg);
	redis_test_config(&t->cfg, "km");
	if (tweak != NULL)
		tweak(&t->cfg);
	ck_assert_int_eq(uv_loop_init(&t->loop), 0);
	mt_open_on(t, &t->st);
	t->sync = redis_test_connect(&t->cfg);
}

static void
mt_close_store(struct mt *t, struct mbox_store *st)
{
	bool closed = false;

	mbox_store_close(st, redis_test_on_closed, &closed);
	mt_wait(t, &closed);
}

static void
mt_close(struct mt *t)
{
	redis_test_disconnect(t->sync, t->cfg.redis.prefix);
	mt_close_store(t, t->st);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&t->loop), 0);
	config_free(&t->cfg);
}

static long long
mt_int(struct mt *t, const char *fmt, const char *suffix)
{
	redisReply *r = redis_test_cmd(t->sync, fmt, redis_test_key(t->cfg.redis.prefix, suffix));
	long long v = r->type == REDIS_REPLY_INTEGER ? r->integer :
	    r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;

	freeReplyObject(r);
	return v;
}

/* --- callbacks ------------------------------------------------------------------- */

static void
on_append(void *arg, int status, uint32_t uv, uint32_t uid)
{
	struct res *r = arg;

	r->status = status;
	r->uv = uv;
	r->uid = uid;
	r->done = true;
}

static void
on_status(void *arg, int status, const struct mbox_status *s)
{
	struct res *r = arg;

	r->status = status;
	if (s != NULL)
		r->s = *s;
	r->done = true;
}

static void
on_folders(void *arg, int status, struct mbox_folders *l)
{
	struct res *r = arg;

	r->status = status;
	r->folders = l;
	r->done = true;
}

static void
on_msgs(void *arg, int status, struct mbox_msgs *l)
{
	struct res *r = arg;

	r->status = status;
	r->msgs = l;
	r->done = true;
}

static void
on_body(void *arg, int status, struct mbox_body *b)
{
	struct res *r = arg;

	r->status = status;
	r->body = b;
	r->done = true;
}

static void
on_flags(void *arg, int status, struct mbox_flags_result *f)
{
	struct res *r = arg;

	r->status = status;
	r->flags = f;
	r->done = true;
}

static void
on_copy(void *arg, int status, struct mbox_copy_result *c)
{
	struct res *r = arg;

	r->status = status;
	r->copy = c;
	r->done = true;
}

static void
on_uids(void *arg, int status, struct mbox_uids *u)
{
	struct res *r = arg;

	r->status = status;
	r->uids = u;
	r->done = true;
}

static void
on_done(void *arg, int status)
{
	struct res *r = arg;

	r->status = status;
	r->done = true;
}

static void
on_count(void *arg, int64_t n)
{
	struct res *r = arg;

	r->count = n;
	r->status = n < 0 ? (int)n : 0;
	r->done = true;
}

static void
on_stats(void *arg, int status, struct mbox_stats *s)
{
	struct res *r = arg;

	r->status = status;
	r->stats = s;
	r->done = true;
}

static void
on_subs(void *arg, int status, struct mbox_subscriptions *l)
{
	struct res *r = arg;

	r->status = status;
	r->subs = l;
	r->done = true;
}

/* --- synchronous wrappers ---------------------------------------------------------- */

static int
t_append_on(struct mt *t, struct mbox_store *st, const char *user, const char *folder,
    const char *msg, const char *flags, uint64_t date, const char *dedup, uint32_t *uid)
{
	struct mbox_append a = { .user = user, .folder = folder, .data = msg,
		.len = strlen(msg), .flags = flags, .internal_date_ms = date, .dedup_key = dedup };
	struct res r = { 0 };

	ck_assert_int_eq(mbox_append(st, &a, on_append, &r), 0);
	mt_wait(t, &r.done);
	if (uid != NULL)
		*uid = r.uid;
	return r.status;
}

static uint32_t
t_append(struct mt *t, const char *user, const char *folder, const char *msg, const char *flags)
{
	uint32_t uid = 0;

	ck_assert_int_eq(t_append_on(t, t->st, user, folder, msg, flags, 0, NULL, &uid), 0);
	ck_assert_uint_gt(uid, 0);
	return uid;
}

static int
t_status(struct mt *t, const char *user, const char *folder, struct mbox_status *s)
{
	struct res r = { 0 };

	ck_assert_int_eq(mbox_status(t->st, user, folder, on_status, &r), 0);
	mt_wait(t, &r.done);
	*s = r.s;
	return r.status;
}

static struct mbox_msgs *
t_list(struct mt *t, const char *user, const char *folder, const struct mbox_range *rg,
    size_t n, uint64_t since, int *status)
{
	struct res r = { 0 };

	ck_assert_int_eq(mbox_list(t->st, user, folder, rg, n, since, on_msgs, &r), 0);
	mt_wait(t, &r.done);
	*status = r.status;
	return r.msgs;
}

/* t_uids - the UIDs of folder as "1,2,3". */
static const char *
t_uids(struct mt *t, const char *user, const char *folder)
{
	static char out[1024];
	int status;
	struct mbox_msgs *l = t_list(t, user, folder, NULL, 0, 0, &status);
	size_t off = 0;

	ck_assert_int_eq(status, 0);
	out[0] = '\0';
	for (size_t i = 0; i < l->n; i++)
		off += (size_t)snprintf(out + off, sizeof out - off, "%s%" PRIu32,
		    i ? "," : "", l->v[i].uid);
	mbox_msgs_free(l);
	return out;
}

static struct mbox_body *
t_fetch(struct mt *t, const char *user, const char *folder, uint32_t uid, int *status)
{
	struct res r = { 0 };

	ck_assert_int_eq(mbox_fetch(t->st, user, folder, uid, on_body, &r), 0);
	mt_wait(t, &r.done);
	*status = r.status;
	return r.body;
}

static struct mbox_flags_result *
t_flags(struct mt *t, const char *user, const char *folder, enum mbox_flags_op op,
    const char *flags, uint32_t lo, uint32_t hi, uint64_t unchangedsince)
{
	struct mbox_range rg = { lo, hi };
	struct mbox_flags_req q = { .user = user, .folder = folder, .ranges = &rg,
		.nranges = 1, .op = op, .flags = flags, .unchangedsince = unchangedsince };
	struct res r = { 0 };

	ck_assert_int_eq(mbox_store_flags(t->st, &q, on_flags, &r), 0);
	mt_wait(t, &r.done);
	ck_assert_int_eq(r.status, 0);
	return r.flags;
}

static struct mbox_copy_result *
t_copy(struct mt *t, bool move, const char *user, const char *from, const char *to,
    uint32_t lo, uint32_t hi, int *status)
{
	struct mbox_range rg = { lo, hi };
	struct res r = { 0 };

	if (move)
		ck_assert_int_eq(mbox_move(t->st, user, from, to, &rg, 1, on_copy, &r), 0);
	else
		ck_assert_int_eq(mbox_copy(t->st, user, from, to, &rg, 1, on_copy, &r), 0);
	mt_wait(t, &r.done);
	*status = r.status;
	return r.copy;
}

static struct mbox_uids *
t_expunge(struct mt *t, const char *user, const char *folder, uint32_t lo, uint32_t hi,
    bool force)
{
	struct mbox_range rg = { lo, hi };
	struct res r = { 0 };

	ck_assert_int_eq(mbox_expunge(t->st, user, folder, &rg, 1, force, on_uids, &r), 0);
	mt_wait(t, &r.done);
	ck_assert_int_eq(r.status, 0);
	return r.uids;
}

static int
t_create(struct mt *t, const char *user, const char *folder)
{
	struct res r = { 0 };

	ck_assert_int_eq(mbox_create(t->st, user, folder, on_done, &r), 0);
	mt_wait(t, &r.done);
	return r.status;
}

static int
t_rename(struct mt *t, const char *user, const char *from, const char *to)
{
	struct res r = { 0 };

	ck_assert_int_eq(mbox_rename(t->st, user, from, to, on_done, &r), 0);
	mt_wait(t, &r.done);
	return r.status;
}

static int
t_delete(struct mt *t, const char *user, const char *folder)
{
	struct res r = { 0 };

	ck_assert_int_eq(mbox_delete(t->st, user, folder, on_done, &r), 0);
	mt_wait(t, &r.done);
	return r.status;
}

static int64_t
t_trim(struct mt *t, uint64_t now)
{
	struct res r = { 0 };

	ck_assert_int_eq(mbox_trim(t->st, now, on_count, &r), 0);
	mt_wait(t, &r.done);
	return r.count;
}

static uint64_t
now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* --- tests ------------------------------------------------------------------------ */

START_TEST(append_assigns_uids_and_modseq)
{
	struct mt t;
	struct mbox_status s, s2;
	struct mbox_body *b;
	struct mbox_msgs *l;
	struct mbox_range rg = { 2, 3 };
	int status;
	uint64_t before = now_ms();

	mt_open(&t, NULL);
	/* INBOX does not exist before the first append. */
	ck_assert_int_eq(t_status(&t, "shop", "INBOX", &s), -ENOENT);
	ck_assert_uint_eq(t_append(&t, "shop", "INBOX", MSG1, ""), 1);
	ck_assert_uint_eq(t_append(&t, "shop", "inbox", MSG2, "\\Seen $Label1"), 2);
	ck_assert_uint_eq(t_append(&t, "shop", "INBOX", MSG1, "\\Flagged"), 3);
	ck_assert_int_eq(t_status(&t, "shop", "INBOX", &s), 0);
	ck_assert_uint_eq(s.uidnext, 4);
	ck_assert_uint_eq(s.exists, 3);
	ck_assert_uint_eq(s.unseen, 2);
	ck_assert_uint_eq(s.highestmodseq, 4);
	ck_assert_uint_eq(s.bytes, 2 * strlen(MSG1) + strlen(MSG2));
	ck_assert_uint_gt(s.uidvalidity, 0);
	ck_assert_uint_ge(s.uidvalidity, before / 1000);

	b = t_fetch(&t, "shop", "INBOX", 2, &status);
	ck_assert_int_eq(status, 0);
	ck_assert_uint_eq(b->len, strlen(MSG2));
	ck_assert_mem_eq(b->data, MSG2, b->len);
	ck_assert_str_eq(b->m.flags, "\\Seen $Label1");
	ck_assert_uint_eq(b->m.modseq, 3);
	ck_assert_uint_eq(b->m.size, strlen(MSG2));
	ck_assert_uint_ge(b->m.date_ms, before);
	ck_assert_uint_eq(b->uidvalidity, s.uidvalidity);
	mbox_body_free(b);
	ck_assert_ptr_null(t_fetch(&t, "shop", "INBOX", 9, &status));
	ck_assert_int_eq(status, -ENOENT);

	l = t_list(&t, "shop", "INBOX", &rg, 1, 0, &status);
	ck_assert_int_eq(status, 0);
	ck_assert_uint_eq(l->n, 2);
	ck_assert_uint_eq(l->v[0].uid, 2);
	ck_assert_uint_eq(l->v[1].uid, 3);
	ck_assert_str_eq(l->v[1].flags, "\\Flagged");
	ck_assert_uint_eq(l->uidvalidity, s.uidvalidity);
	ck_assert_uint_eq(l->highestmodseq, 4);
	mbox_msgs_free(l);
	/* With the heads: the first bytes of each message. */
	{
		struct res h = { 0 };

		ck_assert_int_eq(mbox_list_heads(t.st, "shop", "INBOX", NULL, 0, 10, on_msgs, &h), 0);
		mt_wait(&t, &h.done);
		ck_assert_int_eq(h.status, 0);
		ck_assert_uint_eq(h.msgs->n, 3);
		ck_assert_uint_eq(h.msgs->v[1].head_len, 10);
		ck_assert_mem_eq(h.msgs->v[1].head, MSG2, 10);
		mbox_msgs_free(h.msgs);
		ck_assert_int_eq(mbox_list_heads(t.st, "shop", "INBOX", NULL, 0, 0, on_msgs, &h),
		    -EINVAL);
	}
	/* CHANGEDSINCE: only what changed after MODSEQ 3. */
	l = t_list(&t, "shop", "INBOX", NULL, 0, 3, &status);
	ck_assert_uint_eq(l->n, 1);
	ck_assert_uint_eq(l->v[0].uid, 3);
	mbox_msgs_free(l);
	/* An explicit internal date is kept. */
	{
		uint32_t uid;
		struct mbox_body *b2;

		ck_assert_int_eq(t_append_on(&t, t.st, "shop", "INBOX", MSG1, "", before - 1000,
		    NULL, &uid), 0);
		b2 = t_fetch(&t, "shop", "INBOX", uid, &status);
		ck_assert_uint_eq(b2->m.date_ms, before - 1000);
		mbox_body_free(b2);
	}
	/* Another user's INBOX is another mailbox. */
	ck_assert_uint_eq(t_append(&t, "other@x.example", "INBOX", MSG1, ""), 1);
	ck_assert_int_eq(t_status(&t, "other@x.example", "INBOX", &s2), 0);
	ck_assert_uint_ne(s2.id, s.id);
	ck_assert_uint_ne(s2.uidvalidity, s.uidvalidity);
	/* A folder whose UIDs are used up takes nothing more. */
	{
		char k[64];
		redisReply *rr;
		uint32_t uid;

		snprintf(k, sizeof k, "mbx:b:%" PRIu64, s2.id);
		rr = redis_test_cmd(t.sync, "HSET %s uidnext 4294967294",
		    redis_test_key(t.cfg.redis.prefix, k));
		freeReplyObject(rr);
		ck_assert_int_eq(t_append_on(&t, t.st, "other@x.example", "INBOX", MSG1, "", 0, NULL,
		    &uid), 0);
		ck_assert_uint_eq(uid, 4294967294u);
		ck_assert_int_eq(t_append_on(&t, t.st, "other@x.example", "INBOX", MSG1, "", 0, NULL,
		    &uid), -ENOSPC);
		ck_assert_int_eq(t_status(&t, "other@x.example", "INBOX", &s2), 0);
		ck_assert_uint_eq(s2.uidnext, 4294967295u);
		ck_assert_uint_eq(s2.exists, 2);
	}
	/* Appending to a folder that does not exist. */
	ck_assert_int_eq(t_append_on(&t, t.st, "shop", "Archive", MSG1, "", 0, NULL, NULL),
	    -ENOENT);
	mt_close(&t);
}
END_TEST

START_TEST(dedup_key_stores_once)
{
	struct mt t;
	struct mbox_status s;
	uint32_t uid = 0;
	redisReply *r;
	char pattern[128];

	mt_open(&t, NULL);
	t_append(&t, "shop", "INBOX", MSG2, "");
	ck_assert_int_eq(t_append_on(&t, t.st, "shop", "INBOX", MSG1, "", 0, "1733-0 dsn", &uid), 0);
	ck_assert_uint_eq(uid, 2);
	uid = 0;
	ck_assert_int_eq(t_append_on(&t, t.st, "shop", "INBOX", MSG1, "", 0, "1733-0 dsn", &uid),
	    -EEXIST);
	ck_assert_uint_eq(uid, 2);
	/* The same key for another user is another key. */
	ck_assert_int_eq(t_append_on(&t, t.st, "u2", "INBOX", MSG1, "", 0, "1733-0 dsn", &uid), 0);
	ck_assert_uint_eq(uid, 1);
	ck_assert_int_eq(t_status(&t, "shop", "INBOX", &s), 0);
	ck_assert_uint_eq(s.exists, 2);
	ck_assert_uint_eq(s.uidnext, 3);
	/* Remembered for the retention. */
	snprintf(pattern, sizeof pattern, "%smbx:dd:shop:*", t.cfg.redis.prefix);
	r = redis_test_cmd(t.sync, "KEYS %s", pattern);
	ck_assert_uint_eq(r->elements, 1);
	{
		redisReply *ttl = redis_test_cmd(t.sync, "PTTL %s", r->element[0]->str);

		ck_assert_int_gt(ttl->integer, (long long)t.cfg.mailbox.retention_ms - 60000);
		ck_assert_int_le(ttl->integer, (long long)t.cfg.mailbox.retention_ms);
		freeReplyObject(ttl);
	}
	freeReplyObject(r);
	mt_close(&t);
}
END_TEST

START_TEST(flags_set_add_remove_unchangedsince)
{
	struct mt t;
	struct mbox_flags_result *f;
	struct mbox_status s;

	mt_open(&t, NULL);
	t_append(&t, "shop", "INBOX", MSG1, "");
	t_append(&t, "shop", "INBOX", MSG1, "");
	t_append(&t, "shop", "INBOX", MSG1, "");
	/* modseq now 4 (1 at create, +1 per append). */
	f = t_flags(&t, "shop", "INBOX", MBOX_FLAGS_ADD, "\\Seen \\Flagged", 1, 2, 0);
	ck_assert_uint_eq(f->n, 2);
	ck_assert_uint_eq(f->nfailed, 0);
	ck_assert_uint_eq(f->highestmodseq, 5);
	ck_assert_uint_eq(f->v[0].modseq, 5);
	ck_assert_str_eq(f->v[1].flags, "\\Seen \\Flagged");
	mbox_flags_result_free(f);
	ck_assert_int_eq(t_status(&t, "shop", "INBOX", &s), 0);
	ck_assert_uint_eq(s.unseen, 1);
	/* Adding what is there changes nothing, MODSEQ included; case-insensitive. */
	f = t_flags(&t, "shop", "INBOX", MBOX_FLAGS_ADD, "\\seen", 1, 1, 0);
	ck_assert_uint_eq(f->n, 1);
	ck_assert_uint_eq(f->v[0].modseq, 5);
	ck_assert_uint_eq(f->highestmodseq, 5);
	mbox_flags_result_free(f);
	f = t_flags(&t, "shop", "INBOX", MBOX_FLAGS_REMOVE, "\\Flagged", 1, 1, 0);
	ck_assert_str_eq(f->v[0].flags, "\\Seen");
	ck_assert_uint_eq(f->v[0].modseq, 6);
	mbox_flags_result_free(f);
	f = t_flags(&t, "shop", "INBOX", MBOX_FLAGS_SET, "$Done \\Deleted", 3, UINT32_MAX, 0);
	ck_assert_uint_eq(f->n, 1);
	ck_assert_uint_eq(f->v[0].uid, 3);
	ck_assert_str_eq(f->v[0].flags, "$Done \\Deleted");
	mbox_flags_result_free(f);
	/* UNCHANGEDSINCE 5: uid 1 (6) and 3 (7) fail, 2 (5) passes. */
	f = t_flags(&t, "shop", "INBOX", MBOX_FLAGS_SET, "", 1, 3, 5);
	ck_assert_uint_eq(f->nfailed, 2);
	ck_assert_uint_eq(f->failed[0], 1);
	ck_assert_uint_eq(f->failed[1], 3);
	ck_assert_uint_eq(f->n, 1);
	ck_assert_uint_eq(f->v[0].uid, 2);
	ck_assert_str_eq(f->v[0].flags, "");
	ck_assert_uint_eq(f->v[0].modseq, 8);
	mbox_flags_result_free(f);
	ck_assert_int_eq(t_status(&t, "shop", "INBOX", &s), 0);
	ck_assert_uint_eq(s.unseen, 2);
	ck_assert_uint_eq(s.highestmodseq, 8);
	/* Flags that would grow past the limit: refused, nothing changed. */
	{
		char kw[600];
		struct mbox_range rg = { 1, 3 };
		struct mbox_flags_req q = { .user = "shop", .folder = "INBOX", .ranges = &rg,
			.nranges = 1, .op = MBOX_FLAGS_ADD, .flags = kw };
		struct res r = { 0 };

		memset(kw, 'a', sizeof kw - 1);
		kw[sizeof kw - 1] = '\0';
		ck_assert_int_eq(mbox_store_flags(t.st, &q, on_flags, &r), 0);
		mt_wait(&t, &r.done);
		ck_assert_int_eq(r.status, 0);
		mbox_flags_result_free(r.flags);
		kw[0] = 'b';
		memset(&r, 0, sizeof r);
		ck_assert_int_eq(mbox_store_flags(t.st, &q, on_flags, &r), 0);
		mt_wait(&t, &r.done);
		ck_assert_int_eq(r.status, -EINVAL);
		ck_assert_ptr_null(r.flags);
		ck_assert_int_eq(t_status(&t, "shop", "INBOX", &s), 0);
		ck_assert_uint_eq(s.highestmodseq, 9);
	}
	mt_close(&t);
}
END_TEST

static long long
blob_keys(struct mt *t)
{
	char pattern[128];
	redisReply *r;
	long long n;

	snprintf(pattern, sizeof pattern, "%smbx:r:*", t->cfg.redis.prefix);
	r = redis_test_cmd(t->sync, "KEYS %s", pattern);
	n = (long long)r->elements;
	freeReplyObject(r);
	return n;
}

START_TEST(copy_shares_the_raw_bytes)
{
	struct mt t;
	struct mbox_copy_result *c;
	struct mbox_uids *u;
	struct mbox_status s;
	struct mbox_body *b;
	int status;

	mt_open(&t, NULL);
	t_append(&t, "shop", "INBOX", MSG1, "\\Seen");
	t_append(&t, "shop", "INBOX", MSG2, "");
	ck_assert_int_eq(t_create(&t, "shop", "Archive"), 0);
	ck_assert_int_eq(t_status(&t, "shop", "Archive", &s), 0);
	c = t_copy(&t, false, "shop", "INBOX", "Archive", 1, UINT32_MAX, &status);
	ck_assert_int_eq(status, 0);
	ck_assert_uint_eq(c->uidvalidity, s.uidvalidity);
	ck_assert_uint_eq(c->n, 2);
	ck_assert_uint_eq(c->from[0], 1);
	ck_assert_uint_eq(c->to[0], 1);
	ck_assert_uint_eq(c->from[1], 2);
	ck_assert_uint_eq(c->to[1], 2);
	ck_assert_uint_eq(c->expunge_modseq, 0);
	mbox_copy_result_free(c);
	ck_assert_int_eq(blob_keys(&t), 2);
	ck_assert_int_eq(mt_int(&t, "HGET %s 1", "mbx:rc"), 2);
	/* A copy keeps its flags. */
	b = t_fetch(&t, "shop", "Archive", 1, &status);
	ck_assert_str_eq(b->m.flags, "\\Seen");
	mbox_body_free(b);

	/* Expunge one copy: the other stays readable. */
	u = t_expunge(&t, "shop", "INBOX", 1, 1, true);
	ck_assert_uint_eq(u->n, 1);
	ck_assert_uint_eq(u->v[0], 1);
	mbox_uids_free(u);
	ck_assert_int_eq(mt_int(&t, "HGET %s 1", "mbx:rc"), 1);
	b = t_fetch(&t, "shop", "Archive", 1, &status);
	ck_assert_int_eq(status, 0);
	ck_assert_mem_eq(b->data, MSG1, strlen(MSG1));
	mbox_body_free(b);
	/* Expunge both: the bytes are gone. */
	u = t_expunge(&t, "shop", "Archive", 1, 1, true);
	mbox_uids_free(u);
	ck_assert_int_eq(mt_int(&t, "EXISTS %s", "mbx:r:1"), 0);
	ck_assert_int_eq(mt_int(&t, "HEXISTS %s 1", "mbx:rc"), 0);
	ck_assert_int_eq(blob_keys(&t), 1);
	/* Copy into a folder that does not exist: TRYCREATE. */
	c = t_copy(&t, false, "shop", "INBOX", "Nope", 1, UINT32_MAX, &status);
	ck_assert_int_eq(status, -ENOENT);
	ck_assert_ptr_null(c);
	mt_close(&t);
}
END_TEST

static struct mbox_msgs *
t_list_meta(struct mt *t, const char *user, const char *folder)
{
	struct res r = { 0 };

	ck_assert_int_eq(mbox_list_meta(t->st, user, folder, NULL, 0, on_msgs, &r), 0);
	mt_wait(t, &r.done);
	ck_assert_int_eq(r.status, 0);
	return r.msgs;
}

static int
t_describe(struct mt *t, const char *folder, uint32_t uid, const char *env, const char *bs)
{
	struct res r = { 0 };

	ck_assert_int_eq(mbox_describe(t->st, "shop", folder, uid, env, bs, on_done, &r), 0);
	mt_wait(t, &r.done);
	return r.status;
}

/*
 * A message's IMAP ENVELOPE and BODYSTRUCTURE are kept beside its bytes
 * (given to mbox_append, or later by mbox_describe), listed by
 * mbox_list_meta, shared by a copy, and gone with the last reference.
 */
START_TEST(descriptions_stored_with_the_bytes)
{
	struct mbox_append a = { .user = "shop", .folder = "INBOX", .data = MSG1,
		.len = strlen(MSG1), .flags = "", .envelope = "(ENV1)", .bodystructure = "(BS1)" };
	struct res r = { 0 };
	struct mt t;
	struct mbox_msgs *l;
	struct mbox_copy_result *c;
	struct mbox_uids *u;
	int status;

	mt_open(&t, NULL);
	ck_assert_int_eq(mbox_append(t.st, &a, on_append, &r), 0);
	mt_wait(&t, &r.done);
	ck_assert_int_eq(r.status, 0);
	ck_assert_int_eq(t_create(&t, "shop", "Archive"), 0);
	l = t_list_meta(&t, "shop", "INBOX");
	ck_assert_uint_eq(l->n, 1);
	ck_assert_str_eq(l->v[0].envelope, "(ENV1)");
	ck_assert_str_eq(l->v[0].bodystructure, "(BS1)");
	ck_assert_ptr_null(l->v[0].head);
	ck_assert_uint_eq(l->v[0].size, strlen(MSG1));
	mbox_msgs_free(l);
	ck_assert_int_eq(mt_int(&t, "EXISTS %s", "mbx:e:1"), 1);
	c = t_copy(&t, false, "shop", "INBOX", "Archive", 1, UINT32_MAX, &status);
	mbox_copy_result_free(c);
	l = t_list_meta(&t, "shop", "Archive");
	ck_assert_uint_eq(l->n, 1);
	ck_assert_str_eq(l->v[0].envelope, "(ENV1)");
	mbox_msgs_free(l);
	/* Stored without them: NULL, until mbox_describe keeps them. */
	t_append(&t, "shop", "INBOX", MSG2, "");
	l = t_list_meta(&t, "shop", "INBOX");
	ck_assert_uint_eq(l->n, 2);
	ck_assert_ptr_null(l->v[1].envelope);
	ck_assert_ptr_null(l->v[1].bodystructure);
	mbox_msgs_free(l);
	ck_assert_int_eq(t_describe(&t, "INBOX", 2, "(ENV2)", "(BS2)"), 0);
	ck_assert_int_eq(t_describe(&t, "INBOX", 99, "(ENV2)", "(BS2)"), -ENOENT);
	ck_assert_int_eq(t_describe(&t, "Nope", 2, "(ENV2)", "(BS2)"), -ENOENT);
	ck_assert_int_eq(mbox_describe(t.st, "shop", "INBOX", 2, "", "(BS2)", on_done, &r), -EINVAL);
	l = t_list_meta(&t, "shop", "INBOX");
	ck_assert_str_eq(l->v[1].envelope, "(ENV2)");
	ck_assert_str_eq(l->v[1].bodystructure, "(BS2)");
	mbox_msgs_free(l);
	u = t_expunge(&t, "shop", "INBOX", 1, UINT32_MAX, true);
	mbox_uids_free(u);
	ck_assert_int_eq(mt_int(&t, "EXISTS %s", "mbx:e:1"), 1);
	u = t_expunge(&t, "shop", "Archive", 1, UINT32_MAX, true);
	mbox_uids_free(u);
	ck_assert_int_eq(mt_int(&t, "EXISTS %s", "mbx:e:1"), 0);
	ck_assert_int_eq(mt_int(&t, "EXISTS %s", "mbx:e:2"), 0);
	mt_close(&t);
}
END_TEST

static void
on_uidlist(void *arg, int status, struct mbox_uidlist *l)
{
	struct res *r = arg;

	r->status = status;
	r->uidlist = l;
	r->done = true;
}

/* The UIDs alone, the first unseen one, and with sizes for a maildrop. */
START_TEST(uidlist_uids_first_unseen_sizes)
{
	struct mt t;
	struct res r = { 0 };
	struct mbox_uids *u;

	mt_open(&t, NULL);
	t_append(&t, "shop", "INBOX", MSG1, "\\Seen");
	t_append(&t, "shop", "INBOX", MSG2, "");
	t_append(&t, "shop", "INBOX", MSG1, "");
	u = t_expunge(&t, "shop", "INBOX", 2, 2, true);
	mbox_uids_free(u);
	ck_assert_int_eq(mbox_uidlist(t.st, "shop", "INBOX", true, on_uidlist, &r), 0);
	mt_wait(&t, &r.done);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.uidlist->n, 2);
	ck_assert_uint_eq(r.uidlist->v[0], 1);
	ck_assert_uint_eq(r.uidlist->v[1], 3);
	ck_assert_uint_eq(r.uidlist->sizes[0], strlen(MSG1));
	ck_assert_uint_eq(r.uidlist->sizes[1], strlen(MSG1));
	ck_assert_uint_eq(r.uidlist->first_unseen, 3);
	ck_assert_uint_ne(r.uidlist->uidvalidity, 0);
	mbox_uidlist_free(r.uidlist);
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(mbox_uidlist(t.st, "shop", "INBOX", false, on_uidlist, &r), 0);
	mt_wait(&t, &r.done);
	ck_assert_ptr_null(r.uidlist->sizes);
	ck_assert_uint_eq(r.uidlist->n, 2);
	mbox_uidlist_free(r.uidlist);
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(mbox_uidlist(t.st, "shop", "Nope", false, on_uidlist, &r), 0);
	mt_wait(&t, &r.done);
	ck_assert_int_eq(r.status, -ENOENT);
	ck_assert_ptr_null(r.uidlist);
	mt_close(&t);
}
END_TEST

START_TEST(move_expunges_and_remembers)
{
	struct mt t;
	struct mbox_copy_result *c;
	struct mbox_status s;
	int status;

	mt_open(&t, NULL);
	t_append(&t, "shop", "INBOX", MSG1, "");
	t_append(&t, "shop", "INBOX", MSG2, "");
	t_append(&t, "shop", "INBOX", MSG1, "");
	ck_assert_int_eq(t_create(&t, "shop", "Bounces/Hard"), 0);
	/* One new UID there. */
	t_append(&t, "shop", "Bounces/Hard", MSG2, "");
	c = t_copy(&t, true, "shop", "INBOX", "Bounces/Hard", 2, 3, &status);
	ck_assert_int_eq(status, 0);
	ck_assert_uint_eq(c->n, 2);
	ck_assert_uint_eq(c->from[0], 2);
	ck_assert_uint_eq(c->to[0], 2);
	ck_assert_uint_eq(c->to[1], 3);
	/* INBOX modseq: 1 + 3 appends + the expunge. */
	ck_assert_uint_eq(c->expunge_modseq, 5);
	mbox_copy_result_free(c);
	ck_assert_str_eq(t_uids(&t, "shop", "INBOX"), "1");
	ck_assert_str_eq(t_uids(&t, "shop", "Bounces/Hard"), "1,2,3");
	ck_assert_int_eq(t_status(&t, "shop", "INBOX", &s), 0);
	ck_assert_uint_eq(s.exists, 1);
	ck_assert_uint_eq(s.uidnext, 4);
	ck_assert_uint_eq(s.highestmodseq, 5);
	/* The expunged UIDs are remembered with their MODSEQ (QRESYNC). */
	{
		char k[64];
		redisReply *r;

		snprintf(k, sizeof k, "mbx:v:%" PRIu64, s.id);
		r = redis_test_cmd(t.sync, "ZRANGE %s 0 -1 WITHSCORES",
		    redis_test_key(t.cfg.redis.prefix, k));
		ck_assert_uint_eq(r->elements, 4);
		ck_assert_str_eq(r->element[0]->str, "2");
		ck_assert_str_eq(r->element[1]->str, "5");
		ck_assert_str_eq(r->element[2]->str, "3");
		freeReplyObject(r);
	}
	/* QRESYNC: what vanished since a MODSEQ, within a range. */
	{
		struct res v = { 0 };
		struct mbox_range rg = { 3, 10 };

		ck_assert_int_eq(mbox_vanished(t.st, "shop", "INBOX", 4, NULL, 0, on_uids, &v), 0);
		mt_wait(&t, &v.done);
		ck_assert_int_eq(v.status, 0);
		ck_assert_uint_eq(v.uids->modseq, 0);
		ck_assert_uint_eq(v.uids->n, 2);
		ck_assert_uint_eq(v.uids->v[0], 2);
		ck_assert_uint_eq(v.uids->v[1], 3);
		mbox_uids_free(v.uids);
		memset(&v, 0, sizeof v);
		ck_assert_int_eq(mbox_vanished(t.st, "shop", "INBOX", 4, &rg, 1, on_uids, &v), 0);
		mt_wait(&t, &v.done);
		ck_assert_uint_eq(v.uids->n, 1);
		ck_assert_uint_eq(v.uids->v[0], 3);
		mbox_uids_free(v.uids);
		memset(&v, 0, sizeof v);
		ck_assert_int_eq(mbox_vanished(t.st, "shop", "INBOX", 5, NULL, 0, on_uids, &v), 0);
		mt_wait(&t, &v.done);
		ck_assert_uint_eq(v.uids->n, 0);
		mbox_uids_free(v.uids);
	}
	/* Blobs were moved, not copied. */
	ck_assert_int_eq(blob_keys(&t), 4);
	mt_close(&t);
}
END_TEST

START_TEST(expunge_takes_deleted_only)
{
	struct mt t;
	struct mbox_uids *u;
	struct mbox_flags_result *f;

	mt_open(&t, NULL);
	for (int i = 0; i < 4; i++)
		t_append(&t, "shop", "INBOX", MSG1, "");
	f = t_flags(&t, "shop", "INBOX", MBOX_FLAGS_ADD, "\\Deleted", 2, 4, 0);
	mbox_flags_result_free(f);
	/* UID EXPUNGE 1:3 takes 2 and 3, not 1 (not \Deleted) nor 4 (outside). */
	u = t_expunge(&t, "shop", "INBOX", 1, 3, false);
	ck_assert_uint_eq(u->n, 2);
	ck_assert_uint_eq(u->v[0], 2);
	ck_assert_uint_eq(u->v[1], 3);
	ck_assert_uint_eq(u->modseq, 7);
	mbox_uids_free(u);
	ck_assert_str_eq(t_uids(&t, "shop", "INBOX"), "1,4");
	/* Nothing to expunge: modseq 0, no change. */
	u = t_expunge(&t, "shop", "INBOX", 1, 1, false);
	ck_assert_uint_eq(u->n, 0);
	ck_assert_uint_eq(u->modseq, 0);
	mbox_uids_free(u);
	mt_close(&t);
}
END_TEST

static int
t_lock(struct mt *t, const char *user, enum mbox_lock_op op, const char *token, uint64_t ttl)
{
	struct res r = { 0 };

	ck_assert_int_eq(mbox_lock(t->st, user, op, token, ttl, on_done, &r), 0);
	mt_wait(t, &r.done);
	return r.status;
}

/* The maildrop lock: one holder per user, released by its holder only, lapsing after its ttl. */
START_TEST(maildrop_lock_one_holder)
{
	struct mt t;
	struct timespec lapse = { 0, 150 * 1000 * 1000 };

	mt_open(&t, NULL);
	ck_assert_int_eq(t_lock(&t, "shop", MBOX_LOCK_TAKE, "node1.s1", 60000), 0);
	ck_assert_int_eq(t_lock(&t, "shop", MBOX_LOCK_TAKE, "node2.s9", 60000), -EBUSY);
	/* Another user's maildrop is not held by it. */
	ck_assert_int_eq(t_lock(&t, "blog", MBOX_LOCK_TAKE, "node2.s9", 60000), 0);
	ck_assert_int_eq(t_lock(&t, "shop", MBOX_LOCK_REFRESH, "node1.s1", 60000), 0);
	ck_assert_int_eq(t_lock(&t, "shop", MBOX_LOCK_REFRESH, "node2.s9", 60000), -EBUSY);
	/* Only the holder releases it. */
	ck_assert_int_eq(t_lock(&t, "shop", MBOX_LOCK_RELEASE, "node2.s9", 60000), -ENOENT);
	ck_assert_int_eq(t_lock(&t, "shop", MBOX_LOCK_TAKE, "node2.s9", 60000), -EBUSY);
	ck_assert_int_eq(t_lock(&t, "shop", MBOX_LOCK_RELEASE, "node1.s1", 60000), 0);
	ck_assert_int_eq(t_lock(&t, "shop", MBOX_LOCK_TAKE, "node2.s9", 60000), 0);
	ck_assert_int_eq(t_lock(&t, "shop", MBOX_LOCK_RELEASE, "node2.s9", 60000), 0);
	/* A holder that stops refreshing loses it after the ttl. */
	ck_assert_int_eq(t_lock(&t, "shop", MBOX_LOCK_TAKE, "node1.s2", 50), 0);
	nanosleep(&lapse, NULL);
	ck_assert_int_eq(t_lock(&t, "shop", MBOX_LOCK_TAKE, "node2.s3", 60000), 0);
	ck_assert_int_eq(t_lock(&t, "shop", MBOX_LOCK_RELEASE, "node1.s2", 60000), -ENOENT);
	/* Bad arguments are refused before Redis is asked. */
	ck_assert_int_eq(mbox_lock(t.st, "shop", MBOX_LOCK_TAKE, "", 1000, on_done, NULL), -EINVAL);
	ck_assert_int_eq(mbox_lock(t.st, "shop", MBOX_LOCK_TAKE, "x", 0, on_done, NULL), -EINVAL);
	ck_assert_int_eq(mbox_lock(t.st, "a b", MBOX_LOCK_TAKE, "x", 10, on_done, NULL), -EINVAL);
	mt_close(&t);
}
END_TEST

static int
t_subscribe(struct mt *t, const char *user, const char *folder, bool on)
{
	struct res r = { 0 };

	ck_assert_int_eq(mbox_subscribe(t->st, user, folder, on, on_done, &r), 0);
	mt_wait(t, &r.done);
	return r.status;
}

/*
 * t_subs - user's subscriptions in their order as "INBOX|a|b~", a "~"
 * after a name whose folder does not exist (LSUB's \Noselect).
 */
static const char *
t_subs(struct mt *t, const char *user)
{
	static char out[4096];
	struct res r = { 0 };
	size_t off = 0;

	ck_assert_int_eq(mbox_subscriptions(t->st, user, on_subs, &r), 0);
	mt_wait(t, &r.done);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(r.subs);
	out[0] = '\0';
	for (size_t i = 0; i < r.subs->n && off < sizeof out; i++)
		off += (size_t)snprintf(out + off, sizeof out - off, "%s%s%s", i ? "|" : "",
		    r.subs->v[i].name, r.subs->v[i].exists ? "" : "~");
	mbox_subscriptions_free(r.subs);
	return out;
}

/*
 * Subscribe and unsubscribe are idempotent; the list is INBOX first, then
 * bytewise, each name with whether its folder exists; a folder that does
 * not exist may be subscribed; INBOX in any case is INBOX; users apart.
 */
START_TEST(subscriptions_idempotent_sorted)
{
	struct mt t;

	mt_open(&t, NULL);
	/* A user the store never saw: an empty list, not an error. */
	ck_assert_str_eq(t_subs(&t, "shop"), "");
	ck_assert_int_eq(t_subscribe(&t, "shop", "b", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "b", true), 0);
	ck_assert_str_eq(t_subs(&t, "shop"), "b~");
	ck_assert_int_eq(mt_int(&t, "SCARD %s", "mbx:s:shop"), 1);
	/* Subscribing makes no folder, and no user. */
	ck_assert_int_eq(mt_int(&t, "EXISTS %s", "mbx:u:shop"), 0);
	ck_assert_int_eq(mt_int(&t, "SCARD %s", "mbx:users"), 0);
	ck_assert_int_eq(t_create(&t, "shop", "b"), 0);
	ck_assert_str_eq(t_subs(&t, "shop"), "b");
	ck_assert_int_eq(t_subscribe(&t, "shop", "inBox", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "Zeta", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "a b/c", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "B", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "Entw&APw-rfe", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "Übersicht", true), 0);
	ck_assert_str_eq(t_subs(&t, "shop"), "INBOX|B~|Entw&APw-rfe~|Zeta~|a b/c~|b|"
	    "Übersicht~");
	/* Unsubscribing: in any case for INBOX, twice, or a name never subscribed. */
	ck_assert_int_eq(t_subscribe(&t, "shop", "INBOX", false), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "inbox", false), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "never", false), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "Zeta", false), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "zeta", false), 0);
	ck_assert_str_eq(t_subs(&t, "shop"), "B~|Entw&APw-rfe~|a b/c~|b|Übersicht~");
	ck_assert_int_eq(mt_int(&t, "SCARD %s", "mbx:s:shop"), 5);
	/* INBOX exists once the user has folders. */
	ck_assert_int_eq(t_subscribe(&t, "shop", "INBOX", true), 0);
	ck_assert_str_eq(t_subs(&t, "shop"), "INBOX|B~|Entw&APw-rfe~|a b/c~|b|"
	    "Übersicht~");
	/* Another user's subscriptions are its own. */
	ck_assert_int_eq(t_subscribe(&t, "blog", "b", true), 0);
	ck_assert_str_eq(t_subs(&t, "blog"), "b~");
	ck_assert_int_eq(t_subscribe(&t, "blog", "b", false), 0);
	ck_assert_str_eq(t_subs(&t, "blog"), "");
	ck_assert_int_eq(mt_int(&t, "SCARD %s", "mbx:s:shop"), 6);
	mt_close(&t);
}
END_TEST

/*
 * A deleted folder stays subscribed (exists no more); a rename takes the
 * subscriptions of the folder and of every name below it, and nothing
 * else; a rename that fails moves none; renaming INBOX moves none.
 */
START_TEST(subscriptions_survive_delete_follow_rename)
{
	struct mt t;

	mt_open(&t, NULL);
	ck_assert_int_eq(t_create(&t, "shop", "a"), 0);
	ck_assert_int_eq(t_create(&t, "shop", "a/b"), 0);
	ck_assert_int_eq(t_create(&t, "shop", "ab"), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "a", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "a/b", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "a/c/d", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "ab", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "x", true), 0);
	ck_assert_str_eq(t_subs(&t, "shop"), "a|a/b|a/c/d~|ab|x~");

	ck_assert_int_eq(t_delete(&t, "shop", "a/b"), 0);
	ck_assert_str_eq(t_subs(&t, "shop"), "a|a/b~|a/c/d~|ab|x~");
	ck_assert_int_eq(t_create(&t, "shop", "a/b"), 0);
	ck_assert_str_eq(t_subs(&t, "shop"), "a|a/b|a/c/d~|ab|x~");

	/* A clash: nothing renamed, no subscription moved. */
	ck_assert_int_eq(t_create(&t, "shop", "z/b"), 0);
	ck_assert_int_eq(t_rename(&t, "shop", "a", "z"), -EEXIST);
	ck_assert_str_eq(t_subs(&t, "shop"), "a|a/b|a/c/d~|ab|x~");
	ck_assert_int_eq(t_delete(&t, "shop", "z/b"), 0);

	/* "ab" is not below "a"; "a/c/d" is, though no folder has that name. */
	ck_assert_int_eq(t_rename(&t, "shop", "a", "z"), 0);
	ck_assert_str_eq(t_subs(&t, "shop"), "ab|x~|z|z/b|z/c/d~");

	/* Into a level below itself, where a subscribed name already is. */
	ck_assert_int_eq(t_subscribe(&t, "shop", "z/old", true), 0);
	ck_assert_int_eq(t_rename(&t, "shop", "z", "z/old"), 0);
	ck_assert_str_eq(t_subs(&t, "shop"), "ab|x~|z/old|z/old/b|z/old/c/d~|z/old/old~");

	/* Two names merging into one subscription. */
	ck_assert_int_eq(t_subscribe(&t, "shop", "y/b", true), 0);
	ck_assert_int_eq(t_rename(&t, "shop", "z/old", "y"), 0);
	ck_assert_str_eq(t_subs(&t, "shop"), "ab|x~|y|y/b|y/c/d~|y/old~");

	/* INBOX renamed: INBOX and what is below it stay subscribed, the new folder is not. */
	ck_assert_int_eq(t_subscribe(&t, "shop", "INBOX", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "INBOX/sub", true), 0);
	t_append(&t, "shop", "INBOX", MSG1, "");
	ck_assert_int_eq(t_rename(&t, "shop", "inbox", "Old"), 0);
	ck_assert_str_eq(t_subs(&t, "shop"), "INBOX|INBOX/sub~|ab|x~|y|y/b|y/c/d~|y/old~");
	ck_assert_str_eq(t_uids(&t, "shop", "Old"), "1");
	mt_close(&t);
}
END_TEST

/* fill_subscriptions - n names "f1".."fN" written straight into user's set. */
static void
fill_subscriptions(struct mt *t, const char *user, int n)
{
	static const char fill[] = "for i = 1, tonumber(ARGV[1]) do "
	    "redis.call('SADD', KEYS[1], 'f' .. i) end return redis.call('SCARD', KEYS[1])";
	char suffix[128];
	redisReply *r;

	snprintf(suffix, sizeof suffix, "mbx:s:%s", user);
	r = redis_test_cmd(t->sync, "EVAL %s 1 %s %d", fill,
	    redis_test_key(t->cfg.redis.prefix, suffix), n);
	ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
	ck_assert_int_eq(r->integer, n);
	freeReplyObject(r);
}

/* At most MBOX_SUBSCRIPTIONS_MAX names per user: -ENOSPC for a new one past it. */
START_TEST(subscriptions_limit)
{
	struct mt t;
	struct res r = { 0 };

	mt_open(&t, NULL);
	fill_subscriptions(&t, "shop", MBOX_SUBSCRIPTIONS_MAX - 1);
	ck_assert_int_eq(t_subscribe(&t, "shop", "last", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "one more", true), -ENOSPC);
	/* At the limit, a subscribed name still subscribes (idempotent) ... */
	ck_assert_int_eq(t_subscribe(&t, "shop", "last", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "f1", true), 0);
	ck_assert_int_eq(mt_int(&t, "SCARD %s", "mbx:s:shop"), MBOX_SUBSCRIPTIONS_MAX);
	/* ... another user is not affected ... */
	ck_assert_int_eq(t_subscribe(&t, "blog", "one more", true), 0);
	/* ... and one out makes room for one in. */
	ck_assert_int_eq(t_subscribe(&t, "shop", "f7", false), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "one more", true), 0);
	ck_assert_int_eq(t_subscribe(&t, "shop", "f7", true), -ENOSPC);
	/* The whole list comes back, sorted. */
	ck_assert_int_eq(mbox_subscriptions(t.st, "shop", on_subs, &r), 0);
	mt_wait(&t, &r.done);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.subs->n, MBOX_SUBSCRIPTIONS_MAX);
	for (size_t i = 1; i < r.subs->n; i++) {
		ck_assert_int_lt(strcmp(r.subs->v[i - 1].name, r.subs->v[i].name), 0);
		ck_assert(!r.subs->v[i].exists);
	}
	ck_assert_str_eq(r.subs->v[0].name, "f1");
	ck_assert_str_eq(r.subs->v[r.subs->n - 1].name, "one more");
	mbox_subscriptions_free(r.subs);
	mt_close(&t);
}
END_TEST

START_TEST(folders_create_rename_delete)
{
	struct mt t;
	struct mbox_status s, a, ab, old;
	struct res r = { 0 };

	mt_open(&t, NULL);
	ck_assert_int_eq(t_create(&t, "shop", "a"), 0);
	ck_assert_int_eq(t_create(&t, "shop", "a"), -EEXIST);
	ck_assert_int_eq(t_create(&t, "shop", "inbox"), -EEXIST);
	ck_assert_int_eq(t_create(&t, "shop", "a/b"), 0);
	ck_assert_int_eq(t_create(&t, "shop", "Entw&APw-rfe"), 0);
	ck_assert_int_eq(t_create(&t, "shop", "mit Leerzeichen"), 0);
	t_append(&t, "shop", "a/b", MSG1, "");
	ck_assert_int_eq(t_status(&t, "shop", "a", &a), 0);
	ck_assert_int_eq(t_status(&t, "shop", "a/b", &ab), 0);
	/* INBOX first, then by name. */
	ck_assert_int_eq(mbox_folders(t.st, "shop", false, on_folders, &r), 0);
	mt_wait(&t, &r.done);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.folders->n, 5);
	ck_assert_str_eq(r.folders->v[0].name, "INBOX");
	ck_assert_str_eq(r.folders->v[1].name, "Entw&APw-rfe");
	ck_assert_str_eq(r.folders->v[2].name, "a");
	ck_assert_str_eq(r.folders->v[3].name, "a/b");
	ck_assert_uint_eq(r.folders->v[3].st.exists, 1);
	mbox_folders_free(r.folders);

	/* Rename keeps UIDs and UIDVALIDITY, and takes the folders below. */
	ck_assert_int_eq(t_rename(&t, "shop", "a", "mit Leerzeichen"), -EEXIST);
	ck_assert_int_eq(t_rename(&t, "shop", "zz", "x"), -ENOENT);
	ck_assert_int_eq(t_rename(&t, "shop", "a", "c"), 0);
	ck_assert_int_eq(t_status(&t, "shop", "a", &s), -ENOENT);
	ck_assert_int_eq(t_status(&t, "shop", "a/b", &s), -ENOENT);
	ck_assert_int_eq(t_status(&t, "shop", "c", &s), 0);
	ck_assert_uint_eq(s.uidvalidity, a.uidvalidity);
	ck_assert_int_eq(t_status(&t, "shop", "c/b", &s), 0);
	ck_assert_uint_eq(s.uidvalidity, ab.uidvalidity);
	ck_assert_str_eq(t_uids(&t, "shop", "c/b"), "1");
	/* A clash below the new name changes nothing. */
	ck_assert_int_eq(t_create(&t, "shop", "d"), 0);
	ck_assert_int_eq(t_create(&t, "shop", "d/b"), 0);
	ck_assert_int_eq(t_rename(&t, "shop", "c", "d2"), 0);
	ck_assert_int_eq(t_create(&t, "shop", "e/b"), 0);
	ck_assert_int_eq(t_rename(&t, "shop", "d2", "e"), -EEXIST);
	ck_assert_int_eq(t_status(&t, "shop", "d2", &s), 0);
	ck_assert_int_eq(t_status(&t, "shop", "d2/b", &s), 0);
	ck_assert_int_eq(t_status(&t, "shop", "e", &s), -ENOENT);
	/* Into a level below itself. */
	ck_assert_int_eq(t_rename(&t, "shop", "d2", "d2/old"), 0);
	ck_assert_int_eq(t_status(&t, "shop", "d2/old/b", &s), 0);
	ck_assert_uint_eq(s.uidvalidity, ab.uidvalidity);
	ck_assert_int_eq(t_rename(&t, "shop", "d2/old", "c"), 0);
	ck_assert_str_eq(t_uids(&t, "shop", "c/b"), "1");
	ck_assert_int_eq(t_delete(&t, "shop", "d/b"), 0);
	ck_assert_int_eq(t_delete(&t, "shop", "d"), 0);
	ck_assert_int_eq(t_delete(&t, "shop", "e/b"), 0);

	/* Renaming INBOX moves its messages and leaves it empty. */
	t_append(&t, "shop", "INBOX", MSG1, "\\Seen");
	t_append(&t, "shop", "INBOX", MSG2, "");
	ck_assert_int_eq(t_rename(&t, "shop", "INBOX", "Old"), 0);
	ck_assert_str_eq(t_uids(&t, "shop", "INBOX"), "");
	ck_assert_str_eq(t_uids(&t, "shop", "Old"), "1,2");
	ck_assert_int_eq(t_status(&t, "shop", "INBOX", &s), 0);
	ck_assert_uint_eq(s.uidnext, 3);
	ck_assert_uint_eq(s.exists, 0);
	ck_assert_uint_eq(s.unseen, 0);
	ck_assert_int_eq(t_rename(&t, "shop", "Old", "INBOX"), -EEXIST);

	/* Delete: never INBOX; a name created again is a new mailbox. */
	ck_assert_int_eq(t_delete(&t, "shop", "INBOX"), -EPERM);
	ck_assert_int_eq(t_status(&t, "shop", "Old", &old), 0);
	ck_assert_int_eq(t_delete(&t, "shop", "Old"), 0);
	ck_assert_int_eq(t_delete(&t, "shop", "Old"), -ENOENT);
	ck_assert_int_eq(t_status(&t, "shop", "Old", &s), -ENOENT);
	ck_assert_int_eq(t_create(&t, "shop", "Old"), 0);
	ck_assert_int_eq(t_status(&t, "shop", "Old", &s), 0);
	ck_assert_uint_gt(s.uidvalidity, old.uidvalidity);
	ck_assert_uint_ne(s.id, old.id);
	ck_assert_uint_eq(s.uidnext, 1);
	/* Only c/b's message is left, stored once. */
	ck_assert_int_eq(blob_keys(&t), 1);

	/* A user without folders: -ENOENT, or an INBOX when asked to make one. */
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(mbox_folders(t.st, "nobody", false, on_folders, &r), 0);
	mt_wait(&t, &r.done);
	ck_assert_int_eq(r.status, -ENOENT);
	ck_assert_ptr_null(r.folders);
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(mbox_folders(t.st, "nobody", true, on_folders, &r), 0);
	mt_wait(&t, &r.done);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.folders->n, 1);
	ck_assert_str_eq(r.folders->v[0].name, "INBOX");
	mbox_folders_free(r.folders);
	mt_close(&t);
}
END_TEST

static void
max3(struct config *cfg)
{
	cfg->mailbox.max_messages = 3;
}

START_TEST(max_messages_expunges_the_oldest)
{
	struct mt t;
	char log[8192];
	char k[64];
	struct mbox_status s;
	redisReply *r;

	mt_open(&t, max3);
	logcap_read(log, sizeof log);
	for (int i = 0; i < 5; i++)
		t_append(&t, "shop", "INBOX", MSG1, "");
	ck_assert_str_eq(t_uids(&t, "shop", "INBOX"), "3,4,5");
	logcap_read(log, sizeof log);
	ck_assert_ptr_nonnull(strstr(log, "event=mailbox_expired user=\"shop\" folder=\"INBOX\" uid=1 reason=max_messages"));
	ck_assert_ptr_nonnull(strstr(log, "event=mailbox_expired user=\"shop\" folder=\"INBOX\" uid=2 reason=max_messages"));
	ck_assert_ptr_null(strstr(log, "uid=3 "));
	/* Recorded like any expunge. */
	ck_assert_int_eq(t_status(&t, "shop", "INBOX", &s), 0);
	snprintf(k, sizeof k, "mbx:v:%" PRIu64, s.id);
	r = redis_test_cmd(t.sync, "ZRANGE %s 0 -1", redis_test_key(t.cfg.redis.prefix, k));
	ck_assert_uint_eq(r->elements, 2);
	ck_assert_str_eq(r->element[0]->str, "1");
	ck_assert_str_eq(r->element[1]->str, "2");
	freeReplyObject(r);
	ck_assert_int_eq(blob_keys(&t), 3);
	/* Over all folders of the user. */
	ck_assert_int_eq(t_create(&t, "shop", "Later"), 0);
	t_append(&t, "shop", "Later", MSG2, "");
	ck_assert_str_eq(t_uids(&t, "shop", "INBOX"), "4,5");
	ck_assert_str_eq(t_uids(&t, "shop", "Later"), "1");
	/* A reloaded limit holds from the next call on. */
	mbox_set_limits(t.st, t.cfg.mailbox.retention_ms, 2);
	t_append(&t, "shop", "Later", MSG2, "");
	ck_assert_str_eq(t_uids(&t, "shop", "INBOX"), "");
	ck_assert_str_eq(t_uids(&t, "shop", "Later"), "1,2");
	mbox_set_limits(t.st, t.cfg.mailbox.retention_ms, 0);
	for (int i = 0; i < 4; i++)
		t_append(&t, "shop", "INBOX", MSG1, "");
	ck_assert_str_eq(t_uids(&t, "shop", "INBOX"), "6,7,8,9");
	mt_close(&t);
}
END_TEST

START_TEST(retention_trims_old_messages)
{
	struct mt t;
	char log[8192];
	uint64_t now = now_ms();
	uint32_t uid;

	mt_open(&t, NULL);
	logcap_read(log, sizeof log);
	/* An old message is not expunged by its own append ... */
	ck_assert_int_eq(t_append_on(&t, t.st, "shop", "INBOX", MSG1, "", now - 40 * DAY, NULL,
	    &uid), 0);
	ck_assert_int_eq(t_append_on(&t, t.st, "u2", "INBOX", MSG1, "", now - 29 * DAY, NULL,
	    &uid), 0);
	ck_assert_str_eq(t_uids(&t, "shop", "INBOX"), "1");
	/* ... but by the next trim. */
	ck_assert_int_eq(t_trim(&t, now), 1);
	ck_assert_str_eq(t_uids(&t, "shop", "INBOX"), "");
	ck_assert_str_eq(t_uids(&t, "u2", "INBOX"), "1");
	logcap_read(log, sizeof log);
	ck_assert_ptr_nonnull(strstr(log, "event=mailbox_expired user=\"shop\" folder=\"INBOX\" uid=1 reason=retention"));
	t_append(&t, "shop", "INBOX", MSG2, "");
	/* Two days later u2's message is past it too. */
	ck_assert_int_eq(t_trim(&t, now + 2 * DAY), 1);
	ck_assert_str_eq(t_uids(&t, "u2", "INBOX"), "");
	ck_assert_int_eq(t_trim(&t, now + 2 * DAY), 0);
	/* The UIDs vanished long ago are forgotten, and the floor says so. */
	ck_assert_int_eq(t_trim(&t, now + 40 * DAY), 1);
	{
		struct mbox_status s;

		ck_assert_int_eq(t_status(&t, "shop", "INBOX", &s), 0);
		ck_assert_uint_eq(s.vanished_floor, 3);
		ck_assert_uint_eq(s.exists, 0);
		ck_assert_uint_eq(s.highestmodseq, 5);
	}
	/* An append expunges the user's other messages past the retention. */
	ck_assert_int_eq(t_append_on(&t, t.st, "u3", "INBOX", MSG1, "", now - 31 * DAY, NULL,
	    &uid), 0);
	ck_assert_int_eq(t_append_on(&t, t.st, "u3", "INBOX", MSG1, "", now - 32 * DAY, NULL,
	    &uid), 0);
	ck_assert_str_eq(t_uids(&t, "u3", "INBOX"), "2");
	t_append(&t, "u3", "INBOX", MSG2, "");
	ck_assert_str_eq(t_uids(&t, "u3", "INBOX"), "3");
	mt_close(&t);
}
END_TEST

struct burst {
	size_t n;
	uint32_t uids[200];
	int bad;
};

static void
on_burst(void *arg, int status, uint32_t uv, uint32_t uid)
{
	struct burst *b = arg;

	(void)uv;
	if (status != 0)
		b->bad++;
	else
		b->uids[b->n] = uid;
	b->n++;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

START_TEST(concurrent_appends_get_distinct_uids)
{
	struct mt t;
	struct mbox_store *st2;
	struct burst b1 = { 0 }, b2 = { 0 };
	struct mbox_append a = { .user = "shop", .folder = "INBOX", .data = MSG1,
		.len = strlen(MSG1), .flags = "" };
	uint32_t all[200];
	bool done = false;

	mt_open(&t, NULL);
	mt_open_on(&t, &st2);
	/* Interleaved on two connections, every append in flight at once. */
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(mbox_append(t.st, &a, on_burst, &b1), 0);
		ck_assert_int_eq(mbox_append(st2, &a, on_burst, &b2), 0);
	}
	for (int i = 0; i < 1000 && b1.n + b2.n < 200; i++)
		redis_test_sleep(&t.loop, 10);
	done = b1.n + b2.n == 200;
	ck_assert_msg(done, "only %zu of 200 appends answered", b1.n + b2.n);
	ck_assert_int_eq(b1.bad + b2.bad, 0);
	memcpy(all, b1.uids, b1.n * sizeof all[0]);
	memcpy(all + b1.n, b2.uids, b2.n * sizeof all[0]);
	qsort(all, 200, sizeof all[0], cmp_u32);
	for (uint32_t i = 0; i < 200; i++)
		ck_assert_uint_eq(all[i], i + 1);
	mt_close_store(&t, st2);
	mt_close(&t);
}
END_TEST

START_TEST(changes_are_announced)
{
	struct mt t;
	redisContext *sub;
	redisReply *r;
	char chan[128];
	struct mbox_status s;
	struct timeval tv = { 5, 0 };
	struct mbox_flags_result *f;
	struct mbox_uids *u;
	const char *want[4];
	char buf[4][128];

	mt_open(&t, NULL);
	ck_assert_int_eq(mbox_channel(t.st, "shop", chan, sizeof chan), 0);
	ck_assert_int_eq(mbox_channel(t.st, "bad user", chan + 100, 20), -EINVAL);
	sub = redis_test_connect(&t.cfg);
	redisSetTimeout(sub, tv);
	r = redisCommand(sub, "SUBSCRIBE %s", chan);
	ck_assert_ptr_nonnull(r);
	freeReplyObject(r);
	t_append(&t, "shop", "INBOX", MSG1, "");
	t_append(&t, "shop", "INBOX", MSG1, "");
	f = t_flags(&t, "shop", "INBOX", MBOX_FLAGS_ADD, "\\Deleted", 1, 2, 0);
	mbox_flags_result_free(f);
	u = t_expunge(&t, "shop", "INBOX", 1, UINT32_MAX, false);
	mbox_uids_free(u);
	ck_assert_int_eq(t_status(&t, "shop", "INBOX", &s), 0);
	snprintf(buf[0], sizeof buf[0], "append %" PRIu64 " 2 1 INBOX", s.id);
	snprintf(buf[1], sizeof buf[1], "append %" PRIu64 " 3 2 INBOX", s.id);
	snprintf(buf[2], sizeof buf[2], "flags %" PRIu64 " 4 1:2 INBOX", s.id);
	snprintf(buf[3], sizeof buf[3], "expunge %" PRIu64 " 5 1:2 INBOX", s.id);
	for (int i = 0; i < 4; i++) {
		want[i] = buf[i];
		ck_assert_int_eq(redisGetReply(sub, (void **)&r), REDIS_OK);
		ck_assert_uint_eq(r->elements, 3);
		ck_assert_str_eq(r->element[0]->str, "message");
		ck_assert_str_eq(r->element[1]->str, chan);
		ck_assert_str_eq(r->element[2]->str, want[i]);
		freeReplyObject(r);
	}
	redisFree(sub);
	mt_close(&t);
}
END_TEST

START_TEST(stats_count_users_messages_bytes)
{
	struct mt t;
	struct res r = { 0 };
	int status;
	struct mbox_copy_result *c;

	mt_open(&t, NULL);
	t_append(&t, "shop", "INBOX", MSG1, "");
	t_append(&t, "shop", "INBOX", MSG2, "");
	t_append(&t, "admin", "INBOX", MSG1, "");
	ck_assert_int_eq(t_create(&t, "admin", "Copies"), 0);
	c = t_copy(&t, false, "admin", "INBOX", "Copies", 1, 1, &status);
	mbox_copy_result_free(c);
	ck_assert_int_eq(mbox_stats(t.st, on_stats, &r), 0);
	mt_wait(&t, &r.done);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.stats->users, 2);
	ck_assert_uint_eq(r.stats->messages, 4);
	ck_assert_uint_eq(r.stats->bytes, 3 * strlen(MSG1) + strlen(MSG2));
	ck_assert_uint_eq(r.stats->n, 2);
	ck_assert_str_eq(r.stats->v[0].user, "admin");
	ck_assert_uint_eq(r.stats->v[0].folders, 2);
	ck_assert_uint_eq(r.stats->v[0].messages, 2);
	ck_assert_str_eq(r.stats->v[1].user, "shop");
	ck_assert_uint_eq(r.stats->v[1].bytes, strlen(MSG1) + strlen(MSG2));
	mbox_stats_free(r.stats);
	mt_close(&t);
}
END_TEST

static void
never(void *arg, int status, uint32_t uv, uint32_t uid)
{
	(void)arg, (void)status, (void)uv, (void)uid;
	ck_abort_msg("callback of a refused call");
}

START_TEST(bad_names_are_refused)
{
	struct mt t;
	static const char *const users[] = { "", "bad user", "a/b", "x:y",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
	static const char *const folders[] = { "", "/a", "a/", "a//b", "a\r\nb", "tab\there",
		"del\x7f" };
	static const char *const flags[] = { "\\Recent", "(x", "a\"b", "\\", "x]", "a\\b",
		"\\Seen\r\n" };
	struct mbox_append a = { .user = "shop", .folder = "INBOX", .data = MSG1,
		.len = strlen(MSG1), .flags = "" };
	char longname[MBOX_FOLDER_MAX + 2];

	mt_open(&t, NULL);
	for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
		a.user = users[i];
		ck_assert_int_eq(mbox_append(t.st, &a, never, NULL), -EINVAL);
	}
	a.user = "shop";
	for (size_t i = 0; i < sizeof folders / sizeof folders[0]; i++) {
		a.folder = folders[i];
		ck_assert_int_eq(mbox_append(t.st, &a, never, NULL), -EINVAL);
		ck_assert(!mbox_valid_folder(folders[i]));
	}
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	ck_assert(!mbox_valid_folder(longname));
	longname[MBOX_FOLDER_MAX] = '\0';
	ck_assert(mbox_valid_folder(longname));
	a.folder = "INBOX";
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
		a.flags = flags[i];
		ck_assert_int_eq(mbox_append(t.st, &a, never, NULL), -EINVAL);
	}
	ck_assert(mbox_valid_flags(""));
	{
		char many[MBOX_FLAGS_MAX + 2];

		memset(many, 'k', sizeof many - 1);
		many[sizeof many - 1] = '\0';
		ck_assert(!mbox_valid_flags(many));
		many[MBOX_FLAGS_MAX] = '\0';
		ck_assert(mbox_valid_flags(many));
	}
	ck_assert(mbox_valid_flags("\\Seen  $Junk NonJunk \\Answered"));
	ck_assert(mbox_valid_folder("Entw&APw-rfe/Sub folder [x]"));
	ck_assert(mbox_valid_folder("Ünïcödé"));
	ck_assert_int_eq(mbox_fetch(t.st, "shop", "INBOX", 0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(mbox_create(t.st, "shop", "a//b", NULL, NULL), -EINVAL);
	ck_assert_int_eq(mbox_rename(t.st, "shop", "INBOX", "", NULL, NULL), -EINVAL);
	for (size_t i = 0; i < sizeof folders / sizeof folders[0]; i++) {
		ck_assert_int_eq(mbox_subscribe(t.st, "shop", folders[i], true, NULL, NULL), -EINVAL);
		ck_assert_int_eq(mbox_subscribe(t.st, "shop", folders[i], false, NULL, NULL),
		    -EINVAL);
	}
	/* One byte past MBOX_FOLDER_MAX, and no name at all. */
	longname[MBOX_FOLDER_MAX] = 'a';
	ck_assert_int_eq(mbox_subscribe(t.st, "shop", longname, true, NULL, NULL), -EINVAL);
	ck_assert_int_eq(mbox_subscribe(t.st, "shop", NULL, true, NULL, NULL), -EINVAL);
	for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
		ck_assert_int_eq(mbox_subscribe(t.st, users[i], "INBOX", true, NULL, NULL), -EINVAL);
		ck_assert_int_eq(mbox_subscriptions(t.st, users[i], NULL, NULL), -EINVAL);
	}
	/* Nothing was written. */
	{
		char pattern[128];
		redisReply *r;

		snprintf(pattern, sizeof pattern, "%s*", t.cfg.redis.prefix);
		r = redis_test_cmd(t.sync, "KEYS %s", pattern);
		ck_assert_uint_eq(r->elements, 0);
		freeReplyObject(r);
	}
	mt_close(&t);
}
END_TEST

struct counted {
	int calls;
	int status;
};

static void
on_counted(void *arg, int status, uint32_t uv, uint32_t uid)
{
	struct counted *c = arg;

	(void)uv, (void)uid;
	c->calls++;
	c->status = status;
}

START_TEST(close_answers_what_is_pending)
{
	struct mt t;
	struct mbox_store *st2;
	struct counted c = { 0, 1 };
	struct mbox_append a = { .user = "shop", .folder = "INBOX", .data = MSG1,
		.len = strlen(MSG1), .flags = "" };

	mt_open(&t, NULL);
	mt_open_on(&t, &st2);
	ck_assert_int_eq(mbox_append(st2, &a, on_counted, &c), 0);
	mt_close_store(&t, st2);
	redis_test_sleep(&t.loop, 50);
	ck_assert_int_eq(c.calls, 1);
	ck_assert(c.status == 0 || c.status == -ECANCELED);
	mt_close(&t);
}
END_TEST

START_TEST(binary_and_large_messages_round_trip)
{
	struct mt t;
	size_t len = 3 * 1024 * 1024;
	char *big = malloc(len);
	struct mbox_append a = { .user = "shop", .folder = "INBOX", .data = big, .len = len,
		.flags = "" };
	struct res r = { 0 };
	struct mbox_body *b;
	int status;

	ck_assert_ptr_nonnull(big);
	for (size_t i = 0; i < len; i++)
		big[i] = (char)(i * 7 + (i >> 9));
	mt_open(&t, NULL);
	ck_assert_int_eq(mbox_append(t.st, &a, on_append, &r), 0);
	mt_wait(&t, &r.done);
	ck_assert_int_eq(r.status, 0);
	b = t_fetch(&t, "shop", "INBOX", r.uid, &status);
	ck_assert_int_eq(status, 0);
	ck_assert_uint_eq(b->len, len);
	ck_assert_uint_eq(b->m.size, len);
	ck_assert(memcmp(b->data, big, len) == 0);
	mbox_body_free(b);
	/* An empty message is a message too. */
	a.data = NULL;
	a.len = 0;
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(mbox_append(t.st, &a, on_append, &r), 0);
	mt_wait(&t, &r.done);
	ck_assert_int_eq(r.status, 0);
	b = t_fetch(&t, "shop", "INBOX", r.uid, &status);
	ck_assert_uint_eq(b->len, 0);
	ck_assert_str_eq(b->data, "");
	mbox_body_free(b);
	free(big);
	mt_close(&t);
}
END_TEST

static void
stop_loop(uv_timer_t *tm)
{
	uv_stop(tm->loop);
}

START_TEST(down_redis_refuses_at_once)
{
	uv_loop_t loop;
	struct config cfg;
	struct mbox_store *st;
	struct mbox_append a = { .user = "shop", .folder = "INBOX", .data = MSG1,
		.len = strlen(MSG1), .flags = "" };
	const char *why;
	bool closed = false;
	uv_timer_t tm;
	char err[128];

	config_defaults(&cfg);
	ck_assert_int_eq(config_parse_endpoint("127.0.0.1:1", false, &cfg.redis.address, &why), 0);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(mbox_store_open(&st, &loop, &cfg, err, sizeof err), 0);
	uv_timer_init(&loop, &tm);
	uv_timer_start(&tm, stop_loop, 300, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert(!mbox_is_up(st));
	ck_assert_int_eq(mbox_append(st, &a, never, NULL), -ENOTCONN);
	ck_assert_int_eq(mbox_status(st, "shop", "INBOX", NULL, NULL), -ENOTCONN);
	ck_assert_int_eq(mbox_list(st, "shop", "INBOX", NULL, 0, 0, NULL, NULL), -ENOTCONN);
	ck_assert_int_eq(mbox_fetch(st, "shop", "INBOX", 1, NULL, NULL), -ENOTCONN);
	ck_assert_int_eq(mbox_create(st, "shop", "x", NULL, NULL), -ENOTCONN);
	ck_assert_int_eq(mbox_expunge(st, "shop", "x", NULL, 0, false, NULL, NULL), -ENOTCONN);
	ck_assert_int_eq(mbox_trim(st, 1, NULL, NULL), -ENOTCONN);
	ck_assert_int_eq(mbox_stats(st, NULL, NULL), -ENOTCONN);
	uv_close((uv_handle_t *)&tm, NULL);
	mbox_store_close(st, redis_test_on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert(closed);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	config_free(&cfg);
}
END_TEST

Suite *
store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("redis");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, unit_pool_fresh, NULL);
	tcase_add_checked_fixture(tc, logcap_setup, logcap_teardown);
	tcase_add_test(tc, append_assigns_uids_and_modseq);
	tcase_add_test(tc, dedup_key_stores_once);
	tcase_add_test(tc, flags_set_add_remove_unchangedsince);
	tcase_add_test(tc, copy_shares_the_raw_bytes);
	tcase_add_test(tc, descriptions_stored_with_the_bytes);
	tcase_add_test(tc, uidlist_uids_first_unseen_sizes);
	tcase_add_test(tc, move_expunges_and_remembers);
	tcase_add_test(tc, expunge_takes_deleted_only);
	tcase_add_test(tc, folders_create_rename_delete);
	tcase_add_test(tc, maildrop_lock_one_holder);
	tcase_add_test(tc, subscriptions_idempotent_sorted);
	tcase_add_test(tc, subscriptions_survive_delete_follow_rename);
	tcase_add_test(tc, subscriptions_limit);
	tcase_add_test(tc, max_messages_expunges_the_oldest);
	tcase_add_test(tc, retention_trims_old_messages);
	tcase_add_test(tc, concurrent_appends_get_distinct_uids);
	tcase_add_test(tc, changes_are_announced);
	tcase_add_test(tc, stats_count_users_messages_bytes);
	tcase_add_test(tc, bad_names_are_refused);
	tcase_add_test(tc, down_redis_refuses_at_once);
	tcase_add_test(tc, close_answers_what_is_pending);
	tcase_add_test(tc, binary_and_large_messages_round_trip);
	suite_add_tcase(s, tc);
	return s;
}
