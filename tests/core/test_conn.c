/*
 * test_conn - core/conn, core/tlsctx and core/listener: real TLS between
 * a conn server and a conn client in one loop on 127.0.0.1, ports chosen
 * by the kernel.
 *
 * Each test builds a harness: a loop, a mkdtemp() data_dir holding the
 * self-signed pair tlsctx_server() generates, a listener, and two sides
 * (server, client) whose callbacks record what happened and call the
 * test's hooks.  run() runs the loop until every handle is closed (a
 * 5-second timer aborts a stuck test) and asserts uv_loop_close() == 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/conn.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/tlsctx.h"
#include "tests/suites.h"
#include "tests/tmpdir.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define HOSTNAME "mail.test.example"
#define BIG (1024 * 1024)
#define FLUSH_SIZE (256 * 1024)
/*
 * The watchdog: a test is stuck when STALL_TICKS ticks of the loop in a
 * row saw no connection callback.  It counts ticks, not time, so a slow
 * or descheduled run is not taken for a stuck one.
 */
#define STALL_TICK_MS 1000
#define STALL_TICKS 10
#define LOG_CAP (64 * 1024)

struct side {
	struct conn *c;
	struct buf in;                 /* plaintext received, unless !keep */
	bool keep;
	size_t nreads;
	int nconnect, connect_status;
	int ntls, tls_status;
	int nclose, close_status;
	int ndrain;
	/* At on_tls(0): */
	char version[16];
	char cipher[64];
	int bits;
	bool verified;
	char verify_error[64];
	bool verify_error_null;
	/* At on_tls or on_connect: */
	char peer[64], local[64];
	uint16_t peer_port, local_port;
	void (*connect_hook)(struct side *s, int status);
	void (*read_hook)(struct side *s, const char *p, size_t n);
	void (*tls_hook)(struct side *s, int status);
};

struct harness {
	uv_loop_t loop;
	uv_timer_t timer;
	bool timed_out;
	unsigned long events;          /* connection callbacks so far */
	unsigned long events_seen;     /* ... at the watchdog's last tick */
	unsigned idle_ticks;           /* ticks in a row without one */
	char dir[64];
	char crt[PATH_MAX], key[PATH_MAX];
	struct config cfg;
	SSL_CTX *sctx, *cctx;
	struct listener *l;
	uint16_t port;
	struct side srv, cli;
	bool server_tls;               /* implicit TLS on accept */
	bool client_tls;               /* client starts TLS once connected */
	const char *sni;
	bool verify;
	void (*accept_hook)(struct side *s);
	size_t count;                  /* bytes checked by a pattern test */
	bool flag;
	int logpipe[2];
	char log[LOG_CAP];
	size_t loglen;
};

static struct harness *H;
/*
 * One client context for the tests that do not change theirs: loading
 * the system trust store takes ~0.1 s under AddressSanitizer.
 */
static SSL_CTX *shared_cctx;

static void
suite_setup(void)
{
	char err[CONFIG_ERR_MAX] = "";

	if (shared_cctx == NULL)
		ck_assert_msg(tlsctx_client(&shared_cctx, err, sizeof err) == 0, "%s", err);
}

static void
suite_teardown(void)
{
	SSL_CTX_free(shared_cctx);
	shared_cctx = NULL;
}

/* A client context of the test's own, to change. */
static void
own_cctx(void)
{
	char err[CONFIG_ERR_MAX] = "";

	SSL_CTX_free(H->cctx);
	ck_assert_msg(tlsctx_client(&H->cctx, err, sizeof err) == 0, "%s", err);
}

static void
side_init(struct side *s)
{
	memset(s, 0, sizeof *s);
	buf_init(&s->in);
	s->keep = true;
	s->tls_status = 1;
	s->close_status = 1;
	s->connect_status = 1;
}

/* Everything logged since the test began, NUL-terminated. */
static const char *
logged(void)
{
	ssize_t n;

	while (H->loglen < sizeof H->log - 1 &&
	    (n = read(H->logpipe[0], H->log + H->loglen,
	    sizeof H->log - 1 - H->loglen)) > 0)
		H->loglen += (size_t)n;
	H->log[H->loglen] = '\0';
	return H->log;
}

static void
setup(void)
{
	char err[CONFIG_ERR_MAX] = "";

	/* As kurierd does: a write to a reset socket must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	H = calloc(1, sizeof *H);
	ck_assert_ptr_nonnull(H);
	ck_assert_int_eq(pipe2(H->logpipe, O_NONBLOCK | O_CLOEXEC), 0);
	log_set_fd(H->logpipe[1]);
	log_set_level(LOG_INFO);
	ck_assert_int_eq(uv_loop_init(&H->loop), 0);
	ck_assert_int_eq(uv_timer_init(&H->loop, &H->timer), 0);
	H->timer.data = H;
	tmpdir_make(H->dir, sizeof H->dir, "conn");
	config_defaults(&H->cfg);
	snprintf(H->cfg.server.hostname, sizeof H->cfg.server.hostname, "%s", HOSTNAME);
	snprintf(H->cfg.server.data_dir, sizeof H->cfg.server.data_dir, "%s", H->dir);
	snprintf(H->crt, sizeof H->crt, "%s/tls/self-signed.crt", H->dir);
	snprintf(H->key, sizeof H->key, "%s/tls/self-signed.key", H->dir);
	ck_assert_msg(tlsctx_server(&H->sctx, &H->cfg, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(SSL_CTX_up_ref(shared_cctx), 1);
	H->cctx = shared_cctx;
	side_init(&H->srv);
	side_init(&H->cli);
}

static void
teardown(void)
{
	SSL_CTX_free(H->sctx);
	SSL_CTX_free(H->cctx);
	buf_free(&H->srv.in);
	buf_free(&H->cli.in);
	tmpdir_remove(H->dir);
	log_set_fd(STDERR_FILENO);
	close(H->logpipe[0]);
	close(H->logpipe[1]);
	free(H);
	H = NULL;
}

/* --- the two sides' callbacks ------------------------------------------------ */

static void
maybe_done(void)
{
	if (H->l != NULL && H->cli.nclose > 0 && H->srv.nclose > 0) {
		listener_close(H->l, NULL, NULL);
		H->l = NULL;
	}
}

static void
record_addrs(struct side *s)
{
	snprintf(s->peer, sizeof s->peer, "%s", conn_peer_addr(s->c));
	snprintf(s->local, sizeof s->local, "%s", conn_local_addr(s->c));
	s->peer_port = conn_peer_port(s->c);
	s->local_port = conn_local_port(s->c);
}

static void
t_on_connect(struct conn *c, int status)
{
	struct side *s = conn_data(c);

	H->events++;
	ck_assert_ptr_eq(s->c, c);
	s->nconnect++;
	s->connect_status = status;
	if (status == 0) {
		record_addrs(s);
		if (H->client_tls)
			ck_assert_int_eq(conn_start_tls(c, H->cctx, false, H->sni,
			    H->verify), 0);
	}
	if (s->connect_hook != NULL)
		s->connect_hook(s, status);
}

static void
t_on_read(struct conn *c, const char *p, size_t n)
{
	struct side *s = conn_data(c);

	H->events++;
	ck_assert_ptr_eq(s->c, c);
	ck_assert_uint_gt(n, 0);
	s->nreads++;
	if (s->keep)
		buf_append(&s->in, p, n);
	if (s->read_hook != NULL)
		s->read_hook(s, p, n);
}

static void
t_on_tls(struct conn *c, int status)
{
	struct side *s = conn_data(c);

	H->events++;
	const char *ve;

	ck_assert_ptr_eq(s->c, c);
	s->ntls++;
	s->tls_status = status;
	if (status == 0) {
		ck_assert(conn_is_tls(c));
		snprintf(s->version, sizeof s->version, "%s", conn_tls_version(c));
		snprintf(s->cipher, sizeof s->cipher, "%s", conn_tls_cipher(c));
		s->bits = conn_tls_bits(c);
		s->verified = conn_tls_verified(c);
		ve = conn_tls_verify_error(c);
		s->verify_error_null = ve == NULL;
		snprintf(s->verify_error, sizeof s->verify_error, "%s", ve ? ve : "");
		record_addrs(s);
	} else {
		ck_assert(conn_is_closing(c));
	}
	if (s->tls_hook != NULL)
		s->tls_hook(s, status);
}

static void
t_on_drain(struct conn *c)
{
	struct side *s = conn_data(c);

	H->events++;
	ck_assert_uint_eq(conn_pending(c), 0);
	s->ndrain++;
}

static void
t_on_close(struct conn *c, int status)
{
	struct side *s = conn_data(c);

	H->events++;
	ck_assert_ptr_eq(s->c, c);
	s->nclose++;
	s->close_status = status;
	ck_assert_int_eq(conn_write(c, "x", 1), -EPIPE);
	s->c = NULL;
	maybe_done();
}

static const struct conn_ops t_ops = {
	.on_connect = t_on_connect,
	.on_read = t_on_read,
	.on_tls = t_on_tls,
	.on_drain = t_on_drain,
	.on_close = t_on_close,
};

static void
t_accept(void *arg, uv_stream_t *server)
{
	struct harness *h = arg;

	h->events++;
	if (h->srv.c != NULL || h->srv.nclose > 0) {
		ck_assert_int_eq(listener_reject(server), 0);
		return;
	}
	ck_assert_int_eq(conn_accept(&h->srv.c, server, &t_ops, &h->srv), 0);
	record_addrs(&h->srv);
	if (h->server_tls)
		ck_assert_int_eq(conn_start_tls(h->srv.c, h->sctx, true, NULL, false), 0);
	if (h->accept_hook != NULL)
		h->accept_hook(&h->srv);
}

/* --- running ----------------------------------------------------------------- */

static void
on_tick(uv_timer_t *t)
{
	struct harness *h = t->data;

	if (h->events != h->events_seen) {
		h->events_seen = h->events;
		h->idle_ticks = 0;
		return;
	}
	if (++h->idle_ticks < STALL_TICKS)
		return;
	uv_timer_stop(t);
	h->timed_out = true;
	if (h->srv.c != NULL)
		conn_abort(h->srv.c);
	if (h->cli.c != NULL)
		conn_abort(h->cli.c);
	if (h->l != NULL) {
		listener_close(h->l, NULL, NULL);
		h->l = NULL;
	}
}

static void
open_listener(void)
{
	struct config_listen cl;
	char err[256] = "";

	memset(&cl, 0, sizeof cl);
	cl.n = 1;
	snprintf(cl.ep[0].host, sizeof cl.ep[0].host, "127.0.0.1");
	ck_assert_msg(listener_open(&H->l, &H->loop, &cl, 64, t_accept, H, err,
	    sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(listener_count(H->l), 1);
	H->port = listener_port(H->l, 0);
	ck_assert_uint_ne(H->port, 0);
}

static void
connect_client(uint16_t port)
{
	struct sockaddr_in sin;

	ck_assert_int_eq(uv_ip4_addr("127.0.0.1", port, &sin), 0);
	ck_assert_int_eq(conn_connect(&H->cli.c, &H->loop,
	    (const struct sockaddr *)&sin, NULL, &t_ops, &H->cli), 0);
}

static void
start(void)
{
	open_listener();
	connect_client(H->port);
}

static void
run(void)
{
	uv_update_time(&H->loop);
	uv_timer_start(&H->timer, on_tick, STALL_TICK_MS, STALL_TICK_MS);
	uv_unref((uv_handle_t *)&H->timer);
	uv_run(&H->loop, UV_RUN_DEFAULT);
	ck_assert_msg(!H->timed_out, "stuck: no callback in %d watchdog ticks; log:\n%s",
	    STALL_TICKS, logged());
	uv_close((uv_handle_t *)&H->timer, NULL);
	uv_run(&H->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&H->loop), 0);
}

/* A closed port: bound by the kernel's choice, then released. */
static uint16_t
closed_port(void)
{
	struct listener *l;
	struct config_listen cl;
	char err[256];
	uint16_t port;

	memset(&cl, 0, sizeof cl);
	cl.n = 1;
	snprintf(cl.ep[0].host, sizeof cl.ep[0].host, "127.0.0.1");
	ck_assert_int_eq(listener_open(&l, &H->loop, &cl, 1, t_accept, H, err,
	    sizeof err), 0);
	port = listener_port(l, 0);
	listener_close(l, NULL, NULL);
	return port;
}

static bool
has(const struct side *s, const char *text)
{
	return buf_unread(&s->in) > 0 && strstr(buf_rptr(&s->in), text) != NULL;
}

static unsigned char
pattern(size_t i)
{
	return (unsigned char)((i ^ (i >> 8) ^ (i >> 16)) * 37u + 11u);
}

static char *
pattern_block(size_t n)
{
	char *p = malloc(n);

	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (char)pattern(i);
	return p;
}

/* --- hooks ------------------------------------------------------------------- */

static void
echo(struct side *s, const char *p, size_t n)
{
	ck_assert_int_eq(conn_write(s->c, p, n), 0);
}

static void
send_hello(struct side *s, int status)
{
	if (status == 0)
		ck_assert_int_eq(conn_write(s->c, "hello\r\n", 7), 0);
}

static void
close_on_hello(struct side *s, const char *p, size_t n)
{
	(void)p;
	(void)n;
	if (has(s, "hello\r\n"))
		conn_close(s->c);
}

static void
close_on_tls(struct side *s, int status)
{
	if (status == 0)
		conn_close(s->c);
}

static void
abort_on_tls(struct side *s, int status)
{
	if (status == 0)
		conn_abort(s->c);
}

static void
close_at_once(struct side *s, int status)
{
	if (status == 0)
		conn_close(s->c);
}

/* --- tests ------------------------------------------------------------------- */

START_TEST(test_tls_echo)
{
	H->server_tls = H->client_tls = true;
	H->cli.tls_hook = send_hello;
	H->cli.read_hook = close_on_hello;
	H->srv.read_hook = echo;
	start();
	run();

	ck_assert_int_eq(H->srv.ntls, 1);
	ck_assert_int_eq(H->srv.tls_status, 0);
	ck_assert_int_eq(H->cli.ntls, 1);
	ck_assert_int_eq(H->cli.tls_status, 0);
	ck_assert_msg(strcmp(H->cli.version, "TLSv1.3") == 0 ||
	    strcmp(H->cli.version, "TLSv1.2") == 0, "version %s", H->cli.version);
	ck_assert_str_eq(H->srv.version, H->cli.version);
	ck_assert_str_ne(H->cli.cipher, "");
	ck_assert_str_eq(H->srv.cipher, H->cli.cipher);
	ck_assert_int_ge(H->cli.bits, 128);
	ck_assert(!H->cli.verified);
	ck_assert(H->cli.verify_error_null);
	ck_assert_str_eq(buf_rptr(&H->srv.in), "hello\r\n");
	ck_assert_str_eq(buf_rptr(&H->cli.in), "hello\r\n");
	/* The owner's close is 0; the peer sees close_notify as EOF. */
	ck_assert_int_eq(H->cli.nclose, 1);
	ck_assert_int_eq(H->cli.close_status, 0);
	ck_assert_int_eq(H->srv.nclose, 1);
	ck_assert_int_eq(H->srv.close_status, UV_EOF);
	ck_assert_str_eq(H->srv.peer, "127.0.0.1");
	ck_assert_str_eq(H->srv.local, "127.0.0.1");
	ck_assert_str_eq(H->cli.peer, "127.0.0.1");
	ck_assert_uint_eq(H->srv.local_port, H->port);
	ck_assert_uint_eq(H->cli.peer_port, H->port);
	ck_assert_uint_eq(H->srv.peer_port, H->cli.local_port);
}
END_TEST

/* Server side of STARTTLS: reply 220, switch, and drop the rest of the read. */
static void
srv_starttls(struct side *s, const char *p, size_t n)
{
	(void)p;
	(void)n;
	if (!conn_is_tls(s->c)) {
		if (!has(s, "STARTTLS\r\n"))
			return;
		/* This read carried the injected line too: nothing is held back. */
		H->flag = has(s, "INJECTED\r\n");
		ck_assert_int_eq(conn_write(s->c, "220 go\r\n", 8), 0);
		ck_assert_int_eq(conn_start_tls(s->c, H->sctx, true, NULL, false), 0);
		ck_assert_int_eq(conn_start_tls(s->c, H->sctx, true, NULL, false), -EALREADY);
		/* RFC 3207 section 4: discard what came after STARTTLS. */
		buf_reset(&s->in);
		return;
	}
	if (has(s, "EHLO secure\r\n"))
		ck_assert_int_eq(conn_write(s->c, "250 secure\r\n", 12), 0);
}

static void
cli_starttls_send(struct side *s, int status)
{
	ck_assert_int_eq(status, 0);
	/* An attacker's line rides along in the same segment. */
	ck_assert_int_eq(conn_write(s->c, "STARTTLS\r\nINJECTED\r\n", 20), 0);
}

static void
cli_starttls_read(struct side *s, const char *p, size_t n)
{
	(void)p;
	(void)n;
	if (!conn_is_tls(s->c)) {
		if (has(s, "220 go\r\n")) {
			buf_reset(&s->in);
			ck_assert_int_eq(conn_start_tls(s->c, H->cctx, false, HOSTNAME,
			    false), 0);
			/* Held until the handshake ends, then encrypted. */
			ck_assert_int_eq(conn_write(s->c, "EHLO secure\r\n", 13), 0);
			ck_assert_uint_ge(conn_pending(s->c), 13);
		}
		return;
	}
	if (has(s, "250 secure\r\n"))
		conn_close(s->c);
}

START_TEST(test_starttls)
{
	H->cli.connect_hook = cli_starttls_send;
	H->cli.read_hook = cli_starttls_read;
	H->srv.read_hook = srv_starttls;
	start();
	run();

	ck_assert(H->flag);
	ck_assert_int_eq(H->srv.ntls, 1);
	ck_assert_int_eq(H->srv.tls_status, 0);
	ck_assert_int_eq(H->cli.ntls, 1);
	ck_assert_int_eq(H->cli.tls_status, 0);
	ck_assert_str_ne(H->srv.version, "");
	/* Only what came encrypted reached the server after the switch. */
	ck_assert_str_eq(buf_rptr(&H->srv.in), "EHLO secure\r\n");
	ck_assert_str_eq(buf_rptr(&H->cli.in), "250 secure\r\n");
	ck_assert_int_eq(H->cli.close_status, 0);
	ck_assert_int_eq(H->srv.close_status, UV_EOF);
}
END_TEST

START_TEST(test_tls11_refused)
{
	SSL_CTX *old = H->cctx;

	H->cctx = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(H->cctx);
	SSL_CTX_free(old);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(H->cctx, TLS1_1_VERSION), 1);
	ck_assert_int_eq(SSL_CTX_set_max_proto_version(H->cctx, TLS1_1_VERSION), 1);
	ck_assert_int_eq(SSL_CTX_set_cipher_list(H->cctx, "DEFAULT:@SECLEVEL=0"), 1);
	H->server_tls = H->client_tls = true;
	H->cli.tls_hook = send_hello;
	start();
	run();

	ck_assert_int_eq(H->srv.ntls, 1);
	ck_assert_int_eq(H->srv.tls_status, -EPROTO);
	ck_assert_int_eq(H->srv.nclose, 1);
	ck_assert_int_eq(H->srv.close_status, -EPROTO);
	ck_assert_int_eq(H->cli.ntls, 1);
	ck_assert_int_lt(H->cli.tls_status, 0);
	ck_assert_int_eq(H->cli.nclose, 1);
	ck_assert_int_lt(H->cli.close_status, 0);
	ck_assert_uint_eq(buf_unread(&H->srv.in), 0);
	ck_assert_ptr_nonnull(strstr(logged(),
	    "level=warn component=tls event=handshake_failed peer=127.0.0.1:"));
	ck_assert_ptr_nonnull(strstr(logged(), "side=server reason=\"unsupported protocol\""));
}
END_TEST

static void
big_send(struct side *s, int status)
{
	char *p;

	if (status != 0)
		return;
	p = pattern_block(BIG);
	ck_assert_int_eq(conn_write(s->c, p, BIG), 0);
	free(p);
	ck_assert_uint_ge(conn_pending(s->c), BIG);
}

static void
big_check(struct side *s, const char *p, size_t n)
{
	size_t bad = n;

	/* One assertion per read: Check records every assertion it passes. */
	for (size_t i = 0; i < n && bad == n; i++)
		if ((unsigned char)p[i] != pattern(H->count + i))
			bad = i;
	ck_assert_msg(bad == n, "byte %zu differs", H->count + bad);
	H->count += n;
	ck_assert_uint_le(H->count, BIG);
	if (H->count == BIG)
		ck_assert_int_eq(conn_write(s->c, "DONE\r\n", 6), 0);
}

static void
close_on_done(struct side *s, const char *p, size_t n)
{
	(void)p;
	(void)n;
	if (has(s, "DONE\r\n"))
		conn_close(s->c);
}

START_TEST(test_big_write)
{
	bool tls = _i == 1;

	H->server_tls = H->client_tls = tls;
	if (tls)
		H->cli.tls_hook = big_send;
	else
		H->cli.connect_hook = big_send;
	H->cli.read_hook = close_on_done;
	H->srv.keep = false;
	H->srv.read_hook = big_check;
	start();
	run();

	ck_assert_uint_eq(H->count, BIG);
	ck_assert_uint_gt(H->srv.nreads, 1);
	ck_assert_int_ge(H->cli.ndrain, 1);
	ck_assert_int_eq(H->cli.close_status, 0);
	ck_assert_int_eq(H->srv.close_status, UV_EOF);
}
END_TEST

/* Write FLUSH_SIZE bytes and close at once: all must arrive, then EOF. */
static void
flush_and_close(struct side *s)
{
	char *p = pattern_block(FLUSH_SIZE);

	ck_assert_int_eq(conn_write(s->c, p, FLUSH_SIZE), 0);
	free(p);
	conn_close(s->c);
	conn_close(s->c);
	ck_assert(conn_is_closing(s->c));
	ck_assert_int_eq(conn_write(s->c, "late", 4), -EPIPE);
}

static void
flush_and_close_tls(struct side *s, int status)
{
	ck_assert_int_eq(status, 0);
	flush_and_close(s);
}

START_TEST(test_close_flushes)
{
	bool tls = _i == 1;

	H->server_tls = H->client_tls = tls;
	if (tls)
		H->srv.tls_hook = flush_and_close_tls;
	else
		H->accept_hook = flush_and_close;
	H->cli.keep = false;
	H->cli.read_hook = big_check;
	start();
	run();

	ck_assert_uint_eq(H->count, FLUSH_SIZE);
	ck_assert_int_eq(H->srv.close_status, 0);
	ck_assert_int_eq(H->cli.close_status, UV_EOF);
	/* No on_drain once the owner closed. */
	ck_assert_int_eq(H->srv.ndrain, 0);
}
END_TEST

START_TEST(test_peer_close_eof)
{
	H->cli.connect_hook = close_at_once;
	start();
	run();

	ck_assert_int_eq(H->cli.nconnect, 1);
	ck_assert_int_eq(H->cli.connect_status, 0);
	ck_assert_int_eq(H->cli.close_status, 0);
	ck_assert_int_eq(H->srv.nclose, 1);
	ck_assert_int_eq(H->srv.close_status, UV_EOF);
	ck_assert_uint_eq(H->srv.nreads, 0);
	ck_assert_int_eq(H->srv.ntls, 0);
}
END_TEST

static void
send_lines(struct side *s, int status)
{
	if (status != 0)
		return;
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(conn_write(s->c, "one line of text\r\n", 18), 0);
}

static void
abort_in_read(struct side *s, const char *p, size_t n)
{
	(void)p;
	(void)n;
	conn_abort(s->c);
	/* Everything stays safe until on_read returns and after. */
	ck_assert(conn_is_closing(s->c));
	ck_assert_int_eq(conn_write(s->c, "x", 1), -EPIPE);
	conn_close(s->c);
	conn_abort(s->c);
	conn_read_start(s->c);
	conn_read_stop(s->c);
	ck_assert_ptr_eq(conn_data(s->c), s);
}

START_TEST(test_abort_in_read)
{
	bool tls = _i == 1;

	H->server_tls = H->client_tls = tls;
	if (tls)
		H->cli.tls_hook = send_lines;
	else
		H->cli.connect_hook = send_lines;
	H->srv.read_hook = abort_in_read;
	start();
	run();

	ck_assert_uint_eq(H->srv.nreads, 1);
	ck_assert_int_eq(H->srv.nclose, 1);
	ck_assert_int_eq(H->srv.close_status, 0);
	ck_assert_int_eq(H->cli.nclose, 1);
	ck_assert_int_lt(H->cli.close_status, 0);
}
END_TEST

START_TEST(test_close_in_tls)
{
	H->server_tls = H->client_tls = true;
	if (_i == 0) {
		H->srv.tls_hook = close_on_tls;
	} else {
		H->cli.tls_hook = abort_on_tls;
	}
	start();
	run();

	ck_assert_int_eq(H->cli.nclose, 1);
	ck_assert_int_eq(H->srv.nclose, 1);
	if (_i == 0) {
		ck_assert_int_eq(H->srv.ntls, 1);
		ck_assert_int_eq(H->srv.tls_status, 0);
		ck_assert_int_eq(H->srv.close_status, 0);
		/* The client finished its handshake, then saw close_notify. */
		ck_assert_int_eq(H->cli.ntls, 1);
		ck_assert_int_eq(H->cli.tls_status, 0);
		ck_assert_int_eq(H->cli.close_status, UV_EOF);
	} else {
		ck_assert_int_eq(H->cli.ntls, 1);
		ck_assert_int_eq(H->cli.close_status, 0);
		ck_assert_int_lt(H->srv.close_status, 0);
	}
}
END_TEST

static void
send_secret(struct side *s, int status)
{
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(conn_write(s->c, "EHLO secret-data\r\n", 18), 0);
}

/* Plaintext to a TLS port: refused, logged with the reason, not the data. */
START_TEST(test_plaintext_to_tls)
{
	H->server_tls = true;
	H->cli.connect_hook = send_secret;
	start();
	run();

	ck_assert_int_eq(H->srv.ntls, 1);
	ck_assert_int_eq(H->srv.tls_status, -EPROTO);
	ck_assert_int_eq(H->srv.close_status, -EPROTO);
	ck_assert_uint_eq(H->srv.nreads, 0);
	ck_assert_int_eq(H->cli.nclose, 1);
	ck_assert_ptr_nonnull(strstr(logged(),
	    "level=warn component=tls event=handshake_failed peer=127.0.0.1:"));
	ck_assert_ptr_nonnull(strstr(logged(), " side=server reason=\""));
	ck_assert_ptr_null(strstr(logged(), "secret"));
}
END_TEST

/* The peer goes away mid-handshake: on_tls still hears of it. */
START_TEST(test_eof_in_handshake)
{
	H->server_tls = true;
	H->cli.connect_hook = close_at_once;
	start();
	run();

	ck_assert_int_eq(H->srv.ntls, 1);
	ck_assert_int_eq(H->srv.tls_status, UV_EOF);
	ck_assert_int_eq(H->srv.nclose, 1);
	ck_assert_int_eq(H->srv.close_status, UV_EOF);
	ck_assert_int_eq(H->cli.close_status, 0);
	ck_assert_int_eq(H->cli.ntls, 0);
}
END_TEST

static void
start_tls_fails(struct side *s, int status)
{
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(conn_start_tls(s->c, H->cctx, false, HOSTNAME, true), -EPROTO);
	/* Still plaintext, still open: the owner decides. */
	ck_assert(!conn_is_tls(s->c));
	ck_assert(!conn_is_closing(s->c));
	ck_assert_ptr_null(conn_tls_version(s->c));
	conn_close(s->c);
}

/* A client that cannot even start (no usable version) hears it at once. */
START_TEST(test_client_cannot_start)
{
	own_cctx();
	ck_assert_int_eq(SSL_CTX_set_max_proto_version(H->cctx, TLS1_1_VERSION), 1);
	H->server_tls = true;
	H->cli.connect_hook = start_tls_fails;
	start();
	run();

	ck_assert_int_eq(H->cli.ntls, 0);
	ck_assert_int_eq(H->cli.close_status, 0);
	ck_assert_int_eq(H->srv.tls_status, UV_EOF);
	ck_assert_ptr_nonnull(strstr(logged(),
	    "level=warn component=tls event=handshake_failed peer=127.0.0.1:"));
	ck_assert_ptr_nonnull(strstr(logged(), "side=client reason=\"no protocols available\""));
}
END_TEST

static uv_timer_t bp_timer;
static int bp_stops;

static void
bp_resume(uv_timer_t *t)
{
	(void)t;
	H->flag = false;
	if (H->srv.c != NULL)
		conn_read_start(H->srv.c);
}

/* Stop reading at each read, resume 2 ms later: nothing is lost. */
static void
bp_read(struct side *s, const char *p, size_t n)
{
	/* In plaintext, nothing arrives while stopped. */
	if (!conn_is_tls(s->c))
		ck_assert(!H->flag);
	big_check(s, p, n);
	if (!H->flag && H->count < BIG) {
		H->flag = true;
		bp_stops++;
		conn_read_stop(s->c);
		ck_assert_int_eq(uv_timer_start(&bp_timer, bp_resume, 2, 0), 0);
	}
	if (H->count == BIG)
		uv_close((uv_handle_t *)&bp_timer, NULL);
}

START_TEST(test_read_stop_start)
{
	bool tls = _i == 1;

	bp_stops = 0;
	H->server_tls = H->client_tls = tls;
	if (tls)
		H->cli.tls_hook = big_send;
	else
		H->cli.connect_hook = big_send;
	H->cli.read_hook = close_on_done;
	H->srv.keep = false;
	H->srv.read_hook = bp_read;
	ck_assert_int_eq(uv_timer_init(&H->loop, &bp_timer), 0);
	start();
	run();

	ck_assert_uint_eq(H->count, BIG);
	ck_assert_int_gt(bp_stops, 1);
	ck_assert_int_eq(H->cli.close_status, 0);
	ck_assert_int_eq(H->srv.close_status, UV_EOF);
}
END_TEST

START_TEST(test_connect_refused)
{
	uint16_t port = closed_port();

	connect_client(port);
	run();

	ck_assert_int_eq(H->cli.nconnect, 1);
	ck_assert_int_eq(H->cli.connect_status, UV_ECONNREFUSED);
	ck_assert_int_eq(H->cli.nclose, 1);
	ck_assert_int_eq(H->cli.close_status, UV_ECONNREFUSED);
}
END_TEST

static const char *
fingerprint_of_file(const char *path, char *dst, size_t size)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM), 1);
	tlsctx_fingerprint(ctx, dst, size);
	SSL_CTX_free(ctx);
	return dst;
}

START_TEST(test_selfsigned)
{
	char fp[TLSCTX_FINGERPRINT_SIZE], fp2[TLSCTX_FINGERPRINT_SIZE], line[PATH_MAX + 256];
	char tlsdir[PATH_MAX], err[CONFIG_ERR_MAX] = "";
	struct stat st;
	SSL_CTX *again;
	X509 *x;
	FILE *f;

	/* setup() generated the pair. */
	tlsctx_fingerprint(H->sctx, fp, sizeof fp);
	ck_assert_uint_eq(strlen(fp), 95);
	for (size_t i = 0; i < 95; i++)
		ck_assert_msg(i % 3 == 2 ? fp[i] == ':' :
		    strchr("0123456789ABCDEF", fp[i]) != NULL, "%s", fp);
	snprintf(line, sizeof line,
	    "level=info component=tls event=certificate source=generated cert=%s cn=\"%s\"",
	    H->crt, HOSTNAME);
	ck_assert_msg(strstr(logged(), line) != NULL, "%s", logged());
	snprintf(line, sizeof line, " fingerprint=%s\n", fp);
	ck_assert_ptr_nonnull(strstr(logged(), line));

	snprintf(tlsdir, sizeof tlsdir, "%s/tls", H->dir);
	ck_assert_int_eq(stat(tlsdir, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	ck_assert_int_eq(stat(H->key, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(stat(H->crt, &st), 0);
	ck_assert(S_ISREG(st.st_mode));

	/* The certificate names the host, as CN and as subjectAltName. */
	f = fopen(H->crt, "r");
	ck_assert_ptr_nonnull(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(X509_check_host(x, HOSTNAME, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL), 1);
	ck_assert_int_eq(X509_check_host(x, "other.example", 0, 0, NULL), 0);
	ck_assert_int_eq(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	ck_assert_int_gt(X509_cmp_time(X509_get0_notAfter(x), &(time_t){ time(NULL) + 9L * 365 * 86400 }), 0);
	X509_free(x);
	ck_assert_str_eq(fingerprint_of_file(H->crt, fp2, sizeof fp2), fp);

	/* A second start reuses the pair. */
	ck_assert_msg(tlsctx_server(&again, &H->cfg, err, sizeof err) == 0, "%s", err);
	tlsctx_fingerprint(again, fp2, sizeof fp2);
	SSL_CTX_free(again);
	ck_assert_str_eq(fp2, fp);
	snprintf(line, sizeof line, "event=certificate source=self-signed cert=%s", H->crt);
	ck_assert_ptr_nonnull(strstr(logged(), line));
	/* A small destination gets a cut string. */
	ck_assert_ptr_eq(tlsctx_fingerprint(H->sctx, fp2, 6), fp2);
	ck_assert_uint_eq(strlen(fp2), 5);
	ck_assert_int_eq(strncmp(fp2, fp, 5), 0);
	run();
}
END_TEST

START_TEST(test_cert_errors)
{
	char other_key[PATH_MAX], other_crt[PATH_MAX], want[PATH_MAX * 3];
	char err[CONFIG_ERR_MAX];
	struct config cfg = H->cfg;
	SSL_CTX *ctx;

	/* A second pair to mismatch with. */
	snprintf(cfg.server.data_dir, sizeof cfg.server.data_dir, "%s/b", H->dir);
	ck_assert_int_eq(tlsctx_server(&ctx, &cfg, err, sizeof err), 0);
	SSL_CTX_free(ctx);
	snprintf(other_key, sizeof other_key, "%s/b/tls/self-signed.key", H->dir);
	snprintf(other_crt, sizeof other_crt, "%s/b/tls/self-signed.crt", H->dir);

	struct {
		const char *cert, *key;
		int rc;
		const char *want;      /* %1$s cert, %2$s key */
		bool prefix;           /* want is only the start */
	} cases[] = {
		{ "/nonexistent/kurier/cert.pem", H->key, -ENOENT,
		  "/nonexistent/kurier/cert.pem: cannot read: No such file or directory", false },
		{ H->crt, "/nonexistent/kurier/key.pem", -ENOENT,
		  "/nonexistent/kurier/key.pem: cannot read: No such file or directory", false },
		{ H->crt, other_key, -EINVAL, NULL, false },
		{ H->key, H->key, -EINVAL, NULL, true },
		{ H->crt, other_crt, -EINVAL, NULL, true },
		{ H->crt, "", -EINVAL,
		  "[tls] cert and key go together: set both, or neither for a self-signed certificate", false },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		cfg = H->cfg;
		snprintf(cfg.tls.cert, sizeof cfg.tls.cert, "%s", cases[i].cert);
		snprintf(cfg.tls.key, sizeof cfg.tls.key, "%s", cases[i].key);
		err[0] = '\0';
		ctx = H->sctx;          /* must come back NULL */
		ck_assert_int_eq(tlsctx_server(&ctx, &cfg, err, sizeof err), cases[i].rc);
		ck_assert_ptr_null(ctx);
		if (i == 2)
			snprintf(want, sizeof want, "%s, %s: cert and key do not match",
			    H->crt, other_key);
		else if (i == 3)
			snprintf(want, sizeof want, "%s: not a PEM certificate chain: ", H->key);
		else if (i == 4)
			snprintf(want, sizeof want, "%s: not a PEM private key: ", other_crt);
		else
			snprintf(want, sizeof want, "%s", cases[i].want);
		if (cases[i].prefix)
			ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
			    "case %zu: %s", i, err);
		else
			ck_assert_str_eq(err, want);
	}
	/* The configured pair itself loads, and says where it came from. */
	cfg = H->cfg;
	snprintf(cfg.tls.cert, sizeof cfg.tls.cert, "%s", H->crt);
	snprintf(cfg.tls.key, sizeof cfg.tls.key, "%s", H->key);
	ck_assert_int_eq(tlsctx_server(&ctx, &cfg, err, sizeof err), 0);
	SSL_CTX_free(ctx);
	ck_assert_ptr_nonnull(strstr(logged(), "event=certificate source=config cert="));
	run();
}
END_TEST

START_TEST(test_listener_in_use)
{
	struct config_listen cl;
	struct listener *l2 = NULL, *l3 = NULL;
	char err[256] = "", want[256];
	uint16_t free_port = closed_port();

	open_listener();
	memset(&cl, 0, sizeof cl);
	cl.n = 2;
	snprintf(cl.ep[0].host, sizeof cl.ep[0].host, "127.0.0.1");
	cl.ep[0].port = free_port;
	snprintf(cl.ep[1].host, sizeof cl.ep[1].host, "127.0.0.1");
	cl.ep[1].port = H->port;
	ck_assert_int_eq(listener_open(&l2, &H->loop, &cl, 16, t_accept, H, err,
	    sizeof err), UV_EADDRINUSE);
	ck_assert_ptr_null(l2);
	snprintf(want, sizeof want, "127.0.0.1:%u: address already in use", H->port);
	ck_assert_str_eq(err, want);
	/* Nothing stayed bound: the first address is free again. */
	cl.n = 1;
	ck_assert_msg(listener_open(&l3, &H->loop, &cl, 16, t_accept, H, err,
	    sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(listener_port(l3, 0), free_port);
	listener_close(l3, NULL, NULL);
	/* A unix endpoint is refused with its name. */
	memset(&cl, 0, sizeof cl);
	cl.n = 1;
	snprintf(cl.ep[0].unix_path, sizeof cl.ep[0].unix_path, "/run/x.sock");
	ck_assert_int_eq(listener_open(&l2, &H->loop, &cl, 16, t_accept, H, err,
	    sizeof err), -EINVAL);
	ck_assert_str_eq(err, "unix:/run/x.sock: a listener needs host:port");
	listener_close(H->l, NULL, NULL);
	H->l = NULL;
	run();
}
END_TEST

static struct {
	bool trust;
	const char *sni;
	bool verify;
	bool want;
	const char *want_error;        /* NULL: not verified at all */
} verify_cases[] = {
	{ false, HOSTNAME, true, false, "self-signed certificate" },
	{ true, HOSTNAME, true, true, "" },
	{ true, "other.example", true, false, "hostname mismatch" },
	{ true, NULL, true, true, "" },
	{ true, "127.0.0.1", true, false, "IP address mismatch" },
	{ true, HOSTNAME, false, false, NULL },
};

START_TEST(test_verify)
{
	H->server_tls = H->client_tls = true;
	H->sni = verify_cases[_i].sni;
	H->verify = verify_cases[_i].verify;
	own_cctx();
	if (verify_cases[_i].trust)
		ck_assert_int_eq(SSL_CTX_load_verify_locations(H->cctx, H->crt, NULL), 1);
	H->cli.tls_hook = close_on_tls;
	start();
	run();

	/* The handshake succeeds either way; only the result differs. */
	ck_assert_int_eq(H->cli.tls_status, 0);
	ck_assert_int_eq(H->srv.tls_status, 0);
	ck_assert_int_eq(H->cli.verified, verify_cases[_i].want);
	if (verify_cases[_i].want_error == NULL) {
		ck_assert(H->cli.verify_error_null);
	} else {
		ck_assert(!H->cli.verify_error_null);
		ck_assert_str_eq(H->cli.verify_error, verify_cases[_i].want_error);
	}
	ck_assert_int_eq(H->cli.close_status, 0);
	ck_assert_int_eq(H->srv.close_status, UV_EOF);
}
END_TEST

static uv_timer_t resume_timer;

static void
on_resume(uv_timer_t *t)
{
	(void)t;
	/* The client has not connected yet (a slow machine): wait for it. */
	if (H->cli.nconnect == 0) {
		ck_assert_int_eq(uv_timer_start(&resume_timer, on_resume, 10, 0), 0);
		return;
	}
	/* Paused: the connection waited, unaccepted. */
	ck_assert_ptr_null(H->srv.c);
	ck_assert_int_eq(H->cli.connect_status, 0);
	listener_resume(H->l);
	ck_assert_ptr_nonnull(H->srv.c);
	uv_close((uv_handle_t *)&resume_timer, NULL);
}

START_TEST(test_listener_pause)
{
	H->cli.connect_hook = send_hello;
	H->cli.read_hook = close_on_hello;
	H->srv.read_hook = echo;
	open_listener();
	listener_pause(H->l);
	connect_client(H->port);
	ck_assert_int_eq(uv_timer_init(&H->loop, &resume_timer), 0);
	uv_update_time(&H->loop);
	ck_assert_int_eq(uv_timer_start(&resume_timer, on_resume, 100, 0), 0);
	run();

	ck_assert_str_eq(buf_rptr(&H->cli.in), "hello\r\n");
	ck_assert_int_eq(H->srv.close_status, UV_EOF);
}
END_TEST

/* An IPv6 endpoint: IPV6_V6ONLY, and the peer address printed as such. */
START_TEST(test_listener_ipv6)
{
	struct config_listen cl;
	struct sockaddr_in6 sin6;
	char err[256] = "";
	uv_os_fd_t fd;
	int on = 0;
	socklen_t len = sizeof on;

	memset(&cl, 0, sizeof cl);
	cl.n = 1;
	snprintf(cl.ep[0].host, sizeof cl.ep[0].host, "::1");
	if (listener_open(&H->l, &H->loop, &cl, 16, t_accept, H, err, sizeof err) ==
	    UV_EADDRNOTAVAIL) {
		/* No IPv6 loopback here: nothing to test. */
		run();
		return;
	}
	ck_assert_msg(H->l != NULL, "%s", err);
	ck_assert_int_eq(uv_fileno((uv_handle_t *)listener_stream(H->l, 0), &fd), 0);
	ck_assert_int_eq(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, &len), 0);
	ck_assert_int_eq(on, 1);
	H->port = listener_port(H->l, 0);
	ck_assert_int_eq(uv_ip6_addr("::1", H->port, &sin6), 0);
	ck_assert_int_eq(conn_connect(&H->cli.c, &H->loop,
	    (const struct sockaddr *)&sin6, NULL, &t_ops, &H->cli), 0);
	H->cli.connect_hook = send_hello;
	H->cli.read_hook = close_on_hello;
	H->srv.read_hook = echo;
	run();

	ck_assert_str_eq(buf_rptr(&H->cli.in), "hello\r\n");
	ck_assert_str_eq(H->srv.peer, "::1");
	ck_assert_str_eq(H->cli.local, "::1");
	ck_assert_uint_eq(H->srv.peer_port, H->cli.local_port);
}
END_TEST

Suite *
conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc;

	tc = tcase_create("conn");
	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_tls_echo);
	tcase_add_test(tc, test_starttls);
	tcase_add_test(tc, test_tls11_refused);
	tcase_add_loop_test(tc, test_big_write, 0, 2);
	tcase_add_loop_test(tc, test_close_flushes, 0, 2);
	tcase_add_loop_test(tc, test_read_stop_start, 0, 2);
	tcase_add_test(tc, test_peer_close_eof);
	tcase_add_loop_test(tc, test_abort_in_read, 0, 2);
	tcase_add_loop_test(tc, test_close_in_tls, 0, 2);
	tcase_add_test(tc, test_connect_refused);
	tcase_add_test(tc, test_plaintext_to_tls);
	tcase_add_test(tc, test_eof_in_handshake);
	tcase_add_test(tc, test_client_cannot_start);
	tcase_add_loop_test(tc, test_verify, 0, (int)NELEM(verify_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("tlsctx");
	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_selfsigned);
	tcase_add_test(tc, test_cert_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("listener");
	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_listener_in_use);
	tcase_add_test(tc, test_listener_pause);
	tcase_add_test(tc, test_listener_ipv6);
	suite_add_tcase(s, tc);
	return s;
}
