/*
 * imap_args - typed IMAP arguments over imap_parse's tokens.  See
 * imap_args.h.
 */
#include "mailbox/imap_args.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"
#include "core/xmalloc.h"
#include "mailbox/mutf7.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define SECS_PER_DAY 86400
#define SEQ_NUM_MAX (UINT32_MAX - 1) /* UINT32_MAX is "*" */
#define U32_DIGITS 10

/* RFC 3501 9 ATOM-CHAR. */
static bool
atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\]", c) == NULL;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* word_eq - s[0..n) equals word, ASCII case ignored. */
static bool
word_eq(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* num32 - a number of 1 to 10 digits at most max; *p advanced past it. */
static bool
num32(const char **p, const char *end, uint32_t max, uint32_t *out)
{
	const char *q = *p;
	uint64_t v = 0;

	while (q < end && is_digit(*q) && q - *p <= U32_DIGITS)
		v = v * 10 + (uint64_t)(*q++ - '0');
	if (q == *p || q - *p > U32_DIGITS || v > max)
		return false;
	*p = q;
	*out = (uint32_t)v;
	return true;
}

/* --- sequence sets ------------------------------------------------------------------- */

/* seq_end - one end of a range: "*" or an nz-number below "*". */
static int
seq_end(const char **p, const char *end, uint32_t *v, char *err, size_t errsz)
{
	if (*p < end && **p == '*') {
		(*p)++;
		*v = IMAP_SEQ_STAR;
		return 0;
	}
	if (*p == end || !is_digit(**p))
		return str_err(err, errsz, -EINVAL, "bad sequence set");
	if (**p == '0')
		return str_err(err, errsz, -EINVAL, "0 is not a message number");
	if (!num32(p, end, SEQ_NUM_MAX, v))
		return str_err(err, errsz, -EINVAL, "sequence number out of range (1 to %u)",
		    SEQ_NUM_MAX);
	return 0;
}

int
imap_seqset_parse(const char *s, size_t len, struct imap_seqset *out, char *err,
    size_t errsz)
{
	const char *p = s, *end = s + len;
	size_t n = 1;
	int rc;

	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < len; i++)
		if (s[i] == ',' && ++n > IMAP_SEQ_RANGES_MAX)
			return str_err(err, errsz, -EINVAL, "more than %d ranges in sequence set",
			    IMAP_SEQ_RANGES_MAX);
	out->v = xreallocarray(NULL, n, sizeof *out->v);
	for (;;) {
		uint32_t a, b;

		if ((rc = seq_end(&p, end, &a, err, errsz)) < 0)
			break;
		b = a;
		if (p < end && *p == ':') {
			p++;
			if ((rc = seq_end(&p, end, &b, err, errsz)) < 0)
				break;
		}
		out->v[out->n].lo = a < b ? a : b;
		out->v[out->n].hi = a < b ? b : a;
		out->n++;
		if (p == end)
			return 0;
		if (*p != ',' || out->n == n) {
			rc = str_err(err, errsz, -EINVAL, "bad sequence set");
			break;
		}
		p++;
	}
	imap_seqset_free(out);
	return rc;
}

void
imap_seqset_free(struct imap_seqset *set)
{
	free(set->v);
	set->v = NULL;
	set->n = 0;
}

/* --- FETCH --------------------------------------------------------------------------------- */

static const struct {
	const char *name;
	enum imap_fetch_kind kind;
} fetch_atts[] = {
	{ "FLAGS", IMAP_FA_FLAGS },
	{ "INTERNALDATE", IMAP_FA_INTERNALDATE },
	{ "RFC822", IMAP_FA_RFC822 },
	{ "RFC822.HEADER", IMAP_FA_RFC822_HEADER },
	{ "RFC822.SIZE", IMAP_FA_RFC822_SIZE },
	{ "RFC822.TEXT", IMAP_FA_RFC822_TEXT },
	{ "ENVELOPE", IMAP_FA_ENVELOPE },
	{ "BODY", IMAP_FA_BODY },
	{ "BODYSTRUCTURE", IMAP_FA_BODYSTRUCTURE },
	{ "UID", IMAP_FA_UID },
	{ "MODSEQ", IMAP_FA_MODSEQ },
};

/* RFC 3501 6.4.5: the macros, as their attributes. */
static const struct {
	const char *name;
	const char *atts[5];
} fetch_macros[] = {
	{ "ALL", { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", NULL } },
	{ "FAST", { "FLAGS", "INTERNALDATE", "RFC822.SIZE", NULL } },
	{ "FULL", { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY" } },
};

static const char *const section_names[] = {
	[IMAP_SEC_ALL] = "",
	[IMAP_SEC_HEADER] = "HEADER",
	[IMAP_SEC_TEXT] = "TEXT",
	[IMAP_SEC_MIME] = "MIME",
	[IMAP_SEC_FIELDS] = "HEADER.FIELDS",
	[IMAP_SEC_FIELDS_NOT] = "HEADER.FIELDS.NOT",
};

/* fields - " (name name ...)" of HEADER.FIELDS; p after the keyword. */
static int
fields(struct imap_fetch_item *it, const char *p, const char *end, char *err, size_t errsz)
{
	if (end - p < 3 || p[0] != ' ' || p[1] != '(' || end[-1] != ')')
		return str_err(err, errsz, -EINVAL, "HEADER.FIELDS needs a list of field names");
	p += 2;
	end--;
	while (p < end) {
		const char *s = p;

		if (it->nfields == IMAP_FIELDS_MAX)
			return str_err(err, errsz, -EINVAL, "more than %d header fields",
			    IMAP_FIELDS_MAX);
		if (*p == '"') {
			for (s = ++p; p < end && *p != '"'; p++)
				if (*p == '\\')
					return str_err(err, errsz, -EINVAL, "bad header field name");
			if (p == end)
				return str_err(err, errsz, -EINVAL, "unterminated quoted string");
			it->fields[it->nfields].s = s;
			it->fields[it->nfields++].len = (size_t)(p++ - s);
		} else {
			while (p < end && *p != ' ' && (atom_char((unsigned char)*p) || *p == ']'))
				p++;
			it->fields[it->nfields].s = s;
			it->fields[it->nfields++].len = (size_t)(p - s);
		}
		if (it->fields[it->nfields - 1].len == 0)
			return str_err(err, errsz, -EINVAL, "bad header field name");
		if (p < end && *p++ != ' ')
			return str_err(err, errsz, -EINVAL, "bad header field list");
		if (p == end && p[-1] == ' ')
			return str_err(err, errsz, -EINVAL, "bad header field list");
	}
	if (it->nfields == 0)
		return str_err(err, errsz, -EINVAL, "empty header field list");
	return 0;
}

/* section - the text between "[" and "]". */
static int
section(struct imap_fetch_item *it, const char *p, const char *end, char *err, size_t errsz)
{
	size_t i;

	while (p < end && is_digit(*p)) {
		if (it->nparts == IMAP_PART_DEPTH_MAX)
			return str_err(err, errsz, -EINVAL, "part path deeper than %d",
			    IMAP_PART_DEPTH_MAX);
		if (*p == '0' || !num32(&p, end, UINT32_MAX, &it->part[it->nparts]))
			return str_err(err, errsz, -EINVAL, "bad part number in section");
		it->nparts++;
		if (p == end)
			return 0;
		if (*p++ != '.' || p == end)
			return str_err(err, errsz, -EINVAL, "bad section");
	}
	if (p == end)
		return 0;
	for (i = NELEM(section_names) - 1; i > 0; i--) {
		size_t n = strlen(section_names[i]);

		if ((size_t)(end - p) >= n && strncasecmp(p, section_names[i], n) == 0 &&
		    (p + n == end || p[n] == ' '))
			break;
	}
	if (i == 0)
		return str_err(err, errsz, -EINVAL, "unknown section");
	it->section = (enum imap_section)i;
	if (it->section == IMAP_SEC_MIME && it->nparts == 0)
		return str_err(err, errsz, -EINVAL, "MIME needs a part number");
	p += strlen(section_names[i]);
	if (it->section == IMAP_SEC_FIELDS || it->section == IMAP_SEC_FIELDS_NOT)
		return fields(it, p, end, err, errsz);
	if (p != end)
		return str_err(err, errsz, -EINVAL, "bad section");
	return 0;
}

/* partial - "<origin.count>" (RFC 3501 6.4.5). */
static int
partial(struct imap_fetch_item *it, const char *p, const char *end, char *err, size_t errsz)
{
	if (p == end)
		return 0;
	if (*p++ != '<' || !num32(&p, end, UINT32_MAX, &it->origin) || p == end ||
	    *p++ != '.' || !num32(&p, end, UINT32_MAX, &it->count) || it->count == 0 ||
	    p == end || *p++ != '>' || p != end)
		return str_err(err, errsz, -EINVAL, "bad <partial>");
	it->partial = true;
	return 0;
}

/* resp_name - what the response calls it (RFC 3501 7.4.2). */
static void
resp_name(struct imap_fetch_item *it)
{
	struct buf b = BUF_INIT;

	buf_appends(&b, "BODY[");
	for (size_t i = 0; i < it->nparts; i++)
		buf_appendf(&b, "%s%" PRIu32, i ? "." : "", it->part[i]);
	if (it->nparts > 0 && it->section != IMAP_SEC_ALL)
		buf_appendc(&b, '.');
	buf_appends(&b, section_names[it->section]);
	if (it->nfields > 0) {
		buf_appends(&b, " (");
		for (size_t i = 0; i < it->nfields; i++) {
			if (i > 0)
				buf_appendc(&b, ' ');
			imap_put_astring(&b, it->fields[i].s, it->fields[i].len);
		}
		buf_appendc(&b, ')');
	}
	buf_appendc(&b, ']');
	if (it->partial)
		buf_appendf(&b, "<%" PRIu32 ">", it->origin);
	it->resp = buf_steal(&b, NULL);
}

static int
fetch_section(struct imap_fetch_item *it, const char *s, size_t len, char *err, size_t errsz)
{
	const char *open = memchr(s, '[', len), *end = s + len, *close;
	int rc;

	if (word_eq(s, (size_t)(open - s), "BODY.PEEK"))
		it->peek = true;
	else if (!word_eq(s, (size_t)(open - s), "BODY"))
		return str_err(err, errsz, -EINVAL, "unknown fetch attribute %.*s",
		    (int)(open - s), s);
	close = end;
	while (close > open && close[-1] != ']')
		close--;
	if (close == open)
		return str_err(err, errsz, -EINVAL, "unterminated [section]");
	it->kind = IMAP_FA_SECTION;
	if ((rc = section(it, open + 1, close - 1, err, errsz)) < 0 ||
	    (rc = partial(it, close, end, err, errsz)) < 0)
		return rc;
	resp_name(it);
	return 0;
}

static int
fetch_item(struct imap_fetch_item *it, const struct imap_tok *t, char *err, size_t errsz)
{
	memset(it, 0, sizeof *it);
	if (t->type != IMAP_TOK_ATOM)
		return str_err(err, errsz, -EINVAL, "bad fetch attribute");
	if (memchr(t->s, '[', t->len) != NULL)
		return fetch_section(it, t->s, t->len, err, errsz);
	for (size_t i = 0; i < NELEM(fetch_atts); i++)
		if (word_eq(t->s, t->len, fetch_atts[i].name)) {
			it->kind = fetch_atts[i].kind;
			it->resp = xstrdup(fetch_atts[i].name);
			return 0;
		}
	return str_err(err, errsz, -EINVAL, "unknown fetch attribute %.*s",
	    t->len > 32 ? 32 : (int)t->len, t->s);
}

static int
fetch_macro(struct imap_fetch *f, const struct imap_tok *t)
{
	for (size_t i = 0; i < NELEM(fetch_macros); i++) {
		if (!word_eq(t->s, t->len, fetch_macros[i].name))
			continue;
		f->v = xcalloc(NELEM(fetch_macros[i].atts), sizeof *f->v);
		for (size_t k = 0; k < NELEM(fetch_macros[i].atts) && fetch_macros[i].atts[k]; k++) {
			struct imap_tok a = { .type = IMAP_TOK_ATOM, .s = fetch_macros[i].atts[k],
			    .len = strlen(fetch_macros[i].atts[k]), .skip = 1 };

			fetch_item(&f->v[f->n++], &a, NULL, 0);
		}
		return 1;
	}
	return 0;
}

/* fetch_mods - "(CHANGEDSINCE n VANISHED)" in any order, each once. */
static int
fetch_mods(struct imap_fetch *f, const struct imap_tok *l, char *err, size_t errsz)
{
	const struct imap_tok *t = l + 1, *end = imap_tok_next(l);

	if (l->type != IMAP_TOK_LIST || l->n == 0)
		return str_err(err, errsz, -EINVAL, "bad fetch modifiers");
	while (t < end) {
		if (imap_tok_eq(t, "VANISHED") && !f->vanished) {
			f->vanished = true;
			t = imap_tok_next(t);
		} else if (imap_tok_eq(t, "CHANGEDSINCE") && !f->changedsince_set) {
			t = imap_tok_next(t);
			if (t == end || t->type != IMAP_TOK_NUMBER || t->big || t->num == 0)
				return str_err(err, errsz, -EINVAL, "CHANGEDSINCE needs a mod-sequence");
			f->changedsince_set = true;
			f->changedsince = t->num;
			t = imap_tok_next(t);
		} else {
			return str_err(err, errsz, -EINVAL, "unknown or repeated fetch modifier");
		}
	}
	if (f->vanished && !f->changedsince_set)
		return str_err(err, errsz, -EINVAL, "VANISHED needs CHANGEDSINCE");
	return 0;
}

static int
fetch_atts_parse(struct imap_fetch *f, const struct imap_tok *t, char *err, size_t errsz)
{
	int rc;

	if (t->type == IMAP_TOK_ATOM && fetch_macro(f, t))
		return 0;
	if (t->type != IMAP_TOK_LIST) {
		f->v = xcalloc(1, sizeof *f->v);
		if ((rc = fetch_item(&f->v[0], t, err, errsz)) < 0)
			return rc;
		f->n = 1;
		return 0;
	}
	if (t->n == 0 || t->n > IMAP_FETCH_ITEMS_MAX)
		return str_err(err, errsz, -EINVAL, "a fetch list holds 1 to %d attributes",
		    IMAP_FETCH_ITEMS_MAX);
	f->v = xcalloc(t->n, sizeof *f->v);
	for (const struct imap_tok *a = t + 1; a < imap_tok_next(t); a = imap_tok_next(a)) {
		if ((rc = fetch_item(&f->v[f->n], a, err, errsz)) < 0) {
			free(f->v[f->n].resp);
			return rc;
		}
		f->n++;
	}
	return 0;
}

int
imap_fetch_parse(const struct imap_tok *first, const struct imap_tok *end,
    struct imap_fetch *out, char *err, size_t errsz)
{
	const struct imap_tok *mods;
	int rc;

	memset(out, 0, sizeof *out);
	if (first >= end)
		return str_err(err, errsz, -EINVAL, "FETCH needs attributes");
	mods = imap_tok_next(first);
	if ((rc = fetch_atts_parse(out, first, err, errsz)) == 0 && mods < end) {
		if (imap_tok_next(mods) != end)
			rc = str_err(err, errsz, -EINVAL, "too many FETCH arguments");
		else
			rc = fetch_mods(out, mods, err, errsz);
	}
	if (rc < 0)
		imap_fetch_free(out);
	return rc;
}

void
imap_fetch_free(struct imap_fetch *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].resp);
	free(f->v);
	memset(f, 0, sizeof *f);
}

/* --- STORE --------------------------------------------------------------------------------- */

static const char *const system_flags[] = {
	"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft",
};

/* store_flag - one flag token appended to b. */
static int
store_flag(struct buf *b, const struct imap_tok *t, char *err, size_t errsz)
{
	size_t i;

	if (t->type != IMAP_TOK_ATOM)
		return str_err(err, errsz, -EINVAL, "a flag is an atom");
	for (i = t->s[0] == '\\' ? 1 : 0; i < t->len; i++)
		if (!atom_char((unsigned char)t->s[i]))
			return str_err(err, errsz, -EINVAL, "bad character in flag");
	if (t->s[0] == '\\') {
		if (word_eq(t->s, t->len, "\\Recent"))
			return str_err(err, errsz, -EINVAL, "\\Recent cannot be stored");
		for (i = 0; i < NELEM(system_flags); i++)
			if (word_eq(t->s, t->len, system_flags[i]))
				break;
		if (i == NELEM(system_flags))
			return str_err(err, errsz, -EINVAL, "unknown system flag %.*s",
			    t->len > 32 ? 32 : (int)t->len, t->s);
		if (b->len > 0)
			buf_appendc(b, ' ');
		buf_appends(b, system_flags[i]);
		return 0;
	}
	if (t->len == 1 && t->s[0] == '\\')
		return str_err(err, errsz, -EINVAL, "bad flag");
	if (b->len > 0)
		buf_appendc(b, ' ');
	buf_append(b, t->s, t->len);
	return 0;
}

static int
store_item(struct imap_store *s, const struct imap_tok *t, char *err, size_t errsz)
{
	const char *p = t->s;
	size_t n = t->len;

	if (t->type != IMAP_TOK_ATOM)
		return str_err(err, errsz, -EINVAL, "STORE needs FLAGS, +FLAGS or -FLAGS");
	s->op = IMAP_STORE_SET;
	if (n > 0 && (*p == '+' || *p == '-')) {
		s->op = *p == '+' ? IMAP_STORE_ADD : IMAP_STORE_REMOVE;
		p++;
		n--;
	}
	if (n > 7 && word_eq(p + n - 7, 7, ".SILENT")) {
		s->silent = true;
		n -= 7;
	}
	if (!word_eq(p, n, "FLAGS"))
		return str_err(err, errsz, -EINVAL, "STORE needs FLAGS, +FLAGS or -FLAGS");
	return 0;
}

int
imap_store_parse(const struct imap_tok *first, const struct imap_tok *end,
    struct imap_store *out, char *err, size_t errsz)
{
	const struct imap_tok *t = first, *v;
	struct buf b = BUF_INIT;
	int rc = 0;

	memset(out, 0, sizeof *out);
	if (t < end && t->type == IMAP_TOK_LIST) {
		const struct imap_tok *m = t + 1;

		if (t->n != 2 || !imap_tok_eq(m, "UNCHANGEDSINCE") || m[1].type != IMAP_TOK_NUMBER ||
		    m[1].big)
			return str_err(err, errsz, -EINVAL, "bad STORE modifier");
		out->unchangedsince_set = true;
		out->unchangedsince = m[1].num;
		t = imap_tok_next(t);
	}
	if (t >= end || (rc = store_item(out, t, err, errsz)) < 0)
		return rc < 0 ? rc : str_err(err, errsz, -EINVAL, "STORE needs an item");
	v = imap_tok_next(t);
	if (v == end)
		return str_err(err, errsz, -EINVAL, "STORE needs flags");
	if (v->type == IMAP_TOK_LIST) {
		if (imap_tok_next(v) != end)
			rc = str_err(err, errsz, -EINVAL, "too many STORE arguments");
		for (const struct imap_tok *f = v + 1; rc == 0 && f < imap_tok_next(v);
		    f = imap_tok_next(f))
			if (f->type == IMAP_TOK_LIST)
				rc = str_err(err, errsz, -EINVAL, "a flag is an atom");
			else
				rc = store_flag(&b, f, err, errsz);
	} else {
		for (const struct imap_tok *f = v; rc == 0 && f < end; f = imap_tok_next(f))
			rc = store_flag(&b, f, err, errsz);
	}
	if (rc == 0 && b.len > MBOX_FLAGS_MAX)
		rc = str_err(err, errsz, -EINVAL, "flags longer than %d bytes", MBOX_FLAGS_MAX);
	if (rc == 0 && !mbox_valid_flags(b.data ? b.data : ""))
		rc = str_err(err, errsz, -EINVAL, "bad flag");
	if (rc < 0) {
		buf_free(&b);
		return rc;
	}
	out->flags = b.data ? buf_steal(&b, NULL) : xstrdup("");
	return 0;
}

void
imap_store_free(struct imap_store *s)
{
	free(s->flags);
	s->flags = NULL;
}

/* --- dates --------------------------------------------------------------------------------- */

static const char *const months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* days_from_civil - days since 1970-01-01 of y-m-d (proleptic Gregorian). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static unsigned
month_days(unsigned y, unsigned m)
{
	static const unsigned days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* digits - exactly n digits at p. */
static bool
digits(const char *p, size_t n, unsigned *v)
{
	*v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(p[i]))
			return false;
		*v = *v * 10 + (unsigned)(p[i] - '0');
	}
	return true;
}

/* date_tail - "-Mon-yyyy" at p (9 bytes) with day d -> days since the epoch. */
static int
date_tail(const char *p, unsigned d, int64_t *days)
{
	unsigned m, y;

	if (p[0] != '-' || p[4] != '-' || !digits(p + 5, 4, &y))
		return -EINVAL;
	for (m = 0; m < NELEM(months); m++)
		if (strncasecmp(p + 1, months[m], 3) == 0)
			break;
	if (m == NELEM(months) || d == 0 || d > month_days(y, m + 1))
		return -EINVAL;
	*days = days_from_civil(y, m + 1, d);
	return 0;
}

int
imap_date_parse(const char *s, size_t len, time_t *out)
{
	unsigned d;
	size_t dl = len == 10 ? 1 : 2;
	int64_t days;

	if ((len != 10 && len != 11) || !digits(s, dl, &d) || date_tail(s + dl, d, &days) < 0)
		return -EINVAL;
	*out = (time_t)(days * SECS_PER_DAY);
	return 0;
}

#define DATETIME_LEN 26 /* "07-Dec-2026 12:00:00 +0100" */
#define ZONE_MAX_HOURS 23
#define MINS 60

int
imap_datetime_parse(const char *s, size_t len, time_t *out)
{
	unsigned d, h, mi, se, zh, zm;
	int64_t days, secs;

	if (len != DATETIME_LEN)
		return -EINVAL;
	if (s[0] == ' ' ? !digits(s + 1, 1, &d) : !digits(s, 2, &d))
		return -EINVAL;
	if (date_tail(s + 2, d, &days) < 0 || s[11] != ' ' || !digits(s + 12, 2, &h) ||
	    s[14] != ':' || !digits(s + 15, 2, &mi) || s[17] != ':' || !digits(s + 18, 2, &se) ||
	    s[20] != ' ' || (s[21] != '+' && s[21] != '-') || !digits(s + 22, 2, &zh) ||
	    !digits(s + 24, 2, &zm))
		return -EINVAL;
	if (h > 23 || mi >= MINS || se > MINS || zh > ZONE_MAX_HOURS || zm >= MINS)
		return -EINVAL;
	secs = days * SECS_PER_DAY + h * 3600 + mi * MINS + se;
	secs -= (s[21] == '+' ? 1 : -1) * (int64_t)(zh * 3600 + zm * MINS);
	*out = (time_t)secs;
	return 0;
}

/* --- SEARCH -------------------------------------------------------------------------------- */

enum sarg { SA_NONE, SA_STR, SA_FIELD, SA_DATE, SA_NUM, SA_SET, SA_FLAG, SA_MODSEQ };

static const struct {
	const char *name;
	enum imap_skey key;
	enum sarg arg;
} search_keys[] = {
	{ "ALL", IMAP_SK_ALL, SA_NONE },
	{ "ANSWERED", IMAP_SK_ANSWERED, SA_NONE },
	{ "DELETED", IMAP_SK_DELETED, SA_NONE },
	{ "FLAGGED", IMAP_SK_FLAGGED, SA_NONE },
	{ "SEEN", IMAP_SK_SEEN, SA_NONE },
	{ "UNSEEN", IMAP_SK_UNSEEN, SA_NONE },
	{ "NEW", IMAP_SK_NEW, SA_NONE },
	{ "OLD", IMAP_SK_OLD, SA_NONE },
	{ "RECENT", IMAP_SK_RECENT, SA_NONE },
	{ "UNANSWERED", IMAP_SK_UNANSWERED, SA_NONE },
	{ "UNDELETED", IMAP_SK_UNDELETED, SA_NONE },
	{ "UNFLAGGED", IMAP_SK_UNFLAGGED, SA_NONE },
	{ "DRAFT", IMAP_SK_DRAFT, SA_NONE },
	{ "UNDRAFT", IMAP_SK_UNDRAFT, SA_NONE },
	{ "KEYWORD", IMAP_SK_KEYWORD, SA_FLAG },
	{ "UNKEYWORD", IMAP_SK_UNKEYWORD, SA_FLAG },
	{ "FROM", IMAP_SK_FROM, SA_STR },
	{ "TO", IMAP_SK_TO, SA_STR },
	{ "CC", IMAP_SK_CC, SA_STR },
	{ "BCC", IMAP_SK_BCC, SA_STR },
	{ "SUBJECT", IMAP_SK_SUBJECT, SA_STR },
	{ "BODY", IMAP_SK_BODY, SA_STR },
	{ "TEXT", IMAP_SK_TEXT, SA_STR },
	{ "HEADER", IMAP_SK_HEADER, SA_FIELD },
	{ "SINCE", IMAP_SK_SINCE, SA_DATE },
	{ "BEFORE", IMAP_SK_BEFORE, SA_DATE },
	{ "ON", IMAP_SK_ON, SA_DATE },
	{ "SENTSINCE", IMAP_SK_SENTSINCE, SA_DATE },
	{ "SENTBEFORE", IMAP_SK_SENTBEFORE, SA_DATE },
	{ "SENTON", IMAP_SK_SENTON, SA_DATE },
	{ "LARGER", IMAP_SK_LARGER, SA_NUM },
	{ "SMALLER", IMAP_SK_SMALLER, SA_NUM },
	{ "UID", IMAP_SK_UID, SA_SET },
	{ "MODSEQ", IMAP_SK_MODSEQ, SA_MODSEQ },
};

struct sparser {
	const struct imap_tok *t, *end;
	size_t keys;
	char *err;
	size_t errsz;
};

static int search_key(struct sparser *sp, unsigned depth, struct imap_search **out);

static struct imap_search *
snode(struct sparser *sp, enum imap_skey key)
{
	struct imap_search *s;

	if (++sp->keys > IMAP_SEARCH_KEYS_MAX)
		return NULL;
	s = xcalloc(1, sizeof *s);
	s->key = key;
	return s;
}

static int
s_err(struct sparser *sp, const char *msg)
{
	return str_err(sp->err, sp->errsz, -EINVAL, "%s", msg);
}

/* s_arg - the next token, which must exist and be a string. */
static const struct imap_tok *
s_arg(struct sparser *sp)
{
	const struct imap_tok *t = sp->t;

	if (t >= sp->end || !imap_tok_is_astring(t))
		return NULL;
	sp->t = imap_tok_next(t);
	return t;
}

/* search_arg - the argument of a key from the table. */
static int
search_arg(struct sparser *sp, enum sarg arg, struct imap_search *s)
{
	const struct imap_tok *t;

	if (arg == SA_NONE)
		return 0;
	if (arg == SA_MODSEQ && sp->t < sp->end && sp->t->type == IMAP_TOK_QUOTED) {
		/* RFC 7162 3.1.5: an entry name and type, which we accept and ignore. */
		sp->t = imap_tok_next(sp->t);
		if (sp->t >= sp->end || !(imap_tok_eq(sp->t, "priv") ||
		    imap_tok_eq(sp->t, "shared") || imap_tok_eq(sp->t, "all")))
			return s_err(sp, "MODSEQ entry type must be priv, shared or all");
		sp->t = imap_tok_next(sp->t);
	}
	if ((t = s_arg(sp)) == NULL)
		return s_err(sp, "search key needs an argument");
	switch (arg) {
	case SA_FIELD:
		s->field = t->s;
		s->field_len = t->len;
		if ((t = s_arg(sp)) == NULL)
			return s_err(sp, "HEADER needs a field name and a string");
		/* fall through */
	case SA_STR:
		s->str = t->s;
		s->str_len = t->len;
		return 0;
	case SA_FLAG:
		if (t->type != IMAP_TOK_ATOM)
			return s_err(sp, "KEYWORD needs a flag");
		s->str = t->s;
		s->str_len = t->len;
		return 0;
	case SA_DATE:
		if (t->type == IMAP_TOK_LITERAL || imap_date_parse(t->s, t->len, &s->date) < 0)
			return s_err(sp, "bad date (want d-Mon-yyyy)");
		return 0;
	case SA_NUM:
		if (t->type != IMAP_TOK_NUMBER || t->num > UINT32_MAX)
			return s_err(sp, "search key needs a number");
		s->num = t->num;
		return 0;
	case SA_MODSEQ:
		if (t->type != IMAP_TOK_NUMBER || t->big)
			return s_err(sp, "MODSEQ needs a mod-sequence");
		s->num = t->num;
		return 0;
	case SA_SET:
		if (t->type != IMAP_TOK_ATOM && t->type != IMAP_TOK_NUMBER)
			return s_err(sp, "UID needs a sequence set");
		return imap_seqset_parse(t->s, t->len, &s->set, sp->err, sp->errsz);
	default:
		return 0;
	}
}

static int
add_sub(struct imap_search *s, struct imap_search *sub)
{
	s->sub = xreallocarray(s->sub, s->nsub + 1, sizeof *s->sub);
	s->sub[s->nsub++] = sub;
	return 0;
}

/* search_seq - a bare sequence set as a key. */
static bool
seqset_like(const struct imap_tok *t)
{
	if (t->type == IMAP_TOK_NUMBER)
		return true;
	if (t->type != IMAP_TOK_ATOM || t->len == 0)
		return false;
	return is_digit(t->s[0]) || t->s[0] == '*';
}

/* search_group - "( key ... )", or NOT/OR's operands. */
static int
search_group(struct sparser *sp, unsigned depth, struct imap_search **out)
{
	const struct imap_tok *l = sp->t, *end = sp->end;
	struct imap_search *s = snode(sp, IMAP_SK_AND);
	int rc = 0;

	if (s == NULL)
		return s_err(sp, "search program too long");
	*out = s;
	if (l->n == 0)
		return s_err(sp, "empty search group");
	sp->t = l + 1;
	sp->end = imap_tok_next(l);
	while (rc == 0 && sp->t < sp->end) {
		struct imap_search *sub = NULL;

		rc = search_key(sp, depth + 1, &sub);
		if (sub != NULL)
			add_sub(s, sub);
	}
	sp->end = end;
	sp->t = imap_tok_next(l);
	return rc;
}

static int
search_key(struct sparser *sp, unsigned depth, struct imap_search **out)
{
	const struct imap_tok *t = sp->t;
	struct imap_search *s;
	int rc;

	*out = NULL;
	if (depth > IMAP_SEARCH_DEPTH_MAX)
		return str_err(sp->err, sp->errsz, -EINVAL, "search program nested deeper than %d",
		    IMAP_SEARCH_DEPTH_MAX);
	if (t >= sp->end)
		return s_err(sp, "search key missing");
	if (t->type == IMAP_TOK_LIST)
		return search_group(sp, depth, out);
	if (imap_tok_eq(t, "NOT") || imap_tok_eq(t, "OR")) {
		size_t want = imap_tok_eq(t, "OR") ? 2 : 1;

		if ((s = snode(sp, want == 2 ? IMAP_SK_OR : IMAP_SK_NOT)) == NULL)
			return s_err(sp, "search program too long");
		*out = s;
		sp->t = imap_tok_next(t);
		for (size_t i = 0; i < want; i++) {
			struct imap_search *sub = NULL;

			rc = search_key(sp, depth + 1, &sub);
			if (sub != NULL)
				add_sub(s, sub);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	if (seqset_like(t)) {
		if ((s = snode(sp, IMAP_SK_SEQ)) == NULL)
			return s_err(sp, "search program too long");
		*out = s;
		sp->t = imap_tok_next(t);
		return imap_seqset_parse(t->s, t->len, &s->set, sp->err, sp->errsz);
	}
	for (size_t i = 0; i < NELEM(search_keys); i++) {
		if (!imap_tok_eq(t, search_keys[i].name))
			continue;
		if ((s = snode(sp, search_keys[i].key)) == NULL)
			return s_err(sp, "search program too long");
		*out = s;
		sp->t = imap_tok_next(t);
		return search_arg(sp, search_keys[i].arg, s);
	}
	if (t->type == IMAP_TOK_ATOM)
		return str_err(sp->err, sp->errsz, -EINVAL, "unknown search key %.*s",
		    t->len > 32 ? 32 : (int)t->len, t->s);
	return s_err(sp, "bad search key");
}

int
imap_search_parse(const struct imap_tok *first, const struct imap_tok *end,
    struct imap_search **out, char *err, size_t errsz)
{
	struct sparser sp = { first, end, 0, err, errsz };
	struct imap_search *root;
	int rc = 0;

	*out = NULL;
	if (sp.t < end && imap_tok_eq(sp.t, "CHARSET")) {
		const struct imap_tok *cs = imap_tok_next(sp.t);

		if (cs >= end || !imap_tok_is_astring(cs))
			return str_err(err, errsz, -EINVAL, "CHARSET needs a name");
		if (!word_eq(cs->s, cs->len, "UTF-8") && !word_eq(cs->s, cs->len, "US-ASCII"))
			return str_err(err, errsz, -ENOTSUP, "unsupported charset %.*s",
			    cs->len > 32 ? 32 : (int)cs->len, cs->s);
		sp.t = imap_tok_next(cs);
	}
	if (sp.t >= end)
		return str_err(err, errsz, -EINVAL, "SEARCH needs a search key");
	root = snode(&sp, IMAP_SK_AND);
	while (rc == 0 && sp.t < end) {
		struct imap_search *sub = NULL;

		rc = search_key(&sp, 1, &sub);
		if (sub != NULL)
			add_sub(root, sub);
	}
	if (rc < 0) {
		imap_search_free(root);
		return rc;
	}
	*out = root;
	return 0;
}

void
imap_search_free(struct imap_search *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nsub; i++)
		imap_search_free(s->sub[i]);
	free(s->sub);
	imap_seqset_free(&s->set);
	free(s);
}

/* --- mailbox names and patterns -------------------------------------------------------- */

/* level_bad - whether a hierarchy level is "." or "..". */
static bool
level_bad(const char *s, size_t n)
{
	return (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.');
}

static int
name_shape(const char *in, size_t len, char *err, size_t errsz)
{
	const char *p = in, *end = in + len;

	if (memchr(in, '*', len) != NULL || memchr(in, '%', len) != NULL)
		return str_err(err, errsz, -EINVAL, "wildcard '*' or '%%' in mailbox name");
	if (in[0] == '/')
		return str_err(err, errsz, -EINVAL, "mailbox name starts with '/'");
	if (in[0] == '~')
		return str_err(err, errsz, -EINVAL, "mailbox name starts with '~'");
	while (p <= end) {
		const char *sl = memchr(p, '/', (size_t)(end - p));
		size_t n = (size_t)((sl ? sl : end) - p);

		if (n == 0)
			return str_err(err, errsz, -EINVAL, "empty level in mailbox name");
		if (level_bad(p, n))
			return str_err(err, errsz, -EINVAL, "'.' or '..' level in mailbox name");
		if (sl == NULL)
			break;
		p = sl + 1;
	}
	return 0;
}

int
imap_mailbox_name(const char *in, size_t len, struct buf *out, char *err, size_t errsz)
{
	struct buf utf8 = BUF_INIT;
	const char *sl;
	size_t first;
	int rc;

	if (len == 0)
		return str_err(err, errsz, -EINVAL, "empty mailbox name");
	if (len > MBOX_FOLDER_MAX)
		return str_err(err, errsz, -EINVAL, "mailbox name longer than %d bytes",
		    MBOX_FOLDER_MAX);
	rc = mutf7_decode(in, len, &utf8, err, errsz);
	buf_free(&utf8);
	if (rc < 0 || (rc = name_shape(in, len, err, errsz)) < 0)
		return rc;
	sl = memchr(in, '/', len);
	first = sl ? (size_t)(sl - in) : len;
	buf_reset(out);
	if (word_eq(in, first, "INBOX")) {
		buf_appends(out, "INBOX");
		buf_append(out, in + first, len - first);
	} else {
		buf_append(out, in, len);
	}
	if (!mbox_valid_folder(out->data))
		return str_err(err, errsz, -EINVAL, "mailbox name not allowed");
	return 0;
}

bool
imap_list_match(const char *pattern, size_t plen, const char *name, size_t nlen)
{
	bool a[IMAP_PATTERN_MAX + 1], b[IMAP_PATTERN_MAX + 1];
	bool *st = a, *nx = b, *tmp;

	if (plen > IMAP_PATTERN_MAX)
		return false;
	/* st[j]: pattern[0..j) matches the name so far. */
	st[0] = true;
	for (size_t j = 1; j <= plen; j++)
		st[j] = st[j - 1] && (pattern[j - 1] == '*' || pattern[j - 1] == '%');
	for (size_t i = 0; i < nlen; i++) {
		char c = name[i];

		nx[0] = false;
		for (size_t j = 1; j <= plen; j++) {
			char pc = pattern[j - 1];

			if (pc == '*')
				nx[j] = nx[j - 1] || st[j];
			else if (pc == '%')
				nx[j] = nx[j - 1] || (st[j] && c != '/');
			else
				nx[j] = st[j - 1] && pc == c;
		}
		tmp = st;
		st = nx;
		nx = tmp;
	}
	return st[plen];
}

/* --- strings in responses ------------------------------------------------------------------ */

static bool
quotable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == 0 || c == '\r' || c == '\n' || c >= 0x80)
			return false;
	}
	return true;
}

void
imap_put_string(struct buf *b, const char *s, size_t len)
{
	if (!quotable(s, len)) {
		buf_appendf(b, "{%zu}\r\n", len);
		buf_append(b, s, len);
		return;
	}
	buf_appendc(b, '"');
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_appendc(b, '\\');
		buf_appendc(b, s[i]);
	}
	buf_appendc(b, '"');
}

void
imap_put_astring(struct buf *b, const char *s, size_t len)
{
	bool atom = len > 0 && !word_eq(s, len, "NIL");

	for (size_t i = 0; atom && i < len; i++)
		atom = atom_char((unsigned char)s[i]);
	if (atom)
		buf_append(b, s, len);
	else
		imap_put_string(b, s, len);
}

void
imap_put_nstring(struct buf *b, const char *s, size_t len)
{
	if (s == NULL)
		buf_appends(b, "NIL");
	else
		imap_put_string(b, s, len);
}
