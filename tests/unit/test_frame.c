/*
 * test_frame.c: the length prefix and the bounded pre-scan.
 */
#include <stdint.h>
#include <string.h>

#include <check.h>

#include "err.h"
#include "frame.h"

/* frame_parse on hand-made prefixes. */
static const struct {
	const char *name;
	const uint8_t *p;
	size_t len;
	size_t max;
	int want;
	size_t body_len;	/* when FRAME_READY */
} parse_cases[] = {
	{ "empty", (const uint8_t *)"", 0, 64, FRAME_MORE, 0 },
	{ "partial header", (const uint8_t *)"\0\0\0", 3, 64, FRAME_MORE, 0 },
	{ "header only", (const uint8_t *)"\0\0\0\3", 4, 64, FRAME_MORE, 0 },
	{ "partial body", (const uint8_t *)"\0\0\0\3\x81\xa1", 6, 64,
	    FRAME_MORE, 0 },
	{ "ready", (const uint8_t *)"\0\0\0\3\x81\xa1" "a", 7, 64,
	    FRAME_READY, 3 },
	{ "ready, next frame follows", (const uint8_t *)"\0\0\0\1\x80\0\0",
	    7, 64, FRAME_READY, 1 },
	{ "exactly max", (const uint8_t *)"\0\0\0\x40", 4, 64, FRAME_MORE, 0 },
	{ "one over max, header alone", (const uint8_t *)"\0\0\0\x41", 4, 64,
	    ERR_TOO_LARGE, 0 },
	{ "default max + 1", (const uint8_t *)"\0\1\0\1", 4,
	    FRAME_MAX_DEFAULT, ERR_TOO_LARGE, 0 },
	{ "4 GiB - 1", (const uint8_t *)"\xff\xff\xff\xff", 4,
	    FRAME_MAX_DEFAULT, ERR_TOO_LARGE, 0 },
	{ "high byte only", (const uint8_t *)"\x01\0\0\0", 4,
	    FRAME_MAX_DEFAULT, ERR_TOO_LARGE, 0 },
	{ "zero length", (const uint8_t *)"\0\0\0\0", 4, 64,
	    ERR_BAD_REQUEST, 0 },
	{ "zero length, more bytes", (const uint8_t *)"\0\0\0\0\x80", 5, 64,
	    ERR_BAD_REQUEST, 0 },
};
#define N_PARSE (sizeof(parse_cases) / sizeof(parse_cases[0]))

START_TEST(test_parse)
{
	const uint8_t *body = NULL;
	size_t body_len = 0;
	int r;

	r = frame_parse(parse_cases[_i].p, parse_cases[_i].len,
	    parse_cases[_i].max, &body, &body_len);
	ck_assert_msg(r == parse_cases[_i].want, "%s: got %d want %d",
	    parse_cases[_i].name, r, parse_cases[_i].want);
	if (r == FRAME_READY) {
		ck_assert_ptr_eq(body, parse_cases[_i].p + FRAME_HDR);
		ck_assert_uint_eq(body_len, parse_cases[_i].body_len);
	} else {
		ck_assert_ptr_null(body);
	}
}
END_TEST

START_TEST(test_put_header)
{
	static const uint32_t lens[] = { 0, 1, 0x40, 0x10000, 0x01020304,
	    0xffffffff };
	uint8_t hdr[FRAME_HDR], frame[FRAME_HDR + 1];

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		frame_put_header(hdr, lens[i]);
		ck_assert_uint_eq(hdr[0], lens[i] >> 24);
		ck_assert_uint_eq(hdr[1], (lens[i] >> 16) & 0xff);
		ck_assert_uint_eq(hdr[2], (lens[i] >> 8) & 0xff);
		ck_assert_uint_eq(hdr[3], lens[i] & 0xff);
	}
	/* What put_header writes, parse reads back. */
	frame_put_header(frame, 1);
	frame[FRAME_HDR] = 0x80;
	{
		const uint8_t *body;
		size_t n;

		ck_assert_int_eq(frame_parse(frame, sizeof(frame), 64, &body,
		    &n), FRAME_READY);
		ck_assert_uint_eq(n, 1);
		ck_assert_uint_eq(body[0], 0x80);
	}
}
END_TEST

struct bytes {
	const char *name;
	const char *p;
	size_t len;
};

#define B(name, lit) { name, lit, sizeof(lit) - 1 }

/* Bodies the pre-scan must accept: one map, every msgpack type inside. */
static const struct bytes valid[] = {
	B("empty fixmap", "\x80"),
	B("empty map16", "\xde\x00\x00"),
	B("empty map32", "\xdf\x00\x00\x00\x00"),
	B("request", "\x83\xa2id\x01\xa2op\xa5hello\xa3key\xa7" "default"),
	B("map16 one pair", "\xde\x00\x01\xa1k\xc0"),
	B("map32 one pair", "\xdf\x00\x00\x00\x01\xa1k\xc3"),
	B("scalars", "\x88\x00\x7f\xe0\xff\xc0\xc2\xc3\xcc\xff\xcd\xff\xff"
	    "\xce\x01\x02\x03\x04\xcf\x01\x02\x03\x04\x05\x06\x07\x08"
	    "\xd0\x80\xd1\x80\x00\xd2\x80\x00\x00\x00"
	    "\xd3\x80\x00\x00\x00\x00\x00\x00\x00\x01"),
	B("floats", "\x82\xca\x3f\x80\x00\x00\xcb\x3f\xf0\x00\x00\x00\x00"
	    "\x00\x00\xc0\xc0"),
	B("strings", "\x84\xa0\xd9\x03" "abc\xda\x00\x01x\xdb\x00\x00\x00\x02"
	    "xy\xbf" "0123456789012345678901234567890\xa1z\xa1k\xa1v"),
	B("bin", "\x83\xc4\x00\xc4\x02\x01\x02\xc5\x00\x01\xff\xc6\x00\x00"
	    "\x00\x03\x01\x02\x03\xa1k\xa1v"),
	B("ext", "\x85\xd4\x01\x01\xd5\x01\x01\x02\xd6\xff\x01\x02\x03\x04"
	    "\xd7\x01\x01\x02\x03\x04\x05\x06\x07\x08"
	    "\xd8\x01\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c"
	    "\x0d\x0e\x0f\xc7\x00\x05\xc8\x00\x01\x05\x00"
	    "\xc9\x00\x00\x00\x02\x05\x00\x00\xa1k\xa1v"),
	B("arrays", "\x83\xa1" "a\x90\xa1" "b\x93\x01\xa1x\xc0\xa1" "c\xdc\x00"
	    "\x02\x01\x02"),
	B("array32", "\x81\xa1" "a\xdd\x00\x00\x00\x01\x01"),
	B("non-str keys", "\x82\x01\x02\x90\x80"),
	B("depth 4 maps", "\x81\xa1" "a\x81\xa1" "b\x81\xa1" "c\x80"),
	B("depth 4 arrays", "\x81\xa1" "a\x91\x91\x90"),
	B("keys response", "\x82\xa2id\x07\xa4keys\x92\x83\xa4name\xa1" "d"
	    "\xa7version\x01\xa8provider\xa4test\x80"),
	B("containers close at once", "\x82\xa1" "a\x91\x91\x81\x01\x02\xa1"
	    "b\x01"),
};
#define N_VALID (sizeof(valid) / sizeof(valid[0]))

START_TEST(test_prescan_valid)
{
	ck_assert_msg(frame_prescan((const uint8_t *)valid[_i].p,
	    valid[_i].len) == 0, "%s refused", valid[_i].name);
}
END_TEST

/* msgpack is prefix-free: no proper prefix of a valid body is one whole
 * object, so every truncation must be refused. */
START_TEST(test_prescan_truncations)
{
	for (size_t n = 0; n < valid[_i].len; n++)
		ck_assert_msg(frame_prescan((const uint8_t *)valid[_i].p, n) ==
		    ERR_BAD_REQUEST, "%s cut to %zu accepted", valid[_i].name,
		    n);
}
END_TEST

/* Trailing bytes after a valid body are refused. */
START_TEST(test_prescan_trailing)
{
	uint8_t b[256];

	ck_assert_uint_lt(valid[_i].len + 1, sizeof(b));
	memcpy(b, valid[_i].p, valid[_i].len);
	b[valid[_i].len] = 0xc0;
	ck_assert_msg(frame_prescan(b, valid[_i].len + 1) == ERR_BAD_REQUEST,
	    "%s + nil accepted", valid[_i].name);
	memcpy(b + valid[_i].len, valid[_i].p, valid[_i].len);
	ck_assert_msg(frame_prescan(b, 2 * valid[_i].len) == ERR_BAD_REQUEST,
	    "%s twice accepted", valid[_i].name);
}
END_TEST

static const struct bytes invalid[] = {
	/* The 15-byte frame that made msgpack-c reserve 12 GB. */
	B("array32 bomb", "\xdd\xff\xff\xff\xff\xdd\xff\xff\xff\xff\xdd\xff"
	    "\xff\xff\xff"),
	B("map32 bomb", "\xdf\xff\xff\xff\xff\xdf\xff\xff\xff\xff\xdf\xff"
	    "\xff\xff\xff"),
	B("array32 bomb in a map", "\x81\xa1" "a\xdd\xff\xff\xff\xff\xdd\xff"
	    "\xff\xff\xff\xdd\xff\xff\xff\xff"),
	B("map16 count beyond body", "\xde\xff\xff\xa1k\xa1v"),
	B("map missing a value", "\x82\xa1k\xa1v\xa1k"),
	B("array16 count beyond body", "\x81\xa1" "a\xdc\x00\x05\x01\x02\x03"
	    "\x04"),
	/* Each count alone fits the bytes left, their sum does not. */
	B("nested counts sum beyond body", "\x81\xa1" "a\x94\x93\x01\x01\x01"
	    "\x01"),
	B("depth 5 maps", "\x81\xa1" "a\x81\xa1" "b\x81\xa1" "c\x81\xa1" "d"
	    "\x80"),
	B("depth 5 arrays", "\x81\xa1" "a\x91\x91\x91\x90"),
	B("top array", "\x91\x80"),
	B("top empty array", "\x90"),
	B("top str", "\xa1k"),
	B("top int", "\x01"),
	B("top nil", "\xc0"),
	B("top bin", "\xc4\x01\x80"),
	B("0xc1 as value", "\x81\xa1k\xc1"),
	B("0xc1 as key", "\x81\xc1\x01"),
	B("0xc1 at top", "\xc1"),
	B("0xc1 trailing", "\x80\xc1"),
	B("fixstr beyond body", "\x81\xa1k\xa5" "abc"),
	B("str8 beyond body", "\x81\xa1k\xd9\x04" "abc"),
	B("str16 beyond body", "\x81\xa1k\xda\x01\x00" "abc"),
	B("str32 beyond body", "\x81\xa1k\xdb\x00\x00\x00\x10" "abc"),
	B("str32 4 GiB", "\x81\xa1k\xdb\xff\xff\xff\xff" "abc"),
	B("bin32 beyond body", "\x81\xa1k\xc6\x00\x01\x00\x00" "abc"),
	B("ext32 beyond body", "\x81\xa1k\xc9\xff\xff\xff\xff\x01"),
	B("ext8 type byte missing", "\x81\xa1k\xc7\x00"),
	B("fixext16 short", "\x81\xa1k\xd8\x01\x00"),
	B("uint64 short", "\x81\xa1k\xcf\x00\x00\x00"),
	B("float64 short", "\x81\xa1k\xcb\x00\x00"),
	B("map32 header cut", "\xdf\x00\x00"),
	B("str16 header cut", "\x81\xa1k\xda\x00"),
};
#define N_INVALID (sizeof(invalid) / sizeof(invalid[0]))

START_TEST(test_prescan_invalid)
{
	ck_assert_msg(frame_prescan((const uint8_t *)invalid[_i].p,
	    invalid[_i].len) == ERR_BAD_REQUEST, "%s accepted",
	    invalid[_i].name);
}
END_TEST

START_TEST(test_prescan_empty)
{
	ck_assert_int_eq(frame_prescan(NULL, 0), ERR_BAD_REQUEST);
	ck_assert_int_eq(frame_prescan((const uint8_t *)"\x80", 0),
	    ERR_BAD_REQUEST);
}
END_TEST

/* A large body at the frame limit: a str32 exactly filling it passes, one
 * byte short fails. */
START_TEST(test_prescan_big_string)
{
	static uint8_t b[FRAME_MAX_DEFAULT];
	size_t n = sizeof(b), slen = n - 3 - 5;

	memset(b, 'x', sizeof(b));
	b[0] = 0x81;
	b[1] = 0xa1;
	b[2] = 'k';
	b[3] = 0xdb;
	b[4] = (uint8_t)(slen >> 24);
	b[5] = (uint8_t)(slen >> 16);
	b[6] = (uint8_t)(slen >> 8);
	b[7] = (uint8_t)slen;
	ck_assert_int_eq(frame_prescan(b, n), 0);
	ck_assert_int_eq(frame_prescan(b, n - 1), ERR_BAD_REQUEST);
}
END_TEST

/* An array whose count equals the bytes left, each element one byte, is
 * the tightest valid case. */
START_TEST(test_prescan_count_exact)
{
	static uint8_t b[3 + 5 + 1000];
	size_t count = 1000;

	memset(b, 0x01, sizeof(b));
	b[0] = 0x81;
	b[1] = 0xa1;
	b[2] = 'k';
	b[3] = 0xdd;
	b[4] = 0;
	b[5] = 0;
	b[6] = (uint8_t)(count >> 8);
	b[7] = (uint8_t)count;
	ck_assert_int_eq(frame_prescan(b, sizeof(b)), 0);
	/* One more declared element than bytes. */
	b[7] = (uint8_t)(count + 1);
	ck_assert_int_eq(frame_prescan(b, sizeof(b)), ERR_BAD_REQUEST);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("frame");
	TCase *t;

	t = tcase_create("parse");
	tcase_add_loop_test(t, test_parse, 0, N_PARSE);
	tcase_add_test(t, test_put_header);
	suite_add_tcase(s, t);

	t = tcase_create("prescan");
	tcase_add_loop_test(t, test_prescan_valid, 0, N_VALID);
	tcase_add_loop_test(t, test_prescan_truncations, 0, N_VALID);
	tcase_add_loop_test(t, test_prescan_trailing, 0, N_VALID);
	tcase_add_loop_test(t, test_prescan_invalid, 0, N_INVALID);
	tcase_add_test(t, test_prescan_empty);
	tcase_add_test(t, test_prescan_big_string);
	tcase_add_test(t, test_prescan_count_exact);
	suite_add_tcase(s, t);
	return s;
}

#include "check_main.h"
