/*
 * smtpreply - the SMTP client's reply reader: the server's bytes in,
 * complete replies out (RFC 5321 4.2), with the EHLO keywords kurier
 * uses parsed on the way (RFC 5321 4.1.1.1 and the extensions' RFCs).
 *
 * A reply is one or more lines "DDD-text" ending with one "DDD text" or
 * "DDD" alone: three digits, the first 2 to 5, the same code on every
 * line (RFC 5321 4.2.1).  Lines end in CRLF; a bare LF is accepted as a
 * line end too (a CR before it is dropped), as a lenient client may.
 *
 * The peer is untrusted, so everything is bounded: a line longer than
 * SMTPREPLY_LINE_MAX bytes (line end excluded), a reply longer than
 * SMTPREPLY_SIZE_MAX bytes (line ends included) or with more than
 * SMTPREPLY_LINES_MAX lines, a bad code or separator, or a code that
 * changes within a reply is a protocol error (-EPROTO): the client gives
 * up on the connection.  Memory is the reader's fixed-size struct; the
 * text kept is cut at SMTPREPLY_TEXT_SIZE.
 *
 * Kept text: the code, then each line's text after its separator, the
 * lines joined with " / ", every byte outside printable ASCII (controls,
 * DEL, 8-bit) replaced by '?' and a tab by a space, so it can go to logs
 * and DSNs as it is; "550 5.1.1 No such user / 5.1.1 try again".  The
 * enhanced status code (RFC 3463, RFC 2034) stays in the text as sent
 * and the first line's is also copied to esc.
 *
 * Nothing here does I/O.  The reader holds no pointer to its input.
 */
#ifndef KURIER_DELIVER_SMTPREPLY_H
#define KURIER_DELIVER_SMTPREPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTPREPLY_LINE_MAX 2048         /* bytes of one line, line end excluded */
#define SMTPREPLY_SIZE_MAX (64 * 1024)  /* bytes of one reply, line ends included */
#define SMTPREPLY_LINES_MAX 256
#define SMTPREPLY_TEXT_SIZE 512         /* kept text, NUL included */
#define SMTPREPLY_ESC_SIZE 16           /* "5.123.123" and NUL fit */

/* EHLO keywords (RFC 5321 4.1.1.1), as bits of smtpreply_ehlo.ext. */
enum {
	SMTPREPLY_EXT_PIPELINING = 1 << 0,  /* RFC 2920 */
	SMTPREPLY_EXT_8BITMIME = 1 << 1,    /* RFC 6152 */
	SMTPREPLY_EXT_SMTPUTF8 = 1 << 2,    /* RFC 6531 */
	SMTPREPLY_EXT_DSN = 1 << 3,         /* RFC 3461 */
	SMTPREPLY_EXT_ENHANCEDSTATUSCODES = 1 << 4, /* RFC 2034 */
	SMTPREPLY_EXT_SIZE = 1 << 5,        /* RFC 1870 */
	SMTPREPLY_EXT_STARTTLS = 1 << 6,    /* RFC 3207 */
	SMTPREPLY_EXT_AUTH = 1 << 7,        /* RFC 4954 */
};

/* SASL mechanisms listed after AUTH that kurier can use. */
enum {
	SMTPREPLY_AUTH_PLAIN = 1 << 0,      /* RFC 4616 */
	SMTPREPLY_AUTH_LOGIN = 1 << 1,      /* draft-murchison-sasl-login */
};

struct smtpreply_ehlo {
	unsigned ext;       /* SMTPREPLY_EXT_* */
	/*
	 * RFC 1870 "SIZE n": the server's fixed maximum; 0 when SIZE came
	 * without a number, with 0 (no limit, RFC 1870 4) or with a number
	 * that is not one (ignored rather than guessed).
	 */
	uint64_t size_max;
	unsigned auth;      /* SMTPREPLY_AUTH_* */
};

struct smtpreply {
	int code;           /* 200..599 once a line was read */
	unsigned nlines;
	size_t size;        /* bytes read, line ends included */
	char esc[SMTPREPLY_ESC_SIZE]; /* first line's "5.1.1", or "" */
	char text[SMTPREPLY_TEXT_SIZE]; /* see the top of this file */
	size_t textlen;
	bool cut;           /* text was cut (it then ends in "...") */
	/* Keywords of a 2xx reply's lines after the first, when asked for. */
	struct smtpreply_ehlo ehlo;
};

/*
 * The reader: embed it, smtpreply_init() it.  Set ehlo before the reply
 * to an EHLO starts, clear it after.
 */
struct smtpreply_reader {
	bool ehlo;          /* parse EHLO keywords */
	bool done;          /* r is complete; the next byte starts a new reply */
	int error;          /* 0, or the -EPROTO that stopped the reader */
	const char *why;    /* what was malformed, when error is set */
	size_t linelen;
	char line[SMTPREPLY_LINE_MAX + 1]; /* room for a CR before the LF */
	struct smtpreply r;
};

void smtpreply_init(struct smtpreply_reader *rd);

enum {
	SMTPREPLY_MORE = 0, /* all input taken, no complete reply yet */
	SMTPREPLY_DONE = 1, /* rd->r holds a complete reply */
};

/*
 * smtpreply_feed - take bytes p[0..len) of the server's output.  Stops
 * at the end of the first complete reply: returns SMTPREPLY_DONE with
 * *used the bytes taken up to its last line end (the caller feeds the
 * rest again for the next reply, or drops it: RFC 3207 after a 220 to
 * STARTTLS).  Returns SMTPREPLY_MORE with *used = len when the reply
 * is not complete yet.  Returns -EPROTO for a malformed reply, with
 * rd->why a static reason ("line too long", ...), *used the bytes taken
 * up to the offending one; the reader stays in error (every later call
 * returns -EPROTO) until smtpreply_init().  rd->r is the complete reply
 * after DONE, until the next call; otherwise it holds the lines read so
 * far, not to be acted on.
 */
int smtpreply_feed(struct smtpreply_reader *rd, const char *p, size_t len,
    size_t *used);

/*
 * smtpreply_line - split one line (its line end removed) into its code,
 * whether it is the last of its reply, and its text after the
 * separator.  Returns 0, or -EPROTO with *why set ("bad reply code",
 * "bad reply separator").  Checks the syntax only, not the length.
 */
int smtpreply_line(const char *line, size_t len, int *code, bool *last,
    const char **text, size_t *textlen, const char **why);

/*
 * smtpreply_ehlo_line - add one EHLO reply line's text (the part after
 * "250-" or "250 ") to e: keywords are matched without regard to case,
 * unknown ones ignored, "AUTH=..." (an old spelling) read as AUTH.
 */
void smtpreply_ehlo_line(struct smtpreply_ehlo *e, const char *text,
    size_t len);

#endif
