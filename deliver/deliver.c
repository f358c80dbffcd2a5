/*
 * deliver - the delivery workers.  See deliver.h.
 *
 * A task is one claimed job on its way through the steps:
 *
 *   ROUTE   route_resolve(): the servers to try, in order
 *   SIGN    the message's DKIM signatures: kept ones from the queue, or
 *           made now on the thread pool (one signing per message even
 *           when several of its jobs are in flight)
 *   WAIT    in line for a connection to the current server
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
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/str.h"
#include "core/tlsctx.h"
#include "core/xmalloc.h"
#include "deliver/dkimsign.h"
#include "deliver/dns.h"
#include "deliver/route.h"
#include "deliver/smtpc.h"
#include "deliver/spfcheck.h"
#include "deliver/verp.h"

#define CLAIM_BATCH 64          /* jobs asked for at a time */
/*
 * Messages signed at once.  libopendkim decodes the private key for every
 * signature, and OpenSSL 3.0's decoders serialise on shared locks, so
 * more signing threads add little (docs/bench-deliver.md: 620 msg/s end
 * to end with one, 735 with two).  Two leave libuv's other two pool
 * threads to AUTH password checks.
 */
#define SIGN_PARALLEL 2
#define IDLE_POLL_MS 500        /* claim again after an empty claim */
/*
 * With work waiting, a freed slot claims again once CLAIM_MIN slots are
 * free, or after CLAIM_GATHER_MS: a claim per finished job would cost a
 * claim script per message.
 */
#define CLAIM_MIN 16
#define CLAIM_GATHER_MS 20
#define SWEEP_MS 1000
#define HOST_BUCKETS 1024
#define LOG_RCPTS_MAX 900       /* bytes of recipients in one log line */

/* --- intrusive lists ------------------------------------------------------ */

struct link {
	struct link *prev, *next;
};

#define LINK_OWNER(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

static void
list_init(struct link *l)
{
	l->prev = l->next = l;
}

static bool
list_empty(const struct link *l)
{
	return l->next == l;
}

static void
list_push(struct link *l, struct link *e)
{
	e->prev = l->prev;
	e->next = l;
	l->prev->next = e;
	l->prev = e;
}

static void
list_del(struct link *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = e;
}

static struct link *
list_pop(struct link *l)
{
	struct link *e;

	if (list_empty(l))
		return NULL;
	e = l->next;
	list_del(e);
	return e;
}

/* --- types ------------------------------------------------------------------ */

enum task_state {
	T_ROUTE,
	T_SIGN,
	T_WAIT,
	T_CONNECT,
	T_SPF,
	T_TXN,
	T_DONE,
};

enum { P_OPEN, P_SENT, P_DONE, P_AGAIN };

static const char *const task_state_names[] = {
	"route", "sign", "wait", "connect", "spf", "txn", "done",
};

struct host;
struct dconn;
struct signjob;

struct task {
	struct deliver *d;
	struct link all;            /* d->tasks */
	struct link wait;           /* host->waiting or d->waiting */
	enum task_state state;
	struct queue_job *job;
	uint64_t start_ms;
	uint64_t renewed_ms;
	bool renewing;
	size_t *pend;               /* indices into job->st.r still to try */
	size_t npend;
	/*
	 * Per pend entry: P_OPEN (no outcome yet), P_SENT (in the running
	 * transaction), P_DONE (outcome set), P_AGAIN (452 "too many
	 * recipients" in a transaction that made progress: the next one
	 * on the same connection takes it).
	 */
	unsigned char *pst;
	struct route_result *route;
	size_t hop;
	struct host *host;          /* the server being tried */
	struct dconn *conn;
	struct buf sigs;            /* signatures for this destination */
	bool sign_failed;
	bool body8bit;
	char mail_from[600];
	char rp_domain[CONFIG_HOST_MAX];   /* SPF: the return-path domain, "" = none */
	/* Why the servers tried so far failed, for the deferral. */
	char last_reply[600];
	char last_mx[256], last_ip[64];    /* the last server tried, for the log */
	unsigned hop_fail, hop_fail_5xx;
	/* The transaction's recipients (indices into pend) and their args. */
	size_t *txn_idx;
	size_t ntxn;
	struct iovec iov[2];        /* the message's pieces: smtpc reads them until on_txn */
	struct smtpc_rcpt *txn_rcpt;
};

struct host {
	struct host *next;          /* bucket chain */
	char name[256];
	struct sockaddr_storage addr;
	char ip[64];
	unsigned nconns;            /* open or being set up */
	struct link idle;           /* dconn.link */
	struct link waiting;        /* task.wait */
	unsigned refs;              /* tasks pointing here */
};

struct dconn {
	struct deliver *d;
	struct host *host;
	struct smtpc *c;
	struct link link;           /* host->idle while idle */
	struct link all;            /* d->conns */
	struct task *task;          /* the user now, NULL when idle */
	uint64_t idle_since;
	bool ready;
	bool closing;
};

struct signjob {
	uv_work_t req;
	struct deliver *d;
	struct link link;           /* d->signing */
	char id[QID_SIZE];
	struct queue_job *job;      /* of the first waiter (it stays while signing) */
	struct link waiters;        /* task.wait */
	bool started;               /* on the thread pool (else waiting its turn) */
	struct dkimsign_result res;
};

struct deliver {
	uv_loop_t *loop;
	struct config cfg;
	struct queue *q;
	struct policy *pol;         /* borrowed; NULL: no suppression, no shared throttling */
	struct dns *dns;
	struct spfcheck *spf;
	struct dkimsign *dkim;
	SSL_CTX *tls;
	uint8_t verp_key[VERP_KEY_LEN];
	struct route_rule *rules;
	size_t nrules;
	struct sockaddr_storage bind_addr;
	bool have_bind;

	uv_timer_t claim_timer;
	uv_timer_t sweep_timer;
	uv_timer_t grace_timer;
	unsigned handles_open;
	bool claiming;
	bool last_claim_full;
	bool full;                  /* a claim was due while every slot was taken */
	unsigned active;            /* tasks */
	unsigned nconns;            /* connections open or being set up */
	struct link tasks;
	struct link conns;
	struct link waiting;        /* tasks held back by concurrency */
	struct link signing;        /* signjob.link: running and waiting */
	unsigned nsigning;          /* running */
	struct host *hosts[HOST_BUCKETS];

	bool stopping;
	bool grace_over;
	bool dns_closed, spf_closed;
	void (*stopped_cb)(void *arg);
	void *stopped_arg;
};

static void task_route(struct task *t);
static void task_sign(struct task *t);
static void task_next_hop(struct task *t);
static void task_connect(struct task *t);
static void task_on_conn(struct task *t, struct dconn *dc);
static void task_finish(struct task *t);
static void task_release(struct task *t);
static void claim_soon(struct deliver *d, uint64_t ms);
static void conn_release(struct dconn *dc);
static void maybe_stopped(struct deliver *d);
static void wake_waiters(struct deliver *d, struct host *h);

/* --- small helpers ------------------------------------------------------------- */

/*
 * say - snprintf for reply and log texts that may be cut: a long server
 * name or reply is cut at the buffer's end, which is what we want.
 */
static void say(char *dst, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
say(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, size, fmt, ap);
	va_end(ap);
}

static uint64_t
now_ms(const struct deliver *d)
{
	return uv_now(d->loop);
}

static void
sockaddr_ip(const struct sockaddr_storage *ss, char *dst, size_t size)
{
	dst[0] = '\0';
	if (ss->ss_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)(const void *)ss, dst, size);
	else if (ss->ss_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)(const void *)ss, dst, size);
}

static uint16_t
sockaddr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
	return 0;
}

static bool
has_8bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] & 0x80)
			return true;
	return false;
}

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

/* reply_class - 2, 4 or 5 from a reply code; 4 when there is none. */
static int
reply_class(int code)
{
	if (code >= 200 && code < 300)
		return 2;
	if (code >= 500 && code < 600)
		return 5;
	return 4;
}

/* reply_text - a reply as kept by smtpc: the code and the text, or (code 0) what happened. */
static void
reply_text(const struct smtpc_reply *r, char *dst, size_t size)
{
	say(dst, size, "%s", r->text);
}

/* --- hosts ------------------------------------------------------------------------ */

static unsigned
host_hash(const char *name, const struct sockaddr_storage *a)
{
	unsigned h = 2166136261u;
	char ip[64];

	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)(*p | 0x20)) * 16777619u;
	sockaddr_ip(a, ip, sizeof ip);
	for (const char *p = ip; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h ^= sockaddr_port(a);
	return h % HOST_BUCKETS;
}

static bool
host_same(const struct host *h, const char *name, const struct sockaddr_storage *a)
{
	char ip[64];

	if (strcasecmp(h->name, name) != 0)
		return false;
	sockaddr_ip(a, ip, sizeof ip);
	return strcmp(h->ip, ip) == 0 && sockaddr_port(&h->addr) == sockaddr_port(a);
}

static struct host *
host_get(struct deliver *d, const char *name, const struct sockaddr_storage *a)
{
	unsigned b = host_hash(name, a);
	struct host *h;

	for (h = d->hosts[b]; h != NULL; h = h->next)
		if (host_same(h, name, a))
			return h;
	h = xcalloc(1, sizeof *h);
	str_copy(h->name, name, sizeof h->name);
	h->addr = *a;
	sockaddr_ip(a, h->ip, sizeof h->ip);
	list_init(&h->idle);
	list_init(&h->waiting);
	h->next = d->hosts[b];
	d->hosts[b] = h;
	return h;
}

/* host_put - drop a host nobody uses any more. */
static void
host_put(struct deliver *d, struct host *h)
{
	struct host **pp;

	if (h->refs > 0 || h->nconns > 0 || !list_empty(&h->waiting))
		return;
	for (pp = &d->hosts[host_hash(h->name, &h->addr)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			free(h);
			return;
		}
	}
}

/* --- connections ------------------------------------------------------------------ */

static void
on_conn_closed(void *arg, struct smtpc *c)
{
	struct dconn *dc = arg;
	struct deliver *d = dc->d;
	struct host *h = dc->host;

	(void)c;
	if (!list_empty(&dc->link))
		list_del(&dc->link);
	list_del(&dc->all);
	h->nconns--;
	d->nconns--;
	if (dc->task != NULL && dc->task->conn == dc)
		dc->task->conn = NULL;
	free(dc);
	wake_waiters(d, h);
	host_put(d, h);
	maybe_stopped(d);
}

/* conn_quit - close an idle connection politely. */
static void
conn_quit(struct dconn *dc)
{
	if (dc->closing)
		return;
	dc->closing = true;
	if (!list_empty(&dc->link))
		list_del(&dc->link);
	smtpc_quit(dc->c);
}

/*
 * conn_release - a task is done with dc.  It serves the next task
 * waiting for its server, or waits idle, or closes when spent.
 */
static void
conn_release(struct dconn *dc)
{
	struct deliver *d = dc->d;
	struct host *h = dc->host;
	struct link *w;

	dc->task = NULL;
	if (dc->closing)
		return;
	if (!smtpc_usable(dc->c) || d->stopping ||
	    smtpc_info(dc->c)->transactions >= d->cfg.deliver.max_messages_per_connection) {
		conn_quit(dc);
		return;
	}
	if ((w = list_pop(&h->waiting)) != NULL) {
		task_on_conn(LINK_OWNER(w, struct task, wait), dc);
		return;
	}
	/* Another server's task waits for a slot this one holds. */
	if (!list_empty(&d->waiting) && d->nconns >= d->cfg.deliver.concurrency) {
		conn_quit(dc);
		return;
	}
	dc->idle_since = now_ms(d);
	list_push(&h->idle, &dc->link);
}

/* wake_waiters - a slot came free: the next task in line may connect. */
static void
wake_waiters(struct deliver *d, struct host *h)
{
	struct link *w;

	if (h != NULL && h->nconns < d->cfg.deliver.per_destination &&
	    (w = list_pop(&h->waiting)) != NULL) {
		task_connect(LINK_OWNER(w, struct task, wait));
		return;
	}
	if (d->nconns < d->cfg.deliver.concurrency && (w = list_pop(&d->waiting)) != NULL)
		task_connect(LINK_OWNER(w, struct task, wait));
}

/* close_one_idle - free a slot held by an idle connection of any server. */
static bool
close_one_idle(struct deliver *d)
{
	for (struct link *l = d->conns.next; l != &d->conns; l = l->next) {
		struct dconn *dc = LINK_OWNER(l, struct dconn, all);

		if (dc->task == NULL && !dc->closing && dc->ready) {
			conn_quit(dc);
			return true;
		}
	}
	return false;
}

/* --- the log line of an attempt ---------------------------------------------------- */

static void
log_attempt(struct task *t, const char *what, const char *reply, size_t ndelivered,
    size_t ndeferred, size_t nbounced)
{
	struct deliver *d = t->d;
	const struct smtpc_info *si = t->conn && t->conn->c ? smtpc_info(t->conn->c) : NULL;
	char rcpts[LOG_RCPTS_MAX + 64], rq[2 * LOG_RCPTS_MAX + 128], qr[1300], qm[300];
	size_t off = 0, shown = 0;
	double delay = (double)(now_ms(d) - t->start_ms) / 1000.0;
	double age = (double)(queue_now(d->q) - t->job->env.arrival_ms) / 1000.0;

	rcpts[0] = '\0';
	for (size_t i = 0; i < t->npend; i++) {
		const struct rcpt_status *r = &t->job->st.r[t->pend[i]];
		const char *a = t->job->env.rcpt[r->idx].addr;
		int n;

		if (off + strlen(a) + 2 > LOG_RCPTS_MAX)
			break;
		n = snprintf(rcpts + off, sizeof rcpts - off, "%s%s", off ? "," : "", a);
		if (n < 0)
			break;
		off += (size_t)n;
		shown++;
	}
	if (shown < t->npend)
		say(rcpts + off, sizeof rcpts - off, ",+%zu more", t->npend - shown);
	log_info("deliver", what,
	    "id=%s domain=%s to=%s rcpts=%zu mx=%s ip=%s tls=%s verified=%s delivered=%zu deferred=%zu bounced=%zu reply=%s delay=%.2f age=%.1f",
	    t->job->id, t->job->domain, log_quotes(rq, sizeof rq, rcpts), t->npend,
	    t->host ? log_quotes(qm, sizeof qm, t->host->name) :
	    t->last_mx[0] ? log_quotes(qm, sizeof qm, t->last_mx) : "-",
	    t->host ? t->host->ip : t->last_ip[0] ? t->last_ip : "-",
	    si && si->tls ? si->tls_version : "none",
	    si && si->tls ? (si->tls_verified ? "yes" : "no") : "-",
	    ndelivered, ndeferred, nbounced, log_quotes(qr, sizeof qr, reply), delay, age);
}

/* --- ending a task -------------------------------------------------------------------- */

/* set_all - the same outcome for every recipient still without one. */
static void
set_all(struct task *t, enum rcpt_state st, const char *reply)
{
	for (size_t i = 0; i < t->npend; i++) {
		if (t->pst[i] == P_DONE)
			continue;
		queue_job_set(t->job, t->pend[i], st, reply);
		t->pst[i] = P_DONE;
	}
}

/* open_count - recipients without an outcome. */
static size_t
open_count(const struct task *t)
{
	size_t n = 0;

	for (size_t i = 0; i < t->npend; i++)
		n += t->pst[i] != P_DONE;
	return n;
}

static void
task_free(struct task *t)
{
	struct deliver *d = t->d;

	list_del(&t->all);
	if (!list_empty(&t->wait))
		list_del(&t->wait);
	if (t->host != NULL) {
		t->host->refs--;
		host_put(d, t->host);
	}
	if (t->route != NULL)
		route_result_free(t->route);
	queue_job_free(t->job);
	buf_free(&t->sigs);
	free(t->pend);
	free(t->pst);
	free(t->txn_idx);
	free(t->txn_rcpt);
	free(t);
	d->active--;
	if (!d->stopping && !d->claiming && (d->last_claim_full || d->full)) {
		unsigned room = d->cfg.deliver.concurrency - d->active;

		d->full = false;
		if (room >= CLAIM_MIN || d->active == 0)
			claim_soon(d, 0);
		else if (!uv_is_active((uv_handle_t *)&d->claim_timer))
			claim_soon(d, CLAIM_GATHER_MS);
	}
	maybe_stopped(d);
}

static void
on_completed(void *arg, int status)
{
	struct task *t = arg;
	char q[64];

	if (status == -ESTALE)
		log_warn("deliver", "lease_lost", "id=%s domain=%s hint=\"another worker took the job over; its outcome stands\"",
		    t->job->id, log_quotes(q, sizeof q, t->job->domain));
	else if (status < 0)
		log_error("deliver", "complete_failed", "id=%s domain=%s error=\"%s\" hint=\"the job returns to the queue when its lease expires\"",
		    t->job->id, log_quotes(q, sizeof q, t->job->domain), uv_strerror(status));
	task_free(t);
}

/* task_drop_conn - the task is done with its connection, if it has one. */
static void
task_drop_conn(struct task *t)
{
	struct dconn *dc = t->conn;

	if (dc != NULL) {
		t->conn = NULL;
		conn_release(dc);
	}
}

/* task_finish - write the outcomes set on the job and let it go. */
static void
task_finish(struct task *t)
{
	int rc;
	char mta[300] = "";

	t->state = T_DONE;
	task_drop_conn(t);
	if (t->host != NULL)
		say(mta, sizeof mta, "%s[%s]", t->host->name, t->host->ip);
	queue_job_set_mta(t->job, mta);
	rc = queue_complete(t->d->q, t->job, on_completed, t);
	if (rc < 0)
		on_completed(t, rc);
}

/* task_release - give the job back untouched (stopping). */
static void
task_release(struct task *t)
{
	int rc;

	t->state = T_DONE;
	if (!list_empty(&t->wait))
		list_del(&t->wait);
	task_drop_conn(t);
	rc = queue_release(t->d->q, t->job, on_completed, t);
	if (rc < 0)
		on_completed(t, rc);
}

/* task_defer_all - every pending recipient deferred with reply. */
static void
task_defer_all(struct task *t, const char *reply)
{
	size_t n = open_count(t);

	set_all(t, RCPT_DEFERRED, reply);
	log_attempt(t, "deferred", reply, 0, n, 0);
	task_finish(t);
}

static void
task_bounce_all(struct task *t, const char *reply)
{
	size_t n = open_count(t);

	set_all(t, RCPT_BOUNCED, reply);
	log_attempt(t, "bounced", reply, 0, 0, n);
	task_finish(t);
}

/* --- start: claim ----------------------------------------------------------------------- */

static void
task_start(struct deliver *d, struct queue_job *job)
{
	struct task *t = xcalloc(1, sizeof *t);
	const struct config_domain *dom;
	const char *sender = job->env.sender ? job->env.sender : "";

	t->d = d;
	t->job = job;
	t->start_ms = t->renewed_ms = now_ms(d);
	list_init(&t->wait);
	list_push(&d->tasks, &t->all);
	d->active++;
	t->pend = xcalloc(job->st.n ? job->st.n : 1, sizeof *t->pend);
	t->pst = xcalloc(job->st.n ? job->st.n : 1, sizeof *t->pst);
	for (size_t i = 0; i < job->st.n; i++)
		if (!rcpt_state_final(job->st.r[i].state))
			t->pend[t->npend++] = i;
	if (t->npend == 0) {
		/* Nothing left to do (a stale state): complete as is. */
		task_finish(t);
		return;
	}
	if (queue_job_expired(d->q, job)) {
		char reply[700];

		for (size_t i = 0; i < t->npend; i++) {
			const struct rcpt_status *r = &job->st.r[t->pend[i]];

			say(reply, sizeof reply, "4.4.7 delivery time expired%s%s",
			    r->reply ? "; last reply: " : "", r->reply ? r->reply : "");
			queue_job_set(job, t->pend[i], RCPT_EXPIRED, reply);
			t->pst[i] = P_DONE;
		}
		log_attempt(t, "expired", "4.4.7 delivery time expired", 0, 0, 0);
		task_finish(t);
		return;
	}
	t->body8bit = (job->env.flags & ENV_F_8BITMIME) || has_8bit(job->msg, job->msg_len);
	/*
	 * The return path: a signed VERP address on the sending domain's
	 * return-path domain; the sender as given when its domain is not
	 * one of ours; the null path stays null.
	 */
	dom = sender[0] ? config_domain_find(&d->cfg, domain_of(sender)) : NULL;
	if (dom != NULL) {
		if (verp_encode(d->verp_key, job->id, job->st.r[t->pend[0]].idx, t->npend > 1,
		    dom->return_path, t->mail_from, sizeof t->mail_from) < 0)
			str_copy(t->mail_from, sender, sizeof t->mail_from);
		str_copy(t->rp_domain, dom->return_path, sizeof t->rp_domain);
	} else {
		str_copy(t->mail_from, sender, sizeof t->mail_from);
		str_copy(t->rp_domain, domain_of(sender), sizeof t->rp_domain);
	}
	task_route(t);
}

static void
on_claimed(void *arg, int status, struct queue_job **jobs, size_t njobs)
{
	struct deliver *d = arg;
	unsigned asked = d->cfg.deliver.concurrency > d->active ?
	    d->cfg.deliver.concurrency - d->active : 0;

	if (asked > CLAIM_BATCH)
		asked = CLAIM_BATCH;
	d->claiming = false;
	if (status < 0) {
		if (status != -ECANCELED && status != -ENOTCONN)
			log_warn("deliver", "claim_failed", "error=\"%s\"", uv_strerror(status));
		d->last_claim_full = false;
		for (size_t i = 0; i < njobs; i++)
			queue_job_free(jobs[i]);
		if (!d->stopping)
			claim_soon(d, IDLE_POLL_MS);
		maybe_stopped(d);
		return;
	}
	d->last_claim_full = njobs > 0 && njobs >= asked;
	for (size_t i = 0; i < njobs; i++) {
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
	if (!d->stopping)
		claim_soon(d, njobs > 0 ? 0 : IDLE_POLL_MS);
	maybe_stopped(d);
}

static void
on_claim_timer(uv_timer_t *h)
{
	struct deliver *d = h->data;
	unsigned room;
	int rc;

	if (d->stopping || d->claiming)
		return;
	room = d->cfg.deliver.concurrency > d->active ? d->cfg.deliver.concurrency - d->active : 0;
	if (room == 0) {
		d->full = true;    /* task_free() claims again */
		return;
	}
	if (room > CLAIM_BATCH)
		room = CLAIM_BATCH;
	rc = queue_claim(d->q, room, on_claimed, d);
	if (rc < 0) {
		claim_soon(d, IDLE_POLL_MS);
		return;
	}
	d->claiming = true;
}

static void
claim_soon(struct deliver *d, uint64_t ms)
{
	if (d->stopping)
		return;
	uv_timer_start(&d->claim_timer, on_claim_timer, ms, 0);
}

/* --- ROUTE --------------------------------------------------------------------------------- */

/*
 * prune_self - RFC 5321 5.1: an MX host that is this server, and every MX
 * host of equal or less preference, is dropped (else mail for a domain
 * whose backup MX we are would come back to us).  Routes are taken as
 * given.  Returns the hops left.
 */
static size_t
prune_self(const struct deliver *d, struct route_result *res)
{
	const char *me = d->cfg.server.hostname;
	bool found = false;
	unsigned cut = 0;
	size_t n = 0;

	for (size_t i = 0; i < res->nhops; i++) {
		if (!res->hops[i].relay && strcasecmp(res->hops[i].name, me) == 0 &&
		    (!found || res->hops[i].pref < cut)) {
			cut = res->hops[i].pref;
			found = true;
		}
	}
	if (!found)
		return res->nhops;
	for (size_t i = 0; i < res->nhops; i++)
		if (res->hops[i].relay || res->hops[i].pref < cut)
			res->hops[n++] = res->hops[i];
	res->nhops = n;
	return n;
}

static void
on_route(void *arg, struct route_result *res)
{
	struct task *t = arg;

	t->route = res;
	if (t->d->stopping) {
		task_release(t);
		return;
	}
	if (res->status == -ENOENT) {
		task_bounce_all(t, res->reply);
		return;
	}
	if (res->status < 0 || res->nhops == 0) {
		task_defer_all(t, res->reply[0] ? res->reply : "451 4.4.3 no route to the destination");
		return;
	}
	if (prune_self(t->d, res) == 0) {
		char reply[400];

		say(reply, sizeof reply, "554 5.4.6 mail for %s loops back to this server (%s is its best MX)",
		    t->job->domain, t->d->cfg.server.hostname);
		task_bounce_all(t, reply);
		return;
	}
	task_sign(t);
}

static void
task_route(struct task *t)
{
	struct deliver *d = t->d;
	int rc;

	t->state = T_ROUTE;
	rc = route_resolve(d->dns, d->rules, d->nrules, (uint16_t)d->cfg.deliver.mx_port,
	    t->job->domain, on_route, t);
	if (rc < 0) {
		char reply[400];

		if (rc == -EINVAL) {
			say(reply, sizeof reply, "550 5.1.2 %s is not a valid domain name",
			    t->job->domain);
			task_bounce_all(t, reply);
			return;
		}
		say(reply, sizeof reply, "451 4.4.3 cannot look up %s: %s", t->job->domain,
		    uv_strerror(rc));
		task_defer_all(t, reply);
	}
}

/* --- SIGN -------------------------------------------------------------------------------------- */

/* Which algorithm a DKIM-Signature header uses, from its a= tag. */
static unsigned
sig_algo(const char *h, size_t n)
{
	for (size_t i = 0; i + 2 < n; i++) {
		if ((i == 0 || h[i - 1] == ';' || h[i - 1] == ' ' || h[i - 1] == '\t' ||
		    h[i - 1] == '\n') && h[i] == 'a' && h[i + 1] == '=') {
			const char *v = h + i + 2;
			size_t rest = n - i - 2;

			if (rest >= 10 && strncasecmp(v, "rsa-sha256", 10) == 0)
				return CONFIG_DKIM_RSA;
			if (rest >= 14 && strncasecmp(v, "ed25519-sha256", 14) == 0)
				return CONFIG_DKIM_ED25519;
			return 0;
		}
	}
	return 0;
}

/*
 * pick_sigs - the signature headers of all (one or more "DKIM-Signature:"
 * header fields, CRLF-folded) that this destination takes.
 */
static void
pick_sigs(struct task *t, const char *all, size_t len)
{
	const struct config_destination *dest = config_destination_find(&t->d->cfg, t->job->domain);
	unsigned want = dest ? dest->dkim : CONFIG_DKIM_ALL;
	size_t i = 0;

	buf_reset(&t->sigs);
	while (i < len) {
		size_t j = i;

		/* A field ends at a CRLF not followed by white space. */
		for (;;) {
			const char *nl = memchr(all + j, '\n', len - j);

			if (nl == NULL) {
				j = len;
				break;
			}
			j = (size_t)(nl - all) + 1;
			if (j >= len || (all[j] != ' ' && all[j] != '\t'))
				break;
		}
		if (sig_algo(all + i, j - i) & want)
			buf_append(&t->sigs, all + i, j - i);
		i = j;
	}
}

static void
on_sig_kept(void *arg, int status)
{
	char *id = arg;

	if (status < 0 && status != -ESTALE)
		log_warn("deliver", "dkim_keep_failed", "id=%s error=\"%s\" effect=\"signed again on the next attempt\"",
		    id, uv_strerror(status));
	free(id);
}

static void
sign_work(uv_work_t *req)
{
	struct signjob *sj = LINK_OWNER(req, struct signjob, req);
	const struct queue_job *job = sj->job;

	dkimsign_sign(sj->d->dkim, job->msg, job->head_len, job->msg_len, DKIMSIGN_ALL, &sj->res);
}

static void
task_after_sign(struct task *t)
{
	if (t->d->stopping) {
		task_release(t);
		return;
	}
	task_next_hop(t);
}

static void sign_done(uv_work_t *req, int status);

/* sign_next - start waiting signings while there is room. */
static void
sign_next(struct deliver *d)
{
	for (struct link *l = d->signing.next; l != &d->signing && d->nsigning < SIGN_PARALLEL;
	    l = l->next) {
		struct signjob *sj = LINK_OWNER(l, struct signjob, link);

		if (sj->started)
			continue;
		sj->started = true;
		d->nsigning++;
		if (uv_queue_work(d->loop, &sj->req, sign_work, sign_done) != 0) {
			sj->res.status = -EAGAIN;
			str_copy(sj->res.why, "thread pool refused the work", sizeof sj->res.why);
			sign_done(&sj->req, -EAGAIN);
			return;
		}
	}
}

static void
sign_done(uv_work_t *req, int status)
{
	struct signjob *sj = LINK_OWNER(req, struct signjob, req);
	struct deliver *d = sj->d;
	struct buf all = BUF_INIT;
	struct link *w;
	bool kept = false;
	char q[600];

	list_del(&sj->link);
	d->nsigning--;
	if (status == 0 && sj->res.status == 0) {
		for (size_t i = 0; i < sj->res.nsig; i++)
			buf_append(&all, sj->res.sig[i].header, strlen(sj->res.sig[i].header));
		log_info("deliver", "dkim_signed", "id=%s domain=%s signatures=%zu",
		    sj->id, log_quotes(q, sizeof q, sj->res.domain), sj->res.nsig);
	} else if (status == 0 && sj->res.status == -ENOENT) {
		log_info("deliver", "dkim_unsigned", "id=%s reason=%s", sj->id,
		    log_quotes(q, sizeof q, sj->res.why));
	} else {
		log_warn("deliver", "dkim_failed", "id=%s reason=%s effect=\"sent unsigned\"",
		    sj->id, log_quotes(q, sizeof q, status < 0 ? uv_strerror(status) : sj->res.why));
	}
	while ((w = list_pop(&sj->waiters)) != NULL) {
		struct task *t = LINK_OWNER(w, struct task, wait);

		if (all.len > 0) {
			pick_sigs(t, all.data, all.len);
			if (!kept && !d->stopping) {
				/* Kept once, by a job still leased. */
				if (queue_keep_sig(d->q, t->job, all.data, all.len, on_sig_kept,
				    xstrdup(t->job->id)) == 0)
					kept = true;
			}
		}
		task_after_sign(t);
	}
	buf_free(&all);
	dkimsign_result_free(&sj->res);
	free(sj);
	sign_next(d);
	maybe_stopped(d);
}

static void
task_sign(struct task *t)
{
	struct deliver *d = t->d;
	struct signjob *sj;

	t->state = T_SIGN;
	if (t->job->sig != NULL) {
		pick_sigs(t, t->job->sig, t->job->sig_len);
		task_after_sign(t);
		return;
	}
	if (d->dkim == NULL) {
		task_after_sign(t);
		return;
	}
	/* Another job of the same message is being signed: wait for it. */
	for (struct link *l = d->signing.next; l != &d->signing; l = l->next) {
		sj = LINK_OWNER(l, struct signjob, link);
		if (strcmp(sj->id, t->job->id) == 0) {
			list_push(&sj->waiters, &t->wait);
			return;
		}
	}
	sj = xcalloc(1, sizeof *sj);
	sj->d = d;
	sj->job = t->job;
	memcpy(sj->id, t->job->id, QID_SIZE);
	list_init(&sj->waiters);
	list_push(&sj->waiters, &t->wait);
	list_push(&d->signing, &sj->link);
	sign_next(d);
}

/* --- WAIT / CONNECT ------------------------------------------------------------------------------- */

/* Remember why a server failed and go on to the next one. */
static void
hop_failed(struct task *t, const char *why, bool permanent)
{
	str_copy(t->last_reply, why, sizeof t->last_reply);
	t->hop_fail++;
	if (permanent)
		t->hop_fail_5xx++;
	t->hop++;
	task_next_hop(t);
}

static void
task_next_hop(struct task *t)
{
	struct deliver *d = t->d;
	const struct route_hop *hop;

	if (t->host != NULL) {
		str_copy(t->last_mx, t->host->name, sizeof t->last_mx);
		str_copy(t->last_ip, t->host->ip, sizeof t->last_ip);
		t->host->refs--;
		host_put(d, t->host);
		t->host = NULL;
	}
	if (d->stopping) {
		task_release(t);
		return;
	}
	if (t->hop >= t->route->nhops) {
		char reply[700];

		/* Every server refused us for good: that is an answer. */
		if (t->hop_fail > 0 && t->hop_fail_5xx == t->hop_fail) {
			task_bounce_all(t, t->last_reply);
			return;
		}
		say(reply, sizeof reply, "%s", t->last_reply[0] ? t->last_reply :
		    "451 4.4.1 no server could be reached");
		task_defer_all(t, reply);
		return;
	}
	hop = &t->route->hops[t->hop];
	t->host = host_get(d, hop->name, &hop->addr);
	t->host->refs++;
	task_connect(t);
}

static void
on_ready(void *arg, struct smtpc *c, int status, enum smtpc_stage stage,
    const struct smtpc_reply *reply)
{
	struct dconn *dc = arg;
	struct task *t = dc->task;
	char why[700], rt[600];

	(void)c;
	if (status == 0) {
		dc->ready = true;
		if (t == NULL) {
			conn_release(dc);
			return;
		}
		task_on_conn(t, dc);
		return;
	}
	/* smtpc is closing itself; on_conn_closed follows. */
	dc->closing = true;
	dc->task = NULL;
	if (t == NULL)
		return;
	t->conn = NULL;
	if (reply->code != 0) {
		reply_text(reply, rt, sizeof rt);
		say(why, sizeof why, "%s (%s[%s] at %s)", rt, t->host->name, t->host->ip,
		    smtpc_stage_name(stage));
	} else {
		say(why, sizeof why, "451 4.4.1 %s[%s]:%u: %s at %s", t->host->name,
		    t->host->ip, sockaddr_port(&t->host->addr), uv_strerror(status),
		    smtpc_stage_name(stage));
	}
	log_attempt(t, "server_failed", why, 0, 0, 0);
	/* A 5xx greeting or refused AUTH is a refusal; the rest may pass later. */
	hop_failed(t, why, reply->code >= 500 && (stage == SMTPC_GREETING || stage == SMTPC_EHLO));
}

static int
conn_open(struct task *t)
{
	struct deliver *d = t->d;
	const struct route_hop *hop = &t->route->hops[t->hop];
	struct smtpc_opts o;
	struct dconn *dc;
	bool smarthost = hop->relay && d->cfg.deliver.smarthost_user[0] != '\0';
	int rc;

	memset(&o, 0, sizeof o);
	o.loop = d->loop;
	o.addr = (const struct sockaddr *)&hop->addr;
	o.bind_addr = d->have_bind ? (const struct sockaddr *)&d->bind_addr : NULL;
	o.host = hop->name;
	o.helo = d->cfg.server.hostname;
	o.tls = d->tls;
	o.require_tls = smarthost;
	o.auth_user = smarthost ? d->cfg.deliver.smarthost_user : NULL;
	o.auth_pass = smarthost ? d->cfg.deliver.smarthost_password : NULL;
	o.connect_ms = d->cfg.deliver.connect_timeout_ms;
	o.greeting_ms = d->cfg.deliver.greeting_timeout_ms;
	o.command_ms = d->cfg.deliver.command_timeout_ms;
	o.data_init_ms = d->cfg.deliver.data_init_timeout_ms;
	o.data_block_ms = d->cfg.deliver.data_block_timeout_ms;
	o.data_end_ms = d->cfg.deliver.data_end_timeout_ms;
	dc = xcalloc(1, sizeof *dc);
	dc->d = d;
	dc->host = t->host;
	dc->task = t;
	list_init(&dc->link);
	rc = smtpc_open(&dc->c, &o, on_ready, dc);
	if (rc < 0) {
		free(dc);
		return rc;
	}
	smtpc_on_close(dc->c, on_conn_closed, dc);
	list_push(&d->conns, &dc->all);
	t->host->nconns++;
	d->nconns++;
	t->conn = dc;
	t->state = T_CONNECT;
	return 0;
}

static void
task_connect(struct task *t)
{
	struct deliver *d = t->d;
	struct host *h = t->host;
	struct link *l;
	int rc;

	if (d->stopping) {
		task_release(t);
		return;
	}
	t->state = T_WAIT;
	if ((l = list_pop(&h->idle)) != NULL) {
		task_on_conn(t, LINK_OWNER(l, struct dconn, link));
		return;
	}
	if (h->nconns >= d->cfg.deliver.per_destination) {
		list_push(&h->waiting, &t->wait);
		return;
	}
	if (d->nconns >= d->cfg.deliver.concurrency) {
		close_one_idle(d);
		list_push(&d->waiting, &t->wait);
		return;
	}
	rc = conn_open(t);
	if (rc < 0) {
		char why[600];

		say(why, sizeof why, "451 4.4.1 %s[%s]:%u: %s", h->name, h->ip,
		    sockaddr_port(&h->addr), uv_strerror(rc));
		hop_failed(t, why, false);
	}
}

/* --- SPF, then the transaction ---------------------------------------------------------------- */

static void task_txn(struct task *t);

static bool
spf_defers(enum spfcheck_verdict v)
{
	return v == SPFCHECK_FAIL || v == SPFCHECK_SOFTFAIL || v == SPFCHECK_PERMERROR ||
	    v == SPFCHECK_TEMPERROR || v == SPFCHECK_NONE;
}

static void
on_spf(void *arg, enum spfcheck_verdict v, const char *why)
{
	struct task *t = arg;
	struct deliver *d = t->d;
	char reply[700], q[600], ip[64];

	if (d->stopping) {
		task_release(t);
		return;
	}
	if (t->conn == NULL) {
		/* The server closed the connection meanwhile: another one. */
		task_connect(t);
		return;
	}
	str_copy(ip, d->cfg.deliver.outbound_ip[0] ? d->cfg.deliver.outbound_ip :
	    smtpc_info(t->conn->c)->local_ip, sizeof ip);
	if (v == SPFCHECK_PASS) {
		task_txn(t);
		return;
	}
	if (d->cfg.deliver.spf_preflight == CONFIG_SPF_DEFER && spf_defers(v)) {
		say(reply, sizeof reply, "451 4.7.23 SPF preflight: %s for %s from %s: %s; publish an SPF record that allows this server, or set [deliver] spf_preflight = warn",
		    spfcheck_verdict_name(v), t->rp_domain, ip, why);
		task_defer_all(t, reply);
		return;
	}
	log_warn("deliver", "spf_preflight", "id=%s domain=%s verdict=%s reason=%s effect=delivered",
	    t->job->id, t->rp_domain, spfcheck_verdict_name(v), log_quotes(q, sizeof q, why));
	task_txn(t);
}

/* task_on_conn - a ready connection for t: preflight, then send. */
static void
task_on_conn(struct task *t, struct dconn *dc)
{
	struct deliver *d = t->d;
	const char *ip;
	int rc;

	if (!list_empty(&t->wait))
		list_del(&t->wait);
	t->conn = dc;
	dc->task = t;
	if (d->stopping) {
		task_release(t);
		return;
	}
	if (d->cfg.deliver.spf_preflight == CONFIG_SPF_OFF || d->spf == NULL ||
	    t->rp_domain[0] == '\0' || t->job->env.sender == NULL || t->job->env.sender[0] == '\0') {
		task_txn(t);
		return;
	}
	ip = d->cfg.deliver.outbound_ip[0] ? d->cfg.deliver.outbound_ip : smtpc_info(dc->c)->local_ip;
	t->state = T_SPF;
	rc = spfcheck_eval(d->spf, ip, t->rp_domain, d->cfg.server.hostname, on_spf, t);
	if (rc < 0)
		on_spf(t, SPFCHECK_TEMPERROR, uv_strerror(rc));
}

static void
on_txn(void *arg, struct smtpc *c, const struct smtpc_result *res)
{
	struct task *t = arg;
	size_t ndel = 0, ndef = 0, nbou = 0;
	char reply[700], mailr[700], why[700];

	(void)c;
	if (res->status < 0 && res->connection_lost && res->stage >= SMTPC_DATA) {
		/*
		 * Lost in the middle: nothing is known of the outcome, try again
		 * later (at-least-once: the server may have it).
		 */
		say(why, sizeof why, "451 4.4.2 %s[%s]: %s at %s", t->host->name, t->host->ip,
		    res->error[0] ? res->error : "connection lost", smtpc_stage_name(res->stage));
		if (t->conn != NULL)
			t->conn->closing = true;
		task_defer_all(t, why);
		return;
	}
	if (res->stage == SMTPC_MAIL || res->stage == SMTPC_RSET ||
	    (res->status < 0 && res->stage < SMTPC_RCPT)) {
		/* MAIL refused (or RSET, or no MAIL possible): it speaks for everyone. */
		if (res->mail.code != 0)
			reply_text(&res->mail, mailr, sizeof mailr);
		else
			say(mailr, sizeof mailr, "451 4.4.2 %s", res->error[0] ? res->error : "transaction failed");
		say(why, sizeof why, "%s (%s[%s])", mailr, t->host->name, t->host->ip);
		if (res->connection_lost && t->conn != NULL)
			t->conn->closing = true;
		if (reply_class(res->mail.code) == 5)
			task_bounce_all(t, why);
		else
			task_defer_all(t, why);
		return;
	}
	for (size_t k = 0; k < t->ntxn; k++) {
		size_t i = t->txn_idx[k];
		const struct smtpc_reply *rr = &res->rcpt[k];
		const struct smtpc_reply *final;

		t->pst[i] = P_DONE;
		if (rr->code == 0) {
			say(reply, sizeof reply, "451 4.4.2 %s[%s]: no reply to RCPT (%s)",
			    t->host->name, t->host->ip, res->error[0] ? res->error : "transaction ended");
			queue_job_set(t->job, t->pend[i], RCPT_DEFERRED, reply);
			ndef++;
			continue;
		}
		final = reply_class(rr->code) == 2 ? &res->data : rr;
		if (final == &res->data && res->data.code == 0) {
			say(reply, sizeof reply, "451 4.4.2 %s[%s]: %s", t->host->name,
			    t->host->ip, res->error[0] ? res->error : "no reply to the data");
			queue_job_set(t->job, t->pend[i], RCPT_DEFERRED, reply);
			ndef++;
			continue;
		}
		reply_text(final, reply, sizeof reply);
		switch (reply_class(final->code)) {
		case 2:
			queue_job_set(t->job, t->pend[i], RCPT_DELIVERED, reply);
			ndel++;
			break;
		case 5:
			queue_job_set(t->job, t->pend[i], RCPT_BOUNCED, reply);
			nbou++;
			break;
		default:
			/* RFC 5321 4.5.3.1.10: 452 too many recipients, send the rest anew. */
			if (final == rr && rr->code == 452)
				t->pst[i] = P_AGAIN;
			queue_job_set(t->job, t->pend[i], RCPT_DEFERRED, reply);
			ndef++;
			break;
		}
	}
	if (res->data.code != 0)
		reply_text(&res->data, reply, sizeof reply);
	else if (res->error[0])
		say(reply, sizeof reply, "%s", res->error);
	else
		say(reply, sizeof reply, "no recipient accepted");
	log_attempt(t, ndel == t->ntxn ? "delivered" : "attempt", reply, ndel, ndef, nbou);
	if (res->connection_lost && t->conn != NULL)
		t->conn->closing = true;
	/*
	 * More to send: recipients past the first SMTPC_RCPT_MAX, and those
	 * refused with 452 when others got through.  Without progress, 452s
	 * stay deferred.
	 */
	for (size_t i = 0; i < t->npend; i++)
		if (t->pst[i] == P_AGAIN)
			t->pst[i] = ndel + nbou > 0 ? P_OPEN : P_DONE;
	if (open_count(t) > 0 && t->conn != NULL && !t->conn->closing &&
	    smtpc_usable(t->conn->c) && !t->d->stopping) {
		task_txn(t);
		return;
	}
	if (open_count(t) > 0)
		set_all(t, RCPT_DEFERRED, t->conn == NULL || t->conn->closing ?
		    "451 4.4.2 not sent: the connection ended first" : "451 4.5.3 not sent yet");
	task_finish(t);
}

static void
task_txn(struct task *t)
{
	struct smtpc_txn txn;
	struct iovec *iov = t->iov;
	size_t n = t->npend;
	int rc;

	t->state = T_TXN;
	free(t->txn_idx);
	free(t->txn_rcpt);
	t->txn_idx = xcalloc(n ? n : 1, sizeof *t->txn_idx);
	t->txn_rcpt = xcalloc(n ? n : 1, sizeof *t->txn_rcpt);
	n = 0;
	for (size_t i = 0; i < t->npend && n < SMTPC_RCPT_MAX; i++) {
		const struct env_rcpt *er;

		if (t->pst[i] != P_OPEN)
			continue;
		er = &t->job->env.rcpt[t->job->st.r[t->pend[i]].idx];
		t->pst[i] = P_SENT;
		t->txn_idx[n] = i;
		t->txn_rcpt[n].addr = er->addr;
		t->txn_rcpt[n].orcpt = er->orcpt;
		t->txn_rcpt[n].notify = er->notify;
		n++;
	}
	t->ntxn = n;
	memset(&txn, 0, sizeof txn);
	txn.mail_from = t->mail_from;
	txn.size = t->sigs.len + t->job->msg_len;
	txn.body8bit = t->body8bit;
	txn.smtputf8 = (t->job->env.flags & ENV_F_SMTPUTF8) != 0;
	txn.envid = t->job->env.envid;
	txn.ret = t->job->env.ret;
	txn.nrcpt = n;
	txn.rcpt = t->txn_rcpt;
	iov[0].iov_base = t->sigs.data;
	iov[0].iov_len = t->sigs.len;
	iov[1].iov_base = t->job->msg;
	iov[1].iov_len = t->job->msg_len;
	txn.pieces = t->sigs.len > 0 ? iov : iov + 1;
	txn.npieces = t->sigs.len > 0 ? 2 : 1;
	rc = smtpc_send(t->conn->c, &txn, on_txn, t);
	if (rc < 0) {
		char why[600];

		say(why, sizeof why, "451 4.3.0 cannot send to %s[%s]: %s", t->host->name,
		    t->host->ip, uv_strerror(rc));
		t->conn->closing = true;
		smtpc_abort(t->conn->c);
		task_defer_all(t, why);
	}
}

/* --- sweep: leases and idle connections ---------------------------------------------------- */

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
	uint64_t now = now_ms(d);
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
			conn_quit(dc);
	}
}

/* --- open and stop ---------------------------------------------------------------------------- */

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
	if (d->cfg.deliver.outbound_ip[0] != '\0') {
		if (uv_ip4_addr(d->cfg.deliver.outbound_ip, 0, (struct sockaddr_in *)&d->bind_addr) != 0 &&
		    uv_ip6_addr(d->cfg.deliver.outbound_ip, 0, (struct sockaddr_in6 *)&d->bind_addr) != 0) {
			say(err, errsz, "[deliver] outbound_ip %s is not an address", d->cfg.deliver.outbound_ip);
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
			say(err, errsz, "[deliver] route.%s: \"%s\" is neither a host name nor an IP address",
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
	uv_timer_init(loop, &d->sweep_timer);
	uv_timer_init(loop, &d->grace_timer);
	d->claim_timer.data = d->sweep_timer.data = d->grace_timer.data = d;
	d->handles_open = 3;
	uv_timer_start(&d->sweep_timer, on_sweep, SWEEP_MS, SWEEP_MS);
	claim_soon(d, 0);
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
	maybe_stopped(d);
}

static void
on_dns_closed(void *arg)
{
	struct deliver *d = arg;

	d->dns_closed = true;
	maybe_stopped(d);
}

static void
on_spf_closed(void *arg)
{
	struct deliver *d = arg;

	d->spf_closed = true;
	maybe_stopped(d);
}

/*
 * maybe_stopped - once stopping and every task, signing and connection
 * is gone, close the resolver, the timers, and free.
 */
static void
maybe_stopped(struct deliver *d)
{
	void (*cb)(void *arg);
	void *arg;

	if (!d->stopping || d->active > 0 || d->claiming || !list_empty(&d->signing))
		return;
	/* Idle connections: QUIT them; wait for them to close. */
	for (struct link *l = d->conns.next; l != &d->conns; l = l->next) {
		struct dconn *dc = LINK_OWNER(l, struct dconn, all);

		if (!dc->closing) {
			if (dc->ready && dc->task == NULL)
				conn_quit(dc);
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
	if (d->handles_open == 3 && !uv_is_closing((uv_handle_t *)&d->claim_timer)) {
		uv_close((uv_handle_t *)&d->claim_timer, on_handle_closed);
		uv_close((uv_handle_t *)&d->sweep_timer, on_handle_closed);
		uv_close((uv_handle_t *)&d->grace_timer, on_handle_closed);
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
			    t->job->id, t->job->domain, task_state_names[t->state]);
			t->conn = NULL;
			if (dc != NULL) {
				dc->task = NULL;
				dc->closing = true;
				smtpc_abort(dc->c);
			}
			task_release(t);
		}
	}
	maybe_stopped(d);
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
	uv_timer_stop(&d->sweep_timer);
	log_info("deliver", "stopping", "jobs=%u connections=%u grace_ms=%" PRIu64,
	    d->active, d->nconns, grace_ms);
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
			conn_quit(dc);
	}
	uv_timer_start(&d->grace_timer, on_grace, grace_ms, 0);
	maybe_stopped(d);
}
