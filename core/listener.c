/*
 * listener - listening TCP sockets for one protocol.  See listener.h.
 *
 * Pausing uses libuv's own behaviour: when the connection callback
 * returns without uv_accept(), libuv keeps the accepted descriptor and
 * stops polling that socket until uv_accept() is called.  So a paused
 * listener only remembers which sockets hold a connection and hands them
 * out on resume.  libuv has no way to stop listening short of closing the
 * socket, which would give the port away.
 */
#include "core/listener.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"

/* One accept failure line per this many milliseconds (EMFILE storms). */
#define LISTENER_WARN_MS 1000

struct listener_sock {
	uv_tcp_t tcp;                 /* tcp.data = this */
	struct listener *l;
	bool held;                    /* libuv holds a connection (paused) */
	char name[CONFIG_HOST_MAX + 80]; /* "0.0.0.0:587", for logs */
};

struct listener {
	uv_loop_t *loop;
	listener_accept_cb *cb;
	void *arg;
	void (*closed)(void *arg);
	void *closed_arg;
	struct listener_sock *socks;
	unsigned n;                   /* sockets initialised */
	unsigned open;                /* handles not yet closed */
	bool paused;
	bool closing;
	uint64_t warned_ms;           /* uv_now() of the last accept warning */
};

/* An address to bind, with its name for messages. */
struct listener_addr {
	struct sockaddr_storage ss;
	char name[CONFIG_HOST_MAX + 80];
};

static void
sock_closed_cb(uv_handle_t *h)
{
	struct listener_sock *ls = h->data;
	struct listener *l = ls->l;
	void (*closed)(void *);
	void *arg;

	if (--l->open > 0)
		return;
	closed = l->closed;
	arg = l->closed_arg;
	free(l->socks);
	free(l);
	if (closed != NULL)
		closed(arg);
}

static void
listener_close_all(struct listener *l)
{
	l->closing = true;
	if (l->open == 0) {
		/* Nothing was ever initialised. */
		void (*closed)(void *) = l->closed;
		void *arg = l->closed_arg;

		free(l->socks);
		free(l);
		if (closed != NULL)
			closed(arg);
		return;
	}
	for (unsigned i = 0; i < l->n; i++)
		if (!uv_is_closing((uv_handle_t *)&l->socks[i].tcp))
			uv_close((uv_handle_t *)&l->socks[i].tcp, sock_closed_cb);
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct listener_sock *ls = server->data;
	struct listener *l = ls->l;

	if (l->closing)
		return;
	if (status < 0) {
		uint64_t now = uv_now(l->loop);

		if (l->warned_ms == 0 || now - l->warned_ms >= LISTENER_WARN_MS) {
			l->warned_ms = now;
			log_warn("listener", "accept_failed", "listen=%s error=\"%s\"%s",
			    ls->name, uv_strerror(status), status == UV_EMFILE ||
			    status == UV_ENFILE ?
			    " hint=\"raise the open files limit (LimitNOFILE) or lower max_connections\"" : "");
		}
		return;
	}
	if (l->paused) {
		ls->held = true;
		return;
	}
	l->cb(l->arg, server);
}

static void
reject_closed_cb(uv_handle_t *h)
{
	free(h);
}

int
listener_reject(uv_stream_t *server)
{
	uv_tcp_t *t = xmalloc(sizeof *t);
	int r;

	if ((r = uv_tcp_init(server->loop, t)) != 0) {
		free(t);
		return r;
	}
	r = uv_accept(server, (uv_stream_t *)t);
	uv_close((uv_handle_t *)t, reject_closed_cb);
	return r;
}

/* Turn one endpoint into addresses appended to *v. */
static int
resolve(const struct config_endpoint *ep, struct listener_addr **v,
    unsigned *nv, char *err, size_t errsz)
{
	char label[CONFIG_HOST_MAX + 16];
	struct addrinfo hints, *res, *ai;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	int r;

	config_endpoint_str(ep, label, sizeof label);
	if (ep->unix_path[0] != '\0') {
		snprintf(err, errsz, "%s: a listener needs host:port", label);
		return -EINVAL;
	}
	if (uv_ip4_addr(ep->host, ep->port, &sin) == 0 ||
	    uv_ip6_addr(ep->host, ep->port, &sin6) == 0) {
		*v = xreallocarray(*v, *nv + 1, sizeof **v);
		memset(&(*v)[*nv], 0, sizeof **v);
		if (uv_ip4_addr(ep->host, ep->port, &sin) == 0)
			memcpy(&(*v)[*nv].ss, &sin, sizeof sin);
		else
			memcpy(&(*v)[*nv].ss, &sin6, sizeof sin6);
		str_copy((*v)[*nv].name, label, sizeof (*v)[*nv].name);
		(*nv)++;
		return 0;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
	if ((r = getaddrinfo(ep->host, NULL, &hints, &res)) != 0) {
		snprintf(err, errsz, "%s: cannot resolve: %s", label,
		    r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -EADDRNOTAVAIL;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct sockaddr_storage ss;
		char ip[INET6_ADDRSTRLEN] = "";
		bool dup = false;

		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof ss)
			continue;
		memset(&ss, 0, sizeof ss);
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		if (ai->ai_family == AF_INET) {
			((struct sockaddr_in *)&ss)->sin_port = htons(ep->port);
			uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
		} else {
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(ep->port);
			uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
		}
		for (unsigned i = 0; i < *nv && !dup; i++)
			dup = memcmp(&(*v)[i].ss, &ss, sizeof ss) == 0;
		if (dup)
			continue;
		*v = xreallocarray(*v, *nv + 1, sizeof **v);
		(*v)[*nv].ss = ss;
		snprintf((*v)[*nv].name, sizeof (*v)[*nv].name, "%s (%s)", label, ip);
		(*nv)++;
	}
	freeaddrinfo(res);
	return 0;
}

int
listener_open(struct listener **out, uv_loop_t *loop,
    const struct config_listen *addrs, int backlog, listener_accept_cb *cb,
    void *arg, char *err, size_t errsz)
{
	struct listener_addr *v = NULL;
	unsigned nv = 0;
	struct listener *l;
	int r = 0;

	*out = NULL;
	if (addrs->n == 0) {
		snprintf(err, errsz, "no address to listen on");
		return -EINVAL;
	}
	for (unsigned i = 0; i < addrs->n && r == 0; i++)
		r = resolve(&addrs->ep[i], &v, &nv, err, errsz);
	if (r == 0 && nv == 0) {
		snprintf(err, errsz, "%s: no address to listen on", addrs->ep[0].host);
		r = -EADDRNOTAVAIL;
	}
	if (r < 0) {
		free(v);
		return r;
	}
	l = xcalloc(1, sizeof *l);
	l->loop = loop;
	l->cb = cb;
	l->arg = arg;
	l->socks = xcalloc(nv, sizeof *l->socks);
	for (unsigned i = 0; i < nv; i++) {
		struct listener_sock *ls = &l->socks[i];
		const struct sockaddr *sa = (const struct sockaddr *)&v[i].ss;

		ls->l = l;
		str_copy(ls->name, v[i].name, sizeof ls->name);
		if ((r = uv_tcp_init(loop, &ls->tcp)) != 0) {
			snprintf(err, errsz, "%s: %s", ls->name, uv_strerror(r));
			break;
		}
		ls->tcp.data = ls;
		l->n++;
		l->open++;
		/* libuv reports a bind's EADDRINUSE from uv_listen(). */
		if ((r = uv_tcp_bind(&ls->tcp, sa,
		    sa->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0)) != 0 ||
		    (r = uv_listen((uv_stream_t *)&ls->tcp, backlog, on_connection)) != 0) {
			snprintf(err, errsz, "%s: %s", ls->name, uv_strerror(r));
			break;
		}
	}
	free(v);
	if (r != 0) {
		listener_close_all(l);
		return r;
	}
	*out = l;
	return 0;
}

void
listener_pause(struct listener *l)
{
	l->paused = true;
}

void
listener_resume(struct listener *l)
{
	l->paused = false;
	for (unsigned i = 0; i < l->n && !l->paused && !l->closing; i++) {
		if (l->socks[i].held) {
			l->socks[i].held = false;
			l->cb(l->arg, (uv_stream_t *)&l->socks[i].tcp);
		}
	}
}

void
listener_close(struct listener *l, void (*closed)(void *arg), void *arg)
{
	if (l->closing)
		return;
	l->closed = closed;
	l->closed_arg = arg;
	listener_close_all(l);
}

unsigned
listener_count(const struct listener *l)
{
	return l->n;
}

uint16_t
listener_port(const struct listener *l, unsigned i)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;

	if (i >= l->n || uv_tcp_getsockname(&l->socks[i].tcp,
	    (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

uv_stream_t *
listener_stream(const struct listener *l, unsigned i)
{
	return i < l->n ? (uv_stream_t *)&l->socks[i].tcp : NULL;
}
