/*
 * redis_test - what the suites that run against the real redis-server
 * named by $KURIER_TEST_REDIS (host:port) share: a bounded run of the
 * loop, the address and a key prefix of its own per test, and a plain
 * synchronous connection for inspecting and dropping the test's keys.
 *
 * Every function fails the running Check test (ck_assert) rather than
 * return an error.  The loop and the config stay the caller's.
 */
#ifndef KURIER_TESTS_REDIS_TEST_H
#define KURIER_TESTS_REDIS_TEST_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"

/*
 * redis_test_wait - run loop until *done, failing the test with "timed
 * out waiting for <what>" after ms.  The timer it uses is closed before
 * it returns.
 */
void redis_test_wait(uv_loop_t *loop, const bool *done, uint64_t ms,
    const char *what);
/* redis_test_sleep - run loop for ms. */
void redis_test_sleep(uv_loop_t *loop, uint64_t ms);

/* redis_test_on_up - a state callback: sets *(bool *)arg once up. */
void redis_test_on_up(void *arg, bool up);
/* redis_test_on_closed - a close callback: sets *(bool *)arg. */
void redis_test_on_closed(void *arg);

/*
 * redis_test_config - cfg->redis.address from $KURIER_TEST_REDIS and
 * cfg->redis.prefix "<tag>:<pid>:<n>:", n new at every call, so no two
 * tests see each other's keys.  Other fields of cfg are left alone.
 */
void redis_test_config(struct config *cfg, const char *tag);
/* redis_test_connect - a synchronous connection to cfg's Redis. */
redisContext *redis_test_connect(const struct config *cfg);
/* redis_test_disconnect - delete every key under prefix, then free c. */
void redis_test_disconnect(redisContext *c, const char *prefix);
/* redis_test_cmd - a command on c; never NULL (the reply is the caller's). */
redisReply *redis_test_cmd(redisContext *c, const char *fmt, ...);
/* redis_test_key - prefix + suffix, in a static buffer. */
const char *redis_test_key(const char *prefix, const char *suffix);

#endif
