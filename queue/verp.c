/*
 * verp - signed VERP return paths.  See verp.h for the token layout.
 */
#include "queue/verp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "core/mailaddr.h"
#include "core/str.h"

#define VERP_MAC_CHARS 10
#define VERP_MAC_LABEL "kurier-verp-1"
/* The longest address verp_encode makes or verp_decode takes, brackets excluded. */
#define VERP_ADDR_MAX (MAILADDR_PATH_MAX - 2)
/* Upper bound on verp_secret's length, far above any real key. */
#define VERP_SECRET_MAX 1024

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* digit - the value of one base32 digit, either case, or -1. */
static int
digit(unsigned char c)
{
	const char *p;

	if (c >= 'a' && c <= 'z')
		c = (unsigned char)(c - 'a' + 'A');
	if (c == '\0' || (p = strchr(alphabet, c)) == NULL)
		return -1;
	return (int)(p - alphabet);
}

/*
 * domain_lc - check that s[0..len) is a host name (str_is_hostname_n)
 * and copy it lower-cased into out[outsz].  Returns its length or -EINVAL.
 */
static int
domain_lc(const char *s, size_t len, char *out, size_t outsz)
{
	if (len >= outsz || !str_is_hostname_n(s, len))
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		out[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
	out[len] = '\0';
	return (int)len;
}

/*
 * mac_chars - the 10 base32 digits of the truncated HMAC over the token
 * fields and the lower-cased domain (dlc, dlen octets).
 */
static void
mac_chars(const uint8_t key[VERP_KEY_LEN], const char *qid, uint32_t idx,
    bool job, const char *dlc, size_t dlen, char out[VERP_MAC_CHARS])
{
	uint8_t msg[sizeof VERP_MAC_LABEL + QID_LEN + 5 + MAILADDR_DOMAIN_MAX];
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint64_t bits = 0;
	size_t n = 0;

	memcpy(msg, VERP_MAC_LABEL, sizeof VERP_MAC_LABEL); /* with its NUL */
	n += sizeof VERP_MAC_LABEL;
	memcpy(msg + n, qid, QID_LEN);
	n += QID_LEN;
	msg[n++] = (uint8_t)(idx >> 24);
	msg[n++] = (uint8_t)(idx >> 16);
	msg[n++] = (uint8_t)(idx >> 8);
	msg[n++] = (uint8_t)idx;
	msg[n++] = job ? 1 : 0;
	memcpy(msg + n, dlc, dlen);
	n += dlen;
	if (HMAC(EVP_sha256(), key, VERP_KEY_LEN, msg, n, md, &mdlen) == NULL ||
	    mdlen < 7)
		abort(); /* SHA-256 is built into libcrypto; this cannot fail. */
	/* The first 50 bits, five at a time from the most significant. */
	for (int i = 0; i < 7; i++)
		bits = (bits << 8) | md[i];
	bits >>= 6;
	for (int i = VERP_MAC_CHARS - 1; i >= 0; i--) {
		out[i] = alphabet[bits & 31];
		bits >>= 5;
	}
	OPENSSL_cleanse(md, sizeof md);
}

int
verp_encode(const uint8_t key[VERP_KEY_LEN], const char *qid, uint32_t rcpt_idx,
    bool job, const char *domain, char *out, size_t outsz)
{
	char dlc[MAILADDR_DOMAIN_MAX + 1], num[8], addr[VERP_ADDR_MAX + 1];
	uint64_t v = ((uint64_t)rcpt_idx << 1) | (job ? 1 : 0);
	int dlen, nlen = 0, len;

	if (outsz > 0)
		out[0] = '\0';
	if (qid == NULL || domain == NULL || !qid_valid(qid))
		return -EINVAL;
	if ((dlen = domain_lc(domain, strlen(domain), dlc, sizeof dlc)) < 0)
		return -EINVAL;
	do {
		num[nlen++] = alphabet[v & 31];
		v >>= 5;
	} while (v != 0);
	/* "b+" QID N MAC "@" domain */
	len = 2 + QID_LEN + nlen + VERP_MAC_CHARS + 1 + dlen;
	if (len > VERP_ADDR_MAX)
		return -EINVAL;
	memcpy(addr, "b+", 2);
	memcpy(addr + 2, qid, QID_LEN);
	for (int i = 0; i < nlen; i++)
		addr[2 + QID_LEN + i] = num[nlen - 1 - i];
	mac_chars(key, qid, rcpt_idx, job, dlc, (size_t)dlen,
	    addr + 2 + QID_LEN + nlen);
	addr[len - dlen - 1] = '@';
	memcpy(addr + len - dlen, dlc, (size_t)dlen);
	addr[len] = '\0';
	if ((size_t)len >= outsz)
		return -E2BIG;
	memcpy(out, addr, (size_t)len + 1);
	return len;
}

int
verp_decode(const uint8_t key[VERP_KEY_LEN], const char *addr, size_t len,
    struct verp_info *info)
{
	char dlc[MAILADDR_DOMAIN_MAX + 1], mac[VERP_MAC_CHARS], got[VERP_MAC_CHARS];
	const char *at, *tok;
	size_t toklen, nlen;
	uint64_t v = 0;
	int dlen;

	memset(info, 0, sizeof *info);
	if (addr == NULL || len > MAILADDR_PATH_MAX)
		return -EINVAL;
	if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>') {
		addr++;
		len -= 2;
	}
	if (len < 2 || len > VERP_ADDR_MAX || memchr(addr, '\0', len) != NULL)
		return -EINVAL;
	if ((addr[0] != 'b' && addr[0] != 'B') || addr[1] != '+')
		return -EINVAL;
	if ((at = memchr(addr, '@', len)) == NULL)
		return -EINVAL;
	tok = addr + 2;
	toklen = (size_t)(at - tok);
	if (toklen < QID_LEN + 1 + VERP_MAC_CHARS || toklen > VERP_TOKEN_MAX)
		return -EINVAL;
	dlen = domain_lc(at + 1, len - (size_t)(at + 1 - addr), dlc, sizeof dlc);
	if (dlen < 0)
		return -EINVAL;
	for (size_t i = 0; i < toklen; i++)
		if (digit((unsigned char)tok[i]) < 0)
			return -EINVAL;

	for (size_t i = 0; i < QID_LEN; i++)
		info->qid[i] = alphabet[digit((unsigned char)tok[i])];
	info->qid[QID_LEN] = '\0';
	nlen = toklen - QID_LEN - VERP_MAC_CHARS;
	/* One spelling per number: no leading zero digits. */
	if (nlen > 1 && digit((unsigned char)tok[QID_LEN]) == 0)
		goto bad;
	for (size_t i = 0; i < nlen; i++)
		v = (v << 5) | (uint64_t)digit((unsigned char)tok[QID_LEN + i]);
	if (v >> 33 != 0)
		goto bad;
	for (size_t i = 0; i < VERP_MAC_CHARS; i++)
		got[i] = alphabet[digit((unsigned char)tok[toklen - VERP_MAC_CHARS + i])];

	info->rcpt_idx = (uint32_t)(v >> 1);
	info->job = (v & 1) != 0;
	mac_chars(key, info->qid, info->rcpt_idx, info->job, dlc, (size_t)dlen, mac);
	if (CRYPTO_memcmp(mac, got, sizeof mac) != 0) {
		memset(info, 0, sizeof *info);
		return -EBADMSG;
	}
	return 0;
bad:
	memset(info, 0, sizeof *info);
	return -EINVAL;
}

/* hexval - one hex digit's value or -1. */
static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * secret_parse - verp_secret as hex or base64 into key (see verp.h).
 */
static int
secret_parse(const char *s, uint8_t key[VERP_KEY_LEN], char *err, size_t errsz)
{
	uint8_t raw[VERP_SECRET_MAX];
	size_t len = strlen(s), n = 0, i;
	bool hex = len % 2 == 0;
	int r = 0, d;

	if (len > VERP_SECRET_MAX)
		return str_err(err, errsz, -EINVAL,
		    "verp_secret: longer than %d characters", VERP_SECRET_MAX);
	for (i = 0; i < len && hex; i++)
		if (hexval((unsigned char)s[i]) < 0)
			hex = false;
	if (hex) {
		for (i = 0; i < len; i += 2)
			raw[n++] = (uint8_t)(hexval((unsigned char)s[i]) << 4 |
			    hexval((unsigned char)s[i + 1]));
	} else {
		size_t pad = 0;

		/* Strict: padded, no white space, standard alphabet. */
		for (i = 0; i < len; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c == '=' && i + 2 >= len)
				pad++;
			else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '+' || c == '/'))
				break;
		}
		if (i != len || len % 4 != 0 || (pad == 1 && s[len - 1] != '=') ||
		    (d = EVP_DecodeBlock(raw, (const unsigned char *)s, (int)len)) < 0)
			return str_err(err, errsz, -EINVAL,
			    "verp_secret: neither hex nor padded base64");
		n = (size_t)d - pad;
	}
	if (n < VERP_KEY_LEN)
		r = str_err(err, errsz, -EINVAL,
		    "verp_secret: %zu bytes, at least %d needed", n, VERP_KEY_LEN);
	else if (n == VERP_KEY_LEN)
		memcpy(key, raw, VERP_KEY_LEN);
	else
		SHA256(raw, n, key);
	OPENSSL_cleanse(raw, sizeof raw);
	return r;
}

/*
 * key_read - read path, which must be a regular file of exactly
 * VERP_KEY_LEN bytes that only its owner may access and not a symbolic
 * link (core/file_read_secret, whose messages these are but for the
 * length).  Returns 0, -ENOENT (err set too) when it does not exist, or
 * another negative errno.
 */
static int
key_read(const char *path, uint8_t key[VERP_KEY_LEN], char *err, size_t errsz)
{
	struct file_secret s;
	int r;

	r = file_read_secret(&s, path, VERP_KEY_LEN, FILE_SECRET_NOFOLLOW, err,
	    errsz);
	if (r == -EFBIG)
		return str_err(err, errsz, -EINVAL, "%s: more than %d bytes, %d expected",
		    path, VERP_KEY_LEN, VERP_KEY_LEN);
	if (r < 0)
		return r;
	if (s.len != VERP_KEY_LEN) {
		r = str_err(err, errsz, -EINVAL, "%s: %zu bytes, %d expected", path,
		    s.len, VERP_KEY_LEN);
		file_secret_free(&s);
		return r;
	}
	memcpy(key, s.data, VERP_KEY_LEN);
	file_secret_free(&s);
	return 0;
}

/*
 * key_create - write 32 random bytes to a fresh temporary file in dir
 * and link it to path.  Returns 0 when ours became path, -EEXIST when
 * another process's got there first, or another negative errno.
 */
static int
key_create(const char *dir, const char *path, char *err, size_t errsz)
{
	uint8_t key[VERP_KEY_LEN];
	char tmp[PATH_MAX];
	size_t off = 0;
	int fd = -1, e = 0, tries;

	for (tries = 0; tries < 100 && fd < 0; tries++) {
		uint32_t r;

		if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
			return str_err(err, errsz, -EIO,
			    "%s: no random bytes from OpenSSL", path);
		if (snprintf(tmp, sizeof tmp, "%s/.verp.key.%ld.%08x", dir,
		    (long)getpid(), r) >= (int)sizeof tmp)
			return str_err(err, errsz, -ENAMETOOLONG, "%s: path too long",
			    path);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		    0600);
		if (fd < 0 && errno != EEXIST) {
			e = errno;
			return str_err(err, errsz, -e, "%s: cannot create: %s", tmp,
			    strerror(e));
		}
	}
	if (fd < 0)
		return str_err(err, errsz, -EEXIST, "%s: no free temporary name",
		    path);
	if (RAND_bytes(key, sizeof key) != 1) {
		e = EIO;
		str_err(err, errsz, -e, "%s: no random bytes from OpenSSL", path);
		goto fail;
	}
	while (off < sizeof key) {
		ssize_t n = write(fd, key + off, sizeof key - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n < 0 ? errno : EIO;
			str_err(err, errsz, -e, "%s: cannot write: %s", tmp, strerror(e));
			goto fail;
		}
		off += (size_t)n;
	}
	OPENSSL_cleanse(key, sizeof key);
	/* umask may only have narrowed 0600; say it once more. */
	if (fchmod(fd, 0600) != 0 || fsync(fd) != 0) {
		e = errno;
		str_err(err, errsz, -e, "%s: %s", tmp, strerror(e));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		e = errno;
		str_err(err, errsz, -e, "%s: cannot write: %s", tmp, strerror(e));
		goto fail;
	}
	fd = -1;
	if (link(tmp, path) != 0) {
		e = errno;
		unlink(tmp);
		if (e == EEXIST)
			return -EEXIST;
		return str_err(err, errsz, -e, "%s: cannot create: %s", path,
		    strerror(e));
	}
	unlink(tmp);
	/* Make the new name durable. */
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	return 0;
fail:
	OPENSSL_cleanse(key, sizeof key);
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -e;
}

int
verp_load_key(const char *conf_secret, const char *data_dir,
    uint8_t key[VERP_KEY_LEN], char *err, size_t errsz)
{
	char path[PATH_MAX];
	int r;

	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if (conf_secret != NULL && conf_secret[0] != '\0')
		return secret_parse(conf_secret, key, err, errsz);
	if (data_dir == NULL || data_dir[0] == '\0')
		return str_err(err, errsz, -EINVAL,
		    "verp.key: no verp_secret and no data_dir");
	if (snprintf(path, sizeof path, "%s/verp.key", data_dir) >= (int)sizeof path)
		return str_err(err, errsz, -ENAMETOOLONG, "%s/verp.key: path too long",
		    data_dir);
	r = key_read(path, key, err, errsz);
	if (r != -ENOENT)
		return r;
	r = key_create(data_dir, path, err, errsz);
	if (r < 0 && r != -EEXIST)
		return r;
	/* Ours or the other process's: the file under the final name is the key. */
	return key_read(path, key, err, errsz);
}
