/*
 * auth - users in Redis and password verification.  See auth.h for the
 * contract and the key layout.
 *
 * Every call is one struct auth_req on a's list of pending requests.  A
 * verify goes HMGET (loop) -> crypt(3) (thread pool) -> callback (loop);
 * an add or passwd goes hash (thread pool) -> script (loop) -> callback;
 * a get is one HMGET; del, set, set_policy and list are one script each.  The list lets auth_cancel()
 * find a verify by id and auth_close() cancel hashes not yet started; a
 * is freed only once the Redis connection is closed and the list is
 * empty, since a hash running on the pool cannot be stopped.
 *
 * Writes are Lua scripts so that "create unless present" and "change
 * only if present" are atomic.  They name the user's key and the users
 * set as KEYS; the list script also reads user keys built from the
 * prefix, as the queue's scripts do.
 */
#include "policy/auth.h"

#include <crypt.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/rdb.h"
#include "core/str.h"
#include "core/xmalloc.h"

#define KEY_MAX (sizeof ((struct config *)0)->redis.prefix + 8 + AUTH_NAME_MAX)
#define DOMAIN_MAX 253

static const char lua_add[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'hash', ARGV[2], 'domains', ARGV[3],\n"
    "    'enabled', '1', 'created', ARGV[4], 'changed', ARGV[4])\n"
    "redis.call('SADD', KEYS[2], ARGV[1])\n"
    "return 1\n";
static const char lua_passwd[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'hash', ARGV[1], 'changed', ARGV[2])\n"
    "return 1\n";
static const char lua_del[] =
    "local n = redis.call('DEL', KEYS[1])\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "return n\n";
static const char lua_set[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'domains', ARGV[3]) end\n"
    "if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'enabled', ARGV[4]) end\n"
    "redis.call('HSET', KEYS[1], 'changed', ARGV[1])\n"
    "return 1\n";
/* ARGV: now, then field/value pairs; an empty value removes the field. */
static const char lua_set_policy[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "for i = 2, #ARGV - 1, 2 do\n"
    "  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i])\n"
    "  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'changed', ARGV[1])\n"
    "return 1\n";
/* Per user: its name, then the USER_FIELDS in order (false for absent ones). */
static const char lua_list[] =
    "local names = redis.call('SMEMBERS', KEYS[1])\n"
    "table.sort(names)\n"
    "local out = {}\n"
    "for _, n in ipairs(names) do\n"
    "  local k = ARGV[1] .. n\n"
    "  if redis.call('EXISTS', k) == 1 then\n"
    "    local v = redis.call('HMGET', k, 'enabled', 'domains', 'rate',\n"
    "        'rcpt_rate', 'rcpt_domains', 'created', 'changed')\n"
    "    out[#out + 1] = n\n"
    "    for i = 1, 7 do out[#out + 1] = v[i] end\n"
    "  end\n"
    "end\n"
    "return out\n";

/*
 * The fields of a user other than its hash, in the order HMGET and the
 * list script return them (fill_user() reads them so).
 */
static const char *const user_fields[] = {
	"enabled", "domains", "rate", "rcpt_rate", "rcpt_domains", "created",
	"changed",
};
#define USER_FIELDS (sizeof user_fields / sizeof user_fields[0])

static struct rdb_script s_add = { "user_add", lua_add, "" };
static struct rdb_script s_passwd = { "user_passwd", lua_passwd, "" };
static struct rdb_script s_del = { "user_del", lua_del, "" };
static struct rdb_script s_set = { "user_set", lua_set, "" };
static struct rdb_script s_set_policy = { "user_set_policy", lua_set_policy, "" };
static struct rdb_script s_list = { "user_list", lua_list, "" };

static struct rdb_script *const scripts[] = {
	&s_add, &s_passwd, &s_del, &s_set, &s_set_policy, &s_list,
	NULL,
};

enum req_kind {
	REQ_VERIFY,
	REQ_ADD,
	REQ_PASSWD,
	REQ_DEL,
	REQ_SET,
	REQ_SET_POLICY,
	REQ_GET,
	REQ_LIST,
};

/* Which policy fields a set_policy request changes (auth_req.changes). */
enum {
	CHANGE_RATE = 1 << 0,
	CHANGE_RCPT_RATE = 1 << 1,
	CHANGE_RCPT_DOMAINS = 1 << 2,
};

struct auth_req {
	struct auth *a;
	struct auth_req *prev, *next;  /* a->reqs */
	enum req_kind kind;
	auth_req_id id;
	uv_work_t work;
	bool in_work;          /* queued on the thread pool, after_work pending */
	bool cancelled;        /* auth_cancel(): drop silently */
	bool known;            /* verify: an enabled user with a usable hash */
	bool bad_password;     /* verify: too long or a NUL byte; never matches */
	int result;            /* set by the worker */
	union {
		auth_verify_cb *verify;
		auth_status_cb *status;
		auth_list_cb *list;
	} cb;
	void *arg;
	struct auth_user user;
	char hash[AUTH_HASH_MAX];  /* verify: stored or dummy; add/passwd: new */
	char password[AUTH_PASSWORD_MAX + 1];
	size_t pwlen;
	bool set_domains;
	enum auth_enable enable;
	unsigned changes;      /* set_policy: CHANGE_* */
	bool any_state;        /* get: a disabled user is an answer too */
};

struct auth {
	uv_loop_t *loop;
	struct rdb *db;
	char prefix[sizeof ((struct config *)0)->redis.prefix];
	char dummy[AUTH_HASH_MAX]; /* a setting of the scheme and default cost */
	struct auth_req *reqs;
	auth_req_id next_id;
	void (*state_cb)(void *arg, bool up);
	void *state_arg;
	auth_closed_cb *closed_cb;
	void *closed_arg;
	bool closing;
	bool db_closed;
	struct auth_hash_stats hashed; /* auth_hash_stats() */
};

static void maybe_free(struct auth *a);

/* --- helpers ------------------------------------------------------------------ */

static uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Compare a[0..n) with b[0..n) in time independent of where they differ. */
static bool
ct_equal(const char *a, const char *b, size_t n)
{
	volatile unsigned char d = 0;

	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

static void
user_key(const struct auth *a, const char *name, char *dst, size_t size)
{
	snprintf(dst, size, "%suser:%s", a->prefix, name);
}

static void
users_key(const struct auth *a, char *dst, size_t size)
{
	snprintf(dst, size, "%susers", a->prefix);
}

static void
log_redis_error(const char *what, int status, const redisReply *r)
{
	char q[300];

	if (status == -EIO && r != NULL && r->type == REDIS_REPLY_ERROR)
		log_error("auth", "redis_error", "op=%s error=%s", what,
		    log_quote(q, sizeof q, r->str, r->len));
}

/* Copy a stored domain list, cutting at a space so no domain is shortened. */
static void
copy_domains(char *dst, size_t size, const char *src, size_t len)
{
	if (len < size) {
		str_copyn(dst, src, len, size);
		return;
	}
	len = size - 1;
	while (len > 0 && src[len] != ' ')
		len--;
	str_copyn(dst, src, len, size);
}

/* A stored rate text; one too long for the field is not cut (cut, it could still parse). */
static void
copy_rate(const char *user, const char *field, char *dst, size_t size,
    const redisReply *v)
{
	char q[160];

	dst[0] = '\0';
	if (v->type != REDIS_REPLY_STRING)
		return;
	if (v->len >= size || memchr(v->str, '\0', v->len) != NULL) {
		log_warn("auth", "stored_rate_unusable", "user=%s field=%s value=%s hint=\"set it again: kurierctl user set %s\"",
		    user, field, log_quote(q, sizeof q, v->str, v->len), user);
		return;
	}
	str_copyn(dst, v->str, v->len, size);
}

static uint64_t
reply_u64(const redisReply *v)
{
	uint64_t n = 0;

	if (v->type == REDIS_REPLY_STRING && str_to_u64n(v->str, v->len, &n) == 0)
		return n;
	return 0;
}

/*
 * fill_user - u (whose name is set) from the USER_FIELDS values v[0..),
 * as HMGET returns them.  Whether any field was present.
 */
static bool
fill_user(struct auth_user *u, redisReply *const *v)
{
	const redisReply *e = v[0], *d = v[1], *rd = v[4];
	bool any = false;

	for (size_t i = 0; i < USER_FIELDS; i++)
		if (v[i]->type == REDIS_REPLY_STRING)
			any = true;
	u->enabled = e->type == REDIS_REPLY_STRING && e->len == 1 && e->str[0] == '1';
	u->domains[0] = '\0';
	if (d->type == REDIS_REPLY_STRING)
		copy_domains(u->domains, sizeof u->domains, d->str, d->len);
	copy_rate(u->name, "rate", u->rate, sizeof u->rate, v[2]);
	copy_rate(u->name, "rcpt_rate", u->rcpt_rate, sizeof u->rcpt_rate, v[3]);
	u->rcpt_domains[0] = '\0';
	if (rd->type == REDIS_REPLY_STRING)
		copy_domains(u->rcpt_domains, sizeof u->rcpt_domains, rd->str, rd->len);
	u->created_ms = reply_u64(v[5]);
	u->changed_ms = reply_u64(v[6]);
	return any;
}

/* --- requests ------------------------------------------------------------------ */

static struct auth_req *
req_new(struct auth *a, enum req_kind kind)
{
	struct auth_req *req = xcalloc(1, sizeof *req);

	req->a = a;
	req->kind = kind;
	req->id = ++a->next_id;
	req->work.data = req;
	req->next = a->reqs;
	if (a->reqs != NULL)
		a->reqs->prev = req;
	a->reqs = req;
	return req;
}

static void
req_free(struct auth_req *req)
{
	struct auth *a = req->a;

	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		a->reqs = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	explicit_bzero(req->password, sizeof req->password);
	free(req);
	maybe_free(a);
}

/* End a status request: its callback (unless cancelled), then free. */
static void
req_done(struct auth_req *req, int status)
{
	if (!req->cancelled)
		req->cb.status(req->arg, status);
	req_free(req);
}

/* Whether the space-separated list holds d[0..n), ignoring case. */
static bool
list_has(const char *list, const char *d, size_t n)
{
	const char *p = list;

	while (*p != '\0') {
		size_t len;

		while (*p == ' ')
			p++;
		len = strcspn(p, " ");
		if (len == n && n > 0 && strncasecmp(p, d, n) == 0)
			return true;
		p += len;
	}
	return false;
}

/* --- lifecycle ------------------------------------------------------------------ */

static void
on_state(void *arg, bool up)
{
	struct auth *a = arg;

	if (a->state_cb != NULL)
		a->state_cb(a->state_arg, up);
}

int
auth_open(struct auth **out, uv_loop_t *loop, const struct config *cfg,
    const char *name)
{
	struct auth *a;
	struct rdb_opts o;
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	/* The dummy hash: the scheme and cost new passwords get. */
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting) == NULL &&
	    crypt_gensalt_rn("$6$", 0, NULL, 0, setting, sizeof setting) == NULL) {
		int e = errno ? errno : EINVAL;

		log_error("auth", "no_hash_scheme", "error=\"%s\" hint=\"libcrypt offers neither yescrypt nor SHA-512-crypt\"",
		    strerror(e));
		return -e;
	}
	for (size_t i = 0; scripts[i] != NULL; i++)
		if (scripts[i]->sha[0] == '\0')
			rdb_script_init(scripts[i]);
	a = xcalloc(1, sizeof *a);
	a->loop = loop;
	str_copy(a->prefix, cfg->redis.prefix, sizeof a->prefix);
	str_copy(a->dummy, setting, sizeof a->dummy);
	*out = a;
	rdb_opts_from_config(&o, cfg, name, scripts);
	return rdb_open(&a->db, loop, &o, on_state, a);
}

static void
maybe_free(struct auth *a)
{
	auth_closed_cb *cb = a->closed_cb;
	void *arg = a->closed_arg;

	if (!a->closing || !a->db_closed || a->reqs != NULL)
		return;
	free(a);
	if (cb != NULL)
		cb(arg);
}

static void
on_rdb_closed(void *arg)
{
	struct auth *a = arg;

	a->db_closed = true;
	maybe_free(a);
}

void
auth_close(struct auth *a, auth_closed_cb *closed, void *arg)
{
	a->closed_cb = closed;
	a->closed_arg = arg;
	a->state_cb = NULL;
	a->closing = true;
	/* Hashes not started are dropped; their after_work sees UV_ECANCELED. */
	for (struct auth_req *req = a->reqs; req != NULL; req = req->next)
		if (req->in_work)
			uv_cancel((uv_req_t *)&req->work);
	/* Requests waiting on Redis get -ECANCELED from rdb. */
	rdb_close(a->db, on_rdb_closed, a);
}

bool
auth_is_up(const struct auth *a)
{
	return rdb_is_up(a->db);
}

const char *
auth_last_error(const struct auth *a)
{
	return rdb_last_error(a->db);
}

void
auth_on_state(struct auth *a, void (*cb)(void *arg, bool up), void *arg)
{
	a->state_cb = cb;
	a->state_arg = arg;
}

/* --- hashing ------------------------------------------------------------------- */

int
auth_hash_password(const char *password, size_t pwlen, char *out, size_t outsz)
{
	char pw[AUTH_PASSWORD_MAX + 1];
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *h;
	int rc = 0;

	if (pwlen > AUTH_PASSWORD_MAX || memchr(password, '\0', pwlen) != NULL)
		return -EINVAL;
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting) == NULL &&
	    crypt_gensalt_rn("$6$", 0, NULL, 0, setting, sizeof setting) == NULL)
		return errno ? -errno : -EINVAL;
	memcpy(pw, password, pwlen);
	pw[pwlen] = '\0';
	cd = xcalloc(1, sizeof *cd);
	errno = 0;
	h = crypt_rn(pw, setting, cd, (int)sizeof *cd);
	if (h == NULL || h[0] == '*')
		rc = errno ? -errno : -EINVAL;
	else if (str_copy(out, h, outsz) < 0)
		rc = -ERANGE;
	explicit_bzero(pw, sizeof pw);
	explicit_bzero(cd, sizeof *cd);
	free(cd);
	return rc;
}

/* --- verify --------------------------------------------------------------------- */

/* On the thread pool: hash, wipe, compare.  Touches req only. */
static void
verify_work(uv_work_t *w)
{
	struct auth_req *req = w->data;
	struct crypt_data *cd = xcalloc(1, sizeof *cd);
	char got[AUTH_HASH_MAX];
	const char *h;
	int e;

	memset(got, 0, sizeof got);
	errno = 0;
	h = crypt_rn(req->password, req->hash, cd, (int)sizeof *cd);
	e = errno;
	if (h != NULL)
		str_copy(got, h, sizeof got);
	explicit_bzero(req->password, sizeof req->password);
	explicit_bzero(cd, sizeof *cd);
	free(cd);
	if (!req->known)
		req->result = -EACCES;
	else if (h == NULL || got[0] == '*')
		req->result = e ? -e : -EINVAL;
	else
		req->result = ct_equal(got, req->hash, sizeof got) ? 0 : -EACCES;
	explicit_bzero(got, sizeof got);
}

static void
verify_done(uv_work_t *w, int status)
{
	struct auth_req *req = w->data;
	int rc = req->result;

	req->in_work = false;
	if (status != UV_ECANCELED) {
		req->a->hashed.hashes++;
		auth_hash_cost(req->hash, req->a->hashed.cost, sizeof req->a->hashed.cost);
	}
	if (status == UV_ECANCELED || req->a->closing)
		rc = -ECANCELED;
	if (rc != 0 && rc != -EACCES && rc != -ECANCELED) {
		/* crypt(3) refused a stored hash it had accepted as a setting. */
		log_error("auth", "hash_failed", "user=%s error=\"%s\"", req->user.name,
		    strerror(-rc));
		rc = -EIO;
	}
	if (!req->cancelled)
		req->cb.verify(req->arg, rc, rc == 0 ? &req->user : NULL);
	req_free(req);
}

/* Hand the hash to the pool; -EIO if libuv refuses (req is then the caller's). */
static int
verify_hash(struct auth_req *req)
{
	int rc;

	if (!req->known) {
		/* The same cost as a real check: a dummy of the same scheme. */
		str_copy(req->hash, req->a->dummy, sizeof req->hash);
	}
	rc = uv_queue_work(req->a->loop, &req->work, verify_work, verify_done);
	if (rc < 0) {
		log_error("auth", "queue_work_failed", "error=\"%s\"", uv_strerror(rc));
		return -EIO;
	}
	req->in_work = true;
	return 0;
}

static void
on_user_fetched(void *arg, int status, redisReply *r)
{
	struct auth_req *req = arg;
	const redisReply *h;

	if (req->cancelled) {
		req_free(req);
		return;
	}
	if (status == 0 && (r->type != REDIS_REPLY_ARRAY ||
	    r->elements != 1 + USER_FIELDS))
		status = -EIO;
	if (status < 0) {
		log_redis_error("verify", status, r);
		req->cb.verify(req->arg, status, NULL);
		req_free(req);
		return;
	}
	h = r->element[0];
	if (h->type == REDIS_REPLY_STRING) {
		bool usable = h->len < sizeof req->hash &&
		    memchr(h->str, '\0', h->len) == NULL;
		int cs;

		if (usable) {
			str_copyn(req->hash, h->str, h->len, sizeof req->hash);
			cs = crypt_checksalt(req->hash);
			usable = cs == CRYPT_SALT_OK || cs == CRYPT_SALT_METHOD_LEGACY;
		}
		if (!usable) {
			memset(req->hash, 0, sizeof req->hash);
			log_warn("auth", "unusable_hash", "user=%s hint=\"set a new password: kurierctl user passwd %s\"",
			    req->user.name, req->user.name);
		}
		fill_user(&req->user, r->element + 1);
		req->known = usable && req->user.enabled && !req->bad_password;
	}
	if (verify_hash(req) < 0) {
		if (!req->cancelled)
			req->cb.verify(req->arg, -EIO, NULL);
		req_free(req);
	}
}

int
auth_verify(struct auth *a, const char *user, const char *password,
    size_t pwlen, auth_verify_cb *cb, void *arg, auth_req_id *id)
{
	struct auth_req *req;
	char key[KEY_MAX];
	const char *argv[3 + USER_FIELDS];
	size_t lens[3 + USER_FIELDS];
	int rc, n = 0;

	if (a->closing || !rdb_is_up(a->db))
		return -ENOTCONN;
	req = req_new(a, REQ_VERIFY);
	req->cb.verify = cb;
	req->arg = arg;
	req->bad_password = pwlen > AUTH_PASSWORD_MAX ||
	    memchr(password, '\0', pwlen) != NULL;
	if (!req->bad_password) {
		memcpy(req->password, password, pwlen);
		req->pwlen = pwlen;
	}
	if (!auth_name_valid(user)) {
		/* Cannot exist: no fetch, but the same hash. */
		if ((rc = verify_hash(req)) < 0) {
			req->cancelled = true;
			req_free(req);
			return rc;
		}
		if (id != NULL)
			*id = req->id;
		return 0;
	}
	str_copy(req->user.name, user, sizeof req->user.name);
	user_key(a, user, key, sizeof key);
	argv[n++] = "HMGET";
	argv[n++] = key;
	argv[n++] = "hash";
	for (size_t i = 0; i < USER_FIELDS; i++)
		argv[n++] = user_fields[i];
	for (int i = 0; i < n; i++)
		lens[i] = strlen(argv[i]);
	if ((rc = rdb_cmd(a->db, on_user_fetched, req, n, argv, lens)) < 0) {
		req->cancelled = true;
		req_free(req);
		return rc;
	}
	if (id != NULL)
		*id = req->id;
	return 0;
}

void
auth_hash_stats(const struct auth *a, struct auth_hash_stats *out)
{
	*out = a->hashed;
}

void
auth_hash_cost(const char *s, char *out, size_t outsz)
{
	static const char *const costed[] = { "y", "gy", "7", "2a", "2b", "2y", NULL };
	const char *id, *end, *next;
	bool cost = false;
	size_t n;

	out[0] = '\0';
	if (s[0] != '$' || (end = strchr(s + 1, '$')) == NULL)
		return;
	id = s + 1;
	next = end + 1;
	for (size_t i = 0; costed[i] != NULL; i++)
		if (strlen(costed[i]) == (size_t)(end - id) &&
		    memcmp(costed[i], id, (size_t)(end - id)) == 0)
			cost = true;
	if (strncmp(next, "rounds=", 7) == 0)
		cost = true;
	if (cost) {
		if ((end = strchr(next, '$')) == NULL)
			return;
	}
	n = (size_t)(end - s) + 1;
	if (n >= outsz)
		return;
	memcpy(out, s, n);
	out[n] = '\0';
}

void
auth_cancel(struct auth *a, auth_req_id id)
{
	for (struct auth_req *req = a->reqs; req != NULL; req = req->next) {
		if (req->id != id || req->kind != REQ_VERIFY)
			continue;
		req->cancelled = true;
		/* Not started yet: dropped, after_work sees UV_ECANCELED. */
		if (req->in_work)
			uv_cancel((uv_req_t *)&req->work);
		return;
	}
}

bool
auth_user_may_send_as(const struct auth_user *u, const char *domain)
{
	size_t dlen = strlen(domain);

	if (dlen > 0 && domain[dlen - 1] == '.')
		dlen--;
	return list_has(u->domains, domain, dlen);
}

static void
on_user_got(void *arg, int status, redisReply *r)
{
	struct auth_req *req = arg;
	bool found = false;

	if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != USER_FIELDS))
		status = -EIO;
	if (status == 0)
		found = fill_user(&req->user, r->element);
	else
		log_redis_error("user_get", status, r);
	if (status == 0 && (!found || (!req->user.enabled && !req->any_state)))
		status = -ENOENT;
	if (!req->cancelled)
		req->cb.verify(req->arg, status, status == 0 ? &req->user : NULL);
	req_free(req);
}

/* auth_user_get and auth_user_info: one HMGET of the user's fields. */
static int
user_get(struct auth *a, const char *name, bool any_state, auth_verify_cb *cb,
    void *arg)
{
	struct auth_req *req;
	char key[KEY_MAX];
	const char *argv[2 + USER_FIELDS];
	size_t lens[2 + USER_FIELDS];
	int rc, n = 0;

	if (!auth_name_valid(name))
		return -EINVAL;
	if (a->closing || !rdb_is_up(a->db))
		return -ENOTCONN;
	req = req_new(a, REQ_GET);
	req->cb.verify = cb;
	req->arg = arg;
	req->any_state = any_state;
	str_copy(req->user.name, name, sizeof req->user.name);
	user_key(a, name, key, sizeof key);
	argv[n++] = "HMGET";
	argv[n++] = key;
	for (size_t i = 0; i < USER_FIELDS; i++)
		argv[n++] = user_fields[i];
	for (int i = 0; i < n; i++)
		lens[i] = strlen(argv[i]);
	if ((rc = rdb_cmd(a->db, on_user_got, req, n, argv, lens)) < 0) {
		req->cancelled = true;
		req_free(req);
	}
	return rc;
}

int
auth_user_get(struct auth *a, const char *name, auth_verify_cb *cb, void *arg)
{
	return user_get(a, name, false, cb, arg);
}

int
auth_user_info(struct auth *a, const char *name, auth_verify_cb *cb, void *arg)
{
	return user_get(a, name, true, cb, arg);
}

/* --- administration ----------------------------------------------------------- */

bool
auth_name_valid(const char *name)
{
	size_t n = 0;

	for (const char *p = name; *p != '\0'; p++, n++) {
		char c = *p;

		if (n == AUTH_NAME_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' ||
		    c == '+' || c == '-'))
			return false;
	}
	return n > 0;
}

/* A host name: labels of letters, digits and '-', none empty or over 63. */
static bool
domain_valid(const char *d, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = d[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

int
auth_domains_parse(const char *list, char *out, size_t outsz, char *bad,
    size_t badsz)
{
	size_t len = 0;
	const char *p = list;

	if (outsz == 0)
		return -E2BIG;
	out[0] = '\0';
	while (*p != '\0') {
		size_t n, entry;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		entry = n = strcspn(p, ", \t");
		if (n == 0)
			break;
		if (n > 1 && p[n - 1] == '.')
			n--;
		if (!domain_valid(p, n)) {
			if (bad != NULL)
				str_copyn(bad, p, entry, badsz);
			return -EINVAL;
		}
		if (!list_has(out, p, n)) {
			if (len + (len > 0) + n >= outsz)
				return -E2BIG;
			if (len > 0)
				out[len++] = ' ';
			for (size_t i = 0; i < n; i++)
				out[len++] = p[i] >= 'A' && p[i] <= 'Z' ?
				    (char)(p[i] - 'A' + 'a') : p[i];
			out[len] = '\0';
		}
		p += entry;
	}
	return 0;
}

static void
on_status_reply(void *arg, int status, redisReply *r)
{
	struct auth_req *req = arg;
	static const char *const what[] = {
		[REQ_ADD] = "user_add", [REQ_PASSWD] = "user_passwd",
		[REQ_DEL] = "user_del", [REQ_SET] = "user_set",
		[REQ_SET_POLICY] = "user_set_policy",
	};
	char q[160], v1[AUTH_RATE_MAX + 8], v2[AUTH_RATE_MAX + 8], v3[300];

	if (status == 0 && r->type != REDIS_REPLY_INTEGER)
		status = -EIO;
	if (status == 0 && r->integer == 0)
		status = req->kind == REQ_ADD ? -EEXIST : -ENOENT;
	if (status == 0) {
		log_quotes(q, sizeof q, req->user.name);
		switch (req->kind) {
		case REQ_ADD:
			log_info("auth", "user_added", "user=%s", q);
			break;
		case REQ_PASSWD:
			log_info("auth", "password_changed", "user=%s", q);
			break;
		case REQ_DEL:
			log_info("auth", "user_deleted", "user=%s", q);
			break;
		case REQ_SET_POLICY:
			/* What changed, as stored ("" = back to the default). */
			log_info("auth", "user_policy_changed", "user=%s%s%s%s%s%s%s", q,
			    req->changes & CHANGE_RATE ? " rate=" : "",
			    req->changes & CHANGE_RATE ?
			    log_quotes(v1, sizeof v1, req->user.rate) : "",
			    req->changes & CHANGE_RCPT_RATE ? " rcpt_rate=" : "",
			    req->changes & CHANGE_RCPT_RATE ?
			    log_quotes(v2, sizeof v2, req->user.rcpt_rate) : "",
			    req->changes & CHANGE_RCPT_DOMAINS ? " rcpt_domains=" : "",
			    req->changes & CHANGE_RCPT_DOMAINS ?
			    log_quotes(v3, sizeof v3, req->user.rcpt_domains) : "");
			break;
		default:
			log_info("auth", "user_changed", "user=%s", q);
			break;
		}
	} else {
		log_redis_error(what[req->kind], status, r);
	}
	req_done(req, status);
}

/* Run script with KEYS user key [+ users set] and the given ARGV. */
static int
user_eval(struct auth_req *req, struct rdb_script *s, bool with_set, int nargv,
    const char **argv)
{
	char key[KEY_MAX], set[KEY_MAX];
	const char *args[8];
	size_t lens[8];
	int n = 0;

	user_key(req->a, req->user.name, key, sizeof key);
	users_key(req->a, set, sizeof set);
	args[n++] = key;
	if (with_set)
		args[n++] = set;
	for (int i = 0; i < nargv; i++)
		args[n++] = argv[i];
	for (int i = 0; i < n; i++)
		lens[i] = strlen(args[i]);
	return rdb_eval(req->a->db, s, on_status_reply, req, with_set ? 2 : 1, n,
	    args, lens);
}

/* After the new hash: write it, or end if closing or hashing failed. */
static void
hashed_done(uv_work_t *w, int status)
{
	struct auth_req *req = w->data;
	char now[24];
	int rc;

	req->in_work = false;
	if (status == UV_ECANCELED || req->a->closing) {
		req_done(req, -ECANCELED);
		return;
	}
	if (req->result < 0) {
		log_error("auth", "hash_failed", "user=%s error=\"%s\"",
		    req->user.name, strerror(-req->result));
		req_done(req, -EIO);
		return;
	}
	snprintf(now, sizeof now, "%" PRIu64, wall_ms());
	if (req->kind == REQ_ADD) {
		const char *argv[] = { req->user.name, req->hash, req->user.domains, now };

		rc = user_eval(req, &s_add, true, 4, argv);
	} else {
		const char *argv[] = { req->hash, now };

		rc = user_eval(req, &s_passwd, false, 2, argv);
	}
	if (rc < 0)
		req_done(req, rc);
}

static void
hash_work(uv_work_t *w)
{
	struct auth_req *req = w->data;

	req->result = auth_hash_password(req->password, req->pwlen, req->hash,
	    sizeof req->hash);
	explicit_bzero(req->password, sizeof req->password);
}

static int
check_new_password(const char *password, size_t pwlen)
{
	if (pwlen < AUTH_PASSWORD_MIN || pwlen > AUTH_PASSWORD_MAX ||
	    memchr(password, '\0', pwlen) != NULL)
		return -EINVAL;
	return 0;
}

/* add and passwd: hash on the pool, then hashed_done() writes. */
static int
hash_then_write(struct auth *a, enum req_kind kind, const char *name,
    const char *password, size_t pwlen, const char *domains, auth_status_cb *cb,
    void *arg)
{
	struct auth_req *req;
	int rc;

	if (a->closing || !rdb_is_up(a->db))
		return -ENOTCONN;
	req = req_new(a, kind);
	str_copy(req->user.name, name, sizeof req->user.name);
	if (domains != NULL)
		str_copy(req->user.domains, domains, sizeof req->user.domains);
	memcpy(req->password, password, pwlen);
	req->pwlen = pwlen;
	req->cb.status = cb;
	req->arg = arg;
	if ((rc = uv_queue_work(a->loop, &req->work, hash_work, hashed_done)) < 0) {
		req->cancelled = true;
		req_free(req);
		return -EIO;
	}
	req->in_work = true;
	return 0;
}

int
auth_user_add(struct auth *a, const char *name, const char *password,
    size_t pwlen, const char *domains, auth_status_cb *cb, void *arg)
{
	char doms[AUTH_DOMAINS_MAX];

	if (!auth_name_valid(name) || check_new_password(password, pwlen) < 0 ||
	    auth_domains_parse(domains ? domains : "", doms, sizeof doms, NULL, 0) < 0)
		return -EINVAL;
	return hash_then_write(a, REQ_ADD, name, password, pwlen, doms, cb, arg);
}

int
auth_user_passwd(struct auth *a, const char *name, const char *password,
    size_t pwlen, auth_status_cb *cb, void *arg)
{
	if (!auth_name_valid(name) || check_new_password(password, pwlen) < 0)
		return -EINVAL;
	return hash_then_write(a, REQ_PASSWD, name, password, pwlen, NULL, cb, arg);
}

/* del and set: one script, no hashing. */
static int
write_now(struct auth_req *req, struct rdb_script *s, bool with_set, int nargv,
    const char **argv)
{
	int rc = user_eval(req, s, with_set, nargv, argv);

	if (rc < 0) {
		req->cancelled = true;
		req_free(req);
	}
	return rc;
}

int
auth_user_del(struct auth *a, const char *name, auth_status_cb *cb, void *arg)
{
	struct auth_req *req;
	const char *argv[1];

	if (!auth_name_valid(name))
		return -EINVAL;
	if (a->closing || !rdb_is_up(a->db))
		return -ENOTCONN;
	req = req_new(a, REQ_DEL);
	str_copy(req->user.name, name, sizeof req->user.name);
	req->cb.status = cb;
	req->arg = arg;
	argv[0] = req->user.name;
	return write_now(req, &s_del, true, 1, argv);
}

int
auth_user_set(struct auth *a, const char *name, const char *domains,
    enum auth_enable enable, auth_status_cb *cb, void *arg)
{
	struct auth_req *req;
	char doms[AUTH_DOMAINS_MAX], now[24];
	const char *argv[4];

	if (!auth_name_valid(name))
		return -EINVAL;
	if (domains != NULL && auth_domains_parse(domains, doms, sizeof doms, NULL, 0) < 0)
		return -EINVAL;
	if (enable != AUTH_ENABLE_KEEP && enable != AUTH_ENABLE_ON && enable != AUTH_ENABLE_OFF)
		return -EINVAL;
	if (a->closing || !rdb_is_up(a->db))
		return -ENOTCONN;
	req = req_new(a, REQ_SET);
	str_copy(req->user.name, name, sizeof req->user.name);
	req->cb.status = cb;
	req->arg = arg;
	snprintf(now, sizeof now, "%" PRIu64, wall_ms());
	argv[0] = now;
	argv[1] = domains != NULL ? "1" : "0";
	argv[2] = domains != NULL ? doms : "";
	argv[3] = enable == AUTH_ENABLE_ON ? "1" : enable == AUTH_ENABLE_OFF ? "0" : "";
	return write_now(req, &s_set, false, 4, argv);
}

/*
 * A rate text for the store: "" stays "" (the default), anything else
 * must parse and is stored as config_rates_str() writes it.
 */
static int
rate_normalise(const char *text, char *out, size_t size)
{
	struct config_rates r;
	const char *why = "";
	char tmp[AUTH_RATE_MAX * 2];

	if (text[0] == '\0') {
		out[0] = '\0';
		return 0;
	}
	if (config_parse_rates(text, &r, &why) < 0)
		return -EINVAL;
	config_rates_str(&r, tmp, sizeof tmp);
	if (str_copy(out, tmp, size) < 0)
		return -E2BIG;
	return 0;
}

int
auth_user_set_policy(struct auth *a, const char *name, const char *rate,
    const char *rcpt_rate, const char *rcpt_domains, auth_status_cb *cb, void *arg)
{
	struct auth_req *req;
	struct auth_user u;
	char now[24];
	const char *argv[7];
	int n = 0;

	if (!auth_name_valid(name) || (rate == NULL && rcpt_rate == NULL &&
	    rcpt_domains == NULL))
		return -EINVAL;
	memset(&u, 0, sizeof u);
	if (rate != NULL && rate_normalise(rate, u.rate, sizeof u.rate) < 0)
		return -EINVAL;
	if (rcpt_rate != NULL &&
	    rate_normalise(rcpt_rate, u.rcpt_rate, sizeof u.rcpt_rate) < 0)
		return -EINVAL;
	if (rcpt_domains != NULL && auth_domains_parse(rcpt_domains, u.rcpt_domains,
	    sizeof u.rcpt_domains, NULL, 0) < 0)
		return -EINVAL;
	if (a->closing || !rdb_is_up(a->db))
		return -ENOTCONN;
	req = req_new(a, REQ_SET_POLICY);
	req->user = u;
	str_copy(req->user.name, name, sizeof req->user.name);
	req->cb.status = cb;
	req->arg = arg;
	snprintf(now, sizeof now, "%" PRIu64, wall_ms());
	argv[n++] = now;
	if (rate != NULL) {
		req->changes |= CHANGE_RATE;
		argv[n++] = "rate";
		argv[n++] = req->user.rate;
	}
	if (rcpt_rate != NULL) {
		req->changes |= CHANGE_RCPT_RATE;
		argv[n++] = "rcpt_rate";
		argv[n++] = req->user.rcpt_rate;
	}
	if (rcpt_domains != NULL) {
		req->changes |= CHANGE_RCPT_DOMAINS;
		argv[n++] = "rcpt_domains";
		argv[n++] = req->user.rcpt_domains;
	}
	return write_now(req, &s_set_policy, false, n, argv);
}

static void
on_listed(void *arg, int status, redisReply *r)
{
	struct auth_req *req = arg;
	struct auth_user *users = NULL;
	size_t n = 0;

	if (status == 0 && (r->type != REDIS_REPLY_ARRAY ||
	    r->elements % (1 + USER_FIELDS) != 0))
		status = -EIO;
	if (status == 0) {
		users = xcalloc(r->elements / (1 + USER_FIELDS) + 1, sizeof *users);
		for (size_t i = 0; i + USER_FIELDS < r->elements; i += 1 + USER_FIELDS) {
			const redisReply *nm = r->element[i];
			struct auth_user *u = &users[n];

			if (nm->type != REDIS_REPLY_STRING)
				continue;
			str_copyn(u->name, nm->str, nm->len, sizeof u->name);
			fill_user(u, r->element + i + 1);
			n++;
		}
	} else {
		log_redis_error("user_list", status, r);
	}
	if (!req->cancelled)
		req->cb.list(req->arg, status, users, n);
	free(users);
	req_free(req);
}

int
auth_user_list(struct auth *a, auth_list_cb *cb, void *arg)
{
	struct auth_req *req;
	char set[KEY_MAX], pfx[KEY_MAX];
	const char *args[2];
	size_t lens[2];
	int rc;

	if (a->closing || !rdb_is_up(a->db))
		return -ENOTCONN;
	req = req_new(a, REQ_LIST);
	req->cb.list = cb;
	req->arg = arg;
	users_key(a, set, sizeof set);
	snprintf(pfx, sizeof pfx, "%suser:", a->prefix);
	args[0] = set;
	args[1] = pfx;
	lens[0] = strlen(set);
	lens[1] = strlen(pfx);
	if ((rc = rdb_eval(a->db, &s_list, on_listed, req, 1, 2, args, lens)) < 0) {
		req->cancelled = true;
		req_free(req);
	}
	return rc;
}
