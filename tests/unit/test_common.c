/*
 * test_common.c: common/ (error codes, bounded buffers, strict base64).
 */
#include <stdint.h>
#include <string.h>

#include <check.h>

#include <openssl/evp.h>

#include "b64.h"
#include "duration.h"
#include "buf.h"
#include "err.h"

/* DESIGN 3.7: the stable wire strings, in enum order. */
static const struct {
	int err;
	const char *code;
} wire_codes[] = {
	{ ERR_BAD_REQUEST, "bad_request" },
	{ ERR_TOO_LARGE, "too_large" },
	{ ERR_UNKNOWN_OP, "unknown_op" },
	{ ERR_UNKNOWN_KEY, "unknown_key" },
	{ ERR_PERMISSION_DENIED, "permission_denied" },
	{ ERR_DECRYPTION_FAILED, "decryption_failed" },
	{ ERR_VERSION_NOT_ACTIVE, "version_not_active" },
	{ ERR_DECRYPT_DISABLED, "decrypt_disabled" },
	{ ERR_AUDIT_UNAVAILABLE, "audit_unavailable" },
	{ ERR_PROVIDER_UNAVAILABLE, "provider_unavailable" },
	{ ERR_PROVIDER_DENIED, "provider_denied" },
	{ ERR_THROTTLED, "throttled" },
	{ ERR_BUSY, "busy" },
	{ ERR_TIMEOUT, "timeout" },
	{ ERR_INTERNAL, "internal" },
};
#define N_WIRE_CODES (sizeof(wire_codes) / sizeof(wire_codes[0]))

START_TEST(test_err_wire_codes)
{
	const char *code = wire_codes[_i].code;
	int err = wire_codes[_i].err;

	ck_assert_str_eq(err_code(err), code);
	ck_assert_int_eq(err_from_code(code, strlen(code)), err);
	ck_assert_ptr_nonnull(err_str(err));
	ck_assert_str_ne(err_str(err), "");
}
END_TEST

START_TEST(test_err_every_value)
{
	/* Every value from -1 to ERR_MIN has a code that maps back to it,
	 * except ERR_NOMEM, which is internal on the wire. */
	for (int e = -1; e >= ERR_MIN; e--) {
		const char *c = err_code(e);

		if (e == ERR_NOMEM) {
			ck_assert_str_eq(c, "internal");
			ck_assert_int_eq(err_from_code(c, strlen(c)),
			    ERR_INTERNAL);
			continue;
		}
		ck_assert_int_eq(err_from_code(c, strlen(c)), e);
		/* No two values share a code. */
		for (int f = e - 1; f >= ERR_MIN; f--)
			if (f != ERR_NOMEM)
				ck_assert_str_ne(err_code(f), c);
	}
	ck_assert_int_eq((int)N_WIRE_CODES, -ERR_INTERNAL);
}
END_TEST

START_TEST(test_err_unknown)
{
	ck_assert_str_eq(err_code(-999), "internal");
	ck_assert_str_eq(err_code(5), "internal");
	ck_assert_int_eq(err_from_code("nope", 4), ERR_INTERNAL);
	ck_assert_int_eq(err_from_code("", 0), ERR_INTERNAL);
	/* "ok" is not an error code on the wire. */
	ck_assert_int_eq(err_from_code("ok", 2), ERR_INTERNAL);
	/* Length counts: a prefix or an extension is not a match. */
	ck_assert_int_eq(err_from_code("busy", 3), ERR_INTERNAL);
	ck_assert_int_eq(err_from_code("busyy", 5), ERR_INTERNAL);
	ck_assert_int_eq(err_from_code("busyy", 4), ERR_BUSY);
}
END_TEST

START_TEST(test_buf_cap)
{
	struct buf b;

	buf_init(&b, 10);
	ck_assert_int_eq(buf_append(&b, "0123456789", 10), 0);
	ck_assert_uint_eq(b.len, 10);
	ck_assert_int_eq(buf_append_byte(&b, 'x'), ERR_TOO_LARGE);
	ck_assert_int_eq(buf_append(&b, "xy", 2), ERR_TOO_LARGE);
	ck_assert_uint_eq(b.len, 10);
	ck_assert_mem_eq(b.data, "0123456789", 10);
	/* Appending nothing at the cap is fine. */
	ck_assert_int_eq(buf_append(&b, "", 0), 0);
	ck_assert_int_eq(buf_reserve(&b, 1), ERR_TOO_LARGE);
	ck_assert_int_eq(buf_reserve(&b, SIZE_MAX), ERR_TOO_LARGE);
	buf_done(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);

	buf_init(&b, 4);
	ck_assert_int_eq(buf_append(&b, "12345", 5), ERR_TOO_LARGE);
	ck_assert_uint_eq(b.len, 0);
	buf_done(&b);
}
END_TEST

START_TEST(test_buf_growth_keeps_data)
{
	struct buf b;
	uint8_t want[5000];

	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (uint8_t)(i * 7 + 3);
	buf_init(&b, sizeof(want));
	/* Odd-sized pieces cross every growth step. */
	for (size_t off = 0; off < sizeof(want); off += 37) {
		size_t n = sizeof(want) - off < 37 ? sizeof(want) - off : 37;

		ck_assert_int_eq(buf_append(&b, want + off, n), 0);
		ck_assert_uint_ge(b.cap, b.len + 1);
		ck_assert_uint_le(b.cap, b.max + 1);
	}
	ck_assert_uint_eq(b.len, sizeof(want));
	ck_assert_mem_eq(b.data, want, sizeof(want));
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_uint_eq(b.data[b.len], 0);
	buf_done(&b);
}
END_TEST

START_TEST(test_buf_consume)
{
	struct buf b;

	buf_init(&b, 64);
	ck_assert_int_eq(buf_append_str(&b, "abcdef"), 0);
	buf_consume(&b, 2);
	ck_assert_uint_eq(b.len, 4);
	ck_assert_mem_eq(b.data, "cdef", 4);
	/* The vacated tail is wiped. */
	ck_assert_uint_eq(b.data[4], 0);
	ck_assert_uint_eq(b.data[5], 0);
	buf_consume(&b, 0);
	ck_assert_mem_eq(b.data, "cdef", 4);
	buf_consume(&b, 100);
	ck_assert_uint_eq(b.len, 0);
	for (size_t i = 0; i < 6; i++)
		ck_assert_uint_eq(b.data[i], 0);
	ck_assert_int_eq(buf_append_str(&b, "xy"), 0);
	buf_clear(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.data[0], 0);
	ck_assert_uint_eq(b.data[1], 0);
	buf_done(&b);
}
END_TEST

START_TEST(test_buf_cstr_and_str_eq)
{
	struct buf b;
	struct str s = { "abc", 3 };

	buf_init(&b, 3);
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_str_eq((char *)b.data, "");
	ck_assert_int_eq(buf_append_str(&b, "xyz"), 0);
	/* The terminator fits even at the cap. */
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_str_eq((char *)b.data, "xyz");
	buf_done(&b);

	ck_assert(str_eq(s, "abc"));
	ck_assert(!str_eq(s, "ab"));
	ck_assert(!str_eq(s, "abcd"));
	ck_assert(!str_eq(STR_NULL, ""));
	ck_assert(str_eq((struct str){ "", 0 }, ""));
}
END_TEST

/* RFC 4648 section 10. */
static const struct {
	const char *plain;
	const char *b64;
} rfc4648[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

START_TEST(test_b64_rfc4648)
{
	const char *plain = rfc4648[_i].plain, *enc = rfc4648[_i].b64;
	struct buf b;

	buf_init(&b, 64);
	ck_assert_int_eq(b64_encode(&b, plain, strlen(plain)), 0);
	ck_assert_uint_eq(b.len, strlen(enc));
	if (b.len > 0)
		ck_assert_mem_eq(b.data, enc, b.len);
	buf_clear(&b);
	ck_assert_int_eq(b64_decode(&b, enc, strlen(enc)), 0);
	ck_assert_uint_eq(b.len, strlen(plain));
	if (b.len > 0)
		ck_assert_mem_eq(b.data, plain, b.len);
	ck_assert_uint_eq(b64_decoded_len(enc, strlen(enc)), strlen(plain));
	buf_done(&b);
}
END_TEST

START_TEST(test_b64_binary_round_trip)
{
	uint8_t in[256];
	struct buf e, d;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(255 - i);
	for (size_t n = 0; n <= sizeof(in); n += 1 + n / 3) {
		buf_init(&e, 1024);
		buf_init(&d, 1024);
		ck_assert_int_eq(b64_encode(&e, in, n), 0);
		ck_assert_uint_eq(e.len, (n + 2) / 3 * 4);
		ck_assert_int_eq(b64_decode(&d, (char *)e.data, e.len), 0);
		ck_assert_uint_eq(d.len, n);
		if (n > 0)
			ck_assert_mem_eq(d.data, in, n);
		buf_done(&e);
		buf_done(&d);
	}
}
END_TEST

/* The one duration syntax every section uses, and its range. */
START_TEST(test_duration)
{
	static const struct {
		const char *s;
		int ok;
		unsigned ms;
	} cases[] = {
		{ "10", 1, 10000 }, { "10s", 1, 10000 }, { "500ms", 1, 500 },
		{ "5m", 1, 300000 }, { "1ms", 1, 1 }, { "0", 0, 0 },
		{ "0ms", 0, 0 }, { "61m", 0, 0 }, { "60m", 1, 3600000 },
		{ "", 0, 0 }, { "s", 0, 0 }, { "-1", 0, 0 }, { " 5", 0, 0 },
		{ "5h", 0, 0 }, { "5 s", 0, 0 }, { "99999999999999999999", 0, 0 },
	};
	unsigned ms;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ms = 7;
		ck_assert_msg((duration_parse_ms(cases[i].s, 1, 3600000, &ms) ==
		    0) == cases[i].ok, "%s", cases[i].s);
		ck_assert_uint_eq(ms, cases[i].ok ? cases[i].ms : 7);
	}
	ck_assert_int_eq(duration_parse_ms(NULL, 1, 10, &ms), -1);
}
END_TEST

/* The table coder against OpenSSL's block coder: the same text for every
 * length, and for strings with one character changed, a decode that
 * succeeds gives OpenSSL's bytes. */
START_TEST(test_b64_matches_openssl)
{
	uint8_t in[200], ref[300];
	char enc[300];
	uint32_t seed = 12345;
	struct buf e, d;

	for (size_t i = 0; i < sizeof(in); i++) {
		seed = seed * 1103515245u + 12345u;
		in[i] = (uint8_t)(seed >> 16);
	}
	for (size_t n = 0; n <= sizeof(in); n++) {
		int rl;

		buf_init(&e, 1024);
		ck_assert_int_eq(b64_encode(&e, in, n), 0);
		rl = EVP_EncodeBlock(ref, in, (int)n);
		ck_assert_int_eq(rl, (int)e.len);
		if (n > 0)
			ck_assert_mem_eq(e.data, ref, e.len);
		for (int k = 0; k < 8 && e.len > 0; k++) {
			size_t pos;
			int ok, got;

			seed = seed * 1103515245u + 12345u;
			pos = (seed >> 8) % e.len;
			memcpy(enc, e.data, e.len);
			enc[pos] = (char)(seed >> 24);
			buf_init(&d, 1024);
			ok = b64_decode(&d, enc, e.len) == 0;
			got = EVP_DecodeBlock(ref, (const uint8_t *)enc,
			    (int)e.len);
			if (ok) {
				/* OpenSSL writes padding as zero bytes. */
				ck_assert_int_ge(got, (int)d.len);
				ck_assert_int_le(got, (int)d.len + 2);
				if (d.len > 0)
					ck_assert_mem_eq(d.data, ref, d.len);
			}
			buf_done(&d);
		}
		buf_done(&e);
	}
}
END_TEST

/* Strict decoding: each of these is refused and leaves out unchanged. */
static const char *const b64_bad[] = {
	"Z",			/* length not a multiple of 4 */
	"Zg=",
	"Zm9vY",
	"Zm9$",			/* character outside the alphabet */
	"Zm9-",			/* URL-safe alphabet is not accepted */
	"Zm9_",
	"Zm\n9v",		/* whitespace */
	"Zm9v\n",
	" Zm9",
	"Zm 9",
	"Zm9vYmFy\r\n",
	"Zg==Zg==",		/* '=' not at the end */
	"Z=g=",
	"=Zg=",
	"Z===",
	"====",
	"Zh==",			/* non-zero pad bits */
	"Zm9=",
	"Zm/=",
	"AB==",
};
#define N_B64_BAD (sizeof(b64_bad) / sizeof(b64_bad[0]))

START_TEST(test_b64_rejects)
{
	const char *s = b64_bad[_i];
	struct buf b;

	buf_init(&b, 64);
	ck_assert_int_eq(buf_append_str(&b, "keep"), 0);
	ck_assert_int_eq(b64_decode(&b, s, strlen(s)), ERR_BAD_REQUEST);
	ck_assert_uint_eq(b.len, 4);
	ck_assert_mem_eq(b.data, "keep", 4);
	buf_done(&b);
}
END_TEST

/* A refused string's good head was decoded before the bad character was
 * met: those bytes, maybe a secret's, are wiped from the buffer's spare
 * room. */
START_TEST(test_b64_reject_wipes)
{
	static const uint8_t zero[9];
	struct buf b;

	buf_init(&b, 64);
	ck_assert_int_eq(buf_reserve(&b, 16), 0);
	ck_assert_int_eq(b64_decode(&b, "Zm9vYmFyYmF$", 12), ERR_BAD_REQUEST);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_mem_eq(b.data, zero, sizeof(zero));
	buf_done(&b);
}
END_TEST

START_TEST(test_b64_decode_cap)
{
	struct buf b;

	buf_init(&b, 5);
	ck_assert_int_eq(b64_decode(&b, "Zm9vYmFy", 8), ERR_TOO_LARGE);
	ck_assert_uint_eq(b.len, 0);
	buf_done(&b);

	/* The cap bounds the decoded length, not the padded one. */
	buf_init(&b, 4);
	ck_assert_int_eq(b64_decode(&b, "Zm9vYg==", 8), 0);
	ck_assert_uint_eq(b.len, 4);
	ck_assert_mem_eq(b.data, "foob", 4);
	ck_assert_int_eq(b64_decode(&b, "Zg==", 4), ERR_TOO_LARGE);
	ck_assert_uint_eq(b.len, 4);
	buf_done(&b);

	buf_init(&b, 7);
	ck_assert_int_eq(b64_encode(&b, "foobar", 6), ERR_TOO_LARGE);
	ck_assert_uint_eq(b.len, 0);
	buf_done(&b);
}
END_TEST

/* Ruby 3.1: Base64.encode64 of the bytes 0, 1, ..., n-1. */
static const struct {
	size_t n;
	const char *want;
} encode64[] = {
	{ 0, "" },
	{ 1, "AA==\n" },
	{ 45, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKiss\n" },
	{ 46, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKiss\n"
	    "LQ==\n" },
	{ 100, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKiss\n"
	    "LS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZ\n"
	    "WltcXV5fYGFiYw==\n" },
};

START_TEST(test_b64_encode_lines)
{
	uint8_t in[100];
	const char *want = encode64[_i].want;
	struct buf b;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	buf_init(&b, 1024);
	ck_assert_int_eq(b64_encode_lines(&b, in, encode64[_i].n), 0);
	ck_assert_uint_eq(b.len, strlen(want));
	if (b.len > 0)
		ck_assert_mem_eq(b.data, want, b.len);
	buf_done(&b);
}
END_TEST

START_TEST(test_b64_encode_lines_90)
{
	uint8_t in[90];
	struct buf b;

	/* Exactly two full lines: 120 characters, two newlines, no more. */
	memset(in, 0xff, sizeof(in));
	buf_init(&b, 1024);
	ck_assert_int_eq(b64_encode_lines(&b, in, sizeof(in)), 0);
	ck_assert_uint_eq(b.len, 122);
	ck_assert_uint_eq(b.data[60], '\n');
	ck_assert_uint_eq(b.data[121], '\n');
	for (size_t i = 0; i < 122; i++)
		if (i != 60 && i != 121)
			ck_assert_uint_eq(b.data[i], '/');
	buf_done(&b);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("common");
	TCase *t;

	t = tcase_create("err");
	tcase_add_loop_test(t, test_err_wire_codes, 0, N_WIRE_CODES);
	tcase_add_test(t, test_err_every_value);
	tcase_add_test(t, test_err_unknown);
	suite_add_tcase(s, t);

	t = tcase_create("buf");
	tcase_add_test(t, test_buf_cap);
	tcase_add_test(t, test_buf_growth_keeps_data);
	tcase_add_test(t, test_buf_consume);
	tcase_add_test(t, test_buf_cstr_and_str_eq);
	suite_add_tcase(s, t);

	t = tcase_create("b64");
	tcase_add_loop_test(t, test_b64_rfc4648, 0,
	    sizeof(rfc4648) / sizeof(rfc4648[0]));
	tcase_add_test(t, test_b64_binary_round_trip);
	tcase_add_test(t, test_b64_matches_openssl);
	tcase_add_test(t, test_duration);
	tcase_add_loop_test(t, test_b64_rejects, 0, N_B64_BAD);
	tcase_add_test(t, test_b64_reject_wipes);
	tcase_add_test(t, test_b64_decode_cap);
	tcase_add_loop_test(t, test_b64_encode_lines, 0,
	    sizeof(encode64) / sizeof(encode64[0]));
	tcase_add_test(t, test_b64_encode_lines_90);
	suite_add_tcase(s, t);
	return s;
}

#include "check_main.h"
