/*
 * sign - DKIM signing of the delivery workers on libuv's thread pool
 * (deliver_int.h): one signing per message even when several of its jobs
 * are in flight, at most SIGN_PARALLEL at once; the signatures are kept
 * with the message in the queue for later attempts.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "deliver/deliver_int.h"

static void sign_done(uv_work_t *req, int status);

/* Which algorithm a DKIM-Signature header uses, from its a= tag. */
static unsigned
sig_algo(const char *h, size_t n)
{
	for (size_t i = 0; i + 2 < n; i++) {
		if ((i == 0 || h[i - 1] == ';' || h[i - 1] == ' ' || h[i - 1] == '\t' ||
		    h[i - 1] == '\n') && h[i] == 'a' && h[i + 1] == '=') {
			const char *v = h + i + 2;
			size_t rest = n - i - 2;

			if (rest >= 10 && strncasecmp(v, "rsa-sha256", 10) == 0)
				return CONFIG_DKIM_RSA;
			if (rest >= 14 && strncasecmp(v, "ed25519-sha256", 14) == 0)
				return CONFIG_DKIM_ED25519;
			return 0;
		}
	}
	return 0;
}

/*
 * pick_sigs - the signature headers of all (one or more "DKIM-Signature:"
 * header fields, CRLF-folded) that this destination takes.
 */
static void
pick_sigs(struct task *t, const char *all, size_t len)
{
	unsigned want = t->dest.dkim;
	size_t i = 0;

	buf_reset(&t->sigs);
	while (i < len) {
		size_t j = i;

		/* A field ends at a CRLF not followed by white space. */
		for (;;) {
			const char *nl = memchr(all + j, '\n', len - j);

			if (nl == NULL) {
				j = len;
				break;
			}
			j = (size_t)(nl - all) + 1;
			if (j >= len || (all[j] != ' ' && all[j] != '\t'))
				break;
		}
		if (sig_algo(all + i, j - i) & want)
			buf_append(&t->sigs, all + i, j - i);
		i = j;
	}
}

static void
on_sig_kept(void *arg, int status)
{
	char *id = arg;

	if (status < 0 && status != -ESTALE)
		log_warn("deliver", "dkim_keep_failed", "id=%s error=\"%s\" effect=\"signed again on the next attempt\"",
		    id, uv_strerror(status));
	free(id);
}

static void
sign_work(uv_work_t *req)
{
	struct signjob *sj = LINK_OWNER(req, struct signjob, req);
	const struct queue_job *job = sj->job;

	dkimsign_sign(sj->d->dkim, job->msg, job->head_len, job->msg_len, DKIMSIGN_ALL, &sj->res);
}

static void
task_after_sign(struct task *t)
{
	if (t->d->stopping) {
		task_release(t);
		return;
	}
	task_next_hop(t);
}

/* sign_next - start waiting signings while there is room. */
static void
sign_next(struct deliver *d)
{
	for (struct link *l = d->signing.next; l != &d->signing && d->nsigning < SIGN_PARALLEL;
	    l = l->next) {
		struct signjob *sj = LINK_OWNER(l, struct signjob, link);

		if (sj->started)
			continue;
		sj->started = true;
		d->nsigning++;
		if (uv_queue_work(d->loop, &sj->req, sign_work, sign_done) != 0) {
			sj->res.status = -EAGAIN;
			str_copy(sj->res.why, "thread pool refused the work", sizeof sj->res.why);
			sign_done(&sj->req, -EAGAIN);
			return;
		}
	}
}

static void
sign_done(uv_work_t *req, int status)
{
	struct signjob *sj = LINK_OWNER(req, struct signjob, req);
	struct deliver *d = sj->d;
	struct buf all = BUF_INIT;
	struct link *w;
	bool kept = false;
	char q[600];

	list_del(&sj->link);
	d->nsigning--;
	if (status == 0 && sj->res.status == 0) {
		for (size_t i = 0; i < sj->res.nsig; i++)
			buf_append(&all, sj->res.sig[i].header, strlen(sj->res.sig[i].header));
		log_info("deliver", "dkim_signed", "id=%s domain=%s signatures=%zu",
		    sj->id, log_quotes(q, sizeof q, sj->res.domain), sj->res.nsig);
	} else if (status == 0 && sj->res.status == -ENOENT) {
		log_info("deliver", "dkim_unsigned", "id=%s reason=%s", sj->id,
		    log_quotes(q, sizeof q, sj->res.why));
	} else {
		log_warn("deliver", "dkim_failed", "id=%s reason=%s effect=\"sent unsigned\"",
		    sj->id, log_quotes(q, sizeof q, status < 0 ? uv_strerror(status) : sj->res.why));
	}
	while ((w = list_pop(&sj->waiters)) != NULL) {
		struct task *t = LINK_OWNER(w, struct task, wait);

		if (all.len > 0) {
			pick_sigs(t, all.data, all.len);
			if (!kept && !d->stopping) {
				/* Kept once, by a job still leased. */
				if (queue_keep_sig(d->q, t->job, all.data, all.len, on_sig_kept,
				    xstrdup(t->job->id)) == 0)
					kept = true;
			}
		}
		task_after_sign(t);
	}
	buf_free(&all);
	dkimsign_result_free(&sj->res);
	free(sj);
	sign_next(d);
	deliver__maybe_stopped(d);
}

void
task_sign(struct task *t)
{
	struct deliver *d = t->d;
	struct signjob *sj;

	task_enter_state(t, T_SIGN);
	if (t->job->sig != NULL) {
		pick_sigs(t, t->job->sig, t->job->sig_len);
		task_after_sign(t);
		return;
	}
	if (d->dkim == NULL) {
		task_after_sign(t);
		return;
	}
	/* Another job of the same message is being signed: wait for it. */
	for (struct link *l = d->signing.next; l != &d->signing; l = l->next) {
		sj = LINK_OWNER(l, struct signjob, link);
		if (strcmp(sj->id, t->job->id) == 0) {
			list_push(&sj->waiters, &t->wait);
			return;
		}
	}
	sj = xcalloc(1, sizeof *sj);
	sj->d = d;
	sj->job = t->job;
	memcpy(sj->id, t->job->id, QID_SIZE);
	list_init(&sj->waiters);
	list_push(&sj->waiters, &t->wait);
	list_push(&d->signing, &sj->link);
	sign_next(d);
}
