/*
 * smtpd_cmd - the SMTP commands of a submission session: a table of
 * { verb, flags, check, run }.  A check is synchronous and touches no
 * socket: it replies and returns false when the command may not run now.
 * A run does the command; it returns false when input processing must
 * pause (an answer is awaited, or the session ends).
 *
 * Reply codes: RFC 5321 4.2 and 4.3.2, enhanced status codes RFC 3463 /
 * RFC 5248, AUTH RFC 4954 6, submission RFC 6409, STARTTLS RFC 3207.
 */
#include "relay/smtpd_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/conn.h"
#include "core/log.h"
#include "core/str.h"
#include "policy/check.h"

enum {
	CMD_NEED_EHLO = 1 << 0,   /* after EHLO/HELO only */
	CMD_NO_ARG = 1 << 1,      /* takes no argument */
	CMD_NO_TRANS = 1 << 2,    /* not inside a mail transaction */
	CMD_LAST = 1 << 3,        /* RFC 2920 3.1: ends a pipelined group: flush */
	CMD_ERROR = 1 << 4,       /* counts as a protocol error */
};

struct smtpd_cmd {
	enum smtp_verb verb;
	const char *name;
	unsigned flags;
	bool (*check)(struct smtpd_session *, const struct smtp_cmd *);
	bool (*run)(struct smtpd_session *, const struct smtp_cmd *);
};

static bool in_transaction(const struct smtpd_session *s);

/* --- EHLO, HELO ------------------------------------------------------------- */

/* A client's name for itself: a domain or an address literal, printable. */
static bool
helo_ok(const char *p, size_t len)
{
	if (len == 0 || len >= 256)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c <= ' ' || c == 0x7f)
			return false;
	}
	return true;
}

static bool
check_helo(struct smtpd_session *s, const struct smtp_cmd *c)
{
	if (!helo_ok(c->arg, c->arglen)) {
		smtpd__reply(s, "501 5.5.4 Syntax: %s hostname", c->verb == SMTP_EHLO ? "EHLO" : "HELO");
		s->errors++;
		return false;
	}
	return true;
}

void
smtpd__ehlo_banner(struct smtpd_session *s)
{
	const struct config *cfg = s->srv->cfg;

	smtpd__reply(s, "250-%s Hello %s [%s]", cfg->server.hostname, s->helo, s->client);
	smtpd__reply(s, "250-PIPELINING");
	smtpd__reply(s, "250-SIZE %" PRIu64, cfg->relay.max_message_size);
	smtpd__reply(s, "250-8BITMIME");
	smtpd__reply(s, "250-ENHANCEDSTATUSCODES");
	smtpd__reply(s, "250-SMTPUTF8");
	if (!s->tls)
		smtpd__reply(s, "250-STARTTLS");
	/* RFC 4954 4: offer AUTH only where it may be used, over TLS. */
	if (s->tls && !s->authed)
		smtpd__reply(s, "250-AUTH PLAIN LOGIN");
	smtpd__reply(s, "250 DSN");
}

static bool
run_helo(struct smtpd_session *s, const struct smtp_cmd *c)
{
	str_copyn(s->helo, c->arg, c->arglen, sizeof s->helo);
	s->esmtp = c->verb == SMTP_EHLO;
	/* RFC 5321 4.1.4: EHLO/HELO reset any transaction. */
	smtpd__reset_transaction(s);
	smtpd__enter_state(s, SMTPD_READY);
	if (s->esmtp)
		smtpd__ehlo_banner(s);
	else
		smtpd__reply(s, "250 %s", s->srv->cfg->server.hostname);
	return true;
}

/* --- STARTTLS --------------------------------------------------------------- */

static bool
check_starttls(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	if (s->tls) {
		smtpd__reply(s, "503 5.5.1 TLS is already active");
		return false;
	}
	return true;
}

static bool
run_starttls(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	smtpd__reply(s, "220 2.0.0 Ready to start TLS");
	smtpd__start_tls(s);
	return false;
}

/* --- AUTH ------------------------------------------------------------------- */

static bool
check_auth(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	if (!s->esmtp) {
		smtpd__reply(s, "503 5.5.1 Send EHLO first");
		return false;
	}
	if (s->authed) {
		smtpd__reply(s, "503 5.5.1 Already authenticated");
		return false;
	}
	if (!s->tls) {
		smtpd__reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		return false;
	}
	return true;
}

/*
 * AUTH, after the credentials arrived: is the client's address locked out
 * (policy_auth_check)?  If not, the password check (auth_verify); on a
 * wrong password the failure is counted (policy_auth_failed, which locks
 * the address at [policy] auth_fail_limit) before the 535 goes out, so a
 * pipelined next attempt already sees the lock.  The session holds a
 * reference for whichever call is pending; the password is wiped as soon
 * as it was handed to auth_verify or refused.
 */

static void
auth_wipe(struct smtpd_session *s)
{
	explicit_bzero(s->auth_name, sizeof s->auth_name);
	explicit_bzero(s->auth_pass, sizeof s->auth_pass);
	s->auth_passlen = 0;
	s->auth_authzid_bad = false;
}

/* auth_over - the exchange ended (its reply is queued): read commands again. */
static void
auth_over(struct smtpd_session *s)
{
	auth_wipe(s);
	smtpd__enter_state(s, SMTPD_READY);
	smtpd__flush(s);
	smtpd__resume(s);
}

/* Whether an answer came for a session that no longer reads commands. */
static bool
gone(const struct smtpd_session *s)
{
	return s->conn == NULL || s->state == SMTPD_CLOSING;
}

/* set_user - the session now sends as user u: its rates from policy. */
static void
set_user(struct smtpd_session *s, const struct auth_user *u)
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

static void
on_fail_counted(void *arg, int status, const struct policy_result *res)
{
	struct smtpd_session *s = arg;

	if (!gone(s)) {
		if (status < 0)
			log_warn("smtpd", "auth_failure_not_counted", "sid=%s client=%s error=\"%s\"",
			    s->sid, s->client, uv_strerror(status));
		else if (res->verdict != POLICY_OK)
			log_debug("smtpd", "auth_locked", "sid=%s client=%s", s->sid, s->client);
		smtpd__reply(s, "535 5.7.8 Authentication credentials invalid");
		auth_over(s);
	}
	smtpd__unref(s);
}

/*
 * auth_failed - the credentials were wrong: count it (a session gets
 * [policy] max_errors guesses, an address auth_fail_limit) and answer
 * 535 once policy has counted it.  Takes over the caller's reference.
 */
static void
auth_failed(struct smtpd_session *s)
{
	char q[300];
	int rc;

	s->auth_failures++;
	s->errors++;
	log_warn("smtpd", "auth", "sid=%s client=%s user=%s result=failed failures=%u", s->sid,
	    s->client, log_quotes(q, sizeof q, s->auth_name), s->auth_failures);
	auth_wipe(s);
	if (s->srv->policy != NULL) {
		rc = policy_auth_failed(s->srv->policy, s->client, on_fail_counted, s);
		if (rc == 0)
			return;
		log_warn("smtpd", "auth_failure_not_counted", "sid=%s client=%s error=\"%s\"",
		    s->sid, s->client, uv_strerror(rc));
	}
	smtpd__reply(s, "535 5.7.8 Authentication credentials invalid");
	auth_over(s);
	smtpd__unref(s);
}

static void
on_verified(void *arg, int status, const struct auth_user *user)
{
	struct smtpd_session *s = arg;

	s->auth_pending = false;
	if (gone(s)) {
		auth_wipe(s);
		smtpd__unref(s);
		return;
	}
	if (status == -EACCES) {
		auth_failed(s);
		return;
	}
	if (status == 0) {
		s->authed = true;
		set_user(s, user);
		log_info("smtpd", "auth", "sid=%s client=%s user=%s result=ok", s->sid, s->client,
		    user->name);
		smtpd__reply(s, "235 2.7.0 Authentication successful");
	} else {
		log_warn("smtpd", "auth", "sid=%s client=%s result=tempfail error=\"%s\"", s->sid,
		    s->client, uv_strerror(status));
		smtpd__reply(s, "454 4.7.0 Temporary authentication failure, try again later");
	}
	auth_over(s);
	smtpd__unref(s);
}

/* start_verify - the address is not locked out: check the password.  Takes a reference. */
static void
start_verify(struct smtpd_session *s)
{
	int rc;

	smtpd__ref(s);
	if (s->auth_authzid_bad) {
		/* Acting for another user (RFC 4616 authzid) is not offered. */
		auth_failed(s);
		return;
	}
	rc = auth_verify(s->srv->auth, s->auth_name, s->auth_pass, s->auth_passlen, on_verified,
	    s, &s->auth_req);
	explicit_bzero(s->auth_pass, sizeof s->auth_pass);
	s->auth_passlen = 0;
	if (rc < 0) {
		log_warn("smtpd", "auth", "sid=%s client=%s result=tempfail error=\"%s\"", s->sid,
		    s->client, uv_strerror(rc));
		smtpd__reply(s, "454 4.7.0 Temporary authentication failure, try again later");
		auth_over(s);
		smtpd__unref(s);
		return;
	}
	s->auth_pending = true;
}

static void
on_lock_checked(void *arg, int status, const struct policy_result *res)
{
	struct smtpd_session *s = arg;

	if (gone(s)) {
		auth_wipe(s);
		smtpd__unref(s);
		return;
	}
	if (status < 0) {
		log_warn("smtpd", "auth", "sid=%s client=%s result=tempfail error=\"%s\" what=lockout_check",
		    s->sid, s->client, uv_strerror(status));
		smtpd__reply(s, "454 4.7.0 Temporary authentication failure, try again later");
		auth_over(s);
	} else if (res->verdict != POLICY_OK) {
		/* Locked out: no password check, and a client that keeps on trying is dropped. */
		s->errors++;
		smtpd__refuse(s, res, NULL);
		auth_over(s);
	} else {
		start_verify(s);
	}
	smtpd__unref(s);
}

/*
 * verify - credentials of user arrived (password[0..passlen)): ask policy
 * whether the address is locked out, then check them.  authzid_bad: the
 * client asked to act for another user, which fails like a wrong password.
 */
static void
verify(struct smtpd_session *s, const char *user, const char *pass, size_t passlen,
    bool authzid_bad)
{
	int rc;

	str_copy(s->auth_name, user, sizeof s->auth_name);
	/* A password longer than AUTH_PASSWORD_MAX never verifies: kept as too long. */
	s->auth_passlen = passlen < sizeof s->auth_pass ? passlen : sizeof s->auth_pass;
	memcpy(s->auth_pass, pass, s->auth_passlen);
	s->auth_authzid_bad = authzid_bad;
	smtpd__enter_state(s, SMTPD_AUTH_CHECK);
	if (s->srv->policy == NULL) {
		start_verify(s);
		return;
	}
	smtpd__ref(s);
	rc = policy_auth_check(s->srv->policy, s->client, on_lock_checked, s);
	if (rc < 0) {
		smtpd__unref(s);
		log_warn("smtpd", "auth", "sid=%s client=%s result=tempfail error=\"%s\" what=lockout_check",
		    s->sid, s->client, uv_strerror(rc));
		smtpd__reply(s, "454 4.7.0 Temporary authentication failure, try again later");
		auth_wipe(s);
		smtpd__enter_state(s, SMTPD_READY);
	}
}

/* Decode one base64 AUTH response; false (replied) if it is not base64. */
static bool
auth_decode(struct smtpd_session *s, const char *p, size_t len, unsigned char *dst,
    size_t size, size_t *outlen)
{
	if (smtp_base64_decode(p, len, dst, size, outlen) < 0) {
		smtpd__reply(s, "501 5.5.2 Invalid base64 data");
		smtpd__enter_state(s, SMTPD_READY);
		s->errors++;
		return false;
	}
	return true;
}

static void
auth_plain(struct smtpd_session *s, const char *p, size_t len)
{
	unsigned char msg[1024];
	char authzid[256], authcid[256], passwd[256];
	size_t n;

	if (!auth_decode(s, p, len, msg, sizeof msg, &n))
		return;
	if (smtp_auth_plain_split(msg, n, authzid, sizeof authzid, authcid, sizeof authcid,
	    passwd, sizeof passwd) < 0) {
		explicit_bzero(msg, sizeof msg);
		smtpd__reply(s, "501 5.5.2 Malformed PLAIN response");
		smtpd__enter_state(s, SMTPD_READY);
		s->errors++;
		return;
	}
	explicit_bzero(msg, sizeof msg);
	verify(s, authcid, passwd, strlen(passwd),
	    authzid[0] != '\0' && strcmp(authzid, authcid) != 0);
	explicit_bzero(passwd, sizeof passwd);
}

static bool
run_auth(struct smtpd_session *s, const struct smtp_cmd *c)
{
	const char *p = c->arg, *sp;
	size_t len = c->arglen, mlen;
	const char *init = NULL;
	size_t initlen = 0;

	sp = memchr(p, ' ', len);
	mlen = sp ? (size_t)(sp - p) : len;
	if (sp != NULL) {
		init = sp + 1;
		initlen = len - mlen - 1;
	}
	if (mlen == 5 && strncasecmp(p, "PLAIN", 5) == 0) {
		if (init == NULL) {
			smtpd__enter_state(s, SMTPD_AUTH_PLAIN);
			smtpd__reply(s, "334 ");
			return true;
		}
		/* RFC 4954 4: "=" is an empty initial response. */
		if (initlen == 1 && init[0] == '=')
			initlen = 0;
		auth_plain(s, init, initlen);
		return s->state != SMTPD_AUTH_CHECK;
	}
	if (mlen == 5 && strncasecmp(p, "LOGIN", 5) == 0) {
		if (init != NULL) {
			unsigned char name[256];
			size_t n;

			if (!auth_decode(s, init, initlen, name, sizeof name - 1, &n))
				return true;
			str_copyn(s->auth_name, (char *)name, n, sizeof s->auth_name);
			smtpd__enter_state(s, SMTPD_AUTH_PASS);
			smtpd__reply(s, "334 UGFzc3dvcmQ6");
			return true;
		}
		smtpd__enter_state(s, SMTPD_AUTH_USER);
		smtpd__reply(s, "334 VXNlcm5hbWU6");
		return true;
	}
	smtpd__reply(s, "504 5.5.4 Unrecognized authentication type (PLAIN and LOGIN are offered)");
	s->errors++;
	return true;
}

void
smtpd__auth_line(struct smtpd_session *s, const char *line, size_t len)
{
	unsigned char dec[1024];
	size_t n;

	if (len == 1 && line[0] == '*') {
		smtpd__reply(s, "501 5.0.0 Authentication cancelled");
		explicit_bzero(s->auth_name, sizeof s->auth_name);
		smtpd__enter_state(s, SMTPD_READY);
		return;
	}
	switch (s->state) {
	case SMTPD_AUTH_PLAIN:
		auth_plain(s, line, len);
		break;
	case SMTPD_AUTH_USER:
		if (!auth_decode(s, line, len, dec, sizeof dec - 1, &n))
			break;
		str_copyn(s->auth_name, (char *)dec, n, sizeof s->auth_name);
		smtpd__enter_state(s, SMTPD_AUTH_PASS);
		smtpd__reply(s, "334 UGFzc3dvcmQ6");
		break;
	case SMTPD_AUTH_PASS: {
		char user[256];

		if (!auth_decode(s, line, len, dec, sizeof dec - 1, &n))
			break;
		str_copy(user, s->auth_name, sizeof user);
		verify(s, user, (char *)dec, n, false);
		explicit_bzero(dec, sizeof dec);
		break;
	}
	default:
		break;
	}
}

/* --- MAIL, RCPT, DATA ---------------------------------------------------------- */

static bool
in_transaction(const struct smtpd_session *s)
{
	return s->state == SMTPD_MAIL || s->state == SMTPD_RCPT;
}

static bool
check_mail(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	if (in_transaction(s)) {
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

static bool run_mail(struct smtpd_session *s, const struct smtp_cmd *c);

static void
on_trusted_user(void *arg, int status, const struct auth_user *user)
{
	struct smtpd_session *s = arg;
	const char *name = s->srv->cfg->relay.trusted_user;

	if (gone(s)) {
		smtpd__unref(s);
		return;
	}
	smtpd__enter_state(s, SMTPD_READY);
	if (status == 0) {
		struct smtp_cmd c = { .verb = SMTP_MAIL, .arg = s->mail_arg, .arglen = s->mail_arglen };

		set_user(s, user);
		log_info("smtpd", "trusted", "sid=%s client=%s user=%s", s->sid, s->client, user->name);
		run_mail(s, &c);
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
	rc = auth_user_get(s->srv->auth, s->srv->cfg->relay.trusted_user, on_trusted_user, s);
	if (rc < 0) {
		smtpd__unref(s);
		smtpd__enter_state(s, SMTPD_READY);
		smtpd__policy_down(s, "trusted_user", rc);
		return true;
	}
	return false;
}

static bool
run_mail(struct smtpd_session *s, const struct smtp_cmd *c)
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

static bool
check_rcpt(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	if (!in_transaction(s)) {
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

	if (gone(s)) {
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

static bool
run_rcpt(struct smtpd_session *s, const struct smtp_cmd *c)
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

static bool
check_data(struct smtpd_session *s, const struct smtp_cmd *c)
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

static bool
run_data(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	buf_reset(&s->body);
	smtp_data_init(&s->data, &s->body, s->srv->cfg->relay.max_message_size);
	s->data_started_ms = uv_now(s->srv->loop);
	smtpd__enter_state(s, SMTPD_DATA);
	/* One timer for the whole DATA phase, not one per line. */
	smtpd__arm_timer(s, s->srv->cfg->relay.data_timeout_ms);
	smtpd__reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtpd__flush(s);
	return true;
}

/* --- the rest --------------------------------------------------------------------- */

static bool
run_rset(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	smtpd__reset_transaction(s);
	if (s->helo[0] != '\0')
		smtpd__enter_state(s, SMTPD_READY);
	smtpd__reply(s, "250 2.0.0 Ok");
	return true;
}

static bool
run_noop(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	smtpd__reply(s, "250 2.0.0 Ok");
	return true;
}

static bool
run_quit(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	smtpd__reply(s, "221 2.0.0 Bye");
	smtpd__close(s);
	return false;
}

static bool
run_help(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	smtpd__reply(s, "214 2.0.0 kurier: mail submission (RFC 6409); commands: EHLO STARTTLS AUTH MAIL RCPT DATA RSET NOOP QUIT");
	return true;
}

static bool
run_vrfy(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	/* RFC 5321 3.5.3: 252 when the server will not say. */
	smtpd__reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
	return true;
}

static bool
run_not_offered(struct smtpd_session *s, const struct smtp_cmd *c)
{
	smtpd__reply(s, "502 5.5.1 %s is not available here", c->verb == SMTP_EXPN ? "EXPN" : "BDAT (CHUNKING is not offered)");
	return true;
}

static const struct smtpd_cmd commands[] = {
	{ SMTP_EHLO, "EHLO", CMD_LAST, check_helo, run_helo },
	{ SMTP_HELO, "HELO", CMD_LAST, check_helo, run_helo },
	{ SMTP_STARTTLS, "STARTTLS", CMD_NO_ARG | CMD_NO_TRANS | CMD_LAST, check_starttls, run_starttls },
	{ SMTP_AUTH, "AUTH", CMD_NO_TRANS | CMD_LAST, check_auth, run_auth },
	{ SMTP_MAIL, "MAIL", CMD_NEED_EHLO, check_mail, run_mail },
	{ SMTP_RCPT, "RCPT", CMD_NEED_EHLO, check_rcpt, run_rcpt },
	{ SMTP_DATA, "DATA", CMD_NEED_EHLO | CMD_NO_ARG | CMD_LAST, check_data, run_data },
	{ SMTP_RSET, "RSET", CMD_NO_ARG, NULL, run_rset },
	{ SMTP_NOOP, "NOOP", CMD_LAST, NULL, run_noop },
	{ SMTP_QUIT, "QUIT", CMD_NO_ARG | CMD_LAST, NULL, run_quit },
	{ SMTP_HELP, "HELP", 0, NULL, run_help },
	{ SMTP_VRFY, "VRFY", CMD_LAST, NULL, run_vrfy },
	{ SMTP_EXPN, "EXPN", CMD_LAST, NULL, run_not_offered },
	{ SMTP_BDAT, "BDAT", CMD_LAST, NULL, run_not_offered },
};

/*
 * is_junk - commands that move no mail forward: NOOP, RSET, VRFY, HELP,
 * EXPN, and EHLO/HELO once the client has greeted (a new TLS session
 * greets anew).  [policy] max_junk_commands of them are answered between
 * messages; the next one ends the session.
 */
static bool
is_junk(const struct smtpd_session *s, const struct smtp_cmd *c)
{
	switch (c->verb) {
	case SMTP_NOOP:
	case SMTP_RSET:
	case SMTP_VRFY:
	case SMTP_HELP:
	case SMTP_EXPN:
		return true;
	case SMTP_EHLO:
	case SMTP_HELO:
		return s->helo[0] != '\0';
	default:
		return false;
	}
}

bool
smtpd__command(struct smtpd_session *s, const char *line, size_t len)
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
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (commands[i].verb == c.verb)
			cmd = &commands[i];
	if (cmd == NULL) {
		smtpd__reply(s, "500 5.5.1 Command unrecognized");
		s->errors++;
		return true;
	}
	if (is_junk(s, &c) && ++s->junk > s->srv->cfg->policy.max_junk_commands) {
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
	if ((cmd->flags & CMD_NO_TRANS) && in_transaction(s)) {
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
		smtpd__reply(s, "421 4.3.2 %s Service shutting down, try again later",
		    s->srv->cfg->server.hostname);
		smtpd__close(s);
		return false;
	}
	return go;
}
