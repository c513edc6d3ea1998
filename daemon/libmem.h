/*
 * libmem.h: the heap of the libraries kmsd hands secrets to.
 *
 * libcurl (its receive and send buffers), OpenSSL (TLS records, decrypted
 * and about to be encrypted) and jansson (every string it parses) hold
 * data keys, plaintexts and credentials on their way to and from a KMS,
 * and free those blocks without wiping them. kmsd gives the three these
 * allocation functions instead of the C library's: a block is wiped whole
 * (malloc_usable_size) when it is freed, and when realloc moves it.
 */
#ifndef KMSD_LIBMEM_H
#define KMSD_LIBMEM_H

#include <stddef.h>

void *libmem_malloc(size_t n);
void *libmem_calloc(size_t nmemb, size_t size);
void *libmem_realloc(void *p, size_t n);
char *libmem_strdup(const char *s);
void libmem_free(void *p);

/*
 * OpenSSL's and jansson's allocations go through the functions above:
 * call before anything allocates through OpenSSL (first thing in main).
 * 0, or -1 when OpenSSL has allocated already and refuses the change.
 * libcurl takes them in its global init (http.c).
 */
int libmem_install(void);

#endif
