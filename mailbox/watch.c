/*
 * watch - the mailbox store's announcements, parsed (names.c) and handed
 * on: one core/rdb subscriber connection.  See watch.h.
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
