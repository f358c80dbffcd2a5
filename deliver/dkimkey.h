/*
 * dkimkey - DKIM private keys on disk: generation (kurierctl dkim keygen),
 * loading (deliver/dkimsign at start-up) and the DNS TXT record to
 * publish (kurierctl dns).
 *
 * A sending domain's key lives in data_dir/dkim/<domain>.<selector>.key:
 * an unencrypted PEM private key (PKCS#8 "PRIVATE KEY", or PKCS#1 "RSA
 * PRIVATE KEY"), RSA of at least 1024 bits (RFC 8301 3.2; keygen makes
 * 2048) or Ed25519 (RFC 8463).  The algorithm is read from the key.
 * Domain and selector are case-insensitive DNS names; file names use
 * their lower-case form, so "Example.COM" and "example.com" are one key.
 *
 * Key file permissions: a key whose mode allows more than 0640 (owner
 * read/write, group read) is refused when loading for signing, with the
 * chmod that fixes it.  A signing key others can read must be treated as
 * published, so kurier will not start on it rather than warn into a log
 * nobody reads; 0640 stays allowed for a group-readable deployment.
 * dkimkey_record() does not check the mode: printing the public half
 * discloses nothing.
 *
 * Errors are 0 or a negative errno, with err holding a message that names
 * the file and what to do ("data/dkim/example.com.s1.key: cannot open:
 * No such file or directory (run kurierctl dkim keygen example.com
 * --selector s1)").  A key file is read as core/file reads any secret
 * (regular file, at most DKIMKEY_FILE_MAX bytes, zeroed once parsed).
 * OpenSSL's error queue is left empty on return.  These calls read and write files and generate keys:
 * call them from kurierctl or at start-up, never on the loop.
 */
#ifndef KURIER_DELIVER_DKIMKEY_H
#define KURIER_DELIVER_DKIMKEY_H

#include <openssl/types.h>
#include <stdbool.h>
#include <stddef.h>

#define DKIMKEY_DOMAIN_MAX 253   /* a DNS name without the root dot */
#define DKIMKEY_SELECTOR_MAX 63  /* kurier's own bound, so names stay short */
#define DKIMKEY_RSA_BITS 2048    /* what keygen makes */
#define DKIMKEY_RSA_MIN_BITS 1024 /* RFC 8301 3.2: verifiers may refuse less */
#define DKIMKEY_FILE_MAX 65536   /* a key file larger than this is refused */

/*
 * dkimkey_domain_valid - whether domain is a host name: labels of
 * letters, digits and '-' (not first or last), 1-63 octets each, at most
 * 253 in all, no empty label and no trailing dot.
 */
bool dkimkey_domain_valid(const char *domain);

/*
 * dkimkey_selector_valid - whether selector is a DKIM selector (RFC 6376
 * 3.1: sub-domains separated by '.'): letters, digits, '-' inside a
 * label, '.' between labels, at most DKIMKEY_SELECTOR_MAX octets; never
 * '/', so it is safe in a file name.
 */
bool dkimkey_selector_valid(const char *selector);

/*
 * dkimkey_path - "data_dir/dkim/<domain>.<selector>.key" into dst[size],
 * domain and selector lower-cased.  Returns 0, -EINVAL (invalid domain or
 * selector, err says which) or -ENAMETOOLONG.
 */
int dkimkey_path(char *dst, size_t size, const char *data_dir,
    const char *domain, const char *selector, char *err, size_t errsz);

/*
 * dkimkey_load - read and parse the key of domain and selector.  When
 * check_mode is set the file must be a regular file with a mode no more
 * open than 0640 (-EPERM otherwise).  The key must be RSA of at least
 * DKIMKEY_RSA_MIN_BITS or Ed25519 (-EINVAL otherwise); encrypted keys are
 * refused without prompting.  Returns 0 with *out holding a key the
 * caller EVP_PKEY_free()s, or a negative errno with err naming the path
 * and the fix (-ENOENT: no key, run keygen).
 */
int dkimkey_load(EVP_PKEY **out, const char *data_dir, const char *domain,
    const char *selector, bool check_mode, char *err, size_t errsz);

/*
 * dkimkey_generate - make data_dir (if missing) and data_dir/dkim/ (mode
 * 0700) and write a new key for algo "rsa" (DKIMKEY_RSA_BITS) or
 * "ed25519" to <domain>.<selector>.key: PEM (PKCS#8), mode 0600, created
 * with O_EXCL, so an existing key is never overwritten (-EEXIST, err
 * names the path).  A key file cut short by a failed write is removed.
 * On success *txt holds the record to publish (see dkimkey_txt); the
 * caller frees it.  Returns 0 or a negative errno with err set.
 */
int dkimkey_generate(const char *data_dir, const char *domain,
    const char *selector, const char *algo, char **txt, char *err,
    size_t errsz);

/*
 * dkimkey_record - *txt gets the TXT record of the existing key of
 * domain and selector (kurierctl dns).  The key file's mode is not
 * checked.  Returns 0 (caller frees *txt) or a negative errno with err.
 */
int dkimkey_record(const char *data_dir, const char *domain,
    const char *selector, char **txt, char *err, size_t errsz);

/*
 * dkimkey_txt - the zone-file line publishing pk's public half:
 *   <selector>._domainkey.<domain>. IN TXT ( "v=DKIM1; k=rsa; p=..." "..." )
 * The text is cut into quoted strings of at most 255 octets (RFC 1035
 * 3.3.14; RFC 6376 3.6.2.2: a verifier joins them).  p= is the
 * SubjectPublicKeyInfo DER in base64 for RSA (RFC 6376 3.6.1) and the raw
 * 32-byte public key in base64 for Ed25519 (RFC 8463 4.2).  Domain and
 * selector are lower-cased.  Returns 0 with *txt set (caller frees), or
 * -EINVAL for another key type.
 */
int dkimkey_txt(char **txt, EVP_PKEY *pk, const char *domain,
    const char *selector);

#endif
