/*
 * ctl - the harness under kurierctl's commands (cmd/kurierctl.c holds
 * the command table, options and help; cmd/kurierctl_*.c one command
 * group each).
 *
 * One struct ctl lives in main() for the whole run: it owns the
 * configuration, the event loop, its two timers, and the queue, user
 * store, policy and mailbox store connections a command needs (struct command needs).
 * ctl_run() opens them, waits at most [redis] connect_timeout for all of
 * them, starts the command's run() once all are up (from a state
 * callback, or for the policy module, which has none, from a short
 * polling timer), and returns when the command has called ctl_finish(),
 * which closes what is open, so that uv_loop_close() finds nothing open.
 * Each call a command sends must be answered within a reply timeout
 * (ctl_wait()).
 *
 * Passwords (user add, user passwd) are read from stdin, never from
 * argv, where any user could see them in ps(1): one line from a pipe, or
 * typed twice without echo at a terminal (ctl_read_password()).  Read
 * before connecting, kept in c->password, wiped by main() before exit.
 *
 * Exit status: CTL_OK 0 success; CTL_FAIL 1 failure (bad config, unknown
 * id, Redis not reachable or refusing); CTL_USAGE 2 usage error.  Errors
 * go to stderr as one "kurierctl: " line that says what to do.
 *
 * Everything stored that a client chose (addresses, replies, HELO names,
 * reasons) may hold any byte; it is printed through ctl_esc(), which
 * shows bytes outside printable ASCII as \xNN, so a message can never
 * drive the administrator's terminal.
 */
#ifndef KURIER_CMD_CTL_H
#define KURIER_CMD_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/mailaddr.h"
#include "mailbox/store.h"
#include "policy/auth.h"
#include "policy/policy.h"
#include "queue/qid.h"
#include "queue/queue.h"

enum {
	CTL_OK = 0,
	CTL_FAIL = 1,
	CTL_USAGE = 2,
};

#define DOMAIN_ARG_MAX 255     /* longest DOMAIN or --domain argument */
#define NESC 4                  /* ctl_esc() results alive at once */

/* What a command needs before it runs (struct command needs). */
enum {
	NEED_QUEUE = 1 << 0,    /* the queue's Redis connection */
	NEED_AUTH = 1 << 1,     /* the user store's Redis connection */
	NEED_PASSWORD = 1 << 2, /* a new password from stdin, read first */
	NEED_POLICY = 1 << 3,   /* the policy module's Redis connection */
	NEED_MAILBOX = 1 << 4,  /* the mailbox store's Redis connection */
	NO_CONFIG = 1 << 5,     /* runs without reading the configuration */
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
	 * Without NEED_QUEUE, NEED_AUTH, NEED_POLICY or NEED_MAILBOX: do it all, return the
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
	struct mbox_store *mb;  /* NEED_MAILBOX */
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
	bool has_bclass;        /* bounce list --class */
	enum policy_ret_class bclass;
	uint64_t since_ms;      /* bounce list --since: this long ago (0: all) */
	/* mailbox */
	const char *folder;     /* --folder, "INBOX" by default */
	uint32_t uid;           /* mailbox show UID */
	struct mbox_msgs *mbox_all; /* mailbox list: every message, heads read page by page */
	size_t mbox_next;       /* mailbox list: the next message whose head to read */
	uint64_t mbox_shown;
	int mbox_uw, mbox_sw;   /* mailbox list: UID and SIZE column widths */
	char **files;           /* bounce parse: FILE... (argv's) */
	int nfiles;
	bool json;              /* bounce parse --json */

	/* queue list paging. */
	struct queue_cursor cursor; /* where the next page starts */
	uint64_t offset;        /* ids scanned so far */
	bool last_page;         /* the set ended with the page in hand */
	uint64_t total;         /* size of the set, as last reported */
	uint64_t shown;
	bool progress;          /* stderr is a terminal and the set is large */
	int progress_w;         /* width of the progress text on screen, 0 = none */
};

/* --- output ---------------------------------------------------------------------- */

/*
 * ctl_esc - s made safe for a terminal: printable ASCII as it is, '\' as
 * "\\", every other byte as \xNN.  At most max characters (0: no limit);
 * a cut value ends in "...".  NULL reads as "".  The result lives in
 * c->esc and is valid until the NESC-th next call.
 */
const char *ctl_esc(struct ctl *c, const char *s, size_t max);

/* ctl_fmt_time - ms since the epoch as UTC "2026-11-22 13:54:00" in dst; dst. */
const char *ctl_fmt_time(char *dst, size_t size, uint64_t ms);

/* ctl_fmt_span - a duration as its two largest units: "45s", "4m30s", "2h5m", "3d4h"; dst. */
const char *ctl_fmt_span(char *dst, size_t size, uint64_t ms);

/* ctl_fmt_when - ctl_fmt_time(), and for a time after now also " (in 4m30s)"; dst. */
const char *ctl_fmt_when(char *dst, size_t size, uint64_t ms, uint64_t now);

/* ctl_plural - one when n is 1, else many. */
const char *ctl_plural(uint64_t n, const char *one, const char *many);

/* ctl_digits - how many decimal digits v has (1 for 0). */
int ctl_digits(uint64_t v);

/* --- arguments ------------------------------------------------------------------- */

/*
 * ctl_usage_error - print one line saying what is wrong (with arg,
 * escaped, if not NULL) and what to do (hint); returns CTL_USAGE.
 */
int ctl_usage_error(struct ctl *c, const char *what, const char *arg, const char *hint);

/* ctl_cmd_name - the running command's name ("queue list", "check") in dst; dst. */
const char *ctl_cmd_name(const struct ctl *c, char *dst, size_t size);

/* ctl_check_noargs - a command's check for commands without arguments. */
int ctl_check_noargs(struct ctl *c, int argc, char **argv);

/*
 * ctl_opt_value - the value of "--name VALUE" or "--name=VALUE" at
 * argv[*i] (advancing *i past a separate VALUE), or NULL when argv[*i]
 * is another option; *bad is set when --name has no VALUE.
 */
const char *ctl_opt_value(const char *name, int argc, char **argv, int *i, bool *bad);

/*
 * ctl_read_password - read the new password for NEED_PASSWORD commands
 * into c->password (c->pwlen): one line from stdin, or typed twice
 * without echo at a terminal; checks its length.  CTL_OK or CTL_FAIL
 * (message printed).
 */
int ctl_read_password(struct ctl *c);

/* --- configuration and Redis ----------------------------------------------------- */

/* ctl_load_config - load c->conf_path into c->cfg; CTL_OK, or CTL_FAIL (message printed). */
int ctl_load_config(struct ctl *c);

/*
 * ctl_run - run c->cmd, which needs Redis: open the connections it
 * needs, call its run() once all are up, run the loop until
 * ctl_finish().  The exit status.
 */
int ctl_run(struct ctl *c);

/*
 * ctl_finish - end the command with this exit status: closes the
 * connections and timers so that ctl_run() returns.  Later calls do
 * nothing.
 */
void ctl_finish(struct ctl *c, int status);

/* ctl_wait - after each call is sent: it must be answered within the reply timeout. */
void ctl_wait(struct ctl *c);

/*
 * ctl_call_failed - a call (what: "queue list", ...) failed with a
 * negative errno: say why and what to do, and ctl_finish() with CTL_FAIL.
 */
void ctl_call_failed(struct ctl *c, const char *what, int status);

#endif
