/*
 * smtpd_msg - the end of DATA: refuse what must not be relayed, add the
 * trace and the fields a submission server adds (RFC 6409 8), hand the
 * message to the queue, and answer 250 only once it is stored.
 *
 * Before it is queued, policy has its say: the size and the From header
 * (policy_check_headers).  The user's rates were checked at each RCPT;
 * once the message is queued it is counted (policy_count), unawaited:
 * a count is a Redis write, and with appendfsync always a write before
 * the enqueue would put a second fsync between the end of DATA and the
 * 250 (policy.h says what that trades).  Recipients dropped at RCPT
 * (suppressed = drop) are logged here; when all were, nothing is queued
 * and the client still gets a 250.
 *
 * The message is otherwise stored byte for byte as received (after
 * dot-unstuffing).  What is added:
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
#include "core/str.h"
#include "policy/check.h"
#include "queue/qid.h"
#include "queue/queue.h"

struct header_facts {
	size_t head_end;       /* offset of the empty line ending the header section */
	bool has_blank;        /* the section ends with an empty line */
	bool message_id;
	bool date;
	bool bulk;
};

/* Whether a header line starts with field name (case-insensitive) and ':'. */
static bool
field_is(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) != 0)
		return false;
	for (size_t i = n; i < len; i++) {
		if (line[i] == ':')
			return true;
		if (line[i] != ' ' && line[i] != '\t')
			return false;
	}
	return false;
}

/*
 * Whether a line starts a header field: a name of printable ASCII but
 * ':', optional white space (RFC 5322 4.5.x obsolete syntax), ':'.
 */
static bool
is_field(const char *line, size_t len)
{
	size_t i, n;

	for (i = 0; i < len && line[i] > ' ' && line[i] < 0x7f && line[i] != ':'; i++)
		;
	n = i;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return n > 0 && i < len && line[i] == ':';
}

static bool
value_has(const char *line, size_t len, const char *word)
{
	const char *colon = memchr(line, ':', len);
	size_t wl = strlen(word);

	if (colon == NULL)
		return false;
	for (const char *p = colon + 1; p + wl <= line + len; p++)
		if (strncasecmp(p, word, wl) == 0)
			return true;
	return false;
}

static void
scan_headers(const char *msg, size_t len, struct header_facts *f)
{
	size_t pos = 0;

	memset(f, 0, sizeof *f);
	f->head_end = len;
	while (pos < len) {
		const char *line = msg + pos;
		const char *lf = memchr(line, '\n', len - pos);
		size_t ll = lf ? (size_t)(lf - line) : len - pos;
		size_t text = ll > 0 && line[ll - 1] == '\r' ? ll - 1 : ll;

		if (text == 0) {
			f->head_end = pos;
			f->has_blank = true;
			return;
		}
		/*
		 * A line that is neither a field nor a continuation (white
		 * space first) of one starts the body: the blank line is
		 * missing (RFC 5322 2.1), and is added before it.
		 */
		if ((line[0] == ' ' || line[0] == '\t') ? pos == 0 : !is_field(line, text)) {
			f->head_end = pos;
			return;
		}
		if (line[0] != ' ' && line[0] != '\t') {
			if (field_is(line, text, "Message-ID"))
				f->message_id = true;
			else if (field_is(line, text, "Date"))
				f->date = true;
			else if (field_is(line, text, "List-Unsubscribe"))
				f->bulk = true;
			else if (field_is(line, text, "Precedence") &&
			    (value_has(line, text, "bulk") || value_has(line, text, "list")))
				f->bulk = true;
		}
		pos += ll + (lf ? 1 : 0);
	}
}

static void
rfc5322_date(char *dst, size_t size, time_t t)
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

static const char *
with_protocol(const struct smtpd_session *s)
{
	bool utf8 = (s->env.flags & ENV_F_SMTPUTF8) != 0;

	if (!s->authed) {
		if (s->tls)
			return utf8 ? "UTF8SMTPS" : "ESMTPS";
		return utf8 ? "UTF8SMTP" : "ESMTP";
	}
	if (s->tls)
		return utf8 ? "UTF8SMTPSA" : "ESMTPSA";
	return utf8 ? "UTF8SMTPA" : "ESMTPA";
}

static void
build_message(struct smtpd_session *s, struct buf *m, time_t now)
{
	const char *body = s->body.data ? s->body.data : "";
	size_t len = s->body.len;
	struct header_facts f;
	char date[64];

	scan_headers(body, len, &f);
	rfc5322_date(date, sizeof date, now);
	buf_appendf(m, "Received: from %s ([%s])\r\n\tby %s (kurier) with %s id %s", s->helo,
	    s->client, s->srv->cfg->server.hostname, with_protocol(s), s->env.id);
	if (s->tls && s->conn != NULL)
		buf_appendf(m, "\r\n\t(version=%s cipher=%s bits=%d)", conn_tls_version(s->conn),
		    conn_tls_cipher(s->conn), conn_tls_bits(s->conn));
	if (s->authed)
		buf_appendf(m, "\r\n\t(authenticated user %s)", s->user.name);
	else
		buf_appendf(m, "\r\n\t(trusted network, acting as user %s)", s->user.name);
	if (s->env.nrcpt == 1)
		buf_appendf(m, "\r\n\tfor <%s>", s->env.rcpt[0].addr);
	buf_appendf(m, ";\r\n\t%s\r\n", date);
	buf_append(m, body, f.head_end);
	if (!f.has_blank && f.head_end > 0 && body[f.head_end - 1] != '\n')
		buf_appends(m, "\r\n");
	if (!f.message_id)
		buf_appendf(m, "Message-ID: <%s@%s>\r\n", s->env.id, s->srv->cfg->server.hostname);
	if (!f.date)
		buf_appendf(m, "Date: %s\r\n", date);
	if (!f.has_blank)
		buf_appends(m, "\r\n");
	buf_append(m, body + f.head_end, len - f.head_end);
	s->env.stream = f.bulk ? STREAM_BROADCAST : STREAM_TRANSACTIONAL;
}

static void
transaction_over(struct smtpd_session *s)
{
	smtpd__reset_transaction(s);
	if (s->conn == NULL)
		return;
	smtpd__enter_state(s, SMTPD_READY);
	smtpd__arm_timer(s, s->srv->cfg->relay.command_timeout_ms);
	if (s->srv->stopping) {
		smtpd__reply(s, "421 4.3.2 %s Service shutting down, try again later",
		    s->srv->cfg->server.hostname);
		smtpd__close(s);
	}
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
on_queued(void *arg, int status, const char *id)
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
	transaction_over(s);
	if (s->conn != NULL) {
		smtpd__flush(s);
		smtpd__resume(s);
	}
	smtpd__unref(s);
}

/* enqueue - build the message and hand it to the queue.  Takes a reference. */
static void
enqueue(struct smtpd_session *s)
{
	struct buf m = BUF_INIT;
	struct timespec ts;
	int rc;

	clock_gettime(CLOCK_REALTIME, &ts);
	qid_new(s->env.id, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
	build_message(s, &m, ts.tv_sec);
	buf_free(&s->body);
	rc = queue_enqueue(s->srv->queue, &s->env, m.data, m.len, on_queued, s);
	buf_free(&m);
	if (rc < 0) {
		log_error("smtpd", "queue_failed", "id=%s sid=%s client=%s error=\"%s\" hint=\"check Redis; the client was told to retry\"",
		    s->env.id, s->sid, s->client, uv_strerror(rc));
		smtpd__reply(s, "451 4.3.0 Queue unavailable, try again later");
		transaction_over(s);
		smtpd__flush(s);
		smtpd__resume(s);
		smtpd__unref(s);
	}
}

/* refuse_data - a refusal of the message with its own reply and rule. */
static void
refuse_data(struct smtpd_session *s, const char *rule, const char *reply)
{
	struct policy_result res = { .verdict = reply[0] == '4' ? POLICY_TEMPFAIL : POLICY_REJECT,
	    .rule = rule };

	str_copy(res.reply, reply, sizeof res.reply);
	smtpd__refuse(s, &res, NULL);
}

void
smtpd__data_done(struct smtpd_session *s)
{
	const struct smtp_data_result *res = smtp_data_result(&s->data);
	struct policy_result pr;
	char from_domain[256], size[32];
	const char *refusal = NULL;

	snprintf(size, sizeof size, "size=%" PRIu64, res->size);
	if (res->too_big) {
		if (policy_check_size(s->srv->cfg, res->size, &pr))
			refuse_data(s, "limit.size", "552 5.3.4 Message size exceeds fixed maximum message size");
		else
			smtpd__refuse(s, &pr, size);
		transaction_over(s);
		return;
	}
	if (res->nul)
		refusal = "550 5.6.0 Message contains a NUL byte";
	else if (res->bare_lf || res->bare_cr)
		refusal = "550 5.6.0 Message contains a bare CR or LF (RFC 5321 2.3.8): lines must end with CRLF";
	else if (res->line_too_long)
		refusal = "550 5.6.0 Message contains a line longer than 998 characters (RFC 5321 4.5.3.1.6)";
	if (refusal != NULL) {
		refuse_data(s, "message.syntax", refusal);
		transaction_over(s);
		return;
	}
	if (!policy_check_headers(s->user.domains, s->body.data ? s->body.data : "", s->body.len,
	    from_domain, sizeof from_domain, &pr)) {
		smtpd__refuse(s, &pr, size);
		transaction_over(s);
		return;
	}
	if (s->env.nrcpt == 0) {
		/* Every recipient was suppressed and dropped: the client is told it is done. */
		s->junk = 0;
		log_dropped(s, "-");
		smtpd__reply(s, "250 2.0.0 Ok: every recipient is suppressed; nothing was queued");
		transaction_over(s);
		return;
	}
	smtpd__enter_state(s, SMTPD_QUEUING);
	smtpd__ref(s);
	enqueue(s);
}
