/*
 * check_main - run every policy suite; exit 0 only when all pass.
 *
 * The check and policy suites run in this process unless CK_FORK is set
 * (LeakSanitizer then checks the whole run at exit); the auth suite runs
 * as check_auth.c sets it up.
 */
#include <stdlib.h>

#include "tests/policy/suites.h"

int
main(void)
{
	static Suite *(*const suites[])(void) = {
		check_suite,
		policy_suite,
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
	if (check_auth_main() != EXIT_SUCCESS)
		failed++;
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
