/*
 * bounce_int - what the files of the bounce parser share, used only
 * inside mailbox/: bounce.c walks the MIME tree (GMime) into a struct
 * bounce_scan and reads the structured reports (RFC 3464 delivery
 * status, RFC 5965 feedback report); bounce_text.c reads what servers
 * write in prose (status codes, recipients, the returned message's
 * headers); bounce_class.c gives each recipient its class and reason.
 *
 * Every string here is NUL-terminated and may hold any byte but NUL.
 */
#ifndef KURIER_MAILBOX_BOUNCE_INT_H
#define KURIER_MAILBOX_BOUNCE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "mailbox/bounce.h"

/* Longest diagnostic kept (bytes); longer ones are cut. */
#define BOUNCE_DIAG_MAX 1000

/* What the MIME walk found (bounce.c), the input of the readers. */
struct bounce_scan {
	/* Top-level header fields, decoded, "" when absent. */
	char *subject;
	char *from; /* the From address alone */
	char *to;   /* the To address alone */
	char *auto_submitted;
	char *precedence;
	char *x_failed;      /* Exim's X-Failed-Recipients */
	bool x_autoreply;    /* X-Autoreply, X-Autorespond present */
	bool report_dsn;     /* multipart/report; report-type=delivery-status */
	bool report_arf;     /* report-type=feedback-report or the part */
	struct buf text;     /* human-readable parts, in order */
	struct buf html;     /* text/html parts, tags removed (used if text is empty) */
	struct buf status;   /* message/delivery-status bodies, joined */
	struct buf feedback; /* message/feedback-report bodies */
	struct buf orig;     /* returned message's header fields (unfolded lines) */
};

/* bounce__rcpt_add - a new recipient at the end of r, its strings "". */
struct bounce_rcpt *bounce__rcpt_add(struct bounce_result *r);
/* bounce__set - replace *dst (a string of a result) by s[0..len), cleaned to one line. */
void bounce__set(char **dst, const char *s, size_t len);

/*
 * bounce__find_status - the first enhanced status code (RFC 3463
 * "class.subject.detail", class 2, 4 or 5) in s[0..len) standing as a
 * word; copies it to out[16] and returns its offset, or -1.
 */
long bounce__find_status(const char *s, size_t len, char out[16]);
/*
 * bounce__find_reply - the first SMTP reply code (RFC 5321 4.2: 4xx or
 * 5xx) in s[0..len) that stands as a reply (at a line's start, or after
 * "said:", "error:", "]:", ...); its offset, *code set, or -1.
 */
long bounce__find_reply(const char *s, size_t len, int *code);
/*
 * bounce__find_addr - the first mail address in s[0..len): *at its
 * offset and *alen its length; false if none.
 */
bool bounce__find_addr(const char *s, size_t len, size_t *at, size_t *alen);
/* bounce__field - in a header block, the unfolded value of field name; NULL. */
char *bounce__field(const char *block, size_t len, const char *name);

/*
 * bounce__status_text - delivery-status fields pasted into text (from
 * the first Reporting-MTA, Final-Recipient or Original-Recipient on)
 * read as a delivery-status part; recipients added to r.
 */
void bounce__status_text(const char *s, size_t len, struct bounce_result *r);

/* bounce_text.c: the non-standard bounces, from their text. */
bool bounce__text(const struct bounce_scan *sc, struct bounce_result *r);
/*
 * bounce__ses_json - an Amazon SES notification (Bounce, Complaint or
 * Delivery, bare or inside an SNS envelope); sets r's type and
 * recipients, or returns false and leaves r as it was.
 */
bool bounce__ses_json(const struct bounce_scan *sc, struct bounce_result *r);
/*
 * bounce__dsn_fill - for report recipients without a Diagnostic-Code,
 * the reply the report's text gives: its line naming the recipient with
 * a code, or, for a lone recipient, the text's first reply.
 */
void bounce__dsn_fill(const struct bounce_scan *sc, struct bounce_result *r);
/* bounce__orig_headers - Message-ID and Return-Path of the returned message. */
void bounce__orig_headers(const struct bounce_scan *sc, struct bounce_result *r);

/* bounce_class.c: each recipient's class and reason. */
void bounce__classify(struct bounce_result *r);
/*
 * bounce__reason - the reason word for a status and a diagnostic text
 * (either may be ""), and whether it names a bad address (hard when the
 * status is permanent).
 */
const char *bounce__reason(const char *status, const char *diag, bool *bad_addr);
/* bounce__reason_bad - whether a reason word names a bad address. */
void bounce__reason_bad(const char *reason, bool *bad_addr);

#endif
