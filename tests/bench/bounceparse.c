/*
 * bounceparse - how fast mailbox/bounce parses returns: every FILE read
 * into memory first, then parsed and classified ROUNDS times over
 * (bounce_parse + bounce_result_free), and the figure printed as
 * returns per second of wall-clock time on this one thread.
 *
 *   bounceparse [-n ROUNDS] [-l] FILE...
 *
 * -l prints, before the figure, one tab-separated line per file: file,
 * type, then per recipient "recipient status class reason".  Exit 0,
 * or 1 when a file cannot be read, 2 on usage errors.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mailbox/bounce.h"

struct input {
	const char *path;
	char *data;
	size_t len;
};

static int
read_all(const char *path, char **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t n = 0, cap = 0, r;

	if (f == NULL)
		return -errno;
	for (;;) {
		if (cap - n < 65536) {
			cap = cap * 2 + 65536;
			p = realloc(p, cap);
			if (p == NULL) {
				fclose(f);
				return -ENOMEM;
			}
		}
		r = fread(p + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		fclose(f);
		free(p);
		return -EIO;
	}
	fclose(f);
	*data = p;
	*len = n;
	return 0;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct input *in;
	unsigned long rounds = 20, n = 0;
	bool list = false;
	double t0, t1;
	int c, nin = 0, rc;

	while ((c = getopt(argc, argv, "n:l")) != -1) {
		switch (c) {
		case 'n':
			rounds = strtoul(optarg, NULL, 10);
			break;
		case 'l':
			list = true;
			break;
		default:
			fprintf(stderr, "usage: bounceparse [-n ROUNDS] [-l] FILE...\n");
			return 2;
		}
	}
	if (optind >= argc || rounds == 0) {
		fprintf(stderr, "usage: bounceparse [-n ROUNDS] [-l] FILE...\n");
		return 2;
	}
	in = calloc((size_t)(argc - optind), sizeof *in);
	if (in == NULL)
		return 1;
	for (int i = optind; i < argc; i++) {
		if ((rc = read_all(argv[i], &in[nin].data, &in[nin].len)) < 0) {
			fprintf(stderr, "bounceparse: %s: %s\n", argv[i], strerror(-rc));
			return 1;
		}
		in[nin++].path = argv[i];
	}
	if (list) {
		for (int i = 0; i < nin; i++) {
			struct bounce_result r;

			if (bounce_parse(in[i].data, in[i].len, &r) != 0)
				return 1;
			printf("%s\t%s", in[i].path, bounce_type_name(r.type));
			for (size_t k = 0; k < r.nrcpt; k++)
				printf("\t%s %s %s %s", r.rcpt[k].recipient,
				    r.rcpt[k].status[0] ? r.rcpt[k].status : "-",
				    bounce_class_name(r.rcpt[k].cls), r.rcpt[k].reason);
			printf("\n");
			bounce_result_free(&r);
		}
	}
	t0 = now_s();
	for (unsigned long k = 0; k < rounds; k++)
		for (int i = 0; i < nin; i++) {
			struct bounce_result r;

			if (bounce_parse(in[i].data, in[i].len, &r) != 0)
				return 1;
			bounce_result_free(&r);
			n++;
		}
	t1 = now_s();
	printf("bounce parse: %lu returns in %.3f s: %.0f returns/s (%d files x %lu rounds)\n",
	    n, t1 - t0, (double)n / (t1 - t0), nin, rounds);
	for (int i = 0; i < nin; i++)
		free(in[i].data);
	free(in);
	return 0;
}
