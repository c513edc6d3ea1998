/*
 * rand.h: random bytes for nonces and data keys without a system call per
 * request.
 *
 * OpenSSL's RAND_bytes checks getpid() on every call (fork safety), which
 * on the wrap path was a third system call per request. Bytes are drawn
 * instead from a 4 KiB pool in OpenSSL's secure heap, refilled with one
 * RAND_bytes when it runs dry; every byte handed out is wiped from the pool
 * at once, so a byte is never handed out twice and none stays behind.
 * kmsd never forks after start, and it is one thread: no locking.
 */
#ifndef KMSD_RAND_H
#define KMSD_RAND_H

#include <stddef.h>
#include <stdint.h>

/* n random bytes into p: 0, or -1 when the generator failed. */
int rand_fill(uint8_t *p, size_t n);
/* Wipe and free the pool (at exit). */
void rand_done(void);

#endif
