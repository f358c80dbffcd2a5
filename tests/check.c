/*
 * check - the one Check runner: `check_kurier [GROUP...]` runs the suites
 * of each named group (core, queue, policy, relay, deliver, mailbox; all
 * without arguments) and exits 0 only when every test passed.
 *
 * Suites run in this one process unless CK_FORK is set in the
 * environment: a fork per test costs ~0.1 s under AddressSanitizer
 * (LeakSanitizer runs at each child's exit), which would make the run
 * take minutes.  Leaks are still caught, by LeakSanitizer at exit, which
 * then makes the exit status non-zero.  CK_FORK=yes isolates each test
 * when hunting a crash.  The suites marked forked below keep a child per
 * test as they always had: they talk to a shared Redis, and a failed
 * assertion must not leave a half-closed loop behind for the next test.
 * They run before the in-process suites (see main()).
 * Code that must exit or abort runs under unit_child_status().
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "tests/suites.h"

struct group_suite {
	const char *group;
	Suite *(*make)(void);
	bool fork;
};

static const struct group_suite all[] = {
	{ "core",    buf_suite,        false },
	{ "core",    str_suite,        false },
	{ "core",    hash_suite,       false },
	{ "core",    ipcount_suite,    false },
	{ "core",    file_suite,       false },
	{ "core",    config_suite,     false },
	{ "core",    config_value_suite, false },
	{ "core",    log_suite,        false },
	{ "core",    mailaddr_suite,   false },
	{ "core",    rdb_suite,        false },
	{ "core",    sasl_suite,       false },
	{ "core",    conn_suite,       false },
	{ "queue",   qid_suite,        false },
	{ "queue",   schedule_suite,   false },
	{ "queue",   envelope_suite,   false },
	{ "queue",   verp_suite,       false },
	{ "queue",   queue_suite,      true },
	{ "queue",   queue_events_suite, true },
	{ "policy",  check_suite,      false },
	{ "policy",  dest_suite,       false },
	{ "policy",  dkimverify_suite, false },
	{ "policy",  policy_suite,     false },
	{ "policy",  spfcheck_suite,   false },
	{ "policy",  auth_suite,       true },
	{ "relay",   smtp_parse_suite, false },
	{ "relay",   smtp_data_suite,  false },
	{ "relay",   session_suite,    false },
	{ "deliver", smtpreply_suite,  false },
	{ "deliver", dns_suite,        false },
	{ "deliver", route_suite,      false },
	{ "deliver", dkimsign_suite,   false },
	{ "deliver", smtpc_suite,      false },
	{ "deliver", outcome_suite,    false },
	{ "mailbox", store_suite,      true },
	{ "mailbox", ingest_suite,     true },
	{ "mailbox", watch_suite,      true },
	{ "mailbox", bounce_suite,     false },
	{ "mailbox", report_suite,     true },
	{ "mailbox", dsn_suite,        false },
	{ "mailbox", pop3_parse_suite, false },
	{ "mailbox", imap_parse_suite, false },
	{ "mailbox", imap_mime_suite,  false },
};

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

static void
pool_noop(uv_work_t *w)
{
	(void)w;
}

void
unit_pool_fresh(void)
{
	uv_loop_t loop;
	uv_work_t w;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(uv_queue_work(&loop, &w, pool_noop, NULL), 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}

static bool
wanted(const char *group, int argc, char **argv)
{
	if (argc < 2)
		return true;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], group) == 0)
			return true;
	return false;
}

/* run - one runner over the wanted suites whose fork flag is fork. */
static int
run(bool fork, int argc, char **argv)
{
	SRunner *sr = NULL;
	int failed;

	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		if (all[i].fork != fork || !wanted(all[i].group, argc, argv))
			continue;
		if (sr == NULL)
			sr = srunner_create(all[i].make());
		else
			srunner_add_suite(sr, all[i].make());
	}
	if (sr == NULL)
		return 0;
	if (!fork && getenv("CK_FORK") == NULL)
		srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed;
}

int
main(int argc, char **argv)
{
	int failed;

	for (int i = 1; i < argc; i++) {
		bool known = false;

		for (size_t j = 0; j < sizeof all / sizeof all[0]; j++)
			if (strcmp(argv[i], all[j].group) == 0)
				known = true;
		if (!known) {
			fprintf(stderr, "check_kurier: unknown group %s "
			    "(core, queue, policy, relay, deliver, mailbox)\n", argv[i]);
			return EXIT_FAILURE;
		}
	}
	/*
	 * Forked suites first.  A child forked after an in-process suite has
	 * started libuv's thread pool inherits the pool's state but not its
	 * threads, and libuv (1.44) joins those threads at the child's exit:
	 * it hangs or crashes there.  Before any in-process suite has run,
	 * the runner has no pool, so every child starts its own, whatever
	 * a future forked suite does.  The forked suites keep their
	 * unit_pool_fresh() fixture all the same: it holds if the order here
	 * ever changes.
	 */
	failed = run(true, argc, argv);
	failed += run(false, argc, argv);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
