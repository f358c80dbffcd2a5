/*
 * pop3d - the POP3 server of the bounce mailbox (RFC 1939): a site owner's
 * mail client downloads the returns in INBOX and, usually, deletes them.
 *
 * Listeners: [mailbox] pop3 (plaintext, STLS to upgrade, RFC 2595) and
 * pop3s (implicit TLS, RFC 8314).  USER/PASS and AUTH PLAIN (RFC 5034)
 * are offered only over TLS; before it, CAPA shows STLS and neither USER
 * nor SASL, and both commands answer "-ERR [AUTH] ... STLS first".
 * Users and passwords are kurier's (policy/auth.h); failed logins count
 * towards the client address's lock-out together with SMTP's and IMAP's
 * (policy_auth_failed), and a locked-out address is refused before its
 * password is checked.
 *
 * The maildrop is the user's INBOX in the mailbox store, as it was when
 * the session logged in: messages appended later wait for the next
 * session (RFC 1939 5).  One session per maildrop across every node: the
 * store's maildrop lock (mbox_lock) gives a second session "-ERR [IN-USE]";
 * it is released at QUIT and on disconnect, and lapses after
 * [mailbox] pop3_timeout + 1 minute if its node died.  UIDL is
 * "UIDVALIDITY.UID", stable across sessions.  DELE marks, RSET unmarks,
 * QUIT expunges the marked messages (IMAP sessions are told by the
 * store's announcements) and sets \Seen on the ones retrieved.
 *
 * Limits: [mailbox] max_connections and max_connections_per_ip (shared
 * with IMAP), command lines of POP3_LINE_MAX bytes, [policy] max_errors
 * bad commands, an idle session closed after [mailbox] pop3_timeout.
 * Logs: one line per session event (connect, login, logout with the
 * counts of messages retrieved and deleted), component "pop3"; never a
 * password.
 */
#ifndef KURIER_MAILBOX_POP3D_H
#define KURIER_MAILBOX_POP3D_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "mailbox/store.h"
#include "policy/auth.h"
#include "policy/policy.h"

struct pop3d;

enum pop3d_listener {
	POP3D_POP3,
	POP3D_POP3S,
	POP3D_NLISTENERS,
};

/*
 * pop3d_open - listen on cfg's [mailbox] pop3 and pop3s (an empty list
 * opens nothing) and serve the store's INBOXes.  cfg, store, auth and pol
 * are borrowed and must outlive the server (pol may be NULL: no
 * lock-out).  Returns 0, or a negative errno with err naming the cause
 * (a port in use, the certificate).
 */
int pop3d_open(struct pop3d **out, uv_loop_t *loop, const struct config *cfg,
    struct mbox_store *store, struct auth *auth, struct policy *pol, char *err, size_t errsz);
/* pop3d_reload_tls - read [tls] cert and key again; sessions already in TLS keep theirs. */
int pop3d_reload_tls(struct pop3d *srv, char *err, size_t errsz);
/* pop3d_port - the port listener which's i-th socket is bound to (0 if none), for tests. */
uint16_t pop3d_port(const struct pop3d *srv, enum pop3d_listener which, unsigned i);
size_t pop3d_sessions(const struct pop3d *srv);
/*
 * pop3d_stop - stop listening; idle sessions are told "-ERR [SYS/TEMP]"
 * and closed without deleting anything (RFC 1939 6: no UPDATE without
 * QUIT), a session in its UPDATE step finishes it; after grace_ms the
 * rest are cut.  done(arg) runs once everything is closed and srv freed.
 */
void pop3d_stop(struct pop3d *srv, uint64_t grace_ms, void (*done)(void *arg), void *arg);

#endif
