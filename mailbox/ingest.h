/*
 * ingest - what the inbound MX for bounce domains does with a return:
 * which recipients it takes (RCPT), and, at the end of DATA, parsing and
 * classifying the message (mailbox/bounce.h), acting on it, and storing
 * it in the INBOX of the user who submitted the returned message (or of
 * [mailbox] postmaster for postmaster@ and abuse@).
 *
 * Recipients (ingest_rcpt):
 *   - b+TOKEN@D where D is the return_path of a [domain] section, the
 *     TOKEN's MAC verifies under the VERP key (queue/verp.h) and the
 *     message it names is still in the queue (active, or done and within
 *     [queue] retention): OK.  A bad MAC, a token that is not one, or a
 *     message gone: UNKNOWN (550 5.1.1).
 *   - postmaster@D and abuse@D of those domains (RFC 5321 4.5.1, RFC
 *     2142): OK when [mailbox] postmaster names a user, else UNKNOWN.
 *   - any other domain: RELAY (550 5.7.1).  Redis down: TEMP (451).
 *
 * A return (ingest_store), for each envelope recipient in turn: the VERP
 * token (for postmaster@/abuse@, one found in the returned message's
 * Return-Path, if any) names the message and the recipient; for a job
 * token the report's Final-Recipient picks the recipient among the job's
 * domain (a report that names none of a job's several recipients is
 * stored and acts on none).  The report's entry for that recipient gives
 * the class:
 *   hard       the recipient is marked bounced in the queue record (also
 *              after it was delivered; queue_mark_bounced), an outcome
 *              event is emitted, and, under [policy] suppress_bounces,
 *              the address is suppressed for the sending domain (reason
 *              hard-bounce);
 *   complaint  suppressed with reason complaint;
 *   soft       counted: the [mailbox] soft_bounce_limit-th within
 *              soft_bounce_window suppresses it (soft-bounce-limit);
 *   auto-reply, none: nothing changes.
 * Every return, whatever its class, is then appended to the user's INBOX
 * (the queue record's envelope user; none: [relay] trusted_user; for
 * postmaster@/abuse@ without a token: [mailbox] postmaster) with the
 * fields X-Kurier-Class, X-Kurier-Reason, X-Kurier-Recipient and
 * X-Kurier-Queue-Id at the top (values without control characters).
 *
 * Order and retries: the effects come first, then the append, and the
 * 250 only once the append is durable.  Each effect is idempotent, keyed
 * by a hash of the return's body and the recipient (the inbound MX adds
 * its own trace fields, so a retried delivery of the same return has a
 * different header section but the same body): queue_mark_bounced leaves
 * a bounced recipient alone, policy_return acts once per key, and the
 * append uses the key as its dedup_key.  So any failure (Redis down, the
 * job leased by a worker just then) answers 451, and the sender's retry
 * finishes the work without counting anything twice.
 *
 * One log line per stored return: event=return_stored id=QID rcpt=ADDR
 * class=C reason=R status=S user=U uid=N (return=the inbound id).
 *
 * relay/ cannot include mailbox/: cmd/kurierd wraps these two calls into
 * the inbound listener's struct smtpd_sink.
 */
#ifndef KURIER_MAILBOX_INGEST_H
#define KURIER_MAILBOX_INGEST_H

#include <stddef.h>
#include <uv.h>

#include "core/config.h"
#include "queue/envelope.h"

struct ingest;
struct queue;
struct policy;
struct mbox_store;

/* What RCPT gets; the same meaning as relay/smtpd.h's smtpd_rcpt_verdict. */
enum ingest_verdict {
	INGEST_RCPT_OK,      /* 250 */
	INGEST_RCPT_UNKNOWN, /* a bounce domain's address that is not ours: 550 5.1.1 */
	INGEST_RCPT_RELAY,   /* not a bounce domain: 550 5.7.1 relay denied */
	INGEST_RCPT_TEMP,    /* Redis down: 451 4.3.0 */
};

/*
 * ingest_open - borrows loop, cfg, q, pol and st until ingest_close()
 * has finished (their owner closes them after).  pol may be NULL: then
 * no suppression, soft-bounce count or bounce log.  Loads the VERP key
 * (verp_load_key of [deliver] verp_secret or data_dir/verp.key).  0, or
 * a negative errno with err.
 */
int ingest_open(struct ingest **out, uv_loop_t *loop, const struct config *cfg,
    struct queue *q, struct policy *pol, struct mbox_store *st, char *err, size_t errsz);
/*
 * ingest_close - new calls fail with -ECANCELED; pending returns stop at
 * their next step with -ECANCELED (their callbacks still run once);
 * closed(arg) (may be NULL) once all have ended and in is freed, which
 * may be at once.
 */
void ingest_close(struct ingest *in, void (*closed)(void *arg), void *arg);

typedef void ingest_rcpt_cb(void *arg, enum ingest_verdict v);
/*
 * ingest_rcpt - may addr (no brackets; any case) receive a return?
 * 0 and cb exactly once later, or a negative errno (-ENOTCONN: Redis
 * down, -ECANCELED: closing) and no call.
 */
int ingest_rcpt(struct ingest *in, const char *addr, ingest_rcpt_cb *cb, void *arg);

typedef void ingest_stored_cb(void *arg, int status, const char *id);
/*
 * ingest_store - the message of env (its recipients all passed
 * ingest_rcpt; env->id the inbound id), header section and body apart,
 * CRLF line ends, as the session holds them (all borrowed for the call).
 * cb(arg, 0, env->id) once every recipient's effects are done and the
 * message is durably stored in every mailbox it goes to (the 250); a
 * negative errno when not (451).  0 and cb exactly once later, or a
 * negative errno and no call.
 */
int ingest_store(struct ingest *in, const struct envelope *env, const char *head,
    size_t hlen, const char *body, size_t blen, ingest_stored_cb *cb, void *arg);

#endif
