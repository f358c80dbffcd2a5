/*
 * tlsc - the load tools' TLS client connection.  See tlsc.h.
 */
#include "tests/bench/tlsc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define FD_SPARE 16 /* descriptors kept beyond the connections */

#include "core/xmalloc.h"

void
tlsc_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", tlsc_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void
tlsc_open(struct tlsc *c, SSL_CTX *ctx, const struct sockaddr_in *addr)
{
	struct timeval tv = { .tv_sec = TLSC_TIMEOUT_S };
	int one = 1;

	memset(c, 0, sizeof *c);
	c->in = xmalloc(TLSC_IN_CAP);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		tlsc_die("socket: %s", strerror(errno));
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
	    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
		tlsc_die("setsockopt: %s", strerror(errno));
	if (connect(c->fd, (const struct sockaddr *)addr, sizeof *addr) < 0)
		tlsc_die("connect: %s", strerror(errno));
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		tlsc_die("SSL_new failed");
	if (SSL_connect(c->ssl) != 1) {
		ERR_print_errors_fp(stderr);
		tlsc_die("TLS handshake failed");
	}
}

void
tlsc_close(struct tlsc *c)
{
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	c->ssl = NULL;
	c->fd = -1;
	c->in = NULL;
}

void
tlsc_fill(struct tlsc *c)
{
	int n;

	if (c->start == c->end) {
		c->start = 0;
		c->end = 0;
	} else if (c->end == TLSC_IN_CAP) {
		memmove(c->in, c->in + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	n = SSL_read(c->ssl, c->in + c->end, (int)(TLSC_IN_CAP - c->end));
	if (n <= 0)
		tlsc_die("read: connection closed or timed out (SSL error %d)",
		    SSL_get_error(c->ssl, n));
	c->end += (size_t)n;
}

void
tlsc_write(struct tlsc *c, const void *p, size_t len)
{
	const char *s = p;
	int n;

	while (len > 0) {
		int chunk = len > INT32_MAX ? INT32_MAX : (int)len;

		n = SSL_write(c->ssl, s, chunk);
		if (n <= 0)
			tlsc_die("write: failed or timed out (SSL error %d)", SSL_get_error(c->ssl, n));
		s += n;
		len -= (size_t)n;
	}
}

SSL_CTX *
tlsc_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		tlsc_die("SSL_CTX_new failed");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

void
tlsc_resolve(struct sockaddr_in *addr, const char *host, const char *port)
{
	char *end;
	long p = strtol(port, &end, 10);

	memset(addr, 0, sizeof *addr);
	addr->sin_family = AF_INET;
	if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
		tlsc_die("bad port %s", port);
	addr->sin_port = htons((uint16_t)p);
	if (inet_pton(AF_INET, host, &addr->sin_addr) != 1)
		tlsc_die("bad IPv4 address %s", host);
}

void
tlsc_raise_nofile(uint64_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		tlsc_die("getrlimit: %s", strerror(errno));
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		tlsc_die("setrlimit: %s", strerror(errno));
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want + FD_SPARE)
		tlsc_die("%" PRIu64 " connections need %" PRIu64
		    " descriptors; the hard limit is %ju", want, want + FD_SPARE,
		    (uintmax_t)rl.rlim_cur);
}

void
tlsc_hold(unsigned hold_s)
{
	struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
	uint64_t hold_end = tlsc_now_ns() + (uint64_t)hold_s * 1000000000u;
	char junk[256];

	while (tlsc_now_ns() < hold_end) {
		int r = poll(&pfd, 1, 1000);

		if (r < 0 && errno != EINTR)
			break;
		if (r > 0) {
			ssize_t got = read(STDIN_FILENO, junk, sizeof junk);

			if (got <= 0)
				break;
		}
	}
}

void
tlsc_on_alarm(int sig)
{
	(void)sig;
	/* Only async-signal-safe calls. */
	if (write(STDERR_FILENO, tlsc_prog, strlen(tlsc_prog)) < 0 ||
	    write(STDERR_FILENO, ": deadline reached\n", 19) < 0)
		_exit(1);
	_exit(1);
}

uint64_t
tlsc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double
tlsc_ms_since(uint64_t t0)
{
	return (double)(tlsc_now_ns() - t0) / 1e6;
}
