/*
 * check_main - run every unit suite; exit 0 only when all tests pass.
 *
 * Tests run in this one process unless CK_FORK is set in the
 * environment: a fork per test costs ~0.1 s under AddressSanitizer
 * (LeakSanitizer runs at each child's exit), which would make the run
 * take most of a minute.  Leaks are still caught, by LeakSanitizer at
 * exit, which then makes the exit status non-zero.  CK_FORK=yes isolates
 * each test when hunting a crash.  Code that must exit or abort runs
 * under unit_child_status().
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/suites.h"

int
unit_child_status(void (*fn)(void *), void *arg)
{
	pid_t pid;
	int status = 0;

	/* Unflushed output would be written twice. */
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

int
main(void)
{
	static Suite *(*const suites[])(void) = {
		buf_suite,
		str_suite,
		config_suite,
		log_suite,
		qid_suite,
		schedule_suite,
		envelope_suite,
		mailaddr_suite,
		smtp_parse_suite,
		smtp_data_suite,
		conn_suite,
	};
	SRunner *sr;
	int failed;

	sr = srunner_create(NULL);
	for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
		srunner_add_suite(sr, suites[i]());
	if (getenv("CK_FORK") == NULL)
		srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
