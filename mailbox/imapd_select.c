/*
 * imapd_select - the selected mailbox: SELECT, EXAMINE, CLOSE, UNSELECT,
 * CHECK, EXPUNGE, STORE, COPY and MOVE; the session's list of the
 * mailbox's messages (UID, flags, MODSEQ, size, date by sequence number)
 * and how it follows the store: an announcement marks the session dirty,
 * and imapd__sync reads what changed since the MODSEQ the client was
 * told (mbox_list CHANGEDSINCE, mbox_vanished) and tells it.
 * See imapd_int.h.
 */
#include "mailbox/imapd_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"

#define C IMAPD_C

/* --- the message list ------------------------------------------------------------- */

bool
imapd__has_flag(const char *flags, const char *flag)
{
	size_t n = strlen(flag);

	for (const char *p = flags != NULL ? flags : ""; *p != '\0';) {
		const char *w;

		while (*p == ' ')
			p++;
		w = p;
		while (*p != '\0' && *p != ' ')
			p++;
		if ((size_t)(p - w) == n && strncasecmp(w, flag, n) == 0)
			return true;
	}
	return false;
}

void
imapd__own(struct imapd_sess *s, uint64_t modseq)
{
	s->own[s->nown++ % IMAPD_OWN_MAX] = modseq;
}

static bool
own(const struct imapd_sess *s, uint64_t modseq)
{
	for (unsigned i = 0; i < IMAPD_OWN_MAX && i < s->nown; i++)
		if (s->own[i] == modseq)
			return true;
	return false;
}

static void
msgs_clear(struct imapd_sess *s)
{
	free(s->uids);
	s->uids = NULL;
	s->nmsgs = s->capmsgs = 0;
	s->nown = 0;
}

static void
msgs_push(struct imapd_sess *s, uint32_t uid)
{
	if (s->nmsgs == s->capmsgs) {
		s->capmsgs = s->capmsgs ? s->capmsgs + s->capmsgs / 8 + 16 : 16;
		s->uids = xreallocarray(s->uids, s->capmsgs, sizeof *s->uids);
	}
	s->uids[s->nmsgs++] = uid;
}

/* first_at_least - the index of the first message with UID >= uid. */
static size_t
first_at_least(const struct imapd_sess *s, uint32_t uid)
{
	size_t lo = 0, hi = s->nmsgs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint32_t
imapd__seq_of(const struct imapd_sess *s, uint32_t uid)
{
	size_t i = first_at_least(s, uid);

	return i < s->nmsgs && s->uids[i] == uid ? (uint32_t)(i + 1) : 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

size_t
imapd__set_seqs(const struct imapd_sess *s, const struct imap_seqset *set, bool uid, uint32_t **out)
{
	uint32_t *v = NULL, last;
	size_t n = 0, cap = 0, k = 0;

	*out = NULL;
	if (s->nmsgs == 0)
		return 0;
	last = uid ? s->uids[s->nmsgs - 1] : (uint32_t)s->nmsgs;
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->v[i].lo == IMAP_SEQ_STAR ? last : set->v[i].lo;
		uint32_t hi = set->v[i].hi == IMAP_SEQ_STAR ? last : set->v[i].hi;
		size_t a, b;

		if (lo > hi) {
			uint32_t t = lo;

			lo = hi;
			hi = t;
		}
		if (uid) {
			a = first_at_least(s, lo);
			b = hi == UINT32_MAX ? s->nmsgs : first_at_least(s, hi + 1);
		} else {
			if (lo > s->nmsgs)
				continue;
			a = lo - 1;
			b = hi > s->nmsgs ? s->nmsgs : hi;
		}
		for (size_t j = a; j < b; j++) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				v = xreallocarray(v, cap, sizeof *v);
			}
			v[n++] = (uint32_t)(j + 1);
		}
	}
	if (n == 0) {
		free(v);
		return 0;
	}
	qsort(v, n, sizeof *v, cmp_u32);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || v[k - 1] != v[i])
			v[k++] = v[i];
	*out = v;
	return k;
}

size_t
imapd__ranges(const struct imapd_sess *s, const uint32_t *seqs, size_t n, struct mbox_range **out)
{
	struct mbox_range *r;
	size_t k = 0;

	*out = NULL;
	if (n == 0)
		return 0;
	r = xcalloc(n, sizeof *r);
	for (size_t i = 0; i < n; i++) {
		uint32_t uid = s->uids[seqs[i] - 1];

		if (k > 0 && r[k - 1].hi + 1 == uid) {
			r[k - 1].hi = uid;
			continue;
		}
		r[k].lo = r[k].hi = uid;
		k++;
	}
	*out = r;
	return k;
}

void
imapd__tell_flags(struct imapd_sess *s, uint32_t seq, const struct mbox_msg *m)
{
	struct buf b;

	buf_init(&b);
	buf_appendf(&b, "* %" PRIu32 " FETCH (FLAGS (%s)", seq, m->flags != NULL ? m->flags : "");
	if (s->uid)
		buf_appendf(&b, " UID %" PRIu32, m->uid);
	if (s->condstore)
		buf_appendf(&b, " MODSEQ (%" PRIu64 ")", m->modseq);
	buf_appends(&b, ")\r\n");
	imapd__write(s, buf_rptr(&b), buf_unread(&b));
	buf_free(&b);
}

/* expunge_seq - remove message seq and tell the client. */
static void
expunge_seq(struct imapd_sess *s, uint32_t seq)
{
	memmove(&s->uids[seq - 1], &s->uids[seq], (s->nmsgs - seq) * sizeof s->uids[0]);
	s->nmsgs--;
	s->nexpunged++;
	imapd__untagged(s, "%" PRIu32 " EXPUNGE", seq);
}

void
imapd__unselect(struct imapd_sess *s)
{
	msgs_clear(s);
	free(s->folder);
	s->folder = NULL;
	s->mailbox_id = 0;
	s->dirty = false;
	if (s->state == IMAPD_SELECTED)
		s->state = IMAPD_AUTH;
}

/* --- following the store ------------------------------------------------------------- */

struct sync {
	bool expunges;
	bool full;      /* the store forgot expunges since vsince: compare every UID */
	void (*then)(struct imapd_sess *s);
	uint64_t since; /* changes above this MODSEQ */
	uint64_t vsince; /* expunges above this MODSEQ */
	uint64_t told;   /* the client knows every change up to this MODSEQ */
};

static void
sync_end(struct imapd_sess *s, struct sync *y)
{
	void (*then)(struct imapd_sess *) = y->then;

	free(y);
	then(s);
	imapd__unref(s);
}

static void
on_sync_list(void *arg, int status, struct mbox_msgs *list)
{
	struct sync *y = arg;
	struct imapd_sess *s = *(struct imapd_sess **)(y + 1);
	size_t before = s->nmsgs;

	if (!imapd__gone(s) && s->state == IMAPD_SELECTED && status == 0 && y->full) {
		/* Every UID the store no longer has is gone, highest first. */
		size_t j = list->n;

		for (size_t i = s->nmsgs; i-- > 0;) {
			while (j > 0 && list->v[j - 1].uid > s->uids[i])
				j--;
			if (j == 0 || list->v[j - 1].uid != s->uids[i])
				expunge_seq(s, (uint32_t)(i + 1));
		}
	}
	if (!imapd__gone(s) && s->state == IMAPD_SELECTED && status == 0) {
		for (size_t i = 0; i < list->n; i++) {
			const struct mbox_msg *m = &list->v[i];
			uint32_t seq = imapd__seq_of(s, m->uid);

			if (seq != 0) {
				/* Changed since the client was told: unless by this session, tell it. */
				if (m->modseq > y->told && !own(s, m->modseq))
					imapd__tell_flags(s, seq, m);
			} else if (s->nmsgs == 0 || m->uid > s->uids[s->nmsgs - 1]) {
				msgs_push(s, m->uid);
				if (m->uid >= s->uidnext)
					s->uidnext = m->uid + 1;
			}
			/* A lower UID not in the list was expunged by this session already. */
		}
		if (s->nmsgs != before)
			imapd__untagged(s, "%zu EXISTS", s->nmsgs);
		if (list->highestmodseq > s->highestmodseq)
			s->highestmodseq = list->highestmodseq;
	} else if (status < 0 && status != -ENOENT) {
		log_warn(C, "sync_failed", "sid=%s user=%s error=\"%s\"", s->base.sid, s->base.user,
		    uv_strerror(status));
		s->dirty = true;
	}
	mbox_msgs_free(list);
	sync_end(s, y);
}

static void
sync_list(struct imapd_sess *s, struct sync *y)
{
	if (imapd__gone(s) || s->state != IMAPD_SELECTED ||
	    mbox_list(imapd__srv(s)->store, s->base.user, s->folder, NULL, 0, y->since, on_sync_list,
	    y) < 0)
		sync_end(s, y);
}

static void
on_sync_vanished(void *arg, int status, struct mbox_uids *res)
{
	struct sync *y = arg;
	struct imapd_sess *s = *(struct imapd_sess **)(y + 1);

	if (status == 0 && res->modseq > y->vsince) {
		/* Expunges older than the retention are forgotten: read every UID. */
		y->full = true;
		y->since = 0;
	} else if (!imapd__gone(s) && s->state == IMAPD_SELECTED && status == 0) {
		/* Highest first, so each number is the client's current one. */
		for (size_t i = res->n; i-- > 0;) {
			uint32_t seq = imapd__seq_of(s, res->v[i]);

			if (seq != 0)
				expunge_seq(s, seq);
		}
	}
	mbox_uids_free(res);
	sync_list(s, y);
}

void
imapd__sync(struct imapd_sess *s, bool expunges, void (*then)(struct imapd_sess *s))
{
	struct sync *y;

	if (s->state != IMAPD_SELECTED || imapd__gone(s) || !s->dirty) {
		then(s);
		return;
	}
	/* The session pointer rides behind the struct, for the store's callbacks. */
	y = xcalloc(1, sizeof *y + sizeof s);
	*(struct imapd_sess **)(y + 1) = s;
	y->expunges = expunges;
	y->then = then;
	y->since = y->told = s->highestmodseq;
	y->vsince = s->vanished_since;
	imapd__ref(s);
	if (!expunges) {
		/* The expunges wait for a command that may tell them; still dirty then. */
		sync_list(s, y);
		return;
	}
	s->dirty = false;
	/*
	 * The next expunging sync asks again from here: an expunge that lands
	 * between the two reads below is then told, and one told twice finds
	 * no message the second time.
	 */
	s->vanished_since = s->highestmodseq;
	if (mbox_vanished(imapd__srv(s)->store, s->base.user, s->folder, y->vsince, NULL, 0,
	    on_sync_vanished, y) < 0)
		sync_list(s, y);
}

void
imapd__event(struct imapd_sess *s, const struct mbox_event *ev)
{
	if (s->state != IMAPD_SELECTED || ev->mailbox != s->mailbox_id)
		return;
	switch (ev->kind) {
	case MBOX_EV_APPEND:
	case MBOX_EV_FLAGS:
	case MBOX_EV_EXPUNGE:
		if (ev->modseq > s->highestmodseq || ev->kind == MBOX_EV_EXPUNGE)
			s->dirty = true;
		break;
	case MBOX_EV_RENAME:
		free(s->folder);
		s->folder = xcalloc(1, ev->name_len + 1);
		memcpy(s->folder, ev->name, ev->name_len);
		return;
	case MBOX_EV_DELETE:
		imapd__untagged(s, "BYE The selected mailbox was deleted");
		msrv_close(&s->base);
		return;
	case MBOX_EV_CREATE:
		return;
	}
	if (s->dirty && s->idling && !s->syncing)
		imapd__idle_kick(s); /* IDLE: tell it now */
}

/* --- SELECT, EXAMINE --------------------------------------------------------------- */

struct select_op {
	struct buf name;
	struct mbox_status st;
};

static void
select_fail(struct imapd_sess *s, struct select_op *op, int status)
{
	buf_free(&op->name);
	free(op);
	imapd__store_no(s, status, "SELECT");
}

static void
on_select_list(void *arg, int status, struct mbox_uidlist *list)
{
	struct imapd_sess *s = arg;
	struct select_op *op = s->op;
	uint32_t unseen = 0;

	if (imapd__gone(s) || status < 0) {
		s->op = NULL;
		if (!imapd__gone(s)) {
			select_fail(s, op, status);
		} else {
			buf_free(&op->name);
			free(op);
		}
		mbox_uidlist_free(list);
		imapd__unref(s);
		return;
	}
	/* Taken as it is, sized to the mailbox: an idle session holds 4 bytes a message. */
	free(s->uids);
	s->uids = list->v;
	s->nmsgs = s->capmsgs = list->n;
	list->v = NULL;
	if (list->first_unseen != 0)
		unseen = imapd__seq_of(s, list->first_unseen);
	s->state = IMAPD_SELECTED;
	s->folder = buf_steal(&op->name, &(size_t){ 0 });
	s->mailbox_id = op->st.id;
	s->uidvalidity = list->uidvalidity;
	s->uidnext = op->st.uidnext;
	if (s->nmsgs > 0 && s->uids[s->nmsgs - 1] >= s->uidnext)
		s->uidnext = s->uids[s->nmsgs - 1] + 1;
	s->highestmodseq = list->highestmodseq > op->st.highestmodseq ? list->highestmodseq :
	    op->st.highestmodseq;
	s->vanished_since = s->highestmodseq;
	mbox_uidlist_free(list);
	buf_free(&op->name);
	free(op);
	s->op = NULL;
	imapd__untagged(s, "FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
	imapd__untagged(s, s->readonly ? "OK [PERMANENTFLAGS ()] Read-only mailbox" :
	    "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted");
	imapd__untagged(s, "%zu EXISTS", s->nmsgs);
	imapd__untagged(s, "0 RECENT");
	if (unseen != 0)
		imapd__untagged(s, "OK [UNSEEN %" PRIu32 "] First unseen", unseen);
	imapd__untagged(s, "OK [UIDVALIDITY %" PRIu32 "] UIDs valid", s->uidvalidity);
	imapd__untagged(s, "OK [UIDNEXT %" PRIu32 "] Predicted next UID", s->uidnext);
	imapd__untagged(s, "OK [HIGHESTMODSEQ %" PRIu64 "] Highest", s->highestmodseq);
	imapd__tagged(s, "OK", s->readonly ? "READ-ONLY" : "READ-WRITE", "%s completed",
	    s->readonly ? "EXAMINE" : "SELECT");
	imapd__unref(s);
}

static void
on_select_status(void *arg, int status, const struct mbox_status *st)
{
	struct imapd_sess *s = arg;
	struct select_op *op = s->op;

	if (imapd__gone(s) || status < 0) {
		if (!imapd__gone(s)) {
			s->op = NULL;
			select_fail(s, op, status);
		} else {
			buf_free(&op->name);
			free(op);
		}
		imapd__unref(s);
		return;
	}
	op->st = *st;
	if (mbox_uidlist(imapd__srv(s)->store, s->base.user, buf_rptr(&op->name), false,
	    on_select_list, s) < 0) {
		s->op = NULL;
		select_fail(s, op, -ENOTCONN);
		imapd__unref(s);
	}
}

static void
do_select(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e, bool ro)
{
	struct select_op *op;
	size_t n = imapd__nargs(a, e);
	int rc;

	if (n < 1 || n > 2) {
		imapd__bad(s, "Syntax: %s mailbox [(CONDSTORE)]", ro ? "EXAMINE" : "SELECT");
		return;
	}
	if (n == 2) {
		const struct imap_tok *p = imap_tok_next(a);

		if (p->type != IMAP_TOK_LIST || p->n != 1 || !imap_tok_eq(p + 1, "CONDSTORE")) {
			imapd__bad(s, "Only the CONDSTORE parameter is known");
			return;
		}
		s->condstore = true;
	}
	op = xcalloc(1, sizeof *op);
	buf_init(&op->name);
	if (!imapd__mailbox(s, a, &op->name)) {
		buf_free(&op->name);
		free(op);
		return;
	}
	/* RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected. */
	imapd__unselect(s);
	s->readonly = ro;
	s->op = op;
	imapd__ref(s);
	rc = mbox_status(imapd__srv(s)->store, s->base.user, buf_rptr(&op->name), on_select_status, s);
	if (rc < 0) {
		s->op = NULL;
		select_fail(s, op, rc);
		imapd__unref(s);
	}
}

void
imapd__select(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	do_select(s, a, e, false);
}

void
imapd__examine(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	do_select(s, a, e, true);
}

/* --- CHECK, CLOSE, UNSELECT, EXPUNGE ------------------------------------------------ */

void
imapd__check(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	if (imapd__nargs(a, e) != 0) {
		imapd__bad(s, "CHECK takes no arguments");
		return;
	}
	/* Every change is in Redis already (AOF): nothing to flush. */
	imapd__tagged(s, "OK", NULL, "CHECK completed");
}

void
imapd__unselect_cmd(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	if (imapd__nargs(a, e) != 0) {
		imapd__bad(s, "UNSELECT takes no arguments");
		return;
	}
	imapd__unselect(s);
	imapd__tagged(s, "OK", NULL, "UNSELECT completed");
}

struct expunge_op {
	bool close; /* CLOSE: expunge silently, then unselect */
};

static void
on_expunged(void *arg, int status, struct mbox_uids *res)
{
	struct imapd_sess *s = arg;
	struct expunge_op *op = s->op;
	bool close = op->close;

	free(op);
	s->op = NULL;
	if (!imapd__gone(s)) {
		if (status < 0 && !close) {
			imapd__store_no(s, status, "EXPUNGE");
		} else if (close) {
			imapd__unselect(s);
			imapd__tagged(s, "OK", NULL, "CLOSE completed");
		} else {
			for (size_t i = res->n; i-- > 0;) {
				uint32_t seq = imapd__seq_of(s, res->v[i]);

				if (seq != 0)
					expunge_seq(s, seq);
			}
			if (res->modseq > s->highestmodseq && !s->dirty)
				s->highestmodseq = res->modseq;
			imapd__tagged(s, "OK", NULL, "EXPUNGE completed");
		}
	}
	mbox_uids_free(res);
	imapd__unref(s);
}

static void
start_expunge(struct imapd_sess *s, const struct mbox_range *r, size_t n, bool close)
{
	struct expunge_op *op = xcalloc(1, sizeof *op);
	int rc;

	op->close = close;
	s->op = op;
	imapd__ref(s);
	rc = mbox_expunge(imapd__srv(s)->store, s->base.user, s->folder, r, n, false, on_expunged, s);
	if (rc < 0)
		on_expunged(s, rc, NULL);
}

void
imapd__close(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	if (imapd__nargs(a, e) != 0) {
		imapd__bad(s, "CLOSE takes no arguments");
		return;
	}
	if (s->readonly) {
		imapd__unselect(s);
		imapd__tagged(s, "OK", NULL, "CLOSE completed");
		return;
	}
	start_expunge(s, NULL, 0, true);
}

void
imapd__expunge(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	struct imap_seqset set = { 0 };
	struct mbox_range *r = NULL;
	uint32_t *seqs;
	size_t n;
	char err[IMAP_ERR_MAX];

	if (s->readonly) {
		imapd__tagged(s, "NO", "READ-ONLY", "The mailbox is read-only (EXAMINE)");
		return;
	}
	if (!s->uid) {
		if (imapd__nargs(a, e) != 0) {
			imapd__bad(s, "EXPUNGE takes no arguments");
			return;
		}
		start_expunge(s, NULL, 0, false);
		return;
	}
	/* UID EXPUNGE set (RFC 4315). */
	if (imapd__nargs(a, e) != 1 || a->type == IMAP_TOK_LIST ||
	    imap_seqset_parse(a->s, a->len, &set, err, sizeof err) < 0) {
		imapd__bad(s, "Syntax: UID EXPUNGE uid-set");
		return;
	}
	n = imapd__set_seqs(s, &set, true, &seqs);
	imap_seqset_free(&set);
	if (n == 0) {
		imapd__tagged(s, "OK", NULL, "EXPUNGE completed");
		return;
	}
	n = imapd__ranges(s, seqs, n, &r);
	free(seqs);
	start_expunge(s, r, n, false);
	free(r);
}

/* --- STORE ----------------------------------------------------------------------------- */

struct store_op {
	bool silent;
};

static void
on_stored(void *arg, int status, struct mbox_flags_result *res)
{
	struct imapd_sess *s = arg;
	struct store_op *op = s->op;
	bool silent = op->silent;
	struct buf failed;

	free(op);
	s->op = NULL;
	if (imapd__gone(s)) {
		mbox_flags_result_free(res);
		imapd__unref(s);
		return;
	}
	if (status < 0) {
		imapd__store_no(s, status, "STORE");
		mbox_flags_result_free(res);
		imapd__unref(s);
		return;
	}
	imapd__own(s, res->highestmodseq);
	for (size_t i = 0; i < res->n; i++) {
		uint32_t seq = imapd__seq_of(s, res->v[i].uid);

		if (seq == 0)
			continue;
		if (!silent)
			imapd__tell_flags(s, seq, &res->v[i]);
		else if (s->condstore && s->uid)
			/* RFC 7162 3.2: .SILENT still tells the new MODSEQ, without FLAGS. */
			imapd__untagged(s, "%" PRIu32 " FETCH (UID %" PRIu32 " MODSEQ (%" PRIu64 "))", seq,
			    res->v[i].uid, res->v[i].modseq);
		else if (s->condstore)
			imapd__untagged(s, "%" PRIu32 " FETCH (MODSEQ (%" PRIu64 "))", seq,
			    res->v[i].modseq);
	}
	buf_init(&failed);
	for (size_t i = 0; i < res->nfailed; i++) {
		uint32_t seq = imapd__seq_of(s, res->failed[i]);

		if (seq == 0)
			continue;
		buf_appendf(&failed, "%s%" PRIu32, buf_unread(&failed) ? "," : "",
		    s->uid ? res->failed[i] : seq);
	}
	if (buf_unread(&failed) > 0) {
		buf_appendc(&failed, '\0');
		char code[IMAP_ERR_MAX + 16];

		snprintf(code, sizeof code, "MODIFIED %.*s", IMAP_ERR_MAX, buf_rptr(&failed));
		imapd__tagged(s, "OK", code, "Conditional STORE failed for some messages");
	} else {
		imapd__tagged(s, "OK", NULL, "STORE completed");
	}
	buf_free(&failed);
	mbox_flags_result_free(res);
	imapd__unref(s);
}

void
imapd__store(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	struct imap_seqset set = { 0 };
	struct imap_store st = { 0 };
	struct mbox_flags_req req = { 0 };
	struct mbox_range *r = NULL;
	struct store_op *op;
	uint32_t *seqs = NULL;
	size_t n;
	char err[IMAP_ERR_MAX];
	int rc;

	if (imapd__nargs(a, e) < 3 || a->type == IMAP_TOK_LIST ||
	    imap_seqset_parse(a->s, a->len, &set, err, sizeof err) < 0) {
		imapd__bad(s, "Syntax: STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] flags");
		return;
	}
	if (imap_store_parse(imap_tok_next(a), e, &st, err, sizeof err) < 0) {
		imap_seqset_free(&set);
		imapd__bad(s, "%s", err);
		return;
	}
	if (s->readonly) {
		imap_seqset_free(&set);
		imap_store_free(&st);
		imapd__tagged(s, "NO", "READ-ONLY", "The mailbox is read-only (EXAMINE)");
		return;
	}
	if (st.unchangedsince_set)
		s->condstore = true;
	n = imapd__set_seqs(s, &set, s->uid, &seqs);
	imap_seqset_free(&set);
	if (n == 0) {
		imap_store_free(&st);
		imapd__tagged(s, "OK", NULL, "STORE completed");
		return;
	}
	n = imapd__ranges(s, seqs, n, &r);
	free(seqs);
	req.user = s->base.user;
	req.folder = s->folder;
	req.ranges = r;
	req.nranges = n;
	req.op = st.op == IMAP_STORE_SET ? MBOX_FLAGS_SET : st.op == IMAP_STORE_ADD ?
	    MBOX_FLAGS_ADD : MBOX_FLAGS_REMOVE;
	req.flags = st.flags;
	req.unchangedsince = st.unchangedsince_set ? st.unchangedsince : 0;
	op = xcalloc(1, sizeof *op);
	op->silent = st.silent;
	s->op = op;
	imapd__ref(s);
	rc = mbox_store_flags(imapd__srv(s)->store, &req, on_stored, s);
	free(r);
	imap_store_free(&st);
	if (rc < 0)
		on_stored(s, rc, NULL);
}

/* --- COPY, MOVE ----------------------------------------------------------------------------- */

struct copy_op {
	bool move;
	struct buf to;
};

/* uidset - an ascending UID list as an IMAP set, runs joined ("3:5,9"). */
static void
uidset(struct buf *b, const uint32_t *v, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (i > 0)
			buf_appendc(b, ',');
		if (j == i)
			buf_appendf(b, "%" PRIu32, v[i]);
		else
			buf_appendf(b, "%" PRIu32 ":%" PRIu32, v[i], v[j]);
		i = j + 1;
	}
}

static void
on_copied(void *arg, int status, struct mbox_copy_result *res)
{
	struct imapd_sess *s = arg;
	struct copy_op *op = s->op;
	bool move = op->move;
	struct buf code;

	buf_free(&op->to);
	free(op);
	s->op = NULL;
	if (imapd__gone(s)) {
		mbox_copy_result_free(res);
		imapd__unref(s);
		return;
	}
	if (status == -ENOENT) {
		imapd__tagged(s, "NO", "TRYCREATE", "No such target mailbox");
	} else if (status < 0) {
		imapd__store_no(s, status, move ? "MOVE" : "COPY");
	} else {
		buf_init(&code);
		if (res->n > 0) {
			buf_appendf(&code, "COPYUID %" PRIu32 " ", res->uidvalidity);
			uidset(&code, res->from, res->n);
			buf_appendc(&code, ' ');
			uidset(&code, res->to, res->n);
		}
		buf_appendc(&code, '\0');
		if (!move) {
			imapd__tagged(s, "OK", res->n > 0 ? buf_rptr(&code) : NULL, "COPY completed");
		} else {
			/* RFC 6851 4.3: COPYUID untagged, then the expunges. */
			if (res->n > 0)
				imapd__untagged(s, "OK [%s] Moved", buf_rptr(&code));
			for (size_t i = res->n; i-- > 0;) {
				uint32_t seq = imapd__seq_of(s, res->from[i]);

				if (seq != 0)
					expunge_seq(s, seq);
			}
			imapd__tagged(s, "OK", NULL, "MOVE completed");
		}
		buf_free(&code);
	}
	mbox_copy_result_free(res);
	imapd__unref(s);
}

static void
do_copy(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e, bool move)
{
	struct imap_seqset set = { 0 };
	struct mbox_range *r = NULL;
	struct copy_op *op;
	uint32_t *seqs = NULL;
	size_t n;
	char err[IMAP_ERR_MAX];
	int rc;

	if (imapd__nargs(a, e) != 2 || a->type == IMAP_TOK_LIST ||
	    imap_seqset_parse(a->s, a->len, &set, err, sizeof err) < 0) {
		imapd__bad(s, "Syntax: %s set mailbox", move ? "MOVE" : "COPY");
		return;
	}
	op = xcalloc(1, sizeof *op);
	op->move = move;
	buf_init(&op->to);
	if (!imapd__mailbox(s, imap_tok_next(a), &op->to)) {
		imap_seqset_free(&set);
		buf_free(&op->to);
		free(op);
		return;
	}
	if (move && s->readonly) {
		imap_seqset_free(&set);
		buf_free(&op->to);
		free(op);
		imapd__tagged(s, "NO", "READ-ONLY", "The mailbox is read-only (EXAMINE)");
		return;
	}
	n = imapd__set_seqs(s, &set, s->uid, &seqs);
	imap_seqset_free(&set);
	if (n == 0) {
		buf_free(&op->to);
		free(op);
		imapd__tagged(s, "OK", NULL, "%s completed: nothing matched", move ? "MOVE" : "COPY");
		return;
	}
	n = imapd__ranges(s, seqs, n, &r);
	free(seqs);
	s->op = op;
	imapd__ref(s);
	rc = (move ? mbox_move : mbox_copy)(imapd__srv(s)->store, s->base.user, s->folder,
	    buf_rptr(&op->to), r, n, on_copied, s);
	free(r);
	if (rc < 0)
		on_copied(s, rc, NULL);
}

void
imapd__copy(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	do_copy(s, a, e, false);
}

void
imapd__move(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	do_copy(s, a, e, true);
}
