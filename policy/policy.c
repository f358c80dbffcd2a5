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
 * Counter slots expire (PEXPIRE) 2 windows + 60 s after their last
 * increment, so an idle user or address leaves nothing behind.  Two
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
    policy_lua_sup_filter[], policy_lua_throttle_hit[], policy_lua_throttle_list[];

static struct rdb_script s_rate = { "policy_rate", policy_lua_rate, "" };
static struct rdb_script s_auth_failed = { "policy_auth_failed", policy_lua_auth_failed, "" };
static struct rdb_script s_suppress = { "policy_suppress", policy_lua_suppress, "" };
static struct rdb_script s_unsuppress = { "policy_unsuppress", policy_lua_unsuppress, "" };
static struct rdb_script s_sup_get = { "policy_sup_get", policy_lua_sup_get, "" };
static struct rdb_script s_sup_filter = { "policy_sup_filter", policy_lua_sup_filter, "" };
static struct rdb_script s_throttle_hit = { "policy_throttle_hit", policy_lua_throttle_hit, "" };
static struct rdb_script s_throttle_list = { "policy_throttle_list", policy_lua_throttle_list, "" };

static struct rdb_script *const scripts[] = {
	&s_rate, &s_auth_failed, &s_suppress, &s_unsuppress, &s_sup_get,
	&s_sup_filter, &s_throttle_hit, &s_throttle_list,
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
