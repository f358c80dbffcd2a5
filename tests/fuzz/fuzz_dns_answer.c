/*
 * fuzz_dns_answer - libFuzzer target for the DNS answer parsing of
 * deliver/dns: a resolver's answer, as c-ares hands it over, goes through
 * dns_parse_mx (c-ares's MX parser plus kurier's walk over the records
 * for their TTL) and dns_parse_addr for both families.  The same bytes,
 * as a string, go through dns_valid_name and dns_parse_literal.
 *
 * Invariants checked, besides no crash or leak: MX lists are sorted by
 * preference, within DNS_MX_MAX, with NUL-terminated lower-case hosts;
 * addresses are of the family asked, port 0, within the room given; TTLs
 * are capped at DNS_TTL_MAX; failures leave nothing allocated.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_mx(const uint8_t *data, size_t size)
{
	struct dns_mx *mx;
	size_t n;
	uint32_t ttl;
	int rc = dns_parse_mx(data, size, &mx, &n, &ttl);

	if (rc < 0) {
		if (mx != NULL || n != 0 || (rc != -ENODATA && rc != -EBADMSG))
			abort();
		return;
	}
	if (n == 0 || n > DNS_MX_MAX || ttl > DNS_TTL_MAX)
		abort();
	for (size_t i = 0; i < n; i++) {
		const char *h = mx[i].host;

		if (memchr(h, '\0', sizeof mx[i].host) == NULL)
			abort();
		for (; *h != '\0'; h++)
			if (*h >= 'A' && *h <= 'Z')
				abort();
		if (i > 0 && mx[i].pref < mx[i - 1].pref)
			abort();
		if (mx[i].pref > 65535)
			abort();
		(void)dns_valid_name(mx[i].host);
		(void)dns_parse_literal(mx[i].host, NULL);
	}
	free(mx);
}

static void
check_addr(const uint8_t *data, size_t size, int family)
{
	struct sockaddr_storage ss[DNS_ADDR_MAX + 1];
	size_t room = 1 + size % DNS_ADDR_MAX;
	uint32_t ttl;
	int n;

	memset(ss, 0xa5, sizeof ss);
	n = dns_parse_addr(data, size, family, ss, room, &ttl);
	if (n < 0) {
		if (n != -ENODATA && n != -EBADMSG)
			abort();
		return;
	}
	if (n == 0 || (size_t)n > room || ttl > DNS_TTL_MAX)
		abort();
	/* The slot after the room given is untouched. */
	if (((unsigned char *)&ss[room])[0] != 0xa5)
		abort();
	for (int i = 0; i < n; i++) {
		if (ss[i].ss_family != family)
			abort();
		if (family == AF_INET && ((struct sockaddr_in *)&ss[i])->sin_port != 0)
			abort();
		if (family == AF_INET6 && ((struct sockaddr_in6 *)&ss[i])->sin6_port != 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	check_mx(data, size);
	check_addr(data, size, AF_INET);
	check_addr(data, size, AF_INET6);

	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (dns_valid_name(s) && strlen(s) > DNS_NAME_MAX + 1)
		abort();
	(void)dns_parse_literal(s, NULL);
	free(s);
	return 0;
}
