/*
 * test_mailaddr - core/mailaddr: RFC 5321 paths, RFC 6531 UTF-8, limits,
 * literals, source routes, formatting round trips.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/mailaddr.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Options. */
#define O_NULL 1u       /* allow_null */
#define O_UTF8 2u       /* allow_utf8 */
/* Result flags. */
#define F_NULL 1u
#define F_UTF8 2u
#define F_IP 4u

#define A10 "aaaaaaaaaa"
#define A64 A10 A10 A10 A10 A10 A10 "aaaa"
#define B10 "bbbbbbbbbb"
#define B60 B10 B10 B10 B10 B10 B10
#define B63 B60 "bbb"
/* 252 octets: the longest domain that fits a path with a 1-octet local. */
#define D252 B63 "." B63 "." B63 "." B60
#define D253 B63 "." B63 "." B63 "." B60 "b"
#define D255 B63 "." B63 "." B63 "." B63
#define D256 B63 "." B63 "." B63 "." B60 "bb.b"
/* U-labels: 57 x U+00E4 is "xn--" + 59 = 63 octets; 58 make 64. */
#define AE10 "\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4"
#define AE57 AE10 AE10 AE10 AE10 AE10 "\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4"
#define AE58 AE57 "\xc3\xa4"
/* 59 octets of UTF-8, but an A-label of 67: scattered code points. */
#define SCATTER "\xe6\x8e\x80\xe0\xb1\xac\xf0\xa3\x95\xbd\xde\x8d\xe4\xbe\xb1" \
	"\xe5\x9e\x9f\xf0\xa9\x8a\x94\xf0\xa5\xad\x98\xe8\x9a\x9d\xe7\x94\x83" \
	"\xf0\xa5\x9b\xa0\xd2\x9e\xe7\x86\x89\xf0\xa8\x8b\x8e\xe8\x89\x98" \
	"\xf0\xa4\xb8\xaa\xf0\xa8\x9f\xac\xe7\xbf\x90"

static const struct path_case {
	const char *in;
	size_t len;             /* 0: strlen(in) */
	unsigned opts;
	int rc;                 /* consumed, or MAILADDR_E* */
	const char *local;
	const char *domain;
	unsigned flags;
	const char *why;        /* NULL: not checked */
} path_cases[] = {
	/* Dot-strings. */
	{ "<a@b>", 0, 0, 5, "a", "b", 0, "" },
	{ "<john.q.public@example.com>", 0, 0, 27, "john.q.public", "example.com", 0, NULL },
	{ "<!#$%&'*+-/=?^_`{|}~@x.y>", 0, 0, 25, "!#$%&'*+-/=?^_`{|}~", "x.y", 0, NULL },
	{ "<User+Tag@EXAMPLE.Com>", 0, 0, 22, "User+Tag", "EXAMPLE.Com", 0, NULL },
	{ "<.a@x>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, "misplaced '.' in local part" },
	{ "<a.@x>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, "misplaced '.' in local part" },
	{ "<a..b@x>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, "misplaced '.' in local part" },
	{ "<a b@x>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid character in local part" },
	{ "<a(b)@x>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, NULL },
	{ "<a\x7f@x>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, NULL },
	{ "<@x>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, "empty local part" },
	/* Quoted strings. */
	{ "<\"john doe\"@example.com>", 0, 0, 24, "\"john doe\"", "example.com", 0, NULL },
	{ "<\"a\\\"b\"@x>", 0, 0, 10, "\"a\\\"b\"", "x", 0, NULL },
	{ "<\"a\\\\b\"@x>", 0, 0, 10, "\"a\\\\b\"", "x", 0, NULL },
	{ "<\"a@b>c\"@x>", 0, 0, 11, "\"a@b>c\"", "x", 0, NULL },
	{ "<\"\"@x>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, "empty local part" },
	{ "<\"abc@x>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, "unterminated quoted string" },
	{ "<\"a\\\x01\"@x>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid quoted pair" },
	{ "<\"a\tb\"@x>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, "control character in local part" },
	{ "<\"a\"b@x>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid character in local part" },
	/* Local part length: 64 octets, quotes included. */
	{ "<" A64 "@x>", 0, 0, 68, A64, "x", 0, NULL },
	{ "<" A64 "a@x>", 0, 0, MAILADDR_ETOOLONG, NULL, NULL, 0, "local part too long" },
	{ "<\"" A10 A10 A10 A10 A10 A10 "aa\"@x>", 0, 0, 68,
	  "\"" A10 A10 A10 A10 A10 A10 "aa\"", "x", 0, NULL },
	{ "<\"" A10 A10 A10 A10 A10 A10 "aaa\"@x>", 0, 0, MAILADDR_ETOOLONG, NULL, NULL, 0, NULL },
	/* Domains. */
	{ "<a@" B63 ".c>", 0, 0, 69, "a", B63 ".c", 0, NULL },
	{ "<a@" B63 "b.c>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "domain label too long" },
	{ "<a@" D252 ">", 0, 0, 256, "a", D252, 0, NULL },
	{ "<a@" D253 ">", 0, 0, MAILADDR_ETOOLONG, NULL, NULL, 0, "path too long" },
	/* A 255-octet domain is a valid Domain, but no path can hold it. */
	{ "<a@" D255 ">", 0, 0, MAILADDR_ETOOLONG, NULL, NULL, 0, "path too long" },
	{ "<a@" D256 ">", 0, 0, MAILADDR_ETOOLONG, NULL, NULL, 0, "domain too long" },
	{ "<a@-b.c>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "domain label starts or ends with '-'" },
	{ "<a@b-.c>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "domain label starts or ends with '-'" },
	{ "<a@b.-c>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, NULL },
	{ "<a@b-c.d-e>", 0, 0, 11, "a", "b-c.d-e", 0, NULL },
	{ "<a@xn--bcher-kva.de>", 0, 0, 20, "a", "xn--bcher-kva.de", 0, NULL },
	{ "<a@1.2.3.4>", 0, 0, 11, "a", "1.2.3.4", 0, NULL },
	{ "<a@b..c>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "empty domain label" },
	{ "<a@.b>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "missing domain" },
	{ "<a@b.>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "empty domain label" },
	{ "<a@>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "missing domain" },
	{ "<a@b_c>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "invalid character in domain" },
	{ "<a@b c>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "invalid character in domain" },
	/* Address literals. */
	{ "<a@[192.0.2.1]>", 0, 0, 15, "a", "[192.0.2.1]", F_IP, NULL },
	{ "<a@[IPv6:2001:db8::1]>", 0, 0, 22, "a", "[IPv6:2001:db8::1]", F_IP, NULL },
	{ "<a@[ipv6:::1]>", 0, 0, 14, "a", "[ipv6:::1]", F_IP, NULL },
	{ "<a@[IPv6:::ffff:192.0.2.1]>", 0, 0, 27, "a", "[IPv6:::ffff:192.0.2.1]", F_IP, NULL },
	{ "<a@[x-tag:any.thing]>", 0, 0, 21, "a", "[x-tag:any.thing]", F_IP, NULL },
	{ "<a@[192.0.2.256]>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "invalid IPv4 address literal" },
	{ "<a@[192.0.2]>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, NULL },
	{ "<a@[IPv6:2001:db8::g]>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "invalid IPv6 address literal" },
	{ "<a@[IPv6:1.2.3.4]>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, NULL },
	/* RFC 5321 4.1.3: "2001" is a syntactically valid Standardized-tag. */
	{ "<a@[2001:db8::1]>", 0, 0, 17, "a", "[2001:db8::1]", F_IP, NULL },
	{ "<a@[-tag:x]>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, NULL },
	{ "<a@[tag:]>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, NULL },
	{ "<a@[]>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, NULL },
	{ "<a@[1.2.3.4>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "unterminated address literal" },
	{ "<a@[1.2.3.4", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "unterminated address literal" },
	{ "<a@[1.2.3.4]x>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, NULL },
	{ "<a@[1.2. 3.4]>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, NULL },
	/* Source routes: checked, then dropped. */
	{ "<@a.example,@b.example:u@d.example>", 0, 0, 35, "u", "d.example", 0, NULL },
	{ "<@a:u@d>", 0, 0, 8, "u", "d", 0, NULL },
	{ "<@a,b:u@d>", 0, 0, MAILADDR_ESYNTAX, NULL, NULL, 0, "bad source route" },
	{ "<@a u@d>", 0, 0, MAILADDR_ESYNTAX, NULL, NULL, 0, "bad source route" },
	{ "<@:u@d>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "missing domain" },
	{ "<@[1.2.3.4]:u@d>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, "address literal in source route" },
	{ "<@a.example>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, "empty local part" },
	/* Found by fuzz_smtp_cmd: utf8 is about the address kept. */
	{ "<@\xc3\xa9:ea@b>", 0, O_UTF8, 10, "ea", "b", 0, NULL },
	{ "<@\xc3\xa9:ea@b>", 0, 0, MAILADDR_EUTF8, NULL, NULL, 0, NULL },
	/* Null path. */
	{ "<>", 0, O_NULL, 2, "", "", F_NULL, NULL },
	{ "<> SIZE=10", 0, O_NULL, 2, "", "", F_NULL, NULL },
	{ "<>", 0, 0, MAILADDR_ENULL, NULL, NULL, 0, "null path not allowed" },
	/* Brackets and what follows: the count says where parameters start. */
	{ "a@b", 0, 0, MAILADDR_ESYNTAX, NULL, NULL, 0, "missing '<'" },
	{ " <a@b>", 0, 0, MAILADDR_ESYNTAX, NULL, NULL, 0, "missing '<'" },
	{ "", 0, 0, MAILADDR_ESYNTAX, NULL, NULL, 0, "missing '<'" },
	{ "<a@b", 0, 0, MAILADDR_ESYNTAX, NULL, NULL, 0, "missing '>'" },
	{ "<a@b>>", 0, 0, 5, "a", "b", 0, NULL },
	{ "<a@b> SIZE=1 BODY=8BITMIME", 0, 0, 5, "a", "b", 0, NULL },
	{ "<ab>", 0, 0, MAILADDR_ESYNTAX, NULL, NULL, 0, "missing '@' and domain" },
	{ "<postmaster>", 0, 0, MAILADDR_ESYNTAX, NULL, NULL, 0, "missing '@' and domain" },
	{ "<Postmaster@example.com>", 0, 0, 24, "Postmaster", "example.com", 0, NULL },
	{ "<", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, "empty local part" },
	/* NUL, CR, LF. */
	{ "<a\0b@x>", 7, 0, MAILADDR_ELOCAL, NULL, NULL, 0, NULL },
	{ "<a@x\0>", 6, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, NULL },
	{ "<\"a\0\"@x>", 8, 0, MAILADDR_ELOCAL, NULL, NULL, 0, NULL },
	{ "<a\r\n@b>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, NULL },
	{ "<a@b\r\n>", 0, 0, MAILADDR_EDOMAIN, NULL, NULL, 0, NULL },
	{ "<\"a\r\nb\"@x>", 0, 0, MAILADDR_ELOCAL, NULL, NULL, 0, NULL },
	/* UTF-8: allowed only with SMTPUTF8. */
	{ "<jos\xc3\xa9@example.com>", 0, O_UTF8, 19, "jos\xc3\xa9", "example.com", F_UTF8, NULL },
	{ "<jos\xc3\xa9@example.com>", 0, 0, MAILADDR_EUTF8, NULL, NULL, 0,
	  "non-ASCII address without SMTPUTF8" },
	{ "<a@b\xc3\xbc" "cher.de>", 0, O_UTF8, 14, "a", "b\xc3\xbc" "cher.de", F_UTF8, NULL },
	{ "<a@b\xc3\xbc" "cher.de>", 0, 0, MAILADDR_EUTF8, NULL, NULL, 0, NULL },
	{ "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>", 0, O_UTF8,
	  22, "\xe7\x94\xa8\xe6\x88\xb7", "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
	  F_UTF8, NULL },
	{ "<\"\xc3\xa9 x\"@y>", 0, O_UTF8, 10, "\"\xc3\xa9 x\"", "y", F_UTF8, NULL },
	{ "<\xf0\x9f\x98\x80@x>", 0, O_UTF8, 8, "\xf0\x9f\x98\x80", "x", F_UTF8, NULL },
	{ "<a@x>", 0, O_UTF8, 5, "a", "x", 0, NULL },
	{ "<\xc0\xaf@x>", 0, O_UTF8, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid UTF-8" },
	{ "<\xe0\x80\xaf@x>", 0, O_UTF8, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid UTF-8" },
	{ "<\xf0\x80\x80\xaf@x>", 0, O_UTF8, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid UTF-8" },
	{ "<\xed\xa0\x80@x>", 0, O_UTF8, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid UTF-8" },
	{ "<\xf4\x90\x80\x80@x>", 0, O_UTF8, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid UTF-8" },
	{ "<\xf5\x80\x80\x80@x>", 0, O_UTF8, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid UTF-8" },
	{ "<\xff@x>", 0, O_UTF8, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid UTF-8" },
	{ "<\x80@x>", 0, O_UTF8, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid UTF-8" },
	{ "<a\xbf@x>", 0, O_UTF8, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid UTF-8" },
	{ "<\xc3@x>", 0, O_UTF8, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid UTF-8" },
	{ "<\xe4\xbe@x>", 0, O_UTF8, MAILADDR_ELOCAL, NULL, NULL, 0, "invalid UTF-8" },
	{ "<\xc2\x85@x>", 0, O_UTF8, MAILADDR_ELOCAL, NULL, NULL, 0, "control character" },
	{ "<a@\x80x>", 0, O_UTF8, MAILADDR_EDOMAIN, NULL, NULL, 0, "invalid UTF-8" },
	{ "<a@x\xc0\x80>", 0, O_UTF8, MAILADDR_EDOMAIN, NULL, NULL, 0, "invalid UTF-8" },
	/* U-labels. */
	{ "<a@" AE57 ".de>", 0, O_UTF8, 121, "a", AE57 ".de", F_UTF8, NULL },
	{ "<a@" AE58 ".de>", 0, O_UTF8, MAILADDR_EDOMAIN, NULL, NULL, 0, "domain label too long" },
	{ "<a@" SCATTER ".cn>", 0, O_UTF8, MAILADDR_EDOMAIN, NULL, NULL, 0, "domain label too long" },
	{ "<a@-\xc3\xbc.de>", 0, O_UTF8, MAILADDR_EDOMAIN, NULL, NULL, 0, NULL },
	{ "<a@\xc3\xbc-.de>", 0, O_UTF8, MAILADDR_EDOMAIN, NULL, NULL, 0, NULL },
	{ "<a@ab--\xc3\xbc.de>", 0, O_UTF8, MAILADDR_EDOMAIN, NULL, NULL, 0,
	  "U-label with '--' in positions 3-4" },
	{ "<a@\xc3\xbc--b.de>", 0, O_UTF8, 12, "a", "\xc3\xbc--b.de", F_UTF8, NULL },
};

START_TEST(test_parse_path)
{
	const struct path_case *c = &path_cases[_i];
	struct mailaddr a;
	const char *why = NULL;
	size_t len = c->len != 0 ? c->len : strlen(c->in);
	int rc;

	memset(&a, 0x5a, sizeof a);
	rc = mailaddr_parse_path(&a, c->in, len, (c->opts & O_NULL) != 0,
	    (c->opts & O_UTF8) != 0, &why);
	ck_assert_msg(rc == c->rc, "case %d: rc %d, want %d (%s)", _i, rc, c->rc, why);
	ck_assert_ptr_nonnull(why);
	if (c->why != NULL)
		ck_assert_str_eq(why, c->why);
	if (rc < 0) {
		ck_assert_str_eq(a.local, "");
		ck_assert_str_eq(a.domain, "");
		ck_assert(!a.null && !a.utf8 && !a.ip_literal);
		return;
	}
	ck_assert_str_eq(a.local, c->local);
	ck_assert_str_eq(a.domain, c->domain);
	ck_assert_int_eq(a.null, (c->flags & F_NULL) != 0);
	ck_assert_int_eq(a.utf8, (c->flags & F_UTF8) != 0);
	ck_assert_int_eq(a.ip_literal, (c->flags & F_IP) != 0);
}
END_TEST

/* Every accepted path formats to an address that parses back the same. */
START_TEST(test_round_trip)
{
	const struct path_case *c = &path_cases[_i];
	struct mailaddr a, b;
	char addr[MAILADDR_ADDR_SIZE], path[MAILADDR_ADDR_SIZE + 2];
	size_t len = c->len != 0 ? c->len : strlen(c->in);
	int n;

	if (c->rc < 0)
		return;
	ck_assert_int_eq(mailaddr_parse_path(&a, c->in, len, true, true, NULL), c->rc);
	n = mailaddr_format(&a, addr, sizeof addr);
	ck_assert_int_ge(n, 0);
	ck_assert_uint_eq((size_t)n, strlen(addr));
	path[0] = '<';
	memcpy(path + 1, addr, (size_t)n);
	path[n + 1] = '>';
	ck_assert_int_eq(mailaddr_parse_path(&b, path, (size_t)n + 2, true, true, NULL), n + 2);
	ck_assert_str_eq(b.local, a.local);
	ck_assert_str_eq(b.domain, a.domain);
	ck_assert_int_eq(b.null, a.null);
	ck_assert_int_eq(b.utf8, a.utf8);
	ck_assert_int_eq(b.ip_literal, a.ip_literal);
}
END_TEST

START_TEST(test_format)
{
	struct mailaddr a;
	char buf[8];

	ck_assert_int_eq(mailaddr_parse_path(&a, "<ab@cd.e>", 9, false, false, NULL), 9);
	ck_assert_int_eq(mailaddr_format(&a, buf, sizeof buf), 7);
	ck_assert_str_eq(buf, "ab@cd.e");
	ck_assert_int_eq(mailaddr_format(&a, buf, 7), -E2BIG);
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(mailaddr_format(&a, buf, 0), -E2BIG);

	ck_assert_int_eq(mailaddr_parse_path(&a, "<>", 2, true, false, NULL), 2);
	ck_assert_int_eq(mailaddr_format(&a, buf, 1), 0);
	ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(test_domain)
{
	struct mailaddr a;
	char buf[32];

	ck_assert_int_gt(mailaddr_parse_path(&a, "<U@Mail.EXAMPLE.com>", 20, false, false, NULL), 0);
	ck_assert(mailaddr_domain_eq(&a, "mail.example.com"));
	ck_assert(mailaddr_domain_eq(&a, "MAIL.EXAMPLE.COM"));
	ck_assert(!mailaddr_domain_eq(&a, "mail.example.co"));
	ck_assert(!mailaddr_domain_eq(&a, "mail.example.comm"));
	ck_assert(!mailaddr_domain_eq(&a, ""));
	ck_assert_int_eq(mailaddr_domain_lc(&a, buf, sizeof buf), 16);
	ck_assert_str_eq(buf, "mail.example.com");
	ck_assert_int_eq(mailaddr_domain_lc(&a, buf, 16), -E2BIG);
	ck_assert_str_eq(buf, "");
	/* The local part keeps its case (RFC 5321 2.4). */
	ck_assert_str_eq(a.local, "U");

	ck_assert_int_gt(mailaddr_parse_path(&a, "<u@\xc3\x9c" "BER.de>", 12, false, true, NULL), 0);
	ck_assert_int_eq(mailaddr_domain_lc(&a, buf, sizeof buf), 8);
	ck_assert_str_eq(buf, "\xc3\x9c" "ber.de");
	ck_assert(mailaddr_domain_eq(&a, "\xc3\x9c" "BEr.DE"));
	ck_assert(!mailaddr_domain_eq(&a, "\xc3\xbc" "ber.de"));
}
END_TEST

static const struct utf8_case {
	const char *s;
	size_t len;
	bool ok;
} utf8_cases[] = {
	{ "", 0, true },
	{ "plain ascii", 11, true },
	{ "\xc3\xa9", 2, true },
	{ "\xe2\x82\xac", 3, true },
	{ "\xf0\x9f\x98\x80", 4, true },
	{ "\xef\xbf\xbf", 3, true },
	{ "\xf4\x8f\xbf\xbf", 4, true },        /* U+10FFFF */
	{ "\xed\x9f\xbf", 3, true },            /* U+D7FF */
	{ "\xee\x80\x80", 3, true },            /* U+E000 */
	{ "a\0b", 3, false },
	{ "\xc0\x80", 2, false },
	{ "\xc1\xbf", 2, false },
	{ "\xe0\x9f\xbf", 3, false },
	{ "\xf0\x8f\xbf\xbf", 4, false },
	{ "\xed\xa0\x80", 3, false },
	{ "\xed\xbf\xbf", 3, false },
	{ "\xf4\x90\x80\x80", 4, false },
	{ "\xf8\x88\x80\x80\x80", 5, false },
	{ "\x80", 1, false },
	{ "\xc3", 1, false },
	{ "\xe2\x82", 2, false },
	{ "\xe2\x28\xa1", 3, false },
};

START_TEST(test_utf8_valid)
{
	const struct utf8_case *c = &utf8_cases[_i];

	ck_assert_int_eq(mailaddr_utf8_valid(c->s, c->len), c->ok);
}
END_TEST

Suite *
mailaddr_suite(void)
{
	Suite *s = suite_create("mailaddr");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_parse_path, 0, (int)NELEM(path_cases));
	tcase_add_loop_test(tc, test_round_trip, 0, (int)NELEM(path_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("helpers");
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_domain);
	tcase_add_loop_test(tc, test_utf8_valid, 0, (int)NELEM(utf8_cases));
	suite_add_tcase(s, tc);
	return s;
}
