/*
 * smtp_suites - the Check suites of the SMTP parsers: core/mailaddr,
 * relay/smtp_parse and relay/smtp_data.  check_main.c adds them next to
 * those of suites.h.
 */
#ifndef KURIER_TESTS_UNIT_SMTP_SUITES_H
#define KURIER_TESTS_UNIT_SMTP_SUITES_H

#include <check.h>

Suite *mailaddr_suite(void);
Suite *smtp_parse_suite(void);
Suite *smtp_data_suite(void);

#endif
