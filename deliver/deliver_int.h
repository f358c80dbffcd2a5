/*
 * deliver_int - what the files of deliver/ share, and nothing else
 * includes (tests/layering.sh).
 *
 *   deliver.c  the worker: claims (work-conserving, see deliver.h), the
 *              jobs held per destination, the sweep (leases, idle
 *              connections, rate waits), suspensions read from other
 *              nodes, open and stop
 *   task.c     one job's pipeline, CHECK .. DONE; task_enter_state() is
 *              the one function that writes a task's state
 *   pool.c     destination groups (connection limit, per-minute rate,
 *              suspension), hosts, connections; a connection freed for a
 *              waiting task is handed over on the next loop turn
 *   sign.c     DKIM signing on libuv's thread pool, once per message
 *   outcome.c  what an SMTP result means (pure; outcome.h)
 *
 * Ownership: struct deliver owns its tasks (d->tasks), connections
 * (d->conns), hosts (d->hosts), groups (d->groups) and signings
 * (d->signing).  A task owns its queue job, its route and its buffers; a
 * connection is lent to one task at a time (dconn.task, task.conn).
 * Everything runs on the loop thread except sign_work().
 *
 * What one file calls in another is named deliver__* (task.c's pipeline
 * steps keep its task_* prefix), so nothing here can be mistaken for, or
 * collide at link time with, a name of another folder (core/conn's
 * conn_*, policy's rates and throttles).
 */
#ifndef KURIER_DELIVER_DELIVER_INT_H
#define KURIER_DELIVER_DELIVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/list.h"
#include "deliver/dkimsign.h"
#include "deliver/route.h"
#include "deliver/smtpc.h"
#include "policy/dest.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "queue/verp.h"

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
	struct link link;           /* host->idle while idle; d->handoffs while handed over */
	struct link all;            /* d->conns */
	struct task *task;          /* the user now, NULL when idle */
	uint64_t idle_since;
	bool ready;
	bool closing;
	bool handoff;               /* kept for task, on d->handoffs until the next loop turn */
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
	uv_check_t handoff_check;   /* connections handed to waiting tasks (pool.c) */
	struct link handoffs;       /* dconn.link: kept for a task, not given yet */
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

/* A throttle being recorded in Redis (task_throttled -> deliver__on_throttle_hit). */
struct hit_req {
	struct deliver *d;
	struct group *g;
	char reply[600];
};

/* --- deliver.c: helpers, held jobs, lifecycle ----------------------------------------- */

/*
 * deliver__say - snprintf for reply and log texts that may be cut: a long server
 * name or reply is cut at the buffer's end, which is what we want.
 */
void deliver__say(char *dst, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool deliver__has_8bit(const char *p, size_t n);
const char *deliver__domain_of(const char *addr);
uint64_t deliver__now_ms(const struct deliver *d);
void deliver__sockaddr_ip(const struct sockaddr_storage *ss, char *dst, size_t size);
uint16_t deliver__sockaddr_port(const struct sockaddr_storage *ss);
void deliver__reply_text(const struct smtpc_reply *r, char *dst, size_t size);
unsigned deliver__load_get(struct deliver *d, const char *domain);
void deliver__load_put(struct deliver *d, const char *domain);
void deliver__maybe_stopped(struct deliver *d);
void deliver__claim_soon(struct deliver *d, uint64_t ms, enum claim_why why);

/* --- task.c: one job's pipeline ----------------------------------------------------------- */

/* task_enter_state - the one writer of t->state; logs old -> new (debug). */
void task_enter_state(struct task *t, enum task_state st);
const char *task_state_name(enum task_state st);
void deliver__log_attempt(struct task *t, const char *what, const char *reply, size_t ndelivered,
    size_t ndeferred, size_t nbounced);
void deliver__set_all(struct task *t, enum rcpt_state st, const char *reply);
size_t deliver__open_count(const struct task *t);
void task_free(struct task *t);
void task_finish_at(struct task *t, uint64_t due);
void task_finish(struct task *t);
void task_hold(struct task *t, uint64_t until, const char *why);
void task_release(struct task *t);
void task_throttled(struct task *t, const char *reply);
void task_defer_all(struct task *t, const char *reply);
void task_bounce_all(struct task *t, const char *reply);
void task_check(struct task *t);
void task_start(struct deliver *d, struct queue_job *job);
void task_route(struct task *t);
void deliver__hop_failed(struct task *t, const char *why, bool permanent);
void task_next_hop(struct task *t);
void task_on_conn(struct task *t, struct dconn *dc);

/* --- pool.c: groups, hosts, connections --------------------------------------------------- */

/* deliver__pool_on_check - hands freed connections to the tasks they were kept for (next loop turn). */
void deliver__pool_on_check(uv_check_t *h);
struct group *deliver__group_get(struct deliver *d, const struct policy_dest *rules);
bool deliver__group_suspended(const struct deliver *d, const struct group *g);
bool deliver__rate_take(struct deliver *d, struct group *g, uint64_t *free_ms);
void deliver__group_sweep(struct deliver *d);
struct host *deliver__host_get(struct deliver *d, const char *name, const struct sockaddr_storage *a,
    struct group *g);
void deliver__host_put(struct deliver *d, struct host *h);
void deliver__conn_quit(struct dconn *dc);
void deliver__conn_release(struct dconn *dc);
bool deliver__close_one_idle(struct deliver *d, const struct group *g);
void deliver__group_hold_all(struct deliver *d, struct group *g);
const char *deliver__fmt_time(uint64_t ms, char *dst, size_t size);
void deliver__throttle_done(struct deliver *d, struct group *g, uint64_t until, unsigned level,
    const char *reply, const char *note);
void deliver__throttle_local(struct deliver *d, struct group *g, const char *reply, const char *note);
void deliver__on_throttle_hit(void *arg, int status, const struct policy_throttle *pt, size_t n);
void deliver__on_ready(void *arg, struct smtpc *c, int status, enum smtpc_stage stage,
    const struct smtpc_reply *reply);
int deliver__conn_open(struct task *t);
void task_connect(struct task *t);

/* --- sign.c: DKIM ------------------------------------------------------------------------- */

void task_sign(struct task *t);

#endif
