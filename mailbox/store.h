/*
 * store - the bounce mailbox store in Redis, beside the queue and under
 * the same [redis] prefix: per user an INBOX (always there) and folders,
 * per mailbox UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ, per message UID,
 * flags, internal date, size, MODSEQ and the raw bytes, stored once.
 * Every change is one Lua script; the key layout and which script
 * touches what is in mailbox/README.md.
 *
 * This header is the contract the rest of kurier writes against; the
 * calls beyond append are listed below it.
 */
#ifndef KURIER_MAILBOX_STORE_H
#define KURIER_MAILBOX_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"

struct mbox_store;

/*
 * mbox_store_open - its own Redis connection on loop ([redis] of cfg,
 * scripts loaded on every connect).  Borrows cfg until closed.  0, or a
 * negative errno with err.  Calls fail with -ENOTCONN while Redis is down.
 */
int mbox_store_open(struct mbox_store **out, uv_loop_t *loop, const struct config *cfg,
    char *err, size_t errsz);
/* mbox_store_close - cancel what is pending; closed(arg) once freed (may be NULL). */
void mbox_store_close(struct mbox_store *st, void (*closed)(void *arg), void *arg);

struct mbox_append {
	const char *user;         /* the mailbox owner (a kurier user name) */
	const char *folder;       /* "INBOX" (created when missing) or an existing folder */
	const char *data;         /* the raw message, CRLF line ends */
	size_t len;
	const char *flags;        /* space-separated system/keyword flags, "" for none */
	uint64_t internal_date_ms;/* 0: now */
	/*
	 * Idempotency: when not NULL, an append with a key already used for
	 * this user within [mailbox] retention stores nothing and reports the
	 * first append's UID with status -EEXIST (a retried event makes no
	 * second report).
	 */
	const char *dedup_key;
};

/*
 * done - status 0 (stored), -EEXIST (dedup_key seen: uid is the first
 * one's), -EIO or -ECONNRESET; uidvalidity and uid of the message.
 */
typedef void mbox_append_cb(void *arg, int status, uint32_t uidvalidity, uint32_t uid);
/*
 * mbox_append - store a message atomically: UID assigned from the
 * mailbox's UIDNEXT (never handed out twice, whatever the number of
 * nodes), MODSEQ raised, the change announced, and the user's limits
 * ([mailbox] max_messages; retention) enforced by expunging the oldest.
 * 0 and done() exactly once later, or a negative errno and no call.
 * a and the strings it points to are copied or sent before it returns.
 */
int mbox_append(struct mbox_store *st, const struct mbox_append *a, mbox_append_cb *done,
    void *arg);

#endif
