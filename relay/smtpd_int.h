/*
 * smtpd_int - what the files of the SMTP server share: the server and
 * session structures, the protocol operations, and the functions each
 * file gives the others (smtpd__*).  Not for use outside relay/.
 *
 * The files, and the one direction their calls go:
 *   smtpd.c          the server: listeners, accept, connections per address,
 *                    stop.  Starts sessions (smtpd__session_start).
 *   smtpd_session.c  the session core: input loop, replies, timers, TLS,
 *                    close and free, the command dispatch, and the one
 *                    state writer smtpd__enter_state().  It calls nothing in
 *                    the files below except through s->proto, and tells the
 *                    server of a closed or freed session through srv->hooks.
 *   smtpd_cmd.c      the submission protocol: its command table (check, then
 *                    run) and the commands with no transaction state.
 *   smtpd_auth.c     AUTH PLAIN and LOGIN (RFC 4954, 4616).
 *   smtpd_msg.c      MAIL, RCPT, DATA and the end of DATA: the sink.
 *   smtpd_inbound.c  the inbound MX for bounce domains: its command table
 *                    (sharing smtpd_cmd.c's commands without transaction
 *                    state and DATA), its own MAIL (SPF), RCPT (the inbound
 *                    sink's verdict) and end of DATA (DKIM, the trace and
 *                    authentication fields, the inbound sink).
 * smtpd_cmd.c and smtpd_inbound.c name the handlers of smtpd_auth.c and
 * smtpd_msg.c in their tables; those two call only the session core.
 *
 * A session lives as long as its connection or any of its asynchronous
 * calls (password check, policy question, store): refs counts them,
 * smtpd__unref() frees at zero.  Only smtpd__enter_state() writes
 * s->state.
 *
 * The listener decides nothing about policy itself: policy/check.h and
 * policy/policy.h give the verdicts and their replies, and every refusal
 * goes through smtpd__refuse(), which logs it with its rule and counts it.
 */
#ifndef KURIER_RELAY_SMTPD_INT_H
#define KURIER_RELAY_SMTPD_INT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/mailaddr.h"
#include "policy/auth.h"
#include "policy/dkimverify.h"
#include "policy/policy.h"
#include "policy/spfcheck.h"
#include "queue/envelope.h"
#include "relay/smtp_data.h"
#include "relay/smtp_parse.h"
#include "relay/smtpd.h"

struct conn;
struct conn_ops;
struct ipcount;
struct listener;

/* RFC 5321 4.5.3.1.4: 512 octets with CRLF; MAIL/RCPT parameters add to it. */
#define SMTPD_LINE_MAX (512 + 4 * 256)
/* RFC 4954 4: an AUTH line may be up to 12288 octets. */
#define SMTPD_AUTH_LINE_MAX 12288
/* Unconsumed input held while a reply is pending (pipelined commands). */
#define SMTPD_INPUT_MAX (64 * 1024)
/* Output queued for a client that does not read before it is dropped. */
#define SMTPD_OUTPUT_MAX (256 * 1024)

enum smtpd_state {
	SMTPD_TLS_WAIT,        /* implicit TLS: handshake before the banner */
	SMTPD_GREET,           /* banner sent, waiting for EHLO/HELO */
	SMTPD_READY,           /* EHLO done: AUTH, MAIL, ... */
	SMTPD_MAIL,            /* MAIL accepted: RCPT */
	SMTPD_RCPT,            /* at least one RCPT: RCPT, DATA */
	SMTPD_DATA,            /* reading the message */
	SMTPD_QUEUING,         /* waiting for the sink to store the message */
	SMTPD_AUTH_PLAIN,      /* waiting for the PLAIN response */
	SMTPD_AUTH_USER,       /* LOGIN: waiting for the user name */
	SMTPD_AUTH_PASS,       /* LOGIN: waiting for the password */
	SMTPD_AUTH_CHECK,      /* waiting for the lock-out or password check */
	SMTPD_USER_FETCH,      /* MAIL of a trusted client: fetching trusted_user */
	SMTPD_RCPT_CHECK,      /* RCPT: waiting for the policy's (or inbound sink's) verdict */
	SMTPD_MAIL_CHECK,      /* inbound MAIL: waiting for the SPF verdict */
	SMTPD_VERIFY,          /* inbound end of DATA: verifying DKIM signatures */
	SMTPD_STARTTLS,        /* 220 sent, handshake running */
	SMTPD_CLOSING,         /* last reply queued; closing */
};

enum smtpd_listener_kind {
	SMTPD_SUBMISSION,      /* STARTTLS */
	SMTPD_SUBMISSIONS,     /* implicit TLS */
	SMTPD_INBOUND,         /* the inbound MX (port 25), STARTTLS */
};
#define SMTPD_NLISTENERS 3

struct smtpd_session;

/* One row of a protocol's command table: check, then run (STYLE.md 7). */
enum {
	CMD_NEED_EHLO = 1 << 0,   /* after EHLO/HELO only */
	CMD_NO_ARG = 1 << 1,      /* takes no argument */
	CMD_NO_TRANS = 1 << 2,    /* not inside a mail transaction */
	CMD_LAST = 1 << 3,        /* RFC 2920 3.1: ends a pipelined group: flush */
	CMD_JUNK = 1 << 4,        /* moves no mail forward (NOOP, RSET, ...) */
};

struct smtpd_cmd {
	enum smtp_verb verb;
	const char *name;
	unsigned flags;
	/*
	 * check - synchronous, touches no socket: replies and returns false
	 * when the command may not run now (counted as a protocol error).
	 * NULL: always runs.
	 */
	bool (*check)(struct smtpd_session *, const struct smtp_cmd *);
	/* run - does it; false when input must pause (an answer is awaited, or the end). */
	bool (*run)(struct smtpd_session *, const struct smtp_cmd *);
};

/*
 * smtpd_proto - what a protocol served by the session core is: which
 * commands exist and what they accept (the table), what EHLO advertises,
 * how an AUTH exchange reads its lines and what becomes of a complete
 * message.  Submission fills it (smtpd__submission, smtpd_cmd.c); the
 * inbound MX for bounce domains fills it with its own MAIL, RCPT and end
 * of DATA and no AUTH (smtpd__inbound, smtpd_inbound.c).
 */
struct smtpd_proto {
	const char *name;                 /* in log lines */
	const struct smtpd_cmd *commands; /* ends with a row whose name is NULL */
	/* ehlo - the EHLO reply, every line of it. */
	void (*ehlo)(struct smtpd_session *s);
	/* auth_line - a line while an AUTH exchange waits (NULL: no AUTH). */
	void (*auth_line)(struct smtpd_session *s, const char *line, size_t len);
	/* data_done - the terminating CRLF.CRLF arrived: check, store, reply. */
	void (*data_done)(struct smtpd_session *s);
	/* max_size - the most a message may hold (SIZE, DATA). */
	uint64_t (*max_size)(const struct config *cfg);
};

/* What the session core tells the server (smtpd.c sets them). */
struct smtpd_hooks {
	/* closed - a session's connection is gone (client: its address). */
	void (*closed)(struct smtpd *srv, const char *client);
	/* freed - a session was freed. */
	void (*freed)(struct smtpd *srv);
};

/* What a listener's accept callback gets: its server and what it serves. */
struct smtpd_listen {
	struct smtpd *srv;
	enum smtpd_listener_kind kind;
	const struct smtpd_proto *proto;
};

struct smtpd {
	uv_loop_t *loop;
	const struct config *cfg;
	struct smtpd_sink sink;           /* submission's */
	struct smtpd_sink inbound;        /* the inbound MX's; ops NULL: none */
	struct smtpd_users users;
	struct policy *policy;
	struct smtpd_hooks hooks;
	SSL_CTX *tls;
	struct listener *listeners[SMTPD_NLISTENERS];
	struct smtpd_listen listen[SMTPD_NLISTENERS];
	/* The inbound MX's SPF and DKIM checks (NULL without an inbound listener). */
	struct spfcheck *spf;
	bool spf_closing;
	struct dkimverify *dkim;
	bool dkim_closing;
	unsigned nlisteners_open;
	struct smtpd_session *sessions;   /* doubly linked, for stop */
	size_t nsessions;                 /* connected */
	size_t nalive;                    /* not freed (some wait for an answer) */
	/* Connections per client address (core/ipcount.h). */
	struct ipcount *ipcounts;
	uint64_t next_sid;
	bool stopping;
	uv_timer_t grace;
	void (*stop_done)(void *arg);
	void *stop_arg;
};

struct smtpd_session {
	struct smtpd *srv;
	struct smtpd_session *prev, *next;
	struct conn *conn;
	const struct smtpd_proto *proto;
	enum smtpd_listener_kind kind;
	char sid[20];                     /* session id in log lines */
	enum smtpd_state state;
	unsigned refs;
	uv_timer_t timer;
	bool timer_open;
	uint64_t started_ms;

	struct buf in;                    /* received, not yet consumed */
	struct buf out;                   /* replies not yet handed to conn */
	bool in_process;                  /* inside process_input(): no re-entry */
	bool read_paused;
	unsigned errors;                  /* protocol errors: [policy] max_errors */
	unsigned junk;                    /* junk commands since the last message */
	unsigned commands;

	char client[64];                  /* peer address */
	uint16_t client_port;
	char helo[256];
	bool esmtp;                       /* EHLO rather than HELO */
	bool tls;
	bool trusted;                     /* client in [relay] trusted_networks */

	/*
	 * Who sends: the authenticated user, or for a trusted client that
	 * did not authenticate, [relay] trusted_user (fetched at its first
	 * MAIL).  has_user says whether user and pu are set.
	 */
	bool authed;
	bool has_user;
	struct auth_user user;
	struct policy_user pu;            /* the user's effective rates */
	char auth_name[256];              /* the user name until the password is checked */
	char auth_pass[AUTH_PASSWORD_MAX + 1]; /* held across the lock-out check; wiped */
	size_t auth_passlen;
	bool auth_authzid_bad;            /* PLAIN asked to act for another user */
	auth_req_id auth_req;
	bool auth_pending;
	unsigned auth_failures;
	char mail_arg[SMTPD_LINE_MAX];    /* MAIL's argument while trusted_user is fetched */
	size_t mail_arglen;

	/* The transaction. */
	struct envelope env;
	struct mailaddr from;
	struct smtp_mail_params mp;
	struct smtp_data data;
	struct buf body;                  /* the message as received, unstuffed */
	uint64_t data_started_ms;
	unsigned rcpt_refused;
	/* RCPT waiting for policy_rcpt(): the recipient to add on OK. */
	char rcpt_addr[MAILADDR_PATH_MAX * 4];
	struct smtp_rcpt_params rcpt_params;
	/* Recipients accepted with 250 but dropped (suppressed = drop). */
	struct buf dropped;               /* each address NUL-terminated */
	size_t ndropped;
	uint64_t msgs;                    /* messages accepted in this session */

	/* The inbound MX's transaction: SPF at MAIL, DKIM at the end of DATA. */
	enum spfcheck_verdict spf_result;
	bool spf_helo;                    /* the identity checked was HELO (null sender) */
	char spf_domain[256];             /* the domain checked */
	char spf_why[SPFCHECK_WHY_SIZE];
	struct dkimverify_report *dkim;   /* the DKIM verdicts; NULL: not verified */
};

/* smtpd_session.c: the session core */
/*
 * smtpd__conn_ops - the callbacks of a session's conn: the server accepts
 * with them and NULL data (a refused connection stays NULL: no session).
 */
extern const struct conn_ops smtpd__conn_ops;
/*
 * smtpd__session_start - serve connection c (accepted by the server,
 * client already counted) with proto: banner, or the TLS handshake first
 * on an implicit-TLS listener.  The session owns c from now on.
 */
void smtpd__session_start(struct smtpd *srv, struct conn *c,
    const struct smtpd_proto *proto, enum smtpd_listener_kind kind);
/*
 * smtpd__enter_state - the one writer of s->state; logs old -> new at
 * debug.  CLOSING is final: later calls are ignored.
 */
void smtpd__enter_state(struct smtpd_session *s, enum smtpd_state st);
/* smtpd__strstate - the state's name in log lines; static. */
const char *smtpd__strstate(enum smtpd_state st);
/* smtpd__reply - queue one reply line (CRLF added, cut at 1021 octets); sent by smtpd__flush. */
void smtpd__reply(struct smtpd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* smtpd__flush - hand the queued replies to the connection; a client that never reads is dropped. */
void smtpd__flush(struct smtpd_session *s);
/* smtpd__close - flush the replies, then close the connection. */
void smtpd__close(struct smtpd_session *s);
/* smtpd__shutdown - 421 "shutting down", then close. */
void smtpd__shutdown(struct smtpd_session *s);
/* smtpd__ref, smtpd__unref - one more or one less holder; the last unref frees the session. */
void smtpd__ref(struct smtpd_session *s);
void smtpd__unref(struct smtpd_session *s);
/* smtpd__resume - an asynchronous step ended: go on with pipelined input. */
void smtpd__resume(struct smtpd_session *s);
/*
 * smtpd__start_tls - the 220 to STARTTLS is queued: flush it, drop the
 * unread plaintext (RFC 3207 5) and start the server handshake.
 */
void smtpd__start_tls(struct smtpd_session *s);
/* smtpd__arm_timer - (re)start the session's one timer: 421 4.4.2 when it fires. */
void smtpd__arm_timer(struct smtpd_session *s, uint64_t ms);
/* smtpd__reset_transaction - forget the envelope, the body and the dropped recipients. */
void smtpd__reset_transaction(struct smtpd_session *s);
/* smtpd__in_transaction - MAIL accepted, DATA not begun. */
bool smtpd__in_transaction(const struct smtpd_session *s);
/* smtpd__gone - whether an answer came for a session that no longer reads commands. */
bool smtpd__gone(const struct smtpd_session *s);
/* smtpd__set_user - the session now sends as user u: its rates from policy. */
void smtpd__set_user(struct smtpd_session *s, const struct auth_user *u);
/*
 * smtpd__refuse - reply res->reply, and log and count the refusal with
 * its rule (policy_refused) with the session as context ("sid=...
 * client=... user=..." and extra, e.g. "rcpt=\"...\"", when not NULL).
 */
void smtpd__refuse(struct smtpd_session *s, const struct policy_result *res,
    const char *extra);
/* smtpd__policy_down - policy could not be asked: 451 4.3.0, logged. */
void smtpd__policy_down(struct smtpd_session *s, const char *what, int status);

/* smtpd_cmd.c: the submission protocol, which smtpd.c serves on both listeners. */
extern const struct smtpd_proto smtpd__submission;
/* The rows of smtpd_cmd.c's table that hold no transaction state, for other tables. */
bool smtpd__check_helo(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__run_helo(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__check_starttls(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__run_starttls(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__run_rset(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__run_noop(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__run_quit(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__run_vrfy(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__run_not_offered(struct smtpd_session *s, const struct smtp_cmd *c);

/* smtpd_inbound.c: the inbound MX for bounce domains, served on [relay] inbound. */
extern const struct smtpd_proto smtpd__inbound;

/* smtpd_auth.c: the AUTH row of a command table (check, then run). */
bool smtpd__check_auth(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__run_auth(struct smtpd_session *s, const struct smtp_cmd *c);
/* smtpd__auth_line - a line while an AUTH exchange waits for the client. */
void smtpd__auth_line(struct smtpd_session *s, const char *line, size_t len);

/* smtpd_msg.c: the MAIL, RCPT and DATA rows of a command table (check, then run). */
bool smtpd__check_mail(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__run_mail(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__check_rcpt(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__run_rcpt(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__check_data(struct smtpd_session *s, const struct smtp_cmd *c);
bool smtpd__run_data(struct smtpd_session *s, const struct smtp_cmd *c);
/* smtpd__data_done - the terminating CRLF.CRLF arrived: check, store, reply. */
void smtpd__data_done(struct smtpd_session *s);
/*
 * What both protocols' ends of DATA share.
 * smtpd__data_malformed - refuse (550 5.6.0, logged and counted) a
 * message with a NUL byte, a bare CR or LF, or a line over 998 octets,
 * and end the transaction: true then.  Both protocols store only what
 * any MTA would relay on unchanged: no smuggling (RFC 5321 2.3.8).
 */
bool smtpd__data_malformed(struct smtpd_session *s);
/* smtpd__refuse_data - refuse the message with reply under rule (logged and counted). */
void smtpd__refuse_data(struct smtpd_session *s, const char *rule, const char *reply);
/* smtpd__transaction_over - the transaction ended (stored or refused): READY again. */
void smtpd__transaction_over(struct smtpd_session *s);
/*
 * smtpd__sink_store - hand sink the message: head (built by the caller)
 * and s->body from body_start, both freed here.  The store's status; on
 * a negative one done is not called.
 */
int smtpd__sink_store(struct smtpd_session *s, const struct smtpd_sink *sink, struct buf *head,
    size_t body_start, smtpd_stored_cb *done);
/*
 * smtpd__store_over - a store was answered (and replied to): the
 * transaction is over, a client still connected is flushed and read
 * again, and the reference the store held is dropped.
 */
void smtpd__store_over(struct smtpd_session *s);
/* smtpd__with_protocol - the "with" of the Received field (RFC 3848, RFC 6531). */
const char *smtpd__with_protocol(const struct smtpd_session *s);
/* smtpd__date - t as an RFC 5322 3.3 date-time, in English, UTC. */
void smtpd__date(char *dst, size_t size, time_t t);
/*
 * struct smtpd_head - where a message's header section ends (head_end:
 * before its empty line, or before the first line that is neither a
 * field nor a continuation: the empty line is missing, RFC 5322 2.1, and
 * is added there) and its body begins; found by smtpd__scan_head with
 * core/rfc5322's scanner.
 */
struct smtpd_head {
	size_t head_end;
	size_t body_start;
	bool has_blank;        /* the section ends with an empty line */
	bool message_id;
	bool date;
	bool bulk;             /* List-Unsubscribe, or Precedence bulk or list */
};
void smtpd__scan_head(const char *msg, size_t len, struct smtpd_head *f);

#endif
