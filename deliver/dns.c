/*
 * dns - c-ares on a libuv loop, with an answer cache.  See dns.h.
 *
 * A request (one dns_mx or dns_addr call) owns one or two c-ares queries
 * (MX; or A and AAAA).  When the last of them has answered, or when the
 * cache or an IP literal answered without any, the request joins the
 * ready list, which a uv_idle handle drains by calling the callbacks.
 * dns_close() destroys the channel, which ends every query with
 * ARES_EDESTRUCTION, so every request reaches the ready list and is
 * delivered as DNS_CANCELED before the handles close.
 */
#include "deliver/dns.h"

#include <ares.h>
#include <ares_nameser.h>
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/hash.h"
#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"

#define DNS_DEFAULT_TIMEOUT_MS 5000
#define DNS_TRIES 2
#define DNS_CACHE_BUCKETS 8192

/* What a query asks and a cache entry holds. */
enum dns_qtype {
	DNS_Q_MX,
	DNS_Q_A,
	DNS_Q_AAAA,
};

/* Each one's type on the wire (RFC 1035 3.2.2, RFC 3596). */
static const int qtype_wire[] = {
	[DNS_Q_MX] = ns_t_mx,
	[DNS_Q_A] = ns_t_a,
	[DNS_Q_AAAA] = ns_t_aaaa,
};

enum dns_kind {
	DNS_KIND_MX,
	DNS_KIND_ADDR,
};

struct dns_sock {
	uv_poll_t poll;
	struct dns *d;
	ares_socket_t fd;
	struct dns_sock *next;
};

struct dns_req;

/* The outcome of one query; data is struct dns_mx[] or sockaddr_storage[]. */
struct dns_query {
	struct dns_req *req;
	enum dns_qtype qtype;
	enum dns_status st;
	const char *reason;
	uint32_t ttl;
	size_t n;
	void *data;
};

struct dns_req {
	struct dns *d;
	struct dns_req *next;     /* in the ready list */
	enum dns_kind kind;
	unsigned outstanding;     /* queries not answered yet */
	dns_mx_cb *mx_cb;
	dns_addr_cb *addr_cb;
	void *arg;
	bool literal;
	struct sockaddr_storage lit;
	struct dns_query q[2];    /* MX: q[0]; addresses: q[0] A, q[1] AAAA */
	char name[DNS_NAME_MAX + 1];
};

struct dns_centry {
	struct dns_centry *hnext;         /* hash chain */
	struct dns_centry *older, *newer; /* insertion order */
	enum dns_qtype qtype;
	enum dns_status st;
	uint64_t expires;                 /* uv_now() milliseconds */
	size_t n;
	void *data;
	char name[DNS_NAME_MAX + 1];
};

struct dns {
	uv_loop_t *loop;
	ares_channel ch;
	uv_timer_t timer;          /* ares_timeout() */
	uv_idle_t idle;            /* drains the ready list */
	struct dns_sock *socks;
	struct dns_req *ready, *ready_tail;
	size_t pending;            /* requests with queries out */
	struct dns_centry **buckets;
	struct dns_centry *oldest, *newest;
	size_t ncache;
	const char *reason;
	bool closing, finishing;
	int handles;               /* open uv handles */
	void (*close_cb)(void *arg);
	void *close_arg;
};

static void dns_on_sock_state(void *data, ares_socket_t fd, int readable,
    int writable);
static void dns_on_poll(uv_poll_t *h, int status, int events);
static void dns_on_timer(uv_timer_t *h);
static void dns_on_idle(uv_idle_t *h);
static void dns_on_answer(void *arg, int status, int timeouts,
    unsigned char *abuf, int alen);
static void dns_on_handle_close(uv_handle_t *h);
static void dns_rearm(struct dns *d);

/*
 * Copy a valid name, lower-cased and without its final dot, into
 * dst[DNS_NAME_MAX + 1].
 */
static void
dns_norm_name(char *dst, const char *name)
{
	size_t len = strnlen(name, DNS_NAME_MAX + 1);

	if (len > 0 && name[len - 1] == '.')
		len--;
	str_copyn(dst, name, len, DNS_NAME_MAX + 1);
	str_lower(dst);
}

/* The cache. */

static size_t
dns_elem_size(enum dns_qtype qtype)
{
	return qtype == DNS_Q_MX ? sizeof(struct dns_mx) :
	    sizeof(struct sockaddr_storage);
}

static size_t
dns_cache_bucket(enum dns_qtype qtype, const char *name)
{
	return fnv1a32_str(fnv1a32_step(FNV1A32_INIT, (uint32_t)qtype), name) %
	    DNS_CACHE_BUCKETS;
}

static void
dns_cache_drop(struct dns *d, struct dns_centry *e)
{
	struct dns_centry **pp = &d->buckets[dns_cache_bucket(e->qtype, e->name)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		d->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		d->newest = e->older;
	d->ncache--;
	free(e->data);
	free(e);
}

static struct dns_centry *
dns_cache_find(struct dns *d, enum dns_qtype qtype, const char *name)
{
	struct dns_centry *e = d->buckets[dns_cache_bucket(qtype, name)];

	for (; e != NULL; e = e->hnext)
		if (e->qtype == qtype && strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

/*
 * Fill q from the cache if a live entry is there; an expired one is
 * dropped.  Returns whether q was filled.
 */
static bool
dns_cache_get(struct dns *d, struct dns_query *q, const char *name)
{
	struct dns_centry *e = dns_cache_find(d, q->qtype, name);
	uint64_t now = uv_now(d->loop);

	if (e == NULL)
		return false;
	if (e->expires <= now) {
		dns_cache_drop(d, e);
		return false;
	}
	q->st = e->st;
	q->reason = e->st == DNS_NXDOMAIN ? "NXDOMAIN" :
	    e->st == DNS_NODATA ? "no data" : "";
	q->ttl = (uint32_t)((e->expires - now + 999) / 1000);
	q->n = e->n;
	q->data = NULL;
	if (e->n > 0) {
		q->data = xcalloc(e->n, dns_elem_size(q->qtype));
		memcpy(q->data, e->data, e->n * dns_elem_size(q->qtype));
	}
	return true;
}

static void
dns_cache_put(struct dns *d, const struct dns_query *q, const char *name)
{
	struct dns_centry *e;
	size_t b;

	if (q->ttl == 0 || (q->st != DNS_OK && q->st != DNS_NXDOMAIN &&
	    q->st != DNS_NODATA))
		return;
	if ((e = dns_cache_find(d, q->qtype, name)) != NULL)
		dns_cache_drop(d, e);
	while (d->ncache >= DNS_CACHE_MAX)
		dns_cache_drop(d, d->oldest);
	e = xcalloc(1, sizeof *e);
	e->qtype = q->qtype;
	e->st = q->st;
	e->expires = uv_now(d->loop) + (uint64_t)q->ttl * 1000;
	e->n = q->n;
	if (q->n > 0) {
		e->data = xcalloc(q->n, dns_elem_size(q->qtype));
		memcpy(e->data, q->data, q->n * dns_elem_size(q->qtype));
	}
	str_copy(e->name, name, sizeof e->name);
	b = dns_cache_bucket(e->qtype, e->name);
	e->hnext = d->buckets[b];
	d->buckets[b] = e;
	e->older = d->newest;
	if (d->newest != NULL)
		d->newest->newer = e;
	else
		d->oldest = e;
	d->newest = e;
	d->ncache++;
}

void
dns_cache_clear(struct dns *d)
{
	while (d->oldest != NULL)
		dns_cache_drop(d, d->oldest);
}

size_t
dns_cache_size(const struct dns *d)
{
	return d->ncache;
}

const char *
dns_reason(const struct dns *d)
{
	return d->reason;
}

/* Opening and the loop glue. */

/*
 * Parse "ip", "ip:port", "[ipv6]" or "[ipv6]:port" into a c-ares server
 * node.  Returns 0 or -EINVAL.
 */
static int
dns_parse_server(const char *s, struct ares_addr_port_node *node)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = NULL, *colon;
	struct in_addr a4;
	struct in6_addr a6;
	uint64_t p = 53;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || str_copyn(host, s + 1, (size_t)(close - s - 1),
		    sizeof host) < 0)
			return -EINVAL;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return -EINVAL;
	} else if ((colon = strchr(s, ':')) != NULL && strchr(colon + 1, ':') == NULL) {
		if (str_copyn(host, s, (size_t)(colon - s), sizeof host) < 0)
			return -EINVAL;
		port = colon + 1;
	} else if (str_copy(host, s, sizeof host) < 0) {
		return -EINVAL;
	}
	if (port != NULL && (str_to_u64(port, &p) < 0 || p == 0 || p > 65535))
		return -EINVAL;
	memset(node, 0, sizeof *node);
	if (inet_pton(AF_INET, host, &a4) == 1) {
		node->family = AF_INET;
		node->addr.addr4 = a4;
	} else if (inet_pton(AF_INET6, host, &a6) == 1) {
		node->family = AF_INET6;
		memcpy(&node->addr.addr6, &a6, sizeof a6);
	} else {
		return -EINVAL;
	}
	node->udp_port = (int)p;
	node->tcp_port = (int)p;
	return 0;
}

int
dns_open(struct dns **out, uv_loop_t *loop, const char *server,
    uint64_t timeout_ms, char *err, size_t errsz)
{
	struct ares_options opts;
	struct ares_addr_port_node node;
	struct dns *d;
	int rc, optmask;

	*out = NULL;
	if (server[0] != '\0' && dns_parse_server(server, &node) < 0) {
		snprintf(err, errsz, "dns_server \"%s\" is not an IP address with an optional port", server);
		return -EINVAL;
	}
	if (timeout_ms == 0)
		timeout_ms = DNS_DEFAULT_TIMEOUT_MS;
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errsz, "c-ares: %s", ares_strerror(rc));
		return -ENOMEM;
	}
	d = xcalloc(1, sizeof *d);
	d->loop = loop;
	d->reason = "";
	d->buckets = xcalloc(DNS_CACHE_BUCKETS, sizeof *d->buckets);

	/*
	 * c-ares doubles the wait on each round over the servers: with one
	 * server and two tries a lookup lasts t + 2t, so t is a third of
	 * the whole.
	 */
	/*
	 * c-ares 1.18 reports SERVFAIL and REFUSED as ECONNREFUSED after it
	 * has tried every server.  With one server there is nothing else to
	 * try, so take such answers as they are and name them.
	 */
	memset(&opts, 0, sizeof opts);
	opts.flags = ARES_FLAG_NOSEARCH;
	if (server[0] != '\0')
		opts.flags |= ARES_FLAG_NOCHECKRESP;
	opts.timeout = (int)(timeout_ms / 3 > 0 ? timeout_ms / 3 : 1);
	opts.tries = DNS_TRIES;
	opts.sock_state_cb = dns_on_sock_state;
	opts.sock_state_cb_data = d;
	optmask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_SOCK_STATE_CB;
	if ((rc = ares_init_options(&d->ch, &opts, optmask)) != ARES_SUCCESS) {
		snprintf(err, errsz, "c-ares: %s", ares_strerror(rc));
		goto fail;
	}
	if (server[0] != '\0' &&
	    (rc = ares_set_servers_ports(d->ch, &node)) != ARES_SUCCESS) {
		snprintf(err, errsz, "c-ares: dns_server \"%s\": %s", server,
		    ares_strerror(rc));
		ares_destroy(d->ch);
		goto fail;
	}
	uv_timer_init(loop, &d->timer);
	d->timer.data = d;
	uv_idle_init(loop, &d->idle);
	d->idle.data = d;
	d->handles = 2;
	*out = d;
	return 0;
fail:
	free(d->buckets);
	free(d);
	ares_library_cleanup();
	return -EINVAL;
}

static struct dns_sock *
dns_find_sock(struct dns *d, ares_socket_t fd, struct dns_sock ***pprev)
{
	struct dns_sock **pp = &d->socks;

	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->fd == fd)
			break;
	if (pprev != NULL)
		*pprev = pp;
	return *pp;
}

static void
dns_close_sock(struct dns *d, struct dns_sock **pp)
{
	struct dns_sock *s = *pp;

	*pp = s->next;
	uv_close((uv_handle_t *)&s->poll, dns_on_handle_close);
	(void)d;
}

/*
 * c-ares opened, changed interest in, or closed (0, 0) a socket: mirror
 * it with a uv_poll.  The poll is stopped before c-ares closes the fd.
 */
static void
dns_on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock **pp, *s = dns_find_sock(d, fd, &pp);
	int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
	int rc;

	if (events == 0) {
		if (s != NULL)
			dns_close_sock(d, pp);
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof *s);
		if ((rc = uv_poll_init_socket(d->loop, &s->poll, fd)) < 0) {
			/* The query then ends by timeout. */
			log_error("dns", "poll-failed", "fd=%d error=%s", (int)fd,
			    uv_strerror(rc));
			free(s);
			return;
		}
		s->d = d;
		s->fd = fd;
		s->poll.data = s;
		s->next = d->socks;
		d->socks = s;
		d->handles++;
	}
	if ((rc = uv_poll_start(&s->poll, events, dns_on_poll)) < 0)
		log_error("dns", "poll-failed", "fd=%d error=%s", (int)fd,
		    uv_strerror(rc));
}

static void
dns_on_poll(uv_poll_t *h, int status, int events)
{
	struct dns_sock *s = h->data;
	struct dns *d = s->d;
	ares_socket_t fd = s->fd;

	if (d->ch == NULL)
		return;
	/* On an error let c-ares try both ways so it notices. */
	if (status < 0)
		events = UV_READABLE | UV_WRITABLE;
	/* s may be freed from here on: c-ares can close the socket. */
	ares_process_fd(d->ch, (events & UV_READABLE) ? fd : ARES_SOCKET_BAD,
	    (events & UV_WRITABLE) ? fd : ARES_SOCKET_BAD);
	dns_rearm(d);
}

static void
dns_on_timer(uv_timer_t *h)
{
	struct dns *d = h->data;

	if (d->ch == NULL)
		return;
	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_rearm(d);
}

/* Set the timer to c-ares's next deadline, or stop it when idle. */
static void
dns_rearm(struct dns *d)
{
	struct timeval tv, *tvp;
	uint64_t ms;

	if (d->ch == NULL)
		return;
	tvp = ares_timeout(d->ch, NULL, &tv);
	if (tvp == NULL) {
		uv_timer_stop(&d->timer);
		return;
	}
	ms = (uint64_t)tvp->tv_sec * 1000 + ((uint64_t)tvp->tv_usec + 999) / 1000;
	uv_timer_start(&d->timer, dns_on_timer, ms, 0);
}

/* Requests. */

static void
dns_ready_push(struct dns *d, struct dns_req *r)
{
	r->next = NULL;
	if (d->ready_tail != NULL)
		d->ready_tail->next = r;
	else
		d->ready = r;
	d->ready_tail = r;
	if (!uv_is_active((uv_handle_t *)&d->idle))
		uv_idle_start(&d->idle, dns_on_idle);
}

static const char *
dns_ares_reason(int status)
{
	switch (status) {
	case ARES_ETIMEOUT:
		return "timeout";
	case ARES_ESERVFAIL:
		return "SERVFAIL";
	case ARES_EREFUSED:
		return "REFUSED";
	case ARES_ENOTIMP:
		return "NOTIMP";
	case ARES_EFORMERR:
		return "FORMERR";
	case ARES_ECONNREFUSED:
		return "no server answered";
	case ARES_EBADRESP:
		return "bad response";
	case ARES_ENOTFOUND:
		return "NXDOMAIN";
	case ARES_ENODATA:
		return "no data";
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		return "canceled";
	default:
		return ares_strerror(status);
	}
}

static void
dns_fill_query(struct dns_query *q, int status, const unsigned char *abuf,
    int alen)
{
	int rc;

	q->n = 0;
	q->ttl = 0;
	q->reason = dns_ares_reason(status);
	switch (status) {
	case ARES_SUCCESS:
		break;
	case ARES_ENODATA:
		q->st = DNS_NODATA;
		q->ttl = DNS_NEG_TTL;
		return;
	case ARES_ENOTFOUND:
		q->st = DNS_NXDOMAIN;
		q->ttl = DNS_NEG_TTL;
		return;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		q->st = DNS_CANCELED;
		return;
	default:
		q->st = DNS_TEMPFAIL;
		return;
	}
	if (q->qtype == DNS_Q_MX) {
		struct dns_mx *mx;
		size_t n;

		rc = dns_parse_mx(abuf, (size_t)alen, &mx, &n, &q->ttl);
		if (rc == 0) {
			q->data = mx;
			q->n = n;
		}
	} else {
		struct sockaddr_storage *a = xcalloc(DNS_ADDR_MAX, sizeof *a);

		rc = dns_parse_addr(abuf, (size_t)alen,
		    q->qtype == DNS_Q_A ? AF_INET : AF_INET6, a, DNS_ADDR_MAX,
		    &q->ttl);
		if (rc > 0) {
			q->data = a;
			q->n = (size_t)rc;
			rc = 0;
		} else {
			free(a);
		}
	}
	if (rc == 0) {
		q->st = DNS_OK;
		q->reason = "";
	} else if (rc == -ENODATA) {
		q->st = DNS_NODATA;
		q->ttl = DNS_NEG_TTL;
		q->reason = "no data";
	} else {
		q->st = DNS_TEMPFAIL;
		q->ttl = 0;
		q->reason = "bad response";
	}
}

/*
 * Whether abuf is an answer to the question asked: one question, for
 * name, of type, class IN.  c-ares versions differ on whether they check
 * this under ARES_FLAG_NOCHECKRESP (1.18.1 does), and an answer to
 * another question, an NXDOMAIN above all, must never decide where mail
 * goes or that it bounces.
 */
static bool
dns_answer_matches(const unsigned char *abuf, int alen, const char *name,
    enum dns_qtype qtype)
{
	const unsigned char *p;
	char *qname;
	long enclen;
	bool ok;

	if (abuf == NULL || alen < 12 || abuf[4] != 0 || abuf[5] != 1)
		return false;
	if (ares_expand_name(abuf + 12, abuf, alen, &qname, &enclen) != ARES_SUCCESS)
		return false;
	ok = strcasecmp(qname, name) == 0 && enclen > 0 && enclen <= alen - 12 - 4;
	ares_free_string(qname);
	if (!ok)
		return false;
	p = abuf + 12 + enclen;
	return ((unsigned)p[0] << 8 | p[1]) == (unsigned)qtype_wire[qtype] &&
	    ((unsigned)p[2] << 8 | p[3]) == ns_c_in;
}

/* c-ares's answer to one query; may run inside ares_query() itself. */
static void
dns_on_answer(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_query *q = arg;
	struct dns_req *r = q->req;
	struct dns *d = r->d;

	(void)timeouts;
	if ((status == ARES_SUCCESS || status == ARES_ENODATA ||
	    status == ARES_ENOTFOUND) &&
	    !dns_answer_matches(abuf, alen, r->name, q->qtype))
		status = ARES_EBADRESP;
	dns_fill_query(q, status, abuf, alen);
	if (!d->closing)
		dns_cache_put(d, q, r->name);
	log_debug("dns", "answer", "type=%s name=%s status=%s reason=\"%s\" n=%zu ttl=%u",
	    q->qtype == DNS_Q_MX ? "MX" : q->qtype == DNS_Q_A ? "A" : "AAAA",
	    r->name, dns_status_name(q->st), q->reason, q->n, (unsigned)q->ttl);
	if (--r->outstanding == 0) {
		d->pending--;
		dns_ready_push(d, r);
	}
}

static struct dns_req *
dns_new_req(struct dns *d, enum dns_kind kind, const char *name, void *arg)
{
	struct dns_req *r = xcalloc(1, sizeof *r);

	r->d = d;
	r->kind = kind;
	r->arg = arg;
	if (name != NULL)
		dns_norm_name(r->name, name);
	r->q[0].req = r;
	r->q[1].req = r;
	return r;
}

/*
 * Send the queries of r that the cache could not answer; r->outstanding
 * is set first because c-ares may answer inside ares_query().
 */
static void
dns_send(struct dns *d, struct dns_req *r, bool ask[2])
{
	size_t nq = r->kind == DNS_KIND_MX ? 1 : 2;

	r->outstanding = 0;
	for (size_t i = 0; i < nq; i++)
		if (ask[i])
			r->outstanding++;
	if (r->outstanding == 0) {
		dns_ready_push(d, r);
		return;
	}
	d->pending++;
	/* Count again: a synchronous answer must not see a zero early. */
	r->outstanding++;
	for (size_t i = 0; i < nq; i++)
		if (ask[i])
			ares_query(d->ch, r->name, ns_c_in, qtype_wire[r->q[i].qtype],
			    dns_on_answer, &r->q[i]);
	if (--r->outstanding == 0) {
		d->pending--;
		dns_ready_push(d, r);
	}
	dns_rearm(d);
}

int
dns_mx(struct dns *d, const char *domain, dns_mx_cb *cb, void *arg)
{
	struct dns_req *r;
	bool ask[2] = { false, false };

	if (d->closing)
		return -ECANCELED;
	if (!dns_valid_name(domain))
		return -EINVAL;
	r = dns_new_req(d, DNS_KIND_MX, domain, arg);
	r->mx_cb = cb;
	r->q[0].qtype = DNS_Q_MX;
	ask[0] = !dns_cache_get(d, &r->q[0], r->name);
	dns_send(d, r, ask);
	return 0;
}

int
dns_addr(struct dns *d, const char *host, dns_addr_cb *cb, void *arg)
{
	struct dns_req *r;
	struct sockaddr_storage lit;
	bool ask[2];

	if (d->closing)
		return -ECANCELED;
	if (dns_parse_literal(host, &lit)) {
		r = dns_new_req(d, DNS_KIND_ADDR, NULL, arg);
		str_copy(r->name, host, sizeof r->name);
		r->addr_cb = cb;
		r->literal = true;
		r->lit = lit;
		dns_ready_push(d, r);
		return 0;
	}
	if (!dns_valid_name(host))
		return -EINVAL;
	r = dns_new_req(d, DNS_KIND_ADDR, host, arg);
	r->addr_cb = cb;
	r->q[0].qtype = DNS_Q_A;
	r->q[1].qtype = DNS_Q_AAAA;
	ask[0] = !dns_cache_get(d, &r->q[0], r->name);
	ask[1] = !dns_cache_get(d, &r->q[1], r->name);
	dns_send(d, r, ask);
	return 0;
}

static void
dns_deliver_mx(struct dns *d, struct dns_req *r)
{
	struct dns_query *q = &r->q[0];
	enum dns_status st = d->closing ? DNS_CANCELED : q->st;

	d->reason = st == DNS_CANCELED ? "canceled" : q->reason;
	if (st != DNS_OK) {
		r->mx_cb(r->arg, st, NULL, 0, st == DNS_CANCELED ? 0 : q->ttl);
		return;
	}
	dns_shuffle_mx(q->data, q->n);
	r->mx_cb(r->arg, st, q->data, q->n, q->ttl);
}

static void
dns_deliver_addr(struct dns *d, struct dns_req *r)
{
	struct sockaddr_storage all[2 * DNS_ADDR_MAX];
	struct dns_query *a = &r->q[0], *b = &r->q[1];
	enum dns_status st;
	size_t n = 0;
	uint32_t ttl = UINT32_MAX;

	if (d->closing) {
		d->reason = "canceled";
		r->addr_cb(r->arg, DNS_CANCELED, NULL, 0, 0);
		return;
	}
	if (r->literal) {
		d->reason = "";
		r->addr_cb(r->arg, DNS_OK, &r->lit, 1, DNS_TTL_MAX);
		return;
	}
	for (size_t i = 0; i < 2; i++) {
		struct dns_query *q = &r->q[i];

		if (q->st != DNS_OK)
			continue;
		memcpy(&all[n], q->data, q->n * sizeof all[0]);
		n += q->n;
		if (q->ttl < ttl)
			ttl = q->ttl;
	}
	if (n > 0) {
		d->reason = "";
		r->addr_cb(r->arg, DNS_OK, all, n, ttl);
		return;
	}
	if (a->st == DNS_CANCELED || b->st == DNS_CANCELED) {
		st = DNS_CANCELED;
		d->reason = "canceled";
	} else if (a->st == DNS_TEMPFAIL || b->st == DNS_TEMPFAIL) {
		st = DNS_TEMPFAIL;
		d->reason = a->st == DNS_TEMPFAIL ? a->reason : b->reason;
	} else if (a->st == DNS_NXDOMAIN && b->st == DNS_NXDOMAIN) {
		st = DNS_NXDOMAIN;
		d->reason = "NXDOMAIN";
	} else {
		st = DNS_NODATA;
		d->reason = "no data";
	}
	r->addr_cb(r->arg, st, NULL, 0, st == DNS_CANCELED || st == DNS_TEMPFAIL ?
	    0 : DNS_NEG_TTL);
}

static void
dns_free_req(struct dns_req *r)
{
	free(r->q[0].data);
	free(r->q[1].data);
	free(r);
}

static void
dns_finish_close(struct dns *d)
{
	d->finishing = true;
	uv_idle_stop(&d->idle);
	uv_timer_stop(&d->timer);
	while (d->socks != NULL)
		dns_close_sock(d, &d->socks);
	uv_close((uv_handle_t *)&d->idle, dns_on_handle_close);
	uv_close((uv_handle_t *)&d->timer, dns_on_handle_close);
}

/*
 * Deliver the requests ready when this pass began; those made ready by
 * the callbacks wait for the next pass, so a caller looping on cache
 * hits cannot starve the loop.
 */
static void
dns_on_idle(uv_idle_t *h)
{
	struct dns *d = h->data;
	struct dns_req *batch = d->ready, *r;

	d->ready = d->ready_tail = NULL;
	while ((r = batch) != NULL) {
		batch = r->next;
		if (r->kind == DNS_KIND_MX)
			dns_deliver_mx(d, r);
		else
			dns_deliver_addr(d, r);
		dns_free_req(r);
	}
	if (d->ready != NULL)
		return;
	uv_idle_stop(&d->idle);
	if (d->closing && !d->finishing && d->pending == 0)
		dns_finish_close(d);
}

static void
dns_on_handle_close(uv_handle_t *h)
{
	struct dns *d;
	void (*cb)(void *arg);
	void *arg;

	if (h->type == UV_POLL) {
		struct dns_sock *s = h->data;

		d = s->d;
		free(s);
	} else {
		d = h->data;
	}
	if (--d->handles > 0)
		return;
	cb = d->close_cb;
	arg = d->close_arg;
	dns_cache_clear(d);
	free(d->buckets);
	free(d);
	ares_library_cleanup();
	if (cb != NULL)
		cb(arg);
}

void
dns_close(struct dns *d, void (*cb)(void *arg), void *arg)
{
	if (d->closing)
		return;
	d->closing = true;
	d->close_cb = cb;
	d->close_arg = arg;
	uv_timer_stop(&d->timer);
	/* Ends every query with ARES_EDESTRUCTION and closes the sockets. */
	ares_destroy(d->ch);
	d->ch = NULL;
	if (d->pending != 0)
		log_panic("dns", "close", "pending=%zu after ares_destroy", d->pending);
	uv_idle_start(&d->idle, dns_on_idle);
}
