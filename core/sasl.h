/*
 * sasl - the codings SASL exchanges share across kurier's protocols
 * (SMTP AUTH, RFC 4954; IMAP AUTHENTICATE, RFC 3501 6.2.2; POP3 AUTH,
 * RFC 5034): strict base64 (RFC 4648 4) and the PLAIN message (RFC 4616).
 * Pure functions, no allocation.
 */
#ifndef KURIER_CORE_SASL_H
#define KURIER_CORE_SASL_H

#include <stdbool.h>
#include <stddef.h>

#define SASL_PART_MAX 255 /* RFC 4616 2: authzid, authcid, passwd */

/* Bytes sasl_base64_encode needs for n input bytes, the NUL included. */
#define SASL_BASE64_SIZE(n) (((n) + 2) / 3 * 4 + 1)

/*
 * sasl_base64_decode - strict RFC 4648 4 base64 s[0..len) into dst[size]:
 * only the 64 letters, padding required (len a multiple of 4), '=' only
 * as the last one or two, the unused bits of the last quantum zero, no
 * white space.  "" decodes to nothing.  Returns 0 with *outlen set;
 * -E2BIG when dst is too small (checked first); -EINVAL otherwise, for
 * which an SMTP session answers "501 5.5.2 Invalid base64", IMAP "BAD", POP3 "-ERR".  dst is not
 * NUL-terminated.
 */
int sasl_base64_decode(const char *s, size_t len, unsigned char *dst,
    size_t size, size_t *outlen);
/*
 * sasl_base64_encode - s[0..len) as padded base64 into dst[size], NUL-
 * terminated (for SMTP 334 and IMAP "+" challenges: "Username:" -> "VXNlcm5hbWU6").
 * Returns the length, or -E2BIG if size < SASL_BASE64_SIZE(len).
 */
int sasl_base64_encode(const unsigned char *s, size_t len, char *dst,
    size_t size);

/*
 * sasl_plain_split - a decoded PLAIN message "[authzid] NUL authcid
 * NUL passwd" (RFC 4616 2) into three NUL-terminated strings.  authzid
 * may be empty; authcid and passwd may not; each is at most 255 octets;
 * there are exactly two NULs.  The identities must be valid UTF-8; the
 * password is compared as bytes and is not checked.  Returns 0; -EINVAL;
 * or -E2BIG when a part is valid but its buffer too small (sizes of
 * SASL_PART_MAX + 1 always fit).  On error every buffer holds "".
 */
int sasl_plain_split(const unsigned char *msg, size_t len,
    char *authzid, size_t azs, char *authcid, size_t acs,
    char *passwd, size_t pws);

#endif
