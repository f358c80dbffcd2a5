/*
 * dkimverify - DKIM verification with libopendkim.  See dkimverify.h.
 *
 * Layout: the DNS query service given to libopendkim (worker threads),
 * one verification (any thread), the requests on the thread pool and
 * the lifecycle (loop thread).
 */
#include "policy/dkimverify.h"

#include <ares.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <opendkim/dkim.h>
#include <openssl/err.h>

#include "core/log.h"
#include "core/rfc5322.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "policy/dnswait_int.h"

#define EDNS_SIZE 1232
/*
 * Verifications on the thread pool at once.  A dead key server holds a
 * worker for up to DKIMVERIFY_MAX_SIGS query timeouts, and the pool (4
 * threads by default) also runs password hashing, SPF and DKIM signing;
 * the rest wait their turn here, in order.
 */
#define DKIMVERIFY_PARALLEL 2

/* The id libopendkim keeps by pointer for its own logs. */
static const unsigned char verify_id[] = "kurier-verify";

/* One verification on the thread pool. */
struct dkimverify_job {
	uv_work_t work;
	struct dkimverify *v;
	struct dkimverify_job *prev, *next; /* v->jobs */
	struct dkimverify_job *qnext;       /* v->waiting, until started */
	bool started;                       /* handed to the thread pool */
	dkimverify_req id;
	dkimverify_cb *cb; /* NULL once cancelled */
	void *arg;
	char *head; /* head and body, copied, one allocation */
	size_t hlen;
	const char *body;
	size_t blen;
	struct dkimverify_report report; /* written by the worker */
};

struct dkimverify {
	/* Read-only after open: the workers read these. */
	DKIM_LIB *lib;
	char server[256];
	uint64_t timeout_ms;
	int abort_fd; /* eventfd, readable once closing */
	/* Loop thread only. */
	uv_loop_t *loop;
	uv_timer_t close_timer; /* closed last; its callback frees v */
	struct dkimverify_job *jobs; /* every request not yet answered */
	size_t njobs;
	struct dkimverify_job *waiting, **waiting_tail; /* FIFO, not started */
	unsigned running;            /* on the thread pool */
	dkimverify_req next_id;
	bool closing;
	void (*closed)(void *arg);
	void *closed_arg;
};

const char *
dkimverify_result_name(enum dkimverify_result r)
{
	switch (r) {
	case DKIMVERIFY_NONE:
		return "none";
	case DKIMVERIFY_PASS:
		return "pass";
	case DKIMVERIFY_FAIL:
		return "fail";
	case DKIMVERIFY_POLICY:
		return "policy";
	case DKIMVERIFY_NEUTRAL:
		return "neutral";
	case DKIMVERIFY_TEMPERROR:
		return "temperror";
	case DKIMVERIFY_PERMERROR:
		return "permerror";
	}
	return "?";
}

/* --- the DNS query service (worker threads) -------------------------------- */

/*
 * One key query: its own c-ares channel, so queries of different
 * verifications share nothing.  The answer is copied into libopendkim's
 * buffer as the raw DNS message, which libopendkim parses (NXDOMAIN and
 * an empty answer are its "no key", so they are handed on as answers).
 */
struct dns_q {
	struct dkimverify *v;
	ares_channel ch;
	unsigned char *buf;
	size_t buflen;
	size_t len;
	bool done;
	bool ok; /* an answer is in buf */
};

/* on_answer - c-ares' callback; runs inside ares_process_fd() or ares_cancel(). */
static void
on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_q *q = arg;

	(void)timeouts;
	q->done = true;
	switch (status) {
	case ARES_SUCCESS:
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
		if (abuf != NULL && alen >= HFIXEDSZ && (size_t)alen <= q->buflen) {
			memcpy(q->buf, abuf, (size_t)alen);
			q->len = (size_t)alen;
			q->ok = true;
		}
		break;
	default:
		break;
	}
}

/* dns_start - libopendkim's query start: send the query, do not wait. */
static int
dns_start(void *srv, int type, unsigned char *query, unsigned char *buf,
    size_t buflen, void **qh)
{
	struct dns_q *q = xcalloc(1, sizeof *q);

	q->v = srv;
	q->buf = buf;
	q->buflen = buflen;
	if (dnswait__open(&q->ch, q->v->server, q->v->timeout_ms, EDNS_SIZE) !=
	    ARES_SUCCESS) {
		free(q);
		return DKIM_DNS_ERROR;
	}
	ares_query(q->ch, (const char *)query, ns_c_in, type, on_answer, q);
	*qh = q;
	return DKIM_DNS_SUCCESS;
}

/*
 * dns_wait - drive the channel until the answer, the query timeout (or
 * libopendkim's own, if shorter) or dkimverify_close().
 */
static int
dns_wait(void *srv, void *qh, struct timeval *to, size_t *bytes, int *error,
    int *dnssec)
{
	struct dns_q *q = qh;
	struct dkimverify *v = srv;
	uint64_t now = dnswait__mono_ms(), end = now + v->timeout_ms;

	if (to != NULL) {
		uint64_t lim = (uint64_t)to->tv_sec * 1000 +
		    (uint64_t)to->tv_usec / 1000;

		if (lim > 0 && now + lim < end)
			end = now + lim;
	}
	while (!q->done) {
		now = dnswait__mono_ms();
		if (now >= end || dnswait__step(q->ch, v->abort_fd, end - now, &q->done) < 0) {
			ares_cancel(q->ch);
			break;
		}
	}
	if (bytes != NULL)
		*bytes = q->ok ? q->len : 0;
	if (error != NULL)
		*error = 0;
	if (dnssec != NULL)
		*dnssec = DKIM_DNSSEC_UNKNOWN;
	if (q->ok)
		return DKIM_DNS_SUCCESS;
	return q->done ? DKIM_DNS_ERROR : DKIM_DNS_EXPIRED;
}

/* dns_cancel - libopendkim is done with the query: free it. */
static int
dns_cancel(void *srv, void *qh)
{
	struct dns_q *q = qh;

	(void)srv;
	if (q == NULL)
		return 0;
	ares_destroy(q->ch);
	free(q);
	return 0;
}

/* dns_close - libopendkim's resolver shutdown: v is freed by dkimverify_close. */
static void
dns_close(void *srv)
{
	(void)srv;
}

/* --- one verification (any thread) ----------------------------------------- */

/*
 * Only the first DKIMVERIFY_MAX_SIGS signatures are processed: the
 * others are never looked up (libopendkim calls this after reading the
 * header section, before any key query).
 */
static DKIM_CBSTAT
prescreen(DKIM *d, DKIM_SIGINFO **sigs, int nsigs)
{
	(void)d;
	for (int i = DKIMVERIFY_MAX_SIGS; i < nsigs; i++)
		dkim_sig_ignore(sigs[i]);
	return DKIM_CBSTAT_CONTINUE;
}

/* Copy src into dst[size] with every byte outside printable ASCII as '?'. */
static void
copy_printable(char *dst, size_t size, const unsigned char *src)
{
	size_t i = 0;

	if (src != NULL)
		for (; src[i] != '\0' && i + 1 < size; i++)
			dst[i] = src[i] > 0x20 && src[i] < 0x7f ? (char)src[i] : '?';
	dst[i] = '\0';
}

struct sigerr {
	int code;
	enum dkimverify_result result;
	const char *reason;
};

/* DKIM_SIGERROR_* -> a result (RFC 6376 6.1, RFC 8601 2.7.1) and a reason. */
static const struct sigerr sigerrs[] = {
	{ DKIM_SIGERROR_VERSION, DKIMVERIFY_PERMERROR, "unsupported signature version" },
	{ DKIM_SIGERROR_DOMAIN, DKIMVERIFY_PERMERROR, "i= is not within d=" },
	{ DKIM_SIGERROR_EXPIRED, DKIMVERIFY_PERMERROR, "signature expired" },
	{ DKIM_SIGERROR_FUTURE, DKIMVERIFY_PERMERROR, "signature dated in the future" },
	{ DKIM_SIGERROR_TIMESTAMPS, DKIMVERIFY_PERMERROR, "signature expires before it was made" },
	{ DKIM_SIGERROR_INVALID_HC, DKIMVERIFY_PERMERROR, "bad signature syntax: header canonicalization" },
	{ DKIM_SIGERROR_INVALID_BC, DKIMVERIFY_PERMERROR, "bad signature syntax: body canonicalization" },
	{ DKIM_SIGERROR_MISSING_A, DKIMVERIFY_PERMERROR, "bad signature syntax: no a=" },
	{ DKIM_SIGERROR_INVALID_A, DKIMVERIFY_PERMERROR, "unknown signature algorithm" },
	{ DKIM_SIGERROR_MISSING_H, DKIMVERIFY_PERMERROR, "bad signature syntax: no h=" },
	{ DKIM_SIGERROR_INVALID_L, DKIMVERIFY_PERMERROR, "bad signature syntax: l=" },
	{ DKIM_SIGERROR_INVALID_Q, DKIMVERIFY_PERMERROR, "bad signature syntax: q=" },
	{ DKIM_SIGERROR_INVALID_QO, DKIMVERIFY_PERMERROR, "bad signature syntax: q= option" },
	{ DKIM_SIGERROR_MISSING_D, DKIMVERIFY_PERMERROR, "bad signature syntax: no d=" },
	{ DKIM_SIGERROR_EMPTY_D, DKIMVERIFY_PERMERROR, "bad signature syntax: empty d=" },
	{ DKIM_SIGERROR_MISSING_S, DKIMVERIFY_PERMERROR, "bad signature syntax: no s=" },
	{ DKIM_SIGERROR_EMPTY_S, DKIMVERIFY_PERMERROR, "bad signature syntax: empty s=" },
	{ DKIM_SIGERROR_MISSING_B, DKIMVERIFY_PERMERROR, "bad signature syntax: no b=" },
	{ DKIM_SIGERROR_EMPTY_B, DKIMVERIFY_PERMERROR, "bad signature syntax: empty b=" },
	{ DKIM_SIGERROR_CORRUPT_B, DKIMVERIFY_PERMERROR, "bad signature syntax: b= is not base64" },
	{ DKIM_SIGERROR_NOKEY, DKIMVERIFY_PERMERROR, "key not found" },
	{ DKIM_SIGERROR_DNSSYNTAX, DKIMVERIFY_PERMERROR, "key record malformed" },
	{ DKIM_SIGERROR_KEYFAIL, DKIMVERIFY_TEMPERROR, "key query failed" },
	{ DKIM_SIGERROR_MISSING_BH, DKIMVERIFY_PERMERROR, "bad signature syntax: no bh=" },
	{ DKIM_SIGERROR_EMPTY_BH, DKIMVERIFY_PERMERROR, "bad signature syntax: empty bh=" },
	{ DKIM_SIGERROR_CORRUPT_BH, DKIMVERIFY_PERMERROR, "bad signature syntax: bh= is not base64" },
	{ DKIM_SIGERROR_BADSIG, DKIMVERIFY_FAIL, "signature verification failed" },
	{ DKIM_SIGERROR_SUBDOMAIN, DKIMVERIFY_PERMERROR, "key does not allow subdomains" },
	{ DKIM_SIGERROR_MULTIREPLY, DKIMVERIFY_PERMERROR, "more than one key record" },
	{ DKIM_SIGERROR_EMPTY_H, DKIMVERIFY_PERMERROR, "bad signature syntax: empty h=" },
	{ DKIM_SIGERROR_INVALID_H, DKIMVERIFY_PERMERROR, "From field not signed" },
	{ DKIM_SIGERROR_TOOLARGE_L, DKIMVERIFY_PERMERROR, "l= exceeds the body" },
	{ DKIM_SIGERROR_MBSFAILED, DKIMVERIFY_PERMERROR, "a required field not signed" },
	{ DKIM_SIGERROR_KEYVERSION, DKIMVERIFY_PERMERROR, "key record: unknown version" },
	{ DKIM_SIGERROR_KEYUNKNOWNHASH, DKIMVERIFY_PERMERROR, "key record: unknown hash" },
	{ DKIM_SIGERROR_KEYHASHMISMATCH, DKIMVERIFY_PERMERROR, "key does not allow the signature's hash" },
	{ DKIM_SIGERROR_NOTEMAILKEY, DKIMVERIFY_PERMERROR, "key is not for e-mail" },
	{ DKIM_SIGERROR_KEYTYPEMISSING, DKIMVERIFY_PERMERROR, "key record: no key type" },
	{ DKIM_SIGERROR_KEYTYPEUNKNOWN, DKIMVERIFY_PERMERROR, "key record: unknown key type" },
	{ DKIM_SIGERROR_KEYREVOKED, DKIMVERIFY_PERMERROR, "key revoked" },
	{ DKIM_SIGERROR_KEYDECODE, DKIMVERIFY_PERMERROR, "key cannot be decoded" },
	{ DKIM_SIGERROR_MISSING_V, DKIMVERIFY_PERMERROR, "bad signature syntax: no v=" },
	{ DKIM_SIGERROR_EMPTY_V, DKIMVERIFY_PERMERROR, "bad signature syntax: empty v=" },
	{ DKIM_SIGERROR_KEYTOOSMALL, DKIMVERIFY_POLICY, "key too short" },
};

/* sig_result - one signature's result after dkim_eom(). */
static void
sig_result(DKIM *d, DKIM_SIGINFO *si, struct dkimverify_sig *s)
{
	unsigned flags = dkim_sig_getflags(si);
	int err = dkim_sig_geterror(si), bh = dkim_sig_getbh(si);
	unsigned char *tag;
	size_t n;

	(void)d;
	copy_printable(s->domain, sizeof s->domain, dkim_sig_getdomain(si));
	copy_printable(s->selector, sizeof s->selector, dkim_sig_getselector(si));
	tag = dkim_sig_gettagvalue(si, false, (u_char *)(uintptr_t)"i");
	copy_printable(s->identity, sizeof s->identity, tag);
	tag = dkim_sig_gettagvalue(si, false, (u_char *)(uintptr_t)"a");
	copy_printable(s->algorithm, sizeof s->algorithm, tag);
	/* b= may be folded: its first 8 characters, white space left out. */
	tag = dkim_sig_gettagvalue(si, false, (u_char *)(uintptr_t)"b");
	n = 0;
	for (; tag != NULL && *tag != '\0' && n + 1 < sizeof s->bprefix; tag++)
		if (*tag > 0x20 && *tag < 0x7f)
			s->bprefix[n++] = (char)*tag;
	s->bprefix[n] = '\0';
	s->reason[0] = '\0';

	if ((flags & DKIM_SIGFLAG_PASSED) != 0 && bh == DKIM_SIGBH_MATCH &&
	    err == DKIM_SIGERROR_OK) {
		s->result = DKIMVERIFY_PASS;
		return;
	}
	/* libopendkim says BADSIG for a body hash mismatch too: tell them apart. */
	if (bh == DKIM_SIGBH_MISMATCH &&
	    (err == DKIM_SIGERROR_OK || err == DKIM_SIGERROR_BADSIG ||
	    err == DKIM_SIGERROR_UNKNOWN)) {
		s->result = DKIMVERIFY_FAIL;
		str_copy(s->reason, "body hash did not verify", sizeof s->reason);
		return;
	}
	if (err != DKIM_SIGERROR_OK && err != DKIM_SIGERROR_UNKNOWN) {
		for (size_t i = 0; i < sizeof sigerrs / sizeof sigerrs[0]; i++) {
			if (sigerrs[i].code == err) {
				s->result = sigerrs[i].result;
				str_copy(s->reason, sigerrs[i].reason, sizeof s->reason);
				return;
			}
		}
		s->result = DKIMVERIFY_NEUTRAL;
		snprintf(s->reason, sizeof s->reason, "%s",
		    dkim_sig_geterrorstr(err) != NULL ? dkim_sig_geterrorstr(err) :
		    "not verified");
		return;
	}
	if ((flags & DKIM_SIGFLAG_PROCESSED) != 0) {
		s->result = DKIMVERIFY_FAIL;
		str_copy(s->reason, "signature verification failed",
		    sizeof s->reason);
		return;
	}
	s->result = DKIMVERIFY_NEUTRAL;
	str_copy(s->reason, "not verified", sizeof s->reason);
}

/* run_fail - every signature found so far gets result and reason. */
static void
report_all(struct dkimverify_report *r, enum dkimverify_result result,
    const char *reason)
{
	for (size_t i = 0; i < r->nsig; i++) {
		r->sig[i].result = result;
		str_copy(r->sig[i].reason, reason, sizeof r->sig[i].reason);
	}
}

/* Fill r from d's signature list (after dkim_eoh or dkim_eom). */
static void
collect(DKIM *d, struct dkimverify_report *r)
{
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0;

	if (dkim_getsiglist(d, &sigs, &nsigs) != DKIM_STAT_OK || sigs == NULL)
		return;
	for (int i = 0; i < nsigs; i++) {
		if ((dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_IGNORE) != 0 ||
		    r->nsig == DKIMVERIFY_MAX_SIGS) {
			r->nignored++;
			continue;
		}
		sig_result(d, sigs[i], &r->sig[r->nsig++]);
	}
}

/* verify - dkimverify_run without clearing OpenSSL's error queue. */
static void
verify(struct dkimverify *v, const char *head, size_t hlen, const char *body,
    size_t blen, struct dkimverify_report *r)
{
	struct rfc5322_scan s;
	const char *f;
	size_t fl;
	DKIM_STAT st;
	DKIM *d;
	bool testkey = false;

	memset(r, 0, sizeof *r);
	d = dkim_verify(v->lib, verify_id, NULL, &st);
	if (d == NULL) {
		/* No handle, so no signature can be named: log, report none. */
		log_error("dkim", "verify_failed", "step=set-up status=\"%s\"",
		    dkim_getresultstr(st));
		return;
	}
	rfc5322_scan_init(&s, head, hlen);
	while (rfc5322_next(&s, &f, &fl)) {
		/* Not a field (no colon): not hashed, as the signer saw it. */
		if (rfc5322_field_colon(f, fl) == NULL)
			continue;
		/* A field libopendkim refuses is left out; signatures over it fail. */
		(void)dkim_header(d, (unsigned char *)(uintptr_t)f, fl);
	}
	st = dkim_eoh(d);
	if (st == DKIM_STAT_NOSIG) {
		dkim_free(d);
		return;
	}
	if (st != DKIM_STAT_OK) {
		collect(d, r);
		if (st == DKIM_STAT_NORESOURCE || st == DKIM_STAT_INTERNAL)
			report_all(r, DKIMVERIFY_TEMPERROR, "verifier error");
		dkim_free(d);
		return;
	}
	if (blen > 0 && (st = dkim_body(d, (unsigned char *)(uintptr_t)body,
	    blen)) != DKIM_STAT_OK) {
		collect(d, r);
		report_all(r, DKIMVERIFY_TEMPERROR, "verifier error");
		dkim_free(d);
		return;
	}
	st = dkim_eom(d, &testkey);
	collect(d, r);
	if (st == DKIM_STAT_NORESOURCE || st == DKIM_STAT_INTERNAL)
		report_all(r, DKIMVERIFY_TEMPERROR, "verifier error");
	dkim_free(d);
}

void
dkimverify_run(struct dkimverify *v, const char *head, size_t hlen,
    const char *body, size_t blen, struct dkimverify_report *r)
{
	verify(v, head != NULL ? head : "", head != NULL ? hlen : 0,
	    body != NULL ? body : "", body != NULL ? blen : 0, r);
	ERR_clear_error();
}

/* --- requests on the thread pool (loop thread) ----------------------------- */

static void maybe_finish(struct dkimverify *v);
static void pump(struct dkimverify *v);

static void
job_work(uv_work_t *w)
{
	struct dkimverify_job *j = w->data;

	dkimverify_run(j->v, j->head, j->hlen, j->body, j->blen, &j->report);
}

static void
job_unlink(struct dkimverify_job *j)
{
	struct dkimverify *v = j->v;

	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		v->jobs = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	v->njobs--;
}

static void
job_done(uv_work_t *w, int status)
{
	struct dkimverify_job *j = w->data;
	struct dkimverify *v = j->v;

	v->running--;
	job_unlink(j);
	if (j->cb != NULL) {
		if (status == 0 && !v->closing)
			j->cb(j->arg, 0, &j->report);
		else
			j->cb(j->arg, -ECANCELED, NULL);
	}
	free(j->head);
	free(j);
	pump(v);
	maybe_finish(v);
}

/*
 * job_queue - hand j to the thread pool; false when libuv refused (it
 * does only for a NULL callback): j is then answered and freed.
 */
static bool
job_queue(struct dkimverify_job *j)
{
	struct dkimverify *v = j->v;
	int r;

	j->started = true;
	j->work.data = j;
	if ((r = uv_queue_work(v->loop, &j->work, job_work, job_done)) != 0) {
		log_error("dkim", "verify_queue_failed", "error=\"%s\"",
		    uv_strerror(r));
		job_unlink(j);
		if (j->cb != NULL)
			j->cb(j->arg, r, NULL);
		free(j->head);
		free(j);
		return false;
	}
	v->running++;
	return true;
}

/* pump - start waiting requests while fewer than DKIMVERIFY_PARALLEL run. */
static void
pump(struct dkimverify *v)
{
	while (v->waiting != NULL &&
	    (v->running < DKIMVERIFY_PARALLEL || v->closing)) {
		struct dkimverify_job *j = v->waiting;

		v->waiting = j->qnext;
		if (v->waiting == NULL)
			v->waiting_tail = &v->waiting;
		/* Closing: it must not run; job_done answers -ECANCELED. */
		if (job_queue(j) && v->closing)
			(void)uv_cancel((uv_req_t *)&j->work);
	}
}

int
dkimverify_start(struct dkimverify *v, const char *head, size_t hlen,
    const char *body, size_t blen, dkimverify_cb *cb, void *arg,
    dkimverify_req *id)
{
	struct dkimverify_job *j;

	if (v->closing)
		return -ECANCELED;
	if (cb == NULL || (head == NULL && hlen > 0) || (body == NULL && blen > 0))
		return -EINVAL;
	if (hlen > SIZE_MAX / 2 || blen > SIZE_MAX / 2 - hlen)
		return -EINVAL;
	j = xcalloc(1, sizeof *j);
	j->v = v;
	j->cb = cb;
	j->arg = arg;
	j->head = xmalloc(hlen + blen + 1);
	if (hlen > 0)
		memcpy(j->head, head, hlen);
	if (blen > 0)
		memcpy(j->head + hlen, body, blen);
	j->head[hlen + blen] = '\0';
	j->hlen = hlen;
	j->body = j->head + hlen;
	j->blen = blen;
	j->id = ++v->next_id;
	j->next = v->jobs;
	if (v->jobs != NULL)
		v->jobs->prev = j;
	v->jobs = j;
	v->njobs++;
	*v->waiting_tail = j;
	v->waiting_tail = &j->qnext;
	if (id != NULL)
		*id = j->id;
	pump(v);
	return 0;
}

void
dkimverify_cancel(struct dkimverify *v, dkimverify_req id)
{
	for (struct dkimverify_job *j = v->jobs; j != NULL; j = j->next) {
		if (j->id != id)
			continue;
		j->cb = NULL;
		if (!j->started) {
			/* Still waiting its turn: it never runs. */
			struct dkimverify_job **pp = &v->waiting;

			while (*pp != j)
				pp = &(*pp)->qnext;
			*pp = j->qnext;
			if (v->waiting_tail == &j->qnext)
				v->waiting_tail = pp;
			job_unlink(j);
			free(j->head);
			free(j);
			maybe_finish(v);
			return;
		}
		/* Queued on the pool and not picked up: it never runs either. */
		(void)uv_cancel((uv_req_t *)&j->work);
		return;
	}
}

size_t
dkimverify_pending(const struct dkimverify *v)
{
	size_t n = 0;

	for (const struct dkimverify_job *j = v->jobs; j != NULL; j = j->next)
		n += j->cb != NULL;
	return n;
}

/* --- lifecycle ------------------------------------------------------------- */

static void
on_close_timer(uv_handle_t *h)
{
	struct dkimverify *v = h->data;
	void (*closed)(void *) = v->closed;
	void *arg = v->closed_arg;

	dkim_close(v->lib);
	close(v->abort_fd);
	free(v);
	ares_library_cleanup();
	if (closed != NULL)
		closed(arg);
}

/* maybe_finish - once closing and no job is left, close the timer: free. */
static void
maybe_finish(struct dkimverify *v)
{
	if (!v->closing || v->njobs > 0 ||
	    uv_is_closing((uv_handle_t *)&v->close_timer))
		return;
	uv_close((uv_handle_t *)&v->close_timer, on_close_timer);
}

void
dkimverify_close(struct dkimverify *v, void (*closed)(void *arg), void *arg)
{
	uint64_t one = 1;

	if (v == NULL || v->closing)
		return;
	v->closing = true;
	v->closed = closed;
	v->closed_arg = arg;
	/* Running verifications: their DNS waits end at once. */
	if (write(v->abort_fd, &one, sizeof one) != (ssize_t)sizeof one)
		log_warn("dkim", "verify_abort_failed", "errno=%d", errno);
	for (struct dkimverify_job *j = v->jobs; j != NULL; j = j->next)
		if (j->started)
			(void)uv_cancel((uv_req_t *)&j->work);
	/* Those waiting their turn are queued and cancelled: answered later. */
	pump(v);
	maybe_finish(v);
}

/* lib_open - dkimverify_open's library handle and its options. */
static int
lib_open(struct dkimverify *v, const struct dkimverify_opts *o, char *err,
    size_t errsz)
{
	unsigned flags = DKIM_LIBFLAGS_FIXCRLF | DKIM_LIBFLAGS_BADSIGHANDLES;
	dkim_query_t method = DKIM_QUERY_FILE;
	uint64_t secs = (v->timeout_ms + 999) / 1000;
	unsigned timeout = secs > 3600 ? 3600 : (unsigned)secs;

	if ((v->lib = dkim_init(NULL, NULL)) == NULL)
		return str_err(err, errsz, -ENOMEM, "dkim_init failed");
	if (!dkim_libfeature(v->lib, DKIM_FEATURE_SHA256) ||
	    !dkim_libfeature(v->lib, DKIM_FEATURE_ED25519))
		return str_err(err, errsz, -ENOTSUP,
		    "libopendkim lacks rsa-sha256 or ed25519-sha256");
	if (dkim_options(v->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
	    sizeof flags) != DKIM_STAT_OK ||
	    dkim_options(v->lib, DKIM_OP_SETOPT, DKIM_OPTS_TIMEOUT, &timeout,
	    sizeof timeout) != DKIM_STAT_OK ||
	    dkim_set_prescreen(v->lib, prescreen) != DKIM_STAT_OK)
		return str_err(err, errsz, -EIO, "cannot set libopendkim options");
	if (o->key_file != NULL) {
		if (dkim_options(v->lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD,
		    &method, sizeof method) != DKIM_STAT_OK ||
		    dkim_options(v->lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO,
		    (void *)(uintptr_t)o->key_file, strlen(o->key_file)) !=
		    DKIM_STAT_OK)
			return str_err(err, errsz, -EIO,
			    "cannot set libopendkim's key file");
	}
	/*
	 * The service handle is v, which libopendkim must neither make
	 * (init: NULL) nor free (close: ours, a no-op); its stock resolver
	 * is set up lazily, so no handle of its own exists yet.
	 */
	dkim_dns_set_init(v->lib, NULL);
	dkim_dns_set_close(v->lib, dns_close);
	if (dkim_dns_set_query_service(v->lib, v) != NULL)
		return str_err(err, errsz, -EIO,
		    "libopendkim made a resolver of its own");
	dkim_dns_set_query_start(v->lib, dns_start);
	dkim_dns_set_query_waitreply(v->lib, dns_wait);
	dkim_dns_set_query_cancel(v->lib, dns_cancel);
	return 0;
}

int
dkimverify_open(struct dkimverify **out, uv_loop_t *loop,
    const struct dkimverify_opts *o, char *err, size_t errsz)
{
	static const struct dkimverify_opts defaults;
	struct dkimverify *v;
	const char *server;
	int r;

	*out = NULL;
	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if (o == NULL)
		o = &defaults;
	server = o->dns_server != NULL ? o->dns_server : "";
	if (o->key_file != NULL && o->key_file[0] == '\0')
		return str_err(err, errsz, -EINVAL, "key_file: empty");
	if (o->key_file != NULL && strlen(o->key_file) >= PATH_MAX)
		return str_err(err, errsz, -EINVAL, "key_file: too long");
	if (strlen(server) >= sizeof v->server)
		return str_err(err, errsz, -EINVAL, "dns_server: too long");
	if ((r = dnswait__library_init(server, err, errsz)) < 0)
		return r;

	v = xcalloc(1, sizeof *v);
	v->loop = loop;
	str_copy(v->server, server, sizeof v->server);
	v->timeout_ms = o->dns_timeout_ms > 0 ? o->dns_timeout_ms :
	    DKIMVERIFY_DNS_TIMEOUT_MS;
	if ((v->abort_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		r = -errno;
		free(v);
		ares_library_cleanup();
		return str_err(err, errsz, r, "eventfd: %s", strerror(-r));
	}
	if ((r = lib_open(v, o, err, errsz)) < 0) {
		if (v->lib != NULL)
			dkim_close(v->lib);
		close(v->abort_fd);
		free(v);
		ares_library_cleanup();
		ERR_clear_error();
		return r;
	}
	if ((r = uv_timer_init(loop, &v->close_timer)) != 0) {
		dkim_close(v->lib);
		close(v->abort_fd);
		free(v);
		ares_library_cleanup();
		return str_err(err, errsz, r, "uv_timer_init: %s", uv_strerror(r));
	}
	v->close_timer.data = v;
	v->waiting_tail = &v->waiting;
	*out = v;
	return 0;
}
