/*
 * verp_addr - print the signed VERP return path kurier's deliver role
 * would use for one recipient of a queued message (queue/verp.h), with
 * the key and return-path domain of a configuration: what a remote MTA
 * would send a return to.  For the inbound MX's benchmark
 * (tests/bench/run-inbound-bench.sh), which has no delivery to read the
 * address from.
 *
 *   verp_addr -c CONF [-d SENDING_DOMAIN] [-j] QUEUE_ID RCPT_INDEX
 *
 *   -d  the [domain] section whose return_path is used (default: the first)
 *   -j  a job token (the transaction carried every recipient of a domain)
 *
 * The key is [deliver] verp_secret, or data_dir/verp.key (made when
 * missing, as kurierd would).  Exit status 0, 1 on a failure, 2 for a
 * usage error.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/str.h"
#include "queue/verp.h"

static void
usage(void)
{
	fprintf(stderr, "usage: verp_addr -c CONF [-d SENDING_DOMAIN] [-j] QUEUE_ID RCPT_INDEX\n");
}

int
main(int argc, char **argv)
{
	const char *conf = NULL, *dom = NULL;
	const struct config_domain *d;
	struct config cfg;
	uint8_t key[VERP_KEY_LEN];
	char err[CONFIG_ERR_MAX], out[300];
	uint64_t idx;
	bool job = false;
	int c, rc;

	while ((c = getopt(argc, argv, "c:d:j")) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'd':
			dom = optarg;
			break;
		case 'j':
			job = true;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (conf == NULL || argc - optind != 2 || str_to_u64(argv[optind + 1], &idx) < 0 ||
	    idx > UINT32_MAX) {
		usage();
		return 2;
	}
	if (config_load(&cfg, conf, err, sizeof err) < 0) {
		fprintf(stderr, "verp_addr: %s\n", err);
		return 1;
	}
	d = dom != NULL ? config_domain_find(&cfg, dom) : cfg.ndomains > 0 ? &cfg.domains[0] : NULL;
	if (d == NULL) {
		fprintf(stderr, "verp_addr: %s: no such [domain] section\n", dom ? dom : "(first)");
		config_free(&cfg);
		return 1;
	}
	rc = verp_load_key(cfg.deliver.verp_secret, cfg.server.data_dir, key, err, sizeof err);
	if (rc == 0)
		rc = verp_encode(key, argv[optind], (uint32_t)idx, job, d->return_path, out, sizeof out);
	if (rc < 0) {
		fprintf(stderr, "verp_addr: %s\n", rc == -EINVAL ? "not a queue id" : err[0] ? err : "cannot encode");
		config_free(&cfg);
		return 1;
	}
	printf("%s\n", out);
	config_free(&cfg);
	return 0;
}
