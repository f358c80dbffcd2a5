/*
 * rdb - one asynchronous Redis connection on the libuv loop (hiredis and
 * its libuv adapter), kept up by reconnecting with backoff.
 *
 * Commands are never queued while the connection is down: rdb_cmd() and
 * rdb_eval() return -ENOTCONN at once, so a caller answers "try later"
 * instead of waiting.  A command that was sent gets its callback exactly
 * once: status 0 with the reply, -EIO with an error reply (r->str says
 * why), -ECONNRESET when the connection went away before the reply, or
 * -ECANCELED when rdb_close() ran first (r is NULL for the last two).
 * The reply lives only during the callback: copy what you keep.
 *
 * Scripts are sent with EVALSHA; the ones named in rdb_opts are loaded on
 * every connect, and a call whose script Redis does not know (SCRIPT FLUSH)
 * is resent once with EVAL.
 *
 * A connection opened with rdb_opts.psubscribe is a subscriber instead:
 * on every connect it subscribes to that pattern (PSUBSCRIBE) and counts
 * as up once Redis confirmed it; each message published to a matching
 * channel is handed to on_message.  Pub/sub is at-most-once: what is
 * published while the connection is down is lost, which the state
 * callback tells.  A subscriber takes no commands (-EINVAL).
 */
#ifndef KURIER_CORE_RDB_H
#define KURIER_CORE_RDB_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"

struct rdb;

/* A message on a subscriber: bytes valid during the call only. */
typedef void rdb_message_cb(void *arg, const char *channel, size_t chlen, const char *msg,
    size_t len);

struct rdb_opts {
	struct config_endpoint address;
	const char *password;        /* NULL or "" for none; borrowed */
	uint64_t connect_timeout_ms;
	uint64_t reconnect_max_ms;   /* backoff doubles from 100ms up to this */
	const char *name;            /* for log lines, e.g. "queue"; borrowed */
	/*
	 * Scripts loaded (SCRIPT LOAD) on every connect, before the connection
	 * counts as up; NULL-terminated, initialised, borrowed for the life of
	 * the connection.  A script missing from Redis's cache is resent with
	 * EVAL, after whatever was sent behind it: loading first keeps calls in
	 * order (unless someone runs SCRIPT FLUSH).
	 */
	struct rdb_script *const *scripts;
	/*
	 * A subscriber: the channel pattern (glob, as PSUBSCRIBE takes it;
	 * copied, at most 255 bytes) and what gets each message.  NULL: an
	 * ordinary connection.
	 */
	const char *psubscribe;
	rdb_message_cb *on_message;
	void *message_arg;
};

/* A Lua script; sha is filled by rdb_script_init(). */
struct rdb_script {
	const char *name;
	const char *src;
	char sha[41];
};

typedef void rdb_reply_cb(void *arg, int status, redisReply *r);
/* Called on every change: up=true once connected (and authenticated). */
typedef void rdb_state_cb(void *arg, bool up);
typedef void rdb_closed_cb(void *arg);

void rdb_script_init(struct rdb_script *s);
/*
 * rdb_opts_from_config - options for a connection to [redis] of cfg.
 * Borrows cfg (the password), name and scripts for the rdb_open() call.
 */
void rdb_opts_from_config(struct rdb_opts *o, const struct config *cfg,
    const char *name, struct rdb_script *const *scripts);

/*
 * rdb_open - start connecting; *out is usable at once (commands fail with
 * -ENOTCONN until the state callback says up).  Copies opts.
 */
int rdb_open(struct rdb **out, uv_loop_t *loop, const struct rdb_opts *opts,
    rdb_state_cb *state_cb, void *state_arg);
/*
 * rdb_close - stop reconnecting, cancel what is pending (-ECANCELED) and
 * free db once every handle is closed; then closed(arg) if not NULL.
 */
void rdb_close(struct rdb *db, rdb_closed_cb *closed, void *arg);
bool rdb_is_up(const struct rdb *db);
/* rdb_last_error - the last connection error text ("" when none). */
const char *rdb_last_error(const struct rdb *db);

/* rdb_cmd - send argv; argv is copied.  0, or -ENOTCONN (cb not called). */
int rdb_cmd(struct rdb *db, rdb_reply_cb *cb, void *arg, int argc,
    const char **argv, const size_t *argvlen);
/* rdb_cmdf - rdb_cmd with a hiredis format string (%s, %b, %d, ...). */
int rdb_cmdf(struct rdb *db, rdb_reply_cb *cb, void *arg, const char *fmt, ...);
/*
 * rdb_eval - run script with nkeys keys followed by the other arguments
 * (args[0..nargs), keys first).  args are copied.  0 or -ENOTCONN.
 */
int rdb_eval(struct rdb *db, struct rdb_script *s, rdb_reply_cb *cb, void *arg,
    int nkeys, int nargs, const char **args, const size_t *arglens);

/* --- shared by the modules that own a connection (queue, policy, auth) --- */

/*
 * rdb_open_config - rdb_open() to [redis] of cfg, named name, loading
 * scripts (NULL-terminated; each one's sha is computed here the first
 * time).  Borrows cfg and name for the call, scripts for the life of the
 * connection.  0 or a negative errno (*out is then not set).
 */
int rdb_open_config(struct rdb **out, uv_loop_t *loop, const struct config *cfg,
    const char *name, struct rdb_script *const *scripts, rdb_state_cb *state_cb,
    void *state_arg);

/*
 * rdb_log_error - log Redis's error reply to call op as component's
 * "redis_error" event (text quoted); nothing when status is not -EIO
 * with an error reply (the connection's own trouble is logged by rdb).
 */
void rdb_log_error(const char *component, const char *op, int status,
    const redisReply *r);
/*
 * rdb_reply_status - status, or the errno a script's error reply names
 * in its first word ("ESTALE ...": -ESTALE, "EEXIST ...": -EEXIST).
 */
int rdb_reply_status(int status, const redisReply *r);
/* rdb_reply_int - an integer reply, or a string of digits; -1 otherwise. */
int64_t rdb_reply_int(const redisReply *r);
/*
 * rdb_reply_u64 - *v from an integer reply >= 0, a string of digits, or
 * a non-negative number string below 2^64 (ZSCORE's scores, cut to
 * whole units).  false for anything else, NULL included.
 */
bool rdb_reply_u64(const redisReply *r, uint64_t *v);
/* rdb_reply_str - *p, *len of a string reply; false for anything else. */
bool rdb_reply_str(const redisReply *r, const char **p, size_t *len);
/* rdb_reply_array - whether r is an array of at least min elements. */
bool rdb_reply_array(const redisReply *r, size_t min);

#endif
