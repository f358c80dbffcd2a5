/*
 * fuzz_envelope - libFuzzer target for the queue's record decoders.
 * Records come from Redis, which anyone with access to it can edit: a
 * decoder must refuse garbage with -EBADMSG, never crash or leak, and
 * whatever it accepts must encode to a record that decodes again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "queue/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope e, e2;
	struct jobstate j, j2;
	struct buf b = BUF_INIT;

	if (envelope_decode(&e, data, size) == 0) {
		envelope_encode(&e, &b);
		if (envelope_decode(&e2, b.data, b.len) != 0 || e2.nrcpt != e.nrcpt ||
		    strcmp(e2.sender, e.sender) != 0)
			abort();
		for (size_t i = 0; i < e.nrcpt; i++)
			if (strcmp(e.rcpt[i].addr, e2.rcpt[i].addr) != 0)
				abort();
		envelope_free(&e2);
		envelope_free(&e);
		buf_reset(&b);
	}
	if (jobstate_decode(&j, data, size) == 0) {
		jobstate_encode(&j, &b);
		if (jobstate_decode(&j2, b.data, b.len) != 0 || j2.n != j.n)
			abort();
		jobstate_free(&j2);
		jobstate_free(&j);
	}
	buf_free(&b);
	return 0;
}
