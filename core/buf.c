/*
 * buf - growable byte buffer and bounded line reader.  See buf.h.
 */
#include "core/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"

void
buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = b->pos = b->cap = 0;
	b->skip = false;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

/* Empty the buffer, keeping the line reader's state. */
static void
rewind_empty(struct buf *b)
{
	b->len = b->pos = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void
buf_reset(struct buf *b)
{
	rewind_empty(b);
	b->skip = false;
}

char *
buf_reserve(struct buf *b, size_t n)
{
	size_t need, cap;

	/* Reclaim consumed bytes before growing. */
	if (b->pos > 0 && b->len + n + 1 > b->cap) {
		memmove(b->data, b->data + b->pos, b->len - b->pos);
		b->len -= b->pos;
		b->pos = 0;
		b->data[b->len] = '\0';
	}
	if (n > SIZE_MAX / 2 - b->len)
		log_panic("core", "buf_overflow", "len=%zu add=%zu", b->len, n);
	need = b->len + n + 1;
	if (need > b->cap) {
		cap = b->cap ? b->cap : 64;
		while (cap < need)
			cap *= 2;
		b->data = xreallocarray(b->data, cap, 1);
		b->data[b->len] = '\0';  /* a fresh allocation holds garbage */
		b->cap = cap;
	}
	return b->data + b->len;
}

void
buf_commit(struct buf *b, size_t n)
{
	if (b->len + n >= b->cap)
		log_panic("core", "buf_commit", "len=%zu n=%zu cap=%zu", b->len, n, b->cap);
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_append(struct buf *b, const void *p, size_t n)
{
	char *d = buf_reserve(b, n);

	if (n > 0)
		memcpy(d, p, n);
	buf_commit(b, n);
}

void
buf_appends(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void
buf_appendc(struct buf *b, char c)
{
	buf_append(b, &c, 1);
}

void
buf_appendf(struct buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		log_panic("core", "buf_appendf", "fmt=%s", fmt);
	if ((size_t)n < sizeof tmp) {
		buf_append(b, tmp, (size_t)n);
		return;
	}
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_commit(b, (size_t)n);
}

size_t
buf_unread(const struct buf *b)
{
	return b->len - b->pos;
}

const char *
buf_rptr(const struct buf *b)
{
	return b->data ? b->data + b->pos : "";
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n > b->len - b->pos)
		log_panic("core", "buf_consume", "n=%zu unread=%zu", n, b->len - b->pos);
	b->pos += n;
	if (b->pos == b->len)
		rewind_empty(b);
}

char *
buf_steal(struct buf *b, size_t *len)
{
	char *d;

	if (b->data == NULL)
		buf_reserve(b, 0);
	if (b->pos > 0) {
		memmove(b->data, b->data + b->pos, b->len - b->pos);
		b->len -= b->pos;
		b->pos = 0;
		b->data[b->len] = '\0';
	}
	d = b->data;
	if (len != NULL)
		*len = b->len;
	buf_init(b);
	return d;
}

int
buf_getline(struct buf *b, size_t max, const char **line, size_t *len,
    bool *bare_lf)
{
	const char *start, *lf;
	size_t unread, scan, n;

	if (b->skip) {
		/* The tail of an over-long line: drop it through its LF. */
		start = buf_rptr(b);
		unread = buf_unread(b);
		lf = unread ? memchr(start, '\n', unread) : NULL;
		if (lf == NULL) {
			if (unread > 0)
				buf_consume(b, unread);
			return BUF_NEEDMORE;
		}
		b->skip = false;
		buf_consume(b, (size_t)(lf - start) + 1);
	}
	start = buf_rptr(b);
	unread = buf_unread(b);
	scan = unread < max + 2 ? unread : max + 2;
	lf = scan ? memchr(start, '\n', scan) : NULL;
	if (lf == NULL) {
		if (unread <= max + 1)
			return BUF_NEEDMORE;
		/* Too long: drop through the next LF if it is here, else skip to it. */
		lf = memchr(start, '\n', unread);
		buf_consume(b, lf ? (size_t)(lf - start) + 1 : unread);
		if (lf == NULL)
			b->skip = true;
		return BUF_TOOLONG;
	}
	n = (size_t)(lf - start);
	*bare_lf = !(n > 0 && start[n - 1] == '\r');
	if (!*bare_lf)
		n--;
	if (n > max) {
		buf_consume(b, (size_t)(lf - start) + 1);
		return BUF_TOOLONG;
	}
	*line = start;
	*len = n;
	/* Consumed but still in memory until the buffer next grows. */
	b->pos += (size_t)(lf - start) + 1;
	return 0;
}
