/*
 * hashset.h - small open-addressing hash sets for graph walks: strings
 * (store paths) and 64-bit ids (database rows).
 *
 * Sets own copies of the strings added.  Allocation failure aborts (see
 * util.h).  Not thread-safe.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strset;

struct strset *strset_new(void);
void strset_free(struct strset *s); /* NULL-safe */
/* Add a copy of key; true when it was not there before. */
bool strset_add(struct strset *s, const char *key);
bool strset_contains(const struct strset *s, const char *key);
size_t strset_count(const struct strset *s);
/* Every member, sorted bytewise, as a NULL-terminated vector (caller frees). */
char **strset_to_sorted_strv(const struct strset *s);

static inline void strset_freep(struct strset **s)
{
	strset_free(*s);
}
#define cleanup_strset __attribute__((cleanup(strset_freep)))

struct idset;

struct idset *idset_new(void);
void idset_free(struct idset *s); /* NULL-safe */
/* true when id was not there before. */
bool idset_add(struct idset *s, int64_t id);
bool idset_contains(const struct idset *s, int64_t id);
size_t idset_count(const struct idset *s);

static inline void idset_freep(struct idset **s)
{
	idset_free(*s);
}
#define cleanup_idset __attribute__((cleanup(idset_freep)))
