/*
 * conn - one TCP connection on the libuv loop, plaintext or TLS, shared by
 * the SMTP server (relay), the SMTP client (deliver) and IMAP/POP3
 * (mailbox).
 *
 * TLS runs over two memory BIOs, never a socket BIO: ciphertext read from
 * the socket is written into the SSL's read BIO and SSL_read() drains the
 * plaintext to on_read; conn_write() goes through SSL_write() and the
 * write BIO is flushed to uv_write().  Only TLS 1.2 and 1.3 are expected
 * (the context decides, see tlsctx.h); renegotiation is refused.
 *
 * Ownership.  The conn owns its uv_tcp_t, its SSL (which holds a
 * reference to the SSL_CTX, so the caller may free or swap its context at
 * any time: see tlsctx.h) and its output.  The owner keeps the struct
 * conn pointer from conn_accept()/conn_connect() until on_close, which
 * runs exactly once; the conn is freed when on_close returns.  The owner's
 * data pointer (conn_data) is never touched.
 *
 * Callbacks.  Every callback runs from the loop, never from inside a
 * conn_* call, so the owner's state is never changed under its feet by
 * a call it makes.  Any conn_* function
 * may be called from inside any callback: conn_close() and conn_abort()
 * only mark the conn and start closing; it is freed later, in the libuv
 * close callback, never while one of its callbacks is running.  After
 * conn_close()/conn_abort() no on_read, on_tls, on_connect or on_drain
 * follows, only on_close.
 *
 * Reads.  Each socket read goes to a buffer of CONN_READ_SIZE bytes that
 * exists only for the duration of the read (an idle conn holds none).
 * All the bytes of one socket read are handed to on_read before the next
 * read; under TLS, the plaintext decrypted from one socket read is
 * delivered in one or more on_read calls (one per CONN_READ_SIZE), all of
 * them before conn_read_stop() takes effect.  Hence, in plaintext, one
 * on_read call carries every byte of its socket read: the conn keeps no
 * plaintext of its own.
 *
 * STARTTLS (RFC 3207 section 4, RFC 2595 section 3.1 for IMAP/POP3).  A
 * server that sees STARTTLS inside on_read replies "220", then calls
 * conn_start_tls(): the 220 goes out in plaintext, everything written
 * afterwards is encrypted, and every byte read from the socket afterwards
 * is TLS.  Whatever plaintext the client sent after the STARTTLS line
 * (in the same on_read, or in the caller's line buffer) was read before
 * the switch and MUST be discarded by the caller, not parsed as commands:
 * that is the command injection of CVE-2011-0411.  Likewise an SMTP
 * client discards what follows the 220 reply before it calls
 * conn_start_tls().  A client that sends its ClientHello in the same
 * segment as STARTTLS (not allowed: it must wait for the 220) sees its
 * ClientHello discarded as plaintext and the handshake time out.
 *
 * Closing.  conn_close() is graceful: reading stops, queued output is
 * written, under TLS a close_notify follows, then the write side is shut
 * down and the socket closed.  It has no timer of its own: a peer that
 * never reads keeps the conn open, so the owner's timeout calls
 * conn_abort(), which closes at once and drops queued output.  A peer's
 * EOF or close_notify closes the same graceful way with status UV_EOF.
 *
 * The process must ignore SIGPIPE (signal(SIGPIPE, SIG_IGN), as kurierd's
 * main does): libuv writes with writev(2), and a write to a socket the
 * peer reset would otherwise kill it.
 *
 * Errors are 0 or negative errno values, the UV_E* numbers on Unix
 * (uv_strerror() names them).  TLS failures are -EPROTO, logged by the
 * conn with log_warn (component "tls": peer address and the OpenSSL
 * reason, never data).
 */
#ifndef KURIER_CORE_CONN_H
#define KURIER_CORE_CONN_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Bytes read from the socket at a time (a TLS record and then some). */
#define CONN_READ_SIZE (16 * 1024 + 512)

struct conn;

struct conn_ops {
	/*
	 * Client conns only: the TCP connect succeeded (0) or failed
	 * (negative errno; on_close follows with the same status).  Reading
	 * starts when on_connect returns 0.  Not called when the owner
	 * closed the conn before the connect completed.
	 */
	void (*on_connect)(struct conn *c, int status);
	/* Plaintext (decrypted under TLS); data is valid during the call only. */
	void (*on_read)(struct conn *c, const char *data, size_t len);
	/*
	 * Called exactly once after conn_start_tls() returned 0, unless the
	 * owner closed the conn first: 0 when the handshake is done, else a
	 * negative errno (-EPROTO for a TLS failure, UV_EOF when the peer
	 * closed, a socket error) right before on_close with the same status.
	 * May be NULL when TLS is never started.
	 */
	void (*on_tls)(struct conn *c, int status);
	/*
	 * Optional: every byte queued has been written (conn_pending() is 0).
	 * Also after output of TLS's own (a session ticket), so it may come
	 * when the owner wrote nothing; never during the handshake or once
	 * the conn is closing.
	 */
	void (*on_drain)(struct conn *c);
	/*
	 * Exactly once.  status is 0 after the owner's conn_close() or
	 * conn_abort(), UV_EOF when the peer closed (EOF or close_notify),
	 * -EPROTO after a TLS failure, else the socket error.  The conn is
	 * freed when on_close returns.
	 */
	void (*on_close)(struct conn *c, int status);
};

/*
 * conn_accept - accept one pending connection on server (call it from the
 * listener's accept callback) and start reading.  ops is borrowed and must
 * outlive the conn (a static table).  Returns 0 with *out set, or a
 * negative errno with *out NULL and no callback to come (what was set up
 * is freed when the loop runs its close callback).
 */
int conn_accept(struct conn **out, uv_stream_t *server,
    const struct conn_ops *ops, void *data);

/*
 * conn_connect - connect to addr, from bind_addr when not NULL (port 0
 * for any).  Both addresses are copied.  Returns 0 with *out set and
 * on_connect to come, or a negative errno (a bad address, bind failure)
 * with *out NULL and no callback to come, as for conn_accept().
 * conn_write() and conn_start_tls() before on_connect are allowed: output
 * waits for the connect.
 */
int conn_connect(struct conn **out, uv_loop_t *loop,
    const struct sockaddr *addr, const struct sockaddr *bind_addr,
    const struct conn_ops *ops, void *data);

void *conn_data(const struct conn *c);
void conn_set_data(struct conn *c, void *data);

/*
 * conn_start_tls - switch the conn to TLS with a new SSL from ctx (which
 * the SSL references, so ctx may be freed by the caller afterwards).
 *
 * server: accept a handshake, right after conn_accept() for implicit TLS
 * (RFC 8314) or after the 220 reply to STARTTLS.  The client side sends
 * its ClientHello at once; sni (may be NULL) is sent as the server name
 * unless it is an IP address (RFC 6066 section 3).
 *
 * The conn has no plaintext buffer of its own: every byte read before
 * this call was already handed to on_read, and every byte read after it
 * is TLS.  The caller must drop whatever plaintext it had read and not
 * consumed when it calls this (the STARTTLS injection rule, RFC 3207
 * section 4); see the top of this file.  Called inside on_read, the rest
 * of that on_read's data is the caller's to discard.
 *
 * verify (client side): check the peer's chain against ctx's trust store
 * and, when sni is set, the host name (RFC 6125, via SSL_set1_host) or
 * the IP address it spells.  Without sni only the chain is checked.  The
 * outcome is only recorded (conn_tls_verified, conn_tls_verify_error):
 * the handshake goes on either way, as opportunistic SMTP delivery wants.
 * Ignored on the server side.
 *
 * conn_write() may be called right away: plaintext written before the
 * handshake completes is held and sent encrypted after it.  The handshake
 * progresses only while reading is on.  on_tls reports the outcome.
 * Returns 0; -EALREADY when TLS was already started; -EPIPE when closing;
 * -EPROTO (logged) when the client could not even start the handshake
 * (no usable protocol version, say), the conn then staying in plaintext
 * for the owner to close; -ENOMEM.
 */
int conn_start_tls(struct conn *c, SSL_CTX *ctx, bool server, const char *sni,
    bool verify);

/*
 * conn_write - queue len bytes (copied) for the peer.  Returns 0, or
 * -EPIPE when the conn is closing (nothing queued), or the error that
 * made it start closing.
 */
int conn_write(struct conn *c, const void *p, size_t len);

/*
 * conn_pending - bytes queued and not yet written to the socket (under
 * TLS: plaintext held until the handshake ends plus ciphertext).  Owners
 * stop reading while it is above their limit and resume in on_drain.
 */
size_t conn_pending(const struct conn *c);

/*
 * conn_read_stop / conn_read_start - backpressure.  Stopping inside on_read
 * takes effect after the rest of the current socket read (see above).
 * Both are no-ops on a closing conn.
 */
void conn_read_stop(struct conn *c);
void conn_read_start(struct conn *c);

/*
 * conn_close - graceful: flush output (and TLS close_notify), then close;
 * idempotent.  A client conn still connecting closes at once.
 */
void conn_close(struct conn *c);
/* conn_abort - close now, dropping queued output; idempotent, may follow conn_close. */
void conn_abort(struct conn *c);
bool conn_is_closing(const struct conn *c);

/* True once conn_start_tls() succeeded (the handshake may be under way). */
bool conn_is_tls(const struct conn *c);
/* The handshake completed. */
bool conn_tls_done(const struct conn *c);
/* "TLSv1.3", "TLSv1.2"; NULL until the handshake is done. */
const char *conn_tls_version(const struct conn *c);
/* "TLS_AES_256_GCM_SHA384"; NULL until the handshake is done. */
const char *conn_tls_cipher(const struct conn *c);
/* Secret bits of the cipher (128, 256); 0 until the handshake is done. */
int conn_tls_bits(const struct conn *c);
/* Client side with verify: the chain (and name) checked out.  Else false. */
bool conn_tls_verified(const struct conn *c);
/*
 * Why verification failed ("self-signed certificate", "hostname
 * mismatch"); "" when verified; NULL when not verified at all.
 */
const char *conn_tls_verify_error(const struct conn *c);

/* The peer's address, "192.0.2.1" or "2001:db8::1" (IPv4-mapped shown as IPv4). */
const char *conn_peer_addr(const struct conn *c);
uint16_t conn_peer_port(const struct conn *c);
/* The local address; "" for a client conn before on_connect. */
const char *conn_local_addr(const struct conn *c);
uint16_t conn_local_port(const struct conn *c);

#endif
