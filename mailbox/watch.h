/*
 * watch - learn of every change of the mailbox store, made on any node:
 * one subscriber connection per process (PSUBSCRIBE "<prefix>mbx:*", see
 * core/rdb.h) and the announcement lines of mailbox/README.md parsed
 * into struct mbox_event.  An IMAP session in IDLE is told through it;
 * what a session then reads (mbox_list with CHANGEDSINCE, mbox_vanished)
 * comes from the store, never from the event alone.
 *
 * Pub/sub is at-most-once: while the connection is down (the state
 * callback says so) events are lost, and whoever relies on them resyncs
 * from the store's MODSEQ when it is up again.
 */
#ifndef KURIER_MAILBOX_WATCH_H
#define KURIER_MAILBOX_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/str.h"

enum mbox_event_kind {
	MBOX_EV_APPEND,         /* messages added (append, copy, move, INBOX rename) */
	MBOX_EV_FLAGS,          /* flags changed */
	MBOX_EV_EXPUNGE,        /* messages expunged (expunge, move, limits) */
	MBOX_EV_CREATE,         /* a folder made */
	MBOX_EV_RENAME,         /* a folder renamed: name is the new one */
	MBOX_EV_DELETE,         /* a folder dropped */
};

struct mbox_event {
	enum mbox_event_kind kind;
	char user[STR_USERNAME_MAX + 1];
	uint64_t mailbox;       /* the mailbox id (struct mbox_status id) */
	uint64_t modseq;        /* append, flags, expunge: the folder's MODSEQ after it; else 0 */
	const char *uids;       /* append, flags, expunge: an IMAP UID set ("3,5:9"); else "" */
	size_t uids_len;
	const char *name;       /* the folder's name, as stored (may hold spaces) */
	size_t name_len;
};

/*
 * mbox_event_parse - one announcement: channel ("<prefix>mbx:USER") and
 * line, into ev, whose uids and name point into line.  0, or -EINVAL for
 * anything that is not an announcement of the store under prefix.
 */
int mbox_event_parse(const char *prefix, const char *channel, size_t chlen, const char *line,
    size_t len, struct mbox_event *ev);

struct mbox_watch;

/* cb gets every event; ev and what it points to live during the call only. */
typedef void mbox_event_cb(void *arg, const struct mbox_event *ev);

/*
 * mbox_watch_open - subscribe to every announcement of the store of cfg
 * ([redis] address and prefix; cfg is copied).  Events reach cb from
 * the loop once the connection is up (mbox_watch_on_state), in the
 * order Redis published them.  0 or a negative errno.
 */
int mbox_watch_open(struct mbox_watch **out, uv_loop_t *loop, const struct config *cfg,
    mbox_event_cb *cb, void *arg);
/* mbox_watch_on_state - cb(arg, up) at every change of the connection (NULL: none). */
void mbox_watch_on_state(struct mbox_watch *w, void (*cb)(void *arg, bool up), void *arg);
bool mbox_watch_is_up(const struct mbox_watch *w);
/* mbox_watch_close - no event after this call; closed(arg) once freed (may be NULL). */
void mbox_watch_close(struct mbox_watch *w, void (*closed)(void *arg), void *arg);

#endif
