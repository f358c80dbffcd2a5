/*
 * test_smtpc - deliver/smtpc against a scripted SMTP server on the same
 * loop, on 127.0.0.1 with a port the kernel picks.
 *
 * The fake server (struct fake) plays a script: one step per line the
 * client sends ("<CONNECT>" for the greeting, "<DATA>" for the end of
 * the message data), each checking the line and giving the reply to
 * send, with flags for what to do after it (start TLS, read message
 * data, close, stop reading, send a reply a few bytes at a time...).
 * It records every line with the number of writes it had made before
 * the line came, which tells pipelined groups (several lines, one count)
 * from lock-step (a count per line).  Past the script's end it answers
 * QUIT with 221 and closes; anything else there is a failure.
 *
 * The client side (struct cli) records what smtpc reported and runs the
 * test's transactions one after another, then quits.  run() runs the
 * loop until every handle is closed (a guard timer aborts a stuck test)
 * and asserts uv_loop_close() == 0.  TLS uses a self-signed certificate
 * made once per suite in a mkdtemp() data_dir, removed at the end.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/conn.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/tlsctx.h"
#include "deliver/smtpc.h"
#include "queue/envelope.h"
#include "tests/suites.h"
#include "tests/tmpdir.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define HOSTNAME "mx.test.example"
#define HELO "client.test.example"
#define GUARD_MS 10000
#define MAX_LINES 64
#define MAX_TXN 4
#define MAX_RCPT 4
#define LOG_CAP (256 * 1024)

/* What the fake server does after a step's reply. */
enum {
	F_HOLD = 1 << 0,       /* keep the reply until a later step's goes out */
	F_DATA = 1 << 1,       /* read message data up to CRLF.CRLF, then step "<DATA>" */
	F_TLS = 1 << 2,        /* start TLS, dropping the rest of the input */
	F_CLOSE = 1 << 3,      /* close gracefully */
	F_ABORT = 1 << 4,      /* close now */
	F_SPLIT = 1 << 5,      /* send the reply 3 bytes a write, one write a loop turn */
	F_STALL = 1 << 6,      /* stop reading */
	F_JUNK = 1 << 7,       /* answer the next input with bytes that are not TLS */
	F_DATA_ABORT = 1 << 8, /* with F_DATA: close now when data arrives */
	F_DATA_EARLY = 1 << 9, /* with F_DATA: send the next step's reply when data arrives, stop reading */
	F_DEAF = 1 << 10,      /* read and ignore everything from now on */
};

struct step {
	const char *expect;    /* the line; a final '*' matches a prefix */
	const char *reply;     /* bytes to send (CRLFs included), or NULL */
	unsigned flags;
};

struct line {
	char *text;
	unsigned writes;       /* writes the server had made before it came */
	bool tls;              /* it came over TLS */
};

struct fake {
	struct conn *c;
	const struct step *script;
	size_t n, pos;
	struct buf in;
	struct buf pend;       /* replies held (F_HOLD) */
	struct buf slow;       /* F_SPLIT output still to send */
	struct buf data;       /* message data as received, terminator included */
	bool data_mode, data_abort, data_early, junk, deaf, tls;
	bool stalled;          /* not reading: it would not see the client go */
	unsigned writes;
	struct line lines[MAX_LINES];
	size_t nlines;
	int nconn, nclose;
	char bad[512];         /* the first mismatch */
};

struct txn_rec {
	int status;
	enum smtpc_stage stage;
	struct smtpc_reply mail, data, rcpt[MAX_RCPT];
	bool lost;
	bool usable;           /* smtpc_usable() inside the callback */
	char error[128];
	uint64_t elapsed_ms;
};

struct cli {
	struct smtpc *c;
	int nready, ready_status;
	enum smtpc_stage ready_stage;
	struct smtpc_reply ready_reply;
	struct smtpc_info info;
	int nclosed;
	int ntxn;
	struct txn_rec txn[MAX_TXN];
	const struct smtpc_txn *send[MAX_TXN];
	size_t nsend;
	int send_rc;
	bool stay;             /* do not quit after the last transaction */
	bool abort_in_ready;
	uint64_t closed_ms;
	void (*ready_hook)(void);
};

struct harness {
	uv_loop_t loop;
	uv_timer_t guard, slow_timer;
	bool timed_out;
	struct listener *l;
	uint16_t port;
	struct sockaddr_in addr;
	struct smtpc_opts o;
	struct fake srv;
	struct cli cli;
	int logpipe[2];
	char log[LOG_CAP];
	size_t loglen;
};

static struct harness *H;
static char suite_dir[64];
static char suite_crt[PATH_MAX];
static SSL_CTX *sctx;          /* the fake server's context */
static SSL_CTX *cctx;          /* system trust store: our cert is not trusted */
static SSL_CTX *cctx_trust;    /* trusts our self-signed certificate */

static void fake_process(struct fake *f);
static void maybe_done(void);

/* --- suite fixture: certificate and contexts ------------------------------- */

static void
suite_setup(void)
{
	char err[CONFIG_ERR_MAX] = "";
	struct config *cfg = calloc(1, sizeof *cfg);

	signal(SIGPIPE, SIG_IGN);
	ck_assert_ptr_nonnull(cfg);
	tmpdir_make(suite_dir, sizeof suite_dir, "smtpc");
	config_defaults(cfg);
	snprintf(cfg->server.hostname, sizeof cfg->server.hostname, "%s", HOSTNAME);
	snprintf(cfg->server.data_dir, sizeof cfg->server.data_dir, "%s", suite_dir);
	snprintf(suite_crt, sizeof suite_crt, "%s/tls/self-signed.crt", suite_dir);
	/* Quietly: the new certificate's info line is not this suite's business. */
	log_set_level(LOG_WARN);
	ck_assert_msg(tlsctx_server(&sctx, cfg, err, sizeof err) == 0, "%s", err);
	log_set_level(LOG_INFO);
	ck_assert_msg(tlsctx_client(&cctx, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(tlsctx_client(&cctx_trust, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(SSL_CTX_load_verify_locations(cctx_trust, suite_crt, NULL), 1);
	free(cfg);
}

static void
suite_teardown(void)
{
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	SSL_CTX_free(cctx_trust);
	sctx = cctx = cctx_trust = NULL;
	tmpdir_remove(suite_dir);
}

/* --- the fake server ----------------------------------------------------------- */

/* The first mismatch: what, the line expected (or ""), the line that came. */
static void
fake_fail(struct fake *f, const char *what, const char *expected, const char *got)
{
	if (f->bad[0] == '\0')
		snprintf(f->bad, sizeof f->bad, "%s: expected \"%s\", got \"%s\"", what,
		    expected, got);
	if (f->c != NULL)
		conn_abort(f->c);
}

static void
slow_tick(uv_timer_t *t)
{
	struct fake *f = &H->srv;
	size_t n = buf_unread(&f->slow);

	(void)t;
	if (n == 0 || f->c == NULL) {
		uv_timer_stop(&H->slow_timer);
		return;
	}
	if (n > 3)
		n = 3;
	conn_write(f->c, buf_rptr(&f->slow), n);
	buf_consume(&f->slow, n);
}

/* Send what is held (one write, or F_SPLIT's dribble). */
static void
fake_flush(struct fake *f, bool split)
{
	if (buf_unread(&f->pend) == 0 || f->c == NULL)
		return;
	f->writes++;
	if (split) {
		buf_append(&f->slow, buf_rptr(&f->pend), buf_unread(&f->pend));
		uv_timer_start(&H->slow_timer, slow_tick, 1, 1);
	} else {
		conn_write(f->c, buf_rptr(&f->pend), buf_unread(&f->pend));
	}
	buf_reset(&f->pend);
}

static bool
line_matches(const char *expect, const char *line)
{
	size_t n = strlen(expect);

	if (n > 0 && expect[n - 1] == '*')
		return strncmp(expect, line, n - 1) == 0;
	return strcmp(expect, line) == 0;
}

/* One line (or "<CONNECT>", "<DATA>") against the script. */
static void
fake_step(struct fake *f, const char *line)
{
	const struct step *st;

	if (f->nlines < MAX_LINES) {
		f->lines[f->nlines].text = strdup(line);
		f->lines[f->nlines].writes = f->writes;
		f->lines[f->nlines].tls = f->tls;
		f->nlines++;
	}
	if (f->pos >= f->n) {
		if (strcmp(line, "QUIT") == 0) {
			buf_appends(&f->pend, "221 2.0.0 Bye\r\n");
			fake_flush(f, false);
			conn_close(f->c);
			return;
		}
		fake_fail(f, "after the script", "", line);
		return;
	}
	st = &f->script[f->pos++];
	if (!line_matches(st->expect, line)) {
		fake_fail(f, "script", st->expect, line);
		return;
	}
	if (st->reply != NULL)
		buf_appends(&f->pend, st->reply);
	if (!(st->flags & F_HOLD))
		fake_flush(f, st->flags & F_SPLIT);
	if (st->flags & F_TLS) {
		/* The server's side of RFC 3207 4: nothing read so far counts. */
		buf_reset(&f->in);
		ck_assert_int_eq(conn_start_tls(f->c, sctx, true, NULL, false), 0);
	}
	if (st->flags & F_DATA) {
		f->data_mode = true;
		f->data_abort = st->flags & F_DATA_ABORT;
		f->data_early = st->flags & F_DATA_EARLY;
	}
	if (st->flags & F_JUNK)
		f->junk = true;
	if (st->flags & F_DEAF)
		f->deaf = true;
	if (st->flags & F_STALL) {
		conn_read_stop(f->c);
		f->stalled = true;
	}
	if (st->flags & F_CLOSE)
		conn_close(f->c);
	if (st->flags & F_ABORT)
		conn_abort(f->c);
}

static bool
data_ended(const struct buf *d)
{
	size_t n = buf_unread(d);
	const char *p = buf_rptr(d);

	return (n == 3 && memcmp(p, ".\r\n", 3) == 0) ||
	    (n >= 5 && memcmp(p + n - 5, "\r\n.\r\n", 5) == 0);
}

static void
fake_process(struct fake *f)
{
	while (f->c != NULL && !conn_is_closing(f->c)) {
		const char *line;
		size_t len;
		bool bare;
		char *s;

		if (f->data_mode) {
			size_t n = buf_unread(&f->in);

			if (n == 0)
				return;
			if (f->data_abort) {
				conn_abort(f->c);
				return;
			}
			if (f->data_early) {
				/* The next step's reply now, while the client still sends. */
				f->data_early = false;
				if (f->pos < f->n && f->script[f->pos].reply != NULL)
					buf_appends(&f->pend, f->script[f->pos].reply);
				fake_flush(f, false);
				conn_read_stop(f->c);
				f->stalled = true;
				return;
			}
			buf_append(&f->data, buf_rptr(&f->in), n);
			buf_consume(&f->in, n);
			if (!data_ended(&f->data))
				return;
			f->data_mode = false;
			fake_step(f, "<DATA>");
			continue;
		}
		if (buf_getline(&f->in, 8192, &line, &len, &bare) != 0)
			return;
		s = strndup(line, len);
		if (len > 0 && s[len - 1] == '\r')
			s[len - 1] = '\0';
		fake_step(f, s);
		free(s);
	}
}

static void
fake_on_read(struct conn *c, const char *p, size_t n)
{
	struct fake *f = conn_data(c);

	if (f->junk) {
		f->junk = false;
		conn_write(c, "HTTP/1.0 400 Bad Request\r\n\r\n", 28);
		return;
	}
	if (f->deaf)
		return;
	buf_append(&f->in, p, n);
	fake_process(f);
}

static void
fake_on_tls(struct conn *c, int status)
{
	struct fake *f = conn_data(c);

	f->tls = status == 0;
}

static void
fake_on_close(struct conn *c, int status)
{
	struct fake *f = conn_data(c);

	(void)status;
	f->c = NULL;
	f->nclose++;
	maybe_done();
}

static const struct conn_ops fake_ops = {
	.on_read = fake_on_read,
	.on_tls = fake_on_tls,
	.on_close = fake_on_close,
};

static void
fake_accept(void *arg, uv_stream_t *server)
{
	struct fake *f = arg;

	if (f->c != NULL || f->nconn > 0) {
		ck_assert_int_eq(listener_reject(server), 0);
		return;
	}
	ck_assert_int_eq(conn_accept(&f->c, server, &fake_ops, f), 0);
	f->nconn++;
	if (f->n > 0 && strcmp(f->script[0].expect, "<CONNECT>") == 0)
		fake_step(f, "<CONNECT>");
}

/* --- the client side -------------------------------------------------------------- */

static void
maybe_done(void)
{
	if (H->l != NULL && H->cli.nclosed > 0 && H->srv.c == NULL) {
		listener_close(H->l, NULL, NULL);
		H->l = NULL;
	}
}

static void
on_closed(void *arg, struct smtpc *c)
{
	struct cli *k = arg;

	ck_assert_ptr_eq(c, k->c);
	k->nclosed++;
	k->closed_ms = uv_now(&H->loop);
	k->c = NULL;
	if (H->srv.c != NULL && H->srv.stalled)
		conn_abort(H->srv.c);
	maybe_done();
}

static void send_next(struct cli *k);

static void
on_txn(void *arg, struct smtpc *c, const struct smtpc_result *res)
{
	struct cli *k = arg;
	struct txn_rec *r;

	ck_assert_ptr_eq(c, k->c);
	ck_assert_int_lt(k->ntxn, MAX_TXN);
	r = &k->txn[k->ntxn++];
	r->status = res->status;
	r->stage = res->stage;
	r->mail = res->mail;
	r->data = res->data;
	for (size_t i = 0; i < MAX_RCPT && i < k->send[k->ntxn - 1]->nrcpt; i++)
		r->rcpt[i] = res->rcpt[i];
	r->lost = res->connection_lost;
	r->usable = smtpc_usable(c);
	snprintf(r->error, sizeof r->error, "%s", res->error);
	r->elapsed_ms = res->elapsed_ms;
	k->info = *smtpc_info(c);
	send_next(k);
}

static void
send_next(struct cli *k)
{
	if ((size_t)k->ntxn < k->nsend && smtpc_usable(k->c)) {
		k->send_rc = smtpc_send(k->c, k->send[k->ntxn], on_txn, k);
		if (k->send_rc == 0)
			return;
	}
	if (!k->stay)
		smtpc_quit(k->c);
}

static void
on_ready(void *arg, struct smtpc *c, int status, enum smtpc_stage stage,
    const struct smtpc_reply *reply)
{
	struct cli *k = arg;

	ck_assert_ptr_eq(c, k->c);
	k->nready++;
	k->ready_status = status;
	k->ready_stage = stage;
	k->ready_reply = *reply;
	if (status != 0) {
		ck_assert(!smtpc_usable(c));
		return;
	}
	ck_assert(smtpc_usable(c));
	k->info = *smtpc_info(c);
	if (k->ready_hook != NULL) {
		k->ready_hook();
		return;
	}
	if (k->abort_in_ready) {
		smtpc_abort(c);
		return;
	}
	send_next(k);
}

/* --- harness ----------------------------------------------------------------------- */

static void
setup(void)
{
	H = calloc(1, sizeof *H);
	ck_assert_ptr_nonnull(H);
	ck_assert_int_eq(pipe2(H->logpipe, O_NONBLOCK | O_CLOEXEC), 0);
	(void)fcntl(H->logpipe[1], F_SETPIPE_SZ, 1024 * 1024);
	log_set_fd(H->logpipe[1]);
	log_set_level(LOG_INFO);
	ck_assert_int_eq(uv_loop_init(&H->loop), 0);
	ck_assert_int_eq(uv_timer_init(&H->loop, &H->guard), 0);
	ck_assert_int_eq(uv_timer_init(&H->loop, &H->slow_timer), 0);
	buf_init(&H->srv.in);
	buf_init(&H->srv.pend);
	buf_init(&H->srv.slow);
	buf_init(&H->srv.data);
	H->o.loop = &H->loop;
	H->o.host = HOSTNAME;
	H->o.helo = HELO;
	H->o.connect_ms = H->o.greeting_ms = H->o.command_ms = 3000;
	H->o.data_init_ms = H->o.data_block_ms = H->o.data_end_ms = 3000;
}

static void
teardown(void)
{
	for (size_t i = 0; i < H->srv.nlines; i++)
		free(H->srv.lines[i].text);
	buf_free(&H->srv.in);
	buf_free(&H->srv.pend);
	buf_free(&H->srv.slow);
	buf_free(&H->srv.data);
	log_set_level(LOG_INFO);
	log_set_fd(STDERR_FILENO);
	close(H->logpipe[0]);
	close(H->logpipe[1]);
	free(H);
	H = NULL;
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
on_guard(uv_timer_t *t)
{
	(void)t;
	H->timed_out = true;
	if (H->cli.c != NULL)
		smtpc_abort(H->cli.c);
	if (H->srv.c != NULL)
		conn_abort(H->srv.c);
	if (H->l != NULL) {
		listener_close(H->l, NULL, NULL);
		H->l = NULL;
	}
}

static void
listen_script(const struct step *script, size_t n)
{
	struct config_listen cl;
	char err[256] = "";

	H->srv.script = script;
	H->srv.n = n;
	memset(&cl, 0, sizeof cl);
	cl.n = 1;
	snprintf(cl.ep[0].host, sizeof cl.ep[0].host, "127.0.0.1");
	ck_assert_msg(listener_open(&H->l, &H->loop, &cl, 16, fake_accept, &H->srv, err,
	    sizeof err) == 0, "%s", err);
	H->port = listener_port(H->l, 0);
	ck_assert_int_eq(uv_ip4_addr("127.0.0.1", H->port, &H->addr), 0);
	H->o.addr = (const struct sockaddr *)&H->addr;
}

static void
open_client(void)
{
	ck_assert_int_eq(smtpc_open(&H->cli.c, &H->o, on_ready, &H->cli), 0);
	ck_assert_ptr_nonnull(H->cli.c);
	smtpc_on_close(H->cli.c, on_closed, &H->cli);
}

static void
run(void)
{
	uv_update_time(&H->loop);
	uv_timer_start(&H->guard, on_guard, GUARD_MS, 0);
	uv_unref((uv_handle_t *)&H->guard);
	uv_unref((uv_handle_t *)&H->slow_timer);
	uv_run(&H->loop, UV_RUN_DEFAULT);
	ck_assert_msg(!H->timed_out, "timed out; log:\n%s", logged());
	uv_close((uv_handle_t *)&H->guard, NULL);
	uv_close((uv_handle_t *)&H->slow_timer, NULL);
	uv_run(&H->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&H->loop), 0);
	/* Whatever happened, the smtpc ended exactly once. */
	ck_assert_int_eq(H->cli.nclosed, 1);
}

/* Script, connect, run; then the server must have followed its script. */
static void
play(const struct step *script, size_t n)
{
	listen_script(script, n);
	open_client();
	run();
	ck_assert_msg(H->srv.bad[0] == '\0', "server: %s", H->srv.bad);
}

static const char *
line_at(size_t i)
{
	ck_assert_uint_lt(i, H->srv.nlines);
	return H->srv.lines[i].text;
}

/* The index of the first line equal to s, or -1. */
static int
find_line(const char *s)
{
	for (size_t i = 0; i < H->srv.nlines; i++)
		if (strcmp(H->srv.lines[i].text, s) == 0)
			return (int)i;
	return -1;
}

static void
assert_data(const char *expect, size_t len)
{
	ck_assert_uint_eq(buf_unread(&H->srv.data), len);
	ck_assert_int_eq(memcmp(buf_rptr(&H->srv.data), expect, len), 0);
}

/* --- a few messages ---------------------------------------------------------------- */

static const char msg_text[] = "Subject: hi\r\n\r\nHello\r\n";
static const struct iovec msg_piece[] = { { (void *)msg_text, sizeof msg_text - 1 } };
static const struct smtpc_rcpt rcpt_one[] = { { "bob@example.net", NULL, 0 } };
static const struct smtpc_rcpt rcpt_two[] = {
	{ "bob@example.net", NULL, 0 },
	{ "eve@example.net", NULL, 0 },
};
static const struct smtpc_txn txn_simple = {
	.mail_from = "alice@example.com",
	.size = sizeof msg_text - 1,
	.nrcpt = 1,
	.rcpt = rcpt_one,
	.npieces = 1,
	.pieces = msg_piece,
};
static const struct smtpc_txn txn_two = {
	.mail_from = "alice@example.com",
	.nrcpt = 2,
	.rcpt = rcpt_two,
	.npieces = 1,
	.pieces = msg_piece,
};

#define GREET { "<CONNECT>", "220 " HOSTNAME " ESMTP\r\n", 0 }
#define EHLO_PIPE { "EHLO " HELO, "250-" HOSTNAME "\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n", 0 }
#define EHLO_PLAIN { "EHLO " HELO, "250-" HOSTNAME "\r\n250 8BITMIME\r\n", 0 }
#define MSG_END "Subject: hi\r\n\r\nHello\r\n.\r\n"

/* --- tests: the basic dialogue ------------------------------------------------------- */

/*
 * PIPELINING: MAIL, both RCPTs and DATA arrive before any reply (one
 * write count), with every ESMTP parameter the server offers; per-
 * recipient replies are reported in order.
 */
START_TEST(test_pipelined)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "250-" HOSTNAME " hello\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n"
		  "250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n", 0 },
		{ "MAIL FROM:<alice@example.com> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=q+2B1+3D", "250 2.1.0 Ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bx@example.net", "250 2.1.5 Ok\r\n", F_HOLD },
		{ "RCPT TO:<eve@example.net> NOTIFY=NEVER", "550-5.1.1 No such\r\n550 5.1.1 user\r\n", F_HOLD },
		{ "RCPT TO:<\xc3\xa9@example.net>", "250 2.1.5 Ok\r\n", F_HOLD },
		{ "DATA", "354 go ahead\r\n", F_DATA },
		{ "<DATA>", "250 2.0.0 Ok: queued as 12345\r\n", 0 },
	};
	static const struct smtpc_rcpt rcpt[] = {
		{ "bob@example.net", "rfc822;bob+x@example.net", NOTIFY_SUCCESS | NOTIFY_FAILURE },
		{ "eve@example.net", NULL, NOTIFY_NEVER },
		{ "\xc3\xa9@example.net", NULL, 0 },
	};
	static const struct smtpc_txn t = {
		.mail_from = "alice@example.com", .size = 1234, .body8bit = true,
		.smtputf8 = true, .envid = "q+1=", .ret = RET_HDRS,
		.nrcpt = 3, .rcpt = rcpt, .npieces = 1, .pieces = msg_piece,
	};
	struct txn_rec *r = &H->cli.txn[0];

	H->cli.send[0] = &t;
	H->cli.nsend = 1;
	play(script, NELEM(script));

	ck_assert_int_eq(H->cli.nready, 1);
	ck_assert_int_eq(H->cli.ready_status, 0);
	ck_assert_int_eq(H->cli.ntxn, 1);
	ck_assert_int_eq(r->status, 0);
	ck_assert_int_eq(r->stage, SMTPC_DOT);
	ck_assert(!r->lost);
	ck_assert(r->usable);
	ck_assert_int_eq(r->mail.code, 250);
	ck_assert_str_eq(r->mail.text, "250 2.1.0 Ok");
	ck_assert_int_eq(r->rcpt[0].code, 250);
	ck_assert_int_eq(r->rcpt[1].code, 550);
	ck_assert_str_eq(r->rcpt[1].text, "550 5.1.1 No such / 5.1.1 user");
	ck_assert_int_eq(r->rcpt[2].code, 250);
	ck_assert_int_eq(r->data.code, 250);
	ck_assert_str_eq(r->data.text, "250 2.0.0 Ok: queued as 12345");
	ck_assert_str_eq(r->error, "");
	assert_data(MSG_END, sizeof MSG_END - 1);

	/* One group: MAIL (line 2) to DATA (line 6) before any reply to them. */
	for (size_t i = 2; i <= 6; i++)
		ck_assert_uint_eq(H->srv.lines[i].writes, 2);
	ck_assert_str_eq(line_at(8), "QUIT");

	ck_assert(H->cli.info.pipelining);
	ck_assert(H->cli.info.ext8bitmime);
	ck_assert(H->cli.info.smtputf8);
	ck_assert(H->cli.info.dsn);
	ck_assert(H->cli.info.enhancedstatuscodes);
	ck_assert(H->cli.info.esmtp);
	ck_assert(!H->cli.info.tls);
	ck_assert_ptr_null(H->cli.info.tls_version);
	ck_assert_uint_eq(H->cli.info.size_max, 1000000);
	ck_assert_uint_eq(H->cli.info.transactions, 1);
	ck_assert_str_eq(H->cli.info.local_ip, "127.0.0.1");
	{
		char peer[64];

		snprintf(peer, sizeof peer, "127.0.0.1:%u", H->port);
		ck_assert_str_eq(H->cli.info.peer, peer);
	}
}
END_TEST

/*
 * Without PIPELINING: one command per reply; no SIZE, DSN or SMTPUTF8
 * parameters when the server does not offer them.
 */
START_TEST(test_lockstep)
{
	static const struct step script[] = {
		GREET,
		EHLO_PLAIN,
		{ "MAIL FROM:<>", "250 ok\r\n", 0 },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", 0 },
		{ "RCPT TO:<eve@example.net>", "250 ok\r\n", 0 },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 ok\r\n", 0 },
	};
	static const struct smtpc_rcpt rcpt[] = {
		{ "bob@example.net", "rfc822;bob@example.net", NOTIFY_FAILURE },
		{ "eve@example.net", NULL, NOTIFY_NEVER },
	};
	static const struct smtpc_txn t = {
		.mail_from = "", .size = 99, .envid = "abc", .ret = RET_FULL,
		.nrcpt = 2, .rcpt = rcpt, .npieces = 1, .pieces = msg_piece,
	};

	H->cli.send[0] = &t;
	H->cli.nsend = 1;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.txn[0].status, 0);
	ck_assert(!H->cli.info.pipelining);
	/* Each line came after the reply to the one before. */
	for (size_t i = 1; i <= 5; i++)
		ck_assert_uint_eq(H->srv.lines[i].writes, i);
	assert_data(MSG_END, sizeof MSG_END - 1);
}
END_TEST

/* Replies split over many reads, multi-line everywhere. */
START_TEST(test_split_replies)
{
	static const struct step script[] = {
		{ "<CONNECT>", "220-" HOSTNAME " ESMTP\r\n220-welcome\r\n220 really\r\n", F_SPLIT },
		{ "EHLO " HELO, "250-" HOSTNAME "\r\n250-PIPELINING\r\n250 SIZE 5000\r\n", F_SPLIT },
		{ "MAIL FROM:<alice@example.com> SIZE=22", "250-2.1.0 sender\r\n250 2.1.0 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "451-4.7.1 greylisted\r\n451 4.7.1 come back\r\n", F_HOLD },
		{ "RCPT TO:<eve@example.net>", "250 2.1.5 ok\r\n", F_HOLD },
		{ "DATA", "354-a\r\n354 b\r\n", F_DATA | F_SPLIT },
		{ "<DATA>", "250-2.0.0 one\r\n250 2.0.0 two\r\n", F_SPLIT },
	};
	static const struct smtpc_txn t = {
		.mail_from = "alice@example.com", .size = 22,
		.nrcpt = 2, .rcpt = rcpt_two, .npieces = 1, .pieces = msg_piece,
	};
	struct txn_rec *r = &H->cli.txn[0];

	H->cli.send[0] = &t;
	H->cli.nsend = 1;
	play(script, NELEM(script));
	ck_assert_int_eq(r->status, 0);
	ck_assert_str_eq(r->mail.text, "250 2.1.0 sender / 2.1.0 ok");
	ck_assert_int_eq(r->rcpt[0].code, 451);
	ck_assert_str_eq(r->rcpt[0].text, "451 4.7.1 greylisted / 4.7.1 come back");
	ck_assert_int_eq(r->rcpt[1].code, 250);
	ck_assert_str_eq(r->data.text, "250 2.0.0 one / 2.0.0 two");
	ck_assert_uint_eq(H->cli.info.size_max, 5000);
}
END_TEST

/* Two transactions: the second starts with RSET, in the same group. */
START_TEST(test_rset_between)
{
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 first\r\n", 0 },
		{ "RSET", "250 reset\r\n", F_HOLD },
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<eve@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 second\r\n", 0 },
	};

	H->cli.send[0] = &txn_simple;
	H->cli.send[1] = &txn_two;
	H->cli.nsend = 2;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ntxn, 2);
	ck_assert_int_eq(H->cli.txn[0].status, 0);
	ck_assert_str_eq(H->cli.txn[0].data.text, "250 first");
	ck_assert_int_eq(H->cli.txn[1].status, 0);
	ck_assert_str_eq(H->cli.txn[1].data.text, "250 second");
	ck_assert_uint_eq(H->cli.info.transactions, 2);
	ck_assert_uint_eq(H->srv.lines[6].writes, H->srv.lines[10].writes);
}
END_TEST

/*
 * Lock-step: no recipient accepted, so no DATA: -ENOENT at RCPT with the
 * replies; the connection stays usable and the next transaction starts
 * with RSET.
 */
START_TEST(test_no_rcpt_lockstep)
{
	static const struct step script[] = {
		GREET,
		EHLO_PLAIN,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", 0 },
		{ "RCPT TO:<bob@example.net>", "550 5.1.1 no\r\n", 0 },
		{ "RCPT TO:<eve@example.net>", "452 4.2.2 full\r\n", 0 },
		{ "RSET", "250 ok\r\n", 0 },
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", 0 },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", 0 },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 ok\r\n", 0 },
	};
	struct txn_rec *r = &H->cli.txn[0];

	H->cli.send[0] = &txn_two;
	H->cli.send[1] = &txn_simple;
	H->cli.nsend = 2;
	play(script, NELEM(script));
	ck_assert_int_eq(r->status, -ENOENT);
	ck_assert_int_eq(r->stage, SMTPC_RCPT);
	ck_assert_int_eq(r->rcpt[0].code, 550);
	ck_assert_int_eq(r->rcpt[1].code, 452);
	ck_assert_int_eq(r->data.code, 0);
	ck_assert(!r->lost);
	ck_assert(r->usable);
	ck_assert_str_eq(r->error, "no recipient accepted");
	ck_assert_int_eq(H->cli.txn[1].status, 0);
	ck_assert_uint_eq(H->cli.info.transactions, 2);
}
END_TEST

/* Pipelined, no recipient accepted: the server's refusal of DATA is kept. */
START_TEST(test_no_rcpt_pipelined)
{
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "550 5.1.1 no\r\n", F_HOLD },
		{ "RCPT TO:<eve@example.net>", "550 5.1.1 no\r\n", F_HOLD },
		{ "DATA", "554 5.5.1 no valid recipients\r\n", 0 },
	};
	struct txn_rec *r = &H->cli.txn[0];

	H->cli.send[0] = &txn_two;
	H->cli.nsend = 1;
	play(script, NELEM(script));
	ck_assert_int_eq(r->status, -ENOENT);
	ck_assert_int_eq(r->stage, SMTPC_RCPT);
	ck_assert_int_eq(r->data.code, 0);
	ck_assert(r->usable);
	ck_assert_str_eq(line_at(6), "QUIT");
}
END_TEST

/* A server that says 354 with no recipient gets a lone dot (RFC 2920 3.1). */
START_TEST(test_no_rcpt_354)
{
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "550 5.1.1 no\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "554 5.5.1 nothing\r\n", 0 },
		{ "RSET", "250 ok\r\n", F_HOLD },
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 ok\r\n", 0 },
	};

	H->cli.send[0] = &txn_simple;
	H->cli.send[1] = &txn_simple;
	H->cli.nsend = 2;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.txn[0].status, -ENOENT);
	ck_assert_int_eq(H->cli.txn[0].stage, SMTPC_RCPT);
	ck_assert_int_eq(H->cli.txn[1].status, 0);
	/* The first data was the lone dot, then the second message. */
	assert_data(".\r\n" MSG_END, 3 + sizeof MSG_END - 1);
}
END_TEST

/* MAIL refused in a pipelined group: stage MAIL, RCPT replies not kept. */
START_TEST(test_mail_refused)
{
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<alice@example.com>", "553 5.7.1 sender rejected\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "503 5.5.1 MAIL first\r\n", F_HOLD },
		{ "DATA", "503 5.5.1 MAIL first\r\n", 0 },
	};
	struct txn_rec *r = &H->cli.txn[0];

	H->cli.send[0] = &txn_simple;
	H->cli.nsend = 1;
	play(script, NELEM(script));
	ck_assert_int_eq(r->status, -EREMOTEIO);
	ck_assert_int_eq(r->stage, SMTPC_MAIL);
	ck_assert_str_eq(r->mail.text, "553 5.7.1 sender rejected");
	ck_assert_int_eq(r->rcpt[0].code, 0);
	ck_assert_int_eq(r->data.code, 0);
	ck_assert(!r->lost);
	ck_assert(r->usable);
}
END_TEST

/* Lock-step MAIL refusal: nothing more is sent. */
START_TEST(test_mail_refused_lockstep)
{
	static const struct step script[] = {
		GREET,
		EHLO_PLAIN,
		{ "MAIL FROM:<alice@example.com>", "451 4.3.0 try later\r\n", 0 },
	};

	H->cli.send[0] = &txn_simple;
	H->cli.nsend = 1;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.txn[0].status, -EREMOTEIO);
	ck_assert_int_eq(H->cli.txn[0].stage, SMTPC_MAIL);
	ck_assert_int_eq(H->cli.txn[0].mail.code, 451);
	ck_assert_str_eq(line_at(3), "QUIT");
}
END_TEST

/* DATA refused; a 5xx after the dot is status 0 with the reply. */
START_TEST(test_data_replies)
{
	static const struct step script[] = {
		GREET,
		EHLO_PLAIN,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", 0 },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", 0 },
		{ "DATA", "451 4.3.0 not now\r\n", 0 },
		{ "RSET", "250 ok\r\n", 0 },
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", 0 },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", 0 },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "554 5.7.1 spam\r\n", 0 },
	};

	H->cli.send[0] = &txn_simple;
	H->cli.send[1] = &txn_simple;
	H->cli.nsend = 2;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.txn[0].status, -EREMOTEIO);
	ck_assert_int_eq(H->cli.txn[0].stage, SMTPC_DATA);
	ck_assert_str_eq(H->cli.txn[0].data.text, "451 4.3.0 not now");
	ck_assert_int_eq(H->cli.txn[1].status, 0);
	ck_assert_int_eq(H->cli.txn[1].stage, SMTPC_DOT);
	ck_assert_int_eq(H->cli.txn[1].data.code, 554);
}
END_TEST

/* RSET refused: the transaction fails at RSET and the connection is quit. */
START_TEST(test_rset_refused)
{
	static const struct step script[] = {
		GREET,
		EHLO_PLAIN,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", 0 },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", 0 },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 ok\r\n", 0 },
		{ "RSET", "500 what\r\n", 0 },
	};

	H->cli.send[0] = &txn_simple;
	H->cli.send[1] = &txn_simple;
	H->cli.nsend = 2;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.txn[1].status, -EREMOTEIO);
	ck_assert_int_eq(H->cli.txn[1].stage, SMTPC_RSET);
	ck_assert_int_eq(H->cli.txn[1].mail.code, 500);
	ck_assert(H->cli.txn[1].lost);
	ck_assert(!H->cli.txn[1].usable);
	ck_assert_str_eq(line_at(7), "QUIT");
}
END_TEST

/* 421 to a RCPT: the server is going; reported, connection closed without QUIT. */
START_TEST(test_421_rcpt)
{
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<eve@example.net>", "421 4.7.0 too many errors\r\n", F_HOLD },
		{ "DATA", NULL, 0 },
	};
	struct txn_rec *r = &H->cli.txn[0];

	H->cli.send[0] = &txn_two;
	H->cli.nsend = 1;
	play(script, NELEM(script));
	ck_assert_int_eq(r->status, -EREMOTEIO);
	ck_assert_int_eq(r->stage, SMTPC_RCPT);
	ck_assert_int_eq(r->rcpt[0].code, 250);
	ck_assert_int_eq(r->rcpt[1].code, 421);
	ck_assert(r->lost);
	ck_assert_int_eq(find_line("QUIT"), -1);
}
END_TEST

/* --- tests: set-up --------------------------------------------------------------- */

START_TEST(test_greeting_554)
{
	static const struct step script[] = {
		{ "<CONNECT>", "554-5.7.1 go away\r\n554 5.7.1 really\r\n", 0 },
	};

	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.nready, 1);
	ck_assert_int_eq(H->cli.ready_status, -EREMOTEIO);
	ck_assert_int_eq(H->cli.ready_stage, SMTPC_GREETING);
	ck_assert_int_eq(H->cli.ready_reply.code, 554);
	ck_assert_str_eq(H->cli.ready_reply.text, "554 5.7.1 go away / 5.7.1 really");
	/* QUIT, politely, and nothing else. */
	ck_assert_uint_eq(H->srv.nlines, 2);
	ck_assert_str_eq(line_at(1), "QUIT");
}
END_TEST

/* 421 greeting: the server is closing; no QUIT. */
START_TEST(test_greeting_421)
{
	static const struct step script[] = {
		{ "<CONNECT>", "421 4.3.2 busy\r\n", F_CLOSE },
	};

	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, -EREMOTEIO);
	ck_assert_int_eq(H->cli.ready_stage, SMTPC_GREETING);
	ck_assert_int_eq(H->cli.ready_reply.code, 421);
	ck_assert_uint_eq(H->srv.nlines, 1);
}
END_TEST

/* EHLO 5xx: HELO; no extensions, lock-step, no parameters. */
START_TEST(test_helo_fallback)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "502 5.5.2 what\r\n", 0 },
		{ "HELO " HELO, "250 " HOSTNAME "\r\n", 0 },
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", 0 },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", 0 },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 ok\r\n", 0 },
	};

	H->cli.send[0] = &txn_simple;
	H->cli.nsend = 1;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, 0);
	ck_assert(!H->cli.info.esmtp);
	ck_assert(!H->cli.info.pipelining);
	ck_assert_int_eq(H->cli.txn[0].status, 0);
}
END_TEST

/* EHLO 4xx is no reason for HELO: the set-up fails at EHLO. */
START_TEST(test_ehlo_4xx)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "451 4.3.0 later\r\n", 0 },
	};

	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, -EREMOTEIO);
	ck_assert_int_eq(H->cli.ready_stage, SMTPC_EHLO);
	ck_assert_int_eq(H->cli.ready_reply.code, 451);
	ck_assert_str_eq(line_at(2), "QUIT");
}
END_TEST

START_TEST(test_helo_refused)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "500 no\r\n", 0 },
		{ "HELO " HELO, "501 5.5.4 bad name\r\n", 0 },
	};

	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, -EREMOTEIO);
	ck_assert_int_eq(H->cli.ready_stage, SMTPC_EHLO);
	ck_assert_str_eq(H->cli.ready_reply.text, "501 5.5.4 bad name");
}
END_TEST

static const struct malformed_case {
	const char *reply;
	const char *why;
} malformed_cases[] = {
	{ "2x0 hi\r\n", "malformed reply: bad reply code" },
	{ "250-a\r\n251 b\r\n", "malformed reply: reply code changed within a reply" },
	{ "250 ok\r\n250 again\r\n", NULL },   /* a reply to no command */
	{ "250ok\r\n", "malformed reply: bad reply separator" },
};

/* A malformed reply to EHLO: -EPROTO at EHLO, no reply, connection aborted. */
START_TEST(test_malformed)
{
	const struct malformed_case *tc = &malformed_cases[_i];
	const struct step script[] = {
		GREET,
		{ "EHLO " HELO, tc->reply, 0 },
	};

	/* Idle after the set-up: an extra reply then comes to no command. */
	H->cli.stay = true;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, tc->why != NULL ? -EPROTO : 0);
	if (tc->why != NULL) {
		ck_assert_int_eq(H->cli.ready_stage, SMTPC_EHLO);
		ck_assert_int_eq(H->cli.ready_reply.code, 0);
		ck_assert_str_eq(H->cli.ready_reply.text, tc->why);
	}
	ck_assert_int_eq(find_line("QUIT"), -1);
}
END_TEST

/* A line over the limit, and a flood of lines, stop the set-up. */
START_TEST(test_malformed_long)
{
	static char reply[SMTPREPLY_LINE_MAX + 16];
	static char flood[300 * 7 + 1];
	const struct step script[] = {
		GREET,
		{ "EHLO " HELO, _i == 0 ? reply : flood, 0 },
	};

	memset(reply, 'x', sizeof reply - 1);
	memcpy(reply, "250 ", 4);
	memcpy(reply + sizeof reply - 3, "\r\n", 3);
	for (size_t i = 0; i < 300; i++)
		memcpy(flood + 7 * i, "250-ab\n", 7);
	flood[sizeof flood - 1] = '\0';
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, -EPROTO);
	ck_assert_str_eq(H->cli.ready_reply.text, _i == 0 ?
	    "malformed reply: reply line too long" :
	    "malformed reply: too many reply lines");
}
END_TEST

START_TEST(test_refused_connect)
{
	struct config_listen cl;
	char err[256];
	struct listener *l;

	/* A port just freed: nothing listens there. */
	memset(&cl, 0, sizeof cl);
	cl.n = 1;
	snprintf(cl.ep[0].host, sizeof cl.ep[0].host, "127.0.0.1");
	ck_assert_int_eq(listener_open(&l, &H->loop, &cl, 1, fake_accept, &H->srv, err,
	    sizeof err), 0);
	ck_assert_int_eq(uv_ip4_addr("127.0.0.1", listener_port(l, 0), &H->addr), 0);
	listener_close(l, NULL, NULL);
	H->o.addr = (const struct sockaddr *)&H->addr;
	open_client();
	run();
	ck_assert_int_eq(H->cli.nready, 1);
	ck_assert_int_eq(H->cli.ready_status, -ECONNREFUSED);
	ck_assert_int_eq(H->cli.ready_stage, SMTPC_CONNECT);
	ck_assert_int_eq(H->cli.ready_reply.code, 0);
	ck_assert_str_eq(H->cli.ready_reply.text, "connect failed: connection refused");
}
END_TEST

/* outbound_ip: the connection comes from bind_addr, and info says so. */
START_TEST(test_bind_addr)
{
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
	};
	struct sockaddr_in b;

	ck_assert_int_eq(uv_ip4_addr("127.0.0.2", 0, &b), 0);
	H->o.bind_addr = (const struct sockaddr *)&b;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, 0);
	ck_assert_str_eq(H->cli.info.local_ip, "127.0.0.2");
}
END_TEST

START_TEST(test_open_invalid)
{
	struct smtpc *c = (struct smtpc *)1;
	struct sockaddr_in a;
	struct smtpc_opts o;

	ck_assert_int_eq(uv_ip4_addr("127.0.0.1", 25, &a), 0);
#define TRY(field, value) do { \
		o = H->o; \
		o.addr = (const struct sockaddr *)&a; \
		o.field = value; \
		ck_assert_int_eq(smtpc_open(&c, &o, on_ready, &H->cli), -EINVAL); \
		ck_assert_ptr_null(c); \
	} while (0)
	TRY(helo, "bad helo");
	TRY(helo, "");
	TRY(helo, NULL);
	TRY(host, "a\r\nb");
	TRY(host, NULL);
	TRY(loop, NULL);
	TRY(addr, NULL);
	TRY(require_tls, true);            /* without a context */
	TRY(auth_user, "u");               /* without a password, without TLS */
	o = H->o;
	o.addr = (const struct sockaddr *)&a;
	o.tls = cctx;
	o.auth_user = "u";
	ck_assert_int_eq(smtpc_open(&c, &o, on_ready, &H->cli), -EINVAL);
	o.auth_user = NULL;
	o.auth_pass = "p";
	ck_assert_int_eq(smtpc_open(&c, &o, on_ready, &H->cli), -EINVAL);
	o = H->o;
	o.addr = (const struct sockaddr *)&a;
	ck_assert_int_eq(smtpc_open(&c, &o, NULL, NULL), -EINVAL);
#undef TRY
	uv_close((uv_handle_t *)&H->guard, NULL);
	uv_close((uv_handle_t *)&H->slow_timer, NULL);
	uv_run(&H->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&H->loop), 0);
}
END_TEST

/* --- tests: STARTTLS and AUTH --------------------------------------------------------- */

#define EHLO_TLS { "EHLO " HELO, "250-" HOSTNAME "\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n", 0 }
#define STARTTLS_OK { "STARTTLS", "220 2.0.0 go ahead\r\n", F_TLS }

START_TEST(test_starttls)
{
	static const struct step script[] = {
		GREET,
		EHLO_TLS,
		STARTTLS_OK,
		{ "EHLO " HELO, "250-" HOSTNAME "\r\n250-PIPELINING\r\n250 DSN\r\n", 0 },
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 ok\r\n", 0 },
	};

	H->o.tls = _i == 0 ? cctx : cctx_trust;
	H->cli.send[0] = &txn_simple;
	H->cli.nsend = 1;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, 0);
	ck_assert(H->cli.info.tls);
	ck_assert_ptr_nonnull(H->cli.info.tls_version);
	ck_assert(strcmp(H->cli.info.tls_version, "TLSv1.3") == 0 ||
	    strcmp(H->cli.info.tls_version, "TLSv1.2") == 0);
	ck_assert_ptr_nonnull(H->cli.info.tls_cipher);
	if (_i == 0) {
		ck_assert(!H->cli.info.tls_verified);
		ck_assert_str_eq(H->cli.info.tls_verify_error, "self-signed certificate");
	} else {
		ck_assert(H->cli.info.tls_verified);
		ck_assert_str_eq(H->cli.info.tls_verify_error, "");
	}
	/* Keywords are those of the EHLO after TLS. */
	ck_assert(H->cli.info.pipelining);
	ck_assert(H->cli.info.dsn);
	ck_assert(!H->cli.info.ext8bitmime);
	ck_assert(!H->cli.info.authenticated);
	ck_assert(!H->srv.lines[2].tls);
	ck_assert(H->srv.lines[3].tls);
	ck_assert(H->srv.lines[4].tls);
	ck_assert_int_eq(H->cli.txn[0].status, 0);
}
END_TEST

/* The certificate names another host: not verified, delivered anyway. */
START_TEST(test_starttls_wrong_name)
{
	static const struct step script[] = {
		GREET,
		EHLO_TLS,
		STARTTLS_OK,
		{ "EHLO " HELO, "250 " HOSTNAME "\r\n", 0 },
	};

	H->o.tls = cctx_trust;
	H->o.host = "other.example";
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, 0);
	ck_assert(H->cli.info.tls);
	ck_assert(!H->cli.info.tls_verified);
	ck_assert_str_ne(H->cli.info.tls_verify_error, "");
}
END_TEST

/*
 * RFC 3207 4: bytes after the 220 in the same read are dropped, not
 * taken as replies (they would be a second reply, or ruin the handshake).
 */
START_TEST(test_starttls_injection)
{
	static const struct step script[] = {
		GREET,
		EHLO_TLS,
		{ "STARTTLS", "220 2.0.0 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n", F_TLS },
		{ "EHLO " HELO, "250-" HOSTNAME "\r\n250 PIPELINING\r\n", 0 },
	};

	H->o.tls = cctx;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, 0);
	ck_assert(H->cli.info.tls);
	ck_assert(H->cli.info.pipelining);
}
END_TEST

START_TEST(test_starttls_refused)
{
	static const struct step script[] = {
		GREET,
		EHLO_TLS,
		{ "STARTTLS", "454 4.7.0 TLS not available\r\n", 0 },
	};

	H->o.tls = cctx;
	H->o.require_tls = _i == 1;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, -EPROTO);
	ck_assert_int_eq(H->cli.ready_stage, SMTPC_STARTTLS);
	ck_assert_str_eq(H->cli.ready_reply.text, "454 4.7.0 TLS not available");
	ck_assert_str_eq(line_at(3), "QUIT");
}
END_TEST

/* require_tls and no STARTTLS offered: fail rather than go on in plaintext. */
START_TEST(test_require_tls)
{
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 ok\r\n", 0 },
	};

	H->o.tls = cctx;
	H->o.require_tls = _i == 0;
	H->cli.send[0] = &txn_simple;
	H->cli.nsend = 1;
	play(script, _i == 0 ? 2 : NELEM(script));
	if (_i == 0) {
		ck_assert_int_eq(H->cli.ready_status, -EPROTONOSUPPORT);
		ck_assert_int_eq(H->cli.ready_stage, SMTPC_STARTTLS);
		ck_assert_int_eq(H->cli.ready_reply.code, 0);
		ck_assert_str_eq(line_at(2), "QUIT");
		ck_assert_int_eq(H->cli.ntxn, 0);
	} else {
		/* Opportunistic: plaintext it is. */
		ck_assert_int_eq(H->cli.ready_status, 0);
		ck_assert(!H->cli.info.tls);
		ck_assert_int_eq(H->cli.txn[0].status, 0);
	}
}
END_TEST

/* The "server" answers the ClientHello with HTTP: -EPROTO at TLS. */
START_TEST(test_tls_handshake_fails)
{
	static const struct step script[] = {
		GREET,
		EHLO_TLS,
		{ "STARTTLS", "220 go\r\n", F_JUNK },
	};

	H->o.tls = cctx;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, -EPROTO);
	ck_assert_int_eq(H->cli.ready_stage, SMTPC_TLS);
	ck_assert_int_eq(H->cli.ready_reply.code, 0);
	ck_assert_str_eq(H->cli.ready_reply.text, "TLS handshake failed");
}
END_TEST

/* "\0kurier\0s3cret pass" */
#define PLAIN_B64 "AGt1cmllcgBzM2NyZXQgcGFzcw=="

/* AUTH PLAIN, after TLS only (the plaintext EHLO offers it too), never logged. */
START_TEST(test_auth_plain)
{
	static const struct step script[] = {
		GREET,
		EHLO_TLS,
		STARTTLS_OK,
		{ "EHLO " HELO, "250-" HOSTNAME "\r\n250-AUTH LOGIN PLAIN\r\n250 PIPELINING\r\n", 0 },
		{ "AUTH PLAIN " PLAIN_B64, "235 2.7.0 ok\r\n", 0 },
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 ok\r\n", 0 },
	};
	const char *log;

	log_set_level(LOG_DEBUG);
	H->o.tls = cctx;
	H->o.auth_user = "kurier";
	H->o.auth_pass = "s3cret pass";
	H->cli.send[0] = &txn_simple;
	H->cli.nsend = 1;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, 0);
	ck_assert_int_eq(H->cli.ready_stage, SMTPC_AUTH);
	ck_assert(H->cli.info.authenticated);
	ck_assert(H->srv.lines[4].tls);
	ck_assert_int_eq(H->cli.txn[0].status, 0);
	log = logged();
	ck_assert_ptr_nonnull(strstr(log, "AUTH PLAIN ****"));
	ck_assert_ptr_nonnull(strstr(log, "component=smtpc"));
	ck_assert_ptr_null(strstr(log, "s3cret"));
	ck_assert_ptr_null(strstr(log, PLAIN_B64));
}
END_TEST

/* Only LOGIN offered: user and password in answer to the 334s. */
START_TEST(test_auth_login)
{
	static const struct step script[] = {
		GREET,
		EHLO_TLS,
		STARTTLS_OK,
		{ "EHLO " HELO, "250-" HOSTNAME "\r\n250 AUTH=LOGIN\r\n", 0 },
		{ "AUTH LOGIN", "334 VXNlcm5hbWU6\r\n", 0 },
		{ "a3VyaWVy", "334 UGFzc3dvcmQ6\r\n", 0 },
		{ "czNjcmV0IHBhc3M=", "235 2.7.0 ok\r\n", 0 },
	};

	log_set_level(LOG_DEBUG);
	H->o.tls = cctx;
	H->o.auth_user = "kurier";
	H->o.auth_pass = "s3cret pass";
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, 0);
	ck_assert(H->cli.info.authenticated);
	ck_assert_ptr_null(strstr(logged(), "czNjcmV0IHBhc3M="));
}
END_TEST

/*
 * Credentials too long for an initial response within 512 bytes (RFC
 * 4954 4): "AUTH PLAIN" alone, the response after the 334.
 */
START_TEST(test_auth_plain_long)
{
	static char user[201], pass[256], msg[2 + sizeof user + sizeof pass];
	static char b64[2 * sizeof msg];
	const struct step script[] = {
		GREET,
		EHLO_TLS,
		STARTTLS_OK,
		{ "EHLO " HELO, "250-" HOSTNAME "\r\n250 AUTH PLAIN LOGIN\r\n", 0 },
		{ "AUTH PLAIN", "334 \r\n", 0 },
		{ b64, "235 2.7.0 ok\r\n", 0 },
	};
	size_t ul = sizeof user - 1, pl = sizeof pass - 1;

	memset(user, 'u', ul);
	memset(pass, 'p', pl);
	msg[0] = '\0';
	memcpy(msg + 1, user, ul);
	msg[1 + ul] = '\0';
	memcpy(msg + 2 + ul, pass, pl);
	ck_assert_int_gt(EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)msg,
	    (int)(ul + pl + 2)), 500);
	H->o.tls = cctx;
	H->o.auth_user = user;
	H->o.auth_pass = pass;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, 0);
	ck_assert(H->cli.info.authenticated);
}
END_TEST

START_TEST(test_auth_refused)
{
	static const struct step script[] = {
		GREET,
		EHLO_TLS,
		STARTTLS_OK,
		{ "EHLO " HELO, "250-" HOSTNAME "\r\n250 AUTH PLAIN\r\n", 0 },
		{ "AUTH PLAIN " PLAIN_B64, "535 5.7.8 Authentication credentials invalid\r\n", 0 },
	};

	H->o.tls = cctx;
	H->o.auth_user = "kurier";
	H->o.auth_pass = "s3cret pass";
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, -EACCES);
	ck_assert_int_eq(H->cli.ready_stage, SMTPC_AUTH);
	ck_assert_int_eq(H->cli.ready_reply.code, 535);
	ck_assert_str_eq(H->cli.ready_reply.text, "535 5.7.8 Authentication credentials invalid");
	ck_assert_str_eq(line_at(5), "QUIT");
}
END_TEST

/* No STARTTLS: AUTH is not sent in plaintext, the set-up fails at AUTH. */
START_TEST(test_auth_needs_tls)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "250-" HOSTNAME "\r\n250 AUTH PLAIN LOGIN\r\n", 0 },
	};

	H->o.tls = cctx;
	H->o.auth_user = "kurier";
	H->o.auth_pass = "s3cret pass";
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, -EPROTONOSUPPORT);
	ck_assert_int_eq(H->cli.ready_stage, SMTPC_AUTH);
	ck_assert_int_eq(H->cli.ready_reply.code, 0);
	ck_assert_uint_eq(H->srv.nlines, 3);
	ck_assert_str_eq(line_at(2), "QUIT");
}
END_TEST

/* After TLS, no mechanism we know: fail at AUTH. */
START_TEST(test_auth_no_mechanism)
{
	static const struct step script[] = {
		GREET,
		EHLO_TLS,
		STARTTLS_OK,
		{ "EHLO " HELO, "250-" HOSTNAME "\r\n250 AUTH CRAM-MD5\r\n", 0 },
	};

	H->o.tls = cctx;
	H->o.auth_user = "kurier";
	H->o.auth_pass = "pw";
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, -EPROTONOSUPPORT);
	ck_assert_int_eq(H->cli.ready_stage, SMTPC_AUTH);
	ck_assert_str_eq(line_at(4), "QUIT");
}
END_TEST

/* --- tests: message data ----------------------------------------------------------------- */

/* Dot-stuffing at line starts, across pieces, and the end of data. */
static const struct stuff_case {
	const char *pieces[4];
	const char *expect;
} stuff_cases[] = {
	{ { "a\r\n.\r\nb\r\n" }, "a\r\n..\r\nb\r\n.\r\n" },
	{ { ".x\r\n" }, "..x\r\n.\r\n" },
	{ { "a\r\n", ".b\r\n", "..c\r\n" }, "a\r\n..b\r\n...c\r\n.\r\n" },
	{ { "a", ".b\r\n" }, "a.b\r\n.\r\n" },
	{ { "a\r", "\n.b\r", "\n" }, "a\r\n..b\r\n.\r\n" },
	{ { "a\r\n", "", ".", "\r\n" }, "a\r\n..\r\n.\r\n" },
	{ { "no end" }, "no end\r\n.\r\n" },
	{ { "ends in cr\r" }, "ends in cr\r\r\n.\r\n" },
	{ { "bare\nlf.\n.x" }, "bare\nlf.\n..x\r\n.\r\n" },
	{ { "bare\rcr\r.x\r\n" }, "bare\rcr\r.x\r\n.\r\n" },
	{ { "" }, ".\r\n" },
	{ { NULL }, ".\r\n" },
	{ { "\r\n" }, "\r\n.\r\n" },
	{ { "\r\n", ".\r\n" }, "\r\n..\r\n.\r\n" },
};

START_TEST(test_dot_stuffing)
{
	const struct stuff_case *tc = &stuff_cases[_i];
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 ok\r\n", 0 },
	};
	struct iovec iov[4];
	struct smtpc_txn t = txn_simple;
	size_t n = 0;

	for (; n < 4 && tc->pieces[n] != NULL; n++) {
		iov[n].iov_base = (void *)tc->pieces[n];
		iov[n].iov_len = strlen(tc->pieces[n]);
	}
	t.pieces = iov;
	t.npieces = n;
	H->cli.send[0] = &t;
	H->cli.nsend = 1;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.txn[0].status, 0);
	assert_data(tc->expect, strlen(tc->expect));
}
END_TEST

/* A deterministic message of n bytes in pieces of varied sizes, lines with dots. */
static char *
big_message(size_t n)
{
	char *m = malloc(n);
	uint32_t x = 12345;

	ck_assert_ptr_nonnull(m);
	for (size_t i = 0; i < n;) {
		size_t len;

		x = x * 1103515245u + 12345u;
		len = 1 + (x >> 16) % 120;
		if (i + len + 2 > n)
			len = n - i >= 2 ? n - i - 2 : 0;
		for (size_t j = 0; j < len; j++) {
			x = x * 1103515245u + 12345u;
			m[i + j] = (x >> 24) % 5 == 0 ? '.' : (char)('a' + (x >> 16) % 26);
		}
		i += len;
		if (i + 2 <= n) {
			m[i++] = '\r';
			m[i++] = '\n';
		} else if (i < n) {
			m[i++] = 'z';
		}
	}
	/* Not a CRLF at the end: smtpc must add one. */
	m[n - 1] = 'z';
	return m;
}

/* Undo RFC 5321 4.5.2 stuffing of d (terminator included) into out. */
static void
unstuff(const char *d, size_t len, struct buf *out)
{
	bool bol = true;

	ck_assert_uint_ge(len, 3);
	ck_assert_int_eq(memcmp(d + len - 3, ".\r\n", 3), 0);
	len -= 3;
	for (size_t i = 0; i < len; i++) {
		if (bol && d[i] == '.') {
			bol = false;
			continue;
		}
		buf_appendc(out, d[i]);
		bol = d[i] == '\n';
	}
}

/*
 * Several MB in pieces, over TLS: written in chunks with backpressure;
 * what arrives unstuffs to the message exactly.
 */
START_TEST(test_big_message)
{
	static const struct step script[] = {
		GREET,
		EHLO_TLS,
		STARTTLS_OK,
		{ "EHLO " HELO, "250-" HOSTNAME "\r\n250 PIPELINING\r\n", 0 },
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 ok\r\n", 0 },
	};
	const size_t n = 3 * 1024 * 1024 + 17;
	char *m = big_message(n);
	struct iovec iov[7];
	struct smtpc_txn t = txn_simple;
	struct buf got = BUF_INIT;
	size_t cuts[] = { 0, 1, 1000, 65536, 65537, 1024 * 1024, 2 * 1024 * 1024 + 3, n };

	for (size_t i = 0; i < 7; i++) {
		iov[i].iov_base = m + cuts[i];
		iov[i].iov_len = cuts[i + 1] - cuts[i];
	}
	t.pieces = iov;
	t.npieces = 7;
	H->o.tls = cctx;
	H->cli.send[0] = &t;
	H->cli.nsend = 1;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.txn[0].status, 0);
	unstuff(buf_rptr(&H->srv.data), buf_unread(&H->srv.data), &got);
	/* The message ends in 'z', not CRLF: smtpc added one. */
	ck_assert_uint_eq(buf_unread(&got), n + 2);
	ck_assert_int_eq(memcmp(buf_rptr(&got), m, n), 0);
	ck_assert_int_eq(memcmp(buf_rptr(&got) + n, "\r\n", 2), 0);
	buf_free(&got);
	free(m);
}
END_TEST

/* --- tests: refusals before MAIL ---------------------------------------------------- */

/*
 * SIZE announced below the message: -EMSGSIZE before MAIL with a 552
 * 5.3.4 made up; nothing sent, the connection stays usable and the next
 * transaction needs no RSET.
 */
START_TEST(test_size_too_big)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "250-" HOSTNAME "\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", 0 },
		{ "MAIL FROM:<alice@example.com> SIZE=22", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 ok\r\n", 0 },
	};
	struct smtpc_txn big = txn_simple;
	struct txn_rec *r = &H->cli.txn[0];

	big.size = 1001;
	H->cli.send[0] = &big;
	H->cli.send[1] = &txn_simple;
	H->cli.nsend = 2;
	play(script, NELEM(script));
	ck_assert_int_eq(r->status, -EMSGSIZE);
	ck_assert_int_eq(r->stage, SMTPC_MAIL);
	ck_assert_int_eq(r->mail.code, 552);
	ck_assert_int_eq(strncmp(r->mail.text, "552 5.3.4 ", 10), 0);
	ck_assert(!r->lost);
	ck_assert(r->usable);
	ck_assert_int_eq(H->cli.txn[1].status, 0);
	ck_assert_uint_eq(H->cli.info.transactions, 1);
}
END_TEST

/* 8BITMIME and SMTPUTF8 lacking: refused before MAIL, 4.6.3 and 5.6.7. */
START_TEST(test_ext_lacking)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "250-" HOSTNAME "\r\n250 PIPELINING\r\n", 0 },
	};
	struct smtpc_txn t8 = txn_simple, tu = txn_simple;

	t8.body8bit = true;
	tu.smtputf8 = true;
	H->cli.send[0] = &t8;
	H->cli.send[1] = &tu;
	H->cli.nsend = 2;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ntxn, 2);
	ck_assert_int_eq(H->cli.txn[0].status, -EPROTONOSUPPORT);
	ck_assert_int_eq(H->cli.txn[0].stage, SMTPC_MAIL);
	ck_assert_int_eq(H->cli.txn[0].mail.code, 450);
	ck_assert_int_eq(strncmp(H->cli.txn[0].mail.text, "450 4.6.3 ", 10), 0);
	ck_assert_int_eq(H->cli.txn[1].status, -EPROTONOSUPPORT);
	ck_assert_int_eq(H->cli.txn[1].mail.code, 553);
	ck_assert_int_eq(strncmp(H->cli.txn[1].mail.text, "553 5.6.7 ", 10), 0);
	ck_assert_uint_eq(H->srv.nlines, 3);
	ck_assert_uint_eq(H->cli.info.transactions, 0);
}
END_TEST

/* Bad transactions are refused by smtpc_send itself, with no callback. */
static void
bad_txn_hook(void)
{
	struct smtpc *c = H->cli.c;
	struct smtpc_rcpt r_crlf[] = { { "bob@example.net>\r\nRSET", NULL, 0 } };
	struct smtpc_rcpt r_orcpt[] = { { "bob@example.net", "bob@example.net", 0 } };
	struct smtpc_rcpt many[SMTPC_RCPT_MAX + 1];
	struct smtpc_txn t = txn_simple;

	t.mail_from = "a@b\r\nDATA";
	ck_assert_int_eq(smtpc_send(c, &t, on_txn, &H->cli), -EINVAL);
	t = txn_simple;
	t.rcpt = r_crlf;
	ck_assert_int_eq(smtpc_send(c, &t, on_txn, &H->cli), -EINVAL);
	t.rcpt = r_orcpt;
	ck_assert_int_eq(smtpc_send(c, &t, on_txn, &H->cli), -EINVAL);
	t = txn_simple;
	t.nrcpt = 0;
	ck_assert_int_eq(smtpc_send(c, &t, on_txn, &H->cli), -EINVAL);
	t = txn_simple;
	t.envid = "a\tb";
	ck_assert_int_eq(smtpc_send(c, &t, on_txn, &H->cli), -EINVAL);
	for (size_t i = 0; i < NELEM(many); i++)
		many[i] = rcpt_one[0];
	t = txn_simple;
	t.rcpt = many;
	t.nrcpt = NELEM(many);
	ck_assert_int_eq(smtpc_send(c, &t, on_txn, &H->cli), -E2BIG);
	/* One that is fine, then a second while it runs. */
	H->cli.send[0] = &txn_simple;
	H->cli.nsend = 1;
	ck_assert_int_eq(smtpc_send(c, &txn_simple, on_txn, &H->cli), 0);
	ck_assert(!smtpc_usable(c));
	ck_assert_int_eq(smtpc_send(c, &txn_simple, on_txn, &H->cli), -EBUSY);
}

START_TEST(test_send_invalid)
{
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", "250 ok\r\n", 0 },
	};

	H->cli.ready_hook = bad_txn_hook;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ntxn, 1);
	ck_assert_int_eq(H->cli.txn[0].status, 0);
}
END_TEST

/* --- tests: timeouts ------------------------------------------------------------------ */

#define SHORT 150

/* A listening socket whose backlog is full: connects hang. */
static int
full_backlog(struct sockaddr_in *sin, int fds[4])
{
	socklen_t len = sizeof *sin;
	int s = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(uv_ip4_addr("127.0.0.1", 0, sin), 0);
	ck_assert_int_eq(bind(s, (struct sockaddr *)sin, sizeof *sin), 0);
	ck_assert_int_eq(listen(s, 0), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)sin, &len), 0);
	for (int i = 0; i < 4; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		ck_assert_int_ge(fds[i], 0);
		(void)connect(fds[i], (struct sockaddr *)sin, sizeof *sin);
	}
	/* Let the handshakes that can complete do so. */
	usleep(50 * 1000);
	return s;
}

START_TEST(test_timeout_connect)
{
	int fds[4], s;

	s = full_backlog(&H->addr, fds);
	H->o.addr = (const struct sockaddr *)&H->addr;
	H->o.connect_ms = SHORT;
	open_client();
	run();
	ck_assert_int_eq(H->cli.ready_status, -ETIMEDOUT);
	ck_assert_int_eq(H->cli.ready_stage, SMTPC_CONNECT);
	ck_assert_int_eq(H->cli.ready_reply.code, 0);
	ck_assert_str_eq(H->cli.ready_reply.text, "timed out in connect after 150ms");
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	close(s);
}
END_TEST

static const struct timeout_case {
	struct step script[8];
	int which;             /* 0 greeting, 1 command, 2 tls (command) */
	enum smtpc_stage stage;
	bool tls;
} setup_timeouts[] = {
	{ { { "<CONNECT>", NULL, 0 } }, 0, SMTPC_GREETING, false },
	{ { GREET, { "EHLO " HELO, NULL, 0 } }, 1, SMTPC_EHLO, false },
	{ { GREET, EHLO_TLS, { "STARTTLS", NULL, 0 } }, 1, SMTPC_STARTTLS, true },
	{ { GREET, EHLO_TLS, { "STARTTLS", "220 go\r\n", F_DEAF } }, 1, SMTPC_TLS, true },
};

/* The set-up's timeouts: greeting, EHLO, STARTTLS, the handshake. */
START_TEST(test_timeout_setup)
{
	const struct timeout_case *tc = &setup_timeouts[_i];
	size_t n = 0;

	while (n < 8 && tc->script[n].expect != NULL)
		n++;
	if (tc->which == 0)
		H->o.greeting_ms = SHORT;
	else
		H->o.command_ms = SHORT;
	if (tc->tls)
		H->o.tls = cctx;
	play(tc->script, n);
	ck_assert_int_eq(H->cli.ready_status, -ETIMEDOUT);
	ck_assert_int_eq(H->cli.ready_stage, tc->stage);
	ck_assert_int_eq(H->cli.ready_reply.code, 0);
	ck_assert_ptr_nonnull(strstr(H->cli.ready_reply.text, "timed out in"));
	ck_assert_int_eq(find_line("QUIT"), -1);
}
END_TEST

/* A transaction's timeouts: RCPT (command), DATA's 354 (data_init), the final reply (data_end). */
static const struct txn_timeout_case {
	struct step script[8];
	int which;             /* 0 command, 1 data_init, 2 data_end */
	enum smtpc_stage stage;
	int mail_code, rcpt_code;
} txn_timeouts[] = {
	{ { GREET, EHLO_PLAIN, { "MAIL FROM:<alice@example.com>", "250 ok\r\n", 0 },
	    { "RCPT TO:<bob@example.net>", NULL, 0 } }, 0, SMTPC_RCPT, 250, 0 },
	{ { GREET, EHLO_PLAIN, { "MAIL FROM:<alice@example.com>", NULL, 0 } }, 0, SMTPC_MAIL, 0, 0 },
	{ { GREET, EHLO_PLAIN, { "MAIL FROM:<alice@example.com>", "250 ok\r\n", 0 },
	    { "RCPT TO:<bob@example.net>", "250 ok\r\n", 0 }, { "DATA", NULL, 0 } },
	  1, SMTPC_DATA, 250, 250 },
	{ { GREET, EHLO_PIPE, { "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
	    { "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD }, { "DATA", "354 go\r\n", F_DATA },
	    { "<DATA>", NULL, 0 } }, 2, SMTPC_DOT, 250, 250 },
};

START_TEST(test_timeout_txn)
{
	const struct txn_timeout_case *tc = &txn_timeouts[_i];
	struct txn_rec *r = &H->cli.txn[0];
	size_t n = 0;

	while (n < 8 && tc->script[n].expect != NULL)
		n++;
	if (tc->which == 0)
		H->o.command_ms = SHORT;
	else if (tc->which == 1)
		H->o.data_init_ms = SHORT;
	else
		H->o.data_end_ms = SHORT;
	H->cli.send[0] = &txn_simple;
	H->cli.nsend = 1;
	play(tc->script, n);
	ck_assert_int_eq(H->cli.ntxn, 1);
	ck_assert_int_eq(r->status, -ETIMEDOUT);
	ck_assert_int_eq(r->stage, tc->stage);
	ck_assert(r->lost);
	ck_assert(!r->usable);
	ck_assert_int_eq(r->mail.code, tc->mail_code);
	ck_assert_int_eq(r->rcpt[0].code, tc->rcpt_code);
	ck_assert_ptr_nonnull(strstr(r->error, "timed out in"));
	ck_assert_uint_ge(r->elapsed_ms, SHORT);
	ck_assert_int_eq(find_line("QUIT"), -1);
}
END_TEST

/* A message much bigger than the socket buffers. */
#define HUGE_PIECES 64
static char huge_piece[512 * 1024];

static void
huge_txn(struct smtpc_txn *t, struct iovec *iov)
{
	memset(huge_piece, 'x', sizeof huge_piece);
	/* Lines of 98 bytes and CRLF; each piece holds whole lines. */
	for (size_t i = 0; i + 100 <= sizeof huge_piece; i += 100)
		memcpy(huge_piece + i + 98, "\r\n", 2);
	for (size_t i = 0; i < HUGE_PIECES; i++) {
		iov[i].iov_base = huge_piece;
		iov[i].iov_len = sizeof huge_piece / 100 * 100;
	}
	*t = txn_simple;
	t->pieces = iov;
	t->npieces = HUGE_PIECES;
}

/* The server stops reading after 354: no progress for data_block_ms. */
START_TEST(test_timeout_data_block)
{
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_STALL },
	};
	struct iovec iov[HUGE_PIECES];
	struct smtpc_txn t;

	huge_txn(&t, iov);
	H->o.data_block_ms = 300;
	H->cli.send[0] = &t;
	H->cli.nsend = 1;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.txn[0].status, -ETIMEDOUT);
	ck_assert_int_eq(H->cli.txn[0].stage, SMTPC_DATA);
	ck_assert_int_eq(H->cli.txn[0].data.code, 354);
	ck_assert(H->cli.txn[0].lost);
}
END_TEST

/* A reply while the data is still going out: DATA failed with it, aborted. */
START_TEST(test_early_data_reply)
{
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA | F_DATA_EARLY },
		{ "<DATA>", "552 5.3.4 too big for us\r\n", 0 },
	};
	struct iovec iov[HUGE_PIECES];
	struct smtpc_txn t;

	huge_txn(&t, iov);
	H->cli.send[0] = &t;
	H->cli.nsend = 1;
	listen_script(script, NELEM(script));
	open_client();
	run();
	ck_assert_int_eq(H->cli.txn[0].status, -EREMOTEIO);
	ck_assert_int_eq(H->cli.txn[0].stage, SMTPC_DATA);
	ck_assert_int_eq(H->cli.txn[0].data.code, 552);
	ck_assert(H->cli.txn[0].lost);
}
END_TEST

/* QUIT unanswered: closed after min(command_ms, SMTPC_QUIT_WAIT_MS). */
START_TEST(test_quit_bounded)
{
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
		{ "QUIT", NULL, 0 },
	};
	uint64_t start;

	H->o.command_ms = 200;
	listen_script(script, NELEM(script));
	uv_update_time(&H->loop);
	start = uv_now(&H->loop);
	open_client();
	run();
	ck_assert_int_eq(H->cli.ready_status, 0);
	/*
	 * Never before command_ms; and the wait was command_ms's, not the
	 * SMTPC_QUIT_WAIT_MS cap (the only bound above: no machine's speed
	 * is assumed short of a loop stalled for seconds).
	 */
	ck_assert_uint_ge(H->cli.closed_ms - start, 200);
	ck_assert_uint_lt(H->cli.closed_ms - start, SMTPC_QUIT_WAIT_MS);
}
END_TEST

/* --- tests: lost connections and closing ---------------------------------------------- */

/* The server drops the connection mid-DATA, or after the dot without a reply. */
START_TEST(test_lost_in_data)
{
	static const struct step mid[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA | F_DATA_ABORT },
	};
	static const struct step after[] = {
		GREET,
		EHLO_PIPE,
		{ "MAIL FROM:<alice@example.com>", "250 ok\r\n", F_HOLD },
		{ "RCPT TO:<bob@example.net>", "250 ok\r\n", F_HOLD },
		{ "DATA", "354 go\r\n", F_DATA },
		{ "<DATA>", NULL, F_CLOSE },
	};
	struct iovec iov[HUGE_PIECES];
	struct smtpc_txn t;
	struct txn_rec *r = &H->cli.txn[0];

	if (_i == 0) {
		huge_txn(&t, iov);
		H->cli.send[0] = &t;
	} else {
		H->cli.send[0] = &txn_simple;
	}
	H->cli.nsend = 1;
	if (_i == 0)
		play(mid, NELEM(mid));
	else
		play(after, NELEM(after));
	ck_assert_int_eq(r->status, -ECONNRESET);
	ck_assert_int_eq(r->stage, _i == 0 ? SMTPC_DATA : SMTPC_DOT);
	ck_assert(r->lost);
	ck_assert(!r->usable);
	ck_assert_int_eq(r->data.code, 354);
	ck_assert_int_eq(r->rcpt[0].code, 250);
}
END_TEST

/*
 * The server ends an idle connection (with a 421 or without a word):
 * the closed callback runs once, without any call from the owner.
 */
START_TEST(test_idle_closed_by_peer)
{
	static const struct step with421[] = {
		GREET,
		{ "EHLO " HELO, "250-" HOSTNAME "\r\n250 PIPELINING\r\n421 4.4.2 idle\r\n", F_CLOSE },
	};
	static const struct step silent[] = {
		GREET,
		{ "EHLO " HELO, "250 " HOSTNAME "\r\n", F_CLOSE },
	};

	H->cli.stay = true;
	if (_i == 0)
		play(with421, NELEM(with421));
	else
		play(silent, NELEM(silent));
	ck_assert_int_eq(H->cli.ready_status, 0);
	ck_assert_int_eq(H->cli.ntxn, 0);
	ck_assert_int_eq(find_line("QUIT"), -1);
}
END_TEST

/* Abort from the ready callback: nothing more is sent, closed once. */
START_TEST(test_abort_in_ready)
{
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
	};

	H->cli.abort_in_ready = true;
	play(script, NELEM(script));
	ck_assert_int_eq(H->cli.ready_status, 0);
	ck_assert_uint_eq(H->srv.nlines, 2);
}
END_TEST

/* Abort before the ready: its callback never comes. */
START_TEST(test_abort_early)
{
	static const struct step script[] = {
		GREET,
	};

	listen_script(script, NELEM(script));
	open_client();
	smtpc_abort(H->cli.c);
	smtpc_abort(H->cli.c);
	run();
	ck_assert_int_eq(H->cli.nready, 0);
}
END_TEST

/* Quit in the middle of a transaction: aborts, the txn callback never comes. */
static void
quit_mid_txn_hook(void)
{
	H->cli.send[0] = &txn_simple;
	H->cli.nsend = 1;
	ck_assert_int_eq(smtpc_send(H->cli.c, &txn_simple, on_txn, &H->cli), 0);
	smtpc_quit(H->cli.c);
}

START_TEST(test_quit_mid_txn)
{
	static const struct step script[] = {
		GREET,
		EHLO_PIPE,
	};

	H->cli.ready_hook = quit_mid_txn_hook;
	listen_script(script, NELEM(script));
	open_client();
	run();
	ck_assert_int_eq(H->cli.ntxn, 0);
	ck_assert_int_eq(find_line("QUIT"), -1);
}
END_TEST

START_TEST(test_stage_names)
{
	ck_assert_str_eq(smtpc_stage_name(SMTPC_CONNECT), "connect");
	ck_assert_str_eq(smtpc_stage_name(SMTPC_DOT), "dot");
	ck_assert_str_eq(smtpc_stage_name(SMTPC_QUIT), "quit");
	ck_assert_str_eq(smtpc_stage_name((enum smtpc_stage)99), "?");
	uv_close((uv_handle_t *)&H->guard, NULL);
	uv_close((uv_handle_t *)&H->slow_timer, NULL);
	uv_run(&H->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&H->loop), 0);
}
END_TEST

Suite *
smtpc_suite(void)
{
	Suite *s = suite_create("smtpc");
	/* One test case: the certificate and contexts are made once. */
	TCase *tc = tcase_create("smtpc");

	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	/* Dialogue */
	tcase_add_test(tc, test_pipelined);
	tcase_add_test(tc, test_lockstep);
	tcase_add_test(tc, test_split_replies);
	tcase_add_test(tc, test_rset_between);
	tcase_add_test(tc, test_no_rcpt_lockstep);
	tcase_add_test(tc, test_no_rcpt_pipelined);
	tcase_add_test(tc, test_no_rcpt_354);
	tcase_add_test(tc, test_mail_refused);
	tcase_add_test(tc, test_mail_refused_lockstep);
	tcase_add_test(tc, test_data_replies);
	tcase_add_test(tc, test_rset_refused);
	tcase_add_test(tc, test_421_rcpt);
	tcase_add_test(tc, test_stage_names);
	/* Set-up */
	tcase_add_test(tc, test_greeting_554);
	tcase_add_test(tc, test_greeting_421);
	tcase_add_test(tc, test_helo_fallback);
	tcase_add_test(tc, test_ehlo_4xx);
	tcase_add_test(tc, test_helo_refused);
	tcase_add_loop_test(tc, test_malformed, 0, (int)NELEM(malformed_cases));
	tcase_add_loop_test(tc, test_malformed_long, 0, 2);
	tcase_add_test(tc, test_refused_connect);
	tcase_add_test(tc, test_bind_addr);
	tcase_add_test(tc, test_open_invalid);
	/* STARTTLS and AUTH */
	tcase_add_loop_test(tc, test_starttls, 0, 2);
	tcase_add_test(tc, test_starttls_wrong_name);
	tcase_add_test(tc, test_starttls_injection);
	tcase_add_loop_test(tc, test_starttls_refused, 0, 2);
	tcase_add_loop_test(tc, test_require_tls, 0, 2);
	tcase_add_test(tc, test_tls_handshake_fails);
	tcase_add_test(tc, test_auth_plain);
	tcase_add_test(tc, test_auth_login);
	tcase_add_test(tc, test_auth_plain_long);
	tcase_add_test(tc, test_auth_refused);
	tcase_add_test(tc, test_auth_needs_tls);
	tcase_add_test(tc, test_auth_no_mechanism);
	/* Message data and checks before MAIL */
	tcase_add_loop_test(tc, test_dot_stuffing, 0, (int)NELEM(stuff_cases));
	tcase_add_test(tc, test_big_message);
	tcase_add_test(tc, test_size_too_big);
	tcase_add_test(tc, test_ext_lacking);
	tcase_add_test(tc, test_send_invalid);
	/* Timeouts */
	tcase_add_test(tc, test_timeout_connect);
	tcase_add_loop_test(tc, test_timeout_setup, 0, (int)NELEM(setup_timeouts));
	tcase_add_loop_test(tc, test_timeout_txn, 0, (int)NELEM(txn_timeouts));
	tcase_add_test(tc, test_timeout_data_block);
	tcase_add_test(tc, test_early_data_reply);
	tcase_add_test(tc, test_quit_bounded);
	/* Lost connections and closing */
	tcase_add_loop_test(tc, test_lost_in_data, 0, 2);
	tcase_add_loop_test(tc, test_idle_closed_by_peer, 0, 2);
	tcase_add_test(tc, test_abort_in_ready);
	tcase_add_test(tc, test_abort_early);
	tcase_add_test(tc, test_quit_mid_txn);
	suite_add_tcase(s, tc);
	return s;
}
