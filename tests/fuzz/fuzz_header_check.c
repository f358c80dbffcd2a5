/*
 * fuzz_header_check - libFuzzer target for the submission header check
 * (policy_check_headers over core/rfc5322): any bytes as a header
 * section.  Every input ends in one of the documented verdicts: OK with
 * an allowed From domain and no reply, or REJECT under rule header.from
 * or sender.header with a 550 reply; never a crash, a hang, a read past
 * the message or a From domain that is not lower case.
 *
 * Byte 0 picks how much of the rest is the message: 0 = all of it, else
 * that many bytes, clamped (so a From beyond the length must not count).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/check.h"

#define DOMAINS "shop.example example.com [192.0.2.1]"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
allowed(const char *d)
{
	static const char *const list[] = { "shop.example", "example.com", "[192.0.2.1]" };
	size_t n = strlen(d);

	if (n > 0 && d[n - 1] == '.')
		n--;
	for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
		if (strlen(list[i]) == n && strncmp(list[i], d, n) == 0)
			return true;
	return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_result res;
	char dom[256], *msg;
	size_t len;
	bool ok;

	if (size == 0)
		return 0;
	len = size - 1;
	if (data[0] != 0 && data[0] < len)
		len = data[0];
	/* A copy of exactly len bytes, so ASan sees any read past it. */
	msg = malloc(len ? len : 1);
	if (msg == NULL)
		return 0;
	memcpy(msg, data + 1, len);
	memset(&res, 0x5a, sizeof res);
	memset(dom, 0x5a, sizeof dom);
	ok = policy_check_headers(DOMAINS, msg, len, dom, sizeof dom, &res);
	if (memchr(dom, '\0', sizeof dom) == NULL ||
	    memchr(res.reply, '\0', sizeof res.reply) == NULL)
		abort();
	for (const char *p = dom; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			abort();
	if (ok) {
		if (res.verdict != POLICY_OK || res.rule != NULL || res.reply[0] != '\0' ||
		    !allowed(dom))
			abort();
	} else {
		if (res.verdict != POLICY_REJECT || res.rule == NULL ||
		    strncmp(res.reply, "550 5.", 6) != 0)
			abort();
		if (strcmp(res.rule, "sender.header") == 0) {
			if (dom[0] != '\0' && allowed(dom))
				abort();
		} else if (strcmp(res.rule, "header.from") != 0) {
			abort();
		}
	}
	free(msg);
	return 0;
}
