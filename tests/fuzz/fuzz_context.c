/*
 * fuzz_context.c: contexts (any bytes, including invalid UTF-8, repeated
 * keys, NULs) through context_check, context_json and context_equal.
 *
 * Input: one control byte (bit 0: style), then pairs, each
 * [key length byte][key][value length byte][value], at most
 * CONTEXT_MAX_PAIRS + 1 of them (one over the limit is refused).
 *
 * Properties:
 * - utf8_valid agrees with an independent RFC 3629 validator;
 * - context_json fails exactly when context_check does, with ERR_BAD_REQUEST
 *   or ERR_TOO_LARGE, and then leaves the output buffer as it was;
 * - the JSON is canonical: any order of the same pairs gives the same
 *   bytes, and context_equal holds between the orders;
 * - the JSON parses (jansson, strict) to an object of exactly the pairs,
 *   the ActiveSupport style has no raw < > & U+2028 U+2029, both styles
 *   decode to the same object, and its length stays within daemon/ops.c's
 *   bound (6 bytes a source byte, 6 a pair, 2 for the braces).
 */
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "context.h"
#include "err.h"
#include "fuzz.h"

/* RFC 3629 section 4, written out: the reference for utf8_valid. */
static int
ref_utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t b = s[i];
		size_t len;
		uint8_t lo = 0x80, hi = 0xbf;

		if (b <= 0x7f) {
			i++;
			continue;
		}
		if (b >= 0xc2 && b <= 0xdf) {
			len = 2;
		} else if (b >= 0xe0 && b <= 0xef) {
			len = 3;
			if (b == 0xe0)
				lo = 0xa0;	/* no overlongs */
			if (b == 0xed)
				hi = 0x9f;	/* no surrogates */
		} else if (b >= 0xf0 && b <= 0xf4) {
			len = 4;
			if (b == 0xf0)
				lo = 0x90;
			if (b == 0xf4)
				hi = 0x8f;	/* <= U+10FFFF */
		} else {
			return 0;
		}
		if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k < len; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return 0;
		i += len;
	}
	return 1;
}

static int
has_byte(struct str s, uint8_t b)
{
	return s.len > 0 && memchr(s.p, b, s.len) != NULL;
}

static int
has_bytes(const struct buf *b, const char *needle, size_t n)
{
	if (b->len < n)
		return 0;
	for (size_t i = 0; i + n <= b->len; i++)
		if (memcmp(b->data + i, needle, n) == 0)
			return 1;
	return 0;
}

/* The JSON as jansson reads it must hold exactly c's pairs. */
static void
check_parsed(const struct context *c, const struct buf *out)
{
	json_error_t jerr;
	json_t *o, *v;

	o = json_loadb((const char *)out->data, out->len,
	    JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
	    &jerr);
	FUZZ_CHECK(o != NULL && json_is_object(o));
	FUZZ_CHECK(json_object_size(o) == c->n);
	for (size_t i = 0; i < c->n; i++) {
		v = json_object_getn(o, c->pairs[i].k.p, c->pairs[i].k.len);
		FUZZ_CHECK(v != NULL && json_is_string(v));
		FUZZ_CHECK(json_string_length(v) == c->pairs[i].v.len);
		FUZZ_CHECK(c->pairs[i].v.len == 0 || memcmp(json_string_value(v),
		    c->pairs[i].v.p, c->pairs[i].v.len) == 0);
	}
	json_decref(o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t ctl = fuzz_byte(&in);
	enum ctx_style style = (ctl & 1) ? CTX_PLAIN : CTX_ACTIVESUPPORT;
	static struct context c, perm;
	struct buf out, out2, other;
	size_t total = 0, klen, vlen;
	int ck, r, nul_key = 0;
	static const char prefix[] = "kept";

	memset(&c, 0, sizeof(c));
	c.present = 1;
	/* One pair over the limit is allowed through, to be refused. */
	while (in.n > 0 && c.n < CONTEXT_MAX_PAIRS + 1) {
		struct ctx_pair p;

		p.k.p = (const char *)fuzz_take(&in, fuzz_byte(&in), &klen);
		p.k.len = klen;
		p.v.p = (const char *)fuzz_take(&in, fuzz_byte(&in), &vlen);
		p.v.len = vlen;
		if (c.n < CONTEXT_MAX_PAIRS)
			c.pairs[c.n] = p;
		c.n++;
		total += klen + vlen;
	}
	if (c.n > CONTEXT_MAX_PAIRS) {
		FUZZ_CHECK(context_check(&c) == ERR_TOO_LARGE);
		c.n = CONTEXT_MAX_PAIRS;
	}
	for (size_t i = 0; i < c.n; i++) {
		FUZZ_CHECK(utf8_valid(c.pairs[i].k.p, c.pairs[i].k.len) ==
		    ref_utf8_valid((const uint8_t *)c.pairs[i].k.p,
		    c.pairs[i].k.len));
		FUZZ_CHECK(utf8_valid(c.pairs[i].v.p, c.pairs[i].v.len) ==
		    ref_utf8_valid((const uint8_t *)c.pairs[i].v.p,
		    c.pairs[i].v.len));
		nul_key |= has_byte(c.pairs[i].k, 0);
	}

	ck = context_check(&c);
	FUZZ_CHECK(ck == 0 || ck == ERR_BAD_REQUEST);
	buf_init(&out, 6 * total + 6 * c.n + 2 + sizeof(prefix));
	FUZZ_CHECK(buf_append(&out, prefix, sizeof(prefix)) == 0);
	r = context_json(&c, style, &out);
	FUZZ_CHECK(r == ck);
	if (r != 0) {
		FUZZ_CHECK(out.len == sizeof(prefix));
		buf_done(&out);
		return 0;
	}
	FUZZ_CHECK(memcmp(out.data, prefix, sizeof(prefix)) == 0);
	buf_consume(&out, sizeof(prefix));
	FUZZ_CHECK(out.len >= 2 && out.data[0] == '{' &&
	    out.data[out.len - 1] == '}');
	if (style == CTX_ACTIVESUPPORT)
		FUZZ_CHECK(!has_bytes(&out, "<", 1) && !has_bytes(&out, ">", 1) &&
		    !has_bytes(&out, "&", 1) &&
		    !has_bytes(&out, "\xe2\x80\xa8", 3) &&
		    !has_bytes(&out, "\xe2\x80\xa9", 3));
	/* jansson keys are C strings: a NUL inside one cannot be looked up. */
	if (!nul_key)
		check_parsed(&c, &out);

	/* Reversed, then rotated by one: the same canonical bytes. */
	buf_init(&out2, out.len);
	perm = c;
	for (size_t i = 0; i < c.n; i++)
		perm.pairs[i] = c.pairs[c.n - 1 - i];
	FUZZ_CHECK(context_equal(&c, &perm));
	FUZZ_CHECK(context_json(&perm, style, &out2) == 0);
	FUZZ_CHECK(out2.len == out.len &&
	    memcmp(out2.data, out.data, out.len) == 0);
	if (c.n > 1) {
		for (size_t i = 0; i < c.n; i++)
			perm.pairs[i] = c.pairs[(i + 1) % c.n];
		buf_clear(&out2);
		FUZZ_CHECK(context_equal(&perm, &c));
		FUZZ_CHECK(context_json(&perm, style, &out2) == 0);
		FUZZ_CHECK(out2.len == out.len &&
		    memcmp(out2.data, out.data, out.len) == 0);
		/* Dropping a pair makes a different context. */
		perm.n--;
		FUZZ_CHECK(!context_equal(&perm, &c));
	}
	buf_done(&out2);

	/* The other style: the same pairs once decoded. */
	buf_init(&other, 6 * total + 6 * c.n + 2);
	FUZZ_CHECK(context_json(&c, style == CTX_PLAIN ? CTX_ACTIVESUPPORT :
	    CTX_PLAIN, &other) == 0);
	if (!nul_key)
		check_parsed(&c, &other);
	buf_done(&other);
	buf_done(&out);
	return 0;
}
