/*
 * sinkmx - a fast SMTP sink for the delivery benchmark
 * (tests/bench/run-deliver-bench.sh points kurier's and Postfix's
 * outbound mail at it).
 *
 *   sinkmx -p PORT [-H ADDR] [-n NAME] [-S STATSFILE] [-i MS] [-D COUNT]
 *          [-w DIR] [-C CERT -K KEY] [-z SIZE] [-t SECONDS] [-q]
 *
 *   -p, -H  listen on ADDR:PORT (127.0.0.1); port 0: the kernel picks one,
 *           printed as "sinkmx_port N" on stdout and in the stats file
 *   -n      the name in the greeting and the EHLO reply (sinkmx.bench)
 *   -S      stats file: rewritten (to FILE.tmp, then renamed) at most every
 *           -i milliseconds (200) while its figures change, on SIGUSR1 and
 *           at exit; "name value" lines, see stats_write()
 *   -D      check that every message carries exactly COUNT DKIM-Signature
 *           header fields (a count of the header section's fields, no
 *           cryptographic verification); messages that do not are counted
 *           as dkim_bad and the first few are logged.  The a= tag of each
 *           signature is tallied (dkim_rsa, dkim_ed25519, dkim_other)
 *   -w      also write each message, dot-unstuffed, to DIR/PID-SEQ.eml
 *           (off by default; the write blocks the loop: for inspection,
 *           not for measuring)
 *   -C, -K  offer STARTTLS (RFC 3207) with this PEM certificate chain and
 *           key
 *   -z      the SIZE announced (RFC 1870); larger messages get 552 (50M)
 *   -t      close sessions idle this many seconds (300; 0: never)
 *   -q      print nothing on stdout but the port line
 *
 * The server.  One thread, one libuv loop, any number of connections
 * (RLIMIT_NOFILE is raised to the hard limit).  It greets with 220 and
 * offers PIPELINING (RFC 2920), 8BITMIME (RFC 6152), SIZE,
 * ENHANCEDSTATUSCODES and, with -C/-K, STARTTLS.  MAIL, RCPT and DATA are
 * accepted in pipelined groups: every complete command of one socket
 * read is answered, and the replies go out in one write.  Every sender
 * and recipient is accepted; RSET, NOOP, QUIT, VRFY and HELP are
 * answered.  The message is scanned for the terminating "." line without
 * being copied, unless -D needs its header section or -w the whole
 * message.
 *
 * Counters (stats file, SIGUSR1 and exit): messages and recipients
 * accepted, message bytes (unstuffed), connections, TLS sessions and
 * messages received over TLS, the wall-clock times of the first and the
 * last accepted message in ms since the epoch (CLOCK_REALTIME, to the
 * microsecond), and from them the rate.  SIGTERM
 * or SIGINT stop the sink: the listener closes, open sessions are cut,
 * the counters are printed and written once more.
 *
 * Exit status: 0, or 1 when the sink could not start or (with -D) a
 * message had the wrong number of signatures; 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/conn.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/str.h"
#include "core/tlsctx.h"
#include "core/xmalloc.h"

#define SINK_LINE_MAX 4096            /* command line, RFC 5321 4.5.3.1.4 allows 512 */
#define SINK_HDR_MAX (256 * 1024)     /* header section kept for the DKIM count */
#define SINK_OUT_HIGH (1024 * 1024)   /* stop reading while this much output waits */
#define SINK_RCPT_MAX 100000          /* recipients per transaction */
#define SINK_BAD_LOGGED 5             /* messages with the wrong signature count logged */
#define SINK_SWEEP_MS 1000

enum sess_state {
	ST_CMD,       /* reading commands */
	ST_DATA,      /* reading the message after 354 */
	ST_CLOSING,   /* QUIT answered or cut: nothing more is read */
};

/* Where the DATA scanner is within a line (dot-stuffing, RFC 5321 4.5.2). */
enum data_state {
	DS_BOL,       /* at the start of a line */
	DS_MID,       /* inside a line */
	DS_DOT,       /* a line began with "." */
	DS_DOTCR,     /* a line began with ".\r" */
};

struct sink;

struct sess {
	struct sink *k;
	struct conn *c;
	struct sess *prev, *next;    /* the sink's list of open sessions */
	enum sess_state state;
	enum data_state dstate;
	bool helo, mail, tls, reading;
	unsigned rcpts;
	uint64_t last_active;        /* uv_now() of the last read */
	struct buf in, out;
	/* The message under way. */
	uint64_t msize;
	bool too_big;
	bool hdr_done;
	size_t hdr_line;             /* where the current header line starts in hdr */
	struct buf hdr;              /* header section (-D) */
	struct buf msg;              /* the whole message (-w) */
};

struct sink {
	uv_loop_t *loop;
	struct listener *lis;
	SSL_CTX *tls;
	const char *name, *stats_path, *dir;
	uint64_t size_max, idle_ms, stats_ms;
	int dkim_want;               /* -1: no check */
	bool quiet, stopping;
	uint16_t port;

	struct sess *sessions;
	uv_timer_t stats_timer, sweep_timer;
	uv_signal_t sigusr1, sigterm, sigint;

	/* Counters. */
	uint64_t messages, recipients, bytes, too_big;
	uint64_t conns, conns_open, conns_max, conns_failed;
	uint64_t tls_sessions, messages_tls;
	uint64_t dkim_ok, dkim_bad, dkim_rsa, dkim_ed25519, dkim_other;
	double first_ms, last_ms;
	uint64_t written;            /* stats_write() saw this many messages */
	uint64_t conns_written;
	uint64_t seq;
};

static void sess_process(struct sess *s);
static void sess_flush(struct sess *s);

static double
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* --- counters ------------------------------------------------------------------ */

/* The rate from the first to the last message: intervals over time. */
static double
sink_rate(const struct sink *k)
{
	double span = k->last_ms - k->first_ms;

	return k->messages > 1 && span > 0 ? (double)(k->messages - 1) * 1e3 / span : 0;
}

static double
self_cpu_ms(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/*
 * stats_write - the counters as "name value" lines to the -S file,
 * written to FILE.tmp and renamed, so a reader never sees half a file.
 */
static void
stats_write(struct sink *k)
{
	char tmp[4096];
	FILE *f;

	k->written = k->messages;
	k->conns_written = k->conns;
	if (k->stats_path == NULL)
		return;
	if (snprintf(tmp, sizeof tmp, "%s.tmp", k->stats_path) >= (int)sizeof tmp) {
		log_warn("sinkmx", "stats_path_too_long", "path=%s", k->stats_path);
		return;
	}
	if ((f = fopen(tmp, "w")) == NULL) {
		log_warn("sinkmx", "stats_open_failed", "path=%s error=%s", tmp, strerror(errno));
		return;
	}
	fprintf(f,
	    "port %u\n"
	    "messages %" PRIu64 "\n"
	    "recipients %" PRIu64 "\n"
	    "bytes %" PRIu64 "\n"
	    "too_big %" PRIu64 "\n"
	    "connections %" PRIu64 "\n"
	    "connections_open %" PRIu64 "\n"
	    "connections_max %" PRIu64 "\n"
	    "tls_sessions %" PRIu64 "\n"
	    "messages_tls %" PRIu64 "\n"
	    "first_ms %.3f\n"
	    "last_ms %.3f\n"
	    "span_ms %.3f\n"
	    "rate %.1f\n"
	    "dkim_want %d\n"
	    "dkim_ok %" PRIu64 "\n"
	    "dkim_bad %" PRIu64 "\n"
	    "dkim_rsa %" PRIu64 "\n"
	    "dkim_ed25519 %" PRIu64 "\n"
	    "dkim_other %" PRIu64 "\n"
	    "cpu_ms %.1f\n"
	    "stopped %d\n",
	    (unsigned)k->port, k->messages, k->recipients, k->bytes, k->too_big,
	    k->conns, k->conns_open, k->conns_max, k->tls_sessions, k->messages_tls,
	    k->first_ms, k->last_ms,
	    k->messages > 0 ? k->last_ms - k->first_ms : 0, sink_rate(k),
	    k->dkim_want, k->dkim_ok, k->dkim_bad, k->dkim_rsa, k->dkim_ed25519,
	    k->dkim_other, self_cpu_ms(), k->stopping ? 1 : 0);
	if (fclose(f) != 0 || rename(tmp, k->stats_path) != 0)
		log_warn("sinkmx", "stats_write_failed", "path=%s error=%s", k->stats_path,
		    strerror(errno));
}

static void
stats_print(struct sink *k)
{
	if (k->quiet)
		return;
	printf("sinkmx: messages=%" PRIu64 " recipients=%" PRIu64 " bytes=%" PRIu64
	    " connections=%" PRIu64 " open=%" PRIu64 " max_open=%" PRIu64 " tls_sessions=%" PRIu64
	    " messages_tls=%" PRIu64 " rate=%.1f/s span_ms=%.1f", k->messages, k->recipients,
	    k->bytes, k->conns, k->conns_open, k->conns_max, k->tls_sessions, k->messages_tls,
	    sink_rate(k),
	    k->messages > 0 ? k->last_ms - k->first_ms : 0);
	if (k->dkim_want >= 0)
		printf(" dkim_want=%d dkim_ok=%" PRIu64 " dkim_bad=%" PRIu64 " dkim_rsa=%" PRIu64
		    " dkim_ed25519=%" PRIu64 " dkim_other=%" PRIu64, k->dkim_want, k->dkim_ok,
		    k->dkim_bad, k->dkim_rsa, k->dkim_ed25519, k->dkim_other);
	printf(" cpu_ms=%.1f\n", self_cpu_ms());
	fflush(stdout);
}

static void
on_stats_timer(uv_timer_t *t)
{
	struct sink *k = t->data;

	if (k->messages != k->written || k->conns != k->conns_written)
		stats_write(k);
}

/* --- DKIM-Signature count --------------------------------------------------------- */

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * dkim_tally_alg - find the a= tag in one DKIM-Signature field value
 * (RFC 6376 3.5: tag=value pairs separated by ";", with folding white
 * space anywhere around them) and count its algorithm.
 */
static void
dkim_tally_alg(struct sink *k, const char *v, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t semi = i, eq, ns, ne, vs, ve;

		while (semi < len && v[semi] != ';')
			semi++;
		for (ns = i; ns < semi && is_wsp(v[ns]); ns++)
			;
		for (eq = ns; eq < semi && v[eq] != '='; eq++)
			;
		for (ne = eq; ne > ns && is_wsp(v[ne - 1]); ne--)
			;
		if (eq < semi && ne - ns == 1 && (v[ns] == 'a' || v[ns] == 'A')) {
			for (vs = eq + 1; vs < semi && is_wsp(v[vs]); vs++)
				;
			for (ve = semi; ve > vs && is_wsp(v[ve - 1]); ve--)
				;
			if (ve - vs == 10 && strncasecmp(v + vs, "rsa-sha256", 10) == 0)
				k->dkim_rsa++;
			else if (ve - vs == 14 && strncasecmp(v + vs, "ed25519-sha256", 14) == 0)
				k->dkim_ed25519++;
			else
				k->dkim_other++;
			return;
		}
		i = semi + 1;
	}
	k->dkim_other++;   /* no a= tag */
}

/*
 * dkim_count - the DKIM-Signature fields of a header section (RFC 5322
 * 2.2: a field starts at the beginning of a line, continuation lines
 * start with white space); each one's algorithm is tallied.
 */
static unsigned
dkim_count(struct sink *k, const char *h, size_t len)
{
	static const char name[] = "DKIM-Signature";
	const size_t nl = sizeof name - 1;
	unsigned n = 0;
	size_t i = 0;

	while (i < len) {
		const char *lf = memchr(h + i, '\n', len - i);
		size_t eol = lf != NULL ? (size_t)(lf - h) + 1 : len;
		size_t j = i + nl;

		if (len - i > nl && strncasecmp(h + i, name, nl) == 0) {
			while (j < eol && (h[j] == ' ' || h[j] == '\t'))
				j++;
			if (j < eol && h[j] == ':') {
				size_t end = eol;

				/* The field goes on over folded lines. */
				while (end < len && (h[end] == ' ' || h[end] == '\t')) {
					const char *lf2 = memchr(h + end, '\n', len - end);

					end = lf2 != NULL ? (size_t)(lf2 - h) + 1 : len;
				}
				n++;
				dkim_tally_alg(k, h + j + 1, end - j - 1);
				eol = end;
			}
		}
		i = eol;
	}
	return n;
}

/* --- one message ------------------------------------------------------------------- */

static void
msg_begin(struct sess *s)
{
	s->state = ST_DATA;
	s->dstate = DS_BOL;
	s->msize = 0;
	s->too_big = false;
	s->hdr_done = s->k->dkim_want < 0;
	s->hdr_line = 0;
	buf_reset(&s->hdr);
	buf_reset(&s->msg);
}

/*
 * msg_emit - len bytes of the message, unstuffed: counted, and kept
 * where -D (header section) or -w (everything) wants them.
 */
static void
msg_emit(struct sess *s, const char *p, size_t len)
{
	struct sink *k = s->k;

	s->msize += len;
	if (s->msize > k->size_max)
		s->too_big = true;
	if (k->dir != NULL && !s->too_big)
		buf_append(&s->msg, p, len);
	if (s->hdr_done)
		return;
	buf_append(&s->hdr, p, len);
	if (len == 0 || p[len - 1] != '\n') {
		if (s->hdr.len > SINK_HDR_MAX)
			s->hdr_done = true;
		return;
	}
	/* A line ended: an empty one ends the header section (RFC 5322 2.1). */
	if (s->hdr.len - s->hdr_line <= 2 &&
	    (s->hdr.data[s->hdr_line] == '\n' ||
	    (s->hdr.data[s->hdr_line] == '\r' && s->hdr.len - s->hdr_line == 2))) {
		s->hdr.len = s->hdr_line;
		s->hdr_done = true;
		return;
	}
	s->hdr_line = s->hdr.len;
	if (s->hdr.len > SINK_HDR_MAX)
		s->hdr_done = true;
}

/* msg_save - the -w copy of the message, written synchronously. */
static void
msg_save(struct sess *s)
{
	struct sink *k = s->k;
	char path[4096];
	size_t off = 0;
	int fd;

	if (snprintf(path, sizeof path, "%s/%d-%06" PRIu64 ".eml", k->dir, (int)getpid(),
	    k->seq) >= (int)sizeof path)
		return;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		log_warn("sinkmx", "save_failed", "path=%s error=%s", path, strerror(errno));
		return;
	}
	while (off < s->msg.len) {
		ssize_t n = write(fd, s->msg.data + off, s->msg.len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn("sinkmx", "save_failed", "path=%s error=%s", path, strerror(errno));
			break;
		}
		off += (size_t)n;
	}
	close(fd);
}

static void
sess_reply(struct sess *s, const char *text)
{
	buf_appends(&s->out, text);
}

static void
sess_replyf(struct sess *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sess_replyf(struct sess *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line)
		log_panic("sinkmx", "reply_too_long", "fmt=%s", fmt);
	buf_append(&s->out, line, (size_t)n);
}

static void
txn_reset(struct sess *s)
{
	s->mail = false;
	s->rcpts = 0;
}

/* msg_end - the final "." came: count the message and answer it. */
static void
msg_end(struct sess *s)
{
	struct sink *k = s->k;
	double t = wall_ms();

	s->state = ST_CMD;
	if (s->too_big) {
		k->too_big++;
		sess_reply(s, "552 5.3.4 Message too big\r\n");
		txn_reset(s);
		return;
	}
	if (k->dkim_want >= 0) {
		unsigned n = dkim_count(k, s->hdr.data, s->hdr.len);

		if (n == (unsigned)k->dkim_want) {
			k->dkim_ok++;
		} else if (++k->dkim_bad <= SINK_BAD_LOGGED) {
			log_warn("sinkmx", "dkim_count", "message=%" PRIu64 " signatures=%u want=%d",
			    k->messages + 1, n, k->dkim_want);
		}
	}
	k->seq++;
	if (k->dir != NULL)
		msg_save(s);
	if (k->messages == 0)
		k->first_ms = t;
	k->last_ms = t;
	k->messages++;
	if (s->tls)
		k->messages_tls++;
	k->recipients += s->rcpts;
	k->bytes += s->msize;
	sess_replyf(s, "250 2.0.0 Ok: queued as %" PRIu64 "\r\n", k->seq);
	txn_reset(s);
}

/*
 * data_feed - scan message bytes for the "." line that ends DATA,
 * undoing dot-stuffing (RFC 5321 4.5.2) on the way.  Returns how many
 * of the len bytes belonged to the message; when that is less than len,
 * or the state left ST_DATA, the message ended and the rest are
 * commands.
 */
static size_t
data_feed(struct sess *s, const char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		switch (s->dstate) {
		case DS_BOL:
			if (p[i] == '.') {
				s->dstate = DS_DOT;
				i++;
				break;
			}
			s->dstate = DS_MID;
			/* FALLTHROUGH */
		case DS_MID: {
			const char *lf = memchr(p + i, '\n', len - i);
			size_t end = lf != NULL ? (size_t)(lf - p) + 1 : len;

			msg_emit(s, p + i, end - i);
			i = end;
			if (lf != NULL)
				s->dstate = DS_BOL;
			break;
		}
		case DS_DOT:
			if (p[i] == '\r') {
				s->dstate = DS_DOTCR;
				i++;
			} else if (p[i] == '\n') {
				/* A bare ".\n" ends it too, as most servers take it. */
				msg_end(s);
				return i + 1;
			} else {
				s->dstate = DS_MID;   /* the leading dot was stuffing */
			}
			break;
		case DS_DOTCR:
			if (p[i] == '\n') {
				msg_end(s);
				return i + 1;
			}
			msg_emit(s, "\r", 1);
			s->dstate = DS_MID;
			break;
		}
	}
	return len;
}

/* --- commands ---------------------------------------------------------------------- */

/* The verb of a command line: four letters, then a space or the end. */
static bool
is_verb(const char *line, size_t len, const char *verb)
{
	return len >= 4 && strncasecmp(line, verb, 4) == 0 && (len == 4 || line[4] == ' ');
}

/* mail_size - the SIZE= parameter of MAIL (RFC 1870 4); 0 when absent or bad. */
static uint64_t
mail_size(const char *line, size_t len)
{
	uint64_t v = 0;

	for (size_t i = 0; i + 6 <= len; i++) {
		if (line[i] != ' ' || strncasecmp(line + i + 1, "SIZE=", 5) != 0)
			continue;
		size_t j = i + 6, e = j;

		while (e < len && line[e] >= '0' && line[e] <= '9')
			e++;
		if (e > j && str_to_u64n(line + j, e - j, &v) < 0)
			v = UINT64_MAX;
		return v;
	}
	return 0;
}

static void
do_ehlo(struct sess *s, size_t len, bool ehlo)
{
	struct sink *k = s->k;

	if (len <= 5) {
		sess_reply(s, "501 5.5.4 Syntax: EHLO hostname\r\n");
		return;
	}
	txn_reset(s);
	s->helo = true;
	if (!ehlo) {
		sess_replyf(s, "250 %s\r\n", k->name);
		return;
	}
	sess_replyf(s, "250-%s\r\n250-PIPELINING\r\n250-SIZE %" PRIu64 "\r\n250-8BITMIME\r\n",
	    k->name, k->size_max);
	if (k->tls != NULL && !s->tls)
		sess_reply(s, "250-STARTTLS\r\n");
	sess_reply(s, "250 ENHANCEDSTATUSCODES\r\n");
}

/*
 * do_starttls - RFC 3207 4: the 220 goes out in plaintext, then TLS
 * starts and whatever the client sent after the command is dropped
 * unread; the client must say EHLO again.
 */
static void
do_starttls(struct sess *s)
{
	if (s->k->tls == NULL) {
		sess_reply(s, "502 5.5.1 STARTTLS not offered\r\n");
		return;
	}
	if (s->tls) {
		sess_reply(s, "503 5.5.1 TLS already active\r\n");
		return;
	}
	sess_reply(s, "220 2.0.0 Ready to start TLS\r\n");
	sess_flush(s);
	if (conn_start_tls(s->c, s->k->tls, true, NULL, false) < 0) {
		s->state = ST_CLOSING;
		conn_abort(s->c);
		return;
	}
	s->tls = true;
	s->helo = false;
	txn_reset(s);
	buf_reset(&s->in);
}

/* sess_command - one command line (without its line end). */
static void
sess_command(struct sess *s, const char *line, size_t len)
{
	if (is_verb(line, len, "EHLO") || is_verb(line, len, "HELO")) {
		do_ehlo(s, len, line[0] == 'E' || line[0] == 'e');
	} else if (len >= 10 && strncasecmp(line, "MAIL FROM:", 10) == 0) {
		if (!s->helo)
			sess_reply(s, "503 5.5.1 EHLO first\r\n");
		else if (s->mail)
			sess_reply(s, "503 5.5.1 Nested MAIL command\r\n");
		else if (mail_size(line, len) > s->k->size_max)
			sess_reply(s, "552 5.3.4 Message too big\r\n");
		else {
			s->mail = true;
			sess_reply(s, "250 2.1.0 Ok\r\n");
		}
	} else if (len >= 8 && strncasecmp(line, "RCPT TO:", 8) == 0) {
		if (!s->mail)
			sess_reply(s, "503 5.5.1 MAIL first\r\n");
		else if (s->rcpts >= SINK_RCPT_MAX)
			sess_reply(s, "452 4.5.3 Too many recipients\r\n");
		else {
			s->rcpts++;
			sess_reply(s, "250 2.1.5 Ok\r\n");
		}
	} else if (is_verb(line, len, "DATA")) {
		if (!s->mail || s->rcpts == 0) {
			/* RFC 2920 3.1: DATA after refused RCPTs must fail, too. */
			sess_reply(s, s->mail ? "554 5.5.1 No valid recipients\r\n" :
			    "503 5.5.1 MAIL first\r\n");
		} else {
			sess_reply(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
			msg_begin(s);
		}
	} else if (is_verb(line, len, "RSET")) {
		txn_reset(s);
		sess_reply(s, "250 2.0.0 Ok\r\n");
	} else if (is_verb(line, len, "NOOP")) {
		sess_reply(s, "250 2.0.0 Ok\r\n");
	} else if (is_verb(line, len, "QUIT")) {
		sess_reply(s, "221 2.0.0 Bye\r\n");
		sess_flush(s);
		s->state = ST_CLOSING;
		conn_close(s->c);
	} else if (is_verb(line, len, "VRFY")) {
		sess_reply(s, "252 2.5.0 Send some mail, I'll try my best\r\n");
	} else if (is_verb(line, len, "HELP")) {
		sess_reply(s, "214 2.0.0 sinkmx: EHLO MAIL RCPT DATA RSET NOOP QUIT STARTTLS\r\n");
	} else {
		sess_reply(s, "500 5.5.2 Command unrecognized\r\n");
	}
}

/* sess_process - handle what s->in holds: command lines, or message bytes. */
static void
sess_process(struct sess *s)
{
	const char *line;
	size_t ll;
	bool bare_lf;
	int rc;

	while (s->state != ST_CLOSING) {
		if (s->state == ST_DATA) {
			size_t n = buf_unread(&s->in);

			if (n == 0)
				break;
			buf_consume(&s->in, data_feed(s, buf_rptr(&s->in), n));
			continue;
		}
		rc = buf_getline(&s->in, SINK_LINE_MAX, &line, &ll, &bare_lf);
		if (rc == BUF_NEEDMORE)
			break;
		if (rc == BUF_TOOLONG) {
			sess_reply(s, "500 5.5.2 Line too long\r\n");
			continue;
		}
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		/* STARTTLS drops the rest of s->in, so it is not left to sess_command. */
		if (ll == 8 && strncasecmp(line, "STARTTLS", 8) == 0) {
			do_starttls(s);
			continue;
		}
		sess_command(s, line, ll);
	}
	if (buf_unread(&s->in) == 0)
		buf_reset(&s->in);
}

/* sess_flush - send the replies gathered: one write per batch. */
static void
sess_flush(struct sess *s)
{
	if (s->out.len == 0 || s->c == NULL)
		return;
	(void)conn_write(s->c, s->out.data, s->out.len);
	buf_reset(&s->out);
	if (s->reading && conn_pending(s->c) > SINK_OUT_HIGH) {
		/* The client pipelines and does not read: wait for it. */
		s->reading = false;
		conn_read_stop(s->c);
	}
}

/* --- connections ------------------------------------------------------------------ */

static void
on_read(struct conn *c, const char *data, size_t len)
{
	struct sess *s = conn_data(c);

	if (s->state == ST_CLOSING)
		return;
	s->last_active = uv_now(s->k->loop);
	/* The body usually needs no copy: scan it where the read put it. */
	if (s->state == ST_DATA && buf_unread(&s->in) == 0) {
		size_t used = data_feed(s, data, len);

		data += used;
		len -= used;
	}
	if (len > 0)
		buf_append(&s->in, data, len);
	sess_process(s);
	sess_flush(s);
}

static void
on_drain(struct conn *c)
{
	struct sess *s = conn_data(c);

	if (!s->reading && s->state != ST_CLOSING) {
		s->reading = true;
		conn_read_start(c);
	}
}

static void
on_tls(struct conn *c, int status)
{
	struct sess *s = conn_data(c);

	/* A failure closes the conn: on_close follows. */
	if (status == 0)
		s->k->tls_sessions++;
}

static void
on_close(struct conn *c, int status)
{
	struct sess *s = conn_data(c);
	struct sink *k = s->k;

	(void)status;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		k->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	k->conns_open--;
	buf_free(&s->in);
	buf_free(&s->out);
	buf_free(&s->hdr);
	buf_free(&s->msg);
	free(s);
}

static const struct conn_ops sess_ops = {
	.on_read = on_read,
	.on_tls = on_tls,
	.on_drain = on_drain,
	.on_close = on_close,
};

static void
on_accept(void *arg, uv_stream_t *server)
{
	struct sink *k = arg;
	struct sess *s = xcalloc(1, sizeof *s);
	int rc;

	s->k = k;
	s->state = ST_CMD;
	s->reading = true;
	buf_init(&s->in);
	buf_init(&s->out);
	buf_init(&s->hdr);
	buf_init(&s->msg);
	if ((rc = conn_accept(&s->c, server, &sess_ops, s)) < 0) {
		if (k->conns_failed++ < SINK_BAD_LOGGED)
			log_warn("sinkmx", "accept_failed", "error=%s", uv_strerror(rc));
		free(s);
		return;
	}
	s->last_active = uv_now(k->loop);
	s->next = k->sessions;
	if (k->sessions != NULL)
		k->sessions->prev = s;
	k->sessions = s;
	k->conns++;
	if (++k->conns_open > k->conns_max)
		k->conns_max = k->conns_open;
	sess_replyf(s, "220 %s ESMTP sinkmx\r\n", k->name);
	sess_flush(s);
}

/* on_sweep - cut sessions idle longer than -t. */
static void
on_sweep(uv_timer_t *t)
{
	struct sink *k = t->data;
	uint64_t now = uv_now(k->loop);

	for (struct sess *s = k->sessions; s != NULL; s = s->next) {
		if (s->state == ST_CLOSING || now - s->last_active < k->idle_ms)
			continue;
		sess_reply(s, "421 4.4.2 Idle too long\r\n");
		sess_flush(s);
		s->state = ST_CLOSING;
		conn_close(s->c);
	}
}

/* --- main ------------------------------------------------------------------------------ */

static void
on_closed_listener(void *arg)
{
	(void)arg;
}

/* sink_stop - SIGTERM/SIGINT: stop listening, cut every session, close our handles. */
static void
sink_stop(struct sink *k)
{
	if (k->stopping)
		return;
	k->stopping = true;
	listener_close(k->lis, on_closed_listener, NULL);
	for (struct sess *s = k->sessions; s != NULL; s = s->next) {
		s->state = ST_CLOSING;
		conn_abort(s->c);
	}
	uv_close((uv_handle_t *)&k->stats_timer, NULL);
	uv_close((uv_handle_t *)&k->sweep_timer, NULL);
	uv_close((uv_handle_t *)&k->sigusr1, NULL);
	uv_close((uv_handle_t *)&k->sigterm, NULL);
	uv_close((uv_handle_t *)&k->sigint, NULL);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	struct sink *k = h->data;

	if (signum == SIGUSR1) {
		stats_print(k);
		stats_write(k);
		return;
	}
	sink_stop(k);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: sinkmx -p PORT [-H ADDR] [-n NAME] [-S STATSFILE] [-i MS] [-D COUNT]\n"
	    "              [-w DIR] [-C CERT -K KEY] [-z SIZE] [-t SECONDS] [-q]\n");
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* tls_setup - the STARTTLS context from -C and -K (tlsctx's server settings). */
static int
tls_setup(struct sink *k, const char *cert, const char *key)
{
	static struct config cfg;
	char err[512];

	config_defaults(&cfg);
	if (str_copy(cfg.tls.cert, cert, sizeof cfg.tls.cert) < 0 ||
	    str_copy(cfg.tls.key, key, sizeof cfg.tls.key) < 0 ||
	    str_copy(cfg.server.hostname, k->name, sizeof cfg.server.hostname) < 0) {
		fprintf(stderr, "sinkmx: -C, -K or -n too long\n");
		return -1;
	}
	if (tlsctx_server(&k->tls, &cfg, err, sizeof err) < 0) {
		fprintf(stderr, "sinkmx: %s\n", err);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static struct sink k;
	const char *host = "127.0.0.1", *cert = NULL, *key = NULL;
	char err[512];
	struct config_listen lst;
	uint64_t v, port = 0;
	bool have_port = false;
	int c, rc;

	k.name = "sinkmx.bench";
	k.size_max = 50u << 20;
	k.idle_ms = 300000;
	k.stats_ms = 200;
	k.dkim_want = -1;
	while ((c = getopt(argc, argv, "p:H:n:S:i:D:w:C:K:z:t:q")) != -1) {
		switch (c) {
		case 'p':
			if (str_to_u64(optarg, &port) < 0 || port > 65535) {
				fprintf(stderr, "sinkmx: -p wants a port, 0 to 65535\n");
				return 2;
			}
			have_port = true;
			break;
		case 'H':
			host = optarg;
			break;
		case 'n':
			k.name = optarg;
			break;
		case 'S':
			k.stats_path = optarg;
			break;
		case 'i':
			if (str_to_u64(optarg, &k.stats_ms) < 0 || k.stats_ms < 10 ||
			    k.stats_ms > 60000) {
				fprintf(stderr, "sinkmx: -i wants milliseconds, 10 to 60000\n");
				return 2;
			}
			break;
		case 'D':
			if (str_to_u64(optarg, &v) < 0 || v > 100) {
				fprintf(stderr, "sinkmx: -D wants a count, 0 to 100\n");
				return 2;
			}
			k.dkim_want = (int)v;
			break;
		case 'w':
			k.dir = optarg;
			break;
		case 'C':
			cert = optarg;
			break;
		case 'K':
			key = optarg;
			break;
		case 'z':
			if (str_to_size(optarg, &k.size_max) < 0 || k.size_max == 0) {
				fprintf(stderr, "sinkmx: -z wants a size, such as 50M\n");
				return 2;
			}
			break;
		case 't':
			if (str_to_u64(optarg, &v) < 0 || v > 86400) {
				fprintf(stderr, "sinkmx: -t wants seconds, 0 to 86400\n");
				return 2;
			}
			k.idle_ms = v * 1000;
			break;
		case 'q':
			k.quiet = true;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (optind != argc || !have_port || (cert == NULL) != (key == NULL)) {
		usage();
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_WARN);
	raise_nofile();
	if (cert != NULL && tls_setup(&k, cert, key) < 0)
		return 1;

	/* Built by hand: config_parse_listen() refuses port 0. */
	memset(&lst, 0, sizeof lst);
	lst.n = 1;
	lst.ep[0].port = (uint16_t)port;
	if (str_copy(lst.ep[0].host, host, sizeof lst.ep[0].host) < 0) {
		fprintf(stderr, "sinkmx: -H too long\n");
		return 2;
	}
	k.loop = uv_default_loop();
	if ((rc = listener_open(&k.lis, k.loop, &lst, 4096, on_accept, &k, err, sizeof err)) < 0) {
		fprintf(stderr, "sinkmx: %s\n", err);
		return 1;
	}
	k.port = listener_port(k.lis, 0);
	printf("sinkmx_port %u\n", (unsigned)k.port);
	fflush(stdout);

	uv_timer_init(k.loop, &k.stats_timer);
	uv_timer_init(k.loop, &k.sweep_timer);
	k.stats_timer.data = k.sweep_timer.data = &k;
	uv_timer_start(&k.stats_timer, on_stats_timer, k.stats_ms, k.stats_ms);
	if (k.idle_ms > 0)
		uv_timer_start(&k.sweep_timer, on_sweep, SINK_SWEEP_MS, SINK_SWEEP_MS);
	uv_signal_init(k.loop, &k.sigusr1);
	uv_signal_init(k.loop, &k.sigterm);
	uv_signal_init(k.loop, &k.sigint);
	k.sigusr1.data = k.sigterm.data = k.sigint.data = &k;
	uv_signal_start(&k.sigusr1, on_signal, SIGUSR1);
	uv_signal_start(&k.sigterm, on_signal, SIGTERM);
	uv_signal_start(&k.sigint, on_signal, SIGINT);
	stats_write(&k);

	uv_run(k.loop, UV_RUN_DEFAULT);

	stats_print(&k);
	stats_write(&k);
	if (k.tls != NULL)
		SSL_CTX_free(k.tls);
	if (uv_loop_close(k.loop) != 0) {
		fprintf(stderr, "sinkmx: handles left open on the loop\n");
		return 1;
	}
	return k.dkim_bad > 0 ? 1 : 0;
}
