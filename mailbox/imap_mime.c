/*
 * imap_mime - the parsed message: GMime's MIME tree, the byte extent of
 * every entity, BODY/BODYSTRUCTURE and BODY[section].  See imap_mime.h;
 * ENVELOPE and IMAP strings are imap_mime_env.c's, search text
 * imap_mime_text.c's.
 *
 * Extents: GMime gives the tree (which entity is a multipart, its
 * boundary, its parts) but not where a multipart or an embedded message
 * ends.  So the extents are laid down from the top: the top message is
 * raw[0..len); a header ends at its first empty line (core/rfc5322, the
 * one header scanner); a multipart's body is cut at its boundary's
 * delimiter lines as GMime recognises them ("--" boundary, optionally
 * "--", then only white space), the line end before a delimiter
 * belonging to the delimiter (RFC 2046 5.1.1); an embedded message is
 * its part's whole body.  Cutting inside the parent's extent only gives
 * an outer boundary precedence over an inner one, as in GMime.  The
 * i-th range found goes with GMime's i-th part; when the counts differ
 * (broken MIME), only the parts both have are described.  The tests
 * check every leaf's range against GMime's own content stream.
 */
#include <ctype.h>
#include <errno.h>
#include <gmime/gmime.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/rfc5322.h"
#include "core/xmalloc.h"
#include "mailbox/bounce_int.h"
#include "mailbox/imap_mime.h"
#include "mailbox/imap_mime_int.h"

/* Most field names in one HEADER.FIELDS list. */
#define FIELDS_MAX 100
/* Longest field name in a HEADER.FIELDS list. */
#define FIELD_NAME_MAX 256
/* Longest part number in a section ("1.4294967295" is enough). */
#define PART_NUM_MAX 1000000000u

/* --- extents ------------------------------------------------------------------------ */

/* line_end - the end of the line starting at p (after its LF, or end). */
static const char *
line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl != NULL ? nl + 1 : end;
}

/*
 * delimiter - whether line [p, e) is "--" boundary, or "--" boundary "--"
 * (*close set), followed by white space only.
 */
static bool
delimiter(const char *p, const char *e, const char *boundary, size_t blen, bool *close)
{
	const char *q;

	if ((size_t)(e - p) < blen + 2 || p[0] != '-' || p[1] != '-' ||
	    memcmp(p + 2, boundary, blen) != 0)
		return false;
	q = p + 2 + blen;
	*close = e - q >= 2 && q[0] == '-' && q[1] == '-';
	if (*close)
		q += 2;
	for (; q < e; q++)
		if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
			return false;
	return true;
}

/* before_eol - p moved back over the line end just before it, not below floor. */
static size_t
before_eol(const char *raw, size_t p, size_t floor)
{
	if (p > floor && raw[p - 1] == '\n')
		p--;
	if (p > floor && raw[p - 1] == '\r')
		p--;
	return p;
}

static void node_build(struct imap_msg *m, struct imap_node *n, GMimeObject *obj, int depth);

/*
 * multi_cut - the ranges of multipart n's parts in its body, matched
 * with GMime's parts; each child built in turn.
 */
static void
multi_cut(struct imap_msg *m, struct imap_node *n, int depth)
{
	GMimeMultipart *mp = GMIME_MULTIPART(n->obj);
	const char *boundary = g_mime_multipart_get_boundary(mp);
	int count = g_mime_multipart_get_count(mp);
	const char *p = m->raw + n->bs, *end = m->raw + n->end;
	size_t blen, want, k = 0, start = 0;
	bool open = false, close = false;

	if (boundary == NULL || count <= 0)
		return;
	want = (size_t)count;
	if (want > IMAP_MIME_PARTS_MAX - m->nnodes)
		want = IMAP_MIME_PARTS_MAX - m->nnodes;
	if (want == 0)
		return;
	blen = strlen(boundary);
	n->parts = xcalloc(want, sizeof *n->parts);
	while (p < end && k < want && !close) {
		const char *e = line_end(p, end);

		if (delimiter(p, e, boundary, blen, &close)) {
			size_t at = (size_t)(p - m->raw);

			if (open) {
				n->parts[k].hs = start;
				n->parts[k].end = before_eol(m->raw, at, start);
				k++;
			}
			open = !close;
			start = (size_t)(e - m->raw);
		}
		p = e;
	}
	if (open && k < want) {
		/* No close delimiter: the last part runs to the end of the body. */
		n->parts[k].hs = start;
		n->parts[k].end = n->end;
		k++;
	}
	n->nparts = k;
	m->nnodes += k;
	for (size_t i = 0; i < k; i++)
		node_build(m, &n->parts[i], g_mime_multipart_get_part(mp, (int)i), depth + 1);
}

/*
 * node_build - n's header end, kind and children, n->hs and n->end set;
 * obj is its GMime object (NULL: none).
 */
static void
node_build(struct imap_msg *m, struct imap_node *n, GMimeObject *obj, int depth)
{
	n->obj = obj;
	n->bs = n->hs + rfc5322_head_len(m->raw + n->hs, n->end - n->hs);
	n->kind = IMAP_NODE_LEAF;
	if (obj == NULL || depth >= IMAP_MIME_DEPTH_MAX)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		n->kind = IMAP_NODE_MULTI;
		multi_cut(m, n, depth);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *em = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));

		n->kind = IMAP_NODE_MESSAGE;
		if (m->nnodes >= IMAP_MIME_PARTS_MAX)
			return;
		n->parts = xcalloc(1, sizeof *n->parts);
		n->nparts = 1;
		m->nnodes++;
		n->parts[0].hs = n->bs;
		n->parts[0].end = n->end;
		n->parts[0].msg_root = true;
		node_build(m, &n->parts[0], em != NULL ? g_mime_message_get_mime_part(em) : NULL,
		    depth + 1);
	}
}

static void
node_free(struct imap_node *n)
{
	for (size_t i = 0; i < n->nparts; i++)
		node_free(&n->parts[i]);
	free(n->parts);
}

/* --- the handle ------------------------------------------------------------------------ */

struct imap_msg *
imap_msg_parse(const char *raw, size_t len)
{
	struct imap_msg *m = xcalloc(1, sizeof *m);
	GMimeParser *p;
	GByteArray *ba;

	bounce__gmime_init();
	m->stream = g_mime_stream_mem_new_with_buffer(raw != NULL ? raw : "", raw != NULL ? len : 0);
	ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(m->stream));
	m->raw = ba->len > 0 ? (const char *)ba->data : "";
	m->len = ba->len;
	p = g_mime_parser_new_with_stream(m->stream);
	g_mime_parser_set_format(p, GMIME_FORMAT_MESSAGE);
	m->msg = g_mime_parser_construct_message(p, NULL);
	g_object_unref(p);
	m->root.hs = 0;
	m->root.end = m->len;
	m->root.msg_root = true;
	m->nnodes = 1;
	node_build(m, &m->root, m->msg != NULL ? g_mime_message_get_mime_part(m->msg) : NULL, 0);
	return m;
}

void
imap_msg_free(struct imap_msg *m)
{
	if (m == NULL)
		return;
	node_free(&m->root);
	if (m->msg != NULL)
		g_object_unref(m->msg);
	g_object_unref(m->stream);
	free(m);
}

const char *
imap_msg_raw(const struct imap_msg *m, size_t *len)
{
	*len = m->len;
	return m->raw;
}

/* --- BODY, BODYSTRUCTURE ---------------------------------------------------------------- */

/* count_lines - lines of s[0..len), a last line without line end counted. */
static size_t
count_lines(const char *s, size_t len)
{
	size_t n = 0;
	const char *p = s, *end = s + len, *nl;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		n++;
		p = nl + 1;
	}
	return p < end ? n + 1 : n;
}

/* cstring - append NUL-terminated s (NULL: NIL). */
static void
cstring(struct buf *out, const char *s)
{
	imap_mime__nstring(out, s, s != NULL ? strlen(s) : 0);
}

/* params - ("name" "value" ...) or NIL; values as GMime decoded them (RFC 2231). */
static void
params(struct buf *out, GMimeParamList *pl)
{
	int n = pl != NULL ? g_mime_param_list_length(pl) : 0;

	if (n <= 0) {
		buf_appends(out, "NIL");
		return;
	}
	buf_appendc(out, '(');
	for (int i = 0; i < n; i++) {
		GMimeParam *prm = g_mime_param_list_get_parameter_at(pl, i);
		const char *v = g_mime_param_get_value(prm);

		if (i > 0)
			buf_appendc(out, ' ');
		cstring(out, g_mime_param_get_name(prm));
		buf_appendc(out, ' ');
		cstring(out, v != NULL ? v : "");
	}
	buf_appendc(out, ')');
}

/* hfield - the raw value of field name in n's header as an nstring. */
static void
hfield(const struct imap_msg *m, const struct imap_node *n, const char *name, struct buf *tmp,
    struct buf *out)
{
	const char *v;
	size_t vlen;

	if (imap_mime__field(m->raw + n->hs, n->bs - n->hs, name, tmp, &v, &vlen))
		imap_mime__nstring(out, v, vlen);
	else
		buf_appends(out, "NIL");
}

/* language - Content-Language as a list of its tags, or NIL. */
static void
language(const struct imap_msg *m, const struct imap_node *n, struct buf *tmp, struct buf *out)
{
	const char *v, *p, *end;
	size_t vlen, items = 0;

	if (!imap_mime__field(m->raw + n->hs, n->bs - n->hs, "Content-Language", tmp, &v, &vlen)) {
		buf_appends(out, "NIL");
		return;
	}
	buf_appendc(out, '(');
	for (p = v, end = v + vlen; p < end;) {
		const char *q = p;

		while (q < end && *q != ',')
			q++;
		const char *a = p, *b = q;

		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (b > a) {
			if (items++ > 0)
				buf_appendc(out, ' ');
			imap_mime__string(out, a, (size_t)(b - a));
		}
		p = q < end ? q + 1 : q;
	}
	if (items == 0)
		buf_appends(out, "\"\"");
	buf_appendc(out, ')');
}

/* ext_common - body-fld-dsp SP body-fld-lang SP body-fld-loc. */
static void
ext_common(const struct imap_msg *m, const struct imap_node *n, struct buf *tmp, struct buf *out)
{
	GMimeContentDisposition *d = n->obj != NULL ? g_mime_object_get_content_disposition(n->obj) : NULL;
	const char *dv = d != NULL ? g_mime_content_disposition_get_disposition(d) : NULL;

	if (dv != NULL && *dv != '\0') {
		buf_appendc(out, '(');
		cstring(out, dv);
		buf_appendc(out, ' ');
		params(out, g_mime_content_disposition_get_parameters(d));
		buf_appendc(out, ')');
	} else {
		buf_appends(out, "NIL");
	}
	buf_appendc(out, ' ');
	language(m, n, tmp, out);
	buf_appendc(out, ' ');
	hfield(m, n, "Content-Location", tmp, out);
}

static void body(const struct imap_msg *m, const struct imap_node *n, bool ext, struct buf *tmp,
    struct buf *out);

/* empty_text - the part a multipart without parts lists. */
static void
empty_text(bool ext, struct buf *out)
{
	buf_appends(out, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0");
	if (ext)
		buf_appends(out, " NIL NIL NIL NIL");
	buf_appendc(out, ')');
}

static void
body_multi(const struct imap_msg *m, const struct imap_node *n, bool ext, struct buf *tmp,
    struct buf *out)
{
	GMimeContentType *ct = g_mime_object_get_content_type(n->obj);

	buf_appendc(out, '(');
	for (size_t i = 0; i < n->nparts; i++)
		body(m, &n->parts[i], ext, tmp, out);
	if (n->nparts == 0)
		empty_text(ext, out);
	buf_appendc(out, ' ');
	cstring(out, g_mime_content_type_get_media_subtype(ct));
	if (ext) {
		buf_appendc(out, ' ');
		params(out, g_mime_content_type_get_parameters(ct));
		buf_appendc(out, ' ');
		ext_common(m, n, tmp, out);
	}
	buf_appendc(out, ')');
}

/* body - one body (RFC 3501 7.4.2 "body"), n being any entity. */
static void
body(const struct imap_msg *m, const struct imap_node *n, bool ext, struct buf *tmp, struct buf *out)
{
	GMimeContentType *ct = n->obj != NULL ? g_mime_object_get_content_type(n->obj) : NULL;
	const char *type = ct != NULL ? g_mime_content_type_get_media_type(ct) : NULL;
	const char *sub = ct != NULL ? g_mime_content_type_get_media_subtype(ct) : NULL;
	bool text, has_ct;
	const char *v;
	size_t vlen;

	if (n->kind == IMAP_NODE_MULTI) {
		body_multi(m, n, ext, tmp, out);
		return;
	}
	has_ct = imap_mime__field(m->raw + n->hs, n->bs - n->hs, "Content-Type", tmp, &v, &vlen);
	buf_appendc(out, '(');
	if (n->kind == IMAP_NODE_MESSAGE) {
		buf_appends(out, "\"message\" \"rfc822\"");
		text = false;
	} else if (type == NULL || sub == NULL) {
		/* No object: the default of RFC 2045 5.2. */
		buf_appends(out, "\"text\" \"plain\"");
		text = true;
	} else {
		cstring(out, type);
		buf_appendc(out, ' ');
		cstring(out, sub);
		text = g_ascii_strcasecmp(type, "text") == 0;
	}
	buf_appendc(out, ' ');
	if (ct != NULL && has_ct)
		params(out, g_mime_content_type_get_parameters(ct));
	else if (n->kind == IMAP_NODE_LEAF)
		buf_appends(out, "(\"charset\" \"us-ascii\")");
	else
		buf_appends(out, "NIL");
	buf_appendc(out, ' ');
	hfield(m, n, "Content-ID", tmp, out);
	buf_appendc(out, ' ');
	hfield(m, n, "Content-Description", tmp, out);
	buf_appendc(out, ' ');
	if (imap_mime__field(m->raw + n->hs, n->bs - n->hs, "Content-Transfer-Encoding", tmp, &v, &vlen) &&
	    vlen > 0)
		imap_mime__string(out, v, vlen);
	else
		buf_appends(out, "\"7BIT\"");
	buf_appendf(out, " %zu", n->end - n->bs);
	if (n->kind == IMAP_NODE_MESSAGE) {
		const struct imap_node *em = &n->parts[0];
		struct imap_node none;

		if (n->nparts == 0) {
			/* Past the part limit: an empty message stands in. */
			memset(&none, 0, sizeof none);
			none.hs = none.bs = none.end = n->bs;
			none.msg_root = true;
			em = &none;
		}
		buf_appendc(out, ' ');
		imap_mime__envelope(m->raw + em->hs, em->bs - em->hs, out);
		buf_appendc(out, ' ');
		body(m, em, ext, tmp, out);
		buf_appendf(out, " %zu", count_lines(m->raw + n->bs, n->end - n->bs));
	} else if (text) {
		buf_appendf(out, " %zu", count_lines(m->raw + n->bs, n->end - n->bs));
	}
	if (ext) {
		buf_appendc(out, ' ');
		hfield(m, n, "Content-MD5", tmp, out);
		buf_appendc(out, ' ');
		ext_common(m, n, tmp, out);
	}
	buf_appendc(out, ')');
}

void
imap_msg_bodystructure(const struct imap_msg *m, bool ext, struct buf *out)
{
	struct buf tmp = BUF_INIT;

	body(m, &m->root, ext, &tmp, out);
	buf_free(&tmp);
}

void
imap_msg_envelope(const struct imap_msg *m, struct buf *out)
{
	imap_mime__envelope(m->raw, m->root.bs, out);
}

/* --- sections --------------------------------------------------------------------------- */

enum sect_kind { SECT_ALL, SECT_HEADER, SECT_TEXT, SECT_MIME, SECT_FIELDS, SECT_FIELDS_NOT };

/* A parsed HEADER.FIELDS list: names point into the spec. */
struct fields {
	const char *name[FIELDS_MAX];
	size_t len[FIELDS_MAX];
	size_t n;
};

/* kw - whether p[0..len) starts with keyword k (any case); *p advanced past it. */
static bool
kw(const char **p, const char *end, const char *k)
{
	size_t n = strlen(k);

	if ((size_t)(end - *p) < n || strncasecmp(*p, k, n) != 0)
		return false;
	*p += n;
	return true;
}

/* field_list - " (name name ...)" into f; -EINVAL when malformed. */
static int
field_list(const char *p, const char *end, struct fields *f)
{
	if (p >= end || *p != ' ')
		return -EINVAL;
	p++;
	if (p >= end || *p != '(')
		return -EINVAL;
	p++;
	f->n = 0;
	for (;;) {
		const char *s = p;

		if (f->n == FIELDS_MAX)
			return -EINVAL;
		if (p < end && *p == '"') {
			/* A quoted field name may not hold quotes or backslashes. */
			s = ++p;
			while (p < end && *p != '"' && *p != '\\')
				p++;
			if (p >= end || *p != '"')
				return -EINVAL;
			f->name[f->n] = s;
			f->len[f->n] = (size_t)(p - s);
			p++;
		} else {
			while (p < end && (unsigned char)*p > ' ' && *p < 0x7f && *p != '(' &&
			    *p != ')' && *p != '"' && *p != ':')
				p++;
			f->name[f->n] = s;
			f->len[f->n] = (size_t)(p - s);
		}
		if (f->len[f->n] == 0 || f->len[f->n] > FIELD_NAME_MAX)
			return -EINVAL;
		f->n++;
		if (p < end && *p == ' ') {
			p++;
			continue;
		}
		if (p < end && *p == ')' && p + 1 == end)
			return 0;
		return -EINVAL;
	}
}

/* field_named - whether field fl (name ':' value) is one of f's names. */
static bool
field_named(const char *fl, size_t flen, const struct fields *f)
{
	const char *colon = rfc5322_field_colon(fl, flen);
	size_t n;

	if (colon == NULL)
		return false;
	n = (size_t)(colon - fl);
	while (n > 0 && (fl[n - 1] == ' ' || fl[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < f->n; i++)
		if (f->len[i] == n && strncasecmp(f->name[i], fl, n) == 0)
			return true;
	return false;
}

/* pick_fields - the fields of header h[0..hlen) that match (or not), then CRLF. */
static void
pick_fields(const char *h, size_t hlen, const struct fields *f, bool not, struct buf *out)
{
	struct rfc5322_scan s;
	const char *fl;
	size_t flen;

	rfc5322_scan_init(&s, h, hlen);
	for (const char *start = s.p; rfc5322_next(&s, &fl, &flen); start = s.p)
		if (field_named(fl, flen, f) != not)
			buf_append(out, start, (size_t)(s.p - start));
	buf_appends(out, "\r\n");
}

/*
 * resolve - the entity part path p (numbers and dots, up to the
 * keyword) names; *rest after it.  NULL when it does not exist (rest
 * still set); -EINVAL in *err when malformed.
 */
static const struct imap_node *
resolve(const struct imap_msg *m, const char *p, const char *end, const char **rest, int *err)
{
	const struct imap_node *cur = &m->root;
	bool exists = true, first = true, at_msg = true;

	*err = 0;
	while (p < end && isdigit((unsigned char)*p)) {
		unsigned long k = 0;

		if (*p == '0') {
			*err = -EINVAL;
			return NULL;
		}
		while (p < end && isdigit((unsigned char)*p)) {
			k = k * 10 + (unsigned long)(*p - '0');
			if (k > PART_NUM_MAX) {
				*err = -EINVAL;
				return NULL;
			}
			p++;
		}
		/* Numbers after a message/rfc822 part go into its message. */
		if (exists && !first && cur->kind == IMAP_NODE_MESSAGE) {
			if (cur->nparts == 1) {
				cur = &cur->parts[0];
				at_msg = true;
			} else {
				exists = false;
			}
		}
		if (!exists) {
			/* Stays nonexistent; the rest of the spec is still checked. */
		} else if (cur->kind == IMAP_NODE_MULTI) {
			if (k <= cur->nparts)
				cur = &cur->parts[k - 1];
			else
				exists = false;
			at_msg = false;
		} else if (at_msg && k == 1) {
			/* Part 1 of a one-part message is its body: the same entity. */
			at_msg = false;
		} else {
			exists = false;
		}
		first = false;
		if (p < end && *p == '.')
			p++;
		else
			break;
	}
	/* A path ends at the end or with a dot before the keyword, never in "1." alone. */
	if (!first && ((p == end && p[-1] == '.') || (p < end && p[-1] != '.'))) {
		*err = -EINVAL;
		return NULL;
	}
	*rest = p;
	return exists ? cur : NULL;
}

int
imap_msg_section(const struct imap_msg *m, const char *spec, size_t len, struct buf *scratch,
    const char **data, size_t *dlen)
{
	const char *p = spec, *end = spec + len, *rest;
	const struct imap_node *n, *target;
	enum sect_kind kind;
	struct fields f = { .n = 0 };
	bool path;
	int err;

	*data = m->raw;
	*dlen = 0;
	buf_reset(scratch);
	n = resolve(m, p, end, &rest, &err);
	if (err < 0)
		return err;
	path = rest > spec;
	p = rest;
	if (p == end)
		kind = SECT_ALL;
	else if (kw(&p, end, "HEADER.FIELDS.NOT"))
		kind = SECT_FIELDS_NOT;
	else if (kw(&p, end, "HEADER.FIELDS"))
		kind = SECT_FIELDS;
	else if (kw(&p, end, "HEADER"))
		kind = SECT_HEADER;
	else if (kw(&p, end, "TEXT"))
		kind = SECT_TEXT;
	else if (path && kw(&p, end, "MIME"))
		kind = SECT_MIME;
	else
		return -EINVAL;
	if (kind == SECT_FIELDS || kind == SECT_FIELDS_NOT) {
		if ((err = field_list(p, end, &f)) < 0)
			return err;
	} else if (p != end) {
		return -EINVAL;
	}
	if (n == NULL)
		return 0;
	if (!path) {
		if (kind == SECT_ALL) {
			*dlen = m->len;
			return 0;
		}
		target = n;
	} else if (kind == SECT_ALL) {
		*data = m->raw + n->bs;
		*dlen = n->end - n->bs;
		return 0;
	} else if (kind == SECT_MIME) {
		*data = m->raw + n->hs;
		*dlen = n->bs - n->hs;
		return 0;
	} else if (n->kind == IMAP_NODE_MESSAGE && n->nparts == 1) {
		target = &n->parts[0];
	} else {
		return 0;
	}
	if (kind == SECT_HEADER) {
		*data = m->raw + target->hs;
		*dlen = target->bs - target->hs;
	} else if (kind == SECT_TEXT) {
		*data = m->raw + target->bs;
		*dlen = target->end - target->bs;
	} else {
		pick_fields(m->raw + target->hs, target->bs - target->hs, &f,
		    kind == SECT_FIELDS_NOT, scratch);
		*data = scratch->data;
		*dlen = scratch->len;
	}
	return 0;
}

void
imap_partial(size_t len, uint64_t origin, uint64_t count, size_t *off, size_t *n)
{
	if (origin >= len) {
		*off = len;
		*n = 0;
		return;
	}
	*off = (size_t)origin;
	*n = count < len - *off ? (size_t)count : len - *off;
}

/* --- output check ------------------------------------------------------------------------ */

bool
imap_syntax_check(const char *s, size_t len, size_t *nlists)
{
	size_t depth = 0, lists = 0, i = 0;
	bool counting = true, opened = false;

	while (i < len) {
		char c = s[i];

		if (c == '"') {
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
					return false;
				if (s[i] == '\\' && ++i >= len)
					return false;
			}
			if (i >= len)
				return false;
			i++;
			if (depth == 1)
				counting = false;
		} else if (c == '{') {
			size_t n = 0, j = i + 1;

			while (j < len && isdigit((unsigned char)s[j]) && n < len)
				n = n * 10 + (size_t)(s[j++] - '0');
			if (j == i + 1 || len - j < 3 || s[j] != '}' || s[j + 1] != '\r' ||
			    s[j + 2] != '\n' || len - (j + 3) < n)
				return false;
			i = j + 3 + n;
			if (depth == 1)
				counting = false;
		} else if (c == '(') {
			if (depth == 0 && opened)
				return false;
			if (depth == 1 && counting)
				lists++;
			depth++;
			opened = true;
			i++;
		} else if (c == ')') {
			if (depth == 0)
				return false;
			depth--;
			i++;
		} else {
			if (c == '\r' || c == '\n' || c == '\0')
				return false;
			if (depth == 1 && c != ' ')
				counting = false;
			i++;
		}
	}
	if (depth != 0)
		return false;
	if (nlists != NULL)
		*nlists = lists;
	return true;
}
