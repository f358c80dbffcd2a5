/*
 * fuzz_smtp_reply - libFuzzer target for deliver/smtpreply, the reader of
 * what an SMTP server sends the delivery client.  Byte 0: bit 0 asks
 * for EHLO keywords, bits 1-7 a step size; the rest is the server's
 * output.
 *
 * The input is read as a sequence of replies three ways: whole, in
 * pieces of the step size, and a byte at a time (when short).  Each way
 * must give the same replies (code, lines, size, text, enhanced code,
 * keywords) and stop at the same byte with the same error.  Every reply
 * must keep the bounds: a code 200..599, 1..SMTPREPLY_LINES_MAX lines,
 * at most SMTPREPLY_SIZE_MAX bytes, a NUL-terminated text of textlen
 * printable ASCII bytes below SMTPREPLY_TEXT_SIZE that starts with the
 * code, and an esc that is empty or starts with class 2, 4 or 5 and a
 * dot.  EHLO keywords come only from a 2xx reply of two lines or more.
 * Any disagreement aborts.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/smtpreply.h"

#define BYTEWISE_MAX 4096
#define REPLIES_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	size_t nreplies;
	struct smtpreply r[REPLIES_MAX];
	size_t end[REPLIES_MAX];   /* input offset after each reply */
	int error;                 /* 0, or the error that stopped the reading */
	size_t stop;               /* input offset where it stopped */
	const char *why;
};

static void
check_reply(const struct smtpreply *r)
{
	if (r->code < 200 || r->code > 599)
		abort();
	if (r->nlines < 1 || r->nlines > SMTPREPLY_LINES_MAX || r->size > SMTPREPLY_SIZE_MAX)
		abort();
	if (r->textlen >= SMTPREPLY_TEXT_SIZE || strlen(r->text) != r->textlen ||
	    r->textlen < 3)
		abort();
	for (size_t i = 0; i < r->textlen; i++)
		if (r->text[i] < 0x20 || r->text[i] > 0x7e)
			abort();
	if (r->text[0] != '0' + r->code / 100 || r->text[1] != '0' + r->code / 10 % 10 ||
	    r->text[2] != '0' + r->code % 10)
		abort();
	if (r->cut && (r->textlen != SMTPREPLY_TEXT_SIZE - 1 ||
	    strcmp(r->text + r->textlen - 3, "...") != 0))
		abort();
	if (strlen(r->esc) >= SMTPREPLY_ESC_SIZE)
		abort();
	if (r->esc[0] != '\0' && (strlen(r->esc) < 5 ||
	    (r->esc[0] != '2' && r->esc[0] != '4' && r->esc[0] != '5') || r->esc[1] != '.'))
		abort();
	if ((r->code / 100 != 2 || r->nlines < 2) && (r->ehlo.ext != 0 || r->ehlo.auth != 0 ||
	    r->ehlo.size_max != 0))
		abort();
	if (r->ehlo.auth != 0 && !(r->ehlo.ext & SMTPREPLY_EXT_AUTH))
		abort();
	if (r->ehlo.size_max != 0 && !(r->ehlo.ext & SMTPREPLY_EXT_SIZE))
		abort();
}

/* Read replies from in[0..len), step bytes per call. */
static void
read_all(struct run *run, const char *in, size_t len, size_t step, bool ehlo)
{
	struct smtpreply_reader rd;
	size_t pos = 0, chunk_end = 0;

	memset(run, 0, sizeof *run);
	smtpreply_init(&rd);
	rd.ehlo = ehlo;
	while (pos < len) {
		size_t n, used;
		int rc;

		if (pos >= chunk_end)
			chunk_end = pos + step < len ? pos + step : len;
		n = chunk_end - pos;
		rc = smtpreply_feed(&rd, in + pos, n, &used);
		if (used > n)
			abort();
		pos += used;
		if (rc < 0) {
			if (rc != rd.error || rd.why == NULL)
				abort();
			run->error = rc;
			run->why = rd.why;
			break;
		}
		if (rc == SMTPREPLY_MORE) {
			if (used != n)
				abort();
			continue;
		}
		if (rc != SMTPREPLY_DONE || used == 0)
			abort();
		check_reply(&rd.r);
		if (pos == 0 || in[pos - 1] != '\n')
			abort();
		if (run->nreplies < REPLIES_MAX) {
			run->r[run->nreplies] = rd.r;
			run->end[run->nreplies] = pos;
		}
		run->nreplies++;
	}
	run->stop = pos;
}

static void
same(const struct run *a, const struct run *b)
{
	size_t n = a->nreplies < REPLIES_MAX ? a->nreplies : REPLIES_MAX;

	if (a->nreplies != b->nreplies || a->error != b->error ||
	    (a->error != 0 && strcmp(a->why, b->why) != 0))
		abort();
	if (a->stop != b->stop)
		abort();
	for (size_t i = 0; i < n; i++) {
		const struct smtpreply *x = &a->r[i], *y = &b->r[i];

		if (a->end[i] != b->end[i] || x->code != y->code || x->nlines != y->nlines ||
		    x->size != y->size || x->textlen != y->textlen || x->cut != y->cut ||
		    strcmp(x->text, y->text) != 0 || strcmp(x->esc, y->esc) != 0 ||
		    x->ehlo.ext != y->ehlo.ext || x->ehlo.auth != y->ehlo.auth ||
		    x->ehlo.size_max != y->ehlo.size_max)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run whole, split, bytewise;
	const char *in;
	size_t len, step;
	bool ehlo;

	if (size < 1)
		return 0;
	ehlo = data[0] & 1;
	step = 1 + (data[0] >> 1);
	in = (const char *)data + 1;
	len = size - 1;

	read_all(&whole, in, len, len > 0 ? len : 1, ehlo);
	read_all(&split, in, len, step, ehlo);
	same(&whole, &split);
	if (len <= BYTEWISE_MAX) {
		read_all(&bytewise, in, len, 1, ehlo);
		same(&whole, &bytewise);
	}
	return 0;
}
