/*
 * test_libmem.c: the allocation functions kmsd gives libcurl, OpenSSL and
 * jansson (daemon/libmem.c).
 *
 * What a freed block held cannot be read back without undefined behaviour;
 * integ_secrets scans the running daemon for that. Here: OpenSSL takes the
 * functions before its first allocation and refuses them after (kmsd then
 * stops at start), and realloc keeps what a block holds wherever it ends.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <openssl/crypto.h>

#include "libmem.h"

START_TEST(openssl_takes_them_before_its_first_allocation)
{
	CRYPTO_malloc_fn m;
	CRYPTO_realloc_fn r;
	CRYPTO_free_fn f;
	void *p;

	/* Each case runs in a fresh process: OpenSSL has allocated nothing. */
	ck_assert_int_eq(libmem_install(), 0);
	CRYPTO_get_mem_functions(&m, &r, &f);
	ck_assert_ptr_ne((void *)m, (void *)CRYPTO_malloc);
	ck_assert_ptr_ne((void *)r, (void *)CRYPTO_realloc);
	ck_assert_ptr_ne((void *)f, (void *)CRYPTO_free);
	p = OPENSSL_malloc(64);
	ck_assert_ptr_nonnull(p);
	memset(p, 0x5a, 64);
	p = OPENSSL_realloc(p, 4096);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(((unsigned char *)p)[63], 0x5a);
	OPENSSL_free(p);
}
END_TEST

START_TEST(openssl_refuses_them_after_it_allocated)
{
	void *p = OPENSSL_malloc(16);

	ck_assert_ptr_nonnull(p);
	OPENSSL_free(p);
	ck_assert_int_eq(libmem_install(), -1);
}
END_TEST

START_TEST(realloc_keeps_the_contents)
{
	char *p, *q, *r;

	p = libmem_malloc(10);
	ck_assert_ptr_nonnull(p);
	memcpy(p, "abcdefghi", 10);
	/* Grows: moves, the bytes follow. */
	q = libmem_realloc(p, 5000);
	ck_assert_ptr_nonnull(q);
	ck_assert_str_eq(q, "abcdefghi");
	memset(q + 10, 'x', 4990);
	/* Shrinks: stays where it is. */
	r = libmem_realloc(q, 10);
	ck_assert_ptr_eq(r, q);
	ck_assert_str_eq(r, "abcdefghi");
	/* Size 0 frees. */
	ck_assert_ptr_null(libmem_realloc(r, 0));
	/* NULL allocates. */
	p = libmem_realloc(NULL, 32);
	ck_assert_ptr_nonnull(p);
	libmem_free(p);
	libmem_free(NULL);
}
END_TEST

START_TEST(calloc_and_strdup)
{
	unsigned char *z = libmem_calloc(100, 3);
	char *s = libmem_strdup("kmsd");

	ck_assert_ptr_nonnull(z);
	for (size_t i = 0; i < 300; i++)
		ck_assert_int_eq(z[i], 0);
	ck_assert_str_eq(s, "kmsd");
	libmem_free(z);
	libmem_free(s);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("libmem");
	TCase *tc = tcase_create("libmem");

	tcase_add_test(tc, openssl_takes_them_before_its_first_allocation);
	tcase_add_test(tc, openssl_refuses_them_after_it_allocated);
	tcase_add_test(tc, realloc_keeps_the_contents);
	tcase_add_test(tc, calloc_and_strdup);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
