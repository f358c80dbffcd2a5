/*
 * smtpd - the submission server: listeners, sessions, their input loop,
 * timers, TLS and an orderly stop.  Commands are in smtpd_cmd.c, the end
 * of DATA in smtpd_msg.c.  See smtpd.h and smtpd_int.h.
 *
 * Input is processed as it comes, command by command (RFC 2920
 * pipelining): replies collect in s->out and go out in one write when the
 * input runs dry or a command has to wait (password check, enqueue,
 * STARTTLS).  While a session waits, its unread input stays buffered;
 * past SMTPD_INPUT_MAX the connection stops reading until it goes on.
 */
#include "relay/smtpd_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conn.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/str.h"
#include "core/tlsctx.h"
#include "core/xmalloc.h"

#define IPCOUNT_BUCKETS 1024

struct smtpd_ipcount {
	struct smtpd_ipcount *next;
	unsigned n;
	char ip[64];
};

struct listen_arg {
	struct smtpd *srv;
	enum smtpd_listener_kind kind;
};

static struct listen_arg listen_args[2];

static void process_input(struct smtpd_session *s);
static void maybe_stopped(struct smtpd *srv);

static const char *const state_names[] = {
	[SMTPD_TLS_WAIT] = "tls-wait",
	[SMTPD_GREET] = "greet",
	[SMTPD_READY] = "ready",
	[SMTPD_MAIL] = "mail",
	[SMTPD_RCPT] = "rcpt",
	[SMTPD_DATA] = "data",
	[SMTPD_QUEUING] = "queuing",
	[SMTPD_AUTH_PLAIN] = "auth-plain",
	[SMTPD_AUTH_USER] = "auth-user",
	[SMTPD_AUTH_PASS] = "auth-pass",
	[SMTPD_AUTH_CHECK] = "auth-check",
	[SMTPD_USER_FETCH] = "user-fetch",
	[SMTPD_RCPT_CHECK] = "rcpt-check",
	[SMTPD_STARTTLS] = "starttls",
	[SMTPD_CLOSING] = "closing",
};

const char *
smtpd__strstate(enum smtpd_state st)
{
	return (unsigned)st < sizeof state_names / sizeof state_names[0] ? state_names[st] : "?";
}

void
smtpd__enter_state(struct smtpd_session *s, enum smtpd_state st)
{
	/*
	 * Closing is final: an answer that arrives after the 421 (password
	 * check, enqueue) must not bring back a state that reads commands.
	 */
	if (s->state == st || s->state == SMTPD_CLOSING)
		return;
	log_debug("smtpd", "state", "sid=%s from=%s to=%s", s->sid,
	    smtpd__strstate(s->state), smtpd__strstate(st));
	s->state = st;
}

/* --- connections per client address -------------------------------------- */

static unsigned
ip_hash(const char *ip)
{
	uint32_t h = 2166136261u;

	for (; *ip; ip++)
		h = (h ^ (unsigned char)*ip) * 16777619u;
	return h % IPCOUNT_BUCKETS;
}

/* Count one more connection from ip; false (not counted) over the limit. */
static bool
ip_take(struct smtpd *srv, const char *ip)
{
	struct smtpd_ipcount **b = (struct smtpd_ipcount **)srv->ipcounts + ip_hash(ip);
	struct smtpd_ipcount *e;

	for (e = *b; e != NULL; e = e->next) {
		if (strcmp(e->ip, ip) == 0) {
			if (e->n >= srv->cfg->relay.max_connections_per_ip)
				return false;
			e->n++;
			return true;
		}
	}
	e = xcalloc(1, sizeof *e);
	str_copy(e->ip, ip, sizeof e->ip);
	e->n = 1;
	e->next = *b;
	*b = e;
	return true;
}

static void
ip_release(struct smtpd *srv, const char *ip)
{
	struct smtpd_ipcount **p = (struct smtpd_ipcount **)srv->ipcounts + ip_hash(ip);

	for (; *p != NULL; p = &(*p)->next) {
		if (strcmp((*p)->ip, ip) == 0) {
			if (--(*p)->n == 0) {
				struct smtpd_ipcount *e = *p;

				*p = e->next;
				free(e);
			}
			return;
		}
	}
}

/* --- replies ----------------------------------------------------------------- */

void
smtpd__reply(struct smtpd_session *s, const char *fmt, ...)
{
	va_list ap;
	char line[1024];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 3)
		n = (int)sizeof line - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	buf_append(&s->out, line, (size_t)n);
	if (line[0] >= '4' && line[3] == ' ')
		log_debug("smtpd", "reply", "sid=%s code=%.3s", s->sid, line);
}

void
smtpd__flush(struct smtpd_session *s)
{
	if (s->out.len == 0 || s->conn == NULL)
		return;
	if (conn_write(s->conn, s->out.data, s->out.len) < 0) {
		buf_reset(&s->out);
		return;
	}
	buf_reset(&s->out);
	/* A client that sends commands but never reads the replies. */
	if (conn_pending(s->conn) > SMTPD_OUTPUT_MAX) {
		log_warn("smtpd", "output_overflow", "sid=%s client=%s action=dropped", s->sid, s->client);
		conn_abort(s->conn);
	}
}

/* --- refusals ------------------------------------------------------------------ */

void
smtpd__refuse(struct smtpd_session *s, const struct policy_result *res, const char *extra)
{
	char ctx[1024];

	snprintf(ctx, sizeof ctx, "sid=%s client=%s user=%s%s%s", s->sid, s->client,
	    s->has_user ? s->user.name : "-", extra != NULL ? " " : "", extra != NULL ? extra : "");
	if (s->srv->policy != NULL)
		policy_refused(s->srv->policy, res, ctx);
	else
		log_warn("policy", "refused", "rule=%s reply=\"%s\" %s",
		    res->rule != NULL ? res->rule : "-", res->reply, ctx);
	smtpd__reply(s, "%s", res->reply);
}

void
smtpd__policy_down(struct smtpd_session *s, const char *what, int status)
{
	log_warn("smtpd", "policy_unavailable", "sid=%s client=%s user=%s what=%s error=\"%s\" hint=\"check Redis; the client was told to retry\"",
	    s->sid, s->client, s->has_user ? s->user.name : "-", what, uv_strerror(status));
	/* Never accept what could not be checked. */
	smtpd__reply(s, "451 4.3.0 Policy service unavailable, try again later");
}

/* --- life of a session --------------------------------------------------- */

void
smtpd__ref(struct smtpd_session *s)
{
	s->refs++;
}

static void
session_free(struct smtpd_session *s)
{
	struct smtpd *srv = s->srv;

	buf_free(&s->in);
	buf_free(&s->out);
	buf_free(&s->body);
	buf_free(&s->dropped);
	envelope_free(&s->env);
	explicit_bzero(s->auth_name, sizeof s->auth_name);
	explicit_bzero(s->auth_pass, sizeof s->auth_pass);
	free(s);
	srv->nalive--;
	maybe_stopped(srv);
}

void
smtpd__unref(struct smtpd_session *s)
{
	if (s->refs == 0)
		log_panic("smtpd", "unref", "sid=%s", s->sid);
	if (--s->refs == 0)
		session_free(s);
}

static void
on_timer_closed(uv_handle_t *h)
{
	smtpd__unref(h->data);
}

void
smtpd__close(struct smtpd_session *s)
{
	if (s->conn == NULL)
		return;
	smtpd__enter_state(s, SMTPD_CLOSING);
	smtpd__flush(s);
	/* The graceful close waits for a peer that may never read (conn.h): not forever. */
	smtpd__arm_timer(s, s->srv->cfg->relay.command_timeout_ms);
	conn_close(s->conn);
}

static void
on_timeout(uv_timer_t *t)
{
	struct smtpd_session *s = t->data;
	const char *what = s->state == SMTPD_DATA ? "data" : "command";

	if (s->conn == NULL)
		return;
	if (s->state == SMTPD_CLOSING) {
		log_info("smtpd", "close_timeout", "sid=%s client=%s action=aborted", s->sid, s->client);
		conn_abort(s->conn);
		return;
	}
	log_info("smtpd", "timeout", "sid=%s client=%s state=%s what=%s", s->sid, s->client,
	    smtpd__strstate(s->state), what);
	smtpd__reply(s, "421 4.4.2 %s Timeout exceeded, closing connection",
	    s->srv->cfg->server.hostname);
	smtpd__close(s);
}

void
smtpd__arm_timer(struct smtpd_session *s, uint64_t ms)
{
	if (s->timer_open)
		uv_timer_start(&s->timer, on_timeout, ms, 0);
}

void
smtpd__reset_transaction(struct smtpd_session *s)
{
	envelope_free(&s->env);
	memset(&s->from, 0, sizeof s->from);
	memset(&s->mp, 0, sizeof s->mp);
	buf_free(&s->body);
	buf_free(&s->dropped);
	s->ndropped = 0;
	s->rcpt_refused = 0;
}

/*
 * on_close - the connection is gone: account for it, stop the timer, and
 * drop the connection's reference (an answer still pending keeps the
 * session until it arrives).
 */
static void
on_close(struct conn *c, int status)
{
	struct smtpd_session *s = conn_data(c);
	struct smtpd *srv;

	(void)status;
	if (s == NULL)
		return;   /* a refused connection */
	srv = s->srv;
	s->conn = NULL;
	smtpd__enter_state(s, SMTPD_CLOSING);
	if (s->auth_pending) {
		auth_cancel(srv->auth, s->auth_req);
		s->auth_pending = false;
		smtpd__unref(s);
	}
	log_info("smtpd", "disconnect", "sid=%s client=%s commands=%u messages=%" PRIu64 " duration_ms=%" PRIu64,
	    s->sid, s->client, s->commands, s->msgs, uv_now(srv->loop) - s->started_ms);
	if (s->client[0] != '\0')
		ip_release(srv, s->client);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->nsessions--;
	if (s->timer_open) {
		s->timer_open = false;
		uv_close((uv_handle_t *)&s->timer, on_timer_closed);
	}
	smtpd__unref(s);
}

static void
banner(struct smtpd_session *s)
{
	smtpd__reply(s, "220 %s ESMTP kurier", s->srv->cfg->server.hostname);
	smtpd__enter_state(s, SMTPD_GREET);
	smtpd__arm_timer(s, s->srv->cfg->relay.command_timeout_ms);
}

static void
on_tls(struct conn *c, int status)
{
	struct smtpd_session *s = conn_data(c);

	if (s == NULL)
		return;
	if (status < 0) {
		/* The conn logged the reason and closes itself. */
		log_info("smtpd", "tls_failed", "sid=%s client=%s", s->sid, s->client);
		return;
	}
	s->tls = true;
	log_info("smtpd", "tls", "sid=%s client=%s version=%s cipher=%s", s->sid, s->client,
	    conn_tls_version(c), conn_tls_cipher(c));
	if (s->state == SMTPD_TLS_WAIT) {
		banner(s);
	} else {
		/* RFC 3207 4.2: forget everything from before; EHLO again. */
		s->esmtp = false;
		s->helo[0] = '\0';
		smtpd__reset_transaction(s);
		smtpd__enter_state(s, SMTPD_GREET);
		smtpd__arm_timer(s, s->srv->cfg->relay.command_timeout_ms);
	}
	smtpd__flush(s);
	process_input(s);
}

void
smtpd__start_tls(struct smtpd_session *s)
{
	smtpd__flush(s);
	/*
	 * Whatever the client sent after STARTTLS, before the handshake, is
	 * dropped unread: pipelined plaintext must not become commands of the
	 * TLS session (CVE-2011-0411 and its kin).
	 */
	buf_reset(&s->in);
	smtpd__enter_state(s, SMTPD_STARTTLS);
	if (conn_start_tls(s->conn, s->srv->tls, true, NULL, false) < 0) {
		log_warn("smtpd", "tls_start_failed", "sid=%s client=%s", s->sid, s->client);
		conn_abort(s->conn);
	}
}

static void
on_read(struct conn *c, const char *data, size_t len)
{
	struct smtpd_session *s = conn_data(c);

	if (s == NULL || s->state == SMTPD_CLOSING)
		return;
	if (s->state == SMTPD_STARTTLS || s->state == SMTPD_TLS_WAIT) {
		/* Plaintext during a handshake cannot happen (conn decrypts); drop. */
		return;
	}
	buf_append(&s->in, data, len);
	process_input(s);
	if (s->conn != NULL && !s->read_paused && buf_unread(&s->in) > SMTPD_INPUT_MAX) {
		conn_read_stop(s->conn);
		s->read_paused = true;
	}
}

static void
on_drain(struct conn *c)
{
	(void)c;
}

static const struct conn_ops session_ops = {
	.on_read = on_read,
	.on_tls = on_tls,
	.on_drain = on_drain,
	.on_close = on_close,
};

void
smtpd__resume(struct smtpd_session *s)
{
	if (s->conn == NULL || s->state == SMTPD_CLOSING)
		return;
	process_input(s);
}

/* Run every complete command (or DATA bytes) now in the input buffer. */
static void
process_input(struct smtpd_session *s)
{
	const char *line;
	size_t len, consumed;
	bool bare_lf, go = true;
	int rc;

	if (s->in_process)
		return;
	s->in_process = true;
	while (go && s->conn != NULL) {
		switch (s->state) {
		case SMTPD_DATA:
			if (buf_unread(&s->in) == 0) {
				go = false;
				break;
			}
			rc = smtp_data_feed(&s->data, buf_rptr(&s->in), buf_unread(&s->in), &consumed);
			buf_consume(&s->in, consumed);
			if (rc == SMTP_DATA_END)
				smtpd__data_done(s);
			else
				go = false;
			break;
		case SMTPD_AUTH_PLAIN:
		case SMTPD_AUTH_USER:
		case SMTPD_AUTH_PASS:
		case SMTPD_GREET:
		case SMTPD_READY:
		case SMTPD_MAIL:
		case SMTPD_RCPT: {
			bool auth = s->state == SMTPD_AUTH_PLAIN || s->state == SMTPD_AUTH_USER ||
			    s->state == SMTPD_AUTH_PASS;
			size_t max = auth ? SMTPD_AUTH_LINE_MAX : SMTPD_LINE_MAX;

			rc = buf_getline(&s->in, max, &line, &len, &bare_lf);
			if (rc == BUF_NEEDMORE) {
				go = false;
				break;
			}
			smtpd__arm_timer(s, s->srv->cfg->relay.command_timeout_ms);
			if (rc == BUF_TOOLONG) {
				smtpd__reply(s, "500 5.5.2 Line too long");
				if (auth)
					smtpd__enter_state(s, s->authed ? SMTPD_READY : SMTPD_READY);
				s->errors++;
			} else if (bare_lf) {
				smtpd__reply(s, "500 5.5.2 Line must end with CRLF");
				s->errors++;
			} else if (auth) {
				smtpd__auth_line(s, line, len);
			} else {
				s->commands++;
				go = smtpd__command(s, line, len);
			}
			if (s->errors >= s->srv->cfg->policy.max_errors &&
			    s->state != SMTPD_CLOSING) {
				struct policy_result res = { .verdict = POLICY_TEMPFAIL,
				    .rule = "session.errors" };

				snprintf(res.reply, sizeof res.reply,
				    "421 4.7.0 %.200s Too many errors, closing connection",
				    s->srv->cfg->server.hostname);
				log_info("smtpd", "too_many_errors", "sid=%s client=%s errors=%u", s->sid,
				    s->client, s->errors);
				smtpd__refuse(s, &res, NULL);
				smtpd__close(s);
				go = false;
			}
			break;
		}
		default:
			/* Waiting: TLS handshake, password check, enqueue, closing. */
			go = false;
			break;
		}
	}
	if (s->conn != NULL && s->state != SMTPD_STARTTLS)
		smtpd__flush(s);
	if (s->conn != NULL && s->read_paused && buf_unread(&s->in) <= SMTPD_INPUT_MAX / 2) {
		conn_read_start(s->conn);
		s->read_paused = false;
	}
	s->in_process = false;
}

/* --- accepting ------------------------------------------------------------------ */

static void
refuse(struct conn *c, const char *reply)
{
	conn_write(c, reply, strlen(reply));
	conn_close(c);
}

static void
on_accept(void *arg, uv_stream_t *server)
{
	struct listen_arg *la = arg;
	struct smtpd *srv = la->srv;
	struct smtpd_session *s;
	struct conn *c;
	char line[CONFIG_HOST_MAX + 80];

	if (srv->stopping) {
		/* Accept and drop it: left pending, libuv stops watching the socket. */
		listener_reject(server);
		return;
	}
	s = xcalloc(1, sizeof *s);
	if (conn_accept(&c, server, &session_ops, s) < 0) {
		free(s);
		return;
	}
	str_copy(s->client, conn_peer_addr(c), sizeof s->client);
	s->trusted = config_nets_match(&srv->cfg->relay.trusted_networks, s->client);
	if (srv->nsessions >= srv->cfg->relay.max_connections ||
	    !ip_take(srv, s->client)) {
		bool total = srv->nsessions >= srv->cfg->relay.max_connections;

		log_warn("smtpd", "connection_refused", "client=%s reason=%s", s->client,
		    total ? "max_connections" : "max_connections_per_ip");
		snprintf(line, sizeof line, "421 4.7.0 %s Too many connections%s, try again later\r\n",
		    srv->cfg->server.hostname, total ? "" : " from your address");
		free(s);
		/* No session: the callbacks see NULL data and do nothing. */
		conn_set_data(c, NULL);
		if (la->kind == SMTPD_SUBMISSIONS) {
			/* Implicit TLS: a plaintext reply would read as a TLS error. */
			conn_abort(c);
			return;
		}
		refuse(c, line);
		return;
	}
	s->srv = srv;
	s->conn = c;
	s->kind = la->kind;
	srv->nalive++;
	s->refs = 2;            /* the connection and the timer */
	s->client_port = conn_peer_port(c);
	s->started_ms = uv_now(srv->loop);
	snprintf(s->sid, sizeof s->sid, "%" PRIx64, ++srv->next_sid);
	uv_timer_init(srv->loop, &s->timer);
	s->timer.data = s;
	s->timer_open = true;
	envelope_init(&s->env);
	s->next = srv->sessions;
	if (srv->sessions != NULL)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	log_info("smtpd", "connect", "sid=%s client=%s port=%u listener=%s%s", s->sid, s->client,
	    s->client_port, s->kind == SMTPD_SUBMISSIONS ? "submissions" : "submission",
	    s->trusted ? " trusted=yes" : "");
	if (s->kind == SMTPD_SUBMISSIONS) {
		smtpd__enter_state(s, SMTPD_TLS_WAIT);
		smtpd__arm_timer(s, srv->cfg->relay.command_timeout_ms);
		if (conn_start_tls(c, srv->tls, true, NULL, false) < 0)
			conn_abort(c);
		return;
	}
	s->state = SMTPD_GREET;
	banner(s);
	smtpd__flush(s);
}

/* --- the server -------------------------------------------------------------------- */

int
smtpd_open(struct smtpd **out, uv_loop_t *loop, const struct config *cfg,
    struct queue *q, struct auth *auth, struct policy *pol, char *err,
    size_t errsz)
{
	struct smtpd *srv = xcalloc(1, sizeof *srv);
	const struct config_listen *ls[2] = { &cfg->relay.submission, &cfg->relay.submissions };
	int rc;

	srv->loop = loop;
	srv->cfg = cfg;
	srv->queue = q;
	srv->auth = auth;
	srv->policy = pol;
	srv->ipcounts = xcalloc(IPCOUNT_BUCKETS, sizeof(struct smtpd_ipcount *));
	if ((rc = tlsctx_server(&srv->tls, cfg, err, errsz)) < 0) {
		free(srv->ipcounts);
		free(srv);
		return rc;
	}
	for (int i = 0; i < 2; i++) {
		if (ls[i]->n == 0)
			continue;
		listen_args[i].srv = srv;
		listen_args[i].kind = i == 0 ? SMTPD_SUBMISSION : SMTPD_SUBMISSIONS;
		rc = listener_open(&srv->listeners[i], loop, ls[i], 511, on_accept,
		    &listen_args[i], err, errsz);
		if (rc < 0) {
			/* A listener owns its handles and frees itself once closed. */
			if (i == 1 && srv->listeners[0] != NULL)
				listener_close(srv->listeners[0], NULL, NULL);
			SSL_CTX_free(srv->tls);
			free(srv->ipcounts);
			free(srv);
			return rc;
		}
		srv->nlisteners_open++;
	}
	uv_timer_init(loop, &srv->grace);
	srv->grace.data = srv;
	*out = srv;
	return 0;
}

int
smtpd_reload_tls(struct smtpd *srv, char *err, size_t errsz)
{
	SSL_CTX *ctx;
	int rc;

	if ((rc = tlsctx_server(&ctx, srv->cfg, err, errsz)) < 0)
		return rc;
	/* Sessions mid-handshake hold their own reference to the old one. */
	SSL_CTX_free(srv->tls);
	srv->tls = ctx;
	return 0;
}

size_t
smtpd_sessions(const struct smtpd *srv)
{
	return srv->nsessions;
}

static void
on_grace_closed(uv_handle_t *h)
{
	struct smtpd *srv = h->data;
	void (*done)(void *) = srv->stop_done;
	void *arg = srv->stop_arg;

	for (size_t i = 0; i < IPCOUNT_BUCKETS; i++) {
		struct smtpd_ipcount *e = ((struct smtpd_ipcount **)srv->ipcounts)[i], *n;

		for (; e != NULL; e = n) {
			n = e->next;
			free(e);
		}
	}
	free(srv->ipcounts);
	SSL_CTX_free(srv->tls);
	free(srv);
	if (done != NULL)
		done(arg);
}

static void
maybe_stopped(struct smtpd *srv)
{
	if (!srv->stopping || srv->nalive > 0 || srv->nlisteners_open > 0 ||
	    uv_is_closing((uv_handle_t *)&srv->grace))
		return;
	uv_close((uv_handle_t *)&srv->grace, on_grace_closed);
}

static void
on_listener_closed(void *arg)
{
	struct smtpd *srv = arg;

	srv->nlisteners_open--;
	maybe_stopped(srv);
}

static void
on_grace(uv_timer_t *t)
{
	struct smtpd *srv = t->data;

	for (struct smtpd_session *s = srv->sessions; s != NULL; s = s->next) {
		log_warn("smtpd", "cut", "sid=%s client=%s state=%s reason=shutdown_grace", s->sid,
		    s->client, smtpd__strstate(s->state));
		if (s->conn != NULL)
			conn_abort(s->conn);
	}
}

void
smtpd_stop(struct smtpd *srv, uint64_t grace_ms, void (*done)(void *arg), void *arg)
{
	struct smtpd_session *s, *next;

	srv->stopping = true;
	srv->stop_done = done;
	srv->stop_arg = arg;
	for (int i = 0; i < 2; i++)
		if (srv->listeners[i] != NULL)
			listener_close(srv->listeners[i], on_listener_closed, srv);
	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		switch (s->state) {
		case SMTPD_MAIL:
		case SMTPD_RCPT:
		case SMTPD_RCPT_CHECK:
		case SMTPD_DATA:
		case SMTPD_QUEUING:
			/* Let the transaction finish; smtpd_msg.c closes after it. */
			break;
		default:
			smtpd__reply(s, "421 4.3.2 %s Service shutting down, try again later",
			    srv->cfg->server.hostname);
			smtpd__close(s);
			break;
		}
	}
	uv_timer_start(&srv->grace, on_grace, grace_ms, 0);
	maybe_stopped(srv);
}
