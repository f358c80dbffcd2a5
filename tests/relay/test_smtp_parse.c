/*
 * test_smtp_parse - relay/smtp_parse: verbs, MAIL and RCPT with their
 * parameters and exact replies, xtext, base64, AUTH and PLAIN.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "relay/inbound_cmd.h"
#include "relay/smtp_parse.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define A10 "aaaaaaaaaa"
#define A64 A10 A10 A10 A10 A10 A10 "aaaa"
#define A100 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10
#define A493 A100 A100 A100 A100 A10 A10 A10 A10 A10 A10 A10 A10 A10 "aaa"

#define R_MAIL_SYNTAX "501 5.5.4 Syntax: MAIL FROM:<address>"
#define R_RCPT_SYNTAX "501 5.5.4 Syntax: RCPT TO:<address>"
#define R_SENDER "501 5.1.7 Bad sender address syntax"
#define R_RCPT "501 5.1.3 Bad recipient address syntax"
#define R_UTF8 "553 5.6.7 Non-ASCII address requires SMTPUTF8"
#define R_PARAM "501 5.5.4 Bad parameter syntax"
#define R_DUP "501 5.5.4 Duplicate parameter"
#define R_555 "555 5.5.4 Unsupported parameter"
#define R_SIZE "501 5.5.4 Bad SIZE parameter syntax"
#define R_BIG "552 5.3.4 Message size exceeds fixed maximum message size"
#define R_BODY "501 5.5.4 Bad BODY parameter syntax"
#define R_RET "501 5.5.4 Bad RET parameter syntax"
#define R_ENVID "501 5.5.4 Bad ENVID parameter syntax"
#define R_AUTHP "501 5.5.4 Bad AUTH parameter syntax"
#define R_NOTIFY "501 5.5.4 Bad NOTIFY parameter syntax"
#define R_ORCPT "501 5.5.4 Bad ORCPT parameter syntax"

static const struct cmd_case {
	const char *line;
	size_t len;             /* 0: strlen(line) */
	int rc;
	enum smtp_verb verb;
	const char *arg;        /* NULL: error */
} cmd_cases[] = {
	{ "MAIL FROM:<a@b>", 0, 0, SMTP_MAIL, "FROM:<a@b>" },
	{ "mail FROM:<a@b> SIZE=1", 0, 0, SMTP_MAIL, "FROM:<a@b> SIZE=1" },
	{ "MaIl from:<a@b>", 0, 0, SMTP_MAIL, "from:<a@b>" },
	{ "rcpt TO:<a@b>", 0, 0, SMTP_RCPT, "TO:<a@b>" },
	{ "HELO x", 0, 0, SMTP_HELO, "x" },
	{ "ehlo client.example", 0, 0, SMTP_EHLO, "client.example" },
	{ "DATA", 0, 0, SMTP_DATA, "" },
	{ "data", 0, 0, SMTP_DATA, "" },
	{ "BDAT 100 LAST", 0, 0, SMTP_BDAT, "100 LAST" },
	{ "RSET", 0, 0, SMTP_RSET, "" },
	{ "RSET ", 0, 0, SMTP_RSET, "" },
	{ "NOOP  x", 0, 0, SMTP_NOOP, " x" },
	{ "QUIT", 0, 0, SMTP_QUIT, "" },
	{ "qUiT", 0, 0, SMTP_QUIT, "" },
	{ "VRFY a", 0, 0, SMTP_VRFY, "a" },
	{ "EXPN a", 0, 0, SMTP_EXPN, "a" },
	{ "HELP", 0, 0, SMTP_HELP, "" },
	{ "STARTTLS", 0, 0, SMTP_STARTTLS, "" },
	{ "starttls", 0, 0, SMTP_STARTTLS, "" },
	{ "AUTH PLAIN AGEAYg==", 0, 0, SMTP_AUTH, "PLAIN AGEAYg==" },
	{ "", 0, -EINVAL, SMTP_UNKNOWN, NULL },
	{ " QUIT", 0, -EINVAL, SMTP_UNKNOWN, NULL },
	{ "QUITX", 0, -EINVAL, SMTP_UNKNOWN, NULL },
	{ "QUI", 0, -EINVAL, SMTP_UNKNOWN, NULL },
	{ "QUIT\tnow", 0, -EINVAL, SMTP_UNKNOWN, NULL },
	{ "MAILFROM:<a@b>", 0, -EINVAL, SMTP_UNKNOWN, NULL },
	{ "FOO bar", 0, -EINVAL, SMTP_UNKNOWN, NULL },
	{ "GET / HTTP/1.1", 0, -EINVAL, SMTP_UNKNOWN, NULL },
	{ "MAIL\0FROM:<a@b>", 15, -EINVAL, SMTP_UNKNOWN, NULL },
	{ "QUIT\0", 5, -EINVAL, SMTP_UNKNOWN, NULL },
	{ "\0", 1, -EINVAL, SMTP_UNKNOWN, NULL },
	{ "RSET\rQUIT", 0, -EINVAL, SMTP_UNKNOWN, NULL },
	{ "MAIL FROM:<a@b>\nRCPT TO:<c@d>", 0, -EINVAL, SMTP_UNKNOWN, NULL },
	{ "\xc3\x84HLO x", 0, -EINVAL, SMTP_UNKNOWN, NULL },
};

START_TEST(test_cmd)
{
	const struct cmd_case *c = &cmd_cases[_i];
	size_t len = c->len != 0 ? c->len : strlen(c->line);
	struct smtp_cmd cmd;
	const char *why = "unset";

	ck_assert_int_eq(smtp_cmd_parse(c->line, len, &cmd, &why), c->rc);
	ck_assert_int_eq(cmd.verb, c->verb);
	if (c->rc == 0) {
		ck_assert_ptr_null(why);
		ck_assert_uint_eq(cmd.arglen, strlen(c->arg));
		ck_assert_mem_eq(cmd.arg, c->arg, cmd.arglen);
		/* arg points into the line. */
		ck_assert(cmd.arg >= c->line && cmd.arg + cmd.arglen == c->line + len);
		ck_assert_int_eq(strncasecmp(smtp_verb_name(cmd.verb), c->line,
		    strlen(smtp_verb_name(cmd.verb))), 0);
	} else {
		ck_assert_ptr_nonnull(why);
		ck_assert_str_eq(why, memchr(c->line, '\0', len) != NULL ||
		    memchr(c->line, '\r', len) != NULL || memchr(c->line, '\n', len) != NULL ?
		    "500 5.5.2 Syntax error, invalid character" :
		    "500 5.5.1 Command unrecognized");
	}
}
END_TEST

START_TEST(test_verb_names)
{
	ck_assert_str_eq(smtp_verb_name(SMTP_HELO), "HELO");
	ck_assert_str_eq(smtp_verb_name(SMTP_STARTTLS), "STARTTLS");
	ck_assert_str_eq(smtp_verb_name(SMTP_AUTH), "AUTH");
	ck_assert_str_eq(smtp_verb_name(SMTP_UNKNOWN), "UNKNOWN");
}
END_TEST

static const struct mail_case {
	const char *arg;
	bool offered;           /* SMTPUTF8 advertised */
	int rc;
	const char *reply;      /* NULL when rc is 0 */
	const char *from;
	uint64_t size;
	bool have_size;
	enum smtp_body body;
	bool smtputf8;
	const char *envid;      /* NULL: absent */
	enum dsn_ret ret;
	bool have_auth;
} mail_cases[] = {
	{ "FROM:<a@b> SIZE=100 BODY=8BITMIME", false, 0, NULL, "a@b", 100, true,
	  SMTP_BODY_8BITMIME, false, NULL, RET_UNSET, false },
	{ "FROM:<a@b>", false, 0, NULL, "a@b", 0, false, SMTP_BODY_7BIT, false, NULL, RET_UNSET, false },
	/* SP after the colon: not in RFC 5321's grammar, sent by many clients. */
	{ "from: <a@b>", false, 0, NULL, "a@b", 0, false, SMTP_BODY_7BIT, false, NULL, RET_UNSET, false },
	{ "From:  <a@b>", false, 0, NULL, "a@b", 0, false, SMTP_BODY_7BIT, false, NULL, RET_UNSET, false },
	{ "FROM:<>", false, 0, NULL, "", 0, false, SMTP_BODY_7BIT, false, NULL, RET_UNSET, false },
	{ "FROM:<> SIZE=0", false, 0, NULL, "", 0, true, SMTP_BODY_7BIT, false, NULL, RET_UNSET, false },
	{ "FROM:<@r.example:u@d.example> SIZE=5", false, 0, NULL, "u@d.example", 5, true,
	  SMTP_BODY_7BIT, false, NULL, RET_UNSET, false },
	{ "FROM:<a@b>  SIZE=1   BODY=7BIT  ", false, 0, NULL, "a@b", 1, true,
	  SMTP_BODY_7BIT, false, NULL, RET_UNSET, false },
	{ "FROM:<a@b> size=10 body=8bitmime", false, 0, NULL, "a@b", 10, true,
	  SMTP_BODY_8BITMIME, false, NULL, RET_UNSET, false },
	{ "FROM:<a@b> BODY=BINARYMIME", false, 0, NULL, "a@b", 0, false,
	  SMTP_BODY_BINARYMIME, false, NULL, RET_UNSET, false },
	{ "FROM:<a@b> BODY=8BITMIME SMTPUTF8 SIZE=5 RET=HDRS ENVID=x AUTH=<>", true, 0, NULL,
	  "a@b", 5, true, SMTP_BODY_8BITMIME, true, "x", RET_HDRS, true },
	/* Command syntax. */
	{ "FROM:a@b", false, -EINVAL, R_MAIL_SYNTAX, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM <a@b>", false, -EINVAL, R_MAIL_SYNTAX, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM :<a@b>", false, -EINVAL, R_MAIL_SYNTAX, NULL, 0, false, 0, false, NULL, 0, false },
	{ "TO:<a@b>", false, -EINVAL, R_MAIL_SYNTAX, NULL, 0, false, 0, false, NULL, 0, false },
	{ "", false, -EINVAL, R_MAIL_SYNTAX, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:", false, -EINVAL, R_MAIL_SYNTAX, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b>x", false, -EINVAL, R_MAIL_SYNTAX, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b>SIZE=1", false, -EINVAL, R_MAIL_SYNTAX, NULL, 0, false, 0, false, NULL, 0, false },
	/* Address. */
	{ "FROM:<a@b", false, -EINVAL, R_SENDER, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a b@c>", false, -EINVAL, R_SENDER, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@-b>", false, -EINVAL, R_SENDER, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<postmaster>", false, -EINVAL, R_SENDER, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<" A64 "a@b>", false, -EINVAL, "501 5.1.7 Path too long", NULL, 0, false, 0,
	  false, NULL, 0, false },
	/* SIZE (RFC 1870). */
	{ "FROM:<a@b> SIZE=18446744073709551615", false, 0, NULL, "a@b", UINT64_MAX, true,
	  SMTP_BODY_7BIT, false, NULL, RET_UNSET, false },
	{ "FROM:<a@b> SIZE=18446744073709551616", false, -EMSGSIZE, R_BIG, NULL, 0, false, 0,
	  false, NULL, 0, false },
	{ "FROM:<a@b> SIZE=99999999999999999999999", false, -EMSGSIZE, R_BIG, NULL, 0, false, 0,
	  false, NULL, 0, false },
	{ "FROM:<a@b> SIZE", false, -EINVAL, R_SIZE, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> SIZE=", false, -EINVAL, R_PARAM, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> SIZE=1k", false, -EINVAL, R_SIZE, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> SIZE=-1", false, -EINVAL, R_SIZE, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> SIZE=+1", false, -EINVAL, R_SIZE, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> SIZE=1 SIZE=2", false, -EINVAL, R_DUP, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> SIZE=1 size=1", false, -EINVAL, R_DUP, NULL, 0, false, 0, false, NULL, 0, false },
	/* BODY (RFC 6152). */
	{ "FROM:<a@b> BODY=8BIT", false, -EINVAL, R_BODY, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> BODY", false, -EINVAL, R_BODY, NULL, 0, false, 0, false, NULL, 0, false },
	/* Unknown parameters: 555 (RFC 5321 4.1.1.11). */
	{ "FROM:<a@b> FOO=bar", false, -EINVAL, R_555, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> FOO", false, -EINVAL, R_555, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> X-Y=1", false, -EINVAL, R_555, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> NOTIFY=NEVER", false, -EINVAL, R_555, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> FOO=1 SIZE=x", false, -EINVAL, R_555, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> SIZE=x FOO=1", false, -EINVAL, R_SIZE, NULL, 0, false, 0, false, NULL, 0, false },
	/* esmtp-param grammar. */
	{ "FROM:<a@b> -X=1", false, -EINVAL, R_PARAM, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> X_Y=1", false, -EINVAL, R_PARAM, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> =1", false, -EINVAL, R_PARAM, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> SIZE=1\tBODY=7BIT", false, -EINVAL, R_PARAM, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> ENVID=a=b", false, -EINVAL, R_PARAM, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> FOO=\xc3\xa9", false, -EINVAL, R_PARAM, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> FOO=\xc3\xa9", true, -EINVAL, R_555, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> FOO=\xc3", true, -EINVAL, R_PARAM, NULL, 0, false, 0, false, NULL, 0, false },
	/* SMTPUTF8 (RFC 6531). */
	{ "FROM:<a@b> SMTPUTF8", true, 0, NULL, "a@b", 0, false, SMTP_BODY_7BIT, true, NULL,
	  RET_UNSET, false },
	{ "FROM:<a@b> smtputf8", true, 0, NULL, "a@b", 0, false, SMTP_BODY_7BIT, true, NULL,
	  RET_UNSET, false },
	{ "FROM:<a@b> SMTPUTF8", false, -EINVAL, R_555, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> SMTPUTF8=yes", true, -EINVAL, "501 5.5.4 Bad SMTPUTF8 parameter syntax", NULL,
	  0, false, 0, false, NULL, 0, false },
	{ "FROM:<jos\xc3\xa9@b> SMTPUTF8", true, 0, NULL, "jos\xc3\xa9@b", 0, false,
	  SMTP_BODY_7BIT, true, NULL, RET_UNSET, false },
	{ "FROM:<a@b\xc3\xbc" "cher.de> SMTPUTF8 BODY=8BITMIME", true, 0, NULL,
	  "a@b\xc3\xbc" "cher.de", 0, false, SMTP_BODY_8BITMIME, true, NULL, RET_UNSET, false },
	{ "FROM:<jos\xc3\xa9@b>", true, -EILSEQ, R_UTF8, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<jos\xc3\xa9@b> BODY=8BITMIME", true, -EILSEQ, R_UTF8, NULL, 0, false, 0, false,
	  NULL, 0, false },
	{ "FROM:<jos\xc3\xa9@b>", false, -EILSEQ, R_UTF8, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<jos\xc3\xa9@b> SMTPUTF8", false, -EILSEQ, R_UTF8, NULL, 0, false, 0, false, NULL,
	  0, false },
	{ "FROM:<@r\xc3\xa9:a@b>", true, -EILSEQ, R_UTF8, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<jos\xc3@b> SMTPUTF8", true, -EINVAL, R_SENDER, NULL, 0, false, 0, false, NULL, 0,
	  false },
	/* RET, ENVID (RFC 3461). */
	{ "FROM:<a@b> RET=FULL", false, 0, NULL, "a@b", 0, false, SMTP_BODY_7BIT, false, NULL,
	  RET_FULL, false },
	{ "FROM:<a@b> ret=hdrs", false, 0, NULL, "a@b", 0, false, SMTP_BODY_7BIT, false, NULL,
	  RET_HDRS, false },
	{ "FROM:<a@b> RET=NONE", false, -EINVAL, R_RET, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> RET", false, -EINVAL, R_RET, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> RET=FULL RET=HDRS", false, -EINVAL, R_DUP, NULL, 0, false, 0, false, NULL, 0,
	  false },
	{ "FROM:<a@b> ENVID=QQ314159", false, 0, NULL, "a@b", 0, false, SMTP_BODY_7BIT, false,
	  "QQ314159", RET_UNSET, false },
	{ "FROM:<a@b> ENVID=a+2Bb+3Dc+20d", false, 0, NULL, "a@b", 0, false, SMTP_BODY_7BIT, false,
	  "a+b=c d", RET_UNSET, false },
	{ "FROM:<a@b> ENVID=" A100, false, 0, NULL, "a@b", 0, false, SMTP_BODY_7BIT, false,
	  A100, RET_UNSET, false },
	{ "FROM:<a@b> ENVID=" A100 "a", false, -EINVAL, R_ENVID, NULL, 0, false, 0, false, NULL, 0,
	  false },
	{ "FROM:<a@b> ENVID=a+0Ab", false, -EINVAL, R_ENVID, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> ENVID=a+7F", false, -EINVAL, R_ENVID, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> ENVID=a+C3+A9", false, -EINVAL, R_ENVID, NULL, 0, false, 0, false, NULL, 0,
	  false },
	{ "FROM:<a@b> ENVID=a+2", false, -EINVAL, R_ENVID, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> ENVID=a+ZZ", false, -EINVAL, R_ENVID, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> ENVID", false, -EINVAL, R_ENVID, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> ENVID=x ENVID=y", false, -EINVAL, R_DUP, NULL, 0, false, 0, false, NULL, 0,
	  false },
	/* AUTH= (RFC 4954 5): checked, ignored. */
	{ "FROM:<a@b> AUTH=<>", false, 0, NULL, "a@b", 0, false, SMTP_BODY_7BIT, false, NULL,
	  RET_UNSET, true },
	{ "FROM:<a@b> AUTH=user+40example.com", false, 0, NULL, "a@b", 0, false, SMTP_BODY_7BIT,
	  false, NULL, RET_UNSET, true },
	{ "FROM:<a@b> AUTH=a+2", false, -EINVAL, R_AUTHP, NULL, 0, false, 0, false, NULL, 0, false },
	{ "FROM:<a@b> AUTH", false, -EINVAL, R_AUTHP, NULL, 0, false, 0, false, NULL, 0, false },
};

START_TEST(test_mail)
{
	const struct mail_case *c = &mail_cases[_i];
	struct mailaddr from;
	struct smtp_mail_params p;
	const char *reply = "unset";
	char addr[MAILADDR_ADDR_SIZE];
	int rc;

	rc = smtp_parse_mail(c->arg, strlen(c->arg), c->offered, &from, &p, &reply);
	ck_assert_msg(rc == c->rc, "case %d: rc %d, want %d (%s)", _i, rc, c->rc,
	    reply != NULL ? reply : "NULL");
	if (rc < 0) {
		ck_assert_str_eq(reply, c->reply);
		ck_assert(!p.have_size && !p.have_envid && !p.smtputf8 && !p.have_auth);
		ck_assert_str_eq(from.local, "");
		return;
	}
	ck_assert_ptr_null(reply);
	ck_assert_int_ge(mailaddr_format(&from, addr, sizeof addr), 0);
	ck_assert_str_eq(addr, c->from);
	ck_assert_int_eq(from.null, c->from[0] == '\0');
	ck_assert_int_eq(p.have_size, c->have_size);
	ck_assert(p.size == c->size);
	ck_assert_int_eq(p.body, c->body);
	ck_assert_int_eq(p.smtputf8, c->smtputf8);
	ck_assert_int_eq(p.have_envid, c->envid != NULL);
	ck_assert_str_eq(p.envid, c->envid != NULL ? c->envid : "");
	ck_assert_int_eq(p.ret, c->ret);
	ck_assert_int_eq(p.have_auth, c->have_auth);
}
END_TEST

static const struct rcpt_case {
	const char *arg;
	bool smtputf8;
	int rc;
	const char *reply;
	const char *to;
	unsigned notify;
	const char *orcpt;      /* NULL: absent */
} rcpt_cases[] = {
	{ "TO:<a@b>", false, 0, NULL, "a@b", 0, NULL },
	{ "to: <a@b>", false, 0, NULL, "a@b", 0, NULL },
	{ "TO:<Postmaster@example.com>", false, 0, NULL, "Postmaster@example.com", 0, NULL },
	{ "TO:<@x.example:a@b>", false, 0, NULL, "a@b", 0, NULL },
	{ "TO:<>", false, -EINVAL, "501 5.1.3 Null recipient address not allowed", NULL, 0, NULL },
	{ "TO:<postmaster>", false, -EINVAL, R_RCPT, NULL, 0, NULL },
	{ "TO:<a@b..c>", false, -EINVAL, R_RCPT, NULL, 0, NULL },
	{ "TO:<" A64 "a@b>", false, -EINVAL, "501 5.1.3 Path too long", NULL, 0, NULL },
	{ "TO:a@b", false, -EINVAL, R_RCPT_SYNTAX, NULL, 0, NULL },
	{ "FROM:<a@b>", false, -EINVAL, R_RCPT_SYNTAX, NULL, 0, NULL },
	{ "TO:<a@b>junk", false, -EINVAL, R_RCPT_SYNTAX, NULL, 0, NULL },
	{ "", false, -EINVAL, R_RCPT_SYNTAX, NULL, 0, NULL },
	/* UTF-8. */
	{ "TO:<jos\xc3\xa9@b>", true, 0, NULL, "jos\xc3\xa9@b", 0, NULL },
	{ "TO:<jos\xc3\xa9@b>", false, -EILSEQ, R_UTF8, NULL, 0, NULL },
	{ "TO:<@\xc3\xa9:a@b>", true, 0, NULL, "a@b", 0, NULL },
	{ "TO:<@\xc3\xa9:a@b>", false, -EILSEQ, R_UTF8, NULL, 0, NULL },
	/* NOTIFY (RFC 3461 4.1). */
	{ "TO:<a@b> NOTIFY=SUCCESS,FAILURE,DELAY", false, 0, NULL, "a@b",
	  NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY, NULL },
	{ "TO:<a@b> NOTIFY=NEVER", false, 0, NULL, "a@b", NOTIFY_NEVER, NULL },
	{ "TO:<a@b> notify=never", false, 0, NULL, "a@b", NOTIFY_NEVER, NULL },
	{ "TO:<a@b> NOTIFY=delay,Failure", false, 0, NULL, "a@b", NOTIFY_DELAY | NOTIFY_FAILURE, NULL },
	{ "TO:<a@b> NOTIFY=SUCCESS,SUCCESS", false, 0, NULL, "a@b", NOTIFY_SUCCESS, NULL },
	{ "TO:<a@b> NOTIFY=NEVER,SUCCESS", false, -EINVAL, R_NOTIFY, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=SUCCESS,NEVER", false, -EINVAL, R_NOTIFY, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=NEVER,NEVER", false, 0, NULL, "a@b", NOTIFY_NEVER, NULL },
	{ "TO:<a@b> NOTIFY=SUCCESS,,FAILURE", false, -EINVAL, R_NOTIFY, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=SUCCESS,", false, -EINVAL, R_NOTIFY, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=,SUCCESS", false, -EINVAL, R_NOTIFY, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=FOO", false, -EINVAL, R_NOTIFY, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY", false, -EINVAL, R_NOTIFY, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=", false, -EINVAL, R_PARAM, NULL, 0, NULL },
	{ "TO:<a@b> NOTIFY=DELAY NOTIFY=DELAY", false, -EINVAL, R_DUP, NULL, 0, NULL },
	/* ORCPT (RFC 3461 4.2). */
	{ "TO:<a@b> ORCPT=rfc822;a+2Bb@c", false, 0, NULL, "a@b", 0, "rfc822;a+b@c" },
	{ "TO:<a@b> ORCPT=RFC822;x@y NOTIFY=FAILURE", false, 0, NULL, "a@b", NOTIFY_FAILURE,
	  "RFC822;x@y" },
	{ "TO:<a@b> ORCPT=rfc822;" A493, false, 0, NULL, "a@b", 0, "rfc822;" A493 },
	{ "TO:<a@b> ORCPT=rfc822;" A493 "a", false, -EINVAL, R_ORCPT, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822", false, -EINVAL, R_ORCPT, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=;a@b", false, -EINVAL, R_ORCPT, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;", false, -EINVAL, R_ORCPT, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;a+0Db", false, -EINVAL, R_ORCPT, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;a+80b", false, -EINVAL, R_ORCPT, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;a+zz", false, -EINVAL, R_ORCPT, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc822;a+00", false, -EINVAL, R_ORCPT, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=rfc(822;a", false, -EINVAL, R_ORCPT, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT", false, -EINVAL, R_ORCPT, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=utf-8;a\xc3\xa9@b", true, 0, NULL, "a@b", 0, "utf-8;a\xc3\xa9@b" },
	{ "TO:<a@b> ORCPT=utf-8;a+C3+A9@b", true, 0, NULL, "a@b", 0, "utf-8;a\xc3\xa9@b" },
	{ "TO:<a@b> ORCPT=utf-8;a+C3@b", true, -EINVAL, R_ORCPT, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=utf-8;a\xc3\xa9@b", false, -EINVAL, R_PARAM, NULL, 0, NULL },
	{ "TO:<a@b> ORCPT=a;b ORCPT=a;b", false, -EINVAL, R_DUP, NULL, 0, NULL },
	/* MAIL's parameters are not RCPT's. */
	{ "TO:<a@b> SIZE=1", false, -EINVAL, R_555, NULL, 0, NULL },
	{ "TO:<a@b> SMTPUTF8", true, -EINVAL, R_555, NULL, 0, NULL },
	{ "TO:<a@b> =", false, -EINVAL, R_PARAM, NULL, 0, NULL },
};

START_TEST(test_rcpt)
{
	const struct rcpt_case *c = &rcpt_cases[_i];
	struct mailaddr to;
	struct smtp_rcpt_params p;
	const char *reply = "unset";
	char addr[MAILADDR_ADDR_SIZE];
	int rc;

	rc = smtp_parse_rcpt(c->arg, strlen(c->arg), c->smtputf8, &to, &p, &reply);
	ck_assert_msg(rc == c->rc, "case %d: rc %d, want %d (%s)", _i, rc, c->rc,
	    reply != NULL ? reply : "NULL");
	if (rc < 0) {
		ck_assert_str_eq(reply, c->reply);
		ck_assert(p.notify == 0 && !p.have_orcpt);
		ck_assert_str_eq(to.local, "");
		return;
	}
	ck_assert_ptr_null(reply);
	ck_assert_int_ge(mailaddr_format(&to, addr, sizeof addr), 0);
	ck_assert_str_eq(addr, c->to);
	ck_assert_uint_eq(p.notify, c->notify);
	ck_assert_int_eq(p.have_orcpt, c->orcpt != NULL);
	ck_assert_str_eq(p.orcpt, c->orcpt != NULL ? c->orcpt : "");
}
END_TEST

static const struct xtext_case {
	const char *in;
	int rc;
	const char *out;
} xtext_cases[] = {
	{ "", 0, "" },
	{ "abc", 3, "abc" },
	{ "a+2Bb", 3, "a+b" },
	{ "a+2bb", 3, "a+b" },                  /* lower-case hex accepted */
	{ "+3D+20+7E", 3, "= ~" },
	{ "!~", 2, "!~" },
	{ "+C3+A9", 2, "\xc3\xa9" },
	{ "a+", -EINVAL, "" },
	{ "a+2", -EINVAL, "" },
	{ "a+G0", -EINVAL, "" },
	{ "a+00", -EINVAL, "" },
	{ "a=b", -EINVAL, "" },
	{ "a b", -EINVAL, "" },
	{ "a\x7f", -EINVAL, "" },
	{ "a\xc3\xa9", -EINVAL, "" },
	{ "a\x01", -EINVAL, "" },
};

START_TEST(test_xtext)
{
	const struct xtext_case *c = &xtext_cases[_i];
	char dst[32];

	memset(dst, '#', sizeof dst);
	ck_assert_int_eq(smtp_xtext_decode(c->in, strlen(c->in), dst, sizeof dst), c->rc);
	ck_assert_str_eq(dst, c->out);
}
END_TEST

START_TEST(test_xtext_encode)
{
	static const char raw[] = "a+b=c d\x01\xff~";
	char enc[64], dec[64];
	int n;

	n = smtp_xtext_encode(raw, sizeof raw - 1, enc, sizeof enc);
	ck_assert_str_eq(enc, "a+2Bb+3Dc+20d+01+FF~");
	ck_assert_int_eq(n, (int)strlen(enc));
	ck_assert_int_eq(smtp_xtext_decode(enc, (size_t)n, dec, sizeof dec), (int)sizeof raw - 1);
	ck_assert_mem_eq(dec, raw, sizeof raw - 1);
	/* Bounds: the NUL needs room too. */
	ck_assert_int_eq(smtp_xtext_encode("abc", 3, enc, 4), 3);
	ck_assert_int_eq(smtp_xtext_encode("abc", 3, enc, 3), -E2BIG);
	ck_assert_str_eq(enc, "");
	ck_assert_int_eq(smtp_xtext_encode("+", 1, enc, 3), -E2BIG);
	ck_assert_int_eq(smtp_xtext_decode("abc", 3, dec, 3), -E2BIG);
	ck_assert_int_eq(smtp_xtext_decode("abc", 3, dec, 0), -E2BIG);
}
END_TEST


static const struct auth_case {
	const char *arg;
	int rc;
	const char *reply;
	enum smtp_auth_mech mech;
	bool have_initial;
	const char *initial;
} auth_cases[] = {
	{ "PLAIN", 0, NULL, SMTP_AUTH_PLAIN, false, "" },
	{ "plain AHVzZXIAcGFzcw==", 0, NULL, SMTP_AUTH_PLAIN, true, "AHVzZXIAcGFzcw==" },
	{ "PLAIN =", 0, NULL, SMTP_AUTH_PLAIN, true, "" },
	{ "LOGIN", 0, NULL, SMTP_AUTH_LOGIN, false, "" },
	{ "Login dXNlcg==", 0, NULL, SMTP_AUTH_LOGIN, true, "dXNlcg==" },
	/* Not decoded here: bad base64 is the decoder's 501 5.5.2. */
	{ "PLAIN !!!!", 0, NULL, SMTP_AUTH_PLAIN, true, "!!!!" },
	{ "", -EINVAL, "501 5.5.4 Syntax: AUTH mechanism [initial-response]", 0, false, NULL },
	{ " PLAIN", -EINVAL, "501 5.5.4 Syntax: AUTH mechanism [initial-response]", 0, false, NULL },
	{ "PLAIN ", -EINVAL, "501 5.5.4 Syntax: AUTH mechanism [initial-response]", 0, false, NULL },
	{ "PLAIN a b", -EINVAL, "501 5.5.4 Syntax: AUTH mechanism [initial-response]", 0, false, NULL },
	{ "CRAM-MD5", -EINVAL, "504 5.5.4 Unrecognized authentication type", 0, false, NULL },
	{ "PLAINX", -EINVAL, "504 5.5.4 Unrecognized authentication type", 0, false, NULL },
	{ "XOAUTH2 abc", -EINVAL, "504 5.5.4 Unrecognized authentication type", 0, false, NULL },
};

START_TEST(test_auth)
{
	const struct auth_case *c = &auth_cases[_i];
	struct smtp_auth_cmd a;
	const char *reply = "unset";

	ck_assert_int_eq(smtp_parse_auth(c->arg, strlen(c->arg), &a, &reply), c->rc);
	if (c->rc < 0) {
		ck_assert_str_eq(reply, c->reply);
		return;
	}
	ck_assert_ptr_null(reply);
	ck_assert_int_eq(a.mech, c->mech);
	ck_assert_int_eq(a.have_initial, c->have_initial);
	ck_assert_uint_eq(a.initial_len, strlen(c->initial));
	ck_assert_mem_eq(a.initial, c->initial, a.initial_len);
}
END_TEST


/* --- the inbound MX's arguments (relay/inbound_cmd.h) --------------------------------- */

struct in_mail_case {
	const char *arg, *helo;
	int rc;
	const char *reply;        /* prefix */
	const char *sender, *spf_domain;
	bool spf_helo, spf_none;
};
static const struct in_mail_case in_mail_cases[] = {
	{ "FROM:<>", "mx.sender.test", 0, NULL, "", "mx.sender.test", true, false },
	{ "FROM:<> SIZE=1000", "[192.0.2.1]", 0, NULL, "", "[192.0.2.1]", true, true },
	{ "FROM:<>", "localhost", 0, NULL, "", "localhost", true, true },
	{ "FROM:<Bounce@Sender.Test> BODY=8BITMIME", "x.test", 0, NULL, "Bounce@Sender.Test", "Sender.Test", false, false },
	{ "FROM:<a@[192.0.2.1]>", "x.test", 0, NULL, "a@[192.0.2.1]", "[192.0.2.1]", false, true },
	{ "FROM:<> SIZE=1001", "x.test", -EFBIG, "552 5.3.4 Message size exceeds fixed maximum message size (1000 bytes)", NULL, NULL, false, false },
	{ "FROM:<> BODY=BINARYMIME", "x.test", -ENOTSUP, "555 5.5.4", NULL, NULL, false, false },
	{ "FROM:<a@b@c>", "x.test", -EINVAL, "501 5.1.7", NULL, NULL, false, false },
	{ "FROM:<> AUTH=<>", "x.test", 0, NULL, "", "x.test", true, false },
	{ "FROM:<>SIZE=1", "x.test", -EINVAL, "501 5.5.4", NULL, NULL, false, false },
};

START_TEST(test_inbound_mail)
{
	const struct in_mail_case *tc = &in_mail_cases[_i];
	struct inbound_mail m;
	char buf[128];
	const char *reply = NULL;
	int rc = inbound_mail(tc->arg, strlen(tc->arg), tc->helo, 1000, &m, buf, sizeof buf, &reply);

	ck_assert_msg(rc == tc->rc, "%s: rc %d, want %d (%s)", tc->arg, rc, tc->rc, reply ? reply : "");
	if (tc->rc < 0) {
		ck_assert_ptr_nonnull(reply);
		ck_assert_msg(strncmp(reply, tc->reply, strlen(tc->reply)) == 0, "%s: %s", tc->arg, reply);
		return;
	}
	ck_assert_str_eq(m.sender, tc->sender);
	ck_assert_str_eq(m.spf_domain, tc->spf_domain);
	ck_assert_int_eq(m.spf_helo, tc->spf_helo);
	ck_assert_int_eq(m.spf_none, tc->spf_none);
}
END_TEST

struct in_rcpt_case {
	const char *arg, *pm;
	int rc;
	const char *addr_or_reply;
};
static const struct in_rcpt_case in_rcpt_cases[] = {
	{ "TO:<B+Tok@Bounces.Example>", NULL, 0, "b+tok@bounces.example" },
	{ "TO:<Postmaster>", "bounces.example", 0, "postmaster@bounces.example" },
	{ "TO:<postmaster> NOTIFY=NEVER", "bounces.example", 0, "postmaster@bounces.example" },
	{ "TO:<postmaster>", NULL, -EINVAL, "501 5.1.3" },
	{ "TO:<postmaster>x", "bounces.example", -EINVAL, "501 5.1.3" },
	{ "TO:<>", "bounces.example", -EINVAL, "501 5.1.3 Null" },
	{ "TO:<\"Quoted Part\"@bounces.example>", NULL, 0, "\"quoted part\"@bounces.example" },
	{ "TO:<x@y> FOO=1", NULL, -EINVAL, "555 5.5.4" },
};

START_TEST(test_inbound_rcpt)
{
	const struct in_rcpt_case *tc = &in_rcpt_cases[_i];
	struct inbound_rcpt r;
	const char *reply = NULL;
	int rc = inbound_rcpt(tc->arg, strlen(tc->arg), false, tc->pm, &r, &reply);

	ck_assert_msg(rc == tc->rc, "%s: rc %d, want %d (%s)", tc->arg, rc, tc->rc, reply ? reply : "");
	if (rc < 0)
		ck_assert_msg(strncmp(reply, tc->addr_or_reply, strlen(tc->addr_or_reply)) == 0,
		    "%s: %s", tc->arg, reply);
	else
		ck_assert_str_eq(r.addr, tc->addr_or_reply);
}
END_TEST

START_TEST(test_helo_ok)
{
	char long_name[300];

	memset(long_name, 'a', sizeof long_name);
	ck_assert(smtp_helo_ok("mx.example", 10));
	ck_assert(smtp_helo_ok("[192.0.2.1]", 11));
	ck_assert(!smtp_helo_ok("", 0));
	ck_assert(!smtp_helo_ok("a b", 3));
	ck_assert(!smtp_helo_ok("a\x7f", 2));
	ck_assert(!smtp_helo_ok("a\0b", 3));
	ck_assert(smtp_helo_ok(long_name, 255));
	ck_assert(!smtp_helo_ok(long_name, 256));
}
END_TEST

Suite *
smtp_parse_suite(void)
{
	Suite *s = suite_create("smtp_parse");
	TCase *tc;

	tc = tcase_create("commands");
	tcase_add_loop_test(tc, test_cmd, 0, (int)NELEM(cmd_cases));
	tcase_add_test(tc, test_verb_names);
	tcase_add_loop_test(tc, test_mail, 0, (int)NELEM(mail_cases));
	tcase_add_loop_test(tc, test_rcpt, 0, (int)NELEM(rcpt_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("codings");
	tcase_add_loop_test(tc, test_xtext, 0, (int)NELEM(xtext_cases));
	tcase_add_test(tc, test_xtext_encode);
	suite_add_tcase(s, tc);

	tc = tcase_create("auth");
	tcase_add_loop_test(tc, test_auth, 0, (int)NELEM(auth_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("inbound");
	tcase_add_loop_test(tc, test_inbound_mail, 0, (int)NELEM(in_mail_cases));
	tcase_add_loop_test(tc, test_inbound_rcpt, 0, (int)NELEM(in_rcpt_cases));
	tcase_add_test(tc, test_helo_ok);
	suite_add_tcase(s, tc);
	return s;
}
