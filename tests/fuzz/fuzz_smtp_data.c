/*
 * fuzz_smtp_data - libFuzzer target for the DATA reader.  Input: byte 0
 * picks max_size (below 64: that many bytes; else no limit), bytes 1-2
 * a split point, the rest is what the client sent after "354".
 *
 * The same bytes are fed whole, in two pieces and (when short) a byte at
 * a time: the status, the end, the output and every flag must agree.
 * Then the result is checked against a plain model of RFC 5321 4.5.2:
 * the data ends at the first CR LF "." CR LF (the start counting as
 * after CR LF); before it, the lines split at CR LF lose one leading
 * dot each.  Any disagreement aborts.
 *
 * The output then goes where the end of DATA sends it: core/rfc5322's
 * scanner, which splits it into the header section and the body
 * (rfc5322_head_len, rfc5322_is_field).  The split must fall inside the
 * message, right after a line end, and every field it calls one must
 * have a colon.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/rfc5322.h"
#include "relay/smtp_data.h"

#define BYTEWISE_MAX 4096

struct run {
	int rc;
	size_t consumed;
	struct buf out;
	struct smtp_data_result r;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
feed(struct run *run, const char *in, size_t len, size_t step, size_t cut,
    uint64_t max)
{
	struct smtp_data d;
	size_t pos = 0, n;

	buf_init(&run->out);
	smtp_data_init(&d, &run->out, max);
	run->rc = SMTP_DATA_MORE;
	while (run->rc == SMTP_DATA_MORE) {
		size_t k;

		if (step != 0)
			k = len - pos < step ? len - pos : step;
		else
			k = pos < cut ? cut - pos : len - pos;
		run->rc = smtp_data_feed(&d, in + pos, k, &n);
		if (n > k || (run->rc == SMTP_DATA_MORE && n != k))
			abort();
		pos += n;
		if (pos == len && run->rc == SMTP_DATA_MORE)
			break;
	}
	run->consumed = pos;
	run->r = *smtp_data_result(&d);
	if (run->r.consumed != pos)
		abort();
}

static void
same(const struct run *a, const struct run *b)
{
	if (a->rc != b->rc || a->consumed != b->consumed ||
	    a->out.len != b->out.len ||
	    (a->out.len > 0 && memcmp(a->out.data, b->out.data, a->out.len) != 0) ||
	    a->r.bare_lf != b->r.bare_lf || a->r.bare_cr != b->r.bare_cr ||
	    a->r.nul != b->r.nul || a->r.too_big != b->r.too_big ||
	    a->r.line_too_long != b->r.line_too_long || a->r.size != b->r.size)
		abort();
}

/* find_end - offset just past the first CR LF "." CR LF, or 0. */
static size_t
find_end(const char *in, size_t len)
{
	if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
		return 3;
	for (size_t i = 0; i + 5 <= len; i++)
		if (memcmp(in + i, "\r\n.\r\n", 5) == 0)
			return i + 5;
	return 0;
}

/* model - the RFC 5321 reading of in[0..len) against what the reader did. */
static void
model(const struct run *run, const char *in, size_t len, uint64_t max)
{
	size_t end = find_end(in, len), body, i, start;
	struct buf ref = BUF_INIT;
	bool bare_lf = false, bare_cr = false, nul = false, too_long = false;

	if (run->out.len > run->consumed || run->out.len > max ||
	    run->r.size < run->out.len)
		abort();
	if (end == 0) {
		if (run->rc != SMTP_DATA_MORE || run->consumed != len)
			abort();
	} else if (run->rc != SMTP_DATA_END || run->consumed != end)
		abort();
	for (i = 0; i < run->consumed; i++) {
		if (in[i] == '\0')
			nul = true;
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			bare_lf = true;
		if (in[i] == '\r' && i + 1 < run->consumed && in[i + 1] != '\n')
			bare_cr = true;
	}
	if (run->r.nul != nul || run->r.bare_lf != bare_lf || run->r.bare_cr != bare_cr)
		abort();
	if (end == 0)
		return;

	/* The lines before ".\r\n", each ending in CR LF. */
	body = end - 3;
	for (start = 0, i = 0; i + 1 < body; i++) {
		size_t n, skip;

		if (in[i] != '\r' || in[i + 1] != '\n')
			continue;
		n = i - start;
		if (n > SMTP_DATA_LINE_MAX)
			too_long = true;
		skip = n > 0 && in[start] == '.';
		buf_append(&ref, in + start + skip, n - skip + 2);
		start = i + 2;
		i++;
	}
	if (start != body || run->r.line_too_long != too_long ||
	    run->r.size != ref.len || run->r.too_big != (ref.len > max) ||
	    run->out.len != (ref.len > max ? (size_t)max : ref.len) ||
	    (run->out.len > 0 && memcmp(run->out.data, ref.data, run->out.len) != 0))
		abort();
	buf_free(&ref);
}

/* head_split - the header section as relay's end of DATA finds it. */
static void
head_split(const struct buf *out)
{
	const char *msg = out->len > 0 ? out->data : "";
	size_t head = rfc5322_head_len(msg, out->len), fl;
	struct rfc5322_scan sc;
	const char *f;

	if (head > out->len || (head < out->len && (head == 0 || msg[head - 1] != '\n')))
		abort();
	rfc5322_scan_init(&sc, msg, out->len);
	while (rfc5322_next(&sc, &f, &fl))
		if (rfc5322_is_field(f, fl) && rfc5322_field_colon(f, fl) == NULL)
			abort();
	if (sc.body != NULL ? sc.body != msg + head : head != out->len)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, split, bytes;
	const char *in;
	size_t len, cut;
	uint64_t max;

	if (size < 3)
		return 0;
	max = data[0] < 64 ? data[0] : UINT64_MAX;
	in = (const char *)data + 3;
	len = size - 3;
	cut = (size_t)(data[1] | data[2] << 8) % (len + 1);

	feed(&whole, in, len, 0, len, max);
	feed(&split, in, len, 0, cut, max);
	same(&whole, &split);
	if (len <= BYTEWISE_MAX) {
		feed(&bytes, in, len, 1, 0, max);
		same(&whole, &bytes);
		buf_free(&bytes.out);
	}
	model(&whole, in, len, max);
	head_split(&whole.out);
	buf_free(&whole.out);
	buf_free(&split.out);
	return 0;
}
