/*
 * dest - the rules for a destination.  See dest.h.
 *
 * The built-in rules are starting points for the three providers that
 * receive most consumer mail.  None of them publishes connection or
 * message-rate limits for senders; what they publish is the replies that
 * mean "you are sending too fast" (Google: 421 4.7.28 in its SMTP error
 * reference; Microsoft: 451 4.7.500-699 "Access denied, please try
 * again later" and 4.7.650/4.7.651 "temporarily rate limited due to IP
 * reputation" in the Exchange Online NDR reference; Yahoo: the [TSS04],
 * [TS01]-[TS03] deferral tags in its sender hub's SMTP error codes).  The
 * numbers below are therefore ours: deliberately conservative, well under
 * what a warmed-up sending IP is commonly seen to get, so a new IP does
 * not provoke the back-off.  Raise them per group in a [destination
 * gmail.com] / [destination outlook.com] / [destination yahoo.com]
 * section, which changes only the keys it sets.
 *
 * A plain "421 4.7.0 Try again later" is not a throttle reply of its own:
 * Google gives it for many temporary conditions, and Yahoo's throttling
 * 4.7.0 replies carry a [TS...] tag, which is what is matched.
 */
#include "policy/dest.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"

/* The keys that shape a group; a domain section setting one is its own group. */
#define DEST_SHAPING (CONFIG_DEST_MAX_CONNECTIONS | CONFIG_DEST_MAX_MSGS_CONN | \
	CONFIG_DEST_MAX_MSGS_MIN | CONFIG_DEST_MX | CONFIG_DEST_THROTTLE)

struct builtin {
	const char *name;           /* group; the [destination] section that tunes it */
	const char *mx[3];
	unsigned max_connections;
	unsigned max_messages_per_connection;
	unsigned max_messages_per_minute;
	const char *throttle[CONFIG_THROTTLE_MAX + 1];
};

static const struct builtin builtins[] = {
	{
		"gmail.com", { ".google.com", ".googlemail.com", NULL },
		20, 100, 3000,
		{ "4.7.28", NULL },
	},
	{
		"outlook.com", { ".outlook.com", ".protection.outlook.com", NULL },
		10, 50, 1200,
		/* 4.7.500-699 (each tagged with an AS number), 4.7.650 and 4.7.651 among them. */
		{ "4.7.5*", "4.7.6*", NULL },
	},
	{
		"yahoo.com", { ".yahoodns.net", ".aol.com", NULL },
		10, 20, 600,
		{ "TSS04", "TS01", "TS02", "TS03", NULL },
	},
};
#define NBUILTINS (sizeof builtins / sizeof builtins[0])

/*
 * mx_match - whether host (any case, a trailing dot allowed) matches
 * pattern: ".example.net" any host under example.net, else that one host.
 */
static bool
mx_match(const char *pattern, const char *host)
{
	size_t hl = strlen(host), pl = strlen(pattern);

	if (hl > 0 && host[hl - 1] == '.')
		hl--;
	if (hl == 0 || pl == 0)
		return false;
	if (pattern[0] == '.')
		return hl > pl && strncasecmp(host + hl - pl, pattern, pl) == 0;
	return hl == pl && strncasecmp(host, pattern, pl) == 0;
}

static const struct builtin *
builtin_for_mx(const char *mxhost)
{
	for (size_t i = 0; i < NBUILTINS; i++)
		for (size_t k = 0; builtins[i].mx[k] != NULL; k++)
			if (mx_match(builtins[i].mx[k], mxhost))
				return &builtins[i];
	return NULL;
}

static const struct builtin *
builtin_named(const char *name)
{
	for (size_t i = 0; i < NBUILTINS; i++)
		if (strcasecmp(builtins[i].name, name) == 0)
			return &builtins[i];
	return NULL;
}

static void
set_throttle(struct policy_dest *out, const char *const *pat, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k < CONFIG_THROTTLE_MAX; i++) {
		if (pat[i] == NULL)
			break;
		str_copy(out->throttle_buf[k], pat[i], CONFIG_THROTTLE_LEN);
		out->throttle_ptr[k] = out->throttle_buf[k];
		k++;
	}
	out->throttle_ptr[k] = NULL;
	out->throttle = out->throttle_ptr;
}

/* apply_builtin - b's values. */
static void
apply_builtin(struct policy_dest *out, const struct builtin *b)
{
	out->max_connections = b->max_connections;
	out->max_messages_per_connection = b->max_messages_per_connection;
	out->max_messages_per_minute = b->max_messages_per_minute;
	set_throttle(out, b->throttle, CONFIG_THROTTLE_MAX);
	out->builtin = true;
}

/* apply_section - the keys that s sets. */
static void
apply_section(struct policy_dest *out, const struct config_destination *s)
{
	const char *pat[CONFIG_THROTTLE_MAX];

	/* (Unset, these two hold their defaults: all, no.) */
	out->dkim = s->dkim;
	out->require_tls = s->require_tls;
	if (s->max_connections > 0)
		out->max_connections = s->max_connections;
	if (s->max_messages_per_connection > 0)
		out->max_messages_per_connection = s->max_messages_per_connection;
	if (s->max_messages_per_minute > 0)
		out->max_messages_per_minute = s->max_messages_per_minute;
	if ((s->seen & CONFIG_DEST_THROTTLE) || s->nthrottle > 0) {
		for (unsigned i = 0; i < s->nthrottle && i < CONFIG_THROTTLE_MAX; i++)
			pat[i] = s->throttle[i];
		set_throttle(out, pat, s->nthrottle);
	}
}

/*
 * apply_domain_keys - a domain's own section inside a group (an mx section
 * or a built-in rule): its DKIM choice and TLS requirement, not shaping.
 */
static void
apply_domain_keys(struct policy_dest *out, const struct config_destination *s)
{
	if (s->seen & CONFIG_DEST_DKIM)
		out->dkim = s->dkim;
	if (s->seen & CONFIG_DEST_REQUIRE_TLS)
		out->require_tls = s->require_tls;
}

void
policy_dest_for(const struct config *cfg, const char *domain,
    const char *mxhost, struct policy_dest *out)
{
	const struct config_destination *sec = NULL, *own;
	const struct builtin *b = NULL;

	memset(out, 0, sizeof *out);
	out->dkim = CONFIG_DKIM_ALL;
	out->require_tls = CONFIG_TLS_OPTIONAL;
	out->max_messages_per_connection = cfg->deliver.max_messages_per_connection;
	set_throttle(out, NULL, 0);

	/* A domain section that shapes makes the domain a group of its own. */
	own = domain != NULL ? config_destination_find(cfg, domain) : NULL;
	if (own != NULL && (own->seen & DEST_SHAPING) != 0)
		mxhost = NULL;
	/* 1. A section whose mx patterns match the host. */
	if (mxhost != NULL && mxhost[0] != '\0') {
		for (size_t i = 0; i < cfg->ndestinations && sec == NULL; i++)
			for (unsigned k = 0; k < cfg->destinations[i].nmx; k++)
				if (mx_match(cfg->destinations[i].mx[k], mxhost)) {
					sec = &cfg->destinations[i];
					break;
				}
	}
	/* 2. A built-in rule by MX host, tuned by the section of its name. */
	if (sec == NULL && mxhost != NULL && mxhost[0] != '\0' &&
	    (b = builtin_for_mx(mxhost)) != NULL) {
		apply_builtin(out, b);
		if ((sec = config_destination_find(cfg, b->name)) != NULL)
			apply_section(out, sec);
		str_copy(out->group, b->name, sizeof out->group);
		if (own != NULL && own != sec)
			apply_domain_keys(out, own);
		return;
	}
	if (sec != NULL) {
		if ((b = builtin_named(sec->name)) != NULL)
			apply_builtin(out, b);
		apply_section(out, sec);
		str_copy(out->group, sec->name, sizeof out->group);
		str_lower(out->group);
		if (own != NULL && own != sec)
			apply_domain_keys(out, own);
		return;
	}
	/* 3. The section named like the domain. */
	if ((sec = own) != NULL) {
		/* Named like a built-in rule: that rule under the section's keys. */
		if ((b = builtin_named(sec->name)) != NULL)
			apply_builtin(out, b);
		apply_section(out, sec);
		str_copy(out->group, sec->name, sizeof out->group);
		str_lower(out->group);
		return;
	}
	/* 4. The domain alone. */
	str_copy(out->group, domain != NULL ? domain : "", sizeof out->group);
	str_lower(out->group);
}

/* --- replies ------------------------------------------------------------------ */

static bool
tok_char(char c)
{
	return isalnum((unsigned char)c) || c == '.';
}

/*
 * token_matches - whether the token tok[0..n) (dots at its ends dropped)
 * equals pattern, or starts with it when pattern ends in '*'.
 */
static bool
token_matches(const char *tok, size_t n, const char *pattern)
{
	size_t pl = strlen(pattern);

	while (n > 0 && tok[n - 1] == '.')
		n--;
	while (n > 0 && tok[0] == '.') {
		tok++;
		n--;
	}
	if (pl > 0 && pattern[pl - 1] == '*')
		return n >= pl - 1 && strncasecmp(tok, pattern, pl - 1) == 0;
	return n == pl && strncasecmp(tok, pattern, pl) == 0;
}

/* reply_code - the 3-digit code at the start of reply, or 0. */
static int
reply_code(const char *reply)
{
	if (reply == NULL || !isdigit((unsigned char)reply[0]) ||
	    !isdigit((unsigned char)reply[1]) || !isdigit((unsigned char)reply[2]) ||
	    (reply[3] != '\0' && reply[3] != ' ' && reply[3] != '-' && reply[3] != '\r' &&
	    reply[3] != '\n'))
		return 0;
	return (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
}

bool
policy_dest_throttled(const struct policy_dest *d, const char *reply)
{
	int code = reply_code(reply);
	const char *p = reply;

	if (d->throttle == NULL || d->throttle[0] == NULL || code < 400 || code >= 500)
		return false;
	while (*p != '\0') {
		const char *s;

		while (*p != '\0' && !tok_char(*p))
			p++;
		s = p;
		while (tok_char(*p))
			p++;
		if (p == s)
			break;
		for (size_t i = 0; d->throttle[i] != NULL; i++)
			if (token_matches(s, (size_t)(p - s), d->throttle[i]))
				return true;
	}
	return false;
}

/*
 * enhanced_code - the enhanced status code after reply's code ("5.1.1"
 * of "550 5.1.1 ..."), copied into dst; false when there is none.
 */
static bool
enhanced_code(const char *reply, char *dst, size_t size)
{
	const char *p = reply + 4, *s;
	unsigned dots = 0;

	if (reply[3] == '\0')
		return false;
	while (*p == ' ')
		p++;
	s = p;
	if (*p < '2' || *p > '5' || p[1] != '.')
		return false;
	while (isdigit((unsigned char)*p) || *p == '.') {
		dots += *p == '.';
		p++;
	}
	if (dots != 2 || p[-1] == '.' || (*p != '\0' && !isspace((unsigned char)*p)) ||
	    (size_t)(p - s) >= size)
		return false;
	str_copyn(dst, s, (size_t)(p - s), size);
	return true;
}

bool
policy_hard_bounce(const char *reply)
{
	static const char *const hard[] = {
		"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1",
	};
	static const char *const words[] = {
		"user unknown", "unknown user", "no such user", "does not exist",
		"no such mailbox", "recipient unknown", "unknown recipient",
	};
	int code = reply_code(reply);
	char ec[16];

	if (code < 500 || code >= 600)
		return false;
	if (enhanced_code(reply, ec, sizeof ec)) {
		for (size_t i = 0; i < sizeof hard / sizeof hard[0]; i++)
			if (strcmp(ec, hard[i]) == 0)
				return true;
		return false;
	}
	if (code != 550 && code != 551 && code != 553)
		return false;
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strcasestr(reply, words[i]) != NULL)
			return true;
	return false;
}

/* --- SPF ------------------------------------------------------------------------ */

enum policy_spf_action
policy_spf_decide(const struct config *cfg, const char *result)
{
	if (cfg->deliver.spf_preflight == CONFIG_SPF_OFF || result == NULL ||
	    strcasecmp(result, "pass") == 0)
		return POLICY_SPF_DELIVER;
	/* neutral says nothing either way: worth a line, never a hold. */
	if (strcasecmp(result, "neutral") == 0)
		return POLICY_SPF_WARN;
	/*
	 * fail, softfail, none, permerror, temperror (and a name we do not
	 * know: the checker could not say) would fail the receiver's check.
	 */
	return cfg->deliver.spf_preflight == CONFIG_SPF_DEFER ? POLICY_SPF_DEFER :
	    POLICY_SPF_WARN;
}
