/*
 * bounce - parse and classify a returned message: an RFC 3464 delivery
 * status notification, an RFC 5965 ARF complaint, an RFC 3834
 * auto-reply, or one of the non-standard bounces real servers send
 * (qmail, Exim, old Sendmail, Exchange and Office 365, Gmail, Yahoo,
 * Amazon SES, ...), recognised by their text.  MIME is GMime 3's.
 *
 * Pure: no Redis, no loop, no I/O.  Any input, however broken (NUL
 * bytes, bad base64, truncated MIME, a single line of 10 MB), yields a
 * result.  Thread-safe (GMime is initialised once, the first time, by
 * pthread_once).  docs/bounces.md says how each kind is recognised and
 * what the corpus of real returns gives.
 *
 * Bounds: at most BOUNCE_RCPT_MAX (1000) recipients are read from one
 * return; every string of a result is one line (line ends and tabs made
 * spaces) of at most 1000 bytes, and may hold any other byte, invalid
 * UTF-8 included: callers escape it for their output.
 */
#ifndef KURIER_MAILBOX_BOUNCE_H
#define KURIER_MAILBOX_BOUNCE_H

#include <stddef.h>

/* What the whole message is. */
enum bounce_type {
	BOUNCE_TYPE_NONE,       /* not a return */
	BOUNCE_TYPE_DSN,        /* a delivery report, standard or not */
	BOUNCE_TYPE_COMPLAINT,  /* ARF, or a provider's feedback-loop mail */
	BOUNCE_TYPE_AUTO_REPLY, /* RFC 3834 auto-reply, out of office */
};

/*
 * What one recipient's return says about the address.  Hard: the address
 * itself is bad (unknown user or domain, disabled or moved mailbox).  A
 * permanent refusal for content, reputation or policy is soft: the
 * address may still be good.
 */
enum bounce_class {
	BOUNCE_CLASS_NONE,
	BOUNCE_CLASS_HARD,
	BOUNCE_CLASS_SOFT,
	BOUNCE_CLASS_COMPLAINT,
	BOUNCE_CLASS_AUTO_REPLY,
};

/*
 * One recipient the return is about.  For a report or a bounce, the
 * failed (or delayed, or delivered) recipient; for a complaint, the
 * recipient who complained (ARF Original-Rcpt-To, else the To of the
 * returned message); for an auto-reply, its sender (From), who is the
 * recipient it answers for.
 */
struct bounce_rcpt {
	char *recipient;          /* Final-Recipient's address (or the text's), "" if none */
	char *original_recipient; /* Original-Recipient's address, "" if none */
	/*
	 * RFC 3463 "5.1.1": the report's Status, or the server's own code in
	 * the diagnostic when the Status is only "x.0.0"; from a bare reply
	 * code (550) or the words of a bounce ("failed permanently", "will
	 * keep trying"), "5.0.0" or "4.0.0".  "" when none could be found
	 * (always for complaints and auto-replies).
	 */
	char status[16];
	char *action;     /* failed, delayed, delivered, relayed, expanded; "" */
	char *remote_mta; /* "" if none */
	char *diagnostic; /* Diagnostic-Code or the server's text, one line; "" */
	enum bounce_class cls;
	/*
	 * One word (static): user-unknown, domain-unknown, mailbox-full,
	 * mailbox-disabled, policy-blocked, spam-blocked, message-too-large,
	 * rate-limited, expired, network-error, content-rejected,
	 * auth-failed, complaint, auto-reply, delivered, delayed, unknown.
	 *
	 * Class hard only for a permanent (5.x.x) failure whose reason is
	 * user-unknown, domain-unknown or mailbox-disabled; any other failure
	 * is soft.  Action delivered or relayed: none, reason delivered.
	 * Action delayed (a delay warning, the final word still to come):
	 * none, reason delayed, so that warnings never count as soft bounces.
	 */
	const char *reason;
};

struct bounce_result {
	enum bounce_type type;
	struct bounce_rcpt *rcpt;
	size_t nrcpt;
	char *reporting_mta; /* "" if none */
	char *feedback_type; /* ARF Feedback-Type (abuse, fraud, ...), "" */
	/*
	 * What the returned message (its headers, inside the report or
	 * quoted in its text) says of itself, "" when absent: its Message-ID
	 * and its envelope sender (Return-Path, or ARF's Original-Mail-From),
	 * where a VERP address of kurier may be found when the report was
	 * sent to another address.
	 */
	char *orig_message_id;
	char *orig_return_path;
};

/* Most recipients read from one return; the rest are ignored. */
#define BOUNCE_RCPT_MAX 1000

/*
 * bounce_parse - read msg[0..len) (LF or CRLF line ends; a leading mbox
 * "From " line is skipped; msg may be NULL when len is 0) into *out,
 * which it fills from scratch.  Borrows msg.  Returns 0; the -ENOMEM of
 * the signature is never seen in this build, where running out of
 * memory is fatal (core/xmalloc.h).  Free with bounce_result_free(),
 * which also takes a result already freed.
 */
int bounce_parse(const char *msg, size_t len, struct bounce_result *out);
void bounce_result_free(struct bounce_result *r);

/* Names as kurierctl and the X-Kurier-* fields write them. */
const char *bounce_type_name(enum bounce_type t);   /* dsn complaint auto-reply none */
const char *bounce_class_name(enum bounce_class c); /* hard soft complaint auto-reply none */

#endif
