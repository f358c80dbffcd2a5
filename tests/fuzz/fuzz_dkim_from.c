/*
 * fuzz_dkim_from - libFuzzer target for what DKIM signing reads of a
 * submitted message before any key is used: the header scanner and the
 * RFC 5322 From parser of deliver/dkimsign.  The key set is empty, so
 * every message ends unsigned (-ENOENT, with the From domain found) or
 * refused (-EINVAL, -EMSGSIZE, -EBADMSG); never a crash, a hang, a read
 * past the message or a leak.
 *
 * Byte 0 picks where the header section ends: 0 = at the first empty
 * line (as the queue stores it), else at that many bytes, clamped.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/dkimsign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dkimsign *ds;
	struct dkimsign_result res;
	char err[256], *msg;
	const char *end;
	size_t len, head;

	if (ds == NULL && dkimsign_open(&ds, "/nonexistent", err, sizeof err) < 0)
		abort();
	if (size == 0)
		return 0;
	len = size - 1;
	/* A copy of exactly len bytes, so ASan sees any read past it. */
	msg = malloc(len ? len : 1);
	if (msg == NULL)
		return 0;
	memcpy(msg, data + 1, len);
	if (data[0] == 0) {
		end = len >= 4 ? memmem(msg, len, "\r\n\r\n", 4) : NULL;
		head = end ? (size_t)(end - msg) + 4 : len;
	} else {
		head = data[0] < len ? data[0] : len;
	}
	memset(&res, 0, sizeof res);
	dkimsign_sign(ds, msg, head, len, DKIMSIGN_ALL, &res);
	if (res.status != -ENOENT && res.status != -EINVAL && res.status != -EMSGSIZE &&
	    res.status != -EBADMSG)
		abort();
	if (res.nsig != 0 || memchr(res.domain, '\0', sizeof res.domain) == NULL ||
	    memchr(res.why, '\0', sizeof res.why) == NULL)
		abort();
	for (const char *p = res.domain; *p; p++)
		if (isupper((unsigned char)*p))
			abort();
	dkimsign_result_free(&res);
	free(msg);
	return 0;
}
