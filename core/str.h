/*
 * str - fixed-size string copies, strict number, size and duration
 * parsing, the host-name and user-name checks and the error-message
 * formatter that every "char *err, size_t errsz" API shares.  No
 * function here allocates.
 */
#ifndef KURIER_CORE_STR_H
#define KURIER_CORE_STR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * str_copy - copy src into dst[size] (strscpy semantics): returns the
 * length copied, or -E2BIG when src does not fit (dst then holds the
 * truncated, NUL-terminated prefix).  size must be > 0.
 */
ssize_t str_copy(char *dst, const char *src, size_t size);
/* str_copyn - as str_copy for src[0..len), which need not be NUL-terminated. */
ssize_t str_copyn(char *dst, const void *src, size_t len, size_t size);

/* str_lower - ASCII lower-case s in place; returns s. */
char *str_lower(char *s);
/* str_trim - strip ASCII white space at both ends in place; returns the start. */
char *str_trim(char *s);
bool str_has_prefix(const char *s, const char *prefix);

/*
 * str_to_u64 - the whole of s as a decimal number with no sign, no space
 * and no leading '+'; 0, -EINVAL (not a number) or -ERANGE (too large).
 */
int str_to_u64(const char *s, uint64_t *out);
/* str_to_u64n - as str_to_u64 over s[0..len). */
int str_to_u64n(const char *s, size_t len, uint64_t *out);

/*
 * str_to_size - "26214400", "25M", "512k", "1G" (binary multiples, case
 * ignored, optional trailing "B") -> bytes; 0, -EINVAL or -ERANGE.
 */
int str_to_size(const char *s, uint64_t *out);
/*
 * str_to_duration_ms - "30s", "5m", "2h", "5d", "1w", "250ms" or a plain
 * number of seconds -> milliseconds; 0, -EINVAL or -ERANGE.
 */
int str_to_duration_ms(const char *s, uint64_t *out);
/* str_duration - format ms as the shortest exact "5d", "90m", "1500ms". */
const char *str_duration(char *dst, size_t size, uint64_t ms);

/*
 * str_err - format a message into err[errsz] (cut to fit, always
 * NUL-terminated) and return rc, so that a failing path reads
 * "return str_err(err, errsz, -EINVAL, "%s: not a key", path);".
 * err may be NULL or errsz 0: nothing is written.  Touches no errno.
 */
int str_err(char *err, size_t errsz, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* str_verr - str_err over a va_list (for formatters of their own). */
int str_verr(char *err, size_t errsz, int rc, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* Longest host name in text form, no trailing dot (RFC 1035 2.3.4). */
#define STR_HOSTNAME_MAX 253
/*
 * str_is_hostname - whether s is a DNS host name in LDH form (RFC 1123
 * 2.1): dot-separated labels of 1 to 63 ASCII letters, digits and
 * hyphens, no label starting or ending with a hyphen, 1 to
 * STR_HOSTNAME_MAX bytes in all, no trailing dot.  Case is not checked
 * (callers lower-case what they keep).  A single label ("localhost",
 * a DKIM selector) passes.
 */
bool str_is_hostname(const char *s);
/* str_is_hostname_n - as str_is_hostname over s[0..len) (a NUL in it fails). */
bool str_is_hostname_n(const char *s, size_t len);

/* Longest user name ([relay] trusted_user, kurierctl user NAME). */
#define STR_USERNAME_MAX 64
/*
 * str_is_username - whether s is a kurier user name: 1 to
 * STR_USERNAME_MAX ASCII letters, digits and "._@+-" (an address such
 * as "shop@example.com" passes).  Reads at most STR_USERNAME_MAX + 1
 * bytes of s.
 */
bool str_is_username(const char *s);

#endif
