/*
 * store - the mailbox store in Redis: its lifecycle, append, the reads
 * (status, folders, list, fetch), and the helpers store_ops.c and
 * store_admin.c share (store_int.h).  The atomic steps are the
 * Lua scripts in mailbox/lua/ (each with lib.lua in front); the key
 * layout is in mailbox/README.md, the contract in store.h.
 */
#include "mailbox/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/rdb.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "mailbox/store_int.h"

extern const char mailbox_lua_append[], mailbox_lua_status[], mailbox_lua_folders[],
    mailbox_lua_list[], mailbox_lua_fetch[], mailbox_lua_flags[], mailbox_lua_copy[],
    mailbox_lua_expunge[], mailbox_lua_create[], mailbox_lua_rename[],
    mailbox_lua_delete[], mailbox_lua_trim[], mailbox_lua_stats[], mailbox_lua_vanished[],
    mailbox_lua_lock[], mailbox_lua_subscribe[], mailbox_lua_uids[], mailbox_lua_describe[];

struct rdb_script mbox__s_append = { "mbox_append", mailbox_lua_append, "" };
struct rdb_script mbox__s_status = { "mbox_status", mailbox_lua_status, "" };
struct rdb_script mbox__s_folders = { "mbox_folders", mailbox_lua_folders, "" };
struct rdb_script mbox__s_list = { "mbox_list", mailbox_lua_list, "" };
struct rdb_script mbox__s_fetch = { "mbox_fetch", mailbox_lua_fetch, "" };
struct rdb_script mbox__s_flags = { "mbox_flags", mailbox_lua_flags, "" };
struct rdb_script mbox__s_copy = { "mbox_copy", mailbox_lua_copy, "" };
struct rdb_script mbox__s_expunge = { "mbox_expunge", mailbox_lua_expunge, "" };
struct rdb_script mbox__s_create = { "mbox_create", mailbox_lua_create, "" };
struct rdb_script mbox__s_rename = { "mbox_rename", mailbox_lua_rename, "" };
struct rdb_script mbox__s_delete = { "mbox_delete", mailbox_lua_delete, "" };
struct rdb_script mbox__s_trim = { "mbox_trim", mailbox_lua_trim, "" };
struct rdb_script mbox__s_stats = { "mbox_stats", mailbox_lua_stats, "" };
struct rdb_script mbox__s_vanished = { "mbox_vanished", mailbox_lua_vanished, "" };
struct rdb_script mbox__s_lock = { "mbox_lock", mailbox_lua_lock, "" };
struct rdb_script mbox__s_uids = { "mbox_uids", mailbox_lua_uids, "" };
struct rdb_script mbox__s_describe = { "mbox_describe", mailbox_lua_describe, "" };
struct rdb_script mbox__s_subscribe = { "mbox_subscribe", mailbox_lua_subscribe, "" };

static struct rdb_script *const scripts[] = {
	&mbox__s_append, &mbox__s_status, &mbox__s_folders, &mbox__s_list, &mbox__s_fetch,
	&mbox__s_flags, &mbox__s_copy, &mbox__s_expunge, &mbox__s_create, &mbox__s_rename,
	&mbox__s_delete, &mbox__s_trim, &mbox__s_stats, &mbox__s_vanished, &mbox__s_lock, &mbox__s_uids, &mbox__s_describe,
	&mbox__s_subscribe, NULL,
};

/* --- names ---------------------------------------------------------------------- */

const char *
mbox__folder(const char *folder)
{
	return strcasecmp(folder, "INBOX") == 0 ? "INBOX" : folder;
}

int
mbox__check(const char *user, const char *folder)
{
	if (user == NULL || !str_is_username(user))
		return -EINVAL;
	if (folder != NULL && !mbox_valid_folder(folder))
		return -EINVAL;
	return 0;
}

/* --- the shared helpers ---------------------------------------------------------- */

uint64_t
mbox__now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
mbox__args_init(struct mbox__args *a, const struct mbox_store *st)
{
	memset(a, 0, sizeof *a);
	mbox__args(a, st->cfg.redis.prefix);
}

static void
args_grow(struct mbox__args *a)
{
	if (a->n < a->cap)
		return;
	a->cap = a->cap ? a->cap * 2 : 16;
	a->v = xreallocarray(a->v, a->cap, sizeof *a->v);
	a->len = xreallocarray(a->len, a->cap, sizeof *a->len);
	a->num = xreallocarray(a->num, a->cap, sizeof *a->num);
	a->is_num = xreallocarray(a->is_num, a->cap, sizeof *a->is_num);
}

void
mbox__arg(struct mbox__args *a, const void *p, size_t len)
{
	args_grow(a);
	a->v[a->n] = p;
	a->len[a->n] = len;
	a->is_num[a->n] = false;
	a->n++;
}

void
mbox__args(struct mbox__args *a, const char *s)
{
	mbox__arg(a, s, strlen(s));
}

void
mbox__argu(struct mbox__args *a, uint64_t v)
{
	args_grow(a);
	a->len[a->n] = (size_t)snprintf(a->num[a->n], sizeof a->num[0], "%" PRIu64, v);
	a->v[a->n] = NULL;
	a->is_num[a->n] = true;
	a->n++;
}

void
mbox__arg_ranges(struct mbox__args *a, const struct mbox_range *r, size_t n)
{
	if (n == 0) {
		mbox__argu(a, 1);
		mbox__argu(a, UINT32_MAX);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		mbox__argu(a, r[i].lo < r[i].hi ? r[i].lo : r[i].hi);
		mbox__argu(a, r[i].lo < r[i].hi ? r[i].hi : r[i].lo);
	}
}

static void
args_free(struct mbox__args *a)
{
	free(a->v);
	free(a->len);
	free(a->num);
	free(a->is_num);
}

int
mbox__eval(struct mbox_store *st, struct rdb_script *s, struct mbox__args *a,
    rdb_reply_cb *cb, struct mbox__req *req)
{
	int rc;

	for (size_t i = 0; i < a->n; i++)
		if (a->is_num[i])
			a->v[i] = a->num[i];
	rc = rdb_eval(st->db, s, cb, req, 0, (int)a->n, a->v, a->len);
	args_free(a);
	if (rc < 0)
		free(req);
	return rc;
}

struct mbox__req *
mbox__req_new(struct mbox_store *st, const char *user, void *arg)
{
	struct mbox__req *req = xcalloc(1, sizeof *req);

	req->st = st;
	req->arg = arg;
	if (user != NULL)
		str_copy(req->user, user, sizeof req->user);
	return req;
}

struct mbox__req *
mbox__req_start(struct mbox_store *st, struct mbox__args *a, const char *user,
    const char *folder, void *arg)
{
	struct mbox__req *req = mbox__req_new(st, user, arg);

	mbox__args_init(a, st);
	mbox__args(a, user);
	if (folder != NULL)
		mbox__args(a, mbox__folder(folder));
	return req;
}

int
mbox__status(const char *op, int status, const redisReply *r)
{
	static const struct {
		const char *name;
		int err;
	} codes[] = {
		{ "ENOENT ", -ENOENT }, { "EEXIST ", -EEXIST }, { "EPERM ", -EPERM },
		{ "ENOSPC ", -ENOSPC }, { "EINVAL ", -EINVAL }, { "EBUSY ", -EBUSY },
	};

	if (status == -EIO && r != NULL && r->type == REDIS_REPLY_ERROR) {
		for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
			if (strncmp(r->str, codes[i].name, strlen(codes[i].name)) == 0)
				return codes[i].err;
		rdb_log_error("mailbox", op, status, r);
		return -EIO;
	}
	if (status == 0 && (r == NULL || r->type != REDIS_REPLY_ARRAY)) {
		log_error("mailbox", "bad_reply", "op=%s type=%d", op, r ? r->type : -1);
		return -EIO;
	}
	return status;
}

bool
mbox__u64(const redisReply *r, size_t i, uint64_t *v)
{
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
		return false;
	return rdb_reply_u64(r->element[i], v);
}

bool
mbox__u32(const redisReply *r, size_t i, uint32_t *v)
{
	uint64_t u;

	if (!mbox__u64(r, i, &u) || u > UINT32_MAX)
		return false;
	*v = (uint32_t)u;
	return true;
}

char *
mbox__strdup(const redisReply *r, size_t i, size_t *len)
{
	const char *p = "";
	size_t n = 0;
	char *s;

	if (r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements)
		if (!rdb_reply_str(r->element[i], &p, &n))
			p = "", n = 0;
	s = xmalloc(n + 1);
	memcpy(s, p, n);
	s[n] = '\0';
	if (len != NULL)
		*len = n;
	return s;
}

size_t
mbox__log_expired(const char *user, const redisReply *r, size_t first)
{
	size_t n = 0;

	for (size_t i = first; i + 2 < r->elements; i += 3) {
		char qf[MBOX_FOLDER_MAX + 8], qu[STR_USERNAME_MAX + 8];
		const char *f = "", *why = "";
		size_t flen = 0, wlen = 0;
		uint64_t uid = 0;

		rdb_reply_str(r->element[i], &f, &flen);
		mbox__u64(r, i + 1, &uid);
		rdb_reply_str(r->element[i + 2], &why, &wlen);
		log_info("mailbox", "mailbox_expired", "user=%s folder=%s uid=%" PRIu64
		    " reason=%.*s", log_quotes(qu, sizeof qu, user),
		    log_quote(qf, sizeof qf, f, flen), uid, (int)wlen, why);
		n++;
	}
	return n;
}

/* --- lifecycle ------------------------------------------------------------------- */

static void
on_state(void *arg, bool up)
{
	struct mbox_store *st = arg;

	if (st->state_cb != NULL)
		st->state_cb(st->state_arg, up);
}

int
mbox_store_open(struct mbox_store **out, uv_loop_t *loop, const struct config *cfg,
    char *err, size_t errsz)
{
	struct mbox_store *st = xcalloc(1, sizeof *st);
	int rc;

	st->loop = loop;
	config_copy(&st->cfg, cfg);
	rc = rdb_open_config(&st->db, loop, &st->cfg, "mailbox", scripts, on_state, st);
	if (rc < 0) {
		config_free(&st->cfg);
		free(st);
		return str_err(err, errsz, rc, "mailbox store: cannot open Redis: %s",
		    strerror(-rc));
	}
	*out = st;
	return 0;
}

static void
on_closed(void *arg)
{
	struct mbox_store *st = arg;
	void (*cb)(void *) = st->closed_cb;
	void *cb_arg = st->closed_arg;

	config_free(&st->cfg);
	free(st);
	if (cb != NULL)
		cb(cb_arg);
}

void
mbox_store_close(struct mbox_store *st, void (*closed)(void *arg), void *arg)
{
	st->closed_cb = closed;
	st->closed_arg = arg;
	st->state_cb = NULL;
	rdb_close(st->db, on_closed, st);
}

bool
mbox_is_up(const struct mbox_store *st)
{
	return rdb_is_up(st->db);
}

void
mbox_set_limits(struct mbox_store *st, uint64_t retention_ms, unsigned max_messages)
{
	st->cfg.mailbox.retention_ms = retention_ms;
	st->cfg.mailbox.max_messages = max_messages;
}

const char *
mbox_last_error(const struct mbox_store *st)
{
	return rdb_last_error(st->db);
}

void
mbox_on_state(struct mbox_store *st, void (*cb)(void *arg, bool up), void *arg)
{
	st->state_cb = cb;
	st->state_arg = arg;
}

int
mbox_channel(const struct mbox_store *st, const char *user, char *dst, size_t size)
{
	int n;

	if (mbox__check(user, NULL) < 0)
		return -EINVAL;
	n = snprintf(dst, size, "%smbx:%s", st->cfg.redis.prefix, user);
	return n < 0 || (size_t)n >= size ? -E2BIG : 0;
}

/* --- append ---------------------------------------------------------------------- */

static void
on_append(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	uint32_t uv = 0, uid = 0;
	uint64_t dup = 0;

	status = mbox__status("append", status, r);
	if (status == 0 && (!mbox__u32(r, 0, &uv) || !mbox__u32(r, 1, &uid) ||
	    !mbox__u64(r, 2, &dup))) {
		log_error("mailbox", "bad_reply", "op=append");
		status = -EIO;
	}
	if (status == 0) {
		mbox__log_expired(req->user, r, 3);
		if (dup)
			status = -EEXIST;
	}
	if (status != 0 && status != -EEXIST)
		uv = uid = 0;
	req->cb.append(req->arg, status, uv, uid);
	free(req);
}

int
mbox_append(struct mbox_store *st, const struct mbox_append *a, mbox_append_cb *done,
    void *arg)
{
	struct mbox__args args;
	struct mbox__req *req;
	const char *flags = a->flags != NULL ? a->flags : "";
	uint64_t now = mbox__now();
	int rc;

	if ((rc = mbox__check(a->user, a->folder)) < 0)
		return rc;
	if (!mbox_valid_flags(flags) || (a->data == NULL && a->len > 0))
		return -EINVAL;
	req = mbox__req_start(st, &args, a->user, a->folder, arg);
	req->cb.append = done;
	mbox__arg(&args, a->data != NULL ? a->data : "", a->len);
	mbox__args(&args, flags);
	mbox__argu(&args, a->internal_date_ms ? a->internal_date_ms : now);
	mbox__argu(&args, now);
	mbox__args(&args, a->dedup_key != NULL ? a->dedup_key : "");
	mbox__argu(&args, st->cfg.mailbox.retention_ms);
	mbox__argu(&args, st->cfg.mailbox.max_messages);
	/* Both or neither. */
	mbox__args(&args, a->envelope != NULL && a->bodystructure != NULL ? a->envelope : "");
	mbox__args(&args, a->envelope != NULL && a->bodystructure != NULL ? a->bodystructure : "");
	return mbox__eval(st, &mbox__s_append, &args, on_append, req);
}

/* --- reads ------------------------------------------------------------------------ */

static bool
status_from(const redisReply *r, size_t first, struct mbox_status *s)
{
	return mbox__u64(r, first, &s->id) && mbox__u32(r, first + 1, &s->uidvalidity) &&
	    mbox__u32(r, first + 2, &s->uidnext) && mbox__u64(r, first + 3, &s->highestmodseq) &&
	    mbox__u32(r, first + 4, &s->exists) && mbox__u32(r, first + 5, &s->unseen) &&
	    mbox__u64(r, first + 6, &s->bytes);
}

static void
on_status(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	struct mbox_status s;

	memset(&s, 0, sizeof s);
	status = mbox__status("status", status, r);
	if (status == 0 && (!status_from(r, 0, &s) || !mbox__u64(r, 7, &s.vanished_floor))) {
		log_error("mailbox", "bad_reply", "op=status");
		status = -EIO;
	}
	req->cb.status(req->arg, status, status == 0 ? &s : NULL);
	free(req);
}

int
mbox_status(struct mbox_store *st, const char *user, const char *folder,
    mbox_status_cb *done, void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, folder)) < 0)
		return rc;
	req = mbox__req_start(st, &a, user, folder, arg);
	req->cb.status = done;
	return mbox__eval(st, &mbox__s_status, &a, on_status, req);
}

void
mbox_folders_free(struct mbox_folders *list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < list->n; i++)
		free(list->v[i].name);
	free(list->v);
	free(list);
}

static void
on_folders(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	struct mbox_folders *list = NULL;

	status = mbox__status("folders", status, r);
	if (status == 0) {
		list = xcalloc(1, sizeof *list);
		list->v = xcalloc(r->elements ? r->elements : 1, sizeof *list->v);
		for (size_t i = 0; i < r->elements; i++) {
			const redisReply *e = r->element[i];
			struct mbox_folder *f = &list->v[list->n];

			if (!rdb_reply_array(e, 8) || !status_from(e, 1, &f->st)) {
				log_error("mailbox", "bad_reply", "op=folders");
				continue;
			}
			f->name = mbox__strdup(e, 0, NULL);
			list->n++;
		}
	}
	req->cb.folders(req->arg, status, list);
	free(req);
}

int
mbox_folders(struct mbox_store *st, const char *user, bool create_inbox,
    mbox_folders_cb *done, void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, NULL)) < 0)
		return rc;
	req = mbox__req_start(st, &a, user, NULL, arg);
	req->cb.folders = done;
	mbox__argu(&a, mbox__now());
	mbox__args(&a, create_inbox ? "1" : "0");
	return mbox__eval(st, &mbox__s_folders, &a, on_folders, req);
}

void
mbox_msgs_free(struct mbox_msgs *list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < list->n; i++) {
		free(list->v[i].flags);
		free(list->v[i].head);
		free(list->v[i].envelope);
		free(list->v[i].bodystructure);
	}
	free(list->v);
	free(list);
}

/* msg_from - a message's { uid, modseq, date, size, flags } into m. */
static bool
msg_from(const redisReply *e, struct mbox_msg *m)
{
	if (!rdb_reply_array(e, 5) || !mbox__u32(e, 0, &m->uid) || !mbox__u64(e, 1, &m->modseq) ||
	    !mbox__u64(e, 2, &m->date_ms) || !mbox__u64(e, 3, &m->size))
		return false;
	m->flags = mbox__strdup(e, 4, NULL);
	if (e->elements == 6)
		m->head = mbox__strdup(e, 5, &m->head_len);
	if (e->elements == 7) {
		size_t n;

		m->envelope = mbox__strdup(e, 5, &n);
		if (n == 0) {
			free(m->envelope);
			m->envelope = NULL;
		}
		m->bodystructure = mbox__strdup(e, 6, &n);
		if (n == 0 || m->envelope == NULL) {
			free(m->bodystructure);
			free(m->envelope);
			m->bodystructure = m->envelope = NULL;
		}
	}
	return true;
}

static void
on_list(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	struct mbox_msgs *list = NULL;

	status = mbox__status("list", status, r);
	if (status == 0) {
		list = xcalloc(1, sizeof *list);
		if (!mbox__u32(r, 0, &list->uidvalidity) || !mbox__u64(r, 1, &list->highestmodseq)) {
			log_error("mailbox", "bad_reply", "op=list");
			free(list);
			list = NULL;
			status = -EIO;
		}
	}
	if (status == 0) {
		list->v = xcalloc(r->elements, sizeof *list->v);
		for (size_t i = 2; i < r->elements; i++) {
			if (msg_from(r->element[i], &list->v[list->n]))
				list->n++;
			else
				log_error("mailbox", "bad_reply", "op=list");
		}
	}
	req->cb.msgs(req->arg, status, list);
	free(req);
}

/* What list() returns with each message besides its fields. */
enum list_extra {
	LIST_FIELDS, /* nothing */
	LIST_HEADS,  /* its first head_max bytes */
	LIST_META,   /* its stored ENVELOPE and BODYSTRUCTURE */
};

static int
list(struct mbox_store *st, const char *user, const char *folder,
    const struct mbox_range *ranges, size_t nranges, uint64_t changedsince,
    enum list_extra extra, size_t head_max, mbox_msgs_cb *done, void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, folder)) < 0)
		return rc;
	if (nranges > 0 && ranges == NULL)
		return -EINVAL;
	req = mbox__req_start(st, &a, user, folder, arg);
	req->cb.msgs = done;
	mbox__argu(&a, changedsince);
	if (extra == LIST_META)
		mbox__args(&a, "-1");
	else
		mbox__argu(&a, extra == LIST_HEADS ? head_max : 0);
	mbox__arg_ranges(&a, ranges, nranges);
	return mbox__eval(st, &mbox__s_list, &a, on_list, req);
}

int
mbox_list(struct mbox_store *st, const char *user, const char *folder,
    const struct mbox_range *ranges, size_t nranges, uint64_t changedsince,
    mbox_msgs_cb *done, void *arg)
{
	return list(st, user, folder, ranges, nranges, changedsince, LIST_FIELDS, 0, done, arg);
}

static void
on_uids(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	struct mbox_uidlist *l = NULL;

	status = mbox__status("uids", status, r);
	if (status == 0) {
		l = xcalloc(1, sizeof *l);
		if (!mbox__u32(r, 0, &l->uidvalidity) || !mbox__u64(r, 1, &l->highestmodseq) ||
		    !mbox__u32(r, 2, &l->first_unseen)) {
			log_error("mailbox", "bad_reply", "op=uids");
			free(l);
			l = NULL;
			status = -EIO;
		}
	}
	if (status == 0 && r->elements > 3) {
		size_t step = req->sizes ? 2 : 1;

		l->v = xcalloc((r->elements - 3) / step + 1, sizeof *l->v);
		if (step == 2)
			l->sizes = xcalloc((r->elements - 3) / 2 + 1, sizeof *l->sizes);
		for (size_t i = 3; i + step - 1 < r->elements; i += step) {
			if (!mbox__u32(r, i, &l->v[l->n]) ||
			    (step == 2 && !mbox__u64(r, i + 1, &l->sizes[l->n])))
				continue;
			l->n++;
		}
	}
	req->cb.uidlist(req->arg, status, l);
	free(req);
}

int
mbox_uidlist(struct mbox_store *st, const char *user, const char *folder, bool with_sizes,
    mbox_uidlist_cb *done, void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, folder)) < 0)
		return rc;
	req = mbox__req_start(st, &a, user, folder, arg);
	req->cb.uidlist = done;
	req->sizes = with_sizes;
	mbox__args(&a, with_sizes ? "1" : "0");
	return mbox__eval(st, &mbox__s_uids, &a, on_uids, req);
}

void
mbox_uidlist_free(struct mbox_uidlist *l)
{
	if (l == NULL)
		return;
	free(l->v);
	free(l->sizes);
	free(l);
}

int
mbox_list_meta(struct mbox_store *st, const char *user, const char *folder,
    const struct mbox_range *ranges, size_t nranges, mbox_msgs_cb *done, void *arg)
{
	return list(st, user, folder, ranges, nranges, 0, LIST_META, 0, done, arg);
}

int
mbox_list_heads(struct mbox_store *st, const char *user, const char *folder,
    const struct mbox_range *ranges, size_t nranges, size_t head_max, mbox_msgs_cb *done,
    void *arg)
{
	if (head_max == 0 || head_max > 65536)
		return -EINVAL;
	return list(st, user, folder, ranges, nranges, 0, LIST_HEADS, head_max, done, arg);
}

void
mbox_body_free(struct mbox_body *b)
{
	if (b == NULL)
		return;
	free(b->m.flags);
	free(b->data);
	free(b);
}

static void
on_fetch(void *arg, int status, redisReply *r)
{
	struct mbox__req *req = arg;
	struct mbox_body *b = NULL;

	status = mbox__status("fetch", status, r);
	if (status == 0) {
		b = xcalloc(1, sizeof *b);
		if (!rdb_reply_array(r, 7) || !mbox__u32(r, 0, &b->uidvalidity) ||
		    !mbox__u32(r, 1, &b->m.uid) || !mbox__u64(r, 2, &b->m.modseq) ||
		    !mbox__u64(r, 3, &b->m.date_ms) || !mbox__u64(r, 4, &b->m.size)) {
			log_error("mailbox", "bad_reply", "op=fetch");
			free(b);
			b = NULL;
			status = -EIO;
		} else {
			b->m.flags = mbox__strdup(r, 5, NULL);
			b->data = mbox__strdup(r, 6, &b->len);
		}
	}
	req->cb.body(req->arg, status, b);
	free(req);
}

int
mbox_fetch(struct mbox_store *st, const char *user, const char *folder, uint32_t uid,
    mbox_body_cb *done, void *arg)
{
	struct mbox__args a;
	struct mbox__req *req;
	int rc;

	if ((rc = mbox__check(user, folder)) < 0)
		return rc;
	if (uid == 0)
		return -EINVAL;
	req = mbox__req_start(st, &a, user, folder, arg);
	req->cb.body = done;
	mbox__argu(&a, uid);
	return mbox__eval(st, &mbox__s_fetch, &a, on_fetch, req);
}
