/*
 * spfcheck_int.h - what spfcheck.c (evaluations, the cache, the loop
 * side) and spf_dns.c (the DNS layer libspf2 is given) share; included
 * only inside policy/.  A struct spf_ctx lives on one worker thread for
 * one evaluation; the layer reads and writes it and its struct spf_eval
 * (the query count) only.
 */
#ifndef KURIER_POLICY_SPFCHECK_INT_H
#define KURIER_POLICY_SPFCHECK_INT_H

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <spf2/spf.h>
#include <spf2/spf_dns.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "policy/spfcheck.h"

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

/*
 * spfcheck__printable - copy src into dst[size] with bytes outside
 * printable ASCII as '?', cut with "..." when it does not fit.
 */
void spfcheck__printable(char *dst, size_t size, const char *src);
/*
 * spfcheck__layer_new - libspf2's DNS layer over c (never NULL).  The
 * caller frees it with free() after SPF_server_free(); it has no
 * destroy hook.
 */
SPF_dns_server_t *spfcheck__layer_new(struct spf_ctx *c);

#endif
