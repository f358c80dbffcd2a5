/*
 * msrv - what kurier's mail-client servers (POP3, IMAP) share: the two
 * listeners of a protocol (plaintext with a STARTTLS command, and
 * implicit TLS, RFC 8314), accepting under [mailbox] max_connections and
 * max_connections_per_ip, the TLS context and its reload, the sessions'
 * connections, input buffers, references and idle timeouts, the login
 * check (the address's lock-out, the password on the thread pool, the
 * failure counted for the address) and an orderly stop.  The protocol
 * (pop3d.c, imapd.c) supplies struct msrv_proto: what to say and when.
 *
 * A session is the protocol's struct, allocated by msrv with
 * proto->sess_size bytes, whose first member is a struct msrv_sess.  It
 * lives while it has references: the connection holds one until it
 * closes, and every call the protocol makes that answers later (a store
 * call, a login) holds one (msrv_ref/msrv_unref) so that its callback
 * may look at the session after the client went away: msrv_gone() then
 * says so, and the callback only cleans up.
 *
 * Input: the bytes a client sends are appended to s->in and the
 * protocol's input() runs, unless the session is busy (a command waits
 * for an answer; the protocol sets s->busy and calls msrv_done() when
 * it is answered, which runs input() again for what was pipelined).
 * Reading stops while more than MSRV_OUT_HIGH bytes of output are queued
 * and resumes when they are written, and while a busy session holds more
 * than MSRV_IN_HIGH bytes of input, until its command is answered: a
 * client that pipelines without end cannot grow the buffer without end.
 * An idle input buffer is freed.
 *
 * Every callback runs from the loop.  Logs use proto->name as component.
 */
#ifndef KURIER_MAILBOX_MSRV_H
#define KURIER_MAILBOX_MSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "policy/auth.h"
#include "policy/policy.h"

#define MSRV_OUT_HIGH (256 * 1024) /* stop reading commands while more output is queued */
#define MSRV_IN_HIGH (256 * 1024)  /* stop reading while a busy session holds more input */

struct msrv;
struct msrv_sess;

enum msrv_login_result {
	MSRV_LOGIN_OK,
	MSRV_LOGIN_FAILED,   /* wrong password, unknown or disabled user: counted for the address */
	MSRV_LOGIN_LOCKED,   /* the address is locked out: the password was not checked */
	MSRV_LOGIN_TEMPFAIL, /* Redis or the thread pool failed: try again later */
};

/* user is valid during the call only and only for MSRV_LOGIN_OK. */
typedef void msrv_login_cb(struct msrv_sess *s, enum msrv_login_result r,
    const struct auth_user *user);

struct msrv_sess {
	struct msrv_sess *prev, *next;
	struct msrv *srv;
	struct conn *conn;     /* NULL once the connection closed */
	unsigned refs;
	bool busy;             /* a command (or a TLS handshake) waits for its answer */
	bool tls;              /* TLS started (STARTTLS or implicit) */
	bool tls_wait;         /* busy for the handshake */
	bool greet_on_tls;     /* implicit TLS: start() follows the handshake */
	bool authed;           /* msrv_login() succeeded */
	bool in_full;          /* reading stopped: MSRV_IN_HIGH of input while busy */
	char sid[24];          /* "P1a", "I7": unique in the process */
	char client[64];       /* the peer's address */
	char user[AUTH_NAME_MAX + 1]; /* the login name (given or verified) */
	struct buf in;         /* bytes received and not yet consumed */
	uint64_t last_active;  /* uv_now() of the last input */
	unsigned errors;       /* bad commands, counted against [policy] max_errors */
	unsigned auth_failures;
	/* A login in flight. */
	msrv_login_cb *login_cb;
	auth_req_id auth_req;
	bool auth_pending;
	char pass[AUTH_PASSWORD_MAX + 1];
	size_t passlen;
};

struct msrv_proto {
	const char *name;      /* "pop3", "imap": logs, the session id's first letter */
	size_t sess_size;      /* of the protocol's session, a struct msrv_sess first */
	/* Lines the server writes itself: a refused connection (no session made). */
	const char *too_many;        /* "-ERR [SYS/TEMP] Too many connections..." */
	const char *too_many_per_ip; /* ... from your address */
	/* A new session (after the handshake on the implicit-TLS listener): greet. */
	void (*start)(struct msrv_sess *s);
	/* Bytes arrived (or a command finished) and the session is not busy. */
	void (*input)(struct msrv_sess *s);
	/* Idle past the protocol's timeout and not busy: say so; msrv closes it after. */
	void (*timeout)(struct msrv_sess *s);
	/* The server stops and the session is not busy: say so; msrv closes it after. */
	void (*shutdown)(struct msrv_sess *s);
	/*
	 * Optional: a busy session's queued output fell to nothing (it
	 * waited for msrv_output_full() to clear, to write more).
	 */
	void (*drain)(struct msrv_sess *s);
	/* Optional: every sweep, for each connected session (now as uv_now()). */
	void (*sweep)(struct msrv_sess *s, uint64_t now);
	/* The connection closed (status as conn's on_close): cancel and release. */
	void (*closed)(struct msrv_sess *s, int status);
	/* Optional: the last reference went; free what the protocol owns (not s). */
	void (*free)(struct msrv_sess *s);
};

struct msrv_opts {
	const struct config_listen *plain;    /* STARTTLS listener; may be empty */
	const struct config_listen *implicit; /* implicit-TLS listener; may be empty */
	uint64_t idle_ms;                     /* idle timeout */
};

/*
 * msrv_open - listen on opts' addresses for proto.  cfg (its [tls],
 * [mailbox] and [policy] keys), proto, auth and pol are borrowed and
 * must outlive the server; pol may be NULL (no lock-out); arg is the
 * protocol's (msrv_arg).  0, or a negative errno with err naming the
 * cause (an address in use, the certificate).
 */
int msrv_open(struct msrv **out, uv_loop_t *loop, const struct config *cfg,
    const struct msrv_proto *proto, const struct msrv_opts *opts, struct auth *auth,
    struct policy *pol, void *arg, char *err, size_t errsz);
void *msrv_arg(const struct msrv *srv);
const struct config *msrv_cfg(const struct msrv *srv);
uv_loop_t *msrv_loop(const struct msrv *srv);
bool msrv_stopping(const struct msrv *srv);
/* msrv_reload_tls - read [tls] cert and key again; sessions in TLS keep theirs. */
int msrv_reload_tls(struct msrv *srv, char *err, size_t errsz);
/* msrv_port - the port of the i-th socket of the implicit or plaintext listener (0: none). */
uint16_t msrv_port(const struct msrv *srv, bool implicit, unsigned i);
size_t msrv_sessions(const struct msrv *srv);
/*
 * msrv_stop - stop listening; each session not busy gets shutdown() and
 * is closed, a busy one when its command is answered (msrv_done); after
 * grace_ms the rest are cut.  done(arg) once every session is freed and
 * srv with them.
 */
void msrv_stop(struct msrv *srv, uint64_t grace_ms, void (*done)(void *arg), void *arg);

/* --- for the protocol's sessions ----------------------------------------------------- */

void msrv_ref(struct msrv_sess *s);
void msrv_unref(struct msrv_sess *s);
/* msrv_gone - the client went away (or the server cut it): only clean up. */
bool msrv_gone(const struct msrv_sess *s);
/* msrv_write - queue p[0..n) for the client (nothing once gone). */
void msrv_write(struct msrv_sess *s, const void *p, size_t n);
/* msrv_output_full - more than MSRV_OUT_HIGH bytes are queued: wait for drain(). */
bool msrv_output_full(const struct msrv_sess *s);
/* msrv_close - graceful close (queued output is written first). */
void msrv_close(struct msrv_sess *s);
/*
 * msrv_starttls - the protocol answered its STARTTLS command: drop what
 * the client pipelined after it (plaintext, RFC 2595 3.1 and the STARTTLS
 * injection rule in core/conn.h) and start the handshake; the session is
 * busy until it is done, then input() runs.  A failure closes the
 * session.
 */
void msrv_starttls(struct msrv_sess *s);
/*
 * msrv_done - the command the session was busy with is answered: run
 * input() for what is buffered, or, when the server is stopping,
 * shutdown() and close.  Nothing when gone.
 */
void msrv_done(struct msrv_sess *s);
/*
 * msrv_too_many_errors - count one bad command; true (and the protocol
 * should say so and close) once [policy] max_errors is reached.
 */
bool msrv_error(struct msrv_sess *s);
/*
 * msrv_login - check user's password for s: the address's lock-out
 * (policy_auth_check), the password (auth_verify), and on a wrong one
 * the failure counted for the address (policy_auth_failed) before cb
 * runs, so a pipelined next attempt already sees a lock.  s is busy and
 * holds a reference meanwhile; the password is copied and wiped as soon
 * as it was handed on.  cb runs exactly once unless the session is gone
 * first; then s->user is the verified name (OK) and s->authed is set.
 * Logged: "login ... result=ok|failed|locked_out|tempfail".
 */
void msrv_login(struct msrv_sess *s, const char *user, size_t ulen, const char *pass,
    size_t plen, msrv_login_cb *cb);

#endif
