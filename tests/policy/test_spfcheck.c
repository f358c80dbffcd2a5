/*
 * test_spfcheck - policy/spfcheck against dnsmasq on loopback.
 *
 * The suite's dnsmasq serves RECORDS under .test and nothing else
 * (given as argv, so without the quotes of its config file syntax; a
 * comma starts another string of the same TXT record)
 * (--local=/test/: unknown names there are NXDOMAIN; no upstream for
 * the rest); broken.test is forwarded to a port where nothing listens,
 * so its queries time out.  Names under .test exist nowhere else, so
 * every pass below also shows that the query went to the configured
 * server; the query log dnsmasq writes shows it once more.  The cache
 * test starts a dnsmasq of its own and stops it before asking again.
 *
 * Every wait runs the loop under a guard timer; every test closes the
 * checker and asserts uv_loop_close() == 0.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
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

#include <spf2/spf.h>

#include "core/log.h"
#include "policy/spfcheck.h"
#include "tests/dnsmasq.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define GUARD_MS 10000

static const char *const RECORDS[] = {
	/* pass by ip4, a, mx, include, ptr, exists, redirect */
	"--txt-record=ip4.test,v=spf1 ip4:192.0.2.10 -all",
	"--txt-record=a.test,v=spf1 a -all",
	"--host-record=a.test,192.0.2.11",
	"--txt-record=mx.test,v=spf1 mx -all",
	"--mx-host=mx.test,mx2.mx.test,20",
	"--mx-host=mx.test,mx1.mx.test,10",
	"--host-record=mx1.mx.test,192.0.2.99",
	"--host-record=mx2.mx.test,192.0.2.12",
	"--txt-record=include.test,v=spf1 include:inner.include.test -all",
	"--txt-record=inner.include.test,v=spf1 ip4:192.0.2.0/28 -all",
	"--txt-record=ptr.test,v=spf1 ptr -all",
	"--ptr-record=14.2.0.192.in-addr.arpa,other.ptr.test",
	"--ptr-record=14.2.0.192.in-addr.arpa,host.ptr.test",
	"--host-record=host.ptr.test,192.0.2.14",
	"--txt-record=exists.test,v=spf1 exists:%{i}.ok.exists.test -all",
	"--host-record=192.0.2.15.ok.exists.test,127.0.0.2",
	"--txt-record=redirect.test,v=spf1 redirect=ip4.test",
	/* A record in two strings (RFC 7208 3.3). */
	"--txt-record=split.test,v=spf1 ip4:192.0.2.16, -all",
	/* fail, softfail, neutral */
	"--txt-record=fail.test,v=spf1 ip4:10.0.0.1 -all",
	"--txt-record=softfail.test,v=spf1 ip4:10.0.0.1 ~all",
	"--txt-record=neutral.test,v=spf1 ip4:10.0.0.1 ?all",
	"--txt-record=bare.test,v=spf1",
	/* none: TXT that is not SPF; a name with no TXT at all */
	"--txt-record=other.test,google-site-verification=abc",
	"--host-record=notxt.test,192.0.2.17",
	/* permerror: two records, a syntax error, include of nothing */
	"--txt-record=two.test,v=spf1 -all",
	"--txt-record=two.test,v=spf1 +all",
	"--txt-record=syntax.test,v=spf1 ip4:999.1.1.1 -all",
	"--txt-record=incnone.test,v=spf1 include:nothing.test -all",
	/*
	 * Include chains: c1 includes c2 ... c10 includes c11, which passes
	 * 192.0.2.20.  c1 costs 10 terms (c2..c11): pass.  chain.test adds
	 * one more include: 11 terms, permerror.
	 */
	"--txt-record=chain.test,v=spf1 include:c1.chain.test -all",
	"--txt-record=c1.chain.test,v=spf1 include:c2.chain.test -all",
	"--txt-record=c2.chain.test,v=spf1 include:c3.chain.test -all",
	"--txt-record=c3.chain.test,v=spf1 include:c4.chain.test -all",
	"--txt-record=c4.chain.test,v=spf1 include:c5.chain.test -all",
	"--txt-record=c5.chain.test,v=spf1 include:c6.chain.test -all",
	"--txt-record=c6.chain.test,v=spf1 include:c7.chain.test -all",
	"--txt-record=c7.chain.test,v=spf1 include:c8.chain.test -all",
	"--txt-record=c8.chain.test,v=spf1 include:c9.chain.test -all",
	"--txt-record=c9.chain.test,v=spf1 include:c10.chain.test -all",
	"--txt-record=c10.chain.test,v=spf1 include:c11.chain.test -all",
	"--txt-record=c11.chain.test,v=spf1 ip4:192.0.2.20 -all",
	/* Ten a terms in one record: the limit; eleven: over it. */
	"--host-record=h.test,192.0.2.200",
	"--txt-record=ten.test,v=spf1 a:h.test a:h.test a:h.test a:h.test "
	"a:h.test a:h.test a:h.test a:h.test a:h.test a:h.test ip4:192.0.2.21 -all",
	"--txt-record=eleven.test,v=spf1 a:h.test a:h.test a:h.test a:h.test "
	"a:h.test a:h.test a:h.test a:h.test a:h.test a:h.test a:h.test "
	"ip4:192.0.2.21 -all",
	/* An mx term's address lookups are not terms of their own. */
	"--txt-record=mxten.test,v=spf1 mx:mx.test mx:mx.test mx:mx.test "
	"mx:mx.test mx:mx.test mx:mx.test mx:mx.test mx:mx.test mx:mx.test "
	"mx:mx.test ip4:192.0.2.22 -all",
	/* Void lookups: two allowed, the third is permerror. */
	"--txt-record=void2.test,v=spf1 a:nx1.test mx:notxt.test ip4:192.0.2.23 -all",
	"--txt-record=void3.test,v=spf1 a:nx1.test mx:nx2.test a:nx3.test "
	"ip4:192.0.2.23 -all",
	/* temperror: the include's server never answers. */
	"--txt-record=tempinc.test,v=spf1 include:spf.broken.test -all",
	/* IPv6 */
	"--txt-record=v6.test,v=spf1 ip6:2001:db8::1 -all",
	"--txt-record=v6a.test,v=spf1 a -all",
	"--host-record=v6a.test,192.0.2.30,2001:db8::5",
	NULL,
};

/* --- dnsmasq ------------------------------------------------------------- */

/* (tests/dnsmasq.h) */
static struct dnsmasq suite_dm;

static void
suite_setup(void)
{
	dnsmasq_start(&suite_dm, 0, true, RECORDS, NULL);
}

static void
suite_teardown(void)
{
	dnsmasq_clean(&suite_dm);
}

/* --- loop helpers -------------------------------------------------------- */

struct result {
	int calls;
	enum spfcheck_verdict v;
	char why[SPFCHECK_WHY_SIZE];
};

static void
on_result(void *arg, enum spfcheck_verdict v, const char *why)
{
	struct result *r = arg;

	r->calls++;
	r->v = v;
	ck_assert_uint_lt(strlen(why), SPFCHECK_WHY_SIZE);
	snprintf(r->why, sizeof r->why, "%s", why);
}

static void
on_tick(uv_timer_t *t)
{
	(void)t;
}

/*
 * wait_calls - run the loop until n results have one call each (or
 * any has more), at most ms; fails the test on timeout.
 */
static void
wait_calls(uv_loop_t *loop, struct result *r, size_t n, uint64_t ms)
{
	uv_timer_t tick;
	uint64_t end = uv_now(loop) + ms;

	uv_timer_init(loop, &tick);
	uv_timer_start(&tick, on_tick, 10, 10);
	for (;;) {
		size_t done = 0;

		for (size_t i = 0; i < n; i++) {
			ck_assert_int_le(r[i].calls, 1);
			done += r[i].calls == 1;
		}
		if (done == n)
			break;
		uv_update_time(loop);
		ck_assert_msg(uv_now(loop) < end, "%zu of %zu answers in %llu ms", done,
		    n, (unsigned long long)ms);
		uv_run(loop, UV_RUN_ONCE);
	}
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
}

static void
on_closed(void *arg)
{
	(*(int *)arg)++;
}

/* close_all - spfcheck_close, wait for its callback, close the loop. */
static void
close_all(uv_loop_t *loop, struct spfcheck *s)
{
	int closed = 0;
	uint64_t end;

	spfcheck_close(s, on_closed, &closed);
	ck_assert_int_eq(closed, 0); /* never inside the call */
	uv_update_time(loop);
	end = uv_now(loop) + GUARD_MS;
	while (closed == 0) {
		uv_update_time(loop);
		ck_assert_msg(uv_now(loop) < end, "close did not finish");
		uv_run(loop, UV_RUN_ONCE);
	}
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(uv_run(loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(loop), 0);
}

static struct spfcheck *
open_on(uv_loop_t *loop, const char *server, uint64_t timeout_ms)
{
	struct spfcheck *s = NULL;
	char err[256];
	int r;

	ck_assert_int_eq(uv_loop_init(loop), 0);
	r = spfcheck_open(&s, loop, server, timeout_ms, err, sizeof err);
	ck_assert_msg(r == 0, "spfcheck_open: %d %s", r, err);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* --- tests ---------------------------------------------------------------- */

static const struct {
	const char *ip, *domain;
	enum spfcheck_verdict v;
	const char *why; /* a substring of the reason */
} verdicts[] = {
	{ "192.0.2.10", "ip4.test", SPFCHECK_PASS,
	  "ip4.test: 192.0.2.10 is permitted (v=spf1 ip4:192.0.2.10 -all)" },
	{ "192.0.2.11", "a.test", SPFCHECK_PASS, "is permitted (v=spf1 a -all)" },
	{ "192.0.2.12", "mx.test", SPFCHECK_PASS, "permitted" },
	{ "192.0.2.99", "mx.test", SPFCHECK_PASS, "permitted" },
	{ "192.0.2.13", "mx.test", SPFCHECK_FAIL, "not permitted" },
	{ "192.0.2.13", "include.test", SPFCHECK_PASS, "permitted" },
	{ "192.0.2.14", "ptr.test", SPFCHECK_PASS, "permitted" },
	{ "192.0.2.15", "exists.test", SPFCHECK_PASS, "permitted" },
	{ "192.0.2.16", "exists.test", SPFCHECK_FAIL, "not permitted" },
	{ "192.0.2.10", "redirect.test", SPFCHECK_PASS, "permitted" },
	{ "192.0.2.11", "redirect.test", SPFCHECK_FAIL, "not permitted" },
	{ "192.0.2.16", "split.test", SPFCHECK_PASS,
	  "(v=spf1 ip4:192.0.2.16 -all)" },
	{ "192.0.2.1", "fail.test", SPFCHECK_FAIL,
	  "fail.test: 192.0.2.1 is not permitted (v=spf1 ip4:10.0.0.1 -all)" },
	/* Loopback is evaluated like any address. */
	{ "127.0.0.1", "fail.test", SPFCHECK_FAIL,
	  "fail.test: 127.0.0.1 is not permitted (v=spf1 ip4:10.0.0.1 -all)" },
	{ "192.0.2.1", "softfail.test", SPFCHECK_SOFTFAIL, "softfail" },
	{ "192.0.2.1", "neutral.test", SPFCHECK_NEUTRAL, "neither" },
	{ "192.0.2.1", "bare.test", SPFCHECK_NEUTRAL, "neither permitted nor denied (v=spf1)" },
	{ "192.0.2.1", "other.test", SPFCHECK_NONE, "other.test: no SPF record" },
	{ "192.0.2.1", "notxt.test", SPFCHECK_NONE, "no SPF record" },
	{ "192.0.2.1", "nxdomain.test", SPFCHECK_NONE, "no SPF record" },
	{ "192.0.2.1", "two.test", SPFCHECK_PERMERROR, "two.test: " },
	{ "192.0.2.1", "syntax.test", SPFCHECK_PERMERROR, "ip4:999.1.1.1" },
	{ "192.0.2.1", "incnone.test", SPFCHECK_PERMERROR, "incnone.test: " },
	{ "192.0.2.20", "c1.chain.test", SPFCHECK_PASS, "permitted" },
	{ "192.0.2.20", "chain.test", SPFCHECK_PERMERROR,
	  "more than 10 DNS-querying terms" },
	{ "192.0.2.21", "ten.test", SPFCHECK_PASS, "permitted" },
	{ "192.0.2.21", "eleven.test", SPFCHECK_PERMERROR,
	  "more than 10 DNS-querying terms" },
	{ "192.0.2.22", "mxten.test", SPFCHECK_PASS, "permitted" },
	{ "192.0.2.23", "void2.test", SPFCHECK_PASS, "permitted" },
	{ "192.0.2.23", "void3.test", SPFCHECK_PERMERROR, "more than 2 void lookups" },
	{ "2001:db8::1", "v6.test", SPFCHECK_PASS,
	  "v6.test: 2001:db8::1 is permitted (v=spf1 ip6:2001:db8::1 -all)" },
	{ "2001:DB8:0::1", "V6.Test", SPFCHECK_PASS, "2001:db8::1 is permitted" },
	{ "2001:db8::2", "v6.test", SPFCHECK_FAIL, "2001:db8::2 is not permitted" },
	{ "2001:db8::5", "v6a.test", SPFCHECK_PASS, "permitted" },
	{ "2001:db8::6", "v6a.test", SPFCHECK_FAIL, "not permitted" },
	{ "192.0.2.30", "v6a.test", SPFCHECK_PASS, "permitted" },
};

/*
 * Every verdict of the table, all evaluations started at once; each
 * callback runs once, later, never inside spfcheck_eval().
 */
START_TEST(test_verdicts)
{
	uv_loop_t loop;
	struct spfcheck *s = open_on(&loop, suite_dm.server, 2000);
	struct result r[NELEM(verdicts)];
	struct spfcheck_stats st;

	memset(r, 0, sizeof r);
	for (size_t i = 0; i < NELEM(verdicts); i++) {
		ck_assert_int_eq(spfcheck_eval(s, verdicts[i].ip, verdicts[i].domain,
		    "mail.kurier.test", on_result, &r[i]), 0);
		ck_assert_int_eq(r[i].calls, 0);
	}
	wait_calls(&loop, r, NELEM(verdicts), GUARD_MS);
	for (size_t i = 0; i < NELEM(verdicts); i++) {
		ck_assert_msg(r[i].v == verdicts[i].v, "%s %s: %s, want %s (%s)",
		    verdicts[i].ip, verdicts[i].domain, spfcheck_verdict_name(r[i].v),
		    spfcheck_verdict_name(verdicts[i].v), r[i].why);
		ck_assert_msg(strstr(r[i].why, verdicts[i].why) != NULL,
		    "%s %s: why \"%s\" lacks \"%s\"", verdicts[i].ip, verdicts[i].domain,
		    r[i].why, verdicts[i].why);
	}
	spfcheck_stats(s, &st);
	/* "2001:DB8:0::1 V6.Test" shared or reused "2001:db8::1 v6.test". */
	ck_assert_uint_eq(st.evaluations + st.shared + st.cache_hits, NELEM(verdicts));
	ck_assert_uint_eq(st.evaluations, NELEM(verdicts) - 1);
	ck_assert_uint_gt(st.queries, NELEM(verdicts));
	close_all(&loop, s);

	/* The queries reached dnsmasq, and type SPF (99) was never asked. */
	ck_assert_int_ge(dnsmasq_log_count(&suite_dm, "query[TXT] ip4.test from 127.0.0.1"), 1);
	ck_assert_int_ge(dnsmasq_log_count(&suite_dm, "query[PTR] 14.2.0.192.in-addr.arpa"), 1);
	ck_assert_int_ge(dnsmasq_log_count(&suite_dm, "query[AAAA] v6a.test"), 1);
	ck_assert_int_eq(dnsmasq_log_count(&suite_dm, "query[type=99]"), 0);
	ck_assert_int_eq(dnsmasq_log_count(&suite_dm, "query[SPF]"), 0);
	/* A permerror'd chain stops at the 11th term: c11 is never asked. */
	ck_assert_int_eq(dnsmasq_log_count(&suite_dm, "query[TXT] c11.chain.test"), 1);
}
END_TEST

/* temperror: the record's server never answers; an include's neither. */
START_TEST(test_temperror)
{
	uv_loop_t loop;
	struct spfcheck *s = open_on(&loop, suite_dm.server, 300);
	struct result r[2];
	uint64_t t0;

	memset(r, 0, sizeof r);
	t0 = uv_hrtime();
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.1", "broken.test", "h.test",
	    on_result, &r[0]), 0);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.1", "tempinc.test", "h.test",
	    on_result, &r[1]), 0);
	wait_calls(&loop, r, 2, GUARD_MS);
	ck_assert_msg(r[0].v == SPFCHECK_TEMPERROR, "%s", r[0].why);
	ck_assert_msg(strstr(r[0].why, "broken.test/TXT") != NULL &&
	    strcasestr(r[0].why, "timeout") != NULL, "%s", r[0].why);
	ck_assert_msg(r[1].v == SPFCHECK_TEMPERROR, "%s", r[1].why);
	ck_assert_msg(strstr(r[1].why, "spf.broken.test") != NULL, "%s", r[1].why);
	/*
	 * Ended by the query timeout ("timeout" above, spfcheck's own, not
	 * c-ares' retries), which was waited for in full (less the part of
	 * a millisecond spfcheck's clock drops).
	 */
	ck_assert_uint_ge((uv_hrtime() - t0) / 1000, 299000);
	close_all(&loop, s);
}
END_TEST

/*
 * A second evaluation of (ip, domain) is answered from the cache, after
 * dnsmasq is gone; still through the loop, not inside the call.  The
 * address is compared as an address (an IPv4-mapped IPv6 address is the
 * IPv4 one) and the domain without case.
 */
START_TEST(test_cache_hit)
{
	static const char *const recs[] = {
		"--txt-record=cached.test,v=spf1 ip4:192.0.2.40 -all", NULL,
	};
	struct dnsmasq m;
	uv_loop_t loop;
	struct spfcheck *s;
	struct result r[5];
	struct spfcheck_stats st;

	dnsmasq_start(&m, 0, true, recs, NULL);
	s = open_on(&loop, m.server, 1000);
	memset(r, 0, sizeof r);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.40", "cached.test", "h.test",
	    on_result, &r[0]), 0);
	wait_calls(&loop, r, 1, GUARD_MS);
	ck_assert_msg(r[0].v == SPFCHECK_PASS, "%s", r[0].why);
	/* Paused, not stopped: its port stays taken, so nothing answers there. */
	dnsmasq_pause(&m);
	ck_assert_int_eq(dnsmasq_log_count(&m, "query[TXT] cached.test"), 1);

	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.40", "CACHED.test.", "other.test",
	    on_result, &r[1]), 0);
	ck_assert_int_eq(r[1].calls, 0);
	ck_assert_int_eq(spfcheck_eval(s, "::ffff:192.0.2.40", "cached.test", "h.test",
	    on_result, &r[2]), 0);
	ck_assert_int_eq(r[2].calls, 0);
	/* Another address is another key: dnsmasq is gone, so temperror. */
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.41", "cached.test", "h.test",
	    on_result, &r[3]), 0);
	wait_calls(&loop, r, 4, GUARD_MS);
	ck_assert_msg(r[1].v == SPFCHECK_PASS, "%s", r[1].why);
	ck_assert_str_eq(r[1].why, r[0].why);
	ck_assert_msg(r[2].v == SPFCHECK_PASS, "%s", r[2].why);
	ck_assert_msg(r[3].v == SPFCHECK_TEMPERROR, "%s", r[3].why);
	spfcheck_stats(s, &st);
	ck_assert_uint_eq(st.cache_hits, 2);
	ck_assert_uint_eq(st.evaluations, 2);
	ck_assert_uint_eq(st.cached, 2);

	/* temperror is cached too, for its shorter time. */
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.41", "cached.test", "h.test",
	    on_result, &r[4]), 0);
	wait_calls(&loop, r, 5, GUARD_MS);
	ck_assert_int_eq(r[4].v, SPFCHECK_TEMPERROR);
	spfcheck_stats(s, &st);
	ck_assert_uint_eq(st.cache_hits, 3);
	ck_assert_uint_eq(st.evaluations, 2);
	close_all(&loop, s);
	dnsmasq_clean(&m);
}
END_TEST

/*
 * The cache's size bound, with lifetimes no evaluation outlasts on any
 * machine (the lifetime is tested on its own below).
 */
START_TEST(test_cache_bound)
{
	uv_loop_t loop;
	struct spfcheck *s = open_on(&loop, suite_dm.server, 1000);
	struct result r[5];
	struct spfcheck_stats st;
	const char *doms[3] = { "ip4.test", "fail.test", "softfail.test" };

	spfcheck_set_cache(s, 2, 600000, 600000);
	memset(r, 0, sizeof r);
	/* One after the other: the cache keeps the last two. */
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(spfcheck_eval(s, "192.0.2.10", doms[i], "h.test",
		    on_result, &r[i]), 0);
		wait_calls(&loop, r, (size_t)i + 1, GUARD_MS);
	}
	spfcheck_stats(s, &st);
	ck_assert_uint_eq(st.evaluations, 3);
	ck_assert_uint_eq(st.cached, 2);
	/* The newest is cached, the oldest was dropped. */
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.10", doms[2], "h.test", on_result,
	    &r[3]), 0);
	wait_calls(&loop, r, 4, GUARD_MS);
	spfcheck_stats(s, &st);
	ck_assert_uint_eq(st.cache_hits, 1);
	ck_assert_uint_eq(st.evaluations, 3);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.10", doms[0], "h.test", on_result,
	    &r[4]), 0);
	wait_calls(&loop, r, 5, GUARD_MS);
	spfcheck_stats(s, &st);
	ck_assert_uint_eq(st.cache_hits, 1);
	ck_assert_uint_eq(st.evaluations, 4);
	ck_assert_uint_eq(st.cached, 2);
	ck_assert_int_eq(r[0].v, SPFCHECK_PASS);
	close_all(&loop, s);
}
END_TEST

/*
 * The cache's lifetime, shortened to 1 s.  The second call comes in the
 * loop turn whose callback answered the first (the cache reads the
 * loop's time, which only moves when the loop runs), so it is a hit on
 * any machine; after the lifetime has passed, evaluated again.
 */
START_TEST(test_cache_expiry)
{
	uv_loop_t loop;
	struct spfcheck *s = open_on(&loop, suite_dm.server, 1000);
	struct result r[4];
	struct spfcheck_stats st;

	spfcheck_set_cache(s, 2, 1000, 1000);
	memset(r, 0, sizeof r);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.10", "ip4.test", "h.test",
	    on_result, &r[0]), 0);
	wait_calls(&loop, r, 1, GUARD_MS);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.10", "ip4.test", "h.test",
	    on_result, &r[1]), 0);
	wait_calls(&loop, r, 2, GUARD_MS);
	spfcheck_stats(s, &st);
	ck_assert_uint_eq(st.cache_hits, 1);
	ck_assert_uint_eq(st.evaluations, 1);
	/* After the lifetime, evaluated again. */
	usleep(1100 * 1000);
	uv_update_time(&loop);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.10", "ip4.test", "h.test",
	    on_result, &r[2]), 0);
	wait_calls(&loop, r, 3, GUARD_MS);
	spfcheck_stats(s, &st);
	ck_assert_uint_eq(st.cache_hits, 1);
	ck_assert_uint_eq(st.evaluations, 2);
	/* No cache at all. */
	spfcheck_set_cache(s, 0, 300, 300);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.10", "softfail.test", "h.test",
	    on_result, &r[3]), 0);
	wait_calls(&loop, r, 4, GUARD_MS);
	spfcheck_stats(s, &st);
	ck_assert_uint_eq(st.evaluations, 3);
	ck_assert_uint_eq(st.cached, 0);
	ck_assert_int_eq(r[0].v, SPFCHECK_PASS);
	ck_assert_int_eq(r[2].v, SPFCHECK_PASS);
	ck_assert_int_eq(r[3].v, SPFCHECK_SOFTFAIL);
	close_all(&loop, s);
}
END_TEST

/* A newsletter: many messages at once for one (ip, domain), one evaluation. */
START_TEST(test_shared_evaluation)
{
	enum { N = 500 };
	uv_loop_t loop;
	struct spfcheck *s = open_on(&loop, suite_dm.server, 1000);
	static struct result r[N];
	struct spfcheck_stats st;

	memset(r, 0, sizeof r);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(spfcheck_eval(s, "192.0.2.13", "include.test", "h.test",
		    on_result, &r[i]), 0);
	wait_calls(&loop, r, N, GUARD_MS);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(r[i].v, SPFCHECK_PASS);
	spfcheck_stats(s, &st);
	ck_assert_uint_eq(st.evaluations, 1);
	ck_assert_uint_eq(st.shared, N - 1);
	close_all(&loop, s);
}
END_TEST

/*
 * Closing with evaluations running (their DNS never answers) and queued
 * behind them: every callback runs once, temperror "canceled", before
 * the close callback, and quickly.
 */
START_TEST(test_close_pending)
{
	enum { N = 12 };
	uv_loop_t loop;
	struct spfcheck *s = open_on(&loop, suite_dm.server, 5000);
	struct result r[N + 1];
	char dom[64];
	int closed = 0;
	uint64_t t0, end;

	memset(r, 0, sizeof r);
	for (int i = 0; i < N; i++) {
		snprintf(dom, sizeof dom, "pending%d.broken.test", i);
		ck_assert_int_eq(spfcheck_eval(s, "192.0.2.1", dom, "h.test", on_result,
		    &r[i]), 0);
	}
	/* Wait until two workers have asked and block in their queries. */
	uv_update_time(&loop);
	end = uv_now(&loop) + GUARD_MS;
	while (dnsmasq_log_count(&suite_dm, "query[TXT] pending") < 2) {
		uv_update_time(&loop);
		ck_assert_msg(uv_now(&loop) < end, "the workers never asked");
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(20000);
	}
	for (int i = 0; i < 5; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(20000);
	}
	/* Two evaluations hold pool threads; the other ten wait, unasked. */
	ck_assert_int_eq(dnsmasq_log_count(&suite_dm, "query[TXT] pending"), 2);
	t0 = uv_hrtime();
	spfcheck_close(s, on_closed, &closed);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.10", "ip4.test", "h.test",
	    on_result, &r[N]), -ECANCELED);
	uv_update_time(&loop);
	end = uv_now(&loop) + GUARD_MS;
	while (closed == 0) {
		uv_update_time(&loop);
		ck_assert(uv_now(&loop) < end);
		uv_run(&loop, UV_RUN_ONCE);
		if (closed == 0)
			continue;
		for (int i = 0; i < N; i++) {
			ck_assert_int_eq(r[i].calls, 1);
			ck_assert_int_eq(r[i].v, SPFCHECK_TEMPERROR);
			ck_assert_str_eq(r[i].why, "canceled");
		}
	}
	ck_assert_int_eq(r[N].calls, 0);
	/*
	 * "canceled", not "timeout": the close cut the two running queries
	 * short instead of waiting out their 5 s.
	 */
	fprintf(stderr, "# close with %d pending: %llu ms\n", N,
	    (unsigned long long)((uv_hrtime() - t0) / 1000000));
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* A cached answer still queued when close is called is delivered. */
START_TEST(test_close_with_cached_answer)
{
	uv_loop_t loop;
	struct spfcheck *s = open_on(&loop, suite_dm.server, 1000);
	struct result r[2];
	int closed = 0;

	memset(r, 0, sizeof r);
	/* No EHLO name: "unknown" stands in (only %{h} would use it). */
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.10", "ip4.test", "", on_result,
	    &r[0]), 0);
	wait_calls(&loop, r, 1, GUARD_MS);
	ck_assert_int_eq(r[0].v, SPFCHECK_PASS);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.10", "ip4.test", "h.test",
	    on_result, &r[1]), 0);
	spfcheck_close(s, on_closed, &closed);
	ck_assert_int_eq(r[1].calls, 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(r[1].calls, 1);
	ck_assert_int_eq(r[1].v, SPFCHECK_PASS);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_bad_arguments)
{
	uv_loop_t loop;
	struct spfcheck *s = NULL;
	struct result r;
	char err[256], longd[300];
	static const char *const bad_servers[] = {
		"dns.example:53", "127.0.0.1:notaport", "127.0.0.1,127.0.0.2", "::1:53:x",
	};

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	for (size_t i = 0; i < NELEM(bad_servers); i++) {
		ck_assert_msg(spfcheck_open(&s, &loop, bad_servers[i], 1000, err,
		    sizeof err) == -EINVAL, "%s", bad_servers[i]);
		ck_assert_ptr_null(s);
		ck_assert_msg(strstr(err, "dns_server") != NULL, "%s", err);
	}
	ck_assert_int_eq(spfcheck_open(&s, &loop, "127.0.0.1", 0, err, sizeof err),
	    -EINVAL);
	ck_assert_int_eq(uv_loop_close(&loop), 0);

	s = open_on(&loop, "[::1]:53", 1000);
	memset(&r, 0, sizeof r);
	memset(longd, 'a', sizeof longd);
	longd[sizeof longd - 1] = '\0';
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.300", "ip4.test", "h", on_result, &r),
	    -EINVAL);
	ck_assert_int_eq(spfcheck_eval(s, "example.com", "ip4.test", "h", on_result, &r),
	    -EINVAL);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.1", "", "h", on_result, &r), -EINVAL);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.1", "a b.test", "h", on_result, &r),
	    -EINVAL);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.1", "x@y.test", "h", on_result, &r),
	    -EINVAL);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.1", longd, "h", on_result, &r),
	    -EINVAL);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.1", "ip4.test", "h", NULL, NULL),
	    -EINVAL);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.1", "ip4.test", "a b", on_result, &r),
	    -EINVAL);
	ck_assert_int_eq(r.calls, 0);
	ck_assert_str_eq(spfcheck_verdict_name(SPFCHECK_PASS), "pass");
	ck_assert_str_eq(spfcheck_verdict_name(SPFCHECK_SOFTFAIL), "softfail");
	ck_assert_str_eq(spfcheck_verdict_name(SPFCHECK_PERMERROR), "permerror");
	ck_assert_str_eq(spfcheck_verdict_name((enum spfcheck_verdict)42), "?");
	close_all(&loop, s);
}
END_TEST

/* libspf2's messages go to core/log, not to stderr. */
START_TEST(test_libspf2_output_logged)
{
	int logp[2], errp[2], saved;
	enum log_level level = log_get_level();
	uv_loop_t loop;
	struct spfcheck *s;
	struct result r[3];
	char buf[65536];
	ssize_t n;

	ck_assert_int_eq(pipe(logp), 0);
	ck_assert_int_eq(pipe(errp), 0);
	fcntl(logp[0], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	fflush(stderr);
	saved = dup(2);
	dup2(errp[1], 2);
	log_set_fd(logp[1]);
	log_set_level(LOG_DEBUG);

	s = open_on(&loop, suite_dm.server, 1000);
	/* What libspf2 reports through its handlers. */
	SPF_warningx(__FILE__, __LINE__, "%s", "kurier-probe-warning");
	SPF_infox(__FILE__, __LINE__, "%s", "kurier-probe-info");
	SPF_debugx(__FILE__, __LINE__, "%s", "kurier-probe-debug");
	memset(r, 0, sizeof r);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.1", "syntax.test", "h.test",
	    on_result, &r[0]), 0);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.1", "two.test", "h.test",
	    on_result, &r[1]), 0);
	ck_assert_int_eq(spfcheck_eval(s, "192.0.2.1", "ptr.test", "h.test",
	    on_result, &r[2]), 0);
	wait_calls(&loop, r, 3, GUARD_MS);
	close_all(&loop, s);

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	log_set_fd(2);
	log_set_level(level);
	close(errp[1]);
	close(logp[1]);
	n = read(errp[0], buf, sizeof buf - 1);
	ck_assert_msg(n <= 0, "stderr got: %.*s", (int)(n > 0 ? n : 0), buf);
	n = read(logp[0], buf, sizeof buf - 1);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_msg(strstr(buf, "level=warn component=spfcheck event=libspf2_warning") &&
	    strstr(buf, "kurier-probe-warning") && strstr(buf, "kurier-probe-info") &&
	    strstr(buf, "kurier-probe-debug"), "%s", buf);
	close(errp[0]);
	close(logp[0]);
}
END_TEST

Suite *
spfcheck_suite(void)
{
	Suite *su = suite_create("spfcheck");
	TCase *tc = tcase_create("dnsmasq");

	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_verdicts);
	tcase_add_test(tc, test_temperror);
	tcase_add_test(tc, test_cache_hit);
	tcase_add_test(tc, test_cache_bound);
	tcase_add_test(tc, test_cache_expiry);
	tcase_add_test(tc, test_shared_evaluation);
	tcase_add_test(tc, test_close_pending);
	tcase_add_test(tc, test_close_with_cached_answer);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_libspf2_output_logged);
	suite_add_tcase(su, tc);
	return su;
}
