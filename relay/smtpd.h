/*
 * smtpd - the submission server (RFC 6409): SMTP with STARTTLS on the
 * submission listeners and implicit TLS (RFC 8314) on the submissions
 * listeners, AUTH PLAIN/LOGIN before MAIL (a client in [relay]
 * trusted_networks may send without, as [relay] trusted_user), the
 * verdicts of policy/ (rates, lock-outs, suppression, header and domain
 * rules) enforced, and a 250 only once the message is durable in the
 * queue.
 *
 * The server borrows the queue, the user store and the policy module
 * (their owner closes them after smtpd_stop() finished) and owns its
 * listeners, its TLS context and every session.
 */
#ifndef KURIER_RELAY_SMTPD_H
#define KURIER_RELAY_SMTPD_H

#include <stddef.h>
#include <uv.h>

#include "core/config.h"

struct smtpd;
struct queue;
struct auth;
struct policy;

/*
 * smtpd_open - bind the [relay] listeners and load the TLS certificate
 * (or make a self-signed one in data_dir).  0, or a negative errno with
 * err saying what failed ("0.0.0.0:587: address already in use").
 */
int smtpd_open(struct smtpd **out, uv_loop_t *loop, const struct config *cfg,
    struct queue *q, struct auth *auth, struct policy *pol, char *err,
    size_t errsz);
/*
 * smtpd_reload_tls - load the certificate and key again (SIGHUP): new
 * handshakes use them, sessions in progress keep theirs.  0 or negative
 * errno with err; on failure the old certificate stays.
 */
int smtpd_reload_tls(struct smtpd *s, char *err, size_t errsz);
/*
 * smtpd_stop - stop accepting; sessions between transactions are closed
 * with 421, a transaction in progress is let finish (its DATA and the
 * enqueue) until the grace period, then cut.  done(arg) runs when every
 * session and listener is closed; the server is freed then.
 */
void smtpd_stop(struct smtpd *s, uint64_t grace_ms, void (*done)(void *arg),
    void *arg);
/* smtpd_sessions - sessions open now. */
size_t smtpd_sessions(const struct smtpd *s);

#endif
