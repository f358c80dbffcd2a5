/*
 * test_file - core/file: secret files are read whole when only their
 * owner can read them, and refused with a precise reason otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "tests/suites.h"

static char tmpdir[256];

static void
tmpdir_setup(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof tmpdir, "%s/kurier-file-XXXXXX",
	    base != NULL && base[0] != '\0' ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		ck_abort_msg("mkdtemp %s: %s", tmpdir, strerror(errno));
}

static void
tmpdir_teardown(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	char path[sizeof tmpdir + 256];

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", tmpdir, de->d_name);
		if (unlink(path) != 0)
			rmdir(path);
	}
	closedir(d);
	rmdir(tmpdir);
}

/* put - write len bytes to tmpdir/name with mode; path gets its name. */
static void
put(const char *name, const void *data, size_t len, mode_t mode, char *path,
    size_t size)
{
	int fd;

	snprintf(path, size, "%s/%s", tmpdir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

START_TEST(test_reads_owner_only_file)
{
	static const char key[] = "k\0e\ny";  /* binary: NUL and newline kept */
	struct file_secret s = { (char *)1, 99 };
	char path[384], err[1024] = "";

	put("key", key, sizeof key - 1, 0600, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 64, 0, err, sizeof err), 0);
	ck_assert_str_eq(err, "");
	ck_assert_uint_eq(s.len, sizeof key - 1);
	ck_assert_mem_eq(s.data, key, sizeof key - 1);
	ck_assert_int_eq(s.data[s.len], '\0');
	file_secret_free(&s);
	ck_assert_ptr_null(s.data);
	ck_assert_uint_eq(s.len, 0);
	file_secret_free(&s);   /* twice: harmless */
	file_secret_free(NULL);

	/* Owner read-only passes too. */
	put("ro", "x", 1, 0400, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 64, 0, err, sizeof err), 0);
	file_secret_free(&s);
}
END_TEST

START_TEST(test_mode_refused)
{
	struct file_secret s;
	char path[384], err[1024], want[1024];

	put("open.key", "secret", 6, 0644, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 64, 0, err, sizeof err), -EPERM);
	snprintf(want, sizeof want,
	    "%s: mode 0644 lets group or others read the secret: chmod 600 %s", path, path);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_null(s.data);
	ck_assert_uint_eq(s.len, 0);

	/* Group read: refused by default, allowed by FILE_SECRET_GROUP_READ. */
	put("group.key", "secret", 6, 0640, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 64, 0, err, sizeof err), -EPERM);
	ck_assert_int_eq(file_read_secret(&s, path, 64, FILE_SECRET_GROUP_READ, err,
	    sizeof err), 0);
	ck_assert_str_eq(s.data, "secret");
	file_secret_free(&s);

	/* Group write and any bit for others stay refused with it. */
	put("gw.key", "secret", 6, 0660, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 64, FILE_SECRET_GROUP_READ, err,
	    sizeof err), -EPERM);
	snprintf(want, sizeof want,
	    "%s: mode 0660 lets others than its owner and group read the secret: chmod 600 %s",
	    path, path);
	ck_assert_str_eq(err, want);
	put("ox.key", "secret", 6, 0601, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 64, FILE_SECRET_GROUP_READ, err,
	    sizeof err), -EPERM);

	/* FILE_SECRET_ANY_MODE reads it whatever the mode; the other checks stay. */
	put("world.key", "public", 6, 0644, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 64, FILE_SECRET_ANY_MODE, err,
	    sizeof err), 0);
	ck_assert_str_eq(s.data, "public");
	file_secret_free(&s);
	ck_assert_int_eq(file_read_secret(&s, path, 3, FILE_SECRET_ANY_MODE, err,
	    sizeof err), -EFBIG);
}
END_TEST

START_TEST(test_missing_and_not_regular)
{
	struct file_secret s;
	char path[384], err[1024], want[1024];

	snprintf(path, sizeof path, "%s/absent.key", tmpdir);
	ck_assert_int_eq(file_read_secret(&s, path, 64, 0, err, sizeof err), -ENOENT);
	snprintf(want, sizeof want, "%s: cannot open: %s", path, strerror(ENOENT));
	ck_assert_str_eq(err, want);
	ck_assert_ptr_null(s.data);

	snprintf(path, sizeof path, "%s/dir", tmpdir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(file_read_secret(&s, path, 64, 0, err, sizeof err), -EINVAL);
	snprintf(want, sizeof want, "%s: not a regular file", path);
	ck_assert_str_eq(err, want);

	/* No room for a message: only the code. */
	ck_assert_int_eq(file_read_secret(&s, path, 64, 0, NULL, 0), -EINVAL);
}
END_TEST

START_TEST(test_size_cap)
{
	struct file_secret s;
	char path[384], err[1024], want[1024], big[4096];

	/* Exactly max bytes pass; one more is refused. */
	memset(big, 'z', sizeof big);
	put("max.key", big, 32, 0600, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 32, 0, err, sizeof err), 0);
	ck_assert_uint_eq(s.len, 32);
	file_secret_free(&s);
	put("over.key", big, 33, 0600, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 32, 0, err, sizeof err), -EFBIG);
	snprintf(want, sizeof want, "%s: larger than 32 bytes", path);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_null(s.data);

	/* Larger than the first read buffer: read whole. */
	put("big.key", big, sizeof big, 0600, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, sizeof big, 0, err, sizeof err), 0);
	ck_assert_uint_eq(s.len, sizeof big);
	ck_assert_mem_eq(s.data, big, sizeof big);
	file_secret_free(&s);
}
END_TEST

START_TEST(test_empty)
{
	struct file_secret s;
	char path[384], err[1024], want[1024];

	put("empty.key", "", 0, 0600, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 64, 0, err, sizeof err), -EINVAL);
	snprintf(want, sizeof want, "%s: empty", path);
	ck_assert_str_eq(err, want);
	/* A lone line end is empty once trimmed. */
	put("nl.key", "\n", 1, 0600, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 64, FILE_SECRET_TRIM, err, sizeof err),
	    -EINVAL);
	snprintf(want, sizeof want, "%s: empty", path);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_null(s.data);
}
END_TEST

START_TEST(test_trim)
{
	struct file_secret s;
	char path[384], err[1024];

	put("pw1", "hunter2\n", 8, 0600, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 7, FILE_SECRET_TRIM, err, sizeof err), 0);
	ck_assert_str_eq(s.data, "hunter2");
	ck_assert_uint_eq(s.len, 7);
	file_secret_free(&s);

	put("pw2", "hunter2\r\n", 9, 0600, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 7, FILE_SECRET_TRIM, err, sizeof err), 0);
	ck_assert_str_eq(s.data, "hunter2");
	file_secret_free(&s);

	/* One line end only; without the flag nothing is dropped. */
	put("pw3", "pw\n\n", 4, 0600, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 64, FILE_SECRET_TRIM, err, sizeof err), 0);
	ck_assert_str_eq(s.data, "pw\n");
	file_secret_free(&s);
	ck_assert_int_eq(file_read_secret(&s, path, 64, 0, err, sizeof err), 0);
	ck_assert_uint_eq(s.len, 4);
	file_secret_free(&s);

	/* The cap counts the secret, not its line end. */
	put("pw4", "hunter22\n", 9, 0600, path, sizeof path);
	ck_assert_int_eq(file_read_secret(&s, path, 7, FILE_SECRET_TRIM, err, sizeof err),
	    -EFBIG);
}
END_TEST

START_TEST(test_symlink)
{
	struct file_secret s;
	char path[384], link[384], err[1024], want[1024];

	put("target.key", "abc", 3, 0600, path, sizeof path);
	snprintf(link, sizeof link, "%s/link.key", tmpdir);
	ck_assert_int_eq(symlink(path, link), 0);
	ck_assert_int_eq(file_read_secret(&s, link, 64, 0, err, sizeof err), 0);
	ck_assert_str_eq(s.data, "abc");
	file_secret_free(&s);
	ck_assert_int_eq(file_read_secret(&s, link, 64, FILE_SECRET_NOFOLLOW, err,
	    sizeof err), -ELOOP);
	snprintf(want, sizeof want, "%s: a symbolic link: name the file itself", link);
	ck_assert_str_eq(err, want);
}
END_TEST

Suite *
file_suite(void)
{
	Suite *s = suite_create("file");
	TCase *tc = tcase_create("secret");

	tcase_add_checked_fixture(tc, tmpdir_setup, tmpdir_teardown);
	tcase_add_test(tc, test_reads_owner_only_file);
	tcase_add_test(tc, test_mode_refused);
	tcase_add_test(tc, test_missing_and_not_regular);
	tcase_add_test(tc, test_size_cap);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_trim);
	tcase_add_test(tc, test_symlink);
	suite_add_tcase(s, tc);
	return s;
}
