/*
 * fuzz_verp - libFuzzer target for verp_decode, the parser the inbound
 * bounce MX runs on every RCPT.  Byte 0 picks the mode; the rest is:
 *
 *   0  an address to decode as is.
 *   1  a return-path domain, encoded into a VERP address with a queue id,
 *      index and flag drawn from its bytes, then decoded back.
 *   2  an edit (position, new byte) applied to an encoded address.
 *
 * Invariants, besides no crash and no read past len: the result is 0,
 * -EINVAL or -EBADMSG, and *info is zero unless it is 0; whatever
 * decodes re-encodes to the same address apart from case and brackets;
 * an encoded address decodes to its fields in any case; an edited
 * address decodes only to the fields it was made from (an edit that
 * only changes case), never to other ones.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "queue/verp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[VERP_KEY_LEN] = {
	0x6b, 0x75, 0x72, 0x69, 0x65, 0x72, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d,
	0x76, 0x65, 0x72, 0x70, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x30, 0x31, 0x32,
	0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x21,
};

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static bool
info_zero(const struct verp_info *info)
{
	static const struct verp_info zero;

	return memcmp(info, &zero, sizeof zero) == 0;
}

/* check_decode - decode s[0..len) and check the invariants; returns the result. */
static int
check_decode(const char *s, size_t len, struct verp_info *info)
{
	char out[300];
	const char *a = s;
	size_t alen = len;
	int r, n;

	r = verp_decode(key, s, len, info);
	if (r != 0 && r != -EINVAL && r != -EBADMSG)
		abort();
	if (r != 0) {
		if (!info_zero(info))
			abort();
		return r;
	}
	if (strlen(info->qid) != 16)
		abort();
	if (alen >= 2 && a[0] == '<') {
		a++;
		alen -= 2;
	}
	/* Re-encode with the input's domain: the same address, case aside. */
	{
		const char *at = memchr(a, '@', alen);
		char dom[300];
		size_t dlen;

		if (at == NULL)
			abort();
		dlen = alen - (size_t)(at + 1 - a);
		if (dlen >= sizeof dom)
			abort();
		memcpy(dom, at + 1, dlen);
		dom[dlen] = '\0';
		n = verp_encode(key, info->qid, info->rcpt_idx, info->job, dom, out,
		    sizeof out);
		if (n < 0 || (size_t)n != alen || strncasecmp(out, a, alen) != 0)
			abort();
	}
	return 0;
}

/* encode_from - a VERP address for domain with fields drawn from p[0..8). */
static int
encode_from(const uint8_t *p, const char *domain, char *out, size_t outsz,
    struct verp_info *want)
{
	memset(want, 0, sizeof *want);
	for (int i = 0; i < 16; i++)
		want->qid[i] = alphabet[p[i % 8] >> (i & 1 ? 3 : 0) & 31];
	want->rcpt_idx = (uint32_t)p[0] << 24 | (uint32_t)p[3] << 16 |
	    (uint32_t)p[5] << 8 | p[7];
	want->job = p[1] & 1;
	return verp_encode(key, want->qid, want->rcpt_idx, want->job, domain, out,
	    outsz);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct verp_info info, want;
	char addr[300], dom[300];
	uint8_t fields[8];
	size_t dlen;
	int n;

	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		(void)check_decode((const char *)data + 1, size - 1, &info);
		break;
	case 1:
	case 2:
		if (size < 1 + 8 + 2)
			return 0;
		memcpy(fields, data + 1, 8);
		dlen = size - 9 - (data[0] % 3 == 2 ? 2 : 0);
		if (dlen >= sizeof dom)
			return 0;
		memcpy(dom, data + 9, dlen);
		dom[dlen] = '\0';
		n = encode_from(fields, dom, addr, sizeof addr, &want);
		if (n == -EINVAL || n == -E2BIG)
			return 0;
		if (n < 0 || (size_t)n != strlen(addr))
			abort();
		if (data[0] % 3 == 1) {
			/* Round trip, then with the case of every letter flipped. */
			if (check_decode(addr, (size_t)n, &info) != 0 ||
			    memcmp(&info, &want, sizeof info) != 0)
				abort();
			for (int i = 0; i < n; i++)
				if ((addr[i] | 0x20) >= 'a' && (addr[i] | 0x20) <= 'z')
					addr[i] ^= 0x20;
			if (check_decode(addr, (size_t)n, &info) != 0 ||
			    memcmp(&info, &want, sizeof info) != 0)
				abort();
		} else {
			size_t pos = data[size - 2] % (size_t)n;

			addr[pos] = (char)data[size - 1];
			if (check_decode(addr, (size_t)n, &info) == 0 &&
			    memcmp(&info, &want, sizeof info) != 0)
				abort();
		}
		break;
	}
	return 0;
}
