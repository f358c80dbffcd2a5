/*
 * fuzz_pop3_cmd - libFuzzer target for the POP3 command parser
 * (pop3_parse) and the multi-line body writer (pop3_put_message), what
 * a POP3 client's lines and a stored message go through.  Byte 0 picks
 * the mode; the rest is:
 *
 *   even  a command line (NUL bytes included);
 *   odd   a message, written whole and as TOP with the line count from
 *         byte 1.
 *
 * Invariants, besides no crash and no read past size: a parsed
 * command's argument and initial response lie inside the line, message
 * numbers are not 0 for the commands that take one, an error is never
 * an empty text; a written body is CRLF-terminated lines ending in
 * ".\r\n", no line but the last is a lone ".", every line holds no
 * LF, and unstuffing it gives back the message's lines (all of them,
 * or for TOP the header and at most the line count of the body).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "mailbox/pop3_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
inside(const char *p, size_t n, const char *line, size_t len)
{
	return p >= line && p + n <= line + len;
}

static void
command(const char *line, size_t len)
{
	struct pop3_cmd c;
	const char *err = pop3_parse(line, len, &c);

	if (err != NULL) {
		if (err[0] == '\0')
			abort();
		return;
	}
	if (c.arg != NULL && !inside(c.arg, c.arglen, line, len))
		abort();
	if (c.initial != NULL && !inside(c.initial, c.initial_len, line, len))
		abort();
	switch (c.verb) {
	case POP3_RETR:
	case POP3_DELE:
	case POP3_TOP:
		if (c.msg == 0)
			abort();
		break;
	case POP3_LIST:
	case POP3_UIDL:
		if (c.has_msg != (c.msg != 0))
			abort();
		break;
	case POP3_PASS:
	case POP3_USER:
		if (c.arg == NULL || c.arglen == 0)
			abort();
		break;
	default:
		break;
	}
	if (strcmp(pop3_verb_name(c.verb), "?") == 0)
		abort();
}

/* The message's lines, as pop3_put_message splits them: CRLF or LF ends a line. */
static size_t
next_line(const char *p, const char *end, size_t *n)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

	*n = len > 0 && p[len - 1] == '\r' ? len - 1 : len;
	return nl != NULL ? len + 1 : len;
}

static void
body(const char *msg, size_t len, bool top, uint32_t lines)
{
	struct buf b;
	const char *o, *oend, *ml, *m = msg, *mend = msg + len;
	bool in_body = false;
	uint32_t body_lines = 0;

	buf_init(&b);
	pop3_put_message(&b, msg, len, top, lines);
	o = buf_rptr(&b);
	oend = o + buf_unread(&b);
	if (buf_unread(&b) < 3 || memcmp(oend - 3, ".\r\n", 3) != 0)
		abort();
	/* Walk the output line by line against the message's lines. */
	while (o < oend - 3) {
		const char *crlf = memmem(o, (size_t)(oend - o), "\r\n", 2);
		size_t on, mn;

		if (crlf == NULL || memchr(o, '\n', (size_t)(crlf - o)) != NULL)
			abort();
		on = (size_t)(crlf - o);
		if (on == 1 && o[0] == '.')
			abort();
		if (on > 0 && o[0] == '.') {
			if (on < 2 || o[1] != '.')
				abort();
			o++;
			on--;
		}
		if (m >= mend)
			abort();
		ml = m;
		m += next_line(m, mend, &mn);
		if (mn != on || memcmp(ml, o, on) != 0)
			abort();
		if (top && in_body)
			body_lines++;
		if (on == 0)
			in_body = true;
		o = crlf + 2;
	}
	if (top && body_lines > lines)
		abort();
	if (!top && m != mend)
		abort();
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size == 0)
		return 0;
	s = malloc(size);
	if (s == NULL)
		abort();
	memcpy(s, data + 1, size - 1);
	if (data[0] % 2 == 0) {
		command(s, size - 1);
	} else if (size >= 2) {
		body(s + 1, size - 2, false, 0);
		body(s + 1, size - 2, true, data[1] % 8);
	}
	free(s);
	return 0;
}
