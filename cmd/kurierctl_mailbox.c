/*
 * kurierctl_mailbox - kurierctl mailbox list, show and stats, over the
 * mailbox store (mailbox/store.h).  A listing reads each message's first
 * LIST_HEAD bytes, LIST_PAGE messages a call, and shows the header fields a reader sorts
 * returns by: X-Kurier-Class, X-Kurier-Recipient and Subject.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cmd/ctl.h"
#include "cmd/kurierctl_int.h"
#include "core/rfc5322.h"
#include "core/str.h"
#include "mailbox/store.h"

#define LIST_HEAD 8192          /* bytes of each message read for its header fields */
#define LIST_PAGE 200           /* messages whose heads one call reads */
#define FIELD_MAX 512           /* longest header value kept for a column */
#define SUBJECT_W 60            /* widest subject shown */
#define RCPT_W 40               /* widest recipient shown */
#define FLAGS_W 24              /* widest flags shown */

/* mailbox list USER [--folder F]; mailbox show USER UID [--folder F]. */
int
check_mbox(struct ctl *c, int argc, char **argv)
{
	bool is_show = strcmp(c->cmd->name, "show") == 0;
	const char *user = NULL, *uid = NULL, *v;
	const char *hint = is_show ? "kurierctl mailbox show USER UID [--folder F]" :
	    "kurierctl mailbox list USER [--folder F]";
	uint64_t n;
	bool bad;

	c->folder = "INBOX";
	for (int i = 0; i < argc; i++) {
		if ((v = ctl_opt_value("--folder", argc, argv, &i, &bad)) != NULL) {
			if (!mbox_valid_folder(v))
				return ctl_usage_error(c, "not a folder name in --folder", v,
				    "give a folder as an IMAP client names it, e.g. --folder INBOX");
			/* RFC 3501 5.1: INBOX in any case is INBOX. */
			c->folder = strcasecmp(v, "INBOX") == 0 ? "INBOX" : v;
		} else if (bad) {
			return ctl_usage_error(c, "--folder needs a value", NULL, hint);
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			return ctl_usage_error(c, "unknown option", argv[i], hint);
		} else if (user == NULL) {
			user = argv[i];
		} else if (is_show && uid == NULL) {
			uid = argv[i];
		} else {
			return ctl_usage_error(c, "unexpected argument", argv[i], hint);
		}
	}
	if (user == NULL)
		return ctl_usage_error(c, "missing USER", NULL, hint);
	if (!str_is_username(user))
		return ctl_usage_error(c, "not a user name", user,
		    "1 to 64 letters, digits and ._@+- (kurierctl mailbox stats lists the users)");
	str_copy(c->user, user, sizeof c->user);
	if (is_show) {
		if (uid == NULL)
			return ctl_usage_error(c, "missing UID", NULL, hint);
		if (str_to_u64(uid, &n) < 0 || n == 0 || n > UINT32_MAX)
			return ctl_usage_error(c, "not a UID", uid,
			    "give a number from the UID column of kurierctl mailbox list");
		c->uid = (uint32_t)n;
	}
	return CTL_OK;
}

/* no_such - the message for -ENOENT, naming what may be missing. */
static void
no_such(struct ctl *c, bool uid)
{
	if (uid)
		fprintf(stderr, "kurierctl: no message with UID %" PRIu32 " in folder %s of user %s (kurierctl mailbox list %s shows the UIDs)\n",
		    c->uid, ctl_esc(c, c->folder, 80), c->user, c->user);
	else
		fprintf(stderr, "kurierctl: no folder %s for user %s (kurierctl mailbox stats lists the users that have a mailbox)\n",
		    ctl_esc(c, c->folder, 80), c->user);
	ctl_finish(c, CTL_FAIL);
}

/*
 * field_value - the value of header field name in head[0..len), unfolded
 * and trimmed, into dst ("" when absent).  The head may be cut anywhere.
 */
static void
field_value(const char *head, size_t len, const char *name, char *dst, size_t size)
{
	struct rfc5322_scan s;
	const char *f, *colon;
	size_t fl, n = 0;

	dst[0] = '\0';
	rfc5322_scan_init(&s, head, len);
	while (rfc5322_next(&s, &f, &fl)) {
		if (!rfc5322_field_is(f, fl, name) || (colon = rfc5322_field_colon(f, fl)) == NULL)
			continue;
		for (const char *p = colon + 1; p < f + fl && n + 1 < size; p++) {
			char ch = *p;

			if (ch == '\r' || ch == '\n')
				continue;
			if (ch == '\t')
				ch = ' ';
			if (ch == ' ' && (n == 0 || dst[n - 1] == ' '))
				continue;
			dst[n++] = ch;
		}
		while (n > 0 && dst[n - 1] == ' ')
			n--;
		dst[n] = '\0';
		return;
	}
}

/*
 * A listing is one call for every message's metadata (cheap), then the
 * heads in pages of LIST_PAGE messages, printed as they come: a folder
 * of 10,000 returns never asks Redis for one reply of everything.
 */
static void list_next_page(struct ctl *c);

static void
list_end(struct ctl *c, int status)
{
	mbox_msgs_free(c->mbox_all);
	c->mbox_all = NULL;
	ctl_finish(c, status);
}

static void
on_mbox_page(void *arg, int status, struct mbox_msgs *l)
{
	struct ctl *c = arg;
	char when[32], cls[FIELD_MAX], rcpt[FIELD_MAX], subj[FIELD_MAX];

	if (c->finishing) {
		mbox_msgs_free(l);
		mbox_msgs_free(c->mbox_all);
		c->mbox_all = NULL;
		return;
	}
	if (status < 0 && status != -ENOENT) {
		mbox_msgs_free(c->mbox_all);
		c->mbox_all = NULL;
		ctl_call_failed(c, "mailbox list", status);
		return;
	}
	/* A folder deleted or renamed meanwhile: what was listed stays listed. */
	for (size_t i = 0; l != NULL && i < l->n; i++) {
		const struct mbox_msg *m = &l->v[i];

		field_value(m->head, m->head_len, "X-Kurier-Class", cls, sizeof cls);
		field_value(m->head, m->head_len, "X-Kurier-Recipient", rcpt, sizeof rcpt);
		field_value(m->head, m->head_len, "Subject", subj, sizeof subj);
		printf("%-*" PRIu32 "  %-19s  %*" PRIu64 "  %-12s  %-10s  %-24s  %s\n", c->mbox_uw,
		    m->uid, ctl_fmt_time(when, sizeof when, m->date_ms), c->mbox_sw, m->size,
		    m->flags[0] ? ctl_esc(c, m->flags, FLAGS_W) : "-",
		    cls[0] ? ctl_esc(c, cls, 10) : "-", rcpt[0] ? ctl_esc(c, rcpt, RCPT_W) : "-",
		    ctl_esc(c, subj, SUBJECT_W));
		c->mbox_shown++;
	}
	mbox_msgs_free(l);
	list_next_page(c);
}

static void
list_next_page(struct ctl *c)
{
	const struct mbox_msgs *all = c->mbox_all;
	struct mbox_range rg;
	char what[64];
	size_t last;
	int rc;

	if (c->mbox_next >= all->n) {
		printf("%" PRIu64 " %s in %s of %s (UIDVALIDITY %" PRIu32 ", HIGHESTMODSEQ %" PRIu64 ")\n",
		    c->mbox_shown, ctl_plural(c->mbox_shown, "message", "messages"),
		    ctl_esc(c, c->folder, 80), c->user, all->uidvalidity, all->highestmodseq);
		list_end(c, CTL_OK);
		return;
	}
	last = c->mbox_next + LIST_PAGE - 1 < all->n ? c->mbox_next + LIST_PAGE - 1 : all->n - 1;
	rg.lo = all->v[c->mbox_next].uid;
	rg.hi = all->v[last].uid;
	c->mbox_next = last + 1;
	rc = mbox_list_heads(c->mb, c->user, c->folder, &rg, 1, LIST_HEAD, on_mbox_page, c);
	if (rc < 0) {
		mbox_msgs_free(c->mbox_all);
		c->mbox_all = NULL;
		ctl_call_failed(c, ctl_cmd_name(c, what, sizeof what), rc);
		return;
	}
	ctl_wait(c);
}

static void
on_mbox_list(void *arg, int status, struct mbox_msgs *l)
{
	struct ctl *c = arg;

	if (c->finishing) {
		mbox_msgs_free(l);
		return;
	}
	if (status == -ENOENT) {
		no_such(c, false);
		return;
	}
	if (status < 0) {
		ctl_call_failed(c, "mailbox list", status);
		return;
	}
	if (l->n == 0) {
		printf("no messages in %s of %s\n", ctl_esc(c, c->folder, 80), c->user);
		mbox_msgs_free(l);
		ctl_finish(c, CTL_OK);
		return;
	}
	c->mbox_uw = 3;
	c->mbox_sw = 4;
	for (size_t i = 0; i < l->n; i++) {
		if (ctl_digits(l->v[i].uid) > c->mbox_uw)
			c->mbox_uw = ctl_digits(l->v[i].uid);
		if (ctl_digits(l->v[i].size) > c->mbox_sw)
			c->mbox_sw = ctl_digits(l->v[i].size);
	}
	printf("%-*s  %-19s  %*s  %-12s  %-10s  %-24s  %s\n", c->mbox_uw, "UID", "DATE (UTC)",
	    c->mbox_sw, "SIZE", "FLAGS", "CLASS", "RECIPIENT", "SUBJECT");
	c->mbox_all = l;
	c->mbox_next = 0;
	c->mbox_shown = 0;
	list_next_page(c);
}

int
run_mbox_list(struct ctl *c)
{
	return mbox_list(c->mb, c->user, c->folder, NULL, 0, 0, on_mbox_list, c);
}

/*
 * print_message - the raw bytes as stored when stdout is not a terminal
 * (a file or a pipe gets the message byte for byte); at a terminal,
 * each line through ctl_esc(), so a message cannot drive it.
 */
static int
print_message(struct ctl *c, const char *data, size_t len)
{
	const char *p = data, *end = data + len;

	if (!isatty(STDOUT_FILENO))
		return fwrite(data, 1, len, stdout) == len ? 0 : -EIO;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char line[1024];

		if (n > 0 && p[n - 1] == '\r')
			n--;
		/* ctl_esc() reads a C string: go in pieces without NUL bytes. */
		for (size_t off = 0; off < n; off += sizeof line - 1) {
			size_t k = n - off < sizeof line - 1 ? n - off : sizeof line - 1;

			memcpy(line, p + off, k);
			line[k] = '\0';
			for (size_t j = 0; j < k; j++)
				if (line[j] == '\0')
					line[j] = '?';
			fputs(ctl_esc(c, line, 0), stdout);
		}
		fputc('\n', stdout);
		p = nl ? nl + 1 : end;
	}
	return 0;
}

static void
on_mbox_show(void *arg, int status, struct mbox_body *b)
{
	struct ctl *c = arg;

	if (c->finishing) {
		mbox_body_free(b);
		return;
	}
	if (status == -ENOENT) {
		no_such(c, true);
		return;
	}
	if (status < 0) {
		ctl_call_failed(c, "mailbox show", status);
		return;
	}
	status = print_message(c, b->data, b->len);
	mbox_body_free(b);
	ctl_finish(c, status < 0 ? CTL_FAIL : CTL_OK);
}

int
run_mbox_show(struct ctl *c)
{
	return mbox_fetch(c->mb, c->user, c->folder, c->uid, on_mbox_show, c);
}

static void
on_mbox_stats(void *arg, int status, struct mbox_stats *s)
{
	struct ctl *c = arg;
	int w = 4;

	if (c->finishing) {
		mbox_stats_free(s);
		return;
	}
	if (status < 0) {
		ctl_call_failed(c, "mailbox stats", status);
		return;
	}
	printf("users     %" PRIu64 "\nmessages  %" PRIu64 "\nbytes     %" PRIu64 "\n", s->users,
	    s->messages, s->bytes);
	for (size_t i = 0; i < s->n; i++)
		if ((int)strlen(s->v[i].user) > w)
			w = (int)strlen(s->v[i].user);
	if (s->n > 0) {
		printf("\n%-*s  %7s  %8s  %12s\n", w, "USER", "FOLDERS", "MESSAGES", "BYTES");
		for (size_t i = 0; i < s->n; i++)
			printf("%-*s  %7" PRIu32 "  %8" PRIu64 "  %12" PRIu64 "\n", w, s->v[i].user,
			    s->v[i].folders, s->v[i].messages, s->v[i].bytes);
	}
	mbox_stats_free(s);
	ctl_finish(c, CTL_OK);
}

int
run_mbox_stats(struct ctl *c)
{
	return mbox_stats(c->mb, on_mbox_stats, c);
}
