/*
 * lockout.c - AUTH-failure lock-outs per client address: policy_auth_check
 * (a PTTL of the lock key) and policy_auth_failed (auth_failed.lua).
 */
#include "policy/policy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rdb.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "policy/policy_int.h"

/* --- AUTH failures ---------------------------------------------------------------- */

static void
lockout_reply(struct policy_result *res, uint64_t ms)
{
	char when[48];

	policy__reply_set(res, POLICY_TEMPFAIL, "auth.lockout",
	    "454 4.7.0 Too many failed authentications from your address; try again in %s",
	    policy__wait_text(when, sizeof when, ms));
}

static void
on_auth_check(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_result res;

	policy__result_ok(&res);
	if (status == 0 && r->type != REDIS_REPLY_INTEGER)
		status = -EIO;
	if (status == 0 && r->integer > 0)
		lockout_reply(&res, (uint64_t)r->integer);
	rdb_log_error("policy", "auth_check", status, r);
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
	if (!policy__usable(p))
		return -ENOTCONN;
	q = policy__preq_new(p, arg);
	q->cb.result = cb;
	policy__key(p, k, sizeof k, "lock:", ip);
	argv[0] = "PTTL";
	argv[1] = k;
	return policy__cmd(p, on_auth_check, q, 2, argv);
}

static void
on_auth_failed(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_result res;
	int64_t state = -1, ms = 0, n = 0;

	policy__result_ok(&res);
	if (status == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
		state = rdb_reply_int(r->element[0]);
		ms = rdb_reply_int(r->element[1]);
		n = rdb_reply_int(r->element[2]);
	}
	if (status == 0 && (state < 0 || state > 2 || ms < 0))
		status = -EIO;
	if (status == 0 && state > 0)
		lockout_reply(&res, (uint64_t)ms);
	if (status == 0 && state == 2)
		log_warn("policy", "auth_lockout", "client=%s failures=%u lockout_s=%llu",
		    q->ip, (unsigned)n, (unsigned long long)((uint64_t)ms / 1000));
	rdb_log_error("policy", "auth_failed", status, r);
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
	if (!policy__usable(p))
		return -ENOTCONN;
	q = policy__preq_new(p, arg);
	q->cb.result = cb;
	str_copy(q->ip, ip, sizeof q->ip);
	policy__key(p, k, sizeof k, "lock:", ip);
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
	return policy__eval(p, &policy__script_auth_failed, on_auth_failed, q, 1, 5, args);
}
