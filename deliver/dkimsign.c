/*
 * dkimsign - DKIM signing with libopendkim.  See dkimsign.h.
 *
 * Layout: the header section (core/rfc5322 scans its fields, for the
 * From lookup and for the feed to libopendkim, and parses From), the key
 * set, then signing.
 */
#include "deliver/dkimsign.h"

#include <errno.h>
#include <limits.h>
#include <openssl/core_dispatch.h>
#include <openssl/crypto.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <opendkim/dkim.h>

#include "core/log.h"
#include "core/rfc5322.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "deliver/dkimkey.h"

#if defined(__SANITIZE_ADDRESS__)
#define DKIMSIGN_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DKIMSIGN_LSAN 1
#endif
#endif
#ifdef DKIMSIGN_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define SIG_PREFIX "DKIM-Signature: "
/*
 * libopendkim canonicalises a header field into a buffer of at most
 * 64 KiB and silently signs a truncated copy of a longer one; stay below.
 */
#define SIGNED_FIELD_MAX 64000

/*
 * Header fields signed when present (RFC 6376 5.4.1 lists these among
 * those that should be).  libopendkim adds From if missing from the list.
 */
static const char *const sign_headers[] = {
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"MIME-Version", "Content-Type", "List-Unsubscribe",
	"List-Unsubscribe-Post", NULL,
};

/* Listed in h= once more than present (RFC 6376 8.15). */
static const char *const oversign_headers[] = { "From", NULL };

/* The id libopendkim keeps by pointer for its own logs. */
static const unsigned char sign_id[] = "kurier";

struct dkimsign_key {
	char selector[DKIMKEY_SELECTOR_MAX + 1];
	unsigned algo;       /* DKIMSIGN_RSA or DKIMSIGN_ED25519 */
	dkim_alg_t alg;      /* DKIM_SIGN_RSASHA256 or DKIM_SIGN_ED25519SHA256 */
	int bits;
	char *text;          /* the key as dkim_sign() takes it, NUL-terminated */
	size_t textlen;
};

struct dkimsign_domain {
	char name[DKIMKEY_DOMAIN_MAX + 1];  /* lower-case */
	struct dkimsign_key *key;
	size_t nkey;
};

struct dkimsign {
	DKIM_LIB *lib;
	char *data_dir;
	struct dkimsign_domain *dom;  /* sorted by name */
	size_t ndom;
};

/* --- header section ---------------------------------------------------------- */

/* The message split into its header section and its body. */
struct msgview {
	const char *msg;
	size_t hend;         /* header fields are in msg[0..hend) */
	const char *body;
	size_t body_len;
};

/*
 * Split msg: the header section is read up to head_len; the body starts
 * after the empty line, which may lie inside head_len or just after it.
 */
static void
msg_split(struct msgview *mv, const char *msg, size_t head_len, size_t len)
{
	struct rfc5322_scan s;
	const char *f, *b;
	size_t fl;

	rfc5322_scan_init(&s, msg, head_len);
	while (rfc5322_next(&s, &f, &fl))
		;
	mv->msg = msg;
	if (s.body != NULL) {
		b = s.body;
		mv->hend = (size_t)(b - msg);
	} else {
		b = msg + head_len;
		mv->hend = head_len;
		if (len - head_len >= 2 && b[0] == '\r' && b[1] == '\n')
			b += 2;
		else if (len - head_len >= 1 && b[0] == '\n')
			b += 1;
	}
	mv->body = b;
	mv->body_len = len - (size_t)(b - msg);
}

/* Whether field f is one of sign_headers. */
static bool
field_signed(const char *f, size_t fl)
{
	for (size_t i = 0; sign_headers[i] != NULL; i++)
		if (rfc5322_field_is(f, fl, sign_headers[i]))
			return true;
	return false;
}

/* Field f's name, for messages. */
static int
field_name_len(const char *f, size_t fl)
{
	const char *colon = rfc5322_field_colon(f, fl);
	size_t n = colon != NULL ? (size_t)(colon - f) : fl;

	return n > 40 ? 40 : (int)n;
}

/*
 * Check the header section and find the signing domain: the one From
 * field's one mailbox.  0 with domain set, or -EINVAL / -EMSGSIZE with
 * why.
 */
static int
header_check(const struct msgview *mv, char *domain, size_t dsize, char *why,
    size_t whysz)
{
	struct rfc5322_scan s;
	const char *f, *from = NULL;
	size_t fl, froml = 0, nfrom = 0;
	struct rfc5322_from fp;

	domain[0] = '\0';
	rfc5322_scan_init(&s, mv->msg, mv->hend);
	while (rfc5322_next(&s, &f, &fl)) {
		if (rfc5322_field_is(f, fl, "From") && nfrom++ == 0) {
			from = f;
			froml = fl;
		}
		if (fl > SIGNED_FIELD_MAX && field_signed(f, fl)) {
			snprintf(why, whysz,
			    "unsigned: the %.*s field is %zu bytes, more than kurier signs (%d)",
			    field_name_len(f, fl), f, fl, SIGNED_FIELD_MAX);
			return -EMSGSIZE;
		}
	}
	if (nfrom == 0) {
		snprintf(why, whysz, "unsigned: the message has no From field");
		return -EINVAL;
	}
	if (nfrom > 1) {
		snprintf(why, whysz, "unsigned: the message has %zu From fields",
		    nfrom);
		return -EINVAL;
	}
	if (!rfc5322_from_parse(from, froml, &fp)) {
		snprintf(why, whysz, "unsigned: cannot parse From: %s", fp.why);
		return -EINVAL;
	}
	if (fp.nmbox > 0)
		str_copy(domain, fp.domain, dsize);
	if (fp.nmbox != 1) {
		snprintf(why, whysz, "unsigned: From holds %zu addresses, not one",
		    fp.nmbox);
		return -EINVAL;
	}
	return 0;
}

/* --- keys ------------------------------------------------------------------------ */

static int
domain_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dkimsign_domain *)a)->name,
	    ((const struct dkimsign_domain *)b)->name);
}

static const struct dkimsign_domain *
domain_find(const struct dkimsign *ds, const char *domain)
{
	struct dkimsign_domain key;

	if (ds->ndom == 0 || str_copy(key.name, domain, sizeof key.name) < 0)
		return NULL;
	str_lower(key.name);
	return bsearch(&key, ds->dom, ds->ndom, sizeof *ds->dom, domain_cmp);
}

static void
key_wipe(struct dkimsign_key *k)
{
	if (k->text != NULL) {
		OPENSSL_cleanse(k->text, k->textlen);
		free(k->text);
		k->text = NULL;
	}
}

/*
 * The key as dkim_sign() will get it, in the form that measured cheapest
 * to decode (see dkimsign.h): PKCS#1 PEM for RSA, PKCS#8 PEM for Ed25519.
 */
static int
key_text(struct dkimsign_key *k, EVP_PKEY *pk)
{
	OSSL_ENCODER_CTX *ctx;
	unsigned char *data = NULL;
	size_t len = 0;
	int ok;

	ctx = OSSL_ENCODER_CTX_new_for_pkey(pk, OSSL_KEYMGMT_SELECT_KEYPAIR,
	    "PEM", k->algo == DKIMSIGN_RSA ? "type-specific" : "PrivateKeyInfo",
	    NULL);
	if (ctx == NULL)
		return -EIO;
	ok = OSSL_ENCODER_to_data(ctx, &data, &len);
	OSSL_ENCODER_CTX_free(ctx);
	if (!ok || data == NULL)
		return -EIO;
	k->text = xmemdup0(data, len);
	k->textlen = len;
	OPENSSL_clear_free(data, len);
	return 0;
}

static int sign_one(const struct dkimsign *ds, const struct dkimsign_key *k,
    const char *domain, const struct msgview *mv, char **hdr, char *why,
    size_t whysz);

/* Load, check and convert one key of domain; err set on failure. */
static int
key_load(struct dkimsign *ds, struct dkimsign_key *k, const char *domain,
    const char *selector, char *err, size_t errsz)
{
	char path[PATH_MAX], why[256], test[2 * DKIMKEY_DOMAIN_MAX + 64], *hdr;
	struct msgview mv;
	EVP_PKEY *pk;
	int r, n;

	memset(k, 0, sizeof *k);
	if ((r = dkimkey_path(path, sizeof path, ds->data_dir, domain, selector,
	    err, errsz)) < 0)
		return r;
	if ((r = dkimkey_load(&pk, ds->data_dir, domain, selector, true, err,
	    errsz)) < 0)
		return r;
	str_copy(k->selector, selector, sizeof k->selector);
	str_lower(k->selector);
	k->bits = EVP_PKEY_get_bits(pk);
	if (EVP_PKEY_is_a(pk, "ED25519")) {
		k->algo = DKIMSIGN_ED25519;
		k->alg = DKIM_SIGN_ED25519SHA256;
	} else {
		k->algo = DKIMSIGN_RSA;
		k->alg = DKIM_SIGN_RSASHA256;
	}
	r = key_text(k, pk);
	EVP_PKEY_free(pk);
	if (r < 0)
		return str_err(err, errsz, r, "%s: cannot re-encode the key",
		    path);

	/* One signature now, so a key libopendkim cannot use stops start-up. */
	n = snprintf(test, sizeof test, "From: <postmaster@%s>\r\n\r\n", domain);
	msg_split(&mv, test, (size_t)n, (size_t)n);
	r = sign_one(ds, k, domain, &mv, &hdr, why, sizeof why);
	if (r < 0) {
		key_wipe(k);
		return str_err(err, errsz, r, "%s: %s", path, why);
	}
	free(hdr);
	if (k->algo == DKIMSIGN_RSA && k->bits < DKIMKEY_RSA_BITS)
		log_warn("dkim", "key_weak",
		    "domain=%s selector=%s bits=%d path=%s hint=\"make a %d-bit key: kurierctl dkim keygen %s --selector NEW, publish it, then switch\"",
		    domain, k->selector, k->bits, path, DKIMKEY_RSA_BITS, domain);
	log_info("dkim", "key_loaded", "domain=%s selector=%s algo=%s bits=%d path=%s",
	    domain, k->selector, k->algo == DKIMSIGN_RSA ? "rsa" : "ed25519",
	    k->bits, path);
	/*
	 * libopendkim up to 2.11.0~beta2 (Debian 12) never frees an Ed25519
	 * signing handle's key: 544 bytes per signed message (fixed upstream
	 * in OpenDKIM pull request #321).  Say so where the operator looks.
	 */
	if (k->algo == DKIMSIGN_ED25519)
		log_warn("dkim", "ed25519_leak",
		    "domain=%s selector=%s effect=\"this libopendkim keeps about 544 bytes per Ed25519 signature until kurierd restarts\" hint=\"restart kurierd now and then at high volume, or sign with rsa only (drop %s from dkim_selector) until libopendkim is fixed\"",
		    domain, k->selector, k->selector);
	return 0;
}

/* lib_open - dkimsign_open without clearing OpenSSL's error queue. */
static int
lib_open(struct dkimsign **out, const char *data_dir, char *err, size_t errsz)
{
	struct dkimsign *ds;
	unsigned flags = DKIM_LIBFLAGS_FIXCRLF;
	DKIM_LIB *lib;

	*out = NULL;
	if (data_dir == NULL || *data_dir == '\0')
		return str_err(err, errsz, -EINVAL, "no data_dir");
	if ((lib = dkim_init(NULL, NULL)) == NULL)
		return str_err(err, errsz, -ENOMEM, "dkim_init failed");
	if (!dkim_libfeature(lib, DKIM_FEATURE_SHA256) ||
	    !dkim_libfeature(lib, DKIM_FEATURE_ED25519) ||
	    !dkim_libfeature(lib, DKIM_FEATURE_OVERSIGN)) {
		dkim_close(lib);
		return str_err(err, errsz, -ENOTSUP,
		    "libopendkim lacks rsa-sha256, ed25519-sha256 or over-signing");
	}
	/*
	 * Options are the library handle's: set once here, read by every
	 * signing handle.  FIXCRLF: a bare LF is canonicalised as CRLF.
	 */
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS,
	    (void *)(uintptr_t)sign_headers, sizeof(char **)) != DKIM_STAT_OK ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS,
	    (void *)(uintptr_t)oversign_headers, sizeof(char **)) != DKIM_STAT_OK ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
	    sizeof flags) != DKIM_STAT_OK) {
		dkim_close(lib);
		return str_err(err, errsz, -EIO, "cannot set libopendkim options");
	}
	ds = xcalloc(1, sizeof *ds);
	ds->lib = lib;
	ds->data_dir = xstrdup(data_dir);
	*out = ds;
	return 0;
}

int
dkimsign_open(struct dkimsign **out, const char *data_dir, char *err,
    size_t errsz)
{
	int r = lib_open(out, data_dir, err, errsz);

	ERR_clear_error();
	return r;
}

/* add_domain - dkimsign_add_domain without clearing OpenSSL's error queue. */
static int
add_domain(struct dkimsign *ds, const char *domain,
    const char *const *selectors, size_t nsel, char *err, size_t errsz)
{
	struct dkimsign_domain d;
	int r;

	if (!dkimkey_domain_valid(domain))
		return str_err(err, errsz, -EINVAL,
		    "\"%s\" is not a domain name", domain != NULL ? domain : "");
	if (nsel == 0)
		return str_err(err, errsz, -EINVAL,
		    "domain %s: no DKIM selector", domain);
	if (domain_find(ds, domain) != NULL)
		return str_err(err, errsz, -EEXIST,
		    "domain %s: keys loaded already", domain);
	memset(&d, 0, sizeof d);
	str_copy(d.name, domain, sizeof d.name);
	str_lower(d.name);
	for (size_t i = 0; i < nsel; i++) {
		if (!dkimkey_selector_valid(selectors[i])) {
			r = str_err(err, errsz, -EINVAL,
			    "domain %s: \"%s\" is not a DKIM selector", domain,
			    selectors[i] != NULL ? selectors[i] : "");
			goto fail;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcasecmp(selectors[i], selectors[j]) == 0) {
				r = str_err(err, errsz, -EINVAL,
				    "domain %s: selector %s given twice", domain,
				    selectors[i]);
				goto fail;
			}
		}
	}
	d.key = xcalloc(nsel, sizeof *d.key);
	for (; d.nkey < nsel; d.nkey++) {
		if ((r = key_load(ds, &d.key[d.nkey], d.name, selectors[d.nkey],
		    err, errsz)) < 0)
			goto fail;
	}
	ds->dom = xreallocarray(ds->dom, ds->ndom + 1, sizeof *ds->dom);
	ds->dom[ds->ndom++] = d;
	qsort(ds->dom, ds->ndom, sizeof *ds->dom, domain_cmp);
	return 0;

fail:
	for (size_t i = 0; i < d.nkey; i++)
		key_wipe(&d.key[i]);
	free(d.key);
	return r;
}

int
dkimsign_add_domain(struct dkimsign *ds, const char *domain,
    const char *const *selectors, size_t nsel, char *err, size_t errsz)
{
	int r = add_domain(ds, domain, selectors, nsel, err, errsz);

	ERR_clear_error();
	return r;
}

void
dkimsign_close(struct dkimsign *ds)
{
	if (ds == NULL)
		return;
	for (size_t i = 0; i < ds->ndom; i++) {
		for (size_t j = 0; j < ds->dom[i].nkey; j++)
			key_wipe(&ds->dom[i].key[j]);
		free(ds->dom[i].key);
	}
	free(ds->dom);
	free(ds->data_dir);
	dkim_close(ds->lib);
	free(ds);
}

bool
dkimsign_has_domain(const struct dkimsign *ds, const char *domain)
{
	return domain != NULL && domain_find(ds, domain) != NULL;
}

/* --- signing ---------------------------------------------------------------------- */

/* DKIM_STAT_* -> negative errno (dkimsign.h lists what callers see). */
static int
stat_errno(DKIM_STAT st)
{
	switch (st) {
	case DKIM_STAT_OK:
		return 0;
	case DKIM_STAT_NORESOURCE:
		return -ENOMEM;
	case DKIM_STAT_SYNTAX:
		return -EBADMSG;
	case DKIM_STAT_NOTIMPLEMENT:
		return -ENOTSUP;
	default:
		return -EIO;
	}
}

/* why = what failed, libopendkim's words for st, and its detail. */
static int
sign_fail(DKIM *d, DKIM_STAT st, const char *step, const char *domain,
    const struct dkimsign_key *k, char *why, size_t whysz)
{
	const char *detail = d != NULL ? dkim_geterror(d) : NULL;

	snprintf(why, whysz, "DKIM %s for %s (selector %s) failed: %s%s%s", step,
	    domain, k->selector, dkim_getresultstr(st),
	    detail != NULL && *detail != '\0' ? ": " : "",
	    detail != NULL ? detail : "");
	if (d != NULL)
		dkim_free(d);
	ERR_clear_error();
	return stat_errno(st) < 0 ? stat_errno(st) : -EIO;
}

/*
 * One signature of mv with key k.  libopendkim's calls take non-const
 * buffers but only read them.  *hdr gets "DKIM-Signature: ...\r\n".
 */
static int
sign_one(const struct dkimsign *ds, const struct dkimsign_key *k,
    const char *domain, const struct msgview *mv, char **hdr, char *why,
    size_t whysz)
{
	struct rfc5322_scan s;
	const char *f;
	size_t fl, hl;
	unsigned char *h;
	DKIM_STAT st;
	DKIM *d;
	char *out;

	*hdr = NULL;
	d = dkim_sign(ds->lib, sign_id, NULL, (dkim_sigkey_t)k->text,
	    (const unsigned char *)k->selector, (const unsigned char *)domain,
	    DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, k->alg, -1, &st);
	if (d == NULL)
		return sign_fail(NULL, st, "set-up", domain, k, why, whysz);
	rfc5322_scan_init(&s, mv->msg, mv->hend);
	while (rfc5322_next(&s, &f, &fl)) {
		/* Not a field (no colon): not signed, not passed on. */
		if (rfc5322_field_colon(f, fl) == NULL)
			continue;
		st = dkim_header(d, (unsigned char *)(uintptr_t)f, fl);
		if (st != DKIM_STAT_OK)
			return sign_fail(d, st, "header", domain, k, why, whysz);
	}
	if ((st = dkim_eoh(d)) != DKIM_STAT_OK)
		return sign_fail(d, st, "end of header", domain, k, why, whysz);
	if (mv->body_len > 0 && (st = dkim_body(d,
	    (unsigned char *)(uintptr_t)mv->body, mv->body_len)) != DKIM_STAT_OK)
		return sign_fail(d, st, "body", domain, k, why, whysz);
	/*
	 * dkim_eom() decodes the key.  libopendkim 2.11.0~beta2 never frees
	 * an Ed25519 key so decoded (see dkimsign.h); under LeakSanitizer
	 * that known leak is declared, for this call only, so that any other
	 * leak still fails the sanitizer builds.
	 */
#ifdef DKIMSIGN_LSAN
	if (k->alg == DKIM_SIGN_ED25519SHA256)
		__lsan_disable();
#endif
	st = dkim_eom(d, NULL);
#ifdef DKIMSIGN_LSAN
	if (k->alg == DKIM_SIGN_ED25519SHA256)
		__lsan_enable();
#endif
	if (st != DKIM_STAT_OK)
		return sign_fail(d, st, "signature", domain, k, why, whysz);
	if ((st = dkim_getsighdr_d(d, sizeof SIG_PREFIX - 1, &h, &hl)) !=
	    DKIM_STAT_OK)
		return sign_fail(d, st, "signature header", domain, k, why, whysz);
	out = xmalloc(sizeof SIG_PREFIX - 1 + hl + 3);
	memcpy(out, SIG_PREFIX, sizeof SIG_PREFIX - 1);
	memcpy(out + sizeof SIG_PREFIX - 1, h, hl);
	memcpy(out + sizeof SIG_PREFIX - 1 + hl, "\r\n", 3);
	dkim_free(d);
	*hdr = out;
	return 0;
}

void
dkimsign_sign(const struct dkimsign *ds, const char *msg, size_t head_len,
    size_t len, unsigned algos, struct dkimsign_result *res)
{
	const struct dkimsign_domain *d;
	struct msgview mv;
	size_t n = 0;
	int r;

	memset(res, 0, sizeof *res);
	if (head_len > len) {
		res->status = -EINVAL;
		snprintf(res->why, sizeof res->why,
		    "unsigned: header length %zu beyond the message's %zu bytes",
		    head_len, len);
		return;
	}
	msg_split(&mv, msg, head_len, len);
	if ((r = header_check(&mv, res->domain, sizeof res->domain, res->why,
	    sizeof res->why)) < 0) {
		res->status = r;
		return;
	}
	if ((d = domain_find(ds, res->domain)) == NULL) {
		res->status = -ENOENT;
		snprintf(res->why, sizeof res->why,
		    "unsigned: no DKIM key for %.220s", res->domain);
		return;
	}
	for (size_t i = 0; i < d->nkey; i++)
		n += (d->key[i].algo & algos) != 0;
	if (n == 0) {
		res->status = -ENOENT;
		snprintf(res->why, sizeof res->why,
		    "unsigned: no DKIM key for %.180s of an algorithm the destination takes",
		    res->domain);
		return;
	}
	res->sig = xcalloc(n, sizeof *res->sig);
	for (size_t i = 0; i < d->nkey; i++) {
		const struct dkimsign_key *k = &d->key[i];

		if ((k->algo & algos) == 0)
			continue;
		r = sign_one(ds, k, d->name, &mv, &res->sig[res->nsig].header,
		    res->why, sizeof res->why);
		if (r < 0) {
			char why[sizeof res->why], dom[sizeof res->domain];

			memcpy(why, res->why, sizeof why);
			memcpy(dom, res->domain, sizeof dom);
			dkimsign_result_free(res);
			memcpy(res->why, why, sizeof why);
			memcpy(res->domain, dom, sizeof dom);
			res->status = r;
			return;
		}
		res->sig[res->nsig++].algo = k->algo;
	}
}

void
dkimsign_result_free(struct dkimsign_result *res)
{
	for (size_t i = 0; i < res->nsig; i++)
		free(res->sig[i].header);
	free(res->sig);
	memset(res, 0, sizeof *res);
}
