/*
 * stored.c: the stored ciphertext string "v{N}:" + strict base64 (see
 * stored.h, DESIGN 3.2, PROVIDERS.md E3).
 *
 * Every defect of a stored string is reported as ERR_DECRYPTION_FAILED, the
 * same answer a wrong key or context gives, so a caller probing with crafted
 * strings learns nothing about which check failed. Only out-of-memory is
 * passed through: it says nothing about the input.
 */
#include <stdint.h>
#include <stdio.h>

#include <openssl/crypto.h>

#include "b64.h"
#include "err.h"
#include "stored.h"

/* Digits of STORED_MAX_VERSION: a longer number is refused before it can
 * overflow. */
#define STORED_MAX_DIGITS 7

/* Parse "vN:" at the front of s; sets *ret_version and *ret_prefix (bytes
 * up to and including ':'). */
static int
stored_prefix(const char *s, size_t n, uint32_t *ret_version,
    size_t *ret_prefix)
{
	uint32_t v = 0;
	size_t i = 1;

	if (s == NULL || n < 3 || s[0] != 'v')
		return ERR_DECRYPTION_FAILED;
	/* No leading zero: "v01:" is not what kms_encrypted writes. */
	if (s[1] < '1' || s[1] > '9')
		return ERR_DECRYPTION_FAILED;
	while (i < n && s[i] >= '0' && s[i] <= '9') {
		if (i > STORED_MAX_DIGITS)
			return ERR_DECRYPTION_FAILED;
		v = v * 10 + (uint32_t)(s[i] - '0');
		i++;
	}
	if (i >= n || s[i] != ':' || v > STORED_MAX_VERSION)
		return ERR_DECRYPTION_FAILED;
	*ret_version = v;
	*ret_prefix = i + 1;
	return 0;
}

int
stored_version(const char *s, size_t n, uint32_t *ret_version)
{
	size_t pre;

	return stored_prefix(s, n, ret_version, &pre);
}

int
stored_parse(const char *s, size_t n, uint32_t *ret_version,
    struct buf *blob)
{
	uint32_t v;
	size_t pre;
	int r;

	if ((r = stored_prefix(s, n, &v, &pre)) != 0)
		return r;
	/* "v1:" alone carries no ciphertext. */
	if (pre == n)
		return ERR_DECRYPTION_FAILED;
	/* b64_decode leaves blob unchanged on failure. */
	if ((r = b64_decode(blob, s + pre, n - pre)) != 0)
		return r == ERR_NOMEM ? r : ERR_DECRYPTION_FAILED;
	*ret_version = v;
	return 0;
}

int
stored_format(uint32_t version, const uint8_t *blob, size_t n,
    struct buf *out)
{
	char pre[STORED_MAX_DIGITS + 3], digits[STORED_MAX_DIGITS];
	size_t start = out->len, pn = 0, dn = 0;
	int r;

	/* Refuse what stored_parse would refuse, so every string written can
	 * be read back. */
	if (version < 1 || version > STORED_MAX_VERSION || n == 0)
		return ERR_BAD_REQUEST;
	/* "v%u:" by hand: this runs for every wrap. */
	for (uint32_t v = version; v > 0; v /= 10)
		digits[dn++] = (char)('0' + v % 10);
	pre[pn++] = 'v';
	while (dn > 0)
		pre[pn++] = digits[--dn];
	pre[pn++] = ':';
	if ((r = buf_append(out, pre, pn)) != 0 ||
	    (r = b64_encode(out, blob, n)) != 0) {
		if (out->len > start)
			OPENSSL_cleanse(out->data + start, out->len - start);
		out->len = start;
	}
	return r;
}
