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
 * DNS: c-ares rather than res_nquery on a private res_state.  c-ares
 * takes "host:port" and "[v6]:port" servers as configured
 * (ares_set_servers_ports_csv) where res_state carries ports and IPv6
 * servers awkwardly, its timeouts are in milliseconds rather than whole
 * seconds, it retries over TCP on truncation, and it parses A, AAAA,
 * MX, TXT and PTR answers for us (deliver/dns uses it too).  Each
 * evaluation has a private channel, driven by a blocking loop of
 * ares_getsock() + poll() + ares_process_fd() in the worker; poll()
 * rather than select() on ares_fds() because a busy kurier holds more
 * than FD_SETSIZE descriptors.  The poll also watches an eventfd that
 * spfcheck_close() signals, so a running evaluation stops at once.
 *
 * RFC 7208 4.6.4 in the layer.  libspf2 1.2.10 counts DNS mechanisms per
 * record (an include starts a fresh count), so a chain of includes is
 * only stopped by its recursion depth of 20, and it has no void lookup
 * limit.  The layer therefore counts per evaluation, from the queries
 * themselves: the first TXT query fetches the record itself; every later
 * TXT query is an include or redirect; an A/AAAA query for the next name
 * of the last MX or PTR answer is that mechanism's address lookup (libspf2
 * makes them in answer order, one after another); any other query is a
 * term of its own (a, mx, ptr, exists).  Type SPF (99) is never asked
 * (RFC 7208 3.1, 14.1).  Past the limit the layer answers TRY_AGAIN, which
 * ends the evaluation at once, and the verdict becomes permerror.  A
 * record using the %{p} macro has its PTR lookup counted as a term too:
 * such records (RFC 7208 5.5 says not to) reach the limit one term early.
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

#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"

#define SPFCHECK_CACHE_MAX 4096
#define SPFCHECK_TTL_MS (5 * 60 * 1000)
#define SPFCHECK_TEMP_TTL_MS (30 * 1000)
#define SPFCHECK_BUCKETS 1024 /* power of two */
#define SPFCHECK_MAX_TERMS 10 /* RFC 7208 4.6.4 */
#define SPFCHECK_MAX_VOID 2   /* RFC 7208 4.6.4 */
#define SPFCHECK_MAX_NAMES 10 /* names looked at per mx or ptr term */
#define SPFCHECK_EVAL_MS 20000 /* RFC 7208 4.6.4: "at least 20 seconds" */
/* 1 record + 10 terms of up to 1 + 10 queries, with room: a bug guard. */
#define SPFCHECK_MAX_QUERIES 150
#define SPFCHECK_A_MAX 64 /* addresses taken from one A or AAAA answer */
#define SPFCHECK_DOMAIN_MAX 255
#define SPFCHECK_KEY_SIZE (INET6_ADDRSTRLEN + 1 + SPFCHECK_DOMAIN_MAX + 1)
#define SPFCHECK_EDNS_SIZE 1232
/*
 * Evaluations on the thread pool at once.  A dead resolver holds a
 * worker for up to the evaluation's 20 seconds, and the pool (4 threads
 * by default) also runs password hashing and file work; distinct keys
 * are few (our sending domains times our outbound addresses), so two
 * are plenty and the rest wait their turn here.
 */
#define SPFCHECK_PARALLEL 2

/* A caller waiting for an evaluation's verdict. */
struct spf_waiter {
	struct spf_waiter *next;
	spfcheck_cb *cb;
	void *arg;
};

/* One evaluation in flight, shared by all callers asking the same. */
struct spf_eval {
	uv_work_t work;
	struct spfcheck *s;
	struct spf_eval *prev, *next; /* s->evals */
	struct spf_eval *qnext;       /* s->waiting, until started */
	bool started;                 /* handed to the thread pool */
	struct spf_waiter *waiters, **wtail;
	char key[SPFCHECK_KEY_SIZE];  /* "ip domain" */
	/* Inputs, written before the work is queued. */
	char ip[INET6_ADDRSTRLEN];
	int family;
	unsigned char addr[16];
	char domain[SPFCHECK_DOMAIN_MAX + 1];
	char helo[SPFCHECK_DOMAIN_MAX + 1];
	/* Outputs, read after the work is done. */
	enum spfcheck_verdict verdict;
	bool interrupted; /* by spfcheck_close(): not cached */
	unsigned queries;
	char why[SPFCHECK_WHY_SIZE];
};

/* A cached answer on its way to the caller through the loop. */
struct spf_ready {
	struct spf_ready *next;
	spfcheck_cb *cb;
	void *arg;
	enum spfcheck_verdict verdict;
	char why[];
};

/* A cached verdict; the FIFO is insertion order, the eviction order. */
struct spf_entry {
	struct spf_entry *hnext;
	struct spf_entry *older, *newer;
	uint64_t expires; /* uv_now() ms */
	unsigned bucket;
	enum spfcheck_verdict verdict;
	char key[SPFCHECK_KEY_SIZE];
	char why[];
};

struct spfcheck {
	uv_loop_t *loop;
	char server[256];
	uint64_t timeout_ms;
	int abort_fd; /* eventfd, readable once closing */
	uv_timer_t ready_timer;
	struct spf_ready *ready, **ready_tail;
	struct spf_eval *evals; /* in flight: waiting or started */
	struct spf_eval *waiting, **waiting_tail;
	unsigned inflight, started;
	struct spf_entry *buckets[SPFCHECK_BUCKETS];
	struct spf_entry *oldest, *newest;
	size_t nentries, max_entries;
	uint64_t ttl_ms, temp_ttl_ms;
	struct spfcheck_stats stats;
	bool closing, timer_closing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* Why the layer stopped an evaluation early. */
enum spf_stop {
	STOP_NONE,
	STOP_TERMS,     /* more than 10 DNS-querying terms */
	STOP_VOID,      /* more than 2 void lookups */
	STOP_QUERIES,   /* SPFCHECK_MAX_QUERIES */
	STOP_DEADLINE,  /* the evaluation ran out of time */
	STOP_ABORT,     /* spfcheck_close() */
};

/* The state of one evaluation's DNS layer, on the worker's stack. */
struct spf_ctx {
	struct spf_eval *e;
	int abort_fd;
	uint64_t timeout_ms;
	uint64_t deadline; /* monotonic ms */
	ares_channel channel;
	bool record_fetched; /* the first TXT query is done */
	unsigned terms, voids;
	enum spf_stop stop;
	/* Names of the last MX or PTR answer and how many were looked up. */
	char names[SPFCHECK_MAX_NAMES][NS_MAXDNAME];
	unsigned nnames, next_name;
	/* The domain's SPF records: how many, the first one's text. */
	unsigned nrecords;
	char record[SPFCHECK_WHY_SIZE];
	/* The last failed query, for temperror's why. */
	char dns_error[160];
};

/* One query's answer, filled in by its c-ares callback. */
struct spf_query {
	struct spf_ctx *c;
	SPF_dns_server_t *layer;
	const char *name;
	ns_type type;
	bool done;
	SPF_dns_rr_t *rr;
};

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

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * printable - copy src into dst[size] with bytes outside printable ASCII
 * as '?', cut with "..." when it does not fit.
 */
static void
printable(char *dst, size_t size, const char *src)
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
	printable(e->why, sizeof e->why, raw);
}

/* --- the DNS layer (worker thread) --------------------------------------- */

/* rr_new - an empty answer of type for name with herrno. */
static SPF_dns_rr_t *
rr_new(SPF_dns_server_t *layer, const char *name, ns_type type, int herrno)
{
	SPF_dns_rr_t *rr = SPF_dns_rr_new_init(layer, name, type, 0, herrno);

	if (rr == NULL)
		log_fatal("spfcheck", "out_of_memory", "what=SPF_dns_rr_t");
	return rr;
}

/* rr_slot - room for len bytes in rr's entry i. */
static SPF_dns_rr_data_t *
rr_slot(SPF_dns_rr_t *rr, int i, size_t len)
{
	if (SPF_dns_rr_buf_realloc(rr, i, len) != SPF_E_SUCCESS)
		log_fatal("spfcheck", "out_of_memory", "what=SPF_dns_rr_t");
	return rr->rr[i];
}

/* rr_add_name - append a host name (MX, PTR) to rr. */
static void
rr_add_name(SPF_dns_rr_t *rr, const char *name)
{
	size_t len = strlen(name);
	SPF_dns_rr_data_t *d = rr_slot(rr, rr->num_rr, len + 1);

	memcpy(d->mx, name, len + 1); /* mx and ptr share the union's storage */
	rr->num_rr++;
}

/* parse_txt - one entry per TXT record, its strings joined (RFC 7208 3.3). */
static int
parse_txt(SPF_dns_rr_t *rr, const unsigned char *abuf, int alen)
{
	struct ares_txt_ext *head = NULL, *p, *q;
	int r;

	if ((r = ares_parse_txt_reply_ext(abuf, alen, &head)) != ARES_SUCCESS)
		return r;
	for (p = head; p != NULL; p = q) {
		size_t len = 0, off = 0;
		SPF_dns_rr_data_t *d;
		char *dst;

		/* This record: p and the following strings up to the next start. */
		q = p;
		do {
			len += q->length;
			q = q->next;
		} while (q != NULL && !q->record_start);
		/* The union's txt[1] is len + 1 long here. */
		d = rr_slot(rr, rr->num_rr, len + 1);
		dst = d->txt;
		for (struct ares_txt_ext *t = p; t != q; t = t->next) {
			/* A NUL inside a string would cut the C string libspf2 reads. */
			for (size_t i = 0; i < t->length; i++)
				dst[off + i] = t->txt[i] != '\0' ? (char)t->txt[i] : '?';
			off += t->length;
		}
		dst[len] = '\0';
		rr->num_rr++;
	}
	ares_free_data(head);
	return ARES_SUCCESS;
}

/* parse_answer - fill q->rr from a successful answer; an ARES_* status. */
static int
parse_answer(struct spf_query *q, const unsigned char *abuf, int alen)
{
	SPF_dns_rr_t *rr = q->rr;
	int r, n;

	switch (q->type) {
	case ns_t_a: {
		struct ares_addrttl at[SPFCHECK_A_MAX];

		n = SPFCHECK_A_MAX;
		if ((r = ares_parse_a_reply(abuf, alen, NULL, at, &n)) != ARES_SUCCESS)
			return r;
		for (int i = 0; i < n; i++) {
			rr_slot(rr, i, sizeof(struct in_addr))->a = at[i].ipaddr;
			rr->num_rr++;
		}
		return ARES_SUCCESS;
	}
	case ns_t_aaaa: {
		struct ares_addr6ttl at[SPFCHECK_A_MAX];

		n = SPFCHECK_A_MAX;
		if ((r = ares_parse_aaaa_reply(abuf, alen, NULL, at, &n)) != ARES_SUCCESS)
			return r;
		for (int i = 0; i < n; i++) {
			memcpy(&rr_slot(rr, i, sizeof(struct in6_addr))->aaaa,
			    &at[i].ip6addr, sizeof(struct in6_addr));
			rr->num_rr++;
		}
		return ARES_SUCCESS;
	}
	case ns_t_mx: {
		struct ares_mx_reply *head = NULL;

		if ((r = ares_parse_mx_reply(abuf, alen, &head)) != ARES_SUCCESS)
			return r;
		for (struct ares_mx_reply *p = head; p != NULL; p = p->next)
			rr_add_name(rr, p->host);
		ares_free_data(head);
		return ARES_SUCCESS;
	}
	case ns_t_txt:
		return parse_txt(rr, abuf, alen);
	case ns_t_ptr: {
		struct hostent *h = NULL;
		struct spf_eval *e = q->c->e;

		/* c-ares lists every PTR name among the aliases. */
		r = ares_parse_ptr_reply(abuf, alen, e->addr,
		    e->family == AF_INET ? 4 : 16, e->family, &h);
		if (r != ARES_SUCCESS)
			return r;
		for (char **a = h->h_aliases; a != NULL && *a != NULL; a++)
			rr_add_name(rr, *a);
		if (rr->num_rr == 0 && h->h_name != NULL)
			rr_add_name(rr, h->h_name);
		ares_free_hostent(h);
		return ARES_SUCCESS;
	}
	default:
		return ARES_ENODATA;
	}
}

/* on_answer - c-ares' callback for one query; runs inside ares_process_fd(). */
static void
on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct spf_query *q = arg;
	int herrno = TRY_AGAIN;

	(void)timeouts;
	q->done = true;
	q->rr = rr_new(q->layer, q->name, q->type, NETDB_SUCCESS);
	if (status == ARES_SUCCESS)
		status = parse_answer(q, abuf, alen);
	switch (status) {
	case ARES_SUCCESS:
		herrno = q->rr->num_rr > 0 ? NETDB_SUCCESS : NO_DATA;
		break;
	case ARES_ENODATA:
		herrno = NO_DATA;
		break;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME:
		herrno = HOST_NOT_FOUND;
		break;
	default:
		snprintf(q->c->dns_error, sizeof q->c->dns_error, "%s/%s: %s",
		    q->name, SPF_strrrtype(q->type), ares_strerror(status));
		break;
	}
	if (herrno != NETDB_SUCCESS)
		q->rr->num_rr = 0;
	q->rr->herrno = herrno;
}

/*
 * dns_query - ask the resolver for name/type and wait, at most the
 * query timeout and never past the evaluation's deadline; an answer
 * with herrno TRY_AGAIN on timeout, error or abort.
 */
static SPF_dns_rr_t *
dns_query(struct spf_ctx *c, SPF_dns_server_t *layer, const char *name,
    ns_type type)
{
	struct spf_query q = { .c = c, .layer = layer, .name = name, .type = type };
	uint64_t now = mono_ms(), qend = now + c->timeout_ms;

	if (qend > c->deadline)
		qend = c->deadline;
	c->e->queries++;
	ares_query(c->channel, name, ns_c_in, type, on_answer, &q);
	while (!q.done) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM + 1];
		struct timeval maxtv, tv, *tvp;
		unsigned bits;
		int n = 0, ms, r;

		now = mono_ms();
		if (now >= qend) {
			if (now >= c->deadline)
				c->stop = STOP_DEADLINE;
			ares_cancel(c->channel);
			snprintf(c->dns_error, sizeof c->dns_error, "%s/%s: timeout",
			    name, SPF_strrrtype(type));
			break;
		}
		/* Bits as unsigned: ARES_GETSOCK_WRITABLE() shifts 1 into the sign bit. */
		bits = (unsigned)ares_getsock(c->channel, socks, ARES_GETSOCK_MAXNUM);
		for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;

			if (bits & (1u << i))
				ev |= POLLIN;
			if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (ev != 0)
				pfd[n++] = (struct pollfd){ .fd = socks[i], .events = ev };
		}
		pfd[n] = (struct pollfd){ .fd = c->abort_fd, .events = POLLIN };
		maxtv.tv_sec = (time_t)((qend - now) / 1000);
		maxtv.tv_usec = (suseconds_t)((qend - now) % 1000 * 1000);
		tvp = ares_timeout(c->channel, &maxtv, &tv);
		ms = (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000);
		r = poll(pfd, (nfds_t)n + 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			ares_cancel(c->channel);
			snprintf(c->dns_error, sizeof c->dns_error, "poll: %s",
			    strerror(e));
			break;
		}
		if (pfd[n].revents != 0) {
			c->stop = STOP_ABORT;
			ares_cancel(c->channel);
			break;
		}
		if (r == 0) {
			ares_process_fd(c->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
			continue;
		}
		for (int i = 0; i < n && !q.done; i++) {
			ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

			if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
				rfd = pfd[i].fd;
			if (pfd[i].revents & POLLOUT)
				wfd = pfd[i].fd;
			if (rfd != ARES_SOCKET_BAD || wfd != ARES_SOCKET_BAD)
				ares_process_fd(c->channel, rfd, wfd);
		}
	}
	/* ares_cancel() ran the callback with ARES_ECANCELLED: TRY_AGAIN. */
	if (q.rr == NULL)
		q.rr = rr_new(layer, name, type, TRY_AGAIN);
	return q.rr;
}

/* is_spf_record - "v=spf1" alone or followed by a space (RFC 7208 4.5). */
static bool
is_spf_record(const char *txt)
{
	return strncasecmp(txt, "v=spf1", 6) == 0 && (txt[6] == '\0' || txt[6] == ' ');
}

/*
 * layer_lookup - libspf2's lookup hook: classify the query for the RFC
 * 7208 counters, then ask the resolver.  Never returns NULL.
 */
static SPF_dns_rr_t *
layer_lookup(SPF_dns_server_t *layer, const char *name, ns_type type,
    int should_cache)
{
	struct spf_ctx *c = layer->hook;
	SPF_dns_rr_t *rr;
	bool term, record = false;

	(void)should_cache;
	if (type == ns_t_spf)
		return rr_new(layer, name, type, NO_DATA);
	if (type == ns_t_txt) {
		record = !c->record_fetched;
		c->record_fetched = true;
		term = !record;
		c->nnames = c->next_name = 0;
	} else if ((type == ns_t_a || type == ns_t_aaaa) &&
	    c->next_name < c->nnames &&
	    strcasecmp(name, c->names[c->next_name]) == 0) {
		c->next_name++;
		term = false;
	} else {
		c->nnames = c->next_name = 0;
		term = true;
	}
	if (c->stop != STOP_NONE)
		return rr_new(layer, name, type, TRY_AGAIN);
	if (term && ++c->terms > SPFCHECK_MAX_TERMS) {
		c->stop = STOP_TERMS;
		return rr_new(layer, name, type, TRY_AGAIN);
	}
	if (c->e->queries >= SPFCHECK_MAX_QUERIES) {
		c->stop = STOP_QUERIES;
		return rr_new(layer, name, type, TRY_AGAIN);
	}
	rr = dns_query(c, layer, name, type);
	if (term && (rr->herrno == HOST_NOT_FOUND || rr->herrno == NO_DATA) &&
	    ++c->voids > SPFCHECK_MAX_VOID) {
		c->stop = STOP_VOID;
		rr->herrno = TRY_AGAIN;
		return rr;
	}
	if ((type == ns_t_mx || type == ns_t_ptr) && rr->herrno == NETDB_SUCCESS) {
		for (int i = 0; i < rr->num_rr && i < SPFCHECK_MAX_NAMES; i++)
			str_copy(c->names[i], rr->rr[i]->mx, sizeof c->names[i]);
		c->nnames = rr->num_rr < SPFCHECK_MAX_NAMES ? (unsigned)rr->num_rr :
		    SPFCHECK_MAX_NAMES;
	}
	if (record && rr->herrno == NETDB_SUCCESS) {
		for (int i = 0; i < rr->num_rr; i++) {
			/* The union's txt[1] is longer than declared. */
			const char *txt = rr->rr[i]->txt;

			if (!is_spf_record(txt))
				continue;
			/*
			 * A bare "v=spf1" is a record with no terms: neutral
			 * (RFC 7208 4.7).  libspf2 only takes "v=spf1 ".
			 */
			if (c->nrecords++ == 0)
				printable(c->record, sizeof c->record, txt);
			if (txt[6] == '\0')
				memcpy(rr_slot(rr, i, 8)->txt, "v=spf1 ", 8);
		}
	}
	return rr;
}

/*
 * layer_get_exp - libspf2's hook for exp= (RFC 7208 6.2): the preflight
 * has no use for the text, so no query is made.  buf may hold the name.
 */
static SPF_errcode_t
layer_get_exp(SPF_server_t *server, const char *domain, char **buf,
    size_t *buflen)
{
	static const char text[] = "explanation not fetched";
	char *p;

	(void)server;
	(void)domain;
	if (*buflen < sizeof text) {
		if ((p = realloc(*buf, sizeof text)) == NULL)
			return SPF_E_NO_MEMORY;
		*buf = p;
		*buflen = sizeof text;
	}
	memcpy(*buf, text, sizeof text);
	return SPF_E_SUCCESS;
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

/* channel_open - c->channel for the configured server; an ARES_* status. */
static int
channel_open(struct spf_ctx *c, const char *server)
{
	struct ares_options o;
	int r;

	memset(&o, 0, sizeof o);
	/* Two tries (c-ares doubles the second's wait) within the query timeout. */
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_EDNS;
	o.timeout = (int)(c->timeout_ms / 3 > 50 ? c->timeout_ms / 3 : 50);
	o.tries = 2;
	o.ednspsz = SPFCHECK_EDNS_SIZE;
	r = ares_init_options(&c->channel, &o, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS |
	    ARES_OPT_TRIES | ARES_OPT_EDNSPSZ);
	if (r != ARES_SUCCESS)
		return r;
	if (server[0] != '\0' &&
	    (r = ares_set_servers_ports_csv(c->channel, server)) != ARES_SUCCESS) {
		ares_destroy(c->channel);
		return r;
	}
	return ARES_SUCCESS;
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
	c->deadline = mono_ms() + (timeout_ms > SPFCHECK_EVAL_MS ? timeout_ms :
	    SPFCHECK_EVAL_MS);
	if ((r = channel_open(c, server)) != ARES_SUCCESS) {
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
	layer = xcalloc(1, sizeof *layer);
	layer->lookup = layer_lookup;
	layer->get_exp = layer_get_exp;
	layer->name = "kurier";
	layer->hook = c;
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
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
		h = (h ^ *p) * 16777619u;
	return h & (SPFCHECK_BUCKETS - 1);
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
	ares_channel ch;
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
	if ((r = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errsz, "c-ares: %s", ares_strerror(r));
		return -EIO;
	}
	/* Check the server now rather than on each evaluation. */
	if ((r = ares_init(&ch)) != ARES_SUCCESS) {
		snprintf(err, errsz, "c-ares: %s", ares_strerror(r));
		ares_library_cleanup();
		return -EIO;
	}
	if (server[0] != '\0' &&
	    ((r = ares_set_servers_ports_csv(ch, server)) != ARES_SUCCESS ||
	    strchr(server, ',') != NULL)) {
		char q[300];

		snprintf(err, errsz, "dns_server: %s is not an IP address with an "
		    "optional port", log_quotes(q, sizeof q, server));
		ares_destroy(ch);
		ares_library_cleanup();
		return -EINVAL;
	}
	ares_destroy(ch);

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
