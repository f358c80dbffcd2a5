/*
 * redis_test - Redis test scaffolding.  See redis_test.h.
 */
#include "tests/redis_test.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static unsigned test_seq;

static void
on_timeout(uv_timer_t *h)
{
	*(bool *)h->data = true;
}

static void
run_until(uv_loop_t *loop, const bool *done, uint64_t ms)
{
	uv_timer_t timer;
	bool expired = false;

	uv_timer_init(loop, &timer);
	timer.data = &expired;
	uv_timer_start(&timer, on_timeout, ms, 0);
	while ((done == NULL || !*done) && !expired)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
}

void
redis_test_wait(uv_loop_t *loop, const bool *done, uint64_t ms, const char *what)
{
	run_until(loop, done, ms);
	ck_assert_msg(*done, "timed out waiting for %s", what);
}

void
redis_test_sleep(uv_loop_t *loop, uint64_t ms)
{
	run_until(loop, NULL, ms);
}

void
redis_test_on_up(void *arg, bool up)
{
	if (up)
		*(bool *)arg = true;
}

void
redis_test_on_closed(void *arg)
{
	*(bool *)arg = true;
}

void
redis_test_config(struct config *cfg, const char *tag)
{
	const char *addr = getenv("KURIER_TEST_REDIS");
	const char *why = "";

	ck_assert_msg(addr != NULL, "KURIER_TEST_REDIS (host:port) is not set: run via tests/run-checks.sh");
	ck_assert_msg(config_parse_endpoint(addr, false, &cfg->redis.address, &why) == 0,
	    "KURIER_TEST_REDIS: %s", why);
	snprintf(cfg->redis.prefix, sizeof cfg->redis.prefix, "%s:%d:%u:",
	    tag, (int)getpid(), ++test_seq);
}

redisContext *
redis_test_connect(const struct config *cfg)
{
	struct timeval tv = { 5, 0 };
	redisContext *c;

	c = redisConnectWithTimeout(cfg->redis.address.host,
	    cfg->redis.address.port, tv);
	ck_assert(c != NULL && c->err == 0);
	return c;
}

void
redis_test_disconnect(redisContext *c, const char *prefix)
{
	redisReply *r;

	r = redisCommand(c, "EVAL %s 0 %s",
	    "for _, k in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do redis.call('DEL', k) end return 1",
	    prefix);
	freeReplyObject(r);
	redisFree(c);
}

redisReply *
redis_test_cmd(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	ck_assert_msg(r != NULL, "redis: %s", c->errstr);
	return r;
}

const char *
redis_test_key(const char *prefix, const char *suffix)
{
	static char key[256];

	snprintf(key, sizeof key, "%s%s", prefix, suffix);
	return key;
}
