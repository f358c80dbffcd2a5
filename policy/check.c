/*
 * check - the stateless policy decisions.  See check.h.
 *
 * Replies are fixed texts: they never echo the client's data nor the
 * user's allowed domains.
 */
#include "policy/check.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/rfc5322.h"

static bool
refuse(struct policy_result *res, enum policy_verdict v, const char *rule,
    const char *reply)
{
	res->verdict = v;
	res->rule = rule;
	snprintf(res->reply, sizeof res->reply, "%s", reply);
	return false;
}

static bool
pass(struct policy_result *res)
{
	res->verdict = POLICY_OK;
	res->rule = NULL;
	res->reply[0] = '\0';
	return true;
}

/*
 * Whether the space-separated list holds domain (ASCII case ignored, a
 * trailing dot on domain ignored).  Exact: "a.example" does not hold
 * "mail.a.example".
 */
static bool
list_has(const char *list, const char *domain)
{
	size_t dlen = strlen(domain);

	if (dlen > 0 && domain[dlen - 1] == '.')
		dlen--;
	if (dlen == 0)
		return false;
	for (const char *p = list; *p != '\0';) {
		size_t len;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		len = strcspn(p, " \t,");
		if (len == dlen && strncasecmp(p, domain, dlen) == 0)
			return true;
		p += len;
	}
	return false;
}

bool
policy_check_size(const struct config *cfg, uint64_t size,
    struct policy_result *res)
{
	char reply[128];
	uint64_t max = cfg->relay.max_message_size;

	if (max == 0 || size <= max)
		return pass(res);
	snprintf(reply, sizeof reply,
	    "552 5.3.4 Message size exceeds fixed maximum message size (%llu bytes)",
	    (unsigned long long)max);
	return refuse(res, POLICY_REJECT, "limit.size", reply);
}

bool
policy_check_rcpt_count(const struct config *cfg, size_t nrcpt,
    struct policy_result *res)
{
	char reply[128];
	unsigned max = cfg->relay.max_recipients;

	if (max == 0 || nrcpt < max)
		return pass(res);
	snprintf(reply, sizeof reply,
	    "452 4.5.3 Too many recipients (at most %u per message)", max);
	return refuse(res, POLICY_TEMPFAIL, "limit.recipients", reply);
}

bool
policy_check_sender(const char *domains, const char *domain, bool header,
    struct policy_result *res)
{
	if (domains != NULL && domain != NULL && list_has(domains, domain))
		return pass(res);
	return refuse(res, POLICY_REJECT, header ? "sender.header" : "sender.envelope",
	    "550 5.7.1 Sender address not allowed for this user");
}

bool
policy_check_rcpt_domain(const char *rcpt_domains, const char *domain,
    struct policy_result *res)
{
	if (rcpt_domains == NULL || rcpt_domains[0] == '\0' ||
	    (domain != NULL && list_has(rcpt_domains, domain)))
		return pass(res);
	return refuse(res, POLICY_REJECT, "recipient.domain",
	    "550 5.7.1 Recipient domain not allowed for this user");
}

bool
policy_check_headers(const char *domains, const char *msg, size_t len,
    char *from_domain, size_t fdsize, struct policy_result *res)
{
	struct rfc5322_scan s;
	struct rfc5322_from from;
	const char *f, *ff = NULL;
	size_t fl, ffl = 0, nfrom = 0;

	if (fdsize > 0)
		from_domain[0] = '\0';
	rfc5322_scan_init(&s, msg, len);
	while (rfc5322_next(&s, &f, &fl)) {
		if (!rfc5322_field_is(f, fl, "From"))
			continue;
		if (nfrom++ == 0) {
			ff = f;
			ffl = fl;
		}
	}
	if (nfrom == 0)
		return refuse(res, POLICY_REJECT, "header.from",
		    "550 5.6.0 Message has no From header");
	if (nfrom > 1)
		return refuse(res, POLICY_REJECT, "header.from",
		    "550 5.6.0 Message has several From headers");
	if (!rfc5322_from_parse(ff, ffl, &from))
		return refuse(res, POLICY_REJECT, "header.from",
		    "550 5.6.0 Message has an unparsable From header");
	/* RFC 5322 3.6.2: From is a mailbox-list; one author, no group. */
	if (from.ngroup > 0)
		return refuse(res, POLICY_REJECT, "header.from",
		    "550 5.6.0 Message has a group in its From header");
	if (from.nmbox > 1)
		return refuse(res, POLICY_REJECT, "header.from",
		    "550 5.6.0 Message has a From header with several addresses");
	if (from.nmbox == 0)
		return refuse(res, POLICY_REJECT, "header.from",
		    "550 5.6.0 Message has an unparsable From header");
	if (fdsize > 0)
		snprintf(from_domain, fdsize, "%s", from.domain);
	return policy_check_sender(domains, from.domain, true, res);
}
