/*
 * logcap - capture core/log output through a pipe.  See logcap.h.
 */
#include "tests/logcap.h"

#include <check.h>
#include <fcntl.h>
#include <unistd.h>

#include "core/log.h"

static int pipefd[2] = { -1, -1 };

void
logcap_setup(void)
{
	ck_assert_int_eq(pipe(pipefd), 0);
	ck_assert_int_eq(fcntl(pipefd[0], F_SETFL, O_NONBLOCK), 0);
	log_set_fd(pipefd[1]);
	log_set_level(LOG_INFO);
}

void
logcap_teardown(void)
{
	log_set_fd(STDERR_FILENO);
	log_set_level(LOG_INFO);
	close(pipefd[0]);
	close(pipefd[1]);
	pipefd[0] = pipefd[1] = -1;
}

size_t
logcap_read(char *dst, size_t size)
{
	size_t len = 0;
	ssize_t n;

	while (len < size - 1 &&
	    (n = read(pipefd[0], dst + len, size - 1 - len)) > 0)
		len += (size_t)n;
	dst[len] = '\0';
	return len;
}
