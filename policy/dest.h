/*
 * dest - the rules for a destination: which group a recipient domain
 * belongs to once its MX host is known, the group's shaping limits, its
 * TLS requirement and DKIM choice, whether a reply means "slow down",
 * and what an SPF preflight verdict means for delivery.  Pure functions;
 * deliver/ enforces them.
 *
 * Groups, for a recipient domain delivered through an MX host:
 *   1. a [destination D] section whose mx patterns match the MX host;
 *   2. a built-in rule (Google: .google.com .googlemail.com; Microsoft:
 *      .outlook.com .protection.outlook.com; Yahoo/AOL: .yahoodns.net
 *      .aol.com), tuned by a section named like it ("gmail.com",
 *      "outlook.com", "yahoo.com"), which changes only the keys it sets;
 *   3. the section named like the recipient domain;
 *   4. else the domain alone, with the [deliver] defaults.
 * In 1 and 2 a section named like the recipient domain still gives that
 * domain its dkim and require_tls; if it sets a shaping key
 * (max_connections, max_messages_per_*, mx, throttle) the domain is a
 * group of its own (3) instead.
 */
#ifndef KURIER_POLICY_DEST_H
#define KURIER_POLICY_DEST_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

struct policy_dest {
	char group[CONFIG_HOST_MAX];          /* shaping and back-off key */
	unsigned dkim;                        /* CONFIG_DKIM_* */
	enum config_require_tls require_tls;
	unsigned max_connections;             /* across the group; 0 = per_destination per host */
	unsigned max_messages_per_connection; /* never 0: [deliver] value when unset */
	unsigned max_messages_per_minute;     /* 0 = no limit */
	const char *const *throttle;          /* NULL-terminated patterns (into cfg or built-ins) */
	char throttle_buf[CONFIG_THROTTLE_MAX + 1][CONFIG_THROTTLE_LEN];
	const char *throttle_ptr[CONFIG_THROTTLE_MAX + 1];
	bool builtin;                         /* a built-in rule took part */
};

/*
 * policy_dest_for - the rules for recipient domain, delivered via MX host
 * mxhost (NULL before routing, or for a route./smarthost: domain rules
 * only).  Never fails: unknown destinations get the defaults.
 */
void policy_dest_for(const struct config *cfg, const char *domain,
    const char *mxhost, struct policy_dest *out);
/*
 * policy_dest_throttled - whether reply (a whole SMTP reply, any line)
 * matches one of d's throttle patterns: an enhanced status code equal to
 * the pattern or starting with it ("4.7.5*"), or the pattern as a word
 * anywhere (Yahoo's "[TSS04]").  Only 4xx replies and 421 closings count.
 */
bool policy_dest_throttled(const struct policy_dest *d, const char *reply);

/*
 * policy_hard_bounce - whether a 5xx reply to a recipient says the
 * address does not exist (so mail to it should stop): enhanced codes
 * 5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10 and 5.2.1; without an enhanced code,
 * 550/551/553 with "user unknown", "no such user", "does not exist" or
 * the like.  Never a policy refusal (5.7.x), a full mailbox (5.2.2) or a
 * temporary (4xx) reply.
 */
bool policy_hard_bounce(const char *reply);

/* What an SPF preflight verdict means for one delivery attempt. */
enum policy_spf_action {
	POLICY_SPF_DELIVER,      /* pass, or preflight off */
	POLICY_SPF_WARN,         /* log, deliver */
	POLICY_SPF_DEFER,        /* hold: "451 4.7.23 SPF preflight: ..." */
};
/*
 * policy_spf_decide - result is libspf2's verdict name as policy/spfcheck
 * gives it ("pass", "fail", "softfail", "neutral", "none", "temperror",
 * "permerror"); [deliver] spf_preflight says what a failing one does.
 */
enum policy_spf_action policy_spf_decide(const struct config *cfg,
    const char *result);

#endif
