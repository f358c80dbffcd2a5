/*
 * verp - signed VERP return paths.  Every delivery's MAIL FROM is
 * "b+TOKEN@<return_path domain>", and a bounce that comes back to that
 * address names the message and recipient it is about; the signature
 * makes sure kurier only acts on addresses it issued itself.
 *
 * TOKEN, all in the queue id's Crockford base32 alphabet (qid.c), which
 * holds no letter pair that differs only by case, so an MTA that folds
 * the local part to lower (or upper) case does not break it:
 *
 *   QID(16) N(1..7) MAC(10)            27..33 characters
 *
 *   QID  the 16-character queue id, as is.
 *   N    rcpt_idx * 2 + job in base32, most significant digit first,
 *        without leading zeros (one spelling per value).  job says the
 *        transaction carried every recipient of one domain (a "job"),
 *        rcpt_idx then being the job's first recipient; without it the
 *        transaction had rcpt_idx alone.  For a job bounce the DSN's
 *        Final-Recipient picks the recipient.
 *   MAC  the first 50 bits of HMAC-SHA256(key, "kurier-verp-1" NUL ||
 *        QID || rcpt_idx (4 bytes, big-endian) || job (1 byte) ||
 *        return-path domain lower-cased), as 10 base32 digits.
 *
 * "b+" plus 33 is 35 characters, well inside RFC 5321's 64.  50 bits
 * make a forged address a 1 in 10^15 guess, each guess being a message
 * to our MX.  The domain is under the MAC, so a token copied to another
 * return-path domain does not verify.
 *
 * The 32-byte key comes from [deliver] verp_secret or data_dir/verp.key
 * (verp_load_key).  Changing it invalidates addresses in flight: bounces
 * for messages sent under the old key then fail with -EBADMSG.
 *
 * No function here allocates; all are thread-safe.
 */
#ifndef KURIER_DELIVER_VERP_H
#define KURIER_DELIVER_VERP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/qid.h"

#define VERP_KEY_LEN 32
/* Longest TOKEN; "b+" + TOKEN is the local part. */
#define VERP_TOKEN_MAX (QID_LEN + 7 + 10)

struct verp_info {
	char qid[QID_SIZE]; /* upper case, as queue/qid.h makes them */
	uint32_t rcpt_idx;
	bool job;
};

/*
 * verp_load_key - the VERP secret into key.  A non-empty conf_secret
 * (verp_secret) is hex (64 or more hex digits) or standard padded base64,
 * at least 32 bytes either way; exactly 32 bytes are the key, a longer
 * secret is hashed to 32 with SHA-256.  A string of hex digits is read
 * as hex even though it would also be valid base64.
 * Without conf_secret: data_dir/verp.key, 32 raw bytes, is read; when it
 * does not exist it is created with 32 bytes from RAND_bytes(), mode
 * 0600.  Creation writes a temporary file (O_EXCL, 0600), fsyncs it and
 * link()s it to the final name, so the file appears whole or not at all
 * and, when two processes start at once, the second link fails and that
 * process reads the winner's key: both end up with one key.  data_dir
 * must exist.  A key file that is not a regular file of 32 bytes, or
 * that group or others may read, is refused.
 * Returns 0, or a negative errno with err[errsz] naming the path (or
 * "verp_secret") and the reason.
 */
int verp_load_key(const char *conf_secret, const char *data_dir,
    uint8_t key[VERP_KEY_LEN], char *err, size_t errsz);

/*
 * verp_encode - "b+TOKEN@domain" into out[outsz], TOKEN in upper case
 * and the domain lower-cased.  qid must pass qid_valid(); domain is the
 * return-path host name (LDH labels of 1..63, no trailing dot), and the
 * whole address at most 254 octets (RFC 5321 4.5.3.1.3 less the
 * brackets).  Returns the address length, -EINVAL for a bad qid or
 * domain, -E2BIG when out is too small (out then holds "").
 */
int verp_encode(const uint8_t key[VERP_KEY_LEN], const char *qid,
    uint32_t rcpt_idx, bool job, const char *domain, char *out, size_t outsz);

/*
 * verp_decode - check addr[0..len), "b+TOKEN@domain" with or without
 * angle brackets and in any case, and fill *info.  addr need not be
 * NUL-terminated; any len is safe (more than a path's 256 octets is
 * refused before it is read).  Returns 0; -EINVAL when addr is not a
 * VERP address of this form (a NUL inside counts); -EBADMSG when it is
 * one but its MAC does not verify under key for this domain (forged,
 * altered, or issued under another key).  The MAC is compared in
 * constant time.  *info is zeroed unless 0 is returned.
 */
int verp_decode(const uint8_t key[VERP_KEY_LEN], const char *addr, size_t len,
    struct verp_info *info);

#endif
