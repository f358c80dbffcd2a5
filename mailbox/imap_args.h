/*
 * imap_args - the typed arguments of IMAP commands, read from the tokens
 * of imap_parse.h: sequence sets, FETCH attributes and modifiers, STORE,
 * SEARCH programs, dates, mailbox names and LIST patterns; and the
 * writers of strings in IMAP form for the server's responses.
 *
 * Pure and synchronous.  Each parser takes the tokens as a range
 * [first, end) of siblings (walk with imap_tok_next), returns 0 or a
 * negative errno with a precise text in err (the server's BAD or NO),
 * and fills a result that may point into the tokens' text: it lives as
 * long as the struct imap_cmd does.  Results that own memory have a
 * matching _free, safe on a zeroed or failed result.
 */
#ifndef KURIER_MAILBOX_IMAP_ARGS_H
#define KURIER_MAILBOX_IMAP_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"
#include "mailbox/imap_parse.h"
#include "mailbox/store.h"

/* --- sequence sets (RFC 3501 9 sequence-set, RFC 9051 6.4.4) -------------------------- */

#define IMAP_SEQ_RANGES_MAX 10000
#define IMAP_SEQ_STAR UINT32_MAX /* "*": the caller resolves it to the last number */

/*
 * Ranges as given, each with lo <= hi ("5:1" is 1:5); IMAP_SEQ_STAR for
 * "*" ("*" is STAR:STAR, "4:*" 4:STAR).  Since IMAP_SEQ_STAR stands for
 * "*", the number 4294967295 itself is refused.
 */
struct imap_seqset {
	struct mbox_range *v;
	size_t n;
};

/*
 * imap_seqset_parse - s[0..len): 1 to IMAP_SEQ_RANGES_MAX ranges.  0,
 * or -EINVAL ("0", a number above 4294967294, a bad separator...).
 */
int imap_seqset_parse(const char *s, size_t len, struct imap_seqset *out, char *err,
    size_t errsz);
void imap_seqset_free(struct imap_seqset *set);

/* --- FETCH (RFC 3501 6.4.5, RFC 7162 3.1.4) --------------------------------------------- */

enum imap_fetch_kind {
	IMAP_FA_FLAGS,
	IMAP_FA_INTERNALDATE,
	IMAP_FA_RFC822,
	IMAP_FA_RFC822_HEADER,
	IMAP_FA_RFC822_SIZE,
	IMAP_FA_RFC822_TEXT,
	IMAP_FA_ENVELOPE,
	IMAP_FA_BODY,          /* BODY without a section: the body structure */
	IMAP_FA_BODYSTRUCTURE,
	IMAP_FA_UID,
	IMAP_FA_MODSEQ,
	IMAP_FA_SECTION,       /* BODY[...] or BODY.PEEK[...] */
};

enum imap_section {
	IMAP_SEC_ALL,          /* "" or a bare part path: the whole (part) */
	IMAP_SEC_HEADER,
	IMAP_SEC_TEXT,
	IMAP_SEC_MIME,         /* only after a part path */
	IMAP_SEC_FIELDS,
	IMAP_SEC_FIELDS_NOT,
};

#define IMAP_PART_DEPTH_MAX 16 /* numbers in a part path 1.2.3 */
#define IMAP_FIELDS_MAX 32     /* names in HEADER.FIELDS (...) */
#define IMAP_FETCH_ITEMS_MAX 64 /* attributes in one FETCH (allocated by count) */

struct imap_field {
	const char *s; /* inside the token text; quoted names keep no quotes */
	size_t len;
};

struct imap_fetch_item {
	enum imap_fetch_kind kind;
	bool peek;                 /* BODY.PEEK: \Seen is not set */
	uint32_t part[IMAP_PART_DEPTH_MAX];
	size_t nparts;
	enum imap_section section;
	struct imap_field fields[IMAP_FIELDS_MAX];
	size_t nfields;
	bool partial;              /* <origin.count> */
	uint32_t origin, count;
	/*
	 * The name the response gives the item (owned): "BODY[HEADER]" for
	 * BODY.PEEK[HEADER], "BODY[]<0>" for BODY[]<0.100>; field names as
	 * the client gave them (clients compare the name they sent).
	 */
	char *resp;
};

struct imap_fetch {
	struct imap_fetch_item *v;
	size_t n;
	bool changedsince_set;  /* (CHANGEDSINCE n) */
	uint64_t changedsince;
	bool vanished;          /* (VANISHED): UID FETCH with QRESYNC only (the caller checks) */
};

/*
 * imap_fetch_parse - the attributes (first: a macro, one attribute or a
 * list of them) then optional modifiers (a list) up to end.
 */
int imap_fetch_parse(const struct imap_tok *first, const struct imap_tok *end,
    struct imap_fetch *out, char *err, size_t errsz);
void imap_fetch_free(struct imap_fetch *f);

/* --- STORE (RFC 3501 6.4.6, RFC 7162 3.1.3) ---------------------------------------------- */

enum imap_store_op { IMAP_STORE_SET, IMAP_STORE_ADD, IMAP_STORE_REMOVE };

struct imap_store {
	enum imap_store_op op;
	bool silent;
	bool unchangedsince_set;
	uint64_t unchangedsince;
	char *flags; /* owned: the flags, space-separated ("" for none) */
};

/*
 * imap_store_parse - "[(UNCHANGEDSINCE n)] item value" after the sequence
 * set.  Each flag is an atom (system flags with "\"); \Recent is refused
 * (RFC 3501 2.3.2).  The result passes mbox_valid_flags.
 */
int imap_store_parse(const struct imap_tok *first, const struct imap_tok *end,
    struct imap_store *out, char *err, size_t errsz);
void imap_store_free(struct imap_store *s);

/* --- SEARCH (RFC 3501 6.4.4, RFC 7162 3.1.5) ---------------------------------------------- */

enum imap_skey {
	IMAP_SK_AND, IMAP_SK_OR, IMAP_SK_NOT,
	IMAP_SK_ALL, IMAP_SK_ANSWERED, IMAP_SK_DELETED, IMAP_SK_FLAGGED, IMAP_SK_SEEN,
	IMAP_SK_UNSEEN, IMAP_SK_NEW, IMAP_SK_OLD, IMAP_SK_RECENT, IMAP_SK_UNANSWERED,
	IMAP_SK_UNDELETED, IMAP_SK_UNFLAGGED, IMAP_SK_DRAFT, IMAP_SK_UNDRAFT,
	IMAP_SK_KEYWORD, IMAP_SK_UNKEYWORD,                                 /* str */
	IMAP_SK_FROM, IMAP_SK_TO, IMAP_SK_CC, IMAP_SK_BCC, IMAP_SK_SUBJECT, /* str */
	IMAP_SK_BODY, IMAP_SK_TEXT,                                         /* str */
	IMAP_SK_HEADER,                                                     /* field, str */
	IMAP_SK_SINCE, IMAP_SK_BEFORE, IMAP_SK_ON,                          /* date */
	IMAP_SK_SENTSINCE, IMAP_SK_SENTBEFORE, IMAP_SK_SENTON,              /* date */
	IMAP_SK_LARGER, IMAP_SK_SMALLER,                                    /* num */
	IMAP_SK_MODSEQ,                                                     /* num */
	IMAP_SK_UID, IMAP_SK_SEQ,                                           /* set */
};

#define IMAP_SEARCH_DEPTH_MAX 16 /* NOT, OR and ( ) nested */
#define IMAP_SEARCH_KEYS_MAX 1000

struct imap_search {
	enum imap_skey key;
	const char *str;      /* UTF-8 bytes, not NUL-terminated */
	size_t str_len;
	const char *field;    /* HEADER's field name */
	size_t field_len;
	time_t date;          /* the day at 00:00 UTC */
	uint64_t num;
	struct imap_seqset set;
	struct imap_search **sub; /* AND: any number; OR: 2; NOT: 1 */
	size_t nsub;
};

/*
 * imap_search_parse - [CHARSET name] key... up to end, as one AND node.
 * -EINVAL for bad syntax; -ENOTSUP for a charset other than UTF-8 or
 * US-ASCII (the server answers NO [BADCHARSET (UTF-8 US-ASCII)]).
 */
int imap_search_parse(const struct imap_tok *first, const struct imap_tok *end,
    struct imap_search **out, char *err, size_t errsz);
void imap_search_free(struct imap_search *s);

/* --- dates --------------------------------------------------------------------------------- */

/* imap_date_parse - "7-Dec-2026" (RFC 3501 date-text) -> that day 00:00 UTC; 0 or -EINVAL. */
int imap_date_parse(const char *s, size_t len, time_t *out);
/* imap_datetime_parse - "07-Dec-2026 12:00:00 +0100" (date-time, APPEND) -> UTC; 0 or -EINVAL. */
int imap_datetime_parse(const char *s, size_t len, time_t *out);

/* --- mailbox names and LIST patterns (RFC 3501 5.1) ------------------------------------ */

#define IMAP_PATTERN_MAX 1024

/*
 * imap_mailbox_name - check the name a client gave (modified UTF-7, as
 * on the wire) and write its stored form to out: the same bytes with
 * "INBOX" in any case, alone or as the first level, made "INBOX".
 * Refused with the reason: not modified UTF-7 (mutf7.h), empty, longer
 * than MBOX_FOLDER_MAX, a wildcard "*" or "%", a leading "/" or "~", a
 * level "." or "..", an empty level, anything mbox_valid_folder refuses.
 * 0 or -EINVAL.
 */
int imap_mailbox_name(const char *in, size_t len, struct buf *out, char *err, size_t errsz);
/*
 * imap_list_match - whether name matches pattern (RFC 3501 6.3.8: "*"
 * any bytes, "%" any bytes but "/"), in O(len(name) x len(pattern)),
 * whatever the wildcards.  A pattern longer than IMAP_PATTERN_MAX
 * matches nothing.
 */
bool imap_list_match(const char *pattern, size_t plen, const char *name, size_t nlen);

/* --- strings in responses (RFC 3501 4.3, 9) ---------------------------------------------- */

/* imap_put_astring - an atom when s is one (not "NIL"), else quoted, else a literal. */
void imap_put_astring(struct buf *b, const char *s, size_t len);
/* imap_put_string - quoted when it can be (no CR, LF, NUL, 8-bit), else a literal. */
void imap_put_string(struct buf *b, const char *s, size_t len);
/* imap_put_nstring - NIL for s NULL, else imap_put_string. */
void imap_put_nstring(struct buf *b, const char *s, size_t len);

#endif
