/*
 * returns.c - what a classified return does to policy state, once per
 * return (return.lua): the submitting user's bounce log, the soft-bounce
 * count per sending domain and address, and the suppression it may add;
 * and reading the bounce logs back (bounce_list.lua) for kurierctl
 * bounce list.
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

static const char *const ret_names[] = {
	[POLICY_RET_NONE] = "none",
	[POLICY_RET_HARD] = "hard",
	[POLICY_RET_SOFT] = "soft",
	[POLICY_RET_COMPLAINT] = "complaint",
	[POLICY_RET_AUTO_REPLY] = "auto-reply",
};

const char *
policy_ret_class_name(enum policy_ret_class c)
{
	if ((unsigned)c < sizeof ret_names / sizeof ret_names[0])
		return ret_names[c];
	return "none";
}

int
policy_ret_class_parse(const char *s, enum policy_ret_class *out)
{
	for (unsigned i = 0; i < sizeof ret_names / sizeof ret_names[0]; i++) {
		if (strcmp(s, ret_names[i]) == 0) {
			*out = (enum policy_ret_class)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* A field of a log entry: no tab (the separator), no CR or LF, cut to size. */
static void
field_copy(char *dst, size_t size, const char *src)
{
	str_copyn(dst, src != NULL ? src : "", strnlen(src != NULL ? src : "", size - 1), size);
	for (char *c = dst; *c != '\0'; c++)
		if (*c == '\t' || *c == '\r' || *c == '\n')
			*c = ' ';
}

static void
on_return(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_return_result res;
	const char *p;
	size_t len;
	uint64_t seen = 0;

	memset(&res, 0, sizeof res);
	if (status == 0 && (!rdb_reply_array(r, 3) || !rdb_reply_u64(r->element[0], &seen) || !rdb_reply_u64(r->element[1], &res.soft_count) || !rdb_reply_str(r->element[2], &p, &len)))
		status = -EIO;
	rdb_log_error("policy", "return", status, r);
	if (status == 0) {
		enum policy_sup_reason why;

		res.repeated = seen != 0;
		if (len > 0 && str_copyn(q->reply, p, len, sizeof q->reply) >= 0 &&
		    policy_sup_reason_parse(q->reply, &why) == 0)
			res.suppressed = policy_sup_reason_name(why);
	}
	q->cb.ret(q->arg, status, status == 0 ? &res : NULL);
	free(q);
}

int
policy_return(struct policy *p, const struct policy_return *r, policy_return_cb *cb,
    void *arg)
{
	struct preq *q;
	char user[65], scope[256], addr[SUP_ADDR_MAX + 1], reason[32], status[16], qid[32],
	    text[256], key[128], retention[24], logmax[24], limit[24], window[24];
	char k1[KEY_MAX], k2[KEY_MAX], k3[KEY_MAX], k4[KEY_MAX], k5[KEY_MAX], k6[2 * KEY_MAX];
	const char *action = "", *args[20];
	size_t lens[20];
	int n = 0, rc;

	if (r == NULL || r->key == NULL || r->key[0] == '\0' || strlen(r->key) >= sizeof key ||
	    r->user == NULL || !str_is_username(r->user) || strlen(r->user) >= sizeof user ||
	    r->addr == NULL || strchr(r->addr, '@') == NULL || strlen(r->addr) > SUP_ADDR_MAX ||
	    (unsigned)r->cls >= sizeof ret_names / sizeof ret_names[0])
		return -EINVAL;
	if (!policy__usable(p))
		return -ENOTCONN;
	str_copy(user, r->user, sizeof user);
	field_copy(key, sizeof key, r->key);
	if (r->scope != NULL && r->scope[0] != '\0' &&
	    (policy__lower_copy(scope, r->scope, sizeof scope) < 0 || strpbrk(scope, " \t\r\n") != NULL))
		return -EINVAL;
	if (r->scope == NULL || r->scope[0] == '\0')
		scope[0] = '\0';
	policy__lower_copy(addr, r->addr, sizeof addr);
	for (char *c = addr; *c != '\0'; c++)
		if (*c == '\t' || *c == '\r' || *c == '\n')
			*c = ' ';
	field_copy(reason, sizeof reason, r->reason);
	field_copy(status, sizeof status, r->status);
	field_copy(qid, sizeof qid, r->qid);
	field_copy(text, sizeof text, r->text);
	switch (r->cls) {
	case POLICY_RET_HARD:
		if (p->cfg.policy.suppress_bounces)
			action = "hard";
		break;
	case POLICY_RET_COMPLAINT:
		action = "complaint";
		break;
	case POLICY_RET_SOFT:
		action = "soft";
		break;
	default:
		break;
	}
	snprintf(retention, sizeof retention, "%" PRIu64,
	    p->cfg.mailbox.retention_ms ? p->cfg.mailbox.retention_ms : 1);
	snprintf(logmax, sizeof logmax, "%u", p->cfg.mailbox.max_messages ? p->cfg.mailbox.max_messages : 1);
	snprintf(limit, sizeof limit, "%u", p->cfg.mailbox.soft_bounce_limit);
	snprintf(window, sizeof window, "%" PRIu64,
	    p->cfg.mailbox.soft_bounce_window_ms ? p->cfg.mailbox.soft_bounce_window_ms : 1);
	policy__key(p, k1, sizeof k1, "rk:", key);
	policy__key(p, k2, sizeof k2, "bl:", user);
	policy__key(p, k3, sizeof k3, "bl:", "users");
	policy__key(p, k4, sizeof k4, "sup:", scope[0] ? scope : "*");
	policy__key(p, k5, sizeof k5, "sup:", "scopes");
	snprintf(k6, sizeof k6, "%ssb:%s %s", p->prefix, scope, addr);

	args[n++] = k1;
	args[n++] = k2;
	args[n++] = k3;
	args[n++] = k4;
	args[n++] = k5;
	args[n++] = k6;
	args[n++] = user;
	args[n++] = scope;
	args[n++] = addr;
	args[n++] = ret_names[r->cls];
	args[n++] = reason;
	args[n++] = status;
	args[n++] = qid;
	args[n++] = text;
	args[n++] = action;
	args[n++] = retention;
	args[n++] = logmax;
	args[n++] = limit;
	args[n++] = window;
	args[n++] = key;
	for (int i = 0; i < n; i++)
		lens[i] = strlen(args[i]);
	q = policy__preq_new(p, arg);
	q->cb.ret = cb;
	rc = rdb_eval(p->db, &policy__script_return, on_return, q, 6, n, args, lens);
	if (rc < 0)
		free(q);
	return rc;
}

/* One "class \t reason \t status \t qid \t addr \t scope \t key" entry into e. */
static bool
entry_parse(const char *v, size_t len, struct policy_bounce_entry *e)
{
	const char *f[7], *end = v + len, *p = v;
	size_t fl[7];
	char cls[16];

	for (int i = 0; i < 7; i++) {
		const char *tab = memchr(p, '\t', (size_t)(end - p));

		if (tab == NULL && i < 6)
			return false;
		if (tab == NULL)
			tab = end;
		f[i] = p;
		fl[i] = (size_t)(tab - p);
		p = tab < end ? tab + 1 : end;
	}
	if (str_copyn(cls, f[0], fl[0], sizeof cls) < 0 || policy_ret_class_parse(cls, &e->cls) < 0)
		return false;
	str_copyn(e->reason, f[1], fl[1] < sizeof e->reason ? fl[1] : sizeof e->reason - 1, sizeof e->reason);
	str_copyn(e->status, f[2], fl[2] < sizeof e->status ? fl[2] : sizeof e->status - 1, sizeof e->status);
	str_copyn(e->qid, f[3], fl[3] < sizeof e->qid ? fl[3] : sizeof e->qid - 1, sizeof e->qid);
	str_copyn(e->addr, f[4], fl[4] < sizeof e->addr ? fl[4] : sizeof e->addr - 1, sizeof e->addr);
	str_copyn(e->scope, f[5], fl[5] < sizeof e->scope ? fl[5] : sizeof e->scope - 1, sizeof e->scope);
	return true;
}

static void
on_bounce_list(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_bounce_entry *e = NULL;
	size_t n = 0, cap = 0;

	if (status == 0 && !rdb_reply_array(r, 0))
		status = -EIO;
	for (size_t u = 0; status == 0 && u < r->elements; u++) {
		const redisReply *ur = r->element[u], *list;
		const char *name;
		size_t nlen;

		if (!rdb_reply_array(ur, 2) || !rdb_reply_str(ur->element[0], &name, &nlen) ||
		    !rdb_reply_array(ur->element[1], 0))
			continue;
		list = ur->element[1];
		for (size_t i = 0; i + 1 < list->elements; i += 2) {
			const char *v;
			size_t vlen;
			uint64_t ms;

			if (!rdb_reply_str(list->element[i], &v, &vlen) ||
			    !rdb_reply_u64(list->element[i + 1], &ms))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				e = xreallocarray(e, cap, sizeof *e);
			}
			memset(&e[n], 0, sizeof e[n]);
			if (!entry_parse(v, vlen, &e[n]))
				continue;
			str_copyn(e[n].user, name, nlen < sizeof e[n].user ? nlen : sizeof e[n].user - 1,
			    sizeof e[n].user);
			e[n].date_ms = ms;
			n++;
		}
	}
	rdb_log_error("policy", "bounce_list", status, r);
	q->cb.bounce(q->arg, status, e, n);
	free(e);
	free(q);
}

int
policy_bounce_list(struct policy *p, const char *user, uint64_t since_ms, unsigned max,
    policy_bounce_cb *cb, void *arg)
{
	struct preq *q;
	char k[KEY_MAX], since[24], mx[16];
	const char *args[5];

	if (max == 0 || max > POLICY_BOUNCE_LIST_MAX ||
	    (user != NULL && user[0] != '\0' && !str_is_username(user)))
		return -EINVAL;
	if (!policy__usable(p))
		return -ENOTCONN;
	policy__key(p, k, sizeof k, "bl:", "users");
	snprintf(since, sizeof since, "%" PRIu64, since_ms);
	snprintf(mx, sizeof mx, "%u", max);
	args[0] = k;
	args[1] = p->prefix;
	args[2] = since;
	args[3] = mx;
	args[4] = user != NULL ? user : "";
	q = policy__preq_new(p, arg);
	q->cb.bounce = cb;
	return policy__eval(p, &policy__script_bounce_list, on_bounce_list, q, 1, 5, args);
}
