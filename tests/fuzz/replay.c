/*
 * replay.c: main() for a fuzz target built without libFuzzer.
 *
 * Runs the target once over every file named on the command line or found
 * (not recursively, dot files skipped, in name order) in a directory named
 * there, and prints TAP: one case per file. A file "passes" when the target
 * returns; a failed property or a sanitizer report aborts the process, and
 * tests/count.py counts an executable that died without a failing case as a
 * failure. Each input is copied into a buffer of exactly its size, so an
 * over-read is an ASan report here as it is under libFuzzer.
 *
 * Not compiled into the libFuzzer build, which has its own main().
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* libFuzzer treats LLVMFuzzerInitialize as optional; so does this. */
#pragma weak LLVMFuzzerInitialize

/* Larger inputs are not seeds: refuse rather than load them. */
#define REPLAY_MAX_INPUT (1024 * 1024)

struct replay_list {
	char **paths;
	size_t n;
	size_t cap;
};

static int
replay_add(struct replay_list *l, const char *dir, const char *name)
{
	size_t need = strlen(name) + (dir != NULL ? strlen(dir) + 1 : 0) + 1;
	char *p;

	if (l->n == l->cap) {
		size_t cap = l->cap != 0 ? l->cap * 2 : 64;
		char **np = realloc(l->paths, cap * sizeof(*np));

		if (np == NULL)
			return -1;
		l->paths = np;
		l->cap = cap;
	}
	if ((p = malloc(need)) == NULL)
		return -1;
	if (dir != NULL)
		snprintf(p, need, "%s/%s", dir, name);
	else
		snprintf(p, need, "%s", name);
	l->paths[l->n++] = p;
	return 0;
}

static int
replay_visible(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

/* Every regular file in dir, sorted by name. */
static int
replay_dir(struct replay_list *l, const char *dir)
{
	struct dirent **ents;
	int n, rc = 0;

	if ((n = scandir(dir, &ents, replay_visible, alphasort)) < 0) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (rc == 0 && replay_add(l, dir, ents[i]->d_name) != 0)
			rc = -1;
		free(ents[i]);
	}
	free(ents);
	return rc;
}

/* The whole file in a malloc of exactly its size (1 byte for an empty
 * file, passed with size 0). */
static uint8_t *
replay_read(const char *path, size_t *ret_len)
{
	FILE *fp;
	struct stat st;
	uint8_t *p;
	size_t n;

	if ((fp = fopen(path, "rbe")) == NULL)
		return NULL;
	if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > REPLAY_MAX_INPUT) {
		fclose(fp);
		errno = EINVAL;
		return NULL;
	}
	n = (size_t)st.st_size;
	if ((p = malloc(n > 0 ? n : 1)) == NULL) {
		fclose(fp);
		return NULL;
	}
	if (n > 0 && fread(p, 1, n, fp) != n) {
		fclose(fp);
		free(p);
		errno = EIO;
		return NULL;
	}
	fclose(fp);
	*ret_len = n;
	return p;
}

/* "corpus/frame/seed-x" for a path ending so; the path otherwise. */
static const char *
replay_name(const char *path)
{
	const char *p = strstr(path, "corpus/");

	return p != NULL ? p : path;
}

int
main(int argc, char **argv)
{
	struct replay_list l = { NULL, 0, 0 };
	int failed = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			if (replay_dir(&l, argv[i]) != 0)
				failed = 2;
		} else if (replay_add(&l, NULL, argv[i]) != 0) {
			failed = 2;
		}
	}
	if (failed == 0 && l.n == 0) {
		/* An empty corpus would pass by testing nothing. */
		printf("1..1\nnot ok 1 - no corpus files\n");
		failed = 1;
	}
	if (failed != 0) {
		for (size_t i = 0; i < l.n; i++)
			free(l.paths[i]);
		free(l.paths);
		return failed;
	}
	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
	printf("1..%zu\n", l.n);
	fflush(stdout);
	for (size_t i = 0; i < l.n; i++) {
		size_t len = 0;
		uint8_t *data = replay_read(l.paths[i], &len);

		if (data == NULL) {
			printf("not ok %zu - %s: %s\n", i + 1,
			    replay_name(l.paths[i]), strerror(errno));
			failed = 1;
		} else {
			LLVMFuzzerTestOneInput(data, len);
			free(data);
			printf("ok %zu - %s\n", i + 1, replay_name(l.paths[i]));
		}
		fflush(stdout);
		free(l.paths[i]);
	}
	free(l.paths);
	return failed;
}
