/*
 * libmem.c: allocation functions that wipe what they free (see libmem.h).
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "buf.h"
#include "libmem.h"

void *
libmem_malloc(size_t n)
{
	return malloc(n);
}

void *
libmem_calloc(size_t nmemb, size_t size)
{
	return calloc(nmemb, size);
}

char *
libmem_strdup(const char *s)
{
	return strdup(s);
}

void
libmem_free(void *p)
{
	if (p == NULL)
		return;
	wipe(p, malloc_usable_size(p));
	free(p);
}

/* Never the C library's realloc: it would free the old block unwiped. A
 * block that already has the room stays where it is (what lies past the
 * new size is wiped when it is freed, with the rest). */
void *
libmem_realloc(void *p, size_t n)
{
	size_t have;
	void *q;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		libmem_free(p);
		return NULL;
	}
	have = malloc_usable_size(p);
	if (n <= have)
		return p;
	if ((q = malloc(n)) == NULL)
		return NULL;
	memcpy(q, p, have);
	libmem_free(p);
	return q;
}

static void *
libmem_ssl_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return libmem_malloc(n);
}

static void *
libmem_ssl_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return libmem_realloc(p, n);
}

static void
libmem_ssl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	libmem_free(p);
}

int
libmem_install(void)
{
	json_set_alloc_funcs(libmem_malloc, libmem_free);
	return CRYPTO_set_mem_functions(libmem_ssl_malloc, libmem_ssl_realloc,
	    libmem_ssl_free) == 1 ? 0 : -1;
}
