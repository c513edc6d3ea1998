/*
 * context.c: encryption contexts and their canonical JSON (see context.h,
 * DESIGN 3.3, PROVIDERS.md E4).
 *
 * The bytes must equal what kms_encrypted produces inside a Rails process,
 * because they are the AAD (Google, local) or part of the stored value
 * (Vault, test): one differing byte makes old data undecryptable. So the
 * order reproduces Ruby's `sort_by { |k| k.to_s }` over [key, value] pairs,
 * i.e. the bytes of String#inspect of each key followed by the closing '"',
 * and the escapes reproduce the json gem plus ActiveSupport.
 *
 * Ruby 3.1 String#inspect (UTF-8 string, UTF-8 default external, as in
 * Rails), checked by running it: '"' and '\' get a backslash; '#' gets one
 * when '{', '$' or '@' follows; \n \r \t \f \v \b \a \e use those short
 * forms; code points that are not printable become \uXXXX (upper-case hex,
 * \u{XXXXX} above U+FFFF): U+0000-U+001F, U+007F, U+0080-U+009F except
 * U+0085, U+2028, U+2029 and unassigned code points. Of the unassigned ones
 * only the noncharacters are recognised here; other code points unassigned in
 * Unicode 13.0 are treated as printable, which changes the order only for
 * keys that contain one and share the prefix before it with another key.
 *
 * No allocation: pairs are sorted through an index array on the stack and
 * keys are compared by generating their inspect bytes on the fly.
 */
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

#include "context.h"
#include "err.h"
#include "table.h"

/* Decode one UTF-8 sequence at p[0..n): returns its length (1-4) and sets
 * *cp, or 0 when it is invalid (overlong, surrogate, > U+10FFFF, cut off,
 * stray continuation byte). */
static size_t
context_utf8_next(const uint8_t *p, size_t n, uint32_t *cp)
{
	uint32_t c = p[0], min;
	size_t len;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		/* 0x80-0xc1 (continuation, overlong lead), 0xf5-0xff */
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

int
utf8_valid(const char *p, size_t n)
{
	const uint8_t *u = (const uint8_t *)p;
	size_t i = 0, k;
	uint32_t cp;

	while (i < n) {
		/* ASCII a word at a time: the common case by far. */
		while (n - i >= sizeof(uint64_t)) {
			uint64_t w;

			memcpy(&w, u + i, sizeof(w));
			if ((w & UINT64_C(0x8080808080808080)) != 0)
				break;
			i += sizeof(w);
		}
		if (i == n)
			break;
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		if ((k = context_utf8_next(u + i, n - i, &cp)) == 0)
			return 0;
		i += k;
	}
	return 1;
}

static int
context_str_same(struct str a, struct str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

int
context_check(const struct context *c)
{
	if (!c->present)
		return 0;
	if (c->n > CONTEXT_MAX_PAIRS)
		return ERR_TOO_LARGE;
	for (size_t i = 0; i < c->n; i++) {
		const struct ctx_pair *p = &c->pairs[i];

		if ((p->k.len > 0 && p->k.p == NULL) ||
		    (p->v.len > 0 && p->v.p == NULL))
			return ERR_BAD_REQUEST;
		if (!utf8_valid(p->k.p, p->k.len) ||
		    !utf8_valid(p->v.p, p->v.len))
			return ERR_BAD_REQUEST;
		for (size_t j = 0; j < i; j++)
			if (context_str_same(c->pairs[j].k, p->k))
				return ERR_BAD_REQUEST;
	}
	return 0;
}

/* 1 when every pair of a is in b with the same value. */
static int
context_subset(const struct context *a, const struct context *b)
{
	for (size_t i = 0; i < a->n; i++) {
		int found = 0;

		for (size_t j = 0; j < b->n && !found; j++)
			found = context_str_same(a->pairs[i].k, b->pairs[j].k) &&
			    context_str_same(a->pairs[i].v, b->pairs[j].v);
		if (!found)
			return 0;
	}
	return 1;
}

int
context_equal(const struct context *a, const struct context *b)
{
	if (a->present != b->present)
		return 0;
	if (!a->present)
		return 1;
	return a->n == b->n && context_subset(a, b) && context_subset(b, a);
}

/*
 * Ruby inspect text of a key, produced one byte at a time, followed by the
 * '"' that closes it. The key is valid UTF-8 (checked before sorting).
 */
struct context_insp {
	const uint8_t *p;
	size_t n, i;
	char pend[12];		/* longest escape: \u{10FFFF} */
	size_t pn, pi;
	int closed;
};

/* 1 when Ruby 3.1's inspect escapes code point c as \u (see the top). */
static int
context_ruby_unprintable(uint32_t c)
{
	if (c < 0x20 || c == 0x7f)
		return 1;
	if (c >= 0x80 && c <= 0x9f && c != 0x85)
		return 1;
	if (c == 0x2028 || c == 0x2029)
		return 1;
	/* Noncharacters: U+FDD0..U+FDEF and the last two of every plane. */
	if ((c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) == 0xfffe)
		return 1;
	return 0;
}

static int
context_insp_next(struct context_insp *s)
{
	static const char hex[] = "0123456789ABCDEF";
	uint32_t c;
	size_t k;
	char sc = 0;

	if (s->pi < s->pn)
		return (uint8_t)s->pend[s->pi++];
	if (s->i >= s->n) {
		if (s->closed)
			return -1;
		s->closed = 1;
		return '"';
	}
	k = context_utf8_next(s->p + s->i, s->n - s->i, &c);
	if (k == 0) {
		/* Not reached for checked keys; keep the raw byte. */
		return s->p[s->i++];
	}
	s->pn = s->pi = 0;
	switch (c) {
	case '"': sc = '"'; break;
	case '\\': sc = '\\'; break;
	case '\n': sc = 'n'; break;
	case '\r': sc = 'r'; break;
	case '\t': sc = 't'; break;
	case '\f': sc = 'f'; break;
	case '\v': sc = 'v'; break;
	case '\b': sc = 'b'; break;
	case '\a': sc = 'a'; break;
	case 0x1b: sc = 'e'; break;
	case '#':
		if (s->i + 1 < s->n && (s->p[s->i + 1] == '{' ||
		    s->p[s->i + 1] == '$' || s->p[s->i + 1] == '@'))
			sc = '#';
		break;
	default:
		break;
	}
	if (sc != 0) {
		s->i += k;
		s->pend[s->pn++] = sc;
		return '\\';
	}
	if (!context_ruby_unprintable(c)) {
		/* Printable: its bytes as they are, one at a time. */
		memcpy(s->pend, s->p + s->i, k);
		s->pn = k;
		s->i += k;
		return (uint8_t)s->pend[s->pi++];
	}
	s->i += k;
	s->pend[s->pn++] = 'u';
	if (c < 0x10000) {
		for (int sh = 12; sh >= 0; sh -= 4)
			s->pend[s->pn++] = hex[(c >> sh) & 0xf];
	} else {
		int sh = 20;

		s->pend[s->pn++] = '{';
		while (sh > 0 && ((c >> sh) & 0xf) == 0)
			sh -= 4;
		for (; sh >= 0; sh -= 4)
			s->pend[s->pn++] = hex[(c >> sh) & 0xf];
		s->pend[s->pn++] = '}';
	}
	return '\\';
}

/* What each byte is to the context's two texts:
 * CTX_STOP: it ends a run the JSON writer copies as it is, in both styles
 * (control bytes, '"', '\\'; non-ASCII too, handled a character at a
 * time); CTX_STOP_AS: it ends one with ActiveSupport's escapes only;
 * CTX_INSPECT: Ruby's inspect does not leave it as it is (anything but
 * printable ASCII other than '"', '\\' and '#'). */
#define CTX_STOP	0x01
#define CTX_STOP_AS	0x02
#define CTX_INSPECT	0x04
#define CTX_CLASS(c)							\
	(((c) < 0x20 || (c) >= 0x80 || (c) == '"' || (c) == '\\' ?	\
	    CTX_STOP : 0) |						\
	 ((c) == '<' || (c) == '>' || (c) == '&' ? CTX_STOP_AS : 0) |	\
	 ((c) < 0x20 || (c) >= 0x7f || (c) == '"' || (c) == '\\' ||	\
	    (c) == '#' ? CTX_INSPECT : 0))
static const uint8_t context_class[256] = { TABLE_256(CTX_CLASS) };

/* 1 when Ruby's inspect leaves every byte of s as it is. */
static int
context_key_plain(struct str s)
{
	for (size_t i = 0; i < s.len; i++)
		if (context_class[(uint8_t)s.p[i]] & CTX_INSPECT)
			return 0;
	return 1;
}

/* Bytewise comparison of the inspect texts of two keys (each followed by
 * '"'), the order of Ruby's sort_by over string-keyed pairs. */
static int
context_key_cmp(struct str a, struct str b)
{
	if (context_key_plain(a) && context_key_plain(b)) {
		/* The inspect texts are the bytes themselves then '"'. */
		size_t n = a.len < b.len ? a.len : b.len;
		int d = n > 0 ? memcmp(a.p, b.p, n) : 0;

		if (d != 0)
			return d < 0 ? -1 : 1;
		if (a.len == b.len)
			return 0;
		/* One is a prefix: its '"' meets the other's next byte. */
		if (a.len < b.len)
			return '"' < (uint8_t)b.p[n] ? -1 : 1;
		return (uint8_t)a.p[n] < '"' ? -1 : 1;
	}
	struct context_insp x = { (const uint8_t *)a.p, a.len, 0, { 0 }, 0, 0, 0 };
	struct context_insp y = { (const uint8_t *)b.p, b.len, 0, { 0 }, 0, 0, 0 };

	for (;;) {
		int ca = context_insp_next(&x), cb = context_insp_next(&y);

		if (ca != cb)
			return ca < cb ? -1 : 1;
		if (ca < 0)
			return 0;
	}
}

/* Append s as a JSON string with the json gem's escapes, plus
 * ActiveSupport's unless style is CTX_PLAIN. */
static int
context_json_str(struct buf *out, struct str s, enum ctx_style style)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = (const uint8_t *)s.p;
	size_t i = 0, k;
	uint32_t c;
	int r;

	const uint8_t stop = style == CTX_ACTIVESUPPORT ?
	    CTX_STOP | CTX_STOP_AS : CTX_STOP;

	if ((r = buf_append_byte(out, '"')) != 0)
		return r;
	while (i < s.len) {
		char esc[7];
		size_t en = 0, run = i;

		/* A run of ASCII that needs no escape goes out in one copy. */
		while (run < s.len && (context_class[p[run]] & stop) == 0)
			run++;
		if (run > i) {
			if ((r = buf_append(out, p + i, run - i)) != 0)
				return r;
			i = run;
			continue;
		}
		if ((k = context_utf8_next(p + i, s.len - i, &c)) == 0)
			return ERR_BAD_REQUEST;
		switch (c) {
		case '"': esc[en++] = '\\'; esc[en++] = '"'; break;
		case '\\': esc[en++] = '\\'; esc[en++] = '\\'; break;
		case '\b': esc[en++] = '\\'; esc[en++] = 'b'; break;
		case '\f': esc[en++] = '\\'; esc[en++] = 'f'; break;
		case '\n': esc[en++] = '\\'; esc[en++] = 'n'; break;
		case '\r': esc[en++] = '\\'; esc[en++] = 'r'; break;
		case '\t': esc[en++] = '\\'; esc[en++] = 't'; break;
		default:
			if (c < 0x20 || (style == CTX_ACTIVESUPPORT &&
			    (c == '<' || c == '>' || c == '&' ||
			    c == 0x2028 || c == 0x2029))) {
				esc[en++] = '\\';
				esc[en++] = 'u';
				for (int sh = 12; sh >= 0; sh -= 4)
					esc[en++] = hex[(c >> sh) & 0xf];
			}
			break;
		}
		if (en > 0)
			r = buf_append(out, esc, en);
		else
			r = buf_append(out, p + i, k);
		if (r != 0)
			return r;
		i += k;
	}
	return buf_append_byte(out, '"');
}

int
context_json(const struct context *c, enum ctx_style style, struct buf *out)
{
	int r;

	if (c->present && (r = context_check(c)) != 0)
		return r;
	return context_json_valid(c, style, out);
}

int
context_json_valid(const struct context *c, enum ctx_style style,
    struct buf *out)
{
	size_t idx[CONTEXT_MAX_PAIRS];
	size_t start = out->len;
	int r;

	if (!c->present)
		return 0;
	if (c->n > CONTEXT_MAX_PAIRS)
		return ERR_TOO_LARGE;
	/* Insertion sort of indices: n <= CONTEXT_MAX_PAIRS. */
	for (size_t i = 0; i < c->n; i++) {
		size_t j = i;

		while (j > 0 && context_key_cmp(c->pairs[idx[j - 1]].k,
		    c->pairs[i].k) > 0) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = i;
	}
	if ((r = buf_append_byte(out, '{')) != 0)
		goto out;
	for (size_t i = 0; i < c->n; i++) {
		const struct ctx_pair *p = &c->pairs[idx[i]];

		if ((i > 0 && (r = buf_append_byte(out, ',')) != 0) ||
		    (r = context_json_str(out, p->k, style)) != 0 ||
		    (r = buf_append_byte(out, ':')) != 0 ||
		    (r = context_json_str(out, p->v, style)) != 0)
			goto out;
	}
	r = buf_append_byte(out, '}');
out:
	if (r != 0 && out->len > start) {
		/* Contexts may be sensitive: the audit log can be set to
		 * keep only their HMAC. */
		OPENSSL_cleanse(out->data + start, out->len - start);
		out->len = start;
	}
	return r;
}
