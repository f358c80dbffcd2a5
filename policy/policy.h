/*
 * policy - every "may this happen?" of kurier that needs shared state:
 * per-user sending rates, AUTH-failure lock-outs per client address, the
 * suppression list, throttled destinations, and the count of refusals by
 * rule.  The state lives in Redis so that every kurierd node sees the
 * same counters and a restart keeps them.  The pure decisions (header
 * checks, message limits, destination rules) are in policy/check.h and
 * policy/dest.h.
 *
 * Call convention (as auth.h and queue.h): every call returning 0 calls
 * its callback exactly once, later, from the loop; a call returning a
 * negative errno (-ENOTCONN while Redis is down, -EINVAL for bad
 * arguments) never does.  Arguments are borrowed for the call only.
 * Callback statuses: 0, -ECONNRESET (the connection broke), -EIO (Redis
 * refused; logged), -ECANCELED (policy_close() ran first).
 *
 * Redis keys (under the [redis] prefix P):
 *   P rl:u:NAME:m:WMS:SLOT   string  messages of user NAME in window slot
 *   P rl:u:NAME:r:WMS:SLOT   string  recipients, likewise
 *   P rl:ip:ADDR:m:WMS:SLOT  string  inbound MX: MAILs from ADDR (an IPv6 /64:
 *                                    "2001:db8::/64")
 *   P af:IP:SLOT             string  AUTH failures of address IP
 *   P lock:IP                string  "until_ms failures"; PX = lock-out
 *   P sup:SCOPE              hash    address -> "reason ms text"; SCOPE is a
 *                                    lower-case sending domain, or "*" (global)
 *   P sup:scopes             set     every SCOPE with entries, for listing
 *   P throttle               hash    group -> "until_ms level reply"
 *   P refusals               hash    rule -> count (since the data was made)
 *
 * Rate windows are sliding, estimated from two fixed slots: with slot
 * length W (the rate's window) and now at fraction f into the current
 * slot, the count is cur + prev * (1 - f).  A limit N/W refuses when
 * count + increment > N.  So N events are always allowed in a fresh
 * window, the (N+1)th is refused, and the allowance comes back smoothly
 * over the next W (fully after 2W without traffic).  The clock is Redis's
 * (TIME), so nodes with skewed clocks still agree.
 *
 * Files: policy.c (open, close, the Redis connection, refusal counts),
 * rate.c (policy_user_init, policy_rcpt, policy_commit, policy_count,
 * policy_uncommit, policy_ip_rate), lockout.c (policy_auth_check, policy_auth_failed),
 * suppress.c (policy_suppress ... policy_sup_filter), throttle.c
 * (policy_throttle_*), returns.c (policy_return, policy_bounce_list);
 * policy_int.h is what they share.
 */
#ifndef KURIER_POLICY_POLICY_H
#define KURIER_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"

struct policy;

/* A verdict and the exact SMTP reply to give (no CRLF). */
enum policy_verdict {
	POLICY_OK = 0,
	POLICY_TEMPFAIL,     /* 4xx: try later */
	POLICY_REJECT,       /* 5xx */
	POLICY_DROP,         /* accept with 250, never deliver (suppressed = drop) */
};

struct policy_result {
	enum policy_verdict verdict;
	const char *rule;    /* static: "rate.messages", "suppressed", ...; NULL when OK */
	char reply[256];     /* "450 4.7.1 ..."; "" when OK */
};

/* The rates that apply to one user: its overrides, else [policy] defaults. */
struct policy_user {
	char name[65];
	struct config_rates rate;        /* messages */
	struct config_rates rcpt_rate;   /* recipients */
};

/* --- lifecycle ------------------------------------------------------------ */

/*
 * policy_open - connect to [redis] of cfg (copied); name tags the
 * connection in logs.  Reconnects by itself.  0 or a negative errno.
 */
int policy_open(struct policy **out, uv_loop_t *loop, const struct config *cfg,
    const char *name);
/* policy_close - as auth_close(): pending calls get -ECANCELED, then closed(arg). */
void policy_close(struct policy *p, void (*closed)(void *arg), void *arg);
bool policy_is_up(const struct policy *p);
/* policy_last_error - why the Redis connection last failed ("" when none). */
const char *policy_last_error(const struct policy *p);
/* policy_set_config - a reloaded configuration (copied); counters stay. */
void policy_set_config(struct policy *p, const struct config *cfg);

typedef void policy_result_cb(void *arg, int status, const struct policy_result *res);
typedef void policy_status_cb(void *arg, int status);

/* --- refusals ------------------------------------------------------------- */

/*
 * policy_refused - log one refusal ("policy refused rule=R reply=\"...\"
 * " followed by ctx, e.g. "sid=3 client=192.0.2.1 user=shop") at warn
 * level and count it by rule, in this process and in P refusals.  Fire and
 * forget: Redis being down loses only the shared count.
 */
void policy_refused(struct policy *p, const struct policy_result *res,
    const char *ctx);
/* policy_refusals_local - this process's count for rule (tests, metrics). */
uint64_t policy_refusals_local(const struct policy *p, const char *rule);

/* --- per-user rates ----------------------------------------------------------- */

/*
 * policy_user_init - the effective rates of user name: overrides (the
 * user's stored "rate" / "rcpt_rate" text, "" = none) else the [policy]
 * defaults.  A stored text that does not parse falls back to the default
 * and is logged.  Synchronous.
 */
void policy_user_init(const struct policy *p, struct policy_user *u,
    const char *name, const char *rate, const char *rcpt_rate);

/*
 * policy_rcpt - may user u (sending from sender_domain) add one more
 * recipient rcpt to a transaction that has nrcpt already?  One Redis
 * round trip checks, without counting anything:
 *   suppression: rcpt in P sup:* or P sup:SENDER_DOMAIN ->
 *     REJECT "550 5.7.1 recipient suppressed (hard bounce on 2026-11-22)"
 *     (rule "suppressed"), or DROP under [policy] suppressed = drop;
 *   messages: the user's message count is at a limit ->
 *     TEMPFAIL "450 4.7.1 ..." naming the limit and when to retry
 *     (rule "rate.messages");
 *   recipients: count + nrcpt + 1 over a limit -> TEMPFAIL "450 4.7.1 ..."
 *     (rule "rate.recipients").
 */
int policy_rcpt(struct policy *p, const struct policy_user *u,
    const char *sender_domain, const char *rcpt, size_t nrcpt,
    policy_result_cb *cb, void *arg);

/*
 * policy_commit - at the end of DATA, before the message is queued:
 * atomically check every limit of u for one more message with nrcpt
 * recipients and, when all pass, count them.  TEMPFAIL "451 4.7.1 ..."
 * (rule "rate.messages" / "rate.recipients") when one would be exceeded
 * (two sessions raced past policy_rcpt); nothing is counted then.
 */
int policy_commit(struct policy *p, const struct policy_user *u, size_t nrcpt,
    policy_result_cb *cb, void *arg);
/*
 * policy_count - count one message with nrcpt recipients for u without
 * checking (the message is queued already).  The submission listener
 * counts this way after the enqueue instead of committing before it:
 * a commit is a Redis write, and with appendfsync always a write waits
 * for an fsync, so a commit in front of the enqueue would put a second
 * fsync between the end of DATA and the 250.  The count goes out right
 * after the enqueue's answer, on the policy connection, ahead of any
 * later policy_rcpt of the same process, and nobody waits for it.  The
 * price: sessions of one user that pass their RCPT checks at the same
 * moment can together exceed a limit by the messages they have in
 * flight.  cb may be NULL.
 */
int policy_count(struct policy *p, const struct policy_user *u, size_t nrcpt,
    policy_status_cb *cb, void *arg);
/* policy_uncommit - give back a commit whose message could not be queued. */
int policy_uncommit(struct policy *p, const struct policy_user *u, size_t nrcpt,
    policy_status_cb *cb, void *arg);

/* --- the inbound MX's rate per client address ----------------------------------- */

/*
 * policy_ip_rate - may client ip start one more message at the inbound
 * MX under [relay] inbound_rate?  Checks every limit and, when all pass,
 * counts one, atomically (rate.lua's 'commit', the windows of the
 * per-user rates).  An IPv4 address is counted as it is (an IPv4-mapped
 * IPv6 one as its IPv4 address), an IPv6 one as its /64.  Over a limit:
 * TEMPFAIL "450 4.7.1 Too many messages from your address 192.0.2.1:
 * 120 messages per minute; try again in 20 seconds" ("your network
 * 2001:db8::/64" for IPv6), rule "inbound.rate", nothing counted.  No
 * limits configured: OK, and still one round trip (callers skip the call
 * then).  -EINVAL when ip is no IP address.
 */
int policy_ip_rate(struct policy *p, const char *ip, policy_result_cb *cb, void *arg);

/* --- AUTH failures per client address --------------------------------------- */

/*
 * policy_auth_check - is ip locked out?  TEMPFAIL "454 4.7.0 Too many
 * failed authentications from your address; try again in N minutes"
 * (rule "auth.lockout") or OK.
 */
int policy_auth_check(struct policy *p, const char *ip, policy_result_cb *cb,
    void *arg);
/*
 * policy_auth_failed - count one failure of ip.  When it reaches
 * [policy] auth_fail_limit within auth_fail_window the address is locked
 * for auth_lockout: res is then TEMPFAIL as above, and only the call that
 * locked it logs ("policy auth_lockout client=IP failures=N until=...").
 */
int policy_auth_failed(struct policy *p, const char *ip, policy_result_cb *cb,
    void *arg);

/* --- the suppression list ------------------------------------------------------- */

enum policy_sup_reason {
	POLICY_SUP_HARD_BOUNCE,
	POLICY_SUP_COMPLAINT,
	POLICY_SUP_MANUAL,
	POLICY_SUP_SOFT_BOUNCE_LIMIT,  /* [mailbox] soft_bounce_limit soft bounces in the window */
};
const char *policy_sup_reason_name(enum policy_sup_reason r); /* "hard-bounce", ... */
int policy_sup_reason_parse(const char *s, enum policy_sup_reason *out);

struct policy_sup_entry {
	char scope[256];     /* sending domain, or "*" */
	char addr[512];      /* lower case */
	enum policy_sup_reason reason;
	uint64_t added_ms;
	char text[256];      /* the bounce reply, or the operator's note */
};

typedef void policy_sup_cb(void *arg, int status,
    const struct policy_sup_entry *entries, size_t n);

/*
 * policy_suppress - add addr (lower-cased) to scope (a sending domain, or
 * NULL / "*" for global) with reason and text; an entry that exists is
 * replaced.  -EINVAL for an address without '@' or longer than 511 bytes.
 */
int policy_suppress(struct policy *p, const char *scope, const char *addr,
    enum policy_sup_reason reason, const char *text, policy_status_cb *cb,
    void *arg);
/* policy_unsuppress - remove addr from scope (NULL / "*": global); cb -ENOENT if absent. */
int policy_unsuppress(struct policy *p, const char *scope, const char *addr,
    policy_status_cb *cb, void *arg);
/*
 * policy_sup_check - the entries for addr under global and scope (scope
 * NULL: under every scope), 0 to n of them.
 */
int policy_sup_check(struct policy *p, const char *scope, const char *addr,
    policy_sup_cb *cb, void *arg);
/*
 * policy_sup_page - one page of the suppression list of scope (NULL:
 * every scope), so that a list of millions is walked a page at a time
 * and never held whole, in Redis's reply or here.
 *
 * cursor: NULL, "" or "0" to start; then the next_cursor of the page
 * before (at most POLICY_SUP_CURSOR_MAX - 1 bytes, "SCOPE|N").  count:
 * the entries wanted, 1 to POLICY_SUP_PAGE_MAX (else -EINVAL); a page may
 * hold a few more (Redis's HSCAN works in hash buckets, and gives a small
 * hash whole) or fewer, even none, with more to come.  cb gets the page
 * and next_cursor, "0" when the walk is done ("" with a failed status).
 *
 * Order: scope by scope in sorted order ("*" first); inside a scope in
 * HSCAN order, each page sorted by scope then address, so a scope that
 * fits in one page comes out sorted.  An entry present for the whole
 * walk is listed at least once; one added or removed meanwhile may or
 * may not be.  Duplicates within a page are dropped; across pages one
 * can appear only when a scope's hash was resized between two pages
 * (entries added or removed during the walk): callers that must count
 * exactly should list a list that is not being changed.
 */
#define POLICY_SUP_PAGE_MAX 10000
#define POLICY_SUP_CURSOR_MAX 288
typedef void policy_page_cb(void *arg, int status,
    const struct policy_sup_entry *entries, size_t n, const char *next_cursor);
int policy_sup_page(struct policy *p, const char *scope, const char *cursor,
    unsigned count, policy_page_cb *cb, void *arg);
/*
 * policy_sup_filter - for delivery: which of addrs[0..n) are suppressed
 * for sender_domain (global or that scope).  cb gets a bool per address
 * and the matching entries' reasons/dates as a reply text
 * ("recipient suppressed (hard bounce on 2026-11-22)").
 */
typedef void policy_filter_cb(void *arg, int status, const bool *suppressed,
    char *const *why, size_t n);
int policy_sup_filter(struct policy *p, const char *sender_domain,
    const char *const *addrs, size_t n, policy_filter_cb *cb, void *arg);

/* --- returns: the bounce log, soft-bounce counting ------------------------------ */

/* What a return said of one recipient (mailbox/bounce.h's classes). */
enum policy_ret_class {
	POLICY_RET_NONE,
	POLICY_RET_HARD,
	POLICY_RET_SOFT,
	POLICY_RET_COMPLAINT,
	POLICY_RET_AUTO_REPLY,
};
/* "none", "hard", "soft", "complaint", "auto-reply" */
const char *policy_ret_class_name(enum policy_ret_class c);
int policy_ret_class_parse(const char *s, enum policy_ret_class *out);

/* One return, as the inbound MX classified it.  Strings borrowed for the call. */
struct policy_return {
	const char *key;       /* idempotency: the same key is acted on once */
	const char *user;      /* whose bounce log gets the entry (a user name) */
	const char *scope;     /* the returned message's sender domain; "" = none */
	const char *addr;      /* the recipient it is about */
	enum policy_ret_class cls;
	const char *reason;    /* one word: user-unknown, mailbox-full, ... */
	const char *status;    /* "5.1.1", or "" */
	const char *qid;       /* the returned message's queue id, or "" */
	const char *text;      /* the diagnostic, for the suppression entry */
};

struct policy_return_result {
	bool repeated;         /* key seen before: nothing was done */
	uint64_t soft_count;   /* soft: soft bounces of addr for scope in the window */
	/* The suppression added now (reason name), or NULL. */
	const char *suppressed;
};
typedef void policy_return_cb(void *arg, int status, const struct policy_return_result *res);

/*
 * policy_return - act on one classified return, atomically and once per
 * r->key (kept [mailbox] retention): add it to r->user's bounce log
 * (trimmed to [mailbox] retention and max_messages entries); then, with
 * a scope: a hard bounce suppresses addr for scope with reason
 * hard-bounce when [policy] suppress_bounces is set; a complaint with
 * reason complaint; a soft bounce is counted, and the
 * [mailbox] soft_bounce_limit-th within soft_bounce_window (0: off)
 * suppresses it with reason soft-bounce-limit unless it is suppressed
 * already; an auto-reply or none changes nothing.  An existing entry is
 * replaced by a hard bounce or a complaint.  -EINVAL for a missing key,
 * user or address.
 */
int policy_return(struct policy *p, const struct policy_return *r, policy_return_cb *cb,
    void *arg);

/* One entry of a bounce log. */
struct policy_bounce_entry {
	char user[65];
	char addr[512];
	enum policy_ret_class cls;
	char reason[32];
	char status[16];
	char qid[32];
	char scope[256];
	uint64_t date_ms;
};
typedef void policy_bounce_cb(void *arg, int status, const struct policy_bounce_entry *e,
    size_t n);
/*
 * policy_bounce_list - the bounce log of user (NULL: every user), the
 * entries dated since_ms or later, newest first, at most max (1 to
 * POLICY_BOUNCE_LIST_MAX) per user.
 */
#define POLICY_BOUNCE_LIST_MAX 10000
int policy_bounce_list(struct policy *p, const char *user, uint64_t since_ms, unsigned max,
    policy_bounce_cb *cb, void *arg);

/* --- throttled destinations ---------------------------------------------------- */

struct policy_throttle {
	char group[256];     /* the destination group ("gmail.com") */
	uint64_t until_ms;   /* suspended until (Redis clock, ms since the epoch) */
	unsigned level;      /* consecutive throttles: 1, 2, ... */
	char reply[256];     /* the reply that throttled it */
};

typedef void policy_throttle_cb(void *arg, int status,
    const struct policy_throttle *t, size_t n);

/*
 * policy_throttle_hit - group answered with a throttling reply: suspend it
 * for backoff_min * 2^(level-1), capped at backoff_max, where level is one
 * more than the stored one (1 if none or the last suspension ended more
 * than backoff_max ago).  cb gets the new entry.
 */
int policy_throttle_hit(struct policy *p, const char *group, const char *reply,
    policy_throttle_cb *cb, void *arg);
/* policy_throttle_clear - a delivery to group succeeded: forget its level. */
int policy_throttle_clear(struct policy *p, const char *group,
    policy_status_cb *cb, void *arg);
/* policy_throttle_list - every entry, suspended or not yet forgotten. */
int policy_throttle_list(struct policy *p, policy_throttle_cb *cb, void *arg);

/* policy_refusal_totals - P refusals: rule/count pairs, sorted by rule. */
struct policy_count {
	char rule[64];
	uint64_t n;
};
typedef void policy_counts_cb(void *arg, int status, const struct policy_count *c,
    size_t n);
int policy_refusal_totals(struct policy *p, policy_counts_cb *cb, void *arg);

#endif
