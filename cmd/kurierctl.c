/*
 * kurierctl - kurier's administration command line.
 *
 *   kurierctl [-c FILE] COMMAND [ARGS]
 *
 * The commands are a table (commands[]); each has a check, which reads
 * its arguments and touches nothing else, and a run.  "check" runs
 * without the network.  The queue commands open the queue, the user
 * commands the user store (policy/auth.h), the suppression commands and
 * queue stats the policy module (policy/policy.h).  This file holds the
 * table, the options, the help and main(); the harness that loads the
 * configuration, connects, times out and formats is cmd/ctl.c, and each
 * command group has a file of its own (cmd/kurierctl_int.h).
 *
 * Exit status: 0 success; 1 failure (bad config, unknown id, Redis not
 * reachable or refusing); 2 usage error.  Errors go to stderr as one
 * "kurierctl: " line that says what to do.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/ctl.h"
#include "cmd/kurierctl_int.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/xmalloc.h"

static int run_help(struct ctl *c);

/* Each is check (arguments only), then run; "help" lists them in this order. */
static const struct command commands[] = {
	{ NULL, "check", "", "validate the configuration and summarise it (no network)",
	    ctl_check_noargs, run_check, 0 },
	{ "user", "add", "NAME --domains LIST",
	    "add a user, who may send as the domains in LIST\n"
	    "(e.g. a.example,b.example); password from stdin", check_user_add, run_user_add,
	    NEED_AUTH | NEED_PASSWORD },
	{ "user", "passwd", "NAME", "set a new password, read from stdin", check_user_name,
	    run_user_passwd, NEED_AUTH | NEED_PASSWORD },
	{ "user", "del", "NAME", "remove a user", check_user_name, run_user_del, NEED_AUTH },
	{ "user", "list", "", "users: name, enabled, domains, rates, recipient domains",
	    ctl_check_noargs, run_user_list, NEED_AUTH },
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
	{ "suppression", "add", "ADDRESS [--domain D] [--reason hard-bounce|complaint|soft-bounce-limit|manual]\n"
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
	    ctl_check_noargs, run_stats, NEED_QUEUE | NEED_POLICY },
	{ "mailbox", "list", "USER [--folder F]",
	    "the messages of USER's INBOX (or folder F): UID, date, size,\n"
	    "flags, class, recipient and subject", check_mbox, run_mbox_list, NEED_MAILBOX },
	{ "mailbox", "show", "USER UID [--folder F]", "print one message as stored",
	    check_mbox, run_mbox_show, NEED_MAILBOX },
	{ "mailbox", "stats", "", "users, messages and bytes in the mailbox store, in all\n"
	    "and per user", ctl_check_noargs, run_mbox_stats, NEED_MAILBOX },
	{ "bounce", "parse", "[--json] FILE...",
	    "parse and classify returned messages (no Redis, no config):\n"
	    "type, and per recipient status, class (hard, soft, complaint,\n"
	    "auto-reply, none), reason, remote MTA and diagnostic; --json:\n"
	    "one JSON object per line per file", check_bounce_parse,
	    run_bounce_parse, NO_CONFIG },
	{ "bounce", "list", "[--user U] [--class C] [--since 7d]",
	    "the recipients whose returns came back to the inbound MX, newest\n"
	    "first: date, user, class (hard, soft, complaint, auto-reply,\n"
	    "none), reason, status, recipient, queue id; kept [mailbox]\n"
	    "retention", check_bounce_list, run_bounce_list, NEED_POLICY },
	{ NULL, "help", "", "this text", ctl_check_noargs, run_help, 0 },
	{ NULL, NULL, NULL, NULL, NULL, NULL, 0 },
};

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
				return ctl_usage_error(c, "-c needs a FILE", NULL,
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
		status = ctl_usage_error(&c, "no command given", NULL,
		    "see kurierctl help (e.g. kurierctl check, kurierctl queue list)");
		goto out;
	}
	if (rest[0][0] == '-') {
		status = ctl_usage_error(&c, "unknown option", rest[0], "see kurierctl help");
		goto out;
	}
	if (is_group(rest[0])) {
		group_names(rest[0], names, sizeof names);
		if (nrest < 2) {
			snprintf(hint, sizeof hint, "needs a subcommand: %s (see kurierctl help)", names);
			status = ctl_usage_error(&c, rest[0], NULL, hint);
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
		status = ctl_usage_error(&c, what, rest[1], hint);
		goto out;
	}
	if (c.cmd == NULL) {
		status = ctl_usage_error(&c, "unknown command", rest[0], "see kurierctl help");
		goto out;
	}
	if ((status = c.cmd->check(&c, nrest - used, rest + used)) != CTL_OK)
		goto out;
	if (c.cmd->run == run_help) {
		status = run_help(&c);
		goto out;
	}
	if (!(c.cmd->needs & NO_CONFIG) && (status = ctl_load_config(&c)) != CTL_OK)
		goto out;
	if ((c.cmd->needs & NEED_PASSWORD) && (status = ctl_read_password(&c)) != CTL_OK)
		goto out;
	if (c.cmd->needs & (NEED_QUEUE | NEED_AUTH | NEED_POLICY | NEED_MAILBOX))
		status = ctl_run(&c);
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
