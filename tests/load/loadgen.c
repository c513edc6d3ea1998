/*
 * loadgen.c: many clients, many requests, through libkmsclient's batch
 * interface, for the load tests (tests/integration/test_load.py).
 *
 *   loadgen SOCKET KEY CLIENTS TOTAL
 *
 * Each of CLIENTS threads opens its own connection and sends its share of
 * TOTAL encrypt requests (32-byte plaintexts) in pipelined batches. Prints
 * one line: "ok=N failed=M seconds=S" and exits 0 when every request got
 * an answer (failed counts refusals the server gave).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kmsclient.h"

/* Requests per batch run: deep enough to pipeline, small enough that a
 * batch's results stay a few hundred kilobytes. */
#define LOADGEN_BATCH 1000

struct worker {
	const char *sock;
	const char *key;
	unsigned long n;
	unsigned long ok;
	unsigned long failed;
	int broken;
	char why[300];
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	unsigned char pt[32];
	kms_client *c = NULL;
	kms_error e;

	memset(pt, 0xa5, sizeof(pt));
	if (kms_connect(&c, w->sock, &e) != 0) {
		snprintf(w->why, sizeof(w->why), "%s: %s", e.code, e.message);
		w->broken = 1;
		return NULL;
	}
	kms_set_timeout(c, 60000, &e);
	while (w->ok + w->failed < w->n && !w->broken) {
		unsigned long left = w->n - w->ok - w->failed;
		size_t k = left < LOADGEN_BATCH ? left : LOADGEN_BATCH;
		kms_batch *b = NULL;

		if (kms_batch_new(c, &b, &e) != 0) {
			w->broken = 1;
			break;
		}
		for (size_t i = 0; i < k; i++)
			if (kms_batch_add_encrypt(b, w->key, NULL, pt,
			    sizeof(pt), &e) != 0)
				w->broken = 1;
		if (!w->broken && kms_batch_run(b, &e) != 0) {
			snprintf(w->why, sizeof(w->why), "%s: %s", e.code,
			    e.message);
			w->broken = 1;
		}
		for (size_t i = 0; i < k && !w->broken; i++) {
			if (kms_batch_result(b, i, NULL, NULL, NULL, &e) == 0)
				w->ok++;
			else
				w->failed++;
		}
		kms_batch_free(b);
	}
	kms_close(c);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct timespec t0, t1;
	struct worker *w;
	pthread_t *th;
	unsigned long n, total, ok = 0, failed = 0;
	int broken = 0;

	if (argc != 5) {
		fprintf(stderr, "usage: loadgen SOCKET KEY CLIENTS TOTAL\n");
		return 2;
	}
	n = strtoul(argv[3], NULL, 10);
	total = strtoul(argv[4], NULL, 10);
	if (n == 0 || n > 4096) {
		fprintf(stderr, "loadgen: CLIENTS must be 1..4096\n");
		return 2;
	}
	w = calloc(n, sizeof(*w));
	th = calloc(n, sizeof(*th));
	if (w == NULL || th == NULL)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned long i = 0; i < n; i++) {
		w[i].sock = argv[1];
		w[i].key = argv[2];
		w[i].n = total / n + (i < total % n ? 1 : 0);
		pthread_create(&th[i], NULL, worker_run, &w[i]);
	}
	for (unsigned long i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		ok += w[i].ok;
		failed += w[i].failed;
		if (w[i].broken) {
			broken = 1;
			fprintf(stderr, "loadgen: client %lu: %s\n", i, w[i].why);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("ok=%lu failed=%lu seconds=%.3f\n", ok, failed,
	    (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	free(w);
	free(th);
	return broken ? 1 : 0;
}
