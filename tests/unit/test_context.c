/*
 * test_context.c: canonical context bytes against the kms_encrypted vectors
 * and Ruby's ordering, UTF-8 validation, equality.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "b64.h"
#include "buf.h"
#include "context.h"
#include "err.h"

#define VECTORS TEST_SRCDIR "/../vectors/kms_encrypted_test_provider.json"

/* Vectors that a string-keyed wire context cannot express: Ruby sorts a
 * symbol key after every string key, and kmsd only ever has string keys. */
static const char *const skip_vectors[] = {
	"mixed string/symbol keys (string keys sort first)",
};

static json_t *vectors;

static void
load_vectors(void)
{
	json_error_t e;
	json_t *root = json_load_file(VECTORS, 0, &e);

	ck_assert_msg(root != NULL, "%s: %s", VECTORS, e.text);
	vectors = json_incref(json_object_get(root, "vectors"));
	json_decref(root);
	ck_assert(json_is_array(vectors));
	ck_assert_uint_ge(json_array_size(vectors), 8);
}

static void
free_vectors(void)
{
	json_decref(vectors);
	vectors = NULL;
}

static int
is_skipped(const char *name)
{
	for (size_t i = 0; i < sizeof(skip_vectors) / sizeof(skip_vectors[0]);
	    i++)
		if (strcmp(name, skip_vectors[i]) == 0)
			return 1;
	return 0;
}

static const char *
vstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	ck_assert_msg(s != NULL, "vector field %s missing", k);
	return s;
}

/* Fill c from the plain context JSON of a vector, pairs in reverse order so
 * that the sort has work to do. The strings point into the json_t. */
static void
context_from_json(const char *json, json_t **keep, struct context *c)
{
	json_error_t e;
	const char *k;
	json_t *v;
	size_t n;

	*keep = json_loads(json, 0, &e);
	ck_assert_msg(*keep != NULL, "%s", e.text);
	n = json_object_size(*keep);
	ck_assert_uint_le(n, CONTEXT_MAX_PAIRS);
	c->present = 1;
	c->n = n;
	json_object_foreach(*keep, k, v) {
		n--;
		c->pairs[n].k = (struct str){ k, strlen(k) };
		c->pairs[n].v = (struct str){ json_string_value(v),
		    json_string_length(v) };
	}
}

static void
assert_buf(const struct buf *b, const char *want, size_t wlen,
    const char *what)
{
	ck_assert_msg(b->len == wlen && (wlen == 0 ||
	    memcmp(b->data, want, wlen) == 0), "%s: got '%.*s' want '%s'", what,
	    (int)b->len, b->data != NULL ? (const char *)b->data : "", want);
}

/* One vector: plain and ActiveSupport JSON, and encode64 of each; the
 * encode64 text is also the tail of the test provider's ciphertext. */
static void
check_style(const struct context *c, enum ctx_style style, const char *json,
    const char *enc64, const char *cipher_hex, const char *name)
{
	struct buf j, e, tail;
	size_t hl = strlen(cipher_hex);

	buf_init(&j, 4096);
	buf_init(&e, 8192);
	buf_init(&tail, 8192);
	ck_assert_int_eq(context_json(c, style, &j), 0);
	assert_buf(&j, json, strlen(json), name);
	ck_assert_int_eq(b64_encode_lines(&e, j.data, j.len), 0);
	assert_buf(&e, enc64, strlen(enc64), name);
	/* provider ciphertext = PREFIX ':' b64(plaintext) ':' encode64 */
	ck_assert_int_eq(buf_append_byte(&tail, ':'), 0);
	ck_assert_int_eq(buf_append(&tail, e.data, e.len), 0);
	ck_assert_uint_ge(hl, tail.len * 2);
	for (size_t i = 0; i < tail.len; i++) {
		unsigned x;

		ck_assert_int_eq(sscanf(cipher_hex + hl - 2 * tail.len + 2 * i,
		    "%2x", &x), 1);
		ck_assert_msg(x == tail.data[i], "%s: ciphertext byte %zu",
		    name, i);
	}
	buf_done(&j);
	buf_done(&e);
	buf_done(&tail);
}

START_TEST(test_vectors)
{
	size_t checked = 0, skipped = 0, i;
	json_t *v;

	json_array_foreach(vectors, i, v) {
		const char *name = vstr(v, "name");
		json_t *as = json_object_get(v, "activesupport");
		json_t *keep = NULL;
		struct context c;

		if (is_skipped(name)) {
			skipped++;
			continue;
		}
		if (strcmp(vstr(v, "context_ruby"), "nil") == 0) {
			struct buf b;

			/* No context: nothing at all is written. */
			memset(&c, 0, sizeof(c));
			buf_init(&b, 64);
			ck_assert_int_eq(context_json(&c, CTX_ACTIVESUPPORT,
			    &b), 0);
			ck_assert_uint_eq(b.len, 0);
			buf_done(&b);
			checked++;
			continue;
		}
		context_from_json(vstr(v, "context_json"), &keep, &c);
		check_style(&c, CTX_PLAIN, vstr(v, "context_json"),
		    vstr(v, "context_encode64"),
		    vstr(v, "provider_ciphertext_hex"), name);
		if (json_is_object(as))
			check_style(&c, CTX_ACTIVESUPPORT,
			    vstr(as, "context_json"),
			    vstr(as, "context_encode64"),
			    vstr(as, "provider_ciphertext_hex"), name);
		else
			check_style(&c, CTX_ACTIVESUPPORT,
			    vstr(v, "context_json"),
			    vstr(v, "context_encode64"),
			    vstr(v, "provider_ciphertext_hex"), name);
		json_decref(keep);
		checked++;
	}
	ck_assert_uint_eq(skipped,
	    sizeof(skip_vectors) / sizeof(skip_vectors[0]));
	ck_assert_uint_ge(checked, 7);
}
END_TEST

static void
ctx_set(struct context *c, const char *const *kv, size_t n)
{
	memset(c, 0, sizeof(*c));
	c->present = 1;
	c->n = n;
	for (size_t i = 0; i < n; i++) {
		c->pairs[i].k = (struct str){ kv[2 * i], strlen(kv[2 * i]) };
		c->pairs[i].v = (struct str){ kv[2 * i + 1],
		    strlen(kv[2 * i + 1]) };
	}
}

static void
json_is(const struct context *c, enum ctx_style style, const char *want)
{
	struct buf b;

	buf_init(&b, 4096);
	ck_assert_int_eq(context_json(c, style, &b), 0);
	assert_buf(&b, want, strlen(want), want);
	buf_done(&b);
}

START_TEST(test_sort_design_example)
{
	static const char *const kv[] = { "ab", "4", "a", "1", "a!", "2",
	    "a b", "3" };
	struct context c;

	ctx_set(&c, kv, 4);
	json_is(&c, CTX_ACTIVESUPPORT, "{\"a b\":\"3\",\"a!\":\"2\",\"a\":\"1\","
	    "\"ab\":\"4\"}");
}
END_TEST

/* The order Ruby 3.1.2 gives ([k, "1"] pairs, sort_by { |p| p.to_s }),
 * produced by running it: escapes of '"', '\', "#{", "#$", controls, DEL,
 * C1 controls but U+0085, U+2028, noncharacters all move a key. */
static const char *const ruby_order[] = {
	"\x41",				/* "A" */
	"\x61\x20\x62",			/* "a b" */
	"\x61\x21",			/* "a!" */
	"\x61",				/* "a" */
	"\x61\x23",			/* "a#" */
	"\x61\x23\x61",			/* "a#a" */
	"\x61\x24",			/* "a$" */
	"\x61\x22",			/* "a\"" */
	"\x61\x23\x24",			/* "a\#$" */
	"\x61\x23\x7b",			/* "a\#{" */
	"\x61\x5c",			/* "a\\" */
	"\x61\x1b",			/* "a\e" */
	"\x61\x0a",			/* "a\n" */
	"\x61\x09",			/* "a\t" */
	"\x61\x01",			/* "a\u0001" */
	"\x61\x1f",			/* "a\u001F" */
	"\x61\x7f",			/* "a\u007F" */
	"\x61\xc2\x80",			/* "a\u0080" */
	"\x61\xe2\x80\xa8",		/* "a\u2028" */
	"\x61\xef\xb7\x90",		/* "a\uFDD0" */
	"\x61\xf0\x9f\xbf\xbe",		/* "a\u{1FFFE}" */
	"\x61\x62",			/* "ab" */
	"\x61\xc2\x85",			/* "a<U+0085>" (printable to Ruby) */
	"\x61\xc2\xa0",			/* "a<U+00A0>" */
	"\x61\xc3\xa9",			/* "aé" */
	"\x61\xf0\x9f\x98\x80",		/* "a😀" */
};
#define N_RUBY_ORDER (sizeof(ruby_order) / sizeof(ruby_order[0]))

/* Appends the JSON of s as the json gem writes it (plain style). */
static void
json_str_plain(struct buf *b, const char *s)
{
	char esc[8];

	buf_append_byte(b, '"');
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		switch (ch) {
		case '"': buf_append_str(b, "\\\""); break;
		case '\\': buf_append_str(b, "\\\\"); break;
		case '\n': buf_append_str(b, "\\n"); break;
		case '\t': buf_append_str(b, "\\t"); break;
		default:
			if (ch < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04x", ch);
				buf_append_str(b, esc);
			} else {
				buf_append_byte(b, ch);
			}
		}
	}
	buf_append_byte(b, '"');
}

START_TEST(test_sort_ruby_order)
{
	struct context c;
	struct buf want, got;

	/* Feed the keys in a scrambled order: stride 7 is coprime to 26. */
	memset(&c, 0, sizeof(c));
	c.present = 1;
	c.n = N_RUBY_ORDER;
	for (size_t i = 0; i < N_RUBY_ORDER; i++) {
		const char *k = ruby_order[(i * 7) % N_RUBY_ORDER];

		c.pairs[i].k = (struct str){ k, strlen(k) };
		c.pairs[i].v = (struct str){ "1", 1 };
	}
	buf_init(&want, 4096);
	buf_append_byte(&want, '{');
	for (size_t i = 0; i < N_RUBY_ORDER; i++) {
		if (i > 0)
			buf_append_byte(&want, ',');
		json_str_plain(&want, ruby_order[i]);
		buf_append_str(&want, ":\"1\"");
	}
	buf_append_byte(&want, '}');
	buf_init(&got, 4096);
	ck_assert_int_eq(context_json(&c, CTX_PLAIN, &got), 0);
	assert_buf(&got, (const char *)want.data, want.len, "ruby order");
	buf_done(&want);
	buf_done(&got);
}
END_TEST

static const struct {
	const char *k, *v;
	enum ctx_style style;
	const char *want;
} escapes[] = {
	{ "k", "\x01\x1f\x0b\x7f", CTX_PLAIN,
	    "{\"k\":\"\\u0001\\u001f\\u000b\x7f\"}" },
	{ "k", "\x1a\x1b\x1c", CTX_ACTIVESUPPORT,
	    "{\"k\":\"\\u001a\\u001b\\u001c\"}" },
	{ "k", "\b\f\n\r\t", CTX_PLAIN, "{\"k\":\"\\b\\f\\n\\r\\t\"}" },
	{ "k", "\"\\/", CTX_ACTIVESUPPORT, "{\"k\":\"\\\"\\\\/\"}" },
	{ "k", "<>&", CTX_PLAIN, "{\"k\":\"<>&\"}" },
	{ "k", "<>&", CTX_ACTIVESUPPORT,
	    "{\"k\":\"\\u003c\\u003e\\u0026\"}" },
	{ "k", "\xe2\x80\xa8\xe2\x80\xa9", CTX_PLAIN,
	    "{\"k\":\"\xe2\x80\xa8\xe2\x80\xa9\"}" },
	{ "k", "\xe2\x80\xa8\xe2\x80\xa9", CTX_ACTIVESUPPORT,
	    "{\"k\":\"\\u2028\\u2029\"}" },
	{ "<k>", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", CTX_ACTIVESUPPORT,
	    "{\"\\u003ck\\u003e\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}" },
	{ "", "", CTX_ACTIVESUPPORT, "{\"\":\"\"}" },
	/* Runs of plain ASCII around escapes (copied a run at a time). */
	{ "model_name", "User <a@b> & \"q\" \\ tail\n", CTX_ACTIVESUPPORT,
	    "{\"model_name\":\"User \\u003ca@b\\u003e \\u0026 \\\"q\\\" "
	    "\\\\ tail\\n\"}" },
	{ "model_name", "User <a@b> & tail", CTX_PLAIN,
	    "{\"model_name\":\"User <a@b> & tail\"}" },
};
#define N_ESCAPES (sizeof(escapes) / sizeof(escapes[0]))

START_TEST(test_escapes)
{
	const char *kv[2] = { escapes[_i].k, escapes[_i].v };
	struct context c;

	ctx_set(&c, kv, 1);
	json_is(&c, escapes[_i].style, escapes[_i].want);
}
END_TEST

START_TEST(test_nul_byte)
{
	struct context c;

	/* A NUL is valid UTF-8 and becomes \u0000. */
	memset(&c, 0, sizeof(c));
	c.present = 1;
	c.n = 1;
	c.pairs[0].k = (struct str){ "k", 1 };
	c.pairs[0].v = (struct str){ "a\0b", 3 };
	json_is(&c, CTX_PLAIN, "{\"k\":\"a\\u0000b\"}");
}
END_TEST

static const struct {
	const char *s;
	int valid;
} utf8[] = {
	{ "", 1 },
	{ "plain ascii", 1 },
	{ "\x7f", 1 },
	{ "\xc2\x80", 1 },		/* U+0080 */
	{ "\xc3\xa9", 1 },
	{ "\xdf\xbf", 1 },		/* U+07FF */
	{ "\xe0\xa0\x80", 1 },		/* U+0800 */
	{ "\xe2\x82\xac", 1 },
	{ "\xed\x9f\xbf", 1 },		/* U+D7FF */
	{ "\xee\x80\x80", 1 },		/* U+E000 */
	{ "\xef\xbf\xbf", 1 },		/* U+FFFF */
	{ "\xf0\x90\x80\x80", 1 },	/* U+10000 */
	{ "\xf4\x8f\xbf\xbf", 1 },	/* U+10FFFF */
	{ "\x80", 0 },			/* stray continuation */
	/* Past the word-at-a-time ASCII scan (8 bytes at a time). */
	{ "0123456789abcdef\xc3\xa9 and more ascii", 1 },
	{ "01234567\xed\xa0\x80", 0 },	/* surrogate after 8 */
	{ "0123456789abcdefg\x80", 0 },
	{ "012345678901234\xc3", 0 },	/* cut off after 15 */
	{ "a\xbf", 0 },
	{ "\xc0\x80", 0 },		/* overlong NUL */
	{ "\xc1\xbf", 0 },		/* overlong */
	{ "\xe0\x80\xaf", 0 },		/* overlong '/' */
	{ "\xe0\x9f\xbf", 0 },		/* overlong U+07FF */
	{ "\xf0\x80\x80\xaf", 0 },	/* overlong */
	{ "\xf0\x8f\xbf\xbf", 0 },	/* overlong U+FFFF */
	{ "\xed\xa0\x80", 0 },		/* U+D800 surrogate */
	{ "\xed\xbf\xbf", 0 },		/* U+DFFF surrogate */
	{ "\xf4\x90\x80\x80", 0 },	/* U+110000 */
	{ "\xf5\x80\x80\x80", 0 },
	{ "\xff", 0 },
	{ "\xfe", 0 },
	{ "\xc3", 0 },			/* truncated */
	{ "\xe2\x82", 0 },
	{ "\xf0\x9f\x98", 0 },
	{ "\xe2\x28\xa1", 0 },		/* bad continuation */
	{ "ok\xc3\x28", 0 },
};
#define N_UTF8 (sizeof(utf8) / sizeof(utf8[0]))

START_TEST(test_utf8)
{
	const char *s = utf8[_i].s;
	const char *kv[2] = { "k", s };
	struct context c;
	struct buf b;
	int want = utf8[_i].valid;

	ck_assert_int_eq(utf8_valid(s, strlen(s)), want);
	/* In a value and in a key, context_check and context_json agree. */
	ctx_set(&c, kv, 1);
	ck_assert_int_eq(context_check(&c), want ? 0 : ERR_BAD_REQUEST);
	buf_init(&b, 256);
	ck_assert_int_eq(buf_append_str(&b, "pre"), 0);
	ck_assert_int_eq(context_json(&c, CTX_ACTIVESUPPORT, &b),
	    want ? 0 : ERR_BAD_REQUEST);
	if (!want) {
		ck_assert_uint_eq(b.len, 3);
		ck_assert_mem_eq(b.data, "pre", 3);
	}
	kv[0] = s;
	kv[1] = "v";
	ctx_set(&c, kv, 1);
	ck_assert_int_eq(context_check(&c), want ? 0 : ERR_BAD_REQUEST);
	buf_done(&b);
}
END_TEST

START_TEST(test_duplicate_keys)
{
	static const char *const kv[] = { "a", "1", "b", "2", "a", "3" };
	struct context c;
	struct buf b;

	ctx_set(&c, kv, 3);
	ck_assert_int_eq(context_check(&c), ERR_BAD_REQUEST);
	buf_init(&b, 256);
	ck_assert_int_eq(context_json(&c, CTX_PLAIN, &b), ERR_BAD_REQUEST);
	ck_assert_uint_eq(b.len, 0);
	/* Same value does not make it acceptable. */
	c.pairs[2].v = c.pairs[0].v;
	ck_assert_int_eq(context_check(&c), ERR_BAD_REQUEST);
	/* A key that is a prefix of another is not a duplicate. */
	c.pairs[2].k = (struct str){ "ab", 2 };
	ck_assert_int_eq(context_check(&c), 0);
	buf_done(&b);
}
END_TEST

START_TEST(test_absent_vs_empty)
{
	struct context absent, empty;
	struct buf b;

	memset(&absent, 0, sizeof(absent));
	memset(&empty, 0, sizeof(empty));
	empty.present = 1;
	buf_init(&b, 64);
	ck_assert_int_eq(context_json(&absent, CTX_ACTIVESUPPORT, &b), 0);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(context_json(&empty, CTX_ACTIVESUPPORT, &b), 0);
	assert_buf(&b, "{}", 2, "empty");
	ck_assert_int_eq(context_check(&absent), 0);
	ck_assert_int_eq(context_check(&empty), 0);
	ck_assert(!context_equal(&absent, &empty));
	ck_assert(!context_equal(&empty, &absent));
	ck_assert(context_equal(&absent, &absent));
	ck_assert(context_equal(&empty, &empty));
	buf_done(&b);
}
END_TEST

START_TEST(test_equal)
{
	static const char *const x[] = { "a", "1", "b", "2" };
	static const char *const y[] = { "b", "2", "a", "1" };
	static const char *const z[] = { "a", "1", "b", "3" };
	static const char *const w[] = { "a", "1", "c", "2" };
	struct context a, b;

	ctx_set(&a, x, 2);
	ctx_set(&b, y, 2);
	ck_assert(context_equal(&a, &b));
	ctx_set(&b, z, 2);
	ck_assert(!context_equal(&a, &b));
	ctx_set(&b, w, 2);
	ck_assert(!context_equal(&a, &b));
	ctx_set(&b, x, 1);
	ck_assert(!context_equal(&a, &b));
	ck_assert(!context_equal(&b, &a));
}
END_TEST

START_TEST(test_too_many_pairs_and_cap)
{
	static const char *const kv[] = { "model_id", "1", "model_name",
	    "User" };
	struct context c;
	struct buf b;

	ctx_set(&c, kv, 2);
	/* A cap one byte short of the JSON fails cleanly. */
	buf_init(&b, strlen("{\"model_id\":\"1\",\"model_name\":\"User\"}") -
	    1);
	ck_assert_int_eq(context_json(&c, CTX_ACTIVESUPPORT, &b),
	    ERR_TOO_LARGE);
	ck_assert_uint_eq(b.len, 0);
	buf_done(&b);
	c.n = CONTEXT_MAX_PAIRS + 1;
	ck_assert_int_eq(context_check(&c), ERR_TOO_LARGE);
}
END_TEST

START_TEST(test_64_pairs)
{
	static char keys[CONTEXT_MAX_PAIRS][8];
	struct context c;
	struct buf b;

	memset(&c, 0, sizeof(c));
	c.present = 1;
	c.n = CONTEXT_MAX_PAIRS;
	for (size_t i = 0; i < CONTEXT_MAX_PAIRS; i++) {
		/* Reverse order in, so k00 must come out first. */
		snprintf(keys[i], sizeof(keys[i]), "k%02zu",
		    CONTEXT_MAX_PAIRS - 1 - i);
		c.pairs[i].k = (struct str){ keys[i], 3 };
		c.pairs[i].v = (struct str){ "", 0 };
	}
	buf_init(&b, 4096);
	ck_assert_int_eq(context_json(&c, CTX_PLAIN, &b), 0);
	ck_assert_uint_eq(b.len, 2 + CONTEXT_MAX_PAIRS * 9 - 1);
	ck_assert_mem_eq(b.data, "{\"k00\":\"\",\"k01\":\"\"", 18);
	ck_assert_mem_eq(b.data + b.len - 10, ",\"k63\":\"\"}", 10);
	buf_done(&b);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("context");
	TCase *t;

	t = tcase_create("vectors");
	tcase_add_unchecked_fixture(t, load_vectors, free_vectors);
	tcase_add_test(t, test_vectors);
	suite_add_tcase(s, t);

	t = tcase_create("order");
	tcase_add_test(t, test_sort_design_example);
	tcase_add_test(t, test_sort_ruby_order);
	tcase_add_test(t, test_64_pairs);
	suite_add_tcase(s, t);

	t = tcase_create("escapes");
	tcase_add_loop_test(t, test_escapes, 0, N_ESCAPES);
	tcase_add_test(t, test_nul_byte);
	suite_add_tcase(s, t);

	t = tcase_create("checks");
	tcase_add_loop_test(t, test_utf8, 0, N_UTF8);
	tcase_add_test(t, test_duplicate_keys);
	tcase_add_test(t, test_absent_vs_empty);
	tcase_add_test(t, test_equal);
	tcase_add_test(t, test_too_many_pairs_and_cap);
	suite_add_tcase(s, t);
	return s;
}

#include "check_main.h"
