/*
 * fuzz_dsn - libFuzzer target for dsn_compose, which writes remote
 * servers' replies, addresses and the original message into a report.
 * Byte 0 holds flags (bits 0-1 the first recipient's action, bit 2
 * expired, bit 3 RET=FULL, bit 4 body kept, bits 5-6 the second's
 * action, bit 7 a second recipient); the rest is split at NUL bytes into
 * reply 1, address 1, ORCPT 1, remote MTA 1, reply 2, address 2, ENVID,
 * header section, body (each may be missing).
 *
 * Invariants, besides no crash, leak or read past the input: the result
 * is 0; every line ends in CRLF and is at most 998 octets; everything
 * before the third part (the report's header, the text and the
 * delivery-status) is 7-bit without NUL; the delivery-status holds one
 * Action field per recipient, whatever the inputs hold; the boundary
 * occurs in neither the header section nor the body, and in the report
 * only as its four delimiters (a reply quoting it changes it).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailbox/dsn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NFIELDS 9

static bool
contains(const char *p, size_t n, const char *needle)
{
	size_t nl = strlen(needle);

	for (size_t i = 0; nl <= n && i + nl <= n; i++)
		if (memcmp(p + i, needle, nl) == 0)
			return true;
	return false;
}

static size_t
count(const char *p, size_t n, const char *needle)
{
	size_t nl = strlen(needle), c = 0;

	for (size_t i = 0; nl <= n && i + nl <= n; i++)
		if (memcmp(p + i, needle, nl) == 0)
			c++;
	return c;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *f[NFIELDS] = { 0 };
	size_t flen[NFIELDS] = { 0 }, pos = 1, nrcpt;
	struct dsn_rcpt rc[2];
	struct dsn_report r;
	struct buf out = BUF_INIT;
	const char *third, *ds, *bnd;
	char boundary[200];
	uint8_t fl;
	size_t col = 0;

	if (size == 0 || size > 200000)
		return 0;
	fl = data[0];
	for (int i = 0; i < NFIELDS && pos <= size; i++) {
		const uint8_t *end = memchr(data + pos, 0, size - pos);
		size_t n = end ? (size_t)(end - (data + pos)) : size - pos;

		f[i] = malloc(n + 1);
		memcpy(f[i], data + pos, n);
		f[i][n] = '\0';
		flen[i] = n;
		pos += n + 1;
	}
	memset(rc, 0, sizeof rc);
	memset(&r, 0, sizeof r);
	rc[0].addr = f[1] ? f[1] : "a@b";
	rc[0].orcpt = f[2];
	rc[0].action = (enum dsn_action)((fl & 3) % 3);
	rc[0].expired = fl & 4;
	rc[0].reply = f[0];
	rc[0].remote_mta = f[3];
	rc[0].last_attempt_ms = 1796600000000ULL;
	rc[1].addr = f[5] ? f[5] : "c@d";
	rc[1].action = (enum dsn_action)(((fl >> 5) & 3) % 3);
	rc[1].reply = f[4];
	nrcpt = fl & 128 ? 2 : 1;
	r.hostname = "mx.kurier.test";
	r.to = rc[0].addr;
	r.queue_id = "0123456789ABCDEF";
	r.unique = "0123456789ABCDEF.failed.1796600000000.0";
	r.envid = f[6];
	r.arrival_ms = 1796500000000ULL;
	r.now_ms = 1796600000000ULL;
	r.retry_until_ms = 1796900000000ULL;
	r.ret_full = fl & 8;
	r.head = f[7];
	r.head_len = flen[7];
	r.body = fl & 16 ? f[8] : NULL;
	r.body_len = fl & 16 ? flen[8] : 0;
	r.rcpt = rc;
	r.nrcpt = nrcpt;
	if (dsn_compose(&r, &out) != 0)
		abort();
	for (size_t i = 0; i < out.len; i++) {
		if (out.data[i] == '\r') {
			if (i + 1 >= out.len || out.data[i + 1] != '\n')
				abort();
			continue;
		}
		if (out.data[i] == '\n') {
			if (i == 0 || out.data[i - 1] != '\r')
				abort();
			col = 0;
			continue;
		}
		if (++col > 998)
			abort();
	}
	/* The boundary, and where the third part starts. */
	bnd = strstr(out.data, "delivery-status;\r\n\tboundary=\"");
	if (bnd == NULL)
		abort();
	bnd += strlen("delivery-status;\r\n\tboundary=\"");
	snprintf(boundary, sizeof boundary, "--%.*s", (int)(strchr(bnd, '"') - bnd), bnd);
	if ((r.head && contains(r.head, r.head_len, boundary + 2)) ||
	    (r.body && r.ret_full && contains(r.body, r.body_len, boundary + 2)))
		abort();
	/* Nor in the parts made here, which quote the replies: only as delimiters. */
	if (count(out.data, out.len, boundary) != 4)
		abort();
	/* The delimiters (exactly four, checked above) cut the parts: text, status, original. */
	ds = strstr(out.data, boundary);
	ds = ds ? strstr(ds + 1, boundary) : NULL;
	third = ds ? strstr(ds + 1, boundary) : NULL;
	if (ds == NULL || third == NULL ||
	    strncmp(ds + strlen(boundary), "\r\nContent-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n", 81) != 0)
		abort();
	for (const char *p = out.data; p < third; p++)
		if (*p == '\0' || (unsigned char)*p >= 0x80)
			abort();
	if (count(ds, (size_t)(third - ds), "\r\nAction: ") != nrcpt ||
	    count(ds, (size_t)(third - ds), "\r\nFinal-Recipient: ") != nrcpt)
		abort();
	buf_free(&out);
	for (int i = 0; i < NFIELDS; i++)
		free(f[i]);
	return 0;
}
