/*
 * test_stored.c: the "vN:" + base64 stored ciphertext string.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "buf.h"
#include "err.h"
#include "stored.h"

#define VECTORS TEST_SRCDIR "/../vectors/kms_encrypted_test_provider.json"

static const struct {
	uint32_t version;
	size_t n;
	const char *want;	/* NULL: only round-trip */
} formats[] = {
	{ 1, 3, "v1:AAEC" },
	{ 2, 1, "v2:AA==" },
	{ 10, 2, "v10:AAE=" },
	{ 999999, 1, "v999999:AA==" },
	{ STORED_MAX_VERSION, 1, "v1000000:AA==" },
	{ 7, 200, NULL },
};

START_TEST(test_round_trip)
{
	uint8_t blob[256];
	struct buf s, b;
	uint32_t v = 0;

	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)i;
	buf_init(&s, 1024);
	buf_init(&b, 1024);
	ck_assert_int_eq(stored_format(formats[_i].version, blob,
	    formats[_i].n, &s), 0);
	if (formats[_i].want != NULL) {
		ck_assert_uint_eq(s.len, strlen(formats[_i].want));
		ck_assert_mem_eq(s.data, formats[_i].want, s.len);
	}
	ck_assert_int_eq(stored_version((char *)s.data, s.len, &v), 0);
	ck_assert_uint_eq(v, formats[_i].version);
	v = 0;
	ck_assert_int_eq(stored_parse((char *)s.data, s.len, &v, &b), 0);
	ck_assert_uint_eq(v, formats[_i].version);
	ck_assert_uint_eq(b.len, formats[_i].n);
	ck_assert_mem_eq(b.data, blob, b.len);
	buf_done(&s);
	buf_done(&b);
}
END_TEST

START_TEST(test_format_refuses)
{
	struct buf s;

	buf_init(&s, 64);
	ck_assert_int_eq(buf_append_str(&s, "x"), 0);
	ck_assert_int_eq(stored_format(0, (const uint8_t *)"a", 1, &s),
	    ERR_BAD_REQUEST);
	ck_assert_int_eq(stored_format(STORED_MAX_VERSION + 1,
	    (const uint8_t *)"a", 1, &s), ERR_BAD_REQUEST);
	ck_assert_int_eq(stored_format(1, (const uint8_t *)"a", 0, &s),
	    ERR_BAD_REQUEST);
	ck_assert_uint_eq(s.len, 1);
	buf_done(&s);

	/* Cap hit half way: out unchanged. */
	buf_init(&s, 6);
	ck_assert_int_eq(stored_format(1, (const uint8_t *)"abc", 3, &s),
	    ERR_TOO_LARGE);
	ck_assert_uint_eq(s.len, 0);
	buf_done(&s);
}
END_TEST

static unsigned
hexval(char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10);
}

/* Check one stored string of the vectors against its provider bytes. */
static void
check_stored(const char *stored, const char *hex, uint32_t want_v)
{
	struct buf b;
	uint32_t v = 0;
	size_t hl = strlen(hex);

	buf_init(&b, 4096);
	ck_assert_int_eq(stored_parse(stored, strlen(stored), &v, &b), 0);
	ck_assert_uint_eq(v, want_v);
	ck_assert_uint_eq(b.len * 2, hl);
	for (size_t i = 0; i < b.len; i++)
		ck_assert_uint_eq(b.data[i], hexval(hex[2 * i]) << 4 |
		    hexval(hex[2 * i + 1]));
	/* And formatting those bytes gives the stored string back. */
	{
		struct buf s;

		buf_init(&s, 8192);
		ck_assert_int_eq(stored_format(v, b.data, b.len, &s), 0);
		ck_assert_uint_eq(s.len, strlen(stored));
		ck_assert_mem_eq(s.data, stored, s.len);
		buf_done(&s);
	}
	buf_done(&b);
}

START_TEST(test_vectors)
{
	json_error_t e;
	json_t *root = json_load_file(TEST_SRCDIR
	    "/../vectors/kms_encrypted_test_provider.json", 0, &e);
	json_t *vs, *v;
	size_t i, n = 0, v2 = 0;

	ck_assert_msg(root != NULL, "%s", e.text);
	vs = json_object_get(root, "vectors");
	json_array_foreach(vs, i, v) {
		const char *stored = json_string_value(json_object_get(v,
		    "stored"));
		const char *hex = json_string_value(json_object_get(v,
		    "provider_ciphertext_hex"));
		json_t *as = json_object_get(v, "activesupport");
		uint32_t want_v;

		ck_assert_ptr_nonnull(stored);
		ck_assert_uint_eq(stored[0], 'v');
		want_v = (uint32_t)strtoul(stored + 1, NULL, 10);
		if (want_v == 2)
			v2++;
		if (hex != NULL) {
			check_stored(stored, hex, want_v);
			n++;
		} else {
			/* The version-2, no-context vector: bytes are
			 * PREFIX ':' base64(0x00..0x1f), no third part. */
			check_stored(stored, "8a7b1e72eadef9d6ad6be03a"
			    "41414543417751464267634943516f4c4441304f4478"
			    "415245684d554652595847426b61477877644868383d",
			    want_v);
			n++;
		}
		if (json_is_object(as)) {
			check_stored(json_string_value(json_object_get(as,
			    "stored")), json_string_value(json_object_get(as,
			    "provider_ciphertext_hex")), want_v);
			n++;
		}
	}
	ck_assert_uint_ge(n, 10);
	ck_assert_uint_eq(v2, 1);
	json_decref(root);
}
END_TEST

/* Each is refused with ERR_DECRYPTION_FAILED and leaves blob unchanged. */
static const struct {
	const char *s;
	int version_ok;	/* stored_version alone accepts it */
} bad[] = {
	{ "", 0 },
	{ "v", 0 },
	{ "v1", 0 },
	{ "v1:", 1 },			/* empty payload */
	{ "QUJD", 0 },			/* missing prefix */
	{ ":QUJD", 0 },
	{ "1:QUJD", 0 },
	{ "V1:QUJD", 0 },
	{ " v1:QUJD", 0 },
	{ "v:QUJD", 0 },
	{ "v0:QUJD", 0 },
	{ "v01:QUJD", 0 },
	{ "v00:QUJD", 0 },
	{ "vX:QUJD", 0 },
	{ "v1X:QUJD", 0 },
	{ "v-1:QUJD", 0 },
	{ "v+1:QUJD", 0 },
	{ "v 1:QUJD", 0 },
	{ "v1QUJD", 0 },		/* no colon */
	{ "v1;QUJD", 0 },
	{ "v1000001:QUJD", 0 },		/* over STORED_MAX_VERSION */
	{ "v9999999:QUJD", 0 },
	{ "v10000000:QUJD", 0 },	/* 8 digits */
	{ "v99999999999:QUJD", 0 },
	{ "v4294967297:QUJD", 0 },	/* 2^32 + 1: no wrap to 1 */
	{ "v1:QUJ", 1 },		/* bad base64 */
	{ "v1:QUJD=", 1 },
	{ "v1:QU=D", 1 },
	{ "v1:QUJ*", 1 },
	{ "v1:QUJD\n", 1 },
	{ "v1:QU JD", 1 },
	{ "v1:QR==", 1 },		/* non-zero pad bits */
	{ "v1:v1:QUJD", 1 },
	{ "v1::QUJD", 1 },
};
#define N_BAD (sizeof(bad) / sizeof(bad[0]))

START_TEST(test_bad)
{
	const char *s = bad[_i].s;
	struct buf b;
	uint32_t v = 77;

	buf_init(&b, 64);
	ck_assert_int_eq(buf_append_str(&b, "keep"), 0);
	ck_assert_msg(stored_parse(s, strlen(s), &v, &b) ==
	    ERR_DECRYPTION_FAILED, "'%s' accepted", s);
	ck_assert_uint_eq(v, 77);
	ck_assert_uint_eq(b.len, 4);
	ck_assert_mem_eq(b.data, "keep", 4);
	ck_assert_int_eq(stored_version(s, strlen(s), &v),
	    bad[_i].version_ok ? 0 : ERR_DECRYPTION_FAILED);
	if (!bad[_i].version_ok)
		ck_assert_uint_eq(v, 77);
	buf_done(&b);
}
END_TEST

START_TEST(test_version_only)
{
	uint32_t v = 0;

	/* stored_version does not look past the colon. */
	ck_assert_int_eq(stored_version("v42:not base64!", 15, &v), 0);
	ck_assert_uint_eq(v, 42);
	ck_assert_int_eq(stored_version("v1000000:", 9, &v), 0);
	ck_assert_uint_eq(v, STORED_MAX_VERSION);
	/* The length bounds the scan: "v12:" cut to "v12" has no colon. */
	ck_assert_int_eq(stored_version("v12:", 3, &v), ERR_DECRYPTION_FAILED);
	ck_assert_int_eq(stored_version(NULL, 0, &v), ERR_DECRYPTION_FAILED);
}
END_TEST

START_TEST(test_blob_cap)
{
	struct buf b;
	uint32_t v = 0;

	/* A payload bigger than the caller's blob cap is a bad ciphertext. */
	buf_init(&b, 2);
	ck_assert_int_eq(stored_parse("v1:QUJD", 7, &v, &b),
	    ERR_DECRYPTION_FAILED);
	ck_assert_uint_eq(b.len, 0);
	buf_done(&b);
	buf_init(&b, 3);
	ck_assert_int_eq(stored_parse("v1:QUJD", 7, &v, &b), 0);
	ck_assert_mem_eq(b.data, "ABC", 3);
	buf_done(&b);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("stored");
	TCase *t;

	t = tcase_create("format");
	tcase_add_loop_test(t, test_round_trip, 0,
	    sizeof(formats) / sizeof(formats[0]));
	tcase_add_test(t, test_format_refuses);
	suite_add_tcase(s, t);

	t = tcase_create("parse");
	tcase_add_test(t, test_vectors);
	tcase_add_loop_test(t, test_bad, 0, N_BAD);
	tcase_add_test(t, test_version_only);
	tcase_add_test(t, test_blob_cap);
	suite_add_tcase(s, t);
	return s;
}

#include "check_main.h"
