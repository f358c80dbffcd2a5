/*
 * qload - enqueue test messages through the queue API and print the id
 * of every message the queue acknowledged, one per line, as soon as the
 * acknowledgement arrives.  Keeps going through Redis outages (a refused
 * or failed enqueue is tried again) until every message is acknowledged
 * or the deadline passes.
 *
 *   qload -c FILE -n COUNT [-r RCPT]... [-s SIZE] [-p PARALLEL]
 *         [-b] [-d SECONDS] [-q]
 *
 *   -r  recipient (repeatable; default user@example.net)
 *   -s  message size in bytes (default 5120)
 *   -p  enqueues in flight at once (default 50)
 *   -b  broadcast stream (default transactional)
 *   -d  give up after this many seconds (default 60)
 *   -q  do not print ids
 *
 * Exit status: 0 when all COUNT were acknowledged, 1 otherwise.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/config.h"
#include "core/log.h"
#include "core/rfc5322.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "queue/queue.h"

struct load {
	uv_loop_t *loop;
	struct queue *q;
	const char **rcpts;
	size_t nrcpt;
	char *msg;
	size_t len;
	size_t head_len;          /* the header section, empty line included */
	enum queue_stream stream;
	uint64_t want, acked, started, inflight, parallel, failures;
	bool quiet;
	uv_timer_t retry, deadline;
	bool closing;
};

static void pump(struct load *l);

static void
on_enqueued(void *arg, int status, const char *id)
{
	struct load *l = arg;

	l->inflight--;
	if (status == 0) {
		l->acked++;
		if (!l->quiet) {
			printf("%s\n", id);
			fflush(stdout);
		}
	} else {
		/* Not acknowledged: the message is sent again. */
		l->started--;
		l->failures++;
	}
	pump(l);
}

static void
on_retry(uv_timer_t *t)
{
	pump(t->data);
}

static void
on_closed(void *arg)
{
	struct load *l = arg;

	uv_close((uv_handle_t *)&l->retry, NULL);
	uv_close((uv_handle_t *)&l->deadline, NULL);
}

static void
finish(struct load *l)
{
	if (l->closing)
		return;
	l->closing = true;
	uv_timer_stop(&l->retry);
	uv_timer_stop(&l->deadline);
	queue_close(l->q, on_closed, l);
}

static void
on_deadline(uv_timer_t *t)
{
	struct load *l = t->data;

	fprintf(stderr, "qload: deadline: %llu of %llu acknowledged\n",
	    (unsigned long long)l->acked, (unsigned long long)l->want);
	finish(l);
}

static void
pump(struct load *l)
{
	if (l->closing)
		return;
	while (l->started < l->want && l->inflight < l->parallel) {
		struct envelope env;
		int rc;

		envelope_init(&env);
		env.stream = l->stream;
		envelope_set(&env.sender, "load@shop.example");
		envelope_set(&env.user, "qload");
		envelope_set(&env.client, "127.0.0.1");
		for (size_t i = 0; i < l->nrcpt; i++)
			if (envelope_add_rcpt(&env, l->rcpts[i], NULL, 0) < 0) {
				fprintf(stderr, "qload: bad recipient %s\n", l->rcpts[i]);
				exit(2);
			}
		rc = queue_enqueue(l->q, &env, l->msg, l->head_len, l->msg + l->head_len,
		    l->len - l->head_len, on_enqueued, l);
		envelope_free(&env);
		if (rc < 0) {
			/* Redis is down: try again shortly. */
			if (!uv_is_active((uv_handle_t *)&l->retry))
				uv_timer_start(&l->retry, on_retry, 50, 0);
			return;
		}
		l->started++;
		l->inflight++;
	}
	if (l->acked == l->want)
		finish(l);
}

static void
on_state(void *arg, bool up)
{
	if (up)
		pump(arg);
}

static char *
make_message(size_t size, size_t *len)
{
	struct buf b = BUF_INIT;
	static const char line[] = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n";

	buf_appends(&b, "From: Shop <load@shop.example>\r\nTo: <user@example.net>\r\n"
	    "Subject: load test\r\nMessage-ID: <load@shop.example>\r\n"
	    "Date: Sun, 22 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n");
	while (b.len + sizeof line - 1 <= size)
		buf_append(&b, line, sizeof line - 1);
	while (b.len + 2 < size)
		buf_appendc(&b, 'x');
	buf_appends(&b, "\r\n");
	return buf_steal(&b, len);
}

int
main(int argc, char **argv)
{
	struct load l = { 0 };
	struct config cfg;
	const char *path = NULL;
	char err[CONFIG_ERR_MAX];
	uint64_t size = 5120, deadline = 60;
	int c;

	l.rcpts = xcalloc((size_t)argc + 1, sizeof *l.rcpts);
	l.parallel = 50;
	while ((c = getopt(argc, argv, "c:n:r:s:p:bd:q")) != -1) {
		uint64_t v;

		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'r':
			l.rcpts[l.nrcpt++] = optarg;
			break;
		case 'b':
			l.stream = STREAM_BROADCAST;
			break;
		case 'q':
			l.quiet = true;
			break;
		case 'n':
		case 's':
		case 'p':
		case 'd':
			if (str_to_u64(optarg, &v) < 0 || v == 0) {
				fprintf(stderr, "qload: -%c needs a positive number\n", c);
				return 2;
			}
			if (c == 'n')
				l.want = v;
			else if (c == 's')
				size = v;
			else if (c == 'p')
				l.parallel = v;
			else
				deadline = v;
			break;
		default:
			fprintf(stderr, "usage: qload -c FILE -n COUNT [-r RCPT]... [-s SIZE] [-p PARALLEL] [-b] [-d SECONDS] [-q]\n");
			return 2;
		}
	}
	if (path == NULL || l.want == 0) {
		fprintf(stderr, "qload: -c FILE and -n COUNT are required\n");
		return 2;
	}
	if (config_load(&cfg, path, err, sizeof err) < 0) {
		fprintf(stderr, "qload: %s\n", err);
		return 2;
	}
	log_set_level(LOG_WARN);
	if (l.nrcpt == 0)
		l.rcpts[l.nrcpt++] = "user@example.net";
	l.msg = make_message((size_t)size, &l.len);
	l.head_len = rfc5322_head_len(l.msg, l.len);
	l.loop = uv_default_loop();
	uv_timer_init(l.loop, &l.retry);
	uv_timer_init(l.loop, &l.deadline);
	l.retry.data = l.deadline.data = &l;
	uv_timer_start(&l.deadline, on_deadline, deadline * 1000, 0);
	queue_open(&l.q, l.loop, &cfg, "qload");
	queue_on_state(l.q, on_state, &l);
	uv_run(l.loop, UV_RUN_DEFAULT);
	uv_loop_close(l.loop);
	free(l.msg);
	free(l.rcpts);
	if (l.failures > 0)
		fprintf(stderr, "qload: %llu enqueues failed and were sent again\n",
		    (unsigned long long)l.failures);
	return l.acked == l.want ? 0 : 1;
}
