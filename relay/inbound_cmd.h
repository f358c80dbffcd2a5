/*
 * inbound_cmd - what the inbound MX for bounce domains makes of its
 * clients' words, apart from any socket: the arguments of its MAIL and
 * RCPT (the HELO name is smtp_parse.h's smtp_helo_ok, the forged
 * Authentication-Results policy/authres.h's authres_field_is_ours).
 * Pure functions over the caller's bytes;
 * relay/smtpd_inbound.c runs the session around them, and
 * tests/fuzz/fuzz_inbound_cmd.c feeds them anything.
 *
 * Replies are whole SMTP reply lines (static strings, or the caller's
 * buffer where they carry a number), as smtp_parse.h gives them.
 */
#ifndef KURIER_RELAY_INBOUND_CMD_H
#define KURIER_RELAY_INBOUND_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mailaddr.h"
#include "relay/smtp_parse.h"

/* Recipients per message: a return names one; a report per domain a few. */
#define INBOUND_MAX_RCPT 100

/* What a MAIL command of the inbound MX says, once accepted. */
struct inbound_mail {
	struct mailaddr from;
	struct smtp_mail_params mp;
	char sender[MAILADDR_ADDR_SIZE];   /* "local@domain", "" for the null sender */
	/*
	 * The SPF identity (RFC 7208 2.3, 2.4): the MAIL FROM domain, or the
	 * HELO name for the null sender (spf_helo).  spf_none: it is no domain
	 * name (an address literal, or a name without a dot), so it has no
	 * record to look up and the verdict is "none" without a query.
	 */
	char spf_domain[256];
	bool spf_helo;
	bool spf_none;
};

/*
 * inbound_mail - the argument of MAIL ("FROM:<path> [params]") from a
 * client that said helo (its EHLO/HELO argument, checked by
 * smtp_helo_ok), with SMTPUTF8 offered.  Returns 0 with *m filled; or a
 * negative errno and *reply: smtp_parse_mail's replies, and
 *   -ENOTSUP "555 5.5.4 BODY=BINARYMIME needs CHUNKING, which is not offered"
 *   -EFBIG   "552 5.3.4 Message size exceeds fixed maximum message size (N bytes)"
 *            (SIZE above max_size; written into replybuf[replysize])
 * m is zeroed first.
 */
int inbound_mail(const char *arg, size_t len, const char *helo, uint64_t max_size,
    struct inbound_mail *m, char *replybuf, size_t replysize, const char **reply);

/* What a RCPT command of the inbound MX names. */
struct inbound_rcpt {
	char addr[MAILADDR_ADDR_SIZE];     /* lower case (ASCII), no brackets */
	struct smtp_rcpt_params rp;
};

/*
 * inbound_rcpt - the argument of RCPT ("TO:<path> [params]"); smtputf8:
 * the transaction's MAIL had SMTPUTF8.  "<Postmaster>" without a domain
 * (RFC 5321 4.5.1 says it must be accepted) is read as
 * postmaster@postmaster_domain when that is not NULL or "" (the first
 * bounce domain).  Returns 0 with *r filled (r->addr ASCII-lower-cased:
 * the inbound sink's addresses are ours, smtpd.h), or a negative errno
 * and *reply (smtp_parse_rcpt's replies, or "553 5.1.3 Bad recipient
 * address syntax").
 */
int inbound_rcpt(const char *arg, size_t len, bool smtputf8, const char *postmaster_domain,
    struct inbound_rcpt *r, const char **reply);

#endif
