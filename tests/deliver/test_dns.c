/*
 * test_dns - deliver/dns against real resolvers on loopback.
 *
 * Most tests start dnsmasq on a free 127.0.0.1 port with the records in
 * ZONE (and a few extra options), then stop it by PID in teardown.  A
 * test that shows an answer came from the cache pauses it first
 * (dnsmasq_pause): its port stays bound and silent, so no other server
 * on the machine can take it and answer in its place.  Under
 * .test, names not listed are NXDOMAIN (--local=/test/); broken.test
 * goes to an upstream port where nothing listens, so dnsmasq never
 * answers (timeout); refused.test has no upstream at all (REFUSED).
 * SERVFAIL, NXDOMAIN for the wrong question, and silence counted query
 * by query come from a responder in this file on the test's own loop.
 *
 * Every wait runs the loop under a guard timer; every test closes the
 * resolver and asserts uv_loop_close() == 0.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "deliver/dns.h"

#include "tests/dnsmasq.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define GUARD_MS 5000

/* The zone every dnsmasq of this file serves. */
static const char *const ZONE[] = {
	"--mx-host=order.test,c.order.test,30",
	"--mx-host=order.test,a.order.test,10",
	"--mx-host=order.test,b.order.test,20",
	"--mx-host=eq.test,first.eq.test,5",
	"--mx-host=eq.test,e1.eq.test,10",
	"--mx-host=eq.test,e2.eq.test,10",
	"--mx-host=eq.test,e3.eq.test,10",
	"--mx-host=eq.test,last.eq.test,20",
	"--mx-host=nullmx.test,.,0",
	"--host-record=host.test,127.0.0.7,2001:db8::7",
	"--host-record=v4.test,127.0.0.8",
	"--host-record=v6.test,2001:db8::9",
	NULL,
};

/* dnsmasq (tests/dnsmasq.h), started and stopped by PID. */
static struct dnsmasq dm;

static void
teardown(void)
{
	dnsmasq_stop(&dm);
}

/* A resolver on a loop, and a bounded way to run it. */

struct h {
	uv_loop_t loop;
	uv_timer_t guard;
	bool timed_out;
	struct dns *d;
	int done;        /* callbacks run */
	int closed;
	int done_at_close;
};

static bool in_call; /* a dns_* call is running */

static void
on_guard(uv_timer_t *t)
{
	struct h *h = t->data;

	h->timed_out = true;
}

static void
h_open(struct h *h, const char *server, uint64_t timeout_ms)
{
	char err[256];

	memset(h, 0, sizeof *h);
	ck_assert_int_eq(uv_loop_init(&h->loop), 0);
	uv_timer_init(&h->loop, &h->guard);
	h->guard.data = h;
	ck_assert_msg(dns_open(&h->d, &h->loop, server, timeout_ms, err, sizeof err) == 0,
	    "dns_open: %s", err);
}

/* Run the loop until *counter reaches target; fail after ms. */
static void
h_wait(struct h *h, const int *counter, int target, uint64_t ms)
{
	h->timed_out = false;
	uv_timer_start(&h->guard, on_guard, ms, 0);
	while (*counter < target && !h->timed_out)
		uv_run(&h->loop, UV_RUN_ONCE);
	uv_timer_stop(&h->guard);
	ck_assert_msg(*counter >= target, "timed out waiting: %d of %d", *counter, target);
}

/* Let the loop run for ms, whatever happens. */
static void
h_sleep(struct h *h, uint64_t ms)
{
	h->timed_out = false;
	uv_timer_start(&h->guard, on_guard, ms, 0);
	while (!h->timed_out)
		uv_run(&h->loop, UV_RUN_ONCE);
}

static void
on_closed(void *arg)
{
	struct h *h = arg;

	h->closed++;
	h->done_at_close = h->done;
	h->d = NULL;
}

static void
h_close(struct h *h)
{
	if (h->d != NULL)
		dns_close(h->d, on_closed, h);
	ck_assert_int_eq(h->closed, 0);
	h_wait(h, &h->closed, 1, GUARD_MS);
	uv_close((uv_handle_t *)&h->guard, NULL);
	uv_run(&h->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(h->closed, 1);
	ck_assert_int_eq(uv_loop_close(&h->loop), 0);
}

/* Recorded answers. */

struct mxr {
	struct h *h;
	int calls;
	enum dns_status st;
	size_t n;
	struct dns_mx mx[DNS_MX_MAX];
	uint32_t ttl;
	char reason[64];
};

struct addrr {
	struct h *h;
	int calls;
	enum dns_status st;
	size_t n;
	struct sockaddr_storage a[2 * DNS_ADDR_MAX];
	uint32_t ttl;
	char reason[64];
};

static void
on_mx(void *arg, enum dns_status st, const struct dns_mx *mx, size_t n, uint32_t ttl)
{
	struct mxr *r = arg;

	ck_assert_msg(!in_call, "callback inside a dns_* call");
	ck_assert_uint_le(n, DNS_MX_MAX);
	ck_assert(st == DNS_OK ? n > 0 : n == 0);
	r->calls++;
	r->st = st;
	r->n = n;
	if (n > 0)
		memcpy(r->mx, mx, n * sizeof *mx);
	r->ttl = ttl;
	snprintf(r->reason, sizeof r->reason, "%s", dns_reason(r->h->d));
	r->h->done++;
}

static void
on_addr(void *arg, enum dns_status st, const struct sockaddr_storage *a, size_t n, uint32_t ttl)
{
	struct addrr *r = arg;

	ck_assert_msg(!in_call, "callback inside a dns_* call");
	ck_assert_uint_le(n, 2 * DNS_ADDR_MAX);
	ck_assert(st == DNS_OK ? n > 0 : n == 0);
	r->calls++;
	r->st = st;
	r->n = n;
	if (n > 0)
		memcpy(r->a, a, n * sizeof *a);
	r->ttl = ttl;
	snprintf(r->reason, sizeof r->reason, "%s", dns_reason(r->h->d));
	r->h->done++;
}

static int
ask_mx(struct h *h, const char *name, struct mxr *r)
{
	int rc;

	memset(r, 0, sizeof *r);
	r->h = h;
	in_call = true;
	rc = dns_mx(h->d, name, on_mx, r);
	in_call = false;
	ck_assert_int_eq(r->calls, 0);
	return rc;
}

static int
ask_addr(struct h *h, const char *name, struct addrr *r)
{
	int rc;

	memset(r, 0, sizeof *r);
	r->h = h;
	in_call = true;
	rc = dns_addr(h->d, name, on_addr, r);
	in_call = false;
	ck_assert_int_eq(r->calls, 0);
	return rc;
}

/* Ask, wait for the one answer. */
static void
mx_sync(struct h *h, const char *name, struct mxr *r)
{
	int before = h->done;

	ck_assert_int_eq(ask_mx(h, name, r), 0);
	h_wait(h, &h->done, before + 1, GUARD_MS);
	ck_assert_int_eq(r->calls, 1);
}

static void
addr_sync(struct h *h, const char *name, struct addrr *r)
{
	int before = h->done;

	ck_assert_int_eq(ask_addr(h, name, r), 0);
	h_wait(h, &h->done, before + 1, GUARD_MS);
	ck_assert_int_eq(r->calls, 1);
}

static const char *
addr_str(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, (socklen_t)size);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, (socklen_t)size);
	else
		snprintf(buf, size, "family %d", ss->ss_family);
	return buf;
}

static uint16_t
addr_port(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port) :
	    ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/*
 * A responder on the test's loop: SERVFAIL or NXDOMAIN to every query,
 * or no answer at all, counted; NXDOMAIN may name another question than
 * the one asked.
 */

enum fake_mode {
	FAKE_SERVFAIL,
	FAKE_NXDOMAIN,
	FAKE_NXDOMAIN_OTHER,
	FAKE_SILENT,
};

struct fake {
	uv_udp_t udp;
	uint16_t port;
	enum fake_mode mode;
	int queries;
	char server[32];
};

static void
fake_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
	static char mem[4096];

	(void)hd;
	(void)suggested;
	buf->base = mem;
	buf->len = sizeof mem;
}

static void
fake_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
    unsigned flags)
{
	struct fake *f = u->data;
	uv_buf_t out;

	(void)flags;
	if (n < 12 || from == NULL)
		return;
	f->queries++;
	if (f->mode == FAKE_SILENT)
		return;
	/* The query, turned into an answer: QR and RA set, RCODE 2 or 3. */
	buf->base[2] = (char)(buf->base[2] | 0x80);
	buf->base[3] = (char)(f->mode == FAKE_SERVFAIL ? 0x82 : 0x83);
	/* The first letter of the question's name, changed. */
	if (f->mode == FAKE_NXDOMAIN_OTHER && n > 13)
		buf->base[13] = (char)(buf->base[13] ^ 1);
	out = uv_buf_init(buf->base, (unsigned)n);
	uv_udp_try_send(u, &out, 1, from);
}

static void
fake_start(struct fake *f, uv_loop_t *loop, enum fake_mode mode)
{
	struct sockaddr_in sin;
	int len = sizeof sin;

	memset(f, 0, sizeof *f);
	f->mode = mode;
	uv_ip4_addr("127.0.0.1", 0, &sin);
	ck_assert_int_eq(uv_udp_init(loop, &f->udp), 0);
	f->udp.data = f;
	ck_assert_int_eq(uv_udp_bind(&f->udp, (struct sockaddr *)&sin, 0), 0);
	ck_assert_int_eq(uv_udp_getsockname(&f->udp, (struct sockaddr *)&sin, &len), 0);
	f->port = ntohs(sin.sin_port);
	snprintf(f->server, sizeof f->server, "127.0.0.1:%u", f->port);
	ck_assert_int_eq(uv_udp_recv_start(&f->udp, fake_alloc, fake_recv), 0);
}

/* Tests. */

START_TEST(test_mx_order)
{
	static const char *const want[] = { "a.order.test", "b.order.test", "c.order.test" };
	struct h h;
	struct mxr r;

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	mx_sync(&h, "order.test", &r);
	ck_assert_int_eq(r.st, DNS_OK);
	ck_assert_str_eq(r.reason, "");
	ck_assert_uint_eq(r.n, 3);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_str_eq(r.mx[i].host, want[i]);
		ck_assert_uint_eq(r.mx[i].pref, 10 * (i + 1));
	}
	ck_assert_uint_eq(r.ttl, 300);
	h_close(&h);
}
END_TEST

/*
 * Equal preferences come in a random order, drawn anew per call (cache
 * hits included).  With 60 calls, the chance that one of three hosts is
 * never first by luck is 3 * (2/3)^60, about 1e-10.
 */
START_TEST(test_mx_equal_shuffled)
{
	const char *eq[] = { "e1.eq.test", "e2.eq.test", "e3.eq.test" };
	int first[3] = { 0, 0, 0 };
	struct h h;
	struct mxr r;

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	for (int call = 0; call < 60; call++) {
		bool seen[3] = { false, false, false };

		mx_sync(&h, "eq.test", &r);
		ck_assert_int_eq(r.st, DNS_OK);
		ck_assert_uint_eq(r.n, 5);
		ck_assert_str_eq(r.mx[0].host, "first.eq.test");
		ck_assert_uint_eq(r.mx[0].pref, 5);
		ck_assert_str_eq(r.mx[4].host, "last.eq.test");
		ck_assert_uint_eq(r.mx[4].pref, 20);
		for (size_t i = 1; i < 4; i++) {
			size_t k;

			ck_assert_uint_eq(r.mx[i].pref, 10);
			for (k = 0; k < 3; k++)
				if (strcmp(r.mx[i].host, eq[k]) == 0)
					break;
			ck_assert_uint_lt(k, 3);
			ck_assert(!seen[k]);
			seen[k] = true;
			if (i == 1)
				first[k]++;
		}
	}
	for (size_t k = 0; k < 3; k++)
		ck_assert_msg(first[k] > 0, "%s never first in 60 calls", eq[k]);
	h_close(&h);
}
END_TEST

/*
 * 40 MX records do not fit in 512 bytes: dnsmasq truncates, c-ares asks
 * again over TCP.  The DNS_MX_MAX best are kept.
 */
START_TEST(test_mx_tcp)
{
	const char *extra[41];
	char args[40][96];
	struct h h;
	struct mxr r;
	char want[96];

	for (int i = 0; i < 40; i++) {
		snprintf(args[i], sizeof args[i],
		    "--mx-host=big.test,a-rather-long-mail-exchanger-name-%02d.big.test,%d",
		    39 - i, 40 - i);
		extra[i] = args[i];
	}
	extra[40] = NULL;
	dnsmasq_start(&dm, 300, false, ZONE, extra);
	h_open(&h, dm.server, 2000);
	mx_sync(&h, "big.test", &r);
	ck_assert_int_eq(r.st, DNS_OK);
	ck_assert_uint_eq(r.n, DNS_MX_MAX);
	for (unsigned i = 0; i < DNS_MX_MAX; i++) {
		snprintf(want, sizeof want, "a-rather-long-mail-exchanger-name-%02u.big.test", i);
		ck_assert_str_eq(r.mx[i].host, want);
		ck_assert_uint_eq(r.mx[i].pref, i + 1);
	}
	h_close(&h);
}
END_TEST

START_TEST(test_null_mx)
{
	struct h h;
	struct mxr r;

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	mx_sync(&h, "nullmx.test", &r);
	ck_assert_int_eq(r.st, DNS_OK);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_str_eq(r.mx[0].host, "");
	ck_assert_uint_eq(r.mx[0].pref, 0);
	h_close(&h);
}
END_TEST

START_TEST(test_nxdomain_nodata)
{
	struct h h;
	struct mxr m;
	struct addrr a;

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	mx_sync(&h, "nx.test", &m);
	ck_assert_int_eq(m.st, DNS_NXDOMAIN);
	ck_assert_str_eq(m.reason, "NXDOMAIN");
	ck_assert_uint_eq(m.ttl, DNS_NEG_TTL);
	addr_sync(&h, "nx.test", &a);
	ck_assert_int_eq(a.st, DNS_NXDOMAIN);
	/* host.test has addresses but no MX; order.test the reverse. */
	mx_sync(&h, "host.test", &m);
	ck_assert_int_eq(m.st, DNS_NODATA);
	ck_assert_uint_eq(m.ttl, DNS_NEG_TTL);
	addr_sync(&h, "order.test", &a);
	ck_assert_int_eq(a.st, DNS_NODATA);
	h_close(&h);
}
END_TEST

START_TEST(test_addr_families)
{
	struct h h;
	struct addrr a;
	char buf[64];

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	addr_sync(&h, "HOST.test.", &a);
	ck_assert_int_eq(a.st, DNS_OK);
	ck_assert_uint_eq(a.n, 2);
	ck_assert_int_eq(a.a[0].ss_family, AF_INET);
	ck_assert_str_eq(addr_str(&a.a[0], buf, sizeof buf), "127.0.0.7");
	ck_assert_uint_eq(addr_port(&a.a[0]), 0);
	ck_assert_int_eq(a.a[1].ss_family, AF_INET6);
	ck_assert_str_eq(addr_str(&a.a[1], buf, sizeof buf), "2001:db8::7");
	ck_assert_uint_eq(addr_port(&a.a[1]), 0);
	ck_assert_uint_eq(a.ttl, 300);

	addr_sync(&h, "v4.test", &a);
	ck_assert_int_eq(a.st, DNS_OK);
	ck_assert_uint_eq(a.n, 1);
	ck_assert_str_eq(addr_str(&a.a[0], buf, sizeof buf), "127.0.0.8");
	addr_sync(&h, "v6.test", &a);
	ck_assert_int_eq(a.st, DNS_OK);
	ck_assert_uint_eq(a.n, 1);
	ck_assert_str_eq(addr_str(&a.a[0], buf, sizeof buf), "2001:db8::9");
	h_close(&h);
}
END_TEST

/* Literals answer without a server: this resolver has none that works. */
START_TEST(test_addr_literal)
{
	static const struct {
		const char *in, *out;
		int family;
	} cases[] = {
		{ "192.0.2.1", "192.0.2.1", AF_INET },
		{ "[192.0.2.1]", "192.0.2.1", AF_INET },
		{ "2001:db8::1", "2001:db8::1", AF_INET6 },
		{ "[2001:db8::1]", "2001:db8::1", AF_INET6 },
		{ "[IPv6:2001:db8::1]", "2001:db8::1", AF_INET6 },
		{ "[ipv6:::1]", "::1", AF_INET6 },
	};
	struct addrr a[NELEM(cases)];
	struct h h;
	char buf[64];

	h_open(&h, "127.0.0.1:9", 2000);
	for (size_t i = 0; i < NELEM(cases); i++)
		ck_assert_int_eq(ask_addr(&h, cases[i].in, &a[i]), 0);
	ck_assert_int_eq(h.done, 0);
	h_wait(&h, &h.done, (int)NELEM(cases), GUARD_MS);
	for (size_t i = 0; i < NELEM(cases); i++) {
		ck_assert_int_eq(a[i].calls, 1);
		ck_assert_int_eq(a[i].st, DNS_OK);
		ck_assert_uint_eq(a[i].n, 1);
		ck_assert_int_eq(a[i].a[0].ss_family, cases[i].family);
		ck_assert_str_eq(addr_str(&a[i].a[0], buf, sizeof buf), cases[i].out);
		ck_assert_uint_eq(a[i].ttl, DNS_TTL_MAX);
	}
	/* "[IPv6:" takes IPv6 only; a bracket must close. */
	ck_assert(!dns_parse_literal("[IPv6:192.0.2.1]", NULL));
	ck_assert(!dns_parse_literal("[192.0.2.1", NULL));
	ck_assert(!dns_parse_literal("192.0.2", NULL));
	ck_assert(!dns_parse_literal("example.test", NULL));
	h_close(&h);
}
END_TEST

/*
 * A server that never answers: each lookup is sent DNS_TRIES (2) times,
 * the retransmission included in dns_timeout, then ends as TEMPFAIL
 * "timeout", uncached.  No timer fires early: not before dns_timeout
 * (less the rounding of its split into t + 2t).
 */
START_TEST(test_timeout)
{
	struct h h;
	struct fake f;
	struct mxr m;
	struct addrr a;
	uint64_t t0, ms;
	char err[256];

	memset(&h, 0, sizeof h);
	ck_assert_int_eq(uv_loop_init(&h.loop), 0);
	fake_start(&f, &h.loop, FAKE_SILENT);
	uv_timer_init(&h.loop, &h.guard);
	h.guard.data = &h;
	ck_assert_int_eq(dns_open(&h.d, &h.loop, f.server, 1000, err, sizeof err), 0);

	uv_update_time(&h.loop);
	t0 = uv_now(&h.loop);
	ck_assert_int_eq(ask_mx(&h, "example.test", &m), 0);
	h_wait(&h, &h.done, 1, GUARD_MS);
	ms = uv_now(&h.loop) - t0;
	ck_assert_int_eq(m.st, DNS_TEMPFAIL);
	ck_assert_str_eq(m.reason, "timeout");
	ck_assert_uint_eq(m.ttl, 0);
	ck_assert_int_eq(f.queries, 2);
	ck_assert_msg(ms >= 900, "ended after %llu ms", (unsigned long long)ms);

	/* An address lookup asks A and AAAA, each twice. */
	addr_sync(&h, "example.test", &a);
	ck_assert_int_eq(a.st, DNS_TEMPFAIL);
	ck_assert_str_eq(a.reason, "timeout");
	ck_assert_int_eq(f.queries, 2 + 4);
	ck_assert_uint_eq(dns_cache_size(h.d), 0);
	uv_close((uv_handle_t *)&f.udp, NULL);
	h_close(&h);
}
END_TEST

START_TEST(test_refused)
{
	struct h h;
	struct mxr m;

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	mx_sync(&h, "x.refused.test", &m);
	ck_assert_int_eq(m.st, DNS_TEMPFAIL);
	ck_assert_str_eq(m.reason, "REFUSED");
	h_close(&h);
}
END_TEST

/* SERVFAIL is temporary and never cached: the second lookup asks again. */
START_TEST(test_servfail_not_cached)
{
	struct h h;
	struct fake f;
	struct mxr m;
	struct addrr a;
	int after_first;

	memset(&h, 0, sizeof h);
	ck_assert_int_eq(uv_loop_init(&h.loop), 0);
	fake_start(&f, &h.loop, FAKE_SERVFAIL);
	{
		char err[256];

		uv_timer_init(&h.loop, &h.guard);
		h.guard.data = &h;
		ck_assert_int_eq(dns_open(&h.d, &h.loop, f.server, 2000, err, sizeof err), 0);
	}
	mx_sync(&h, "example.test", &m);
	ck_assert_int_eq(m.st, DNS_TEMPFAIL);
	ck_assert_str_eq(m.reason, "SERVFAIL");
	after_first = f.queries;
	ck_assert_int_ge(after_first, 1);
	mx_sync(&h, "example.test", &m);
	ck_assert_int_eq(m.st, DNS_TEMPFAIL);
	ck_assert_int_gt(f.queries, after_first);
	addr_sync(&h, "example.test", &a);
	ck_assert_int_eq(a.st, DNS_TEMPFAIL);
	ck_assert_str_eq(a.reason, "SERVFAIL");
	ck_assert_uint_eq(dns_cache_size(h.d), 0);
	uv_close((uv_handle_t *)&f.udp, NULL);
	h_close(&h);
}
END_TEST

/*
 * An answer is taken only for the question asked: an NXDOMAIN for
 * another name is a bad response (temporary), never a bounce.
 */
START_TEST(test_other_question)
{
	static const enum fake_mode modes[] = { FAKE_NXDOMAIN, FAKE_NXDOMAIN_OTHER };
	static const enum dns_status want[] = { DNS_NXDOMAIN, DNS_TEMPFAIL };

	for (size_t i = 0; i < NELEM(modes); i++) {
		struct h h;
		struct fake f;
		struct mxr m;
		struct addrr a;
		char err[256];

		memset(&h, 0, sizeof h);
		ck_assert_int_eq(uv_loop_init(&h.loop), 0);
		fake_start(&f, &h.loop, modes[i]);
		uv_timer_init(&h.loop, &h.guard);
		h.guard.data = &h;
		/* c-ares drops such an answer and waits: keep that short. */
		ck_assert_int_eq(dns_open(&h.d, &h.loop, f.server, 300, err, sizeof err), 0);
		mx_sync(&h, "example.test", &m);
		ck_assert_int_eq(m.st, want[i]);
		addr_sync(&h, "example.test", &a);
		ck_assert_int_eq(a.st, want[i]);
		uv_close((uv_handle_t *)&f.udp, NULL);
		h_close(&h);
	}
}
END_TEST

/* Answers, positive and negative, come from the cache once the server is silent. */
START_TEST(test_cache_hit)
{
	struct h h;
	struct mxr m;
	struct addrr a;
	char buf[64];

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 300);
	mx_sync(&h, "order.test", &m);
	ck_assert_int_eq(m.st, DNS_OK);
	addr_sync(&h, "host.test", &a);
	ck_assert_int_eq(a.st, DNS_OK);
	mx_sync(&h, "nx.test", &m);
	ck_assert_int_eq(m.st, DNS_NXDOMAIN);
	mx_sync(&h, "host.test", &m);
	ck_assert_int_eq(m.st, DNS_NODATA);
	ck_assert_uint_eq(dns_cache_size(h.d), 5); /* MX x3, A, AAAA */
	dnsmasq_pause(&dm);

	/* Names are matched without case and final dot. */
	mx_sync(&h, "ORDER.Test.", &m);
	ck_assert_int_eq(m.st, DNS_OK);
	ck_assert_uint_eq(m.n, 3);
	ck_assert_str_eq(m.mx[0].host, "a.order.test");
	ck_assert_uint_gt(m.ttl, 0);
	ck_assert_uint_le(m.ttl, 300);
	addr_sync(&h, "host.test", &a);
	ck_assert_int_eq(a.st, DNS_OK);
	ck_assert_uint_eq(a.n, 2);
	ck_assert_str_eq(addr_str(&a.a[0], buf, sizeof buf), "127.0.0.7");
	ck_assert_str_eq(addr_str(&a.a[1], buf, sizeof buf), "2001:db8::7");
	mx_sync(&h, "nx.test", &m);
	ck_assert_int_eq(m.st, DNS_NXDOMAIN);
	mx_sync(&h, "host.test", &m);
	ck_assert_int_eq(m.st, DNS_NODATA);
	/* Not asked before, so not cached: the silent server times out. */
	mx_sync(&h, "eq.test", &m);
	ck_assert_int_eq(m.st, DNS_TEMPFAIL);
	ck_assert_str_eq(m.reason, "timeout");

	dns_cache_clear(h.d);
	ck_assert_uint_eq(dns_cache_size(h.d), 0);
	mx_sync(&h, "order.test", &m);
	ck_assert_int_eq(m.st, DNS_TEMPFAIL);
	ck_assert_str_eq(m.reason, "timeout");
	h_close(&h);
}
END_TEST

/* A positive answer lives for its TTL only. */
START_TEST(test_cache_ttl)
{
	struct h h;
	struct addrr a;

	dnsmasq_start(&dm, 1, false, ZONE, NULL);
	h_open(&h, dm.server, 300);
	addr_sync(&h, "host.test", &a);
	ck_assert_int_eq(a.st, DNS_OK);
	ck_assert_uint_eq(a.ttl, 1);
	dnsmasq_pause(&dm);
	addr_sync(&h, "host.test", &a);
	ck_assert_int_eq(a.st, DNS_OK);
	h_sleep(&h, 1100);
	addr_sync(&h, "host.test", &a);
	ck_assert_int_eq(a.st, DNS_TEMPFAIL);
	h_close(&h);
}
END_TEST

START_TEST(test_cache_ttl_cap)
{
	struct h h;
	struct mxr m;
	struct addrr a;

	dnsmasq_start(&dm, 7200, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	mx_sync(&h, "order.test", &m);
	ck_assert_uint_eq(m.ttl, DNS_TTL_MAX);
	addr_sync(&h, "host.test", &a);
	ck_assert_uint_eq(a.ttl, DNS_TTL_MAX);
	h_close(&h);
}
END_TEST

/* The cache holds DNS_CACHE_MAX entries and forgets the oldest first. */
START_TEST(test_cache_bounded)
{
	enum { BATCH = 250, TOTAL = DNS_CACHE_MAX + 1 };
	static struct mxr r[BATCH];
	struct h h;
	char name[64];
	int sent = 0;

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	while (sent < TOTAL) {
		int n = TOTAL - sent < BATCH ? TOTAL - sent : BATCH, before = h.done;

		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof name, "n%d.test", sent + i);
			ck_assert_int_eq(ask_mx(&h, name, &r[i]), 0);
		}
		h_wait(&h, &h.done, before + n, 10000);
		for (int i = 0; i < n; i++)
			ck_assert_int_eq(r[i].st, DNS_NXDOMAIN);
		sent += n;
	}
	ck_assert_uint_eq(dns_cache_size(h.d), DNS_CACHE_MAX);
	dnsmasq_pause(&dm);
	mx_sync(&h, "n1.test", &r[0]);
	ck_assert_int_eq(r[0].st, DNS_NXDOMAIN);
	mx_sync(&h, "n0.test", &r[0]);
	ck_assert_int_eq(r[0].st, DNS_TEMPFAIL);
	snprintf(name, sizeof name, "n%d.test", TOTAL - 1);
	mx_sync(&h, name, &r[0]);
	ck_assert_int_eq(r[0].st, DNS_NXDOMAIN);
	h_close(&h);
}
END_TEST

/*
 * dns_close with lookups on the wire, a cache hit and a literal not yet
 * delivered: each callback once, DNS_CANCELED, before the close callback.
 */
START_TEST(test_close_pending)
{
	struct h h;
	struct mxr m1, hit;
	struct addrr a1, lit;

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 5000);
	mx_sync(&h, "order.test", &hit);
	ck_assert_int_eq(ask_mx(&h, "broken.test", &m1), 0);
	ck_assert_int_eq(ask_addr(&h, "x.broken.test", &a1), 0);
	ck_assert_int_eq(ask_mx(&h, "order.test", &hit), 0);
	ck_assert_int_eq(ask_addr(&h, "192.0.2.1", &lit), 0);
	in_call = true;
	dns_close(h.d, on_closed, &h);
	ck_assert_int_eq(dns_mx(h.d, "order.test", on_mx, &hit), -ECANCELED);
	ck_assert_int_eq(dns_addr(h.d, "host.test", on_addr, &a1), -ECANCELED);
	in_call = false;
	ck_assert_int_eq(h.done, 1);
	h_wait(&h, &h.closed, 1, GUARD_MS);
	ck_assert_int_eq(h.done_at_close, 5);
	ck_assert_int_eq(h.done, 5);
	ck_assert_int_eq(m1.calls, 1);
	ck_assert_int_eq(m1.st, DNS_CANCELED);
	ck_assert_str_eq(m1.reason, "canceled");
	ck_assert_int_eq(a1.calls, 1);
	ck_assert_int_eq(a1.st, DNS_CANCELED);
	ck_assert_int_eq(hit.calls, 1);
	ck_assert_int_eq(hit.st, DNS_CANCELED);
	ck_assert_int_eq(lit.calls, 1);
	ck_assert_int_eq(lit.st, DNS_CANCELED);
	uv_close((uv_handle_t *)&h.guard, NULL);
	uv_run(&h.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&h.loop), 0);
}
END_TEST

struct closer {
	struct h *h;
	struct mxr *pending;
	int rc_after;
	int calls;
};

static void
on_addr_close(void *arg, enum dns_status st, const struct sockaddr_storage *a, size_t n,
    uint32_t ttl)
{
	struct closer *c = arg;

	(void)a;
	(void)n;
	(void)ttl;
	ck_assert_int_eq(st, DNS_OK);
	c->calls++;
	c->h->done++;
	dns_close(c->h->d, on_closed, c->h);
	c->rc_after = dns_mx(c->h->d, "order.test", on_mx, c->pending);
	/* The pending lookup is delivered later, not inside dns_close. */
	ck_assert_int_eq(c->pending->calls, 0);
}

/* dns_close from inside a callback. */
START_TEST(test_close_in_callback)
{
	struct h h;
	struct mxr m;
	struct closer c;

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 5000);
	memset(&c, 0, sizeof c);
	c.h = &h;
	c.pending = &m;
	ck_assert_int_eq(ask_mx(&h, "broken.test", &m), 0);
	ck_assert_int_eq(dns_addr(h.d, "192.0.2.1", on_addr_close, &c), 0);
	h_wait(&h, &h.closed, 1, GUARD_MS);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.rc_after, -ECANCELED);
	ck_assert_int_eq(m.calls, 1);
	ck_assert_int_eq(m.st, DNS_CANCELED);
	ck_assert_int_eq(h.done_at_close, 2);
	uv_close((uv_handle_t *)&h.guard, NULL);
	uv_run(&h.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&h.loop), 0);
}
END_TEST

START_TEST(test_bad_names)
{
	char l63[64], l64[65], n253[254], n254[255], n253dot[255];
	const char *bad[] = {
		"", ".", "..", "a..test", ".a.test", "a test", "tab\t.test",
		"back\\slash.test", "nul\x01.test", "caf\xc3\xa9.test", l64, n254,
		"a.test..",
	};
	const char *good[] = { l63, n253, n253dot, "a-b.test", "_dmarc.test", "x.test." };
	struct h h;
	struct mxr m;
	struct addrr a;

	memset(l63, 'a', 63);
	l63[63] = '\0';
	memset(l64, 'a', 64);
	l64[64] = '\0';
	/* 4 labels of 63 = 255 characters with dots; cut to 253 and 254. */
	for (size_t i = 0; i < 253; i++)
		n253[i] = (i % 64 == 63) ? '.' : 'b';
	n253[253] = '\0';
	memcpy(n254, n253, 253);
	n254[253] = 'b';
	n254[254] = '\0';
	memcpy(n253dot, n253, 253);
	n253dot[253] = '.';
	n253dot[254] = '\0';

	h_open(&h, "127.0.0.1:9", 300);
	for (size_t i = 0; i < NELEM(bad); i++) {
		ck_assert_msg(!dns_valid_name(bad[i]), "accepted \"%s\"", bad[i]);
		ck_assert_int_eq(ask_mx(&h, bad[i], &m), -EINVAL);
		ck_assert_int_eq(ask_addr(&h, bad[i], &a), -EINVAL);
	}
	for (size_t i = 0; i < NELEM(good); i++)
		ck_assert_msg(dns_valid_name(good[i]), "refused \"%s\"", good[i]);
	/* No callback comes for a refused name. */
	h_sleep(&h, 50);
	ck_assert_int_eq(h.done, 0);
	h_close(&h);
}
END_TEST

START_TEST(test_open)
{
	static const char *const bad[] = {
		"localhost", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:x", "[::1", "[::1]x", "[127.0.0.1]:53x", "1.2.3",
	};
	static const char *const good[] = {
		"", "127.0.0.1", "127.0.0.1:5353", "::1", "[::1]", "[::1]:5353",
	};
	uv_loop_t loop;
	struct dns *d;
	char err[256];

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	for (size_t i = 0; i < NELEM(bad); i++) {
		err[0] = '\0';
		ck_assert_msg(dns_open(&d, &loop, bad[i], 1000, err, sizeof err) == -EINVAL,
		    "accepted \"%s\"", bad[i]);
		ck_assert_ptr_null(d);
		ck_assert_ptr_nonnull(strstr(err, "dns_server"));
	}
	for (size_t i = 0; i < NELEM(good); i++) {
		ck_assert_msg(dns_open(&d, &loop, good[i], 1000, err, sizeof err) == 0,
		    "\"%s\": %s", good[i], err);
		dns_close(d, NULL, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
	}
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* The answer dnsmasq gives for nullmx.test, and cuts of it. */
START_TEST(test_parse_raw)
{
	static const unsigned char nullmx[] = {
		0x88, 0x3d, 0x85, 0x80, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
		0x06, 'n', 'u', 'l', 'l', 'm', 'x', 0x04, 't', 'e', 's', 't', 0x00,
		0x00, 0x0f, 0x00, 0x01,
		0xc0, 0x0c, 0x00, 0x0f, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x03,
		0x00, 0x00, 0x00,
	};
	struct dns_mx *mx;
	struct sockaddr_storage ss[4];
	size_t n;
	uint32_t ttl;

	ck_assert_int_eq(dns_parse_mx(nullmx, sizeof nullmx, &mx, &n, &ttl), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(mx[0].host, "");
	ck_assert_uint_eq(mx[0].pref, 0);
	ck_assert_uint_eq(ttl, 300);
	free(mx);
	for (size_t cut = 0; cut < sizeof nullmx; cut++) {
		ck_assert_int_lt(dns_parse_mx(nullmx, cut, &mx, &n, &ttl), 0);
		ck_assert_ptr_null(mx);
	}
	/* An MX answer holds no A record. */
	ck_assert_int_eq(dns_parse_addr(nullmx, sizeof nullmx, AF_INET, ss, 4, &ttl), -ENODATA);
}
END_TEST

Suite *
dns_suite(void)
{
	Suite *s = suite_create("dns");
	TCase *tc = tcase_create("dns");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_mx_order);
	tcase_add_test(tc, test_mx_equal_shuffled);
	tcase_add_test(tc, test_mx_tcp);
	tcase_add_test(tc, test_null_mx);
	tcase_add_test(tc, test_nxdomain_nodata);
	tcase_add_test(tc, test_addr_families);
	tcase_add_test(tc, test_addr_literal);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_servfail_not_cached);
	tcase_add_test(tc, test_other_question);
	tcase_add_test(tc, test_cache_hit);
	tcase_add_test(tc, test_cache_ttl);
	tcase_add_test(tc, test_cache_ttl_cap);
	tcase_add_test(tc, test_cache_bounded);
	tcase_add_test(tc, test_close_pending);
	tcase_add_test(tc, test_close_in_callback);
	tcase_add_test(tc, test_bad_names);
	tcase_add_test(tc, test_open);
	tcase_add_test(tc, test_parse_raw);
	suite_add_tcase(s, tc);
	return s;
}
