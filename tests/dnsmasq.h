/*
 * dnsmasq - a real DNS server for the delivery suites: dnsmasq on a free
 * 127.0.0.1 port (UDP and TCP), serving the records it is given, started
 * and stopped by PID.
 *
 * Every instance answers only for .test: names not given are NXDOMAIN
 * (--local=/test/); broken.test goes to an upstream port where nothing
 * listens, so it is never answered (a timeout); refused.test has no
 * upstream at all (REFUSED).  dnsmasq keeps our user and group, so
 * PR_SET_PDEATHSIG holds and it dies with the test process.
 */
#ifndef KURIER_TESTS_DELIVER_DNSMASQ_H
#define KURIER_TESTS_DELIVER_DNSMASQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define DNSMASQ_BIN "/usr/sbin/dnsmasq"

struct dnsmasq {
	pid_t pid;
	uint16_t port;
	char server[32]; /* "127.0.0.1:port", for dns_open() and spfcheck_open() */
	char dir[64];    /* with log_queries: mkdtemp dir of the query log */
	char log[96];
};

/* dnsmasq_free_port - a 127.0.0.1 port free for UDP and TCP at this moment. */
uint16_t dnsmasq_free_port(void);

/*
 * dnsmasq_start - run dnsmasq with records[] and extra[] (options,
 * NULL-terminated; extra may be NULL) and wait (bounded) until it
 * answers.  ttl: the TTL of its answers (--local-ttl), 0 for dnsmasq's
 * own (0: resolvers cache nothing).  log_queries: log every query to
 * m->log in a fresh temporary directory (dnsmasq_log_count reads it).
 * Fails the test if it cannot start.
 */
void dnsmasq_start(struct dnsmasq *m, unsigned ttl, bool log_queries,
    const char *const *records, const char *const *extra);
/* dnsmasq_stop - end it by PID (bounded); the query log stays. */
void dnsmasq_stop(struct dnsmasq *m);
/*
 * dnsmasq_pause - stop it answering, for good: SIGSTOP, and wait until it
 * is stopped.  Its sockets stay bound, so no other server can take the
 * port and answer there (as one could once the port is freed, on a
 * shared machine); every later query to it times out.  dnsmasq_stop
 * ends a paused server as any other.
 */
void dnsmasq_pause(struct dnsmasq *m);
/* dnsmasq_clean - stop it and remove its query log and directory. */
void dnsmasq_clean(struct dnsmasq *m);
/* dnsmasq_log_count - lines of the query log that contain needle. */
int dnsmasq_log_count(const struct dnsmasq *m, const char *needle);

#endif
