/*
 * listener - the listening TCP sockets of one protocol (submission,
 * submissions, IMAP, ...), from a config_listen list such as
 * "0.0.0.0:587, [::]:587".
 *
 * Each endpoint's host is an IPv4 or IPv6 address, or a name resolved
 * once, at open, with getaddrinfo() (every address it gives is bound).
 * IPv6 sockets are IPV6_V6ONLY, so "[::]:587" and "0.0.0.0:587" can be
 * listed together; every socket has SO_REUSEADDR (libuv sets it), so a
 * restart does not wait out TIME_WAIT.
 *
 * The listener owns its sockets; listener_close() closes them and frees
 * the listener.  When a connection is pending, cb(arg, server) runs; it
 * must either take the connection with conn_accept(..., server, ...) or
 * drop it with listener_reject(server): a connection left in place stops
 * that socket from accepting (libuv holds it until someone accepts).
 */
#ifndef KURIER_CORE_LISTENER_H
#define KURIER_CORE_LISTENER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"

struct listener;

typedef void listener_accept_cb(void *arg, uv_stream_t *server);

/*
 * listener_open - bind and listen on every address of addrs, or none:
 * on any failure the sockets opened so far are closed before it returns
 * (the ports are free again at once; the memory goes when the loop runs
 * their close callbacks).  backlog is listen(2)'s.  addrs is copied.
 * Returns 0 with *out set, or a negative errno with err naming the
 * address, e.g. "0.0.0.0:587: address already in use".
 */
int listener_open(struct listener **out, uv_loop_t *loop,
    const struct config_listen *addrs, int backlog, listener_accept_cb *cb,
    void *arg, char *err, size_t errsz);

/*
 * listener_pause - stop accepting, e.g. at the connection limit.  New
 * connections wait in the kernel's backlog; libuv may already hold one
 * per socket, which listener_resume() hands to cb.
 */
void listener_pause(struct listener *l);
/*
 * listener_resume - accept again.  Connections that arrived while paused
 * are handed to cb before this returns (cb may pause again).
 */
void listener_resume(struct listener *l);

/*
 * listener_reject - close the pending connection on server without
 * serving it.  Only from inside the accept callback.  0 or negative errno.
 */
int listener_reject(uv_stream_t *server);

/*
 * listener_close - close every socket; when all are closed, free l and
 * call closed(arg) (closed may be NULL).  cb is not called after this.
 * Connections already accepted are not affected.
 */
void listener_close(struct listener *l, void (*closed)(void *arg), void *arg);

/* The number of bound sockets (one endpoint may give several). */
unsigned listener_count(const struct listener *l);
/* The port socket i is bound to (the kernel's choice for port 0); 0 if none. */
uint16_t listener_port(const struct listener *l, unsigned i);
/*
 * The listening stream of socket i (NULL if none), as the accept callback
 * receives it: to tell which socket a connection came in on.  Owned by l.
 */
uv_stream_t *listener_stream(const struct listener *l, unsigned i);

#endif
