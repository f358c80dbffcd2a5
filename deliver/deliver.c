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
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/list.h"
#include "core/log.h"
#include "core/str.h"
#include "core/tlsctx.h"
#include "core/xmalloc.h"
#include "deliver/dkimsign.h"
#include "deliver/dns.h"
#include "deliver/outcome.h"
#include "deliver/route.h"
#include "deliver/smtpc.h"
#include "policy/spfcheck.h"
#include "queue/verp.h"
#include "policy/dest.h"
#include "policy/policy.h"

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
#define LOAD_BUCKETS 256        /* destinations with jobs held by this node */
#define SWEEP_MS 1000
#define THROTTLE_POLL_MS 3000   /* how often suspensions made by other nodes are read */
#define RATE_SLOTS 60           /* one-second slots of the per-minute window */
/*
 * Jobs of a group over its per-minute rate wait in memory, up to this
 * many; the rest go back to the queue, due when their turn comes.
 */
#define RATE_HOLD_MAX 32
#define GROUP_IDLE_MS 120000    /* an unused group is forgotten after this */
#define SUP_RETRY_MS 10000      /* the suppression list could not be read: again after this */
#define HOST_BUCKETS 1024
#define LOG_RCPTS_MAX 900       /* bytes of recipients in one log line */

/* --- types ------------------------------------------------------------------ */

enum task_state {
	T_CHECK,
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
	"check", "route", "sign", "wait", "connect", "spf", "txn", "done",
};

struct host;
struct dconn;
struct signjob;

/*
 * A destination group (policy/dest.h): the hosts of one provider or one
 * domain, sharing a connection limit, a per-minute message rate, and a
 * suspension when one of them says "slow down".
 */
struct group {
	struct group *next;         /* d->groups */
	struct policy_dest rules;
	unsigned refs;              /* hosts pointing here */
	unsigned nconns;            /* connections open or being set up, all hosts */
	struct link waiting;        /* task.wait: for a connection of the group */
	struct link rate_wait;      /* task.wait: for a slot of the per-minute rate */
	/* Messages started in each of the last RATE_SLOTS seconds (this node). */
	uint32_t slot_n[RATE_SLOTS];
	uint64_t slot_sec[RATE_SLOTS];
	uint64_t until_ms;          /* suspended until (queue clock); 0 = never was */
	unsigned level;             /* consecutive throttles known, 0 = none */
	bool hitting;               /* a throttle is being recorded */
	struct link hit_waiters;    /* task.wait: throttled tasks waiting for the until */
	uint64_t used_ms;
};

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
	struct policy_dest dest;    /* the domain's rules via its best MX (DKIM choice) */
	bool rate_ok;               /* counted in its group's per-minute rate */
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
	struct group *grp;          /* a host is one per group it serves */
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

/*
 * The jobs of one destination (recipient domain) this node holds: the
 * claim script leases at most per_destination of them across all nodes,
 * so a destination at its cap may have due work that a claim could not
 * hand out.  When one of its jobs goes back to the queue, a claim is
 * made at the end of that loop turn to fill the slot.
 */
struct load {
	struct load *next;
	unsigned n;
	char domain[];
};

/* Why a claim was made (its counters, logged at stop). */
enum claim_why {
	CLAIM_START,    /* at open */
	CLAIM_MORE,     /* the last claim returned jobs */
	CLAIM_ROOM,     /* slots freed after a full claim */
	CLAIM_REFILL,   /* a destination at its cap gave a job back */
	CLAIM_POLL,     /* IDLE_POLL_MS after an empty claim */
	CLAIM_RETRY,    /* IDLE_POLL_MS after a failed claim (Redis down) */
	CLAIM_NWHY,
};

static const char *const claim_why_names[CLAIM_NWHY] = {
	"start", "more", "room", "refill", "poll", "retry",
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
	uv_check_t refill_check;    /* the claim after this loop turn's freed slots */
	uv_timer_t sweep_timer;
	uv_timer_t grace_timer;
	unsigned handles_open;
	bool claiming;
	bool last_claim_full;
	bool full;                  /* a claim was due while every slot was taken */
	bool refill;                /* a slot at a destination's cap freed */
	enum claim_why claim_why;   /* of the claim being made */
	enum claim_why timer_why;   /* of the claim the timer will make */
	uint64_t claims[CLAIM_NWHY];
	uint64_t claim_jobs[CLAIM_NWHY];
	struct load *loads[LOAD_BUCKETS];
	unsigned active;            /* tasks */
	unsigned nconns;            /* connections open or being set up */
	struct link tasks;
	struct link conns;
	struct link waiting;        /* tasks held back by concurrency */
	struct link signing;        /* signjob.link: running and waiting */
	unsigned nsigning;          /* running */
	struct host *hosts[HOST_BUCKETS];
	struct group *groups;
	uv_timer_t throttle_timer;
	bool listing;               /* a policy_throttle_list is pending */
	struct policy_throttle *susp;   /* its last answer */
	size_t nsusp;

	bool stopping;
	bool grace_over;
	bool dns_closed, spf_closed;
	void (*stopped_cb)(void *arg);
	void *stopped_arg;
};

static void task_route(struct task *t);
static void task_check(struct task *t);
static void task_sign(struct task *t);
static void task_next_hop(struct task *t);
static void task_connect(struct task *t);
static void task_on_conn(struct task *t, struct dconn *dc);
static void task_finish(struct task *t);
static void task_release(struct task *t);
static void claim_soon(struct deliver *d, uint64_t ms, enum claim_why why);
static void load_put(struct deliver *d, const char *domain);
static void on_claimed(void *arg, int status, struct queue_job **jobs, size_t njobs);
static void on_refill_check(uv_check_t *h);
static void conn_release(struct dconn *dc);
static void maybe_stopped(struct deliver *d);
static void wake_waiters(struct deliver *d, struct host *h);
static void task_hold(struct task *t, uint64_t until, const char *why);

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

/* reply_text - a reply as kept by smtpc: the code and the text, or (code 0) what happened. */
static void
reply_text(const struct smtpc_reply *r, char *dst, size_t size)
{
	say(dst, size, "%s", r->text);
}

/* --- groups --------------------------------------------------------------------- */

/* dest_copy - *dst = *src, with the throttle list pointing into dst. */
static void
dest_copy(struct policy_dest *dst, const struct policy_dest *src)
{
	memcpy(dst, src, sizeof *dst);
	for (size_t i = 0; i <= CONFIG_THROTTLE_MAX; i++)
		dst->throttle_ptr[i] = src->throttle_ptr[i] != NULL ? dst->throttle_buf[i] : NULL;
	dst->throttle = dst->throttle_ptr;
}

/* group_get - the group named by rules (rules of the same name are the same). */
static struct group *
group_get(struct deliver *d, const struct policy_dest *rules)
{
	struct group *g;

	for (g = d->groups; g != NULL; g = g->next)
		if (strcmp(g->rules.group, rules->group) == 0)
			break;
	if (g == NULL) {
		g = xcalloc(1, sizeof *g);
		list_init(&g->waiting);
		list_init(&g->rate_wait);
		list_init(&g->hit_waiters);
		g->next = d->groups;
		d->groups = g;
		/* Suspended by a node, as last read. */
		for (size_t i = 0; i < d->nsusp; i++) {
			if (strcmp(d->susp[i].group, rules->group) == 0) {
				g->until_ms = d->susp[i].until_ms;
				g->level = d->susp[i].level;
			}
		}
	}
	dest_copy(&g->rules, rules);
	g->used_ms = now_ms(d);
	return g;
}

static bool
group_suspended(const struct deliver *d, const struct group *g)
{
	return g->hitting || g->until_ms > queue_now(d->q);
}

/*
 * rate_take - count one message in g's per-minute rate if there is room:
 * at most max_messages_per_minute in any RATE_SLOTS seconds.  Else *free_ms
 * is when (loop clock) a slot frees.
 */
static bool
rate_take(struct deliver *d, struct group *g, uint64_t *free_ms)
{
	uint64_t sec = now_ms(d) / 1000, oldest = UINT64_MAX, n = 0;
	unsigned max = g->rules.max_messages_per_minute;
	size_t k = sec % RATE_SLOTS;

	if (max == 0)
		return true;
	for (size_t i = 0; i < RATE_SLOTS; i++) {
		if (g->slot_n[i] == 0 || g->slot_sec[i] + RATE_SLOTS <= sec)
			continue;
		n += g->slot_n[i];
		if (g->slot_sec[i] < oldest)
			oldest = g->slot_sec[i];
	}
	if (n >= max) {
		*free_ms = (oldest + RATE_SLOTS) * 1000;
		return false;
	}
	if (g->slot_sec[k] != sec) {
		g->slot_sec[k] = sec;
		g->slot_n[k] = 0;
	}
	g->slot_n[k]++;
	return true;
}

static bool
rate_recent(const struct deliver *d, const struct group *g)
{
	uint64_t sec = now_ms(d) / 1000;

	for (size_t i = 0; i < RATE_SLOTS; i++)
		if (g->slot_n[i] > 0 && g->slot_sec[i] + RATE_SLOTS > sec)
			return true;
	return false;
}

/* group_unused - nothing refers to g and it holds no state worth keeping. */
static bool
group_unused(const struct deliver *d, const struct group *g)
{
	return g->refs == 0 && g->nconns == 0 && list_empty(&g->waiting) &&
	    list_empty(&g->rate_wait) && list_empty(&g->hit_waiters) && !g->hitting &&
	    g->level == 0 && !group_suspended(d, g) && !rate_recent(d, g) &&
	    now_ms(d) - g->used_ms >= GROUP_IDLE_MS;
}

/* group_sweep - forget groups nobody used for a while. */
static void
group_sweep(struct deliver *d)
{
	struct group **pp = &d->groups;

	while (*pp != NULL) {
		struct group *g = *pp;

		if (group_unused(d, g)) {
			*pp = g->next;
			free(g);
			continue;
		}
		pp = &g->next;
	}
}

/* --- hosts ------------------------------------------------------------------------ */

static unsigned
host_hash(const char *name, const struct sockaddr_storage *a, const struct group *g)
{
	unsigned h = 2166136261u;
	char ip[64];

	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)(*p | 0x20)) * 16777619u;
	for (const char *p = g->rules.group; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	sockaddr_ip(a, ip, sizeof ip);
	for (const char *p = ip; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h ^= sockaddr_port(a);
	return h % HOST_BUCKETS;
}

static bool
host_same(const struct host *h, const char *name, const struct sockaddr_storage *a,
    const struct group *g)
{
	char ip[64];

	if (h->grp != g || strcasecmp(h->name, name) != 0)
		return false;
	sockaddr_ip(a, ip, sizeof ip);
	return strcmp(h->ip, ip) == 0 && sockaddr_port(&h->addr) == sockaddr_port(a);
}

static struct host *
host_get(struct deliver *d, const char *name, const struct sockaddr_storage *a,
    struct group *g)
{
	unsigned b = host_hash(name, a, g);
	struct host *h;

	for (h = d->hosts[b]; h != NULL; h = h->next)
		if (host_same(h, name, a, g))
			return h;
	h = xcalloc(1, sizeof *h);
	h->grp = g;
	g->refs++;
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
	for (pp = &d->hosts[host_hash(h->name, &h->addr, h->grp)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			h->grp->refs--;
			h->grp->used_ms = now_ms(d);
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
	h->grp->nconns--;
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
	struct group *g = h->grp;
	struct link *w;

	dc->task = NULL;
	if (dc->closing)
		return;
	if (!smtpc_usable(dc->c) || d->stopping || group_suspended(d, g) ||
	    smtpc_info(dc->c)->transactions >= g->rules.max_messages_per_connection) {
		conn_quit(dc);
		return;
	}
	if ((w = list_pop(&h->waiting)) != NULL) {
		task_on_conn(LINK_OWNER(w, struct task, wait), dc);
		return;
	}
	/* The first in line for a connection of the group that wants this host. */
	for (w = g->waiting.next; w != &g->waiting; w = w->next) {
		struct task *t = LINK_OWNER(w, struct task, wait);

		if (t->host == h) {
			list_del(w);
			task_on_conn(t, dc);
			return;
		}
	}
	/* Another host of the group waits for a slot of the group. */
	if (!list_empty(&g->waiting) && g->rules.max_connections > 0 &&
	    g->nconns >= g->rules.max_connections) {
		conn_quit(dc);
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
	if (h != NULL && (h->grp->rules.max_connections == 0 ||
	    h->grp->nconns < h->grp->rules.max_connections) &&
	    (w = list_pop(&h->grp->waiting)) != NULL) {
		task_connect(LINK_OWNER(w, struct task, wait));
		return;
	}
	if (d->nconns < d->cfg.deliver.concurrency && (w = list_pop(&d->waiting)) != NULL)
		task_connect(LINK_OWNER(w, struct task, wait));
}

/* close_one_idle - free a slot held by an idle connection of any server (of group g). */
static bool
close_one_idle(struct deliver *d, const struct group *g)
{
	for (struct link *l = d->conns.next; l != &d->conns; l = l->next) {
		struct dconn *dc = LINK_OWNER(l, struct dconn, all);

		if (dc->task == NULL && !dc->closing && dc->ready &&
		    (g == NULL || dc->host->grp == g)) {
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
			claim_soon(d, 0, CLAIM_ROOM);
		else if (!uv_is_active((uv_handle_t *)&d->claim_timer))
			claim_soon(d, CLAIM_GATHER_MS, CLAIM_ROOM);
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

/*
 * task_finish_at - write the outcomes set on the job and let it go;
 * deferred recipients are due at due (queue clock), or on the retry
 * schedule when due is 0.
 */
static void
task_finish_at(struct task *t, uint64_t due)
{
	int rc;
	char mta[300] = "";

	t->state = T_DONE;
	if (!list_empty(&t->wait))
		list_del(&t->wait);
	task_drop_conn(t);
	if (t->host != NULL)
		say(mta, sizeof mta, "%s[%s]", t->host->name, t->host->ip);
	queue_job_set_mta(t->job, mta);
	rc = due > 0 ? queue_complete_at(t->d->q, t->job, due, on_completed, t) :
	    queue_complete(t->d->q, t->job, on_completed, t);
	load_put(t->d, t->job->domain);
	if (rc < 0)
		on_completed(t, rc);
}

/* task_finish - write the outcomes set on the job and let it go. */
static void
task_finish(struct task *t)
{
	task_finish_at(t, 0);
}

/*
 * task_hold - give the job back without an attempt, due at until (queue
 * clock): its group is suspended, or over its rate.
 */
static void
task_hold(struct task *t, uint64_t until, const char *why)
{
	struct deliver *d = t->d;
	uint64_t now = queue_now(d->q);
	int rc;

	t->state = T_DONE;
	if (!list_empty(&t->wait))
		list_del(&t->wait);
	task_drop_conn(t);
	log_info("deliver", "held", "id=%s domain=%s group=%s reason=%s due_in=%.1f",
	    t->job->id, t->job->domain, t->host ? t->host->grp->rules.group : "-", why,
	    until > now ? (double)(until - now) / 1000.0 : 0.0);
	rc = queue_release_at(d->q, t->job, until, on_completed, t);
	load_put(d, t->job->domain);
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
	load_put(t->d, t->job->domain);
	if (rc < 0)
		on_completed(t, rc);
}

/* --- throttled groups ------------------------------------------------------------------ */

/* group_hold_all - every task of g waiting for a connection or a rate slot goes back. */
static void
group_hold_all(struct deliver *d, struct group *g)
{
	struct link *l, *next;

	for (l = d->tasks.next; l != &d->tasks; l = next) {
		struct task *t = LINK_OWNER(l, struct task, all);

		next = l->next;
		if (t->state == T_WAIT && t->host != NULL && t->host->grp == g)
			task_hold(t, g->until_ms, "throttled");
	}
	/* Idle connections of the group close. */
	for (l = d->conns.next; l != &d->conns; l = next) {
		struct dconn *dc = LINK_OWNER(l, struct dconn, all);

		next = l->next;
		if (dc->task == NULL && dc->ready && !dc->closing && dc->host->grp == g)
			conn_quit(dc);
	}
}

/* fmt_time - ms since the epoch as "2026-11-22T18:05:52.123Z". */
static const char *
fmt_time(uint64_t ms, char *dst, size_t size)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&sec, &tm) == NULL) {
		say(dst, size, "%" PRIu64, ms);
		return dst;
	}
	say(dst, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
	    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
	return dst;
}

/* throttle_done - g is suspended until until: say so once, then let its tasks go. */
static void
throttle_done(struct deliver *d, struct group *g, uint64_t until, unsigned level,
    const char *reply, const char *note)
{
	struct link *w;
	char ts[40], qr[700];

	g->hitting = false;
	g->until_ms = until;
	g->level = level;
	log_warn("deliver", "throttled", "group=%s level=%u until=%s backoff=%.1f reply=%s%s",
	    g->rules.group, level, fmt_time(until, ts, sizeof ts),
	    until > queue_now(d->q) ? (double)(until - queue_now(d->q)) / 1000.0 : 0.0,
	    log_quotes(qr, sizeof qr, reply), note);
	while ((w = list_pop(&g->hit_waiters)) != NULL)
		task_finish_at(LINK_OWNER(w, struct task, wait), until);
	group_hold_all(d, g);
	maybe_stopped(d);
}

/* throttle_local - the suspension when Redis cannot record it (as policy_throttle_hit). */
static void
throttle_local(struct deliver *d, struct group *g, const char *reply, const char *note)
{
	uint64_t now = queue_now(d->q), min = d->cfg.policy.throttle_backoff_min_ms;
	uint64_t max = d->cfg.policy.throttle_backoff_max_ms, span = min;
	unsigned level = g->level > 0 && g->until_ms + max >= now ? g->level + 1 : 1;

	if (max < min)
		max = min;
	for (unsigned i = 1; i < level && span < max; i++)
		span *= 2;
	if (span > max)
		span = max;
	throttle_done(d, g, now + span, level, reply, note);
}

struct hit_req {
	struct deliver *d;
	struct group *g;
	char reply[600];
};

static void
on_throttle_hit(void *arg, int status, const struct policy_throttle *pt, size_t n)
{
	struct hit_req *hr = arg;

	if (status == 0 && n > 0)
		throttle_done(hr->d, hr->g, pt[0].until_ms, pt[0].level, hr->reply, "");
	else
		throttle_local(hr->d, hr->g, hr->reply, " shared=no");
	free(hr);
}

/*
 * task_throttled - reply from t's server means "slow down": t's open
 * recipients are deferred with it (this attempt counts, no other), its
 * connection closes, and the whole group is suspended: t is due again
 * when the suspension ends, and so are the group's other jobs.
 */
static void
task_throttled(struct task *t, const char *reply)
{
	struct deliver *d = t->d;
	struct group *g = t->host->grp;
	size_t n = open_count(t);
	struct hit_req *hr;

	set_all(t, RCPT_DEFERRED, reply);
	if (n > 0)
		log_attempt(t, "deferred", reply, 0, n, 0);
	t->state = T_DONE;
	if (!g->hitting && group_suspended(d, g)) {
		/* Already suspended (another connection said it first). */
		task_finish_at(t, g->until_ms);
		return;
	}
	list_push(&g->hit_waiters, &t->wait);
	if (g->hitting) {
		task_drop_conn(t);
		return;
	}
	g->hitting = true;
	task_drop_conn(t);      /* (closes: the group is suspended) */
	if (d->pol == NULL) {
		throttle_local(d, g, reply, "");
		return;
	}
	hr = xcalloc(1, sizeof *hr);
	hr->d = d;
	hr->g = g;
	str_copy(hr->reply, reply, sizeof hr->reply);
	if (policy_throttle_hit(d->pol, g->rules.group, reply, on_throttle_hit, hr) < 0) {
		free(hr);
		throttle_local(d, g, reply, " shared=no");
	}
}

static void
on_throttle_cleared(void *arg, int status)
{
	(void)arg;
	(void)status;
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

/* --- CHECK: the suppression list ------------------------------------------------------- */

static void
on_filtered(void *arg, int status, const bool *suppressed, char *const *why, size_t n)
{
	struct task *t = arg;
	struct deliver *d = t->d;
	char rcpts[LOG_RCPTS_MAX + 64], rq[2 * LOG_RCPTS_MAX + 128], reply[400], qr[900];
	size_t off = 0, nsup = 0;

	if (d->stopping) {
		task_release(t);
		return;
	}
	if (status < 0) {
		log_warn("deliver", "suppression_unknown", "id=%s domain=%s error=\"%s\" effect=\"given back to the queue, due in %u s\"",
		    t->job->id, t->job->domain, uv_strerror(status), SUP_RETRY_MS / 1000);
		task_hold(t, queue_now(d->q) + SUP_RETRY_MS, "suppression_unknown");
		return;
	}
	rcpts[0] = reply[0] = '\0';
	for (size_t i = 0; i < n && i < t->npend; i++) {
		const char *a;

		if (!suppressed[i])
			continue;
		a = t->job->env.rcpt[t->job->st.r[t->pend[i]].idx].addr;
		/* The stored text, as a reply a DSN can carry. */
		say(reply, sizeof reply, "550 5.7.1 %s", why[i] && why[i][0] ? why[i] :
		    "recipient suppressed");
		queue_job_set(t->job, t->pend[i], RCPT_SUPPRESSED, reply);
		t->pst[i] = P_DONE;
		if (off + strlen(a) + 2 < LOG_RCPTS_MAX)
			off += (size_t)snprintf(rcpts + off, sizeof rcpts - off, "%s%s", off ? "," : "", a);
		nsup++;
	}
	if (nsup > 0)
		log_info("deliver", "suppressed", "id=%s domain=%s to=%s rcpts=%zu reply=%s",
		    t->job->id, t->job->domain, log_quotes(rq, sizeof rq, rcpts), nsup,
		    log_quotes(qr, sizeof qr, reply));
	if (open_count(t) == 0) {
		/* Nobody left: done without a connection. */
		task_finish(t);
		return;
	}
	task_route(t);
}

/* task_check - drop the recipients on the suppression list, then route. */
static void
task_check(struct task *t)
{
	struct deliver *d = t->d;
	const char *sender = t->job->env.sender ? t->job->env.sender : "";
	const char **addrs;
	int rc;

	if (d->pol == NULL) {
		task_route(t);
		return;
	}
	t->state = T_CHECK;
	addrs = xcalloc(t->npend, sizeof *addrs);
	for (size_t i = 0; i < t->npend; i++)
		addrs[i] = t->job->env.rcpt[t->job->st.r[t->pend[i]].idx].addr;
	rc = policy_sup_filter(d->pol, domain_of(sender), addrs, t->npend, on_filtered, t);
	free(addrs);
	if (rc < 0)
		on_filtered(t, rc, NULL, NULL, 0);
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
	task_check(t);
}

/* load_hash - the bucket of a destination (recipient domains are lower case). */
static unsigned
load_hash(const char *domain)
{
	unsigned h = 2166136261u;

	for (const char *p = domain; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % LOAD_BUCKETS;
}

/* load_get - one more job of domain held by this node; returns how many now. */
static unsigned
load_get(struct deliver *d, const char *domain)
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
 * load_put - a job of domain was given back to the queue (its complete or
 * release is on the wire).  When the destination was at its cap, the
 * claim script may have work for the slot: claim after this loop turn,
 * once for every slot freed in it.  The claim goes out on the queue's
 * connection after the complete, so Redis counts the slot free first.
 */
static void
load_put(struct deliver *d, const char *domain)
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
		claim_soon(d, IDLE_POLL_MS, CLAIM_RETRY);
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
			claim_soon(d, IDLE_POLL_MS, CLAIM_RETRY);
		maybe_stopped(d);
		return;
	}
	d->claim_jobs[d->claim_why] += njobs;
	d->last_claim_full = njobs > 0 && njobs >= asked;
	for (size_t i = 0; i < njobs; i++) {
		unsigned held = load_get(d, jobs[i]->domain);

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
	 * freed slots claim again (load_put).
	 */
	if (!d->stopping) {
		if (njobs > 0 && (d->last_claim_full || !capped))
			claim_soon(d, 0, CLAIM_MORE);
		else if (d->refill)
			claim_soon(d, 0, CLAIM_REFILL);
		else
			claim_soon(d, IDLE_POLL_MS, CLAIM_POLL);
	}
	maybe_stopped(d);
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

static void
claim_soon(struct deliver *d, uint64_t ms, enum claim_why why)
{
	if (d->stopping)
		return;
	d->timer_why = why;
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
	/* The domain's rules via its best server: the DKIM choice. */
	policy_dest_for(&t->d->cfg, t->job->domain, res->hops[0].relay ? NULL : res->hops[0].name,
	    &t->dest);
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
	unsigned want = t->dest.dkim;
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
	struct policy_dest rules;

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
	policy_dest_for(&d->cfg, t->job->domain, hop->relay ? NULL : hop->name, &rules);
	t->host = host_get(d, hop->name, &hop->addr, group_get(d, &rules));
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

	if (status == 0) {
		const struct smtpc_info *si = smtpc_info(c);

		dc->ready = true;
		if (t == NULL) {
			conn_release(dc);
			return;
		}
		if (t->host->grp->rules.require_tls == CONFIG_TLS_VERIFY && !si->tls_verified) {
			say(why, sizeof why, "451 4.7.10 TLS required for %s: %s[%s]: certificate not verified (%s)",
			    t->job->domain, t->host->name, t->host->ip,
			    si->tls_verify_error[0] ? si->tls_verify_error : "no TLS");
			dc->task = NULL;
			t->conn = NULL;
			conn_quit(dc);
			log_attempt(t, "server_failed", why, 0, 0, 0);
			hop_failed(t, why, false);
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
		if (policy_dest_throttled(&t->host->grp->rules, rt)) {
			task_throttled(t, why);
			return;
		}
	}
	if (t->host->grp->rules.require_tls != CONFIG_TLS_OPTIONAL &&
	    (stage == SMTPC_STARTTLS || stage == SMTPC_TLS)) {
		say(why, sizeof why, "451 4.7.10 TLS required for %s: %s[%s]: %s", t->job->domain,
		    t->host->name, t->host->ip, reply->text[0] ? reply->text : uv_strerror(status));
	} else if (reply->code == 0) {
		say(why, sizeof why, "451 4.4.1 %s[%s]:%u: %s at %s", t->host->name,
		    t->host->ip, sockaddr_port(&t->host->addr), uv_strerror(status),
		    smtpc_stage_name(stage));
	}
	log_attempt(t, "server_failed", why, 0, 0, 0);
	/* A 5xx greeting or EHLO is a refusal; the rest may pass later (outcome.c). */
	hop_failed(t, why, outcome_setup(stage, reply->code).severity == OUTCOME_PERMANENT);
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
	o.require_tls = smarthost || t->host->grp->rules.require_tls != CONFIG_TLS_OPTIONAL;
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
	t->host->grp->nconns++;
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
	struct group *g = h->grp;
	struct link *l;
	uint64_t free_ms = 0;
	int rc;

	if (d->stopping) {
		task_release(t);
		return;
	}
	t->state = T_WAIT;
	if (!list_empty(&t->wait))
		list_del(&t->wait);
	/* The group said "slow down": wait for the record, or back to the queue. */
	if (g->hitting) {
		list_push(&g->waiting, &t->wait);
		return;
	}
	if (group_suspended(d, g)) {
		task_hold(t, g->until_ms, "throttled");
		return;
	}
	if (!t->rate_ok && g->rules.max_messages_per_minute > 0) {
		size_t waiting = list_len(&g->rate_wait);

		if (waiting == 0 && rate_take(d, g, &free_ms)) {
			t->rate_ok = true;
		} else if (waiting < RATE_HOLD_MAX) {
			/* In line here; the sweep lets it go when a slot frees. */
			list_push(&g->rate_wait, &t->wait);
			return;
		} else {
			/* Its turn comes after those waiting here: due about then. */
			task_hold(t, queue_now(d->q) + (uint64_t)60000 * (waiting + 1) /
			    g->rules.max_messages_per_minute, "rate");
			return;
		}
	}
	if ((l = list_pop(&h->idle)) != NULL) {
		task_on_conn(t, LINK_OWNER(l, struct dconn, link));
		return;
	}
	if (h->nconns >= d->cfg.deliver.per_destination) {
		list_push(&h->waiting, &t->wait);
		return;
	}
	if (g->rules.max_connections > 0 && g->nconns >= g->rules.max_connections) {
		/* An idle connection to another host of the group gives its slot up. */
		close_one_idle(d, g);
		list_push(&g->waiting, &t->wait);
		return;
	}
	if (d->nconns >= d->cfg.deliver.concurrency) {
		close_one_idle(d, NULL);
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

static void
on_spf(void *arg, enum spfcheck_verdict v, const char *why)
{
	struct task *t = arg;
	struct deliver *d = t->d;
	char reply[700], q[600], ip[64];
	enum policy_spf_action action;

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
	action = policy_spf_decide(&d->cfg, spfcheck_verdict_name(v));
	if (action == POLICY_SPF_DELIVER) {
		task_txn(t);
		return;
	}
	if (action == POLICY_SPF_DEFER) {
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

struct sup_req {
	char id[QID_SIZE];
	char scope[CONFIG_HOST_MAX];
	char addr[SMTPC_ADDR_MAX];
	char reply[600];
};

static void
on_sup_added(void *arg, int status)
{
	struct sup_req *sr = arg;
	char qa[1100], qr[1300];

	if (status == 0)
		log_info("deliver", "suppression_added", "id=%s scope=%s to=%s reason=hard-bounce reply=%s",
		    sr->id, sr->scope, log_quotes(qa, sizeof qa, sr->addr),
		    log_quotes(qr, sizeof qr, sr->reply));
	else
		log_warn("deliver", "suppression_failed", "id=%s scope=%s to=%s error=\"%s\"",
		    sr->id, sr->scope, log_quotes(qa, sizeof qa, sr->addr), uv_strerror(status));
	free(sr);
}

/*
 * sup_add - addr answered with a hard bounce: no more mail to it from the
 * envelope sender's domain ([policy] suppress_bounces).
 */
static void
sup_add(struct task *t, const char *addr, const char *reply)
{
	struct deliver *d = t->d;
	const char *sender = t->job->env.sender ? t->job->env.sender : "";
	struct sup_req *sr;
	int rc;

	if (d->pol == NULL || !d->cfg.policy.suppress_bounces || domain_of(sender)[0] == '\0')
		return;
	sr = xcalloc(1, sizeof *sr);
	memcpy(sr->id, t->job->id, QID_SIZE);
	str_copy(sr->scope, domain_of(sender), sizeof sr->scope);
	str_lower(sr->scope);
	str_copy(sr->addr, addr, sizeof sr->addr);
	str_copy(sr->reply, reply, sizeof sr->reply);
	rc = policy_suppress(d->pol, sr->scope, addr, POLICY_SUP_HARD_BOUNCE, reply, on_sup_added, sr);
	if (rc < 0)
		on_sup_added(sr, rc);
}

static void
on_txn(void *arg, struct smtpc *c, const struct smtpc_result *res)
{
	struct task *t = arg;
	struct group *g = t->host->grp;
	size_t ndel = 0, ndef = 0, nbou = 0;
	char reply[700], mailr[700], why[700], thr[700] = "";
	struct outcome all, *oc;

	(void)c;
	/* Decide (outcome.c), then act here. */
	oc = xcalloc(t->ntxn ? t->ntxn : 1, sizeof *oc);
	if (outcome_txn(res, t->ntxn, &all, oc)) {
		free(oc);
		if (all.scope == OUTCOME_SESSION) {
			/*
			 * Lost in the middle: nothing is known of the outcome, try
			 * again later (at-least-once: the server may have it).
			 */
			say(why, sizeof why, "451 4.4.2 %s[%s]: %s at %s", t->host->name, t->host->ip,
			    res->error[0] ? res->error : "connection lost", smtpc_stage_name(res->stage));
			if (t->conn != NULL)
				t->conn->closing = true;
			task_defer_all(t, why);
			return;
		}
		/* MAIL refused (or RSET, or no MAIL possible): it speaks for everyone. */
		if (all.reply != NULL)
			reply_text(all.reply, mailr, sizeof mailr);
		else
			say(mailr, sizeof mailr, "451 4.4.2 %s", res->error[0] ? res->error : "transaction failed");
		say(why, sizeof why, "%s (%s[%s])", mailr, t->host->name, t->host->ip);
		if (res->connection_lost && t->conn != NULL)
			t->conn->closing = true;
		if (all.reply != NULL && policy_dest_throttled(&t->host->grp->rules, mailr)) {
			task_throttled(t, why);
			return;
		}
		if (all.severity == OUTCOME_PERMANENT)
			task_bounce_all(t, why);
		else
			task_defer_all(t, why);
		return;
	}
	for (size_t k = 0; k < t->ntxn; k++) {
		size_t i = t->txn_idx[k];

		t->pst[i] = P_DONE;
		if (oc[k].cause == OUTCOME_NO_RCPT_REPLY) {
			say(reply, sizeof reply, "451 4.4.2 %s[%s]: no reply to RCPT (%s)",
			    t->host->name, t->host->ip, res->error[0] ? res->error : "transaction ended");
			queue_job_set(t->job, t->pend[i], RCPT_DEFERRED, reply);
			ndef++;
			continue;
		}
		if (oc[k].cause == OUTCOME_NO_DATA_REPLY) {
			say(reply, sizeof reply, "451 4.4.2 %s[%s]: %s", t->host->name,
			    t->host->ip, res->error[0] ? res->error : "no reply to the data");
			queue_job_set(t->job, t->pend[i], RCPT_DEFERRED, reply);
			ndef++;
			continue;
		}
		reply_text(oc[k].reply, reply, sizeof reply);
		switch (oc[k].severity) {
		case OUTCOME_OK:
			queue_job_set(t->job, t->pend[i], RCPT_DELIVERED, reply);
			ndel++;
			break;
		case OUTCOME_PERMANENT:
			queue_job_set(t->job, t->pend[i], RCPT_BOUNCED, reply);
			nbou++;
			if (policy_hard_bounce(reply))
				sup_add(t, t->job->env.rcpt[t->job->st.r[t->pend[i]].idx].addr, reply);
			break;
		case OUTCOME_TEMPORARY:
			if (thr[0] == '\0' && policy_dest_throttled(&t->host->grp->rules, reply))
				say(thr, sizeof thr, "%s (%s[%s])", reply, t->host->name, t->host->ip);
			/* RFC 5321 4.5.3.1.10: 452 too many recipients, send the rest anew. */
			if (oc[k].again)
				t->pst[i] = P_AGAIN;
			queue_job_set(t->job, t->pend[i], RCPT_DEFERRED, reply);
			ndef++;
			break;
		}
	}
	free(oc);
	if (res->data.code != 0)
		reply_text(&res->data, reply, sizeof reply);
	else if (res->error[0])
		say(reply, sizeof reply, "%s", res->error);
	else
		say(reply, sizeof reply, "no recipient accepted");
	log_attempt(t, ndel == t->ntxn ? "delivered" : "attempt", reply, ndel, ndef, nbou);
	if (res->connection_lost && t->conn != NULL)
		t->conn->closing = true;
	if (thr[0] != '\0') {
		task_throttled(t, thr);
		return;
	}
	if (ndel > 0 && g->level > 0 && !g->hitting) {
		/* Delivering again: the next throttle starts from the shortest back-off. */
		g->level = 0;
		if (t->d->pol != NULL)
			policy_throttle_clear(t->d->pol, g->rules.group, on_throttle_cleared, NULL);
		log_info("deliver", "throttle_cleared", "group=%s id=%s", g->rules.group, t->job->id);
	}
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
	/* Jobs waiting for their group's per-minute rate whose turn came. */
	for (struct group *g = d->groups; g != NULL; g = g->next) {
		struct link *w;
		uint64_t free_ms;

		while (!list_empty(&g->rate_wait) && !group_suspended(d, g) &&
		    rate_take(d, g, &free_ms)) {
			struct task *t;

			w = list_pop(&g->rate_wait);
			t = LINK_OWNER(w, struct task, wait);
			t->rate_ok = true;
			task_connect(t);
		}
	}
	group_sweep(d);
}

/* --- suspensions made by other nodes -------------------------------------------------------- */

static void
on_throttle_list(void *arg, int status, const struct policy_throttle *pt, size_t n)
{
	struct deliver *d = arg;
	uint64_t now;

	d->listing = false;
	if (d->stopping || status < 0) {
		maybe_stopped(d);
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
			    g->rules.group, e->level, fmt_time(e->until_ms, ts, sizeof ts),
			    log_quotes(qr, sizeof qr, e->reply));
			group_hold_all(d, g);
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
	uv_check_init(loop, &d->refill_check);
	uv_timer_init(loop, &d->sweep_timer);
	uv_timer_init(loop, &d->grace_timer);
	uv_timer_init(loop, &d->throttle_timer);
	d->claim_timer.data = d->sweep_timer.data = d->grace_timer.data = d;
	d->throttle_timer.data = d->refill_check.data = d;
	d->handles_open = 5;
	uv_timer_start(&d->sweep_timer, on_sweep, SWEEP_MS, SWEEP_MS);
	uv_timer_start(&d->throttle_timer, on_throttle_timer, THROTTLE_POLL_MS, THROTTLE_POLL_MS);
	claim_soon(d, 0, CLAIM_START);
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

	if (!d->stopping || d->active > 0 || d->claiming || d->listing ||
	    !list_empty(&d->signing))
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
	if (d->handles_open == 5 && !uv_is_closing((uv_handle_t *)&d->claim_timer)) {
		uv_close((uv_handle_t *)&d->claim_timer, on_handle_closed);
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
			conn_quit(dc);
	}
	uv_timer_start(&d->grace_timer, on_grace, grace_ms, 0);
	maybe_stopped(d);
}
