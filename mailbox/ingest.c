/*
 * ingest - the inbound MX's sink for bounce domains: which recipients
 * take returns, and what a return does (queue state, suppression, the
 * bounce log, the user's INBOX).  The contract, and why the effects come
 * before the append, are in mailbox/ingest.h.
 *
 * Each call is one request on the heap, counted in in->pending so that
 * ingest_close() frees the module only after the last has answered.  A
 * request that must answer without a Redis call (a foreign domain, say)
 * answers from a zero timer, never from inside the call.  A return is
 * parsed on libuv's thread pool (a report may be [mailbox]
 * max_bounce_size, 10 MB, and GMime's parse of it must not hold the
 * loop); its recipients are then worked through one after the other,
 * each next one started from the timer on the next loop turn.
 */
#include "mailbox/ingest.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"
#include "mailbox/bounce.h"
#include "mailbox/store.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "queue/verp.h"

/* Longest value of an X-Kurier-* field. */
#define FIELD_MAX 256

struct ingest {
	uv_loop_t *loop;
	const struct config *cfg;
	struct queue *q;
	struct policy *pol;
	struct mbox_store *st;
	uint8_t key[VERP_KEY_LEN];
	unsigned pending;
	bool closing;
	void (*closed)(void *arg);
	void *closed_arg;
};

static void
ingest_unref(struct ingest *in)
{
	in->pending--;
	if (in->closing && in->pending == 0) {
		void (*closed)(void *) = in->closed;
		void *arg = in->closed_arg;

		OPENSSL_cleanse(in->key, sizeof in->key);
		free(in);
		if (closed != NULL)
			closed(arg);
	}
}

/* --- addresses ------------------------------------------------------------------- */

/* Whether domain (lower case) is the return_path of a [domain] section. */
static bool
bounce_domain(const struct config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->ndomains; i++)
		if (strcmp(cfg->domains[i].return_path, domain) == 0)
			return true;
	return false;
}

/* RFC 5321 4.5.1 and RFC 2142: the role addresses a mail domain has. */
static bool
role_local(const char *local, size_t len)
{
	return (len == 10 && strncasecmp(local, "postmaster", 10) == 0) ||
	    (len == 5 && strncasecmp(local, "abuse", 5) == 0);
}

enum addr_kind {
	ADDR_FOREIGN, /* not a bounce domain */
	ADDR_ROLE,    /* postmaster@ or abuse@ of one */
	ADDR_VERP,    /* a VERP address that verifies */
	ADDR_BAD,     /* a bounce domain's address that is neither */
};

/* What addr is; for ADDR_VERP, *vi. */
static enum addr_kind
addr_kind(const struct ingest *in, const char *addr, struct verp_info *vi)
{
	char low[512];
	const char *at;

	if (str_copy(low, addr, sizeof low) < 0)
		return ADDR_FOREIGN;
	str_lower(low);
	at = strrchr(low, '@');
	if (at == NULL || !bounce_domain(in->cfg, at + 1))
		return ADDR_FOREIGN;
	if (role_local(low, (size_t)(at - low)))
		return ADDR_ROLE;
	if (verp_decode(in->key, low, strlen(low), vi) == 0)
		return ADDR_VERP;
	return ADDR_BAD;
}

/* --- RCPT ------------------------------------------------------------------------ */

struct rcpt_req {
	struct ingest *in;
	ingest_rcpt_cb *cb;
	void *arg;
	enum ingest_verdict v;
	uint32_t rcpt_idx;
	uv_timer_t timer;
};

static void
rcpt_free(uv_handle_t *h)
{
	struct rcpt_req *r = h->data;
	struct ingest *in = r->in;

	free(r);
	ingest_unref(in);
}

static void
on_rcpt_timer(uv_timer_t *t)
{
	struct rcpt_req *r = t->data;

	r->cb(r->arg, r->v);
	uv_close((uv_handle_t *)&r->timer, rcpt_free);
}

static void
on_rcpt_fetched(void *arg, int status, struct queue_info *infos, size_t n)
{
	struct rcpt_req *r = arg;
	struct ingest *in = r->in;

	if (status < 0)
		r->v = INGEST_RCPT_TEMP;
	else if (n == 1 && infos[0].exists && !infos[0].corrupt && r->rcpt_idx < infos[0].env.nrcpt)
		r->v = INGEST_RCPT_OK;
	else
		r->v = INGEST_RCPT_UNKNOWN;
	r->cb(r->arg, r->v);
	free(r);
	ingest_unref(in);
}

int
ingest_rcpt(struct ingest *in, const char *addr, ingest_rcpt_cb *cb, void *arg)
{
	struct rcpt_req *r;
	struct verp_info vi;
	const char *ids[1];
	int rc;

	if (in->closing)
		return -ECANCELED;
	if (addr == NULL || cb == NULL)
		return -EINVAL;
	r = xcalloc(1, sizeof *r);
	r->in = in;
	r->cb = cb;
	r->arg = arg;
	switch (addr_kind(in, addr, &vi)) {
	case ADDR_VERP:
		r->rcpt_idx = vi.rcpt_idx;
		ids[0] = vi.qid;
		rc = queue_fetch(in->q, ids, 1, on_rcpt_fetched, r);
		if (rc < 0) {
			free(r);
			return rc;
		}
		in->pending++;
		return 0;
	case ADDR_ROLE:
		r->v = in->cfg->mailbox.postmaster[0] ? INGEST_RCPT_OK : INGEST_RCPT_UNKNOWN;
		break;
	case ADDR_BAD:
		r->v = INGEST_RCPT_UNKNOWN;
		break;
	case ADDR_FOREIGN:
		r->v = INGEST_RCPT_RELAY;
		break;
	}
	uv_timer_init(in->loop, &r->timer);
	r->timer.data = r;
	uv_timer_start(&r->timer, on_rcpt_timer, 0, 0);
	in->pending++;
	return 0;
}

/* --- DATA ------------------------------------------------------------------------ */

/* One envelope recipient's return, worked through step by step. */
struct target {
	char rcpt[512]; /* the envelope recipient it came to */
	bool token;     /* a VERP token names the message */
	struct verp_info vi;
	bool known;                   /* the queue record was read */
	bool unsure;                  /* a job token, and the report names none of its recipients */
	char user[65];                /* whose INBOX */
	char addr[512];               /* the recipient it is about, or "" */
	char scope[256];              /* the returned message's sender domain */
	const struct bounce_rcpt *br; /* the report's entry for addr, or NULL */
	enum bounce_class cls;
	const char *reason;
	char key[65]; /* idempotency: hash of body and rcpt */
};

struct store_req {
	struct ingest *in;
	ingest_stored_cb *cb;
	void *arg;
	char id[QID_SIZE]; /* the inbound id */
	struct buf msg;    /* head then body */
	size_t hlen;
	struct bounce_result br;
	bool parsed;
	char **rcpts;
	size_t nrcpt, next;
	struct target t;
	int status;
	int parse_rc; /* bounce_parse's, on the thread pool */
	uv_work_t work;
	uv_timer_t timer;
};

static void store_next(struct store_req *sr);

static void
store_free(uv_handle_t *h)
{
	struct store_req *sr = h->data;
	struct ingest *in = sr->in;

	for (size_t i = 0; i < sr->nrcpt; i++)
		free(sr->rcpts[i]);
	free(sr->rcpts);
	buf_free(&sr->msg);
	if (sr->parsed)
		bounce_result_free(&sr->br);
	free(sr);
	ingest_unref(in);
}

static void
on_store_timer(uv_timer_t *t)
{
	struct store_req *sr = t->data;

	sr->cb(sr->arg, sr->status, sr->id);
	uv_close((uv_handle_t *)&sr->timer, store_free);
}

/* store_end - answer status, on the next loop turn, and free. */
static void
store_end(struct store_req *sr, int status)
{
	sr->status = status;
	uv_timer_start(&sr->timer, on_store_timer, 0, 0);
}

static void
on_next_timer(uv_timer_t *t)
{
	store_next(t->data);
}

/* store_skip - done with this recipient: the next one on the next loop turn. */
static void
store_skip(struct store_req *sr)
{
	sr->next++;
	uv_timer_start(&sr->timer, on_next_timer, 0, 0);
}

/* A value for an X-Kurier-* field: printable ASCII, at most FIELD_MAX. */
static void
field_value(struct buf *out, const char *v)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)(v ? v : ""); *p && n < FIELD_MAX; p++, n++)
		buf_append(out, *p >= 0x20 && *p < 0x7f ? (const char *)p : "?", 1);
}

static void
field(struct buf *out, const char *name, const char *v)
{
	buf_append(out, name, strlen(name));
	buf_append(out, ": ", 2);
	field_value(out, v);
	buf_append(out, "\r\n", 2);
}

/* The key of a return for one recipient: SHA-256 of body NUL rcpt, hex. */
static void
return_key(const struct store_req *sr, const char *rcpt, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL)
		log_fatal("ingest", "out_of_memory", "what=EVP_MD_CTX");
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	if (sr->msg.len > sr->hlen)
		EVP_DigestUpdate(ctx, sr->msg.data + sr->hlen, sr->msg.len - sr->hlen);
	EVP_DigestUpdate(ctx, "", 1);
	EVP_DigestUpdate(ctx, rcpt, strlen(rcpt));
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; i < 32 && i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

static bool
same_addr(const char *a, const char *b)
{
	return a != NULL && b != NULL && a[0] != '\0' && strcasecmp(a, b) == 0;
}

/* The report's entry about addr: by address, else the only one, else none. */
static const struct bounce_rcpt *
report_entry(const struct bounce_result *br, const char *addr)
{
	for (size_t i = 0; i < br->nrcpt; i++)
		if (same_addr(br->rcpt[i].recipient, addr) ||
		    same_addr(br->rcpt[i].original_recipient, addr))
			return &br->rcpt[i];
	if (br->nrcpt == 1)
		return &br->rcpt[0];
	return NULL;
}

/* The class and reason of t from its entry, or from the whole message. */
static void
classify(struct store_req *sr, struct target *t)
{
	t->br = report_entry(&sr->br, t->addr);
	if (t->br == NULL && t->addr[0] == '\0' && sr->br.nrcpt > 0)
		t->br = &sr->br.rcpt[0];
	if (t->br != NULL) {
		t->cls = t->br->cls;
		t->reason = t->br->reason ? t->br->reason : "unknown";
		if (t->addr[0] == '\0')
			str_copy(t->addr, t->br->recipient, sizeof t->addr);
		return;
	}
	switch (sr->br.type) {
	case BOUNCE_TYPE_COMPLAINT:
		t->cls = BOUNCE_CLASS_COMPLAINT;
		t->reason = "complaint";
		break;
	case BOUNCE_TYPE_AUTO_REPLY:
		t->cls = BOUNCE_CLASS_AUTO_REPLY;
		t->reason = "auto-reply";
		break;
	default:
		t->cls = BOUNCE_CLASS_NONE;
		t->reason = "unknown";
		break;
	}
}

static enum policy_ret_class
ret_class(enum bounce_class c)
{
	switch (c) {
	case BOUNCE_CLASS_HARD:
		return POLICY_RET_HARD;
	case BOUNCE_CLASS_SOFT:
		return POLICY_RET_SOFT;
	case BOUNCE_CLASS_COMPLAINT:
		return POLICY_RET_COMPLAINT;
	case BOUNCE_CLASS_AUTO_REPLY:
		return POLICY_RET_AUTO_REPLY;
	default:
		return POLICY_RET_NONE;
	}
}

/* --- the steps of one recipient: fetch, mark, policy, append ----------------------- */

static void
on_appended(void *arg, int status, uint32_t uidvalidity, uint32_t uid)
{
	struct store_req *sr = arg;
	struct target *t = &sr->t;
	char qa[600], qr[600], qu[100];

	(void)uidvalidity;
	if (status < 0 && status != -EEXIST) {
		log_warn("ingest", "return_not_stored", "return=%s rcpt=%s user=%s error=\"%s\"", sr->id,
		    log_quotes(qr, sizeof qr, t->rcpt), log_quotes(qu, sizeof qu, t->user),
		    uv_strerror(status));
		store_end(sr, status);
		return;
	}
	log_info("ingest", "return_stored",
	    "id=%s rcpt=%s class=%s reason=%s status=%s user=%s uid=%" PRIu32 " return=%s%s",
	    t->known ? t->vi.qid : "-", log_quotes(qa, sizeof qa, t->addr), bounce_class_name(t->cls),
	    t->reason, t->br != NULL && t->br->status[0] ? t->br->status : "-",
	    log_quotes(qu, sizeof qu, t->user), uid, sr->id, status == -EEXIST ? " repeated=yes" : "");
	store_skip(sr);
}

static void
step_append(struct store_req *sr)
{
	struct target *t = &sr->t;
	struct mbox_append a;
	struct buf data = BUF_INIT;
	int rc;

	if (sr->in->closing) {
		store_end(sr, -ECANCELED);
		return;
	}
	field(&data, "X-Kurier-Class", bounce_class_name(t->cls));
	field(&data, "X-Kurier-Reason", t->reason);
	field(&data, "X-Kurier-Recipient", t->addr);
	field(&data, "X-Kurier-Queue-Id", t->known ? t->vi.qid : "");
	buf_append(&data, sr->msg.data, sr->msg.len);
	memset(&a, 0, sizeof a);
	a.user = t->user;
	a.folder = "INBOX";
	a.data = data.data;
	a.len = data.len;
	a.flags = "";
	a.dedup_key = t->key;
	rc = mbox_append(sr->in->st, &a, on_appended, sr);
	buf_free(&data);
	if (rc < 0)
		on_appended(sr, rc, 0, 0);
}

static void
on_policy(void *arg, int status, const struct policy_return_result *res)
{
	struct store_req *sr = arg;
	struct target *t = &sr->t;
	char qa[600];

	if (status < 0) {
		log_warn("ingest", "return_policy_failed", "id=%s rcpt=%s error=\"%s\" effect=\"451, the sender retries\"",
		    t->vi.qid, log_quotes(qa, sizeof qa, t->addr), uv_strerror(status));
		store_end(sr, status);
		return;
	}
	if (res->suppressed != NULL)
		log_info("ingest", "suppression_added", "id=%s scope=%s to=%s reason=%s soft_count=%" PRIu64,
		    t->vi.qid, t->scope, log_quotes(qa, sizeof qa, t->addr), res->suppressed,
		    res->soft_count);
	step_append(sr);
}

static void
step_policy(struct store_req *sr)
{
	struct target *t = &sr->t;
	struct policy_return r;
	char text[300];
	int rc;

	if (sr->in->closing) {
		store_end(sr, -ECANCELED);
		return;
	}
	/* Without the message's record there is no sending domain to act for. */
	if (sr->in->pol == NULL || !t->known || t->unsure || strchr(t->addr, '@') == NULL ||
	    !str_is_username(t->user)) {
		step_append(sr);
		return;
	}
	snprintf(text, sizeof text, "%s%s%s", t->br && t->br->status[0] ? t->br->status : "",
	    t->br && t->br->status[0] ? " " : "", t->br && t->br->diagnostic ? t->br->diagnostic : t->reason);
	memset(&r, 0, sizeof r);
	r.key = t->key;
	r.user = t->user;
	r.scope = t->scope;
	r.addr = t->addr;
	r.cls = ret_class(t->cls);
	r.reason = t->reason;
	r.status = t->br ? t->br->status : "";
	r.qid = t->vi.qid;
	r.text = text;
	rc = policy_return(sr->in->pol, &r, on_policy, sr);
	if (rc < 0)
		on_policy(sr, rc, NULL);
}

static void
on_marked(void *arg, int status)
{
	struct store_req *sr = arg;
	struct target *t = &sr->t;
	char qa[600];

	if (status == 0)
		log_info("ingest", "recipient_bounced", "id=%s rcpt=%s reason=%s", t->vi.qid,
		    log_quotes(qa, sizeof qa, t->addr), t->reason);
	else if (status == -EALREADY || status == -ENOENT || status == -EBADMSG)
		/* Bounced before (a repeated return), or nothing left to mark. */
		log_debug("ingest", "recipient_not_marked", "id=%s rcpt=%s why=\"%s\"", t->vi.qid,
		    log_quotes(qa, sizeof qa, t->addr), uv_strerror(status));
	else {
		log_warn("ingest", "mark_bounced_failed", "id=%s rcpt=%s error=\"%s\" effect=\"451, the sender retries\"",
		    t->vi.qid, log_quotes(qa, sizeof qa, t->addr), uv_strerror(status));
		store_end(sr, status);
		return;
	}
	step_policy(sr);
}

static void
step_mark(struct store_req *sr)
{
	struct target *t = &sr->t;
	struct queue_bounce b;
	const char *mta;
	char reply[600];
	int rc;

	if (t->cls != BOUNCE_CLASS_HARD || !t->known || t->unsure) {
		step_policy(sr);
		return;
	}
	mta = sr->br.reporting_mta && sr->br.reporting_mta[0] ? sr->br.reporting_mta : NULL;
	snprintf(reply, sizeof reply, "returned: %s %s%s%s%s",
	    t->br && t->br->status[0] ? t->br->status : "5.0.0",
	    t->br && t->br->diagnostic && t->br->diagnostic[0] ? t->br->diagnostic : t->reason,
	    mta ? " (reported by " : "", mta ? mta : "", mta ? ")" : "");
	for (char *c = reply; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
	memset(&b, 0, sizeof b);
	b.id = t->vi.qid;
	b.rcpt_idx = t->vi.rcpt_idx;
	b.addr = t->addr;
	b.reply = reply;
	b.mta = t->br && t->br->remote_mta ? t->br->remote_mta : sr->br.reporting_mta;
	rc = queue_mark_bounced(sr->in->q, &b, on_marked, sr);
	if (rc < 0)
		on_marked(sr, rc);
}

/* The user a return goes to when the message had none, or is unknown. */
static const char *
fallback_user(const struct config *cfg, bool role)
{
	if (!role && cfg->relay.trusted_user[0])
		return cfg->relay.trusted_user;
	return cfg->mailbox.postmaster;
}

static void
on_store_fetched(void *arg, int status, struct queue_info *infos, size_t n)
{
	struct store_req *sr = arg;
	struct target *t = &sr->t;
	const struct queue_info *qi = n == 1 && infos[0].exists && !infos[0].corrupt ? &infos[0] : NULL;
	const struct envelope *e;
	const char *at;

	if (status < 0) {
		store_end(sr, status);
		return;
	}
	if (sr->in->closing) {
		store_end(sr, -ECANCELED);
		return;
	}
	if (qi == NULL || t->vi.rcpt_idx >= qi->env.nrcpt) {
		/* Gone since RCPT: keep the return, act on nothing. */
		t->known = false;
		classify(sr, t);
		str_copy(t->user, fallback_user(sr->in->cfg, t->user[0] != '\0'), sizeof t->user);
		if (t->user[0] == '\0') {
			log_warn("ingest", "return_dropped", "return=%s id=%s why=\"message unknown, no [relay] trusted_user or [mailbox] postmaster to keep it for\"",
			    sr->id, t->vi.qid);
			store_skip(sr);
			return;
		}
		step_append(sr);
		return;
	}
	e = &qi->env;
	t->known = true;
	/* The recipient: the token's, or for a job token the report's among its domain. */
	str_copy(t->addr, e->rcpt[t->vi.rcpt_idx].addr, sizeof t->addr);
	if (t->vi.job) {
		const char *dom = e->rcpt[t->vi.rcpt_idx].domain;
		size_t njob = 0;
		bool found = false;

		for (size_t k = 0; k < e->nrcpt; k++)
			njob += strcmp(e->rcpt[k].domain, dom) == 0;
		for (size_t i = 0; i < sr->br.nrcpt; i++) {
			for (size_t k = 0; k < e->nrcpt && !found; k++) {
				if (strcmp(e->rcpt[k].domain, dom) != 0)
					continue;
				if (same_addr(sr->br.rcpt[i].recipient, e->rcpt[k].addr) ||
				    same_addr(sr->br.rcpt[i].original_recipient, e->rcpt[k].addr)) {
					str_copy(t->addr, e->rcpt[k].addr, sizeof t->addr);
					found = true;
				}
			}
			if (found)
				break;
		}
		/*
		 * Which of several it is about, the report does not say (a
		 * forwarded address, say): store it under the report's own
		 * recipient, act on none.
		 */
		t->unsure = !found && njob > 1;
		if (t->unsure)
			t->addr[0] = '\0';
	}
	classify(sr, t);
	if (t->user[0] == '\0')
		str_copy(t->user, e->user && e->user[0] ? e->user : fallback_user(sr->in->cfg, false),
		    sizeof t->user);
	at = e->sender ? strrchr(e->sender, '@') : NULL;
	str_copy(t->scope, at ? at + 1 : "", sizeof t->scope);
	str_lower(t->scope);
	if (t->user[0] == '\0') {
		log_warn("ingest", "return_dropped", "return=%s id=%s why=\"no user: the message had none and [relay] trusted_user is empty\"",
		    sr->id, t->vi.qid);
		store_skip(sr);
		return;
	}
	step_mark(sr);
}

/* store_next - the next envelope recipient, or the answer once all are done. */
static void
store_next(struct store_req *sr)
{
	struct ingest *in = sr->in;
	struct target *t = &sr->t;
	const char *ids[1];
	int rc;

	if (in->closing) {
		store_end(sr, -ECANCELED);
		return;
	}
	if (sr->next >= sr->nrcpt) {
		store_end(sr, 0);
		return;
	}
	memset(t, 0, sizeof *t);
	str_copy(t->rcpt, sr->rcpts[sr->next], sizeof t->rcpt);
	str_lower(t->rcpt);
	return_key(sr, t->rcpt, t->key);
	switch (addr_kind(in, t->rcpt, &t->vi)) {
	case ADDR_VERP:
		t->token = true;
		break;
	case ADDR_ROLE:
		str_copy(t->user, in->cfg->mailbox.postmaster, sizeof t->user);
		/* A report sent there may still carry our return path inside. */
		if (sr->br.orig_return_path != NULL && sr->br.orig_return_path[0] &&
		    addr_kind(in, sr->br.orig_return_path, &t->vi) == ADDR_VERP)
			t->token = true;
		break;
	default:
		/* Not taken at RCPT; the session never hands it on. */
		store_skip(sr);
		return;
	}
	if (!t->token) {
		classify(sr, t);
		if (t->user[0] == '\0') {
			store_skip(sr);
			return;
		}
		step_append(sr);
		return;
	}
	ids[0] = t->vi.qid;
	rc = queue_fetch(in->q, ids, 1, on_store_fetched, sr);
	if (rc < 0)
		store_end(sr, rc);
}

/* parse_work - on the thread pool: touches nothing but sr's message and result. */
static void
parse_work(uv_work_t *w)
{
	struct store_req *sr = w->data;

	sr->parse_rc = bounce_parse(sr->msg.data ? sr->msg.data : "", sr->msg.len, &sr->br);
}

static void
parse_done(uv_work_t *w, int status)
{
	struct store_req *sr = w->data;

	if (status < 0) {
		store_end(sr, status);
		return;
	}
	if (sr->parse_rc < 0) {
		log_warn("ingest", "parse_failed", "return=%s error=\"%s\"", sr->id, uv_strerror(sr->parse_rc));
		store_end(sr, sr->parse_rc);
		return;
	}
	sr->parsed = true;
	store_next(sr);
}

int
ingest_store(struct ingest *in, const struct envelope *env, const char *head,
    size_t hlen, const char *body, size_t blen, ingest_stored_cb *cb, void *arg)
{
	struct store_req *sr;
	int rc;

	if (in->closing)
		return -ECANCELED;
	if (env == NULL || env->nrcpt == 0 || cb == NULL || (hlen > 0 && head == NULL) ||
	    (blen > 0 && body == NULL))
		return -EINVAL;
	if (!queue_is_up(in->q))
		return -ENOTCONN;
	sr = xcalloc(1, sizeof *sr);
	sr->in = in;
	sr->cb = cb;
	sr->arg = arg;
	str_copy(sr->id, env->id, sizeof sr->id);
	buf_append(&sr->msg, head, hlen);
	buf_append(&sr->msg, body, blen);
	sr->hlen = hlen;
	sr->rcpts = xcalloc(env->nrcpt, sizeof *sr->rcpts);
	for (size_t i = 0; i < env->nrcpt; i++)
		sr->rcpts[i] = xstrdup(env->rcpt[i].addr ? env->rcpt[i].addr : "");
	sr->nrcpt = env->nrcpt;
	uv_timer_init(in->loop, &sr->timer);
	sr->timer.data = sr;
	sr->work.data = sr;
	in->pending++;
	rc = uv_queue_work(in->loop, &sr->work, parse_work, parse_done);
	if (rc < 0)
		parse_done(&sr->work, rc);
	return 0;
}

/* --- lifecycle ------------------------------------------------------------------- */

int
ingest_open(struct ingest **out, uv_loop_t *loop, const struct config *cfg,
    struct queue *q, struct policy *pol, struct mbox_store *st, char *err, size_t errsz)
{
	struct ingest *in;
	int rc;

	*out = NULL;
	if (loop == NULL || cfg == NULL || q == NULL || st == NULL)
		return str_err(err, errsz, -EINVAL, "ingest: loop, config, queue and store are needed");
	in = xcalloc(1, sizeof *in);
	rc = verp_load_key(cfg->deliver.verp_secret, cfg->server.data_dir, in->key, err, errsz);
	if (rc < 0) {
		free(in);
		return rc;
	}
	in->loop = loop;
	in->cfg = cfg;
	in->q = q;
	in->pol = pol;
	in->st = st;
	in->pending = 1; /* the module's own reference, dropped by close */
	*out = in;
	return 0;
}

void
ingest_close(struct ingest *in, void (*closed)(void *arg), void *arg)
{
	if (in == NULL || in->closing)
		return;
	in->closing = true;
	in->closed = closed;
	in->closed_arg = arg;
	ingest_unref(in);
}
