/*
 * b64.c: strict base64 (see b64.h).
 */
#include <stdint.h>
#include <string.h>

#include "b64.h"
#include "err.h"
#include "table.h"

/* Ruby's Base64.encode64 line length (RFC 2045 allows up to 76). */
#define B64_LINE 60

/*
 * The coder is table-driven, written here rather than taken from
 * EVP_EncodeBlock/EVP_DecodeBlock: every stored string a request carries
 * is checked character by character anyway (strictness OpenSSL does not
 * offer), and OpenSSL's block coder cost about ten instructions a
 * character on top (the unit tests hold the two to the same output). The
 * tables are built by the preprocessor from the alphabet's definition.
 */

/* The character of a 6-bit value. */
#define B64_CH(i)	((i) < 26 ? 'A' + (i) : (i) < 52 ? 'a' + (i) - 26 : \
			 (i) < 62 ? '0' + (i) - 52 : (i) == 62 ? '+' : '/')

/* The two characters of each 12-bit value: half a 3-byte group. */
#define B64_PAIR(i)	{ B64_CH((i) >> 6), B64_CH((i) & 63) }
static const uint8_t b64_pair[4096][2] = { TABLE_4096(B64_PAIR) };

/* Each byte's value as a character, or B64_BAD when the byte is not in
 * the alphabet ('=' included). */
#define B64_BAD		0x80
#define B64_V(c)	((c) >= 'A' && (c) <= 'Z' ? (c) - 'A' : \
			 (c) >= 'a' && (c) <= 'z' ? (c) - 'a' + 26 : \
			 (c) >= '0' && (c) <= '9' ? (c) - '0' + 52 : \
			 (c) == '+' ? 62 : (c) == '/' ? 63 : -1)
#define B64_DEC(c)	(B64_V(c) < 0 ? B64_BAD : B64_V(c))
static const uint8_t b64_dec[256] = { TABLE_256(B64_DEC) };

int
b64_encode(struct buf *out, const void *p, size_t n)
{
	const uint8_t *in = p;
	uint8_t *o;
	size_t olen, i = 0;
	uint32_t v;
	int r;

	if (n > (size_t)(INT32_MAX / 4 * 3))
		return ERR_TOO_LARGE;
	olen = (n + 2) / 3 * 4;
	if ((r = buf_reserve(out, olen)) != 0)
		return r;
	o = out->data + out->len;
	for (; n - i >= 3; i += 3, o += 4) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		memcpy(o, b64_pair[v >> 12], 2);
		memcpy(o + 2, b64_pair[v & 0xfff], 2);
	}
	if (n - i > 0) {
		v = (uint32_t)in[i] << 16;
		if (n - i == 2)
			v |= (uint32_t)in[i + 1] << 8;
		memcpy(o, b64_pair[v >> 12], 2);
		o[2] = n - i == 2 ? b64_pair[v & 0xfff][0] : '=';
		o[3] = '=';
	}
	out->len += olen;
	return 0;
}

int
b64_encode_lines(struct buf *out, const void *p, size_t n)
{
	const uint8_t *in = p;
	/* 60 output characters = 45 input bytes */
	const size_t chunk = B64_LINE / 4 * 3;
	int r;

	while (n > 0) {
		size_t k = n < chunk ? n : chunk;

		if ((r = b64_encode(out, in, k)) != 0 ||
		    (r = buf_append_byte(out, '\n')) != 0)
			return r;
		in += k;
		n -= k;
	}
	return 0;
}

size_t
b64_decoded_len(const char *s, size_t n)
{
	size_t pad = 0;

	if (n == 0 || n % 4 != 0)
		return 0;
	if (s[n - 1] == '=')
		pad++;
	if (s[n - 2] == '=')
		pad++;
	return n / 4 * 3 - pad;
}

int
b64_decode(struct buf *out, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t pad = 0, dlen, full, i;
	uint8_t *o, *start;
	uint32_t a, b, c, d, v, bad = 0;
	int r;

	if (n == 0)
		return 0;
	if (n % 4 != 0 || n > (size_t)INT32_MAX)
		return ERR_BAD_REQUEST;
	if (u[n - 1] == '=')
		pad = u[n - 2] == '=' ? 2 : 1;
	/* Reserve only what the result needs: a value that fits the cap
	 * must decode even when its padded length would not. */
	dlen = n / 4 * 3 - pad;
	if ((r = buf_reserve(out, dlen)) != 0)
		return r;
	start = o = out->data + out->len;
	/* Every character is checked as it is decoded: bad collects
	 * B64_BAD from any outside the alphabet ('=' is). What a bad one
	 * spreads into the bytes is wiped below. */
	full = pad > 0 ? n - 4 : n;
	for (i = 0; i < full; i += 4, o += 3) {
		a = b64_dec[u[i]];
		b = b64_dec[u[i + 1]];
		c = b64_dec[u[i + 2]];
		d = b64_dec[u[i + 3]];
		bad |= a | b | c | d;
		v = a << 18 | b << 12 | c << 6 | d;
		o[0] = (uint8_t)(v >> 16);
		o[1] = (uint8_t)(v >> 8);
		o[2] = (uint8_t)v;
	}
	if (pad > 0) {
		a = b64_dec[u[i]];
		b = b64_dec[u[i + 1]];
		c = pad == 1 ? b64_dec[u[i + 2]] : 0;
		bad |= a | b | c;
		/* Unused low bits of the last character must be zero
		 * (canonical). */
		if ((pad == 2 && (b & 0x0f) != 0) ||
		    (pad == 1 && (c & 0x03) != 0))
			bad = B64_BAD;
		v = a << 18 | b << 12 | c << 6;
		o[0] = (uint8_t)(v >> 16);
		if (pad == 1)
			o[1] = (uint8_t)(v >> 8);
	}
	if (bad & B64_BAD) {
		/* What was decoded before the bad character goes too. */
		wipe(start, dlen);
		return ERR_BAD_REQUEST;
	}
	out->len += dlen;
	return 0;
}
