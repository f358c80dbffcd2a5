/*
 * str - fixed-size copies, strict parsing, host and user names, error
 * messages.  See str.h.
 */
#include "core/str.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

ssize_t
str_copyn(char *dst, const void *src, size_t len, size_t size)
{
	if (size == 0)
		return -E2BIG;
	if (len >= size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = '\0';
		return -E2BIG;
	}
	memcpy(dst, src, len);
	dst[len] = '\0';
	return (ssize_t)len;
}

ssize_t
str_copy(char *dst, const char *src, size_t size)
{
	return str_copyn(dst, src, strnlen(src, size), size);
}

char *
str_lower(char *s)
{
	for (char *p = s; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

char *
str_trim(char *s)
{
	size_t n;

	while (is_space(*s))
		s++;
	n = strlen(s);
	while (n > 0 && is_space(s[n - 1]))
		s[--n] = '\0';
	return s;
}

bool
str_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

int
str_to_u64n(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int
str_to_u64(const char *s, uint64_t *out)
{
	return str_to_u64n(s, strlen(s), out);
}

/* Split "25M" into the number and the unit; the unit is lower-cased. */
static int
split_unit(const char *s, uint64_t *num, char *unit, size_t unitsz)
{
	size_t n = 0, len = strlen(s);
	int rc;

	while (n < len && s[n] >= '0' && s[n] <= '9')
		n++;
	if ((rc = str_to_u64n(s, n, num)) < 0)
		return rc;
	if (len - n >= unitsz)
		return -EINVAL;
	for (size_t i = n; i < len; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c < 'a' || c > 'z')
			return -EINVAL;
		unit[i - n] = c;
	}
	unit[len - n] = '\0';
	return 0;
}

static int
mul_checked(uint64_t a, uint64_t b, uint64_t *out)
{
	if (b != 0 && a > UINT64_MAX / b)
		return -ERANGE;
	*out = a * b;
	return 0;
}

int
str_to_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t mul;
	} units[] = {
		{ "", 1 }, { "b", 1 },
		{ "k", 1ULL << 10 }, { "kb", 1ULL << 10 },
		{ "m", 1ULL << 20 }, { "mb", 1ULL << 20 },
		{ "g", 1ULL << 30 }, { "gb", 1ULL << 30 },
	};
	char unit[4];
	uint64_t n;
	int rc;

	if ((rc = split_unit(s, &n, unit, sizeof unit)) < 0)
		return rc;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(unit, units[i].unit) == 0)
			return mul_checked(n, units[i].mul, out);
	return -EINVAL;
}

int
str_to_duration_ms(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
		{ "ms", 1 }, { "", 1000 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 }, { "w", 604800000 },
	};
	char unit[4];
	uint64_t n;
	int rc;

	if ((rc = split_unit(s, &n, unit, sizeof unit)) < 0)
		return rc;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(unit, units[i].unit) == 0)
			return mul_checked(n, units[i].ms, out);
	return -EINVAL;
}

const char *
str_duration(char *dst, size_t size, uint64_t ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
		{ "w", 604800000 }, { "d", 86400000 }, { "h", 3600000 },
		{ "m", 60000 }, { "s", 1000 },
	};

	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(dst, size, "%" PRIu64 "%s", ms / units[i].ms, units[i].unit);
			return dst;
		}
	}
	snprintf(dst, size, "%" PRIu64 "ms", ms);
	return dst;
}

int
str_verr(char *err, size_t errsz, int rc, const char *fmt, va_list ap)
{
	if (err != NULL && errsz > 0)
		vsnprintf(err, errsz, fmt, ap);
	return rc;
}

int
str_err(char *err, size_t errsz, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rc = str_verr(err, errsz, rc, fmt, ap);
	va_end(ap);
	return rc;
}

static bool
is_let_dig(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

bool
str_is_hostname_n(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > STR_HOSTNAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (c == '-' ? label == 0 : !is_let_dig(c))
			return false;
		if (++label > 63)
			return false;
	}
	/* label 0 here: a trailing dot. */
	return label > 0 && s[len - 1] != '-';
}

bool
str_is_hostname(const char *s)
{
	return str_is_hostname_n(s, strnlen(s, STR_HOSTNAME_MAX + 1));
}

bool
str_is_username(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		char c = s[n];

		if (n == STR_USERNAME_MAX)
			return false;
		if (!is_let_dig(c) && c != '.' && c != '_' && c != '@' && c != '+' &&
		    c != '-')
			return false;
	}
	return n > 0;
}
