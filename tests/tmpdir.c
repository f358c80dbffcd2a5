/*
 * tmpdir - per-test temporary directories.  See tmpdir.h.
 */
#include "tests/tmpdir.h"

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
tmpdir_make(char *dir, size_t size, const char *name)
{
	snprintf(dir, size, "/tmp/kurier-%s-XXXXXX", name);
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

void
tmpdir_remove(const char *dir)
{
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}
