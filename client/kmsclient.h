/*
 * kmsclient.h: libkmsclient, the C client of kmsd (the local key broker).
 *
 * An application connects to one of kmsd's Unix sockets and asks it to
 * generate a data key, wrap (encrypt) or unwrap (decrypt) one under a named
 * master key, or rewrap a stored ciphertext to the key's current version.
 * Stored ciphertexts are the strings kms_encrypted keeps ("v{N}:" + base64).
 *
 * Conventions
 * - Every call that can fail returns 0 or -1 and, on -1, fills the kms_error
 *   passed last (which may be NULL when the caller does not care).
 * - `ret_` out-parameters are written only on success.
 * - The library never logs, never aborts, never raises SIGPIPE.
 * - Buffers that held a data key or a plaintext are released with
 *   kms_free_secret(p, len) (wiped, then freed); every other string the
 *   library returns is released with kms_free(p).
 *
 * Error codes (kms_error.code)
 *   From the server, the stable wire codes: bad_request, too_large,
 *   unknown_op, unknown_key, permission_denied, decryption_failed,
 *   version_not_active, decrypt_disabled, audit_unavailable,
 *   provider_unavailable, provider_denied, throttled, busy, timeout,
 *   internal (a newer server may add codes: treat unknown ones as failures).
 *   From the library itself:
 *     connection_failed  the socket could not be reached, or the connection
 *                        broke and the one reconnect-and-retry failed too
 *     protocol_error     the server sent a malformed or unexpected frame
 *     timeout            no response within the client's timeout (the same
 *                        string as the server's own "timeout")
 *     invalid_argument   a NULL or over-limit argument; nothing was sent
 *     no_memory          an allocation failed
 *
 * Threads
 *   A kms_client is safe to share between threads: one mutex per client
 *   serialises calls, so calls on one client run one at a time. Use one
 *   client per thread for parallelism, or a batch for bulk work on one
 *   connection. A kms_context may be read by many calls at once while no
 *   thread modifies it. A kms_batch belongs to one thread at a time.
 *
 * Connection
 *   Each call has a deadline (kms_set_timeout, default 5 s). After a timeout
 *   or a protocol error the connection is closed and the next call opens a
 *   new one. When sending fails because the server went away, or the server
 *   closes the connection before the response arrives (a daemon restart),
 *   the library reconnects to the same path and retries the request once.
 */
#ifndef KMSCLIENT_H
#define KMSCLIENT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define KMS_EXPORT __attribute__((visibility("default")))
#else
#define KMS_EXPORT
#endif

/* Socket used when kms_connect gets NULL and $KMSD_SOCKET is unset. */
#define KMS_DEFAULT_SOCKET "/run/kmsd/kmsd.sock"
/* Per-call deadline until kms_set_timeout changes it. */
#define KMS_DEFAULT_TIMEOUT_MS 5000
/* Size of a data key from kms_generate_data_key (AES-256). */
#define KMS_DATA_KEY_LEN 32
/* Largest plaintext for kms_encrypt (AWS KMS's limit, kept for all). */
#define KMS_MAX_PLAINTEXT 4096
/* Longest key name, in bytes. */
#define KMS_MAX_KEY_NAME 128
/* Longest stored ciphertext string accepted, in bytes. */
#define KMS_MAX_STORED 16384
/* Most pairs in one context. */
#define KMS_MAX_CONTEXT_PAIRS 64
/* Most items in one batch (run larger jobs in chunks). */
#define KMS_BATCH_MAX 100000
/* Requests a batch keeps in flight on the connection at once. */
#define KMS_BATCH_WINDOW 64

typedef struct kms_client kms_client;
typedef struct kms_context kms_context;
typedef struct kms_batch kms_batch;

typedef struct kms_error {
	char code[32];		/* one of the codes above, NUL-terminated */
	char message[256];	/* human-readable detail, NUL-terminated */
} kms_error;

/* One key as reported by hello and keys. */
typedef struct kms_key_info {
	const char *name;
	const char *provider;	/* provider name as the server reports it */
	unsigned version;	/* current version */
} kms_key_info;

/* What hello reports. One allocation: release it with kms_free(). */
typedef struct kms_hello_info {
	const char *version;	/* server version */
	unsigned protocol;	/* wire protocol version */
	const char *socket;	/* name of the socket this client is on */
	size_t n_allow;
	const char **allow;	/* ops this socket allows ("generate", ...) */
	size_t n_keys;
	kms_key_info *keys;	/* keys this socket may use */
} kms_hello_info;

/* --- connection --------------------------------------------------------- */

/* Connect to path (NULL: $KMSD_SOCKET if set and not empty, else
 * KMS_DEFAULT_SOCKET). */
KMS_EXPORT int kms_connect(kms_client **ret, const char *path,
    kms_error *err);
/* Close the connection and free the client; NULL is fine. */
KMS_EXPORT void kms_close(kms_client *c);
/* Per-call deadline in milliseconds, 1 .. 86400000. */
KMS_EXPORT int kms_set_timeout(kms_client *c, unsigned ms, kms_error *err);

/* --- encryption context --------------------------------------------------
 * A NULL kms_context pointer means "no context"; a kms_context with no
 * pairs is the empty context {}. The two are different to the server and
 * both work. Keys and values are UTF-8 strings. Setting a key that is
 * already present replaces its value (as a Ruby hash would). */
KMS_EXPORT int kms_context_new(kms_context **ret, kms_error *err);
KMS_EXPORT int kms_context_set(kms_context *ctx, const char *key,
    const char *value, kms_error *err);
/* Sets the decimal string of value, as kms_encrypted sends integers. */
KMS_EXPORT int kms_context_set_int(kms_context *ctx, const char *key,
    long long value, kms_error *err);
/* NULL is fine. */
KMS_EXPORT void kms_context_free(kms_context *ctx);

/* --- operations ----------------------------------------------------------
 * key is a configured key name ("default"); ctx may be NULL (no context). */

/* A new data key: its KMS_DATA_KEY_LEN bytes in out (wipe them after use)
 * and its stored ciphertext in *ret_stored (kms_free). */
KMS_EXPORT int kms_generate_data_key(kms_client *c, const char *key,
    const kms_context *ctx, unsigned char out[KMS_DATA_KEY_LEN],
    char **ret_stored, kms_error *err);
/* Wrap 1 .. KMS_MAX_PLAINTEXT bytes; *ret_stored: kms_free. */
KMS_EXPORT int kms_encrypt(kms_client *c, const char *key,
    const kms_context *ctx, const void *pt, size_t len, char **ret_stored,
    kms_error *err);
/* Unwrap a stored ciphertext. *ret_pt holds *ret_len bytes followed by a
 * NUL that is not counted; release with kms_free_secret(*ret_pt,
 * *ret_len). */
KMS_EXPORT int kms_decrypt(kms_client *c, const char *key,
    const kms_context *ctx, const char *stored, unsigned char **ret_pt,
    size_t *ret_len, kms_error *err);
/* Rewrap a stored ciphertext to the key's current version inside kmsd (the
 * plaintext never reaches the client). new_ctx NULL keeps ctx.
 * *ret_stored: kms_free. */
KMS_EXPORT int kms_rewrap(kms_client *c, const char *key,
    const kms_context *ctx, const kms_context *new_ctx, const char *stored,
    char **ret_stored, kms_error *err);
/* Counters: JSON, or the Prometheus text format when prometheus != 0.
 * *ret_text: kms_free. */
KMS_EXPORT int kms_stats(kms_client *c, int prometheus, char **ret_text,
    kms_error *err);
/* Vault's context hash for audit_path (Vault keys only). *ret: kms_free. */
KMS_EXPORT int kms_context_hash(kms_client *c, const char *key,
    const kms_context *ctx, const char *audit_path, char **ret,
    kms_error *err);
/* Server version, this socket's name, allowed ops and keys.
 * *ret: one block, kms_free. */
KMS_EXPORT int kms_hello(kms_client *c, kms_hello_info **ret,
    kms_error *err);
/* The keys this socket may use: *ret_n entries in one block, kms_free. */
KMS_EXPORT int kms_keys(kms_client *c, kms_key_info **ret_keys,
    size_t *ret_n, kms_error *err);

/* --- admin socket only ---------------------------------------------------- */

/* Daemon state as JSON; *ret_json: kms_free. */
KMS_EXPORT int kms_admin_status(kms_client *c, char **ret_json,
    kms_error *err);
/* Switch decryption off (persisted); reason may be NULL. */
KMS_EXPORT int kms_admin_disable_decrypt(kms_client *c, const char *reason,
    kms_error *err);
KMS_EXPORT int kms_admin_enable_decrypt(kms_client *c, kms_error *err);
/* Reload keys and policies, as SIGHUP does. */
KMS_EXPORT int kms_admin_reload(kms_client *c, kms_error *err);

/* --- batches -------------------------------------------------------------
 * Queue many operations, then kms_batch_run sends them over the client's
 * connection with up to KMS_BATCH_WINDOW requests in flight and matches the
 * responses by id (they may come back in any order). Adding copies every
 * argument, so contexts and buffers may be freed right after. Items are
 * numbered from 0 in the order added. */
KMS_EXPORT int kms_batch_new(kms_client *c, kms_batch **ret,
    kms_error *err);
KMS_EXPORT int kms_batch_add_generate(kms_batch *b, const char *key,
    const kms_context *ctx, kms_error *err);
KMS_EXPORT int kms_batch_add_encrypt(kms_batch *b, const char *key,
    const kms_context *ctx, const void *pt, size_t len, kms_error *err);
KMS_EXPORT int kms_batch_add_decrypt(kms_batch *b, const char *key,
    const kms_context *ctx, const char *stored, kms_error *err);
KMS_EXPORT int kms_batch_add_rewrap(kms_batch *b, const char *key,
    const kms_context *ctx, const kms_context *new_ctx, const char *stored,
    kms_error *err);
/* Run every item that has no result yet. -1 only when the batch as a whole
 * failed (connection, timeout, protocol); items then without a result report
 * that error from kms_batch_result. The timeout applies to the wait for
 * each response, not to the whole run. A failed item does not fail the run.
 * Items added after a run are run by the next call. */
KMS_EXPORT int kms_batch_run(kms_batch *b, kms_error *err);
KMS_EXPORT size_t kms_batch_count(const kms_batch *b);
/* The result of item i: 0, or -1 with that item's own error in err.
 * Pointers are borrowed from the batch and stay valid until kms_batch_free
 * (which wipes them); any of ret_stored, ret_pt, ret_pt_len may be NULL.
 * generate: stored + the KMS_DATA_KEY_LEN key bytes; encrypt, rewrap:
 * stored; decrypt: the plaintext. Fields an op does not produce are set to
 * NULL / 0. */
KMS_EXPORT int kms_batch_result(const kms_batch *b, size_t i,
    const char **ret_stored, const unsigned char **ret_pt,
    size_t *ret_pt_len, kms_error *err);
/* Wipe every plaintext and key the batch holds, then free it; NULL is
 * fine. */
KMS_EXPORT void kms_batch_free(kms_batch *b);

/* --- helpers --------------------------------------------------------------- */

/* The key version N of a stored "vN:..." string (N in 1 .. 1000000), without
 * decoding the rest. 0, or -1 when there is no valid prefix. */
KMS_EXPORT int kms_stored_version(const char *stored, unsigned *ret_version);
/* Wipe len bytes at p, then free p; NULL is fine. */
KMS_EXPORT void kms_free_secret(void *p, size_t len);
/* Free a string or block the library returned; NULL is fine. */
KMS_EXPORT void kms_free(void *p);

/* --- field encryption: Lockbox boxes ---------------------------------------
 * Encrypt a record's fields with its data key (from kms_generate_data_key,
 * or kms_decrypt of its stored key) byte for byte as Lockbox does with
 * kms_encrypted's kms_key (algorithm "aes-gcm", Lockbox's default):
 *   box = nonce (12 random bytes) || AES-256-GCM ciphertext || tag (16 bytes)
 * The _b64 forms are the strict base64 (no newlines) of the box, what Lockbox
 * keeps in an `<attribute>_ciphertext` column; the raw forms are what it
 * writes for files. Lockbox's `padding` option is not supported.
 * Associated data is optional: ad NULL with ad_len 0 and "" are the same (as
 * Lockbox's nil and ""). No kmsd connection is involved.
 * Opening fails with code "decryption_failed" when the box was changed in any
 * way (nonce, ciphertext, tag or length), was sealed under another key or
 * other associated data, or (_b64) is not strict base64; no plaintext is
 * returned then, not even in part. Random nonces: keep one key under 2^32
 * seals (per-record data keys are far below). */

/* Bytes of the nonce in front of and the tag behind the ciphertext. */
#define KMS_BOX_NONCE_LEN 12
#define KMS_BOX_TAG_LEN 16
/* A box is this much longer than its plaintext. */
#define KMS_BOX_OVERHEAD (KMS_BOX_NONCE_LEN + KMS_BOX_TAG_LEN)
/* Largest plaintext, and largest associated data, a box takes (1 GiB). */
#define KMS_BOX_MAX_PLAINTEXT ((size_t)1 << 30)

/* Seal len bytes of pt (NULL is fine when len is 0) under the
 * KMS_DATA_KEY_LEN bytes of key: *ret_box holds *ret_box_len =
 * len + KMS_BOX_OVERHEAD bytes; release with kms_free. */
KMS_EXPORT int kms_box_seal(const unsigned char key[KMS_DATA_KEY_LEN],
    const void *pt, size_t len, const void *ad, size_t ad_len,
    unsigned char **ret_box, size_t *ret_box_len, kms_error *err);
/* Open a box sealed by kms_box_seal or by Lockbox. *ret_pt holds *ret_len
 * bytes followed by a NUL that is not counted; release with
 * kms_free_secret(*ret_pt, *ret_len). */
KMS_EXPORT int kms_box_open(const unsigned char key[KMS_DATA_KEY_LEN],
    const void *box, size_t box_len, const void *ad, size_t ad_len,
    unsigned char **ret_pt, size_t *ret_len, kms_error *err);
/* kms_box_seal, then strict base64: *ret_b64 is a NUL-terminated string
 * for a `_ciphertext` column; release with kms_free. */
KMS_EXPORT int kms_box_seal_b64(const unsigned char key[KMS_DATA_KEY_LEN],
    const void *pt, size_t len, const void *ad, size_t ad_len,
    char **ret_b64, kms_error *err);
/* Open the strict base64 of a box (a `_ciphertext` column), as
 * kms_box_open. */
KMS_EXPORT int kms_box_open_b64(const unsigned char key[KMS_DATA_KEY_LEN],
    const char *b64, const void *ad, size_t ad_len, unsigned char **ret_pt,
    size_t *ret_len, kms_error *err);

#ifdef __cplusplus
}
#endif

#endif
