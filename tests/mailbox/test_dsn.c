/*
 * test_dsn - mailbox/dsn: composed reports read back with GMime (the
 * structure, every header and delivery-status field) for each action,
 * ENVID and ORCPT, RET=FULL against HDRS and a dropped body, several
 * recipients in one report, and hostile replies (CR/LF, NUL, 8-bit,
 * 5,000 characters) that must stay inside the format: CRLF only, no
 * line over 998 octets, no injected field.
 */
#include <check.h>
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>

#include "mailbox/dsn.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char head[] =
    "From: Shop <orders@shop.example>\r\n"
    "To: <alice@dest.example>\r\n"
    "Subject: Your order 1234\r\n"
    "Message-ID: <order-1234@shop.example>\r\n"
    "\r\n";
static const char body[] = "Thank you for your order.\r\nTRACKING-BODY-LINE\r\n";

/* A parsed report: the message, its three parts, each part's content unfolded. */
struct parsed {
	GMimeMessage *msg;
	GMimeObject *part[3];
	int nparts;
	char *text, *status, *orig;
};

static char *
object_content(GMimeObject *o)
{
	GMimeStream *mem = g_mime_stream_mem_new();
	GByteArray *ba;
	char *s;

	if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *m = g_mime_message_part_get_message((GMimeMessagePart *)o);

		if (m != NULL)
			g_mime_object_write_to_stream((GMimeObject *)m, NULL, mem);
	} else if (GMIME_IS_PART(o)) {
		GMimeDataWrapper *w = g_mime_part_get_content((GMimePart *)o);

		if (w != NULL)
			g_mime_data_wrapper_write_to_stream(w, mem);
	}
	ba = g_mime_stream_mem_get_byte_array((GMimeStreamMem *)mem);
	s = malloc(ba->len + 2);
	s[0] = '\n';
	memcpy(s + 1, ba->data, ba->len);
	s[ba->len + 1] = '\0';
	g_object_unref(mem);
	/* Unfold: CRLF (or LF) followed by white space joins the lines. */
	for (char *p = s, *q = s;; p++) {
		if ((p[0] == '\r' && p[1] == '\n' && (p[2] == ' ' || p[2] == '\t'))) {
			p += 1;
			continue;
		}
		if (p[0] == '\n' && (p[1] == ' ' || p[1] == '\t') && p != s) {
			continue;
		}
		if (p[0] == '\r')
			continue;
		*q++ = *p;
		if (*p == '\0')
			break;
	}
	return s;
}

static void
parse(const struct buf *b, struct parsed *p)
{
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(b->data, b->len);
	GMimeParser *ps = g_mime_parser_new_with_stream(st);
	GMimeObject *top;

	memset(p, 0, sizeof *p);
	p->msg = g_mime_parser_construct_message(ps, NULL);
	g_object_unref(ps);
	g_object_unref(st);
	ck_assert_ptr_nonnull(p->msg);
	top = g_mime_message_get_mime_part(p->msg);
	ck_assert(GMIME_IS_MULTIPART(top));
	ck_assert(g_mime_content_type_is_type(g_mime_object_get_content_type(top), "multipart",
	    "report"));
	ck_assert_str_eq(g_mime_content_type_get_parameter(g_mime_object_get_content_type(top),
	    "report-type"), "delivery-status");
	p->nparts = g_mime_multipart_get_count((GMimeMultipart *)top);
	ck_assert_int_eq(p->nparts, 3);
	for (int i = 0; i < 3; i++)
		p->part[i] = g_mime_multipart_get_part((GMimeMultipart *)top, i);
	ck_assert(g_mime_content_type_is_type(g_mime_object_get_content_type(p->part[0]), "text",
	    "plain"));
	ck_assert(g_mime_content_type_is_type(g_mime_object_get_content_type(p->part[1]), "message",
	    "delivery-status"));
	p->text = object_content(p->part[0]);
	p->status = object_content(p->part[1]);
	p->orig = object_content(p->part[2]);
}

static void
parsed_free(struct parsed *p)
{
	free(p->text);
	free(p->status);
	free(p->orig);
	g_object_unref(p->msg);
}

static const char *
hdr(const struct parsed *p, const char *name)
{
	const char *v = g_mime_object_get_header((GMimeObject *)p->msg, name);

	ck_assert_msg(v != NULL, "no %s field", name);
	return v;
}

/* has_field - "\nName: value" (value a prefix) in unfolded text. */
static bool
has_field(const char *text, const char *name, const char *value)
{
	char want[3000];

	snprintf(want, sizeof want, "\n%s: %s", name, value);
	return strstr(text, want) != NULL;
}

/* count - occurrences of needle in s. */
static int
count(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* check_lines - CRLF only, no line over 998 octets, no NUL. */
static void
check_lines(const struct buf *b)
{
	size_t col = 0;

	for (size_t i = 0; i < b->len; i++) {
		char c = b->data[i];

		ck_assert_msg(c != '\0', "NUL at %zu", i);
		if (c == '\r') {
			ck_assert_msg(i + 1 < b->len && b->data[i + 1] == '\n', "bare CR at %zu", i);
			continue;
		}
		if (c == '\n') {
			ck_assert_msg(i > 0 && b->data[i - 1] == '\r', "bare LF at %zu", i);
			col = 0;
			continue;
		}
		col++;
		ck_assert_msg(col <= 998, "line longer than 998 at %zu", i);
	}
	ck_assert(b->len >= 2 && b->data[b->len - 2] == '\r' && b->data[b->len - 1] == '\n');
}

static struct dsn_report
report(const struct dsn_rcpt *rc, size_t n)
{
	struct dsn_report r = {
		.hostname = "mx.kurier.example",
		.to = "orders@shop.example",
		.queue_id = "0123456789abcdef",
		.unique = "0123456789abcdef.1700000000000.1",
		.arrival_ms = 1700000000000ULL,       /* Tue, 14 Nov 2023 22:13:20 */
		.now_ms = 1700000600000ULL,
		.retry_until_ms = 1700432000000ULL,   /* + 5 days */
		.head = head,
		.head_len = sizeof head - 1,
		.body = body,
		.body_len = sizeof body - 1,
		.rcpt = rc,
		.nrcpt = n,
	};

	return r;
}

static void
compose(const struct dsn_report *r, struct buf *b, struct parsed *p)
{
	buf_init(b);
	ck_assert_int_eq(dsn_compose(r, b), 0);
	check_lines(b);
	parse(b, p);
}

START_TEST(failed_one)
{
	struct dsn_rcpt rc = { .addr = "alice@dest.example", .action = DSN_FAILED,
		.reply = "550 5.1.1 <alice@dest.example>: Recipient address rejected: User unknown",
		.remote_mta = "mx1.dest.example[192.0.2.7]", .last_attempt_ms = 1700000500000ULL };
	struct dsn_report r = report(&rc, 1);
	struct parsed p;
	struct buf b;

	compose(&r, &b, &p);
	ck_assert(strstr(hdr(&p, "From"), "MAILER-DAEMON@mx.kurier.example") != NULL);
	ck_assert(strstr(hdr(&p, "From"), "Mail Delivery System") != NULL);
	ck_assert(strstr(hdr(&p, "To"), "orders@shop.example") != NULL);
	ck_assert_str_eq(hdr(&p, "Subject"), "Undelivered Mail Returned to Sender");
	ck_assert_str_eq(hdr(&p, "Auto-Submitted"), "auto-replied");
	ck_assert_str_eq(hdr(&p, "MIME-Version"), "1.0");
	ck_assert_str_eq(hdr(&p, "Date"), "Tue, 14 Nov 2023 22:23:20 +0000");
	ck_assert_str_eq(hdr(&p, "Message-ID"), "<0123456789abcdef.1700000000000.1.report@mx.kurier.example>");
	ck_assert_str_eq(hdr(&p, "X-Kurier-Queue-Id"), "0123456789abcdef");

	ck_assert(strstr(p.text, "<alice@dest.example>: failed (status 5.1.1)") != NULL);
	ck_assert(strstr(p.text, "mx1.dest.example[192.0.2.7] said: 550 5.1.1") != NULL);
	ck_assert(strstr(p.text, "Check the address") != NULL);

	ck_assert(has_field(p.status, "Reporting-MTA", "dns; mx.kurier.example\n"));
	ck_assert(has_field(p.status, "Arrival-Date", "Tue, 14 Nov 2023 22:13:20 +0000\n"));
	ck_assert(!has_field(p.status, "Original-Envelope-Id", ""));
	ck_assert(!has_field(p.status, "Original-Recipient", ""));
	ck_assert(has_field(p.status, "Final-Recipient", "rfc822; alice@dest.example\n"));
	ck_assert(has_field(p.status, "Action", "failed\n"));
	ck_assert(has_field(p.status, "Status", "5.1.1\n"));
	ck_assert(has_field(p.status, "Remote-MTA", "dns; mx1.dest.example\n"));
	ck_assert(has_field(p.status, "Diagnostic-Code",
	    "smtp; 550 5.1.1 <alice@dest.example>: Recipient address rejected: User unknown\n"));
	ck_assert(has_field(p.status, "Last-Attempt-Date", "Tue, 14 Nov 2023 22:21:40 +0000\n"));
	ck_assert(!has_field(p.status, "Will-Retry-Until", ""));
	/* Per-message fields, an empty line, then the recipient's. */
	ck_assert(strstr(p.status, "+0000\n\nFinal-Recipient") != NULL);

	ck_assert(g_mime_content_type_is_type(g_mime_object_get_content_type(p.part[2]), "text",
	    "rfc822-headers"));
	ck_assert(strstr(p.orig, "Subject: Your order 1234") != NULL);
	ck_assert(strstr(p.orig, "TRACKING-BODY-LINE") == NULL);
	parsed_free(&p);
	buf_free(&b);
}
END_TEST

START_TEST(expired)
{
	struct dsn_rcpt rc = { .addr = "bob@slow.example", .action = DSN_FAILED, .expired = true,
		.reply = "4.4.7 delivery time expired; last reply: 451 4.3.0 try later",
		.remote_mta = "", .last_attempt_ms = 1700000500000ULL };
	struct dsn_report r = report(&rc, 1);
	struct parsed p;
	struct buf b;

	compose(&r, &b, &p);
	ck_assert_str_eq(hdr(&p, "Subject"), "Undelivered Mail Returned to Sender");
	ck_assert(has_field(p.status, "Action", "failed\n"));
	ck_assert(has_field(p.status, "Status", "4.4.7\n"));
	ck_assert(!has_field(p.status, "Remote-MTA", ""));
	ck_assert(has_field(p.status, "Diagnostic-Code", "X-Kurier; 4.4.7 delivery time expired"));
	ck_assert(strstr(p.text, "lifetime ran out") != NULL);
	parsed_free(&p);
	buf_free(&b);
}
END_TEST

START_TEST(delayed)
{
	struct dsn_rcpt rc = { .addr = "carol@busy.example", .action = DSN_DELAYED,
		.reply = "451 4.7.1 Greylisted, try again later",
		.remote_mta = "mx.busy.example[198.51.100.3]", .last_attempt_ms = 1700000500000ULL };
	struct dsn_report r = report(&rc, 1);
	struct parsed p;
	struct buf b;

	compose(&r, &b, &p);
	ck_assert_str_eq(hdr(&p, "Subject"), "Delivery Status Notification (Delay)");
	ck_assert(has_field(p.status, "Action", "delayed\n"));
	ck_assert(has_field(p.status, "Status", "4.7.1\n"));
	ck_assert(has_field(p.status, "Will-Retry-Until", "Sun, 19 Nov 2023 22:13:20 +0000\n"));
	ck_assert(strstr(p.text, "warning only") != NULL);
	ck_assert(strstr(p.text, "Sun, 19 Nov 2023 22:13:20 +0000") != NULL);
	parsed_free(&p);
	buf_free(&b);
}
END_TEST

START_TEST(delivered)
{
	struct dsn_rcpt rc = { .addr = "dave@ok.example", .action = DSN_DELIVERED,
		.reply = "250 2.0.0 Ok: queued as 4XyZ", .remote_mta = "mx.ok.example[203.0.113.9]",
		.last_attempt_ms = 1700000500000ULL };
	struct dsn_report r = report(&rc, 1);
	struct parsed p;
	struct buf b;

	compose(&r, &b, &p);
	ck_assert_str_eq(hdr(&p, "Subject"), "Delivery Status Notification (Success)");
	ck_assert(has_field(p.status, "Action", "delivered\n"));
	ck_assert(has_field(p.status, "Status", "2.0.0\n"));
	ck_assert(has_field(p.status, "Diagnostic-Code", "smtp; 250 2.0.0 Ok: queued as 4XyZ\n"));
	ck_assert(!has_field(p.status, "Will-Retry-Until", ""));
	ck_assert(strstr(p.text, "was delivered") != NULL);
	parsed_free(&p);
	buf_free(&b);
}
END_TEST

START_TEST(envid_orcpt)
{
	struct dsn_rcpt rc[] = {
		{ .addr = "erin@dest.example", .orcpt = "rfc822;Erin+Sales@Dest.example",
		  .action = DSN_FAILED, .reply = "550 5.2.2 mailbox full" },
		{ .addr = "frank@dest.example", .orcpt = "frank.alias@dest.example",
		  .action = DSN_FAILED, .reply = "554 5.7.1 rejected as spam" },
	};
	struct dsn_report r = report(rc, 2);
	struct parsed p;
	struct buf b;

	r.envid = "order-1234 \r\nX-Injected: 1";
	compose(&r, &b, &p);
	/* Decoded ENVID, with what cannot stand in a field written as xtext. */
	ck_assert(has_field(p.status, "Original-Envelope-Id", "order-1234+20+0D+0AX-Injected:+201\n"));
	ck_assert(strstr(p.status, "\nX-Injected") == NULL);
	ck_assert(has_field(p.status, "Original-Recipient", "rfc822;Erin+Sales@Dest.example\n"));
	ck_assert(has_field(p.status, "Original-Recipient", "rfc822;frank.alias@dest.example\n"));
	ck_assert(strstr(p.text, "mailbox is full") != NULL);
	ck_assert(strstr(p.text, "spam") != NULL);
	ck_assert(strstr(p.text, "DKIM and SPF") != NULL);
	parsed_free(&p);
	buf_free(&b);
}
END_TEST

START_TEST(ret_full)
{
	struct dsn_rcpt rc = { .addr = "alice@dest.example", .action = DSN_FAILED,
		.reply = "550 5.1.1 unknown" };
	struct dsn_report r = report(&rc, 1);
	struct parsed p;
	struct buf b;

	r.ret_full = true;
	compose(&r, &b, &p);
	ck_assert(g_mime_content_type_is_type(g_mime_object_get_content_type(p.part[2]), "message",
	    "rfc822"));
	ck_assert(strstr(p.orig, "Subject: Your order 1234") != NULL);
	ck_assert(strstr(p.orig, "TRACKING-BODY-LINE") != NULL);
	parsed_free(&p);
	buf_free(&b);
}
END_TEST

START_TEST(ret_full_body_gone)
{
	struct dsn_rcpt rc = { .addr = "alice@dest.example", .action = DSN_FAILED,
		.reply = "550 5.1.1 unknown" };
	struct dsn_report r = report(&rc, 1);
	struct parsed p;
	struct buf b;

	r.ret_full = true;
	r.body = NULL;
	r.body_len = 0;
	compose(&r, &b, &p);
	ck_assert(g_mime_content_type_is_type(g_mime_object_get_content_type(p.part[2]), "text",
	    "rfc822-headers"));
	ck_assert(strstr(p.orig, "Message-ID: <order-1234@shop.example>") != NULL);
	ck_assert(strstr(b.data, "TRACKING-BODY-LINE") == NULL);
	parsed_free(&p);
	buf_free(&b);
}
END_TEST

START_TEST(several_rcpts)
{
	struct dsn_rcpt rc[] = {
		{ .addr = "a@one.example", .action = DSN_FAILED, .reply = "550 5.1.1 no such user",
		  .remote_mta = "mx.one.example[192.0.2.1]" },
		{ .addr = "b@one.example", .action = DSN_FAILED, .reply = "552 5.2.2 over quota",
		  .remote_mta = "mx.one.example[192.0.2.1]" },
		{ .addr = "c@two.example", .action = DSN_FAILED, .reply = "550 no status here",
		  .remote_mta = "[192.0.2.2]" },
	};
	struct dsn_report r = report(rc, 3);
	struct parsed p;
	struct buf b;

	compose(&r, &b, &p);
	ck_assert_int_eq(count(p.status, "\nFinal-Recipient:"), 3);
	ck_assert_int_eq(count(p.status, "\nAction: failed"), 3);
	ck_assert(has_field(p.status, "Final-Recipient", "rfc822; a@one.example\nAction: failed\nStatus: 5.1.1\n"));
	ck_assert(has_field(p.status, "Final-Recipient", "rfc822; b@one.example\nAction: failed\nStatus: 5.2.2\n"));
	ck_assert(has_field(p.status, "Final-Recipient", "rfc822; c@two.example\nAction: failed\nStatus: 5.0.0\n"));
	ck_assert(has_field(p.status, "Remote-MTA", "dns; 192.0.2.2\n"));
	ck_assert_int_eq(count(p.text, "(status "), 3);
	parsed_free(&p);
	buf_free(&b);
}
END_TEST

START_TEST(hostile_reply)
{
	static char longreply[5001];
	struct dsn_rcpt rc[] = {
		{ .addr = "a@one.example\r\nBcc: evil@x", .action = DSN_FAILED,
		  .reply = "550 5.7.1 bad\r\nInjected: yes\r\n\r\n--=_\x01\x80\xff end",
		  .remote_mta = "mx\r\nX: y[1.2.3.4]" },
		{ .addr = "b@one.example", .action = DSN_FAILED, .reply = longreply },
		{ .addr = "c@one.example", .action = DSN_FAILED, .reply = NULL },
	};
	struct dsn_report r = report(rc, 3);
	struct parsed p;
	struct buf b;
	char *diag;

	memcpy(longreply, "550 5.1.1 ", 10);
	for (size_t i = 10; i < 5000; i++)
		longreply[i] = i > 3000 && i % 500 == 0 ? ' ' : (char)('a' + i % 26);
	longreply[5000] = '\0';
	compose(&r, &b, &p);
	ck_assert(strstr(b.data, "\r\nInjected") == NULL);
	ck_assert(strstr(b.data, "\r\nBcc") == NULL);
	ck_assert(strstr(b.data, "\r\nX: y") == NULL);
	ck_assert(has_field(p.status, "Diagnostic-Code", "smtp; 550 5.7.1 bad Injected: yes --=_ ?? end\n"));
	ck_assert(has_field(p.status, "Final-Recipient", "rfc822; a@one.example Bcc: evil@x\n"));
	/* The long reply: cut to DSN_DIAG_MAX, folded, all there up to the cut. */
	diag = strstr(p.status, "Diagnostic-Code: smtp; 550 5.1.1 klmn");
	ck_assert_ptr_nonnull(diag);
	ck_assert(strstr(diag, "...") != NULL);
	ck_assert_int_eq(count(p.status, "\nFinal-Recipient:"), 3);
	ck_assert(has_field(p.status, "Final-Recipient", "rfc822; c@one.example\nAction: failed\nStatus: 5.0.0\n"));
	parsed_free(&p);
	buf_free(&b);
}
END_TEST

START_TEST(boundary_unique)
{
	static char evil_body[300];
	struct dsn_rcpt rc = { .addr = "a@one.example", .action = DSN_FAILED, .reply = "550 5.1.1 x" };
	struct dsn_report r = report(&rc, 1);
	struct parsed p;
	struct buf b;

	snprintf(evil_body, sizeof evil_body, "--=_%s/0.report.kurier\r\nContent-Type: text/plain\r\n\r\nfake\r\n",
	    r.unique);
	r.body = evil_body;
	r.body_len = strlen(evil_body);
	r.ret_full = true;
	compose(&r, &b, &p);
	ck_assert(strstr(b.data, "boundary=\"=_0123456789abcdef.1700000000000.1/1.report.kurier\"") != NULL);
	ck_assert(strstr(p.orig, "fake") != NULL);
	parsed_free(&p);
	buf_free(&b);
}
END_TEST

/* A remote server's reply quoting the boundary (found by fuzz_dsn) changes it too. */
START_TEST(boundary_not_in_reply)
{
	static char reply[300];
	struct dsn_rcpt rc = { .addr = "a@one.example", .action = DSN_FAILED, .reply = reply };
	struct dsn_report r = report(&rc, 1);
	struct parsed p;
	struct buf b;

	snprintf(reply, sizeof reply, "550 5.1.1 --=_%s/0.report.kurier", r.unique);
	compose(&r, &b, &p);
	ck_assert(strstr(b.data, "boundary=\"=_0123456789abcdef.1700000000000.1/1.report.kurier\"") != NULL);
	ck_assert(has_field(p.status, "Diagnostic-Code", "smtp; 550 5.1.1 --=_"));
	parsed_free(&p);
	buf_free(&b);
}
END_TEST

START_TEST(eight_bit)
{
	static const char h8[] = "Subject: Gr\xc3\xbc\xc3\x9f" "e\r\nFrom: a@b.example\r\n\r\n";
	struct dsn_rcpt rc = { .addr = "a@one.example", .action = DSN_FAILED, .reply = "550 5.1.1 x" };
	struct dsn_report r = report(&rc, 1);
	struct parsed p;
	struct buf b;

	r.head = h8;
	r.head_len = sizeof h8 - 1;
	compose(&r, &b, &p);
	ck_assert(strstr(b.data, "Content-Transfer-Encoding: 8bit") != NULL);
	parsed_free(&p);
	buf_free(&b);
}
END_TEST

START_TEST(bad_args)
{
	struct dsn_rcpt rc = { .addr = "a@one.example", .action = DSN_FAILED };
	struct dsn_report r = report(&rc, 0);
	struct buf b = BUF_INIT;

	ck_assert_int_eq(dsn_compose(&r, &b), -EINVAL);
	r = report(&rc, 1);
	r.unique = "";
	ck_assert_int_eq(dsn_compose(&r, &b), -EINVAL);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
}
END_TEST

static const struct status_case {
	const char *reply;
	enum dsn_action action;
	bool expired;
	const char *want;
} status_cases[] = {
	{ "550 5.1.1 no such user", DSN_FAILED, false, "5.1.1" },
	{ "550-5.1.1 continued", DSN_FAILED, false, "5.1.1" },
	{ "550 4.1.1 class disagrees", DSN_FAILED, false, "5.0.0" },
	{ "421 4.4.2 lost", DSN_FAILED, false, "4.4.2" },
	{ "451 4.7.1 greylisted", DSN_DELAYED, false, "4.7.1" },
	{ "250 2.0.0 ok", DSN_DELIVERED, false, "2.0.0" },
	{ "250 ok", DSN_DELIVERED, false, "2.0.0" },
	{ "250 2.6.0 queued", DSN_DELIVERED, false, "2.6.0" },
	{ "554 refused", DSN_FAILED, false, "5.0.0" },
	{ "5.1.2 kurier: domain has no MX", DSN_FAILED, false, "5.1.2" },
	{ "550 5.1.1 x", DSN_FAILED, true, "4.4.7" },
	{ NULL, DSN_FAILED, false, "5.0.0" },
	{ NULL, DSN_DELAYED, false, "4.0.0" },
	{ "", DSN_DELIVERED, false, "2.0.0" },
	{ "550 5.1234.1 bad", DSN_FAILED, false, "5.0.0" },
	{ "550 5.1.1x bad", DSN_FAILED, false, "5.0.0" },
	{ "5", DSN_FAILED, false, "5.0.0" },
};

START_TEST(status_table)
{
	const struct status_case *c = &status_cases[_i];
	struct dsn_rcpt rc = { .addr = "a@b", .action = c->action, .expired = c->expired,
		.reply = c->reply };
	char st[16];

	dsn_status(&rc, st);
	ck_assert_str_eq(st, c->want);
}
END_TEST

START_TEST(date)
{
	char d[40];

	dsn_date(0, d);
	ck_assert_str_eq(d, "Thu, 01 Jan 1970 00:00:00 +0000");
	dsn_date(1796601600000ULL, d);
	ck_assert_str_eq(d, "Mon, 07 Dec 2026 00:00:00 +0000");
}
END_TEST

/* GMime is set up once per process and never shut down (it cannot be set up again). */
static void
gmime_up(void)
{
	static bool done;

	if (!done)
		g_mime_init();
	done = true;
}

Suite *
dsn_suite(void)
{
	Suite *s = suite_create("dsn");
	TCase *tc = tcase_create("compose");

	tcase_add_checked_fixture(tc, gmime_up, NULL);
	tcase_add_test(tc, failed_one);
	tcase_add_test(tc, expired);
	tcase_add_test(tc, delayed);
	tcase_add_test(tc, delivered);
	tcase_add_test(tc, envid_orcpt);
	tcase_add_test(tc, ret_full);
	tcase_add_test(tc, ret_full_body_gone);
	tcase_add_test(tc, several_rcpts);
	tcase_add_test(tc, hostile_reply);
	tcase_add_test(tc, boundary_unique);
	tcase_add_test(tc, boundary_not_in_reply);
	tcase_add_test(tc, eight_bit);
	tcase_add_test(tc, bad_args);
	tcase_add_loop_test(tc, status_table, 0, NELEM(status_cases));
	tcase_add_test(tc, date);
	suite_add_tcase(s, tc);
	return s;
}
