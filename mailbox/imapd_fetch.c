/*
 * imapd_fetch - FETCH and SEARCH over the selected mailbox.  Both walk
 * the messages a set names in order and read from the store only what
 * their items or keys need: nothing (flags, UID, size, dates are in the
 * session's list), the ENVELOPE and BODYSTRUCTURE the store keeps beside
 * each message (mbox_list_meta, a batch at a time), the header
 * (mbox_list_heads, a batch at a time: header fields and header
 * searches), or the whole message (mbox_fetch, one at a time: sections,
 * body searches, and a message stored without its description); the
 * message is parsed with GMime (imap_mime.h).  A walk that has more output queued
 * than MSRV_OUT_HIGH waits for it to drain, so a FETCH of every full
 * message holds one message at a time, not the mailbox.
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
#include "mailbox/imap_mime.h"

#define C IMAPD_C
#define HEAD_BATCH 256          /* messages per mbox_list_heads */
#define HEAD_MAX (16 * 1024)    /* bytes of each head read; a longer header reads the message */
#define DAY_SECONDS 86400
#define WINDOW 8                /* whole messages asked of Redis ahead of the one written */

enum need {
	NEED_META, /* flags, size, dates (mbox_list, a batch at a time) */
	NEED_DESC, /* ENVELOPE, BODYSTRUCTURE: stored with the message (mbox_list_meta) */
	NEED_HEAD, /* the header */
	NEED_FULL, /* the whole message */
};

struct walk;

/* One whole message asked for ahead (NEED_FULL). */
struct wfetch {
	struct imapd_sess *s; /* NULL once the walk let go of it */
	bool done;
	int status;
	struct mbox_body *body;
};

/* m: the message's flags, size, dates as the store has them now; pm its parse (or NULL). */
typedef void walk_each_fn(struct imapd_sess *s, struct walk *w, uint32_t seq,
    const struct mbox_msg *m, const struct imap_msg *pm);
typedef void walk_end_fn(struct imapd_sess *s, struct walk *w);

struct walk {
	uint32_t *seqs;
	size_t n, i;
	enum need need;
	struct mbox_msgs *heads; /* the current batch (NEED_META, _DESC, _HEAD) */
	size_t hi;
	walk_each_fn *each;
	walk_end_fn *end;
	bool failed;             /* the store failed: end with NO */
	bool raw_only;           /* each() needs the bytes, not their structure */
	struct buf out;          /* responses not yet handed to the connection */
	const char *raw;         /* during each(): the bytes read (header or message) */
	size_t rawlen;
	const struct mbox_msg *desc; /* during each(), NEED_DESC: the stored description */
	bool header_only;        /* during each(): pm is the header alone (NEED_HEAD) */
	struct wfetch *ring[WINDOW]; /* NEED_FULL: messages i .. issued-1 */
	size_t issued;
};

static void walk_next(struct imapd_sess *s);

static struct walk *
walk_of(struct imapd_sess *s)
{
	return s->op;
}

#define OUT_FLUSH (64 * 1024) /* responses are written in pieces of about this */

/* walk_flush - hand the gathered responses to the connection (one write, not one per message). */
static void
walk_flush(struct imapd_sess *s, struct walk *w)
{
	if (buf_unread(&w->out) > 0)
		imapd__write(s, buf_rptr(&w->out), buf_unread(&w->out));
	buf_reset(&w->out);
}

/* walk_put - a response for the walk's output. */
static void
walk_put(struct imapd_sess *s, struct walk *w, const struct buf *b)
{
	buf_append(&w->out, buf_rptr(b), buf_unread(b));
	if (buf_unread(&w->out) >= OUT_FLUSH)
		walk_flush(s, w);
}

static void
wfetch_drop(struct imapd_sess *s, struct wfetch *f)
{
	if (f->done) {
		mbox_body_free(f->body);
		free(f);
	} else {
		/* Its callback frees it; the reference it held goes now. */
		f->s = NULL;
		imapd__unref(s);
	}
}

static void
walk_free(struct imapd_sess *s, struct walk *w)
{
	for (size_t i = 0; i < WINDOW; i++) {
		if (w->ring[i] != NULL)
			wfetch_drop(s, w->ring[i]);
		w->ring[i] = NULL;
	}
	buf_free(&w->out);
	free(w->seqs);
	mbox_msgs_free(w->heads);
	w->seqs = NULL;
	w->heads = NULL;
}

/* header_end - bytes of the header with its empty line, 0 when not within p[0..n). */
static size_t
header_end(const char *p, size_t n)
{
	const char *e = memmem(p, n, "\r\n\r\n", 4);

	if (e != NULL)
		return (size_t)(e - p) + 4;
	if (n >= 2 && memcmp(p, "\r\n", 2) == 0)
		return 2;
	return 0;
}

#define DESCRIBE_MAX (16u * 1024 * 1024) /* larger messages are described when asked */

static void
describe_into(const struct imap_msg *pm, struct buf *env, struct buf *bs)
{
	imap_msg_envelope(pm, env);
	imap_msg_bodystructure(pm, true, bs);
}

bool
imapd__describe(const char *raw, size_t len, struct buf *env, struct buf *bs)
{
	struct imap_msg *pm;

	if (len == 0 || len > DESCRIBE_MAX || (pm = imap_msg_parse(raw, len)) == NULL)
		return false;
	describe_into(pm, env, bs);
	imap_msg_free(pm);
	return true;
}

static void
on_described(void *arg, int status)
{
	(void)arg;
	if (status < 0 && status != -ENOENT && status != -ECANCELED)
		log_warn(C, "describe_failed", "error=\"%s\"", uv_strerror(status));
}

/*
 * keep_description - a message listed without its ENVELOPE and
 * BODYSTRUCTURE (stored by the inbound MX or the reporter): compute them
 * for this answer and keep them for the next listings.
 */
static void
keep_description(struct imapd_sess *s, struct walk *w, const struct mbox_msg *m,
    const struct imap_msg *pm, struct mbox_msg *desc, struct buf *env, struct buf *bs)
{
	describe_into(pm, env, bs);
	buf_appendc(env, '\0');
	buf_appendc(bs, '\0');
	*desc = *m;
	desc->envelope = (char *)buf_rptr(env);
	desc->bodystructure = (char *)buf_rptr(bs);
	w->desc = desc;
	if (w->rawlen <= DESCRIBE_MAX)
		(void)mbox_describe(imapd__srv(s)->store, s->base.user, s->folder, m->uid,
		    desc->envelope, desc->bodystructure, on_described, NULL);
}

static void
walk_one(struct imapd_sess *s, struct walk *w, uint32_t seq, const struct mbox_msg *m,
    const char *raw, size_t len)
{
	struct imap_msg *pm = w->raw_only ? NULL : imap_msg_parse(raw, len);
	struct buf env = BUF_INIT, bs = BUF_INIT;
	struct mbox_msg desc;

	w->raw = raw;
	w->rawlen = len;
	if (w->need == NEED_DESC && pm != NULL)
		keep_description(s, w, m, pm, &desc, &env, &bs);
	w->each(s, w, seq, m, pm);
	w->desc = NULL;
	buf_free(&env);
	buf_free(&bs);
	imap_msg_free(pm);
	w->raw = NULL;
	w->rawlen = 0;
}

static void
on_walk_body(void *arg, int status, struct mbox_body *b)
{
	struct imapd_sess *s = arg;
	struct walk *w = walk_of(s);

	if (!imapd__gone(s)) {
		if (status == 0)
			walk_one(s, w, w->seqs[w->i], &b->m, b->data, b->len);
		else if (status != -ENOENT)
			w->failed = true; /* -ENOENT: expunged meanwhile, skipped */
		w->i++;
	}
	mbox_body_free(b);
	if (imapd__gone(s) || w->failed)
		w->i = w->n;
	walk_next(s);
	imapd__unref(s);
}

static void
fetch_full(struct imapd_sess *s, struct walk *w)
{
	imapd__ref(s);
	if (mbox_fetch(imapd__srv(s)->store, s->base.user, s->folder, s->uids[w->seqs[w->i] - 1],
	    on_walk_body, s) < 0) {
		w->failed = true;
		w->i = w->n;
		walk_next(s);
		imapd__unref(s);
	}
}

static void
on_walk_heads(void *arg, int status, struct mbox_msgs *list)
{
	struct imapd_sess *s = arg;
	struct walk *w = walk_of(s);

	if (imapd__gone(s) || status < 0) {
		mbox_msgs_free(list);
		if (status < 0 && status != -ENOENT)
			w->failed = true;
		w->i = w->n;
	} else {
		w->heads = list;
		w->hi = 0;
	}
	walk_next(s);
	imapd__unref(s);
}

static void
fetch_heads(struct imapd_sess *s, struct walk *w)
{
	size_t k = w->n - w->i < HEAD_BATCH ? w->n - w->i : HEAD_BATCH, nr;
	struct mbox_range *r;
	int rc;

	nr = imapd__ranges(s, w->seqs + w->i, k, &r);
	imapd__ref(s);
	if (w->need == NEED_META)
		rc = mbox_list(imapd__srv(s)->store, s->base.user, s->folder, r, nr, 0, on_walk_heads,
		    s);
	else if (w->need == NEED_DESC)
		rc = mbox_list_meta(imapd__srv(s)->store, s->base.user, s->folder, r, nr,
		    on_walk_heads, s);
	else
		rc = mbox_list_heads(imapd__srv(s)->store, s->base.user, s->folder, r, nr, HEAD_MAX,
		    on_walk_heads, s);
	free(r);
	if (rc < 0) {
		w->failed = true;
		w->i = w->n;
		walk_next(s);
		imapd__unref(s);
	}
}

/* head_step - the next message from the current batch; false when the batch must be read. */
static bool
head_step(struct imapd_sess *s, struct walk *w)
{
	uint32_t seq = w->seqs[w->i], uid = s->uids[seq - 1];
	const struct mbox_msg *m;
	size_t he;

	while (w->heads != NULL && w->hi < w->heads->n && w->heads->v[w->hi].uid < uid)
		w->hi++;
	if (w->heads == NULL || w->hi >= w->heads->n) {
		if (w->heads != NULL && w->heads->n > 0 && w->heads->v[w->heads->n - 1].uid > uid) {
			w->i++; /* expunged meanwhile */
			return true;
		}
		mbox_msgs_free(w->heads);
		w->heads = NULL;
		return false;
	}
	m = &w->heads->v[w->hi];
	if (m->uid != uid) {
		w->i++; /* expunged meanwhile */
		return true;
	}
	if (w->need == NEED_META) {
		w->each(s, w, seq, m, NULL);
		w->i++;
		return true;
	}
	if (w->need == NEED_DESC) {
		if (m->envelope == NULL) {
			/* Stored without its description: read the message. */
			fetch_full(s, w);
			return false;
		}
		w->desc = m;
		w->each(s, w, seq, m, NULL);
		w->desc = NULL;
		w->i++;
		return true;
	}
	he = header_end(m->head, m->head_len);
	if (he == 0 && m->head_len < m->size) {
		/* A header longer than HEAD_MAX: read the whole message. */
		fetch_full(s, w);
		return false;
	}
	w->header_only = true;
	walk_one(s, w, seq, m, m->head, he != 0 ? he : m->head_len);
	w->header_only = false;
	w->i++;
	return true;
}

static void
on_wfetch(void *arg, int status, struct mbox_body *b)
{
	struct wfetch *f = arg;
	struct imapd_sess *s = f->s;
	struct walk *w;

	if (s == NULL) {
		mbox_body_free(b);
		free(f);
		return;
	}
	f->done = true;
	f->status = status;
	f->body = b;
	w = walk_of(s);
	if (w->ring[w->i % WINDOW] == f && s->resume == NULL)
		walk_next(s);
	imapd__unref(s);
}

/* full_step - the next whole message, asked for WINDOW ahead; false while waiting. */
static bool
full_step(struct imapd_sess *s, struct walk *w)
{
	struct wfetch *f;

	while (w->issued < w->n && w->issued < w->i + WINDOW) {
		f = xcalloc(1, sizeof *f);
		f->s = s;
		imapd__ref(s);
		if (mbox_fetch(imapd__srv(s)->store, s->base.user, s->folder,
		    s->uids[w->seqs[w->issued] - 1], on_wfetch, f) < 0) {
			imapd__unref(s);
			f->done = true;
			f->status = -ENOTCONN;
		}
		w->ring[w->issued % WINDOW] = f;
		w->issued++;
	}
	f = w->ring[w->i % WINDOW];
	if (!f->done)
		return false;
	w->ring[w->i % WINDOW] = NULL;
	if (f->status == 0)
		walk_one(s, w, w->seqs[w->i], &f->body->m, f->body->data, f->body->len);
	else if (f->status != -ENOENT)
		w->failed = true; /* -ENOENT: expunged meanwhile, skipped */
	wfetch_drop(s, f);
	w->i++;
	if (w->failed)
		w->i = w->n;
	return true;
}

static void
walk_next(struct imapd_sess *s)
{
	struct walk *w = walk_of(s);

	if (imapd__gone(s)) {
		w->end(s, w);
		return;
	}
	while (w->i < w->n) {
		if (msrv_output_full(&s->base)) {
			walk_flush(s, w);
			s->resume = walk_next;
			return;
		}
		switch (w->need) {
		case NEED_META:
		case NEED_DESC:
		case NEED_HEAD:
			if (head_step(s, w))
				continue;
			walk_flush(s, w);
			if (w->heads == NULL && w->i < w->n)
				fetch_heads(s, w);
			return;
		case NEED_FULL:
			if (full_step(s, w))
				continue;
			walk_flush(s, w);
			return;
		}
	}
	walk_flush(s, w);
	w->end(s, w);
}

/* --- FETCH ------------------------------------------------------------------------------ */

struct fetch_op {
	struct walk w; /* first: s->op points at both */
	struct imap_fetch f;
	bool modseq;    /* MODSEQ in every response (CONDSTORE) */
	uint32_t *seen; /* sequence numbers whose \Seen this FETCH set */
	size_t nseen;
	struct buf scratch;
};

/* whole - BODY[] (or BODY[]<partial>): the whole message. */
static bool
whole(const struct imap_fetch_item *it)
{
	return it->kind == IMAP_FA_SECTION && it->nparts == 0 && it->section == IMAP_SEC_ALL;
}

static void
put_literal(struct buf *b, const char *p, size_t n)
{
	buf_appendf(b, "{%zu}\r\n", n);
	buf_append(b, p, n);
}

static void
put_date(struct buf *b, uint64_t ms)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
		"Sep", "Oct", "Nov", "Dec" };
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	buf_appendf(b, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday, mon[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool
seen_now(const struct fetch_op *op, uint32_t seq)
{
	for (size_t i = 0; i < op->nseen; i++)
		if (op->seen[i] == seq)
			return true;
	return false;
}

/* put_section - "NAME {n}\r\n..." for a BODY[...] item (spec from its response name). */
static void
put_section(struct buf *b, struct fetch_op *op, const struct imap_fetch_item *it,
    const struct imap_msg *pm)
{
	const char *open = strchr(it->resp, '['), *close = strrchr(it->resp, ']');
	const char *data = "";
	size_t len = 0, off = 0, n;

	if (whole(it)) {
		/* BODY[]: the bytes as stored, no parse needed. */
		data = op->w.raw;
		len = op->w.rawlen;
	} else if (pm != NULL && open != NULL && close != NULL &&
	    imap_msg_section(pm, open + 1, (size_t)(close - open - 1), &op->scratch, &data, &len) < 0) {
		len = 0;
	}
	n = len;
	if (it->partial)
		imap_partial(len, it->origin, it->count, &off, &n);
	buf_appends(b, it->resp);
	buf_appendc(b, ' ');
	put_literal(b, data + off, n);
}

static void
fetch_each(struct imapd_sess *s, struct walk *w, uint32_t seq, const struct mbox_msg *m,
    const struct imap_msg *pm)
{
	struct fetch_op *op = (struct fetch_op *)w;
	bool uid_done = false, flags_done = false, modseq_done = false;
	const char *data;
	size_t len;
	struct buf b;

	/* CHANGEDSINCE (RFC 7162 3.1.4): only what changed after it. */
	if (op->f.changedsince_set && m->modseq <= op->f.changedsince)
		return;
	buf_init(&b);
	buf_appendf(&b, "* %" PRIu32 " FETCH (", seq);
	for (size_t i = 0; i < op->f.n; i++) {
		const struct imap_fetch_item *it = &op->f.v[i];

		if (i > 0)
			buf_appendc(&b, ' ');
		switch (it->kind) {
		case IMAP_FA_FLAGS:
			buf_appendf(&b, "FLAGS (%s)", m->flags != NULL ? m->flags : "");
			flags_done = true;
			break;
		case IMAP_FA_INTERNALDATE:
			buf_appends(&b, "INTERNALDATE ");
			put_date(&b, m->date_ms);
			break;
		case IMAP_FA_RFC822_SIZE:
			buf_appendf(&b, "RFC822.SIZE %" PRIu64, m->size);
			break;
		case IMAP_FA_UID:
			buf_appendf(&b, "UID %" PRIu32, m->uid);
			uid_done = true;
			break;
		case IMAP_FA_MODSEQ:
			buf_appendf(&b, "MODSEQ (%" PRIu64 ")", m->modseq);
			modseq_done = true;
			break;
		case IMAP_FA_ENVELOPE:
			buf_appends(&b, "ENVELOPE ");
			if (w->desc != NULL)
				buf_appends(&b, w->desc->envelope);
			else
				imap_msg_envelope(pm, &b);
			break;
		case IMAP_FA_BODY:
		case IMAP_FA_BODYSTRUCTURE:
			buf_appends(&b, it->kind == IMAP_FA_BODY ? "BODY " : "BODYSTRUCTURE ");
			if (w->desc != NULL && it->kind == IMAP_FA_BODYSTRUCTURE)
				buf_appends(&b, w->desc->bodystructure);
			else
				imap_msg_bodystructure(pm, it->kind == IMAP_FA_BODYSTRUCTURE, &b);
			break;
		case IMAP_FA_RFC822:
			buf_appends(&b, "RFC822 ");
			put_literal(&b, w->raw, w->rawlen);
			break;
		case IMAP_FA_RFC822_HEADER:
		case IMAP_FA_RFC822_TEXT:
			len = 0;
			data = "";
			imap_msg_section(pm, it->kind == IMAP_FA_RFC822_HEADER ? "HEADER" : "TEXT",
			    it->kind == IMAP_FA_RFC822_HEADER ? 6 : 4, &op->scratch, &data, &len);
			buf_appends(&b, it->kind == IMAP_FA_RFC822_HEADER ? "RFC822.HEADER " :
			    "RFC822.TEXT ");
			put_literal(&b, data, len);
			break;
		case IMAP_FA_SECTION:
			put_section(&b, op, it, pm);
			break;
		}
	}
	if (s->uid && !uid_done)
		buf_appendf(&b, " UID %" PRIu32, m->uid);
	if (op->modseq && !modseq_done)
		buf_appendf(&b, " MODSEQ (%" PRIu64 ")", m->modseq);
	if (!flags_done && seen_now(op, seq)) {
		/* RFC 3501 6.4.5: a \Seen this FETCH set is told. */
		buf_appendf(&b, " FLAGS (%s)", m->flags != NULL ? m->flags : "");
	}
	buf_appends(&b, ")\r\n");
	walk_put(s, w, &b);
	buf_free(&b);
	s->nfetched++;
}

static void
fetch_end(struct imapd_sess *s, struct walk *w)
{
	struct fetch_op *op = (struct fetch_op *)w;
	bool failed = w->failed;

	walk_free(s, w);
	imap_fetch_free(&op->f);
	buf_free(&op->scratch);
	free(op->seen);
	free(op);
	s->op = NULL;
	if (imapd__gone(s))
		imapd__tagged(s, "OK", NULL, "FETCH cut short");
	else if (failed)
		imapd__tagged(s, "NO", "UNAVAILABLE", "FETCH failed: temporary failure, try again later");
	else
		imapd__tagged(s, "OK", NULL, "FETCH completed");
}

static enum need
fetch_need(const struct imap_fetch *f, bool *sets_seen)
{
	enum need need = NEED_META;

	*sets_seen = false;
	for (size_t i = 0; i < f->n; i++) {
		const struct imap_fetch_item *it = &f->v[i];

		switch (it->kind) {
		case IMAP_FA_ENVELOPE:
			if (need < NEED_DESC)
				need = NEED_DESC;
			break;
		case IMAP_FA_RFC822_HEADER:
			if (need < NEED_HEAD)
				need = NEED_HEAD;
			break;
		case IMAP_FA_SECTION:
			if (it->nparts == 0 && (it->section == IMAP_SEC_HEADER ||
			    it->section == IMAP_SEC_FIELDS || it->section == IMAP_SEC_FIELDS_NOT)) {
				if (need < NEED_HEAD)
					need = NEED_HEAD;
			} else {
				need = NEED_FULL;
			}
			if (!it->peek)
				*sets_seen = true;
			break;
		case IMAP_FA_RFC822:
		case IMAP_FA_RFC822_TEXT:
			*sets_seen = true;
			need = NEED_FULL;
			break;
		case IMAP_FA_BODYSTRUCTURE:
			if (need < NEED_DESC)
				need = NEED_DESC;
			break;
		case IMAP_FA_BODY:
			need = NEED_FULL;
			break;
		default:
			break;
		}
	}
	return need;
}

static void
on_seen_set(void *arg, int status, struct mbox_flags_result *res)
{
	struct imapd_sess *s = arg;
	struct fetch_op *op = s->op;

	if (!imapd__gone(s) && status == 0) {
		/* Those whose flags changed got the new MODSEQ: their \Seen is this FETCH's. */
		imapd__own(s, res->highestmodseq);
		op->seen = xcalloc(res->n + 1, sizeof *op->seen);
		for (size_t i = 0; i < res->n; i++) {
			uint32_t seq = imapd__seq_of(s, res->v[i].uid);

			if (seq != 0 && res->v[i].modseq == res->highestmodseq)
				op->seen[op->nseen++] = seq;
		}
	} else if (status < 0 && !imapd__gone(s)) {
		log_warn(C, "seen_failed", "sid=%s user=%s error=\"%s\"", s->base.sid, s->base.user,
		    uv_strerror(status));
	}
	mbox_flags_result_free(res);
	walk_next(s);
	imapd__unref(s);
}

/*
 * set_seen - \Seen on the messages fetched, before their responses are
 * written (the store changes, and gives a new MODSEQ to, only those that
 * lacked it).
 */
static bool
set_seen(struct imapd_sess *s, struct fetch_op *op)
{
	struct mbox_flags_req req = { 0 };
	struct mbox_range *r = NULL;
	size_t nr;
	int rc;

	nr = imapd__ranges(s, op->w.seqs, op->w.n, &r);
	req.user = s->base.user;
	req.folder = s->folder;
	req.ranges = r;
	req.nranges = nr;
	req.op = MBOX_FLAGS_ADD;
	req.flags = "\\Seen";
	imapd__ref(s);
	rc = mbox_store_flags(imapd__srv(s)->store, &req, on_seen_set, s);
	free(r);
	if (rc < 0) {
		imapd__unref(s);
		return false;
	}
	return true;
}

void
imapd__fetch(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	struct imap_seqset set = { 0 };
	struct fetch_op *op;
	char err[IMAP_ERR_MAX];
	bool sets_seen;
	size_t n;

	if (imapd__nargs(a, e) < 2 || a->type == IMAP_TOK_LIST) {
		imapd__bad(s, "Syntax: FETCH set items");
		return;
	}
	if (imap_seqset_parse(a->s, a->len, &set, err, sizeof err) < 0) {
		imapd__bad(s, "%s", err);
		return;
	}
	op = xcalloc(1, sizeof *op);
	buf_init(&op->scratch);
	if (imap_fetch_parse(imap_tok_next(a), e, &op->f, err, sizeof err) < 0) {
		imap_seqset_free(&set);
		buf_free(&op->scratch);
		free(op);
		imapd__bad(s, "%s", err);
		return;
	}
	if (op->f.vanished) {
		imap_seqset_free(&set);
		imap_fetch_free(&op->f);
		buf_free(&op->scratch);
		free(op);
		imapd__bad(s, "VANISHED needs QRESYNC, which is not offered");
		return;
	}
	if (op->f.changedsince_set)
		s->condstore = true;
	for (size_t i = 0; i < op->f.n; i++)
		if (op->f.v[i].kind == IMAP_FA_MODSEQ)
			s->condstore = true;
	op->modseq = s->condstore && op->f.changedsince_set;
	n = imapd__set_seqs(s, &set, s->uid, &op->w.seqs);
	imap_seqset_free(&set);
	op->w.n = n;
	op->w.need = fetch_need(&op->f, &sets_seen);
	op->w.raw_only = true;
	for (size_t i = 0; i < op->f.n; i++) {
		enum imap_fetch_kind k = op->f.v[i].kind;

		if (k == IMAP_FA_ENVELOPE || k == IMAP_FA_BODY || k == IMAP_FA_BODYSTRUCTURE ||
		    k == IMAP_FA_RFC822_HEADER || k == IMAP_FA_RFC822_TEXT ||
		    (k == IMAP_FA_SECTION && !whole(&op->f.v[i])))
			op->w.raw_only = false;
	}
	op->w.each = fetch_each;
	op->w.end = fetch_end;
	s->op = op;
	if (sets_seen && !s->readonly && n > 0 && set_seen(s, op))
		return; /* on_seen_set walks */
	walk_next(s);
}

/* --- SEARCH ------------------------------------------------------------------------------ */

struct search_op {
	struct walk w; /* first */
	struct imap_search *prog;
	uint32_t *hits;   /* sequence numbers, in the order found */
	size_t nhits;
	uint32_t *later;  /* not settled by the header: read whole in a second walk */
	size_t nlater;
	struct buf text;
	struct buf fold;
	uint64_t maxmodseq;
	bool modseq; /* the program used MODSEQ: answer (MODSEQ n) */
};

/* header_keys - whether k uses a header field other than through TEXT (needs the parse). */
static bool
header_keys(const struct imap_search *k)
{
	switch (k->key) {
	case IMAP_SK_FROM:
	case IMAP_SK_TO:
	case IMAP_SK_CC:
	case IMAP_SK_BCC:
	case IMAP_SK_SUBJECT:
	case IMAP_SK_HEADER:
	case IMAP_SK_SENTSINCE:
	case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SENTON:
		return true;
	default:
		break;
	}
	for (size_t i = 0; i < k->nsub; i++)
		if (header_keys(k->sub[i]))
			return true;
	return false;
}

static enum need
search_need(const struct imap_search *k, bool *modseq)
{
	enum need need = NEED_META, sub;

	switch (k->key) {
	case IMAP_SK_FROM:
	case IMAP_SK_TO:
	case IMAP_SK_CC:
	case IMAP_SK_BCC:
	case IMAP_SK_SUBJECT:
	case IMAP_SK_HEADER:
	case IMAP_SK_SENTSINCE:
	case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SENTON:
		need = NEED_HEAD;
		break;
	case IMAP_SK_BODY:
		need = NEED_FULL;
		break;
	case IMAP_SK_TEXT:
		/* The header first: a word found there needs no more (see match3). */
		need = NEED_HEAD;
		break;
	case IMAP_SK_MODSEQ:
		*modseq = true;
		break;
	default:
		break;
	}
	for (size_t i = 0; i < k->nsub; i++)
		if ((sub = search_need(k->sub[i], modseq)) > need)
			need = sub;
	return need;
}

static bool
has_keyword(const struct mbox_msg *m, const char *k, size_t len)
{
	const char *p = m->flags;

	while (p != NULL && *p != '\0') {
		const char *w = p;

		while (*p != '\0' && *p != ' ')
			p++;
		if ((size_t)(p - w) == len && strncasecmp(w, k, len) == 0)
			return true;
		while (*p == ' ')
			p++;
	}
	return false;
}

static bool
in_set(const struct imap_seqset *set, uint32_t v, uint32_t last)
{
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->v[i].lo == IMAP_SEQ_STAR ? last : set->v[i].lo;
		uint32_t hi = set->v[i].hi == IMAP_SEQ_STAR ? last : set->v[i].hi;

		if (lo > hi) {
			uint32_t t = lo;

			lo = hi;
			hi = t;
		}
		if (v >= lo && v <= hi)
			return true;
	}
	return false;
}

static bool
header_match(struct search_op *op, const struct imap_msg *pm, const char *field,
    const struct imap_search *k)
{
	size_t found;

	if (pm == NULL)
		return false;
	buf_reset(&op->text);
	found = imap_msg_header_text(pm, field, &op->text);
	if (found == 0)
		return false;
	return imap_text_match(buf_rptr(&op->text), buf_unread(&op->text), k->str, k->str_len);
}

static long
sent_day(const struct imap_msg *pm, const struct mbox_msg *m)
{
	time_t when;
	long day;

	if (pm != NULL && imap_msg_date(pm, &when, &day) == 0)
		return day;
	return (long)(m->date_ms / 1000 / DAY_SECONDS);
}

/*
 * A key's answer when only the header was read: TEXT that is in the
 * header is settled (it is in header + body), anything about the body is
 * not yet.
 */
enum tri {
	T_NO,
	T_YES,
	T_MAYBE,
};

static bool match(struct imapd_sess *s, struct search_op *op, const struct imap_search *k,
    uint32_t seq, const struct mbox_msg *m, const struct imap_msg *pm);

/*
 * raw_header_has - whether needle is surely in the decoded header, read
 * from the header's bytes without parsing them: only for an ASCII
 * needle without white space in an ASCII header without encoded words,
 * where decoding changes nothing but line folding, which such a needle
 * cannot span.  false: not known (the whole message is read).
 */
static bool
raw_header_has(const char *h, size_t hlen, const char *needle, size_t nlen)
{
	if (h == NULL || nlen == 0 || memmem(h, hlen, "=?", 2) != NULL)
		return false;
	for (size_t i = 0; i < nlen; i++)
		if ((unsigned char)needle[i] <= ' ' || (unsigned char)needle[i] >= 0x7f)
			return false;
	for (size_t i = 0; i < hlen; i++)
		if ((unsigned char)h[i] >= 0x80 || h[i] == '\0')
			return false;
	return imap_text_match(h, hlen, needle, nlen);
}

/* match3 - match() with the header alone (header_only) or the whole message. */
static enum tri
match3(struct imapd_sess *s, struct search_op *op, const struct imap_search *k, uint32_t seq,
    const struct mbox_msg *m, const struct imap_msg *pm, bool header_only)
{
	enum tri r, acc;

	if (!header_only)
		return match(s, op, k, seq, m, pm) ? T_YES : T_NO;
	switch (k->key) {
	case IMAP_SK_AND:
		acc = T_YES;
		for (size_t i = 0; i < k->nsub; i++) {
			if ((r = match3(s, op, k->sub[i], seq, m, pm, true)) == T_NO)
				return T_NO;
			if (r == T_MAYBE)
				acc = T_MAYBE;
		}
		return acc;
	case IMAP_SK_OR:
		acc = T_NO;
		for (size_t i = 0; i < 2; i++) {
			if ((r = match3(s, op, k->sub[i], seq, m, pm, true)) == T_YES)
				return T_YES;
			if (r == T_MAYBE)
				acc = T_MAYBE;
		}
		return acc;
	case IMAP_SK_NOT:
		r = match3(s, op, k->sub[0], seq, m, pm, true);
		return r == T_MAYBE ? T_MAYBE : r == T_YES ? T_NO : T_YES;
	case IMAP_SK_TEXT:
		/* What the header alone says (decoded as for the whole message). */
		if (pm == NULL)
			return raw_header_has(op->w.raw, op->w.rawlen, k->str, k->str_len) ? T_YES :
			    T_MAYBE;
		buf_reset(&op->text);
		imap_msg_body_text(pm, true, &op->text);
		return imap_text_match(buf_rptr(&op->text), buf_unread(&op->text), k->str, k->str_len) ?
		    T_YES : T_MAYBE;
	case IMAP_SK_BODY:
		return T_MAYBE;
	default:
		return match(s, op, k, seq, m, pm) ? T_YES : T_NO;
	}
}

static bool
match(struct imapd_sess *s, struct search_op *op, const struct imap_search *k, uint32_t seq,
    const struct mbox_msg *m, const struct imap_msg *pm)
{
	long day = (long)(m->date_ms / 1000 / DAY_SECONDS), kday = (long)(k->date / DAY_SECONDS);
	char field[IMAP_ERR_MAX];

	switch (k->key) {
	case IMAP_SK_AND:
		for (size_t i = 0; i < k->nsub; i++)
			if (!match(s, op, k->sub[i], seq, m, pm))
				return false;
		return true;
	case IMAP_SK_OR:
		return match(s, op, k->sub[0], seq, m, pm) || match(s, op, k->sub[1], seq, m, pm);
	case IMAP_SK_NOT:
		return !match(s, op, k->sub[0], seq, m, pm);
	case IMAP_SK_ALL:
	case IMAP_SK_OLD:
		return true;
	case IMAP_SK_NEW:
	case IMAP_SK_RECENT:
		return false; /* no session sees a message as \Recent */
	case IMAP_SK_ANSWERED:
		return imapd__has_flag(m->flags, "\\Answered");
	case IMAP_SK_UNANSWERED:
		return !imapd__has_flag(m->flags, "\\Answered");
	case IMAP_SK_DELETED:
		return imapd__has_flag(m->flags, "\\Deleted");
	case IMAP_SK_UNDELETED:
		return !imapd__has_flag(m->flags, "\\Deleted");
	case IMAP_SK_FLAGGED:
		return imapd__has_flag(m->flags, "\\Flagged");
	case IMAP_SK_UNFLAGGED:
		return !imapd__has_flag(m->flags, "\\Flagged");
	case IMAP_SK_SEEN:
		return imapd__has_flag(m->flags, "\\Seen");
	case IMAP_SK_UNSEEN:
		return !imapd__has_flag(m->flags, "\\Seen");
	case IMAP_SK_DRAFT:
		return imapd__has_flag(m->flags, "\\Draft");
	case IMAP_SK_UNDRAFT:
		return !imapd__has_flag(m->flags, "\\Draft");
	case IMAP_SK_KEYWORD:
		return has_keyword(m, k->str, k->str_len);
	case IMAP_SK_UNKEYWORD:
		return !has_keyword(m, k->str, k->str_len);
	case IMAP_SK_FROM:
		return header_match(op, pm, "From", k);
	case IMAP_SK_TO:
		return header_match(op, pm, "To", k);
	case IMAP_SK_CC:
		return header_match(op, pm, "Cc", k);
	case IMAP_SK_BCC:
		return header_match(op, pm, "Bcc", k);
	case IMAP_SK_SUBJECT:
		return header_match(op, pm, "Subject", k);
	case IMAP_SK_HEADER:
		str_copyn(field, k->field, k->field_len, sizeof field);
		return header_match(op, pm, field, k);
	case IMAP_SK_BODY:
	case IMAP_SK_TEXT:
		if (pm == NULL)
			return false;
		buf_reset(&op->text);
		imap_msg_body_text(pm, k->key == IMAP_SK_TEXT, &op->text);
		return imap_text_match(buf_rptr(&op->text), buf_unread(&op->text), k->str, k->str_len);
	case IMAP_SK_SINCE:
		return day >= kday;
	case IMAP_SK_BEFORE:
		return day < kday;
	case IMAP_SK_ON:
		return day == kday;
	case IMAP_SK_SENTSINCE:
		return sent_day(pm, m) >= kday;
	case IMAP_SK_SENTBEFORE:
		return sent_day(pm, m) < kday;
	case IMAP_SK_SENTON:
		return sent_day(pm, m) == kday;
	case IMAP_SK_LARGER:
		return m->size > k->num;
	case IMAP_SK_SMALLER:
		return m->size < k->num;
	case IMAP_SK_MODSEQ:
		return m->modseq >= k->num;
	case IMAP_SK_UID:
		return in_set(&k->set, m->uid, s->uids[s->nmsgs - 1]);
	case IMAP_SK_SEQ:
		return in_set(&k->set, seq, (uint32_t)s->nmsgs);
	}
	return false;
}

static void
search_each(struct imapd_sess *s, struct walk *w, uint32_t seq, const struct mbox_msg *m,
    const struct imap_msg *pm)
{
	struct search_op *op = (struct search_op *)w;
	enum tri r = match3(s, op, op->prog, seq, m, pm, w->header_only);

	if (r == T_MAYBE) {
		if (op->later == NULL)
			op->later = xcalloc(w->n, sizeof *op->later);
		op->later[op->nlater++] = seq;
		return;
	}
	if (r == T_NO)
		return;
	if (op->hits == NULL)
		op->hits = xcalloc(w->n, sizeof *op->hits);
	op->hits[op->nhits++] = seq;
	if (m->modseq > op->maxmodseq)
		op->maxmodseq = m->modseq;
}

static int
cmp_seq(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void
search_end(struct imapd_sess *s, struct walk *w)
{
	struct search_op *op = (struct search_op *)w;
	bool failed = w->failed;

	if (!imapd__gone(s) && !failed && op->nlater > 0) {
		/* Second walk: the messages whose header did not settle it, whole. */
		size_t n = op->nlater;

		walk_free(s, w);
		memset(w->ring, 0, sizeof w->ring);
		w->seqs = op->later;
		w->n = n;
		w->i = w->issued = 0;
		w->need = NEED_FULL;
		w->raw_only = false;
		op->later = NULL;
		op->nlater = 0;
		walk_next(s);
		return;
	}
	if (!imapd__gone(s) && !failed) {
		struct buf b;

		buf_init(&b);
		buf_appends(&b, "* SEARCH");
		/* Found in two walks: answered in ascending order. */
		if (op->nhits > 1)
			qsort(op->hits, op->nhits, sizeof *op->hits, cmp_seq);
		for (size_t i = 0; i < op->nhits; i++)
			buf_appendf(&b, " %" PRIu32, s->uid ? s->uids[op->hits[i] - 1] : op->hits[i]);
		if (op->modseq && op->nhits > 0)
			buf_appendf(&b, " (MODSEQ %" PRIu64 ")", op->maxmodseq);
		buf_appends(&b, "\r\n");
		imapd__write(s, buf_rptr(&b), buf_unread(&b));
		buf_free(&b);
	}
	walk_free(s, w);
	imap_search_free(op->prog);
	free(op->hits);
	free(op->later);
	buf_free(&op->text);
	buf_free(&op->fold);
	free(op);
	s->op = NULL;
	if (failed && !imapd__gone(s))
		imapd__tagged(s, "NO", "UNAVAILABLE", "SEARCH failed: temporary failure, try again later");
	else
		imapd__tagged(s, "OK", NULL, "SEARCH completed");
}

void
imapd__search(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	struct search_op *op;
	char err[IMAP_ERR_MAX];
	int rc;

	if (a >= e) {
		imapd__bad(s, "Syntax: SEARCH [CHARSET charset] key ...");
		return;
	}
	op = xcalloc(1, sizeof *op);
	rc = imap_search_parse(a, e, &op->prog, err, sizeof err);
	if (rc == -ENOTSUP) {
		free(op);
		imapd__tagged(s, "NO", "BADCHARSET (UTF-8 US-ASCII)", "%s", err);
		return;
	}
	if (rc < 0) {
		free(op);
		imapd__bad(s, "%s", err);
		return;
	}
	buf_init(&op->text);
	buf_init(&op->fold);
	op->w.need = search_need(op->prog, &op->modseq);
	/* TEXT alone reads the header's bytes first, unparsed (raw_header_has). */
	op->w.raw_only = op->w.need == NEED_HEAD && !header_keys(op->prog);
	if (op->modseq)
		s->condstore = true;
	op->w.n = s->nmsgs;
	if (op->w.n > 0) {
		op->w.seqs = xcalloc(op->w.n, sizeof *op->w.seqs);
		for (size_t i = 0; i < op->w.n; i++)
			op->w.seqs[i] = (uint32_t)(i + 1);
	}
	op->w.each = search_each;
	op->w.end = search_end;
	s->op = op;
	walk_next(s);
}
