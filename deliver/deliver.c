/*
 * deliver - the delivery workers.  See deliver.h.
 *
 * A task is one claimed job on its way through the steps:
 *
 *   CHECK   the suppression list: suppressed recipients are set aside
 *   ROUTE   route_resolve(): the servers to try, in order
 *   SIGN    the message's DKIM signatures: kept ones from the queue, or
 *           made now on the thread pool (one signing per message even
 *           when several of its jobs are in flight)
 *   WAIT    in line: for its group's per-minute rate, for a connection
 *           slot of its group, of the server, or of all
 *   CONNECT a new connection is being set up
 *   SPF     the SPF preflight, once the local address is known
 *   TXN     the SMTP transaction
 *   DONE    the outcome is being written to the queue
 *
 * A connection that cannot be set up (refused, timeout, 4xx/5xx greeting,
 * failed TLS) moves the task to the next server; after the last one the
 * recipients are deferred with the last reason.  Once a transaction has
 * started, its replies decide.
 *
 * One timer sweeps every second: it renews the leases of tasks held
 * longer than a third of the lease and closes connections idle longer
 * than idle_timeout.
 */
#include "deliver/deliver.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <time.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/hash.h"
#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "deliver/deliver_int.h"
#include "core/tlsctx.h"
#include "deliver/dns.h"
#include "policy/spfcheck.h"

static void on_claimed(void *arg, int status, struct queue_job **jobs, size_t njobs);
static void on_refill_check(uv_check_t *h);

static const char *const claim_why_names[CLAIM_NWHY] = {
	"start", "more", "room", "refill", "poll", "retry",
};

void
deliver__say(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, size, fmt, ap);
	va_end(ap);
}

bool
deliver__has_8bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] & 0x80)
			return true;
	return false;
}

const char *
deliver__domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

uint64_t
deliver__now_ms(const struct deliver *d)
{
	return uv_now(d->loop);
}

void
deliver__sockaddr_ip(const struct sockaddr_storage *ss, char *dst, size_t size)
{
	dst[0] = '\0';
	if (ss->ss_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)(const void *)ss, dst, size);
	else if (ss->ss_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)(const void *)ss, dst, size);
}

uint16_t
deliver__sockaddr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
	return 0;
}

/* deliver__reply_text - a reply as kept by smtpc: the code and the text, or (code 0) what happened. */
void
deliver__reply_text(const struct smtpc_reply *r, char *dst, size_t size)
{
	deliver__say(dst, size, "%s", r->text);
}

/* load_hash - the bucket of a destination (recipient domains are lower case). */
static unsigned
load_hash(const char *domain)
{
	return fnv1a32_str(FNV1A32_INIT, domain) % LOAD_BUCKETS;
}

/* deliver__load_get - one more job of domain held by this node; returns how many now. */
unsigned
deliver__load_get(struct deliver *d, const char *domain)
{
	struct load **pp = &d->loads[load_hash(domain)];
	size_t len = strlen(domain);

	for (; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->domain, domain) == 0)
			return ++(*pp)->n;
	*pp = xcalloc(1, sizeof **pp + len + 1);
	memcpy((*pp)->domain, domain, len + 1);
	(*pp)->n = 1;
	return 1;
}

/*
 * deliver__load_put - a job of domain was given back to the queue (its complete or
 * release is on the wire).  When the destination was at its cap, the
 * claim script may have work for the slot: claim after this loop turn,
 * once for every slot freed in it.  The claim goes out on the queue's
 * connection after the complete, so Redis counts the slot free first.
 */
void
deliver__load_put(struct deliver *d, const char *domain)
{
	struct load **pp = &d->loads[load_hash(domain)];
	unsigned cap = d->cfg.deliver.per_destination;

	for (; *pp != NULL; pp = &(*pp)->next) {
		struct load *l = *pp;

		if (strcmp(l->domain, domain) != 0)
			continue;
		if (cap > 0 && l->n >= cap && !d->stopping) {
			d->refill = true;
			uv_check_start(&d->refill_check, on_refill_check);
		}
		if (--l->n == 0) {
			*pp = l->next;
			free(l);
		}
		return;
	}
}

static void
load_free(struct deliver *d)
{
	for (size_t b = 0; b < LOAD_BUCKETS; b++) {
		while (d->loads[b] != NULL) {
			struct load *l = d->loads[b];

			d->loads[b] = l->next;
			free(l);
		}
	}
}

/* claim_room - jobs a claim may ask for now. */
static unsigned
claim_room(const struct deliver *d)
{
	unsigned room = d->cfg.deliver.concurrency > d->active ?
	    d->cfg.deliver.concurrency - d->active : 0;

	return room > CLAIM_BATCH ? CLAIM_BATCH : room;
}

/* claim_now - make a claim for why, unless one is under way or nothing fits. */
static void
claim_now(struct deliver *d, enum claim_why why)
{
	unsigned room;
	int rc;

	if (d->stopping || d->claiming)
		return;
	room = claim_room(d);
	if (room == 0) {
		d->full = true;    /* task_free() claims again */
		return;
	}
	rc = queue_claim(d->q, room, on_claimed, d);
	if (rc < 0) {
		deliver__claim_soon(d, IDLE_POLL_MS, CLAIM_RETRY);
		return;
	}
	d->claiming = true;
	d->refill = false;  /* this claim sees every slot freed so far */
	d->claim_why = why;
	d->claims[why]++;
}

static void
on_claimed(void *arg, int status, struct queue_job **jobs, size_t njobs)
{
	struct deliver *d = arg;
	unsigned asked = claim_room(d), cap = d->cfg.deliver.per_destination;
	bool capped = true;     /* every destination of the batch is at its cap */

	d->claiming = false;
	if (status < 0) {
		if (status != -ECANCELED && status != -ENOTCONN)
			log_warn("deliver", "claim_failed", "error=\"%s\"", uv_strerror(status));
		d->last_claim_full = false;
		for (size_t i = 0; i < njobs; i++)
			queue_job_free(jobs[i]);
		if (!d->stopping)
			deliver__claim_soon(d, IDLE_POLL_MS, CLAIM_RETRY);
		deliver__maybe_stopped(d);
		return;
	}
	d->claim_jobs[d->claim_why] += njobs;
	d->last_claim_full = njobs > 0 && njobs >= asked;
	for (size_t i = 0; i < njobs; i++) {
		unsigned held = deliver__load_get(d, jobs[i]->domain);

		if (cap == 0 || held < cap)
			capped = false;
		if (d->stopping) {
			struct task *t = xcalloc(1, sizeof *t);

			/* Claimed while stopping: straight back. */
			t->d = d;
			t->job = jobs[i];
			list_init(&t->wait);
			list_push(&d->tasks, &t->all);
			d->active++;
			task_release(t);
			continue;
		}
		task_start(d, jobs[i]);
	}
	/*
	 * Claim again at once after a full batch, or after a short one that
	 * left a destination below its cap (more may be due beyond the
	 * destinations the script looked at).  A short batch whose
	 * destinations are all at their cap says why it was short: their
	 * freed slots claim again (deliver__load_put).
	 */
	if (!d->stopping) {
		if (njobs > 0 && (d->last_claim_full || !capped))
			deliver__claim_soon(d, 0, CLAIM_MORE);
		else if (d->refill)
			deliver__claim_soon(d, 0, CLAIM_REFILL);
		else
			deliver__claim_soon(d, IDLE_POLL_MS, CLAIM_POLL);
	}
	deliver__maybe_stopped(d);
}

/*
 * on_refill_check - after a loop turn in which slots of destinations at
 * their cap were given back: one claim for all of them.  A claim under
 * way now could not see them; its answer claims again (d->refill).
 */
static void
on_refill_check(uv_check_t *h)
{
	struct deliver *d = h->data;

	uv_check_stop(h);
	if (d->stopping || d->claiming)
		return;
	uv_timer_stop(&d->claim_timer);
	claim_now(d, CLAIM_REFILL);
}

static void
on_claim_timer(uv_timer_t *h)
{
	struct deliver *d = h->data;

	claim_now(d, d->timer_why);
}

void
deliver__claim_soon(struct deliver *d, uint64_t ms, enum claim_why why)
{
	if (d->stopping)
		return;
	d->timer_why = why;
	uv_timer_start(&d->claim_timer, on_claim_timer, ms, 0);
}

static void
on_renewed(void *arg, int status)
{
	char *key = arg;

	if (status == -ESTALE)
		log_warn("deliver", "lease_lost", "job=%s hint=\"the delivery outlived its lease; another worker may try it too\"",
		    key);
	free(key);
}

static void
on_sweep(uv_timer_t *h)
{
	struct deliver *d = h->data;
	uint64_t now = deliver__now_ms(d);
	uint64_t third = d->cfg.queue.lease_ms / 3;
	struct link *l, *next;

	for (l = d->tasks.next; l != &d->tasks; l = l->next) {
		struct task *t = LINK_OWNER(l, struct task, all);
		char *key;

		if (t->state == T_DONE || now - t->renewed_ms < third)
			continue;
		t->renewed_ms = now;
		key = xmalloc(QID_SIZE + strlen(t->job->domain) + 2);
		sprintf(key, "%s/%s", t->job->id, t->job->domain);
		if (queue_renew(d->q, t->job, on_renewed, key) < 0)
			free(key);
	}
	for (l = d->conns.next; l != &d->conns; l = next) {
		struct dconn *dc = LINK_OWNER(l, struct dconn, all);

		next = l->next;
		if (dc->task == NULL && dc->ready && !dc->closing &&
		    now - dc->idle_since >= d->cfg.deliver.idle_timeout_ms)
			deliver__conn_quit(dc);
	}
	/* Jobs waiting for their group's per-minute rate whose turn came. */
	for (struct group *g = d->groups; g != NULL; g = g->next) {
		struct link *w;
		uint64_t free_ms;

		while (!list_empty(&g->rate_wait) && !deliver__group_suspended(d, g) &&
		    deliver__rate_take(d, g, &free_ms)) {
			struct task *t;

			w = list_pop(&g->rate_wait);
			t = LINK_OWNER(w, struct task, wait);
			t->rate_ok = true;
			task_connect(t);
		}
	}
	deliver__group_sweep(d);
}

static void
on_throttle_list(void *arg, int status, const struct policy_throttle *pt, size_t n)
{
	struct deliver *d = arg;
	uint64_t now;

	d->listing = false;
	if (d->stopping || status < 0) {
		deliver__maybe_stopped(d);
		return;
	}
	now = queue_now(d->q);
	free(d->susp);
	d->susp = xcalloc(n ? n : 1, sizeof *d->susp);
	memcpy(d->susp, pt, n * sizeof *pt);
	d->nsusp = n;
	for (struct group *g = d->groups; g != NULL; g = g->next) {
		const struct policy_throttle *e = NULL;

		for (size_t i = 0; i < n; i++)
			if (strcmp(pt[i].group, g->rules.group) == 0)
				e = &pt[i];
		if (g->hitting)
			continue;
		if (e == NULL) {
			g->level = 0;     /* cleared by a delivery elsewhere */
			continue;
		}
		g->level = e->level;
		if (e->until_ms > now && e->until_ms > g->until_ms) {
			char ts[40], qr[600];

			g->until_ms = e->until_ms;
			log_info("deliver", "throttle_seen", "group=%s level=%u until=%s reply=%s",
			    g->rules.group, e->level, deliver__fmt_time(e->until_ms, ts, sizeof ts),
			    log_quotes(qr, sizeof qr, e->reply));
			deliver__group_hold_all(d, g);
		}
	}
}

static void
on_throttle_timer(uv_timer_t *h)
{
	struct deliver *d = h->data;

	if (d->stopping || d->listing || d->pol == NULL || !policy_is_up(d->pol))
		return;
	if (policy_throttle_list(d->pol, on_throttle_list, d) == 0)
		d->listing = true;
}

static int
load_dkim(struct deliver *d, char *err, size_t errsz)
{
	int rc;

	if (d->cfg.ndomains == 0)
		return 0;
	if ((rc = dkimsign_open(&d->dkim, d->cfg.server.data_dir, err, errsz)) < 0)
		return rc;
	for (size_t i = 0; i < d->cfg.ndomains; i++) {
		const struct config_domain *dom = &d->cfg.domains[i];
		const char *sel[CONFIG_SELECTOR_MAX];
		char e[512];

		for (unsigned k = 0; k < dom->nselector; k++)
			sel[k] = dom->selector[k];
		rc = dkimsign_add_domain(d->dkim, dom->name, sel, dom->nselector, e, sizeof e);
		if (rc < 0) {
			/* Mail of this domain goes out unsigned; say so loudly. */
			char q[600];

			log_warn("deliver", "dkim_key_missing", "domain=%s error=%s effect=\"mail from this domain is sent unsigned\"",
			    dom->name, log_quotes(q, sizeof q, e));
		}
	}
	return 0;
}

int
deliver_open(struct deliver **out, uv_loop_t *loop, const struct config *cfg,
    struct queue *q, struct policy *pol, char *err, size_t errsz)
{
	struct deliver *d = xcalloc(1, sizeof *d);
	char server[CONFIG_HOST_MAX + 16] = "";
	int rc;

	*out = NULL;
	d->loop = loop;
	d->q = q;
	d->pol = pol;
	config_copy(&d->cfg, cfg);
	list_init(&d->tasks);
	list_init(&d->conns);
	list_init(&d->waiting);
	list_init(&d->signing);
	list_init(&d->handoffs);
	if (d->cfg.deliver.outbound_ip[0] != '\0') {
		if (uv_ip4_addr(d->cfg.deliver.outbound_ip, 0, (struct sockaddr_in *)&d->bind_addr) != 0 &&
		    uv_ip6_addr(d->cfg.deliver.outbound_ip, 0, (struct sockaddr_in6 *)&d->bind_addr) != 0) {
			deliver__say(err, errsz, "[deliver] outbound_ip %s is not an address", d->cfg.deliver.outbound_ip);
			rc = -EINVAL;
			goto fail;
		}
		d->have_bind = true;
	}
	d->nrules = d->cfg.nroutes;
	d->rules = xcalloc(d->nrules ? d->nrules : 1, sizeof *d->rules);
	for (size_t i = 0; i < d->nrules; i++) {
		str_copy(d->rules[i].domain, d->cfg.routes[i].domain, sizeof d->rules[i].domain);
		str_copy(d->rules[i].host, d->cfg.routes[i].ep.host, sizeof d->rules[i].host);
		d->rules[i].port = d->cfg.routes[i].ep.port;
		if (!dns_valid_name(d->rules[i].host) && !dns_parse_literal(d->rules[i].host, NULL)) {
			deliver__say(err, errsz, "[deliver] route.%s: \"%s\" is neither a host name nor an IP address",
			    d->rules[i].domain, d->rules[i].host);
			rc = -EINVAL;
			goto fail;
		}
	}
	if ((rc = verp_load_key(d->cfg.deliver.verp_secret, d->cfg.server.data_dir, d->verp_key,
	    err, errsz)) < 0)
		goto fail;
	if ((rc = tlsctx_client(&d->tls, err, errsz)) < 0)
		goto fail;
	if ((rc = load_dkim(d, err, errsz)) < 0)
		goto fail;
	if (d->cfg.deliver.dns_server_set)
		config_endpoint_str(&d->cfg.deliver.dns_server, server, sizeof server);
	if ((rc = dns_open(&d->dns, loop, server, d->cfg.deliver.dns_timeout_ms, err, errsz)) < 0)
		goto fail;
	if (d->cfg.deliver.spf_preflight != CONFIG_SPF_OFF &&
	    (rc = spfcheck_open(&d->spf, loop, server, d->cfg.deliver.dns_timeout_ms, err, errsz)) < 0) {
		dns_close(d->dns, NULL, NULL);
		d->dns = NULL;
		goto fail;
	}
	uv_timer_init(loop, &d->claim_timer);
	uv_check_init(loop, &d->refill_check);
	uv_check_init(loop, &d->handoff_check);
	uv_timer_init(loop, &d->sweep_timer);
	uv_timer_init(loop, &d->grace_timer);
	uv_timer_init(loop, &d->throttle_timer);
	d->claim_timer.data = d->sweep_timer.data = d->grace_timer.data = d;
	d->throttle_timer.data = d->refill_check.data = d->handoff_check.data = d;
	d->handles_open = 6;
	uv_timer_start(&d->sweep_timer, on_sweep, SWEEP_MS, SWEEP_MS);
	uv_timer_start(&d->throttle_timer, on_throttle_timer, THROTTLE_POLL_MS, THROTTLE_POLL_MS);
	deliver__claim_soon(d, 0, CLAIM_START);
	log_info("deliver", "start", "concurrency=%u per_destination=%u routes=%zu domains=%zu dns=%s spf_preflight=%s",
	    d->cfg.deliver.concurrency, d->cfg.deliver.per_destination, d->nrules,
	    d->cfg.ndomains, server[0] ? server : "system",
	    d->cfg.deliver.spf_preflight == CONFIG_SPF_OFF ? "off" :
	    d->cfg.deliver.spf_preflight == CONFIG_SPF_WARN ? "warn" : "defer");
	*out = d;
	return 0;
fail:
	if (d->dkim != NULL)
		dkimsign_close(d->dkim);
	if (d->tls != NULL)
		SSL_CTX_free(d->tls);
	free(d->rules);
	config_free(&d->cfg);
	explicit_bzero(d->verp_key, sizeof d->verp_key);
	free(d);
	return rc;
}

unsigned
deliver_inflight(const struct deliver *d)
{
	return d->active;
}

static void
on_handle_closed(uv_handle_t *h)
{
	struct deliver *d = h->data;

	d->handles_open--;
	deliver__maybe_stopped(d);
}

static void
on_dns_closed(void *arg)
{
	struct deliver *d = arg;

	d->dns_closed = true;
	deliver__maybe_stopped(d);
}

static void
on_spf_closed(void *arg)
{
	struct deliver *d = arg;

	d->spf_closed = true;
	deliver__maybe_stopped(d);
}

/*
 * deliver__maybe_stopped - once stopping and every task, signing and connection
 * is gone, close the resolver, the timers, and free.
 */
void
deliver__maybe_stopped(struct deliver *d)
{
	void (*cb)(void *arg);
	void *arg;

	if (!d->stopping || d->active > 0 || d->claiming || d->listing ||
	    !list_empty(&d->signing))
		return;
	/* Idle connections: QUIT them; wait for them to close. */
	for (struct link *l = d->conns.next; l != &d->conns; l = l->next) {
		struct dconn *dc = LINK_OWNER(l, struct dconn, all);

		if (!dc->closing) {
			if (dc->ready && dc->task == NULL)
				deliver__conn_quit(dc);
			else {
				dc->closing = true;
				smtpc_abort(dc->c);
			}
		}
	}
	if (!list_empty(&d->conns))
		return;
	if (d->dns != NULL) {
		struct dns *dns = d->dns;

		d->dns = NULL;
		dns_close(dns, on_dns_closed, d);
	}
	if (d->spf != NULL) {
		struct spfcheck *spf = d->spf;

		d->spf = NULL;
		spfcheck_close(spf, on_spf_closed, d);
	} else {
		d->spf_closed = true;
	}
	if (!d->dns_closed || !d->spf_closed)
		return;
	if (d->handles_open == 6 && !uv_is_closing((uv_handle_t *)&d->claim_timer)) {
		uv_close((uv_handle_t *)&d->claim_timer, on_handle_closed);
		uv_close((uv_handle_t *)&d->handoff_check, on_handle_closed);
		uv_close((uv_handle_t *)&d->refill_check, on_handle_closed);
		uv_close((uv_handle_t *)&d->sweep_timer, on_handle_closed);
		uv_close((uv_handle_t *)&d->grace_timer, on_handle_closed);
		uv_close((uv_handle_t *)&d->throttle_timer, on_handle_closed);
	}
	if (d->handles_open > 0)
		return;
	cb = d->stopped_cb;
	arg = d->stopped_arg;
	if (d->dkim != NULL)
		dkimsign_close(d->dkim);
	SSL_CTX_free(d->tls);
	free(d->rules);
	for (size_t b = 0; b < HOST_BUCKETS; b++) {
		while (d->hosts[b] != NULL) {
			struct host *h = d->hosts[b];

			d->hosts[b] = h->next;
			free(h);
		}
	}
	while (d->groups != NULL) {
		struct group *g = d->groups;

		d->groups = g->next;
		free(g);
	}
	free(d->susp);
	load_free(d);
	config_free(&d->cfg);
	explicit_bzero(d->verp_key, sizeof d->verp_key);
	log_info("deliver", "stopped", "status=0");
	free(d);
	if (cb != NULL)
		cb(arg);
}

/* Grace is over: cut the transactions still running and give their jobs back. */
static void
on_grace(uv_timer_t *h)
{
	struct deliver *d = h->data;
	struct link *l, *next;

	d->grace_over = true;
	for (l = d->tasks.next; l != &d->tasks; l = next) {
		struct task *t = LINK_OWNER(l, struct task, all);

		next = l->next;
		/* (SPF: its answer comes anyway and gives the job back.) */
		if (t->state == T_TXN || t->state == T_CONNECT) {
			struct dconn *dc = t->conn;

			log_warn("deliver", "cut_off", "id=%s domain=%s state=%s effect=\"given back to the queue; may be delivered twice\"",
			    t->job->id, t->job->domain, task_state_name(t->state));
			t->conn = NULL;
			if (dc != NULL) {
				dc->task = NULL;
				dc->closing = true;
				smtpc_abort(dc->c);
			}
			task_release(t);
		}
	}
	deliver__maybe_stopped(d);
}

/*
 * log_claims - how many claims were made for each reason and the jobs
 * they returned: "poll_jobs" counts jobs that waited for the idle poll.
 */
static void
log_claims(const struct deliver *d)
{
	char line[512];
	size_t off = 0;
	uint64_t n = 0, jobs = 0;

	for (int w = 0; w < CLAIM_NWHY; w++) {
		n += d->claims[w];
		jobs += d->claim_jobs[w];
		off += (size_t)snprintf(line + off, sizeof line - off, " %s=%" PRIu64 " %s_jobs=%" PRIu64,
		    claim_why_names[w], d->claims[w], claim_why_names[w], d->claim_jobs[w]);
	}
	log_info("deliver", "claims", "claims=%" PRIu64 " jobs=%" PRIu64 "%s", n, jobs, line);
}

void
deliver_stop(struct deliver *d, uint64_t grace_ms, void (*cb)(void *arg), void *arg)
{
	struct link *l, *next;

	if (d->stopping)
		return;
	d->stopping = true;
	d->stopped_cb = cb;
	d->stopped_arg = arg;
	uv_timer_stop(&d->claim_timer);
	uv_check_stop(&d->refill_check);
	uv_check_stop(&d->handoff_check);
	uv_timer_stop(&d->sweep_timer);
	uv_timer_stop(&d->throttle_timer);
	log_info("deliver", "stopping", "jobs=%u connections=%u grace_ms=%" PRIu64,
	    d->active, d->nconns, grace_ms);
	log_claims(d);
	/* Waiting jobs go back now. */
	for (l = d->tasks.next; l != &d->tasks; l = next) {
		struct task *t = LINK_OWNER(l, struct task, all);

		next = l->next;
		if (t->state == T_WAIT)
			task_release(t);
	}
	/* Idle connections close. */
	for (l = d->conns.next; l != &d->conns; l = next) {
		struct dconn *dc = LINK_OWNER(l, struct dconn, all);

		next = l->next;
		if (dc->task == NULL && dc->ready && !dc->closing)
			deliver__conn_quit(dc);
	}
	uv_timer_start(&d->grace_timer, on_grace, grace_ms, 0);
	deliver__maybe_stopped(d);
}
