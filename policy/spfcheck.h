/*
 * spfcheck - SPF preflight: before a message's first delivery attempt,
 * would a receiver's SPF check (RFC 7208, MAIL FROM identity) pass for
 * our outbound IP and the return-path domain?
 *
 * libspf2 evaluates the record; every DNS query it makes goes, through
 * a DNS layer of kurier's own, to the one resolver given to
 * spfcheck_open() ([deliver] dns_server), with a per-query timeout.
 * libspf2 and that layer block, so each evaluation runs on libuv's
 * thread pool and its answer comes back on the loop thread.
 *
 * Verdicts are cached per (ip, domain) for 5 minutes (temperror for 30
 * seconds; at most 4096 entries, oldest dropped first), and evaluations
 * of one (ip, domain) in flight at once are shared, so a newsletter of
 * 100,000 messages costs one evaluation.  At most two evaluations hold
 * a pool thread at a time; others wait their turn in order.
 *
 * RFC 7208 4.6.4 limits are enforced: more than 10 DNS-querying terms
 * (include, a, mx, ptr, exists, redirect) or more than 2 void lookups
 * give permerror; an mx or ptr term looks at 10 names at most; one
 * evaluation takes at most 20 seconds (or the query timeout, if longer)
 * and is temperror past that.
 *
 * Differences from a receiver running libspf2 as is: a loopback IP is
 * evaluated against the record (libspf2's query entry point passes it
 * unconditionally); exp= explanations are not fetched; the local part
 * of MAIL FROM is taken as "postmaster" (the cache key has no local
 * part), which only matters to records using %{l} or %{s}.
 *
 * All functions are called on the loop thread.
 */
#ifndef KURIER_DELIVER_SPFCHECK_H
#define KURIER_DELIVER_SPFCHECK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum spfcheck_verdict {
	SPFCHECK_NONE,
	SPFCHECK_NEUTRAL,
	SPFCHECK_PASS,
	SPFCHECK_FAIL,
	SPFCHECK_SOFTFAIL,
	SPFCHECK_TEMPERROR,
	SPFCHECK_PERMERROR,
};

/* The longest why string a callback receives, NUL included. */
#define SPFCHECK_WHY_SIZE 512

/* spfcheck_verdict_name - "none", "neutral", "pass", "fail", "softfail",
 * "temperror", "permerror" (RFC 7208 2.6), or "?" for another value. */
const char *spfcheck_verdict_name(enum spfcheck_verdict v);

struct spfcheck;

/*
 * spfcheck_open - a preflight checker on loop.  server is "host:port"
 * (IPv6 as "[addr]:port"; port optional, 53) of the resolver that every
 * query goes to, "" for the servers of /etc/resolv.conf; timeout_ms
 * (> 0) bounds each query.  Also points libspf2's error, warning, info
 * and debug output at core/log (process-wide, harmless to repeat).
 * Returns 0 with *out set, or a negative errno with err[errsz] saying why
 * (bad server address).
 */
int spfcheck_open(struct spfcheck **out, uv_loop_t *loop, const char *server,
    uint64_t timeout_ms, char *err, size_t errsz);

/*
 * spfcheck_close - stop: evaluations not started yet are canceled,
 * running ones are interrupted (their DNS waits end at once), and each
 * pending caller's callback runs once, with SPFCHECK_TEMPERROR and why
 * "canceled" when its evaluation did not finish.  Then cb(arg) runs, on
 * the loop, after which s is freed.  cb may be NULL.  No spfcheck_eval()
 * after this.
 */
void spfcheck_close(struct spfcheck *s, void (*cb)(void *arg), void *arg);

/*
 * spfcheck_cb - an evaluation's answer.  why is a short human-readable
 * reason, e.g. "example.com: 192.0.2.1 is not permitted (v=spf1
 * ip4:10.0.0.1 -all)" or libspf2's error; printable ASCII, at most
 * SPFCHECK_WHY_SIZE - 1 octets, valid only during the call.  DNS data
 * inside it is third-party text: log it with log_quote().
 */
typedef void spfcheck_cb(void *arg, enum spfcheck_verdict v, const char *why);

/*
 * spfcheck_eval - evaluate SPF for MAIL FROM domain sent from ip (our
 * outbound address, IPv4 or IPv6 text) with helo as the EHLO name (used
 * only by %{h} macros; NULL or "" reads as "unknown").  cb(arg, ...)
 * runs exactly once, later, on the loop thread, never inside this call,
 * a cached answer included.  The domain's case and a trailing dot do
 * not matter.  Strings are copied.  Returns 0, or -EINVAL (ip not an address; domain empty;
 * domain or helo longer than 255 octets or holding spaces, controls or
 * '@'; cb NULL) or -ECANCELED (after spfcheck_close()), cb then never
 * running.
 */
int spfcheck_eval(struct spfcheck *s, const char *ip, const char *domain,
    const char *helo, spfcheck_cb *cb, void *arg);

/* Counters since open, for metrics and tests. */
struct spfcheck_stats {
	uint64_t evaluations; /* run by libspf2 (not cached, not shared) */
	uint64_t cache_hits;  /* answered from the verdict cache */
	uint64_t shared;      /* joined an evaluation already in flight */
	uint64_t queries;     /* DNS queries sent */
	uint64_t cached;      /* entries in the cache now */
};

void spfcheck_stats(const struct spfcheck *s, struct spfcheck_stats *st);

/*
 * spfcheck_set_cache - change the cache's size and lifetimes (tests,
 * tuning): at most max_entries verdicts (0 disables the cache), kept
 * ttl_ms, temperror for temp_ttl_ms.  Drops what is cached now.
 */
void spfcheck_set_cache(struct spfcheck *s, size_t max_entries, uint64_t ttl_ms,
    uint64_t temp_ttl_ms);

#endif
