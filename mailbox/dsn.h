/*
 * dsn - compose an RFC 3464 delivery status notification: the report
 * kurier stores in the submitting user's INBOX (and may send to the
 * envelope sender) when recipients of a queued message failed, expired,
 * were delivered with NOTIFY=SUCCESS, or are delayed (RFC 3461).
 *
 * The report is multipart/report; report-type=delivery-status with
 * three parts: a text/plain explanation (which address, the remote
 * server's reply, what to do about it), message/delivery-status
 * (RFC 3464 2.2 and 2.3 fields), and the original message: its header
 * section as text/rfc822-headers, or the whole message as
 * message/rfc822 when RET=FULL was asked and the body is still kept.
 *
 * Pure: no Redis, no loop, no I/O, no clock (times are arguments).
 * Whatever the inputs hold (a reply with CR, LF, NUL or 8-bit bytes, a
 * line of 5,000 characters), the output has CRLF line ends only and no
 * line longer than 998 octets (RFC 5322 2.1.1): control bytes become
 * spaces, 8-bit bytes in header fields '?', long fields are folded at
 * spaces or, without one, wrapped.
 */
#ifndef KURIER_MAILBOX_DSN_H
#define KURIER_MAILBOX_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum dsn_action {
	DSN_FAILED,      /* bounced, or expired (then Status 4.4.7) */
	DSN_DELAYED,     /* still deferred: a warning */
	DSN_DELIVERED,   /* NOTIFY=SUCCESS */
};

/* Longest diagnostic text kept; more is cut and marked "...". */
#define DSN_DIAG_MAX 2000

struct dsn_rcpt {
	const char *addr;        /* Final-Recipient (rfc822) */
	const char *orcpt;       /* RFC 3461 ORCPT as stored ("rfc822;a@b"), or NULL */
	enum dsn_action action;
	bool expired;            /* failed because [deliver] lifetime passed */
	const char *reply;       /* the last reply ("550 5.1.1 ..."), or NULL */
	const char *remote_mta;  /* "name[address]" that gave it, or NULL/"" */
	uint64_t last_attempt_ms;/* 0: none */
};

struct dsn_report {
	const char *hostname;    /* Reporting-MTA, From: MAILER-DAEMON@hostname */
	const char *to;          /* To: an address (the envelope sender), or NULL */
	const char *queue_id;    /* X-Kurier-Queue-Id and the text */
	const char *unique;      /* makes Message-ID and boundary unique: [A-Za-z0-9.-] */
	const char *envid;       /* RFC 3461 ENVID, xtext-decoded, or NULL */
	uint64_t arrival_ms;     /* Arrival-Date */
	uint64_t now_ms;         /* Date */
	uint64_t retry_until_ms; /* Will-Retry-Until of delayed recipients */
	bool ret_full;           /* RET=FULL: include the body (when body != NULL) */
	const char *head;        /* original header section (its ending blank line optional) */
	size_t head_len;
	const char *body;        /* original body, or NULL once dropped */
	size_t body_len;
	const struct dsn_rcpt *rcpt;
	size_t nrcpt;
};

/*
 * dsn_compose - append the report r to out (CRLF line ends).  Borrows
 * r.  Subject: "Undelivered Mail Returned to Sender" when any recipient
 * failed, else "Delivery Status Notification (Delay)" when any is
 * delayed, else "Delivery Status Notification (Success)".  0, or
 * -EINVAL (no recipients, no hostname or unique).
 */
int dsn_compose(const struct dsn_report *r, struct buf *out);

/*
 * dsn_status - the RFC 3463 status of a recipient: the reply's enhanced
 * code when its class agrees with the basic code (or stands alone),
 * else one derived from the basic code (5.0.0, 4.0.0, 2.0.0), else from
 * the action; 4.4.7 for an expired recipient.  dst[16].
 */
void dsn_status(const struct dsn_rcpt *rc, char dst[16]);

/* dsn_date - ms since the epoch as an RFC 5322 date in UTC; dst[40]. */
void dsn_date(uint64_t ms, char dst[40]);

#endif
