/*
 * kurierctl_stats - kurierctl queue stats: the queue's counts and work
 * per destination (queue/queue.h), then throttled destinations and
 * policy refusals by rule (policy/policy.h).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/ctl.h"
#include "cmd/kurierctl_int.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "policy/policy.h"
#include "queue/queue.h"

#define STATS_DOMAIN_W 48

/* --- queue stats ------------------------------------------------------------------- */

static uint64_t
dest_work(const struct queue_dest_stats *d)
{
	return d->due + d->later + d->inflight;
}

static int
dest_cmp(const void *a, const void *b)
{
	const struct queue_dest_stats *x = *(const struct queue_dest_stats *const *)a;
	const struct queue_dest_stats *y = *(const struct queue_dest_stats *const *)b;
	uint64_t wx = dest_work(x), wy = dest_work(y);

	if (wx != wy)
		return wx > wy ? -1 : 1;
	if (x->stream != y->stream)
		return x->stream < y->stream ? -1 : 1;
	return strcmp(x->domain, y->domain);
}

static const char *
dest_stream(char code)
{
	switch (code) {
	case 't':
		return "transactional";
	case 'b':
		return "broadcast";
	default:
		return "-";
	}
}

static void
stats_print(struct ctl *c, const struct queue_stats *st)
{
	const struct queue_dest_stats **d;
	char keep[32], done[48];
	uint64_t maxv = 0;
	int w, dw = 6, nw[3] = { 7, 8, 9 };
	const struct {
		const char *section;  /* printed before the row */
		const char *name;
		uint64_t v;
	} rows[] = {
		{ "messages", "active", st->active },
		{ NULL, done, st->done },
		{ NULL, "corrupt", st->corrupt },
		{ NULL, "deliveries in flight", st->leased },
		{ "\ntotals since the queue was created", "enqueued", st->enqueued },
		{ NULL, "recipients", st->recipients },
		{ NULL, "delivered", st->delivered },
		{ NULL, "deferred attempts", st->deferred },
		{ NULL, "bounced", st->bounced },
		{ NULL, "suppressed", st->suppressed },
		{ NULL, "expired", st->expired },
		{ NULL, "deleted", st->deleted },
		{ NULL, "quarantined", st->quarantined },
	};

	snprintf(done, sizeof done, "done (kept %s)",
	    str_duration(keep, sizeof keep, c->cfg.queue.retention_ms));
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (rows[i].v > maxv)
			maxv = rows[i].v;
	w = ctl_digits(maxv);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		if (rows[i].section != NULL)
			printf("%s\n", rows[i].section);
		printf("  %-22s %*" PRIu64 "\n", rows[i].name, w, rows[i].v);
	}

	/* Destinations, most work first; column widths from the values. */
	d = xcalloc(st->ndest ? st->ndest : 1, sizeof *d);
	for (size_t i = 0; i < st->ndest; i++) {
		int dl = (int)strlen(ctl_esc(c, st->dest[i].domain, STATS_DOMAIN_W));

		d[i] = &st->dest[i];
		if (dl > dw)
			dw = dl;
		if (ctl_digits(d[i]->due) > nw[0])
			nw[0] = ctl_digits(d[i]->due);
		if (ctl_digits(d[i]->later) > nw[1])
			nw[1] = ctl_digits(d[i]->later);
		if (ctl_digits(d[i]->inflight) > nw[2])
			nw[2] = ctl_digits(d[i]->inflight);
	}
	qsort(d, st->ndest, sizeof *d, dest_cmp);
	printf("\ndestinations\n");
	if (st->ndest == 0)
		printf("  (none: nothing queued or in flight)\n");
	else
		printf("  %-*s  %-13s  %*s  %*s  %*s\n", dw, "DOMAIN", "STREAM", nw[0], "DUE NOW",
		    nw[1], "DEFERRED", nw[2], "IN FLIGHT");
	for (size_t i = 0; i < st->ndest; i++)
		printf("  %-*s  %-13s  %*" PRIu64 "  %*" PRIu64 "  %*" PRIu64 "\n", dw,
		    ctl_esc(c, d[i]->domain, STATS_DOMAIN_W), dest_stream(d[i]->stream),
		    nw[0], d[i]->due, nw[1], d[i]->later, nw[2], d[i]->inflight);
	free(d);
}

/* The refusals counted by rule in Redis (every node, since the data was made). */
static void
on_refusals(void *arg, int status, const struct policy_count *cnt, size_t n)
{
	struct ctl *c = arg;
	int rw = 4, nw = 1;

	if (c->finishing)
		return;
	if (status < 0) {
		ctl_call_failed(c, "queue stats", status);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(ctl_esc(c, cnt[i].rule, 0));

		if (l > rw)
			rw = l;
		if (ctl_digits(cnt[i].n) > nw)
			nw = ctl_digits(cnt[i].n);
	}
	printf("\npolicy refusals by rule\n");
	if (n == 0)
		printf("  (none)\n");
	for (size_t i = 0; i < n; i++)
		printf("  %-*s  %*" PRIu64 "\n", rw, ctl_esc(c, cnt[i].rule, 0), nw, cnt[i].n);
	ctl_finish(c, CTL_OK);
}

/*
 * throttle_state - "suspended until 2026-11-22 13:54:00 (in 4m30s)", or
 * "resumed at 2026-11-22 13:54:00" once the suspension has ended (the
 * level is remembered until backoff_max later).
 */
static const char *
throttle_state(const struct ctl *c, const struct policy_throttle *t, char *dst,
    size_t size)
{
	char tm[32], span[32];

	if (t->until_ms > c->now)
		snprintf(dst, size, "suspended until %s (in %s)",
		    ctl_fmt_time(tm, sizeof tm, t->until_ms),
		    ctl_fmt_span(span, sizeof span, t->until_ms - c->now));
	else
		snprintf(dst, size, "resumed at %s", ctl_fmt_time(tm, sizeof tm, t->until_ms));
	return dst;
}

/*
 * The throttled destination groups: suspended ones and those whose
 * suspension ended but whose level is still remembered.
 */
static void
on_throttles(void *arg, int status, const struct policy_throttle *t, size_t n)
{
	struct ctl *c = arg;
	char when[96];
	int gw = 5, sw = 11, rc;

	if (c->finishing)
		return;
	if (status < 0) {
		ctl_call_failed(c, "queue stats", status);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(ctl_esc(c, t[i].group, STATS_DOMAIN_W));

		if (l > gw)
			gw = l;
	}
	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(throttle_state(c, &t[i], when, sizeof when));

		if (l > sw)
			sw = l;
	}
	printf("\nthrottled destinations\n");
	if (n == 0)
		printf("  (none)\n");
	else
		printf("  %-*s  %5s  %-*s  %s\n", gw, "GROUP", "LEVEL", sw, "STATE (UTC)",
		    "REPLY");
	for (size_t i = 0; i < n; i++)
		printf("  %-*s  %5u  %-*s  %s\n", gw, ctl_esc(c, t[i].group, STATS_DOMAIN_W),
		    t[i].level, sw, throttle_state(c, &t[i], when, sizeof when),
		    t[i].reply[0] ? ctl_esc(c, t[i].reply, 0) : "-");
	fflush(stdout);
	if ((rc = policy_refusal_totals(c->p, on_refusals, c)) < 0)
		ctl_call_failed(c, "queue stats", rc);
	else
		ctl_wait(c);
}

static void
on_stats(void *arg, int status, const struct queue_stats *st)
{
	struct ctl *c = arg;
	int rc;

	if (c->finishing)
		return;
	if (status < 0) {
		ctl_call_failed(c, "queue stats", status);
		return;
	}
	stats_print(c, st);
	fflush(stdout);
	if ((rc = policy_throttle_list(c->p, on_throttles, c)) < 0)
		ctl_call_failed(c, "queue stats", rc);
	else
		ctl_wait(c);
}

int
run_stats(struct ctl *c)
{
	return queue_stats(c->q, on_stats, c);
}
