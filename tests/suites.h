/*
 * suites - every Check suite of kurier, one per module, grouped by the
 * source folder they test.  tests/check.c is the one runner: it runs the
 * groups named on its command line (all of them without arguments).
 * Check owns suite_* and tcase_*, hence the <module>_suite names.
 *
 * core and relay suites are hermetic: no network, no Redis, temporary
 * files only under a mkdtemp() directory that the test removes.  queue,
 * policy and the forked mailbox suites (store, watch, report) use the
 * Redis named by KURIER_TEST_REDIS (host:port); dsn is pure;
 * DNS-using suites start their own dnsmasq (tests/dnsmasq.h).
 */
#ifndef KURIER_TESTS_SUITES_H
#define KURIER_TESTS_SUITES_H

#include <check.h>

/* core/ */
Suite *buf_suite(void);
Suite *config_suite(void);
Suite *config_value_suite(void);
Suite *conn_suite(void);
Suite *file_suite(void);
Suite *hash_suite(void);
Suite *ipcount_suite(void);
Suite *log_suite(void);
Suite *mailaddr_suite(void);
Suite *rdb_suite(void);
Suite *sasl_suite(void);
Suite *str_suite(void);

/* queue/ */
Suite *envelope_suite(void);
Suite *qid_suite(void);
Suite *queue_suite(void);
Suite *queue_events_suite(void);
Suite *schedule_suite(void);
Suite *verp_suite(void);

/* policy/ */
Suite *auth_suite(void);
Suite *check_suite(void);
Suite *dest_suite(void);
Suite *dkimverify_suite(void);
Suite *policy_suite(void);
Suite *spfcheck_suite(void);

/* relay/ */
Suite *session_suite(void);
Suite *smtp_data_suite(void);
Suite *smtp_parse_suite(void);

/* deliver/ */
Suite *dkimsign_suite(void);
Suite *dns_suite(void);
Suite *outcome_suite(void);
Suite *route_suite(void);
Suite *smtpc_suite(void);
Suite *smtpreply_suite(void);

/* mailbox/ */
Suite *report_suite(void);
Suite *store_suite(void);
Suite *ingest_suite(void);
Suite *watch_suite(void);
Suite *bounce_suite(void);
Suite *dsn_suite(void);
Suite *pop3_parse_suite(void);
Suite *imap_parse_suite(void);
Suite *imap_mime_suite(void);

/*
 * unit_child_status - run fn(arg) in a child process and return its
 * waitpid() status, for code that must exit or abort.  fn must not use
 * ck_assert (a failure would unwind into the child's copy of the runner);
 * if it returns, the child exits 0.
 */
int unit_child_status(void (*fn)(void *), void *arg);

/*
 * unit_pool_fresh - checked fixture for forked suites: start libuv's
 * thread pool in the test's own process.  At exit libuv 1.44 joins the
 * pool's threads; in a process forked from a runner whose in-process
 * suites had started the pool, those are the parent's (which the child
 * does not have) unless the child started a pool of its own.  The
 * runner forks its suites before any in-process one starts the pool;
 * this fixture holds even if that order changes.
 */
void unit_pool_fresh(void);

#endif
