/*
 * pop3d - the POP3 server: listeners, accepting under the connection
 * limits, sessions (the AUTHORIZATION, TRANSACTION and UPDATE states of
 * RFC 1939), the idle sweep and an orderly stop.  See pop3d.h.
 *
 * A session handles one command at a time: a command that asks Redis or
 * the thread pool (a login, RETR, QUIT's update) marks it busy, and the
 * lines pipelined behind it (RFC 2449 PIPELINING) wait in its input
 * buffer until the answer came.  Every such call holds a reference, so a
 * session whose client went away is freed only when the last answer is
 * in; a callback that finds the connection gone (s->conn NULL) only
 * cleans up.
 */
#include "mailbox/pop3d.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/conn.h"
#include "core/hash.h"
#include "core/ipcount.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/sasl.h"
#include "core/str.h"
#include "core/tlsctx.h"
#include "core/xmalloc.h"
#include "mailbox/pop3_parse.h"

#define C "pop3"
#define OUT_HIGH (256 * 1024)    /* stop reading commands while more output is queued */
#define SWEEP_MAX_MS 30000       /* idle sweep and lock refresh, at most this far apart */
#define SWEEP_MIN_MS 250
#define LOCK_SLACK_MS 60000      /* the lock outlives an idle session by this much */
#define INBOX "INBOX"

enum pop3_state {
	ST_AUTH,   /* AUTHORIZATION */
	ST_TRANS,  /* TRANSACTION */
	ST_UPDATE, /* QUIT given: flags and expunge under way */
};

struct pop3_msg {
	uint32_t uid;
	bool deleted;
	bool retrieved;
	uint64_t size;
};

struct pop3_sess {
	struct pop3_sess *prev, *next;
	struct pop3d *srv;
	struct conn *conn; /* NULL once closed */
	unsigned refs;
	enum pop3_state state;
	bool busy;          /* a command (or the TLS handshake) waits for an answer */
	bool tls_wait;      /* busy for the handshake: STLS's or implicit TLS's */
	bool greet_on_tls;  /* implicit TLS: the greeting follows the handshake */
	bool tls;           /* TLS is on (STLS or implicit) */
	bool authx;         /* AUTH PLAIN waits for its response line */
	bool user_given;    /* USER accepted, PASS expected */
	bool locked;        /* holds the maildrop lock */
	bool lock_refreshing;
	bool auth_pending;
	auth_req_id auth_req;
	char sid[24];
	char client[64];
	char user[AUTH_NAME_MAX + 1];
	char token[MBOX_LOCK_TOKEN_MAX + 1];
	char pass[AUTH_PASSWORD_MAX + 1];
	size_t passlen;
	struct buf in;
	uint64_t last_active;
	uint64_t lock_ms;   /* when the lock was last taken or refreshed */
	unsigned errors;
	unsigned auth_failures;
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	size_t nmsgs;
	uint32_t nretrieved, ndeleted;
	/* RETR/TOP in flight */
	uint32_t cur_msg;
	bool cur_top;
	uint32_t cur_lines;
};

struct pop3_listen {
	struct pop3d *srv;
	bool implicit;
};

struct pop3d {
	uv_loop_t *loop;
	const struct config *cfg;
	struct mbox_store *store;
	struct auth *auth;
	struct policy *policy;
	SSL_CTX *tls;
	struct listener *listeners[POP3D_NLISTENERS];
	struct pop3_listen listen[POP3D_NLISTENERS];
	unsigned nlisteners_open;
	struct ipcount *ipcounts;
	struct pop3_sess *sessions;
	size_t nsessions;  /* connected */
	size_t nalive;     /* not freed */
	uint64_t next_sid;
	uint32_t host_hash; /* in lock tokens: this node */
	uv_timer_t sweep;
	uv_timer_t grace;
	unsigned ntimers_open;
	bool stopping;
	void (*stop_done)(void *);
	void *stop_arg;
};

static const struct conn_ops sess_ops;
static void process(struct pop3_sess *s);
static void maybe_stopped(struct pop3d *srv);

/* --- session basics ------------------------------------------------------------ */

static void
reply(struct pop3_sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
reply(struct pop3_sess *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	if (s->conn == NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 3)
		n = (int)(sizeof line - 3);
	memcpy(line + n, "\r\n", 2);
	conn_write(s->conn, line, (size_t)n + 2);
}

static void
ref(struct pop3_sess *s)
{
	s->refs++;
}

static void
unref(struct pop3_sess *s)
{
	struct pop3d *srv = s->srv;

	if (--s->refs > 0)
		return;
	explicit_bzero(s->pass, sizeof s->pass);
	buf_free(&s->in);
	free(s->msgs);
	free(s);
	srv->nalive--;
	maybe_stopped(srv);
}

/* gone - the client went away while a call was pending: clean up only. */
static bool
gone(const struct pop3_sess *s)
{
	return s->conn == NULL;
}

static void
close_session(struct pop3_sess *s)
{
	if (s->conn != NULL)
		conn_close(s->conn);
}

/* done - the pending command finished: read the next one (if still connected). */
static void
done(struct pop3_sess *s)
{
	s->busy = false;
	if (gone(s))
		return;
	if (s->srv->stopping && s->state != ST_UPDATE) {
		reply(s, "-ERR [SYS/TEMP] Server shutting down, try again later");
		close_session(s);
		return;
	}
	process(s);
}

static uint64_t
total_bytes(const struct pop3_sess *s, uint32_t *n)
{
	uint64_t sum = 0;

	*n = 0;
	for (size_t i = 0; i < s->nmsgs; i++) {
		if (!s->msgs[i].deleted) {
			sum += s->msgs[i].size;
			(*n)++;
		}
	}
	return sum;
}

static void
on_lock_released(void *arg, int status)
{
	(void)arg;
	if (status < 0 && status != -ENOENT && status != -ECANCELED)
		log_warn(C, "unlock_failed", "error=\"%s\" hint=\"the lock lapses on its own\"",
		    uv_strerror(status));
}

static void
release_lock(struct pop3_sess *s)
{
	if (!s->locked)
		return;
	s->locked = false;
	/* Nothing waits for the answer: the callback touches no session. */
	if (mbox_lock(s->srv->store, s->user, MBOX_LOCK_RELEASE, s->token, 1, on_lock_released,
	    NULL) < 0)
		log_warn(C, "unlock_failed", "sid=%s user=%s error=\"redis down\" hint=\"the lock lapses on its own\"",
		    s->sid, s->user);
}

/* --- AUTHORIZATION ---------------------------------------------------------------- */

static void
wipe(struct pop3_sess *s)
{
	explicit_bzero(s->pass, sizeof s->pass);
	s->passlen = 0;
}

/* login_failed_reply - after the failure was counted (or could not be). */
static void
login_over(struct pop3_sess *s, const char *line)
{
	s->user_given = false;
	reply(s, "%s", line);
	if (s->auth_failures >= 3 || s->errors >= s->srv->cfg->policy.max_errors) {
		log_warn(C, "dropped", "sid=%s client=%s reason=auth_failures failures=%u", s->sid,
		    s->client, s->auth_failures);
		close_session(s);
	}
	done(s);
}

static void
on_fail_counted(void *arg, int status, const struct policy_result *res)
{
	struct pop3_sess *s = arg;

	if (!gone(s)) {
		if (status < 0)
			log_warn(C, "auth_failure_not_counted", "sid=%s client=%s error=\"%s\"", s->sid,
			    s->client, uv_strerror(status));
		else if (res->verdict != POLICY_OK)
			log_debug(C, "auth_locked", "sid=%s client=%s", s->sid, s->client);
		login_over(s, "-ERR [AUTH] Authentication failed");
	}
	unref(s);
}

/* login_failed - wrong credentials: count them for the address, then answer.  Takes a reference. */
static void
login_failed(struct pop3_sess *s)
{
	char q[300];

	s->auth_failures++;
	s->errors++;
	log_warn(C, "login", "sid=%s client=%s user=%s result=failed failures=%u", s->sid, s->client,
	    log_quotes(q, sizeof q, s->user), s->auth_failures);
	if (s->srv->policy != NULL &&
	    policy_auth_failed(s->srv->policy, s->client, on_fail_counted, s) == 0)
		return;
	login_over(s, "-ERR [AUTH] Authentication failed");
	unref(s);
}

static void
tempfail(struct pop3_sess *s, const char *what, int status)
{
	log_warn(C, "login", "sid=%s client=%s user=%s result=tempfail what=%s error=\"%s\"", s->sid,
	    s->client, s->user, what, uv_strerror(status));
	login_over(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
}

static void
on_listed(void *arg, int status, struct mbox_msgs *list)
{
	struct pop3_sess *s = arg;
	uint64_t bytes;
	uint32_t n;

	if (gone(s)) {
		mbox_msgs_free(list);
		unref(s);
		return;
	}
	if (status == -ENOENT) {
		/* No INBOX yet: nothing has come back for this user. */
		status = 0;
		list = NULL;
	}
	if (status < 0) {
		release_lock(s);
		tempfail(s, "list", status);
		unref(s);
		return;
	}
	if (list != NULL && list->n > 0) {
		s->msgs = xcalloc(list->n, sizeof *s->msgs);
		for (size_t i = 0; i < list->n; i++) {
			s->msgs[i].uid = list->v[i].uid;
			s->msgs[i].size = list->v[i].size;
		}
		s->nmsgs = list->n;
	}
	s->uidvalidity = list != NULL ? list->uidvalidity : 0;
	mbox_msgs_free(list);
	s->state = ST_TRANS;
	s->auth_failures = 0;
	bytes = total_bytes(s, &n);
	log_info(C, "login", "sid=%s client=%s user=%s result=ok tls=%s messages=%" PRIu32 " bytes=%" PRIu64,
	    s->sid, s->client, s->user, conn_tls_version(s->conn) ? conn_tls_version(s->conn) : "none",
	    n, bytes);
	reply(s, "+OK Logged in, maildrop has %" PRIu32 " messages (%" PRIu64 " octets)", n, bytes);
	done(s);
	unref(s);
}

static void
on_locked(void *arg, int status)
{
	struct pop3_sess *s = arg;
	int rc;

	if (gone(s)) {
		if (status == 0) {
			s->locked = true;
			release_lock(s);
		}
		unref(s);
		return;
	}
	if (status == -EBUSY) {
		log_info(C, "login", "sid=%s client=%s user=%s result=in_use", s->sid, s->client,
		    s->user);
		login_over(s, "-ERR [IN-USE] Maildrop is in use by another session, try again later");
		unref(s);
		return;
	}
	if (status < 0) {
		tempfail(s, "lock", status);
		unref(s);
		return;
	}
	s->locked = true;
	s->lock_ms = uv_now(s->srv->loop);
	rc = mbox_list(s->srv->store, s->user, INBOX, NULL, 0, 0, on_listed, s);
	if (rc < 0) {
		release_lock(s);
		tempfail(s, "list", rc);
		unref(s);
	}
}

/* take_lock - the password was right: lock the maildrop, then read it.  Holds the caller's reference. */
static void
take_lock(struct pop3_sess *s)
{
	int rc;

	snprintf(s->token, sizeof s->token, "%08" PRIx32 ".%d.%s", s->srv->host_hash, (int)getpid(),
	    s->sid);
	rc = mbox_lock(s->srv->store, s->user, MBOX_LOCK_TAKE, s->token,
	    s->srv->cfg->mailbox.pop3_timeout_ms + LOCK_SLACK_MS, on_locked, s);
	if (rc < 0) {
		tempfail(s, "lock", rc);
		unref(s);
	}
}

static void
on_verified(void *arg, int status, const struct auth_user *user)
{
	struct pop3_sess *s = arg;

	s->auth_pending = false;
	if (gone(s)) {
		unref(s);
		return;
	}
	if (status == -EACCES) {
		login_failed(s);
		return;
	}
	if (status < 0) {
		tempfail(s, "verify", status);
		unref(s);
		return;
	}
	str_copy(s->user, user->name, sizeof s->user);
	take_lock(s);
}

/* start_verify - not locked out: check the password.  Holds the caller's reference. */
static void
start_verify(struct pop3_sess *s)
{
	int rc;

	rc = auth_verify(s->srv->auth, s->user, s->pass, s->passlen, on_verified, s, &s->auth_req);
	wipe(s);
	if (rc < 0) {
		tempfail(s, "verify", rc);
		unref(s);
		return;
	}
	s->auth_pending = true;
}

static void
on_lock_checked(void *arg, int status, const struct policy_result *res)
{
	struct pop3_sess *s = arg;

	if (gone(s)) {
		wipe(s);
		unref(s);
		return;
	}
	if (status < 0) {
		wipe(s);
		tempfail(s, "lockout_check", status);
		unref(s);
		return;
	}
	if (res->verdict != POLICY_OK) {
		wipe(s);
		s->errors++;
		log_info(C, "login", "sid=%s client=%s user=%s result=locked_out", s->sid, s->client,
		    s->user);
		login_over(s, "-ERR [SYS/TEMP] Too many failed logins from your address, try again later");
		unref(s);
		return;
	}
	start_verify(s);
}

/*
 * login - credentials arrived: is the address locked out?  If not, the
 * password (auth_verify on the thread pool), then the maildrop lock and
 * the listing.  The password is wiped as soon as it was handed on.
 */
static void
login(struct pop3_sess *s, const char *user, size_t ulen, const char *pass, size_t plen)
{
	int rc;

	s->busy = true;
	ref(s);
	str_copyn(s->user, user, ulen, sizeof s->user);
	s->passlen = plen < sizeof s->pass ? plen : sizeof s->pass;
	memcpy(s->pass, pass, s->passlen);
	if (s->srv->policy == NULL) {
		start_verify(s);
		return;
	}
	rc = policy_auth_check(s->srv->policy, s->client, on_lock_checked, s);
	if (rc < 0) {
		wipe(s);
		tempfail(s, "lockout_check", rc);
		unref(s);
	}
}

static void
auth_plain(struct pop3_sess *s, const char *b64, size_t len)
{
	unsigned char msg[1024];
	char authzid[SASL_PART_MAX + 1], authcid[SASL_PART_MAX + 1], passwd[SASL_PART_MAX + 1];
	size_t n;

	if (sasl_base64_decode(b64, len, msg, sizeof msg, &n) < 0) {
		s->errors++;
		reply(s, "-ERR Invalid base64 data");
		return;
	}
	if (sasl_plain_split(msg, n, authzid, sizeof authzid, authcid, sizeof authcid, passwd,
	    sizeof passwd) < 0) {
		explicit_bzero(msg, sizeof msg);
		s->errors++;
		reply(s, "-ERR Malformed PLAIN response");
		return;
	}
	explicit_bzero(msg, sizeof msg);
	if (authzid[0] != '\0' && strcmp(authzid, authcid) != 0) {
		/* Acting for another user (RFC 4616 authzid) is not offered. */
		explicit_bzero(passwd, sizeof passwd);
		str_copy(s->user, authcid, sizeof s->user);
		s->busy = true;
		ref(s);
		login_failed(s);
		return;
	}
	login(s, authcid, strlen(authcid), passwd, strlen(passwd));
	explicit_bzero(passwd, sizeof passwd);
}

static void
auth_line(struct pop3_sess *s, const char *line, size_t len)
{
	s->authx = false;
	if (len == 1 && line[0] == '*') {
		reply(s, "-ERR Authentication cancelled");
		return;
	}
	auth_plain(s, line, len);
}

static void
capa(struct pop3_sess *s)
{
	bool tls_ok = s->tls || s->srv->tls == NULL;

	reply(s, "+OK Capability list follows");
	reply(s, "TOP");
	reply(s, "UIDL");
	reply(s, "RESP-CODES");
	reply(s, "AUTH-RESP-CODE");
	reply(s, "PIPELINING");
	if (s->state == ST_AUTH && !s->tls)
		reply(s, "STLS");
	if (s->state == ST_AUTH && tls_ok && s->tls) {
		reply(s, "USER");
		reply(s, "SASL PLAIN");
	}
	reply(s, "EXPIRE NEVER");
	reply(s, "LOGIN-DELAY 0");
	reply(s, "IMPLEMENTATION kurier");
	reply(s, ".");
}

static void
cmd_auth_state(struct pop3_sess *s, const struct pop3_cmd *c)
{
	switch (c->verb) {
	case POP3_STLS:
		if (s->tls) {
			reply(s, "-ERR TLS is already on");
			return;
		}
		reply(s, "+OK Begin TLS negotiation");
		/* What the client pipelined after STLS was plaintext: dropped (RFC 2595 3.1). */
		buf_reset(&s->in);
		if (conn_start_tls(s->conn, s->srv->tls, true, NULL, false) < 0) {
			close_session(s);
			return;
		}
		s->tls = true;
		s->busy = true;
		s->tls_wait = true;
		return;
	case POP3_USER:
		if (!s->tls) {
			reply(s, "-ERR [AUTH] Plaintext login is not allowed: send STLS first");
			return;
		}
		str_copyn(s->user, c->arg, c->arglen, sizeof s->user);
		s->user_given = true;
		reply(s, "+OK Send PASS");
		return;
	case POP3_PASS:
		if (!s->tls) {
			reply(s, "-ERR [AUTH] Plaintext login is not allowed: send STLS first");
			return;
		}
		if (!s->user_given) {
			s->errors++;
			reply(s, "-ERR Send USER first");
			return;
		}
		login(s, s->user, strlen(s->user), c->arg, c->arglen);
		return;
	case POP3_AUTH:
		if (c->arg == NULL) {
			reply(s, "+OK Mechanisms follow");
			if (s->tls)
				reply(s, "PLAIN");
			reply(s, ".");
			return;
		}
		if (c->arglen != 5 || strncasecmp(c->arg, "PLAIN", 5) != 0) {
			s->errors++;
			reply(s, "-ERR Unrecognized authentication mechanism (PLAIN is offered)");
			return;
		}
		if (!s->tls) {
			reply(s, "-ERR [AUTH] Plaintext login is not allowed: send STLS first");
			return;
		}
		if (c->initial == NULL) {
			s->authx = true;
			reply(s, "+ ");
			return;
		}
		/* RFC 5034 4: "=" is an empty initial response. */
		auth_plain(s, c->initial, c->initial_len == 1 && c->initial[0] == '=' ? 0 :
		    c->initial_len);
		return;
	case POP3_APOP:
		s->errors++;
		reply(s, "-ERR APOP is not offered: use USER and PASS or AUTH PLAIN over TLS");
		return;
	default:
		s->errors++;
		reply(s, "-ERR Log in first (USER and PASS, or AUTH PLAIN)");
		return;
	}
}

/* --- TRANSACTION ------------------------------------------------------------------ */

/* msg - message number n, if it exists and is not marked deleted; else replied. */
static struct pop3_msg *
msg(struct pop3_sess *s, uint32_t n)
{
	if (n == 0 || n > s->nmsgs) {
		reply(s, "-ERR No such message");
		return NULL;
	}
	if (s->msgs[n - 1].deleted) {
		reply(s, "-ERR Message %" PRIu32 " is deleted", n);
		return NULL;
	}
	return &s->msgs[n - 1];
}

static void
on_body(void *arg, int status, struct mbox_body *b)
{
	struct pop3_sess *s = arg;
	struct buf out;

	if (gone(s)) {
		mbox_body_free(b);
		unref(s);
		return;
	}
	if (status == -ENOENT) {
		reply(s, "-ERR Message %" PRIu32 " was removed by another session", s->cur_msg);
	} else if (status < 0) {
		log_warn(C, "retr_failed", "sid=%s user=%s msg=%" PRIu32 " error=\"%s\"", s->sid,
		    s->user, s->cur_msg, uv_strerror(status));
		reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
	} else {
		buf_init(&out);
		if (s->cur_top)
			buf_appends(&out, "+OK Top of message follows\r\n");
		else
			buf_appendf(&out, "+OK %zu octets\r\n", b->len);
		pop3_put_message(&out, b->data, b->len, s->cur_top, s->cur_lines);
		conn_write(s->conn, buf_rptr(&out), buf_unread(&out));
		buf_free(&out);
		if (!s->cur_top && !s->msgs[s->cur_msg - 1].retrieved) {
			s->msgs[s->cur_msg - 1].retrieved = true;
			s->nretrieved++;
		}
	}
	mbox_body_free(b);
	done(s);
	unref(s);
}

static void
retr(struct pop3_sess *s, uint32_t n, bool top, uint32_t lines)
{
	struct pop3_msg *m = msg(s, n);
	int rc;

	if (m == NULL)
		return;
	s->cur_msg = n;
	s->cur_top = top;
	s->cur_lines = lines;
	s->busy = true;
	ref(s);
	rc = mbox_fetch(s->srv->store, s->user, INBOX, m->uid, on_body, s);
	if (rc < 0) {
		reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
		s->busy = false;
		unref(s);
	}
}

static void
list(struct pop3_sess *s, const struct pop3_cmd *c, bool uidl)
{
	struct buf out;
	uint64_t bytes;
	uint32_t n;

	if (c->has_msg) {
		struct pop3_msg *m = msg(s, c->msg);

		if (m == NULL)
			return;
		if (uidl)
			reply(s, "+OK %" PRIu32 " %" PRIu32 ".%" PRIu32, c->msg, s->uidvalidity, m->uid);
		else
			reply(s, "+OK %" PRIu32 " %" PRIu64, c->msg, m->size);
		return;
	}
	bytes = total_bytes(s, &n);
	buf_init(&out);
	if (uidl)
		buf_appends(&out, "+OK Unique-ID listing follows\r\n");
	else
		buf_appendf(&out, "+OK %" PRIu32 " messages (%" PRIu64 " octets)\r\n", n, bytes);
	for (size_t i = 0; i < s->nmsgs; i++) {
		if (s->msgs[i].deleted)
			continue;
		if (uidl)
			buf_appendf(&out, "%zu %" PRIu32 ".%" PRIu32 "\r\n", i + 1, s->uidvalidity,
			    s->msgs[i].uid);
		else
			buf_appendf(&out, "%zu %" PRIu64 "\r\n", i + 1, s->msgs[i].size);
	}
	buf_appends(&out, ".\r\n");
	conn_write(s->conn, buf_rptr(&out), buf_unread(&out));
	buf_free(&out);
}

/* --- UPDATE ----------------------------------------------------------------------- */

/* ranges - the UIDs of the messages marked (deleted or retrieved-only), coalesced. */
static size_t
ranges(const struct pop3_sess *s, bool deleted, struct mbox_range **out)
{
	struct mbox_range *r = NULL;
	size_t n = 0;

	for (size_t i = 0; i < s->nmsgs; i++) {
		const struct pop3_msg *m = &s->msgs[i];

		if (deleted ? !m->deleted : (!m->retrieved || m->deleted))
			continue;
		if (n > 0 && r[n - 1].hi + 1 == m->uid) {
			r[n - 1].hi = m->uid;
			continue;
		}
		if (r == NULL)
			r = xcalloc(s->nmsgs, sizeof *r);
		r[n].lo = r[n].hi = m->uid;
		n++;
	}
	*out = r;
	return n;
}

static void
signoff(struct pop3_sess *s, bool ok, size_t expunged)
{
	log_info(C, "logout", "sid=%s client=%s user=%s retrieved=%" PRIu32 " deleted=%zu reason=quit%s",
	    s->sid, s->client, s->user, s->nretrieved, expunged, ok ? "" : " update=failed");
	release_lock(s);
	if (ok)
		reply(s, "+OK Signing off, %zu messages deleted", expunged);
	else
		reply(s, "-ERR [SYS/TEMP] Some deleted messages were not removed, try again later");
	s->state = ST_AUTH;
	s->user[0] = '\0';
	close_session(s);
}

static void
on_expunged(void *arg, int status, struct mbox_uids *res)
{
	struct pop3_sess *s = arg;
	size_t n = status == 0 ? res->n : 0;

	if (status < 0)
		log_warn(C, "expunge_failed", "sid=%s user=%s error=\"%s\"", s->sid, s->user,
		    uv_strerror(status));
	mbox_uids_free(res);
	if (!gone(s))
		signoff(s, status == 0, n);
	else
		release_lock(s);
	s->busy = false;
	unref(s);
}

static void
update_expunge(struct pop3_sess *s)
{
	struct mbox_range *r;
	size_t n = ranges(s, true, &r);
	int rc;

	if (n == 0) {
		if (!gone(s))
			signoff(s, true, 0);
		else
			release_lock(s);
		s->busy = false;
		unref(s);
		return;
	}
	rc = mbox_expunge(s->srv->store, s->user, INBOX, r, n, true, on_expunged, s);
	free(r);
	if (rc < 0)
		on_expunged(s, rc, NULL);
}

static void
on_seen(void *arg, int status, struct mbox_flags_result *res)
{
	struct pop3_sess *s = arg;

	/* A message expunged meanwhile by IMAP is simply not there: not an error. */
	if (status < 0 && status != -ENOENT)
		log_warn(C, "seen_failed", "sid=%s user=%s error=\"%s\"", s->sid, s->user,
		    uv_strerror(status));
	mbox_flags_result_free(res);
	update_expunge(s);
}

/* update - QUIT in TRANSACTION (RFC 1939 6): \Seen on what was retrieved, then the expunge. */
static void
update(struct pop3_sess *s)
{
	struct mbox_flags_req req = { 0 };
	struct mbox_range *r;
	size_t n;
	int rc;

	s->state = ST_UPDATE;
	s->busy = true;
	ref(s);
	n = ranges(s, false, &r);
	if (n == 0) {
		update_expunge(s);
		return;
	}
	req.user = s->user;
	req.folder = INBOX;
	req.ranges = r;
	req.nranges = n;
	req.op = MBOX_FLAGS_ADD;
	req.flags = "\\Seen";
	rc = mbox_store_flags(s->srv->store, &req, on_seen, s);
	free(r);
	if (rc < 0)
		on_seen(s, rc, NULL);
}

static void
cmd_trans_state(struct pop3_sess *s, const struct pop3_cmd *c)
{
	struct pop3_msg *m;
	uint64_t bytes;
	uint32_t n;

	switch (c->verb) {
	case POP3_STAT:
		bytes = total_bytes(s, &n);
		reply(s, "+OK %" PRIu32 " %" PRIu64, n, bytes);
		return;
	case POP3_LIST:
		list(s, c, false);
		return;
	case POP3_UIDL:
		list(s, c, true);
		return;
	case POP3_RETR:
		retr(s, c->msg, false, 0);
		return;
	case POP3_TOP:
		retr(s, c->msg, true, c->lines);
		return;
	case POP3_DELE:
		if ((m = msg(s, c->msg)) == NULL)
			return;
		m->deleted = true;
		s->ndeleted++;
		reply(s, "+OK Message %" PRIu32 " deleted", c->msg);
		return;
	case POP3_NOOP:
		reply(s, "+OK");
		return;
	case POP3_RSET:
		for (size_t i = 0; i < s->nmsgs; i++)
			s->msgs[i].deleted = false;
		s->ndeleted = 0;
		bytes = total_bytes(s, &n);
		reply(s, "+OK Maildrop has %" PRIu32 " messages (%" PRIu64 " octets)", n, bytes);
		return;
	default:
		s->errors++;
		reply(s, "-ERR Already logged in");
		return;
	}
}

/* --- commands ----------------------------------------------------------------------- */

static void
command(struct pop3_sess *s, const char *line, size_t len)
{
	struct pop3_cmd c;
	const char *err;

	if (s->authx) {
		auth_line(s, line, len);
		return;
	}
	if ((err = pop3_parse(line, len, &c)) != NULL) {
		s->errors++;
		reply(s, "-ERR %s", err);
		return;
	}
	if (c.verb == POP3_CAPA) {
		capa(s);
		return;
	}
	if (c.verb == POP3_QUIT) {
		if (s->state == ST_TRANS) {
			update(s);
			return;
		}
		reply(s, "+OK Bye");
		close_session(s);
		return;
	}
	if (s->state == ST_AUTH)
		cmd_auth_state(s, &c);
	else
		cmd_trans_state(s, &c);
}

/* process - run the complete command lines buffered, one at a time. */
static void
process(struct pop3_sess *s)
{
	const char *line;
	size_t len;
	bool bare;
	int rc;

	while (!s->busy && !gone(s) && !conn_is_closing(s->conn)) {
		if (conn_pending(s->conn) > OUT_HIGH) {
			conn_read_stop(s->conn);
			return;
		}
		rc = buf_getline(&s->in, s->authx ? POP3_AUTH_LINE_MAX : POP3_LINE_MAX - 2, &line,
		    &len, &bare);
		if (rc == BUF_NEEDMORE)
			break;
		if (rc == BUF_TOOLONG) {
			s->errors++;
			s->authx = false;
			reply(s, "-ERR Line too long");
		} else {
			command(s, line, len);
		}
		if (s->errors >= s->srv->cfg->policy.max_errors && !gone(s) &&
		    !conn_is_closing(s->conn)) {
			log_warn(C, "dropped", "sid=%s client=%s reason=max_errors", s->sid, s->client);
			reply(s, "-ERR Too many errors, closing");
			close_session(s);
		}
	}
	if (buf_unread(&s->in) == 0 && !s->in.skip)
		buf_free(&s->in);
}

/* --- connection callbacks --------------------------------------------------------- */

static void
greet(struct pop3_sess *s)
{
	reply(s, "+OK %s kurier POP3 ready", s->srv->cfg->server.hostname);
}

static void
on_read(struct conn *c, const char *data, size_t len)
{
	struct pop3_sess *s = conn_data(c);

	if (s == NULL)
		return;
	s->last_active = uv_now(s->srv->loop);
	buf_append(&s->in, data, len);
	process(s);
}

static void
on_tls(struct conn *c, int status)
{
	struct pop3_sess *s = conn_data(c);

	if (s == NULL || status < 0 || !s->tls_wait)
		return;
	s->last_active = uv_now(s->srv->loop);
	s->tls_wait = false;
	s->busy = false;
	if (s->greet_on_tls)
		greet(s);
	process(s);
}

static void
on_drain(struct conn *c)
{
	struct pop3_sess *s = conn_data(c);

	if (s == NULL || gone(s))
		return;
	conn_read_start(c);
	process(s);
}

static void
on_close(struct conn *c, int status)
{
	struct pop3_sess *s = conn_data(c);
	struct pop3d *srv;

	if (s == NULL)
		return;
	srv = s->srv;
	if (s->state == ST_TRANS)
		log_info(C, "logout", "sid=%s client=%s user=%s retrieved=%" PRIu32 " deleted=0 reason=%s",
		    s->sid, s->client, s->user, s->nretrieved,
		    status == 0 ? "closed" : status == UV_EOF ? "disconnect" : uv_strerror(status));
	else if (s->state == ST_AUTH)
		log_debug(C, "disconnect", "sid=%s client=%s", s->sid, s->client);
	s->conn = NULL;
	if (s->auth_pending) {
		auth_cancel(srv->auth, s->auth_req);
		s->auth_pending = false;
		/* The verify's reference: its callback will not come. */
		s->refs--;
	}
	/* In UPDATE, the expunge's callback releases the lock once it is done. */
	if (s->state != ST_UPDATE)
		release_lock(s);
	ipcount_release(srv->ipcounts, s->client);
	srv->nsessions--;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	unref(s);
}

static const struct conn_ops sess_ops = {
	.on_read = on_read,
	.on_tls = on_tls,
	.on_drain = on_drain,
	.on_close = on_close,
};

/* --- accepting ------------------------------------------------------------------------- */

static void
on_accept(void *arg, uv_stream_t *server)
{
	struct pop3_listen *la = arg;
	struct pop3d *srv = la->srv;
	struct pop3_sess *s;
	struct conn *c;
	char client[64];
	const char *line;
	bool total;

	if (srv->stopping) {
		listener_reject(server);
		return;
	}
	if (conn_accept(&c, server, &sess_ops, NULL) < 0)
		return;
	str_copy(client, conn_peer_addr(c), sizeof client);
	total = srv->nsessions >= srv->cfg->mailbox.max_connections;
	if (total || !ipcount_take(srv->ipcounts, client, srv->cfg->mailbox.max_connections_per_ip)) {
		log_warn(C, "connection_refused", "client=%s reason=%s", client,
		    total ? "max_connections" : "max_connections_per_ip");
		if (la->implicit) {
			/* Implicit TLS: a plaintext reply would read as a TLS error. */
			conn_abort(c);
			return;
		}
		line = total ? "-ERR [SYS/TEMP] Too many connections, try again later\r\n" :
		    "-ERR [SYS/TEMP] Too many connections from your address, try again later\r\n";
		conn_write(c, line, strlen(line));
		conn_close(c);
		return;
	}
	s = xcalloc(1, sizeof *s);
	s->srv = srv;
	s->conn = c;
	s->refs = 1;
	buf_init(&s->in);
	str_copy(s->client, client, sizeof s->client);
	snprintf(s->sid, sizeof s->sid, "P%" PRIx64, ++srv->next_sid);
	s->last_active = uv_now(srv->loop);
	s->next = srv->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	srv->nalive++;
	conn_set_data(c, s);
	log_debug(C, "connect", "sid=%s client=%s tls=%s", s->sid, client,
	    la->implicit ? "implicit" : "none");
	if (la->implicit) {
		s->tls = true;
		s->busy = true;
		s->tls_wait = true;
		s->greet_on_tls = true;
		if (conn_start_tls(c, srv->tls, true, NULL, false) < 0)
			conn_abort(c);
		return;
	}
	greet(s);
}

/* --- the sweep: idle sessions and lock refreshes ------------------------------------ */

static void
on_refreshed(void *arg, int status)
{
	struct pop3_sess *s = arg;

	s->lock_refreshing = false;
	if (status == 0) {
		s->lock_ms = uv_now(s->srv->loop);
	} else if (!gone(s) && s->locked) {
		log_warn(C, "lock_lost", "sid=%s user=%s error=\"%s\"", s->sid, s->user,
		    uv_strerror(status));
		if (status == -EBUSY) {
			/* Another session has the maildrop now: this one must not expunge. */
			s->locked = false;
			reply(s, "-ERR [IN-USE] Maildrop lock lost, closing");
			close_session(s);
		}
	}
	unref(s);
}

static void
on_sweep(uv_timer_t *t)
{
	struct pop3d *srv = t->data;
	uint64_t now = uv_now(srv->loop), idle = srv->cfg->mailbox.pop3_timeout_ms;
	uint64_t lock_ttl = idle + LOCK_SLACK_MS;

	for (struct pop3_sess *s = srv->sessions; s != NULL; s = s->next) {
		if (s->conn == NULL || conn_is_closing(s->conn))
			continue;
		if (!s->busy && now - s->last_active >= idle) {
			/* RFC 1939 3: the autologout timer ends the session without UPDATE. */
			log_info(C, "timeout", "sid=%s client=%s user=%s idle_ms=%" PRIu64, s->sid,
			    s->client, s->user, now - s->last_active);
			reply(s, "-ERR Autologout: idle for too long");
			close_session(s);
			continue;
		}
		if (s->locked && !s->lock_refreshing && now - s->lock_ms >= lock_ttl / 3) {
			s->lock_refreshing = true;
			ref(s);
			if (mbox_lock(srv->store, s->user, MBOX_LOCK_REFRESH, s->token, lock_ttl,
			    on_refreshed, s) < 0) {
				s->lock_refreshing = false;
				unref(s);
			}
		}
	}
}

/* --- the server ------------------------------------------------------------------------ */

int
pop3d_open(struct pop3d **out, uv_loop_t *loop, const struct config *cfg,
    struct mbox_store *store, struct auth *auth, struct policy *pol, char *err, size_t errsz)
{
	const struct config_listen *ls[POP3D_NLISTENERS] = { &cfg->mailbox.pop3,
		&cfg->mailbox.pop3s };
	struct pop3d *srv;
	uint64_t sweep;
	int rc;

	if (store == NULL || auth == NULL) {
		snprintf(err, errsz, "POP3 needs the mailbox store and the user directory");
		return -EINVAL;
	}
	srv = xcalloc(1, sizeof *srv);
	srv->loop = loop;
	srv->cfg = cfg;
	srv->store = store;
	srv->auth = auth;
	srv->policy = pol;
	srv->host_hash = fnv1a32_str(FNV1A32_INIT, cfg->server.hostname);
	if ((rc = tlsctx_server(&srv->tls, cfg, err, errsz)) < 0) {
		free(srv);
		return rc;
	}
	srv->ipcounts = ipcount_new();
	for (int i = 0; i < POP3D_NLISTENERS; i++) {
		if (ls[i]->n == 0)
			continue;
		srv->listen[i].srv = srv;
		srv->listen[i].implicit = i == POP3D_POP3S;
		rc = listener_open(&srv->listeners[i], loop, ls[i], 511, on_accept, &srv->listen[i],
		    err, errsz);
		if (rc < 0) {
			for (int j = 0; j < i; j++)
				if (srv->listeners[j] != NULL)
					listener_close(srv->listeners[j], NULL, NULL);
			ipcount_free(srv->ipcounts);
			SSL_CTX_free(srv->tls);
			free(srv);
			return rc;
		}
		srv->nlisteners_open++;
	}
	uv_timer_init(loop, &srv->sweep);
	uv_timer_init(loop, &srv->grace);
	srv->sweep.data = srv->grace.data = srv;
	srv->ntimers_open = 2;
	sweep = cfg->mailbox.pop3_timeout_ms / 4;
	sweep = sweep > SWEEP_MAX_MS ? SWEEP_MAX_MS : sweep < SWEEP_MIN_MS ? SWEEP_MIN_MS : sweep;
	uv_timer_start(&srv->sweep, on_sweep, sweep, sweep);
	*out = srv;
	return 0;
}

int
pop3d_reload_tls(struct pop3d *srv, char *err, size_t errsz)
{
	SSL_CTX *ctx;
	int rc;

	if ((rc = tlsctx_server(&ctx, srv->cfg, err, errsz)) < 0)
		return rc;
	/* Sessions mid-handshake hold their own reference to the old one. */
	SSL_CTX_free(srv->tls);
	srv->tls = ctx;
	return 0;
}

uint16_t
pop3d_port(const struct pop3d *srv, enum pop3d_listener which, unsigned i)
{
	if ((unsigned)which >= POP3D_NLISTENERS || srv->listeners[which] == NULL)
		return 0;
	return listener_port(srv->listeners[which], i);
}

size_t
pop3d_sessions(const struct pop3d *srv)
{
	return srv->nsessions;
}

static void
on_timer_closed(uv_handle_t *h)
{
	struct pop3d *srv = h->data;
	void (*cb)(void *);
	void *arg;

	if (--srv->ntimers_open > 0)
		return;
	cb = srv->stop_done;
	arg = srv->stop_arg;
	ipcount_free(srv->ipcounts);
	SSL_CTX_free(srv->tls);
	free(srv);
	if (cb != NULL)
		cb(arg);
}

static void
maybe_stopped(struct pop3d *srv)
{
	if (!srv->stopping || srv->nalive > 0 || srv->nlisteners_open > 0 ||
	    uv_is_closing((uv_handle_t *)&srv->sweep))
		return;
	uv_close((uv_handle_t *)&srv->sweep, on_timer_closed);
	uv_close((uv_handle_t *)&srv->grace, on_timer_closed);
}

static void
on_listener_closed(void *arg)
{
	struct pop3d *srv = arg;

	srv->nlisteners_open--;
	maybe_stopped(srv);
}

static void
on_grace(uv_timer_t *t)
{
	struct pop3d *srv = t->data;

	for (struct pop3_sess *s = srv->sessions; s != NULL; s = s->next) {
		log_warn(C, "cut", "sid=%s client=%s user=%s reason=shutdown_grace", s->sid, s->client,
		    s->user);
		if (s->conn != NULL)
			conn_abort(s->conn);
	}
}

void
pop3d_stop(struct pop3d *srv, uint64_t grace_ms, void (*cb)(void *arg), void *arg)
{
	srv->stopping = true;
	srv->stop_done = cb;
	srv->stop_arg = arg;
	uv_timer_stop(&srv->sweep);
	for (int i = 0; i < POP3D_NLISTENERS; i++)
		if (srv->listeners[i] != NULL)
			listener_close(srv->listeners[i], on_listener_closed, srv);
	for (struct pop3_sess *s = srv->sessions; s != NULL; s = s->next) {
		if (s->busy || s->conn == NULL)
			continue; /* done() closes it once its command is answered */
		reply(s, "-ERR [SYS/TEMP] Server shutting down, try again later");
		close_session(s);
	}
	uv_timer_start(&srv->grace, on_grace, grace_ms, 0);
	maybe_stopped(srv);
}
