/*
 * imapd_int.h - what the IMAP server's files share; included only by
 * mailbox/imapd*.c.
 *
 *   imapd.c         the server (msrv protocol callbacks), the command
 *                   reader and dispatch, responses, the commands of any
 *                   state and of the not-authenticated state (CAPABILITY,
 *                   NOOP, LOGOUT, ID, ENABLE, STARTTLS, LOGIN,
 *                   AUTHENTICATE), IDLE, and the store's announcements
 *                   routed to the sessions they concern
 *   imapd_mbox.c    mailboxes: NAMESPACE, CREATE, DELETE, RENAME,
 *                   SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS, APPEND
 *   imapd_select.c  the selected mailbox: SELECT, EXAMINE, CLOSE,
 *                   UNSELECT, CHECK, EXPUNGE, STORE, COPY, MOVE, its
 *                   message list and how it follows the store's changes
 *   imapd_fetch.c   FETCH and SEARCH
 *
 * A command runs from imapd__dispatch() to exactly one tagged response
 * (imapd__tagged), which ends it: the session is busy in between, so the
 * commands a client pipelines wait in the input buffer.  A command that
 * asks the store holds a session reference (imapd__ref) until its
 * callback, which does nothing but clean up when the client is gone
 * (imapd__gone).
 */
#ifndef KURIER_MAILBOX_IMAPD_INT_H
#define KURIER_MAILBOX_IMAPD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "mailbox/imap_args.h"
#include "mailbox/imap_parse.h"
#include "mailbox/imapd.h"
#include "mailbox/msrv.h"
#include "mailbox/store.h"
#include "mailbox/watch.h"

#define IMAPD_C "imap"

enum imapd_state {
	IMAPD_NOAUTH,
	IMAPD_AUTH,
	IMAPD_SELECTED,
	IMAPD_LOGOUT,
};

/* System flags as bits (keywords stay text). */
enum {
	IMAPD_F_SEEN = 1 << 0,
	IMAPD_F_ANSWERED = 1 << 1,
	IMAPD_F_FLAGGED = 1 << 2,
	IMAPD_F_DELETED = 1 << 3,
	IMAPD_F_DRAFT = 1 << 4,
};

/*
 * One message of the selected mailbox; index = sequence number - 1.  24
 * bytes, as a session holds one per message: keywords are a session's
 * interned keyword list (most messages share a handful of them).
 */
struct imapd_msg {
	uint64_t modseq;
	uint32_t uid;
	uint32_t size;       /* bytes (saturated at UINT32_MAX) */
	uint32_t date;       /* internal date, seconds since the epoch */
	uint16_t kw;         /* index into the session's keyword lists; 0 for none */
	uint8_t sys;         /* IMAPD_F_* */
};

#define IMAPD_KW_MAX 65535 /* distinct keyword lists a session keeps */

struct imapd_sess {
	struct msrv_sess base; /* first: msrv allocates and passes it */
	struct imap_reader rd;
	enum imapd_state state;
	struct imap_cmd cmd;   /* the command running; cmd.raw NULL when none */
	bool uid;              /* ... came as UID <command> */
	bool authx;            /* AUTHENTICATE PLAIN waits for its response line */
	bool idling;           /* IDLE: waiting for DONE */
	bool condstore;        /* CONDSTORE enabled (ENABLE, or a command that uses it) */
	bool logout;           /* LOGOUT answered: close after the output */
	/* A continuable step waiting for output to drain (FETCH). */
	void (*resume)(struct imapd_sess *s);
	/* The selected mailbox (state SELECTED). */
	char *folder;          /* its stored name */
	bool readonly;         /* EXAMINE */
	uint64_t mailbox_id;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq; /* what this session has told the client */
	uint64_t vanished_since; /* expunges above this MODSEQ may not have been told */
	struct imapd_msg *msgs;
	size_t nmsgs, capmsgs;
	char **kwsets;         /* [kw - 1]: space-separated keyword lists seen */
	size_t nkwsets;
	/* The store announced a change of the selected mailbox not yet read. */
	bool dirty;
	bool syncing;
	/* The user's sessions, for the announcements (imapd.c). */
	struct imapd_sess *unext, *uprev;
	bool in_users;
	/* Counters for the logout line. */
	unsigned nfetched, nexpunged;
	void *op;              /* the running command's state, the command file's own */
};

struct imapd {
	struct msrv *msrv;
	const struct config *cfg;
	struct mbox_store *store;
	struct mbox_watch *watch;
	struct imapd_sess **users; /* hash buckets of logged-in sessions by user */
	size_t nbuckets;
	void (*stop_done)(void *);
	void *stop_arg;
};

struct imapd *imapd__srv(const struct imapd_sess *s);
void imapd__ref(struct imapd_sess *s);
void imapd__unref(struct imapd_sess *s);
bool imapd__gone(const struct imapd_sess *s);

/* --- responses ------------------------------------------------------------------ */

/* imapd__write - raw bytes to the client. */
void imapd__write(struct imapd_sess *s, const void *p, size_t n);
/* imapd__untagged - "* " fmt CRLF. */
void imapd__untagged(struct imapd_sess *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * imapd__tagged - the command's tagged response ("OK", "NO", "BAD"; code
 * without brackets or NULL; then text), which ends it: before an OK (or
 * NO) the changes the store announced for the selected mailbox are told
 * first (imapd__sync), except where RFC 3501 7.4.1 forbids EXPUNGE.
 */
void imapd__tagged(struct imapd_sess *s, const char *status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* imapd__bad - BAD with text, counted as an error ([policy] max_errors). */
void imapd__bad(struct imapd_sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* imapd__store_no - NO for a store failure status (TRYCREATE, NONEXISTENT, ...). */
void imapd__store_no(struct imapd_sess *s, int status, const char *what);

/* --- arguments --------------------------------------------------------------------- */

/* imapd__nargs - direct arguments from first to end (lists count one). */
size_t imapd__nargs(const struct imap_tok *first, const struct imap_tok *end);
/*
 * imapd__mailbox - an astring token as a stored mailbox name into out
 * (INBOX canonical, modified UTF-7 checked, no "..", wildcards, "/" or
 * "~" first); false after a BAD or NO naming why.
 */
bool imapd__mailbox(struct imapd_sess *s, const struct imap_tok *t, struct buf *out);
/* imapd__astring - an astring token copied NUL-terminated into out; false if not one. */
bool imapd__astring(const struct imap_tok *t, struct buf *out);

/* --- the selected mailbox (imapd_select.c) ------------------------------------------ */

/*
 * imapd__set_seqs - the sequence numbers (1-based, ascending, no
 * repeats) of set: message numbers, or UIDs with uid.  "*" is the last
 * message.  *out is NULL when none; free it.
 */
size_t imapd__set_seqs(const struct imapd_sess *s, const struct imap_seqset *set, bool uid,
    uint32_t **out);
/* imapd__ranges - UID ranges of the messages seqs[0..n) name, coalesced (free *out). */
size_t imapd__ranges(const struct imapd_sess *s, const uint32_t *seqs, size_t n,
    struct mbox_range **out);
/* imapd__seq_of - the sequence number of uid, 0 when it is not in the list. */
uint32_t imapd__seq_of(const struct imapd_sess *s, uint32_t uid);
/* imapd__flags_str - a message's flags in IMAP form, "\Seen $Label" (no parens). */
void imapd__flags_str(const struct imapd_sess *s, const struct imapd_msg *m, struct buf *out);
/* imapd__keywords - a message's keywords, space-separated ("" for none). */
const char *imapd__keywords(const struct imapd_sess *s, const struct imapd_msg *m);
/* imapd__set_flags - m's flags from the store's space-separated text. */
void imapd__set_flags(struct imapd_sess *s, struct imapd_msg *m, const char *flags);
/* imapd__msg_update - m's flags and modseq from the store; told as FETCH when they changed. */
void imapd__msg_update(struct imapd_sess *s, uint32_t seq, const struct mbox_msg *m, bool tell);
/*
 * imapd__sync - read what the store announced for the selected mailbox
 * (new messages, flag changes, expunges) and tell the client (EXISTS,
 * FETCH FLAGS, EXPUNGE unless expunges is false), then then(s).  With
 * nothing announced then(s) runs at once.
 */
void imapd__sync(struct imapd_sess *s, bool expunges, void (*then)(struct imapd_sess *s));
/* imapd__unselect - leave the selected state (no response). */
void imapd__unselect(struct imapd_sess *s);
/* imapd__idle_kick - in IDLE, a change was announced: tell it now (imapd.c). */
void imapd__idle_kick(struct imapd_sess *s);
/* imapd__event - an announcement for one of the user's mailboxes. */
void imapd__event(struct imapd_sess *s, const struct mbox_event *ev);

/* --- command handlers: args..end are the arguments after the name ------------------- */

typedef void imapd_cmd_fn(struct imapd_sess *s, const struct imap_tok *args,
    const struct imap_tok *end);

imapd_cmd_fn imapd__namespace, imapd__create, imapd__delete, imapd__rename, imapd__subscribe,
    imapd__unsubscribe, imapd__list, imapd__lsub, imapd__status, imapd__append;
imapd_cmd_fn imapd__select, imapd__examine, imapd__close, imapd__unselect_cmd, imapd__check,
    imapd__expunge, imapd__store, imapd__copy, imapd__move;
imapd_cmd_fn imapd__fetch, imapd__search;

#endif
