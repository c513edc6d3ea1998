/*
 * b64.c: strict base64 over OpenSSL's block coder (see b64.h).
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "b64.h"
#include "err.h"

/* Ruby's Base64.encode64 line length (RFC 2045 allows up to 76). */
#define B64_LINE 60

static int
b64_valid_char(unsigned char c)
{
	/* One bit per byte value: A-Z a-z 0-9 + / (a table: this runs over
	 * every stored string a decrypt receives). */
	static const uint32_t ok[8] = {
		0, 0x03ff8800, 0x07fffffe, 0x07fffffe, 0, 0, 0, 0,
	};

	return (ok[c >> 5] >> (c & 31)) & 1;
}

static int
b64_char_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : 63;
}

int
b64_encode(struct buf *out, const void *p, size_t n)
{
	size_t olen;
	int r;

	if (n > (size_t)(INT32_MAX / 4 * 3))
		return ERR_TOO_LARGE;
	olen = (n + 2) / 3 * 4;
	if ((r = buf_reserve(out, olen + 1)) != 0)
		return r;
	EVP_EncodeBlock(out->data + out->len, p, (int)n);
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
	unsigned char tail[3];
	size_t pad = 0, whole, dlen;
	int r, got;

	if (n == 0)
		return 0;
	if (n % 4 != 0 || n > (size_t)INT32_MAX)
		return ERR_BAD_REQUEST;
	if (u[n - 1] == '=')
		pad++;
	if (u[n - 2] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++)
		if (!b64_valid_char(u[i]))
			return ERR_BAD_REQUEST;
	/* Unused low bits of the last character must be zero (canonical). */
	if (pad == 2 && (b64_char_value(u[n - 3]) & 0x0f) != 0)
		return ERR_BAD_REQUEST;
	if (pad == 1 && (b64_char_value(u[n - 2]) & 0x03) != 0)
		return ERR_BAD_REQUEST;
	/* Reserve only what the result needs: a value that fits the cap
	 * must decode even when its padded length would not. */
	dlen = n / 4 * 3 - pad;
	if ((r = buf_reserve(out, dlen)) != 0)
		return r;
	/* All quanta but the last straight into out; the last one through
	 * tail[], since EVP_DecodeBlock writes padding as zero bytes. */
	r = ERR_BAD_REQUEST;
	whole = n - 4;
	if (whole > 0) {
		got = EVP_DecodeBlock(out->data + out->len, u, (int)whole);
		if (got < 0 || (size_t)got != whole / 4 * 3)
			goto out;
	}
	if (EVP_DecodeBlock(tail, u + whole, 4) != 3)
		goto out;
	memcpy(out->data + out->len + whole / 4 * 3, tail, 3 - pad);
	out->len += dlen;
	r = 0;
out:
	OPENSSL_cleanse(tail, sizeof(tail));
	if (r != 0)
		OPENSSL_cleanse(out->data + out->len, dlen);
	return r;
}
