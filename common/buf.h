/*
 * buf.h: bounded byte buffers that never leave secrets behind.
 *
 * Every buffer has a hard cap set at init; growth past it fails with
 * ERR_TOO_LARGE instead of allocating. Growth allocates a new block, copies,
 * and wipes the old block before freeing it (never plain realloc), and
 * consuming bytes from the front wipes the tail that moved. buf_done wipes
 * the whole capacity. So a buffer that carried a data key, a token or a
 * plaintext leaves nothing readable in freed memory.
 *
 * No I/O, no logging.
 */
#ifndef KMSD_BUF_H
#define KMSD_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t max;	/* hard cap on len */
};

/* A string slice; not NUL-terminated, not owned. */
struct str {
	const char *p;
	size_t len;
};

#define STR_NULL ((struct str){ NULL, 0 })

void buf_init(struct buf *b, size_t max);
/* Wipe and free; the buffer may be re-used after buf_init. */
void buf_done(struct buf *b);
/* Make room for n more bytes. 0, ERR_TOO_LARGE or ERR_NOMEM. */
int buf_reserve(struct buf *b, size_t n);
int buf_append_slow(struct buf *b, const void *p, size_t n);

/* Append n bytes. Inline: the common case (room already there) is a
 * compare and a copy; growth and the limit are in buf.c. */
static inline int
buf_append(struct buf *b, const void *p, size_t n)
{
	/* +1: buf_reserve always keeps room for buf_cstr's terminator. */
	if (n == 0)
		return 0;
	if (b->data == NULL || n >= b->cap - b->len)
		return buf_append_slow(b, p, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static inline int
buf_append_byte(struct buf *b, uint8_t c)
{
	if (b->data == NULL || b->cap - b->len < 2)
		return buf_append_slow(b, &c, 1);
	b->data[b->len++] = c;
	return 0;
}

int buf_append_str(struct buf *b, const char *s);
/* Drop n bytes from the front, wiping what was vacated. */
void buf_consume(struct buf *b, size_t n);
/* Wipe the contents, keep the allocation. */
void buf_clear(struct buf *b);
/* Append a NUL that is not counted in len (for C string use). */
int buf_cstr(struct buf *b);

/* Wipe n bytes at p so that no compiler removes it: glibc's
 * explicit_bzero, a memset the optimiser must keep. OPENSSL_cleanse does
 * the same a byte-sized step at a time here, which cost microseconds on
 * the request path (the main loop's 32 KiB stack wipe added 7 us to a
 * round trip). */
void wipe(void *p, size_t n);

int str_eq(struct str s, const char *c);

#endif
