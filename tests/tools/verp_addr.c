/*
 * verp_addr - the VERP return path (queue/verp.h) of each queue id read
 * from stdin, one id per line, printed one address per line, as kurierd
 * would put it in MAIL FROM when delivering that message's recipient.
 * The key is the one kurierd uses: [deliver] verp_secret, else
 * data_dir/verp.key (verp_load_key creates that file when it does not
 * exist yet, so run kurierd first if it is to share it).
 *
 *   verp_addr -c FILE -d DOMAIN [-i RCPT_IDX] [-j]
 *
 *   -d  the return-path domain (a [domain] section's return_path)
 *   -i  the recipient's index in the message (0)
 *   -j  the token of a job, the transaction of all recipients of one
 *       domain, RCPT_IDX its first
 *
 * Exit status: 0 when every line was a queue id, 1 when one was not or
 * the key could not be loaded, 2 on bad usage.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/str.h"
#include "queue/verp.h"

int
main(int argc, char **argv)
{
	struct config cfg;
	const char *path = NULL, *domain = NULL;
	char err[CONFIG_ERR_MAX], line[256], addr[300];
	uint8_t key[VERP_KEY_LEN];
	uint64_t idx = 0;
	bool job = false;
	int c, rc = 0;

	while ((c = getopt(argc, argv, "c:d:i:j")) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			domain = optarg;
			break;
		case 'i':
			if (str_to_u64(optarg, &idx) < 0 || idx > UINT32_MAX) {
				fprintf(stderr, "verp_addr: -i needs a recipient index\n");
				return 2;
			}
			break;
		case 'j':
			job = true;
			break;
		default:
			path = NULL;
			optind = argc + 1;
			break;
		}
	}
	if (path == NULL || domain == NULL || optind != argc) {
		fprintf(stderr, "usage: verp_addr -c FILE -d DOMAIN [-i RCPT_IDX] [-j] < IDS\n");
		return 2;
	}
	if (config_load(&cfg, path, err, sizeof err) < 0) {
		fprintf(stderr, "verp_addr: %s\n", err);
		return 2;
	}
	if (verp_load_key(cfg.deliver.verp_secret, cfg.server.data_dir, key, err, sizeof err) < 0) {
		fprintf(stderr, "verp_addr: %s\n", err);
		return 1;
	}
	while (fgets(line, sizeof line, stdin) != NULL) {
		char *id = str_trim(line);

		if (id[0] == '\0')
			continue;
		if (verp_encode(key, id, (uint32_t)idx, job, domain, addr, sizeof addr) < 0) {
			fprintf(stderr, "verp_addr: not a queue id, or a bad domain: %s\n", id);
			rc = 1;
			continue;
		}
		printf("%s\n", addr);
	}
	explicit_bzero(key, sizeof key);
	return rc;
}
