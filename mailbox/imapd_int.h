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

#define IMAPD_OWN_MAX 8 /* MODSEQs of this session's own latest changes remembered */

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
	/*
	 * The UIDs of its messages by sequence number - 1: all a session keeps
	 * per message (4 bytes); flags, sizes and dates are read from the
	 * store with what a command reads anyway.
	 */
	uint32_t *uids;
	size_t nmsgs, capmsgs;
	/* MODSEQs of changes this session made and told already: not told again. */
	uint64_t own[IMAPD_OWN_MAX];
	unsigned nown;
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
/* imapd__has_flag - whether the store's space-separated flags hold flag (any case). */
bool imapd__has_flag(const char *flags, const char *flag);
/* imapd__tell_flags - "* N FETCH (FLAGS (...) [UID] [MODSEQ])" for message seq as m says. */
void imapd__tell_flags(struct imapd_sess *s, uint32_t seq, const struct mbox_msg *m);
/* imapd__own - a change this session made (and told) got modseq. */
void imapd__own(struct imapd_sess *s, uint64_t modseq);
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

/*
 * imapd__describe - a message's ENVELOPE and BODYSTRUCTURE into env and bs
 * (imapd_fetch.c), to keep beside it; false (both empty) for one too
 * large or unparsable.
 */
bool imapd__describe(const char *raw, size_t len, struct buf *env, struct buf *bs);

/* --- command handlers: args..end are the arguments after the name ------------------- */

typedef void imapd_cmd_fn(struct imapd_sess *s, const struct imap_tok *args,
    const struct imap_tok *end);

imapd_cmd_fn imapd__namespace, imapd__create, imapd__delete, imapd__rename, imapd__subscribe,
    imapd__unsubscribe, imapd__list, imapd__lsub, imapd__status, imapd__append;
imapd_cmd_fn imapd__select, imapd__examine, imapd__close, imapd__unselect_cmd, imapd__check,
    imapd__expunge, imapd__store, imapd__copy, imapd__move;
imapd_cmd_fn imapd__fetch, imapd__search;

#endif
