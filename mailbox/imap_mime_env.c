/*
 * imap_mime_env - ENVELOPE (RFC 3501 7.4.2) and the IMAP strings every
 * FETCH item is written with.  See imap_mime.h.
 *
 * The address fields are read here and not with GMime's address parser
 * because ENVELOPE carries the display names as written, RFC 2047
 * encoded-words still encoded, and GMime only hands out decoded names.
 * The reader is lenient in the way of RFC 5322 4.4: it takes whatever
 * words precede '<', ':' or '@' as the phrase, a comment after a bare
 * address as the name, an obsolete route as the adl, and skips bytes it
 * cannot place; it always moves forward, so it is linear.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "core/buf.h"
#include "core/rfc5322.h"
#include "mailbox/imap_mime.h"
#include "mailbox/imap_mime_int.h"

/* Deepest comment nesting followed; deeper parentheses are plain text. */
#define COMMENT_DEPTH_MAX 32

/* --- IMAP strings ----------------------------------------------------------------------- */

void
imap_mime__string(struct buf *out, const char *s, size_t len)
{
	bool quoted = len <= IMAP_MIME_QUOTED_MAX;
	size_t n = 0;

	for (size_t i = 0; i < len && quoted; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0' || c >= 0x80 || c == '\r' || c == '\n')
			quoted = false;
	}
	if (quoted) {
		buf_appendc(out, '"');
		for (size_t i = 0; i < len; i++) {
			if (s[i] == '"' || s[i] == '\\')
				buf_appendc(out, '\\');
			buf_appendc(out, s[i]);
		}
		buf_appendc(out, '"');
		return;
	}
	/* A literal may not carry NUL (RFC 3501 4.3): those bytes are dropped. */
	for (size_t i = 0; i < len; i++)
		n += s[i] != '\0';
	buf_appendf(out, "{%zu}\r\n", n);
	for (size_t i = 0; i < len; i++)
		if (s[i] != '\0')
			buf_appendc(out, s[i]);
}

void
imap_mime__nstring(struct buf *out, const char *s, size_t len)
{
	if (s == NULL)
		buf_appends(out, "NIL");
	else
		imap_mime__string(out, s, len);
}

static bool
wsp(char c)
{
	return c == ' ' || c == '\t';
}

bool
imap_mime__field(const char *h, size_t hlen, const char *name, struct buf *tmp, const char **v,
    size_t *vlen)
{
	struct rfc5322_scan s;
	const char *f, *colon, *p, *end;
	size_t fl;

	rfc5322_scan_init(&s, h, hlen);
	while (rfc5322_next(&s, &f, &fl)) {
		if (!rfc5322_field_is(f, fl, name))
			continue;
		colon = rfc5322_field_colon(f, fl);
		buf_reset(tmp);
		/* Unfold (RFC 5322 2.2.3): drop CR and LF, keep the white space. */
		for (p = colon + 1, end = f + fl; p < end; p++)
			if (*p != '\r' && *p != '\n')
				buf_appendc(tmp, *p);
		p = tmp->data != NULL ? tmp->data : "";
		end = p + tmp->len;
		while (p < end && wsp(*p))
			p++;
		while (end > p && wsp(end[-1]))
			end--;
		*v = p;
		*vlen = (size_t)(end - p);
		return true;
	}
	return false;
}

/* --- addresses ---------------------------------------------------------------------------- */

struct areader {
	const char *p, *end;
	struct buf comment; /* the last comment skipped, its text */
	size_t count;       /* addresses written */
	struct buf *out;
};

/* special - RFC 5322 specials, besides '.', which atoms here may hold. */
static bool
special(char c)
{
	return strchr("()<>@,;:\\\"[]", c) != NULL;
}

/* skip_comment - past the comment at r->p ('('), its text kept in r->comment. */
static void
skip_comment(struct areader *r)
{
	int depth = 0;

	buf_reset(&r->comment);
	for (; r->p < r->end; r->p++) {
		char c = *r->p;

		if (c == '\\' && r->p + 1 < r->end) {
			buf_appendc(&r->comment, *++r->p);
			continue;
		}
		if (c == '(' && depth < COMMENT_DEPTH_MAX) {
			if (depth++ > 0)
				buf_appendc(&r->comment, c);
			continue;
		}
		if (c == ')') {
			if (--depth == 0) {
				r->p++;
				return;
			}
		}
		buf_appendc(&r->comment, c);
	}
}

/* skip_cfws - past white space and comments; whether a comment was among them. */
static bool
skip_cfws(struct areader *r)
{
	bool comment = false;

	while (r->p < r->end) {
		if (wsp(*r->p)) {
			r->p++;
		} else if (*r->p == '(') {
			skip_comment(r);
			comment = true;
		} else {
			break;
		}
	}
	return comment;
}

/* quoted - past the quoted string at r->p, its content unescaped onto out. */
static void
quoted(struct areader *r, struct buf *out)
{
	for (r->p++; r->p < r->end && *r->p != '"'; r->p++) {
		if (*r->p == '\\' && r->p + 1 < r->end)
			r->p++;
		buf_appendc(out, *r->p);
	}
	if (r->p < r->end)
		r->p++;
}

/*
 * phrase - the words at r->p: their text (quotes removed, one space
 * between words) on words, and [*raw, *rawend) the bytes they span.
 */
static void
phrase(struct areader *r, struct buf *words, const char **raw, const char **rawend)
{
	*raw = *rawend = r->p;
	buf_reset(words);
	for (;;) {
		skip_cfws(r);
		if (r->p >= r->end || (special(*r->p) && *r->p != '"'))
			return;
		if (words->len > 0)
			buf_appendc(words, ' ');
		if (*raw == *rawend)
			*raw = r->p;
		if (*r->p == '"') {
			quoted(r, words);
		} else {
			const char *s = r->p;

			while (r->p < r->end && !wsp(*r->p) && !special(*r->p))
				r->p++;
			buf_append(words, s, (size_t)(r->p - s));
		}
		*rawend = r->p;
	}
}

/* compact - append s[0..len) without white space as an nstring, or dflt when empty. */
static void
compact(struct buf *out, const char *s, size_t len, const char *dflt)
{
	struct buf t = BUF_INIT;

	for (size_t i = 0; i < len; i++)
		if (!wsp(s[i]))
			buf_appendc(&t, s[i]);
	if (t.len > 0)
		imap_mime__string(out, t.data, t.len);
	else
		imap_mime__string(out, dflt, strlen(dflt));
	buf_free(&t);
}

/* address - one (name adl mailbox host); NULL members are NIL. */
static void
address(struct areader *r, const char *name, size_t nlen, const char *adl, size_t alen,
    const char *mbox, size_t mlen, const char *host, size_t hlen)
{
	struct buf *out = r->out;

	if (r->count >= IMAP_MIME_ADDR_MAX)
		return;
	if (r->count++ == 0)
		buf_appendc(out, '(');
	buf_appendc(out, '(');
	imap_mime__nstring(out, nlen > 0 ? name : NULL, nlen);
	buf_appendc(out, ' ');
	if (adl != NULL && alen > 0)
		compact(out, adl, alen, "");
	else
		buf_appends(out, "NIL");
	buf_appendc(out, ' ');
	if (mbox == NULL)
		buf_appends(out, "NIL");
	else
		compact(out, mbox, mlen, "MISSING_MAILBOX");
	buf_appendc(out, ' ');
	if (host == NULL)
		buf_appends(out, "NIL");
	else
		compact(out, host, hlen, "MISSING_DOMAIN");
	buf_appendc(out, ')');
}

/* upto - from r->p to the first of stop (or the end), skipping quoted strings; r->p there. */
static const char *
upto(struct areader *r, const char *stop)
{
	const char *s = r->p;

	while (r->p < r->end && strchr(stop, *r->p) == NULL) {
		if (*r->p == '"') {
			for (r->p++; r->p < r->end && *r->p != '"'; r->p++)
				if (*r->p == '\\' && r->p + 1 < r->end)
					r->p++;
			if (r->p < r->end)
				r->p++;
		} else {
			r->p++;
		}
	}
	return s;
}

/* angle - the angle address at r->p ('<'), name the phrase before it. */
static void
angle(struct areader *r, const struct buf *name)
{
	const char *adl = NULL, *lp, *dom = NULL;
	size_t alen = 0, llen, dlen = 0;

	r->p++;
	skip_cfws(r);
	if (r->p < r->end && *r->p == '@') {
		/* An obsolete route, "@a,@b:" (RFC 5322 4.4). */
		adl = upto(r, ":>");
		alen = (size_t)(r->p - adl);
		if (r->p < r->end && *r->p == ':')
			r->p++;
		else
			adl = NULL; /* no ':': not a route after all */
	}
	lp = upto(r, "@>");
	llen = (size_t)(r->p - lp);
	if (r->p < r->end && *r->p == '@') {
		r->p++;
		dom = upto(r, ">");
		dlen = (size_t)(r->p - dom);
	}
	if (r->p < r->end)
		r->p++;
	address(r, name->data, name->len, adl, alen, lp, llen, dom != NULL ? dom : "", dlen);
}

/* addr_list - the value v[0..len) of an address field as env-from etc. */
static void
addr_list(const char *v, size_t len, struct buf *out)
{
	struct areader r = { v, v + len, BUF_INIT, 0, out };
	struct buf words = BUF_INIT;
	bool group = false;

	while (r.p < r.end && r.count < IMAP_MIME_ADDR_MAX) {
		const char *raw, *rawend;

		phrase(&r, &words, &raw, &rawend);
		if (r.p >= r.end || *r.p == ',' || *r.p == ';') {
			/* A lone word: a mailbox without domain. */
			if (words.len > 0)
				address(&r, NULL, 0, NULL, 0, raw, (size_t)(rawend - raw), "", 0);
			if (r.p < r.end && *r.p == ';' && group) {
				address(&r, NULL, 0, NULL, 0, NULL, 0, NULL, 0);
				group = false;
			}
			if (r.p < r.end)
				r.p++;
		} else if (*r.p == '<') {
			angle(&r, &words);
		} else if (*r.p == ':' && !group) {
			r.p++;
			address(&r, NULL, 0, NULL, 0, words.data != NULL ? words.data : "", words.len,
			    NULL, 0);
			group = true;
		} else if (*r.p == '@') {
			const char *dom;
			size_t dlen;

			r.p++;
			dom = upto(&r, ",;(");
			dlen = (size_t)(r.p - dom);
			/* A comment after a bare address is its name, as old mailers wrote it. */
			if (skip_cfws(&r) && r.comment.len > 0)
				address(&r, r.comment.data, r.comment.len, NULL, 0, raw,
				    (size_t)(rawend - raw), dom, dlen);
			else
				address(&r, NULL, 0, NULL, 0, raw, (size_t)(rawend - raw), dom, dlen);
		} else {
			r.p++; /* a byte that has no place here */
		}
	}
	if (group)
		address(&r, NULL, 0, NULL, 0, NULL, 0, NULL, 0);
	if (r.count > 0)
		buf_appendc(out, ')');
	else
		buf_appends(out, "NIL");
	buf_free(&words);
	buf_free(&r.comment);
}

/* --- ENVELOPE ------------------------------------------------------------------------------- */

/* text_field - env-date, env-subject, ...: the value, or NIL. */
static void
text_field(const char *h, size_t hlen, const char *name, struct buf *tmp, struct buf *out)
{
	const char *v;
	size_t vlen;

	if (imap_mime__field(h, hlen, name, tmp, &v, &vlen))
		imap_mime__string(out, v, vlen);
	else
		buf_appends(out, "NIL");
}

/* addr_field - an address field as a list; false (nothing written) when it has none. */
static bool
addr_field(const char *h, size_t hlen, const char *name, struct buf *tmp, struct buf *out)
{
	const char *v;
	size_t vlen, mark = out->len;

	if (!imap_mime__field(h, hlen, name, tmp, &v, &vlen))
		return false;
	addr_list(v, vlen, out);
	if (out->len - mark == 3 && memcmp(out->data + mark, "NIL", 3) == 0) {
		out->len = mark;
		out->data[mark] = '\0';
		return false;
	}
	return true;
}

void
imap_mime__envelope(const char *h, size_t hlen, struct buf *out)
{
	static const char *const addrs[] = { "To", "Cc", "Bcc" };
	struct buf tmp = BUF_INIT, from = BUF_INIT;

	buf_appendc(out, '(');
	text_field(h, hlen, "Date", &tmp, out);
	buf_appendc(out, ' ');
	text_field(h, hlen, "Subject", &tmp, out);
	buf_appendc(out, ' ');
	if (!addr_field(h, hlen, "From", &tmp, &from))
		buf_appends(&from, "NIL");
	buf_append(out, from.data, from.len);
	/* Sender and Reply-To, absent or empty, are From (RFC 3501 7.4.2). */
	buf_appendc(out, ' ');
	if (!addr_field(h, hlen, "Sender", &tmp, out))
		buf_append(out, from.data, from.len);
	buf_appendc(out, ' ');
	if (!addr_field(h, hlen, "Reply-To", &tmp, out))
		buf_append(out, from.data, from.len);
	for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
		buf_appendc(out, ' ');
		if (!addr_field(h, hlen, addrs[i], &tmp, out))
			buf_appends(out, "NIL");
	}
	buf_appendc(out, ' ');
	text_field(h, hlen, "In-Reply-To", &tmp, out);
	buf_appendc(out, ' ');
	text_field(h, hlen, "Message-ID", &tmp, out);
	buf_appendc(out, ')');
	buf_free(&tmp);
	buf_free(&from);
}
