/*
 * test_window.c: window_add / window_sum over scripted clocks, and the
 * breaker decision window_would_exceed.
 *
 * Each script is a list of steps run against a fresh window: add n events
 * at second t, or check the sum over `seconds` as of second t. Expected
 * sums are written out by hand, so a change of behaviour shows up here.
 */
#include <stdint.h>

#include <check.h>

#include "window.h"

#define MAX_STEPS 16

enum { END = 0, ADD, SUM };

struct step {
	int kind;
	int64_t t;
	uint32_t arg;		/* ADD: events; SUM: seconds */
	uint64_t expect;	/* SUM only */
};

static const struct {
	const char *name;
	struct step steps[MAX_STEPS];
} scripts[] = {
	{ "empty window sums to zero", {
		{ SUM, 100, 60, 0 },
		{ SUM, 0, 900, 0 },
		{ END, 0, 0, 0 } } },
	{ "60 s boundary: 59 s ago in, 60 s ago out", {
		{ ADD, 1000, 1, 0 },
		{ SUM, 1000, 60, 1 },
		{ SUM, 1059, 60, 1 },
		{ SUM, 1060, 60, 0 },
		{ SUM, 1000, 1, 1 },
		{ SUM, 1001, 1, 0 },
		{ SUM, 1299, 300, 1 },
		{ SUM, 1300, 300, 0 },
		{ SUM, 1899, 900, 1 },
		{ SUM, 1900, 900, 0 },
		{ END, 0, 0, 0 } } },
	{ "burst within one second", {
		{ ADD, 500, 1, 0 },
		{ ADD, 500, 1, 0 },
		{ ADD, 500, 1, 0 },
		{ ADD, 500, 10, 0 },
		{ SUM, 500, 1, 13 },
		{ SUM, 500, 60, 13 },
		{ SUM, 559, 60, 13 },
		{ SUM, 560, 60, 0 },
		{ END, 0, 0, 0 } } },
	{ "1m/5m/15m over events at chosen ages", {
		/* ages as of t=1000: 900, 899, 300, 299, 60, 59, 10 */
		{ ADD, 100, 1, 0 },
		{ ADD, 101, 2, 0 },
		{ ADD, 700, 4, 0 },
		{ ADD, 701, 8, 0 },
		{ ADD, 940, 16, 0 },
		{ ADD, 941, 32, 0 },
		{ ADD, 990, 64, 0 },
		{ SUM, 1000, 60, 32 + 64 },
		{ SUM, 1000, 300, 8 + 16 + 32 + 64 },
		{ SUM, 1000, 900, 2 + 4 + 8 + 16 + 32 + 64 },
		{ SUM, 990, 900, 1 + 2 + 4 + 8 + 16 + 32 + 64 },
		{ SUM, 1000, 5000, 2 + 4 + 8 + 16 + 32 + 64 },	/* clamped */
		{ SUM, 1000, 0, 0 },
		{ END, 0, 0, 0 } } },
	{ "gap longer than the ring", {
		{ ADD, 0, 5, 0 },
		{ ADD, 5000, 1, 0 },
		{ SUM, 5000, 900, 1 },
		{ SUM, 5000, 1, 1 },
		{ END, 0, 0, 0 } } },
	{ "gap of exactly the ring reuses the same slot", {
		{ ADD, 0, 5, 0 },
		{ ADD, 900, 1, 0 },
		{ SUM, 900, 900, 1 },
		{ SUM, 900, 1, 1 },
		{ ADD, 1800, 2, 0 },
		{ SUM, 1800, 900, 2 },
		{ END, 0, 0, 0 } } },
	{ "gap shorter than the ring expires only what fell out", {
		{ ADD, 0, 5, 0 },
		{ ADD, 10, 1, 0 },
		{ ADD, 899, 7, 0 },
		{ SUM, 899, 900, 13 },
		{ ADD, 905, 2, 0 },
		{ SUM, 905, 900, 1 + 7 + 2 },
		{ SUM, 905, 7, 7 + 2 },
		{ SUM, 905, 6, 2 },
		{ END, 0, 0, 0 } } },
	{ "sum far ahead of the newest event", {
		{ ADD, 0, 1, 0 },
		{ SUM, 10000, 900, 0 },
		{ SUM, 899, 900, 1 },
		{ END, 0, 0, 0 } } },
	{ "clock going backwards counts in the newest second", {
		{ ADD, 1000, 1, 0 },
		{ ADD, 990, 1, 0 },
		{ SUM, 1000, 1, 2 },
		{ SUM, 990, 1, 2 },	/* as of newest */
		{ SUM, 995, 60, 2 },
		{ ADD, 1059, 1, 0 },
		{ SUM, 1059, 60, 3 },
		{ SUM, 1060, 60, 1 },	/* both expire together, once */
		{ END, 0, 0, 0 } } },
	{ "far backwards, then forward again", {
		{ ADD, 1000, 1, 0 },
		{ ADD, 500, 1, 0 },
		{ ADD, -7, 1, 0 },
		{ ADD, 1001, 1, 0 },
		{ SUM, 1001, 1, 1 },
		{ SUM, 1001, 2, 4 },
		{ SUM, 1060, 60, 1 },
		{ SUM, 1061, 60, 0 },
		{ END, 0, 0, 0 } } },
	{ "negative seconds", {
		{ ADD, -901, 1, 0 },
		{ ADD, -1, 1, 0 },
		{ ADD, 0, 1, 0 },
		{ SUM, 0, 1, 1 },
		{ SUM, 0, 2, 2 },
		{ SUM, 0, 900, 2 },
		{ SUM, -1, 900, 2 },	/* as of newest */
		{ END, 0, 0, 0 } } },
	{ "extreme clock values do not overflow", {
		{ ADD, INT64_MIN, 1, 0 },
		{ SUM, INT64_MIN, 900, 1 },
		{ SUM, INT64_MAX, 900, 0 },
		{ ADD, INT64_MAX - 1, 1, 0 },
		{ ADD, INT64_MAX, 1, 0 },
		{ SUM, INT64_MAX, 60, 2 },
		{ SUM, INT64_MAX, 1, 1 },
		{ ADD, INT64_MIN, 1, 0 },	/* backwards: newest */
		{ SUM, INT64_MAX, 1, 2 },
		{ END, 0, 0, 0 } } },
	{ "a bucket saturates instead of wrapping", {
		{ ADD, 0, UINT32_MAX, 0 },
		{ ADD, 0, 5, 0 },
		{ SUM, 0, 1, UINT32_MAX },
		{ ADD, 1, UINT32_MAX, 0 },
		{ SUM, 1, 2, 2 * (uint64_t)UINT32_MAX },
		{ END, 0, 0, 0 } } },
};

#define SCRIPTS_LEN (sizeof(scripts) / sizeof(scripts[0]))

START_TEST(test_script)
{
	struct window w;

	window_init(&w);
	for (size_t i = 0; i < MAX_STEPS && scripts[_i].steps[i].kind != END;
	    i++) {
		const struct step *st = &scripts[_i].steps[i];

		if (st->kind == ADD) {
			window_add(&w, st->t, st->arg);
			continue;
		}
		ck_assert_msg(window_sum(&w, st->t, st->arg) == st->expect,
		    "%s: step %zu: sum(%lld, %u) = %llu, want %llu",
		    scripts[_i].name, i, (long long)st->t, st->arg,
		    (unsigned long long)window_sum(&w, st->t, st->arg),
		    (unsigned long long)st->expect);
	}
}
END_TEST

static const struct {
	uint64_t count;
	uint64_t limit;
	int expect;
} exceed_table[] = {
	{ 0, 0, 0 },			/* 0 = no limit */
	{ 1000000, 0, 0 },
	{ UINT64_MAX, 0, 0 },
	{ 0, 1, 0 },			/* first event under limit 1 */
	{ 1, 1, 1 },
	{ 9, 10, 0 },			/* the 10th event is allowed */
	{ 10, 10, 1 },			/* the 11th trips */
	{ 11, 10, 1 },
	{ UINT64_MAX - 1, UINT64_MAX, 0 },
	{ UINT64_MAX, UINT64_MAX, 1 },
	{ UINT64_MAX, 5, 1 },		/* count + 1 must not wrap */
};

#define EXCEED_LEN (sizeof(exceed_table) / sizeof(exceed_table[0]))

START_TEST(test_would_exceed)
{
	ck_assert_int_eq(window_would_exceed(exceed_table[_i].count,
	    exceed_table[_i].limit), exceed_table[_i].expect);
}
END_TEST

/* The breaker as the daemon drives it: ask, then count what was let
 * through. `limit` events pass in one minute, the next one trips, and a
 * minute after the first burst the budget is back. */
static const uint64_t breaker_limits[] = { 1, 2, 10, 60 };

#define BREAKER_LEN (sizeof(breaker_limits) / sizeof(breaker_limits[0]))

static uint64_t
breaker_run(struct window *w, int64_t now, uint64_t limit, uint64_t tries)
{
	uint64_t passed = 0;

	for (uint64_t i = 0; i < tries; i++) {
		if (window_would_exceed(window_sum(w, now, 60), limit))
			continue;
		window_add(w, now, 1);
		passed++;
	}
	return passed;
}

START_TEST(test_breaker_at_limit)
{
	uint64_t limit = breaker_limits[_i];
	struct window w;

	window_init(&w);
	ck_assert_uint_eq(breaker_run(&w, 100, limit, limit), limit);
	ck_assert_uint_eq(breaker_run(&w, 100, limit, 1), 0);
	ck_assert_uint_eq(breaker_run(&w, 159, limit, 1), 0);
	ck_assert_uint_eq(breaker_run(&w, 160, limit, limit + 5), limit);
}
END_TEST

START_TEST(test_breaker_no_limit)
{
	struct window w;

	window_init(&w);
	ck_assert_uint_eq(breaker_run(&w, 7, 0, 5000), 5000);
	ck_assert_uint_eq(window_sum(&w, 7, 60), 5000);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("window");
	TCase *tc = tcase_create("sum");

	tcase_add_loop_test(tc, test_script, 0, (int)SCRIPTS_LEN);
	suite_add_tcase(s, tc);

	tc = tcase_create("breaker");
	tcase_add_loop_test(tc, test_would_exceed, 0, (int)EXCEED_LEN);
	tcase_add_loop_test(tc, test_breaker_at_limit, 0, (int)BREAKER_LEN);
	tcase_add_test(tc, test_breaker_no_limit);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
