/*
 * b64.c: strict base64 (see b64.h).
 */
#include <stdint.h>
#include <string.h>

#include "b64.h"
#include "err.h"

/* Ruby's Base64.encode64 line length (RFC 2045 allows up to 76). */
#define B64_LINE 60
/* b64_val: not in the alphabet. */
#define B64_BAD 0xff

/*
 * The coder itself is a table lookup per character, written here rather
 * than taken from EVP_EncodeBlock/EVP_DecodeBlock: every stored string a
 * request carries is checked character by character anyway (strictness
 * OpenSSL does not offer), and OpenSSL's block coder cost about ten
 * instructions a character on top (the unit tests hold the two to the
 * same output).
 */
static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of each byte as a base64 character, or B64_BAD. */
static const uint8_t b64_val[256] = {
	['A'] = 0, ['B'] = 1, ['C'] = 2, ['D'] = 3, ['E'] = 4, ['F'] = 5,
	['G'] = 6, ['H'] = 7, ['I'] = 8, ['J'] = 9, ['K'] = 10, ['L'] = 11,
	['M'] = 12, ['N'] = 13, ['O'] = 14, ['P'] = 15, ['Q'] = 16, ['R'] = 17,
	['S'] = 18, ['T'] = 19, ['U'] = 20, ['V'] = 21, ['W'] = 22, ['X'] = 23,
	['Y'] = 24, ['Z'] = 25, ['a'] = 26, ['b'] = 27, ['c'] = 28, ['d'] = 29,
	['e'] = 30, ['f'] = 31, ['g'] = 32, ['h'] = 33, ['i'] = 34, ['j'] = 35,
	['k'] = 36, ['l'] = 37, ['m'] = 38, ['n'] = 39, ['o'] = 40, ['p'] = 41,
	['q'] = 42, ['r'] = 43, ['s'] = 44, ['t'] = 45, ['u'] = 46, ['v'] = 47,
	['w'] = 48, ['x'] = 49, ['y'] = 50, ['z'] = 51, ['0'] = 52, ['1'] = 53,
	['2'] = 54, ['3'] = 55, ['4'] = 56, ['5'] = 57, ['6'] = 58, ['7'] = 59,
	['8'] = 60, ['9'] = 61, ['+'] = 62, ['/'] = 63,
};

/* 1 when c is in the alphabet ('A' is the only one whose value is 0). */
static int
b64_valid_char(unsigned char c)
{
	return b64_val[c] != 0 || c == 'A';
}

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
		o[0] = (uint8_t)b64_alphabet[v >> 18];
		o[1] = (uint8_t)b64_alphabet[(v >> 12) & 0x3f];
		o[2] = (uint8_t)b64_alphabet[(v >> 6) & 0x3f];
		o[3] = (uint8_t)b64_alphabet[v & 0x3f];
	}
	if (n - i > 0) {
		v = (uint32_t)in[i] << 16;
		if (n - i == 2)
			v |= (uint32_t)in[i + 1] << 8;
		o[0] = (uint8_t)b64_alphabet[v >> 18];
		o[1] = (uint8_t)b64_alphabet[(v >> 12) & 0x3f];
		o[2] = n - i == 2 ? (uint8_t)b64_alphabet[(v >> 6) & 0x3f] : '=';
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
	size_t pad = 0, dlen, i;
	uint8_t *o;
	uint32_t v;
	int r;

	if (n == 0)
		return 0;
	if (n % 4 != 0 || n > (size_t)INT32_MAX)
		return ERR_BAD_REQUEST;
	if (u[n - 1] == '=')
		pad++;
	if (u[n - 2] == '=')
		pad++;
	for (i = 0; i < n - pad; i++)
		if (!b64_valid_char(u[i]))
			return ERR_BAD_REQUEST;
	/* Unused low bits of the last character must be zero (canonical). */
	if (pad == 2 && (b64_val[u[n - 3]] & 0x0f) != 0)
		return ERR_BAD_REQUEST;
	if (pad == 1 && (b64_val[u[n - 2]] & 0x03) != 0)
		return ERR_BAD_REQUEST;
	/* Reserve only what the result needs: a value that fits the cap
	 * must decode even when its padded length would not. */
	dlen = n / 4 * 3 - pad;
	if ((r = buf_reserve(out, dlen)) != 0)
		return r;
	o = out->data + out->len;
	/* Every character is checked above: the values are all 0..63. */
	for (i = 0; i + 4 < n || (i + 4 == n && pad == 0); i += 4, o += 3) {
		v = (uint32_t)b64_val[u[i]] << 18 | (uint32_t)b64_val[u[i + 1]] << 12 |
		    (uint32_t)b64_val[u[i + 2]] << 6 | b64_val[u[i + 3]];
		o[0] = (uint8_t)(v >> 16);
		o[1] = (uint8_t)(v >> 8);
		o[2] = (uint8_t)v;
	}
	if (pad > 0) {
		v = (uint32_t)b64_val[u[i]] << 18 | (uint32_t)b64_val[u[i + 1]] << 12;
		if (pad == 1)
			v |= (uint32_t)b64_val[u[i + 2]] << 6;
		o[0] = (uint8_t)(v >> 16);
		if (pad == 1)
			o[1] = (uint8_t)(v >> 8);
	}
	out->len += dlen;
	return 0;
}
