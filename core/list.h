/*
 * list - intrusive doubly linked lists, header only.
 *
 * A struct link is embedded in the object it links; a list head is a bare
 * struct link.  The list never allocates and never frees: the owner of
 * each object keeps it alive while it is on a list and takes it off
 * (list_del) before freeing it.  An unlinked link points at itself, so
 * list_empty() on a link says whether it is on a list, and list_del() of
 * a link that is not on one does nothing harmful.
 *
 *	struct task { struct link wait; ... };
 *	struct link waiting;
 *	list_init(&waiting);
 *	list_push(&waiting, &t->wait);
 *	struct task *first = LINK_OWNER(list_pop(&waiting), struct task, wait);
 */
#ifndef KURIER_CORE_LIST_H
#define KURIER_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct link {
	struct link *prev, *next;
};

/* LINK_OWNER - the object whose member p is (p must not be NULL). */
#define LINK_OWNER(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/* list_init - an empty list, or a link on no list. */
static inline void
list_init(struct link *l)
{
	l->prev = l->next = l;
}

/* list_empty - l has no element (for a link: it is on no list). */
static inline bool
list_empty(const struct link *l)
{
	return l->next == l;
}

/* list_push - append e, which must be on no list, at the tail of l. */
static inline void
list_push(struct link *l, struct link *e)
{
	e->prev = l->prev;
	e->next = l;
	l->prev->next = e;
	l->prev = e;
}

/* list_del - take e off its list; e is then on no list. */
static inline void
list_del(struct link *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = e;
}

/* list_len - the number of elements, counted (O(n)). */
static inline size_t
list_len(const struct link *l)
{
	size_t n = 0;

	for (const struct link *e = l->next; e != l; e = e->next)
		n++;
	return n;
}

/* list_pop - take the head element off l; NULL when l is empty. */
static inline struct link *
list_pop(struct link *l)
{
	struct link *e;

	if (list_empty(l))
		return NULL;
	e = l->next;
	list_del(e);
	return e;
}

#endif
