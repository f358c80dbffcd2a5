/*
 * logcap - capture what core/log writes, for tests that assert on it.
 *
 * logcap_setup() points the log at a pipe and sets the level to
 * LOG_INFO; logcap_teardown() puts stderr and LOG_INFO back and closes
 * the pipe.  Both fit tcase_add_checked_fixture().  One capture at a
 * time (the log itself is process-wide).
 */
#ifndef KURIER_TESTS_LOGCAP_H
#define KURIER_TESTS_LOGCAP_H

#include <stddef.h>

void logcap_setup(void);
void logcap_teardown(void);
/*
 * logcap_read - everything logged since the last call (at most size - 1
 * bytes), NUL-terminated into dst; returns its length.  Never blocks.
 */
size_t logcap_read(char *dst, size_t size);

#endif
