/*
 * authres - Authentication-Results and Received-SPF fields.  See
 * authres.h.
 *
 * A field is written word by word through a small folder: each word is
 * made safe first (sanitised, quoted or escaped into a scratch buffer),
 * then placed on the current line after a space, or on a new line after
 * CRLF TAB when it would make the line 78 characters or longer.
 */
#include "policy/authres.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/rfc5322.h"

/* Longest value taken from outside, in octets (a domain name's 255). */
#define VALUE_MAX 255
/* Lines stay shorter than this (RFC 5322 2.1.1's SHOULD: 78). */
#define LINE_MAX_SOFT 78

struct folder {
	struct buf *out;
	size_t line; /* characters on the current line so far */
	bool first;  /* no word yet after the field name */
};

static void
fold_begin(struct folder *f, struct buf *out, const char *name)
{
	f->out = out;
	buf_appends(out, name);
	buf_appendc(out, ':');
	f->line = strlen(name) + 1;
	f->first = true;
}

/* fold_word - place word (no spaces that may not be folded) on a line. */
static void
fold_word(struct folder *f, const char *w, size_t wl)
{
	if (!f->first && f->line + 1 + wl >= LINE_MAX_SOFT) {
		buf_append(f->out, "\r\n\t", 3);
		f->line = 1;
	} else {
		buf_appendc(f->out, ' ');
		f->line++;
	}
	buf_append(f->out, w, wl);
	f->line += wl;
	f->first = false;
}

static void
fold_end(struct folder *f)
{
	buf_append(f->out, "\r\n", 2);
}

/* The octet as it may appear in a field: controls and non-ASCII as '?'. */
static char
safe_octet(unsigned char c)
{
	return c >= 0x20 && c < 0x7f ? (char)c : '?';
}

/* RFC 5322 3.2.3 atext. */
static bool
is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* dot-atom: atext runs separated by single dots (RFC 5322 3.2.3). */
static bool
is_dot_atom(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return false;
		} else if (!is_atext((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

/*
 * What may stand unquoted as an RFC 8601 pvalue here: a dot-atom, or
 * "[dot-atom]@dot-atom" (an address or "@domain" identity).
 */
static bool
is_plain_pvalue(const char *s, size_t n)
{
	const char *at = memchr(s, '@', n);

	if (at == NULL)
		return is_dot_atom(s, n);
	if (memchr(at + 1, '@', n - (size_t)(at + 1 - s)) != NULL)
		return false;
	return (at == s || is_dot_atom(s, (size_t)(at - s))) &&
	    is_dot_atom(at + 1, n - (size_t)(at + 1 - s));
}

/*
 * Whether s[0..n) may stand unquoted as an RFC 8601 value: an RFC 2045
 * token holding no tspecial (no '/', '=', '?', ...), here letters,
 * digits and "-._+"; with addr, also "[token]@token" (an address or an
 * "@domain" identity, RFC 8601's pvalue).
 */
static bool
is_ar_plain(const char *s, size_t n, bool addr)
{
	size_t at = n;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '@' && addr && at == n && i + 1 < n) {
			at = i;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
		    c == '+'))
			return false;
	}
	return n > 0;
}

/* Append s[0..n) as a quoted-string, every octet made safe. */
static void
put_quoted(struct buf *w, const char *s, size_t n)
{
	buf_appendc(w, '"');
	for (size_t i = 0; i < n; i++) {
		char c = safe_octet((unsigned char)s[i]);

		if (c == '"' || c == '\\')
			buf_appendc(w, '\\');
		buf_appendc(w, c);
	}
	buf_appendc(w, '"');
}

static size_t
cut(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	return n > VALUE_MAX ? VALUE_MAX : n;
}

/*
 * Append value s of Received-SPF (RFC 7208 9.1: dot-atom or
 * quoted-string): as is when plain (a dot-atom, or an address when
 * addr), else quoted.
 */
static void
put_value(struct buf *w, const char *s, bool addr)
{
	size_t n = cut(s);

	if (n > 0 && (addr ? is_plain_pvalue(s, n) : is_dot_atom(s, n)))
		buf_append(w, s, n);
	else
		put_quoted(w, s != NULL ? s : "", n);
}

/* Append value s of Authentication-Results: as is when plain, else quoted. */
static void
put_ar_value(struct buf *w, const char *s, bool addr)
{
	size_t n = cut(s);

	if (is_ar_plain(s != NULL ? s : "", n, addr))
		buf_append(w, s, n);
	else
		put_quoted(w, s != NULL ? s : "", n);
}

/* Append comment text s made safe: controls as '?', ( ) \ escaped. */
static void
put_ctext(struct buf *w, const char *s)
{
	size_t n = cut(s);

	for (size_t i = 0; i < n; i++) {
		char c = safe_octet((unsigned char)s[i]);

		if (c == '(' || c == ')' || c == '\\')
			buf_appendc(w, '\\');
		buf_appendc(w, c);
	}
}

/* fold_buf - place w's contents as one word and empty w. */
static void
fold_buf(struct folder *f, struct buf *w)
{
	fold_word(f, w->data != NULL ? w->data : "", w->len);
	buf_reset(w);
}

/* fold_text - place text word by word (comment text may fold at its spaces). */
static void
fold_text(struct folder *f, const char *text, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t j;

		while (i < n && text[i] == ' ')
			i++;
		for (j = i; j < n && text[j] != ' '; j++)
			;
		if (j > i)
			fold_word(f, text + i, j - i);
		i = j;
	}
}

static bool
null_sender(const struct authres_spf *spf)
{
	return spf->mailfrom == NULL || spf->mailfrom[0] == '\0';
}

/* One Received-SPF "key=value" word, with ";" after it. */
static void
put_kv(struct folder *f, struct buf *w, const char *key, const char *value)
{
	buf_appends(w, key);
	buf_appendc(w, '=');
	put_value(w, value, false);
	buf_appendc(w, ';');
	fold_buf(f, w);
}

/* One Authentication-Results "ptype.property=value" word, ";" after it if semi. */
static void
put_prop(struct folder *f, struct buf *w, const char *key, const char *value,
    bool addr, bool semi)
{
	buf_appends(w, key);
	buf_appendc(w, '=');
	put_ar_value(w, value, addr);
	if (semi)
		buf_appendc(w, ';');
	fold_buf(f, w);
}

void
authres_format(struct buf *out, const char *authserv_id,
    const struct authres_spf *spf, const struct dkimverify_report *dkim)
{
	struct folder f;
	struct buf w = BUF_INIT;

	fold_begin(&f, out, "Authentication-Results");
	put_ar_value(&w, authserv_id, false);
	buf_appendc(&w, ';');
	if (spf == NULL && dkim == NULL) {
		fold_buf(&f, &w);
		fold_word(&f, "none", 4);
		fold_end(&f);
		buf_free(&w);
		return;
	}
	fold_buf(&f, &w);

	if (spf != NULL) {
		buf_appendf(&w, "spf=%s", spfcheck_verdict_name(spf->result));
		fold_buf(&f, &w);
		if (null_sender(spf))
			put_prop(&f, &w, "smtp.helo", spf->helo, false,
			    dkim != NULL);
		else
			put_prop(&f, &w, "smtp.mailfrom", spf->mailfrom, true,
			    dkim != NULL);
	}
	if (dkim != NULL && dkim->nsig == 0) {
		fold_word(&f, "dkim=none", 9);
	} else if (dkim != NULL) {
		for (size_t i = 0; i < dkim->nsig; i++) {
			const struct dkimverify_sig *s = &dkim->sig[i];
			bool more = i + 1 < dkim->nsig;

			buf_appendf(&w, "dkim=%s", dkimverify_result_name(s->result));
			fold_buf(&f, &w);
			if (s->result != DKIMVERIFY_PASS && s->reason[0] != '\0') {
				buf_appends(&w, "reason=");
				put_quoted(&w, s->reason, cut(s->reason));
				fold_buf(&f, &w);
			}
			put_prop(&f, &w, "header.d", s->domain, false, false);
			put_prop(&f, &w, "header.s", s->selector, false, false);
			if (s->identity[0] != '\0')
				put_prop(&f, &w, "header.i", s->identity, true,
				    false);
			put_prop(&f, &w, "header.a", s->algorithm, false,
			    more && s->bprefix[0] == '\0');
			if (s->bprefix[0] != '\0')
				put_prop(&f, &w, "header.b", s->bprefix, false,
				    more);
		}
	}
	fold_end(&f);
	buf_free(&w);
}

void
authres_received_spf(struct buf *out, const char *receiver,
    const struct authres_spf *spf)
{
	struct folder f;
	struct buf w = BUF_INIT;
	struct buf c = BUF_INIT;
	bool helo_id = null_sender(spf);
	const char *who = helo_id ? spf->helo : spf->mailfrom;
	const char *ip = spf->client_ip != NULL ? spf->client_ip : "";

	fold_begin(&f, out, "Received-SPF");
	fold_word(&f, spfcheck_verdict_name(spf->result),
	    strlen(spfcheck_verdict_name(spf->result)));

	/* The comment, in RFC 7208 9.1's words, folded at its spaces. */
	buf_appendc(&c, '(');
	put_ctext(&c, receiver);
	buf_appends(&c, ": ");
	switch (spf->result) {
	case SPFCHECK_PASS:
		buf_appends(&c, "domain of ");
		put_ctext(&c, who);
		buf_appends(&c, " designates ");
		put_ctext(&c, ip);
		buf_appends(&c, " as permitted sender");
		break;
	case SPFCHECK_FAIL:
		buf_appends(&c, "domain of ");
		put_ctext(&c, who);
		buf_appends(&c, " does not designate ");
		put_ctext(&c, ip);
		buf_appends(&c, " as permitted sender");
		break;
	case SPFCHECK_SOFTFAIL:
		buf_appends(&c, "domain of transitioning ");
		put_ctext(&c, who);
		buf_appends(&c, " does not designate ");
		put_ctext(&c, ip);
		buf_appends(&c, " as permitted sender");
		break;
	case SPFCHECK_NEUTRAL:
		put_ctext(&c, ip);
		buf_appends(&c, " is neither permitted nor denied by domain of ");
		put_ctext(&c, who);
		break;
	case SPFCHECK_NONE:
		buf_appends(&c, "domain of ");
		put_ctext(&c, who);
		buf_appends(&c, " does not publish an SPF record");
		break;
	case SPFCHECK_TEMPERROR:
		buf_appends(&c, "temporary error looking up the SPF record of ");
		put_ctext(&c, who);
		break;
	case SPFCHECK_PERMERROR:
		buf_appends(&c, "permanent error in the SPF record of ");
		put_ctext(&c, who);
		break;
	}
	buf_appendc(&c, ')');
	fold_text(&f, c.data, c.len);
	buf_free(&c);

	put_kv(&f, &w, "client-ip", ip);
	buf_appends(&w, "envelope-from=");
	put_quoted(&w, helo_id ? "" : spf->mailfrom, cut(helo_id ? "" : spf->mailfrom));
	buf_appendc(&w, ';');
	fold_buf(&f, &w);
	put_kv(&f, &w, "helo", spf->helo);
	put_kv(&f, &w, "receiver", receiver);
	put_kv(&f, &w, "identity", helo_id ? "helo" : "mailfrom");
	fold_end(&f);
	buf_free(&w);
}

/* skip_cfws - past white space, line breaks and (nested) comments. */
static const char *
skip_cfws(const char *p, const char *end)
{
	int depth = 0;

	while (p < end) {
		if (depth > 0 && *p == '\\' && p + 1 < end) {
			p += 2;
			continue;
		}
		if (*p == '(')
			depth++;
		else if (*p == ')' && depth > 0)
			depth--;
		else if (depth == 0 && *p != ' ' && *p != '\t' && *p != '\r' &&
		    *p != '\n')
			break;
		p++;
	}
	return p;
}

bool
authres_field_is_ours(const char *f, size_t fl, const char *authserv_id)
{
	const char *colon, *p, *end = f + fl;
	char id[VALUE_MAX + 1];
	size_t n = 0;

	if (authserv_id == NULL || authserv_id[0] == '\0' ||
	    !rfc5322_field_is(f, fl, "Authentication-Results") ||
	    (colon = rfc5322_field_colon(f, fl)) == NULL)
		return false;
	p = skip_cfws(colon + 1, end);
	if (p < end && *p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			if (*p == '\\' && p + 1 < end)
				p++;
			if (n == VALUE_MAX)
				return false;
			id[n++] = *p;
		}
		if (p == end)
			return false;
	} else {
		for (; p < end && *p != ';' && *p != '(' && *p != ' ' &&
		    *p != '\t' && *p != '\r' && *p != '\n'; p++) {
			if (n == VALUE_MAX)
				return false;
			id[n++] = *p;
		}
	}
	id[n] = '\0';
	return n > 0 && strlen(authserv_id) == n &&
	    strncasecmp(id, authserv_id, n) == 0;
}
