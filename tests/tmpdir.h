/*
 * tmpdir - a fresh directory under /tmp for one test or suite, and its
 * removal with everything in it.
 */
#ifndef KURIER_TESTS_TMPDIR_H
#define KURIER_TESTS_TMPDIR_H

#include <stddef.h>

/*
 * tmpdir_make - mkdtemp() "/tmp/kurier-<name>-XXXXXX" into dir (size
 * bytes); fails the test when it cannot.
 */
void tmpdir_make(char *dir, size_t size, const char *name);
/* tmpdir_remove - remove dir and all below it, links not followed. */
void tmpdir_remove(const char *dir);

#endif
