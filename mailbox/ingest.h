/*
 * ingest - what the inbound MX for bounce domains does with a return:
 * which recipients it takes (RCPT), and, at the end of DATA, parsing and
 * classifying the message (mailbox/bounce.h), acting on it (a hard bounce
 * marks the recipient bounced in the queue and suppresses the address, a
 * complaint suppresses it, soft bounces count towards [mailbox]
 * soft_bounce_limit), and storing it, with X-Kurier-* fields at the top,
 * in the INBOX of the user who submitted the returned message (or of
 * [mailbox] postmaster for postmaster@ and abuse@).
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
	INGEST_RCPT_OK,        /* 250 */
	INGEST_RCPT_UNKNOWN,   /* a bounce domain's address that is not ours: 550 5.1.1 */
	INGEST_RCPT_RELAY,     /* not a bounce domain: 550 5.7.1 relay denied */
	INGEST_RCPT_TEMP,      /* Redis down: 451 4.3.0 */
};

/*
 * ingest_open - borrows loop, cfg, q, pol and st until ingest_close()
 * has finished (their owner closes them after).  Loads the VERP key
 * (queue/verp.h).  0, or a negative errno with err.
 */
int ingest_open(struct ingest **out, uv_loop_t *loop, const struct config *cfg,
    struct queue *q, struct policy *pol, struct mbox_store *st, char *err, size_t errsz);
/* ingest_close - drop pending work (their callbacks still run once); closed(arg) when freed. */
void ingest_close(struct ingest *in, void (*closed)(void *arg), void *arg);

typedef void ingest_rcpt_cb(void *arg, enum ingest_verdict v);
/*
 * ingest_rcpt - may addr (lower case, no brackets) receive a return?
 * 0 and cb exactly once later, or a negative errno and no call.
 */
int ingest_rcpt(struct ingest *in, const char *addr, ingest_rcpt_cb *cb, void *arg);

typedef void ingest_stored_cb(void *arg, int status, const char *id);
/*
 * ingest_store - the message of env (its recipients all passed
 * ingest_rcpt), header section and body apart, CRLF line ends, as the
 * session holds them (borrowed for the call).  cb(arg, 0, id) once the
 * message is durably stored in every mailbox it goes to (the 250);
 * a negative errno when not (451).  0 and cb exactly once later, or a
 * negative errno and no call.
 */
int ingest_store(struct ingest *in, const struct envelope *env, const char *head,
    size_t hlen, const char *body, size_t blen, ingest_stored_cb *cb, void *arg);

#endif
