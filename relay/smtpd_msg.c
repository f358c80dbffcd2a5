/*
 * smtpd_msg - the mail transaction of a submission session: MAIL (and
 * the trusted_user a trusted client acts as), RCPT with policy's verdict,
 * DATA, and the end of DATA: refuse what must not be relayed, add the
 * trace and the fields a submission server adds (RFC 6409 8), hand the
 * message to the server's sink, and answer 250 only once it is stored.
 * Calls only the session core.
 *
 * Before it is stored, policy has its say: the size and the From header
 * (policy_check_headers).  The user's rates were checked at each RCPT;
 * once the message is stored it is counted (policy_count), unawaited:
 * a count is a Redis write, and with appendfsync always a write before
 * the store would put a second fsync between the end of DATA and the
 * 250 (policy.h says what that trades).  Recipients dropped at RCPT
 * (suppressed = drop) are logged here; when all were, nothing is stored
 * and the client still gets a 250.
 *
 * The message is otherwise stored byte for byte as received (after
 * dot-unstuffing), handed over as the header section (with what is
 * added) and the body apart: the body is never copied again, and the
 * scan that found where the header section ends (core/rfc5322) is the
 * only one.  What is added:
 *   Received:    first, with TLS version and cipher and the user (RFC 5321
 *                4.4; "with ESMTPSA" per RFC 3848, UTF8SMTPSA per RFC 6531;
 *                a trusted client that did not authenticate: "with ESMTP"
 *                or "ESMTPS" and the user it acts as)
 *   Message-ID:  at the end of the header section, when there is none
 *   Date:        likewise (RFC 6409 8.2, 8.3)
 * The stream: a message with List-Unsubscribe or "Precedence: bulk" or
 * "list" is broadcast mail (newsletters), everything else transactional.
 */
#include "relay/smtpd_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/conn.h"
#include "core/log.h"
#include "core/rfc5322.h"
#include "core/str.h"
#include "policy/check.h"
#include "queue/qid.h"

/* --- MAIL, RCPT, DATA ---------------------------------------------------------- */

bool
smtpd__check_mail(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	if (smtpd__in_transaction(s)) {
		smtpd__reply(s, "503 5.5.1 Nested MAIL command");
		return false;
	}
	/* A client in [relay] trusted_networks may send without TLS or AUTH. */
	if (!s->authed && !s->trusted) {
		smtpd__reply(s, "530 5.7.0 Authentication required");
		return false;
	}
	return true;
}

static void
on_trusted_user(void *arg, int status, const struct auth_user *user)
{
	struct smtpd_session *s = arg;
	const char *name = s->srv->cfg->relay.trusted_user;

	if (smtpd__gone(s)) {
		smtpd__unref(s);
		return;
	}
	smtpd__enter_state(s, SMTPD_READY);
	if (status == 0) {
		struct smtp_cmd c = { .verb = SMTP_MAIL, .arg = s->mail_arg, .arglen = s->mail_arglen };

		smtpd__set_user(s, user);
		log_info("smtpd", "trusted", "sid=%s client=%s user=%s", s->sid, s->client, user->name);
		smtpd__run_mail(s, &c);
	} else if (status == -ENOENT) {
		struct policy_result res = { .verdict = POLICY_TEMPFAIL, .rule = "trusted_user" };

		log_error("smtpd", "trusted_user_missing", "sid=%s client=%s user=%s hint=\"[relay] trusted_user names no enabled user: create it (kurierctl user add %s --domains ...) or enable it\"",
		    s->sid, s->client, name, name);
		snprintf(res.reply, sizeof res.reply,
		    "451 4.3.5 Server configuration problem: trusted_user %s does not exist", name);
		smtpd__refuse(s, &res, NULL);
	} else {
		smtpd__policy_down(s, "trusted_user", status);
	}
	smtpd__flush(s);
	smtpd__resume(s);
	smtpd__unref(s);
}

/*
 * fetch_trusted_user - a trusted client's first MAIL: fetch the user it
 * acts as, then run the MAIL (its argument kept meanwhile).  False when
 * input must wait for the answer.
 */
static bool
fetch_trusted_user(struct smtpd_session *s, const struct smtp_cmd *c)
{
	int rc;

	memcpy(s->mail_arg, c->arg, c->arglen);
	s->mail_arglen = c->arglen;
	smtpd__enter_state(s, SMTPD_USER_FETCH);
	smtpd__ref(s);
	rc = s->srv->users.ops->user_get(s->srv->users.arg, s->srv->cfg->relay.trusted_user,
	    on_trusted_user, s);
	if (rc < 0) {
		smtpd__unref(s);
		smtpd__enter_state(s, SMTPD_READY);
		smtpd__policy_down(s, "trusted_user", rc);
		return true;
	}
	return false;
}

bool
smtpd__run_mail(struct smtpd_session *s, const struct smtp_cmd *c)
{
	const struct config *cfg = s->srv->cfg;
	const char *reply = NULL;
	char addr[MAILADDR_PATH_MAX * 4], q[MAILADDR_PATH_MAX * 4 + 16];
	struct policy_result res;

	if (!s->has_user) {
		if (c->arglen >= sizeof s->mail_arg) {
			smtpd__reply(s, "500 5.5.2 Line too long");
			s->errors++;
			return true;
		}
		return fetch_trusted_user(s, c);
	}
	smtpd__reset_transaction(s);
	if (smtp_parse_mail(c->arg, c->arglen, true, &s->from, &s->mp, &reply) < 0) {
		smtpd__reply(s, "%s", reply);
		s->errors++;
		return true;
	}
	if (s->mp.body == SMTP_BODY_BINARYMIME) {
		/* RFC 3030 3: BINARYMIME is for BDAT only, and CHUNKING is not offered. */
		smtpd__reply(s, "555 5.5.4 BODY=BINARYMIME needs CHUNKING, which is not offered");
		s->errors++;
		return true;
	}
	mailaddr_format(&s->from, addr, sizeof addr);
	snprintf(q, sizeof q, "from=");
	log_quotes(q + 5, sizeof q - 5, addr);
	if (s->from.null) {
		/* Bounces come from the MTA, never from a submitting site. */
		res = (struct policy_result){ .verdict = POLICY_REJECT, .rule = "sender.null" };
		snprintf(res.reply, sizeof res.reply,
		    "550 5.7.1 The null sender is not allowed for submission");
		smtpd__refuse(s, &res, q);
		return true;
	}
	if (!policy_check_sender(s->user.domains, s->from.domain, false, &res) ||
	    (s->mp.have_size && !policy_check_size(cfg, s->mp.size, &res))) {
		smtpd__refuse(s, &res, q);
		return true;
	}
	envelope_set(&s->env.sender, addr);
	envelope_set(&s->env.user, s->user.name);
	envelope_set(&s->env.client, s->client);
	envelope_set(&s->env.helo, s->helo);
	if (s->mp.have_envid)
		envelope_set(&s->env.envid, s->mp.envid);
	s->env.ret = s->mp.ret;
	s->env.flags = (s->mp.smtputf8 ? ENV_F_SMTPUTF8 : 0) |
	    (s->mp.body == SMTP_BODY_8BITMIME ? ENV_F_8BITMIME : 0);
	smtpd__enter_state(s, SMTPD_MAIL);
	smtpd__reply(s, "250 2.1.0 Ok");
	return true;
}

bool
smtpd__check_rcpt(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	if (!smtpd__in_transaction(s)) {
		smtpd__reply(s, "503 5.5.1 Need MAIL before RCPT");
		return false;
	}
	return true;
}

/* Whether two addresses are one recipient: the local part as written
 * (RFC 5321 2.4: it may be case-sensitive), the domain without case. */
static bool
same_rcpt(const char *a, const char *b)
{
	const char *at = strrchr(a, '@'), *bt = strrchr(b, '@');
	size_t al = at ? (size_t)(at - a) : strlen(a);
	size_t bl = bt ? (size_t)(bt - b) : strlen(b);

	return al == bl && memcmp(a, b, al) == 0 && (at == NULL) == (bt == NULL) &&
	    (at == NULL || strcasecmp(at, bt) == 0);
}

/* rcpt_seen - whether addr was accepted already (queued or dropped). */
static bool
rcpt_seen(const struct smtpd_session *s, const char *addr)
{
	const char *d = s->dropped.data;

	for (size_t i = 0; i < s->env.nrcpt; i++)
		if (same_rcpt(s->env.rcpt[i].addr, addr))
			return true;
	for (size_t i = 0; i < s->ndropped; i++, d += strlen(d) + 1)
		if (same_rcpt(d, addr))
			return true;
	return false;
}

/* The state after a RCPT: RCPT once any recipient was accepted. */
static enum smtpd_state
rcpt_state(const struct smtpd_session *s)
{
	return s->env.nrcpt + s->ndropped > 0 ? SMTPD_RCPT : SMTPD_MAIL;
}

static void
rcpt_add(struct smtpd_session *s)
{
	const struct smtp_rcpt_params *rp = &s->rcpt_params;

	if (envelope_add_rcpt(&s->env, s->rcpt_addr, rp->have_orcpt ? rp->orcpt : NULL,
	    rp->notify) < 0) {
		smtpd__reply(s, "553 5.1.3 Bad recipient address syntax");
		s->rcpt_refused++;
		return;
	}
	smtpd__enter_state(s, SMTPD_RCPT);
	smtpd__reply(s, "250 2.1.5 Ok");
}

static void
on_rcpt_checked(void *arg, int status, const struct policy_result *res)
{
	struct smtpd_session *s = arg;
	char q[MAILADDR_PATH_MAX * 4 + 16];

	if (smtpd__gone(s)) {
		smtpd__unref(s);
		return;
	}
	smtpd__enter_state(s, rcpt_state(s));
	if (status < 0) {
		smtpd__policy_down(s, "rcpt", status);
		s->rcpt_refused++;
	} else if (res->verdict == POLICY_OK) {
		rcpt_add(s);
	} else if (res->verdict == POLICY_DROP) {
		/* Accepted for the client, never delivered; logged at the end of DATA. */
		buf_append(&s->dropped, s->rcpt_addr, strlen(s->rcpt_addr) + 1);
		s->ndropped++;
		smtpd__enter_state(s, SMTPD_RCPT);
		smtpd__reply(s, "250 2.1.5 Ok");
	} else {
		snprintf(q, sizeof q, "rcpt=");
		log_quotes(q + 5, sizeof q - 5, s->rcpt_addr);
		smtpd__refuse(s, res, q);
		s->rcpt_refused++;
	}
	smtpd__flush(s);
	smtpd__resume(s);
	smtpd__unref(s);
}

bool
smtpd__run_rcpt(struct smtpd_session *s, const struct smtp_cmd *c)
{
	struct mailaddr to;
	struct smtp_rcpt_params rp;
	struct policy_result res;
	const char *reply = NULL;
	char addr[MAILADDR_PATH_MAX * 4], q[MAILADDR_PATH_MAX * 4 + 16];
	int rc;

	if (!policy_check_rcpt_count(s->srv->cfg, s->env.nrcpt + s->ndropped, &res)) {
		/* RFC 5321 4.5.3.1.10: 452, and the client sends the rest later. */
		smtpd__refuse(s, &res, NULL);
		return true;
	}
	if (smtp_parse_rcpt(c->arg, c->arglen, s->mp.smtputf8, &to, &rp, &reply) < 0) {
		smtpd__reply(s, "%s", reply);
		s->errors++;
		s->rcpt_refused++;
		return true;
	}
	if (mailaddr_format(&to, addr, sizeof addr) < 0) {
		smtpd__reply(s, "553 5.1.3 Bad recipient address syntax");
		s->rcpt_refused++;
		return true;
	}
	if (rcpt_seen(s, addr)) {
		/* Accepted once, delivered once (as Postfix and Exim do). */
		smtpd__reply(s, "250 2.1.5 Ok (duplicate recipient)");
		return true;
	}
	snprintf(q, sizeof q, "rcpt=");
	log_quotes(q + 5, sizeof q - 5, addr);
	if (!policy_check_rcpt_domain(s->user.rcpt_domains, to.domain, &res)) {
		smtpd__refuse(s, &res, q);
		s->rcpt_refused++;
		return true;
	}
	str_copy(s->rcpt_addr, addr, sizeof s->rcpt_addr);
	s->rcpt_params = rp;
	if (s->srv->policy == NULL) {
		rcpt_add(s);
		return true;
	}
	/* Suppression and rates: one Redis round trip; input waits for it. */
	smtpd__enter_state(s, SMTPD_RCPT_CHECK);
	smtpd__ref(s);
	rc = policy_rcpt(s->srv->policy, &s->pu, s->from.domain, addr, s->env.nrcpt,
	    on_rcpt_checked, s);
	if (rc < 0) {
		smtpd__unref(s);
		smtpd__enter_state(s, rcpt_state(s));
		smtpd__policy_down(s, "rcpt", rc);
		s->rcpt_refused++;
		return true;
	}
	return false;
}

bool
smtpd__check_data(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	if (s->state == SMTPD_MAIL) {
		smtpd__reply(s, s->rcpt_refused ? "554 5.5.1 No valid recipients" :
		    "503 5.5.1 Need RCPT before DATA");
		return false;
	}
	if (s->state != SMTPD_RCPT) {
		smtpd__reply(s, "503 5.5.1 Need MAIL before DATA");
		return false;
	}
	return true;
}

bool
smtpd__run_data(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	buf_reset(&s->body);
	smtp_data_init(&s->data, &s->body, s->proto->max_size(s->srv->cfg));
	s->data_started_ms = uv_now(s->srv->loop);
	smtpd__enter_state(s, SMTPD_DATA);
	/* One timer for the whole DATA phase, not one per line. */
	smtpd__arm_timer(s, s->srv->cfg->relay.data_timeout_ms);
	smtpd__reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtpd__flush(s);
	return true;
}

/* --- the end of DATA ------------------------------------------------------------ */

/* Whether the value of field f (after its colon) holds word, ASCII case ignored. */
static bool
value_has(const char *f, size_t fl, const char *word)
{
	const char *colon = rfc5322_field_colon(f, fl);
	size_t wl = strlen(word);

	if (colon == NULL)
		return false;
	for (const char *p = colon + 1; p + wl <= f + fl; p++)
		if (strncasecmp(p, word, wl) == 0)
			return true;
	return false;
}

void
smtpd__scan_head(const char *msg, size_t len, struct smtpd_head *f)
{
	struct rfc5322_scan sc;
	const char *field, *at;
	size_t fl;

	memset(f, 0, sizeof *f);
	rfc5322_scan_init(&sc, msg, len);
	for (;;) {
		at = sc.p;
		if (!rfc5322_next(&sc, &field, &fl))
			break;
		if (!rfc5322_is_field(field, fl)) {
			f->head_end = f->body_start = (size_t)(at - msg);
			return;
		}
		if (rfc5322_field_is(field, fl, "Message-ID"))
			f->message_id = true;
		else if (rfc5322_field_is(field, fl, "Date"))
			f->date = true;
		else if (rfc5322_field_is(field, fl, "List-Unsubscribe"))
			f->bulk = true;
		else if (rfc5322_field_is(field, fl, "Precedence") &&
		    (value_has(field, fl, "bulk") || value_has(field, fl, "list")))
			f->bulk = true;
	}
	if (sc.body != NULL) {
		f->has_blank = true;
		f->head_end = (size_t)(at - msg);
		f->body_start = (size_t)(sc.body - msg);
	} else {
		f->head_end = f->body_start = len;
	}
}

void
smtpd__date(char *dst, size_t size, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	/* Names in English whatever the locale: RFC 5322 3.3. */
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	snprintf(dst, size, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
	    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

const char *
smtpd__with_protocol(const struct smtpd_session *s)
{
	bool utf8 = (s->env.flags & ENV_F_SMTPUTF8) != 0;

	/* RFC 5321 4.4: a client that greeted with HELO spoke plain SMTP. */
	if (!s->esmtp)
		return "SMTP";
	if (!s->authed) {
		if (s->tls)
			return utf8 ? "UTF8SMTPS" : "ESMTPS";
		return utf8 ? "UTF8SMTP" : "ESMTP";
	}
	if (s->tls)
		return utf8 ? "UTF8SMTPSA" : "ESMTPSA";
	return utf8 ? "UTF8SMTPA" : "ESMTPA";
}

/*
 * build_head - the header section to store, in head: the trace field,
 * the client's header section, the fields it lacks, the empty line.
 * *body_start: where the body begins in s->body, stored as it is.
 */
static void
build_head(struct smtpd_session *s, struct buf *head, size_t *body_start, time_t now)
{
	const char *msg = s->body.data ? s->body.data : "";
	struct smtpd_head f;
	char date[64];

	smtpd__scan_head(msg, s->body.len, &f);
	smtpd__date(date, sizeof date, now);
	buf_appendf(head, "Received: from %s ([%s])\r\n\tby %s (kurier) with %s id %s", s->helo,
	    s->client, s->srv->cfg->server.hostname, smtpd__with_protocol(s), s->env.id);
	if (s->tls && s->conn != NULL)
		buf_appendf(head, "\r\n\t(version=%s cipher=%s bits=%d)", conn_tls_version(s->conn),
		    conn_tls_cipher(s->conn), conn_tls_bits(s->conn));
	if (s->authed)
		buf_appendf(head, "\r\n\t(authenticated user %s)", s->user.name);
	else
		buf_appendf(head, "\r\n\t(trusted network, acting as user %s)", s->user.name);
	if (s->env.nrcpt == 1)
		buf_appendf(head, "\r\n\tfor <%s>", s->env.rcpt[0].addr);
	buf_appendf(head, ";\r\n\t%s\r\n", date);
	buf_append(head, msg, f.head_end);
	if (!f.has_blank && f.head_end > 0 && msg[f.head_end - 1] != '\n')
		buf_appends(head, "\r\n");
	if (!f.message_id)
		buf_appendf(head, "Message-ID: <%s@%s>\r\n", s->env.id, s->srv->cfg->server.hostname);
	if (!f.date)
		buf_appendf(head, "Date: %s\r\n", date);
	buf_appends(head, "\r\n");
	*body_start = f.body_start;
	s->env.stream = f.bulk ? STREAM_BROADCAST : STREAM_TRANSACTIONAL;
}

void
smtpd__transaction_over(struct smtpd_session *s)
{
	smtpd__reset_transaction(s);
	if (s->conn == NULL)
		return;
	smtpd__enter_state(s, SMTPD_READY);
	smtpd__arm_timer(s, s->srv->cfg->relay.command_timeout_ms);
	if (s->srv->stopping)
		smtpd__shutdown(s);
}

int
smtpd__sink_store(struct smtpd_session *s, const struct smtpd_sink *sink, struct buf *head,
    size_t body_start, smtpd_stored_cb *done)
{
	struct smtpd_message m;
	int rc;

	m.head = head->data;
	m.head_len = head->len;
	m.body = s->body.data != NULL ? s->body.data + body_start : "";
	m.body_len = s->body.len - body_start;
	rc = sink->ops->store(sink->arg, &s->env, &m, done, s);
	buf_free(head);
	buf_free(&s->body);
	return rc;
}

void
smtpd__store_over(struct smtpd_session *s)
{
	smtpd__transaction_over(s);
	if (s->conn != NULL) {
		smtpd__flush(s);
		smtpd__resume(s);
	}
	smtpd__unref(s);
}

/* log_dropped - the recipients dropped at RCPT (suppressed = drop), one line each. */
static void
log_dropped(struct smtpd_session *s, const char *id)
{
	const char *d = s->dropped.data;
	char qf[600], qt[600];

	for (size_t i = 0; i < s->ndropped; i++, d += strlen(d) + 1)
		log_info("smtpd", "dropped", "id=%s sid=%s client=%s user=%s from=%s to=%s reason=suppressed",
		    id, s->sid, s->client, s->user.name, log_quotes(qf, sizeof qf, s->env.sender),
		    log_quotes(qt, sizeof qt, d));
}

/*
 * count - the message is queued: count it against its user's rates.
 * Nobody waits for the answer; an error reply is logged by policy.
 */
static void
count(struct smtpd_session *s)
{
	int rc;

	if (s->srv->policy == NULL)
		return;
	rc = policy_count(s->srv->policy, &s->pu, s->env.nrcpt, NULL, NULL);
	if (rc < 0)
		log_warn("smtpd", "count_failed", "sid=%s user=%s error=\"%s\" hint=\"this message is missing from its user's rate counters\"",
		    s->sid, s->user.name, uv_strerror(rc));
}

static void
on_stored(void *arg, int status, const char *id)
{
	struct smtpd_session *s = arg;
	char qf[600];

	if (status == 0) {
		s->msgs++;
		s->junk = 0;
		log_info("smtpd", "queued", "id=%s sid=%s client=%s user=%s from=%s nrcpt=%zu size=%" PRIu64 " stream=%s tls=%s delay_ms=%" PRIu64,
		    id, s->sid, s->client, s->user.name, log_quotes(qf, sizeof qf, s->env.sender),
		    s->env.nrcpt, s->env.size, stream_name(s->env.stream), s->tls ? "yes" : "no",
		    uv_now(s->srv->loop) - s->data_started_ms);
		log_dropped(s, id);
		count(s);
		if (s->conn != NULL)
			smtpd__reply(s, "250 2.0.0 Ok: queued as %s", id);
		else
			log_warn("smtpd", "queued_after_disconnect", "id=%s sid=%s hint=\"the client may send it again\"",
			    id, s->sid);
	} else {
		log_error("smtpd", "queue_failed", "id=%s sid=%s client=%s error=\"%s\" hint=\"check Redis; the client was told to retry\"",
		    id, s->sid, s->client, uv_strerror(status));
		if (s->conn != NULL)
			smtpd__reply(s, "451 4.3.0 Queue unavailable, try again later");
	}
	smtpd__store_over(s);
}

/* store - build the header section and hand the message to the sink.  Takes a reference. */
static void
store(struct smtpd_session *s)
{
	struct buf head = BUF_INIT;
	struct timespec ts;
	size_t body_start;
	int rc;

	clock_gettime(CLOCK_REALTIME, &ts);
	qid_new(s->env.id, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
	build_head(s, &head, &body_start, ts.tv_sec);
	rc = smtpd__sink_store(s, &s->srv->sink, &head, body_start, on_stored);
	if (rc < 0) {
		log_error("smtpd", "queue_failed", "id=%s sid=%s client=%s error=\"%s\" hint=\"check Redis; the client was told to retry\"",
		    s->env.id, s->sid, s->client, uv_strerror(rc));
		smtpd__reply(s, "451 4.3.0 Queue unavailable, try again later");
		smtpd__transaction_over(s);
		smtpd__flush(s);
		smtpd__resume(s);
		smtpd__unref(s);
	}
}

void
smtpd__refuse_data(struct smtpd_session *s, const char *rule, const char *reply)
{
	struct policy_result res = { .verdict = reply[0] == '4' ? POLICY_TEMPFAIL : POLICY_REJECT,
	    .rule = rule };

	str_copy(res.reply, reply, sizeof res.reply);
	smtpd__refuse(s, &res, NULL);
}

bool
smtpd__data_malformed(struct smtpd_session *s)
{
	const struct smtp_data_result *res = smtp_data_result(&s->data);
	const char *refusal = NULL;

	if (res->nul)
		refusal = "550 5.6.0 Message contains a NUL byte";
	else if (res->bare_lf || res->bare_cr)
		refusal = "550 5.6.0 Message contains a bare CR or LF (RFC 5321 2.3.8): lines must end with CRLF";
	else if (res->line_too_long)
		refusal = "550 5.6.0 Message contains a line longer than 998 characters (RFC 5321 4.5.3.1.6)";
	if (refusal == NULL)
		return false;
	smtpd__refuse_data(s, "message.syntax", refusal);
	smtpd__transaction_over(s);
	return true;
}

void
smtpd__data_done(struct smtpd_session *s)
{
	const struct smtp_data_result *res = smtp_data_result(&s->data);
	struct policy_result pr;
	char from_domain[256], size[32];

	snprintf(size, sizeof size, "size=%" PRIu64, res->size);
	if (res->too_big) {
		if (policy_check_size(s->srv->cfg, res->size, &pr))
			smtpd__refuse_data(s, "limit.size", "552 5.3.4 Message size exceeds fixed maximum message size");
		else
			smtpd__refuse(s, &pr, size);
		smtpd__transaction_over(s);
		return;
	}
	if (smtpd__data_malformed(s))
		return;
	if (!policy_check_headers(s->user.domains, s->body.data ? s->body.data : "", s->body.len,
	    from_domain, sizeof from_domain, &pr)) {
		smtpd__refuse(s, &pr, size);
		smtpd__transaction_over(s);
		return;
	}
	if (s->env.nrcpt == 0) {
		/* Every recipient was suppressed and dropped: the client is told it is done. */
		s->junk = 0;
		log_dropped(s, "-");
		smtpd__reply(s, "250 2.0.0 Ok: every recipient is suppressed; nothing was queued");
		smtpd__transaction_over(s);
		return;
	}
	smtpd__enter_state(s, SMTPD_QUEUING);
	smtpd__ref(s);
	store(s);
}
