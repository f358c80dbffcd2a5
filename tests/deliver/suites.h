/*
 * suites - the Check suites of the delivery modules (deliver/).
 *
 * Each tests/deliver/test_<module>.c defines <module>_suite(); check_main.c
 * runs them all.  The suites run real peers on loopback where a module
 * talks to one (dnsmasq for DNS and SPF, an in-process SMTP server for the
 * client); each starts what it needs on free ports and stops it by PID.
 */
#ifndef KURIER_TESTS_DELIVER_SUITES_H
#define KURIER_TESTS_DELIVER_SUITES_H

#include <check.h>

Suite *dest_suite(void);
Suite *dns_suite(void);
Suite *route_suite(void);
Suite *smtpreply_suite(void);
Suite *smtpc_suite(void);
Suite *dkimsign_suite(void);
Suite *spfcheck_suite(void);
Suite *verp_suite(void);

#endif
