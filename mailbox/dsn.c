/*
 * dsn - compose RFC 3464 delivery status notifications.  See dsn.h.
 */
#include "mailbox/dsn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/xmalloc.h"

#define FOLD_AT 78       /* RFC 5322 2.1.1: SHOULD be no more than 78 */
#define WRAP_AT 76       /* the text part */
#define PIECE_MAX 900    /* longest run without a space put on one line */

static const char *const wdays[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
	"Aug", "Sep", "Oct", "Nov", "Dec" };

void
dsn_date(uint64_t ms, char dst[40])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(dst, 40, "%s, %02d %s %04d %02d:%02d:%02d +0000", wdays[tm.tm_wday % 7],
	    tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	    tm.tm_sec);
}

/*
 * clean - s as one line of printable US-ASCII: control bytes (CR, LF,
 * NUL, TAB, ...) become spaces, 8-bit bytes '?', runs of spaces one
 * space, no space at either end; cut at max bytes with "...".  The
 * caller frees it.
 */
static char *
clean(const char *s, size_t max)
{
	size_t len = s ? strlen(s) : 0, n = 0;
	char *out = xmalloc(len + 4);

	for (size_t i = 0; i < len && n < max; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			c = ' ';
		else if (c >= 0x80)
			c = '?';
		if (c == ' ' && (n == 0 || out[n - 1] == ' '))
			continue;
		out[n++] = (char)c;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	if (len > 0 && n >= max)
		memcpy(out + n, "...", 3), n += 3;
	out[n] = '\0';
	return out;
}

/*
 * put_words - append text (clean()ed: single spaces) starting at column
 * col, breaking lines before a word that would pass width with CRLF and
 * indent; a word longer than PIECE_MAX is cut into pieces, each on a
 * line of its own.  Returns the column after the last byte.
 */
static size_t
put_words(struct buf *out, size_t col, const char *text, size_t width, const char *indent)
{
	size_t ilen = strlen(indent);
	const char *p = text;
	bool first = true;

	while (*p != '\0') {
		const char *sp = strchr(p, ' ');
		size_t wlen = sp ? (size_t)(sp - p) : strlen(p);

		while (wlen > 0) {
			size_t piece = wlen > PIECE_MAX ? PIECE_MAX : wlen;

			if (!first && col + 1 + piece > width && col > ilen) {
				buf_appends(out, "\r\n");
				buf_appends(out, indent);
				col = ilen;
				/* A folded header line must not start bare: indent holds its WSP. */
			} else if (!first) {
				buf_appendc(out, ' ');
				col++;
			}
			buf_append(out, p, piece);
			col += piece;
			p += piece;
			wlen -= piece;
			first = false;
			if (wlen > 0 && col > ilen) {
				/* The rest of a long run goes on its own line. */
				buf_appends(out, "\r\n");
				buf_appends(out, indent);
				col = ilen;
				first = true;
			}
		}
		if (sp == NULL)
			break;
		p = sp + 1;
	}
	return col;
}

/* field - "Name: value" with value clean()ed and folded. */
static void
field(struct buf *out, const char *name, const char *value, size_t max)
{
	char *v = clean(value, max);

	buf_appends(out, name);
	buf_appends(out, ": ");
	put_words(out, strlen(name) + 2, v, FOLD_AT, " ");
	buf_appends(out, "\r\n");
	free(v);
}

/* para - a paragraph of the text part, wrapped, then an empty line. */
static void
para(struct buf *out, const char *indent, const char *text)
{
	char *v = clean(text, DSN_DIAG_MAX + 200);

	buf_appends(out, indent);
	put_words(out, strlen(indent), v, WRAP_AT, indent);
	buf_appends(out, "\r\n\r\n");
	free(v);
}

/* reply_parse - the basic code (0 when none) and the enhanced code ("" when none) of reply. */
static void
reply_parse(const char *reply, int *code, char enh[16])
{
	const char *p = reply ? reply : "";
	size_t n;

	*code = 0;
	enh[0] = '\0';
	while (*p == ' ')
		p++;
	if (p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
	    p[2] <= '9' && (p[3] == ' ' || p[3] == '-' || p[3] == '\0')) {
		*code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		p += 3;
		while (*p == ' ' || *p == '-')
			p++;
	}
	/* class "." subject "." detail: 1 digit, 1-3 digits, 1-3 digits (RFC 3463 2). */
	if (!(p[0] == '2' || p[0] == '4' || p[0] == '5') || p[1] != '.')
		return;
	n = 2;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;

		while (p[n + d] >= '0' && p[n + d] <= '9' && d < 4)
			d++;
		if (d == 0 || d > 3)
			return;
		n += d;
		if (part == 0) {
			if (p[n] != '.')
				return;
			n++;
		}
	}
	if (p[n] != '\0' && p[n] != ' ' && p[n] != ';' && p[n] != ',')
		return;
	memcpy(enh, p, n);
	enh[n] = '\0';
}

void
dsn_status(const struct dsn_rcpt *rc, char dst[16])
{
	char want, enh[16];
	int code;

	if (rc->expired && rc->action == DSN_FAILED) {
		memcpy(dst, "4.4.7", 6);
		return;
	}
	reply_parse(rc->reply, &code, enh);
	if (enh[0] != '\0' && code != 0 && enh[0] - '0' != code / 100)
		enh[0] = '\0';
	if (enh[0] == '\0' && code != 0)
		snprintf(enh, sizeof enh, "%d.0.0", code / 100);
	want = rc->action == DSN_DELIVERED ? '2' : rc->action == DSN_DELAYED ? '4' : '5';
	/* A failure may carry a persistent transient code (4.4.7 style); else the class must agree. */
	if (enh[0] == want || (rc->action == DSN_FAILED && enh[0] == '4'))
		memcpy(dst, enh, strlen(enh) + 1);
	else
		snprintf(dst, 16, "%c.0.0", want);
}

/* advice - what to do about a recipient, from its action and status. */
static const char *
advice(const struct dsn_rcpt *rc, const char *st)
{
	const char *sd = strchr(st, '.') + 1;  /* subject.detail */

	if (rc->action == DSN_DELIVERED)
		return "The message was delivered to the recipient's mail server. Nothing needs to be done.";
	if (rc->action == DSN_DELAYED)
		return "The recipient's server has not taken the message yet. This is a warning only: "
		    "delivery will be tried again until the time given below, and you will be told if it fails.";
	if (strcmp(st, "4.4.7") == 0)
		return "The message could not be delivered before its lifetime ran out: the recipient's "
		    "server kept deferring it or could not be reached. Check the address; send the message "
		    "again later or to another address.";
	if (strcmp(sd, "1.2") == 0)
		return "The recipient's domain does not exist or takes no mail. Check the part of the "
		    "address after the @.";
	if (strncmp(sd, "1.", 2) == 0)
		return "The address does not exist at the recipient's domain. Check the address for typos, "
		    "or ask the recipient for a working one; do not send to it again as it is.";
	if (strcmp(sd, "2.2") == 0)
		return "The recipient's mailbox is full. Try again later, or reach the recipient another way.";
	if (strcmp(sd, "2.3") == 0 || strcmp(sd, "3.4") == 0)
		return "The message is too large for the recipient's server. Send it again with smaller "
		    "attachments, or share large files by a link.";
	if (strncmp(sd, "2.", 2) == 0)
		return "The recipient's mailbox is disabled or takes no mail. Ask the recipient for a "
		    "working address.";
	if (strncmp(sd, "7.", 2) == 0)
		return "The recipient's server refused the message as spam or by its policy. Check your "
		    "content, and that your domain's DKIM and SPF records are published and pass "
		    "(kurierctl dns DOMAIN --check).";
	if (strncmp(sd, "4.", 2) == 0)
		return "The recipient's mail server could not be reached. Check the domain of the address; "
		    "if it is right, try again later.";
	return "The recipient's server refused the message; its reply above says why. Check the "
	    "address and the message, then try again.";
}

static const char *
action_name(enum dsn_action a)
{
	return a == DSN_DELIVERED ? "delivered" : a == DSN_DELAYED ? "delayed" : "failed";
}

/* mta_name - the host name of "name[address]" (or the address when there is no name). */
static void
mta_name(const char *mta, char *dst, size_t size)
{
	const char *br = strchr(mta, '[');
	size_t n = br ? (size_t)(br - mta) : strlen(mta);

	if (n == 0 && br != NULL) {
		const char *end = strchr(br, ']');

		mta = br + 1;
		n = end ? (size_t)(end - mta) : strlen(mta);
	}
	if (n >= size)
		n = size - 1;
	memcpy(dst, mta, n);
	dst[n] = '\0';
}

/* envid_text - the ENVID printable: bytes outside 33..126 (and '+') as xtext "+XX". */
static char *
envid_text(const char *s)
{
	size_t len = strlen(s);
	char *out = xmalloc(len * 3 + 1), *o = out;

	for (size_t i = 0; i < len && i < 1000; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 33 || c > 126 || c == '+')
			o += sprintf(o, "+%02X", c);
		else
			*o++ = (char)c;
	}
	*o = '\0';
	return out;
}

static bool
has_8bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

/* contains - whether needle occurs in p[0..n). */
static bool
contains(const char *p, size_t n, const char *needle)
{
	size_t nl = strlen(needle);

	for (size_t i = 0; nl <= n && i <= n - nl; i++)
		if (p[i] == needle[0] && memcmp(p + i, needle, nl) == 0)
			return true;
	return false;
}

/*
 * put_original - the original message (head, and body with RET=FULL)
 * with CRLF line ends; a line longer than 998 octets (never accepted
 * by kurier's SMTP server, but the record is not trusted) is broken.
 */
static void
put_lines(struct buf *out, const char *p, size_t n)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (c == '\r' && i + 1 < n && p[i + 1] == '\n')
			continue;
		if (c == '\n' || c == '\r') {
			buf_appends(out, "\r\n");
			col = 0;
			continue;
		}
		if (col == 998) {
			buf_appends(out, "\r\n");
			col = 0;
		}
		buf_appendc(out, c);
		col++;
	}
	if (col > 0)
		buf_appends(out, "\r\n");
}

/* head_trimmed - the header section without its ending empty line(s). */
static size_t
head_trimmed(const char *h, size_t n)
{
	while (n > 0 && (h[n - 1] == '\n' || h[n - 1] == '\r')) {
		if (n >= 2 && h[n - 1] == '\n' && h[n - 2] == '\r')
			n -= 2;
		else
			n--;
	}
	return n;
}

static void
text_part(struct buf *out, const struct dsn_report *r, bool any_failed, bool any_delayed)
{
	char line[600], st[16], date[40];

	snprintf(line, sizeof line, "This is the mail system at host %s.", r->hostname);
	para(out, "", line);
	if (any_failed)
		para(out, "", "Your message could not be delivered to one or more recipients. "
		    "The details are below, and the message (or its header) is attached.");
	else if (any_delayed) {
		dsn_date(r->retry_until_ms, date);
		snprintf(line, sizeof line, "Your message has not been delivered yet to one or more "
		    "recipients. This is a warning only; delivery will be tried until %s.", date);
		para(out, "", line);
	} else
		para(out, "", "Your message was delivered to the following recipients.");
	for (size_t i = 0; i < r->nrcpt; i++) {
		const struct dsn_rcpt *rc = &r->rcpt[i];
		char *addr = clean(rc->addr, 600);
		struct buf b = BUF_INIT;

		dsn_status(rc, st);
		snprintf(line, sizeof line, "<%s>: %s (status %s)", addr, action_name(rc->action), st);
		para(out, "", line);
		if (rc->reply != NULL && rc->reply[0] != '\0') {
			char *reply = clean(rc->reply, DSN_DIAG_MAX);

			if (rc->remote_mta != NULL && rc->remote_mta[0] != '\0')
				buf_appendf(&b, "The mail server %s said: %s", rc->remote_mta, reply);
			else
				buf_appendf(&b, "The last reply was: %s", reply);
			para(out, "    ", b.data);
			free(reply);
		}
		para(out, "    ", advice(rc, st));
		buf_free(&b);
		free(addr);
	}
	if (r->queue_id != NULL) {
		snprintf(line, sizeof line, "Queue id: %s", r->queue_id);
		para(out, "", line);
	}
}

static void
status_part(struct buf *out, const struct dsn_report *r)
{
	char date[40], st[16], mta[300];

	buf_appendf(out, "Reporting-MTA: dns; %s\r\n", r->hostname);
	if (r->envid != NULL && r->envid[0] != '\0') {
		char *e = envid_text(r->envid);

		field(out, "Original-Envelope-Id", e, 4000);
		free(e);
	}
	if (r->arrival_ms != 0) {
		dsn_date(r->arrival_ms, date);
		buf_appendf(out, "Arrival-Date: %s\r\n", date);
	}
	for (size_t i = 0; i < r->nrcpt; i++) {
		const struct dsn_rcpt *rc = &r->rcpt[i];
		struct buf v = BUF_INIT;

		buf_appends(out, "\r\n");
		if (rc->orcpt != NULL && rc->orcpt[0] != '\0') {
			/* ORCPT is stored "addr-type;address"; a bare address is rfc822. */
			if (strchr(rc->orcpt, ';') == NULL)
				buf_appends(&v, "rfc822;");
			buf_appends(&v, rc->orcpt);
			field(out, "Original-Recipient", v.data, 1000);
			buf_reset(&v);
		}
		buf_appendf(&v, "rfc822; %s", rc->addr ? rc->addr : "");
		field(out, "Final-Recipient", v.data, 1000);
		buf_reset(&v);
		buf_appendf(out, "Action: %s\r\n", action_name(rc->action));
		dsn_status(rc, st);
		buf_appendf(out, "Status: %s\r\n", st);
		if (rc->remote_mta != NULL && rc->remote_mta[0] != '\0') {
			mta_name(rc->remote_mta, mta, sizeof mta);
			buf_appendf(&v, "dns; %s", mta);
			field(out, "Remote-MTA", v.data, 400);
			buf_reset(&v);
		}
		if (rc->reply != NULL && rc->reply[0] != '\0') {
			int code;
			char enh[16];

			reply_parse(rc->reply, &code, enh);
			/* "smtp" for a server's reply; what kurier said itself is its own. */
			buf_appendf(&v, "%s; %s", code != 0 ? "smtp" : "X-Kurier", rc->reply);
			field(out, "Diagnostic-Code", v.data, DSN_DIAG_MAX + 16);
			buf_reset(&v);
		}
		if (rc->last_attempt_ms != 0) {
			dsn_date(rc->last_attempt_ms, date);
			buf_appendf(out, "Last-Attempt-Date: %s\r\n", date);
		}
		if (rc->action == DSN_DELAYED && r->retry_until_ms != 0) {
			dsn_date(r->retry_until_ms, date);
			buf_appendf(out, "Will-Retry-Until: %s\r\n", date);
		}
		buf_free(&v);
	}
}

int
dsn_compose(const struct dsn_report *r, struct buf *out)
{
	bool any_failed = false, any_delayed = false, full, eight;
	char date[40], boundary[160];
	struct buf text = BUF_INIT, status = BUF_INIT;
	size_t hlen;
	unsigned tries = 0;

	if (r->nrcpt == 0 || r->hostname == NULL || r->hostname[0] == '\0' || r->unique == NULL ||
	    r->unique[0] == '\0')
		return -EINVAL;
	for (size_t i = 0; i < r->nrcpt; i++) {
		any_failed |= r->rcpt[i].action == DSN_FAILED;
		any_delayed |= r->rcpt[i].action == DSN_DELAYED;
	}
	hlen = r->head ? head_trimmed(r->head, r->head_len) : 0;
	full = r->ret_full && r->body != NULL;
	text_part(&text, r, any_failed, any_delayed);
	status_part(&status, r);
	eight = has_8bit(r->head ? r->head : "", hlen) || (full && has_8bit(r->body, r->body_len));

	/*
	 * A boundary that no part holds (RFC 2046 5.1.1): not the original
	 * message, and not the text or status parts, which quote the remote
	 * server's replies.
	 */
	do {
		snprintf(boundary, sizeof boundary, "=_%s/%u.report.kurier", r->unique, tries++);
	} while ((contains(r->head ? r->head : "", r->head ? r->head_len : 0, boundary) ||
	    (full && contains(r->body, r->body_len, boundary)) ||
	    contains(text.data, text.len, boundary) ||
	    contains(status.data, status.len, boundary)) && tries < 1000);

	dsn_date(r->now_ms, date);
	buf_appendf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", r->hostname);
	if (r->to != NULL && r->to[0] != '\0') {
		char *to = clean(r->to, 600);

		buf_appendf(out, "To: <%s>\r\n", to);
		free(to);
	} else
		buf_appends(out, "To: undisclosed-recipients:;\r\n");
	buf_appendf(out, "Subject: %s\r\n", any_failed ? "Undelivered Mail Returned to Sender" :
	    any_delayed ? "Delivery Status Notification (Delay)" :
	    "Delivery Status Notification (Success)");
	buf_appendf(out, "Date: %s\r\n", date);
	buf_appendf(out, "Message-ID: <%s.report@%s>\r\n", r->unique, r->hostname);
	buf_appends(out, "Auto-Submitted: auto-replied\r\n");
	if (r->queue_id != NULL)
		field(out, "X-Kurier-Queue-Id", r->queue_id, 64);
	buf_appends(out, "MIME-Version: 1.0\r\n");
	buf_appendf(out, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n", boundary);
	if (eight)
		buf_appends(out, "Content-Transfer-Encoding: 8bit\r\n");
	buf_appends(out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	buf_appendf(out, "--%s\r\n", boundary);
	buf_appends(out, "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	buf_append(out, text.data, text.len);

	buf_appendf(out, "--%s\r\n", boundary);
	buf_appends(out, "Content-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n");
	buf_append(out, status.data, status.len);
	buf_appends(out, "\r\n");

	buf_appendf(out, "--%s\r\n", boundary);
	if (full) {
		buf_appends(out, "Content-Description: Undelivered Message\r\n"
		    "Content-Type: message/rfc822\r\n");
		if (eight)
			buf_appends(out, "Content-Transfer-Encoding: 8bit\r\n");
		buf_appends(out, "\r\n");
		put_lines(out, r->head, hlen);
		buf_appends(out, "\r\n");
		put_lines(out, r->body, r->body_len);
	} else {
		buf_appends(out, "Content-Description: Undelivered Message Headers\r\n"
		    "Content-Type: text/rfc822-headers\r\n");
		if (eight)
			buf_appends(out, "Content-Transfer-Encoding: 8bit\r\n");
		buf_appends(out, "\r\n");
		if (r->head != NULL)
			put_lines(out, r->head, hlen);
	}
	buf_appendf(out, "\r\n--%s--\r\n", boundary);
	buf_free(&text);
	buf_free(&status);
	return 0;
}
