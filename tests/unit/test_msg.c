/*
 * test_msg.c: request/response codec. Malformed bodies are written by a
 * small independent msgpack writer below (not by the encoder under test),
 * from a token spec:
 *
 *   {N  map of N pairs         [N  array of N
 *   "text  str (%XX = byte XX; "" alone is the empty str)
 *   #N  uint   -N  negative int   ~  nil   T F  bool   f  float64 1.5
 *   bN  bin of N bytes         sN  str of N bytes ('k')
 *   xHEX  raw bytes
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "err.h"
#include "frame.h"
#include "msg.h"

#define BODY_MAX (FRAME_MAX_DEFAULT + 1024)

static uint8_t body[BODY_MAX];
static size_t body_len;

static void
put(uint8_t c)
{
	ck_assert_uint_lt(body_len, BODY_MAX);
	body[body_len++] = c;
}

static void
put_be(uint64_t v, int w)
{
	for (int i = w - 1; i >= 0; i--)
		put((uint8_t)(v >> (8 * i)));
}

/* A length-prefixed head: fix form when it fits, else 8/16/32-bit forms
 * starting at type byte t8 (str8 0xd9, bin8 0xc4). */
static void
put_len(size_t n, uint8_t fix, size_t fixmax, uint8_t t8)
{
	if (fix != 0 && n <= fixmax)
		put((uint8_t)(fix | n));
	else if (t8 != 0 && n <= 0xff) {
		put(t8);
		put_be(n, 1);
	} else if (n <= 0xffff) {
		put((uint8_t)(t8 + 1));
		put_be(n, 2);
	} else {
		put((uint8_t)(t8 + 2));
		put_be(n, 4);
	}
}

static void
put_container(size_t n, uint8_t fix, uint8_t t16)
{
	if (n <= 15) {
		put((uint8_t)(fix | n));
	} else if (n <= 0xffff) {
		put(t16);
		put_be(n, 2);
	} else {
		put((uint8_t)(t16 + 1));
		put_be(n, 4);
	}
}

static unsigned
hex1(char c)
{
	if (c >= '0' && c <= '9')
		return (unsigned)(c - '0');
	return (unsigned)((c | 0x20) - 'a' + 10);
}

static void
mp(const char *spec)
{
	const char *p = spec;

	body_len = 0;
	while (*p != '\0') {
		const char *tok = p, *end = strchr(p, ' ');
		size_t tl;

		if (end == NULL)
			end = p + strlen(p);
		tl = (size_t)(end - tok);
		p = *end == ' ' ? end + 1 : end;
		switch (tok[0]) {
		case '{':
			put_container(strtoul(tok + 1, NULL, 10), 0x80, 0xde);
			break;
		case '[':
			put_container(strtoul(tok + 1, NULL, 10), 0x90, 0xdc);
			break;
		case '"': {
			uint8_t s[512];
			size_t n = 0;

			for (size_t i = 1; i < tl; i++) {
				if (tok[i] == '%') {
					s[n++] = (uint8_t)(hex1(tok[i + 1]) << 4 |
					    hex1(tok[i + 2]));
					i += 2;
				} else {
					s[n++] = (uint8_t)tok[i];
				}
			}
			put_len(n, 0xa0, 31, 0xd9);
			for (size_t i = 0; i < n; i++)
				put(s[i]);
			break;
		}
		case '#': {
			uint64_t v = strtoull(tok + 1, NULL, 10);

			if (v < 128) {
				put((uint8_t)v);
			} else if (v <= 0xff) {
				put(0xcc);
				put_be(v, 1);
			} else if (v <= 0xffff) {
				put(0xcd);
				put_be(v, 2);
			} else if (v <= 0xffffffff) {
				put(0xce);
				put_be(v, 4);
			} else {
				put(0xcf);
				put_be(v, 8);
			}
			break;
		}
		case '-': {
			int64_t v = -(int64_t)strtoull(tok + 1, NULL, 10);

			if (v >= -32) {
				put((uint8_t)v);
			} else {
				put(0xd3);
				put_be((uint64_t)v, 8);
			}
			break;
		}
		case '~': put(0xc0); break;
		case 'T': put(0xc3); break;
		case 'F': put(0xc2); break;
		case 'f':
			put(0xcb);
			put_be(0x3ff8000000000000ull, 8);
			break;
		case 'b':
		case 's': {
			size_t n = strtoul(tok + 1, NULL, 10);

			if (tok[0] == 'b')
				put_len(n, 0, 0, 0xc4);
			else
				put_len(n, 0xa0, 31, 0xd9);
			for (size_t i = 0; i < n; i++)
				put(tok[0] == 'b' ? 'p' : 'k');
			break;
		}
		case 'x':
			for (size_t i = 1; i + 1 < tl; i += 2)
				put((uint8_t)(hex1(tok[i]) << 4 | hex1(tok[i + 1])));
			break;
		default:
			ck_abort_msg("bad spec token in '%s'", spec);
		}
	}
}

/* Spec of a context map with n pairs "k0":"v" ... into out. */
static const char *
ctx_spec(char *out, size_t cap, const char *prefix, size_t n,
    const char *suffix)
{
	size_t o = (size_t)snprintf(out, cap, "%s {%zu", prefix, n);

	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, cap - o, " \"k%zu \"v", i);
	snprintf(out + o, cap - o, "%s", suffix);
	return out;
}

/* Malformed requests. */
static const struct {
	const char *name;
	const char *spec;
	int err;
	int has_id;
	uint64_t id;
	const char *why;	/* substring of the reason */
} bad_requests[] = {
	{ "top array", "[2 #1 #2", ERR_BAD_REQUEST, 0, 0, "map" },
	{ "top str", "\"id", ERR_BAD_REQUEST, 0, 0, "map" },
	{ "trailing byte", "{2 \"id #1 \"op \"hello ~", ERR_BAD_REQUEST, 0,
	    0, "map" },
	{ "0xc1", "{2 \"id #1 \"op xc1", ERR_BAD_REQUEST, 0, 0, "map" },
	{ "array32 bomb", "{1 \"a xddffffffff xddffffffff xddffffffff",
	    ERR_BAD_REQUEST, 0, 0, "map" },
	{ "missing id", "{1 \"op \"hello", ERR_BAD_REQUEST, 0, 0,
	    "'id' missing" },
	{ "id negative", "{2 \"id -1 \"op \"hello", ERR_BAD_REQUEST, 0, 0,
	    "'id'" },
	{ "id very negative", "{2 \"id -5000000000 \"op \"hello",
	    ERR_BAD_REQUEST, 0, 0, "'id'" },
	{ "id string", "{2 \"id \"1 \"op \"hello", ERR_BAD_REQUEST, 0, 0,
	    "'id'" },
	{ "id zero", "{2 \"id #0 \"op \"hello", ERR_BAD_REQUEST, 0, 0,
	    "'id'" },
	{ "id float", "{2 \"id f \"op \"hello", ERR_BAD_REQUEST, 0, 0,
	    "'id'" },
	{ "id nil", "{2 \"id ~ \"op \"hello", ERR_BAD_REQUEST, 0, 0, "'id'" },
	{ "id twice", "{3 \"id #1 \"op \"hello \"id #2", ERR_BAD_REQUEST, 0,
	    0, "twice" },
	{ "missing op", "{1 \"id #5", ERR_BAD_REQUEST, 1, 5, "'op' missing" },
	{ "op int", "{2 \"id #5 \"op #1", ERR_BAD_REQUEST, 1, 5,
	    "'op': expected str" },
	{ "op bin", "{2 \"id #5 \"op b5", ERR_BAD_REQUEST, 1, 5,
	    "'op': expected str" },
	{ "op twice", "{3 \"id #5 \"op \"hello \"op \"keys", ERR_BAD_REQUEST,
	    1, 5, "twice" },
	{ "unknown op", "{2 \"id #6 \"op \"explode", ERR_UNKNOWN_OP, 1, 6,
	    "unknown op" },
	{ "op wrong case", "{2 \"id #7 \"op \"Hello", ERR_UNKNOWN_OP, 1, 7,
	    "unknown op" },
	{ "op with NUL", "{2 \"id #7 \"op \"hello%00", ERR_UNKNOWN_OP, 1, 7,
	    "unknown op" },
	{ "unknown op, big id", "{2 \"op \"nope \"id #18446744073709551615",
	    ERR_UNKNOWN_OP, 1, UINT64_MAX, "unknown op" },
	{ "non-str field name", "{3 \"id #8 \"op \"hello #1 #2",
	    ERR_BAD_REQUEST, 1, 8, "field names" },
	{ "key missing", "{2 \"id #9 \"op \"generate", ERR_BAD_REQUEST, 1, 9,
	    "needs field 'key'" },
	{ "key int", "{3 \"id #9 \"op \"generate \"key #1", ERR_BAD_REQUEST,
	    1, 9, "'key': expected str" },
	{ "key bin", "{3 \"id #9 \"op \"encrypt \"key b3", ERR_BAD_REQUEST,
	    1, 9, "'key': expected str" },
	{ "key nil", "{3 \"id #9 \"op \"decrypt \"key ~", ERR_BAD_REQUEST,
	    1, 9, "'key': expected str" },
	{ "key empty", "{3 \"id #9 \"op \"generate \"key \"",
	    ERR_BAD_REQUEST, 1, 9, "'key': empty" },
	{ "key too long", "{3 \"id #9 \"op \"generate \"key s129",
	    ERR_TOO_LARGE, 1, 9, "'key': longer" },
	{ "key invalid UTF-8", "{3 \"id #9 \"op \"generate \"key \"a%ff",
	    ERR_BAD_REQUEST, 1, 9, "UTF-8" },
	{ "key twice", "{4 \"id #9 \"op \"generate \"key \"a \"key \"b",
	    ERR_BAD_REQUEST, 1, 9, "'key' appears twice" },
	{ "context str", "{4 \"id #10 \"op \"generate \"key \"k \"context \"x",
	    ERR_BAD_REQUEST, 1, 10, "'context': expected map" },
	{ "context array", "{4 \"id #10 \"op \"generate \"key \"k \"context "
	    "[1 \"x", ERR_BAD_REQUEST, 1, 10, "'context': expected map" },
	{ "context int", "{4 \"id #10 \"op \"generate \"key \"k \"context #0",
	    ERR_BAD_REQUEST, 1, 10, "'context': expected map" },
	{ "context int value", "{4 \"id #10 \"op \"generate \"key \"k "
	    "\"context {1 \"model_id #1", ERR_BAD_REQUEST, 1, 10, "must be str" },
	{ "context nil value", "{4 \"id #10 \"op \"generate \"key \"k "
	    "\"context {1 \"a ~", ERR_BAD_REQUEST, 1, 10, "must be str" },
	{ "context bin value", "{4 \"id #10 \"op \"generate \"key \"k "
	    "\"context {1 \"a b1", ERR_BAD_REQUEST, 1, 10, "must be str" },
	{ "context map value", "{4 \"id #10 \"op \"generate \"key \"k "
	    "\"context {1 \"a {0", ERR_BAD_REQUEST, 1, 10, "must be str" },
	{ "context int key", "{4 \"id #10 \"op \"generate \"key \"k "
	    "\"context {1 #1 \"a", ERR_BAD_REQUEST, 1, 10, "must be str" },
	{ "context duplicate key", "{4 \"id #10 \"op \"generate \"key \"k "
	    "\"context {2 \"a \"1 \"a \"2", ERR_BAD_REQUEST, 1, 10,
	    "duplicate key" },
	{ "context duplicate key, same value", "{5 \"id #10 \"op \"encrypt "
	    "\"key \"k \"plaintext b1 \"context {2 \"a \"1 \"a \"1",
	    ERR_BAD_REQUEST, 1, 10, "duplicate key" },
	{ "context invalid UTF-8 value", "{4 \"id #10 \"op \"generate \"key "
	    "\"k \"context {1 \"a \"%c0%80", ERR_BAD_REQUEST, 1, 10, "UTF-8" },
	{ "context invalid UTF-8 key", "{4 \"id #10 \"op \"generate \"key "
	    "\"k \"context {1 \"%ed%a0%80 \"v", ERR_BAD_REQUEST, 1, 10,
	    "UTF-8" },
	{ "new_context int value", "{5 \"id #11 \"op \"rewrap \"key \"k "
	    "\"ciphertext \"v1:QQ== \"new_context {1 \"a #2", ERR_BAD_REQUEST,
	    1, 11, "'new_context'" },
	{ "new_context str", "{5 \"id #11 \"op \"rewrap \"key \"k "
	    "\"ciphertext \"v1:QQ== \"new_context \"x", ERR_BAD_REQUEST, 1, 11,
	    "'new_context'" },
	{ "plaintext str", "{4 \"id #12 \"op \"encrypt \"key \"k \"plaintext "
	    "\"abc", ERR_BAD_REQUEST, 1, 12, "'plaintext': expected bin" },
	{ "plaintext nil", "{4 \"id #12 \"op \"encrypt \"key \"k \"plaintext ~",
	    ERR_BAD_REQUEST, 1, 12, "'plaintext': expected bin" },
	{ "plaintext 4097", "{4 \"id #12 \"op \"encrypt \"key \"k \"plaintext "
	    "b4097", ERR_TOO_LARGE, 1, 12, "'plaintext': longer" },
	{ "plaintext missing", "{3 \"id #12 \"op \"encrypt \"key \"k",
	    ERR_BAD_REQUEST, 1, 12, "needs field 'plaintext'" },
	{ "plaintext str on hello", "{3 \"id #12 \"op \"hello \"plaintext \"x",
	    ERR_BAD_REQUEST, 1, 12, "'plaintext'" },
	{ "ciphertext bin", "{4 \"id #13 \"op \"decrypt \"key \"k "
	    "\"ciphertext b8", ERR_BAD_REQUEST, 1, 13,
	    "'ciphertext': expected str" },
	{ "ciphertext int", "{4 \"id #13 \"op \"rewrap \"key \"k "
	    "\"ciphertext #1", ERR_BAD_REQUEST, 1, 13,
	    "'ciphertext': expected str" },
	{ "ciphertext empty", "{4 \"id #13 \"op \"decrypt \"key \"k "
	    "\"ciphertext \"", ERR_BAD_REQUEST, 1, 13, "'ciphertext': empty" },
	{ "ciphertext too long", "{4 \"id #13 \"op \"decrypt \"key \"k "
	    "\"ciphertext s16385", ERR_TOO_LARGE, 1, 13, "'ciphertext'" },
	{ "ciphertext missing", "{3 \"id #13 \"op \"decrypt \"key \"k",
	    ERR_BAD_REQUEST, 1, 13, "needs field 'ciphertext'" },
	{ "ciphertext missing, rewrap", "{3 \"id #13 \"op \"rewrap \"key \"k",
	    ERR_BAD_REQUEST, 1, 13, "needs field 'ciphertext'" },
	{ "reason int", "{3 \"id #14 \"op \"disable_decrypt \"reason #1",
	    ERR_BAD_REQUEST, 1, 14, "'reason': expected str" },
	{ "reason too long", "{3 \"id #14 \"op \"disable_decrypt \"reason "
	    "s257", ERR_TOO_LARGE, 1, 14, "'reason'" },
	{ "audit_path missing", "{3 \"id #15 \"op \"context_hash \"key \"k",
	    ERR_BAD_REQUEST, 1, 15, "needs field 'audit_path'" },
	{ "audit_path bin", "{4 \"id #15 \"op \"context_hash \"key \"k "
	    "\"audit_path b3", ERR_BAD_REQUEST, 1, 15, "'audit_path'" },
	{ "format xml", "{3 \"id #16 \"op \"stats \"format \"xml",
	    ERR_BAD_REQUEST, 1, 16, "'format'" },
	{ "format JSON", "{3 \"id #16 \"op \"stats \"format \"JSON",
	    ERR_BAD_REQUEST, 1, 16, "'format'" },
	{ "format long", "{3 \"id #16 \"op \"stats \"format s300",
	    ERR_BAD_REQUEST, 1, 16, "'format'" },
	{ "format int", "{3 \"id #16 \"op \"stats \"format #1",
	    ERR_BAD_REQUEST, 1, 16, "'format': expected str" },
};
#define N_BAD_REQUESTS (sizeof(bad_requests) / sizeof(bad_requests[0]))

START_TEST(test_bad_request)
{
	struct request r;
	int err;

	mp(bad_requests[_i].spec);
	err = msg_decode_request(body, body_len, &r);
	ck_assert_msg(err == bad_requests[_i].err, "%s: got %d (%s) want %d",
	    bad_requests[_i].name, err, r.why, bad_requests[_i].err);
	ck_assert_msg(r.has_id == bad_requests[_i].has_id, "%s: has_id %d",
	    bad_requests[_i].name, r.has_id);
	ck_assert_msg(r.id == bad_requests[_i].id, "%s: id %llu",
	    bad_requests[_i].name, (unsigned long long)r.id);
	ck_assert_msg(strstr(r.why, bad_requests[_i].why) != NULL,
	    "%s: why '%s' lacks '%s'", bad_requests[_i].name, r.why,
	    bad_requests[_i].why);
}
END_TEST

/* One reused decoder (the daemon's way) gives what a fresh one gives, for
 * every bad request in turn and a good one after each. */
START_TEST(test_reused_decoder)
{
	struct msg_dec *d = msg_dec_new();
	struct request a, b;

	ck_assert_ptr_nonnull(d);
	for (size_t i = 0; i < N_BAD_REQUESTS; i++) {
		mp(bad_requests[i].spec);
		ck_assert_int_eq(msg_decode_request_with(d, body, body_len, &a),
		    msg_decode_request(body, body_len, &b));
		ck_assert_int_eq(a.has_id, b.has_id);
		ck_assert_uint_eq(a.id, b.id);
		ck_assert_str_eq(a.why, b.why);
		mp("{5 \"id #7 \"op \"encrypt \"key \"k \"plaintext b3 "
		    "\"context {2 \"a \"1 \"b \"2");
		ck_assert_int_eq(msg_decode_request_with(d, body, body_len, &a),
		    0);
		ck_assert_uint_eq(a.id, 7);
		ck_assert_int_eq(a.op, OP_ENCRYPT);
		ck_assert_uint_eq(a.ctx.n, 2);
		ck_assert_uint_eq(a.plaintext.len, 3);
	}
	msg_dec_free(d);
}
END_TEST

START_TEST(test_context_pairs_limit)
{
	static char spec[4096];
	struct request r;

	ctx_spec(spec, sizeof(spec),
	    "{4 \"id #3 \"op \"generate \"key \"k \"context", 65, "");
	mp(spec);
	ck_assert_int_eq(msg_decode_request(body, body_len, &r),
	    ERR_TOO_LARGE);
	ck_assert(r.has_id);
	ck_assert_uint_eq(r.id, 3);

	ctx_spec(spec, sizeof(spec),
	    "{4 \"id #3 \"op \"generate \"key \"k \"context", 64, "");
	mp(spec);
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert(r.ctx.present);
	ck_assert_uint_eq(r.ctx.n, 64);
	ck_assert(str_eq(r.ctx.pairs[63].k, "k63"));
	ck_assert(str_eq(r.ctx.pairs[63].v, "v"));
}
END_TEST

START_TEST(test_empty_body)
{
	struct request r;

	ck_assert_int_eq(msg_decode_request(body, 0, &r), ERR_BAD_REQUEST);
	ck_assert(!r.has_id);
}
END_TEST

/* Accepted oddities. */
START_TEST(test_unknown_fields_ignored)
{
	struct request r;

	mp("{5 \"id #1 \"zzz [2 #1 {0 \"op \"hello \"extra xd60100000000 "
	    "\"Key #1");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert_int_eq(r.op, OP_HELLO);
	ck_assert_uint_eq(r.id, 1);
	/* Field names are case-sensitive: "Key" is unknown, not key. */
	ck_assert_ptr_null(r.key.p);
}
END_TEST

START_TEST(test_context_nil_absent_empty)
{
	struct request r;

	mp("{4 \"id #1 \"op \"generate \"key \"k \"context ~");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert(!r.ctx.present);

	mp("{3 \"id #1 \"op \"generate \"key \"k");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert(!r.ctx.present);

	mp("{4 \"id #1 \"op \"generate \"key \"k \"context {0");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert(r.ctx.present);
	ck_assert_uint_eq(r.ctx.n, 0);

	/* Empty key and value strings are allowed in a context. */
	mp("{4 \"id #1 \"op \"generate \"key \"k \"context {1 \" \"");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert(r.ctx.present);
	ck_assert_uint_eq(r.ctx.n, 1);
	ck_assert_ptr_nonnull(r.ctx.pairs[0].k.p);
	ck_assert_uint_eq(r.ctx.pairs[0].k.len, 0);
}
END_TEST

START_TEST(test_limits_accepted)
{
	struct request r;

	mp("{4 \"id #18446744073709551615 \"op \"encrypt \"key s128 "
	    "\"plaintext b4096");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert_uint_eq(r.id, UINT64_MAX);
	ck_assert_uint_eq(r.key.len, MSG_MAX_KEY_NAME);
	ck_assert_uint_eq(r.plaintext.len, MSG_MAX_PLAINTEXT);
	/* Decoded strings point into the body: nothing was copied. */
	ck_assert((const uint8_t *)r.plaintext.p > body &&
	    (const uint8_t *)r.plaintext.p + r.plaintext.len <= body + body_len);

	mp("{4 \"id #1 \"op \"encrypt \"key \"k \"plaintext b0");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert_ptr_nonnull(r.plaintext.p);
	ck_assert_uint_eq(r.plaintext.len, 0);

	mp("{4 \"id #1 \"op \"decrypt \"key \"k \"ciphertext s16384");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert_uint_eq(r.ciphertext.len, MSG_MAX_CIPHERTEXT);

	/* A field of another op is type-checked, then ignored. */
	mp("{3 \"id #1 \"op \"hello \"plaintext b3");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);

	/* The body may be a map16 / map32 and use str8 for names. */
	mp("xde0002 xd9026964 #1 xdb000000026f70 \"keys");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert_int_eq(r.op, OP_KEYS);

	/* Any integer width: a non-negative int8/uint16 id is a uint. */
	mp("{2 \"id xd005 \"op \"hello");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert_uint_eq(r.id, 5);
	mp("{2 \"id xcd0001 \"op \"hello");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert_uint_eq(r.id, 1);

	mp("{3 \"id #1 \"op \"stats \"format \"prometheus");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert(str_eq(r.format, "prometheus"));
	mp("{3 \"id #1 \"op \"disable_decrypt \"reason \"");
	ck_assert_int_eq(msg_decode_request(body, body_len, &r), 0);
	ck_assert_ptr_nonnull(r.reason.p);
}
END_TEST

static int
str_same(struct str a, struct str b)
{
	if (a.p == NULL || b.p == NULL)
		return a.p == b.p;
	return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

static struct str
S(const char *s)
{
	return (struct str){ s, strlen(s) };
}

static void
ctx_add(struct context *c, const char *k, const char *v)
{
	c->present = 1;
	c->pairs[c->n].k = S(k);
	c->pairs[c->n].v = S(v);
	c->n++;
}

/* Encode r into one frame, check the frame, decode it back. */
static void
request_round_trip(const struct request *in)
{
	struct buf b;
	struct request out;
	const uint8_t *fb;
	size_t fl;

	buf_init(&b, FRAME_HDR + FRAME_MAX_DEFAULT);
	ck_assert_int_eq(msg_encode_request(&b, in), 0);
	ck_assert_int_eq(frame_parse(b.data, b.len, FRAME_MAX_DEFAULT, &fb,
	    &fl), FRAME_READY);
	ck_assert_uint_eq(fl + FRAME_HDR, b.len);
	ck_assert_int_eq(frame_prescan(fb, fl), 0);
	ck_assert_msg(msg_decode_request(fb, fl, &out) == 0, "%s: %s",
	    op_name(in->op), out.why);
	ck_assert_uint_eq(out.id, in->id);
	ck_assert(out.has_id);
	ck_assert_int_eq(out.op, in->op);
	ck_assert(str_same(out.key, in->key));
	ck_assert(context_equal(&out.ctx, &in->ctx));
	ck_assert(context_equal(&out.new_ctx, &in->new_ctx));
	ck_assert(str_same(out.plaintext, in->plaintext));
	ck_assert(str_same(out.ciphertext, in->ciphertext));
	ck_assert(str_same(out.reason, in->reason));
	ck_assert(str_same(out.audit_path, in->audit_path));
	ck_assert(str_same(out.format, in->format));
	buf_done(&b);
}

START_TEST(test_request_round_trip)
{
	static const uint8_t pt[] = { 0, 1, 2, 0xff, 0, 0x80 };
	struct request r;

	msg_request_init(&r);
	r.id = 1;
	r.op = _i;
	switch (_i) {
	case OP_GENERATE:
		r.key = S("default");
		ctx_add(&r.ctx, "model_name", "User");
		ctx_add(&r.ctx, "model_id", "1");
		break;
	case OP_ENCRYPT:
		r.id = UINT64_MAX;
		r.key = S("phone");
		r.ctx.present = 1;	/* empty context */
		r.plaintext = (struct str){ (const char *)pt, sizeof(pt) };
		break;
	case OP_DECRYPT:
		r.id = 300;
		r.key = S("default");
		r.ciphertext = S("v1:insecure+data+A6QUFFQ0F3UUZCZ2NJQ1E=");
		ctx_add(&r.ctx, "k", "\xc3\xa9<&>");
		break;
	case OP_REWRAP:
		r.id = 70000;
		r.key = S("default");
		r.ciphertext = S("v2:QUJD");
		ctx_add(&r.ctx, "a", "1");
		ctx_add(&r.new_ctx, "a", "2");
		ctx_add(&r.new_ctx, "b", "");
		break;
	case OP_STATS:
		r.format = S("prometheus");
		break;
	case OP_CONTEXT_HASH:
		r.key = S("vault-key");
		r.audit_path = S("file/");
		ctx_add(&r.ctx, "model_id", "7");
		break;
	case OP_DISABLE_DECRYPT:
		r.reason = S("breach drill");
		break;
	default:
		/* hello, keys, status, enable_decrypt, reload: id + op. */
		r.id = 5000000000ull;
		break;
	}
	request_round_trip(&r);
}
END_TEST

START_TEST(test_request_empty_plaintext)
{
	struct request r;

	msg_request_init(&r);
	r.id = 9;
	r.op = OP_ENCRYPT;
	r.key = S("k");
	r.plaintext = S("");
	request_round_trip(&r);
}
END_TEST

/* The bytes of a request the encoder writes, against a hand-made body. */
START_TEST(test_request_exact_bytes)
{
	struct request r;
	struct buf b;

	msg_request_init(&r);
	r.id = 1;
	r.op = OP_GENERATE;
	r.key = S("default");
	ctx_add(&r.ctx, "model_id", "1");
	buf_init(&b, 1024);
	ck_assert_int_eq(msg_encode_request(&b, &r), 0);
	mp("{4 \"id #1 \"op \"generate \"key \"default \"context {1 "
	    "\"model_id \"1");
	ck_assert_uint_eq(b.len, FRAME_HDR + body_len);
	ck_assert_uint_eq(b.data[0], 0);
	ck_assert_uint_eq(b.data[1], 0);
	ck_assert_uint_eq(b.data[2], body_len >> 8);
	ck_assert_uint_eq(b.data[3], body_len & 0xff);
	ck_assert_mem_eq(b.data + FRAME_HDR, body, body_len);
	buf_done(&b);
}
END_TEST

/* Pipelining: frames appended back to back split cleanly. */
START_TEST(test_pipelined_frames)
{
	struct request r, out;
	struct buf b;
	const uint8_t *p, *fb;
	size_t left, fl;

	buf_init(&b, 4096);
	msg_request_init(&r);
	for (uint64_t id = 1; id <= 3; id++) {
		r.id = id;
		r.op = OP_HELLO;
		ck_assert_int_eq(msg_encode_request(&b, &r), 0);
	}
	p = b.data;
	left = b.len;
	for (uint64_t id = 1; id <= 3; id++) {
		ck_assert_int_eq(frame_parse(p, left, 64, &fb, &fl),
		    FRAME_READY);
		ck_assert_int_eq(msg_decode_request(fb, fl, &out), 0);
		ck_assert_uint_eq(out.id, id);
		p += FRAME_HDR + fl;
		left -= FRAME_HDR + fl;
	}
	ck_assert_uint_eq(left, 0);
	buf_done(&b);
}
END_TEST

/* 1 when the 8-byte run of 0xAB occurs in p[0..n). */
static int
has_marker(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 8 <= n; i++) {
		size_t k = 0;

		while (k < 8 && p[i + k] == 0xab)
			k++;
		if (k == 8)
			return 1;
	}
	return 0;
}

START_TEST(test_encode_too_small)
{
	uint8_t pt[64];
	struct request r;
	struct response s;
	struct buf b;
	size_t full;

	memset(pt, 0xab, sizeof(pt));
	msg_request_init(&r);
	r.id = 4;
	r.op = OP_ENCRYPT;
	r.key = S("default");
	r.plaintext = (struct str){ (const char *)pt, sizeof(pt) };
	/* A field after the plaintext, so some caps fail once the plaintext
	 * is already in the buffer. */
	r.reason = S("a field written after the plaintext");

	/* Learn the full size, then try every smaller cap. */
	buf_init(&b, 4096);
	ck_assert_int_eq(msg_encode_request(&b, &r), 0);
	full = b.len;
	buf_done(&b);
	for (size_t cap = 5; cap <= 5 + full; cap++) {
		buf_init(&b, cap);
		/* Initialise the whole allocation, so a scan for leftovers
		 * reads only defined bytes. */
		ck_assert_int_eq(buf_reserve(&b, cap), 0);
		memset(b.data, 0x11, b.cap);
		ck_assert_int_eq(buf_append(&b, "hello", 5), 0);
		if (cap - 5 >= full) {
			ck_assert_int_eq(msg_encode_request(&b, &r), 0);
			ck_assert_uint_eq(b.len, 5 + full);
		} else {
			ck_assert_int_eq(msg_encode_request(&b, &r),
			    ERR_TOO_LARGE);
			ck_assert_uint_eq(b.len, 5);
			ck_assert_mem_eq(b.data, "hello", 5);
			/* What was written of the plaintext is wiped. */
			ck_assert(!has_marker(b.data, b.cap));
		}
		buf_done(&b);
	}

	/* A response carrying a data key, same story. */
	msg_response_init(&s);
	s.id = 4;
	s.ciphertext = S("v1:QUJD");
	s.plaintext = (struct str){ (const char *)pt, 32 };
	s.body = S("a body long enough not to fit after the plaintext ......");
	buf_init(&b, 100);
	ck_assert_int_eq(buf_reserve(&b, 100), 0);
	memset(b.data, 0x11, b.cap);
	ck_assert_int_eq(msg_encode_response(&b, &s), ERR_TOO_LARGE);
	ck_assert_uint_eq(b.len, 0);
	ck_assert(!has_marker(b.data, b.cap));
	buf_done(&b);

	/* Not even room for the header. */
	buf_init(&b, 3);
	ck_assert_int_eq(msg_encode_response(&b, &s), ERR_TOO_LARGE);
	ck_assert_uint_eq(b.len, 0);
	buf_done(&b);
}
END_TEST

START_TEST(test_encode_bad_input)
{
	struct request r;
	struct response s;
	struct buf b;

	buf_init(&b, 1024);
	msg_request_init(&r);
	r.id = 1;
	r.op = OP__COUNT;
	ck_assert_int_eq(msg_encode_request(&b, &r), ERR_INTERNAL);
	r.op = -1;
	ck_assert_int_eq(msg_encode_request(&b, &r), ERR_INTERNAL);
	r.op = OP_HELLO;
	r.ctx.present = 1;
	r.ctx.n = CONTEXT_MAX_PAIRS + 1;
	ck_assert_int_eq(msg_encode_request(&b, &r), ERR_INTERNAL);
	msg_response_init(&s);
	s.n_allow = 1;	/* allow[0] unset */
	ck_assert_int_eq(msg_encode_response(&b, &s), ERR_INTERNAL);
	s.n_allow = 0;
	s.n_keys = 1;	/* keys NULL */
	ck_assert_int_eq(msg_encode_response(&b, &s), ERR_INTERNAL);
	ck_assert_uint_eq(b.len, 0);
	buf_done(&b);
}
END_TEST

static struct key_info test_keys[] = {
	{ { "default", 7 }, { "aws", 3 }, 2 },
	{ { "phone", 5 }, { "local", 5 }, 1 },
	{ { "big", 3 }, { "vault", 5 }, UINT32_MAX },
};

enum shape {
	SH_HELLO, SH_KEYS, SH_KEYS_EMPTY, SH_GENERATE, SH_ENCRYPT, SH_DECRYPT,
	SH_DECRYPT_EMPTY, SH_REWRAP, SH_STATS, SH_STATUS, SH_CONTEXT_HASH,
	SH_ERROR, SH_ERROR_DEFAULT_MSG, SH_TOO_LARGE_ID0, SH_PLAIN_OK,
	SH__COUNT
};

static void
response_shape(int shape, struct response *r)
{
	static const uint8_t key32[32] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
	    11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
	    27, 28, 29, 30, 31 };

	msg_response_init(r);
	r->id = 42;
	switch (shape) {
	case SH_HELLO:
		r->version = S("0.1.0");
		r->protocol = MSG_PROTOCOL_VERSION;
		r->socket = S("web");
		r->n_allow = 2;
		r->allow[0] = S("generate");
		r->allow[1] = S("encrypt");
		r->keys = test_keys;
		r->n_keys = 3;
		break;
	case SH_KEYS:
		r->keys = test_keys;
		r->n_keys = 2;
		break;
	case SH_KEYS_EMPTY:
		r->keys = test_keys;	/* set, but no entries */
		r->n_keys = 0;
		break;
	case SH_GENERATE:
		r->ciphertext = S("v1:insecure+data+A6QUFFQ0F3UUZCZ2NJQ1E=");
		r->plaintext = (struct str){ (const char *)key32, 32 };
		break;
	case SH_ENCRYPT:
	case SH_REWRAP:
		r->ciphertext = S("v2:QUJD");
		break;
	case SH_DECRYPT:
		r->plaintext = (struct str){ (const char *)key32, 32 };
		break;
	case SH_DECRYPT_EMPTY:
		r->plaintext = S("");
		break;
	case SH_STATS:
		r->body = S("{\"ops\":{}}");
		break;
	case SH_STATUS:
		r->body = S("{\"decrypt\":\"enabled\"}");
		break;
	case SH_CONTEXT_HASH:
		r->body = S("hmac-sha256:abcdef");
		break;
	case SH_ERROR:
		r->error = ERR_PERMISSION_DENIED;
		r->message = S("socket 'web' does not allow decrypt");
		break;
	case SH_ERROR_DEFAULT_MSG:
		r->error = ERR_DECRYPT_DISABLED;
		break;
	case SH_TOO_LARGE_ID0:
		r->id = 0;
		r->error = ERR_TOO_LARGE;
		break;
	case SH_PLAIN_OK:
		/* Only the id: e.g. the answer to enable_decrypt. */
		break;
	}
}

START_TEST(test_response_round_trip)
{
	struct response in, out;
	struct buf b;
	const uint8_t *fb;
	size_t fl;

	response_shape(_i, &in);
	buf_init(&b, 4096);
	ck_assert_int_eq(msg_encode_response(&b, &in), 0);
	ck_assert_int_eq(frame_parse(b.data, b.len, FRAME_MAX_DEFAULT, &fb,
	    &fl), FRAME_READY);
	ck_assert_uint_eq(fl + FRAME_HDR, b.len);
	ck_assert_msg(msg_decode_response(fb, fl, &out) == 0, "%s", out.why);
	ck_assert_uint_eq(out.id, in.id);
	ck_assert_int_eq(out.error, in.error);
	if (in.error != 0) {
		ck_assert(str_eq(out.error_code, err_code(in.error)));
		if (in.message.p != NULL)
			ck_assert(str_same(out.message, in.message));
		else
			ck_assert(str_eq(out.message, err_str(in.error)));
	} else {
		ck_assert_ptr_null(out.error_code.p);
		ck_assert_ptr_null(out.message.p);
	}
	ck_assert(str_same(out.ciphertext, in.ciphertext));
	ck_assert(str_same(out.plaintext, in.plaintext));
	ck_assert(str_same(out.version, in.version));
	ck_assert_uint_eq(out.protocol, in.protocol);
	ck_assert(str_same(out.socket, in.socket));
	ck_assert_uint_eq(out.n_allow, in.n_allow);
	for (size_t i = 0; i < in.n_allow; i++)
		ck_assert(str_same(out.allow[i], in.allow[i]));
	ck_assert_int_eq(out.keys != NULL, in.keys != NULL);
	ck_assert_uint_eq(out.n_keys, in.n_keys);
	if (in.keys != NULL)
		ck_assert(out.keys_owned);
	for (size_t i = 0; i < in.n_keys; i++) {
		ck_assert(str_same(out.keys[i].name, in.keys[i].name));
		ck_assert(str_same(out.keys[i].provider, in.keys[i].provider));
		ck_assert_uint_eq(out.keys[i].version, in.keys[i].version);
	}
	ck_assert(str_same(out.body, in.body));
	msg_response_done(&out);
	ck_assert_ptr_null(out.keys);
	buf_done(&b);
}
END_TEST

START_TEST(test_error_response_carries_nothing_else)
{
	uint8_t secret[32];
	struct response in, out;
	struct buf b;

	memset(secret, 0xab, sizeof(secret));
	msg_response_init(&in);
	in.id = 3;
	in.error = ERR_AUDIT_UNAVAILABLE;
	in.plaintext = (struct str){ (const char *)secret, sizeof(secret) };
	in.ciphertext = S("v1:QUJD");
	buf_init(&b, 4096);
	ck_assert_int_eq(msg_encode_response(&b, &in), 0);
	ck_assert(!has_marker(b.data, b.len));
	mp("{2 \"id #3 \"error {2 \"code \"audit_unavailable \"message "
	    "\"audit%20log%20unavailable");
	ck_assert_uint_eq(b.len, FRAME_HDR + body_len);
	ck_assert_mem_eq(b.data + FRAME_HDR, body, body_len);
	ck_assert_int_eq(msg_decode_response(b.data + FRAME_HDR,
	    b.len - FRAME_HDR, &out), 0);
	ck_assert_ptr_null(out.plaintext.p);
	ck_assert_ptr_null(out.ciphertext.p);
	ck_assert_int_eq(out.error, ERR_AUDIT_UNAVAILABLE);
	msg_response_done(&out);
	buf_done(&b);
}
END_TEST

START_TEST(test_nomem_goes_out_as_internal)
{
	struct response in, out;
	struct buf b;

	msg_response_init(&in);
	in.id = 8;
	in.error = ERR_NOMEM;
	buf_init(&b, 4096);
	ck_assert_int_eq(msg_encode_response(&b, &in), 0);
	ck_assert_int_eq(msg_decode_response(b.data + FRAME_HDR,
	    b.len - FRAME_HDR, &out), 0);
	ck_assert_int_eq(out.error, ERR_INTERNAL);
	ck_assert(str_eq(out.error_code, "internal"));
	msg_response_done(&out);
	buf_done(&b);
}
END_TEST

/* Response decoding, accepted forms. */
START_TEST(test_response_decode_lenient)
{
	struct response r;

	/* A code this client does not know reads as internal, kept as is. */
	mp("{3 \"id #2 \"error {2 \"code \"quota_exceeded \"hint #1 \"new #1");
	ck_assert_int_eq(msg_decode_response(body, body_len, &r), 0);
	ck_assert_int_eq(r.error, ERR_INTERNAL);
	ck_assert(str_eq(r.error_code, "quota_exceeded"));
	ck_assert_ptr_null(r.message.p);
	msg_response_done(&r);

	/* An id of 0: the answer to a frame that could not be read. */
	mp("{2 \"id #0 \"error {2 \"code \"too_large \"message \"x");
	ck_assert_int_eq(msg_decode_response(body, body_len, &r), 0);
	ck_assert_uint_eq(r.id, 0);
	ck_assert_int_eq(r.error, ERR_TOO_LARGE);
	msg_response_done(&r);

	/* Unknown fields in a key entry are ignored. */
	mp("{2 \"id #1 \"keys [1 {4 \"name \"a \"version #3 \"provider \"aws "
	    "\"since #5");
	ck_assert_int_eq(msg_decode_response(body, body_len, &r), 0);
	ck_assert_uint_eq(r.n_keys, 1);
	ck_assert_uint_eq(r.keys[0].version, 3);
	msg_response_done(&r);
	msg_response_done(NULL);
}
END_TEST

static const struct {
	const char *name;
	const char *spec;
} bad_responses[] = {
	{ "top array", "[1 #1" },
	{ "missing id", "{1 \"body \"x" },
	{ "id negative", "{1 \"id -1" },
	{ "id str", "{1 \"id \"1" },
	{ "id twice", "{2 \"id #1 \"id #1" },
	{ "error not map", "{2 \"id #1 \"error \"bad_request" },
	{ "error without code", "{2 \"id #1 \"error {1 \"message \"m" },
	{ "error code int", "{2 \"id #1 \"error {1 \"code #1" },
	{ "error message int", "{2 \"id #1 \"error {2 \"code \"busy \"message "
	    "#1" },
	{ "plaintext str", "{2 \"id #1 \"plaintext \"abc" },
	{ "ciphertext bin", "{2 \"id #1 \"ciphertext b3" },
	{ "protocol str", "{2 \"id #1 \"protocol \"1" },
	{ "protocol over u32", "{2 \"id #1 \"protocol #4294967296" },
	{ "allow not array", "{2 \"id #1 \"allow \"hello" },
	{ "allow int item", "{2 \"id #1 \"allow [1 #1" },
	{ "allow too many", "{2 \"id #1 \"allow [13 \"a \"a \"a \"a \"a \"a "
	    "\"a \"a \"a \"a \"a \"a \"a" },
	{ "keys not array", "{2 \"id #1 \"keys {0" },
	{ "keys item not map", "{2 \"id #1 \"keys [2 {3 \"name \"a \"version "
	    "#1 \"provider \"p \"b" },
	{ "keys item missing version", "{2 \"id #1 \"keys [1 {2 \"name \"a "
	    "\"provider \"p" },
	{ "keys item version str", "{2 \"id #1 \"keys [1 {3 \"name \"a "
	    "\"version \"1 \"provider \"p" },
	{ "keys item version over u32", "{2 \"id #1 \"keys [1 {3 \"name \"a "
	    "\"version #4294967296 \"provider \"p" },
	{ "keys second item bad", "{2 \"id #1 \"keys [2 {3 \"name \"a "
	    "\"version #1 \"provider \"p {3 \"name #1 \"version #1 \"provider "
	    "\"p" },
	{ "body bin", "{2 \"id #1 \"body b2" },
	{ "field name int", "{2 \"id #1 #1 #1" },
};
#define N_BAD_RESPONSES (sizeof(bad_responses) / sizeof(bad_responses[0]))

START_TEST(test_bad_response)
{
	struct response r;

	mp(bad_responses[_i].spec);
	ck_assert_msg(msg_decode_response(body, body_len, &r) ==
	    ERR_BAD_REQUEST, "%s accepted", bad_responses[_i].name);
	ck_assert_msg(r.why[0] != '\0', "%s: no reason", bad_responses[_i].name);
	/* Failure frees what was allocated (valgrind checks) and resets. */
	ck_assert_ptr_null(r.keys);
	ck_assert_uint_eq(r.n_keys, 0);
	msg_response_done(&r);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("msg");
	TCase *t;

	t = tcase_create("request_decode");
	tcase_add_loop_test(t, test_bad_request, 0, N_BAD_REQUESTS);
	tcase_add_test(t, test_reused_decoder);
	tcase_add_test(t, test_context_pairs_limit);
	tcase_add_test(t, test_empty_body);
	tcase_add_test(t, test_unknown_fields_ignored);
	tcase_add_test(t, test_context_nil_absent_empty);
	tcase_add_test(t, test_limits_accepted);
	suite_add_tcase(s, t);

	t = tcase_create("request_encode");
	tcase_add_loop_test(t, test_request_round_trip, 0, OP__COUNT);
	tcase_add_test(t, test_request_empty_plaintext);
	tcase_add_test(t, test_request_exact_bytes);
	tcase_add_test(t, test_pipelined_frames);
	tcase_add_test(t, test_encode_too_small);
	tcase_add_test(t, test_encode_bad_input);
	suite_add_tcase(s, t);

	t = tcase_create("response");
	tcase_add_loop_test(t, test_response_round_trip, 0, SH__COUNT);
	tcase_add_test(t, test_error_response_carries_nothing_else);
	tcase_add_test(t, test_nomem_goes_out_as_internal);
	tcase_add_test(t, test_response_decode_lenient);
	tcase_add_loop_test(t, test_bad_response, 0, N_BAD_RESPONSES);
	suite_add_tcase(s, t);
	return s;
}

#include "check_main.h"
