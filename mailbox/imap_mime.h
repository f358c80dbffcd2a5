/*
 * imap_mime - the MIME side of the IMAP server (RFC 3501): ENVELOPE,
 * BODY and BODYSTRUCTURE, BODY[section]<partial> and the text SEARCH
 * looks at, for one stored message.  The MIME tree, content types,
 * parameters (RFC 2231) and dispositions are GMime 3's; the byte extent
 * of every part is taken from the raw bytes along GMime's tree (the
 * boundaries GMime found), so sections are the bytes as stored, never a
 * re-serialisation.  The functions of this module are named imap_msg_*
 * (the parsed message) and imap_text_* (the search helpers).
 *
 * Input is the raw RFC 5322 message as stored (CRLF line ends; bare LF
 * is tolerated).  Any input, however broken (missing or wrong
 * boundaries, bad encodings, 8-bit or NUL bytes in headers, absurd
 * nesting), parses into a handle that answers every call; nothing here
 * crashes or grows without bound:
 *   - MIME nesting deeper than IMAP_MIME_DEPTH_MAX is not walked: a part
 *     that deep is described as a single leaf part;
 *   - at most IMAP_MIME_PARTS_MAX parts per message are described,
 *     later ones are left out of BODYSTRUCTURE and do not exist for
 *     sections;
 *   - at most IMAP_MIME_ADDR_MAX addresses per ENVELOPE field;
 *   - search text stops after IMAP_MIME_TEXT_MAX bytes (see below).
 * Work is linear in the message size times the nesting depth.
 *
 * Pure: no Redis, no loop, no I/O.  A handle may be used from one thread
 * at a time; handles are independent (GMime is initialised once).
 */
#ifndef KURIER_MAILBOX_IMAP_MIME_H
#define KURIER_MAILBOX_IMAP_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"

/* Deepest MIME nesting walked (multiparts and message/rfc822 alike). */
#define IMAP_MIME_DEPTH_MAX 64
/* Most parts described for one message. */
#define IMAP_MIME_PARTS_MAX 10000
/* Most addresses written for one ENVELOPE address field. */
#define IMAP_MIME_ADDR_MAX 1000
/* Most bytes of decoded search text (body, or one header's values). */
#define IMAP_MIME_TEXT_MAX (4u * 1024 * 1024)
/* Longest string written as an IMAP quoted string; longer ones are literals. */
#define IMAP_MIME_QUOTED_MAX 1024

struct imap_msg;

/*
 * imap_msg_parse - parse raw[0..len) once for any number of the calls
 * below.  The handle keeps its own copy of the bytes (GMime's), so raw
 * may be freed at once.  Never fails (broken MIME yields a best-effort
 * tree; a message GMime cannot read at all is one text/plain body).
 * Free with imap_msg_free().
 */
struct imap_msg *imap_msg_parse(const char *raw, size_t len);
void imap_msg_free(struct imap_msg *m);
/* imap_msg_raw - the message's bytes as stored (valid while m lives). */
const char *imap_msg_raw(const struct imap_msg *m, size_t *len);

/*
 * imap_msg_envelope - append the message's ENVELOPE (RFC 3501 7.4.2) to
 * out: ("date" "subject" (from) (sender) (reply-to) (to) (cc) (bcc)
 * "in-reply-to" "message-id").  Values are the header text as written,
 * unfolded (CR and LF removed, the white space kept) and trimmed, RFC
 * 2047 encoded-words left encoded (what RFC 3501 asks and Dovecot does);
 * NIL for an absent field ("" for one present but empty), NIL for an
 * address field without addresses; sender and reply-to, absent or
 * empty, are from.
 * Addresses are (name adl mailbox host): name the display name with its
 * quotes removed (or, failing one, the comment after the address), adl
 * the obsolete source route; a group is (NIL NIL "name" NIL) members
 * (NIL NIL NIL NIL); a mailbox without domain has host "MISSING_DOMAIN",
 * a missing local part "MISSING_MAILBOX" (as Dovecot).  Strings are
 * quoted when short 7-bit text without CR, LF or NUL, else literals
 * {n}CRLF; NUL bytes are dropped.
 */
void imap_msg_envelope(const struct imap_msg *m, struct buf *out);

/*
 * imap_msg_bodystructure - append BODY (ext false) or BODYSTRUCTURE (ext
 * true, with the extension data: md5, disposition, language, location
 * for a one-part body; parameters, disposition, language, location for
 * a multipart) to out, RFC 3501 7.4.2.  Sizes are the octets of each
 * part's body as stored (transfer encoding kept); lines, for text and
 * message/rfc822, count the body's lines, a last line without line end
 * included.  A part without Content-Type is text/plain;
 * charset=us-ascii (message/rfc822 in a multipart/digest), without
 * Content-Transfer-Encoding "7BIT".  A multipart in which no part was
 * found (no boundary, or none in the body) lists one empty text/plain
 * part, so the grammar's 1*body holds.
 */
void imap_msg_bodystructure(const struct imap_msg *m, bool ext, struct buf *out);

/*
 * imap_msg_section - the bytes of BODY[spec] (RFC 3501 6.4.5), spec being
 * the text between the brackets, spec[0..len): a part path "1.2.3"
 * (maybe empty), then nothing, HEADER, TEXT, MIME, HEADER.FIELDS (names)
 * or HEADER.FIELDS.NOT (names), keywords in any case, names atoms or
 * quoted strings.
 *   - "" is the whole message; "HEADER" the header with its empty line;
 *     "TEXT" what follows that line;
 *   - "N..." a part: its body; part 1 of a one-part message (top level or
 *     inside message/rfc822) is that body; a message/rfc822 part's body
 *     is the whole embedded message;
 *   - "N.MIME" the part's MIME header with its empty line;
 *   - "N.HEADER", "N.TEXT", "N.HEADER.FIELDS..." only for a message/rfc822
 *     part (its embedded message's header or text);
 *   - HEADER.FIELDS: each matching field (names compared in ASCII case)
 *     as stored, continuation lines and line end included, in message
 *     order, then an empty line (CRLF); .NOT those that do not match.
 * A part that does not exist, and HEADER or TEXT of a part that is not a
 * message/rfc822, give 0 bytes (as Dovecot: the client gets "").
 * *data and *dlen are set: into the message's bytes (valid while m
 * lives) or, for HEADER.FIELDS, into scratch (reset first; valid until
 * scratch changes).  Returns 0, or -EINVAL for a malformed spec (the
 * IMAP server answers BAD).
 */
int imap_msg_section(const struct imap_msg *m, const char *spec, size_t len,
    struct buf *scratch, const char **data, size_t *dlen);

/*
 * imap_partial - apply <origin.count> (RFC 3501 6.4.5) to a section of
 * len bytes: *off and *n become the slice to send (0 bytes when origin
 * is at or past the end).
 */
void imap_partial(size_t len, uint64_t origin, uint64_t count, size_t *off, size_t *n);

/*
 * imap_msg_header_text - append to out (as UTF-8) every value of the top
 * header field name, unfolded and RFC 2047 decoded, one per line, for
 * SEARCH FROM/TO/CC/BCC/SUBJECT/HEADER.  An address field's value keeps
 * display names and addresses, so both match.  At most
 * IMAP_MIME_TEXT_MAX bytes are appended.  Returns the number of fields
 * found (0: the header is absent, which HEADER name "" tells apart).
 */
size_t imap_msg_header_text(const struct imap_msg *m, const char *name, struct buf *out);

/*
 * imap_msg_body_text - append to out the message's text for SEARCH BODY:
 * each text part transfer-decoded (base64, quoted-printable) and
 * converted from its charset to UTF-8 (invalid bytes replaced), parts
 * separated by a newline; message/rfc822 parts contribute their header
 * (decoded) and their text parts; other parts nothing.  with_header
 * (SEARCH TEXT) puts the top header, decoded, first.  Stops after
 * IMAP_MIME_TEXT_MAX bytes: text past that is not searched.
 */
void imap_msg_body_text(const struct imap_msg *m, bool with_header, struct buf *out);

/*
 * imap_text_fold - append s[0..len) to out case-folded (Unicode simple
 * case folding, g_utf8_casefold) after making it valid UTF-8, so that
 * folded texts compare by bytes.
 */
void imap_text_fold(const char *s, size_t len, struct buf *out);
/*
 * imap_text_match - whether needle occurs in hay, both UTF-8 (invalid
 * bytes tolerated), case ignored (ASCII and Unicode case folding).  An
 * empty needle matches.  Linear time (folds both, then memmem).
 */
bool imap_text_match(const char *hay, size_t hlen, const char *needle, size_t nlen);

/*
 * imap_msg_date - the Date: field (RFC 5322 3.3, obsolete forms as GMime
 * reads them) for SENTBEFORE/SENTON/SENTSINCE.  *when is the instant;
 * *day the days since 1970-01-01 of the date as written, time and zone
 * disregarded (what RFC 3501 compares).  Returns 0, or -ENOENT (no Date
 * field) or -EINVAL (one that does not parse): the caller then uses the
 * internal date.
 */
int imap_msg_date(const struct imap_msg *m, time_t *when, long *day);

/*
 * imap_syntax_check - whether s[0..len) is balanced IMAP output: every
 * quoted string closed (and holding no CR, LF or NUL), every literal
 * {n}CRLF followed by n bytes, parentheses balanced outside them, one
 * outermost list.  When it holds, *nlists (may be NULL) is the number of
 * lists that open the outermost one before its first other item: for a
 * multipart BODY[STRUCTURE], its number of parts.  Used by the tests and
 * the fuzz target.
 */
bool imap_syntax_check(const char *s, size_t len, size_t *nlists);

#endif
