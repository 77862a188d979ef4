#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "hashset.h"
#include "util.h"
#include "banned.h"

struct strset {
	char **slots; /* NULL = empty */
	size_t cap;   /* power of two */
	size_t count;
};

struct idset {
	int64_t *keys;
	bool *used;
	size_t cap;
	size_t count;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static uint64_t hash_id(int64_t id)
{
	uint64_t x = (uint64_t)id; /* splitmix64 finaliser */

	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

struct strset *strset_new(void)
{
	struct strset *s = xcalloc(1, sizeof(*s));

	s->cap = 64;
	s->slots = xcalloc(s->cap, sizeof(char *));
	return s;
}

void strset_free(struct strset *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->cap; i++)
		free(s->slots[i]);
	free(s->slots);
	free(s);
}

static size_t str_find(const struct strset *s, const char *key)
{
	size_t i = hash_str(key) & (s->cap - 1);

	while (s->slots[i] != NULL && strcmp(s->slots[i], key) != 0)
		i = (i + 1) & (s->cap - 1);
	return i;
}

static void str_grow(struct strset *s)
{
	char **old = s->slots;
	size_t oldcap = s->cap;

	s->cap *= 2;
	s->slots = xcalloc(s->cap, sizeof(char *));
	for (size_t i = 0; i < oldcap; i++)
		if (old[i] != NULL)
			s->slots[str_find(s, old[i])] = old[i];
	free(old);
}

bool strset_add(struct strset *s, const char *key)
{
	size_t i;

	if ((s->count + 1) * 4 > s->cap * 3)
		str_grow(s);
	i = str_find(s, key);
	if (s->slots[i] != NULL)
		return false;
	s->slots[i] = xstrdup(key);
	s->count++;
	return true;
}

bool strset_contains(const struct strset *s, const char *key)
{
	return s->slots[str_find(s, key)] != NULL;
}

size_t strset_count(const struct strset *s)
{
	return s->count;
}

char **strset_to_sorted_strv(const struct strset *s)
{
	char **v = xcalloc(s->count + 1, sizeof(char *));
	size_t n = 0;

	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i] != NULL)
			v[n++] = xstrdup(s->slots[i]);
	sort_array(v, n, sizeof(char *), strp_cmp);
	return v;
}

struct idset *idset_new(void)
{
	struct idset *s = xcalloc(1, sizeof(*s));

	s->cap = 64;
	s->keys = xcalloc(s->cap, sizeof(int64_t));
	s->used = xcalloc(s->cap, sizeof(bool));
	return s;
}

void idset_free(struct idset *s)
{
	if (s == NULL)
		return;
	free(s->keys);
	free(s->used);
	free(s);
}

static size_t id_find(const struct idset *s, int64_t id)
{
	size_t i = hash_id(id) & (s->cap - 1);

	while (s->used[i] && s->keys[i] != id)
		i = (i + 1) & (s->cap - 1);
	return i;
}

static void id_grow(struct idset *s)
{
	int64_t *oldk = s->keys;
	bool *oldu = s->used;
	size_t oldcap = s->cap;

	s->cap *= 2;
	s->keys = xcalloc(s->cap, sizeof(int64_t));
	s->used = xcalloc(s->cap, sizeof(bool));
	for (size_t i = 0; i < oldcap; i++)
		if (oldu[i]) {
			size_t j = id_find(s, oldk[i]);
			s->keys[j] = oldk[i];
			s->used[j] = true;
		}
	free(oldk);
	free(oldu);
}

bool idset_add(struct idset *s, int64_t id)
{
	size_t i;

	if ((s->count + 1) * 4 > s->cap * 3)
		id_grow(s);
	i = id_find(s, id);
	if (s->used[i])
		return false;
	s->keys[i] = id;
	s->used[i] = true;
	s->count++;
	return true;
}

bool idset_contains(const struct idset *s, int64_t id)
{
	return s->used[id_find(s, id)];
}

size_t idset_count(const struct idset *s)
{
	return s->count;
}
