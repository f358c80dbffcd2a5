/*
 * pop3d - the POP3 server: the AUTHORIZATION, TRANSACTION and UPDATE
 * states of RFC 1939 over the mail-client server base (msrv.h: listeners,
 * limits, connections, the login check, the stop).  See pop3d.h.
 *
 * A session handles one command at a time: a command that asks Redis or
 * the thread pool (a login, RETR, QUIT's update) marks it busy, and the
 * lines pipelined behind it (RFC 2449 PIPELINING) wait in its input
 * buffer until the answer came (msrv_done).  Every such call holds a
 * reference, so a callback may find the client gone (msrv_gone) and then
 * only cleans up.
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
#include "core/log.h"
#include "core/sasl.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "mailbox/msrv.h"
#include "mailbox/pop3_parse.h"

#define C "pop3"
#define LOCK_SLACK_MS 60000 /* the lock outlives an idle session by this much */
#define MAX_AUTH_FAILURES 3 /* wrong logins a session gets before it is closed */
#define INBOX "INBOX"
#define PREFETCH_MAX 16     /* message bodies read ahead */
#define PREFETCH_SCAN (2 * PREFETCH_MAX) /* pipelined lines looked at for them */

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

struct pop3_fetch;

struct pop3_sess {
	struct msrv_sess base; /* first: msrv allocates and passes it */
	enum pop3_state state;
	bool authx;            /* AUTH PLAIN waits for its response line */
	bool user_given;       /* USER accepted, PASS expected */
	bool locked;           /* holds the maildrop lock */
	bool lock_refreshing;
	uint64_t lock_ms;      /* when the lock was last taken or refreshed */
	char token[MBOX_LOCK_TOKEN_MAX + 1];
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	size_t nmsgs;
	uint32_t nretrieved, ndeleted;
	/* RETR/TOP in flight */
	uint32_t cur_msg;
	bool cur_top;
	uint32_t cur_lines;
	uint32_t waiting; /* the message whose body the running RETR/TOP waits for */
	struct pop3_fetch *fetch[PREFETCH_MAX];
};

struct pop3d {
	struct msrv *msrv;
	const struct config *cfg;
	struct mbox_store *store;
	uint32_t host_hash; /* in lock tokens: this node */
	void (*stop_done)(void *);
	void *stop_arg;
};

/* --- session basics ------------------------------------------------------------ */

static struct pop3d *
pd(const struct pop3_sess *s)
{
	return msrv_arg(s->base.srv);
}

static void
reply(struct pop3_sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
reply(struct pop3_sess *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 3)
		n = (int)(sizeof line - 3);
	memcpy(line + n, "\r\n", 2);
	msrv_write(&s->base, line, (size_t)n + 2);
}

static void
ref(struct pop3_sess *s)
{
	msrv_ref(&s->base);
}

static void
unref(struct pop3_sess *s)
{
	msrv_unref(&s->base);
}

static bool
gone(const struct pop3_sess *s)
{
	return msrv_gone(&s->base);
}

static void
close_session(struct pop3_sess *s)
{
	msrv_close(&s->base);
}

static void
done(struct pop3_sess *s)
{
	msrv_done(&s->base);
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
	if (mbox_lock(pd(s)->store, s->base.user, MBOX_LOCK_RELEASE, s->token, 1, on_lock_released,
	    NULL) < 0)
		log_warn(C, "unlock_failed", "sid=%s user=%s error=\"redis down\" hint=\"the lock lapses on its own\"",
		    s->base.sid, s->base.user);
}

/* --- AUTHORIZATION ---------------------------------------------------------------- */

/* login_over - answer a login that did not end in TRANSACTION. */
static void
login_over(struct pop3_sess *s, const char *line)
{
	s->user_given = false;
	reply(s, "%s", line);
	if (s->base.auth_failures >= MAX_AUTH_FAILURES ||
	    s->base.errors >= pd(s)->cfg->policy.max_errors) {
		log_warn(C, "dropped", "sid=%s client=%s reason=auth_failures failures=%u", s->base.sid,
		    s->base.client, s->base.auth_failures);
		close_session(s);
	}
	done(s);
}

static void
tempfail(struct pop3_sess *s, const char *what, int status)
{
	log_warn(C, "login", "sid=%s client=%s user=%s result=tempfail what=%s error=\"%s\"",
	    s->base.sid, s->base.client, s->base.user, what, uv_strerror(status));
	login_over(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
}

static void
on_listed(void *arg, int status, struct mbox_uidlist *list)
{
	struct pop3_sess *s = arg;
	uint64_t bytes;
	uint32_t n;

	if (gone(s)) {
		mbox_uidlist_free(list);
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
			s->msgs[i].uid = list->v[i];
			s->msgs[i].size = list->sizes[i];
		}
		s->nmsgs = list->n;
	}
	s->uidvalidity = list != NULL ? list->uidvalidity : 0;
	mbox_uidlist_free(list);
	s->state = ST_TRANS;
	bytes = total_bytes(s, &n);
	log_info(C, "login", "sid=%s client=%s user=%s result=ok tls=%s messages=%" PRIu32 " bytes=%" PRIu64,
	    s->base.sid, s->base.client, s->base.user,
	    conn_tls_version(s->base.conn) ? conn_tls_version(s->base.conn) : "none", n, bytes);
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
		log_info(C, "login", "sid=%s client=%s user=%s result=in_use", s->base.sid,
		    s->base.client, s->base.user);
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
	s->lock_ms = uv_now(msrv_loop(s->base.srv));
	rc = mbox_uidlist(pd(s)->store, s->base.user, INBOX, true, on_listed, s);
	if (rc < 0) {
		release_lock(s);
		tempfail(s, "list", rc);
		unref(s);
	}
}

/* on_login - the password check's outcome: lock the maildrop, then read it. */
static void
on_login(struct msrv_sess *b, enum msrv_login_result r, const struct auth_user *user)
{
	struct pop3_sess *s = (struct pop3_sess *)b;
	int rc;

	(void)user;
	switch (r) {
	case MSRV_LOGIN_FAILED:
		login_over(s, "-ERR [AUTH] Authentication failed");
		return;
	case MSRV_LOGIN_LOCKED:
		login_over(s, "-ERR [SYS/TEMP] Too many failed logins from your address, try again later");
		return;
	case MSRV_LOGIN_TEMPFAIL:
		login_over(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
		return;
	case MSRV_LOGIN_OK:
		break;
	}
	s->base.busy = true;
	ref(s);
	snprintf(s->token, sizeof s->token, "%08" PRIx32 ".%d.%s", pd(s)->host_hash, (int)getpid(),
	    s->base.sid);
	rc = mbox_lock(pd(s)->store, s->base.user, MBOX_LOCK_TAKE, s->token,
	    pd(s)->cfg->mailbox.pop3_timeout_ms + LOCK_SLACK_MS, on_locked, s);
	if (rc < 0) {
		tempfail(s, "lock", rc);
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
		msrv_error(&s->base);
		reply(s, "-ERR Invalid base64 data");
		return;
	}
	if (sasl_plain_split(msg, n, authzid, sizeof authzid, authcid, sizeof authcid, passwd,
	    sizeof passwd) < 0) {
		explicit_bzero(msg, sizeof msg);
		msrv_error(&s->base);
		reply(s, "-ERR Malformed PLAIN response");
		return;
	}
	explicit_bzero(msg, sizeof msg);
	if (authzid[0] != '\0' && strcmp(authzid, authcid) != 0) {
		/*
		 * Acting for another user (RFC 4616 authzid) is not offered: it
		 * fails, and counts, like a wrong password (an empty one never
		 * verifies).
		 */
		explicit_bzero(passwd, sizeof passwd);
		msrv_login(&s->base, authcid, strlen(authcid), "", 0, on_login);
		return;
	}
	msrv_login(&s->base, authcid, strlen(authcid), passwd, strlen(passwd), on_login);
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
	reply(s, "+OK Capability list follows");
	reply(s, "TOP");
	reply(s, "UIDL");
	reply(s, "RESP-CODES");
	reply(s, "AUTH-RESP-CODE");
	reply(s, "PIPELINING");
	if (s->state == ST_AUTH && !s->base.tls)
		reply(s, "STLS");
	if (s->state == ST_AUTH && s->base.tls) {
		reply(s, "USER");
		reply(s, "SASL PLAIN");
	}
	reply(s, "EXPIRE NEVER");
	reply(s, "LOGIN-DELAY 0");
	reply(s, "IMPLEMENTATION kurier");
	reply(s, ".");
}

#define NEED_TLS "-ERR [AUTH] Plaintext login is not allowed: send STLS first"

static void
cmd_auth_state(struct pop3_sess *s, const struct pop3_cmd *c)
{
	switch (c->verb) {
	case POP3_STLS:
		if (s->base.tls) {
			reply(s, "-ERR TLS is already on");
			return;
		}
		reply(s, "+OK Begin TLS negotiation");
		msrv_starttls(&s->base);
		return;
	case POP3_USER:
		if (!s->base.tls) {
			reply(s, NEED_TLS);
			return;
		}
		str_copyn(s->base.user, c->arg, c->arglen, sizeof s->base.user);
		s->user_given = true;
		reply(s, "+OK Send PASS");
		return;
	case POP3_PASS:
		if (!s->base.tls) {
			reply(s, NEED_TLS);
			return;
		}
		if (!s->user_given) {
			msrv_error(&s->base);
			reply(s, "-ERR Send USER first");
			return;
		}
		msrv_login(&s->base, s->base.user, strlen(s->base.user), c->arg, c->arglen, on_login);
		return;
	case POP3_AUTH:
		if (c->arg == NULL) {
			reply(s, "+OK Mechanisms follow");
			if (s->base.tls)
				reply(s, "PLAIN");
			reply(s, ".");
			return;
		}
		if (c->arglen != 5 || strncasecmp(c->arg, "PLAIN", 5) != 0) {
			msrv_error(&s->base);
			reply(s, "-ERR Unrecognized authentication mechanism (PLAIN is offered)");
			return;
		}
		if (!s->base.tls) {
			reply(s, NEED_TLS);
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
		msrv_error(&s->base);
		reply(s, "-ERR APOP is not offered: use USER and PASS or AUTH PLAIN over TLS");
		return;
	default:
		msrv_error(&s->base);
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

/*
 * Bodies are read ahead: the RETRs and TOPs a client pipelined behind
 * the one running are all asked of Redis at once, and after a RETR the
 * next message is asked for before the client asks (clients read a
 * maildrop in order), so a message's round trip to Redis overlaps the
 * previous one's transfer.  At most PREFETCH_MAX bodies are held.
 */
struct pop3_fetch {
	struct pop3_sess *s; /* NULL once the session dropped the slot */
	uint32_t msg;
	bool done;
	int status;
	struct mbox_body *body;
};

static void serve(struct pop3_sess *s, struct pop3_fetch *f, bool later);

static struct pop3_fetch **
slot_of(struct pop3_sess *s, uint32_t n)
{
	for (size_t i = 0; i < PREFETCH_MAX; i++)
		if (s->fetch[i] != NULL && s->fetch[i]->msg == n)
			return &s->fetch[i];
	return NULL;
}

static void
on_body(void *arg, int status, struct mbox_body *b)
{
	struct pop3_fetch *f = arg;
	struct pop3_sess *s = f->s;

	if (s == NULL) {
		/* The session let go of it (it closed, or the message was deleted). */
		mbox_body_free(b);
		free(f);
		return;
	}
	f->done = true;
	f->status = status;
	f->body = b;
	if (!gone(s) && s->waiting == f->msg)
		serve(s, f, true);
	unref(s);
}

/* prefetch - ask for message n's body unless it is held or asked for already. */
static void
prefetch(struct pop3_sess *s, uint32_t n)
{
	struct pop3_fetch *f, **slot = NULL;

	if (n == 0 || n > s->nmsgs || s->msgs[n - 1].deleted || slot_of(s, n) != NULL)
		return;
	for (size_t i = 0; i < PREFETCH_MAX && slot == NULL; i++)
		if (s->fetch[i] == NULL)
			slot = &s->fetch[i];
	if (slot == NULL)
		return;
	f = xcalloc(1, sizeof *f);
	f->s = s;
	f->msg = n;
	ref(s);
	if (mbox_fetch(pd(s)->store, s->base.user, INBOX, s->msgs[n - 1].uid, on_body, f) < 0) {
		unref(s);
		free(f);
		return;
	}
	*slot = f;
}

/* prefetch_ahead - the RETRs and TOPs pipelined behind the current command. */
static void
prefetch_ahead(struct pop3_sess *s)
{
	const char *p = buf_rptr(&s->base.in), *end = p + buf_unread(&s->base.in), *nl;
	struct pop3_cmd c;
	unsigned lines = 0;

	/* A few lines ahead only: each RETR scans again, and a client may pipeline thousands. */
	for (; p < end && lines++ < PREFETCH_SCAN && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL;
	    p = nl + 1) {
		size_t len = (size_t)(nl - p);

		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len > POP3_LINE_MAX || pop3_parse(p, len, &c) != NULL)
			continue;
		if (c.verb == POP3_QUIT || c.verb == POP3_RSET)
			break;
		if (c.verb == POP3_RETR || c.verb == POP3_TOP)
			prefetch(s, c.msg);
	}
}

static void
slot_drop(struct pop3_sess *s, struct pop3_fetch **slot)
{
	struct pop3_fetch *f = *slot;

	*slot = NULL;
	if (f->done) {
		mbox_body_free(f->body);
		free(f);
	} else {
		/* on_body frees it; the reference it held goes now. */
		f->s = NULL;
		unref(s);
	}
}

/*
 * serve - message f->msg's body is in: answer the RETR or TOP waiting for
 * it.  later: from the store's callback (then the next command is run
 * from here); else from retr(), whose caller's loop goes on.
 */
static void
serve(struct pop3_sess *s, struct pop3_fetch *f, bool later)
{
	struct mbox_body *b = f->body;
	struct buf out;

	s->waiting = 0;
	if (f->status == -ENOENT) {
		reply(s, "-ERR Message %" PRIu32 " was removed by another session", s->cur_msg);
	} else if (f->status < 0) {
		log_warn(C, "retr_failed", "sid=%s user=%s msg=%" PRIu32 " error=\"%s\"", s->base.sid,
		    s->base.user, s->cur_msg, uv_strerror(f->status));
		reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
	} else {
		buf_init(&out);
		if (s->cur_top)
			buf_appends(&out, "+OK Top of message follows\r\n");
		else
			buf_appendf(&out, "+OK %zu octets\r\n", b->len);
		pop3_put_message(&out, b->data, b->len, s->cur_top, s->cur_lines);
		conn_write(s->base.conn, buf_rptr(&out), buf_unread(&out));
		buf_free(&out);
		if (!s->cur_top && !s->msgs[s->cur_msg - 1].retrieved) {
			s->msgs[s->cur_msg - 1].retrieved = true;
			s->nretrieved++;
		}
	}
	slot_drop(s, slot_of(s, f->msg));
	/* Clients read a maildrop in order: the next one is likely asked for next. */
	if (!s->cur_top)
		prefetch(s, s->cur_msg + 1);
	if (later)
		done(s);
	else
		s->base.busy = false;
}

static void
retr(struct pop3_sess *s, uint32_t n, bool top, uint32_t lines)
{
	struct pop3_fetch **slot;

	if (msg(s, n) == NULL)
		return;
	s->cur_msg = n;
	s->cur_top = top;
	s->cur_lines = lines;
	s->base.busy = true;
	prefetch(s, n);
	prefetch_ahead(s);
	if ((slot = slot_of(s, n)) == NULL) {
		reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
		s->base.busy = false;
		return;
	}
	if ((*slot)->done) {
		serve(s, *slot, false);
		return;
	}
	s->waiting = n;
}

/* drop_fetches - let go of every body held or asked for. */
static void
drop_fetches(struct pop3_sess *s)
{
	for (size_t i = 0; i < PREFETCH_MAX; i++)
		if (s->fetch[i] != NULL)
			slot_drop(s, &s->fetch[i]);
	s->waiting = 0;
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
	conn_write(s->base.conn, buf_rptr(&out), buf_unread(&out));
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
	    s->base.sid, s->base.client, s->base.user, s->nretrieved, expunged, ok ? "" : " update=failed");
	release_lock(s);
	if (ok)
		reply(s, "+OK Signing off, %zu messages deleted", expunged);
	else
		reply(s, "-ERR [SYS/TEMP] Some deleted messages were not removed, try again later");
	s->state = ST_AUTH;
	s->base.user[0] = '\0';
	close_session(s);
}

static void
on_expunged(void *arg, int status, struct mbox_uids *res)
{
	struct pop3_sess *s = arg;
	size_t n = status == 0 ? res->n : 0;

	if (status < 0)
		log_warn(C, "expunge_failed", "sid=%s user=%s error=\"%s\"", s->base.sid, s->base.user,
		    uv_strerror(status));
	mbox_uids_free(res);
	if (!gone(s))
		signoff(s, status == 0, n);
	else
		release_lock(s);
	s->base.busy = false;
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
		s->base.busy = false;
		unref(s);
		return;
	}
	rc = mbox_expunge(pd(s)->store, s->base.user, INBOX, r, n, true, on_expunged, s);
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
		log_warn(C, "seen_failed", "sid=%s user=%s error=\"%s\"", s->base.sid, s->base.user,
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
	s->base.busy = true;
	ref(s);
	n = ranges(s, false, &r);
	if (n == 0) {
		update_expunge(s);
		return;
	}
	req.user = s->base.user;
	req.folder = INBOX;
	req.ranges = r;
	req.nranges = n;
	req.op = MBOX_FLAGS_ADD;
	req.flags = "\\Seen";
	rc = mbox_store_flags(pd(s)->store, &req, on_seen, s);
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
		if (slot_of(s, c->msg) != NULL)
			slot_drop(s, slot_of(s, c->msg));
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
		msrv_error(&s->base);
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
		msrv_error(&s->base);
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

/* --- the protocol's side of msrv ------------------------------------------------------ */

static void
p_start(struct msrv_sess *b)
{
	struct pop3_sess *s = (struct pop3_sess *)b;

	reply(s, "+OK %s kurier POP3 ready", pd(s)->cfg->server.hostname);
}

/* p_input - run the complete command lines buffered, one at a time. */
static void
p_input(struct msrv_sess *b)
{
	struct pop3_sess *s = (struct pop3_sess *)b;
	const char *line;
	size_t len;
	bool bare;
	int rc;

	while (!b->busy && !gone(s) && !conn_is_closing(b->conn) &&
	    conn_pending(b->conn) <= MSRV_OUT_HIGH) {
		rc = buf_getline(&b->in, s->authx ? POP3_AUTH_LINE_MAX : POP3_LINE_MAX - 2, &line, &len,
		    &bare);
		if (rc == BUF_NEEDMORE)
			break;
		if (rc == BUF_TOOLONG) {
			msrv_error(b);
			s->authx = false;
			reply(s, "-ERR Line too long");
		} else {
			command(s, line, len);
		}
		if (b->errors >= pd(s)->cfg->policy.max_errors && !gone(s) &&
		    !conn_is_closing(b->conn)) {
			log_warn(C, "dropped", "sid=%s client=%s reason=max_errors", b->sid, b->client);
			reply(s, "-ERR Too many errors, closing");
			close_session(s);
		}
	}
	if (!b->busy && !gone(s) && conn_pending(b->conn) > MSRV_OUT_HIGH)
		conn_read_stop(b->conn);
}

static void
p_timeout(struct msrv_sess *b)
{
	/* RFC 1939 3: the autologout timer ends the session without UPDATE. */
	reply((struct pop3_sess *)b, "-ERR Autologout: idle for too long");
}

static void
p_shutdown(struct msrv_sess *b)
{
	reply((struct pop3_sess *)b, "-ERR [SYS/TEMP] Server shutting down, try again later");
}

static void
on_refreshed(void *arg, int status)
{
	struct pop3_sess *s = arg;

	s->lock_refreshing = false;
	if (status == 0) {
		s->lock_ms = uv_now(msrv_loop(s->base.srv));
	} else if (!gone(s) && s->locked) {
		log_warn(C, "lock_lost", "sid=%s user=%s error=\"%s\"", s->base.sid, s->base.user,
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

/* p_sweep - keep the maildrop lock while the session lives. */
static void
p_sweep(struct msrv_sess *b, uint64_t now)
{
	struct pop3_sess *s = (struct pop3_sess *)b;
	uint64_t ttl = pd(s)->cfg->mailbox.pop3_timeout_ms + LOCK_SLACK_MS;

	if (!s->locked || s->lock_refreshing || now - s->lock_ms < ttl / 3)
		return;
	s->lock_refreshing = true;
	ref(s);
	if (mbox_lock(pd(s)->store, b->user, MBOX_LOCK_REFRESH, s->token, ttl, on_refreshed, s) < 0) {
		s->lock_refreshing = false;
		unref(s);
	}
}

static void
p_closed(struct msrv_sess *b, int status)
{
	struct pop3_sess *s = (struct pop3_sess *)b;

	if (s->state == ST_TRANS)
		log_info(C, "logout", "sid=%s client=%s user=%s retrieved=%" PRIu32 " deleted=0 reason=%s",
		    b->sid, b->client, b->user, s->nretrieved,
		    status == 0 ? "closed" : status == UV_EOF ? "disconnect" : uv_strerror(status));
	else if (s->state == ST_AUTH)
		log_debug(C, "disconnect", "sid=%s client=%s", b->sid, b->client);
	drop_fetches(s);
	/* In UPDATE, the expunge's callback releases the lock once it is done. */
	if (s->state != ST_UPDATE)
		release_lock(s);
}

static void
p_free(struct msrv_sess *b)
{
	free(((struct pop3_sess *)b)->msgs);
}

static const struct msrv_proto pop3_proto = {
	.name = C,
	.sess_size = sizeof(struct pop3_sess),
	.too_many = "-ERR [SYS/TEMP] Too many connections, try again later\r\n",
	.too_many_per_ip = "-ERR [SYS/TEMP] Too many connections from your address, try again later\r\n",
	.start = p_start,
	.input = p_input,
	.timeout = p_timeout,
	.shutdown = p_shutdown,
	.sweep = p_sweep,
	.closed = p_closed,
	.free = p_free,
};

/* --- the server ------------------------------------------------------------------------ */

int
pop3d_open(struct pop3d **out, uv_loop_t *loop, const struct config *cfg,
    struct mbox_store *store, struct auth *auth, struct policy *pol, char *err, size_t errsz)
{
	struct msrv_opts opts = { &cfg->mailbox.pop3, &cfg->mailbox.pop3s, cfg->mailbox.pop3_timeout_ms };
	struct pop3d *srv;
	int rc;

	if (store == NULL) {
		snprintf(err, errsz, "POP3 needs the mailbox store");
		return -EINVAL;
	}
	srv = xcalloc(1, sizeof *srv);
	srv->cfg = cfg;
	srv->store = store;
	srv->host_hash = fnv1a32_str(FNV1A32_INIT, cfg->server.hostname);
	if ((rc = msrv_open(&srv->msrv, loop, cfg, &pop3_proto, &opts, auth, pol, srv, err,
	    errsz)) < 0) {
		free(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

int
pop3d_reload_tls(struct pop3d *srv, char *err, size_t errsz)
{
	return msrv_reload_tls(srv->msrv, err, errsz);
}

uint16_t
pop3d_port(const struct pop3d *srv, enum pop3d_listener which, unsigned i)
{
	return msrv_port(srv->msrv, which == POP3D_POP3S, i);
}

size_t
pop3d_sessions(const struct pop3d *srv)
{
	return msrv_sessions(srv->msrv);
}

static void
on_stopped(void *arg)
{
	struct pop3d *srv = arg;
	void (*cb)(void *) = srv->stop_done;
	void *cb_arg = srv->stop_arg;

	free(srv);
	if (cb != NULL)
		cb(cb_arg);
}

void
pop3d_stop(struct pop3d *srv, uint64_t grace_ms, void (*done_cb)(void *arg), void *arg)
{
	srv->stop_done = done_cb;
	srv->stop_arg = arg;
	msrv_stop(srv->msrv, grace_ms, on_stopped, srv);
}
