/*
 * imap_parse - the IMAP command reader (a state machine over the bytes
 * of a connection) and the tokeniser of complete commands.  See
 * imap_parse.h.
 */
#include "mailbox/imap_parse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"
#include "core/xmalloc.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* imap_tail states: how much of "{digits[+]}\r" ends the line so far. */
enum {
	TAIL_NONE,
	TAIL_OPEN,   /* "{" */
	TAIL_DIGITS, /* "{1" */
	TAIL_PLUS,   /* "{1+" */
	TAIL_CLOSE,  /* "{1}" */
	TAIL_CR,     /* "{1}\r" */
};

#define TAIL_DIGITS_MAX 255

void
imap_limits_default(struct imap_limits *lim, bool before_login)
{
	lim->max_line = IMAP_LINE_MAX;
	lim->max_literal = before_login ? IMAP_LITERAL_PRELOGIN : IMAP_COMMAND_MAX;
	lim->max_command = IMAP_COMMAND_MAX;
	lim->abs_literal = IMAP_LITERAL_ABS_MAX;
	lim->max_depth = IMAP_DEPTH_MAX;
	lim->max_tokens = IMAP_TOKENS_MAX;
	lim->before_login = before_login;
}

/* --- the reader ---------------------------------------------------------------------- */

static void
tail_reset(struct imap_tail *t)
{
	memset(t, 0, sizeof *t);
}

/* tail_push - follow one byte of a line (its LF excluded). */
static void
tail_push(struct imap_tail *t, unsigned char c)
{
	if (c == '{') {
		tail_reset(t);
		t->state = TAIL_OPEN;
		return;
	}
	switch (t->state) {
	case TAIL_OPEN:
	case TAIL_DIGITS:
		if (c >= '0' && c <= '9') {
			unsigned d = c - '0';

			if (t->n > (UINT64_MAX - d) / 10)
				t->overflow = true;
			else
				t->n = t->n * 10 + d;
			if (t->digits < TAIL_DIGITS_MAX)
				t->digits++;
			t->state = TAIL_DIGITS;
			return;
		}
		if (t->state == TAIL_DIGITS && c == '+') {
			t->nonsync = true;
			t->state = TAIL_PLUS;
			return;
		}
		if (t->state == TAIL_DIGITS && c == '}') {
			t->state = TAIL_CLOSE;
			return;
		}
		break;
	case TAIL_PLUS:
		if (c == '}') {
			t->state = TAIL_CLOSE;
			return;
		}
		break;
	case TAIL_CLOSE:
		if (c == '\r') {
			t->state = TAIL_CR;
			return;
		}
		break;
	default:
		break;
	}
	t->state = TAIL_NONE;
}

static bool
tail_literal(const struct imap_tail *t)
{
	return t->state == TAIL_CLOSE || t->state == TAIL_CR;
}

void
imap_reader_init(struct imap_reader *r, const struct imap_limits *lim)
{
	memset(r, 0, sizeof *r);
	r->lim = *lim;
	if (r->lim.max_depth > IMAP_DEPTH_HARD_MAX)
		r->lim.max_depth = IMAP_DEPTH_HARD_MAX;
	buf_init(&r->cmd);
	r->state = IMAP_RS_LINE;
}

void
imap_reader_free(struct imap_reader *r)
{
	buf_free(&r->cmd);
	r->state = IMAP_RS_DEAD;
}

void
imap_reader_set_limits(struct imap_reader *r, const struct imap_limits *lim)
{
	r->lim = *lim;
	if (r->lim.max_depth > IMAP_DEPTH_HARD_MAX)
		r->lim.max_depth = IMAP_DEPTH_HARD_MAX;
}

/* start_over - idle again: no buffer, nothing counted. */
static void
start_over(struct imap_reader *r)
{
	buf_free(&r->cmd);
	r->state = IMAP_RS_LINE;
	r->line_len = 0;
	r->total = 0;
	r->lit_left = 0;
	r->failed = false;
	tail_reset(&r->tail);
}

/* grab_tag - remember the tag at the start of the stored command, if valid. */
static void
grab_tag(struct imap_reader *r)
{
	const char *sp;

	r->tag_known = false;
	if (r->cmd.len == 0)
		return;
	sp = memchr(r->cmd.data, ' ', r->cmd.len);
	if (sp == NULL || !imap_valid_tag(r->cmd.data, (size_t)(sp - r->cmd.data)) ||
	    (size_t)(sp - r->cmd.data) > IMAP_TAG_MAX)
		return;
	memcpy(r->tag, r->cmd.data, (size_t)(sp - r->cmd.data));
	r->tag[sp - r->cmd.data] = '\0';
	r->tag_known = true;
}

/*
 * refuse - the command breaks a rule: keep the tag and the text, drop
 * what was stored and discard the rest of the command.
 */
static void
refuse(struct imap_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
refuse(struct imap_reader *r, const char *fmt, ...)
{
	va_list ap;

	grab_tag(r);
	va_start(ap, fmt);
	str_verr(r->err, sizeof r->err, -EINVAL, fmt, ap);
	va_end(ap);
	buf_free(&r->cmd);
	r->failed = true;
	r->state = IMAP_RS_SKIPLINE;
}

static enum imap_rd_status
fatal(struct imap_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static enum imap_rd_status
fatal(struct imap_reader *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	str_verr(r->err, sizeof r->err, -EINVAL, fmt, ap);
	va_end(ap);
	buf_free(&r->cmd);
	r->tag_known = false;
	r->state = IMAP_RS_DEAD;
	return IMAP_RD_FATAL;
}

/* failed_end - the refused command's last byte is read: report it. */
static enum imap_rd_status
failed_end(struct imap_reader *r)
{
	start_over(r);
	return IMAP_RD_ERROR;
}

static const char *
login_note(const struct imap_reader *r)
{
	return r->lim.before_login ? " before login" : "";
}

/* literal_check - a literal of t->n bytes was announced; decide what follows. */
static enum imap_rd_status
literal_check(struct imap_reader *r, const struct imap_tail *t)
{
	uint64_t n = t->n;

	if (t->overflow)
		return fatal(r, "literal size of %u digits is beyond any limit", t->digits);
	if (n > r->lim.abs_literal)
		return fatal(r, "literal of %" PRIu64 " bytes is beyond the %" PRIu64 "-byte cap",
		    n, r->lim.abs_literal);
	if (r->state == IMAP_RS_LINE) {
		if (n > r->lim.max_literal)
			refuse(r, "literal of %" PRIu64 " bytes exceeds the %" PRIu64 "-byte limit%s",
			    n, r->lim.max_literal, login_note(r));
		else if (n > r->lim.max_command - r->total)
			refuse(r, "command longer than %" PRIu64 " bytes", r->lim.max_command);
	}
	if (r->state == IMAP_RS_SKIPLINE) {
		/* A refused synchronising literal: the client sends nothing more. */
		if (!t->nonsync)
			return failed_end(r);
		/*
		 * A refused LITERAL+ literal is on its way: a small one is read
		 * and dropped, so the next command is read in step; a large one
		 * would keep the client waiting for an answer until it sent it
		 * all, so the connection ends now (RFC 7888 4).
		 */
		if (n > IMAP_SKIP_MAX)
			return fatal(r, "non-synchronising literal of %" PRIu64
			    " bytes exceeds the %" PRIu64 "-byte limit%s", n, r->lim.max_literal,
			    login_note(r));
		r->state = IMAP_RS_SKIPLIT;
		r->lit_left = n;
		return IMAP_RD_NEEDMORE;
	}
	/*
	 * n fits the limits; the buffer grows as the bytes come, not now, so
	 * an announcement alone allocates nothing.
	 */
	r->state = IMAP_RS_LITERAL;
	r->lit_left = n;
	return t->nonsync ? IMAP_RD_NEEDMORE : IMAP_RD_CONTINUE;
}

/* line_end - an LF ended the current line. */
static enum imap_rd_status
line_end(struct imap_reader *r)
{
	struct imap_tail t = r->tail;

	tail_reset(&r->tail);
	r->line_len = 0;
	if (r->state == IMAP_RS_LINE && r->total > r->lim.max_command)
		refuse(r, "command longer than %" PRIu64 " bytes", r->lim.max_command);
	if (r->state == IMAP_RS_LINE)
		buf_appendc(&r->cmd, '\n');
	if (tail_literal(&t))
		return literal_check(r, &t);
	if (r->state == IMAP_RS_SKIPLINE)
		return failed_end(r);
	r->state = IMAP_RS_DONE;
	return IMAP_RD_COMMAND;
}

/* line_byte - one byte of a line, stored or discarded. */
static enum imap_rd_status
line_byte(struct imap_reader *r, unsigned char c)
{
	r->total++;
	if (c == '\n')
		return line_end(r);
	tail_push(&r->tail, c);
	r->line_len++;
	if (r->state == IMAP_RS_SKIPLINE)
		return IMAP_RD_NEEDMORE;
	if (c == '\0')
		refuse(r, "NUL byte in command");
	else if (r->line_len > r->lim.max_line + 1 ||
	    (r->line_len == r->lim.max_line + 1 && c != '\r'))
		/* A CR right after max_line bytes may still end the line. */
		refuse(r, "line longer than %zu bytes", r->lim.max_line);
	else if (r->total > r->lim.max_command)
		refuse(r, "command longer than %" PRIu64 " bytes", r->lim.max_command);
	else
		buf_appendc(&r->cmd, (char)c);
	return IMAP_RD_NEEDMORE;
}

/* literal_bytes - store or discard up to len bytes of a literal; returns how many. */
static size_t
literal_bytes(struct imap_reader *r, const char *p, size_t len)
{
	size_t n = len;

	if (n > r->lit_left)
		n = (size_t)r->lit_left;
	if (r->state == IMAP_RS_LITERAL)
		buf_append(&r->cmd, p, n);
	r->lit_left -= n;
	r->total += n;
	if (r->lit_left == 0)
		r->state = r->state == IMAP_RS_LITERAL ? IMAP_RS_LINE : IMAP_RS_SKIPLINE;
	return n;
}

enum imap_rd_status
imap_reader_feed(struct imap_reader *r, const char *data, size_t len, size_t *used)
{
	enum imap_rd_status st = IMAP_RD_NEEDMORE;
	size_t i = 0;

	while (st == IMAP_RD_NEEDMORE) {
		if (r->state == IMAP_RS_DONE) {
			st = IMAP_RD_COMMAND;
			break;
		}
		if (r->state == IMAP_RS_DEAD) {
			st = IMAP_RD_FATAL;
			break;
		}
		if ((r->state == IMAP_RS_LITERAL || r->state == IMAP_RS_SKIPLIT) &&
		    r->lit_left == 0) {
			/* {0}: nothing to read. */
			literal_bytes(r, data + i, 0);
			continue;
		}
		if (i == len)
			break;
		if (r->state == IMAP_RS_LITERAL || r->state == IMAP_RS_SKIPLIT)
			i += literal_bytes(r, data + i, len - i);
		else
			st = line_byte(r, (unsigned char)data[i++]);
	}
	*used = i;
	return st;
}

void
imap_reader_reject(struct imap_reader *r)
{
	if (r->state == IMAP_RS_LITERAL)
		start_over(r);
}

const char *
imap_reader_error(const struct imap_reader *r)
{
	return r->err;
}

const char *
imap_reader_tag(const struct imap_reader *r)
{
	return r->tag_known ? r->tag : NULL;
}

bool
imap_reader_idle(const struct imap_reader *r)
{
	return r->state == IMAP_RS_LINE && r->total == 0;
}

int
imap_reader_take(struct imap_reader *r, struct imap_cmd *cmd, char *err, size_t errsz)
{
	size_t len = 0;
	char *data;

	memset(cmd, 0, sizeof *cmd);
	if (r->state != IMAP_RS_DONE)
		return str_err(err, errsz, -EAGAIN, "no complete command");
	data = buf_steal(&r->cmd, &len);
	start_over(r);
	return imap_cmd_parse(cmd, data, len, &r->lim, err, errsz);
}

/* --- the tokeniser ----------------------------------------------------------------------- */

struct tokeniser {
	char *p;         /* next byte */
	char *end;
	const struct imap_limits *lim;
	struct imap_tok *v;
	size_t n, cap;
	size_t open[IMAP_DEPTH_HARD_MAX]; /* indexes of the lists being read */
	unsigned depth;
	char *err;
	size_t errsz;
};

/* RFC 3501 9: ATOM-CHAR, the byte sets the tokeniser works with. */
static bool
atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\]", c) == NULL;
}

bool
imap_valid_tag(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!atom_char((unsigned char)s[i]) || s[i] == '+')
			return false;
	return true;
}

bool
imap_tok_is_astring(const struct imap_tok *t)
{
	return t->type != IMAP_TOK_LIST;
}

bool
imap_tok_eq(const struct imap_tok *t, const char *word)
{
	size_t n = strlen(word);

	return (t->type == IMAP_TOK_ATOM || t->type == IMAP_TOK_NIL ||
	    t->type == IMAP_TOK_NUMBER) && t->len == n && strncasecmp(t->s, word, n) == 0;
}

static int
tk_err(struct tokeniser *tk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
tk_err(struct tokeniser *tk, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	str_verr(tk->err, tk->errsz, -EINVAL, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* push - a new token, counted as a member of the innermost open list. */
static struct imap_tok *
push(struct tokeniser *tk, enum imap_tok_type type)
{
	struct imap_tok *t;

	if (tk->n >= tk->lim->max_tokens)
		return NULL;
	if (tk->n == tk->cap) {
		tk->cap = tk->cap ? tk->cap * 2 : 16;
		if (tk->cap > tk->lim->max_tokens)
			tk->cap = tk->lim->max_tokens;
		tk->v = xreallocarray(tk->v, tk->cap, sizeof *tk->v);
	}
	if (tk->depth > 0)
		tk->v[tk->open[tk->depth - 1]].n++;
	t = &tk->v[tk->n++];
	memset(t, 0, sizeof *t);
	t->type = type;
	t->skip = 1;
	return t;
}

/* at_eol - whether p starts the line end (LF or CRLF). */
static bool
at_eol(const struct tokeniser *tk)
{
	return tk->p < tk->end && (tk->p[0] == '\n' ||
	    (tk->p[0] == '\r' && tk->p + 1 < tk->end && tk->p[1] == '\n'));
}

static void
skip_eol(struct tokeniser *tk)
{
	tk->p += tk->p[0] == '\r' ? 2 : 1;
}

static int
byte_err(struct tokeniser *tk, unsigned char c, const char *where)
{
	if (c == '\0')
		return tk_err(tk, "NUL byte in command");
	if (c >= 0x80)
		return tk_err(tk, "8-bit byte in %s", where);
	if (c == '\r' || c == '\n')
		return tk_err(tk, "CR or LF inside %s", where);
	return tk_err(tk, "control byte 0x%02x in %s", c, where);
}

static int
quoted(struct tokeniser *tk)
{
	struct imap_tok *t = push(tk, IMAP_TOK_QUOTED);
	char *w;

	if (t == NULL)
		return tk_err(tk, "more than %zu arguments", tk->lim->max_tokens);
	w = ++tk->p;
	t->s = w;
	for (;;) {
		unsigned char c;

		if (tk->p == tk->end || *tk->p == '\n' || *tk->p == '\r')
			return tk_err(tk, "unterminated quoted string");
		c = (unsigned char)*tk->p++;
		if (c == '"')
			break;
		if (c == '\0')
			return tk_err(tk, "NUL byte in quoted string");
		if (c == '\\') {
			if (tk->p == tk->end || (*tk->p != '\\' && *tk->p != '"'))
				return tk_err(tk, "bad escape in quoted string (only \\\\ and \\\")");
			c = (unsigned char)*tk->p++;
		}
		*w++ = (char)c;
	}
	t->len = (size_t)(w - t->s);
	return 0;
}

static int
literal(struct tokeniser *tk)
{
	struct imap_tok *t;
	uint64_t n = 0;
	bool digits = false, nonsync = false;

	tk->p++;
	while (tk->p < tk->end && *tk->p >= '0' && *tk->p <= '9') {
		unsigned d = (unsigned)(*tk->p++ - '0');

		if (n > (UINT64_MAX - d) / 10)
			return tk_err(tk, "literal size too large");
		n = n * 10 + d;
		digits = true;
	}
	if (tk->p < tk->end && *tk->p == '+') {
		nonsync = true;
		tk->p++;
	}
	if (!digits || tk->p == tk->end || *tk->p != '}')
		return tk_err(tk, "bad literal announcement");
	tk->p++;
	if (!at_eol(tk))
		return tk_err(tk, "a literal announcement must end the line");
	skip_eol(tk);
	if (n > (uint64_t)(tk->end - tk->p))
		return tk_err(tk, "literal of %" PRIu64 " bytes is cut short", n);
	t = push(tk, IMAP_TOK_LITERAL);
	if (t == NULL)
		return tk_err(tk, "more than %zu arguments", tk->lim->max_tokens);
	t->s = tk->p;
	t->len = (size_t)n;
	t->nonsync = nonsync;
	tk->p += n;
	return 0;
}

/* The fetch attributes whose atom may hold a [section] with spaces (RFC 3501, 3516). */
static bool
bracket_prefix(const char *s, size_t n)
{
	static const char *const names[] = {
		"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE",
	};

	for (size_t i = 0; i < NELEM(names); i++)
		if (strlen(names[i]) == n && strncasecmp(names[i], s, n) == 0)
			return true;
	return false;
}

/* bracket - from "[" to "]" and an optional <partial>; spaces and parens belong to it. */
static int
bracket(struct tokeniser *tk)
{
	bool inq = false;

	tk->p++;
	for (;;) {
		unsigned char c;

		if (tk->p == tk->end || at_eol(tk))
			return tk_err(tk, "unterminated [section]");
		c = (unsigned char)*tk->p++;
		if (c < 0x20 || c >= 0x7f)
			return byte_err(tk, c, "[section]");
		if (inq && c == '\\' && tk->p < tk->end && (*tk->p == '"' || *tk->p == '\\'))
			tk->p++;
		else if (c == '"')
			inq = !inq;
		else if (!inq && c == '[')
			return tk_err(tk, "'[' inside [section]");
		else if (!inq && c == ']')
			break;
	}
	if (tk->p < tk->end && *tk->p == '<') {
		while (tk->p < tk->end && *tk->p != '>') {
			unsigned char c = (unsigned char)*tk->p;

			if (c != '<' && c != '.' && !(c >= '0' && c <= '9'))
				return tk_err(tk, "bad <partial>");
			tk->p++;
		}
		if (tk->p == tk->end)
			return tk_err(tk, "unterminated <partial>");
		tk->p++;
	}
	return 0;
}

/* classify - an atom made of digits is a NUMBER, "NIL" is NIL. */
static void
classify(struct imap_tok *t)
{
	size_t i;

	for (i = 0; i < t->len && t->s[i] >= '0' && t->s[i] <= '9'; i++)
		;
	if (i == t->len) {
		t->type = IMAP_TOK_NUMBER;
		if (str_to_u64n(t->s, t->len, &t->num) != 0) {
			t->big = true;
			t->num = UINT64_MAX;
		}
	} else if (t->len == 3 && strncasecmp(t->s, "NIL", 3) == 0) {
		t->type = IMAP_TOK_NIL;
	}
}

/*
 * atom - a run of ATOM-CHARs, with the wildcards, "\" and "]" that
 * flags, sequence sets, patterns and astrings use; typed parsers refine.
 */
static int
atom(struct tokeniser *tk)
{
	struct imap_tok *t = push(tk, IMAP_TOK_ATOM);
	char *start = tk->p;
	int rc;

	if (t == NULL)
		return tk_err(tk, "more than %zu arguments", tk->lim->max_tokens);
	while (tk->p < tk->end) {
		unsigned char c = (unsigned char)*tk->p;

		if (c == ' ' || c == '(' || c == ')' || at_eol(tk))
			break;
		if (c == '[' && !t->bracket && bracket_prefix(start, (size_t)(tk->p - start))) {
			t->bracket = true;
			if ((rc = bracket(tk)) < 0)
				return rc;
			continue;
		}
		if (c == '"' || c == '{')
			return tk_err(tk, "'%c' inside an atom", c);
		if (c <= 0x20 || c >= 0x7f)
			return byte_err(tk, c, "atom");
		tk->p++;
	}
	t->s = start;
	t->len = (size_t)(tk->p - start);
	if (t->len == 0)
		return tk_err(tk, "empty argument");
	classify(t);
	return 0;
}

static int
open_list(struct tokeniser *tk)
{
	struct imap_tok *t;

	if (tk->depth >= tk->lim->max_depth)
		return tk_err(tk, "list nested deeper than %u", tk->lim->max_depth);
	t = push(tk, IMAP_TOK_LIST);
	if (t == NULL)
		return tk_err(tk, "more than %zu arguments", tk->lim->max_tokens);
	tk->open[tk->depth++] = tk->n - 1;
	tk->p++;
	return 0;
}

static void
close_list(struct tokeniser *tk)
{
	size_t i = tk->open[--tk->depth];

	tk->v[i].skip = tk->n - i;
	tk->p++;
}

/* args - the arguments after the command name, up to the command's end. */
static int
args(struct tokeniser *tk)
{
	bool need_sep = true;
	int rc;

	for (;;) {
		if (tk->p == tk->end)
			return tk_err(tk, "command without line end");
		if (at_eol(tk)) {
			if (tk->depth > 0)
				return tk_err(tk, "unterminated list: missing ')'");
			skip_eol(tk);
			if (tk->p != tk->end)
				return tk_err(tk, "bytes after the command's end");
			return 0;
		}
		if (*tk->p == ')') {
			if (tk->depth == 0)
				return tk_err(tk, "')' without '('");
			close_list(tk);
			need_sep = true;
			continue;
		}
		if (need_sep) {
			if (*tk->p != ' ')
				return tk_err(tk, "missing space between arguments");
			tk->p++;
			if (tk->p == tk->end || *tk->p == ' ' || *tk->p == ')' || at_eol(tk))
				return tk_err(tk, "stray space");
		}
		switch (*tk->p) {
		case '(':
			rc = open_list(tk);
			need_sep = false;
			break;
		case '"':
			rc = quoted(tk);
			need_sep = true;
			break;
		case '{':
			rc = literal(tk);
			need_sep = true;
			break;
		default:
			rc = atom(tk);
			need_sep = true;
			break;
		}
		if (rc < 0)
			return rc;
	}
}

/* word - the tag or the name: a run of bytes up to a space or the line end. */
static size_t
word(const char *p, const char *end)
{
	const char *q = p;

	while (q < end && *q != ' ' && *q != '\n' && *q != '\r')
		q++;
	return (size_t)(q - p);
}

int
imap_cmd_parse(struct imap_cmd *cmd, char *data, size_t len,
    const struct imap_limits *lim, char *err, size_t errsz)
{
	struct tokeniser tk = { 0 };
	size_t tl, nl;
	char *name;
	int rc;

	memset(cmd, 0, sizeof *cmd);
	cmd->raw = data;
	cmd->raw_len = len;
	tl = word(data, data + len);
	if (tl == len || data[tl] != ' ' || !imap_valid_tag(data, tl))
		return str_err(err, errsz, -EBADMSG, "missing or invalid tag");
	name = data + tl + 1;
	nl = word(name, data + len);
	tk.p = name + nl;
	tk.end = data + len;
	tk.lim = lim;
	tk.err = err;
	tk.errsz = errsz;
	data[tl] = '\0';
	cmd->tag = data;
	for (size_t i = 0; i < nl; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c >= 0x7f)
			return byte_err(&tk, c, "command name");
		if (!atom_char(c))
			return tk_err(&tk, "bad character '%c' in command name", c);
	}
	if (nl == 0)
		return str_err(err, errsz, -EINVAL, "missing command name");
	if (tk.p == tk.end)
		return str_err(err, errsz, -EINVAL, "command without line end");
	rc = args(&tk);
	/* The byte after the name (a space or the line end) is no longer read. */
	name[nl] = '\0';
	cmd->name = name;
	cmd->args = tk.v;
	cmd->nargs = tk.n;
	return rc;
}

void
imap_cmd_free(struct imap_cmd *cmd)
{
	free(cmd->raw);
	free(cmd->args);
	memset(cmd, 0, sizeof *cmd);
}
