/*
 * test_hash - core/hash: FNV-1a 32 against the published test vectors,
 * and the step form agreeing with the whole-key forms.
 */
#include <stdint.h>
#include <string.h>

#include "core/hash.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct hash_case {
	const char *in;
	uint32_t h;
} hash_cases[] = {
	{ "", 0x811c9dc5u },
	{ "a", 0xe40c292cu },
	{ "b", 0xe70c2de5u },
	{ "foobar", 0xbf9cf968u },
};

START_TEST(test_vectors)
{
	const struct hash_case *c = &hash_cases[_i];
	uint32_t h = FNV1A32_INIT;

	ck_assert_uint_eq(fnv1a32(c->in, strlen(c->in)), c->h);
	ck_assert_uint_eq(fnv1a32_str(FNV1A32_INIT, c->in), c->h);
	for (const char *p = c->in; *p != '\0'; p++)
		h = fnv1a32_step(h, (unsigned char)*p);
	ck_assert_uint_eq(h, c->h);
}
END_TEST

START_TEST(test_forms_compose)
{
	static const unsigned char bin[] = { 'a', 0, 0xff, 'b' };
	uint32_t h;

	/* Bytes past a NUL count in fnv1a32, and high bytes are not sign-extended. */
	h = fnv1a32_step(fnv1a32_step(fnv1a32_step(fnv1a32_step(FNV1A32_INIT, 'a'), 0),
	    0xff), 'b');
	ck_assert_uint_eq(fnv1a32(bin, sizeof bin), h);
	ck_assert_uint_ne(fnv1a32(bin, sizeof bin), fnv1a32(bin, 1));
	/* Hashing in pieces is hashing the whole. */
	ck_assert_uint_eq(fnv1a32_str(fnv1a32_str(FNV1A32_INIT, "foo"), "bar"),
	    fnv1a32("foobar", 6));
	/* A number mixed in first changes the hash of the same name. */
	ck_assert_uint_ne(fnv1a32_str(fnv1a32_step(FNV1A32_INIT, 1), "example.com"),
	    fnv1a32_str(fnv1a32_step(FNV1A32_INIT, 15), "example.com"));
}
END_TEST

Suite *
hash_suite(void)
{
	Suite *s = suite_create("hash");
	TCase *tc = tcase_create("fnv1a32");

	tcase_add_loop_test(tc, test_vectors, 0, (int)NELEM(hash_cases));
	tcase_add_test(tc, test_forms_compose);
	suite_add_tcase(s, tc);
	return s;
}
