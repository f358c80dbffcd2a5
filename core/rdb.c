/*
 * rdb - asynchronous Redis connection with reconnect.  See rdb.h.
 *
 * Life of a connection: DOWN -> CONNECTING (TCP/unix connect, then AUTH
 * when a password is set, then INFO to see that Redis is not still
 * loading its AOF and is new enough, SCRIPT LOADs, and for a subscriber
 * PSUBSCRIBE) -> UP.  Any failure goes back to DOWN and arms the
 * reconnect timer with a doubling backoff.
 *
 * hiredis frees a context itself after its connect callback reports an
 * error and after its disconnect callback; rdb forgets db->ac in both.
 * rdb_close() tears down from a zero-delay timer, never from inside a
 * hiredis callback, then frees db in the timer's close callback.
 *
 * The event glue is ours, not hiredis 0.14's adapters/libuv.h: that one
 * drops poll errors, so a refused connect went unnoticed until the
 * connect timeout.  Here an error wakes hiredis, which reads the socket
 * error and reports it.
 */
#include "core/rdb.h"

#include <errno.h>
#include <hiredis/async.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"

enum rdb_state {
	RDB_DOWN,
	RDB_CONNECTING,
	RDB_UP,
	RDB_CLOSING,
};

struct rdb {
	uv_loop_t *loop;
	struct rdb_opts opts;
	char password[256];
	char name[32];
	char where[300];
	enum rdb_state state;
	redisAsyncContext *ac;
	uv_timer_t timer;          /* connect timeout, reconnect, close */
	uint64_t backoff_ms;
	unsigned failures;         /* connection attempts failed in a row */
	uint64_t down_since;       /* uv_now() when it went down */
	unsigned loading;          /* SCRIPT LOADs not answered yet */
	char last_error[256];
	char pattern[256];         /* a subscriber's PSUBSCRIBE pattern; "" for none */
	rdb_state_cb *state_cb;
	void *state_arg;
	rdb_closed_cb *closed_cb;
	void *closed_arg;
};

struct rdb_req {
	struct rdb *db;
	rdb_reply_cb *cb;
	void *arg;
	struct rdb_script *script; /* NULL for a plain command */
	bool retried;
	int nkeys;
	int nargs;
	const char **args;         /* into blob */
	size_t *lens;
};

/*
 * The event handles of one hiredis context.  Writes are not polled for:
 * hiredis asks to write after every command, and arming EPOLLOUT each
 * time costs two epoll_ctl() calls a command.  Instead the commands of
 * one loop pass are written together from a prepare handle, just before
 * the loop blocks; only a socket that is full is polled for writability.
 * Freed when both handles are closed.
 */
struct rdb_ev {
	redisAsyncContext *ac;
	uv_poll_t poll;
	uv_prepare_t prep;
	int events;            /* what poll is armed for */
	bool want_write;       /* hiredis has output to write */
	bool flushing;         /* inside the prepare callback's write */
	int open_handles;
};

static void rdb_connect(struct rdb *db);
static void rdb_went_down(struct rdb *db, const char *why);

/* --- hiredis event glue --------------------------------------------------- */

static void ev_on_poll(uv_poll_t *h, int status, int events);

static void
ev_arm(struct rdb_ev *ev, int events)
{
	if (events == ev->events)
		return;
	ev->events = events;
	if (events)
		uv_poll_start(&ev->poll, events, ev_on_poll);
	else
		uv_poll_stop(&ev->poll);
}

static void
ev_on_poll(uv_poll_t *h, int status, int events)
{
	struct rdb_ev *ev = h->data;

	if (ev->ac == NULL)
		return;
	if (status < 0) {
		/* hiredis finds the socket error itself and tears down. */
		if (!(ev->ac->c.flags & REDIS_CONNECTED))
			redisAsyncHandleWrite(ev->ac);
		else
			redisAsyncHandleRead(ev->ac);
		return;
	}
	if (events & UV_READABLE)
		redisAsyncHandleRead(ev->ac);
	/* The read may have freed the context. */
	if (ev->ac != NULL && (events & UV_WRITABLE))
		redisAsyncHandleWrite(ev->ac);
}

static void
ev_on_prepare(uv_prepare_t *h)
{
	struct rdb_ev *ev = h->data;

	uv_prepare_stop(&ev->prep);
	if (ev->ac == NULL || !ev->want_write)
		return;
	/* Still connecting: wait for writability, which reports the connect. */
	if (!(ev->ac->c.flags & REDIS_CONNECTED)) {
		ev_arm(ev, ev->events | UV_WRITABLE);
		return;
	}
	ev->flushing = true;
	redisAsyncHandleWrite(ev->ac);
	if (ev->ac != NULL)
		ev->flushing = false;
}

static void
ev_add_read(void *p)
{
	struct rdb_ev *ev = p;

	ev_arm(ev, ev->events | UV_READABLE);
}

static void
ev_del_read(void *p)
{
	struct rdb_ev *ev = p;

	ev_arm(ev, ev->events & ~UV_READABLE);
}

static void
ev_add_write(void *p)
{
	struct rdb_ev *ev = p;

	ev->want_write = true;
	if (ev->flushing) {
		/* The socket took only part: poll until it can take the rest. */
		ev_arm(ev, ev->events | UV_WRITABLE);
		return;
	}
	if (!(ev->events & UV_WRITABLE))
		uv_prepare_start(&ev->prep, ev_on_prepare);
}

static void
ev_del_write(void *p)
{
	struct rdb_ev *ev = p;

	ev->want_write = false;
	ev_arm(ev, ev->events & ~UV_WRITABLE);
}

static void
ev_on_closed(uv_handle_t *h)
{
	struct rdb_ev *ev = h->data;

	if (--ev->open_handles == 0)
		free(ev);
}

static void
ev_cleanup(void *p)
{
	struct rdb_ev *ev = p;

	ev->ac = NULL;
	ev->flushing = false;
	uv_close((uv_handle_t *)&ev->poll, ev_on_closed);
	uv_close((uv_handle_t *)&ev->prep, ev_on_closed);
}

static int
ev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
	struct rdb_ev *ev = xcalloc(1, sizeof *ev);

	if (uv_poll_init(loop, &ev->poll, ac->c.fd) != 0) {
		free(ev);
		return -1;
	}
	uv_prepare_init(loop, &ev->prep);
	ev->open_handles = 2;
	ev->ac = ac;
	ev->poll.data = ev;
	ev->prep.data = ev;
	ac->ev.data = ev;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	return 0;
}

void
rdb_script_init(struct rdb_script *s)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	static const char hex[] = "0123456789abcdef";

	if (!EVP_Digest(s->src, strlen(s->src), md, &n, EVP_sha1(), NULL) || n != 20)
		log_panic("redis", "script_sha1", "script=%s", s->name);
	for (unsigned i = 0; i < 20; i++) {
		s->sha[2 * i] = hex[md[i] >> 4];
		s->sha[2 * i + 1] = hex[md[i] & 15];
	}
	s->sha[40] = '\0';
}

static void
set_error(struct rdb *db, const char *why)
{
	str_copy(db->last_error, why, sizeof db->last_error);
}

static void
enter_state(struct rdb *db, enum rdb_state st)
{
	enum rdb_state old = db->state;

	db->state = st;
	if (st == RDB_UP && old != RDB_UP && db->state_cb)
		db->state_cb(db->state_arg, true);
	else if (old == RDB_UP && st != RDB_UP && db->state_cb)
		db->state_cb(db->state_arg, false);
}

static void
on_timer(uv_timer_t *t)
{
	struct rdb *db = t->data;

	switch (db->state) {
	case RDB_DOWN:
		rdb_connect(db);
		break;
	case RDB_CONNECTING:
		/* The connect or the handshake took too long. */
		if (db->ac != NULL) {
			redisAsyncContext *ac = db->ac;

			db->ac = NULL;
			ac->data = NULL;
			redisAsyncFree(ac);
		}
		rdb_went_down(db, "connect timed out");
		break;
	default:
		break;
	}
}

static void
rdb_went_down(struct rdb *db, const char *why)
{
	char q[300];

	if (db->state == RDB_CLOSING)
		return;
	set_error(db, why);
	if (db->state == RDB_UP) {
		db->down_since = uv_now(db->loop);
		db->failures = 0;
		db->backoff_ms = 0;
		log_error("redis", "redis_down", "client=%s address=%s error=%s hint=\"queued work waits; check that redis-server runs\"",
		    db->name, db->where, log_quotes(q, sizeof q, why));
	}
	enter_state(db, RDB_DOWN);
	db->failures++;
	db->backoff_ms = db->backoff_ms ? db->backoff_ms * 2 : 100;
	if (db->backoff_ms > db->opts.reconnect_max_ms)
		db->backoff_ms = db->opts.reconnect_max_ms;
	/* The first failure and then one in twenty, not one line a retry. */
	if (db->failures == 1 || db->failures % 20 == 0)
		log_warn("redis", "redis_connect_failed", "client=%s address=%s attempt=%u error=%s retry_in_ms=%llu",
		    db->name, db->where, db->failures, log_quotes(q, sizeof q, why),
		    (unsigned long long)db->backoff_ms);
	uv_timer_start(&db->timer, on_timer, db->backoff_ms, 0);
}

/* Find "key:value" in INFO text. */
static bool
info_field(const char *info, const char *key, char *val, size_t valsz)
{
	size_t klen = strlen(key);

	for (const char *p = info; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
			size_t n = strcspn(p + klen + 1, "\r\n");

			str_copyn(val, p + klen + 1, n, valsz);
			return true;
		}
	}
	return false;
}

/*
 * The handshake failed inside a hiredis callback: hiredis frees ac when
 * the callback returns; ac->data = NULL keeps its disconnect callback
 * from reporting the same failure again.
 */
static void
handshake_failed(struct rdb *db, redisAsyncContext *ac, const char *why)
{
	ac->data = NULL;
	db->ac = NULL;
	redisAsyncFree(ac);
	rdb_went_down(db, why);
}

static void
became_up(struct rdb *db)
{
	uv_timer_stop(&db->timer);
	if (db->failures > 0 || db->down_since != 0)
		log_info("redis", "redis_up", "client=%s address=%s down_ms=%llu attempts=%u",
		    db->name, db->where,
		    (unsigned long long)(db->down_since ? uv_now(db->loop) - db->down_since : 0),
		    db->failures);
	else
		log_info("redis", "redis_up", "client=%s address=%s", db->name, db->where);
	db->failures = 0;
	db->backoff_ms = 0;
	db->down_since = 0;
	db->last_error[0] = '\0';
	enter_state(db, RDB_UP);
}

/* A subscriber's confirmation, then its messages; NULL when ac goes away. */
static void
on_pmessage(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rdb *db = privdata;
	redisReply *reply = r;
	const char *kind;
	size_t kind_len;

	if (reply == NULL || db->state == RDB_CLOSING)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		char why[300];

		if (db->state != RDB_CONNECTING)
			return;
		snprintf(why, sizeof why, "PSUBSCRIBE: %s", reply->str);
		handshake_failed(db, ac, why);
		return;
	}
	if (!rdb_reply_array(reply, 3) || !rdb_reply_str(reply->element[0], &kind, &kind_len))
		return;
	if (kind_len == 10 && memcmp(kind, "psubscribe", 10) == 0) {
		if (db->state == RDB_CONNECTING)
			became_up(db);
		return;
	}
	if (kind_len == 8 && memcmp(kind, "pmessage", 8) == 0 && reply->elements == 4 &&
	    reply->element[2]->type == REDIS_REPLY_STRING &&
	    reply->element[3]->type == REDIS_REPLY_STRING && db->opts.on_message != NULL)
		db->opts.on_message(db->opts.message_arg, reply->element[2]->str,
		    reply->element[2]->len, reply->element[3]->str, reply->element[3]->len);
}

/* The handshake's last step: up now, or once a subscriber's PSUBSCRIBE is confirmed. */
static void
handshake_done(struct rdb *db, redisAsyncContext *ac)
{
	if (db->pattern[0] != '\0') {
		redisAsyncCommand(ac, on_pmessage, db, "PSUBSCRIBE %s", db->pattern);
		return;
	}
	became_up(db);
}

static void
on_script_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rdb *db = privdata;
	redisReply *reply = r;

	if (db->state != RDB_CONNECTING || reply == NULL)
		return;
	if (reply->type != REDIS_REPLY_STRING) {
		char why[300];

		snprintf(why, sizeof why, "SCRIPT LOAD: %s",
		    reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
		db->loading = 0;
		handshake_failed(db, ac, why);
		return;
	}
	if (--db->loading == 0)
		handshake_done(db, ac);
}

static void
on_info(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rdb *db = privdata;
	redisReply *reply = r;
	char v[64];
	int major = 0, minor = 0;

	(void)ac;
	if (db->state != RDB_CONNECTING || reply == NULL)
		return;
	if (reply->type != REDIS_REPLY_STRING) {
		char why[300];

		if (db->last_error[0] != '\0')
			str_copy(why, db->last_error, sizeof why);
		else
			snprintf(why, sizeof why, "INFO: %s",
			    reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
		handshake_failed(db, ac, why);
		return;
	}
	if (info_field(reply->str, "loading", v, sizeof v) && strcmp(v, "1") == 0) {
		handshake_failed(db, ac, "redis is loading its data set");
		return;
	}
	if (info_field(reply->str, "redis_version", v, sizeof v) &&
	    (sscanf(v, "%d.%d", &major, &minor) != 2 || major < 6 || (major == 6 && minor < 2))) {
		char why[128];

		snprintf(why, sizeof why, "redis %s is too old: kurier needs 6.2 or newer", v);
		handshake_failed(db, ac, why);
		return;
	}
	if (db->opts.scripts != NULL && db->opts.scripts[0] != NULL) {
		for (size_t i = 0; db->opts.scripts[i] != NULL; i++) {
			const char *src = db->opts.scripts[i]->src;

			redisAsyncCommand(ac, on_script_loaded, db, "SCRIPT LOAD %b", src, strlen(src));
			db->loading++;
		}
		return;
	}
	handshake_done(db, ac);
}

static void
on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rdb *db = privdata;
	redisReply *reply = r;
	char why[300];

	(void)ac;
	if (db->state != RDB_CONNECTING || reply == NULL)
		return;
	if (reply->type != REDIS_REPLY_ERROR)
		return;
	if (strstr(reply->str, "without any password") != NULL ||
	    strstr(reply->str, "no password is set") != NULL) {
		/* Redis asks for none: the connection works without it. */
		log_warn("redis", "redis_auth_unneeded", "client=%s address=%s hint=\"Redis has no password: remove [redis] password, or set requirepass in redis.conf\"",
		    db->name, db->where);
		return;
	}
	snprintf(why, sizeof why, "AUTH refused (%s): check [redis] password", reply->str);
	/* INFO is queued behind AUTH and fails with NOAUTH: that tears down. */
	set_error(db, why);
	log_error("redis", "redis_auth_failed", "client=%s address=%s hint=\"check [redis] password\"",
	    db->name, db->where);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct rdb *db = ac->data;

	if (db == NULL)
		return;
	if (status != REDIS_OK) {
		char why[200];

		str_copy(why, ac->errstr[0] ? ac->errstr : "connect failed", sizeof why);
		/* hiredis frees ac after this callback. */
		db->ac = NULL;
		rdb_went_down(db, why);
	}
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rdb *db = ac->data;
	char why[200];

	if (db == NULL)
		return;
	db->ac = NULL;
	if (db->state == RDB_CLOSING)
		return;
	if (db->last_error[0] != '\0' && db->state == RDB_CONNECTING)
		str_copy(why, db->last_error, sizeof why);
	else
		str_copy(why, status == REDIS_OK ? "connection closed" :
		    ac->errstr[0] ? ac->errstr : "connection lost", sizeof why);
	rdb_went_down(db, why);
}

static void
rdb_connect(struct rdb *db)
{
	redisAsyncContext *ac;
	char why[200];

	if (db->opts.address.unix_path[0] != '\0')
		ac = redisAsyncConnectUnix(db->opts.address.unix_path);
	else
		ac = redisAsyncConnect(db->opts.address.host, db->opts.address.port);
	if (ac == NULL) {
		enter_state(db, RDB_CONNECTING);
		rdb_went_down(db, "out of memory");
		return;
	}
	if (ac->err) {
		str_copy(why, ac->errstr, sizeof why);
		redisAsyncFree(ac);
		enter_state(db, RDB_CONNECTING);
		rdb_went_down(db, why);
		return;
	}
	ac->data = db;
	if (ev_attach(ac, db->loop) != 0) {
		redisAsyncFree(ac);
		enter_state(db, RDB_CONNECTING);
		rdb_went_down(db, "cannot attach to the event loop");
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	db->ac = ac;
	db->last_error[0] = '\0';
	enter_state(db, RDB_CONNECTING);
	/* Sent as soon as the socket connects, in this order. */
	if (db->password[0] != '\0')
		redisAsyncCommand(ac, on_auth, db, "AUTH %s", db->password);
	redisAsyncCommand(ac, on_info, db, "INFO");
	uv_timer_start(&db->timer, on_timer, db->opts.connect_timeout_ms, 0);
}

void
rdb_opts_from_config(struct rdb_opts *o, const struct config *cfg,
    const char *name, struct rdb_script *const *scripts)
{
	memset(o, 0, sizeof *o);
	o->address = cfg->redis.address;
	o->password = cfg->redis.password;
	o->connect_timeout_ms = cfg->redis.connect_timeout_ms;
	o->reconnect_max_ms = cfg->redis.reconnect_max_ms;
	o->name = name;
	o->scripts = scripts;
}

int
rdb_open(struct rdb **out, uv_loop_t *loop, const struct rdb_opts *opts,
    rdb_state_cb *state_cb, void *state_arg)
{
	struct rdb *db = xcalloc(1, sizeof *db);

	db->loop = loop;
	db->opts = *opts;
	if (opts->password != NULL)
		str_copy(db->password, opts->password, sizeof db->password);
	db->opts.password = NULL;
	str_copy(db->name, opts->name ? opts->name : "kurier", sizeof db->name);
	db->opts.name = NULL;
	if (opts->psubscribe != NULL)
		str_copy(db->pattern, opts->psubscribe, sizeof db->pattern);
	db->opts.psubscribe = NULL;
	config_endpoint_str(&opts->address, db->where, sizeof db->where);
	db->state_cb = state_cb;
	db->state_arg = state_arg;
	uv_timer_init(loop, &db->timer);
	db->timer.data = db;
	db->state = RDB_DOWN;
	rdb_connect(db);
	*out = db;
	return 0;
}

static void
on_timer_closed(uv_handle_t *h)
{
	struct rdb *db = h->data;
	rdb_closed_cb *cb = db->closed_cb;
	void *arg = db->closed_arg;

	explicit_bzero(db->password, sizeof db->password);
	free(db);
	if (cb != NULL)
		cb(arg);
}

static void
on_close_timer(uv_timer_t *t)
{
	struct rdb *db = t->data;

	if (db->ac != NULL) {
		redisAsyncContext *ac = db->ac;

		/* Pending callbacks run now with -ECANCELED. */
		redisAsyncFree(ac);
		db->ac = NULL;
	}
	uv_close((uv_handle_t *)&db->timer, on_timer_closed);
}

void
rdb_close(struct rdb *db, rdb_closed_cb *closed, void *arg)
{
	db->closed_cb = closed;
	db->closed_arg = arg;
	enter_state(db, RDB_CLOSING);
	uv_timer_stop(&db->timer);
	uv_timer_start(&db->timer, on_close_timer, 0, 0);
}

bool
rdb_is_up(const struct rdb *db)
{
	return db->state == RDB_UP;
}

const char *
rdb_last_error(const struct rdb *db)
{
	return db->last_error;
}

static int send_req(struct rdb_req *req);

static void
on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rdb_req *req = privdata;
	struct rdb *db = req->db;
	redisReply *reply = r;
	int status = 0;

	(void)ac;
	if (reply == NULL) {
		status = db->state == RDB_CLOSING ? -ECANCELED : -ECONNRESET;
	} else if (reply->type == REDIS_REPLY_ERROR) {
		if (req->script != NULL && !req->retried &&
		    strncmp(reply->str, "NOSCRIPT", 8) == 0) {
			req->retried = true;
			if (send_req(req) == 0)
				return;
		}
		status = -EIO;
	}
	req->cb(req->arg, status, reply);
	free(req);
}

/* Send a script request: EVALSHA first, EVAL with the source on retry. */
static int
send_req(struct rdb_req *req)
{
	struct rdb *db = req->db;
	int argc = req->nargs + 3;
	const char **argv = xcalloc((size_t)argc, sizeof *argv);
	size_t *lens = xcalloc((size_t)argc, sizeof *lens);
	char nk[16];
	int rc;

	snprintf(nk, sizeof nk, "%d", req->nkeys);
	if (req->retried) {
		argv[0] = "EVAL";
		argv[1] = req->script->src;
	} else {
		argv[0] = "EVALSHA";
		argv[1] = req->script->sha;
	}
	argv[2] = nk;
	for (int i = 0; i < 3; i++)
		lens[i] = strlen(argv[i]);
	memcpy(argv + 3, req->args, (size_t)req->nargs * sizeof *argv);
	memcpy(lens + 3, req->lens, (size_t)req->nargs * sizeof *lens);
	rc = db->ac ? redisAsyncCommandArgv(db->ac, on_reply, req, argc, argv, lens) : REDIS_ERR;
	free(argv);
	free(lens);
	return rc == REDIS_OK ? 0 : -ENOTCONN;
}

int
rdb_cmd(struct rdb *db, rdb_reply_cb *cb, void *arg, int argc,
    const char **argv, const size_t *argvlen)
{
	struct rdb_req *req;

	if (db->pattern[0] != '\0')
		return -EINVAL;
	if (db->state != RDB_UP || db->ac == NULL)
		return -ENOTCONN;
	req = xcalloc(1, sizeof *req);
	req->db = db;
	req->cb = cb;
	req->arg = arg;
	if (redisAsyncCommandArgv(db->ac, on_reply, req, argc, argv, argvlen) != REDIS_OK) {
		free(req);
		return -ENOTCONN;
	}
	return 0;
}

int
rdb_cmdf(struct rdb *db, rdb_reply_cb *cb, void *arg, const char *fmt, ...)
{
	struct rdb_req *req;
	va_list ap;
	int rc;

	if (db->pattern[0] != '\0')
		return -EINVAL;
	if (db->state != RDB_UP || db->ac == NULL)
		return -ENOTCONN;
	req = xcalloc(1, sizeof *req);
	req->db = db;
	req->cb = cb;
	req->arg = arg;
	va_start(ap, fmt);
	rc = redisvAsyncCommand(db->ac, on_reply, req, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK) {
		free(req);
		return -ENOTCONN;
	}
	return 0;
}

int
rdb_eval(struct rdb *db, struct rdb_script *s, rdb_reply_cb *cb, void *arg,
    int nkeys, int nargs, const char **args, const size_t *arglens)
{
	struct rdb_req *req;
	size_t total = 0;
	char *p;
	int rc;

	if (db->pattern[0] != '\0')
		return -EINVAL;
	if (db->state != RDB_UP || db->ac == NULL)
		return -ENOTCONN;
	for (int i = 0; i < nargs; i++)
		total += arglens[i] + 1;
	/* One block: the request, the argument table, the lengths, the bytes. */
	req = xcalloc(1, sizeof *req + (size_t)nargs * (sizeof(char *) + sizeof(size_t)) + total);
	req->db = db;
	req->cb = cb;
	req->arg = arg;
	req->script = s;
	req->nkeys = nkeys;
	req->nargs = nargs;
	req->args = (const char **)(void *)(req + 1);
	req->lens = (size_t *)(void *)(req->args + nargs);
	p = (char *)(req->lens + nargs);
	for (int i = 0; i < nargs; i++) {
		memcpy(p, args[i], arglens[i]);
		p[arglens[i]] = '\0';
		req->args[i] = p;
		req->lens[i] = arglens[i];
		p += arglens[i] + 1;
	}
	rc = send_req(req);
	if (rc < 0)
		free(req);
	return rc;
}

/* --- shared by the modules that own a connection ------------------------------ */

int
rdb_open_config(struct rdb **out, uv_loop_t *loop, const struct config *cfg,
    const char *name, struct rdb_script *const *scripts, rdb_state_cb *state_cb,
    void *state_arg)
{
	struct rdb_opts o;

	for (size_t i = 0; scripts != NULL && scripts[i] != NULL; i++)
		if (scripts[i]->sha[0] == '\0')
			rdb_script_init(scripts[i]);
	rdb_opts_from_config(&o, cfg, name, scripts);
	return rdb_open(out, loop, &o, state_cb, state_arg);
}

void
rdb_log_error(const char *component, const char *op, int status,
    const redisReply *r)
{
	char q[300];

	if (status == -EIO && r != NULL && r->type == REDIS_REPLY_ERROR)
		log_error(component, "redis_error", "op=%s error=%s", op,
		    log_quote(q, sizeof q, r->str, r->len));
}

int
rdb_reply_status(int status, const redisReply *r)
{
	if (status == -EIO && r != NULL && r->type == REDIS_REPLY_ERROR) {
		if (strncmp(r->str, "ESTALE", 6) == 0)
			return -ESTALE;
		if (strncmp(r->str, "EEXIST", 6) == 0)
			return -EEXIST;
	}
	return status;
}

int64_t
rdb_reply_int(const redisReply *r)
{
	uint64_t v;

	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer;
	if (r->type == REDIS_REPLY_STRING && str_to_u64n(r->str, r->len, &v) == 0)
		return (int64_t)v;
	return -1;
}

bool
rdb_reply_u64(const redisReply *r, uint64_t *v)
{
	char tmp[32];
	char *end;
	double d;

	if (r == NULL)
		return false;
	if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
		*v = (uint64_t)r->integer;
		return true;
	}
	if (r->type != REDIS_REPLY_STRING)
		return false;
	if (str_to_u64n(r->str, r->len, v) == 0)
		return true;
	/* ZSCORE returns a float string; scores are whole ms. */
	if (r->len == 0 || r->len >= sizeof tmp)
		return false;
	memcpy(tmp, r->str, r->len);
	tmp[r->len] = '\0';
	d = strtod(tmp, &end);
	/* 2^64 and up (inf too) do not convert; NaN fails both tests. */
	if (*end != '\0' || !(d >= 0 && d < 18446744073709551616.0))
		return false;
	*v = (uint64_t)d;
	return true;
}

bool
rdb_reply_str(const redisReply *r, const char **p, size_t *len)
{
	if (r == NULL || r->type != REDIS_REPLY_STRING)
		return false;
	*p = r->str;
	*len = r->len;
	return true;
}

bool
rdb_reply_array(const redisReply *r, size_t min)
{
	return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= min;
}
