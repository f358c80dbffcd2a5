/*
 * tlsc - the blocking TLS client connection the mail-client load tools
 * share (tests/bench/imapload.c, popload.c): connect, handshake, a large
 * read buffer, writes.  Every socket read and write gives up after
 * TLSC_TIMEOUT_S; any failure ends the process with a message naming
 * the tool (tlsc_prog).
 */
#ifndef KURIER_TESTS_BENCH_TLSC_H
#define KURIER_TESTS_BENCH_TLSC_H

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#define TLSC_TIMEOUT_S 60         /* one socket read or write, at most */
#define TLSC_IN_CAP (256 * 1024)  /* read buffer: large, so reads are few */

struct tlsc {
	int fd;
	SSL *ssl;
	char *in;
	size_t start, end; /* unread bytes are in[start..end) */
};

/* The tool's name, for messages. */
extern const char *tlsc_prog;

/* tlsc_die - print "PROG: message" and exit 1. */
void tlsc_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* tlsc_open - a TCP connection to addr with the TLS handshake done. */
void tlsc_open(struct tlsc *c, SSL_CTX *ctx, const struct sockaddr_in *addr);
/* tlsc_close - drop the connection at once (no logout, no close_notify wait). */
void tlsc_close(struct tlsc *c);
/* tlsc_fill - read more into the buffer. */
void tlsc_fill(struct tlsc *c);
void tlsc_write(struct tlsc *c, const void *p, size_t len);

/* --- what the load tools share besides the connection ------------------------------- */

/* A client context that does not verify (the servers' certificates are made for the run). */
SSL_CTX *tlsc_ctx(void);
/* tlsc_resolve - an IPv4 address and a port, as given on the command line. */
void tlsc_resolve(struct sockaddr_in *addr, const char *host, const char *port);
/* tlsc_raise_nofile - RLIMIT_NOFILE up to the hard limit; dies below want connections. */
void tlsc_raise_nofile(uint64_t want);
/* tlsc_hold - wait hold_s seconds, or until standard input closes. */
void tlsc_hold(unsigned hold_s);
/* tlsc_on_alarm - SIGALRM handler: "PROG: deadline reached", exit 1. */
void tlsc_on_alarm(int sig);
uint64_t tlsc_now_ns(void);
double tlsc_ms_since(uint64_t t0);

#endif
