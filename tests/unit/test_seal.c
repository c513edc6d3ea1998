/*
 * test_seal.c: libkmsclient's Lockbox boxes (kms_box_*, client/kmsseal.c).
 *
 * Vectors: the published and gem-run Lockbox boxes (aes_gcm.json), which a
 * fixed-nonce seal must reproduce byte for byte, and the issue-10
 * compatibility boxes under a kms_encrypted data key (kms_key.json: made by
 * the real Lockbox gem, and by kms_box_seal_b64 then opened by that gem).
 * Properties: round trips over sizes 0 .. 1 MiB; any change to a box (each
 * byte of nonce, ciphertext and tag, its length, its base64), another key
 * or other associated data is "decryption_failed" with the outputs left
 * alone. Links the static library: kmsseal_seal_nonce is not exported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "kmsclient.h"
#include "kmsseal.h"

#define VEC TEST_SRCDIR "/../vectors/lockbox"

/* Outputs a failed call must leave alone. */
#define SENTINEL_PTR ((unsigned char *)0x5a5a)
#define SENTINEL_LEN ((size_t)0xa5a5)

static const unsigned char key32[KMS_DATA_KEY_LEN] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};

/* --- helpers ----------------------------------------------------------------- */

static json_t *
load(const char *name)
{
	char path[512];
	json_error_t e;
	json_t *j;

	snprintf(path, sizeof(path), "%s/%s", VEC, name);
	j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
	ck_assert_msg(j != NULL, "%s: %s", path, e.text);
	return j;
}

static const char *
jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	ck_assert_msg(s != NULL, "no string %s", k);
	return s;
}

/* Hex to bytes; *n gets the length. Caller frees. */
static unsigned char *
unhex(const char *h, size_t *n)
{
	size_t len = strlen(h);
	unsigned char *p = malloc(len / 2 + 1);

	ck_assert(p != NULL && len % 2 == 0);
	for (size_t i = 0; i < len / 2; i++) {
		unsigned v;

		ck_assert_int_eq(sscanf(h + 2 * i, "%2x", &v), 1);
		p[i] = (unsigned char)v;
	}
	*n = len / 2;
	return p;
}

/* Open must fail as decryption_failed and leave the outputs alone. */
static void
expect_failed(const unsigned char *key, const void *box, size_t n,
    const void *ad, size_t ad_len, const char *what)
{
	unsigned char *pt = SENTINEL_PTR;
	size_t len = SENTINEL_LEN;
	kms_error e;

	memset(&e, 0, sizeof(e));
	ck_assert_msg(kms_box_open(key, box, n, ad, ad_len, &pt, &len,
	    &e) == -1, "%s: opened", what);
	ck_assert_msg(strcmp(e.code, "decryption_failed") == 0, "%s: %s",
	    what, e.code);
	ck_assert_msg(strncmp(e.message, "Decryption failed", 17) == 0,
	    "%s: %s", what, e.message);
	ck_assert(pt == SENTINEL_PTR && len == SENTINEL_LEN);
}

static void
expect_failed_b64(const unsigned char *key, const char *b64, const void *ad,
    size_t ad_len, const char *what)
{
	unsigned char *pt = SENTINEL_PTR;
	size_t len = SENTINEL_LEN;
	kms_error e;

	memset(&e, 0, sizeof(e));
	ck_assert_msg(kms_box_open_b64(key, b64, ad, ad_len, &pt, &len,
	    &e) == -1, "%s: opened", what);
	ck_assert_msg(strcmp(e.code, "decryption_failed") == 0, "%s: %s",
	    what, e.code);
	ck_assert(pt == SENTINEL_PTR && len == SENTINEL_LEN);
}

/* Open b64 and compare with want (want_len bytes). */
static void
expect_opens_b64(const unsigned char *key, const char *b64, const char *ad,
    const unsigned char *want, size_t want_len, const char *what)
{
	unsigned char *pt = NULL;
	size_t len = 0;
	kms_error e;

	ck_assert_msg(kms_box_open_b64(key, b64, ad, ad ? strlen(ad) : 0, &pt,
	    &len, &e) == 0, "%s: %s: %s", what, e.code, e.message);
	ck_assert_msg(len == want_len, "%s: %zu bytes, want %zu", what, len,
	    want_len);
	ck_assert(want_len == 0 || memcmp(pt, want, want_len) == 0);
	ck_assert_int_eq(pt[len], '\0');
	kms_free_secret(pt, len);
}

/* Strict base64 of a box, made without the library's own coder. */
static char *
b64_of(const unsigned char *box, size_t n)
{
	char *s = malloc((n + 2) / 3 * 4 + 1);

	ck_assert(s != NULL);
	ck_assert_int_eq(EVP_EncodeBlock((unsigned char *)s, box, (int)n),
	    (int)((n + 2) / 3 * 4));
	return s;
}

/* --- vectors ------------------------------------------------------------------ */

/* Every aes_gcm.json box opens; where the nonce is known, a fixed-nonce
 * seal reproduces it byte for byte. */
START_TEST(test_lockbox_published)
{
	json_t *v = load("aes_gcm.json");
	const char *name;
	json_t *c;
	int opened = 0, resealed = 0;

	json_object_foreach(v, name, c) {
		const json_t *ctj;
		const char *b64;
		unsigned char *key, *pt, *want;
		size_t klen, ptlen;

		if (!json_is_object(c) || json_object_get(c, "plaintext") ==
		    NULL)
			continue;
		key = unhex(jstr(c, "key_hex"), &klen);
		ck_assert_uint_eq(klen, KMS_DATA_KEY_LEN);
		ctj = json_object_get(c, "ciphertext_b64");
		if (ctj == NULL)
			ctj = json_object_get(c, "ciphertext_b64_strict");
		b64 = json_string_value(ctj);
		ck_assert_msg(b64 != NULL, "%s: no ciphertext", name);
		pt = (unsigned char *)strdup(jstr(c, "plaintext"));
		ck_assert(pt != NULL);
		ptlen = strlen((char *)pt);
		want = pt;
		if (json_object_get(c, "padding") != NULL) {
			/* Lockbox's padding is not ours to strip: the box
			 * opens to the padded bytes, "hi" 0x80 0x00... */
			want = calloc(16, 1);
			ck_assert(want != NULL);
			memcpy(want, pt, ptlen);
			want[ptlen] = 0x80;
			ptlen = 16;
		}
		expect_opens_b64(key, b64, NULL, want, ptlen, name);
		opened++;
		if (json_object_get(c, "nonce_hex") != NULL &&
		    json_object_get(c, "padding") == NULL) {
			unsigned char *nonce, *box = NULL;
			size_t nlen, blen = 0;
			char *s;
			kms_error e;

			nonce = unhex(jstr(c, "nonce_hex"), &nlen);
			ck_assert_uint_eq(nlen, KMS_BOX_NONCE_LEN);
			ck_assert_int_eq(kmsseal_seal_nonce(key, nonce, pt,
			    ptlen, NULL, 0, &box, &blen, &e), 0);
			ck_assert_uint_eq(blen, ptlen + KMS_BOX_OVERHEAD);
			s = b64_of(box, blen);
			ck_assert_str_eq(s, b64);
			if (json_object_get(c, "raw_hex") != NULL) {
				size_t rlen;
				unsigned char *raw = unhex(jstr(c, "raw_hex"),
				    &rlen);

				ck_assert_uint_eq(rlen, blen);
				ck_assert(memcmp(raw, box, blen) == 0);
				free(raw);
			}
			if (json_object_get(c, "tag_hex") != NULL) {
				size_t tlen;
				unsigned char *tag = unhex(jstr(c, "tag_hex"),
				    &tlen);

				ck_assert(memcmp(tag, box + blen -
				    KMS_BOX_TAG_LEN, tlen) == 0);
				free(tag);
			}
			resealed++;
			free(s);
			free(nonce);
			kms_free(box);
		}
		if (want != pt)
			free(want);
		free(pt);
		free(key);
	}
	/* 2 published + 3 gem-run; 3 of them with a known nonce */
	ck_assert_int_eq(opened, 5);
	ck_assert_int_eq(resealed, 3);
	json_decref(v);
}
END_TEST

/* Issue 10, item 2 (the offline half): every box the Lockbox gem made
 * under the kms_encrypted data key, and every box kms_box_seal_b64 made
 * that the gem opened, opens here. */
START_TEST(test_kms_key_vectors)
{
	json_t *v = load("kms_key.json");
	const char *lists[] = { "lockbox", "kmsd_sealed" };
	unsigned char *key;
	size_t klen;
	int n = 0;

	key = unhex(jstr(json_object_get(v, "data_key"), "plaintext_hex"),
	    &klen);
	ck_assert_uint_eq(klen, KMS_DATA_KEY_LEN);
	ck_assert(memcmp(key, key32, klen) == 0);
	for (size_t l = 0; l < 2; l++) {
		json_t *arr = json_object_get(v, lists[l]), *c;
		size_t i;

		ck_assert(json_array_size(arr) >= 3);
		json_array_foreach(arr, i, c) {
			const char *ad = json_string_value(
			    json_object_get(c, "associated_data"));
			const char *b64 = jstr(c, "ciphertext_b64");
			size_t plen;
			unsigned char *pt = unhex(jstr(c, "plaintext_hex"),
			    &plen);

			expect_opens_b64(key, b64, ad, pt, plen,
			    jstr(c, "name"));
			/* and not under other associated data */
			expect_failed_b64(key, b64, "other", 5, "other ad");
			if (ad != NULL)
				expect_failed_b64(key, b64, NULL, 0, "no ad");
			free(pt);
			n++;
		}
	}
	ck_assert_int_eq(n, 9);
	free(key);
	json_decref(v);
}
END_TEST

/* --- properties ---------------------------------------------------------------- */

/* Sizes 0 .. 1 MiB: the edges of AES blocks and pages, then random ones. */
static const size_t fixed_sizes[] = {
	0, 1, 2, 15, 16, 17, 31, 32, 33, 255, 256, 257, 4095, 4096, 4097,
	65535, 65536, 65537, 1048575, 1048576,
};
#define RANDOM_SIZES 16
#define MIB ((size_t)1 << 20)

static void
round_trip(size_t len, int with_ad)
{
	unsigned char *pt = malloc(len + 1), *box = NULL, *box2 = NULL;
	unsigned char *out = NULL, ad[40];
	size_t blen = 0, blen2 = 0, olen = 0, ad_len = with_ad ? 1 +
	    len % sizeof(ad) : 0;
	char *b64 = NULL;
	kms_error e;

	ck_assert(pt != NULL);
	ck_assert(len == 0 || RAND_bytes(pt, (int)len) == 1);
	ck_assert(RAND_bytes(ad, sizeof(ad)) == 1);
	ck_assert_msg(kms_box_seal(key32, len ? pt : NULL, len,
	    with_ad ? ad : NULL, ad_len, &box, &blen, &e) == 0, "%s",
	    e.message);
	ck_assert_uint_eq(blen, len + KMS_BOX_OVERHEAD);
	ck_assert_int_eq(kms_box_open(key32, box, blen, with_ad ? ad : NULL,
	    ad_len, &out, &olen, &e), 0);
	ck_assert_uint_eq(olen, len);
	ck_assert(len == 0 || memcmp(out, pt, len) == 0);
	ck_assert_int_eq(out[olen], '\0');
	kms_free_secret(out, olen);
	/* a second seal of the same plaintext differs (fresh nonce) */
	ck_assert_int_eq(kms_box_seal(key32, pt, len, with_ad ? ad : NULL,
	    ad_len, &box2, &blen2, &e), 0);
	ck_assert(memcmp(box, box2, KMS_BOX_NONCE_LEN) != 0);
	/* base64 form */
	ck_assert_int_eq(kms_box_seal_b64(key32, pt, len, with_ad ? ad : NULL,
	    ad_len, &b64, &e), 0);
	ck_assert_uint_eq(strlen(b64), (len + KMS_BOX_OVERHEAD + 2) / 3 * 4);
	ck_assert_int_eq(kms_box_open_b64(key32, b64, with_ad ? ad : NULL,
	    ad_len, &out, &olen, &e), 0);
	ck_assert_uint_eq(olen, len);
	ck_assert(len == 0 || memcmp(out, pt, len) == 0);
	kms_free_secret(out, olen);
	kms_free(b64);
	kms_free(box);
	kms_free(box2);
	free(pt);
}

START_TEST(test_round_trip_sizes)
{
	unsigned char r[4 * RANDOM_SIZES];
	int n = 0;

	for (size_t i = 0; i < sizeof(fixed_sizes) / sizeof(fixed_sizes[0]);
	    i++, n++)
		round_trip(fixed_sizes[i], (int)(i & 1));
	ck_assert(RAND_bytes(r, sizeof(r)) == 1);
	for (size_t i = 0; i < RANDOM_SIZES; i++, n++) {
		size_t len = ((size_t)r[4 * i] | (size_t)r[4 * i + 1] << 8 |
		    (size_t)r[4 * i + 2] << 16) % (MIB + 1);

		round_trip(len, r[4 * i + 3] & 1);
	}
	ck_assert_int_eq(n, 36);
}
END_TEST

/* Every byte of a box (nonce, ciphertext, tag), every length short of it,
 * and one byte more: each is refused, with nothing returned. */
START_TEST(test_tamper_every_byte)
{
	const char msg[] = "alice@example.org and some more text";
	const char ad[] = "users.email_ciphertext.1";
	unsigned char *box = NULL, *t;
	size_t n = 0;
	kms_error e;
	char what[64];

	ck_assert_int_eq(kms_box_seal(key32, msg, sizeof(msg) - 1, ad,
	    sizeof(ad) - 1, &box, &n, &e), 0);
	t = malloc(n + 1);
	ck_assert(t != NULL);
	for (size_t i = 0; i < n; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			memcpy(t, box, n);
			t[i] ^= (unsigned char)(1u << bit);
			snprintf(what, sizeof(what), "%s byte %zu bit %u",
			    i < KMS_BOX_NONCE_LEN ? "nonce" :
			    i < n - KMS_BOX_TAG_LEN ? "ciphertext" : "tag", i,
			    bit);
			expect_failed(key32, t, n, ad, sizeof(ad) - 1, what);
		}
	}
	for (size_t len = 0; len < n; len++) {
		snprintf(what, sizeof(what), "truncated to %zu", len);
		/* the tail cut off, and the head */
		expect_failed(key32, box, len, ad, sizeof(ad) - 1, what);
		expect_failed(key32, box + (n - len), len, ad, sizeof(ad) - 1,
		    what);
	}
	memcpy(t, box, n);
	t[n] = 0;
	expect_failed(key32, t, n + 1, ad, sizeof(ad) - 1, "one byte more");
	/* the untouched box still opens */
	{
		unsigned char *pt = NULL;
		size_t len = 0;

		ck_assert_int_eq(kms_box_open(key32, box, n, ad,
		    sizeof(ad) - 1, &pt, &len, &e), 0);
		ck_assert_str_eq((char *)pt, msg);
		kms_free_secret(pt, len);
	}
	free(t);
	kms_free(box);
}
END_TEST

START_TEST(test_wrong_key)
{
	unsigned char *box = NULL, key[KMS_DATA_KEY_LEN];
	size_t n = 0;
	kms_error e;

	ck_assert_int_eq(kms_box_seal(key32, "x", 1, NULL, 0, &box, &n, &e),
	    0);
	for (size_t i = 0; i < KMS_DATA_KEY_LEN; i++) {
		memcpy(key, key32, sizeof(key));
		key[i] ^= 0x80;
		expect_failed(key, box, n, NULL, 0, "wrong key");
	}
	memset(key, 0, sizeof(key));
	expect_failed(key, box, n, NULL, 0, "zero key");
	kms_free(box);
}
END_TEST

START_TEST(test_wrong_associated_data)
{
	unsigned char *box = NULL, *pt = NULL;
	size_t n = 0, len = 0;
	kms_error e;

	ck_assert_int_eq(kms_box_seal(key32, "secret", 6, "user:1", 6, &box,
	    &n, &e), 0);
	expect_failed(key32, box, n, NULL, 0, "no ad");
	expect_failed(key32, box, n, "user:2", 6, "other ad");
	expect_failed(key32, box, n, "user:1", 5, "shorter ad");
	expect_failed(key32, box, n, "user:10", 7, "longer ad");
	kms_free(box);
	/* sealed without: opening with any ad fails; NULL and "" are one */
	ck_assert_int_eq(kms_box_seal(key32, "secret", 6, NULL, 0, &box, &n,
	    &e), 0);
	expect_failed(key32, box, n, "user:1", 6, "unexpected ad");
	ck_assert_int_eq(kms_box_open(key32, box, n, "", 0, &pt, &len, &e),
	    0);
	ck_assert_str_eq((char *)pt, "secret");
	kms_free_secret(pt, len);
	kms_free(box);
}
END_TEST

START_TEST(test_bad_base64)
{
	char *good = NULL, *s;
	size_t n;
	kms_error e;
	const char *bad[] = {
		"",			/* nothing */
		"AAAA",			/* valid base64, 3 bytes: too short */
		"not base64 at all!!",
	};

	ck_assert_int_eq(kms_box_seal_b64(key32, "hell", 4, NULL, 0, &good,
	    &e), 0);
	n = strlen(good);
	ck_assert_uint_eq(n, 44);	/* 32 bytes: one '=' of padding */
	ck_assert_int_eq(good[n - 1], '=');
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_failed_b64(key32, bad[i], NULL, 0, bad[i]);
	s = malloc(n + 8);
	ck_assert(s != NULL);
	/* padding dropped (Base64.decode64 would accept it; strict does not) */
	memcpy(s, good, n - 1);
	s[n - 1] = '\0';
	expect_failed_b64(key32, s, NULL, 0, "no padding");
	/* a newline inside (Base64.encode64 style) */
	memcpy(s, good, 20);
	s[20] = '\n';
	memcpy(s + 21, good + 20, n - 20 + 1);
	expect_failed_b64(key32, s, NULL, 0, "newline");
	/* trailing newline */
	memcpy(s, good, n);
	memcpy(s + n, "\n", 2);
	expect_failed_b64(key32, s, NULL, 0, "trailing newline");
	/* URL-safe alphabet, a character outside the alphabet, '=' inside */
	memcpy(s, good, n + 1);
	s[3] = '-';
	expect_failed_b64(key32, s, NULL, 0, "url-safe char");
	s[3] = '*';
	expect_failed_b64(key32, s, NULL, 0, "bad char");
	s[3] = '=';
	expect_failed_b64(key32, s, NULL, 0, "= inside");
	/* the unused low bits of the last character set (non-canonical) */
	memcpy(s, good, n + 1);
	s[n - 2] = (char)(s[n - 2] == 'A' ? 'B' : s[n - 2] ^ 1);
	expect_failed_b64(key32, s, NULL, 0, "non-canonical");
	/* a changed character that stays valid base64: the tag catches it */
	for (size_t i = 0; i < n - 1; i++) {
		memcpy(s, good, n + 1);
		s[i] = s[i] == 'A' ? 'B' : 'A';
		expect_failed_b64(key32, s, NULL, 0, "changed char");
	}
	free(s);
	kms_free(good);
}
END_TEST

START_TEST(test_arguments)
{
	unsigned char *box = SENTINEL_PTR, *pt = SENTINEL_PTR;
	size_t n = SENTINEL_LEN, len = SENTINEL_LEN;
	char *b64 = (char *)SENTINEL_PTR;
	kms_error e;

	ck_assert_int_eq(kms_box_seal(NULL, "x", 1, NULL, 0, &box, &n, &e),
	    -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_box_seal(key32, NULL, 1, NULL, 0, &box, &n, &e),
	    -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_box_seal(key32, "x", 1, NULL, 1, &box, &n, &e),
	    -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_box_seal(key32, "x", 1, NULL, 0, NULL, &n, &e),
	    -1);
	ck_assert_int_eq(kms_box_seal(key32, "x", 1, NULL, 0, &box, NULL, &e),
	    -1);
	/* over the limit: refused before any allocation or read */
	ck_assert_int_eq(kms_box_seal(key32, "x", KMS_BOX_MAX_PLAINTEXT + 1,
	    NULL, 0, &box, &n, &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_box_seal(key32, "x", 1, "a",
	    KMS_BOX_MAX_PLAINTEXT + 1, &box, &n, &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert(box == SENTINEL_PTR && n == SENTINEL_LEN);
	ck_assert_int_eq(kms_box_seal_b64(key32, "x", 1, NULL, 0, NULL, &e),
	    -1);
	ck_assert_int_eq(kms_box_seal_b64(NULL, "x", 1, NULL, 0, &b64, &e),
	    -1);
	ck_assert(b64 == (char *)SENTINEL_PTR);
	ck_assert_int_eq(kms_box_open(NULL, "x", 1, NULL, 0, &pt, &len, &e),
	    -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_box_open(key32, NULL, 40, NULL, 0, &pt, &len,
	    &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_box_open(key32, "x", KMS_BOX_MAX_PLAINTEXT +
	    KMS_BOX_OVERHEAD + 1, NULL, 0, &pt, &len, &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_box_open(key32, "x", 1, NULL, 0, NULL, &len, &e),
	    -1);
	ck_assert_int_eq(kms_box_open_b64(key32, NULL, NULL, 0, &pt, &len,
	    &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert(pt == SENTINEL_PTR && len == SENTINEL_LEN);
	/* err may be NULL */
	ck_assert_int_eq(kms_box_open(key32, "short", 5, NULL, 0, &pt, &len,
	    NULL), -1);
	ck_assert_int_eq(kms_box_seal(NULL, "x", 1, NULL, 0, &box, &n, NULL),
	    -1);
	/* a fixed-nonce seal needs its nonce */
	ck_assert_int_eq(kmsseal_seal_nonce(key32, NULL, "x", 1, NULL, 0, &box,
	    &n, &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	/* an empty plaintext is a real box of 28 bytes */
	ck_assert_int_eq(kms_box_seal(key32, NULL, 0, NULL, 0, &box, &n, &e),
	    0);
	ck_assert_uint_eq(n, KMS_BOX_OVERHEAD);
	ck_assert_int_eq(kms_box_open(key32, box, n, NULL, 0, &pt, &len, &e),
	    0);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(pt[0], '\0');
	kms_free_secret(pt, len);
	kms_free(box);
}
END_TEST

/* Random nonces: a thousand seals of one message, no nonce twice. */
START_TEST(test_nonces_unique)
{
	enum { N = 1000 };
	static unsigned char nonces[N][KMS_BOX_NONCE_LEN];
	kms_error e;

	for (size_t i = 0; i < N; i++) {
		unsigned char *box = NULL;
		size_t n = 0;

		ck_assert_int_eq(kms_box_seal(key32, "same", 4, NULL, 0, &box,
		    &n, &e), 0);
		memcpy(nonces[i], box, KMS_BOX_NONCE_LEN);
		kms_free(box);
		for (size_t j = 0; j < i; j++)
			ck_assert(memcmp(nonces[i], nonces[j],
			    KMS_BOX_NONCE_LEN) != 0);
	}
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("seal");
	TCase *tc = tcase_create("vectors");

	tcase_add_test(tc, test_lockbox_published);
	tcase_add_test(tc, test_kms_key_vectors);
	suite_add_tcase(s, tc);

	tc = tcase_create("properties");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_round_trip_sizes);
	tcase_add_test(tc, test_tamper_every_byte);
	tcase_add_test(tc, test_wrong_key);
	tcase_add_test(tc, test_wrong_associated_data);
	tcase_add_test(tc, test_bad_base64);
	tcase_add_test(tc, test_arguments);
	tcase_add_test(tc, test_nonces_unique);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
