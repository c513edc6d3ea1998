/*
 * cache.c: the data-key cache (see cache.h).
 *
 * A fixed table in the secure heap, open addressing over a short probe
 * window: a full window evicts the entry closest to expiring. No
 * allocation after cache_new, nothing kept but the id, the times and the
 * data key.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cache.h"

/* Slots looked at for one id. */
#define CACHE_PROBE 8

struct cache_entry {
	uint8_t id[32];
	uint64_t expires_ms;		/* 0: free */
	uint32_t uses_left;		/* when limited */
	uint8_t limited;
	uint8_t len;
	uint8_t pt[CACHE_MAX_PLAINTEXT];
};

struct cache {
	struct cache_entry e[CACHE_SLOTS];
	uint64_t gen;			/* flushes so far */
	EVP_MD *sha256;			/* fetched once */
	EVP_MD_CTX *md;			/* reused for every id */
};

_Static_assert(CACHE_MAX_PLAINTEXT <= UINT8_MAX, "len is one byte");

struct cache *
cache_new(void)
{
	struct cache *c;

	if ((c = OPENSSL_secure_zalloc(sizeof(*c))) == NULL)
		return NULL;
	if ((c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
	    (c->md = EVP_MD_CTX_new()) == NULL) {
		cache_free(c);
		return NULL;
	}
	return c;
}

void
cache_free(struct cache *c)
{
	if (c == NULL)
		return;
	EVP_MD_CTX_free(c->md);
	EVP_MD_free(c->sha256);
	OPENSSL_secure_clear_free(c, sizeof(*c));
}

static void
cache_drop(struct cache_entry *e)
{
	OPENSSL_cleanse(e, sizeof(*e));
}

void
cache_flush(struct cache *c)
{
	if (c == NULL)
		return;
	OPENSSL_cleanse(c->e, sizeof(c->e));
	c->gen++;
}

uint64_t
cache_gen(const struct cache *c)
{
	return c == NULL ? 0 : c->gen;
}

static void
cache_hash_part(EVP_MD_CTX *md, const void *p, size_t n)
{
	uint8_t len[8];

	/* Length first, so no two different tuples hash the same bytes. */
	for (int i = 0; i < 8; i++)
		len[i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
	EVP_DigestUpdate(md, len, sizeof(len));
	if (n > 0)
		EVP_DigestUpdate(md, p, n);
}

void
cache_id(struct cache *c, const char *key, uint32_t version,
    const uint8_t *ct, size_t ct_len, const uint8_t *ctx_json, size_t ctx_len,
    struct cache_id *ret)
{
	uint8_t v[5] = { (uint8_t)(version >> 24), (uint8_t)(version >> 16),
	    (uint8_t)(version >> 8), (uint8_t)version, ctx_json != NULL };
	unsigned int n = 0;

	if (EVP_DigestInit_ex2(c->md, c->sha256, NULL) != 1) {
		/* An id no entry can have: every lookup misses. */
		memset(ret->h, 0, sizeof(ret->h));
		return;
	}
	cache_hash_part(c->md, key, strlen(key));
	cache_hash_part(c->md, v, sizeof(v));
	cache_hash_part(c->md, ct, ct_len);
	cache_hash_part(c->md, ctx_json, ctx_json != NULL ? ctx_len : 0);
	if (EVP_DigestFinal_ex(c->md, ret->h, &n) != 1 || n != sizeof(ret->h))
		memset(ret->h, 0, sizeof(ret->h));
}

static size_t
cache_slot(const struct cache_id *id)
{
	return ((size_t)id->h[0] << 8 | id->h[1]) % CACHE_SLOTS;
}

static int
cache_zero_id(const struct cache_id *id)
{
	static const uint8_t zero[32];

	return memcmp(id->h, zero, sizeof(zero)) == 0;
}

/* The live entry with this id, or NULL; expired ones met on the way are
 * wiped. */
static struct cache_entry *
cache_find(struct cache *c, const struct cache_id *id, uint64_t now_ms)
{
	size_t s = cache_slot(id);

	for (int i = 0; i < CACHE_PROBE; i++, s = (s + 1) % CACHE_SLOTS) {
		struct cache_entry *e = &c->e[s];

		if (e->expires_ms == 0)
			continue;
		if (e->expires_ms <= now_ms) {
			cache_drop(e);
			continue;
		}
		if (CRYPTO_memcmp(e->id, id->h, sizeof(e->id)) == 0)
			return e;
	}
	return NULL;
}

int
cache_get(struct cache *c, const struct cache_id *id, uint64_t now_ms,
    struct buf *out)
{
	struct cache_entry *e;

	if (c == NULL || cache_zero_id(id) ||
	    (e = cache_find(c, id, now_ms)) == NULL)
		return 0;
	if (buf_append(out, e->pt, e->len) != 0)
		return 0;
	if (e->limited && --e->uses_left == 0)
		cache_drop(e);
	return 1;
}

void
cache_put(struct cache *c, uint64_t gen, const struct cache_id *id,
    const uint8_t *pt, size_t len, uint64_t now_ms, uint32_t ttl_ms,
    uint32_t max_uses)
{
	struct cache_entry *e, *victim = NULL;
	size_t s;

	/* A decrypt that started before a flush must not refill the cache
	 * after it (the flush may be a disable or a key change). */
	if (c == NULL || gen != c->gen || ttl_ms == 0 ||
	    len > CACHE_MAX_PLAINTEXT || cache_zero_id(id))
		return;
	if ((e = cache_find(c, id, now_ms)) == NULL) {
		/* A free slot in the window, else the one expiring first. */
		s = cache_slot(id);
		for (int i = 0; i < CACHE_PROBE; i++, s = (s + 1) % CACHE_SLOTS) {
			e = &c->e[s];
			if (e->expires_ms == 0) {
				victim = e;
				break;
			}
			if (victim == NULL || e->expires_ms < victim->expires_ms)
				victim = e;
		}
		e = victim;
	}
	cache_drop(e);
	memcpy(e->id, id->h, sizeof(e->id));
	memcpy(e->pt, pt, len);
	e->len = (uint8_t)len;
	e->expires_ms = now_ms + ttl_ms;
	e->limited = max_uses != 0;
	e->uses_left = max_uses;
}

size_t
cache_count(const struct cache *c, uint64_t now_ms)
{
	size_t n = 0;

	if (c == NULL)
		return 0;
	for (size_t i = 0; i < CACHE_SLOTS; i++)
		n += c->e[i].expires_ms > now_ms;
	return n;
}
