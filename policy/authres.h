/*
 * authres - the trace fields an inbound MX adds to record what it
 * checked: Authentication-Results (RFC 8601) with the SPF and DKIM
 * results, and Received-SPF (RFC 7208 9.1).
 *
 * Each function appends one whole header field, name included, to a
 * struct buf: folded so that no line is 78 characters or longer (a
 * line break, CRLF, then a tab, only between words), except when one
 * word is longer than that, which then stands alone on its line; no
 * line reaches 998 octets, since every value is cut to at most 255
 * octets first.  The field ends with CRLF, ready to go on top of the
 * header section.
 *
 * Values from the network (the HELO name, the MAIL FROM address, and a
 * signature's d=, s=, i= and a=) cannot inject a line or a field:
 * CR, LF, every other control octet and every octet outside ASCII is
 * written as '?'; a value that is not a plain token, domain or address
 * is written as a quoted-string with '"' and '\' escaped; text in a
 * comment has '(', ')' and '\' escaped.  So a HELO of
 * "x\r\nX-Evil: 1" yields helo="x??X-Evil: 1", part of one field.
 *
 * Pure functions: nothing but the buffer is written; thread-safe.
 */
#ifndef KURIER_POLICY_AUTHRES_H
#define KURIER_POLICY_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "policy/dkimverify.h"
#include "policy/spfcheck.h"

/* What an SPF check of a client was about, and its verdict. */
struct authres_spf {
	enum spfcheck_verdict result;
	/*
	 * The MAIL FROM address without brackets; NULL or "" for the null
	 * sender, whose identity RFC 7208 2.4 takes from HELO
	 * ("postmaster@" the HELO name): the fields then say smtp.helo and
	 * identity=helo.
	 */
	const char *mailfrom;
	const char *helo;      /* the HELO/EHLO argument as sent; NULL: "" */
	const char *client_ip; /* the client's address, text form */
};

/*
 * authres_format - append "Authentication-Results: AUTHSERV-ID; spf=...
 * smtp.mailfrom=...; dkim=... header.d=... header.s=... header.i=...
 * header.a=... header.b=...\r\n".  authserv_id is our host name ([server] hostname).
 * spf NULL: no spf resinfo.  dkim NULL: no dkim resinfo; a report with
 * no signature: "dkim=none"; else one resinfo per signature, in header
 * order, with reason="..." unless it passed (RFC 8601 2.2, 2.7.1).
 * header.i only when the signature had an i= tag; header.b (RFC 6008,
 * b='s first 8 characters) when it had a b= tag.  Authentication-Results
 * values are quoted unless they are letters, digits and "-._+" (and one
 * '@' in an address): RFC 2045 tokens, where '/' and '=' are not.  With neither spf
 * nor dkim the field says "none" (RFC 8601 2.2).
 */
void authres_format(struct buf *out, const char *authserv_id,
    const struct authres_spf *spf, const struct dkimverify_report *dkim);

/*
 * authres_received_spf - append "Received-SPF: RESULT (RECEIVER: comment)
 * client-ip=...; envelope-from=...; helo=...; receiver=RECEIVER;
 * identity=mailfrom|helo;\r\n" (RFC 7208 9.1; the comment in the words
 * of its examples).  receiver is our host name.
 */
void authres_received_spf(struct buf *out, const char *receiver,
    const struct authres_spf *spf);

/*
 * authres_field_is_ours - whether header field f[0..fl) (as
 * core/rfc5322's scanner returns it: name, colon, folded value, no final
 * line end) is an Authentication-Results field whose authserv-id is
 * authserv_id (ASCII case ignored; comments and folding before it
 * skipped; a quoted authserv-id unquoted).  RFC 8601 5: such a field
 * arriving from outside is a forgery of our results, and the inbound MX
 * deletes it before adding its own.
 */
bool authres_field_is_ours(const char *f, size_t fl, const char *authserv_id);

#endif
