/*
 * kmsseal.c: Lockbox-compatible field encryption in libkmsclient.
 *
 * Owns kms_box_seal / kms_box_open and their strict-base64 forms: AES-256-GCM
 * under a 32-byte data key, box = nonce (12) || ciphertext || tag (16), AAD =
 * the caller's associated data or the empty string, exactly as ankane/
 * lockbox's AES_GCM class builds and checks it (PROVIDERS.md E1). No I/O,
 * no logging, no abort; no kmsd connection.
 *
 * Invariants:
 * - Opening decrypts into a fresh buffer and hands it over only after
 *   EVP_DecryptFinal_ex has verified the tag; on every failure that buffer
 *   is wiped and freed, so unauthenticated (or partial) plaintext never
 *   reaches the caller.
 * - Every way a box can be wrong (tag, key, associated data, length,
 *   base64) is code "decryption_failed": the caller learns that the field
 *   is unreadable, not which byte was changed. Errors that are not about the
 *   box (arguments, memory, OpenSSL itself) keep their own codes.
 * - `ret_` out-parameters are written only on success.
 * - The key schedule lives in OpenSSL's cipher context, which
 *   EVP_CIPHER_CTX_free cleanses; this file keeps no copy of the key.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "b64.h"
#include "buf.h"
#include "err.h"

#include "kmsclient.h"
#include "kmsseal.h"

/* Every length reaches OpenSSL as an int: the cap keeps a box, its base64
 * and the associated data far below INT_MAX. */
_Static_assert(KMS_BOX_MAX_PLAINTEXT + KMS_BOX_OVERHEAD <= INT32_MAX / 4 * 3,
    "box lengths fit OpenSSL's int lengths, base64 included");

/* Longest box, and longest strict base64 of one, open accepts. */
#define BOX_MAX (KMS_BOX_MAX_PLAINTEXT + KMS_BOX_OVERHEAD)
#define BOX_B64_MAX ((BOX_MAX + 2) / 3 * 4)

/* Lockbox's own message for every decryption failure. */
#define BOX_FAILED "Decryption failed"

/* box_gcm results besides 0. */
enum {
	GCM_AUTH = -1,		/* opening: the tag did not verify */
	GCM_BROKEN = -2,	/* OpenSSL refused to set up or run the cipher */
	GCM_NOMEM = -3,
};

static int
seal_err(kms_error *err, const char *code, const char *message)
{
	if (err != NULL) {
		snprintf(err->code, sizeof(err->code), "%s", code);
		snprintf(err->message, sizeof(err->message), "%s", message);
	}
	return -1;
}

/* Arguments shared by both directions; in/in_len is the plaintext or the
 * box, limited to max bytes. */
static int
check_args(const unsigned char *key, const void *in, size_t in_len,
    size_t max, const void *ad, size_t ad_len, const void *ret1,
    const void *ret2, kms_error *err)
{
	if (key == NULL)
		return seal_err(err, "invalid_argument", "key is NULL");
	if (in == NULL && in_len > 0)
		return seal_err(err, "invalid_argument", "data is NULL");
	if (in_len > max)
		return seal_err(err, "invalid_argument",
		    "data is over KMS_BOX_MAX_PLAINTEXT");
	if (ad == NULL && ad_len > 0)
		return seal_err(err, "invalid_argument",
		    "associated data is NULL");
	if (ad_len > KMS_BOX_MAX_PLAINTEXT)
		return seal_err(err, "invalid_argument",
		    "associated data is over KMS_BOX_MAX_PLAINTEXT");
	if (ret1 == NULL || ret2 == NULL)
		return seal_err(err, "invalid_argument",
		    "result pointer is NULL");
	return 0;
}

/*
 * AES-256-GCM of in[0..len) into out[0..len), in Lockbox's order of
 * operations: key and nonce, then the associated data (none is the empty
 * string), then the message. Sealing writes the tag to tag; opening checks
 * it. 0 or a GCM_* value.
 */
static int
box_gcm(int seal, const unsigned char *key, const unsigned char *nonce,
    const unsigned char *in, size_t len, const unsigned char *ad,
    size_t ad_len, unsigned char *out, unsigned char tag[KMS_BOX_TAG_LEN])
{
	EVP_CIPHER_CTX *cx;
	int n, r = GCM_BROKEN;

	if ((cx = EVP_CIPHER_CTX_new()) == NULL)
		return GCM_NOMEM;
	if (EVP_CipherInit_ex(cx, EVP_aes_256_gcm(), NULL, NULL, NULL,
	    seal) != 1 ||
	    EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_SET_IVLEN, KMS_BOX_NONCE_LEN,
	    NULL) != 1 ||
	    EVP_CipherInit_ex(cx, NULL, NULL, key, nonce, seal) != 1)
		goto out;
	if (ad_len > 0 && EVP_CipherUpdate(cx, NULL, &n, ad,
	    (int)ad_len) != 1)
		goto out;
	if (len > 0 && (EVP_CipherUpdate(cx, out, &n, in, (int)len) != 1 ||
	    (size_t)n != len))
		goto out;
	if (!seal && EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_SET_TAG,
	    KMS_BOX_TAG_LEN, tag) != 1)
		goto out;
	/* GCM writes nothing here; opening verifies the tag. */
	if (EVP_CipherFinal_ex(cx, out + len, &n) != 1) {
		r = seal ? GCM_BROKEN : GCM_AUTH;
		goto out;
	}
	if (seal && EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_GET_TAG,
	    KMS_BOX_TAG_LEN, tag) != 1)
		goto out;
	r = 0;
out:
	EVP_CIPHER_CTX_free(cx);
	return r;
}

int
kmsseal_seal_nonce(const unsigned char key[KMS_DATA_KEY_LEN],
    const unsigned char nonce[KMS_BOX_NONCE_LEN], const void *pt, size_t len,
    const void *ad, size_t ad_len, unsigned char **ret_box,
    size_t *ret_box_len, kms_error *err)
{
	unsigned char *box;
	size_t n;
	int r;

	if (check_args(key, pt, len, KMS_BOX_MAX_PLAINTEXT, ad, ad_len,
	    ret_box, ret_box_len, err) != 0)
		return -1;
	if (nonce == NULL)
		return seal_err(err, "invalid_argument", "nonce is NULL");
	n = KMS_BOX_OVERHEAD + len;
	if ((box = malloc(n)) == NULL)
		return seal_err(err, "no_memory", "out of memory");
	memcpy(box, nonce, KMS_BOX_NONCE_LEN);
	r = box_gcm(1, key, nonce, pt, len, ad, ad_len,
	    box + KMS_BOX_NONCE_LEN, box + KMS_BOX_NONCE_LEN + len);
	if (r != 0) {
		/* A half-made box is useless; wipe it like everything else. */
		kms_free_secret(box, n);
		if (r == GCM_NOMEM)
			return seal_err(err, "no_memory", "out of memory");
		return seal_err(err, "internal", "AES-256-GCM failed");
	}
	*ret_box = box;
	*ret_box_len = n;
	return 0;
}

int
kms_box_seal(const unsigned char key[KMS_DATA_KEY_LEN], const void *pt,
    size_t len, const void *ad, size_t ad_len, unsigned char **ret_box,
    size_t *ret_box_len, kms_error *err)
{
	unsigned char nonce[KMS_BOX_NONCE_LEN];

	if (check_args(key, pt, len, KMS_BOX_MAX_PLAINTEXT, ad, ad_len,
	    ret_box, ret_box_len, err) != 0)
		return -1;
	/* GCM under one key fails open if a nonce repeats: only the CSPRNG
	 * chooses it (Lockbox: SecureRandom.random_bytes(12)). */
	if (RAND_bytes(nonce, sizeof(nonce)) != 1)
		return seal_err(err, "internal", "no random bytes for a nonce");
	return kmsseal_seal_nonce(key, nonce, pt, len, ad, ad_len, ret_box,
	    ret_box_len, err);
}

int
kms_box_open(const unsigned char key[KMS_DATA_KEY_LEN], const void *box,
    size_t box_len, const void *ad, size_t ad_len, unsigned char **ret_pt,
    size_t *ret_len, kms_error *err)
{
	const unsigned char *b = box;
	unsigned char tag[KMS_BOX_TAG_LEN];
	unsigned char *pt;
	size_t len;
	int r;

	if (check_args(key, box, box_len, BOX_MAX, ad, ad_len, ret_pt,
	    ret_len, err) != 0)
		return -1;
	/* Lockbox refuses a nonce or a tag of the wrong size the same way. */
	if (box_len < KMS_BOX_OVERHEAD)
		return seal_err(err, "decryption_failed",
		    BOX_FAILED ": shorter than nonce and tag");
	len = box_len - KMS_BOX_OVERHEAD;
	/* +1: the uncounted NUL, so a text field is a C string. */
	if ((pt = malloc(len + 1)) == NULL)
		return seal_err(err, "no_memory", "out of memory");
	/* EVP_CTRL_GCM_SET_TAG takes a non-const pointer. */
	memcpy(tag, b + KMS_BOX_NONCE_LEN + len, KMS_BOX_TAG_LEN);
	r = box_gcm(0, key, b, b + KMS_BOX_NONCE_LEN, len, ad, ad_len, pt,
	    tag);
	if (r != 0) {
		/* pt holds plaintext that failed authentication. */
		kms_free_secret(pt, len + 1);
		if (r == GCM_AUTH)
			return seal_err(err, "decryption_failed", BOX_FAILED);
		if (r == GCM_NOMEM)
			return seal_err(err, "no_memory", "out of memory");
		return seal_err(err, "internal", "AES-256-GCM failed");
	}
	pt[len] = '\0';
	*ret_pt = pt;
	*ret_len = len;
	return 0;
}

int
kms_box_seal_b64(const unsigned char key[KMS_DATA_KEY_LEN], const void *pt,
    size_t len, const void *ad, size_t ad_len, char **ret_b64,
    kms_error *err)
{
	unsigned char *box = NULL;
	size_t box_len = 0;
	struct buf out;
	int r;

	if (ret_b64 == NULL)
		return seal_err(err, "invalid_argument",
		    "result pointer is NULL");
	if (kms_box_seal(key, pt, len, ad, ad_len, &box, &box_len, err) != 0)
		return -1;
	/* b64_encode also reserves room for the NUL. */
	buf_init(&out, (box_len + 2) / 3 * 4 + 1);
	r = b64_encode(&out, box, box_len);
	if (r == 0)
		r = buf_cstr(&out);
	kms_free_secret(box, box_len);
	if (r != 0) {
		buf_done(&out);
		return seal_err(err, r == ERR_NOMEM ? "no_memory" : "internal",
		    r == ERR_NOMEM ? "out of memory" : "base64 failed");
	}
	/* buf's block is plain malloc memory: the caller's kms_free. */
	*ret_b64 = (char *)out.data;
	return 0;
}

int
kms_box_open_b64(const unsigned char key[KMS_DATA_KEY_LEN], const char *b64,
    const void *ad, size_t ad_len, unsigned char **ret_pt, size_t *ret_len,
    kms_error *err)
{
	struct buf box;
	size_t n;
	int r;

	if (b64 == NULL)
		return seal_err(err, "invalid_argument", "ciphertext is NULL");
	n = strnlen(b64, BOX_B64_MAX + 1);
	if (n > BOX_B64_MAX)
		return seal_err(err, "invalid_argument",
		    "ciphertext is over the base64 of the largest box");
	/* Room for whatever the allowed base64 decodes to; kms_box_open
	 * judges the length. */
	buf_init(&box, BOX_B64_MAX / 4 * 3);
	r = b64_decode(&box, b64, n);
	if (r == ERR_NOMEM) {
		buf_done(&box);
		return seal_err(err, "no_memory", "out of memory");
	}
	if (r != 0) {
		buf_done(&box);
		return seal_err(err, "decryption_failed",
		    BOX_FAILED ": not strict base64");
	}
	r = kms_box_open(key, box.data, box.len, ad, ad_len, ret_pt, ret_len,
	    err);
	buf_done(&box);
	return r;
}
