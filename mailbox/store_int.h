/*
 * store_int.h - what store.c (lifecycle, append, reads), store_ops.c
 * (flags, copy, move, expunge, vanished, create, rename, delete, the
 * maildrop lock, subscriptions) and store_admin.c (trim, stats) share;
 * included only inside mailbox/.
 *
 * A call is one request (struct mbox__req, on the heap from the call
 * until its reply was handed to the caller's callback) and one script
 * run whose arguments are built in a struct mbox__args, which owns the
 * numbers it formats and is freed by mbox__eval() whatever it returns.
 */
#ifndef KURIER_MAILBOX_STORE_INT_H
#define KURIER_MAILBOX_STORE_INT_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/rdb.h"
#include "core/str.h"
#include "mailbox/store.h"

/* The scripts, in store.c; loaded on every connect. */
extern struct rdb_script mbox__s_append, mbox__s_status, mbox__s_folders, mbox__s_list,
    mbox__s_fetch, mbox__s_flags, mbox__s_copy, mbox__s_expunge, mbox__s_create,
    mbox__s_rename, mbox__s_delete, mbox__s_trim, mbox__s_stats, mbox__s_vanished,
    mbox__s_lock, mbox__s_subscribe, mbox__s_uids, mbox__s_describe;

struct mbox_store {
	uv_loop_t *loop;
	struct config cfg;
	struct rdb *db;
	void (*state_cb)(void *arg, bool up);
	void *state_arg;
	void (*closed_cb)(void *arg);
	void *closed_arg;
};

/* One call in flight: whose callback, and the names its log lines need. */
struct mbox__req {
	struct mbox_store *st;
	void *arg;
	union {
		mbox_append_cb *append;
		mbox_status_cb *status;
		mbox_folders_cb *folders;
		mbox_msgs_cb *msgs;
		mbox_uidlist_cb *uidlist;
		mbox_body_cb *body;
		mbox_flags_cb *flags;
		mbox_copy_cb *copy;
		mbox_uids_cb *uids;
		mbox_done_cb *done;
		mbox_count_cb *count;
		mbox_stats_cb *stats;
		mbox_subscriptions_cb *subs;
	} cb;
	char user[STR_USERNAME_MAX + 1];
	uint64_t now; /* trim: the time it enforces the limits at */
	bool sizes;   /* uidlist: each UID comes with its size */
};

/* Arguments of one script call: borrowed strings and owned numbers. */
struct mbox__args {
	size_t n, cap;
	const char **v;
	size_t *len;
	char (*num)[24]; /* num[i] holds argument i when it is a number */
	bool *is_num;
};

void mbox__args_init(struct mbox__args *a, const struct mbox_store *st);
/* mbox__arg - a borrowed argument: p must outlive mbox__eval(). */
void mbox__arg(struct mbox__args *a, const void *p, size_t len);
void mbox__args(struct mbox__args *a, const char *s);
void mbox__argu(struct mbox__args *a, uint64_t v);
/* mbox__arg_ranges - lo, hi pairs; none: one range 1..UINT32_MAX. */
void mbox__arg_ranges(struct mbox__args *a, const struct mbox_range *r, size_t n);
/*
 * mbox__eval - run s with a's arguments (freed here) and req as the
 * reply's argument; 0, or -ENOTCONN with req freed.
 */
int mbox__eval(struct mbox_store *st, struct rdb_script *s, struct mbox__args *a,
    rdb_reply_cb *cb, struct mbox__req *req);

/* mbox__req - a request for user (may be NULL). */
struct mbox__req *mbox__req_new(struct mbox_store *st, const char *user, void *arg);
/*
 * mbox__req_start - a request for user (checked by the caller), with a
 * started as every per-user script expects: prefix, user, then folder's
 * stored form unless folder is NULL.
 */
struct mbox__req *mbox__req_start(struct mbox_store *st, struct mbox__args *a, const char *user,
    const char *folder, void *arg);

/*
 * mbox__status - the errno a reply stands for: status itself, or the one
 * a script's error reply names in its first word (ENOENT, EEXIST, EPERM,
 * ENOSPC, EINVAL); other Redis errors are logged as op's and give -EIO.
 */
int mbox__status(const char *op, int status, const redisReply *r);
/* mbox__now - the wall clock, ms since the epoch. */
uint64_t mbox__now(void);
/* mbox__u32 - element i of array r as a number that fits 32 bits. */
bool mbox__u32(const redisReply *r, size_t i, uint32_t *v);
bool mbox__u64(const redisReply *r, size_t i, uint64_t *v);
/* mbox__strdup - element i of r (a string) duplicated; "" when not a string. */
char *mbox__strdup(const redisReply *r, size_t i, size_t *len);
/*
 * mbox__log_expired - log triples (folder, uid, reason) of r's elements
 * from first on, for user; returns how many.
 */
size_t mbox__log_expired(const char *user, const redisReply *r, size_t first);
/* mbox__check - -EINVAL unless user is a user name and folder (if not NULL) a folder name. */
int mbox__check(const char *user, const char *folder);
/* mbox__folder - folder's stored form ("INBOX" in any case is "INBOX"). */
const char *mbox__folder(const char *folder);

#endif
