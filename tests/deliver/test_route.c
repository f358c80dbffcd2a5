/*
 * test_route - deliver/route against dnsmasq on loopback.
 *
 * Each test starts dnsmasq on a free 127.0.0.1 port serving ZONE, with
 * the same conventions as test_dns: unknown names under .test are
 * NXDOMAIN, broken.test never answers (its upstream is a dead port),
 * refused.test is REFUSED.  dnsmasq is stopped by PID in teardown and
 * dies with the test process.  Every wait is bounded by a guard timer;
 * every test closes the resolver and asserts uv_loop_close() == 0.
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
#include "deliver/route.h"

#include "tests/dnsmasq.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define GUARD_MS 5000
#define MX_PORT 2525

static const char *const ZONE[] = {
	"--mx-host=mx.test,mx2.mx.test,20",
	"--mx-host=mx.test,mx1.mx.test,10",
	"--host-record=mx1.mx.test,127.0.0.11,2001:db8::11",
	"--host-record=mx2.mx.test,127.0.0.12",
	"--host-record=implicit.test,127.0.0.13",
	"--mx-host=nullmx.test,.,0",
	"--mx-host=mixednull.test,.,0",
	"--mx-host=mixednull.test,mx2.mx.test,10",
	"--txt-record=noaddr.test,\"v=spf1 -all\"",
	"--mx-host=mxnoaddr.test,ghost.mxnoaddr.test,10",
	"--mx-host=partial.test,mx.broken.test,10",
	"--mx-host=partial.test,good.partial.test,20",
	"--host-record=good.partial.test,127.0.0.18",
	"--mx-host=alltemp.test,mx.broken.test,10",
	"--mx-host=alltemp.test,ghost.alltemp.test,20",
	"--mx-host=litmx.test,127.0.0.14,10",
	"--mx-host=litmx.test,[127.0.0.19],20",
	"--host-record=smart.test,127.0.0.16,2001:db8::16",
	"--mx-host=cap.test,h1.cap.test,1",
	"--mx-host=cap.test,h2.cap.test,2",
	"--mx-host=cap.test,h3.cap.test,3",
	"--mx-host=cap.test,h4.cap.test,4",
	"--mx-host=cap.test,h5.cap.test,5",
	"--mx-host=cap.test,h6.cap.test,6",
	"--mx-host=cap.test,h7.cap.test,7",
	"--mx-host=cap.test,h8.cap.test,8",
	"--mx-host=cap.test,h9.cap.test,9",
	"--mx-host=cap.test,h10.cap.test,10",
	"--mx-host=cap.test,h11.cap.test,11",
	"--mx-host=cap.test,h12.cap.test,12",
	"--host-record=h1.cap.test,127.0.1.1",
	"--host-record=h2.cap.test,127.0.1.2",
	"--host-record=h3.cap.test,127.0.1.3",
	"--host-record=h4.cap.test,127.0.1.4",
	"--host-record=h5.cap.test,127.0.1.5",
	"--host-record=h6.cap.test,127.0.1.6",
	"--host-record=h7.cap.test,127.0.1.7",
	"--host-record=h8.cap.test,127.0.1.8",
	"--host-record=h9.cap.test,127.0.1.9",
	"--host-record=h10.cap.test,127.0.1.10",
	"--host-record=h11.cap.test,127.0.1.11",
	"--host-record=h12.cap.test,127.0.1.12",
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
	int done;        /* route callbacks run */
	int closed;
	int done_at_close;
};

static bool in_call; /* route_resolve is running */

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
	h_wait(h, &h->closed, 1, GUARD_MS);
	uv_close((uv_handle_t *)&h->guard, NULL);
	uv_run(&h->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(h->closed, 1);
	ck_assert_int_eq(uv_loop_close(&h->loop), 0);
}

/* A recorded route result. */
struct rr {
	struct h *h;
	int calls;
	struct route_result *res;
};

static void
on_route(void *arg, struct route_result *res)
{
	struct rr *r = arg;

	ck_assert_msg(!in_call, "callback inside route_resolve");
	ck_assert_ptr_nonnull(res);
	ck_assert(res->status == 0 ? res->nhops > 0 && res->reply[0] == '\0' :
	    res->nhops == 0 && res->reply[0] != '\0');
	ck_assert_uint_le(res->nhops, ROUTE_MAX_HOPS);
	r->calls++;
	route_result_free(r->res);
	r->res = res;
	r->h->done++;
}

static int
ask(struct h *h, const struct route_rule *rules, size_t n, const char *domain, struct rr *r)
{
	int rc;

	r->h = h;
	r->calls = 0;
	route_result_free(r->res);
	r->res = NULL;
	in_call = true;
	rc = route_resolve(h->d, rules, n, MX_PORT, domain, on_route, r);
	in_call = false;
	ck_assert_int_eq(r->calls, 0);
	return rc;
}

static void
route_sync(struct h *h, const struct route_rule *rules, size_t n, const char *domain,
    struct rr *r)
{
	int before = h->done;

	ck_assert_int_eq(ask(h, rules, n, domain, r), 0);
	h_wait(h, &h->done, before + 1, GUARD_MS);
	ck_assert_int_eq(r->calls, 1);
}

static void
rr_free(struct rr *r)
{
	route_result_free(r->res);
	r->res = NULL;
}

/* "127.0.0.1:25" or "[::1]:25" */
static const char *
hop_str(const struct route_hop *hop, char *buf, size_t size)
{
	char a[64];
	const struct sockaddr_storage *ss = &hop->addr;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof a);
		snprintf(buf, size, "%s:%u", a, ntohs(sin->sin_port));
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof a);
		snprintf(buf, size, "[%s]:%u", a, ntohs(sin6->sin6_port));
	}
	return buf;
}

struct want_hop {
	const char *name;
	unsigned pref;
	const char *addr;
	bool relay;
};

static void
check_hops(const struct rr *r, const struct want_hop *want, size_t n)
{
	char buf[80];

	ck_assert_int_eq(r->res->status, 0);
	ck_assert_uint_eq(r->res->nhops, n);
	for (size_t i = 0; i < n; i++) {
		const struct route_hop *hop = &r->res->hops[i];

		ck_assert_str_eq(hop->name, want[i].name);
		ck_assert_uint_eq(hop->pref, want[i].pref);
		ck_assert_str_eq(hop_str(hop, buf, sizeof buf), want[i].addr);
		ck_assert_int_eq(hop->relay, want[i].relay);
	}
}

static void
check_fail(const struct rr *r, int status, const char *prefix, const char *part)
{
	ck_assert_int_eq(r->res->status, status);
	ck_assert_msg(strncmp(r->res->reply, prefix, strlen(prefix)) == 0,
	    "reply \"%s\" does not start with \"%s\"", r->res->reply, prefix);
	ck_assert_msg(strstr(r->res->reply, part) != NULL,
	    "reply \"%s\" lacks \"%s\"", r->res->reply, part);
}

/* Tests. */

/* MX hosts in preference order, each host's A then AAAA, at mx_port. */
START_TEST(test_mx_hops)
{
	static const struct want_hop want[] = {
		{ "mx1.mx.test", 10, "127.0.0.11:2525", false },
		{ "mx1.mx.test", 10, "[2001:db8::11]:2525", false },
		{ "mx2.mx.test", 20, "127.0.0.12:2525", false },
	};
	struct h h;
	struct rr r = { 0 };

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	route_sync(&h, NULL, 0, "mx.test", &r);
	check_hops(&r, want, NELEM(want));
	rr_free(&r);
	h_close(&h);
}
END_TEST

/* RFC 5321 §5.1: no MX, the domain's own address as an MX of preference 0. */
START_TEST(test_implicit_mx)
{
	static const struct want_hop want[] = {
		{ "implicit.test", 0, "127.0.0.13:2525", false },
	};
	struct h h;
	struct rr r = { 0 };

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	route_sync(&h, NULL, 0, "implicit.test", &r);
	check_hops(&r, want, NELEM(want));
	route_sync(&h, NULL, 0, "noaddr.test", &r);
	check_fail(&r, -ENOENT, "550 5.1.2 noaddr.test", "no MX and no address");
	rr_free(&r);
	h_close(&h);
}
END_TEST

/* RFC 7505: a lone "." MX refuses mail; among other MX records it is skipped. */
START_TEST(test_null_mx)
{
	static const struct want_hop want[] = {
		{ "mx2.mx.test", 10, "127.0.0.12:2525", false },
	};
	struct h h;
	struct rr r = { 0 };

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	route_sync(&h, NULL, 0, "nullmx.test", &r);
	check_fail(&r, -ENOENT, "556 5.1.10 nullmx.test has a null MX (RFC 7505)", "accepts no mail");
	route_sync(&h, NULL, 0, "mixednull.test", &r);
	check_hops(&r, want, NELEM(want));
	rr_free(&r);
	h_close(&h);
}
END_TEST

START_TEST(test_permanent)
{
	struct h h;
	struct rr r = { 0 };

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	route_sync(&h, NULL, 0, "nx.test", &r);
	check_fail(&r, -ENOENT, "550 5.1.2 nx.test", "does not exist");
	route_sync(&h, NULL, 0, "mxnoaddr.test", &r);
	check_fail(&r, -ENOENT, "550 5.1.2 mxnoaddr.test", "MX hosts have no address");
	rr_free(&r);
	h_close(&h);
}
END_TEST

/*
 * Temporary failures: of the MX lookup itself, of every MX host; a host
 * that failed is skipped when another has addresses.
 */
START_TEST(test_temporary)
{
	static const struct want_hop want[] = {
		{ "good.partial.test", 20, "127.0.0.18:2525", false },
	};
	struct h h;
	struct rr r = { 0 };

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 300);
	route_sync(&h, NULL, 0, "x.broken.test", &r);
	check_fail(&r, -EAGAIN, "451 4.4.3 x.broken.test", "(timeout)");
	route_sync(&h, NULL, 0, "x.refused.test", &r);
	check_fail(&r, -EAGAIN, "451 4.4.3 x.refused.test", "(REFUSED)");
	route_sync(&h, NULL, 0, "alltemp.test", &r);
	check_fail(&r, -EAGAIN, "451 4.4.3 alltemp.test", "mx.broken.test: timeout");
	route_sync(&h, NULL, 0, "partial.test", &r);
	check_hops(&r, want, NELEM(want));
	rr_free(&r);
	h_close(&h);
}
END_TEST

/* At most ROUTE_MAX_HOPS addresses, the best preferences kept. */
START_TEST(test_hop_cap)
{
	struct h h;
	struct rr r = { 0 };
	char name[32], addr[32], buf[80];

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	route_sync(&h, NULL, 0, "cap.test", &r);
	ck_assert_int_eq(r.res->status, 0);
	ck_assert_uint_eq(r.res->nhops, ROUTE_MAX_HOPS);
	for (unsigned i = 0; i < ROUTE_MAX_HOPS; i++) {
		snprintf(name, sizeof name, "h%u.cap.test", i + 1);
		snprintf(addr, sizeof addr, "127.0.1.%u:2525", i + 1);
		ck_assert_str_eq(r.res->hops[i].name, name);
		ck_assert_uint_eq(r.res->hops[i].pref, i + 1);
		ck_assert_str_eq(hop_str(&r.res->hops[i], buf, sizeof buf), addr);
	}
	rr_free(&r);
	h_close(&h);
}
END_TEST

/* MX targets written as addresses, bare or in brackets, are taken as such. */
START_TEST(test_literal_mx_target)
{
	static const struct want_hop want[] = {
		{ "127.0.0.14", 10, "127.0.0.14:2525", false },
		{ "[127.0.0.19]", 20, "127.0.0.19:2525", false },
	};
	struct h h;
	struct rr r = { 0 };

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	route_sync(&h, NULL, 0, "litmx.test", &r);
	check_hops(&r, want, NELEM(want));
	rr_free(&r);
	h_close(&h);
}
END_TEST

/* A domain that is an address literal goes to that address. */
START_TEST(test_literal_domain)
{
	static const struct want_hop want4[] = {
		{ "[127.0.0.17]", 0, "127.0.0.17:2525", false },
	};
	static const struct want_hop want6[] = {
		{ "[IPv6:::1]", 0, "[::1]:2525", false },
	};
	struct h h;
	struct rr r = { 0 };

	/* No server works: nothing is looked up. */
	h_open(&h, "127.0.0.1:9", 300);
	route_sync(&h, NULL, 0, "[127.0.0.17]", &r);
	check_hops(&r, want4, NELEM(want4));
	route_sync(&h, NULL, 0, "[IPv6:::1]", &r);
	check_hops(&r, want6, NELEM(want6));
	rr_free(&r);
	h_close(&h);
}
END_TEST

START_TEST(test_match)
{
	static const struct route_rule rules[] = {
		{ "*", "smart.test", 2525 },
		{ "Example.ORG", "a.test", 25 },
		{ "example.net.", "b.test", 25 },
		{ "*", "second.test", 25 },
	};
	static const struct route_rule exact[] = {
		{ "example.org", "a.test", 25 },
	};

	ck_assert_ptr_eq(route_match(rules, NELEM(rules), "example.org"), &rules[1]);
	ck_assert_ptr_eq(route_match(rules, NELEM(rules), "EXAMPLE.org."), &rules[1]);
	ck_assert_ptr_eq(route_match(rules, NELEM(rules), "example.net"), &rules[2]);
	ck_assert_ptr_eq(route_match(rules, NELEM(rules), "sub.example.org"), &rules[0]);
	ck_assert_ptr_eq(route_match(rules, NELEM(rules), "example.com"), &rules[0]);
	ck_assert_ptr_eq(route_match(exact, NELEM(exact), "example.org"), &exact[0]);
	ck_assert_ptr_null(route_match(exact, NELEM(exact), "example.com"));
	ck_assert_ptr_null(route_match(exact, NELEM(exact), "xexample.org"));
	ck_assert_ptr_null(route_match(NULL, 0, "example.org"));
}
END_TEST

/*
 * route.DOMAIN beats route.*; both skip the MX lookup and mark hops as
 * relays at the rule's port (mx_port for port 0).
 */
START_TEST(test_rules)
{
	static const struct route_rule rules[] = {
		{ "*", "smart.test", 2587 },
		{ "override.test", "127.0.0.15", 2526 },
		{ "lit.test", "[127.0.0.20]", 0 },
	};
	static const struct want_hop smart[] = {
		{ "smart.test", 0, "127.0.0.16:2587", true },
		{ "smart.test", 0, "[2001:db8::16]:2587", true },
	};
	static const struct want_hop over[] = {
		{ "127.0.0.15", 0, "127.0.0.15:2526", true },
	};
	static const struct want_hop lit[] = {
		{ "[127.0.0.20]", 0, "127.0.0.20:2525", true },
	};
	struct h h;
	struct rr r = { 0 };

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 2000);
	/* Null MX and NXDOMAIN do not matter: the MX is never asked. */
	route_sync(&h, rules, NELEM(rules), "nullmx.test", &r);
	check_hops(&r, smart, NELEM(smart));
	route_sync(&h, rules, NELEM(rules), "nx.test", &r);
	check_hops(&r, smart, NELEM(smart));
	route_sync(&h, rules, NELEM(rules), "OVERRIDE.test.", &r);
	check_hops(&r, over, NELEM(over));
	route_sync(&h, rules, NELEM(rules), "lit.test", &r);
	check_hops(&r, lit, NELEM(lit));
	/* Without route.*, other domains use their MX. */
	route_sync(&h, rules + 1, NELEM(rules) - 1, "nullmx.test", &r);
	ck_assert_int_eq(r.res->status, -ENOENT);
	rr_free(&r);
	h_close(&h);
}
END_TEST

START_TEST(test_rule_host_failures)
{
	static const struct route_rule rules[] = {
		{ "a.test", "nohost.test", 25 },
		{ "b.test", "x.broken.test", 25 },
		{ "c.test", "noaddr.test", 25 },
	};
	struct h h;
	struct rr r = { 0 };

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 300);
	route_sync(&h, rules, NELEM(rules), "a.test", &r);
	check_fail(&r, -ENOENT, "550 5.4.4 relay host nohost.test for a.test", "NXDOMAIN");
	route_sync(&h, rules, NELEM(rules), "b.test", &r);
	check_fail(&r, -EAGAIN, "451 4.4.3 relay host x.broken.test for b.test", "timeout");
	route_sync(&h, rules, NELEM(rules), "c.test", &r);
	check_fail(&r, -ENOENT, "550 5.4.4 relay host noaddr.test for c.test", "no data");
	rr_free(&r);
	h_close(&h);
}
END_TEST

START_TEST(test_invalid)
{
	static const struct route_rule rules[] = {
		{ "bad.test", "bad host", 25 },
	};
	struct h h;
	struct rr r = { 0 };

	h_open(&h, "127.0.0.1:9", 300);
	ck_assert_int_eq(ask(&h, NULL, 0, "bad domain", &r), -EINVAL);
	ck_assert_int_eq(ask(&h, NULL, 0, "", &r), -EINVAL);
	ck_assert_int_eq(ask(&h, NULL, 0, "a..test", &r), -EINVAL);
	ck_assert_int_eq(ask(&h, rules, NELEM(rules), "bad.test", &r), -EINVAL);
	h_sleep(&h, 50);
	ck_assert_int_eq(h.done, 0);
	h_close(&h);
}
END_TEST

/*
 * dns_close cancels routes at every stage: MX lookup on the wire, address
 * lookups on the wire after the MX answer, a literal not yet delivered.
 * Each callback runs once, -ECANCELED, before the close callback; no
 * route starts on a closing resolver.
 */
START_TEST(test_cancel)
{
	struct h h;
	struct rr mxwait = { 0 }, addrwait = { 0 }, lit = { 0 }, late = { 0 };

	dnsmasq_start(&dm, 300, false, ZONE, NULL);
	h_open(&h, dm.server, 5000);
	ck_assert_int_eq(ask(&h, NULL, 0, "alltemp.test", &addrwait), 0);
	/*
	 * Wait for the MX answer and the NXDOMAIN of ghost.alltemp.test (A
	 * and AAAA) in the cache: the route is then past its MX lookup, with
	 * mx.broken.test's addresses still on the wire for 5 s.
	 */
	h.timed_out = false;
	uv_timer_start(&h.guard, on_guard, GUARD_MS, 0);
	while (dns_cache_size(h.d) < 3 && !h.timed_out)
		uv_run(&h.loop, UV_RUN_ONCE);
	uv_timer_stop(&h.guard);
	ck_assert_uint_eq(dns_cache_size(h.d), 3);
	ck_assert_int_eq(addrwait.calls, 0);
	ck_assert_int_eq(ask(&h, NULL, 0, "x.broken.test", &mxwait), 0);
	ck_assert_int_eq(ask(&h, NULL, 0, "[192.0.2.1]", &lit), 0);
	in_call = true;
	dns_close(h.d, on_closed, &h);
	in_call = false;
	ck_assert_int_eq(ask(&h, NULL, 0, "mx.test", &late), -ECANCELED);
	ck_assert_int_eq(h.done, 0);
	h_wait(&h, &h.closed, 1, GUARD_MS);
	ck_assert_int_eq(h.done_at_close, 3);
	ck_assert_int_eq(h.done, 3);
	ck_assert_int_eq(addrwait.calls, 1);
	check_fail(&addrwait, -ECANCELED, "451 4.4.3 alltemp.test", "canceled");
	ck_assert_int_eq(mxwait.calls, 1);
	check_fail(&mxwait, -ECANCELED, "451 4.4.3 x.broken.test", "canceled");
	ck_assert_int_eq(lit.calls, 1);
	check_fail(&lit, -ECANCELED, "451 4.4.3 [192.0.2.1]", "canceled");
	ck_assert_int_eq(late.calls, 0);
	rr_free(&addrwait);
	rr_free(&mxwait);
	rr_free(&lit);
	uv_close((uv_handle_t *)&h.guard, NULL);
	uv_run(&h.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&h.loop), 0);
}
END_TEST

Suite *
route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("route");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_mx_hops);
	tcase_add_test(tc, test_implicit_mx);
	tcase_add_test(tc, test_null_mx);
	tcase_add_test(tc, test_permanent);
	tcase_add_test(tc, test_temporary);
	tcase_add_test(tc, test_hop_cap);
	tcase_add_test(tc, test_literal_mx_target);
	tcase_add_test(tc, test_literal_domain);
	tcase_add_test(tc, test_match);
	tcase_add_test(tc, test_rules);
	tcase_add_test(tc, test_rule_host_failures);
	tcase_add_test(tc, test_invalid);
	tcase_add_test(tc, test_cancel);
	suite_add_tcase(s, tc);
	return s;
}
