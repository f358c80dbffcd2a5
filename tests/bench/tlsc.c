/*
 * tlsc - the load tools' TLS client connection.  See tlsc.h.
 */
#include "tests/bench/tlsc.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

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
