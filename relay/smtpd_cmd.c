/*
 * smtpd_cmd - the submission protocol (smtpd__submission): its command
 * table of { verb, flags, check, run }, what its EHLO advertises, and the
 * commands that hold no transaction state (EHLO, HELO, STARTTLS, RSET,
 * NOOP, QUIT, HELP, VRFY, EXPN, BDAT).  AUTH is in smtpd_auth.c, MAIL,
 * RCPT and DATA in smtpd_msg.c; the session core dispatches (smtpd_int.h).
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

/* --- EHLO, HELO ------------------------------------------------------------- */

bool
smtpd__check_helo(struct smtpd_session *s, const struct smtp_cmd *c)
{
	if (!smtp_helo_ok(c->arg, c->arglen)) {
		smtpd__reply(s, "501 5.5.4 Syntax: %s hostname", c->verb == SMTP_EHLO ? "EHLO" : "HELO");
		s->errors++;
		return false;
	}
	return true;
}

/* ehlo - submission's EHLO reply: what it offers, AUTH only over TLS. */
static void
ehlo(struct smtpd_session *s)
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

bool
smtpd__run_helo(struct smtpd_session *s, const struct smtp_cmd *c)
{
	str_copyn(s->helo, c->arg, c->arglen, sizeof s->helo);
	s->esmtp = c->verb == SMTP_EHLO;
	/* RFC 5321 4.1.4: EHLO/HELO reset any transaction. */
	smtpd__reset_transaction(s);
	smtpd__enter_state(s, SMTPD_READY);
	if (s->esmtp)
		s->proto->ehlo(s);
	else
		smtpd__reply(s, "250 %s", s->srv->cfg->server.hostname);
	return true;
}

/* --- STARTTLS --------------------------------------------------------------- */

bool
smtpd__check_starttls(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	if (s->tls) {
		smtpd__reply(s, "503 5.5.1 TLS is already active");
		return false;
	}
	return true;
}

bool
smtpd__run_starttls(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	smtpd__reply(s, "220 2.0.0 Ready to start TLS");
	smtpd__start_tls(s);
	return false;
}

/* --- the rest --------------------------------------------------------------------- */

bool
smtpd__run_rset(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	smtpd__reset_transaction(s);
	if (s->helo[0] != '\0')
		smtpd__enter_state(s, SMTPD_READY);
	smtpd__reply(s, "250 2.0.0 Ok");
	return true;
}

bool
smtpd__run_noop(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	smtpd__reply(s, "250 2.0.0 Ok");
	return true;
}

bool
smtpd__run_quit(struct smtpd_session *s, const struct smtp_cmd *c)
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

bool
smtpd__run_vrfy(struct smtpd_session *s, const struct smtp_cmd *c)
{
	(void)c;
	/* RFC 5321 3.5.3: 252 when the server will not say. */
	smtpd__reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
	return true;
}

bool
smtpd__run_not_offered(struct smtpd_session *s, const struct smtp_cmd *c)
{
	smtpd__reply(s, "502 5.5.1 %s is not available here", c->verb == SMTP_EXPN ? "EXPN" : "BDAT (CHUNKING is not offered)");
	return true;
}

static const struct smtpd_cmd commands[] = {
	{ SMTP_EHLO, "EHLO", CMD_LAST, smtpd__check_helo, smtpd__run_helo },
	{ SMTP_HELO, "HELO", CMD_LAST, smtpd__check_helo, smtpd__run_helo },
	{ SMTP_STARTTLS, "STARTTLS", CMD_NO_ARG | CMD_NO_TRANS | CMD_LAST, smtpd__check_starttls, smtpd__run_starttls },
	{ SMTP_AUTH, "AUTH", CMD_NO_TRANS | CMD_LAST, smtpd__check_auth, smtpd__run_auth },
	{ SMTP_MAIL, "MAIL", CMD_NEED_EHLO, smtpd__check_mail, smtpd__run_mail },
	{ SMTP_RCPT, "RCPT", CMD_NEED_EHLO, smtpd__check_rcpt, smtpd__run_rcpt },
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

static uint64_t
max_size(const struct config *cfg)
{
	return cfg->relay.max_message_size;
}

const struct smtpd_proto smtpd__submission = {
	.name = "submission",
	.commands = commands,
	.ehlo = ehlo,
	.auth_line = smtpd__auth_line,
	.data_done = smtpd__data_done,
	.max_size = max_size,
};
