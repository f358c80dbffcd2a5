/*
 * suites - the Check suites of the unit tests, one per module.
 *
 * Each tests/unit/test_<module>.c defines <module>_suite(); check_main.c
 * runs them all.  Check owns suite_* and tcase_*, hence the suffix.
 * Every test is hermetic: no network, no Redis, temporary files only
 * under a mkdtemp() directory that the test removes.
 */
#ifndef KURIER_TESTS_UNIT_SUITES_H
#define KURIER_TESTS_UNIT_SUITES_H

#include <check.h>

Suite *buf_suite(void);
Suite *config_suite(void);
Suite *envelope_suite(void);
Suite *log_suite(void);
Suite *qid_suite(void);
Suite *schedule_suite(void);
Suite *str_suite(void);
Suite *mailaddr_suite(void);
Suite *smtp_parse_suite(void);
Suite *smtp_data_suite(void);
Suite *conn_suite(void);

/*
 * unit_child_status - run fn(arg) in a child process and return its
 * waitpid() status, for code that must exit or abort.  fn must not use
 * ck_assert (a failure would unwind into the child's copy of the runner);
 * if it returns, the child exits 0.
 */
int unit_child_status(void (*fn)(void *), void *arg);

#endif
