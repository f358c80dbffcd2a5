/*
 * ipcount - open connections per client address, for a server's
 * per-address connection limit (SMTP's [relay] max_connections_per_ip,
 * IMAP's and POP3's [mailbox] max_connections_per_ip).
 *
 * A hash table of addresses (the text conn_peer_addr() gives) with a
 * count each; an address's entry exists only while its count is above
 * zero, so memory follows the clients connected now, not every client
 * ever seen.  Not thread-safe: one server on one loop owns one table.
 */
#ifndef KURIER_CORE_IPCOUNT_H
#define KURIER_CORE_IPCOUNT_H

#include <stdbool.h>

struct ipcount;

struct ipcount *ipcount_new(void);
/* ipcount_free - free the table and every entry; NULL is ignored. */
void ipcount_free(struct ipcount *t);
/*
 * ipcount_take - count one more connection from ip, unless ip already
 * has limit: then false and nothing counted.
 */
bool ipcount_take(struct ipcount *t, const char *ip, unsigned limit);
/* ipcount_release - one connection from ip ended (ignored if none is counted). */
void ipcount_release(struct ipcount *t, const char *ip);
/* ipcount_get - connections counted for ip now. */
unsigned ipcount_get(const struct ipcount *t, const char *ip);

#endif
