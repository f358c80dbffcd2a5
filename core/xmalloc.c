/*
 * xmalloc - allocators that never return NULL.  See xmalloc.h.
 */
#include "core/xmalloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static void
oom(size_t size)
{
	log_fatal("core", "out_of_memory", "size=%zu hint=\"raise the memory limit or lower [deliver] concurrency\"", size);
}

void *
xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		oom(size);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		oom(n * size);
	return p;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		oom(SIZE_MAX);
	p = realloc(p, n * size != 0 ? n * size : 1);
	if (p == NULL)
		oom(n * size);
	return p;
}

char *
xstrdup(const char *s)
{
	return xmemdup0(s, strlen(s));
}

char *
xmemdup0(const void *p, size_t len)
{
	char *d = xmalloc(len + 1);

	if (len > 0)
		memcpy(d, p, len);
	d[len] = '\0';
	return d;
}
