/*
 * kurierctl_sup - kurierctl suppression list, add, del and check, over
 * the policy module's suppression list (policy/policy.h).  A list pages
 * through every scope (SUP_PAGE entries a call), its column widths set
 * by the first page.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd/ctl.h"
#include "cmd/kurierctl_int.h"
#include "core/mailaddr.h"
#include "core/str.h"
#include "policy/policy.h"

#define SUP_SCOPE_W 32          /* suppression list: widest scope column */
#define SUP_ADDR_W 48           /* suppression list: widest address column */
#define SUP_PAGE 1000           /* suppression list: entries asked per page */
#define SUP_NOTE_MAX 255        /* bytes of --note (struct policy_sup_entry text) */

/* --- suppression ------------------------------------------------------------------- */

/* scope_name - "*" (global) or the sending domain, for messages. */
static const char *
scope_name(const char *scope)
{
	return strcmp(scope, "*") == 0 ? "* (every sender)" : scope;
}

/*
 * ADDRESS: "user@example.net" or "<user@example.net>", an RFC 5321
 * mailbox (UTF-8 allowed), into c->addr in lower case as the list keeps
 * it.  A bad one is a usage error naming what is wrong.
 */
static int
check_address(struct ctl *c, const char *arg)
{
	char path[MAILADDR_PATH_MAX + 8];
	struct mailaddr a;
	const char *why = "";
	size_t len = strlen(arg);
	int n, plen;

	if (arg[0] == '\0')
		return ctl_usage_error(c, "empty ADDRESS", NULL, "give local@domain, e.g. user@example.net");
	if (len > MAILADDR_PATH_MAX)
		return ctl_usage_error(c, "ADDRESS too long", arg,
		    "a mail address has at most 254 characters");
	if (arg[0] == '<')
		plen = snprintf(path, sizeof path, "%s", arg);
	else
		plen = snprintf(path, sizeof path, "<%s>", arg);
	n = mailaddr_parse_path(&a, path, (size_t)plen, false, true, &why);
	if (n >= 0 && n != plen)
		why = "text after the address";
	if (n < 0 || n != plen) {
		fprintf(stderr, "kurierctl: not a mail address \"%s\": %s (give local@domain, e.g. user@example.net)\n",
		    ctl_esc(c, arg, 80), why);
		return CTL_USAGE;
	}
	if (mailaddr_format(&a, c->addr, sizeof c->addr) < 0)
		return ctl_usage_error(c, "ADDRESS too long", arg,
		    "a mail address has at most 254 characters");
	str_lower(c->addr);
	return CTL_OK;
}

/* --domain D: a host name (lower-cased), or "*" for the global scope. */
static int
check_scope(struct ctl *c, const char *v)
{
	char bad[DOMAIN_ARG_MAX + 1];
	int rc;

	c->has_scope = true;
	if (strcmp(v, "*") == 0) {
		str_copy(c->scope, "*", sizeof c->scope);
		return CTL_OK;
	}
	bad[0] = '\0';
	rc = auth_domains_parse(v, c->scope, sizeof c->scope, bad, sizeof bad);
	if (rc == -EINVAL)
		return ctl_usage_error(c, "not a domain name in --domain", bad,
		    "give one sender domain, e.g. --domain shop.example, or * for global");
	if (rc < 0 || c->scope[0] == '\0' || strchr(c->scope, ' ') != NULL)
		return ctl_usage_error(c, "bad --domain", v,
		    "give one sender domain, e.g. --domain shop.example, or * for global");
	return CTL_OK;
}

/*
 * suppression list [--domain D]; add ADDRESS [--domain D] [--reason R]
 * [--note TEXT]; del ADDRESS [--domain D]; check ADDRESS [--domain D].
 */
int
check_sup(struct ctl *c, int argc, char **argv)
{
	bool is_list = strcmp(c->cmd->name, "list") == 0;
	bool is_add = strcmp(c->cmd->name, "add") == 0;
	const char *addr = NULL, *v;
	char hint[320];
	bool bad;
	int rc;

	snprintf(hint, sizeof hint, "kurierctl suppression %s %s", c->cmd->name, c->cmd->synopsis);
	for (char *p = hint; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	c->reason = POLICY_SUP_MANUAL;
	for (int i = 0; i < argc; i++) {
		if ((v = ctl_opt_value("--domain", argc, argv, &i, &bad)) != NULL) {
			if ((rc = check_scope(c, v)) != CTL_OK)
				return rc;
		} else if (bad) {
			return ctl_usage_error(c, "--domain needs a value", NULL, hint);
		} else if (is_add && (v = ctl_opt_value("--reason", argc, argv, &i, &bad)) != NULL) {
			if (policy_sup_reason_parse(v, &c->reason) < 0)
				return ctl_usage_error(c, "unknown --reason", v,
				    "use hard-bounce, complaint, soft-bounce-limit or manual");
		} else if (bad) {
			return ctl_usage_error(c, "--reason needs a value", NULL,
			    "use hard-bounce, complaint, soft-bounce-limit or manual");
		} else if (is_add && (v = ctl_opt_value("--note", argc, argv, &i, &bad)) != NULL) {
			if (strlen(v) > SUP_NOTE_MAX)
				return ctl_usage_error(c, "--note is too long", NULL,
				    "at most 255 bytes");
			for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++)
				if (*p < 0x20 || *p == 0x7f)
					return ctl_usage_error(c, "--note holds a control character", NULL,
					    "give one line of text");
			if (!mailaddr_utf8_valid(v, strlen(v)))
				return ctl_usage_error(c, "--note is not UTF-8", NULL, "give one line of text");
			c->note = v;
		} else if (bad) {
			return ctl_usage_error(c, "--note needs a value", NULL, hint);
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			return ctl_usage_error(c, "unknown option", argv[i], hint);
		} else if (is_list || addr != NULL) {
			return ctl_usage_error(c, "unexpected argument", argv[i], hint);
		} else {
			addr = argv[i];
		}
	}
	if (is_list)
		return CTL_OK;
	if (addr == NULL) {
		char what[64];

		snprintf(what, sizeof what, "suppression %s needs an ADDRESS", c->cmd->name);
		return ctl_usage_error(c, what, NULL, hint);
	}
	return check_address(c, addr);
}

/* The column widths of a set of entries: scope and address, capped. */
static void
sup_widths(struct ctl *c, const struct policy_sup_entry *e, size_t n, int *sw, int *aw)
{
	*sw = 5;
	*aw = 7;
	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(ctl_esc(c, e[i].scope, 0));

		if (l > *sw)
			*sw = l;
		l = (int)strlen(ctl_esc(c, e[i].addr, 0));
		if (l > *aw)
			*aw = l;
	}
	if (*sw > SUP_SCOPE_W)
		*sw = SUP_SCOPE_W;
	if (*aw > SUP_ADDR_W)
		*aw = SUP_ADDR_W;
}

static const char *
sup_text(struct ctl *c, const struct policy_sup_entry *e)
{
	return e->text[0] ? ctl_esc(c, e->text, 0) : "-";
}

/*
 * The list is walked SUP_PAGE entries at a time (policy_sup_page) and each
 * page printed as it comes, so a list of millions is never held whole.
 * The column widths are the first page's; a longer scope or address
 * later only pushes its row's columns right.
 */
static void
on_sup_list(void *arg, int status, const struct policy_sup_entry *e, size_t n,
    const char *next)
{
	struct ctl *c = arg;
	char t[32];
	int rc;

	if (c->finishing)
		return;
	if (status < 0) {
		ctl_call_failed(c, "suppression list", status);
		return;
	}
	if (c->sup_cursor[0] == '\0') {
		sup_widths(c, e, n, &c->sup_sw, &c->sup_aw);
		printf("%-*s  %-*s  %-11s  %-19s  %s\n", c->sup_sw, "SCOPE", c->sup_aw,
		    "ADDRESS", "REASON", "ADDED (UTC)", "TEXT");
	}
	for (size_t i = 0; i < n; i++)
		printf("%-*s  %-*s  %-11s  %-19s  %s\n", c->sup_sw, ctl_esc(c, e[i].scope, 0),
		    c->sup_aw, ctl_esc(c, e[i].addr, 0), policy_sup_reason_name(e[i].reason),
		    ctl_fmt_time(t, sizeof t, e[i].added_ms), sup_text(c, &e[i]));
	c->sup_rows += n;
	if (next[0] == '\0' || strcmp(next, "0") == 0) {
		printf("%" PRIu64 " %s\n", c->sup_rows, ctl_plural(c->sup_rows, "entry", "entries"));
		ctl_finish(c, CTL_OK);
		return;
	}
	fflush(stdout);
	str_copy(c->sup_cursor, next, sizeof c->sup_cursor);
	rc = policy_sup_page(c->p, c->has_scope ? c->scope : NULL, c->sup_cursor,
	    SUP_PAGE, on_sup_list, c);
	if (rc < 0) {
		ctl_call_failed(c, "suppression list", rc);
		return;
	}
	ctl_wait(c);
}

int
run_sup_list(struct ctl *c)
{
	c->sup_cursor[0] = '\0';
	c->sup_rows = 0;
	return policy_sup_page(c->p, c->has_scope ? c->scope : NULL, NULL, SUP_PAGE,
	    on_sup_list, c);
}

static void
on_sup_added(void *arg, int status)
{
	struct ctl *c = arg;

	if (c->finishing)
		return;
	if (status < 0) {
		ctl_call_failed(c, "suppression add", status);
		return;
	}
	printf("%s: suppressed, scope %s, reason %s\n", c->addr,
	    scope_name(c->has_scope ? c->scope : "*"), policy_sup_reason_name(c->reason));
	ctl_finish(c, CTL_OK);
}

int
run_sup_add(struct ctl *c)
{
	return policy_suppress(c->p, c->has_scope ? c->scope : NULL, c->addr, c->reason,
	    c->note != NULL ? c->note : "", on_sup_added, c);
}

static void
on_sup_del(void *arg, int status)
{
	struct ctl *c = arg;
	const char *scope = c->has_scope ? c->scope : "*";

	if (c->finishing)
		return;
	if (status == -ENOENT) {
		fprintf(stderr, "kurierctl: %s is not suppressed in scope %s (kurierctl suppression check %s shows every scope)\n",
		    c->addr, scope_name(scope), c->addr);
		ctl_finish(c, CTL_FAIL);
		return;
	}
	if (status < 0) {
		ctl_call_failed(c, "suppression del", status);
		return;
	}
	printf("%s: no longer suppressed in scope %s\n", c->addr, scope_name(scope));
	ctl_finish(c, CTL_OK);
}

int
run_sup_del(struct ctl *c)
{
	return policy_unsuppress(c->p, c->has_scope ? c->scope : NULL, c->addr, on_sup_del, c);
}

static void
on_sup_check(void *arg, int status, const struct policy_sup_entry *e, size_t n)
{
	struct ctl *c = arg;
	char t[32];
	int sw, aw;

	if (c->finishing)
		return;
	if (status < 0) {
		ctl_call_failed(c, "suppression check", status);
		return;
	}
	if (n == 0) {
		if (c->has_scope && strcmp(c->scope, "*") != 0)
			printf("%s: not suppressed (scopes * and %s)\n", c->addr, c->scope);
		else if (c->has_scope)
			printf("%s: not suppressed (scope *)\n", c->addr);
		else
			printf("%s: not suppressed\n", c->addr);
		ctl_finish(c, CTL_OK);
		return;
	}
	sup_widths(c, e, n, &sw, &aw);
	printf("%s: suppressed (%zu %s)\n", c->addr, n, ctl_plural(n, "entry", "entries"));
	printf("  %-*s  %-11s  %-19s  %s\n", sw, "SCOPE", "REASON", "ADDED (UTC)", "TEXT");
	for (size_t i = 0; i < n; i++)
		printf("  %-*s  %-11s  %-19s  %s\n", sw, ctl_esc(c, e[i].scope, 0),
		    policy_sup_reason_name(e[i].reason), ctl_fmt_time(t, sizeof t, e[i].added_ms),
		    sup_text(c, &e[i]));
	ctl_finish(c, CTL_OK);
}

int
run_sup_check(struct ctl *c)
{
	return policy_sup_check(c->p, c->has_scope ? c->scope : NULL, c->addr, on_sup_check, c);
}
