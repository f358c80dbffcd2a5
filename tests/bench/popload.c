/*
 * popload - POP3 client load for `make bench`
 * (tests/bench/run-mailclient-bench.sh runs it against kurierd and
 * Dovecot, the same way for both).
 *
 *   popload retr -p PORT -u USER [-w PASSWORD] [-H HOST] [-P DEPTH]
 *                [-n COUNT] [-t SECONDS]
 *   popload idle -p PORT -c CONNECTIONS [-u PREFIX [-w PASSWORD]]
 *                [-H HOST] [-k SECONDS] [-t SECONDS]
 *
 *   -p, -H  the server (127.0.0.1), implicit TLS (RFC 8314) always;
 *           the certificate is not checked (bench servers, self-signed)
 *   -u, -w  USER/PASS (RFC 1939); the password may come from
 *           $POPLOAD_PASSWORD instead of -w.  Bench accounts only.
 *   -P      retr: RETR commands in flight at once (1: one command at a
 *           time, as typical clients do; more needs the server's CAPA
 *           to list PIPELINING, RFC 2449) (1)
 *   -n      retr: retrieve only the first COUNT messages (0: all) (0)
 *   -t      deadline of the whole run in seconds (900); every socket
 *           read and write also gives up after TLSC_TIMEOUT_S
 *   -c      idle: connections to open and hold
 *   -u      idle: log in as PREFIX1 .. PREFIXN, one user per connection
 *           (a POP3 maildrop takes one session at a time); without -u
 *           the connections stop after the greeting
 *   -k      idle: hold this long at most (600), or until stdin closes
 *
 * retr: one session.  Greeting, CAPA, USER/PASS, STAT, then LIST and
 * UIDL (each timed, multi-line answers read to the end), then RETR of
 * every message in order, timed from the first command written to the
 * last byte of the last answer, then QUIT (nothing is deleted).  Every
 * answer must be +OK; a RETR answer must have at least the octets LIST
 * gave for the message (dot-stuffing only adds).  Figures, one "name
 * value unit" per line: login_ms, list_ms, uidl_ms, retr_messages,
 * retr_bytes (as received, with the terminating lines), retr_s,
 * retr_msg_per_s, retr_mb_per_s.
 *
 * idle: connects CONNECTIONS times in turn, each through the TLS
 * handshake and the greeting (and, with -u, USER/PASS), keeps them all
 * open, prints "held N" and waits until stdin closes or -k runs out,
 * then closes them all without QUIT.  Our RLIMIT_NOFILE is raised to
 * the hard limit first; fewer than CONNECTIONS descriptors is an error.
 * The caller measures the server's memory while we hold.
 *
 * Exit status 0 when every step was answered as expected, 1 otherwise
 * (the reason on stderr), 2 on bad usage.
 */
#include <arpa/inet.h>
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
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/xmalloc.h"
#include "tests/bench/tlsc.h"

#define DEADLINE_S 900           /* the whole run, by default */
#define HOLD_S 600               /* idle: hold at most this long by default */
#define LINE_MAX_LEN 4096        /* a status or listing line, at most */
#define CMD_MAX 128
#define DEPTH_MAX 1024

#define pc tlsc /* a POP3 connection is the shared TLS client connection */
#define die tlsc_die

const char *tlsc_prog = "popload";

static void
usage(void)
{
	fprintf(stderr,
	    "usage: popload retr -p PORT -u USER [-w PASSWORD] [-H HOST] [-P DEPTH] [-n COUNT] [-t SECONDS]\n"
	    "       popload idle -p PORT -c CONNECTIONS [-u PREFIX [-w PASSWORD]] [-H HOST] [-k SECONDS] [-t SECONDS]\n");
	exit(2);
}




/*
 * pc_line - the next line without its CRLF into line (NUL-terminated,
 * at most LINE_MAX_LEN octets), its length returned; *raw gets the
 * octets it took on the wire, CRLF included.  Dies on a longer line.
 */
static size_t
pc_line(struct pc *c, char *line, size_t *raw)
{
	char *nl;
	size_t len;

	for (;;) {
		nl = memchr(c->in + c->start, '\n', c->end - c->start);
		if (nl != NULL)
			break;
		if (c->end - c->start > LINE_MAX_LEN)
			die("a line over %d octets", LINE_MAX_LEN);
		tlsc_fill(c);
	}
	len = (size_t)(nl - (c->in + c->start));
	*raw = len + 1;
	if (len > 0 && c->in[c->start + len - 1] == '\r')
		len--;
	if (len > LINE_MAX_LEN)
		die("a line over %d octets", LINE_MAX_LEN);
	memcpy(line, c->in + c->start, len);
	line[len] = '\0';
	c->start += *raw;
	return len;
}

/*
 * pc_skip_body - read a multi-line body to its terminating "." line
 * without copying it; returns the octets read, that line included.
 * Lines may be of any length here (a message's lines are not ours to
 * bound).
 */
static uint64_t
pc_skip_body(struct pc *c)
{
	uint64_t total = 0;
	bool bol = true;  /* at the beginning of a line */
	char *p, *nl;
	size_t avail;

	for (;;) {
		if (c->start == c->end) {
			c->start = 0;
			c->end = 0;
			tlsc_fill(c);
		}
		p = c->in + c->start;
		avail = c->end - c->start;
		if (bol) {
			/* The terminator: ".\r\n" at a line's beginning. */
			if (avail < 3 && p[0] == '.') {
				tlsc_fill(c);  /* keeps the partial line */
				continue;
			}
			if (avail >= 3 && memcmp(p, ".\r\n", 3) == 0) {
				c->start += 3;
				return total + 3;
			}
		}
		nl = memchr(p, '\n', avail);
		if (nl == NULL) {
			total += avail;
			c->start = c->end;
			bol = false;
			continue;
		}
		total += (size_t)(nl - p) + 1;
		c->start += (size_t)(nl - p) + 1;
		bol = true;
	}
}


/* pc_cmd - send one command line (CRLF added). */
static void
pc_cmd(struct pc *c, const char *fmt, ...)
{
	char cmd[CMD_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof cmd - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof cmd - 2)
		die("command too long");
	memcpy(cmd + n, "\r\n", 2);
	tlsc_write(c, cmd, (size_t)n + 2);
}

/* pc_ok - read a status line; dies unless it is +OK.  what names the step. */
static void
pc_ok(struct pc *c, const char *what)
{
	char line[LINE_MAX_LEN + 1];
	size_t raw;

	pc_line(c, line, &raw);
	if (strncmp(line, "+OK", 3) != 0)
		die("%s: %s", what, line);
}

/* login - greeting, then USER/PASS. */
static void
login(struct pc *c, const char *user, const char *password)
{
	pc_ok(c, "greeting");
	pc_cmd(c, "USER %s", user);
	pc_ok(c, "USER");
	pc_cmd(c, "PASS %s", password);
	pc_ok(c, "PASS");
}

/*
 * run_retr - the retr mode (see the top of the file): one session,
 * LIST, UIDL, then RETR of nwant messages (0: all) with up to depth
 * commands in flight.
 */
static int
run_retr(SSL_CTX *ctx, const struct sockaddr_in *addr, const char *user,
    const char *password, unsigned depth, uint64_t nwant)
{
	char line[LINE_MAX_LEN + 1];
	struct pc c;
	uint64_t t0, n = 0, sent = 0, got = 0, bytes = 0, *sizes;
	uint64_t msgno, sz, total_size;
	size_t raw;
	bool pipelining = false;
	double login_ms, list_ms, uidl_ms, retr_s;

	tlsc_open(&c, ctx, addr);
	t0 = tlsc_now_ns();
	pc_ok(&c, "greeting");
	pc_cmd(&c, "CAPA");
	pc_ok(&c, "CAPA");
	while (pc_line(&c, line, &raw), strcmp(line, ".") != 0)
		if (strcmp(line, "PIPELINING") == 0)
			pipelining = true;
	if (depth > 1 && !pipelining)
		die("-P %u: the server does not offer PIPELINING", depth);
	pc_cmd(&c, "USER %s", user);
	pc_ok(&c, "USER");
	pc_cmd(&c, "PASS %s", password);
	pc_ok(&c, "PASS");
	login_ms = tlsc_ms_since(t0);

	pc_cmd(&c, "STAT");
	pc_line(&c, line, &raw);
	if (sscanf(line, "+OK %" SCNu64 " %" SCNu64, &n, &total_size) != 2)
		die("STAT: %s", line);
	if (n == 0)
		die("the maildrop of %s is empty", user);
	sizes = xcalloc(n + 1, sizeof *sizes);

	t0 = tlsc_now_ns();
	pc_cmd(&c, "LIST");
	pc_ok(&c, "LIST");
	for (uint64_t i = 1;; i++) {
		pc_line(&c, line, &raw);
		if (strcmp(line, ".") == 0) {
			if (i != n + 1)
				die("LIST gave %" PRIu64 " messages, STAT %" PRIu64, i - 1, n);
			break;
		}
		if (sscanf(line, "%" SCNu64 " %" SCNu64, &msgno, &sz) != 2 || msgno != i || i > n)
			die("LIST line %" PRIu64 ": %s", i, line);
		sizes[i] = sz;
	}
	list_ms = tlsc_ms_since(t0);

	t0 = tlsc_now_ns();
	pc_cmd(&c, "UIDL");
	pc_ok(&c, "UIDL");
	for (uint64_t i = 1;; i++) {
		pc_line(&c, line, &raw);
		if (strcmp(line, ".") == 0) {
			if (i != n + 1)
				die("UIDL gave %" PRIu64 " messages, STAT %" PRIu64, i - 1, n);
			break;
		}
		if (sscanf(line, "%" SCNu64, &msgno) != 1 || msgno != i)
			die("UIDL line %" PRIu64 ": %s", i, line);
	}
	uidl_ms = tlsc_ms_since(t0);

	if (nwant == 0 || nwant > n)
		nwant = n;
	t0 = tlsc_now_ns();
	while (got < nwant) {
		uint64_t body;

		while (sent < nwant && sent - got < depth) {
			sent++;
			pc_cmd(&c, "RETR %" PRIu64, sent);
		}
		got++;
		pc_line(&c, line, &raw);
		if (strncmp(line, "+OK", 3) != 0)
			die("RETR %" PRIu64 ": %s", got, line);
		body = pc_skip_body(&c);
		if (body < sizes[got])
			die("RETR %" PRIu64 ": %" PRIu64 " octets, LIST said %" PRIu64,
			    got, body, sizes[got]);
		bytes += raw + body;
	}
	retr_s = tlsc_ms_since(t0) / 1000;
	pc_cmd(&c, "QUIT");
	pc_ok(&c, "QUIT");
	tlsc_close(&c);
	free(sizes);

	printf("messages %" PRIu64 " msgs\n", n);
	printf("maildrop_bytes %" PRIu64 " B\n", total_size);
	printf("login_ms %.2f ms\n", login_ms);
	printf("list_ms %.2f ms\n", list_ms);
	printf("uidl_ms %.2f ms\n", uidl_ms);
	printf("retr_messages %" PRIu64 " msgs\n", got);
	printf("retr_bytes %" PRIu64 " B\n", bytes);
	printf("retr_s %.3f s\n", retr_s);
	printf("retr_msg_per_s %.0f msg/s\n", (double)got / retr_s);
	printf("retr_mb_per_s %.1f MB/s\n", (double)bytes / retr_s / 1e6);
	return 0;
}

/*
 * run_idle - the idle mode: hold nconn connections, greeted (and logged
 * in as prefix1.. when prefix is set), until stdin closes or hold_s.
 */
static int
run_idle(SSL_CTX *ctx, const struct sockaddr_in *addr, uint64_t nconn,
    const char *prefix, const char *password, unsigned hold_s)
{
	struct pc *conns;
	char user[CMD_MAX];
	uint64_t t0 = tlsc_now_ns();

	tlsc_raise_nofile(nconn);
	conns = xcalloc(nconn, sizeof *conns);
	for (uint64_t i = 0; i < nconn; i++) {
		tlsc_open(&conns[i], ctx, addr);
		if (prefix != NULL) {
			snprintf(user, sizeof user, "%s%" PRIu64, prefix, i + 1);
			login(&conns[i], user, password);
		} else {
			pc_ok(&conns[i], "greeting");
		}
		/* Nothing more is read: the buffer goes, so our memory stays small. */
		free(conns[i].in);
		conns[i].in = NULL;
	}
	printf("held %" PRIu64 "\n", nconn);
	printf("setup_s %.1f s\n", tlsc_ms_since(t0) / 1000);
	fflush(stdout);

	tlsc_hold(hold_s);
	for (uint64_t i = 0; i < nconn; i++)
		tlsc_close(&conns[i]);
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
	const char *password = getenv("POPLOAD_PASSWORD");
	unsigned depth = 1, deadline = DEADLINE_S, hold = HOLD_S;
	uint64_t count = 0, nconn = 0;
	struct sockaddr_in addr;
	SSL_CTX *ctx;
	int opt, rc;

	if (argc < 2)
		usage();
	mode = argv[1];
	argc--;
	argv++;
	while ((opt = getopt(argc, argv, "p:H:u:w:P:n:t:c:k:")) != -1) {
		switch (opt) {
		case 'p': port = optarg; break;
		case 'H': host = optarg; break;
		case 'u': user = optarg; break;
		case 'w': password = optarg; break;
		case 'P': depth = (unsigned)num(optarg, DEPTH_MAX); break;
		case 'n': count = num(optarg, UINT32_MAX); break;
		case 't': deadline = (unsigned)num(optarg, UINT32_MAX); break;
		case 'c': nconn = num(optarg, UINT32_MAX); break;
		case 'k': hold = (unsigned)num(optarg, UINT32_MAX); break;
		default: usage();
		}
	}
	if (port == NULL || optind != argc || depth == 0)
		usage();
	if (user != NULL && password == NULL)
		die("-u needs -w or $POPLOAD_PASSWORD");
	tlsc_resolve(&addr, host, port);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, tlsc_on_alarm);
	alarm(deadline);
	ctx = tlsc_ctx();
	if (strcmp(mode, "retr") == 0) {
		if (user == NULL)
			usage();
		rc = run_retr(ctx, &addr, user, password, depth, count);
	} else if (strcmp(mode, "idle") == 0) {
		if (nconn == 0)
			usage();
		rc = run_idle(ctx, &addr, nconn, user, password, hold);
	} else {
		usage();
	}
	SSL_CTX_free(ctx);
	return rc;
}
