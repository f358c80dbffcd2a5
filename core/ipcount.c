/*
 * ipcount - connections per client address.  See ipcount.h.
 */
#include "core/ipcount.h"

#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/str.h"
#include "core/xmalloc.h"

#define IPCOUNT_BUCKETS 1024
#define IPCOUNT_ADDR_MAX 64 /* an IPv6 address with a zone fits */

struct ipcount_entry {
	struct ipcount_entry *next;
	unsigned n;
	char ip[IPCOUNT_ADDR_MAX];
};

struct ipcount {
	struct ipcount_entry *buckets[IPCOUNT_BUCKETS];
};

static struct ipcount_entry **
bucket(const struct ipcount *t, const char *ip)
{
	unsigned h = fnv1a32_str(FNV1A32_INIT, ip) % IPCOUNT_BUCKETS;

	return (struct ipcount_entry **)&t->buckets[h];
}

struct ipcount *
ipcount_new(void)
{
	return xcalloc(1, sizeof(struct ipcount));
}

void
ipcount_free(struct ipcount *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < IPCOUNT_BUCKETS; i++) {
		struct ipcount_entry *e = t->buckets[i], *n;

		for (; e != NULL; e = n) {
			n = e->next;
			free(e);
		}
	}
	free(t);
}

bool
ipcount_take(struct ipcount *t, const char *ip, unsigned limit)
{
	struct ipcount_entry **b = bucket(t, ip), *e;

	for (e = *b; e != NULL; e = e->next) {
		if (strcmp(e->ip, ip) == 0) {
			if (e->n >= limit)
				return false;
			e->n++;
			return true;
		}
	}
	if (limit == 0)
		return false;
	e = xcalloc(1, sizeof *e);
	str_copy(e->ip, ip, sizeof e->ip);
	e->n = 1;
	e->next = *b;
	*b = e;
	return true;
}

void
ipcount_release(struct ipcount *t, const char *ip)
{
	struct ipcount_entry **p = bucket(t, ip);

	for (; *p != NULL; p = &(*p)->next) {
		if (strcmp((*p)->ip, ip) == 0) {
			if (--(*p)->n == 0) {
				struct ipcount_entry *e = *p;

				*p = e->next;
				free(e);
			}
			return;
		}
	}
}

unsigned
ipcount_get(const struct ipcount *t, const char *ip)
{
	for (struct ipcount_entry *e = *bucket(t, ip); e != NULL; e = e->next)
		if (strcmp(e->ip, ip) == 0)
			return e->n;
	return 0;
}
