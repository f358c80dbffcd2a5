/*
 * buf - a growable, binary-safe byte buffer with a read position, and the
 * bounded CRLF line reader every protocol parser uses.
 *
 * Bytes are appended at data+len and consumed from data+pos; consumed
 * bytes are reclaimed when the buffer next grows.  data is always
 * NUL-terminated at data[len] (not counted), so text can be used as a
 * C string when it holds no NUL.  A struct buf is embedded by its owner;
 * BUF_INIT or buf_init() makes an empty one, buf_free() releases it.
 */
#ifndef KURIER_CORE_BUF_H
#define KURIER_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len; /* bytes stored, from data[0] */
	size_t pos; /* bytes consumed, from data[0] */
	size_t cap; /* bytes allocated, the NUL included */
	bool skip;  /* buf_getline: dropping the rest of an over-long line */
};

#define BUF_INIT { NULL, 0, 0, 0, false }

void buf_init(struct buf *b);
void buf_free(struct buf *b);
/* buf_reset - forget all contents (and a line being skipped), keep the allocation. */
void buf_reset(struct buf *b);
/* buf_reserve - make room for n more bytes after len; returns data+len. */
char *buf_reserve(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_appends(struct buf *b, const char *s);
void buf_appendc(struct buf *b, char c);
void buf_appendf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* buf_commit - count n bytes written at buf_reserve()'s pointer. */
void buf_commit(struct buf *b, size_t n);
/* buf_unread - bytes appended and not yet consumed. */
size_t buf_unread(const struct buf *b);
const char *buf_rptr(const struct buf *b);
/* buf_consume - mark n unread bytes as read (n <= buf_unread()). */
void buf_consume(struct buf *b, size_t n);
/* buf_steal - hand data to the caller (who frees it) and empty b. */
char *buf_steal(struct buf *b, size_t *len);

enum {
	BUF_NEEDMORE = -1, /* no complete line yet */
	BUF_TOOLONG = -2,  /* the line is longer than max */
};

/*
 * buf_getline - the next line among the unread bytes.  A line ends with
 * LF; *line points at its first byte and *len counts it without the
 * line end.  *bare_lf is set when it ended in LF without CR (callers that
 * must refuse bare LF check it).  Returns 0 and consumes the line, or
 * BUF_NEEDMORE (nothing consumed), or BUF_TOOLONG when more than max
 * bytes came without a line end: those bytes are consumed up to the next
 * LF; if that LF has not arrived yet, the buffer remembers to drop what
 * comes until it does, so the tail of the long line never reads as a
 * line of its own.  Either way the caller replies once and goes on, or
 * closes.  buf_reset() forgets the skipping.
 * *line stays valid until the next call that changes b.
 */
int buf_getline(struct buf *b, size_t max, const char **line, size_t *len,
    bool *bare_lf);

#endif
