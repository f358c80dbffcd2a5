/*
 * kurierctl_queue - kurierctl queue list, show, retry, delete and flush,
 * over the queue's admin calls (queue/queue.h).  A list pages through
 * the set (LIST_PAGE ids a call), filters each page and shows progress
 * on stderr for large sets at a terminal.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/ctl.h"
#include "cmd/kurierctl_int.h"
#include "core/buf.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "queue/envelope.h"
#include "queue/qid.h"
#include "queue/queue.h"

#define LIST_PAGE 500           /* ids per queue_list() page */
#define LIST_PROGRESS_MIN 1000  /* show progress on sets larger than this */
#define LIST_SENDER_W 32
#define LIST_STATE_W 24
#define LIST_DOMAINS_W 60

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
	    ctl_esc(c, arg, 64));
	return CTL_FAIL;
}
int
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
		if ((v = ctl_opt_value("--state", argc, argv, &i, &bad)) != NULL) {
			size_t k;

			for (k = 0; k < sizeof states / sizeof states[0]; k++)
				if (strcmp(v, states[k]) == 0)
					break;
			if (k == sizeof states / sizeof states[0])
				return ctl_usage_error(c, "unknown --state", v,
				    "use active, deferred, done or corrupt");
			c->lstate = (enum list_state)k;
		} else if (!bad && (v = ctl_opt_value("--domain", argc, argv, &i, &bad)) != NULL) {
			if (v[0] == '\0' || strlen(v) > DOMAIN_ARG_MAX)
				return ctl_usage_error(c, "bad --domain", v,
				    "give a domain name, e.g. --domain example.com");
			c->domain = v;
		} else if (!bad && (v = ctl_opt_value("--limit", argc, argv, &i, &bad)) != NULL) {
			if (str_to_u64(v, &c->limit) < 0 || c->limit == 0)
				return ctl_usage_error(c, "bad --limit", v, "give a positive number, e.g. --limit 50");
		} else if (bad) {
			fprintf(stderr, "kurierctl: %s needs a value: kurierctl queue list [--state active|deferred|done|corrupt] [--domain D] [--limit N]\n",
			    ctl_esc(c, argv[i], 16));
			return CTL_USAGE;
		} else {
			return ctl_usage_error(c, "unknown argument to queue list", argv[i],
			    "kurierctl queue list [--state active|deferred|done|corrupt] [--domain D] [--limit N]");
		}
	}
	return CTL_OK;
}

int
check_one_id(struct ctl *c, int argc, char **argv)
{
	char what[64];

	snprintf(what, sizeof what, "queue %s needs a message ID", c->cmd->name);
	if (argc == 0)
		return ctl_usage_error(c, what, NULL, "the ids are in the first column of kurierctl queue list");
	if (argc > 1)
		return ctl_usage_error(c, "unexpected argument", argv[1], "give one message ID");
	if (argv[0][0] == '-')
		return ctl_usage_error(c, "unknown option", argv[0], "give one message ID");
	return check_id(c, argv[0]);
}

int
check_retry(struct ctl *c, int argc, char **argv)
{
	if (argc == 1 && strcmp(argv[0], "--all") == 0) {
		c->all = true;
		return CTL_OK;
	}
	if (argc == 0)
		return ctl_usage_error(c, "queue retry needs a message ID or --all", NULL,
		    "kurierctl queue retry ID | --all");
	return check_one_id(c, argc, argv);
}

int
check_flush(struct ctl *c, int argc, char **argv)
{
	c->all = true;
	return ctl_check_noargs(c, argc, argv);
}

/* The message for an id that is not (or no longer) in the queue. */
static void
no_such_message(struct ctl *c, const char *id)
{
	fprintf(stderr, "kurierctl: no message %s in the queue (delivered messages are kept for [queue] retention, then removed)\n",
	    id);
	ctl_finish(c, CTL_FAIL);
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
		buf_appends(&st, ctl_esc(c, info->why, 40));
	} else {
		state_summary(info, &st);
	}
	for (size_t j = 0; j < info->njobs; j++) {
		buf_appends(&doms, j ? "," : "");
		buf_appends(&doms, ctl_esc(c, info->jobs[j].st.domain, 0));
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
		snprintf(sender, sizeof sender, "<%s>", ctl_esc(c, info->env.sender, LIST_SENDER_W - 2));
	}
	printf("%-16s  %-19s  %9s  %-*s  %5s  %-*s  %s\n", info->id,
	    ctl_fmt_time(t, sizeof t, arrival), size, LIST_SENDER_W, sender, nrcpt,
	    LIST_STATE_W, st.data, doms.len ? ctl_esc(c, doms.data, LIST_DOMAINS_W) : "-");
	buf_free(&st);
	buf_free(&doms);
}

static void
list_end(struct ctl *c, bool more)
{
	progress_clear(c);
	printf("%" PRIu64 " %s", c->shown, ctl_plural(c->shown, "message", "messages"));
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
		ctl_call_failed(c, "queue list", status);
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
		ctl_call_failed(c, "queue list", rc);
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
		ctl_call_failed(c, "queue list", status);
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
		ctl_call_failed(c, "queue list", rc);
	else
		ctl_wait(c);
}

int
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

	printf("\nrecipient <%s>\n", ctl_esc(c, er->addr, 0));
	if (er->orcpt != NULL)
		printf("  orcpt          %s\n", ctl_esc(c, er->orcpt, 0));
	if (er->notify != 0)
		printf("  notify         %s\n", notify_str(er->notify, nb, sizeof nb));
	if (rs == NULL) {
		printf("  state          unknown (no delivery state stored for this domain)\n");
		return;
	}
	printf("  state          %s\n", rcpt_state_name(rs->state));
	printf("  attempts       %" PRIu32 "\n", rs->attempts);
	printf("  last change    %s\n", rs->updated_ms ? ctl_fmt_time(t, sizeof t, rs->updated_ms) : "never");
	if (rs->state == RCPT_DEFERRED)
		printf("  next attempt   %s\n", rs->next_ms ? ctl_fmt_when(t, sizeof t, rs->next_ms, c->now) : "now");
	printf("  last reply     %s\n", rs->reply != NULL ? ctl_esc(c, rs->reply, 0) : "(none)");
}

static void
show_job(struct ctl *c, const struct queue_info *info, const struct queue_jobinfo *ji)
{
	char t[64];
	bool final = true;

	for (size_t k = 0; k < ji->st.n; k++)
		if (!rcpt_state_final(ji->st.r[k].state))
			final = false;
	printf("  %s (%zu %s): ", ctl_esc(c, ji->st.domain, 0), ji->st.n,
	    ctl_plural(ji->st.n, "recipient", "recipients"));
	if (ji->leased && ji->lease_until_ms > c->now)
		printf("leased to a worker until %s\n",
		    ctl_fmt_when(t, sizeof t, ji->lease_until_ms, c->now));
	else if (ji->leased)
		printf("lease expired at %s; the next claim returns it to the queue\n",
		    ctl_fmt_time(t, sizeof t, ji->lease_until_ms));
	else if (ji->queued && ji->due_ms > c->now)
		printf("queued, due %s\n", ctl_fmt_when(t, sizeof t, ji->due_ms, c->now));
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
		printf("reason         %s\n", info->why[0] ? ctl_esc(c, info->why, 0) : "(none recorded)");
		if (strcmp(info->state, "corrupt") != 0)
			printf("note           not quarantined yet (stored state \"%s\"): the next worker to claim it will\n",
			    ctl_esc(c, info->state, 16));
	} else if (strcmp(info->state, "done") == 0) {
		printf("state          done at %s, kept until %s\n",
		    ctl_fmt_time(t, sizeof t, info->done_ms),
		    ctl_fmt_when(t2, sizeof t2, info->done_ms + c->cfg.queue.retention_ms, c->now));
	} else {
		printf("state          %s\n", ctl_esc(c, info->state, 16));
	}
	if (e->id[0] == '\0') {
		/* Only what is readable: the id's time and the stored sizes. */
		printf("arrival        %s (from the id; envelope unreadable)\n",
		    ctl_fmt_time(t, sizeof t, qid_time(info->id)));
		printf("header         %" PRIu64 " bytes\n", info->head_len);
		printf("body           %" PRIu64 " bytes\n", info->body_len);
		return;
	}
	printf("stream         %s\n", stream_name(e->stream));
	printf("sender         <%s>\n", ctl_esc(c, e->sender, 0));
	printf("user           %s\n", e->user && e->user[0] ? ctl_esc(c, e->user, 0) : "-");
	printf("client         %s\n", e->client && e->client[0] ? ctl_esc(c, e->client, 0) : "-");
	printf("helo           %s\n", e->helo && e->helo[0] ? ctl_esc(c, e->helo, 0) : "-");
	printf("arrival        %s\n", ctl_fmt_time(t, sizeof t, e->arrival_ms));
	printf("size           %" PRIu64 " bytes\n", e->size);
	if (e->envid != NULL)
		printf("envid          %s\n", ctl_esc(c, e->envid, 0));
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
		ctl_call_failed(c, "queue show", status);
		return;
	}
	if (n != 1 || !infos[0].exists) {
		no_such_message(c, c->id);
		return;
	}
	show_info(c, &infos[0]);
	ctl_finish(c, CTL_OK);
}

int
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
		    c->id, ctl_esc(c, infos[0].why, 200), c->id);
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
		ctl_call_failed(c, ctl_cmd_name(c, what, sizeof what), status);
		return;
	}
	if (c->all)
		printf("%" PRIu64 " %s due now\n", n, ctl_plural(n, "delivery", "deliveries"));
	else
		printf("%s: %" PRIu64 " %s due now\n", c->id, n, ctl_plural(n, "delivery", "deliveries"));
	ctl_finish(c, CTL_OK);
}

int
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
		ctl_call_failed(c, "queue delete", status);
		return;
	}
	printf("%s: deleted\n", c->id);
	ctl_finish(c, CTL_OK);
}

int
run_delete(struct ctl *c)
{
	return queue_delete(c->q, c->id, on_delete, c);
}
