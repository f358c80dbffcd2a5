/*
 * check_main - run every delivery suite; exit 0 only when all pass.
 *
 * As in the unit runner, tests run in this one process unless CK_FORK
 * is set (LeakSanitizer then checks the whole run at exit).
 */
#include <stdlib.h>

#include "tests/deliver/suites.h"

int
main(void)
{
	static Suite *(*const suites[])(void) = {
		verp_suite,
		dest_suite,
		smtpreply_suite,
		dns_suite,
		route_suite,
		spfcheck_suite,
		dkimsign_suite,
		smtpc_suite,
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
