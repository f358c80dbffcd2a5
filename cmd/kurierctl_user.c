/*
 * kurierctl_user - kurierctl user add, passwd, del, list, show and set,
 * over the user store (policy/auth.h); user set also resets a user's
 * rate windows in the policy module when its limits change.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd/ctl.h"
#include "cmd/kurierctl_int.h"
#include "core/config.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "policy/auth.h"
#include "policy/policy.h"

#define USER_NAME_W 24          /* user list: name column, at least */

/* A NAME argument: a valid user name, else say what one is (exit 1). */
static int
check_user_arg(struct ctl *c, const char *arg)
{
	if (!auth_name_valid(arg)) {
		fprintf(stderr, "kurierctl: \"%s\" is not a user name (1-%d characters of A-Z a-z 0-9 . _ @ + -)\n",
		    ctl_esc(c, arg, 80), AUTH_NAME_MAX);
		return CTL_FAIL;
	}
	str_copy(c->user, arg, sizeof c->user);
	return CTL_OK;
}

/* More words after NAME: for add and passwd, most likely a password. */
static int
extra_user_arg(struct ctl *c, const char *arg)
{
	if (c->cmd->needs & NEED_PASSWORD) {
		fprintf(stderr, "kurierctl: user %s takes no password argument: the password is read from stdin (a pipe, or typed at the prompt), never from the command line\n",
		    c->cmd->name);
		return CTL_USAGE;
	}
	return ctl_usage_error(c, "unexpected argument", arg, "give one user NAME");
}

static int
missing_user_name(struct ctl *c)
{
	char what[64];

	snprintf(what, sizeof what, "user %s needs a user NAME", c->cmd->name);
	return ctl_usage_error(c, what, NULL, "the names are in the first column of kurierctl user list");
}

/* --domains LIST into c->domains, in the stored form. */
static int
check_domains(struct ctl *c, const char *v)
{
	char bad[DOMAIN_ARG_MAX + 1];
	int rc;

	bad[0] = '\0';
	rc = auth_domains_parse(v, c->domains, sizeof c->domains, bad, sizeof bad);
	if (rc == -EINVAL)
		return ctl_usage_error(c, "not a domain name in --domains", bad,
		    "give host names separated by commas, e.g. --domains a.example,b.example");
	if (rc < 0)
		return ctl_usage_error(c, "--domains is too long", NULL,
		    "the stored list holds at most 1023 characters");
	if (c->domains[0] == '\0')
		return ctl_usage_error(c, "--domains is empty", NULL,
		    "give at least one domain, e.g. --domains a.example");
	c->set_domains = true;
	return CTL_OK;
}

/* Whether s is empty or only blanks. */
static bool
blank(const char *s)
{
	return s[strspn(s, " \t")] == '\0';
}

/*
 * --rate / --rcpt-rate VALUE into out[size] as stored: "default" is ""
 * (back to [policy]), "none" no limit, else a rate list, normalised.  A
 * bad list is refused naming its bad entry and what is wrong with it.
 */
static int
check_rate(struct ctl *c, const char *opt, const char *v, char *out, size_t size)
{
	struct config_rates r;
	const char *why = "";
	char list[256], eg[96], *p;

	snprintf(eg, sizeof eg, "e.g. %s 500/h,20/min; %s default; %s none = no limit",
	    opt, opt, opt);

	if (strcmp(v, "default") == 0) {
		out[0] = '\0';
		return CTL_OK;
	}
	if (blank(v)) {
		fprintf(stderr, "kurierctl: %s is empty: give N/WINDOW[,N/WINDOW...] (%s)\n", opt, eg);
		return CTL_USAGE;
	}
	if (config_parse_rates(v, &r, &why) == 0) {
		config_rates_str(&r, out, size);
		return CTL_OK;
	}
	/* Which entry: each alone; if all parse, the list as a whole is wrong. */
	if (str_copy(list, v, sizeof list) >= 0 && strchr(list, ',') != NULL) {
		for (p = list; p != NULL;) {
			char *entry = p;
			const char *ewhy = "";

			p = strchr(p, ',');
			if (p != NULL)
				*p++ = '\0';
			entry = str_trim(entry);
			if (entry[0] == '\0') {
				fprintf(stderr, "kurierctl: bad %s \"%s\": an empty entry (%s)\n", opt,
				    ctl_esc(c, v, 80), eg);
				return CTL_USAGE;
			}
			if (config_parse_rates(entry, &r, &ewhy) < 0 || r.n == 0) {
				if (r.n == 0 && ewhy[0] == '\0')
					ewhy = "\"none\" cannot be one entry of a list";
				fprintf(stderr, "kurierctl: bad %s entry \"%s\" in \"%s\": %s (%s)\n",
				    opt, ctl_esc(c, entry, 40), ctl_esc(c, v, 80), ewhy, eg);
				return CTL_USAGE;
			}
		}
	}
	fprintf(stderr, "kurierctl: bad %s \"%s\": %s (%s)\n", opt, ctl_esc(c, v, 80), why, eg);
	return CTL_USAGE;
}

/* --rcpt-domains LIST | any into c->rcpt_domains, in the stored form. */
static int
check_rcpt_domains(struct ctl *c, const char *v)
{
	char bad[DOMAIN_ARG_MAX + 1];
	int rc;

	c->set_rcpt_domains = true;
	if (strcmp(v, "any") == 0) {
		c->rcpt_domains[0] = '\0';
		return CTL_OK;
	}
	bad[0] = '\0';
	rc = auth_domains_parse(v, c->rcpt_domains, sizeof c->rcpt_domains, bad, sizeof bad);
	if (rc == -EINVAL)
		return ctl_usage_error(c, "not a domain name in --rcpt-domains", bad,
		    "give host names separated by commas, e.g. --rcpt-domains a.example,b.example, or any");
	if (rc < 0)
		return ctl_usage_error(c, "--rcpt-domains is too long", NULL,
		    "the stored list holds at most 1023 characters");
	if (c->rcpt_domains[0] == '\0')
		return ctl_usage_error(c, "--rcpt-domains is empty", NULL,
		    "give at least one domain, e.g. --rcpt-domains a.example, or any for no restriction");
	return CTL_OK;
}

/*
 * The arguments of user add and user set: NAME and options, in any
 * order.  allow_set: --enable, --disable, --rate, --rcpt-rate and
 * --rcpt-domains are accepted.
 */
static int
check_user_opts(struct ctl *c, int argc, char **argv, bool allow_set)
{
	const char *name = NULL, *extra = NULL, *v;
	char hint[320];
	bool bad;
	int rc;

	snprintf(hint, sizeof hint, "kurierctl user %s %s", c->cmd->name, c->cmd->synopsis);
	for (char *p = hint; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	for (int i = 0; i < argc; i++) {
		if ((v = ctl_opt_value("--domains", argc, argv, &i, &bad)) != NULL) {
			if ((rc = check_domains(c, v)) != CTL_OK)
				return rc;
		} else if (bad) {
			return ctl_usage_error(c, "--domains needs a value", NULL, hint);
		} else if (allow_set && (v = ctl_opt_value("--rate", argc, argv, &i, &bad)) != NULL) {
			if ((rc = check_rate(c, "--rate", v, c->rate, sizeof c->rate)) != CTL_OK)
				return rc;
			c->set_rate = true;
		} else if (bad) {
			return ctl_usage_error(c, "--rate needs a value", NULL,
			    "e.g. --rate 500/h,20/min, --rate default or --rate none");
		} else if (allow_set && (v = ctl_opt_value("--rcpt-rate", argc, argv, &i, &bad)) != NULL) {
			if ((rc = check_rate(c, "--rcpt-rate", v, c->rcpt_rate,
			    sizeof c->rcpt_rate)) != CTL_OK)
				return rc;
			c->set_rcpt_rate = true;
		} else if (bad) {
			return ctl_usage_error(c, "--rcpt-rate needs a value", NULL,
			    "e.g. --rcpt-rate 5000/d, --rcpt-rate default or --rcpt-rate none");
		} else if (allow_set &&
		    (v = ctl_opt_value("--rcpt-domains", argc, argv, &i, &bad)) != NULL) {
			if ((rc = check_rcpt_domains(c, v)) != CTL_OK)
				return rc;
		} else if (bad) {
			return ctl_usage_error(c, "--rcpt-domains needs a value", NULL,
			    "e.g. --rcpt-domains a.example,b.example, or --rcpt-domains any");
		} else if (allow_set && strcmp(argv[i], "--enable") == 0) {
			if (c->enable == AUTH_ENABLE_OFF)
				return ctl_usage_error(c, "--enable and --disable", NULL, "give one of them");
			c->enable = AUTH_ENABLE_ON;
		} else if (allow_set && strcmp(argv[i], "--disable") == 0) {
			if (c->enable == AUTH_ENABLE_ON)
				return ctl_usage_error(c, "--enable and --disable", NULL, "give one of them");
			c->enable = AUTH_ENABLE_OFF;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			return ctl_usage_error(c, "unknown option", argv[i], hint);
		} else if (name == NULL) {
			name = argv[i];
		} else if (extra == NULL) {
			extra = argv[i];
		}
	}
	if (extra != NULL)
		return extra_user_arg(c, extra);
	if (name == NULL)
		return missing_user_name(c);
	return check_user_arg(c, name);
}

int
check_user_add(struct ctl *c, int argc, char **argv)
{
	int rc;

	if ((rc = check_user_opts(c, argc, argv, false)) != CTL_OK)
		return rc;
	if (!c->set_domains)
		return ctl_usage_error(c, "user add needs --domains LIST", NULL,
		    "the domains the user may send as, e.g. --domains a.example,b.example");
	return CTL_OK;
}

int
check_user_set(struct ctl *c, int argc, char **argv)
{
	int rc;

	if ((rc = check_user_opts(c, argc, argv, true)) != CTL_OK)
		return rc;
	if (!c->set_domains && c->enable == AUTH_ENABLE_KEEP && !c->set_rate &&
	    !c->set_rcpt_rate && !c->set_rcpt_domains)
		return ctl_usage_error(c, "user set needs a change", NULL,
		    "give --domains LIST, --enable, --disable, --rate, --rcpt-rate or --rcpt-domains");
	return CTL_OK;
}

/* user passwd NAME, user del NAME. */
int
check_user_name(struct ctl *c, int argc, char **argv)
{
	if (argc == 0)
		return missing_user_name(c);
	if (argv[0][0] == '-')
		return ctl_usage_error(c, "unknown option", argv[0], "give one user NAME");
	if (argc > 1)
		return extra_user_arg(c, argv[1]);
	return check_user_arg(c, argv[0]);
}

static void
no_such_user(struct ctl *c)
{
	fprintf(stderr, "kurierctl: no user %s (kurierctl user list shows every user)\n", c->user);
	ctl_finish(c, CTL_FAIL);
}

/*
 * user_answer - the common part of a user command's answer: false (and
 * the command is over) unless status says it succeeded.
 */
static bool
user_answer(struct ctl *c, int status, const char *what)
{
	if (c->finishing)
		return false;
	if (status == -ENOENT) {
		no_such_user(c);
		return false;
	}
	if (status == -EEXIST) {
		fprintf(stderr, "kurierctl: user %s already exists: use user passwd or user set\n",
		    c->user);
		ctl_finish(c, CTL_FAIL);
		return false;
	}
	if (status < 0) {
		ctl_call_failed(c, what, status);
		return false;
	}
	return true;
}

static void
on_user_added(void *arg, int status)
{
	struct ctl *c = arg;

	if (!user_answer(c, status, "user add"))
		return;
	printf("%s: added, may send as %s\n", c->user, c->domains);
	ctl_finish(c, CTL_OK);
}

int
run_user_add(struct ctl *c)
{
	int rc = auth_user_add(c->a, c->user, c->password, c->pwlen, c->domains,
	    on_user_added, c);

	/* auth has its own copy now. */
	explicit_bzero(c->password, sizeof c->password);
	return rc;
}

static void
on_user_passwd(void *arg, int status)
{
	struct ctl *c = arg;

	if (!user_answer(c, status, "user passwd"))
		return;
	printf("%s: password changed\n", c->user);
	ctl_finish(c, CTL_OK);
}

int
run_user_passwd(struct ctl *c)
{
	int rc = auth_user_passwd(c->a, c->user, c->password, c->pwlen, on_user_passwd, c);

	explicit_bzero(c->password, sizeof c->password);
	return rc;
}

static void
on_user_del(void *arg, int status)
{
	struct ctl *c = arg;

	if (!user_answer(c, status, "user del"))
		return;
	printf("%s: deleted\n", c->user);
	ctl_finish(c, CTL_OK);
}

int
run_user_del(struct ctl *c)
{
	return auth_user_del(c->a, c->user, on_user_del, c);
}

/*
 * user_rate - a user's rate for people: its override ("500/h, 20/min",
 * "none"), or "default (...)" with the [policy] value it follows.
 */
static const char *
user_rate(const char *override, const struct config_rates *def, char *dst, size_t size)
{
	char t[AUTH_RATE_MAX];

	if (override[0] != '\0')
		snprintf(dst, size, "%s", override);
	else
		snprintf(dst, size, "default (%s)", config_rates_str(def, t, sizeof t));
	return dst;
}

/* After user set: "shop: may send as a.example; enabled; rate 500/h". */
static void
user_set_done(struct ctl *c)
{
	char r[AUTH_RATE_MAX + 16];
	const char *sep = " ";

	printf("%s:", c->user);
	if (c->set_domains) {
		printf("%smay send as %s", sep, c->domains);
		sep = "; ";
	}
	if (c->enable != AUTH_ENABLE_KEEP) {
		printf("%s%s", sep, c->enable == AUTH_ENABLE_ON ? "enabled" : "disabled");
		sep = "; ";
	}
	if (c->set_rate) {
		printf("%srate %s", sep, user_rate(c->rate, &c->cfg.policy.rate, r, sizeof r));
		sep = "; ";
	}
	if (c->set_rcpt_rate) {
		printf("%srcpt rate %s", sep, user_rate(c->rcpt_rate, &c->cfg.policy.rcpt_rate,
		    r, sizeof r));
		sep = "; ";
	}
	if (c->set_rcpt_domains)
		printf("%srcpt domains %s", sep, c->rcpt_domains[0] ? c->rcpt_domains : "any");
	printf("\n");
	ctl_finish(c, CTL_OK);
}

static void
on_user_set_policy(void *arg, int status)
{
	struct ctl *c = arg;

	if (!user_answer(c, status, "user set"))
		return;
	user_set_done(c);
}

static bool
user_set_has_policy(const struct ctl *c)
{
	return c->set_rate || c->set_rcpt_rate || c->set_rcpt_domains;
}

static int
user_set_policy(struct ctl *c)
{
	return auth_user_set_policy(c->a, c->user, c->set_rate ? c->rate : NULL,
	    c->set_rcpt_rate ? c->rcpt_rate : NULL,
	    c->set_rcpt_domains ? c->rcpt_domains : NULL, on_user_set_policy, c);
}

/* The domains and enabled flag are written; then the policy overrides, if any. */
static void
on_user_set(void *arg, int status)
{
	struct ctl *c = arg;
	int rc;

	if (!user_answer(c, status, "user set"))
		return;
	if (!user_set_has_policy(c)) {
		user_set_done(c);
		return;
	}
	if ((rc = user_set_policy(c)) < 0)
		ctl_call_failed(c, "user set", rc);
	else
		ctl_wait(c);
}

int
run_user_set(struct ctl *c)
{
	if (!c->set_domains && c->enable == AUTH_ENABLE_KEEP)
		return user_set_policy(c);
	return auth_user_set(c->a, c->user, c->set_domains ? c->domains : NULL, c->enable,
	    on_user_set, c);
}

/* The columns of user list, made printable. */
struct user_row {
	char rate[AUTH_RATE_MAX + 16];
	char rcpt_rate[AUTH_RATE_MAX + 16];
};

static void
on_user_list(void *arg, int status, const struct auth_user *users, size_t n)
{
	struct ctl *c = arg;
	struct user_row *rows;
	int w = USER_NAME_W, dw = 7, rw = 4, qw = 9;

	if (c->finishing)
		return;
	if (status < 0) {
		ctl_call_failed(c, "user list", status);
		return;
	}
	rows = xcalloc(n ? n : 1, sizeof *rows);
	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(ctl_esc(c, users[i].name, 0));

		if (l > w)
			w = l;
		l = (int)strlen(users[i].domains[0] ? ctl_esc(c, users[i].domains, 0) : "-");
		if (l > dw)
			dw = l;
		user_rate(users[i].rate, &c->cfg.policy.rate, rows[i].rate, sizeof rows[i].rate);
		user_rate(users[i].rcpt_rate, &c->cfg.policy.rcpt_rate, rows[i].rcpt_rate,
		    sizeof rows[i].rcpt_rate);
		l = (int)strlen(ctl_esc(c, rows[i].rate, 0));
		if (l > rw)
			rw = l;
		l = (int)strlen(ctl_esc(c, rows[i].rcpt_rate, 0));
		if (l > qw)
			qw = l;
	}
	printf("%-*s  %-7s  %-*s  %-*s  %-*s  %s\n", w, "NAME", "ENABLED", dw, "DOMAINS",
	    rw, "RATE", qw, "RCPT RATE", "RCPT DOMAINS");
	for (size_t i = 0; i < n; i++) {
		/* Two printf()s: at most NESC ctl_esc() results are alive at once. */
		printf("%-*s  %-7s  %-*s  ", w, ctl_esc(c, users[i].name, 0),
		    users[i].enabled ? "yes" : "no",
		    dw, users[i].domains[0] ? ctl_esc(c, users[i].domains, 0) : "-");
		printf("%-*s  %-*s  %s\n", rw, ctl_esc(c, rows[i].rate, 0), qw,
		    ctl_esc(c, rows[i].rcpt_rate, 0),
		    users[i].rcpt_domains[0] ? ctl_esc(c, users[i].rcpt_domains, 0) : "any");
	}
	printf("%zu %s\n", n, ctl_plural(n, "user", "users"));
	free(rows);
	ctl_finish(c, CTL_OK);
}

static void
on_user_show(void *arg, int status, const struct auth_user *u)
{
	struct ctl *c = arg;
	char r[AUTH_RATE_MAX + 16], t[32];

	if (!user_answer(c, status, "user show"))
		return;
	printf("name           %s\n", ctl_esc(c, u->name, 0));
	printf("enabled        %s\n", u->enabled ? "yes" : "no (cannot log in)");
	printf("domains        %s\n", u->domains[0] ? ctl_esc(c, u->domains, 0) : "- (may send as none)");
	printf("rate           %s\n", ctl_esc(c, user_rate(u->rate, &c->cfg.policy.rate, r,
	    sizeof r), 0));
	printf("rcpt rate      %s\n", ctl_esc(c, user_rate(u->rcpt_rate, &c->cfg.policy.rcpt_rate,
	    r, sizeof r), 0));
	printf("rcpt domains   %s\n", u->rcpt_domains[0] ? ctl_esc(c, u->rcpt_domains, 0) : "any");
	printf("created        %s%s\n", u->created_ms ? ctl_fmt_time(t, sizeof t, u->created_ms) : "-",
	    u->created_ms ? " UTC" : "");
	printf("changed        %s%s\n", u->changed_ms ? ctl_fmt_time(t, sizeof t, u->changed_ms) : "-",
	    u->changed_ms ? " UTC" : "");
	ctl_finish(c, CTL_OK);
}

int
run_user_show(struct ctl *c)
{
	return auth_user_info(c->a, c->user, on_user_show, c);
}

int
run_user_list(struct ctl *c)
{
	return auth_user_list(c->a, on_user_list, c);
}
