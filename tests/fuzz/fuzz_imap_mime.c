/*
 * fuzz_imap_mime - libFuzzer target for mailbox/imap_mime: the input is
 * a message's raw bytes.  It is parsed, then ENVELOPE, BODY,
 * BODYSTRUCTURE, a few BODY[section]s (part paths made from the input's
 * last bytes, every section keyword), the search text and the Date are
 * asked for.
 *
 * Invariants, besides no crash, leak or read out of bounds: every
 * ENVELOPE and BODY[STRUCTURE] is balanced IMAP (imap_syntax_check:
 * strings closed, literal lengths right, parentheses balanced); the
 * handle's bytes are the input; HEADER and TEXT are adjacent and make
 * the whole message; every section that points into the message lies
 * inside it; a part's MIME header ends where its body (BODY[n]) begins;
 * search text stays within IMAP_MIME_TEXT_MAX.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "mailbox/imap_mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const kinds[] = { "", ".MIME", ".HEADER", ".TEXT",
	".HEADER.FIELDS (Subject Content-Type)", ".HEADER.FIELDS.NOT (From)" };

/* check_out - abort unless out is balanced IMAP. */
static void
check_out(const struct buf *out)
{
	if (out->len == 0 || !imap_syntax_check(out->data, out->len, NULL))
		abort();
}

/* within - whether d[0..n) lies inside raw[0..len) (or is empty). */
static bool
within(const char *raw, size_t len, const char *d, size_t n)
{
	return n == 0 || (d >= raw && n <= len && d - raw <= (ptrdiff_t)(len - n));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_msg *m = imap_msg_parse((const char *)data, size);
	struct buf out = BUF_INIT, scratch = BUF_INIT;
	const char *raw, *h, *t, *d;
	size_t len, hl, tl, dl;
	time_t when;
	long day;

	raw = imap_msg_raw(m, &len);
	if (len != size || (size > 0 && memcmp(raw, data, size) != 0))
		abort();
	imap_msg_envelope(m, &out);
	check_out(&out);
	buf_reset(&out);
	imap_msg_bodystructure(m, false, &out);
	check_out(&out);
	buf_reset(&out);
	imap_msg_bodystructure(m, true, &out);
	check_out(&out);

	if (imap_msg_section(m, "HEADER", 6, &scratch, &h, &hl) != 0 ||
	    imap_msg_section(m, "TEXT", 4, &scratch, &t, &tl) != 0)
		abort();
	if (h != raw || hl + tl != len || (tl > 0 && t != raw + hl))
		abort();

	/* Part paths from the last three bytes: "a", "a.b", "a.b.c" with each keyword. */
	for (size_t depth = 1; depth <= 3; depth++) {
		char path[64] = "";
		size_t pl = 0;

		for (size_t i = 0; i < depth; i++) {
			unsigned v = size > i ? data[size - 1 - i] % 4 + 1 : 1;

			pl += (size_t)snprintf(path + pl, sizeof path - pl, "%s%u", i > 0 ? "." : "", v);
		}
		const char *body = NULL, *mime = NULL;
		size_t blen = 0, mlen = 0;

		for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
			char spec[160];
			int n = snprintf(spec, sizeof spec, "%s%s", path, kinds[k]);

			if (imap_msg_section(m, spec, (size_t)n, &scratch, &d, &dl) != 0)
				abort();
			if (k < 4 && !within(raw, len, d, dl))
				abort();
			if (k == 0)
				body = d, blen = dl;
			if (k == 1)
				mime = d, mlen = dl;
		}
		/* A part's MIME header ends where its body starts. */
		if (mlen > 0 && blen > 0 && mime + mlen != body)
			abort();
	}
	/* A spec from the input itself: accepted or refused, never more. */
	if (size > 0) {
		size_t n = size < 40 ? size : 40;

		(void)imap_msg_section(m, (const char *)data, n, &scratch, &d, &dl);
	}

	buf_reset(&out);
	imap_msg_body_text(m, true, &out);
	if (out.len > IMAP_MIME_TEXT_MAX)
		abort();
	buf_reset(&out);
	(void)imap_msg_header_text(m, "From", &out);
	if (out.len > IMAP_MIME_TEXT_MAX)
		abort();
	(void)imap_text_match(out.data != NULL ? out.data : "", out.len, "a\xc3\xa9", 3);
	(void)imap_msg_date(m, &when, &day);

	buf_free(&out);
	buf_free(&scratch);
	imap_msg_free(m);
	return 0;
}
