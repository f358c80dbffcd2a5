/*
 * imap_parse - the IMAP server's command reader and tokeniser (RFC 3501
 * 2.2, 4 and 9; RFC 7888 LITERAL+).
 *
 * Reader.  struct imap_reader is fed the bytes of one connection as they
 * arrive, split anywhere, and assembles one command at a time: a line,
 * and when the line ends in a literal announcement {N} or {N+}, the N
 * bytes of the literal and the line that follows, as often as it takes.
 * Every size a client names is checked against struct imap_limits before
 * a byte of it is stored or a byte is allocated for it.  An idle reader
 * owns no buffer: a complete command's bytes are handed to the caller
 * (imap_reader_take), so 10,000 idle connections cost only their structs.
 *
 * Errors.  A command that breaks a limit or carries a NUL byte is not
 * stored: the reader discards the rest of it (up to its last line end,
 * skipping the bytes of any non-synchronising literal it announces, so
 * the connection stays in step) and reports one IMAP_RD_ERROR when the
 * command's last byte has been read, so the tagged BAD goes out in order.
 * A synchronising literal that is refused is reported at once: the
 * client waits for "+" (RFC 3501 7.5), gets the tagged reply instead and
 * sends no literal bytes, so the command ends there.  A literal size
 * that cannot be a literal at all (more digits than fit 64 bits, or above
 * lim.abs_literal) is IMAP_RD_FATAL: the server sends "* BYE" and closes,
 * since it could not skip those bytes in reasonable time.
 *
 * Tokens.  imap_cmd_parse cuts a complete command into its tag, its name
 * and its arguments as a tree of struct imap_tok, stored in preorder in
 * one array: a list's members follow it, and t + t->skip is the token
 * after t and all its members.  Quoted strings are unescaped in place,
 * so every token's text lies inside the command's own bytes.
 */
#ifndef KURIER_MAILBOX_IMAP_PARSE_H
#define KURIER_MAILBOX_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define IMAP_LINE_MAX 65536          /* default: bytes of one line, CRLF excluded */
#define IMAP_LITERAL_PRELOGIN 8192   /* default literal limit before login */
#define IMAP_COMMAND_MAX (64u << 20) /* default: bytes of a command, literals included */
#define IMAP_DEPTH_MAX 32            /* default list nesting */
#define IMAP_DEPTH_HARD_MAX 256      /* no limits struct may allow more */
#define IMAP_TOKENS_MAX 10000        /* default: tokens of one command */
#define IMAP_LITERAL_ABS_MAX 4294967295u /* RFC 3501 9: a literal's size is a 32-bit number */
#define IMAP_TAG_MAX 64              /* longest tag the reader keeps for an error reply */
#define IMAP_ERR_MAX 160             /* room for any error text here */
#define IMAP_SKIP_MAX 65536          /* a refused LITERAL+ literal up to this is read and dropped */

/* The limits a reader and the tokeniser enforce; the server sets them per state. */
struct imap_limits {
	size_t max_line;       /* bytes of one line, CRLF excluded */
	uint64_t max_literal;  /* bytes of one literal */
	uint64_t max_command;  /* bytes of a whole command: lines, line ends, literals */
	uint64_t abs_literal;  /* an announcement above this is fatal */
	unsigned max_depth;    /* list nesting, at most IMAP_DEPTH_HARD_MAX */
	size_t max_tokens;     /* tokens of one command */
	bool before_login;     /* only for the error text ("... before login") */
};

/* imap_limits_default - the defaults above; before_login selects the literal limit. */
void imap_limits_default(struct imap_limits *lim, bool before_login);

enum imap_rd_state {
	IMAP_RS_LINE,    /* storing a line */
	IMAP_RS_LITERAL, /* storing a literal's bytes */
	IMAP_RS_SKIPLIT, /* discarding a literal's bytes (command refused) */
	IMAP_RS_SKIPLINE,/* discarding a line (command refused) */
	IMAP_RS_DONE,    /* a command is complete; take it */
	IMAP_RS_DEAD,    /* fatal error; feed nothing more */
};

/* The end of a line as seen so far: does it announce a literal? */
struct imap_tail {
	uint8_t state;   /* how much of "{digits[+]}\r" has been seen */
	uint8_t digits;
	bool nonsync;
	bool overflow;   /* more than 64 bits of digits */
	uint64_t n;
};

struct imap_reader {
	struct imap_limits lim;
	enum imap_rd_state state;
	struct buf cmd;        /* the command so far (states LINE, LITERAL, DONE) */
	size_t line_len;       /* bytes of the current line, its LF excluded */
	uint64_t total;        /* bytes of the command so far, discarded ones too */
	uint64_t lit_left;     /* LITERAL, SKIPLIT: bytes still to come */
	struct imap_tail tail;
	bool failed;           /* an error is set and waits for the command's end */
	bool tag_known;
	char tag[IMAP_TAG_MAX + 1];
	char err[IMAP_ERR_MAX];
};

enum imap_rd_status {
	IMAP_RD_NEEDMORE, /* every byte given was used; no command yet */
	IMAP_RD_COMMAND,  /* a command is complete: imap_reader_take() */
	IMAP_RD_CONTINUE, /* a synchronising literal may follow: send "+ ..." or imap_reader_reject() */
	IMAP_RD_ERROR,    /* a command was refused: tagged BAD with imap_reader_error() */
	IMAP_RD_FATAL,    /* "* BYE" with imap_reader_error(), then close */
};

/* imap_reader_init - an idle reader under lim (copied).  Owns nothing yet. */
void imap_reader_init(struct imap_reader *r, const struct imap_limits *lim);
/* imap_reader_free - release what r holds; r may be initialised again. */
void imap_reader_free(struct imap_reader *r);
/*
 * imap_reader_set_limits - new limits (copied), from the next command on
 * (a command being read keeps the limits it started under, except that
 * a literal announced after the call is checked against the new ones).
 */
void imap_reader_set_limits(struct imap_reader *r, const struct imap_limits *lim);

/*
 * imap_reader_feed - read from data[0..len); *used tells how many bytes
 * were consumed.  Returns at the first event: the caller acts on it and
 * feeds data + *used next.  NEEDMORE always consumes all len bytes.
 * After COMMAND, imap_reader_take() must be called before the next feed
 * (which otherwise returns COMMAND again and consumes nothing).  After
 * CONTINUE the literal is accepted unless imap_reader_reject() is called
 * before the next feed.  After ERROR the reader is idle again.  After
 * FATAL every feed returns FATAL.
 */
enum imap_rd_status imap_reader_feed(struct imap_reader *r, const char *data, size_t len,
    size_t *used);
/*
 * imap_reader_reject - refuse the synchronising literal just announced
 * (CONTINUE): the command is dropped and the reader waits for the next
 * one, since the client sends no literal bytes after a tagged reply.
 */
void imap_reader_reject(struct imap_reader *r);
/* imap_reader_error - the text of the last ERROR or FATAL, for the reply. */
const char *imap_reader_error(const struct imap_reader *r);
/*
 * imap_reader_tag - the tag of the refused command (ERROR), or NULL when
 * none was read or it is not a valid tag (the reply is then "* BAD").
 */
const char *imap_reader_tag(const struct imap_reader *r);
/* imap_reader_idle - whether no command is partly read (and none waits). */
bool imap_reader_idle(const struct imap_reader *r);

enum imap_tok_type {
	IMAP_TOK_ATOM,    /* also flags (\Seen), sequence sets, BODY[...]<...> */
	IMAP_TOK_NUMBER,  /* only digits; num holds the value unless big */
	IMAP_TOK_QUOTED,
	IMAP_TOK_LITERAL,
	IMAP_TOK_NIL,
	IMAP_TOK_LIST,
};

struct imap_tok {
	enum imap_tok_type type;
	bool big;          /* NUMBER: above UINT64_MAX (num is then UINT64_MAX) */
	bool nonsync;      /* LITERAL: announced as {N+} */
	bool bracket;      /* ATOM: holds a [section] (and maybe a <partial>) */
	const char *s;     /* text (not for LIST); quoted: unescaped, no quotes */
	size_t len;
	uint64_t num;      /* NUMBER */
	size_t n;          /* LIST: direct members */
	size_t skip;       /* this token and all its members */
};

/* imap_tok_next - the token after t and its members. */
static inline const struct imap_tok *
imap_tok_next(const struct imap_tok *t)
{
	return t + t->skip;
}

/* imap_tok_is_string - ATOM, NUMBER, NIL, QUOTED or LITERAL: usable as an astring. */
bool imap_tok_is_astring(const struct imap_tok *t);
/* imap_tok_eq - whether t is an atom equal to word, ASCII case ignored. */
bool imap_tok_eq(const struct imap_tok *t, const char *word);

struct imap_cmd {
	char *raw;            /* the command's bytes (owned; tokens point into it) */
	size_t raw_len;
	const char *tag;      /* NUL-terminated, inside raw */
	const char *name;     /* the command word, NUL-terminated; "UID" for UID commands */
	struct imap_tok *args;/* the arguments after the name, in preorder; NULL if none */
	size_t nargs;         /* tokens in args (members of lists included) */
};

/*
 * imap_reader_take - hand the complete command (after COMMAND) to cmd
 * and tokenise it with imap_cmd_parse (its return value and err).  The
 * reader is idle afterwards and owns no buffer; cmd owns the bytes
 * whatever the result: imap_cmd_free() it.
 */
int imap_reader_take(struct imap_reader *r, struct imap_cmd *cmd, char *err, size_t errsz);

/*
 * imap_cmd_parse - tokenise data[0..len), a complete command as the
 * reader assembles it (lines ending in LF or CRLF, literals announced at
 * a line's end), under lim (max_depth, max_tokens).  cmd takes data,
 * which must come from malloc (NUL room not needed).
 * Returns 0; -EBADMSG when there is no valid tag (reply "* BAD"; cmd->tag
 * is NULL); -EINVAL for any other syntax error (tagged BAD; cmd->tag is
 * set, cmd->name may be NULL).  err says what is wrong.
 */
int imap_cmd_parse(struct imap_cmd *cmd, char *data, size_t len,
    const struct imap_limits *lim, char *err, size_t errsz);
/* imap_cmd_free - release cmd's bytes and tokens; cmd is zeroed. */
void imap_cmd_free(struct imap_cmd *cmd);

/*
 * imap_valid_tag - whether s[0..len) is a tag: 1 or more ATOM-CHARs
 * other than "+" (RFC 3501 9).
 */
bool imap_valid_tag(const char *s, size_t len);

#endif
