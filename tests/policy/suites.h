/*
 * suites - the Check suites of the policy modules (policy/).
 *
 * check_main.c runs them in one binary: check (pure decisions), policy
 * (the Redis-backed module, against $KURIER_TEST_REDIS), then the auth
 * suite of check_auth.c, which is built with its main() renamed
 * check_auth_main().
 */
#ifndef KURIER_TESTS_POLICY_SUITES_H
#define KURIER_TESTS_POLICY_SUITES_H

#include <check.h>

Suite *check_suite(void);
Suite *policy_suite(void);
int check_auth_main(void);

#endif
