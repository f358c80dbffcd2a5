/*
 * dnswait_int.h - a c-ares channel driven to an answer on a thread-pool
 * worker, the way libopendkim (dkimverify.c) and libspf2 (spf_dns.c)
 * expect their resolvers to block; included only inside policy/.
 *
 * The channel belongs to the caller, who destroys it.  Waiting uses
 * poll() rather than select(): a busy kurier holds more than FD_SETSIZE
 * descriptors.
 */
#ifndef KURIER_POLICY_DNSWAIT_INT_H
#define KURIER_POLICY_DNSWAIT_INT_H

#include <ares.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * dnswait__library_init - ares_library_init(), and a check of server
 * now rather than on each query: "" (the system's resolvers) or one IP
 * address with an optional port.  0, with the library for the caller to
 * ares_library_cleanup() when it closes; else -EIO (c-ares failed) or
 * -EINVAL (server), err saying why, and the library cleaned up.
 */
int dnswait__library_init(const char *server, char *err, size_t errsz);

/* dnswait__mono_ms - the monotonic clock in ms. */
uint64_t dnswait__mono_ms(void);

/*
 * dnswait__open - *ch for server ("" for the system's resolvers, else
 * ares_set_servers_ports_csv() form): no search list, EDNS with edns
 * bytes, two tries within timeout_ms.  An ARES_* status; *ch is only
 * set on ARES_SUCCESS.
 */
int dnswait__open(ares_channel *ch, const char *server, uint64_t timeout_ms, int edns);

/*
 * dnswait__step - wait up to remain_ms (less when c-ares' own timeout
 * comes first) for ch's sockets or abort_fd, and let c-ares process
 * what became ready, stopping once *done (set by the query's callback).
 * 0 to go on (sockets or a c-ares timeout processed, or poll()
 * interrupted), -ECANCELED once abort_fd is readable, or poll()'s
 * negative errno.  Does not cancel ch's queries.
 */
int dnswait__step(ares_channel ch, int abort_fd, uint64_t remain_ms, const bool *done);

#endif
