/*
 * test_verp - queue/verp: signed VERP addresses (round trip, case
 * folding, forgery, malformed input) and the key file (creation, mode,
 * reuse, two processes creating it at once, verp_secret parsing).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue/verp.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t key1[VERP_KEY_LEN] = {
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
	0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
	0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
};
static const uint8_t key2[VERP_KEY_LEN] = { 0xff, 0x01 };

static const char *const qids[] = {
	"0000000000000000", "01KAC7ZQ5W3M8RT0", "ZZZZZZZZZZZZZZZZ", "7VXSZJ8NY1DHGQ2A",
};
static const uint32_t idxs[] = { 0, 1, 15, 16, 31, 1000, 65535, 0x7fffffff, UINT32_MAX };
static const char *const domains[] = {
	"bounces.example.com", "B.EXAMPLE.ORG", "x", "a-b.c-d.example",
	"xn--bcher-kva.example",
};

/* encode_ok - verp_encode that must succeed; returns the length. */
static int
encode_ok(const uint8_t *key, const char *qid, uint32_t idx, bool job,
    const char *domain, char *out, size_t outsz)
{
	int n = verp_encode(key, qid, idx, job, domain, out, outsz);

	ck_assert_msg(n > 0, "encode %s %u %d %s: %d", qid, idx, job, domain, n);
	ck_assert_uint_eq((size_t)n, strlen(out));
	return n;
}

/* local_len - octets before the last '@'. */
static size_t
local_len(const char *addr)
{
	return (size_t)(strrchr(addr, '@') - addr);
}

START_TEST(test_round_trip)
{
	char addr[300];
	struct verp_info info;

	for (size_t q = 0; q < NELEM(qids); q++)
		for (size_t i = 0; i < NELEM(idxs); i++)
			for (size_t d = 0; d < NELEM(domains); d++)
				for (int job = 0; job < 2; job++) {
					encode_ok(key1, qids[q], idxs[i], job, domains[d], addr,
					    sizeof addr);
					ck_assert(strncmp(addr, "b+", 2) == 0);
					ck_assert_uint_le(local_len(addr), 2 + VERP_TOKEN_MAX);
					ck_assert_uint_le(local_len(addr), 40);
					ck_assert_int_eq(verp_decode(key1, addr, strlen(addr), &info), 0);
					ck_assert_str_eq(info.qid, qids[q]);
					ck_assert_uint_eq(info.rcpt_idx, idxs[i]);
					ck_assert_int_eq(info.job, job);
				}
}
END_TEST

START_TEST(test_format)
{
	char addr[300];
	size_t n;

	encode_ok(key1, "01KAC7ZQ5W3M8RT0", 0, false, "Bounces.Example.COM", addr,
	    sizeof addr);
	/* QID, one digit for 0, ten MAC digits; the domain lower-cased. */
	ck_assert_uint_eq(local_len(addr), 2 + 16 + 1 + 10);
	ck_assert(strncmp(addr, "b+01KAC7ZQ5W3M8RT00", 19) == 0);
	ck_assert_str_eq(strchr(addr, '@'), "@bounces.example.com");
	/* The largest index: 2^33 - 1 takes seven digits. */
	encode_ok(key1, "01KAC7ZQ5W3M8RT0", UINT32_MAX, true, "x.example", addr,
	    sizeof addr);
	ck_assert_uint_eq(local_len(addr), 2 + VERP_TOKEN_MAX);
	ck_assert(strncmp(addr + 18, "7ZZZZZZ", 7) == 0);
	/* A job flag alone changes N from 0 to 1. */
	encode_ok(key1, "01KAC7ZQ5W3M8RT0", 0, true, "x.example", addr, sizeof addr);
	ck_assert_int_eq(addr[18], '1');
	/* Only characters that survive case folding unchanged in meaning. */
	n = local_len(addr);
	for (size_t i = 2; i < n; i++)
		ck_assert_msg(strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", addr[i]) != NULL,
		    "%s", addr);
}
END_TEST

/*
 * The MAC, computed here with EVP_Q_mac from the layout verp.h
 * documents, matches the last ten token characters.
 */
START_TEST(test_mac_layout)
{
	static const char alpha[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	const char *qid = "01KAC7ZQ5W3M8RT0", *dom = "bounces.example.com";
	uint32_t idx = 70000;
	uint8_t msg[256], md[32];
	char addr[300], want[11];
	size_t n = 0, mdlen = 0;
	uint64_t bits = 0;
	int len;

	memcpy(msg, "kurier-verp-1", 14);
	n = 14;
	memcpy(msg + n, qid, 16);
	n += 16;
	msg[n++] = (uint8_t)(idx >> 24);
	msg[n++] = (uint8_t)(idx >> 16);
	msg[n++] = (uint8_t)(idx >> 8);
	msg[n++] = (uint8_t)idx;
	msg[n++] = 1;
	memcpy(msg + n, dom, strlen(dom));
	n += strlen(dom);
	ck_assert_ptr_nonnull(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key1,
	    sizeof key1, msg, n, md, sizeof md, &mdlen));
	for (int i = 0; i < 7; i++)
		bits = bits << 8 | md[i];
	bits >>= 6;
	for (int i = 9; i >= 0; i--, bits >>= 5)
		want[i] = alpha[bits & 31];
	want[10] = '\0';

	len = encode_ok(key1, qid, idx, true, "BOUNCES.example.com", addr, sizeof addr);
	ck_assert(strncmp(addr + local_len(addr) - 10, want, 10) == 0);
	/* N = 70000 * 2 + 1 = 140001 = 4 * 32^3 + 8 * 32^2 + 23 * 32 + 1 */
	ck_assert(strncmp(addr + 18, "48Q1", 4) == 0);
	ck_assert_int_eq(len, (int)(2 + 16 + 4 + 10 + 1 + strlen(dom)));
}
END_TEST

START_TEST(test_case_folded)
{
	char addr[300], alt[310];
	struct verp_info info;
	size_t n;

	n = (size_t)encode_ok(key1, "7VXSZJ8NY1DHGQ2A", 4242, true,
	    "bounces.example.com", addr, sizeof addr);
	for (size_t i = 0; i <= n; i++)
		alt[i] = (char)((addr[i] >= 'A' && addr[i] <= 'Z') ? addr[i] + 32 : addr[i]);
	ck_assert_int_eq(verp_decode(key1, alt, n, &info), 0);
	ck_assert_str_eq(info.qid, "7VXSZJ8NY1DHGQ2A");
	ck_assert_uint_eq(info.rcpt_idx, 4242);
	ck_assert(info.job);
	for (size_t i = 0; i <= n; i++)
		alt[i] = (char)((addr[i] >= 'a' && addr[i] <= 'z') ? addr[i] - 32 : addr[i]);
	ck_assert_int_eq(verp_decode(key1, alt, n, &info), 0);
	ck_assert_uint_eq(info.rcpt_idx, 4242);
	/* In angle brackets, as a DSN's or RCPT's path. */
	snprintf(alt, sizeof alt, "<%s>", addr);
	ck_assert_int_eq(verp_decode(key1, alt, n + 2, &info), 0);
	ck_assert_str_eq(info.qid, "7VXSZJ8NY1DHGQ2A");
}
END_TEST

START_TEST(test_forged)
{
	static const char alpha[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	char addr[300], alt[300];
	struct verp_info info;
	size_t n, local;
	int r;

	n = (size_t)encode_ok(key1, "01KAC7ZQ5W3M8RT0", 7, false,
	    "bounces.example.com", addr, sizeof addr);
	local = local_len(addr);
	/* Another key. */
	ck_assert_int_eq(verp_decode(key2, addr, n, &info), -EBADMSG);
	ck_assert_str_eq(info.qid, "");
	/* Another return-path domain. */
	memcpy(alt, addr, local);
	snprintf(alt + local, sizeof alt - local, "@bounces.example.net");
	ck_assert_int_eq(verp_decode(key1, alt, strlen(alt), &info), -EBADMSG);
	/* Every token character changed to every other digit. */
	for (size_t i = 2; i < local; i++) {
		for (const char *c = alpha; *c != '\0'; c++) {
			if (*c == addr[i])
				continue;
			memcpy(alt, addr, n + 1);
			alt[i] = *c;
			r = verp_decode(key1, alt, n, &info);
			ck_assert_msg(r == -EBADMSG, "%s: %d", alt, r);
		}
	}
	/* A job flag set on a single-recipient token. */
	memcpy(alt, addr, n + 1);
	alt[18] = 'F'; /* 7 * 2 + 1 */
	ck_assert_int_eq(verp_decode(key1, alt, n, &info), -EBADMSG);
	/* Sanity: the original still decodes. */
	ck_assert_int_eq(verp_decode(key1, addr, n, &info), 0);
}
END_TEST

START_TEST(test_not_verp)
{
	char good[300];
	static char big[100000];
	struct verp_info info;
	int n;

	n = encode_ok(key1, "01KAC7ZQ5W3M8RT0", 5, false, "b.example", good,
	    sizeof good);
	const struct {
		const char *addr;
		int len; /* -1: strlen */
	} cases[] = {
		{ "", -1 },
		{ "<>", -1 },
		{ "b", -1 },
		{ "b+", -1 },
		{ "b+@b.example", -1 },
		{ "postmaster@b.example", -1 },
		{ "jane.doe@b.example", -1 },
		/* Missing or wrong "b+". */
		{ "01KAC7ZQ5W3M8RT0AXXXXXXXXXX@b.example", -1 },
		{ "b-01KAC7ZQ5W3M8RT0AXXXXXXXXXX@b.example", -1 },
		{ "c+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@b.example", -1 },
		{ "+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@b.example", -1 },
		/* Token too short (no N) and too long (8 N digits). */
		{ "b+01KAC7ZQ5W3M8RT0XXXXXXXXXX@b.example", -1 },
		{ "b+01KAC7ZQ5W3M8RT012345678XXXXXXXXXX@b.example", -1 },
		/* Letters outside the alphabet: I L O U, punctuation. */
		{ "b+01KAC7ZQ5W3M8RTIAXXXXXXXXXX@b.example", -1 },
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXXXXXL@b.example", -1 },
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXOXXXX@b.example", -1 },
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXXXXXu@b.example", -1 },
		{ "b+01KAC7ZQ5W3M8RT0A-XXXXXXXXX@b.example", -1 },
		/* N with a leading zero, and N above 2^33 - 1. */
		{ "b+01KAC7ZQ5W3M8RT00AXXXXXXXXXX@b.example", -1 },
		{ "b+01KAC7ZQ5W3M8RT08000000XXXXXXXXXX@b.example", -1 },
		/* Domains. */
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@", -1 },
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX", -1 },
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@b.example.", -1 },
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@b..example", -1 },
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@-b.example", -1 },
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@b_x.example", -1 },
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@[192.0.2.1]", -1 },
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@b.example@c.example", -1 },
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@b\xc3\xa9.example", -1 },
		/* Unbalanced brackets, quotes, spaces. */
		{ "<b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@b.example", -1 },
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@b.example>", -1 },
		{ "\"b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX\"@b.example", -1 },
		{ " b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@b.example", -1 },
		{ "b+01KAC7ZQ5W3M8RT0AXXXXXXXXXX@b.example ", -1 },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		size_t len = cases[i].len < 0 ? strlen(cases[i].addr) : (size_t)cases[i].len;
		int r = verp_decode(key1, cases[i].addr, len, &info);

		ck_assert_msg(r == -EINVAL, "%s: %d", cases[i].addr, r);
		ck_assert_str_eq(info.qid, "");
		ck_assert_uint_eq(info.rcpt_idx, 0);
	}

	/* A NUL inside: the valid address with a NUL anywhere in it. */
	for (int i = 0; i < n; i++) {
		char alt[300];

		memcpy(alt, good, (size_t)n);
		alt[i] = '\0';
		ck_assert_int_eq(verp_decode(key1, alt, (size_t)n, &info), -EINVAL);
	}
	/* The valid address followed by its NUL, counted in len. */
	ck_assert_int_eq(verp_decode(key1, good, (size_t)n + 1, &info), -EINVAL);

	/* Overlong: a valid address at the start of 100000 bytes. */
	memset(big, 'a', sizeof big);
	memcpy(big, good, (size_t)n);
	ck_assert_int_eq(verp_decode(key1, big, sizeof big, &info), -EINVAL);
	/* A token padded out to a long local part; a 300-octet domain. */
	snprintf(big, sizeof big, "b+%0100d@b.example", 0);
	ck_assert_int_eq(verp_decode(key1, big, strlen(big), &info), -EINVAL);
	memset(big, 'a', 400);
	memcpy(big, good, (size_t)n);
	ck_assert_int_eq(verp_decode(key1, big, 300, &info), -EINVAL);
	/* NULL address. */
	ck_assert_int_eq(verp_decode(key1, NULL, 0, &info), -EINVAL);
}
END_TEST

START_TEST(test_encode_errors)
{
	char out[300], dom[300];

	ck_assert_int_eq(verp_encode(key1, "01kac7zq5w3m8rt0", 1, false, "b.example",
	    out, sizeof out), -EINVAL);
	ck_assert_int_eq(verp_encode(key1, "01KAC7ZQ5W3M8RT", 1, false, "b.example",
	    out, sizeof out), -EINVAL);
	ck_assert_int_eq(verp_encode(key1, "01KAC7ZQ5W3M8RT0X", 1, false, "b.example",
	    out, sizeof out), -EINVAL);
	ck_assert_int_eq(verp_encode(key1, "01KAC7ZQ5W3M8RTU", 1, false, "b.example",
	    out, sizeof out), -EINVAL);
	ck_assert_int_eq(verp_encode(key1, NULL, 1, false, "b.example", out,
	    sizeof out), -EINVAL);
	static const char *const bad_domains[] = {
		"", ".", "b.example.", "b..example", "-b.example", "b-.example",
		"b example", "b_example.com", "[192.0.2.1]", "user@b.example",
		"b\xc3\xa9.example",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
	};
	for (size_t i = 0; i < NELEM(bad_domains); i++)
		ck_assert_msg(verp_encode(key1, "01KAC7ZQ5W3M8RT0", 1, false,
		    bad_domains[i], out, sizeof out) == -EINVAL, "%s", bad_domains[i]);
	ck_assert_int_eq(verp_encode(key1, "01KAC7ZQ5W3M8RT0", 1, false, NULL, out,
	    sizeof out), -EINVAL);
	/* A domain of 250 octets: valid, but the address would pass 254. */
	memset(dom, 0, sizeof dom);
	for (int i = 0; i < 250; i++)
		dom[i] = (i % 50 == 49) ? '.' : 'a';
	dom[249] = 'a';
	ck_assert_int_eq(verp_encode(key1, "01KAC7ZQ5W3M8RT0", 1, false, dom, out,
	    sizeof out), -EINVAL);
	/* Too small a buffer: -E2BIG and "", also one byte short. */
	int n = verp_encode(key1, "01KAC7ZQ5W3M8RT0", 1, false, "b.example", out,
	    sizeof out);
	ck_assert_int_gt(n, 0);
	memset(out, 'x', sizeof out);
	ck_assert_int_eq(verp_encode(key1, "01KAC7ZQ5W3M8RT0", 1, false, "b.example",
	    out, (size_t)n), -E2BIG);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(verp_encode(key1, "01KAC7ZQ5W3M8RT0", 1, false, "b.example",
	    out, (size_t)n + 1), n);
	ck_assert_int_eq(verp_encode(key1, "01KAC7ZQ5W3M8RT0", 1, false, "b.example",
	    out, 0), -E2BIG);
}
END_TEST

/* --- keys ---------------------------------------------------------------- */

static char tmpdir[64];

static void
tmp_setup(void)
{
	strcpy(tmpdir, "/tmp/kurier-verp-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* rm_tree - remove the files in dir (one level) and dir itself. */
static void
rm_tree(const char *dir)
{
	char p[512];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		if (unlink(p) != 0)
			rm_tree(p);
	}
	closedir(d);
	rmdir(dir);
}

static void
tmp_teardown(void)
{
	rm_tree(tmpdir);
}

/* dir_entries - how many names dir holds, . and .. aside. */
static int
dir_entries(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
read_file(const char *path, uint8_t *buf, size_t want)
{
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, buf, want + 1), (ssize_t)want);
	close(fd);
}

static void
write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

START_TEST(test_key_create_and_reuse)
{
	uint8_t k1[VERP_KEY_LEN], k2[VERP_KEY_LEN], onfile[VERP_KEY_LEN];
	uint8_t zero[VERP_KEY_LEN] = { 0 };
	char err[256], path[128];
	struct stat st;
	mode_t old;

	snprintf(path, sizeof path, "%s/verp.key", tmpdir);
	/* Even with umask 0 the file is created 0600. */
	old = umask(0);
	ck_assert_int_eq(verp_load_key("", tmpdir, k1, err, sizeof err), 0);
	umask(old);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(st.st_size, VERP_KEY_LEN);
	read_file(path, onfile, VERP_KEY_LEN);
	ck_assert_mem_eq(onfile, k1, VERP_KEY_LEN);
	ck_assert(memcmp(k1, zero, VERP_KEY_LEN) != 0);
	/* No temporary file is left behind. */
	ck_assert_int_eq(dir_entries(tmpdir), 1);

	/* A second load reads the same key; NULL conf_secret is "". */
	ck_assert_int_eq(verp_load_key(NULL, tmpdir, k2, err, sizeof err), 0);
	ck_assert_mem_eq(k1, k2, VERP_KEY_LEN);

	/* Another data_dir gets another key. */
	char other[80];

	snprintf(other, sizeof other, "%s/other", tmpdir);
	ck_assert_int_eq(mkdir(other, 0700), 0);
	ck_assert_int_eq(verp_load_key("", other, k2, err, sizeof err), 0);
	ck_assert(memcmp(k1, k2, VERP_KEY_LEN) != 0);
}
END_TEST

START_TEST(test_key_file_refused)
{
	uint8_t k[VERP_KEY_LEN], buf[64] = { 1 };
	char err[256], path[128], sub[128];

	snprintf(path, sizeof path, "%s/verp.key", tmpdir);
	/* Readable by others. */
	write_file(path, buf, VERP_KEY_LEN, 0644);
	ck_assert_int_eq(verp_load_key("", tmpdir, k, err, sizeof err), -EPERM);
	ck_assert_msg(strstr(err, path) != NULL && strstr(err, "644") != NULL, "%s", err);
	/* Too short, too long, empty. */
	write_file(path, buf, VERP_KEY_LEN - 1, 0600);
	ck_assert_int_eq(verp_load_key("", tmpdir, k, err, sizeof err), -EINVAL);
	ck_assert_msg(strstr(err, path) != NULL && strstr(err, "31 bytes") != NULL,
	    "%s", err);
	write_file(path, buf, VERP_KEY_LEN + 1, 0600);
	ck_assert_int_eq(verp_load_key("", tmpdir, k, err, sizeof err), -EINVAL);
	ck_assert_msg(strstr(err, path) != NULL, "%s", err);
	write_file(path, buf, 0, 0600);
	ck_assert_int_eq(verp_load_key("", tmpdir, k, err, sizeof err), -EINVAL);
	/* Not a regular file. */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_lt(verp_load_key("", tmpdir, k, err, sizeof err), 0);
	ck_assert_msg(strstr(err, path) != NULL, "%s", err);
	ck_assert_int_eq(rmdir(path), 0);
	/* A symbolic link is not followed. */
	snprintf(sub, sizeof sub, "%s/real", tmpdir);
	write_file(sub, buf, VERP_KEY_LEN, 0600);
	ck_assert_int_eq(symlink(sub, path), 0);
	ck_assert_int_lt(verp_load_key("", tmpdir, k, err, sizeof err), 0);
	ck_assert_msg(strstr(err, path) != NULL, "%s", err);
	ck_assert_int_eq(unlink(path), 0);
	/* A data_dir that does not exist: the error names the path. */
	snprintf(sub, sizeof sub, "%s/missing", tmpdir);
	ck_assert_int_eq(verp_load_key("", sub, k, err, sizeof err), -ENOENT);
	ck_assert_msg(strstr(err, sub) != NULL && strstr(err, "No such file") != NULL,
	    "%s", err);
	/* A correct file is then read as is. */
	for (int i = 0; i < VERP_KEY_LEN; i++)
		buf[i] = (uint8_t)(0xa0 + i);
	snprintf(sub, sizeof sub, "%s/real", tmpdir);
	ck_assert_int_eq(unlink(sub), 0);
	write_file(path, buf, VERP_KEY_LEN, 0600);
	ck_assert_int_eq(verp_load_key("", tmpdir, k, err, sizeof err), 0);
	ck_assert_mem_eq(k, buf, VERP_KEY_LEN);
}
END_TEST

/*
 * Several processes load the key from one fresh data_dir at the same
 * moment (released together through a pipe): all get one key, the one
 * on file, and no temporary file remains.  Repeated to catch the race.
 */
START_TEST(test_key_concurrent_creators)
{
	enum { NPROC = 6, ROUNDS = 15 };

	for (int round = 0; round < ROUNDS; round++) {
		uint8_t keys[NPROC][VERP_KEY_LEN], onfile[VERP_KEY_LEN];
		int go[2], res[NPROC][2];
		pid_t pids[NPROC];
		char dir[128], path[160];

		snprintf(dir, sizeof dir, "%s/r%d", tmpdir, round);
		ck_assert_int_eq(mkdir(dir, 0700), 0);
		ck_assert_int_eq(pipe(go), 0);
		for (int i = 0; i < NPROC; i++) {
			ck_assert_int_eq(pipe(res[i]), 0);
			pids[i] = fork();
			ck_assert_int_ge(pids[i], 0);
			if (pids[i] == 0) {
				uint8_t k[VERP_KEY_LEN];
				char err[256], c;

				close(go[1]);
				close(res[i][0]);
				/* Wait until the parent closes its end: all start together. */
				if (read(go[0], &c, 1) != 0)
					_exit(3);
				if (verp_load_key("", dir, k, err, sizeof err) != 0)
					_exit(2);
				if (write(res[i][1], k, sizeof k) != (ssize_t)sizeof k)
					_exit(4);
				_exit(0);
			}
			close(res[i][1]);
		}
		close(go[0]);
		close(go[1]);
		for (int i = 0; i < NPROC; i++) {
			int status;

			ck_assert_int_eq(read(res[i][0], keys[i], VERP_KEY_LEN), VERP_KEY_LEN);
			close(res[i][0]);
			ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
			ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		}
		snprintf(path, sizeof path, "%s/verp.key", dir);
		read_file(path, onfile, VERP_KEY_LEN);
		for (int i = 0; i < NPROC; i++)
			ck_assert_mem_eq(keys[i], onfile, VERP_KEY_LEN);
		ck_assert_int_eq(dir_entries(dir), 1);
	}
}
END_TEST

START_TEST(test_conf_secret)
{
	uint8_t k[VERP_KEY_LEN], want[VERP_KEY_LEN], raw[48];
	char err[256], hex[200], b64[100];

	for (int i = 0; i < VERP_KEY_LEN; i++)
		want[i] = (uint8_t)(i * 7 + 3);
	for (int i = 0; i < VERP_KEY_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", want[i]);
	/* 64 hex digits: the key itself; upper case too.  No file is made. */
	ck_assert_int_eq(verp_load_key(hex, tmpdir, k, err, sizeof err), 0);
	ck_assert_mem_eq(k, want, VERP_KEY_LEN);
	for (char *p = hex; *p != '\0'; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 32);
	ck_assert_int_eq(verp_load_key(hex, tmpdir, k, err, sizeof err), 0);
	ck_assert_mem_eq(k, want, VERP_KEY_LEN);
	ck_assert_int_eq(dir_entries(tmpdir), 0);

	/* Base64 of the same 32 bytes (44 characters, one '='). */
	ck_assert_int_eq(EVP_EncodeBlock((unsigned char *)b64, want, VERP_KEY_LEN), 44);
	ck_assert_int_eq(verp_load_key(b64, NULL, k, err, sizeof err), 0);
	ck_assert_mem_eq(k, want, VERP_KEY_LEN);

	/* 48 bytes, in hex and base64: SHA-256 of them. */
	for (int i = 0; i < 48; i++)
		raw[i] = (uint8_t)(255 - i);
	SHA256(raw, sizeof raw, want);
	for (int i = 0; i < 48; i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	ck_assert_int_eq(verp_load_key(hex, NULL, k, err, sizeof err), 0);
	ck_assert_mem_eq(k, want, VERP_KEY_LEN);
	ck_assert_int_eq(EVP_EncodeBlock((unsigned char *)b64, raw, 48), 64);
	ck_assert_int_eq(verp_load_key(b64, NULL, k, err, sizeof err), 0);
	ck_assert_mem_eq(k, want, VERP_KEY_LEN);

	/* 33 bytes in base64 (two '='): also hashed. */
	SHA256(raw, 33, want);
	ck_assert_int_eq(EVP_EncodeBlock((unsigned char *)b64, raw, 33), 44);
	ck_assert_int_eq(verp_load_key(b64, NULL, k, err, sizeof err), 0);
	ck_assert_mem_eq(k, want, VERP_KEY_LEN);

	/* Too short: 31 bytes of hex, 16 bytes of base64. */
	hex[62] = '\0';
	ck_assert_int_eq(verp_load_key(hex, NULL, k, err, sizeof err), -EINVAL);
	ck_assert_msg(strstr(err, "verp_secret") != NULL && strstr(err, "31 bytes"),
	    "%s", err);
	ck_assert_int_eq(EVP_EncodeBlock((unsigned char *)b64, raw, 16), 24);
	ck_assert_int_eq(verp_load_key(b64, NULL, k, err, sizeof err), -EINVAL);
	ck_assert_msg(strstr(err, "16 bytes") != NULL, "%s", err);

	/* Neither hex nor base64. */
	static const char *const bad[] = {
		"not a secret",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde.",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", /* unpadded */
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=AAAA",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh=8",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd-_8=",
	};
	for (size_t i = 0; i < NELEM(bad); i++) {
		ck_assert_msg(verp_load_key(bad[i], NULL, k, err, sizeof err) == -EINVAL,
		    "%s", bad[i]);
		ck_assert_msg(strstr(err, "verp_secret") != NULL, "%s", err);
	}
	ck_assert_int_eq(dir_entries(tmpdir), 0);
}
END_TEST

Suite *
verp_suite(void)
{
	Suite *s = suite_create("verp");
	TCase *tc = tcase_create("address");
	TCase *tk = tcase_create("key");

	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_mac_layout);
	tcase_add_test(tc, test_case_folded);
	tcase_add_test(tc, test_forged);
	tcase_add_test(tc, test_not_verp);
	tcase_add_test(tc, test_encode_errors);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tk, tmp_setup, tmp_teardown);
	tcase_add_test(tk, test_key_create_and_reuse);
	tcase_add_test(tk, test_key_file_refused);
	tcase_add_test(tk, test_key_concurrent_creators);
	tcase_add_test(tk, test_conf_secret);
	tcase_set_timeout(tk, 30);
	suite_add_tcase(s, tk);
	return s;
}
