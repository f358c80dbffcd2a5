/*
 * watch - the mailbox store's announcements, parsed and handed on: one
 * core/rdb subscriber connection.  See watch.h.
 */
#include "mailbox/watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rdb.h"
#include "core/str.h"
#include "core/xmalloc.h"

struct mbox_watch {
	struct config cfg;
	struct rdb *db;
	mbox_event_cb *cb;
	void *arg;
	void (*state_cb)(void *arg, bool up);
	void *state_arg;
	void (*closed_cb)(void *arg);
	void *closed_arg;
	bool closing;
};

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

static void
on_message(void *arg, const char *channel, size_t chlen, const char *msg, size_t len)
{
	struct mbox_watch *w = arg;
	struct mbox_event ev;
	char q[128];

	if (w->closing)
		return;
	if (mbox_event_parse(w->cfg.redis.prefix, channel, chlen, msg, len, &ev) < 0) {
		log_warn("mailbox", "bad_announcement", "channel=%s",
		    log_quote(q, sizeof q, channel, chlen));
		return;
	}
	w->cb(w->arg, &ev);
}

static void
on_state(void *arg, bool up)
{
	struct mbox_watch *w = arg;

	if (w->state_cb != NULL && !w->closing)
		w->state_cb(w->state_arg, up);
}

/* glob_escape - s with PSUBSCRIBE's pattern characters escaped, into dst. */
static int
glob_escape(const char *s, char *dst, size_t size)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		if (n + 3 > size)
			return -E2BIG;
		if (strchr("*?[]\\", *s) != NULL)
			dst[n++] = '\\';
		dst[n++] = *s;
	}
	dst[n] = '\0';
	return 0;
}

int
mbox_watch_open(struct mbox_watch **out, uv_loop_t *loop, const struct config *cfg,
    mbox_event_cb *cb, void *arg)
{
	struct mbox_watch *w;
	struct rdb_opts o;
	char esc[200], pattern[256];
	int rc, n;

	if (glob_escape(cfg->redis.prefix, esc, sizeof esc) < 0)
		return -E2BIG;
	n = snprintf(pattern, sizeof pattern, "%smbx:*", esc);
	if (n < 0 || (size_t)n >= sizeof pattern)
		return -E2BIG;
	w = xcalloc(1, sizeof *w);
	config_copy(&w->cfg, cfg);
	w->cb = cb;
	w->arg = arg;
	rdb_opts_from_config(&o, &w->cfg, "mailbox-watch", NULL);
	o.psubscribe = pattern;
	o.on_message = on_message;
	o.message_arg = w;
	if ((rc = rdb_open(&w->db, loop, &o, on_state, w)) < 0) {
		config_free(&w->cfg);
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

void
mbox_watch_on_state(struct mbox_watch *w, void (*cb)(void *arg, bool up), void *arg)
{
	w->state_cb = cb;
	w->state_arg = arg;
}

bool
mbox_watch_is_up(const struct mbox_watch *w)
{
	return rdb_is_up(w->db);
}

static void
on_closed(void *arg)
{
	struct mbox_watch *w = arg;
	void (*cb)(void *) = w->closed_cb;
	void *cb_arg = w->closed_arg;

	config_free(&w->cfg);
	free(w);
	if (cb != NULL)
		cb(cb_arg);
}

void
mbox_watch_close(struct mbox_watch *w, void (*closed)(void *arg), void *arg)
{
	w->closing = true;
	w->closed_cb = closed;
	w->closed_arg = arg;
	rdb_close(w->db, on_closed, w);
}
