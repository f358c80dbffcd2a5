/*
 * tlsctx - OpenSSL server and client contexts.  See tlsctx.h.
 *
 * The self-signed pair is written to temporary files that are renamed
 * into place, key first, under an flock() on data_dir/tls, so that two
 * processes starting together on one data_dir agree on one pair and a
 * crash never leaves a half-written file under the final name.
 */
#include "core/tlsctx.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/str.h"

/*
 * TLS 1.2: forward secrecy and AEAD only (Mozilla "intermediate" minus
 * DHE).  TLS 1.3 suites are all AEAD; OpenSSL's default list is kept.
 */
#define TLSCTX_CIPHERS_12 \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

#define SELFSIGNED_DAYS 3650
#define EXPIRY_WARN_DAYS 30

const char *
tlsctx_ossl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r != NULL ? r : "unknown OpenSSL error";
}

const char *
tlsctx_fingerprint(SSL_CTX *ctx, char *dst, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char fp[TLSCTX_FINGERPRINT_SIZE];
	X509 *x = SSL_CTX_get0_certificate(ctx);

	fp[0] = '\0';
	if (x != NULL && X509_digest(x, EVP_sha256(), md, &n) == 1 && n == 32) {
		for (unsigned i = 0; i < n; i++) {
			fp[3 * i] = hex[md[i] >> 4];
			fp[3 * i + 1] = hex[md[i] & 15];
			fp[3 * i + 2] = i + 1 < n ? ':' : '\0';
		}
	}
	ERR_clear_error();
	if (size > 0)
		str_copy(dst, fp, size);
	return dst;
}

/* 0 when path can be opened for reading, else -errno with err set. */
static int
check_readable(const char *path, char *err, size_t errsz)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;

		return str_err(err, errsz, -e, "%s: cannot read: %s", path,
		    strerror(e));
	}
	close(fd);
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

static int
load_pair(SSL_CTX *ctx, const char *cert, const char *key, char *err,
    size_t errsz)
{
	EVP_PKEY *pk;
	BIO *b;
	int r;

	if ((r = check_readable(cert, err, errsz)) < 0 ||
	    (r = check_readable(key, err, errsz)) < 0)
		return r;
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		return str_err(err, errsz, -EINVAL,
		    "%s: not a PEM certificate chain: %s", cert, tlsctx_ossl_reason());
	if ((b = BIO_new_file(key, "r")) == NULL)
		return str_err(err, errsz, -EIO, "%s: cannot read: %s", key,
		    tlsctx_ossl_reason());
	pk = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL);
	BIO_free(b);
	if (pk == NULL) {
		const char *why = tlsctx_ossl_reason();

		if (strstr(why, "password") != NULL || strstr(why, "decrypt") != NULL)
			why = "encrypted keys are not supported (openssl pkey -in KEY -out KEY)";
		return str_err(err, errsz, -EINVAL,
		    "%s: not a PEM private key: %s", key, why);
	}
	if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), pk) != 1) {
		EVP_PKEY_free(pk);
		return str_err(err, errsz, -EINVAL,
		    "%s, %s: cert and key do not match", cert, key);
	}
	r = SSL_CTX_use_PrivateKey(ctx, pk);
	EVP_PKEY_free(pk);
	if (r != 1)
		return str_err(err, errsz, -EINVAL, "%s: %s", key, tlsctx_ossl_reason());
	return 0;
}

/* --- the self-signed pair ----------------------------------------------------- */

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
		return str_err(err, errsz, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return str_err(err, errsz, -ENOTDIR, "%s: not a directory", path);
	return 0;
}

static X509 *
selfsigned_cert(EVP_PKEY *pk, const char *hostname)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	BIGNUM *bn = BN_new();
	bool ok = false;
	static const struct {
		int nid;
		const char *value;
	} exts[] = {
		{ NID_basic_constraints, "critical,CA:FALSE" },
		{ NID_subject_key_identifier, "hash" },
		{ NID_ext_key_usage, "serverAuth" },
	};

	if (x == NULL || bn == NULL)
		goto out;
	/* A random 127-bit serial: positive, and unique in practice. */
	if (!X509_set_version(x, X509_VERSION_3) ||
	    !BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		goto out;
	/* An hour back, for clocks a little behind ours. */
	if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), SELFSIGNED_DAYS, 0, NULL) == NULL)
		goto out;
	if (!X509_set_pubkey(x, pk))
		goto out;
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)hostname, -1, -1, 0) ||
	    !X509_set_issuer_name(x, name))
		goto out;
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, exts[i].nid, exts[i].value);
		if (ext == NULL)
			goto out;
		if (!X509_add_ext(x, ext, -1)) {
			X509_EXTENSION_free(ext);
			goto out;
		}
		X509_EXTENSION_free(ext);
	}
	/* Built directly: a host name is not parsed as config text. */
	if ((gens = GENERAL_NAMES_new()) == NULL ||
	    (gn = GENERAL_NAME_new()) == NULL ||
	    (ia5 = ASN1_IA5STRING_new()) == NULL ||
	    !ASN1_STRING_set(ia5, hostname, -1))
		goto out;
	GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
	ia5 = NULL;
	if (!sk_GENERAL_NAME_push(gens, gn))
		goto out;
	gn = NULL;
	if (!X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT))
		goto out;
	if (X509_sign(x, pk, EVP_sha256()) <= 0)
		goto out;
	ok = true;
out:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	BN_free(bn);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Write a PEM file as path.tmp with mode, fsync it, rename it to path. */
static int
write_pem(const char *path, mode_t mode, EVP_PKEY *pk, X509 *x, char *err,
    size_t errsz)
{
	char tmp[PATH_MAX];
	FILE *f;
	int fd, ok, e;

	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return str_err(err, errsz, -ENAMETOOLONG, "%s: path too long", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return str_err(err, errsz, -errno, "%s: cannot create: %s", tmp,
		    strerror(errno));
	/* A leftover tmp file keeps its old mode through O_TRUNC. */
	if (fchmod(fd, mode) != 0 || (f = fdopen(fd, "w")) == NULL) {
		e = errno;
		close(fd);
		unlink(tmp);
		return str_err(err, errsz, -e, "%s: %s", tmp, strerror(e));
	}
	errno = 0;
	ok = pk != NULL ? PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) :
	    PEM_write_X509(f, x);
	e = EIO;
	if (ok && fflush(f) == 0 && fsync(fileno(f)) == 0)
		e = 0;
	else if (errno != 0)
		e = errno;
	if (fclose(f) != 0 && e == 0)
		e = errno;
	if (!ok || e != 0) {
		unlink(tmp);
		return str_err(err, errsz, -e, "%s: cannot write: %s", tmp,
		    strerror(e));
	}
	if (rename(tmp, path) != 0) {
		e = errno;
		unlink(tmp);
		return str_err(err, errsz, -e, "%s: cannot rename: %s", path,
		    strerror(e));
	}
	return 0;
}

static int
selfsigned_generate(const char *hostname, const char *crt, const char *key,
    char *err, size_t errsz)
{
	EVP_PKEY *pk;
	X509 *x;
	int r;

	ERR_clear_error();
	if ((pk = EVP_EC_gen("P-256")) == NULL)
		return str_err(err, errsz, -EIO, "cannot generate a P-256 key: %s",
		    tlsctx_ossl_reason());
	if ((x = selfsigned_cert(pk, hostname)) == NULL) {
		EVP_PKEY_free(pk);
		return str_err(err, errsz, -EIO,
		    "cannot build a self-signed certificate for %s: %s", hostname,
		    tlsctx_ossl_reason());
	}
	if ((r = write_pem(key, 0600, pk, NULL, err, errsz)) == 0)
		r = write_pem(crt, 0644, NULL, x, err, errsz);
	X509_free(x);
	EVP_PKEY_free(pk);
	return r;
}

/*
 * Fill crt and key with the self-signed pair's paths, creating it when
 * needed; *source says "self-signed" or "generated".
 */
static int
selfsigned(const struct config *cfg, char *crt, char *key, size_t size,
    const char **source, char *err, size_t errsz)
{
	char dir[PATH_MAX];
	struct stat st;
	bool have_crt, have_key;
	int dfd, r;

	if ((size_t)snprintf(dir, sizeof dir, "%s/tls", cfg->server.data_dir) >= sizeof dir ||
	    (size_t)snprintf(crt, size, "%s/self-signed.crt", dir) >= size ||
	    (size_t)snprintf(key, size, "%s/self-signed.key", dir) >= size)
		return str_err(err, errsz, -ENAMETOOLONG, "%s: path too long",
		    cfg->server.data_dir);
	if ((r = ensure_dir(cfg->server.data_dir, err, errsz)) < 0 ||
	    (r = ensure_dir(dir, err, errsz)) < 0)
		return r;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return str_err(err, errsz, -errno, "%s: %s", dir, strerror(errno));
	if (flock(dfd, LOCK_EX) != 0) {
		r = -errno;
		close(dfd);
		return str_err(err, errsz, r, "%s: cannot lock: %s", dir,
		    strerror(-r));
	}
	have_crt = stat(crt, &st) == 0;
	have_key = stat(key, &st) == 0;
	*source = "self-signed";
	if (!have_crt || !have_key) {
		if (have_crt || have_key)
			log_warn("tls", "selfsigned_incomplete", "dir=%s hint=\"one of the pair was missing: generating both again\"",
			    dir);
		*source = "generated";
		r = selfsigned_generate(cfg->server.hostname, crt, key, err, errsz);
		if (r == 0 && fsync(dfd) != 0)
			log_warn("tls", "fsync_failed", "dir=%s error=\"%s\"", dir,
			    strerror(errno));
	} else if ((st.st_mode & 077) != 0) {
		log_warn("tls", "key_mode", "key=%s mode=%04o hint=\"chmod 600 %s\"",
		    key, (unsigned)(st.st_mode & 07777), key);
	}
	flock(dfd, LOCK_UN);
	close(dfd);
	return r;
}

/* Log where the certificate came from, its fingerprint and its expiry. */
static void
log_cert(SSL_CTX *ctx, const char *source, const char *path)
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	char fp[TLSCTX_FINGERPRINT_SIZE], cn[256], q[300], until[32] = "?";
	struct tm tm;
	time_t soon = time(NULL) + (time_t)EXPIRY_WARN_DAYS * 86400;

	tlsctx_fingerprint(ctx, fp, sizeof fp);
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
	    cn, sizeof cn) < 0)
		cn[0] = '\0';
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_info("tls", "certificate", "source=%s cert=%s cn=%s not_after=%s fingerprint=%s",
	    source, path, log_quotes(q, sizeof q, cn), until, fp);
	if (X509_cmp_time(X509_get0_notAfter(x), &soon) < 0)
		log_warn("tls", "certificate_expiring", "cert=%s not_after=%s hint=\"renew it, then reload kurierd (SIGHUP)\"",
		    path, until);
	ERR_clear_error();
}

static int
server_ctx(SSL_CTX **out, const struct config *cfg, char *err, size_t errsz)
{
	char crt[PATH_MAX], key[PATH_MAX];
	const char *source = "config";
	SSL_CTX *ctx;
	int r;

	*out = NULL;
	if (cfg->tls.cert[0] == '\0' && cfg->tls.key[0] == '\0') {
		if ((r = selfsigned(cfg, crt, key, sizeof crt, &source, err, errsz)) < 0)
			return r;
	} else if (cfg->tls.cert[0] == '\0' || cfg->tls.key[0] == '\0') {
		return str_err(err, errsz, -EINVAL,
		    "[tls] cert and key go together: set both, or neither for a self-signed certificate");
	} else {
		str_copy(crt, cfg->tls.cert, sizeof crt);
		str_copy(key, cfg->tls.key, sizeof key);
	}
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return str_err(err, errsz, -ENOMEM, "SSL_CTX_new: %s", tlsctx_ossl_reason());
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, TLSCTX_CIPHERS_12)) {
		r = str_err(err, errsz, -EINVAL, "TLS settings: %s", tlsctx_ossl_reason());
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Stateless tickets resume sessions; a cache would cost memory per client. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 1);
	if ((r = load_pair(ctx, crt, key, err, errsz)) < 0)
		goto fail;
	log_cert(ctx, source, crt);
	*out = ctx;
	return 0;

fail:
	SSL_CTX_free(ctx);
	return r;
}

static int
client_ctx(SSL_CTX **out, char *err, size_t errsz)
{
	SSL_CTX *ctx;

	*out = NULL;
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return str_err(err, errsz, -ENOMEM, "SSL_CTX_new: %s", tlsctx_ossl_reason());
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		SSL_CTX_free(ctx);
		return str_err(err, errsz, -EINVAL, "TLS settings: %s", tlsctx_ossl_reason());
	}
	if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		SSL_CTX_free(ctx);
		return str_err(err, errsz, -EIO, "cannot load the system trust store: %s",
		    tlsctx_ossl_reason());
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	ERR_clear_error();
	*out = ctx;
	return 0;
}

/*
 * The public calls leave OpenSSL's error queue empty, failed or not:
 * each failure has been told in err, and a stale entry would be blamed
 * on the next TLS call of this thread.
 */
int
tlsctx_server(SSL_CTX **out, const struct config *cfg, char *err, size_t errsz)
{
	int r = server_ctx(out, cfg, err, errsz);

	ERR_clear_error();
	return r;
}

int
tlsctx_client(SSL_CTX **out, char *err, size_t errsz)
{
	int r = client_ctx(out, err, errsz);

	ERR_clear_error();
	return r;
}
