/*
 * policy_int.h - what the policy module's files share (policy.c, rate.c,
 * lockout.c, suppress.c, throttle.c, returns.c); included only inside
 * policy/.
 *
 * struct policy is made and freed by policy.c (policy_open/close), which
 * alone writes it; the other files read it.  Every call is one struct
 * preq, passed to core/rdb as the reply's arg and freed by the reply's
 * handler (rdb cancels them all, -ECANCELED, on close).
 */
#ifndef KURIER_POLICY_POLICY_INT_H
#define KURIER_POLICY_POLICY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/rdb.h"
#include "policy/policy.h"

#define PREFIX_MAX (sizeof ((struct config *)0)->redis.prefix)
#define KEY_MAX (PREFIX_MAX + 600)
#define LOCAL_RULES 32
#define SUP_ADDR_MAX 511

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
		policy_return_cb *ret;
		policy_bounce_cb *bounce;
	} cb;
	void *arg;
	bool commit;                 /* rate: 451 instead of 450 */
	struct policy_user user;     /* rate: for the reply text */
	char ip[64];                 /* auth; ip_rate: the address counted */
	char group[256];             /* throttle_hit */
	char reply[256];
	size_t n;                    /* sup_filter: addresses */
};

extern struct rdb_script policy__script_rate, policy__script_auth_failed,
    policy__script_suppress, policy__script_unsuppress, policy__script_sup_get,
    policy__script_sup_page, policy__script_sup_filter,
    policy__script_throttle_hit, policy__script_throttle_list,
    policy__script_return, policy__script_bounce_list;

/* policy__key - "P" a b into dst: policy__key(p, k, sizeof k, "sup:", "example.com"). */
void policy__key(const struct policy *p, char *dst, size_t size, const char *a,
    const char *b);
/* policy__preq_new - a pending call for p with the caller's arg (never NULL). */
struct preq *policy__preq_new(struct policy *p, void *arg);
/* policy__reply_set - set a refusal; the reply is cut to fit. */
void policy__reply_set(struct policy_result *res, enum policy_verdict v,
    const char *rule, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* policy__lower_copy - a lower-case copy; -E2BIG when it does not fit. */
int policy__lower_copy(char *dst, const char *src, size_t size);
/*
 * policy__eval, policy__cmd - send a script or a command with q as the
 * reply's arg; on a negative errno q is freed (cb never runs).
 */
int policy__eval(struct policy *p, struct rdb_script *s, rdb_reply_cb *cb,
    struct preq *q, int nkeys, int nargs, const char **args);
int policy__cmd(struct policy *p, rdb_reply_cb *cb, struct preq *q, int argc,
    const char **argv);
/* "a day", "10 seconds": a window; "7 minutes": a wait, rounded up; "2026-11-22" (UTC). */
const char *policy__window_text(char *dst, size_t size, uint64_t ms);
const char *policy__wait_text(char *dst, size_t size, uint64_t ms);
const char *policy__date_text(char *dst, size_t size, uint64_t ms);
void policy__result_ok(struct policy_result *res);
/* policy__usable - not closing and Redis is up. */
bool policy__usable(const struct policy *p);
/*
 * policy__sup_keys - the two suppression sets a recipient is looked up
 * in: the global one ("sup:*") into k1, the sender domain's
 * ("sup:DOMAIN", lower-cased) into k2, or k1 again when sender_domain is
 * NULL, empty or too long.
 */
void policy__sup_keys(const struct policy *p, const char *sender_domain,
    char k1[KEY_MAX], char k2[KEY_MAX]);
/*
 * policy__sup_parse - a stored suppression entry "REASON MS TEXT" into
 * *e; false when malformed.  policy__sup_why - its reply text:
 * "recipient suppressed (hard bounce on 2026-11-22)".
 */
bool policy__sup_parse(const char *v, size_t len, struct policy_sup_entry *e);
void policy__sup_why(const struct policy_sup_entry *e, char *dst, size_t size);

#endif
