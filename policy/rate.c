/*
 * rate.c - per-user sending rates: policy_user_init, policy_rcpt (check
 * only, with the suppression lookup), policy_commit, policy_count and
 * policy_uncommit over rate.lua's sliding windows (see policy.h for the
 * keys and the window arithmetic); and the inbound MX's rate per client
 * address, policy_ip_rate, over the same script and windows.
 */
#include "policy/policy.h"

#include <arpa/inet.h>
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

static void
on_rate(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_result res;
	const redisReply *k;
	const char *what = q->commit ? "commit" : "rcpt";

	policy__result_ok(&res);
	if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING))
		status = -EIO;
	if (status < 0) {
		rdb_log_error("policy", what, status, r);
		q->cb.result(q->arg, status, NULL);
		free(q);
		return;
	}
	k = r->element[0];
	if (strcmp(k->str, "sup") == 0 && r->elements == 2 &&
	    r->element[1]->type == REDIS_REPLY_STRING) {
		struct policy_sup_entry e;
		char why[300];

		if (!policy__sup_parse(r->element[1]->str, r->element[1]->len, &e)) {
			e.reason = POLICY_SUP_MANUAL;
			e.added_ms = 0;
		}
		if (q->p->cfg.policy.suppressed == CONFIG_SUPPRESSED_DROP) {
			policy__reply_set(&res, POLICY_DROP, "suppressed", "250 2.1.5 Ok");
		} else {
			policy__sup_why(&e, why, sizeof why);
			policy__reply_set(&res, POLICY_REJECT, "suppressed", "550 5.7.1 %s", why);
		}
	} else if ((strcmp(k->str, "m") == 0 || strcmp(k->str, "r") == 0) &&
	    r->elements == 3) {
		const struct config_rate *rt;
		bool rcpt = false;
		int64_t wait = rdb_reply_int(r->element[2]);
		char win[32], when[48];

		rt = rate_at(&q->user, rdb_reply_int(r->element[1]), &rcpt);
		if (rt == NULL) {
			/* The limits changed under the call: say so without numbers. */
			policy__reply_set(&res, POLICY_TEMPFAIL, k->str[0] == 'r' ?
			    "rate.recipients" : "rate.messages",
			    "%s 4.7.1 Sending rate limit reached for user %s; try again later",
			    q->commit ? "451" : "450", q->user.name);
		} else {
			if (wait > 0)
				snprintf(when, sizeof when, "in %s",
				    policy__wait_text(win, sizeof win, (uint64_t)wait));
			else
				snprintf(when, sizeof when, "later");
			policy__reply_set(&res, POLICY_TEMPFAIL,
			    rcpt ? "rate.recipients" : "rate.messages",
			    "%s 4.7.1 Sending rate limit reached for user %s: %" PRIu64 " %s per %s; try again %s",
			    q->commit ? "451" : "450", q->user.name, rt->limit,
			    rcpt ? "recipients" : "messages",
			    policy__window_text(win, sizeof win, rt->window_ms), when);
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
	char rc_lower[SUP_ADDR_MAX + 1];
	const char *args[2 + 7 + 4 * CONFIG_RATES_MAX];
	int n = 0, m = 0;

	if (rcpt != NULL && (policy__lower_copy(rc_lower, rcpt, sizeof rc_lower) < 0 ||
	    rc_lower[0] == '\0'))
		rc_lower[0] = '\0';
	else if (rcpt == NULL)
		rc_lower[0] = '\0';
	policy__sup_keys(p, sender_domain, k1, k2);
	if (q->ip[0] != '\0')
		snprintf(base, sizeof base, "%srl:ip:%s:", p->prefix, q->ip);
	else
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
	return policy__eval(p, &policy__script_rate, cb, q, 2, n, args);
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
	if (!policy__usable(p))
		return -ENOTCONN;
	q = policy__preq_new(p, arg);
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
	if (!policy__usable(p))
		return -ENOTCONN;
	q = policy__preq_new(p, arg);
	q->cb.result = cb;
	q->user = *u;
	q->commit = true;
	return rate_eval(p, q, on_rate, "commit", 1, nrcpt, NULL, NULL);
}

static void
on_count(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;

	rdb_log_error("policy", "count", status, r);
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
	if (!policy__usable(p))
		return -ENOTCONN;
	q = policy__preq_new(p, arg);
	q->cb.status = cb;
	q->user = *u;
	return rate_eval(p, q, on_count, "count", 1, nrcpt, NULL, NULL);
}

static void
on_uncommit(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;

	rdb_log_error("policy", "uncommit", status, r);
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
	if (!policy__usable(p))
		return -ENOTCONN;
	q = policy__preq_new(p, arg);
	q->cb.status = cb;
	q->user = *u;
	return rate_eval(p, q, on_uncommit, "uncommit", 1, nrcpt, NULL, NULL);
}

/* --- the inbound MX: messages per client address ------------------------------------ */

/*
 * ip_counted - the address ip is counted under: an IPv4 address as it
 * is (also when written IPv4-mapped), an IPv6 one as its /64
 * ("2001:db8:1:2::/64"), since one host commonly holds a whole /64.
 * -EINVAL when ip is no address.
 */
static int
ip_counted(const char *ip, char *dst, size_t size)
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET, ip, a) == 1)
		return str_copy(dst, ip, size) < 0 ? -EINVAL : 0;
	if (inet_pton(AF_INET6, ip, a) != 1)
		return -EINVAL;
	if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
		if (inet_ntop(AF_INET, a + 12, text, sizeof text) == NULL)
			return -EINVAL;
		return str_copy(dst, text, size) < 0 ? -EINVAL : 0;
	}
	memset(a + 8, 0, 8);
	if (inet_ntop(AF_INET6, a, text, sizeof text) == NULL)
		return -EINVAL;
	return snprintf(dst, size, "%s/64", text) >= (int)size ? -EINVAL : 0;
}

static void
on_ip_rate(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_result res;
	const redisReply *k;

	policy__result_ok(&res);
	if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING))
		status = -EIO;
	if (status < 0) {
		rdb_log_error("policy", "ip_rate", status, r);
		q->cb.result(q->arg, status, NULL);
		free(q);
		return;
	}
	k = r->element[0];
	if (strcmp(k->str, "m") == 0 && r->elements == 3) {
		const struct config_rate *rt;
		bool rcpt = false;
		int64_t wait = rdb_reply_int(r->element[2]);
		const char *whose = strchr(q->ip, '/') != NULL ? "network" : "address";
		char win[32], when[48];

		rt = rate_at(&q->user, rdb_reply_int(r->element[1]), &rcpt);
		if (wait > 0)
			snprintf(when, sizeof when, "in %s",
			    policy__wait_text(win, sizeof win, (uint64_t)wait));
		else
			snprintf(when, sizeof when, "later");
		if (rt == NULL)
			policy__reply_set(&res, POLICY_TEMPFAIL, "inbound.rate",
			    "450 4.7.1 Too many messages from your %s %s; try again later",
			    whose, q->ip);
		else
			policy__reply_set(&res, POLICY_TEMPFAIL, "inbound.rate",
			    "450 4.7.1 Too many messages from your %s %s: %" PRIu64 " messages per %s; try again %s",
			    whose, q->ip, rt->limit,
			    policy__window_text(win, sizeof win, rt->window_ms), when);
	} else if (strcmp(k->str, "ok") != 0) {
		status = -EIO;
	}
	q->cb.result(q->arg, status, status == 0 ? &res : NULL);
	free(q);
}

int
policy_ip_rate(struct policy *p, const char *ip, policy_result_cb *cb, void *arg)
{
	const struct config_rates *rates;
	struct preq *q;
	char counted[sizeof q->ip];

	if (ip == NULL || ip_counted(ip, counted, sizeof counted) < 0)
		return -EINVAL;
	if (!policy__usable(p))
		return -ENOTCONN;
	rates = &p->cfg.relay.inbound_rate;
	if (rates->n > CONFIG_RATES_MAX)
		return -EINVAL;
	q = policy__preq_new(p, arg);
	q->cb.result = cb;
	q->user.rate = *rates;
	q->user.rcpt_rate.n = 0;
	str_copy(q->ip, counted, sizeof q->ip);
	return rate_eval(p, q, on_ip_rate, "commit", 1, 0, NULL, NULL);
}
