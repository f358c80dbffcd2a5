/*
 * outcome - what one SMTP result means.  See outcome.h.
 */
#include "deliver/outcome.h"

#include <string.h>

#include "policy/dest.h"

enum outcome_severity
outcome_severity_of(int code)
{
	if (code >= 200 && code < 300)
		return OUTCOME_OK;
	if (code >= 500 && code < 600)
		return OUTCOME_PERMANENT;
	return OUTCOME_TEMPORARY;
}

static struct outcome
make(enum outcome_scope scope, enum outcome_severity sev, enum outcome_cause cause,
    const struct smtpc_reply *reply)
{
	struct outcome o;

	memset(&o, 0, sizeof o);
	o.scope = scope;
	o.severity = sev;
	o.cause = cause;
	o.reply = reply;
	return o;
}

bool
outcome_txn(const struct smtpc_result *res, size_t nrcpt, struct outcome *all,
    struct outcome *rcpt)
{
	if (res->status < 0 && res->connection_lost && res->stage >= SMTPC_DATA) {
		/* Lost in the middle: nothing is known of the outcome. */
		*all = make(OUTCOME_SESSION, OUTCOME_TEMPORARY, OUTCOME_LOST, NULL);
		return true;
	}
	if (res->stage == SMTPC_MAIL || res->stage == SMTPC_RSET ||
	    (res->status < 0 && res->stage < SMTPC_RCPT)) {
		/* MAIL refused (or RSET, or no MAIL possible): it speaks for everyone. */
		if (res->mail.code == 0)
			*all = make(OUTCOME_MESSAGE, OUTCOME_TEMPORARY, OUTCOME_NO_MAIL, NULL);
		else
			*all = make(OUTCOME_MESSAGE, outcome_severity_of(res->mail.code) == OUTCOME_PERMANENT ?
			    OUTCOME_PERMANENT : OUTCOME_TEMPORARY, OUTCOME_REPLY, &res->mail);
		return true;
	}
	for (size_t k = 0; k < nrcpt; k++) {
		const struct smtpc_reply *rr = &res->rcpt[k];
		const struct smtpc_reply *final;

		if (rr->code == 0) {
			rcpt[k] = make(OUTCOME_RECIPIENT, OUTCOME_TEMPORARY, OUTCOME_NO_RCPT_REPLY, NULL);
			continue;
		}
		final = outcome_severity_of(rr->code) == OUTCOME_OK ? &res->data : rr;
		if (final == &res->data && res->data.code == 0) {
			rcpt[k] = make(OUTCOME_RECIPIENT, OUTCOME_TEMPORARY, OUTCOME_NO_DATA_REPLY, NULL);
			continue;
		}
		rcpt[k] = make(OUTCOME_RECIPIENT, outcome_severity_of(final->code), OUTCOME_REPLY, final);
		rcpt[k].again = final == rr && rr->code == 452;
	}
	return false;
}

struct outcome
outcome_setup(enum smtpc_stage stage, int code)
{
	bool refused = code >= 500 && code < 600 &&
	    (stage == SMTPC_GREETING || stage == SMTPC_EHLO);

	return make(OUTCOME_HOST, refused ? OUTCOME_PERMANENT : OUTCOME_TEMPORARY,
	    code != 0 ? OUTCOME_REPLY : OUTCOME_LOST, NULL);
}

const char *
outcome_scope_name(enum outcome_scope s)
{
	static const char *const names[] = { "session", "host", "message", "recipient" };

	return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

const char *
outcome_severity_name(enum outcome_severity s)
{
	static const char *const names[] = { "ok", "temporary", "permanent" };

	return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

bool
outcome_dns_suppresses(const char *reply)
{
	return reply != NULL && policy_hard_bounce(reply);
}
