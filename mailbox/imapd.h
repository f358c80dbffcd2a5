/*
 * imapd - the IMAP server of the bounce mailbox (IMAP4rev1, RFC 3501):
 * a site owner's mail client reads, flags, files and deletes the returns
 * the mailbox store holds, in sync across devices and kurierd nodes.
 *
 * Listeners: [mailbox] imap (plaintext, STARTTLS to upgrade) and imaps
 * (implicit TLS, RFC 8314), over the mail-client server base (msrv.h:
 * connection limits, idle timeout [mailbox] imap_timeout, the login check
 * with the lock-out shared with SMTP and POP3, an orderly stop).  LOGIN
 * and AUTHENTICATE PLAIN (RFC 4616, SASL-IR RFC 4959) are offered only
 * over TLS: before it, CAPABILITY says LOGINDISABLED.
 *
 * Extensions: IDLE (RFC 2177), UIDPLUS (4315), MOVE (6851), NAMESPACE
 * (2342), ID (2971), ENABLE (5161), LITERAL+ (7888), UNSELECT (3691),
 * CHILDREN (3348), SPECIAL-USE (6154), SASL-IR (4959), CONDSTORE (7162).
 * Hierarchy delimiter "/"; mailbox names in modified UTF-7 (RFC 3501
 * 5.1.3), stored as the client spells them once checked.
 *
 * Every change a session makes goes through the store, which announces
 * it (mailbox/watch.h); each session with that mailbox selected, on any
 * node, reads what changed and tells its client: at once in IDLE, else
 * before the tagged response of its next command.
 */
#ifndef KURIER_MAILBOX_IMAPD_H
#define KURIER_MAILBOX_IMAPD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "mailbox/store.h"
#include "policy/auth.h"
#include "policy/policy.h"

struct imapd;

enum imapd_listener {
	IMAPD_IMAP,
	IMAPD_IMAPS,
};

/*
 * imapd_open - listen on cfg's [mailbox] imap and imaps (an empty list
 * opens nothing) and follow the store's announcements.  cfg, store, auth
 * and pol are borrowed and must outlive the server (pol may be NULL).
 * 0, or a negative errno with err naming the cause.
 */
int imapd_open(struct imapd **out, uv_loop_t *loop, const struct config *cfg,
    struct mbox_store *store, struct auth *auth, struct policy *pol, char *err, size_t errsz);
int imapd_reload_tls(struct imapd *srv, char *err, size_t errsz);
uint16_t imapd_port(const struct imapd *srv, enum imapd_listener which, unsigned i);
size_t imapd_sessions(const struct imapd *srv);
/*
 * imapd_stop - stop listening; sessions not in a command get "* BYE" and
 * are closed, the others when their command is answered; after grace_ms
 * the rest are cut.  done(arg) once everything is freed.
 */
void imapd_stop(struct imapd *srv, uint64_t grace_ms, void (*done)(void *arg), void *arg);

#endif
