/*
 * rfc5322 - the header scanner and the From parser.  See rfc5322.h.
 */
#include "core/rfc5322.h"

#include <string.h>
#include <strings.h>

#include "core/str.h"

#define COMMENT_DEPTH_MAX 32

/* --- header section ---------------------------------------------------------- */

void
rfc5322_scan_init(struct rfc5322_scan *s, const char *msg, size_t len)
{
	s->p = msg;
	s->end = msg + len;
	s->body = NULL;
}

bool
rfc5322_next(struct rfc5322_scan *s, const char **field, size_t *flen)
{
	const char *start = s->p, *q = s->p, *nl, *fe;

	if (s->body != NULL || s->p >= s->end)
		return false;
	if (*s->p == '\n' ||
	    (*s->p == '\r' && s->end - s->p >= 2 && s->p[1] == '\n')) {
		s->body = s->p + (*s->p == '\n' ? 1 : 2);
		s->p = s->end;
		return false;
	}
	for (;;) {
		nl = memchr(q, '\n', (size_t)(s->end - q));
		if (nl == NULL) {
			fe = s->end;
			s->p = s->end;
			break;
		}
		if (nl + 1 < s->end && (nl[1] == ' ' || nl[1] == '\t')) {
			q = nl + 1;
			continue;
		}
		fe = nl;
		s->p = nl + 1;
		break;
	}
	if (fe > start && fe[-1] == '\r')
		fe--;
	*field = start;
	*flen = (size_t)(fe - start);
	return true;
}

const char *
rfc5322_field_colon(const char *f, size_t fl)
{
	return memchr(f, ':', fl);
}

bool
rfc5322_field_is(const char *f, size_t fl, const char *name)
{
	const char *colon = rfc5322_field_colon(f, fl);
	size_t n;

	if (colon == NULL)
		return false;
	n = (size_t)(colon - f);
	while (n > 0 && (f[n - 1] == ' ' || f[n - 1] == '\t'))
		n--;
	return n == strlen(name) && strncasecmp(f, name, n) == 0;
}

bool
rfc5322_is_field(const char *f, size_t fl)
{
	size_t i, n;

	for (i = 0; i < fl && f[i] > ' ' && f[i] < 0x7f && f[i] != ':'; i++)
		;
	n = i;
	while (i < fl && (f[i] == ' ' || f[i] == '\t'))
		i++;
	return n > 0 && i < fl && f[i] == ':';
}

size_t
rfc5322_head_len(const char *msg, size_t len)
{
	struct rfc5322_scan s;
	const char *f;
	size_t fl;

	rfc5322_scan_init(&s, msg, len);
	while (rfc5322_next(&s, &f, &fl))
		;
	return s.body != NULL ? (size_t)(s.body - msg) : len;
}

/* --- From (RFC 5322 3.4, RFC 6854, RFC 6532) ---------------------------------- */

struct fparse {
	const unsigned char *p, *end;
	size_t nmbox;        /* mailboxes seen */
	size_t ngroup;       /* groups seen */
	char domain[RFC5322_DOMAIN_MAX];  /* the first mailbox's domain, lower-cased */
	const char *why;
};

static bool
fp_fail(struct fparse *fp, const char *why)
{
	if (fp->why == NULL)
		fp->why = why;
	return false;
}

/* RFC 5322 3.2.3 atext, and any non-ASCII octet (RFC 6532 3.2). */
static bool
is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 0x80)
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool
is_fws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skip white space and comments (nested, with quoted pairs). */
static bool
skip_cfws(struct fparse *fp)
{
	int depth;

	for (;;) {
		while (fp->p < fp->end && is_fws(*fp->p))
			fp->p++;
		if (fp->p >= fp->end || *fp->p != '(')
			return true;
		depth = 0;
		while (fp->p < fp->end) {
			if (*fp->p == '\\') {
				fp->p += fp->end - fp->p >= 2 ? 2 : 1;
				continue;
			}
			if (*fp->p == '(' && ++depth > COMMENT_DEPTH_MAX)
				return fp_fail(fp, "comments nested too deep");
			if (*fp->p == ')' && --depth == 0) {
				fp->p++;
				break;
			}
			fp->p++;
		}
		if (depth != 0)
			return fp_fail(fp, "unterminated comment");
	}
}

/* A quoted-string starting at '"'; false if it does not end. */
static bool
skip_quoted(struct fparse *fp)
{
	fp->p++;
	while (fp->p < fp->end) {
		if (*fp->p == '\\') {
			fp->p += fp->end - fp->p >= 2 ? 2 : 1;
			continue;
		}
		if (*fp->p++ == '"')
			return true;
	}
	return fp_fail(fp, "unterminated quoted string");
}

/* Append c, ASCII lower-cased, to fp->domain when keep is set. */
static bool
domain_put(struct fparse *fp, size_t *n, unsigned char c, bool keep)
{
	if (!keep)
		return true;
	if (*n + 1 >= sizeof fp->domain)
		return fp_fail(fp, "domain too long");
	fp->domain[(*n)++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	fp->domain[*n] = '\0';
	return true;
}

/*
 * domain = dot-atom / domain-literal / obs-domain (CFWS allowed around
 * the dots).  With keep, it is copied lower-cased into fp->domain.
 */
static bool
parse_domain(struct fparse *fp, bool keep)
{
	size_t n = 0;

	if (keep)
		fp->domain[0] = '\0';
	if (!skip_cfws(fp))
		return false;
	if (fp->p < fp->end && *fp->p == '[') {
		if (!domain_put(fp, &n, *fp->p++, keep))
			return false;
		for (;;) {
			if (fp->p >= fp->end)
				return fp_fail(fp, "unterminated domain literal");
			if (*fp->p == '[')
				return fp_fail(fp, "'[' inside a domain literal");
			if (*fp->p == '\\' && fp->end - fp->p >= 2 &&
			    !domain_put(fp, &n, *fp->p++, keep))
				return false;
			if (!domain_put(fp, &n, *fp->p, keep))
				return false;
			if (*fp->p++ == ']')
				return skip_cfws(fp);
		}
	}
	for (;;) {
		if (fp->p >= fp->end || !is_atext(*fp->p))
			return fp_fail(fp, "bad domain");
		while (fp->p < fp->end && is_atext(*fp->p))
			if (!domain_put(fp, &n, *fp->p++, keep))
				return false;
		if (!skip_cfws(fp))
			return false;
		if (fp->p >= fp->end || *fp->p != '.')
			return true;
		fp->p++;
		if (!domain_put(fp, &n, '.', keep) || !skip_cfws(fp))
			return false;
	}
}

/* obs-route = obs-domain-list ":" (RFC 5322 4.4): "@a.example,@b.example:". */
static bool
skip_route(struct fparse *fp)
{
	while (fp->p < fp->end && (*fp->p == '@' || *fp->p == ',')) {
		if (*fp->p++ == ',') {
			if (!skip_cfws(fp))
				return false;
			continue;
		}
		/* A route's domains are not the mailbox's. */
		if (!parse_domain(fp, false))
			return false;
	}
	if (fp->p >= fp->end || *fp->p != ':')
		return fp_fail(fp, "bad route in angle address");
	fp->p++;
	return skip_cfws(fp);
}

/*
 * A phrase or local part: words (atoms or quoted strings) and dots.
 * Reports how many words were read and whether they form a local part
 * (word *("." word), RFC 5322 3.4.1 and 4.4).
 */
static bool
parse_words(struct fparse *fp, size_t *nwords, bool *local)
{
	bool lastdot = true;

	*nwords = 0;
	*local = true;
	for (;;) {
		if (!skip_cfws(fp))
			return false;
		if (fp->p >= fp->end)
			break;
		if (*fp->p == '"' || is_atext(*fp->p)) {
			if (!lastdot)
				*local = false;
			if (*fp->p == '"') {
				if (!skip_quoted(fp))
					return false;
			} else {
				while (fp->p < fp->end && is_atext(*fp->p))
					fp->p++;
			}
			(*nwords)++;
			lastdot = false;
		} else if (*fp->p == '.') {
			if (lastdot)
				*local = false;
			lastdot = true;
			fp->p++;
		} else {
			break;
		}
	}
	if (lastdot && *nwords > 0)
		*local = false;
	return true;
}

/* addr-spec after its local part: "@" domain. */
static bool
parse_at_domain(struct fparse *fp)
{
	if (fp->p >= fp->end || *fp->p != '@')
		return fp_fail(fp, "no '@' in address");
	fp->p++;
	if (!parse_domain(fp, fp->nmbox == 0))
		return false;
	fp->nmbox++;
	return true;
}

/* angle-addr from its '<': [obs-route] addr-spec ">". */
static bool
parse_angle(struct fparse *fp)
{
	size_t nwords;
	bool local;

	fp->p++;
	if (!skip_cfws(fp))
		return false;
	if (fp->p < fp->end && *fp->p == '@' && !skip_route(fp))
		return false;
	if (!parse_words(fp, &nwords, &local))
		return false;
	if (nwords == 0 || !local)
		return fp_fail(fp, "bad local part in angle address");
	if (!parse_at_domain(fp))
		return false;
	if (fp->p >= fp->end || *fp->p != '>')
		return fp_fail(fp, "no '>' after address");
	fp->p++;
	return skip_cfws(fp);
}

/*
 * address = mailbox / group (group only when allow_group):
 *   mailbox = name-addr / addr-spec, name-addr = [phrase] angle-addr,
 *   group   = phrase ":" [mailbox-list / CFWS] ";".
 * Both start with words; what follows them decides.
 */
static bool
parse_address(struct fparse *fp, bool allow_group)
{
	size_t nwords;
	bool local;

	if (!parse_words(fp, &nwords, &local))
		return false;
	if (fp->p >= fp->end)
		return fp_fail(fp, nwords > 0 ? "no address after a name" :
		    "empty address");
	switch (*fp->p) {
	case '<':
		return parse_angle(fp);
	case '@':
		if (nwords == 0 || !local)
			return fp_fail(fp, "bad local part");
		return parse_at_domain(fp);
	case ':':
		if (!allow_group)
			return fp_fail(fp, "group inside a group");
		if (nwords == 0)
			return fp_fail(fp, "group without a name");
		fp->ngroup++;
		fp->p++;
		for (;;) {
			if (!skip_cfws(fp))
				return false;
			if (fp->p >= fp->end)
				return fp_fail(fp, "group without ';'");
			if (*fp->p == ';') {
				fp->p++;
				return skip_cfws(fp);
			}
			if (*fp->p == ',') {      /* obs-group-list: empty members */
				fp->p++;
				continue;
			}
			if (!parse_address(fp, false))
				return false;
			if (fp->p < fp->end && *fp->p == ',')
				fp->p++;
			else if (fp->p >= fp->end || *fp->p != ';')
				return fp_fail(fp, "junk after an address in a group");
		}
	default:
		return fp_fail(fp, "junk where an address should be");
	}
}

/* The address list of a From field after its colon. */
static bool
from_list(struct fparse *fp)
{
	for (;;) {
		if (!skip_cfws(fp))
			return false;
		if (fp->p >= fp->end)
			return true;
		if (*fp->p == ',') {    /* obs-addr-list: empty members */
			fp->p++;
			continue;
		}
		if (!parse_address(fp, true))
			return false;
		if (fp->p < fp->end && *fp->p == ',')
			fp->p++;
		else if (fp->p < fp->end)
			return fp_fail(fp, "junk after an address");
	}
}

bool
rfc5322_from_parse(const char *f, size_t fl, struct rfc5322_from *out)
{
	const char *colon = rfc5322_field_colon(f, fl);
	struct fparse fp;
	bool ok;

	memset(&fp, 0, sizeof fp);
	memset(out, 0, sizeof *out);
	if (colon == NULL) {
		out->why = "no ':' after the field name";
		return false;
	}
	fp.p = (const unsigned char *)colon + 1;
	fp.end = (const unsigned char *)f + fl;
	ok = from_list(&fp);
	out->nmbox = fp.nmbox;
	out->ngroup = fp.ngroup;
	str_copy(out->domain, fp.domain, sizeof out->domain);
	out->why = ok ? NULL : fp.why;
	return ok;
}
