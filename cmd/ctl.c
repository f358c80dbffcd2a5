/*
 * ctl - the harness under kurierctl's commands: output helpers, argument
 * helpers, the password prompt, the configuration, and the Redis
 * connections with their timeouts.  See cmd/ctl.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cmd/ctl.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/str.h"
#include "policy/auth.h"
#include "policy/policy.h"
#include "queue/queue.h"

#define REPLY_TIMEOUT_MS 60000  /* a call Redis has not answered by then fails */
#define POLL_MS 20              /* how often to look whether policy is up */

static void on_timer(uv_timer_t *t);

/* --- output helpers ---------------------------------------------------------- */

static size_t
esc_width(unsigned char ch)
{
	if (ch == '\\')
		return 2;
	if (ch >= 0x20 && ch < 0x7f)
		return 1;
	return 4;
}

/*
 * ctl_esc - s made safe for a terminal: printable ASCII as it is, '\' as
 * "\\", every other byte as \xNN.  At most max characters (0: no limit);
 * a cut value ends in "...".  NULL reads as "".  The result is valid
 * until the NESC-th next call.
 */
const char *
ctl_esc(struct ctl *c, const char *s, size_t max)
{
	struct buf *b = &c->esc[c->esc_next++ % NESC];
	const unsigned char *p;
	size_t total = 0, limit = SIZE_MAX;
	bool cut = false;

	buf_reset(b);
	if (s == NULL)
		s = "";
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		total += esc_width(*p);
	if (max > 0 && total > max)
		limit = max > 3 ? max - 3 : 0;
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		size_t w = esc_width(*p);

		if (b->len + w > limit) {
			cut = true;
			break;
		}
		if (w == 1)
			buf_appendc(b, (char)*p);
		else if (*p == '\\')
			buf_appends(b, "\\\\");
		else
			buf_appendf(b, "\\x%02x", *p);
	}
	if (cut)
		buf_appends(b, "...");
	return b->data != NULL ? b->data : "";
}

/* ctl_fmt_time - ms since the epoch as UTC "2026-11-22 13:54:00". */
const char *
ctl_fmt_time(char *dst, size_t size, uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(dst, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(dst, size, "?");
	return dst;
}

/* ctl_fmt_span - a duration as its two largest units: "45s", "4m30s", "2h5m", "3d4h". */
const char *
ctl_fmt_span(char *dst, size_t size, uint64_t ms)
{
	uint64_t s = (ms + 999) / 1000;

	if (s < 60)
		snprintf(dst, size, "%" PRIu64 "s", s);
	else if (s < 3600 && s % 60 != 0)
		snprintf(dst, size, "%" PRIu64 "m%" PRIu64 "s", s / 60, s % 60);
	else if (s < 3600)
		snprintf(dst, size, "%" PRIu64 "m", s / 60);
	else if (s < 86400 && s % 3600 / 60 != 0)
		snprintf(dst, size, "%" PRIu64 "h%" PRIu64 "m", s / 3600, s % 3600 / 60);
	else if (s < 86400)
		snprintf(dst, size, "%" PRIu64 "h", s / 3600);
	else if (s % 86400 / 3600 != 0)
		snprintf(dst, size, "%" PRIu64 "d%" PRIu64 "h", s / 86400, s % 86400 / 3600);
	else
		snprintf(dst, size, "%" PRIu64 "d", s / 86400);
	return dst;
}

/* ctl_fmt_when - ctl_fmt_time(), and for a time after now also " (in 4m30s)". */
const char *
ctl_fmt_when(char *dst, size_t size, uint64_t ms, uint64_t now)
{
	char t[32], span[32];

	ctl_fmt_time(t, sizeof t, ms);
	if (ms > now)
		snprintf(dst, size, "%s (in %s)", t, ctl_fmt_span(span, sizeof span, ms - now));
	else
		snprintf(dst, size, "%s", t);
	return dst;
}

const char *
ctl_plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

int
ctl_digits(uint64_t v)
{
	int n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* --- arguments ------------------------------------------------------------------ */

/* ctl_usage_error - one line saying what is wrong and what to do; CTL_USAGE. */
int
ctl_usage_error(struct ctl *c, const char *what, const char *arg, const char *hint)
{
	if (arg != NULL)
		fprintf(stderr, "kurierctl: %s \"%s\": %s\n", what, ctl_esc(c, arg, 64), hint);
	else
		fprintf(stderr, "kurierctl: %s: %s\n", what, hint);
	return CTL_USAGE;
}

/* ctl_cmd_name - "queue list", "check". */
const char *
ctl_cmd_name(const struct ctl *c, char *dst, size_t size)
{
	snprintf(dst, size, "%s%s%s", c->cmd->group ? c->cmd->group : "",
	    c->cmd->group ? " " : "", c->cmd->name);
	return dst;
}

int
ctl_check_noargs(struct ctl *c, int argc, char **argv)
{
	if (argc > 0)
		return ctl_usage_error(c, "unexpected argument", argv[0],
		    "this command takes none (see kurierctl help)");
	return CTL_OK;
}

/* The value of "--name VALUE" or "--name=VALUE" at argv[*i], or NULL. */
const char *
ctl_opt_value(const char *name, int argc, char **argv, int *i, bool *bad)
{
	size_t n = strlen(name);

	*bad = false;
	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*bad = true;
		return NULL;
	}
	return argv[++*i];
}

/* --- passwords ------------------------------------------------------------------ */

/* The terminal's settings while a prompt has echo off, for on_prompt_signal(). */
static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;

/* A signal during the prompt: give the terminal its echo back, then die of it. */
static void
on_prompt_signal(int sig)
{
	if (tty_changed)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * read_line - one line from fd into buf[size], read a byte at a time so
 * that no copy stays behind in a stdio buffer; the '\n' and a '\r'
 * before it are dropped.  The length (bytes, NUL bytes included), or
 * -EMSGSIZE when the line does not fit (it is still read to its end),
 * or -errno.
 */
static ssize_t
read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	bool toolong = false;
	char ch = 0;

	for (;;) {
		ssize_t r = read(fd, &ch, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0 || ch == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = ch;
		else
			toolong = true;
	}
	explicit_bzero(&ch, sizeof ch);
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return toolong ? -EMSGSIZE : (ssize_t)n;
}

/* prompt_password - text on stderr, then a line from the terminal without echo. */
static ssize_t
prompt_password(const char *text, char *buf, size_t size)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
	struct sigaction sa, old[sizeof sigs / sizeof sigs[0]];
	struct termios t;
	ssize_t n;

	if (tcgetattr(STDIN_FILENO, &saved_tty) != 0)
		return -errno;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_prompt_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, &old[i]);
	t = saved_tty;
	t.c_lflag &= ~(tcflag_t)ECHO;
	t.c_lflag |= ECHONL;   /* the Enter still moves to the next line */
	tty_changed = 1;
	/* Echo off before the prompt shows, so no typed byte is ever echoed. */
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) != 0) {
		n = -errno;
	} else {
		fputs(text, stderr);
		fflush(stderr);
		n = read_line(STDIN_FILENO, buf, size);
	}
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	tty_changed = 0;
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &old[i], NULL);
	return n;
}

/* Characters, not bytes: UTF-8 continuation bytes are not counted. */
static size_t
utf8_chars(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return n;
}

/*
 * ctl_read_password - the new password for user add/passwd into c->password:
 * one line from stdin, or at a terminal asked twice without echo.
 * Refuses an empty one, one shorter than AUTH_PASSWORD_MIN characters,
 * one too long or holding a NUL byte.  CTL_OK or CTL_FAIL (said why).
 */
int
ctl_read_password(struct ctl *c)
{
	char again[sizeof c->password], text[128];
	ssize_t n, m;
	size_t chars;

	if (isatty(STDIN_FILENO)) {
		snprintf(text, sizeof text, "New password for %s: ", c->user);
		n = prompt_password(text, c->password, sizeof c->password);
		if (n >= 0) {
			m = prompt_password("Again: ", again, sizeof again);
			if (m < 0)
				n = m;
			else if (m != n || memcmp(again, c->password, (size_t)n) != 0)
				n = -EBADMSG;
			explicit_bzero(again, sizeof again);
		}
	} else {
		n = read_line(STDIN_FILENO, c->password, sizeof c->password);
	}
	if (n == -EBADMSG) {
		fprintf(stderr, "kurierctl: the two passwords differ: nothing changed, try again\n");
		return CTL_FAIL;
	}
	if (n == -EMSGSIZE || n > AUTH_PASSWORD_MAX) {
		fprintf(stderr, "kurierctl: the password is too long: at most %d bytes\n",
		    AUTH_PASSWORD_MAX);
		return CTL_FAIL;
	}
	if (n < 0) {
		fprintf(stderr, "kurierctl: cannot read the password from stdin: %s\n",
		    strerror((int)-n));
		return CTL_FAIL;
	}
	if (n == 0) {
		fprintf(stderr, "kurierctl: empty password refused: give it as one line on stdin (at least %d characters)\n",
		    AUTH_PASSWORD_MIN);
		return CTL_FAIL;
	}
	if (memchr(c->password, '\0', (size_t)n) != NULL) {
		fprintf(stderr, "kurierctl: the password holds a NUL byte: refused\n");
		return CTL_FAIL;
	}
	chars = utf8_chars(c->password, (size_t)n);
	if (chars < AUTH_PASSWORD_MIN) {
		fprintf(stderr, "kurierctl: password too short (%zu %s): use at least %d characters\n",
		    chars, ctl_plural(chars, "character", "characters"), AUTH_PASSWORD_MIN);
		return CTL_FAIL;
	}
	c->pwlen = (size_t)n;
	return CTL_OK;
}

/* --- configuration --------------------------------------------------------------- */

int
ctl_load_config(struct ctl *c)
{
	char err[CONFIG_ERR_MAX];
	int rc;

	if ((rc = config_load(&c->cfg, c->conf_path, err, sizeof err)) == 0)
		return CTL_OK;
	if (rc == -ENOENT)
		fprintf(stderr, "kurierctl: %s (name the config with -c FILE)\n", err);
	else
		fprintf(stderr, "kurierctl: %s\n", err);
	return CTL_FAIL;
}

/* --- the Redis connection (queue or user store) ------------------------------------ */

static void
on_backend_closed(void *arg)
{
	(void)arg;
}

/* ctl_finish - end the command with this exit status; closes what is open. */
void
ctl_finish(struct ctl *c, int status)
{
	if (c->finishing)
		return;
	c->finishing = true;
	c->status = status;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, NULL);
	if (c->poll_open) {
		c->poll_open = false;
		uv_close((uv_handle_t *)&c->poll, NULL);
	}
	if (c->q != NULL)
		queue_close(c->q, on_backend_closed, c);
	if (c->a != NULL)
		auth_close(c->a, on_backend_closed, c);
	if (c->p != NULL)
		policy_close(c->p, on_backend_closed, c);
	if (c->mb != NULL)
		mbox_store_close(c->mb, on_backend_closed, c);
}

/* Why the first connection that is not up failed ("" when none says). */
static const char *
backend_last_error(const struct ctl *c)
{
	if (c->q != NULL && !queue_is_up(c->q))
		return queue_last_error(c->q);
	if (c->a != NULL && !auth_is_up(c->a))
		return auth_last_error(c->a);
	if (c->p != NULL && !policy_is_up(c->p))
		return policy_last_error(c->p);
	if (c->mb != NULL && !mbox_is_up(c->mb))
		return mbox_last_error(c->mb);
	return "";
}

/* Whether every connection the command needs is up. */
static bool
backends_up(const struct ctl *c)
{
	return (c->q == NULL || queue_is_up(c->q)) && (c->a == NULL || auth_is_up(c->a)) &&
	    (c->p == NULL || policy_is_up(c->p)) && (c->mb == NULL || mbox_is_up(c->mb));
}

static const char *
redis_addr(struct ctl *c, char *dst, size_t size)
{
	return config_endpoint_str(&c->cfg.redis.address, dst, size);
}

/* A call failed: say why and what to do, and end with status 1. */
void
ctl_call_failed(struct ctl *c, const char *what, int status)
{
	char addr[CONFIG_HOST_MAX + 16];

	redis_addr(c, addr, sizeof addr);
	switch (status) {
	case -ENOTCONN:
	case -ECONNRESET:
		fprintf(stderr, "kurierctl: %s: lost the connection to Redis at %s: try again; if it repeats, see redis-server's log\n",
		    what, addr);
		break;
	case -EIO:
		fprintf(stderr, "kurierctl: %s: Redis at %s refused the command (the log line above says why)\n",
		    what, addr);
		break;
	case -EPROTO:
		fprintf(stderr, "kurierctl: %s: unexpected reply from Redis at %s: are kurierctl and the queue the same version?\n",
		    what, addr);
		break;
	case -ETIMEDOUT:
		fprintf(stderr, "kurierctl: %s: Redis at %s did not answer within %ds: check that redis-server is not stalled\n",
		    what, addr, REPLY_TIMEOUT_MS / 1000);
		break;
	default:
		fprintf(stderr, "kurierctl: %s: %s\n", what, strerror(-status));
		break;
	}
	ctl_finish(c, CTL_FAIL);
}

/* After each call is sent: it must be answered within REPLY_TIMEOUT_MS. */
void
ctl_wait(struct ctl *c)
{
	uv_timer_start(&c->timer, on_timer, REPLY_TIMEOUT_MS, 0);
}

static void
not_reachable(struct ctl *c)
{
	char addr[CONFIG_HOST_MAX + 16], err[512], span[32];
	const char *hint = "is redis-server running? check [redis] address in";

	str_copy(err, backend_last_error(c), sizeof err);
	if (err[0] == '\0')
		snprintf(err, sizeof err, "no answer within %s",
		    ctl_fmt_span(span, sizeof span, c->cfg.redis.connect_timeout_ms));
	else if (strstr(err, "AUTH") != NULL)
		hint = "check [redis] password in";
	else if (strstr(err, "too old") != NULL)
		hint = "kurier needs Redis 6.2 or newer; check [redis] address in";
	else if (strstr(err, "loading") != NULL)
		hint = "wait until Redis has loaded its data and try again; see";
	fprintf(stderr, "kurierctl: cannot reach Redis at %s (%s): %s %s\n",
	    redis_addr(c, addr, sizeof addr), err, hint, c->conf_path);
	ctl_finish(c, CTL_FAIL);
}

static void
on_timer(uv_timer_t *t)
{
	struct ctl *c = t->data;
	char what[64];

	if (c->finishing)
		return;
	if (!c->started) {
		not_reachable(c);
		return;
	}
	ctl_call_failed(c, ctl_cmd_name(c, what, sizeof what), -ETIMEDOUT);
}

/* try_start - run the command once every connection it needs is up. */
static void
try_start(struct ctl *c)
{
	char what[64];
	int rc;

	if (c->started || c->finishing || !backends_up(c))
		return;
	c->started = true;
	if (c->poll_open) {
		c->poll_open = false;
		uv_close((uv_handle_t *)&c->poll, NULL);
	}
	c->now = c->q != NULL ? queue_now(c->q) : 0;
	rc = c->cmd->run(c);
	if (rc < 0)
		ctl_call_failed(c, ctl_cmd_name(c, what, sizeof what), rc);
	else
		ctl_wait(c);
}

static void
on_state(void *arg, bool up)
{
	if (up)
		try_start(arg);
}

static void
on_poll(uv_timer_t *t)
{
	try_start(t->data);
}

int
ctl_run(struct ctl *c)
{
	int rc;

	/* Connection attempts are summed up in one message, not logged. */
	log_set_level(LOG_ERROR);
	if ((rc = uv_loop_init(&c->loop)) != 0) {
		fprintf(stderr, "kurierctl: cannot start the event loop: %s\n", uv_strerror(rc));
		return CTL_FAIL;
	}
	uv_timer_init(&c->loop, &c->timer);
	c->timer.data = c;
	if (c->cmd->needs & NEED_QUEUE) {
		/* One command at a time: one connection is enough. */
		c->cfg.redis.connections = 1;
		if ((rc = queue_open(&c->q, &c->loop, &c->cfg, "kurierctl")) < 0) {
			fprintf(stderr, "kurierctl: cannot open the queue: %s\n", strerror(-rc));
			exit(CTL_FAIL);
		}
		queue_on_state(c->q, on_state, c);
	}
	if (c->cmd->needs & NEED_AUTH) {
		if ((rc = auth_open(&c->a, &c->loop, &c->cfg, "kurierctl")) < 0) {
			fprintf(stderr, "kurierctl: cannot open the user store: %s\n", strerror(-rc));
			exit(CTL_FAIL);
		}
		auth_on_state(c->a, on_state, c);
	}
	if (c->cmd->needs & NEED_POLICY) {
		if ((rc = policy_open(&c->p, &c->loop, &c->cfg, "kurierctl")) < 0) {
			fprintf(stderr, "kurierctl: cannot open the policy store: %s\n", strerror(-rc));
			exit(CTL_FAIL);
		}
		uv_timer_init(&c->loop, &c->poll);
		c->poll.data = c;
		c->poll_open = true;
		uv_timer_start(&c->poll, on_poll, POLL_MS, POLL_MS);
	}
	if (c->cmd->needs & NEED_MAILBOX) {
		char err[256];

		if ((rc = mbox_store_open(&c->mb, &c->loop, &c->cfg, err, sizeof err)) < 0) {
			fprintf(stderr, "kurierctl: cannot open the mailbox store: %s\n", err);
			exit(CTL_FAIL);
		}
		mbox_on_state(c->mb, on_state, c);
	}
	uv_timer_start(&c->timer, on_timer, c->cfg.redis.connect_timeout_ms, 0);
	try_start(c);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	if ((rc = uv_loop_close(&c->loop)) != 0) {
		fprintf(stderr, "kurierctl: internal error: handles left open at exit (%s)\n",
		    uv_strerror(rc));
		return CTL_FAIL;
	}
	return c->status;
}
