/*
 * kurierctl - kurier's administration command line.
 *
 *   kurierctl [-c FILE] COMMAND [ARGS]
 *
 * The commands are a table (commands[]); each has a check, which reads
 * its arguments and touches nothing else, and a run.  "check" runs
 * without the network.  The queue commands open the queue, the user
 * commands the user store (policy/auth.h), the suppression commands and
 * queue stats the policy module (policy/policy.h); a command waits at
 * most [redis] connect_timeout for every connection it needs, starts its
 * first call once all are up (from a state callback, or for the policy
 * module, which has none, from a short polling timer) and goes on from
 * each call's callback; the last one calls ctl_finish(), which closes
 * what is open and the timers, so that uv_run() in main() returns and
 * uv_loop_close() finds nothing open.
 *
 * Passwords (user add, user passwd) are read from stdin, never from
 * argv, where any user could see them in ps(1): one line from a pipe, or
 * typed twice without echo at a terminal.  Read before connecting, kept
 * in one buffer, wiped before exit.
 *
 * Exit status: 0 success; 1 failure (bad config, unknown id, Redis not
 * reachable or refusing); 2 usage error.  Errors go to stderr as one
 * "kurierctl: " line that says what to do.
 *
 * Everything stored in the queue that a client chose (addresses,
 * replies, HELO names, reasons) may hold any byte; it is printed through
 * esc(), which shows bytes outside printable ASCII as \xNN, so a message
 * can never drive the administrator's terminal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mailaddr.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "policy/auth.h"
#include "policy/policy.h"
#include "queue/envelope.h"
#include "deliver/dkimkey.h"
#include "queue/qid.h"
#include "queue/queue.h"

enum {
	CTL_OK = 0,
	CTL_FAIL = 1,
	CTL_USAGE = 2,
};

#define LIST_PAGE 500           /* ids per queue_list() page */
#define LIST_PROGRESS_MIN 1000  /* show progress on sets larger than this */
#define LIST_SENDER_W 32
#define LIST_STATE_W 24
#define LIST_DOMAINS_W 60
#define STATS_DOMAIN_W 48
#define DOMAIN_ARG_MAX 255
#define REPLY_TIMEOUT_MS 60000  /* a call Redis has not answered by then fails */
#define NESC 4                  /* esc() results alive at once */
#define USER_NAME_W 24          /* user list: name column, at least */
#define POLL_MS 20              /* how often to look whether policy is up */
#define SUP_SCOPE_W 32          /* suppression list: widest scope column */
#define SUP_ADDR_W 48           /* suppression list: widest address column */
#define SUP_PAGE 1000           /* suppression list: entries asked per page */
#define SUP_NOTE_MAX 255        /* bytes of --note (struct policy_sup_entry text) */

/* What a command needs before it runs (struct command needs). */
enum {
	NEED_QUEUE = 1 << 0,    /* the queue's Redis connection */
	NEED_AUTH = 1 << 1,     /* the user store's Redis connection */
	NEED_PASSWORD = 1 << 2, /* a new password from stdin, read first */
	NEED_POLICY = 1 << 3,   /* the policy module's Redis connection */
};

enum list_state {
	LS_ACTIVE,
	LS_DEFERRED,
	LS_DONE,
	LS_CORRUPT,
};

struct ctl;

struct command {
	const char *group;      /* "queue", or NULL for a top-level command */
	const char *name;
	const char *synopsis;   /* arguments, for usage */
	const char *help;
	/* Arguments only: CTL_OK to go on, else the exit status (message printed). */
	int (*check)(struct ctl *c, int argc, char **argv);
	/*
	 * Without NEED_QUEUE, NEED_AUTH or NEED_POLICY: do it all, return the
	 * exit status.  With them: start the first call once Redis is up; 0
	 * or a negative errno.
	 */
	int (*run)(struct ctl *c);
	unsigned needs;         /* NEED_* */
};

struct ctl {
	const struct command *cmd;
	const char *conf_path;
	struct config cfg;
	uv_loop_t loop;
	uv_timer_t timer;       /* connect timeout, then reply timeout */
	struct queue *q;        /* NEED_QUEUE */
	struct auth *a;         /* NEED_AUTH */
	struct policy *p;       /* NEED_POLICY */
	uv_timer_t poll;        /* NEED_POLICY: until policy_is_up() */
	bool poll_open;
	bool started;           /* Redis came up and cmd->run() ran */
	bool finishing;
	int status;             /* exit status */
	uint64_t now;           /* queue clock when the command started (ms) */
	struct buf esc[NESC];
	unsigned esc_next;

	/* Arguments. */
	char id[QID_SIZE];
	bool all;
	enum list_state lstate;
	const char *domain;
	uint64_t limit;         /* 0: no limit */
	char user[AUTH_NAME_MAX + 1];
	char domains[AUTH_DOMAINS_MAX]; /* user add/set --domains, stored form */
	bool set_domains;
	enum auth_enable enable;
	char password[AUTH_PASSWORD_MAX + 2]; /* wiped in main() */
	size_t pwlen;
	/* user set: policy overrides, as stored ("" = back to the default). */
	char rate[AUTH_RATE_MAX];
	bool set_rate;
	char rcpt_rate[AUTH_RATE_MAX];
	bool set_rcpt_rate;
	char rcpt_domains[AUTH_DOMAINS_MAX];
	bool set_rcpt_domains;
	/* suppression */
	char addr[MAILADDR_ADDR_SIZE]; /* ADDRESS, as stored (lower case) */
	char scope[DOMAIN_ARG_MAX + 1]; /* --domain, lower case; "*" = global */
	bool has_scope;
	char sup_cursor[POLICY_SUP_CURSOR_MAX]; /* list: the next page */
	uint64_t sup_rows;      /* list: rows printed */
	int sup_sw, sup_aw;     /* list: column widths, from the first page */
	enum policy_sup_reason reason;
	const char *note;       /* --note, NULL = none */
	const char *selector;   /* dkim: --selector, NULL = default */
	const char *algo;       /* dkim keygen: --algo */

	/* queue list paging. */
	struct queue_cursor cursor; /* where the next page starts */
	uint64_t offset;        /* ids scanned so far */
	bool last_page;         /* the set ended with the page in hand */
	uint64_t total;         /* size of the set, as last reported */
	uint64_t shown;
	bool progress;          /* stderr is a terminal and the set is large */
	int progress_w;         /* width of the progress text on screen, 0 = none */
};

static int check_noargs(struct ctl *c, int argc, char **argv);
static int check_list(struct ctl *c, int argc, char **argv);
static int check_one_id(struct ctl *c, int argc, char **argv);
static int check_retry(struct ctl *c, int argc, char **argv);
static int check_flush(struct ctl *c, int argc, char **argv);
static int check_user_add(struct ctl *c, int argc, char **argv);
static int check_user_name(struct ctl *c, int argc, char **argv);
static int check_user_set(struct ctl *c, int argc, char **argv);
static int check_sup(struct ctl *c, int argc, char **argv);
static int check_dkim(struct ctl *c, int argc, char **argv);
static int run_dkim_keygen(struct ctl *c);
static int run_dkim_record(struct ctl *c);
static int run_check(struct ctl *c);
static int run_list(struct ctl *c);
static int run_show(struct ctl *c);
static int run_retry(struct ctl *c);
static int run_delete(struct ctl *c);
static int run_stats(struct ctl *c);
static int run_user_add(struct ctl *c);
static int run_user_passwd(struct ctl *c);
static int run_user_del(struct ctl *c);
static int run_user_list(struct ctl *c);
static int run_user_set(struct ctl *c);
static int run_user_show(struct ctl *c);
static int run_sup_list(struct ctl *c);
static int run_sup_add(struct ctl *c);
static int run_sup_del(struct ctl *c);
static int run_sup_check(struct ctl *c);
static int run_help(struct ctl *c);
static int read_password(struct ctl *c);
static void on_timer(uv_timer_t *t);

/* Each is check (arguments only), then run; "help" lists them in this order. */
static const struct command commands[] = {
	{ NULL, "check", "", "validate the configuration and summarise it (no network)",
	    check_noargs, run_check, 0 },
	{ "user", "add", "NAME --domains LIST",
	    "add a user, who may send as the domains in LIST\n"
	    "(e.g. a.example,b.example); password from stdin", check_user_add, run_user_add,
	    NEED_AUTH | NEED_PASSWORD },
	{ "user", "passwd", "NAME", "set a new password, read from stdin", check_user_name,
	    run_user_passwd, NEED_AUTH | NEED_PASSWORD },
	{ "user", "del", "NAME", "remove a user", check_user_name, run_user_del, NEED_AUTH },
	{ "user", "list", "", "users: name, enabled, domains, rates, recipient domains",
	    check_noargs, run_user_list, NEED_AUTH },
	{ "user", "show", "NAME", "everything about one user", check_user_name, run_user_show,
	    NEED_AUTH },
	{ "user", "set", "NAME [--domains LIST] [--enable|--disable] [--rate R|default]\n"
	    "[--rcpt-rate R|default] [--rcpt-domains LIST|any]",
	    "change a user's domains, let it log in or not, or set its own\n"
	    "limits: R is N/WINDOW[,N/WINDOW...] (500/h,20/min; windows s,\n"
	    "min, h, d or a duration like 10s) or none (no limit); default\n"
	    "goes back to [policy]; --rcpt-domains: the only recipient\n"
	    "domains allowed, any = no restriction", check_user_set, run_user_set,
	    NEED_AUTH },
	{ "suppression", "list", "[--domain D]",
	    "suppressed addresses of every scope, or of one (D, or * for global)",
	    check_sup, run_sup_list, NEED_POLICY },
	{ "suppression", "add", "ADDRESS [--domain D] [--reason hard-bounce|complaint|manual]\n"
	    "[--note TEXT]",
	    "never deliver to ADDRESS: from every sender (global, the\n"
	    "default), or from sender domain D; reason manual by default",
	    check_sup, run_sup_add, NEED_POLICY },
	{ "suppression", "del", "ADDRESS [--domain D]",
	    "remove ADDRESS from the global list, or from D's", check_sup, run_sup_del,
	    NEED_POLICY },
	{ "suppression", "check", "ADDRESS [--domain D]",
	    "whether ADDRESS is suppressed: under every scope, or for\n"
	    "sender domain D (global and D)", check_sup, run_sup_check, NEED_POLICY },
	{ "dkim", "keygen", "DOMAIN [--selector S] [--algo rsa|ed25519]",
	    "make a DKIM key in data_dir/dkim (rsa: 2048 bits, selector s1;\n"
	    "ed25519: selector e1) and print the DNS record to publish",
	    check_dkim, run_dkim_keygen, 0 },
	{ "dkim", "record", "DOMAIN [--selector S]",
	    "print the DNS record of an existing DKIM key", check_dkim, run_dkim_record, 0 },
	{ "queue", "list", "[--state active|deferred|done|corrupt] [--domain D] [--limit N]",
	    "messages, oldest first", check_list, run_list, NEED_QUEUE },
	{ "queue", "show", "ID", "everything about one message", check_one_id, run_show,
	    NEED_QUEUE },
	{ "queue", "retry", "ID | --all", "make queued deliveries due now", check_retry,
	    run_retry, NEED_QUEUE },
	{ "queue", "delete", "ID", "remove a message and its deliveries", check_one_id,
	    run_delete, NEED_QUEUE },
	{ "queue", "flush", "", "make every queued delivery due now (same as retry --all)",
	    check_flush, run_retry, NEED_QUEUE },
	{ "queue", "stats", "", "message counts, totals, work per destination, throttled\n"
	    "destinations and policy refusals by rule",
	    check_noargs, run_stats, NEED_QUEUE | NEED_POLICY },
	{ NULL, "help", "", "this text", check_noargs, run_help, 0 },
	{ NULL, NULL, NULL, NULL, NULL, NULL, 0 },
};

/* --- output helpers ---------------------------------------------------------- */

static size_t
esc_width(unsigned char ch)
{
	if (ch == '\\')
		return 2;
	if (ch >= 0x20 && ch < 0x7f)
		return 1;
	return 4;
}

/*
 * esc - s made safe for a terminal: printable ASCII as it is, '\' as
 * "\\", every other byte as \xNN.  At most max characters (0: no limit);
 * a cut value ends in "...".  NULL reads as "".  The result is valid
 * until the NESC-th next call.
 */
static const char *
esc(struct ctl *c, const char *s, size_t max)
{
	struct buf *b = &c->esc[c->esc_next++ % NESC];
	const unsigned char *p;
	size_t total = 0, limit = SIZE_MAX;
	bool cut = false;

	buf_reset(b);
	if (s == NULL)
		s = "";
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		total += esc_width(*p);
	if (max > 0 && total > max)
		limit = max > 3 ? max - 3 : 0;
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		size_t w = esc_width(*p);

		if (b->len + w > limit) {
			cut = true;
			break;
		}
		if (w == 1)
			buf_appendc(b, (char)*p);
		else if (*p == '\\')
			buf_appends(b, "\\\\");
		else
			buf_appendf(b, "\\x%02x", *p);
	}
	if (cut)
		buf_appends(b, "...");
	return b->data != NULL ? b->data : "";
}

/* fmt_time - ms since the epoch as UTC "2026-11-22 13:54:00". */
static const char *
fmt_time(char *dst, size_t size, uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(dst, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(dst, size, "?");
	return dst;
}

/* fmt_span - a duration as its two largest units: "45s", "4m30s", "2h5m", "3d4h". */
static const char *
fmt_span(char *dst, size_t size, uint64_t ms)
{
	uint64_t s = (ms + 999) / 1000;

	if (s < 60)
		snprintf(dst, size, "%" PRIu64 "s", s);
	else if (s < 3600 && s % 60 != 0)
		snprintf(dst, size, "%" PRIu64 "m%" PRIu64 "s", s / 60, s % 60);
	else if (s < 3600)
		snprintf(dst, size, "%" PRIu64 "m", s / 60);
	else if (s < 86400 && s % 3600 / 60 != 0)
		snprintf(dst, size, "%" PRIu64 "h%" PRIu64 "m", s / 3600, s % 3600 / 60);
	else if (s < 86400)
		snprintf(dst, size, "%" PRIu64 "h", s / 3600);
	else if (s % 86400 / 3600 != 0)
		snprintf(dst, size, "%" PRIu64 "d%" PRIu64 "h", s / 86400, s % 86400 / 3600);
	else
		snprintf(dst, size, "%" PRIu64 "d", s / 86400);
	return dst;
}

/* fmt_when - fmt_time(), and for a time after now also " (in 4m30s)". */
static const char *
fmt_when(char *dst, size_t size, uint64_t ms, uint64_t now)
{
	char t[32], span[32];

	fmt_time(t, sizeof t, ms);
	if (ms > now)
		snprintf(dst, size, "%s (in %s)", t, fmt_span(span, sizeof span, ms - now));
	else
		snprintf(dst, size, "%s", t);
	return dst;
}

static const char *
plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static int
digits(uint64_t v)
{
	int n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* --- usage --------------------------------------------------------------------- */

/* help_text - a command's help, its later lines indented to the column. */
static void
help_text(FILE *f, const char *help)
{
	for (const char *p = help; *p != '\0'; p++) {
		if (*p == '\n')
			fprintf(f, "\n  %-24s  ", "");
		else
			fputc(*p, f);
	}
	fputc('\n', f);
}

static void
usage(FILE *f)
{
	char head[320];
	int indent;

	fprintf(f, "usage: kurierctl [-c FILE] COMMAND [ARGS]\n\ncommands:\n");
	for (const struct command *cmd = commands; cmd->name != NULL; cmd++) {
		indent = snprintf(head, sizeof head, "%s%s%s ", cmd->group ? cmd->group : "",
		    cmd->group ? " " : "", cmd->name);
		snprintf(head, sizeof head, "%s%s%s%s%s", cmd->group ? cmd->group : "",
		    cmd->group ? " " : "", cmd->name, cmd->synopsis[0] ? " " : "",
		    cmd->synopsis);
		if (strlen(head) <= 24) {
			fprintf(f, "  %-24s  ", head);
		} else {
			/* A long synopsis: its own lines, later ones under its arguments. */
			fputs("  ", f);
			for (const char *p = head; *p != '\0'; p++) {
				if (*p == '\n')
					fprintf(f, "\n  %*s", indent, "");
				else
					fputc(*p, f);
			}
			fprintf(f, "\n  %-24s  ", "");
		}
		help_text(f, cmd->help);
	}
	fprintf(f, "\noptions:\n"
	    "  -c FILE                   configuration file (default %s);\n"
	    "                            also accepted after the command\n"
	    "  -h, --help                this text\n"
	    "\npasswords: user add and user passwd read one line from stdin, or at a\n"
	    "terminal ask twice without echo; never from the command line\n"
	    "\nsuppression scopes: * (global) applies to mail from every sender;\n"
	    "a domain D to mail whose sender domain is D\n"
	    "\nexit status: 0 done, 1 failed, 2 usage error\n", CONFIG_DEFAULT_PATH);
}

/* usage_error - one line saying what is wrong and what to do; CTL_USAGE. */
static int
usage_error(struct ctl *c, const char *what, const char *arg, const char *hint)
{
	if (arg != NULL)
		fprintf(stderr, "kurierctl: %s \"%s\": %s\n", what, esc(c, arg, 64), hint);
	else
		fprintf(stderr, "kurierctl: %s: %s\n", what, hint);
	return CTL_USAGE;
}

/* cmd_name - "queue list", "check". */
static const char *
cmd_name(const struct ctl *c, char *dst, size_t size)
{
	snprintf(dst, size, "%s%s%s", c->cmd->group ? c->cmd->group : "",
	    c->cmd->group ? " " : "", c->cmd->name);
	return dst;
}

/* --- argument checks ----------------------------------------------------------- */

/*
 * Parse a queue id: upper-cased (the alphabet is upper case; a pasted
 * lower-case id means the same), then checked.
 */
static int
check_id(struct ctl *c, const char *arg)
{
	char id[QID_SIZE];
	size_t n = strlen(arg);

	if (n == QID_LEN) {
		for (size_t i = 0; i < n; i++)
			id[i] = arg[i] >= 'a' && arg[i] <= 'z' ? (char)(arg[i] - 'a' + 'A') : arg[i];
		id[n] = '\0';
		if (qid_valid(id)) {
			memcpy(c->id, id, QID_SIZE);
			return CTL_OK;
		}
	}
	fprintf(stderr, "kurierctl: \"%s\" is not a queue id (16 characters, e.g. 01M3250V00NTPCQX)\n",
	    esc(c, arg, 64));
	return CTL_FAIL;
}

static int
check_noargs(struct ctl *c, int argc, char **argv)
{
	if (argc > 0)
		return usage_error(c, "unexpected argument", argv[0],
		    "this command takes none (see kurierctl help)");
	return CTL_OK;
}

/* The value of "--name VALUE" or "--name=VALUE" at argv[*i], or NULL. */
static const char *
opt_value(const char *name, int argc, char **argv, int *i, bool *bad)
{
	size_t n = strlen(name);

	*bad = false;
	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*bad = true;
		return NULL;
	}
	return argv[++*i];
}

static int
check_list(struct ctl *c, int argc, char **argv)
{
	static const char *const states[] = {
		[LS_ACTIVE] = "active", [LS_DEFERRED] = "deferred",
		[LS_DONE] = "done", [LS_CORRUPT] = "corrupt",
	};
	const char *v;
	bool bad;

	c->lstate = LS_ACTIVE;
	for (int i = 0; i < argc; i++) {
		if ((v = opt_value("--state", argc, argv, &i, &bad)) != NULL) {
			size_t k;

			for (k = 0; k < sizeof states / sizeof states[0]; k++)
				if (strcmp(v, states[k]) == 0)
					break;
			if (k == sizeof states / sizeof states[0])
				return usage_error(c, "unknown --state", v,
				    "use active, deferred, done or corrupt");
			c->lstate = (enum list_state)k;
		} else if (!bad && (v = opt_value("--domain", argc, argv, &i, &bad)) != NULL) {
			if (v[0] == '\0' || strlen(v) > DOMAIN_ARG_MAX)
				return usage_error(c, "bad --domain", v,
				    "give a domain name, e.g. --domain example.com");
			c->domain = v;
		} else if (!bad && (v = opt_value("--limit", argc, argv, &i, &bad)) != NULL) {
			if (str_to_u64(v, &c->limit) < 0 || c->limit == 0)
				return usage_error(c, "bad --limit", v, "give a positive number, e.g. --limit 50");
		} else if (bad) {
			fprintf(stderr, "kurierctl: %s needs a value: kurierctl queue list [--state active|deferred|done|corrupt] [--domain D] [--limit N]\n",
			    esc(c, argv[i], 16));
			return CTL_USAGE;
		} else {
			return usage_error(c, "unknown argument to queue list", argv[i],
			    "kurierctl queue list [--state active|deferred|done|corrupt] [--domain D] [--limit N]");
		}
	}
	return CTL_OK;
}

static int
check_one_id(struct ctl *c, int argc, char **argv)
{
	char what[64];

	snprintf(what, sizeof what, "queue %s needs a message ID", c->cmd->name);
	if (argc == 0)
		return usage_error(c, what, NULL, "the ids are in the first column of kurierctl queue list");
	if (argc > 1)
		return usage_error(c, "unexpected argument", argv[1], "give one message ID");
	if (argv[0][0] == '-')
		return usage_error(c, "unknown option", argv[0], "give one message ID");
	return check_id(c, argv[0]);
}

static int
check_retry(struct ctl *c, int argc, char **argv)
{
	if (argc == 1 && strcmp(argv[0], "--all") == 0) {
		c->all = true;
		return CTL_OK;
	}
	if (argc == 0)
		return usage_error(c, "queue retry needs a message ID or --all", NULL,
		    "kurierctl queue retry ID | --all");
	return check_one_id(c, argc, argv);
}

static int
check_flush(struct ctl *c, int argc, char **argv)
{
	c->all = true;
	return check_noargs(c, argc, argv);
}

/* --- the Redis connection (queue or user store) ------------------------------------ */

static void
on_backend_closed(void *arg)
{
	(void)arg;
}

/* ctl_finish - end the command with this exit status; closes what is open. */
static void
ctl_finish(struct ctl *c, int status)
{
	if (c->finishing)
		return;
	c->finishing = true;
	c->status = status;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, NULL);
	if (c->poll_open) {
		c->poll_open = false;
		uv_close((uv_handle_t *)&c->poll, NULL);
	}
	if (c->q != NULL)
		queue_close(c->q, on_backend_closed, c);
	if (c->a != NULL)
		auth_close(c->a, on_backend_closed, c);
	if (c->p != NULL)
		policy_close(c->p, on_backend_closed, c);
}

/* Why the first connection that is not up failed ("" when none says). */
static const char *
backend_last_error(const struct ctl *c)
{
	if (c->q != NULL && !queue_is_up(c->q))
		return queue_last_error(c->q);
	if (c->a != NULL && !auth_is_up(c->a))
		return auth_last_error(c->a);
	if (c->p != NULL && !policy_is_up(c->p))
		return policy_last_error(c->p);
	return "";
}

/* Whether every connection the command needs is up. */
static bool
backends_up(const struct ctl *c)
{
	return (c->q == NULL || queue_is_up(c->q)) && (c->a == NULL || auth_is_up(c->a)) &&
	    (c->p == NULL || policy_is_up(c->p));
}

static const char *
redis_addr(struct ctl *c, char *dst, size_t size)
{
	return config_endpoint_str(&c->cfg.redis.address, dst, size);
}

/* A call failed: say why and what to do, and end with status 1. */
static void
call_failed(struct ctl *c, const char *what, int status)
{
	char addr[CONFIG_HOST_MAX + 16];

	redis_addr(c, addr, sizeof addr);
	switch (status) {
	case -ENOTCONN:
	case -ECONNRESET:
		fprintf(stderr, "kurierctl: %s: lost the connection to Redis at %s: try again; if it repeats, see redis-server's log\n",
		    what, addr);
		break;
	case -EIO:
		fprintf(stderr, "kurierctl: %s: Redis at %s refused the command (the log line above says why)\n",
		    what, addr);
		break;
	case -EPROTO:
		fprintf(stderr, "kurierctl: %s: unexpected reply from Redis at %s: are kurierctl and the queue the same version?\n",
		    what, addr);
		break;
	case -ETIMEDOUT:
		fprintf(stderr, "kurierctl: %s: Redis at %s did not answer within %ds: check that redis-server is not stalled\n",
		    what, addr, REPLY_TIMEOUT_MS / 1000);
		break;
	default:
		fprintf(stderr, "kurierctl: %s: %s\n", what, strerror(-status));
		break;
	}
	ctl_finish(c, CTL_FAIL);
}

/* After each call is sent: it must be answered within REPLY_TIMEOUT_MS. */
static void
ctl_wait(struct ctl *c)
{
	uv_timer_start(&c->timer, on_timer, REPLY_TIMEOUT_MS, 0);
}

static void
not_reachable(struct ctl *c)
{
	char addr[CONFIG_HOST_MAX + 16], err[512], span[32];
	const char *hint = "is redis-server running? check [redis] address in";

	str_copy(err, backend_last_error(c), sizeof err);
	if (err[0] == '\0')
		snprintf(err, sizeof err, "no answer within %s",
		    fmt_span(span, sizeof span, c->cfg.redis.connect_timeout_ms));
	else if (strstr(err, "AUTH") != NULL)
		hint = "check [redis] password in";
	else if (strstr(err, "too old") != NULL)
		hint = "kurier needs Redis 6.2 or newer; check [redis] address in";
	else if (strstr(err, "loading") != NULL)
		hint = "wait until Redis has loaded its data and try again; see";
	fprintf(stderr, "kurierctl: cannot reach Redis at %s (%s): %s %s\n",
	    redis_addr(c, addr, sizeof addr), err, hint, c->conf_path);
	ctl_finish(c, CTL_FAIL);
}

static void
on_timer(uv_timer_t *t)
{
	struct ctl *c = t->data;
	char what[64];

	if (c->finishing)
		return;
	if (!c->started) {
		not_reachable(c);
		return;
	}
	call_failed(c, cmd_name(c, what, sizeof what), -ETIMEDOUT);
}

/* try_start - run the command once every connection it needs is up. */
static void
try_start(struct ctl *c)
{
	char what[64];
	int rc;

	if (c->started || c->finishing || !backends_up(c))
		return;
	c->started = true;
	if (c->poll_open) {
		c->poll_open = false;
		uv_close((uv_handle_t *)&c->poll, NULL);
	}
	c->now = c->q != NULL ? queue_now(c->q) : 0;
	rc = c->cmd->run(c);
	if (rc < 0)
		call_failed(c, cmd_name(c, what, sizeof what), rc);
	else
		ctl_wait(c);
}

static void
on_state(void *arg, bool up)
{
	if (up)
		try_start(arg);
}

static void
on_poll(uv_timer_t *t)
{
	try_start(t->data);
}

static int
run_remote_command(struct ctl *c)
{
	int rc;

	/* Connection attempts are summed up in one message, not logged. */
	log_set_level(LOG_ERROR);
	if ((rc = uv_loop_init(&c->loop)) != 0) {
		fprintf(stderr, "kurierctl: cannot start the event loop: %s\n", uv_strerror(rc));
		return CTL_FAIL;
	}
	uv_timer_init(&c->loop, &c->timer);
	c->timer.data = c;
	if (c->cmd->needs & NEED_QUEUE) {
		/* One command at a time: one connection is enough. */
		c->cfg.redis.connections = 1;
		if ((rc = queue_open(&c->q, &c->loop, &c->cfg, "kurierctl")) < 0) {
			fprintf(stderr, "kurierctl: cannot open the queue: %s\n", strerror(-rc));
			exit(CTL_FAIL);
		}
		queue_on_state(c->q, on_state, c);
	}
	if (c->cmd->needs & NEED_AUTH) {
		if ((rc = auth_open(&c->a, &c->loop, &c->cfg, "kurierctl")) < 0) {
			fprintf(stderr, "kurierctl: cannot open the user store: %s\n", strerror(-rc));
			exit(CTL_FAIL);
		}
		auth_on_state(c->a, on_state, c);
	}
	if (c->cmd->needs & NEED_POLICY) {
		if ((rc = policy_open(&c->p, &c->loop, &c->cfg, "kurierctl")) < 0) {
			fprintf(stderr, "kurierctl: cannot open the policy store: %s\n", strerror(-rc));
			exit(CTL_FAIL);
		}
		uv_timer_init(&c->loop, &c->poll);
		c->poll.data = c;
		c->poll_open = true;
		uv_timer_start(&c->poll, on_poll, POLL_MS, POLL_MS);
	}
	uv_timer_start(&c->timer, on_timer, c->cfg.redis.connect_timeout_ms, 0);
	try_start(c);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	if ((rc = uv_loop_close(&c->loop)) != 0) {
		fprintf(stderr, "kurierctl: internal error: handles left open at exit (%s)\n",
		    uv_strerror(rc));
		return CTL_FAIL;
	}
	return c->status;
}

/* The message for an id that is not (or no longer) in the queue. */
static void
no_such_message(struct ctl *c, const char *id)
{
	fprintf(stderr, "kurierctl: no message %s in the queue (delivered messages are kept for [queue] retention, then removed)\n",
	    id);
	ctl_finish(c, CTL_FAIL);
}

/* --- check ------------------------------------------------------------------------- */

/* nets_str - "127.0.0.1/32, ::1/128", or "none". */
static const char *
nets_str(const struct config_nets *nets, char *dst, size_t size)
{
	size_t off = 0;

	dst[0] = '\0';
	if (nets->n == 0)
		str_copy(dst, "none", size);
	for (unsigned i = 0; i < nets->n; i++) {
		char a[INET6_ADDRSTRLEN];
		int w;

		if (inet_ntop(nets->net[i].family, nets->net[i].addr, a, sizeof a) == NULL)
			str_copy(a, "?", sizeof a);
		w = snprintf(dst + off, size - off, "%s%s/%u", i ? ", " : "", a,
		    nets->net[i].prefix);
		if (w < 0 || (size_t)w >= size - off)
			break;
		off += (size_t)w;
	}
	return dst;
}

/* rates_text - a [policy] rate list for people: "500/h, 20/min", or "none (no limit)". */
static const char *
rates_text(const struct config_rates *r, char *dst, size_t size)
{
	char t[AUTH_RATE_MAX];

	config_rates_str(r, t, sizeof t);
	snprintf(dst, size, "%s%s", t, r->n == 0 ? " (no limit)" : "");
	return dst;
}

/* check_policy_summary - the [relay] trust and [policy] lines of check. */
static void
check_policy_summary(const struct config *cfg)
{
	char nets[CONFIG_NETS_MAX * (INET6_ADDRSTRLEN + 8)], r[AUTH_RATE_MAX + 16];
	char d1[32], d2[32], d3[32];

	printf("  trusted networks %s", nets_str(&cfg->relay.trusted_networks, nets, sizeof nets));
	if (cfg->relay.trusted_networks.n > 0)
		printf(" (no TLS or AUTH needed; they act as user %s)", cfg->relay.trusted_user);
	printf("\n");
	printf("  rate             %s per user\n", rates_text(&cfg->policy.rate, r, sizeof r));
	printf("  rcpt rate        %s per user\n", rates_text(&cfg->policy.rcpt_rate, r, sizeof r));
	printf("  suppressed       %s; hard bounces %s\n",
	    cfg->policy.suppressed == CONFIG_SUPPRESSED_DROP ?
	    "drop (accepted with 250, never delivered)" : "reject (550 5.7.1 at RCPT)",
	    cfg->policy.suppress_bounces ? "added to the list" : "not added");
	printf("  auth lock-out    %u failures from one address within %s lock it out for %s\n",
	    cfg->policy.auth_fail_limit,
	    str_duration(d1, sizeof d1, cfg->policy.auth_fail_window_ms),
	    str_duration(d2, sizeof d2, cfg->policy.auth_lockout_ms));
	printf("  session limits   %u protocol errors, %u junk commands between messages, then 421\n",
	    cfg->policy.max_errors, cfg->policy.max_junk_commands);
	printf("  throttle backoff %s, doubling up to %s\n",
	    str_duration(d3, sizeof d3, cfg->policy.throttle_backoff_min_ms),
	    str_duration(d1, sizeof d1, cfg->policy.throttle_backoff_max_ms));
}

static int
run_check(struct ctl *c)
{
	const struct config *cfg = &c->cfg;
	char roles[64], addr[CONFIG_HOST_MAX + 16], d[32];

	printf("%s: ok\n", c->conf_path);
	printf("  roles            %s\n", config_roles_str(cfg->server.roles, roles, sizeof roles));
	printf("  redis            %s (prefix \"%s\", connect timeout %s)\n",
	    config_endpoint_str(&cfg->redis.address, addr, sizeof addr), cfg->redis.prefix,
	    str_duration(d, sizeof d, cfg->redis.connect_timeout_ms));
	printf("  retry            ");
	for (unsigned i = 0; i < cfg->deliver.nretry; i++)
		printf("%s%s", i ? ", " : "", str_duration(d, sizeof d, cfg->deliver.retry_ms[i]));
	printf(", then every %s\n", str_duration(d, sizeof d,
	    cfg->deliver.retry_ms[cfg->deliver.nretry - 1]));
	printf("  lifetime         %s\n", str_duration(d, sizeof d, cfg->deliver.lifetime_ms));
	printf("  kept when done   %s\n", str_duration(d, sizeof d, cfg->queue.retention_ms));
	printf("  resolver         %s\n", cfg->deliver.dns_server_set ?
	    config_endpoint_str(&cfg->deliver.dns_server, addr, sizeof addr) : "system (/etc/resolv.conf)");
	for (size_t i = 0; i < cfg->nroutes; i++)
		printf("  route            %s -> %s%s\n", cfg->routes[i].domain,
		    config_endpoint_str(&cfg->routes[i].ep, addr, sizeof addr),
		    cfg->deliver.smarthost_user[0] ? " (AUTH over TLS)" : "");
	for (size_t i = 0; i < cfg->ndomains; i++) {
		const struct config_domain *dom = &cfg->domains[i];

		printf("  domain           %s: return path b+...@%s, DKIM", dom->name, dom->return_path);
		for (unsigned k = 0; k < dom->nselector; k++) {
			char path[PATH_MAX], e[256];

			if (dkimkey_path(path, sizeof path, cfg->server.data_dir, dom->name,
			    dom->selector[k], e, sizeof e) < 0 || access(path, R_OK) != 0)
				printf(" %s (no key: kurierctl dkim keygen %s --selector %s)", dom->selector[k],
				    dom->name, dom->selector[k]);
			else
				printf(" %s", dom->selector[k]);
		}
		printf("\n");
	}
	check_policy_summary(cfg);
	return CTL_OK;
}

/* --- dkim keygen, dkim record ------------------------------------------------------- */

/* dkim keygen DOMAIN [--selector S] [--algo rsa|ed25519]; dkim record DOMAIN [--selector S]. */
static int
check_dkim(struct ctl *c, int argc, char **argv)
{
	bool keygen = strcmp(c->cmd->name, "keygen") == 0;

	if (argc == 0)
		return usage_error(c, "needs a DOMAIN", NULL,
		    keygen ? "kurierctl dkim keygen example.com --algo rsa" :
		    "kurierctl dkim record example.com --selector s1");
	if (argv[0][0] == '-')
		return usage_error(c, "the DOMAIN comes first", argv[0],
		    "kurierctl dkim keygen example.com --selector s1");
	if (strlen(argv[0]) > DOMAIN_ARG_MAX)
		return usage_error(c, "domain too long", NULL, "a domain has at most 255 characters");
	c->domain = argv[0];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--selector") == 0 && i + 1 < argc) {
			c->selector = argv[++i];
		} else if (keygen && strcmp(argv[i], "--algo") == 0 && i + 1 < argc) {
			c->algo = argv[++i];
			if (strcmp(c->algo, "rsa") != 0 && strcmp(c->algo, "ed25519") != 0)
				return usage_error(c, "--algo is rsa or ed25519", c->algo,
				    "rsa (2048 bits) is read by every receiver; ed25519 (RFC 8463) is small and fast");
		} else {
			return usage_error(c, "unknown or incomplete option", argv[i],
			    keygen ? "use --selector S and --algo rsa|ed25519" : "use --selector S");
		}
	}
	if (c->algo == NULL)
		c->algo = "rsa";
	if (c->selector == NULL)
		c->selector = strcmp(c->algo, "ed25519") == 0 ? "e1" : "s1";
	return CTL_OK;
}

static int
run_dkim_keygen(struct ctl *c)
{
	char err[512], *txt = NULL;
	const struct config_domain *dom = config_domain_find(&c->cfg, c->domain);
	bool listed = false;

	if (dkimkey_generate(c->cfg.server.data_dir, c->domain, c->selector, c->algo, &txt,
	    err, sizeof err) < 0) {
		fprintf(stderr, "kurierctl: %s\n", err);
		return CTL_FAIL;
	}
	printf("; %s key for %s, selector %s: publish this record in DNS\n", c->algo,
	    c->domain, c->selector);
	printf("%s\n", txt);
	free(txt);
	for (unsigned i = 0; dom != NULL && i < dom->nselector; i++)
		if (strcasecmp(dom->selector[i], c->selector) == 0)
			listed = true;
	if (!listed)
		fprintf(stderr, "kurierctl: note: add it to %s:\n  [domain %s]\n  dkim_selector = %s\n"
		    "then restart kurierd\n", c->conf_path, c->domain, c->selector);
	return CTL_OK;
}

static int
run_dkim_record(struct ctl *c)
{
	char err[512], *txt = NULL;

	if (dkimkey_record(c->cfg.server.data_dir, c->domain, c->selector, &txt, err, sizeof err) < 0) {
		fprintf(stderr, "kurierctl: %s\n", err);
		return CTL_FAIL;
	}
	printf("%s\n", txt);
	free(txt);
	return CTL_OK;
}

/* --- queue list -------------------------------------------------------------------- */

static void on_list(void *arg, int status, uint64_t total, char (*ids)[QID_SIZE],
    size_t n, const struct queue_cursor *next);

static enum queue_set
list_set(const struct ctl *c)
{
	switch (c->lstate) {
	case LS_DONE:
		return QSET_DONE;
	case LS_CORRUPT:
		return QSET_CORRUPT;
	default:
		return QSET_ACTIVE;
	}
}

static int
list_page(struct ctl *c)
{
	return queue_list(c->q, list_set(c), &c->cursor, LIST_PAGE, on_list, c);
}

static void
progress_clear(struct ctl *c)
{
	if (c->progress_w > 0) {
		fprintf(stderr, "\r%*s\r", c->progress_w, "");
		c->progress_w = 0;
	}
}

static void
progress_show(struct ctl *c)
{
	int n;

	if (!c->progress)
		return;
	n = fprintf(stderr, "\rscanned %" PRIu64 "/%" PRIu64, c->offset, c->total);
	if (n > 1)
		c->progress_w = n - 1;
}

static bool
info_has_domain(const struct queue_info *info, const char *domain)
{
	for (size_t j = 0; j < info->njobs; j++)
		if (strcasecmp(info->jobs[j].st.domain, domain) == 0)
			return true;
	/* A record whose job states are unreadable still has its envelope. */
	for (size_t i = 0; i < info->env.nrcpt; i++)
		if (info->env.rcpt[i].domain != NULL &&
		    strcasecmp(info->env.rcpt[i].domain, domain) == 0)
			return true;
	return false;
}

static bool
info_has_state(const struct queue_info *info, enum rcpt_state s)
{
	for (size_t j = 0; j < info->njobs; j++)
		for (size_t k = 0; k < info->jobs[j].st.n; k++)
			if (info->jobs[j].st.r[k].state == s)
				return true;
	return false;
}

/* "2 delivered, 1 deferred": recipients by state, in the enum's order. */
static void
state_summary(const struct queue_info *info, struct buf *out)
{
	uint64_t count[RCPT_NSTATES] = { 0 };

	for (size_t j = 0; j < info->njobs; j++)
		for (size_t k = 0; k < info->jobs[j].st.n; k++)
			if ((unsigned)info->jobs[j].st.r[k].state < RCPT_NSTATES)
				count[info->jobs[j].st.r[k].state]++;
	for (int s = 0; s < RCPT_NSTATES; s++)
		if (count[s] > 0)
			buf_appendf(out, "%s%" PRIu64 " %s", out->len ? ", " : "", count[s],
			    rcpt_state_name((enum rcpt_state)s));
	if (out->len == 0)
		buf_appends(out, "-");
}

static void
list_print(struct ctl *c, const struct queue_info *info)
{
	struct buf st = BUF_INIT, doms = BUF_INIT;
	char t[32], size[24], nrcpt[24], sender[LIST_SENDER_W + 8];
	uint64_t arrival = info->env.arrival_ms;

	if (info->corrupt) {
		buf_appends(&st, "corrupt: ");
		buf_appends(&st, esc(c, info->why, 40));
	} else {
		state_summary(info, &st);
	}
	for (size_t j = 0; j < info->njobs; j++) {
		buf_appends(&doms, j ? "," : "");
		buf_appends(&doms, esc(c, info->jobs[j].st.domain, 0));
	}
	if (info->env.id[0] == '\0') {
		/* Envelope unreadable: the id still tells when it arrived. */
		arrival = qid_time(info->id);
		snprintf(size, sizeof size, "?");
		snprintf(nrcpt, sizeof nrcpt, "?");
		snprintf(sender, sizeof sender, "?");
	} else {
		snprintf(size, sizeof size, "%" PRIu64, info->env.size);
		snprintf(nrcpt, sizeof nrcpt, "%zu", info->env.nrcpt);
		snprintf(sender, sizeof sender, "<%s>", esc(c, info->env.sender, LIST_SENDER_W - 2));
	}
	printf("%-16s  %-19s  %9s  %-*s  %5s  %-*s  %s\n", info->id,
	    fmt_time(t, sizeof t, arrival), size, LIST_SENDER_W, sender, nrcpt,
	    LIST_STATE_W, st.data, doms.len ? esc(c, doms.data, LIST_DOMAINS_W) : "-");
	buf_free(&st);
	buf_free(&doms);
}

static void
list_end(struct ctl *c, bool more)
{
	progress_clear(c);
	printf("%" PRIu64 " %s", c->shown, plural(c->shown, "message", "messages"));
	if (more)
		printf(" (--limit %" PRIu64 " reached)", c->limit);
	printf("\n");
	ctl_finish(c, CTL_OK);
}

static void
on_list_fetched(void *arg, int status, struct queue_info *infos, size_t n)
{
	struct ctl *c = arg;
	size_t i;
	int rc;

	if (c->finishing)
		return;
	if (status < 0) {
		progress_clear(c);
		call_failed(c, "queue list", status);
		return;
	}
	progress_clear(c);
	for (i = 0; i < n; i++) {
		const struct queue_info *info = &infos[i];

		if (c->limit > 0 && c->shown == c->limit)
			break;
		if (!info->exists)
			continue;  /* gone since it was listed */
		if (c->lstate == LS_DEFERRED && !info_has_state(info, RCPT_DEFERRED))
			continue;
		if (c->domain != NULL && !info_has_domain(info, c->domain))
			continue;
		list_print(c, info);
		c->shown++;
	}
	fflush(stdout);
	if (c->limit > 0 && c->shown == c->limit) {
		bool more = i < n || !c->last_page;

		list_end(c, more);
		return;
	}
	if (c->last_page) {
		list_end(c, false);
		return;
	}
	progress_show(c);
	if ((rc = list_page(c)) < 0)
		call_failed(c, "queue list", rc);
	else
		ctl_wait(c);
}

static void
on_list(void *arg, int status, uint64_t total, char (*ids)[QID_SIZE], size_t n,
    const struct queue_cursor *next)
{
	struct ctl *c = arg;
	const char **v;
	int rc;

	if (c->finishing)
		return;
	if (status < 0) {
		call_failed(c, "queue list", status);
		return;
	}
	c->total = total;
	if (c->offset == 0)
		c->progress = total > LIST_PROGRESS_MIN && isatty(STDERR_FILENO);
	if (n == 0) {
		list_end(c, false);
		return;
	}
	c->offset += n;
	c->cursor = *next;
	c->last_page = n < LIST_PAGE;
	v = xcalloc(n, sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = ids[i];
	rc = queue_fetch(c->q, v, n, on_list_fetched, c);
	free(v);
	if (rc < 0)
		call_failed(c, "queue list", rc);
	else
		ctl_wait(c);
}

static int
run_list(struct ctl *c)
{
	printf("%-16s  %-19s  %9s  %-*s  %5s  %-*s  %s\n", "ID", "ARRIVAL (UTC)", "SIZE",
	    LIST_SENDER_W, "SENDER", "RCPTS", LIST_STATE_W, "STATE", "DOMAINS");
	return list_page(c);
}

/* --- queue show -------------------------------------------------------------------- */

static const char *
notify_str(unsigned notify, char *dst, size_t size)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ NOTIFY_NEVER, "NEVER" }, { NOTIFY_SUCCESS, "SUCCESS" },
		{ NOTIFY_FAILURE, "FAILURE" }, { NOTIFY_DELAY, "DELAY" },
	};
	size_t off = 0;

	dst[0] = '\0';
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		int n;

		if (!(notify & names[i].bit))
			continue;
		n = snprintf(dst + off, size - off, "%s%s", off ? "," : "", names[i].name);
		if (n < 0 || (size_t)n >= size - off)
			break;
		off += (size_t)n;
	}
	return dst;
}

static void
show_rcpt(struct ctl *c, const struct env_rcpt *er, const struct rcpt_status *rs)
{
	char t[64], nb[64];

	printf("\nrecipient <%s>\n", esc(c, er->addr, 0));
	if (er->orcpt != NULL)
		printf("  orcpt          %s\n", esc(c, er->orcpt, 0));
	if (er->notify != 0)
		printf("  notify         %s\n", notify_str(er->notify, nb, sizeof nb));
	if (rs == NULL) {
		printf("  state          unknown (no delivery state stored for this domain)\n");
		return;
	}
	printf("  state          %s\n", rcpt_state_name(rs->state));
	printf("  attempts       %" PRIu32 "\n", rs->attempts);
	printf("  last change    %s\n", rs->updated_ms ? fmt_time(t, sizeof t, rs->updated_ms) : "never");
	if (rs->state == RCPT_DEFERRED)
		printf("  next attempt   %s\n", rs->next_ms ? fmt_when(t, sizeof t, rs->next_ms, c->now) : "now");
	printf("  last reply     %s\n", rs->reply != NULL ? esc(c, rs->reply, 0) : "(none)");
}

static void
show_job(struct ctl *c, const struct queue_info *info, const struct queue_jobinfo *ji)
{
	char t[64];
	bool final = true;

	for (size_t k = 0; k < ji->st.n; k++)
		if (!rcpt_state_final(ji->st.r[k].state))
			final = false;
	printf("  %s (%zu %s): ", esc(c, ji->st.domain, 0), ji->st.n,
	    plural(ji->st.n, "recipient", "recipients"));
	if (ji->leased && ji->lease_until_ms > c->now)
		printf("leased to a worker until %s\n",
		    fmt_when(t, sizeof t, ji->lease_until_ms, c->now));
	else if (ji->leased)
		printf("lease expired at %s; the next claim returns it to the queue\n",
		    fmt_time(t, sizeof t, ji->lease_until_ms));
	else if (ji->queued && ji->due_ms > c->now)
		printf("queued, due %s\n", fmt_when(t, sizeof t, ji->due_ms, c->now));
	else if (ji->queued)
		printf("queued, due now\n");
	else if (final)
		printf("finished (every recipient final)\n");
	else if (info->corrupt)
		printf("not queued (the message is quarantined)\n");
	else
		printf("not queued\n");
}

static void
show_info(struct ctl *c, const struct queue_info *info)
{
	const struct envelope *e = &info->env;
	const struct rcpt_status **st;
	char t[64], t2[64];

	printf("id             %s\n", info->id);
	if (info->corrupt) {
		printf("state          corrupt\n");
		printf("reason         %s\n", info->why[0] ? esc(c, info->why, 0) : "(none recorded)");
		if (strcmp(info->state, "corrupt") != 0)
			printf("note           not quarantined yet (stored state \"%s\"): the next worker to claim it will\n",
			    esc(c, info->state, 16));
	} else if (strcmp(info->state, "done") == 0) {
		printf("state          done at %s, kept until %s\n",
		    fmt_time(t, sizeof t, info->done_ms),
		    fmt_when(t2, sizeof t2, info->done_ms + c->cfg.queue.retention_ms, c->now));
	} else {
		printf("state          %s\n", esc(c, info->state, 16));
	}
	if (e->id[0] == '\0') {
		/* Only what is readable: the id's time and the stored sizes. */
		printf("arrival        %s (from the id; envelope unreadable)\n",
		    fmt_time(t, sizeof t, qid_time(info->id)));
		printf("header         %" PRIu64 " bytes\n", info->head_len);
		printf("body           %" PRIu64 " bytes\n", info->body_len);
		return;
	}
	printf("stream         %s\n", stream_name(e->stream));
	printf("sender         <%s>\n", esc(c, e->sender, 0));
	printf("user           %s\n", e->user && e->user[0] ? esc(c, e->user, 0) : "-");
	printf("client         %s\n", e->client && e->client[0] ? esc(c, e->client, 0) : "-");
	printf("helo           %s\n", e->helo && e->helo[0] ? esc(c, e->helo, 0) : "-");
	printf("arrival        %s\n", fmt_time(t, sizeof t, e->arrival_ms));
	printf("size           %" PRIu64 " bytes\n", e->size);
	if (e->envid != NULL)
		printf("envid          %s\n", esc(c, e->envid, 0));
	if (e->ret != RET_UNSET)
		printf("ret            %s\n", e->ret == RET_FULL ? "FULL" : "HDRS");
	if (e->flags != 0)
		printf("flags          %s%s%s\n", e->flags & ENV_F_SMTPUTF8 ? "SMTPUTF8" : "",
		    (e->flags & ENV_F_SMTPUTF8) && (e->flags & ENV_F_8BITMIME) ? " " : "",
		    e->flags & ENV_F_8BITMIME ? "8BITMIME" : "");
	printf("header         %" PRIu64 " bytes\n", info->head_len);
	if (strcmp(info->state, "done") == 0 && info->body_len == 0)
		printf("body           removed (the message is done)\n");
	else
		printf("body           %" PRIu64 " bytes\n", info->body_len);
	printf("recipients     %zu\n", e->nrcpt);

	/* Each recipient's state, found through its job (index checked on decode). */
	st = xcalloc(e->nrcpt ? e->nrcpt : 1, sizeof *st);
	for (size_t j = 0; j < info->njobs; j++)
		for (size_t k = 0; k < info->jobs[j].st.n; k++)
			if (info->jobs[j].st.r[k].idx < e->nrcpt)
				st[info->jobs[j].st.r[k].idx] = &info->jobs[j].st.r[k];
	for (size_t i = 0; i < e->nrcpt; i++)
		show_rcpt(c, &e->rcpt[i], st[i]);
	free(st);
	printf("\ndeliveries by domain\n");
	if (info->njobs == 0)
		printf("  (none readable)\n");
	for (size_t j = 0; j < info->njobs; j++)
		show_job(c, info, &info->jobs[j]);
}

static void
on_show(void *arg, int status, struct queue_info *infos, size_t n)
{
	struct ctl *c = arg;

	if (c->finishing)
		return;
	if (status < 0) {
		call_failed(c, "queue show", status);
		return;
	}
	if (n != 1 || !infos[0].exists) {
		no_such_message(c, c->id);
		return;
	}
	show_info(c, &infos[0]);
	ctl_finish(c, CTL_OK);
}

static int
run_show(struct ctl *c)
{
	const char *id = c->id;

	return queue_fetch(c->q, &id, 1, on_show, c);
}

/* --- queue retry, flush, delete ----------------------------------------------------- */

/* A retry found no queued message: say whether it is unknown, done or corrupt. */
static void
on_retry_why(void *arg, int status, struct queue_info *infos, size_t n)
{
	struct ctl *c = arg;

	if (c->finishing)
		return;
	if (status < 0 || n != 1 || !infos[0].exists) {
		no_such_message(c, c->id);
		return;
	}
	if (infos[0].corrupt) {
		fprintf(stderr, "kurierctl: %s is corrupt (%s): it cannot be retried; kurierctl queue show %s says what is readable\n",
		    c->id, esc(c, infos[0].why, 200), c->id);
		ctl_finish(c, CTL_FAIL);
	} else if (strcmp(infos[0].state, "done") == 0) {
		fprintf(stderr, "kurierctl: %s is done: every recipient is final, nothing to retry (kurierctl queue show %s)\n",
		    c->id, c->id);
		ctl_finish(c, CTL_FAIL);
	} else {
		no_such_message(c, c->id);
	}
}

static void
on_retry(void *arg, int status, uint64_t n)
{
	struct ctl *c = arg;
	const char *id = c->id;
	char what[32];

	if (c->finishing)
		return;
	if (status == -ENOENT && !c->all) {
		if (queue_fetch(c->q, &id, 1, on_retry_why, c) < 0)
			no_such_message(c, c->id);
		else
			ctl_wait(c);
		return;
	}
	if (status < 0) {
		call_failed(c, cmd_name(c, what, sizeof what), status);
		return;
	}
	if (c->all)
		printf("%" PRIu64 " %s due now\n", n, plural(n, "delivery", "deliveries"));
	else
		printf("%s: %" PRIu64 " %s due now\n", c->id, n, plural(n, "delivery", "deliveries"));
	ctl_finish(c, CTL_OK);
}

static int
run_retry(struct ctl *c)
{
	return queue_retry(c->q, c->all ? NULL : c->id, on_retry, c);
}

static void
on_delete(void *arg, int status)
{
	struct ctl *c = arg;

	if (c->finishing)
		return;
	if (status == -ENOENT) {
		no_such_message(c, c->id);
		return;
	}
	if (status < 0) {
		call_failed(c, "queue delete", status);
		return;
	}
	printf("%s: deleted\n", c->id);
	ctl_finish(c, CTL_OK);
}

static int
run_delete(struct ctl *c)
{
	return queue_delete(c->q, c->id, on_delete, c);
}

/* --- queue stats ------------------------------------------------------------------- */

static uint64_t
dest_work(const struct queue_dest_stats *d)
{
	return d->due + d->later + d->inflight;
}

static int
dest_cmp(const void *a, const void *b)
{
	const struct queue_dest_stats *x = *(const struct queue_dest_stats *const *)a;
	const struct queue_dest_stats *y = *(const struct queue_dest_stats *const *)b;
	uint64_t wx = dest_work(x), wy = dest_work(y);

	if (wx != wy)
		return wx > wy ? -1 : 1;
	if (x->stream != y->stream)
		return x->stream < y->stream ? -1 : 1;
	return strcmp(x->domain, y->domain);
}

static const char *
dest_stream(char code)
{
	switch (code) {
	case 't':
		return "transactional";
	case 'b':
		return "broadcast";
	default:
		return "-";
	}
}

static void
stats_print(struct ctl *c, const struct queue_stats *st)
{
	const struct queue_dest_stats **d;
	char keep[32], done[48];
	uint64_t maxv = 0;
	int w, dw = 6, nw[3] = { 7, 8, 9 };
	const struct {
		const char *section;  /* printed before the row */
		const char *name;
		uint64_t v;
	} rows[] = {
		{ "messages", "active", st->active },
		{ NULL, done, st->done },
		{ NULL, "corrupt", st->corrupt },
		{ NULL, "deliveries in flight", st->leased },
		{ "\ntotals since the queue was created", "enqueued", st->enqueued },
		{ NULL, "recipients", st->recipients },
		{ NULL, "delivered", st->delivered },
		{ NULL, "deferred attempts", st->deferred },
		{ NULL, "bounced", st->bounced },
		{ NULL, "suppressed", st->suppressed },
		{ NULL, "expired", st->expired },
		{ NULL, "deleted", st->deleted },
		{ NULL, "quarantined", st->quarantined },
	};

	snprintf(done, sizeof done, "done (kept %s)",
	    str_duration(keep, sizeof keep, c->cfg.queue.retention_ms));
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (rows[i].v > maxv)
			maxv = rows[i].v;
	w = digits(maxv);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		if (rows[i].section != NULL)
			printf("%s\n", rows[i].section);
		printf("  %-22s %*" PRIu64 "\n", rows[i].name, w, rows[i].v);
	}

	/* Destinations, most work first; column widths from the values. */
	d = xcalloc(st->ndest ? st->ndest : 1, sizeof *d);
	for (size_t i = 0; i < st->ndest; i++) {
		int dl = (int)strlen(esc(c, st->dest[i].domain, STATS_DOMAIN_W));

		d[i] = &st->dest[i];
		if (dl > dw)
			dw = dl;
		if (digits(d[i]->due) > nw[0])
			nw[0] = digits(d[i]->due);
		if (digits(d[i]->later) > nw[1])
			nw[1] = digits(d[i]->later);
		if (digits(d[i]->inflight) > nw[2])
			nw[2] = digits(d[i]->inflight);
	}
	qsort(d, st->ndest, sizeof *d, dest_cmp);
	printf("\ndestinations\n");
	if (st->ndest == 0)
		printf("  (none: nothing queued or in flight)\n");
	else
		printf("  %-*s  %-13s  %*s  %*s  %*s\n", dw, "DOMAIN", "STREAM", nw[0], "DUE NOW",
		    nw[1], "DEFERRED", nw[2], "IN FLIGHT");
	for (size_t i = 0; i < st->ndest; i++)
		printf("  %-*s  %-13s  %*" PRIu64 "  %*" PRIu64 "  %*" PRIu64 "\n", dw,
		    esc(c, d[i]->domain, STATS_DOMAIN_W), dest_stream(d[i]->stream),
		    nw[0], d[i]->due, nw[1], d[i]->later, nw[2], d[i]->inflight);
	free(d);
}

/* The refusals counted by rule in Redis (every node, since the data was made). */
static void
on_refusals(void *arg, int status, const struct policy_count *cnt, size_t n)
{
	struct ctl *c = arg;
	int rw = 4, nw = 1;

	if (c->finishing)
		return;
	if (status < 0) {
		call_failed(c, "queue stats", status);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(esc(c, cnt[i].rule, 0));

		if (l > rw)
			rw = l;
		if (digits(cnt[i].n) > nw)
			nw = digits(cnt[i].n);
	}
	printf("\npolicy refusals by rule\n");
	if (n == 0)
		printf("  (none)\n");
	for (size_t i = 0; i < n; i++)
		printf("  %-*s  %*" PRIu64 "\n", rw, esc(c, cnt[i].rule, 0), nw, cnt[i].n);
	ctl_finish(c, CTL_OK);
}

/*
 * throttle_state - "suspended until 2026-11-22 13:54:00 (in 4m30s)", or
 * "resumed at 2026-11-22 13:54:00" once the suspension has ended (the
 * level is remembered until backoff_max later).
 */
static const char *
throttle_state(const struct ctl *c, const struct policy_throttle *t, char *dst,
    size_t size)
{
	char tm[32], span[32];

	if (t->until_ms > c->now)
		snprintf(dst, size, "suspended until %s (in %s)",
		    fmt_time(tm, sizeof tm, t->until_ms),
		    fmt_span(span, sizeof span, t->until_ms - c->now));
	else
		snprintf(dst, size, "resumed at %s", fmt_time(tm, sizeof tm, t->until_ms));
	return dst;
}

/*
 * The throttled destination groups: suspended ones and those whose
 * suspension ended but whose level is still remembered.
 */
static void
on_throttles(void *arg, int status, const struct policy_throttle *t, size_t n)
{
	struct ctl *c = arg;
	char when[96];
	int gw = 5, sw = 11, rc;

	if (c->finishing)
		return;
	if (status < 0) {
		call_failed(c, "queue stats", status);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(esc(c, t[i].group, STATS_DOMAIN_W));

		if (l > gw)
			gw = l;
	}
	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(throttle_state(c, &t[i], when, sizeof when));

		if (l > sw)
			sw = l;
	}
	printf("\nthrottled destinations\n");
	if (n == 0)
		printf("  (none)\n");
	else
		printf("  %-*s  %5s  %-*s  %s\n", gw, "GROUP", "LEVEL", sw, "STATE (UTC)",
		    "REPLY");
	for (size_t i = 0; i < n; i++)
		printf("  %-*s  %5u  %-*s  %s\n", gw, esc(c, t[i].group, STATS_DOMAIN_W),
		    t[i].level, sw, throttle_state(c, &t[i], when, sizeof when),
		    t[i].reply[0] ? esc(c, t[i].reply, 0) : "-");
	fflush(stdout);
	if ((rc = policy_refusal_totals(c->p, on_refusals, c)) < 0)
		call_failed(c, "queue stats", rc);
	else
		ctl_wait(c);
}

static void
on_stats(void *arg, int status, const struct queue_stats *st)
{
	struct ctl *c = arg;
	int rc;

	if (c->finishing)
		return;
	if (status < 0) {
		call_failed(c, "queue stats", status);
		return;
	}
	stats_print(c, st);
	fflush(stdout);
	if ((rc = policy_throttle_list(c->p, on_throttles, c)) < 0)
		call_failed(c, "queue stats", rc);
	else
		ctl_wait(c);
}

static int
run_stats(struct ctl *c)
{
	return queue_stats(c->q, on_stats, c);
}

/* --- users ------------------------------------------------------------------------- */

/* The terminal's settings while a prompt has echo off, for on_prompt_signal(). */
static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;

/* A signal during the prompt: give the terminal its echo back, then die of it. */
static void
on_prompt_signal(int sig)
{
	if (tty_changed)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * read_line - one line from fd into buf[size], read a byte at a time so
 * that no copy stays behind in a stdio buffer; the '\n' and a '\r'
 * before it are dropped.  The length (bytes, NUL bytes included), or
 * -EMSGSIZE when the line does not fit (it is still read to its end),
 * or -errno.
 */
static ssize_t
read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	bool toolong = false;
	char ch = 0;

	for (;;) {
		ssize_t r = read(fd, &ch, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0 || ch == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = ch;
		else
			toolong = true;
	}
	explicit_bzero(&ch, sizeof ch);
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return toolong ? -EMSGSIZE : (ssize_t)n;
}

/* prompt_password - text on stderr, then a line from the terminal without echo. */
static ssize_t
prompt_password(const char *text, char *buf, size_t size)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
	struct sigaction sa, old[sizeof sigs / sizeof sigs[0]];
	struct termios t;
	ssize_t n;

	if (tcgetattr(STDIN_FILENO, &saved_tty) != 0)
		return -errno;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_prompt_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, &old[i]);
	t = saved_tty;
	t.c_lflag &= ~(tcflag_t)ECHO;
	t.c_lflag |= ECHONL;   /* the Enter still moves to the next line */
	tty_changed = 1;
	/* Echo off before the prompt shows, so no typed byte is ever echoed. */
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) != 0) {
		n = -errno;
	} else {
		fputs(text, stderr);
		fflush(stderr);
		n = read_line(STDIN_FILENO, buf, size);
	}
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	tty_changed = 0;
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &old[i], NULL);
	return n;
}

/* Characters, not bytes: UTF-8 continuation bytes are not counted. */
static size_t
utf8_chars(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return n;
}

/*
 * read_password - the new password for user add/passwd into c->password:
 * one line from stdin, or at a terminal asked twice without echo.
 * Refuses an empty one, one shorter than AUTH_PASSWORD_MIN characters,
 * one too long or holding a NUL byte.  CTL_OK or CTL_FAIL (said why).
 */
static int
read_password(struct ctl *c)
{
	char again[sizeof c->password], text[128];
	ssize_t n, m;
	size_t chars;

	if (isatty(STDIN_FILENO)) {
		snprintf(text, sizeof text, "New password for %s: ", c->user);
		n = prompt_password(text, c->password, sizeof c->password);
		if (n >= 0) {
			m = prompt_password("Again: ", again, sizeof again);
			if (m < 0)
				n = m;
			else if (m != n || memcmp(again, c->password, (size_t)n) != 0)
				n = -EBADMSG;
			explicit_bzero(again, sizeof again);
		}
	} else {
		n = read_line(STDIN_FILENO, c->password, sizeof c->password);
	}
	if (n == -EBADMSG) {
		fprintf(stderr, "kurierctl: the two passwords differ: nothing changed, try again\n");
		return CTL_FAIL;
	}
	if (n == -EMSGSIZE || n > AUTH_PASSWORD_MAX) {
		fprintf(stderr, "kurierctl: the password is too long: at most %d bytes\n",
		    AUTH_PASSWORD_MAX);
		return CTL_FAIL;
	}
	if (n < 0) {
		fprintf(stderr, "kurierctl: cannot read the password from stdin: %s\n",
		    strerror((int)-n));
		return CTL_FAIL;
	}
	if (n == 0) {
		fprintf(stderr, "kurierctl: empty password refused: give it as one line on stdin (at least %d characters)\n",
		    AUTH_PASSWORD_MIN);
		return CTL_FAIL;
	}
	if (memchr(c->password, '\0', (size_t)n) != NULL) {
		fprintf(stderr, "kurierctl: the password holds a NUL byte: refused\n");
		return CTL_FAIL;
	}
	chars = utf8_chars(c->password, (size_t)n);
	if (chars < AUTH_PASSWORD_MIN) {
		fprintf(stderr, "kurierctl: password too short (%zu %s): use at least %d characters\n",
		    chars, plural(chars, "character", "characters"), AUTH_PASSWORD_MIN);
		return CTL_FAIL;
	}
	c->pwlen = (size_t)n;
	return CTL_OK;
}

/* A NAME argument: a valid user name, else say what one is (exit 1). */
static int
check_user_arg(struct ctl *c, const char *arg)
{
	if (!auth_name_valid(arg)) {
		fprintf(stderr, "kurierctl: \"%s\" is not a user name (1-%d characters of A-Z a-z 0-9 . _ @ + -)\n",
		    esc(c, arg, 80), AUTH_NAME_MAX);
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
	return usage_error(c, "unexpected argument", arg, "give one user NAME");
}

static int
missing_user_name(struct ctl *c)
{
	char what[64];

	snprintf(what, sizeof what, "user %s needs a user NAME", c->cmd->name);
	return usage_error(c, what, NULL, "the names are in the first column of kurierctl user list");
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
		return usage_error(c, "not a domain name in --domains", bad,
		    "give host names separated by commas, e.g. --domains a.example,b.example");
	if (rc < 0)
		return usage_error(c, "--domains is too long", NULL,
		    "the stored list holds at most 1023 characters");
	if (c->domains[0] == '\0')
		return usage_error(c, "--domains is empty", NULL,
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
				    esc(c, v, 80), eg);
				return CTL_USAGE;
			}
			if (config_parse_rates(entry, &r, &ewhy) < 0 || r.n == 0) {
				if (r.n == 0 && ewhy[0] == '\0')
					ewhy = "\"none\" cannot be one entry of a list";
				fprintf(stderr, "kurierctl: bad %s entry \"%s\" in \"%s\": %s (%s)\n",
				    opt, esc(c, entry, 40), esc(c, v, 80), ewhy, eg);
				return CTL_USAGE;
			}
		}
	}
	fprintf(stderr, "kurierctl: bad %s \"%s\": %s (%s)\n", opt, esc(c, v, 80), why, eg);
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
		return usage_error(c, "not a domain name in --rcpt-domains", bad,
		    "give host names separated by commas, e.g. --rcpt-domains a.example,b.example, or any");
	if (rc < 0)
		return usage_error(c, "--rcpt-domains is too long", NULL,
		    "the stored list holds at most 1023 characters");
	if (c->rcpt_domains[0] == '\0')
		return usage_error(c, "--rcpt-domains is empty", NULL,
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
		if ((v = opt_value("--domains", argc, argv, &i, &bad)) != NULL) {
			if ((rc = check_domains(c, v)) != CTL_OK)
				return rc;
		} else if (bad) {
			return usage_error(c, "--domains needs a value", NULL, hint);
		} else if (allow_set && (v = opt_value("--rate", argc, argv, &i, &bad)) != NULL) {
			if ((rc = check_rate(c, "--rate", v, c->rate, sizeof c->rate)) != CTL_OK)
				return rc;
			c->set_rate = true;
		} else if (bad) {
			return usage_error(c, "--rate needs a value", NULL,
			    "e.g. --rate 500/h,20/min, --rate default or --rate none");
		} else if (allow_set && (v = opt_value("--rcpt-rate", argc, argv, &i, &bad)) != NULL) {
			if ((rc = check_rate(c, "--rcpt-rate", v, c->rcpt_rate,
			    sizeof c->rcpt_rate)) != CTL_OK)
				return rc;
			c->set_rcpt_rate = true;
		} else if (bad) {
			return usage_error(c, "--rcpt-rate needs a value", NULL,
			    "e.g. --rcpt-rate 5000/d, --rcpt-rate default or --rcpt-rate none");
		} else if (allow_set &&
		    (v = opt_value("--rcpt-domains", argc, argv, &i, &bad)) != NULL) {
			if ((rc = check_rcpt_domains(c, v)) != CTL_OK)
				return rc;
		} else if (bad) {
			return usage_error(c, "--rcpt-domains needs a value", NULL,
			    "e.g. --rcpt-domains a.example,b.example, or --rcpt-domains any");
		} else if (allow_set && strcmp(argv[i], "--enable") == 0) {
			if (c->enable == AUTH_ENABLE_OFF)
				return usage_error(c, "--enable and --disable", NULL, "give one of them");
			c->enable = AUTH_ENABLE_ON;
		} else if (allow_set && strcmp(argv[i], "--disable") == 0) {
			if (c->enable == AUTH_ENABLE_ON)
				return usage_error(c, "--enable and --disable", NULL, "give one of them");
			c->enable = AUTH_ENABLE_OFF;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			return usage_error(c, "unknown option", argv[i], hint);
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

static int
check_user_add(struct ctl *c, int argc, char **argv)
{
	int rc;

	if ((rc = check_user_opts(c, argc, argv, false)) != CTL_OK)
		return rc;
	if (!c->set_domains)
		return usage_error(c, "user add needs --domains LIST", NULL,
		    "the domains the user may send as, e.g. --domains a.example,b.example");
	return CTL_OK;
}

static int
check_user_set(struct ctl *c, int argc, char **argv)
{
	int rc;

	if ((rc = check_user_opts(c, argc, argv, true)) != CTL_OK)
		return rc;
	if (!c->set_domains && c->enable == AUTH_ENABLE_KEEP && !c->set_rate &&
	    !c->set_rcpt_rate && !c->set_rcpt_domains)
		return usage_error(c, "user set needs a change", NULL,
		    "give --domains LIST, --enable, --disable, --rate, --rcpt-rate or --rcpt-domains");
	return CTL_OK;
}

/* user passwd NAME, user del NAME. */
static int
check_user_name(struct ctl *c, int argc, char **argv)
{
	if (argc == 0)
		return missing_user_name(c);
	if (argv[0][0] == '-')
		return usage_error(c, "unknown option", argv[0], "give one user NAME");
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
		call_failed(c, what, status);
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

static int
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

static int
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

static int
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
		call_failed(c, "user set", rc);
	else
		ctl_wait(c);
}

static int
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
		call_failed(c, "user list", status);
		return;
	}
	rows = xcalloc(n ? n : 1, sizeof *rows);
	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(esc(c, users[i].name, 0));

		if (l > w)
			w = l;
		l = (int)strlen(users[i].domains[0] ? esc(c, users[i].domains, 0) : "-");
		if (l > dw)
			dw = l;
		user_rate(users[i].rate, &c->cfg.policy.rate, rows[i].rate, sizeof rows[i].rate);
		user_rate(users[i].rcpt_rate, &c->cfg.policy.rcpt_rate, rows[i].rcpt_rate,
		    sizeof rows[i].rcpt_rate);
		l = (int)strlen(esc(c, rows[i].rate, 0));
		if (l > rw)
			rw = l;
		l = (int)strlen(esc(c, rows[i].rcpt_rate, 0));
		if (l > qw)
			qw = l;
	}
	printf("%-*s  %-7s  %-*s  %-*s  %-*s  %s\n", w, "NAME", "ENABLED", dw, "DOMAINS",
	    rw, "RATE", qw, "RCPT RATE", "RCPT DOMAINS");
	for (size_t i = 0; i < n; i++) {
		/* Two printf()s: at most NESC esc() results are alive at once. */
		printf("%-*s  %-7s  %-*s  ", w, esc(c, users[i].name, 0),
		    users[i].enabled ? "yes" : "no",
		    dw, users[i].domains[0] ? esc(c, users[i].domains, 0) : "-");
		printf("%-*s  %-*s  %s\n", rw, esc(c, rows[i].rate, 0), qw,
		    esc(c, rows[i].rcpt_rate, 0),
		    users[i].rcpt_domains[0] ? esc(c, users[i].rcpt_domains, 0) : "any");
	}
	printf("%zu %s\n", n, plural(n, "user", "users"));
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
	printf("name           %s\n", esc(c, u->name, 0));
	printf("enabled        %s\n", u->enabled ? "yes" : "no (cannot log in)");
	printf("domains        %s\n", u->domains[0] ? esc(c, u->domains, 0) : "- (may send as none)");
	printf("rate           %s\n", esc(c, user_rate(u->rate, &c->cfg.policy.rate, r,
	    sizeof r), 0));
	printf("rcpt rate      %s\n", esc(c, user_rate(u->rcpt_rate, &c->cfg.policy.rcpt_rate,
	    r, sizeof r), 0));
	printf("rcpt domains   %s\n", u->rcpt_domains[0] ? esc(c, u->rcpt_domains, 0) : "any");
	printf("created        %s%s\n", u->created_ms ? fmt_time(t, sizeof t, u->created_ms) : "-",
	    u->created_ms ? " UTC" : "");
	printf("changed        %s%s\n", u->changed_ms ? fmt_time(t, sizeof t, u->changed_ms) : "-",
	    u->changed_ms ? " UTC" : "");
	ctl_finish(c, CTL_OK);
}

static int
run_user_show(struct ctl *c)
{
	return auth_user_info(c->a, c->user, on_user_show, c);
}

static int
run_user_list(struct ctl *c)
{
	return auth_user_list(c->a, on_user_list, c);
}

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
		return usage_error(c, "empty ADDRESS", NULL, "give local@domain, e.g. user@example.net");
	if (len > MAILADDR_PATH_MAX)
		return usage_error(c, "ADDRESS too long", arg,
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
		    esc(c, arg, 80), why);
		return CTL_USAGE;
	}
	if (mailaddr_format(&a, c->addr, sizeof c->addr) < 0)
		return usage_error(c, "ADDRESS too long", arg,
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
		return usage_error(c, "not a domain name in --domain", bad,
		    "give one sender domain, e.g. --domain shop.example, or * for global");
	if (rc < 0 || c->scope[0] == '\0' || strchr(c->scope, ' ') != NULL)
		return usage_error(c, "bad --domain", v,
		    "give one sender domain, e.g. --domain shop.example, or * for global");
	return CTL_OK;
}

/*
 * suppression list [--domain D]; add ADDRESS [--domain D] [--reason R]
 * [--note TEXT]; del ADDRESS [--domain D]; check ADDRESS [--domain D].
 */
static int
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
		if ((v = opt_value("--domain", argc, argv, &i, &bad)) != NULL) {
			if ((rc = check_scope(c, v)) != CTL_OK)
				return rc;
		} else if (bad) {
			return usage_error(c, "--domain needs a value", NULL, hint);
		} else if (is_add && (v = opt_value("--reason", argc, argv, &i, &bad)) != NULL) {
			if (policy_sup_reason_parse(v, &c->reason) < 0)
				return usage_error(c, "unknown --reason", v,
				    "use hard-bounce, complaint or manual");
		} else if (bad) {
			return usage_error(c, "--reason needs a value", NULL,
			    "use hard-bounce, complaint or manual");
		} else if (is_add && (v = opt_value("--note", argc, argv, &i, &bad)) != NULL) {
			if (strlen(v) > SUP_NOTE_MAX)
				return usage_error(c, "--note is too long", NULL,
				    "at most 255 bytes");
			for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++)
				if (*p < 0x20 || *p == 0x7f)
					return usage_error(c, "--note holds a control character", NULL,
					    "give one line of text");
			if (!mailaddr_utf8_valid(v, strlen(v)))
				return usage_error(c, "--note is not UTF-8", NULL, "give one line of text");
			c->note = v;
		} else if (bad) {
			return usage_error(c, "--note needs a value", NULL, hint);
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			return usage_error(c, "unknown option", argv[i], hint);
		} else if (is_list || addr != NULL) {
			return usage_error(c, "unexpected argument", argv[i], hint);
		} else {
			addr = argv[i];
		}
	}
	if (is_list)
		return CTL_OK;
	if (addr == NULL) {
		char what[64];

		snprintf(what, sizeof what, "suppression %s needs an ADDRESS", c->cmd->name);
		return usage_error(c, what, NULL, hint);
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
		int l = (int)strlen(esc(c, e[i].scope, 0));

		if (l > *sw)
			*sw = l;
		l = (int)strlen(esc(c, e[i].addr, 0));
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
	return e->text[0] ? esc(c, e->text, 0) : "-";
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
		call_failed(c, "suppression list", status);
		return;
	}
	if (c->sup_cursor[0] == '\0') {
		sup_widths(c, e, n, &c->sup_sw, &c->sup_aw);
		printf("%-*s  %-*s  %-11s  %-19s  %s\n", c->sup_sw, "SCOPE", c->sup_aw,
		    "ADDRESS", "REASON", "ADDED (UTC)", "TEXT");
	}
	for (size_t i = 0; i < n; i++)
		printf("%-*s  %-*s  %-11s  %-19s  %s\n", c->sup_sw, esc(c, e[i].scope, 0),
		    c->sup_aw, esc(c, e[i].addr, 0), policy_sup_reason_name(e[i].reason),
		    fmt_time(t, sizeof t, e[i].added_ms), sup_text(c, &e[i]));
	c->sup_rows += n;
	if (next[0] == '\0' || strcmp(next, "0") == 0) {
		printf("%" PRIu64 " %s\n", c->sup_rows, plural(c->sup_rows, "entry", "entries"));
		ctl_finish(c, CTL_OK);
		return;
	}
	fflush(stdout);
	str_copy(c->sup_cursor, next, sizeof c->sup_cursor);
	rc = policy_sup_page(c->p, c->has_scope ? c->scope : NULL, c->sup_cursor,
	    SUP_PAGE, on_sup_list, c);
	if (rc < 0) {
		call_failed(c, "suppression list", rc);
		return;
	}
	ctl_wait(c);
}

static int
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
		call_failed(c, "suppression add", status);
		return;
	}
	printf("%s: suppressed, scope %s, reason %s\n", c->addr,
	    scope_name(c->has_scope ? c->scope : "*"), policy_sup_reason_name(c->reason));
	ctl_finish(c, CTL_OK);
}

static int
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
		call_failed(c, "suppression del", status);
		return;
	}
	printf("%s: no longer suppressed in scope %s\n", c->addr, scope_name(scope));
	ctl_finish(c, CTL_OK);
}

static int
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
		call_failed(c, "suppression check", status);
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
	printf("%s: suppressed (%zu %s)\n", c->addr, n, plural(n, "entry", "entries"));
	printf("  %-*s  %-11s  %-19s  %s\n", sw, "SCOPE", "REASON", "ADDED (UTC)", "TEXT");
	for (size_t i = 0; i < n; i++)
		printf("  %-*s  %-11s  %-19s  %s\n", sw, esc(c, e[i].scope, 0),
		    policy_sup_reason_name(e[i].reason), fmt_time(t, sizeof t, e[i].added_ms),
		    sup_text(c, &e[i]));
	ctl_finish(c, CTL_OK);
}

static int
run_sup_check(struct ctl *c)
{
	return policy_sup_check(c->p, c->has_scope ? c->scope : NULL, c->addr, on_sup_check, c);
}

/* --- help -------------------------------------------------------------------------- */

static int
run_help(struct ctl *c)
{
	(void)c;
	usage(stdout);
	return CTL_OK;
}


/* --- main -------------------------------------------------------------------------- */

static const struct command *
find_command(const char *group, const char *name)
{
	for (const struct command *cmd = commands; cmd->name != NULL; cmd++) {
		if ((cmd->group == NULL) != (group == NULL))
			continue;
		if (group != NULL && strcmp(cmd->group, group) != 0)
			continue;
		if (strcmp(cmd->name, name) == 0)
			return cmd;
	}
	return NULL;
}

static bool
is_group(const char *s)
{
	for (const struct command *cmd = commands; cmd->name != NULL; cmd++)
		if (cmd->group != NULL && strcmp(cmd->group, s) == 0)
			return true;
	return false;
}

/* group_names - "list, show, retry, delete, flush or stats" for a group. */
static const char *
group_names(const char *group, char *dst, size_t size)
{
	size_t n = 0, i = 0, off = 0;

	for (const struct command *cmd = commands; cmd->name != NULL; cmd++)
		if (cmd->group != NULL && strcmp(cmd->group, group) == 0)
			n++;
	dst[0] = '\0';
	for (const struct command *cmd = commands; cmd->name != NULL; cmd++) {
		int w;

		if (cmd->group == NULL || strcmp(cmd->group, group) != 0)
			continue;
		i++;
		w = snprintf(dst + off, size - off, "%s%s", i == 1 ? "" : i == n ? " or " : ", ",
		    cmd->name);
		if (w < 0 || (size_t)w >= size - off)
			break;
		off += (size_t)w;
	}
	return dst;
}

static int
load_config(struct ctl *c)
{
	char err[CONFIG_ERR_MAX];
	int rc;

	if ((rc = config_load(&c->cfg, c->conf_path, err, sizeof err)) == 0)
		return CTL_OK;
	if (rc == -ENOENT)
		fprintf(stderr, "kurierctl: %s (name the config with -c FILE)\n", err);
	else
		fprintf(stderr, "kurierctl: %s\n", err);
	return CTL_FAIL;
}

/*
 * Take "-c FILE" (or "-cFILE") out of the arguments wherever it is, and
 * note -h/--help; what remains is COMMAND [ARGS].  CTL_OK or CTL_USAGE.
 */
static int
take_options(struct ctl *c, int argc, char **argv, char **rest, int *nrest, bool *help)
{
	*nrest = 0;
	*help = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0) {
			if (i + 1 >= argc || argv[i + 1][0] == '\0')
				return usage_error(c, "-c needs a FILE", NULL,
				    "kurierctl -c /etc/kurier/kurier.conf COMMAND");
			c->conf_path = argv[++i];
		} else if (strncmp(argv[i], "-c", 2) == 0) {
			c->conf_path = argv[i] + 2;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			*help = true;
		} else {
			rest[(*nrest)++] = argv[i];
		}
	}
	return CTL_OK;
}

int
main(int argc, char **argv)
{
	struct ctl c;
	char **rest;
	char names[128], hint[192], what[64];
	int nrest, used, status;
	bool help;

	memset(&c, 0, sizeof c);
	c.conf_path = CONFIG_DEFAULT_PATH;
	rest = xcalloc((size_t)argc + 1, sizeof *rest);
	status = take_options(&c, argc, argv, rest, &nrest, &help);
	if (status == CTL_OK && help) {
		usage(stdout);
		goto out;
	}
	if (status != CTL_OK)
		goto out;
	if (nrest == 0) {
		status = usage_error(&c, "no command given", NULL,
		    "see kurierctl help (e.g. kurierctl check, kurierctl queue list)");
		goto out;
	}
	if (rest[0][0] == '-') {
		status = usage_error(&c, "unknown option", rest[0], "see kurierctl help");
		goto out;
	}
	if (is_group(rest[0])) {
		group_names(rest[0], names, sizeof names);
		if (nrest < 2) {
			snprintf(hint, sizeof hint, "needs a subcommand: %s (see kurierctl help)", names);
			status = usage_error(&c, rest[0], NULL, hint);
			goto out;
		}
		c.cmd = find_command(rest[0], rest[1]);
		used = 2;
	} else {
		c.cmd = find_command(NULL, rest[0]);
		used = 1;
	}
	if (c.cmd == NULL && used == 2) {
		snprintf(what, sizeof what, "unknown %s command", rest[0]);
		snprintf(hint, sizeof hint, "use %s (see kurierctl help)", names);
		status = usage_error(&c, what, rest[1], hint);
		goto out;
	}
	if (c.cmd == NULL) {
		status = usage_error(&c, "unknown command", rest[0], "see kurierctl help");
		goto out;
	}
	if ((status = c.cmd->check(&c, nrest - used, rest + used)) != CTL_OK)
		goto out;
	if (c.cmd->run == run_help) {
		status = run_help(&c);
		goto out;
	}
	if ((status = load_config(&c)) != CTL_OK)
		goto out;
	if ((c.cmd->needs & NEED_PASSWORD) && (status = read_password(&c)) != CTL_OK)
		goto out;
	if (c.cmd->needs & (NEED_QUEUE | NEED_AUTH | NEED_POLICY))
		status = run_remote_command(&c);
	else
		status = c.cmd->run(&c);
out:
	explicit_bzero(c.password, sizeof c.password);
	config_free(&c.cfg);
	for (int i = 0; i < NESC; i++)
		buf_free(&c.esc[i]);
	free(rest);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "kurierctl: cannot write the output: %s\n", strerror(errno));
		if (status == CTL_OK)
			status = CTL_FAIL;
	}
	return status;
}
