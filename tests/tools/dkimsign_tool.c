/*
 * dkimsign_tool - deliver/dkimsign and deliver/dkimkey from the command
 * line, for the end-to-end tests and for measuring signing speed.
 *
 *   dkimsign_tool [-a rsa|ed25519|all] DATA_DIR DOMAIN SELECTOR[,SELECTOR...]
 *       < message > signed
 *     Loads DATA_DIR/dkim/DOMAIN.SELECTOR.key for each selector, signs
 *     the message on stdin (whose From domain must be DOMAIN to be
 *     signed) and prints the DKIM-Signature fields, then the message
 *     exactly as read.  The header section ends at the first empty line
 *     (CRLF or bare LF).
 *   dkimsign_tool keygen DATA_DIR DOMAIN SELECTOR rsa|ed25519
 *     Makes a key as kurierctl dkim keygen does; prints the TXT record.
 *   dkimsign_tool record DATA_DIR DOMAIN SELECTOR
 *     Prints the TXT record of an existing key.
 *   dkimsign_tool bench DATA_DIR DOMAIN SELECTOR[,...] THREADS SECONDS [SIZE]
 *     Signs one SIZE-byte message (default 5120) from THREADS threads for
 *     SECONDS seconds; prints messages per second, wall clock and per CPU
 *     second.
 *
 * Exit status: 0 done, 1 failed (the reason on stderr; unsigned is a
 * failure), 2 usage.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "deliver/dkimkey.h"
#include "deliver/dkimsign.h"

#define MSG_MAX (64u << 20)
#define SELECTORS_MAX 8

static void usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr,
	    "usage: dkimsign_tool [-a rsa|ed25519|all] DATA_DIR DOMAIN SELECTOR[,SELECTOR...] < message\n"
	    "       dkimsign_tool keygen DATA_DIR DOMAIN SELECTOR rsa|ed25519\n"
	    "       dkimsign_tool record DATA_DIR DOMAIN SELECTOR\n"
	    "       dkimsign_tool bench DATA_DIR DOMAIN SELECTOR[,...] THREADS SECONDS [SIZE]\n");
	exit(2);
}

/* Split list at commas into sel[]; returns the count. */
static size_t
split_selectors(char *list, const char *sel[SELECTORS_MAX])
{
	size_t n = 0;

	for (char *s = strtok(list, ","); s != NULL; s = strtok(NULL, ",")) {
		if (n == SELECTORS_MAX) {
			fprintf(stderr, "dkimsign_tool: at most %d selectors\n",
			    SELECTORS_MAX);
			exit(2);
		}
		sel[n++] = s;
	}
	return n;
}

static struct dkimsign *
load(const char *data_dir, const char *domain, char *list)
{
	const char *sel[SELECTORS_MAX];
	struct dkimsign *ds;
	char err[512];
	size_t n = split_selectors(list, sel);

	if (n == 0)
		usage();
	if (dkimsign_open(&ds, data_dir, err, sizeof err) < 0 ||
	    dkimsign_add_domain(ds, domain, sel, n, err, sizeof err) < 0) {
		fprintf(stderr, "dkimsign_tool: %s\n", err);
		exit(1);
	}
	return ds;
}

/* Where the header section ends, the empty line included (as the queue counts). */
static size_t
head_length(const char *m, size_t len)
{
	if (len >= 2 && m[0] == '\r' && m[1] == '\n')
		return 2;
	if (len >= 1 && m[0] == '\n')
		return 1;
	for (size_t i = 0; i + 1 < len; i++) {
		if (m[i] != '\n')
			continue;
		if (m[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && m[i + 1] == '\r' && m[i + 2] == '\n')
			return i + 3;
	}
	return len;
}

static int
cmd_sign(int argc, char **argv)
{
	unsigned algos = DKIMSIGN_ALL;
	struct dkimsign_result res;
	struct buf in = BUF_INIT;
	struct dkimsign *ds;
	size_t n;
	int c;

	while ((c = getopt(argc, argv, "a:")) != -1) {
		if (c != 'a')
			usage();
		if (strcmp(optarg, "rsa") == 0)
			algos = DKIMSIGN_RSA;
		else if (strcmp(optarg, "ed25519") == 0)
			algos = DKIMSIGN_ED25519;
		else if (strcmp(optarg, "all") == 0)
			algos = DKIMSIGN_ALL;
		else
			usage();
	}
	if (argc - optind != 3)
		usage();
	ds = load(argv[optind], argv[optind + 1], argv[optind + 2]);
	while ((n = fread(buf_reserve(&in, 65536), 1, 65536, stdin)) > 0) {
		buf_commit(&in, n);
		if (in.len > MSG_MAX) {
			fprintf(stderr, "dkimsign_tool: message over %u bytes\n",
			    MSG_MAX);
			return 1;
		}
	}
	dkimsign_sign(ds, in.data != NULL ? in.data : "",
	    head_length(in.data, in.len), in.len, algos, &res);
	if (res.status < 0) {
		fprintf(stderr, "dkimsign_tool: %s (%s)\n", res.why,
		    strerror(-res.status));
		dkimsign_result_free(&res);
		dkimsign_close(ds);
		buf_free(&in);
		return 1;
	}
	for (size_t i = 0; i < res.nsig; i++)
		fputs(res.sig[i].header, stdout);
	fwrite(in.data, 1, in.len, stdout);
	dkimsign_result_free(&res);
	dkimsign_close(ds);
	buf_free(&in);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int
cmd_keys(int argc, char **argv)
{
	char err[512], *txt;
	int r;

	if (strcmp(argv[1], "keygen") == 0 && argc == 6)
		r = dkimkey_generate(argv[2], argv[3], argv[4], argv[5], &txt, err,
		    sizeof err);
	else if (strcmp(argv[1], "record") == 0 && argc == 5)
		r = dkimkey_record(argv[2], argv[3], argv[4], &txt, err, sizeof err);
	else
		usage();
	if (r < 0) {
		fprintf(stderr, "dkimsign_tool: %s\n", err);
		return 1;
	}
	printf("%s\n", txt);
	free(txt);
	return 0;
}

/* --- bench ---------------------------------------------------------------- */

struct bench {
	struct dkimsign *ds;
	const char *msg;
	size_t head_len, len;
	double seconds;
	atomic_ulong done;
	atomic_int failed;
};

static double
now(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
bench_thread(void *arg)
{
	struct bench *b = arg;
	struct dkimsign_result res;
	double end = now(CLOCK_MONOTONIC) + b->seconds;

	while (now(CLOCK_MONOTONIC) < end) {
		dkimsign_sign(b->ds, b->msg, b->head_len, b->len, DKIMSIGN_ALL, &res);
		if (res.status < 0) {
			fprintf(stderr, "dkimsign_tool: %s\n", res.why);
			atomic_store(&b->failed, 1);
			dkimsign_result_free(&res);
			break;
		}
		dkimsign_result_free(&res);
		atomic_fetch_add(&b->done, 1);
	}
	return NULL;
}

static double
cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int
cmd_bench(int argc, char **argv)
{
	struct bench b;
	struct buf m = BUF_INIT;
	pthread_t tid[64];
	uint64_t threads, seconds, size = 5120;
	double t0, c0, wall, cpu;

	if (argc < 7 || argc > 8 || str_to_u64(argv[5], &threads) < 0 ||
	    threads == 0 || threads > 64 || str_to_u64(argv[6], &seconds) < 0 ||
	    seconds == 0 || (argc == 8 && str_to_u64(argv[7], &size) < 0))
		usage();
	memset(&b, 0, sizeof b);
	b.ds = load(argv[2], argv[3], argv[4]);
	buf_appendf(&m,
	    "From: Kurier Bench <bench@%s>\r\nTo: someone@example.net\r\n"
	    "Subject: signing speed\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
	    "Message-ID: <bench.1@%s>\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n", argv[3], argv[3]);
	b.head_len = m.len;
	while (m.len + 74 <= size)
		buf_appends(&m, "The quick brown fox jumps over the lazy dog, again and again, and again.\r\n");
	b.msg = m.data;
	b.len = m.len;
	b.seconds = (double)seconds;
	t0 = now(CLOCK_MONOTONIC);
	c0 = cpu_seconds();
	for (uint64_t i = 0; i < threads; i++)
		pthread_create(&tid[i], NULL, bench_thread, &b);
	for (uint64_t i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	wall = now(CLOCK_MONOTONIC) - t0;
	cpu = cpu_seconds() - c0;
	printf("messages=%lu bytes=%zu threads=%lu wall=%.2fs cpu=%.2fs per_second=%.0f per_cpu_second=%.0f\n",
	    (unsigned long)atomic_load(&b.done), b.len, (unsigned long)threads,
	    wall, cpu, (double)atomic_load(&b.done) / wall,
	    (double)atomic_load(&b.done) / cpu);
	dkimsign_close(b.ds);
	buf_free(&m);
	return atomic_load(&b.failed) ? 1 : 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "keygen") == 0 ||
	    strcmp(argv[1], "record") == 0))
		return cmd_keys(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "bench") == 0)
		return cmd_bench(argc, argv);
	return cmd_sign(argc, argv);
}
