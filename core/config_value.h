/*
 * config_value - the parsers of kurier's configuration values: host:port
 * endpoints and lists of them, role lists, rate limits ("500/h"), networks
 * ("10.0.0.0/8"), retry lists and booleans, with the formatters that give
 * back the text they read.  Sizes and durations are str_to_size() and
 * str_to_duration_ms() (core/str.h).
 *
 * config.c applies them to keys; kurierctl and the servers use them on
 * their own (the rates of a user, a network list from the command line).
 * Every parser takes the value text (borrowed, NUL-terminated, already
 * trimmed of the line's white space), fills the caller's struct and
 * returns 0, or -EINVAL with *why pointing at a static sentence that
 * says what is wrong; nothing here allocates or logs.  The structs are
 * plain values: copy them with =.
 */
#ifndef KURIER_CORE_CONFIG_VALUE_H
#define KURIER_CORE_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest configuration line, hence longest value, the line end not counted. */
#define CONFIG_LINE_MAX 4096
#define CONFIG_HOST_MAX 256
#define CONFIG_RETRY_MAX 32
#define CONFIG_LISTEN_MAX 8
#define CONFIG_RATES_MAX 4      /* limits in one rate list ("20/min, 500/h") */
#define CONFIG_NETS_MAX 32      /* networks in [relay] trusted_networks */

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

/*
 * One rate limit: at most limit events in any window_ms (a sliding window;
 * see policy/policy.h).  Written "500/h", "20/min", "10000/d", "3/10s".
 */
struct config_rate {
	uint64_t limit;
	uint64_t window_ms;
};

/* A list of rate limits; n 0 = unlimited. */
struct config_rates {
	unsigned n;
	struct config_rate r[CONFIG_RATES_MAX];
};

/* One network of [relay] trusted_networks: "192.0.2.0/24", "::1/128". */
struct config_net {
	int family;                 /* AF_INET or AF_INET6 */
	unsigned char addr[16];     /* network address, host bits zero */
	unsigned prefix;            /* bits */
};

struct config_nets {
	unsigned n;
	struct config_net net[CONFIG_NETS_MAX];
};

/* A list of listening endpoints, "0.0.0.0:587, [::]:587"; n 0 = off. */
struct config_listen {
	unsigned n;
	struct config_endpoint ep[CONFIG_LISTEN_MAX];
};

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
/*
 * config_parse_rates - "500/h, 20/min" (comma-separated, at most
 * CONFIG_RATES_MAX; empty or "none" = no limit).  A window is s, sec,
 * min, m, h, hour, d, day, or a duration with a number ("10s", "2h");
 * limits 1 to 10^9, windows 1 s to 31 days.  0 or -EINVAL with why.
 */
int config_parse_rates(const char *s, struct config_rates *out, const char **why);
/* config_rates_str - "500/h, 20/min", or "none" for an empty list. */
const char *config_rates_str(const struct config_rates *r, char *dst, size_t size);
/*
 * config_parse_nets - "127.0.0.1/32, ::1/128, 10.0.0.0/8" (an address
 * without "/N" is one host).  Host bits must be zero.  0 or -EINVAL.
 */
int config_parse_nets(const char *s, struct config_nets *out, const char **why);
/* config_nets_match - whether the address text ip lies in one of nets. */
bool config_nets_match(const struct config_nets *nets, const char *ip);

/* config_parse_roles - "relay,deliver" -> ROLE_* bits; 0 or -EINVAL. */
int config_parse_roles(const char *s, unsigned *roles, const char **why);
/* config_roles_str - ROLE_* bits as "relay,deliver,mailbox". */
const char *config_roles_str(unsigned roles, char *dst, size_t size);
/* config_endpoint_str - "host:port", "[v6]:port" or "unix:/path". */
const char *config_endpoint_str(const struct config_endpoint *ep, char *dst,
    size_t size);

/*
 * config_parse_retry - "5m, 10m, 1h": a comma-separated list of 1 to
 * CONFIG_RETRY_MAX durations of 1 s or more, into out[] (CONFIG_RETRY_MAX
 * entries) and *n.  0 or -EINVAL with a reason in why (out may then hold
 * part of the list; *n is unchanged).
 */
int config_parse_retry(const char *s, uint64_t *out, unsigned *n, const char **why);
/*
 * config_parse_bool - "yes", "true", "on" or "no", "false", "off" (exact,
 * lower case).  0 or -EINVAL, *out unchanged.
 */
int config_parse_bool(const char *s, bool *out);

#endif
