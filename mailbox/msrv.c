/*
 * msrv - the mail-client servers' shared part: listeners, accepting,
 * sessions' connections and references, the idle sweep, the login check
 * and the stop.  See msrv.h.
 */
#include "mailbox/msrv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conn.h"
#include "core/ipcount.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/str.h"
#include "core/tlsctx.h"
#include "core/xmalloc.h"

#define SWEEP_MAX_MS 30000 /* idle sweep at most this far apart... */
#define SWEEP_MIN_MS 250   /* ... and at least this */
#define NLISTENERS 2       /* plaintext, implicit TLS */

struct msrv_listen {
	struct msrv *srv;
	bool implicit;
};

struct msrv {
	uv_loop_t *loop;
	const struct config *cfg;
	const struct msrv_proto *proto;
	void *arg;
	struct auth *auth;
	struct policy *policy;
	SSL_CTX *tls;
	uint64_t idle_ms;
	struct listener *listeners[NLISTENERS];
	struct msrv_listen listen[NLISTENERS];
	unsigned nlisteners_open;
	struct ipcount *ipcounts;
	struct msrv_sess *sessions;
	size_t nsessions; /* connected */
	size_t nalive;    /* not freed */
	uint64_t next_sid;
	uv_timer_t sweep;
	uv_timer_t grace;
	unsigned ntimers_open;
	bool stopping;
	void (*stop_done)(void *);
	void *stop_arg;
};

static const struct conn_ops sess_ops;
static void maybe_stopped(struct msrv *srv);

/* --- sessions -------------------------------------------------------------------- */

void
msrv_ref(struct msrv_sess *s)
{
	s->refs++;
}

void
msrv_unref(struct msrv_sess *s)
{
	struct msrv *srv = s->srv;

	if (--s->refs > 0)
		return;
	if (srv->proto->free != NULL)
		srv->proto->free(s);
	explicit_bzero(s->pass, sizeof s->pass);
	buf_free(&s->in);
	free(s);
	srv->nalive--;
	maybe_stopped(srv);
}

bool
msrv_gone(const struct msrv_sess *s)
{
	return s->conn == NULL;
}

void
msrv_write(struct msrv_sess *s, const void *p, size_t n)
{
	if (s->conn != NULL)
		conn_write(s->conn, p, n);
}

bool
msrv_output_full(const struct msrv_sess *s)
{
	return s->conn != NULL && conn_pending(s->conn) > MSRV_OUT_HIGH;
}

void
msrv_close(struct msrv_sess *s)
{
	if (s->conn != NULL)
		conn_close(s->conn);
}

/* run_input - hand buffered input to the protocol while it can take it. */
static void
run_input(struct msrv_sess *s)
{
	if (s->busy || msrv_gone(s) || conn_is_closing(s->conn))
		return;
	if (conn_pending(s->conn) > MSRV_OUT_HIGH) {
		conn_read_stop(s->conn);
		return;
	}
	if (s->in_full) {
		/* Stopped for too much input while busy (on_read): this command is done. */
		s->in_full = false;
		conn_read_start(s->conn);
	}
	s->srv->proto->input(s);
	if (buf_unread(&s->in) == 0 && !s->in.skip)
		buf_free(&s->in);
}

void
msrv_done(struct msrv_sess *s)
{
	s->busy = false;
	if (msrv_gone(s))
		return;
	if (s->srv->stopping) {
		s->srv->proto->shutdown(s);
		msrv_close(s);
		return;
	}
	run_input(s);
}

bool
msrv_error(struct msrv_sess *s)
{
	return ++s->errors >= s->srv->cfg->policy.max_errors;
}

void
msrv_starttls(struct msrv_sess *s)
{
	/* What the client pipelined after the command was plaintext: dropped. */
	buf_reset(&s->in);
	if (msrv_gone(s) || conn_start_tls(s->conn, s->srv->tls, true, NULL, false) < 0) {
		msrv_close(s);
		return;
	}
	s->tls = true;
	s->busy = true;
	s->tls_wait = true;
}

/* --- the login check ---------------------------------------------------------------- */

static void
wipe(struct msrv_sess *s)
{
	explicit_bzero(s->pass, sizeof s->pass);
	s->passlen = 0;
}

/* login_end - tell the protocol (unless gone) and drop the login's reference. */
static void
login_end(struct msrv_sess *s, enum msrv_login_result r, const struct auth_user *u)
{
	msrv_login_cb *cb = s->login_cb;

	wipe(s);
	s->login_cb = NULL;
	if (!msrv_gone(s)) {
		if (r == MSRV_LOGIN_OK) {
			s->authed = true;
			s->auth_failures = 0;
			str_copy(s->user, u->name, sizeof s->user);
		}
		cb(s, r, u);
	}
	msrv_unref(s);
}

static void
tempfail(struct msrv_sess *s, const char *what, int status)
{
	char q[300];

	log_warn(s->srv->proto->name, "login", "sid=%s client=%s user=%s result=tempfail what=%s error=\"%s\"",
	    s->sid, s->client, log_quotes(q, sizeof q, s->user), what, uv_strerror(status));
	login_end(s, MSRV_LOGIN_TEMPFAIL, NULL);
}

static void
on_fail_counted(void *arg, int status, const struct policy_result *res)
{
	struct msrv_sess *s = arg;

	if (status < 0)
		log_warn(s->srv->proto->name, "auth_failure_not_counted", "sid=%s client=%s error=\"%s\"",
		    s->sid, s->client, uv_strerror(status));
	else if (res->verdict != POLICY_OK)
		log_debug(s->srv->proto->name, "auth_locked", "sid=%s client=%s", s->sid, s->client);
	login_end(s, MSRV_LOGIN_FAILED, NULL);
}

/* failed - wrong credentials: count them for the address, then answer. */
static void
failed(struct msrv_sess *s)
{
	char q[300];

	s->auth_failures++;
	s->errors++;
	log_warn(s->srv->proto->name, "login", "sid=%s client=%s user=%s result=failed failures=%u",
	    s->sid, s->client, log_quotes(q, sizeof q, s->user), s->auth_failures);
	if (s->srv->policy != NULL &&
	    policy_auth_failed(s->srv->policy, s->client, on_fail_counted, s) == 0)
		return;
	login_end(s, MSRV_LOGIN_FAILED, NULL);
}

static void
on_verified(void *arg, int status, const struct auth_user *user)
{
	struct msrv_sess *s = arg;

	s->auth_pending = false;
	if (msrv_gone(s)) {
		login_end(s, MSRV_LOGIN_TEMPFAIL, NULL);
		return;
	}
	if (status == -EACCES)
		failed(s);
	else if (status < 0)
		tempfail(s, "verify", status);
	else
		login_end(s, MSRV_LOGIN_OK, user);
}

static void
start_verify(struct msrv_sess *s)
{
	int rc;

	rc = auth_verify(s->srv->auth, s->user, s->pass, s->passlen, on_verified, s, &s->auth_req);
	wipe(s);
	if (rc < 0) {
		tempfail(s, "verify", rc);
		return;
	}
	s->auth_pending = true;
}

static void
on_lock_checked(void *arg, int status, const struct policy_result *res)
{
	struct msrv_sess *s = arg;

	if (msrv_gone(s)) {
		login_end(s, MSRV_LOGIN_TEMPFAIL, NULL);
		return;
	}
	if (status < 0) {
		tempfail(s, "lockout_check", status);
		return;
	}
	if (res->verdict != POLICY_OK) {
		s->errors++;
		log_info(s->srv->proto->name, "login", "sid=%s client=%s user=%s result=locked_out",
		    s->sid, s->client, s->user);
		login_end(s, MSRV_LOGIN_LOCKED, NULL);
		return;
	}
	start_verify(s);
}

void
msrv_login(struct msrv_sess *s, const char *user, size_t ulen, const char *pass, size_t plen,
    msrv_login_cb *cb)
{
	int rc;

	s->busy = true;
	s->login_cb = cb;
	msrv_ref(s);
	str_copyn(s->user, user, ulen, sizeof s->user);
	/* A password longer than AUTH_PASSWORD_MAX never verifies: kept as too long. */
	s->passlen = plen < sizeof s->pass ? plen : sizeof s->pass;
	memcpy(s->pass, pass, s->passlen);
	if (s->srv->policy == NULL) {
		start_verify(s);
		return;
	}
	rc = policy_auth_check(s->srv->policy, s->client, on_lock_checked, s);
	if (rc < 0)
		tempfail(s, "lockout_check", rc);
}

/* --- connection callbacks --------------------------------------------------------- */

static void
on_read(struct conn *c, const char *data, size_t len)
{
	struct msrv_sess *s = conn_data(c);

	if (s == NULL)
		return;
	s->last_active = uv_now(s->srv->loop);
	buf_append(&s->in, data, len);
	if (s->busy && buf_unread(&s->in) > MSRV_IN_HIGH && !s->in_full) {
		s->in_full = true;
		conn_read_stop(c);
	}
	run_input(s);
}

static void
on_tls(struct conn *c, int status)
{
	struct msrv_sess *s = conn_data(c);

	if (s == NULL || status < 0 || !s->tls_wait)
		return;
	s->last_active = uv_now(s->srv->loop);
	s->tls_wait = false;
	s->busy = false;
	if (s->greet_on_tls) {
		s->greet_on_tls = false;
		s->srv->proto->start(s);
	}
	run_input(s);
}

static void
on_drain(struct conn *c)
{
	struct msrv_sess *s = conn_data(c);

	if (s == NULL || msrv_gone(s))
		return;
	if (s->busy && !s->tls_wait && s->srv->proto->drain != NULL) {
		s->srv->proto->drain(s);
		return;
	}
	conn_read_start(c);
	run_input(s);
}

static void
on_close(struct conn *c, int status)
{
	struct msrv_sess *s = conn_data(c);
	struct msrv *srv;

	if (s == NULL)
		return;
	srv = s->srv;
	s->conn = NULL;
	if (s->auth_pending) {
		/* Its callback will not come: the login's reference goes here. */
		auth_cancel(srv->auth, s->auth_req);
		s->auth_pending = false;
		wipe(s);
		s->login_cb = NULL;
		s->refs--;
	}
	srv->proto->closed(s, status);
	ipcount_release(srv->ipcounts, s->client);
	srv->nsessions--;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	msrv_unref(s);
}

static const struct conn_ops sess_ops = {
	.on_read = on_read,
	.on_tls = on_tls,
	.on_drain = on_drain,
	.on_close = on_close,
};

/* --- accepting ---------------------------------------------------------------------- */

static void
on_accept(void *arg, uv_stream_t *server)
{
	struct msrv_listen *la = arg;
	struct msrv *srv = la->srv;
	struct msrv_sess *s;
	struct conn *c;
	char client[64];
	const char *line;
	bool total;

	if (srv->stopping) {
		listener_reject(server);
		return;
	}
	if (conn_accept(&c, server, &sess_ops, NULL) < 0)
		return;
	str_copy(client, conn_peer_addr(c), sizeof client);
	total = srv->nsessions >= srv->cfg->mailbox.max_connections;
	if (total || !ipcount_take(srv->ipcounts, client, srv->cfg->mailbox.max_connections_per_ip)) {
		log_warn(srv->proto->name, "connection_refused", "client=%s reason=%s", client,
		    total ? "max_connections" : "max_connections_per_ip");
		if (la->implicit) {
			/* Implicit TLS: a plaintext reply would read as a TLS error. */
			conn_abort(c);
			return;
		}
		line = total ? srv->proto->too_many : srv->proto->too_many_per_ip;
		conn_write(c, line, strlen(line));
		conn_close(c);
		return;
	}
	s = xcalloc(1, srv->proto->sess_size);
	s->srv = srv;
	s->conn = c;
	s->refs = 1;
	buf_init(&s->in);
	str_copy(s->client, client, sizeof s->client);
	snprintf(s->sid, sizeof s->sid, "%c%" PRIx64, srv->proto->name[0] - 'a' + 'A',
	    ++srv->next_sid);
	s->last_active = uv_now(srv->loop);
	s->next = srv->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	srv->nalive++;
	conn_set_data(c, s);
	log_debug(srv->proto->name, "connect", "sid=%s client=%s tls=%s", s->sid, client,
	    la->implicit ? "implicit" : "none");
	if (la->implicit) {
		s->tls = true;
		s->busy = true;
		s->tls_wait = true;
		s->greet_on_tls = true;
		if (conn_start_tls(c, srv->tls, true, NULL, false) < 0)
			conn_abort(c);
		return;
	}
	srv->proto->start(s);
}

/* --- the sweep: idle sessions ----------------------------------------------------------- */

static void
on_sweep(uv_timer_t *t)
{
	struct msrv *srv = t->data;
	uint64_t now = uv_now(srv->loop);

	for (struct msrv_sess *s = srv->sessions; s != NULL; s = s->next) {
		if (s->conn == NULL || conn_is_closing(s->conn))
			continue;
		if (!s->busy && now - s->last_active >= srv->idle_ms) {
			log_info(srv->proto->name, "timeout", "sid=%s client=%s user=%s idle_ms=%" PRIu64,
			    s->sid, s->client, s->user, now - s->last_active);
			srv->proto->timeout(s);
			msrv_close(s);
			continue;
		}
		if (srv->proto->sweep != NULL)
			srv->proto->sweep(s, now);
	}
}

/* --- the server ------------------------------------------------------------------------ */

int
msrv_open(struct msrv **out, uv_loop_t *loop, const struct config *cfg,
    const struct msrv_proto *proto, const struct msrv_opts *opts, struct auth *auth,
    struct policy *pol, void *arg, char *err, size_t errsz)
{
	const struct config_listen *ls[NLISTENERS] = { opts->plain, opts->implicit };
	struct msrv *srv;
	uint64_t sweep;
	int rc;

	if (auth == NULL || proto->sess_size < sizeof(struct msrv_sess)) {
		snprintf(err, errsz, "%s needs the user directory", proto->name);
		return -EINVAL;
	}
	srv = xcalloc(1, sizeof *srv);
	srv->loop = loop;
	srv->cfg = cfg;
	srv->proto = proto;
	srv->arg = arg;
	srv->auth = auth;
	srv->policy = pol;
	srv->idle_ms = opts->idle_ms;
	if ((rc = tlsctx_server(&srv->tls, cfg, err, errsz)) < 0) {
		free(srv);
		return rc;
	}
	srv->ipcounts = ipcount_new();
	for (int i = 0; i < NLISTENERS; i++) {
		if (ls[i] == NULL || ls[i]->n == 0)
			continue;
		srv->listen[i].srv = srv;
		srv->listen[i].implicit = i == 1;
		rc = listener_open(&srv->listeners[i], loop, ls[i], 511, on_accept, &srv->listen[i],
		    err, errsz);
		if (rc < 0) {
			for (int j = 0; j < i; j++)
				if (srv->listeners[j] != NULL)
					listener_close(srv->listeners[j], NULL, NULL);
			ipcount_free(srv->ipcounts);
			SSL_CTX_free(srv->tls);
			free(srv);
			return rc;
		}
		srv->nlisteners_open++;
	}
	uv_timer_init(loop, &srv->sweep);
	uv_timer_init(loop, &srv->grace);
	srv->sweep.data = srv->grace.data = srv;
	srv->ntimers_open = 2;
	sweep = srv->idle_ms / 4;
	sweep = sweep > SWEEP_MAX_MS ? SWEEP_MAX_MS : sweep < SWEEP_MIN_MS ? SWEEP_MIN_MS : sweep;
	uv_timer_start(&srv->sweep, on_sweep, sweep, sweep);
	*out = srv;
	return 0;
}

void *
msrv_arg(const struct msrv *srv)
{
	return srv->arg;
}

const struct config *
msrv_cfg(const struct msrv *srv)
{
	return srv->cfg;
}

uv_loop_t *
msrv_loop(const struct msrv *srv)
{
	return srv->loop;
}

bool
msrv_stopping(const struct msrv *srv)
{
	return srv->stopping;
}

int
msrv_reload_tls(struct msrv *srv, char *err, size_t errsz)
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

uint16_t
msrv_port(const struct msrv *srv, bool implicit, unsigned i)
{
	struct listener *l = srv->listeners[implicit ? 1 : 0];

	return l != NULL ? listener_port(l, i) : 0;
}

size_t
msrv_sessions(const struct msrv *srv)
{
	return srv->nsessions;
}

static void
on_timer_closed(uv_handle_t *h)
{
	struct msrv *srv = h->data;
	void (*cb)(void *);
	void *arg;

	if (--srv->ntimers_open > 0)
		return;
	cb = srv->stop_done;
	arg = srv->stop_arg;
	ipcount_free(srv->ipcounts);
	SSL_CTX_free(srv->tls);
	free(srv);
	if (cb != NULL)
		cb(arg);
}

static void
maybe_stopped(struct msrv *srv)
{
	if (!srv->stopping || srv->nalive > 0 || srv->nlisteners_open > 0 ||
	    uv_is_closing((uv_handle_t *)&srv->sweep))
		return;
	uv_close((uv_handle_t *)&srv->sweep, on_timer_closed);
	uv_close((uv_handle_t *)&srv->grace, on_timer_closed);
}

static void
on_listener_closed(void *arg)
{
	struct msrv *srv = arg;

	srv->nlisteners_open--;
	maybe_stopped(srv);
}

static void
on_grace(uv_timer_t *t)
{
	struct msrv *srv = t->data;

	for (struct msrv_sess *s = srv->sessions; s != NULL; s = s->next) {
		log_warn(srv->proto->name, "cut", "sid=%s client=%s user=%s reason=shutdown_grace",
		    s->sid, s->client, s->user);
		if (s->conn != NULL)
			conn_abort(s->conn);
	}
}

void
msrv_stop(struct msrv *srv, uint64_t grace_ms, void (*done)(void *arg), void *arg)
{
	struct msrv_sess *s, *next;

	srv->stopping = true;
	srv->stop_done = done;
	srv->stop_arg = arg;
	uv_timer_stop(&srv->sweep);
	for (int i = 0; i < NLISTENERS; i++)
		if (srv->listeners[i] != NULL)
			listener_close(srv->listeners[i], on_listener_closed, srv);
	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->busy || s->conn == NULL)
			continue; /* msrv_done() closes it once its command is answered */
		srv->proto->shutdown(s);
		msrv_close(s);
	}
	uv_timer_start(&srv->grace, on_grace, grace_ms, 0);
	maybe_stopped(srv);
}
