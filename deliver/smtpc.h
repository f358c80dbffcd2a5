/*
 * smtpc - the SMTP client of kurier's delivery workers: one struct smtpc
 * is one connection to one server (an MX host or a smarthost) over
 * core/conn, speaking RFC 5321 with PIPELINING (RFC 2920), STARTTLS
 * (RFC 3207), AUTH PLAIN/LOGIN (RFC 4954), SIZE (RFC 1870), 8BITMIME
 * (RFC 6152), SMTPUTF8 (RFC 6531), DSN (RFC 3461) and enhanced status
 * codes (RFC 2034).  The worker above decides which server, retries and
 * outcomes; smtpc speaks the protocol and reports precisely what
 * happened, at which stage, with the server's replies.
 *
 * Life cycle.  smtpc_open() connects and runs the set-up (greeting,
 * EHLO, STARTTLS, EHLO again, AUTH) and calls ready once.  After a
 * successful ready the owner runs transactions with smtpc_send(), one
 * at a time, and ends with smtpc_quit() or smtpc_abort().  The smtpc is
 * freed by smtpc itself, in the loop's close phase, after the closed
 * callback (smtpc_on_close) ran; that happens exactly once whichever way
 * it ends: quit, abort, a failed ready, a timeout, the peer closing an
 * idle connection.  Until then the pointer stays valid, and smtpc_quit(),
 * smtpc_abort(), smtpc_info() and smtpc_usable() may be called even on a
 * smtpc that is closing (a transaction reported connection_lost); it
 * must not be used once the closed callback ran.  After a failed ready
 * the smtpc is closing and frees itself: the owner may use c inside the
 * ready callback (smtpc_abort() is allowed and changes nothing) but
 * should forget it when the callback returns, unless it waits for the
 * closed callback, which still runs if set.
 *
 * Callbacks (ready, txn, closed) always run from the loop, never from
 * inside an smtpc_* call; any smtpc_* call may be made from inside them
 * (smtpc_send from a txn callback starts the next transaction).  After
 * smtpc_quit() or smtpc_abort() a pending ready or txn callback is NOT
 * called: the owner gave up on it; only the closed callback follows.
 *
 * Errors are 0 or negative errno values (UV_E* numbers on Unix):
 *   -ETIMEDOUT       a timeout of RFC 5321 4.5.3.2 (or connect) ran out;
 *                    the connection is aborted
 *   -ECONNRESET      the connection was lost (peer closed or reset)
 *   -EPROTO          a malformed reply, a TLS handshake failure, a refused
 *                    STARTTLS; the connection is closed
 *   -EREMOTEIO       the server refused a command (the reply says how)
 *   -EACCES          the server refused AUTH (535, 454, ...)
 *   -EPROTONOSUPPORT the server lacks what is required (STARTTLS with
 *                    require_tls, AUTH, 8BITMIME, SMTPUTF8)
 *   -EMSGSIZE        the message is larger than the server's SIZE
 *   -ENOENT          no recipient was accepted
 *   a connect error  from the TCP connect (-ECONNREFUSED, -ENETUNREACH)
 *
 * Timeouts (RFC 5321 4.5.3.2; a 0 in smtpc_opts takes the RFC's value,
 * or 30 s for connect): connect; greeting; each command's reply (EHLO,
 * HELO, STARTTLS and the TLS handshake, AUTH, RSET, MAIL, RCPT, QUIT);
 * DATA's 354; each block of message data written (no progress for
 * data_block_ms); the reply after the final dot.  A timeout aborts the
 * connection and fails what is pending with -ETIMEDOUT at its stage.
 *
 * Logs: component "smtpc", debug level only: every command sent (AUTH's
 * arguments masked, never a password) and every reply received.
 */
#ifndef KURIER_DELIVER_SMTPC_H
#define KURIER_DELIVER_SMTPC_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

#include "deliver/smtpreply.h"

#define SMTPC_TEXT_SIZE SMTPREPLY_TEXT_SIZE
#define SMTPC_RCPT_MAX 1000      /* recipients in one transaction */
#define SMTPC_ADDR_MAX 512       /* bytes of an address given to smtpc_send */
#define SMTPC_QUIT_WAIT_MS 5000  /* longest wait for QUIT's reply, then close */

struct smtpc;

struct smtpc_opts {
	uv_loop_t *loop;
	const struct sockaddr *addr;        /* server address with port (copied) */
	const struct sockaddr *bind_addr;   /* outbound_ip (port 0) or NULL (copied) */
	const char *host;                   /* server name: SNI, certificate name check, logs */
	const char *helo;                   /* our hostname for EHLO/HELO */
	SSL_CTX *tls;                       /* client context (referenced per SSL); NULL = never TLS */
	/*
	 * No STARTTLS offered, STARTTLS refused or the handshake failed:
	 * fail the set-up rather than go on in plaintext.  Needs tls.
	 */
	bool require_tls;
	/*
	 * Smarthost credentials (both or neither; each at most 255 bytes;
	 * copied, and wiped when the smtpc is freed).  AUTH PLAIN, or
	 * LOGIN when only that is offered, after TLS only: a server that
	 * does not offer STARTTLS fails the set-up at SMTPC_AUTH instead of
	 * seeing the password in plaintext.  Needs tls.
	 */
	const char *auth_user, *auth_pass;
	uint64_t connect_ms, greeting_ms, command_ms, data_init_ms,
	    data_block_ms, data_end_ms;
};

/*
 * A server's reply.  code 0 means there was none (refused connect,
 * timeout, TLS failure, lost connection, a check made before sending);
 * text then says what happened in kurier's words ("timed out waiting
 * for the greeting").  Otherwise text is the whole reply as smtpreply.h
 * keeps it: "550 5.1.1 No such user / 5.1.1 second line", printable
 * ASCII, at most SMTPC_TEXT_SIZE - 1 bytes.  A reply smtpc makes up
 * itself (SIZE, 8BITMIME, SMTPUTF8 checks) has a code and says so in
 * its text ("552 5.3.4 Message too big for this server (...)").
 */
struct smtpc_reply {
	int code;
	char text[SMTPC_TEXT_SIZE];
};

/* What the set-up found; valid after a successful ready, until freed. */
struct smtpc_info {
	char peer[64];            /* "192.0.2.1:25", "[2001:db8::1]:25" */
	char local_ip[64];        /* our side's IP (SPF preflight uses it) */
	bool tls;                 /* the handshake completed */
	const char *tls_version;  /* "TLSv1.3"; NULL without TLS (static strings) */
	const char *tls_cipher;
	bool tls_verified;        /* chain and host name checked out */
	char tls_verify_error[128]; /* why not ("self-signed certificate"); "" if verified or no TLS */
	bool esmtp;               /* EHLO was accepted (else HELO: no extensions) */
	bool authenticated;       /* AUTH succeeded */
	bool pipelining, ext8bitmime, smtputf8, dsn, enhancedstatuscodes;
	uint64_t size_max;        /* 0 = no SIZE limit announced */
	/* Transactions whose MAIL was sent on this connection, whatever came of them. */
	unsigned transactions;
};

enum smtpc_stage {
	SMTPC_CONNECT,
	SMTPC_GREETING,
	SMTPC_EHLO,      /* EHLO, or HELO after EHLO was refused */
	SMTPC_STARTTLS,
	SMTPC_TLS,       /* the handshake */
	SMTPC_AUTH,
	SMTPC_MAIL,
	SMTPC_RCPT,
	SMTPC_DATA,      /* DATA and its 354, then the message data being sent */
	SMTPC_DOT,       /* the final dot was queued: waiting for the final reply */
	SMTPC_RSET,
	SMTPC_QUIT,
};

/* smtpc_stage_name - "connect", "greeting", ..., "quit"; "?" if unknown. */
const char *smtpc_stage_name(enum smtpc_stage s);

/*
 * ready - the set-up ended.  status 0: c is idle and usable, smtpc_info()
 * is filled; stage is SMTPC_AUTH with AUTH's 235, else SMTPC_EHLO with
 * the EHLO (or HELO) reply.  Else a negative errno (see the top), the stage where it
 * stopped and the reply behind it (code 0 when none, e.g. -ETIMEDOUT,
 * -EPROTO of a handshake, -ECONNRESET).  Refusals: a greeting other than
 * 220 (-EREMOTEIO at SMTPC_GREETING), EHLO and then HELO refused
 * (-EREMOTEIO at SMTPC_EHLO; only a 5xx to EHLO leads to HELO), a reply
 * other than 220 to STARTTLS (-EPROTO at SMTPC_STARTTLS), no STARTTLS
 * offered with require_tls (-EPROTONOSUPPORT at SMTPC_STARTTLS), no TLS
 * or no usable mechanism for AUTH (-EPROTONOSUPPORT at SMTPC_AUTH), AUTH
 * refused (-EACCES at SMTPC_AUTH).  After a failed ready the smtpc is
 * already closing (QUIT first when the dialogue is still in step, a
 * plain close after a 421, an abort after a timeout or a malformed
 * reply) and frees itself (see the top of this file).  reply is valid
 * during the call.
 */
typedef void smtpc_ready_cb(void *arg, struct smtpc *c, int status,
    enum smtpc_stage stage, const struct smtpc_reply *reply);

/*
 * smtpc_open - start connecting.  o and its strings are copied (tls is
 * referenced by each SSL made from it, so the caller may free or swap
 * its context afterwards).  Returns 0 with *out set and cb(arg, ...) to
 * come exactly once (unless the owner quits or aborts first); or
 * -EINVAL (missing loop, addr, host or helo; a helo or host with spaces
 * or controls or over 255 bytes; require_tls or credentials without tls;
 * one credential without the other or one over 255 bytes) or a connect
 * set-up error (-EAFNOSUPPORT, a bind error), with *out NULL and no
 * callback to come.
 */
int smtpc_open(struct smtpc **out, const struct smtpc_opts *o,
    smtpc_ready_cb *cb, void *arg);

struct smtpc_rcpt {
	const char *addr;   /* without <> */
	/*
	 * RFC 3461 ORCPT as the queue keeps it: addr-type ";" the decoded
	 * address ("rfc822;a+b@example.com"); smtpc xtext-encodes the
	 * address.  NULL for none.
	 */
	const char *orcpt;
	unsigned notify;    /* NOTIFY_* of queue/envelope.h; 0 = none */
};

/*
 * One transaction.  Borrowed: t and everything it points at (addresses,
 * pieces and their bytes) must stay unchanged until the txn callback ran
 * or the smtpc is gone.  The message data is never copied whole.
 */
struct smtpc_txn {
	const char *mail_from;  /* without <>, "" = null sender */
	uint64_t size;          /* SIZE= when offered and not 0: the exact bytes to be sent incl. prefix */
	/*
	 * The body has 8-bit data: BODY=8BITMIME is sent.  When the server
	 * lacks 8BITMIME the transaction fails before MAIL (no conversion:
	 * the signatures cover the body as it is): -EPROTONOSUPPORT at
	 * SMTPC_MAIL with the reply "450 4.6.3 ..." made up, a temporary
	 * failure on this server (another MX, or a later try, may do).
	 */
	bool body8bit;
	/*
	 * Needs SMTPUTF8 (RFC 6531): SMTPUTF8 is sent.  When the server
	 * lacks it: -EPROTONOSUPPORT at SMTPC_MAIL with "553 5.6.7 ..." made
	 * up, permanent (RFC 6531 3.2).
	 */
	bool smtputf8;
	/*
	 * RFC 3461 ENVID (decoded; smtpc xtext-encodes it; NULL for none)
	 * and RET (RET_* of queue/envelope.h), sent only when the server
	 * offers DSN, as NOTIFY and ORCPT are.  Without DSN they are left
	 * out and smtpc_info()->dsn tells the worker, which owes the
	 * "relayed" notice of RFC 3461 4.1 itself.
	 */
	const char *envid;
	unsigned ret;
	size_t nrcpt;           /* 1..SMTPC_RCPT_MAX */
	const struct smtpc_rcpt *rcpt;
	/*
	 * The message as pieces sent back to back (signature headers, the
	 * stored header section, the body), CRLF line ends.  smtpc
	 * dot-stuffs a '.' that starts a line (after any LF, at piece
	 * boundaries too), sends bare CR and LF as they are, and ends with
	 * CRLF "." CRLF, adding a CRLF first when the data is not empty
	 * and does not end with one.
	 */
	size_t npieces;
	const struct iovec *pieces;
};

/*
 * The outcome of one transaction, valid during the txn callback only.
 * status:
 *   0                 DATA's final reply was received: data holds it,
 *                     whatever its code (2xx delivered, 4xx/5xx for all
 *                     the accepted recipients); stage SMTPC_DOT
 *   -EMSGSIZE         SIZE announced and t->size above it: nothing sent,
 *                     stage SMTPC_MAIL, mail "552 5.3.4 ..." made up
 *                     (permanent for this server)
 *   -EPROTONOSUPPORT  8BITMIME or SMTPUTF8 lacking, see smtpc_txn
 *   -EREMOTEIO        the server refused RSET (stage SMTPC_RSET, its
 *                     reply in mail; the connection is then quit), MAIL
 *                     (SMTPC_MAIL, mail) or DATA (SMTPC_DATA, data holds
 *                     the reply that came instead of 354, or one that
 *                     came while the data was being sent: the connection
 *                     is then aborted), or said 421 (the stage where)
 *   -ENOENT           no RCPT got a 2xx: stage SMTPC_RCPT, the replies in
 *                     rcpt[]; DATA is not sent, or (pipelined) answered
 *                     by the server's refusal or, after a 354 it should
 *                     not have given, by a lone dot; data stays code 0.
 *                     No RSET now: the next smtpc_send starts with one
 *   -ETIMEDOUT, -ECONNRESET, -EPROTO
 *                     the connection failed at stage; connection_lost.
 *                     At SMTPC_DOT the message may have been delivered
 *                     (RFC 1047): the worker retries, a duplicate is the
 *                     lesser risk
 */
struct smtpc_result {
	int status;
	enum smtpc_stage stage;     /* where it stopped */
	struct smtpc_reply mail;    /* MAIL's reply (RSET's at SMTPC_RSET) */
	/*
	 * nrcpt entries.  code 0: not sent, not answered, or answered after
	 * a refused MAIL in a pipelined group (a "503" that says nothing
	 * about the recipient): when stage is SMTPC_MAIL or SMTPC_RSET the
	 * MAIL/RSET reply decides for every recipient.
	 */
	struct smtpc_reply *rcpt;
	struct smtpc_reply data;    /* DATA's non-354 reply, or the final reply */
	/* The connection ended, or smtpc is closing it: c is not usable again. */
	bool connection_lost;
	char error[128];            /* when status < 0: what happened, kurier's words */
	uint64_t elapsed_ms;        /* from smtpc_send to the callback */
};

typedef void smtpc_txn_cb(void *arg, struct smtpc *c,
    const struct smtpc_result *res);

/*
 * smtpc_send - run one transaction; cb(arg, c, res) is called exactly
 * once (unless the owner quits or aborts first).  RSET comes first when a
 * MAIL was already sent on this connection.  With PIPELINING, RSET, MAIL,
 * every RCPT and DATA go in one write (RFC 2920 3.1) and the replies
 * are matched in order; without it, lock-step.  DATA is sent (lock-step)
 * only when at least one RCPT got a 2xx.  A 421 reply to anything ends
 * the transaction there (RFC 5321 3.8) and smtpc closes the connection
 * (connection_lost).
 * Returns 0; -EBUSY when c is not idle (set-up under way, a transaction
 * running, closing); -EINVAL for a bad t (no recipients, a control
 * character in an address, ENVID or ORCPT, an ORCPT without ';', an
 * address over SMTPC_ADDR_MAX, a piece without base); -E2BIG for more
 * than SMTPC_RCPT_MAX recipients.  No callback follows an error return.
 */
int smtpc_send(struct smtpc *c, const struct smtpc_txn *t, smtpc_txn_cb *cb,
    void *arg);

/* smtpc_info - what the set-up found (see struct smtpc_info); owned by c. */
const struct smtpc_info *smtpc_info(const struct smtpc *c);

/* smtpc_usable - idle, connected, not closing: may take another smtpc_send. */
bool smtpc_usable(const struct smtpc *c);

/*
 * smtpc_on_close - closed_cb(arg, c) runs exactly once, when c is freed,
 * whichever way it ends.  Replaces an earlier one; NULL for none.
 */
void smtpc_on_close(struct smtpc *c, void (*closed_cb)(void *arg, struct smtpc *c),
    void *arg);

/*
 * smtpc_quit - end politely: when idle, send QUIT, wait for its reply at
 * most min(command_ms, SMTPC_QUIT_WAIT_MS), then close (the graceful
 * close is bounded by the same time, then aborted).  While the set-up or
 * a transaction is under way the dialogue is not in step: it aborts
 * instead.  Idempotent; pending ready/txn callbacks are not called.
 */
void smtpc_quit(struct smtpc *c);

/* smtpc_abort - close now, dropping queued output; idempotent. */
void smtpc_abort(struct smtpc *c);

#endif
