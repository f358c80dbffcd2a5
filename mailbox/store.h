/*
 * store - the bounce mailbox store in Redis, beside the queue and under
 * the same [redis] prefix: per user an INBOX (always there) and folders,
 * per mailbox UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ, per message UID,
 * flags, internal date, size, MODSEQ and the raw bytes, stored once.
 * Every change is one Lua script; the key layout and which script
 * touches what is in mailbox/README.md.
 *
 * Names.  A user is a kurier user name (str_is_username: 1-64 of
 * A-Z a-z 0-9 . _ @ + -).  A folder is an IMAP mailbox name: 1 to
 * MBOX_FOLDER_MAX bytes of UTF-8 or modified UTF-7, no control bytes, "/"
 * as the hierarchy delimiter (not first, not last, never doubled);
 * "INBOX" matches in any case and is stored as "INBOX".  Flags are
 * space-separated IMAP flags (atoms, system flags with a backslash);
 * "\Recent" is per session and not stored.  A bad name or flag is
 * -EINVAL, returned at once with no callback.
 *
 * Calls.  Every call below either returns 0 and calls its callback
 * exactly once later (from the loop, never from inside the call), or
 * returns a negative errno and never calls it: -EINVAL (bad argument),
 * -ENOTCONN (Redis is down).  The callback's status is 0, -ENOENT (no
 * such user, folder or UID), -EEXIST (folder exists; append: the
 * dedup_key was seen), -EPERM (INBOX cannot be deleted), -ENOSPC (the
 * folder's UIDs are exhausted; mbox_subscribe: the user holds
 * MBOX_SUBSCRIPTIONS_MAX names already), -EIO (Redis answered with an error,
 * logged), -ECONNRESET (the connection broke: the change may or may not
 * have been made) or -ECANCELED (mbox_store_close ran first).  Results
 * handed to a callback (struct mbox_* pointers) are the callback's to
 * keep: free them with the matching mbox_*_free(); they are NULL when
 * status is not 0.  The arguments of a call are copied before it returns.
 *
 * Announcements.  Every change is published on the Redis channel
 * "<prefix>mbx:<user>" as one line (mailbox/README.md has the format),
 * so a session on any node learns of it at once (mailbox/watch.h listens).
 *
 * Limits.  [mailbox] retention (by internal date) and max_messages (per
 * user, over all folders, oldest internal date first) are enforced by
 * append and copy for their user and by mbox_trim for all users; each
 * message so expunged is logged (event=mailbox_expired) and recorded as
 * an expunge like any other.
 */
#ifndef KURIER_MAILBOX_STORE_H
#define KURIER_MAILBOX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"

struct mbox_store;

/*
 * mbox_store_open - its own Redis connection on loop ([redis] of cfg,
 * scripts loaded on every connect).  cfg is copied ([redis], [mailbox]
 * retention and max_messages as they are now).  0, or a negative errno
 * with err.  Calls fail with -ENOTCONN while Redis is down.
 */
int mbox_store_open(struct mbox_store **out, uv_loop_t *loop, const struct config *cfg,
    char *err, size_t errsz);
/*
 * mbox_store_close - cancel what is pending (each callback still runs
 * once, with -ECANCELED unless its answer was in); closed(arg) once
 * freed (may be NULL).
 */
void mbox_store_close(struct mbox_store *st, void (*closed)(void *arg), void *arg);

struct mbox_append {
	const char *user;   /* the mailbox owner (a kurier user name) */
	const char *folder; /* "INBOX" (created when missing) or an existing folder */
	const char *data;   /* the raw message, CRLF line ends */
	size_t len;
	const char *flags;         /* space-separated system/keyword flags, "" for none */
	uint64_t internal_date_ms; /* 0: now */
	/*
	 * Idempotency: when not NULL, an append with a key already used for
	 * this user within [mailbox] retention stores nothing and reports the
	 * first append's UID with status -EEXIST (a retried event makes no
	 * second report).
	 */
	const char *dedup_key;
	/*
	 * The message's IMAP ENVELOPE and BODYSTRUCTURE, kept beside its bytes
	 * for IMAP listings (mbox_list_meta); NULL: none yet (an IMAP listing
	 * computes them once and stores them with mbox_describe).
	 */
	const char *envelope;
	const char *bodystructure;
};

/*
 * done - status 0 (stored), -EEXIST (dedup_key seen: uidvalidity and uid
 * are the first one's), -ENOENT (folder is not INBOX and does not exist),
 * or one of the statuses above; uidvalidity and uid of the message (0
 * when status is neither 0 nor -EEXIST).
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

/* Longest folder name, in bytes. */
#define MBOX_FOLDER_MAX 512

/* mbox_valid_folder - whether name is a folder name this store accepts. */
bool mbox_valid_folder(const char *name);
/* Longest list of flags a message keeps, in bytes. */
#define MBOX_FLAGS_MAX 1024

/*
 * mbox_valid_flags - whether flags is a list of storable flags ("" is),
 * at most MBOX_FLAGS_MAX bytes.
 */
bool mbox_valid_flags(const char *flags);

/* A UID range, both ends included; hi UINT32_MAX stands for IMAP's "*". */
struct mbox_range {
	uint32_t lo, hi;
};

/* One folder's counters. */
struct mbox_status {
	uint64_t id; /* the mailbox id (keys, announcements); kept by rename */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t exists; /* messages */
	uint32_t unseen; /* messages without \Seen */
	uint64_t bytes;  /* their sizes added */
	/*
	 * The highest MODSEQ of an expunge no longer remembered (older than
	 * the retention): vanished UIDs are complete only since it.
	 */
	uint64_t vanished_floor;
};

typedef void mbox_status_cb(void *arg, int status, const struct mbox_status *s);
/*
 * mbox_status - the counters of user's folder (s valid during the
 * callback only; NULL when status is not 0).  -ENOENT: no such folder.
 */
int mbox_status(struct mbox_store *st, const char *user, const char *folder,
    mbox_status_cb *done, void *arg);

struct mbox_folder {
	char *name;
	struct mbox_status st; /* vanished_floor not filled */
};

struct mbox_folders {
	struct mbox_folder *v; /* INBOX first, then by name (bytewise) */
	size_t n;
};

typedef void mbox_folders_cb(void *arg, int status, struct mbox_folders *list);
/*
 * mbox_folders - user's folders.  With create_inbox, INBOX is created if
 * the user has none yet (what an IMAP login wants); without it, a user
 * without any folder is -ENOENT.
 */
int mbox_folders(struct mbox_store *st, const char *user, bool create_inbox,
    mbox_folders_cb *done, void *arg);
void mbox_folders_free(struct mbox_folders *list);

/* A message's metadata. */
struct mbox_msg {
	uint32_t uid;
	uint64_t modseq;
	uint64_t date_ms; /* internal date */
	uint64_t size;    /* bytes of the raw message */
	char *flags;      /* space-separated, "" for none */
	char *head;       /* mbox_list_heads: the message's first bytes; else NULL */
	size_t head_len;
	/*
	 * mbox_list_meta: the IMAP ENVELOPE and BODYSTRUCTURE computed when the
	 * message was appended; NULL when it was stored without them.
	 */
	char *envelope;
	char *bodystructure;
};

struct mbox_msgs {
	uint32_t uidvalidity;
	uint64_t highestmodseq;
	struct mbox_msg *v; /* ascending UID */
	size_t n;
};

typedef void mbox_msgs_cb(void *arg, int status, struct mbox_msgs *list);
/*
 * mbox_list - the messages of folder whose UID lies in one of the nranges
 * ranges (nranges 0: all) and whose MODSEQ is above changedsince (0: any;
 * CONDSTORE's CHANGEDSINCE).  -ENOENT: no such folder.
 */
int mbox_list(struct mbox_store *st, const char *user, const char *folder,
    const struct mbox_range *ranges, size_t nranges, uint64_t changedsince,
    mbox_msgs_cb *done, void *arg);
/*
 * mbox_list_heads - mbox_list, each message with its first head_max
 * bytes (at most 64 KiB; enough for the header fields a listing shows).
 */
int mbox_list_heads(struct mbox_store *st, const char *user, const char *folder,
    const struct mbox_range *ranges, size_t nranges, size_t head_max, mbox_msgs_cb *done,
    void *arg);
/*
 * mbox_list_meta - mbox_list, each message with the IMAP ENVELOPE and
 * BODYSTRUCTURE (RFC 3501 7.4.2) that mbox_append computed and stored
 * beside its bytes (a copy shares them), so a client's listing reads no
 * message.
 */
int mbox_list_meta(struct mbox_store *st, const char *user, const char *folder,
    const struct mbox_range *ranges, size_t nranges, mbox_msgs_cb *done, void *arg);
void mbox_msgs_free(struct mbox_msgs *list);

/* A folder's UIDs alone (mbox_uidlist). */
struct mbox_uidlist {
	uint32_t uidvalidity;
	uint64_t highestmodseq;
	uint32_t first_unseen; /* UID of the first message without \Seen; 0: none */
	uint32_t *v;           /* ascending */
	uint64_t *sizes;       /* with_sizes: v[i]'s size in bytes; else NULL */
	size_t n;
};

typedef void mbox_uidlist_cb(void *arg, int status, struct mbox_uidlist *l);
/*
 * mbox_uidlist - the UIDs of folder and the first unseen one, what an
 * IMAP SELECT needs, without reading each message's fields (one ZRANGE);
 * with_sizes, each message's size too (a POP3 maildrop).  -ENOENT: no
 * such folder.
 */
int mbox_uidlist(struct mbox_store *st, const char *user, const char *folder, bool with_sizes,
    mbox_uidlist_cb *done, void *arg);
void mbox_uidlist_free(struct mbox_uidlist *l);

struct mbox_body {
	uint32_t uidvalidity;
	struct mbox_msg m;
	char *data; /* the raw message, NUL-terminated after len */
	size_t len;
};

typedef void mbox_body_cb(void *arg, int status, struct mbox_body *b);
/* mbox_fetch - one message and its raw bytes.  -ENOENT: no such folder or UID. */
int mbox_fetch(struct mbox_store *st, const char *user, const char *folder, uint32_t uid,
    mbox_body_cb *done, void *arg);
void mbox_body_free(struct mbox_body *b);

enum mbox_flags_op {
	MBOX_FLAGS_SET,    /* FLAGS */
	MBOX_FLAGS_ADD,    /* +FLAGS */
	MBOX_FLAGS_REMOVE, /* -FLAGS */
};

struct mbox_flags_req {
	const char *user;
	const char *folder;
	const struct mbox_range *ranges; /* nranges 0: every message */
	size_t nranges;
	enum mbox_flags_op op;
	const char *flags;
	uint64_t unchangedsince; /* 0: no condition (RFC 7162 3.1.3) */
};

struct mbox_flags_result {
	uint64_t highestmodseq;
	struct mbox_msg *v; /* every message that passed: its flags and MODSEQ now */
	size_t n;
	uint32_t *failed; /* UIDs that failed UNCHANGEDSINCE, ascending */
	size_t nfailed;
};

typedef void mbox_flags_cb(void *arg, int status, struct mbox_flags_result *res);
/*
 * mbox_store_flags - change the flags of the messages in the ranges.
 * Messages whose flags changed get one new MODSEQ (the folder's
 * HIGHESTMODSEQ + 1) and are announced; a message whose MODSEQ is above
 * unchangedsince is left alone and listed in failed.  -EINVAL (nothing
 * changed) when a message's flags would grow past MBOX_FLAGS_MAX.
 */
int mbox_store_flags(struct mbox_store *st, const struct mbox_flags_req *r,
    mbox_flags_cb *done, void *arg);
void mbox_flags_result_free(struct mbox_flags_result *res);

struct mbox_copy_result {
	uint32_t uidvalidity; /* of the target folder */
	uint32_t *from, *to;  /* n pairs, ascending source UID (RFC 4315 COPYUID) */
	size_t n;
	uint64_t expunge_modseq; /* move: MODSEQ of the expunge in the source; 0 if none */
};

typedef void mbox_copy_cb(void *arg, int status, struct mbox_copy_result *res);
/*
 * mbox_copy - copy the messages of the ranges from one of user's folders
 * to another (which must exist: -ENOENT, IMAP's TRYCREATE), new UIDs
 * there, the raw bytes shared.  mbox_move does the same and expunges the
 * originals in the same atomic step (RFC 6851); moving into the same
 * folder changes nothing.  The target's limits are enforced after.
 */
int mbox_copy(struct mbox_store *st, const char *user, const char *from, const char *to,
    const struct mbox_range *ranges, size_t nranges, mbox_copy_cb *done, void *arg);
int mbox_move(struct mbox_store *st, const char *user, const char *from, const char *to,
    const struct mbox_range *ranges, size_t nranges, mbox_copy_cb *done, void *arg);
void mbox_copy_result_free(struct mbox_copy_result *res);

struct mbox_uids {
	uint64_t modseq; /* the MODSEQ the change got; 0 if nothing changed */
	uint32_t *v;     /* ascending */
	size_t n;
};

typedef void mbox_uids_cb(void *arg, int status, struct mbox_uids *res);
/*
 * mbox_expunge - expunge the messages of folder flagged \Deleted that lie
 * in the ranges (nranges 0: all; RFC 3501 EXPUNGE, RFC 4315 UID EXPUNGE),
 * or with force every message in the ranges.  res lists the UIDs gone,
 * which are remembered with the MODSEQ for a resync (QRESYNC).
 */
int mbox_expunge(struct mbox_store *st, const char *user, const char *folder,
    const struct mbox_range *ranges, size_t nranges, bool force, mbox_uids_cb *done,
    void *arg);
void mbox_uids_free(struct mbox_uids *res);
/*
 * mbox_vanished - the UIDs in the ranges (nranges 0: all) expunged from
 * folder at a MODSEQ above since (RFC 7162 VANISHED (EARLIER)); res->modseq
 * is the folder's vanished floor: expunges at or below it are forgotten,
 * so for since below it the list may be incomplete.
 */
int mbox_vanished(struct mbox_store *st, const char *user, const char *folder,
    uint64_t since, const struct mbox_range *ranges, size_t nranges, mbox_uids_cb *done,
    void *arg);

typedef void mbox_done_cb(void *arg, int status);
/*
 * mbox_create - a new folder, its UIDVALIDITY one never used before
 * (also for a name deleted earlier).  -EEXIST: it exists (INBOX always
 * does, once the user has any folder).
 */
int mbox_create(struct mbox_store *st, const char *user, const char *folder,
    mbox_done_cb *done, void *arg);
/*
 * mbox_rename - RFC 3501 6.3.5: the folder and the folders below it
 * ("from/x") take the new name, keeping UIDs and UIDVALIDITY, and so do
 * the subscriptions of from and of every name below it (subscribed
 * folders that do not exist included).  Renaming INBOX moves its
 * messages into a new folder and leaves INBOX empty, and every
 * subscription as it was (INBOX stays subscribed, the new folder is not
 * subscribed for it).  -ENOENT: no such folder; -EEXIST: the new name
 * (or one below it) exists.
 */
int mbox_rename(struct mbox_store *st, const char *user, const char *from, const char *to,
    mbox_done_cb *done, void *arg);
/*
 * mbox_delete - drop a folder and its messages; -EPERM for INBOX.  A
 * subscription of the folder stays (RFC 3501 6.3.9: LSUB then shows it
 * with \Noselect).
 */
int mbox_delete(struct mbox_store *st, const char *user, const char *folder,
    mbox_done_cb *done, void *arg);

/*
 * Subscriptions (RFC 3501 6.3.6 SUBSCRIBE, 6.3.7 UNSUBSCRIBE, 6.3.9 LSUB;
 * RFC 5258 LIST (SUBSCRIBED)): per user a set of folder names in their
 * stored form ("INBOX" in any case is "INBOX").  A name need not be a
 * folder: subscribing one that does not exist is allowed (a client may
 * subscribe before it creates), and a deleted folder stays subscribed.
 * Subscriptions follow mbox_rename (see there).  They are not announced.
 */

/* Most names one user may have subscribed (bounds the set and a listing). */
#define MBOX_SUBSCRIPTIONS_MAX 10000

/*
 * mbox_subscribe - subscribe user to folder (on) or unsubscribe it (!on).
 * Both are idempotent: subscribing a subscribed name or unsubscribing one
 * that is not is 0 and changes nothing.  -ENOSPC: on, a new name, and
 * user holds MBOX_SUBSCRIPTIONS_MAX already.  A bad user or folder name
 * is -EINVAL at once.
 */
int mbox_subscribe(struct mbox_store *st, const char *user, const char *folder, bool on,
    mbox_done_cb *done, void *arg);

struct mbox_subscription {
	char *name;  /* stored form */
	bool exists; /* a folder of that name exists now (else LSUB's \Noselect) */
};

struct mbox_subscriptions {
	struct mbox_subscription *v; /* INBOX first, then by name (bytewise) */
	size_t n;
};

typedef void mbox_subscriptions_cb(void *arg, int status, struct mbox_subscriptions *list);
/*
 * mbox_subscriptions - user's subscribed names, each with whether its
 * folder exists, read in one atomic step.  A user without any (or
 * unknown) gets an empty list, status 0.  At most MBOX_SUBSCRIPTIONS_MAX
 * entries.
 */
int mbox_subscriptions(struct mbox_store *st, const char *user, mbox_subscriptions_cb *done,
    void *arg);
void mbox_subscriptions_free(struct mbox_subscriptions *list);

/*
 * mbox_lock - a user's maildrop lock, held in Redis so that it holds
 * across kurierd nodes (POP3 allows one session per maildrop, RFC 1939
 * 8).  token names the holder (a session id unique across nodes); the
 * lock lapses ttl_ms after the last take or refresh, so a node that died
 * frees it in time.  done's status: 0 (take, refresh: held now; release:
 * released); -EBUSY: another token holds it; -ENOENT: release found it
 * already gone (lapsed).
 */
enum mbox_lock_op {
	MBOX_LOCK_TAKE,
	MBOX_LOCK_REFRESH,
	MBOX_LOCK_RELEASE,
};
#define MBOX_LOCK_TOKEN_MAX 64 /* bytes of a token */
int mbox_lock(struct mbox_store *st, const char *user, enum mbox_lock_op op, const char *token,
    uint64_t ttl_ms, mbox_done_cb *done, void *arg);

/*
 * mbox_describe - keep envelope and bodystructure beside the bytes of
 * message uid of folder (for those stored without them).  done's status:
 * 0, or -ENOENT when the message is gone (nothing kept).
 */
int mbox_describe(struct mbox_store *st, const char *user, const char *folder, uint32_t uid,
    const char *envelope, const char *bodystructure, mbox_done_cb *done, void *arg);

/*
 * mbox_trim - enforce retention and max_messages over every user (the
 * mailbox role runs it periodically), with now_ms as the time: one
 * script per user, so Redis is never held for all of them at once.  Each
 * message expunged is logged.  done gets the number expunged (0 or more)
 * or the first negative errno (the other users were still trimmed).
 */
typedef void mbox_count_cb(void *arg, int64_t status);
int mbox_trim(struct mbox_store *st, uint64_t now_ms, mbox_count_cb *done, void *arg);

struct mbox_user_stats {
	char user[65];
	uint32_t folders;
	uint64_t messages;
	uint64_t bytes;
};

struct mbox_stats {
	uint64_t users, messages, bytes;
	struct mbox_user_stats *v; /* by user name */
	size_t n;
};

typedef void mbox_stats_cb(void *arg, int status, struct mbox_stats *s);
/* mbox_stats - users, messages and bytes (each message's size), in all and per user. */
int mbox_stats(struct mbox_store *st, mbox_stats_cb *done, void *arg);
void mbox_stats_free(struct mbox_stats *s);

/*
 * mbox_set_limits - [mailbox] retention and max_messages from now on (a
 * reloaded config); calls already sent keep the old ones.
 */
void mbox_set_limits(struct mbox_store *st, uint64_t retention_ms, unsigned max_messages);

/* mbox_is_up - whether the store's Redis connection is up. */
bool mbox_is_up(const struct mbox_store *st);
/* mbox_last_error - why the connection is down ("" when it is up or none says). */
const char *mbox_last_error(const struct mbox_store *st);
/* mbox_on_state - cb(arg, up) on every change of the connection (NULL: none). */
void mbox_on_state(struct mbox_store *st, void (*cb)(void *arg, bool up), void *arg);
/* mbox_channel - the channel user's changes are published on, into dst. */
int mbox_channel(const struct mbox_store *st, const char *user, char *dst, size_t size);

#endif
