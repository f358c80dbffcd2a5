/*
 * config - INI configuration via libinih: the key table, the sections,
 * the handler that applies each line and the checks across keys.  The
 * value parsers are in config_value.c.  See config.h.
 *
 * libinih reports lines only through a compile-time option that Debian's
 * build leaves off, so the file is fed through our own reader, which
 * counts lines: the handler always runs for the line just read.
 */
#include "core/config.h"

#include <errno.h>
#include <arpa/inet.h>
#include <ini.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/str.h"
#include "core/xmalloc.h"

enum key_type {
	K_STR,       /* char array of .size */
	K_U64,       /* uint64_t within [min, max] */
	K_UINT,      /* unsigned within [min, max] */
	K_DURATION,  /* uint64_t milliseconds within [min, max] */
	K_LEVEL,     /* enum log_level */
	K_ROLES,     /* unsigned ROLE_* */
	K_ENDPOINT,  /* struct config_endpoint, unix: allowed */
	K_RETRY,     /* the retry list */
	K_PREFIX,    /* key prefix: printable, no spaces */
	K_SIZE,      /* uint64_t bytes within [min, max] */
	K_LISTEN,    /* struct config_listen */
	K_PORT,      /* unsigned from 1 to 65535 */
	K_OPTENDPOINT, /* [deliver] dns_server: endpoint, empty = unset */
	K_SPF,       /* enum config_spf */
	K_IP,        /* an IPv4/IPv6 address or empty, in a char array */
	K_RATES,     /* struct config_rates */
	K_NETS,      /* struct config_nets */
	K_BOOL,      /* bool: yes/no */
	K_SUPPRESSED, /* enum config_suppressed */
	K_SPF_FAIL,  /* enum config_spf_fail */
};

struct key_def {
	const char *section;
	const char *name;
	enum key_type type;
	size_t off;
	size_t size;
	uint64_t min, max;
};

#define F(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define DAY (86400000ULL)

static const struct key_def keys[] = {
	{ "server", "hostname", K_STR, F(server.hostname), 1, 0 },
	{ "server", "data_dir", K_STR, F(server.data_dir), 1, 0 },
	{ "server", "log_level", K_LEVEL, F(server.log_level), 0, 0 },
	{ "server", "roles", K_ROLES, F(server.roles), 0, 0 },
	{ "server", "shutdown_grace", K_DURATION, F(server.shutdown_grace_ms), 0, DAY },
	{ "redis", "address", K_ENDPOINT, F(redis.address), 0, 0 },
	{ "redis", "password", K_STR, F(redis.password), 0, 0 },
	{ "redis", "prefix", K_PREFIX, F(redis.prefix), 1, 0 },
	{ "redis", "connect_timeout", K_DURATION, F(redis.connect_timeout_ms), 100, 300000 },
	{ "redis", "reconnect_max", K_DURATION, F(redis.reconnect_max_ms), 100, 3600000 },
	{ "redis", "connections", K_UINT, F(redis.connections), 1, 32 },
	{ "tls", "cert", K_STR, F(tls.cert), 0, 0 },
	{ "tls", "key", K_STR, F(tls.key), 0, 0 },
	{ "relay", "submission", K_LISTEN, F(relay.submission), 0, 0 },
	{ "relay", "submissions", K_LISTEN, F(relay.submissions), 0, 0 },
	{ "relay", "inbound", K_LISTEN, F(relay.inbound), 0, 0 },
	{ "relay", "inbound_rate", K_RATES, F(relay.inbound_rate), 0, 0 },
	{ "relay", "max_message_size", K_SIZE, F(relay.max_message_size), 1024, 1ULL << 30 },
	{ "relay", "max_recipients", K_UINT, F(relay.max_recipients), 1, 100000 },
	{ "relay", "max_connections", K_UINT, F(relay.max_connections), 1, 1000000 },
	{ "relay", "max_connections_per_ip", K_UINT, F(relay.max_connections_per_ip), 1, 1000000 },
	{ "relay", "command_timeout", K_DURATION, F(relay.command_timeout_ms), 1000, 3600000 },
	{ "relay", "data_timeout", K_DURATION, F(relay.data_timeout_ms), 1000, 3600000 },
	{ "relay", "trusted_networks", K_NETS, F(relay.trusted_networks), 0, 0 },
	{ "relay", "trusted_user", K_STR, F(relay.trusted_user), 0, 0 },
	{ "queue", "lease", K_DURATION, F(queue.lease_ms), 1000, DAY },
	{ "queue", "retention", K_DURATION, F(queue.retention_ms), 1000, 365 * DAY },
	{ "queue", "events_max", K_U64, F(queue.events_max), 100, 100000000 },
	{ "queue", "reap_interval", K_DURATION, F(queue.reap_interval_ms), 100, 3600000 },
	{ "deliver", "retry", K_RETRY, F(deliver.retry_ms), 0, 0 },
	{ "deliver", "lifetime", K_DURATION, F(deliver.lifetime_ms), 1000, 365 * DAY },
	{ "deliver", "concurrency", K_UINT, F(deliver.concurrency), 1, 100000 },
	{ "deliver", "per_destination", K_UINT, F(deliver.per_destination), 1, 100000 },
	{ "deliver", "dns_server", K_OPTENDPOINT, F(deliver.dns_server), 0, 0 },
	{ "deliver", "dns_timeout", K_DURATION, F(deliver.dns_timeout_ms), 100, 120000 },
	{ "deliver", "mx_port", K_PORT, F(deliver.mx_port), 1, 65535 },
	{ "deliver", "smarthost_user", K_STR, F(deliver.smarthost_user), 0, 0 },
	{ "deliver", "smarthost_password", K_STR, F(deliver.smarthost_password), 0, 0 },
	{ "deliver", "outbound_ip", K_IP, F(deliver.outbound_ip), 0, 0 },
	{ "deliver", "spf_preflight", K_SPF, F(deliver.spf_preflight), 0, 0 },
	{ "deliver", "connect_timeout", K_DURATION, F(deliver.connect_timeout_ms), 1000, 3600000 },
	{ "deliver", "greeting_timeout", K_DURATION, F(deliver.greeting_timeout_ms), 1000, 3600000 },
	{ "deliver", "command_timeout", K_DURATION, F(deliver.command_timeout_ms), 1000, 3600000 },
	{ "deliver", "data_init_timeout", K_DURATION, F(deliver.data_init_timeout_ms), 1000, 3600000 },
	{ "deliver", "data_block_timeout", K_DURATION, F(deliver.data_block_timeout_ms), 1000, 3600000 },
	{ "deliver", "data_end_timeout", K_DURATION, F(deliver.data_end_timeout_ms), 1000, 3600000 },
	{ "deliver", "max_messages_per_connection", K_UINT, F(deliver.max_messages_per_connection), 1, 100000 },
	{ "deliver", "idle_timeout", K_DURATION, F(deliver.idle_timeout_ms), 0, 3600000 },
	{ "deliver", "verp_secret", K_STR, F(deliver.verp_secret), 0, 0 },
	{ "mailbox", "retention", K_DURATION, F(mailbox.retention_ms), 60000, 3650 * DAY },
	{ "mailbox", "max_messages", K_UINT, F(mailbox.max_messages), 1, 10000000 },
	{ "mailbox", "delay_warning", K_DURATION, F(mailbox.delay_warning_ms), 0, 365 * DAY },
	{ "mailbox", "dsn_to_sender", K_BOOL, F(mailbox.dsn_to_sender), 0, 0 },
	{ "mailbox", "postmaster", K_STR, F(mailbox.postmaster), 0, 0 },
	{ "mailbox", "spf_fail", K_SPF_FAIL, F(mailbox.spf_fail), 0, 0 },
	{ "mailbox", "max_bounce_size", K_SIZE, F(mailbox.max_bounce_size), 1024, 1ULL << 30 },
	{ "mailbox", "soft_bounce_limit", K_UINT, F(mailbox.soft_bounce_limit), 0, 1000000 },
	{ "mailbox", "soft_bounce_window", K_DURATION, F(mailbox.soft_bounce_window_ms), 60000, 365 * DAY },
	{ "mailbox", "pop3", K_LISTEN, F(mailbox.pop3), 0, 0 },
	{ "mailbox", "pop3s", K_LISTEN, F(mailbox.pop3s), 0, 0 },
	{ "mailbox", "max_connections", K_UINT, F(mailbox.max_connections), 1, 1000000 },
	{ "mailbox", "max_connections_per_ip", K_UINT, F(mailbox.max_connections_per_ip), 1, 1000000 },
	{ "mailbox", "pop3_timeout", K_DURATION, F(mailbox.pop3_timeout_ms), 1000, DAY },
	{ "mailbox", "imap", K_LISTEN, F(mailbox.imap), 0, 0 },
	{ "mailbox", "imaps", K_LISTEN, F(mailbox.imaps), 0, 0 },
	{ "mailbox", "imap_timeout", K_DURATION, F(mailbox.imap_timeout_ms), 1000, DAY },
	{ "policy", "rate", K_RATES, F(policy.rate), 0, 0 },
	{ "policy", "rcpt_rate", K_RATES, F(policy.rcpt_rate), 0, 0 },
	{ "policy", "suppressed", K_SUPPRESSED, F(policy.suppressed), 0, 0 },
	{ "policy", "suppress_bounces", K_BOOL, F(policy.suppress_bounces), 0, 0 },
	{ "policy", "auth_fail_limit", K_UINT, F(policy.auth_fail_limit), 1, 1000000 },
	{ "policy", "auth_fail_window", K_DURATION, F(policy.auth_fail_window_ms), 1000, DAY },
	{ "policy", "auth_lockout", K_DURATION, F(policy.auth_lockout_ms), 1000, 30 * DAY },
	{ "policy", "max_errors", K_UINT, F(policy.max_errors), 1, 100000 },
	{ "policy", "max_junk_commands", K_UINT, F(policy.max_junk_commands), 1, 1000000 },
	{ "policy", "throttle_backoff_min", K_DURATION, F(policy.throttle_backoff_min_ms), 1000, DAY },
	{ "policy", "throttle_backoff_max", K_DURATION, F(policy.throttle_backoff_max_ms), 1000, 7 * DAY },
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const char *const sections[] = { "server", "redis", "tls", "relay", "queue", "deliver",
	"policy", "mailbox" };
#define SECTIONS_KNOWN "server, redis, tls, relay, queue, deliver, policy, mailbox, domain NAME, " \
	"destination NAME"

/* Keys of the named sections; seen bits are per entry. */
enum { DOM_SELECTOR = 1 << 0, DOM_RETURN_PATH = 1 << 1 };

void
config_defaults(struct config *cfg)
{
	const char *why;

	static const uint64_t retry[] = {
		5 * 60000, 10 * 60000, 30 * 60000, 3600000, 2 * 3600000,
		4 * 3600000, 8 * 3600000,
	};

	memset(cfg, 0, sizeof *cfg);
	if (gethostname(cfg->server.hostname, sizeof cfg->server.hostname) != 0 ||
	    cfg->server.hostname[0] == '\0')
		str_copy(cfg->server.hostname, "localhost", sizeof cfg->server.hostname);
	cfg->server.hostname[sizeof cfg->server.hostname - 1] = '\0';
	str_copy(cfg->server.data_dir, "/var/lib/kurier", sizeof cfg->server.data_dir);
	cfg->server.log_level = LOG_INFO;
	cfg->server.roles = ROLE_ALL;
	cfg->server.shutdown_grace_ms = 30000;
	str_copy(cfg->redis.address.host, "127.0.0.1", sizeof cfg->redis.address.host);
	cfg->redis.address.port = 6379;
	str_copy(cfg->redis.prefix, "kurier:", sizeof cfg->redis.prefix);
	cfg->redis.connect_timeout_ms = 5000;
	cfg->redis.reconnect_max_ms = 5000;
	cfg->redis.connections = 4;
	config_parse_listen("0.0.0.0:587", &cfg->relay.submission, &why);
	config_parse_listen("0.0.0.0:465", &cfg->relay.submissions, &why);
	config_parse_listen("0.0.0.0:25", &cfg->relay.inbound, &why);
	/* A busy provider's bounce host stays under it; a flood from one address does not. */
	config_parse_rates("120/min, 2000/h", &cfg->relay.inbound_rate, &why);
	cfg->relay.max_message_size = 25 * 1024 * 1024;
	cfg->relay.max_recipients = 1000;
	cfg->relay.max_connections = 10000;
	cfg->relay.max_connections_per_ip = 50;
	/* RFC 5321 4.5.3.2: 5 minutes per command, 10 for the end of data. */
	cfg->relay.command_timeout_ms = 5 * 60000;
	cfg->relay.data_timeout_ms = 10 * 60000;
	cfg->queue.lease_ms = 120000;
	cfg->queue.retention_ms = 7 * DAY;
	cfg->queue.events_max = 100000;
	cfg->queue.reap_interval_ms = 5000;
	memcpy(cfg->deliver.retry_ms, retry, sizeof retry);
	cfg->deliver.nretry = sizeof retry / sizeof retry[0];
	cfg->deliver.lifetime_ms = 5 * DAY;
	cfg->deliver.concurrency = 200;
	cfg->deliver.per_destination = 20;
	cfg->deliver.dns_timeout_ms = 5000;
	cfg->deliver.mx_port = 25;
	cfg->deliver.spf_preflight = CONFIG_SPF_WARN;
	/* RFC 5321 4.5.3.2 */
	cfg->deliver.connect_timeout_ms = 30000;
	cfg->deliver.greeting_timeout_ms = 5 * 60000;
	cfg->deliver.command_timeout_ms = 5 * 60000;
	cfg->deliver.data_init_timeout_ms = 2 * 60000;
	cfg->deliver.data_block_timeout_ms = 3 * 60000;
	cfg->deliver.data_end_timeout_ms = 10 * 60000;
	cfg->deliver.max_messages_per_connection = 100;
	cfg->deliver.idle_timeout_ms = 5000;
	cfg->mailbox.retention_ms = 30 * DAY;
	cfg->mailbox.max_messages = 10000;
	cfg->mailbox.delay_warning_ms = 4 * 3600000;
	cfg->mailbox.spf_fail = CONFIG_SPF_FAIL_MARK;
	cfg->mailbox.max_bounce_size = 10 * 1024 * 1024;
	cfg->mailbox.soft_bounce_limit = 5;
	cfg->mailbox.soft_bounce_window_ms = 30 * DAY;
	config_parse_listen("0.0.0.0:110", &cfg->mailbox.pop3, &why);
	config_parse_listen("0.0.0.0:995", &cfg->mailbox.pop3s, &why);
	cfg->mailbox.max_connections = 10000;
	cfg->mailbox.max_connections_per_ip = 50;
	/* RFC 1939 3: an autologout timer of at least 10 minutes. */
	cfg->mailbox.pop3_timeout_ms = 10 * 60000;
	config_parse_listen("0.0.0.0:143", &cfg->mailbox.imap, &why);
	config_parse_listen("0.0.0.0:993", &cfg->mailbox.imaps, &why);
	/* RFC 3501 5.4: an autologout timer of at least 30 minutes. */
	cfg->mailbox.imap_timeout_ms = 30 * 60000;
	cfg->policy.suppressed = CONFIG_SUPPRESSED_REJECT;
	cfg->policy.suppress_bounces = true;
	cfg->policy.auth_fail_limit = 5;
	cfg->policy.auth_fail_window_ms = 10 * 60000;
	cfg->policy.auth_lockout_ms = 30 * 60000;
	cfg->policy.max_errors = 20;
	cfg->policy.max_junk_commands = 100;
	cfg->policy.throttle_backoff_min_ms = 60000;
	cfg->policy.throttle_backoff_max_ms = 3600000;
}

void
config_free(struct config *cfg)
{
	free(cfg->routes);
	free(cfg->domains);
	free(cfg->destinations);
	cfg->routes = NULL;
	cfg->domains = NULL;
	cfg->destinations = NULL;
	cfg->nroutes = cfg->ndomains = cfg->ndestinations = 0;
}

static void *
dup_array(const void *p, size_t n, size_t size)
{
	void *q;

	if (n == 0)
		return NULL;
	q = xreallocarray(NULL, n, size);
	memcpy(q, p, n * size);
	return q;
}

void
config_copy(struct config *dst, const struct config *src)
{
	*dst = *src;
	dst->routes = dup_array(src->routes, src->nroutes, sizeof *src->routes);
	dst->domains = dup_array(src->domains, src->ndomains, sizeof *src->domains);
	dst->destinations = dup_array(src->destinations, src->ndestinations,
	    sizeof *src->destinations);
}

const struct config_route *
config_route_for(const struct config *cfg, const char *domain)
{
	const struct config_route *any = NULL;

	for (size_t i = 0; i < cfg->nroutes; i++) {
		if (strcasecmp(cfg->routes[i].domain, domain) == 0)
			return &cfg->routes[i];
		if (strcmp(cfg->routes[i].domain, "*") == 0)
			any = &cfg->routes[i];
	}
	return any;
}

const struct config_domain *
config_domain_find(const struct config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->ndomains; i++)
		if (strcasecmp(cfg->domains[i].name, domain) == 0)
			return &cfg->domains[i];
	return NULL;
}

const struct config_destination *
config_destination_find(const struct config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->ndestinations; i++)
		if (strcasecmp(cfg->destinations[i].name, domain) == 0)
			return &cfg->destinations[i];
	return NULL;
}

enum named_kind {
	NAMED_NONE,
	NAMED_DOMAIN,
	NAMED_DESTINATION,
};

struct parse_state {
	struct config *cfg;
	/*
	 * The section of the line being read, from the raw line: libinih
	 * truncates long section names, and [domain NAME] may be long.
	 */
	char section[CONFIG_HOST_MAX + 16];
	enum named_kind named;
	size_t named_idx;     /* entry of the current [domain]/[destination] */
	const char *name;
	const char *text;  /* remaining input */
	int line;          /* line just handed to inih */
	bool midline;      /* the last read stopped inside a line */
	bool seen[NKEYS];
	char *err;
	size_t errsz;
	bool failed;
};

static int
fail(struct parse_state *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct parse_state *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ps->failed)
		return 0;
	ps->failed = true;
	n = snprintf(ps->err, ps->errsz, "%s:%d: ", ps->name, ps->line);
	if (n < 0 || (size_t)n >= ps->errsz)
		return 0;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errsz - (size_t)n, fmt, ap);
	va_end(ap);
	return 0;
}

static int
set_value(struct parse_state *ps, const struct key_def *k, const char *v)
{
	char *field = (char *)ps->cfg + k->off;
	const char *why = NULL;
	char a[32], b[32];
	uint64_t n;
	int rc;

	switch (k->type) {
	case K_STR:
	case K_PREFIX:
		if (k->min > 0 && v[0] == '\0')
			return fail(ps, "[%s] %s must not be empty", k->section, k->name);
		if (k->type == K_PREFIX) {
			for (const char *p = v; *p; p++)
				if (*p <= ' ' || *p >= 0x7f)
					return fail(ps, "[%s] %s: only printable ASCII without spaces",
					    k->section, k->name);
		}
		if (str_copy(field, v, k->size) < 0)
			return fail(ps, "[%s] %s is too long (%zu bytes at most)",
			    k->section, k->name, k->size - 1);
		return 1;
	case K_U64:
	case K_UINT:
		rc = str_to_u64(v, &n);
		if (rc < 0 || n < k->min || n > k->max)
			return fail(ps, "[%s] %s must be a whole number from %" PRIu64
			    " to %" PRIu64 ", not \"%s\"", k->section, k->name, k->min, k->max, v);
		if (k->type == K_U64)
			*(uint64_t *)(void *)field = n;
		else
			*(unsigned *)(void *)field = (unsigned)n;
		return 1;
	case K_DURATION:
		rc = str_to_duration_ms(v, &n);
		if (rc < 0)
			return fail(ps, "[%s] %s: \"%s\" is not a duration (30s, 5m, 2h, 5d)",
			    k->section, k->name, v);
		if (n < k->min || n > k->max)
			return fail(ps, "[%s] %s must be from %s to %s", k->section, k->name,
			    str_duration(a, sizeof a, k->min), str_duration(b, sizeof b, k->max));
		*(uint64_t *)(void *)field = n;
		return 1;
	case K_LEVEL:
		if (log_level_parse(v, (enum log_level *)(void *)field) < 0)
			return fail(ps, "[%s] %s must be debug, info, warn or error, not \"%s\"",
			    k->section, k->name, v);
		return 1;
	case K_ROLES:
		if (config_parse_roles(v, (unsigned *)(void *)field, &why) < 0)
			return fail(ps, "[%s] %s: %s", k->section, k->name, why);
		return 1;
	case K_ENDPOINT:
		if (config_parse_endpoint(v, true, (struct config_endpoint *)(void *)field, &why) < 0)
			return fail(ps, "[%s] %s: \"%s\": %s", k->section, k->name, v, why);
		return 1;
	case K_SIZE:
		rc = str_to_size(v, &n);
		if (rc < 0)
			return fail(ps, "[%s] %s: \"%s\" is not a size (26214400, 25M, 512k)",
			    k->section, k->name, v);
		if (n < k->min || n > k->max)
			return fail(ps, "[%s] %s must be from %" PRIu64 " to %" PRIu64 " bytes",
			    k->section, k->name, k->min, k->max);
		*(uint64_t *)(void *)field = n;
		return 1;
	case K_LISTEN:
		if (config_parse_listen(v, (struct config_listen *)(void *)field, &why) < 0)
			return fail(ps, "[%s] %s: \"%s\": %s", k->section, k->name, v, why);
		return 1;
	case K_RETRY:
		if (config_parse_retry(v, ps->cfg->deliver.retry_ms, &ps->cfg->deliver.nretry, &why) < 0)
			return fail(ps, "[%s] %s: %s", k->section, k->name, why);
		return 1;
	case K_PORT:
		rc = str_to_u64(v, &n);
		if (rc < 0 || n < 1 || n > 65535)
			return fail(ps, "[%s] %s must be a port from 1 to 65535, not \"%s\"",
			    k->section, k->name, v);
		*(unsigned *)(void *)field = (unsigned)n;
		return 1;
	case K_OPTENDPOINT:
		/* Only [deliver] dns_server: empty means the system resolver. */
		if (v[0] == '\0') {
			ps->cfg->deliver.dns_server_set = false;
			return 1;
		}
		if (config_parse_endpoint(v, false, (struct config_endpoint *)(void *)field, &why) < 0)
			return fail(ps, "[%s] %s: \"%s\": %s", k->section, k->name, v, why);
		ps->cfg->deliver.dns_server_set = true;
		return 1;
	case K_SPF:
		if (strcmp(v, "off") == 0)
			ps->cfg->deliver.spf_preflight = CONFIG_SPF_OFF;
		else if (strcmp(v, "warn") == 0)
			ps->cfg->deliver.spf_preflight = CONFIG_SPF_WARN;
		else if (strcmp(v, "defer") == 0)
			ps->cfg->deliver.spf_preflight = CONFIG_SPF_DEFER;
		else
			return fail(ps, "[%s] %s must be warn, defer or off, not \"%s\"",
			    k->section, k->name, v);
		return 1;
	case K_RATES:
		if (config_parse_rates(v, (struct config_rates *)(void *)field, &why) < 0)
			return fail(ps, "[%s] %s: \"%s\": %s", k->section, k->name, v, why);
		return 1;
	case K_NETS:
		if (config_parse_nets(v, (struct config_nets *)(void *)field, &why) < 0)
			return fail(ps, "[%s] %s: %s", k->section, k->name, why);
		return 1;
	case K_BOOL:
		if (config_parse_bool(v, (bool *)(void *)field) < 0)
			return fail(ps, "[%s] %s must be yes or no, not \"%s\"", k->section, k->name, v);
		return 1;
	case K_SUPPRESSED:
		if (strcmp(v, "reject") == 0)
			ps->cfg->policy.suppressed = CONFIG_SUPPRESSED_REJECT;
		else if (strcmp(v, "drop") == 0)
			ps->cfg->policy.suppressed = CONFIG_SUPPRESSED_DROP;
		else
			return fail(ps, "[%s] %s must be reject or drop, not \"%s\"",
			    k->section, k->name, v);
		return 1;
	case K_SPF_FAIL:
		if (strcmp(v, "mark") == 0)
			ps->cfg->mailbox.spf_fail = CONFIG_SPF_FAIL_MARK;
		else if (strcmp(v, "reject") == 0)
			ps->cfg->mailbox.spf_fail = CONFIG_SPF_FAIL_REJECT;
		else
			return fail(ps, "[%s] %s must be mark or reject, not \"%s\"",
			    k->section, k->name, v);
		return 1;
	case K_IP: {
		unsigned char a6[16];

		if (v[0] != '\0' && inet_pton(AF_INET, v, a6) != 1 &&
		    inet_pton(AF_INET6, v, a6) != 1)
			return fail(ps, "[%s] %s: \"%s\" is not an IPv4 or IPv6 address",
			    k->section, k->name, v);
		if (str_copy(field, v, k->size) < 0)
			return fail(ps, "[%s] %s is too long", k->section, k->name);
		return 1;
	}
	}
	return fail(ps, "internal: key type %d", (int)k->type);
}

/* parse_selectors - "s1, e1" into d->selector. */
static int
parse_selectors(struct parse_state *ps, struct config_domain *d, const char *v)
{
	char tmp[512], *p, *tok;

	if (str_copy(tmp, v, sizeof tmp) < 0)
		return fail(ps, "[domain %s] dkim_selector: list too long", d->name);
	d->nselector = 0;
	for (p = tmp; p != NULL; ) {
		tok = p;
		p = strchr(p, ',');
		if (p != NULL)
			*p++ = '\0';
		tok = str_trim(tok);
		if (tok[0] == '\0')
			return fail(ps, "[domain %s] dkim_selector: empty entry in the list", d->name);
		if (!str_is_hostname(tok) || strlen(tok) >= CONFIG_SELECTOR_LEN)
			return fail(ps, "[domain %s] dkim_selector: \"%s\" is not a selector (letters, digits, hyphens and dots, %d bytes at most)",
			    d->name, tok, CONFIG_SELECTOR_LEN - 1);
		if (d->nselector == CONFIG_SELECTOR_MAX)
			return fail(ps, "[domain %s] dkim_selector: at most %d selectors",
			    d->name, CONFIG_SELECTOR_MAX);
		for (unsigned i = 0; i < d->nselector; i++)
			if (strcasecmp(d->selector[i], tok) == 0)
				return fail(ps, "[domain %s] dkim_selector: \"%s\" is listed twice",
				    d->name, tok);
		str_copy(d->selector[d->nselector++], tok, CONFIG_SELECTOR_LEN);
	}
	return 1;
}

static int
set_domain_key(struct parse_state *ps, const char *name, const char *v)
{
	struct config_domain *d = &ps->cfg->domains[ps->named_idx];
	unsigned bit;

	if (strcmp(name, "dkim_selector") == 0)
		bit = DOM_SELECTOR;
	else if (strcmp(name, "return_path") == 0)
		bit = DOM_RETURN_PATH;
	else
		return fail(ps, "unknown key \"%s\" in [domain %s] (known: dkim_selector, return_path)",
		    name, d->name);
	if (d->seen & bit)
		return fail(ps, "[domain %s] %s is set twice", d->name, name);
	d->seen |= bit;
	if (bit == DOM_SELECTOR)
		return parse_selectors(ps, d, v);
	if (!str_is_hostname(v))
		return fail(ps, "[domain %s] return_path: \"%s\" is not a domain name", d->name, v);
	str_copy(d->return_path, v, sizeof d->return_path);
	str_lower(d->return_path);
	return 1;
}

/* dest_list - a comma-separated list of at most max entries of len bytes. */
static int
dest_list(struct parse_state *ps, struct config_destination *d, const char *key,
    const char *v, char *out, size_t len, unsigned max, unsigned *n, bool mx)
{
	char tmp[CONFIG_LINE_MAX + 1], *p, *tok;

	str_copy(tmp, v, sizeof tmp);
	*n = 0;
	for (p = tmp; p != NULL; ) {
		tok = p;
		p = strchr(p, ',');
		if (p != NULL)
			*p++ = '\0';
		tok = str_trim(tok);
		if (tok[0] == '\0')
			return fail(ps, "[destination %s] %s: empty entry in the list", d->name, key);
		if (*n == max)
			return fail(ps, "[destination %s] %s: at most %u entries", d->name, key, max);
		if (mx) {
			/* ".google.com" (any host under it) or one host name. */
			if (!str_is_hostname(tok[0] == '.' ? tok + 1 : tok))
				return fail(ps, "[destination %s] mx: \"%s\" is neither a host name nor .domain (a suffix)",
				    d->name, tok);
			str_lower(tok);
		} else {
			for (const char *c = tok; *c; c++)
				if (*c <= ' ' || *c >= 0x7f)
					return fail(ps, "[destination %s] throttle: \"%s\": a reply code or word, printable ASCII without spaces",
					    d->name, tok);
		}
		if (str_copy(out + (size_t)*n * len, tok, len) < 0)
			return fail(ps, "[destination %s] %s: \"%s\" is too long (%zu bytes at most)",
			    d->name, key, tok, len - 1);
		(*n)++;
	}
	return 1;
}

static int
set_destination_key(struct parse_state *ps, const char *name, const char *v)
{
	static const struct {
		const char *name;
		unsigned bit;
	} dkeys[] = {
		{ "dkim", CONFIG_DEST_DKIM },
		{ "require_tls", CONFIG_DEST_REQUIRE_TLS },
		{ "max_connections", CONFIG_DEST_MAX_CONNECTIONS },
		{ "max_messages_per_connection", CONFIG_DEST_MAX_MSGS_CONN },
		{ "max_messages_per_minute", CONFIG_DEST_MAX_MSGS_MIN },
		{ "mx", CONFIG_DEST_MX },
		{ "throttle", CONFIG_DEST_THROTTLE },
	};
	struct config_destination *d = &ps->cfg->destinations[ps->named_idx];
	unsigned bit = 0, *num = NULL;
	uint64_t n;

	for (size_t i = 0; i < sizeof dkeys / sizeof dkeys[0]; i++)
		if (strcmp(name, dkeys[i].name) == 0)
			bit = dkeys[i].bit;
	if (bit == 0)
		return fail(ps, "unknown key \"%s\" in [destination %s] (known: dkim, require_tls, max_connections, max_messages_per_connection, max_messages_per_minute, mx, throttle)",
		    name, d->name);
	if (d->seen & bit)
		return fail(ps, "[destination %s] %s is set twice", d->name, name);
	d->seen |= bit;
	switch (bit) {
	case CONFIG_DEST_DKIM:
		if (strcmp(v, "all") == 0)
			d->dkim = CONFIG_DKIM_ALL;
		else if (strcmp(v, "rsa") == 0)
			d->dkim = CONFIG_DKIM_RSA;
		else if (strcmp(v, "ed25519") == 0)
			d->dkim = CONFIG_DKIM_ED25519;
		else if (strcmp(v, "none") == 0)
			d->dkim = 0;
		else
			return fail(ps, "[destination %s] dkim must be all, rsa, ed25519 or none, not \"%s\"",
			    d->name, v);
		return 1;
	case CONFIG_DEST_REQUIRE_TLS:
		if (strcmp(v, "no") == 0)
			d->require_tls = CONFIG_TLS_OPTIONAL;
		else if (strcmp(v, "yes") == 0)
			d->require_tls = CONFIG_TLS_REQUIRED;
		else if (strcmp(v, "verify") == 0)
			d->require_tls = CONFIG_TLS_VERIFY;
		else
			return fail(ps, "[destination %s] require_tls must be no, yes or verify, not \"%s\"",
			    d->name, v);
		return 1;
	case CONFIG_DEST_MX:
		return dest_list(ps, d, "mx", v, &d->mx[0][0], CONFIG_HOST_MAX, CONFIG_MX_MAX,
		    &d->nmx, true);
	case CONFIG_DEST_THROTTLE:
		return dest_list(ps, d, "throttle", v, &d->throttle[0][0], CONFIG_THROTTLE_LEN,
		    CONFIG_THROTTLE_MAX, &d->nthrottle, false);
	case CONFIG_DEST_MAX_CONNECTIONS:
		num = &d->max_connections;
		break;
	case CONFIG_DEST_MAX_MSGS_CONN:
		num = &d->max_messages_per_connection;
		break;
	default:
		num = &d->max_messages_per_minute;
		break;
	}
	if (str_to_u64(v, &n) < 0 || n < 1 || n > 1000000)
		return fail(ps, "[destination %s] %s must be a whole number from 1 to 1000000, not \"%s\"",
		    d->name, name, v);
	*num = (unsigned)n;
	return 1;
}

/* add_route - [deliver] route.DOMAIN = host:port. */
static int
add_route(struct parse_state *ps, const char *domain, const char *v)
{
	struct config *cfg = ps->cfg;
	struct config_route r;
	const char *why = NULL;

	memset(&r, 0, sizeof r);
	if (strcmp(domain, "*") != 0 && !str_is_hostname(domain))
		return fail(ps, "[deliver] route.%s: \"%s\" is not a domain name (or * for every domain)",
		    domain, domain);
	str_copy(r.domain, domain, sizeof r.domain);
	str_lower(r.domain);
	for (size_t i = 0; i < cfg->nroutes; i++)
		if (strcmp(cfg->routes[i].domain, r.domain) == 0)
			return fail(ps, "[deliver] route.%s is set twice", domain);
	if (config_parse_endpoint(v, false, &r.ep, &why) < 0)
		return fail(ps, "[deliver] route.%s: \"%s\": %s", domain, v, why);
	cfg->routes = xreallocarray(cfg->routes, cfg->nroutes + 1, sizeof *cfg->routes);
	cfg->routes[cfg->nroutes++] = r;
	return 1;
}

static int
on_key(void *user, const char *inih_section, const char *name, const char *value)
{
	struct parse_state *ps = user;
	const char *section = ps->section;

	(void)inih_section;  /* may be truncated: ps->section is read from the line */
	if (ps->failed)
		return 0;
	if (name[0] == '\0')
		return fail(ps, "syntax error: no key name before \"=\"");
	if (section[0] == '\0')
		return fail(ps, "\"%s\" comes before any [section]", name);
	if (ps->named == NAMED_DOMAIN)
		return set_domain_key(ps, name, value);
	if (ps->named == NAMED_DESTINATION)
		return set_destination_key(ps, name, value);
	if (strcmp(section, "deliver") == 0 && str_has_prefix(name, "route."))
		return add_route(ps, name + 6, value);
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) != 0 || strcmp(keys[i].name, name) != 0)
			continue;
		if (ps->seen[i])
			return fail(ps, "[%s] %s is set twice", section, name);
		ps->seen[i] = true;
		return set_value(ps, &keys[i], value);
	}
	return fail(ps, "unknown key \"%s\" in [%s]", name, section);
}

/* open_named - enter [domain NAME] or [destination NAME], making the entry. */
static void
open_named(struct parse_state *ps, enum named_kind kind, const char *what, char *name)
{
	struct config *cfg = ps->cfg;

	name = str_trim(name);
	if (name[0] == '\0') {
		fail(ps, "[%s] needs a domain name: [%s example.com]", what, what);
		return;
	}
	if (!str_is_hostname(name)) {
		fail(ps, "[%s %.64s]: not a domain name", what, name);
		return;
	}
	str_lower(name);
	ps->named = kind;
	snprintf(ps->section, sizeof ps->section, "%s %s", what, name);
	if (kind == NAMED_DOMAIN) {
		for (size_t i = 0; i < cfg->ndomains; i++) {
			if (strcmp(cfg->domains[i].name, name) == 0) {
				ps->named_idx = i;
				return;
			}
		}
		cfg->domains = xreallocarray(cfg->domains, cfg->ndomains + 1, sizeof *cfg->domains);
		memset(&cfg->domains[cfg->ndomains], 0, sizeof *cfg->domains);
		str_copy(cfg->domains[cfg->ndomains].name, name, CONFIG_HOST_MAX);
		str_copy(cfg->domains[cfg->ndomains].selector[0], "s1", CONFIG_SELECTOR_LEN);
		cfg->domains[cfg->ndomains].nselector = 1;
		ps->named_idx = cfg->ndomains++;
		return;
	}
	for (size_t i = 0; i < cfg->ndestinations; i++) {
		if (strcmp(cfg->destinations[i].name, name) == 0) {
			ps->named_idx = i;
			return;
		}
	}
	cfg->destinations = xreallocarray(cfg->destinations, cfg->ndestinations + 1,
	    sizeof *cfg->destinations);
	memset(&cfg->destinations[cfg->ndestinations], 0, sizeof *cfg->destinations);
	str_copy(cfg->destinations[cfg->ndestinations].name, name, CONFIG_HOST_MAX);
	cfg->destinations[cfg->ndestinations].dkim = CONFIG_DKIM_ALL;
	ps->named_idx = cfg->ndestinations++;
}

/*
 * Section headers are read here, as lines are read: libinih calls the
 * handler only for keys (so an unknown section without keys would pass
 * unnoticed), and it truncates long section names.
 */
static void
check_section_line(struct parse_state *ps, const char *p, size_t n)
{
	const char *end;
	char inner[CONFIG_HOST_MAX + 64];
	size_t len;

	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	if (n == 0 || *p != '[')
		return;
	end = memchr(p, ']', n);
	if (end == NULL) {
		fail(ps, "syntax error: \"[\" without \"]\"");
		return;
	}
	len = (size_t)(end - p - 1);
	ps->named = NAMED_NONE;
	ps->section[0] = '\0';
	if (len >= sizeof inner) {
		fail(ps, "section name too long: [%.64s...]", p + 1);
		return;
	}
	memcpy(inner, p + 1, len);
	inner[len] = '\0';
	for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
		if (strcmp(inner, sections[i]) == 0) {
			str_copy(ps->section, inner, sizeof ps->section);
			return;
		}
	}
	if (str_has_prefix(inner, "domain") && (inner[6] == ' ' || inner[6] == '\t' || inner[6] == '\0'))
		open_named(ps, NAMED_DOMAIN, "domain", inner + 6);
	else if (str_has_prefix(inner, "destination") &&
	    (inner[11] == ' ' || inner[11] == '\t' || inner[11] == '\0'))
		open_named(ps, NAMED_DESTINATION, "destination", inner + 11);
	else
		fail(ps, "unknown section [%.64s] (known: " SECTIONS_KNOWN ")", inner);
}

/*
 * An fgets() over the text that counts lines.  libinih reads a line longer
 * than its buffer in several calls (it grows the buffer); only the first
 * call of a line counts it.
 */
static char *
reader(char *str, int num, void *stream)
{
	struct parse_state *ps = stream;
	const char *nl;
	size_t n, linelen;

	if (ps->text[0] == '\0' || num < 2)
		return NULL;
	nl = strchr(ps->text, '\n');
	linelen = nl ? (size_t)(nl - ps->text) + 1 : strlen(ps->text);
	if (!ps->midline) {
		size_t textlen = linelen;

		ps->line++;
		/* The line end does not count. */
		if (textlen > 0 && ps->text[textlen - 1] == '\n')
			textlen--;
		if (textlen > 0 && ps->text[textlen - 1] == '\r')
			textlen--;
		if (textlen > CONFIG_LINE_MAX) {
			fail(ps, "line is longer than %d bytes", CONFIG_LINE_MAX);
			/* Skip it; inih sees an empty comment. */
			ps->text += linelen;
			memcpy(str, ";\n", 3);
			return str;
		}
		check_section_line(ps, ps->text, linelen);
	}
	n = linelen;
	ps->midline = false;
	if (n > (size_t)num - 1) {
		n = (size_t)num - 1;
		ps->midline = true;
	}
	memcpy(str, ps->text, n);
	str[n] = '\0';
	ps->text += n;
	return str;
}

static int
validate(struct parse_state *ps)
{
	struct config *cfg = ps->cfg;

	ps->line = 0;
	if (cfg->deliver.per_destination > cfg->deliver.concurrency) {
		snprintf(ps->err, ps->errsz, "%s: [deliver] per_destination (%u) is larger than concurrency (%u)",
		    ps->name, cfg->deliver.per_destination, cfg->deliver.concurrency);
		return -EINVAL;
	}
	if ((cfg->tls.cert[0] == '\0') != (cfg->tls.key[0] == '\0')) {
		snprintf(ps->err, ps->errsz, "%s: [tls] cert and key go together: set both, or neither for a self-signed certificate",
		    ps->name);
		return -EINVAL;
	}
	if (cfg->relay.max_connections_per_ip > cfg->relay.max_connections) {
		snprintf(ps->err, ps->errsz, "%s: [relay] max_connections_per_ip (%u) is larger than max_connections (%u)",
		    ps->name, cfg->relay.max_connections_per_ip, cfg->relay.max_connections);
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->ndomains; i++) {
		struct config_domain *d = &cfg->domains[i];

		if (d->return_path[0] == '\0' &&
		    (snprintf(d->return_path, sizeof d->return_path, "bounces.%s", d->name) >=
		    (int)sizeof d->return_path || !str_is_hostname(d->return_path))) {
			snprintf(ps->err, ps->errsz, "%s: [domain %s] the default return_path bounces.%s is too long: set return_path",
			    ps->name, d->name, d->name);
			return -EINVAL;
		}
	}
	if ((cfg->deliver.smarthost_user[0] == '\0') != (cfg->deliver.smarthost_password[0] == '\0')) {
		snprintf(ps->err, ps->errsz, "%s: [deliver] smarthost_user and smarthost_password go together: set both, or neither",
		    ps->name);
		return -EINVAL;
	}
	if (cfg->deliver.smarthost_user[0] != '\0' && cfg->nroutes == 0) {
		snprintf(ps->err, ps->errsz, "%s: [deliver] smarthost_user is set but no route.* or route.DOMAIN names a smarthost",
		    ps->name);
		return -EINVAL;
	}
	if (cfg->relay.trusted_networks.n > 0 && cfg->relay.trusted_user[0] == '\0') {
		snprintf(ps->err, ps->errsz, "%s: [relay] trusted_networks is set but trusted_user is not: name the user trusted clients act as",
		    ps->name);
		return -EINVAL;
	}
	if (cfg->relay.trusted_user[0] != '\0' && !str_is_username(cfg->relay.trusted_user)) {
		snprintf(ps->err, ps->errsz, "%s: [relay] trusted_user \"%s\" is not a user name (1-64 of A-Z a-z 0-9 . _ @ + -)",
		    ps->name, cfg->relay.trusted_user);
		return -EINVAL;
	}
	if (cfg->mailbox.postmaster[0] != '\0' && !str_is_username(cfg->mailbox.postmaster)) {
		snprintf(ps->err, ps->errsz, "%s: [mailbox] postmaster \"%s\" is not a user name (1-64 of A-Z a-z 0-9 . _ @ + -)",
		    ps->name, cfg->mailbox.postmaster);
		return -EINVAL;
	}
	if (cfg->policy.throttle_backoff_min_ms > cfg->policy.throttle_backoff_max_ms) {
		snprintf(ps->err, ps->errsz, "%s: [policy] throttle_backoff_min is longer than throttle_backoff_max",
		    ps->name);
		return -EINVAL;
	}
	if (cfg->deliver.lifetime_ms < cfg->deliver.retry_ms[0]) {
		snprintf(ps->err, ps->errsz, "%s: [deliver] lifetime is shorter than the first retry interval",
		    ps->name);
		return -EINVAL;
	}
	return 0;
}

int
config_load_string(struct config *cfg, const char *name, const char *text,
    char *err, size_t errsz)
{
	struct parse_state ps = {
		.cfg = cfg, .name = name, .text = text, .err = err, .errsz = errsz,
	};
	int rc;

	config_defaults(cfg);
	str_copy(cfg->path, name, sizeof cfg->path);
	err[0] = '\0';
	/* One value per line: continuation lines would hide line numbers. */
	ini_allow_multiline = false;
	ini_allow_inline_comments = true;
	ini_allow_no_value = false;
	ini_stop_on_first_error = true;
	/* Heap line buffer that grows, up to what reader() lets through. */
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_initial_alloc = 256;
	ini_max_line = CONFIG_LINE_MAX + 64;
	rc = ini_parse_stream(reader, &ps, on_key, &ps);
	if (ps.failed) {
		rc = -EINVAL;
	} else if (rc > 0) {
		ps.line = rc;
		fail(&ps, "syntax error: expected \"key = value\" or \"[section]\"");
		rc = -EINVAL;
	} else if (rc < 0) {
		snprintf(err, errsz, "%s: cannot parse (out of memory)", name);
		rc = -ENOMEM;
	} else {
		rc = validate(&ps);
	}
	if (rc < 0)
		config_free(cfg);
	return rc;
}

int
config_load(struct config *cfg, const char *path, char *err, size_t errsz)
{
	FILE *f;
	char *text;
	size_t n, cap = 1 << 16, len = 0;
	int rc;

	f = fopen(path, "r");
	if (f == NULL) {
		rc = -errno;
		snprintf(err, errsz, "%s: cannot open: %s", path, strerror(errno));
		return rc;
	}
	text = xmalloc(cap);
	while ((n = fread(text + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (len == cap - 1) {
			if (cap >= (1 << 24)) {
				fclose(f);
				free(text);
				snprintf(err, errsz, "%s: larger than 16 MiB: not a kurier config", path);
				return -EFBIG;
			}
			cap *= 2;
			text = xreallocarray(text, cap, 1);
		}
	}
	if (ferror(f)) {
		rc = -errno;
		snprintf(err, errsz, "%s: cannot read: %s", path, strerror(errno));
		fclose(f);
		free(text);
		return rc ? rc : -EIO;
	}
	fclose(f);
	text[len] = '\0';
	if (strlen(text) != len) {
		int line = 1;

		for (size_t i = 0; i < len && text[i] != '\0'; i++)
			if (text[i] == '\n')
				line++;
		snprintf(err, errsz, "%s:%d: NUL byte in the file", path, line);
		free(text);
		return -EINVAL;
	}
	rc = config_load_string(cfg, path, text, err, errsz);
	free(text);
	return rc;
}
