/*
 * conn - a libuv TCP stream with optional OpenSSL over memory BIOs.
 * See conn.h for the contract.
 *
 * Memory.  An idle conn is the struct (a uv_tcp_t and a few fields), its
 * SSL (SSL_MODE_RELEASE_BUFFERS frees the record buffers when they are
 * empty) and two memory BIOs that are swapped for fresh ones whenever
 * they are empty and have grown past CONN_BIO_KEEP.  The read buffer
 * lives only from alloc_cb to the end of read_cb; under TLS it is
 * reused for the plaintext once the ciphertext is in the read BIO.
 *
 * Closing.  The conn is freed only in the uv_close() callback, which
 * libuv runs from its close phase, never nested inside one of our
 * callbacks; so conn_close()/conn_abort() from inside on_read, on_tls or
 * on_drain just set CONN_CLOSING and start the close, and the code that
 * called the callback checks the flag when it returns.  libuv runs every
 * pending write and shutdown callback (with UV_ECANCELED) before the
 * close callback, so requests never outlive their conn.
 */
#include "core/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"

/* A memory BIO whose buffer grew past this is replaced once empty. */
#define CONN_BIO_KEEP 4096
/* Plaintext handed to SSL_write() between two flushes of the write BIO. */
#define CONN_TLS_CHUNK (64 * 1024)

enum {
	CONN_CLIENT = 1 << 0,     /* made by conn_connect() */
	CONN_CONNECTING = 1 << 1, /* connect request pending */
	CONN_READING = 1 << 2,    /* the owner wants reads */
	CONN_CLOSING = 1 << 3,    /* closing: no more user callbacks but on_close */
	CONN_SHUTDOWN = 1 << 4,   /* uv_shutdown() pending */
	CONN_HCLOSED = 1 << 5,    /* uv_close() called */
	CONN_SILENT = 1 << 6,     /* failed set-up: no on_close */
	CONN_TLS_SERVER = 1 << 7,
	CONN_TLS_DONE = 1 << 8,   /* handshake complete */
	CONN_TLS_REPORTED = 1 << 9, /* on_tls was called */
	CONN_TLS_FAILED = 1 << 10, /* fatal TLS error: no close_notify */
	CONN_TLS_VERIFY = 1 << 11, /* client asked to verify the peer */
	CONN_TLS_VERIFIED = 1 << 12,
};

struct conn {
	uv_tcp_t tcp;              /* tcp.data = the conn */
	const struct conn_ops *ops;
	void *data;
	SSL *ssl;                  /* NULL in plaintext */
	struct buf held;           /* plaintext written before the handshake ended */
	size_t inflight;           /* bytes in uv_write requests not yet called back */
	long verify_result;        /* X509_V_* after a verifying handshake */
	int status;                /* for on_close */
	unsigned flags;
	uint16_t peer_port;
	uint16_t local_port;
	char peer[INET6_ADDRSTRLEN];
	char local[INET6_ADDRSTRLEN];
};

/* One uv_write() of bytes copied in after the struct. */
struct conn_wreq {
	uv_write_t req;
	struct conn *c;
	size_t len;
	char data[];
};

static void conn_closed_cb(uv_handle_t *h);
static void conn_fail(struct conn *c, int status);
static void conn_finish(struct conn *c, int status);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static int tls_flush(struct conn *c);
static int tls_write(struct conn *c, const char *p, size_t len);

/* --- addresses ------------------------------------------------------------ */

static void
addr_str(const struct sockaddr_storage *ss, char *dst, size_t size,
    uint16_t *port)
{
	dst[0] = '\0';
	*port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, dst, (socklen_t)size);
		*port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], dst,
			    (socklen_t)size);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, dst, (socklen_t)size);
		*port = ntohs(sin6->sin6_port);
	}
}

static void
conn_fill_local(struct conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;

	memset(&ss, 0, sizeof ss);
	if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
		addr_str(&ss, c->local, sizeof c->local, &c->local_port);
}

static void
conn_fill_peer(struct conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;

	memset(&ss, 0, sizeof ss);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
		addr_str(&ss, c->peer, sizeof c->peer, &c->peer_port);
}

/* --- life and death ------------------------------------------------------- */

static struct conn *
conn_new(uv_loop_t *loop, const struct conn_ops *ops, void *data)
{
	struct conn *c = xcalloc(1, sizeof *c);
	int r;

	/* uv_tcp_init() allocates nothing; it fails only on a bad loop. */
	if ((r = uv_tcp_init(loop, &c->tcp)) != 0)
		log_panic("conn", "tcp_init", "error=%s", uv_strerror(r));
	c->tcp.data = c;
	c->ops = ops;
	c->data = data;
	buf_init(&c->held);
	return c;
}

/* Close the handle now; conn_closed_cb() frees the conn. */
static void
conn_hclose(struct conn *c)
{
	if (c->flags & CONN_HCLOSED)
		return;
	c->flags |= CONN_HCLOSED | CONN_CLOSING;
	uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

static void
conn_closed_cb(uv_handle_t *h)
{
	struct conn *c = h->data;

	if (!(c->flags & CONN_SILENT)) {
		/* A handshake the owner waits for ends here, never inside a conn_* call. */
		if (c->ssl != NULL && !(c->flags & CONN_TLS_REPORTED) &&
		    c->ops->on_tls != NULL) {
			c->flags |= CONN_TLS_REPORTED;
			c->ops->on_tls(c, c->status);
		}
		if (c->ops->on_close != NULL)
			c->ops->on_close(c, c->status);
	}
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	buf_free(&c->held);
	free(c);
}

static void
shutdown_cb(uv_shutdown_t *req, int status)
{
	struct conn *c = req->handle->data;

	(void)status;
	free(req);
	c->flags &= ~CONN_SHUTDOWN;
	conn_hclose(c);
}

/*
 * Shut the write side down once every queued write is done (uv_shutdown
 * waits for them), then close.  A conn that never connected, or whose
 * shutdown cannot start, closes at once.
 */
static void
conn_shutdown(struct conn *c)
{
	uv_shutdown_t *req;

	if (c->flags & (CONN_HCLOSED | CONN_SHUTDOWN))
		return;
	if (c->flags & CONN_CONNECTING) {
		conn_hclose(c);
		return;
	}
	req = xmalloc(sizeof *req);
	if (uv_shutdown(req, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) {
		free(req);
		conn_hclose(c);
		return;
	}
	c->flags |= CONN_SHUTDOWN;
}

/*
 * The conn fails now (socket error): close at once.  A handshake still
 * under way is reported to on_tls from the close callback.
 */
static void
conn_fail(struct conn *c, int status)
{
	if (c->flags & CONN_CLOSING) {
		conn_hclose(c);
		return;
	}
	c->flags |= CONN_CLOSING;
	c->status = status;
	uv_read_stop((uv_stream_t *)&c->tcp);
	conn_hclose(c);
}

/*
 * The conn ends gracefully with status (0, UV_EOF, -EPROTO): flush,
 * close_notify, shutdown and close.
 */
static void
conn_finish(struct conn *c, int status)
{
	if (c->flags & CONN_CLOSING)
		return;
	c->flags |= CONN_CLOSING;
	c->status = status;
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (c->ssl != NULL && (c->flags & CONN_TLS_DONE) &&
	    !(c->flags & CONN_TLS_FAILED)) {
		ERR_clear_error();
		(void)SSL_shutdown(c->ssl);
		ERR_clear_error();
		tls_flush(c);
	}
	conn_shutdown(c);
}

void
conn_close(struct conn *c)
{
	if (c->flags & CONN_CLOSING)
		return;
	c->flags |= CONN_TLS_REPORTED; /* the owner closed: no on_tls */
	conn_finish(c, 0);
}

void
conn_abort(struct conn *c)
{
	if (!(c->flags & CONN_CLOSING)) {
		c->flags |= CONN_CLOSING | CONN_TLS_REPORTED;
		c->status = 0;
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
	conn_hclose(c);
}

bool
conn_is_closing(const struct conn *c)
{
	return (c->flags & CONN_CLOSING) != 0;
}

/* --- writing --------------------------------------------------------------- */

static void
write_cb(uv_write_t *req, int status)
{
	struct conn_wreq *w = (struct conn_wreq *)req;
	struct conn *c = w->c;

	c->inflight -= w->len;
	free(w);
	if (status < 0) {
		if (!(c->flags & CONN_CLOSING))
			log_debug("conn", "write_failed", "peer=%s:%u error=%s",
			    c->peer, c->peer_port, uv_strerror(status));
		conn_fail(c, status);
		return;
	}
	/* Not for the handshake's own flights: the owner has written nothing yet. */
	if (c->inflight == 0 && buf_unread(&c->held) == 0 &&
	    !(c->flags & CONN_CLOSING) && c->ops->on_drain != NULL &&
	    (c->ssl == NULL || (c->flags & CONN_TLS_DONE)))
		c->ops->on_drain(c);
}

/* Queue a request that already holds its bytes. */
static int
conn_submit(struct conn *c, struct conn_wreq *w)
{
	uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
	int r;

	w->c = c;
	r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
	if (r < 0) {
		free(w);
		conn_fail(c, r);
		return r;
	}
	c->inflight += w->len;
	return 0;
}

static struct conn_wreq *
wreq_new(size_t len)
{
	struct conn_wreq *w = xmalloc(sizeof *w + len);

	w->len = len;
	return w;
}

static int
plain_write(struct conn *c, const void *p, size_t len)
{
	struct conn_wreq *w;

	/* uv_buf_t lengths are unsigned int on Unix. */
	while (len > 0) {
		size_t n = len > (1u << 30) ? (1u << 30) : len;
		int r;

		w = wreq_new(n);
		memcpy(w->data, p, n);
		if ((r = conn_submit(c, w)) < 0)
			return r;
		p = (const char *)p + n;
		len -= n;
	}
	return 0;
}

int
conn_write(struct conn *c, const void *p, size_t len)
{
	if (c->flags & CONN_CLOSING)
		return -EPIPE;
	if (len == 0)
		return 0;
	if (c->ssl == NULL)
		return plain_write(c, p, len);
	if (!(c->flags & CONN_TLS_DONE) || buf_unread(&c->held) > 0) {
		buf_append(&c->held, p, len);
		return 0;
	}
	return tls_write(c, p, len);
}

size_t
conn_pending(const struct conn *c)
{
	return c->inflight + buf_unread(&c->held);
}

/* --- TLS -------------------------------------------------------------------- */

/* The most telling OpenSSL reason for the failure just seen; clears the queue. */
static const char *
tls_reason(int sslerr, char *dst, size_t size)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = NULL;

	if (e != 0)
		r = ERR_reason_error_string(e);
	if (r != NULL)
		str_copy(dst, r, size);
	else if (e != 0)
		snprintf(dst, size, "error %lu", e);
	else
		snprintf(dst, size, "SSL error %d", sslerr);
	ERR_clear_error();
	return dst;
}

static void
tls_fatal(struct conn *c, const char *event, int sslerr)
{
	char why[256], q[300];

	tls_reason(sslerr, why, sizeof why);
	log_warn("tls", event, "peer=%s:%u side=%s reason=%s", c->peer,
	    c->peer_port, (c->flags & CONN_TLS_SERVER) ? "server" : "client",
	    log_quotes(q, sizeof q, why));
	c->flags |= CONN_TLS_FAILED;
	/* The alert OpenSSL queued goes out before the shutdown. */
	tls_flush(c);
	conn_finish(c, -EPROTO);
}

/*
 * Replace an empty memory BIO whose buffer has grown large, so that an
 * idle conn does not keep the high-water mark of its last burst.
 */
static void
tls_trim(struct conn *c, bool rbio)
{
	BIO *b = rbio ? SSL_get_rbio(c->ssl) : SSL_get_wbio(c->ssl);
	BUF_MEM *bm = NULL;
	BIO *nb;

	if (b == NULL || BIO_ctrl_pending(b) != 0)
		return;
	BIO_get_mem_ptr(b, &bm);
	if (bm == NULL || bm->max <= CONN_BIO_KEEP)
		return;
	if ((nb = BIO_new(BIO_s_mem())) == NULL) {
		ERR_clear_error();
		return;
	}
	if (rbio)
		SSL_set0_rbio(c->ssl, nb);
	else
		SSL_set0_wbio(c->ssl, nb);
}

/* Move the ciphertext in the write BIO to the socket. */
static int
tls_flush(struct conn *c)
{
	BIO *wb = SSL_get_wbio(c->ssl);
	size_t n = BIO_ctrl_pending(wb);
	struct conn_wreq *w;
	int r;

	if (n == 0 || (c->flags & CONN_HCLOSED))
		return 0;
	w = wreq_new(n);
	if (BIO_read(wb, w->data, (int)n) != (int)n)
		log_panic("tls", "bio_read", "pending=%zu", n);
	if ((r = conn_submit(c, w)) < 0)
		return r;
	tls_trim(c, false);
	return 0;
}

static int
tls_write(struct conn *c, const char *p, size_t len)
{
	while (len > 0) {
		int n = len > CONN_TLS_CHUNK ? CONN_TLS_CHUNK : (int)len;
		int r, e;

		ERR_clear_error();
		r = SSL_write(c->ssl, p, n);
		if (r <= 0) {
			e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				/* Cannot happen over a memory BIO but be safe: retry after a read. */
				buf_append(&c->held, p, len);
				return tls_flush(c);
			}
			tls_fatal(c, "tls_error", e);
			return c->status;
		}
		if ((r = tls_flush(c)) < 0)
			return r;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Send the plaintext held back during the handshake. */
static int
tls_write_held(struct conn *c)
{
	struct buf held = c->held;
	int r;

	if (buf_unread(&held) == 0)
		return 0;
	buf_init(&c->held);
	r = tls_write(c, buf_rptr(&held), buf_unread(&held));
	buf_free(&held);
	return r;
}

static void
tls_done(struct conn *c)
{
	X509 *peer;

	c->flags |= CONN_TLS_DONE;
	if (c->flags & CONN_TLS_VERIFY) {
		peer = SSL_get0_peer_certificate(c->ssl);
		c->verify_result = peer == NULL ? X509_V_ERR_UNSPECIFIED :
		    SSL_get_verify_result(c->ssl);
		if (c->verify_result == X509_V_OK)
			c->flags |= CONN_TLS_VERIFIED;
	}
	log_debug("tls", "handshake_done", "peer=%s:%u side=%s version=%s cipher=%s verified=%s",
	    c->peer, c->peer_port, (c->flags & CONN_TLS_SERVER) ? "server" : "client",
	    SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
	    !(c->flags & CONN_TLS_VERIFY) ? "no" :
	    (c->flags & CONN_TLS_VERIFIED) ? "yes" :
	    X509_verify_cert_error_string(c->verify_result));
}

/*
 * Advance the handshake.  Returns true when it is done and the conn is
 * still open (read on), false when more input is needed or it closed.
 */
static bool
tls_handshake(struct conn *c)
{
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		tls_flush(c);
		tls_done(c);
		/* A failure here is reported to on_tls when the conn closes. */
		if (tls_write_held(c) < 0 || (c->flags & CONN_CLOSING))
			return false;
		c->flags |= CONN_TLS_REPORTED;
		if (c->ops->on_tls != NULL)
			c->ops->on_tls(c, 0);
		return !(c->flags & CONN_CLOSING);
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		ERR_clear_error();
		tls_flush(c);
		return false;
	}
	tls_fatal(c, "handshake_failed", e);
	return false;
}

/*
 * Ciphertext arrived in buf[0..n); buf (CONN_READ_SIZE bytes) is ours
 * until we return and holds the plaintext after the read BIO took it.
 */
static void
tls_input(struct conn *c, char *buf, size_t n)
{
	int r = 0, e = SSL_ERROR_NONE;

	if (BIO_write(SSL_get_rbio(c->ssl), buf, (int)n) != (int)n)
		log_panic("tls", "bio_write", "len=%zu", n);
	if (!(c->flags & CONN_TLS_DONE) && !tls_handshake(c))
		goto out;
	/* Deliver everything this read decrypts, a buffer at a time. */
	while (!(c->flags & CONN_CLOSING)) {
		size_t off = 0;

		ERR_clear_error();
		while (off < CONN_READ_SIZE) {
			r = SSL_read(c->ssl, buf + off, (int)(CONN_READ_SIZE - off));
			if (r <= 0)
				break;
			off += (size_t)r;
		}
		e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
		if (off > 0)
			c->ops->on_read(c, buf, off);
		if (c->flags & CONN_CLOSING)
			break;
		if (e == SSL_ERROR_NONE)
			continue;
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			ERR_clear_error();
			break;
		}
		if (e == SSL_ERROR_ZERO_RETURN) {
			/* close_notify: answer it and close. */
			ERR_clear_error();
			conn_finish(c, UV_EOF);
			break;
		}
		tls_fatal(c, "tls_error", e);
		break;
	}
	/* Output a WANT_READ held back (not expected over memory BIOs). */
	if (!(c->flags & CONN_CLOSING) && buf_unread(&c->held) > 0)
		tls_write_held(c);
	/* SSL_read() may have queued output: a KeyUpdate reply, an alert. */
	if (!(c->flags & CONN_HCLOSED))
		tls_flush(c);
out:
	if (c->ssl != NULL)
		tls_trim(c, true);
}

int
conn_start_tls(struct conn *c, SSL_CTX *ctx, bool server, const char *sni,
    bool verify)
{
	SSL *ssl;
	BIO *rb, *wb;
	unsigned char ip[sizeof(struct in6_addr)];
	char why[256], q[300];
	bool is_ip;
	int r, e = SSL_ERROR_SSL;

	if (c->flags & CONN_CLOSING)
		return -EPIPE;
	if (c->ssl != NULL)
		return -EALREADY;
	ERR_clear_error();
	if ((ssl = SSL_new(ctx)) == NULL) {
		ERR_clear_error();
		return -ENOMEM;
	}
	rb = BIO_new(BIO_s_mem());
	wb = BIO_new(BIO_s_mem());
	if (rb == NULL || wb == NULL) {
		BIO_free(rb);
		BIO_free(wb);
		SSL_free(ssl);
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_set_bio(ssl, rb, wb);
	SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
	c->ssl = ssl;
	if (server) {
		c->flags |= CONN_TLS_SERVER;
		SSL_set_accept_state(ssl);
		return 0;
	}
	SSL_set_connect_state(ssl);
	if (sni != NULL && sni[0] == '\0')
		sni = NULL;
	/* RFC 6066 section 3: no IP literals as server names. */
	is_ip = sni != NULL && (inet_pton(AF_INET, sni, ip) == 1 ||
	    inet_pton(AF_INET6, sni, ip) == 1);
	if (sni != NULL && !is_ip && SSL_set_tlsext_host_name(ssl, sni) != 1)
		goto fail;
	if (verify) {
		c->flags |= CONN_TLS_VERIFY;
		/* Verify but never abort: the result is only recorded. */
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
		if (sni != NULL && (is_ip ?
		    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), sni) :
		    SSL_set1_host(ssl, sni)) != 1)
			goto fail;
	}
	/* The ClientHello goes out now (after the connect if still pending). */
	r = SSL_do_handshake(ssl);
	e = SSL_get_error(ssl, r);
	if (r == 1 || (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE))
		goto fail;
	ERR_clear_error();
	if ((r = tls_flush(c)) < 0) {
		/* Closing already; the caller hears it here, not in on_tls. */
		c->flags |= CONN_TLS_REPORTED;
		return r;
	}
	return 0;

fail:
	tls_reason(e, why, sizeof why);
	log_warn("tls", "handshake_failed", "peer=%s:%u side=client reason=%s",
	    c->peer, c->peer_port, log_quotes(q, sizeof q, why));
	c->ssl = NULL;
	c->flags &= ~(CONN_TLS_VERIFY | CONN_TLS_SERVER);
	SSL_free(ssl);
	return -EPROTO;
}

bool
conn_is_tls(const struct conn *c)
{
	return c->ssl != NULL;
}

bool
conn_tls_done(const struct conn *c)
{
	return c->ssl != NULL && (c->flags & CONN_TLS_DONE);
}

const char *
conn_tls_version(const struct conn *c)
{
	return conn_tls_done(c) ? SSL_get_version(c->ssl) : NULL;
}

const char *
conn_tls_cipher(const struct conn *c)
{
	return conn_tls_done(c) ? SSL_get_cipher_name(c->ssl) : NULL;
}

int
conn_tls_bits(const struct conn *c)
{
	return conn_tls_done(c) ? SSL_get_cipher_bits(c->ssl, NULL) : 0;
}

bool
conn_tls_verified(const struct conn *c)
{
	return (c->flags & CONN_TLS_VERIFIED) != 0;
}

const char *
conn_tls_verify_error(const struct conn *c)
{
	if (!conn_tls_done(c) || !(c->flags & CONN_TLS_VERIFY))
		return NULL;
	if (c->flags & CONN_TLS_VERIFIED)
		return "";
	return X509_verify_cert_error_string(c->verify_result);
}

/* --- reading ---------------------------------------------------------------- */

static void
alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)h;
	(void)hint;
	buf->base = xmalloc(CONN_READ_SIZE);
	buf->len = CONN_READ_SIZE;
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;

	if (nread > 0 && !(c->flags & CONN_CLOSING)) {
		if (c->ssl != NULL)
			tls_input(c, buf->base, (size_t)nread);
		else
			c->ops->on_read(c, buf->base, (size_t)nread);
	} else if (nread == UV_EOF) {
		conn_finish(c, UV_EOF);
	} else if (nread < 0) {
		log_debug("conn", "read_failed", "peer=%s:%u error=%s", c->peer,
		    c->peer_port, uv_strerror((int)nread));
		conn_fail(c, (int)nread);
	}
	/* Also for nread 0 (EAGAIN) and errors: the buffer lives one read. */
	free(buf->base);
}

void
conn_read_stop(struct conn *c)
{
	c->flags &= ~CONN_READING;
	if (!(c->flags & (CONN_CLOSING | CONN_CONNECTING)))
		uv_read_stop((uv_stream_t *)&c->tcp);
}

void
conn_read_start(struct conn *c)
{
	int r;

	if (c->flags & CONN_CLOSING)
		return;
	c->flags |= CONN_READING;
	if (c->flags & CONN_CONNECTING)
		return;
	r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	if (r < 0 && r != UV_EALREADY)
		conn_fail(c, r);
}

/* --- accept and connect ---------------------------------------------------- */

int
conn_accept(struct conn **out, uv_stream_t *server, const struct conn_ops *ops,
    void *data)
{
	struct conn *c = conn_new(server->loop, ops, data);
	int r;

	*out = NULL;
	c->flags |= CONN_READING;
	if ((r = uv_accept(server, (uv_stream_t *)&c->tcp)) != 0 ||
	    (r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb)) != 0) {
		c->flags |= CONN_SILENT;
		conn_hclose(c);
		return r;
	}
	/* Replies are whole lines: do not let Nagle hold them back. */
	(void)uv_tcp_nodelay(&c->tcp, 1);
	conn_fill_peer(c);
	conn_fill_local(c);
	*out = c;
	return 0;
}

static void
connect_cb(uv_connect_t *req, int status)
{
	struct conn *c = req->handle->data;

	free(req);
	c->flags &= ~CONN_CONNECTING;
	if (c->flags & CONN_CLOSING) {
		/* The owner gave up first: the handle is already closing. */
		conn_hclose(c);
		return;
	}
	if (status < 0) {
		if (c->ops->on_connect != NULL)
			c->ops->on_connect(c, status);
		conn_fail(c, status);
		return;
	}
	(void)uv_tcp_nodelay(&c->tcp, 1);
	conn_fill_local(c);
	if (c->ops->on_connect != NULL)
		c->ops->on_connect(c, 0);
	if (!(c->flags & CONN_CLOSING) && (c->flags & CONN_READING))
		conn_read_start(c);
}

int
conn_connect(struct conn **out, uv_loop_t *loop, const struct sockaddr *addr,
    const struct sockaddr *bind_addr, const struct conn_ops *ops, void *data)
{
	struct conn *c;
	struct sockaddr_storage ss;
	uv_connect_t *req;
	int r;

	*out = NULL;
	if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
		return -EAFNOSUPPORT;
	c = conn_new(loop, ops, data);
	c->flags |= CONN_CLIENT | CONN_READING;
	memset(&ss, 0, sizeof ss);
	memcpy(&ss, addr, addr->sa_family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	addr_str(&ss, c->peer, sizeof c->peer, &c->peer_port);
	if (bind_addr != NULL &&
	    (r = uv_tcp_bind(&c->tcp, bind_addr, 0)) != 0)
		goto fail;
	req = xmalloc(sizeof *req);
	if ((r = uv_tcp_connect(req, &c->tcp, addr, connect_cb)) != 0) {
		free(req);
		goto fail;
	}
	c->flags |= CONN_CONNECTING;
	*out = c;
	return 0;

fail:
	c->flags |= CONN_SILENT;
	conn_hclose(c);
	return r;
}

void *
conn_data(const struct conn *c)
{
	return c->data;
}

void
conn_set_data(struct conn *c, void *data)
{
	c->data = data;
}

const char *
conn_peer_addr(const struct conn *c)
{
	return c->peer;
}

uint16_t
conn_peer_port(const struct conn *c)
{
	return c->peer_port;
}

const char *
conn_local_addr(const struct conn *c)
{
	return c->local;
}

uint16_t
conn_local_port(const struct conn *c)
{
	return c->local_port;
}
