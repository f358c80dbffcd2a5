/*
 * envelope - a queued message's envelope and per-recipient delivery
 * state, and their versioned binary records in Redis.
 *
 * Record format (version 1): a two-byte magic ("E1" for an envelope,
 * "J1" for a job state), then fields, each a one-byte tag, a decimal
 * length of at most 7 digits, ':' and that many bytes; a last field
 * ".0:" ends the record, so a record cut short is refused.  Tags of an
 * envelope: i id, s stream (t|b), f sender, u user, c client address,
 * h HELO name, a arrival (ms), z size, e ENVID, r RET (F|H), x flags
 * (decimal ENV_F_*), then per recipient R address (starts it), O ORCPT,
 * N NOTIFY bits.  Tags of a job state: d domain, then per recipient
 * R index (starts it), S state, A attempts, T next attempt (ms),
 * U last change (ms), Y last reply.  Decoders check every length, number
 * and tag, so a truncated or corrupt record is an error, never a crash;
 * unknown tags are errors (a newer writer bumps the version).
 */
#ifndef KURIER_QUEUE_ENVELOPE_H
#define KURIER_QUEUE_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "queue/qid.h"

#define ENV_RCPT_MAX 100000
#define ENV_FIELD_MAX 4096      /* longest string field */

enum queue_stream {
	STREAM_TRANSACTIONAL = 0,
	STREAM_BROADCAST = 1,
};

/* RFC 3461 NOTIFY bits; none set means the parameter was absent. */
enum {
	NOTIFY_NEVER = 1 << 0,
	NOTIFY_SUCCESS = 1 << 1,
	NOTIFY_FAILURE = 1 << 2,
	NOTIFY_DELAY = 1 << 3,
};

enum dsn_ret {
	RET_UNSET = 0,
	RET_FULL,
	RET_HDRS,
};

enum {
	ENV_F_SMTPUTF8 = 1 << 0,
	ENV_F_8BITMIME = 1 << 1,
};

struct env_rcpt {
	char *addr;    /* as given, without <> */
	char *orcpt;   /* RFC 3461 ORCPT ("rfc822;a@b"), or NULL */
	unsigned notify;
	char *domain;  /* lower-cased domain of addr; derived, not stored */
};

struct envelope {
	char id[QID_SIZE];
	enum queue_stream stream;
	char *sender;  /* "" for the null reverse path */
	char *user;    /* authenticated user, "" if none */
	char *client;  /* client IP address */
	char *helo;
	uint64_t arrival_ms;
	uint64_t size;
	char *envid;   /* RFC 3461 ENVID, or NULL */
	enum dsn_ret ret;
	unsigned flags;
	size_t nrcpt;
	struct env_rcpt *rcpt;
};

enum rcpt_state {
	RCPT_QUEUED = 0,
	RCPT_DEFERRED,
	RCPT_DELIVERED,
	RCPT_BOUNCED,
	RCPT_SUPPRESSED,
	RCPT_EXPIRED,
	RCPT_NSTATES
};

struct rcpt_status {
	uint32_t idx;          /* index into envelope.rcpt */
	enum rcpt_state state;
	uint32_t attempts;
	uint64_t next_ms;      /* next attempt, for deferred */
	uint64_t updated_ms;
	char *reply;           /* last reply, or NULL */
};

/* The delivery state of one recipient domain of a message. */
struct jobstate {
	char *domain;
	size_t n;
	struct rcpt_status *r;
};

const char *rcpt_state_name(enum rcpt_state s);
/* rcpt_state_parse - name -> state; 0 or -EINVAL. */
int rcpt_state_parse(const char *name, enum rcpt_state *out);
bool rcpt_state_final(enum rcpt_state s);
const char *stream_name(enum queue_stream s);   /* "transactional" | "broadcast" */
char stream_code(enum queue_stream s);          /* 't' | 'b' */
int stream_parse(const char *s, enum queue_stream *out);

/* envelope_init - an empty envelope (all strings NULL, no recipients). */
void envelope_init(struct envelope *e);
void envelope_free(struct envelope *e);
/*
 * envelope_add_rcpt - append a recipient; addr must hold a domain part
 * (after the last '@').  Copies its arguments.  0 or -EINVAL.
 */
int envelope_add_rcpt(struct envelope *e, const char *addr, const char *orcpt,
    unsigned notify);
/* envelope_set - replace one string field (*field) with a copy of v. */
void envelope_set(char **field, const char *v);

/*
 * envelope_check - whether e can be stored and read back: at least one
 * recipient and every string field at most ENV_FIELD_MAX bytes without
 * NUL.  0 or -EINVAL.
 */
int envelope_check(const struct envelope *e);
void envelope_encode(const struct envelope *e, struct buf *out);
/* envelope_decode - 0 or -EBADMSG (e is then empty; nothing leaks). */
int envelope_decode(struct envelope *e, const void *p, size_t len);

void jobstate_free(struct jobstate *j);
void jobstate_encode(const struct jobstate *j, struct buf *out);
/* jobstate_decode - 0 or -EBADMSG (j is then empty). */
int jobstate_decode(struct jobstate *j, const void *p, size_t len);
/*
 * jobstate_check - every index below nrcpt, once, and every recipient's
 * domain equal to j->domain.  0 or -EBADMSG.
 */
int jobstate_check(const struct jobstate *j, const struct envelope *e);

/*
 * envelope_jobs - group the recipients by domain into new job states
 * (all RCPT_QUEUED), in order of first appearance.  The caller frees each
 * with jobstate_free() and the array with free().
 */
struct jobstate *envelope_jobs(const struct envelope *e, size_t *njobs);

#endif
