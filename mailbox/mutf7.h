/*
 * mutf7 - IMAP's modified UTF-7 for mailbox names (RFC 3501 5.1.3), to
 * and from UTF-8.
 *
 * Strict both ways: printable US-ASCII other than "&" stands for itself
 * and must not be encoded; "&-" is "&"; anything else is "&", modified
 * base64 ("," for "/", no padding) of UTF-16BE, "-".  Decoding refuses
 * raw bytes outside 0x20-0x7e, an unterminated or empty-but-not-"&-"
 * shift, base64 whose leftover bits are not zero, a lone or reversed
 * surrogate, an encoded printable ASCII character, an encoded NUL or
 * control character, and two shifts back to back (the shortest form
 * merges them): each encoding has exactly one form, so names compare
 * bytewise.  Encoding refuses input that is not valid UTF-8 (overlong
 * forms, surrogates, above U+10FFFF) or holds control characters.
 */
#ifndef KURIER_MAILBOX_MUTF7_H
#define KURIER_MAILBOX_MUTF7_H

#include <stddef.h>

#include "core/buf.h"

/*
 * mutf7_decode - append the UTF-8 of in[0..len) to out.  0, or -EINVAL
 * with err (out then holds a partial result the caller discards).
 */
int mutf7_decode(const char *in, size_t len, struct buf *out, char *err, size_t errsz);
/* mutf7_encode - append the modified UTF-7 of UTF-8 in[0..len) to out; 0 or -EINVAL. */
int mutf7_encode(const char *in, size_t len, struct buf *out, char *err, size_t errsz);

#endif
