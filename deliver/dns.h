/*
 * dns - asynchronous MX and A/AAAA lookups for the delivery workers,
 * c-ares on the caller's libuv loop, with a small answer cache.
 *
 * One struct dns serves one loop.  It asks one resolver (dns_server in
 * the [deliver] section) or the ones in /etc/resolv.conf.  Sockets are
 * watched with uv_poll and c-ares's retransmissions are driven by one
 * uv_timer; nothing blocks and no thread is started.
 *
 * Callbacks never run inside a dns_* call: answers, cache hits, IP
 * literals and cancellations are all queued and delivered from the loop,
 * so a caller's state never changes under its feet.  Each accepted
 * request (a dns_mx or dns_addr call that returned 0) gets its callback
 * exactly once.  The arrays a callback receives are borrowed: they are
 * valid during the callback only.
 *
 * Answers are cached per (record type, lower-cased name): positive ones
 * for their TTL, at most DNS_TTL_MAX seconds; NXDOMAIN and NODATA for
 * DNS_NEG_TTL seconds; temporary failures never.  The cache holds at most
 * DNS_CACHE_MAX entries and drops the oldest first.  Concurrent identical
 * lookups are not merged: both go out.
 */
#ifndef KURIER_DELIVER_DNS_H
#define KURIER_DELIVER_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define DNS_TTL_MAX 3600      /* seconds a positive answer is kept at most */
#define DNS_NEG_TTL 60        /* seconds NXDOMAIN and NODATA are kept */
#define DNS_CACHE_MAX 10000   /* cache entries */
#define DNS_MX_MAX 32         /* MX records reported, the best ones */
#define DNS_ADDR_MAX 16       /* addresses reported per family */
#define DNS_NAME_MAX 253      /* RFC 1035 §2.3.4, in text without the final dot */

struct dns;

enum dns_status {
	DNS_OK,
	DNS_NXDOMAIN, /* the name does not exist */
	DNS_NODATA,   /* the name exists, without records of the type asked */
	DNS_TEMPFAIL, /* SERVFAIL, REFUSED, timeout, unreachable resolver */
	DNS_CANCELED, /* dns_close() came first */
};

struct dns_mx {
	char host[256]; /* without the final dot; "" for the root (null MX) */
	unsigned pref;
};

/*
 * MX answer: records sorted by preference, equal preferences in a random
 * order drawn anew for every call (RFC 5321 §5.1).  A null MX (RFC 7505)
 * comes as its one record with host "": the caller decides.  ttl is the
 * number of seconds the answer stays valid (0 on failure).
 */
typedef void dns_mx_cb(void *arg, enum dns_status st, const struct dns_mx *mx,
    size_t n, uint32_t ttl);
/*
 * Address answer: the A addresses, then the AAAA ones, port 0.  DNS_OK
 * when either family has addresses; otherwise NXDOMAIN when both said
 * NXDOMAIN, TEMPFAIL when either failed temporarily, else NODATA.
 */
typedef void dns_addr_cb(void *arg, enum dns_status st,
    const struct sockaddr_storage *addrs, size_t n, uint32_t ttl);

/*
 * dns_open - make a resolver on loop.  server is "" (use
 * /etc/resolv.conf), "ip", "ip:port", "[ipv6]" or "[ipv6]:port" (port 53
 * when omitted).  timeout_ms bounds one lookup, retransmission included
 * (0 means 5 s).  Returns 0 and *out, or a negative errno with a
 * sentence in err[errsz].
 */
int dns_open(struct dns **out, uv_loop_t *loop, const char *server,
    uint64_t timeout_ms, char *err, size_t errsz);

/*
 * dns_close - stop d.  Every request whose callback has not run yet gets
 * it with DNS_CANCELED (from the loop, not inside this call); then the
 * handles are closed, d is freed, and cb(arg) runs (cb may be NULL).
 * After this call dns_mx and dns_addr refuse new work with -ECANCELED.
 */
void dns_close(struct dns *d, void (*cb)(void *arg), void *arg);

/*
 * dns_mx - look up the MX records of domain.  Returns 0 (cb will run
 * once), -EINVAL for a name that cannot be a host name (cb never runs)
 * or -ECANCELED when d is closing.
 */
int dns_mx(struct dns *d, const char *domain, dns_mx_cb *cb, void *arg);

/*
 * dns_addr - look up the A and AAAA records of host, in parallel.  A
 * host that is an IP address ("192.0.2.1", "2001:db8::1", "[192.0.2.1]",
 * "[IPv6:2001:db8::1]") is answered without a query, with ttl
 * DNS_TTL_MAX.  Returns as dns_mx.
 */
int dns_addr(struct dns *d, const char *host, dns_addr_cb *cb, void *arg);

/*
 * dns_reason - inside a dns_mx or dns_addr callback: a short text saying
 * why the status is what it is ("timeout", "SERVFAIL", "REFUSED",
 * "NXDOMAIN", "no data", "no server answered", "canceled"); "" for
 * DNS_OK.  Outside a callback, the last one given.
 */
const char *dns_reason(const struct dns *d);

/* dns_cache_clear - forget every cached answer. */
void dns_cache_clear(struct dns *d);
/* dns_cache_size - cached answers now held (expired ones may count). */
size_t dns_cache_size(const struct dns *d);

/* dns_status_name - "ok", "nxdomain", "nodata", "tempfail", "canceled". */
const char *dns_status_name(enum dns_status st);

/*
 * dns_valid_name - whether name can be asked for: 1 to DNS_NAME_MAX
 * characters (one final dot allowed beyond), labels of 1 to 63, printable
 * ASCII without space or backslash.
 */
bool dns_valid_name(const char *name);

/*
 * dns_parse_literal - whether s is an IP address, bare or in brackets as
 * in an SMTP address literal (RFC 5321 §4.1.3); the address with port 0
 * goes to *out when out is not NULL.
 */
bool dns_parse_literal(const char *s, struct sockaddr_storage *out);

/*
 * dns_parse_mx - the MX records of a raw DNS answer (as c-ares hands it
 * over), sorted by preference with equal preferences shuffled, at most
 * DNS_MX_MAX, and the smallest TTL among them (capped at DNS_TTL_MAX).
 * *out is allocated (free() it) when *n > 0.  Returns 0, -ENODATA when
 * the answer holds no MX record, or -EBADMSG for a malformed answer.
 * Exported for the fuzz target.
 */
int dns_parse_mx(const unsigned char *abuf, size_t alen, struct dns_mx **out,
    size_t *n, uint32_t *ttl);

/*
 * dns_shuffle_mx - shuffle each run of equal preferences in mx[n], sorted
 * by preference (RFC 5321 5.1: equal preferences are tried in random
 * order).
 */
void dns_shuffle_mx(struct dns_mx *mx, size_t n);

/*
 * dns_parse_addr - the A (family AF_INET) or AAAA (AF_INET6) records of a
 * raw DNS answer into out[max], port 0, and the smallest TTL (capped).
 * Returns the number stored, -ENODATA or -EBADMSG.  Exported for the
 * fuzz target.
 */
int dns_parse_addr(const unsigned char *abuf, size_t alen, int family,
    struct sockaddr_storage *out, size_t max, uint32_t *ttl);

#endif
