/*
 * spf_dns - the DNS layer spfcheck gives libspf2, run in the evaluation's
 * worker thread: lookups through a private c-ares channel, answers
 * parsed into libspf2's records, and the RFC 7208 4.6.4 limits counted
 * per evaluation.  It touches only the struct spf_ctx of its evaluation.
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
#include "policy/dnswait_int.h"
#include "policy/spfcheck_int.h"

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
	uint64_t now = dnswait__mono_ms(), qend = now + c->timeout_ms;

	if (qend > c->deadline)
		qend = c->deadline;
	c->e->queries++;
	ares_query(c->channel, name, ns_c_in, type, on_answer, &q);
	while (!q.done) {
		int r;

		now = dnswait__mono_ms();
		if (now >= qend) {
			if (now >= c->deadline)
				c->stop = STOP_DEADLINE;
			ares_cancel(c->channel);
			snprintf(c->dns_error, sizeof c->dns_error, "%s/%s: timeout",
			    name, SPF_strrrtype(type));
			break;
		}
		r = dnswait__step(c->channel, c->abort_fd, qend - now, &q.done);
		if (r == -ECANCELED) {
			c->stop = STOP_ABORT;
			ares_cancel(c->channel);
			break;
		}
		if (r < 0) {
			ares_cancel(c->channel);
			snprintf(c->dns_error, sizeof c->dns_error, "poll: %s",
			    strerror(-r));
			break;
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
				spfcheck__printable(c->record, sizeof c->record, txt);
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


SPF_dns_server_t *
spfcheck__layer_new(struct spf_ctx *c)
{
	SPF_dns_server_t *layer = xcalloc(1, sizeof *layer);

	layer->lookup = layer_lookup;
	layer->get_exp = layer_get_exp;
	layer->name = "kurier";
	layer->hook = c;
	return layer;
}
