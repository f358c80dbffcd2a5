/*
 * mailaddr - RFC 5321 paths with RFC 6531 UTF-8.  See mailaddr.h.
 *
 * One left-to-right pass over the bytes, no backtracking: every loop
 * advances the cursor, so parsing is O(len) whatever the input.
 */
#include "core/mailaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/str.h"

#define LABEL_MAX 63
#define ACE_PREFIX_LEN 4 /* "xn--" */

struct scan {
	const unsigned char *s;
	size_t len;
	size_t i;
	bool utf8_ok;
	bool saw_utf8;
	const char *why;
};

static size_t utf8_seq(const unsigned char *, size_t, uint32_t *);
static int fail(struct scan *, int, const char *);
static int scan_utf8(struct scan *, int, uint32_t *);
static bool is_alnum(unsigned char);
static bool is_atext(unsigned char);
static int parse_local(struct scan *);
static int parse_literal(struct scan *);
static int parse_domain(struct scan *, bool);
static bool ldh_tag(const unsigned char *, size_t);
static uint32_t puny_adapt(uint32_t, size_t, bool);
static size_t puny_len(const uint32_t *, size_t);
static bool ascii_prefix_ci(const unsigned char *, size_t, const char *);

/*
 * utf8_seq - length (1-4) of the well-formed UTF-8 sequence at s[0..len)
 * and its code point, or 0: RFC 3629 table 4, so no overlong forms, no
 * surrogates, nothing above U+10FFFF, and no NUL.
 */
static size_t
utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;
	uint32_t v;

	if (c == 0)
		return 0;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		v = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;      /* overlong */
		else if (c == 0xed)
			hi = 0x9f;      /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		v = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;      /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;      /* above U+10FFFF */
	} else
		return 0;       /* continuation, C0/C1 overlong lead, F5..FF */
	if (len < n)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	v = (v << 6) | (s[1] & 0x3f);
	for (size_t k = 2; k < n; k++) {
		if (s[k] < 0x80 || s[k] > 0xbf)
			return 0;
		v = (v << 6) | (s[k] & 0x3f);
	}
	*cp = v;
	return n;
}

bool
mailaddr_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp;
	size_t i = 0, n;

	while (i < len) {
		if ((n = utf8_seq(p + i, len - i, &cp)) == 0)
			return false;
		i += n;
	}
	return true;
}

static int
fail(struct scan *sc, int code, const char *why)
{
	sc->why = why;
	return code;
}

/*
 * scan_utf8 - take the non-ASCII character at the cursor: refused with
 * MAILADDR_EUTF8 unless allowed, with err when malformed or a C1 control.
 */
static int
scan_utf8(struct scan *sc, int err, uint32_t *cp)
{
	size_t n;

	if (!sc->utf8_ok)
		return fail(sc, MAILADDR_EUTF8, "non-ASCII address without SMTPUTF8");
	n = utf8_seq(sc->s + sc->i, sc->len - sc->i, cp);
	if (n == 0)
		return fail(sc, err, "invalid UTF-8");
	if (*cp <= 0x9f)
		return fail(sc, err, "control character");
	sc->i += n;
	sc->saw_utf8 = true;
	return 0;
}

static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* RFC 5322 3.2.3 atext, which RFC 5321 4.1.2 uses for Atom. */
static bool
is_atext(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static int
parse_local(struct scan *sc)
{
	size_t start = sc->i;
	uint32_t cp;
	bool atom = false;      /* dot-string: the last thing taken was atext */
	int rc;

	if (sc->i < sc->len && sc->s[sc->i] == '"') {
		sc->i++;
		for (;;) {
			unsigned char c;

			if (sc->i >= sc->len)
				return fail(sc, MAILADDR_ELOCAL, "unterminated quoted string");
			c = sc->s[sc->i];
			if (c == '"') {
				sc->i++;
				if (sc->i - start > MAILADDR_LOCAL_MAX)
					return fail(sc, MAILADDR_ETOOLONG, "local part too long");
				break;
			}
			if (c == '\\') {
				/* quoted-pairSMTP = "\" %d32-126 */
				if (sc->i + 1 >= sc->len || sc->s[sc->i + 1] < 32 ||
				    sc->s[sc->i + 1] > 126)
					return fail(sc, MAILADDR_ELOCAL, "invalid quoted pair");
				sc->i += 2;
			} else if (c >= 0x80) {
				if ((rc = scan_utf8(sc, MAILADDR_ELOCAL, &cp)) < 0)
					return rc;
			} else if (c < 32 || c == 127)
				return fail(sc, MAILADDR_ELOCAL, "control character in local part");
			else
				sc->i++;
			if (sc->i - start > MAILADDR_LOCAL_MAX)
				return fail(sc, MAILADDR_ETOOLONG, "local part too long");
		}
		if (sc->i - start == 2)
			return fail(sc, MAILADDR_ELOCAL, "empty local part");
		return 0;
	}

	/* Dot-string: no leading, trailing or doubled dot. */
	while (sc->i < sc->len) {
		unsigned char c = sc->s[sc->i];

		if (c == '.') {
			if (!atom)
				return fail(sc, MAILADDR_ELOCAL, "misplaced '.' in local part");
			atom = false;
			sc->i++;
		} else if (is_atext(c)) {
			atom = true;
			sc->i++;
		} else if (c >= 0x80) {
			if ((rc = scan_utf8(sc, MAILADDR_ELOCAL, &cp)) < 0)
				return rc;
			atom = true;
		} else
			break;
		if (sc->i - start > MAILADDR_LOCAL_MAX)
			return fail(sc, MAILADDR_ETOOLONG, "local part too long");
	}
	if (sc->i == start)
		return fail(sc, MAILADDR_ELOCAL, "empty local part");
	if (!atom)
		return fail(sc, MAILADDR_ELOCAL, "misplaced '.' in local part");
	return 0;
}

/* Standardized-tag = Ldh-str, here also starting with Let-dig. */
static bool
ldh_tag(const unsigned char *p, size_t n)
{
	if (n == 0 || !is_alnum(p[0]) || !is_alnum(p[n - 1]))
		return false;
	for (size_t k = 0; k < n; k++)
		if (!is_alnum(p[k]) && p[k] != '-')
			return false;
	return true;
}

static bool
ascii_prefix_ci(const unsigned char *p, size_t n, const char *prefix)
{
	size_t k;

	for (k = 0; prefix[k] != '\0'; k++) {
		unsigned char c;

		if (k >= n)
			return false;
		c = p[k];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c != (unsigned char)prefix[k])
			return false;
	}
	return true;
}

/*
 * parse_literal - "[" ( IPv4 / "IPv6:" IPv6 / tag ":" 1*dcontent ) "]",
 * RFC 5321 4.1.3; the cursor is at the '['.
 */
static int
parse_literal(struct scan *sc)
{
	char tmp[MAILADDR_DOMAIN_MAX + 1];
	unsigned char addr[16];
	const unsigned char *body, *colon;
	size_t start = sc->i, blen;

	sc->i++;
	while (sc->i < sc->len && sc->s[sc->i] != ']') {
		unsigned char c = sc->s[sc->i];

		/* dcontent = %d33-90 / %d94-126 */
		if (c < 33 || c > 126 || c == '[' || c == '\\')
			return fail(sc, MAILADDR_EDOMAIN, "invalid character in address literal");
		sc->i++;
		if (sc->i + 1 - start > MAILADDR_DOMAIN_MAX)
			return fail(sc, MAILADDR_ETOOLONG, "domain too long");
	}
	if (sc->i >= sc->len)
		return fail(sc, MAILADDR_EDOMAIN, "unterminated address literal");
	body = sc->s + start + 1;
	blen = sc->i - start - 1;
	sc->i++;        /* the ']' */

	if (ascii_prefix_ci(body, blen, "ipv6:")) {
		str_copyn(tmp, body + 5, blen - 5, sizeof tmp);
		if (inet_pton(AF_INET6, tmp, addr) != 1)
			return fail(sc, MAILADDR_EDOMAIN, "invalid IPv6 address literal");
		return 0;
	}
	colon = memchr(body, ':', blen);
	if (colon != NULL) {
		size_t tlen = (size_t)(colon - body);

		if (!ldh_tag(body, tlen) || tlen + 1 == blen)
			return fail(sc, MAILADDR_EDOMAIN, "invalid address literal");
		return 0;
	}
	str_copyn(tmp, body, blen, sizeof tmp);
	if (inet_pton(AF_INET, tmp, addr) != 1)
		return fail(sc, MAILADDR_EDOMAIN, "invalid IPv4 address literal");
	return 0;
}

/* RFC 3492 6.1 with base 36, tmin 1, tmax 26, skew 38, damp 700. */
static uint32_t
puny_adapt(uint32_t delta, size_t npoints, bool first)
{
	uint32_t k = 0;

	delta = first ? delta / 700 : delta / 2;
	delta += delta / (uint32_t)npoints;
	while (delta > ((36 - 1) * 26) / 2) {
		delta /= 36 - 1;
		k += 36;
	}
	return k + (36 * delta) / (delta + 38);
}

/*
 * puny_len - the length of the Punycode encoding (RFC 3492 6.3) of
 * cp[0..n), without "xn--"; SIZE_MAX if the counters would overflow
 * (no valid label does).  Only the length is computed.
 */
static size_t
puny_len(const uint32_t *cp, size_t n)
{
	uint32_t code = 128, delta = 0, bias = 72, m;
	size_t h, b = 0, out;

	for (size_t j = 0; j < n; j++)
		if (cp[j] < 128)
			b++;
	out = b + (b > 0);
	h = b;
	while (h < n) {
		m = UINT32_MAX;
		for (size_t j = 0; j < n; j++)
			if (cp[j] >= code && cp[j] < m)
				m = cp[j];
		if ((m - code) > (UINT32_MAX - delta) / (uint32_t)(h + 1))
			return SIZE_MAX;
		delta += (m - code) * (uint32_t)(h + 1);
		code = m;
		for (size_t j = 0; j < n; j++) {
			uint32_t q;

			if (cp[j] < code && ++delta == 0)
				return SIZE_MAX;
			if (cp[j] != code)
				continue;
			q = delta;
			for (uint32_t k = 36;; k += 36) {
				uint32_t t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;

				if (q < t)
					break;
				out++;
				q = (q - t) / (36 - t);
			}
			out++;
			bias = puny_adapt(delta, h + 1, h == b);
			delta = 0;
			h++;
		}
		delta++;
		code++;
	}
	return out;
}

/*
 * parse_domain - Domain (RFC 5321 4.1.2) at the cursor, or with
 * allow_literal an address-literal.  Stops at the first byte that cannot
 * continue it; the caller checks what that is.
 */
static int
parse_domain(struct scan *sc, bool allow_literal)
{
	uint32_t cps[MAILADDR_DOMAIN_MAX];
	size_t start = sc->i, ace = 0;
	int rc;

	if (sc->i < sc->len && sc->s[sc->i] == '[') {
		if (!allow_literal)
			return fail(sc, MAILADDR_EDOMAIN, "address literal in source route");
		return parse_literal(sc);
	}
	for (;;) {
		size_t lstart = sc->i, ncp = 0;
		bool ulabel = false;

		while (sc->i < sc->len) {
			unsigned char c = sc->s[sc->i];
			uint32_t cp;

			if (c < 0x80) {
				if (!is_alnum(c) && c != '-')
					break;
				cp = c;
				sc->i++;
			} else {
				if ((rc = scan_utf8(sc, MAILADDR_EDOMAIN, &cp)) < 0)
					return rc;
				ulabel = true;
			}
			/* Bounds ncp too: a code point takes at least one octet. */
			if (sc->i - start > MAILADDR_DOMAIN_MAX)
				return fail(sc, MAILADDR_ETOOLONG, "domain too long");
			cps[ncp++] = cp;
		}
		if (ncp == 0)
			return fail(sc, MAILADDR_EDOMAIN, sc->i == start ?
			    "missing domain" : "empty domain label");
		if (cps[0] == '-' || cps[ncp - 1] == '-')
			return fail(sc, MAILADDR_EDOMAIN, "domain label starts or ends with '-'");
		if (!ulabel) {
			if (sc->i - lstart > LABEL_MAX)
				return fail(sc, MAILADDR_EDOMAIN, "domain label too long");
			ace += sc->i - lstart;
		} else {
			size_t pl;

			if (ncp >= 4 && cps[2] == '-' && cps[3] == '-')
				return fail(sc, MAILADDR_EDOMAIN, "U-label with '--' in positions 3-4");
			pl = puny_len(cps, ncp);
			if (pl > LABEL_MAX - ACE_PREFIX_LEN)
				return fail(sc, MAILADDR_EDOMAIN, "domain label too long");
			ace += ACE_PREFIX_LEN + pl;
		}
		if (sc->i < sc->len && sc->s[sc->i] == '.') {
			sc->i++;
			ace++;
			continue;
		}
		break;
	}
	if (ace > MAILADDR_DOMAIN_MAX)
		return fail(sc, MAILADDR_ETOOLONG, "domain too long");
	return 0;
}

int
mailaddr_parse_path(struct mailaddr *a, const char *s, size_t len,
    bool allow_null, bool allow_utf8, const char **why)
{
	struct scan sc = { (const unsigned char *)s, len, 0, allow_utf8, false, "" };
	size_t lstart, dstart;
	int rc;

	memset(a, 0, sizeof *a);
	if (len == 0 || s[0] != '<') {
		rc = fail(&sc, MAILADDR_ESYNTAX, "missing '<'");
		goto out;
	}
	sc.i = 1;
	if (sc.i < len && s[sc.i] == '>') {
		if (!allow_null) {
			rc = fail(&sc, MAILADDR_ENULL, "null path not allowed");
			goto out;
		}
		a->null = true;
		rc = 2;
		goto out;
	}

	/* A-d-l ":" - checked, then dropped (RFC 5321 4.1.2, appendix C). */
	if (sc.i < len && s[sc.i] == '@') {
		for (;;) {
			sc.i++;         /* the '@' */
			if ((rc = parse_domain(&sc, false)) < 0)
				goto out;
			if (sc.i > MAILADDR_PATH_MAX) {
				rc = fail(&sc, MAILADDR_ETOOLONG, "path too long");
				goto out;
			}
			if (sc.i + 1 < len && s[sc.i] == ',' && s[sc.i + 1] == '@') {
				sc.i++;
				continue;
			}
			if (sc.i < len && s[sc.i] == ':') {
				sc.i++;
				break;
			}
			if (sc.i < len && s[sc.i] == '>')
				rc = fail(&sc, MAILADDR_ELOCAL, "empty local part");
			else
				rc = fail(&sc, MAILADDR_ESYNTAX, "bad source route");
			goto out;
		}
	}

	/* utf8 describes the address kept, not the route dropped. */
	sc.saw_utf8 = false;
	lstart = sc.i;
	if ((rc = parse_local(&sc)) < 0)
		goto out;
	str_copyn(a->local, s + lstart, sc.i - lstart, sizeof a->local);
	if (sc.i >= len || s[sc.i] != '@') {
		if (sc.i >= len || s[sc.i] == '>')
			rc = fail(&sc, MAILADDR_ESYNTAX, "missing '@' and domain");
		else
			rc = fail(&sc, MAILADDR_ELOCAL, "invalid character in local part");
		goto out;
	}
	sc.i++;
	dstart = sc.i;
	if ((rc = parse_domain(&sc, true)) < 0)
		goto out;
	a->ip_literal = s[dstart] == '[';
	str_copyn(a->domain, s + dstart, sc.i - dstart, sizeof a->domain);
	if (sc.i >= len) {
		rc = fail(&sc, MAILADDR_ESYNTAX, "missing '>'");
		goto out;
	}
	if (s[sc.i] != '>') {
		rc = fail(&sc, MAILADDR_EDOMAIN, "invalid character in domain");
		goto out;
	}
	sc.i++;
	if (sc.i > MAILADDR_PATH_MAX) {
		rc = fail(&sc, MAILADDR_ETOOLONG, "path too long");
		goto out;
	}
	a->utf8 = sc.saw_utf8;
	rc = (int)sc.i;
out:
	if (rc < 0)
		memset(a, 0, sizeof *a);
	if (why != NULL)
		*why = sc.why;
	return rc;
}

int
mailaddr_format(const struct mailaddr *a, char *dst, size_t size)
{
	size_t ll, dl;

	if (size == 0)
		return -E2BIG;
	dst[0] = '\0';
	if (a->null)
		return 0;
	ll = strnlen(a->local, sizeof a->local);
	dl = strnlen(a->domain, sizeof a->domain);
	if (ll + 1 + dl >= size)
		return -E2BIG;
	memcpy(dst, a->local, ll);
	dst[ll] = '@';
	memcpy(dst + ll + 1, a->domain, dl);
	dst[ll + 1 + dl] = '\0';
	return (int)(ll + 1 + dl);
}

int
mailaddr_domain_lc(const struct mailaddr *a, char *dst, size_t size)
{
	ssize_t n = str_copy(dst, a->domain, size);

	if (n < 0) {
		if (size > 0)
			dst[0] = '\0';
		return -E2BIG;
	}
	str_lower(dst);
	return (int)n;
}

bool
mailaddr_domain_eq(const struct mailaddr *a, const char *domain)
{
	const unsigned char *p = (const unsigned char *)a->domain;
	const unsigned char *q = (const unsigned char *)domain;

	for (;; p++, q++) {
		unsigned char c = *p, d = *q;

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (d >= 'A' && d <= 'Z')
			d = (unsigned char)(d - 'A' + 'a');
		if (c != d)
			return false;
		if (c == '\0')
			return true;
	}
}
