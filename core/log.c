/*
 * log - one line per event, key=value fields.  See log.h.
 */
#include "core/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = LOG_INFO;
static atomic_int log_fd = STDERR_FILENO;

static const char *const level_names[] = {
	[LOG_DEBUG] = "debug",
	[LOG_INFO] = "info",
	[LOG_WARN] = "warn",
	[LOG_ERROR] = "error",
};

void
log_set_level(enum log_level level)
{
	atomic_store(&log_level, (int)level);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load(&log_level);
}

void
log_set_fd(int fd)
{
	atomic_store(&log_fd, fd);
}

int
log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *
log_level_name(enum log_level level)
{
	if ((unsigned)level < sizeof level_names / sizeof level_names[0])
		return level_names[level];
	return "?";
}

/* Append to a line buffer, never past its end; the cut is marked later. */
static size_t
line_add(char *line, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static size_t
line_add(char *line, size_t off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (off >= LOG_LINE_MAX - 1)
		return off;
	va_start(ap, fmt);
	n = vsnprintf(line + off, LOG_LINE_MAX - 1 - off, fmt, ap);
	va_end(ap);
	if (n < 0)
		return off;
	off += (size_t)n;
	return off < LOG_LINE_MAX - 1 ? off : LOG_LINE_MAX - 2;
}

static void
log_emit(const char *level, const char *component, const char *event,
    const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void
log_emit(const char *level, const char *component, const char *event,
    const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	size_t off;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	off = strftime(line, 32, "time=%Y-%m-%dT%H:%M:%S", &tm);
	off = line_add(line, off, ".%03ldZ level=%s component=%s event=%s",
	    ts.tv_nsec / 1000000L, level, component, event);
	if (fmt != NULL && fmt[0] != '\0') {
		line[off++] = ' ';
		n = vsnprintf(line + off, LOG_LINE_MAX - 1 - off, fmt, ap);
		if (n > 0)
			off += (size_t)n;
		if (off >= LOG_LINE_MAX - 1)
			off = LOG_LINE_MAX - 2;
	}
	/* A caller's text never splits the line. */
	for (size_t i = 0; i < off; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[off++] = '\n';
	(void)!write(atomic_load(&log_fd), line, off);
}

void
log_vmsg(enum log_level level, const char *component, const char *event,
    const char *fmt, va_list ap)
{
	if ((int)level < atomic_load(&log_level))
		return;
	log_emit(log_level_name(level), component, event, fmt, ap);
}

void
log_msg(enum log_level level, const char *component, const char *event,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, component, event, fmt, ap);
	va_end(ap);
}

void
log_fatal(const char *component, const char *event, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit("fatal", component, event, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_panic(const char *component, const char *event, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit("panic", component, event, fmt, ap);
	va_end(ap);
	abort();
}

const char *
log_quote(char *dst, size_t dstsz, const void *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = src;
	size_t o = 0, lim;

	if (dstsz < 8) {
		if (dstsz > 0)
			dst[0] = '\0';
		return dst;
	}
	/* Room for the closing quote, a possible "..." and the NUL. */
	lim = dstsz - 5;
	dst[o++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		char esc[4];
		size_t n;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			n = 2;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			esc[0] = '\\';
			esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
			n = 2;
		} else if (c < 0x20 || c >= 0x7f) {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[c >> 4];
			esc[3] = hex[c & 15];
			n = 4;
		} else {
			esc[0] = (char)c;
			n = 1;
		}
		if (o + n > lim) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(dst + o, esc, n);
		o += n;
	}
	dst[o++] = '"';
	dst[o] = '\0';
	return dst;
}

const char *
log_quotes(char *dst, size_t dstsz, const char *src)
{
	if (src == NULL)
		src = "";
	return log_quote(dst, dstsz, src, strlen(src));
}
