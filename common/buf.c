/*
 * buf.c: bounded wipe-on-growth, wipe-on-free byte buffers (see buf.h).
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"

/* Smallest allocation; avoids a chain of tiny growths for short messages. */
#define BUF_MIN_CAP 256

void
wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
buf_done(struct buf *b)
{
	if (b->data != NULL) {
		wipe(b->data, b->cap);
		free(b->data);
	}
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int
buf_reserve(struct buf *b, size_t n)
{
	size_t need, ncap;
	uint8_t *nd;

	/* +1 leaves room for buf_cstr's terminator. */
	if (n > b->max - b->len)
		return ERR_TOO_LARGE;
	need = b->len + n + 1;
	/* data is NULL exactly when cap is 0; saying so lets the analyzer
	 * (./dev lint) see that a 0 return always leaves data set. */
	if (need <= b->cap && b->data != NULL)
		return 0;
	ncap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
	while (ncap < need)
		ncap *= 2;
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	if ((nd = malloc(ncap)) == NULL)
		return ERR_NOMEM;
	if (b->data != NULL) {
		memcpy(nd, b->data, b->len);
		wipe(b->data, b->cap);
		free(b->data);
	}
	b->data = nd;
	b->cap = ncap;
	return 0;
}

int
buf_append_slow(struct buf *b, const void *p, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	if ((r = buf_reserve(b, n)) != 0)
		return r;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int
buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_clear(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	wipe(b->data + b->len - n, n);
	b->len -= n;
}

void
buf_clear(struct buf *b)
{
	if (b->data != NULL && b->len > 0)
		wipe(b->data, b->len);
	b->len = 0;
}

int
buf_cstr(struct buf *b)
{
	int r;

	/* buf_reserve always keeps one spare byte past len. */
	if (b->data == NULL && (r = buf_reserve(b, 0)) != 0)
		return r;
	b->data[b->len] = '\0';
	return 0;
}

int
str_eq(struct str s, const char *c)
{
	size_t n = strlen(c);

	return s.p != NULL && s.len == n && memcmp(s.p, c, n) == 0;
}
