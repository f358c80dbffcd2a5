/*
 * smtpd - the server: listeners, accepting (connection limits in all and
 * per client address), TLS reloads and an orderly stop.  A session is the
 * session core's (smtpd_session.c) from smtpd__session_start() on; it
 * tells the server of its end through the hooks set here.  See smtpd.h
 * and smtpd_int.h.
 */
#include "relay/smtpd_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_value.h"
#include "core/conn.h"
#include "core/ipcount.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/str.h"
#include "core/tlsctx.h"
#include "core/xmalloc.h"

static void maybe_stopped(struct smtpd *srv);

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
	struct smtpd_listen *la = arg;
	struct smtpd *srv = la->srv;
	struct conn *c;
	char line[CONFIG_HOST_MAX + 80], client[64];

	if (srv->stopping) {
		/* Accept and drop it: left pending, libuv stops watching the socket. */
		listener_reject(server);
		return;
	}
	/* No session yet: the callbacks see NULL data and do nothing. */
	if (conn_accept(&c, server, &smtpd__conn_ops, NULL) < 0)
		return;
	str_copy(client, conn_peer_addr(c), sizeof client);
	if (srv->nsessions >= srv->cfg->relay.max_connections ||
	    !ipcount_take(srv->ipcounts, client, srv->cfg->relay.max_connections_per_ip)) {
		bool total = srv->nsessions >= srv->cfg->relay.max_connections;

		log_warn("smtpd", "connection_refused", "client=%s reason=%s", client,
		    total ? "max_connections" : "max_connections_per_ip");
		snprintf(line, sizeof line, "421 4.7.0 %s Too many connections%s, try again later\r\n",
		    srv->cfg->server.hostname, total ? "" : " from your address");
		if (la->kind == SMTPD_SUBMISSIONS) {
			/* Implicit TLS: a plaintext reply would read as a TLS error. */
			conn_abort(c);
			return;
		}
		refuse(c, line);
		return;
	}
	smtpd__session_start(srv, c, la->proto, la->kind);
}

static void
on_session_closed(struct smtpd *srv, const char *client)
{
	if (client[0] != '\0')
		ipcount_release(srv->ipcounts, client);
}

static void
on_session_freed(struct smtpd *srv)
{
	maybe_stopped(srv);
}

/* --- the server -------------------------------------------------------------------- */

int
smtpd_open(struct smtpd **out, uv_loop_t *loop, const struct config *cfg,
    const struct smtpd_sink *sink, const struct smtpd_sink *inbound,
    const struct smtpd_users *users, struct policy *pol, char *err, size_t errsz)
{
	struct smtpd *srv = xcalloc(1, sizeof *srv);
	const struct config_listen *ls[SMTPD_NLISTENERS] = { &cfg->relay.submission,
		&cfg->relay.submissions, &cfg->relay.inbound };
	static const enum smtpd_listener_kind kinds[SMTPD_NLISTENERS] = { SMTPD_SUBMISSION,
		SMTPD_SUBMISSIONS, SMTPD_INBOUND };
	struct dkimverify_opts dko = { 0 };
	char dns[300];
	int rc;

	srv->loop = loop;
	srv->cfg = cfg;
	srv->sink = *sink;
	if (inbound != NULL && cfg->relay.inbound.n > 0) {
		if (inbound->ops == NULL || inbound->ops->rcpt == NULL || inbound->ops->store == NULL) {
			snprintf(err, errsz, "the inbound sink lacks its rcpt or store operation");
			free(srv);
			return -EINVAL;
		}
		srv->inbound = *inbound;
	}
	srv->users = *users;
	srv->policy = pol;
	srv->hooks.closed = on_session_closed;
	srv->hooks.freed = on_session_freed;
	srv->ipcounts = ipcount_new();
	if ((rc = tlsctx_server(&srv->tls, cfg, err, errsz)) < 0) {
		ipcount_free(srv->ipcounts);
		free(srv);
		return rc;
	}
	if (srv->inbound.ops != NULL) {
		/* The inbound MX's SPF checks ask the resolver delivery asks. */
		dns[0] = '\0';
		if (cfg->deliver.dns_server_set)
			config_endpoint_str(&cfg->deliver.dns_server, dns, sizeof dns);
		rc = spfcheck_open(&srv->spf, loop, dns, cfg->deliver.dns_timeout_ms, err, errsz);
		if (rc < 0) {
			SSL_CTX_free(srv->tls);
			ipcount_free(srv->ipcounts);
			free(srv);
			return rc;
		}
		dko.dns_server = dns;
		dko.dns_timeout_ms = cfg->deliver.dns_timeout_ms;
		if ((rc = dkimverify_open(&srv->dkim, loop, &dko, err, errsz)) < 0) {
			spfcheck_close(srv->spf, NULL, NULL);
			SSL_CTX_free(srv->tls);
			ipcount_free(srv->ipcounts);
			free(srv);
			return rc;
		}
	}
	for (int i = 0; i < SMTPD_NLISTENERS; i++) {
		if (ls[i]->n == 0 || (kinds[i] == SMTPD_INBOUND && srv->inbound.ops == NULL))
			continue;
		srv->listen[i].srv = srv;
		srv->listen[i].kind = kinds[i];
		srv->listen[i].proto = kinds[i] == SMTPD_INBOUND ? &smtpd__inbound : &smtpd__submission;
		rc = listener_open(&srv->listeners[i], loop, ls[i], 511, on_accept,
		    &srv->listen[i], err, errsz);
		if (rc < 0) {
			/* A listener owns its handles and frees itself once closed. */
			for (int j = 0; j < i; j++)
				if (srv->listeners[j] != NULL)
					listener_close(srv->listeners[j], NULL, NULL);
			if (srv->spf != NULL)
				spfcheck_close(srv->spf, NULL, NULL);
			if (srv->dkim != NULL)
				dkimverify_close(srv->dkim, NULL, NULL);
			SSL_CTX_free(srv->tls);
			ipcount_free(srv->ipcounts);
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

uint16_t
smtpd_port(const struct smtpd *srv, unsigned which, unsigned i)
{
	if (which >= SMTPD_NLISTENERS || srv->listeners[which] == NULL)
		return 0;
	return listener_port(srv->listeners[which], i);
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

	ipcount_free(srv->ipcounts);
	SSL_CTX_free(srv->tls);
	free(srv);
	if (done != NULL)
		done(arg);
}

static void
on_spf_closed(void *arg)
{
	struct smtpd *srv = arg;

	srv->spf = NULL;
	maybe_stopped(srv);
}

static void
on_dkim_closed(void *arg)
{
	struct smtpd *srv = arg;

	srv->dkim = NULL;
	maybe_stopped(srv);
}

/*
 * close_checks - stop the inbound MX's SPF and DKIM checks: their
 * pending callbacks run (SPF temperror, DKIM canceled), then
 * on_spf_closed and on_dkim_closed.
 */
static void
close_checks(struct smtpd *srv)
{
	if (srv->spf != NULL && !srv->spf_closing) {
		srv->spf_closing = true;
		spfcheck_close(srv->spf, on_spf_closed, srv);
	}
	if (srv->dkim != NULL && !srv->dkim_closing) {
		srv->dkim_closing = true;
		dkimverify_close(srv->dkim, on_dkim_closed, srv);
	}
}

static void
maybe_stopped(struct smtpd *srv)
{
	if (!srv->stopping || srv->nalive > 0 || srv->nlisteners_open > 0 ||
	    uv_is_closing((uv_handle_t *)&srv->grace))
		return;
	if (srv->spf != NULL || srv->dkim != NULL) {
		close_checks(srv);
		return;
	}
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
	/* Sessions waiting for an SPF or DKIM verdict get theirs now. */
	close_checks(srv);
}

void
smtpd_stop(struct smtpd *srv, uint64_t grace_ms, void (*done)(void *arg), void *arg)
{
	struct smtpd_session *s, *next;

	srv->stopping = true;
	srv->stop_done = done;
	srv->stop_arg = arg;
	for (int i = 0; i < SMTPD_NLISTENERS; i++)
		if (srv->listeners[i] != NULL)
			listener_close(srv->listeners[i], on_listener_closed, srv);
	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		switch (s->state) {
		case SMTPD_MAIL:
		case SMTPD_RCPT:
		case SMTPD_RCPT_CHECK:
		case SMTPD_MAIL_CHECK:
		case SMTPD_DATA:
		case SMTPD_VERIFY:
		case SMTPD_QUEUING:
			/* Let the transaction finish; smtpd_msg.c closes after it. */
			break;
		default:
			smtpd__shutdown(s);
			break;
		}
	}
	uv_timer_start(&srv->grace, on_grace, grace_ms, 0);
	maybe_stopped(srv);
}
