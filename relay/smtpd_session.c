/*
 * smtpd_session - the session core: a session's input loop, its replies,
 * timers, TLS, the dispatch of commands through its protocol's table,
 * close and free, and the one state writer smtpd__enter_state().  See
 * smtpd_int.h for who calls whom.
 *
 * Input is processed as it comes, command by command (RFC 2920
 * pipelining): replies collect in s->out and go out in one write when the
 * input runs dry or a command has to wait (password check, store,
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
#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"

static void process_input(struct smtpd_session *s);
static bool dispatch(struct smtpd_session *s, const char *line, size_t len);

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
	[SMTPD_MAIL_CHECK] = "mail-check",
	[SMTPD_VERIFY] = "verify",
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
	 * check, store) must not bring back a state that reads commands.
	 */
	if (s->state == st || s->state == SMTPD_CLOSING)
		return;
	log_debug("smtpd", "state", "sid=%s from=%s to=%s", s->sid,
	    smtpd__strstate(s->state), smtpd__strstate(st));
	s->state = st;
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
	free(s->dkim);
	explicit_bzero(s->auth_name, sizeof s->auth_name);
	explicit_bzero(s->auth_pass, sizeof s->auth_pass);
	free(s);
	srv->nalive--;
	srv->hooks.freed(srv);
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

bool
smtpd__in_transaction(const struct smtpd_session *s)
{
	return s->state == SMTPD_MAIL || s->state == SMTPD_RCPT;
}

bool
smtpd__gone(const struct smtpd_session *s)
{
	return s->conn == NULL || s->state == SMTPD_CLOSING;
}

void
smtpd__set_user(struct smtpd_session *s, const struct auth_user *u)
{
	s->user = *u;
	s->has_user = true;
	if (s->srv->policy != NULL) {
		policy_user_init(s->srv->policy, &s->pu, u->name, u->rate, u->rcpt_rate);
	} else {
		memset(&s->pu, 0, sizeof s->pu);
		str_copy(s->pu.name, u->name, sizeof s->pu.name);
	}
}

void
smtpd__shutdown(struct smtpd_session *s)
{
	smtpd__reply(s, "421 4.3.2 %s Service shutting down, try again later",
	    s->srv->cfg->server.hostname);
	smtpd__close(s);
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
	s->spf_result = SPFCHECK_NONE;
	s->spf_helo = false;
	s->spf_domain[0] = s->spf_why[0] = '\0';
	free(s->dkim);
	s->dkim = NULL;
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
		srv->users.ops->cancel(srv->users.arg, s->auth_req);
		s->auth_pending = false;
		smtpd__unref(s);
	}
	log_info("smtpd", "disconnect", "sid=%s client=%s commands=%u messages=%" PRIu64 " duration_ms=%" PRIu64,
	    s->sid, s->client, s->commands, s->msgs, uv_now(srv->loop) - s->started_ms);
	srv->hooks.closed(srv, s->client);
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

const struct conn_ops smtpd__conn_ops = {
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

/*
 * too_many_errors - [policy] max_errors protocol errors: 421 and the
 * close (true then).
 */
static bool
too_many_errors(struct smtpd_session *s)
{
	struct policy_result res = { .verdict = POLICY_TEMPFAIL, .rule = "session.errors" };

	if (s->errors < s->srv->cfg->policy.max_errors || s->state == SMTPD_CLOSING)
		return false;
	snprintf(res.reply, sizeof res.reply, "421 4.7.0 %.200s Too many errors, closing connection",
	    s->srv->cfg->server.hostname);
	log_info("smtpd", "too_many_errors", "sid=%s client=%s errors=%u", s->sid, s->client,
	    s->errors);
	smtpd__refuse(s, &res, NULL);
	smtpd__close(s);
	return true;
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
				s->proto->data_done(s);
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

			/* Errors counted by an answer that came later (a refused RCPT). */
			if (too_many_errors(s)) {
				go = false;
				break;
			}
			rc = buf_getline(&s->in, max, &line, &len, &bare_lf);
			if (rc == BUF_NEEDMORE) {
				go = false;
				break;
			}
			smtpd__arm_timer(s, s->srv->cfg->relay.command_timeout_ms);
			if (rc == BUF_TOOLONG) {
				smtpd__reply(s, "500 5.5.2 Line too long");
				if (auth)
					smtpd__enter_state(s, SMTPD_READY);
				s->errors++;
			} else if (bare_lf) {
				smtpd__reply(s, "500 5.5.2 Line must end with CRLF");
				s->errors++;
			} else if (auth) {
				s->proto->auth_line(s, line, len);
			} else {
				s->commands++;
				go = dispatch(s, line, len);
			}
			if (too_many_errors(s))
				go = false;
			break;
		}
		default:
			/* Waiting: TLS handshake, password check, store, closing. */
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

/* --- commands ---------------------------------------------------------------- */

/*
 * is_junk - commands that move no mail forward: the table's CMD_JUNK
 * rows, and EHLO/HELO once the client has greeted (a new TLS session
 * greets anew).  [policy] max_junk_commands of them are answered between
 * messages; the next one ends the session.
 */
static bool
is_junk(const struct smtpd_session *s, const struct smtpd_cmd *cmd)
{
	if (cmd->flags & CMD_JUNK)
		return true;
	return (cmd->verb == SMTP_EHLO || cmd->verb == SMTP_HELO) && s->helo[0] != '\0';
}

/*
 * dispatch - run one command line through the protocol's table: the
 * rules every command obeys (its flags), its own check, then its run.
 * False to stop reading input now.
 */
static bool
dispatch(struct smtpd_session *s, const char *line, size_t len)
{
	const struct smtpd_cmd *cmd = NULL;
	struct smtp_cmd c;
	const char *why = NULL;
	bool go;

	if (smtp_cmd_parse(line, len, &c, &why) < 0 || c.verb == SMTP_UNKNOWN) {
		/* why is a whole reply: 5.5.1 unknown verb, 5.5.2 NUL or CR in it. */
		smtpd__reply(s, "%s", why != NULL ? why : "500 5.5.1 Command unrecognized");
		s->errors++;
		return true;
	}
	for (const struct smtpd_cmd *k = s->proto->commands; k->name != NULL; k++)
		if (k->verb == c.verb)
			cmd = k;
	if (cmd == NULL) {
		smtpd__reply(s, "500 5.5.1 Command unrecognized");
		s->errors++;
		return true;
	}
	if (is_junk(s, cmd) && ++s->junk > s->srv->cfg->policy.max_junk_commands) {
		struct policy_result res = { .verdict = POLICY_TEMPFAIL, .rule = "session.junk" };

		log_info("smtpd", "too_many_junk_commands", "sid=%s client=%s junk=%u", s->sid,
		    s->client, s->junk - 1);
		snprintf(res.reply, sizeof res.reply,
		    "421 4.7.0 %.160s Too many commands without sending mail, closing connection",
		    s->srv->cfg->server.hostname);
		smtpd__refuse(s, &res, NULL);
		smtpd__close(s);
		return false;
	}
	if ((cmd->flags & CMD_NO_ARG) && c.arglen > 0) {
		smtpd__reply(s, "501 5.5.4 Syntax: %s (no parameters)", cmd->name);
		s->errors++;
		return true;
	}
	if ((cmd->flags & CMD_NEED_EHLO) && s->helo[0] == '\0') {
		smtpd__reply(s, "503 5.5.1 Send EHLO first");
		s->errors++;
		return true;
	}
	if ((cmd->flags & CMD_NO_TRANS) && smtpd__in_transaction(s)) {
		smtpd__reply(s, "503 5.5.1 %s is not allowed during a mail transaction", cmd->name);
		s->errors++;
		return true;
	}
	if (cmd->check != NULL && !cmd->check(s, &c)) {
		s->errors++;
		return true;
	}
	go = cmd->run(s, &c);
	if (cmd->flags & CMD_LAST)
		smtpd__flush(s);
	/* Shutting down: a session between transactions goes now. */
	if (go && s->srv->stopping && s->state == SMTPD_READY) {
		smtpd__shutdown(s);
		return false;
	}
	return go;
}

/* --- start ------------------------------------------------------------------------ */

void
smtpd__session_start(struct smtpd *srv, struct conn *c, const struct smtpd_proto *proto,
    enum smtpd_listener_kind kind)
{
	struct smtpd_session *s = xcalloc(1, sizeof *s);

	conn_set_data(c, s);
	str_copy(s->client, conn_peer_addr(c), sizeof s->client);
	/* The inbound MX trusts nobody: trusted_networks are for submission. */
	s->trusted = kind != SMTPD_INBOUND &&
	    config_nets_match(&srv->cfg->relay.trusted_networks, s->client);
	s->srv = srv;
	s->conn = c;
	s->proto = proto;
	s->kind = kind;
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
	    s->client_port, s->kind == SMTPD_SUBMISSIONS ? "submissions" :
	    s->kind == SMTPD_INBOUND ? "inbound" : "submission",
	    s->trusted ? " trusted=yes" : "");
	if (s->kind == SMTPD_SUBMISSIONS) {
		smtpd__enter_state(s, SMTPD_TLS_WAIT);
		smtpd__arm_timer(s, srv->cfg->relay.command_timeout_ms);
		if (conn_start_tls(c, srv->tls, true, NULL, false) < 0)
			conn_abort(c);
		return;
	}
	banner(s);
	smtpd__flush(s);
}
