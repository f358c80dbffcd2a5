/*
 * test_outcome - deliver/outcome: one table of SMTP results and what each
 * means (scope x severity, which reply decides), and the set-up failures.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "deliver/outcome.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define NRCPT 3

/* R: a recipient's expected outcome (severity, cause, which reply: 'r' RCPT, 'd' data, '-' none, again). */
struct want_rcpt {
	enum outcome_severity sev;
	enum outcome_cause cause;
	char from;
	bool again;
};

static const struct txn_case {
	const char *name;
	int status;
	enum smtpc_stage stage;
	bool lost;
	int mail, data;
	int rcpt[NRCPT];
	size_t nrcpt;
	bool whole;                 /* one outcome for the transaction */
	enum outcome_scope scope;   /* when whole */
	enum outcome_severity sev;
	enum outcome_cause cause;
	struct want_rcpt r[NRCPT];
} txn_cases[] = {
	{ "all delivered", 0, SMTPC_DOT, false, 250, 250, { 250, 250 }, 2, false, 0, 0, 0,
	  { { OUTCOME_OK, OUTCOME_REPLY, 'd', false }, { OUTCOME_OK, OUTCOME_REPLY, 'd', false } } },
	{ "one unknown user", 0, SMTPC_DOT, false, 250, 250, { 250, 550, 251 }, 3, false, 0, 0, 0,
	  { { OUTCOME_OK, OUTCOME_REPLY, 'd', false }, { OUTCOME_PERMANENT, OUTCOME_REPLY, 'r', false },
	    { OUTCOME_OK, OUTCOME_REPLY, 'd', false } } },
	{ "greylisted recipient", 0, SMTPC_DOT, false, 250, 250, { 450, 250 }, 2, false, 0, 0, 0,
	  { { OUTCOME_TEMPORARY, OUTCOME_REPLY, 'r', false }, { OUTCOME_OK, OUTCOME_REPLY, 'd', false } } },
	{ "452 too many recipients", 0, SMTPC_DOT, false, 250, 250, { 250, 452 }, 2, false, 0, 0, 0,
	  { { OUTCOME_OK, OUTCOME_REPLY, 'd', false }, { OUTCOME_TEMPORARY, OUTCOME_REPLY, 'r', true } } },
	{ "data refused for good", 0, SMTPC_DOT, false, 250, 554, { 250, 250 }, 2, false, 0, 0, 0,
	  { { OUTCOME_PERMANENT, OUTCOME_REPLY, 'd', false }, { OUTCOME_PERMANENT, OUTCOME_REPLY, 'd', false } } },
	{ "data deferred", 0, SMTPC_DOT, false, 250, 451, { 250, 550 }, 2, false, 0, 0, 0,
	  { { OUTCOME_TEMPORARY, OUTCOME_REPLY, 'd', false }, { OUTCOME_PERMANENT, OUTCOME_REPLY, 'r', false } } },
	{ "no recipient accepted: no data", 0, SMTPC_RCPT, false, 250, 0, { 550, 450 }, 2, false, 0, 0, 0,
	  { { OUTCOME_PERMANENT, OUTCOME_REPLY, 'r', false }, { OUTCOME_TEMPORARY, OUTCOME_REPLY, 'r', false } } },
	{ "RCPT not answered (421 ended it)", -ECONNRESET, SMTPC_RCPT, true, 250, 0, { 250, 421, 0 }, 3, false, 0, 0, 0,
	  { { OUTCOME_TEMPORARY, OUTCOME_NO_DATA_REPLY, '-', false }, { OUTCOME_TEMPORARY, OUTCOME_REPLY, 'r', false },
	    { OUTCOME_TEMPORARY, OUTCOME_NO_RCPT_REPLY, '-', false } } },
	{ "MAIL refused for good", 0, SMTPC_MAIL, false, 550, 0, { 0, 0 }, 2, true,
	  OUTCOME_MESSAGE, OUTCOME_PERMANENT, OUTCOME_REPLY, { { 0 } } },
	{ "MAIL deferred", 0, SMTPC_MAIL, false, 451, 0, { 0 }, 1, true,
	  OUTCOME_MESSAGE, OUTCOME_TEMPORARY, OUTCOME_REPLY, { { 0 } } },
	{ "RSET refused", 0, SMTPC_RSET, false, 421, 0, { 0 }, 1, true,
	  OUTCOME_MESSAGE, OUTCOME_TEMPORARY, OUTCOME_REPLY, { { 0 } } },
	{ "failed before MAIL was answered", -ETIMEDOUT, SMTPC_MAIL, true, 0, 0, { 0 }, 1, true,
	  OUTCOME_MESSAGE, OUTCOME_TEMPORARY, OUTCOME_NO_MAIL, { { 0 } } },
	{ "lost during the data", -ECONNRESET, SMTPC_DATA, true, 250, 0, { 250 }, 1, true,
	  OUTCOME_SESSION, OUTCOME_TEMPORARY, OUTCOME_LOST, { { 0 } } },
	{ "lost waiting for the final reply", -ETIMEDOUT, SMTPC_DOT, true, 250, 0, { 250, 250 }, 2, true,
	  OUTCOME_SESSION, OUTCOME_TEMPORARY, OUTCOME_LOST, { { 0 } } },
};

START_TEST(txn_table)
{
	const struct txn_case *c = &txn_cases[_i];
	struct smtpc_reply rcpt[NRCPT];
	struct smtpc_result res;
	struct outcome all, out[NRCPT];
	bool whole;

	memset(&res, 0, sizeof res);
	memset(rcpt, 0, sizeof rcpt);
	memset(&all, 0xff, sizeof all);
	res.status = c->status;
	res.stage = c->stage;
	res.connection_lost = c->lost;
	res.mail.code = c->mail;
	res.data.code = c->data;
	for (size_t k = 0; k < NRCPT; k++)
		rcpt[k].code = c->rcpt[k];
	res.rcpt = rcpt;
	whole = outcome_txn(&res, c->nrcpt, &all, out);
	ck_assert_msg(whole == c->whole, "%s: whole", c->name);
	if (whole) {
		ck_assert_msg(all.scope == c->scope, "%s: scope %s", c->name, outcome_scope_name(all.scope));
		ck_assert_msg(all.severity == c->sev, "%s: severity %s", c->name,
		    outcome_severity_name(all.severity));
		ck_assert_msg(all.cause == c->cause, "%s: cause", c->name);
		ck_assert_msg(all.reply == (c->cause == OUTCOME_REPLY ? &res.mail : NULL), "%s: reply", c->name);
		return;
	}
	for (size_t k = 0; k < c->nrcpt; k++) {
		const struct want_rcpt *w = &c->r[k];
		const struct smtpc_reply *want = w->from == 'r' ? &rcpt[k] : w->from == 'd' ? &res.data : NULL;

		ck_assert_msg(out[k].scope == OUTCOME_RECIPIENT, "%s #%zu: scope", c->name, k);
		ck_assert_msg(out[k].severity == w->sev, "%s #%zu: severity %s", c->name, k,
		    outcome_severity_name(out[k].severity));
		ck_assert_msg(out[k].cause == w->cause, "%s #%zu: cause", c->name, k);
		ck_assert_msg(out[k].reply == want, "%s #%zu: reply", c->name, k);
		ck_assert_msg(out[k].again == w->again, "%s #%zu: again", c->name, k);
	}
}
END_TEST

static const struct setup_case {
	enum smtpc_stage stage;
	int code;
	enum outcome_severity sev;
} setup_cases[] = {
	{ SMTPC_CONNECT, 0, OUTCOME_TEMPORARY },
	{ SMTPC_GREETING, 554, OUTCOME_PERMANENT },
	{ SMTPC_GREETING, 421, OUTCOME_TEMPORARY },
	{ SMTPC_GREETING, 0, OUTCOME_TEMPORARY },
	{ SMTPC_EHLO, 550, OUTCOME_PERMANENT },
	{ SMTPC_EHLO, 421, OUTCOME_TEMPORARY },
	/* A refused STARTTLS or AUTH may pass at another server or later. */
	{ SMTPC_STARTTLS, 554, OUTCOME_TEMPORARY },
	{ SMTPC_TLS, 0, OUTCOME_TEMPORARY },
	{ SMTPC_AUTH, 535, OUTCOME_TEMPORARY },
};

START_TEST(setup_table)
{
	const struct setup_case *c = &setup_cases[_i];
	struct outcome o = outcome_setup(c->stage, c->code);

	ck_assert_int_eq(o.scope, OUTCOME_HOST);
	ck_assert_msg(o.severity == c->sev, "%s %d: %s", smtpc_stage_name(c->stage), c->code,
	    outcome_severity_name(o.severity));
	ck_assert_ptr_null(o.reply);
}
END_TEST

static const struct sev_case {
	int code;
	enum outcome_severity sev;
} sev_cases[] = {
	{ 0, OUTCOME_TEMPORARY }, { 199, OUTCOME_TEMPORARY }, { 200, OUTCOME_OK }, { 250, OUTCOME_OK },
	{ 299, OUTCOME_OK }, { 354, OUTCOME_TEMPORARY }, { 421, OUTCOME_TEMPORARY },
	{ 452, OUTCOME_TEMPORARY }, { 500, OUTCOME_PERMANENT }, { 554, OUTCOME_PERMANENT },
	{ 600, OUTCOME_TEMPORARY },
};

START_TEST(severity_table)
{
	ck_assert_int_eq(outcome_severity_of(sev_cases[_i].code), sev_cases[_i].sev);
}
END_TEST

/* The replies deliver/route.c and task.c make from kurier's own DNS answers. */
static const struct dns_case {
	const char *reply;
	bool suppresses;
} dns_cases[] = {
	{ "550 5.1.2 nx.test: domain does not exist (NXDOMAIN)", true },
	{ "550 5.1.2 a.test: no MX and no address records, it accepts no mail", true },
	{ "550 5.1.2 a.test: MX hosts have no address", true },
	{ "550 5.1.2 bad..test is not a valid domain name", true },
	{ "556 5.1.10 n.test has a null MX (RFC 7505), it accepts no mail", true },
	{ "550 5.4.4 relay host smarthost.test for a.test has no address (NXDOMAIN)", false },
	{ "554 5.4.6 mail for a.test loops back to this server (mx.test is its best MX)", false },
	{ "451 4.4.3 cannot look up a.test: connection refused", false },
	{ "", false },
	{ NULL, false },
};

START_TEST(dns_suppresses_table)
{
	const struct dns_case *c = &dns_cases[_i];

	ck_assert_msg(outcome_dns_suppresses(c->reply) == c->suppresses, "%s",
	    c->reply ? c->reply : "(null)");
}
END_TEST

START_TEST(names)
{
	ck_assert_str_eq(outcome_scope_name(OUTCOME_SESSION), "session");
	ck_assert_str_eq(outcome_scope_name(OUTCOME_RECIPIENT), "recipient");
	ck_assert_str_eq(outcome_severity_name(OUTCOME_PERMANENT), "permanent");
	ck_assert_str_eq(outcome_severity_name((enum outcome_severity)9), "?");
}
END_TEST

Suite *
outcome_suite(void)
{
	Suite *s = suite_create("outcome");
	TCase *tc = tcase_create("classify");

	tcase_add_loop_test(tc, txn_table, 0, NELEM(txn_cases));
	tcase_add_loop_test(tc, setup_table, 0, NELEM(setup_cases));
	tcase_add_loop_test(tc, severity_table, 0, NELEM(sev_cases));
	tcase_add_loop_test(tc, dns_suppresses_table, 0, NELEM(dns_cases));
	tcase_add_test(tc, names);
	suite_add_tcase(s, tc);
	return s;
}
