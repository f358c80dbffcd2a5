/*
 * store_ops - the mailbox store's changes beyond append: flags (with
 * UNCHANGEDSINCE), copy and move (COPYUID), expunge, the folder
 * operations create, rename and delete, the maildrop lock and the IMAP
 * subscriptions.  Each is one script of mailbox/lua/; see store.h for
 * the contract.
 */
#include "mailbox/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rdb.h"
#include "core/xmalloc.h"
#include "mailbox/store_int.h"

/* --- flags ------------------------------------------------------------------------ */

static const char *const flag_ops[] = {
	[MBOX_FLAGS_SET] = "set",
	[MBOX_FLAGS_ADD] = "add",
	[MBOX_FLAGS_REMOVE] = "remove",
};

void
mbox_flags_result_free(struct mbox_flags_result *res)
{
	if (res == NULL)
		return;
	for (size_t i = 0; i < res->n; i++)
		free(res->v[i].flags);
	free(res->v);
	free(res->failed);
	free(res);
}

static void
on_flags(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	struct mbox_flags_result *res = NULL;

	status = mbox__status("flags", status, r);
	if (status == 0 && (!rdb_reply_array(r, 3) || r->element[1]->type != REDIS_REPLY_ARRAY ||
	    r->element[2]->type != REDIS_REPLY_ARRAY)) {
		log_error("mailbox", "bad_reply", "op=flags");
		status = -EIO;
	}
	if (status == 0) {
		const redisReply *done = r->element[1], *failed = r->element[2];

		res = xcalloc(1, sizeof *res);
		mbox__u64(r, 0, &res->highestmodseq);
		res->v = xcalloc(done->elements ? done->elements : 1, sizeof *res->v);
		for (size_t i = 0; i < done->elements; i++) {
			const redisReply *e = done->element[i];
			struct mbox_msg *m = &res->v[res->n];

			if (!rdb_reply_array(e, 3) || !mbox__u32(e, 0, &m->uid) ||
			    !mbox__u64(e, 1, &m->modseq))
				continue;
			m->flags = mbox__strdup(e, 2, NULL);
			res->n++;
		}
		res->failed = xcalloc(failed->elements ? failed->elements : 1, sizeof *res->failed);
		for (size_t i = 0; i < failed->elements; i++)
			if (mbox__u32(failed, i, &res->failed[res->nfailed]))
				res->nfailed++;
	}
	req->cb.flags(req->arg, status, res);
	free(req);
}

int
mbox_store_flags(struct mbox_store *st, const struct mbox_flags_req *r,
    mbox_flags_cb *done, void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	const char *flags = r->flags != NULL ? r->flags : "";
	int rc;

	if ((rc = mbox__check(r->user, r->folder)) < 0)
		return rc;
	if (!mbox_valid_flags(flags) || (unsigned)r->op > MBOX_FLAGS_REMOVE ||
	    (r->nranges > 0 && r->ranges == NULL))
		return -EINVAL;
	req = mbox__req_start(st, &a, r->user, r->folder, arg);
	req->cb.flags = done;
	mbox__args(&a, flag_ops[r->op]);
	mbox__args(&a, flags);
	mbox__argu(&a, r->unchangedsince);
	mbox__arg_ranges(&a, r->ranges, r->nranges);
	return mbox__eval(st, &mbox__s_flags, &a, on_flags, req);
}

/* --- copy and move ---------------------------------------------------------------- */

void
mbox_copy_result_free(struct mbox_copy_result *res)
{
	if (res == NULL)
		return;
	free(res->from);
	free(res->to);
	free(res);
}

static void
on_copy(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	struct mbox_copy_result *res = NULL;

	status = mbox__status("copy", status, r);
	if (status == 0 && (!rdb_reply_array(r, 3) || r->element[1]->type != REDIS_REPLY_ARRAY)) {
		log_error("mailbox", "bad_reply", "op=copy");
		status = -EIO;
	}
	if (status == 0) {
		const redisReply *pairs = r->element[1];
		size_t cap = pairs->elements ? pairs->elements : 1;

		res = xcalloc(1, sizeof *res);
		mbox__u32(r, 0, &res->uidvalidity);
		mbox__u64(r, 2, &res->expunge_modseq);
		res->from = xcalloc(cap, sizeof *res->from);
		res->to = xcalloc(cap, sizeof *res->to);
		for (size_t i = 0; i < pairs->elements; i++) {
			const redisReply *e = pairs->element[i];

			if (mbox__u32(e, 0, &res->from[res->n]) && mbox__u32(e, 1, &res->to[res->n]))
				res->n++;
		}
		mbox__log_expired(req->user, r, 3);
	}
	req->cb.copy(req->arg, status, res);
	free(req);
}

static int
copy_or_move(struct mbox_store *st, const char *user, const char *from, const char *to,
    const struct mbox_range *ranges, size_t nranges, bool move, mbox_copy_cb *done,
    void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, from)) < 0 || (rc = mbox__check(user, to)) < 0)
		return rc;
	if (nranges > 0 && ranges == NULL)
		return -EINVAL;
	req = mbox__req_start(st, &a, user, from, arg);
	req->cb.copy = done;
	mbox__args(&a, mbox__folder(to));
	mbox__args(&a, move ? "1" : "0");
	mbox__argu(&a, mbox__now());
	mbox__argu(&a, st->cfg.mailbox.retention_ms);
	mbox__argu(&a, st->cfg.mailbox.max_messages);
	mbox__arg_ranges(&a, ranges, nranges);
	return mbox__eval(st, &mbox__s_copy, &a, on_copy, req);
}

int
mbox_copy(struct mbox_store *st, const char *user, const char *from, const char *to,
    const struct mbox_range *ranges, size_t nranges, mbox_copy_cb *done, void *arg)
{
	return copy_or_move(st, user, from, to, ranges, nranges, false, done, arg);
}

int
mbox_move(struct mbox_store *st, const char *user, const char *from, const char *to,
    const struct mbox_range *ranges, size_t nranges, mbox_copy_cb *done, void *arg)
{
	return copy_or_move(st, user, from, to, ranges, nranges, true, done, arg);
}

/* --- expunge ---------------------------------------------------------------------- */

void
mbox_uids_free(struct mbox_uids *res)
{
	if (res == NULL)
		return;
	free(res->v);
	free(res);
}

static void
on_expunge(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	struct mbox_uids *res = NULL;

	status = mbox__status("expunge", status, r);
	if (status == 0) {
		res = xcalloc(1, sizeof *res);
		mbox__u64(r, 0, &res->modseq);
		res->v = xcalloc(r->elements ? r->elements : 1, sizeof *res->v);
		for (size_t i = 1; i < r->elements; i++)
			if (mbox__u32(r, i, &res->v[res->n]))
				res->n++;
	}
	req->cb.uids(req->arg, status, res);
	free(req);
}

int
mbox_expunge(struct mbox_store *st, const char *user, const char *folder,
    const struct mbox_range *ranges, size_t nranges, bool force, mbox_uids_cb *done,
    void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, folder)) < 0)
		return rc;
	if (nranges > 0 && ranges == NULL)
		return -EINVAL;
	req = mbox__req_start(st, &a, user, folder, arg);
	req->cb.uids = done;
	mbox__args(&a, force ? "1" : "0");
	mbox__argu(&a, mbox__now());
	mbox__argu(&a, st->cfg.mailbox.retention_ms);
	mbox__arg_ranges(&a, ranges, nranges);
	return mbox__eval(st, &mbox__s_expunge, &a, on_expunge, req);
}

int
mbox_vanished(struct mbox_store *st, const char *user, const char *folder,
    uint64_t since, const struct mbox_range *ranges, size_t nranges, mbox_uids_cb *done,
    void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, folder)) < 0)
		return rc;
	if (nranges > 0 && ranges == NULL)
		return -EINVAL;
	req = mbox__req_start(st, &a, user, folder, arg);
	req->cb.uids = done;
	mbox__argu(&a, since);
	mbox__arg_ranges(&a, ranges, nranges);
	/* The same reply shape as expunge's: { floor, uid... }. */
	return mbox__eval(st, &mbox__s_vanished, &a, on_expunge, req);
}

/* --- folders ---------------------------------------------------------------------- */

static void
on_done(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;

	status = mbox__status("folder", status, r);
	req->cb.done(req->arg, status);
	free(req);
}

int
mbox_create(struct mbox_store *st, const char *user, const char *folder,
    mbox_done_cb *done, void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, folder)) < 0)
		return rc;
	req = mbox__req_start(st, &a, user, folder, arg);
	req->cb.done = done;
	mbox__argu(&a, mbox__now());
	return mbox__eval(st, &mbox__s_create, &a, on_done, req);
}

int
mbox_rename(struct mbox_store *st, const char *user, const char *from, const char *to,
    mbox_done_cb *done, void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, from)) < 0 || (rc = mbox__check(user, to)) < 0)
		return rc;
	req = mbox__req_start(st, &a, user, from, arg);
	req->cb.done = done;
	mbox__args(&a, mbox__folder(to));
	mbox__argu(&a, mbox__now());
	return mbox__eval(st, &mbox__s_rename, &a, on_done, req);
}

int
mbox_delete(struct mbox_store *st, const char *user, const char *folder,
    mbox_done_cb *done, void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, folder)) < 0)
		return rc;
	req = mbox__req_start(st, &a, user, folder, arg);
	req->cb.done = done;
	return mbox__eval(st, &mbox__s_delete, &a, on_done, req);
}

/* --- the maildrop lock --------------------------------------------------------------- */

static void
on_lock(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	uint64_t held = 0;

	status = mbox__status("lock", status, r);
	if (status == 0 && !mbox__u64(r, 0, &held))
		status = -EIO;
	req->cb.done(req->arg, status == 0 && held == 0 ? -ENOENT : status);
	free(req);
}

int
mbox_lock(struct mbox_store *st, const char *user, enum mbox_lock_op op, const char *token,
    uint64_t ttl_ms, mbox_done_cb *done, void *arg)
{
	static const char *const ops[] = { "take", "refresh", "release" };
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, NULL)) < 0)
		return rc;
	if ((unsigned)op >= sizeof ops / sizeof ops[0] || token == NULL || token[0] == '\0' ||
	    strlen(token) > MBOX_LOCK_TOKEN_MAX || ttl_ms == 0)
		return -EINVAL;
	req = mbox__req_start(st, &a, user, NULL, arg);
	req->cb.done = done;
	mbox__args(&a, ops[op]);
	mbox__args(&a, token);
	mbox__argu(&a, ttl_ms);
	return mbox__eval(st, &mbox__s_lock, &a, on_lock, req);
}

/* --- subscriptions ------------------------------------------------------------------- */

int
mbox_subscribe(struct mbox_store *st, const char *user, const char *folder, bool on,
    mbox_done_cb *done, void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if (folder == NULL)
		return -EINVAL;
	if ((rc = mbox__check(user, folder)) < 0)
		return rc;
	req = mbox__req_start(st, &a, user, NULL, arg);
	req->cb.done = done;
	mbox__args(&a, on ? "on" : "off");
	mbox__args(&a, mbox__folder(folder));
	mbox__argu(&a, MBOX_SUBSCRIPTIONS_MAX);
	/* { 1 } changed, { 0 } already so: both are success to the caller. */
	return mbox__eval(st, &mbox__s_subscribe, &a, on_done, req);
}

void
mbox_subscriptions_free(struct mbox_subscriptions *list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < list->n; i++)
		free(list->v[i].name);
	free(list->v);
	free(list);
}

/* INBOX first, then bytewise (the order of mbox_folders). */
static int
cmp_subscription(const void *pa, const void *pb)
{
	const struct mbox_subscription *a = pa, *b = pb;
	bool ia = strcmp(a->name, "INBOX") == 0, ib = strcmp(b->name, "INBOX") == 0;

	if (ia || ib)
		return (int)ib - (int)ia;
	return strcmp(a->name, b->name);
}

static void
on_subscriptions(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	struct mbox_subscriptions *list = NULL;

	status = mbox__status("subscriptions", status, r);
	if (status == 0 && r->elements % 2 != 0) {
		log_error("mailbox", "bad_reply", "op=subscriptions");
		status = -EIO;
	}
	if (status == 0) {
		size_t cap = r->elements / 2;

		list = xcalloc(1, sizeof *list);
		list->v = xcalloc(cap ? cap : 1, sizeof *list->v);
		for (size_t i = 0; i + 1 < r->elements; i += 2) {
			struct mbox_subscription *s = &list->v[list->n];
			uint64_t exists;

			if (r->element[i]->type != REDIS_REPLY_STRING || !mbox__u64(r, i + 1, &exists)) {
				log_error("mailbox", "bad_reply", "op=subscriptions");
				continue;
			}
			s->name = mbox__strdup(r, i, NULL);
			s->exists = exists != 0;
			list->n++;
		}
		qsort(list->v, list->n, sizeof *list->v, cmp_subscription);
	}
	req->cb.subs(req->arg, status, list);
	free(req);
}

int
mbox_subscriptions(struct mbox_store *st, const char *user, mbox_subscriptions_cb *done,
    void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, NULL)) < 0)
		return rc;
	req = mbox__req_start(st, &a, user, NULL, arg);
	req->cb.subs = done;
	mbox__args(&a, "list");
	return mbox__eval(st, &mbox__s_subscribe, &a, on_subscriptions, req);
}

/* --- IMAP descriptions ---------------------------------------------------------------- */

int
mbox_describe(struct mbox_store *st, const char *user, const char *folder, uint32_t uid,
    const char *envelope, const char *bodystructure, mbox_done_cb *done, void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, folder)) < 0)
		return rc;
	if (envelope == NULL || bodystructure == NULL || envelope[0] == '\0' ||
	    bodystructure[0] == '\0')
		return -EINVAL;
	req = mbox__req_start(st, &a, user, folder, arg);
	req->cb.done = done;
	mbox__argu(&a, uid);
	mbox__args(&a, envelope);
	mbox__args(&a, bodystructure);
	return mbox__eval(st, &mbox__s_describe, &a, on_done, req);
}
