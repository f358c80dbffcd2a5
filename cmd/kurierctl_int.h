/*
 * kurierctl_int - the commands of kurierctl, one group per file, as
 * cmd/kurierctl.c's command table names them.  Used only by cmd/.
 *
 * Every check_*() reads a command's arguments (argv after the command's
 * name) into struct ctl and touches nothing else: CTL_OK to go on, else
 * the exit status, its message printed.  Every run_*() of a command
 * that needs Redis (struct command needs) starts its first call once
 * ctl_run() has every connection up, and returns 0 or a negative errno;
 * its last callback calls ctl_finish().  A run_*() without needs does
 * all its work and returns the exit status.
 */
#ifndef KURIER_CMD_KURIERCTL_INT_H
#define KURIER_CMD_KURIERCTL_INT_H

#include "cmd/ctl.h"

/* kurierctl_check.c: check (no network), dkim keygen, dkim record. */
int run_check(struct ctl *c);
int check_dkim(struct ctl *c, int argc, char **argv);
int run_dkim_keygen(struct ctl *c);
int run_dkim_record(struct ctl *c);

/* kurierctl_queue.c: queue list, show, retry, delete, flush. */
int check_list(struct ctl *c, int argc, char **argv);
int check_one_id(struct ctl *c, int argc, char **argv);
int check_retry(struct ctl *c, int argc, char **argv);
int check_flush(struct ctl *c, int argc, char **argv);
int run_list(struct ctl *c);
int run_show(struct ctl *c);
int run_retry(struct ctl *c);
int run_delete(struct ctl *c);

/* kurierctl_stats.c: queue stats (the queue's and policy's figures). */
int run_stats(struct ctl *c);

/* kurierctl_user.c: user add, passwd, del, list, show, set. */
int check_user_add(struct ctl *c, int argc, char **argv);
int check_user_name(struct ctl *c, int argc, char **argv);
int check_user_set(struct ctl *c, int argc, char **argv);
int run_user_add(struct ctl *c);
int run_user_passwd(struct ctl *c);
int run_user_del(struct ctl *c);
int run_user_list(struct ctl *c);
int run_user_set(struct ctl *c);
int run_user_show(struct ctl *c);

/* kurierctl_sup.c: suppression list, add, del, check. */
int check_sup(struct ctl *c, int argc, char **argv);
int run_sup_list(struct ctl *c);
int run_sup_add(struct ctl *c);
int run_sup_del(struct ctl *c);
int run_sup_check(struct ctl *c);

/* kurierctl_mailbox.c: mailbox list, show, stats. */
int check_mbox(struct ctl *c, int argc, char **argv);
int run_mbox_list(struct ctl *c);
int run_mbox_show(struct ctl *c);
int run_mbox_stats(struct ctl *c);
/* kurierctl_bounce.c: bounce parse (no Redis, no configuration). */
int check_bounce_parse(struct ctl *c, int argc, char **argv);
int run_bounce_parse(struct ctl *c);
/* kurierctl_bounce.c: bounce list (the bounce logs, policy/). */
int check_bounce_list(struct ctl *c, int argc, char **argv);
int run_bounce_list(struct ctl *c);

#endif
