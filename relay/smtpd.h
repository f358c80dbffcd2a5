/*
 * smtpd - the SMTP server: listeners, sessions and what a session stores.
 * Today it serves submission (RFC 6409): SMTP with STARTTLS on the
 * submission listeners and implicit TLS (RFC 8314) on the submissions
 * listeners, AUTH PLAIN/LOGIN before MAIL (a client in [relay]
 * trusted_networks may send without, as [relay] trusted_user), the
 * verdicts of policy/ (rates, lock-outs, suppression, header and domain
 * rules) enforced, and a 250 only once the sink stored the message.
 * On [relay] inbound it serves the inbound MX for bounce domains
 * (RFC 5321, port 25; smtpd_inbound.c): no AUTH, any MAIL FROM (the
 * null sender above all) with its SPF verdict (policy/spfcheck, the
 * [deliver] dns_server resolver), each recipient put to the inbound
 * sink's rcpt(), Authentication-Results, Received-SPF and Received added
 * at the top, and a 250 only once the inbound sink stored the return.
 *
 * Seams.  A session knows neither the queue nor the user store; its owner
 * hands it two small ops structs:
 *   - a sink (struct smtpd_sink) that stores an accepted message: for
 *     submission cmd/kurierd wires the queue (queue_enqueue); for the
 *     inbound MX it wires the bounce mailbox (mailbox/ingest.h);
 *   - a user directory (struct smtpd_users): password checks and the
 *     trusted_user lookup (cmd/kurierd wires policy/auth).
 * Inside relay/ the session core dispatches through a const table of
 * protocol operations (smtpd_int.h: struct smtpd_proto), which submission
 * and the inbound MX fill each their own way.
 * Policy (rates, lock-outs, suppression) stays a direct call into
 * policy/policy.h: it is one module with one Redis-backed implementation,
 * and a NULL policy means "no Redis-backed checks" (the synchronous
 * checks of policy/check.h still apply), which is what the session unit
 * test uses.  A fake of the user directory is all a test needs besides.
 *
 * Ownership: the server borrows the config, the sink, the user directory
 * and the policy module (their owner closes them after smtpd_stop()
 * finished) and owns its listeners, its TLS context and every session.
 */
#ifndef KURIER_RELAY_SMTPD_H
#define KURIER_RELAY_SMTPD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "policy/auth.h"
#include "queue/envelope.h"

struct smtpd;
struct policy;

/*
 * A message as a session hands it to its sink: the header section (the
 * trace and added fields included, ending with its empty line) and the
 * body, apart, both CRLF line ends.  Both are borrowed for the duration
 * of the store() call only.
 */
struct smtpd_message {
	const char *head;
	size_t head_len;
	const char *body;
	size_t body_len;
};

/* done - status 0: stored under id; negative errno: not stored (451). */
typedef void smtpd_stored_cb(void *arg, int status, const char *id);

/*
 * What the inbound MX's sink says of a recipient: SMTPD_RCPT_OK (250),
 * SMTPD_RCPT_UNKNOWN (a VERP address of a bounce domain with a bad MAC
 * or an unknown message: 550 5.1.1), SMTPD_RCPT_RELAY (not a bounce
 * domain: 550 5.7.1 relay denied), SMTPD_RCPT_TEMP (451 4.3.0).
 */
enum smtpd_rcpt_verdict {
	SMTPD_RCPT_OK,
	SMTPD_RCPT_UNKNOWN,
	SMTPD_RCPT_RELAY,
	SMTPD_RCPT_TEMP,
};
typedef void smtpd_rcpt_cb(void *arg, enum smtpd_rcpt_verdict verdict);

struct smtpd_sink_ops {
	/*
	 * store - store msg for the envelope env (env->id may already hold
	 * the id the Received field names; the sink keeps it).  Returns 0
	 * and calls done(done_arg, status, id) exactly once, later; or a
	 * negative errno, and done is never called.  env and msg are
	 * borrowed for the call only.
	 */
	int (*store)(void *arg, struct envelope *env, const struct smtpd_message *msg,
	    smtpd_stored_cb *done, void *done_arg);
	/*
	 * rcpt - the inbound MX's question whether addr (lower-cased, no
	 * brackets) is a recipient this sink takes; NULL for submission.
	 * Returns 0 and calls done(done_arg, verdict) exactly once, later;
	 * or a negative errno (451 4.3.0) and done is never called.
	 */
	int (*rcpt)(void *arg, const char *addr, smtpd_rcpt_cb *done, void *done_arg);
};

struct smtpd_sink {
	const struct smtpd_sink_ops *ops;
	void *arg;
};

/* The user directory: the contracts of policy/auth.h's namesakes. */
struct smtpd_users_ops {
	int (*verify)(void *arg, const char *user, const char *password,
	    size_t pwlen, auth_verify_cb *cb, void *cb_arg, auth_req_id *id);
	void (*cancel)(void *arg, auth_req_id id);
	int (*user_get)(void *arg, const char *name, auth_verify_cb *cb, void *cb_arg);
};

struct smtpd_users {
	const struct smtpd_users_ops *ops;
	void *arg;
};

/*
 * smtpd_open - bind the [relay] listeners and load the TLS certificate
 * (or make a self-signed one in data_dir).  sink is where submission
 * stores; inbound is the inbound MX's sink (its ops->rcpt and ->store
 * both set): NULL, or an empty [relay] inbound, and there is no inbound
 * listener.  sink, inbound and users are copied (the structs, not what
 * they point to); pol may be NULL.  0, or a negative errno with err
 * saying what failed ("0.0.0.0:587: address already in use").
 */
int smtpd_open(struct smtpd **out, uv_loop_t *loop, const struct config *cfg,
    const struct smtpd_sink *sink, const struct smtpd_sink *inbound,
    const struct smtpd_users *users, struct policy *pol, char *err, size_t errsz);
/*
 * smtpd_port - the port of socket i of listener which (SMTPD_PORT_*):
 * the kernel's choice for port 0.  0 when there is none.
 */
enum {
	SMTPD_PORT_SUBMISSION = 0,
	SMTPD_PORT_SUBMISSIONS = 1,
	SMTPD_PORT_INBOUND = 2,
};
uint16_t smtpd_port(const struct smtpd *s, unsigned which, unsigned i);
/*
 * smtpd_reload_tls - load the certificate and key again (SIGHUP): new
 * handshakes use them, sessions in progress keep theirs.  0 or negative
 * errno with err; on failure the old certificate stays.
 */
int smtpd_reload_tls(struct smtpd *s, char *err, size_t errsz);
/*
 * smtpd_stop - stop accepting; sessions between transactions are closed
 * with 421, a transaction in progress is let finish (its DATA and the
 * store) until the grace period, then cut.  done(arg) runs when every
 * session and listener is closed; the server is freed then.
 */
void smtpd_stop(struct smtpd *s, uint64_t grace_ms, void (*done)(void *arg),
    void *arg);
/* smtpd_sessions - sessions open now. */
size_t smtpd_sessions(const struct smtpd *s);

#endif
