/*
 * route - where mail for a recipient domain goes: the addresses to try,
 * in order, following RFC 5321 §5.1 and RFC 7505.
 *
 * A route rule (route.DOMAIN or route.* in the [deliver] section) sends
 * the domain to its host:port, looked up as A/AAAA, never as MX.
 * Otherwise the domain's MX records give the hosts, best preference
 * first; a domain without MX records is its own host (the implicit MX);
 * a null MX refuses mail.  Every host's addresses follow in MX order,
 * capped at ROUTE_MAX_HOPS in all.
 *
 * Failures come as a status and a reply fit for a DSN: -ENOENT is
 * permanent (5xx: the message bounces for every recipient of the
 * domain), -EAGAIN is temporary (4xx: retry later), -ECANCELED means
 * dns_close() stopped the lookup (shutdown: retry, without counting a
 * delivery attempt).
 */
#ifndef KURIER_DELIVER_ROUTE_H
#define KURIER_DELIVER_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "deliver/dns.h"

#define ROUTE_MAX_HOPS 10

/* One route.DOMAIN or route.* line; domain "*" matches every domain. */
struct route_rule {
	char domain[256];
	char host[256];  /* a host name, an IP address or "[address]" */
	uint16_t port;   /* 0: mx_port */
};

struct route_hop {
	char name[256];                 /* MX host or route host, as looked up */
	unsigned pref;                  /* MX preference; 0 for a route */
	struct sockaddr_storage addr;   /* with the port set */
	bool relay;                     /* from a route rule (smarthost / override), not MX */
};

struct route_result {
	int status;      /* 0; -ENOENT permanent; -EAGAIN temporary; -ECANCELED */
	char reply[256]; /* on failure: the SMTP reply for a DSN, e.g. "556 5.1.10 ..." */
	size_t nhops;
	struct route_hop *hops;  /* owned by the result */
};

/* The result is the callee's: free it with route_result_free(). */
typedef void route_cb(void *arg, struct route_result *res);

/*
 * route_resolve - find the hops for domain (a host name or an address
 * literal such as "[192.0.2.1]").  rules[nrules] are borrowed for the
 * duration of the call only; mx_port is the port of MX hosts (25 but in
 * tests).  Returns 0, and then cb(arg, res) runs exactly once, later,
 * from the loop (also when dns_close() cancels the lookups: status
 * -ECANCELED); or a negative errno and cb never runs: -EINVAL for a
 * domain or rule host that cannot be looked up, -ECANCELED when d is
 * closing.
 */
int route_resolve(struct dns *d, const struct route_rule *rules,
    size_t nrules, uint16_t mx_port, const char *domain, route_cb *cb,
    void *arg);

/* route_result_free - free res and its hops; NULL is ignored. */
void route_result_free(struct route_result *res);

/*
 * route_match - the rule for domain: the one naming it (case and a final
 * dot ignored), else the first "*", else NULL.
 */
const struct route_rule *route_match(const struct route_rule *rules, size_t n,
    const char *domain);

#endif
