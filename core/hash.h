/*
 * hash - FNV-1a, 32 bits: the hash of kurier's in-memory tables (per-IP
 * counts, caches, host pools).  Fast and spread well enough for bucket
 * indexes of short keys; not for anything an attacker must not collide
 * (no key is secret, and no table here trusts its hash for identity).
 *
 * Two forms: fnv1a32() and fnv1a32_str() hash a whole key from
 * FNV1A32_INIT; fnv1a32_step() mixes one value into a running hash, so a
 * caller can fold case, join several fields, or mix in a number:
 *
 *	uint32_t h = FNV1A32_INIT;
 *
 *	h = fnv1a32_step(h, (uint32_t)qtype);
 *	for (const char *p = name; *p != '\0'; p++)
 *		h = fnv1a32_step(h, (unsigned char)(*p | 0x20));
 *
 * Header only: every function is static inline and touches nothing but
 * its arguments.
 */
#ifndef KURIER_CORE_HASH_H
#define KURIER_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* The FNV-1a offset basis and prime for 32 bits. */
#define FNV1A32_INIT 2166136261u
#define FNV1A32_PRIME 16777619u

/* fnv1a32_step - h with one more value v mixed in (a byte, or any 32-bit value). */
static inline uint32_t
fnv1a32_step(uint32_t h, uint32_t v)
{
	return (h ^ v) * FNV1A32_PRIME;
}

/* fnv1a32_str - h with the bytes of the NUL-terminated s mixed in. */
static inline uint32_t
fnv1a32_str(uint32_t h, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		h = fnv1a32_step(h, *p);
	return h;
}

/* fnv1a32 - the hash of the n bytes at p, from FNV1A32_INIT. */
static inline uint32_t
fnv1a32(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint32_t h = FNV1A32_INIT;

	for (size_t i = 0; i < n; i++)
		h = fnv1a32_step(h, b[i]);
	return h;
}

#endif
