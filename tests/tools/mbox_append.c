/*
 * mbox_append - append message files to a user's folder through the
 * mailbox store (mailbox/store.h), one after another, and print one line
 * per file: "UIDVALIDITY UID FILE" when stored, "duplicate UID FILE"
 * when the dedup key was seen.  Bare LF line ends are stored as CRLF, as
 * a message received over SMTP would be.  For the e2e tests and the
 * bench (tests/bench/run-mailbox-bench.sh).
 *
 *   mbox_append -c CONF -u USER [-f FOLDER] [-F FLAGS] [-d DATE_MS]
 *               [-k DEDUP_KEY] [-q] FILE...
 *
 *   -f  folder (default INBOX; must exist unless INBOX)
 *   -F  flags, space-separated (default none)
 *   -d  internal date, ms since the epoch (default now)
 *   -k  dedup key (the same for every file: only the first is stored)
 *   -q  print nothing
 *
 * Exit status: 0 when every file was stored (or was a duplicate), 1
 * when one could not be read or stored, 2 for a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/str.h"
#include "mailbox/store.h"

struct run {
	uv_loop_t loop;
	struct mbox_store *st;
	struct mbox_append a;
	char **files;
	int nfiles, next;
	struct buf msg;
	bool quiet, up, closed, finishing;
	int status;
	uv_timer_t deadline;
};

static void next_file(struct run *r);

static void
on_closed(void *arg)
{
	((struct run *)arg)->closed = true;
}

static void
finish(struct run *r, int status)
{
	if (r->finishing)
		return;
	r->finishing = true;
	if (status != 0)
		r->status = status;
	uv_close((uv_handle_t *)&r->deadline, NULL);
	mbox_store_close(r->st, on_closed, r);
}

static void
on_deadline(uv_timer_t *t)
{
	struct run *r = t->data;

	fprintf(stderr, "mbox_append: no answer from Redis in time\n");
	finish(r, 1);
}

/* read_crlf - path into b, bare LF as CRLF; 0 or a negative errno. */
static int
read_crlf(const char *path, struct buf *b)
{
	FILE *f = fopen(path, "rb");
	int ch, prev = 0;

	if (f == NULL)
		return -errno;
	buf_reset(b);
	while ((ch = getc(f)) != EOF) {
		if (ch == '\n' && prev != '\r')
			buf_appendc(b, '\r');
		buf_appendc(b, (char)ch);
		prev = ch;
	}
	if (ferror(f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	return 0;
}

static void
on_appended(void *arg, int status, uint32_t uv, uint32_t uid)
{
	struct run *r = arg;
	const char *file = r->files[r->next - 1];

	if (r->finishing)
		return;
	if (status == 0 && !r->quiet)
		printf("%u %u %s\n", (unsigned)uv, (unsigned)uid, file);
	else if (status == -EEXIST && !r->quiet)
		printf("duplicate %u %s\n", (unsigned)uid, file);
	else if (status < 0 && status != -EEXIST) {
		fprintf(stderr, "mbox_append: %s: %s\n", file, strerror(-status));
		finish(r, 1);
		return;
	}
	next_file(r);
}

static void
next_file(struct run *r)
{
	int rc;

	if (r->next == r->nfiles) {
		finish(r, 0);
		return;
	}
	if ((rc = read_crlf(r->files[r->next], &r->msg)) < 0) {
		fprintf(stderr, "mbox_append: cannot read %s: %s\n", r->files[r->next],
		    strerror(-rc));
		finish(r, 1);
		return;
	}
	r->next++;
	r->a.data = r->msg.data;
	r->a.len = r->msg.len;
	if ((rc = mbox_append(r->st, &r->a, on_appended, r)) < 0) {
		fprintf(stderr, "mbox_append: %s: %s\n", r->files[r->next - 1], strerror(-rc));
		finish(r, 1);
	}
}

static void
on_state(void *arg, bool up)
{
	struct run *r = arg;

	if (up && !r->up) {
		r->up = true;
		next_file(r);
	}
}

static int
usage(void)
{
	fprintf(stderr, "usage: mbox_append -c CONF -u USER [-f FOLDER] [-F FLAGS] [-d DATE_MS] "
	                "[-k DEDUP_KEY] [-q] FILE...\n");
	return 2;
}

int
main(int argc, char **argv)
{
	struct run r;
	struct config cfg;
	const char *conf = NULL;
	char err[CONFIG_ERR_MAX];
	uint64_t date;
	int opt;

	memset(&r, 0, sizeof r);
	r.a.folder = "INBOX";
	r.a.flags = "";
	while ((opt = getopt(argc, argv, "c:u:f:F:d:k:q")) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			break;
		case 'u':
			r.a.user = optarg;
			break;
		case 'f':
			r.a.folder = optarg;
			break;
		case 'F':
			r.a.flags = optarg;
			break;
		case 'd':
			if (str_to_u64(optarg, &date) < 0)
				return usage();
			r.a.internal_date_ms = date;
			break;
		case 'k':
			r.a.dedup_key = optarg;
			break;
		case 'q':
			r.quiet = true;
			break;
		default:
			return usage();
		}
	}
	if (conf == NULL || r.a.user == NULL || optind == argc)
		return usage();
	r.files = argv + optind;
	r.nfiles = argc - optind;
	if (config_load(&cfg, conf, err, sizeof err) < 0) {
		fprintf(stderr, "mbox_append: %s\n", err);
		return 1;
	}
	log_set_level(LOG_WARN);
	uv_loop_init(&r.loop);
	buf_init(&r.msg);
	if (mbox_store_open(&r.st, &r.loop, &cfg, err, sizeof err) < 0) {
		fprintf(stderr, "mbox_append: %s\n", err);
		return 1;
	}
	mbox_on_state(r.st, on_state, &r);
	uv_timer_init(&r.loop, &r.deadline);
	r.deadline.data = &r;
	uv_timer_start(&r.deadline, on_deadline, 120000, 0);
	uv_run(&r.loop, UV_RUN_DEFAULT);
	uv_loop_close(&r.loop);
	buf_free(&r.msg);
	config_free(&cfg);
	return r.status;
}
