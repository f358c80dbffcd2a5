/*
 * outcome - what one SMTP result means, decided apart from acting on it
 * (deliver/task.c acts: sets recipient states, suspends groups, moves to
 * the next server).  Pure functions: no state, no I/O, no allocation;
 * every input is borrowed and every output is written by value.
 *
 * A result is classified by scope and severity, in the spirit of
 * Postfix's smtp_trouble.c:
 *
 *   scope     SESSION    the connection ended under the transaction: every
 *                        recipient of it is deferred (RFC 5321 6.1: the
 *                        server may have the message; at-least-once)
 *             HOST       the set-up with this server failed: try the next
 *             MESSAGE    MAIL (or RSET) was refused: its reply speaks for
 *                        every recipient
 *             RECIPIENT  each recipient has its own reply
 *   severity  OK (2xx), TEMPORARY (4xx, or no reply: defer), PERMANENT
 *             (5xx: bounce; for a host, give up on that server for good)
 */
#ifndef KURIER_DELIVER_OUTCOME_H
#define KURIER_DELIVER_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>

#include "deliver/smtpc.h"

enum outcome_scope {
	OUTCOME_SESSION,
	OUTCOME_HOST,
	OUTCOME_MESSAGE,
	OUTCOME_RECIPIENT,
};

enum outcome_severity {
	OUTCOME_OK,
	OUTCOME_TEMPORARY,
	OUTCOME_PERMANENT,
};

/* What decided, when no reply did (reply is NULL). */
enum outcome_cause {
	OUTCOME_REPLY,          /* the reply in .reply */
	OUTCOME_LOST,           /* the connection ended (SESSION) */
	OUTCOME_NO_MAIL,        /* no MAIL reply: the transaction failed first */
	OUTCOME_NO_RCPT_REPLY,  /* RCPT not answered */
	OUTCOME_NO_DATA_REPLY,  /* RCPT accepted, the data not answered */
};

struct outcome {
	enum outcome_scope scope;
	enum outcome_severity severity;
	enum outcome_cause cause;
	const struct smtpc_reply *reply;   /* borrowed from the result, or NULL */
	/*
	 * RCPT got 452 "too many recipients" (RFC 5321 4.5.3.1.10): send it
	 * again in the next transaction if this one made progress.
	 */
	bool again;
};

/* outcome_severity_of - OK for 2xx, PERMANENT for 5xx, TEMPORARY else (no reply: 0). */
enum outcome_severity outcome_severity_of(int code);

/*
 * outcome_txn - classify the result of one transaction of nrcpt
 * recipients (res->rcpt has nrcpt entries).  Returns true when one
 * outcome covers the whole transaction (scope SESSION or MESSAGE), in
 * *all; else false, with rcpt[k] (nrcpt entries, scope RECIPIENT) for
 * each recipient.  References into res stay valid as long as res.
 */
bool outcome_txn(const struct smtpc_result *res, size_t nrcpt, struct outcome *all,
    struct outcome *rcpt);

/*
 * outcome_setup - classify a failed connection set-up (smtpc's ready with
 * status < 0) that stopped at stage with reply code (0: none).  Scope
 * HOST; PERMANENT for a 5xx greeting or EHLO (the server refuses us),
 * TEMPORARY for everything else (it may pass later or elsewhere).
 */
struct outcome outcome_setup(enum smtpc_stage stage, int code);

/*
 * outcome_dns_suppresses - whether a bounce kurier decided itself from
 * DNS, before any server answered (deliver/route.c's -ENOENT replies, an
 * invalid domain name), says the address cannot exist, so that it goes
 * on the suppression list as a remote 5.1.x hard bounce does: the
 * domain does not exist, or has no MX and no address, or MX hosts
 * without one (550 5.1.2), or a null MX (556 5.1.10).  Not a relay host
 * of our own [deliver] routes without an address (5.4.4: our
 * configuration) nor a loop back to us (5.4.6).  The same rules as
 * policy_hard_bounce() (docs/policy.md) for a remote reply.
 */
bool outcome_dns_suppresses(const char *reply);

/* outcome_scope_name, outcome_severity_name - "session", ...; "temporary", ... */
const char *outcome_scope_name(enum outcome_scope s);
const char *outcome_severity_name(enum outcome_severity s);

#endif
