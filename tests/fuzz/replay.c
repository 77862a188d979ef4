/*
 * replay.c - main() for fuzz targets built without libFuzzer: run
 * LLVMFuzzerTestOneInput on every file of the corpus directories (or files)
 * given as arguments.  This is how `make check` runs the fuzz corpora.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	cleanup_free char *buf = NULL;
	cleanup_error struct nib_error *e = NULL;
	size_t len = 0;

	if (read_file_at(AT_FDCWD, path, 64 << 20, &buf, &len, &e) < 0) {
		fprintf(stderr, "replay: %s\n", e->msg);
		return -1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned n = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		cleanup_dir DIR *d = NULL;
		struct dirent *de;

		if (stat(argv[i], &st) < 0) {
			perror(argv[i]);
			return 99;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) < 0)
				return 99;
			n++;
			continue;
		}
		d = opendir(argv[i]);
		if (d == NULL) {
			perror(argv[i]);
			return 99;
		}
		while ((de = readdir(d)) != NULL) {
			cleanup_free char *p = NULL;
			if (de->d_name[0] == '.')
				continue;
			p = path_join(argv[i], de->d_name);
			if (run_file(p) < 0)
				return 99;
			n++;
		}
	}
	printf("replayed %u inputs\n", n);
	return n > 0 ? 0 : 99;
}
