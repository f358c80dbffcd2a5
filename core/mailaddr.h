/*
 * mailaddr - RFC 5321 4.1.2 paths ("<local@domain>") parsed and checked
 * into fixed fields, with RFC 6531 (SMTPUTF8) addresses when allowed.
 *
 * Grammar accepted (RFC 5321 4.1.2, 4.1.3; RFC 6531 3.3):
 *   Path        = "<" [ A-d-l ":" ] Mailbox ">"   source route dropped
 *   Mailbox     = Local-part "@" ( Domain / address-literal )
 *   Local-part  = Dot-string / Quoted-string      kept as written
 *   Dot-string  = Atom *("." Atom), Atom = 1*atext (RFC 5322 atext)
 *   Quoted-string: qtextSMTP (%d32-33 / %d35-91 / %d93-126) and
 *               quoted-pairSMTP ("\" %d32-126)
 *   Domain      = sub-domain *("." sub-domain), sub-domain = Let-dig
 *               [Ldh-str], each label at most 63 octets, at most 255
 *   address-literal = "[" IPv4 / "IPv6:" IPv6 / tag ":" dcontent "]"
 * With allow_utf8, atext, qtextSMTP and sub-domains also take UTF-8
 * (RFC 6531 UTF8-non-ascii), checked strictly (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF); C1 controls
 * (U+0080..U+009F) are refused like ASCII controls.  A label holding
 * UTF-8 is a U-label: no '-' at either end or in positions 3-4 (RFC 5891
 * 4.2.3.1), and its A-label ("xn--" + Punycode, RFC 3492) must fit in 63
 * octets, the whole domain so encoded in 255.  This is not an IDNA2008
 * validator: code point classes and NFC are left to the delivery side's
 * IDNA conversion, which refuses what DNS cannot carry.
 *
 * Judgement calls:
 * - Lengths are octets of the address as written (RFC 5321 4.5.3.1;
 *   RFC 6531 keeps them in octets): local part 64 (quotes and
 *   backslashes count), domain 255, path 256 with brackets and any
 *   source route.
 * - "<postmaster>" (RFC 5321 4.1.1.3, RCPT only) is refused: kurier is a
 *   submission relay and every address it accepts needs a domain.  The
 *   session may special-case it before calling here if it ever must.
 * - An empty quoted local part ("" @ domain) is refused like an empty one.
 * - Address literals: IPv4 and IPv6 must be valid for inet_pton(); the
 *   "IPv6:" tag is matched without regard to case (ABNF strings are
 *   case-insensitive).  General-address-literals ("[tag:content]") are
 *   accepted by syntax only; ip_literal is set for every bracketed form
 *   so callers never look one up in DNS.
 *
 * Nothing here allocates.  No function keeps a pointer to its input.
 */
#ifndef KURIER_CORE_MAILADDR_H
#define KURIER_CORE_MAILADDR_H

#include <stdbool.h>
#include <stddef.h>

#define MAILADDR_LOCAL_MAX 64   /* RFC 5321 4.5.3.1.1 */
#define MAILADDR_DOMAIN_MAX 255 /* RFC 5321 4.5.3.1.2 */
#define MAILADDR_PATH_MAX 256   /* RFC 5321 4.5.3.1.3, with the brackets */
/* mailaddr_format() of any parsed address fits in this many bytes. */
#define MAILADDR_ADDR_SIZE (MAILADDR_PATH_MAX - 2 + 1)

struct mailaddr {
	/* As written: a quoted form keeps its quotes ("\"john doe\""). */
	char local[MAILADDR_LOCAL_MAX + 1];
	/* As written; literals with brackets: "[192.0.2.1]", "[IPv6:...]". */
	char domain[MAILADDR_DOMAIN_MAX + 1];
	bool null;       /* "<>" */
	bool utf8;       /* holds non-ASCII: needs SMTPUTF8 */
	bool ip_literal; /* domain is an address-literal */
};

/* Errors of mailaddr_parse_path(); not errno values. */
enum {
	MAILADDR_ESYNTAX = -1, /* no brackets, no '@', bad source route */
	MAILADDR_ETOOLONG = -2, /* local > 64, domain > 255 or path > 256 */
	MAILADDR_EUTF8 = -3,   /* non-ASCII without allow_utf8 */
	MAILADDR_ENULL = -4,   /* "<>" without allow_null */
	MAILADDR_EDOMAIN = -5, /* bad domain or address literal */
	MAILADDR_ELOCAL = -6,  /* bad local part */
};

/*
 * mailaddr_parse_path - parse the path that starts at s[0] (a '<') within
 * s[0..len), which need not be NUL-terminated and may go on after the
 * path (ESMTP parameters).  allow_null admits "<>" (MAIL FROM);
 * allow_utf8 admits non-ASCII (the client gave SMTPUTF8).  Returns the
 * bytes consumed, up to and including the '>', with *a filled in; or a
 * MAILADDR_E* code, *a then zeroed.  *why (may be NULL) is set on both
 * paths: a short static reason for logs ("local part too long"), "" on
 * success.  No whitespace is skipped at either end.
 */
int mailaddr_parse_path(struct mailaddr *a, const char *s, size_t len,
    bool allow_null, bool allow_utf8, const char **why);

/*
 * mailaddr_format - "local@domain" into dst[size], "" for the null path.
 * Returns the length written, or -E2BIG (dst then holds "").  A dst of
 * MAILADDR_ADDR_SIZE always fits.  "<" + the result + ">" parses back to
 * the same address.
 */
int mailaddr_format(const struct mailaddr *a, char *dst, size_t size);

/*
 * mailaddr_domain_lc - the domain, ASCII letters lower-cased (UTF-8 left
 * as is), into dst[size].  Returns its length or -E2BIG.
 */
int mailaddr_domain_lc(const struct mailaddr *a, char *dst, size_t size);

/* mailaddr_domain_eq - whether a's domain is domain, ASCII case ignored. */
bool mailaddr_domain_eq(const struct mailaddr *a, const char *domain);

/*
 * mailaddr_utf8_valid - whether s[0..len) is well-formed UTF-8 (RFC 3629;
 * ASCII included, NUL refused).  Exported for other protocol text checks
 * (AUTH identities, ESMTP values) so that one strict decoder is used.
 */
bool mailaddr_utf8_valid(const char *s, size_t len);

#endif
