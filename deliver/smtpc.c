/*
 * smtpc - the delivery workers' SMTP client.  See smtpc.h for the
 * contract.
 *
 * One state machine: smtpc_enter_state() is the only writer of
 * c->state; on_reply() switches on the state to handle each complete
 * reply the reader (deliver/smtpreply) hands over; the commands for the
 * next state are sent where the state is entered.  A transaction is a
 * list of steps (RSET, MAIL, RCPT..., DATA) whose commands go out all at
 * once with PIPELINING or one by one without; replies are matched to
 * steps in order, and with PIPELINING the decisions wait for DATA's.
 *
 * Ownership and freeing.  The smtpc owns its conn and one timer, used for
 * every timeout, for the bounded QUIT and close, and to report a
 * transaction refused before anything was sent (callbacks never run
 * inside smtpc_* calls).  It is freed in the timer's close callback,
 * which is started only from the conn's on_close; both run from the
 * loop's close phase, never nested in a callback of ours, so a callback
 * may call smtpc_abort() and the code that called it goes on safely.
 *
 * Memory: an idle smtpc is the struct (the reply reader's 2 KiB line
 * buffer included) and the conn.  The output buffer grows to a chunk of
 * message data (SMTPC_CHUNK) while DATA is sent and is freed after.
 */
#include "deliver/smtpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "queue/envelope.h"

/* Message data formatted (dot-stuffed) and handed to the conn at a time. */
#define SMTPC_CHUNK (64 * 1024)
/* More data is formatted only while less than this waits in the conn. */
#define SMTPC_HIGH_WATER (256 * 1024)
#define SMTPC_NAME_MAX 255
#define SMTPC_CRED_MAX 255
/* RFC 4954 4: an AUTH line longer than this goes without initial response. */
#define SMTPC_LINE_MAX 512
#define SMTPC_ORCPT_MAX 500      /* RFC 3461 4.2 */
#define SMTPC_ENVID_MAX 100      /* RFC 3461 4.4 */

/* RFC 5321 4.5.3.2 values, and a connect timeout of our own. */
#define DEFAULT_CONNECT_MS (30 * 1000)
#define DEFAULT_GREETING_MS (5 * 60 * 1000)
#define DEFAULT_COMMAND_MS (5 * 60 * 1000)
#define DEFAULT_DATA_INIT_MS (2 * 60 * 1000)
#define DEFAULT_DATA_BLOCK_MS (3 * 60 * 1000)
#define DEFAULT_DATA_END_MS (10 * 60 * 1000)

_Static_assert(SMTPC_TEXT_SIZE == SMTPREPLY_TEXT_SIZE, "reply text sizes differ");

enum smtpc_state {
	ST_CONNECT,
	ST_GREETING,
	ST_EHLO,
	ST_HELO,
	ST_STARTTLS,
	ST_TLS,
	ST_AUTH,        /* the final reply to AUTH */
	ST_AUTH_PLAIN,  /* "AUTH PLAIN" without initial response: 334 due */
	ST_AUTH_USER,   /* "AUTH LOGIN": 334 for the user name due */
	ST_AUTH_PASS,   /* 334 for the password due */
	ST_IDLE,
	ST_TXN,         /* replies to RSET/MAIL/RCPT/DATA due */
	ST_BODY,        /* after 354: sending the message data */
	ST_DOT,         /* the final reply due */
	ST_EMPTYDOT,    /* a lone dot after an unwanted 354: its reply due */
	ST_QUIT,        /* QUIT's reply due */
	ST_CLOSED,      /* closing: waiting for the conn to go */
};

static const char *const state_names[] = {
	[ST_CONNECT] = "connect",
	[ST_GREETING] = "greeting",
	[ST_EHLO] = "ehlo",
	[ST_HELO] = "helo",
	[ST_STARTTLS] = "starttls",
	[ST_TLS] = "tls",
	[ST_AUTH] = "auth",
	[ST_AUTH_PLAIN] = "auth-plain",
	[ST_AUTH_USER] = "auth-user",
	[ST_AUTH_PASS] = "auth-pass",
	[ST_IDLE] = "idle",
	[ST_TXN] = "txn",
	[ST_BODY] = "body",
	[ST_DOT] = "dot",
	[ST_EMPTYDOT] = "emptydot",
	[ST_QUIT] = "quit",
	[ST_CLOSED] = "closed",
};

static const char *const stage_names[] = {
	[SMTPC_CONNECT] = "connect",
	[SMTPC_GREETING] = "greeting",
	[SMTPC_EHLO] = "ehlo",
	[SMTPC_STARTTLS] = "starttls",
	[SMTPC_TLS] = "tls",
	[SMTPC_AUTH] = "auth",
	[SMTPC_MAIL] = "mail",
	[SMTPC_RCPT] = "rcpt",
	[SMTPC_DATA] = "data",
	[SMTPC_DOT] = "dot",
	[SMTPC_RSET] = "rset",
	[SMTPC_QUIT] = "quit",
};

/* How a failure leaves the connection. */
enum shut_how {
	SHUT_KEEP,   /* in step: stays usable */
	SHUT_QUIT,   /* in step but done: QUIT, then close */
	SHUT_CLOSE,  /* the server is closing (421): close without QUIT */
	SHUT_ABORT,  /* out of step or gone: close now */
};

/* Transaction steps: their commands go out in this order. */
#define STEP_RSET 0
#define STEP_MAIL 1
#define STEP_RCPT0 2

struct smtpc_tx {
	struct smtpc_txn t;         /* the owner's; what it points at is borrowed */
	smtpc_txn_cb *cb;
	void *arg;
	struct smtpc_result res;
	size_t next_send;           /* the next step whose command goes out */
	size_t next_reply;          /* the step whose reply is due */
	size_t nok;                 /* RCPTs answered 2xx */
	int fail;                   /* a failure decided before the end, or 0 */
	enum smtpc_stage fail_stage;
	enum shut_how fail_how;
	bool deferred;              /* refused before sending: report from the timer */
	uint64_t start_ms;
	/* The message data: where we are, and what was last sent. */
	size_t piece, off;
	bool bol;                   /* at the start of a line */
	uint64_t ndata;
	char tail[2];               /* its last two bytes */
};

struct smtpc {
	uv_loop_t *loop;
	struct conn *conn;          /* NULL once it closed */
	uv_timer_t timer;
	enum smtpc_state state;
	SSL_CTX *tls;               /* one reference of ours */
	bool require_tls;
	bool auth;                  /* credentials given */
	bool need_rset;             /* a MAIL went out on this connection */
	uint64_t connect_ms, greeting_ms, command_ms, data_init_ms,
	    data_block_ms, data_end_ms, quit_ms;
	char host[SMTPC_NAME_MAX + 1];
	char helo[SMTPC_NAME_MAX + 1];
	char user[SMTPC_CRED_MAX + 1];
	char pass[SMTPC_CRED_MAX + 1];
	smtpc_ready_cb *ready_cb;   /* NULL once called or given up */
	void *ready_arg;
	void (*closed_cb)(void *arg, struct smtpc *c);
	void *closed_arg;
	struct smtpreply_reader rd;
	struct smtpreply_ehlo ehlo; /* what the last EHLO offered */
	struct smtpc_reply last;    /* the last set-up reply, for ready */
	struct smtpc_info info;
	bool tx_active;
	struct smtpc_tx tx;
	struct buf out;             /* commands, then message data chunks */
};

static void on_connect(struct conn *conn, int status);
static void on_read(struct conn *conn, const char *data, size_t len);
static void on_tls(struct conn *conn, int status);
static void on_drain(struct conn *conn);
static void on_close(struct conn *conn, int status);
static void on_timer(uv_timer_t *t);
static void after_hello(struct smtpc *c);
static void body_pump(struct smtpc *c);
static void shut(struct smtpc *c, enum shut_how how);

static const struct conn_ops smtpc_conn_ops = {
	.on_connect = on_connect,
	.on_read = on_read,
	.on_tls = on_tls,
	.on_drain = on_drain,
	.on_close = on_close,
};

const char *
smtpc_stage_name(enum smtpc_stage s)
{
	return (unsigned)s < sizeof stage_names / sizeof stage_names[0] ?
	    stage_names[s] : "?";
}

static void
smtpc_enter_state(struct smtpc *c, enum smtpc_state st)
{
	if (c->state == st)
		return;
	log_debug("smtpc", "state", "host=%s peer=%s from=%s to=%s", c->host,
	    c->info.peer, state_names[c->state], state_names[st]);
	c->state = st;
}

/* --- helpers ------------------------------------------------------------------- */

static void
arm(struct smtpc *c, uint64_t ms)
{
	if (c->conn != NULL)
		uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void
trace(const struct smtpc *c, const char *event, const char *p, size_t len)
{
	char q[SMTPC_TEXT_SIZE + 64];

	if (log_get_level() > LOG_DEBUG)
		return;
	log_debug("smtpc", event, "host=%s peer=%s line=%s", c->host, c->info.peer,
	    log_quote(q, sizeof q, p, len));
}

static void
reply_set(struct smtpc_reply *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reply_set(struct smtpc_reply *r, int code, const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof r->text, fmt, ap);
	va_end(ap);
}

/* The reply the reader just completed. */
static void
reply_take(const struct smtpc *c, struct smtpc_reply *r)
{
	r->code = c->rd.r.code;
	memcpy(r->text, c->rd.r.text, c->rd.r.textlen + 1);
}

/* The line added to c->out since start, for the trace (CRLF left out). */
static void
trace_out(const struct smtpc *c, size_t start)
{
	trace(c, "send", c->out.data + start, c->out.len - start - 2);
}

/* cmd - one command line into c->out, CRLF added; flush() sends it. */
static void
cmd(struct smtpc *c, const char *verb, const char *arg)
{
	size_t start = c->out.len;

	buf_appends(&c->out, verb);
	if (arg != NULL) {
		buf_appendc(&c->out, ' ');
		buf_appends(&c->out, arg);
	}
	buf_appends(&c->out, "\r\n");
	trace_out(c, start);
}

static void
flush(struct smtpc *c)
{
	/* A failed write closes the conn: on_close reports it. */
	if (c->out.len > 0 && c->conn != NULL)
		(void)conn_write(c->conn, c->out.data, c->out.len);
	buf_reset(&c->out);
}

/* A secret line (AUTH): written from a buffer that is wiped, traced masked. */
static void
cmd_secret(struct smtpc *c, const char *line, const char *shown)
{
	size_t n = strlen(line);

	trace(c, "send", shown, strlen(shown));
	if (c->conn != NULL) {
		(void)conn_write(c->conn, line, n);
		(void)conn_write(c->conn, "\r\n", 2);
	}
}

/* RFC 3461 4 xtext of s into b: '+', '=' and bytes outside 33..126 as "+XX". */
static void
xtext_append(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 33 || ch > 126 || ch == '+' || ch == '=')
			buf_appendf(b, "+%02X", ch);
		else
			buf_appendc(b, (char)ch);
	}
}

static bool
text_ok(const char *s, size_t max)
{
	size_t n = 0;

	for (; *s != '\0'; s++, n++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || n >= max)
			return false;
	return true;
}

/* A host or HELO name: 1..255 bytes of printable ASCII without space. */
static bool
name_ok(const char *s)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++, n++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f ||
		    n >= SMTPC_NAME_MAX)
			return false;
	return true;
}

static void
peer_string(char *dst, size_t size, const struct sockaddr *sa)
{
	char ip[INET6_ADDRSTRLEN] = "";

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
		snprintf(dst, size, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
		snprintf(dst, size, "%s:%u", ip, ntohs(sin->sin_port));
	} else {
		snprintf(dst, size, "?");
	}
}

/* The stage the current state stands for. */
static enum smtpc_stage
step_stage(const struct smtpc *c, size_t s)
{
	if (s == STEP_RSET)
		return SMTPC_RSET;
	if (s == STEP_MAIL)
		return SMTPC_MAIL;
	if (s < STEP_RCPT0 + c->tx.t.nrcpt)
		return SMTPC_RCPT;
	return SMTPC_DATA;
}

static enum smtpc_stage
stage_now(const struct smtpc *c)
{
	switch (c->state) {
	case ST_CONNECT:
		return SMTPC_CONNECT;
	case ST_GREETING:
		return SMTPC_GREETING;
	case ST_EHLO:
	case ST_HELO:
		return SMTPC_EHLO;
	case ST_STARTTLS:
		return SMTPC_STARTTLS;
	case ST_TLS:
		return SMTPC_TLS;
	case ST_AUTH:
	case ST_AUTH_PLAIN:
	case ST_AUTH_USER:
	case ST_AUTH_PASS:
		return SMTPC_AUTH;
	case ST_TXN:
		return step_stage(c, c->tx.next_reply);
	case ST_BODY:
	case ST_EMPTYDOT:
		return SMTPC_DATA;
	case ST_DOT:
		return SMTPC_DOT;
	default:
		return SMTPC_QUIT;
	}
}

/* The timeout that applies while waiting in the current state. */
static uint64_t
state_timeout(const struct smtpc *c)
{
	switch (c->state) {
	case ST_CONNECT:
		return c->connect_ms;
	case ST_GREETING:
		return c->greeting_ms;
	case ST_TXN:
		return step_stage(c, c->tx.next_reply) == SMTPC_DATA ?
		    c->data_init_ms : c->command_ms;
	case ST_BODY:
		return c->data_block_ms;
	case ST_DOT:
	case ST_EMPTYDOT:
		return c->data_end_ms;
	case ST_QUIT:
	case ST_CLOSED:
		return c->quit_ms;
	default:
		return c->command_ms;
	}
}

/* Enter a state that waits for the peer, with that state's timeout. */
static void
wait_in(struct smtpc *c, enum smtpc_state st)
{
	smtpc_enter_state(c, st);
	arm(c, state_timeout(c));
}

/* --- ending ---------------------------------------------------------------------- */

/*
 * shut - stop using the connection, politely or not (see enum shut_how).
 * Closing is final: a later, politer request does not undo an abort.
 */
static void
shut(struct smtpc *c, enum shut_how how)
{
	if (how == SHUT_KEEP)
		return;
	if (c->conn == NULL || conn_is_closing(c->conn))
		how = SHUT_ABORT;
	if (c->state == ST_CLOSED || c->state == ST_QUIT) {
		if (how == SHUT_ABORT && c->conn != NULL) {
			smtpc_enter_state(c, ST_CLOSED);
			conn_abort(c->conn);
		}
		return;
	}
	switch (how) {
	case SHUT_QUIT:
		buf_reset(&c->out);
		cmd(c, "QUIT", NULL);
		flush(c);
		/* A reply half read belongs to nothing now. */
		smtpreply_init(&c->rd);
		wait_in(c, ST_QUIT);
		break;
	case SHUT_CLOSE:
		/* The graceful close waits for a peer that may never read: not forever. */
		conn_close(c->conn);
		wait_in(c, ST_CLOSED);
		break;
	default:
		smtpc_enter_state(c, ST_CLOSED);
		uv_timer_stop(&c->timer);
		if (c->conn != NULL)
			conn_abort(c->conn);
		break;
	}
}

/* QUIT was answered or timed out: close, bounded the same way. */
static void
quit_done(struct smtpc *c)
{
	if (c->conn == NULL)
		return;
	conn_close(c->conn);
	wait_in(c, ST_CLOSED);
}

static void
ready_done(struct smtpc *c, int status, enum smtpc_stage stage,
    const struct smtpc_reply *reply)
{
	smtpc_ready_cb *cb = c->ready_cb;

	c->ready_cb = NULL;
	if (cb != NULL)
		cb(c->ready_arg, c, status, stage, reply);
}

/* The set-up failed: close as told, then tell the owner. */
static void
setup_fail(struct smtpc *c, int status, enum smtpc_stage stage,
    const struct smtpc_reply *reply, enum shut_how how)
{
	char q[SMTPC_TEXT_SIZE + 64];

	log_debug("smtpc", "setup_failed", "host=%s peer=%s stage=%s status=%s reply=%s",
	    c->host, c->info.peer, smtpc_stage_name(stage), uv_strerror(status),
	    log_quotes(q, sizeof q, reply->text));
	if (reply->code == 421 && how == SHUT_QUIT)
		how = SHUT_CLOSE;
	shut(c, how);
	ready_done(c, status, stage, reply);
}

/*
 * txn_done - report the transaction and leave the connection as how says
 * (a 421 seen closes it anyway).  The result is moved out first, so the
 * callback may start the next transaction.
 */
static void
txn_done(struct smtpc *c, int status, enum smtpc_stage stage, enum shut_how how)
{
	struct smtpc_tx *x = &c->tx;
	struct smtpc_result res;
	smtpc_txn_cb *cb = x->cb;
	void *arg = x->arg;

	uv_timer_stop(&c->timer);
	buf_free(&c->out);
	c->tx_active = false;
	x->deferred = false;
	if (how == SHUT_KEEP && c->state != ST_CLOSED && c->state != ST_QUIT)
		smtpc_enter_state(c, ST_IDLE);
	else
		shut(c, how);
	res = x->res;
	x->res.rcpt = NULL;
	x->cb = NULL;
	res.status = status;
	res.stage = stage;
	res.connection_lost = c->state == ST_CLOSED || c->state == ST_QUIT ||
	    c->conn == NULL || conn_is_closing(c->conn);
	res.elapsed_ms = uv_now(c->loop) - x->start_ms;
	if (status == 0)
		res.error[0] = '\0';
	log_debug("smtpc", "txn_done", "host=%s peer=%s status=%s stage=%s lost=%d",
	    c->host, c->info.peer, status == 0 ? "ok" : uv_strerror(status),
	    smtpc_stage_name(stage), res.connection_lost);
	if (cb != NULL)
		cb(arg, c, &res);
	free(res.rcpt);
}

/* Decide a transaction's failure (the first one stands). */
static void
tx_fail(struct smtpc *c, int status, enum smtpc_stage stage, const char *why)
{
	if (c->tx.fail != 0)
		return;
	c->tx.fail = status;
	c->tx.fail_stage = stage;
	str_copy(c->tx.res.error, why, sizeof c->tx.res.error);
}

/*
 * lost - the connection failed (timeout, malformed reply, closed, TLS):
 * fail whatever was pending with status at the current stage.
 */
static void
lost(struct smtpc *c, int status, const char *why)
{
	enum smtpc_stage stage = stage_now(c);
	struct smtpc_reply r;

	if (c->state < ST_IDLE) {
		reply_set(&r, 0, "%s", why);
		setup_fail(c, status, stage, &r, SHUT_ABORT);
	} else if (c->tx_active) {
		/* A failure decided already stands; the connection is gone with it. */
		if (c->tx.fail == 0)
			tx_fail(c, status, stage, why);
		txn_done(c, c->tx.fail, c->tx.fail_stage, SHUT_ABORT);
	} else {
		log_debug("smtpc", "lost", "host=%s peer=%s state=%s why=%s", c->host,
		    c->info.peer, state_names[c->state], why);
		shut(c, SHUT_ABORT);
	}
}

static void
on_timer_closed(uv_handle_t *h)
{
	struct smtpc *c = h->data;

	if (c->closed_cb != NULL)
		c->closed_cb(c->closed_arg, c);
	free(c->tx.res.rcpt);
	buf_free(&c->out);
	SSL_CTX_free(c->tls);
	explicit_bzero(c->user, sizeof c->user);
	explicit_bzero(c->pass, sizeof c->pass);
	free(c);
}

static void
on_close(struct conn *conn, int status)
{
	struct smtpc *c = conn_data(conn);
	char why[128];

	/* Nothing may use the conn from here: it is freed when we return. */
	c->conn = NULL;
	if (c->state != ST_CLOSED && c->state != ST_QUIT) {
		if (status == UV_EOF || status == 0)
			snprintf(why, sizeof why, "connection closed by the server in %s",
			    smtpc_stage_name(stage_now(c)));
		else
			snprintf(why, sizeof why, "connection lost in %s: %s",
			    smtpc_stage_name(stage_now(c)), uv_strerror(status));
		lost(c, status == -EPROTO ? -EPROTO : -ECONNRESET, why);
	}
	smtpc_enter_state(c, ST_CLOSED);
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void
on_timer(uv_timer_t *t)
{
	struct smtpc *c = t->data;
	char why[128], d[32];

	switch (c->state) {
	case ST_CLOSED:
		if (c->conn != NULL)
			conn_abort(c->conn);
		return;
	case ST_QUIT:
		/* No 221 in time: close anyway. */
		quit_done(c);
		return;
	case ST_IDLE:
		return;
	case ST_TXN:
		if (c->tx.deferred) {
			txn_done(c, c->tx.fail, c->tx.fail_stage, SHUT_KEEP);
			return;
		}
		break;
	default:
		break;
	}
	snprintf(why, sizeof why, "timed out in %s after %s",
	    smtpc_stage_name(stage_now(c)),
	    str_duration(d, sizeof d, state_timeout(c)));
	lost(c, -ETIMEDOUT, why);
}

/* --- set-up -------------------------------------------------------------------- */

static void
on_connect(struct conn *conn, int status)
{
	struct smtpc *c = conn_data(conn);
	struct smtpc_reply r;

	if (c->state != ST_CONNECT)
		return;
	if (status < 0) {
		reply_set(&r, 0, "connect failed: %s", uv_strerror(status));
		setup_fail(c, status, SMTPC_CONNECT, &r, SHUT_ABORT);
		return;
	}
	str_copy(c->info.local_ip, conn_local_addr(conn), sizeof c->info.local_ip);
	wait_in(c, ST_GREETING);
}

static void
send_hello(struct smtpc *c, bool ehlo)
{
	cmd(c, ehlo ? "EHLO" : "HELO", c->helo);
	flush(c);
	c->rd.ehlo = ehlo;
	wait_in(c, ehlo ? ST_EHLO : ST_HELO);
}

static void
ready_ok(struct smtpc *c)
{
	struct smtpc_info *i = &c->info;
	const struct smtpreply_ehlo *e = &c->ehlo;
	const char *ve;

	i->tls = conn_tls_done(c->conn);
	i->tls_version = conn_tls_version(c->conn);
	i->tls_cipher = conn_tls_cipher(c->conn);
	i->tls_verified = conn_tls_verified(c->conn);
	ve = conn_tls_verify_error(c->conn);
	str_copy(i->tls_verify_error, ve != NULL ? ve : "", sizeof i->tls_verify_error);
	i->pipelining = e->ext & SMTPREPLY_EXT_PIPELINING;
	i->ext8bitmime = e->ext & SMTPREPLY_EXT_8BITMIME;
	i->smtputf8 = e->ext & SMTPREPLY_EXT_SMTPUTF8;
	i->dsn = e->ext & SMTPREPLY_EXT_DSN;
	i->enhancedstatuscodes = e->ext & SMTPREPLY_EXT_ENHANCEDSTATUSCODES;
	i->size_max = (e->ext & SMTPREPLY_EXT_SIZE) ? e->size_max : 0;
	uv_timer_stop(&c->timer);
	smtpc_enter_state(c, ST_IDLE);
	log_debug("smtpc", "ready", "host=%s peer=%s tls=%s verified=%d auth=%d pipelining=%d size_max=%" PRIu64,
	    c->host, i->peer, i->tls ? i->tls_version : "no", i->tls_verified,
	    i->authenticated, i->pipelining, i->size_max);
	ready_done(c, 0, c->auth ? SMTPC_AUTH : SMTPC_EHLO, &c->last);
}

static void
base64(const void *p, size_t len, char *dst, size_t size)
{
	if (size < (len + 2) / 3 * 4 + 1)
		log_panic("smtpc", "base64", "len=%zu size=%zu", len, size);
	EVP_EncodeBlock((unsigned char *)dst, p, (int)len);
}

/* AUTH PLAIN (RFC 4616: empty authzid, NUL, user, NUL, password) or LOGIN. */
static void
start_auth(struct smtpc *c)
{
	unsigned char msg[2 * SMTPC_CRED_MAX + 2];
	char b64[(sizeof msg + 2) / 3 * 4 + 1];
	char line[sizeof "AUTH PLAIN " + sizeof b64];
	size_t ul = strlen(c->user), pl = strlen(c->pass);

	if (!(c->ehlo.auth & SMTPREPLY_AUTH_PLAIN)) {
		cmd(c, "AUTH", "LOGIN");
		flush(c);
		wait_in(c, ST_AUTH_USER);
		return;
	}
	msg[0] = '\0';
	memcpy(msg + 1, c->user, ul);
	msg[1 + ul] = '\0';
	memcpy(msg + 2 + ul, c->pass, pl);
	base64(msg, ul + pl + 2, b64, sizeof b64);
	snprintf(line, sizeof line, "AUTH PLAIN %s", b64);
	if (strlen(line) + 2 <= SMTPC_LINE_MAX) {
		cmd_secret(c, line, "AUTH PLAIN ****");
		wait_in(c, ST_AUTH);
	} else {
		cmd(c, "AUTH", "PLAIN");
		flush(c);
		wait_in(c, ST_AUTH_PLAIN);
	}
	explicit_bzero(msg, sizeof msg);
	explicit_bzero(b64, sizeof b64);
	explicit_bzero(line, sizeof line);
}

/* The response to a 334 in the AUTH exchange. */
static void
auth_respond(struct smtpc *c)
{
	unsigned char msg[2 * SMTPC_CRED_MAX + 2];
	char b64[(sizeof msg + 2) / 3 * 4 + 1];
	size_t ul = strlen(c->user), pl = strlen(c->pass);

	switch (c->state) {
	case ST_AUTH_PLAIN:
		msg[0] = '\0';
		memcpy(msg + 1, c->user, ul);
		msg[1 + ul] = '\0';
		memcpy(msg + 2 + ul, c->pass, pl);
		base64(msg, ul + pl + 2, b64, sizeof b64);
		cmd_secret(c, b64, "****");
		wait_in(c, ST_AUTH);
		break;
	case ST_AUTH_USER:
		base64(c->user, ul, b64, sizeof b64);
		cmd_secret(c, b64, "****");
		wait_in(c, ST_AUTH_PASS);
		break;
	default:
		base64(c->pass, pl, b64, sizeof b64);
		cmd_secret(c, b64, "****");
		wait_in(c, ST_AUTH);
		break;
	}
	explicit_bzero(msg, sizeof msg);
	explicit_bzero(b64, sizeof b64);
}

/* After EHLO or HELO: STARTTLS, AUTH or ready. */
static void
after_hello(struct smtpc *c)
{
	struct smtpc_reply r;
	bool tls = conn_tls_done(c->conn);

	if (!tls && c->tls != NULL && (c->ehlo.ext & SMTPREPLY_EXT_STARTTLS)) {
		cmd(c, "STARTTLS", NULL);
		flush(c);
		wait_in(c, ST_STARTTLS);
		return;
	}
	if (!tls && c->require_tls) {
		reply_set(&r, 0, "STARTTLS not offered and TLS is required");
		setup_fail(c, -EPROTONOSUPPORT, SMTPC_STARTTLS, &r, SHUT_QUIT);
		return;
	}
	if (c->auth) {
		if (!tls) {
			reply_set(&r, 0, "STARTTLS not offered: AUTH is never sent in plaintext");
			setup_fail(c, -EPROTONOSUPPORT, SMTPC_AUTH, &r, SHUT_QUIT);
			return;
		}
		if (!(c->ehlo.ext & SMTPREPLY_EXT_AUTH) ||
		    !(c->ehlo.auth & (SMTPREPLY_AUTH_PLAIN | SMTPREPLY_AUTH_LOGIN))) {
			reply_set(&r, 0, "AUTH PLAIN or LOGIN not offered");
			setup_fail(c, -EPROTONOSUPPORT, SMTPC_AUTH, &r, SHUT_QUIT);
			return;
		}
		start_auth(c);
		return;
	}
	ready_ok(c);
}

static void
on_tls(struct conn *conn, int status)
{
	struct smtpc *c = conn_data(conn);

	if (c->state != ST_TLS)
		return;
	if (status < 0) {
		lost(c, status == -EPROTO ? -EPROTO : -ECONNRESET,
		    status == -EPROTO ? "TLS handshake failed" :
		    "connection lost during the TLS handshake");
		return;
	}
	/* RFC 3207 4.2: forget what the server said before; ask again. */
	memset(&c->ehlo, 0, sizeof c->ehlo);
	send_hello(c, true);
}

/* A reply during the set-up. */
static void
setup_reply(struct smtpc *c)
{
	struct smtpc_reply r;
	int code = c->rd.r.code;
	int rc;

	reply_take(c, &r);
	c->last = r;
	switch (c->state) {
	case ST_GREETING:
		if (code == 220)
			send_hello(c, true);
		else
			setup_fail(c, -EREMOTEIO, SMTPC_GREETING, &r, SHUT_QUIT);
		break;
	case ST_EHLO:
		c->rd.ehlo = false;
		if (code / 100 == 2) {
			c->ehlo = c->rd.r.ehlo;
			c->info.esmtp = true;
			after_hello(c);
		} else if (code / 100 == 5) {
			/* RFC 5321 3.2: an old server; go on without extensions. */
			send_hello(c, false);
		} else {
			setup_fail(c, -EREMOTEIO, SMTPC_EHLO, &r, SHUT_QUIT);
		}
		break;
	case ST_HELO:
		if (code / 100 == 2) {
			memset(&c->ehlo, 0, sizeof c->ehlo);
			c->info.esmtp = false;
			after_hello(c);
		} else {
			setup_fail(c, -EREMOTEIO, SMTPC_EHLO, &r, SHUT_QUIT);
		}
		break;
	case ST_STARTTLS:
		if (code != 220) {
			setup_fail(c, -EPROTO, SMTPC_STARTTLS, &r, SHUT_QUIT);
			break;
		}
		/* The caller drops the rest of this read (RFC 3207 4, conn.h). */
		smtpreply_init(&c->rd);
		if ((rc = conn_start_tls(c->conn, c->tls, false, c->host, true)) < 0) {
			reply_set(&r, 0, "TLS could not start: %s", uv_strerror(rc));
			setup_fail(c, -EPROTO, SMTPC_TLS, &r, SHUT_ABORT);
			break;
		}
		wait_in(c, ST_TLS);
		break;
	case ST_AUTH:
		if (code == 235) {
			c->info.authenticated = true;
			ready_ok(c);
		} else {
			/* After a 334 the server waits for a response, not QUIT. */
			setup_fail(c, -EACCES, SMTPC_AUTH, &r,
			    code == 334 ? SHUT_ABORT : SHUT_QUIT);
		}
		break;
	case ST_AUTH_PLAIN:
	case ST_AUTH_USER:
	case ST_AUTH_PASS:
		if (code == 334)
			auth_respond(c);
		else
			setup_fail(c, -EACCES, SMTPC_AUTH, &r, SHUT_QUIT);
		break;
	default:
		/* ST_TLS: nothing can be read between STARTTLS and the handshake. */
		lost(c, -EPROTO, "unexpected reply");
		break;
	}
}

int
smtpc_open(struct smtpc **out, const struct smtpc_opts *o, smtpc_ready_cb *cb,
    void *arg)
{
	struct smtpc *c;
	int r;

	*out = NULL;
	if (o == NULL || o->loop == NULL || o->addr == NULL || cb == NULL ||
	    !name_ok(o->host) || !name_ok(o->helo))
		return -EINVAL;
	if ((o->require_tls || o->auth_user != NULL || o->auth_pass != NULL) &&
	    o->tls == NULL)
		return -EINVAL;
	if ((o->auth_user == NULL) != (o->auth_pass == NULL))
		return -EINVAL;
	if (o->auth_user != NULL && (o->auth_user[0] == '\0' || o->auth_pass[0] == '\0' ||
	    strlen(o->auth_user) > SMTPC_CRED_MAX || strlen(o->auth_pass) > SMTPC_CRED_MAX))
		return -EINVAL;
	c = xcalloc(1, sizeof *c);
	c->loop = o->loop;
	c->require_tls = o->require_tls;
	str_copy(c->host, o->host, sizeof c->host);
	str_copy(c->helo, o->helo, sizeof c->helo);
	if (o->auth_user != NULL) {
		c->auth = true;
		str_copy(c->user, o->auth_user, sizeof c->user);
		str_copy(c->pass, o->auth_pass, sizeof c->pass);
	}
	c->connect_ms = o->connect_ms ? o->connect_ms : DEFAULT_CONNECT_MS;
	c->greeting_ms = o->greeting_ms ? o->greeting_ms : DEFAULT_GREETING_MS;
	c->command_ms = o->command_ms ? o->command_ms : DEFAULT_COMMAND_MS;
	c->data_init_ms = o->data_init_ms ? o->data_init_ms : DEFAULT_DATA_INIT_MS;
	c->data_block_ms = o->data_block_ms ? o->data_block_ms : DEFAULT_DATA_BLOCK_MS;
	c->data_end_ms = o->data_end_ms ? o->data_end_ms : DEFAULT_DATA_END_MS;
	c->quit_ms = c->command_ms < SMTPC_QUIT_WAIT_MS ? c->command_ms : SMTPC_QUIT_WAIT_MS;
	c->ready_cb = cb;
	c->ready_arg = arg;
	c->state = ST_CONNECT;
	smtpreply_init(&c->rd);
	buf_init(&c->out);
	peer_string(c->info.peer, sizeof c->info.peer, o->addr);
	if ((r = conn_connect(&c->conn, o->loop, o->addr, o->bind_addr,
	    &smtpc_conn_ops, c)) < 0) {
		explicit_bzero(c->pass, sizeof c->pass);
		free(c);
		return r;
	}
	if (o->tls != NULL) {
		SSL_CTX_up_ref(o->tls);
		c->tls = o->tls;
	}
	/* uv_timer_init() only fails on a bad loop, which conn_connect() used. */
	uv_timer_init(o->loop, &c->timer);
	c->timer.data = c;
	arm(c, c->connect_ms);
	log_debug("smtpc", "connect", "host=%s peer=%s tls=%s auth=%d", c->host,
	    c->info.peer, c->tls == NULL ? "never" : c->require_tls ? "required" :
	    "opportunistic", c->auth);
	*out = c;
	return 0;
}

/* --- transactions ---------------------------------------------------------------- */

static void
append_notify(struct buf *b, unsigned notify)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ NOTIFY_SUCCESS, "SUCCESS" },
		{ NOTIFY_FAILURE, "FAILURE" },
		{ NOTIFY_DELAY, "DELAY" },
	};
	const char *sep = "";

	buf_appends(b, " NOTIFY=");
	if (notify & NOTIFY_NEVER) {
		buf_appends(b, "NEVER");
		return;
	}
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (notify & names[i].bit) {
			buf_appends(b, sep);
			buf_appends(b, names[i].name);
			sep = ",";
		}
	}
}

/* The command of step s into c->out. */
static void
step_add(struct smtpc *c, size_t s)
{
	const struct smtpc_txn *t = &c->tx.t;
	size_t start = c->out.len;
	bool dsn = c->ehlo.ext & SMTPREPLY_EXT_DSN;

	if (s == STEP_RSET) {
		cmd(c, "RSET", NULL);
		return;
	}
	if (s >= STEP_RCPT0 + t->nrcpt) {
		cmd(c, "DATA", NULL);
		return;
	}
	if (s == STEP_MAIL) {
		buf_appendf(&c->out, "MAIL FROM:<%s>", t->mail_from);
		if ((c->ehlo.ext & SMTPREPLY_EXT_SIZE) && t->size > 0)
			buf_appendf(&c->out, " SIZE=%" PRIu64, t->size);
		if (t->body8bit)
			buf_appends(&c->out, " BODY=8BITMIME");
		if (t->smtputf8)
			buf_appends(&c->out, " SMTPUTF8");
		if (dsn && t->ret == RET_FULL)
			buf_appends(&c->out, " RET=FULL");
		else if (dsn && t->ret == RET_HDRS)
			buf_appends(&c->out, " RET=HDRS");
		if (dsn && t->envid != NULL && t->envid[0] != '\0') {
			buf_appends(&c->out, " ENVID=");
			xtext_append(&c->out, t->envid);
		}
	} else {
		const struct smtpc_rcpt *r = &t->rcpt[s - STEP_RCPT0];

		buf_appendf(&c->out, "RCPT TO:<%s>", r->addr);
		if (dsn && r->notify != 0)
			append_notify(&c->out, r->notify);
		if (dsn && r->orcpt != NULL) {
			const char *semi = strchr(r->orcpt, ';');

			/* addr-type ";" xtext (RFC 3461 4.2); checked by smtpc_send. */
			buf_appends(&c->out, " ORCPT=");
			buf_append(&c->out, r->orcpt, (size_t)(semi - r->orcpt) + 1);
			xtext_append(&c->out, semi + 1);
		}
	}
	buf_appends(&c->out, "\r\n");
	trace_out(c, start);
}

static size_t
step_data(const struct smtpc *c)
{
	return STEP_RCPT0 + c->tx.t.nrcpt;
}

/*
 * body_fill - format the next chunk of message data into c->out: a '.'
 * that starts a line (after any LF, across pieces) is doubled (RFC 5321
 * 4.5.2).  Returns true when the data is all in and the end "." CRLF
 * (after a CRLF when the data lacks one) was added.
 */
static bool
body_fill(struct smtpc *c)
{
	struct smtpc_tx *x = &c->tx;

	while (c->out.len < SMTPC_CHUNK && x->piece < x->t.npieces) {
		const struct iovec *v = &x->t.pieces[x->piece];
		const char *p = (const char *)v->iov_base + x->off;
		size_t n = v->iov_len - x->off, room = SMTPC_CHUNK - c->out.len, k;
		const char *lf;

		if (n == 0) {
			x->piece++;
			x->off = 0;
			continue;
		}
		if (x->bol && p[0] == '.')
			buf_appendc(&c->out, '.');
		if (n > room)
			n = room;
		lf = memchr(p, '\n', n);
		k = lf != NULL ? (size_t)(lf - p) + 1 : n;
		buf_append(&c->out, p, k);
		x->bol = lf != NULL;
		if (k >= 2) {
			x->tail[0] = p[k - 2];
			x->tail[1] = p[k - 1];
		} else {
			x->tail[0] = x->tail[1];
			x->tail[1] = p[0];
		}
		x->ndata += k;
		x->off += k;
	}
	if (x->piece < x->t.npieces)
		return false;
	if (x->ndata > 0 && (x->tail[0] != '\r' || x->tail[1] != '\n'))
		buf_appends(&c->out, "\r\n");
	buf_appends(&c->out, ".\r\n");
	return true;
}

/*
 * body_pump - hand chunks to the conn while little is queued, at most
 * SMTPC_HIGH_WATER bytes a call so that one fast peer does not hold the
 * loop (the kernel may take megabytes at once); on_drain calls again
 * once the conn has written them.  Each call is progress: the data block
 * timer restarts.
 */
static void
body_pump(struct smtpc *c)
{
	size_t budget = SMTPC_HIGH_WATER;

	arm(c, c->data_block_ms);
	while (c->state == ST_BODY && c->conn != NULL && budget > 0 &&
	    conn_pending(c->conn) < SMTPC_HIGH_WATER) {
		bool end = body_fill(c);

		budget -= c->out.len < budget ? c->out.len : budget;
		if (conn_write(c->conn, c->out.data, c->out.len) < 0) {
			/* The conn is closing: on_close reports it. */
			buf_reset(&c->out);
			return;
		}
		buf_reset(&c->out);
		if (end) {
			log_debug("smtpc", "data_sent", "host=%s peer=%s bytes=%" PRIu64,
			    c->host, c->info.peer, c->tx.ndata);
			buf_free(&c->out);
			wait_in(c, ST_DOT);
			return;
		}
	}
}

static void
body_start(struct smtpc *c)
{
	struct smtpc_tx *x = &c->tx;

	x->piece = 0;
	x->off = 0;
	x->bol = true;
	x->ndata = 0;
	x->tail[0] = x->tail[1] = '\0';
	smtpc_enter_state(c, ST_BODY);
	body_pump(c);
}

/* End the transaction with the failure decided. */
static void
tx_finish_failed(struct smtpc *c)
{
	txn_done(c, c->tx.fail, c->tx.fail_stage, c->tx.fail_how);
}

/* A reply to one of the transaction's commands. */
static void
txn_reply(struct smtpc *c)
{
	struct smtpc_tx *x = &c->tx;
	struct smtpc_reply r;
	size_t s = x->next_reply, data = step_data(c);
	int code = c->rd.r.code;
	bool ok = code / 100 == 2, failed = x->fail != 0;

	if (x->deferred || s >= x->next_send) {
		lost(c, -EPROTO, "reply to no command");
		return;
	}
	reply_take(c, &r);
	x->next_reply++;
	if (s == STEP_RSET) {
		if (!ok && !failed) {
			x->res.mail = r;
			tx_fail(c, -EREMOTEIO, SMTPC_RSET, "RSET refused");
			/* The server's state is in doubt: do not reuse it. */
			x->fail_how = SHUT_QUIT;
		}
	} else if (s == STEP_MAIL) {
		if (!failed) {
			x->res.mail = r;
			if (!ok)
				tx_fail(c, -EREMOTEIO, SMTPC_MAIL, "MAIL refused");
		}
	} else if (s < data) {
		if (!failed) {
			x->res.rcpt[s - STEP_RCPT0] = r;
			if (ok)
				x->nok++;
			if (s == data - 1 && x->nok == 0)
				tx_fail(c, -ENOENT, SMTPC_RCPT, "no recipient accepted");
		}
	} else {
		if (x->fail == 0) {
			x->res.data = r;
			if (code == 354) {
				body_start(c);
				return;
			}
			tx_fail(c, -EREMOTEIO, SMTPC_DATA, "DATA refused");
		} else if (code == 354) {
			/* RFC 2920 3.1: DATA accepted although nothing may follow: a lone dot. */
			cmd(c, ".", NULL);
			flush(c);
			wait_in(c, ST_EMPTYDOT);
			return;
		}
		tx_finish_failed(c);
		return;
	}
	if (code == 421) {
		/* The server is closing (RFC 5321 3.8): the other replies will not come. */
		tx_fail(c, -EREMOTEIO, step_stage(c, s), "server closing the connection (421)");
		txn_done(c, x->fail, x->fail_stage, SHUT_CLOSE);
		return;
	}
	if (!c->info.pipelining) {
		if (x->fail != 0) {
			tx_finish_failed(c);
			return;
		}
		step_add(c, x->next_send++);
		flush(c);
	}
	arm(c, state_timeout(c));
}

/* A reply while the message data is sent, or after the final dot. */
static void
data_reply(struct smtpc *c)
{
	struct smtpc_tx *x = &c->tx;
	struct smtpc_reply r;
	enum shut_how how = c->rd.r.code == 421 ? SHUT_CLOSE : SHUT_KEEP;

	reply_take(c, &r);
	switch (c->state) {
	case ST_BODY:
		/* Early: the server gave up on the data; we are out of step. */
		x->res.data = r;
		tx_fail(c, -EREMOTEIO, SMTPC_DATA, "reply while the message data was sent");
		txn_done(c, x->fail, x->fail_stage, SHUT_ABORT);
		break;
	case ST_DOT:
		x->res.data = r;
		txn_done(c, 0, SMTPC_DOT, how);
		break;
	default: /* ST_EMPTYDOT */
		txn_done(c, x->fail, x->fail_stage, how == SHUT_KEEP ? x->fail_how : how);
		break;
	}
}

/* Refuse the transaction before anything is sent: reported from the timer. */
static void
tx_refuse(struct smtpc *c, int status, int code, const char *why, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
tx_refuse(struct smtpc *c, int status, int code, const char *why, const char *fmt, ...)
{
	struct smtpc_tx *x = &c->tx;
	va_list ap;

	tx_fail(c, status, SMTPC_MAIL, why);
	x->res.mail.code = code;
	va_start(ap, fmt);
	vsnprintf(x->res.mail.text, sizeof x->res.mail.text, fmt, ap);
	va_end(ap);
	x->deferred = true;
	uv_timer_start(&c->timer, on_timer, 0, 0);
}

static int
txn_check(const struct smtpc_txn *t)
{
	if (t == NULL || t->mail_from == NULL || t->nrcpt == 0 || t->rcpt == NULL ||
	    (t->npieces > 0 && t->pieces == NULL))
		return -EINVAL;
	if (t->nrcpt > SMTPC_RCPT_MAX)
		return -E2BIG;
	if (!text_ok(t->mail_from, SMTPC_ADDR_MAX) ||
	    (t->envid != NULL && !text_ok(t->envid, SMTPC_ENVID_MAX)))
		return -EINVAL;
	for (size_t i = 0; i < t->nrcpt; i++) {
		const struct smtpc_rcpt *r = &t->rcpt[i];

		if (r->addr == NULL || r->addr[0] == '\0' || !text_ok(r->addr, SMTPC_ADDR_MAX))
			return -EINVAL;
		if (r->orcpt != NULL && (!text_ok(r->orcpt, SMTPC_ORCPT_MAX) ||
		    strchr(r->orcpt, ';') == NULL))
			return -EINVAL;
	}
	for (size_t i = 0; i < t->npieces; i++)
		if (t->pieces[i].iov_len > 0 && t->pieces[i].iov_base == NULL)
			return -EINVAL;
	return 0;
}

int
smtpc_send(struct smtpc *c, const struct smtpc_txn *t, smtpc_txn_cb *cb,
    void *arg)
{
	struct smtpc_tx *x = &c->tx;
	const struct smtpreply_ehlo *e = &c->ehlo;
	size_t first, data;
	int r;

	if ((r = txn_check(t)) < 0)
		return r;
	if (cb == NULL)
		return -EINVAL;
	if (!smtpc_usable(c))
		return -EBUSY;
	free(x->res.rcpt);
	memset(x, 0, sizeof *x);
	x->t = *t;
	x->cb = cb;
	x->arg = arg;
	x->res.rcpt = xcalloc(t->nrcpt, sizeof *x->res.rcpt);
	x->start_ms = uv_now(c->loop);
	x->fail_how = SHUT_KEEP;
	c->tx_active = true;
	smtpc_enter_state(c, ST_TXN);
	x->next_send = x->next_reply = first = c->need_rset ? STEP_RSET : STEP_MAIL;

	/* What this server cannot take fails here, before MAIL. */
	if (t->smtputf8 && !(e->ext & SMTPREPLY_EXT_SMTPUTF8)) {
		tx_refuse(c, -EPROTONOSUPPORT, 553, "server lacks SMTPUTF8",
		    "553 5.6.7 The server %s does not support SMTPUTF8, which the message needs",
		    c->host);
		return 0;
	}
	if (t->body8bit && !(e->ext & SMTPREPLY_EXT_8BITMIME)) {
		tx_refuse(c, -EPROTONOSUPPORT, 450, "server lacks 8BITMIME",
		    "450 4.6.3 The server %s does not support 8BITMIME and the message is not converted",
		    c->host);
		return 0;
	}
	if ((e->ext & SMTPREPLY_EXT_SIZE) && e->size_max > 0 && t->size > e->size_max) {
		tx_refuse(c, -EMSGSIZE, 552, "message larger than the server's SIZE",
		    "552 5.3.4 Message size exceeds fixed maximum message size of %s (%" PRIu64
		    " > %" PRIu64 " bytes)", c->host, t->size, e->size_max);
		return 0;
	}

	c->need_rset = true;
	c->info.transactions++;
	data = step_data(c);
	if (c->info.pipelining) {
		/* RFC 2920 3.1: RSET, MAIL and RCPT anywhere in a group, DATA last. */
		for (size_t s = first; s <= data; s++)
			step_add(c, s);
		x->next_send = data + 1;
	} else {
		step_add(c, first);
		x->next_send = first + 1;
	}
	flush(c);
	arm(c, state_timeout(c));
	return 0;
}

/* --- input ------------------------------------------------------------------------ */

/*
 * on_reply - one complete reply.  Returns false when the rest of the
 * read must be dropped (the STARTTLS switch, or closing).
 */
static bool
on_reply(struct smtpc *c)
{
	trace(c, "recv", c->rd.r.text, c->rd.r.textlen);
	switch (c->state) {
	case ST_GREETING:
	case ST_EHLO:
	case ST_HELO:
	case ST_STARTTLS:
	case ST_TLS:
	case ST_AUTH:
	case ST_AUTH_PLAIN:
	case ST_AUTH_USER:
	case ST_AUTH_PASS:
		setup_reply(c);
		return c->state != ST_TLS;
	case ST_TXN:
		txn_reply(c);
		break;
	case ST_BODY:
	case ST_DOT:
	case ST_EMPTYDOT:
		data_reply(c);
		break;
	case ST_QUIT:
		/* 221 or not, we are done. */
		quit_done(c);
		return false;
	case ST_IDLE:
		if (c->rd.r.code == 421) {
			/* RFC 5321 3.8: the server shuts an idle connection. */
			shut(c, SHUT_CLOSE);
		} else {
			log_debug("smtpc", "unexpected_reply", "host=%s peer=%s code=%d",
			    c->host, c->info.peer, c->rd.r.code);
			shut(c, SHUT_ABORT);
		}
		return false;
	default:
		return false;
	}
	return true;
}

static void
on_read(struct conn *conn, const char *data, size_t len)
{
	struct smtpc *c = conn_data(conn);
	char why[128];
	size_t used;
	int rc;

	while (len > 0 && c->state != ST_CLOSED && c->conn != NULL &&
	    !conn_is_closing(c->conn)) {
		rc = smtpreply_feed(&c->rd, data, len, &used);
		if (rc == SMTPREPLY_MORE)
			return;
		if (rc < 0) {
			snprintf(why, sizeof why, "malformed reply: %s", c->rd.why);
			if (c->state == ST_QUIT)
				shut(c, SHUT_ABORT);
			else
				lost(c, -EPROTO, why);
			return;
		}
		data += used;
		len -= used;
		if (!on_reply(c))
			return;
	}
}

static void
on_drain(struct conn *conn)
{
	struct smtpc *c = conn_data(conn);

	/* Also after TLS's own output: only the data transfer cares. */
	if (c->state == ST_BODY)
		body_pump(c);
}

/* --- the rest of the API -------------------------------------------------------- */

const struct smtpc_info *
smtpc_info(const struct smtpc *c)
{
	return &c->info;
}

bool
smtpc_usable(const struct smtpc *c)
{
	return c->state == ST_IDLE && c->conn != NULL && !conn_is_closing(c->conn);
}

void
smtpc_on_close(struct smtpc *c, void (*closed_cb)(void *arg, struct smtpc *c),
    void *arg)
{
	c->closed_cb = closed_cb;
	c->closed_arg = arg;
}

void
smtpc_quit(struct smtpc *c)
{
	c->ready_cb = NULL;
	c->tx.cb = NULL;
	if (c->state == ST_QUIT || c->state == ST_CLOSED)
		return;
	shut(c, c->state == ST_IDLE ? SHUT_QUIT : SHUT_ABORT);
}

void
smtpc_abort(struct smtpc *c)
{
	c->ready_cb = NULL;
	c->tx.cb = NULL;
	shut(c, SHUT_ABORT);
}
