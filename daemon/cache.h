/*
 * cache.h: the data-key cache ([key] cache_ttl, cache_max_uses).
 *
 * A decrypt of a key with a cache_ttl is answered from the cache when the
 * same key, version, provider ciphertext and canonical context were
 * decrypted by the provider less than cache_ttl ago and the entry has
 * been used fewer than cache_max_uses times (0: no use limit). An entry is
 * found by the SHA-256 of those four (the ciphertext itself is not kept).
 * Only the data key is kept, in OpenSSL's secure heap, and it is wiped
 * when the entry expires, is used up, is evicted, or the cache is flushed:
 * the daemon flushes it when decryption is disabled (admin or breaker), on
 * every reload, and at exit. The policy gate, the breaker, the audit entry
 * and the counters see a hit like any other decrypt.
 */
#ifndef KMSD_CACHE_H
#define KMSD_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Entries, all keys together (secure heap: 512 x 112 bytes). */
#define CACHE_SLOTS 512
/* Longest plaintext kept: data keys are 32 bytes. */
#define CACHE_MAX_PLAINTEXT 64
/* Longest cache_ttl accepted. */
#define CACHE_MAX_TTL_MS (60u * 60u * 1000u)

struct cache;

/* What an entry is found by. */
struct cache_id {
	uint8_t h[32];
};

/* NULL when the secure heap has no room. */
struct cache *cache_new(void);
void cache_free(struct cache *c);
/* Wipe every entry; a new generation starts. */
void cache_flush(struct cache *c);
/* The generation: a put carries the one its decrypt started in and is
 * dropped when a flush came between. */
uint64_t cache_gen(const struct cache *c);
/* The id of (key, version, ciphertext, context); ctx_json NULL: none.
 * Hashed with c's kept digest context. */
void cache_id(struct cache *c, const char *key, uint32_t version,
    const uint8_t *ct, size_t ct_len, const uint8_t *ctx_json,
    size_t ctx_len, struct cache_id *ret);
/* 1 and the plaintext appended to out on a hit (one use counted), else 0.
 * now_ms: a monotonic clock. */
int cache_get(struct cache *c, const struct cache_id *id, uint64_t now_ms,
    struct buf *out);
/* Keep plaintext for ttl_ms and max_uses hits (0: any number). Longer
 * plaintexts are not kept. */
void cache_put(struct cache *c, uint64_t gen, const struct cache_id *id,
    const uint8_t *pt, size_t len, uint64_t now_ms, uint32_t ttl_ms,
    uint32_t max_uses);
/* Live entries (for status and tests). */
size_t cache_count(const struct cache *c, uint64_t now_ms);

#endif
