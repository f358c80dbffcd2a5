/*
 * smtpd_inbound - the inbound MX for bounce domains (smtpd__inbound): an
 * SMTP server (RFC 5321) for the returns that remote MTAs send to the
 * VERP return paths of the bounce domains, and to postmaster@ and abuse@
 * of those domains.  It shares the session core and the commands without
 * transaction state with submission (smtpd_cmd.c) and has its own MAIL,
 * RCPT and end of DATA.  It never relays: every recipient is put to the
 * inbound sink (smtpd.h: rcpt), which answers for the bounce domains only.
 *
 *   EHLO      PIPELINING, SIZE [mailbox] max_bounce_size, 8BITMIME,
 *             ENHANCEDSTATUSCODES, SMTPUTF8, STARTTLS (before TLS); no
 *             AUTH (502 5.5.1: nobody submits here), no DSN.
 *   MAIL      any reverse-path, the null one above all; SIZE above
 *             max_bounce_size: 552 5.3.4.  Then the client address's
 *             rate, [relay] inbound_rate (policy_ip_rate: each MAIL that
 *             passes counts one, an IPv6 /64 is one address): over it
 *             450 4.7.1, Redis down 451 4.3.0, as submission answers its
 *             rates; before SPF, so a flood costs no DNS.  Then SPF
 *             (RFC 7208) of the client: the MAIL FROM domain, or the HELO
 *             identity for the null sender (RFC 7208 2.3, 2.4).  A
 *             fail with [mailbox] spf_fail = reject is refused here,
 *             550 5.7.23 (RFC 7372), before any recipient or data is
 *             sent (RFC 7208 8.4 allows it at MAIL; a server may not
 *             know the recipients' wishes,
 *             but here every recipient is ours and wants the same).
 *             Otherwise the verdict is recorded with the message.
 *   RCPT      the inbound sink's verdict: 250 2.1.5, 550 5.1.1 (a bounce
 *             domain's address that is not ours), 550 5.7.1 (any other
 *             domain: relay denied), 451 4.3.0 (the sink cannot tell now);
 *             at most INBOUND_MAX_RCPT recipients (452 4.5.3).
 *             "<postmaster>" without a domain (RFC 5321 4.5.1) is taken
 *             as postmaster@ the first [domain]'s return_path.  Refusals
 *             with 5xx count as protocol errors, so a client guessing
 *             addresses is cut off at [policy] max_errors.
 *   DATA      as submission reads it (smtp_data.c): CRLF.CRLF ends it,
 *             above max_bounce_size 552 5.3.4, a NUL byte, bare CR or LF
 *             or an over-long line 550 5.6.0 (no smuggling).
 *   end       DKIM signatures are verified (policy/dkimverify, on the
 *             thread pool, keys from the [deliver] dns_server resolver),
 *             then the message is handed to the inbound sink with, at
 *             the top: Authentication-Results (RFC 8601: spf and dkim),
 *             Received-SPF (RFC 7208 9.1), both written by policy/authres,
 *             and Received.
 *             Authentication-Results fields that claim our host name as
 *             their authserv-id are removed first (RFC 8601 5): a sender
 *             cannot forge our verdict.  250 only once the sink stored
 *             the message; a sink failure 451 4.3.0.
 *
 * Limits: connections in all and per client address are smtpd.c's
 * ([relay] max_connections, max_connections_per_ip); protocol errors and
 * junk commands end a session as on submission ([policy] max_errors,
 * max_junk_commands); the command and DATA timeouts are [relay]'s; the
 * message rate per client address is [relay] inbound_rate, at MAIL.
 */
#include "relay/smtpd_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/conn.h"
#include "core/log.h"
#include "core/rfc5322.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "policy/authres.h"
#include "queue/qid.h"
#include "relay/inbound_cmd.h"

static void store(struct smtpd_session *s);
static void verify(struct smtpd_session *s);
static bool mail_rate(struct smtpd_session *s, bool spf_none);
static bool mail_spf(struct smtpd_session *s, bool spf_none);

static uint64_t
max_size(const struct config *cfg)
{
	return cfg->mailbox.max_bounce_size;
}

/* --- EHLO, HELP, AUTH ------------------------------------------------------- */

static void
ehlo(struct smtpd_session *s)
{
	const struct config *cfg = s->srv->cfg;

	smtpd__reply(s, "250-%s Hello %s [%s]", cfg->server.hostname, s->helo, s->client);
	smtpd__reply(s, "250-PIPELINING");
	smtpd__reply(s, "250-SIZE %" PRIu64, cfg->mailbox.max_bounce_size);
	smtpd__reply(s, "250-8BITMIME");
	smtpd__reply(s, "250-ENHANCEDSTATUSCODES");
	if (!s->tls)
		smtpd__reply(s, "250-STARTTLS");
	smtpd__reply(s, "250 SMTPUTF8");
}

static bool
run_help(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	smtpd__reply(s, "214 2.0.0 kurier: inbound MX for bounce domains; commands: EHLO HELO STARTTLS MAIL RCPT DATA RSET NOOP QUIT");
	return true;
}

static bool
run_auth(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	/* RFC 4954 is not offered: EHLO does not advertise AUTH. */
	smtpd__reply(s, "502 5.5.1 AUTH is not available here: this server only receives returns");
	s->errors++;
	return true;
}

/* --- MAIL and SPF ----------------------------------------------------------------- */

static bool
check_mail(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	if (smtpd__in_transaction(s)) {
		smtpd__reply(s, "503 5.5.1 Nested MAIL command");
		return false;
	}
	return true;
}

/*
 * spf_done - the SPF verdict of this transaction's identity: refuse it
 * (spf_fail = reject) or record it and accept the MAIL.
 */
static void
spf_done(struct smtpd_session *s, enum spfcheck_verdict v, const char *why)
{
	const struct config *cfg = s->srv->cfg;
	char q[SPFCHECK_WHY_SIZE + 16], qd[300];

	s->spf_result = v;
	str_copy(s->spf_why, why, sizeof s->spf_why);
	log_info("smtpd", "spf", "sid=%s client=%s identity=%s domain=%s result=%s why=%s", s->sid,
	    s->client, s->spf_helo ? "helo" : "mailfrom", log_quotes(qd, sizeof qd, s->spf_domain),
	    spfcheck_verdict_name(v), log_quotes(q, sizeof q, why));
	if (v == SPFCHECK_FAIL && cfg->mailbox.spf_fail == CONFIG_SPF_FAIL_REJECT) {
		struct policy_result res = { .verdict = POLICY_REJECT, .rule = "spf.fail" };

		snprintf(res.reply, sizeof res.reply,
		    "550 5.7.23 SPF validation failed: %s %.100s does not permit %.46s to send",
		    s->spf_helo ? "HELO name" : "sender domain", s->spf_domain, s->client);
		smtpd__refuse(s, &res, NULL);
		smtpd__reset_transaction(s);
		smtpd__enter_state(s, SMTPD_READY);
		return;
	}
	smtpd__enter_state(s, SMTPD_MAIL);
	smtpd__reply(s, "250 2.1.0 Ok");
}

static void
on_spf(void *arg, enum spfcheck_verdict v, const char *why)
{
	struct smtpd_session *s = arg;

	if (smtpd__gone(s)) {
		smtpd__unref(s);
		return;
	}
	spf_done(s, v, why);
	smtpd__flush(s);
	smtpd__resume(s);
	smtpd__unref(s);
}

static bool
run_mail(struct smtpd_session *s, const struct smtp_cmd *c)
{
	const struct config *cfg = s->srv->cfg;
	struct inbound_mail m;
	const char *reply = NULL;
	char replybuf[128];
	int rc;

	smtpd__reset_transaction(s);
	rc = inbound_mail(c->arg, c->arglen, s->helo, cfg->mailbox.max_bounce_size, &m,
	    replybuf, sizeof replybuf, &reply);
	if (rc == -EFBIG) {
		struct policy_result res = { .verdict = POLICY_REJECT, .rule = "limit.size" };

		str_copy(res.reply, reply, sizeof res.reply);
		smtpd__refuse(s, &res, NULL);
		return true;
	}
	if (rc < 0) {
		smtpd__reply(s, "%s", reply);
		s->errors++;
		return true;
	}
	s->from = m.from;
	s->mp = m.mp;
	envelope_set(&s->env.sender, m.sender);
	envelope_set(&s->env.client, s->client);
	envelope_set(&s->env.helo, s->helo);
	if (s->mp.have_envid)
		envelope_set(&s->env.envid, s->mp.envid);
	s->env.flags = (s->mp.smtputf8 ? ENV_F_SMTPUTF8 : 0) |
	    (s->mp.body == SMTP_BODY_8BITMIME ? ENV_F_8BITMIME : 0);
	s->spf_helo = m.spf_helo;
	str_copy(s->spf_domain, m.spf_domain, sizeof s->spf_domain);
	if (s->srv->policy != NULL && cfg->relay.inbound_rate.n > 0)
		return mail_rate(s, m.spf_none);
	return mail_spf(s, m.spf_none);
}

/*
 * mail_spf - the SPF check of the transaction's identity (s->spf_domain).
 * true when answered at once, false while the check is out (on_spf).
 */
static bool
mail_spf(struct smtpd_session *s, bool spf_none)
{
	int rc;

	if (spf_none) {
		spf_done(s, SPFCHECK_NONE, "the identity is not a domain name");
		return true;
	}
	if (s->srv->spf == NULL || s->srv->spf_closing) {
		spf_done(s, SPFCHECK_TEMPERROR, "SPF checks are not running (shutting down)");
		return true;
	}
	smtpd__enter_state(s, SMTPD_MAIL_CHECK);
	smtpd__ref(s);
	rc = spfcheck_eval(s->srv->spf, s->client, s->spf_domain, s->helo, on_spf, s);
	if (rc < 0) {
		smtpd__unref(s);
		smtpd__enter_state(s, SMTPD_READY);
		/* -EINVAL: the identity is no domain name spfcheck would look up. */
		if (rc == -EINVAL)
			spf_done(s, SPFCHECK_NONE, "the identity is not a domain name");
		else
			spf_done(s, SPFCHECK_TEMPERROR, uv_strerror(rc));
		return true;
	}
	return false;
}

/* The rate question's context: the session, and what mail_spf needs after it. */
struct mail_rate_q {
	struct smtpd_session *s;
	bool spf_none;
};

static void
on_mail_rate(void *arg, int status, const struct policy_result *res)
{
	struct mail_rate_q *mq = arg;
	struct smtpd_session *s = mq->s;
	bool spf_none = mq->spf_none;

	free(mq);
	if (smtpd__gone(s)) {
		smtpd__unref(s);
		return;
	}
	if (status < 0 || res->verdict != POLICY_OK) {
		if (status < 0)
			smtpd__policy_down(s, "inbound_rate", status);
		else
			smtpd__refuse(s, res, NULL);
		smtpd__reset_transaction(s);
		smtpd__enter_state(s, SMTPD_READY);
	} else if (!mail_spf(s, spf_none)) {
		smtpd__unref(s);
		return;
	}
	smtpd__flush(s);
	smtpd__resume(s);
	smtpd__unref(s);
}

/*
 * mail_rate - [relay] inbound_rate: one more transaction from this client
 * address (policy_ip_rate counts it), then SPF; over the limit 450 4.7.1,
 * Redis down 451 4.3.0 as submission's rate check.  Returns as mail_spf.
 */
static bool
mail_rate(struct smtpd_session *s, bool spf_none)
{
	struct mail_rate_q *mq = xmalloc(sizeof *mq);
	int rc;

	mq->s = s;
	mq->spf_none = spf_none;
	smtpd__enter_state(s, SMTPD_MAIL_CHECK);
	smtpd__ref(s);
	rc = policy_ip_rate(s->srv->policy, s->client, on_mail_rate, mq);
	if (rc < 0) {
		free(mq);
		smtpd__unref(s);
		smtpd__enter_state(s, SMTPD_READY);
		smtpd__reset_transaction(s);
		smtpd__policy_down(s, "inbound_rate", rc);
		return true;
	}
	return false;
}

/* --- RCPT ------------------------------------------------------------------------ */

static bool
check_rcpt(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	if (!smtpd__in_transaction(s)) {
		smtpd__reply(s, "503 5.5.1 Need MAIL before RCPT");
		return false;
	}
	return true;
}

static enum smtpd_state
rcpt_state(const struct smtpd_session *s)
{
	return s->env.nrcpt > 0 ? SMTPD_RCPT : SMTPD_MAIL;
}

/* rcpt_refuse - a recipient refused with reply under rule; a 5xx counts as an error. */
static void
rcpt_refuse(struct smtpd_session *s, const char *rule, const char *reply)
{
	struct policy_result res = { .verdict = reply[0] == '4' ? POLICY_TEMPFAIL : POLICY_REJECT,
	    .rule = rule };
	char q[MAILADDR_PATH_MAX * 4 + 16];

	str_copy(res.reply, reply, sizeof res.reply);
	snprintf(q, sizeof q, "rcpt=");
	log_quotes(q + 5, sizeof q - 5, s->rcpt_addr);
	smtpd__refuse(s, &res, q);
	s->rcpt_refused++;
	if (reply[0] == '5')
		s->errors++;
}

/* rcpt_verdict - the inbound sink's answer for s->rcpt_addr. */
static void
rcpt_verdict(struct smtpd_session *s, enum smtpd_rcpt_verdict v)
{
	const struct smtp_rcpt_params *rp = &s->rcpt_params;

	switch (v) {
	case SMTPD_RCPT_OK:
		if (envelope_add_rcpt(&s->env, s->rcpt_addr, rp->have_orcpt ? rp->orcpt : NULL,
		    rp->notify) < 0) {
			smtpd__reply(s, "553 5.1.3 Bad recipient address syntax");
			s->rcpt_refused++;
			return;
		}
		smtpd__enter_state(s, SMTPD_RCPT);
		smtpd__reply(s, "250 2.1.5 Ok");
		return;
	case SMTPD_RCPT_UNKNOWN:
		rcpt_refuse(s, "inbound.unknown",
		    "550 5.1.1 Recipient address rejected: no such return address here");
		return;
	case SMTPD_RCPT_RELAY:
		rcpt_refuse(s, "inbound.relay",
		    "550 5.7.1 Relaying denied: this server only accepts returns for its bounce domains");
		return;
	case SMTPD_RCPT_TEMP:
	default:
		rcpt_refuse(s, "inbound.temp", "451 4.3.0 Recipient check unavailable, try again later");
		return;
	}
}

static void
on_rcpt(void *arg, enum smtpd_rcpt_verdict v)
{
	struct smtpd_session *s = arg;

	if (smtpd__gone(s)) {
		smtpd__unref(s);
		return;
	}
	smtpd__enter_state(s, rcpt_state(s));
	rcpt_verdict(s, v);
	smtpd__flush(s);
	smtpd__resume(s);
	smtpd__unref(s);
}

static bool
run_rcpt(struct smtpd_session *s, const struct smtp_cmd *c)
{
	const struct config *cfg = s->srv->cfg;
	const struct smtpd_sink *sink = &s->srv->inbound;
	struct inbound_rcpt r;
	const char *reply = NULL;
	int rc;

	if (s->env.nrcpt >= INBOUND_MAX_RCPT) {
		/* RFC 5321 4.5.3.1.10: 452, and the client sends the rest later. */
		smtpd__reply(s, "452 4.5.3 Too many recipients (at most %d per message)",
		    INBOUND_MAX_RCPT);
		return true;
	}
	if (inbound_rcpt(c->arg, c->arglen, s->mp.smtputf8,
	    cfg->ndomains > 0 ? cfg->domains[0].return_path : NULL, &r, &reply) < 0) {
		smtpd__reply(s, "%s", reply);
		s->errors++;
		s->rcpt_refused++;
		return true;
	}
	for (size_t i = 0; i < s->env.nrcpt; i++) {
		if (strcmp(s->env.rcpt[i].addr, r.addr) == 0) {
			smtpd__reply(s, "250 2.1.5 Ok (duplicate recipient)");
			return true;
		}
	}
	str_copy(s->rcpt_addr, r.addr, sizeof s->rcpt_addr);
	s->rcpt_params = r.rp;
	smtpd__enter_state(s, SMTPD_RCPT_CHECK);
	smtpd__ref(s);
	rc = sink->ops->rcpt(sink->arg, r.addr, on_rcpt, s);
	if (rc < 0) {
		char q[MAILADDR_PATH_MAX * 4 + 16];

		smtpd__unref(s);
		smtpd__enter_state(s, rcpt_state(s));
		log_warn("smtpd", "rcpt_check_failed", "sid=%s client=%s rcpt=%s error=\"%s\" hint=\"check Redis; the client was told to retry\"",
		    s->sid, s->client, log_quotes(q, sizeof q, r.addr), uv_strerror(rc));
		rcpt_verdict(s, SMTPD_RCPT_TEMP);
		return true;
	}
	return false;
}

/* --- the end of DATA ------------------------------------------------------------ */

static void
on_verified(void *arg, int status, const struct dkimverify_report *r)
{
	struct smtpd_session *s = arg;

	if (status == 0) {
		s->dkim = xmalloc(sizeof *s->dkim);
		*s->dkim = *r;
	} else {
		log_warn("smtpd", "dkim_unverified", "sid=%s client=%s error=\"%s\"", s->sid, s->client,
		    uv_strerror(status));
	}
	store(s);
}

/*
 * verify - the DKIM signatures of the message, on the thread pool
 * (policy/dkimverify); then store.  The reference taken at the end of
 * DATA goes with it.  When the verifier is gone (shutting down) the
 * message is stored without a dkim result.
 */
static void
verify(struct smtpd_session *s)
{
	const char *msg = s->body.data != NULL ? s->body.data : "";
	struct smtpd_head f;
	int rc = -ECANCELED;

	smtpd__scan_head(msg, s->body.len, &f);
	if (s->srv->dkim != NULL && !s->srv->dkim_closing)
		rc = dkimverify_start(s->srv->dkim, msg, f.body_start, msg + f.body_start,
		    s->body.len - f.body_start, on_verified, s, NULL);
	if (rc < 0)
		on_verified(s, rc, NULL);
}

static void
data_done(struct smtpd_session *s)
{
	const struct smtp_data_result *res = smtp_data_result(&s->data);

	if (res->too_big) {
		char reply[128], size[32];
		struct policy_result pr = { .verdict = POLICY_REJECT, .rule = "limit.size" };

		snprintf(reply, sizeof reply,
		    "552 5.3.4 Message size exceeds fixed maximum message size (%" PRIu64 " bytes)",
		    s->srv->cfg->mailbox.max_bounce_size);
		str_copy(pr.reply, reply, sizeof pr.reply);
		snprintf(size, sizeof size, "size=%" PRIu64, res->size);
		smtpd__refuse(s, &pr, size);
		smtpd__transaction_over(s);
		return;
	}
	if (smtpd__data_malformed(s))
		return;
	smtpd__enter_state(s, SMTPD_VERIFY);
	smtpd__ref(s);
	verify(s);
}

/*
 * build_head - the header section to store: the fields added at the top
 * (Authentication-Results, Received-SPF, Received), the client's fields
 * but forged Authentication-Results, the empty line.  *body_start: where
 * the body begins in s->body.
 */
static void
build_head(struct smtpd_session *s, struct buf *head, size_t *body_start, time_t now)
{
	const struct config *cfg = s->srv->cfg;
	const char *host = cfg->server.hostname;
	const char *msg = s->body.data ? s->body.data : "";
	struct authres_spf spf = { .result = s->spf_result,
		.mailfrom = s->from.null ? NULL : s->env.sender, .helo = s->helo,
		.client_ip = s->client };
	struct smtpd_head f;
	struct rfc5322_scan sc;
	const char *field, *at;
	size_t fl, dropped = 0;
	char date[64];

	smtpd__scan_head(msg, s->body.len, &f);
	smtpd__date(date, sizeof date, now);

	/* RFC 8601 5 and RFC 7208 9.1: on top, above our Received. */
	authres_format(head, host, &spf, s->dkim);
	authres_received_spf(head, host, &spf);

	buf_appendf(head, "Received: from %s ([%s])\r\n\tby %s (kurier) with %s id %s", s->helo,
	    s->client, host, smtpd__with_protocol(s), s->env.id);
	if (s->tls && s->conn != NULL)
		buf_appendf(head, "\r\n\t(version=%s cipher=%s bits=%d)", conn_tls_version(s->conn),
		    conn_tls_cipher(s->conn), conn_tls_bits(s->conn));
	if (s->env.nrcpt == 1)
		buf_appendf(head, "\r\n\tfor <%s>", s->env.rcpt[0].addr);
	buf_appendf(head, ";\r\n\t%s\r\n", date);

	/* The client's fields, those written in our name left out. */
	rfc5322_scan_init(&sc, msg, f.head_end);
	for (;;) {
		at = sc.p;
		if (!rfc5322_next(&sc, &field, &fl))
			break;
		if (authres_field_is_ours(field, fl, host)) {
			dropped++;
			continue;
		}
		/* The field with its line end, as received (CRLF: smtp_data checked). */
		buf_append(head, at, (size_t)(sc.p - at));
	}
	if (head->len > 0 && head->data[head->len - 1] != '\n')
		buf_appends(head, "\r\n");
	buf_appends(head, "\r\n");
	if (dropped > 0)
		log_info("smtpd", "authres_removed", "sid=%s client=%s fields=%zu reason=\"an Authentication-Results field named this host\"",
		    s->sid, s->client, dropped);
	*body_start = f.body_start;
}

/* dkim_summary - the DKIM results for the log: "pass", "fail,pass", "none", "-" (not verified). */
static void
dkim_summary(const struct smtpd_session *s, char *dst, size_t size)
{
	size_t n = 0;

	if (s->dkim == NULL) {
		str_copy(dst, "-", size);
		return;
	}
	if (s->dkim->nsig == 0) {
		str_copy(dst, "none", size);
		return;
	}
	dst[0] = '\0';
	for (size_t i = 0; i < s->dkim->nsig && n + 12 < size; i++)
		n += (size_t)snprintf(dst + n, size - n, "%s%s", i > 0 ? "," : "",
		    dkimverify_result_name(s->dkim->sig[i].result));
}

static void
on_stored(void *arg, int status, const char *id)
{
	struct smtpd_session *s = arg;
	char qf[600], qr[600], dkim[DKIMVERIFY_MAX_SIGS * 12 + 16];

	dkim_summary(s, dkim, sizeof dkim);
	if (status == 0) {
		s->msgs++;
		s->junk = 0;
		log_info("smtpd", "inbound_accepted", "id=%s sid=%s client=%s from=%s rcpt=%s nrcpt=%zu size=%" PRIu64 " spf=%s dkim=%s tls=%s delay_ms=%" PRIu64,
		    id, s->sid, s->client, log_quotes(qf, sizeof qf, s->env.sender),
		    log_quotes(qr, sizeof qr, s->env.nrcpt > 0 ? s->env.rcpt[0].addr : ""),
		    s->env.nrcpt, s->env.size, spfcheck_verdict_name(s->spf_result),
		    dkim,
		    s->tls ? "yes" : "no", uv_now(s->srv->loop) - s->data_started_ms);
		if (s->conn != NULL)
			smtpd__reply(s, "250 2.0.0 Ok: stored as %s", id);
		else
			log_warn("smtpd", "stored_after_disconnect", "id=%s sid=%s hint=\"the client may send it again\"",
			    id, s->sid);
	} else {
		log_error("smtpd", "inbound_store_failed", "id=%s sid=%s client=%s error=\"%s\" hint=\"check Redis; the client was told to retry\"",
		    id != NULL ? id : s->env.id, s->sid, s->client, uv_strerror(status));
		if (s->conn != NULL)
			smtpd__reply(s, "451 4.3.0 Mailbox unavailable, try again later");
	}
	smtpd__store_over(s);
}

/* store - hand the message to the inbound sink.  The reference taken at the end of DATA goes with it. */
static void
store(struct smtpd_session *s)
{
	struct buf head = BUF_INIT;
	struct timespec ts;
	size_t body_start;
	int rc;

	if (smtpd__gone(s)) {
		smtpd__unref(s);
		return;
	}
	smtpd__enter_state(s, SMTPD_QUEUING);
	clock_gettime(CLOCK_REALTIME, &ts);
	qid_new(s->env.id, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
	s->env.size = smtp_data_result(&s->data)->size;
	build_head(s, &head, &body_start, ts.tv_sec);
	rc = smtpd__sink_store(s, &s->srv->inbound, &head, body_start, on_stored);
	if (rc < 0)
		on_stored(s, rc, NULL);
}

/* --- the table -------------------------------------------------------------------- */

static const struct smtpd_cmd commands[] = {
	{ SMTP_EHLO, "EHLO", CMD_LAST, smtpd__check_helo, smtpd__run_helo },
	{ SMTP_HELO, "HELO", CMD_LAST, smtpd__check_helo, smtpd__run_helo },
	{ SMTP_STARTTLS, "STARTTLS", CMD_NO_ARG | CMD_NO_TRANS | CMD_LAST, smtpd__check_starttls, smtpd__run_starttls },
	{ SMTP_AUTH, "AUTH", CMD_LAST, NULL, run_auth },
	{ SMTP_MAIL, "MAIL", CMD_NEED_EHLO, check_mail, run_mail },
	{ SMTP_RCPT, "RCPT", CMD_NEED_EHLO, check_rcpt, run_rcpt },
	{ SMTP_DATA, "DATA", CMD_NEED_EHLO | CMD_NO_ARG | CMD_LAST, smtpd__check_data, smtpd__run_data },
	{ SMTP_RSET, "RSET", CMD_NO_ARG | CMD_JUNK, NULL, smtpd__run_rset },
	{ SMTP_NOOP, "NOOP", CMD_LAST | CMD_JUNK, NULL, smtpd__run_noop },
	{ SMTP_QUIT, "QUIT", CMD_NO_ARG | CMD_LAST, NULL, smtpd__run_quit },
	{ SMTP_HELP, "HELP", CMD_JUNK, NULL, run_help },
	{ SMTP_VRFY, "VRFY", CMD_LAST | CMD_JUNK, NULL, smtpd__run_vrfy },
	{ SMTP_EXPN, "EXPN", CMD_LAST | CMD_JUNK, NULL, smtpd__run_not_offered },
	{ SMTP_BDAT, "BDAT", CMD_LAST, NULL, smtpd__run_not_offered },
	{ SMTP_UNKNOWN, NULL, 0, NULL, NULL },
};

const struct smtpd_proto smtpd__inbound = {
	.name = "inbound",
	.commands = commands,
	.ehlo = ehlo,
	.auth_line = NULL,
	.data_done = data_done,
	.max_size = max_size,
};
