/*
 * sasl - base64 and the PLAIN message for SASL exchanges.  See sasl.h.
 */
#include "core/sasl.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/mailaddr.h"
#include "core/str.h"

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
sasl_base64_decode(const char *s, size_t len, unsigned char *dst,
    size_t size, size_t *outlen)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t need, o = 0;

	*outlen = 0;
	if (len % 4 != 0)
		return -EINVAL;
	need = len / 4 * 3;
	if (len > 0 && u[len - 1] == '=')
		need -= u[len - 2] == '=' ? 2 : 1;
	if (need > size)
		return -E2BIG;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		int a, b, c, d;

		a = b64val(u[i]);
		b = b64val(u[i + 1]);
		if (a < 0 || b < 0)
			return -EINVAL;
		dst[o++] = (unsigned char)(a << 2 | b >> 4);
		if (last && u[i + 2] == '=') {
			/* "xx==": the low 4 bits of b are padding. */
			if (u[i + 3] != '=' || (b & 0x0f) != 0)
				return -EINVAL;
			break;
		}
		if ((c = b64val(u[i + 2])) < 0)
			return -EINVAL;
		dst[o++] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
		if (last && u[i + 3] == '=') {
			if ((c & 0x03) != 0)
				return -EINVAL;
			break;
		}
		if ((d = b64val(u[i + 3])) < 0)
			return -EINVAL;
		dst[o++] = (unsigned char)((c & 0x03) << 6 | d);
	}
	*outlen = o;
	return 0;
}

int
sasl_base64_encode(const unsigned char *s, size_t len, char *dst, size_t size)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 2 || size < SASL_BASE64_SIZE(len)) {
		if (size > 0)
			dst[0] = '\0';
		return -E2BIG;
	}
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)s[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;

		if (n > 1)
			v |= (unsigned)s[i + 1] << 8;
		if (n > 2)
			v |= s[i + 2];
		dst[o++] = abc[v >> 18 & 0x3f];
		dst[o++] = abc[v >> 12 & 0x3f];
		dst[o++] = n > 1 ? abc[v >> 6 & 0x3f] : '=';
		dst[o++] = n > 2 ? abc[v & 0x3f] : '=';
	}
	dst[o] = '\0';
	return (int)o;
}

int
sasl_plain_split(const unsigned char *msg, size_t len,
    char *authzid, size_t azs, char *authcid, size_t acs,
    char *passwd, size_t pws)
{
	const unsigned char *z1, *z2, *end = msg + len;
	size_t azl, acl, pwl;
	int rc = -EINVAL;

	if ((z1 = memchr(msg, '\0', len)) == NULL ||
	    (z2 = memchr(z1 + 1, '\0', (size_t)(end - z1 - 1))) == NULL ||
	    memchr(z2 + 1, '\0', (size_t)(end - z2 - 1)) != NULL)
		goto fail;
	azl = (size_t)(z1 - msg);
	acl = (size_t)(z2 - z1 - 1);
	pwl = (size_t)(end - z2 - 1);
	if (acl == 0 || pwl == 0 || azl > SASL_PART_MAX ||
	    acl > SASL_PART_MAX || pwl > SASL_PART_MAX)
		goto fail;
	if (!mailaddr_utf8_valid((const char *)msg, azl) ||
	    !mailaddr_utf8_valid((const char *)z1 + 1, acl))
		goto fail;
	rc = -E2BIG;
	if (str_copyn(authzid, msg, azl, azs) < 0 ||
	    str_copyn(authcid, z1 + 1, acl, acs) < 0 ||
	    str_copyn(passwd, z2 + 1, pwl, pws) < 0)
		goto fail;
	return 0;
fail:
	if (azs > 0)
		authzid[0] = '\0';
	if (acs > 0)
		authcid[0] = '\0';
	if (pws > 0)
		passwd[0] = '\0';
	return rc;
}
