/*
 * test_cache.c: the data-key cache: what makes two decrypts the same,
 * time to live, use limits, flushes and the generation that keeps a
 * decrypt begun before a flush from refilling it, eviction.
 */
#include <stdint.h>
#include <string.h>

#include <check.h>

#include "cache.h"

static const uint8_t dk[32] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};
static const uint8_t ct[] = "provider ciphertext";
static const uint8_t ctx[] = "{\"model_id\":\"1\"}";

static struct cache *ids;	/* hashes the ids */

static void
id_of(const char *key, uint32_t version, const uint8_t *c, size_t cl,
    const uint8_t *x, size_t xl, struct cache_id *id)
{
	if (ids == NULL)
		ck_assert_ptr_nonnull(ids = cache_new());
	cache_id(ids, key, version, c, cl, x, xl, id);
}

/* 1 when a hit gives exactly dk. */
static int
hit(struct cache *c, const struct cache_id *id, uint64_t now)
{
	struct buf b;
	int r;

	buf_init(&b, 1024);
	r = cache_get(c, id, now, &b);
	if (r)
		ck_assert(b.len == sizeof(dk) && memcmp(b.data, dk, b.len) == 0);
	else
		ck_assert_uint_eq(b.len, 0);
	buf_done(&b);
	return r;
}

START_TEST(test_same_and_different)
{
	struct cache *c = cache_new();
	struct cache_id id, other;

	ck_assert_ptr_nonnull(c);
	id_of("k", 1, ct, sizeof(ct), ctx, sizeof(ctx), &id);
	ck_assert(!hit(c, &id, 1000));
	cache_put(c, cache_gen(c), &id, dk, sizeof(dk), 1000, 5000, 0);
	ck_assert(hit(c, &id, 1001));
	ck_assert_uint_eq(cache_count(c, 1001), 1);
	/* Any of the four differing is another decrypt. */
	id_of("k2", 1, ct, sizeof(ct), ctx, sizeof(ctx), &other);
	ck_assert(!hit(c, &other, 1001));
	id_of("k", 2, ct, sizeof(ct), ctx, sizeof(ctx), &other);
	ck_assert(!hit(c, &other, 1001));
	id_of("k", 1, ct, sizeof(ct) - 1, ctx, sizeof(ctx), &other);
	ck_assert(!hit(c, &other, 1001));
	id_of("k", 1, ct, sizeof(ct), ctx, sizeof(ctx) - 1, &other);
	ck_assert(!hit(c, &other, 1001));
	/* No context is not the empty context. */
	id_of("k", 1, ct, sizeof(ct), NULL, 0, &id);
	id_of("k", 1, ct, sizeof(ct), (const uint8_t *)"", 0, &other);
	ck_assert(memcmp(id.h, other.h, sizeof(id.h)) != 0);
	/* Lengths are hashed: moving a byte between parts changes the id. */
	id_of("ka", 1, (const uint8_t *)"b", 1, NULL, 0, &id);
	id_of("k", 1, (const uint8_t *)"ab", 2, NULL, 0, &other);
	ck_assert(memcmp(id.h, other.h, sizeof(id.h)) != 0);
	cache_free(c);
}
END_TEST

START_TEST(test_ttl)
{
	struct cache *c = cache_new();
	struct cache_id id;

	id_of("k", 1, ct, sizeof(ct), ctx, sizeof(ctx), &id);
	cache_put(c, cache_gen(c), &id, dk, sizeof(dk), 1000, 5000, 0);
	ck_assert(hit(c, &id, 5999));
	ck_assert(!hit(c, &id, 6000));
	ck_assert_uint_eq(cache_count(c, 6000), 0);
	cache_free(c);
}
END_TEST

START_TEST(test_max_uses)
{
	struct cache *c = cache_new();
	struct cache_id id;

	id_of("k", 1, ct, sizeof(ct), ctx, sizeof(ctx), &id);
	cache_put(c, cache_gen(c), &id, dk, sizeof(dk), 1000, 60000, 3);
	ck_assert(hit(c, &id, 1001));
	ck_assert(hit(c, &id, 1002));
	ck_assert(hit(c, &id, 1003));
	ck_assert(!hit(c, &id, 1004));
	/* Put again: three more. */
	cache_put(c, cache_gen(c), &id, dk, sizeof(dk), 1005, 60000, 3);
	ck_assert(hit(c, &id, 1006));
	cache_free(c);
}
END_TEST

START_TEST(test_flush_and_generation)
{
	struct cache *c = cache_new();
	struct cache_id id;
	uint64_t before;

	id_of("k", 1, ct, sizeof(ct), ctx, sizeof(ctx), &id);
	before = cache_gen(c);
	cache_put(c, before, &id, dk, sizeof(dk), 1000, 60000, 0);
	cache_flush(c);
	ck_assert(!hit(c, &id, 1001));
	/* A decrypt begun before the flush does not refill it. */
	cache_put(c, before, &id, dk, sizeof(dk), 1002, 60000, 0);
	ck_assert(!hit(c, &id, 1003));
	cache_put(c, cache_gen(c), &id, dk, sizeof(dk), 1004, 60000, 0);
	ck_assert(hit(c, &id, 1005));
	cache_free(c);
}
END_TEST

START_TEST(test_limits)
{
	struct cache *c = cache_new();
	struct cache_id id;
	uint8_t big[CACHE_MAX_PLAINTEXT + 1];

	memset(big, 7, sizeof(big));
	id_of("k", 1, ct, sizeof(ct), ctx, sizeof(ctx), &id);
	/* Longer than a data key: not kept. ttl 0: not kept. */
	cache_put(c, cache_gen(c), &id, big, sizeof(big), 1000, 60000, 0);
	ck_assert(!hit(c, &id, 1001));
	cache_put(c, cache_gen(c), &id, dk, sizeof(dk), 1000, 0, 0);
	ck_assert(!hit(c, &id, 1001));
	/* NULL cache: nothing happens. */
	cache_put(NULL, 0, &id, dk, sizeof(dk), 1000, 60000, 0);
	ck_assert(!hit(NULL, &id, 1001));
	cache_free(c);
}
END_TEST

/* More entries than slots: the table stays within its size, the newest
 * entries are found, and every lookup gives the right key or nothing. */
START_TEST(test_eviction)
{
	struct cache *c = cache_new();
	struct cache_id id;
	size_t found = 0;

	for (uint32_t i = 0; i < 4 * CACHE_SLOTS; i++) {
		id_of("k", i + 1, ct, sizeof(ct), NULL, 0, &id);
		cache_put(c, cache_gen(c), &id, dk, sizeof(dk), 1000 + i,
		    60000, 0);
	}
	ck_assert_uint_le(cache_count(c, 5000), CACHE_SLOTS);
	for (uint32_t i = 0; i < 4 * CACHE_SLOTS; i++) {
		id_of("k", i + 1, ct, sizeof(ct), NULL, 0, &id);
		found += (size_t)hit(c, &id, 5000);
	}
	ck_assert_uint_gt(found, CACHE_SLOTS / 2);
	ck_assert_uint_le(found, CACHE_SLOTS);
	id_of("k", 4 * CACHE_SLOTS, ct, sizeof(ct), NULL, 0, &id);
	ck_assert(hit(c, &id, 5000));
	cache_free(c);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("cache");

	tcase_add_test(tc, test_same_and_different);
	tcase_add_test(tc, test_ttl);
	tcase_add_test(tc, test_max_uses);
	tcase_add_test(tc, test_flush_and_generation);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_eviction);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
