/*
 * dkimverify - DKIM verification (RFC 6376, Ed25519 by RFC 8463) of an
 * inbound message with libopendkim, one result per signature in the
 * terms of RFC 8601 2.7.1, for the Authentication-Results field that
 * policy/authres writes.
 *
 * One struct dkimverify holds the one libopendkim library handle; it is
 * made by dkimverify_open() on the loop thread and is read-only until
 * dkimverify_close(), so dkimverify_run() may run on any number of
 * threads at once.  dkimverify_start() runs the same verification on
 * libuv's thread pool and hands the report back on the loop thread:
 * the key lookups (TXT selector._domainkey.domain) block.  At most two
 * verifications hold a pool thread at a time (a dead key server holds
 * one for up to DKIMVERIFY_MAX_SIGS query timeouts, and the pool also
 * hashes passwords and signs); the others wait their turn in order.
 *
 * Keys come from DNS or, for tests, from a file (opts.key_file: lines
 * "selector._domainkey.domain TXT-record-content", libopendkim's
 * DKIM_QUERY_FILE).  DNS queries do not use libopendkim's stock
 * resolver: in 2.11.0~beta2 that shares one res_state between every
 * thread of the library handle, and it cannot be pointed at a port
 * (dkim_dns_nslist is a no-op on glibc, which lacks res_setservers).
 * They go instead through a query service of kurier's own, a private
 * c-ares channel per query driven by poll() on the worker thread, to
 * opts.dns_server ("host:port", as [deliver] dns_server; empty for
 * /etc/resolv.conf), each bounded by opts.dns_timeout_ms.  A running
 * query ends at once when dkimverify_close() is called.
 *
 * Results (RFC 8601 2.7.1, RFC 6376 6.1 and 6.3):
 *   pass       the signature and the body hash verified;
 *   fail       the signature did not verify, or the body hash did not
 *              match (the message was altered);
 *   policy     verified, but not acceptable here: a key shorter than
 *              1024 bits (RFC 8301 3.2);
 *   neutral    not processed for a reason outside the others;
 *   temperror  the key could not be fetched (DNS timeout or SERVFAIL):
 *              a later attempt may succeed;
 *   permerror  the signature is malformed (missing or bad tags), its
 *              key record does not exist, is malformed, revoked (empty
 *              p=) or not for e-mail, the From field is not signed, or
 *              the signature expired or is dated in the future.
 * A message without a DKIM-Signature field gets nsig == 0, which
 * authres writes as dkim=none.  At most DKIMVERIFY_MAX_SIGS signatures
 * are looked at (the first in the header section); more are counted in
 * nignored and neither verified nor looked up, so a message of a
 * thousand signatures costs no more than eight.
 *
 * A signature with l= (a body length) passes when the first l octets of
 * the canonical body verify, as RFC 6376 3.5 defines it: text appended
 * after them is not covered by it.
 *
 * Wiring (the inbound MX): keys by the same resolver as delivery,
 *	struct dkimverify_opts o = { .dns_timeout_ms =
 *	    cfg->deliver.dns_timeout_ms };
 *	char server[256] = "";
 *	if (cfg->deliver.dns_server_set)
 *		config_endpoint_str(&cfg->deliver.dns_server, server,
 *		    sizeof server);
 *	o.dns_server = server;
 * then, per message, dkimverify_start(v, msg->head, msg->head_len,
 * msg->body, msg->body_len, cb, session, &session->dkim_req), and
 * dkimverify_cancel(v, session->dkim_req) when the session goes first.
 *
 * Strings in a report come from the message (d=, s=, i=, a=): they are
 * cut to fit and every byte outside printable ASCII is replaced with
 * '?', so they are safe to log, but they are third-party text, and
 * authres quotes them where a header field needs it.
 *
 * Errors are 0 or a negative errno.
 */
#ifndef KURIER_POLICY_DKIMVERIFY_H
#define KURIER_POLICY_DKIMVERIFY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define DKIMVERIFY_MAX_SIGS 8
#define DKIMVERIFY_DNS_TIMEOUT_MS 5000

/* RFC 8601 2.7.1's dkim results; NONE only for "no signature". */
enum dkimverify_result {
	DKIMVERIFY_NONE,
	DKIMVERIFY_PASS,
	DKIMVERIFY_FAIL,
	DKIMVERIFY_POLICY,
	DKIMVERIFY_NEUTRAL,
	DKIMVERIFY_TEMPERROR,
	DKIMVERIFY_PERMERROR,
};

/* dkimverify_result_name - "none", "pass", "fail", ... ; "?" for another value. */
const char *dkimverify_result_name(enum dkimverify_result r);

struct dkimverify_opts {
	const char *key_file;    /* NULL: keys from DNS */
	const char *dns_server;  /* "host:port" / "[v6]:port"; NULL or "": resolv.conf */
	uint64_t dns_timeout_ms; /* per key query; 0: DKIMVERIFY_DNS_TIMEOUT_MS */
};

struct dkimverify_sig {
	char domain[256];    /* d=, lower-cased as libopendkim keeps it */
	char selector[64];   /* s= (cut to fit) */
	char identity[256];  /* i= as written, "" when absent */
	char algorithm[24];  /* a=, e.g. "rsa-sha256", "ed25519-sha256" */
	char bprefix[9];     /* b='s first 8 characters, for header.b (RFC 6008) */
	enum dkimverify_result result;
	char reason[96];     /* "" on pass; else e.g. "body hash did not verify" */
};

struct dkimverify_report {
	size_t nsig;     /* 0: the message has no (usable) DKIM-Signature */
	size_t nignored; /* signatures past DKIMVERIFY_MAX_SIGS, not looked at */
	struct dkimverify_sig sig[DKIMVERIFY_MAX_SIGS]; /* header order */
};

struct dkimverify;

/*
 * dkimverify_open - a verifier on loop with options o (NULL: DNS through
 * resolv.conf, default timeout).  Strings are copied.  Returns 0 with
 * *out set, or -EINVAL (dns_server is not an address with an optional
 * port; key_file empty), -ENOTSUP (libopendkim lacks SHA-256 or
 * Ed25519), -ENOMEM or -EIO, with err[errsz] saying why.
 */
int dkimverify_open(struct dkimverify **out, uv_loop_t *loop,
    const struct dkimverify_opts *o, char *err, size_t errsz);

/*
 * dkimverify_close - stop: queued verifications are dropped, running ones
 * have their DNS waits ended (their signatures then read temperror), and
 * each pending request that was not cancelled gets its callback once,
 * with status -ECANCELED and no report.  Then closed(arg) runs on the
 * loop (never inside this call) and v is freed.  closed may be NULL.  No
 * dkimverify_start() or dkimverify_run() after this.
 */
void dkimverify_close(struct dkimverify *v, void (*closed)(void *arg),
    void *arg);

/*
 * dkimverify_run - verify the message head[0..hlen) (the header section,
 * with or without its empty line) and body[0..blen) (what follows the
 * empty line), both with CRLF line ends (a bare LF reads as CRLF), and
 * fill *r.  Blocks for the key lookups.  Thread-safe; any input, however
 * broken, yields a report.  head and body are only read; body may be
 * NULL when blen is 0.
 */
void dkimverify_run(struct dkimverify *v, const char *head, size_t hlen,
    const char *body, size_t blen, struct dkimverify_report *r);

/*
 * dkimverify_cb - a verification's answer: status 0 and the report
 * (valid only during the call: copy what you keep), or -ECANCELED and
 * r NULL when the verifier was closed first (or, never seen in
 * practice, another negative errno when libuv refused the work).
 */
typedef void dkimverify_cb(void *arg, int status,
    const struct dkimverify_report *r);

/* Names one pending dkimverify_start(), for dkimverify_cancel(); never 0. */
typedef uint64_t dkimverify_req;

/*
 * dkimverify_start - dkimverify_run() on the thread pool.  head and body
 * are copied, so the caller's buffers may go at once.  cb(arg, ...) runs
 * exactly once, later, on the loop thread, unless dkimverify_cancel()
 * came first.  On 0, *id (if id is not NULL) names the request.
 * Returns 0, or -EINVAL (cb NULL; a NULL buffer with a length) or
 * -ECANCELED (after dkimverify_close()), cb then never running.
 */
int dkimverify_start(struct dkimverify *v, const char *head, size_t hlen,
    const char *body, size_t blen, dkimverify_cb *cb, void *arg,
    dkimverify_req *id);

/*
 * dkimverify_cancel - the caller lost interest in request id (its session
 * closed): its callback will not run.  A verification already running
 * finishes on its worker and its report is dropped; one still queued
 * is not run.  An unknown or finished id is ignored.  Loop thread only.
 */
void dkimverify_cancel(struct dkimverify *v, dkimverify_req id);

/* dkimverify_pending - requests started and not yet answered or dropped (tests). */
size_t dkimverify_pending(const struct dkimverify *v);

#endif
