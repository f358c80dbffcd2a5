/*
 * route - hops for a recipient domain.  See route.h.
 *
 * A request lives from route_resolve() to its callback.  It holds one
 * slot per host to look up (the rule's host, the implicit MX, or the MX
 * hosts in preference order); all address lookups run at once and the
 * hop list is built in slot order when the last one has answered, so the
 * order never depends on which answer came first.
 */
#include "deliver/route.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"

enum route_kind {
	ROUTE_RULE,     /* route.DOMAIN or route.* */
	ROUTE_MX,       /* the domain's MX hosts */
	ROUTE_IMPLICIT, /* no MX: the domain itself (RFC 5321 §5.1) */
	ROUTE_LITERAL,  /* the domain is an address literal */
};

struct route_req;

struct route_host {
	struct route_req *req;
	char name[256];
	unsigned pref;
	enum dns_status st;
	char reason[64];
	size_t n;
	struct sockaddr_storage addrs[ROUTE_MAX_HOPS];
};

struct route_req {
	struct dns *d;
	route_cb *cb;
	void *arg;
	enum route_kind kind;
	uint16_t port;
	size_t nhosts, left;
	struct route_host *hosts;
	char domain[256];
};

static void route_on_mx(void *arg, enum dns_status st, const struct dns_mx *mx,
    size_t n, uint32_t ttl);
static void route_on_addr(void *arg, enum dns_status st,
    const struct sockaddr_storage *addrs, size_t n, uint32_t ttl);

/* Compare domain names, ignoring case and one final dot on either. */
static bool
route_domain_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

const struct route_rule *
route_match(const struct route_rule *rules, size_t n, const char *domain)
{
	const struct route_rule *star = NULL;

	for (size_t i = 0; i < n; i++) {
		if (strcmp(rules[i].domain, "*") == 0) {
			if (star == NULL)
				star = &rules[i];
		} else if (route_domain_eq(rules[i].domain, domain)) {
			return &rules[i];
		}
	}
	return star;
}

void
route_result_free(struct route_result *res)
{
	if (res == NULL)
		return;
	free(res->hops);
	free(res);
}

static void
route_free_req(struct route_req *r)
{
	free(r->hosts);
	free(r);
}

/* Hand a result to the caller and free the request. */
static void
route_finish(struct route_req *r, struct route_result *res)
{
	log_debug("route", "resolved", "domain=%s status=%d hops=%zu reply=\"%s\"",
	    r->domain, res->status, res->nhops, res->reply);
	r->cb(r->arg, res);
	route_free_req(r);
}

static void
route_fail(struct route_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
route_fail(struct route_req *r, int status, const char *fmt, ...)
{
	struct route_result *res = xcalloc(1, sizeof *res);
	va_list ap;

	res->status = status;
	va_start(ap, fmt);
	vsnprintf(res->reply, sizeof res->reply, fmt, ap);
	va_end(ap);
	route_finish(r, res);
}

static void
route_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* Every lookup has answered: build the hops in host order, or fail. */
static void
route_complete(struct route_req *r)
{
	struct route_result *res;
	struct route_host *temp = NULL, *first = &r->hosts[0];
	size_t nhops = 0;

	for (size_t i = 0; i < r->nhosts; i++) {
		if (r->hosts[i].st == DNS_CANCELED) {
			route_fail(r, -ECANCELED, "451 4.4.3 %.100s: lookup canceled (shutting down)",
			    r->domain);
			return;
		}
		if (r->hosts[i].st == DNS_TEMPFAIL && temp == NULL)
			temp = &r->hosts[i];
		if (r->hosts[i].st == DNS_OK)
			nhops += r->hosts[i].n;
	}
	if (nhops == 0) {
		switch (r->kind) {
		case ROUTE_RULE:
			if (temp != NULL)
				route_fail(r, -EAGAIN, "451 4.4.3 relay host %.100s for %.80s: address lookup failed (%s)",
				    first->name, r->domain, first->reason);
			else
				route_fail(r, -ENOENT, "550 5.4.4 relay host %.100s for %.80s has no address (%s)",
				    first->name, r->domain, first->reason);
			return;
		case ROUTE_IMPLICIT:
			if (temp != NULL)
				route_fail(r, -EAGAIN, "451 4.4.3 %.100s: no MX, address lookup failed (%s)",
				    r->domain, temp->reason);
			else
				route_fail(r, -ENOENT, "550 5.1.2 %.100s: no MX and no address records, it accepts no mail",
				    r->domain);
			return;
		case ROUTE_MX:
		case ROUTE_LITERAL:
			if (temp != NULL)
				route_fail(r, -EAGAIN, "451 4.4.3 %.100s: no MX host could be resolved (%.60s: %s)",
				    r->domain, temp->name, temp->reason);
			else
				route_fail(r, -ENOENT, "550 5.1.2 %.100s: MX hosts have no address",
				    r->domain);
			return;
		}
	}
	if (nhops > ROUTE_MAX_HOPS)
		nhops = ROUTE_MAX_HOPS;
	res = xcalloc(1, sizeof *res);
	res->hops = xcalloc(nhops, sizeof *res->hops);
	for (size_t i = 0; i < r->nhosts && res->nhops < nhops; i++) {
		struct route_host *h = &r->hosts[i];

		if (h->st != DNS_OK)
			continue;
		for (size_t j = 0; j < h->n && res->nhops < nhops; j++) {
			struct route_hop *hop = &res->hops[res->nhops++];

			str_copy(hop->name, h->name, sizeof hop->name);
			hop->pref = h->pref;
			hop->addr = h->addrs[j];
			route_set_port(&hop->addr, r->port);
			hop->relay = r->kind == ROUTE_RULE;
		}
	}
	route_finish(r, res);
}

static void
route_on_addr(void *arg, enum dns_status st,
    const struct sockaddr_storage *addrs, size_t n, uint32_t ttl)
{
	struct route_host *h = arg;
	struct route_req *r = h->req;

	(void)ttl;
	h->st = st;
	str_copy(h->reason, dns_reason(r->d), sizeof h->reason);
	h->n = n < ROUTE_MAX_HOPS ? n : ROUTE_MAX_HOPS;
	if (h->n > 0)
		memcpy(h->addrs, addrs, h->n * sizeof addrs[0]);
	if (--r->left == 0)
		route_complete(r);
}

/*
 * Start the address lookups of every host slot.  A host whose name
 * cannot be looked up counts as one without address; if d is closing,
 * as canceled.  Returns 0, or the error of the first host when it is
 * the only one (the caller decides what to do with it).
 */
static int
route_lookup_hosts(struct route_req *r)
{
	int rc = 0;

	r->left = r->nhosts + 1;
	for (size_t i = 0; i < r->nhosts; i++) {
		struct route_host *h = &r->hosts[i];

		h->req = r;
		if ((rc = dns_addr(r->d, h->name, route_on_addr, h)) < 0) {
			h->st = rc == -ECANCELED ? DNS_CANCELED : DNS_NODATA;
			str_copy(h->reason, rc == -ECANCELED ? "canceled" :
			    "not a valid host name", sizeof h->reason);
			r->left--;
		}
	}
	r->left--;
	return rc;
}

static void
route_on_mx(void *arg, enum dns_status st, const struct dns_mx *mx, size_t n,
    uint32_t ttl)
{
	struct route_req *r = arg;
	size_t k = 0;

	(void)ttl;
	switch (st) {
	case DNS_CANCELED:
		route_fail(r, -ECANCELED, "451 4.4.3 %.100s: lookup canceled (shutting down)",
		    r->domain);
		return;
	case DNS_NXDOMAIN:
		route_fail(r, -ENOENT, "550 5.1.2 %.100s: domain does not exist (NXDOMAIN)",
		    r->domain);
		return;
	case DNS_TEMPFAIL:
		route_fail(r, -EAGAIN, "451 4.4.3 %.100s: MX lookup failed (%s)",
		    r->domain, dns_reason(r->d));
		return;
	case DNS_NODATA:
		/* RFC 5321 §5.1: the domain is its own MX, preference 0. */
		r->kind = ROUTE_IMPLICIT;
		r->nhosts = 1;
		r->hosts = xcalloc(1, sizeof *r->hosts);
		str_copy(r->hosts[0].name, r->domain, sizeof r->hosts[0].name);
		break;
	case DNS_OK:
		/* RFC 7505 §3: one MX, preference 0, target ".". */
		if (n == 1 && mx[0].host[0] == '\0' && mx[0].pref == 0) {
			route_fail(r, -ENOENT, "556 5.1.10 %.100s has a null MX (RFC 7505), it accepts no mail",
			    r->domain);
			return;
		}
		r->hosts = xcalloc(n, sizeof *r->hosts);
		for (size_t i = 0; i < n; i++) {
			/* A "." among other MX records leads nowhere. */
			if (mx[i].host[0] == '\0')
				continue;
			str_copy(r->hosts[k].name, mx[i].host, sizeof r->hosts[k].name);
			r->hosts[k].pref = mx[i].pref;
			k++;
		}
		r->nhosts = k;
		break;
	}
	route_lookup_hosts(r);
	if (r->left == 0)
		route_complete(r);
}

int
route_resolve(struct dns *d, const struct route_rule *rules, size_t nrules,
    uint16_t mx_port, const char *domain, route_cb *cb, void *arg)
{
	const struct route_rule *rule = route_match(rules, nrules, domain);
	struct route_req *r;
	int rc;

	if (!dns_valid_name(domain) && !dns_parse_literal(domain, NULL))
		return -EINVAL;
	r = xcalloc(1, sizeof *r);
	r->d = d;
	r->cb = cb;
	r->arg = arg;
	r->port = mx_port;
	str_copy(r->domain, domain, sizeof r->domain);
	if (rule != NULL || dns_parse_literal(domain, NULL)) {
		r->kind = rule != NULL ? ROUTE_RULE : ROUTE_LITERAL;
		if (rule != NULL && rule->port != 0)
			r->port = rule->port;
		r->nhosts = 1;
		r->hosts = xcalloc(1, sizeof *r->hosts);
		str_copy(r->hosts[0].name, rule != NULL ? rule->host : domain,
		    sizeof r->hosts[0].name);
		if ((rc = route_lookup_hosts(r)) < 0) {
			route_free_req(r);
			return rc;
		}
		return 0;
	}
	r->kind = ROUTE_MX;
	if ((rc = dns_mx(d, domain, route_on_mx, r)) < 0) {
		route_free_req(r);
		return rc;
	}
	return 0;
}
