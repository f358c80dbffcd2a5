/*
 * conn_suite - the Check suite of core/conn, core/tlsctx and
 * core/listener (tests/unit/test_conn.c), until suites.h declares it.
 */
#ifndef KURIER_TESTS_UNIT_CONN_SUITE_H
#define KURIER_TESTS_UNIT_CONN_SUITE_H

#include <check.h>

Suite *conn_suite(void);

#endif
