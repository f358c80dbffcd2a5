/*
 * mutf7 - modified UTF-7 mailbox names (RFC 3501 5.1.3).  See mutf7.h.
 */
#include "mailbox/mutf7.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/str.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

#define SUR_HI_MIN 0xd800
#define SUR_HI_MAX 0xdbff
#define SUR_LO_MIN 0xdc00
#define SUR_LO_MAX 0xdfff
#define UNICODE_MAX 0x10ffff
#define BMP_END 0x10000

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

/* A character that names may not hold: C0, DEL, C1. */
static bool
control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

static bool
printable_ascii(uint32_t cp)
{
	return cp >= 0x20 && cp <= 0x7e;
}

static void
put_utf8(struct buf *out, uint32_t cp)
{
	if (cp < 0x80) {
		buf_appendc(out, (char)cp);
	} else if (cp < 0x800) {
		buf_appendc(out, (char)(0xc0 | cp >> 6));
		buf_appendc(out, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < BMP_END) {
		buf_appendc(out, (char)(0xe0 | cp >> 12));
		buf_appendc(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
		buf_appendc(out, (char)(0x80 | (cp & 0x3f)));
	} else {
		buf_appendc(out, (char)(0xf0 | cp >> 18));
		buf_appendc(out, (char)(0x80 | ((cp >> 12) & 0x3f)));
		buf_appendc(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
		buf_appendc(out, (char)(0x80 | (cp & 0x3f)));
	}
}

/* The state of one "&...-" run being decoded. */
struct run {
	uint32_t bits;
	unsigned nbits;
	uint32_t hi; /* a high surrogate waiting for its low half, or 0 */
};

/* unit - one UTF-16 code unit of a run. */
static int
unit(struct run *rn, uint32_t u, struct buf *out, char *err, size_t errsz)
{
	uint32_t cp;

	if (rn->hi != 0) {
		if (u < SUR_LO_MIN || u > SUR_LO_MAX)
			return str_err(err, errsz, -EINVAL, "unpaired UTF-16 surrogate in name");
		cp = BMP_END + ((rn->hi - SUR_HI_MIN) << 10) + (u - SUR_LO_MIN);
		rn->hi = 0;
		put_utf8(out, cp);
		return 0;
	}
	if (u >= SUR_HI_MIN && u <= SUR_HI_MAX) {
		rn->hi = u;
		return 0;
	}
	if (u >= SUR_LO_MIN && u <= SUR_LO_MAX)
		return str_err(err, errsz, -EINVAL, "unpaired UTF-16 surrogate in name");
	if (printable_ascii(u))
		return str_err(err, errsz, -EINVAL, "printable ASCII encoded in name (not the shortest form)");
	if (control(u))
		return str_err(err, errsz, -EINVAL, "control character in name");
	put_utf8(out, u);
	return 0;
}

/* decode_run - in[*i] is the first byte after "&" (not "-"). */
static int
decode_run(const char *in, size_t len, size_t *i, struct buf *out, char *err, size_t errsz)
{
	struct run rn = { 0, 0, 0 };
	int rc;

	for (; *i < len && in[*i] != '-'; (*i)++) {
		int v = b64_value((unsigned char)in[*i]);

		if (v < 0)
			return str_err(err, errsz, -EINVAL, "bad modified base64 in name");
		rn.bits = (rn.bits << 6 | (uint32_t)v) & 0xffffff;
		rn.nbits += 6;
		if (rn.nbits >= 16) {
			rn.nbits -= 16;
			if ((rc = unit(&rn, (rn.bits >> rn.nbits) & 0xffff, out, err, errsz)) < 0)
				return rc;
		}
	}
	if (*i == len)
		return str_err(err, errsz, -EINVAL, "unterminated '&' sequence in name");
	(*i)++;
	if (rn.hi != 0)
		return str_err(err, errsz, -EINVAL, "unpaired UTF-16 surrogate in name");
	if (rn.nbits >= 6 || (rn.bits & ((1u << rn.nbits) - 1)) != 0)
		return str_err(err, errsz, -EINVAL, "bad modified base64 padding in name");
	return 0;
}

int
mutf7_decode(const char *in, size_t len, struct buf *out, char *err, size_t errsz)
{
	bool after_run = false;
	size_t i = 0;
	int rc;

	while (i < len) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 0x80)
			return str_err(err, errsz, -EINVAL, "8-bit byte in name (not modified UTF-7)");
		if (!printable_ascii(c))
			return str_err(err, errsz, -EINVAL, "control byte in name");
		i++;
		if (c != '&') {
			buf_appendc(out, (char)c);
			after_run = false;
			continue;
		}
		if (i < len && in[i] == '-') {
			buf_appendc(out, '&');
			i++;
			after_run = false;
			continue;
		}
		if (after_run)
			return str_err(err, errsz, -EINVAL, "two '&' sequences back to back in name");
		if ((rc = decode_run(in, len, &i, out, err, errsz)) < 0)
			return rc;
		after_run = true;
	}
	return 0;
}

/* utf8_next - the code point at in[*i] (strict RFC 3629), or -1. */
static int32_t
utf8_next(const unsigned char *in, size_t len, size_t *i)
{
	static const uint32_t min[] = { 0, 0x80, 0x800, BMP_END };
	unsigned char c = in[*i];
	size_t n;
	uint32_t cp;

	if (c < 0x80) {
		(*i)++;
		return c;
	}
	if (c >= 0xc2 && c <= 0xdf)
		n = 1, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 2, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 3, cp = c & 0x07;
	else
		return -1;
	if (len - *i <= n)
		return -1;
	for (size_t k = 1; k <= n; k++) {
		if ((in[*i + k] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (in[*i + k] & 0x3f);
	}
	if (cp < min[n] || cp > UNICODE_MAX || (cp >= SUR_HI_MIN && cp <= SUR_LO_MAX))
		return -1;
	*i += n + 1;
	return (int32_t)cp;
}

struct enc {
	uint32_t bits;
	unsigned nbits;
	bool open;
};

static void
enc_unit(struct enc *e, struct buf *out, uint32_t u)
{
	if (!e->open) {
		buf_appendc(out, '&');
		e->open = true;
	}
	e->bits = (e->bits << 16 | u) & 0xffffff;
	e->nbits += 16;
	while (e->nbits >= 6) {
		e->nbits -= 6;
		buf_appendc(out, b64[(e->bits >> e->nbits) & 0x3f]);
	}
}

static void
enc_close(struct enc *e, struct buf *out)
{
	if (!e->open)
		return;
	if (e->nbits > 0)
		buf_appendc(out, b64[(e->bits << (6 - e->nbits)) & 0x3f]);
	buf_appendc(out, '-');
	e->bits = 0;
	e->nbits = 0;
	e->open = false;
}

int
mutf7_encode(const char *in, size_t len, struct buf *out, char *err, size_t errsz)
{
	const unsigned char *u = (const unsigned char *)in;
	struct enc e = { 0, 0, false };
	size_t i = 0;

	while (i < len) {
		int32_t cp = utf8_next(u, len, &i);

		if (cp < 0)
			return str_err(err, errsz, -EINVAL, "name is not valid UTF-8");
		if (control((uint32_t)cp))
			return str_err(err, errsz, -EINVAL, "control character in name");
		if (printable_ascii((uint32_t)cp)) {
			enc_close(&e, out);
			if (cp == '&')
				buf_appends(out, "&-");
			else
				buf_appendc(out, (char)cp);
		} else if (cp >= BMP_END) {
			enc_unit(&e, out, SUR_HI_MIN + (((uint32_t)cp - BMP_END) >> 10));
			enc_unit(&e, out, SUR_LO_MIN + (((uint32_t)cp - BMP_END) & 0x3ff));
		} else {
			enc_unit(&e, out, (uint32_t)cp);
		}
	}
	enc_close(&e, out);
	return 0;
}
