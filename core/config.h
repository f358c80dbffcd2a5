/*
 * config - kurier's INI configuration, parsed with libinih into an
 * immutable struct config.
 *
 * Every key has a default (config_defaults()); a file only names what it
 * changes.  An unknown section or key, a repeated key, or a bad value is
 * refused with "FILE:LINE: reason".  The key reference is README.md's
 * "Configuration" section; keep the two in step.
 */
#ifndef KURIER_CORE_CONFIG_H
#define KURIER_CORE_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config_value.h"
#include "core/log.h"

#define CONFIG_DEFAULT_PATH "/etc/kurier/kurier.conf"
#define CONFIG_ERR_MAX 1024
#define CONFIG_SELECTOR_MAX 4   /* DKIM selectors per sending domain */
#define CONFIG_SELECTOR_LEN 64
#define CONFIG_MX_MAX 8         /* MX host patterns of one [destination] */
#define CONFIG_THROTTLE_MAX 8   /* throttling reply patterns of one [destination] */
#define CONFIG_THROTTLE_LEN 32

enum config_spf {
	CONFIG_SPF_OFF,
	CONFIG_SPF_WARN,    /* log a failing preflight, deliver anyway */
	CONFIG_SPF_DEFER,   /* hold the message until SPF passes */
};

/* Which DKIM signatures go to a destination. */
enum {
	CONFIG_DKIM_RSA = 1 << 0,
	CONFIG_DKIM_ED25519 = 1 << 1,
	CONFIG_DKIM_ALL = CONFIG_DKIM_RSA | CONFIG_DKIM_ED25519,
};

/* [policy] suppressed: what RCPT does with a suppressed recipient. */
enum config_suppressed {
	CONFIG_SUPPRESSED_REJECT,   /* 550 5.7.1 recipient suppressed (...) */
	CONFIG_SUPPRESSED_DROP,     /* 250, and the recipient is not delivered */
};

/* [mailbox] spf_fail: what the inbound MX does with a return whose SPF fails. */
enum config_spf_fail {
	CONFIG_SPF_FAIL_MARK,       /* accept, record Received-SPF: fail (the default) */
	CONFIG_SPF_FAIL_REJECT,     /* 550 5.7.23 at MAIL FROM (relay/smtpd_inbound.c) */
};

/* [destination D] require_tls. */
enum config_require_tls {
	CONFIG_TLS_OPTIONAL,        /* no: STARTTLS when offered (the default) */
	CONFIG_TLS_REQUIRED,        /* yes: encrypted, certificate not checked */
	CONFIG_TLS_VERIFY,          /* verify: encrypted and the certificate verified */
};

/* [deliver] route.DOMAIN = host:port; domain "*" routes everything. */
struct config_route {
	char domain[CONFIG_HOST_MAX];
	struct config_endpoint ep;
};

/* [domain D]: a sending domain. */
struct config_domain {
	char name[CONFIG_HOST_MAX];          /* lower case */
	char selector[CONFIG_SELECTOR_MAX][CONFIG_SELECTOR_LEN];
	unsigned nselector;
	char return_path[CONFIG_HOST_MAX];   /* VERP domain; default bounces.D */
	unsigned seen;                       /* keys set (parser bookkeeping) */
};

/*
 * [destination D]: rules for one recipient domain, or for every domain
 * whose MX hosts match mx (a group: "mx = .google.com" puts every domain
 * hosted at Google in it).  Shaping limits of 0 are unset: the built-in
 * rule of the same name (policy/dest.h) or the [deliver] value applies.
 */
struct config_destination {
	char name[CONFIG_HOST_MAX];          /* lower case */
	unsigned dkim;                       /* CONFIG_DKIM_* bits; 0 = none */
	enum config_require_tls require_tls;
	unsigned max_connections;            /* across the group; 0 = unset */
	unsigned max_messages_per_connection;/* 0 = unset */
	unsigned max_messages_per_minute;    /* across the group, per node; 0 = unset */
	/* MX host patterns: ".google.com" is a suffix, "mx.example.net" one host. */
	char mx[CONFIG_MX_MAX][CONFIG_HOST_MAX];
	unsigned nmx;
	/* Replies that mean "slow down": "4.7.28", "TSS04", "4.7.5*" (prefix). */
	char throttle[CONFIG_THROTTLE_MAX][CONFIG_THROTTLE_LEN];
	unsigned nthrottle;
	unsigned seen;                       /* CONFIG_DEST_* keys set */
};

/* Bits of config_destination.seen: which keys the file set. */
enum {
	CONFIG_DEST_DKIM = 1 << 0,
	CONFIG_DEST_REQUIRE_TLS = 1 << 1,
	CONFIG_DEST_MAX_CONNECTIONS = 1 << 2,
	CONFIG_DEST_MAX_MSGS_CONN = 1 << 3,
	CONFIG_DEST_MAX_MSGS_MIN = 1 << 4,
	CONFIG_DEST_MX = 1 << 5,
	CONFIG_DEST_THROTTLE = 1 << 6,
};

struct config {
	char path[PATH_MAX];
	struct {
		char hostname[CONFIG_HOST_MAX];
		char data_dir[PATH_MAX];
		enum log_level log_level;
		unsigned roles;            /* ROLE_* bits */
		uint64_t shutdown_grace_ms;
	} server;
	struct {
		struct config_endpoint address;
		char password[256];
		char prefix[64];
		uint64_t connect_timeout_ms;
		uint64_t reconnect_max_ms;
		unsigned connections;      /* the queue's connections (enqueues spread over them) */
	} redis;
	struct {
		char cert[PATH_MAX];       /* PEM chain; empty: self-signed in data_dir */
		char key[PATH_MAX];
	} tls;
	struct {
		struct config_listen submission;   /* STARTTLS, AUTH required */
		struct config_listen submissions;  /* implicit TLS */
		struct config_listen inbound;      /* port 25: returns for bounce domains only */
		struct config_rates inbound_rate;  /* inbound messages per client address (/64) */
		uint64_t max_message_size;
		unsigned max_recipients;
		unsigned max_connections;
		unsigned max_connections_per_ip;
		uint64_t command_timeout_ms;       /* waiting for a command */
		uint64_t data_timeout_ms;          /* the whole DATA phase */
		struct config_nets trusted_networks; /* submit without TLS/AUTH; n 0 = none */
		char trusted_user[65];             /* whom trusted clients act as */
	} relay;
	struct {
		struct config_rates rate;          /* messages per user (default for all users) */
		struct config_rates rcpt_rate;     /* recipients per user */
		enum config_suppressed suppressed;
		bool suppress_bounces;             /* a hard bounce adds the recipient */
		unsigned auth_fail_limit;          /* AUTH failures per address ... */
		uint64_t auth_fail_window_ms;      /* ... in this window lock it out ... */
		uint64_t auth_lockout_ms;          /* ... this long (454 4.7.0) */
		unsigned max_errors;               /* protocol errors per session, then 421 */
		unsigned max_junk_commands;        /* NOOP/RSET/VRFY/HELP/EHLO between messages, then 421 */
		uint64_t throttle_backoff_min_ms;  /* first suspension of a throttling destination */
		uint64_t throttle_backoff_max_ms;  /* longest one */
	} policy;
	struct {
		uint64_t lease_ms;
		uint64_t retention_ms;
		uint64_t events_max;
		uint64_t reap_interval_ms;
	} queue;
	struct {
		uint64_t retry_ms[CONFIG_RETRY_MAX];
		unsigned nretry;
		uint64_t lifetime_ms;
		unsigned concurrency;
		unsigned per_destination;
		bool dns_server_set;
		struct config_endpoint dns_server;  /* the one resolver; unset = system */
		uint64_t dns_timeout_ms;
		unsigned mx_port;
		char smarthost_user[256];
		char smarthost_password[256];
		char outbound_ip[64];               /* "" = the kernel's choice */
		enum config_spf spf_preflight;
		uint64_t connect_timeout_ms;
		uint64_t greeting_timeout_ms;
		uint64_t command_timeout_ms;
		uint64_t data_init_timeout_ms;
		uint64_t data_block_timeout_ms;
		uint64_t data_end_timeout_ms;
		unsigned max_messages_per_connection;
		uint64_t idle_timeout_ms;
		char verp_secret[256];              /* "" = data_dir/verp.key */
	} deliver;
	struct {
		uint64_t retention_ms;              /* returns kept this long per user */
		unsigned max_messages;              /* per user; past it the oldest go */
		uint64_t delay_warning_ms;          /* report a delay after this; 0 = never */
		bool dsn_to_sender;                 /* reports also to the envelope sender */
		char postmaster[65];                /* user who gets postmaster@/abuse@; "" = none */
		enum config_spf_fail spf_fail;
		uint64_t max_bounce_size;           /* inbound MX's SIZE */
		unsigned soft_bounce_limit;         /* soft bounces ... 0 = off */
		uint64_t soft_bounce_window_ms;     /* ... in this window suppress the address */
		struct config_listen pop3;          /* POP3 with STLS (RFC 1939, RFC 2595) */
		struct config_listen pop3s;         /* POP3 over implicit TLS (RFC 8314) */
		unsigned max_connections;           /* IMAP and POP3 sessions in all */
		unsigned max_connections_per_ip;    /* ... from one client address */
		uint64_t pop3_timeout_ms;           /* idle POP3 session closed after */
		struct config_listen imap;          /* IMAP with STARTTLS (RFC 3501) */
		struct config_listen imaps;         /* IMAP over implicit TLS (RFC 8314) */
		uint64_t imap_timeout_ms;           /* idle IMAP session closed after */
	} mailbox;
	/*
	 * Lists of any length, on the heap: config_free() releases them and
	 * config_copy() duplicates them.
	 */
	struct config_route *routes;
	size_t nroutes;
	struct config_domain *domains;
	size_t ndomains;
	struct config_destination *destinations;
	size_t ndestinations;
};

/* config_defaults - fill cfg with every default (no lists: nothing to free). */
void config_defaults(struct config *cfg);
/* config_free - release the lists of a loaded config; cfg stays valid and empty of them. */
void config_free(struct config *cfg);
/* config_copy - dst = src, lists duplicated (dst is overwritten, not freed). */
void config_copy(struct config *dst, const struct config *src);

/* config_route_for - the route of a recipient domain (exact, then "*"), or NULL. */
const struct config_route *config_route_for(const struct config *cfg, const char *domain);
/* config_domain_find - the [domain D] section of a sending domain, or NULL. */
const struct config_domain *config_domain_find(const struct config *cfg, const char *domain);
/* config_destination_find - the [destination D] section, or NULL. */
const struct config_destination *config_destination_find(const struct config *cfg,
    const char *domain);

/*
 * config_load - defaults, then the file at path.  Returns 0, or a negative
 * errno with err holding "FILE:LINE: reason" (or "FILE: reason" when the
 * file cannot be read).  cfg is undefined after a failure.
 */
int config_load(struct config *cfg, const char *path, char *err, size_t errsz);
/* (After a failure, cfg holds no lists: config_free() is harmless either way.) */
/* config_load_string - as config_load over text; name is used in errors. */
int config_load_string(struct config *cfg, const char *name, const char *text,
    char *err, size_t errsz);

#endif
