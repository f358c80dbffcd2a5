/*
 * test_config - core/config: defaults, every key, and the exact
 * "NAME:LINE: reason" text of each kind of mistake.  The value parsers
 * on their own are in test_config_value.c.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "tests/suites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define DAY_MS (86400000ULL)
#define NAME "test.conf"

static int
load(struct config *cfg, const char *text, char *err)
{
	return config_load_string(cfg, NAME, text, err, CONFIG_ERR_MAX);
}

static void
assert_defaults(const struct config *cfg)
{
	static const uint64_t retry[] = {
		300000, 600000, 1800000, 3600000, 7200000, 14400000, 28800000,
	};
	char host[CONFIG_HOST_MAX] = "";

	if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
		snprintf(host, sizeof host, "localhost");
	ck_assert_str_eq(cfg->server.hostname, host);
	ck_assert_str_eq(cfg->server.data_dir, "/var/lib/kurier");
	ck_assert_int_eq(cfg->server.log_level, LOG_INFO);
	ck_assert_uint_eq(cfg->server.roles, ROLE_RELAY | ROLE_DELIVER | ROLE_MAILBOX);
	ck_assert_uint_eq(cfg->server.shutdown_grace_ms, 30000);
	ck_assert_str_eq(cfg->redis.address.host, "127.0.0.1");
	ck_assert_uint_eq(cfg->redis.address.port, 6379);
	ck_assert_str_eq(cfg->redis.address.unix_path, "");
	ck_assert_str_eq(cfg->redis.password, "");
	ck_assert_str_eq(cfg->redis.prefix, "kurier:");
	ck_assert_uint_eq(cfg->redis.connect_timeout_ms, 5000);
	ck_assert_uint_eq(cfg->redis.reconnect_max_ms, 5000);
	ck_assert_uint_eq(cfg->queue.lease_ms, 120000);
	ck_assert_uint_eq(cfg->queue.retention_ms, 7 * DAY_MS);
	ck_assert_uint_eq(cfg->queue.events_max, 100000);
	ck_assert_uint_eq(cfg->queue.reap_interval_ms, 5000);
	ck_assert_uint_eq(cfg->deliver.nretry, NELEM(retry));
	for (size_t i = 0; i < NELEM(retry); i++)
		ck_assert_uint_eq(cfg->deliver.retry_ms[i], retry[i]);
	ck_assert_uint_eq(cfg->deliver.lifetime_ms, 5 * DAY_MS);
	ck_assert_uint_eq(cfg->deliver.concurrency, 200);
	ck_assert_uint_eq(cfg->deliver.per_destination, 20);
}

START_TEST(test_relay_and_tls_keys)
{
	struct config cfg;
	char err[CONFIG_ERR_MAX];

	/* Defaults: RFC 6409 and RFC 8314 ports, RFC 5321 timeouts. */
	config_defaults(&cfg);
	ck_assert_uint_eq(cfg.relay.submission.n, 1);
	ck_assert_str_eq(cfg.relay.submission.ep[0].host, "0.0.0.0");
	ck_assert_uint_eq(cfg.relay.submission.ep[0].port, 587);
	ck_assert_uint_eq(cfg.relay.submissions.ep[0].port, 465);
	ck_assert_uint_eq(cfg.relay.max_message_size, 26214400);
	ck_assert_uint_eq(cfg.relay.max_recipients, 1000);
	ck_assert_uint_eq(cfg.relay.command_timeout_ms, 300000);
	ck_assert_uint_eq(cfg.relay.data_timeout_ms, 600000);
	ck_assert_str_eq(cfg.tls.cert, "");
	ck_assert_uint_eq(cfg.redis.connections, 4);
	ck_assert_int_eq(load(&cfg, "[redis]\nconnections = 1\n", err), 0);
	ck_assert_uint_eq(cfg.redis.connections, 1);
	ck_assert_int_eq(load(&cfg, "[redis]\nconnections = 33\n", err), -EINVAL);
	ck_assert_str_eq(err, NAME ":2: [redis] connections must be a whole number from 1 to 32, not \"33\"");

	ck_assert_int_eq(load(&cfg, "[relay]\nsubmission = 127.0.0.1:2587, [::1]:2587\n"
	    "submissions =\nmax_message_size = 10M\n", err), 0);
	ck_assert_uint_eq(cfg.relay.submission.n, 2);
	ck_assert_str_eq(cfg.relay.submission.ep[1].host, "::1");
	ck_assert_uint_eq(cfg.relay.submission.ep[1].port, 2587);
	ck_assert_uint_eq(cfg.relay.submissions.n, 0);
	ck_assert_uint_eq(cfg.relay.max_message_size, 10485760);

	ck_assert_int_eq(load(&cfg, "[relay]\nmax_message_size = huge\n", err), -EINVAL);
	ck_assert_str_eq(err, NAME ":2: [relay] max_message_size: \"huge\" is not a size (26214400, 25M, 512k)");
	ck_assert_int_eq(load(&cfg, "[relay]\nmax_message_size = 100\n", err), -EINVAL);
	ck_assert_str_eq(err, NAME ":2: [relay] max_message_size must be from 1024 to 1073741824 bytes");
	ck_assert_int_eq(load(&cfg, "[relay]\nsubmission = 127.0.0.1:2587,,[::1]:1\n", err), -EINVAL);
	ck_assert_str_eq(err, NAME ":2: [relay] submission: \"127.0.0.1:2587,,[::1]:1\": empty entry in the list");
	ck_assert_int_eq(load(&cfg, "[relay]\nsubmission = unix:/x\n", err), -EINVAL);
	ck_assert_str_eq(err, NAME ":2: [relay] submission: \"unix:/x\": a unix socket is not allowed here");
	ck_assert_int_eq(load(&cfg, "[relay]\nsubmission = a:1,a:2,a:3,a:4,a:5,a:6,a:7,a:8,a:9\n", err), -EINVAL);
	ck_assert_str_eq(err, NAME ":2: [relay] submission: \"a:1,a:2,a:3,a:4,a:5,a:6,a:7,a:8,a:9\": at most 8 addresses");
	ck_assert_int_eq(load(&cfg, "[tls]\ncert = /etc/kurier/cert.pem\n", err), -EINVAL);
	ck_assert_str_eq(err, NAME ": [tls] cert and key go together: set both, or neither for a self-signed certificate");
	ck_assert_int_eq(load(&cfg, "[tls]\ncert = /c.pem\nkey = /k.pem\n", err), 0);
	ck_assert_str_eq(cfg.tls.key, "/k.pem");
	ck_assert_int_eq(load(&cfg, "[relay]\nmax_connections = 10\nmax_connections_per_ip = 11\n", err), -EINVAL);
	ck_assert_str_eq(err, NAME ": [relay] max_connections_per_ip (11) is larger than max_connections (10)");
}
END_TEST

START_TEST(test_defaults)
{
	struct config cfg;

	memset(&cfg, 0xa5, sizeof cfg);
	config_defaults(&cfg);
	assert_defaults(&cfg);
	ck_assert_str_eq(cfg.path, "");
}
END_TEST

START_TEST(test_empty_texts)
{
	static const char *const texts[] = {
		"",
		"\n\n",
		"; only a comment\n# and another\n",
		"[server]\n[redis]\r\n[queue]\n[deliver]\n",
		"   \n\t\n",
	};
	char err[CONFIG_ERR_MAX];
	struct config cfg;

	for (size_t i = 0; i < NELEM(texts); i++) {
		snprintf(err, sizeof err, "stale");
		ck_assert_int_eq(load(&cfg, texts[i], err), 0);
		ck_assert_str_eq(err, "");
		ck_assert_str_eq(cfg.path, NAME);
		assert_defaults(&cfg);
	}
}
END_TEST

START_TEST(test_mailbox_keys)
{
	static const char text[] =
	    "[relay]\n"
	    "inbound = 127.0.0.1:2525, [::1]:2525\n"
	    "[mailbox]\n"
	    "retention = 7d\n"
	    "max_messages = 500\n"
	    "delay_warning = 0\n"
	    "dsn_to_sender = yes\n"
	    "postmaster = admin\n"
	    "spf_fail = reject\n"
	    "max_bounce_size = 2M\n"
	    "soft_bounce_limit = 0\n"
	    "soft_bounce_window = 10d\n"
	    "pop3 = 127.0.0.1:2110\n"
	    "pop3s =\n"
	    "max_connections = 300\n"
	    "max_connections_per_ip = 7\n"
	    "pop3_timeout = 15m\n"
	    "imap = 127.0.0.1:2143\n"
	    "imaps =\n"
	    "imap_timeout = 2h\n";
	char err[CONFIG_ERR_MAX];
	struct config cfg;

	config_defaults(&cfg);
	ck_assert_uint_eq(cfg.relay.inbound.n, 1);
	ck_assert_uint_eq(cfg.relay.inbound.ep[0].port, 25);
	ck_assert_uint_eq(cfg.mailbox.retention_ms, 30 * DAY_MS);
	ck_assert_uint_eq(cfg.mailbox.max_messages, 10000);
	ck_assert_uint_eq(cfg.mailbox.delay_warning_ms, 4 * 3600000);
	ck_assert(!cfg.mailbox.dsn_to_sender);
	ck_assert_str_eq(cfg.mailbox.postmaster, "");
	ck_assert_int_eq(cfg.mailbox.spf_fail, CONFIG_SPF_FAIL_MARK);
	ck_assert_uint_eq(cfg.mailbox.max_bounce_size, 10 * 1024 * 1024);
	ck_assert_uint_eq(cfg.mailbox.soft_bounce_limit, 5);
	ck_assert_uint_eq(cfg.mailbox.soft_bounce_window_ms, 30 * DAY_MS);
	ck_assert_uint_eq(cfg.mailbox.pop3.n, 1);
	ck_assert_uint_eq(cfg.mailbox.pop3.ep[0].port, 110);
	ck_assert_uint_eq(cfg.mailbox.pop3s.ep[0].port, 995);
	ck_assert_uint_eq(cfg.mailbox.max_connections, 10000);
	ck_assert_uint_eq(cfg.mailbox.max_connections_per_ip, 50);
	ck_assert_uint_eq(cfg.mailbox.pop3_timeout_ms, 10 * 60000);
	ck_assert_uint_eq(cfg.mailbox.imap.ep[0].port, 143);
	ck_assert_uint_eq(cfg.mailbox.imaps.ep[0].port, 993);
	ck_assert_uint_eq(cfg.mailbox.imap_timeout_ms, 30 * 60000);

	ck_assert_int_eq(load(&cfg, text, err), 0);
	ck_assert_str_eq(err, "");
	ck_assert_uint_eq(cfg.relay.inbound.n, 2);
	ck_assert_uint_eq(cfg.relay.inbound.ep[1].port, 2525);
	ck_assert_uint_eq(cfg.mailbox.retention_ms, 7 * DAY_MS);
	ck_assert_uint_eq(cfg.mailbox.max_messages, 500);
	ck_assert_uint_eq(cfg.mailbox.delay_warning_ms, 0);
	ck_assert(cfg.mailbox.dsn_to_sender);
	ck_assert_str_eq(cfg.mailbox.postmaster, "admin");
	ck_assert_int_eq(cfg.mailbox.spf_fail, CONFIG_SPF_FAIL_REJECT);
	ck_assert_uint_eq(cfg.mailbox.max_bounce_size, 2 * 1024 * 1024);
	ck_assert_uint_eq(cfg.mailbox.soft_bounce_limit, 0);
	ck_assert_uint_eq(cfg.mailbox.soft_bounce_window_ms, 10 * DAY_MS);
	ck_assert_uint_eq(cfg.mailbox.pop3.n, 1);
	ck_assert_uint_eq(cfg.mailbox.pop3.ep[0].port, 2110);
	ck_assert_uint_eq(cfg.mailbox.pop3s.n, 0);
	ck_assert_uint_eq(cfg.mailbox.max_connections, 300);
	ck_assert_uint_eq(cfg.mailbox.max_connections_per_ip, 7);
	ck_assert_uint_eq(cfg.mailbox.pop3_timeout_ms, 15 * 60000);
	ck_assert_uint_eq(cfg.mailbox.imap.ep[0].port, 2143);
	ck_assert_uint_eq(cfg.mailbox.imaps.n, 0);
	ck_assert_uint_eq(cfg.mailbox.imap_timeout_ms, 2 * 3600000);
	ck_assert_int_eq(load(&cfg, "[mailbox]\npop3_timeout = 500ms\n", err), -EINVAL);
	ck_assert_int_eq(load(&cfg, "[relay]\ninbound =\n", err), 0);
	ck_assert_uint_eq(cfg.relay.inbound.n, 0);
}
END_TEST

START_TEST(test_every_key)
{
	static const char text[] =
	    "; every key, none at its default\n"
	    "[server]\n"
	    "hostname = mx1.example.org\n"
	    "data_dir = /srv/kurier\n"
	    "log_level = debug\n"
	    "roles = deliver, relay\n"
	    "shutdown_grace = 45s\n"
	    "\n"
	    "[redis]\n"
	    "address = [::1]:6380\n"
	    "password = s3cret;not-a-comment ; a comment\n"
	    "prefix = test{k}:\n"
	    "connect_timeout = 250ms\n"
	    "reconnect_max = 1m\n"
	    "[queue]\n"
	    "lease = 5m\n"
	    "retention = 30d\n"
	    "events_max = 5000\n"
	    "reap_interval = 2s\n"
	    "[deliver]\n"
	    "retry = 1m, 2m ,1h\n"
	    "lifetime = 2d\n"
	    "concurrency = 50\n"
	    "per_destination = 50\n";
	char err[CONFIG_ERR_MAX];
	struct config cfg;

	ck_assert_int_eq(load(&cfg, text, err), 0);
	ck_assert_str_eq(err, "");
	ck_assert_str_eq(cfg.server.hostname, "mx1.example.org");
	ck_assert_str_eq(cfg.server.data_dir, "/srv/kurier");
	ck_assert_int_eq(cfg.server.log_level, LOG_DEBUG);
	ck_assert_uint_eq(cfg.server.roles, ROLE_RELAY | ROLE_DELIVER);
	ck_assert_uint_eq(cfg.server.shutdown_grace_ms, 45000);
	ck_assert_str_eq(cfg.redis.address.host, "::1");
	ck_assert_uint_eq(cfg.redis.address.port, 6380);
	ck_assert_str_eq(cfg.redis.address.unix_path, "");
	ck_assert_str_eq(cfg.redis.password, "s3cret;not-a-comment");
	ck_assert_str_eq(cfg.redis.prefix, "test{k}:");
	ck_assert_uint_eq(cfg.redis.connect_timeout_ms, 250);
	ck_assert_uint_eq(cfg.redis.reconnect_max_ms, 60000);
	ck_assert_uint_eq(cfg.queue.lease_ms, 300000);
	ck_assert_uint_eq(cfg.queue.retention_ms, 30 * DAY_MS);
	ck_assert_uint_eq(cfg.queue.events_max, 5000);
	ck_assert_uint_eq(cfg.queue.reap_interval_ms, 2000);
	ck_assert_uint_eq(cfg.deliver.nretry, 3);
	ck_assert_uint_eq(cfg.deliver.retry_ms[0], 60000);
	ck_assert_uint_eq(cfg.deliver.retry_ms[1], 120000);
	ck_assert_uint_eq(cfg.deliver.retry_ms[2], 3600000);
	ck_assert_uint_eq(cfg.deliver.lifetime_ms, 2 * DAY_MS);
	ck_assert_uint_eq(cfg.deliver.concurrency, 50);
	ck_assert_uint_eq(cfg.deliver.per_destination, 50);
}
END_TEST

START_TEST(test_more_forms)
{
	static const char text[] =
	    "[redis]\r\n"
	    "address = unix:/run/redis/redis.sock\r\n"
	    "  password =   \r\n"
	    "[server]\r\n"
	    "log_level = WARN\r\n"
	    "roles=mailbox\r\n"
	    "shutdown_grace = 0\r\n"
	    "[deliver]\r\n"
	    "retry = 1s\r\n"
	    "lifetime = 1s\r\n"
	    "concurrency = 100000\r\n"
	    "per_destination = 1\r\n"
	    "[queue]\r\n"
	    "lease = 1d\r\n"
	    "events_max = 100000000\r\n"
	    "retention = 365d";  /* no final newline */
	char err[CONFIG_ERR_MAX];
	struct config cfg;

	ck_assert_int_eq(load(&cfg, text, err), 0);
	ck_assert_str_eq(err, "");
	ck_assert_str_eq(cfg.redis.address.unix_path, "/run/redis/redis.sock");
	ck_assert_str_eq(cfg.redis.address.host, "");
	ck_assert_uint_eq(cfg.redis.address.port, 0);
	ck_assert_str_eq(cfg.redis.password, "");
	ck_assert_int_eq(cfg.server.log_level, LOG_WARN);
	ck_assert_uint_eq(cfg.server.roles, ROLE_MAILBOX);
	ck_assert_uint_eq(cfg.server.shutdown_grace_ms, 0);
	ck_assert_uint_eq(cfg.deliver.nretry, 1);
	ck_assert_uint_eq(cfg.deliver.retry_ms[0], 1000);
	ck_assert_uint_eq(cfg.deliver.lifetime_ms, 1000);
	ck_assert_uint_eq(cfg.deliver.concurrency, 100000);
	ck_assert_uint_eq(cfg.deliver.per_destination, 1);
	ck_assert_uint_eq(cfg.queue.lease_ms, DAY_MS);
	ck_assert_uint_eq(cfg.queue.events_max, 100000000);
	ck_assert_uint_eq(cfg.queue.retention_ms, 365 * DAY_MS);
	/* Keys not named keep their defaults. */
	ck_assert_str_eq(cfg.redis.prefix, "kurier:");
	ck_assert_uint_eq(cfg.queue.reap_interval_ms, 5000);
}
END_TEST

START_TEST(test_retry_max)
{
	char text[256], err[CONFIG_ERR_MAX];
	struct config cfg;
	int off;

	off = snprintf(text, sizeof text, "[deliver]\nretry = 1s");
	for (int i = 1; i < CONFIG_RETRY_MAX; i++)
		off += snprintf(text + off, sizeof text - (size_t)off, ",2s");
	snprintf(text + off, sizeof text - (size_t)off, "\n");
	ck_assert_int_eq(load(&cfg, text, err), 0);
	ck_assert_uint_eq(cfg.deliver.nretry, CONFIG_RETRY_MAX);
	ck_assert_uint_eq(cfg.deliver.retry_ms[0], 1000);
	ck_assert_uint_eq(cfg.deliver.retry_ms[CONFIG_RETRY_MAX - 1], 2000);
	snprintf(text + off, sizeof text - (size_t)off, ",3s\n");
	ck_assert_int_eq(load(&cfg, text, err), -EINVAL);
	ck_assert_str_eq(err, NAME ":2: [deliver] retry: retry lists at most 32 intervals");
}
END_TEST

#define LONG70 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define PATH108 "/" LONG70 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static const struct err_case {
	const char *text;
	const char *err;
} err_cases[] = {
	/* Structure. */
	{ "hostname = a\n",
	    NAME ":1: \"hostname\" comes before any [section]" },
	{ "[server]\nhostname = a\n[bogus]\nx = 1\n",
	    NAME ":3: unknown section [bogus] (known: server, redis, tls, relay, queue, deliver, policy, mailbox, domain NAME, destination NAME)" },
	{ "[Server]\nhostname = a\n",
	    NAME ":1: unknown section [Server] (known: server, redis, tls, relay, queue, deliver, policy, mailbox, domain NAME, destination NAME)" },
	{ "[server]\nhostname = a\n\n  [bogus]  \n",
	    NAME ":4: unknown section [bogus] (known: server, redis, tls, relay, queue, deliver, policy, mailbox, domain NAME, destination NAME)" },
	{ "[server]\n = 7\n",
	    NAME ":2: syntax error: no key name before \"=\"" },
	{ "[server]\nnope = 1\n",
	    NAME ":2: unknown key \"nope\" in [server]" },
	{ "[redis]\nlease = 5m\n",
	    NAME ":2: unknown key \"lease\" in [redis]" },
	{ "[queue]\nlease = 5m\n\n[queue]\nlease = 6m\n",
	    NAME ":5: [queue] lease is set twice" },
	{ "[server]\nroles = relay\nroles = relay\n",
	    NAME ":3: [server] roles is set twice" },
	{ "[server]\nhostname\n",
	    NAME ":2: syntax error: expected \"key = value\" or \"[section]\"" },
	{ "[server\nhostname = a\n",
	    NAME ":1: syntax error: \"[\" without \"]\"" },
	{ "; 1\n; 2\n[server]\n; 4\n\nhostname = mx\njust words\n",
	    NAME ":7: syntax error: expected \"key = value\" or \"[section]\"" },
	{ "; 1\n\n[queue]\nlease = 5m\n\n; 6\nwhat = 7\n",
	    NAME ":7: unknown key \"what\" in [queue]" },
	/* Only the first mistake is told. */
	{ "[queue]\nlease = x\nbogus = 1\n",
	    NAME ":2: [queue] lease: \"x\" is not a duration (30s, 5m, 2h, 5d)" },
	/* Numbers. */
	{ "[queue]\nevents_max = 99\n",
	    NAME ":2: [queue] events_max must be a whole number from 100 to 100000000, not \"99\"" },
	{ "[queue]\nevents_max = 100000001\n",
	    NAME ":2: [queue] events_max must be a whole number from 100 to 100000000, not \"100000001\"" },
	{ "[queue]\nevents_max = 1e3\n",
	    NAME ":2: [queue] events_max must be a whole number from 100 to 100000000, not \"1e3\"" },
	{ "[queue]\nevents_max = -500\n",
	    NAME ":2: [queue] events_max must be a whole number from 100 to 100000000, not \"-500\"" },
	{ "[queue]\nevents_max =\n",
	    NAME ":2: [queue] events_max must be a whole number from 100 to 100000000, not \"\"" },
	{ "[deliver]\nconcurrency = 0\n",
	    NAME ":2: [deliver] concurrency must be a whole number from 1 to 100000, not \"0\"" },
	/* Would wrap to 1 in an unsigned. */
	{ "[deliver]\nconcurrency = 4294967297\n",
	    NAME ":2: [deliver] concurrency must be a whole number from 1 to 100000, not \"4294967297\"" },
	{ "[deliver]\nper_destination = 100001\n",
	    NAME ":2: [deliver] per_destination must be a whole number from 1 to 100000, not \"100001\"" },
	/* Durations. */
	{ "[queue]\nlease = 999ms\n",
	    NAME ":2: [queue] lease must be from 1s to 1d" },
	{ "[queue]\nlease = 25h\n",
	    NAME ":2: [queue] lease must be from 1s to 1d" },
	{ "[queue]\nretention = 366d\n",
	    NAME ":2: [queue] retention must be from 1s to 365d" },
	{ "[queue]\nreap_interval = 2h\n",
	    NAME ":2: [queue] reap_interval must be from 100ms to 1h" },
	{ "[redis]\nconnect_timeout = 99ms\n",
	    NAME ":2: [redis] connect_timeout must be from 100ms to 5m" },
	{ "[redis]\nreconnect_max = 5 m\n",
	    NAME ":2: [redis] reconnect_max: \"5 m\" is not a duration (30s, 5m, 2h, 5d)" },
	{ "[server]\nshutdown_grace = 2d\n",
	    NAME ":2: [server] shutdown_grace must be from 0ms to 1d" },
	{ "[deliver]\nlifetime = 0\n",
	    NAME ":2: [deliver] lifetime must be from 1s to 365d" },
	{ "[deliver]\nretry = 5m,0s\n",
	    NAME ":2: [deliver] retry: retry is a comma-separated list of durations of 1s or more (5m,10m,1h)" },
	{ "[deliver]\nretry = 500ms\n",
	    NAME ":2: [deliver] retry: retry is a comma-separated list of durations of 1s or more (5m,10m,1h)" },
	{ "[deliver]\nretry = 5m, soon\n",
	    NAME ":2: [deliver] retry: retry is a comma-separated list of durations of 1s or more (5m,10m,1h)" },
	{ "[deliver]\nretry =\n",
	    NAME ":2: [deliver] retry: retry needs at least one interval" },
	{ "[deliver]\nretry = 5m,,10m\n",
	    NAME ":2: [deliver] retry: retry has an empty entry (5m,,10m?)" },
	{ "[deliver]\nretry = 5m,\n",
	    NAME ":2: [deliver] retry: retry has an empty entry (5m,,10m?)" },
	/* Strings. */
	{ "[server]\nhostname =\n",
	    NAME ":2: [server] hostname must not be empty" },
	{ "[server]\ndata_dir = ; nothing\n",
	    NAME ":2: [server] data_dir must not be empty" },
	{ "[redis]\nprefix = \n",
	    NAME ":2: [redis] prefix must not be empty" },
	{ "[redis]\nprefix = a b\n",
	    NAME ":2: [redis] prefix: only printable ASCII without spaces" },
	{ "[redis]\nprefix = k\xc3\xa9:\n",
	    NAME ":2: [redis] prefix: only printable ASCII without spaces" },
	{ "[redis]\nprefix = " LONG70 "\n",
	    NAME ":2: [redis] prefix is too long (63 bytes at most)" },
	/* Levels and roles. */
	{ "[server]\nlog_level = loud\n",
	    NAME ":2: [server] log_level must be debug, info, warn or error, not \"loud\"" },
	{ "[server]\nlog_level = warning\n",
	    NAME ":2: [server] log_level must be debug, info, warn or error, not \"warning\"" },
	{ "[server]\nroles = relay,smtp\n",
	    NAME ":2: [server] roles: roles are a comma-separated list of relay, deliver, mailbox" },
	{ "[server]\nroles = relay,,deliver\n",
	    NAME ":2: [server] roles: roles has an empty entry" },
	{ "[server]\nroles = relay,\n",
	    NAME ":2: [server] roles: roles has an empty entry" },
	{ "[server]\nroles = relays\n",
	    NAME ":2: [server] roles: roles are a comma-separated list of relay, deliver, mailbox" },
	{ "[server]\nroles =\n",
	    NAME ":2: [server] roles: at least one role is needed (relay, deliver, mailbox)" },
	/* [redis] address forms. */
	{ "[redis]\naddress = host\n",
	    NAME ":2: [redis] address: \"host\": expected host:port" },
	{ "[redis]\naddress = [::1]\n",
	    NAME ":2: [redis] address: \"[::1]\": expected [IPv6-address]:port" },
	{ "[redis]\naddress = [::1]6379\n",
	    NAME ":2: [redis] address: \"[::1]6379\": expected [IPv6-address]:port" },
	{ "[redis]\naddress = ::1:6379\n",
	    NAME ":2: [redis] address: \"::1:6379\": IPv6 addresses go in brackets: [::1]:port" },
	{ "[redis]\naddress = unix:relative\n",
	    NAME ":2: [redis] address: \"unix:relative\": unix socket path must be absolute (unix:/run/redis/redis.sock)" },
	{ "[redis]\naddress = unix:" PATH108 "\n",
	    NAME ":2: [redis] address: \"unix:" PATH108 "\": unix socket path too long (107 bytes at most)" },
	{ "[redis]\naddress = localhost:0\n",
	    NAME ":2: [redis] address: \"localhost:0\": port must be a number from 1 to 65535" },
	{ "[redis]\naddress = localhost:70000\n",
	    NAME ":2: [redis] address: \"localhost:70000\": port must be a number from 1 to 65535" },
	{ "[redis]\naddress = localhost:\n",
	    NAME ":2: [redis] address: \"localhost:\": port must be a number from 1 to 65535" },
	{ "[redis]\naddress = :6379\n",
	    NAME ":2: [redis] address: \":6379\": missing host before the port" },
	{ "[redis]\naddress = red is:6379\n",
	    NAME ":2: [redis] address: \"red is:6379\": host contains a character not allowed in a host name or address" },
	{ "[redis]\naddress = a/b:6379\n",
	    NAME ":2: [redis] address: \"a/b:6379\": host contains a character not allowed in a host name or address" },
	/* Delivery keys, routes and the named sections. */
	{ "[deliver]\nmx_port = 0\n",
	    NAME ":2: [deliver] mx_port must be a port from 1 to 65535, not \"0\"" },
	{ "[deliver]\ndns_server = 127.0.0.1\n",
	    NAME ":2: [deliver] dns_server: \"127.0.0.1\": expected host:port" },
	{ "[mailbox]\nspf_fail = drop\n",
	    NAME ":2: [mailbox] spf_fail must be mark or reject, not \"drop\"" },
	{ "[mailbox]\npostmaster = a b\n",
	    NAME ": [mailbox] postmaster \"a b\" is not a user name (1-64 of A-Z a-z 0-9 . _ @ + -)" },
	{ "[mailbox]\nmax_messages = 0\n",
	    NAME ":2: [mailbox] max_messages must be a whole number from 1 to 10000000, not \"0\"" },
	{ "[relay]\ninbound = 127.0.0.1\n",
	    NAME ":2: [relay] inbound: \"127.0.0.1\": expected host:port" },
	{ "[deliver]\nspf_preflight = strict\n",
	    NAME ":2: [deliver] spf_preflight must be warn, defer or off, not \"strict\"" },
	{ "[deliver]\noutbound_ip = mail.example.com\n",
	    NAME ":2: [deliver] outbound_ip: \"mail.example.com\" is not an IPv4 or IPv6 address" },
	{ "[deliver]\nroute.example.net = 127.0.0.1:25\nroute.EXAMPLE.net = 127.0.0.1:26\n",
	    NAME ":3: [deliver] route.EXAMPLE.net is set twice" },
	{ "[deliver]\nroute.exa_mple.net = 127.0.0.1:25\n",
	    NAME ":2: [deliver] route.exa_mple.net: \"exa_mple.net\" is not a domain name (or * for every domain)" },
	{ "[deliver]\nroute.* = 127.0.0.1\n",
	    NAME ":2: [deliver] route.*: \"127.0.0.1\": expected host:port" },
	{ "[deliver]\nroute = 127.0.0.1:25\n",
	    NAME ":2: unknown key \"route\" in [deliver]" },
	{ "[domain]\ndkim_selector = s1\n",
	    NAME ":1: [domain] needs a domain name: [domain example.com]" },
	{ "[domain ex ample.com]\n",
	    NAME ":1: [domain ex ample.com]: not a domain name" },
	{ "[domainexample.com]\n",
	    NAME ":1: unknown section [domainexample.com] (known: server, redis, tls, relay, queue, deliver, policy, mailbox, domain NAME, destination NAME)" },
	{ "[domain example.com]\ndkim_key = x\n",
	    NAME ":2: unknown key \"dkim_key\" in [domain example.com] (known: dkim_selector, return_path)" },
	{ "[domain example.com]\ndkim_selector = s1\n[domain Example.COM]\ndkim_selector = s2\n",
	    NAME ":4: [domain example.com] dkim_selector is set twice" },
	{ "[domain example.com]\ndkim_selector = s1,,e1\n",
	    NAME ":2: [domain example.com] dkim_selector: empty entry in the list" },
	{ "[domain example.com]\ndkim_selector = s1, s/1\n",
	    NAME ":2: [domain example.com] dkim_selector: \"s/1\" is not a selector (letters, digits, hyphens and dots, 63 bytes at most)" },
	{ "[domain example.com]\ndkim_selector = a, b, c, d, e\n",
	    NAME ":2: [domain example.com] dkim_selector: at most 4 selectors" },
	{ "[domain example.com]\ndkim_selector = s1, S1\n",
	    NAME ":2: [domain example.com] dkim_selector: \"S1\" is listed twice" },
	{ "[domain example.com]\nreturn_path = bounces@example.com\n",
	    NAME ":2: [domain example.com] return_path: \"bounces@example.com\" is not a domain name" },
	{ "[destination gmail.com]\ndkim = dual\n",
	    NAME ":2: [destination gmail.com] dkim must be all, rsa, ed25519 or none, not \"dual\"" },
	{ "[destination gmail.com]\nrate = 5\n",
	    NAME ":2: unknown key \"rate\" in [destination gmail.com] (known: dkim, require_tls, max_connections, max_messages_per_connection, max_messages_per_minute, mx, throttle)" },
	{ "[destination gmail.com]\nrequire_tls = always\n",
	    NAME ":2: [destination gmail.com] require_tls must be no, yes or verify, not \"always\"" },
	{ "[destination gmail.com]\nmax_connections = 0\n",
	    NAME ":2: [destination gmail.com] max_connections must be a whole number from 1 to 1000000, not \"0\"" },
	{ "[destination gmail.com]\nmax_messages_per_minute = 1000001\n",
	    NAME ":2: [destination gmail.com] max_messages_per_minute must be a whole number from 1 to 1000000, not \"1000001\"" },
	{ "[destination gmail.com]\nmax_connections = 2\nmax_connections = 3\n",
	    NAME ":3: [destination gmail.com] max_connections is set twice" },
	{ "[destination g]\nmx = .google.com, bad_host\n",
	    NAME ":2: [destination g] mx: \"bad_host\" is neither a host name nor .domain (a suffix)" },
	{ "[destination g]\nmx = a, b, c, d, e, f, g, h, i\n",
	    NAME ":2: [destination g] mx: at most 8 entries" },
	{ "[destination g]\nmx = .google.com,\n",
	    NAME ":2: [destination g] mx: empty entry in the list" },
	{ "[destination g]\nthrottle = 4.7.28, TS\x01\n",
	    NAME ":2: [destination g] throttle: \"TS\x01\": a reply code or word, printable ASCII without spaces" },
	{ "[destination g]\nthrottle = 0123456789012345678901234567890123456789\n",
	    NAME ":2: [destination g] throttle: \"0123456789012345678901234567890123456789\" is too long (31 bytes at most)" },
	{ "[policy]\nrate = 500\n",
	    NAME ":2: [policy] rate: \"500\": a rate is COUNT/WINDOW, like 500/h, 20/min, 10000/d or 3/10s" },
	{ "[policy]\nrate = 0/h\n",
	    NAME ":2: [policy] rate: \"0/h\": the count of a rate must be a whole number from 1 to 1000000000" },
	{ "[policy]\nrate = 5/fortnight\n",
	    NAME ":2: [policy] rate: \"5/fortnight\": the window of a rate must be s, min, h, d, or a duration like 10s or 2h" },
	{ "[policy]\nrcpt_rate = 5/500ms\n",
	    NAME ":2: [policy] rcpt_rate: \"5/500ms\": the window of a rate must be from 1s to 31d" },
	{ "[policy]\nrate = 1/h, 2/h\n",
	    NAME ":2: [policy] rate: \"1/h, 2/h\": two rates with the same window" },
	{ "[policy]\nrate = 1/s, 2/min, 3/h, 4/d, 5/w\n",
	    NAME ":2: [policy] rate: \"1/s, 2/min, 3/h, 4/d, 5/w\": the window of a rate must be s, min, h, d, or a duration like 10s or 2h" },
	{ "[policy]\nrate = 1/s, 2/min, 3/h, 4/d, 5/2d\n",
	    NAME ":2: [policy] rate: \"1/s, 2/min, 3/h, 4/d, 5/2d\": at most 4 rates in a list" },
	{ "[policy]\nsuppressed = bounce\n",
	    NAME ":2: [policy] suppressed must be reject or drop, not \"bounce\"" },
	{ "[policy]\nsuppress_bounces = maybe\n",
	    NAME ":2: [policy] suppress_bounces must be yes or no, not \"maybe\"" },
	{ "[policy]\nauth_fail_limit = 0\n",
	    NAME ":2: [policy] auth_fail_limit must be a whole number from 1 to 1000000, not \"0\"" },
	{ "[policy]\nbogus = 1\n",
	    NAME ":2: unknown key \"bogus\" in [policy]" },
	{ "[relay]\ntrusted_networks = 127.0.0.1/33\ntrusted_user = web\n",
	    NAME ":2: [relay] trusted_networks: a prefix length must be 0-32 for IPv4 and 0-128 for IPv6" },
	{ "[relay]\ntrusted_networks = 10.0.0.1/8\ntrusted_user = web\n",
	    NAME ":2: [relay] trusted_networks: an entry has host bits set after its prefix (write the network address, like 10.0.0.0/8)" },
	{ "[relay]\ntrusted_networks = localhost\ntrusted_user = web\n",
	    NAME ":2: [relay] trusted_networks: an entry is not an IPv4 or IPv6 address (write networks as 192.0.2.0/24 or 2001:db8::/32)" },
	{ "[relay]\ntrusted_networks = 127.0.0.1/32, , ::1\n",
	    NAME ":2: [relay] trusted_networks: empty entry in the list" },
	{ "[relay]\ntrusted_networks = 127.0.0.1/32\n",
	    NAME ": [relay] trusted_networks is set but trusted_user is not: name the user trusted clients act as" },
	{ "[relay]\ntrusted_user = web site\n",
	    NAME ": [relay] trusted_user \"web site\" is not a user name (1-64 of A-Z a-z 0-9 . _ @ + -)" },
	{ "[policy]\nthrottle_backoff_min = 2h\n",
	    NAME ": [policy] throttle_backoff_min is longer than throttle_backoff_max" },
	/* Cross-key checks: no line, the whole file is at fault. */
	{ "[deliver]\nsmarthost_user = u\nroute.* = 127.0.0.1:2525\n",
	    NAME ": [deliver] smarthost_user and smarthost_password go together: set both, or neither" },
	{ "[deliver]\nsmarthost_user = u\nsmarthost_password = p\n",
	    NAME ": [deliver] smarthost_user is set but no route.* or route.DOMAIN names a smarthost" },
	{ "[domain a123456789a123456789a123456789a123456789a123456789a123456789a1.b123456789b123456789b123456789b123456789b123456789b123456789b1.c123456789c123456789c123456789c123456789c123456789c123456789c1.d123456789d123456789d123456789d123456789d123456789d1234.com]\n",
	    NAME ": [domain a123456789a123456789a123456789a123456789a123456789a123456789a1.b123456789b123456789b123456789b123456789b123456789b123456789b1.c123456789c123456789c123456789c123456789c123456789c123456789c1.d123456789d123456789d123456789d123456789d123456789d1234.com] the default return_path bounces.a123456789a123456789a123456789a123456789a123456789a123456789a1.b123456789b123456789b123456789b123456789b123456789b123456789b1.c123456789c123456789c123456789c123456789c123456789c123456789c1.d123456789d123456789d123456789d123456789d123456789d1234.com is too long: set return_path" },
	{ "[deliver]\nconcurrency = 10\nper_destination = 30\n",
	    NAME ": [deliver] per_destination (30) is larger than concurrency (10)" },
	{ "[deliver]\nconcurrency = 10\n",
	    NAME ": [deliver] per_destination (20) is larger than concurrency (10)" },
	{ "[deliver]\nlifetime = 4m\n",
	    NAME ": [deliver] lifetime is shorter than the first retry interval" },
	{ "[deliver]\nretry = 2h, 1h\nlifetime = 1h\n",
	    NAME ": [deliver] lifetime is shorter than the first retry interval" },
};

START_TEST(test_policy_keys)
{
	char err[CONFIG_ERR_MAX], buf[128];
	struct config cfg;
	int rc;

	/* Defaults. */
	rc = load(&cfg, "", err);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_uint_eq(cfg.policy.rate.n, 0);
	ck_assert_uint_eq(cfg.policy.rcpt_rate.n, 0);
	ck_assert_int_eq(cfg.policy.suppressed, CONFIG_SUPPRESSED_REJECT);
	ck_assert(cfg.policy.suppress_bounces);
	ck_assert_uint_eq(cfg.policy.auth_fail_limit, 5);
	ck_assert_uint_eq(cfg.policy.auth_fail_window_ms, 600000);
	ck_assert_uint_eq(cfg.policy.auth_lockout_ms, 1800000);
	ck_assert_uint_eq(cfg.policy.max_errors, 20);
	ck_assert_uint_eq(cfg.policy.max_junk_commands, 100);
	ck_assert_uint_eq(cfg.policy.throttle_backoff_min_ms, 60000);
	ck_assert_uint_eq(cfg.policy.throttle_backoff_max_ms, 3600000);
	ck_assert_uint_eq(cfg.relay.trusted_networks.n, 0);
	ck_assert(!config_nets_match(&cfg.relay.trusted_networks, "127.0.0.1"));
	ck_assert_str_eq(config_rates_str(&cfg.relay.inbound_rate, buf, sizeof buf),
	    "120/min, 2000/h");
	config_free(&cfg);

	/* [relay] inbound_rate: the rates syntax; "none" and empty: no limit. */
	rc = load(&cfg, "[relay]\ninbound_rate = 3/min\n", err);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_uint_eq(cfg.relay.inbound_rate.n, 1);
	ck_assert_uint_eq(cfg.relay.inbound_rate.r[0].limit, 3);
	ck_assert_uint_eq(cfg.relay.inbound_rate.r[0].window_ms, 60000);
	config_free(&cfg);
	rc = load(&cfg, "[relay]\ninbound_rate = none\n", err);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_uint_eq(cfg.relay.inbound_rate.n, 0);
	config_free(&cfg);
	rc = load(&cfg, "[relay]\ninbound_rate =\n", err);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_uint_eq(cfg.relay.inbound_rate.n, 0);
	config_free(&cfg);
	rc = load(&cfg, "[relay]\ninbound_rate = 500\n", err);
	ck_assert_int_lt(rc, 0);
	ck_assert_str_eq(err, NAME ":2: [relay] inbound_rate: \"500\": a rate is COUNT/WINDOW, like 500/h, 20/min, 10000/d or 3/10s");

	rc = load(&cfg, "[policy]\nrate = 20/min, 500/h,10000/d, 3/10s\nrcpt_rate = 5000/day\n"
	    "suppressed = drop\nsuppress_bounces = no\nauth_fail_limit = 3\n"
	    "auth_fail_window = 1m\nauth_lockout = 2h\nmax_errors = 5\nmax_junk_commands = 7\n"
	    "throttle_backoff_min = 2s\nthrottle_backoff_max = 10m\n"
	    "[relay]\ntrusted_networks = 127.0.0.1/32, 10.0.0.0/8 ,::1, 2001:db8::/32\n"
	    "trusted_user = web\n", err);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_uint_eq(cfg.policy.rate.n, 4);
	ck_assert_uint_eq(cfg.policy.rate.r[0].limit, 20);
	ck_assert_uint_eq(cfg.policy.rate.r[0].window_ms, 60000);
	ck_assert_uint_eq(cfg.policy.rate.r[1].window_ms, 3600000);
	ck_assert_uint_eq(cfg.policy.rate.r[2].limit, 10000);
	ck_assert_uint_eq(cfg.policy.rate.r[2].window_ms, 86400000);
	ck_assert_uint_eq(cfg.policy.rate.r[3].limit, 3);
	ck_assert_uint_eq(cfg.policy.rate.r[3].window_ms, 10000);
	ck_assert_str_eq(config_rates_str(&cfg.policy.rate, buf, sizeof buf),
	    "20/min, 500/h, 10000/d, 3/10s");
	ck_assert_str_eq(config_rates_str(&cfg.policy.rcpt_rate, buf, sizeof buf), "5000/d");
	ck_assert_int_eq(cfg.policy.suppressed, CONFIG_SUPPRESSED_DROP);
	ck_assert(!cfg.policy.suppress_bounces);
	ck_assert_uint_eq(cfg.policy.auth_fail_limit, 3);
	ck_assert_uint_eq(cfg.policy.auth_lockout_ms, 7200000);
	ck_assert_uint_eq(cfg.policy.max_errors, 5);
	ck_assert_uint_eq(cfg.policy.max_junk_commands, 7);
	ck_assert_uint_eq(cfg.policy.throttle_backoff_min_ms, 2000);
	ck_assert_str_eq(cfg.relay.trusted_user, "web");
	ck_assert_uint_eq(cfg.relay.trusted_networks.n, 4);
	ck_assert(config_nets_match(&cfg.relay.trusted_networks, "127.0.0.1"));
	ck_assert(!config_nets_match(&cfg.relay.trusted_networks, "127.0.0.2"));
	ck_assert(config_nets_match(&cfg.relay.trusted_networks, "10.255.255.255"));
	ck_assert(!config_nets_match(&cfg.relay.trusted_networks, "11.0.0.0"));
	ck_assert(config_nets_match(&cfg.relay.trusted_networks, "::1"));
	ck_assert(!config_nets_match(&cfg.relay.trusted_networks, "::2"));
	ck_assert(config_nets_match(&cfg.relay.trusted_networks, "2001:db8:ffff::1"));
	ck_assert(!config_nets_match(&cfg.relay.trusted_networks, "2001:db9::1"));
	ck_assert(config_nets_match(&cfg.relay.trusted_networks, "::ffff:10.1.2.3"));
	ck_assert(!config_nets_match(&cfg.relay.trusted_networks, "not an address"));
	config_free(&cfg);

	/* Prefix boundaries that are not byte-aligned. */
	rc = load(&cfg, "[relay]\ntrusted_networks = 192.168.4.0/22, 0.0.0.0/0\ntrusted_user = w\n", err);
	ck_assert_msg(rc == 0, "%s", err);
	config_free(&cfg);
	rc = load(&cfg, "[relay]\ntrusted_networks = 192.168.4.0/22\ntrusted_user = w\n", err);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert(config_nets_match(&cfg.relay.trusted_networks, "192.168.7.255"));
	ck_assert(!config_nets_match(&cfg.relay.trusted_networks, "192.168.8.0"));
	ck_assert(!config_nets_match(&cfg.relay.trusted_networks, "192.168.3.255"));
	config_free(&cfg);

	/* "none" and empty clear a rate list. */
	rc = load(&cfg, "[policy]\nrate = none\nrcpt_rate =\n", err);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_uint_eq(cfg.policy.rate.n, 0);
	ck_assert_str_eq(config_rates_str(&cfg.policy.rate, buf, sizeof buf), "none");
	config_free(&cfg);
}
END_TEST

START_TEST(test_destination_policy_keys)
{
	char err[CONFIG_ERR_MAX];
	struct config cfg;
	const struct config_destination *d;
	int rc;

	rc = load(&cfg, "[destination shop.example]\nrequire_tls = verify\nmax_connections = 3\n"
	    "max_messages_per_connection = 10\nmax_messages_per_minute = 60\n"
	    "mx = .mx.example, MX1.Other.example\nthrottle = 4.7.28, TSS04, 4.7.5*\n"
	    "[destination b.example]\nrequire_tls = yes\n", err);
	ck_assert_msg(rc == 0, "%s", err);
	d = config_destination_find(&cfg, "shop.example");
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(d->require_tls, CONFIG_TLS_VERIFY);
	ck_assert_uint_eq(d->max_connections, 3);
	ck_assert_uint_eq(d->max_messages_per_connection, 10);
	ck_assert_uint_eq(d->max_messages_per_minute, 60);
	ck_assert_uint_eq(d->nmx, 2);
	ck_assert_str_eq(d->mx[0], ".mx.example");
	ck_assert_str_eq(d->mx[1], "mx1.other.example");
	ck_assert_uint_eq(d->nthrottle, 3);
	ck_assert_str_eq(d->throttle[2], "4.7.5*");
	ck_assert_uint_eq(d->seen, CONFIG_DEST_REQUIRE_TLS | CONFIG_DEST_MAX_CONNECTIONS |
	    CONFIG_DEST_MAX_MSGS_CONN | CONFIG_DEST_MAX_MSGS_MIN | CONFIG_DEST_MX | CONFIG_DEST_THROTTLE);
	ck_assert_uint_eq(d->dkim, CONFIG_DKIM_ALL);
	d = config_destination_find(&cfg, "b.example");
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(d->require_tls, CONFIG_TLS_REQUIRED);
	ck_assert_uint_eq(d->max_connections, 0);
	ck_assert_uint_eq(d->seen, CONFIG_DEST_REQUIRE_TLS);
	config_free(&cfg);
}
END_TEST

START_TEST(test_errors)
{
	const struct err_case *c = &err_cases[_i];
	char err[CONFIG_ERR_MAX];
	struct config cfg;
	int rc;

	rc = load(&cfg, c->text, err);
	ck_assert_msg(rc == -EINVAL, "case %d: rc %d\n%s", _i, rc, c->text);
	ck_assert_str_eq(err, c->err);
}
END_TEST

START_TEST(test_delivery_keys)
{
	static const char text[] =
	    "[deliver]\n"
	    "dns_server = 127.0.0.1:5353\n"
	    "dns_timeout = 2s\n"
	    "mx_port = 2525\n"
	    "route.Example.NET = [127.0.0.1]:2526\n"
	    "route.* = smtp.provider.test:587\n"
	    "smarthost_user = acct\n"
	    "smarthost_password = secret\n"
	    "outbound_ip = ::1\n"
	    "spf_preflight = defer\n"
	    "connect_timeout = 10s\n"
	    "greeting_timeout = 1m\n"
	    "command_timeout = 2m\n"
	    "data_init_timeout = 3m\n"
	    "data_block_timeout = 4m\n"
	    "data_end_timeout = 5m\n"
	    "max_messages_per_connection = 7\n"
	    "idle_timeout = 0s\n"
	    "verp_secret = 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
	    "[domain Example.com]\n"
	    "dkim_selector = s1, e1\n"
	    "[domain shop.example]\n"
	    "[domain long.example]\n"
	    "return_path = rp.example\n"
	    "[destination gmail.com]\n"
	    "dkim = rsa\n"
	    "[destination quiet.example]\n"
	    "dkim = none\n"
	    "[destination other.example]\n";
	char err[CONFIG_ERR_MAX];
	struct config cfg, copy;
	const struct config_domain *d;

	ck_assert_msg(load(&cfg, text, err) == 0, "%s", err);
	ck_assert(cfg.deliver.dns_server_set);
	ck_assert_str_eq(cfg.deliver.dns_server.host, "127.0.0.1");
	ck_assert_uint_eq(cfg.deliver.dns_server.port, 5353);
	ck_assert_uint_eq(cfg.deliver.dns_timeout_ms, 2000);
	ck_assert_uint_eq(cfg.deliver.mx_port, 2525);
	ck_assert_str_eq(cfg.deliver.smarthost_user, "acct");
	ck_assert_str_eq(cfg.deliver.smarthost_password, "secret");
	ck_assert_str_eq(cfg.deliver.outbound_ip, "::1");
	ck_assert_int_eq(cfg.deliver.spf_preflight, CONFIG_SPF_DEFER);
	ck_assert_uint_eq(cfg.deliver.connect_timeout_ms, 10000);
	ck_assert_uint_eq(cfg.deliver.greeting_timeout_ms, 60000);
	ck_assert_uint_eq(cfg.deliver.command_timeout_ms, 120000);
	ck_assert_uint_eq(cfg.deliver.data_init_timeout_ms, 180000);
	ck_assert_uint_eq(cfg.deliver.data_block_timeout_ms, 240000);
	ck_assert_uint_eq(cfg.deliver.data_end_timeout_ms, 300000);
	ck_assert_uint_eq(cfg.deliver.max_messages_per_connection, 7);
	ck_assert_uint_eq(cfg.deliver.idle_timeout_ms, 0);
	ck_assert_uint_eq(strlen(cfg.deliver.verp_secret), 64);

	ck_assert_uint_eq(cfg.nroutes, 2);
	ck_assert_str_eq(config_route_for(&cfg, "EXAMPLE.net")->ep.host, "127.0.0.1");
	ck_assert_uint_eq(config_route_for(&cfg, "example.net")->ep.port, 2526);
	ck_assert_str_eq(config_route_for(&cfg, "gmail.com")->domain, "*");
	ck_assert_str_eq(config_route_for(&cfg, "gmail.com")->ep.host, "smtp.provider.test");

	ck_assert_uint_eq(cfg.ndomains, 3);
	d = config_domain_find(&cfg, "EXAMPLE.COM");
	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(d->name, "example.com");
	ck_assert_uint_eq(d->nselector, 2);
	ck_assert_str_eq(d->selector[0], "s1");
	ck_assert_str_eq(d->selector[1], "e1");
	ck_assert_str_eq(d->return_path, "bounces.example.com");
	d = config_domain_find(&cfg, "shop.example");
	ck_assert_uint_eq(d->nselector, 1);
	ck_assert_str_eq(d->selector[0], "s1");
	ck_assert_str_eq(config_domain_find(&cfg, "long.example")->return_path, "rp.example");
	ck_assert_ptr_null(config_domain_find(&cfg, "other.example"));

	ck_assert_uint_eq(cfg.ndestinations, 3);
	ck_assert_uint_eq(config_destination_find(&cfg, "Gmail.com")->dkim, CONFIG_DKIM_RSA);
	ck_assert_uint_eq(config_destination_find(&cfg, "quiet.example")->dkim, 0);
	ck_assert_uint_eq(config_destination_find(&cfg, "other.example")->dkim, CONFIG_DKIM_ALL);
	ck_assert_ptr_null(config_destination_find(&cfg, "example.com"));

	/* A copy owns its own lists. */
	config_copy(&copy, &cfg);
	config_free(&cfg);
	ck_assert_ptr_null(cfg.domains);
	ck_assert_uint_eq(copy.ndomains, 3);
	ck_assert_str_eq(config_domain_find(&copy, "example.com")->selector[1], "e1");
	config_free(&copy);

	/* Defaults of the new keys; no route means MX routing. */
	ck_assert_int_eq(load(&cfg, "", err), 0);
	ck_assert(!cfg.deliver.dns_server_set);
	ck_assert_uint_eq(cfg.deliver.mx_port, 25);
	ck_assert_int_eq(cfg.deliver.spf_preflight, CONFIG_SPF_WARN);
	ck_assert_uint_eq(cfg.deliver.connect_timeout_ms, 30000);
	ck_assert_uint_eq(cfg.deliver.greeting_timeout_ms, 300000);
	ck_assert_uint_eq(cfg.deliver.data_end_timeout_ms, 600000);
	ck_assert_uint_eq(cfg.deliver.max_messages_per_connection, 100);
	ck_assert_ptr_null(config_route_for(&cfg, "example.net"));
	/* An empty dns_server is the system resolver. */
	ck_assert_int_eq(load(&cfg, "[deliver]\ndns_server =\n", err), 0);
	ck_assert(!cfg.deliver.dns_server_set);
}
END_TEST

/* A domain name longer than libinih's section buffer is read whole. */
START_TEST(test_long_section_name)
{
	char text[512], err[CONFIG_ERR_MAX], name[300];
	struct config cfg;

	snprintf(name, sizeof name, "%s.%s.example", LONG70 + 10, LONG70 + 20);
	snprintf(text, sizeof text, "[domain %s]\nreturn_path = rp.example\n", name);
	ck_assert_msg(load(&cfg, text, err) == 0, "%s", err);
	ck_assert_uint_eq(cfg.ndomains, 1);
	ck_assert_str_eq(cfg.domains[0].name, name);
	ck_assert_str_eq(cfg.domains[0].return_path, "rp.example");
	config_free(&cfg);
}
END_TEST

START_TEST(test_cross_key_boundaries)
{
	char err[CONFIG_ERR_MAX];
	struct config cfg;

	/* Equal is allowed on both checks. */
	ck_assert_int_eq(load(&cfg, "[deliver]\nconcurrency = 20\n", err), 0);
	ck_assert_int_eq(load(&cfg, "[deliver]\nlifetime = 5m\n", err), 0);
	ck_assert_uint_eq(cfg.deliver.lifetime_ms, 300000);
	ck_assert_int_eq(load(&cfg, "[deliver]\nlifetime = 299s\n", err), -EINVAL);
}
END_TEST

START_TEST(test_long_line)
{
	static char text[12000], line[6000];
	char err[CONFIG_ERR_MAX];
	struct config cfg;
	int rc;

	/* 4096 bytes of text are the most a line may hold. */
	memset(line, 'x', 4095);
	line[4095] = '\0';
	snprintf(text, sizeof text, "[server]\n;%s\r\nhostname = ok\n", line);
	ck_assert_int_eq(load(&cfg, text, err), 0);
	ck_assert_str_eq(cfg.server.hostname, "ok");

	/* A long value is read whole, not cut at inih's first buffer. */
	memset(line, 'a', 900);
	line[900] = '\0';
	snprintf(text, sizeof text, "[redis]\npassword = %s\n[server]\nhostname = h\n", line);
	ck_assert_int_eq(load(&cfg, text, err), -EINVAL);
	ck_assert_str_eq(err, NAME ":2: [redis] password is too long (255 bytes at most)");
	memset(line, 'a', 255);
	line[255] = '\0';
	snprintf(text, sizeof text, "[redis]\npassword = %s\n[server]\nhostname = h\n", line);
	ck_assert_int_eq(load(&cfg, text, err), 0);
	ck_assert_str_eq(cfg.redis.password, line);
	ck_assert_str_eq(cfg.server.hostname, "h");

	memset(line, 'x', 5000);
	line[5000] = '\0';
	snprintf(text, sizeof text, "[server]\nhostname = a\n; %s\nhostname = b\n", line);
	rc = load(&cfg, text, err);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_str_eq(err, NAME ":3: line is longer than 4096 bytes");

	/* The long line is the last one, without a line end. */
	snprintf(text, sizeof text, "[server]\nhostname = %s", line);
	ck_assert_int_eq(load(&cfg, text, err), -EINVAL);
	ck_assert_str_eq(err, NAME ":2: line is longer than 4096 bytes");
}
END_TEST

START_TEST(test_small_err_buffer)
{
	char err[16];
	struct config cfg;

	memset(err, '#', sizeof err);
	ck_assert_int_eq(config_load_string(&cfg, NAME, "[server]\na = 1\n", err, 12), -EINVAL);
	ck_assert_str_eq(err, "test.conf:2");
	ck_assert_int_eq(err[12], '#');
}
END_TEST

/* --- config_load: files under a private temporary directory ------------- */

static char tmpdir[PATH_MAX];

static void
tmpdir_setup(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof tmpdir, "%s/kurier-unit-XXXXXX",
	    base != NULL && base[0] != '\0' ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		ck_abort_msg("mkdtemp %s: %s", tmpdir, strerror(errno));
}

static void
tmpdir_teardown(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	char path[PATH_MAX + 256];

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(tmpdir);
}

static const char *
write_file(const char *name, const void *data, size_t len, char *path, size_t size)
{
	FILE *f;

	snprintf(path, size, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

START_TEST(test_load_file)
{
	static const char text[] = "[server]\nhostname = file.example\n[deliver]\nconcurrency = 30\n";
	char path[PATH_MAX + 64], err[CONFIG_ERR_MAX];
	struct config cfg;

	write_file("good.conf", text, sizeof text - 1, path, sizeof path);
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), 0);
	ck_assert_str_eq(err, "");
	ck_assert_str_eq(cfg.path, path);
	ck_assert_str_eq(cfg.server.hostname, "file.example");
	ck_assert_uint_eq(cfg.deliver.concurrency, 30);
	ck_assert_uint_eq(cfg.deliver.per_destination, 20);
}
END_TEST

START_TEST(test_load_file_error_names_file)
{
	static const char text[] = "[server]\n\nfoo = bar\n";
	char path[PATH_MAX + 64], want[PATH_MAX + 128], err[CONFIG_ERR_MAX];
	struct config cfg;

	write_file("bad.conf", text, sizeof text - 1, path, sizeof path);
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), -EINVAL);
	snprintf(want, sizeof want, "%s:3: unknown key \"foo\" in [server]", path);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_load_missing)
{
	char path[PATH_MAX + 64], want[PATH_MAX + 128], err[CONFIG_ERR_MAX];
	struct config cfg;

	snprintf(path, sizeof path, "%s/absent.conf", tmpdir);
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), -ENOENT);
	snprintf(want, sizeof want, "%s: cannot open: %s", path, strerror(ENOENT));
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_load_directory)
{
	char want[PATH_MAX + 128], err[CONFIG_ERR_MAX];
	struct config cfg;

	ck_assert_int_eq(config_load(&cfg, tmpdir, err, sizeof err), -EISDIR);
	snprintf(want, sizeof want, "%s: cannot read: %s", tmpdir, strerror(EISDIR));
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_load_nul_byte)
{
	static const char text[] = "[server]\nhostname = a\n; x\0y\nroles = relay\n";
	char path[PATH_MAX + 64], want[PATH_MAX + 128], err[CONFIG_ERR_MAX];
	struct config cfg;

	write_file("nul.conf", text, sizeof text - 1, path, sizeof path);
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), -EINVAL);
	snprintf(want, sizeof want, "%s:3: NUL byte in the file", path);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_load_big_file)
{
	char path[PATH_MAX + 64], err[CONFIG_ERR_MAX];
	struct config cfg;
	static const char tail[] = "[server]\nhostname = big\n";
	size_t len = 200000;
	char *text = malloc(len);

	/* Larger than the first read buffer: comments, then one key. */
	ck_assert_ptr_nonnull(text);
	for (size_t i = 0; i < len; i += 100) {
		memset(text + i, 'c', 100);
		text[i] = ';';
		text[i + 99] = '\n';
	}
	memset(text + len - 100, '\n', 100);
	memcpy(text + len - 100, tail, sizeof tail - 1);
	write_file("big.conf", text, len, path, sizeof path);
	free(text);
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), 0);
	ck_assert_str_eq(err, "");
	ck_assert_str_eq(cfg.server.hostname, "big");
}
END_TEST

Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("text");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_relay_and_tls_keys);
	tcase_add_test(tc, test_empty_texts);
	tcase_add_test(tc, test_every_key);
	tcase_add_test(tc, test_mailbox_keys);
	tcase_add_test(tc, test_more_forms);
	tcase_add_test(tc, test_retry_max);
	tcase_add_loop_test(tc, test_errors, 0, (int)NELEM(err_cases));
	tcase_add_test(tc, test_cross_key_boundaries);
	tcase_add_test(tc, test_delivery_keys);
	tcase_add_test(tc, test_policy_keys);
	tcase_add_test(tc, test_destination_policy_keys);
	tcase_add_test(tc, test_long_section_name);
	tcase_add_test(tc, test_long_line);
	tcase_add_test(tc, test_small_err_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("file");
	tcase_add_unchecked_fixture(tc, tmpdir_setup, tmpdir_teardown);
	tcase_add_test(tc, test_load_file);
	tcase_add_test(tc, test_load_file_error_names_file);
	tcase_add_test(tc, test_load_missing);
	tcase_add_test(tc, test_load_directory);
	tcase_add_test(tc, test_load_nul_byte);
	tcase_add_test(tc, test_load_big_file);
	suite_add_tcase(s, tc);

	return s;
}
