/*
 * deliver - kurier's delivery workers: drain the queue to each
 * recipient domain's mail servers.
 *
 * A worker claims jobs (one message x one recipient domain) in batches
 * and, for each, finds where the domain's mail goes (deliver/route: a
 * configured route, else MX, else the domain's address), signs the
 * message with DKIM once (deliver/dkimsign, on libuv's thread pool; the
 * signatures are kept with the message in the queue), checks that the
 * receiver's SPF check would pass (policy/spfcheck), and sends one SMTP
 * transaction for all the job's pending recipients (deliver/smtpc) with a
 * signed VERP return path (queue/verp).  Each recipient's outcome goes
 * back to the queue: 2xx delivered, 4xx deferred (retried on the
 * schedule), 5xx bounced, past the lifetime expired.
 *
 * Connections are pooled per server (MX host name and address): a
 * connection that finished a transaction serves the next job due for the
 * same server (RSET), up to max_messages_per_connection, and is closed
 * after [deliver] idle_timeout without work.  At most [deliver]
 * concurrency connections are open in all and per_destination to one
 * server; jobs wait in line for a free one.
 *
 * Destination rules (policy/dest.h) apply per group: the servers of one
 * provider (or one [destination] section's mx patterns, or one domain).
 * A group has at most max_connections open across all its servers, sends
 * at most max_messages_per_connection per connection and, from this node,
 * at most max_messages_per_minute (jobs over it wait their turn: held in
 * memory, or given back to the queue due when it comes, never counted as
 * an attempt).  require_tls yes/verify makes a server without STARTTLS
 * (or, with verify, without a verified certificate) fail like an
 * unreachable one; after the last, "451 4.7.10 TLS required ...".
 *
 * A reply matching the group's throttle patterns (greeting, MAIL, RCPT,
 * end of data) suspends the whole group (policy_throttle_hit: shared in
 * Redis, the back-off doubling per consecutive throttle): that job is
 * deferred with the reply and due when the suspension ends, and every
 * other job of the group goes back to the queue due then, without an
 * attempt.  Other nodes read the suspensions every few seconds.  A
 * delivery to the group forgets its level.
 *
 * Before a transaction, recipients on the suppression list (global, or
 * of the envelope sender's domain) are set suppressed and never sent; a
 * recipient refused with a hard bounce (policy_hard_bounce) is added to
 * its sender domain's list when [policy] suppress_bounces is set.
 *
 * Claims are work-conserving.  The claim script leases at most
 * per_destination jobs of one recipient domain across all nodes, so a
 * claim can come back short while a destination has due work.  The
 * worker counts the jobs it holds per destination; when a job of a
 * destination at its cap goes back to the queue, one claim is made after
 * that loop turn for all the slots freed in it (never one per job, never
 * by polling).  The 500 ms idle poll is only for new work and for caps
 * held by other nodes.  At stop, the claims made per reason and the jobs
 * they returned are logged (event=claims).
 *
 * What each SMTP result means is decided by deliver/outcome (pure: scope
 * session, host, message or recipient x severity), and acted on by the
 * task.
 *
 * Files: deliver.c (the worker: claims, sweep, open and stop), task.c
 * (one job's pipeline; task_enter_state() is the one writer of a task's
 * state), pool.c (groups, hosts, connection slots; a connection freed
 * for a waiting task is handed over on the next loop turn, after the
 * finishing task's outcome went to the queue), sign.c (DKIM on the
 * thread pool), outcome.c (classification), with deliver_int.h for what
 * they share; route.c, dns.c + dns_answer.c (resolver; answer parsing),
 * smtpc.c + smtpreply.c (SMTP client), dkimsign.c + dkimkey.c (DKIM).
 *
 * Every attempt is logged in one line (component "deliver"): queue id,
 * recipients, server name and address, TLS version and whether the
 * certificate verified, the reply, the delay.
 */
#ifndef KURIER_DELIVER_DELIVER_H
#define KURIER_DELIVER_DELIVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "policy/policy.h"
#include "queue/queue.h"

struct deliver;

/*
 * deliver_open - start the workers on loop, claiming from q (which must
 * outlive them).  pol (borrowed, outliving the workers too) holds the
 * suppression list and the throttled destinations shared by every node;
 * NULL delivers without either.  cfg is copied.  Loads the DKIM keys of every [domain],
 * the VERP secret, the client TLS context and the resolver; an error
 * (a key that cannot be read, say) is a sentence in err naming what to
 * fix, and nothing is started.  Returns 0 or a negative errno.
 */
int deliver_open(struct deliver **out, uv_loop_t *loop, const struct config *cfg,
    struct queue *q, struct policy *pol, char *err, size_t errsz);

/*
 * deliver_stop - stop claiming.  Jobs not yet in a transaction are given
 * back to the queue at once; transactions under way get grace_ms to end,
 * after which their connections are cut and their jobs given back (the
 * message may then be delivered twice: at-least-once).  When every job
 * is back and every connection closed, d is freed and cb(arg) runs.
 */
void deliver_stop(struct deliver *d, uint64_t grace_ms, void (*cb)(void *arg),
    void *arg);

/* deliver_inflight - jobs held now (claimed and not yet completed). */
unsigned deliver_inflight(const struct deliver *d);

#endif
