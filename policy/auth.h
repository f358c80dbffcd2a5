/*
 * auth - the user store and password verification for SMTP AUTH.
 *
 * Users live in Redis under the [redis] prefix:
 *   PREFIX user:NAME  hash  hash     crypt(3) string ("$y$..." yescrypt)
 *                           domains  space-separated, lower case
 *                           enabled  "1" or "0" (anything but "1" is disabled)
 *                           created  ms since the epoch
 *                           changed  ms since the epoch
 *                           rate     messages per window, "500/h, 20/min"
 *                                    (config_rates_str() form; "none" = no
 *                                    limit); absent = the [policy] rate
 *                           rcpt_rate    recipients, likewise ([policy] rcpt_rate)
 *                           rcpt_domains the only recipient domains allowed,
 *                                    space-separated, lower case; absent = any
 *   PREFIX users      set   every NAME, for listing
 * A name is 1-64 characters of [A-Za-z0-9._@+-] and case-sensitive; a
 * domain list is at most AUTH_DOMAINS_MAX - 1 bytes once stored.
 *
 * Passwords are hashed and checked with libxcrypt on libuv's thread pool
 * (uv_queue_work), never on the loop: one yescrypt at the default cost
 * takes tens of milliseconds.  A password is copied into the work item,
 * wiped (explicit_bzero) after hashing, and never logged or stored.
 *
 * The module opens a Redis connection of its own (core/rdb.h) and follows
 * the queue's call convention: every call that returns 0 calls its
 * callback exactly once, later, from the loop; one that returns a
 * negative errno (-ENOTCONN while Redis is down, -EINVAL for bad
 * arguments) never does.  Arguments are borrowed for the duration of the
 * call only.  Callback statuses: 0; the call's own outcome (-EACCES,
 * -EEXIST, -ENOENT, below); -ENOTCONN (Redis went down between the hash
 * and the write), -ECONNRESET (the connection broke before the reply),
 * -EIO (Redis refused; logged), -ECANCELED (auth_close() ran first).
 *
 * Files: auth.c (lifecycle, auth_verify, auth_cancel, auth_user_get and
 * auth_user_info, auth_hash_password), users.c (administration, the
 * calls kurierctl user makes: names and domain lists, add, passwd, del,
 * set, set_policy, list); auth_int.h is what they share.
 */
#ifndef KURIER_POLICY_AUTH_H
#define KURIER_POLICY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/str.h"

#define AUTH_NAME_MAX STR_USERNAME_MAX /* 64 characters in a user name */
#define AUTH_DOMAINS_MAX 1024   /* bytes of the stored domain list, NUL included */
#define AUTH_PASSWORD_MIN 8     /* bytes; for new passwords only */
#define AUTH_PASSWORD_MAX 256   /* bytes; longer ones never verify */
#define AUTH_HASH_MAX 384       /* bytes of a crypt(3) string, NUL included */
#define AUTH_COST_MAX 32        /* bytes of a hash's scheme and cost, NUL included */

struct auth;

#define AUTH_RATE_MAX 128       /* bytes of a stored rate text, NUL included */

struct auth_user {
	char name[AUTH_NAME_MAX + 1];
	char domains[AUTH_DOMAINS_MAX];  /* "a.example b.example" */
	bool enabled;
	/* Per-user policy overrides; "" = the [policy] default. */
	char rate[AUTH_RATE_MAX];        /* messages: "500/h, 20/min" */
	char rcpt_rate[AUTH_RATE_MAX];   /* recipients: "5000/d" */
	char rcpt_domains[AUTH_DOMAINS_MAX]; /* allowed recipient domains; "" = any */
	uint64_t created_ms;             /* 0 when not stored */
	uint64_t changed_ms;
};

/*
 * An id naming one pending auth_verify(), for auth_cancel().  Ids are
 * never 0 (a caller may use 0 for "none") and never reused by one struct
 * auth.
 */
typedef uint64_t auth_req_id;

typedef void auth_closed_cb(void *arg);
typedef void auth_status_cb(void *arg, int status);
/* user is valid during the callback only, and only when status is 0. */
typedef void auth_verify_cb(void *arg, int status, const struct auth_user *user);
/* users[0..n) sorted by name, valid during the callback only. */
typedef void auth_list_cb(void *arg, int status, const struct auth_user *users,
    size_t n);

/* --- lifecycle ----------------------------------------------------------- */

/*
 * auth_open - connect to [redis] of cfg (copied); name tags the connection
 * in logs ("kurierd", "kurierctl").  Reconnects by itself; auth_is_up()
 * says whether calls can succeed now.  Picks the hashing scheme once:
 * yescrypt, or SHA-512-crypt when this libcrypt lacks yescrypt.  0, or a
 * negative errno (*out is then not set).
 */
int auth_open(struct auth **out, uv_loop_t *loop, const struct config *cfg,
    const char *name);
/*
 * auth_close - stop: every pending call that was not cancelled gets its
 * callback, with -ECANCELED unless Redis's answer was already on its way
 * (a hash running on the thread pool is waited for, not cut short, and
 * its result dropped); then a is freed and closed(arg) runs (closed may
 * be NULL).  Those callbacks run from the loop, never inside auth_close().
 * No call may be made on a after auth_close().
 */
void auth_close(struct auth *a, auth_closed_cb *closed, void *arg);
bool auth_is_up(const struct auth *a);
/* auth_last_error - why the Redis connection last failed ("" when none). */
const char *auth_last_error(const struct auth *a);
/* auth_on_state - be told when the Redis connection comes up or goes down. */
void auth_on_state(struct auth *a, void (*cb)(void *arg, bool up), void *arg);

/* --- verification (SMTP AUTH, RFC 4954) ------------------------------------ */

/*
 * auth_verify - check password[0..pwlen) for user.  Fetches the user,
 * runs crypt(3) on the thread pool and compares in constant time.  An
 * unknown, disabled or malformed user name, a password with a NUL byte
 * or longer than AUTH_PASSWORD_MAX, and a stored hash crypt(3) cannot
 * use all cost one hash against a dummy of the same scheme and cost, so
 * the time taken does not tell which names exist.
 *
 * On 0, *id (if id is not NULL) names the request for auth_cancel(), and
 * cb(arg, status, user) runs exactly once: 0 = the password is right
 * (user: name, domains, enabled); -EACCES = wrong password, unknown or
 * disabled user, all alike (the session answers 535 5.7.8);
 * -ECONNRESET/-EIO = Redis trouble (454 4.7.0); -ECANCELED after
 * auth_close().  Returns -ENOTCONN when Redis is down (454 4.7.0; cb
 * never runs).  user and password are copied; the copy of the password
 * is wiped once hashed.
 */
int auth_verify(struct auth *a, const char *user, const char *password,
    size_t pwlen, auth_verify_cb *cb, void *arg, auth_req_id *id);
/*
 * auth_cancel - the caller lost interest in verify id (its session
 * closed): its callback never runs.  A hash already on the thread pool
 * finishes there and is discarded; one not started yet is dropped.  An
 * id that finished or is unknown is ignored.  Cost: O(pending verifies).
 */
void auth_cancel(struct auth *a, auth_req_id id);

/*
 * auth_hash_stats - what auth_verify() has hashed so far, for tests and
 * diagnostics: hashes is the number of crypt(3) runs that finished on
 * the thread pool (one per verify that was not cancelled first, dummies
 * included); cost is the last one's scheme and cost ("$y$j9T$"), its
 * salt and hash left out, so a dummy's can be compared with a user's.
 */
struct auth_hash_stats {
	uint64_t hashes;
	char cost[AUTH_COST_MAX];
};
void auth_hash_stats(const struct auth *a, struct auth_hash_stats *out);
/*
 * auth_hash_cost - the scheme and cost part of a crypt(3) string or
 * setting into out[outsz] ("$y$j9T$", "$6$rounds=5000$", "$6$"): the id,
 * and the next field when it is a cost (yescrypt, bcrypt, "rounds=").
 * "" when s is not of that form or the part does not fit.
 */
void auth_hash_cost(const char *s, char *out, size_t outsz);

/*
 * auth_user_may_send_as - whether u may use domain (the header From or
 * MAIL FROM domain): an exact, case-insensitive match with one of its
 * domains.  Subdomains do not inherit: "a.example" does not allow
 * "mail.a.example".  A trailing dot on domain is ignored.
 */
bool auth_user_may_send_as(const struct auth_user *u, const char *domain);

/*
 * auth_user_get - fetch user name without a password (the [relay]
 * trusted_user a trusted client acts as).  cb: 0 with the user (every
 * field of struct auth_user); -ENOENT when it does not exist or is
 * disabled; the statuses above.  Returns -EINVAL for a malformed name.
 */
int auth_user_get(struct auth *a, const char *name, auth_verify_cb *cb, void *arg);
/* auth_user_info - as auth_user_get(), but a disabled user is returned too (kurierctl). */
int auth_user_info(struct auth *a, const char *name, auth_verify_cb *cb, void *arg);

/* --- administration (kurierctl) --------------------------------------------- */

/*
 * auth_name_valid - 1-64 characters of [A-Za-z0-9._@+-]: core/str's
 * str_is_username(), the rule [relay] trusted_user is checked by too.
 */
bool auth_name_valid(const char *name);
/*
 * auth_domains_parse - "a.example, B.example" (commas and/or spaces) into
 * the stored form "a.example b.example": lower case, duplicates dropped,
 * each a host name as str_is_hostname() (RFC 1123 2.1: labels of
 * letters, digits and inner '-', none empty, at most 253 characters; a
 * trailing dot is dropped).  out[outsz].  0, -EINVAL with the offending
 * entry's text in bad[badsz] (bad may be NULL), or -E2BIG when the
 * result does not fit.  An empty list gives "".
 */
int auth_domains_parse(const char *list, char *out, size_t outsz, char *bad,
    size_t badsz);

/*
 * auth_user_add - create user name with password[0..pwlen) (hashed on the
 * thread pool with the scheme auth_open() chose) and domains (as for
 * auth_domains_parse(); NULL or "" for none), enabled.  Returns -EINVAL
 * for a bad name, bad domains, or a password shorter than
 * AUTH_PASSWORD_MIN, longer than AUTH_PASSWORD_MAX or holding a NUL
 * byte; -ENOTCONN when Redis is down.  cb: 0, or -EEXIST when the user
 * exists (nothing changed), or the statuses above.
 */
int auth_user_add(struct auth *a, const char *name, const char *password,
    size_t pwlen, const char *domains, auth_status_cb *cb, void *arg);
/* auth_user_passwd - set a new password; as auth_user_add, cb -ENOENT if absent. */
int auth_user_passwd(struct auth *a, const char *name, const char *password,
    size_t pwlen, auth_status_cb *cb, void *arg);
/* auth_user_del - remove the user; cb -ENOENT if absent. */
int auth_user_del(struct auth *a, const char *name, auth_status_cb *cb, void *arg);

enum auth_enable {
	AUTH_ENABLE_KEEP,
	AUTH_ENABLE_ON,
	AUTH_ENABLE_OFF,
};

/*
 * auth_user_set - change domains (NULL: keep; otherwise as for
 * auth_domains_parse(), "" for none) and/or the enabled flag.  -EINVAL for
 * a bad name or domains; cb -ENOENT if absent.
 */
int auth_user_set(struct auth *a, const char *name, const char *domains,
    enum auth_enable enable, auth_status_cb *cb, void *arg);
/*
 * auth_user_set_policy - change a user's policy overrides; for each, NULL
 * keeps it and "" clears it back to the [policy] default.  rate and
 * rcpt_rate are rate lists as config_parse_rates() reads them ("500/h,
 * 20/min"; "none" = no limit for this user), stored as config_rates_str()
 * writes them; rcpt_domains is a domain list as for auth_domains_parse()
 * (the only recipient domains the user may send to; "" = any).  -EINVAL
 * for a bad name or value, or when all three are NULL; -ENOTCONN when
 * Redis is down.  cb: 0, -ENOENT if absent, or the statuses above.
 */
int auth_user_set_policy(struct auth *a, const char *name, const char *rate,
    const char *rcpt_rate, const char *rcpt_domains, auth_status_cb *cb, void *arg);
/* auth_user_list - every user with every field, sorted by name (byte order). */
int auth_user_list(struct auth *a, auth_list_cb *cb, void *arg);

/*
 * auth_hash_password - hash password[0..pwlen) into out[outsz] with
 * yescrypt ("$y$", crypt_gensalt_rn() default cost, random salt from the
 * OS), or SHA-512-crypt ("$6$") when yescrypt is unavailable.
 * Synchronous and slow (tens of ms): for the thread pool.  Thread-safe.
 * 0; -EINVAL (NUL byte in the password, or longer than
 * AUTH_PASSWORD_MAX); -ERANGE (outsz too small); or the errno crypt(3)
 * set.  Scratch memory is wiped before returning.
 */
int auth_hash_password(const char *password, size_t pwlen, char *out, size_t outsz);

#endif
