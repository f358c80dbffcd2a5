/*
 * spfcheck - SPF preflight with libspf2.  See spfcheck.h.
 *
 * Threads.  spfcheck_eval() runs on the loop thread; an evaluation runs
 * in a uv_queue_work() worker; its after-work callback, the cache and
 * every user callback are on the loop thread again.  The worker touches
 * only its struct spf_eval (inputs written before queueing, outputs read
 * after the after-work callback) and the immutable server string and
 * abort eventfd of its struct spfcheck.
 *
 * libspf2 and threads.  An SPF_server_t points at its DNS layer, and our
 * layer holds the state of one evaluation (its c-ares channel, RFC 7208
 * counters, deadline), so each evaluation builds its own SPF_server_t,
 * layer, request and response and frees them at the end; nothing of
 * libspf2 is shared between threads.  libspf2 1.2.10 has no other
 * mutable globals on this path: the four log handler pointers are set
 * once, before the first evaluation is queued, and only its resolv layer
 * keeps per-thread res_state, which kurier does not use.  Building a
 * server compiles two tiny macro strings (default explanation, empty
 * local policy): microseconds.  libspf2's cache layer is not used: it
 * has its own mutex (thread-safe), but it would sit below the RFC 7208
 * counters, which must see every lookup of an evaluation; and the
 * verdict cache here already absorbs repeats of one (ip, domain).
 *
 * The DNS layer libspf2 is given (c-ares, the RFC 7208 4.6.4 counters)
 * is in spf_dns.c; spfcheck_int.h is what the two share.
 */
#include "policy/spfcheck.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <spf2/spf.h>
#include <spf2/spf_dns.h>
#include <spf2/spf_dns_rr.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "policy/dnswait_int.h"
#include "policy/spfcheck_int.h"

static const char *const verdict_names[] = {
	[SPFCHECK_NONE] = "none",
	[SPFCHECK_NEUTRAL] = "neutral",
	[SPFCHECK_PASS] = "pass",
	[SPFCHECK_FAIL] = "fail",
	[SPFCHECK_SOFTFAIL] = "softfail",
	[SPFCHECK_TEMPERROR] = "temperror",
	[SPFCHECK_PERMERROR] = "permerror",
};

const char *
spfcheck_verdict_name(enum spfcheck_verdict v)
{
	if ((unsigned)v < sizeof verdict_names / sizeof verdict_names[0])
		return verdict_names[v];
	return "?";
}

/* --- libspf2 log output -------------------------------------------------- */

/* libspf2 calls its error handler on internal assertion failures only. */
static void spf_log_error(const char *file, int line, const char *msg)
    __attribute__((noreturn));

static void
spf_log_error(const char *file, int line, const char *msg)
{
	char q[512];

	log_panic("spfcheck", "libspf2_error", "file=%s line=%d msg=%s",
	    file != NULL ? file : "?", line, log_quotes(q, sizeof q, msg));
}

static void
spf_log_warning(const char *file, int line, const char *msg)
{
	char q[512];

	log_warn("spfcheck", "libspf2_warning", "file=%s line=%d msg=%s",
	    file != NULL ? file : "?", line, log_quotes(q, sizeof q, msg));
}

static void
spf_log_debug(const char *file, int line, const char *msg)
{
	char q[512];

	log_debug("spfcheck", "libspf2", "file=%s line=%d msg=%s",
	    file != NULL ? file : "?", line, log_quotes(q, sizeof q, msg));
}

static void
spf_log_setup(void)
{
	SPF_error_handler = spf_log_error;
	SPF_warning_handler = spf_log_warning;
	SPF_info_handler = spf_log_debug;
	SPF_debug_handler = spf_log_debug;
}

/* --- helpers ------------------------------------------------------------- */

/*
 * spfcheck__printable - copy src into dst[size] with bytes outside printable ASCII
 * as '?', cut with "..." when it does not fit.
 */
void
spfcheck__printable(char *dst, size_t size, const char *src)
{
	size_t i;

	for (i = 0; src[i] != '\0' && i + 1 < size; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
	if (src[i] != '\0' && size >= 4)
		memcpy(dst + size - 4, "...", 4);
}

static void why_set(struct spf_eval *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* why_set - format e->why, made printable. */
static void
why_set(struct spf_eval *e, const char *fmt, ...)
{
	char raw[SPFCHECK_WHY_SIZE + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	spfcheck__printable(e->why, sizeof e->why, raw);
}

/* --- one evaluation (worker thread) -------------------------------------- */

/* first_error - libspf2's first error message in resp, or "". */
static const char *
first_error(SPF_response_t *resp)
{
	for (int i = 0; i < SPF_response_messages(resp); i++) {
		SPF_error_t *m = SPF_response_message(resp, i);

		if (SPF_error_errorp(m) && SPF_error_message(m) != NULL)
			return SPF_error_message(m);
	}
	return "";
}

/* verdict_of - set e->verdict and e->why from libspf2's answer. */
static void
verdict_of(struct spf_eval *e, struct spf_ctx *c, SPF_response_t *resp,
    SPF_errcode_t err)
{
	const char *rec = c->nrecords == 1 ? c->record : "";
	const char *sep1 = rec[0] != '\0' ? " (" : "", *sep2 = rec[0] != '\0' ? ")" : "";

	switch (c->stop) {
	case STOP_TERMS:
		e->verdict = SPFCHECK_PERMERROR;
		why_set(e, "%s: more than %d DNS-querying terms (RFC 7208 4.6.4)%s%s%s",
		    e->domain, SPFCHECK_MAX_TERMS, sep1, rec, sep2);
		return;
	case STOP_VOID:
		e->verdict = SPFCHECK_PERMERROR;
		why_set(e, "%s: more than %d void lookups (RFC 7208 4.6.4)%s%s%s",
		    e->domain, SPFCHECK_MAX_VOID, sep1, rec, sep2);
		return;
	case STOP_QUERIES:
		e->verdict = SPFCHECK_PERMERROR;
		why_set(e, "%s: more than %d DNS queries", e->domain,
		    SPFCHECK_MAX_QUERIES);
		return;
	case STOP_DEADLINE:
		e->verdict = SPFCHECK_TEMPERROR;
		why_set(e, "%s: evaluation took longer than %llu ms (%s)", e->domain,
		    (unsigned long long)(c->timeout_ms > SPFCHECK_EVAL_MS ?
		    c->timeout_ms : SPFCHECK_EVAL_MS), c->dns_error);
		return;
	case STOP_ABORT:
		e->verdict = SPFCHECK_TEMPERROR;
		e->interrupted = true;
		why_set(e, "canceled");
		return;
	case STOP_NONE:
		break;
	}

	switch (SPF_response_result(resp)) {
	case SPF_RESULT_PASS:
		e->verdict = SPFCHECK_PASS;
		why_set(e, "%s: %s is permitted%s%s%s", e->domain, e->ip, sep1, rec, sep2);
		return;
	case SPF_RESULT_FAIL:
		e->verdict = SPFCHECK_FAIL;
		why_set(e, "%s: %s is not permitted%s%s%s", e->domain, e->ip, sep1, rec,
		    sep2);
		return;
	case SPF_RESULT_SOFTFAIL:
		e->verdict = SPFCHECK_SOFTFAIL;
		why_set(e, "%s: %s is not permitted, softfail%s%s%s", e->domain, e->ip,
		    sep1, rec, sep2);
		return;
	case SPF_RESULT_NEUTRAL:
		e->verdict = SPFCHECK_NEUTRAL;
		why_set(e, "%s: %s is neither permitted nor denied%s%s%s", e->domain,
		    e->ip, sep1, rec, sep2);
		return;
	case SPF_RESULT_TEMPERROR:
		e->verdict = SPFCHECK_TEMPERROR;
		why_set(e, "%s: temporary DNS error (%s)", e->domain,
		    c->dns_error[0] != '\0' ? c->dns_error : SPF_strerror(err));
		return;
	case SPF_RESULT_PERMERROR:
		e->verdict = SPFCHECK_PERMERROR;
		why_set(e, "%s: %s%s%s%s", e->domain,
		    SPF_strerror(SPF_response_errcode(resp)), sep1, rec, sep2);
		return;
	case SPF_RESULT_NONE:
	case SPF_RESULT_INVALID:
	default:
		break;
	}
	/* No result: the record could not be fetched or compiled. */
	if (err == SPF_E_DNS_ERROR) {
		e->verdict = SPFCHECK_TEMPERROR;
		why_set(e, "%s: temporary DNS error (%s)", e->domain,
		    c->dns_error[0] != '\0' ? c->dns_error : first_error(resp));
	} else if (c->nrecords > 1) {
		e->verdict = SPFCHECK_PERMERROR;
		why_set(e, "%s: %u SPF records", e->domain, c->nrecords);
	} else if (c->nrecords == 1) {
		/* Published but not compiled: a syntax error (RFC 7208 4.6). */
		e->verdict = SPFCHECK_PERMERROR;
		why_set(e, "%s: %s (%s)", e->domain, first_error(resp), rec);
	} else {
		e->verdict = SPFCHECK_NONE;
		why_set(e, "%s: no SPF record", e->domain);
	}
}

/*
 * spf_run - evaluate e with libspf2 through kurier's DNS layer.  The
 * libspf2 entry point SPF_request_query_mailfrom() passes loopback
 * addresses without looking at the record; its two steps (fetch the
 * record, interpret it) are called here instead.
 */
static void
spf_run(struct spf_eval *e, const char *server, uint64_t timeout_ms, int abort_fd)
{
	struct spf_ctx *c = xcalloc(1, sizeof *c);
	SPF_dns_server_t *layer;
	SPF_server_t *spf;
	SPF_request_t *req;
	SPF_response_t *resp;
	SPF_record_t *rec = NULL;
	SPF_errcode_t err;
	char from[sizeof "postmaster@" + SPFCHECK_DOMAIN_MAX];
	int r;

	c->e = e;
	c->abort_fd = abort_fd;
	c->timeout_ms = timeout_ms;
	c->deadline = dnswait__mono_ms() + (timeout_ms > SPFCHECK_EVAL_MS ? timeout_ms :
	    SPFCHECK_EVAL_MS);
	if ((r = dnswait__open(&c->channel, server, c->timeout_ms,
	    SPFCHECK_EDNS_SIZE)) != ARES_SUCCESS) {
		e->verdict = SPFCHECK_TEMPERROR;
		why_set(e, "%s: resolver: %s", e->domain, ares_strerror(r));
		free(c);
		return;
	}
	/*
	 * No destroy hook: SPF_server_free() leaves a layer it was given
	 * alone (destroy_resolver is 0), and a NULL hook says the same to
	 * SPF_dns_free(); the layer is freed below.
	 */
	layer = spfcheck__layer_new(c);
	if ((spf = SPF_server_new_dns(layer, 0)) == NULL)
		log_fatal("spfcheck", "out_of_memory", "what=SPF_server_t");
	if (SPF_server_set_rec_dom(spf, "unknown") != SPF_E_SUCCESS ||
	    (req = SPF_request_new(spf)) == NULL ||
	    (resp = SPF_response_new(req)) == NULL)
		log_fatal("spfcheck", "out_of_memory", "what=SPF_request_t");
	SPF_server_set_max_dns_mech(spf, SPFCHECK_MAX_TERMS);
	SPF_server_set_max_dns_mx(spf, SPFCHECK_MAX_NAMES);
	SPF_server_set_max_dns_ptr(spf, SPFCHECK_MAX_NAMES);

	snprintf(from, sizeof from, "postmaster@%s", e->domain);
	if (e->family == AF_INET) {
		struct in_addr a4;

		memcpy(&a4, e->addr, sizeof a4);
		err = SPF_request_set_ipv4(req, a4);
	} else {
		struct in6_addr a6;

		memcpy(&a6, e->addr, sizeof a6);
		err = SPF_request_set_ipv6(req, a6);
	}
	if (err == SPF_E_SUCCESS && SPF_request_set_env_from(req, from) != 0)
		err = SPF_E_NO_MEMORY;
	if (err == SPF_E_SUCCESS)
		err = SPF_request_set_helo_dom(req, e->helo);
	if (err != SPF_E_SUCCESS)
		log_fatal("spfcheck", "out_of_memory", "what=SPF_request_t");

	req->cur_dom = req->env_from_dp;
	err = SPF_server_get_record(spf, req, resp, &rec);
	if (err == SPF_E_SUCCESS && rec != NULL) {
		resp->spf_record_exp = rec;
		err = SPF_record_interpret(rec, req, resp, 0);
	}
	if (rec != NULL)
		SPF_record_free(rec);
	verdict_of(e, c, resp, err);

	SPF_response_free(resp);
	SPF_request_free(req);
	SPF_server_free(spf);
	free(layer);
	ares_destroy(c->channel);
	free(c);
}

static void
work_cb(uv_work_t *w)
{
	struct spf_eval *e = w->data;
	struct spfcheck *s = e->s;

	spf_run(e, s->server, s->timeout_ms, s->abort_fd);
}

/* --- cache (loop thread) ------------------------------------------------- */

static unsigned
key_bucket(const char *key)
{
	return fnv1a32_str(FNV1A32_INIT, key) & (SPFCHECK_BUCKETS - 1);
}

static void
cache_remove(struct spfcheck *s, struct spf_entry *x)
{
	struct spf_entry **pp = &s->buckets[x->bucket];

	while (*pp != x)
		pp = &(*pp)->hnext;
	*pp = x->hnext;
	if (x->older != NULL)
		x->older->newer = x->newer;
	else
		s->oldest = x->newer;
	if (x->newer != NULL)
		x->newer->older = x->older;
	else
		s->newest = x->older;
	s->nentries--;
	free(x);
}

static void
cache_clear(struct spfcheck *s)
{
	while (s->oldest != NULL)
		cache_remove(s, s->oldest);
}

/* cache_find - the live entry for key, dropping it if it has expired. */
static struct spf_entry *
cache_find(struct spfcheck *s, const char *key)
{
	struct spf_entry *x;

	for (x = s->buckets[key_bucket(key)]; x != NULL; x = x->hnext)
		if (strcmp(x->key, key) == 0)
			break;
	if (x != NULL && x->expires <= uv_now(s->loop)) {
		cache_remove(s, x);
		x = NULL;
	}
	return x;
}

static void
cache_put(struct spfcheck *s, const char *key, enum spfcheck_verdict v,
    const char *why)
{
	uint64_t ttl = v == SPFCHECK_TEMPERROR ? s->temp_ttl_ms : s->ttl_ms;
	uint64_t now = uv_now(s->loop);
	size_t wlen = strlen(why);
	struct spf_entry *x;

	if (s->max_entries == 0 || ttl == 0)
		return;
	if ((x = cache_find(s, key)) != NULL)
		cache_remove(s, x);
	while (s->oldest != NULL &&
	    (s->nentries >= s->max_entries || s->oldest->expires <= now))
		cache_remove(s, s->oldest);
	x = xmalloc(sizeof *x + wlen + 1);
	memset(x, 0, sizeof *x);
	str_copy(x->key, key, sizeof x->key);
	memcpy(x->why, why, wlen + 1);
	x->verdict = v;
	x->expires = now + ttl;
	x->bucket = key_bucket(key);
	x->hnext = s->buckets[x->bucket];
	s->buckets[x->bucket] = x;
	x->older = s->newest;
	if (s->newest != NULL)
		s->newest->newer = x;
	else
		s->oldest = x;
	s->newest = x;
	s->nentries++;
}

/* --- loop side ----------------------------------------------------------- */

static void on_timer_close(uv_handle_t *h);
static void on_ready(uv_timer_t *t);
static void after_work_cb(uv_work_t *w, int status);

/* ready_push - queue cb(arg, v, why) for the next loop iteration. */
static void
ready_push(struct spfcheck *s, spfcheck_cb *cb, void *arg,
    enum spfcheck_verdict v, const char *why)
{
	size_t wlen = strlen(why);
	struct spf_ready *rd = xmalloc(sizeof *rd + wlen + 1);

	rd->next = NULL;
	rd->cb = cb;
	rd->arg = arg;
	rd->verdict = v;
	memcpy(rd->why, why, wlen + 1);
	if (s->ready == NULL)
		uv_timer_start(&s->ready_timer, on_ready, 0, 0);
	*s->ready_tail = rd;
	s->ready_tail = &rd->next;
}

/* eval_unlink - take e off the in-flight list. */
static void
eval_unlink(struct spfcheck *s, struct spf_eval *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		s->evals = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	s->inflight--;
}

/* pump - start waiting evaluations while fewer than SPFCHECK_PARALLEL run. */
static void
pump(struct spfcheck *s)
{
	struct spf_eval *e;
	int r;

	while (!s->closing && s->started < SPFCHECK_PARALLEL &&
	    (e = s->waiting) != NULL) {
		if ((s->waiting = e->qnext) == NULL)
			s->waiting_tail = &s->waiting;
		r = uv_queue_work(s->loop, &e->work, work_cb, after_work_cb);
		if (r != 0) /* only for a NULL callback: a bug */
			log_panic("spfcheck", "queue_work_failed", "error=\"%s\"",
			    uv_strerror(r));
		e->started = true;
		s->started++;
	}
}

/* maybe_finish - once closing and idle, close the timer; its callback frees. */
static void
maybe_finish(struct spfcheck *s)
{
	if (!s->closing || s->timer_closing || s->inflight > 0 || s->ready != NULL)
		return;
	s->timer_closing = true;
	uv_close((uv_handle_t *)&s->ready_timer, on_timer_close);
}

static void
on_timer_close(uv_handle_t *h)
{
	struct spfcheck *s = h->data;
	void (*cb)(void *) = s->close_cb;
	void *arg = s->close_arg;

	cache_clear(s);
	close(s->abort_fd);
	ares_library_cleanup();
	free(s);
	if (cb != NULL)
		cb(arg);
}

/* on_ready - deliver the cached answers queued since the last run. */
static void
on_ready(uv_timer_t *t)
{
	struct spfcheck *s = t->data;
	struct spf_ready *r = s->ready, *next;

	s->ready = NULL;
	s->ready_tail = &s->ready;
	for (; r != NULL; r = next) {
		next = r->next;
		r->cb(r->arg, r->verdict, r->why);
		free(r);
	}
	maybe_finish(s);
}

static void
after_work_cb(uv_work_t *w, int status)
{
	struct spf_eval *e = w->data;
	struct spfcheck *s = e->s;
	struct spf_waiter *wt, *next;

	eval_unlink(s, e);
	s->started--;
	if (status == UV_ECANCELED) {
		e->verdict = SPFCHECK_TEMPERROR;
		e->interrupted = true;
		why_set(e, "canceled");
	} else {
		s->stats.evaluations++;
		s->stats.queries += e->queries;
	}
	if (!e->interrupted)
		cache_put(s, e->key, e->verdict, e->why);
	for (wt = e->waiters; wt != NULL; wt = next) {
		next = wt->next;
		wt->cb(wt->arg, e->verdict, e->why);
		free(wt);
	}
	free(e);
	pump(s);
	maybe_finish(s);
}

int
spfcheck_open(struct spfcheck **out, uv_loop_t *loop, const char *server,
    uint64_t timeout_ms, char *err, size_t errsz)
{
	static pthread_once_t log_once = PTHREAD_ONCE_INIT;
	struct spfcheck *s;
	int r;

	*out = NULL;
	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if (server == NULL)
		server = "";
	if (timeout_ms == 0) {
		snprintf(err, errsz, "dns_timeout: must be more than 0");
		return -EINVAL;
	}
	if (strlen(server) >= sizeof s->server) {
		snprintf(err, errsz, "dns_server: too long");
		return -EINVAL;
	}
	pthread_once(&log_once, spf_log_setup);
	if ((r = dnswait__library_init(server, err, errsz)) < 0)
		return r;

	s = xcalloc(1, sizeof *s);
	s->loop = loop;
	str_copy(s->server, server, sizeof s->server);
	s->timeout_ms = timeout_ms;
	s->max_entries = SPFCHECK_CACHE_MAX;
	s->ttl_ms = SPFCHECK_TTL_MS;
	s->temp_ttl_ms = SPFCHECK_TEMP_TTL_MS;
	s->ready_tail = &s->ready;
	s->waiting_tail = &s->waiting;
	if ((s->abort_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		r = -errno;
		snprintf(err, errsz, "eventfd: %s", strerror(-r));
		free(s);
		ares_library_cleanup();
		return r;
	}
	uv_timer_init(loop, &s->ready_timer);
	s->ready_timer.data = s;
	*out = s;
	return 0;
}

void
spfcheck_close(struct spfcheck *s, void (*cb)(void *arg), void *arg)
{
	uint64_t one = 1;
	struct spf_eval *e, *enext;

	if (s->closing)
		log_panic("spfcheck", "double_close", "closing=1");
	s->closing = true;
	s->close_cb = cb;
	s->close_arg = arg;
	/* Running evaluations see the eventfd in their next poll. */
	if (write(s->abort_fd, &one, sizeof one) != (ssize_t)sizeof one)
		log_error("spfcheck", "abort_failed", "error=\"%s\"", strerror(errno));
	for (e = s->evals; e != NULL; e = e->next)
		if (e->started)
			(void)uv_cancel((uv_req_t *)&e->work);
	/* Those never started are answered through the loop. */
	for (e = s->waiting; e != NULL; e = enext) {
		struct spf_waiter *wt, *wnext;

		enext = e->qnext;
		eval_unlink(s, e);
		for (wt = e->waiters; wt != NULL; wt = wnext) {
			wnext = wt->next;
			ready_push(s, wt->cb, wt->arg, SPFCHECK_TEMPERROR, "canceled");
			free(wt);
		}
		free(e);
	}
	s->waiting = NULL;
	s->waiting_tail = &s->waiting;
	maybe_finish(s);
}

/* domain_ok - 1..255 octets of printable ASCII without space or '@'. */
static bool
domain_ok(const char *d)
{
	size_t n = 0;

	for (; d[n] != '\0'; n++)
		if ((unsigned char)d[n] <= 0x20 || (unsigned char)d[n] >= 0x7f ||
		    d[n] == '@')
			return false;
	return n > 0 && n <= SPFCHECK_DOMAIN_MAX;
}

int
spfcheck_eval(struct spfcheck *s, const char *ip, const char *domain,
    const char *helo, spfcheck_cb *cb, void *arg)
{
	union {
		struct in_addr v4;
		struct in6_addr v6;
		unsigned char b[16];
	} a;
	char ipn[INET6_ADDRSTRLEN], dom[SPFCHECK_DOMAIN_MAX + 1];
	char key[SPFCHECK_KEY_SIZE];
	struct spf_entry *x;
	struct spf_eval *e;
	struct spf_waiter *wt;
	int family;

	if (s->closing)
		return -ECANCELED;
	if (helo == NULL || helo[0] == '\0')
		helo = "unknown";
	if (ip == NULL || domain == NULL || cb == NULL || !domain_ok(domain) ||
	    !domain_ok(helo))
		return -EINVAL;
	if (inet_pton(AF_INET, ip, &a.v4) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &a.v6) == 1)
		family = AF_INET6;
	else
		return -EINVAL;
	/* Receivers see an IPv4-mapped address as the IPv4 one. */
	if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a.v6)) {
		memmove(a.b, a.b + 12, 4);
		family = AF_INET;
	}
	/* One key per address and domain, however they were written. */
	inet_ntop(family, a.b, ipn, sizeof ipn);
	str_copy(dom, domain, sizeof dom);
	str_lower(dom);
	if (dom[1] != '\0' && dom[strlen(dom) - 1] == '.')
		dom[strlen(dom) - 1] = '\0';
	snprintf(key, sizeof key, "%s %s", ipn, dom);

	if ((x = cache_find(s, key)) != NULL) {
		ready_push(s, cb, arg, x->verdict, x->why);
		s->stats.cache_hits++;
		return 0;
	}

	wt = xmalloc(sizeof *wt);
	wt->next = NULL;
	wt->cb = cb;
	wt->arg = arg;
	for (e = s->evals; e != NULL; e = e->next) {
		if (strcmp(e->key, key) == 0) {
			*e->wtail = wt;
			e->wtail = &wt->next;
			s->stats.shared++;
			return 0;
		}
	}

	e = xcalloc(1, sizeof *e);
	e->s = s;
	e->work.data = e;
	e->waiters = wt;
	e->wtail = &wt->next;
	str_copy(e->key, key, sizeof e->key);
	str_copy(e->ip, ipn, sizeof e->ip);
	e->family = family;
	memcpy(e->addr, a.b, sizeof a.b);
	str_copy(e->domain, dom, sizeof e->domain);
	str_copy(e->helo, helo, sizeof e->helo);
	e->next = s->evals;
	if (s->evals != NULL)
		s->evals->prev = e;
	s->evals = e;
	s->inflight++;
	*s->waiting_tail = e;
	s->waiting_tail = &e->qnext;
	pump(s);
	return 0;
}

void
spfcheck_stats(const struct spfcheck *s, struct spfcheck_stats *st)
{
	*st = s->stats;
	st->cached = s->nentries;
}

void
spfcheck_set_cache(struct spfcheck *s, size_t max_entries, uint64_t ttl_ms,
    uint64_t temp_ttl_ms)
{
	cache_clear(s);
	s->max_entries = max_entries;
	s->ttl_ms = ttl_ms;
	s->temp_ttl_ms = temp_ttl_ms;
}
