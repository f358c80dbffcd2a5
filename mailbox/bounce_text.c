/*
 * bounce_text - the non-standard bounces, read from their text: qmail
 * ("<addr>:" blocks), Exim ("  addr" then the server's reply), old
 * Sendmail transcripts, Exchange and Office 365, Gmail, Yahoo, Amazon
 * SES and the like.  None of them has a grammar; what they share is
 * that the failed address stands alone on a line, or after a phrase
 * such as "delivery to" or "RCPT TO:", and that the remote server's
 * reply (an SMTP reply code, usually with an RFC 3463 enhanced status
 * code) follows it.
 *
 * The text that counts is the human-readable part before the returned
 * message (cut at "--- Below this line is a copy of the message",
 * "------ This is a copy of the message", "----- Original message
 * -----" and their kin), so the returned message's own addresses are
 * never taken for the failed recipient.  A message is a bounce only if
 * its sender or subject says so (MAILER-DAEMON, postmaster, "Undelivered
 * Mail Returned to Sender", ...) or its text carries a known bounce
 * phrase, and only if a recipient and either a status code or such a
 * phrase are found: a notice without either (a mailbox-full note in
 * free words) is not claimed as a bounce.
 *
 * A recipient with no code in its text gets the first code of the
 * whole text; with none at all, "5.0.0" when the text says the failure
 * is permanent and "4.0.0" when it says delivery is delayed.  A bare
 * reply code becomes "5.0.0" or "4.0.0" (RFC 3463 "other undefined").
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "mailbox/bounce.h"
#include "mailbox/bounce_int.h"

/* Lines at which the returned message starts (case ignored, after leading space and dashes). */
static const char *const cut_marks[] = {
	"below this line is a copy of the message",
	"this is a copy of the message",
	"original message follows",
	"original message -----",
	"original message ----",
	"original message:",
	"unsent message below",
	"unsent message follows",
	"message headers follow",
	"the header of the original message",
	"header of the original message",
	"original message header",
	"included is a copy of the message",
	"the original message was:",
	"original message headers",
	"content-type: message/rfc822",
	"headers of the original message",
	"message text follows",
	NULL,
};

/* Phrases that only bounces write (lower case). */
static const char *const signatures[] = {
	"this is the qmail-send program",
	"created automatically by mail delivery software",
	"permanent fatal errors",
	"delivery has failed to these recipients",
	"delivery to the following recipient",
	"delivery to the following recipients",
	"could not be delivered",
	"couldn't be delivered",
	"could not deliver",
	"couldn't deliver",
	"was not delivered",
	"wasn't delivered",
	"has not been delivered",
	"not be delivered",
	"unable to deliver",
	"undeliverable",
	"undelivered mail",
	"delivery failed",
	"delivery failure",
	"failed permanently",
	"permanent error",
	"permanent failure",
	"did not like our",
	"didn't like our",
	"remote server returned",
	"message could not be",
	"your message to",
	"failed to deliver",
	"returned mail",
	"mail delivery failed",
	"delivery status notification",
	"the following address",
	"the following recipient",
	"this is an automatically generated delivery status notification",
	"delivery notification",
	"temporary failure",
	"will keep trying",
	"still trying",
	"could not send message for past",
	"has been delayed",
	"delivery delayed",
	"delivery is delayed",
	"not yet been delivered",
	"message was blocked",
	"smtp error",
	"mail could not be",
	"this is the mail system at",
	"no such user",
	"user unknown",
	"we were unable to deliver",
	"the group you tried to contact",
	"グループ",
	"не может быть доставлено",
	"nicht zugestellt",
	"unzustellbar",
	"non remis",
	"non recapitabile",
	"mail delivery system",
	"attempting to deliver",
	"failed addresses follow",
	"not a member of this mailing list",
	"error delivering your mail",
	NULL,
};

/* Subjects that name a failed delivery outright (lower case). */
static const char *const failure_subjects[] = {
	"undeliverable",
	"undelivered",
	"delivery status notification (failure)",
	"failure notice",
	"returned mail",
	"mail delivery failed",
	"delivery failure",
	"non-deliverable",
	"nondeliverable",
	"not delivered",
	"delivery has failed",
	"delivery status notification: failed",
	"mail system error",
	"unzustellbar",
	"non remis",
	"mail failure",
	"mail failed",
	NULL,
};

/* Subjects of bounces (lower case). */
static const char *const bounce_subjects[] = {
	"undeliver",
	"undelivered",
	"delivery status",
	"delivery failure",
	"delivery fail",
	"failure notice",
	"returned mail",
	"mail delivery failed",
	"delivery report",
	"delivery notification",
	"returned to sender",
	"mail system error",
	"could not send message",
	"delayed",
	"nondeliverable",
	"non-deliverable",
	"not delivered",
	"postmaster notify",
	"mail failure",
	"delivery problem",
	"message you sent",
	"notice: mail delivery",
	"unzustellbar",
	"non remis",
	"warning:",
	"bounce",
	"aws notification",
	"rejected",
	"error",
	NULL,
};

static bool
lower_has(const char *s, size_t len, const char *needle)
{
	return bounce__ci_find(s, len, needle) >= 0;
}

/* returned_header - p starts a field that only a returned message's header starts with. */
static bool
returned_header(const char *p)
{
	return strncasecmp(p, "Return-Path:", 12) == 0 || strncasecmp(p, "Received: from", 14) == 0 ||
	    strncasecmp(p, "Received: (", 11) == 0 || strncasecmp(p, "DKIM-Signature:", 15) == 0;
}

/* human_len - how much of the text comes before the returned message. */
static size_t
human_len(const char *s, size_t len)
{
	const char *p = s, *end = s + len;
	bool blank_before = false;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol != NULL ? eol + 1 : end;
		const char *t = p;
		size_t tl;

		while (t < next && *t != '\0' && strchr(" \t-=*_#", *t) != NULL)
			t++;
		tl = (size_t)(next - t);
		for (int i = 0; cut_marks[i] != NULL; i++)
			if (lower_has(t, tl, cut_marks[i]) && p != s)
				return (size_t)(p - s);
		/* A header block of a returned message, after a blank line. */
		if (blank_before && p != s && returned_header(p))
			return (size_t)(p - s);
		blank_before = (size_t)(next - p) <= 2 && (p[0] == '\n' || p[0] == '\r');
		p = next;
	}
	return len;
}

static bool
local_is(const char *addr, const char *name)
{
	size_t n = strlen(name);

	return strncasecmp(addr, name, n) == 0 && addr[n] == '@';
}

/* daemon_addr - a mail system's own address, never a failed recipient. */
static bool
daemon_addr(const char *a)
{
	return local_is(a, "mailer-daemon") || local_is(a, "mailerdaemon") ||
	    local_is(a, "mdaemon");
}

/* bouncey - the sender or the subject says this is a bounce. */
static bool
bouncey(const struct bounce_scan *sc)
{
	static const char *const froms[] = { "mailer-daemon", "postmaster", "mail delivery",
		"mailerdaemon", "mdaemon", "mail administrator", "mailer daemon", "mail system", "delivery",
		"no-reply@sns.amazonaws.com", "bounce", "mailer_daemon", NULL };

	for (int i = 0; froms[i] != NULL; i++)
		if (strcasestr(sc->from, froms[i]) != NULL)
			return true;
	for (int i = 0; bounce_subjects[i] != NULL; i++)
		if (strcasestr(sc->subject, bounce_subjects[i]) != NULL)
			return true;
	return false;
}

static bool
signed_text(const char *s, size_t len)
{
	for (int i = 0; signatures[i] != NULL; i++)
		if (lower_has(s, len, signatures[i]))
			return true;
	return false;
}

/* --- addresses ---------------------------------------------------------------------- */

struct anchor {
	char *addr;
	size_t line; /* offset of its line in the text */
};

struct anchors {
	struct anchor *a;
	size_t n;
};

/* excluded - an address that is not the failed recipient: the bounce's own parties. */
static bool
excluded(const char *a, size_t alen, const struct bounce_scan *sc, bool strict)
{
	char tmp[512];

	if (alen >= sizeof tmp)
		return true;
	memcpy(tmp, a, alen);
	tmp[alen] = '\0';
	if (daemon_addr(tmp))
		return true;
	if (!strict)
		return false;
	if (sc->to[0] != '\0' && strcasestr(sc->to, tmp) != NULL)
		return true;
	if (sc->from[0] != '\0' && strcasestr(sc->from, tmp) != NULL)
		return true;
	return false;
}

static void
anchor_add(struct anchors *as, const char *a, size_t alen, size_t line)
{
	char *s = NULL;

	for (size_t i = 0; i < as->n; i++)
		if (strlen(as->a[i].addr) == alen && strncasecmp(as->a[i].addr, a, alen) == 0)
			return;
	if (as->n >= BOUNCE_RCPT_MAX)
		return;
	bounce__set(&s, a, alen);
	as->a = xreallocarray(as->a, as->n + 1, sizeof *as->a);
	as->a[as->n].addr = s;
	as->a[as->n].line = line;
	as->n++;
}

/*
 * alone - the line holds an address and next to nothing else:
 * "  addr", "<addr>:", "<addr>... User unknown", "addr (generated from
 * x)", "addr: 550 ...".  *at and *alen: the address.
 */
static bool
alone(const char *l, size_t len, size_t *at, size_t *alen)
{
	size_t i = 0, e;

	while (i < len && (l[i] == ' ' || l[i] == '\t' || l[i] == '*' || l[i] == '-'))
		i++;
	if (i < len && l[i] == '<')
		i++;
	if (!bounce__find_addr(l + i, len - i, at, alen) || *at != 0)
		return false;
	*at += i;
	e = *at + *alen;
	if (e < len && l[e] == '>')
		e++;
	while (e < len && (l[e] == ' ' || l[e] == '\t' || l[e] == '\r'))
		e++;
	if (e >= len)
		return true;
	/* What may follow the address on its line. */
	return l[e] == ':' || l[e] == ',' || l[e] == ';' || l[e] == '(' || l[e] == '[' ||
	    strncmp(l + e, "...", 3) == 0 || l[e] == '"';
}

/* Phrases after which the first address on the line is the failed recipient. */
static const char *const rcpt_phrases[] = {
	"rcpt to:",
	"rcpt to: ",
	"recipient:",
	"recipients:",
	"recipient address:",
	"original-recipient:",
	"final-recipient:",
	"failed recipient:",
	"addressee:",
	"delivery to ",
	"delivering your mail to ",
	"your message to ",
	"your mail to ",
	"message to ",
	"mail to ",
	"deliver to ",
	"delivered to ",
	"could not be delivered to",
	"address:",
	"to:",
	"user ",
	"mailbox ",
	"invalid address",
	"recipient ",
	"for <",
	"to <",
	"unknown user",
	"destinataire",
	"empfänger",
	NULL,
};

static void
alone_anchors(const struct bounce_scan *sc, const char *s, size_t len, struct anchors *as,
    bool strict)
{
	const char *p = s, *end = s + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t ll = (size_t)((eol != NULL ? eol : end) - p), at, alen;

		if (alone(p, ll, &at, &alen) && !excluded(p + at, alen, sc, strict))
			anchor_add(as, p + at, alen, (size_t)(p - s));
		p = eol != NULL ? eol + 1 : end;
	}
}

/*
 * find_anchors - the failed recipients named in s and the lines they
 * stand on: addresses alone on their lines, else after a phrase, else
 * the first address of the text.  The bounce's own From and To are
 * passed over, unless an address alone on its line is one of them and
 * nothing else is found (a sender who wrote to itself).
 */
static void
find_anchors(const struct bounce_scan *sc, const char *s, size_t len, struct anchors *as)
{
	const char *p, *end = s + len;

	alone_anchors(sc, s, len, as, true);
	if (as->n > 0)
		return;
	/* Second: the first address after a phrase that names it. */
	for (p = s; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t ll = (size_t)((eol != NULL ? eol : end) - p);

		for (int i = 0; rcpt_phrases[i] != NULL; i++) {
			size_t n = strlen(rcpt_phrases[i]), at, alen;

			long f = bounce__ci_find(p, ll, rcpt_phrases[i]);
			size_t k = (size_t)f;

			if (f >= 0 && bounce__find_addr(p + k + n, ll - k - n, &at, &alen) && at < 8 &&
			    !excluded(p + k + n + at, alen, sc, true))
				anchor_add(as, p + k + n + at, alen, (size_t)(p - s));
		}
		p = eol != NULL ? eol + 1 : end;
	}
	if (as->n > 0)
		return;
	/* Last: any address of the text that is not one of the bounce's parties. */
	for (size_t off = 0, at, alen; off < len && bounce__find_addr(s + off, len - off, &at, &alen);
	     off += at + alen) {
		if (!excluded(s + off + at, alen, sc, true)) {
			const char *ls = s + off + at;

			while (ls > s && ls[-1] != '\n')
				ls--;
			anchor_add(as, s + off + at, alen, (size_t)(ls - s));
			break;
		}
	}
	if (as->n == 0)
		alone_anchors(sc, s, len, as, false);
}

/* --- codes ------------------------------------------------------------------------ */

/* permanence - "5.0.0", "4.0.0" or "" from what the text says. */
static const char *
permanence(const char *s, size_t len)
{
	static const char *const later[] = { "will keep trying", "will retry", "still trying",
		"delayed", "temporar", "not yet been delivered", "could not send message for past",
		"will be retried", "continue trying", "try again", NULL };
	static const char *const never[] = { "permanent", "failed permanently", "could not be delivered",
		"couldn't be delivered", "was not delivered", "undeliverable", "unable to deliver",
		"delivery has failed", "does not exist", "not be delivered", "failed", "rejected",
		"no such", "unknown", "not a member", "expired", "was aborted", "グループ",
		"не может быть доставлено", NULL };

	for (int i = 0; later[i] != NULL; i++)
		if (lower_has(s, len, later[i]))
			return "4.0.0";
	for (int i = 0; never[i] != NULL; i++)
		if (lower_has(s, len, never[i]))
			return "5.0.0";
	return "";
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* delay_notice - the text says delivery goes on: a warning, not a failure. */
static bool
delay_notice(const struct bounce_scan *sc, const char *s, size_t len)
{
	static const char *const phrases[] = { "will keep trying", "will retry", "still trying",
		"not yet been delivered", "could not send message for past", "has been delayed",
		"delivery is delayed", "delivery delayed", "will be retried", "continue trying",
		"will continue to", "no action is required on your part", NULL };

	if (strcasestr(sc->subject, "delay") != NULL || strcasestr(sc->subject, "warning") != NULL)
		return true;
	for (int i = 0; phrases[i] != NULL; i++)
		if (lower_has(s, len, phrases[i]))
			return true;
	return false;
}

/*
 * orig_block - the returned message's header: the part GMime found, else
 * the header fields that follow the text's cut.
 */
static void
orig_block(const struct bounce_scan *sc, const char **h, size_t *hl)
{
	size_t cut;
	const char *p, *end;

	*h = sc->orig.data;
	*hl = sc->orig.len;
	if (*hl > 0 || sc->text.len == 0)
		return;
	cut = human_len(sc->text.data, sc->text.len);
	p = sc->text.data + cut;
	end = sc->text.data + sc->text.len;
	/* Skip the marker line and anything before the first field. */
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *c = p;

		while (c < (eol != NULL ? eol : end) && (*c == ' ' || *c == '\t'))
			c++;
		while (c < (eol != NULL ? eol : end) && (isalnum((unsigned char)*c) || *c == '-'))
			c++;
		if (c > p && c < end && *c == ':')
			break;
		p = eol != NULL ? eol + 1 : end;
	}
	*h = p;
	*hl = (size_t)(end - p);
}

/*
 * text_reason - rc's reason from its diagnostic, else from its whole
 * paragraph par[0..len), else from the subject (bounce_class.c keeps it).
 */
static void
text_reason(const struct bounce_scan *sc, struct bounce_rcpt *rc, const char *par, size_t len)
{
	bool bad;
	char *seg;

	rc->reason = bounce__reason(rc->status, rc->diagnostic, &bad);
	if (strcmp(rc->reason, "unknown") == 0) {
		seg = xmemdup0(par, len);
		rc->reason = bounce__reason(rc->status, seg, &bad);
		free(seg);
	}
	if (strcmp(rc->reason, "unknown") == 0)
		rc->reason = bounce__reason(rc->status, sc->subject, &bad);
	/* Google Groups' refusal in any of its languages: as in English. */
	if (strcmp(rc->reason, "unknown") == 0 && ends_with(rc->recipient, "@googlegroups.com"))
		rc->reason = "policy-blocked";
}

/* --- the reader -------------------------------------------------------------------- */

bool
bounce__text(const struct bounce_scan *sc, struct bounce_result *r)
{
	const char *s = sc->text.data != NULL ? sc->text.data : "";
	size_t len = human_len(s, sc->text.len);
	struct anchors as = { NULL, 0 };
	char gstatus[16] = "";
	char *gdiag = NULL;
	long gat;
	const char *perm;
	bool sig, delayed, failed_subj, found = false;

	sig = signed_text(s, len);
	delayed = delay_notice(sc, s, len);
	if (!bouncey(sc) && !sig)
		return false;

	/* A delivery-status report pasted into the text reads as one. */
	if (lower_has(s, sc->text.len, "final-recipient:") && lower_has(s, sc->text.len, "status:")) {
		size_t before = r->nrcpt;

		bounce__status_text(s, sc->text.len, r);
		if (r->nrcpt > before)
			return true;
	}

	gat = bounce__code_in(s, len, gstatus, &gdiag);
	find_anchors(sc, s, len, &as);
	if (as.n == 0 && sc->x_failed[0] != '\0') {
		size_t at, alen;

		if (bounce__find_addr(sc->x_failed, strlen(sc->x_failed), &at, &alen))
			anchor_add(&as, sc->x_failed + at, alen, 0);
	}
	if (as.n == 0) {
		const char *h;
		size_t hl, at, alen;
		char *to;

		orig_block(sc, &h, &hl);
		to = hl > 0 ? bounce__field(h, hl, "To") : NULL;

		if (to != NULL && bounce__find_addr(to, strlen(to), &at, &alen))
			anchor_add(&as, to + at, alen, 0);
		free(to);
	}
	failed_subj = false;
	for (int i = 0; failure_subjects[i] != NULL; i++)
		if (strcasestr(sc->subject, failure_subjects[i]) != NULL)
			failed_subj = true;
	if (as.n == 0 || (gat < 0 && !sig && !failed_subj))
		goto out;

	perm = permanence(s, len);
	for (size_t i = 0; i < as.n; i++) {
		size_t from = as.a[i].line;
		size_t to = i + 1 < as.n ? as.a[i + 1].line : len;
		struct bounce_rcpt *rc;
		char status[16] = "";
		const char *perm_status;
		char *diag = NULL;

		if (to < from)
			to = len;
		rc = bounce__rcpt_add(r);
		bounce__set(&rc->recipient, as.a[i].addr, strlen(as.a[i].addr));
		if (bounce__code_in(s + from, to - from, status, &diag) >= 0) {
			str_copy(rc->status, status, sizeof rc->status);
			bounce__set(&rc->diagnostic, diag, strlen(diag));
		} else if (gstatus[0] != '\0') {
			str_copy(rc->status, gstatus, sizeof rc->status);
			bounce__set(&rc->diagnostic, gdiag, strlen(gdiag));
		} else {
			if (delayed)
				perm_status = "4.0.0";
			else if (failed_subj)
				perm_status = "5.0.0";
			else
				perm_status = perm;
			str_copy(rc->status, perm_status, sizeof rc->status);
			bounce__first_words(s + from, to - from, &diag);
			if (diag != NULL)
				bounce__set(&rc->diagnostic, diag, strlen(diag));
		}
		/* "addr [Connection timed out]", "addr: Domain does not exist": the rest of its line. */
		if (strlen(rc->diagnostic) < 12)
			bounce__rest_of_line(s + from, to - from, rc->recipient, &rc->diagnostic);
		/* When the code's own line says little, the lines after the address say more. */
		if (strlen(rc->diagnostic) < 12) {
			char *more = NULL;

			bounce__first_words(s + from, to - from, &more);
			if (more != NULL) {
				free(rc->diagnostic);
				rc->diagnostic = more;
			}
		}
		bounce__remote_of(s + from, to - from, &rc->remote_mta);
		text_reason(sc, rc, s + from, to - from);
		bounce__set(&rc->action, delayed ? "delayed" : "failed", delayed ? 7 : 6);
		free(diag);
		found = true;
	}
out:
	for (size_t i = 0; i < as.n; i++)
		free(as.a[i].addr);
	free(as.a);
	free(gdiag);
	return found;
}

/* --- the returned message's header --------------------------------------------------- */

void
bounce__orig_headers(const struct bounce_scan *sc, struct bounce_result *r)
{
	const char *h;
	size_t hl;
	char *mid, *rp;

	orig_block(sc, &h, &hl);
	if (h == NULL || hl == 0)
		return;
	mid = bounce__field(h, hl, "Message-ID");
	rp = bounce__field(h, hl, "Return-Path");
	if (mid != NULL)
		bounce__set(&r->orig_message_id, mid, strlen(mid));
	if (rp != NULL) {
		size_t at, alen;

		if (bounce__find_addr(rp, strlen(rp), &at, &alen))
			bounce__set(&r->orig_return_path, rp + at, alen);
	}
	if (r->orig_return_path[0] == '\0' && r->type == BOUNCE_TYPE_COMPLAINT) {
		char *mf = bounce__field(sc->feedback.data != NULL ? sc->feedback.data : "",
		    sc->feedback.len, "Original-Mail-From");
		size_t at, alen;

		if (mf != NULL && bounce__find_addr(mf, strlen(mf), &at, &alen))
			bounce__set(&r->orig_return_path, mf + at, alen);
		free(mf);
	}
	free(mid);
	free(rp);
}

/* Bytes of a report's text searched for its recipients' replies. */
#define DSN_FILL_TEXT_MAX 65536

/* --- what a report's text adds to its delivery-status fields ------------------------- */

void
bounce__dsn_fill(const struct bounce_scan *sc, struct bounce_result *r)
{
	const char *s = sc->text.data != NULL ? sc->text.data : "";
	size_t len = human_len(s, sc->text.len);

	/* What people read is short; a long text is not searched once per recipient. */
	if (len > DSN_FILL_TEXT_MAX)
		len = DSN_FILL_TEXT_MAX;
	for (size_t i = 0; i < r->nrcpt; i++) {
		struct bounce_rcpt *rc = &r->rcpt[i];
		size_t alen = strlen(rc->recipient);
		char status[16] = "";
		char *diag = NULL;
		bool done = false;

		if (rc->diagnostic[0] != '\0' || len == 0)
			continue;
		/* The line naming the recipient with the server's reply on it. */
		for (size_t off = 0; alen > 0 && off + alen <= len && !done; off++) {
			size_t b, e;

			if (strncasecmp(s + off, rc->recipient, alen) != 0)
				continue;
			for (b = off; b > 0 && s[b - 1] != '\n'; b--)
				;
			for (e = off; e < len && s[e] != '\n'; e++)
				;
			if (bounce__code_in(s + b, e - b, status, &diag) >= 0) {
				bounce__set(&rc->diagnostic, s + b, e - b);
				done = true;
			}
			free(diag);
			diag = NULL;
			off = e;
		}
		/* One recipient: the text's first reply is its. */
		if (!done && r->nrcpt == 1 && bounce__code_in(s, len, status, &diag) >= 0) {
			free(rc->diagnostic);
			rc->diagnostic = diag;
			diag = NULL;
		}
		free(diag);
	}
}
