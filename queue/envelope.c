/*
 * envelope - envelope and job-state records.  See envelope.h.
 */
#include "queue/envelope.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "core/xmalloc.h"

static const char *const state_names[RCPT_NSTATES] = {
	[RCPT_QUEUED] = "queued",
	[RCPT_DEFERRED] = "deferred",
	[RCPT_DELIVERED] = "delivered",
	[RCPT_BOUNCED] = "bounced",
	[RCPT_SUPPRESSED] = "suppressed",
	[RCPT_EXPIRED] = "expired",
};

const char *
rcpt_state_name(enum rcpt_state s)
{
	return (unsigned)s < RCPT_NSTATES ? state_names[s] : "?";
}

int
rcpt_state_parse(const char *name, enum rcpt_state *out)
{
	for (int i = 0; i < RCPT_NSTATES; i++) {
		if (strcmp(name, state_names[i]) == 0) {
			*out = (enum rcpt_state)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool
rcpt_state_final(enum rcpt_state s)
{
	return s != RCPT_QUEUED && s != RCPT_DEFERRED;
}

const char *
stream_name(enum queue_stream s)
{
	return s == STREAM_BROADCAST ? "broadcast" : "transactional";
}

char
stream_code(enum queue_stream s)
{
	return s == STREAM_BROADCAST ? 'b' : 't';
}

int
stream_parse(const char *s, enum queue_stream *out)
{
	if (strcmp(s, "transactional") == 0 || strcmp(s, "t") == 0)
		*out = STREAM_TRANSACTIONAL;
	else if (strcmp(s, "broadcast") == 0 || strcmp(s, "b") == 0)
		*out = STREAM_BROADCAST;
	else
		return -EINVAL;
	return 0;
}

void
envelope_init(struct envelope *e)
{
	memset(e, 0, sizeof *e);
}

void
envelope_free(struct envelope *e)
{
	free(e->sender);
	free(e->user);
	free(e->client);
	free(e->helo);
	free(e->envid);
	for (size_t i = 0; i < e->nrcpt; i++) {
		free(e->rcpt[i].addr);
		free(e->rcpt[i].orcpt);
		free(e->rcpt[i].domain);
	}
	free(e->rcpt);
	envelope_init(e);
}

void
envelope_set(char **field, const char *v)
{
	free(*field);
	*field = v ? xstrdup(v) : NULL;
}

/* The lower-cased domain after the last '@', or NULL if there is none. */
static char *
domain_of(const char *addr, size_t len)
{
	const char *at = NULL;

	for (size_t i = 0; i < len; i++)
		if (addr[i] == '@')
			at = addr + i;
	if (at == NULL || at + 1 == addr + len)
		return NULL;
	return str_lower(xmemdup0(at + 1, len - (size_t)(at + 1 - addr)));
}

static bool
domain_ok(const char *d)
{
	/* Used in Redis key names and "ID/DOMAIN" job names. */
	for (const char *p = d; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '/' || *p == 0x7f)
			return false;
	return true;
}

static int
add_rcpt(struct envelope *e, const char *addr, size_t alen, const char *orcpt,
    size_t olen, unsigned notify)
{
	struct env_rcpt *r;
	char *dom;

	if (e->nrcpt >= ENV_RCPT_MAX || alen == 0 || alen > ENV_FIELD_MAX ||
	    memchr(addr, '\0', alen) != NULL || olen > ENV_FIELD_MAX)
		return -EINVAL;
	dom = domain_of(addr, alen);
	if (dom == NULL)
		return -EINVAL;
	if (!domain_ok(dom)) {
		free(dom);
		return -EINVAL;
	}
	if ((e->nrcpt & (e->nrcpt - 1)) == 0)
		e->rcpt = xreallocarray(e->rcpt, e->nrcpt ? e->nrcpt * 2 : 1, sizeof *e->rcpt);
	r = &e->rcpt[e->nrcpt++];
	r->addr = xmemdup0(addr, alen);
	r->orcpt = orcpt ? xmemdup0(orcpt, olen) : NULL;
	r->notify = notify;
	r->domain = dom;
	return 0;
}

int
envelope_add_rcpt(struct envelope *e, const char *addr, const char *orcpt,
    unsigned notify)
{
	return add_rcpt(e, addr, strlen(addr), orcpt, orcpt ? strlen(orcpt) : 0, notify);
}

static bool
field_fits(const char *s)
{
	return s == NULL || strnlen(s, ENV_FIELD_MAX + 1) <= ENV_FIELD_MAX;
}

int
envelope_check(const struct envelope *e)
{
	if (e->nrcpt == 0 || !field_fits(e->sender) || !field_fits(e->user) ||
	    !field_fits(e->client) || !field_fits(e->helo) || !field_fits(e->envid))
		return -EINVAL;
	return 0;
}

/* --- encoding ---------------------------------------------------------- */

static void
put(struct buf *out, char tag, const void *p, size_t len)
{
	buf_appendf(out, "%c%zu:", tag, len);
	buf_append(out, p, len);
}

static void
puts_(struct buf *out, char tag, const char *s)
{
	if (s != NULL)
		put(out, tag, s, strlen(s));
}

static void
putu(struct buf *out, char tag, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);

	put(out, tag, tmp, (size_t)n);
}

void
envelope_encode(const struct envelope *e, struct buf *out)
{
	char st = stream_code(e->stream);

	buf_append(out, "E1", 2);
	puts_(out, 'i', e->id);
	put(out, 's', &st, 1);
	puts_(out, 'f', e->sender ? e->sender : "");
	puts_(out, 'u', e->user);
	puts_(out, 'c', e->client);
	puts_(out, 'h', e->helo);
	putu(out, 'a', e->arrival_ms);
	putu(out, 'z', e->size);
	puts_(out, 'e', e->envid);
	if (e->ret != RET_UNSET)
		put(out, 'r', e->ret == RET_FULL ? "F" : "H", 1);
	if (e->flags)
		putu(out, 'x', e->flags);
	for (size_t i = 0; i < e->nrcpt; i++) {
		puts_(out, 'R', e->rcpt[i].addr);
		puts_(out, 'O', e->rcpt[i].orcpt);
		if (e->rcpt[i].notify)
			putu(out, 'N', e->rcpt[i].notify);
	}
	put(out, '.', "", 0);
}

void
jobstate_encode(const struct jobstate *j, struct buf *out)
{
	buf_append(out, "J1", 2);
	puts_(out, 'd', j->domain);
	for (size_t i = 0; i < j->n; i++) {
		const struct rcpt_status *r = &j->r[i];

		putu(out, 'R', r->idx);
		putu(out, 'S', (uint64_t)r->state);
		if (r->attempts)
			putu(out, 'A', r->attempts);
		if (r->next_ms)
			putu(out, 'T', r->next_ms);
		if (r->updated_ms)
			putu(out, 'U', r->updated_ms);
		/* A remote server's reply can be longer than a decoder accepts. */
		if (r->reply != NULL)
			put(out, 'Y', r->reply, strnlen(r->reply, ENV_FIELD_MAX));
	}
	put(out, '.', "", 0);
}

/* --- decoding ---------------------------------------------------------- */

struct field {
	char tag;
	const char *p;
	size_t len;
};

/* The next field at *pos; 1 with f filled, 0 at the end, -EBADMSG. */
static int
next_field(const char *p, size_t len, size_t *pos, struct field *f)
{
	size_t i = *pos, n = 0, digits = 0;

	if (i == len)
		return 0;
	f->tag = p[i++];
	while (i < len && p[i] >= '0' && p[i] <= '9') {
		if (++digits > 7)
			return -EBADMSG;
		n = n * 10 + (size_t)(p[i++] - '0');
	}
	if (digits == 0 || i == len || p[i] != ':')
		return -EBADMSG;
	i++;
	if (n > len - i)
		return -EBADMSG;
	f->p = p + i;
	f->len = n;
	*pos = i + n;
	return 1;
}

static int
field_str(const struct field *f, char **out)
{
	if (*out != NULL || f->len > ENV_FIELD_MAX || memchr(f->p, '\0', f->len))
		return -EBADMSG;
	*out = xmemdup0(f->p, f->len);
	return 0;
}

static int
field_u64(const struct field *f, uint64_t *out)
{
	return str_to_u64n(f->p, f->len, out) == 0 ? 0 : -EBADMSG;
}

int
envelope_decode(struct envelope *e, const void *data, size_t len)
{
	const char *p = data;
	struct field f;
	size_t pos = 2;
	uint64_t v;
	bool have_id = false, have_time = false, have_sender = false, have_end = false;
	struct env_rcpt *cur = NULL;
	int rc;

	envelope_init(e);
	if (len < 2 || p[0] != 'E' || p[1] != '1')
		return -EBADMSG;
	while ((rc = next_field(p, len, &pos, &f)) == 1) {
		switch (f.tag) {
		case 'i':
			if (have_id || f.len != QID_LEN)
				goto bad;
			memcpy(e->id, f.p, QID_LEN);
			e->id[QID_LEN] = '\0';
			if (!qid_valid(e->id))
				goto bad;
			have_id = true;
			break;
		case 's':
			if (f.len != 1 || (f.p[0] != 't' && f.p[0] != 'b'))
				goto bad;
			e->stream = f.p[0] == 'b' ? STREAM_BROADCAST : STREAM_TRANSACTIONAL;
			break;
		case 'f':
			if (field_str(&f, &e->sender) < 0)
				goto bad;
			have_sender = true;
			break;
		case 'u':
			if (field_str(&f, &e->user) < 0)
				goto bad;
			break;
		case 'c':
			if (field_str(&f, &e->client) < 0)
				goto bad;
			break;
		case 'h':
			if (field_str(&f, &e->helo) < 0)
				goto bad;
			break;
		case 'e':
			if (field_str(&f, &e->envid) < 0)
				goto bad;
			break;
		case 'a':
			if (field_u64(&f, &e->arrival_ms) < 0)
				goto bad;
			have_time = true;
			break;
		case 'z':
			if (field_u64(&f, &e->size) < 0)
				goto bad;
			break;
		case 'r':
			if (f.len != 1 || (f.p[0] != 'F' && f.p[0] != 'H'))
				goto bad;
			e->ret = f.p[0] == 'F' ? RET_FULL : RET_HDRS;
			break;
		case 'x':
			if (field_u64(&f, &v) < 0 || v > (ENV_F_SMTPUTF8 | ENV_F_8BITMIME))
				goto bad;
			e->flags = (unsigned)v;
			break;
		case 'R':
			if (f.len > ENV_FIELD_MAX || add_rcpt(e, f.p, f.len, NULL, 0, 0) < 0)
				goto bad;
			cur = &e->rcpt[e->nrcpt - 1];
			break;
		case 'O':
			if (cur == NULL || field_str(&f, &cur->orcpt) < 0)
				goto bad;
			break;
		case 'N':
			if (cur == NULL || cur->notify || field_u64(&f, &v) < 0 || v == 0 || v > 15)
				goto bad;
			cur->notify = (unsigned)v;
			break;
		case '.':
			/* The end mark: without it a cut at a field boundary would pass. */
			if (f.len != 0 || pos != len)
				goto bad;
			have_end = true;
			break;
		default:
			goto bad;
		}
	}
	if (rc < 0 || !have_end || !have_id || !have_time || !have_sender || e->nrcpt == 0)
		goto bad;
	return 0;
bad:
	envelope_free(e);
	return -EBADMSG;
}

void
jobstate_free(struct jobstate *j)
{
	for (size_t i = 0; i < j->n; i++)
		free(j->r[i].reply);
	free(j->r);
	free(j->domain);
	memset(j, 0, sizeof *j);
}

int
jobstate_decode(struct jobstate *j, const void *data, size_t len)
{
	const char *p = data;
	struct field f;
	size_t pos = 2;
	uint64_t v;
	struct rcpt_status *cur = NULL;
	bool have_end = false;
	int rc;

	memset(j, 0, sizeof *j);
	if (len < 2 || p[0] != 'J' || p[1] != '1')
		return -EBADMSG;
	while ((rc = next_field(p, len, &pos, &f)) == 1) {
		switch (f.tag) {
		case 'd':
			if (field_str(&f, &j->domain) < 0 || j->domain[0] == '\0')
				goto bad;
			break;
		case 'R':
			if (field_u64(&f, &v) < 0 || v >= ENV_RCPT_MAX || j->n >= ENV_RCPT_MAX)
				goto bad;
			if ((j->n & (j->n - 1)) == 0)
				j->r = xreallocarray(j->r, j->n ? j->n * 2 : 1, sizeof *j->r);
			cur = &j->r[j->n++];
			memset(cur, 0, sizeof *cur);
			cur->idx = (uint32_t)v;
			cur->state = RCPT_NSTATES;
			break;
		case 'S':
			if (cur == NULL || cur->state != RCPT_NSTATES || field_u64(&f, &v) < 0 ||
			    v >= RCPT_NSTATES)
				goto bad;
			cur->state = (enum rcpt_state)v;
			break;
		case 'A':
			if (cur == NULL || field_u64(&f, &v) < 0 || v > UINT32_MAX)
				goto bad;
			cur->attempts = (uint32_t)v;
			break;
		case 'T':
			if (cur == NULL || field_u64(&f, &cur->next_ms) < 0)
				goto bad;
			break;
		case 'U':
			if (cur == NULL || field_u64(&f, &cur->updated_ms) < 0)
				goto bad;
			break;
		case 'Y':
			if (cur == NULL || field_str(&f, &cur->reply) < 0)
				goto bad;
			break;
		case '.':
			/* The end mark: without it a cut at a field boundary would pass. */
			if (f.len != 0 || pos != len)
				goto bad;
			have_end = true;
			break;
		default:
			goto bad;
		}
		/* A recipient is complete once the next one starts. */
	}
	if (rc < 0 || !have_end || j->domain == NULL || j->n == 0)
		goto bad;
	for (size_t i = 0; i < j->n; i++)
		if (j->r[i].state == RCPT_NSTATES)
			goto bad;
	return 0;
bad:
	jobstate_free(j);
	return -EBADMSG;
}

int
jobstate_check(const struct jobstate *j, const struct envelope *e)
{
	for (size_t i = 0; i < j->n; i++) {
		uint32_t idx = j->r[i].idx;

		if (idx >= e->nrcpt || strcmp(e->rcpt[idx].domain, j->domain) != 0)
			return -EBADMSG;
		for (size_t k = 0; k < i; k++)
			if (j->r[k].idx == idx)
				return -EBADMSG;
	}
	return 0;
}

struct jobstate *
envelope_jobs(const struct envelope *e, size_t *njobs)
{
	struct jobstate *jobs = xcalloc(e->nrcpt ? e->nrcpt : 1, sizeof *jobs);
	size_t n = 0;

	for (size_t i = 0; i < e->nrcpt; i++) {
		struct jobstate *j = NULL;

		/* Recipients per message are few; a linear search is enough. */
		for (size_t k = 0; k < n; k++) {
			if (strcmp(jobs[k].domain, e->rcpt[i].domain) == 0) {
				j = &jobs[k];
				break;
			}
		}
		if (j == NULL) {
			j = &jobs[n++];
			j->domain = xstrdup(e->rcpt[i].domain);
		}
		if ((j->n & (j->n - 1)) == 0)
			j->r = xreallocarray(j->r, j->n ? j->n * 2 : 1, sizeof *j->r);
		memset(&j->r[j->n], 0, sizeof j->r[j->n]);
		j->r[j->n].idx = (uint32_t)i;
		j->r[j->n].state = RCPT_QUEUED;
		j->n++;
	}
	*njobs = n;
	return jobs;
}
