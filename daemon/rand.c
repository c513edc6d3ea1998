/*
 * rand.c: the random-byte pool (see rand.h).
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "rand.h"

/* One refill serves about 340 wraps (12-byte nonces) or 128 data keys. */
#define RAND_POOL 4096

static uint8_t *rand_pool;	/* secure heap */
static size_t rand_left;	/* unused bytes at the end of the pool */

int
rand_fill(uint8_t *p, size_t n)
{
	size_t k;

	/* Requests larger than the pool go straight to OpenSSL. */
	if (n > RAND_POOL / 4)
		return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
	if (rand_pool == NULL &&
	    (rand_pool = OPENSSL_secure_malloc(RAND_POOL)) == NULL)
		return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
	while (n > 0) {
		if (rand_left == 0) {
			if (RAND_bytes(rand_pool, RAND_POOL) != 1)
				return -1;
			rand_left = RAND_POOL;
		}
		k = n < rand_left ? n : rand_left;
		rand_left -= k;
		memcpy(p, rand_pool + rand_left, k);
		OPENSSL_cleanse(rand_pool + rand_left, k);
		p += k;
		n -= k;
	}
	return 0;
}

void
rand_done(void)
{
	if (rand_pool != NULL)
		OPENSSL_secure_clear_free(rand_pool, RAND_POOL);
	rand_pool = NULL;
	rand_left = 0;
}
