/*
 * bounce_int - what the files of the bounce parser share, used only
 * inside mailbox/: bounce.c walks the MIME tree (GMime) into a struct
 * bounce_scan and reads the structured reports (RFC 3464 delivery
 * status, RFC 5965 feedback report); bounce_text.c reads what servers
 * write in prose (status codes, recipients, the returned message's
 * headers); bounce_ses.c Amazon SES notifications; bounce_class.c gives
 * each recipient its class and reason; bounce_lex.c holds the small
 * readers they share (fields, codes, addresses, reply lines).
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
	char *from; /* the From field's value, display name and all */
	char *to;   /* the To field's value */
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

/* --- bounce_lex.c --------------------------------------------------------------------- */

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
/*
 * bounce__ci_find - where needle (lower case, or not a letter) is in
 * s[0..len), case ignored; -1 if nowhere.
 */
long bounce__ci_find(const char *s, size_t len, const char *needle);
/*
 * bounce__code_in - the status in s[0..len): its first enhanced code (not
 * 2.x.x), else a reply code as "N.0.0", into status[16]; *diag (freed by
 * the caller) the line it stands on, with the next lines while they end
 * in ':'.  The code's offset, or -1 (nothing set).
 */
long bounce__code_in(const char *s, size_t len, char status[16], char **diag);
/*
 * bounce__first_words - the first line after s's first line that is not
 * decoration (dashes, stars) or a returned header field, as *dst; a
 * label ("Reason:") takes the line after it along.  *dst untouched if none.
 */
void bounce__first_words(const char *s, size_t len, char **dst);
/* bounce__rest_of_line - what follows addr on s's first line, as *dst, if it says something. */
void bounce__rest_of_line(const char *s, size_t len, const char *addr, char **dst);
/* bounce__remote_of - "host mx.example.jp" or "remote host 192.0.2.1" in s, as *dst. */
void bounce__remote_of(const char *s, size_t len, char **dst);
/* bounce__field - in a header block, the unfolded value of field name; NULL. */
char *bounce__field(const char *block, size_t len, const char *name);

/* --- bounce.c -------------------------------------------------------------------------- */

/*
 * bounce__gmime_init - initialise GMime once per process (pthread_once,
 * so any thread may call it).  Every mailbox/ file that uses GMime calls
 * it first: g_mime_init() itself is not safe to race.
 */
void bounce__gmime_init(void);

/*
 * bounce__status_text - delivery-status fields pasted into text (from
 * the first Reporting-MTA, Final-Recipient or Original-Recipient on)
 * read as a delivery-status part; recipients added to r.
 */
void bounce__status_text(const char *s, size_t len, struct bounce_result *r);

/* --- bounce_text.c --------------------------------------------------------------------- */

/*
 * bounce__text - the non-standard bounces, from their text: true and
 * recipients added to r, or false and r as it was (but for the
 * delivery-status fields found pasted in text, which it also reads).
 */
bool bounce__text(const struct bounce_scan *sc, struct bounce_result *r);
/*
 * bounce__dsn_fill - for report recipients without a Diagnostic-Code,
 * the reply the report's text gives: its line naming the recipient with
 * a code, or, for a lone recipient, the text's first reply.
 */
void bounce__dsn_fill(const struct bounce_scan *sc, struct bounce_result *r);
/* bounce__orig_headers - Message-ID and Return-Path of the returned message. */
void bounce__orig_headers(const struct bounce_scan *sc, struct bounce_result *r);

/* --- bounce_ses.c ---------------------------------------------------------------------- */

/*
 * bounce__ses_json - an Amazon SES notification (Bounce, Complaint or
 * Delivery, bare or inside an SNS envelope); sets r's type and
 * recipients, or returns false and leaves r as it was.
 */
bool bounce__ses_json(const struct bounce_scan *sc, struct bounce_result *r);

/* --- bounce_class.c -------------------------------------------------------------------- */

/* bounce__classify - each recipient's class and reason, from r's type and its fields. */
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
