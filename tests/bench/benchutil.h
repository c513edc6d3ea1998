/*
 * benchutil.h: what the bench programs share: a monotonic clock, CPU
 * pinning, descriptor limits, framing helpers and latency percentiles.
 *
 * Header-only (static functions) so each bench program is one translation
 * unit plus this file, and none of them links against the daemon.
 */
#ifndef KMSD_BENCHUTIL_H
#define KMSD_BENCHUTIL_H

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* The framing of kmsd and ssh-agent alike: a 4-byte big-endian length. */
#define BENCH_HDR 4
/* kmsd's frame limit; the bench never sends more. */
#define BENCH_FRAME_MAX 65536

static inline uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void
bench_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t
bench_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* Pin the calling thread to one CPU; -1 leaves it unpinned. */
static inline int
bench_pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0) {
		fprintf(stderr, "sched_setaffinity(%d): %s\n", cpu,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Raise RLIMIT_NOFILE to at least want (root may raise the hard limit).
 * Returns the soft limit in force afterwards. */
static inline long
bench_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if ((long)rl.rlim_cur >= want)
		return (long)rl.rlim_cur;
	rl.rlim_cur = (rlim_t)want;
	if ((long)rl.rlim_max < want)
		rl.rlim_max = (rlim_t)want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return (long)rl.rlim_cur;
}

/* Latency samples in nanoseconds (uint32: up to 4.29 s). */
struct bench_lat {
	uint32_t *v;
	size_t n, cap, max;
};

static inline void
bench_lat_init(struct bench_lat *l, size_t max)
{
	memset(l, 0, sizeof(*l));
	l->max = max;
}

static inline void
bench_lat_add(struct bench_lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap == 0 ? 65536 : l->cap * 2;
		uint32_t *nv;

		if (l->n >= l->max)
			return;	/* enough samples for percentiles */
		if ((nv = realloc(l->v, ncap * sizeof(*nv))) == NULL)
			return;
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static inline void
bench_lat_merge(struct bench_lat *dst, const struct bench_lat *src)
{
	for (size_t i = 0; i < src->n; i++)
		bench_lat_add(dst, src->v[i]);
}

static int
bench_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static inline void
bench_lat_sort(struct bench_lat *l)
{
	qsort(l->v, l->n, sizeof(*l->v), bench_cmp_u32);
}

/* Percentile q (0..1) in microseconds of a sorted set. */
static inline double
bench_lat_pct(const struct bench_lat *l, double q)
{
	size_t i;

	if (l->n == 0)
		return 0;
	i = (size_t)(q * (double)(l->n - 1) + 0.5);
	return l->v[i] / 1000.0;
}

#endif
