/*
 * window.h: sliding-window event counts, for the decrypt breaker and the
 * "decrypts in the last 1, 5 and 15 minutes" counters.
 *
 * Pure arithmetic over caller-supplied times (seconds of a monotonic
 * clock), so tests can drive any clock, including one that goes
 * backwards: a time earlier than the newest seen is counted in the newest
 * second (never lost, never double-expiring the window). No I/O, no
 * allocation, no logging.
 */
#ifndef KMSD_WINDOW_H
#define KMSD_WINDOW_H

#include <stdint.h>

/* Longest window kept: 15 minutes of one-second buckets. */
#define WINDOW_SECONDS 900

struct window {
	int64_t newest;			/* second of the newest bucket */
	int started;
	uint32_t bucket[WINDOW_SECONDS];
};

void window_init(struct window *w);
/* Count n events at second now. */
void window_add(struct window *w, int64_t now, uint32_t n);
/* Events in the last `seconds` seconds up to now, inclusive of the
 * current second: (now - seconds, now]. seconds <= WINDOW_SECONDS. */
uint64_t window_sum(const struct window *w, int64_t now, unsigned seconds);

/*
 * The breaker decision: with `count` events already in the last minute,
 * may one more happen under a limit of `limit` per minute? 0 = no limit.
 * Returns 1 when the new event would exceed the limit (trip), else 0.
 */
int window_would_exceed(uint64_t count, uint64_t limit);

#endif
