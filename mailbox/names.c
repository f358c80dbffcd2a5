/*
 * names - the mailbox store's pure functions over client and wire text,
 * with no Redis and no loop (so the fuzz target links them alone): folder
 * names and flags (store.h), and the announcement lines (watch.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"
#include "mailbox/store.h"
#include "mailbox/watch.h"

/* --- folder names and flags ---------------------------------------------------- */

bool
mbox_valid_folder(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > MBOX_FOLDER_MAX || name[0] == '/' || name[n - 1] == '/' ||
	    strstr(name, "//") != NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* RFC 3501 9: atom-specials, and "]" which a flag cannot hold either. */
static bool
flag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\]", c) == NULL;
}

bool
mbox_valid_flags(const char *flags)
{
	const unsigned char *p = (const unsigned char *)flags;

	if (strlen(flags) > MBOX_FLAGS_MAX)
		return false;
	while (*p != '\0') {
		const unsigned char *start;

		if (*p == ' ') {
			p++;
			continue;
		}
		start = p;
		if (*p == '\\')
			p++;
		if (!flag_char(*p))
			return false;
		while (flag_char(*p))
			p++;
		if (*p != '\0' && *p != ' ')
			return false;
		if (p - start == 7 && strncasecmp((const char *)start, "\\Recent", 7) == 0)
			return false;
	}
	return true;
}

/* --- announcements ---------------------------------------------------------------- */

/* A decimal number without sign or leading junk, below 2^53. */
static bool
parse_num(const char *p, size_t n, uint64_t *v)
{
	if (n == 0 || n > 15)
		return false;
	return str_to_u64n(p, n, v) == 0;
}

static bool
uid_set_ok(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(p[i] >= '0' && p[i] <= '9') && p[i] != ',' && p[i] != ':')
			return false;
	return true;
}

/* next_word - the word at *p (up to a space) in *w, *wn; *p past the space. */
static bool
next_word(const char **p, const char *end, const char **w, size_t *wn)
{
	const char *sp = memchr(*p, ' ', (size_t)(end - *p));

	if (sp == NULL || sp == *p)
		return false;
	*w = *p;
	*wn = (size_t)(sp - *p);
	*p = sp + 1;
	return true;
}

int
mbox_event_parse(const char *prefix, const char *channel, size_t chlen, const char *line,
    size_t len, struct mbox_event *ev)
{
	static const struct {
		const char *word;
		enum mbox_event_kind kind;
		bool has_uids;
	} kinds[] = {
		{ "append", MBOX_EV_APPEND, true }, { "flags", MBOX_EV_FLAGS, true },
		{ "expunge", MBOX_EV_EXPUNGE, true }, { "create", MBOX_EV_CREATE, false },
		{ "rename", MBOX_EV_RENAME, false }, { "delete", MBOX_EV_DELETE, false },
	};
	size_t plen = strlen(prefix);
	const char *p = line, *end = line + len, *w;
	size_t wn, k;

	memset(ev, 0, sizeof *ev);
	ev->uids = ev->name = "";
	/* The channel: prefix, "mbx:", a user name. */
	if (chlen < plen + 4 || memcmp(channel, prefix, plen) != 0 ||
	    memcmp(channel + plen, "mbx:", 4) != 0 ||
	    str_copyn(ev->user, channel + plen + 4, chlen - plen - 4, sizeof ev->user) < 0 ||
	    strlen(ev->user) != chlen - plen - 4 || !str_is_username(ev->user))
		return -EINVAL;
	if (!next_word(&p, end, &w, &wn))
		return -EINVAL;
	for (k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
		if (strlen(kinds[k].word) == wn && memcmp(kinds[k].word, w, wn) == 0)
			break;
	if (k == sizeof kinds / sizeof kinds[0])
		return -EINVAL;
	ev->kind = kinds[k].kind;
	if (!next_word(&p, end, &w, &wn) || !parse_num(w, wn, &ev->mailbox))
		return -EINVAL;
	if (kinds[k].has_uids) {
		if (!next_word(&p, end, &w, &wn) || !parse_num(w, wn, &ev->modseq))
			return -EINVAL;
		if (!next_word(&p, end, &w, &wn) || !uid_set_ok(w, wn))
			return -EINVAL;
		ev->uids = w;
		ev->uids_len = wn;
	}
	/* The rest is the name, spaces and all. */
	if (p >= end || memchr(p, '\0', (size_t)(end - p)) != NULL)
		return -EINVAL;
	ev->name = p;
	ev->name_len = (size_t)(end - p);
	return 0;
}
