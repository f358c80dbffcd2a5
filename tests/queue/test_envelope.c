/*
 * test_envelope - queue/envelope: records round-trip exactly, recipients
 * group by domain, and no truncated or corrupt record decodes, crashes
 * or leaks.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/str.h"
#include "queue/envelope.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* 'o' with diaeresis and 'u' with diaeresis, as UTF-8. */
#define UTF8_RCPT "j\xc3\xb6rg@B\xc3\xbc" "cher.DE"

static void
make_full(struct envelope *e)
{
	envelope_init(e);
	memcpy(e->id, "01HX3K5Q7R8S9T0V", QID_SIZE);
	e->stream = STREAM_BROADCAST;
	envelope_set(&e->sender, "bounce+x=y@example.org");
	envelope_set(&e->user, "alice");
	envelope_set(&e->client, "2001:db8::7");
	envelope_set(&e->helo, "client.example.net");
	e->arrival_ms = 1700000000123ULL;
	e->size = 26214400;
	envelope_set(&e->envid, "env-42+2B");
	e->ret = RET_HDRS;
	e->flags = ENV_F_SMTPUTF8 | ENV_F_8BITMIME;
	ck_assert_int_eq(envelope_add_rcpt(e, "bob@Example.COM",
	    "rfc822;bob@example.com", NOTIFY_SUCCESS | NOTIFY_FAILURE), 0);
	ck_assert_int_eq(envelope_add_rcpt(e, "\"a@b\"@Example.COM", NULL,
	    NOTIFY_NEVER), 0);
	ck_assert_int_eq(envelope_add_rcpt(e, UTF8_RCPT,
	    "utf-8;j\\x{00F6}rg@b\\x{00FC}cher.de", NOTIFY_DELAY), 0);
	ck_assert_int_eq(envelope_add_rcpt(e, "carol@other.net", NULL, 0), 0);
	ck_assert_int_eq(envelope_add_rcpt(e, "dave@example.com", "",
	    NOTIFY_FAILURE | NOTIFY_DELAY), 0);
}

static void
assert_str_or_null(const char *got, const char *want, const char *what)
{
	if (want == NULL) {
		ck_assert_msg(got == NULL, "%s: \"%s\", want NULL", what, got);
		return;
	}
	ck_assert_msg(got != NULL, "%s: NULL, want \"%s\"", what, want);
	ck_assert_msg(strcmp(got, want) == 0, "%s: \"%s\", want \"%s\"", what,
	    got, want);
}

static void
assert_env_eq(const struct envelope *a, const struct envelope *b)
{
	ck_assert_str_eq(a->id, b->id);
	ck_assert_int_eq(a->stream, b->stream);
	assert_str_or_null(a->sender, b->sender, "sender");
	assert_str_or_null(a->user, b->user, "user");
	assert_str_or_null(a->client, b->client, "client");
	assert_str_or_null(a->helo, b->helo, "helo");
	ck_assert_uint_eq(a->arrival_ms, b->arrival_ms);
	ck_assert_uint_eq(a->size, b->size);
	assert_str_or_null(a->envid, b->envid, "envid");
	ck_assert_int_eq(a->ret, b->ret);
	ck_assert_uint_eq(a->flags, b->flags);
	ck_assert_uint_eq(a->nrcpt, b->nrcpt);
	for (size_t i = 0; i < a->nrcpt; i++) {
		assert_str_or_null(a->rcpt[i].addr, b->rcpt[i].addr, "addr");
		assert_str_or_null(a->rcpt[i].orcpt, b->rcpt[i].orcpt, "orcpt");
		ck_assert_uint_eq(a->rcpt[i].notify, b->rcpt[i].notify);
		assert_str_or_null(a->rcpt[i].domain, b->rcpt[i].domain, "domain");
	}
}

static bool
env_is_empty(const struct envelope *e)
{
	return e->id[0] == '\0' && e->sender == NULL && e->user == NULL &&
	    e->client == NULL && e->helo == NULL && e->envid == NULL &&
	    e->rcpt == NULL && e->nrcpt == 0;
}

static void
assert_env_empty(const struct envelope *e)
{
	ck_assert_str_eq(e->id, "");
	ck_assert_ptr_null(e->sender);
	ck_assert_ptr_null(e->user);
	ck_assert_ptr_null(e->client);
	ck_assert_ptr_null(e->helo);
	ck_assert_ptr_null(e->envid);
	ck_assert_ptr_null(e->rcpt);
	ck_assert_uint_eq(e->nrcpt, 0);
}

/* Decode from a heap copy of exactly len bytes: ASan sees any over-read. */
static int
env_decode_exact(struct envelope *e, const void *p, size_t len)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	ck_assert_ptr_nonnull(copy);
	if (len > 0)
		memcpy(copy, p, len);
	rc = envelope_decode(e, copy, len);
	free(copy);
	return rc;
}

static int
job_decode_exact(struct jobstate *j, const void *p, size_t len)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	ck_assert_ptr_nonnull(copy);
	if (len > 0)
		memcpy(copy, p, len);
	rc = jobstate_decode(j, copy, len);
	free(copy);
	return rc;
}

/* --- envelopes ----------------------------------------------------------- */

START_TEST(test_envelope_round_trip)
{
	struct envelope e, d;
	struct buf out = BUF_INIT, again = BUF_INIT;

	make_full(&e);
	envelope_encode(&e, &out);
	ck_assert_int_eq(env_decode_exact(&d, out.data, out.len), 0);
	assert_env_eq(&d, &e);

	/* Spelled out, so that a mistake in both directions still shows. */
	ck_assert_str_eq(d.id, "01HX3K5Q7R8S9T0V");
	ck_assert_int_eq(d.stream, STREAM_BROADCAST);
	ck_assert_str_eq(d.sender, "bounce+x=y@example.org");
	ck_assert_str_eq(d.user, "alice");
	ck_assert_str_eq(d.client, "2001:db8::7");
	ck_assert_str_eq(d.helo, "client.example.net");
	ck_assert_uint_eq(d.arrival_ms, 1700000000123ULL);
	ck_assert_uint_eq(d.size, 26214400);
	ck_assert_str_eq(d.envid, "env-42+2B");
	ck_assert_int_eq(d.ret, RET_HDRS);
	ck_assert_uint_eq(d.flags, ENV_F_SMTPUTF8 | ENV_F_8BITMIME);
	ck_assert_uint_eq(d.nrcpt, 5);
	ck_assert_str_eq(d.rcpt[0].addr, "bob@Example.COM");
	ck_assert_str_eq(d.rcpt[0].orcpt, "rfc822;bob@example.com");
	ck_assert_uint_eq(d.rcpt[0].notify, NOTIFY_SUCCESS | NOTIFY_FAILURE);
	ck_assert_str_eq(d.rcpt[0].domain, "example.com");
	ck_assert_str_eq(d.rcpt[1].addr, "\"a@b\"@Example.COM");
	ck_assert_ptr_null(d.rcpt[1].orcpt);
	ck_assert_uint_eq(d.rcpt[1].notify, NOTIFY_NEVER);
	ck_assert_str_eq(d.rcpt[1].domain, "example.com");
	ck_assert_str_eq(d.rcpt[2].addr, UTF8_RCPT);
	ck_assert_str_eq(d.rcpt[2].orcpt, "utf-8;j\\x{00F6}rg@b\\x{00FC}cher.de");
	ck_assert_uint_eq(d.rcpt[2].notify, NOTIFY_DELAY);
	/* ASCII is lower-cased; UTF-8 bytes are kept as they are. */
	ck_assert_str_eq(d.rcpt[2].domain, "b\xc3\xbc" "cher.de");
	ck_assert_str_eq(d.rcpt[3].addr, "carol@other.net");
	ck_assert_ptr_null(d.rcpt[3].orcpt);
	ck_assert_uint_eq(d.rcpt[3].notify, 0);
	ck_assert_str_eq(d.rcpt[3].domain, "other.net");
	ck_assert_str_eq(d.rcpt[4].orcpt, "");
	ck_assert_uint_eq(d.rcpt[4].notify, NOTIFY_FAILURE | NOTIFY_DELAY);

	/* Encoding the decoded envelope gives the same bytes. */
	envelope_encode(&d, &again);
	ck_assert_uint_eq(again.len, out.len);
	ck_assert_mem_eq(again.data, out.data, out.len);
	envelope_free(&d);
	envelope_free(&e);
	assert_env_empty(&e);
	buf_free(&out);
	buf_free(&again);
}
END_TEST

START_TEST(test_envelope_minimal_exact)
{
	static const char want[] = "E1i16:0000000000000000s1:tf0:a1:5z1:0R5:a@b.c.0:";
	struct envelope e, d;
	struct buf out = BUF_INIT;

	envelope_init(&e);
	memcpy(e.id, "0000000000000000", QID_SIZE);
	e.arrival_ms = 5;
	ck_assert_int_eq(envelope_add_rcpt(&e, "a@b.c", NULL, 0), 0);
	envelope_encode(&e, &out);
	ck_assert_uint_eq(out.len, sizeof want - 1);
	ck_assert_mem_eq(out.data, want, sizeof want - 1);

	/* A NULL sender is the null reverse path: it comes back as "". */
	ck_assert_int_eq(env_decode_exact(&d, out.data, out.len), 0);
	ck_assert_str_eq(d.sender, "");
	ck_assert_ptr_null(d.user);
	ck_assert_ptr_null(d.client);
	ck_assert_ptr_null(d.helo);
	ck_assert_ptr_null(d.envid);
	ck_assert_int_eq(d.stream, STREAM_TRANSACTIONAL);
	ck_assert_int_eq(d.ret, RET_UNSET);
	ck_assert_uint_eq(d.flags, 0);
	ck_assert_uint_eq(d.nrcpt, 1);
	ck_assert_str_eq(d.rcpt[0].domain, "b.c");
	envelope_free(&d);
	envelope_free(&e);
	buf_free(&out);
}
END_TEST

START_TEST(test_envelope_ret_full_and_appends)
{
	struct envelope e, d;
	struct buf out = BUF_INIT;

	envelope_init(&e);
	memcpy(e.id, "7ZZZZZZZZZHJKMNP", QID_SIZE);
	envelope_set(&e.sender, "s@x.y");
	envelope_set(&e.sender, "t@x.y");  /* replaces, no leak */
	envelope_set(&e.user, "u");
	envelope_set(&e.user, NULL);
	e.ret = RET_FULL;
	e.flags = ENV_F_8BITMIME;
	ck_assert_int_eq(envelope_add_rcpt(&e, "a@b.c", NULL, 0), 0);
	/* The encoder appends; what is already in out stays. */
	buf_appends(&out, "prefix");
	envelope_encode(&e, &out);
	ck_assert_mem_eq(out.data, "prefixE1", 8);
	ck_assert_int_eq(env_decode_exact(&d, out.data + 6, out.len - 6), 0);
	ck_assert_str_eq(d.sender, "t@x.y");
	ck_assert_ptr_null(d.user);
	ck_assert_int_eq(d.ret, RET_FULL);
	ck_assert_uint_eq(d.flags, ENV_F_8BITMIME);
	envelope_free(&d);
	envelope_free(&e);
	buf_free(&out);
}
END_TEST

START_TEST(test_envelope_field_limits)
{
	struct envelope e, d;
	struct buf out = BUF_INIT;
	char *big = malloc(ENV_FIELD_MAX + 2);

	ck_assert_ptr_nonnull(big);
	/* An address of exactly ENV_FIELD_MAX bytes is kept; one more is not. */
	memset(big, 'l', ENV_FIELD_MAX);
	memcpy(big + ENV_FIELD_MAX - 6, "@b.com", 6);
	big[ENV_FIELD_MAX] = '\0';
	envelope_init(&e);
	memcpy(e.id, "0000000000000000", QID_SIZE);
	ck_assert_int_eq(envelope_add_rcpt(&e, big, NULL, 0), 0);
	ck_assert_uint_eq(strlen(e.rcpt[0].addr), ENV_FIELD_MAX);
	envelope_set(&e.helo, big);
	envelope_encode(&e, &out);
	ck_assert_int_eq(env_decode_exact(&d, out.data, out.len), 0);
	ck_assert_str_eq(d.rcpt[0].addr, big);
	ck_assert_str_eq(d.helo, big);
	envelope_free(&d);

	memmove(big + 1, big, ENV_FIELD_MAX + 1);
	ck_assert_int_eq(envelope_add_rcpt(&e, big, NULL, 0), -EINVAL);
	ck_assert_int_eq(envelope_add_rcpt(&e, "a@b.c", big, 0), -EINVAL);
	ck_assert_uint_eq(e.nrcpt, 1);

	/* A string field over the limit in a record is refused. */
	buf_reset(&out);
	envelope_set(&e.helo, big);
	envelope_encode(&e, &out);
	ck_assert_int_eq(env_decode_exact(&d, out.data, out.len), -EBADMSG);
	assert_env_empty(&d);
	envelope_free(&e);
	buf_free(&out);
	free(big);
}
END_TEST

static const struct rcpt_case {
	const char *addr;
	int rc;
	const char *domain;
} rcpt_cases[] = {
	{ "bob@Example.COM", 0, "example.com" },
	{ "\"a@b\"@Example.COM", 0, "example.com" },
	{ "x@[192.0.2.1]", 0, "[192.0.2.1]" },
	{ UTF8_RCPT, 0, "b\xc3\xbc" "cher.de" },
	{ "a@b@c.D", 0, "c.d" },
	{ "user@exa/mple.com", -EINVAL, NULL },
	{ "user@exa mple.com", -EINVAL, NULL },
	{ "user@exa\tmple.com", -EINVAL, NULL },
	{ "user@exa\rmple.com", -EINVAL, NULL },
	{ "user@exa\x7fmple.com", -EINVAL, NULL },
	{ "user@../../etc", -EINVAL, NULL },
	{ "user", -EINVAL, NULL },
	{ "user@", -EINVAL, NULL },
	{ "", -EINVAL, NULL },
};

START_TEST(test_add_rcpt)
{
	const struct rcpt_case *c = &rcpt_cases[_i];
	struct envelope e;

	envelope_init(&e);
	ck_assert_int_eq(envelope_add_rcpt(&e, "first@one.example", NULL, 0), 0);
	ck_assert_msg(envelope_add_rcpt(&e, c->addr, "rfc822;x", NOTIFY_DELAY) == c->rc,
	    "\"%s\"", c->addr);
	if (c->rc == 0) {
		ck_assert_uint_eq(e.nrcpt, 2);
		ck_assert_str_eq(e.rcpt[1].addr, c->addr);
		ck_assert_str_eq(e.rcpt[1].domain, c->domain);
		ck_assert_str_eq(e.rcpt[1].orcpt, "rfc822;x");
		ck_assert_uint_eq(e.rcpt[1].notify, NOTIFY_DELAY);
	} else {
		ck_assert_uint_eq(e.nrcpt, 1);
	}
	ck_assert_str_eq(e.rcpt[0].domain, "one.example");
	envelope_free(&e);
}
END_TEST

START_TEST(test_rcpt_max)
{
	struct envelope e;
	char addr[32];

	envelope_init(&e);
	for (unsigned i = 0; i < ENV_RCPT_MAX; i++) {
		snprintf(addr, sizeof addr, "u%u@d%u.example", i, i % 7);
		if (envelope_add_rcpt(&e, addr, NULL, 0) != 0)
			ck_abort_msg("recipient %u refused", i);
	}
	ck_assert_int_eq(envelope_add_rcpt(&e, "one@more.example", NULL, 0), -EINVAL);
	ck_assert_uint_eq(e.nrcpt, ENV_RCPT_MAX);
	ck_assert_str_eq(e.rcpt[ENV_RCPT_MAX - 1].addr, "u99999@d4.example");
	ck_assert_str_eq(e.rcpt[ENV_RCPT_MAX - 1].domain, "d4.example");
	envelope_free(&e);
}
END_TEST

START_TEST(test_envelope_truncations)
{
	struct envelope e, d;
	struct buf out = BUF_INIT;

	make_full(&e);
	envelope_encode(&e, &out);
	for (size_t len = 0; len < out.len; len++) {
		int rc = env_decode_exact(&d, out.data, len);

		ck_assert_msg(rc == -EBADMSG, "prefix of %zu/%zu bytes: rc %d",
		    len, out.len, rc);
		assert_env_empty(&d);
	}
	ck_assert_int_eq(env_decode_exact(&d, out.data, out.len), 0);
	envelope_free(&d);
	envelope_free(&e);
	buf_free(&out);
}
END_TEST

START_TEST(test_envelope_flips)
{
	static const unsigned char masks[] = { 0x01, 0x02, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff };
	struct envelope e, d;
	struct buf out = BUF_INIT;
	char *copy;
	size_t bad = 0, good = 0, at[6];

	make_full(&e);
	envelope_encode(&e, &out);
	copy = malloc(out.len);
	ck_assert_ptr_nonnull(copy);
	for (size_t i = 0; i < out.len; i++) {
		for (size_t m = 0; m < sizeof masks; m++) {
			int rc;

			memcpy(copy, out.data, out.len);
			copy[i] = (char)(copy[i] ^ masks[m]);
			rc = envelope_decode(&d, copy, out.len);
			if (rc == 0) {
				good++;
				envelope_free(&d);
			} else if (rc == -EBADMSG && env_is_empty(&d)) {
				bad++;
			} else {
				ck_abort_msg("byte %zu ^ %#x: rc %d", i, masks[m], rc);
			}
		}
	}
	ck_assert_uint_gt(bad, 0);
	ck_assert_uint_gt(good, 0);

	/* These flips must be caught: magic, a tag, a ':' and the end mark. */
	at[0] = 0;
	at[1] = 1;
	at[2] = 2;
	at[3] = 5;
	at[4] = out.len - 3;
	at[5] = out.len - 1;
	for (size_t k = 0; k < NELEM(at); k++) {
		memcpy(copy, out.data, out.len);
		copy[at[k]] = (char)(copy[at[k]] ^ 0x20);
		ck_assert_msg(envelope_decode(&d, copy, out.len) == -EBADMSG,
		    "flip at %zu decoded", at[k]);
	}
	free(copy);
	envelope_free(&e);
	buf_free(&out);
}
END_TEST

/* --- hand-made envelope records ------------------------------------------ */

struct fld {
	char tag;
	const char *val;
	size_t len;
};

#define F(tag, lit) { tag, lit, sizeof(lit) - 1 }
#define ID F('i', "0000000000000000")
#define SND F('f', "")
#define ARR F('a', "5")
#define RCP F('R', "a@b.c")

static void
build(struct buf *out, const char *magic, const struct fld *f, size_t n)
{
	buf_appends(out, magic);
	for (size_t i = 0; i < n && f[i].tag != '\0'; i++) {
		buf_appendf(out, "%c%zu:", f[i].tag, f[i].len);
		buf_append(out, f[i].val, f[i].len);
	}
	buf_appends(out, ".0:");
}

static const struct env_case {
	const char *name;
	struct fld f[8];
	int rc;
} env_cases[] = {
	{ "minimal", { ID, SND, ARR, RCP }, 0 },
	{ "any order", { RCP, ARR, SND, ID }, 0 },
	{ "notify 15", { ID, SND, ARR, RCP, F('N', "15") }, 0 },
	{ "flags 3", { ID, SND, ARR, RCP, F('x', "3") }, 0 },
	{ "stream b", { ID, F('s', "b"), SND, ARR, RCP }, 0 },
	{ "no id", { SND, ARR, RCP }, -EBADMSG },
	{ "no sender", { ID, ARR, RCP }, -EBADMSG },
	{ "no arrival", { ID, SND, RCP }, -EBADMSG },
	{ "no recipient", { ID, SND, ARR }, -EBADMSG },
	{ "unknown tag q", { ID, SND, ARR, F('q', "x"), RCP }, -EBADMSG },
	{ "unknown tag I", { F('I', "0000000000000000"), SND, ARR, RCP }, -EBADMSG },
	{ "unknown tag digit", { ID, SND, ARR, RCP, F('7', "") }, -EBADMSG },
	{ "N before any R", { ID, SND, ARR, F('N', "4"), RCP }, -EBADMSG },
	{ "O before any R", { ID, SND, ARR, F('O', "rfc822;a@b.c"), RCP }, -EBADMSG },
	{ "N twice", { ID, SND, ARR, RCP, F('N', "2"), F('N', "4") }, -EBADMSG },
	{ "N zero", { ID, SND, ARR, RCP, F('N', "0") }, -EBADMSG },
	{ "N 16", { ID, SND, ARR, RCP, F('N', "16") }, -EBADMSG },
	{ "N text", { ID, SND, ARR, RCP, F('N', "x") }, -EBADMSG },
	{ "N empty", { ID, SND, ARR, RCP, F('N', "") }, -EBADMSG },
	{ "O twice", { ID, SND, ARR, RCP, F('O', "a"), F('O', "b") }, -EBADMSG },
	{ "O with NUL", { ID, SND, ARR, RCP, F('O', "a\0b") }, -EBADMSG },
	{ "id twice", { ID, ID, SND, ARR, RCP }, -EBADMSG },
	{ "id short", { F('i', "000000000000000"), SND, ARR, RCP }, -EBADMSG },
	{ "id long", { F('i', "00000000000000000"), SND, ARR, RCP }, -EBADMSG },
	{ "id lower case", { F('i', "000000000000000a"), SND, ARR, RCP }, -EBADMSG },
	{ "id with U", { F('i', "U000000000000000"), SND, ARR, RCP }, -EBADMSG },
	{ "id with NUL", { F('i', "000000000000000\0"), SND, ARR, RCP }, -EBADMSG },
	{ "stream x", { ID, F('s', "x"), SND, ARR, RCP }, -EBADMSG },
	{ "stream tb", { ID, F('s', "tb"), SND, ARR, RCP }, -EBADMSG },
	{ "ret X", { ID, SND, ARR, F('r', "X"), RCP }, -EBADMSG },
	{ "ret FH", { ID, SND, ARR, F('r', "FH"), RCP }, -EBADMSG },
	{ "flags 4", { ID, SND, ARR, F('x', "4"), RCP }, -EBADMSG },
	{ "flags -1", { ID, SND, ARR, F('x', "-1"), RCP }, -EBADMSG },
	{ "arrival empty", { ID, SND, F('a', ""), RCP }, -EBADMSG },
	{ "arrival 1a", { ID, SND, F('a', "1a"), RCP }, -EBADMSG },
	{ "arrival overflow", { ID, SND, F('a', "18446744073709551616"), RCP }, -EBADMSG },
	{ "size 1k", { ID, SND, ARR, F('z', "1k"), RCP }, -EBADMSG },
	{ "sender with NUL", { ID, F('f', "a\0b"), ARR, RCP }, -EBADMSG },
	{ "sender twice", { ID, SND, SND, ARR, RCP }, -EBADMSG },
	{ "user twice", { ID, SND, ARR, F('u', "a"), F('u', "a"), RCP }, -EBADMSG },
	{ "rcpt domain with /", { ID, SND, ARR, F('R', "a@b/c") }, -EBADMSG },
	{ "rcpt domain with space", { ID, SND, ARR, F('R', "a@b c") }, -EBADMSG },
	{ "rcpt without domain", { ID, SND, ARR, F('R', "a@") }, -EBADMSG },
	{ "rcpt without @", { ID, SND, ARR, F('R', "abc") }, -EBADMSG },
	{ "rcpt empty", { ID, SND, ARR, F('R', "") }, -EBADMSG },
	{ "rcpt with NUL", { ID, SND, ARR, F('R', "a\0@b.c") }, -EBADMSG },
	{ "bad rcpt after good", { ID, SND, ARR, RCP, F('O', "x"), F('R', "a@b/c") }, -EBADMSG },
};

START_TEST(test_envelope_records)
{
	const struct env_case *c = &env_cases[_i];
	struct buf rec = BUF_INIT;
	struct envelope d;
	int rc;

	build(&rec, "E1", c->f, NELEM(c->f));
	rc = env_decode_exact(&d, rec.data, rec.len);
	ck_assert_msg(rc == c->rc, "%s: rc %d, want %d", c->name, rc, c->rc);
	if (rc == 0) {
		ck_assert_str_eq(d.id, "0000000000000000");
		ck_assert_uint_eq(d.arrival_ms, 5);
		ck_assert_uint_eq(d.nrcpt, 1);
		ck_assert_str_eq(d.rcpt[0].domain, "b.c");
		envelope_free(&d);
	} else {
		assert_env_empty(&d);
	}
	buf_free(&rec);
}
END_TEST

#define RAW(lit) lit, sizeof(lit) - 1
#define BODY "i16:0000000000000000f0:a1:5R5:a@b.c"

static const struct raw_case {
	const char *name;
	const char *rec;
	size_t len;
	int rc;
} raw_cases[] = {
	{ "valid", RAW("E1" BODY ".0:"), 0 },
	{ "7-digit length", RAW("E1i0000016:0000000000000000f0:a1:5R5:a@b.c.0:"), 0 },
	{ "8-digit length", RAW("E1i00000016:0000000000000000f0:a1:5R5:a@b.c.0:"), -EBADMSG },
	{ "huge length", RAW("E1" BODY "O9999999:x.0:"), -EBADMSG },
	{ "length past end", RAW("E1i16:0000000000000000f0:a1:5R9:a@b.c.0:"), -EBADMSG },
	{ "no digits", RAW("E1i:0000000000000000f0:a1:5R5:a@b.c.0:"), -EBADMSG },
	{ "no colon", RAW("E1i16;0000000000000000f0:a1:5R5:a@b.c.0:"), -EBADMSG },
	{ "sign in length", RAW("E1i+16:0000000000000000f0:a1:5R5:a@b.c.0:"), -EBADMSG },
	{ "empty", RAW(""), -EBADMSG },
	{ "half magic", RAW("E"), -EBADMSG },
	{ "magic only", RAW("E1"), -EBADMSG },
	{ "magic and end", RAW("E1.0:"), -EBADMSG },
	{ "version 2", RAW("E2" BODY ".0:"), -EBADMSG },
	{ "job magic", RAW("J1" BODY ".0:"), -EBADMSG },
	{ "lower magic", RAW("e1" BODY ".0:"), -EBADMSG },
	{ "no end mark", RAW("E1" BODY), -EBADMSG },
	{ "end mark first", RAW("E1.0:" BODY ".0:"), -EBADMSG },
	{ "end mark twice", RAW("E1" BODY ".0:.0:"), -EBADMSG },
	{ "end mark with data", RAW("E1" BODY ".1:x"), -EBADMSG },
	{ "bytes after end", RAW("E1" BODY ".0:x"), -EBADMSG },
	{ "NUL after end", RAW("E1" BODY ".0:\0"), -EBADMSG },
};

START_TEST(test_envelope_raw)
{
	const struct raw_case *c = &raw_cases[_i];
	struct envelope d;
	int rc;

	rc = env_decode_exact(&d, c->rec, c->len);
	ck_assert_msg(rc == c->rc, "%s: rc %d, want %d", c->name, rc, c->rc);
	if (rc == 0) {
		ck_assert_str_eq(d.rcpt[0].addr, "a@b.c");
		envelope_free(&d);
	} else {
		assert_env_empty(&d);
	}
}
END_TEST

START_TEST(test_envelope_long_field)
{
	struct buf rec = BUF_INIT;
	struct envelope d;
	char *big = malloc(ENV_FIELD_MAX + 1);
	struct fld f[5] = { ID, SND, ARR, RCP, { 'h', big, ENV_FIELD_MAX } };

	ck_assert_ptr_nonnull(big);
	memset(big, 'h', ENV_FIELD_MAX + 1);
	build(&rec, "E1", f, NELEM(f));
	ck_assert_int_eq(env_decode_exact(&d, rec.data, rec.len), 0);
	ck_assert_uint_eq(strlen(d.helo), ENV_FIELD_MAX);
	envelope_free(&d);
	buf_free(&rec);
	f[4].len = ENV_FIELD_MAX + 1;
	build(&rec, "E1", f, NELEM(f));
	ck_assert_int_eq(env_decode_exact(&d, rec.data, rec.len), -EBADMSG);
	assert_env_empty(&d);
	buf_free(&rec);
	free(big);
}
END_TEST

/* --- job states ---------------------------------------------------------- */

static void
make_job(struct jobstate *j, char *reply_bytes)
{
	static const struct rcpt_status r[] = {
		{ 0, RCPT_QUEUED, 0, 0, 0, NULL },
		{ 4, RCPT_DEFERRED, 3, 1700000300000ULL, 1700000000000ULL, NULL },
		{ 1, RCPT_DELIVERED, 1, 0, 1700000000456ULL, NULL },
		{ 7, RCPT_BOUNCED, 2, 0, 1700000000789ULL, NULL },
		{ 2, RCPT_SUPPRESSED, 0, 0, 1, NULL },
		{ ENV_RCPT_MAX - 1, RCPT_EXPIRED, UINT32_MAX, UINT64_MAX, UINT64_MAX, NULL },
	};
	static const char *const replies[] = {
		NULL,
		"451-4.7.1 Greylisted\r\n451 4.7.1 try again later",
		"250 2.0.0 Ok: queued as 4XyZ",
		NULL,  /* reply_bytes */
		NULL,
		"",
	};

	/* Every byte but NUL, including CR, LF, ':' and digits. */
	for (int i = 1; i < 256; i++)
		reply_bytes[i - 1] = (char)i;
	reply_bytes[255] = '\0';
	j->domain = strdup("example.com");
	j->n = NELEM(r);
	j->r = calloc(NELEM(r), sizeof *j->r);
	ck_assert_ptr_nonnull(j->domain);
	ck_assert_ptr_nonnull(j->r);
	for (size_t i = 0; i < NELEM(r); i++) {
		j->r[i] = r[i];
		if (i == 3)
			j->r[i].reply = strdup(reply_bytes);
		else if (replies[i] != NULL)
			j->r[i].reply = strdup(replies[i]);
	}
}

static void
assert_job_eq(const struct jobstate *a, const struct jobstate *b)
{
	ck_assert_str_eq(a->domain, b->domain);
	ck_assert_uint_eq(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		ck_assert_uint_eq(a->r[i].idx, b->r[i].idx);
		ck_assert_int_eq(a->r[i].state, b->r[i].state);
		ck_assert_uint_eq(a->r[i].attempts, b->r[i].attempts);
		ck_assert_uint_eq(a->r[i].next_ms, b->r[i].next_ms);
		ck_assert_uint_eq(a->r[i].updated_ms, b->r[i].updated_ms);
		assert_str_or_null(a->r[i].reply, b->r[i].reply, "reply");
	}
}

START_TEST(test_job_round_trip)
{
	struct jobstate j, d;
	struct buf out = BUF_INIT, again = BUF_INIT;
	char bytes[256];

	memset(&j, 0, sizeof j);
	make_job(&j, bytes);
	jobstate_encode(&j, &out);
	ck_assert_int_eq(job_decode_exact(&d, out.data, out.len), 0);
	assert_job_eq(&d, &j);
	ck_assert_str_eq(d.domain, "example.com");
	ck_assert_uint_eq(d.n, 6);
	for (size_t i = 0; i < d.n; i++)
		ck_assert_int_eq(d.r[i].state, (int)i);  /* every state once */
	ck_assert_uint_eq(d.r[5].attempts, UINT32_MAX);
	ck_assert_uint_eq(d.r[5].next_ms, UINT64_MAX);
	ck_assert_str_eq(d.r[3].reply, bytes);
	ck_assert_ptr_null(d.r[0].reply);
	ck_assert_str_eq(d.r[5].reply, "");
	jobstate_encode(&d, &again);
	ck_assert_uint_eq(again.len, out.len);
	ck_assert_mem_eq(again.data, out.data, out.len);
	jobstate_free(&d);
	jobstate_free(&j);
	ck_assert_ptr_null(j.r);
	ck_assert_uint_eq(j.n, 0);
	buf_free(&out);
	buf_free(&again);
}
END_TEST

START_TEST(test_job_minimal_exact)
{
	static const char want[] = "J1d3:b.cR1:0S1:0.0:";
	struct rcpt_status r = { 0, RCPT_QUEUED, 0, 0, 0, NULL };
	struct jobstate j = { (char *)"b.c", 1, &r };
	struct buf out = BUF_INIT;

	jobstate_encode(&j, &out);
	ck_assert_uint_eq(out.len, sizeof want - 1);
	ck_assert_mem_eq(out.data, want, sizeof want - 1);
	buf_free(&out);
}
END_TEST

START_TEST(test_job_long_reply)
{
	struct rcpt_status r = { 3, RCPT_DEFERRED, 1, 5, 6, NULL };
	struct jobstate j = { (char *)"b.c", 1, &r }, d;
	struct buf out = BUF_INIT;
	char *reply = malloc(3 * ENV_FIELD_MAX);

	/* A remote server's reply of any length still gives a valid record. */
	ck_assert_ptr_nonnull(reply);
	memset(reply, 'r', 3 * ENV_FIELD_MAX - 1);
	reply[3 * ENV_FIELD_MAX - 1] = '\0';
	r.reply = reply;
	jobstate_encode(&j, &out);
	ck_assert_int_eq(job_decode_exact(&d, out.data, out.len), 0);
	ck_assert_uint_eq(strlen(d.r[0].reply), ENV_FIELD_MAX);
	ck_assert_mem_eq(d.r[0].reply, reply, ENV_FIELD_MAX);
	jobstate_free(&d);
	buf_free(&out);
	free(reply);
}
END_TEST

START_TEST(test_job_truncations)
{
	struct jobstate j, d;
	struct buf out = BUF_INIT;
	char bytes[256];

	memset(&j, 0, sizeof j);
	make_job(&j, bytes);
	jobstate_encode(&j, &out);
	for (size_t len = 0; len < out.len; len++) {
		int rc = job_decode_exact(&d, out.data, len);

		ck_assert_msg(rc == -EBADMSG, "prefix of %zu/%zu bytes: rc %d",
		    len, out.len, rc);
		ck_assert_ptr_null(d.domain);
		ck_assert_ptr_null(d.r);
		ck_assert_uint_eq(d.n, 0);
	}
	ck_assert_int_eq(job_decode_exact(&d, out.data, out.len), 0);
	jobstate_free(&d);
	jobstate_free(&j);
	buf_free(&out);
}
END_TEST

START_TEST(test_job_flips)
{
	static const unsigned char masks[] = { 0x01, 0x04, 0x10, 0x20, 0x80, 0xff };
	struct jobstate j, d;
	struct buf out = BUF_INIT;
	char bytes[256], *copy;
	size_t bad = 0;

	memset(&j, 0, sizeof j);
	make_job(&j, bytes);
	jobstate_encode(&j, &out);
	copy = malloc(out.len);
	ck_assert_ptr_nonnull(copy);
	for (size_t i = 0; i < out.len; i++) {
		for (size_t m = 0; m < sizeof masks; m++) {
			int rc;

			memcpy(copy, out.data, out.len);
			copy[i] = (char)(copy[i] ^ masks[m]);
			rc = jobstate_decode(&d, copy, out.len);
			if (rc == 0) {
				jobstate_free(&d);
			} else if (rc == -EBADMSG && d.r == NULL && d.domain == NULL) {
				bad++;
			} else {
				ck_abort_msg("byte %zu ^ %#x: rc %d", i, masks[m], rc);
			}
		}
	}
	ck_assert_uint_gt(bad, out.len);
	free(copy);
	jobstate_free(&j);
	buf_free(&out);
}
END_TEST

#define DOM F('d', "b.c")
#define R0 F('R', "0")
#define S0 F('S', "0")

static const struct env_case job_cases[] = {
	{ "minimal", { DOM, R0, S0 }, 0 },
	{ "domain last", { R0, S0, DOM }, 0 },
	{ "state 5", { DOM, R0, F('S', "5") }, 0 },
	{ "attempts max", { DOM, R0, S0, F('A', "4294967295") }, 0 },
	{ "index max", { DOM, F('R', "99999"), S0 }, 0 },
	{ "no domain", { R0, S0 }, -EBADMSG },
	{ "empty domain", { F('d', ""), R0, S0 }, -EBADMSG },
	{ "domain twice", { DOM, DOM, R0, S0 }, -EBADMSG },
	{ "domain with NUL", { F('d', "b\0c"), R0, S0 }, -EBADMSG },
	{ "no recipient", { DOM }, -EBADMSG },
	{ "R without S", { DOM, R0 }, -EBADMSG },
	{ "second R without S", { DOM, R0, S0, F('R', "1") }, -EBADMSG },
	{ "S twice", { DOM, R0, S0, F('S', "1") }, -EBADMSG },
	{ "state 6", { DOM, R0, F('S', "6") }, -EBADMSG },
	{ "state text", { DOM, R0, F('S', "queued") }, -EBADMSG },
	{ "S before R", { DOM, S0, R0, S0 }, -EBADMSG },
	{ "A before R", { DOM, F('A', "1"), R0, S0 }, -EBADMSG },
	{ "T before R", { DOM, F('T', "1"), R0, S0 }, -EBADMSG },
	{ "U before R", { DOM, F('U', "1"), R0, S0 }, -EBADMSG },
	{ "Y before R", { DOM, F('Y', "x"), R0, S0 }, -EBADMSG },
	{ "attempts 2^32", { DOM, R0, S0, F('A', "4294967296") }, -EBADMSG },
	{ "index ENV_RCPT_MAX", { DOM, F('R', "100000"), S0 }, -EBADMSG },
	{ "index text", { DOM, F('R', "x"), S0 }, -EBADMSG },
	{ "next overflow", { DOM, R0, S0, F('T', "18446744073709551616") }, -EBADMSG },
	{ "reply with NUL", { DOM, R0, S0, F('Y', "a\0b") }, -EBADMSG },
	{ "reply twice", { DOM, R0, S0, F('Y', "a"), F('Y', "b") }, -EBADMSG },
	{ "unknown tag", { DOM, R0, S0, F('Z', "1") }, -EBADMSG },
	{ "envelope tag", { DOM, R0, S0, F('N', "1") }, -EBADMSG },
};

START_TEST(test_job_records)
{
	const struct env_case *c = &job_cases[_i];
	struct buf rec = BUF_INIT;
	struct jobstate d;
	int rc;

	build(&rec, "J1", c->f, NELEM(c->f));
	rc = job_decode_exact(&d, rec.data, rec.len);
	ck_assert_msg(rc == c->rc, "%s: rc %d, want %d", c->name, rc, c->rc);
	if (rc == 0) {
		ck_assert_str_eq(d.domain, "b.c");
		ck_assert_uint_eq(d.n, 1);
		jobstate_free(&d);
	} else {
		ck_assert_ptr_null(d.domain);
		ck_assert_ptr_null(d.r);
	}
	buf_free(&rec);

	/* The same fields under the envelope magic are never a job. */
	build(&rec, "E1", c->f, NELEM(c->f));
	ck_assert_int_eq(job_decode_exact(&d, rec.data, rec.len), -EBADMSG);
	buf_free(&rec);
}
END_TEST

/* --- grouping and consistency -------------------------------------------- */

static void
make_grouped(struct envelope *e)
{
	static const char *const addrs[] = {
		"a@x.org", "b@y.org", "c@X.ORG", "d@z.org", "e@y.org", "\"f@y.org\"@x.org",
	};

	envelope_init(e);
	memcpy(e->id, "0000000000000000", QID_SIZE);
	for (size_t i = 0; i < NELEM(addrs); i++)
		ck_assert_int_eq(envelope_add_rcpt(e, addrs[i], NULL, 0), 0);
}

START_TEST(test_jobs_grouping)
{
	static const struct {
		const char *domain;
		size_t n;
		uint32_t idx[3];
	} want[] = {
		{ "x.org", 3, { 0, 2, 5 } },
		{ "y.org", 2, { 1, 4 } },
		{ "z.org", 1, { 3 } },
	};
	struct envelope e;
	struct jobstate *jobs;
	size_t njobs = 0;

	make_grouped(&e);
	jobs = envelope_jobs(&e, &njobs);
	ck_assert_ptr_nonnull(jobs);
	ck_assert_uint_eq(njobs, NELEM(want));
	for (size_t k = 0; k < njobs; k++) {
		ck_assert_str_eq(jobs[k].domain, want[k].domain);
		ck_assert_uint_eq(jobs[k].n, want[k].n);
		for (size_t i = 0; i < jobs[k].n; i++) {
			ck_assert_uint_eq(jobs[k].r[i].idx, want[k].idx[i]);
			ck_assert_int_eq(jobs[k].r[i].state, RCPT_QUEUED);
			ck_assert_uint_eq(jobs[k].r[i].attempts, 0);
			ck_assert_uint_eq(jobs[k].r[i].next_ms, 0);
			ck_assert_uint_eq(jobs[k].r[i].updated_ms, 0);
			ck_assert_ptr_null(jobs[k].r[i].reply);
		}
		ck_assert_int_eq(jobstate_check(&jobs[k], &e), 0);
		jobstate_free(&jobs[k]);
	}
	free(jobs);
	envelope_free(&e);

	/* No recipients: no jobs, and still an array to free. */
	envelope_init(&e);
	jobs = envelope_jobs(&e, &njobs);
	ck_assert_ptr_nonnull(jobs);
	ck_assert_uint_eq(njobs, 0);
	free(jobs);
}
END_TEST

START_TEST(test_jobs_many)
{
	struct envelope e;
	struct jobstate *jobs;
	size_t njobs = 0, total = 0;
	char addr[32];

	envelope_init(&e);
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(addr, sizeof addr, "u%u@d%u.example", i, (i * 7) % 13);
		ck_assert_int_eq(envelope_add_rcpt(&e, addr, NULL, 0), 0);
	}
	jobs = envelope_jobs(&e, &njobs);
	ck_assert_uint_eq(njobs, 13);
	ck_assert_str_eq(jobs[0].domain, "d0.example");
	ck_assert_str_eq(jobs[1].domain, "d7.example");
	for (size_t k = 0; k < njobs; k++) {
		total += jobs[k].n;
		for (size_t i = 1; i < jobs[k].n; i++)
			ck_assert_uint_gt(jobs[k].r[i].idx, jobs[k].r[i - 1].idx);
		ck_assert_int_eq(jobstate_check(&jobs[k], &e), 0);
		jobstate_free(&jobs[k]);
	}
	ck_assert_uint_eq(total, 1000);
	free(jobs);
	envelope_free(&e);
}
END_TEST

START_TEST(test_jobstate_check)
{
	struct rcpt_status r[3] = {
		{ 0, RCPT_QUEUED, 0, 0, 0, NULL },
		{ 2, RCPT_QUEUED, 0, 0, 0, NULL },
		{ 5, RCPT_QUEUED, 0, 0, 0, NULL },
	};
	struct jobstate j = { (char *)"x.org", 3, r };
	struct envelope e;

	make_grouped(&e);
	ck_assert_int_eq(jobstate_check(&j, &e), 0);
	/* Index out of range. */
	r[2].idx = 6;
	ck_assert_int_eq(jobstate_check(&j, &e), -EBADMSG);
	r[2].idx = UINT32_MAX;
	ck_assert_int_eq(jobstate_check(&j, &e), -EBADMSG);
	/* Duplicate index. */
	r[2].idx = 0;
	ck_assert_int_eq(jobstate_check(&j, &e), -EBADMSG);
	/* A recipient of another domain. */
	r[2].idx = 1;
	ck_assert_int_eq(jobstate_check(&j, &e), -EBADMSG);
	/* The domain compares exactly (records hold it lower-cased). */
	r[2].idx = 5;
	j.domain = (char *)"X.org";
	ck_assert_int_eq(jobstate_check(&j, &e), -EBADMSG);
	j.domain = (char *)"x.org";
	ck_assert_int_eq(jobstate_check(&j, &e), 0);
	envelope_free(&e);
}
END_TEST

/* --- names --------------------------------------------------------------- */

START_TEST(test_names)
{
	static const char *const states[] = {
		"queued", "deferred", "delivered", "bounced", "suppressed", "expired",
	};
	enum rcpt_state st;
	enum queue_stream qs;

	ck_assert_uint_eq(NELEM(states), RCPT_NSTATES);
	for (int i = 0; i < RCPT_NSTATES; i++) {
		ck_assert_str_eq(rcpt_state_name((enum rcpt_state)i), states[i]);
		ck_assert_int_eq(rcpt_state_parse(states[i], &st), 0);
		ck_assert_int_eq(st, i);
		ck_assert(rcpt_state_final((enum rcpt_state)i) == (i >= RCPT_DELIVERED));
	}
	ck_assert_str_eq(rcpt_state_name(RCPT_NSTATES), "?");
	ck_assert_int_eq(rcpt_state_parse("Queued", &st), -EINVAL);
	ck_assert_int_eq(rcpt_state_parse("", &st), -EINVAL);

	ck_assert_str_eq(stream_name(STREAM_TRANSACTIONAL), "transactional");
	ck_assert_str_eq(stream_name(STREAM_BROADCAST), "broadcast");
	ck_assert_int_eq(stream_code(STREAM_TRANSACTIONAL), 't');
	ck_assert_int_eq(stream_code(STREAM_BROADCAST), 'b');
	ck_assert_int_eq(stream_parse("broadcast", &qs), 0);
	ck_assert_int_eq(qs, STREAM_BROADCAST);
	ck_assert_int_eq(stream_parse("t", &qs), 0);
	ck_assert_int_eq(qs, STREAM_TRANSACTIONAL);
	ck_assert_int_eq(stream_parse("b", &qs), 0);
	ck_assert_int_eq(qs, STREAM_BROADCAST);
	ck_assert_int_eq(stream_parse("transactional", &qs), 0);
	ck_assert_int_eq(qs, STREAM_TRANSACTIONAL);
	ck_assert_int_eq(stream_parse("bulk", &qs), -EINVAL);
	ck_assert_int_eq(stream_parse("", &qs), -EINVAL);
}
END_TEST

START_TEST(test_check_field_caps)
{
	struct envelope e;
	char *big = malloc(ENV_FIELD_MAX + 2);

	memset(big, 'a', ENV_FIELD_MAX + 1);
	big[ENV_FIELD_MAX + 1] = '\0';
	envelope_init(&e);
	/* No recipient yet. */
	ck_assert_int_eq(envelope_check(&e), -EINVAL);
	ck_assert_int_eq(envelope_add_rcpt(&e, "x@one.example", NULL, 0), 0);
	envelope_set(&e.sender, "s@shop.example");
	ck_assert_int_eq(envelope_check(&e), 0);
	/* One byte over the cap in any string field is refused... */
	envelope_set(&e.helo, big);
	ck_assert_int_eq(envelope_check(&e), -EINVAL);
	/* ...and exactly the cap is stored and read back. */
	big[ENV_FIELD_MAX] = '\0';
	envelope_set(&e.helo, big);
	ck_assert_int_eq(envelope_check(&e), 0);
	{
		struct buf b = BUF_INIT;
		struct envelope d;

		str_copy(e.id, "01M3250V00NTPCQX", sizeof e.id);
		envelope_encode(&e, &b);
		ck_assert_int_eq(envelope_decode(&d, b.data, b.len), 0);
		ck_assert_uint_eq(strlen(d.helo), ENV_FIELD_MAX);
		envelope_free(&d);
		buf_free(&b);
	}
	envelope_set(&e.envid, big);
	envelope_set(&e.user, "u");
	ck_assert_int_eq(envelope_check(&e), 0);
	big[ENV_FIELD_MAX] = 'a';
	envelope_set(&e.user, big);
	ck_assert_int_eq(envelope_check(&e), -EINVAL);
	envelope_free(&e);
	free(big);
}
END_TEST

Suite *
envelope_suite(void)
{
	Suite *s = suite_create("envelope");
	TCase *tc;

	tc = tcase_create("envelope");
	tcase_add_test(tc, test_envelope_round_trip);
	tcase_add_test(tc, test_envelope_minimal_exact);
	tcase_add_test(tc, test_envelope_ret_full_and_appends);
	tcase_add_test(tc, test_envelope_field_limits);
	tcase_add_loop_test(tc, test_add_rcpt, 0, (int)NELEM(rcpt_cases));
	tcase_add_test(tc, test_rcpt_max);
	suite_add_tcase(s, tc);

	tc = tcase_create("corrupt");
	tcase_add_test(tc, test_envelope_truncations);
	tcase_add_test(tc, test_envelope_flips);
	tcase_add_loop_test(tc, test_envelope_records, 0, (int)NELEM(env_cases));
	tcase_add_loop_test(tc, test_envelope_raw, 0, (int)NELEM(raw_cases));
	tcase_add_test(tc, test_envelope_long_field);
	tcase_add_test(tc, test_job_truncations);
	tcase_add_test(tc, test_job_flips);
	tcase_add_loop_test(tc, test_job_records, 0, (int)NELEM(job_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("jobstate");
	tcase_add_test(tc, test_job_round_trip);
	tcase_add_test(tc, test_job_minimal_exact);
	tcase_add_test(tc, test_job_long_reply);
	tcase_add_test(tc, test_jobs_grouping);
	tcase_add_test(tc, test_jobs_many);
	tcase_add_test(tc, test_jobstate_check);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_check_field_caps);
	suite_add_tcase(s, tc);
	return s;
}
