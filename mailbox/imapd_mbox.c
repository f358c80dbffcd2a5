/*
 * imapd_mbox - the IMAP commands on mailboxes as a whole: NAMESPACE,
 * CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (with CHILDREN
 * and SPECIAL-USE attributes), LSUB, STATUS and APPEND (UIDPLUS's
 * APPENDUID).  See imapd_int.h.
 */
#include "mailbox/imapd_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"

#define C IMAPD_C

void
imapd__namespace(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	if (imapd__nargs(a, e) != 0) {
		imapd__bad(s, "NAMESPACE takes no arguments");
		return;
	}
	/* One personal namespace, no prefix, "/" between levels (RFC 2342). */
	imapd__untagged(s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	imapd__tagged(s, "OK", NULL, "NAMESPACE completed");
}

/* --- CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE ----------------------------------- */

struct simple_op {
	const char *what; /* "CREATE", ... */
	struct buf name;
	struct buf to;
};

static struct simple_op *
simple_new(const char *what)
{
	struct simple_op *op = xcalloc(1, sizeof *op);

	op->what = what;
	buf_init(&op->name);
	buf_init(&op->to);
	return op;
}

static void
simple_free(struct simple_op *op)
{
	buf_free(&op->name);
	buf_free(&op->to);
	free(op);
}

static void
on_simple(void *arg, int status)
{
	struct imapd_sess *s = arg;
	struct simple_op *op = s->op;

	s->op = NULL;
	if (!imapd__gone(s)) {
		if (status < 0)
			imapd__store_no(s, status, op->what);
		else
			imapd__tagged(s, "OK", NULL, "%s completed", op->what);
	}
	simple_free(op);
	imapd__unref(s);
}

/* simple_args - one mailbox name (two for RENAME) into op; false after a response. */
static bool
simple_args(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e,
    struct simple_op *op, size_t want)
{
	if (imapd__nargs(a, e) != want) {
		imapd__bad(s, "Syntax: %s mailbox%s", op->what, want == 2 ? " new-name" : "");
		return false;
	}
	if (!imapd__mailbox(s, a, &op->name))
		return false;
	if (want == 2 && !imapd__mailbox(s, imap_tok_next(a), &op->to))
		return false;
	return true;
}

static void
simple_start(struct imapd_sess *s, struct simple_op *op, int rc)
{
	if (rc < 0) {
		s->op = NULL;
		imapd__store_no(s, rc, op->what);
		simple_free(op);
		imapd__unref(s);
	}
}

void
imapd__create(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	struct simple_op *op = simple_new("CREATE");
	struct imap_tok t;

	if (imapd__nargs(a, e) == 1 && imap_tok_is_astring(a) && a->len > 1 &&
	    a->s[a->len - 1] == '/') {
		/* RFC 3501 6.3.3: "foo/" creates "foo". */
		t = *a;
		t.len--;
		a = &t;
		e = &t + 1;
	}
	if (!simple_args(s, a, e, op, 1)) {
		simple_free(op);
		return;
	}
	s->op = op;
	imapd__ref(s);
	simple_start(s, op, mbox_create(imapd__srv(s)->store, s->base.user, buf_rptr(&op->name),
	    on_simple, s));
}

void
imapd__delete(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	struct simple_op *op = simple_new("DELETE");

	if (!simple_args(s, a, e, op, 1)) {
		simple_free(op);
		return;
	}
	/* Deleting the selected mailbox leaves it first. */
	if (s->state == IMAPD_SELECTED && strcmp(s->folder, buf_rptr(&op->name)) == 0)
		imapd__unselect(s);
	s->op = op;
	imapd__ref(s);
	simple_start(s, op, mbox_delete(imapd__srv(s)->store, s->base.user, buf_rptr(&op->name),
	    on_simple, s));
}

void
imapd__rename(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	struct simple_op *op = simple_new("RENAME");

	if (!simple_args(s, a, e, op, 2)) {
		simple_free(op);
		return;
	}
	s->op = op;
	imapd__ref(s);
	simple_start(s, op, mbox_rename(imapd__srv(s)->store, s->base.user, buf_rptr(&op->name),
	    buf_rptr(&op->to), on_simple, s));
}

static void
subscribe(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e, bool on)
{
	struct simple_op *op = simple_new(on ? "SUBSCRIBE" : "UNSUBSCRIBE");

	if (!simple_args(s, a, e, op, 1)) {
		simple_free(op);
		return;
	}
	s->op = op;
	imapd__ref(s);
	simple_start(s, op, mbox_subscribe(imapd__srv(s)->store, s->base.user, buf_rptr(&op->name),
	    on, on_simple, s));
}

void
imapd__subscribe(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	subscribe(s, a, e, true);
}

void
imapd__unsubscribe(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	subscribe(s, a, e, false);
}

/* --- LIST, LSUB -------------------------------------------------------------------------- */

struct list_op {
	struct buf pattern;
	bool lsub;
};

/* The special-use attribute (RFC 6154) of a top-level folder by its usual name. */
static const char *
special_use(const char *name)
{
	static const struct {
		const char *name, *attr;
	} uses[] = {
		{ "Trash", "\\Trash" }, { "Junk", "\\Junk" }, { "Spam", "\\Junk" },
		{ "Sent", "\\Sent" }, { "Drafts", "\\Drafts" }, { "Archive", "\\Archive" },
	};

	for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++)
		if (strcasecmp(name, uses[i].name) == 0)
			return uses[i].attr;
	return NULL;
}

static bool
matches(const struct buf *pattern, const char *name)
{
	const char *p = buf_rptr(pattern);
	size_t plen = buf_unread(pattern);

	char canon[IMAP_PATTERN_MAX + 1];

	/* INBOX is INBOX in any case, also at the start of a pattern. */
	if (strncmp(name, "INBOX", 5) == 0 && plen >= 5 && plen <= IMAP_PATTERN_MAX &&
	    strncasecmp(p, "INBOX", 5) == 0 && (plen == 5 || p[5] == '/' || p[5] == '*' ||
	    p[5] == '%')) {
		memcpy(canon, "INBOX", 5);
		memcpy(canon + 5, p + 5, plen - 5);
		return imap_list_match(canon, plen, name, strlen(name));
	}
	return imap_list_match(p, plen, name, strlen(name));
}

/* has_child - whether a name below name (name + "/...") is among v[0..n). */
static bool
has_child(char *const *v, size_t n, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < n; i++)
		if (strncmp(v[i], name, len) == 0 && v[i][len] == '/')
			return true;
	return false;
}

static bool
listed(char *const *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return true;
	return false;
}

static void
list_line(struct imapd_sess *s, const char *verb, const char *attrs, const char *name)
{
	struct buf b;

	buf_init(&b);
	buf_appendf(&b, "* %s (%s) \"/\" ", verb, attrs);
	imap_put_string(&b, name, strlen(name));
	buf_appends(&b, "\r\n");
	imapd__write(s, buf_rptr(&b), buf_unread(&b));
	buf_free(&b);
}

static void
on_folders(void *arg, int status, struct mbox_folders *list)
{
	struct imapd_sess *s = arg;
	struct list_op *op = s->op;
	char **names = NULL, **parents = NULL;
	size_t nnames = 0, nparents = 0;

	s->op = NULL;
	if (imapd__gone(s) || status < 0) {
		if (!imapd__gone(s))
			imapd__store_no(s, status, "LIST");
		goto out;
	}
	names = xcalloc(list->n + 1, sizeof *names);
	for (size_t i = 0; i < list->n; i++)
		names[nnames++] = list->v[i].name;
	/* Levels that exist only as parents of others are listed \Noselect. */
	parents = xcalloc(list->n * 4 + 1, sizeof *parents);
	for (size_t i = 0; i < nnames; i++) {
		for (char *p = strchr(names[i], '/'); p != NULL; p = strchr(p + 1, '/')) {
			char *par = xmemdup0(names[i], (size_t)(p - names[i]));

			if (listed(names, nnames, par) || listed(parents, nparents, par) ||
			    nparents >= list->n * 4) {
				free(par);
				continue;
			}
			parents[nparents++] = par;
		}
	}
	for (size_t i = 0; i < nnames; i++) {
		const char *su = strchr(names[i], '/') == NULL ? special_use(names[i]) : NULL;
		char attrs[64];

		if (!matches(&op->pattern, names[i]))
			continue;
		snprintf(attrs, sizeof attrs, "%s%s%s",
		    has_child(names, nnames, names[i]) ? "\\HasChildren" : "\\HasNoChildren",
		    su != NULL ? " " : "", su != NULL ? su : "");
		list_line(s, "LIST", attrs, names[i]);
	}
	for (size_t i = 0; i < nparents; i++)
		if (matches(&op->pattern, parents[i]))
			list_line(s, "LIST", "\\Noselect \\HasChildren", parents[i]);
	imapd__tagged(s, "OK", NULL, "LIST completed");
out:
	for (size_t i = 0; i < nparents; i++)
		free(parents[i]);
	free(parents);
	free(names);
	mbox_folders_free(list);
	buf_free(&op->pattern);
	free(op);
	imapd__unref(s);
}

static void
on_subscriptions(void *arg, int status, struct mbox_subscriptions *list)
{
	struct imapd_sess *s = arg;
	struct list_op *op = s->op;

	s->op = NULL;
	if (!imapd__gone(s)) {
		if (status < 0) {
			imapd__store_no(s, status, "LSUB");
		} else {
			for (size_t i = 0; i < list->n; i++)
				if (matches(&op->pattern, list->v[i].name))
					list_line(s, "LSUB", list->v[i].exists ? "" : "\\Noselect",
					    list->v[i].name);
			imapd__tagged(s, "OK", NULL, "LSUB completed");
		}
	}
	mbox_subscriptions_free(list);
	buf_free(&op->pattern);
	free(op);
	imapd__unref(s);
}

static void
do_list(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e, bool lsub)
{
	const struct imap_tok *pat;
	struct list_op *op;
	int rc;

	if (imapd__nargs(a, e) != 2 || !imap_tok_is_astring(a) ||
	    !imap_tok_is_astring(pat = imap_tok_next(a))) {
		imapd__bad(s, "Syntax: %s reference pattern", lsub ? "LSUB" : "LIST");
		return;
	}
	if (pat->len == 0 && !lsub) {
		/* RFC 3501 6.3.8: the delimiter and the root. */
		imapd__untagged(s, "LIST (\\Noselect) \"/\" \"\"");
		imapd__tagged(s, "OK", NULL, "LIST completed");
		return;
	}
	if (a->len + pat->len > IMAP_PATTERN_MAX) {
		imapd__bad(s, "Pattern too long");
		return;
	}
	op = xcalloc(1, sizeof *op);
	buf_init(&op->pattern);
	buf_append(&op->pattern, a->s, a->len);
	buf_append(&op->pattern, pat->s, pat->len);
	op->lsub = lsub;
	s->op = op;
	imapd__ref(s);
	if (lsub)
		rc = mbox_subscriptions(imapd__srv(s)->store, s->base.user, on_subscriptions, s);
	else
		rc = mbox_folders(imapd__srv(s)->store, s->base.user, true, on_folders, s);
	if (rc < 0) {
		s->op = NULL;
		buf_free(&op->pattern);
		free(op);
		imapd__store_no(s, rc, lsub ? "LSUB" : "LIST");
		imapd__unref(s);
	}
}

void
imapd__list(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	if (a < e && a->type == IMAP_TOK_LIST) {
		imapd__bad(s, "LIST selection options (LIST-EXTENDED) are not offered");
		return;
	}
	do_list(s, a, e, false);
}

void
imapd__lsub(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	do_list(s, a, e, true);
}

/* --- STATUS -------------------------------------------------------------------------------- */

enum {
	ST_MESSAGES = 1 << 0,
	ST_RECENT = 1 << 1,
	ST_UIDNEXT = 1 << 2,
	ST_UIDVALIDITY = 1 << 3,
	ST_UNSEEN = 1 << 4,
	ST_HIGHESTMODSEQ = 1 << 5,
	ST_SIZE = 1 << 6,
};

struct status_op {
	struct buf name;
	unsigned items;
};

static void
on_status(void *arg, int status, const struct mbox_status *st)
{
	struct imapd_sess *s = arg;
	struct status_op *op = s->op;
	struct buf b;

	s->op = NULL;
	if (!imapd__gone(s)) {
		if (status < 0) {
			imapd__store_no(s, status, "STATUS");
		} else {
			buf_init(&b);
			buf_appends(&b, "* STATUS ");
			imap_put_string(&b, buf_rptr(&op->name), buf_unread(&op->name));
			buf_appends(&b, " (");
			if (op->items & ST_MESSAGES)
				buf_appendf(&b, "MESSAGES %" PRIu32 " ", st->exists);
			if (op->items & ST_RECENT)
				buf_appends(&b, "RECENT 0 ");
			if (op->items & ST_UIDNEXT)
				buf_appendf(&b, "UIDNEXT %" PRIu32 " ", st->uidnext);
			if (op->items & ST_UIDVALIDITY)
				buf_appendf(&b, "UIDVALIDITY %" PRIu32 " ", st->uidvalidity);
			if (op->items & ST_UNSEEN)
				buf_appendf(&b, "UNSEEN %" PRIu32 " ", st->unseen);
			if (op->items & ST_HIGHESTMODSEQ)
				buf_appendf(&b, "HIGHESTMODSEQ %" PRIu64 " ", st->highestmodseq);
			if (op->items & ST_SIZE)
				buf_appendf(&b, "SIZE %" PRIu64 " ", st->bytes);
			if (b.data[b.len - 1] == ' ')
				b.len--;
			buf_appends(&b, ")\r\n");
			imapd__write(s, buf_rptr(&b), buf_unread(&b));
			buf_free(&b);
			imapd__tagged(s, "OK", NULL, "STATUS completed");
		}
	}
	buf_free(&op->name);
	free(op);
	imapd__unref(s);
}

void
imapd__status(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	static const struct {
		const char *name;
		unsigned bit;
	} items[] = {
		{ "MESSAGES", ST_MESSAGES }, { "RECENT", ST_RECENT }, { "UIDNEXT", ST_UIDNEXT },
		{ "UIDVALIDITY", ST_UIDVALIDITY }, { "UNSEEN", ST_UNSEEN },
		{ "HIGHESTMODSEQ", ST_HIGHESTMODSEQ }, { "SIZE", ST_SIZE },
	};
	const struct imap_tok *l;
	struct status_op *op;
	int rc;

	if (imapd__nargs(a, e) != 2 || (l = imap_tok_next(a))->type != IMAP_TOK_LIST || l->n == 0) {
		imapd__bad(s, "Syntax: STATUS mailbox (item ...)");
		return;
	}
	op = xcalloc(1, sizeof *op);
	buf_init(&op->name);
	for (const struct imap_tok *t = l + 1; t < imap_tok_next(l); t = imap_tok_next(t)) {
		size_t i;

		for (i = 0; i < sizeof items / sizeof items[0]; i++)
			if (t->type == IMAP_TOK_ATOM && imap_tok_eq(t, items[i].name))
				break;
		if (i == sizeof items / sizeof items[0]) {
			free(op);
			imapd__bad(s, "Unknown STATUS item");
			return;
		}
		op->items |= items[i].bit;
	}
	if (op->items & ST_HIGHESTMODSEQ)
		s->condstore = true;
	if (!imapd__mailbox(s, a, &op->name)) {
		buf_free(&op->name);
		free(op);
		return;
	}
	s->op = op;
	imapd__ref(s);
	rc = mbox_status(imapd__srv(s)->store, s->base.user, buf_rptr(&op->name), on_status, s);
	if (rc < 0)
		on_status(s, rc, NULL);
}

/* --- APPEND ------------------------------------------------------------------------------------ */

struct append_op {
	struct buf name;
	struct buf flags;
	struct buf data;
	struct buf env, bs; /* its ENVELOPE and BODYSTRUCTURE, kept beside it */
};

static void
append_free(struct append_op *op)
{
	buf_free(&op->name);
	buf_free(&op->flags);
	buf_free(&op->data);
	buf_free(&op->env);
	buf_free(&op->bs);
	free(op);
}

static void
on_appended(void *arg, int status, uint32_t uidvalidity, uint32_t uid)
{
	struct imapd_sess *s = arg;
	struct append_op *op = s->op;
	char code[64];

	s->op = NULL;
	if (!imapd__gone(s)) {
		if (status == -ENOENT) {
			imapd__tagged(s, "NO", "TRYCREATE", "No such mailbox");
		} else if (status < 0) {
			imapd__store_no(s, status, "APPEND");
		} else {
			snprintf(code, sizeof code, "APPENDUID %" PRIu32 " %" PRIu32, uidvalidity, uid);
			imapd__tagged(s, "OK", code, "APPEND completed");
		}
	}
	append_free(op);
	imapd__unref(s);
}

/* append_flags - a flag list token into op->flags; false after a response. */
static bool
append_flags(struct imapd_sess *s, const struct imap_tok *l, struct append_op *op)
{
	for (const struct imap_tok *t = l + 1; t < imap_tok_next(l); t = imap_tok_next(t)) {
		if (t->type != IMAP_TOK_ATOM) {
			imapd__bad(s, "Flags are atoms");
			return false;
		}
		if (buf_unread(&op->flags) > 0)
			buf_appendc(&op->flags, ' ');
		buf_append(&op->flags, t->s, t->len);
	}
	buf_appendc(&op->flags, '\0');
	op->flags.len--;
	if (!mbox_valid_flags(buf_rptr(&op->flags))) {
		imapd__bad(s, "Invalid flags");
		return false;
	}
	return true;
}

void
imapd__append(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	const struct imap_tok *t, *msg = NULL;
	struct mbox_append req = { 0 };
	struct append_op *op;
	time_t when = 0;
	size_t n = imapd__nargs(a, e);
	int rc;

	if (n < 2 || n > 4) {
		imapd__bad(s, "Syntax: APPEND mailbox [(flags)] [date-time] message");
		return;
	}
	op = xcalloc(1, sizeof *op);
	buf_init(&op->name);
	buf_init(&op->flags);
	buf_init(&op->data);
	if (!imapd__mailbox(s, a, &op->name)) {
		append_free(op);
		return;
	}
	for (t = imap_tok_next(a); t < e; t = imap_tok_next(t)) {
		if (imap_tok_next(t) >= e) {
			msg = t;
			break;
		}
		if (t->type == IMAP_TOK_LIST && buf_unread(&op->flags) == 0 && when == 0) {
			if (!append_flags(s, t, op)) {
				append_free(op);
				return;
			}
		} else if (t->type == IMAP_TOK_QUOTED && when == 0) {
			if (imap_datetime_parse(t->s, t->len, &when) < 0) {
				append_free(op);
				imapd__bad(s, "Invalid date-time");
				return;
			}
		} else {
			append_free(op);
			imapd__bad(s, "Syntax: APPEND mailbox [(flags)] [date-time] message");
			return;
		}
	}
	if (msg == NULL || msg->type != IMAP_TOK_LITERAL || msg->len == 0) {
		append_free(op);
		imapd__bad(s, "APPEND needs the message as a literal");
		return;
	}
	if (memchr(msg->s, '\0', msg->len) != NULL) {
		append_free(op);
		imapd__tagged(s, "NO", NULL, "The message holds a NUL byte");
		return;
	}
	/* Stored with CRLF line ends, like every message of the store. */
	for (size_t i = 0; i < msg->len; i++) {
		if (msg->s[i] == '\n' && (i == 0 || msg->s[i - 1] != '\r'))
			buf_appendc(&op->data, '\r');
		buf_appendc(&op->data, msg->s[i]);
	}
	req.user = s->base.user;
	req.folder = buf_rptr(&op->name);
	req.data = buf_rptr(&op->data);
	req.len = buf_unread(&op->data);
	req.flags = buf_unread(&op->flags) > 0 ? buf_rptr(&op->flags) : "";
	req.internal_date_ms = (uint64_t)when * 1000;
	if (imapd__describe(buf_rptr(&op->data), buf_unread(&op->data), &op->env, &op->bs)) {
		buf_appendc(&op->env, '\0');
		buf_appendc(&op->bs, '\0');
		req.envelope = buf_rptr(&op->env);
		req.bodystructure = buf_rptr(&op->bs);
	}
	s->op = op;
	imapd__ref(s);
	rc = mbox_append(imapd__srv(s)->store, &req, on_appended, s);
	if (rc < 0)
		on_appended(s, rc, 0, 0);
}
