/*
 * store_admin - the mailbox store's upkeep and figures: mbox_trim (the
 * limits over every user, one script per user) and mbox_stats.  See
 * store.h for the contract.
 */
#include "mailbox/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rdb.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "mailbox/store_int.h"

/* --- limits and stats ------------------------------------------------------------- */

/*
 * A trim is one SMEMBERS of the users, then one trim script per user, all
 * sent at once: each script holds Redis only as long as one user's
 * limits take, never as long as every user's.
 */
struct trim {
	mbox_count_cb *cb;
	void *arg;
	uint64_t now;
	size_t pending;         /* user scripts not answered yet */
	int64_t count;          /* messages expunged */
	int status;             /* the first failure */
};

static void
trim_done(struct trim *tr)
{
	tr->cb(tr->arg, tr->status < 0 ? tr->status : tr->count);
	free(tr);
}

static void
on_trim_user(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	struct trim *tr = req->arg;

	status = mbox__status("trim", status, r);
	if (status == 0) {
		for (size_t i = 0; i + 3 < r->elements; i += 4) {
			redisReply sub = { .type = REDIS_REPLY_ARRAY, .elements = 3,
				.element = &r->element[i + 1] };

			tr->count += (int64_t)mbox__log_expired(req->user, &sub, 0);
		}
	} else if (tr->status == 0) {
		tr->status = status;
	}
	free(req);
	if (--tr->pending == 0)
		trim_done(tr);
}

static int
trim_user(struct mbox_store *st, struct trim *tr, const char *user)
{
	struct mbox__args a;
	struct mbox__req *req = mbox__req_new(st, user, tr);

	mbox__args_init(&a, st);
	mbox__argu(&a, tr->now);
	mbox__argu(&a, st->cfg.mailbox.retention_ms);
	mbox__argu(&a, st->cfg.mailbox.max_messages);
	mbox__args(&a, user);
	return mbox__eval(st, &mbox__s_trim, &a, on_trim_user, req);
}

static void
on_trim_users(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	struct mbox_store *st = req->st;
	struct trim *tr = xcalloc(1, sizeof *tr);

	tr->cb = req->cb.count;
	tr->arg = req->arg;
	tr->now = req->now;
	free(req);
	status = mbox__status("trim", status, r);
	if (status < 0) {
		tr->status = status;
		trim_done(tr);
		return;
	}
	/* One extra count held while sending, so no answer ends it early. */
	tr->pending = 1;
	for (size_t i = 0; i < r->elements; i++) {
		const char *u;
		size_t len;
		char user[STR_USERNAME_MAX + 1];
		int rc;

		if (!rdb_reply_str(r->element[i], &u, &len) ||
		    str_copyn(user, u, len, sizeof user) < 0 || !str_is_username(user))
			continue;
		tr->pending++;
		if ((rc = trim_user(st, tr, user)) < 0) {
			tr->pending--;
			tr->status = rc;
			break;
		}
	}
	if (--tr->pending == 0)
		trim_done(tr);
}

int
mbox_trim(struct mbox_store *st, uint64_t now_ms, mbox_count_cb *done, void *arg)
{
	struct mbox__req *req = mbox__req_new(st, NULL, arg);
	char key[128];
	int rc;

	req->cb.count = done;
	req->now = now_ms;
	snprintf(key, sizeof key, "%smbx:users", st->cfg.redis.prefix);
	if ((rc = rdb_cmdf(st->db, on_trim_users, req, "SMEMBERS %s", key)) < 0)
		free(req);
	return rc;
}

void
mbox_stats_free(struct mbox_stats *s)
{
	if (s == NULL)
		return;
	free(s->v);
	free(s);
}

static void
on_stats(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	struct mbox_stats *s = NULL;

	status = mbox__status("stats", status, r);
	if (status == 0) {
		s = xcalloc(1, sizeof *s);
		if (!mbox__u64(r, 0, &s->users) || !mbox__u64(r, 1, &s->messages) ||
		    !mbox__u64(r, 2, &s->bytes) || !rdb_reply_array(r, 4) ||
		    r->element[3]->type != REDIS_REPLY_ARRAY) {
			log_error("mailbox", "bad_reply", "op=stats");
			free(s);
			s = NULL;
			status = -EIO;
		}
	}
	if (status == 0) {
		const redisReply *per = r->element[3];

		s->v = xcalloc(per->elements ? per->elements : 1, sizeof *s->v);
		for (size_t i = 0; i < per->elements; i++) {
			const redisReply *e = per->element[i];
			struct mbox_user_stats *u = &s->v[s->n];
			const char *name;
			size_t len;

			if (!rdb_reply_array(e, 4) || !rdb_reply_str(e->element[0], &name, &len) ||
			    !mbox__u32(e, 1, &u->folders) || !mbox__u64(e, 2, &u->messages) ||
			    !mbox__u64(e, 3, &u->bytes))
				continue;
			str_copyn(u->user, name, len, sizeof u->user);
			s->n++;
		}
	}
	req->cb.stats(req->arg, status, s);
	free(req);
}

int
mbox_stats(struct mbox_store *st, mbox_stats_cb *done, void *arg)
{
	struct mbox__args a;
	struct mbox__req *req = mbox__req_new(st, NULL, arg);

	req->cb.stats = done;
	mbox__args_init(&a, st);
	return mbox__eval(st, &mbox__s_stats, &a, on_stats, req);
}
