/*
 * test_dkimverify - policy/dkimverify (DKIM verification) and
 * policy/authres (Authentication-Results, Received-SPF).
 *
 * Messages are signed here with libopendkim's signing API and keys made
 * by OpenSSL at suite start (RSA-2048, RSA-512 for the policy case,
 * Ed25519); the public keys go into a key file (libopendkim's
 * DKIM_QUERY_FILE) in a temporary directory, or into a dnsmasq on
 * loopback for the DNS cases, where a key record of more than 255
 * octets is served as several strings.  Every loop test closes the
 * verifier and asserts uv_loop_close() == 0; every wait runs under a
 * guard timer.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <opendkim/dkim.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "core/buf.h"
#include "core/rfc5322.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "policy/authres.h"
#include "policy/dkimverify.h"
#include "tests/dnsmasq.h"
#include "tests/suites.h"
#include "tests/tmpdir.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_LSAN 1
#endif
#endif
#ifdef TEST_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define GUARD_MS 20000

struct tkey {
	const char *selector;
	dkim_alg_t alg;
	char *priv;  /* PEM */
	char *pub;   /* base64 of the key record's p= */
	const char *ktype;
};

static struct tkey rsa = { .selector = "rsa", .alg = DKIM_SIGN_RSASHA256, .ktype = "rsa" };
static struct tkey ed = { .selector = "ed", .alg = DKIM_SIGN_ED25519SHA256, .ktype = "ed25519" };
static struct tkey weak = { .selector = "weak", .alg = DKIM_SIGN_RSASHA256, .ktype = "rsa" };
static DKIM_LIB *signlib;
static char dir[128];
static char keyfile[192];

static const char HEAD[] =
    "Received: from mx.example.test by us\r\n"
    "From: Mailer <mailer-daemon@example.test>\r\n"
    "To: b+TOKEN@bounces.example.org\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "Date: Mon, 7 Dec 2026 04:00:00 +0000\r\n"
    "Message-ID: <r1@example.test>\r\n";
static const char BODY[] =
    "This is the mail system at host mx.example.test.\r\n"
    "\r\n"
    "I'm sorry to have to inform you that your message could not\r\n"
    "be delivered to one or more recipients.\r\n";

static char *
b64(const unsigned char *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

static void
key_make(struct tkey *k, EVP_PKEY *pk)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long len;

	ck_assert_ptr_nonnull(pk);
	ck_assert_int_eq(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL,
	    NULL), 1);
	len = BIO_get_mem_data(bio, &data);
	k->priv = xmalloc((size_t)len + 1);
	memcpy(k->priv, data, (size_t)len);
	k->priv[len] = '\0';
	BIO_free(bio);
	if (EVP_PKEY_is_a(pk, "ED25519")) {
		unsigned char raw[32];
		size_t rl = sizeof raw;

		ck_assert_int_eq(EVP_PKEY_get_raw_public_key(pk, raw, &rl), 1);
		k->pub = b64(raw, rl);
	} else {
		unsigned char *der = NULL;
		int dl = i2d_PUBKEY(pk, &der);

		ck_assert_int_gt(dl, 0);
		k->pub = b64(der, (size_t)dl);
		OPENSSL_free(der);
	}
	EVP_PKEY_free(pk);
}

static void
suite_setup(void)
{
	unsigned minbits = 512;
	FILE *f;

	key_make(&rsa, EVP_RSA_gen(2048));
	key_make(&weak, EVP_RSA_gen(512));
	key_make(&ed, EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	signlib = dkim_init(NULL, NULL);
	ck_assert_ptr_nonnull(signlib);
	/* The signer must make the 512-bit signature the verifier refuses. */
	ck_assert_int_eq(dkim_options(signlib, DKIM_OP_SETOPT,
	    DKIM_OPTS_MINKEYBITS, &minbits, sizeof minbits), DKIM_STAT_OK);
	tmpdir_make(dir, sizeof dir, "dkimverify");
	snprintf(keyfile, sizeof keyfile, "%s/keys", dir);
	f = fopen(keyfile, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "rsa._domainkey.example.test v=DKIM1; k=rsa; p=%s\n", rsa.pub);
	fprintf(f, "ed._domainkey.example.test v=DKIM1; k=ed25519; p=%s\n", ed.pub);
	fprintf(f, "weak._domainkey.example.test v=DKIM1; k=rsa; p=%s\n", weak.pub);
	fprintf(f, "rsa._domainkey.other.test v=DKIM1; k=rsa; p=%s\n", rsa.pub);
	fprintf(f, "revoked._domainkey.example.test v=DKIM1; k=rsa; p=\n");
	fprintf(f, "junk._domainkey.example.test v=DKIM1; k=rsa; p=!!!notbase64\n");
	ck_assert_int_eq(fclose(f), 0);
}

static void
suite_teardown(void)
{
	struct tkey *keys[] = { &rsa, &ed, &weak };

	for (size_t i = 0; i < 3; i++) {
		free(keys[i]->priv);
		free(keys[i]->pub);
		keys[i]->priv = keys[i]->pub = NULL;
	}
	dkim_close(signlib);
	tmpdir_remove(dir);
}

/*
 * sign - "DKIM-Signature: ...\r\n" over head/body with key k for domain,
 * selector sel (NULL: the key's), identity i (NULL: none).
 */
static char *
sign(const struct tkey *k, const char *domain, const char *sel, const char *i,
    const char *head, const char *body)
{
	struct rfc5322_scan s;
	const char *f;
	size_t fl, hl;
	unsigned char *h;
	DKIM_STAT st;
	DKIM *d;
	char *out;

	d = dkim_sign(signlib, (const unsigned char *)"test", NULL,
	    (dkim_sigkey_t)k->priv, (const unsigned char *)(sel != NULL ? sel :
	    k->selector), (const unsigned char *)domain, DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED, k->alg, -1, &st);
	ck_assert_ptr_nonnull(d);
	if (i != NULL)
		ck_assert_int_eq(dkim_set_signer(d, (const unsigned char *)i),
		    DKIM_STAT_OK);
	rfc5322_scan_init(&s, head, strlen(head));
	while (rfc5322_next(&s, &f, &fl))
		ck_assert_int_eq(dkim_header(d, (unsigned char *)(uintptr_t)f,
		    fl), DKIM_STAT_OK);
	ck_assert_int_eq(dkim_eoh(d), DKIM_STAT_OK);
	ck_assert_int_eq(dkim_body(d, (unsigned char *)(uintptr_t)body,
	    strlen(body)), DKIM_STAT_OK);
	/*
	 * libopendkim 2.11.0~beta2 never frees an Ed25519 signing key (see
	 * deliver/dkimsign.h); the signer here is the test's, so its one
	 * known allocation is declared to LeakSanitizer.
	 */
#ifdef TEST_LSAN
	__lsan_disable();
#endif
	st = dkim_eom(d, NULL);
#ifdef TEST_LSAN
	__lsan_enable();
#endif
	ck_assert_int_eq(st, DKIM_STAT_OK);
	ck_assert_int_eq(dkim_getsighdr_d(d, 16, &h, &hl), DKIM_STAT_OK);
	out = xmalloc(hl + 20);
	snprintf(out, hl + 20, "DKIM-Signature: %.*s\r\n", (int)hl, (char *)h);
	dkim_free(d);
	return out;
}

/* A header section: sigs (NULL-terminated, in order), then head, then the empty line. */
static char *
head_with(const char *const *sigs, const char *head)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; sigs != NULL && sigs[i] != NULL; i++)
		buf_appends(&b, sigs[i]);
	buf_appends(&b, head);
	buf_appends(&b, "\r\n");
	return buf_steal(&b, NULL);
}

static struct dkimverify *
open_file_verifier(uv_loop_t *loop)
{
	struct dkimverify_opts o = { .key_file = keyfile };
	struct dkimverify *v;
	char err[256];

	ck_assert_int_eq(uv_loop_init(loop), 0);
	ck_assert_msg(dkimverify_open(&v, loop, &o, err, sizeof err) == 0, "%s", err);
	return v;
}

static void
on_closed(void *arg)
{
	(*(int *)arg)++;
}

static void
close_verifier(struct dkimverify *v, uv_loop_t *loop)
{
	int closed = 0;

	dkimverify_close(v, on_closed, &closed);
	ck_assert_int_eq(closed, 0);
	ck_assert_int_eq(uv_run(loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(uv_loop_close(loop), 0);
}

/* verify_sync - sign with sigs over HEAD (maybe altered), verify head2/body2. */
static void
run_file(const char *const *sigs, const char *head, const char *body,
    struct dkimverify_report *r)
{
	uv_loop_t loop;
	struct dkimverify *v = open_file_verifier(&loop);
	char *h = head_with(sigs, head);

	dkimverify_run(v, h, strlen(h), body, strlen(body), r);
	free(h);
	close_verifier(v, &loop);
}

/* The first 8 characters of sig's b= tag, white space left out. */
static void
b_prefix(const char *sig, char out[9])
{
	const char *p = sig;
	size_t n = 0;

	/* b= is the tag after "; " or folding white space, not bh=. */
	while ((p = strstr(p, "b=")) != NULL &&
	    !(p > sig && (p[-1] == ' ' || p[-1] == '\t') &&
	    (p[-2] == ';' || p[-2] == '\n' || p[-2] == ' ')))
		p++;
	ck_assert_ptr_nonnull(p);
	for (p += 2; *p != '\0' && *p != ';' && n < 8; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			out[n++] = *p;
	out[n] = '\0';
	ck_assert_uint_eq(n, 8);
}

START_TEST(test_result_names)
{
	ck_assert_str_eq(dkimverify_result_name(DKIMVERIFY_NONE), "none");
	ck_assert_str_eq(dkimverify_result_name(DKIMVERIFY_PASS), "pass");
	ck_assert_str_eq(dkimverify_result_name(DKIMVERIFY_FAIL), "fail");
	ck_assert_str_eq(dkimverify_result_name(DKIMVERIFY_POLICY), "policy");
	ck_assert_str_eq(dkimverify_result_name(DKIMVERIFY_NEUTRAL), "neutral");
	ck_assert_str_eq(dkimverify_result_name(DKIMVERIFY_TEMPERROR), "temperror");
	ck_assert_str_eq(dkimverify_result_name(DKIMVERIFY_PERMERROR), "permerror");
	ck_assert_str_eq(dkimverify_result_name((enum dkimverify_result)99), "?");
}
END_TEST

START_TEST(test_pass_rsa)
{
	struct dkimverify_report r;
	char *sig = sign(&rsa, "example.test", NULL, NULL, HEAD, BODY);
	const char *sigs[] = { sig, NULL };

	run_file(sigs, HEAD, BODY, &r);
	ck_assert_uint_eq(r.nsig, 1);
	ck_assert_uint_eq(r.nignored, 0);
	ck_assert_int_eq(r.sig[0].result, DKIMVERIFY_PASS);
	ck_assert_str_eq(r.sig[0].domain, "example.test");
	ck_assert_str_eq(r.sig[0].selector, "rsa");
	ck_assert_str_eq(r.sig[0].algorithm, "rsa-sha256");
	ck_assert_str_eq(r.sig[0].identity, "");
	ck_assert_str_eq(r.sig[0].reason, "");
	{
		char want[9];

		b_prefix(sig, want);
		ck_assert_str_eq(r.sig[0].bprefix, want);
	}
	free(sig);
}
END_TEST

START_TEST(test_pass_ed25519_identity)
{
	struct dkimverify_report r;
	char *sig = sign(&ed, "example.test", NULL, "@bounces.example.test",
	    HEAD, BODY);
	const char *sigs[] = { sig, NULL };

	run_file(sigs, HEAD, BODY, &r);
	ck_assert_uint_eq(r.nsig, 1);
	ck_assert_msg(r.sig[0].result == DKIMVERIFY_PASS, "%s: %s",
	    dkimverify_result_name(r.sig[0].result), r.sig[0].reason);
	ck_assert_str_eq(r.sig[0].algorithm, "ed25519-sha256");
	ck_assert_str_eq(r.sig[0].selector, "ed");
	ck_assert_str_eq(r.sig[0].identity, "@bounces.example.test");
	free(sig);
}
END_TEST

START_TEST(test_bare_lf_body)
{
	struct dkimverify_report r;
	char *sig = sign(&rsa, "example.test", NULL, NULL, HEAD, BODY);
	const char *sigs[] = { sig, NULL };

	/* The same body with bare LF line ends reads as CRLF. */
	run_file(sigs, HEAD, "This is the mail system at host mx.example.test.\n"
	    "\n"
	    "I'm sorry to have to inform you that your message could not\n"
	    "be delivered to one or more recipients.\n", &r);
	ck_assert_uint_eq(r.nsig, 1);
	ck_assert_int_eq(r.sig[0].result, DKIMVERIFY_PASS);
	free(sig);
}
END_TEST

START_TEST(test_fail_body)
{
	struct dkimverify_report r;
	char *sig = sign(&rsa, "example.test", NULL, NULL, HEAD, BODY);
	const char *sigs[] = { sig, NULL };
	char body[sizeof BODY];

	memcpy(body, BODY, sizeof BODY);
	body[5] = 'X';
	run_file(sigs, HEAD, body, &r);
	ck_assert_uint_eq(r.nsig, 1);
	ck_assert_int_eq(r.sig[0].result, DKIMVERIFY_FAIL);
	ck_assert_str_eq(r.sig[0].reason, "body hash did not verify");
	/* Text appended to the body breaks it too (no l= is honoured here). */
	{
		char *more = xmalloc(sizeof BODY + 32);

		snprintf(more, sizeof BODY + 32, "%sP.S. extra\r\n", BODY);
		run_file(sigs, HEAD, more, &r);
		ck_assert_int_eq(r.sig[0].result, DKIMVERIFY_FAIL);
		free(more);
	}
	free(sig);
}
END_TEST

START_TEST(test_fail_header)
{
	struct dkimverify_report r;
	char *sig = sign(&ed, "example.test", NULL, NULL, HEAD, BODY);
	const char *sigs[] = { sig, NULL };
	char head[sizeof HEAD];
	char *p;

	memcpy(head, HEAD, sizeof HEAD);
	p = strstr(head, "Undelivered");
	ck_assert_ptr_nonnull(p);
	*p = 'u';
	run_file(sigs, head, BODY, &r);
	ck_assert_uint_eq(r.nsig, 1);
	ck_assert_int_eq(r.sig[0].result, DKIMVERIFY_FAIL);
	ck_assert_str_eq(r.sig[0].reason, "signature verification failed");
	free(sig);
}
END_TEST

START_TEST(test_key_errors)
{
	static const struct {
		const char *selector, *domain;
		enum dkimverify_result result;
		const char *reason;
	} cases[] = {
		{ "missing", "example.test", DKIMVERIFY_PERMERROR, "key not found" },
		{ "rsa", "nowhere.test", DKIMVERIFY_PERMERROR, "key not found" },
		{ "revoked", "example.test", DKIMVERIFY_PERMERROR, "key revoked" },
		{ "junk", "example.test", DKIMVERIFY_PERMERROR, NULL },
		{ "weak", "example.test", DKIMVERIFY_POLICY, "key too short" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dkimverify_report r;
		const struct tkey *k = strcmp(cases[i].selector, "weak") == 0 ?
		    &weak : &rsa;
		char *sig = sign(k, cases[i].domain, cases[i].selector, NULL,
		    HEAD, BODY);
		const char *sigs[] = { sig, NULL };

		run_file(sigs, HEAD, BODY, &r);
		ck_assert_uint_eq(r.nsig, 1);
		ck_assert_msg(r.sig[0].result == cases[i].result,
		    "case %zu: %s (%s)", i,
		    dkimverify_result_name(r.sig[0].result), r.sig[0].reason);
		if (cases[i].reason != NULL)
			ck_assert_str_eq(r.sig[0].reason, cases[i].reason);
		else
			ck_assert_str_ne(r.sig[0].reason, "");
		ck_assert_str_eq(r.sig[0].selector, cases[i].selector);
		ck_assert_str_eq(r.sig[0].domain, cases[i].domain);
		free(sig);
	}
}
END_TEST

START_TEST(test_none)
{
	struct dkimverify_report r;

	run_file(NULL, HEAD, BODY, &r);
	ck_assert_uint_eq(r.nsig, 0);
	ck_assert_uint_eq(r.nignored, 0);
	/* Empty input. */
	run_file(NULL, "", "", &r);
	ck_assert_uint_eq(r.nsig, 0);
}
END_TEST

START_TEST(test_two_signatures)
{
	struct dkimverify_report r;
	char *s1 = sign(&ed, "example.test", NULL, NULL, HEAD, BODY);
	char *s2 = sign(&rsa, "other.test", NULL, NULL, HEAD, BODY);
	const char *sigs[] = { s1, s2, NULL };
	char body[sizeof BODY];

	run_file(sigs, HEAD, BODY, &r);
	ck_assert_uint_eq(r.nsig, 2);
	ck_assert_int_eq(r.sig[0].result, DKIMVERIFY_PASS);
	ck_assert_str_eq(r.sig[0].domain, "example.test");
	ck_assert_str_eq(r.sig[0].algorithm, "ed25519-sha256");
	ck_assert_int_eq(r.sig[1].result, DKIMVERIFY_PASS);
	ck_assert_str_eq(r.sig[1].domain, "other.test");
	ck_assert_str_eq(r.sig[1].algorithm, "rsa-sha256");
	{
		char b0[9], b1[9];

		b_prefix(s1, b0);
		b_prefix(s2, b1);
		ck_assert_str_eq(r.sig[0].bprefix, b0);
		ck_assert_str_eq(r.sig[1].bprefix, b1);
	}
	/* Each is judged on its own: a good one beside a broken one. */
	free(s2);
	s2 = sign(&rsa, "other.test", NULL, NULL, HEAD, "other body\r\n");
	sigs[1] = s2;
	memcpy(body, BODY, sizeof BODY);
	run_file(sigs, HEAD, body, &r);
	ck_assert_uint_eq(r.nsig, 2);
	ck_assert_int_eq(r.sig[0].result, DKIMVERIFY_PASS);
	ck_assert_int_eq(r.sig[1].result, DKIMVERIFY_FAIL);
	ck_assert_str_eq(r.sig[1].reason, "body hash did not verify");
	free(s1);
	free(s2);
}
END_TEST

START_TEST(test_malformed)
{
	static const char *const bad[] = {
		/* no s=, no b= */
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; h=from; bh=AAAA\r\n",
		/* unknown algorithm */
		"DKIM-Signature: v=1; a=rsa-md5; d=example.test; s=rsa; h=from; bh=AAAA; b=AAAA\r\n",
		/* no d= */
		"DKIM-Signature: v=1; a=rsa-sha256; s=rsa; h=from; bh=AAAA; b=AAAA\r\n",
		/* garbage tags */
		"DKIM-Signature: ;;;===;;\r\n",
		/* From not in h= */
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=rsa; h=subject; bh=AAAA; b=AAAA\r\n",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct dkimverify_report r;
		const char *sigs[] = { bad[i], NULL };

		run_file(sigs, HEAD, BODY, &r);
		ck_assert_msg(r.nsig == 1, "case %zu: nsig %zu", i, r.nsig);
		ck_assert_msg(r.sig[0].result == DKIMVERIFY_PERMERROR,
		    "case %zu: %s (%s)", i,
		    dkimverify_result_name(r.sig[0].result), r.sig[0].reason);
		ck_assert_str_ne(r.sig[0].reason, "");
	}
}
END_TEST

START_TEST(test_signature_cap)
{
	struct dkimverify_report r;
	char *sig = sign(&rsa, "example.test", NULL, NULL, HEAD, BODY);
	const char *sigs[13];

	for (size_t i = 0; i < 12; i++)
		sigs[i] = sig;
	sigs[12] = NULL;
	run_file(sigs, HEAD, BODY, &r);
	ck_assert_uint_eq(r.nsig, DKIMVERIFY_MAX_SIGS);
	ck_assert_uint_eq(r.nignored, 12 - DKIMVERIFY_MAX_SIGS);
	for (size_t i = 0; i < r.nsig; i++)
		ck_assert_int_eq(r.sig[i].result, DKIMVERIFY_PASS);
	free(sig);
}
END_TEST

START_TEST(test_hostile_input)
{
	uv_loop_t loop;
	struct dkimverify *v = open_file_verifier(&loop);
	struct dkimverify_report r;
	size_t n = 300000;
	char *junk = xmalloc(n);
	struct buf b = BUF_INIT;
	unsigned seed = 12345;

	/* Random octets as header and body. */
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		junk[i] = (char)(seed >> 16);
	}
	dkimverify_run(v, junk, n, junk, n, &r);
	ck_assert_uint_le(r.nsig, DKIMVERIFY_MAX_SIGS);
	/* Random octets after "DKIM-Signature:". */
	buf_appends(&b, "DKIM-Signature: ");
	buf_append(&b, junk, 5000);
	buf_appends(&b, "\r\nFrom: a@example.test\r\n\r\n");
	dkimverify_run(v, b.data, b.len, "x\r\n", 3, &r);
	ck_assert_uint_le(r.nsig, 1);
	for (size_t i = 0; i < r.nsig; i++) {
		for (const char *p = r.sig[i].domain; *p != '\0'; p++)
			ck_assert(*p > 0x20 && *p < 0x7f);
		ck_assert_int_ne(r.sig[i].result, DKIMVERIFY_PASS);
	}
	/* A signature field of 200 KB, lines without a colon, NULs. */
	buf_reset(&b);
	buf_appends(&b, "DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=rsa; h=from; bh=");
	for (size_t i = 0; i < 200000; i++)
		buf_appendc(&b, 'A');
	{
		static const char tail[] =
		    "; b=AAAA\r\nno colon here\r\nFrom: a\0b@example.test\r\n\r\n";

		buf_append(&b, tail, sizeof tail - 1);
	}
	dkimverify_run(v, b.data, b.len, NULL, 0, &r);
	ck_assert_uint_le(r.nsig, 1);
	if (r.nsig == 1)
		ck_assert_int_ne(r.sig[0].result, DKIMVERIFY_PASS);
	/* NULL buffers with zero lengths. */
	dkimverify_run(v, NULL, 0, NULL, 0, &r);
	ck_assert_uint_eq(r.nsig, 0);
	buf_free(&b);
	free(junk);
	close_verifier(v, &loop);
}
END_TEST

/* --- the asynchronous path ----------------------------------------------- */

struct answer {
	int *total; /* also counted here, if set */
	int calls;
	int status;
	struct dkimverify_report r;
};

static void
on_answer(void *arg, int status, const struct dkimverify_report *r)
{
	struct answer *a = arg;

	a->calls++;
	if (a->total != NULL)
		(*a->total)++;
	a->status = status;
	if (r != NULL)
		a->r = *r;
}

static void
on_guard(uv_timer_t *t)
{
	(void)t;
	ck_abort_msg("the loop did not finish within %d ms", GUARD_MS);
}

/* run_until_n - run loop until *flag >= n, under a guard timer. */
static void
run_until_n(uv_loop_t *loop, const int *flag, int n)
{
	uv_timer_t guard;

	ck_assert_int_eq(uv_timer_init(loop, &guard), 0);
	ck_assert_int_eq(uv_timer_start(&guard, on_guard, GUARD_MS, 0), 0);
	while (*flag < n)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
}

static void
run_until(uv_loop_t *loop, const int *flag)
{
	run_until_n(loop, flag, 1);
}

START_TEST(test_async_pass)
{
	uv_loop_t loop;
	struct dkimverify *v = open_file_verifier(&loop);
	char *sig = sign(&rsa, "example.test", NULL, NULL, HEAD, BODY);
	const char *sigs[] = { sig, NULL };
	char *h = head_with(sigs, HEAD), *body = xstrdup(BODY);
	struct answer a = { 0 };
	dkimverify_req id = 0;

	ck_assert_int_eq(dkimverify_start(v, h, strlen(h), body, strlen(body),
	    on_answer, &a, &id), 0);
	ck_assert_uint_ne(id, 0);
	/* The input was copied: the caller's buffers may go at once. */
	memset(h, 'x', strlen(h));
	free(h);
	free(body);
	ck_assert_int_eq(a.calls, 0);
	ck_assert_uint_eq(dkimverify_pending(v), 1);
	run_until(&loop, &a.calls);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(a.status, 0);
	ck_assert_uint_eq(a.r.nsig, 1);
	ck_assert_int_eq(a.r.sig[0].result, DKIMVERIFY_PASS);
	ck_assert_uint_eq(dkimverify_pending(v), 0);
	ck_assert_int_eq(dkimverify_start(v, "x", 1, NULL, 0, NULL, NULL, NULL),
	    -EINVAL);
	close_verifier(v, &loop);
	ck_assert_int_eq(a.calls, 1);
	free(sig);
}
END_TEST

START_TEST(test_async_cancel)
{
	uv_loop_t loop;
	struct dkimverify *v = open_file_verifier(&loop);
	char *sig = sign(&rsa, "example.test", NULL, NULL, HEAD, BODY);
	const char *sigs[] = { sig, NULL };
	char *h = head_with(sigs, HEAD);
	struct answer a[6] = { { 0 } }, last = { 0 };
	dkimverify_req id[6];

	for (size_t i = 0; i < 6; i++)
		ck_assert_int_eq(dkimverify_start(v, h, strlen(h), BODY,
		    strlen(BODY), on_answer, &a[i], &id[i]), 0);
	/* Drop every interest; one more request shows the loop ran past them. */
	for (size_t i = 0; i < 6; i++)
		dkimverify_cancel(v, id[i]);
	dkimverify_cancel(v, 987654); /* unknown: ignored */
	ck_assert_uint_eq(dkimverify_pending(v), 0);
	ck_assert_int_eq(dkimverify_start(v, h, strlen(h), BODY, strlen(BODY),
	    on_answer, &last, NULL), 0);
	run_until(&loop, &last.calls);
	ck_assert_int_eq(last.status, 0);
	ck_assert_int_eq(last.r.sig[0].result, DKIMVERIFY_PASS);
	close_verifier(v, &loop);
	for (size_t i = 0; i < 6; i++)
		ck_assert_int_eq(a[i].calls, 0);
	free(h);
	free(sig);
}
END_TEST

/* Many at once: two workers share the library handle; every answer is right. */
START_TEST(test_async_many)
{
	uv_loop_t loop;
	struct dkimverify *v = open_file_verifier(&loop);
	char *s1 = sign(&ed, "example.test", NULL, NULL, HEAD, BODY);
	char *s2 = sign(&rsa, "other.test", NULL, NULL, HEAD, BODY);
	const char *sigs[] = { s1, s2, NULL };
	char *h = head_with(sigs, HEAD);
	char body[sizeof BODY];
	struct answer a[12] = { { 0 } };
	int done = 0;

	memcpy(body, BODY, sizeof BODY);
	for (size_t i = 0; i < 12; i++) {
		a[i].total = &done;
		/* Every third one with its body changed. */
		body[0] = i % 3 == 2 ? 'X' : BODY[0];
		ck_assert_int_eq(dkimverify_start(v, h, strlen(h), body,
		    strlen(body), on_answer, &a[i], NULL), 0);
	}
	ck_assert_uint_eq(dkimverify_pending(v), 12);
	run_until_n(&loop, &done, 12);
	ck_assert_int_eq(done, 12);
	for (size_t i = 0; i < 12; i++) {
		enum dkimverify_result want = i % 3 == 2 ? DKIMVERIFY_FAIL :
		    DKIMVERIFY_PASS;

		ck_assert_int_eq(a[i].calls, 1);
		ck_assert_int_eq(a[i].status, 0);
		ck_assert_uint_eq(a[i].r.nsig, 2);
		ck_assert_int_eq(a[i].r.sig[0].result, want);
		ck_assert_int_eq(a[i].r.sig[1].result, want);
	}
	close_verifier(v, &loop);
	free(h);
	free(s1);
	free(s2);
}
END_TEST

START_TEST(test_async_close_pending)
{
	uv_loop_t loop;
	struct dkimverify *v = open_file_verifier(&loop);
	struct answer a[4] = { { 0 } };
	int closed = 0;
	char *h = head_with(NULL, HEAD);

	for (size_t i = 0; i < 4; i++)
		ck_assert_int_eq(dkimverify_start(v, h, strlen(h), BODY,
		    strlen(BODY), on_answer, &a[i], NULL), 0);
	dkimverify_close(v, on_closed, &closed);
	ck_assert_int_eq(closed, 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(closed, 1);
	for (size_t i = 0; i < 4; i++) {
		ck_assert_int_eq(a[i].calls, 1);
		ck_assert_int_eq(a[i].status, -ECANCELED);
	}
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	free(h);
}
END_TEST

START_TEST(test_open_errors)
{
	uv_loop_t loop;
	struct dkimverify *v;
	struct dkimverify_opts o = { .dns_server = "not an address" };
	char err[256];

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(dkimverify_open(&v, &loop, &o, err, sizeof err), -EINVAL);
	ck_assert_ptr_null(v);
	ck_assert_ptr_nonnull(strstr(err, "dns_server"));
	o.dns_server = NULL;
	o.key_file = "";
	ck_assert_int_eq(dkimverify_open(&v, &loop, &o, err, sizeof err), -EINVAL);
	/* Defaults: resolv.conf, no file. */
	ck_assert_int_eq(dkimverify_open(&v, &loop, NULL, err, sizeof err), 0);
	close_verifier(v, &loop);
}
END_TEST

/* --- keys from DNS ---------------------------------------------------------- */

/* "--txt-record=NAME,v=DKIM1; k=rsa; p=PART,PART..." in strings of 200. */
static char *
txt_option(const char *name, const char *ktype, const char *pub)
{
	struct buf b = BUF_INIT;
	size_t n = strlen(pub);

	buf_appendf(&b, "--txt-record=%s,v=DKIM1; k=%s; p=", name, ktype);
	for (size_t i = 0; i < n; i += 200) {
		if (i > 0)
			buf_appendc(&b, ',');
		buf_append(&b, pub + i, n - i < 200 ? n - i : 200);
	}
	return buf_steal(&b, NULL);
}

START_TEST(test_dns_keys)
{
	struct dnsmasq m;
	char *rec1 = txt_option("rsa._domainkey.example.test", "rsa", rsa.pub);
	char *rec2 = txt_option("ed._domainkey.example.test", "ed25519", ed.pub);
	const char *records[] = { rec1, rec2, NULL };
	struct dkimverify_opts o = { .dns_timeout_ms = 500 };
	static const struct {
		const char *domain, *selector;
		const struct tkey *k;
		enum dkimverify_result result;
		const char *reason;
	} cases[] = {
		{ "example.test", "rsa", &rsa, DKIMVERIFY_PASS, "" },
		{ "example.test", "ed", &ed, DKIMVERIFY_PASS, "" },
		{ "example.test", "nx", &rsa, DKIMVERIFY_PERMERROR, "key not found" },
		{ "broken.test", "rsa", &rsa, DKIMVERIFY_TEMPERROR, "key query failed" },
		{ "refused.test", "rsa", &rsa, DKIMVERIFY_TEMPERROR, "key query failed" },
	};
	uv_loop_t loop;
	struct dkimverify *v;
	char err[256];

	dnsmasq_start(&m, 0, false, records, NULL);
	o.dns_server = m.server;
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_msg(dkimverify_open(&v, &loop, &o, err, sizeof err) == 0, "%s", err);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *sig = sign(cases[i].k, cases[i].domain, cases[i].selector,
		    NULL, HEAD, BODY);
		const char *sigs[] = { sig, NULL };
		char *h = head_with(sigs, HEAD);
		struct answer a = { 0 };

		ck_assert_int_eq(dkimverify_start(v, h, strlen(h), BODY,
		    strlen(BODY), on_answer, &a, NULL), 0);
		free(h);
		run_until(&loop, &a.calls);
		ck_assert_int_eq(a.status, 0);
		ck_assert_uint_eq(a.r.nsig, 1);
		ck_assert_msg(a.r.sig[0].result == cases[i].result,
		    "case %zu: %s (%s)", i,
		    dkimverify_result_name(a.r.sig[0].result), a.r.sig[0].reason);
		ck_assert_str_eq(a.r.sig[0].reason, cases[i].reason);
		free(sig);
	}
	close_verifier(v, &loop);
	dnsmasq_clean(&m);
	free(rec1);
	free(rec2);
}
END_TEST

/* Twelve signatures: eight keys asked for, the other four never. */
START_TEST(test_dns_signature_cap)
{
	struct dnsmasq m;
	const char *records[] = { NULL };
	struct dkimverify_opts o = { .dns_timeout_ms = 2000 };
	char *sigs[13], sel[16], err[256], *h;
	uv_loop_t loop;
	struct dkimverify *v;
	struct answer a = { 0 };

	for (int i = 0; i < 12; i++) {
		snprintf(sel, sizeof sel, "c%d", i);
		sigs[i] = sign(&rsa, "example.test", sel, NULL, HEAD, BODY);
	}
	sigs[12] = NULL;
	h = head_with((const char *const *)sigs, HEAD);
	dnsmasq_start(&m, 0, true, records, NULL);
	o.dns_server = m.server;
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_msg(dkimverify_open(&v, &loop, &o, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(dkimverify_start(v, h, strlen(h), BODY, strlen(BODY),
	    on_answer, &a, NULL), 0);
	run_until(&loop, &a.calls);
	ck_assert_int_eq(a.status, 0);
	ck_assert_uint_eq(a.r.nsig, 8);
	ck_assert_uint_eq(a.r.nignored, 4);
	for (int i = 0; i < 8; i++) {
		snprintf(sel, sizeof sel, "c%d", i);
		ck_assert_str_eq(a.r.sig[i].selector, sel);
		ck_assert_int_eq(a.r.sig[i].result, DKIMVERIFY_PERMERROR);
		ck_assert_str_eq(a.r.sig[i].reason, "key not found");
	}
	close_verifier(v, &loop);
	ck_assert_int_eq(dnsmasq_log_count(&m, "._domainkey.example.test from"), 8);
	for (int i = 8; i < 12; i++) {
		char needle[64];

		snprintf(needle, sizeof needle, " c%d._domainkey", i);
		ck_assert_int_eq(dnsmasq_log_count(&m, needle), 0);
	}
	dnsmasq_clean(&m);
	for (int i = 0; i < 12; i++)
		free(sigs[i]);
	free(h);
}
END_TEST

START_TEST(test_dns_close_interrupts)
{
	struct dnsmasq m;
	const char *records[] = { NULL };
	struct dkimverify_opts o = { .dns_timeout_ms = 60000 };
	uv_loop_t loop;
	struct dkimverify *v;
	struct answer a = { 0 };
	char err[256];
	char *sig = sign(&rsa, "broken.test", NULL, NULL, HEAD, BODY);
	const char *sigs[] = { sig, NULL };
	char *h = head_with(sigs, HEAD);
	uint64_t t0;
	int closed = 0;

	dnsmasq_start(&m, 0, false, records, NULL);
	o.dns_server = m.server;
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_msg(dkimverify_open(&v, &loop, &o, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(dkimverify_start(v, h, strlen(h), BODY, strlen(BODY),
	    on_answer, &a, NULL), 0);
	/* Let the worker reach its DNS wait (which would last a minute). */
	uv_sleep(300);
	t0 = uv_hrtime();
	dkimverify_close(v, on_closed, &closed);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(a.status, -ECANCELED);
	/* Ended by the close, not by the 60 s query timeout. */
	ck_assert_uint_lt((uv_hrtime() - t0) / 1000000, 30000);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	dnsmasq_clean(&m);
	free(h);
	free(sig);
}
END_TEST

/* --- Authentication-Results and Received-SPF ------------------------------ */

static char *
ar(const char *id, const struct authres_spf *spf, const struct dkimverify_report *r)
{
	struct buf b = BUF_INIT;

	authres_format(&b, id, spf, r);
	return buf_steal(&b, NULL);
}

/* Every line shorter than 78 characters (if its words allow), CRLF-ended, no bare CR/LF. */
static void
assert_field_shape(const char *f, size_t limit)
{
	const char *p = f;

	ck_assert(strlen(f) >= 2 && strcmp(f + strlen(f) - 2, "\r\n") == 0);
	while (*p != '\0') {
		const char *e = strstr(p, "\r\n");

		ck_assert_ptr_nonnull(e);
		ck_assert_msg((size_t)(e - p) < limit, "line of %zu: %.*s",
		    (size_t)(e - p), (int)(e - p), p);
		for (const char *q = p; q < e; q++)
			ck_assert(*q != '\r' && *q != '\n' && *q != '\0');
		p = e + 2;
		if (*p != '\0')
			ck_assert_msg(*p == '\t', "continuation without a tab");
	}
}

START_TEST(test_authres_exact)
{
	struct authres_spf spf = { SPFCHECK_PASS, "mailer@example.test",
	    "mx.example.test", "192.0.2.1" };
	struct dkimverify_report r = { 0 };
	char *s;

	s = ar("mail.example.org", &spf, &r);
	ck_assert_str_eq(s, "Authentication-Results: mail.example.org; spf=pass\r\n"
	    "\tsmtp.mailfrom=mailer@example.test; dkim=none\r\n");
	free(s);

	r.nsig = 1;
	str_copy(r.sig[0].domain, "example.test", sizeof r.sig[0].domain);
	str_copy(r.sig[0].selector, "s1", sizeof r.sig[0].selector);
	str_copy(r.sig[0].identity, "@example.test", sizeof r.sig[0].identity);
	str_copy(r.sig[0].algorithm, "rsa-sha256", sizeof r.sig[0].algorithm);
	r.sig[0].result = DKIMVERIFY_PASS;
	s = ar("mail.example.org", &spf, &r);
	ck_assert_str_eq(s, "Authentication-Results: mail.example.org; spf=pass\r\n"
	    "\tsmtp.mailfrom=mailer@example.test; dkim=pass header.d=example.test\r\n"
	    "\theader.s=s1 header.i=@example.test header.a=rsa-sha256\r\n");
	free(s);

	/* The null sender: SPF of the HELO identity; two signatures, a reason. */
	spf.mailfrom = "";
	spf.result = SPFCHECK_SOFTFAIL;
	r.nsig = 2;
	r.sig[1] = r.sig[0];
	r.sig[1].identity[0] = '\0';
	r.sig[1].result = DKIMVERIFY_FAIL;
	str_copy(r.sig[1].reason, "body hash did not verify", sizeof r.sig[1].reason);
	s = ar("mail.example.org", &spf, &r);
	ck_assert_str_eq(s, "Authentication-Results: mail.example.org; spf=softfail\r\n"
	    "\tsmtp.helo=mx.example.test; dkim=pass header.d=example.test header.s=s1\r\n"
	    "\theader.i=@example.test header.a=rsa-sha256; dkim=fail\r\n"
	    "\treason=\"body hash did not verify\" header.d=example.test header.s=s1\r\n"
	    "\theader.a=rsa-sha256\r\n");
	assert_field_shape(s, 78);
	free(s);

	/* header.b (RFC 6008) after header.a; quoted when it holds '/' or '='. */
	str_copy(r.sig[0].bprefix, "AbCd+123", sizeof r.sig[0].bprefix);
	str_copy(r.sig[1].bprefix, "x/y=Z0Q9", sizeof r.sig[1].bprefix);
	s = ar("mx", NULL, &r);
	ck_assert_str_eq(s, "Authentication-Results: mx; dkim=pass header.d=example.test header.s=s1\r\n"
	    "\theader.i=@example.test header.a=rsa-sha256 header.b=AbCd+123; dkim=fail\r\n"
	    "\treason=\"body hash did not verify\" header.d=example.test header.s=s1\r\n"
	    "\theader.a=rsa-sha256 header.b=\"x/y=Z0Q9\"\r\n");
	assert_field_shape(s, 78);
	free(s);
	r.sig[0].bprefix[0] = r.sig[1].bprefix[0] = '\0';

	/* Nothing checked; DKIM only. */
	s = ar("mail.example.org", NULL, NULL);
	ck_assert_str_eq(s, "Authentication-Results: mail.example.org; none\r\n");
	free(s);
	r.nsig = 0;
	s = ar("mx", NULL, &r);
	ck_assert_str_eq(s, "Authentication-Results: mx; dkim=none\r\n");
	free(s);

	/* Every result by its RFC 8601 name; a reason for all but pass. */
	r.nsig = 1;
	for (int v = DKIMVERIFY_PASS; v <= DKIMVERIFY_PERMERROR; v++) {
		char want[64];

		r.sig[0].result = (enum dkimverify_result)v;
		str_copy(r.sig[0].reason, "why", sizeof r.sig[0].reason);
		s = ar("mx", NULL, &r);
		snprintf(want, sizeof want, "mx; dkim=%s%s",
		    dkimverify_result_name(r.sig[0].result),
		    v == DKIMVERIFY_PASS ? " header.d=" : " reason=\"why\"");
		ck_assert_msg(strstr(s, want) != NULL, "%s", s);
		assert_field_shape(s, 78);
		free(s);
	}
}
END_TEST

START_TEST(test_authres_hostile)
{
	struct authres_spf spf = { SPFCHECK_FAIL, NULL,
	    "evil\r\nX-Injected: 1\r\n\r\nbody", "192.0.2.1" };
	struct dkimverify_report r = { 0 };
	char *s;
	char longname[400];

	s = ar("mail.example.org", &spf, NULL);
	ck_assert_str_eq(s, "Authentication-Results: mail.example.org; spf=fail\r\n"
	    "\tsmtp.helo=\"evil??X-Injected: 1????body\"\r\n");
	free(s);

	/* A quote, a backslash and a semicolon in an address: quoted, escaped. */
	spf.mailfrom = "\"a;b\\\"c\"@example.test";
	s = ar("h", &spf, NULL);
	ck_assert_str_eq(s, "Authentication-Results: h; spf=fail "
	    "smtp.mailfrom=\"\\\"a;b\\\\\\\"c\\\"@example.test\"\r\n");
	free(s);

	/* Signature values with spaces, quotes and non-ASCII. */
	r.nsig = 1;
	str_copy(r.sig[0].domain, "exa mple;\"x", sizeof r.sig[0].domain);
	str_copy(r.sig[0].selector, "s\xc3\xa9", sizeof r.sig[0].selector);
	str_copy(r.sig[0].algorithm, "rsa-sha256", sizeof r.sig[0].algorithm);
	r.sig[0].result = DKIMVERIFY_PERMERROR;
	str_copy(r.sig[0].reason, "key not found", sizeof r.sig[0].reason);
	s = ar("h", NULL, &r);
	ck_assert_str_eq(s, "Authentication-Results: h; dkim=permerror reason=\"key not found\"\r\n"
	    "\theader.d=\"exa mple;\\\"x\" header.s=\"s??\" header.a=rsa-sha256\r\n");
	free(s);

	/* A 400-octet HELO: cut to 255, alone on its line, under 998. */
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	spf.mailfrom = NULL;
	spf.helo = longname;
	s = ar("h", &spf, NULL);
	assert_field_shape(s, 998);
	ck_assert_ptr_nonnull(strstr(s, "smtp.helo=aaaa"));
	ck_assert_uint_eq(strspn(strstr(s, "smtp.helo=") + 10, "a"), 255);
	free(s);
}
END_TEST

static char *
rspf(const char *receiver, const struct authres_spf *spf)
{
	struct buf b = BUF_INIT;

	authres_received_spf(&b, receiver, spf);
	return buf_steal(&b, NULL);
}

START_TEST(test_received_spf)
{
	struct authres_spf spf = { SPFCHECK_PASS, "myname@example.com",
	    "foo.example.com", "192.0.2.1" };
	char *s;

	s = rspf("mybox.example.org", &spf);
	ck_assert_str_eq(s, "Received-SPF: pass (mybox.example.org: domain of myname@example.com\r\n"
	    "\tdesignates 192.0.2.1 as permitted sender) client-ip=192.0.2.1;\r\n"
	    "\tenvelope-from=\"myname@example.com\"; helo=foo.example.com;\r\n"
	    "\treceiver=mybox.example.org; identity=mailfrom;\r\n");
	free(s);

	spf.result = SPFCHECK_FAIL;
	spf.client_ip = "2001:db8::1";
	s = rspf("mx", &spf);
	ck_assert_str_eq(s, "Received-SPF: fail (mx: domain of myname@example.com does not designate\r\n"
	    "\t2001:db8::1 as permitted sender) client-ip=\"2001:db8::1\";\r\n"
	    "\tenvelope-from=\"myname@example.com\"; helo=foo.example.com; receiver=mx;\r\n"
	    "\tidentity=mailfrom;\r\n");
	free(s);

	/* Null sender: the HELO identity. */
	spf.result = SPFCHECK_NONE;
	spf.mailfrom = NULL;
	spf.client_ip = "192.0.2.7";
	s = rspf("mx", &spf);
	ck_assert_str_eq(s, "Received-SPF: none (mx: domain of foo.example.com does not publish an SPF\r\n"
	    "\trecord) client-ip=192.0.2.7; envelope-from=\"\"; helo=foo.example.com;\r\n"
	    "\treceiver=mx; identity=helo;\r\n");
	free(s);

	/* Every verdict has its words; the field keeps its shape. */
	for (int v = SPFCHECK_NONE; v <= SPFCHECK_PERMERROR; v++) {
		spf.result = (enum spfcheck_verdict)v;
		s = rspf("mx.example.org", &spf);
		ck_assert(strncmp(s + 14, spfcheck_verdict_name(spf.result),
		    strlen(spfcheck_verdict_name(spf.result))) == 0);
		assert_field_shape(s, 78);
		free(s);
	}
}
END_TEST

START_TEST(test_received_spf_hostile)
{
	struct authres_spf spf = { SPFCHECK_NEUTRAL, NULL,
	    "x)\r\nX-Evil: (1\\", "192.0.2.1" };
	char *s = rspf("mx", &spf);

	ck_assert_str_eq(s, "Received-SPF: neutral (mx: 192.0.2.1 is neither permitted nor denied by\r\n"
	    "\tdomain of x\\)??X-Evil: \\(1\\\\) client-ip=192.0.2.1; envelope-from=\"\";\r\n"
	    "\thelo=\"x)??X-Evil: (1\\\\\"; receiver=mx; identity=helo;\r\n");
	assert_field_shape(s, 78);
	free(s);
}
END_TEST

START_TEST(test_authres_is_ours)
{
	static const struct {
		const char *field;
		bool ours;
	} cases[] = {
		{ "Authentication-Results: mx.example.org; spf=pass smtp.helo=a", true },
		{ "authentication-results:MX.Example.ORG;dkim=pass", true },
		{ "Authentication-Results: mx.example.org 1; none", true },
		{ "Authentication-Results : (forged)\r\n\t(twice (nested)) mx.example.org; none", true },
		{ "Authentication-Results: \"mx.example.org\"; none", true },
		{ "Authentication-Results: \"mx.exa\\mple.org\"; none", true },
		{ "Authentication-Results: mx.example.org", true },
		{ "Authentication-Results: mx.example.org.evil; none", false },
		{ "Authentication-Results: example.org; none", false },
		{ "Authentication-Results: other.example; spf=pass smtp.helo=mx.example.org", false },
		{ "Authentication-Results: \"mx.example.org", false },
		{ "Authentication-Results: (mx.example.org) x; none", false },
		{ "Authentication-Results:", false },
		{ "Authentication-Results: (unterminated", false },
		{ "X-Authentication-Results: mx.example.org; none", false },
		{ "Received-SPF: pass (mx.example.org: ...)", false },
		{ "no colon mx.example.org", false },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ck_assert_msg(authres_field_is_ours(cases[i].field,
		    strlen(cases[i].field), "mx.example.org") == cases[i].ours,
		    "case %zu: %s", i, cases[i].field);
	ck_assert(!authres_field_is_ours("Authentication-Results: x", 26, ""));
	ck_assert(!authres_field_is_ours("Authentication-Results: x", 26, NULL));
	/* A field this module wrote is recognised. */
	{
		struct authres_spf spf = { SPFCHECK_PASS, "a@b.example", "h", "192.0.2.1" };
		char *s = ar("mx.example.org", &spf, NULL);

		ck_assert(authres_field_is_ours(s, strlen(s) - 2, "mx.example.org"));
		free(s);
	}
}
END_TEST

Suite *
dkimverify_suite(void)
{
	Suite *s = suite_create("dkimverify");
	TCase *tc = tcase_create("verify");
	TCase *fmt = tcase_create("authres");

	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_result_names);
	tcase_add_test(tc, test_pass_rsa);
	tcase_add_test(tc, test_pass_ed25519_identity);
	tcase_add_test(tc, test_bare_lf_body);
	tcase_add_test(tc, test_fail_body);
	tcase_add_test(tc, test_fail_header);
	tcase_add_test(tc, test_key_errors);
	tcase_add_test(tc, test_none);
	tcase_add_test(tc, test_two_signatures);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_signature_cap);
	tcase_add_test(tc, test_hostile_input);
	tcase_add_test(tc, test_async_pass);
	tcase_add_test(tc, test_async_cancel);
	tcase_add_test(tc, test_async_many);
	tcase_add_test(tc, test_async_close_pending);
	tcase_add_test(tc, test_open_errors);
	tcase_add_test(tc, test_dns_keys);
	tcase_add_test(tc, test_dns_signature_cap);
	tcase_add_test(tc, test_dns_close_interrupts);
	suite_add_tcase(s, tc);
	tcase_add_test(fmt, test_authres_exact);
	tcase_add_test(fmt, test_authres_hostile);
	tcase_add_test(fmt, test_received_spf);
	tcase_add_test(fmt, test_received_spf_hostile);
	tcase_add_test(fmt, test_authres_is_ours);
	suite_add_tcase(s, fmt);
	return s;
}
