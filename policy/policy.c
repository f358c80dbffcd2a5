/*
 * policy - the policy module's lifecycle (open, close, the Redis
 * connection and its scripts) and the count of refusals by rule.  The
 * services are in rate.c (per-user rates), lockout.c (AUTH failures),
 * suppress.c (the suppression list) and throttle.c (throttled
 * destinations); policy_int.h is what they share.  See policy.h for the
 * contract.
 *
 * Key layout (P = the [redis] prefix):
 *
 *   P rl:u:NAME:m:WMS:SLOT  string   messages of user NAME counted in slot
 *                                    SLOT = floor(now_ms / WMS) of a rate
 *                                    whose window is WMS ms
 *   P rl:u:NAME:r:WMS:SLOT  string   recipients, likewise
 *   P af:IP:SLOT            string   AUTH failures of IP, slots of
 *                                    [policy] auth_fail_window
 *   P lock:IP               string   "until_ms failures", PX auth_lockout
 *   P sup:SCOPE             hash     address -> "REASON ADDED_MS TEXT";
 *                                    REASON is hard-bounce, complaint or
 *                                    manual; SCOPE a lower-case sending
 *                                    domain or "*" (every sender)
 *   P sup:scopes            set      every SCOPE holding entries
 *   P throttle              hash     group -> "UNTIL_MS LEVEL REPLY"
 *   P refusals              hash     rule -> refusals counted
 *
 * Counter slots expire (PEXPIRE) 2 windows + 60 s after they were made
 * (a rate slot gets its expiry at its first increment; an AUTH failure
 * slot at each one), so an idle user or address leaves nothing behind.  Two
 * limits with the same window share their slot keys (they count the
 * same events).
 *
 * Sliding windows.  A rate N/W keeps two fixed slots of length W; at a
 * time now at fraction f = (now - slot * W) / W into the current slot,
 * the estimate is cur + prev * (1 - f).  A check that would add k events
 * refuses when estimate + k > N.  In an empty window N events pass and
 * the (N+1)th is refused; the allowance returns as the previous slot's
 * weight fades, fully after 2W without traffic.  The retry time in a
 * reply is the first moment the estimate would leave room for k again,
 * assuming no other traffic: later in this slot while prev fades, or
 * after this slot's count has become the previous slot and faded.
 * Every script takes its clock from Redis (TIME), so nodes agree.
 *
 * Scripts (policy/lua, embedded into build/gen/policy_lua.c):
 *   rate.lua         policy_rcpt ('peek': suppression lookup and every
 *                    limit, nothing counted), policy_commit (check every
 *                    limit, count all when all pass: one script, so two
 *                    racing sessions cannot both pass the last slot) and
 *                    policy_uncommit (take back from the current slot,
 *                    then the previous one, never below zero)
 *   auth_failed.lua  INCR the address's failure slot; at estimate >=
 *                    auth_fail_limit SET the lock key with PX and drop
 *                    the failure slots (counting restarts after the lock)
 *   suppress.lua, unsuppress.lua, sup_get.lua, sup_filter.lua
 *   sup_page.lua     one page of the list: SMEMBERS of the scopes, sorted,
 *                    then HSCAN from the cursor's scope on until the page
 *                    is full, scope after scope
 *   throttle_hit.lua level = stored + 1 unless the last suspension ended
 *                    over backoff_max ago; suspend min * 2^(level-1),
 *                    capped at max
 *   throttle_list.lua  drops entries forgotten (ended over max ago)
 * policy_auth_check is a PTTL of the lock key, policy_throttle_clear an
 * HDEL, policy_refused an HINCRBY whose reply is ignored.
 *
 * Every call is one struct preq passed to core/rdb as the reply's arg; on
 * policy_close() rdb cancels them all (-ECANCELED) before p is freed.
 */
#include "policy/policy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/rdb.h"
#include "core/str.h"
#include "core/xmalloc.h"

#include "policy/policy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/rdb.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "policy/policy_int.h"

extern const char policy_lua_rate[], policy_lua_auth_failed[],
    policy_lua_suppress[], policy_lua_unsuppress[], policy_lua_sup_get[],
    policy_lua_sup_page[], policy_lua_sup_filter[], policy_lua_throttle_hit[], policy_lua_throttle_list[],
    policy_lua_return[], policy_lua_bounce_list[];

struct rdb_script policy__script_rate = { "policy_rate", policy_lua_rate, "" };
struct rdb_script policy__script_auth_failed = { "policy_auth_failed", policy_lua_auth_failed, "" };
struct rdb_script policy__script_suppress = { "policy_suppress", policy_lua_suppress, "" };
struct rdb_script policy__script_unsuppress = { "policy_unsuppress", policy_lua_unsuppress, "" };
struct rdb_script policy__script_sup_get = { "policy_sup_get", policy_lua_sup_get, "" };
struct rdb_script policy__script_sup_page = { "policy_sup_page", policy_lua_sup_page, "" };
struct rdb_script policy__script_sup_filter = { "policy_sup_filter", policy_lua_sup_filter, "" };
struct rdb_script policy__script_throttle_hit = { "policy_throttle_hit", policy_lua_throttle_hit, "" };
struct rdb_script policy__script_throttle_list = { "policy_throttle_list", policy_lua_throttle_list, "" };
struct rdb_script policy__script_return = { "policy_return", policy_lua_return, "" };
struct rdb_script policy__script_bounce_list = { "policy_bounce_list", policy_lua_bounce_list, "" };

static struct rdb_script *const scripts[] = {
	&policy__script_rate, &policy__script_auth_failed, &policy__script_suppress, &policy__script_unsuppress, &policy__script_sup_get,
	&policy__script_sup_page, &policy__script_sup_filter, &policy__script_throttle_hit, &policy__script_throttle_list,
	&policy__script_return, &policy__script_bounce_list,
	NULL,
};

/* --- helpers ------------------------------------------------------------------ */

/* key - P a b: "P sup:" "example.com". */
void
policy__key(const struct policy *p, char *dst, size_t size, const char *a, const char *b)
{
	snprintf(dst, size, "%s%s%s", p->prefix, a, b);
}

struct preq *
policy__preq_new(struct policy *p, void *arg)
{
	struct preq *q = xcalloc(1, sizeof *q);

	q->p = p;
	q->arg = arg;
	return q;
}

/* Set a refusal; the reply is cut to fit (it never is at our lengths). */
void
policy__reply_set(struct policy_result *res, enum policy_verdict v, const char *rule,
    const char *fmt, ...)
{
	va_list ap;

	res->verdict = v;
	res->rule = rule;
	va_start(ap, fmt);
	vsnprintf(res->reply, sizeof res->reply, fmt, ap);
	va_end(ap);
}

/* Lower-case copy; -E2BIG when it does not fit. */
int
policy__lower_copy(char *dst, const char *src, size_t size)
{
	if (str_copy(dst, src, size) < 0)
		return -E2BIG;
	str_lower(dst);
	return 0;
}

int
policy__eval(struct policy *p, struct rdb_script *s, rdb_reply_cb *cb, struct preq *q,
    int nkeys, int nargs, const char **args)
{
	size_t lens[64];
	int rc;

	for (int i = 0; i < nargs; i++)
		lens[i] = strlen(args[i]);
	rc = rdb_eval(p->db, s, cb, q, nkeys, nargs, args, lens);
	if (rc < 0)
		free(q);
	return rc;
}

int
policy__cmd(struct policy *p, rdb_reply_cb *cb, struct preq *q, int argc, const char **argv)
{
	size_t lens[8];
	int rc;

	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	rc = rdb_cmd(p->db, cb, q, argc, argv, lens);
	if (rc < 0)
		free(q);
	return rc;
}

/* "a day", "an hour", "10 seconds": a window for a reply. */
const char *
policy__window_text(char *dst, size_t size, uint64_t ms)
{
	static const struct {
		uint64_t ms;
		const char *one, *many;
	} units[] = {
		{ 86400000, "day", "days" },
		{ 3600000, "hour", "hours" },
		{ 60000, "minute", "minutes" },
		{ 1000, "second", "seconds" },
	};

	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (ms % units[i].ms != 0)
			continue;
		if (ms == units[i].ms)
			snprintf(dst, size, "%s", units[i].one);
		else
			snprintf(dst, size, "%" PRIu64 " %s", ms / units[i].ms, units[i].many);
		return dst;
	}
	snprintf(dst, size, "%" PRIu64 " ms", ms);
	return dst;
}

/* "7 minutes", "1 second", "3 hours": a wait, rounded up. */
const char *
policy__wait_text(char *dst, size_t size, uint64_t ms)
{
	uint64_t s = (ms + 999) / 1000, m = (ms + 59999) / 60000,
	    h = (ms + 3599999) / 3600000;

	if (s == 0)
		s = 1;
	if (s < 60)
		snprintf(dst, size, "%" PRIu64 " second%s", s, s == 1 ? "" : "s");
	else if (m < 120)
		snprintf(dst, size, "%" PRIu64 " minute%s", m, m == 1 ? "" : "s");
	else
		snprintf(dst, size, "%" PRIu64 " hours", h);
	return dst;
}

/* "2026-11-22" (UTC) of ms since the epoch. */
const char *
policy__date_text(char *dst, size_t size, uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(dst, size, "%Y-%m-%d", &tm) == 0)
		snprintf(dst, size, "?");
	return dst;
}

void
policy__result_ok(struct policy_result *res)
{
	memset(res, 0, sizeof *res);
	res->verdict = POLICY_OK;
}

bool
policy__usable(const struct policy *p)
{
	return !p->closing && rdb_is_up(p->db);
}

/* --- lifecycle ------------------------------------------------------------------ */

int
policy_open(struct policy **out, uv_loop_t *loop, const struct config *cfg,
    const char *name)
{
	struct policy *p;
	int rc;

	p = xcalloc(1, sizeof *p);
	p->loop = loop;
	config_copy(&p->cfg, cfg);
	str_copy(p->prefix, cfg->redis.prefix, sizeof p->prefix);
	if ((rc = rdb_open_config(&p->db, loop, cfg, name, scripts, NULL, NULL)) < 0) {
		config_free(&p->cfg);
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

static void
on_rdb_closed(void *arg)
{
	struct policy *p = arg;
	void (*cb)(void *) = p->closed_cb;
	void *cb_arg = p->closed_arg;

	config_free(&p->cfg);
	free(p);
	if (cb != NULL)
		cb(cb_arg);
}

void
policy_close(struct policy *p, void (*closed)(void *arg), void *arg)
{
	p->closed_cb = closed;
	p->closed_arg = arg;
	p->closing = true;
	/* Pending calls get -ECANCELED from rdb before on_rdb_closed. */
	rdb_close(p->db, on_rdb_closed, p);
}

bool
policy_is_up(const struct policy *p)
{
	return policy__usable(p);
}

const char *
policy_last_error(const struct policy *p)
{
	return rdb_last_error(p->db);
}

void
policy_set_config(struct policy *p, const struct config *cfg)
{
	config_free(&p->cfg);
	config_copy(&p->cfg, cfg);
}

/* --- refusals ------------------------------------------------------------------- */

static void
on_ignored(void *arg, int status, redisReply *r)
{
	(void)arg;
	rdb_log_error("policy", "refusal_count", status, r);
}

void
policy_refused(struct policy *p, const struct policy_result *res,
    const char *ctx)
{
	const char *rule = res->rule != NULL ? res->rule : "unknown";
	char q[300], k[KEY_MAX];
	const char *argv[4];
	size_t lens[4];
	unsigned i;

	log_warn("policy", "refused", "rule=%s reply=%s%s%s", rule,
	    log_quotes(q, sizeof q, res->reply), ctx != NULL && *ctx ? " " : "",
	    ctx != NULL ? ctx : "");
	for (i = 0; i < p->nlocal; i++)
		if (strcmp(p->local[i].rule, rule) == 0)
			break;
	if (i == p->nlocal && i < LOCAL_RULES) {
		str_copy(p->local[i].rule, rule, sizeof p->local[i].rule);
		p->nlocal++;
	}
	if (i < p->nlocal)
		p->local[i].n++;
	if (!policy__usable(p))
		return;
	policy__key(p, k, sizeof k, "refusals", "");
	argv[0] = "HINCRBY";
	argv[1] = k;
	argv[2] = rule;
	argv[3] = "1";
	for (int j = 0; j < 4; j++)
		lens[j] = strlen(argv[j]);
	(void)rdb_cmd(p->db, on_ignored, NULL, 4, argv, lens);
}

uint64_t
policy_refusals_local(const struct policy *p, const char *rule)
{
	for (unsigned i = 0; i < p->nlocal; i++)
		if (strcmp(p->local[i].rule, rule) == 0)
			return p->local[i].n;
	return 0;
}

/* --- refusal totals ---------------------------------------------------------------- */

static int
count_cmp(const void *a, const void *b)
{
	return strcmp(((const struct policy_count *)a)->rule,
	    ((const struct policy_count *)b)->rule);
}

static void
on_totals(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_count *c = NULL;
	size_t n = 0;

	if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0))
		status = -EIO;
	if (status == 0) {
		c = xcalloc(r->elements / 2 + 1, sizeof *c);
		for (size_t i = 0; i + 1 < r->elements; i += 2) {
			const redisReply *k = r->element[i];
			int64_t v = rdb_reply_int(r->element[i + 1]);

			if (k->type != REDIS_REPLY_STRING || v < 0)
				continue;
			str_copyn(c[n].rule, k->str, k->len, sizeof c[n].rule);
			c[n].n = (uint64_t)v;
			n++;
		}
		qsort(c, n, sizeof *c, count_cmp);
	}
	rdb_log_error("policy", "refusal_totals", status, r);
	q->cb.counts(q->arg, status, c, n);
	free(c);
	free(q);
}

int
policy_refusal_totals(struct policy *p, policy_counts_cb *cb, void *arg)
{
	struct preq *q;
	char k[KEY_MAX];
	const char *argv[2];

	if (!policy__usable(p))
		return -ENOTCONN;
	q = policy__preq_new(p, arg);
	q->cb.counts = cb;
	policy__key(p, k, sizeof k, "refusals", "");
	argv[0] = "HGETALL";
	argv[1] = k;
	return policy__cmd(p, on_totals, q, 2, argv);
}
