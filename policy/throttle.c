/*
 * throttle.c - throttled destinations: policy_throttle_hit (throttle_hit.lua:
 * the level and the back-off), policy_throttle_clear and
 * policy_throttle_list (throttle_list.lua).
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
		u = rdb_reply_int(r->element[0]);
		l = rdb_reply_int(r->element[1]);
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
	rdb_log_error("policy", "throttle_hit", status, r);
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
	if (!policy__usable(p))
		return -ENOTCONN;
	q = policy__preq_new(p, arg);
	q->cb.throttle = cb;
	str_copy(q->group, group, sizeof q->group);
	str_copy(q->reply, reply != NULL ? reply : "", sizeof q->reply);
	for (char *c = q->reply; *c; c++)
		if (*c == '\r' || *c == '\n')
			*c = ' ';
	policy__key(p, k, sizeof k, "throttle", "");
	snprintf(mn, sizeof mn, "%" PRIu64, min);
	snprintf(mx, sizeof mx, "%" PRIu64, backoff_max(p));
	args[0] = k;
	args[1] = q->group;
	args[2] = q->reply;
	args[3] = mn;
	args[4] = mx;
	return policy__eval(p, &policy__script_throttle_hit, on_throttle_hit, q, 1, 5, args);
}

static void
on_throttle_clear(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;

	if (status == 0 && r->type != REDIS_REPLY_INTEGER)
		status = -EIO;
	rdb_log_error("policy", "throttle_clear", status, r);
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
	if (!policy__usable(p))
		return -ENOTCONN;
	q = policy__preq_new(p, arg);
	q->cb.status = cb;
	policy__key(p, k, sizeof k, "throttle", "");
	argv[0] = "HDEL";
	argv[1] = k;
	argv[2] = group;
	return policy__cmd(p, on_throttle_clear, q, 3, argv);
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
	rdb_log_error("policy", "throttle_list", status, r);
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

	if (!policy__usable(p))
		return -ENOTCONN;
	q = policy__preq_new(p, arg);
	q->cb.throttle = cb;
	policy__key(p, k, sizeof k, "throttle", "");
	snprintf(mx, sizeof mx, "%" PRIu64, backoff_max(p));
	args[0] = k;
	args[1] = mx;
	return policy__eval(p, &policy__script_throttle_list, on_throttle_list, q, 1, 2, args);
}
