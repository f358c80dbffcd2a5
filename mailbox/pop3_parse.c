/*
 * pop3_parse - POP3 command lines.  See pop3_parse.h.
 */
#include "mailbox/pop3_parse.h"

#include <string.h>
#include <strings.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* What each keyword takes. */
enum shape {
	S_NONE,       /* no argument */
	S_NAME,       /* one argument (USER name) */
	S_REST,       /* the rest of the line, not empty (PASS) */
	S_MECH,       /* mechanism [initial-response] (AUTH) */
	S_MSG,        /* message number */
	S_OPT_MSG,    /* [message number] */
	S_MSG_LINES,  /* message number, line count (TOP) */
	S_NAME_DIGEST /* name digest (APOP) */
};

static const struct verb_def {
	const char *name;
	enum pop3_verb verb;
	enum shape shape;
	const char *syntax;
} verbs[] = {
	{ "USER", POP3_USER, S_NAME, "syntax: USER name" },
	{ "PASS", POP3_PASS, S_REST, "syntax: PASS password" },
	{ "AUTH", POP3_AUTH, S_MECH, "syntax: AUTH mechanism [initial-response]" },
	{ "STLS", POP3_STLS, S_NONE, "syntax: STLS" },
	{ "CAPA", POP3_CAPA, S_NONE, "syntax: CAPA" },
	{ "QUIT", POP3_QUIT, S_NONE, "syntax: QUIT" },
	{ "STAT", POP3_STAT, S_NONE, "syntax: STAT" },
	{ "LIST", POP3_LIST, S_OPT_MSG, "syntax: LIST [msg]" },
	{ "RETR", POP3_RETR, S_MSG, "syntax: RETR msg" },
	{ "DELE", POP3_DELE, S_MSG, "syntax: DELE msg" },
	{ "NOOP", POP3_NOOP, S_NONE, "syntax: NOOP" },
	{ "RSET", POP3_RSET, S_NONE, "syntax: RSET" },
	{ "TOP", POP3_TOP, S_MSG_LINES, "syntax: TOP msg n" },
	{ "UIDL", POP3_UIDL, S_OPT_MSG, "syntax: UIDL [msg]" },
	{ "APOP", POP3_APOP, S_NAME_DIGEST, "syntax: APOP name digest" },
};

const char *
pop3_verb_name(enum pop3_verb v)
{
	for (size_t i = 0; i < NELEM(verbs); i++)
		if (verbs[i].verb == v)
			return verbs[i].name;
	return "?";
}

/* next_word - the word at *p (spaces before it skipped); false at the end. */
static bool
next_word(const char **p, const char *end, const char **w, size_t *wn)
{
	const char *s = *p;

	while (s < end && *s == ' ')
		s++;
	if (s == end)
		return false;
	*w = s;
	while (s < end && *s != ' ')
		s++;
	*wn = (size_t)(s - *w);
	*p = s;
	return true;
}

/* number - w[0..n) as a decimal 0..UINT32_MAX without sign or spaces. */
static bool
number(const char *w, size_t n, uint32_t *v)
{
	uint64_t x = 0;

	if (n == 0 || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (w[i] < '0' || w[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(w[i] - '0');
	}
	if (x > UINT32_MAX)
		return false;
	*v = (uint32_t)x;
	return true;
}

static bool
at_end(const char *p, const char *end)
{
	while (p < end && *p == ' ')
		p++;
	return p == end;
}

/* msg_arg - a message number word; NULL or the error. */
static const char *
msg_arg(const char **p, const char *end, uint32_t *v, const char *syntax)
{
	const char *w;
	size_t n;

	if (!next_word(p, end, &w, &n))
		return syntax;
	if (!number(w, n, v) || *v == 0)
		return "invalid message number";
	return NULL;
}

static const char *
args(const struct verb_def *d, const char *p, const char *end, struct pop3_cmd *c)
{
	const char *w, *err;
	size_t n;

	switch (d->shape) {
	case S_NONE:
		return at_end(p, end) ? NULL : d->syntax;
	case S_NAME:
		if (!next_word(&p, end, &w, &n) || !at_end(p, end))
			return d->syntax;
		if (n > POP3_ARG_MAX)
			return "argument longer than 40 characters";
		c->arg = w;
		c->arglen = n;
		return NULL;
	case S_REST:
		/* One space, then the password as it is (it may hold spaces). */
		if (p == end || *p != ' ' || p + 1 == end)
			return d->syntax;
		c->arg = p + 1;
		c->arglen = (size_t)(end - p - 1);
		return NULL;
	case S_MECH:
		/* A bare AUTH asks for the mechanisms (RFC 1734 kept by clients). */
		if (!next_word(&p, end, &w, &n))
			return NULL;
		c->arg = w;
		c->arglen = n;
		if (next_word(&p, end, &w, &n)) {
			if (!at_end(p, end))
				return d->syntax;
			c->initial = w;
			c->initial_len = n;
		}
		return NULL;
	case S_MSG:
		if ((err = msg_arg(&p, end, &c->msg, d->syntax)) != NULL)
			return err;
		return at_end(p, end) ? NULL : d->syntax;
	case S_OPT_MSG:
		if (at_end(p, end))
			return NULL;
		if ((err = msg_arg(&p, end, &c->msg, d->syntax)) != NULL)
			return err;
		c->has_msg = true;
		return at_end(p, end) ? NULL : d->syntax;
	case S_MSG_LINES:
		if ((err = msg_arg(&p, end, &c->msg, d->syntax)) != NULL)
			return err;
		if (!next_word(&p, end, &w, &n) || !at_end(p, end))
			return d->syntax;
		if (!number(w, n, &c->lines))
			return "invalid line count";
		return NULL;
	case S_NAME_DIGEST:
		if (!next_word(&p, end, &w, &n) || !next_word(&p, end, &w, &n) ||
		    !at_end(p, end))
			return d->syntax;
		return NULL;
	}
	return d->syntax;
}

const char *
pop3_parse(const char *line, size_t len, struct pop3_cmd *c)
{
	const char *end = line + len, *p = line, *w;
	size_t n;

	memset(c, 0, sizeof *c);
	if (memchr(line, '\0', len) != NULL)
		return "NUL byte in command";
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < ' ' || line[i] == 0x7f)
			return "control character in command";
	if (!next_word(&p, end, &w, &n))
		return "empty command";
	for (size_t i = 0; i < NELEM(verbs); i++) {
		if (strlen(verbs[i].name) == n && strncasecmp(verbs[i].name, w, n) == 0) {
			c->verb = verbs[i].verb;
			return args(&verbs[i], p, end, c);
		}
	}
	return "unknown command";
}

void
pop3_put_message(struct buf *out, const char *msg, size_t len, bool top, uint32_t lines)
{
	const char *p = msg, *end = msg + len;
	bool in_body = false;
	uint32_t body_lines = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (top && in_body && body_lines++ >= lines)
			break;
		if (n > 0 && p[0] == '.')
			buf_appendc(out, '.');
		buf_append(out, p, n);
		buf_append(out, "\r\n", 2);
		if (n == 0)
			in_body = true;
		p = nl != NULL ? nl + 1 : end;
	}
	buf_append(out, ".\r\n", 3);
}
