/*
 * dkimkey - DKIM key files and their DNS records.  See dkimkey.h.
 */
#include "deliver/dkimkey.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/str.h"
#include "core/tlsctx.h"
#include "core/xmalloc.h"

#define TXT_STRING_MAX 255   /* RFC 1035 3.3.14: one character-string */

bool
dkimkey_domain_valid(const char *domain)
{
	return domain != NULL &&
	    strnlen(domain, DKIMKEY_DOMAIN_MAX + 1) <= DKIMKEY_DOMAIN_MAX &&
	    str_is_hostname(domain);
}

bool
dkimkey_selector_valid(const char *selector)
{
	return selector != NULL &&
	    strnlen(selector, DKIMKEY_SELECTOR_MAX + 1) <= DKIMKEY_SELECTOR_MAX &&
	    str_is_hostname(selector);
}

/* Check both names and copy them lower-cased into dom and sel. */
static int
names(char dom[DKIMKEY_DOMAIN_MAX + 1], char sel[DKIMKEY_SELECTOR_MAX + 1],
    const char *domain, const char *selector, char *err, size_t errsz)
{
	if (!dkimkey_domain_valid(domain))
		return str_err(err, errsz, -EINVAL,
		    "\"%s\" is not a domain name (letters, digits, '-' and '.', at most %d characters)",
		    domain != NULL ? domain : "", DKIMKEY_DOMAIN_MAX);
	if (!dkimkey_selector_valid(selector))
		return str_err(err, errsz, -EINVAL,
		    "\"%s\" is not a DKIM selector (letters, digits, '-' and '.', at most %d characters)",
		    selector != NULL ? selector : "", DKIMKEY_SELECTOR_MAX);
	str_copy(dom, domain, DKIMKEY_DOMAIN_MAX + 1);
	str_copy(sel, selector, DKIMKEY_SELECTOR_MAX + 1);
	str_lower(dom);
	str_lower(sel);
	return 0;
}

int
dkimkey_path(char *dst, size_t size, const char *data_dir, const char *domain,
    const char *selector, char *err, size_t errsz)
{
	char dom[DKIMKEY_DOMAIN_MAX + 1], sel[DKIMKEY_SELECTOR_MAX + 1];
	int r, n;

	if (size > 0)
		dst[0] = '\0';
	if ((r = names(dom, sel, domain, selector, err, errsz)) < 0)
		return r;
	n = snprintf(dst, size, "%s/dkim/%s.%s.key", data_dir, dom, sel);
	if (n < 0 || (size_t)n >= size) {
		if (size > 0)
			dst[0] = '\0';
		return str_err(err, errsz, -ENAMETOOLONG,
		    "%s/dkim/%s.%s.key: path too long", data_dir, dom, sel);
	}
	return 0;
}

/* Encrypted keys would make OpenSSL prompt on the terminal: refuse them. */
static int
no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Whether pk is a key DKIM signs with; err says why not. */
static int
check_key(EVP_PKEY *pk, const char *path, char *err, size_t errsz)
{
	int bits;

	if (EVP_PKEY_is_a(pk, "ED25519"))
		return 0;
	if (!EVP_PKEY_is_a(pk, "RSA"))
		return str_err(err, errsz, -EINVAL,
		    "%s: a %s key: DKIM signs with RSA or Ed25519 (kurierctl dkim keygen makes one)",
		    path, EVP_PKEY_get0_type_name(pk) != NULL ?
		    EVP_PKEY_get0_type_name(pk) : "unknown");
	bits = EVP_PKEY_get_bits(pk);
	if (bits < DKIMKEY_RSA_MIN_BITS)
		return str_err(err, errsz, -EINVAL,
		    "%s: a %d-bit RSA key: DKIM needs at least %d bits (RFC 8301), %d recommended",
		    path, bits, DKIMKEY_RSA_MIN_BITS, DKIMKEY_RSA_BITS);
	return 0;
}

/*
 * load - dkimkey_load without clearing OpenSSL's error queue.  Signing
 * reads the key as any secret (core/file), group read allowed.
 */
static int
load(EVP_PKEY **out, const char *data_dir, const char *domain,
    const char *selector, bool check_mode, char *err, size_t errsz)
{
	struct file_secret text;
	char path[PATH_MAX];
	EVP_PKEY *pk = NULL;
	size_t n;
	BIO *bio;
	int r;

	*out = NULL;
	if ((r = dkimkey_path(path, sizeof path, data_dir, domain, selector,
	    err, errsz)) < 0)
		return r;
	r = file_read_secret(&text, path, DKIMKEY_FILE_MAX,
	    check_mode ? FILE_SECRET_GROUP_READ : FILE_SECRET_ANY_MODE, err,
	    errsz);
	if (r == -ENOENT && err != NULL && errsz > 0) {
		n = strlen(err);
		str_err(err + n, errsz - n, r,
		    " (run kurierctl dkim keygen %s --selector %s)", domain,
		    selector);
	}
	if (r < 0)
		return r;

	if ((bio = BIO_new_mem_buf(text.data, (int)text.len)) != NULL) {
		pk = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
		BIO_free(bio);
	}
	file_secret_free(&text);
	if (pk == NULL)
		return str_err(err, errsz, -EINVAL,
		    "%s: not an unencrypted PEM private key (%s)", path,
		    tlsctx_ossl_reason());
	if ((r = check_key(pk, path, err, errsz)) < 0) {
		EVP_PKEY_free(pk);
		return r;
	}
	*out = pk;
	return 0;
}

int
dkimkey_load(EVP_PKEY **out, const char *data_dir, const char *domain,
    const char *selector, bool check_mode, char *err, size_t errsz)
{
	int r = load(out, data_dir, domain, selector, check_mode, err, errsz);

	ERR_clear_error();
	return r;
}

/* Base64 of p[0..n) with no line breaks, appended to b. */
static void
append_base64(struct buf *b, const unsigned char *p, size_t n)
{
	size_t need = 4 * ((n + 2) / 3) + 1;
	char *dst = buf_reserve(b, need);
	int w = EVP_EncodeBlock((unsigned char *)dst, p, (int)n);

	buf_commit(b, (size_t)w);
}

/* txt_record - dkimkey_txt without clearing OpenSSL's error queue. */
static int
txt_record(char **txt, EVP_PKEY *pk, const char *domain, const char *selector)
{
	char dom[DKIMKEY_DOMAIN_MAX + 1], sel[DKIMKEY_SELECTOR_MAX + 1];
	struct buf val = BUF_INIT, out = BUF_INIT;
	unsigned char raw[32], *der = NULL;
	size_t rawlen = sizeof raw;
	int derlen;

	*txt = NULL;
	if (names(dom, sel, domain, selector, NULL, 0) < 0)
		return -EINVAL;
	if (EVP_PKEY_is_a(pk, "ED25519")) {
		if (EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) != 1 ||
		    rawlen != sizeof raw)
			return -EINVAL;
		buf_appends(&val, "v=DKIM1; k=ed25519; p=");
		append_base64(&val, raw, rawlen);
	} else if (EVP_PKEY_is_a(pk, "RSA")) {
		if ((derlen = i2d_PUBKEY(pk, &der)) <= 0)
			return -EINVAL;
		buf_appends(&val, "v=DKIM1; k=rsa; p=");
		append_base64(&val, der, (size_t)derlen);
		OPENSSL_free(der);
	} else {
		return -EINVAL;
	}

	buf_appendf(&out, "%s._domainkey.%s. IN TXT (", sel, dom);
	for (size_t off = 0; off < val.len; off += TXT_STRING_MAX) {
		size_t n = val.len - off < TXT_STRING_MAX ? val.len - off :
		    TXT_STRING_MAX;

		buf_appends(&out, " \"");
		buf_append(&out, val.data + off, n);
		buf_appendc(&out, '"');
	}
	buf_appends(&out, " )");
	buf_free(&val);
	*txt = buf_steal(&out, NULL);
	return 0;
}

int
dkimkey_txt(char **txt, EVP_PKEY *pk, const char *domain, const char *selector)
{
	int r = txt_record(txt, pk, domain, selector);

	ERR_clear_error();
	return r;
}

int
dkimkey_record(const char *data_dir, const char *domain, const char *selector,
    char **txt, char *err, size_t errsz)
{
	EVP_PKEY *pk;
	int r;

	*txt = NULL;
	if ((r = dkimkey_load(&pk, data_dir, domain, selector, false, err,
	    errsz)) < 0)
		return r;
	r = dkimkey_txt(txt, pk, domain, selector);
	EVP_PKEY_free(pk);
	if (r < 0)
		return str_err(err, errsz, r, "cannot make the TXT record of %s/%s",
		    domain, selector);
	return 0;
}

/* mkdir path 0700 unless it is a directory already. */
static int
ensure_dir(const char *path, char *err, size_t errsz)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return str_err(err, errsz, -errno, "%s: cannot create: %s",
		    path, strerror(errno));
	if (stat(path, &st) != 0)
		return str_err(err, errsz, -errno, "%s: %s", path,
		    strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return str_err(err, errsz, -ENOTDIR, "%s: not a directory",
		    path);
	return 0;
}

/* Write all of p[0..n) to fd. */
static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* fsync a directory so a new entry in it survives a crash; best effort. */
static void
sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* A new key of algo; NULL with err set on failure. */
static EVP_PKEY *
new_key(const char *algo, char *err, size_t errsz)
{
	EVP_PKEY *pk;

	if (strcmp(algo, "rsa") == 0)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)DKIMKEY_RSA_BITS);
	else
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pk == NULL)
		str_err(err, errsz, -EIO, "cannot generate an %s key: %s",
		    algo, tlsctx_ossl_reason());
	return pk;
}

/* generate - dkimkey_generate without clearing OpenSSL's error queue. */
static int
generate(const char *data_dir, const char *domain, const char *selector,
    const char *algo, char **txt, char *err, size_t errsz)
{
	char path[PATH_MAX], dir[PATH_MAX], *pem;
	EVP_PKEY *pk;
	BIO *bio;
	long pemlen;
	int fd, r, e;

	*txt = NULL;
	if (algo == NULL || (strcmp(algo, "rsa") != 0 &&
	    strcmp(algo, "ed25519") != 0))
		return str_err(err, errsz, -EINVAL,
		    "\"%s\" is not a key algorithm (rsa or ed25519)",
		    algo != NULL ? algo : "");
	if ((r = dkimkey_path(path, sizeof path, data_dir, domain, selector,
	    err, errsz)) < 0)
		return r;
	if (snprintf(dir, sizeof dir, "%s/dkim", data_dir) >= (int)sizeof dir)
		return str_err(err, errsz, -ENAMETOOLONG, "%s/dkim: path too long",
		    data_dir);
	if ((r = ensure_dir(data_dir, err, errsz)) < 0 ||
	    (r = ensure_dir(dir, err, errsz)) < 0)
		return r;
	/* Before the (slow) generation; O_EXCL below is what guarantees it. */
	if (access(path, F_OK) == 0)
		return str_err(err, errsz, -EEXIST,
		    "%s exists: refusing to overwrite a key (its TXT record: kurierctl dns)",
		    path);

	if ((pk = new_key(algo, err, errsz)) == NULL)
		return -EIO;
	if ((r = txt_record(txt, pk, domain, selector)) < 0) {
		EVP_PKEY_free(pk);
		return str_err(err, errsz, r, "cannot make the TXT record");
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) ||
	    (pemlen = BIO_get_mem_data(bio, &pem)) <= 0) {
		r = str_err(err, errsz, -EIO, "cannot encode the key: %s",
		    tlsctx_ossl_reason());
		goto fail;
	}

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		if (e == EEXIST)
			r = str_err(err, errsz, -EEXIST,
			    "%s exists: refusing to overwrite a key (its TXT record: kurierctl dns)",
			    path);
		else
			r = str_err(err, errsz, -e, "%s: cannot create: %s",
			    path, strerror(e));
		goto fail;
	}
	/* The umask may only have narrowed 0600; make it exactly that. */
	e = 0;
	if (fchmod(fd, 0600) != 0 ||
	    (e = -write_all(fd, pem, (size_t)pemlen)) != 0 || fsync(fd) != 0) {
		if (e == 0)
			e = errno;
		close(fd);
		unlink(path);
		r = str_err(err, errsz, -e, "%s: cannot write: %s", path,
		    strerror(e));
		goto fail;
	}
	if (close(fd) != 0) {
		e = errno;
		unlink(path);
		r = str_err(err, errsz, -e, "%s: cannot write: %s", path,
		    strerror(e));
		goto fail;
	}
	sync_dir(dir);
	OPENSSL_cleanse(pem, (size_t)pemlen);
	BIO_free(bio);
	EVP_PKEY_free(pk);
	return 0;

fail:
	if (bio != NULL) {
		if ((pemlen = BIO_get_mem_data(bio, &pem)) > 0)
			OPENSSL_cleanse(pem, (size_t)pemlen);
		BIO_free(bio);
	}
	EVP_PKEY_free(pk);
	free(*txt);
	*txt = NULL;
	return r;
}

int
dkimkey_generate(const char *data_dir, const char *domain,
    const char *selector, const char *algo, char **txt, char *err,
    size_t errsz)
{
	int r = generate(data_dir, domain, selector, algo, txt, err, errsz);

	ERR_clear_error();
	return r;
}
