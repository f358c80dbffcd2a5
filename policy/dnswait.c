/*
 * dnswait.c - a c-ares channel driven to an answer, blocking, for the
 * resolvers that libopendkim and libspf2 call on the thread pool.
 */
#include "policy/dnswait_int.h"

#include <ares.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/log.h"
#include "core/str.h"

int
dnswait__library_init(const char *server, char *err, size_t errsz)
{
	ares_channel ch;
	int r;

	if ((r = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS)
		return str_err(err, errsz, -EIO, "c-ares: %s", ares_strerror(r));
	if ((r = ares_init(&ch)) != ARES_SUCCESS) {
		ares_library_cleanup();
		return str_err(err, errsz, -EIO, "c-ares: %s", ares_strerror(r));
	}
	if (server[0] != '\0' &&
	    ((r = ares_set_servers_ports_csv(ch, server)) != ARES_SUCCESS ||
	    strchr(server, ',') != NULL)) {
		char q[300];

		ares_destroy(ch);
		ares_library_cleanup();
		return str_err(err, errsz, -EINVAL, "dns_server: %s is not an IP "
		    "address with an optional port", log_quotes(q, sizeof q, server));
	}
	ares_destroy(ch);
	return 0;
}

uint64_t
dnswait__mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
dnswait__open(ares_channel *ch, const char *server, uint64_t timeout_ms, int edns)
{
	struct ares_options o;
	int r;

	memset(&o, 0, sizeof o);
	/* Two tries (c-ares doubles the second's wait) within the query timeout. */
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_EDNS;
	o.timeout = (int)(timeout_ms / 3 > 50 ? timeout_ms / 3 : 50);
	o.tries = 2;
	o.ednspsz = edns;
	r = ares_init_options(ch, &o, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS |
	    ARES_OPT_TRIES | ARES_OPT_EDNSPSZ);
	if (r != ARES_SUCCESS)
		return r;
	if (server[0] != '\0' &&
	    (r = ares_set_servers_ports_csv(*ch, server)) != ARES_SUCCESS) {
		ares_destroy(*ch);
		return r;
	}
	return ARES_SUCCESS;
}

int
dnswait__step(ares_channel ch, int abort_fd, uint64_t remain_ms, const bool *done)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	struct pollfd pfd[ARES_GETSOCK_MAXNUM + 1];
	struct timeval maxtv, tv, *tvp;
	unsigned bits;
	int n = 0, ms, r;

	/* Bits as unsigned: ARES_GETSOCK_WRITABLE() shifts 1 into the sign bit. */
	bits = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
	for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
		short ev = 0;

		if (bits & (1u << i))
			ev |= POLLIN;
		if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
			ev |= POLLOUT;
		if (ev != 0)
			pfd[n++] = (struct pollfd){ .fd = socks[i], .events = ev };
	}
	pfd[n] = (struct pollfd){ .fd = abort_fd, .events = POLLIN };
	maxtv.tv_sec = (time_t)(remain_ms / 1000);
	maxtv.tv_usec = (suseconds_t)(remain_ms % 1000 * 1000);
	tvp = ares_timeout(ch, &maxtv, &tv);
	ms = (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000);
	r = poll(pfd, (nfds_t)n + 1, ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (pfd[n].revents != 0)
		return -ECANCELED;
	if (r == 0) {
		ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
		return 0;
	}
	for (int i = 0; i < n && !*done; i++) {
		ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

		if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
			rfd = pfd[i].fd;
		if (pfd[i].revents & POLLOUT)
			wfd = pfd[i].fd;
		if (rfd != ARES_SOCKET_BAD || wfd != ARES_SOCKET_BAD)
			ares_process_fd(ch, rfd, wfd);
	}
	return 0;
}
