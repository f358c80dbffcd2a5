/*
 * smtpd_int - what the files of the SMTP server share: the server and
 * session structures and the functions each file gives the others
 * (smtpd__*).  Not for use outside relay/smtpd*.c.
 *
 * A session lives as long as its connection or any of its asynchronous
 * calls (password check, policy question, enqueue): refs counts them,
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
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/mailaddr.h"
#include "policy/auth.h"
#include "policy/policy.h"
#include "queue/envelope.h"
#include "relay/smtp_data.h"
#include "relay/smtp_parse.h"
#include "relay/smtpd.h"

struct conn;
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
	SMTPD_QUEUING,         /* waiting for the queue's answer */
	SMTPD_AUTH_PLAIN,      /* waiting for the PLAIN response */
	SMTPD_AUTH_USER,       /* LOGIN: waiting for the user name */
	SMTPD_AUTH_PASS,       /* LOGIN: waiting for the password */
	SMTPD_AUTH_CHECK,      /* waiting for the lock-out or password check */
	SMTPD_USER_FETCH,      /* MAIL of a trusted client: fetching trusted_user */
	SMTPD_RCPT_CHECK,      /* RCPT: waiting for the policy's verdict */
	SMTPD_STARTTLS,        /* 220 sent, handshake running */
	SMTPD_CLOSING,         /* last reply queued; closing */
};

enum smtpd_listener_kind {
	SMTPD_SUBMISSION,      /* STARTTLS */
	SMTPD_SUBMISSIONS,     /* implicit TLS */
};

struct smtpd_session;

struct smtpd {
	uv_loop_t *loop;
	const struct config *cfg;
	struct queue *queue;
	struct auth *auth;
	struct policy *policy;
	SSL_CTX *tls;
	struct listener *listeners[2];
	unsigned nlisteners_open;
	struct smtpd_session *sessions;   /* doubly linked, for stop */
	size_t nsessions;                 /* connected */
	size_t nalive;                    /* not freed (some wait for an answer) */
	/* Connections per client address: a small open hash. */
	struct smtpd_ipcount *ipcounts;
	size_t ipcount_cap;
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
};

/* smtpd.c */
void smtpd__enter_state(struct smtpd_session *s, enum smtpd_state st);
const char *smtpd__strstate(enum smtpd_state st);
void smtpd__reply(struct smtpd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void smtpd__flush(struct smtpd_session *s);
/* smtpd__close - flush the replies, then close the connection. */
void smtpd__close(struct smtpd_session *s);
void smtpd__ref(struct smtpd_session *s);
void smtpd__unref(struct smtpd_session *s);
/* smtpd__resume - an asynchronous step ended: go on with pipelined input. */
void smtpd__resume(struct smtpd_session *s);
void smtpd__start_tls(struct smtpd_session *s);
void smtpd__arm_timer(struct smtpd_session *s, uint64_t ms);
void smtpd__reset_transaction(struct smtpd_session *s);
/*
 * smtpd__refuse - reply res->reply, and log and count the refusal with
 * its rule (policy_refused) with the session as context ("sid=...
 * client=... user=..." and extra, e.g. "rcpt=\"...\"", when not NULL).
 */
void smtpd__refuse(struct smtpd_session *s, const struct policy_result *res,
    const char *extra);
/* smtpd__policy_down - policy could not be asked: 451 4.3.0, logged. */
void smtpd__policy_down(struct smtpd_session *s, const char *what, int status);

/* smtpd_cmd.c */
/* smtpd__command - run one command line; false to stop reading input now. */
bool smtpd__command(struct smtpd_session *s, const char *line, size_t len);
/* smtpd__auth_line - a line while an AUTH exchange waits for the client. */
void smtpd__auth_line(struct smtpd_session *s, const char *line, size_t len);
void smtpd__ehlo_banner(struct smtpd_session *s);

/* smtpd_msg.c */
/* smtpd__data_done - the terminating CRLF.CRLF arrived: check, queue, reply. */
void smtpd__data_done(struct smtpd_session *s);

#endif
