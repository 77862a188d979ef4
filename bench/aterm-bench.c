/*
 * aterm-bench - derivations per second for ATerm parse+print, Nix 2.8 JSON
 * parse+print and output-path computation (hash modulo with inputs), over
 * the Nix 2.8 vectors repeated; next to a reference measured in the same
 * run: SHA-256 of the same ATerm bytes (what computing a .drv path costs at
 * least).  The goal is >= 10,000 ATerm parse+print per second.
 *
 *   aterm-bench DATA-DIR [ROUNDS]
 *
 * DATA-DIR is tests/data/derivations/nix-store (drv/ and json/ are read).
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "derivation.h"
#include "strbuf.h"
#include "util.h"

struct vec {
	char *base; /* "<hash>-<name>.drv" */
	char *aterm, *json;
	size_t aterm_len, json_len;
};

static struct vec *vecs;
static size_t n_vecs;

static int cmp_vec(const void *a, const void *b)
{
	return strcmp(((const struct vec *)a)->base, ((const struct vec *)b)->base);
}

static int load(const char *dir)
{
	cleanup_free char *drvdir = path_join(dir, "drv");
	cleanup_dir DIR *d = opendir(drvdir);
	struct dirent *de;
	size_t alloc = 0;

	if (d == NULL) {
		perror(drvdir);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		cleanup_error struct nib_error *e = NULL;
		cleanup_free char *p = NULL, *j = NULL;
		struct vec v = { 0 };

		if (de->d_name[0] == '.')
			continue;
		v.base = xstrdup(de->d_name);
		p = path_join(drvdir, de->d_name);
		j = xasprintf("%s/json/%.*s.json", dir, (int)strlen(de->d_name) - 4, de->d_name);
		if (read_file_at(AT_FDCWD, p, DRV_MAX_TEXT, &v.aterm, &v.aterm_len, &e) < 0 ||
		    read_file_at(AT_FDCWD, j, DRV_MAX_TEXT, &v.json, &v.json_len, &e) < 0) {
			fprintf(stderr, "aterm-bench: %s\n", e->msg);
			return -1;
		}
		ALLOC_GROW(vecs, n_vecs + 1, alloc);
		vecs[n_vecs++] = v;
	}
	sort_array(vecs, n_vecs, sizeof(*vecs), cmp_vec);
	return n_vecs > 0 ? 0 : -1;
}

static struct derivation *resolve(void *userdata, const char *drv_path, struct nib_error **err)
{
	struct vec key = { .base = strrchr(drv_path, '/') + 1 };
	struct vec *v = bsearch(&key, vecs, n_vecs, sizeof(*vecs), cmp_vec);
	struct derivation *d = NULL;

	(void)userdata;
	if (v == NULL) {
		nib_error_set(err, NIB_E_NOT_FOUND, 0, "no vector '%s'", drv_path);
		return NULL;
	}
	if (derivation_parse_aterm(v->aterm, v->aterm_len, "/nix/store", &d, err) < 0)
		return NULL;
	return d;
}

static double rate(unsigned long n, uint64_t usec)
{
	return usec ? (double)n * 1e6 / (double)usec : 0;
}

int main(int argc, char **argv)
{
	unsigned long rounds = 2000, n = 0;
	size_t bytes = 0;
	uint64_t t0, t_aterm, t_json, t_paths, t_ref;
	struct strbuf out = STRBUF_INIT;
	volatile unsigned sink = 0;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: aterm-bench DATA-DIR [ROUNDS]\n");
		return 2;
	}
	if (argc == 3 && (rounds = strtoul(argv[2], NULL, 10)) == 0)
		rounds = 1;
	if (load(argv[1]) < 0)
		return 1;
	for (size_t i = 0; i < n_vecs; i++)
		bytes += vecs[i].aterm_len;

	/* ATerm parse + print. */
	t0 = now_monotonic_usec();
	for (unsigned long r = 0; r < rounds; r++)
		for (size_t i = 0; i < n_vecs; i++) {
			cleanup_error struct nib_error *e = NULL;
			struct derivation *d = NULL;

			if (derivation_parse_aterm(vecs[i].aterm, vecs[i].aterm_len, "/nix/store",
						   &d, &e) < 0) {
				fprintf(stderr, "aterm-bench: %s\n", e->msg);
				return 1;
			}
			strbuf_reset(&out);
			derivation_print_aterm(d, &out);
			if (out.len != vecs[i].aterm_len)
				return 1;
			derivation_free(d);
		}
	t_aterm = now_monotonic_usec() - t0;
	n = rounds * n_vecs;

	/* Nix 2.8 JSON parse + print. */
	t0 = now_monotonic_usec();
	for (unsigned long r = 0; r < rounds; r++)
		for (size_t i = 0; i < n_vecs; i++) {
			cleanup_error struct nib_error *e = NULL;
			cleanup_free char *key = NULL;
			struct derivation *d = NULL;
			const struct derivation *dv[1];
			const char *pv[1];

			if (derivation_parse_json(vecs[i].json, vecs[i].json_len, "/nix/store",
						  &key, &d, &e) < 0) {
				fprintf(stderr, "aterm-bench: %s\n", e->msg);
				return 1;
			}
			dv[0] = d;
			pv[0] = key;
			strbuf_reset(&out);
			derivation_print_json(dv, pv, 1, &out);
			if (out.len != vecs[i].json_len)
				return 1;
			derivation_free(d);
		}
	t_json = now_monotonic_usec() - t0;

	/* Output paths and .drv path (inputs parsed and hashed once per round). */
	t0 = now_monotonic_usec();
	for (unsigned long r = 0; r < rounds; r++) {
		cleanup_drv_hasher struct drv_hasher *h =
			drv_hasher_new("/nix/store", resolve, NULL);
		for (size_t i = 0; i < n_vecs; i++) {
			cleanup_error struct nib_error *e = NULL;
			cleanup_derivation struct derivation *d = NULL;
			char **paths = NULL;
			struct store_path sp;

			if (derivation_parse_aterm(vecs[i].aterm, vecs[i].aterm_len, "/nix/store",
						   &d, &e) < 0 ||
			    derivation_output_paths(h, d, &paths, &e) < 0 ||
			    derivation_store_path("/nix/store", d, &sp, NULL, NULL, &e) < 0) {
				if (d != NULL && d->name == NULL) {
					/* structured attrs keep the name elsewhere */
					drv_paths_free(paths, 0);
					continue;
				}
				fprintf(stderr, "aterm-bench: %s: %s\n", vecs[i].base, e->msg);
				return 1;
			}
			sink += (unsigned)sp.hash[0];
			drv_paths_free(paths, d->n_outputs);
		}
	}
	t_paths = now_monotonic_usec() - t0;

	/* Reference: SHA-256 of the same bytes. */
	t0 = now_monotonic_usec();
	for (unsigned long r = 0; r < rounds; r++)
		for (size_t i = 0; i < n_vecs; i++) {
			struct hash hh;
			hash_buffer(HASH_SHA256, vecs[i].aterm, vecs[i].aterm_len, &hh);
			sink += hh.bytes[0];
		}
	t_ref = now_monotonic_usec() - t0;

	printf("# %zu Nix 2.8 derivations (mean %zu bytes of ATerm), %lu rounds\n", n_vecs,
	       bytes / n_vecs, rounds);
	printf("%-34s %10.0f drv/s  (goal >= 10000: %s)\n", "ATerm parse+print", rate(n, t_aterm),
	       rate(n, t_aterm) >= 10000 ? "met" : "NOT MET");
	printf("%-34s %10.0f drv/s\n", "Nix 2.8 JSON parse+print", rate(n, t_json));
	printf("%-34s %10.0f drv/s\n", "parse + output paths + .drv path", rate(n, t_paths));
	printf("%-34s %10.0f drv/s  (reference)\n", "SHA-256 of the ATerm bytes", rate(n, t_ref));
	printf("ATerm parse+print costs %.1fx a SHA-256 of the same bytes\n",
	       t_ref ? (double)t_aterm / (double)t_ref : 0);
	strbuf_release(&out);
	for (size_t i = 0; i < n_vecs; i++) {
		free(vecs[i].base);
		free(vecs[i].aterm);
		free(vecs[i].json);
	}
	free(vecs);
	return sink == 0xdeadbeef;
}
