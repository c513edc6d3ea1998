/*
 * test_gcp_crc32c.c: CRC32C (Castagnoli) against the standard check value
 * and every vector in tests/vectors/gcp/crc32c.json (RFC 3720 B.4 among
 * them), plus incremental updates.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "gcp_crc32c.h"

#define VEC TEST_SRCDIR "/../vectors/gcp/crc32c.json"
/* Longest vector input, in bytes. */
#define T_MAX_DATA 256

static size_t
hex_decode(const char *hex, uint8_t *out, size_t max)
{
	size_t n = strlen(hex) / 2;

	ck_assert_uint_le(n, max);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

START_TEST(check_value)
{
	/* The value every CRC-32C implementation publishes. */
	ck_assert_uint_eq(gcp_crc32c("123456789", 9), 0xE3069283u);
	ck_assert_uint_eq(gcp_crc32c(NULL, 0), 0);
}
END_TEST

START_TEST(vectors)
{
	json_error_t jerr;
	json_t *root = json_load_file(VEC, 0, &jerr), *vs, *v;
	uint8_t data[T_MAX_DATA];
	size_t i, n, published = 0;
	char str[16];

	ck_assert_msg(root != NULL, "%s: %s", VEC, jerr.text);
	vs = json_object_get(root, "vectors");
	ck_assert_uint_ge(json_array_size(vs), 9);
	json_array_foreach(vs, i, v) {
		const char *name = json_string_value(json_object_get(v,
		    "name"));
		uint32_t want = (uint32_t)json_integer_value(json_object_get(v,
		    "crc32c_uint32"));
		uint32_t got;

		n = hex_decode(json_string_value(json_object_get(v,
		    "data_hex")), data, sizeof(data));
		got = gcp_crc32c(data, n);
		ck_assert_msg(got == want, "%s: got %08x want %08x", name, got,
		    want);
		/* The proto3 JSON form Cloud KMS carries. */
		snprintf(str, sizeof(str), "%u", got);
		ck_assert_str_eq(str, json_string_value(json_object_get(v,
		    "json_int64_string")));
		if (json_is_string(json_object_get(v, "published_in")))
			published++;
	}
	ck_assert_uint_ge(published, 6);
	json_decref(root);
}
END_TEST

START_TEST(incremental)
{
	static const char text[] =
	    "The quick brown fox jumps over the lazy dog";
	size_t n = sizeof(text) - 1;

	for (size_t cut = 0; cut <= n; cut++) {
		uint32_t c = gcp_crc32c(text, cut);

		c = gcp_crc32c_update(c, text + cut, n - cut);
		ck_assert_uint_eq(c, 0x22620404u);
	}
}
END_TEST

START_TEST(detects_one_bit)
{
	uint8_t b[32] = { 0 };
	uint32_t base = gcp_crc32c(b, sizeof(b));

	for (size_t bit = 0; bit < sizeof(b) * 8; bit++) {
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_uint_ne(gcp_crc32c(b, sizeof(b)), base);
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("gcp_crc32c");
	TCase *tc = tcase_create("crc32c");

	tcase_add_test(tc, check_value);
	tcase_add_test(tc, vectors);
	tcase_add_test(tc, incremental);
	tcase_add_test(tc, detects_one_bit);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
