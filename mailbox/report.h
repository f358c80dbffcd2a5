/*
 * report - the mailbox role's reporter: it reads the queue's outcome
 * events through the Redis consumer group "reports" and turns them into
 * RFC 3464 delivery status notifications (mailbox/dsn.h) stored in the
 * INBOX of the user who submitted the message (envelope user; [relay]
 * trusted_user for a message submitted without one), and, with
 * [mailbox] dsn_to_sender, also queued to the envelope sender with a
 * null reverse-path.
 *
 * What makes a report:
 *   bounced, expired, suppressed  Action: failed (NOTIFY absent or FAILURE)
 *   delivered                     Action: delivered (NOTIFY=SUCCESS)
 *   deferred                      Action: delayed, once per recipient, at
 *                                 the first deferral at or after arrival
 *                                 + [mailbox] delay_warning (NOTIFY absent
 *                                 or DELAY; delay_warning 0: never); the
 *                                 recipients of one message deferred in
 *                                 one batch share one warning
 *   NOTIFY=NEVER                  nothing
 * An event with returned=1 (an asynchronous return marked the recipient
 * bounced after delivery) makes none: the return itself is stored.
 *
 * Grouping: events are read in batches of up to REPORT_BATCH every
 * poll (REPORT_POLL_MS); the failed (or delivered) recipients of one
 * message within a batch share one report.  A batch whose newest
 * failure is younger than REPORT_GATHER_MS (at most half a [queue]
 * lease) waits until it is that old and reads once more, so recipients
 * of one message that fail within about 2 s of each other (other
 * domains, other jobs) are reported together.
 *
 * Once per event: each event goes to one node of the group; a node that
 * read events and did not acknowledge them within 2 x [queue] lease
 * (killed, stopped, cut off from Redis) leaves them to the next node
 * that polls, which claims them (XAUTOCLAIM).  A report is stored with
 * a dedup key (the queue id, the kind, and the first event id of its
 * group), so an event handled twice makes one report.  A delay warning
 * names each recipient once: the recipients warned are recorded in
 * P dsnw:ID (kept [deliver] lifetime + 1 day), and the warning's dedup
 * key is made of the recipients it names.  Events are acknowledged only
 * after their report is stored or found to be needless; while Redis is
 * down the reporter waits and the events stay pending.
 */
#ifndef KURIER_MAILBOX_REPORT_H
#define KURIER_MAILBOX_REPORT_H

#include <stddef.h>
#include <uv.h>

#include "core/config.h"

#define REPORT_GROUP "reports"
#define REPORT_BATCH 200
#define REPORT_POLL_MS 1000
#define REPORT_GATHER_MS 2000

struct report;
struct queue;
struct policy;
struct mbox_store;

/*
 * report_open - start reporting on loop.  Borrows cfg, q, st and pol
 * (pol may be NULL when [mailbox] dsn_to_sender is off: it answers the
 * suppression question) until report_close() has called back.
 * consumer names this process in the group (unique per node and
 * process, e.g. "hostname:pid"; copied).  0 or a negative errno with err.
 */
int report_open(struct report **out, uv_loop_t *loop, const struct config *cfg,
    struct queue *q, struct mbox_store *st, struct policy *pol, const char *consumer,
    char *err, size_t errsz);

/*
 * report_close - stop polling; the batch in flight finishes first (or
 * fails at once when Redis is gone; its events then stay pending for
 * another node).  closed(arg) once freed (may be NULL).
 */
void report_close(struct report *r, void (*closed)(void *arg), void *arg);
/*
 * report_cancel - after report_close(), when waiting is over (the grace
 * period ended): cancel the reporter's own Redis call in flight, so it
 * closes even when Redis does not answer.  The queue's and the store's
 * calls are cancelled by closing those.
 */
void report_cancel(struct report *r);

#endif
