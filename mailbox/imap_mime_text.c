/*
 * imap_mime_text - what SEARCH reads (RFC 3501 6.4.4): header values
 * and body text decoded to UTF-8, case-insensitive matching, the Date
 * field.  See imap_mime.h.  Decoding is GMime's (RFC 2047 words,
 * transfer encodings, charsets), over the part extents of imap_mime.c.
 */
#include <errno.h>
#include <glib.h>
#include <gmime/gmime.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "core/buf.h"
#include "core/rfc5322.h"
#include "mailbox/imap_mime.h"
#include "mailbox/imap_mime_int.h"

/* Bytes read from a decoding stream at a time. */
#define READ_CHUNK 4096
/* Seconds in a day. */
#define DAY_SECONDS 86400

/* room - bytes out may still take within the search text bound. */
static size_t
room(const struct buf *out)
{
	return out->len < IMAP_MIME_TEXT_MAX ? IMAP_MIME_TEXT_MAX - out->len : 0;
}

/* append_valid - s[0..len) as valid UTF-8 onto out, cut to the bound at a character. */
static void
append_valid(struct buf *out, const char *s, size_t len)
{
	gchar *v = g_utf8_make_valid(s, (gssize)len);
	size_t n = strlen(v), r = room(out);

	if (n > r) {
		n = r;
		while (n > 0 && ((unsigned char)v[n] & 0xc0) == 0x80)
			n--;
	}
	buf_append(out, v, n);
	g_free(v);
}

/* decoded_value - field f[0..fl)'s value, unfolded and RFC 2047 decoded, onto out. */
static void
decoded_value(const char *f, size_t fl, struct buf *out)
{
	const char *colon = rfc5322_field_colon(f, fl);
	struct buf t = BUF_INIT;
	char *d;

	if (colon == NULL)
		return;
	for (const char *p = colon + 1; p < f + fl; p++)
		if (*p != '\r' && *p != '\n' && *p != '\0')
			buf_appendc(&t, *p);
	d = g_mime_utils_header_decode_text(NULL, t.data != NULL ? t.data : "");
	if (d != NULL) {
		g_strstrip(d);
		append_valid(out, d, strlen(d));
		g_free(d);
	}
	buf_free(&t);
}

/* header_lines - every field of block h, "Name: decoded value" a line, onto out. */
static void
header_lines(const char *h, size_t hlen, struct buf *out)
{
	struct rfc5322_scan s;
	const char *f, *colon;
	size_t fl;

	rfc5322_scan_init(&s, h, hlen);
	while (room(out) > 0 && rfc5322_next(&s, &f, &fl)) {
		if ((colon = rfc5322_field_colon(f, fl)) == NULL)
			continue;
		append_valid(out, f, (size_t)(colon - f) + 1);
		buf_appendc(out, ' ');
		decoded_value(f, fl, out);
		buf_appendc(out, '\n');
	}
}

size_t
imap_msg_header_text(const struct imap_msg *m, const char *name, struct buf *out)
{
	struct rfc5322_scan s;
	const char *f;
	size_t fl, found = 0;

	rfc5322_scan_init(&s, m->raw, m->root.bs);
	while (rfc5322_next(&s, &f, &fl)) {
		if (!rfc5322_field_is(f, fl, name))
			continue;
		if (found++ > 0 && room(out) > 0)
			buf_appendc(out, '\n');
		if (room(out) > 0)
			decoded_value(f, fl, out);
	}
	return found;
}

/* part_text - leaf n's body, transfer-decoded and made UTF-8, onto out. */
static void
part_text(const struct imap_msg *m, const struct imap_node *n, struct buf *out)
{
	GMimeContentEncoding enc = g_mime_part_get_content_encoding(GMIME_PART(n->obj));
	const char *charset = g_mime_object_get_content_type_parameter(n->obj, "charset");
	GMimeStream *sub, *fs;
	struct buf t = BUF_INIT;
	char chunk[READ_CHUNK];
	ssize_t got;

	sub = g_mime_stream_substream(m->stream, (gint64)n->bs, (gint64)n->end);
	fs = g_mime_stream_filter_new(sub);
	if (enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
	    enc == GMIME_CONTENT_ENCODING_UUENCODE) {
		GMimeFilter *f = g_mime_filter_basic_new(enc, FALSE);

		g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f);
		g_object_unref(f);
	}
	if (charset != NULL && g_ascii_strcasecmp(charset, "utf-8") != 0 &&
	    g_ascii_strcasecmp(charset, "us-ascii") != 0) {
		GMimeFilter *f = g_mime_filter_charset_new(charset, "UTF-8");

		if (f != NULL) {
			g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f);
			g_object_unref(f);
		}
	}
	/* Read no more than the bound: a decoded part is never held whole. */
	while (t.len < room(out) && (got = g_mime_stream_read(fs, chunk, sizeof chunk)) > 0)
		buf_append(&t, chunk, (size_t)got);
	if (t.len > 0)
		append_valid(out, t.data, t.len);
	buf_free(&t);
	g_object_unref(fs);
	g_object_unref(sub);
}

/* text_of - the searchable text of entity n, onto out. */
static void
text_of(const struct imap_msg *m, const struct imap_node *n, struct buf *out)
{
	GMimeContentType *ct;

	if (room(out) == 0)
		return;
	if (n->kind == IMAP_NODE_MULTI) {
		for (size_t i = 0; i < n->nparts; i++)
			text_of(m, &n->parts[i], out);
		return;
	}
	if (n->kind == IMAP_NODE_MESSAGE) {
		if (n->nparts == 1) {
			header_lines(m->raw + n->parts[0].hs, n->parts[0].bs - n->parts[0].hs, out);
			text_of(m, &n->parts[0], out);
		}
		return;
	}
	ct = n->obj != NULL ? g_mime_object_get_content_type(n->obj) : NULL;
	if (n->obj == NULL || (GMIME_IS_PART(n->obj) && ct != NULL &&
	    g_ascii_strcasecmp(g_mime_content_type_get_media_type(ct), "text") == 0)) {
		size_t mark = out->len;

		if (n->obj != NULL)
			part_text(m, n, out);
		else
			append_valid(out, m->raw + n->bs, n->end - n->bs);
		if (out->len > mark && room(out) > 0)
			buf_appendc(out, '\n');
	}
}

void
imap_msg_body_text(const struct imap_msg *m, bool with_header, struct buf *out)
{
	if (with_header)
		header_lines(m->raw, m->root.bs, out);
	text_of(m, &m->root, out);
}

void
imap_text_fold(const char *s, size_t len, struct buf *out)
{
	gchar *v = g_utf8_make_valid(s, (gssize)len);
	gchar *f = g_utf8_casefold(v, -1);

	buf_appends(out, f);
	g_free(f);
	g_free(v);
}

static bool
all_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

/*
 * ascii_match - needle in hay, ASCII letters compared without case: what
 * Unicode case folding gives when both are ASCII (no folding of an ASCII
 * character leaves ASCII or joins two), without building folded copies.
 */
static bool
ascii_match(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
	unsigned char first = (unsigned char)g_ascii_tolower(needle[0]);

	for (size_t i = 0; i + nlen <= hlen; i++) {
		if ((unsigned char)g_ascii_tolower(hay[i]) != first)
			continue;
		if (g_ascii_strncasecmp(hay + i, needle, nlen) == 0)
			return true;
	}
	return false;
}

bool
imap_text_match(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
	struct buf h = BUF_INIT, n = BUF_INIT;
	bool found;

	if (nlen == 0)
		return true;
	if (memchr(needle, '\0', nlen) == NULL && memchr(hay, '\0', hlen) == NULL &&
	    all_ascii(needle, nlen) && all_ascii(hay, hlen))
		return ascii_match(hay, hlen, needle, nlen);
	imap_text_fold(hay, hlen, &h);
	imap_text_fold(needle, nlen, &n);
	found = n.len == 0 || (h.len > 0 && memmem(h.data, h.len, n.data, n.len) != NULL);
	buf_free(&h);
	buf_free(&n);
	return found;
}

int
imap_msg_date(const struct imap_msg *m, time_t *when, long *day)
{
	struct buf tmp = BUF_INIT;
	const char *v;
	size_t vlen;
	bool present = imap_mime__field(m->raw, m->root.bs, "Date", &tmp, &v, &vlen);
	GDateTime *dt, *midnight;

	buf_free(&tmp);
	if (!present)
		return -ENOENT;
	dt = m->msg != NULL ? g_mime_message_get_date(m->msg) : NULL;
	if (dt == NULL)
		return -EINVAL;
	*when = (time_t)g_date_time_to_unix(dt);
	/* The calendar day as written, in the field's own zone. */
	midnight = g_date_time_new_utc(g_date_time_get_year(dt), g_date_time_get_month(dt),
	    g_date_time_get_day_of_month(dt), 0, 0, 0);
	if (midnight == NULL)
		return -EINVAL;
	*day = (long)(g_date_time_to_unix(midnight) / DAY_SECONDS);
	g_date_time_unref(midnight);
	return 0;
}
