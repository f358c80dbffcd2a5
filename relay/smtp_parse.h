/*
 * smtp_parse - the SMTP server's command-line parsers: verb and argument,
 * MAIL and RCPT with their ESMTP parameters, AUTH's argument, and the
 * xtext (RFC 3461 4) and base64 (RFC 4648 4) codings they use.
 *
 * Pure and synchronous: no sockets, no allocation, no state between
 * calls.  The session (relay/smtpd) reads the line, enforces its length
 * and the command order, and sends the reply strings given here; each is
 * a complete static reply line without CRLF ("501 5.5.4 ...", RFC 3463
 * enhanced codes).  Results that point into the line ("arg", "initial")
 * live as long as the line does.
 *
 * Line length is the caller's to bound, before it calls here:
 * RFC 5321 4.5.3.1.4 allows 512 octets with CRLF, and each extension may
 * lengthen MAIL and RCPT (RFC 5321 4.1.2 via RFC 1869): SIZE +26 (RFC 1870),
 * ENVID +100 and ORCPT +500 (RFC 3461 4), AUTH= +500 (RFC 4954 5), BODY,
 * RET, NOTIFY, SMTPUTF8 a few dozen more.  SMTP_CMD_LINE_MAX covers all
 * of them at once, so the session can use one bound for every command
 * before it knows the verb.  The AUTH command itself, initial response
 * included, stays within the plain limit (RFC 4954 4); the client's
 * responses to 334 challenges may take SMTP_AUTH_LINE_MAX (ibid.).
 */
#ifndef KURIER_RELAY_SMTP_PARSE_H
#define KURIER_RELAY_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mailaddr.h"
#include "queue/envelope.h"

#define SMTP_LINE_MAX 512         /* RFC 5321 4.5.3.1.4, CRLF included */
#define SMTP_CMD_LINE_MAX 2048    /* MAIL/RCPT with every parameter we know */
#define SMTP_AUTH_LINE_MAX 12288  /* RFC 4954 4: a response to a 334 */
#define SMTP_ENVID_MAX 100        /* RFC 3461 4.4, as xtext on the wire */
#define SMTP_ORCPT_MAX 500        /* RFC 3461 4.2, as sent */

enum smtp_verb {
	SMTP_HELO,
	SMTP_EHLO,
	SMTP_MAIL,
	SMTP_RCPT,
	SMTP_DATA,
	SMTP_BDAT,
	SMTP_RSET,
	SMTP_NOOP,
	SMTP_QUIT,
	SMTP_VRFY,
	SMTP_EXPN,
	SMTP_HELP,
	SMTP_STARTTLS,
	SMTP_AUTH,
	SMTP_UNKNOWN,
};

struct smtp_cmd {
	enum smtp_verb verb;
	const char *arg; /* after the verb and one SP; points into the line */
	size_t arglen;   /* 0 when the line is the verb alone */
};

/*
 * smtp_cmd_parse - split a command line (CRLF already removed) into its
 * verb, matched without regard to case, and the argument after the one
 * SP that follows the verb.  "MAIL FROM:<a@b>" gives SMTP_MAIL with arg
 * "FROM:<a@b>"; the verb must be followed by SP or the end of the line.
 * Returns 0; or -EINVAL with verb SMTP_UNKNOWN and *why a reply:
 *   "500 5.5.1 Command unrecognized"                 unknown or empty
 *                                                    (an invalid command, RFC 3463 3.6)
 *   "500 5.5.2 Syntax error, invalid character"      NUL, CR or LF in it
 * *why is NULL on success.  Which verbs take arguments is the session's
 * business.
 */
int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd,
    const char **why);
/* smtp_verb_name - "MAIL", ..., "UNKNOWN": for logs. */
const char *smtp_verb_name(enum smtp_verb v);

enum smtp_body {
	SMTP_BODY_7BIT = 0,     /* also when BODY= was absent */
	SMTP_BODY_8BITMIME,     /* RFC 6152 */
	SMTP_BODY_BINARYMIME,   /* RFC 3030: the session refuses it unless it offers it */
};

struct smtp_mail_params {
	uint64_t size;          /* RFC 1870 SIZE= */
	bool have_size;
	enum smtp_body body;
	bool have_body;
	bool smtputf8;          /* RFC 6531 SMTPUTF8 */
	char envid[SMTP_ENVID_MAX + 1]; /* RFC 3461 ENVID=, xtext-decoded */
	bool have_envid;
	enum dsn_ret ret;       /* RFC 3461 RET=, RET_UNSET when absent */
	bool have_auth;         /* RFC 4954 5 AUTH=: checked as xtext, ignored */
};

struct smtp_rcpt_params {
	unsigned notify;        /* NOTIFY_* bits of queue/envelope.h; 0 if absent */
	/* ORCPT: addr-type ";" the xtext-decoded address, e.g. "rfc822;a+b@c" */
	char orcpt[SMTP_ORCPT_MAX + 1];
	bool have_orcpt;
};

/*
 * smtp_parse_mail - the argument of MAIL: "FROM:<path> [SP params]".
 * smtputf8_offered says whether the session advertised SMTPUTF8.
 * Fills *from and *p (both zeroed first) and returns 0, *reply NULL.
 *
 * Leniency (kept narrow): SP between "FROM:" and the '<' (many clients
 * send "MAIL FROM: <a@b>") and runs of SP between parameters are
 * accepted.  Keywords and the values of BODY and RET ignore case.
 *
 * Errors return a negative errno and set *reply:
 *   -EINVAL
 *     "501 5.5.4 Syntax: MAIL FROM:<address>"     no FROM:, no '<', junk after '>'
 *     "501 5.1.7 Bad sender address syntax"       path refused (RFC 3463 X.1.7)
 *     "501 5.1.7 Path too long"                   RFC 5321 4.5.3.1.10 wording
 *     "501 5.5.4 Bad parameter syntax"            esmtp-param grammar (RFC 5321 4.1.2)
 *     "501 5.5.4 Duplicate parameter"
 *     "555 5.5.4 Unsupported parameter"           unknown keyword, or SMTPUTF8
 *                                                 not offered (RFC 5321 4.1.1.11)
 *     "501 5.5.4 Bad SIZE parameter syntax"       not 1*DIGIT
 *     "501 5.5.4 Bad BODY parameter syntax"       not 7BIT/8BITMIME/BINARYMIME
 *     "501 5.5.4 Bad SMTPUTF8 parameter syntax"   SMTPUTF8 takes no value
 *     "501 5.5.4 Bad RET parameter syntax"        not FULL/HDRS
 *     "501 5.5.4 Bad ENVID parameter syntax"      bad xtext, > 100, or not
 *                                                 printable ASCII (RFC 3461 4.4)
 *     "501 5.5.4 Bad AUTH parameter syntax"       bad xtext
 *   -EMSGSIZE
 *     "552 5.3.4 Message size exceeds fixed maximum message size"
 *                                                 SIZE above 2^64-1 (RFC 1870 6)
 *   -EILSEQ
 *     "553 5.6.7 Non-ASCII address requires SMTPUTF8"
 *                                                 RFC 6531 3.7.4, RFC 5248 X.6.7
 * The first error from the left wins, except that the SMTPUTF8 check on
 * the path comes after all parameters (SMTPUTF8 follows the path).
 * Comparing SIZE with the configured maximum (552 5.3.4) is the
 * session's, as is refusing a parameter it did not advertise (BODY=
 * BINARYMIME without CHUNKING).
 */
int smtp_parse_mail(const char *arg, size_t len, bool smtputf8_offered,
    struct mailaddr *from, struct smtp_mail_params *p, const char **reply);

/*
 * smtp_helo_ok - whether p[0..len) may be the argument of EHLO or HELO:
 * 1-255 octets, none a control, space or DEL (a domain or an address
 * literal, RFC 5321 4.1.1.1; its syntax is not checked further, as
 * RFC 5321 2.3.5 lets a server accept what it cannot verify).
 */
bool smtp_helo_ok(const char *p, size_t len);

/*
 * smtp_parse_rcpt - the argument of RCPT: "TO:<path> [SP params]".
 * smtputf8 says whether this transaction's MAIL had SMTPUTF8: it admits
 * a UTF-8 path and UTF-8 in ORCPT's address.  The null path and
 * "<postmaster>" without a domain are refused.  Same conventions as
 * smtp_parse_mail; replies:
 *   -EINVAL
 *     "501 5.5.4 Syntax: RCPT TO:<address>"
 *     "501 5.1.3 Bad recipient address syntax"    (RFC 3463 X.1.3)
 *     "501 5.1.3 Null recipient address not allowed"
 *     "501 5.1.3 Path too long"
 *     "501 5.5.4 Bad parameter syntax"
 *     "501 5.5.4 Duplicate parameter"
 *     "555 5.5.4 Unsupported parameter"
 *     "501 5.5.4 Bad NOTIFY parameter syntax"     not NEVER alone or a list of
 *                                                 SUCCESS, FAILURE, DELAY (RFC 3461 4.1);
 *                                                 a repeated list item is allowed
 *     "501 5.5.4 Bad ORCPT parameter syntax"      not atom ";" xtext, > 500, or
 *                                                 the address not printable
 *   -EILSEQ
 *     "553 5.6.7 Non-ASCII address requires SMTPUTF8"
 * ORCPT's RFC 6533 "utf-8" type is stored after xtext decoding only: its
 * "\x{...}" escapes are kept as sent.
 */
int smtp_parse_rcpt(const char *arg, size_t len, bool smtputf8,
    struct mailaddr *to, struct smtp_rcpt_params *p, const char **reply);

/*
 * smtp_xtext_decode - RFC 3461 4 xtext s[0..len) into dst[size],
 * NUL-terminated.  Returns the decoded length; -EINVAL for a byte outside
 * 33..126, a bare '=', a '+' not followed by two hex digits (upper case
 * per the RFC; lower case is accepted too) or "+00" (no NUL in a C
 * string); -E2BIG when dst is too small.
 */
int smtp_xtext_decode(const char *s, size_t len, char *dst, size_t size);
/*
 * smtp_xtext_encode - the inverse, for the SMTP client: bytes outside
 * 33..126 and '+' and '=' become "+XX".  Returns the length or -E2BIG.
 */
int smtp_xtext_encode(const char *s, size_t len, char *dst, size_t size);

enum smtp_auth_mech {
	SMTP_AUTH_PLAIN, /* RFC 4616 */
	SMTP_AUTH_LOGIN, /* draft-murchison-sasl-login */
};

struct smtp_auth_cmd {
	enum smtp_auth_mech mech;
	bool have_initial;      /* an initial response was given */
	const char *initial;    /* base64, into the line; "" for "=" */
	size_t initial_len;
};

/*
 * smtp_parse_auth - the argument of AUTH: "mechanism [SP initial-response]"
 * (RFC 4954 4); the mechanism ignores case, "=" is the empty response.
 * The response is not decoded here (sasl_base64_decode does).  Returns 0,
 * or -EINVAL with *reply:
 *   "501 5.5.4 Syntax: AUTH mechanism [initial-response]"
 *   "504 5.5.4 Unrecognized authentication type"     (RFC 4954 6)
 */
int smtp_parse_auth(const char *arg, size_t len, struct smtp_auth_cmd *a,
    const char **reply);

#endif
