/*
 * context.h: encryption contexts and their canonical bytes (DESIGN 3.3).
 *
 * A context is a list of string pairs, absent (NULL context) or present and
 * possibly empty. The canonical JSON is what a Rails application running
 * kms_encrypted produces: pairs sorted by Ruby's inspect text of the key
 * (compare each key's inspect form followed by '"'), compact JSON, the json
 * gem's escapes, plus ActiveSupport's < > & U+2028 U+2029 escapes unless the
 * plain style is asked for. Invalid UTF-8 is refused.
 *
 * No I/O, no logging.
 */
#ifndef KMSD_CONTEXT_H
#define KMSD_CONTEXT_H

#include <stddef.h>

#include "buf.h"

/* Most pairs in one context: kms_encrypted contexts carry two or three;
 * a bound keeps sorting and decoding trivially cheap. */
#define CONTEXT_MAX_PAIRS 64

struct ctx_pair {
	struct str k;
	struct str v;
};

struct context {
	int present;		/* 0 = no context (NULL), 1 = a map, maybe empty */
	size_t n;
	struct ctx_pair pairs[CONTEXT_MAX_PAIRS];
};

enum ctx_style {
	CTX_ACTIVESUPPORT = 0,	/* the default: what Rails applications wrote */
	CTX_PLAIN = 1,		/* json gem alone ([kmsd] context_json = plain) */
};

/* Append the canonical JSON of c to out. ERR_BAD_REQUEST when a key or value
 * is not valid UTF-8 or two keys are equal. An absent context writes
 * nothing (callers check present). */
int context_json(const struct context *c, enum ctx_style style,
    struct buf *out);

/* 0 when every key and value is valid UTF-8 and no key repeats. */
int context_check(const struct context *c);
/* context_json for a context that already passed context_check (or the
 * request decoder's same checks): skips them. */
int context_json_valid(const struct context *c, enum ctx_style style,
    struct buf *out);

/* 1 when a and b hold the same pairs (in any order) and presence. */
int context_equal(const struct context *a, const struct context *b);

/* 1 when the bytes are valid UTF-8 (no overlongs, no surrogates). */
int utf8_valid(const char *p, size_t n);

#endif
