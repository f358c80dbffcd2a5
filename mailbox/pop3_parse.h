/*
 * pop3_parse - POP3 command lines (RFC 1939 3, RFC 2449 CAPA, RFC 2595
 * STLS, RFC 5034 AUTH): the keyword and its arguments, checked for the
 * syntax each command allows.  Pure functions; the server (pop3d.c)
 * decides what a command may do in its state.
 *
 * A line is what came before CRLF (or a bare LF), without it.  The
 * keyword ignores case.  Arguments are separated by one or more spaces;
 * PASS takes the rest of the line as the password (RFC 1939 7 lets a
 * password hold spaces).  A message number is 1 to 4294967295 in
 * decimal without a sign; TOP's line count 0 to 4294967295.
 */
#ifndef KURIER_MAILBOX_POP3_PARSE_H
#define KURIER_MAILBOX_POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* RFC 2449 4: a command line is at most 255 octets, CRLF included. */
#define POP3_LINE_MAX 255
/* An AUTH response line (RFC 5034 4: base64, no length limit given). */
#define POP3_AUTH_LINE_MAX 2048
#define POP3_ARG_MAX 40 /* RFC 1939 3: at most 40 characters an argument */

enum pop3_verb {
	POP3_USER,
	POP3_PASS,
	POP3_AUTH,
	POP3_STLS,
	POP3_CAPA,
	POP3_QUIT,
	POP3_STAT,
	POP3_LIST,
	POP3_RETR,
	POP3_DELE,
	POP3_NOOP,
	POP3_RSET,
	POP3_TOP,
	POP3_UIDL,
	POP3_APOP,
};

struct pop3_cmd {
	enum pop3_verb verb;
	bool has_msg;        /* LIST, UIDL: a message number was given */
	uint32_t msg;        /* RETR, DELE, TOP, LIST n, UIDL n */
	uint32_t lines;      /* TOP */
	const char *arg;     /* USER name, PASS password, AUTH mechanism (NULL: none given) */
	size_t arglen;
	const char *initial; /* AUTH's initial response, into the line; NULL if none */
	size_t initial_len;
};

/*
 * pop3_parse - line[0..len) into *c.  Returns NULL, or the text of the
 * error for "-ERR text" ("unknown command", "syntax: RETR msg",
 * "invalid message number", "NUL byte in command", ...).  Arguments
 * point into line.
 */
const char *pop3_parse(const char *line, size_t len, struct pop3_cmd *c);

/*
 * pop3_put_message - msg[0..len) as a multi-line response body (RFC 1939
 * 3): every line ends in CRLF (a bare LF or a last line without one
 * gets it), a line that starts with "." gets another in front, and
 * ".\r\n" ends it.  top: only the header, the blank line and the first
 * lines lines of the body (TOP).
 */
void pop3_put_message(struct buf *out, const char *msg, size_t len, bool top, uint32_t lines);

/* pop3_verb_name - "USER", ... for logs. */
const char *pop3_verb_name(enum pop3_verb v);

#endif
