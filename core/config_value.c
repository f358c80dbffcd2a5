/*
 * config_value - parsers and formatters of configuration values.  See
 * config_value.h.
 */
#include "core/config_value.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"

#define DAY (86400000ULL)

/* --- rates and networks ----------------------------------------------------- */

/* parse_window - "h", "hour", "min", "d", "day", "s", "sec", or "10s", "2h". */
static int
parse_window(const char *w, uint64_t *ms)
{
	static const struct {
		const char *name;
		uint64_t ms;
	} names[] = {
		{ "s", 1000 }, { "sec", 1000 }, { "second", 1000 },
		{ "m", 60000 }, { "min", 60000 }, { "minute", 60000 },
		{ "h", 3600000 }, { "hour", 3600000 },
		{ "d", 86400000 }, { "day", 86400000 },
	};

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcmp(w, names[i].name) == 0) {
			*ms = names[i].ms;
			return 0;
		}
	}
	if (w[0] < '0' || w[0] > '9')
		return -EINVAL;
	/* "10min" reads as the duration 10m. */
	if (strlen(w) > 3 && strcmp(w + strlen(w) - 3, "min") == 0) {
		char tmp[32];

		if (str_copy(tmp, w, sizeof tmp) < 0)
			return -EINVAL;
		tmp[strlen(tmp) - 2] = '\0';
		return str_to_duration_ms(tmp, ms);
	}
	return str_to_duration_ms(w, ms);
}

int
config_parse_rates(const char *s, struct config_rates *out, const char **why)
{
	char tmp[256], *p, *tok, *slash;
	uint64_t n, w;

	memset(out, 0, sizeof *out);
	if (str_copy(tmp, s, sizeof tmp) < 0) {
		*why = "the list is too long";
		return -EINVAL;
	}
	p = str_trim(tmp);
	if (p[0] == '\0' || strcmp(p, "none") == 0)
		return 0;
	while (p != NULL) {
		tok = p;
		p = strchr(p, ',');
		if (p != NULL)
			*p++ = '\0';
		tok = str_trim(tok);
		if (tok[0] == '\0') {
			*why = "empty entry in the list";
			return -EINVAL;
		}
		slash = strchr(tok, '/');
		if (slash == NULL) {
			*why = "a rate is COUNT/WINDOW, like 500/h, 20/min, 10000/d or 3/10s";
			return -EINVAL;
		}
		*slash = '\0';
		if (str_to_u64(str_trim(tok), &n) < 0 || n < 1 || n > 1000000000) {
			*why = "the count of a rate must be a whole number from 1 to 1000000000";
			return -EINVAL;
		}
		if (parse_window(str_trim(slash + 1), &w) < 0) {
			*why = "the window of a rate must be s, min, h, d, or a duration like 10s or 2h";
			return -EINVAL;
		}
		if (w < 1000 || w > 31 * DAY) {
			*why = "the window of a rate must be from 1s to 31d";
			return -EINVAL;
		}
		if (out->n == CONFIG_RATES_MAX) {
			*why = "at most 4 rates in a list";
			return -EINVAL;
		}
		for (unsigned i = 0; i < out->n; i++) {
			if (out->r[i].window_ms == w) {
				*why = "two rates with the same window";
				return -EINVAL;
			}
		}
		out->r[out->n].limit = n;
		out->r[out->n].window_ms = w;
		out->n++;
	}
	return 0;
}

const char *
config_rates_str(const struct config_rates *r, char *dst, size_t size)
{
	size_t len = 0;

	if (size == 0)
		return dst;
	dst[0] = '\0';
	if (r->n == 0) {
		str_copy(dst, "none", size);
		return dst;
	}
	for (unsigned i = 0; i < r->n && len < size; i++) {
		uint64_t w = r->r[i].window_ms;
		char win[32];
		int n;

		if (w == 1000)
			str_copy(win, "s", sizeof win);
		else if (w == 60000)
			str_copy(win, "min", sizeof win);
		else if (w == 3600000)
			str_copy(win, "h", sizeof win);
		else if (w == DAY)
			str_copy(win, "d", sizeof win);
		else if (w % 60000 == 0 && w % 3600000 != 0)
			snprintf(win, sizeof win, "%" PRIu64 "min", w / 60000);
		else
			str_duration(win, sizeof win, w);
		n = snprintf(dst + len, size - len, "%s%" PRIu64 "/%s", i ? ", " : "",
		    r->r[i].limit, win);
		if (n < 0)
			break;
		len += (size_t)n;
	}
	return dst;
}

int
config_parse_nets(const char *s, struct config_nets *out, const char **why)
{
	char tmp[CONFIG_LINE_MAX + 1], *p, *tok, *slash;

	memset(out, 0, sizeof *out);
	if (str_copy(tmp, s, sizeof tmp) < 0) {
		*why = "the list is too long";
		return -EINVAL;
	}
	p = str_trim(tmp);
	if (p[0] == '\0')
		return 0;
	while (p != NULL) {
		struct config_net net;
		unsigned maxbits;
		uint64_t bits;

		tok = p;
		p = strchr(p, ',');
		if (p != NULL)
			*p++ = '\0';
		tok = str_trim(tok);
		memset(&net, 0, sizeof net);
		if (tok[0] == '\0') {
			*why = "empty entry in the list";
			return -EINVAL;
		}
		slash = strchr(tok, '/');
		if (slash != NULL)
			*slash = '\0';
		if (inet_pton(AF_INET, tok, net.addr) == 1) {
			net.family = AF_INET;
			maxbits = 32;
		} else if (inet_pton(AF_INET6, tok, net.addr) == 1) {
			net.family = AF_INET6;
			maxbits = 128;
		} else {
			*why = "an entry is not an IPv4 or IPv6 address (write networks as 192.0.2.0/24 or 2001:db8::/32)";
			return -EINVAL;
		}
		bits = maxbits;
		if (slash != NULL && (str_to_u64(slash + 1, &bits) < 0 || bits > maxbits)) {
			*why = "a prefix length must be 0-32 for IPv4 and 0-128 for IPv6";
			return -EINVAL;
		}
		net.prefix = (unsigned)bits;
		for (unsigned b = net.prefix; b < maxbits; b++) {
			if (net.addr[b / 8] & (0x80 >> (b % 8))) {
				*why = "an entry has host bits set after its prefix (write the network address, like 10.0.0.0/8)";
				return -EINVAL;
			}
		}
		if (out->n == CONFIG_NETS_MAX) {
			*why = "at most 32 networks";
			return -EINVAL;
		}
		out->net[out->n++] = net;
	}
	return 0;
}

bool
config_nets_match(const struct config_nets *nets, const char *ip)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	unsigned char a[16];
	int family;

	if (nets->n == 0)
		return false;
	if (inet_pton(AF_INET, ip, a) == 1) {
		family = AF_INET;
	} else if (inet_pton(AF_INET6, ip, a) == 1) {
		family = AF_INET6;
		/* An IPv4-mapped address ("::ffff:192.0.2.1") matches IPv4 networks. */
		if (memcmp(a, mapped, sizeof mapped) == 0) {
			memmove(a, a + 12, 4);
			family = AF_INET;
		}
	} else {
		return false;
	}
	for (unsigned i = 0; i < nets->n; i++) {
		const struct config_net *n = &nets->net[i];
		unsigned full = n->prefix / 8, rest = n->prefix % 8;

		if (n->family != family)
			continue;
		if (memcmp(a, n->addr, full) != 0)
			continue;
		if (rest != 0 && ((a[full] ^ n->addr[full]) & (0xff00 >> rest) & 0xff) != 0)
			continue;
		return true;
	}
	return false;
}

int
config_parse_endpoint(const char *s, bool allow_unix,
    struct config_endpoint *ep, const char **why)
{
	const char *colon, *hstart, *hend;
	uint64_t port;

	memset(ep, 0, sizeof *ep);
	if (str_has_prefix(s, "unix:")) {
		if (!allow_unix) {
			*why = "a unix socket is not allowed here";
			return -EINVAL;
		}
		if (s[5] != '/') {
			*why = "unix socket path must be absolute (unix:/run/redis/redis.sock)";
			return -EINVAL;
		}
		if (str_copy(ep->unix_path, s + 5, sizeof ep->unix_path) < 0) {
			*why = "unix socket path too long (107 bytes at most)";
			return -EINVAL;
		}
		return 0;
	}
	if (s[0] == '[') {
		hstart = s + 1;
		hend = strchr(hstart, ']');
		if (hend == NULL || hend[1] != ':') {
			*why = "expected [IPv6-address]:port";
			return -EINVAL;
		}
		colon = hend + 1;
	} else {
		hstart = s;
		colon = strrchr(s, ':');
		if (colon == NULL) {
			*why = "expected host:port";
			return -EINVAL;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			*why = "IPv6 addresses go in brackets: [::1]:port";
			return -EINVAL;
		}
		hend = colon;
	}
	if (hend == hstart) {
		*why = "missing host before the port";
		return -EINVAL;
	}
	for (const char *p = hstart; p < hend; p++) {
		if (*p <= ' ' || *p >= 0x7f || *p == '[' || *p == ']' || *p == '/') {
			*why = "host contains a character not allowed in a host name or address";
			return -EINVAL;
		}
	}
	if (str_to_u64(colon + 1, &port) < 0 || port == 0 || port > 65535) {
		*why = "port must be a number from 1 to 65535";
		return -EINVAL;
	}
	if (str_copyn(ep->host, hstart, (size_t)(hend - hstart), sizeof ep->host) < 0) {
		*why = "host name too long";
		return -EINVAL;
	}
	ep->port = (uint16_t)port;
	return 0;
}

const char *
config_endpoint_str(const struct config_endpoint *ep, char *dst, size_t size)
{
	if (ep->unix_path[0] != '\0')
		snprintf(dst, size, "unix:%s", ep->unix_path);
	else if (strchr(ep->host, ':') != NULL)
		snprintf(dst, size, "[%s]:%u", ep->host, ep->port);
	else
		snprintf(dst, size, "%s:%u", ep->host, ep->port);
	return dst;
}

int
config_parse_listen(const char *s, struct config_listen *out, const char **why)
{
	char tmp[1024], *p, *tok;

	memset(out, 0, sizeof *out);
	if (str_copy(tmp, s, sizeof tmp) < 0) {
		*why = "list too long";
		return -EINVAL;
	}
	if (str_trim(tmp)[0] == '\0')
		return 0;
	for (p = tmp; p != NULL; ) {
		tok = p;
		p = strchr(p, ',');
		if (p != NULL)
			*p++ = '\0';
		tok = str_trim(tok);
		if (tok[0] == '\0') {
			*why = "empty entry in the list";
			return -EINVAL;
		}
		if (out->n == CONFIG_LISTEN_MAX) {
			*why = "at most 8 addresses";
			return -EINVAL;
		}
		if (config_parse_endpoint(tok, false, &out->ep[out->n], why) < 0)
			return -EINVAL;
		out->n++;
	}
	return 0;
}

static const struct {
	const char *name;
	unsigned bit;
} role_names[] = {
	{ "relay", ROLE_RELAY },
	{ "deliver", ROLE_DELIVER },
	{ "mailbox", ROLE_MAILBOX },
};

int
config_parse_roles(const char *s, unsigned *roles, const char **why)
{
	unsigned r = 0;
	const char *p = s;

	if (s[strspn(s, " \t")] == '\0') {
		*why = "at least one role is needed (relay, deliver, mailbox)";
		return -EINVAL;
	}
	for (;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		bool found = false;

		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0) {
			*why = "roles has an empty entry";
			return -EINVAL;
		}
		for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++) {
			if (strlen(role_names[i].name) == n &&
			    strncasecmp(p, role_names[i].name, n) == 0) {
				r |= role_names[i].bit;
				found = true;
			}
		}
		if (!found) {
			*why = "roles are a comma-separated list of relay, deliver, mailbox";
			return -EINVAL;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	if (r == 0) {
		*why = "at least one role is needed (relay, deliver, mailbox)";
		return -EINVAL;
	}
	*roles = r;
	return 0;
}

const char *
config_roles_str(unsigned roles, char *dst, size_t size)
{
	size_t off = 0;

	dst[0] = '\0';
	for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++) {
		if (!(roles & role_names[i].bit))
			continue;
		int n = snprintf(dst + off, size - off, "%s%s", off ? "," : "",
		    role_names[i].name);
		if (n < 0 || (size_t)n >= size - off) {
			dst[off] = '\0';  /* no half a name */
			break;
		}
		off += (size_t)n;
	}
	return dst;
}

int
config_parse_retry(const char *v, uint64_t *out, unsigned *n, const char **why)
{
	char tmp[512], *p, *tok;
	unsigned count = 0;

	if (str_copy(tmp, v, sizeof tmp) < 0) {
		*why = "retry list too long";
		return -EINVAL;
	}
	if (str_trim(tmp)[0] == '\0') {
		*why = "retry needs at least one interval";
		return -EINVAL;
	}
	for (p = tmp; p != NULL; ) {
		uint64_t ms;

		tok = p;
		p = strchr(p, ',');
		if (p != NULL)
			*p++ = '\0';
		tok = str_trim(tok);
		if (tok[0] == '\0') {
			*why = "retry has an empty entry (5m,,10m?)";
			return -EINVAL;
		}
		if (str_to_duration_ms(tok, &ms) < 0 || ms < 1000) {
			*why = "retry is a comma-separated list of durations of 1s or more (5m,10m,1h)";
			return -EINVAL;
		}
		if (count == CONFIG_RETRY_MAX) {
			*why = "retry lists at most 32 intervals";
			return -EINVAL;
		}
		out[count++] = ms;
	}
	*n = count;
	return 0;
}

int
config_parse_bool(const char *s, bool *out)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "true") == 0 || strcmp(s, "on") == 0)
		*out = true;
	else if (strcmp(s, "no") == 0 || strcmp(s, "false") == 0 || strcmp(s, "off") == 0)
		*out = false;
	else
		return -EINVAL;
	return 0;
}
