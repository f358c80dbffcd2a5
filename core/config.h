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

#include "core/log.h"

#define CONFIG_DEFAULT_PATH "/etc/kurier/kurier.conf"
#define CONFIG_RETRY_MAX 32
#define CONFIG_HOST_MAX 256
#define CONFIG_ERR_MAX 1024
#define CONFIG_LISTEN_MAX 8

enum config_role {
	ROLE_RELAY = 1 << 0,
	ROLE_DELIVER = 1 << 1,
	ROLE_MAILBOX = 1 << 2,
};
#define ROLE_ALL (ROLE_RELAY | ROLE_DELIVER | ROLE_MAILBOX)

struct config_endpoint {
	char host[CONFIG_HOST_MAX]; /* name or address, without brackets */
	uint16_t port;
	char unix_path[108];        /* set instead of host/port for unix: */
};

/* A list of listening endpoints, "0.0.0.0:587, [::]:587"; n 0 = off. */
struct config_listen {
	unsigned n;
	struct config_endpoint ep[CONFIG_LISTEN_MAX];
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
		uint64_t max_message_size;
		unsigned max_recipients;
		unsigned max_connections;
		unsigned max_connections_per_ip;
		uint64_t command_timeout_ms;       /* waiting for a command */
		uint64_t data_timeout_ms;          /* the whole DATA phase */
	} relay;
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
	} deliver;
};

/* config_defaults - fill cfg with every default. */
void config_defaults(struct config *cfg);

/*
 * config_load - defaults, then the file at path.  Returns 0, or a negative
 * errno with err holding "FILE:LINE: reason" (or "FILE: reason" when the
 * file cannot be read).  cfg is undefined after a failure.
 */
int config_load(struct config *cfg, const char *path, char *err, size_t errsz);
/* config_load_string - as config_load over text; name is used in errors. */
int config_load_string(struct config *cfg, const char *name, const char *text,
    char *err, size_t errsz);

/*
 * config_parse_endpoint - "host:port", "[v6addr]:port" or "unix:/path"
 * (when allow_unix).  0 or -EINVAL with a reason in why.
 */
int config_parse_endpoint(const char *s, bool allow_unix,
    struct config_endpoint *ep, const char **why);
/*
 * config_parse_listen - "host:port, [v6]:port" (comma-separated, at most
 * CONFIG_LISTEN_MAX; empty = none).  0 or -EINVAL with a reason in why.
 */
int config_parse_listen(const char *s, struct config_listen *out, const char **why);
/* config_parse_roles - "relay,deliver" -> ROLE_* bits; 0 or -EINVAL. */
int config_parse_roles(const char *s, unsigned *roles, const char **why);
/* config_roles_str - ROLE_* bits as "relay,deliver,mailbox". */
const char *config_roles_str(unsigned roles, char *dst, size_t size);
/* config_endpoint_str - "host:port", "[v6]:port" or "unix:/path". */
const char *config_endpoint_str(const struct config_endpoint *ep, char *dst,
    size_t size);

#endif
