/*
 * auth - password verification (auth_verify, auth_cancel), the trusted
 * user's fetch (auth_user_get), the module's lifecycle and the helpers
 * that users.c (user administration, the calls kurierctl user makes)
 * shares through auth_int.h.  See auth.h for the contract and the key
 * layout.
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
#include "policy/auth_int.h"

/*
 * The fields of a user other than its hash, in the order HMGET and the
 * list script return them (auth__fill_user() reads them so).
 */
const char *const auth__user_fields[AUTH__USER_FIELDS] = {
	"enabled", "domains", "rate", "rcpt_rate", "rcpt_domains", "created",
	"changed",
};

static void maybe_free(struct auth *a);

/* --- helpers ------------------------------------------------------------------ */

uint64_t
auth__wall_ms(void)
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

void
auth__user_key(const struct auth *a, const char *name, char *dst, size_t size)
{
	snprintf(dst, size, "%suser:%s", a->prefix, name);
}

void
auth__users_key(const struct auth *a, char *dst, size_t size)
{
	snprintf(dst, size, "%susers", a->prefix);
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

/*
 * fill_user - u (whose name is set) from the AUTH__USER_FIELDS values v[0..),
 * as HMGET returns them.  Whether any field was present.
 */
bool
auth__fill_user(struct auth_user *u, redisReply *const *v)
{
	const redisReply *e = v[0], *d = v[1], *rd = v[4];
	bool any = false;

	for (size_t i = 0; i < AUTH__USER_FIELDS; i++)
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
	/* Times are stored as digits; absent or anything else reads as 0. */
	if (!rdb_reply_u64(v[5], &u->created_ms))
		u->created_ms = 0;
	if (!rdb_reply_u64(v[6], &u->changed_ms))
		u->changed_ms = 0;
	return any;
}

/* --- requests ------------------------------------------------------------------ */

struct auth_req *
auth__req_new(struct auth *a, enum req_kind kind)
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

void
auth__req_free(struct auth_req *req)
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
void
auth__req_done(struct auth_req *req, int status)
{
	if (!req->cancelled)
		req->cb.status(req->arg, status);
	auth__req_free(req);
}

/* Whether the space-separated list holds d[0..n), ignoring case. */
bool
auth__list_has(const char *list, const char *d, size_t n)
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
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	/* The dummy hash: the scheme and cost new passwords get. */
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting) == NULL &&
	    crypt_gensalt_rn("$6$", 0, NULL, 0, setting, sizeof setting) == NULL) {
		int e = errno ? errno : EINVAL;

		log_error("auth", "no_hash_scheme", "error=\"%s\" hint=\"libcrypt offers neither yescrypt nor SHA-512-crypt\"",
		    strerror(e));
		return -e;
	}
	a = xcalloc(1, sizeof *a);
	a->loop = loop;
	str_copy(a->prefix, cfg->redis.prefix, sizeof a->prefix);
	str_copy(a->dummy, setting, sizeof a->dummy);
	*out = a;
	return rdb_open_config(&a->db, loop, cfg, name, auth__scripts, on_state, a);
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
	auth__req_free(req);
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
		auth__req_free(req);
		return;
	}
	if (status == 0 && (r->type != REDIS_REPLY_ARRAY ||
	    r->elements != 1 + AUTH__USER_FIELDS))
		status = -EIO;
	if (status < 0) {
		rdb_log_error("auth", "verify", status, r);
		req->cb.verify(req->arg, status, NULL);
		auth__req_free(req);
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
		auth__fill_user(&req->user, r->element + 1);
		req->known = usable && req->user.enabled && !req->bad_password;
	}
	if (verify_hash(req) < 0) {
		if (!req->cancelled)
			req->cb.verify(req->arg, -EIO, NULL);
		auth__req_free(req);
	}
}

int
auth_verify(struct auth *a, const char *user, const char *password,
    size_t pwlen, auth_verify_cb *cb, void *arg, auth_req_id *id)
{
	struct auth_req *req;
	char key[KEY_MAX];
	const char *argv[3 + AUTH__USER_FIELDS];
	size_t lens[3 + AUTH__USER_FIELDS];
	int rc, n = 0;

	if (a->closing || !rdb_is_up(a->db))
		return -ENOTCONN;
	req = auth__req_new(a, REQ_VERIFY);
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
			auth__req_free(req);
			return rc;
		}
		if (id != NULL)
			*id = req->id;
		return 0;
	}
	str_copy(req->user.name, user, sizeof req->user.name);
	auth__user_key(a, user, key, sizeof key);
	argv[n++] = "HMGET";
	argv[n++] = key;
	argv[n++] = "hash";
	for (size_t i = 0; i < AUTH__USER_FIELDS; i++)
		argv[n++] = auth__user_fields[i];
	for (int i = 0; i < n; i++)
		lens[i] = strlen(argv[i]);
	if ((rc = rdb_cmd(a->db, on_user_fetched, req, n, argv, lens)) < 0) {
		req->cancelled = true;
		auth__req_free(req);
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
	return auth__list_has(u->domains, domain, dlen);
}

static void
on_user_got(void *arg, int status, redisReply *r)
{
	struct auth_req *req = arg;
	bool found = false;

	if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != AUTH__USER_FIELDS))
		status = -EIO;
	if (status == 0)
		found = auth__fill_user(&req->user, r->element);
	else
		rdb_log_error("auth", "user_get", status, r);
	if (status == 0 && (!found || (!req->user.enabled && !req->any_state)))
		status = -ENOENT;
	if (!req->cancelled)
		req->cb.verify(req->arg, status, status == 0 ? &req->user : NULL);
	auth__req_free(req);
}

/* auth_user_get and auth_user_info: one HMGET of the user's fields. */
static int
user_get(struct auth *a, const char *name, bool any_state, auth_verify_cb *cb,
    void *arg)
{
	struct auth_req *req;
	char key[KEY_MAX];
	const char *argv[2 + AUTH__USER_FIELDS];
	size_t lens[2 + AUTH__USER_FIELDS];
	int rc, n = 0;

	if (!auth_name_valid(name))
		return -EINVAL;
	if (a->closing || !rdb_is_up(a->db))
		return -ENOTCONN;
	req = auth__req_new(a, REQ_GET);
	req->cb.verify = cb;
	req->arg = arg;
	req->any_state = any_state;
	str_copy(req->user.name, name, sizeof req->user.name);
	auth__user_key(a, name, key, sizeof key);
	argv[n++] = "HMGET";
	argv[n++] = key;
	for (size_t i = 0; i < AUTH__USER_FIELDS; i++)
		argv[n++] = auth__user_fields[i];
	for (int i = 0; i < n; i++)
		lens[i] = strlen(argv[i]);
	if ((rc = rdb_cmd(a->db, on_user_got, req, n, argv, lens)) < 0) {
		req->cancelled = true;
		auth__req_free(req);
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

