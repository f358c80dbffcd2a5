/*
 * imapd - the IMAP server: msrv's protocol callbacks, the command reader
 * (imap_parse.h) and dispatch, responses, the commands of any state and
 * of the not-authenticated state, IDLE, and the store's announcements
 * routed to the sessions of their user.  See imapd.h and imapd_int.h.
 */
#include "mailbox/imapd_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/conn.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/sasl.h"
#include "core/str.h"
#include "core/xmalloc.h"

#define C IMAPD_C
#define USER_BUCKETS 1024
#define AUTH_LINE_MAX 2048 /* an AUTHENTICATE response line */

#define CAPS_COMMON "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE"
#define CAPS_AUTHED CAPS_COMMON " UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE CONDSTORE"

/* --- session basics --------------------------------------------------------------- */

struct imapd *
imapd__srv(const struct imapd_sess *s)
{
	return msrv_arg(s->base.srv);
}

void
imapd__ref(struct imapd_sess *s)
{
	msrv_ref(&s->base);
}

void
imapd__unref(struct imapd_sess *s)
{
	msrv_unref(&s->base);
}

bool
imapd__gone(const struct imapd_sess *s)
{
	return msrv_gone(&s->base);
}

void
imapd__write(struct imapd_sess *s, const void *p, size_t n)
{
	msrv_write(&s->base, p, n);
}

static void
vline(struct imapd_sess *s, const char *prefix, const char *fmt, va_list ap)
{
	struct buf b;
	va_list cp;
	char small[512];
	int n;

	va_copy(cp, ap);
	n = vsnprintf(small, sizeof small, fmt, cp);
	va_end(cp);
	buf_init(&b);
	buf_appends(&b, prefix);
	if (n >= 0 && (size_t)n < sizeof small) {
		buf_append(&b, small, (size_t)n);
	} else if (n >= 0) {
		char *p = buf_reserve(&b, (size_t)n + 1);

		vsnprintf(p, (size_t)n + 1, fmt, ap);
		buf_commit(&b, (size_t)n);
	}
	buf_append(&b, "\r\n", 2);
	imapd__write(s, buf_rptr(&b), buf_unread(&b));
	buf_free(&b);
}

static void rawline(struct imapd_sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
rawline(struct imapd_sess *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline(s, "", fmt, ap);
	va_end(ap);
}

void
imapd__untagged(struct imapd_sess *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline(s, "* ", fmt, ap);
	va_end(ap);
}

static const char *
caps(const struct imapd_sess *s)
{
	if (s->state != IMAPD_NOAUTH)
		return CAPS_AUTHED;
	return s->base.tls ? CAPS_COMMON " AUTH=PLAIN" : CAPS_COMMON " STARTTLS LOGINDISABLED";
}

/* end_command - the tagged response is out: free the command, read the next. */
static void
end_command(struct imapd_sess *s)
{
	imap_cmd_free(&s->cmd);
	memset(&s->cmd, 0, sizeof s->cmd);
	s->uid = false;
	s->op = NULL;
	s->resume = NULL;
	if (s->logout) {
		msrv_close(&s->base);
		return;
	}
	msrv_done(&s->base);
}

struct tagged_line {
	char *line;
	size_t len;
};

static void
write_tagged(struct imapd_sess *s)
{
	struct tagged_line *t = s->op;

	imapd__write(s, t->line, t->len);
	free(t->line);
	free(t);
	s->op = NULL;
	end_command(s);
}

void
imapd__tagged(struct imapd_sess *s, const char *status, const char *code, const char *fmt, ...)
{
	struct tagged_line *t;
	struct buf b;
	va_list ap;
	char text[1024];
	bool expunges;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	buf_init(&b);
	buf_appendf(&b, "%s %s ", s->cmd.tag != NULL ? s->cmd.tag : "*", status);
	if (code != NULL)
		buf_appendf(&b, "[%s] ", code);
	buf_appends(&b, text);
	buf_append(&b, "\r\n", 2);
	t = xcalloc(1, sizeof *t);
	t->line = buf_steal(&b, &t->len);
	s->op = t;
	if (s->state == IMAPD_SELECTED && s->dirty && strcmp(status, "BAD") != 0 && !imapd__gone(s)) {
		/* RFC 3501 7.4.1: no EXPUNGE during FETCH, STORE or SEARCH (their UID forms may). */
		expunges = s->uid || s->cmd.name == NULL ||
		    (strcasecmp(s->cmd.name, "FETCH") != 0 && strcasecmp(s->cmd.name, "STORE") != 0 &&
		    strcasecmp(s->cmd.name, "SEARCH") != 0);
		imapd__sync(s, expunges, write_tagged);
		return;
	}
	write_tagged(s);
}

void
imapd__bad(struct imapd_sess *s, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	msrv_error(&s->base);
	imapd__tagged(s, "BAD", NULL, "%s", text);
}

void
imapd__store_no(struct imapd_sess *s, int status, const char *what)
{
	switch (status) {
	case -ENOENT:
		imapd__tagged(s, "NO", "NONEXISTENT", "%s: no such mailbox", what);
		break;
	case -EEXIST:
		imapd__tagged(s, "NO", "ALREADYEXISTS", "%s: the mailbox exists", what);
		break;
	case -EPERM:
		imapd__tagged(s, "NO", "CANNOT", "%s: not allowed on INBOX", what);
		break;
	case -ENOSPC:
		imapd__tagged(s, "NO", "LIMIT", "%s: limit reached", what);
		break;
	case -EINVAL:
		imapd__tagged(s, "NO", "CANNOT", "%s: refused by the store", what);
		break;
	default:
		log_warn(C, "store_failed", "sid=%s user=%s what=%s error=\"%s\"", s->base.sid,
		    s->base.user, what, uv_strerror(status));
		imapd__tagged(s, "NO", "UNAVAILABLE", "%s: temporary failure, try again later", what);
		break;
	}
}

/* --- arguments ---------------------------------------------------------------------- */

size_t
imapd__nargs(const struct imap_tok *first, const struct imap_tok *end)
{
	size_t n = 0;

	for (const struct imap_tok *t = first; t != NULL && t < end; t = imap_tok_next(t))
		n++;
	return n;
}

bool
imapd__astring(const struct imap_tok *t, struct buf *out)
{
	if (!imap_tok_is_astring(t) || memchr(t->s, '\0', t->len) != NULL)
		return false;
	buf_reset(out);
	buf_append(out, t->s, t->len);
	buf_appendc(out, '\0');
	out->len--;
	return true;
}

bool
imapd__mailbox(struct imapd_sess *s, const struct imap_tok *t, struct buf *out)
{
	char err[IMAP_ERR_MAX];

	if (!imap_tok_is_astring(t)) {
		imapd__bad(s, "Mailbox name expected");
		return false;
	}
	buf_reset(out);
	if (imap_mailbox_name(t->s, t->len, out, err, sizeof err) < 0) {
		imapd__tagged(s, "NO", "CANNOT", "%s", err);
		return false;
	}
	buf_appendc(out, '\0');
	out->len--;
	if (!mbox_valid_folder(buf_rptr(out))) {
		imapd__tagged(s, "NO", "CANNOT", "Invalid mailbox name");
		return false;
	}
	return true;
}

/* --- any state ------------------------------------------------------------------------ */

static void
cmd_capability(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	if (imapd__nargs(a, e) != 0) {
		imapd__bad(s, "CAPABILITY takes no arguments");
		return;
	}
	imapd__untagged(s, "CAPABILITY %s", caps(s));
	imapd__tagged(s, "OK", NULL, "CAPABILITY completed");
}

static void
cmd_noop(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	if (imapd__nargs(a, e) != 0) {
		imapd__bad(s, "NOOP takes no arguments");
		return;
	}
	imapd__tagged(s, "OK", NULL, "NOOP completed");
}

static void
cmd_logout(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	if (imapd__nargs(a, e) != 0) {
		imapd__bad(s, "LOGOUT takes no arguments");
		return;
	}
	imapd__untagged(s, "BYE kurier IMAP signing off");
	if (s->state != IMAPD_NOAUTH)
		log_info(C, "logout", "sid=%s client=%s user=%s fetched=%u expunged=%u reason=logout",
		    s->base.sid, s->base.client, s->base.user, s->nfetched, s->nexpunged);
	s->state = IMAPD_LOGOUT;
	s->logout = true;
	imapd__tagged(s, "OK", NULL, "LOGOUT completed");
}

/* ID (RFC 2971): the client's list is only logged. */
static void
cmd_id(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	char name[128] = "", q[300];

	if (imapd__nargs(a, e) != 1 || (a->type != IMAP_TOK_NIL && a->type != IMAP_TOK_LIST)) {
		imapd__bad(s, "Syntax: ID (field value ...) or ID NIL");
		return;
	}
	if (a->type == IMAP_TOK_LIST) {
		const struct imap_tok *t = a + 1, *lend = imap_tok_next(a);

		for (; t < lend && imap_tok_next(t) < lend; t = imap_tok_next(imap_tok_next(t))) {
			const struct imap_tok *v = imap_tok_next(t);

			if (imap_tok_is_astring(t) && t->len == 4 && strncasecmp(t->s, "name", 4) == 0 &&
			    imap_tok_is_astring(v))
				str_copyn(name, v->s, v->len, sizeof name);
		}
	}
	log_debug(C, "id", "sid=%s client_name=%s", s->base.sid, log_quotes(q, sizeof q, name));
	imapd__untagged(s, "ID (\"name\" \"kurier\" \"vendor\" \"kurier\")");
	imapd__tagged(s, "OK", NULL, "ID completed");
}

/* ENABLE (RFC 5161): CONDSTORE is the one extension that needs it. */
static void
cmd_enable(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	bool cs = false;

	if (imapd__nargs(a, e) == 0) {
		imapd__bad(s, "Syntax: ENABLE capability ...");
		return;
	}
	for (const struct imap_tok *t = a; t < e; t = imap_tok_next(t)) {
		if (t->type != IMAP_TOK_ATOM) {
			imapd__bad(s, "ENABLE takes capability names");
			return;
		}
		if (imap_tok_eq(t, "CONDSTORE"))
			cs = true;
	}
	if (cs) {
		s->condstore = true;
		imapd__untagged(s, "ENABLED CONDSTORE");
	} else {
		imapd__untagged(s, "ENABLED");
	}
	imapd__tagged(s, "OK", NULL, "ENABLE completed");
}

/* --- IDLE ------------------------------------------------------------------------------ */

static void idle_sync(struct imapd_sess *s);

static void
idle_synced(struct imapd_sess *s)
{
	s->syncing = false;
	if (!s->idling) {
		/* DONE came during the sync. */
		imapd__tagged(s, "OK", NULL, "IDLE terminated");
		return;
	}
	if (s->dirty)
		idle_sync(s);
}

static void
idle_sync(struct imapd_sess *s)
{
	if (s->syncing || s->state != IMAPD_SELECTED)
		return;
	s->syncing = true;
	imapd__sync(s, true, idle_synced);
}

void
imapd__idle_kick(struct imapd_sess *s)
{
	if (s->idling)
		idle_sync(s);
}

static void
cmd_idle(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	if (imapd__nargs(a, e) != 0) {
		imapd__bad(s, "IDLE takes no arguments");
		return;
	}
	imapd__write(s, "+ idling\r\n", 10);
	s->idling = true;
	/* Not busy: the input is read for DONE; changes are told as they come. */
	s->base.busy = false;
	if (s->dirty)
		idle_sync(s);
}

/* idle_line - a line during IDLE: DONE ends it. */
static void
idle_line(struct imapd_sess *s, const char *line, size_t len)
{
	s->idling = false;
	s->base.busy = true;
	if (len != 4 || strncasecmp(line, "DONE", 4) != 0) {
		imapd__bad(s, "Expected DONE to end IDLE");
		return;
	}
	if (s->syncing)
		return; /* idle_synced answers */
	imapd__tagged(s, "OK", NULL, "IDLE terminated");
}

/* --- not authenticated ----------------------------------------------------------------- */

static void
limits(const struct imapd_sess *s, struct imap_limits *lim)
{
	const struct config *cfg = imapd__srv(s)->cfg;

	imap_limits_default(lim, s->state == IMAPD_NOAUTH);
	if (s->state != IMAPD_NOAUTH) {
		/* APPEND: a message as large as submission takes. */
		lim->max_literal = cfg->relay.max_message_size;
		lim->max_command = cfg->relay.max_message_size + IMAP_LINE_MAX;
	}
}

static void
set_limits(struct imapd_sess *s)
{
	struct imap_limits lim;

	limits(s, &lim);
	imap_reader_set_limits(&s->rd, &lim);
}

/* reader_reset - a new reader: whatever the old one held is dropped. */
static void
reader_reset(struct imapd_sess *s)
{
	struct imap_limits lim;

	imap_reader_free(&s->rd);
	limits(s, &lim);
	imap_reader_init(&s->rd, &lim);
}

static void
user_add(struct imapd_sess *s)
{
	struct imapd *srv = imapd__srv(s);
	size_t b = fnv1a32_str(FNV1A32_INIT, s->base.user) % srv->nbuckets;

	s->unext = srv->users[b];
	if (s->unext != NULL)
		s->unext->uprev = s;
	s->uprev = NULL;
	srv->users[b] = s;
	s->in_users = true;
}

static void
user_del(struct imapd_sess *s)
{
	struct imapd *srv = imapd__srv(s);
	size_t b;

	if (!s->in_users)
		return;
	b = fnv1a32_str(FNV1A32_INIT, s->base.user) % srv->nbuckets;
	if (s->uprev != NULL)
		s->uprev->unext = s->unext;
	else
		srv->users[b] = s->unext;
	if (s->unext != NULL)
		s->unext->uprev = s->uprev;
	s->in_users = false;
}

static void
on_login(struct msrv_sess *b, enum msrv_login_result r, const struct auth_user *user)
{
	struct imapd_sess *s = (struct imapd_sess *)b;

	(void)user;
	switch (r) {
	case MSRV_LOGIN_OK:
		s->state = IMAPD_AUTH;
		set_limits(s);
		user_add(s);
		log_info(C, "login", "sid=%s client=%s user=%s result=ok tls=%s", b->sid, b->client,
		    b->user, conn_tls_version(b->conn) ? conn_tls_version(b->conn) : "none");
		imapd__tagged(s, "OK", "CAPABILITY " CAPS_AUTHED, "Logged in");
		return;
	case MSRV_LOGIN_FAILED:
		imapd__tagged(s, "NO", "AUTHENTICATIONFAILED", "Authentication failed");
		break;
	case MSRV_LOGIN_LOCKED:
		imapd__tagged(s, "NO", "UNAVAILABLE",
		    "Too many failed logins from your address, try again later");
		break;
	case MSRV_LOGIN_TEMPFAIL:
		imapd__tagged(s, "NO", "UNAVAILABLE", "Temporary failure, try again later");
		break;
	}
	if (b->auth_failures >= 3 && !imapd__gone(s)) {
		log_warn(C, "dropped", "sid=%s client=%s reason=auth_failures failures=%u", b->sid,
		    b->client, b->auth_failures);
		imapd__untagged(s, "BYE Too many failed logins");
		msrv_close(b);
	}
}

static bool
need_tls(struct imapd_sess *s)
{
	if (s->base.tls)
		return false;
	imapd__tagged(s, "NO", "PRIVACYREQUIRED", "Log in over TLS: STARTTLS first");
	return true;
}

static void
cmd_starttls(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	if (imapd__nargs(a, e) != 0) {
		imapd__bad(s, "STARTTLS takes no arguments");
		return;
	}
	if (s->base.tls) {
		imapd__bad(s, "TLS is already on");
		return;
	}
	imapd__write(s, s->cmd.tag, strlen(s->cmd.tag));
	imapd__write(s, " OK Begin TLS negotiation now\r\n", 31);
	imap_cmd_free(&s->cmd);
	memset(&s->cmd, 0, sizeof s->cmd);
	/* What the reader holds of a next command came in plaintext: dropped. */
	reader_reset(s);
	s->base.busy = false;
	msrv_starttls(&s->base);
}

static void
cmd_login(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	const struct imap_tok *p;

	if (imapd__nargs(a, e) != 2 || !imap_tok_is_astring(a) ||
	    !imap_tok_is_astring(p = imap_tok_next(a))) {
		imapd__bad(s, "Syntax: LOGIN user password");
		return;
	}
	if (need_tls(s))
		return;
	msrv_login(&s->base, a->s, a->len, p->s, p->len, on_login);
}

static void
auth_plain(struct imapd_sess *s, const char *b64, size_t len)
{
	unsigned char msg[1024];
	char azid[SASL_PART_MAX + 1], acid[SASL_PART_MAX + 1], pw[SASL_PART_MAX + 1];
	size_t n;

	if (sasl_base64_decode(b64, len, msg, sizeof msg, &n) < 0) {
		imapd__bad(s, "Invalid base64 data");
		return;
	}
	if (sasl_plain_split(msg, n, azid, sizeof azid, acid, sizeof acid, pw, sizeof pw) < 0) {
		explicit_bzero(msg, sizeof msg);
		imapd__bad(s, "Malformed PLAIN response");
		return;
	}
	explicit_bzero(msg, sizeof msg);
	/* Acting for another user is not offered: it fails (and counts) like a wrong password. */
	if (azid[0] != '\0' && strcmp(azid, acid) != 0)
		explicit_bzero(pw, sizeof pw);
	msrv_login(&s->base, acid, strlen(acid), pw, strlen(pw), on_login);
	explicit_bzero(pw, sizeof pw);
}

static void
cmd_authenticate(struct imapd_sess *s, const struct imap_tok *a, const struct imap_tok *e)
{
	size_t n = imapd__nargs(a, e);
	const struct imap_tok *ir;

	if (n < 1 || n > 2 || a->type != IMAP_TOK_ATOM) {
		imapd__bad(s, "Syntax: AUTHENTICATE mechanism [initial-response]");
		return;
	}
	if (!imap_tok_eq(a, "PLAIN")) {
		imapd__tagged(s, "NO", NULL, "Unsupported mechanism (PLAIN is offered)");
		return;
	}
	if (need_tls(s))
		return;
	if (n == 1) {
		s->authx = true;
		s->base.busy = false;
		imapd__write(s, "+ \r\n", 4);
		return;
	}
	ir = imap_tok_next(a);
	if (ir->type != IMAP_TOK_ATOM) {
		imapd__bad(s, "Invalid initial response");
		return;
	}
	/* RFC 4959: "=" is an empty initial response. */
	auth_plain(s, ir->s, ir->len == 1 && ir->s[0] == '=' ? 0 : ir->len);
}

static void
auth_line(struct imapd_sess *s, const char *line, size_t len)
{
	s->authx = false;
	s->base.busy = true;
	if (len == 1 && line[0] == '*') {
		imapd__tagged(s, "BAD", NULL, "Authentication cancelled");
		return;
	}
	auth_plain(s, line, len);
}

/* --- dispatch ---------------------------------------------------------------------------- */

enum {
	S_NOAUTH = 1 << IMAPD_NOAUTH,
	S_AUTH = 1 << IMAPD_AUTH,
	S_SEL = 1 << IMAPD_SELECTED,
	S_ANY = S_NOAUTH | S_AUTH | S_SEL,
	S_IN = S_AUTH | S_SEL,
};

static const struct command {
	const char *name;
	unsigned states;
	bool uid_ok; /* may follow UID */
	imapd_cmd_fn *fn;
} commands[] = {
	{ "CAPABILITY", S_ANY, false, cmd_capability },
	{ "NOOP", S_ANY, false, cmd_noop },
	{ "LOGOUT", S_ANY, false, cmd_logout },
	{ "ID", S_ANY, false, cmd_id },
	{ "STARTTLS", S_NOAUTH, false, cmd_starttls },
	{ "LOGIN", S_NOAUTH, false, cmd_login },
	{ "AUTHENTICATE", S_NOAUTH, false, cmd_authenticate },
	{ "ENABLE", S_AUTH, false, cmd_enable },
	{ "IDLE", S_IN, false, cmd_idle },
	{ "NAMESPACE", S_IN, false, imapd__namespace },
	{ "SELECT", S_IN, false, imapd__select },
	{ "EXAMINE", S_IN, false, imapd__examine },
	{ "CREATE", S_IN, false, imapd__create },
	{ "DELETE", S_IN, false, imapd__delete },
	{ "RENAME", S_IN, false, imapd__rename },
	{ "SUBSCRIBE", S_IN, false, imapd__subscribe },
	{ "UNSUBSCRIBE", S_IN, false, imapd__unsubscribe },
	{ "LIST", S_IN, false, imapd__list },
	{ "LSUB", S_IN, false, imapd__lsub },
	{ "STATUS", S_IN, false, imapd__status },
	{ "APPEND", S_IN, false, imapd__append },
	{ "CHECK", S_SEL, false, imapd__check },
	{ "CLOSE", S_SEL, false, imapd__close },
	{ "UNSELECT", S_SEL, false, imapd__unselect_cmd },
	{ "EXPUNGE", S_SEL, true, imapd__expunge },
	{ "SEARCH", S_SEL, true, imapd__search },
	{ "FETCH", S_SEL, true, imapd__fetch },
	{ "STORE", S_SEL, true, imapd__store },
	{ "COPY", S_SEL, true, imapd__copy },
	{ "MOVE", S_SEL, true, imapd__move },
};

static const struct command *
find_command(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strlen(commands[i].name) == len && strncasecmp(commands[i].name, name, len) == 0)
			return &commands[i];
	return NULL;
}

static const char *
state_name(enum imapd_state st)
{
	static const char *const names[] = { "not authenticated", "authenticated", "selected",
		"logout" };

	return names[st];
}

static void
dispatch(struct imapd_sess *s)
{
	const struct imap_tok *args = s->cmd.args;
	const struct imap_tok *end = args != NULL ? args + s->cmd.nargs : NULL;
	const struct command *c;
	const char *name = s->cmd.name;
	size_t nlen = strlen(name);

	s->base.busy = true;
	if (nlen == 3 && strncasecmp(name, "UID", 3) == 0) {
		if (args == NULL || args >= end || args->type != IMAP_TOK_ATOM) {
			imapd__bad(s, "Syntax: UID command arguments");
			return;
		}
		c = find_command(args->s, args->len);
		if (c == NULL || !c->uid_ok) {
			imapd__bad(s, "UID takes FETCH, SEARCH, STORE, COPY, MOVE or EXPUNGE");
			return;
		}
		s->uid = true;
		args = imap_tok_next(args);
	} else {
		c = find_command(name, nlen);
		if (c == NULL) {
			imapd__bad(s, "Unknown command %.40s", name);
			return;
		}
	}
	if (!(c->states & (1u << s->state))) {
		if (s->state == IMAPD_NOAUTH)
			imapd__bad(s, "%s: log in first", c->name);
		else
			imapd__bad(s, "%s is not allowed in the %s state", c->name, state_name(s->state));
		return;
	}
	c->fn(s, args != NULL && args < end ? args : end, end);
}

/* --- input --------------------------------------------------------------------------------- */

/* line_mode - IDLE's DONE or an AUTHENTICATE response: one plain line. */
static bool
line_mode(struct imapd_sess *s)
{
	const char *line;
	size_t len;
	bool bare;
	int rc;

	rc = buf_getline(&s->base.in, AUTH_LINE_MAX, &line, &len, &bare);
	if (rc == BUF_NEEDMORE)
		return false;
	if (rc == BUF_TOOLONG) {
		if (s->idling) {
			s->idling = false;
			s->base.busy = true;
			imapd__bad(s, "Expected DONE to end IDLE");
		} else {
			s->authx = false;
			s->base.busy = true;
			imapd__bad(s, "AUTHENTICATE response too long");
		}
		return true;
	}
	if (s->idling)
		idle_line(s, line, len);
	else
		auth_line(s, line, len);
	return true;
}

static void
reader_step(struct imapd_sess *s)
{
	struct buf *in = &s->base.in;
	enum imap_rd_status st;
	char err[IMAP_ERR_MAX];
	const char *tag;
	size_t used = 0;
	int rc;

	st = imap_reader_feed(&s->rd, buf_rptr(in), buf_unread(in), &used);
	buf_consume(in, used);
	switch (st) {
	case IMAP_RD_NEEDMORE:
		return;
	case IMAP_RD_CONTINUE:
		imapd__write(s, "+ Ready for literal data\r\n", 26);
		return;
	case IMAP_RD_ERROR:
		tag = imap_reader_tag(&s->rd);
		msrv_error(&s->base);
		if (tag != NULL)
			rawline(s, "%s BAD %s", tag, imap_reader_error(&s->rd));
		else
			imapd__untagged(s, "BAD %s", imap_reader_error(&s->rd));
		return;
	case IMAP_RD_FATAL:
		imapd__untagged(s, "BYE %s", imap_reader_error(&s->rd));
		log_warn(C, "dropped", "sid=%s client=%s reason=\"%s\"", s->base.sid, s->base.client,
		    imap_reader_error(&s->rd));
		msrv_close(&s->base);
		return;
	case IMAP_RD_COMMAND:
		rc = imap_reader_take(&s->rd, &s->cmd, err, sizeof err);
		if (rc == -EBADMSG) {
			msrv_error(&s->base);
			imapd__untagged(s, "BAD %s", err);
			imap_cmd_free(&s->cmd);
			memset(&s->cmd, 0, sizeof s->cmd);
			return;
		}
		if (rc < 0) {
			s->base.busy = true;
			imapd__bad(s, "%s", err);
			return;
		}
		dispatch(s);
		return;
	}
}

/* p_input - run what is buffered: commands one at a time, or IDLE's and AUTHENTICATE's lines. */
static void
p_input(struct msrv_sess *b)
{
	struct imapd_sess *s = (struct imapd_sess *)b;

	while (!b->busy && !imapd__gone(s) && !conn_is_closing(b->conn) && !msrv_output_full(b) &&
	    buf_unread(&b->in) > 0) {
		if (s->idling || s->authx) {
			if (!line_mode(s))
				break;
		} else {
			size_t before = buf_unread(&b->in);

			reader_step(s);
			if (!b->busy && buf_unread(&b->in) == before)
				break;
		}
		if (b->errors >= imapd__srv(s)->cfg->policy.max_errors && !imapd__gone(s) &&
		    !conn_is_closing(b->conn)) {
			log_warn(C, "dropped", "sid=%s client=%s reason=max_errors", b->sid, b->client);
			imapd__untagged(s, "BYE Too many errors");
			msrv_close(b);
		}
	}
}

static void
p_start(struct msrv_sess *b)
{
	struct imapd_sess *s = (struct imapd_sess *)b;

	reader_reset(s);
	imapd__untagged(s, "OK [CAPABILITY %s] %s kurier IMAP ready", caps(s),
	    imapd__srv(s)->cfg->server.hostname);
}

static void
p_timeout(struct msrv_sess *b)
{
	/* RFC 3501 5.4: the autologout timer. */
	imapd__untagged((struct imapd_sess *)b, "BYE Autologout: idle for too long");
}

static void
p_shutdown(struct msrv_sess *b)
{
	imapd__untagged((struct imapd_sess *)b, "BYE Server shutting down, try again later");
}

static void
p_drain(struct msrv_sess *b)
{
	struct imapd_sess *s = (struct imapd_sess *)b;
	void (*fn)(struct imapd_sess *) = s->resume;

	if (fn != NULL) {
		s->resume = NULL;
		fn(s);
	}
}

static void
p_closed(struct msrv_sess *b, int status)
{
	struct imapd_sess *s = (struct imapd_sess *)b;
	void (*fn)(struct imapd_sess *) = s->resume;

	/* A command waiting for its output to drain ends now (it sees the client gone). */
	if (fn != NULL) {
		s->resume = NULL;
		fn(s);
	}

	if (s->state == IMAPD_AUTH || s->state == IMAPD_SELECTED)
		log_info(C, "logout", "sid=%s client=%s user=%s fetched=%u expunged=%u reason=%s", b->sid,
		    b->client, b->user, s->nfetched, s->nexpunged,
		    status == 0 ? "closed" : status == UV_EOF ? "disconnect" : uv_strerror(status));
	user_del(s);
}

static void
p_free(struct msrv_sess *b)
{
	struct imapd_sess *s = (struct imapd_sess *)b;

	imapd__unselect(s);
	imap_cmd_free(&s->cmd);
	imap_reader_free(&s->rd);
}

static const struct msrv_proto imap_proto = {
	.name = C,
	.sess_size = sizeof(struct imapd_sess),
	.too_many = "* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
	.too_many_per_ip = "* BYE [UNAVAILABLE] Too many connections from your address, try again later\r\n",
	.start = p_start,
	.input = p_input,
	.timeout = p_timeout,
	.shutdown = p_shutdown,
	.drain = p_drain,
	.closed = p_closed,
	.free = p_free,
};

/* --- the store's announcements ------------------------------------------------------------ */

static void
on_event(void *arg, const struct mbox_event *ev)
{
	struct imapd *srv = arg;
	size_t b = fnv1a32_str(FNV1A32_INIT, ev->user) % srv->nbuckets;

	for (struct imapd_sess *s = srv->users[b], *n; s != NULL; s = n) {
		n = s->unext;
		if (strcmp(s->base.user, ev->user) == 0)
			imapd__event(s, ev);
	}
}

/* --- the server ------------------------------------------------------------------------------ */

int
imapd_open(struct imapd **out, uv_loop_t *loop, const struct config *cfg,
    struct mbox_store *store, struct auth *auth, struct policy *pol, char *err, size_t errsz)
{
	struct msrv_opts opts = { &cfg->mailbox.imap, &cfg->mailbox.imaps, cfg->mailbox.imap_timeout_ms };
	struct imapd *srv;
	int rc;

	if (store == NULL) {
		snprintf(err, errsz, "IMAP needs the mailbox store");
		return -EINVAL;
	}
	srv = xcalloc(1, sizeof *srv);
	srv->cfg = cfg;
	srv->store = store;
	srv->nbuckets = USER_BUCKETS;
	srv->users = xcalloc(srv->nbuckets, sizeof *srv->users);
	if ((rc = mbox_watch_open(&srv->watch, loop, cfg, on_event, srv)) < 0) {
		snprintf(err, errsz, "the store's announcements: %s", uv_strerror(rc));
		free(srv->users);
		free(srv);
		return rc;
	}
	if ((rc = msrv_open(&srv->msrv, loop, cfg, &imap_proto, &opts, auth, pol, srv, err,
	    errsz)) < 0) {
		mbox_watch_close(srv->watch, NULL, NULL);
		free(srv->users);
		free(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

int
imapd_reload_tls(struct imapd *srv, char *err, size_t errsz)
{
	return msrv_reload_tls(srv->msrv, err, errsz);
}

uint16_t
imapd_port(const struct imapd *srv, enum imapd_listener which, unsigned i)
{
	return msrv_port(srv->msrv, which == IMAPD_IMAPS, i);
}

size_t
imapd_sessions(const struct imapd *srv)
{
	return msrv_sessions(srv->msrv);
}

static void
on_watch_closed(void *arg)
{
	struct imapd *srv = arg;
	void (*cb)(void *) = srv->stop_done;
	void *cb_arg = srv->stop_arg;

	free(srv->users);
	free(srv);
	if (cb != NULL)
		cb(cb_arg);
}

static void
on_stopped(void *arg)
{
	struct imapd *srv = arg;

	mbox_watch_close(srv->watch, on_watch_closed, srv);
}

void
imapd_stop(struct imapd *srv, uint64_t grace_ms, void (*done_cb)(void *arg), void *arg)
{
	srv->stop_done = done_cb;
	srv->stop_arg = arg;
	msrv_stop(srv->msrv, grace_ms, on_stopped, srv);
}
