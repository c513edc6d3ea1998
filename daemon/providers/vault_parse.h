/*
 * vault_parse.h: the pure parts of the Vault transit provider.
 *
 * - request bodies for transit encrypt / decrypt / rewrap, sys/audit-hash
 *   and AppRole login, written exactly as kms_encrypted writes them
 *   (plaintext and context as Ruby's Base64.encode64 text, newlines and
 *   all, so Vault's audit log shows the same HMACs for both);
 * - Vault's "vault:vN:..." ciphertext strings;
 * - the success responses (data.ciphertext, data.plaintext, data.hash,
 *   auth.client_token / lease_duration, lookup-self data.ttl);
 * - Vault's error answers mapped to kmsd's error codes with a retry hint;
 * - settings syntax: key names, mount / namespace / audit paths,
 *   durations and counts, token file contents.
 *
 * No I/O, no logging, no global state. Secrets (plaintexts, tokens, role
 * and secret ids) are written only into wipe-on-free bufs, and messages
 * (err/errlen, vault_error.msg) never carry one.
 */
#ifndef KMSD_VAULT_PARSE_H
#define KMSD_VAULT_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Vault key names are \w([\w.-]*\w)? (framework.GenericNameRegex); 128
 * is far above real names and keeps a URL path short. */
#define VAULT_MAX_NAME 128
/* A mount path, namespace path or audit device path: a few segments. */
#define VAULT_MAX_PATH 256
/* Service tokens are ~100 bytes, batch tokens a few hundred; a file much
 * larger than this is not a token. */
#define VAULT_MAX_SECRET 4096
/* How much of Vault's error text a message keeps (call->msg is 160). */
#define VAULT_MAX_ERRTEXT 100
/* Most Vault token TTL believed: ten years; more is treated as "never". */
#define VAULT_MAX_TTL_S (10ULL * 366 * 24 * 3600)

/* The request kinds, for bodies and for error mapping. */
enum vault_req {
	VAULT_REQ_ENCRYPT = 0,
	VAULT_REQ_DECRYPT = 1,
	VAULT_REQ_REWRAP = 2,
	VAULT_REQ_AUDIT_HASH = 3,
	VAULT_REQ_LOGIN = 4,
	VAULT_REQ_LOOKUP = 5,
	VAULT_REQ_RENEW = 6,
};

/* ---- settings syntax ---- */

/* 1 when s (n bytes) is a Vault key name: 1..VAULT_MAX_NAME of
 * [A-Za-z0-9_.-], first and last a letter, digit or '_'. */
int vault_name_valid(const char *s, size_t n);
/* 1 when s is a relative Vault path: segments of [A-Za-z0-9_.-] separated
 * by single '/', no "." or ".." segment, no leading '/', one trailing '/'
 * allowed, 1..VAULT_MAX_PATH bytes. Used for mount, namespace and audit
 * device paths, which go into URLs and headers as they are. */
int vault_path_valid(const char *s, size_t n);
/* "10" or "10s" = seconds, "500ms", "5m"; 1 ms .. 10 minutes. 0 or -1. */
int vault_parse_duration(const char *s, unsigned *ret_ms);
/* A decimal count in [min, max]. 0 or -1. */
int vault_parse_count(const char *s, unsigned min, unsigned max,
    unsigned *ret);
/* The contents of a token, role id or secret id file in b: trailing
 * whitespace (the newline editors and `vault token create > f` leave)
 * is dropped and a NUL appended (not counted); the rest must be 1..
 * VAULT_MAX_SECRET printable ASCII bytes without spaces, since it goes
 * into a header or a JSON string. 0 or ERR_BAD_REQUEST. */
int vault_secret_clean(struct buf *b);

/* ---- ciphertexts ---- */

/* 1 when p is "vault:v<N>:<base64>" (N decimal, base64 of the standard
 * alphabet, padding allowed, non-empty); *ret_version (may be NULL) gets
 * N. Refusing anything else before it reaches Vault keeps the JSON body
 * trivially safe and gives a clear local error. */
int vault_ct_valid(const uint8_t *p, size_t n, uint32_t *ret_version);

/* ---- request bodies (appended to out) ---- */

/* ctx_json NULL = no context (no "context" field at all); otherwise the
 * canonical context JSON, sent as Base64.encode64 text (DESIGN 3.3,
 * PROVIDERS E4), including for the empty context {}. */
int vault_body_encrypt(struct buf *out, const uint8_t *pt, size_t pt_len,
    const uint8_t *ctx_json, size_t ctx_len);
/* decrypt and rewrap: {"ciphertext": ct, "context": ...}; ct must pass
 * vault_ct_valid (ERR_BAD_REQUEST otherwise). */
int vault_body_ciphertext(struct buf *out, const uint8_t *ct, size_t ct_len,
    const uint8_t *ctx_json, size_t ctx_len);
/* {"input": Base64.encode64(ctx_json)}: the exact string the context
 * field carries, so the hash is the one in Vault's audit log (D7). */
int vault_body_audit_hash(struct buf *out, const uint8_t *ctx_json,
    size_t ctx_len);
/* {"role_id": ..., "secret_id": ...}, JSON-escaped. */
int vault_body_login(struct buf *out, const char *role_id,
    const char *secret_id);

/* ---- responses (2xx bodies) ---- */

/* data.ciphertext (encrypt, rewrap): the "vault:vN:..." string's bytes
 * appended to out. 0, ERR_PROVIDER_UNAVAILABLE (not the expected shape),
 * ERR_TOO_LARGE or ERR_NOMEM; out unchanged on failure. */
int vault_resp_ciphertext(const char *body, size_t len, struct buf *out,
    char *err, size_t errlen);
/* data.plaintext (decrypt) base64-decoded into out (a secret). */
int vault_resp_plaintext(const char *body, size_t len, struct buf *out,
    char *err, size_t errlen);
/* data.hash (sys/audit-hash; or "hash" at the top level, the legacy sys/
 * form Vault's API docs show): "hmac-sha256:" + 64 hex digits into out. */
int vault_resp_hash(const char *body, size_t len, struct buf *out,
    char *err, size_t errlen);

struct vault_lease {
	uint64_t ttl_s;		/* 0 = does not expire */
	int renewable;
};

/* auth.client_token (NUL-terminated into token, a secret; empty on
 * failure), auth.lease_duration and auth.renewable (login, renew-self). */
int vault_resp_auth(const char *body, size_t len, struct buf *token,
    struct vault_lease *lease, char *err, size_t errlen);
/* data.ttl and data.renewable of auth/token/lookup-self; a ttl of 0 with
 * an expire_time (less than a second left) reads as 1 s, not "never". */
int vault_resp_lookup(const char *body, size_t len, struct vault_lease *lease,
    char *err, size_t errlen);

/* ---- errors ---- */

struct vault_error {
	int err;		/* ERR_* */
	int retryable;		/* the same request may succeed later */
	int auth;		/* 401/403: the token may be stale */
	long status;
	char text[VAULT_MAX_ERRTEXT + 1];	/* Vault's "errors" */
};

/*
 * Classify a non-2xx answer to a request of this kind. Vault's errors[]
 * are joined with "; ", reduced to printable ASCII and cut. Mapping:
 *   400 decrypt/rewrap with "message authentication failed", "unable to
 *     decrypt", "invalid ciphertext", "could not decode", "missing
 *     'context'", "disallowed by policy" or "context should be set"
 *     -> ERR_DECRYPTION_FAILED (a wrong or missing context, a corrupt or
 *     too old ciphertext: the caller's data does not open);
 *   400 encrypt with "missing 'context'" -> ERR_BAD_REQUEST (a derived
 *     key needs a context);
 *   401, 403 -> ERR_PROVIDER_DENIED, auth = 1;
 *   429 -> ERR_THROTTLED, retryable (rate limit, standby health);
 *   412 -> ERR_PROVIDER_UNAVAILABLE, retryable (consistency);
 *   5xx but 501 -> ERR_PROVIDER_UNAVAILABLE, retryable (sealed, standby,
 *     internal), except decrypt/rewrap 5xx with "message authentication
 *     failed" (older Vaults), which is ERR_DECRYPTION_FAILED as
 *     kms_encrypted reads it;
 *   other 4xx -> ERR_PROVIDER_DENIED; anything else ->
 *     ERR_PROVIDER_UNAVAILABLE.
 * Returns out->err; never fails (an unparsable body maps by status).
 */
int vault_error_map(enum vault_req kind, long status, const char *body,
    size_t len, struct vault_error *out);

#endif
