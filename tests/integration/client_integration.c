/*
 * client_integration.c: libkmsclient against a real kmsd.
 *
 * Run by tests/integration/run_client.py, which starts kmsd with two
 * sockets and passes their paths in the environment:
 *   KMSD_TEST_ENCRYPT_SOCKET  allow = generate, encrypt
 *   KMSD_TEST_DECRYPT_SOCKET  allow = generate, encrypt, decrypt, rewrap
 * and three keys: default (local provider), test (insecure-test-key),
 * enconly (insecure-test-key/encrypt: decrypt always fails).
 *
 * Uses the public API only (kmsclient.h), as an application would.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "kmsclient.h"

/* Items in the bulk rewrap case: the size of one kmsctl rewrap chunk. */
#define BULK_N 1000
/* Threads sharing one client, and round trips each. */
#define THREADS 4
#define THREAD_ROUNDS 50

static const char *
sock_path(const char *env)
{
	const char *p = getenv(env);

	if (p == NULL || p[0] == '\0')
		ck_abort_msg("%s is not set (run through run_client.py)", env);
	return p;
}

static kms_client *
open_client(const char *env)
{
	kms_client *c = NULL;
	kms_error e;

	if (kms_connect(&c, sock_path(env), &e) != 0)
		ck_abort_msg("connect %s: %s: %s", env, e.code, e.message);
	return c;
}

#define ENC() open_client("KMSD_TEST_ENCRYPT_SOCKET")
#define DEC() open_client("KMSD_TEST_DECRYPT_SOCKET")

static kms_context *
ctx_pair(const char *k, const char *v)
{
	kms_context *ctx;
	kms_error e;

	ck_assert_int_eq(kms_context_new(&ctx, &e), 0);
	if (k != NULL)
		ck_assert_int_eq(kms_context_set(ctx, k, v, &e), 0);
	return ctx;
}

/* Generate on the encrypt socket, decrypt on the decrypt socket. */
static void
roundtrip(const char *key, const kms_context *ctx)
{
	unsigned char dk[KMS_DATA_KEY_LEN], *pt = NULL;
	kms_client *enc = ENC(), *dec = DEC();
	char *stored = NULL;
	unsigned version;
	size_t len = 0;
	kms_error e;

	if (kms_generate_data_key(enc, key, ctx, dk, &stored, &e) != 0)
		ck_abort_msg("generate %s: %s: %s", key, e.code, e.message);
	ck_assert_int_eq(kms_stored_version(stored, &version), 0);
	ck_assert_uint_eq(version, 1);
	if (kms_decrypt(dec, key, ctx, stored, &pt, &len, &e) != 0)
		ck_abort_msg("decrypt %s: %s: %s", key, e.code, e.message);
	ck_assert_uint_eq(len, KMS_DATA_KEY_LEN);
	ck_assert_mem_eq(pt, dk, KMS_DATA_KEY_LEN);
	kms_free_secret(pt, len);
	kms_free(stored);
	kms_close(enc);
	kms_close(dec);
}

/* Decrypting stored (made under made_ctx) with ctx must fail with code. */
static void
decrypt_fails(kms_client *c, const char *key, const kms_context *ctx,
    const char *stored, const char *code)
{
	unsigned char *pt = NULL;
	size_t len = 0;
	kms_error e;

	ck_assert_int_eq(kms_decrypt(c, key, ctx, stored, &pt, &len, &e), -1);
	ck_assert_str_eq(e.code, code);
	ck_assert_ptr_null(pt);
}

START_TEST(test_roundtrip_no_context)
{
	roundtrip("default", NULL);
	roundtrip("test", NULL);
}
END_TEST

START_TEST(test_roundtrip_context)
{
	kms_context *ctx = ctx_pair("user_id", "42");
	kms_error e;

	ck_assert_int_eq(kms_context_set_int(ctx, "n", 7, &e), 0);
	roundtrip("default", ctx);
	roundtrip("test", ctx);
	kms_context_free(ctx);
}
END_TEST

START_TEST(test_roundtrip_empty_context)
{
	kms_context *empty = ctx_pair(NULL, NULL);

	roundtrip("default", empty);
	roundtrip("test", empty);
	kms_context_free(empty);
}
END_TEST

START_TEST(test_empty_is_not_none)
{
	static const char *const keys[] = { "default", "test" };
	kms_context *empty = ctx_pair(NULL, NULL);
	unsigned char dk[KMS_DATA_KEY_LEN];
	kms_client *dec = DEC();
	char *s_none, *s_empty;
	kms_error e;

	for (size_t i = 0; i < 2; i++) {
		ck_assert_int_eq(kms_generate_data_key(dec, keys[i], NULL, dk,
		    &s_none, &e), 0);
		ck_assert_int_eq(kms_generate_data_key(dec, keys[i], empty,
		    dk, &s_empty, &e), 0);
		decrypt_fails(dec, keys[i], empty, s_none, "decryption_failed");
		decrypt_fails(dec, keys[i], NULL, s_empty, "decryption_failed");
		kms_free(s_none);
		kms_free(s_empty);
	}
	kms_context_free(empty);
	kms_close(dec);
}
END_TEST

START_TEST(test_wrong_context)
{
	static const char *const keys[] = { "default", "test" };
	kms_context *right = ctx_pair("id", "1"), *wrong = ctx_pair("id", "2");
	kms_context *more = ctx_pair("id", "1");
	unsigned char dk[KMS_DATA_KEY_LEN];
	kms_client *dec = DEC();
	char *stored;
	kms_error e;

	ck_assert_int_eq(kms_context_set(more, "x", "y", &e), 0);
	for (size_t i = 0; i < 2; i++) {
		ck_assert_int_eq(kms_generate_data_key(dec, keys[i], right, dk,
		    &stored, &e), 0);
		decrypt_fails(dec, keys[i], wrong, stored, "decryption_failed");
		decrypt_fails(dec, keys[i], more, stored, "decryption_failed");
		decrypt_fails(dec, keys[i], NULL, stored, "decryption_failed");
		kms_free(stored);
	}
	kms_context_free(right);
	kms_context_free(wrong);
	kms_context_free(more);
	kms_close(dec);
}
END_TEST

START_TEST(test_decrypt_on_encrypt_socket)
{
	unsigned char dk[KMS_DATA_KEY_LEN];
	kms_client *enc = ENC();
	char *stored, *re = NULL;
	kms_error e;

	ck_assert_int_eq(kms_generate_data_key(enc, "default", NULL, dk,
	    &stored, &e), 0);
	decrypt_fails(enc, "default", NULL, stored, "permission_denied");
	ck_assert_int_eq(kms_rewrap(enc, "default", NULL, NULL, stored, &re,
	    &e), -1);
	ck_assert_str_eq(e.code, "permission_denied");
	ck_assert_ptr_null(re);
	kms_free(stored);
	kms_close(enc);
}
END_TEST

START_TEST(test_unknown_key)
{
	unsigned char dk[KMS_DATA_KEY_LEN];
	kms_client *dec = DEC();
	char *stored = NULL;
	kms_error e;

	ck_assert_int_eq(kms_generate_data_key(dec, "nosuchkey", NULL, dk,
	    &stored, &e), -1);
	ck_assert_str_eq(e.code, "unknown_key");
	ck_assert_ptr_null(stored);
	ck_assert_int_eq(kms_encrypt(dec, "nosuchkey", NULL, "x", 1, &stored,
	    &e), -1);
	ck_assert_str_eq(e.code, "unknown_key");
	kms_close(dec);
}
END_TEST

START_TEST(test_enconly)
{
	unsigned char dk[KMS_DATA_KEY_LEN];
	kms_client *enc = ENC(), *dec = DEC();
	char *stored;
	kms_error e;

	ck_assert_int_eq(kms_generate_data_key(enc, "enconly", NULL, dk,
	    &stored, &e), 0);
	decrypt_fails(dec, "enconly", NULL, stored, "decryption_failed");
	kms_free(stored);
	kms_close(enc);
	kms_close(dec);
}
END_TEST

START_TEST(test_encrypt_decrypt)
{
	static const char *const keys[] = { "default", "test" };
	unsigned char big[KMS_MAX_PLAINTEXT + 1], *pt = NULL;
	kms_context *ctx = ctx_pair("Model", "User");
	kms_client *enc = ENC(), *dec = DEC();
	char *stored = NULL;
	size_t len = 0;
	kms_error e;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7);
	for (size_t k = 0; k < 2; k++) {
		ck_assert_int_eq(kms_encrypt(enc, keys[k], ctx, big,
		    KMS_MAX_PLAINTEXT, &stored, &e), 0);
		ck_assert_int_eq(kms_decrypt(dec, keys[k], ctx, stored, &pt,
		    &len, &e), 0);
		ck_assert_uint_eq(len, KMS_MAX_PLAINTEXT);
		ck_assert_mem_eq(pt, big, len);
		kms_free_secret(pt, len);
		kms_free(stored);
		stored = NULL;
	}
	ck_assert_int_eq(kms_encrypt(enc, "default", ctx, big, sizeof(big),
	    &stored, &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	kms_context_free(ctx);
	kms_close(enc);
	kms_close(dec);
}
END_TEST

START_TEST(test_hello)
{
	kms_client *enc = ENC();
	kms_hello_info *h;
	int has_default = 0;
	kms_error e;

	ck_assert_int_eq(kms_hello(enc, &h, &e), 0);
	ck_assert_str_eq(h->socket, "encrypt");
	ck_assert_uint_eq(h->n_allow, 2);
	for (size_t i = 0; i < h->n_allow; i++)
		ck_assert(strcmp(h->allow[i], "generate") == 0 ||
		    strcmp(h->allow[i], "encrypt") == 0);
	for (size_t i = 0; i < h->n_keys; i++)
		if (strcmp(h->keys[i].name, "default") == 0)
			has_default = h->keys[i].version == 1;
	ck_assert(has_default);
	ck_assert_uint_ge(h->protocol, 1);
	kms_free(h);
	kms_close(enc);
}
END_TEST

/* Run b, failing the test on a batch-wide error. */
static void
run_batch(kms_batch *b)
{
	kms_error e;

	if (kms_batch_run(b, &e) != 0)
		ck_abort_msg("batch: %s: %s", e.code, e.message);
}

START_TEST(test_bulk_rewrap)
{
	static unsigned char keys[BULK_N][KMS_DATA_KEY_LEN];
	kms_context *ctx[BULK_N], *new_ctx = ctx_pair("rotated", "yes");
	kms_batch *gen, *rw, *back;
	kms_client *dec = DEC();
	const unsigned char *pt;
	const char *stored;
	char num[16];
	size_t len;
	kms_error e;

	ck_assert_int_eq(kms_batch_new(dec, &gen, &e), 0);
	for (size_t i = 0; i < BULK_N; i++) {
		snprintf(num, sizeof(num), "%zu", i);
		ctx[i] = ctx_pair("row", num);
		ck_assert_int_eq(kms_batch_add_generate(gen, i % 2 ? "test" :
		    "default", ctx[i], &e), 0);
	}
	run_batch(gen);

	/* 1000 rewraps, one connection, per-row old context. */
	ck_assert_int_eq(kms_batch_new(dec, &rw, &e), 0);
	for (size_t i = 0; i < BULK_N; i++) {
		if (kms_batch_result(gen, i, &stored, &pt, &len, &e) != 0)
			ck_abort_msg("generate %zu: %s: %s", i, e.code,
			    e.message);
		ck_assert_uint_eq(len, KMS_DATA_KEY_LEN);
		memcpy(keys[i], pt, KMS_DATA_KEY_LEN);
		ck_assert_int_eq(kms_batch_add_rewrap(rw, i % 2 ? "test" :
		    "default", ctx[i], new_ctx, stored, &e), 0);
	}
	ck_assert_uint_eq(kms_batch_count(rw), BULK_N);
	run_batch(rw);

	ck_assert_int_eq(kms_batch_new(dec, &back, &e), 0);
	for (size_t i = 0; i < BULK_N; i++) {
		if (kms_batch_result(rw, i, &stored, NULL, NULL, &e) != 0)
			ck_abort_msg("rewrap %zu: %s: %s", i, e.code,
			    e.message);
		ck_assert_int_eq(kms_batch_add_decrypt(back, i % 2 ? "test" :
		    "default", new_ctx, stored, &e), 0);
	}
	run_batch(back);
	for (size_t i = 0; i < BULK_N; i++) {
		if (kms_batch_result(back, i, NULL, &pt, &len, &e) != 0)
			ck_abort_msg("decrypt %zu: %s: %s", i, e.code,
			    e.message);
		ck_assert_uint_eq(len, KMS_DATA_KEY_LEN);
		ck_assert_mem_eq(pt, keys[i], KMS_DATA_KEY_LEN);
	}

	/* The old context no longer opens a rewrapped value. */
	ck_assert_int_eq(kms_batch_result(rw, 0, &stored, NULL, NULL, &e), 0);
	decrypt_fails(dec, "default", ctx[0], stored, "decryption_failed");

	for (size_t i = 0; i < BULK_N; i++)
		kms_context_free(ctx[i]);
	kms_context_free(new_ctx);
	kms_batch_free(gen);
	kms_batch_free(rw);
	kms_batch_free(back);
	memset(keys, 0, sizeof(keys));
	kms_close(dec);
}
END_TEST

static void *
thread_main(void *arg)
{
	kms_client *c = arg;
	kms_context *ctx;
	kms_error e;
	char num[32];

	snprintf(num, sizeof(num), "%p", (void *)&num);
	if (kms_context_new(&ctx, &e) != 0 ||
	    kms_context_set(ctx, "thread", num, &e) != 0)
		return (void *)"context";
	for (int i = 0; i < THREAD_ROUNDS; i++) {
		unsigned char dk[KMS_DATA_KEY_LEN], *pt = NULL;
		char *stored = NULL;
		size_t len = 0;
		int ok;

		if (kms_generate_data_key(c, i % 2 ? "test" : "default", ctx,
		    dk, &stored, &e) != 0) {
			kms_context_free(ctx);
			return (void *)"generate";
		}
		ok = kms_decrypt(c, i % 2 ? "test" : "default", ctx, stored,
		    &pt, &len, &e) == 0 && len == KMS_DATA_KEY_LEN &&
		    memcmp(pt, dk, len) == 0;
		kms_free_secret(pt, len);
		kms_free(stored);
		if (!ok) {
			kms_context_free(ctx);
			return (void *)"decrypt";
		}
	}
	kms_context_free(ctx);
	return NULL;
}

START_TEST(test_threads_share_client)
{
	pthread_t th[THREADS];
	kms_client *dec = DEC();
	void *r;

	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main,
		    dec), 0);
	for (int i = 0; i < THREADS; i++) {
		ck_assert_int_eq(pthread_join(th[i], &r), 0);
		if (r != NULL)
			ck_abort_msg("thread %d failed at %s", i,
			    (const char *)r);
	}
	kms_close(dec);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("client_integration");
	TCase *tc = tcase_create("client_integration");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_roundtrip_no_context);
	tcase_add_test(tc, test_roundtrip_context);
	tcase_add_test(tc, test_roundtrip_empty_context);
	tcase_add_test(tc, test_empty_is_not_none);
	tcase_add_test(tc, test_wrong_context);
	tcase_add_test(tc, test_decrypt_on_encrypt_socket);
	tcase_add_test(tc, test_unknown_key);
	tcase_add_test(tc, test_enconly);
	tcase_add_test(tc, test_encrypt_decrypt);
	tcase_add_test(tc, test_hello);
	tcase_add_test(tc, test_bulk_rewrap);
	tcase_add_test(tc, test_threads_share_client);
	suite_add_tcase(s, tc);
	return s;
}

#include "../unit/check_main.h"
