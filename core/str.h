/*
 * str - fixed-size string copies and strict number, size and duration
 * parsing.  No function here allocates.
 */
#ifndef KURIER_CORE_STR_H
#define KURIER_CORE_STR_H

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

#endif
