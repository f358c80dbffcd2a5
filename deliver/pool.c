/*
 * pool - destination groups, hosts and connections of the delivery
 * workers (deliver_int.h).  A group has a connection limit, a per-minute
 * rate and a suspension (throttle); a host is one server (name and
 * address) of one group; a connection is open to one host and lent to
 * one task at a time.  A connection a finishing task gives back to a task
 * that waits for its host is handed over on the next loop turn
 * (deliver__pool_on_check), never inside the finishing task's own callback.
 */
#include <arpa/inet.h>
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
#include "deliver/outcome.h"

static void wake_waiters(struct deliver *d, struct host *h);

/* dest_copy - *dst = *src, with the throttle list pointing into dst. */
static void
dest_copy(struct policy_dest *dst, const struct policy_dest *src)
{
	memcpy(dst, src, sizeof *dst);
	for (size_t i = 0; i <= CONFIG_THROTTLE_MAX; i++)
		dst->throttle_ptr[i] = src->throttle_ptr[i] != NULL ? dst->throttle_buf[i] : NULL;
	dst->throttle = dst->throttle_ptr;
}

/* deliver__group_get - the group named by rules (rules of the same name are the same). */
struct group *
deliver__group_get(struct deliver *d, const struct policy_dest *rules)
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
	g->used_ms = deliver__now_ms(d);
	return g;
}

bool
deliver__group_suspended(const struct deliver *d, const struct group *g)
{
	return g->hitting || g->until_ms > queue_now(d->q);
}

/*
 * deliver__rate_take - count one message in g's per-minute rate if there is room:
 * at most max_messages_per_minute in any RATE_SLOTS seconds.  Else *free_ms
 * is when (loop clock) a slot frees.
 */
bool
deliver__rate_take(struct deliver *d, struct group *g, uint64_t *free_ms)
{
	uint64_t sec = deliver__now_ms(d) / 1000, oldest = UINT64_MAX, n = 0;
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
	uint64_t sec = deliver__now_ms(d) / 1000;

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
	    g->level == 0 && !deliver__group_suspended(d, g) && !rate_recent(d, g) &&
	    deliver__now_ms(d) - g->used_ms >= GROUP_IDLE_MS;
}

/* deliver__group_sweep - forget groups nobody used for a while. */
void
deliver__group_sweep(struct deliver *d)
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

static unsigned
host_hash(const char *name, const struct sockaddr_storage *a, const struct group *g)
{
	uint32_t h = FNV1A32_INIT;
	char ip[64];

	for (const char *p = name; *p; p++)
		h = fnv1a32_step(h, (unsigned char)(*p | 0x20));
	h = fnv1a32_str(h, g->rules.group);
	deliver__sockaddr_ip(a, ip, sizeof ip);
	h = fnv1a32_str(h, ip);
	h ^= deliver__sockaddr_port(a);
	return h % HOST_BUCKETS;
}

static bool
host_same(const struct host *h, const char *name, const struct sockaddr_storage *a,
    const struct group *g)
{
	char ip[64];

	if (h->grp != g || strcasecmp(h->name, name) != 0)
		return false;
	deliver__sockaddr_ip(a, ip, sizeof ip);
	return strcmp(h->ip, ip) == 0 && deliver__sockaddr_port(&h->addr) == deliver__sockaddr_port(a);
}

struct host *
deliver__host_get(struct deliver *d, const char *name, const struct sockaddr_storage *a,
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
	deliver__sockaddr_ip(a, h->ip, sizeof h->ip);
	list_init(&h->idle);
	list_init(&h->waiting);
	h->next = d->hosts[b];
	d->hosts[b] = h;
	return h;
}

/* deliver__host_put - drop a host nobody uses any more. */
void
deliver__host_put(struct deliver *d, struct host *h)
{
	struct host **pp;

	if (h->refs > 0 || h->nconns > 0 || !list_empty(&h->waiting))
		return;
	for (pp = &d->hosts[host_hash(h->name, &h->addr, h->grp)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			h->grp->refs--;
			h->grp->used_ms = deliver__now_ms(d);
			free(h);
			return;
		}
	}
}

static void
on_conn_closed(void *arg, struct smtpc *c)
{
	struct dconn *dc = arg;
	struct deliver *d = dc->d;
	struct host *h = dc->host;
	struct task *t;

	(void)c;
	if (!list_empty(&dc->link))
		list_del(&dc->link);
	list_del(&dc->all);
	h->nconns--;
	h->grp->nconns--;
	d->nconns--;
	if (dc->task != NULL && dc->task->conn == dc)
		dc->task->conn = NULL;
	/* Kept for a task that had not got it yet: that task looks again. */
	t = dc->handoff ? dc->task : NULL;
	free(dc);
	if (t != NULL)
		task_connect(t);
	wake_waiters(d, h);
	deliver__host_put(d, h);
	deliver__maybe_stopped(d);
}

/* deliver__conn_quit - close an idle connection politely. */
void
deliver__conn_quit(struct dconn *dc)
{
	if (dc->closing)
		return;
	dc->closing = true;
	if (!list_empty(&dc->link))
		list_del(&dc->link);
	smtpc_quit(dc->c);
}

/*
 * conn_hand_over - keep dc for t, which waited for its host, and give it
 * over on the next loop turn (deliver__pool_on_check): the task that gave dc back
 * is finishing, and its outcome goes to the queue before t's transaction
 * starts.  Until then t waits (T_WAIT, on no list) with dc as its
 * connection; stopping, a suspension or dc closing undo it.
 */
static void
conn_hand_over(struct dconn *dc, struct task *t)
{
	struct deliver *d = dc->d;

	dc->task = t;
	dc->handoff = true;
	t->conn = dc;
	list_push(&d->handoffs, &dc->link);
	uv_check_start(&d->handoff_check, deliver__pool_on_check);
}

void
deliver__pool_on_check(uv_check_t *h)
{
	struct deliver *d = h->data;
	struct link *l;

	uv_check_stop(h);
	while ((l = list_pop(&d->handoffs)) != NULL) {
		struct dconn *dc = LINK_OWNER(l, struct dconn, link);
		struct task *t = dc->task;

		dc->handoff = false;
		if (t != NULL)
			task_on_conn(t, dc);
	}
}

/*
 * deliver__conn_release - a task is done with dc.  It serves the next task
 * waiting for its server, or waits idle, or closes when spent.
 */
void
deliver__conn_release(struct dconn *dc)
{
	struct deliver *d = dc->d;
	struct host *h = dc->host;
	struct group *g = h->grp;
	struct link *w;

	dc->task = NULL;
	if (dc->handoff) {
		/* Given back before the hand-over (stopping, a suspension). */
		list_del(&dc->link);
		dc->handoff = false;
	}
	if (dc->closing)
		return;
	if (!smtpc_usable(dc->c) || d->stopping || deliver__group_suspended(d, g) ||
	    smtpc_info(dc->c)->transactions >= g->rules.max_messages_per_connection) {
		deliver__conn_quit(dc);
		return;
	}
	if ((w = list_pop(&h->waiting)) != NULL) {
		conn_hand_over(dc, LINK_OWNER(w, struct task, wait));
		return;
	}
	/* The first in line for a connection of the group that wants this host. */
	for (w = g->waiting.next; w != &g->waiting; w = w->next) {
		struct task *t = LINK_OWNER(w, struct task, wait);

		if (t->host == h) {
			list_del(w);
			conn_hand_over(dc, t);
			return;
		}
	}
	/* Another host of the group waits for a slot of the group. */
	if (!list_empty(&g->waiting) && g->rules.max_connections > 0 &&
	    g->nconns >= g->rules.max_connections) {
		deliver__conn_quit(dc);
		return;
	}
	/* Another server's task waits for a slot this one holds. */
	if (!list_empty(&d->waiting) && d->nconns >= d->cfg.deliver.concurrency) {
		deliver__conn_quit(dc);
		return;
	}
	dc->idle_since = deliver__now_ms(d);
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

/* deliver__close_one_idle - free a slot held by an idle connection of any server (of group g). */
bool
deliver__close_one_idle(struct deliver *d, const struct group *g)
{
	for (struct link *l = d->conns.next; l != &d->conns; l = l->next) {
		struct dconn *dc = LINK_OWNER(l, struct dconn, all);

		if (dc->task == NULL && !dc->closing && dc->ready &&
		    (g == NULL || dc->host->grp == g)) {
			deliver__conn_quit(dc);
			return true;
		}
	}
	return false;
}

/* deliver__group_hold_all - every task of g waiting for a connection or a rate slot goes back. */
void
deliver__group_hold_all(struct deliver *d, struct group *g)
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
			deliver__conn_quit(dc);
	}
}

/* deliver__fmt_time - ms since the epoch as "2026-11-22T18:05:52.123Z". */
const char *
deliver__fmt_time(uint64_t ms, char *dst, size_t size)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&sec, &tm) == NULL) {
		deliver__say(dst, size, "%" PRIu64, ms);
		return dst;
	}
	deliver__say(dst, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
	    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
	return dst;
}

/* deliver__throttle_done - g is suspended until until: say so once, then let its tasks go. */
void
deliver__throttle_done(struct deliver *d, struct group *g, uint64_t until, unsigned level,
    const char *reply, const char *note)
{
	struct link *w;
	char ts[40], qr[700];

	g->hitting = false;
	g->until_ms = until;
	g->level = level;
	log_warn("deliver", "throttled", "group=%s level=%u until=%s backoff=%.1f reply=%s%s",
	    g->rules.group, level, deliver__fmt_time(until, ts, sizeof ts),
	    until > queue_now(d->q) ? (double)(until - queue_now(d->q)) / 1000.0 : 0.0,
	    log_quotes(qr, sizeof qr, reply), note);
	while ((w = list_pop(&g->hit_waiters)) != NULL)
		task_finish_at(LINK_OWNER(w, struct task, wait), until);
	deliver__group_hold_all(d, g);
	deliver__maybe_stopped(d);
}

/* deliver__throttle_local - the suspension when Redis cannot record it (as policy_throttle_hit). */
void
deliver__throttle_local(struct deliver *d, struct group *g, const char *reply, const char *note)
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
	deliver__throttle_done(d, g, now + span, level, reply, note);
}

void
deliver__on_throttle_hit(void *arg, int status, const struct policy_throttle *pt, size_t n)
{
	struct hit_req *hr = arg;

	if (status == 0 && n > 0)
		deliver__throttle_done(hr->d, hr->g, pt[0].until_ms, pt[0].level, hr->reply, "");
	else
		deliver__throttle_local(hr->d, hr->g, hr->reply, " shared=no");
	free(hr);
}

void
deliver__on_ready(void *arg, struct smtpc *c, int status, enum smtpc_stage stage,
    const struct smtpc_reply *reply)
{
	struct dconn *dc = arg;
	struct task *t = dc->task;
	char why[700], rt[600];

	if (status == 0) {
		const struct smtpc_info *si = smtpc_info(c);

		dc->ready = true;
		if (t == NULL) {
			deliver__conn_release(dc);
			return;
		}
		if (t->host->grp->rules.require_tls == CONFIG_TLS_VERIFY && !si->tls_verified) {
			deliver__say(why, sizeof why, "451 4.7.10 TLS required for %s: %s[%s]: certificate not verified (%s)",
			    t->job->domain, t->host->name, t->host->ip,
			    si->tls_verify_error[0] ? si->tls_verify_error : "no TLS");
			dc->task = NULL;
			t->conn = NULL;
			deliver__conn_quit(dc);
			deliver__log_attempt(t, "server_failed", why, 0, 0, 0);
			deliver__hop_failed(t, why, false);
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
		deliver__reply_text(reply, rt, sizeof rt);
		deliver__say(why, sizeof why, "%s (%s[%s] at %s)", rt, t->host->name, t->host->ip,
		    smtpc_stage_name(stage));
		if (policy_dest_throttled(&t->host->grp->rules, rt)) {
			task_throttled(t, why);
			return;
		}
	}
	if (t->host->grp->rules.require_tls != CONFIG_TLS_OPTIONAL &&
	    (stage == SMTPC_STARTTLS || stage == SMTPC_TLS)) {
		deliver__say(why, sizeof why, "451 4.7.10 TLS required for %s: %s[%s]: %s", t->job->domain,
		    t->host->name, t->host->ip, reply->text[0] ? reply->text : uv_strerror(status));
	} else if (reply->code == 0) {
		deliver__say(why, sizeof why, "451 4.4.1 %s[%s]:%u: %s at %s", t->host->name,
		    t->host->ip, deliver__sockaddr_port(&t->host->addr), uv_strerror(status),
		    smtpc_stage_name(stage));
	}
	deliver__log_attempt(t, "server_failed", why, 0, 0, 0);
	/* A 5xx greeting or EHLO is a refusal; the rest may pass later (outcome.c). */
	deliver__hop_failed(t, why, outcome_setup(stage, reply->code).severity == OUTCOME_PERMANENT);
}

int
deliver__conn_open(struct task *t)
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
	rc = smtpc_open(&dc->c, &o, deliver__on_ready, dc);
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
	task_enter_state(t, T_CONNECT);
	return 0;
}

void
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
	task_enter_state(t, T_WAIT);
	if (!list_empty(&t->wait))
		list_del(&t->wait);
	/* The group said "slow down": wait for the record, or back to the queue. */
	if (g->hitting) {
		list_push(&g->waiting, &t->wait);
		return;
	}
	if (deliver__group_suspended(d, g)) {
		task_hold(t, g->until_ms, "throttled");
		return;
	}
	if (!t->rate_ok && g->rules.max_messages_per_minute > 0) {
		size_t waiting = list_len(&g->rate_wait);

		if (waiting == 0 && deliver__rate_take(d, g, &free_ms)) {
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
		deliver__close_one_idle(d, g);
		list_push(&g->waiting, &t->wait);
		return;
	}
	if (d->nconns >= d->cfg.deliver.concurrency) {
		deliver__close_one_idle(d, NULL);
		list_push(&d->waiting, &t->wait);
		return;
	}
	rc = deliver__conn_open(t);
	if (rc < 0) {
		char why[600];

		deliver__say(why, sizeof why, "451 4.4.1 %s[%s]:%u: %s", h->name, h->ip,
		    deliver__sockaddr_port(&h->addr), uv_strerror(rc));
		deliver__hop_failed(t, why, false);
	}
}
