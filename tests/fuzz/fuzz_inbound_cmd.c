/*
 * fuzz_inbound_cmd - libFuzzer target for the inbound MX's commands: a
 * command line through smtp_cmd_parse and then what the inbound session
 * does with its verb (relay/inbound_cmd.h): EHLO/HELO through
 * smtp_helo_ok, MAIL through inbound_mail, RCPT through inbound_rcpt;
 * or a header section through the scanner and authres_field_is_ours
 * (the forged Authentication-Results the inbound MX deletes).
 * Byte 0 picks the target (bit 0) and the options (bit 1: the MAIL had
 * SMTPUTF8; bit 2: a postmaster domain is configured); the rest is the
 * client's text.
 *
 * Invariants checked, besides no crash: refusals are 4xx/5xx reply
 * lines with an enhanced status code; an accepted MAIL's sender parses
 * back to itself, its SPF identity is the HELO name (null sender) or the
 * sender's domain, and holds no '@' unless it is an address literal
 * (which is never looked up); an accepted RCPT is lower case
 * (ASCII), not empty, and parses back as a path; an Authentication-
 * Results field said to be ours names the host.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mailaddr.h"
#include "core/rfc5322.h"
#include "policy/authres.h"
#include "relay/inbound_cmd.h"
#include "relay/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HOST "mx.kurier.test"

static void
check_reply(const char *reply)
{
	if (reply == NULL || strlen(reply) < 9 || (reply[0] != '4' && reply[0] != '5') ||
	    reply[3] != ' ' || reply[4] != reply[0] || reply[5] != '.')
		abort();
}

static void
check_path(const char *addr)
{
	char path[MAILADDR_ADDR_SIZE + 2];
	struct mailaddr a;
	size_t n = strlen(addr);

	path[0] = '<';
	memcpy(path + 1, addr, n);
	path[n + 1] = '>';
	if (mailaddr_parse_path(&a, path, n + 2, true, true, NULL) != (int)(n + 2))
		abort();
}

static void
fuzz_command(const char *line, size_t len, unsigned opts)
{
	struct smtp_cmd c;
	struct inbound_mail m;
	struct inbound_rcpt r;
	const char *why = NULL, *reply = NULL;
	char buf[128];
	static const char helo[] = "mx.sender.test";

	if (smtp_cmd_parse(line, len, &c, &why) < 0) {
		check_reply(why);
		return;
	}
	switch (c.verb) {
	case SMTP_EHLO:
	case SMTP_HELO:
		if (smtp_helo_ok(c.arg, c.arglen) && (c.arglen == 0 || c.arglen > 255 ||
		    memchr(c.arg, ' ', c.arglen) != NULL))
			abort();
		break;
	case SMTP_MAIL:
		if (inbound_mail(c.arg, c.arglen, helo, 10 * 1024 * 1024, &m, buf, sizeof buf,
		    &reply) < 0) {
			check_reply(reply);
			break;
		}
		if (reply != NULL)
			abort();
		if (m.from.null) {
			if (m.sender[0] != '\0' || !m.spf_helo || strcmp(m.spf_domain, helo) != 0)
				abort();
		} else {
			check_path(m.sender);
			/* A general address literal ("[tag:dcontent]") may hold
			 * '@'; it is never looked up (spf_none). */
			if (m.spf_helo || strcmp(m.spf_domain, m.from.domain) != 0)
				abort();
			if (m.spf_domain[0] == '[' ? !m.spf_none : strchr(m.spf_domain, '@') != NULL)
				abort();
		}
		if (m.mp.have_size && m.mp.size > 10 * 1024 * 1024)
			abort();
		break;
	case SMTP_RCPT:
		if (inbound_rcpt(c.arg, c.arglen, (opts & 2) != 0,
		    (opts & 4) ? "bounces.kurier.test" : NULL, &r, &reply) < 0) {
			check_reply(reply);
			break;
		}
		if (reply != NULL || r.addr[0] == '\0')
			abort();
		for (const char *p = r.addr; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				abort();
		check_path(r.addr);
		break;
	default:
		break;
	}
}

static void
fuzz_head(const char *msg, size_t len)
{
	struct rfc5322_scan sc;
	const char *f;
	size_t fl;

	rfc5322_scan_init(&sc, msg, len);
	while (rfc5322_next(&sc, &f, &fl)) {
		char lc[512];
		size_t n = fl < sizeof lc ? fl : sizeof lc;

		if (!authres_field_is_ours(f, fl, HOST))
			continue;
		for (size_t i = 0; i < n; i++)
			lc[i] = (f[i] >= 'A' && f[i] <= 'Z') ? (char)(f[i] - 'A' + 'a') : f[i];
		if (!rfc5322_field_is(f, fl, "Authentication-Results") ||
		    (n == fl && memmem(lc, n, HOST, strlen(HOST)) == NULL))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;
	unsigned opts;

	if (size < 1 || size > 64 * 1024)
		return 0;
	opts = data[0];
	text = malloc(size);
	if (text == NULL)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if (opts & 1)
		fuzz_head(text, size - 1);
	else
		fuzz_command(text, size - 1, opts);
	free(text);
	return 0;
}
