/*
 * suppress.c - the suppression list: add, remove, check, page through and
 * filter (suppress.lua, unsuppress.lua, sup_get.lua, sup_page.lua,
 * sup_filter.lua), and the stored entry's form that rate.c reads too.
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

/* --- the suppression list ------------------------------------------------------- */

static const char *const sup_names[] = {
	[POLICY_SUP_HARD_BOUNCE] = "hard-bounce",
	[POLICY_SUP_COMPLAINT] = "complaint",
	[POLICY_SUP_MANUAL] = "manual",
	[POLICY_SUP_SOFT_BOUNCE_LIMIT] = "soft-bounce-limit",
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
	if (policy__lower_copy(dst, scope, size) < 0 || strpbrk(dst, " \t\r\n") != NULL)
		return -EINVAL;
	return 0;
}

static int
sup_addr(const char *addr, char *dst, size_t size)
{
	if (addr == NULL || strchr(addr, '@') == NULL || strlen(addr) > SUP_ADDR_MAX ||
	    policy__lower_copy(dst, addr, size) < 0)
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
	rdb_log_error("policy", "suppress", status, r);
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
	if (!policy__usable(p))
		return -ENOTCONN;
	str_copy(tx, text != NULL ? text : "", sizeof tx);
	for (char *c = tx; *c; c++)
		if (*c == '\r' || *c == '\n')
			*c = ' ';
	q = policy__preq_new(p, arg);
	q->cb.status = cb;
	policy__key(p, k1, sizeof k1, "sup:", sc);
	policy__key(p, k2, sizeof k2, "sup:", "scopes");
	args[0] = k1;
	args[1] = k2;
	args[2] = sc;
	args[3] = ad;
	args[4] = sup_names[reason];
	args[5] = tx;
	return policy__eval(p, &policy__script_suppress, on_sup_status, q, 2, 6, args);
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
	if (!policy__usable(p))
		return -ENOTCONN;
	q = policy__preq_new(p, arg);
	q->cb.status = cb;
	q->commit = true;    /* 0 removed is -ENOENT */
	policy__key(p, k1, sizeof k1, "sup:", sc);
	policy__key(p, k2, sizeof k2, "sup:", "scopes");
	args[0] = k1;
	args[1] = k2;
	args[2] = sc;
	args[3] = ad;
	return policy__eval(p, &policy__script_unsuppress, on_sup_status, q, 2, 4, args);
}

static int
sup_entry_cmp(const void *a, const void *b)
{
	const struct policy_sup_entry *x = a, *y = b;
	int c = strcmp(x->scope, y->scope);

	return c != 0 ? c : strcmp(x->addr, y->addr);
}

/*
 * sup_entries - the (scope, address, entry) triples of array reply r
 * from element first on, malformed ones skipped, sorted by scope and
 * address; *n of them in a new array (at least one slot, caller frees).
 */
static struct policy_sup_entry *
sup_entries(const redisReply *r, size_t first, size_t *n)
{
	struct policy_sup_entry *e = xcalloc(r->elements / 3 + 1, sizeof *e);

	*n = 0;
	for (size_t i = first; i + 2 < r->elements; i += 3) {
		const redisReply *sc = r->element[i], *ad = r->element[i + 1],
		    *v = r->element[i + 2];

		if (sc->type != REDIS_REPLY_STRING || ad->type != REDIS_REPLY_STRING ||
		    v->type != REDIS_REPLY_STRING || !policy__sup_parse(v->str, v->len, &e[*n]))
			continue;
		str_copyn(e[*n].scope, sc->str, sc->len, sizeof e[*n].scope);
		str_copyn(e[*n].addr, ad->str, ad->len, sizeof e[*n].addr);
		(*n)++;
	}
	qsort(e, *n, sizeof *e, sup_entry_cmp);
	return e;
}

static void
on_sup_get(void *arg, int status, redisReply *r)
{
	struct preq *q = arg;
	struct policy_sup_entry *e = NULL;
	size_t n = 0;

	if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements % 3 != 0))
		status = -EIO;
	if (status == 0)
		e = sup_entries(r, 0, &n);
	rdb_log_error("policy", "sup_get", status, r);
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
	if (!policy__usable(p))
		return -ENOTCONN;
	q = policy__preq_new(p, arg);
	q->cb.sup = cb;
	policy__key(p, k, sizeof k, "sup:", "scopes");
	policy__key(p, pfx, sizeof pfx, "sup:", "");
	args[0] = k;
	args[1] = pfx;
	args[2] = sc;
	args[3] = ad;
	args[4] = with_global ? "1" : "0";
	return policy__eval(p, &policy__script_sup_get, on_sup_get, q, 1, 5, args);
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
		e = sup_entries(r, 1, &n);
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
	rdb_log_error("policy", "sup_page", status, r);
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
	if (!policy__usable(p))
		return -ENOTCONN;
	q = policy__preq_new(p, arg);
	q->cb.page = cb;
	policy__key(p, k, sizeof k, "sup:", "scopes");
	policy__key(p, pfx, sizeof pfx, "sup:", "");
	snprintf(cnt, sizeof cnt, "%u", count);
	args[0] = k;
	args[1] = pfx;
	args[2] = sc;
	args[3] = cursor;
	args[4] = cnt;
	return policy__eval(p, &policy__script_sup_page, on_sup_page, q, 1, 5, args);
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

			if (!policy__sup_parse(r->element[i]->str, r->element[i]->len, &e)) {
				e.reason = POLICY_SUP_MANUAL;
				e.added_ms = 0;
			}
			sup[i] = true;
			policy__sup_why(&e, why[i], 300);
		}
	}
	rdb_log_error("policy", "sup_filter", status, r);
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
	char k1[KEY_MAX], k2[KEY_MAX];
	const char **args;
	size_t *lens;
	char **low;
	int rc;

	if (n > 100000 || (n > 0 && addrs == NULL))
		return -EINVAL;
	if (!policy__usable(p))
		return -ENOTCONN;
	policy__sup_keys(p, sender_domain, k1, k2);
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
	q = policy__preq_new(p, arg);
	q->cb.filter = cb;
	q->n = n;
	rc = rdb_eval(p->db, &policy__script_sup_filter, on_sup_filter, q, 2, (int)(n + 2), args, lens);
	if (rc < 0)
		free(q);
	for (size_t i = 0; i < n; i++)
		free(low[i]);
	free(low);
	free(lens);
	free(args);
	return rc;
}


void
policy__sup_keys(const struct policy *p, const char *sender_domain,
    char k1[KEY_MAX], char k2[KEY_MAX])
{
	char dom[256];

	policy__key(p, k1, KEY_MAX, "sup:", "*");
	if (sender_domain != NULL && sender_domain[0] != '\0' &&
	    policy__lower_copy(dom, sender_domain, sizeof dom) == 0)
		policy__key(p, k2, KEY_MAX, "sup:", dom);
	else
		str_copy(k2, k1, KEY_MAX);
}

/* Reply text of an entry "REASON MS TEXT": "recipient suppressed (hard bounce on D)". */
bool
policy__sup_parse(const char *v, size_t len, struct policy_sup_entry *e)
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

void
policy__sup_why(const struct policy_sup_entry *e, char *dst, size_t size)
{
	static const char *const what[] = {
		[POLICY_SUP_HARD_BOUNCE] = "hard bounce on",
		[POLICY_SUP_COMPLAINT] = "complaint on",
		[POLICY_SUP_MANUAL] = "suppressed by the operator on",
		[POLICY_SUP_SOFT_BOUNCE_LIMIT] = "repeated soft bounces until",
	};
	char date[16];

	snprintf(dst, size, "recipient suppressed (%s %s)", what[e->reason],
	    policy__date_text(date, sizeof date, e->added_ms));
}
