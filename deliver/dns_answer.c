/*
 * dns_answer - the pure half of deliver/dns: names, literals, and DNS
 * answers (MX, A, AAAA) taken apart with c-ares's parsers, with the
 * records' TTL.  No state, no I/O; tests/fuzz/fuzz_dns_answer.c feeds it
 * arbitrary bytes.  See dns.h for each function's contract.
 */
#include "deliver/dns.h"

#include <ares.h>
#include <ares_nameser.h>
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/str.h"
#include "core/xmalloc.h"

const char *
dns_status_name(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return "ok";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_NODATA:
		return "nodata";
	case DNS_TEMPFAIL:
		return "tempfail";
	case DNS_CANCELED:
		return "canceled";
	}
	return "?";
}

bool
dns_valid_name(const char *name)
{
	size_t len = strnlen(name, DNS_NAME_MAX + 2), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (c <= 0x20 || c >= 0x7f || c == '\\')
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

bool
dns_parse_literal(const char *s, struct sockaddr_storage *out)
{
	char tmp[INET6_ADDRSTRLEN + 8];
	const char *p = s;
	size_t len = strnlen(s, sizeof tmp);
	bool v6only = false;
	struct in_addr a4;
	struct in6_addr a6;

	if (len >= sizeof tmp)
		return false;
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']')
			return false;
		str_copyn(tmp, s + 1, len - 2, sizeof tmp);
		p = tmp;
		if (strncasecmp(p, "IPv6:", 5) == 0) {
			p += 5;
			v6only = true;
		}
	}
	if (!v6only && inet_pton(AF_INET, p, &a4) == 1) {
		if (out != NULL) {
			struct sockaddr_in *sin = (struct sockaddr_in *)out;

			memset(out, 0, sizeof *out);
			sin->sin_family = AF_INET;
			sin->sin_addr = a4;
		}
		return true;
	}
	if (inet_pton(AF_INET6, p, &a6) == 1) {
		if (out != NULL) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;

			memset(out, 0, sizeof *out);
			sin6->sin6_family = AF_INET6;
			sin6->sin6_addr = a6;
		}
		return true;
	}
	return false;
}


static uint32_t
dns_ttl_cap(uint32_t ttl)
{
	return ttl > DNS_TTL_MAX ? DNS_TTL_MAX : ttl;
}

/*
 * The smallest TTL among the answer records of type want (and the CNAMEs
 * leading to them) in abuf: RFC 1035 §4.1.  Names are skipped with
 * ares_expand_name(), which follows compression pointers safely.
 * Returns 0 with *ttl, -ENODATA when no such record is there, or
 * -EBADMSG.
 */
static int
dns_answer_ttl(const unsigned char *abuf, size_t alen, unsigned want,
    uint32_t *ttl)
{
	const unsigned char *p = abuf + 12, *end = abuf + alen;
	unsigned qdcount, ancount;
	bool found = false;
	uint32_t min = UINT32_MAX;

	if (alen < 12 || alen > INT_MAX)
		return -EBADMSG;
	qdcount = (unsigned)abuf[4] << 8 | abuf[5];
	ancount = (unsigned)abuf[6] << 8 | abuf[7];
	for (unsigned i = 0; i < qdcount + ancount; i++) {
		char *name;
		long enclen;
		unsigned type, rdlen;
		uint32_t t;

		if (ares_expand_name(p, abuf, (int)alen, &name, &enclen) !=
		    ARES_SUCCESS)
			return -EBADMSG;
		ares_free_string(name);
		if (enclen <= 0 || enclen > end - p)
			return -EBADMSG;
		p += enclen;
		if (i < qdcount) {
			if (end - p < 4)
				return -EBADMSG;
			p += 4;
			continue;
		}
		if (end - p < 10)
			return -EBADMSG;
		type = (unsigned)p[0] << 8 | p[1];
		t = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 |
		    (uint32_t)p[6] << 8 | p[7];
		rdlen = (unsigned)p[8] << 8 | p[9];
		p += 10;
		if ((size_t)(end - p) < rdlen)
			return -EBADMSG;
		p += rdlen;
		/* RFC 2181 §8: a TTL with the top bit set counts as 0. */
		if (t > INT32_MAX)
			t = 0;
		if (type == want)
			found = true;
		if ((type == want || type == ns_t_cname) && t < min)
			min = t;
	}
	if (!found)
		return -ENODATA;
	*ttl = min;
	return 0;
}

static int
dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;

	return x->pref < y->pref ? -1 : x->pref > y->pref;
}

/* Shuffle each run of equal preferences in a sorted list (RFC 5321 §5.1). */
void
dns_shuffle_mx(struct dns_mx *mx, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t j = i + 1;

		while (j < n && mx[j].pref == mx[i].pref)
			j++;
		for (size_t k = j - 1; k > i; k--) {
			size_t r = i + arc4random_uniform((uint32_t)(k - i + 1));
			struct dns_mx t = mx[k];

			mx[k] = mx[r];
			mx[r] = t;
		}
		i = j;
	}
}

int
dns_parse_mx(const unsigned char *abuf, size_t alen, struct dns_mx **out,
    size_t *n, uint32_t *ttl)
{
	struct ares_mx_reply *head = NULL;
	struct dns_mx *mx;
	size_t cnt = 0, k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	*ttl = 0;
	if (alen > INT_MAX)
		return -EBADMSG;
	rc = ares_parse_mx_reply(abuf, (int)alen, &head);
	if (rc == ARES_ENODATA)
		return -ENODATA;
	if (rc != ARES_SUCCESS)
		return -EBADMSG;
	for (struct ares_mx_reply *p = head; p != NULL; p = p->next)
		cnt++;
	if (cnt == 0) {
		ares_free_data(head);
		return -ENODATA;
	}
	mx = xcalloc(cnt, sizeof *mx);
	for (struct ares_mx_reply *p = head; p != NULL; p = p->next) {
		/* A name that only fits escaped (RFC 1035 §5.1) is useless to us. */
		if (str_copy(mx[k].host, p->host, sizeof mx[k].host) < 0)
			continue;
		str_lower(mx[k].host);
		mx[k].pref = p->priority;
		k++;
	}
	ares_free_data(head);
	if (k == 0 || dns_answer_ttl(abuf, alen, ns_t_mx, ttl) < 0) {
		free(mx);
		return -EBADMSG;
	}
	*ttl = dns_ttl_cap(*ttl);
	qsort(mx, k, sizeof *mx, dns_mx_cmp);
	dns_shuffle_mx(mx, k);
	*out = mx;
	*n = k < DNS_MX_MAX ? k : DNS_MX_MAX;
	return 0;
}

int
dns_parse_addr(const unsigned char *abuf, size_t alen, int family,
    struct sockaddr_storage *out, size_t max, uint32_t *ttl)
{
	struct ares_addrttl a4[DNS_ADDR_MAX];
	struct ares_addr6ttl a6[DNS_ADDR_MAX];
	int n = DNS_ADDR_MAX, rc;
	uint32_t min = UINT32_MAX;

	*ttl = 0;
	if (alen > INT_MAX)
		return -EBADMSG;
	if (max < (size_t)n)
		n = (int)max;
	if (family == AF_INET)
		rc = ares_parse_a_reply(abuf, (int)alen, NULL, a4, &n);
	else if (family == AF_INET6)
		rc = ares_parse_aaaa_reply(abuf, (int)alen, NULL, a6, &n);
	else
		return -EINVAL;
	if (rc == ARES_ENODATA)
		return -ENODATA;
	if (rc != ARES_SUCCESS || n < 0)
		return -EBADMSG;
	if (n == 0)
		return -ENODATA;
	for (int i = 0; i < n; i++) {
		int t = family == AF_INET ? a4[i].ttl : a6[i].ttl;

		memset(&out[i], 0, sizeof out[i]);
		if (family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&out[i];

			sin->sin_family = AF_INET;
			sin->sin_addr = a4[i].ipaddr;
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out[i];

			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, &a6[i].ip6addr, sizeof sin6->sin6_addr);
		}
		if (t < 0)
			t = 0;
		if ((uint32_t)t < min)
			min = (uint32_t)t;
	}
	*ttl = dns_ttl_cap(min);
	return n;
}
