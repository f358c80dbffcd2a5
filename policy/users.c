/*
 * users - user administration in Redis (the calls kurierctl user makes):
 * names and domain lists checked, add and passwd (hash on the thread
 * pool, then a script), del, set, set_policy and list, one script each.
 * Writes are Lua scripts so that "create unless present" and "change
 * only if present" are atomic.  See auth.h for the contract.
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

struct rdb_script auth__script_add = { "user_add", lua_add, "" };
struct rdb_script auth__script_passwd = { "user_passwd", lua_passwd, "" };
struct rdb_script auth__script_del = { "user_del", lua_del, "" };
struct rdb_script auth__script_set = { "user_set", lua_set, "" };
struct rdb_script auth__script_set_policy = { "user_set_policy", lua_set_policy, "" };
struct rdb_script auth__script_list = { "user_list", lua_list, "" };

struct rdb_script *const auth__scripts[] = {
	&auth__script_add, &auth__script_passwd, &auth__script_del, &auth__script_set, &auth__script_set_policy, &auth__script_list,
	NULL,
};

/* --- administration ----------------------------------------------------------- */

bool
auth_name_valid(const char *name)
{
	return str_is_username(name);
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
		if (!str_is_hostname_n(p, n)) {
			if (bad != NULL)
				str_copyn(bad, p, entry, badsz);
			return -EINVAL;
		}
		if (!auth__list_has(out, p, n)) {
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
		rdb_log_error("auth", what[req->kind], status, r);
	}
	auth__req_done(req, status);
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

	auth__user_key(req->a, req->user.name, key, sizeof key);
	auth__users_key(req->a, set, sizeof set);
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
		auth__req_done(req, -ECANCELED);
		return;
	}
	if (req->result < 0) {
		log_error("auth", "hash_failed", "user=%s error=\"%s\"",
		    req->user.name, strerror(-req->result));
		auth__req_done(req, -EIO);
		return;
	}
	snprintf(now, sizeof now, "%" PRIu64, auth__wall_ms());
	if (req->kind == REQ_ADD) {
		const char *argv[] = { req->user.name, req->hash, req->user.domains, now };

		rc = user_eval(req, &auth__script_add, true, 4, argv);
	} else {
		const char *argv[] = { req->hash, now };

		rc = user_eval(req, &auth__script_passwd, false, 2, argv);
	}
	if (rc < 0)
		auth__req_done(req, rc);
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
	req = auth__req_new(a, kind);
	str_copy(req->user.name, name, sizeof req->user.name);
	if (domains != NULL)
		str_copy(req->user.domains, domains, sizeof req->user.domains);
	memcpy(req->password, password, pwlen);
	req->pwlen = pwlen;
	req->cb.status = cb;
	req->arg = arg;
	if ((rc = uv_queue_work(a->loop, &req->work, hash_work, hashed_done)) < 0) {
		req->cancelled = true;
		auth__req_free(req);
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
		auth__req_free(req);
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
	req = auth__req_new(a, REQ_DEL);
	str_copy(req->user.name, name, sizeof req->user.name);
	req->cb.status = cb;
	req->arg = arg;
	argv[0] = req->user.name;
	return write_now(req, &auth__script_del, true, 1, argv);
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
	req = auth__req_new(a, REQ_SET);
	str_copy(req->user.name, name, sizeof req->user.name);
	req->cb.status = cb;
	req->arg = arg;
	snprintf(now, sizeof now, "%" PRIu64, auth__wall_ms());
	argv[0] = now;
	argv[1] = domains != NULL ? "1" : "0";
	argv[2] = domains != NULL ? doms : "";
	argv[3] = enable == AUTH_ENABLE_ON ? "1" : enable == AUTH_ENABLE_OFF ? "0" : "";
	return write_now(req, &auth__script_set, false, 4, argv);
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
	req = auth__req_new(a, REQ_SET_POLICY);
	req->user = u;
	str_copy(req->user.name, name, sizeof req->user.name);
	req->cb.status = cb;
	req->arg = arg;
	snprintf(now, sizeof now, "%" PRIu64, auth__wall_ms());
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
	return write_now(req, &auth__script_set_policy, false, n, argv);
}

static void
on_listed(void *arg, int status, redisReply *r)
{
	struct auth_req *req = arg;
	struct auth_user *users = NULL;
	size_t n = 0;

	if (status == 0 && (r->type != REDIS_REPLY_ARRAY ||
	    r->elements % (1 + AUTH__USER_FIELDS) != 0))
		status = -EIO;
	if (status == 0) {
		users = xcalloc(r->elements / (1 + AUTH__USER_FIELDS) + 1, sizeof *users);
		for (size_t i = 0; i + AUTH__USER_FIELDS < r->elements; i += 1 + AUTH__USER_FIELDS) {
			const redisReply *nm = r->element[i];
			struct auth_user *u = &users[n];

			if (nm->type != REDIS_REPLY_STRING)
				continue;
			str_copyn(u->name, nm->str, nm->len, sizeof u->name);
			auth__fill_user(u, r->element + i + 1);
			n++;
		}
	} else {
		rdb_log_error("auth", "user_list", status, r);
	}
	if (!req->cancelled)
		req->cb.list(req->arg, status, users, n);
	free(users);
	auth__req_free(req);
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
	req = auth__req_new(a, REQ_LIST);
	req->cb.list = cb;
	req->arg = arg;
	auth__users_key(a, set, sizeof set);
	snprintf(pfx, sizeof pfx, "%suser:", a->prefix);
	args[0] = set;
	args[1] = pfx;
	lens[0] = strlen(set);
	lens[1] = strlen(pfx);
	if ((rc = rdb_eval(a->db, &auth__script_list, on_listed, req, 1, 2, args, lens)) < 0) {
		req->cancelled = true;
		auth__req_free(req);
	}
	return rc;
}
