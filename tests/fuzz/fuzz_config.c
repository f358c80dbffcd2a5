/*
 * fuzz_config - libFuzzer target for the configuration parser: any
 * text is either loaded or refused with "NAME:LINE: reason"; never a
 * crash, a hang or a leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg;
	char err[CONFIG_ERR_MAX];
	char *text = xmemdup0(data, size);

	if (config_load_string(&cfg, "fuzz.conf", text, err, sizeof err) < 0 &&
	    strncmp(err, "fuzz.conf:", 10) != 0)
		abort();
	config_free(&cfg);
	free(text);
	return 0;
}
