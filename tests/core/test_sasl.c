/*
 * test_sasl - core/sasl: strict base64 both ways at its size bounds, and
 * the PLAIN message split (RFC 4616) with its part limits.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/sasl.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define A10 "aaaaaaaaaa"
#define A100 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10

static const struct b64_case {
	const char *enc;
	int rc;
	const char *dec;
	size_t declen;
} b64_cases[] = {
	/* RFC 4648 10. */
	{ "", 0, "", 0 },
	{ "Zg==", 0, "f", 1 },
	{ "Zm8=", 0, "fo", 2 },
	{ "Zm9v", 0, "foo", 3 },
	{ "Zm9vYg==", 0, "foob", 4 },
	{ "Zm9vYmE=", 0, "fooba", 5 },
	{ "Zm9vYmFy", 0, "foobar", 6 },
	{ "VXNlcm5hbWU6", 0, "Username:", 9 },
	{ "UGFzc3dvcmQ6", 0, "Password:", 9 },
	{ "AHVzZXIAcGFzcw==", 0, "\0user\0pass", 10 },
	{ "+/+/", 0, "\xfb\xff\xbf", 3 },
	/* Padding required, and only at the end. */
	{ "Zg", -EINVAL, NULL, 0 },
	{ "Zg=", -EINVAL, NULL, 0 },
	{ "Zm9vYg", -EINVAL, NULL, 0 },
	{ "Zg==Zg==", -EINVAL, NULL, 0 },
	{ "Z===", -EINVAL, NULL, 0 },
	{ "====", -EINVAL, NULL, 0 },
	{ "=Zm9", -EINVAL, NULL, 0 },
	{ "Zm=v", -EINVAL, NULL, 0 },
	{ "Zg=a", -EINVAL, NULL, 0 },
	/* Non-zero pad bits (RFC 4648 3.5). */
	{ "Zh==", -EINVAL, NULL, 0 },
	{ "Zm9=", -EINVAL, NULL, 0 },
	/* White space and other letters. */
	{ "Zm9v Zm9v", -EINVAL, NULL, 0 },
	{ "Zm9 ", -EINVAL, NULL, 0 },
	{ "Zm9v\r\n", -EINVAL, NULL, 0 },
	{ "Zm9-", -EINVAL, NULL, 0 },
	{ "Zm9_", -EINVAL, NULL, 0 },
	{ "Zm9\x80", -EINVAL, NULL, 0 },
};

START_TEST(test_base64)
{
	const struct b64_case *c = &b64_cases[_i];
	unsigned char dst[16];
	char enc[32];
	size_t n = 99;

	ck_assert_int_eq(sasl_base64_decode(c->enc, strlen(c->enc), dst, sizeof dst, &n), c->rc);
	if (c->rc < 0) {
		ck_assert_uint_eq(n, 0);
		return;
	}
	ck_assert_uint_eq(n, c->declen);
	ck_assert_mem_eq(dst, c->dec, n);
	ck_assert_int_eq(sasl_base64_encode(dst, n, enc, sizeof enc), (int)strlen(c->enc));
	ck_assert_str_eq(enc, c->enc);
}
END_TEST

START_TEST(test_base64_bounds)
{
	unsigned char dst[8];
	char enc[16];
	size_t n;

	/* dst too small: -E2BIG, even before the letters are checked. */
	ck_assert_int_eq(sasl_base64_decode("Zm9vYmFy", 8, dst, 5, &n), -E2BIG);
	ck_assert_int_eq(sasl_base64_decode("Zm9vYmE=", 8, dst, 5, &n), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(sasl_base64_decode("", 0, NULL, 0, &n), 0);
	ck_assert_uint_eq(n, 0);

	ck_assert_int_eq(SASL_BASE64_SIZE(0), 1);
	ck_assert_int_eq(SASL_BASE64_SIZE(1), 5);
	ck_assert_int_eq(SASL_BASE64_SIZE(3), 5);
	ck_assert_int_eq(SASL_BASE64_SIZE(4), 9);
	ck_assert_int_eq(sasl_base64_encode((const unsigned char *)"foo", 3, enc, 5), 4);
	ck_assert_int_eq(sasl_base64_encode((const unsigned char *)"foo", 3, enc, 4), -E2BIG);
	ck_assert_str_eq(enc, "");
	ck_assert_int_eq(sasl_base64_encode((const unsigned char *)"", 0, enc, 1), 0);
	ck_assert_str_eq(enc, "");
}
END_TEST

#define M(s) s, sizeof(s) - 1
#define P255 A100 A100 A10 A10 A10 A10 A10 "aaaaa"

static const struct plain_case {
	const char *msg;
	size_t len;
	int rc;
	const char *authzid;
	const char *authcid;
	const char *passwd;
} plain_cases[] = {
	{ M("\0user\0pass"), 0, "", "user", "pass" },
	{ M("admin\0user\0pass"), 0, "admin", "user", "pass" },
	{ M("\0us\xc3\xa9r\0p\xff"), 0, "", "us\xc3\xa9r", "p\xff" },
	{ M("\0" P255 "\0p"), 0, "", P255, "p" },
	{ M(P255 "\0u\0p"), 0, P255, "u", "p" },
	{ M("\0u\0" P255), 0, "", "u", P255 },
	{ M("\0" P255 "a\0p"), -EINVAL, "", "", "" },
	{ M(P255 "a\0u\0p"), -EINVAL, "", "", "" },
	{ M("\0u\0" P255 "a"), -EINVAL, "", "", "" },
	{ M("user\0pass"), -EINVAL, "", "", "" },
	{ M("userpass"), -EINVAL, "", "", "" },
	{ M(""), -EINVAL, "", "", "" },
	{ M("\0\0pass"), -EINVAL, "", "", "" },
	{ M("\0user\0"), -EINVAL, "", "", "" },
	{ M("\0\0"), -EINVAL, "", "", "" },
	{ M("\0user\0pa\0ss"), -EINVAL, "", "", "" },
	{ M("a\0b\0c\0"), -EINVAL, "", "", "" },
	{ M("\0\xff\0pass"), -EINVAL, "", "", "" },
	{ M("\xc0\x80\0u\0p"), -EINVAL, "", "", "" },
};

START_TEST(test_plain)
{
	const struct plain_case *c = &plain_cases[_i];
	char az[SASL_PART_MAX + 1], ac[SASL_PART_MAX + 1], pw[SASL_PART_MAX + 1];

	memset(az, '#', sizeof az);
	memset(ac, '#', sizeof ac);
	memset(pw, '#', sizeof pw);
	ck_assert_int_eq(sasl_plain_split((const unsigned char *)c->msg, c->len,
	    az, sizeof az, ac, sizeof ac, pw, sizeof pw), c->rc);
	ck_assert_str_eq(az, c->authzid);
	ck_assert_str_eq(ac, c->authcid);
	ck_assert_str_eq(pw, c->passwd);
}
END_TEST

START_TEST(test_plain_small)
{
	char az[4], ac[5], pw[4];
	const unsigned char msg[] = "\0user\0pw";

	ck_assert_int_eq(sasl_plain_split(msg, sizeof msg - 1, az, sizeof az, ac,
	    4, pw, sizeof pw), -E2BIG);
	ck_assert_str_eq(az, "");
	ck_assert_str_eq(ac, "");
	ck_assert_str_eq(pw, "");
	ck_assert_int_eq(sasl_plain_split(msg, sizeof msg - 1, az, sizeof az, ac,
	    sizeof ac, pw, sizeof pw), 0);
	ck_assert_str_eq(ac, "user");
	ck_assert_str_eq(pw, "pw");
}
END_TEST

Suite *
sasl_suite(void)
{
	Suite *s = suite_create("sasl");
	TCase *tc;

	tc = tcase_create("base64");
	tcase_add_loop_test(tc, test_base64, 0, (int)NELEM(b64_cases));
	tcase_add_test(tc, test_base64_bounds);
	suite_add_tcase(s, tc);

	tc = tcase_create("plain");
	tcase_add_loop_test(tc, test_plain, 0, (int)NELEM(plain_cases));
	tcase_add_test(tc, test_plain_small);
	suite_add_tcase(s, tc);
	return s;
}
