/*
 * window.c: sliding-window event counts over one-second buckets (see
 * window.h).
 *
 * Owns a ring of WINDOW_SECONDS buckets; the bucket for second t is
 * t mod WINDOW_SECONDS. Invariants:
 *   - once started, the ring holds exactly the seconds
 *     (newest - WINDOW_SECONDS, newest]; every bucket outside that range
 *     has been zeroed before it is reused;
 *   - newest never decreases: an event stamped earlier than newest is
 *     counted in the newest bucket, so a clock stepping backwards neither
 *     drops events nor lets an old bucket expire twice;
 *   - advancing touches at most WINDOW_SECONDS buckets however far the
 *     clock jumps, and differences of times are taken in unsigned
 *     arithmetic so extreme clock values cannot overflow.
 * Pure: no I/O, no allocation, no logging.
 */
#include <string.h>

#include "window.h"

/* Ring slot of second t, for any t including negative ones. */
static unsigned
window_slot(int64_t t)
{
	int64_t m = t % WINDOW_SECONDS;

	return (unsigned)(m < 0 ? m + WINDOW_SECONDS : m);
}

void
window_init(struct window *w)
{
	memset(w, 0, sizeof(*w));
}

/* Move newest forward to now (> newest), zeroing the seconds that fall
 * out of the ring: those are the slots that (newest, now] will reuse. */
static void
window_advance(struct window *w, int64_t now)
{
	uint64_t gap = (uint64_t)now - (uint64_t)w->newest;
	unsigned slot;

	if (gap >= WINDOW_SECONDS) {
		memset(w->bucket, 0, sizeof(w->bucket));
	} else {
		slot = window_slot(w->newest);
		for (uint64_t i = 0; i < gap; i++) {
			slot = slot + 1 == WINDOW_SECONDS ? 0 : slot + 1;
			w->bucket[slot] = 0;
		}
	}
	w->newest = now;
}

void
window_add(struct window *w, int64_t now, uint32_t n)
{
	uint32_t *b;

	if (!w->started) {
		memset(w->bucket, 0, sizeof(w->bucket));
		w->newest = now;
		w->started = 1;
	} else if (now > w->newest) {
		window_advance(w, now);
	}
	/* now < newest lands here too: counted in the newest second. */
	b = &w->bucket[window_slot(w->newest)];
	/* Saturate: a wrapped count would read as a sudden quiet spell. */
	*b = n > UINT32_MAX - *b ? UINT32_MAX : *b + n;
}

uint64_t
window_sum(const struct window *w, int64_t now, unsigned seconds)
{
	uint64_t ahead, sum = 0;
	unsigned k, slot;

	if (!w->started || seconds == 0)
		return 0;
	if (seconds > WINDOW_SECONDS)
		seconds = WINDOW_SECONDS;
	/* A time before newest is read as newest, as window_add counts it. */
	ahead = now > w->newest ? (uint64_t)now - (uint64_t)w->newest : 0;
	/* Seconds in (newest, now] hold no events yet; the rest of the
	 * window is the last k buckets ending at newest. */
	if (ahead >= seconds)
		return 0;
	k = seconds - (unsigned)ahead;
	slot = window_slot(w->newest);
	for (unsigned i = 0; i < k; i++) {
		sum += w->bucket[slot];
		slot = slot == 0 ? WINDOW_SECONDS - 1 : slot - 1;
	}
	return sum;
}

int
window_would_exceed(uint64_t count, uint64_t limit)
{
	/* count + 1 > limit, written so count = UINT64_MAX cannot wrap. */
	return limit != 0 && count >= limit;
}
