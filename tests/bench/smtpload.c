/*
 * smtpload - SMTP submission load generator for `make bench`
 * (tests/bench/run-smtp-bench.sh runs it against kurierd and Postfix).
 *
 *   smtpload -p PORT [-H HOST] [-T plain|starttls|tls] [-u USER [-w PASSWORD]]
 *            [-c SESSIONS] [-m MESSAGES] [-n TOTAL] [-d SECONDS] [-W SECONDS]
 *            [-s SIZE] [-f FROM] [-R RCPT] [-U] [-N NAME] [-P LABEL=PID]... [-t SECONDS]
 *   smtpload -i CONNECTIONS -p PORT [-H HOST] [-T ...] [-N NAME]
 *            [-P LABEL=PID]... [-k SECONDS] [-C WINDOW] [-t SECONDS]
 *
 *   -p, -H  the server (127.0.0.1)
 *   -T      plain: EHLO only; starttls: EHLO, STARTTLS, EHLO (default);
 *           tls: implicit TLS (RFC 8314), then EHLO
 *   -u, -w  AUTH PLAIN (RFC 4616) with this user and password once per
 *           session, after the (second) EHLO; the password may come from
 *           $SMTPLOAD_PASSWORD instead of -w.  Bench accounts only.
 *   -c      concurrent sessions (50)
 *   -m      messages per session; the window (and the run) ends when the
 *           first session has sent them; 0: no limit, -d decides (0)
 *   -n      messages in all: sessions start messages until TOTAL have been
 *           started, and the window (and the run) ends when the last of
 *           them is answered, so exactly TOTAL are sent; 0: no limit (0)
 *   -d      seconds of the measured window (10)
 *   -W      warm-up seconds before the window opens (2)
 *   -s      message size in bytes, header section included (5120)
 *   -f      envelope and header sender (bench@shop.example; "" sends the
 *           null reverse-path, MAIL FROM:<>, as a return does)
 *   -R      every RCPT is this address (default: user<N>@d<NN>.example,
 *           N counting up); the inbound MX's benchmark sends returns to
 *           one VERP address
 *   -U      make every message's body unique: a first body line
 *           "Sequence N" (the inbound MX acts on a return once, keyed by
 *           its body, so identical bodies would all be repeats)
 *   -N      prefix of every figure's name (load)
 *   -P      also account LABEL: the process PID and all its descendants
 *           (repeatable, at most 8)
 *   -t      deadline of the whole run in seconds (600)
 *   -i      idle mode: hold this many connections (see below)
 *   -k      idle mode: keep holding this many seconds after measuring,
 *           or until SIGUSR1/SIGTERM/SIGINT (0)
 *   -C      connection set-ups in flight at once (200)
 *
 * Load mode.  Every session connects, does EHLO, STARTTLS and EHLO (per
 * -T), AUTH when -u is given, and waits.  Once all are ready the load
 * starts: each session sends one message at a time, MAIL, RCPT and DATA
 * as one pipelined group when the server offers PIPELINING (RFC 2920;
 * else one command per round trip), then the message and the final
 * ".", and waits for the reply before the next message.  After -W
 * seconds the window opens: CPU counters of every -P process tree and
 * our own are sampled; it closes -d seconds later (or when the first
 * session finishes its -m messages) with a second sample, and every
 * session ends with QUIT after its message in progress.  Figures cover
 * the window only: accepted messages/s, latency from writing the final
 * ".\r\n" to reading the 250 (p50/p99/max), CPU per accepted message.
 * A process tree's CPU is the user and system time (/proc/PID/stat) of
 * every live process under PID plus the time of the children they
 * reaped (cutime, cstime), so processes that exit during the window
 * still count.  For a tree of one process the read and write system
 * calls per message (/proc/PID/io syscr, syscw) are given too.  The
 * machine's busy time (/proc/stat) shows how much other work ran
 * (other_cpu_util: busy time that is neither ours nor a tree's).
 *
 * Idle mode.  20 warm-up connections set up and QUIT, so one-time costs
 * (OpenSSL's tables, the first session) are paid before the baseline.
 * Then for every -P tree VmRSS (and PSS, smaps_rollup) is read, -i
 * connections are set up as above (handshake and EHLO done, no AUTH)
 * and left idle; 2 s after the last is up the trees are read again:
 * per connection = (after - before) / held.  Our own RLIMIT_NOFILE is
 * raised to the hard limit; when that is too low the figure says how
 * many could be held.
 *
 * Output: one "name value unit" line per figure, prefixed with -N.
 * Reply codes that were not the expected ones are counted per code.
 * Exit status 0 when every session did its part without an error, 1
 * otherwise (including the deadline), 2 on bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/str.h"
#include "core/tlsctx.h"
#include "core/xmalloc.h"

#define REPLY_LINE_MAX 4096
#define NDOMAINS 20
#define LABELS_MAX 8
#define WARM_CONNS 20
#define SETTLE_MS 2000
#define CLOSE_MS 60000          /* for every session to close at the end */
#define CODES 600

enum mode {
	MODE_PLAIN,
	MODE_STARTTLS,
	MODE_TLS,
};

enum sess_state {
	S_CONNECTING,    /* TCP connect (and, implicit TLS, the handshake) */
	S_BANNER,        /* waiting for 220 */
	S_EHLO,          /* EHLO sent before TLS */
	S_STARTTLS,      /* STARTTLS sent */
	S_HANDSHAKE,     /* TLS handshake after STARTTLS */
	S_EHLO_TLS,      /* EHLO sent over TLS */
	S_AUTH,          /* AUTH PLAIN sent */
	S_READY,         /* set up, waiting for the load to start */
	S_MAIL,          /* MAIL (+ RCPT + DATA when pipelining) sent */
	S_RCPT,          /* RCPT sent (no pipelining) */
	S_DATA,          /* DATA sent (no pipelining) */
	S_BODY,          /* message and "." sent: waiting for the 250 */
	S_RSET,          /* RSET after a refused command */
	S_IDLE,          /* idle mode: holding the connection */
	S_QUIT,          /* QUIT sent */
	S_DONE,          /* closing */
};

enum phase {
	PHASE_SETUP,     /* sessions connecting */
	PHASE_LOAD,      /* load mode: messages flowing */
	PHASE_WARM,      /* idle mode: warm-up connections */
	PHASE_HOLD,      /* idle mode: the held connections */
	PHASE_END,       /* sessions quitting */
};

struct load;

struct sess {
	struct load *l;
	struct conn *c;
	enum sess_state state;
	struct buf in;
	bool pipelining, starttls, closed;
	unsigned group;            /* replies still due for the pipelined group */
	bool group_ok, got354;
	uint64_t sent;             /* messages started */
	uint64_t rcpt;             /* the recipient number of this message */
	uint64_t t_dot;            /* when the final "." was written, ns */
};

/* CPU and memory of one process tree at one moment. */
struct tree {
	double user, sys;          /* s, live processes plus reaped children */
	double rss_kb, pss_kb;
	double syscr, syscw;       /* read and write system calls, live processes only */
	unsigned nprocs;
};

struct label {
	char name[32];
	int pid;
	struct tree t0, t1;
};

struct load {
	uv_loop_t *loop;
	SSL_CTX *tls;
	struct sockaddr_storage addr;
	enum mode mode;
	const char *host, *user, *password, *from, *prefix;
	uint16_t port;
	unsigned nsess, window;
	uint64_t per_session, duration_ms, warmup_ms, deadline_ms, hold_ms;
	uint64_t total, started, done;   /* -n: messages to send, started, answered */
	unsigned idle_want;
	char *msg;                 /* the message, dot-stuffed, with ".\r\n" */
	size_t msg_len, msg_size;
	size_t msg_head;           /* where its body starts (-U inserts a line there) */
	const char *rcpt;          /* -R, or NULL */
	bool unique;               /* -U */
	char auth_cmd[1024];

	struct sess *sess;         /* this phase's sessions */
	unsigned n, launched, setups, ready, closed, setup_failed;
	enum phase phase;
	bool stop;                 /* no new messages: QUIT after the current one */
	bool failed;
	uint64_t rcpt_seq;

	uv_timer_t deadline, timer;
	uv_signal_t sigint, sigterm, sigusr1;

	uint64_t t_setup, t_ready, t_w0, t_w1;
	bool window_open, window_closed;
	double self0, self1, self_sys0, self_sys1;
	double host_busy0, host_busy1, host_steal0, host_steal1;
	uint64_t accepted, accepted_total, refused, session_errors;
	uint64_t *lat;             /* window latencies, ns */
	size_t nlat, lat_cap;
	uint64_t codes[CODES];     /* unexpected reply codes */

	struct label labels[LABELS_MAX];
	unsigned nlabels;
	unsigned held;
};

static void sess_enter_state(struct sess *s, enum sess_state st);
static void sess_fail(struct sess *s, const char *why, int code);
static void launch_more(struct load *l);
static void phase_start(struct load *l, enum phase ph, unsigned n);
static void window_close(struct load *l);
static void on_hold_settled(uv_timer_t *t);
static void on_warm_settled(uv_timer_t *t);

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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

static void
figure(const struct load *l, const char *name, double value, const char *unit,
    int prec)
{
	printf("%s_%s %.*f %s\n", l->prefix, name, prec, value, unit);
	fflush(stdout);
}

/* --- process trees: /proc ------------------------------------------------------- */

struct pstat {
	int pid, ppid;
	unsigned long long ticks;  /* utime + stime + cutime + cstime */
	unsigned long long sys;    /* stime + cstime */
	bool member;
};

/* Read /proc/PID/stat: ppid and the four times, in clock ticks. */
static bool
read_stat(int pid, struct pstat *p)
{
	char path[64], buf[1024];
	const char *q;
	unsigned long long ut, st, cut, cst;
	int ppid;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name is in parentheses and may hold anything: skip to the last ')'. */
	if ((q = strrchr(buf, ')')) == NULL)
		return false;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime */
	if (sscanf(q + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
	    &ppid, &ut, &st, &cut, &cst) != 5)
		return false;
	p->pid = pid;
	p->ppid = ppid;
	p->ticks = ut + st + cut + cst;
	p->sys = st + cst;
	p->member = false;
	return true;
}

/* The number on a "Name:   1234 kB" line of a /proc file (kB, or a count); 0 when absent. */
static double
proc_kb(int pid, const char *file, const char *name)
{
	char path[64], line[256];
	size_t nl = strlen(name);
	double kb = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
			kb = strtod(line + nl + 1, NULL);
			break;
		}
	fclose(f);
	return kb;
}

/*
 * tree_read - CPU time and memory of root and every process descending
 * from it.  A process whose parent exited is re-parented and no longer
 * found; its time until then is in no cutime either, which is why the
 * servers measured here (kurierd, Postfix's master) reap their own.
 */
static void
tree_read(int root, bool memory, struct tree *t)
{
	static struct pstat *ps;
	static size_t cap;
	size_t n = 0;
	long hz = sysconf(_SC_CLK_TCK);
	unsigned long long ticks = 0, sys = 0;
	struct dirent *de;
	bool grew;
	DIR *d;

	memset(t, 0, sizeof *t);
	if ((d = opendir("/proc")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end != '\0' || pid <= 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			ps = xreallocarray(ps, cap, sizeof *ps);
		}
		if (read_stat((int)pid, &ps[n]))
			n++;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++)
		ps[i].member = ps[i].pid == root;
	/* Membership spreads down one generation per pass. */
	do {
		grew = false;
		for (size_t i = 0; i < n; i++) {
			if (ps[i].member)
				continue;
			for (size_t j = 0; j < n; j++)
				if (ps[j].member && ps[j].pid == ps[i].ppid) {
					ps[i].member = grew = true;
					break;
				}
		}
	} while (grew);
	for (size_t i = 0; i < n; i++) {
		if (!ps[i].member)
			continue;
		t->nprocs++;
		ticks += ps[i].ticks;
		sys += ps[i].sys;
		t->syscr += proc_kb(ps[i].pid, "io", "syscr");
		t->syscw += proc_kb(ps[i].pid, "io", "syscw");
		if (memory) {
			t->rss_kb += proc_kb(ps[i].pid, "status", "VmRSS");
			t->pss_kb += proc_kb(ps[i].pid, "smaps_rollup", "Pss");
		}
	}
	t->user = (double)(ticks - sys) / (double)hz;
	t->sys = (double)sys / (double)hz;
}

/*
 * host_cpu - CPU seconds the whole machine spent busy (everything but
 * idle and iowait) and stolen by the hypervisor, summed over all CPUs
 * (/proc/stat): what else ran shows as busy time no label accounts for.
 */
static void
host_cpu(double *busy, double *steal)
{
	unsigned long long v[8] = { 0 };
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");

	*busy = *steal = 0;
	if (f == NULL)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
	    &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		/* user nice system idle iowait irq softirq steal */
		*busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / (double)hz;
		*steal = (double)v[7] / (double)hz;
	}
	fclose(f);
}

static void
labels_read(struct load *l, bool after, bool memory)
{
	for (unsigned i = 0; i < l->nlabels; i++)
		tree_read(l->labels[i].pid, memory, after ? &l->labels[i].t1 : &l->labels[i].t0);
}

/* --- the message ------------------------------------------------------------------ */

/*
 * make_message - a plain-text message of size bytes (CRLF line ends, at
 * least its header section), dot-stuffed (RFC 5321 4.5.2) and followed
 * by the terminating ".\r\n", as sent after DATA.
 */
static char *
make_message(const char *from, size_t size, size_t *len)
{
	static const char line[] =
	    "Your order 4711 has shipped and will arrive within three days.\r\n";
	struct buf m = BUF_INIT, out = BUF_INIT;
	size_t pos = 0;

	buf_appendf(&m,
	    "From: Shop <%s>\r\n"
	    "To: <user@d00.example>\r\n"
	    "Subject: Your order has shipped\r\n"
	    "Message-ID: <smtpload.4711@shop.example>\r\n"
	    "Date: Sun, 22 Nov 2026 12:00:00 +0000\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n"
	    "\r\n", from);
	while (m.len + sizeof line - 1 + 2 <= size)
		buf_append(&m, line, sizeof line - 1);
	while (m.len + 2 < size)
		buf_appendc(&m, 'x');
	buf_appends(&m, "\r\n");
	while (pos < m.len) {
		const char *lf = memchr(m.data + pos, '\n', m.len - pos);
		size_t ll = lf ? (size_t)(lf - (m.data + pos)) + 1 : m.len - pos;

		if (m.data[pos] == '.')
			buf_appendc(&out, '.');
		buf_append(&out, m.data + pos, ll);
		pos += ll;
	}
	buf_appends(&out, ".\r\n");
	buf_free(&m);
	return buf_steal(&out, len);
}

/* --- sessions ------------------------------------------------------------------- */

static void
sess_send(struct sess *s, const char *p, size_t len)
{
	if (s->c != NULL)
		(void)conn_write(s->c, p, len);
}

static void
sess_sendf(struct sess *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sess_sendf(struct sess *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line)
		log_panic("smtpload", "line_too_long", "fmt=%s", fmt);
	sess_send(s, line, (size_t)n);
}

static void
count_code(struct load *l, int code)
{
	if (code >= 0 && code < CODES)
		l->codes[code]++;
}


/* load_done - nothing is open any more: close our own handles, so uv_run() returns. */
static void
load_done(struct load *l)
{
	uv_handle_t *h[] = {
		(uv_handle_t *)&l->deadline, (uv_handle_t *)&l->timer,
		(uv_handle_t *)&l->sigint, (uv_handle_t *)&l->sigterm,
		(uv_handle_t *)&l->sigusr1,
	};

	for (size_t i = 0; i < sizeof h / sizeof h[0]; i++)
		if (!uv_is_closing(h[i]))
			uv_close(h[i], NULL);
}

/* A session finished setting up (ok) or gave up before: let the next one start. */
static void
setup_over(struct sess *s, bool ok)
{
	struct load *l = s->l;

	l->setups--;
	if (ok)
		l->ready++;
	else
		l->setup_failed++;
	launch_more(l);
	if (l->ready + l->setup_failed < l->n || l->t_ready != 0)
		return;
	/* Every session of the phase is set up or failed. */
	l->t_ready = now_ns();
	switch (l->phase) {
	case PHASE_SETUP:
		if (l->ready == 0) {
			fprintf(stderr, "smtpload: no session could be set up\n");
			l->failed = true;
			phase_start(l, PHASE_END, 0);
		} else {
			phase_start(l, PHASE_LOAD, 0);
		}
		break;
	case PHASE_WARM:
		/* Warm-up done: every warm session QUITs; on_close moves on. */
		for (unsigned i = 0; i < l->launched; i++)
			if (l->sess[i].state == S_IDLE)
				sess_enter_state(&l->sess[i], S_QUIT);
		break;
	case PHASE_HOLD:
		l->held = l->ready;
		uv_timer_start(&l->timer, on_hold_settled, SETTLE_MS, 0);
		break;
	default:
		break;
	}
}

static void
next_message(struct sess *s)
{
	struct load *l = s->l;

	if (l->per_session > 0 && s->sent >= l->per_session)
		window_close(l);   /* the first session done ends the steady part */
	if (l->total > 0) {
		if (s->sent > 0)
			l->done++;
		if (l->done >= l->total) {
			window_close(l);   /* the last of -n answered ends the run */
		} else if (l->started >= l->total) {
			sess_enter_state(s, S_QUIT);   /* nothing left to start */
			return;
		}
	}
	if (l->stop)
		sess_enter_state(s, S_QUIT);
	else
		sess_enter_state(s, S_MAIL);
}

static void
sess_fail(struct sess *s, const char *why, int code)
{
	struct load *l = s->l;
	enum sess_state was = s->state;

	if (was == S_DONE)
		return;
	l->session_errors++;
	if (code > 0)
		count_code(l, code);
	if (l->session_errors <= 5)
		fprintf(stderr, "smtpload: session failed (state %d): %s%s%.0d\n", (int)was, why,
		    code > 0 ? ", reply " : "", code);
	sess_enter_state(s, S_DONE);
	if (was < S_READY)
		setup_over(s, false);
	/* A message of -n given up counts as answered, or the run would wait for it. */
	if (l->total > 0 && was >= S_MAIL && was <= S_RSET && ++l->done >= l->total)
		window_close(l);
}

/* sess_enter_state - the one place that changes s->state; sends what the new state sends. */
static void
sess_enter_state(struct sess *s, enum sess_state st)
{
	struct load *l = s->l;

	s->state = st;
	switch (st) {
	case S_EHLO:
	case S_EHLO_TLS:
		s->pipelining = s->starttls = false;
		sess_sendf(s, "EHLO load.bench\r\n");
		break;
	case S_STARTTLS:
		sess_sendf(s, "STARTTLS\r\n");
		break;
	case S_HANDSHAKE:
		/* RFC 3207 4: whatever came after the 220 is dropped unread. */
		buf_reset(&s->in);
		if (conn_start_tls(s->c, l->tls, false, NULL, false) < 0)
			sess_fail(s, "cannot start TLS", 0);
		break;
	case S_AUTH:
		sess_send(s, l->auth_cmd, strlen(l->auth_cmd));
		break;
	case S_READY:
		if (l->phase == PHASE_WARM || l->phase == PHASE_HOLD)
			s->state = S_IDLE;
		setup_over(s, true);
		if (l->phase == PHASE_END && s->state != S_DONE && s->state != S_QUIT)
			sess_enter_state(s, S_QUIT);
		break;
	case S_MAIL:
		s->rcpt = l->rcpt_seq++;
		s->sent++;
		l->started++;
		s->group_ok = true;
		s->got354 = false;
		if (s->pipelining) {
			/* RFC 2920 3.1: DATA may end a group; the message waits for its 354. */
			s->group = 3;
			if (l->rcpt != NULL)
				sess_sendf(s, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", l->from, l->rcpt);
			else
				sess_sendf(s, "MAIL FROM:<%s>\r\nRCPT TO:<user%" PRIu64 "@d%02u.example>\r\nDATA\r\n",
				    l->from, s->rcpt, (unsigned)(s->rcpt % NDOMAINS));
		} else {
			s->group = 1;
			sess_sendf(s, "MAIL FROM:<%s>\r\n", l->from);
		}
		break;
	case S_RCPT:
		if (l->rcpt != NULL)
			sess_sendf(s, "RCPT TO:<%s>\r\n", l->rcpt);
		else
			sess_sendf(s, "RCPT TO:<user%" PRIu64 "@d%02u.example>\r\n", s->rcpt,
			    (unsigned)(s->rcpt % NDOMAINS));
		break;
	case S_DATA:
		sess_sendf(s, "DATA\r\n");
		break;
	case S_BODY:
		s->t_dot = now_ns();
		if (l->unique) {
			sess_send(s, l->msg, l->msg_head);
			sess_sendf(s, "Sequence %" PRIu64 "\r\n", s->rcpt);
			sess_send(s, l->msg + l->msg_head, l->msg_len - l->msg_head);
		} else {
			sess_send(s, l->msg, l->msg_len);
		}
		break;
	case S_RSET:
		sess_sendf(s, "RSET\r\n");
		break;
	case S_QUIT:
		sess_sendf(s, "QUIT\r\n");
		break;
	case S_DONE:
		if (s->c != NULL)
			conn_close(s->c);
		break;
	default:
		break;
	}
}

/* An accepted message: count it, and its latency while the window is open. */
static void
accepted(struct sess *s)
{
	struct load *l = s->l;
	uint64_t t = now_ns();

	l->accepted_total++;
	if (!l->window_open || l->window_closed)
		return;
	l->accepted++;
	if (l->nlat == l->lat_cap) {
		l->lat_cap = l->lat_cap ? l->lat_cap * 2 : 65536;
		l->lat = xreallocarray(l->lat, l->lat_cap, sizeof *l->lat);
	}
	l->lat[l->nlat++] = t - s->t_dot;
}

/* One EHLO line (continuation or last): note the extensions we use. */
static void
ehlo_line(struct sess *s, const char *text, size_t len)
{
	if (len >= 10 && strncasecmp(text, "PIPELINING", 10) == 0)
		s->pipelining = true;
	else if (len >= 8 && strncasecmp(text, "STARTTLS", 8) == 0)
		s->starttls = true;
}

/* A refused transaction step: count it, then RSET before the next message. */
static void
refused(struct sess *s, int code)
{
	count_code(s->l, code);
	s->l->refused++;
	sess_enter_state(s, S_RSET);
}

/* sess_on_reply - a complete reply; what it means depends on the state. */
static void
sess_on_reply(struct sess *s, int code)
{
	struct load *l = s->l;

	switch (s->state) {
	case S_BANNER:
		if (code != 220) {
			sess_fail(s, "banner", code);
			return;
		}
		sess_enter_state(s, l->mode == MODE_TLS ? S_EHLO_TLS : S_EHLO);
		break;
	case S_EHLO:
		if (code != 250) {
			sess_fail(s, "EHLO", code);
			return;
		}
		if (l->mode == MODE_STARTTLS) {
			if (!s->starttls) {
				sess_fail(s, "STARTTLS not offered", 0);
				return;
			}
			sess_enter_state(s, S_STARTTLS);
		} else {
			sess_enter_state(s, l->user != NULL && l->phase == PHASE_SETUP ? S_AUTH : S_READY);
		}
		break;
	case S_STARTTLS:
		if (code != 220) {
			sess_fail(s, "STARTTLS", code);
			return;
		}
		sess_enter_state(s, S_HANDSHAKE);
		break;
	case S_EHLO_TLS:
		if (code != 250) {
			sess_fail(s, "EHLO after TLS", code);
			return;
		}
		sess_enter_state(s, l->user != NULL && l->phase == PHASE_SETUP ? S_AUTH : S_READY);
		break;
	case S_AUTH:
		if (code != 235) {
			sess_fail(s, "AUTH", code);
			return;
		}
		sess_enter_state(s, S_READY);
		break;
	case S_MAIL:
		if (!s->pipelining) {
			if (code != 250) {
				refused(s, code);
				return;
			}
			sess_enter_state(s, S_RCPT);
			break;
		}
		/* Pipelined: MAIL 250, RCPT 250, DATA 354, in that order. */
		if (code == 354) {
			s->got354 = true;
		} else if (code != 250 && code != 251) {
			count_code(l, code);
			s->group_ok = false;
		}
		if (--s->group > 0)
			break;
		if (s->got354) {
			/* Even after a refused MAIL/RCPT: the server waits for a message now. */
			sess_enter_state(s, S_BODY);
		} else {
			l->refused++;
			sess_enter_state(s, S_RSET);
		}
		break;
	case S_RCPT:
		if (code != 250 && code != 251) {
			refused(s, code);
			return;
		}
		sess_enter_state(s, S_DATA);
		break;
	case S_DATA:
		if (code != 354) {
			refused(s, code);
			return;
		}
		sess_enter_state(s, S_BODY);
		break;
	case S_BODY:
		if (code == 250 && s->group_ok) {
			accepted(s);
		} else {
			if (code != 250)
				count_code(l, code);
			l->refused++;
		}
		next_message(s);
		break;
	case S_RSET:
		if (code != 250) {
			sess_fail(s, "RSET", code);
			return;
		}
		next_message(s);
		break;
	case S_QUIT:
		sess_enter_state(s, S_DONE);
		break;
	default:
		/* S_IDLE, S_READY: the server spoke first (a 421 timeout or shutdown). */
		sess_fail(s, "unsolicited reply", code);
		break;
	}
}

static void
on_connect(struct conn *c, int status)
{
	struct sess *s = conn_data(c);

	if (status < 0)
		return;   /* on_close follows with the reason and fails the session */
	if (s->l->mode != MODE_TLS)
		s->state = S_BANNER;
}

static void
on_tls(struct conn *c, int status)
{
	struct sess *s = conn_data(c);

	if (status < 0)
		return;   /* the conn logged why; on_close follows */
	if (s->state == S_CONNECTING)
		s->state = S_BANNER;       /* implicit TLS: the banner comes now */
	else if (s->state == S_HANDSHAKE)
		sess_enter_state(s, S_EHLO_TLS);
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static void
on_read(struct conn *c, const char *data, size_t len)
{
	struct sess *s = conn_data(c);
	const char *line;
	size_t ll;
	bool bare_lf;
	int rc;

	if (s->state == S_DONE || s->state == S_HANDSHAKE)
		return;
	buf_append(&s->in, data, len);
	/* After a 220 to STARTTLS the rest is not read (S_HANDSHAKE). */
	while (s->state != S_DONE && s->state != S_HANDSHAKE) {
		rc = buf_getline(&s->in, REPLY_LINE_MAX, &line, &ll, &bare_lf);
		if (rc == BUF_NEEDMORE)
			break;
		if (rc == BUF_TOOLONG || ll < 3 || line[0] < '2' || line[0] > '5' ||
		    !is_digit(line[1]) || !is_digit(line[2]) ||
		    (ll > 3 && line[3] != ' ' && line[3] != '-')) {
			sess_fail(s, "malformed reply", 0);
			return;
		}
		if ((s->state == S_EHLO || s->state == S_EHLO_TLS) && ll > 4)
			ehlo_line(s, line + 4, ll - 4);
		if (ll > 3 && line[3] == '-')
			continue;
		sess_on_reply(s, (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0'));
	}
}

/* sess_closed - the session's connection is gone (or never was): move on when it was the last. */
static void
sess_closed(struct sess *s)
{
	struct load *l = s->l;

	s->closed = true;
	buf_free(&s->in);
	l->closed++;
	if (l->phase == PHASE_WARM && l->closed == l->n)
		uv_timer_start(&l->timer, on_warm_settled, SETTLE_MS / 2, 0);
	else if (l->phase == PHASE_END && l->closed == l->launched)
		load_done(l);
}

static void
on_close(struct conn *c, int status)
{
	struct sess *s = conn_data(c);

	s->c = NULL;
	if (s->state != S_DONE) {
		char why[128];

		snprintf(why, sizeof why, "connection closed (%s)",
		    status < 0 ? uv_strerror(status) : "by the server");
		sess_fail(s, why, 0);
	}
	sess_closed(s);
}

static const struct conn_ops sess_ops = {
	.on_connect = on_connect,
	.on_read = on_read,
	.on_tls = on_tls,
	.on_close = on_close,
};

static void
sess_start(struct load *l, struct sess *s)
{
	int rc;

	memset(s, 0, sizeof *s);
	s->l = l;
	s->state = S_CONNECTING;
	buf_init(&s->in);
	l->launched++;
	l->setups++;
	rc = conn_connect(&s->c, l->loop, (const struct sockaddr *)&l->addr, NULL, &sess_ops, s);
	if (rc < 0) {
		fprintf(stderr, "smtpload: connect: %s\n", uv_strerror(rc));
		sess_fail(s, "connect", 0);
		sess_closed(s);
		return;
	}
	if (l->mode == MODE_TLS && conn_start_tls(s->c, l->tls, false, NULL, false) < 0)
		sess_fail(s, "cannot start TLS", 0);
}

/* launch_more - start sessions until -C set-ups are in flight. */
static void
launch_more(struct load *l)
{
	while (l->launched < l->n && l->setups < l->window && l->phase != PHASE_END)
		sess_start(l, &l->sess[l->launched]);
}

/* --- phases ------------------------------------------------------------------------ */

static void
on_window_close(uv_timer_t *t)
{
	window_close(t->data);
}

static void
on_window_open(uv_timer_t *t)
{
	struct load *l = t->data;

	l->window_open = true;
	labels_read(l, false, false);
	host_cpu(&l->host_busy0, &l->host_steal0);
	self_cpu(&l->self0, &l->self_sys0);
	l->t_w0 = now_ns();
	uv_timer_start(&l->timer, on_window_close, l->duration_ms, 0);
}

/* window_close - the measured part ends: sample, and let every session QUIT. */
static void
window_close(struct load *l)
{
	if (l->window_closed || l->phase != PHASE_LOAD)
		return;
	l->window_closed = true;
	if (!l->window_open) {
		fprintf(stderr, "smtpload: the load ended before the warm-up did: lower -W or raise -m\n");
		l->failed = true;
	} else {
		l->t_w1 = now_ns();
		self_cpu(&l->self1, &l->self_sys1);
		host_cpu(&l->host_busy1, &l->host_steal1);
		labels_read(l, true, false);
	}
	phase_start(l, PHASE_END, 0);
}

static void
on_held(uv_timer_t *t)
{
	phase_start(t->data, PHASE_END, 0);
}

static void
on_warm_settled(uv_timer_t *t)
{
	struct load *l = t->data;

	phase_start(l, PHASE_HOLD, l->idle_want);
}

/* The held connections are up and the server had time to settle: read memory. */
static void
on_hold_settled(uv_timer_t *t)
{
	struct load *l = t->data;
	char name[96];

	labels_read(l, true, true);
	figure(l, "idle_connections", l->held, "count", 0);
	figure(l, "idle_setup_seconds", (double)(l->t_ready - l->t_setup) / 1e9, "s", 2);
	for (unsigned i = 0; i < l->nlabels; i++) {
		const struct label *lb = &l->labels[i];

		snprintf(name, sizeof name, "%s_rss_before", lb->name);
		figure(l, name, lb->t0.rss_kb, "KiB", 0);
		snprintf(name, sizeof name, "%s_rss_after", lb->name);
		figure(l, name, lb->t1.rss_kb, "KiB", 0);
		snprintf(name, sizeof name, "%s_procs", lb->name);
		figure(l, name, lb->t1.nprocs, "count", 0);
		if (l->held == 0)
			continue;
		snprintf(name, sizeof name, "%s_rss_per_conn", lb->name);
		figure(l, name, (lb->t1.rss_kb - lb->t0.rss_kb) * 1024 / l->held, "B", 0);
		snprintf(name, sizeof name, "%s_pss_per_conn", lb->name);
		figure(l, name, (lb->t1.pss_kb - lb->t0.pss_kb) * 1024 / l->held, "B", 0);
	}
	figure(l, "self_rss", proc_kb((int)getpid(), "status", "VmRSS"), "KiB", 0);
	if (l->hold_ms > 0)
		fprintf(stderr, "smtpload: holding %u connections for %" PRIu64 " s (SIGUSR1 ends it)\n",
		    l->held, l->hold_ms / 1000);
	uv_timer_start(&l->timer, on_held, l->hold_ms, 0);
}

/* phase_start - go to phase ph, starting n sessions for the phases that set some up. */
static void
phase_start(struct load *l, enum phase ph, unsigned n)
{
	l->phase = ph;
	switch (ph) {
	case PHASE_SETUP:
	case PHASE_WARM:
	case PHASE_HOLD:
		if (ph == PHASE_HOLD)
			labels_read(l, false, true);
		free(l->sess);
		l->sess = xcalloc(n, sizeof *l->sess);
		l->n = n;
		l->launched = l->setups = l->ready = l->closed = l->setup_failed = 0;
		l->t_ready = 0;
		l->t_setup = now_ns();
		launch_more(l);
		break;
	case PHASE_LOAD:
		figure(l, "setup_seconds", (double)(l->t_ready - l->t_setup) / 1e9, "s", 2);
		uv_timer_start(&l->timer, on_window_open, l->warmup_ms, 0);
		for (unsigned i = 0; i < l->n; i++)
			if (l->sess[i].state == S_READY)
				next_message(&l->sess[i]);
		break;
	case PHASE_END:
		l->stop = true;
		uv_timer_stop(&l->timer);
		/* Idle and ready sessions QUIT now; the others after their step. */
		for (unsigned i = 0; i < l->launched; i++)
			if (l->sess[i].state == S_IDLE || l->sess[i].state == S_READY)
				sess_enter_state(&l->sess[i], S_QUIT);
		if (l->closed == l->launched)
			load_done(l);
		break;
	}
}

static void
on_deadline(uv_timer_t *t)
{
	struct load *l = t->data;

	if (l->phase == PHASE_END && l->stop && l->failed) {
		/* Second time: the sessions did not close in CLOSE_MS; cut them. */
		for (unsigned i = 0; i < l->launched; i++)
			if (l->sess[i].c != NULL)
				conn_abort(l->sess[i].c);
		return;
	}
	fprintf(stderr, "smtpload: deadline: phase %d, %u of %u sessions set up, %" PRIu64
	    " messages accepted\n", (int)l->phase, l->ready, l->n, l->accepted_total);
	l->failed = true;
	window_close(l);
	phase_start(l, PHASE_END, 0);
	uv_timer_start(&l->deadline, on_deadline, CLOSE_MS, 0);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	struct load *l = h->data;

	(void)signum;
	if (l->phase == PHASE_LOAD && l->window_open)
		window_close(l);
	else if (l->phase != PHASE_END)
		phase_start(l, PHASE_END, 0);
}

/* --- results --------------------------------------------------------------------------- */

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n), in ms. */
static double
percentile_ms(const uint64_t *v, size_t n, unsigned pct)
{
	size_t rank = (n * pct + 99) / 100;

	if (n == 0)
		return 0;
	if (rank == 0)
		rank = 1;
	return (double)v[rank - 1] / 1e6;
}

static void
report_load(struct load *l)
{
	double wall = (double)(l->t_w1 - l->t_w0) / 1e9;
	double n = (double)l->accepted;
	char name[96];

	figure(l, "sessions", l->n, "count", 0);
	figure(l, "sessions_ready", l->ready, "count", 0);
	figure(l, "message_size", (double)l->msg_size, "B", 0);
	if (l->window_open && l->window_closed && wall > 0) {
		figure(l, "window_seconds", wall, "s", 2);
		figure(l, "accepted", n, "count", 0);
		figure(l, "rate", n / wall, "msg/s", 0);
		qsort(l->lat, l->nlat, sizeof *l->lat, cmp_u64);
		figure(l, "lat_p50", percentile_ms(l->lat, l->nlat, 50), "ms", 2);
		figure(l, "lat_p99", percentile_ms(l->lat, l->nlat, 99), "ms", 2);
		figure(l, "lat_max", percentile_ms(l->lat, l->nlat, 100), "ms", 2);
		if (n > 0) {
			figure(l, "self_cpu_per_msg", (l->self1 - l->self0) * 1e3 / n, "ms", 3);
			figure(l, "self_cpu_util", (l->self1 - l->self0) * 100 / wall, "%", 0);
		}
		for (unsigned i = 0; i < l->nlabels; i++) {
			const struct label *lb = &l->labels[i];
			double cpu = (lb->t1.user + lb->t1.sys) - (lb->t0.user + lb->t0.sys);
			double sys = lb->t1.sys - lb->t0.sys;

			if (n > 0) {
				snprintf(name, sizeof name, "%s_cpu_per_msg", lb->name);
				figure(l, name, cpu * 1e3 / n, "ms", 3);
				snprintf(name, sizeof name, "%s_cpu_sys_per_msg", lb->name);
				figure(l, name, sys * 1e3 / n, "ms", 3);
			}
			snprintf(name, sizeof name, "%s_cpu_util", lb->name);
			figure(l, name, cpu * 100 / wall, "%", 0);
			/* /proc/PID/io dies with a process: only a single long-lived one counts right. */
			if (n > 0 && lb->t0.nprocs == 1 && lb->t1.nprocs == 1) {
				snprintf(name, sizeof name, "%s_reads_per_msg", lb->name);
				figure(l, name, (lb->t1.syscr - lb->t0.syscr) / n, "count", 2);
				snprintf(name, sizeof name, "%s_writes_per_msg", lb->name);
				figure(l, name, (lb->t1.syscw - lb->t0.syscw) / n, "count", 2);
			}
			snprintf(name, sizeof name, "%s_procs", lb->name);
			figure(l, name, lb->t1.nprocs, "count", 0);
		}
	}
	if (l->window_open && l->window_closed && wall > 0) {
		/* The machine as a whole, in % of one CPU like the figures above. */
		double other = (l->host_busy1 - l->host_busy0) - (l->self1 - l->self0);

		for (unsigned i = 0; i < l->nlabels; i++)
			other -= (l->labels[i].t1.user + l->labels[i].t1.sys) -
			    (l->labels[i].t0.user + l->labels[i].t0.sys);
		figure(l, "host_cpu_util", (l->host_busy1 - l->host_busy0) * 100 / wall, "%", 0);
		/* Busy time that is neither ours nor a -P tree's: other work, the kernel's threads. */
		figure(l, "other_cpu_util", other > 0 ? other * 100 / wall : 0, "%", 0);
		figure(l, "host_steal_util", (l->host_steal1 - l->host_steal0) * 100 / wall, "%", 0);
	}
	figure(l, "accepted_total", (double)l->accepted_total, "count", 0);
	figure(l, "refused_total", (double)l->refused, "count", 0);
	figure(l, "session_errors", (double)l->session_errors, "count", 0);
}

static void
report_codes(struct load *l)
{
	char name[32];

	for (int i = 0; i < CODES; i++) {
		if (l->codes[i] == 0)
			continue;
		snprintf(name, sizeof name, "reply_%03d", i);
		figure(l, name, (double)l->codes[i], "count", 0);
	}
}

/* --- main ------------------------------------------------------------------------------- */

static void
usage(void)
{
	fprintf(stderr,
	    "usage: smtpload -p PORT [-H HOST] [-T plain|starttls|tls] [-u USER [-w PASSWORD]]\n"
	    "                [-c SESSIONS] [-m MESSAGES] [-n TOTAL] [-d SECONDS] [-W SECONDS]\n"
	    "                [-s SIZE] [-f FROM] [-R RCPT] [-U] [-N NAME] [-P LABEL=PID]... [-t SECONDS]\n"
	    "       smtpload -i CONNECTIONS -p PORT [-H HOST] [-T ...] [-N NAME]\n"
	    "                [-P LABEL=PID]... [-k SECONDS] [-C WINDOW] [-t SECONDS]\n");
}

static int
parse_num(const char *s, int opt, uint64_t min, uint64_t max, uint64_t *out)
{
	if (str_to_u64(s, out) < 0 || *out < min || *out > max) {
		fprintf(stderr, "smtpload: -%c needs a number from %" PRIu64 " to %" PRIu64 "\n",
		    opt, min, max);
		return -1;
	}
	return 0;
}

static int
parse_label(struct load *l, const char *arg)
{
	const char *eq = strchr(arg, '=');
	struct label *lb;
	uint64_t pid;

	if (l->nlabels == LABELS_MAX || eq == NULL || eq == arg ||
	    (size_t)(eq - arg) >= sizeof lb->name || str_to_u64(eq + 1, &pid) < 0 ||
	    pid == 0 || pid > INT32_MAX) {
		fprintf(stderr, "smtpload: -P wants LABEL=PID (at most %d)\n", LABELS_MAX);
		return -1;
	}
	lb = &l->labels[l->nlabels++];
	str_copyn(lb->name, arg, (size_t)(eq - arg), sizeof lb->name);
	lb->pid = (int)pid;
	return 0;
}

/* AUTH PLAIN with an initial response (RFC 4954 4, RFC 4616 2): \0user\0password. */
static int
make_auth(struct load *l)
{
	unsigned char raw[600], b64[820];
	size_t ul = strlen(l->user), pl = strlen(l->password);
	int n;

	if (ul + pl + 2 > sizeof raw) {
		fprintf(stderr, "smtpload: user name or password too long\n");
		return -1;
	}
	raw[0] = '\0';
	memcpy(raw + 1, l->user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, l->password, pl);
	n = EVP_EncodeBlock(b64, raw, (int)(ul + pl + 2));
	explicit_bzero(raw, sizeof raw);
	snprintf(l->auth_cmd, sizeof l->auth_cmd, "AUTH PLAIN %.*s\r\n", n, (char *)b64);
	explicit_bzero(b64, sizeof b64);
	return 0;
}

/* Raise RLIMIT_NOFILE to the hard limit; the number of connections that fit. */
static unsigned
raise_nofile(struct load *l, unsigned want)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)want + WARM_CONNS + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return want;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	figure(l, "nofile_limit", (double)rl.rlim_cur, "count", 0);
	if (rl.rlim_cur >= need)
		return want;
	fprintf(stderr, "smtpload: RLIMIT_NOFILE is %llu (hard %llu): %u connections need %llu;"
	    " holding %llu instead (raise the hard limit: ulimit -Hn, limits.conf)\n",
	    (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, want,
	    (unsigned long long)need, (unsigned long long)(rl.rlim_cur - WARM_CONNS - 64));
	return rl.rlim_cur > WARM_CONNS + 64 ? (unsigned)(rl.rlim_cur - WARM_CONNS - 64) : 0;
}

int
main(int argc, char **argv)
{
	static struct load l;
	char err[512];
	uint64_t v;
	int c;

	l.host = "127.0.0.1";
	l.mode = MODE_STARTTLS;
	l.nsess = 50;
	l.window = 200;
	l.duration_ms = 10000;
	l.warmup_ms = 2000;
	l.deadline_ms = 600000;
	l.msg_size = 5120;
	l.from = "bench@shop.example";
	l.prefix = "load";
	while ((c = getopt(argc, argv, "p:H:T:u:w:c:m:n:d:W:s:f:R:UN:P:t:i:k:C:")) != -1) {
		switch (c) {
		case 'p':
			if (parse_num(optarg, c, 1, 65535, &v) < 0)
				return 2;
			l.port = (uint16_t)v;
			break;
		case 'H':
			l.host = optarg;
			break;
		case 'T':
			if (strcmp(optarg, "plain") == 0)
				l.mode = MODE_PLAIN;
			else if (strcmp(optarg, "starttls") == 0)
				l.mode = MODE_STARTTLS;
			else if (strcmp(optarg, "tls") == 0)
				l.mode = MODE_TLS;
			else {
				usage();
				return 2;
			}
			break;
		case 'u':
			l.user = optarg;
			break;
		case 'w':
			l.password = optarg;
			break;
		case 'c':
			if (parse_num(optarg, c, 1, 100000, &v) < 0)
				return 2;
			l.nsess = (unsigned)v;
			break;
		case 'm':
			if (parse_num(optarg, c, 0, UINT32_MAX, &l.per_session) < 0)
				return 2;
			break;
		case 'n':
			if (parse_num(optarg, c, 0, UINT32_MAX, &l.total) < 0)
				return 2;
			break;
		case 'd':
		case 'W':
		case 't':
		case 'k':
			if (parse_num(optarg, c, c == 'd' || c == 't' ? 1 : 0, 86400, &v) < 0)
				return 2;
			*(c == 'd' ? &l.duration_ms : c == 'W' ? &l.warmup_ms :
			    c == 't' ? &l.deadline_ms : &l.hold_ms) = v * 1000;
			break;
		case 's':
			if (parse_num(optarg, c, 256, 64 << 20, &l.msg_size) < 0)
				return 2;
			break;
		case 'f':
			l.from = optarg;
			break;
		case 'R':
			l.rcpt = optarg;
			break;
		case 'U':
			l.unique = true;
			break;
		case 'N':
			l.prefix = optarg;
			break;
		case 'P':
			if (parse_label(&l, optarg) < 0)
				return 2;
			break;
		case 'i':
			if (parse_num(optarg, c, 1, 1000000, &v) < 0)
				return 2;
			l.idle_want = (unsigned)v;
			break;
		case 'C':
			if (parse_num(optarg, c, 1, 100000, &v) < 0)
				return 2;
			l.window = (unsigned)v;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (optind != argc || l.port == 0) {
		usage();
		return 2;
	}
	if (l.user != NULL && l.password == NULL)
		l.password = getenv("SMTPLOAD_PASSWORD");
	if (l.user != NULL && (l.password == NULL || make_auth(&l) < 0)) {
		fprintf(stderr, "smtpload: -u needs a password: -w or $SMTPLOAD_PASSWORD\n");
		return 2;
	}
	if (uv_ip4_addr(l.host, l.port, (struct sockaddr_in *)&l.addr) != 0 &&
	    uv_ip6_addr(l.host, l.port, (struct sockaddr_in6 *)&l.addr) != 0) {
		fprintf(stderr, "smtpload: -H wants an IP address, not \"%s\"\n", l.host);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_WARN);
	if (l.mode != MODE_PLAIN && tlsctx_client(&l.tls, err, sizeof err) < 0) {
		fprintf(stderr, "smtpload: %s\n", err);
		return 1;
	}
	l.msg = make_message(l.from, (size_t)l.msg_size, &l.msg_len);
	{
		const char *end = memmem(l.msg, l.msg_len, "\r\n\r\n", 4);

		l.msg_head = end != NULL ? (size_t)(end - l.msg) + 4 : 0;
	}
	l.loop = uv_default_loop();
	uv_timer_init(l.loop, &l.deadline);
	uv_timer_init(l.loop, &l.timer);
	l.deadline.data = l.timer.data = &l;
	uv_signal_init(l.loop, &l.sigint);
	uv_signal_init(l.loop, &l.sigterm);
	uv_signal_init(l.loop, &l.sigusr1);
	l.sigint.data = l.sigterm.data = l.sigusr1.data = &l;
	uv_signal_start(&l.sigint, on_signal, SIGINT);
	uv_signal_start(&l.sigterm, on_signal, SIGTERM);
	uv_signal_start(&l.sigusr1, on_signal, SIGUSR1);
	uv_timer_start(&l.deadline, on_deadline, l.deadline_ms, 0);

	if (l.idle_want > 0) {
		figure(&l, "idle_connections_wanted", l.idle_want, "count", 0);
		l.idle_want = raise_nofile(&l, l.idle_want);
		if (l.idle_want == 0) {
			l.failed = true;
			phase_start(&l, PHASE_END, 0);
		} else {
			phase_start(&l, PHASE_WARM, WARM_CONNS);
		}
	} else {
		raise_nofile(&l, l.nsess);
		phase_start(&l, PHASE_SETUP, l.nsess);
	}
	uv_run(l.loop, UV_RUN_DEFAULT);

	if (l.idle_want == 0)
		report_load(&l);
	else
		figure(&l, "session_errors", (double)l.session_errors, "count", 0);
	report_codes(&l);
	if (l.session_errors > 0 || l.refused > 0)
		l.failed = true;
	if (l.idle_want == 0 && l.accepted == 0)
		l.failed = true;
	if (l.idle_want > 0 && l.held < l.idle_want)
		l.failed = true;
	free(l.sess);
	free(l.lat);
	free(l.msg);
	if (l.tls != NULL)
		SSL_CTX_free(l.tls);
	if (uv_loop_close(l.loop) != 0) {
		fprintf(stderr, "smtpload: handles left open on the loop\n");
		l.failed = true;
	}
	return l.failed ? 1 : 0;
}
