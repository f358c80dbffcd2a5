/*
 * fuzz_mbox_names - libFuzzer target for the mailbox store's checks of
 * client text (mbox_valid_folder, mbox_valid_flags: what an IMAP client's
 * CREATE, SELECT and STORE arguments go through) and for the announcement
 * parser (mbox_event_parse).  Byte 0 picks the mode; the rest is:
 *
 *   0  a folder name (cut at the first NUL);
 *   1  a flag list (cut at the first NUL);
 *   2  a channel, a newline, then an announcement line.
 *
 * Invariants, besides no crash and no read past size: an accepted folder
 * is 1 to MBOX_FOLDER_MAX bytes without control bytes and without an
 * empty hierarchy level; an accepted flag list has no control byte and
 * no "\Recent"; a parsed event's user is a user name and its uids and
 * name lie inside the line, the name not empty.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"
#include "mailbox/store.h"
#include "mailbox/watch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *
cstr(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size == 0)
		return 0;
	s = cstr(data + 1, size - 1);
	switch (data[0] % 3) {
	case 0:
		if (mbox_valid_folder(s)) {
			size_t n = strlen(s);

			if (n == 0 || n > MBOX_FOLDER_MAX || s[0] == '/' || s[n - 1] == '/' ||
			    strstr(s, "//") != NULL)
				abort();
			for (size_t i = 0; i < n; i++)
				if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
					abort();
		}
		break;
	case 1:
		if (mbox_valid_flags(s)) {
			if (strlen(s) > MBOX_FLAGS_MAX)
				abort();
			for (const char *p = s; *p != '\0'; p++)
				if ((unsigned char)*p < 0x20 || *p == 0x7f)
					abort();
			for (const char *p = s; (p = strcasestr(p, "\\Recent")) != NULL; p++)
				if ((p == s || p[-1] == ' ') && (p[7] == '\0' || p[7] == ' '))
					abort();
		}
		break;
	default: {
		const uint8_t *line = data + 1, *end = data + size;
		const uint8_t *nl = memchr(line, '\n', (size_t)(end - line));
		struct mbox_event ev;

		if (nl == NULL)
			break;
		if (mbox_event_parse("p:", (const char *)line, (size_t)(nl - line),
		    (const char *)nl + 1, (size_t)(end - nl - 1), &ev) == 0) {
			const char *lo = (const char *)nl + 1, *hi = (const char *)end;

			if (!str_is_username(ev.user) || ev.name_len == 0 ||
			    ev.name < lo || ev.name + ev.name_len > hi ||
			    (ev.uids_len > 0 && (ev.uids < lo || ev.uids + ev.uids_len > hi)))
				abort();
		}
		break;
	}
	}
	free(s);
	return 0;
}
