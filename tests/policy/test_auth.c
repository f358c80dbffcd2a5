/*
 * test_auth - the user store and password verification (policy/auth.h)
 * against the real redis-server named by $KURIER_TEST_REDIS (host:port),
 * with real yescrypt hashing on libuv's thread pool.  Each test has a
 * key prefix of its own, closes every handle and asserts that
 * uv_loop_close() succeeds.
 */
#include <check.h>
#include <crypt.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "core/config.h"
#include "core/str.h"
#include "policy/auth.h"
#include "tests/redis_test.h"
#include "tests/suites.h"

#define PW "correct horse battery"
#define PW2 "staple-2-Tr0ub4dor"
#define WAIT_MS 20000

struct at {
	uv_loop_t loop;
	struct config cfg;
	struct auth *a;
	redisContext *sync;    /* a plain connection for inspection */
};

/* The outcome of one call. */
struct res {
	bool done;
	int calls;
	int status;
	struct auth_user user;
	bool have_user;
	struct auth_user *users;
	size_t n;
	uint64_t start_ns, took_ns;
};

/* at_wait - run the loop until *done, failing the test after WAIT_MS. */
static void
at_wait(struct at *t, const bool *done)
{
	redis_test_wait(&t->loop, done, WAIT_MS, "auth");
}

static void
at_open(struct at *t)
{
	bool up = false;

	memset(t, 0, sizeof *t);
	config_defaults(&t->cfg);
	redis_test_config(&t->cfg, "ka");
	ck_assert_int_eq(uv_loop_init(&t->loop), 0);
	ck_assert_int_eq(auth_open(&t->a, &t->loop, &t->cfg, "test"), 0);
	auth_on_state(t->a, redis_test_on_up, &up);
	at_wait(t, &up);
	auth_on_state(t->a, NULL, NULL);
	ck_assert(auth_is_up(t->a));
	t->sync = redis_test_connect(&t->cfg);
}

/* at_close - drop the test's keys, close auth, and the loop must be empty. */
static void
at_close(struct at *t)
{
	bool closed = false;

	redis_test_disconnect(t->sync, t->cfg.redis.prefix);
	auth_close(t->a, redis_test_on_closed, &closed);
	at_wait(t, &closed);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&t->loop), 0);
}

static const char *
at_key(struct at *t, const char *suffix)
{
	return redis_test_key(t->cfg.redis.prefix, suffix);
}

/* The stored field of user name, copied into dst ("" when absent). */
static void
at_field(struct at *t, const char *name, const char *field, char *dst, size_t size)
{
	char k[128];
	redisReply *r;

	snprintf(k, sizeof k, "user:%s", name);
	r = redis_test_cmd(t->sync, "HGET %s %s", at_key(t, k), field);
	if (r->type == REDIS_REPLY_STRING)
		str_copyn(dst, r->str, r->len, size);
	else
		dst[0] = '\0';
	freeReplyObject(r);
}

static void
on_status(void *arg, int status)
{
	struct res *r = arg;

	r->calls++;
	r->status = status;
	r->done = true;
}

static void
on_verify(void *arg, int status, const struct auth_user *user)
{
	struct res *r = arg;

	r->calls++;
	r->status = status;
	r->took_ns = uv_hrtime() - r->start_ns;
	r->have_user = user != NULL;
	if (user != NULL)
		r->user = *user;
	r->done = true;
}

static void
on_list(void *arg, int status, const struct auth_user *users, size_t n)
{
	struct res *r = arg;

	r->calls++;
	r->status = status;
	r->n = n;
	if (n > 0) {
		r->users = malloc(n * sizeof *users);
		memcpy(r->users, users, n * sizeof *users);
	}
	r->done = true;
}

static int
at_add(struct at *t, const char *name, const char *pw, const char *domains)
{
	struct res r = { 0 };
	int rc = auth_user_add(t->a, name, pw, strlen(pw), domains, on_status, &r);

	if (rc < 0)
		return rc;
	at_wait(t, &r.done);
	ck_assert_int_eq(r.calls, 1);
	return r.status;
}

static int
at_passwd(struct at *t, const char *name, const char *pw)
{
	struct res r = { 0 };
	int rc = auth_user_passwd(t->a, name, pw, strlen(pw), on_status, &r);

	if (rc < 0)
		return rc;
	at_wait(t, &r.done);
	return r.status;
}

static int
at_del(struct at *t, const char *name)
{
	struct res r = { 0 };
	int rc = auth_user_del(t->a, name, on_status, &r);

	if (rc < 0)
		return rc;
	at_wait(t, &r.done);
	return r.status;
}

static int
at_set(struct at *t, const char *name, const char *domains, enum auth_enable en)
{
	struct res r = { 0 };
	int rc = auth_user_set(t->a, name, domains, en, on_status, &r);

	if (rc < 0)
		return rc;
	at_wait(t, &r.done);
	return r.status;
}

static int
at_set_policy(struct at *t, const char *name, const char *rate, const char *rcpt_rate,
    const char *rcpt_domains)
{
	struct res r = { 0 };
	int rc = auth_user_set_policy(t->a, name, rate, rcpt_rate, rcpt_domains,
	    on_status, &r);

	if (rc < 0)
		return rc;
	at_wait(t, &r.done);
	ck_assert_int_eq(r.calls, 1);
	return r.status;
}

/* at_get - auth_user_get (info false) or auth_user_info; *out on success. */
static int
at_get(struct at *t, const char *name, bool info, struct auth_user *out)
{
	struct res r = { 0 };
	int rc = info ? auth_user_info(t->a, name, on_verify, &r) :
	    auth_user_get(t->a, name, on_verify, &r);

	if (rc < 0)
		return rc;
	at_wait(t, &r.done);
	ck_assert_int_eq(r.calls, 1);
	ck_assert(r.have_user == (r.status == 0));
	if (out != NULL && r.status == 0)
		*out = r.user;
	return r.status;
}

/* at_list_user - the entry of name in auth_user_list(); false if not listed. */
static bool
at_list_user(struct at *t, const char *name, struct auth_user *out)
{
	struct res r = { 0 };
	bool found = false;

	ck_assert_int_eq(auth_user_list(t->a, on_list, &r), 0);
	at_wait(t, &r.done);
	ck_assert_int_eq(r.status, 0);
	for (size_t i = 0; i < r.n; i++) {
		if (strcmp(r.users[i].name, name) == 0) {
			*out = r.users[i];
			found = true;
		}
	}
	free(r.users);
	return found;
}

/* at_hexists - whether user name's hash has field. */
static bool
at_hexists(struct at *t, const char *name, const char *field)
{
	char k[128];
	redisReply *r;
	bool yes;

	snprintf(k, sizeof k, "user:%s", name);
	r = redis_test_cmd(t->sync, "HEXISTS %s %s", at_key(t, k), field);
	yes = r->integer == 1;
	freeReplyObject(r);
	return yes;
}

/* at_verify - the status; *out filled on success; *ns the time taken. */
static int
at_verify2(struct at *t, const char *name, const char *pw, size_t pwlen,
    struct auth_user *out, uint64_t *ns)
{
	struct res r = { 0 };
	auth_req_id id = 0;
	int rc;

	r.start_ns = uv_hrtime();
	rc = auth_verify(t->a, name, pw, pwlen, on_verify, &r, &id);
	if (rc < 0)
		return rc;
	ck_assert_uint_ne(id, 0);
	at_wait(t, &r.done);
	ck_assert_int_eq(r.calls, 1);
	ck_assert(r.have_user == (r.status == 0));
	if (out != NULL && r.status == 0)
		*out = r.user;
	if (ns != NULL)
		*ns = r.took_ns;
	return r.status;
}

static int
at_verify(struct at *t, const char *name, const char *pw, struct auth_user *out)
{
	return at_verify2(t, name, pw, strlen(pw), out, NULL);
}

/* --- tests -------------------------------------------------------------------- */

START_TEST(add_then_verify)
{
	struct at t;
	struct auth_user u;
	char f[512];
	redisReply *r;

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop@site.example", PW, "Shop.Example, news.shop.example,shop.example"), 0);
	memset(&u, 0, sizeof u);
	ck_assert_int_eq(at_verify(&t, "shop@site.example", PW, &u), 0);
	ck_assert_str_eq(u.name, "shop@site.example");
	ck_assert_str_eq(u.domains, "shop.example news.shop.example");
	ck_assert(u.enabled);

	/* Stored as documented: yescrypt, enabled, times, listed. */
	at_field(&t, "shop@site.example", "hash", f, sizeof f);
	ck_assert_msg(strncmp(f, "$y$", 3) == 0, "hash %s", f);
	ck_assert_int_eq(crypt_checksalt(f), CRYPT_SALT_OK);
	at_field(&t, "shop@site.example", "enabled", f, sizeof f);
	ck_assert_str_eq(f, "1");
	at_field(&t, "shop@site.example", "created", f, sizeof f);
	ck_assert_uint_gt(strtoull(f, NULL, 10), 1700000000000ULL);
	at_field(&t, "shop@site.example", "changed", f, sizeof f);
	ck_assert_uint_gt(strtoull(f, NULL, 10), 1700000000000ULL);
	r = redis_test_cmd(t.sync, "SISMEMBER %s %s", at_key(&t, "users"), "shop@site.example");
	ck_assert_int_eq(r->integer, 1);
	freeReplyObject(r);

	/* Names are case-sensitive. */
	ck_assert_int_eq(at_verify(&t, "Shop@site.example", PW, NULL), -EACCES);
	/* Adding again changes nothing. */
	ck_assert_int_eq(at_add(&t, "shop@site.example", PW2, "other.example"), -EEXIST);
	ck_assert_int_eq(at_verify(&t, "shop@site.example", PW, &u), 0);
	ck_assert_str_eq(u.domains, "shop.example news.shop.example");
	at_close(&t);
}
END_TEST

START_TEST(wrong_password_refused)
{
	struct at t;
	char pw[AUTH_PASSWORD_MAX + 2];

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	ck_assert_int_eq(at_verify(&t, "shop", "correct horse batterY", NULL), -EACCES);
	ck_assert_int_eq(at_verify(&t, "shop", "", NULL), -EACCES);
	ck_assert_int_eq(at_verify(&t, "shop", PW "x", NULL), -EACCES);
	/* A NUL byte inside: not the same password cut short. */
	ck_assert_int_eq(at_verify2(&t, "shop", PW "\0x", sizeof PW + 1, NULL, NULL), -EACCES);
	/* Longer than AUTH_PASSWORD_MAX: never verifies. */
	memset(pw, 'a', sizeof pw);
	ck_assert_int_eq(at_verify2(&t, "shop", pw, sizeof pw, NULL, NULL), -EACCES);
	ck_assert_int_eq(at_verify(&t, "shop", PW, NULL), 0);
	at_close(&t);
}
END_TEST

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t
median(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_u64);
	return v[n / 2];
}

/* at_hashed - verify name with a wrong password; the cost hashed, and how many hashes. */
static uint64_t
at_hashed(struct at *t, const char *name, char *cost, size_t costsz, uint64_t *ns)
{
	struct auth_hash_stats before, after;

	auth_hash_stats(t->a, &before);
	ck_assert_int_eq(at_verify2(t, name, "wrong password", 14, NULL, ns), -EACCES);
	auth_hash_stats(t->a, &after);
	str_copy(cost, after.cost, costsz);
	return after.hashes - before.hashes;
}

START_TEST(unknown_user_costs_the_same)
{
	struct at t;
	enum { N = 7 };
	uint64_t wrong[N], unknown[N], invalid[N];
	char stored[AUTH_HASH_MAX], want[AUTH_COST_MAX], cost[AUTH_COST_MAX];

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	at_field(&t, "shop", "hash", stored, sizeof stored);
	auth_hash_cost(stored, want, sizeof want);
	ck_assert_msg(strncmp(want, "$y$", 3) == 0 && strlen(want) > 4, "cost %s", want);
	/*
	 * Each refusal runs exactly one crypt(3) at the stored hash's scheme
	 * and cost, whether the user exists or not: the work done, and so the
	 * time taken, does not tell which names exist.
	 */
	for (int i = 0; i < N; i++) {
		ck_assert_uint_eq(at_hashed(&t, "shop", cost, sizeof cost, &wrong[i]), 1);
		ck_assert_str_eq(cost, want);
		ck_assert_uint_eq(at_hashed(&t, "nobody", cost, sizeof cost, &unknown[i]), 1);
		ck_assert_str_eq(cost, want);
		ck_assert_uint_eq(at_hashed(&t, "no body", cost, sizeof cost, &invalid[i]), 1);
		ck_assert_str_eq(cost, want);
	}
	fprintf(stderr, "# verify: wrong password %.1f ms, unknown user %.1f ms, invalid name %.1f ms (medians of %d)\n",
	    median(wrong, N) / 1e6, median(unknown, N) / 1e6, median(invalid, N) / 1e6, N);
	at_close(&t);
}
END_TEST

START_TEST(hash_cost_part)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "$y$j9T$salt$hash", "$y$j9T$" },
		{ "$y$j9T$salt", "$y$j9T$" },
		{ "$6$rounds=5000$salt$hash", "$6$rounds=5000$" },
		{ "$6$salt$hash", "$6$" },
		{ "$2b$10$saltandhash", "$2b$10$" },
		{ "$y$j9T", "" },
		{ "plain", "" },
		{ "", "" },
	};
	char out[AUTH_COST_MAX], tiny[4];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		auth_hash_cost(cases[i].in, out, sizeof out);
		ck_assert_msg(strcmp(out, cases[i].want) == 0, "%s: %s", cases[i].in, out);
	}
	auth_hash_cost("$y$j9T$salt", tiny, sizeof tiny);
	ck_assert_str_eq(tiny, "");
}
END_TEST

START_TEST(disabled_user_refused)
{
	struct at t;
	struct auth_user u;
	char f[16];

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	ck_assert_int_eq(at_set(&t, "shop", NULL, AUTH_ENABLE_OFF), 0);
	at_field(&t, "shop", "enabled", f, sizeof f);
	ck_assert_str_eq(f, "0");
	ck_assert_int_eq(at_verify(&t, "shop", PW, NULL), -EACCES);
	ck_assert_int_eq(at_set(&t, "shop", NULL, AUTH_ENABLE_ON), 0);
	ck_assert_int_eq(at_verify(&t, "shop", PW, &u), 0);
	ck_assert(u.enabled);
	/* Only "1" is enabled: a hand-edited value fails closed. */
	freeReplyObject(redis_test_cmd(t.sync, "HSET %s enabled yes", at_key(&t, "user:shop")));
	ck_assert_int_eq(at_verify(&t, "shop", PW, NULL), -EACCES);
	at_close(&t);
}
END_TEST

START_TEST(passwd_changes_it)
{
	struct at t;
	char before[AUTH_HASH_MAX], after[AUTH_HASH_MAX], created[32], created2[32];

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	at_field(&t, "shop", "hash", before, sizeof before);
	at_field(&t, "shop", "created", created, sizeof created);
	ck_assert_int_eq(at_passwd(&t, "shop", PW2), 0);
	at_field(&t, "shop", "hash", after, sizeof after);
	at_field(&t, "shop", "created", created2, sizeof created2);
	ck_assert_str_ne(before, after);
	ck_assert_str_eq(created, created2);
	ck_assert_int_eq(at_verify(&t, "shop", PW, NULL), -EACCES);
	ck_assert_int_eq(at_verify(&t, "shop", PW2, NULL), 0);
	/* The same password again gets a new salt. */
	ck_assert_int_eq(at_passwd(&t, "shop", PW2), 0);
	at_field(&t, "shop", "hash", before, sizeof before);
	ck_assert_str_ne(before, after);
	ck_assert_int_eq(at_passwd(&t, "nobody", PW2), -ENOENT);
	/* The unknown name was not created on the way. */
	ck_assert_int_eq(at_verify(&t, "nobody", PW2, NULL), -EACCES);
	at_close(&t);
}
END_TEST

START_TEST(del_removes)
{
	struct at t;
	redisReply *r;

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	ck_assert_int_eq(at_del(&t, "shop"), 0);
	ck_assert_int_eq(at_verify(&t, "shop", PW, NULL), -EACCES);
	r = redis_test_cmd(t.sync, "EXISTS %s", at_key(&t, "user:shop"));
	ck_assert_int_eq(r->integer, 0);
	freeReplyObject(r);
	r = redis_test_cmd(t.sync, "SISMEMBER %s shop", at_key(&t, "users"));
	ck_assert_int_eq(r->integer, 0);
	freeReplyObject(r);
	ck_assert_int_eq(at_del(&t, "shop"), -ENOENT);
	ck_assert_int_eq(at_set(&t, "shop", "a.example", AUTH_ENABLE_KEEP), -ENOENT);
	/* Gone for good: adding it again works. */
	ck_assert_int_eq(at_add(&t, "shop", PW2, "shop.example"), 0);
	ck_assert_int_eq(at_verify(&t, "shop", PW2, NULL), 0);
	at_close(&t);
}
END_TEST

START_TEST(list_sorted)
{
	struct at t;
	struct res r = { 0 };

	at_open(&t);
	ck_assert_int_eq(auth_user_list(t.a, on_list, &r), 0);
	at_wait(&t, &r.done);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.n, 0);

	ck_assert_int_eq(at_add(&t, "news", PW, "news.example"), 0);
	ck_assert_int_eq(at_add(&t, "alerts+ops@example.org", PW, "a.example,b.example"), 0);
	ck_assert_int_eq(at_add(&t, "Zeta", PW, NULL), 0);
	ck_assert_int_eq(at_set(&t, "news", NULL, AUTH_ENABLE_OFF), 0);
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(auth_user_list(t.a, on_list, &r), 0);
	at_wait(&t, &r.done);
	ck_assert_int_eq(r.status, 0);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_uint_eq(r.n, 3);
	ck_assert_str_eq(r.users[0].name, "Zeta");
	ck_assert_str_eq(r.users[0].domains, "");
	ck_assert(r.users[0].enabled);
	ck_assert_str_eq(r.users[1].name, "alerts+ops@example.org");
	ck_assert_str_eq(r.users[1].domains, "a.example b.example");
	ck_assert(r.users[1].enabled);
	ck_assert_str_eq(r.users[2].name, "news");
	ck_assert(!r.users[2].enabled);
	free(r.users);
	at_close(&t);
}
END_TEST

START_TEST(set_domains)
{
	struct at t;
	struct auth_user u;

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	ck_assert_int_eq(at_set(&t, "shop", "B.example a.example", AUTH_ENABLE_KEEP), 0);
	ck_assert_int_eq(at_verify(&t, "shop", PW, &u), 0);
	ck_assert_str_eq(u.domains, "b.example a.example");
	ck_assert(auth_user_may_send_as(&u, "A.EXAMPLE"));
	ck_assert(!auth_user_may_send_as(&u, "shop.example"));
	ck_assert_int_eq(auth_user_set(t.a, "shop", "bad..example", AUTH_ENABLE_KEEP, on_status, NULL), -EINVAL);
	/* A label may not start or end with a hyphen (RFC 1123 2.1). */
	ck_assert_int_eq(auth_user_set(t.a, "shop", "-shop.example", AUTH_ENABLE_KEEP, on_status, NULL), -EINVAL);
	ck_assert_int_eq(auth_user_set(t.a, "shop", "shop-.example", AUTH_ENABLE_KEEP, on_status, NULL), -EINVAL);
	ck_assert_int_eq(at_verify(&t, "shop", PW, &u), 0);
	ck_assert_str_eq(u.domains, "b.example a.example");
	at_close(&t);
}
END_TEST

START_TEST(policy_overrides_stored_and_returned)
{
	struct at t;
	struct auth_user u;
	char f[AUTH_DOMAINS_MAX], changed[32], changed2[32];

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	/* A new user has no overrides: the [policy] defaults apply. */
	ck_assert_int_eq(at_verify(&t, "shop", PW, &u), 0);
	ck_assert_str_eq(u.rate, "");
	ck_assert_str_eq(u.rcpt_rate, "");
	ck_assert_str_eq(u.rcpt_domains, "");
	ck_assert(!at_hexists(&t, "shop", "rate"));

	at_field(&t, "shop", "changed", changed, sizeof changed);
	usleep(2000);
	ck_assert_int_eq(at_set_policy(&t, "shop", "500/h,20/min", " 5000/day ",
	    "B.example, a.example,b.example"), 0);
	/* Stored normalised. */
	at_field(&t, "shop", "rate", f, sizeof f);
	ck_assert_str_eq(f, "500/h, 20/min");
	at_field(&t, "shop", "rcpt_rate", f, sizeof f);
	ck_assert_str_eq(f, "5000/d");
	at_field(&t, "shop", "rcpt_domains", f, sizeof f);
	ck_assert_str_eq(f, "b.example a.example");
	at_field(&t, "shop", "changed", changed2, sizeof changed2);
	ck_assert_uint_gt(strtoull(changed2, NULL, 10), strtoull(changed, NULL, 10));

	/* verify, get, info and list all carry them. */
	memset(&u, 0, sizeof u);
	ck_assert_int_eq(at_verify(&t, "shop", PW, &u), 0);
	ck_assert_str_eq(u.rate, "500/h, 20/min");
	ck_assert_str_eq(u.rcpt_rate, "5000/d");
	ck_assert_str_eq(u.rcpt_domains, "b.example a.example");
	ck_assert_str_eq(u.domains, "shop.example");
	memset(&u, 0, sizeof u);
	ck_assert_int_eq(at_get(&t, "shop", false, &u), 0);
	ck_assert_str_eq(u.name, "shop");
	ck_assert_str_eq(u.domains, "shop.example");
	ck_assert(u.enabled);
	ck_assert_str_eq(u.rate, "500/h, 20/min");
	ck_assert_str_eq(u.rcpt_rate, "5000/d");
	ck_assert_str_eq(u.rcpt_domains, "b.example a.example");
	ck_assert_uint_gt(u.created_ms, 1700000000000ULL);
	ck_assert_uint_eq(u.changed_ms, strtoull(changed2, NULL, 10));
	memset(&u, 0, sizeof u);
	ck_assert(at_list_user(&t, "shop", &u));
	ck_assert_str_eq(u.rate, "500/h, 20/min");
	ck_assert_str_eq(u.rcpt_rate, "5000/d");
	ck_assert_str_eq(u.rcpt_domains, "b.example a.example");
	ck_assert_str_eq(u.domains, "shop.example");
	ck_assert(u.enabled);

	/* NULL keeps; "none" is an override of its own (no limit). */
	ck_assert_int_eq(at_set_policy(&t, "shop", "none", NULL, NULL), 0);
	ck_assert_int_eq(at_get(&t, "shop", false, &u), 0);
	ck_assert_str_eq(u.rate, "none");
	ck_assert_str_eq(u.rcpt_rate, "5000/d");
	ck_assert_str_eq(u.rcpt_domains, "b.example a.example");

	/* "" clears back to the default: the field is gone. */
	ck_assert_int_eq(at_set_policy(&t, "shop", "", "", NULL), 0);
	ck_assert(!at_hexists(&t, "shop", "rate"));
	ck_assert(!at_hexists(&t, "shop", "rcpt_rate"));
	ck_assert(at_hexists(&t, "shop", "rcpt_domains"));
	ck_assert_int_eq(at_set_policy(&t, "shop", NULL, NULL, ""), 0);
	ck_assert(!at_hexists(&t, "shop", "rcpt_domains"));
	ck_assert_int_eq(at_verify(&t, "shop", PW, &u), 0);
	ck_assert_str_eq(u.rate, "");
	ck_assert_str_eq(u.rcpt_rate, "");
	ck_assert_str_eq(u.rcpt_domains, "");
	/* The password and the other fields were not touched. */
	ck_assert_str_eq(u.domains, "shop.example");

	/* auth_user_set leaves the overrides alone. */
	ck_assert_int_eq(at_set_policy(&t, "shop", "3/10s", NULL, NULL), 0);
	ck_assert_int_eq(at_set(&t, "shop", "other.example", AUTH_ENABLE_KEEP), 0);
	ck_assert_int_eq(at_get(&t, "shop", false, &u), 0);
	ck_assert_str_eq(u.rate, "3/10s");
	ck_assert_str_eq(u.domains, "other.example");
	at_close(&t);
}
END_TEST

START_TEST(policy_bad_values_refused)
{
	static const struct {
		const char *rate, *rcpt_rate, *rcpt_domains;
	} bad[] = {
		{ "500/x", NULL, NULL },
		{ "500", NULL, NULL },
		{ "0/h", NULL, NULL },
		{ "1000000001/h", NULL, NULL },       /* N+1 over the largest count */
		{ "5/500ms", NULL, NULL },            /* window under 1 s */
		{ "5/32d", NULL, NULL },              /* window over 31 days */
		{ "1/s,2/min,3/h,4/d,5/10s", NULL, NULL }, /* five rates */
		{ "500/h,20/h", NULL, NULL },
		{ "500/h,,20/min", NULL, NULL },
		{ NULL, "ten/d", NULL },
		{ NULL, NULL, "a.example,bad..example" },
		{ NULL, NULL, "*.example" },
		{ NULL, NULL, NULL },                 /* nothing to change */
	};
	struct at t;
	struct auth_user u;
	char f[64];
	redisReply *r;

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	at_field(&t, "shop", "changed", f, sizeof f);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(auth_user_set_policy(t.a, "shop", bad[i].rate, bad[i].rcpt_rate,
		    bad[i].rcpt_domains, on_status, NULL) == -EINVAL, "case %zu accepted", i);
	ck_assert_int_eq(auth_user_set_policy(t.a, "bad name", "5/h", NULL, NULL, on_status,
	    NULL), -EINVAL);
	/* Nothing was written, not even the change time. */
	ck_assert(!at_hexists(&t, "shop", "rate"));
	ck_assert(!at_hexists(&t, "shop", "rcpt_rate"));
	ck_assert(!at_hexists(&t, "shop", "rcpt_domains"));
	{
		char f2[64];

		at_field(&t, "shop", "changed", f2, sizeof f2);
		ck_assert_str_eq(f, f2);
	}
	/* The boundaries themselves are accepted. */
	ck_assert_int_eq(at_set_policy(&t, "shop", "1000000000/31d,1/s,2/min,3/h", "1/1s",
	    NULL), 0);
	ck_assert_int_eq(at_get(&t, "shop", false, &u), 0);
	ck_assert_str_eq(u.rate, "1000000000/31d, 1/s, 2/min, 3/h");
	ck_assert_str_eq(u.rcpt_rate, "1/s");

	/* An unknown user is not created on the way. */
	ck_assert_int_eq(at_set_policy(&t, "nobody", "5/h", NULL, NULL), -ENOENT);
	r = redis_test_cmd(t.sync, "EXISTS %s", at_key(&t, "user:nobody"));
	ck_assert_int_eq(r->integer, 0);
	freeReplyObject(r);
	at_close(&t);
}
END_TEST

START_TEST(user_get_without_password)
{
	struct at t;
	struct auth_user u;

	at_open(&t);
	ck_assert_int_eq(at_get(&t, "trusted", false, NULL), -ENOENT);
	ck_assert_int_eq(at_get(&t, "trusted", true, NULL), -ENOENT);
	ck_assert_int_eq(at_get(&t, "bad name", false, NULL), -EINVAL);
	ck_assert_int_eq(at_get(&t, "bad name", true, NULL), -EINVAL);
	ck_assert_int_eq(at_add(&t, "trusted", PW, "app.example"), 0);
	memset(&u, 0, sizeof u);
	ck_assert_int_eq(at_get(&t, "trusted", false, &u), 0);
	ck_assert_str_eq(u.name, "trusted");
	ck_assert_str_eq(u.domains, "app.example");
	ck_assert(u.enabled);
	ck_assert(auth_user_may_send_as(&u, "app.example"));
	/* Names are case-sensitive here too. */
	ck_assert_int_eq(at_get(&t, "Trusted", false, NULL), -ENOENT);

	/* Disabled: not a user to act as; still one to show. */
	ck_assert_int_eq(at_set(&t, "trusted", NULL, AUTH_ENABLE_OFF), 0);
	ck_assert_int_eq(at_get(&t, "trusted", false, NULL), -ENOENT);
	memset(&u, 0, sizeof u);
	ck_assert_int_eq(at_get(&t, "trusted", true, &u), 0);
	ck_assert(!u.enabled);
	ck_assert_str_eq(u.domains, "app.example");
	ck_assert_int_eq(at_set(&t, "trusted", NULL, AUTH_ENABLE_ON), 0);
	ck_assert_int_eq(at_get(&t, "trusted", false, &u), 0);

	/* Gone after del. */
	ck_assert_int_eq(at_del(&t, "trusted"), 0);
	ck_assert_int_eq(at_get(&t, "trusted", false, NULL), -ENOENT);
	ck_assert_int_eq(at_get(&t, "trusted", true, NULL), -ENOENT);
	at_close(&t);
}
END_TEST

START_TEST(stored_rate_too_long_not_cut)
{
	struct at t;
	struct auth_user u;
	char big[AUTH_RATE_MAX + 16];

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	/* A hand-edited value longer than the field: read as no override. */
	memset(big, '9', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	memcpy(big + sizeof big - 4, "/h", 3);
	freeReplyObject(redis_test_cmd(t.sync, "HSET %s rate %s rcpt_rate %s", at_key(&t, "user:shop"),
	    big, "7/h"));
	ck_assert_int_eq(at_verify(&t, "shop", PW, &u), 0);
	ck_assert_str_eq(u.rate, "");
	ck_assert_str_eq(u.rcpt_rate, "7/h");
	ck_assert_int_eq(at_get(&t, "shop", false, &u), 0);
	ck_assert_str_eq(u.rate, "");
	ck_assert(at_list_user(&t, "shop", &u));
	ck_assert_str_eq(u.rate, "");
	ck_assert_str_eq(u.rcpt_rate, "7/h");
	at_close(&t);
}
END_TEST

START_TEST(may_send_as)
{
	static const struct {
		const char *domains, *domain;
		bool ok;
	} cases[] = {
		{ "shop.example", "shop.example", true },
		{ "shop.example", "SHOP.Example", true },
		{ "shop.example", "shop.example.", true },
		{ "a.example shop.example", "shop.example", true },
		{ "shop.example", "mail.shop.example", false },   /* no inheritance */
		{ "shop.example", "example", false },
		{ "shop.example", "hop.example", false },
		{ "shop.example", "shop.exampl", false },
		{ "shop.example", "shop.example.org", false },
		{ "shop.example", "", false },
		{ "shop.example", ".", false },
		{ "", "shop.example", false },
		{ "a.example  b.example", "b.example", true },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct auth_user u;

		memset(&u, 0, sizeof u);
		str_copy(u.domains, cases[i].domains, sizeof u.domains);
		ck_assert_msg(auth_user_may_send_as(&u, cases[i].domain) == cases[i].ok,
		    "case %zu: \"%s\" as \"%s\"", i, cases[i].domains, cases[i].domain);
	}
}
END_TEST

START_TEST(domains_parse)
{
	static const struct {
		const char *in, *out;
		int rc;
		const char *bad;
	} cases[] = {
		{ "a.example,b.example", "a.example b.example", 0, NULL },
		{ " A.Example , b.example. ,a.example", "a.example b.example", 0, NULL },
		{ "xn--bcher-kva.example", "xn--bcher-kva.example", 0, NULL },
		{ "", "", 0, NULL },
		{ ",,", "", 0, NULL },
		{ "a.example,bad..example", NULL, -EINVAL, "bad..example" },
		{ "under_score.example", NULL, -EINVAL, "under_score.example" },
		{ ".example", NULL, -EINVAL, ".example" },
		{ "a.example;b.example", NULL, -EINVAL, "a.example;b.example" },
		{ "*.example", NULL, -EINVAL, "*.example" },
		/* RFC 1123 2.1: no label starts or ends with a hyphen. */
		{ "-shop.example", NULL, -EINVAL, "-shop.example" },
		{ "shop-.example", NULL, -EINVAL, "shop-.example" },
		{ "a.example,shop.-x.example", NULL, -EINVAL, "shop.-x.example" },
		{ "shop.example-", NULL, -EINVAL, "shop.example-" },
		{ "s-hop.example", "s-hop.example", 0, NULL },
	};
	char out[AUTH_DOMAINS_MAX], bad[64];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc;

		bad[0] = '\0';
		rc = auth_domains_parse(cases[i].in, out, sizeof out, bad, sizeof bad);
		ck_assert_msg(rc == cases[i].rc, "case %zu: rc %d", i, rc);
		if (rc == 0)
			ck_assert_str_eq(out, cases[i].out);
		else
			ck_assert_str_eq(bad, cases[i].bad);
	}
	/* Too long for the stored field. */
	{
		char big[AUTH_DOMAINS_MAX * 2];
		size_t n = 0;

		for (int i = 0; n + 20 < sizeof big; i++)
			n += (size_t)snprintf(big + n, sizeof big - n, "d%d.example,", i);
		ck_assert_int_eq(auth_domains_parse(big, out, sizeof out, NULL, 0), -E2BIG);
	}
}
END_TEST

START_TEST(names_and_arguments)
{
	struct at t;
	char long_name[AUTH_NAME_MAX + 2];

	ck_assert(auth_name_valid("shop"));
	ck_assert(auth_name_valid("a.b_c@d+e-f.example"));
	ck_assert(!auth_name_valid(""));
	ck_assert(!auth_name_valid("a b"));
	ck_assert(!auth_name_valid("a:b"));
	ck_assert(!auth_name_valid("a*"));
	ck_assert(!auth_name_valid("na\xc3\xafve"));
	memset(long_name, 'x', sizeof long_name);
	long_name[AUTH_NAME_MAX] = '\0';
	ck_assert(auth_name_valid(long_name));
	long_name[AUTH_NAME_MAX] = 'x';
	long_name[AUTH_NAME_MAX + 1] = '\0';
	ck_assert(!auth_name_valid(long_name));

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "bad name", PW, "a.example"), -EINVAL);
	ck_assert_int_eq(at_add(&t, long_name, PW, "a.example"), -EINVAL);
	ck_assert_int_eq(at_add(&t, "shop", "short", "a.example"), -EINVAL);
	ck_assert_int_eq(at_add(&t, "shop", "", "a.example"), -EINVAL);
	ck_assert_int_eq(at_add(&t, "shop", PW, "a..example"), -EINVAL);
	ck_assert_int_eq(at_add(&t, "shop", PW, "-shop.example"), -EINVAL);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop-.example"), -EINVAL);
	ck_assert_int_eq(auth_user_add(t.a, "shop", PW "\0x", sizeof PW + 1, "a.example",
	    on_status, NULL), -EINVAL);
	ck_assert_int_eq(at_passwd(&t, "shop", "1234567"), -EINVAL);
	ck_assert_int_eq(at_del(&t, "*"), -EINVAL);
	/* Nothing was written. */
	{
		redisReply *r = redis_test_cmd(t.sync, "KEYS %s*", t.cfg.redis.prefix);

		ck_assert_uint_eq(r->elements, 0);
		freeReplyObject(r);
	}
	at_close(&t);
}
END_TEST

/* Whether any string in the reply (nested) contains needle. */
static bool
reply_contains(const redisReply *r, const char *needle)
{
	if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
		return memmem(r->str, r->len, needle, strlen(needle)) != NULL;
	if (r->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < r->elements; i++)
			if (reply_contains(r->element[i], needle))
				return true;
	return false;
}

START_TEST(password_never_stored)
{
	struct at t;
	redisReply *keys;
	size_t checked = 0;

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	ck_assert_int_eq(at_add(&t, "news", PW2, "news.example"), 0);
	ck_assert_int_eq(at_passwd(&t, "shop", PW2 "!"), 0);
	ck_assert_int_eq(at_verify(&t, "shop", PW, NULL), -EACCES);
	keys = redis_test_cmd(t.sync, "KEYS %s*", t.cfg.redis.prefix);
	ck_assert_uint_eq(keys->elements, 3);
	for (size_t i = 0; i < keys->elements; i++) {
		const char *k = keys->element[i]->str;
		redisReply *type = redis_test_cmd(t.sync, "TYPE %s", k), *v;

		if (strcmp(type->str, "hash") == 0)
			v = redis_test_cmd(t.sync, "HGETALL %s", k);
		else
			v = redis_test_cmd(t.sync, "SMEMBERS %s", k);
		ck_assert(!reply_contains(v, PW));
		ck_assert(!reply_contains(v, PW2));
		ck_assert(!reply_contains(v, "horse"));
		ck_assert(!reply_contains(v, "Tr0ub4dor"));
		checked++;
		freeReplyObject(v);
		freeReplyObject(type);
	}
	ck_assert_uint_eq(checked, 3);
	freeReplyObject(keys);
	at_close(&t);
}
END_TEST

START_TEST(unusable_hash_refused)
{
	struct at t;
	uint64_t ns;

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	/* A locked account, as shadow(5) writes it, and plain garbage. */
	freeReplyObject(redis_test_cmd(t.sync, "HSET %s hash !locked", at_key(&t, "user:shop")));
	ck_assert_int_eq(at_verify2(&t, "shop", "!locked", 7, NULL, &ns), -EACCES);
	ck_assert_uint_gt(ns, 2000000);   /* still a full dummy hash */
	freeReplyObject(redis_test_cmd(t.sync, "HSET %s hash %s", at_key(&t, "user:shop"), PW));
	ck_assert_int_eq(at_verify(&t, "shop", PW, NULL), -EACCES);
	/* A hash key without a hash field. */
	freeReplyObject(redis_test_cmd(t.sync, "HDEL %s hash", at_key(&t, "user:shop")));
	ck_assert_int_eq(at_verify(&t, "shop", PW, NULL), -EACCES);
	at_close(&t);
}
END_TEST

START_TEST(hash_password_helper)
{
	char h[AUTH_HASH_MAX], small[16];
	struct crypt_data *cd = calloc(1, sizeof *cd);

	ck_assert_int_eq(auth_hash_password(PW, strlen(PW), h, sizeof h), 0);
	ck_assert_msg(strncmp(h, "$y$", 3) == 0, "%s", h);
	ck_assert_str_eq(crypt_r(PW, h, cd), h);
	ck_assert_str_ne(crypt_r(PW2, h, cd), h);
	ck_assert_int_eq(auth_hash_password(PW "\0x", sizeof PW + 1, h, sizeof h), -EINVAL);
	ck_assert_int_eq(auth_hash_password(PW, strlen(PW), small, sizeof small), -ERANGE);
	free(cd);
}
END_TEST

/* Must never run. */
static void
on_verify_forbidden(void *arg, int status, const struct auth_user *user)
{
	(void)arg;
	(void)user;
	ck_abort_msg("cancelled verify called back (status %d)", status);
}

static void
on_tick(uv_timer_t *h)
{
	(*(unsigned *)h->data)++;
}

START_TEST(cancel_then_close)
{
	struct at t;
	auth_req_id id1 = 0, id2 = 0, id3 = 0;
	struct res r = { 0 };
	uv_timer_t tm;
	unsigned ticks = 0;
	bool closed = false;

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	/* Cancelled while its HMGET is in flight. */
	ck_assert_int_eq(auth_verify(t.a, "shop", PW, strlen(PW), on_verify_forbidden, NULL, &id1), 0);
	/* One that goes on, started between the two. */
	ck_assert_int_eq(auth_verify(t.a, "shop", PW, strlen(PW), on_verify, &r, NULL), 0);
	ck_assert_int_eq(auth_verify(t.a, "shop", PW, strlen(PW), on_verify_forbidden, NULL, &id2), 0);
	ck_assert_uint_ne(id1, id2);
	auth_cancel(t.a, id1);
	/* A name that is not valid skips Redis: straight to the pool. */
	ck_assert_int_eq(auth_verify(t.a, "no body", PW, strlen(PW), on_verify_forbidden, NULL, &id3), 0);
	auth_cancel(t.a, id3);
	/* Let the fetch come back so id2 is hashing, then cancel it. */
	uv_timer_init(&t.loop, &tm);
	tm.data = &ticks;
	uv_timer_start(&tm, on_tick, 5, 0);
	while (ticks == 0)
		uv_run(&t.loop, UV_RUN_ONCE);
	auth_cancel(t.a, id2);
	auth_cancel(t.a, id2);         /* twice: no harm */
	auth_cancel(t.a, 987654321);   /* unknown: ignored */
	at_wait(&t, &r.done);
	ck_assert_int_eq(r.status, 0);
	ck_assert_int_eq(r.calls, 1);

	/* Cancelled, then closed before anything came back. */
	ck_assert_int_eq(auth_verify(t.a, "shop", PW, strlen(PW), on_verify_forbidden, NULL, &id1), 0);
	auth_cancel(t.a, id1);
	uv_close((uv_handle_t *)&tm, NULL);
	freeReplyObject(redis_test_cmd(t.sync, "EVAL %s 0 %s",
	    "for _, k in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do redis.call('DEL', k) end return 1",
	    t.cfg.redis.prefix));
	redisFree(t.sync);
	auth_close(t.a, redis_test_on_closed, &closed);
	uv_run(&t.loop, UV_RUN_DEFAULT);
	ck_assert(closed);
	ck_assert_int_eq(uv_loop_close(&t.loop), 0);
}
END_TEST

START_TEST(close_ends_pending_verifies)
{
	struct at t;
	struct res fetching = { 0 }, hashing = { 0 }, added = { 0 };
	uv_timer_t tm;
	unsigned ticks = 0;
	bool closed = false;

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	ck_assert_int_eq(auth_verify(t.a, "shop", PW, strlen(PW), on_verify, &hashing, NULL), 0);
	uv_timer_init(&t.loop, &tm);
	tm.data = &ticks;
	uv_timer_start(&tm, on_tick, 5, 0);
	while (ticks == 0)
		uv_run(&t.loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&tm, NULL);
	ck_assert_int_eq(auth_verify(t.a, "shop", PW, strlen(PW), on_verify, &fetching, NULL), 0);
	ck_assert_int_eq(auth_user_add(t.a, "news", PW, strlen(PW), NULL, on_status, &added), 0);
	freeReplyObject(redis_test_cmd(t.sync, "EVAL %s 0 %s",
	    "for _, k in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do redis.call('DEL', k) end return 1",
	    t.cfg.redis.prefix));
	redisFree(t.sync);
	auth_close(t.a, redis_test_on_closed, &closed);
	/* Nothing runs inside auth_close(). */
	ck_assert_int_eq(fetching.calls + hashing.calls + added.calls, 0);
	uv_run(&t.loop, UV_RUN_DEFAULT);
	ck_assert(closed);
	ck_assert_int_eq(fetching.calls, 1);
	ck_assert_int_eq(fetching.status, -ECANCELED);
	ck_assert_int_eq(hashing.calls, 1);
	ck_assert_int_eq(hashing.status, -ECANCELED);
	ck_assert_int_eq(added.calls, 1);
	ck_assert_int_eq(added.status, -ECANCELED);
	ck_assert_int_eq(uv_loop_close(&t.loop), 0);
}
END_TEST

struct par {
	unsigned left;
	bool done;
	int ok, refused, other;
};

static void
on_par(void *arg, int status, const struct auth_user *user)
{
	struct par *p = arg;

	if (status == 0 && user != NULL && strcmp(user->name, "shop") == 0)
		p->ok++;
	else if (status == -EACCES)
		p->refused++;
	else
		p->other++;
	if (--p->left == 0)
		p->done = true;
}

/*
 * A gate holds one thread of libuv's pool until the loop opens it: with
 * every thread held, work queued behind the gates cannot run.
 */
struct gate {
	uv_sem_t open;
	atomic_uint started;
	unsigned finished, n;
	bool done;
};

static void
gate_work(uv_work_t *w)
{
	struct gate *g = w->data;

	atomic_fetch_add(&g->started, 1);
	uv_sem_wait(&g->open);
}

static void
gate_done(uv_work_t *w, int status)
{
	struct gate *g = w->data;

	ck_assert_int_eq(status, 0);
	if (++g->finished == g->n)
		g->done = true;
}

/* pool_threads - the size of libuv's pool, read as libuv reads it. */
static unsigned
pool_threads(void)
{
	const char *v = getenv("UV_THREADPOOL_SIZE");
	unsigned n = v != NULL ? (unsigned)atoi(v) : 4;

	if (n == 0)
		n = 1;
	return n > 1024 ? 1024 : n;
}

START_TEST(parallel_verifies_keep_the_loop_running)
{
	enum { N = 20 };
	struct at t;
	struct par p = { N, false, 0, 0, 0 };
	struct res got = { 0 };
	struct gate g;
	uv_work_t *gates;
	uv_timer_t tm;
	unsigned ticks = 0, seen;

	at_open(&t);
	ck_assert_int_eq(at_add(&t, "shop", PW, "shop.example"), 0);
	uv_timer_init(&t.loop, &tm);
	tm.data = &ticks;
	uv_timer_start(&tm, on_tick, 1, 1);

	/* Hold every thread of the pool. */
	memset(&g, 0, sizeof g);
	ck_assert_int_eq(uv_sem_init(&g.open, 0), 0);
	atomic_init(&g.started, 0);
	g.n = pool_threads();
	gates = calloc(g.n, sizeof *gates);
	ck_assert_ptr_nonnull(gates);
	for (unsigned i = 0; i < g.n; i++) {
		gates[i].data = &g;
		ck_assert_int_eq(uv_queue_work(&t.loop, &gates[i], gate_work, gate_done), 0);
	}
	while (atomic_load(&g.started) < g.n)
		uv_run(&t.loop, UV_RUN_ONCE);

	for (int i = 0; i < N; i++) {
		const char *user = i % 4 == 3 ? "nobody" : "shop";
		const char *pw = i % 2 == 0 ? PW : "wrong password";

		ck_assert_int_eq(auth_verify(t.a, user, pw, strlen(pw), on_par, &p, NULL), 0);
	}
	/*
	 * Sent behind the 20 fetches on the same connection, so answered after
	 * them: by then each verify has handed its hash on.  Were the hashes
	 * run on the loop, all 20 would have answered by now; they wait for
	 * the pool, and the loop keeps turning (Redis answers, timers fire).
	 */
	ck_assert_int_eq(auth_user_get(t.a, "shop", on_verify, &got), 0);
	at_wait(&t, &got.done);
	ck_assert_int_eq(got.status, 0);
	ck_assert_uint_eq(p.left, N);
	seen = ticks;
	while (ticks < seen + 5)
		uv_run(&t.loop, UV_RUN_ONCE);
	ck_assert_uint_eq(p.left, N);

	/* Open the gates: every verify answers, on the loop. */
	for (unsigned i = 0; i < g.n; i++)
		uv_sem_post(&g.open);
	at_wait(&t, &p.done);
	at_wait(&t, &g.done);
	uv_timer_stop(&tm);
	uv_close((uv_handle_t *)&tm, NULL);
	fprintf(stderr, "# %d verifies behind %u held pool threads: %u timer ticks\n", N, g.n, ticks);
	/* i even and user shop: 0,2,4,...: i%4 in {0,2} -> 10 right. */
	ck_assert_int_eq(p.ok, 10);
	ck_assert_int_eq(p.refused, 10);
	ck_assert_int_eq(p.other, 0);
	uv_sem_destroy(&g.open);
	free(gates);
	at_close(&t);
}
END_TEST

START_TEST(down_redis_refuses_at_once)
{
	uv_loop_t loop;
	struct config cfg;
	struct auth *a;
	const char *why;
	bool closed = false;
	uv_timer_t tm;
	unsigned ticks = 0;
	auth_req_id id = 0;

	config_defaults(&cfg);
	ck_assert_int_eq(config_parse_endpoint("127.0.0.1:1", false, &cfg.redis.address, &why), 0);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(auth_open(&a, &loop, &cfg, "test"), 0);
	uv_timer_init(&loop, &tm);
	tm.data = &ticks;
	/*
	 * At least 300 ms, then until an attempt has failed and said why: each
	 * new attempt clears the text until it fails in turn (bounded, 5 s).
	 */
	uv_timer_start(&tm, on_tick, 10, 10);
	while (ticks < 30 || (auth_last_error(a)[0] == '\0' && ticks < 500))
		uv_run(&loop, UV_RUN_ONCE);
	ck_assert(!auth_is_up(a));
	ck_assert_str_ne(auth_last_error(a), "");
	ck_assert_int_eq(auth_verify(a, "shop", PW, strlen(PW), on_verify_forbidden, NULL, &id), -ENOTCONN);
	ck_assert_uint_eq(id, 0);
	ck_assert_int_eq(auth_user_add(a, "shop", PW, strlen(PW), NULL, on_status, NULL), -ENOTCONN);
	ck_assert_int_eq(auth_user_del(a, "shop", on_status, NULL), -ENOTCONN);
	ck_assert_int_eq(auth_user_list(a, on_list, NULL), -ENOTCONN);
	ck_assert_int_eq(auth_user_get(a, "shop", on_verify_forbidden, NULL), -ENOTCONN);
	ck_assert_int_eq(auth_user_info(a, "shop", on_verify_forbidden, NULL), -ENOTCONN);
	ck_assert_int_eq(auth_user_set_policy(a, "shop", "5/h", NULL, NULL, on_status, NULL),
	    -ENOTCONN);
	uv_close((uv_handle_t *)&tm, NULL);
	auth_close(a, redis_test_on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert(closed);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

Suite *
auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("redis");
	TCase *pure = tcase_create("pure");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, unit_pool_fresh, NULL);
	tcase_add_checked_fixture(pure, unit_pool_fresh, NULL);
	tcase_add_test(tc, add_then_verify);
	tcase_add_test(tc, wrong_password_refused);
	tcase_add_test(tc, unknown_user_costs_the_same);
	tcase_add_test(tc, disabled_user_refused);
	tcase_add_test(tc, passwd_changes_it);
	tcase_add_test(tc, del_removes);
	tcase_add_test(tc, list_sorted);
	tcase_add_test(tc, set_domains);
	tcase_add_test(tc, policy_overrides_stored_and_returned);
	tcase_add_test(tc, policy_bad_values_refused);
	tcase_add_test(tc, user_get_without_password);
	tcase_add_test(tc, stored_rate_too_long_not_cut);
	tcase_add_test(tc, names_and_arguments);
	tcase_add_test(tc, password_never_stored);
	tcase_add_test(tc, unusable_hash_refused);
	tcase_add_test(tc, cancel_then_close);
	tcase_add_test(tc, close_ends_pending_verifies);
	tcase_add_test(tc, parallel_verifies_keep_the_loop_running);
	tcase_add_test(tc, down_redis_refuses_at_once);
	suite_add_tcase(s, tc);
	tcase_add_test(pure, may_send_as);
	tcase_add_test(pure, domains_parse);
	tcase_add_test(pure, hash_password_helper);
	tcase_add_test(pure, hash_cost_part);
	suite_add_tcase(s, pure);
	return s;
}

