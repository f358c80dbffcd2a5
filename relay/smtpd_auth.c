/*
 * smtpd_auth - AUTH PLAIN (RFC 4616) and LOGIN for the session core
 * (RFC 4954): the exchange, the lock-out question to policy, the password
 * check through the server's user directory (smtpd.h: struct smtpd_users)
 * and the 235/535/454 replies.  Calls only the session core.
 */
#include "relay/smtpd_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/sasl.h"
#include "core/str.h"

bool
smtpd__check_auth(struct smtpd_session *s, const struct smtp_cmd *c)
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

static void
on_fail_counted(void *arg, int status, const struct policy_result *res)
{
	struct smtpd_session *s = arg;

	if (!smtpd__gone(s)) {
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
	if (smtpd__gone(s)) {
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
		smtpd__set_user(s, user);
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
	rc = s->srv->users.ops->verify(s->srv->users.arg, s->auth_name, s->auth_pass,
	    s->auth_passlen, on_verified, s, &s->auth_req);
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

	if (smtpd__gone(s)) {
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
	if (sasl_base64_decode(p, len, dst, size, outlen) < 0) {
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
	if (sasl_plain_split(msg, n, authzid, sizeof authzid, authcid, sizeof authcid,
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

bool
smtpd__run_auth(struct smtpd_session *s, const struct smtp_cmd *c)
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

