/*
 * imapload - IMAP client load for `make bench`
 * (tests/bench/run-mailclient-bench.sh runs it against kurierd and
 * Dovecot, the same way for both).
 *
 *   imapload append -p PORT -u USER [-w PASSWORD] [-H HOST] [-t SECONDS] FILE...
 *   imapload fetch  -p PORT -u USER [-w PASSWORD] [-H HOST] [-t SECONDS]
 *                   [-n COUNT] [-C PID[,PID...]] [-r WORD] [-a WORD]
 *   imapload idle   -p PORT -c CONNECTIONS [-u USER [-w PASSWORD]]
 *                   [-H HOST] [-k SECONDS] [-t SECONDS]
 *
 *   -p, -H  the server (127.0.0.1), implicit TLS (RFC 8314) always;
 *           the certificate is not checked (bench servers, self-signed)
 *   -u, -w  LOGIN (RFC 3501); the password may come from
 *           $IMAPLOAD_PASSWORD instead of -w.  Bench accounts only.
 *   -t      deadline of the whole run in seconds (900); every socket
 *           read and write also gives up after TLSC_TIMEOUT_S
 *   -n      fetch: only a warm-up, LOGIN, SELECT and FETCH of the first
 *           COUNT messages' bodies, no figures but messages
 *   -C      fetch: the server's processes; the CPU time (user + system,
 *           of each and every process under it, and of those it reaped)
 *           is read from /proc before and after every step
 *   -r, -a  fetch: the words of SEARCH TEXT, one in few messages (-r,
 *           "somethingrare") and one in all (-a, "kurierbench")
 *   -c      idle: connections to open and hold
 *   -u      idle: every connection logs in as USER, SELECTs INBOX and
 *           enters IDLE (RFC 2177), as a mail client keeps a session
 *           open; without -u the connections stop after the greeting
 *   -k      idle: hold this long at most (600), or until stdin closes
 *
 * append: one session; LOGIN, CAPABILITY, then every FILE APPENDed to
 * INBOX in order, one command at a time, each waited for (its tagged
 * OK).  A file's bare LFs are sent as CRLF.  With LITERAL+ (RFC 7888)
 * in the server's capabilities the literal is non-synchronising
 * ({n+}), else the client waits for the server's "+" before sending it.
 * Figures: append_messages, append_bytes, append_literal_plus (1 or 0),
 * append_s, append_msg_per_s.
 *
 * fetch: one session, one command at a time, each timed from its first
 * octet written to its tagged OK read:
 *   login_select_ms  greeting, LOGIN and SELECT INBOX
 *   fetch_env_ms     FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE): one
 *                    FETCH response per message, each with RFC822.SIZE
 *   fetch_each_s     FETCH n BODY.PEEK[] for every n in turn; each
 *                    body's literal must have the octets RFC822.SIZE gave
 *   fetch_all_s      FETCH 1:* BODY.PEEK[] as one command; the same check
 *   search_rare_ms, search_all_ms   SEARCH TEXT of either word
 * then LOGOUT.  With -C, NAME_cpu_ms for each step too.  The checks'
 * figures are printed for the caller to compare between servers:
 * messages, size_sum (RFC822.SIZE summed), search_rare_hits,
 * search_all_hits.
 *
 * idle: connects CONNECTIONS times in turn, each through the TLS
 * handshake and the greeting (and, with -u, LOGIN, SELECT and IDLE's
 * continuation), keeps them all open, prints "held N" and waits until
 * stdin closes or -k runs out, then closes them all without LOGOUT.
 * Our RLIMIT_NOFILE is raised to the hard limit first.  The caller
 * measures the server's memory while we hold.
 *
 * Every response is read whole: a line ending in a literal's size
 * ({n} or {n+}) goes on after the literal's n octets, which are
 * skipped, not kept; a response's text without its literals is at
 * most RESP_MAX octets.  Exit status 0 when every step was answered as
 * expected, 1 otherwise (the reason on stderr), 2 on bad usage.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/xmalloc.h"
#include "tests/bench/tlsc.h"

#define DEADLINE_S 900           /* the whole run, by default */
#define HOLD_S 600               /* idle: hold at most this long by default */
#define RESP_MAX (8u << 20)      /* a response's text, literals left out */
#define LITERAL_MAX (1ull << 32) /* a literal we accept to skip */
#define MSG_MAX (64u << 20)      /* a file to APPEND, at most */
#define CMD_MAX 512
#define TAG_MAX 16
#define CPU_ROOTS_MAX 8
#define PROC_STAT_MAX 1024
#define RARE_WORD "somethingrare"
#define ALL_WORD "kurierbench"

/* An IMAP connection: the shared TLS client connection, and the next tag. */
struct ic {
	struct tlsc t;
	unsigned tagno;
};

/* One response: its text with each literal's octets left out. */
struct resp {
	char *text;
	size_t len, cap;
	unsigned nlit;           /* literals in it */
	uint64_t litbytes;       /* their octets */
	uint64_t lastlit;        /* the last one's octets */
};

const char *tlsc_prog = "imapload";
#define die tlsc_die
static pid_t cpu_roots[CPU_ROOTS_MAX];
static unsigned ncpu_roots;


static void
usage(void)
{
	fprintf(stderr,
	    "usage: imapload append -p PORT -u USER [-w PASSWORD] [-H HOST] [-t SECONDS] FILE...\n"
	    "       imapload fetch -p PORT -u USER [-w PASSWORD] [-H HOST] [-t SECONDS] [-n COUNT]\n"
	    "                      [-C PID[,PID...]] [-r WORD] [-a WORD]\n"
	    "       imapload idle -p PORT -c CONNECTIONS [-u USER [-w PASSWORD]] [-H HOST] [-k SECONDS] [-t SECONDS]\n");
	exit(2);
}

/* --- the server's CPU time -------------------------------------------------------- */

struct proc {
	pid_t pid, ppid;
	uint64_t ticks;          /* utime + stime + cutime + cstime */
};

/*
 * read_proc - pid's parent and CPU ticks from /proc/PID/stat; false when
 * it is gone.  The fields are counted after the command name's ")",
 * which may hold spaces.
 */
static bool
read_proc(pid_t pid, struct proc *p)
{
	char path[64], buf[PROC_STAT_MAX], *s;
	unsigned long long f[15];
	FILE *fp;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fp = fopen(path, "r");
	if (fp == NULL)
		return false;
	n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	s = strrchr(buf, ')');
	if (s == NULL)
		return false;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime cutime cstime */
	if (sscanf(s + 2, "%*c %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
	    &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9],
	    &f[10], &f[11], &f[12], &f[13]) != 14)
		return false;
	p->pid = pid;
	p->ppid = (pid_t)f[0];
	p->ticks = f[10] + f[11] + f[12] + f[13];
	return true;
}

/* tree_ticks - the CPU ticks of the trees of the -C processes (0 without). */
static uint64_t
tree_ticks(void)
{
	struct proc *procs = NULL;
	size_t n = 0, cap = 0;
	bool *in;
	uint64_t total = 0;
	struct dirent *de;
	DIR *d;
	bool grew;

	if (ncpu_roots == 0)
		return 0;
	d = opendir("/proc");
	if (d == NULL)
		die("/proc: %s", strerror(errno));
	while ((de = readdir(d)) != NULL) {
		struct proc p;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		if (!read_proc((pid_t)atoi(de->d_name), &p))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			procs = xreallocarray(procs, cap, sizeof *procs);
		}
		procs[n++] = p;
	}
	closedir(d);
	in = xcalloc(n + 1, sizeof *in);
	for (size_t i = 0; i < n; i++)
		for (unsigned r = 0; r < ncpu_roots; r++)
			if (procs[i].pid == cpu_roots[r])
				in[i] = true;
	/* Down the tree until nothing more joins (a few levels at most). */
	do {
		grew = false;
		for (size_t i = 0; i < n; i++) {
			if (in[i])
				continue;
			for (size_t j = 0; j < n; j++)
				if (in[j] && procs[j].pid == procs[i].ppid) {
					in[i] = true;
					grew = true;
					break;
				}
		}
	} while (grew);
	for (size_t i = 0; i < n; i++)
		if (in[i])
			total += procs[i].ticks;
	free(in);
	free(procs);
	return total;
}

static double
ticks_ms(uint64_t t0, uint64_t t1)
{
	return (double)(t1 - t0) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static void
parse_pids(const char *arg)
{
	char *copy = xstrdup(arg), *tok, *save = NULL, *end;

	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		long v = strtol(tok, &end, 10);

		if (*end != '\0' || v <= 0 || ncpu_roots == CPU_ROOTS_MAX)
			usage();
		cpu_roots[ncpu_roots++] = (pid_t)v;
	}
	free(copy);
}

/* --- connection -------------------------------------------------------------------- */





/*
 * ic_cmd - send "TAG command" with CRLF; the tag (a1, a2, ...) goes to
 * tag (TAG_MAX octets).
 */
static void
ic_cmd(struct ic *c, char *tag, const char *fmt, ...)
{
	char cmd[CMD_MAX];
	va_list ap;
	int t, n;

	c->tagno++;
	t = snprintf(tag, TAG_MAX, "a%u", c->tagno);
	memcpy(cmd, tag, (size_t)t);
	cmd[t++] = ' ';
	va_start(ap, fmt);
	n = vsnprintf(cmd + t, sizeof cmd - (size_t)t - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof cmd - (size_t)t - 2)
		die("command too long");
	n += t;
	memcpy(cmd + n, "\r\n", 2);
	tlsc_write(&c->t, cmd, (size_t)n + 2);
}

/* --- responses --------------------------------------------------------------------- */

static void
resp_add(struct resp *r, const char *p, size_t n)
{
	if (r->len + n + 1 > RESP_MAX)
		die("a response over %u octets (literals left out)", RESP_MAX);
	if (r->len + n + 1 > r->cap) {
		while (r->len + n + 1 > r->cap)
			r->cap = r->cap ? r->cap * 2 : 4096;
		r->text = xreallocarray(r->text, r->cap, 1);
	}
	memcpy(r->text + r->len, p, n);
	r->len += n;
	r->text[r->len] = '\0';
}

/* ic_skip - read and drop n octets. */
static void
ic_skip(struct ic *c, uint64_t n)
{
	while (n > 0) {
		size_t avail;

		if (c->t.start == c->t.end)
			tlsc_fill(&c->t);
		avail = c->t.end - c->t.start;
		if (avail > n)
			avail = (size_t)n;
		c->t.start += avail;
		n -= avail;
	}
}

/*
 * literal_at_end - the size of the literal r's text ends with ({n} or
 * {n+}), or -1 when it does not end with one.
 */
static int64_t
literal_at_end(const struct resp *r)
{
	size_t i = r->len;
	uint64_t v = 0, scale = 1;

	if (i < 3 || r->text[i - 1] != '}')
		return -1;
	i--;
	if (r->text[i - 1] == '+')
		i--;
	if (!isdigit((unsigned char)r->text[i - 1]))
		return -1;
	while (i > 0 && isdigit((unsigned char)r->text[i - 1])) {
		v += (uint64_t)(r->text[i - 1] - '0') * scale;
		scale *= 10;
		if (v > LITERAL_MAX || scale > LITERAL_MAX * 10)
			die("a literal over %llu octets", (unsigned long long)LITERAL_MAX);
		i--;
	}
	if (i == 0 || r->text[i - 1] != '{')
		return -1;
	return (int64_t)v;
}

/*
 * ic_resp - read one whole response into r (reset first): its lines
 * joined, CRLFs and the literals' octets left out (counted in nlit,
 * litbytes and lastlit).
 */
static void
ic_resp(struct ic *c, struct resp *r)
{
	int64_t lit;

	r->len = 0;
	r->nlit = 0;
	r->litbytes = 0;
	r->lastlit = 0;
	resp_add(r, "", 0);
	for (;;) {
		char *p, *nl;
		size_t n;

		if (c->t.start == c->t.end)
			tlsc_fill(&c->t);
		p = c->t.in + c->t.start;
		nl = memchr(p, '\n', c->t.end - c->t.start);
		if (nl == NULL) {
			resp_add(r, p, c->t.end - c->t.start);
			c->t.start = c->t.end;
			continue;
		}
		n = (size_t)(nl - p);
		resp_add(r, p, n);
		c->t.start += n + 1;
		if (r->len > 0 && r->text[r->len - 1] == '\r')
			r->text[--r->len] = '\0';
		lit = literal_at_end(r);
		if (lit < 0)
			return;
		ic_skip(c, (uint64_t)lit);
		r->nlit++;
		r->litbytes += (uint64_t)lit;
		r->lastlit = (uint64_t)lit;
	}
}

/* tagged_ok - whether r is tag's tagged response; dies unless it is OK. */
static bool
tagged_ok(const struct resp *r, const char *tag, const char *what)
{
	size_t t = strlen(tag);

	if (strncmp(r->text, tag, t) != 0 || r->text[t] != ' ')
		return false;
	if (strncmp(r->text + t + 1, "OK", 2) != 0)
		die("%s: %s", what, r->text);
	return true;
}

/* wait_ok - read responses until tag's; dies unless it is OK. */
static void
wait_ok(struct ic *c, struct resp *r, const char *tag, const char *what)
{
	do
		ic_resp(c, r);
	while (!tagged_ok(r, tag, what));
}

/*
 * fetch_msgno - n when r is "* n FETCH (...", else 0.
 */
static uint64_t
fetch_msgno(const struct resp *r)
{
	uint64_t n;
	char word[8];

	if (sscanf(r->text, "* %" SCNu64 " %7s", &n, word) != 2 || strcmp(word, "FETCH") != 0)
		return 0;
	return n;
}

/*
 * item_number - the number after the data item name (e.g. "RFC822.SIZE")
 * at the top level of r's text, outside quoted strings; -1 without it.
 */
static int64_t
item_number(const struct resp *r, const char *name)
{
	size_t nl = strlen(name);
	bool quoted = false;

	for (size_t i = 0; i < r->len; i++) {
		char ch = r->text[i];

		if (quoted) {
			if (ch == '\\' && i + 1 < r->len)
				i++;
			else if (ch == '"')
				quoted = false;
			continue;
		}
		if (ch == '"') {
			quoted = true;
			continue;
		}
		if ((i == 0 || r->text[i - 1] == ' ' || r->text[i - 1] == '(') &&
		    strncmp(r->text + i, name, nl) == 0 && r->text[i + nl] == ' ')
			return strtoll(r->text + i + nl + 1, NULL, 10);
	}
	return -1;
}

/* login - greeting, LOGIN (quoted strings), and CAPABILITY; true with LITERAL+. */
static bool
login(struct ic *c, struct resp *r, const char *user, const char *password)
{
	char tag[TAG_MAX];
	bool literal_plus = false;

	ic_resp(c, r);
	if (strncmp(r->text, "* OK", 4) != 0)
		die("greeting: %s", r->text);
	if (strpbrk(user, "\"\\") != NULL || strpbrk(password, "\"\\") != NULL)
		die("a user or password with \" or \\ is not for the bench");
	ic_cmd(c, tag, "LOGIN \"%s\" \"%s\"", user, password);
	wait_ok(c, r, tag, "LOGIN");
	ic_cmd(c, tag, "CAPABILITY");
	for (;;) {
		ic_resp(c, r);
		if (tagged_ok(r, tag, "CAPABILITY"))
			break;
		if (strncmp(r->text, "* CAPABILITY ", 13) == 0 &&
		    (strstr(r->text, " LITERAL+ ") != NULL ||
		    (r->len >= 9 && strcmp(r->text + r->len - 9, " LITERAL+") == 0)))
			literal_plus = true;
	}
	return literal_plus;
}

/* select_inbox - SELECT INBOX; returns EXISTS. */
static uint64_t
select_inbox(struct ic *c, struct resp *r)
{
	char tag[TAG_MAX];
	uint64_t n, exists = 0;
	char word[8];

	ic_cmd(c, tag, "SELECT INBOX");
	for (;;) {
		ic_resp(c, r);
		if (tagged_ok(r, tag, "SELECT"))
			break;
		if (sscanf(r->text, "* %" SCNu64 " %7s", &n, word) == 2 && strcmp(word, "EXISTS") == 0)
			exists = n;
	}
	return exists;
}

/* --- append ------------------------------------------------------------------------ */

/*
 * load_crlf - path's content with every bare LF made CRLF, in a new
 * buffer; its length to *len.  Dies on a file it cannot read or over
 * MSG_MAX.
 */
static char *
load_crlf(const char *path, size_t *len)
{
	struct stat st;
	char *raw, *out;
	size_t n, o = 0;
	FILE *fp = fopen(path, "rb");

	if (fp == NULL || fstat(fileno(fp), &st) < 0)
		die("%s: %s", path, strerror(errno));
	if (st.st_size <= 0 || (uint64_t)st.st_size > MSG_MAX)
		die("%s: empty or over %u octets", path, MSG_MAX);
	raw = xmalloc((size_t)st.st_size);
	n = fread(raw, 1, (size_t)st.st_size, fp);
	fclose(fp);
	if (n != (size_t)st.st_size)
		die("%s: short read", path);
	out = xmalloc(n * 2);
	for (size_t i = 0; i < n; i++) {
		if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = raw[i];
	}
	free(raw);
	*len = o;
	return out;
}

/* run_append - the append mode (see the top of the file). */
static int
run_append(SSL_CTX *ctx, const struct sockaddr_in *addr, const char *user,
    const char *password, char **files, int nfiles)
{
	struct resp r = { 0 };
	struct ic c;
	char tag[TAG_MAX];
	uint64_t t0, bytes = 0;
	bool plus;
	double secs;

	tlsc_open(&c.t, ctx, addr);
	plus = login(&c, &r, user, password);
	t0 = tlsc_now_ns();
	for (int i = 0; i < nfiles; i++) {
		size_t len;
		char *msg = load_crlf(files[i], &len);

		ic_cmd(&c, tag, "APPEND INBOX {%zu%s}", len, plus ? "+" : "");
		if (!plus) {
			ic_resp(&c, &r);
			if (r.text[0] != '+')
				die("APPEND %s: %s", files[i], r.text);
		}
		tlsc_write(&c.t, msg, len);
		tlsc_write(&c.t, "\r\n", 2);
		free(msg);
		wait_ok(&c, &r, tag, "APPEND");
		bytes += len;
	}
	secs = tlsc_ms_since(t0) / 1000;
	ic_cmd(&c, tag, "LOGOUT");
	wait_ok(&c, &r, tag, "LOGOUT");
	tlsc_close(&c.t);
	free(r.text);

	printf("append_messages %d msgs\n", nfiles);
	printf("append_bytes %" PRIu64 " B\n", bytes);
	printf("append_literal_plus %d bool\n", plus ? 1 : 0);
	printf("append_s %.3f s\n", secs);
	printf("append_msg_per_s %.0f msg/s\n", (double)nfiles / secs);
	return 0;
}

/* --- fetch ------------------------------------------------------------------------- */

/*
 * step_begin / step_end - a step's wall time and, with -C, server CPU,
 * printed as NAME_ms (NAME_s with secs) and NAME_cpu_ms; step_end
 * returns the milliseconds.
 */
struct step {
	uint64_t t0, cpu0;
};

static void
step_begin(struct step *st)
{
	st->cpu0 = tree_ticks();
	st->t0 = tlsc_now_ns();
}

static double
step_end(const struct step *st, const char *name, bool secs)
{
	double ms = tlsc_ms_since(st->t0);
	uint64_t cpu1 = tree_ticks();

	if (secs)
		printf("%s_s %.3f s\n", name, ms / 1000);
	else
		printf("%s_ms %.2f ms\n", name, ms);
	if (ncpu_roots > 0)
		printf("%s_cpu_ms %.0f ms\n", name, ticks_ms(st->cpu0, cpu1));
	return ms;
}

/*
 * body_check - r is a FETCH of one message's BODY[]: one literal of
 * sizes[n]'s octets.  Returns n.
 */
static uint64_t
body_check(const struct resp *r, const uint64_t *sizes, uint64_t count)
{
	uint64_t n = fetch_msgno(r);

	if (n == 0 || n > count)
		die("FETCH BODY.PEEK[]: an answer for no message asked: %.200s", r->text);
	if (r->nlit != 1 || r->lastlit != sizes[n])
		die("FETCH %" PRIu64 " BODY.PEEK[]: %u literals, %" PRIu64 " octets; RFC822.SIZE %" PRIu64,
		    n, r->nlit, r->lastlit, sizes[n]);
	return n;
}

/*
 * search_hits - SEARCH TEXT "word"; the number of messages in the
 * answer.
 */
static uint64_t
search_hits(struct ic *c, struct resp *r, const char *word)
{
	char tag[TAG_MAX];
	uint64_t hits = 0;

	ic_cmd(c, tag, "SEARCH TEXT \"%s\"", word);
	for (;;) {
		ic_resp(c, r);
		if (tagged_ok(r, tag, "SEARCH"))
			break;
		if (strncmp(r->text, "* SEARCH", 8) == 0)
			for (const char *p = r->text + 8; *p != '\0'; p++)
				if (isdigit((unsigned char)*p) && p[-1] == ' ')
					hits++;
	}
	return hits;
}

/* run_fetch - the fetch mode (see the top of the file). */
static int
run_fetch(SSL_CTX *ctx, const struct sockaddr_in *addr, const char *user,
    const char *password, uint64_t warm, const char *rare, const char *all)
{
	struct resp r = { 0 };
	struct ic c;
	struct step st;
	char tag[TAG_MAX];
	uint64_t n, got, *sizes, size_sum = 0, bytes, hits_rare, hits_all;
	double each_ms, all_ms;

	tlsc_open(&c.t, ctx, addr);
	step_begin(&st);
	login(&c, &r, user, password);
	n = select_inbox(&c, &r);
	if (n == 0)
		die("the INBOX of %s is empty", user);
	if (warm > 0) {
		if (warm > n)
			warm = n;
		ic_cmd(&c, tag, "FETCH 1:%" PRIu64 " BODY.PEEK[]", warm);
		wait_ok(&c, &r, tag, "FETCH");
		ic_cmd(&c, tag, "LOGOUT");
		wait_ok(&c, &r, tag, "LOGOUT");
		tlsc_close(&c.t);
		free(r.text);
		printf("messages %" PRIu64 " msgs\n", n);
		return 0;
	}
	step_end(&st, "login_select", false);
	sizes = xcalloc(n + 1, sizeof *sizes);

	step_begin(&st);
	got = 0;
	ic_cmd(&c, tag, "FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)");
	for (;;) {
		uint64_t m;
		int64_t sz;

		ic_resp(&c, &r);
		if (tagged_ok(&r, tag, "FETCH ENVELOPE"))
			break;
		m = fetch_msgno(&r);
		if (m == 0)
			continue;
		sz = item_number(&r, "RFC822.SIZE");
		if (m > n || sizes[m] != 0 || sz <= 0 || item_number(&r, "UID") <= 0)
			die("FETCH ENVELOPE: a bad or repeated answer: %.200s", r.text);
		if (strstr(r.text, "ENVELOPE (") == NULL)
			die("FETCH ENVELOPE: no ENVELOPE: %.200s", r.text);
		sizes[m] = (uint64_t)sz;
		size_sum += (uint64_t)sz;
		got++;
	}
	step_end(&st, "fetch_env", false);
	if (got != n)
		die("FETCH 1:* ENVELOPE: %" PRIu64 " answers for %" PRIu64 " messages", got, n);

	step_begin(&st);
	bytes = 0;
	for (uint64_t i = 1; i <= n; i++) {
		bool seen = false;

		ic_cmd(&c, tag, "FETCH %" PRIu64 " BODY.PEEK[]", i);
		for (;;) {
			ic_resp(&c, &r);
			if (tagged_ok(&r, tag, "FETCH BODY.PEEK[]"))
				break;
			if (fetch_msgno(&r) == 0)
				continue;
			if (body_check(&r, sizes, n) != i || seen)
				die("FETCH %" PRIu64 " BODY.PEEK[]: another answer: %.200s", i, r.text);
			seen = true;
			bytes += r.lastlit;
		}
		if (!seen)
			die("FETCH %" PRIu64 " BODY.PEEK[]: no answer", i);
	}
	each_ms = step_end(&st, "fetch_each", true);
	if (bytes != size_sum)
		die("FETCH n BODY.PEEK[]: %" PRIu64 " octets, RFC822.SIZE summed %" PRIu64, bytes, size_sum);

	step_begin(&st);
	bytes = 0;
	got = 0;
	ic_cmd(&c, tag, "FETCH 1:* BODY.PEEK[]");
	for (;;) {
		ic_resp(&c, &r);
		if (tagged_ok(&r, tag, "FETCH 1:* BODY.PEEK[]"))
			break;
		if (fetch_msgno(&r) == 0)
			continue;
		body_check(&r, sizes, n);
		bytes += r.lastlit;
		got++;
	}
	all_ms = step_end(&st, "fetch_all", true);
	if (got != n || bytes != size_sum)
		die("FETCH 1:* BODY.PEEK[]: %" PRIu64 " answers, %" PRIu64 " octets; %" PRIu64
		    " messages, RFC822.SIZE summed %" PRIu64, got, bytes, n, size_sum);

	step_begin(&st);
	hits_rare = search_hits(&c, &r, rare);
	step_end(&st, "search_rare", false);
	step_begin(&st);
	hits_all = search_hits(&c, &r, all);
	step_end(&st, "search_all", false);

	ic_cmd(&c, tag, "LOGOUT");
	wait_ok(&c, &r, tag, "LOGOUT");
	tlsc_close(&c.t);
	free(r.text);
	free(sizes);

	printf("messages %" PRIu64 " msgs\n", n);
	printf("size_sum %" PRIu64 " B\n", size_sum);
	printf("fetch_each_msg_per_s %.0f msg/s\n", (double)n * 1000 / each_ms);
	printf("fetch_all_msg_per_s %.0f msg/s\n", (double)n * 1000 / all_ms);
	printf("search_rare_hits %" PRIu64 " msgs\n", hits_rare);
	printf("search_all_hits %" PRIu64 " msgs\n", hits_all);
	return 0;
}

/* --- idle -------------------------------------------------------------------------- */

/*
 * run_idle - the idle mode: hold nconn connections, greeted (and logged
 * in as user, INBOX selected, in IDLE, when user is set), until stdin
 * closes or hold_s.
 */
static int
run_idle(SSL_CTX *ctx, const struct sockaddr_in *addr, uint64_t nconn,
    const char *user, const char *password, unsigned hold_s)
{
	struct ic *conns;
	struct resp r = { 0 };
	char tag[TAG_MAX];
	uint64_t t0 = tlsc_now_ns();

	tlsc_raise_nofile(nconn);
	conns = xcalloc(nconn, sizeof *conns);
	for (uint64_t i = 0; i < nconn; i++) {
		struct ic *c = &conns[i];

		tlsc_open(&c->t, ctx, addr);
		if (user != NULL) {
			login(c, &r, user, password);
			select_inbox(c, &r);
			ic_cmd(c, tag, "IDLE");
			do
				ic_resp(c, &r);
			while (r.text[0] == '*');
			if (r.text[0] != '+')
				die("IDLE: %s", r.text);
		} else {
			ic_resp(c, &r);
			if (strncmp(r.text, "* OK", 4) != 0)
				die("greeting: %s", r.text);
		}
		/* Nothing more is read: the buffer goes, so our memory stays small. */
		free(c->t.in);
		c->t.in = NULL;
	}
	free(r.text);
	printf("held %" PRIu64 "\n", nconn);
	printf("setup_s %.1f s\n", tlsc_ms_since(t0) / 1000);
	fflush(stdout);

	tlsc_hold(hold_s);
	for (uint64_t i = 0; i < nconn; i++)
		tlsc_close(&conns[i].t);
	free(conns);
	return 0;
}

static unsigned long
num(const char *s, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v > max)
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	const char *mode, *host = "127.0.0.1", *port = NULL, *user = NULL;
	const char *password = getenv("IMAPLOAD_PASSWORD");
	const char *rare = RARE_WORD, *all = ALL_WORD;
	unsigned deadline = DEADLINE_S, hold = HOLD_S;
	uint64_t count = 0, nconn = 0;
	struct sockaddr_in addr;
	SSL_CTX *ctx;
	int opt, rc;

	if (argc < 2)
		usage();
	mode = argv[1];
	argc--;
	argv++;
	while ((opt = getopt(argc, argv, "p:H:u:w:n:t:c:k:C:r:a:")) != -1) {
		switch (opt) {
		case 'p': port = optarg; break;
		case 'H': host = optarg; break;
		case 'u': user = optarg; break;
		case 'w': password = optarg; break;
		case 'n': count = num(optarg, UINT32_MAX); break;
		case 't': deadline = (unsigned)num(optarg, UINT32_MAX); break;
		case 'c': nconn = num(optarg, UINT32_MAX); break;
		case 'k': hold = (unsigned)num(optarg, UINT32_MAX); break;
		case 'C': parse_pids(optarg); break;
		case 'r': rare = optarg; break;
		case 'a': all = optarg; break;
		default: usage();
		}
	}
	if (port == NULL)
		usage();
	if (user != NULL && password == NULL)
		die("-u needs -w or $IMAPLOAD_PASSWORD");
	if (strpbrk(rare, "\"\\") != NULL || strpbrk(all, "\"\\") != NULL)
		die("a search word with \" or \\");
	tlsc_resolve(&addr, host, port);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, tlsc_on_alarm);
	alarm(deadline);
	ctx = tlsc_ctx();
	if (strcmp(mode, "append") == 0) {
		if (user == NULL || optind == argc)
			usage();
		rc = run_append(ctx, &addr, user, password, argv + optind, argc - optind);
	} else if (strcmp(mode, "fetch") == 0) {
		if (user == NULL || optind != argc)
			usage();
		rc = run_fetch(ctx, &addr, user, password, count, rare, all);
	} else if (strcmp(mode, "idle") == 0) {
		if (nconn == 0 || optind != argc)
			usage();
		rc = run_idle(ctx, &addr, nconn, user, password, hold);
	} else {
		usage();
	}
	SSL_CTX_free(ctx);
	return rc;
}
