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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/str.h"
#include "core/xmalloc.h"

#define TXT_STRING_MAX 255   /* RFC 1035 3.3.14: one character-string */
#define KEY_MODE_ALLOWED 0640

static int dkimkey_err(char *err, size_t errsz, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Format err (when given), forget OpenSSL's error queue, return rc. */
static int
dkimkey_err(char *err, size_t errsz, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errsz > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	ERR_clear_error();
	return rc;
}

/* The reason of OpenSSL's most recent error, for messages. */
static const char *
ossl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r != NULL ? r : "unknown OpenSSL error";
}

static bool
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/*
 * Labels of letters, digits and inner hyphens, 1-63 octets, separated by
 * single dots; at most max octets in all.
 */
static bool
dns_name_valid(const char *s, size_t max)
{
	size_t n = 0, label = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (const char *p = s; *p != '\0'; p++, n++) {
		if (n >= max)
			return false;
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (*p == '-') {
			if (label == 0)
				return false;
		} else if (!is_alnum(*p)) {
			return false;
		}
		if (++label > 63)
			return false;
	}
	return label > 0 && s[n - 1] != '-';
}

bool
dkimkey_domain_valid(const char *domain)
{
	return dns_name_valid(domain, DKIMKEY_DOMAIN_MAX);
}

bool
dkimkey_selector_valid(const char *selector)
{
	return dns_name_valid(selector, DKIMKEY_SELECTOR_MAX);
}

/* Check both names and copy them lower-cased into dom and sel. */
static int
names(char dom[DKIMKEY_DOMAIN_MAX + 1], char sel[DKIMKEY_SELECTOR_MAX + 1],
    const char *domain, const char *selector, char *err, size_t errsz)
{
	if (!dkimkey_domain_valid(domain))
		return dkimkey_err(err, errsz, -EINVAL,
		    "\"%s\" is not a domain name (letters, digits, '-' and '.', at most %d characters)",
		    domain != NULL ? domain : "", DKIMKEY_DOMAIN_MAX);
	if (!dkimkey_selector_valid(selector))
		return dkimkey_err(err, errsz, -EINVAL,
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
		return dkimkey_err(err, errsz, -ENAMETOOLONG,
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

/* Read all of fd (a regular file of st_size bytes) into a new buffer. */
static int
read_all(int fd, off_t size, char **out, size_t *outlen)
{
	char *p = xmalloc((size_t)size + 1);
	size_t n = 0;
	ssize_t r;

	while (n < (size_t)size) {
		r = read(fd, p + n, (size_t)size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			OPENSSL_cleanse(p, n);
			free(p);
			return -e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	p[n] = '\0';
	*out = p;
	*outlen = n;
	return 0;
}

/* Whether pk is a key DKIM signs with; err says why not. */
static int
check_key(EVP_PKEY *pk, const char *path, char *err, size_t errsz)
{
	int bits;

	if (EVP_PKEY_is_a(pk, "ED25519"))
		return 0;
	if (!EVP_PKEY_is_a(pk, "RSA"))
		return dkimkey_err(err, errsz, -EINVAL,
		    "%s: a %s key: DKIM signs with RSA or Ed25519 (kurierctl dkim keygen makes one)",
		    path, EVP_PKEY_get0_type_name(pk) != NULL ?
		    EVP_PKEY_get0_type_name(pk) : "unknown");
	bits = EVP_PKEY_get_bits(pk);
	if (bits < DKIMKEY_RSA_MIN_BITS)
		return dkimkey_err(err, errsz, -EINVAL,
		    "%s: a %d-bit RSA key: DKIM needs at least %d bits (RFC 8301), %d recommended",
		    path, bits, DKIMKEY_RSA_MIN_BITS, DKIMKEY_RSA_BITS);
	return 0;
}

int
dkimkey_load(EVP_PKEY **out, const char *data_dir, const char *domain,
    const char *selector, bool check_mode, char *err, size_t errsz)
{
	char path[PATH_MAX], *text = NULL;
	size_t len = 0;
	struct stat st;
	EVP_PKEY *pk;
	BIO *bio;
	int fd, r;

	*out = NULL;
	if ((r = dkimkey_path(path, sizeof path, data_dir, domain, selector,
	    err, errsz)) < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT)
			return dkimkey_err(err, errsz, r,
			    "%s: cannot read: %s (run kurierctl dkim keygen %s --selector %s)",
			    path, strerror(-r), domain, selector);
		return dkimkey_err(err, errsz, r, "%s: cannot read: %s", path,
		    strerror(-r));
	}
	if (fstat(fd, &st) != 0) {
		r = -errno;
		close(fd);
		return dkimkey_err(err, errsz, r, "%s: %s", path, strerror(-r));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return dkimkey_err(err, errsz, -EINVAL, "%s: not a regular file",
		    path);
	}
	if (check_mode && (st.st_mode & 0777 & ~KEY_MODE_ALLOWED) != 0) {
		close(fd);
		return dkimkey_err(err, errsz, -EPERM,
		    "%s: mode %04o lets others than its owner (and group, read-only) at the private key: chmod 600 %s",
		    path, (unsigned)(st.st_mode & 07777), path);
	}
	if (st.st_size > DKIMKEY_FILE_MAX) {
		close(fd);
		return dkimkey_err(err, errsz, -EFBIG,
		    "%s: %lld bytes, more than a key file holds (%d at most)",
		    path, (long long)st.st_size, DKIMKEY_FILE_MAX);
	}
	r = read_all(fd, st.st_size, &text, &len);
	close(fd);
	if (r < 0)
		return dkimkey_err(err, errsz, r, "%s: cannot read: %s", path,
		    strerror(-r));

	pk = NULL;
	if ((bio = BIO_new_mem_buf(text, (int)len)) != NULL) {
		pk = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
		BIO_free(bio);
	}
	OPENSSL_cleanse(text, len);
	free(text);
	if (pk == NULL)
		return dkimkey_err(err, errsz, -EINVAL,
		    "%s: not an unencrypted PEM private key (%s)", path,
		    ossl_reason());
	if ((r = check_key(pk, path, err, errsz)) < 0) {
		EVP_PKEY_free(pk);
		return r;
	}
	*out = pk;
	return 0;
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

int
dkimkey_txt(char **txt, EVP_PKEY *pk, const char *domain, const char *selector)
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
			return dkimkey_err(NULL, 0, -EINVAL, "no raw public key");
		buf_appends(&val, "v=DKIM1; k=ed25519; p=");
		append_base64(&val, raw, rawlen);
	} else if (EVP_PKEY_is_a(pk, "RSA")) {
		if ((derlen = i2d_PUBKEY(pk, &der)) <= 0)
			return dkimkey_err(NULL, 0, -EINVAL, "no public key");
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
		return dkimkey_err(err, errsz, r, "cannot make the TXT record of %s/%s",
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
		return dkimkey_err(err, errsz, -errno, "%s: cannot create: %s",
		    path, strerror(errno));
	if (stat(path, &st) != 0)
		return dkimkey_err(err, errsz, -errno, "%s: %s", path,
		    strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return dkimkey_err(err, errsz, -ENOTDIR, "%s: not a directory",
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
		dkimkey_err(err, errsz, -EIO, "cannot generate an %s key: %s",
		    algo, ossl_reason());
	return pk;
}

int
dkimkey_generate(const char *data_dir, const char *domain,
    const char *selector, const char *algo, char **txt, char *err,
    size_t errsz)
{
	char path[PATH_MAX], dir[PATH_MAX], *pem;
	EVP_PKEY *pk;
	BIO *bio;
	long pemlen;
	int fd, r, e;

	*txt = NULL;
	if (algo == NULL || (strcmp(algo, "rsa") != 0 &&
	    strcmp(algo, "ed25519") != 0))
		return dkimkey_err(err, errsz, -EINVAL,
		    "\"%s\" is not a key algorithm (rsa or ed25519)",
		    algo != NULL ? algo : "");
	if ((r = dkimkey_path(path, sizeof path, data_dir, domain, selector,
	    err, errsz)) < 0)
		return r;
	if (snprintf(dir, sizeof dir, "%s/dkim", data_dir) >= (int)sizeof dir)
		return dkimkey_err(err, errsz, -ENAMETOOLONG, "%s/dkim: path too long",
		    data_dir);
	if ((r = ensure_dir(data_dir, err, errsz)) < 0 ||
	    (r = ensure_dir(dir, err, errsz)) < 0)
		return r;
	/* Before the (slow) generation; O_EXCL below is what guarantees it. */
	if (access(path, F_OK) == 0)
		return dkimkey_err(err, errsz, -EEXIST,
		    "%s exists: refusing to overwrite a key (its TXT record: kurierctl dns)",
		    path);

	if ((pk = new_key(algo, err, errsz)) == NULL)
		return -EIO;
	if ((r = dkimkey_txt(txt, pk, domain, selector)) < 0) {
		EVP_PKEY_free(pk);
		return dkimkey_err(err, errsz, r, "cannot make the TXT record");
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) ||
	    (pemlen = BIO_get_mem_data(bio, &pem)) <= 0) {
		r = dkimkey_err(err, errsz, -EIO, "cannot encode the key: %s",
		    ossl_reason());
		goto fail;
	}

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		if (e == EEXIST)
			r = dkimkey_err(err, errsz, -EEXIST,
			    "%s exists: refusing to overwrite a key (its TXT record: kurierctl dns)",
			    path);
		else
			r = dkimkey_err(err, errsz, -e, "%s: cannot create: %s",
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
		r = dkimkey_err(err, errsz, -e, "%s: cannot write: %s", path,
		    strerror(e));
		goto fail;
	}
	if (close(fd) != 0) {
		e = errno;
		unlink(path);
		r = dkimkey_err(err, errsz, -e, "%s: cannot write: %s", path,
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
