/*
 * qbench - throughput and memory figures of the Redis queue, for
 * `make bench` (tests/bench/run-bench.sh starts Redis and runs this).
 *
 *   qbench -c FILE [-n MESSAGES] [-s SIZE] [-P PRODUCERS] [-w WORKERS]
 *          [-b BATCH] [-m MESSAGES] [-t SECONDS]
 *
 *   -n  messages of the enqueue and claim+complete phases (20000)
 *   -s  message size in bytes, header section included (5120)
 *   -P  producers, each with its own connection and one enqueue in
 *       flight, as an SMTP session waiting for its 250 (50)
 *   -w  workers, each with its own connection (4)
 *   -b  jobs per claim (50)
 *   -m  messages of the memory phase (10000)
 *   -t  deadline of each phase in seconds (300)
 *
 * Phases, each on the queue API and timed with the monotonic clock from
 * the moment every connection of the phase is up:
 *
 *   enqueue         n messages of one recipient each, spread over 20
 *                   domains; messages/s and call-to-callback latency.
 *   claim+complete  claim a batch, mark every recipient delivered,
 *                   complete every job of the batch at once, claim
 *                   again; jobs/s.
 *   memory          on a fresh key prefix, Redis used_memory before and
 *                   after m enqueues, and after completing them all.
 *
 * Around each timed phase the Redis CPU time (INFO cpu), the script time
 * (INFO commandstats) and our own CPU time are sampled, so a slow figure
 * says whether Redis, its fsync or the load generator is the limit.
 *
 * Every figure is printed as "name value unit" as soon as it is known;
 * a Markdown table of them all follows at the end.  Exit status 0 when
 * every phase finished with every message accounted for, 1 when one
 * failed or ran past its deadline, 2 on bad usage.
 */
#include <getopt.h>
#include <malloc.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/rfc5322.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "queue/queue.h"

#define NDOMAINS 20
#define CONNECT_MS 10000        /* for all connections of a phase to come up */
#define RESULTS_MAX 128
#define CMDSTAT_MAX 256
#define TOP_COMMANDS 6
#define ENQUEUE_TARGET 10000.0  /* durable enqueues/s */
#define COMPLETE_TARGET 10000.0 /* claim+complete jobs/s */
#define OVERHEAD_TARGET 1024.0  /* bytes per message beyond the message */

struct bench;

/* One queue handle with its own Redis connection: a producer or a worker. */
struct client {
	struct bench *b;
	struct queue *q;
	bool up;
	uint64_t t0;               /* producer: when its enqueue was sent */
	struct queue_job **jobs;   /* worker: the batch being completed */
	size_t njobs, pending;
	uv_timer_t idle;           /* worker: claim again after an empty claim */
};

typedef void client_start_fn(struct client *c);

struct cmdstat {
	char name[48];
	double calls, usec;
};

/* Redis and our own counters at one moment. */
struct snap {
	uint64_t ns;
	double cpu;                /* Redis used_cpu_user + used_cpu_sys, s */
	double cpu_sys;            /* of which in the kernel */
	double cpu_main;           /* Redis main thread, user + sys */
	double forks;
	double self_cpu;           /* ours, user + sys, s */
	double self_sys;
	size_t ncmd;
	struct cmdstat cmd[CMDSTAT_MAX];
};

/* What the queue's own counters must say after a phase. */
struct expect {
	uint64_t active, done, leased, enqueued, delivered;
	bool ok;
};

struct result {
	char name[64];
	double value;
	char unit[12];
	int prec;
};

struct bench {
	uv_loop_t loop;
	redisContext *rc;          /* synchronous, for INFO and MEMORY only */
	char *msg;
	size_t len;
	size_t head_len;          /* the header section, empty line included */
	uint64_t n, mem_n;
	unsigned producers, workers, batch;
	uint64_t deadline_ms;

	/* The phase running. */
	const char *phase;
	struct client *clients;
	unsigned nclients, nup;
	client_start_fn *start;
	uv_timer_t deadline;
	bool running, stopping, failed;
	uint64_t want, started, done, empty_claims;
	uint64_t *lat;             /* enqueue latencies, ns; NULL: not kept */
	uint64_t t_start, t_end;
	struct snap s0, s1;
	char sample_id[QID_SIZE];
	struct expect *expect;     /* of the verify phase running */

	struct result res[RESULTS_MAX];
	size_t nres;
};

static void bench_vfail(struct bench *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void bench_fail(struct bench *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void phase_begin(struct bench *b);
static void phase_end(struct bench *b);
static void produce(struct client *c);
static void work(struct client *c);
static void on_idle(uv_timer_t *t);

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Our CPU time, user + system and system alone, in seconds. */
static void
self_cpu(double *total, double *sys)
{
	struct rusage ru;

	*total = *sys = 0;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return;
	*sys = (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	*total = *sys + (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
}

/* result - print one figure now and keep it for the table. */
static void
result(struct bench *b, const char *name, double value, const char *unit,
    int prec)
{
	struct result *r;

	printf("%s %.*f %s\n", name, prec, value, unit);
	fflush(stdout);
	if (b->nres == RESULTS_MAX)
		return;
	r = &b->res[b->nres++];
	str_copy(r->name, name, sizeof r->name);
	str_copy(r->unit, unit, sizeof r->unit);
	r->value = value;
	r->prec = prec;
}

static void
resultf(struct bench *b, const char *prefix, const char *name, double value,
    const char *unit, int prec)
{
	char full[sizeof b->res[0].name];

	if (snprintf(full, sizeof full, "%s_%s", prefix, name) >= (int)sizeof full)
		log_panic("qbench", "name_too_long", "name=%s_%s", prefix, name);
	result(b, full, value, unit, prec);
}

static const struct result *
find_result(const struct bench *b, const char *name)
{
	for (size_t i = 0; i < b->nres; i++)
		if (strcmp(b->res[i].name, name) == 0)
			return &b->res[i];
	return NULL;
}

/* --- synchronous Redis: INFO and MEMORY USAGE ------------------------------ */

static redisReply *
sync_cmd(struct bench *b, const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(b->rc, fmt, ap);
	va_end(ap);
	if (r == NULL) {
		fprintf(stderr, "qbench: redis: %s\n", b->rc->errstr);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "qbench: redis: %s\n", r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* info_get - the number after "name:" at the start of a line of INFO text. */
static bool
info_get(const char *info, const char *name, double *out)
{
	size_t nl = strlen(name);
	const char *p = info;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
			*out = strtod(p + nl + 1, NULL);
			return true;
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return false;
}

/* Parse "cmdstat_NAME:calls=N,usec=N,..." lines. */
static void
info_cmdstats(const char *info, struct snap *s)
{
	const char *p = info;

	s->ncmd = 0;
	while (p != NULL && *p != '\0' && s->ncmd < CMDSTAT_MAX) {
		const char *colon, *calls, *usec, *eol = strchr(p, '\n');

		if (strncmp(p, "cmdstat_", 8) == 0 &&
		    (colon = strchr(p, ':')) != NULL && (eol == NULL || colon < eol) &&
		    (calls = strstr(colon, "calls=")) != NULL &&
		    (usec = strstr(colon, ",usec=")) != NULL &&
		    (eol == NULL || usec < eol)) {
			struct cmdstat *c = &s->cmd[s->ncmd++];

			str_copyn(c->name, p + 8, (size_t)(colon - p - 8), sizeof c->name);
			c->calls = strtod(calls + 6, NULL);
			c->usec = strtod(usec + 6, NULL);
		}
		p = eol != NULL ? eol + 1 : NULL;
	}
}

static const struct cmdstat *
cmdstat_find(const struct snap *s, const char *name)
{
	for (size_t i = 0; i < s->ncmd; i++)
		if (strcmp(s->cmd[i].name, name) == 0)
			return &s->cmd[i];
	return NULL;
}

static void
snapshot(struct bench *b, struct snap *s)
{
	redisReply *r;
	double user = 0, sys = 0, umain = 0, smain = 0;

	memset(s, 0, sizeof *s);
	self_cpu(&s->self_cpu, &s->self_sys);
	r = sync_cmd(b, "INFO all");
	s->ns = now_ns();
	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_STRING) {
		info_get(r->str, "used_cpu_user", &user);
		info_get(r->str, "used_cpu_sys", &sys);
		info_get(r->str, "used_cpu_user_main_thread", &umain);
		info_get(r->str, "used_cpu_sys_main_thread", &smain);
		info_get(r->str, "total_forks", &s->forks);
		info_cmdstats(r->str, s);
	}
	s->cpu = user + sys;
	s->cpu_sys = sys;
	s->cpu_main = umain + smain;
	freeReplyObject(r);
}

static bool
used_memory(struct bench *b, double *out)
{
	redisReply *r = sync_cmd(b, "INFO memory");
	bool ok;

	if (r == NULL)
		return false;
	ok = (r->type == REDIS_REPLY_STRING) &&
	    info_get(r->str, "used_memory", out);
	freeReplyObject(r);
	return ok;
}

/* key_usage - MEMORY USAGE of one key, all elements counted; 0 if none. */
static double
key_usage(struct bench *b, const char *prefix, const char *key)
{
	redisReply *r = sync_cmd(b, "MEMORY USAGE %s%s SAMPLES 0", prefix, key);
	double v = 0;

	if (r != NULL && r->type == REDIS_REPLY_INTEGER)
		v = (double)r->integer;
	if (r != NULL)
		freeReplyObject(r);
	return v;
}

/*
 * Wait until only our synchronous connection is left: Redis frees a
 * client when it reads its EOF, and a closing client still holds its
 * buffers, which would count as queue memory.
 */
static void
wait_clients_gone(struct bench *b)
{
	for (int i = 0; i < 500; i++) {
		redisReply *r = sync_cmd(b, "INFO clients");
		double n = 0;
		bool ok;

		if (r == NULL)
			return;
		ok = r->type == REDIS_REPLY_STRING &&
		    info_get(r->str, "connected_clients", &n);
		freeReplyObject(r);
		if (!ok || n <= 1)
			return;
		uv_sleep(10);
	}
	fprintf(stderr, "qbench: other clients still connected; memory figures include them\n");
}

static int
sync_open(struct bench *b, const struct config *cfg)
{
	const struct config_endpoint *ep = &cfg->redis.address;
	struct timeval tv = { 10, 0 };
	redisReply *r;

	if (ep->unix_path[0] != '\0')
		b->rc = redisConnectUnixWithTimeout(ep->unix_path, tv);
	else
		b->rc = redisConnectWithTimeout(ep->host, ep->port, tv);
	if (b->rc == NULL || b->rc->err) {
		fprintf(stderr, "qbench: cannot connect to redis: %s\n",
		    b->rc ? b->rc->errstr : "out of memory");
		return -1;
	}
	redisSetTimeout(b->rc, tv);
	if (cfg->redis.password[0] != '\0') {
		r = sync_cmd(b, "AUTH %s", cfg->redis.password);
		if (r == NULL)
			return -1;
		freeReplyObject(r);
	}
	return 0;
}

/* --- phases ----------------------------------------------------------------- */

static void
bench_vfail(struct bench *b, const char *fmt, va_list ap)
{
	if (b->stopping)
		return;
	fprintf(stderr, "qbench: %s: ", b->phase);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	b->failed = true;
	phase_end(b);
}

static void
bench_fail(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bench_vfail(b, fmt, ap);
	va_end(ap);
}

static void
on_deadline(uv_timer_t *t)
{
	struct bench *b = t->data;

	if (!b->running)
		bench_fail(b, "only %u of %u connections came up in %d s",
		    b->nup, b->nclients, CONNECT_MS / 1000);
	else
		bench_fail(b, "deadline: %" PRIu64 " of %" PRIu64 " done after %" PRIu64 " s",
		    b->done, b->want, b->deadline_ms / 1000);
}

static void
on_client_closed(void *arg)
{
	struct client *c = arg;

	c->q = NULL;
	uv_close((uv_handle_t *)&c->idle, NULL);
}

/* phase_end - close every connection; uv_run() returns once all are closed. */
static void
phase_end(struct bench *b)
{
	if (b->stopping)
		return;
	b->stopping = true;
	uv_timer_stop(&b->deadline);
	uv_close((uv_handle_t *)&b->deadline, NULL);
	for (unsigned i = 0; i < b->nclients; i++) {
		uv_timer_stop(&b->clients[i].idle);
		queue_close(b->clients[i].q, on_client_closed, &b->clients[i]);
	}
}

/* The last operation of the phase is acknowledged. */
static void
phase_done(struct bench *b)
{
	b->t_end = now_ns();
	snapshot(b, &b->s1);
	phase_end(b);
}

static void
on_client_state(void *arg, bool up)
{
	struct client *c = arg;
	struct bench *b = c->b;

	if (!up || c->up || b->stopping)
		return;
	/* Only the first "up" counts; a drop later fails the next call. */
	c->up = true;
	if (++b->nup == b->nclients)
		phase_begin(b);
}

/* Every connection is up: start the clock and the clients. */
static void
phase_begin(struct bench *b)
{
	b->running = true;
	uv_timer_start(&b->deadline, on_deadline, b->deadline_ms, 0);
	snapshot(b, &b->s0);
	b->t_start = now_ns();
	for (unsigned i = 0; i < b->nclients && !b->stopping; i++)
		b->start(&b->clients[i]);
}

/*
 * run_phase - open nclients queue handles on cfg, start each with start
 * once all are connected, and run the loop until the phase ends.
 * 0 when it finished, -1 when it failed.
 */
static int
run_phase(struct bench *b, const char *name, const struct config *cfg,
    unsigned nclients, uint64_t want, client_start_fn *start)
{
	b->phase = name;
	b->nclients = nclients;
	b->nup = 0;
	b->start = start;
	b->running = b->stopping = b->failed = false;
	b->want = want;
	b->started = b->done = b->empty_claims = 0;
	b->t_start = b->t_end = 0;
	b->clients = xcalloc(nclients, sizeof *b->clients);
	uv_timer_init(&b->loop, &b->deadline);
	b->deadline.data = b;
	uv_timer_start(&b->deadline, on_deadline, CONNECT_MS, 0);
	for (unsigned i = 0; i < nclients; i++) {
		struct client *c = &b->clients[i];

		c->b = b;
		uv_timer_init(&b->loop, &c->idle);
		c->idle.data = c;
		if (queue_open(&c->q, &b->loop, cfg, "qbench") < 0)
			log_fatal("qbench", "queue_open", "phase=%s", name);
		queue_on_state(c->q, on_client_state, c);
	}
	uv_run(&b->loop, UV_RUN_DEFAULT);
	for (unsigned i = 0; i < nclients; i++)
		free(b->clients[i].jobs);
	free(b->clients);
	b->clients = NULL;
	b->nclients = 0;
	if (!b->failed && b->done != want) {
		fprintf(stderr, "qbench: %s: %" PRIu64 " of %" PRIu64 " done\n", name,
		    b->done, want);
		b->failed = true;
	}
	return b->failed ? -1 : 0;
}

static double
phase_seconds(const struct bench *b)
{
	return (double)(b->t_end - b->t_start) / 1e9;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n), in ms. */
static double
percentile_ms(const uint64_t *v, uint64_t n, unsigned pct)
{
	uint64_t rank = (n * pct + 99) / 100;

	if (n == 0)
		return 0;
	if (rank == 0)
		rank = 1;
	return (double)v[rank - 1] / 1e6;
}

static int
cmp_cmd_usec(const void *a, const void *b)
{
	const struct cmdstat *x = a, *y = b;

	return x->usec < y->usec ? 1 : x->usec > y->usec ? -1 : 0;
}

/*
 * Where the time went: Redis CPU (all threads, and the main thread that
 * runs the scripts and the fsync), script time, and the commands the
 * scripts ran, per operation of the phase.
 */
static void
report_cpu(struct bench *b, const char *p, uint64_t ops)
{
	const struct snap *s0 = &b->s0, *s1 = &b->s1;
	double wall = (double)(s1->ns - s0->ns) / 1e9;
	double calls = 0, usec = 0;
	struct cmdstat top[CMDSTAT_MAX];
	size_t ntop = 0;

	if (ops == 0 || wall <= 0)
		return;
	resultf(b, p, "redis_cpu_per_op", (s1->cpu - s0->cpu) * 1e6 / (double)ops, "us", 1);
	resultf(b, p, "redis_cpu_sys_per_op", (s1->cpu_sys - s0->cpu_sys) * 1e6 / (double)ops, "us", 1);
	resultf(b, p, "redis_cpu_util", (s1->cpu - s0->cpu) * 100 / wall, "%", 0);
	resultf(b, p, "redis_main_cpu_util", (s1->cpu_main - s0->cpu_main) * 100 / wall, "%", 0);
	resultf(b, p, "qbench_cpu_per_op", (s1->self_cpu - s0->self_cpu) * 1e6 / (double)ops, "us", 1);
	resultf(b, p, "qbench_cpu_sys_per_op", (s1->self_sys - s0->self_sys) * 1e6 / (double)ops, "us", 1);
	resultf(b, p, "qbench_cpu_util", (s1->self_cpu - s0->self_cpu) * 100 / wall, "%", 0);
	for (size_t i = 0; i < s1->ncmd; i++) {
		const struct cmdstat *c = &s1->cmd[i], *o = cmdstat_find(s0, c->name);
		struct cmdstat d = *c;

		if (o != NULL) {
			d.calls -= o->calls;
			d.usec -= o->usec;
		}
		if (d.calls <= 0)
			continue;
		if (strcmp(c->name, "evalsha") == 0 || strcmp(c->name, "eval") == 0) {
			calls += d.calls;
			usec += d.usec;
		} else if (strcmp(c->name, "info") != 0) {
			top[ntop++] = d;
		}
	}
	if (calls > 0) {
		resultf(b, p, "script_usec_per_call", usec / calls, "us", 1);
		resultf(b, p, "script_usec_per_op", usec / (double)ops, "us", 1);
		resultf(b, p, "script_time_share", usec / 1e6 * 100 / wall, "%", 0);
	}
	resultf(b, p, "redis_forks", s1->forks - s0->forks, "count", 0);
	qsort(top, ntop, sizeof *top, cmp_cmd_usec);
	for (size_t i = 0; i < ntop && i < TOP_COMMANDS; i++) {
		char name[sizeof b->res[0].name];

		if (snprintf(name, sizeof name, "%s_cmd_%s_us_per_op", p, top[i].name) >=
		    (int)sizeof name)
			continue;
		result(b, name, top[i].usec / (double)ops, "us", 2);
	}
}

/* --- producers ---------------------------------------------------------------- */

static void
on_enqueued(void *arg, int status, const char *id)
{
	struct client *c = arg;
	struct bench *b = c->b;
	uint64_t t = now_ns();

	if (b->stopping)
		return;
	if (status < 0) {
		bench_fail(b, "enqueue: %s", strerror(-status));
		return;
	}
	if (b->lat != NULL)
		b->lat[b->done] = t - c->t0;
	if (b->done == 0)
		str_copy(b->sample_id, id, sizeof b->sample_id);
	if (++b->done == b->want)
		phase_done(b);
	else
		produce(c);
}

/* produce - send the next message; one in flight per producer. */
static void
produce(struct client *c)
{
	struct bench *b = c->b;
	struct envelope env;
	char rcpt[64];
	uint64_t k;
	int rc;

	if (b->stopping || b->started == b->want)
		return;
	k = b->started++;
	snprintf(rcpt, sizeof rcpt, "user%" PRIu64 "@d%02u.example", k,
	    (unsigned)(k % NDOMAINS));
	envelope_init(&env);
	envelope_set(&env.sender, "bench@shop.example");
	envelope_set(&env.user, "qbench");
	envelope_set(&env.client, "127.0.0.1");
	envelope_set(&env.helo, "bench.shop.example");
	if (envelope_add_rcpt(&env, rcpt, NULL, 0) < 0)
		log_panic("qbench", "bad_rcpt", "rcpt=%s", rcpt);
	c->t0 = now_ns();
	rc = queue_enqueue(c->q, &env, b->msg, b->head_len, b->msg + b->head_len,
	    b->len - b->head_len, on_enqueued, c);
	envelope_free(&env);
	if (rc < 0)
		bench_fail(b, "enqueue: %s", strerror(-rc));
}

/* --- workers ------------------------------------------------------------------ */

static void
free_batch(struct client *c)
{
	for (size_t i = 0; i < c->njobs; i++)
		queue_job_free(c->jobs[i]);
	c->njobs = 0;
}

static void
on_completed(void *arg, int status)
{
	struct client *c = arg;
	struct bench *b = c->b;

	c->pending--;
	if (status < 0)
		bench_fail(b, "complete: %s", strerror(-status));
	else if (!b->stopping)
		b->done++;
	if (c->pending > 0)
		return;
	free_batch(c);
	if (b->stopping)
		return;
	if (b->done == b->want)
		phase_done(b);
	else
		work(c);
}

static void
on_claimed(void *arg, int status, struct queue_job **jobs, size_t njobs)
{
	struct client *c = arg;
	struct bench *b = c->b;

	if (b->stopping || status < 0) {
		for (size_t i = 0; i < njobs; i++)
			queue_job_free(jobs[i]);
		if (status < 0)
			bench_fail(b, "claim: %s", strerror(-status));
		return;
	}
	if (njobs == 0) {
		/* The rest is held by other workers: look again shortly. */
		b->empty_claims++;
		uv_timer_start(&c->idle, on_idle, 1, 0);
		return;
	}
	c->jobs = xreallocarray(c->jobs, njobs, sizeof *c->jobs);
	memcpy(c->jobs, jobs, njobs * sizeof *jobs);
	c->njobs = njobs;
	for (size_t i = 0; i < njobs; i++)
		for (size_t r = 0; r < jobs[i]->st.n; r++)
			queue_job_set(jobs[i], r, RCPT_DELIVERED, "250 2.0.0 Ok: queued as bench");
	/* All completes in flight at once, as a worker finishing a batch. */
	for (size_t i = 0; i < njobs && !b->stopping; i++) {
		int rc = queue_complete(c->q, jobs[i], on_completed, c);

		if (rc < 0) {
			bench_fail(b, "complete: %s", strerror(-rc));
			break;
		}
		c->pending++;
	}
	if (c->pending == 0)
		free_batch(c);
}

static void
on_idle(uv_timer_t *t)
{
	work(t->data);
}

/* work - claim the next batch. */
static void
work(struct client *c)
{
	struct bench *b = c->b;
	int rc;

	if (b->stopping || b->done == b->want)
		return;
	rc = queue_claim(c->q, b->batch, on_claimed, c);
	if (rc < 0)
		bench_fail(b, "claim: %s", strerror(-rc));
}

/* --- verification ----------------------------------------------------------- */

static void
on_stats(void *arg, int status, const struct queue_stats *st)
{
	struct client *c = arg;
	struct bench *b = c->b;
	struct expect *e = b->expect;

	if (b->stopping)
		return;
	if (status < 0) {
		bench_fail(b, "stats: %s", strerror(-status));
		return;
	}
	e->ok = st->active == e->active && st->done == e->done &&
	    st->leased == e->leased && st->enqueued == e->enqueued &&
	    st->delivered == e->delivered && st->corrupt == 0;
	if (!e->ok) {
		fprintf(stderr, "qbench: %s: queue holds active=%" PRIu64 " done=%" PRIu64
		    " leased=%" PRIu64 " corrupt=%" PRIu64 " enqueued=%" PRIu64
		    " delivered=%" PRIu64 "; want active=%" PRIu64 " done=%" PRIu64
		    " leased=%" PRIu64 " enqueued=%" PRIu64 " delivered=%" PRIu64 "\n",
		    b->phase, st->active, st->done, st->leased, st->corrupt,
		    st->enqueued, st->delivered, e->active, e->done, e->leased,
		    e->enqueued, e->delivered);
		b->failed = true;
	}
	b->done = 1;
	phase_end(b);
}

static void
ask_stats(struct client *c)
{
	int rc = queue_stats(c->q, on_stats, c);

	if (rc < 0)
		bench_fail(c->b, "stats: %s", strerror(-rc));
}

/* verify - the queue's own counters agree that no job went missing. */
static int
verify(struct bench *b, const char *name, const struct config *cfg,
    struct expect *e)
{
	int rc;

	e->ok = false;
	b->expect = e;
	rc = run_phase(b, name, cfg, 1, 1, ask_stats);
	b->expect = NULL;
	return rc == 0 && e->ok ? 0 : -1;
}

/* --- the message ------------------------------------------------------------ */

/* A plain-text message of exactly size bytes (at least its headers), CRLF. */
static char *
make_message(size_t size, size_t *len)
{
	static const char line[] =
	    "Your order 4711 has shipped and will arrive within three days.\r\n";
	struct buf m = BUF_INIT;

	buf_appends(&m,
	    "Received: from bench.shop.example ([127.0.0.1])\r\n"
	    "\tby kurier.bench with ESMTPSA id bench; Sun, 22 Nov 2026 12:00:00 +0000\r\n"
	    "From: Shop <bench@shop.example>\r\n"
	    "To: <user@d00.example>\r\n"
	    "Subject: Your order has shipped\r\n"
	    "Message-ID: <bench.4711@shop.example>\r\n"
	    "Date: Sun, 22 Nov 2026 12:00:00 +0000\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n");
	while (m.len + sizeof line - 1 + 2 <= size)
		buf_append(&m, line, sizeof line - 1);
	while (m.len + 2 < size)
		buf_appendc(&m, '.');
	buf_appends(&m, "\r\n");
	return buf_steal(&m, len);
}

/* --- main ----------------------------------------------------------------- */

/* One row of the targets table; r NULL when its phase failed. */
static void
target_row(const char *what, const char *goal, const struct result *r,
    bool met)
{
	if (r == NULL)
		printf("| %s | %s | phase failed | no |\n", what, goal);
	else
		printf("| %s | %s | %.*f %s | %s |\n", what, goal, r->prec, r->value,
		    r->unit, met ? "yes" : "no");
}

static void
print_table(const struct bench *b)
{
	const struct result *enq = find_result(b, "enqueue_rate");
	const struct result *cc = find_result(b, "claim_complete_rate");
	const struct result *ov = find_result(b, "mem_overhead_per_msg");

	printf("\n## Targets\n\n");
	printf("| Target | Goal | Measured | Met |\n");
	printf("|---|---|---|---|\n");
	target_row("Durable enqueues", ">= 10000 msg/s", enq,
	    enq != NULL && enq->value >= ENQUEUE_TARGET);
	target_row("Claim + complete", ">= 10000 jobs/s", cc,
	    cc != NULL && cc->value >= COMPLETE_TARGET);
	target_row("Memory beyond the message", "< 1024 B/msg", ov,
	    ov != NULL && ov->value < OVERHEAD_TARGET);
	printf("\n## All figures\n\n");
	printf("| Figure | Value | Unit |\n");
	printf("|---|---:|---|\n");
	for (size_t i = 0; i < b->nres; i++)
		printf("| %s | %.*f | %s |\n", b->res[i].name, b->res[i].prec,
		    b->res[i].value, b->res[i].unit);
}

static int
parse_u64(const char *s, int opt, uint64_t max, uint64_t *out)
{
	if (str_to_u64(s, out) < 0 || *out == 0 || *out > max) {
		fprintf(stderr, "qbench: -%c needs a number from 1 to %" PRIu64 "\n",
		    opt, max);
		return -1;
	}
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: qbench -c FILE [-n MESSAGES] [-s SIZE] [-P PRODUCERS]"
	    " [-w WORKERS] [-b BATCH] [-m MESSAGES] [-t SECONDS]\n");
}

int
main(int argc, char **argv)
{
	static struct bench b;
	struct config cfg, mcfg;
	struct expect e;
	const char *path = NULL;
	char err[CONFIG_ERR_MAX];
	uint64_t size = 5120, v;
	double m0, m1, m2;
	int c, status = 0;

	/* The heap setting kurierd runs with (cmd/kurierd.c). */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_TOP_PAD, 16 << 20);

	b.n = 20000;
	b.mem_n = 10000;
	b.producers = 50;
	b.workers = 4;
	b.batch = 50;
	b.deadline_ms = 300000;
	while ((c = getopt(argc, argv, "c:n:s:P:w:b:m:t:")) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'n':
		case 'm':
			if (parse_u64(optarg, c, 100000000, &v) < 0)
				return 2;
			if (c == 'n')
				b.n = v;
			else
				b.mem_n = v;
			break;
		case 's':
			if (parse_u64(optarg, c, 64 << 20, &size) < 0)
				return 2;
			break;
		case 'P':
		case 'w':
		case 'b':
			if (parse_u64(optarg, c, 10000, &v) < 0)
				return 2;
			if (c == 'P')
				b.producers = (unsigned)v;
			else if (c == 'w')
				b.workers = (unsigned)v;
			else
				b.batch = (unsigned)v;
			break;
		case 't':
			if (parse_u64(optarg, c, 86400, &v) < 0)
				return 2;
			b.deadline_ms = v * 1000;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage();
		return 2;
	}
	if (config_load(&cfg, path, err, sizeof err) < 0) {
		fprintf(stderr, "qbench: %s\n", err);
		return 2;
	}
	/* Per-message info lines would cost more than the queue calls. */
	log_set_level(cfg.server.log_level > LOG_WARN ? cfg.server.log_level : LOG_WARN);
	if (cfg.deliver.per_destination < b.workers * b.batch)
		fprintf(stderr, "qbench: warning: [deliver] per_destination %u may throttle"
		    " %u workers x %u jobs\n", cfg.deliver.per_destination, b.workers,
		    b.batch);
	if (uv_loop_init(&b.loop) != 0 || sync_open(&b, &cfg) < 0) {
		if (b.rc != NULL)
			redisFree(b.rc);
		return 1;
	}
	b.msg = make_message((size_t)size, &b.len);
	b.head_len = rfc5322_head_len(b.msg, b.len);

	result(&b, "message_size", (double)b.len, "B", 0);
	result(&b, "messages", (double)b.n, "count", 0);
	result(&b, "producers", b.producers, "count", 0);
	result(&b, "workers", b.workers, "count", 0);
	result(&b, "batch", b.batch, "count", 0);

	/* a. enqueue */
	b.lat = xcalloc(b.n, sizeof *b.lat);
	if (run_phase(&b, "enqueue", &cfg, b.producers, b.n, produce) == 0) {
		qsort(b.lat, b.n, sizeof *b.lat, cmp_u64);
		result(&b, "enqueue_seconds", phase_seconds(&b), "s", 3);
		result(&b, "enqueue_rate", (double)b.n / phase_seconds(&b), "msg/s", 0);
		result(&b, "enqueue_p50", percentile_ms(b.lat, b.n, 50), "ms", 2);
		result(&b, "enqueue_p99", percentile_ms(b.lat, b.n, 99), "ms", 2);
		result(&b, "enqueue_max", percentile_ms(b.lat, b.n, 100), "ms", 2);
		report_cpu(&b, "enqueue", b.n);
		e = (struct expect){ .active = b.n, .enqueued = b.n };
		if (verify(&b, "enqueue-verify", &cfg, &e) < 0)
			status = 1;
	} else {
		status = 1;
	}
	free(b.lat);
	b.lat = NULL;

	/* b. claim + complete */
	if (status == 0 &&
	    run_phase(&b, "claim+complete", &cfg, b.workers, b.n, work) == 0) {
		result(&b, "claim_complete_seconds", phase_seconds(&b), "s", 3);
		result(&b, "claim_complete_rate", (double)b.n / phase_seconds(&b), "jobs/s", 0);
		result(&b, "claim_complete_empty_claims", (double)b.empty_claims, "count", 0);
		report_cpu(&b, "claim_complete", b.n);
		e = (struct expect){ .done = b.n, .enqueued = b.n, .delivered = b.n };
		if (verify(&b, "complete-verify", &cfg, &e) < 0)
			status = 1;
	} else {
		status = 1;
	}

	/* c. memory, on a prefix of its own */
	mcfg = cfg;
	if (snprintf(mcfg.redis.prefix, sizeof mcfg.redis.prefix, "%smem%" PRIu64 ":",
	    cfg.redis.prefix, (uint64_t)time(NULL)) >= (int)sizeof mcfg.redis.prefix) {
		fprintf(stderr, "qbench: [redis] prefix too long for the memory phase\n");
		status = 1;
	}
	wait_clients_gone(&b);
	if (status == 0 && used_memory(&b, &m0) &&
	    run_phase(&b, "memory-enqueue", &mcfg, b.producers, b.mem_n, produce) == 0) {
		double total = (double)b.mem_n * (double)b.len;
		double idx;
		char key[64];

		wait_clients_gone(&b);
		if (!used_memory(&b, &m1)) {
			status = 1;
			goto out;
		}
		result(&b, "mem_messages", (double)b.mem_n, "count", 0);
		result(&b, "mem_used_before", m0, "B", 0);
		result(&b, "mem_used_after_enqueue", m1, "B", 0);
		result(&b, "mem_delta_per_msg", (m1 - m0) / (double)b.mem_n, "B", 0);
		result(&b, "mem_overhead_per_msg", (m1 - m0 - total) / (double)b.mem_n, "B", 0);
		/* Where it sits: the message's hash, and the indexes. */
		snprintf(key, sizeof key, "m:%s", b.sample_id);
		result(&b, "mem_key_message_active", key_usage(&b, mcfg.redis.prefix, key), "B", 0);
		idx = key_usage(&b, mcfg.redis.prefix, "active");
		for (unsigned d = 0; d < NDOMAINS; d++) {
			char q[32];

			snprintf(q, sizeof q, "q:t:d%02u.example", d);
			idx += key_usage(&b, mcfg.redis.prefix, q);
		}
		result(&b, "mem_index_active_per_msg", idx / (double)b.mem_n, "B", 0);
		e = (struct expect){ .active = b.mem_n, .enqueued = b.mem_n };
		if (verify(&b, "memory-verify", &mcfg, &e) < 0) {
			status = 1;
			goto out;
		}
		if (run_phase(&b, "memory-complete", &mcfg, b.workers, b.mem_n, work) < 0) {
			status = 1;
			goto out;
		}
		wait_clients_gone(&b);
		if (!used_memory(&b, &m2)) {
			status = 1;
			goto out;
		}
		result(&b, "mem_used_after_complete", m2, "B", 0);
		result(&b, "mem_retained_per_done_msg", (m2 - m0) / (double)b.mem_n, "B", 0);
		result(&b, "mem_key_message_done", key_usage(&b, mcfg.redis.prefix, key), "B", 0);
		result(&b, "mem_index_done_per_msg",
		    key_usage(&b, mcfg.redis.prefix, "done") / (double)b.mem_n, "B", 0);
		result(&b, "mem_events_per_msg",
		    key_usage(&b, mcfg.redis.prefix, "events") / (double)b.mem_n, "B", 0);
		e = (struct expect){ .done = b.mem_n, .enqueued = b.mem_n, .delivered = b.mem_n };
		if (verify(&b, "memory-verify-done", &mcfg, &e) < 0)
			status = 1;
	} else {
		status = 1;
	}
out:
	print_table(&b);
	free(b.msg);
	redisFree(b.rc);
	if (uv_loop_close(&b.loop) != 0) {
		fprintf(stderr, "qbench: handles left open on the loop\n");
		status = 1;
	}
	return status;
}
