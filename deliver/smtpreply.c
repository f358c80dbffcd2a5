/*
 * smtpreply - the SMTP client's reply reader.  See smtpreply.h.
 *
 * Bytes are gathered into the reader's line buffer up to each LF; every
 * complete line is checked and added to the reply at once, so nothing
 * but the current line is ever held, whatever the server sends.
 */
#include "deliver/smtpreply.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"

#define JOIN " / "
#define CUT "..."

static void reply_append(struct smtpreply *r, const char *p, size_t len);

void
smtpreply_init(struct smtpreply_reader *rd)
{
	memset(rd, 0, sizeof *rd);
}

int
smtpreply_line(const char *line, size_t len, int *code, bool *last,
    const char **text, size_t *textlen, const char **why)
{
	*code = 0;
	*last = false;
	*text = line;
	*textlen = 0;
	/* RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39; any second digit is taken. */
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '9' || line[2] < '0' || line[2] > '9') {
		*why = "bad reply code";
		return -EPROTO;
	}
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (len == 3) {
		*last = true;
		*text = line + 3;
		return 0;
	}
	if (line[3] != ' ' && line[3] != '-') {
		*code = 0;
		*why = "bad reply separator";
		return -EPROTO;
	}
	*last = line[3] == ' ';
	*text = line + 4;
	*textlen = len - 4;
	return 0;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* 1*3DIGIT at s[*i]; advances *i. */
static bool
digits3(const char *s, size_t len, size_t *i)
{
	size_t start = *i;

	while (*i < len && *i - start < 3 && is_digit(s[*i]))
		(*i)++;
	return *i > start && (*i >= len || !is_digit(s[*i]));
}

/*
 * The RFC 3463 status-code at the start of text ("5.1.1" then SP or the
 * end), class 2, 4 or 5, into esc; "" when there is none.
 */
static void
parse_esc(char *esc, const char *text, size_t len)
{
	size_t i;

	esc[0] = '\0';
	if (len < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') ||
	    text[1] != '.')
		return;
	i = 2;
	if (!digits3(text, len, &i) || i >= len || text[i] != '.')
		return;
	i++;
	if (!digits3(text, len, &i) || (i < len && text[i] != ' '))
		return;
	str_copyn(esc, text, i, SMTPREPLY_ESC_SIZE);
}

/*
 * Append p[0..len) to the kept text, printable only.  When it is full
 * and more comes, its last bytes become "..." and the rest is dropped.
 */
static void
reply_append(struct smtpreply *r, const char *p, size_t len)
{
	for (size_t i = 0; i < len && !r->cut; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (r->textlen == SMTPREPLY_TEXT_SIZE - 1) {
			memcpy(r->text + r->textlen - (sizeof CUT - 1), CUT, sizeof CUT);
			r->cut = true;
			return;
		}
		if (ch == '\t')
			ch = ' ';
		else if (ch < 0x20 || ch > 0x7e)
			ch = '?';
		r->text[r->textlen++] = (char)ch;
		r->text[r->textlen] = '\0';
	}
}

static bool
word_eq(const char *p, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(p, word, len) == 0;
}

void
smtpreply_ehlo_line(struct smtpreply_ehlo *e, const char *text, size_t len)
{
	static const struct {
		const char *name;
		unsigned bit;
	} kw[] = {
		{ "PIPELINING", SMTPREPLY_EXT_PIPELINING },
		{ "8BITMIME", SMTPREPLY_EXT_8BITMIME },
		{ "SMTPUTF8", SMTPREPLY_EXT_SMTPUTF8 },
		{ "DSN", SMTPREPLY_EXT_DSN },
		{ "ENHANCEDSTATUSCODES", SMTPREPLY_EXT_ENHANCEDSTATUSCODES },
		{ "SIZE", SMTPREPLY_EXT_SIZE },
		{ "STARTTLS", SMTPREPLY_EXT_STARTTLS },
		{ "AUTH", SMTPREPLY_EXT_AUTH },
	};
	size_t klen = 0, i, n;
	unsigned bit = 0;

	while (klen < len && text[klen] != ' ' && text[klen] != '=')
		klen++;
	for (i = 0; i < sizeof kw / sizeof kw[0]; i++) {
		if (word_eq(text, klen, kw[i].name)) {
			bit = kw[i].bit;
			break;
		}
	}
	if (bit == 0)
		return;
	e->ext |= bit;
	/* The parameters: words after the keyword, split at SP. */
	for (i = klen; i < len;) {
		while (i < len && (text[i] == ' ' || text[i] == '='))
			i++;
		for (n = 0; i + n < len && text[i + n] != ' '; n++)
			;
		if (n == 0)
			break;
		if (bit == SMTPREPLY_EXT_SIZE) {
			uint64_t v;

			/* Only the first parameter counts; a bad one means no known limit. */
			e->size_max = str_to_u64n(text + i, n, &v) == 0 ? v : 0;
			break;
		}
		if (bit == SMTPREPLY_EXT_AUTH) {
			if (word_eq(text + i, n, "PLAIN"))
				e->auth |= SMTPREPLY_AUTH_PLAIN;
			else if (word_eq(text + i, n, "LOGIN"))
				e->auth |= SMTPREPLY_AUTH_LOGIN;
		} else {
			break;
		}
		i += n;
	}
}

static int
reader_fail(struct smtpreply_reader *rd, const char *why)
{
	rd->error = -EPROTO;
	rd->why = why;
	return -EPROTO;
}

/* One complete line (line end removed, its length len) into the reply. */
static int
reader_line(struct smtpreply_reader *rd, size_t len, size_t ending)
{
	struct smtpreply *r = &rd->r;
	const char *text, *why = NULL;
	size_t textlen;
	bool last;
	int code;

	if (len > SMTPREPLY_LINE_MAX)
		return reader_fail(rd, "reply line too long");
	if (smtpreply_line(rd->line, len, &code, &last, &text, &textlen, &why) < 0)
		return reader_fail(rd, why);
	if (r->nlines > 0 && code != r->code)
		return reader_fail(rd, "reply code changed within a reply");
	if (r->nlines + 1 > SMTPREPLY_LINES_MAX)
		return reader_fail(rd, "too many reply lines");
	r->size += len + ending;
	if (r->size > SMTPREPLY_SIZE_MAX)
		return reader_fail(rd, "reply too long");
	if (r->nlines == 0) {
		r->code = code;
		reply_append(r, rd->line, 3);
		parse_esc(r->esc, text, textlen);
		if (textlen > 0) {
			reply_append(r, " ", 1);
			reply_append(r, text, textlen);
		}
	} else {
		if (textlen > 0) {
			reply_append(r, JOIN, sizeof JOIN - 1);
			reply_append(r, text, textlen);
		}
		if (rd->ehlo && code / 100 == 2)
			smtpreply_ehlo_line(&r->ehlo, text, textlen);
	}
	r->nlines++;
	if (last)
		rd->done = true;
	return 0;
}

int
smtpreply_feed(struct smtpreply_reader *rd, const char *p, size_t len,
    size_t *used)
{
	size_t pos = 0;

	*used = 0;
	if (rd->error != 0)
		return rd->error;
	if (rd->done) {
		/* The previous reply was handed out: start afresh. */
		memset(&rd->r, 0, sizeof rd->r);
		rd->done = false;
	}
	while (pos < len) {
		const char *lf = memchr(p + pos, '\n', len - pos);
		size_t n = lf != NULL ? (size_t)(lf - (p + pos)) : len - pos;
		size_t linelen, ending;
		int rc;

		if (n > sizeof rd->line - rd->linelen) {
			/* Over the limit even with a CR to drop: stop reading it. */
			*used = pos + (sizeof rd->line - rd->linelen);
			return reader_fail(rd, "reply line too long");
		}
		memcpy(rd->line + rd->linelen, p + pos, n);
		rd->linelen += n;
		pos += n;
		if (lf == NULL)
			break;
		pos++; /* the LF */
		linelen = rd->linelen;
		ending = 1;
		if (linelen > 0 && rd->line[linelen - 1] == '\r') {
			linelen--;
			ending = 2;
		}
		rd->linelen = 0;
		if ((rc = reader_line(rd, linelen, ending)) < 0) {
			*used = pos;
			return rc;
		}
		if (rd->done) {
			*used = pos;
			return SMTPREPLY_DONE;
		}
	}
	*used = pos;
	return SMTPREPLY_MORE;
}
