/*
 * test_session - whole SMTP sessions against relay's session core: a real
 * server (smtpd_open on 127.0.0.1, port chosen by the kernel) and a
 * core/conn client in one loop, with a fake sink and a fake user
 * directory (smtpd.h) and no policy module, so no Redis.
 *
 * Each test is a script of steps: bytes the client writes at once
 * (several commands when pipelining), then the reply lines it must get
 * before the next step, each given as a prefix of the line received, in
 * order and no more.  A step may start TLS once its replies are in, or
 * expect the server to close the connection.  The run ends when the
 * client's connection is closed and the server has stopped; every handle
 * is closed and uv_loop_close() must return 0.  A 30-second timer only
 * guards against a hang; nothing asserts how long anything took.
 * SESSION_LOG=1 in the environment shows the server's log (debug level).
 *
 * The inbound tcase drives the inbound MX's listener the same way, with
 * a fake inbound sink whose recipient verdicts follow the address (see
 * fake_rcpt) and a dnsmasq (tests/dnsmasq.h) serving the SPF records of
 * the .test domains it checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <opendkim/dkim.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/rfc5322.h"
#include "core/tlsctx.h"
#include "relay/smtpd.h"
#include "tests/dnsmasq.h"
#include "tests/suites.h"
#include "tests/tmpdir.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define HOSTNAME "mail.test.example"
#define GUARD_MS 30000

#define STEP_TLS 1u           /* start TLS once the replies are in */
#define STEP_CLOSED 2u        /* the client does not close: the server (or a fake) does */
#define STEP_STOP 4u          /* smtpd_stop() once the replies are in */

struct step {
	const char *send;     /* written in one piece; NULL: nothing */
	size_t send_len;      /* 0: strlen(send) */
	const char *expect;   /* reply lines, '\n'-separated, each a prefix */
	unsigned flags;
};

enum sink_mode { SINK_OK, SINK_FAIL_NOW, SINK_FAIL_LATER };

/* A fake's answer, given on a later loop turn as the real ones are. */
struct later {
	uv_timer_t t;
	void (*fn)(struct later *);
	smtpd_stored_cb *stored;
	smtpd_rcpt_cb *rcpt;
	auth_verify_cb *verified;
	void *arg;
	int status;
	char id[64];
	struct auth_user user;
	auth_req_id req;
};

struct harness {
	uv_loop_t loop;
	uv_timer_t guard;
	bool guard_fired;
	char dir[64];
	struct config cfg;
	SSL_CTX *cctx;
	struct smtpd *srv;
	bool stop_called, stopped;
	int devnull;

	struct conn *cli;
	struct buf in;              /* plaintext received */
	size_t seen;                /* bytes of in matched by earlier steps */
	const struct step *steps;
	size_t nsteps, step;
	bool tls_pending;
	int nclose, close_status;

	enum sink_mode sink_mode;
	unsigned nstored;
	struct buf head, body;      /* the last message stored */
	char sender[256], id[64];
	size_t nrcpt;
	unsigned nverify, nuser_get, ncancel, pending;
	auth_req_id next_req, cancelled;
	bool implicit;              /* connect to the submissions (implicit TLS) listener */
	bool hold_verify;           /* answer a password check only once cancelled */
	struct later *held;

	bool inbound;               /* connect to the inbound MX's listener */
	struct dnsmasq dns;
	char asked[8][128];         /* the first addresses the inbound sink was asked about */
	unsigned nasked;
};

static struct harness *H;

static void send_step(void);
static void stop(void);

/* --- fakes --------------------------------------------------------------------- */

static void
on_later_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
on_later(uv_timer_t *t)
{
	struct later *l = t->data;

	H->pending--;
	l->fn(l);
	uv_close((uv_handle_t *)&l->t, on_later_closed);
}

static struct later *
later(void (*fn)(struct later *), bool start)
{
	struct later *l = calloc(1, sizeof *l);

	ck_assert_ptr_nonnull(l);
	l->fn = fn;
	uv_timer_init(&H->loop, &l->t);
	l->t.data = l;
	if (start)
		uv_timer_start(&l->t, on_later, 0, 0);
	H->pending++;
	return l;
}

static void
stored_later(struct later *l)
{
	l->stored(l->arg, l->status, l->id);
}

static int
fake_store(void *arg, struct envelope *env, const struct smtpd_message *m,
    smtpd_stored_cb *done, void *done_arg)
{
	struct later *l;

	ck_assert_ptr_eq(arg, H);
	if (H->sink_mode == SINK_FAIL_NOW)
		return -EIO;
	H->nstored++;
	buf_reset(&H->head);
	buf_reset(&H->body);
	buf_append(&H->head, m->head, m->head_len);
	buf_append(&H->body, m->body, m->body_len);
	snprintf(H->sender, sizeof H->sender, "%s", env->sender);
	snprintf(H->id, sizeof H->id, "%s", env->id);
	H->nrcpt = env->nrcpt;
	l = later(stored_later, true);
	l->stored = done;
	l->arg = done_arg;
	l->status = H->sink_mode == SINK_OK ? 0 : -EIO;
	snprintf(l->id, sizeof l->id, "%s", env->id);
	return 0;
}

static const struct smtpd_sink_ops fake_sink = { .store = fake_store };

static void
rcpt_later(struct later *l)
{
	l->rcpt(l->arg, (enum smtpd_rcpt_verdict)l->status);
}

/*
 * fake_rcpt - the inbound sink's verdicts: addresses of bounces.test
 * are OK but unknown* (UNKNOWN), temp* (TEMP) and down* (an error at
 * once); every other domain is RELAY.
 */
static int
fake_rcpt(void *arg, const char *addr, smtpd_rcpt_cb *done, void *done_arg)
{
	const char *at = strrchr(addr, '@');
	enum smtpd_rcpt_verdict v = SMTPD_RCPT_OK;
	struct later *l;

	ck_assert_ptr_eq(arg, H);
	if (H->nasked < NELEM(H->asked))
		snprintf(H->asked[H->nasked], sizeof H->asked[0], "%s", addr);
	H->nasked++;
	if (at == NULL || strcmp(at, "@bounces.test") != 0)
		v = SMTPD_RCPT_RELAY;
	else if (strncmp(addr, "unknown", 7) == 0)
		v = SMTPD_RCPT_UNKNOWN;
	else if (strncmp(addr, "temp", 4) == 0)
		v = SMTPD_RCPT_TEMP;
	else if (strncmp(addr, "down", 4) == 0)
		return -ECONNREFUSED;
	l = later(rcpt_later, true);
	l->rcpt = done;
	l->arg = done_arg;
	l->status = (int)v;
	return 0;
}

static const struct smtpd_sink_ops fake_inbound = { .store = fake_store, .rcpt = fake_rcpt };

static void
verified_later(struct later *l)
{
	if (l->req != 0 && l->req == H->cancelled)
		return;
	l->verified(l->arg, l->status, l->status == 0 ? &l->user : NULL);
}

static void
shop_user(struct auth_user *u)
{
	memset(u, 0, sizeof *u);
	snprintf(u->name, sizeof u->name, "shop");
	snprintf(u->domains, sizeof u->domains, "shop.example");
	u->enabled = true;
}

static int
fake_verify(void *arg, const char *user, const char *password, size_t pwlen,
    auth_verify_cb *cb, void *cb_arg, auth_req_id *id)
{
	struct later *l = later(verified_later, !H->hold_verify);

	ck_assert_ptr_eq(arg, H);
	H->nverify++;
	if (H->hold_verify) {
		/* The client leaves while its password is being checked. */
		H->held = l;
		if (H->cli != NULL)
			conn_close(H->cli);
	}
	l->verified = cb;
	l->arg = cb_arg;
	l->req = ++H->next_req;
	l->status = strcmp(user, "shop") == 0 && pwlen == 6 &&
	    memcmp(password, "secret", 6) == 0 ? 0 : -EACCES;
	shop_user(&l->user);
	if (id != NULL)
		*id = l->req;
	return 0;
}

static void
fake_cancel(void *arg, auth_req_id id)
{
	(void)arg;
	H->ncancel++;
	H->cancelled = id;
	/* A held check ends now; its answer is dropped as cancelled. */
	if (H->held != NULL && H->held->req == id) {
		uv_timer_start(&H->held->t, on_later, 0, 0);
		H->held = NULL;
	}
}

static int
fake_user_get(void *arg, const char *name, auth_verify_cb *cb, void *cb_arg)
{
	struct later *l = later(verified_later, true);

	(void)arg;
	H->nuser_get++;
	l->verified = cb;
	l->arg = cb_arg;
	l->status = strcmp(name, "shop") == 0 ? 0 : -ENOENT;
	shop_user(&l->user);
	return 0;
}

static const struct smtpd_users_ops fake_users = {
	.verify = fake_verify,
	.cancel = fake_cancel,
	.user_get = fake_user_get,
};

/* --- the client ------------------------------------------------------------------ */

static bool
final_line(const char *p, size_t n)
{
	return n == 3 || (n >= 4 && p[3] == ' ');
}

static size_t
count_final(const char *text)
{
	size_t n = 0;

	for (const char *p = text; *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		n += final_line(p, len);
		p += len + (nl ? 1 : 0);
	}
	return n;
}

/*
 * check_step - whether the current step's replies are all in; if so,
 * they are compared with what it expects and consumed.
 */
static bool
check_step(void)
{
	const struct step *st = &H->steps[H->step];
	size_t want = count_final(st->expect), got = 0, pos = H->seen;
	const char *exp = st->expect;

	/* Enough final lines received?  (Nothing may have come yet: in.data NULL.) */
	if (want > 0 && H->in.len == H->seen)
		return false;
	while (got < want) {
		const char *p = H->in.data + pos;
		const char *crlf = memmem(p, H->in.len - pos, "\r\n", 2);

		if (crlf == NULL)
			return false;
		got += final_line(p, (size_t)(crlf - p));
		pos += (size_t)(crlf - p) + 2;
	}
	/* Line by line, each expected line a prefix of the line received. */
	pos = H->seen;
	while (*exp != '\0') {
		const char *nl = strchr(exp, '\n');
		size_t elen = nl ? (size_t)(nl - exp) : strlen(exp);
		const char *p = H->in.data + pos;
		const char *crlf = memmem(p, H->in.len - pos, "\r\n", 2);

		ck_assert_msg(crlf != NULL, "step %zu: missing reply \"%.*s\"", H->step, (int)elen, exp);
		ck_assert_msg((size_t)(crlf - p) >= elen && memcmp(p, exp, elen) == 0,
		    "step %zu: got \"%.*s\", want \"%.*s...\"", H->step, (int)(crlf - p), p,
		    (int)elen, exp);
		pos += (size_t)(crlf - p) + 2;
		exp += elen + (nl ? 1 : 0);
	}
	H->seen = pos;
	return true;
}

static void
advance(void)
{
	while (H->step < H->nsteps && !H->tls_pending && check_step()) {
		unsigned flags = H->steps[H->step].flags;

		H->step++;
		if (flags & STEP_TLS) {
			H->tls_pending = true;
			ck_assert_int_eq(conn_start_tls(H->cli, H->cctx, false, NULL, false), 0);
			return;
		}
		if (flags & STEP_STOP)
			stop();
		if (flags & STEP_CLOSED) {
			ck_assert_uint_eq(H->step, H->nsteps);
			return;   /* the server, or a fake, closes */
		}
		if (H->step == H->nsteps) {
			conn_close(H->cli);
			return;
		}
		send_step();
	}
}

static void
send_step(void)
{
	const struct step *st = &H->steps[H->step];

	if (st->send != NULL)
		ck_assert_int_eq(conn_write(H->cli, st->send,
		    st->send_len ? st->send_len : strlen(st->send)), 0);
}

static void
on_stopped(void *arg)
{
	(void)arg;
	H->stopped = true;
	H->srv = NULL;
	uv_close((uv_handle_t *)&H->guard, NULL);
}

static void
stop(void)
{
	if (!H->stop_called) {
		H->stop_called = true;
		smtpd_stop(H->srv, 5000, on_stopped, NULL);
	}
}

static void
c_connect(struct conn *c, int status)
{
	(void)c;
	ck_assert_int_eq(status, 0);
	if (!H->tls_pending)
		send_step();
}

static void
c_read(struct conn *c, const char *p, size_t n)
{
	(void)c;
	buf_append(&H->in, p, n);
	advance();
}

static void
c_tls(struct conn *c, int status)
{
	(void)c;
	ck_assert_int_eq(status, 0);
	H->tls_pending = false;
	send_step();
	advance();
}

static void
c_close(struct conn *c, int status)
{
	(void)c;
	H->nclose++;
	H->close_status = status;
	H->cli = NULL;
	stop();
}

static const struct conn_ops client_ops = {
	.on_connect = c_connect,
	.on_read = c_read,
	.on_tls = c_tls,
	.on_close = c_close,
};

static void
on_guard(uv_timer_t *t)
{
	(void)t;
	H->guard_fired = true;
	if (H->cli != NULL)
		conn_abort(H->cli);
}

/* --- the harness ------------------------------------------------------------------ */

static void
setup(void)
{
	char err[CONFIG_ERR_MAX] = "";

	signal(SIGPIPE, SIG_IGN);
	H = calloc(1, sizeof *H);
	ck_assert_ptr_nonnull(H);
	H->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(H->devnull, 0);
	log_set_fd(getenv("SESSION_LOG") ? STDERR_FILENO : H->devnull);
	if (getenv("SESSION_LOG"))
		log_set_level(LOG_DEBUG);
	ck_assert_int_eq(uv_loop_init(&H->loop), 0);
	tmpdir_make(H->dir, sizeof H->dir, "session");
	config_defaults(&H->cfg);
	snprintf(H->cfg.server.hostname, sizeof H->cfg.server.hostname, "%s", HOSTNAME);
	snprintf(H->cfg.server.data_dir, sizeof H->cfg.server.data_dir, "%s", H->dir);
	/* Port 0, the kernel's choice: config_parse_listen() refuses it. */
	memset(&H->cfg.relay.submission, 0, sizeof H->cfg.relay.submission);
	H->cfg.relay.submission.n = 1;
	snprintf(H->cfg.relay.submission.ep[0].host, sizeof H->cfg.relay.submission.ep[0].host,
	    "127.0.0.1");
	memset(&H->cfg.relay.submissions, 0, sizeof H->cfg.relay.submissions);
	memset(&H->cfg.relay.trusted_networks, 0, sizeof H->cfg.relay.trusted_networks);
	snprintf(H->cfg.relay.trusted_user, sizeof H->cfg.relay.trusted_user, "shop");
	ck_assert_msg(tlsctx_client(&H->cctx, err, sizeof err) == 0, "%s", err);
}

static void
teardown(void)
{
	SSL_CTX_free(H->cctx);
	buf_free(&H->in);
	buf_free(&H->head);
	buf_free(&H->body);
	config_free(&H->cfg);
	tmpdir_remove(H->dir);
	log_set_fd(STDERR_FILENO);
	close(H->devnull);
	free(H);
	H = NULL;
}

static void
trust_loopback(void)
{
	const char *why = NULL;

	ck_assert_int_eq(config_parse_nets("127.0.0.1/32", &H->cfg.relay.trusted_networks, &why), 0);
}

/* run - serve one session through steps; returns when everything is closed. */
static void
run(const struct step *steps, size_t nsteps)
{
	struct smtpd_sink sink = { &fake_sink, H }, inbound = { &fake_inbound, H };
	struct smtpd_users users = { &fake_users, H };
	struct sockaddr_in sin;
	char err[CONFIG_ERR_MAX] = "";
	unsigned which = H->inbound ? SMTPD_PORT_INBOUND : H->implicit;

	H->steps = steps;
	H->nsteps = nsteps;
	ck_assert_msg(smtpd_open(&H->srv, &H->loop, &H->cfg, &sink, H->inbound ? &inbound : NULL,
	    &users, NULL, err, sizeof err) == 0, "%s", err);
	for (unsigned i = 0; i < 3; i++)
		ck_assert_msg((smtpd_port(H->srv, i, 0) != 0) == (i == which), "listener %u", i);
	ck_assert_int_eq(uv_ip4_addr("127.0.0.1", smtpd_port(H->srv, which, 0), &sin), 0);
	ck_assert_int_eq(conn_connect(&H->cli, &H->loop, (const struct sockaddr *)&sin, NULL,
	    &client_ops, H), 0);
	if (H->implicit) {
		/* RFC 8314: the handshake first, then the banner. */
		H->tls_pending = true;
		ck_assert_int_eq(conn_start_tls(H->cli, H->cctx, false, NULL, false), 0);
	}
	uv_timer_init(&H->loop, &H->guard);
	uv_timer_start(&H->guard, on_guard, GUARD_MS, 0);
	uv_run(&H->loop, UV_RUN_DEFAULT);
	ck_assert_msg(!H->guard_fired, "the session hung at step %zu", H->step);
	ck_assert(H->stopped);
	ck_assert_uint_eq(H->step, nsteps);
	ck_assert_uint_eq(H->seen, H->in.len);   /* no reply more than expected */
	ck_assert_int_eq(H->nclose, 1);
	ck_assert_uint_eq(H->pending, 0);
	ck_assert_int_eq(uv_loop_close(&H->loop), 0);
}

/* --- scripts ------------------------------------------------------------------------ */

#define GREETING "220 " HOSTNAME " ESMTP kurier"
#define EHLO_HEAD "250-" HOSTNAME " Hello client.example [127.0.0.1]\n250-PIPELINING\n" \
	"250-SIZE \n250-8BITMIME\n250-ENHANCEDSTATUSCODES\n250-SMTPUTF8\n"
#define EHLO_PLAIN EHLO_HEAD "250-STARTTLS\n250 DSN"
#define EHLO_TLS EHLO_HEAD "250-AUTH PLAIN LOGIN\n250 DSN"
#define EHLO_AUTHED EHLO_HEAD "250 DSN"
#define TRANSACTION "MAIL FROM:<a@shop.example>\r\nRCPT TO:<rcpt@dest.example>\r\nDATA\r\n"
#define TRANSACTION_OK "250 2.1.0 Ok\n250 2.1.5 Ok\n354 "
#define MESSAGE "From: Shop <a@shop.example>\r\nSubject: order\r\n\r\n..dotted\r\nbody\r\n.\r\n"

START_TEST(test_greeting_ehlo_quit)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO client.example\r\n", 0, EHLO_PLAIN, 0 },
		{ "HELO client.example\r\n", 0, "250 " HOSTNAME, 0 },
		{ "NOOP\r\nRSET\r\nVRFY x\r\n", 0, "250 2.0.0 Ok\n250 2.0.0 Ok\n252 2.5.2", 0 },
		{ "EXPN x\r\nBDAT 10\r\nFOO\r\n", 0, "502 5.5.1 EXPN\n502 5.5.1 BDAT\n500 5.5.1", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	run(steps, NELEM(steps));
	ck_assert_int_eq(H->close_status, UV_EOF);
	ck_assert_uint_eq(H->nstored, 0);
}
END_TEST

/* RFC 2920: a group of commands in one write, the replies in their order. */
START_TEST(test_pipelining)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO client.example\r\n" TRANSACTION, 0, EHLO_PLAIN "\n" TRANSACTION_OK, 0 },
		/* A command after the data's end, in the same packet. */
		{ MESSAGE "QUIT\r\n", 0, "250 2.0.0 Ok: queued as \n221 2.0.0 Bye", STEP_CLOSED },
	};
	char want[128];

	trust_loopback();
	H->sink_mode = SINK_OK;
	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nuser_get, 1);     /* trusted_user, fetched once */
	ck_assert_uint_eq(H->nstored, 1);
	ck_assert_str_eq(H->sender, "a@shop.example");
	ck_assert_uint_eq(H->nrcpt, 1);
	snprintf(want, sizeof want, "250 2.0.0 Ok: queued as %s\r\n", H->id);
	ck_assert_ptr_nonnull(memmem(H->in.data, H->in.len, want, strlen(want)));
	/* The body as meant: unstuffed, apart from the header section. */
	ck_assert_uint_eq(H->body.len, strlen(".dotted\r\nbody\r\n"));
	ck_assert(memcmp(H->body.data, ".dotted\r\nbody\r\n", H->body.len) == 0);
	buf_append(&H->head, "", 1);
	ck_assert_ptr_nonnull(strstr(H->head.data, "Received: from client.example ([127.0.0.1])\r\n"));
	ck_assert_ptr_nonnull(strstr(H->head.data, "(trusted network, acting as user shop)"));
	ck_assert_ptr_nonnull(strstr(H->head.data, "From: Shop <a@shop.example>\r\nSubject: order\r\n"));
	snprintf(want, sizeof want, "Message-ID: <%s@" HOSTNAME ">\r\nDate: ", H->id);
	ck_assert_ptr_nonnull(strstr(H->head.data, want));
	/* The header section ends with its empty line, once. */
	ck_assert_uint_ge(H->head.len, 5);
	ck_assert(memcmp(H->head.data + H->head.len - 5, "\r\n\r\n", 4) == 0);
	ck_assert_ptr_eq(strstr(H->head.data, "\r\n\r\n"), H->head.data + H->head.len - 5);
}
END_TEST

START_TEST(test_starttls_auth_plain)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO client.example\r\n", 0, EHLO_PLAIN, 0 },
		/* RFC 4954 4: no AUTH in the clear; MAIL needs it. */
		{ "AUTH PLAIN AHNob3AAc2VjcmV0\r\n", 0, "538 5.7.11", 0 },
		{ "MAIL FROM:<a@shop.example>\r\n", 0, "530 5.7.0", 0 },
		/* Plaintext pipelined after STARTTLS is dropped unread. */
		{ "STARTTLS\r\nNOOP\r\n", 0, "220 2.0.0 Ready to start TLS", STEP_TLS },
		{ "EHLO client.example\r\n", 0, EHLO_TLS, 0 },
		{ "STARTTLS\r\n", 0, "503 5.5.1 TLS is already active", 0 },
		{ "AUTH PLAIN AHNob3AAd3Jvbmc=\r\n", 0, "535 5.7.8", 0 },
		{ "AUTH PLAIN\r\n", 0, "334 ", 0 },
		{ "AHNob3AAc2VjcmV0\r\n", 0, "235 2.7.0", 0 },
		{ "AUTH PLAIN AHNob3AAc2VjcmV0\r\n", 0, "503 5.5.1 Already authenticated", 0 },
		{ "EHLO client.example\r\n", 0, EHLO_AUTHED, 0 },
		{ TRANSACTION, 0, TRANSACTION_OK, 0 },
		{ MESSAGE, 0, "250 2.0.0 Ok: queued as ", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	H->sink_mode = SINK_OK;
	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nverify, 2);
	ck_assert_uint_eq(H->nuser_get, 0);
	ck_assert_uint_eq(H->nstored, 1);
	buf_append(&H->head, "", 1);
	ck_assert_ptr_nonnull(strstr(H->head.data, "with ESMTPSA id "));
	ck_assert_ptr_nonnull(strstr(H->head.data, "(authenticated user shop)"));
	ck_assert_ptr_nonnull(strstr(H->head.data, "\tfor <rcpt@dest.example>;"));
}
END_TEST

START_TEST(test_auth_login)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO client.example\r\n", 0, EHLO_PLAIN, 0 },
		{ "STARTTLS\r\n", 0, "220 2.0.0", STEP_TLS },
		{ "EHLO client.example\r\n", 0, EHLO_TLS, 0 },
		{ "AUTH LOGIN\r\n", 0, "334 VXNlcm5hbWU6", 0 },
		{ "c2hvcA==\r\n", 0, "334 UGFzc3dvcmQ6", 0 },
		{ "bm9wZQ==\r\n", 0, "535 5.7.8", 0 },
		{ "AUTH LOGIN\r\n", 0, "334 VXNlcm5hbWU6", 0 },
		{ "*\r\n", 0, "501 5.0.0 Authentication cancelled", 0 },
		{ "AUTH LOGIN\r\n", 0, "334 VXNlcm5hbWU6", 0 },
		{ "not base64!\r\n", 0, "501 5.5.2 Invalid base64 data", 0 },
		{ "AUTH CRAM-MD5\r\n", 0, "504 5.5.4", 0 },
		{ "AUTH LOGIN c2hvcA==\r\n", 0, "334 UGFzc3dvcmQ6", 0 },
		{ "c2VjcmV0\r\n", 0, "235 2.7.0 Authentication successful", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nverify, 2);
	ck_assert_uint_eq(H->nstored, 0);
}
END_TEST

START_TEST(test_data_edge_cases)
{
	static char long_line[1200 + 64], big[4096], long_cmd[2000];
	static const char nul_msg[] = "From: a@shop.example\r\n\r\nnul\0byte\r\n.\r\n";
	size_t n;

	n = (size_t)snprintf(long_line, sizeof long_line, "From: a@shop.example\r\n\r\n");
	memset(long_line + n, 'a', 1100);
	snprintf(long_line + n + 1100, sizeof long_line - n - 1100, "\r\n.\r\n");
	n = (size_t)snprintf(big, sizeof big, "From: a@shop.example\r\n\r\n");
	while (n + 80 < sizeof big - 8) {
		memset(big + n, 'b', 70);
		memcpy(big + n + 70, "\r\n", 2);
		n += 72;
	}
	snprintf(big + n, sizeof big - n, ".\r\n");
	n = (size_t)snprintf(long_cmd, sizeof long_cmd, "NOOP ");
	memset(long_cmd + n, 'x', sizeof long_cmd - n - 3);
	memcpy(long_cmd + sizeof long_cmd - 3, "\r\n", 3);

	const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO client.example\r\n" TRANSACTION, 0, EHLO_PLAIN "\n" TRANSACTION_OK, 0 },
		/* RFC 5321 2.3.8: a bare LF is refused once the data ended. */
		{ "From: a@shop.example\r\n\r\nbare\nlf\r\n.\r\n", 0,
		  "550 5.6.0 Message contains a bare CR or LF", 0 },
		/* A "." after a bare LF ends nothing (SMTP smuggling). */
		{ TRANSACTION, 0, TRANSACTION_OK, 0 },
		{ "From: a@shop.example\r\n\r\nx\n.\nMAIL FROM:<evil@shop.example>\r\n.\r\n", 0,
		  "550 5.6.0 Message contains a bare CR or LF", 0 },
		{ TRANSACTION, 0, TRANSACTION_OK, 0 },
		{ nul_msg, sizeof nul_msg - 1, "550 5.6.0 Message contains a NUL byte", 0 },
		{ TRANSACTION, 0, TRANSACTION_OK, 0 },
		{ long_line, 0, "550 5.6.0 Message contains a line longer than 998", 0 },
		{ TRANSACTION, 0, TRANSACTION_OK, 0 },
		{ big, 0, "552 5.3.4", 0 },
		{ "DATA\r\n", 0, "503 5.5.1 Need MAIL before DATA", 0 },
		{ long_cmd, 0, "500 5.5.2 Line too long", 0 },
		{ "NOOP\r\n", 0, "250 2.0.0 Ok", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	ck_assert_uint_eq(strlen(long_cmd), sizeof long_cmd - 1);
	trust_loopback();
	H->cfg.relay.max_message_size = 2048;
	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 0);
}
END_TEST

/* The idle timeout: 421 and the close, whenever it comes. */
START_TEST(test_idle_timeout)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ NULL, 0, "421 4.4.2 " HOSTNAME " Timeout exceeded, closing connection", STEP_CLOSED },
	};

	/*
	 * Short, but not so short that the graceful close (armed with the
	 * same timeout) would turn into an abort on a stalled machine.
	 */
	H->cfg.relay.command_timeout_ms = 500;
	run(steps, NELEM(steps));
	ck_assert_int_eq(H->close_status, UV_EOF);
}
END_TEST

START_TEST(test_sink_fails_at_once)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO client.example\r\n" TRANSACTION, 0, EHLO_PLAIN "\n" TRANSACTION_OK, 0 },
		{ MESSAGE, 0, "451 4.3.0 Queue unavailable, try again later", 0 },
		/* The session goes on: a new transaction may be tried. */
		{ TRANSACTION, 0, TRANSACTION_OK, 0 },
		{ MESSAGE "QUIT\r\n", 0, "451 4.3.0\n221 2.0.0 Bye", STEP_CLOSED },
	};

	trust_loopback();
	H->sink_mode = SINK_FAIL_NOW;
	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 0);
}
END_TEST

START_TEST(test_sink_fails_later)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO client.example\r\n" TRANSACTION, 0, EHLO_PLAIN "\n" TRANSACTION_OK, 0 },
		{ MESSAGE "NOOP\r\n", 0, "451 4.3.0 Queue unavailable, try again later\n250 2.0.0 Ok", 0 },
	};

	trust_loopback();
	H->sink_mode = SINK_FAIL_LATER;
	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 1);
	ck_assert_int_eq(H->close_status, 0);
}
END_TEST

/* RFC 8314 implicit TLS: AUTH is offered at once, STARTTLS never. */
START_TEST(test_implicit_tls)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO client.example\r\n", 0, EHLO_TLS, 0 },
		{ "STARTTLS\r\n", 0, "503 5.5.1 TLS is already active", 0 },
		{ "AUTH PLAIN AHNob3AAc2VjcmV0\r\n" TRANSACTION, 0, "235 2.7.0\n" TRANSACTION_OK, 0 },
		{ MESSAGE, 0, "250 2.0.0 Ok: queued as ", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	H->implicit = true;
	memcpy(&H->cfg.relay.submissions, &H->cfg.relay.submission, sizeof H->cfg.relay.submissions);
	memset(&H->cfg.relay.submission, 0, sizeof H->cfg.relay.submission);
	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 1);
	buf_append(&H->head, "", 1);
	ck_assert_ptr_nonnull(strstr(H->head.data, "with ESMTPSA id "));
}
END_TEST

/*
 * A client that leaves while its password is being checked: the session
 * cancels the check (the fake answers only then), and nothing leaks.
 */
START_TEST(test_close_during_auth)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO client.example\r\n", 0, EHLO_PLAIN, 0 },
		{ "STARTTLS\r\n", 0, "220 2.0.0", STEP_TLS },
		{ "EHLO client.example\r\n", 0, EHLO_TLS, 0 },
		{ "AUTH PLAIN AHNob3AAc2VjcmV0\r\n", 0, "", STEP_CLOSED },
	};

	H->hold_verify = true;
	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nverify, 1);
	ck_assert_uint_eq(H->ncancel, 1);
	ck_assert_uint_eq(H->cancelled, H->next_req);
	ck_assert_ptr_null(H->held);
}
END_TEST

/*
 * smtpd_stop() during DATA: the transaction finishes (the message is
 * stored and acknowledged), then 421 4.3.2 and the close.
 */
START_TEST(test_stop_lets_transaction_finish)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO client.example\r\n" TRANSACTION, 0, EHLO_PLAIN "\n" TRANSACTION_OK, STEP_STOP },
		{ MESSAGE, 0, "250 2.0.0 Ok: queued as \n421 4.3.2 " HOSTNAME " Service shutting down",
		  STEP_CLOSED },
	};

	trust_loopback();
	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 1);
	ck_assert_int_eq(H->close_status, UV_EOF);
}
END_TEST

/* --- the inbound MX ------------------------------------------------------------------ */

static const char *const INBOUND_RECORDS[] = {
	"--txt-record=mx.sender.test,v=spf1 ip4:127.0.0.1 -all",
	"--txt-record=sender.test,v=spf1 ip4:127.0.0.1 -all",
	"--txt-record=fail.test,v=spf1 ip4:192.0.2.1 -all",
	NULL,
};

static void
inbound_setup(void)
{
	const char *why = NULL;

	setup();
	H->inbound = true;
	memset(&H->cfg.relay.submission, 0, sizeof H->cfg.relay.submission);
	memset(&H->cfg.relay.inbound, 0, sizeof H->cfg.relay.inbound);
	H->cfg.relay.inbound.n = 1;
	snprintf(H->cfg.relay.inbound.ep[0].host, sizeof H->cfg.relay.inbound.ep[0].host,
	    "127.0.0.1");
	/* trusted_networks are submission's: the inbound MX must ignore them. */
	ck_assert_int_eq(config_parse_nets("127.0.0.1/32", &H->cfg.relay.trusted_networks, &why), 0);
	dnsmasq_start(&H->dns, 0, false, INBOUND_RECORDS, NULL);
	ck_assert_int_eq(config_parse_endpoint(H->dns.server, false, &H->cfg.deliver.dns_server, &why), 0);
	H->cfg.deliver.dns_server_set = true;
}

static void
inbound_teardown(void)
{
	dnsmasq_clean(&H->dns);
	teardown();
}

#define IN_EHLO_HEAD "250-" HOSTNAME " Hello mx.sender.test [127.0.0.1]\n250-PIPELINING\n" \
	"250-SIZE 10485760\n250-8BITMIME\n250-ENHANCEDSTATUSCODES\n"
#define IN_EHLO IN_EHLO_HEAD "250-STARTTLS\n250 SMTPUTF8"
#define IN_EHLO_TLS IN_EHLO_HEAD "250 SMTPUTF8"
#define RETURN "From: MAILER-DAEMON@sender.test\r\nSubject: Undelivered Mail\r\n\r\n" \
	"The mail system said 550 5.1.1.\r\n.\r\n"

/* Whether the stored header section holds needle. */
static bool
head_has(const char *needle)
{
	return memmem(H->head.data, H->head.len, needle, strlen(needle)) != NULL;
}

START_TEST(test_inbound_ehlo_no_auth)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\n", 0, IN_EHLO, 0 },
		{ "AUTH PLAIN AGFAYg==\r\n", 0, "502 5.5.1 AUTH is not available here", 0 },
		{ "HELP\r\nVRFY x\r\nEXPN x\r\n", 0, "214 2.0.0 kurier: inbound MX\n252 2.5.2\n502 5.5.1 EXPN", 0 },
		/* trusted_networks are for submission: no MAIL without a check here either. */
		{ "RCPT TO:<b+x@bounces.test>\r\nDATA\r\n", 0,
		  "503 5.5.1 Need MAIL before RCPT\n503 5.5.1 Need MAIL before DATA", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 0);
	ck_assert_uint_eq(H->nasked, 0);
}
END_TEST

/*
 * The null sender: SPF of the HELO identity, the recipient asked in
 * lower case, the fields added at the top, a forged Authentication-Results
 * in our name removed and another host's kept.
 */
START_TEST(test_inbound_null_sender)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\n", 0, IN_EHLO, 0 },
		{ "MAIL FROM:<> SIZE=300 BODY=8BITMIME\r\n", 0, "250 2.1.0 Ok", 0 },
		{ "RCPT TO:<B+Token@Bounces.TEST>\r\n", 0, "250 2.1.5 Ok", 0 },
		{ "RCPT TO:<b+token@bounces.test>\r\n", 0, "250 2.1.5 Ok (duplicate recipient)", 0 },
		{ "DATA\r\n", 0, "354 ", 0 },
		{ "Authentication-Results: " HOSTNAME "; spf=pass smtp.mailfrom=forged.test\r\n"
		  "Authentication-Results: other.test; dkim=pass header.d=sender.test\r\n"
		  "authentication-results:\r\n " HOSTNAME ";\r\n dkim=pass header.d=forged.test\r\n"
		  RETURN, 0, "250 2.0.0 Ok: stored as ", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};
	static const char top[] =
	    "Authentication-Results: " HOSTNAME "; spf=pass smtp.helo=mx.sender.test;\r\n"
	    "\tdkim=none\r\n"
	    "Received-SPF: pass (" HOSTNAME ": ";

	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 1);
	ck_assert_str_eq(H->sender, "");
	ck_assert_uint_eq(H->nrcpt, 1);
	ck_assert_uint_eq(H->nasked, 1);
	ck_assert_str_eq(H->asked[0], "b+token@bounces.test");
	ck_assert_msg(H->head.len > sizeof top && memcmp(H->head.data, top, sizeof top - 1) == 0,
	    "head: %.*s", (int)H->head.len, H->head.data);
	ck_assert(head_has(" client-ip=127.0.0.1; "));
	ck_assert(head_has("\thelo=mx.sender.test; receiver=" HOSTNAME "; identity=helo;\r\n"
	    "Received: from mx.sender.test ([127.0.0.1])\r\n\tby " HOSTNAME " (kurier) with ESMTP id "));
	ck_assert(head_has("\r\n\tfor <b+token@bounces.test>;\r\n"));
	ck_assert(!head_has("forged.test"));
	ck_assert(head_has("\r\nAuthentication-Results: other.test; dkim=pass header.d=sender.test\r\n"
	    "From: MAILER-DAEMON@sender.test\r\n"));
	ck_assert_uint_ge(H->head.len, 4);
	ck_assert(memcmp(H->head.data + H->head.len - 4, "\r\n\r\n", 4) == 0);
	ck_assert_uint_eq(H->body.len, strlen("The mail system said 550 5.1.1.\r\n"));
}
END_TEST

/* Each verdict of the inbound sink, its reply, and DATA with what was accepted. */
START_TEST(test_inbound_rcpt_verdicts)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\n", 0, IN_EHLO, 0 },
		{ "MAIL FROM:<Bounce-Daemon@sender.test>\r\n", 0, "250 2.1.0 Ok", 0 },
		{ "DATA\r\n", 0, "503 5.5.1 Need RCPT before DATA", 0 },
		{ "RCPT TO:<unknown+x@bounces.test>\r\n", 0, "550 5.1.1 ", 0 },
		{ "RCPT TO:<someone@elsewhere.test>\r\n", 0, "550 5.7.1 Relaying denied", 0 },
		{ "RCPT TO:<temp@bounces.test>\r\n", 0, "451 4.3.0 ", 0 },
		{ "RCPT TO:<down@bounces.test>\r\n", 0, "451 4.3.0 ", 0 },
		{ "DATA\r\n", 0, "554 5.5.1 No valid recipients", 0 },
		/* RFC 5321 4.5.1: <postmaster> alone is postmaster@ the first bounce domain. */
		{ "RCPT TO:<Postmaster>\r\n", 0, "250 2.1.5 Ok", 0 },
		{ "RCPT TO:<postmaster@bounces.test>\r\n", 0, "250 2.1.5 Ok (duplicate recipient)", 0 },
		{ "DATA\r\n", 0, "354 ", 0 },
		{ RETURN, 0, "250 2.0.0 Ok: stored as ", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	H->cfg.domains = calloc(1, sizeof *H->cfg.domains);
	ck_assert_ptr_nonnull(H->cfg.domains);
	H->cfg.ndomains = 1;
	snprintf(H->cfg.domains[0].name, sizeof H->cfg.domains[0].name, "sender.example");
	snprintf(H->cfg.domains[0].return_path, sizeof H->cfg.domains[0].return_path, "bounces.test");
	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 1);
	ck_assert_uint_eq(H->nrcpt, 1);
	ck_assert_str_eq(H->asked[4], "postmaster@bounces.test");
	ck_assert_str_eq(H->sender, "Bounce-Daemon@sender.test");
	ck_assert_msg(head_has("spf=pass\r\n\tsmtp.mailfrom=Bounce-Daemon@sender.test; dkim=none\r\n"),
	    "%.*s", (int)H->head.len, H->head.data);
	ck_assert(head_has("envelope-from=\"Bounce-Daemon@sender.test\";"));
	ck_assert(head_has("identity=mailfrom;\r\nReceived: from mx.sender.test"));
	ck_assert_uint_eq(H->nasked, 5);
	ck_assert_str_eq(H->asked[1], "someone@elsewhere.test");
}
END_TEST

/* The whole transaction in one write (RFC 2920), the replies in order. */
START_TEST(test_inbound_pipelining)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\nMAIL FROM:<>\r\nRCPT TO:<b+1@bounces.test>\r\n"
		  "RCPT TO:<x@relay.test>\r\nRCPT TO:<b+2@bounces.test>\r\nDATA\r\n", 0,
		  IN_EHLO "\n250 2.1.0 Ok\n250 2.1.5 Ok\n550 5.7.1\n250 2.1.5 Ok\n354 ", 0 },
		{ RETURN "MAIL FROM:<>\r\nRSET\r\nQUIT\r\n", 0,
		  "250 2.0.0 Ok: stored as \n250 2.1.0 Ok\n250 2.0.0 Ok\n221 2.0.0 Bye", STEP_CLOSED },
	};

	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 1);
	ck_assert_uint_eq(H->nrcpt, 2);
	ck_assert(!head_has("\tfor <"));
}
END_TEST

/* [mailbox] max_bounce_size: SIZE and DATA past it get 552 5.3.4. */
START_TEST(test_inbound_size)
{
	static char big[4096];
	size_t n;

	n = (size_t)snprintf(big, sizeof big, "From: x@sender.test\r\n\r\n");
	while (n + 80 < sizeof big - 8) {
		memset(big + n, 'b', 70);
		memcpy(big + n + 70, "\r\n", 2);
		n += 72;
	}
	snprintf(big + n, sizeof big - n, ".\r\n");

	const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\n", 0, "250-" HOSTNAME "\n250-PIPELINING\n250-SIZE 2048\n"
		  "250-8BITMIME\n250-ENHANCEDSTATUSCODES\n250-STARTTLS\n250 SMTPUTF8", 0 },
		{ "MAIL FROM:<> SIZE=2049\r\n", 0, "552 5.3.4 Message size exceeds fixed maximum message size (2048 bytes)", 0 },
		{ "MAIL FROM:<> SIZE=2048\r\nRCPT TO:<b+1@bounces.test>\r\nDATA\r\n", 0,
		  "250 2.1.0 Ok\n250 2.1.5 Ok\n354 ", 0 },
		{ big, 0, "552 5.3.4 Message size exceeds fixed maximum message size (2048 bytes)", 0 },
		{ "RCPT TO:<b+1@bounces.test>\r\n", 0, "503 5.5.1 Need MAIL before RCPT", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	H->cfg.mailbox.max_bounce_size = 2048;
	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 0);
}
END_TEST

/* The hostile-input rules of submission: no smuggling, no NUL, line limits. */
START_TEST(test_inbound_hostile_input)
{
	static char long_line[1200 + 64], long_cmd[2000];
	static const char nul_msg[] = "From: x@sender.test\r\n\r\nnul\0byte\r\n.\r\n";
	size_t n;

	n = (size_t)snprintf(long_line, sizeof long_line, "From: x@sender.test\r\n\r\n");
	memset(long_line + n, 'a', 1100);
	snprintf(long_line + n + 1100, sizeof long_line - n - 1100, "\r\n.\r\n");
	n = (size_t)snprintf(long_cmd, sizeof long_cmd, "RCPT TO:<");
	memset(long_cmd + n, 'x', sizeof long_cmd - n - 3);
	memcpy(long_cmd + sizeof long_cmd - 3, "\r\n", 3);

#define IN_TRANS "MAIL FROM:<>\r\nRCPT TO:<b+1@bounces.test>\r\nDATA\r\n"
#define IN_TRANS_OK "250 2.1.0 Ok\n250 2.1.5 Ok\n354 "
	const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\n" IN_TRANS, 0, IN_EHLO "\n" IN_TRANS_OK, 0 },
		{ "From: x@sender.test\r\n\r\nx\n.\nMAIL FROM:<evil@sender.test>\r\n.\r\n", 0,
		  "550 5.6.0 Message contains a bare CR or LF", 0 },
		{ IN_TRANS, 0, IN_TRANS_OK, 0 },
		{ "From: x@sender.test\r\n\r\nx\r.\rRCPT TO:<x@relay.test>\r\n.\r\n", 0,
		  "550 5.6.0 Message contains a bare CR or LF", 0 },
		{ IN_TRANS, 0, IN_TRANS_OK, 0 },
		{ nul_msg, sizeof nul_msg - 1, "550 5.6.0 Message contains a NUL byte", 0 },
		{ IN_TRANS, 0, IN_TRANS_OK, 0 },
		{ long_line, 0, "550 5.6.0 Message contains a line longer than 998", 0 },
		{ "MAIL FROM:<>\r\n", 0, "250 2.1.0 Ok", 0 },
		{ long_cmd, 0, "500 5.5.2 Line too long", 0 },
		{ "MAIL FROM:<a@b@c>\r\nMAIL FROM:<>\r\nRCPT TO:<>\r\n", 0, "503 5.5.1 Nested MAIL\n503 5.5.1 Nested MAIL\n501 ", 0 },
		{ "RSET\r\nMAIL FROM:<a@b@c>\r\nEHLO bad name\r\n", 0, "250 2.0.0 Ok\n501 \n501 5.5.4", 0 },
		{ "MAIL FROM:<x\0y@sender.test>\r\n", 29, "500 5.5.2", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};
#undef IN_TRANS
#undef IN_TRANS_OK

	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 0);
	ck_assert_uint_eq(H->nasked, 4);
}
END_TEST

/* A recipient refused with 5xx is a protocol error: guessing addresses ends the session. */
START_TEST(test_inbound_rcpt_errors_limit)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\nMAIL FROM:<>\r\n", 0, IN_EHLO "\n250 2.1.0 Ok", 0 },
		{ "RCPT TO:<unknown1@bounces.test>\r\nRCPT TO:<unknown2@bounces.test>\r\n"
		  "RCPT TO:<a@relay.test>\r\nRCPT TO:<b+1@bounces.test>\r\n", 0,
		  "550 5.1.1\n550 5.1.1\n550 5.7.1\n421 4.7.0 " HOSTNAME " Too many errors", STEP_CLOSED },
	};

	H->cfg.policy.max_errors = 3;
	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nasked, 3);
}
END_TEST

/* At most 100 recipients a message: the 101st gets 452 4.5.3 (RFC 5321 4.5.3.1.10). */
START_TEST(test_inbound_too_many_rcpts)
{
	static char cmds[101 * 40], want[101 * 16 + 64];
	size_t n = 0, w = 0;

	for (int i = 0; i < 101; i++) {
		n += (size_t)snprintf(cmds + n, sizeof cmds - n, "RCPT TO:<b+%d@bounces.test>\r\n", i);
		w += (size_t)snprintf(want + w, sizeof want - w, "%s\n",
		    i < 100 ? "250 2.1.5 Ok" : "452 4.5.3 Too many recipients");
	}
	want[w - 1] = '\0';

	const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\nMAIL FROM:<>\r\n", 0, IN_EHLO "\n250 2.1.0 Ok", 0 },
		{ cmds, 0, want, 0 },
		{ "DATA\r\n", 0, "354 ", 0 },
		{ RETURN, 0, "250 2.0.0 Ok: stored as ", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nasked, 100);
	ck_assert_uint_eq(H->nrcpt, 100);
}
END_TEST

/* SPF fail, marked (the default): recorded, the message accepted. */
START_TEST(test_inbound_spf_fail_mark)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\nMAIL FROM:<bounce@fail.test>\r\nRCPT TO:<b+1@bounces.test>\r\nDATA\r\n", 0,
		  IN_EHLO "\n250 2.1.0 Ok\n250 2.1.5 Ok\n354 ", 0 },
		{ RETURN, 0, "250 2.0.0 Ok: stored as ", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 1);
	ck_assert_msg(head_has("spf=fail\r\n\tsmtp.mailfrom=bounce@fail.test; dkim=none\r\n"),
	    "%.*s", (int)H->head.len, H->head.data);
	ck_assert(head_has("\r\nReceived-SPF: fail (" HOSTNAME ": "));
	ck_assert(head_has("envelope-from=\"bounce@fail.test\";"));
}
END_TEST

/* [mailbox] spf_fail = reject: 550 5.7.23 at MAIL; a passing sender goes on. */
START_TEST(test_inbound_spf_fail_reject)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\nMAIL FROM:<bounce@fail.test>\r\nRCPT TO:<b+1@bounces.test>\r\n", 0,
		  IN_EHLO "\n550 5.7.23 SPF validation failed: sender domain fail.test does not permit 127.0.0.1\n"
		  "503 5.5.1 Need MAIL before RCPT", 0 },
		{ "MAIL FROM:<>\r\nRCPT TO:<b+1@bounces.test>\r\nDATA\r\n", 0,
		  "250 2.1.0 Ok\n250 2.1.5 Ok\n354 ", 0 },
		{ RETURN, 0, "250 2.0.0 Ok: stored as ", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	H->cfg.mailbox.spf_fail = CONFIG_SPF_FAIL_REJECT;
	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 1);
	ck_assert_uint_eq(H->nasked, 1);
	ck_assert(head_has("spf=pass smtp.helo=mx.sender.test"));
}
END_TEST

/* An address literal as HELO and the null sender: no identity, SPF none. */
START_TEST(test_inbound_spf_none)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "HELO [127.0.0.1]\r\nMAIL FROM:<>\r\nRCPT TO:<b+1@bounces.test>\r\nDATA\r\n", 0,
		  "250 " HOSTNAME "\n250 2.1.0 Ok\n250 2.1.5 Ok\n354 ", 0 },
		{ RETURN, 0, "250 2.0.0 Ok: stored as ", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	run(steps, NELEM(steps));
	ck_assert_msg(head_has("spf=none smtp.helo=\"[127.0.0.1]\";\r\n\tdkim=none\r\n"),
	    "%.*s", (int)H->head.len, H->head.data);
	ck_assert(head_has("Received-SPF: none (" HOSTNAME ": "));
	/* RFC 5321 4.4: HELO, so plain SMTP in the trace. */
	ck_assert(head_has(" (kurier) with SMTP id "));
}
END_TEST

/* DKIM is verified at the end of DATA and its verdict recorded (a signature without its key). */
START_TEST(test_inbound_dkim)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\nMAIL FROM:<>\r\nRCPT TO:<b+1@bounces.test>\r\nDATA\r\n", 0,
		  IN_EHLO "\n250 2.1.0 Ok\n250 2.1.5 Ok\n354 ", 0 },
		{ "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=nokey.test; s=sel;\r\n"
		  "\th=from:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n"
		  RETURN, 0, "250 2.0.0 Ok: stored as ", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 1);
	ck_assert_msg(head_has("dkim=permerror") && head_has("header.d=nokey.test"), "%.*s",
	    (int)H->head.len, H->head.data);
	ck_assert(!head_has("dkim=none"));
	ck_assert(head_has("\r\nDKIM-Signature: v=1; a=rsa-sha256;"));
}
END_TEST

/*
 * dkim_signed - RETURN's header fields and body signed for sender.test,
 * selector sel, with a fresh 1024-bit RSA key (the least RFC 8301 lets a
 * verifier take, and short enough for one TXT string); its public key
 * as base64 DER in pub.  Returns the DKIM-Signature field, CRLF ended.
 */
static char *
dkim_signed(const char *head, const char *body, char *pub, size_t pubsize)
{
	EVP_PKEY *pk = EVP_RSA_gen(1024);
	BIO *bio = BIO_new(BIO_s_mem());
	unsigned char *der = NULL, *h;
	char *priv, *out, *data;
	struct rfc5322_scan sc;
	const char *f;
	size_t fl, hl;
	long len;
	int dl;
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	DKIM_STAT st;
	DKIM *d;

	ck_assert_ptr_nonnull(pk);
	ck_assert_ptr_nonnull(lib);
	ck_assert_int_eq(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL), 1);
	len = BIO_get_mem_data(bio, &data);
	priv = calloc(1, (size_t)len + 1);
	ck_assert_ptr_nonnull(priv);
	memcpy(priv, data, (size_t)len);
	BIO_free(bio);
	dl = i2d_PUBKEY(pk, &der);
	ck_assert_int_gt(dl, 0);
	ck_assert_uint_lt(4 * ((size_t)dl + 2) / 3 + 1, pubsize);
	EVP_EncodeBlock((unsigned char *)pub, der, dl);
	OPENSSL_free(der);
	EVP_PKEY_free(pk);

	d = dkim_sign(lib, (const unsigned char *)"inbound", NULL, (dkim_sigkey_t)priv,
	    (const unsigned char *)"sel", (const unsigned char *)"sender.test",
	    DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
	ck_assert_ptr_nonnull(d);
	rfc5322_scan_init(&sc, head, strlen(head));
	while (rfc5322_next(&sc, &f, &fl))
		ck_assert_int_eq(dkim_header(d, (unsigned char *)(uintptr_t)f, fl), DKIM_STAT_OK);
	ck_assert_int_eq(dkim_eoh(d), DKIM_STAT_OK);
	ck_assert_int_eq(dkim_body(d, (unsigned char *)(uintptr_t)body, strlen(body)), DKIM_STAT_OK);
	ck_assert_int_eq(dkim_eom(d, NULL), DKIM_STAT_OK);
	ck_assert_int_eq(dkim_getsighdr_d(d, 16, &h, &hl), DKIM_STAT_OK);
	out = calloc(1, hl + 20);
	ck_assert_ptr_nonnull(out);
	snprintf(out, hl + 20, "DKIM-Signature: %.*s\r\n", (int)hl, (char *)h);
	dkim_free(d);
	dkim_close(lib);
	free(priv);
	return out;
}

/* A signed return: dkim=pass with its domain and selector; the same message changed: fail. */
START_TEST(test_inbound_dkim_pass)
{
	static const char head[] = "From: MAILER-DAEMON@sender.test\r\nSubject: Undelivered Mail\r\n";
	static const char body[] = "The mail system said 550 5.1.1.\r\n";
	static char msg[2][4096], txt[400];
	char pub[300], *sig = dkim_signed(head, body, pub, sizeof pub);
	const char *records[NELEM(INBOUND_RECORDS) + 1];
	const char *why = NULL;
	size_t n = 0;

	snprintf(msg[0], sizeof msg[0], "%s%s\r\n%s.\r\n", sig, head, body);
	snprintf(msg[1], sizeof msg[1], "%s%s\r\n%sChanged.\r\n.\r\n", sig, head, body);
	free(sig);
	snprintf(txt, sizeof txt, "--txt-record=sel._domainkey.sender.test,v=DKIM1; k=rsa; p=%s", pub);
	for (; INBOUND_RECORDS[n] != NULL; n++)
		records[n] = INBOUND_RECORDS[n];
	records[n++] = txt;
	records[n] = NULL;
	dnsmasq_clean(&H->dns);
	dnsmasq_start(&H->dns, 0, false, records, NULL);
	ck_assert_int_eq(config_parse_endpoint(H->dns.server, false, &H->cfg.deliver.dns_server, &why), 0);

	const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\nMAIL FROM:<>\r\nRCPT TO:<b+1@bounces.test>\r\nDATA\r\n", 0,
		  IN_EHLO "\n250 2.1.0 Ok\n250 2.1.5 Ok\n354 ", 0 },
		{ msg[_i], 0, "250 2.0.0 Ok: stored as ", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 1);
	ck_assert_msg(head_has(_i == 0 ? "dkim=pass header.d=sender.test header.s=sel" :
	    "dkim=fail"), "%.*s", (int)H->head.len, H->head.data);
}
END_TEST

/* STARTTLS: offered before TLS only, the session begins anew, the trace says ESMTPS. */
START_TEST(test_inbound_starttls)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\nSTARTTLS\r\n", 0, IN_EHLO "\n220 2.0.0 Ready to start TLS", STEP_TLS },
		{ "MAIL FROM:<>\r\n", 0, "503 5.5.1 Send EHLO first", 0 },
		{ "EHLO mx.sender.test\r\n", 0, IN_EHLO_TLS, 0 },
		{ "STARTTLS\r\n", 0, "503 5.5.1 TLS is already active", 0 },
		{ "MAIL FROM:<>\r\nRCPT TO:<b+1@bounces.test>\r\nDATA\r\n", 0, "250 2.1.0 Ok\n250 2.1.5 Ok\n354 ", 0 },
		{ RETURN, 0, "250 2.0.0 Ok: stored as ", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 1);
	ck_assert(head_has(" (kurier) with ESMTPS id "));
	ck_assert(head_has("\t(version=TLS"));
}
END_TEST

/* The sink cannot store: 451 4.3.0, at once or later; the session goes on. */
START_TEST(test_inbound_store_fails)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\nMAIL FROM:<>\r\nRCPT TO:<b+1@bounces.test>\r\nDATA\r\n", 0,
		  IN_EHLO "\n250 2.1.0 Ok\n250 2.1.5 Ok\n354 ", 0 },
		{ RETURN "NOOP\r\n", 0, "451 4.3.0 Mailbox unavailable, try again later\n250 2.0.0 Ok", 0 },
		{ "QUIT\r\n", 0, "221 2.0.0 Bye", STEP_CLOSED },
	};

	H->sink_mode = _i == 0 ? SINK_FAIL_NOW : SINK_FAIL_LATER;
	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, _i == 0 ? 0 : 1);
}
END_TEST

/* Stopping: a session between transactions gets 421; the listener goes. */
START_TEST(test_inbound_stop)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\nMAIL FROM:<>\r\nRCPT TO:<b+1@bounces.test>\r\nDATA\r\n", 0,
		  IN_EHLO "\n250 2.1.0 Ok\n250 2.1.5 Ok\n354 ", STEP_STOP },
		{ RETURN, 0, "250 2.0.0 Ok: stored as \n421 4.3.2", STEP_CLOSED },
	};

	run(steps, NELEM(steps));
	ck_assert_uint_eq(H->nstored, 1);
}
END_TEST

/*
 * Stopping while a MAIL waits for an SPF verdict that never comes (the
 * DNS server stopped answering): the grace period ends the session, the
 * SPF checker and the DKIM verifier close, and everything is freed.
 */
START_TEST(test_inbound_stop_during_spf)
{
	static const struct step steps[] = {
		{ NULL, 0, GREETING, 0 },
		{ "EHLO mx.sender.test\r\nMAIL FROM:<a@slow.test>\r\n", 0, IN_EHLO, STEP_STOP | STEP_CLOSED },
	};

	/* The query waits longer than the 5-second grace of run()'s smtpd_stop(). */
	H->cfg.deliver.dns_timeout_ms = 60000;
	dnsmasq_pause(&H->dns);
	run(steps, NELEM(steps));
	ck_assert_int_ne(H->close_status, 0);
	ck_assert_uint_eq(H->nstored, 0);
}
END_TEST

Suite *
session_suite(void)
{
	Suite *s = suite_create("session");
	TCase *tc = tcase_create("session");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_greeting_ehlo_quit);
	tcase_add_test(tc, test_pipelining);
	tcase_add_test(tc, test_starttls_auth_plain);
	tcase_add_test(tc, test_auth_login);
	tcase_add_test(tc, test_data_edge_cases);
	tcase_add_test(tc, test_idle_timeout);
	tcase_add_test(tc, test_sink_fails_at_once);
	tcase_add_test(tc, test_sink_fails_later);
	tcase_add_test(tc, test_implicit_tls);
	tcase_add_test(tc, test_close_during_auth);
	tcase_add_test(tc, test_stop_lets_transaction_finish);
	suite_add_tcase(s, tc);

	tc = tcase_create("inbound");
	tcase_add_checked_fixture(tc, inbound_setup, inbound_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_inbound_ehlo_no_auth);
	tcase_add_test(tc, test_inbound_null_sender);
	tcase_add_test(tc, test_inbound_rcpt_verdicts);
	tcase_add_test(tc, test_inbound_pipelining);
	tcase_add_test(tc, test_inbound_size);
	tcase_add_test(tc, test_inbound_hostile_input);
	tcase_add_test(tc, test_inbound_rcpt_errors_limit);
	tcase_add_test(tc, test_inbound_too_many_rcpts);
	tcase_add_test(tc, test_inbound_spf_fail_mark);
	tcase_add_test(tc, test_inbound_spf_fail_reject);
	tcase_add_test(tc, test_inbound_spf_none);
	tcase_add_test(tc, test_inbound_dkim);
	tcase_add_loop_test(tc, test_inbound_dkim_pass, 0, 2);
	tcase_add_test(tc, test_inbound_starttls);
	tcase_add_loop_test(tc, test_inbound_store_fails, 0, 2);
	tcase_add_test(tc, test_inbound_stop);
	tcase_add_test(tc, test_inbound_stop_during_spf);
	suite_add_tcase(s, tc);
	return s;
}
