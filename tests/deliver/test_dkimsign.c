/*
 * test_dkimsign - deliver/dkimkey (key files, TXT records) and
 * deliver/dkimsign (From lookup, signatures, their tags and folding,
 * concurrency).
 *
 * Hermetic: keys are made in a temp data_dir (mkdtemp, removed at the
 * end).  Signatures are checked with libopendkim's verifier fed the TXT
 * records dkimkey printed (a key-lookup callback, no DNS); the
 * independent check with another implementation (dkimpy) is
 * tests/e2e/dkim.sh.  Every verifying test also shows the verifier
 * failing on a changed message, so a verifier that passes everything
 * would be caught.
 *
 * libopendkim 2.11.0~beta2 never frees an Ed25519 signing key (fixed
 * upstream in OpenDKIM pull request #321); deliver/dkimsign.c declares
 * that one leak to LeakSanitizer, so the sanitizer build still catches
 * any other.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <opendkim/dkim.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "deliver/dkimkey.h"
#include "deliver/dkimsign.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* --- temp dirs ------------------------------------------------------------------ */

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *
make_tmpdir(void)
{
	char tmpl[] = "/tmp/kurier-dkim.XXXXXX";
	char *d = mkdtemp(tmpl);

	ck_assert_ptr_nonnull(d);
	return xstrdup(d);
}

static char *
path_in(const char *dir, const char *rel)
{
	struct buf b = BUF_INIT;

	buf_appendf(&b, "%s/%s", dir, rel);
	return buf_steal(&b, NULL);
}

static char *
read_file(const char *path)
{
	struct buf b = BUF_INIT;
	char tmp[4096];
	size_t n;
	FILE *f = fopen(path, "rb");

	ck_assert_ptr_nonnull(f);
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		buf_append(&b, tmp, n);
	fclose(f);
	buf_appends(&b, "");
	return buf_steal(&b, NULL);
}

/* --- TXT records ------------------------------------------------------------ */

/* The quoted strings of a record line, joined; checks each is <= 255. */
static char *
txt_value(const char *rec)
{
	struct buf b = BUF_INIT;
	const char *p = strchr(rec, '(');

	ck_assert_ptr_nonnull(p);
	while ((p = strchr(p, '"')) != NULL) {
		const char *e = strchr(p + 1, '"');

		ck_assert_ptr_nonnull(e);
		ck_assert_uint_le((size_t)(e - p - 1), 255);
		buf_append(&b, p + 1, (size_t)(e - p - 1));
		p = e + 1;
	}
	buf_appends(&b, "");
	return buf_steal(&b, NULL);
}

/* Base64 (no line breaks) -> bytes; returns the length. */
static size_t
unbase64(const char *s, unsigned char *out, size_t size)
{
	size_t n = strlen(s);
	int w;

	ck_assert_uint_le(3 * (n / 4), size);
	w = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
	ck_assert_int_ge(w, 0);
	while (n > 0 && s[n - 1] == '=') {
		n--;
		w--;
	}
	return (size_t)w;
}

/* --- verification with libopendkim (records from dkimkey) --------------------- */

struct record {
	char name[300];   /* selector._domainkey.domain */
	char *value;
};

static struct record records[8];
static size_t nrecords;
static DKIM_LIB *vlib;

static void
record_add(const char *selector, const char *domain, const char *line)
{
	struct record *r = &records[nrecords++];

	ck_assert_uint_le(nrecords, NELEM(records));
	snprintf(r->name, sizeof r->name, "%s._domainkey.%s", selector, domain);
	r->value = txt_value(line);
}

static DKIM_CBSTAT
key_lookup(DKIM *d, DKIM_SIGINFO *sig, unsigned char *buf, size_t buflen)
{
	char name[300];

	(void)d;
	snprintf(name, sizeof name, "%s._domainkey.%s",
	    (const char *)dkim_sig_getselector(sig),
	    (const char *)dkim_sig_getdomain(sig));
	for (size_t i = 0; i < nrecords; i++) {
		if (strcasecmp(records[i].name, name) == 0 &&
		    strlen(records[i].value) < buflen) {
			strcpy((char *)buf, records[i].value);
			return DKIM_CBSTAT_CONTINUE;
		}
	}
	return DKIM_CBSTAT_NOTFOUND;
}

static void
verifier_open(void)
{
	unsigned flags = DKIM_LIBFLAGS_FIXCRLF;

	vlib = dkim_init(NULL, NULL);
	ck_assert_ptr_nonnull(vlib);
	ck_assert_int_eq(dkim_options(vlib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
	    sizeof flags), DKIM_STAT_OK);
	ck_assert_int_eq(dkim_set_key_lookup(vlib, key_lookup), DKIM_STAT_OK);
}

static void
verifier_close(void)
{
	dkim_close(vlib);
	vlib = NULL;
	for (size_t i = 0; i < nrecords; i++)
		free(records[i].value);
	nrecords = 0;
}

/* How many DKIM-Signatures msg carries (*nsig) and how many pass. */
static int
verify_count(const char *msg, size_t len, int *nsig)
{
	DKIM_SIGINFO **sigs;
	DKIM_STAT st;
	DKIM *d;
	int n = 0, pass = 0;

	d = dkim_verify(vlib, (const unsigned char *)"test", NULL, &st);
	ck_assert_ptr_nonnull(d);
	(void)dkim_chunk(d, (unsigned char *)(uintptr_t)msg, len);
	(void)dkim_chunk(d, NULL, 0);
	(void)dkim_eom(d, NULL);
	if (dkim_getsiglist(d, &sigs, &n) == DKIM_STAT_OK) {
		for (int i = 0; i < n; i++)
			pass += DKIM_SIG_CHECK(sigs[i]);
	}
	dkim_free(d);
	*nsig = n;
	return pass;
}

/* The signatures of res followed by the message. */
static char *
signed_msg(const struct dkimsign_result *res, const char *msg, size_t len,
    size_t *outlen)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < res->nsig; i++)
		buf_appends(&b, res->sig[i].header);
	buf_append(&b, msg, len);
	return buf_steal(&b, outlen);
}

/*
 * Assert that every signature of res verifies on msg and that the
 * verifier refuses the same signatures once a body byte is changed.
 */
static void
assert_valid(const struct dkimsign_result *res, const char *msg, size_t len)
{
	size_t sl;
	char *s = signed_msg(res, msg, len, &sl);
	int n;

	ck_assert_msg(verify_count(s, sl, &n) == (int)res->nsig && n == (int)res->nsig,
	    "signatures do not verify on: %.300s", s);
	/* The last byte is a body byte in every message signed here. */
	s[sl - 1] = s[sl - 1] == 'x' ? 'y' : 'x';
	ck_assert_int_eq(verify_count(s, sl, &n), 0);
	free(s);
}

/* --- signature tags ------------------------------------------------------------ */

/* The value of tag in a signature header, all white space removed. */
static bool
sig_tag(const char *hdr, const char *tag, char *out, size_t size)
{
	const char *p = strchr(hdr, ':') + 1;
	size_t tl = strlen(tag);

	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (strncmp(p, tag, tl) == 0 && p[tl] == '=') {
			size_t n = 0;

			for (p += tl + 1; *p != '\0' && *p != ';'; p++)
				if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n' &&
				    n + 1 < size)
					out[n++] = *p;
			out[n] = '\0';
			return true;
		}
		p = strchr(p, ';');
		if (p == NULL)
			break;
		p++;
	}
	return false;
}

/* --- fixtures: one data_dir with keys for the signing tests ------------------- */

static char *sdir;              /* temp dir; data_dir is sdir itself */
static struct dkimsign *ds;

static void
gen(const char *dir, const char *domain, const char *sel, const char *algo)
{
	char err[512], *txt;

	ck_assert_msg(dkimkey_generate(dir, domain, sel, algo, &txt, err,
	    sizeof err) == 0, "%s", err);
	record_add(sel, domain, txt);
	free(txt);
}

static void
sign_setup(void)
{
	static const char *const both[] = { "s1", "e1" };
	static const char *const one[] = { "s1" };
	static const char *const ed[] = { "e1" };
	char err[512];

	log_set_level(LOG_WARN);
	sdir = make_tmpdir();
	verifier_open();
	gen(sdir, "example.com", "s1", "rsa");
	gen(sdir, "example.com", "e1", "ed25519");
	gen(sdir, "rsaonly.example", "s1", "rsa");
	gen(sdir, "edonly.example", "e1", "ed25519");
	ck_assert_int_eq(dkimsign_open(&ds, sdir, err, sizeof err), 0);
	ck_assert_msg(dkimsign_add_domain(ds, "example.com", both, 2, err,
	    sizeof err) == 0, "%s", err);
	ck_assert_msg(dkimsign_add_domain(ds, "rsaonly.example", one, 1, err,
	    sizeof err) == 0, "%s", err);
	ck_assert_msg(dkimsign_add_domain(ds, "EdOnly.Example", ed, 1, err,
	    sizeof err) == 0, "%s", err);
}

static void
sign_teardown(void)
{
	dkimsign_close(ds);
	ds = NULL;
	verifier_close();
	rm_tree(sdir);
	free(sdir);
	sdir = NULL;
	log_set_level(LOG_INFO);
}

/* Sign msg (header section up to the first empty line, which counts). */
static void
sign_str(const char *msg, unsigned algos, struct dkimsign_result *res)
{
	const char *e = strstr(msg, "\r\n\r\n");
	size_t len = strlen(msg);

	dkimsign_sign(ds, msg, e != NULL ? (size_t)(e - msg) + 4 : len, len,
	    algos, res);
}

#define SIMPLE_MSG \
	"From: Joe <joe@example.com>\r\nTo: ann@example.net\r\n" \
	"Subject: hello\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n" \
	"Message-ID: <1@example.com>\r\n\r\nHello, Ann.\r\n"

/* --- keygen ------------------------------------------------------------------ */

START_TEST(test_keygen_rsa)
{
	char *dir = make_tmpdir(), *data = path_in(dir, "data");
	char *kdir = path_in(data, "dkim"), *key = path_in(kdir, "example.com.s1.key");
	char err[512], *txt, *txt2, *val, *pem;
	unsigned char der[1024];
	const unsigned char *dp = der;
	size_t dl;
	struct stat st;
	EVP_PKEY *pk, *pub;

	/* data_dir does not exist yet: made, like data_dir/dkim, 0700. */
	ck_assert_msg(dkimkey_generate(data, "Example.COM", "S1", "rsa", &txt, err,
	    sizeof err) == 0, "%s", err);
	ck_assert_int_eq(stat(data, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(kdir, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(key, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	pem = read_file(key);
	ck_assert(strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
	free(pem);

	ck_assert(strncmp(txt, "s1._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; p=MII",
	    56) == 0);
	ck_assert(strcmp(txt + strlen(txt) - 3, "\" )") == 0);
	ck_assert_ptr_null(strchr(txt, '\n'));
	val = txt_value(txt);   /* each string <= 255 octets */
	ck_assert_uint_gt(strlen(val), 255);  /* so it was cut in two or more */
	ck_assert(strncmp(val, "v=DKIM1; k=rsa; p=", 18) == 0);
	dl = unbase64(val + 18, der, sizeof der);
	pub = d2i_PUBKEY(NULL, &dp, (long)dl);
	ck_assert_ptr_nonnull(pub);
	ck_assert_int_eq(dkimkey_load(&pk, data, "example.com", "s1", true, err,
	    sizeof err), 0);
	ck_assert_int_eq(EVP_PKEY_get_bits(pk), DKIMKEY_RSA_BITS);
	ck_assert_int_eq(EVP_PKEY_eq(pk, pub), 1);

	/* The record of the file is the one keygen printed. */
	ck_assert_int_eq(dkimkey_record(data, "example.com", "s1", &txt2, err,
	    sizeof err), 0);
	ck_assert_str_eq(txt2, txt);

	EVP_PKEY_free(pk);
	EVP_PKEY_free(pub);
	free(val);
	free(txt);
	free(txt2);
	rm_tree(dir);
	free(key);
	free(kdir);
	free(data);
	free(dir);
}
END_TEST

START_TEST(test_keygen_ed25519)
{
	char *dir = make_tmpdir(), *key = path_in(dir, "dkim/example.org.e1.key");
	char err[512], *txt, *val;
	unsigned char raw[64], pub[32];
	size_t rl, pl = sizeof pub;
	struct stat st;
	EVP_PKEY *pk;

	ck_assert_msg(dkimkey_generate(dir, "example.org", "e1", "ed25519", &txt,
	    err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(stat(key, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	val = txt_value(txt);
	ck_assert(strncmp(txt, "e1._domainkey.example.org. IN TXT ( \"v=DKIM1; k=ed25519; p=",
	    58) == 0);
	/* RFC 8463 4.2: p= is the raw 32-byte public key. */
	rl = unbase64(val + strlen("v=DKIM1; k=ed25519; p="), raw, sizeof raw);
	ck_assert_uint_eq(rl, 32);
	ck_assert_int_eq(dkimkey_load(&pk, dir, "example.org", "e1", true, err,
	    sizeof err), 0);
	ck_assert(EVP_PKEY_is_a(pk, "ED25519"));
	ck_assert_int_eq(EVP_PKEY_get_raw_public_key(pk, pub, &pl), 1);
	ck_assert_mem_eq(raw, pub, 32);
	EVP_PKEY_free(pk);
	free(val);
	free(txt);
	rm_tree(dir);
	free(key);
	free(dir);
}
END_TEST

START_TEST(test_keygen_no_overwrite)
{
	char *dir = make_tmpdir(), *key = path_in(dir, "dkim/example.com.s1.key");
	char err[512], *txt, *before, *after;

	ck_assert_int_eq(dkimkey_generate(dir, "example.com", "s1", "ed25519",
	    &txt, err, sizeof err), 0);
	free(txt);
	before = read_file(key);
	for (int i = 0; i < 2; i++) {
		const char *algo = i == 0 ? "ed25519" : "rsa";

		err[0] = '\0';
		ck_assert_int_eq(dkimkey_generate(dir, "EXAMPLE.com", "s1", algo,
		    &txt, err, sizeof err), -EEXIST);
		ck_assert_ptr_null(txt);
		ck_assert_ptr_nonnull(strstr(err, key));
		ck_assert_ptr_nonnull(strstr(err, "refusing to overwrite"));
	}
	after = read_file(key);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	rm_tree(dir);
	free(key);
	free(dir);
}
END_TEST

static const struct name_case {
	const char *domain, *selector, *algo;
	const char *errpart;
} bad_names[] = {
	{ "", "s1", "rsa", "not a domain" },
	{ "-a.example", "s1", "rsa", "not a domain" },
	{ "a-.example", "s1", "rsa", "not a domain" },
	{ "a..example", "s1", "rsa", "not a domain" },
	{ "a.example.", "s1", "rsa", "not a domain" },
	{ ".a.example", "s1", "rsa", "not a domain" },
	{ "a/b.example", "s1", "rsa", "not a domain" },
	{ "../etc", "s1", "rsa", "not a domain" },
	{ "a_b.example", "s1", "rsa", "not a domain" },
	{ "a b.example", "s1", "rsa", "not a domain" },
	{ "exa\xc3\xa9mple.com", "s1", "rsa", "not a domain" },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
	  "s1", "rsa", "not a domain" },  /* a 64-octet label */
	{ "a.example", "", "rsa", "not a DKIM selector" },
	{ "a.example", "s/1", "rsa", "not a DKIM selector" },
	{ "a.example", "..", "rsa", "not a DKIM selector" },
	{ "a.example", "../s1", "rsa", "not a DKIM selector" },
	{ "a.example", ".s1", "rsa", "not a DKIM selector" },
	{ "a.example", "s1.", "rsa", "not a DKIM selector" },
	{ "a.example", "-s1", "rsa", "not a DKIM selector" },
	{ "a.example", "s 1", "rsa", "not a DKIM selector" },
	{ "a.example", "s1_x", "rsa", "not a DKIM selector" },
	{ "a.example", "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss",
	  "rsa", "not a DKIM selector" },  /* 64 octets */
	{ "a.example", "s1", "dsa", "not a key algorithm" },
	{ "a.example", "s1", "RSA", "not a key algorithm" },
	{ "a.example", "s1", "", "not a key algorithm" },
};

START_TEST(test_keygen_bad_names)
{
	const struct name_case *c = &bad_names[_i];
	char *dir = make_tmpdir(), *kdir = path_in(dir, "dkim");
	char err[512], *txt = (char *)1;
	struct stat st;

	err[0] = '\0';
	ck_assert_int_eq(dkimkey_generate(dir, c->domain, c->selector, c->algo,
	    &txt, err, sizeof err), -EINVAL);
	ck_assert_ptr_null(txt);
	ck_assert_msg(strstr(err, c->errpart) != NULL, "err: %s", err);
	/* Refused before anything was written. */
	ck_assert_int_ne(stat(kdir, &st), 0);
	rm_tree(dir);
	free(kdir);
	free(dir);
}
END_TEST

START_TEST(test_names_valid)
{
	ck_assert(dkimkey_domain_valid("example.com"));
	ck_assert(dkimkey_domain_valid("a-b.c-d.example"));
	ck_assert(dkimkey_domain_valid("localhost"));
	ck_assert(dkimkey_domain_valid("xn--bcher-kva.example"));
	ck_assert(dkimkey_selector_valid("s1"));
	ck_assert(dkimkey_selector_valid("2026-03.mail"));
	ck_assert(dkimkey_selector_valid("S"));
	ck_assert(!dkimkey_domain_valid(NULL));
	ck_assert(!dkimkey_selector_valid(NULL));
}
END_TEST

/* --- loading keys ------------------------------------------------------------- */

/* Write pk (or text when pk is NULL) as data_dir/dkim/<name>.key, mode 0600. */
static void
put_key(const char *dir, const char *name, EVP_PKEY *pk, const char *text,
    bool encrypt)
{
	char *kdir = path_in(dir, "dkim"), *path;
	struct buf b = BUF_INIT;
	FILE *f;

	(void)mkdir(kdir, 0700);
	buf_appendf(&b, "%s/%s.key", kdir, name);
	path = buf_steal(&b, NULL);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fchmod(fileno(f), 0600), 0);
	if (pk != NULL)
		ck_assert_int_eq(PEM_write_PrivateKey(f, pk,
		    encrypt ? EVP_aes_256_cbc() : NULL,
		    encrypt ? (unsigned char *)"secret" : NULL, encrypt ? 6 : 0,
		    NULL, NULL), 1);
	else
		fputs(text, f);
	fclose(f);
	free(path);
	free(kdir);
}

START_TEST(test_load_errors)
{
	char *dir = make_tmpdir(), *key = path_in(dir, "dkim/a.example.s1.key");
	char err[512], *txt;
	EVP_PKEY *pk, *rsa512, *rsa1024, *ec;
	struct dkimsign *d;
	static const char *const s1[] = { "s1" };

	/* No key: what to run. */
	ck_assert_int_eq(dkimkey_load(&pk, dir, "a.example", "s1", true, err,
	    sizeof err), -ENOENT);
	ck_assert_ptr_null(pk);
	ck_assert_ptr_nonnull(strstr(err, key));
	ck_assert_ptr_nonnull(strstr(err, "run kurierctl dkim keygen a.example --selector s1"));

	/* Mode: 0640 is fine, 0644 and 0660 are refused (not by dkimkey_record). */
	ck_assert_int_eq(dkimkey_generate(dir, "a.example", "s1", "ed25519", &txt,
	    err, sizeof err), 0);
	free(txt);
	ck_assert_int_eq(chmod(key, 0640), 0);
	ck_assert_int_eq(dkimkey_load(&pk, dir, "a.example", "s1", true, err,
	    sizeof err), 0);
	EVP_PKEY_free(pk);
	for (int i = 0; i < 3; i++) {
		static const mode_t modes[] = { 0644, 0660, 0604 };

		ck_assert_int_eq(chmod(key, modes[i]), 0);
		ck_assert_int_eq(dkimkey_load(&pk, dir, "a.example", "s1", true, err,
		    sizeof err), -EPERM);
		ck_assert_ptr_nonnull(strstr(err, "chmod 600"));
		ck_assert_ptr_nonnull(strstr(err, key));
	}
	ck_assert_int_eq(dkimkey_record(dir, "a.example", "s1", &txt, err,
	    sizeof err), 0);
	free(txt);
	/* dkimsign refuses it too, and keeps nothing of the domain. */
	ck_assert_int_eq(dkimsign_open(&d, dir, err, sizeof err), 0);
	ck_assert_int_eq(dkimsign_add_domain(d, "a.example", s1, 1, err,
	    sizeof err), -EPERM);
	ck_assert(!dkimsign_has_domain(d, "a.example"));
	dkimsign_close(d);
	unlink(key);

	/* Not a key, an encrypted key (no prompt), a weak RSA key, an EC key. */
	put_key(dir, "a.example.s1", NULL, "not a key\n", false);
	ck_assert_int_eq(dkimkey_load(&pk, dir, "a.example", "s1", true, err,
	    sizeof err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "not an unencrypted PEM private key"));
	rsa512 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ck_assert(rsa512 != NULL && rsa1024 != NULL && ec != NULL);
	put_key(dir, "a.example.s1", rsa1024, NULL, true);
	ck_assert_int_eq(dkimkey_load(&pk, dir, "a.example", "s1", true, err,
	    sizeof err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "not an unencrypted PEM private key"));
	put_key(dir, "a.example.s1", rsa512, NULL, false);
	ck_assert_int_eq(dkimkey_load(&pk, dir, "a.example", "s1", true, err,
	    sizeof err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "a 512-bit RSA key"));
	put_key(dir, "a.example.s1", ec, NULL, false);
	ck_assert_int_eq(dkimkey_load(&pk, dir, "a.example", "s1", true, err,
	    sizeof err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "RSA or Ed25519"));
	ck_assert_int_eq(dkimkey_record(dir, "a.example", "s1", &txt, err,
	    sizeof err), -EINVAL);
	ck_assert_ptr_null(txt);

	/* 1024-bit RSA is the floor: loaded (and logged as weak) and used. */
	put_key(dir, "a.example.s1", rsa1024, NULL, false);
	ck_assert_int_eq(dkimsign_open(&d, dir, err, sizeof err), 0);
	ck_assert_msg(dkimsign_add_domain(d, "a.example", s1, 1, err,
	    sizeof err) == 0, "%s", err);
	ck_assert(dkimsign_has_domain(d, "A.Example"));
	dkimsign_close(d);

	/* A directory where the key should be. */
	unlink(key);
	ck_assert_int_eq(mkdir(key, 0700), 0);
	ck_assert_int_eq(dkimkey_load(&pk, dir, "a.example", "s1", true, err,
	    sizeof err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "not a regular file"));

	EVP_PKEY_free(rsa512);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(ec);
	rm_tree(dir);
	free(key);
	free(dir);
}
END_TEST

START_TEST(test_add_domain_errors)
{
	static const char *const s9[] = { "s9" };
	static const char *const twice[] = { "s1", "S1" };
	static const char *const bad[] = { "s/1" };
	static const char *const partly[] = { "s1", "s9" };
	static const char *const s1[] = { "s1" };
	char err[512];

	ck_assert_int_eq(dkimsign_add_domain(ds, "example.net", s9, 1, err,
	    sizeof err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "example.net.s9.key"));
	ck_assert_ptr_nonnull(strstr(err, "kurierctl dkim keygen example.net --selector s9"));
	ck_assert_int_eq(dkimsign_add_domain(ds, "Example.Com", s1, 1, err,
	    sizeof err), -EEXIST);
	ck_assert_int_eq(dkimsign_add_domain(ds, "other.example", s1, 0, err,
	    sizeof err), -EINVAL);
	ck_assert_int_eq(dkimsign_add_domain(ds, "other.example", twice, 2, err,
	    sizeof err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "twice"));
	ck_assert_int_eq(dkimsign_add_domain(ds, "other.example", bad, 1, err,
	    sizeof err), -EINVAL);
	ck_assert_int_eq(dkimsign_add_domain(ds, "bad..example", s1, 1, err,
	    sizeof err), -EINVAL);
	/* One good key and one missing: nothing of the domain is kept. */
	ck_assert_int_eq(dkimsign_add_domain(ds, "rsaonly.example", partly, 2, err,
	    sizeof err), -EEXIST);
	gen(sdir, "partly.example", "s1", "ed25519");
	ck_assert_int_eq(dkimsign_add_domain(ds, "partly.example", partly, 2, err,
	    sizeof err), -ENOENT);
	ck_assert(!dkimsign_has_domain(ds, "partly.example"));
	ck_assert(dkimsign_has_domain(ds, "EXAMPLE.com"));
	ck_assert(dkimsign_has_domain(ds, "edonly.example"));
	ck_assert(!dkimsign_has_domain(ds, "example.org"));
	ck_assert(!dkimsign_has_domain(ds, NULL));
	dkimsign_close(NULL);
}
END_TEST

/* --- signing -------------------------------------------------------------------- */

START_TEST(test_sign_algos)
{
	static const struct {
		const char *from;
		unsigned algos;
		int status;
		unsigned got[2];
	} cases[] = {
		{ "joe@example.com", DKIMSIGN_ALL, 0, { DKIMSIGN_RSA, DKIMSIGN_ED25519 } },
		{ "joe@example.com", DKIMSIGN_RSA, 0, { DKIMSIGN_RSA, 0 } },
		{ "joe@example.com", DKIMSIGN_ED25519, 0, { DKIMSIGN_ED25519, 0 } },
		{ "joe@example.com", 0, -ENOENT, { 0, 0 } },
		{ "joe@rsaonly.example", DKIMSIGN_ALL, 0, { DKIMSIGN_RSA, 0 } },
		{ "joe@rsaonly.example", DKIMSIGN_ED25519, -ENOENT, { 0, 0 } },
		{ "joe@edonly.example", DKIMSIGN_ALL, 0, { DKIMSIGN_ED25519, 0 } },
		{ "joe@edonly.example", DKIMSIGN_RSA, -ENOENT, { 0, 0 } },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		struct dkimsign_result res;
		struct buf m = BUF_INIT;
		char a[64], d[300], s[64];
		size_t want = (cases[i].got[0] != 0) + (cases[i].got[1] != 0);

		buf_appendf(&m, "From: %s\r\nSubject: algos\r\n\r\nbody\r\n",
		    cases[i].from);
		sign_str(m.data, cases[i].algos, &res);
		ck_assert_msg(res.status == cases[i].status, "case %zu: %d %s", i,
		    res.status, res.why);
		ck_assert_uint_eq(res.nsig, want);
		ck_assert_str_eq(res.domain, strchr(cases[i].from, '@') + 1);
		if (res.status < 0) {
			ck_assert_ptr_nonnull(strstr(res.why, "unsigned: no DKIM key for"));
			ck_assert_ptr_null(res.sig);
		} else {
			ck_assert_str_eq(res.why, "");
		}
		for (size_t j = 0; j < res.nsig; j++) {
			bool rsa = cases[i].got[j] == DKIMSIGN_RSA;

			ck_assert_uint_eq(res.sig[j].algo, cases[i].got[j]);
			ck_assert(sig_tag(res.sig[j].header, "a", a, sizeof a));
			ck_assert_str_eq(a, rsa ? "rsa-sha256" : "ed25519-sha256");
			ck_assert(sig_tag(res.sig[j].header, "d", d, sizeof d));
			ck_assert_str_eq(d, res.domain);
			ck_assert(sig_tag(res.sig[j].header, "s", s, sizeof s));
			ck_assert_str_eq(s, rsa ? "s1" : "e1");
		}
		if (res.status == 0)
			assert_valid(&res, m.data, m.len);
		dkimsign_result_free(&res);
		ck_assert_uint_eq(res.nsig, 0);
		ck_assert_ptr_null(res.sig);
		buf_free(&m);
	}
}
END_TEST

START_TEST(test_sign_tags)
{
	static const char msg[] =
	    "Received: from a by b; Mon, 02 Mar 2026 10:00:00 +0000\r\n"
	    "From: Joe <joe@example.com>\r\n"
	    "To: ann@example.net,\r\n bob@example.net\r\n"
	    "Cc: cy@example.net\r\n"
	    "Subject: all the signed fields\r\n"
	    "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
	    "X-Mailer: none\r\n"
	    "Message-ID: <2@example.com>\r\n"
	    "Reply-To: joe@example.com\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "List-Unsubscribe: <https://example.com/u/1>\r\n"
	    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
	    "To: dan@example.net\r\n"
	    "\r\n"
	    "Body.\r\n";
	struct dkimsign_result res;
	char v[512];

	sign_str(msg, DKIMSIGN_ALL, &res);
	ck_assert_msg(res.status == 0, "%s", res.why);
	ck_assert_uint_eq(res.nsig, 2);
	for (size_t i = 0; i < res.nsig; i++) {
		const char *h = res.sig[i].header;

		/* Every present field of the list, in message order, From once more. */
		ck_assert(sig_tag(h, "h", v, sizeof v));
		ck_assert_str_eq(v, "From:To:Cc:Subject:Date:Message-ID:Reply-To:"
		    "MIME-Version:Content-Type:List-Unsubscribe:"
		    "List-Unsubscribe-Post:To:From");
		ck_assert(sig_tag(h, "v", v, sizeof v));
		ck_assert_str_eq(v, "1");
		ck_assert(sig_tag(h, "c", v, sizeof v));
		ck_assert_str_eq(v, "relaxed/relaxed");
		ck_assert(sig_tag(h, "t", v, sizeof v));
		ck_assert_uint_ge(strtoull(v, NULL, 10), (unsigned long long)time(NULL) - 60);
		ck_assert(sig_tag(h, "bh", v, sizeof v));
		ck_assert(sig_tag(h, "b", v, sizeof v));
		/* The whole body is signed; no expiry; no agent identity. */
		ck_assert(!sig_tag(h, "l", v, sizeof v));
		ck_assert(!sig_tag(h, "x", v, sizeof v));
		ck_assert(!sig_tag(h, "i", v, sizeof v));
		ck_assert(!sig_tag(h, "z", v, sizeof v));
	}
	assert_valid(&res, msg, sizeof msg - 1);
	dkimsign_result_free(&res);

	/* Only what is present is listed (plus the second From). */
	sign_str(SIMPLE_MSG, DKIMSIGN_RSA, &res);
	ck_assert_int_eq(res.status, 0);
	ck_assert(sig_tag(res.sig[0].header, "h", v, sizeof v));
	ck_assert_str_eq(v, "From:To:Subject:Date:Message-ID:From");
	dkimsign_result_free(&res);
}
END_TEST

START_TEST(test_sign_oversign)
{
	/* A From added after signing breaks the signature (RFC 6376 8.15). */
	static const char added[] = "From: Mallory <m@example.com>\r\n";
	struct dkimsign_result res;
	struct buf b = BUF_INIT;
	char *s;
	size_t sl;
	int n;

	sign_str(SIMPLE_MSG, DKIMSIGN_ALL, &res);
	ck_assert_int_eq(res.status, 0);
	s = signed_msg(&res, SIMPLE_MSG, sizeof SIMPLE_MSG - 1, &sl);
	ck_assert_int_eq(verify_count(s, sl, &n), 2);
	/* Above the signed From (where a verifier looks first) and below it. */
	for (int where = 0; where < 2; where++) {
		const char *at = where == 0 ? strstr(s, "From: Joe") : strstr(s, "To: ann");

		buf_reset(&b);
		buf_append(&b, s, (size_t)(at - s));
		buf_appends(&b, added);
		buf_appends(&b, at);
		ck_assert_int_eq(verify_count(b.data, b.len, &n), 0);
		ck_assert_int_eq(n, 2);
	}
	free(s);
	buf_free(&b);
	dkimsign_result_free(&res);
}
END_TEST

START_TEST(test_sign_folding)
{
	struct dkimsign_result res;
	static const char msg[] =
	    "From: Joe <joe@example.com>\r\n"
	    "To: a@example.net, b@example.net, c@example.net, d@example.net,\r\n"
	    " e@example.net, f@example.net\r\n"
	    "Subject: a subject long enough to need folding when it is written\r\n"
	    "\tout on more than one line of the header section\r\n"
	    "\r\nbody\r\n";

	sign_str(msg, DKIMSIGN_ALL, &res);
	ck_assert_int_eq(res.status, 0);
	for (size_t i = 0; i < res.nsig; i++) {
		const char *p = res.sig[i].header, *e;
		size_t len = strlen(p);
		int lines = 0;

		ck_assert(strncmp(p, "DKIM-Signature: v=1; ", 21) == 0);
		ck_assert(len > 2 && strcmp(p + len - 2, "\r\n") == 0);
		for (; *p != '\0'; p = e + 2, lines++) {
			e = strstr(p, "\r\n");
			ck_assert_ptr_nonnull(e);
			/* RFC 5322 2.1.1: lines of at most 78 characters. */
			ck_assert_uint_le((size_t)(e - p), 78);
			ck_assert_ptr_null(memchr(p, '\n', (size_t)(e - p)));
			ck_assert_ptr_null(memchr(p, '\r', (size_t)(e - p)));
			/* Continuation lines start with white space. */
			if (lines > 0)
				ck_assert_int_eq(*p, '\t');
			else
				ck_assert_int_ne(*p, '\t');
		}
		ck_assert_int_ge(lines, 3);
	}
	assert_valid(&res, msg, sizeof msg - 1);
	dkimsign_result_free(&res);
}
END_TEST

/* From fields and what signing makes of them (SIMPLE_MSG's other fields). */
static const struct from_case {
	const char *from;     /* whole From field(s), CRLF-ended; "" for none */
	int status;
	const char *domain;   /* res.domain */
	const char *why;      /* part of res.why, failures only */
} from_cases[] = {
	{ "From: joe@example.com\r\n", 0, "example.com", NULL },
	{ "From: Joe Doe <joe@example.com>\r\n", 0, "example.com", NULL },
	{ "From: <joe@example.com>\r\n", 0, "example.com", NULL },
	{ "From: \"Doe, Joe\" <joe@example.com>\r\n", 0, "example.com", NULL },
	{ "From: \"Joe <joe@evil.example>\" <joe@example.com>\r\n", 0, "example.com", NULL },
	{ "From: \"Joe \\\"Q\\\" Doe\" <joe@example.com>\r\n", 0, "example.com", NULL },
	{ "From: joe@example.com (Joe <joe@evil.example>, x)\r\n", 0, "example.com", NULL },
	{ "From: (a (nested (comment)) here) Joe <joe@example.com>\r\n", 0, "example.com", NULL },
	{ "From: Joe (\\) not the end) <joe@example.com>\r\n", 0, "example.com", NULL },
	{ "From: Joe Q. Public <joe@example.com>\r\n", 0, "example.com", NULL },
	{ "From: Joe <joe@EXAMPLE.Com>\r\n", 0, "example.com", NULL },
	{ "From: =?UTF-8?Q?J=C3=B6rg?= <joerg@example.com>\r\n", 0, "example.com", NULL },
	{ "From: J\xc3\xb6rg M\xc3\xbcller <j\xc3\xb6rg@example.com>\r\n", 0, "example.com", NULL },
	{ "From: \"joe doe\"@example.com\r\n", 0, "example.com", NULL },
	{ "From: joe.q.public@example.com\r\n", 0, "example.com", NULL },
	{ "From: joe @ example . com\r\n", 0, "example.com", NULL },
	{ "From:\r\n Joe\r\n <joe@example.com>\r\n", 0, "example.com", NULL },
	{ "From: <@relay.example,@other.example:joe@example.com>\r\n", 0, "example.com", NULL },
	{ "From: Team: joe@example.com;\r\n", 0, "example.com", NULL },
	{ "From: Team: Joe <joe@example.com>; (the team)\r\n", 0, "example.com", NULL },
	{ "From: Team: , joe@example.com, ;\r\n", 0, "example.com", NULL },
	{ "From: , joe@example.com\r\n", 0, "example.com", NULL },
	{ "FROM: joe@example.com\r\n", 0, "example.com", NULL },
	{ "from : joe@example.com\r\n", 0, "example.com", NULL },
	{ "From: joe@example.org\r\n", -ENOENT, "example.org",
	  "unsigned: no DKIM key for example.org" },
	{ "From: joe@sub.example.com\r\n", -ENOENT, "sub.example.com", "no DKIM key" },
	{ "From: joe@[192.0.2.1]\r\n", -ENOENT, "[192.0.2.1]", "no DKIM key" },
	{ "From: joe@[IPv6:2001:db8::1]\r\n", -ENOENT, "[ipv6:2001:db8::1]", "no DKIM key" },
	{ "", -EINVAL, "", "no From field" },
	{ "From: joe@example.com\r\nFrom: ann@example.com\r\n", -EINVAL, "",
	  "2 From fields" },
	{ "From: joe@example.com, ann@example.com\r\n", -EINVAL, "example.com",
	  "holds 2 addresses" },
	{ "From: Team: joe@example.com, ann@example.com;\r\n", -EINVAL, "example.com",
	  "holds 2 addresses" },
	{ "From: undisclosed-recipients:;\r\n", -EINVAL, "", "holds 0 addresses" },
	{ "From:\r\n", -EINVAL, "", "holds 0 addresses" },
	{ "From: (only a comment)\r\n", -EINVAL, "", "holds 0 addresses" },
	{ "From: Joe\r\n", -EINVAL, "", "cannot parse" },
	{ "From: <joe@example.com\r\n", -EINVAL, "", "cannot parse" },
	{ "From: <>\r\n", -EINVAL, "", "cannot parse" },
	{ "From: joe@example.com <ann@example.com>\r\n", -EINVAL, "", "cannot parse" },
	{ "From: joe@evil.example@example.com\r\n", -EINVAL, "", "cannot parse" },
	{ "From: joe@@example.com\r\n", -EINVAL, "", "cannot parse" },
	{ "From: joe@example..com\r\n", -EINVAL, "", "cannot parse" },
	{ "From: joe@example.com.\r\n", -EINVAL, "", "cannot parse" },
	{ "From: joe.@example.com\r\n", -EINVAL, "", "cannot parse" },
	{ "From: .joe@example.com\r\n", -EINVAL, "", "cannot parse" },
	{ "From: \"unterminated <joe@example.com>\r\n", -EINVAL, "", "cannot parse" },
	{ "From: (unterminated joe@example.com\r\n", -EINVAL, "", "cannot parse" },
	{ "From: joe@[192.0.2.1\r\n", -EINVAL, "", "cannot parse" },
	{ "From: Team: Inner: joe@example.com;;\r\n", -EINVAL, "", "cannot parse" },
	{ "From: Team: joe@example.com\r\n", -EINVAL, "", "cannot parse" },
	{ "From: a@b.example (x) junk\r\n", -EINVAL, "", "cannot parse" },
};

START_TEST(test_sign_from)
{
	const struct from_case *c = &from_cases[_i];
	struct dkimsign_result res;
	struct buf m = BUF_INIT;
	const char *rest = strstr(SIMPLE_MSG, "To:");
	char d[300];

	buf_appends(&m, c->from);
	buf_appends(&m, rest);
	sign_str(m.data, DKIMSIGN_ALL, &res);
	ck_assert_msg(res.status == c->status, "%s -> %d (%s)", c->from,
	    res.status, res.why);
	if (c->domain[0] != '\0' || c->status == -EINVAL)
		ck_assert_str_eq(res.domain, c->domain);
	if (c->status == 0) {
		ck_assert_uint_eq(res.nsig, 2);
		ck_assert(sig_tag(res.sig[0].header, "d", d, sizeof d));
		ck_assert_str_eq(d, "example.com");
		assert_valid(&res, m.data, m.len);
	} else {
		ck_assert_uint_eq(res.nsig, 0);
		ck_assert_ptr_null(res.sig);
		ck_assert_msg(strstr(res.why, c->why) != NULL, "why: %s", res.why);
		ck_assert(strncmp(res.why, "unsigned: ", 10) == 0);
	}
	dkimsign_result_free(&res);
	buf_free(&m);
}
END_TEST

START_TEST(test_sign_from_bounded)
{
	struct dkimsign_result res;
	struct buf m = BUF_INIT;

	/* Comments nested 32 deep parse; 33 deep are refused. */
	for (int depth = 32; depth <= 33; depth++) {
		buf_reset(&m);
		buf_appends(&m, "From: ");
		for (int i = 0; i < depth; i++)
			buf_appendc(&m, '(');
		for (int i = 0; i < depth; i++)
			buf_appendc(&m, ')');
		buf_appends(&m, " joe@example.com\r\n\r\nbody\r\n");
		sign_str(m.data, DKIMSIGN_RSA, &res);
		if (depth == 32) {
			ck_assert_int_eq(res.status, 0);
		} else {
			ck_assert_int_eq(res.status, -EINVAL);
			ck_assert_ptr_nonnull(strstr(res.why, "nested too deep"));
		}
		dkimsign_result_free(&res);
	}
	/* A domain longer than any domain is refused, not cut. */
	buf_reset(&m);
	buf_appends(&m, "From: joe@");
	for (int i = 0; i < 300; i++)
		buf_appends(&m, "a.");
	buf_appends(&m, "example.com\r\n\r\nbody\r\n");
	sign_str(m.data, DKIMSIGN_ALL, &res);
	ck_assert_int_eq(res.status, -EINVAL);
	ck_assert_ptr_nonnull(strstr(res.why, "domain too long"));
	dkimsign_result_free(&res);
	/* 2,000 addresses in one From are all read, then refused. */
	buf_reset(&m);
	buf_appends(&m, "From: joe@example.com");
	for (int i = 0; i < 2000; i++)
		buf_appends(&m, ",\r\n \"x, y\" <x@example.com>");
	buf_appends(&m, "\r\n\r\nbody\r\n");
	sign_str(m.data, DKIMSIGN_ALL, &res);
	ck_assert_int_eq(res.status, -EINVAL);
	ck_assert_ptr_nonnull(strstr(res.why, "holds 2001 addresses"));
	dkimsign_result_free(&res);
	/* A From longer than any signed field may be is not parsed at all. */
	buf_reset(&m);
	buf_appends(&m, "From: joe@example.com");
	for (int i = 0; i < 3000; i++)
		buf_appends(&m, ",\r\n \"x, y\" <x@example.com>");
	buf_appends(&m, "\r\n\r\nbody\r\n");
	sign_str(m.data, DKIMSIGN_ALL, &res);
	ck_assert_int_eq(res.status, -EMSGSIZE);
	dkimsign_result_free(&res);
	buf_free(&m);
}
END_TEST

/* Where the header section ends, given the ways callers may say so. */
START_TEST(test_sign_head_len)
{
	static const char *const msgs[] = {
		SIMPLE_MSG,
		/* The body ends without a line end. */
		"From: joe@example.com\r\nSubject: x\r\n\r\nno line end",
		/* The body's first line is empty. */
		"From: joe@example.com\r\nSubject: x\r\n\r\n\r\nafter an empty line\r\n",
		/* An empty body, with and without the empty line. */
		"From: joe@example.com\r\nSubject: x\r\n\r\n",
		"From: joe@example.com\r\nSubject: x\r\n",
		/* 8-bit UTF-8 body. */
		"From: joe@example.com\r\nSubject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\r\n\r\n"
		"Gr\xc3\xbc\xc3\x9f""e aus K\xc3\xb6ln \xe2\x82\xac \xf0\x9f\x93\xa8\r\n",
	};

	for (size_t i = 0; i < NELEM(msgs); i++) {
		const char *msg = msgs[i], *e = strstr(msg, "\r\n\r\n");
		size_t len = strlen(msg), with = e != NULL ? (size_t)(e - msg) + 4 : len;
		size_t without = e != NULL ? (size_t)(e - msg) + 2 : len;
		struct dkimsign_result r1, r2;
		char bh1[64], bh2[64], h1[256], h2[256];

		dkimsign_sign(ds, msg, with, len, DKIMSIGN_ALL, &r1);
		dkimsign_sign(ds, msg, without, len, DKIMSIGN_ALL, &r2);
		ck_assert_msg(r1.status == 0 && r2.status == 0, "msg %zu: %s %s", i,
		    r1.why, r2.why);
		ck_assert(sig_tag(r1.sig[0].header, "bh", bh1, sizeof bh1));
		ck_assert(sig_tag(r2.sig[0].header, "bh", bh2, sizeof bh2));
		ck_assert_str_eq(bh1, bh2);
		ck_assert(sig_tag(r1.sig[0].header, "h", h1, sizeof h1));
		ck_assert(sig_tag(r2.sig[0].header, "h", h2, sizeof h2));
		ck_assert_str_eq(h1, h2);
		if (len > with)   /* a body byte to change exists */
			assert_valid(&r1, msg, len);
		dkimsign_result_free(&r1);
		dkimsign_result_free(&r2);
	}

	{
		struct dkimsign_result r;

		dkimsign_sign(ds, SIMPLE_MSG, sizeof SIMPLE_MSG, sizeof SIMPLE_MSG - 1,
		    DKIMSIGN_ALL, &r);
		ck_assert_int_eq(r.status, -EINVAL);
		dkimsign_result_free(&r);
		/* A message that starts with the empty line has no From. */
		dkimsign_sign(ds, "\r\nFrom: joe@example.com\r\n", 2, 25,
		    DKIMSIGN_ALL, &r);
		ck_assert_int_eq(r.status, -EINVAL);
		ck_assert_ptr_nonnull(strstr(r.why, "no From field"));
		dkimsign_result_free(&r);
		dkimsign_sign(ds, "", 0, 0, DKIMSIGN_ALL, &r);
		ck_assert_int_eq(r.status, -EINVAL);
		dkimsign_result_free(&r);
	}
}
END_TEST

/* Messages signing must survive: bare LF, huge or odd header sections. */
START_TEST(test_sign_odd_messages)
{
	struct dkimsign_result res;
	struct buf m = BUF_INIT, crlf = BUF_INIT;
	size_t n;

	/* LF only: signed as the CRLF form SMTP will carry. */
	buf_appends(&m, "From: joe@example.com\nSubject: lf\n only\n\nline 1\nline 2\n");
	dkimsign_sign(ds, m.data, 41, m.len, DKIMSIGN_ALL, &res);
	ck_assert_msg(res.status == 0, "%s", res.why);
	for (size_t i = 0; i < m.len; i++) {
		if (m.data[i] == '\n')
			buf_appendc(&crlf, '\r');
		buf_appendc(&crlf, m.data[i]);
	}
	assert_valid(&res, crlf.data, crlf.len);
	dkimsign_result_free(&res);

	/*
	 * A huge header section: a 63,000-byte Subject (signed), a 1 MB
	 * field that is not signed and 20,000 other fields.
	 */
	buf_reset(&m);
	buf_appends(&m, "From: joe@example.com\r\nSubject: ");
	for (n = 0; n < 63000 / 63; n++)
		buf_appends(&m, "012345678901234567890123456789012345678901234567890123456789 z ");
	buf_appends(&m, "\r\nX-Big: ");
	for (n = 0; n < (1u << 20) / 64; n++)
		buf_appends(&m, "0123456789012345678901234567890123456789012345678901234567890123");
	buf_appends(&m, "\r\n");
	for (n = 0; n < 20000; n++)
		buf_appendf(&m, "X-Field-%zu: %zu\r\n", n, n);
	n = m.len + 2;
	buf_appends(&m, "\r\nbody\r\n");
	dkimsign_sign(ds, m.data, n, m.len, DKIMSIGN_ALL, &res);
	ck_assert_msg(res.status == 0, "%s", res.why);
	ck_assert_uint_eq(res.nsig, 2);
	assert_valid(&res, m.data, m.len);
	dkimsign_result_free(&res);

	/* A signed field over 64,000 bytes would be signed cut short: refused. */
	buf_reset(&m);
	buf_appends(&m, "From: joe@example.com\r\nsubject: ");
	for (n = 0; n < 64000 / 64; n++)
		buf_appends(&m, "0123456789012345678901234567890123456789012345678901234567890123");
	n = m.len + 4;
	buf_appends(&m, "\r\n\r\nbody\r\n");
	dkimsign_sign(ds, m.data, n, m.len, DKIMSIGN_ALL, &res);
	ck_assert_int_eq(res.status, -EMSGSIZE);
	ck_assert_ptr_nonnull(strstr(res.why, "the subject field is 64009 bytes"));
	ck_assert_uint_eq(res.nsig, 0);
	dkimsign_result_free(&res);

	/* Lines that are not fields, a continuation with nothing before it. */
	buf_reset(&m);
	buf_appends(&m, " leading continuation\r\nFrom: joe@example.com\r\n"
	    "no colon here\r\nSubject: x\r\n\r\nbody\r\n");
	sign_str(m.data, DKIMSIGN_ALL, &res);
	ck_assert_msg(res.status == 0, "%s", res.why);
	dkimsign_result_free(&res);

	/* A field name libopendkim refuses: an error, no signature. */
	sign_str("From: joe@example.com\r\nX-\x01ctl: y\r\n\r\nbody\r\n",
	    DKIMSIGN_ALL, &res);
	ck_assert_int_eq(res.status, -EBADMSG);
	ck_assert_uint_eq(res.nsig, 0);
	ck_assert_ptr_null(res.sig);
	ck_assert_ptr_nonnull(strstr(res.why, "Syntax error"));
	ck_assert_str_eq(res.domain, "example.com");
	dkimsign_result_free(&res);

	/* NUL bytes and a header section with no line end at all. */
	{
		static const char nul[] =
		    "From: joe@example.com\r\nX-Nul: a\0b\r\n\r\nbo\0dy\r\n";

		dkimsign_sign(ds, nul, 37, sizeof nul - 1, DKIMSIGN_ALL, &res);
	}
	ck_assert_msg(res.status == 0, "%s", res.why);
	dkimsign_result_free(&res);
	dkimsign_sign(ds, "From: joe@example.com", 21, 21, DKIMSIGN_ALL, &res);
	ck_assert_msg(res.status == 0, "%s", res.why);
	dkimsign_result_free(&res);

	buf_free(&m);
	buf_free(&crlf);
}
END_TEST

/* --- threads -------------------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 12

struct worker {
	const char *msg;
	size_t len, head_len;
	struct dkimsign_result res[PER_THREAD];
};

static void *
sign_thread(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < PER_THREAD; i++)
		dkimsign_sign(ds, w->msg, w->head_len, w->len, DKIMSIGN_ALL,
		    &w->res[i]);
	return NULL;
}

START_TEST(test_sign_threads)
{
	static struct worker w[THREADS];
	pthread_t tid[THREADS];
	size_t page = (size_t)sysconf(_SC_PAGESIZE), len = sizeof SIMPLE_MSG - 1;
	char *ro;

	/* The message is shared and read-only: a write would fault. */
	ro = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);
	ck_assert(ro != MAP_FAILED);
	memcpy(ro, SIMPLE_MSG, len);
	ck_assert_int_eq(mprotect(ro, page, PROT_READ), 0);
	for (int t = 0; t < THREADS; t++) {
		w[t].msg = ro;
		w[t].len = len;
		w[t].head_len = (size_t)(strstr(ro, "\r\n\r\n") - ro) + 4;
		ck_assert_int_eq(pthread_create(&tid[t], NULL, sign_thread, &w[t]), 0);
	}
	for (int t = 0; t < THREADS; t++)
		ck_assert_int_eq(pthread_join(tid[t], NULL), 0);
	for (int t = 0; t < THREADS; t++) {
		for (int i = 0; i < PER_THREAD; i++) {
			struct dkimsign_result *r = &w[t].res[i];

			ck_assert_msg(r->status == 0, "%s", r->why);
			ck_assert_uint_eq(r->nsig, 2);
			assert_valid(r, SIMPLE_MSG, len);
			dkimsign_result_free(r);
		}
	}
	munmap(ro, page);
}
END_TEST

Suite *
dkimsign_suite(void)
{
	Suite *s = suite_create("dkimsign");
	TCase *keys = tcase_create("keys"), *sign = tcase_create("sign");

	tcase_set_timeout(keys, 60);
	tcase_add_test(keys, test_keygen_rsa);
	tcase_add_test(keys, test_keygen_ed25519);
	tcase_add_test(keys, test_keygen_no_overwrite);
	tcase_add_loop_test(keys, test_keygen_bad_names, 0, (int)NELEM(bad_names));
	tcase_add_test(keys, test_names_valid);
	tcase_add_test(keys, test_load_errors);
	suite_add_tcase(s, keys);

	tcase_set_timeout(sign, 120);
	tcase_add_unchecked_fixture(sign, sign_setup, sign_teardown);
	tcase_add_test(sign, test_add_domain_errors);
	tcase_add_test(sign, test_sign_algos);
	tcase_add_test(sign, test_sign_tags);
	tcase_add_test(sign, test_sign_oversign);
	tcase_add_test(sign, test_sign_folding);
	tcase_add_loop_test(sign, test_sign_from, 0, (int)NELEM(from_cases));
	tcase_add_test(sign, test_sign_from_bounded);
	tcase_add_test(sign, test_sign_head_len);
	tcase_add_test(sign, test_sign_odd_messages);
	tcase_add_test(sign, test_sign_threads);
	suite_add_tcase(s, sign);
	return s;
}
