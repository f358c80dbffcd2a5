/*
 * policy - rates, AUTH lock-outs, suppression, throttle state and refusal
 * counts in Redis.  See policy.h for the contract.
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

#define PREFIX_MAX (sizeof ((struct config *)0)->redis.prefix)
#define KEY_MAX (PREFIX_MAX + 600)
#define LOCAL_RULES 32
#define SUP_ADDR_MAX 511

extern const char policy_lua_rate[], policy_lua_auth_failed[],
    policy_lua_suppress[], policy_lua_unsuppress[], policy_lua_sup_get[],
    policy_lua_sup_page[], policy_lua_sup_filter[], policy_lua_throttle_hit[], policy_lua_throttle_list[];

static struct rdb_script s_rate = { "policy_rate", policy_lua_rate, "" };
static struct rdb_script s_auth_failed = { "policy_auth_failed", policy_lua_auth_failed, "" };
static struct rdb_script s_suppress = { "policy_suppress", policy_lua_suppress, "" };
static struct rdb_script s_unsuppress = { "policy_unsuppress", policy_lua_unsuppress, "" };
static struct rdb_script s_sup_get = { "policy_sup_get", policy_lua_sup_get, "" };
static struct rdb_script s_sup_page = { "policy_sup_page", policy_lua_sup_page, "" };
static struct rdb_script s_sup_filter = { "policy_sup_filter", policy_lua_sup_filter, "" };
static struct rdb_script s_throttle_hit = { "policy_throttle_hit", policy_lua_throttle_hit, "" };
static struct rdb_script s_throttle_list = { "policy_throttle_list", policy_lua_throttle_list, "" };

static struct rdb_script *const scripts[] = {
	&s_rate, &s_auth_failed, &s_suppress, &s_unsuppress, &s_sup_get,
	&s_sup_page, &s_sup_filter, &s_throttle_hit, &s_throttle_list,
	NULL,
};

struct local_count {
	char rule[64];
	uint64_t n;
};

struct policy {
	uv_loop_t *loop;
	struct rdb *db;
	struct config cfg;
	char prefix[PREFIX_MAX];
	struct local_count local[LOCAL_RULES];
	unsigned nlocal;
	void (*closed_cb)(void *arg);
	void *closed_arg;
	bool closing;
};

/* One pending call. */
struct preq {
	struct policy *p;
	union {
		policy_result_cb *result;
		policy_status_cb *status;
		policy_sup_cb *sup;
		policy_page_cb *page;
		policy_filter_cb *filter;
		policy_throttle_cb *throttle;
		policy_counts_cb *counts;
	} cb;
	void *arg;
	bool commit;                 /* rate: 451 instead of 450 */
	struct policy_user user;     /* rate: for the reply text */
	char ip[64];                 /* auth */
	char group[256];             /* throttle_hit */
	char reply[256];
	size_t n;                    /* sup_filter: addresses */
};

/* --- helpers ------------------------------------------------------------------ */

static void
log_redis_error(const char *what, int status, const redisReply *r)
{
	char q[300];

	if (status == -EIO && r != NULL && r->type == REDIS_REPLY_ERROR)
		log_error("policy", "redis_error", "op=%s error=%s", what,
		    log_quote(q, sizeof q, r->str, r->len));
}

/* key - P a b: "P sup:" "example.com". */
static void
key(const struct policy *p, char *dst, size_t size, const char *a, const char *b)
{
	snprintf(dst, size, "%s%s%s", p->prefix, a, b);
}

static struct preq *
preq_new(struct policy *p, void *arg)
{
	struct preq *q = xcalloc(1, sizeof *q);

	q->p = p;
	q->arg = arg;
	return q;
}

static void reply_set(struct policy_result *res, enum policy_verdict v,
    const char *rule, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Set a refusal; the reply is cut to fit (it never is at our lengths). */
static void
reply_set(struct policy_result *res, enum policy_verdict v, const char *rule,
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
static int
lower_copy(char *dst, const char *src, size_t size)
{
	if (str_copy(dst, src, size) < 0)
		return -E2BIG;
	str_lower(dst);
	return 0;
}

static int
eval(struct policy *p, struct rdb_script *s, rdb_reply_cb *cb, struct preq *q,
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

static int
cmd(struct policy *p, rdb_reply_cb *cb, struct preq *q, int argc, const char **argv)
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

static int64_t
reply_int(const redisReply *r)
{
	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer;
	if (r->type == REDIS_REPLY_STRING) {
		uint64_t v;

		if (str_to_u64n(r->str, r->len, &v) == 0)
			return (int64_t)v;
	}
	return -1;
}

/* "a day", "an hour", "10 seconds": a window for a reply. */
static const char *
window_text(char *dst, size_t size, uint64_t ms)
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
static const char *
wait_text(char *dst, size_t size, uint64_t ms)
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
static const char *
date_text(char *dst, size_t size, uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(dst, size, "%Y-%m-%d", &tm) == 0)
		snprintf(dst, size, "?");
	return dst;
}

static void
result_ok(struct policy_result *res)
{
	memset(res, 0, sizeof *res);
	res->verdict = POLICY_OK;
}

static bool
usable(const struct policy *p)
{
	return !p->closing && rdb_is_up(p->db);
}

/* --- lifecycle ------------------------------------------------------------------ */

int
policy_open(struct policy **out, uv_loop_t *loop, const struct config *cfg,
    const char *name)
{
	struct policy *p;
	struct rdb_opts o;
	int rc;

	for (size_t i = 0; scripts[i] != NULL; i++)
		if (scripts[i]->sha[0] == '\0')
			rdb_script_init(scripts[i]);
	p = xcalloc(1, sizeof *p);
	p->loop = loop;
	config_copy(&p->cfg, cfg);
	str_copy(p->prefix, cfg->redis.prefix, sizeof p->prefix);
	rdb_opts_from_config(&o, cfg, name, scripts);
	if ((rc = rdb_open(&p->db, loop, &o, NULL, NULL)) < 0) {
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
	return usable(p);
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
	log_redis_error("refusal_count", status, r);
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
	if (!usable(p))
		return;
	key(p, k, sizeof k, "refusals", "");
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

/* --- per-user rates ------------------------------------------------------------- */

void
policy_user_init(const struct policy *p, struct policy_user *u,
    const char *name, const char *rate, const char *rcpt_rate)
{
	const char *texts[2] = { rate, rcpt_rate };
	struct config_rates *dst[2] = { &u->rate, &u->rcpt_rate };
	const struct config_rates *dflt[2] = { &p->cfg.policy.rate,
	    &p->cfg.policy.rcpt_rate };
	static const char *const what[2] = { "rate", "rcpt_rate" };

	memset(u, 0, sizeof *u);
	str_copy(u->name, name, sizeof u->name);
	for (int i = 0; i < 2; i++) {
		const char *why = "";
		char q[160];

		*dst[i] = *dflt[i];
		if (texts[i] == NULL || texts[i][0] == '\0')
			continue;
		if (config_parse_rates(texts[i], dst[i], &why) < 0) {
			*dst[i] = *dflt[i];
			log_warn("policy", "bad_user_rate", "user=%s key=%s value=%s error=\"%s\" hint=\"the [policy] default applies\"",
			    u->name, what[i], log_quotes(q, sizeof q, texts[i]), why);
		}
	}
}

/* The limit that refused: index i (1-based) over messages, then recipients. */
static const struct config_rate *
rate_at(const struct policy_user *u, int64_t i, bool *rcpt)
{
	if (i >= 1 && (uint64_t)i <= u->rate.n) {
		*rcpt = false;
		return &u->rate.r[i - 1];
	}
	i -= (int64_t)u->rate.n;
	if (i >= 1 && (uint64_t)i <= u->rcpt_rate.n) {
		*rcpt = true;
		return &u->rcpt_rate.r[i - 1];
	}
	return NULL;
}

/* Reply text of an entry "REASON MS TEXT": "recipient suppressed (hard bounce on D)". */
static bool
sup_parse(const char *v, size_t len, struct policy_sup_entry *e)
{
	const char *sp1, *sp2, *end = v + len;
	char reason[32];
	uint64_t ms;

	memset(e, 0, sizeof *e);
	sp1 = memchr(v, ' ', len);
	if (sp1 == NULL)
		return false;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (sp2 == NULL)
		sp2 = end;
	if (str_copyn(reason, v, (size_t)(sp1 - v), sizeof reason) < 0 ||
	    policy_sup_reason_parse(reason, &e->reason) < 0 ||
	    str_to_u64n(sp1 + 1, (size_t)(sp2 - sp1 - 1), &ms) < 0)
		return false;
	e->added_ms = ms;
	if (sp2 < end)
		str_copyn(e->text, sp2 + 1, (size_t)(end - sp2 - 1), sizeof e->text);
	return true;
}

static void
sup_why(const struct policy_sup_entry *e, char *dst, size_t size)
{
	static const char *const what[] = {
		[POLICY_SUP_HARD_BOUNCE] = "hard bounce on",
		[POLICY_SUP_COMPLAINT] = "complaint on",
		[POLICY_SUP_MANUAL] = "suppressed by the operator on",
	};
	char date[16];

	snprintf(dst, size, "recipient suppressed (%s %s)", what[e->reason],
	    date_text(date, sizeof date, e->added_ms));
}

static void
on_rate(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_result res;
	const redisReply *k;
	const char *what = q->commit ? "commit" : "rcpt";

	result_ok(&res);
	if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING))
		status = -EIO;
	if (status < 0) {
		log_redis_error(what, status, r);
		q->cb.result(q->arg, status, NULL);
		free(q);
		return;
	}
	k = r->element[0];
	if (strcmp(k->str, "sup") == 0 && r->elements == 2 &&
	    r->element[1]->type == REDIS_REPLY_STRING) {
		struct policy_sup_entry e;
		char why[300];

		if (!sup_parse(r->element[1]->str, r->element[1]->len, &e)) {
			e.reason = POLICY_SUP_MANUAL;
			e.added_ms = 0;
		}
		if (q->p->cfg.policy.suppressed == CONFIG_SUPPRESSED_DROP) {
			reply_set(&res, POLICY_DROP, "suppressed", "250 2.1.5 Ok");
		} else {
			sup_why(&e, why, sizeof why);
			reply_set(&res, POLICY_REJECT, "suppressed", "550 5.7.1 %s", why);
		}
	} else if ((strcmp(k->str, "m") == 0 || strcmp(k->str, "r") == 0) &&
	    r->elements == 3) {
		const struct config_rate *rt;
		bool rcpt = false;
		int64_t wait = reply_int(r->element[2]);
		char win[32], when[48];

		rt = rate_at(&q->user, reply_int(r->element[1]), &rcpt);
		if (rt == NULL) {
			/* The limits changed under the call: say so without numbers. */
			reply_set(&res, POLICY_TEMPFAIL, k->str[0] == 'r' ?
			    "rate.recipients" : "rate.messages",
			    "%s 4.7.1 Sending rate limit reached for user %s; try again later",
			    q->commit ? "451" : "450", q->user.name);
		} else {
			if (wait > 0)
				snprintf(when, sizeof when, "in %s",
				    wait_text(win, sizeof win, (uint64_t)wait));
			else
				snprintf(when, sizeof when, "later");
			reply_set(&res, POLICY_TEMPFAIL,
			    rcpt ? "rate.recipients" : "rate.messages",
			    "%s 4.7.1 Sending rate limit reached for user %s: %" PRIu64 " %s per %s; try again %s",
			    q->commit ? "451" : "450", q->user.name, rt->limit,
			    rcpt ? "recipients" : "messages",
			    window_text(win, sizeof win, rt->window_ms), when);
		}
	} else if (strcmp(k->str, "ok") != 0) {
		status = -EIO;
	}
	q->cb.result(q->arg, status, status == 0 ? &res : NULL);
	free(q);
}

/* Run rate.lua: op with increments inc_m/inc_r; rcpt and sup keys for 'peek'. */
static int
rate_eval(struct policy *p, struct preq *q, rdb_reply_cb *cb, const char *op,
    uint64_t inc_m, uint64_t inc_r, const char *sender_domain, const char *rcpt)
{
	const struct policy_user *u = &q->user;
	char k1[KEY_MAX], k2[KEY_MAX], base[KEY_MAX], num[2 + 2 * 2 * CONFIG_RATES_MAX + 2][24];
	char rc_lower[SUP_ADDR_MAX + 1], dom[256];
	const char *args[2 + 7 + 4 * CONFIG_RATES_MAX];
	int n = 0, m = 0;

	if (rcpt != NULL && (lower_copy(rc_lower, rcpt, sizeof rc_lower) < 0 ||
	    rc_lower[0] == '\0'))
		rc_lower[0] = '\0';
	else if (rcpt == NULL)
		rc_lower[0] = '\0';
	key(p, k1, sizeof k1, "sup:", "*");
	if (sender_domain != NULL && sender_domain[0] != '\0' &&
	    lower_copy(dom, sender_domain, sizeof dom) == 0)
		key(p, k2, sizeof k2, "sup:", dom);
	else
		str_copy(k2, k1, sizeof k2);
	snprintf(base, sizeof base, "%srl:u:%s:", p->prefix, u->name);
	args[n++] = k1;
	args[n++] = k2;
	args[n++] = op;
	args[n++] = base;
	snprintf(num[m], sizeof num[m], "%" PRIu64, inc_m);
	args[n++] = num[m++];
	snprintf(num[m], sizeof num[m], "%" PRIu64, inc_r);
	args[n++] = num[m++];
	args[n++] = rc_lower;
	snprintf(num[m], sizeof num[m], "%u", u->rate.n);
	args[n++] = num[m++];
	snprintf(num[m], sizeof num[m], "%u", u->rcpt_rate.n);
	args[n++] = num[m++];
	for (int j = 0; j < 2; j++) {
		const struct config_rates *rs = j == 0 ? &u->rate : &u->rcpt_rate;

		for (unsigned i = 0; i < rs->n; i++) {
			snprintf(num[m], sizeof num[m], "%" PRIu64, rs->r[i].limit);
			args[n++] = num[m++];
			snprintf(num[m], sizeof num[m], "%" PRIu64, rs->r[i].window_ms);
			args[n++] = num[m++];
		}
	}
	return eval(p, &s_rate, cb, q, 2, n, args);
}

static bool
user_ok(const struct policy_user *u)
{
	return u != NULL && u->name[0] != '\0' && u->rate.n <= CONFIG_RATES_MAX &&
	    u->rcpt_rate.n <= CONFIG_RATES_MAX;
}

int
policy_rcpt(struct policy *p, const struct policy_user *u,
    const char *sender_domain, const char *rcpt, size_t nrcpt,
    policy_result_cb *cb, void *arg)
{
	struct preq *q;

	if (!user_ok(u) || rcpt == NULL)
		return -EINVAL;
	if (!usable(p))
		return -ENOTCONN;
	q = preq_new(p, arg);
	q->cb.result = cb;
	q->user = *u;
	return rate_eval(p, q, on_rate, "peek", 1, (uint64_t)nrcpt + 1, sender_domain, rcpt);
}

int
policy_commit(struct policy *p, const struct policy_user *u, size_t nrcpt,
    policy_result_cb *cb, void *arg)
{
	struct preq *q;

	if (!user_ok(u))
		return -EINVAL;
	if (!usable(p))
		return -ENOTCONN;
	q = preq_new(p, arg);
	q->cb.result = cb;
	q->user = *u;
	q->commit = true;
	return rate_eval(p, q, on_rate, "commit", 1, nrcpt, NULL, NULL);
}

static void
on_count(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;

	log_redis_error("count", status, r);
	if (q->cb.status != NULL)
		q->cb.status(q->arg, status);
	free(q);
}

int
policy_count(struct policy *p, const struct policy_user *u, size_t nrcpt,
    policy_status_cb *cb, void *arg)
{
	struct preq *q;

	if (!user_ok(u))
		return -EINVAL;
	/* Nothing to count, and nobody waiting to be told. */
	if (cb == NULL && u->rate.n == 0 && u->rcpt_rate.n == 0)
		return 0;
	if (!usable(p))
		return -ENOTCONN;
	q = preq_new(p, arg);
	q->cb.status = cb;
	q->user = *u;
	return rate_eval(p, q, on_count, "count", 1, nrcpt, NULL, NULL);
}

static void
on_uncommit(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;

	log_redis_error("uncommit", status, r);
	q->cb.status(q->arg, status);
	free(q);
}

int
policy_uncommit(struct policy *p, const struct policy_user *u, size_t nrcpt,
    policy_status_cb *cb, void *arg)
{
	struct preq *q;

	if (!user_ok(u))
		return -EINVAL;
	if (!usable(p))
		return -ENOTCONN;
	q = preq_new(p, arg);
	q->cb.status = cb;
	q->user = *u;
	return rate_eval(p, q, on_uncommit, "uncommit", 1, nrcpt, NULL, NULL);
}

/* --- AUTH failures ---------------------------------------------------------------- */

static void
lockout_reply(struct policy_result *res, uint64_t ms)
{
	char when[48];

	reply_set(res, POLICY_TEMPFAIL, "auth.lockout",
	    "454 4.7.0 Too many failed authentications from your address; try again in %s",
	    wait_text(when, sizeof when, ms));
}

static void
on_auth_check(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_result res;

	result_ok(&res);
	if (status == 0 && r->type != REDIS_REPLY_INTEGER)
		status = -EIO;
	if (status == 0 && r->integer > 0)
		lockout_reply(&res, (uint64_t)r->integer);
	log_redis_error("auth_check", status, r);
	q->cb.result(q->arg, status, status == 0 ? &res : NULL);
	free(q);
}

static bool
ip_ok(const char *ip)
{
	size_t n = ip != NULL ? strlen(ip) : 0;

	return n > 0 && n < sizeof ((struct preq *)0)->ip &&
	    strpbrk(ip, " \t\r\n") == NULL;
}

int
policy_auth_check(struct policy *p, const char *ip, policy_result_cb *cb,
    void *arg)
{
	struct preq *q;
	char k[KEY_MAX];
	const char *argv[2];

	if (!ip_ok(ip))
		return -EINVAL;
	if (!usable(p))
		return -ENOTCONN;
	q = preq_new(p, arg);
	q->cb.result = cb;
	key(p, k, sizeof k, "lock:", ip);
	argv[0] = "PTTL";
	argv[1] = k;
	return cmd(p, on_auth_check, q, 2, argv);
}

static void
on_auth_failed(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_result res;
	int64_t state = -1, ms = 0, n = 0;

	result_ok(&res);
	if (status == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
		state = reply_int(r->element[0]);
		ms = reply_int(r->element[1]);
		n = reply_int(r->element[2]);
	}
	if (status == 0 && (state < 0 || state > 2 || ms < 0))
		status = -EIO;
	if (status == 0 && state > 0)
		lockout_reply(&res, (uint64_t)ms);
	if (status == 0 && state == 2)
		log_warn("policy", "auth_lockout", "client=%s failures=%u lockout_s=%llu",
		    q->ip, (unsigned)n, (unsigned long long)((uint64_t)ms / 1000));
	log_redis_error("auth_failed", status, r);
	q->cb.result(q->arg, status, status == 0 ? &res : NULL);
	free(q);
}

int
policy_auth_failed(struct policy *p, const char *ip, policy_result_cb *cb,
    void *arg)
{
	struct preq *q;
	char k[KEY_MAX], base[KEY_MAX], lim[24], win[24], lock[24];
	const char *args[6];
	unsigned limit = p->cfg.policy.auth_fail_limit;

	if (!ip_ok(ip))
		return -EINVAL;
	if (!usable(p))
		return -ENOTCONN;
	q = preq_new(p, arg);
	q->cb.result = cb;
	str_copy(q->ip, ip, sizeof q->ip);
	key(p, k, sizeof k, "lock:", ip);
	snprintf(base, sizeof base, "%saf:%s:", p->prefix, ip);
	/* A limit of 0 never locks. */
	snprintf(lim, sizeof lim, "%u", limit > 0 ? limit : 4000000000u);
	snprintf(win, sizeof win, "%" PRIu64, p->cfg.policy.auth_fail_window_ms > 0 ?
	    p->cfg.policy.auth_fail_window_ms : 1000);
	snprintf(lock, sizeof lock, "%" PRIu64, p->cfg.policy.auth_lockout_ms > 0 ?
	    p->cfg.policy.auth_lockout_ms : 1000);
	args[0] = k;
	args[1] = base;
	args[2] = lim;
	args[3] = win;
	args[4] = lock;
	return eval(p, &s_auth_failed, on_auth_failed, q, 1, 5, args);
}

/* --- the suppression list ------------------------------------------------------- */

static const char *const sup_names[] = {
	[POLICY_SUP_HARD_BOUNCE] = "hard-bounce",
	[POLICY_SUP_COMPLAINT] = "complaint",
	[POLICY_SUP_MANUAL] = "manual",
};

const char *
policy_sup_reason_name(enum policy_sup_reason r)
{
	if ((unsigned)r < sizeof sup_names / sizeof sup_names[0])
		return sup_names[r];
	return "manual";
}

int
policy_sup_reason_parse(const char *s, enum policy_sup_reason *out)
{
	for (unsigned i = 0; i < sizeof sup_names / sizeof sup_names[0]; i++) {
		if (strcmp(s, sup_names[i]) == 0) {
			*out = (enum policy_sup_reason)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* The scope's stored form: lower case, "*" for global.  -EINVAL if unusable. */
static int
sup_scope(const char *scope, char *dst, size_t size)
{
	if (scope == NULL || strcmp(scope, "*") == 0 || scope[0] == '\0')
		return str_copy(dst, "*", size) < 0 ? -EINVAL : 0;
	if (lower_copy(dst, scope, size) < 0 || strpbrk(dst, " \t\r\n") != NULL)
		return -EINVAL;
	return 0;
}

static int
sup_addr(const char *addr, char *dst, size_t size)
{
	if (addr == NULL || strchr(addr, '@') == NULL || strlen(addr) > SUP_ADDR_MAX ||
	    lower_copy(dst, addr, size) < 0)
		return -EINVAL;
	return 0;
}

static void
on_sup_status(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;

	if (status == 0 && r->type != REDIS_REPLY_INTEGER)
		status = -EIO;
	if (status == 0 && q->commit && r->integer == 0)
		status = -ENOENT;
	log_redis_error("suppress", status, r);
	q->cb.status(q->arg, status);
	free(q);
}

int
policy_suppress(struct policy *p, const char *scope, const char *addr,
    enum policy_sup_reason reason, const char *text, policy_status_cb *cb,
    void *arg)
{
	struct preq *q;
	char sc[256], ad[SUP_ADDR_MAX + 1], k1[KEY_MAX], k2[KEY_MAX], tx[256];
	const char *args[6];

	if (sup_scope(scope, sc, sizeof sc) < 0 || sup_addr(addr, ad, sizeof ad) < 0 ||
	    (unsigned)reason >= sizeof sup_names / sizeof sup_names[0])
		return -EINVAL;
	if (!usable(p))
		return -ENOTCONN;
	str_copy(tx, text != NULL ? text : "", sizeof tx);
	for (char *c = tx; *c; c++)
		if (*c == '\r' || *c == '\n')
			*c = ' ';
	q = preq_new(p, arg);
	q->cb.status = cb;
	key(p, k1, sizeof k1, "sup:", sc);
	key(p, k2, sizeof k2, "sup:", "scopes");
	args[0] = k1;
	args[1] = k2;
	args[2] = sc;
	args[3] = ad;
	args[4] = sup_names[reason];
	args[5] = tx;
	return eval(p, &s_suppress, on_sup_status, q, 2, 6, args);
}

int
policy_unsuppress(struct policy *p, const char *scope, const char *addr,
    policy_status_cb *cb, void *arg)
{
	struct preq *q;
	char sc[256], ad[SUP_ADDR_MAX + 1], k1[KEY_MAX], k2[KEY_MAX];
	const char *args[4];

	if (sup_scope(scope, sc, sizeof sc) < 0 || sup_addr(addr, ad, sizeof ad) < 0)
		return -EINVAL;
	if (!usable(p))
		return -ENOTCONN;
	q = preq_new(p, arg);
	q->cb.status = cb;
	q->commit = true;    /* 0 removed is -ENOENT */
	key(p, k1, sizeof k1, "sup:", sc);
	key(p, k2, sizeof k2, "sup:", "scopes");
	args[0] = k1;
	args[1] = k2;
	args[2] = sc;
	args[3] = ad;
	return eval(p, &s_unsuppress, on_sup_status, q, 2, 4, args);
}

static int
sup_entry_cmp(const void *a, const void *b)
{
	const struct policy_sup_entry *x = a, *y = b;
	int c = strcmp(x->scope, y->scope);

	return c != 0 ? c : strcmp(x->addr, y->addr);
}

static void
on_sup_get(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_sup_entry *e = NULL;
	size_t n = 0;

	if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements % 3 != 0))
		status = -EIO;
	if (status == 0) {
		e = xcalloc(r->elements / 3 + 1, sizeof *e);
		for (size_t i = 0; i + 2 < r->elements; i += 3) {
			const redisReply *sc = r->element[i], *ad = r->element[i + 1],
			    *v = r->element[i + 2];

			if (sc->type != REDIS_REPLY_STRING || ad->type != REDIS_REPLY_STRING ||
			    v->type != REDIS_REPLY_STRING || !sup_parse(v->str, v->len, &e[n]))
				continue;
			str_copyn(e[n].scope, sc->str, sc->len, sizeof e[n].scope);
			str_copyn(e[n].addr, ad->str, ad->len, sizeof e[n].addr);
			n++;
		}
		qsort(e, n, sizeof *e, sup_entry_cmp);
	}
	log_redis_error("sup_get", status, r);
	q->cb.sup(q->arg, status, e, n);
	free(e);
	free(q);
}

static int
sup_get(struct policy *p, const char *scope, const char *addr, bool with_global,
    policy_sup_cb *cb, void *arg)
{
	struct preq *q;
	char sc[256], ad[SUP_ADDR_MAX + 1], k[KEY_MAX], pfx[KEY_MAX];
	const char *args[5];

	sc[0] = '\0';
	ad[0] = '\0';
	if (scope != NULL && sup_scope(scope, sc, sizeof sc) < 0)
		return -EINVAL;
	if (addr != NULL && sup_addr(addr, ad, sizeof ad) < 0)
		return -EINVAL;
	if (!usable(p))
		return -ENOTCONN;
	q = preq_new(p, arg);
	q->cb.sup = cb;
	key(p, k, sizeof k, "sup:", "scopes");
	key(p, pfx, sizeof pfx, "sup:", "");
	args[0] = k;
	args[1] = pfx;
	args[2] = sc;
	args[3] = ad;
	args[4] = with_global ? "1" : "0";
	return eval(p, &s_sup_get, on_sup_get, q, 1, 5, args);
}

int
policy_sup_check(struct policy *p, const char *scope, const char *addr,
    policy_sup_cb *cb, void *arg)
{
	if (addr == NULL)
		return -EINVAL;
	return sup_get(p, scope, addr, true, cb, arg);
}

static void
on_sup_page(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_sup_entry *e = NULL;
	char next[POLICY_SUP_CURSOR_MAX] = "";
	size_t n = 0;

	if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements % 3 != 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    str_copyn(next, r->element[0]->str, r->element[0]->len, sizeof next) < 0))
		status = -EIO;
	if (status == 0) {
		e = xcalloc(r->elements / 3 + 1, sizeof *e);
		for (size_t i = 1; i + 2 < r->elements; i += 3) {
			const redisReply *sc = r->element[i], *ad = r->element[i + 1],
			    *v = r->element[i + 2];

			if (sc->type != REDIS_REPLY_STRING || ad->type != REDIS_REPLY_STRING ||
			    v->type != REDIS_REPLY_STRING || !sup_parse(v->str, v->len, &e[n]))
				continue;
			str_copyn(e[n].scope, sc->str, sc->len, sizeof e[n].scope);
			str_copyn(e[n].addr, ad->str, ad->len, sizeof e[n].addr);
			n++;
		}
		qsort(e, n, sizeof *e, sup_entry_cmp);
		/* HSCAN may repeat an entry inside one page: keep the first. */
		if (n > 1) {
			size_t k = 1;

			for (size_t i = 1; i < n; i++)
				if (sup_entry_cmp(&e[i], &e[k - 1]) != 0)
					e[k++] = e[i];
			n = k;
		}
	} else {
		next[0] = '\0';
	}
	log_redis_error("sup_page", status, r);
	q->cb.page(q->arg, status, e, n, next);
	free(e);
	free(q);
}

/* A cursor we made: "" / "0", or "SCOPE|DIGITS". */
static bool
sup_cursor_ok(const char *c)
{
	const char *bar;
	size_t len = strlen(c);

	if (len >= POLICY_SUP_CURSOR_MAX)
		return false;
	if (len == 0 || strcmp(c, "0") == 0)
		return true;
	bar = strrchr(c, '|');
	if (bar == NULL || bar == c || bar[1] == '\0' || strlen(bar + 1) > 20)
		return false;
	for (const char *d = bar + 1; *d; d++)
		if (*d < '0' || *d > '9')
			return false;
	return true;
}

int
policy_sup_page(struct policy *p, const char *scope, const char *cursor,
    unsigned count, policy_page_cb *cb, void *arg)
{
	struct preq *q;
	char sc[256], k[KEY_MAX], pfx[KEY_MAX], cnt[16];
	const char *args[5];

	sc[0] = '\0';
	if (cursor == NULL || strcmp(cursor, "0") == 0)
		cursor = "";
	if (count < 1 || count > POLICY_SUP_PAGE_MAX || !sup_cursor_ok(cursor))
		return -EINVAL;
	if (scope != NULL && sup_scope(scope, sc, sizeof sc) < 0)
		return -EINVAL;
	if (!usable(p))
		return -ENOTCONN;
	q = preq_new(p, arg);
	q->cb.page = cb;
	key(p, k, sizeof k, "sup:", "scopes");
	key(p, pfx, sizeof pfx, "sup:", "");
	snprintf(cnt, sizeof cnt, "%u", count);
	args[0] = k;
	args[1] = pfx;
	args[2] = sc;
	args[3] = cursor;
	args[4] = cnt;
	return eval(p, &s_sup_page, on_sup_page, q, 1, 5, args);
}

static void
on_sup_filter(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	bool *sup = xcalloc(q->n + 1, sizeof *sup);
	char **why = xcalloc(q->n + 1, sizeof *why);

	if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != q->n))
		status = -EIO;
	for (size_t i = 0; i < q->n; i++) {
		why[i] = xcalloc(1, 300);
		if (status == 0 && r->element[i]->type == REDIS_REPLY_STRING) {
			struct policy_sup_entry e;

			if (!sup_parse(r->element[i]->str, r->element[i]->len, &e)) {
				e.reason = POLICY_SUP_MANUAL;
				e.added_ms = 0;
			}
			sup[i] = true;
			sup_why(&e, why[i], 300);
		}
	}
	log_redis_error("sup_filter", status, r);
	q->cb.filter(q->arg, status, status == 0 ? sup : NULL,
	    status == 0 ? why : NULL, status == 0 ? q->n : 0);
	for (size_t i = 0; i < q->n; i++)
		free(why[i]);
	free(why);
	free(sup);
	free(q);
}

int
policy_sup_filter(struct policy *p, const char *sender_domain,
    const char *const *addrs, size_t n, policy_filter_cb *cb, void *arg)
{
	struct preq *q;
	char k1[KEY_MAX], k2[KEY_MAX], dom[256];
	const char **args;
	size_t *lens;
	char **low;
	int rc;

	if (n > 100000 || (n > 0 && addrs == NULL))
		return -EINVAL;
	if (!usable(p))
		return -ENOTCONN;
	key(p, k1, sizeof k1, "sup:", "*");
	if (sender_domain != NULL && sender_domain[0] != '\0' &&
	    lower_copy(dom, sender_domain, sizeof dom) == 0)
		key(p, k2, sizeof k2, "sup:", dom);
	else
		str_copy(k2, k1, sizeof k2);
	args = xcalloc(n + 2, sizeof *args);
	lens = xcalloc(n + 2, sizeof *lens);
	low = xcalloc(n + 1, sizeof *low);
	args[0] = k1;
	args[1] = k2;
	for (size_t i = 0; i < n; i++) {
		low[i] = str_lower(xstrdup(addrs[i] != NULL ? addrs[i] : ""));
		args[i + 2] = low[i];
	}
	for (size_t i = 0; i < n + 2; i++)
		lens[i] = strlen(args[i]);
	q = preq_new(p, arg);
	q->cb.filter = cb;
	q->n = n;
	rc = rdb_eval(p->db, &s_sup_filter, on_sup_filter, q, 2, (int)(n + 2), args, lens);
	if (rc < 0)
		free(q);
	for (size_t i = 0; i < n; i++)
		free(low[i]);
	free(low);
	free(lens);
	free(args);
	return rc;
}

/* --- throttled destinations ----------------------------------------------------- */

static bool
throttle_parse(const char *group, size_t glen, const char *v, size_t len,
    struct policy_throttle *t)
{
	const char *sp1, *sp2, *end = v + len;
	uint64_t u, l;

	memset(t, 0, sizeof *t);
	str_copyn(t->group, group, glen, sizeof t->group);
	sp1 = memchr(v, ' ', len);
	if (sp1 == NULL)
		return false;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (sp2 == NULL)
		sp2 = end;
	if (str_to_u64n(v, (size_t)(sp1 - v), &u) < 0 ||
	    str_to_u64n(sp1 + 1, (size_t)(sp2 - sp1 - 1), &l) < 0 || l > 1000000)
		return false;
	t->until_ms = u;
	t->level = (unsigned)l;
	if (sp2 < end)
		str_copyn(t->reply, sp2 + 1, (size_t)(end - sp2 - 1), sizeof t->reply);
	return true;
}

static void
on_throttle_hit(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_throttle t;
	int64_t u = -1, l = -1;

	if (status == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
		u = reply_int(r->element[0]);
		l = reply_int(r->element[1]);
	}
	if (status == 0 && (u < 0 || l < 1))
		status = -EIO;
	memset(&t, 0, sizeof t);
	if (status == 0) {
		str_copy(t.group, q->group, sizeof t.group);
		str_copy(t.reply, q->reply, sizeof t.reply);
		t.until_ms = (uint64_t)u;
		t.level = (unsigned)l;
		log_info("policy", "throttled", "group=%s level=%u until_ms=%" PRIu64,
		    t.group, t.level, t.until_ms);
	}
	log_redis_error("throttle_hit", status, r);
	q->cb.throttle(q->arg, status, status == 0 ? &t : NULL, status == 0 ? 1 : 0);
	free(q);
}

static uint64_t
backoff_max(const struct policy *p)
{
	uint64_t min = p->cfg.policy.throttle_backoff_min_ms > 0 ?
	    p->cfg.policy.throttle_backoff_min_ms : 1000;
	uint64_t max = p->cfg.policy.throttle_backoff_max_ms;

	return max > min ? max : min;
}

static bool
group_ok(const char *group)
{
	size_t n = group != NULL ? strlen(group) : 0;

	return n > 0 && n < sizeof ((struct policy_throttle *)0)->group;
}

int
policy_throttle_hit(struct policy *p, const char *group, const char *reply,
    policy_throttle_cb *cb, void *arg)
{
	struct preq *q;
	char k[KEY_MAX], mn[24], mx[24];
	const char *args[5];
	uint64_t min = p->cfg.policy.throttle_backoff_min_ms > 0 ?
	    p->cfg.policy.throttle_backoff_min_ms : 1000;

	if (!group_ok(group))
		return -EINVAL;
	if (!usable(p))
		return -ENOTCONN;
	q = preq_new(p, arg);
	q->cb.throttle = cb;
	str_copy(q->group, group, sizeof q->group);
	str_copy(q->reply, reply != NULL ? reply : "", sizeof q->reply);
	for (char *c = q->reply; *c; c++)
		if (*c == '\r' || *c == '\n')
			*c = ' ';
	key(p, k, sizeof k, "throttle", "");
	snprintf(mn, sizeof mn, "%" PRIu64, min);
	snprintf(mx, sizeof mx, "%" PRIu64, backoff_max(p));
	args[0] = k;
	args[1] = q->group;
	args[2] = q->reply;
	args[3] = mn;
	args[4] = mx;
	return eval(p, &s_throttle_hit, on_throttle_hit, q, 1, 5, args);
}

static void
on_throttle_clear(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;

	if (status == 0 && r->type != REDIS_REPLY_INTEGER)
		status = -EIO;
	log_redis_error("throttle_clear", status, r);
	q->cb.status(q->arg, status);
	free(q);
}

int
policy_throttle_clear(struct policy *p, const char *group,
    policy_status_cb *cb, void *arg)
{
	struct preq *q;
	char k[KEY_MAX];
	const char *argv[3];

	if (!group_ok(group))
		return -EINVAL;
	if (!usable(p))
		return -ENOTCONN;
	q = preq_new(p, arg);
	q->cb.status = cb;
	key(p, k, sizeof k, "throttle", "");
	argv[0] = "HDEL";
	argv[1] = k;
	argv[2] = group;
	return cmd(p, on_throttle_clear, q, 3, argv);
}

static int
throttle_cmp(const void *a, const void *b)
{
	return strcmp(((const struct policy_throttle *)a)->group,
	    ((const struct policy_throttle *)b)->group);
}

static void
on_throttle_list(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_throttle *t = NULL;
	size_t n = 0;

	if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0))
		status = -EIO;
	if (status == 0) {
		t = xcalloc(r->elements / 2 + 1, sizeof *t);
		for (size_t i = 0; i + 1 < r->elements; i += 2) {
			const redisReply *g = r->element[i], *v = r->element[i + 1];

			if (g->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
			    throttle_parse(g->str, g->len, v->str, v->len, &t[n]))
				n++;
		}
		qsort(t, n, sizeof *t, throttle_cmp);
	}
	log_redis_error("throttle_list", status, r);
	q->cb.throttle(q->arg, status, t, n);
	free(t);
	free(q);
}

int
policy_throttle_list(struct policy *p, policy_throttle_cb *cb, void *arg)
{
	struct preq *q;
	char k[KEY_MAX], mx[24];
	const char *args[2];

	if (!usable(p))
		return -ENOTCONN;
	q = preq_new(p, arg);
	q->cb.throttle = cb;
	key(p, k, sizeof k, "throttle", "");
	snprintf(mx, sizeof mx, "%" PRIu64, backoff_max(p));
	args[0] = k;
	args[1] = mx;
	return eval(p, &s_throttle_list, on_throttle_list, q, 1, 2, args);
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
			int64_t v = reply_int(r->element[i + 1]);

			if (k->type != REDIS_REPLY_STRING || v < 0)
				continue;
			str_copyn(c[n].rule, k->str, k->len, sizeof c[n].rule);
			c[n].n = (uint64_t)v;
			n++;
		}
		qsort(c, n, sizeof *c, count_cmp);
	}
	log_redis_error("refusal_totals", status, r);
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

	if (!usable(p))
		return -ENOTCONN;
	q = preq_new(p, arg);
	q->cb.counts = cb;
	key(p, k, sizeof k, "refusals", "");
	argv[0] = "HGETALL";
	argv[1] = k;
	return cmd(p, on_totals, q, 2, argv);
}
