/*
 * kurierd - the kurier daemon.
 *
 *   kurierd [-c FILE] [--roles relay,deliver,mailbox] [--check]
 *
 * One process runs any set of roles on one libuv loop; all state lives in
 * Redis, so any number of kurierd processes can share one Redis.  This
 * file owns start-up (config, logging, roles), the Redis connection, the
 * signals and an orderly stop:
 *   SIGTERM, SIGINT  stop: finish work in flight for up to
 *                    [server] shutdown_grace, then exit 0
 *   SIGHUP           read the config again: log_level applies at once;
 *                    a broken file is reported and the running config
 *                    kept; other changes are named as needing a restart
 * The relay role is the submission server (relay/smtpd.c) with its user
 * store (policy/auth.c); SIGHUP also reloads its TLS certificate.  With
 * the deliver role kurierd runs the queue's lease reaper, which returns
 * jobs of workers that died to the queue.  The relay role also runs the
 * inbound MX for bounce domains ([relay] inbound) with mailbox/ingest as
 * its sink: returns are classified, acted on and stored in the mailbox
 * store.  The mailbox role runs the reporter (mailbox/report.h), which
 * turns the queue's outcome events into delivery status notifications,
 * and trims the mailbox store: mbox_trim enforces [mailbox] retention and
 * max_messages over every user, so a user who gets no new returns still
 * loses what is past them.  The first trim runs TRIM_FIRST_MS after start
 * (once the store's Redis is up), then one every retention/10, at least
 * a minute and at most an hour (trim_interval); one at a time, the next
 * timed from the end of the last; SIGTERM lets one in flight finish
 * (within the grace).  kurierd opens the mailbox store once for every
 * role that needs it (k.store).  The mailbox role also serves the store
 * to mail clients over POP3 ([mailbox] pop3, pop3s: mailbox/pop3d.h) and
 * IMAP ([mailbox] imap, imaps: mailbox/imapd.h),
 * with the same user store and lock-out as SMTP AUTH; SIGHUP reloads its
 * TLS certificate too.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/config.h"
#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "policy/auth.h"
#include "policy/policy.h"
#include "deliver/deliver.h"
#include "mailbox/imapd.h"
#include "mailbox/ingest.h"
#include "mailbox/pop3d.h"
#include "mailbox/report.h"
#include "mailbox/store.h"
#include "queue/queue.h"
#include "relay/smtpd.h"

#define KURIER_VERSION "0.1.0"

/*
 * The first mailbox trim: soon after start, so that a node restarted
 * after a long stop sheds what expired meanwhile (and the e2e test sees
 * it without waiting an interval); retried this often while the store's
 * Redis is down.
 */
#define TRIM_FIRST_MS 3000

struct kurier {
	uv_loop_t *loop;
	struct config cfg;
	char config_path[PATH_MAX];
	unsigned roles_override;      /* from --roles, or 0 */
	struct queue *queue;
	struct auth *auth;            /* relay role */
	struct policy *policy;        /* relay and deliver roles */
	struct smtpd *smtpd;          /* relay role; NULL once stopped */
	struct pop3d *pop3d;          /* mailbox role with POP3 listeners; NULL once stopped */
	struct imapd *imapd;          /* mailbox role with IMAP listeners; NULL once stopped */
	struct deliver *deliver;      /* deliver role; NULL once stopped */
	struct mbox_store *store;     /* mailbox role, and relay's inbound sink */
	struct ingest *ingest;        /* relay role: the inbound sink */
	struct report *report;        /* mailbox role; NULL once stopped */
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t reaper;
	uv_timer_t trim;              /* mailbox role: the next mbox_trim */
	uv_timer_t grace;
	unsigned inflight;            /* queue calls and a trim not answered yet */
	bool stopping;
	bool grace_expired;
	bool redis_seen_up;
	bool trimming;                /* an mbox_trim in flight */
};

static void kurier_stop(struct kurier *k, const char *why);
static void on_trim_timer(uv_timer_t *t);

/* --- what relay is handed: the queue as its sink, policy/auth as its users -- */

static int
sink_queue_store(void *arg, struct envelope *env, const struct smtpd_message *m,
    smtpd_stored_cb *done, void *done_arg)
{
	return queue_enqueue(arg, env, m->head, m->head_len, m->body, m->body_len, done,
	    done_arg);
}

static const struct smtpd_sink_ops sink_queue = { .store = sink_queue_store };

/* The inbound MX's sink: mailbox/ingest (relay/ cannot include mailbox/). */
static int
sink_ingest_store(void *arg, struct envelope *env, const struct smtpd_message *m,
    smtpd_stored_cb *done, void *done_arg)
{
	return ingest_store(arg, env, m->head, m->head_len, m->body, m->body_len, done,
	    done_arg);
}

/* Both enums say the same in the same order; spelled out all the same. */
struct rcpt_adapt {
	smtpd_rcpt_cb *done;
	void *done_arg;
};

static void
on_ingest_rcpt(void *arg, enum ingest_verdict v)
{
	struct rcpt_adapt *ra = arg;
	enum smtpd_rcpt_verdict sv;

	switch (v) {
	case INGEST_RCPT_OK:
		sv = SMTPD_RCPT_OK;
		break;
	case INGEST_RCPT_UNKNOWN:
		sv = SMTPD_RCPT_UNKNOWN;
		break;
	case INGEST_RCPT_RELAY:
		sv = SMTPD_RCPT_RELAY;
		break;
	default:
		sv = SMTPD_RCPT_TEMP;
		break;
	}
	ra->done(ra->done_arg, sv);
	free(ra);
}

static int
sink_ingest_rcpt(void *arg, const char *addr, smtpd_rcpt_cb *done, void *done_arg)
{
	struct rcpt_adapt *ra = xmalloc(sizeof *ra);
	int rc;

	ra->done = done;
	ra->done_arg = done_arg;
	rc = ingest_rcpt(arg, addr, on_ingest_rcpt, ra);
	if (rc < 0)
		free(ra);
	return rc;
}

static const struct smtpd_sink_ops sink_ingest = {
	.store = sink_ingest_store,
	.rcpt = sink_ingest_rcpt,
};

static int
users_verify(void *arg, const char *user, const char *password, size_t pwlen,
    auth_verify_cb *cb, void *cb_arg, auth_req_id *id)
{
	return auth_verify(arg, user, password, pwlen, cb, cb_arg, id);
}

static void
users_cancel(void *arg, auth_req_id id)
{
	auth_cancel(arg, id);
}

static int
users_get(void *arg, const char *name, auth_verify_cb *cb, void *cb_arg)
{
	return auth_user_get(arg, name, cb, cb_arg);
}

static const struct smtpd_users_ops users_auth = {
	.verify = users_verify,
	.cancel = users_cancel,
	.user_get = users_get,
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: kurierd [-c FILE] [--roles LIST] [--check]\n"
	    "  -c, --config FILE   configuration (default %s)\n"
	    "  -r, --roles LIST    roles to run, overriding [server] roles:\n"
	    "                      a comma-separated list of relay, deliver, mailbox\n"
	    "  -t, --check         validate the configuration and exit\n"
	    "  -V, --version       print the version and exit\n",
	    CONFIG_DEFAULT_PATH);
}

/* --- lease reaper (deliver role) ------------------------------------------ */

static void
on_reaped(void *arg, int status, size_t n)
{
	struct kurier *k = arg;

	k->inflight--;
	if (status == 0 && n > 0)
		log_info("queue", "leases_reaped", "count=%zu", n);
	else if (status < 0 && status != -ECANCELED && status != -ECONNRESET)
		log_warn("queue", "reap_failed", "error=\"%s\"", uv_strerror(status));
	if (k->stopping && k->inflight == 0)
		kurier_stop(k, NULL);
}

static void
on_reap_timer(uv_timer_t *t)
{
	struct kurier *k = t->data;

	if (k->stopping || !queue_is_up(k->queue))
		return;
	if (queue_reap(k->queue, on_reaped, k) == 0)
		k->inflight++;
}

/* --- mailbox trim (mailbox role) ----------------------------------------- */

/* trim_interval - retention/10, from a minute to an hour. */
static uint64_t
trim_interval(const struct config *cfg)
{
	uint64_t ms = cfg->mailbox.retention_ms / 10;

	if (ms < 60000)
		ms = 60000;
	if (ms > 3600000)
		ms = 3600000;
	return ms;
}

static void
on_trimmed(void *arg, int64_t status)
{
	struct kurier *k = arg;

	k->inflight--;
	k->trimming = false;
	if (status > 0)
		log_info("mailbox", "mailbox_trim", "expunged=%lld", (long long)status);
	else if (status < 0 && status != -ECANCELED && status != -ECONNRESET)
		log_warn("mailbox", "trim_failed", "error=\"%s\"", uv_strerror((int)status));
	if (k->stopping) {
		/* Past the grace the store is being closed: finish_stop goes on by itself. */
		if (!k->grace_expired)
			kurier_stop(k, NULL);
		return;
	}
	uv_timer_start(&k->trim, on_trim_timer, trim_interval(&k->cfg), 0);
}

static void
on_trim_timer(uv_timer_t *t)
{
	struct kurier *k = t->data;
	struct timespec ts;
	int rc;

	if (k->stopping || k->trimming || k->store == NULL)
		return;
	if (!mbox_is_up(k->store)) {
		uv_timer_start(&k->trim, on_trim_timer, TRIM_FIRST_MS, 0);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	rc = mbox_trim(k->store, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000,
	    on_trimmed, k);
	if (rc < 0) {
		log_warn("mailbox", "trim_failed", "error=\"%s\"", uv_strerror(rc));
		uv_timer_start(&k->trim, on_trim_timer, TRIM_FIRST_MS, 0);
		return;
	}
	k->trimming = true;
	k->inflight++;
}

/* --- Redis state ----------------------------------------------------------- */

static void
on_queue_state(void *arg, bool up)
{
	struct kurier *k = arg;

	if (up && !k->redis_seen_up) {
		k->redis_seen_up = true;
		log_info("kurierd", "ready", "queue=up");
	}
}

/* --- stop ---------------------------------------------------------------- */

/* Nothing to do when the user store or the policy module is closed. */
static void
on_auth_closed(void *arg)
{
	(void)arg;
}

static void
on_queue_closed(void *arg)
{
	struct kurier *k = arg;

	k->queue = NULL;
	uv_close((uv_handle_t *)&k->sig_term, NULL);
	uv_close((uv_handle_t *)&k->sig_int, NULL);
	uv_close((uv_handle_t *)&k->sig_hup, NULL);
	uv_close((uv_handle_t *)&k->reaper, NULL);
	uv_close((uv_handle_t *)&k->grace, NULL);
}

static void
finish_stop(struct kurier *k)
{
	if (k->queue == NULL || uv_is_closing((uv_handle_t *)&k->grace))
		return;
	uv_timer_stop(&k->grace);
	log_info("kurierd", "stopped", "pending=%u sessions=%zu", k->inflight,
	    k->smtpd ? smtpd_sessions(k->smtpd) : (size_t)0);
	if (k->report != NULL)
		report_cancel(k->report);
	if (k->ingest != NULL) {
		ingest_close(k->ingest, NULL, NULL);
		k->ingest = NULL;
	}
	/* No trim starts on a closed store; one in flight gets -ECANCELED. */
	if (!uv_is_closing((uv_handle_t *)&k->trim))
		uv_close((uv_handle_t *)&k->trim, NULL);
	if (k->store != NULL) {
		mbox_store_close(k->store, NULL, NULL);
		k->store = NULL;
	}
	/* Answers still pending for sessions are cancelled; they free then. */
	if (k->auth != NULL) {
		auth_close(k->auth, on_auth_closed, k);
		k->auth = NULL;
	}
	if (k->policy != NULL) {
		policy_close(k->policy, on_auth_closed, k);
		k->policy = NULL;
	}
	queue_close(k->queue, on_queue_closed, k);
}

static void
on_smtpd_stopped(void *arg)
{
	struct kurier *k = arg;

	k->smtpd = NULL;
	kurier_stop(k, NULL);
}

static void
on_pop3d_stopped(void *arg)
{
	struct kurier *k = arg;

	k->pop3d = NULL;
	kurier_stop(k, NULL);
}

static void
on_imapd_stopped(void *arg)
{
	struct kurier *k = arg;

	k->imapd = NULL;
	kurier_stop(k, NULL);
}

static void
on_deliver_stopped(void *arg)
{
	struct kurier *k = arg;

	k->deliver = NULL;
	if (k->grace_expired)
		finish_stop(k);
	else
		kurier_stop(k, NULL);
}

static void
on_report_closed(void *arg)
{
	struct kurier *k = arg;

	k->report = NULL;
	if (k->grace_expired && k->deliver == NULL)
		finish_stop(k);
	else
		kurier_stop(k, NULL);
}

static void
on_grace(uv_timer_t *t)
{
	struct kurier *k = t->data;

	log_warn("kurierd", "grace_expired", "pending=%u hint=\"work in flight is cancelled; leases return it to the queue\"",
	    k->inflight);
	k->grace_expired = true;
	/*
	 * The workers end on their own clock (they hold the queue until then).
	 * The reporter starts no call once stopping; the one it has in flight
	 * is cancelled with the queue or the store.
	 */
	if (k->deliver == NULL)
		finish_stop(k);
}

/*
 * kurier_stop - begin (why != NULL) or continue an orderly stop: no new
 * work starts; once nothing is in flight, or the grace period ends, the
 * queue is closed and every handle with it, which ends the loop.
 */
static void
kurier_stop(struct kurier *k, const char *why)
{
	if (why != NULL) {
		if (k->stopping)
			return;
		k->stopping = true;
		log_info("kurierd", "stopping", "reason=%s grace_ms=%llu pending=%u", why,
		    (unsigned long long)k->cfg.server.shutdown_grace_ms, k->inflight);
		uv_timer_stop(&k->reaper);
		uv_timer_stop(&k->trim);
		uv_timer_start(&k->grace, on_grace, k->cfg.server.shutdown_grace_ms + 1000, 0);
		if (k->smtpd != NULL)
			smtpd_stop(k->smtpd, k->cfg.server.shutdown_grace_ms, on_smtpd_stopped, k);
		if (k->pop3d != NULL)
			pop3d_stop(k->pop3d, k->cfg.server.shutdown_grace_ms, on_pop3d_stopped, k);
		if (k->imapd != NULL)
			imapd_stop(k->imapd, k->cfg.server.shutdown_grace_ms, on_imapd_stopped, k);
		if (k->deliver != NULL)
			deliver_stop(k->deliver, k->cfg.server.shutdown_grace_ms, on_deliver_stopped, k);
		if (k->report != NULL)
			report_close(k->report, on_report_closed, k);
	}
	if (k->inflight == 0 && k->smtpd == NULL && k->pop3d == NULL && k->imapd == NULL &&
	    k->deliver == NULL && k->report == NULL)
		finish_stop(k);
}

/* --- signals ---------------------------------------------------------------- */

/* lists_equal - the same routes, sending domains and destinations. */
static bool
lists_equal(const struct config *a, const struct config *b)
{
	return a->nroutes == b->nroutes && a->ndomains == b->ndomains &&
	    a->ndestinations == b->ndestinations &&
	    (a->nroutes == 0 || memcmp(a->routes, b->routes, a->nroutes * sizeof *a->routes) == 0) &&
	    (a->ndomains == 0 || memcmp(a->domains, b->domains, a->ndomains * sizeof *a->domains) == 0) &&
	    (a->ndestinations == 0 ||
	    memcmp(a->destinations, b->destinations, a->ndestinations * sizeof *a->destinations) == 0);
}

static void
reload(struct kurier *k)
{
	struct config *next = malloc(sizeof *next);
	char err[CONFIG_ERR_MAX], q[CONFIG_ERR_MAX + 8];
	const char *changed[7];
	size_t n = 0;

	if (next == NULL) {
		log_error("kurierd", "reload_failed", "error=\"out of memory\"");
		return;
	}
	if (config_load(next, k->config_path, err, sizeof err) < 0) {
		log_error("kurierd", "reload_failed", "error=%s action=\"kept the running configuration\"",
		    log_quotes(q, sizeof q, err));
		free(next);
		return;
	}
	if (next->server.log_level != k->cfg.server.log_level) {
		log_set_level(next->server.log_level);
		k->cfg.server.log_level = next->server.log_level;
	}
	next->server.log_level = k->cfg.server.log_level;
	if (memcmp(&next->server, &k->cfg.server, sizeof next->server) != 0)
		changed[n++] = "server";
	if (memcmp(&next->redis, &k->cfg.redis, sizeof next->redis) != 0)
		changed[n++] = "redis";
	if (memcmp(&next->queue, &k->cfg.queue, sizeof next->queue) != 0)
		changed[n++] = "queue";
	/* The certificate is reloaded below; any other [relay] key needs a restart. */
	if (memcmp(&next->relay, &k->cfg.relay, sizeof next->relay) != 0)
		changed[n++] = "relay";
	if (memcmp(&next->policy, &k->cfg.policy, sizeof next->policy) != 0)
		changed[n++] = "policy";
	if (memcmp(&next->deliver, &k->cfg.deliver, sizeof next->deliver) != 0 ||
	    !lists_equal(next, &k->cfg))
		changed[n++] = "deliver";
	if (memcmp(&next->mailbox, &k->cfg.mailbox, sizeof next->mailbox) != 0)
		changed[n++] = "mailbox";
	if (k->smtpd != NULL) {
		if (smtpd_reload_tls(k->smtpd, err, sizeof err) < 0)
			log_error("kurierd", "tls_reload_failed", "error=%s action=\"kept the running certificate\"",
			    log_quotes(q, sizeof q, err));
		else
			log_info("kurierd", "tls_reloaded", "listeners=submission,submissions");
	}
	if (k->pop3d != NULL) {
		if (pop3d_reload_tls(k->pop3d, err, sizeof err) < 0)
			log_error("kurierd", "tls_reload_failed", "listeners=pop3,pop3s error=%s action=\"kept the running certificate\"",
			    log_quotes(q, sizeof q, err));
		else
			log_info("kurierd", "tls_reloaded", "listeners=pop3,pop3s");
	}
	if (k->imapd != NULL) {
		if (imapd_reload_tls(k->imapd, err, sizeof err) < 0)
			log_error("kurierd", "tls_reload_failed", "listeners=imap,imaps error=%s action=\"kept the running certificate\"",
			    log_quotes(q, sizeof q, err));
		else
			log_info("kurierd", "tls_reloaded", "listeners=imap,imaps");
	}
	{
		char list[64] = "";

		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				strcat(list, ",");
			strcat(list, changed[i]);
		}
		log_info("kurierd", "reloaded", "config=%s log_level=%s restart_needed_for=\"%s\"",
		    k->config_path, log_level_name(k->cfg.server.log_level), list);
	}
	config_free(next);
	free(next);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	struct kurier *k = h->data;

	if (signum == SIGHUP)
		reload(k);
	else
		kurier_stop(k, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* --- start ------------------------------------------------------------------ */

/*
 * Each SMTP session is a descriptor, and the default soft limit (often
 * 1024) is far below [relay] max_connections: take the hard limit.
 */
static void
raise_nofile(const struct config *cfg)
{
	struct rlimit rl;
	rlim_t want = 256;
	const char *what = NULL;

	if (cfg->server.roles & ROLE_RELAY) {
		want += cfg->relay.max_connections;
		what = "[relay] max_connections";
	}
	if ((cfg->server.roles & ROLE_MAILBOX) && (cfg->mailbox.imap.n > 0 ||
	    cfg->mailbox.imaps.n > 0 || cfg->mailbox.pop3.n > 0 || cfg->mailbox.pop3s.n > 0)) {
		/* IMAP and POP3 each count up to max_connections. */
		want += 2 * (rlim_t)cfg->mailbox.max_connections;
		what = what != NULL ? "[relay] or [mailbox] max_connections" :
		    "[mailbox] max_connections";
	}

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (what != NULL && rl.rlim_cur < want)
		log_warn("kurierd", "nofile_low", "limit=%llu wanted=%llu hint=\"raise LimitNOFILE (systemd) or ulimit -n, or lower %s\"",
		    (unsigned long long)rl.rlim_cur, (unsigned long long)want, what);
}

static int
ensure_data_dir(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	if (mkdir(dir, 0700) < 0)
		return -errno;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "roles", required_argument, NULL, 'r' },
		{ "check", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct kurier k;
	char err[CONFIG_ERR_MAX], q[CONFIG_ERR_MAX + 8], roles[64], addr[300];
	const char *why;
	bool check_only = false;
	int c, rc;

	str_copy(k.config_path, CONFIG_DEFAULT_PATH, sizeof k.config_path);
	while ((c = getopt_long(argc, argv, "c:r:tVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (str_copy(k.config_path, optarg, sizeof k.config_path) < 0) {
				fprintf(stderr, "kurierd: config path too long\n");
				return 2;
			}
			break;
		case 'r':
			if (config_parse_roles(optarg, &k.roles_override, &why) < 0) {
				fprintf(stderr, "kurierd: --roles %s: %s\n", optarg, why);
				return 2;
			}
			break;
		case 't':
			check_only = true;
			break;
		case 'V':
			printf("kurierd %s\n", KURIER_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "kurierd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (config_load(&k.cfg, k.config_path, err, sizeof err) < 0) {
		fprintf(stderr, "kurierd: %s\n", err);
		return 1;
	}
	if (k.roles_override)
		k.cfg.server.roles = k.roles_override;
	if (check_only) {
		printf("%s: ok\n", k.config_path);
		config_free(&k.cfg);
		return 0;
	}
	log_set_level(k.cfg.server.log_level);
	if ((rc = ensure_data_dir(k.cfg.server.data_dir)) < 0)
		log_fatal("kurierd", "data_dir", "path=%s error=\"%s\" hint=\"create it, writable by kurierd, or set [server] data_dir\"",
		    k.cfg.server.data_dir, uv_strerror(rc));
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(&k.cfg);
	/*
	 * Message buffers come and go by the thousand a second; glibc's habit
	 * of giving the heap top back to the kernel after each burst costs a
	 * brk(2) pair every few messages.  Keep up to 64 MB.
	 */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_TOP_PAD, 16 << 20);

	k.loop = uv_default_loop();
	log_info("kurierd", "start", "version=%s config=%s roles=%s hostname=%s redis=%s pid=%d",
	    KURIER_VERSION, k.config_path,
	    config_roles_str(k.cfg.server.roles, roles, sizeof roles), k.cfg.server.hostname,
	    config_endpoint_str(&k.cfg.redis.address, addr, sizeof addr), (int)getpid());
	if ((rc = queue_open(&k.queue, k.loop, &k.cfg, "kurierd")) < 0)
		log_fatal("kurierd", "queue_open", "error=\"%s\"", uv_strerror(rc));
	queue_on_state(k.queue, on_queue_state, &k);
	bool pop3 = k.cfg.mailbox.pop3.n > 0 || k.cfg.mailbox.pop3s.n > 0;
	bool imap = k.cfg.mailbox.imap.n > 0 || k.cfg.mailbox.imaps.n > 0;
	bool mail_clients = (k.cfg.server.roles & ROLE_MAILBOX) && (pop3 || imap);

	if ((k.cfg.server.roles & (ROLE_RELAY | ROLE_DELIVER)) || mail_clients ||
	    ((k.cfg.server.roles & ROLE_MAILBOX) && k.cfg.mailbox.dsn_to_sender)) {
		if ((rc = policy_open(&k.policy, k.loop, &k.cfg, "kurierd-policy")) < 0)
			log_fatal("kurierd", "policy_open", "error=\"%s\"", uv_strerror(rc));
	}
	if ((k.cfg.server.roles & ROLE_RELAY) || mail_clients) {
		if ((rc = auth_open(&k.auth, k.loop, &k.cfg, "kurierd-auth")) < 0)
			log_fatal("kurierd", "auth_open", "error=\"%s\"", uv_strerror(rc));
	}
	if (k.cfg.server.roles & ROLE_RELAY) {
		struct smtpd_sink sink = { &sink_queue, k.queue };
		struct smtpd_sink inbound = { &sink_ingest, NULL };
		struct smtpd_users users = { &users_auth, k.auth };

		if (k.cfg.relay.inbound.n > 0) {
			if (k.store == NULL &&
			    (rc = mbox_store_open(&k.store, k.loop, &k.cfg, err, sizeof err)) < 0)
				log_fatal("kurierd", "mailbox_store", "error=%s", log_quotes(q, sizeof q, err));
			if (ingest_open(&k.ingest, k.loop, &k.cfg, k.queue, k.policy, k.store, err,
			    sizeof err) < 0)
				log_fatal("kurierd", "ingest", "error=%s hint=\"fix [deliver] verp_secret or [server] data_dir in %s\"",
				    log_quotes(q, sizeof q, err), k.config_path);
			inbound.arg = k.ingest;
		}
		if (smtpd_open(&k.smtpd, k.loop, &k.cfg, &sink, k.ingest ? &inbound : NULL, &users,
		    k.policy, err, sizeof err) < 0)
			log_fatal("kurierd", "relay", "error=%s hint=\"fix [relay] or [tls] in %s, or stop what holds the port\"",
			    log_quotes(q, sizeof q, err), k.config_path);
		log_info("kurierd", "relay_listening", "submission=%u submissions=%u inbound=%u",
		    k.cfg.relay.submission.n, k.cfg.relay.submissions.n,
		    k.ingest ? k.cfg.relay.inbound.n : 0);
	}

	if (k.cfg.server.roles & ROLE_DELIVER) {
		if (deliver_open(&k.deliver, k.loop, &k.cfg, k.queue, k.policy, err, sizeof err) < 0)
			log_fatal("kurierd", "deliver", "error=%s hint=\"fix [deliver] or [domain] in %s\"",
			    log_quotes(q, sizeof q, err), k.config_path);
	}

	if (k.cfg.server.roles & ROLE_MAILBOX) {
		char consumer[CONFIG_HOST_MAX + 32];

		if (k.store == NULL &&
		    (rc = mbox_store_open(&k.store, k.loop, &k.cfg, err, sizeof err)) < 0)
			log_fatal("kurierd", "mailbox_store", "error=%s", log_quotes(q, sizeof q, err));
		/* One consumer per process: a restarted node's leftovers are claimed like any other. */
		snprintf(consumer, sizeof consumer, "%s:%d", k.cfg.server.hostname, (int)getpid());
		if (report_open(&k.report, k.loop, &k.cfg, k.queue, k.store, k.policy, consumer, err,
		    sizeof err) < 0)
			log_fatal("kurierd", "report", "error=%s", log_quotes(q, sizeof q, err));
		if (mail_clients && pop3 &&
		    pop3d_open(&k.pop3d, k.loop, &k.cfg, k.store, k.auth, k.policy, err, sizeof err) < 0)
			log_fatal("kurierd", "pop3", "error=%s hint=\"fix [mailbox] pop3, pop3s or [tls] in %s, or stop what holds the port\"",
			    log_quotes(q, sizeof q, err), k.config_path);
		if (mail_clients && imap &&
		    imapd_open(&k.imapd, k.loop, &k.cfg, k.store, k.auth, k.policy, err, sizeof err) < 0)
			log_fatal("kurierd", "imap", "error=%s hint=\"fix [mailbox] imap, imaps or [tls] in %s, or stop what holds the port\"",
			    log_quotes(q, sizeof q, err), k.config_path);
		if (mail_clients)
			log_info("kurierd", "mailbox_listening", "pop3=%u pop3s=%u imap=%u imaps=%u",
			    k.cfg.mailbox.pop3.n, k.cfg.mailbox.pop3s.n, k.cfg.mailbox.imap.n,
			    k.cfg.mailbox.imaps.n);
	}

	uv_signal_init(k.loop, &k.sig_term);
	uv_signal_init(k.loop, &k.sig_int);
	uv_signal_init(k.loop, &k.sig_hup);
	k.sig_term.data = k.sig_int.data = k.sig_hup.data = &k;
	uv_signal_start(&k.sig_term, on_signal, SIGTERM);
	uv_signal_start(&k.sig_int, on_signal, SIGINT);
	uv_signal_start(&k.sig_hup, on_signal, SIGHUP);
	uv_timer_init(k.loop, &k.reaper);
	uv_timer_init(k.loop, &k.trim);
	uv_timer_init(k.loop, &k.grace);
	k.reaper.data = k.trim.data = k.grace.data = &k;
	if (k.cfg.server.roles & ROLE_DELIVER)
		uv_timer_start(&k.reaper, on_reap_timer, k.cfg.queue.reap_interval_ms,
		    k.cfg.queue.reap_interval_ms);
	if (k.cfg.server.roles & ROLE_MAILBOX)
		uv_timer_start(&k.trim, on_trim_timer, TRIM_FIRST_MS, 0);

	uv_run(k.loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(k.loop);
	if (rc != 0)
		log_panic("kurierd", "loop_close", "error=\"%s\"", uv_strerror(rc));
	log_info("kurierd", "exit", "status=0");
	config_free(&k.cfg);
	return 0;
}
