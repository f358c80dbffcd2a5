/*
 * smtp_data - incremental, smuggling-safe DATA reader.  See smtp_data.h.
 *
 * States, by what the last bytes were:
 *   BOL    start of a line: the start of the data or just after CR LF
 *   DOT    BOL "."           the dot is held back (dropped if stuffing)
 *   DOTCR  BOL "." CR        held back: LF now ends the data
 *   MID    inside a line
 *   CR     inside a line, after a CR (already stored)
 *   END    the terminator was read
 * Only BOL, DOT and DOTCR hold bytes back; everything else is stored as
 * it arrives, so a split anywhere gives the same output.
 */
#include "relay/smtp_data.h"

#include <string.h>

#include "core/log.h"

enum {
	S_BOL,
	S_DOT,
	S_DOTCR,
	S_MID,
	S_CR,
	S_END,
};

/* linelen stops here: enough to know the line is too long. */
#define LINELEN_CAP (SMTP_DATA_LINE_MAX + 2)

/* Room reserved in out for one call, and what was written to it. */
struct sink {
	char *p;
	size_t n;
	size_t cap;
};

static void emit(struct smtp_data *, struct sink *, const char *, size_t);
static void count_line(struct smtp_data *, size_t);

void
smtp_data_init(struct smtp_data *d, struct buf *out, uint64_t max_size)
{
	memset(d, 0, sizeof *d);
	d->out = out;
	d->max_size = max_size;
	d->state = S_BOL;
}

/*
 * emit - store s[0..n) as unstuffed data, up to max_size in all; past it
 * set too_big and only count.
 */
static void
emit(struct smtp_data *d, struct sink *k, const char *s, size_t n)
{
	uint64_t before = d->r.size;

	d->r.size = before + n < before ? UINT64_MAX : before + n;
	if (d->r.too_big)
		return;
	if (d->r.size > d->max_size) {
		d->r.too_big = true;
		n = (size_t)(d->max_size - before);
	}
	/* Room was reserved for this call unless it began too_big. */
	if (k->p == NULL || k->n + n > k->cap)
		log_panic("smtp", "data_overrun", "n=%zu add=%zu cap=%zu",
		    k->n, n, k->cap);
	memcpy(k->p + k->n, s, n);
	k->n += n;
}

/* count_line - n more octets on the current line (RFC 5321 4.5.3.1.6). */
static void
count_line(struct smtp_data *d, size_t n)
{
	d->linelen = n > LINELEN_CAP - d->linelen ? LINELEN_CAP : d->linelen + n;
	/* A held CR counts: more than 998 + CR means over 998 before CR LF. */
	if (d->linelen > SMTP_DATA_LINE_MAX + 1)
		d->r.line_too_long = true;
}

int
smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
    size_t *consumed)
{
	struct sink k = { NULL, 0, 0 };
	size_t i = 0;
	int rc = SMTP_DATA_MORE;

	*consumed = 0;
	if (d->state == S_END)
		return SMTP_DATA_END;
	if (!d->r.too_big) {
		/* At most the input and one held-back CR, at most the room left. */
		uint64_t room = d->max_size - d->r.size;

		k.cap = room > len ? len + 1 : (size_t)room;
		k.p = buf_reserve(d->out, k.cap);
	}
	while (i < len) {
		char c = in[i];

		if (d->state == S_MID) {
			/* The common case: a run of ordinary bytes. */
			size_t j = i;

			while (j < len && in[j] != '\r' && in[j] != '\n' && in[j] != '\0')
				j++;
			if (j > i) {
				emit(d, &k, in + i, j - i);
				count_line(d, j - i);
				i = j;
				continue;
			}
		}
		i++;
		if (c == '\0')
			d->r.nul = true;
		if (c == '\n' && (d->state == S_CR || d->state == S_DOTCR)) {
			d->linelen = 0;
			if (d->state == S_DOTCR) {
				d->state = S_END;
				rc = SMTP_DATA_END;
				break;
			}
			emit(d, &k, &c, 1);
			d->state = S_BOL;
			continue;
		}
		count_line(d, 1);
		switch (d->state) {
		case S_BOL:
			if (c == '.') {
				d->state = S_DOT;
				continue;
			}
			break;
		case S_DOT:
			if (c == '\r') {
				d->state = S_DOTCR;
				continue;
			}
			/* "." then more: the dot was stuffing (RFC 5321 4.5.2). */
			break;
		case S_DOTCR:
			/* ".", CR, not LF: the dot was stuffing, the CR bare. */
			d->r.bare_cr = true;
			emit(d, &k, "\r", 1);
			break;
		case S_CR:
			d->r.bare_cr = true;
			break;
		default:
			break;
		}
		/* c as a byte inside a line. */
		if (c == '\n')
			d->r.bare_lf = true;
		d->state = c == '\r' ? S_CR : S_MID;
		emit(d, &k, &c, 1);
	}
	if (k.p != NULL)
		buf_commit(d->out, k.n);
	*consumed = i;
	d->r.consumed += i;
	return rc;
}

const struct smtp_data_result *
smtp_data_result(const struct smtp_data *d)
{
	return &d->r;
}
