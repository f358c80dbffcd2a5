/*
 * auth_int.h - what auth.c (verification, lifecycle) and users.c (user
 * administration) share; included only inside policy/.
 *
 * struct auth is made by auth_open() and freed once its Redis connection
 * is closed and no request is pending; each call is one struct auth_req
 * on a->reqs, freed by auth__req_free() (which may free a after
 * auth_close()).
 */
#ifndef KURIER_POLICY_AUTH_INT_H
#define KURIER_POLICY_AUTH_INT_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/rdb.h"
#include "policy/auth.h"

#define KEY_MAX (sizeof ((struct config *)0)->redis.prefix + 8 + AUTH_NAME_MAX)

/* The fields of a user other than its hash (auth__user_fields). */
#define AUTH__USER_FIELDS 7
extern const char *const auth__user_fields[AUTH__USER_FIELDS];

/* users.c's scripts, loaded on every connect (NULL-terminated). */
extern struct rdb_script *const auth__scripts[];

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

/* auth__wall_ms - ms since the epoch. */
uint64_t auth__wall_ms(void);
void auth__user_key(const struct auth *a, const char *name, char *dst, size_t size);
void auth__users_key(const struct auth *a, char *dst, size_t size);
/* auth__fill_user - u (name set) from the AUTH__USER_FIELDS values v[0..); whether any was present. */
bool auth__fill_user(struct auth_user *u, redisReply *const *v);
/* auth__req_new - a request on a->reqs with a fresh id (never NULL). */
struct auth_req *auth__req_new(struct auth *a, enum req_kind kind);
/* auth__req_free - off the list, the password wiped, freed; may free a. */
void auth__req_free(struct auth_req *req);
/* auth__req_done - end a status request: its callback (unless cancelled), then free. */
void auth__req_done(struct auth_req *req, int status);
/* auth__list_has - whether the space-separated list holds d[0..n), ignoring case. */
bool auth__list_has(const char *list, const char *d, size_t n);

#endif
