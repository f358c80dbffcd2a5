/*
 * xmalloc - allocators that never return NULL: out of memory is fatal
 * (log_fatal, exit 1).  Sizes that a client controls are capped by the
 * caller before they get here.
 */
#ifndef KURIER_CORE_XMALLOC_H
#define KURIER_CORE_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
/* xreallocarray - realloc of n * size bytes; the product is checked. */
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
/* xmemdup0 - copy len bytes and add a NUL after them. */
char *xmemdup0(const void *p, size_t len);

#endif
