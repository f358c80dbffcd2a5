/*
 * bounce_lex - the small readers the bounce parser's files share: one-line
 * result strings, header fields of a block, RFC 3463 enhanced status codes
 * and SMTP reply codes standing as words in free text, and mail addresses
 * in text (UTF-8 allowed, RFC 6531, but never the punctuation or another
 * script's words glued to them).  Pure; every length is bounded by the
 * caller's.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "mailbox/bounce.h"
#include "mailbox/bounce_int.h"

void
bounce__set(char **dst, const char *s, size_t len)
{
	char *p;
	size_t n = 0;

	free(*dst);
	if (len > BOUNCE_DIAG_MAX)
		len = BOUNCE_DIAG_MAX;
	p = xmalloc(len + 1);
	/* One line: line ends and tabs become spaces, runs of spaces one. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0')
			continue;
		if (c == '\r' || c == '\n' || c == '\t')
			c = ' ';
		if (c == ' ' && (n == 0 || p[n - 1] == ' '))
			continue;
		p[n++] = (char)c;
	}
	while (n > 0 && p[n - 1] == ' ')
		n--;
	p[n] = '\0';
	*dst = p;
}

struct bounce_rcpt *
bounce__rcpt_add(struct bounce_result *r)
{
	struct bounce_rcpt *rc;

	r->rcpt = xreallocarray(r->rcpt, r->nrcpt + 1, sizeof *r->rcpt);
	rc = &r->rcpt[r->nrcpt++];
	memset(rc, 0, sizeof *rc);
	rc->recipient = xstrdup("");
	rc->original_recipient = xstrdup("");
	rc->action = xstrdup("");
	rc->remote_mta = xstrdup("");
	rc->diagnostic = xstrdup("");
	rc->cls = BOUNCE_CLASS_NONE;
	rc->reason = "unknown";
	return rc;
}

/*
 * bounce__field - the value of the first "name:" field of a header
 * block, continuation lines joined; NULL when absent.  The caller frees.
 */
char *
bounce__field(const char *block, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = block, *end = block + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol != NULL ? eol + 1 : end;

		if ((size_t)(end - p) > nlen && strncasecmp(p, name, nlen) == 0) {
			const char *v = p + nlen;

			while (v < next && (*v == ' ' || *v == '\t'))
				v++;
			if (v < next && *v == ':') {
				struct buf b = BUF_INIT;
				char *out = NULL;

				v++;
				buf_append(&b, v, (size_t)((eol != NULL ? eol : end) - v));
				while (next < end && (*next == ' ' || *next == '\t')) {
					const char *e2 = memchr(next, '\n', (size_t)(end - next));

					buf_appendc(&b, ' ');
					buf_append(&b, next, (size_t)((e2 != NULL ? e2 : end) - next));
					next = e2 != NULL ? e2 + 1 : end;
				}
				bounce__set(&out, b.data != NULL ? b.data : "", b.len);
				buf_free(&b);
				return out;
			}
		}
		p = next;
	}
	return NULL;
}

static bool
word_edge(const char *s, size_t len, size_t i)
{
	unsigned char c;

	if (i >= len)
		return true;
	c = (unsigned char)s[i];
	return !isalnum(c) && c != '.' && c != '_' && c != '@' && c != '/';
}

long
bounce__find_status(const char *s, size_t len, char out[16])
{
	for (size_t i = 0; i + 4 < len; i++) {
		size_t j, d1, d2;

		if (s[i] != '2' && s[i] != '4' && s[i] != '5')
			continue;
		if (i > 0 && !word_edge(s, len, i - 1) && s[i - 1] != '/')
			continue;
		if (i > 0 && s[i - 1] == '/')
			continue;
		if (s[i + 1] != '.')
			continue;
		j = i + 2;
		for (d1 = 0; j < len && isdigit((unsigned char)s[j]) && d1 < 4; j++, d1++)
			;
		if (d1 == 0 || d1 > 3 || j >= len || s[j] != '.')
			continue;
		j++;
		for (d2 = 0; j < len && isdigit((unsigned char)s[j]) && d2 < 4; j++, d2++)
			;
		if (d2 == 0 || d2 > 3)
			continue;
		/* "5.1.1." ends a sentence; "192.0.2.1" is no code. */
		if (j < len && s[j] == '.' && j + 1 < len && isdigit((unsigned char)s[j + 1]))
			continue;
		if (j < len && (isalnum((unsigned char)s[j]) || s[j] == '_' || s[j] == '@'))
			continue;
		str_copyn(out, s + i, j - i, 16);
		return (long)i;
	}
	return -1;
}

/* reply_context - whether the 3 digits at s[i] stand where a reply code does. */
static bool
reply_context(const char *s, size_t i)
{
	static const char *const after[] = { "said:", "said ", "error:", "]:", "):",
		"reply:", "response:", "returned:", "answered:", "<<< ", "code:",
		"refused:", "failed:", "message:", "error ", ":", NULL };
	size_t k = i;

	/* At a line's start, spaces and a quote aside. */
	while (k > 0 && strchr(" \t\">(", s[k - 1]) != NULL && s[k - 1] != '\0')
		k--;
	if (k == 0 || s[k - 1] == '\n')
		return true;
	for (int a = 0; after[a] != NULL; a++) {
		size_t n = strlen(after[a]);
		size_t e = i;

		while (e > 0 && s[e - 1] == ' ')
			e--;
		if (after[a][n - 1] == ' ')
			e = i;
		if (e >= n && strncasecmp(s + e - n, after[a], n) == 0)
			return true;
	}
	return false;
}

long
bounce__find_reply(const char *s, size_t len, int *code)
{
	for (size_t i = 0; i + 3 <= len; i++) {
		if ((s[i] != '4' && s[i] != '5') || !isdigit((unsigned char)s[i + 1]) ||
		    !isdigit((unsigned char)s[i + 2]))
			continue;
		if (s[i + 1] > '5')
			continue;
		if (i > 0 && s[i - 1] != '\0' &&
		    (isalnum((unsigned char)s[i - 1]) || strchr(".-:#", s[i - 1]) != NULL))
			continue;
		if (i + 3 < len && s[i + 3] != ' ' && s[i + 3] != '-' && s[i + 3] != '\n' &&
		    s[i + 3] != '\r' && s[i + 3] != '\t' && s[i + 3] != '"')
			continue;
		if (!reply_context(s, i))
			continue;
		*code = (s[i] - '0') * 100 + (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
		return (long)i;
	}
	return -1;
}

static bool
local_char(unsigned char c)
{
	return isalnum(c) || c >= 0x80 || strchr("!#$%&'*+/=?^_`{|}~.-", c) != NULL;
}

static bool
domain_char(unsigned char c)
{
	return isalnum(c) || c >= 0x80 || c == '.' || c == '-' || c == '_';
}

/* cp_at - the code point of the UTF-8 sequence at s[i], its length in *n (1 if invalid). */
static unsigned
cp_at(const char *s, size_t len, size_t i, size_t *n)
{
	unsigned char c = (unsigned char)s[i];
	size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 :
	    c >= 0xc0                           ? 2 :
	                                          1;
	unsigned cp = need == 4 ? c & 0x07u : need == 3 ? c & 0x0fu :
	                                                  c & 0x1fu;

	*n = 1;
	if (c < 0x80)
		return c;
	if (need == 1 || i + need > len)
		return 0xfffd;
	for (size_t k = 1; k < need; k++) {
		if (((unsigned char)s[i + k] & 0xc0) != 0x80)
			return 0xfffd;
		cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3fu);
	}
	*n = need;
	return cp;
}

/* cp_punct - a Unicode space or punctuation mark: never part of an address. */
static bool
cp_punct(unsigned cp)
{
	return cp == 0xfffd || (cp >= 0x80 && cp <= 0xbf) || cp == 0xd7 || cp == 0xf7 ||
	    cp == 0x60c || cp == 0x61b || cp == 0x61f || cp == 0x6d4 ||
	    (cp >= 0x2000 && cp <= 0x206f) || (cp >= 0x3000 && cp <= 0x303f) ||
	    (cp >= 0xfe30 && cp <= 0xfe6f) || (cp >= 0xff00 && cp <= 0xff20) ||
	    (cp >= 0xff3b && cp <= 0xff40) || (cp >= 0xff5b && cp <= 0xff65);
}

/*
 * glued - a letter of another script than Latin next to an ASCII letter
 * or digit: the address's edge ("您好kijitora@example.jp"), since labels
 * and local parts do not mix them, while "jörg@müller.de" does.
 */
static bool
glued(unsigned cp, unsigned char ascii_neighbour)
{
	return cp >= 0x370 && isalnum(ascii_neighbour);
}

bool
bounce__find_addr(const char *s, size_t len, size_t *at, size_t *alen)
{
	for (size_t i = 0; i < len; i++) {
		size_t l, e;

		if (s[i] != '@')
			continue;
		for (l = i; l > 0 && local_char((unsigned char)s[l - 1]);) {
			size_t b = l - 1, n;
			unsigned cp;

			if ((unsigned char)s[b] < 0x80) {
				l = b;
				continue;
			}
			/* UTF-8: the sequence that ends here, from its first byte. */
			while (b > 0 && b + 4 > l && ((unsigned char)s[b] & 0xc0) == 0x80)
				b--;
			cp = cp_at(s, len, b, &n);
			if (b + n != l || cp_punct(cp) || glued(cp, (unsigned char)s[l]))
				break;
			l = b;
		}
		while (l < i && (s[l] == '.' || s[l] == '\'' || s[l] == '='))
			l++;
		if (l == i)
			continue;
		e = i + 1;
		if (e < len && s[e] == '[') {
			const char *cl = memchr(s + e, ']', len - e);

			if (cl == NULL || cl - (s + e) > 64)
				continue;
			e = (size_t)(cl - s) + 1;
		} else {
			while (e < len && domain_char((unsigned char)s[e])) {
				size_t n;
				unsigned cp = cp_at(s, len, e, &n);

				if (cp >= 0x80 && (cp_punct(cp) || glued(cp, (unsigned char)s[e - 1])))
					break;
				e += n;
			}
			while (e > i + 1 && (s[e - 1] == '.' || s[e - 1] == '-'))
				e--;
		}
		if (e == i + 1)
			continue;
		*at = l;
		*alen = e - l;
		return true;
	}
	return false;
}

/* --- what servers write around their replies ----------------------------------------- */

/*
 * ci_find - where needle (lower case, or not a letter) is in s[0..len),
 * case ignored; -1 if nowhere.  The first byte is matched before the
 * rest is compared: this runs over every byte of a return many times.
 */
long
bounce__ci_find(const char *s, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	unsigned char c0 = (unsigned char)needle[0], u0 = (unsigned char)toupper(c0);

	if (n == 0)
		return 0;
	for (size_t i = 0; i + n <= len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c == c0 || c == u0) && strncasecmp(s + i + 1, needle + 1, n - 1) == 0)
			return (long)i;
	}
	return -1;
}

/* line_at - the trimmed line around offset off of s. */
static void
line_at(const char *s, size_t len, size_t off, char **dst)
{
	size_t b = off, e = off;

	while (b > 0 && s[b - 1] != '\n')
		b--;
	while (e < len && s[e] != '\n')
		e++;
	/* "550 5.1.1 <a@b>:" says more on the lines that follow it. */
	for (int more = 0; more < 2 && e < len; more++) {
		size_t t = e;

		while (t > b && (s[t - 1] == ' ' || s[t - 1] == '\r'))
			t--;
		if (t == b || s[t - 1] != ':')
			break;
		for (e++; e < len && s[e] != '\n'; e++)
			;
	}
	bounce__set(dst, s + b, e - b);
}

/*
 * code_in - the status in s[0..len): an enhanced code, else a reply code
 * as "N.0.0".  Returns the offset of the code's line start, or -1; the
 * diagnostic is that line.
 */
long
bounce__code_in(const char *s, size_t len, char status[16], char **diag)
{
	char enh[16];
	long ei, ri;
	int reply = 0;

	ei = bounce__find_status(s, len, enh);
	ri = bounce__find_reply(s, len, &reply);
	/* A 2.x.x code in a bounce's text is rarely the failure. */
	if (ei >= 0 && enh[0] == '2')
		ei = -1;
	if (ei >= 0) {
		str_copy(status, enh, 16);
		/* The diagnostic: the reply line if it comes first on that line. */
		line_at(s, len, ri >= 0 && ri < ei ? (size_t)ri : (size_t)ei, diag);
		return ei;
	}
	if (ri >= 0) {
		snprintf(status, 16, "%d.0.0", reply / 100);
		line_at(s, len, (size_t)ri, diag);
		return ri;
	}
	return -1;
}

/* decoration - a line of dashes or stars, or a returned header field. */
static bool
decoration(const char *t, size_t n)
{
	size_t k = 0;

	for (k = 0; k < n && strchr("-*=_#|+ \t\r", t[k]) != NULL; k++)
		;
	if (k == n)
		return true;
	if (n <= 8)
		return false;
	return strncasecmp(t, "Subject:", 8) == 0 || strncasecmp(t, "From:", 5) == 0 ||
	    strncasecmp(t, "To:", 3) == 0 || strncasecmp(t, "Date:", 5) == 0;
}

/* first_words - the first non-empty line after the anchor's, for a diagnostic. */
void
bounce__first_words(const char *s, size_t len, char **dst)
{
	const char *p = s, *end = s + len, *label = NULL;
	const char *eol = memchr(p, '\n', len);
	size_t label_len = 0;

	p = eol != NULL ? eol + 1 : end;
	while (p < end) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		const char *t = p, *te = e != NULL ? e : end;

		while (t < te && isspace((unsigned char)*t))
			t++;
		while (te > t && isspace((unsigned char)te[-1]))
			te--;
		if (t < te && !decoration(t, (size_t)(te - t))) {
			/* "Reason:" alone: the reason is on the next line; keep both. */
			if (label == NULL && te[-1] == ':' && te - t < 64) {
				label = t;
				label_len = (size_t)(te - t);
			} else if (label != NULL) {
				char *both = NULL;

				if (asprintf(&both, "%.*s %.*s", (int)label_len, label, (int)(te - t), t) < 0)
					both = NULL;
				if (both != NULL) {
					bounce__set(dst, both, strlen(both));
					free(both);
				}
				return;
			} else {
				bounce__set(dst, t, (size_t)(te - t));
				return;
			}
		}
		p = e != NULL ? e + 1 : end;
	}
	if (label != NULL)
		bounce__set(dst, label, label_len);
}

/* rest_of_line - what follows addr on the first line of s, if it says something. */
void
bounce__rest_of_line(const char *s, size_t len, const char *addr, char **dst)
{
	const char *eol = memchr(s, '\n', len), *e = eol != NULL ? eol : s + len;
	long at = bounce__ci_find(s, (size_t)(e - s), addr);
	const char *t, *after;
	size_t letters = 0;

	if (at < 0 || addr[0] == '\0')
		return;
	after = t = s + at + strlen(addr);
	while (t < e && strchr(">:.,;)[]( \t\r-", *t) != NULL)
		t++;
	/* "[Connection timed out]": the bracket that was skipped closes too. */
	if (e > t && e[-1] == ']' && memchr(after, '[', (size_t)(t - after)) != NULL &&
	    memchr(t, '[', (size_t)(e - t)) == NULL)
		e--;
	for (const char *q = t; q < e; q++)
		if (isalpha((unsigned char)*q))
			letters++;
	if (letters >= 3)
		bounce__set(dst, t, (size_t)(e - t));
}

/* remote_of - "host mx.example.jp [192.0.2.20]" or "remote host 192.0.2.32" in s. */
void
bounce__remote_of(const char *s, size_t len, char **dst)
{
	static const char *const marks[] = { "host ", "remote host ", "mx ", NULL };

	for (int m = 0; marks[m] != NULL; m++) {
		size_t n = strlen(marks[m]);

		for (size_t i = 0; i + n < len; i++) {
			size_t e;
			long f = bounce__ci_find(s + i, len - i, marks[m]);

			if (f < 0)
				break;
			i += (size_t)f;
			if (i > 0 && isalnum((unsigned char)s[i - 1]))
				continue;
			e = i + n;
			while (e < len && (isalnum((unsigned char)s[e]) || s[e] == '.' || s[e] == '-' || s[e] == ':'))
				e++;
			/* A host name has a dot; "host said" is no host. */
			if (e > i + n && memchr(s + i + n, '.', e - i - n) != NULL) {
				while (e > i + n && (s[e - 1] == '.' || s[e - 1] == ':'))
					e--;
				bounce__set(dst, s + i + n, e - i - n);
				return;
			}
		}
	}
}
