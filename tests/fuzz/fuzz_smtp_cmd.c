/*
 * fuzz_smtp_cmd - libFuzzer target for the command-line parsers.  Byte 0
 * picks the target and its options; the rest is the client's text.
 *
 *   0  a command line: smtp_cmd_parse, then by verb smtp_parse_mail,
 *      smtp_parse_rcpt or smtp_parse_auth (+ base64 of the response)
 *   1  a path: mailaddr_parse_path
 *   2  base64 to decode       3  bytes to encode as base64
 *   4  xtext to decode        5  a decoded AUTH PLAIN message
 * Bits 4-6 of byte 0 are the options (SMTPUTF8 offered / used,
 * allow_null).  Invariants checked, besides no crash: anything parsed
 * formats back to text that parses the same; strict base64 is canonical
 * (decode then encode gives the input back); replies are 5xx lines.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mailaddr.h"
#include "core/sasl.h"
#include "relay/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_reply(int rc, const char *reply)
{
	if (rc == 0 && reply != NULL)
		abort();
	if (rc < 0 && (reply == NULL || reply[0] != '5' || strlen(reply) < 10 ||
	    reply[3] != ' ' || reply[4] != '5'))
		abort();
}

static bool
has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* check_addr - a parsed address formats and parses back the same. */
static void
check_addr(const struct mailaddr *a)
{
	char addr[MAILADDR_ADDR_SIZE], path[MAILADDR_ADDR_SIZE + 2];
	struct mailaddr b;
	int n;

	if (strlen(a->local) > MAILADDR_LOCAL_MAX || strlen(a->domain) > MAILADDR_DOMAIN_MAX)
		abort();
	if (a->utf8 != (has_8bit(a->local) || has_8bit(a->domain)))
		abort();
	if (a->null != (a->local[0] == '\0') || a->null != (a->domain[0] == '\0'))
		abort();
	if ((n = mailaddr_format(a, addr, sizeof addr)) < 0 || (size_t)n != strlen(addr))
		abort();
	path[0] = '<';
	memcpy(path + 1, addr, (size_t)n);
	path[n + 1] = '>';
	if (mailaddr_parse_path(&b, path, (size_t)n + 2, true, true, NULL) != n + 2 ||
	    strcmp(a->local, b.local) != 0 || strcmp(a->domain, b.domain) != 0 ||
	    a->null != b.null || a->utf8 != b.utf8 || a->ip_literal != b.ip_literal)
		abort();
	if (!a->null && !mailaddr_domain_eq(a, b.domain))
		abort();
}

static void
fuzz_auth(const char *arg, size_t len)
{
	struct smtp_auth_cmd a;
	const char *reply;
	unsigned char dec[SMTP_CMD_LINE_MAX];
	size_t n;
	int rc;

	rc = smtp_parse_auth(arg, len, &a, &reply);
	check_reply(rc, reply);
	if (rc < 0)
		return;
	if (a.initial < arg || a.initial + a.initial_len > arg + len)
		abort();
	if (a.have_initial &&
	    sasl_base64_decode(a.initial, a.initial_len, dec, sizeof dec, &n) == 0 &&
	    a.mech == SMTP_AUTH_PLAIN) {
		char az[SASL_PART_MAX + 1], ac[SASL_PART_MAX + 1];
		char pw[SASL_PART_MAX + 1];

		(void)sasl_plain_split(dec, n, az, sizeof az, ac, sizeof ac,
		    pw, sizeof pw);
	}
}

static void
fuzz_line(const char *s, size_t len, unsigned opts)
{
	struct smtp_cmd cmd;
	struct mailaddr a;
	struct smtp_mail_params mp;
	struct smtp_rcpt_params rp;
	const char *why, *reply;
	int rc;

	rc = smtp_cmd_parse(s, len, &cmd, &why);
	if (rc < 0) {
		if (cmd.verb != SMTP_UNKNOWN || why == NULL || why[0] != '5')
			abort();
		return;
	}
	if (cmd.verb == SMTP_UNKNOWN || why != NULL || cmd.arg < s ||
	    cmd.arg + cmd.arglen != s + len)
		abort();
	switch (cmd.verb) {
	case SMTP_MAIL:
		rc = smtp_parse_mail(cmd.arg, cmd.arglen, opts & 1, &a, &mp, &reply);
		check_reply(rc, reply);
		if (rc < 0)
			break;
		check_addr(&a);
		if (a.utf8 && !mp.smtputf8)
			abort();
		if (mp.smtputf8 && !(opts & 1))
			abort();
		if (strlen(mp.envid) > SMTP_ENVID_MAX || mp.have_envid != (mp.envid[0] != '\0'))
			abort();
		break;
	case SMTP_RCPT:
		rc = smtp_parse_rcpt(cmd.arg, cmd.arglen, opts & 2, &a, &rp, &reply);
		check_reply(rc, reply);
		if (rc < 0)
			break;
		check_addr(&a);
		if (a.null || (a.utf8 && !(opts & 2)))
			abort();
		if ((rp.notify & NOTIFY_NEVER) && rp.notify != NOTIFY_NEVER)
			abort();
		if (rp.have_orcpt != (strchr(rp.orcpt, ';') != NULL))
			abort();
		break;
	case SMTP_AUTH:
		fuzz_auth(cmd.arg, cmd.arglen);
		break;
	default:
		break;
	}
}

static void
fuzz_base64(const char *s, size_t len)
{
	unsigned char dec[4096];
	char enc[SASL_BASE64_SIZE(sizeof dec)];
	size_t n;

	if (sasl_base64_decode(s, len, dec, sizeof dec, &n) != 0)
		return;
	/* Padding and zero pad bits required: only one spelling decodes. */
	if (sasl_base64_encode(dec, n, enc, sizeof enc) != (int)len ||
	    memcmp(enc, s, len) != 0)
		abort();
}

static void
fuzz_base64_encode(const unsigned char *s, size_t len)
{
	char enc[SASL_BASE64_SIZE(4096)];
	unsigned char dec[4096];
	size_t n;
	int e;

	if (len > 4096)
		return;
	e = sasl_base64_encode(s, len, enc, sizeof enc);
	if (e < 0 || (size_t)e != strlen(enc) ||
	    sasl_base64_decode(enc, (size_t)e, dec, sizeof dec, &n) != 0 ||
	    n != len || memcmp(dec, s, len) != 0)
		abort();
}

static void
fuzz_xtext(const char *s, size_t len)
{
	char dec[1024], enc[3 * sizeof dec], dec2[sizeof dec];
	int n, e;

	if ((n = smtp_xtext_decode(s, len, dec, sizeof dec)) < 0)
		return;
	if ((size_t)n != strlen(dec) || (size_t)n > len)
		abort();
	e = smtp_xtext_encode(dec, (size_t)n, enc, sizeof enc);
	if (e < 0 || smtp_xtext_decode(enc, (size_t)e, dec2, sizeof dec2) != n ||
	    strcmp(dec, dec2) != 0)
		abort();
}

static void
fuzz_plain(const unsigned char *s, size_t len)
{
	char az[SASL_PART_MAX + 1], ac[SASL_PART_MAX + 1], pw[SASL_PART_MAX + 1];
	size_t al, cl, pl;

	if (sasl_plain_split(s, len, az, sizeof az, ac, sizeof ac, pw, sizeof pw) != 0) {
		if (az[0] != '\0' || ac[0] != '\0' || pw[0] != '\0')
			abort();
		return;
	}
	al = strlen(az);
	cl = strlen(ac);
	pl = strlen(pw);
	/* The three parts and two NULs are the whole message. */
	if (cl == 0 || pl == 0 || al + cl + pl + 2 != len ||
	    memcmp(s, az, al) != 0 || s[al] != '\0' ||
	    memcmp(s + al + 1, ac, cl) != 0 || s[al + 1 + cl] != '\0' ||
	    memcmp(s + al + cl + 2, pw, pl) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s;
	size_t len;
	unsigned sel, opts;

	if (size < 1)
		return 0;
	sel = data[0] & 0x0f;
	opts = data[0] >> 4;
	s = (const char *)data + 1;
	len = size - 1;

	switch (sel % 6) {
	case 0:
		fuzz_line(s, len, opts);
		break;
	case 1: {
		struct mailaddr a;
		const char *why = NULL;
		bool allow_null = opts & 4, allow_utf8 = opts & 1;
		int rc = mailaddr_parse_path(&a, s, len, allow_null, allow_utf8, &why);

		if (why == NULL)
			abort();
		if (rc > 0) {
			if ((size_t)rc > len || rc > MAILADDR_PATH_MAX || s[rc - 1] != '>')
				abort();
			if ((a.null && !allow_null) || (a.utf8 && !allow_utf8))
				abort();
			check_addr(&a);
		} else if (rc < MAILADDR_ELOCAL || rc == 0)
			abort();
		break;
	}
	case 2:
		fuzz_base64(s, len);
		break;
	case 3:
		fuzz_base64_encode((const unsigned char *)s, len);
		break;
	case 4:
		fuzz_xtext(s, len);
		break;
	case 5:
		fuzz_plain((const unsigned char *)s, len);
		break;
	}
	return 0;
}
