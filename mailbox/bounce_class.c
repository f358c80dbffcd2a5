/*
 * bounce_class - each recipient's class and reason, from its status
 * code and its diagnostic text.  Pure and table-driven.
 *
 * The reason: a specific status code decides (RFC 3463: x.1.1 bad
 * mailbox, x.1.2 bad domain, x.2.2 mailbox full, ...); a generic one
 * (x.0.0, x.7.1, x.5.0, ...) is refined by the text, because many
 * servers say "550 5.7.1" for an unknown user or "5.0.0" for anything;
 * the text's phrases are tried in the order of text_reasons[] (the
 * address's own faults first).  Without either, "unknown".
 *
 * The class: complaint and auto-reply returns are that, whatever they
 * say.  Action delivered, relayed or expanded: none (delivered).
 * Action delayed: none (delayed): a delay warning is not a failure, the
 * final report follows, and counting it as a soft bounce would suppress
 * addresses that were delivered in the end.  Otherwise a failure is hard
 * only when its status is permanent (5.x.x) and the reason says the
 * address itself is bad (user-unknown, domain-unknown,
 * mailbox-disabled); every other failure, permanent refusals for
 * content, reputation or policy included, is soft.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mailbox/bounce.h"
#include "mailbox/bounce_int.h"

struct phrase_reason {
	const char *phrase; /* lower case, matched anywhere */
	const char *reason; /* NULL: "policy-blocked" unless the code says more */
};

/*
 * What servers write, in the order tried.  Earlier rows win, so a
 * mailbox that is full or disabled is not taken for an unknown one
 * ("mailbox unavailable: over quota"), and an unknown user refused
 * with a policy code is still unknown.
 */
static const struct phrase_reason text_reasons[] = {
	/*
	 * Google Groups: "the group you tried to contact may not exist, or you
	 * may not have permission to post": which one is not said, so not hard.
	 */
	{ "group you tried to contact", "policy-blocked" },
	/* About the sender, not the recipient: never the address's fault. */
	{ "sender address rejected", "policy-blocked" },
	{ "sender rejected", "policy-blocked" },
	{ "sender verify failed", "policy-blocked" },
	{ "unroutable sender", "policy-blocked" },
	{ "mailbox full", "mailbox-full" },
	{ "mailbox is full", "mailbox-full" },
	{ "mailbox size limit", "mailbox-full" },
	{ "quota exceeded", "mailbox-full" },
	{ "exceeded quota", "mailbox-full" },
	{ "exceeds quota", "mailbox-full" },
	{ "over quota", "mailbox-full" },
	{ "overquota", "mailbox-full" },
	{ "quota exceed", "mailbox-full" },
	{ "over the quota", "mailbox-full" },
	{ "exceeded storage", "mailbox-full" },
	{ "insufficient storage", "mailbox-full" },
	{ "storage allocation", "mailbox-full" },
	{ "not enough storage", "mailbox-full" },
	{ "full mailbox", "mailbox-full" },
	{ "mailbox exceeds", "mailbox-full" },
	{ "mailfolder is full", "mailbox-full" },
	{ "user's disk quota", "mailbox-full" },
	{ "account disabled", "mailbox-disabled" },
	{ "account is disabled", "mailbox-disabled" },
	{ "account has been disabled", "mailbox-disabled" },
	{ "mailbox disabled", "mailbox-disabled" },
	{ "mailbox is disabled", "mailbox-disabled" },
	{ "mailbox has been disabled", "mailbox-disabled" },
	{ "account is inactive", "mailbox-disabled" },
	{ "inactive account", "mailbox-disabled" },
	{ "account inactive", "mailbox-disabled" },
	{ "mailbox is inactive", "mailbox-disabled" },
	{ "account has been suspended", "mailbox-disabled" },
	{ "account suspended", "mailbox-disabled" },
	{ "account is suspended", "mailbox-disabled" },
	{ "deactivated", "mailbox-disabled" },
	{ "account expired", "mailbox-disabled" },
	{ "account has expired", "mailbox-disabled" },
	{ "no longer active", "mailbox-disabled" },
	{ "no longer available", "mailbox-disabled" },
	{ "no longer valid", "mailbox-disabled" },
	{ "is not active", "mailbox-disabled" },
	{ "has been closed", "mailbox-disabled" },
	{ "mailbox has moved", "mailbox-disabled" },
	{ "mailbox is frozen", "mailbox-disabled" },
	{ "account is blocked", "mailbox-disabled" },
	{ "account is locked", "mailbox-disabled" },
	{ "account locked", "mailbox-disabled" },
	/* Before "does not exist": "Domain does not exist" is about the domain. */
	{ "domain does not exist", "domain-unknown" },
	{ "no such domain", "domain-unknown" },
	{ "domain not found", "domain-unknown" },
	{ "unknown domain", "domain-unknown" },
	{ "domain unknown", "domain-unknown" },
	{ "user unknown", "user-unknown" },
	{ "unknown user", "user-unknown" },
	{ "unknown recipient", "user-unknown" },
	{ "unknown or illegal alias", "user-unknown" },
	{ "no such user", "user-unknown" },
	{ "no such mailbox", "user-unknown" },
	{ "no such recipient", "user-unknown" },
	{ "no such address", "user-unknown" },
	{ "no such account", "user-unknown" },
	{ "no mailbox", "user-unknown" },
	{ "user not found", "user-unknown" },
	{ "recipient not found", "user-unknown" },
	{ "recipientnotfound", "user-unknown" },
	{ "mailbox not found", "user-unknown" },
	{ "address not found", "user-unknown" },
	{ "addressee unknown", "user-unknown" },
	{ "does not exist", "user-unknown" },
	{ "doesn't exist", "user-unknown" },
	{ "not exist", "user-unknown" },
	{ "invalid recipient", "user-unknown" },
	{ "invalid mailbox", "user-unknown" },
	{ "invalid address", "user-unknown" },
	{ "bad recipient", "user-unknown" },
	{ "bad destination mailbox", "user-unknown" },
	{ "mailbox unavailable", "user-unknown" },
	{ "mailbox not available", "user-unknown" },
	{ "mailbox is unavailable", "user-unknown" },
	{ "not a valid mailbox", "user-unknown" },
	{ "is not a valid", "user-unknown" },
	{ "unknown local part", "user-unknown" },
	{ "not our customer", "user-unknown" },
	{ "no account by that name", "user-unknown" },
	{ "no mailbox here by that name", "user-unknown" },
	{ "not listed in", "user-unknown" },
	{ "no valid recipients", "user-unknown" },
	{ "unknown address", "user-unknown" },
	{ "user doesn't have", "user-unknown" },
	{ "account does not exist", "user-unknown" },
	{ "the email account that you tried to reach does not exist", "user-unknown" },
	{ "userunknown", "user-unknown" },
	{ "recipient name is not recognized", "user-unknown" },
	{ "not a registered", "user-unknown" },
	{ "no such person", "user-unknown" },
	{ "unknown mailbox", "user-unknown" },
	{ "unrouteable address", "domain-unknown" },
	{ "unroutable address", "domain-unknown" },
	{ "host not found", "domain-unknown" },
	{ "host unknown", "domain-unknown" },
	{ "unknown host", "domain-unknown" },
	{ "domain name not found", "domain-unknown" },
	{ "name or service not known", "domain-unknown" },
	{ "host or domain name not found", "domain-unknown" },
	{ "no mx", "domain-unknown" },
	{ "nxdomain", "domain-unknown" },
	{ "couldn't find any host", "domain-unknown" },
	{ "could not find any host", "domain-unknown" },
	{ "dns lookup failure", "domain-unknown" },
	{ "doesn't receive email", "domain-unknown" },
	{ "does not receive email", "domain-unknown" },
	{ "no smtp service", "domain-unknown" },
	{ "domain is not reachable", "domain-unknown" },
	{ "no route to host", "network-error" },
	{ "message too large", "message-too-large" },
	{ "message is too large", "message-too-large" },
	{ "message too big", "message-too-large" },
	{ "message is too big", "message-too-large" },
	{ "size exceeds", "message-too-large" },
	{ "message size", "message-too-large" },
	{ "size limit exceeded", "message-too-large" },
	{ "exceeds the maximum size", "message-too-large" },
	{ "exceeds size limit", "message-too-large" },
	{ "message length exceeds", "message-too-large" },
	{ "too large", "message-too-large" },
	{ "dmarc", "auth-failed" },
	{ "spf ", "auth-failed" },
	{ "spf:", "auth-failed" },
	{ "spf check", "auth-failed" },
	{ "dkim", "auth-failed" },
	{ "unauthenticated", "auth-failed" },
	{ "authentication required", "auth-failed" },
	{ "reverse dns", "auth-failed" },
	{ "ptr record", "auth-failed" },
	{ "ptr resource record", "auth-failed" },
	{ "rdns", "auth-failed" },
	{ "mismatches client ip", "auth-failed" },
	{ "invalid ip for sending", "auth-failed" },
	{ "smtp authentication", "auth-failed" },
	{ "not verified", "auth-failed" },
	{ "spam", "spam-blocked" },
	{ "blacklist", "spam-blocked" },
	{ "blocklist", "spam-blocked" },
	{ "black list", "spam-blocked" },
	{ "listed at", "spam-blocked" },
	{ "listed in", "spam-blocked" },
	{ "listed on", "spam-blocked" },
	{ "dnsbl", "spam-blocked" },
	{ "rbl", "spam-blocked" },
	{ "spamhaus", "spam-blocked" },
	{ "reputation", "spam-blocked" },
	{ "junk", "spam-blocked" },
	{ "bulk mail", "spam-blocked" },
	{ "blocked", "spam-blocked" },
	{ "filtered", "spam-blocked" },
	{ "virus", "content-rejected" },
	{ "malware", "content-rejected" },
	{ "infected", "content-rejected" },
	{ "attachment", "content-rejected" },
	{ "content rejected", "content-rejected" },
	{ "message content", "content-rejected" },
	{ "content policy", "content-rejected" },
	{ "too many hops", "network-error" },
	{ "hop count exceeded", "network-error" },
	{ "rate limit", "rate-limited" },
	{ "rate-limit", "rate-limited" },
	{ "ratelimit", "rate-limited" },
	{ "too many", "rate-limited" },
	{ "throttl", "rate-limited" },
	{ "rate that prevents", "rate-limited" },
	{ "receiving mail at a rate", "rate-limited" },
	{ "try again later", "rate-limited" },
	{ "greylist", "rate-limited" },
	{ "graylist", "rate-limited" },
	{ "too fast", "rate-limited" },
	{ "relay access denied", "policy-blocked" },
	{ "relaying denied", "policy-blocked" },
	{ "relay denied", "policy-blocked" },
	{ "relay not permitted", "policy-blocked" },
	{ "not permitted to relay", "policy-blocked" },
	{ "policy", "policy-blocked" },
	{ "not allowed", "policy-blocked" },
	{ "not permitted", "policy-blocked" },
	{ "prohibited", "policy-blocked" },
	{ "access denied", "policy-blocked" },
	{ "denied", "policy-blocked" },
	{ "refused", "policy-blocked" },
	{ "administrative", "policy-blocked" },
	{ "not a member", "policy-blocked" },
	{ "expired", "expired" },
	{ "too long in queue", "expired" },
	{ "retry timeout", "expired" },
	{ "retry time", "expired" },
	{ "giving up", "expired" },
	{ "could not send message for past", "expired" },
	{ "connection refused", "network-error" },
	{ "connection timed out", "network-error" },
	{ "timed out", "network-error" },
	{ "could not connect", "network-error" },
	{ "connection reset", "network-error" },
	{ "host unreachable", "network-error" },
	{ "network is unreachable", "network-error" },
	{ "lost connection", "network-error" },
	{ "service not available", "network-error" },
	{ "service unavailable", "network-error" },
	{ "currently unavailable", "network-error" },
	{ "not accepting connections", "network-error" },
	{ "unable to connect", "network-error" },
	{ "did not accept our requests to connect", "network-error" },
	{ "rejected", NULL },
	{ NULL, NULL },
};

struct code_reason {
	const char *code; /* "x.1.1": the class digit ignored */
	const char *reason;
	bool specific; /* decides over the text */
};

/* RFC 3463 subjects and details; the common vendor codes with them. */
static const struct code_reason code_reasons[] = {
	{ "x.1.1", "user-unknown", true },
	{ "x.1.0", "user-unknown", false },
	{ "x.1.3", "user-unknown", true },
	{ "x.1.6", "mailbox-disabled", true },
	{ "x.1.10", "user-unknown", true },
	{ "x.1.2", "domain-unknown", true },
	{ "x.1.7", "policy-blocked", true },
	{ "x.1.8", "policy-blocked", true },
	{ "x.2.1", "mailbox-disabled", true },
	{ "x.2.2", "mailbox-full", true },
	{ "x.2.3", "message-too-large", true },
	{ "x.3.4", "message-too-large", true },
	{ "x.4.4", "domain-unknown", false },
	{ "x.4.7", "expired", true },
	{ "x.4.1", "network-error", false },
	{ "x.4.2", "network-error", false },
	{ "x.7.13", "mailbox-disabled", true },
	{ "x.7.23", "auth-failed", true },
	{ "x.7.25", "auth-failed", true },
	{ "x.7.26", "auth-failed", true },
	{ "x.7.27", "auth-failed", true },
	{ "x.7.28", "spam-blocked", false },
	{ "x.7.7", "content-rejected", false },
	{ "x.6", "content-rejected", false },
	{ "x.7", "policy-blocked", false },
	{ NULL, NULL, false },
};

/* code_match - does status ("5.1.10") match pattern ("x.1.10"; "x.6": any detail)? */
static bool
code_match(const char *status, const char *pat)
{
	unsigned ss, sd, ps, pd;
	int n;

	if (sscanf(status + 1, ".%u.%u", &ss, &sd) != 2)
		return false;
	n = sscanf(pat + 1, ".%u.%u", &ps, &pd);
	if (n < 1 || ss != ps)
		return false;
	return n == 1 || sd == pd;
}

/*
 * text_beats_code - the text's reason contradicts the code's "bad
 * address": a full mailbox exists; a block list, a failed SPF or DMARC
 * check or a rate limit ("5.2.1 The user you are trying to contact is
 * receiving mail at a rate that prevents additional messages") says
 * nothing against the address.
 */
static bool
text_beats_code(const char *by_text, const char *by_code)
{
	bool text_says_exists = strcmp(by_text, "mailbox-full") == 0 ||
	    strcmp(by_text, "spam-blocked") == 0 || strcmp(by_text, "auth-failed") == 0 ||
	    strcmp(by_text, "rate-limited") == 0;
	bool code_says_bad = strcmp(by_code, "user-unknown") == 0 ||
	    strcmp(by_code, "domain-unknown") == 0 || strcmp(by_code, "mailbox-disabled") == 0;

	return text_says_exists && code_says_bad;
}

const char *
bounce__reason(const char *status, const char *diag, bool *bad_addr)
{
	const char *by_code = NULL, *by_text = NULL, *reason;
	bool specific = false;
	char dcode[16];

	/*
	 * The server's own code in the diagnostic says more than a report's
	 * Status that does not agree with it ("Status: 5.1.1" over "550 5.7.1
	 * IP address blacklisted"), as long as both are failures of one kind;
	 * an expiry (x.4.7) stays one, whatever the last reply said.
	 */
	if (status[0] != '\0' && strcmp(status + 1, ".4.7") != 0 &&
	    bounce__find_status(diag, strlen(diag), dcode) >= 0 && dcode[0] == status[0])
		status = dcode;
	if (status[0] != '\0') {
		/* 4.2.1 is Gmail's "receiving mail at a rate that prevents more". */
		if (strcmp(status, "4.2.1") == 0) {
			by_code = "rate-limited";
			specific = true;
		}
		for (int i = 0; by_code == NULL && code_reasons[i].code != NULL; i++)
			if (code_match(status, code_reasons[i].code)) {
				by_code = code_reasons[i].reason;
				specific = code_reasons[i].specific;
			}
	}
	for (int i = 0; text_reasons[i].phrase != NULL; i++)
		if (strcasestr(diag, text_reasons[i].phrase) != NULL) {
			by_text = text_reasons[i].reason;
			/* A bare "rejected" says less than any code. */
			if (by_text == NULL)
				by_text = by_code != NULL ? by_code : "policy-blocked";
			break;
		}
	if (specific && by_code != NULL && by_text != NULL && text_beats_code(by_text, by_code))
		specific = false;
	if (specific || by_text == NULL)
		reason = by_code != NULL ? by_code : by_text;
	else
		reason = by_text;
	if (reason == NULL)
		reason = "unknown";
	bounce__reason_bad(reason, bad_addr);
	return reason;
}

void
bounce__reason_bad(const char *reason, bool *bad_addr)
{
	*bad_addr = strcmp(reason, "user-unknown") == 0 || strcmp(reason, "domain-unknown") == 0 ||
	    strcmp(reason, "mailbox-disabled") == 0;
}

void
bounce__classify(struct bounce_result *r)
{
	for (size_t i = 0; i < r->nrcpt; i++) {
		struct bounce_rcpt *rc = &r->rcpt[i];
		bool bad = false;

		if (r->type == BOUNCE_TYPE_COMPLAINT) {
			rc->cls = BOUNCE_CLASS_COMPLAINT;
			rc->reason = "complaint";
			continue;
		}
		if (r->type == BOUNCE_TYPE_AUTO_REPLY) {
			rc->cls = BOUNCE_CLASS_AUTO_REPLY;
			rc->reason = "auto-reply";
			continue;
		}
		if (strcmp(rc->action, "delivered") == 0 || strcmp(rc->action, "relayed") == 0 ||
		    strcmp(rc->action, "expanded") == 0 || rc->status[0] == '2') {
			rc->cls = BOUNCE_CLASS_NONE;
			rc->reason = "delivered";
			continue;
		}
		if (strcmp(rc->action, "delayed") == 0) {
			rc->cls = BOUNCE_CLASS_NONE;
			rc->reason = "delayed";
			continue;
		}
		/* A reader that saw more than the diagnostic may have set it already. */
		if (rc->reason == NULL || strcmp(rc->reason, "unknown") == 0)
			rc->reason = bounce__reason(rc->status, rc->diagnostic, &bad);
		else
			bounce__reason_bad(rc->reason, &bad);
		rc->cls = bad && rc->status[0] == '5' ? BOUNCE_CLASS_HARD : BOUNCE_CLASS_SOFT;
	}
}
