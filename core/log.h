/*
 * log - one line per event, key=value fields, to stderr.
 *
 * Every line reads
 *   time=2026-11-22T13:54:00.123Z level=info component=queue event=enqueued id=0... k=v ...
 * The caller supplies component, event and the remaining key=value text.
 * Values that may hold spaces or client bytes go through log_quote(),
 * which escapes and quotes them, so one event is always one line.
 * Passwords and AUTH data are never passed here.
 *
 * log_fatal() is for the environment (bad config, port in use): it logs
 * and exits 1.  log_panic() is for a bug in kurier: it logs and aborts.
 * All functions are thread-safe: a line is built in a local buffer and
 * written with one write(2).
 */
#ifndef KURIER_CORE_LOG_H
#define KURIER_CORE_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level {
	LOG_DEBUG = 0,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR,
};

#define LOG_LINE_MAX 4096

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* log_level_parse - "debug", "info", "warn", "error" -> level; 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);
/* log_set_fd - send lines to fd instead of stderr (tests). */
void log_set_fd(int fd);

void log_msg(enum log_level level, const char *component, const char *event,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void log_vmsg(enum log_level level, const char *component, const char *event,
    const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

#define log_debug(comp, ev, ...) log_msg(LOG_DEBUG, comp, ev, __VA_ARGS__)
#define log_info(comp, ev, ...)  log_msg(LOG_INFO, comp, ev, __VA_ARGS__)
#define log_warn(comp, ev, ...)  log_msg(LOG_WARN, comp, ev, __VA_ARGS__)
#define log_error(comp, ev, ...) log_msg(LOG_ERROR, comp, ev, __VA_ARGS__)

void log_fatal(const char *component, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
void log_panic(const char *component, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/*
 * log_quote - write src[0..len) into dst as a double-quoted value with
 * '"', '\\', control bytes and bytes >= 0x7f escaped (\n, \xNN), cut to
 * fit dstsz (a cut value ends in "..." inside the quotes).  Returns dst,
 * always NUL-terminated.  dstsz must be at least 8.
 */
const char *log_quote(char *dst, size_t dstsz, const void *src, size_t len);
/* log_quotes - log_quote() of a NUL-terminated string (NULL logs as ""). */
const char *log_quotes(char *dst, size_t dstsz, const char *src);

#endif
