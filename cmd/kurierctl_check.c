/*
 * kurierctl_check - kurierctl check (the configuration summed up, no
 * network) and dkim keygen / dkim record (keys in data_dir/dkim, through
 * deliver/dkimkey.h).
 */
#include <arpa/inet.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cmd/ctl.h"
#include "cmd/kurierctl_int.h"
#include "core/config.h"
#include "core/str.h"
#include "deliver/dkimkey.h"
#include "policy/auth.h"

/* --- check ------------------------------------------------------------------------- */

/* nets_str - "127.0.0.1/32, ::1/128", or "none". */
static const char *
nets_str(const struct config_nets *nets, char *dst, size_t size)
{
	size_t off = 0;

	dst[0] = '\0';
	if (nets->n == 0)
		str_copy(dst, "none", size);
	for (unsigned i = 0; i < nets->n; i++) {
		char a[INET6_ADDRSTRLEN];
		int w;

		if (inet_ntop(nets->net[i].family, nets->net[i].addr, a, sizeof a) == NULL)
			str_copy(a, "?", sizeof a);
		w = snprintf(dst + off, size - off, "%s%s/%u", i ? ", " : "", a,
		    nets->net[i].prefix);
		if (w < 0 || (size_t)w >= size - off)
			break;
		off += (size_t)w;
	}
	return dst;
}

/* rates_text - a [policy] rate list for people: "500/h, 20/min", or "none (no limit)". */
static const char *
rates_text(const struct config_rates *r, char *dst, size_t size)
{
	char t[AUTH_RATE_MAX];

	config_rates_str(r, t, sizeof t);
	snprintf(dst, size, "%s%s", t, r->n == 0 ? " (no limit)" : "");
	return dst;
}

/* check_policy_summary - the [relay] trust and [policy] lines of check. */
static void
check_policy_summary(const struct config *cfg)
{
	char nets[CONFIG_NETS_MAX * (INET6_ADDRSTRLEN + 8)], r[AUTH_RATE_MAX + 16];
	char d1[32], d2[32], d3[32];

	printf("  trusted networks %s", nets_str(&cfg->relay.trusted_networks, nets, sizeof nets));
	if (cfg->relay.trusted_networks.n > 0)
		printf(" (no TLS or AUTH needed; they act as user %s)", cfg->relay.trusted_user);
	printf("\n");
	printf("  rate             %s per user\n", rates_text(&cfg->policy.rate, r, sizeof r));
	printf("  rcpt rate        %s per user\n", rates_text(&cfg->policy.rcpt_rate, r, sizeof r));
	printf("  suppressed       %s; hard bounces %s\n",
	    cfg->policy.suppressed == CONFIG_SUPPRESSED_DROP ?
	    "drop (accepted with 250, never delivered)" : "reject (550 5.7.1 at RCPT)",
	    cfg->policy.suppress_bounces ? "added to the list" : "not added");
	printf("  auth lock-out    %u failures from one address within %s lock it out for %s\n",
	    cfg->policy.auth_fail_limit,
	    str_duration(d1, sizeof d1, cfg->policy.auth_fail_window_ms),
	    str_duration(d2, sizeof d2, cfg->policy.auth_lockout_ms));
	printf("  session limits   %u protocol errors, %u junk commands between messages, then 421\n",
	    cfg->policy.max_errors, cfg->policy.max_junk_commands);
	printf("  throttle backoff %s, doubling up to %s\n",
	    str_duration(d3, sizeof d3, cfg->policy.throttle_backoff_min_ms),
	    str_duration(d1, sizeof d1, cfg->policy.throttle_backoff_max_ms));
}

int
run_check(struct ctl *c)
{
	const struct config *cfg = &c->cfg;
	char roles[64], addr[CONFIG_HOST_MAX + 16], d[32];

	printf("%s: ok\n", c->conf_path);
	printf("  roles            %s\n", config_roles_str(cfg->server.roles, roles, sizeof roles));
	printf("  redis            %s (prefix \"%s\", connect timeout %s)\n",
	    config_endpoint_str(&cfg->redis.address, addr, sizeof addr), cfg->redis.prefix,
	    str_duration(d, sizeof d, cfg->redis.connect_timeout_ms));
	printf("  retry            ");
	for (unsigned i = 0; i < cfg->deliver.nretry; i++)
		printf("%s%s", i ? ", " : "", str_duration(d, sizeof d, cfg->deliver.retry_ms[i]));
	printf(", then every %s\n", str_duration(d, sizeof d,
	    cfg->deliver.retry_ms[cfg->deliver.nretry - 1]));
	printf("  lifetime         %s\n", str_duration(d, sizeof d, cfg->deliver.lifetime_ms));
	printf("  kept when done   %s\n", str_duration(d, sizeof d, cfg->queue.retention_ms));
	printf("  resolver         %s\n", cfg->deliver.dns_server_set ?
	    config_endpoint_str(&cfg->deliver.dns_server, addr, sizeof addr) : "system (/etc/resolv.conf)");
	for (size_t i = 0; i < cfg->nroutes; i++)
		printf("  route            %s -> %s%s\n", cfg->routes[i].domain,
		    config_endpoint_str(&cfg->routes[i].ep, addr, sizeof addr),
		    cfg->deliver.smarthost_user[0] ? " (AUTH over TLS)" : "");
	for (size_t i = 0; i < cfg->ndomains; i++) {
		const struct config_domain *dom = &cfg->domains[i];

		printf("  domain           %s: return path b+...@%s, DKIM", dom->name, dom->return_path);
		for (unsigned k = 0; k < dom->nselector; k++) {
			char path[PATH_MAX], e[256];

			if (dkimkey_path(path, sizeof path, cfg->server.data_dir, dom->name,
			    dom->selector[k], e, sizeof e) < 0 || access(path, R_OK) != 0)
				printf(" %s (no key: kurierctl dkim keygen %s --selector %s)", dom->selector[k],
				    dom->name, dom->selector[k]);
			else
				printf(" %s", dom->selector[k]);
		}
		printf("\n");
	}
	check_policy_summary(cfg);
	return CTL_OK;
}

/* --- dkim keygen, dkim record ------------------------------------------------------- */

/* dkim keygen DOMAIN [--selector S] [--algo rsa|ed25519]; dkim record DOMAIN [--selector S]. */
int
check_dkim(struct ctl *c, int argc, char **argv)
{
	bool keygen = strcmp(c->cmd->name, "keygen") == 0;

	if (argc == 0)
		return ctl_usage_error(c, "needs a DOMAIN", NULL,
		    keygen ? "kurierctl dkim keygen example.com --algo rsa" :
		    "kurierctl dkim record example.com --selector s1");
	if (argv[0][0] == '-')
		return ctl_usage_error(c, "the DOMAIN comes first", argv[0],
		    "kurierctl dkim keygen example.com --selector s1");
	if (strlen(argv[0]) > DOMAIN_ARG_MAX)
		return ctl_usage_error(c, "domain too long", NULL, "a domain has at most 255 characters");
	c->domain = argv[0];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--selector") == 0 && i + 1 < argc) {
			c->selector = argv[++i];
		} else if (keygen && strcmp(argv[i], "--algo") == 0 && i + 1 < argc) {
			c->algo = argv[++i];
			if (strcmp(c->algo, "rsa") != 0 && strcmp(c->algo, "ed25519") != 0)
				return ctl_usage_error(c, "--algo is rsa or ed25519", c->algo,
				    "rsa (2048 bits) is read by every receiver; ed25519 (RFC 8463) is small and fast");
		} else {
			return ctl_usage_error(c, "unknown or incomplete option", argv[i],
			    keygen ? "use --selector S and --algo rsa|ed25519" : "use --selector S");
		}
	}
	if (c->algo == NULL)
		c->algo = "rsa";
	if (c->selector == NULL)
		c->selector = strcmp(c->algo, "ed25519") == 0 ? "e1" : "s1";
	return CTL_OK;
}

int
run_dkim_keygen(struct ctl *c)
{
	char err[512], *txt = NULL;
	const struct config_domain *dom = config_domain_find(&c->cfg, c->domain);
	bool listed = false;

	if (dkimkey_generate(c->cfg.server.data_dir, c->domain, c->selector, c->algo, &txt,
	    err, sizeof err) < 0) {
		fprintf(stderr, "kurierctl: %s\n", err);
		return CTL_FAIL;
	}
	printf("; %s key for %s, selector %s: publish this record in DNS\n", c->algo,
	    c->domain, c->selector);
	printf("%s\n", txt);
	free(txt);
	for (unsigned i = 0; dom != NULL && i < dom->nselector; i++)
		if (strcasecmp(dom->selector[i], c->selector) == 0)
			listed = true;
	if (!listed)
		fprintf(stderr, "kurierctl: note: add it to %s:\n  [domain %s]\n  dkim_selector = %s\n"
		    "then restart kurierd\n", c->conf_path, c->domain, c->selector);
	return CTL_OK;
}

int
run_dkim_record(struct ctl *c)
{
	char err[512], *txt = NULL;

	if (dkimkey_record(c->cfg.server.data_dir, c->domain, c->selector, &txt, err, sizeof err) < 0) {
		fprintf(stderr, "kurierctl: %s\n", err);
		return CTL_FAIL;
	}
	printf("%s\n", txt);
	free(txt);
	return CTL_OK;
}
