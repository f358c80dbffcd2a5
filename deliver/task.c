/*
 * task - one claimed job on its way through the steps (see deliver.c's
 * top comment for the steps, deliver_int.h for who owns what).
 * task_enter_state() is the one writer of a task's state.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "deliver/deliver_int.h"
#include "deliver/outcome.h"
#include "policy/spfcheck.h"

static const char *const task_state_names[] = {
	"check", "route", "sign", "wait", "connect", "spf", "txn", "done",
};

static void task_txn(struct task *t);

const char *
task_state_name(enum task_state st)
{
	return (unsigned)st < sizeof task_state_names / sizeof task_state_names[0] ?
	    task_state_names[st] : "?";
}

void
task_enter_state(struct task *t, enum task_state st)
{
	if (t->state != st)
		log_debug("deliver", "task_state", "id=%s domain=%s from=%s to=%s", t->job->id,
		    t->job->domain, task_state_name(t->state), task_state_name(st));
	t->state = st;
}

void
deliver__log_attempt(struct task *t, const char *what, const char *reply, size_t ndelivered,
    size_t ndeferred, size_t nbounced)
{
	struct deliver *d = t->d;
	const struct smtpc_info *si = t->conn && t->conn->c ? smtpc_info(t->conn->c) : NULL;
	char rcpts[LOG_RCPTS_MAX + 64], rq[2 * LOG_RCPTS_MAX + 128], qr[1300], qm[300];
	size_t off = 0, shown = 0;
	double delay = (double)(deliver__now_ms(d) - t->start_ms) / 1000.0;
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
		deliver__say(rcpts + off, sizeof rcpts - off, ",+%zu more", t->npend - shown);
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

/* deliver__set_all - the same outcome for every recipient still without one. */
void
deliver__set_all(struct task *t, enum rcpt_state st, const char *reply)
{
	for (size_t i = 0; i < t->npend; i++) {
		if (t->pst[i] == P_DONE)
			continue;
		queue_job_set(t->job, t->pend[i], st, reply);
		t->pst[i] = P_DONE;
	}
}

/* deliver__open_count - recipients without an outcome. */
size_t
deliver__open_count(const struct task *t)
{
	size_t n = 0;

	for (size_t i = 0; i < t->npend; i++)
		n += t->pst[i] != P_DONE;
	return n;
}

void
task_free(struct task *t)
{
	struct deliver *d = t->d;

	list_del(&t->all);
	if (!list_empty(&t->wait))
		list_del(&t->wait);
	if (t->host != NULL) {
		t->host->refs--;
		deliver__host_put(d, t->host);
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
			deliver__claim_soon(d, 0, CLAIM_ROOM);
		else if (!uv_is_active((uv_handle_t *)&d->claim_timer))
			deliver__claim_soon(d, CLAIM_GATHER_MS, CLAIM_ROOM);
	}
	deliver__maybe_stopped(d);
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
		deliver__conn_release(dc);
	}
}

/*
 * task_finish_at - write the outcomes set on the job and let it go;
 * deferred recipients are due at due (queue clock), or on the retry
 * schedule when due is 0.
 */
void
task_finish_at(struct task *t, uint64_t due)
{
	int rc;
	char mta[300] = "";

	task_enter_state(t, T_DONE);
	if (!list_empty(&t->wait))
		list_del(&t->wait);
	task_drop_conn(t);
	if (t->host != NULL)
		deliver__say(mta, sizeof mta, "%s[%s]", t->host->name, t->host->ip);
	queue_job_set_mta(t->job, mta);
	rc = due > 0 ? queue_complete_at(t->d->q, t->job, due, on_completed, t) :
	    queue_complete(t->d->q, t->job, on_completed, t);
	deliver__load_put(t->d, t->job->domain);
	if (rc < 0)
		on_completed(t, rc);
}

/* task_finish - write the outcomes set on the job and let it go. */
void
task_finish(struct task *t)
{
	task_finish_at(t, 0);
}

/*
 * task_hold - give the job back without an attempt, due at until (queue
 * clock): its group is suspended, or over its rate.
 */
void
task_hold(struct task *t, uint64_t until, const char *why)
{
	struct deliver *d = t->d;
	uint64_t now = queue_now(d->q);
	int rc;

	task_enter_state(t, T_DONE);
	if (!list_empty(&t->wait))
		list_del(&t->wait);
	task_drop_conn(t);
	log_info("deliver", "held", "id=%s domain=%s group=%s reason=%s due_in=%.1f",
	    t->job->id, t->job->domain, t->host ? t->host->grp->rules.group : "-", why,
	    until > now ? (double)(until - now) / 1000.0 : 0.0);
	rc = queue_release_at(d->q, t->job, until, on_completed, t);
	deliver__load_put(d, t->job->domain);
	if (rc < 0)
		on_completed(t, rc);
}

/* task_release - give the job back untouched (stopping). */
void
task_release(struct task *t)
{
	int rc;

	task_enter_state(t, T_DONE);
	if (!list_empty(&t->wait))
		list_del(&t->wait);
	task_drop_conn(t);
	rc = queue_release(t->d->q, t->job, on_completed, t);
	deliver__load_put(t->d, t->job->domain);
	if (rc < 0)
		on_completed(t, rc);
}

/*
 * task_throttled - reply from t's server means "slow down": t's open
 * recipients are deferred with it (this attempt counts, no other), its
 * connection closes, and the whole group is suspended: t is due again
 * when the suspension ends, and so are the group's other jobs.
 */
void
task_throttled(struct task *t, const char *reply)
{
	struct deliver *d = t->d;
	struct group *g = t->host->grp;
	size_t n = deliver__open_count(t);
	struct hit_req *hr;

	deliver__set_all(t, RCPT_DEFERRED, reply);
	if (n > 0)
		deliver__log_attempt(t, "deferred", reply, 0, n, 0);
	task_enter_state(t, T_DONE);
	if (!g->hitting && deliver__group_suspended(d, g)) {
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
		deliver__throttle_local(d, g, reply, "");
		return;
	}
	hr = xcalloc(1, sizeof *hr);
	hr->d = d;
	hr->g = g;
	str_copy(hr->reply, reply, sizeof hr->reply);
	if (policy_throttle_hit(d->pol, g->rules.group, reply, deliver__on_throttle_hit, hr) < 0) {
		free(hr);
		deliver__throttle_local(d, g, reply, " shared=no");
	}
}

static void
on_throttle_cleared(void *arg, int status)
{
	(void)arg;
	(void)status;
}

/* task_defer_all - every pending recipient deferred with reply. */
void
task_defer_all(struct task *t, const char *reply)
{
	size_t n = deliver__open_count(t);

	deliver__set_all(t, RCPT_DEFERRED, reply);
	deliver__log_attempt(t, "deferred", reply, 0, n, 0);
	task_finish(t);
}

void
task_bounce_all(struct task *t, const char *reply)
{
	size_t n = deliver__open_count(t);

	deliver__set_all(t, RCPT_BOUNCED, reply);
	deliver__log_attempt(t, "bounced", reply, 0, 0, n);
	task_finish(t);
}

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
		deliver__say(reply, sizeof reply, "550 5.7.1 %s", why[i] && why[i][0] ? why[i] :
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
	if (deliver__open_count(t) == 0) {
		/* Nobody left: done without a connection. */
		task_finish(t);
		return;
	}
	task_route(t);
}

/* task_check - drop the recipients on the suppression list, then route. */
void
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
	task_enter_state(t, T_CHECK);
	addrs = xcalloc(t->npend, sizeof *addrs);
	for (size_t i = 0; i < t->npend; i++)
		addrs[i] = t->job->env.rcpt[t->job->st.r[t->pend[i]].idx].addr;
	rc = policy_sup_filter(d->pol, deliver__domain_of(sender), addrs, t->npend, on_filtered, t);
	free(addrs);
	if (rc < 0)
		on_filtered(t, rc, NULL, NULL, 0);
}

void
task_start(struct deliver *d, struct queue_job *job)
{
	struct task *t = xcalloc(1, sizeof *t);
	const struct config_domain *dom;
	const char *sender = job->env.sender ? job->env.sender : "";

	t->d = d;
	t->job = job;
	t->start_ms = t->renewed_ms = deliver__now_ms(d);
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

			deliver__say(reply, sizeof reply, "4.4.7 delivery time expired%s%s",
			    r->reply ? "; last reply: " : "", r->reply ? r->reply : "");
			queue_job_set(job, t->pend[i], RCPT_EXPIRED, reply);
			t->pst[i] = P_DONE;
		}
		deliver__log_attempt(t, "expired", "4.4.7 delivery time expired", 0, 0, 0);
		task_finish(t);
		return;
	}
	t->body8bit = (job->env.flags & ENV_F_8BITMIME) || deliver__has_8bit(job->msg, job->msg_len);
	/*
	 * The return path: a signed VERP address on the sending domain's
	 * return-path domain; the sender as given when its domain is not
	 * one of ours; the null path stays null.
	 */
	dom = sender[0] ? config_domain_find(&d->cfg, deliver__domain_of(sender)) : NULL;
	if (dom != NULL) {
		if (verp_encode(d->verp_key, job->id, job->st.r[t->pend[0]].idx, t->npend > 1,
		    dom->return_path, t->mail_from, sizeof t->mail_from) < 0)
			str_copy(t->mail_from, sender, sizeof t->mail_from);
		str_copy(t->rp_domain, dom->return_path, sizeof t->rp_domain);
	} else {
		str_copy(t->mail_from, sender, sizeof t->mail_from);
		str_copy(t->rp_domain, deliver__domain_of(sender), sizeof t->rp_domain);
	}
	task_check(t);
}

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

static void sup_add(struct task *t, const char *addr, const char *reply);

/*
 * task_bounce_dns - kurier's own DNS lookup says the domain takes no mail:
 * bounce every open recipient, and suppress those whose reply says the
 * address cannot exist (outcome_dns_suppresses: 5.1.2, 5.1.10) for the
 * sender's domain, as a remote server's 5.1.x would ([policy]
 * suppress_bounces).
 */
static void
task_bounce_dns(struct task *t, const char *reply)
{
	if (outcome_dns_suppresses(reply))
		for (size_t i = 0; i < t->npend; i++)
			if (t->pst[i] != P_DONE)
				sup_add(t, t->job->env.rcpt[t->job->st.r[t->pend[i]].idx].addr, reply);
	task_bounce_all(t, reply);
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
		task_bounce_dns(t, res->reply);
		return;
	}
	if (res->status < 0 || res->nhops == 0) {
		task_defer_all(t, res->reply[0] ? res->reply : "451 4.4.3 no route to the destination");
		return;
	}
	if (prune_self(t->d, res) == 0) {
		char reply[400];

		deliver__say(reply, sizeof reply, "554 5.4.6 mail for %s loops back to this server (%s is its best MX)",
		    t->job->domain, t->d->cfg.server.hostname);
		task_bounce_all(t, reply);
		return;
	}
	/* The domain's rules via its best server: the DKIM choice. */
	policy_dest_for(&t->d->cfg, t->job->domain, res->hops[0].relay ? NULL : res->hops[0].name,
	    &t->dest);
	task_sign(t);
}

void
task_route(struct task *t)
{
	struct deliver *d = t->d;
	int rc;

	task_enter_state(t, T_ROUTE);
	rc = route_resolve(d->dns, d->rules, d->nrules, (uint16_t)d->cfg.deliver.mx_port,
	    t->job->domain, on_route, t);
	if (rc < 0) {
		char reply[400];

		if (rc == -EINVAL) {
			deliver__say(reply, sizeof reply, "550 5.1.2 %s is not a valid domain name",
			    t->job->domain);
			task_bounce_dns(t, reply);
			return;
		}
		deliver__say(reply, sizeof reply, "451 4.4.3 cannot look up %s: %s", t->job->domain,
		    uv_strerror(rc));
		task_defer_all(t, reply);
	}
}

/* Remember why a server failed and go on to the next one. */
void
deliver__hop_failed(struct task *t, const char *why, bool permanent)
{
	str_copy(t->last_reply, why, sizeof t->last_reply);
	t->hop_fail++;
	if (permanent)
		t->hop_fail_5xx++;
	t->hop++;
	task_next_hop(t);
}

void
task_next_hop(struct task *t)
{
	struct deliver *d = t->d;
	const struct route_hop *hop;
	struct policy_dest rules;

	if (t->host != NULL) {
		str_copy(t->last_mx, t->host->name, sizeof t->last_mx);
		str_copy(t->last_ip, t->host->ip, sizeof t->last_ip);
		t->host->refs--;
		deliver__host_put(d, t->host);
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
		deliver__say(reply, sizeof reply, "%s", t->last_reply[0] ? t->last_reply :
		    "451 4.4.1 no server could be reached");
		task_defer_all(t, reply);
		return;
	}
	hop = &t->route->hops[t->hop];
	policy_dest_for(&d->cfg, t->job->domain, hop->relay ? NULL : hop->name, &rules);
	t->host = deliver__host_get(d, hop->name, &hop->addr, deliver__group_get(d, &rules));
	t->host->refs++;
	task_connect(t);
}

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
		deliver__say(reply, sizeof reply, "451 4.7.23 SPF preflight: %s for %s from %s: %s; publish an SPF record that allows this server, or set [deliver] spf_preflight = warn",
		    spfcheck_verdict_name(v), t->rp_domain, ip, why);
		task_defer_all(t, reply);
		return;
	}
	log_warn("deliver", "spf_preflight", "id=%s domain=%s verdict=%s reason=%s effect=delivered",
	    t->job->id, t->rp_domain, spfcheck_verdict_name(v), log_quotes(q, sizeof q, why));
	task_txn(t);
}

/* task_on_conn - a ready connection for t: preflight, then send. */
void
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
	task_enter_state(t, T_SPF);
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

	if (d->pol == NULL || !d->cfg.policy.suppress_bounces || deliver__domain_of(sender)[0] == '\0')
		return;
	sr = xcalloc(1, sizeof *sr);
	memcpy(sr->id, t->job->id, QID_SIZE);
	str_copy(sr->scope, deliver__domain_of(sender), sizeof sr->scope);
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
			deliver__say(why, sizeof why, "451 4.4.2 %s[%s]: %s at %s", t->host->name, t->host->ip,
			    res->error[0] ? res->error : "connection lost", smtpc_stage_name(res->stage));
			if (t->conn != NULL)
				t->conn->closing = true;
			task_defer_all(t, why);
			return;
		}
		/* MAIL refused (or RSET, or no MAIL possible): it speaks for everyone. */
		if (all.reply != NULL)
			deliver__reply_text(all.reply, mailr, sizeof mailr);
		else
			deliver__say(mailr, sizeof mailr, "451 4.4.2 %s", res->error[0] ? res->error : "transaction failed");
		deliver__say(why, sizeof why, "%s (%s[%s])", mailr, t->host->name, t->host->ip);
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
			deliver__say(reply, sizeof reply, "451 4.4.2 %s[%s]: no reply to RCPT (%s)",
			    t->host->name, t->host->ip, res->error[0] ? res->error : "transaction ended");
			queue_job_set(t->job, t->pend[i], RCPT_DEFERRED, reply);
			ndef++;
			continue;
		}
		if (oc[k].cause == OUTCOME_NO_DATA_REPLY) {
			deliver__say(reply, sizeof reply, "451 4.4.2 %s[%s]: %s", t->host->name,
			    t->host->ip, res->error[0] ? res->error : "no reply to the data");
			queue_job_set(t->job, t->pend[i], RCPT_DEFERRED, reply);
			ndef++;
			continue;
		}
		deliver__reply_text(oc[k].reply, reply, sizeof reply);
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
				deliver__say(thr, sizeof thr, "%s (%s[%s])", reply, t->host->name, t->host->ip);
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
		deliver__reply_text(&res->data, reply, sizeof reply);
	else if (res->error[0])
		deliver__say(reply, sizeof reply, "%s", res->error);
	else
		deliver__say(reply, sizeof reply, "no recipient accepted");
	deliver__log_attempt(t, ndel == t->ntxn ? "delivered" : "attempt", reply, ndel, ndef, nbou);
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
	if (deliver__open_count(t) > 0 && t->conn != NULL && !t->conn->closing &&
	    smtpc_usable(t->conn->c) && !t->d->stopping) {
		task_txn(t);
		return;
	}
	if (deliver__open_count(t) > 0)
		deliver__set_all(t, RCPT_DEFERRED, t->conn == NULL || t->conn->closing ?
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

	task_enter_state(t, T_TXN);
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

		deliver__say(why, sizeof why, "451 4.3.0 cannot send to %s[%s]: %s", t->host->name,
		    t->host->ip, uv_strerror(rc));
		t->conn->closing = true;
		smtpc_abort(t->conn->c);
		task_defer_all(t, why);
	}
}
