/*
 * rfc5322 - reading a message's header section (RFC 5322 2.2, 3.6) and
 * its From field (RFC 5322 3.4 and 4.4, RFC 6854 groups, RFC 6532
 * non-ASCII octets).  One scanner and one From parser for everything in
 * kurier that looks at headers: DKIM signing (deliver/dkimsign), the
 * submission header check (policy/check) and the end of DATA (relay).
 * Pure functions over bytes the caller owns; nothing allocates.
 */
#ifndef KURIER_CORE_RFC5322_H
#define KURIER_CORE_RFC5322_H

#include <stdbool.h>
#include <stddef.h>

#define RFC5322_DOMAIN_MAX 256  /* a From domain, NUL included */

/*
 * A walk over the header fields of msg[0..len).  Each field is returned
 * with its folded continuation lines and without its final line end
 * (CRLF or bare LF).  The walk stops at the empty line that ends the
 * section (body is then set just after it) or at the end.
 */
struct rfc5322_scan {
	const char *p, *end;
	const char *body;    /* after the empty line, or NULL */
};

void rfc5322_scan_init(struct rfc5322_scan *s, const char *msg, size_t len);
/* rfc5322_next - the next field in *field, *flen; false at the end. */
bool rfc5322_next(struct rfc5322_scan *s, const char **field, size_t *flen);
/* rfc5322_field_colon - the colon ending f's name, or NULL for a line without. */
const char *rfc5322_field_colon(const char *f, size_t fl);
/* rfc5322_field_is - whether f is named name (ASCII case ignored, WSP before ':' allowed). */
bool rfc5322_field_is(const char *f, size_t fl, const char *name);
/*
 * rfc5322_is_field - whether f starts a header field: a name of printable
 * ASCII but ':' (RFC 5322 3.6.8), optional white space (4.5's obsolete
 * syntax), ':'.  A line that is not may only start the body.
 */
bool rfc5322_is_field(const char *f, size_t fl);
/*
 * rfc5322_head_len - the length of msg[0..len)'s header section with the
 * empty line that ends it, as the scanner walks it; len when there is no
 * empty line.
 */
size_t rfc5322_head_len(const char *msg, size_t len);

/* What a From field holds. */
struct rfc5322_from {
	size_t nmbox;        /* mailboxes, group members included */
	size_t ngroup;       /* groups ("Friends: a@x, b@y;") */
	char domain[RFC5322_DOMAIN_MAX];  /* the first mailbox's domain, lower case; "" if none */
	const char *why;     /* static: the syntax error, when false is returned */
};

/*
 * rfc5322_from_parse - parse From field f[0..fl) (name, colon, value):
 * count its mailboxes and groups and get the first mailbox's domain.
 * Comments, quoted strings, domain literals, obsolete routes and empty
 * list members are understood; comments nest at most 32 deep.  False
 * with out->why on a syntax error (out->nmbox and out->domain then say
 * what was read before it).
 */
bool rfc5322_from_parse(const char *f, size_t fl, struct rfc5322_from *out);

#endif
