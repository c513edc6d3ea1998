/*
 * gcp_parse.h: the pure parts of the Cloud KMS REST calls (PROVIDERS.md
 * C1-C3): key ids, request bodies, response verification, error mapping.
 *
 * Request bodies are built by hand into wipe-on-free bufs (they carry the
 * plaintext in base64; jansson would keep unwiped copies of it), with the
 * proto3 JSON mapping: bytes as standard base64 with padding, the CRC32C
 * fields (google.protobuf.Int64Value) as decimal strings.
 *
 * A 200 response is believed only after it is verified: every checksum we
 * sent must come back verified, and the checksum Google returns for its
 * own output must match the bytes we received. Any failure there is
 * ERR_PROVIDER_UNAVAILABLE and worth a retry (the bytes were damaged on
 * the way); it is never a success.
 *
 * No I/O, no logging, no global state. Messages name fields and Google's
 * status, never a value that could be key material.
 */
#ifndef KMSD_GCP_PARSE_H
#define KMSD_GCP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Cloud KMS limits for SOFTWARE keys (HSM keys allow 8 KiB of plaintext
 * and AAD together; Google enforces that one itself). */
#define GCP_KMS_MAX_PLAINTEXT 65536
#define GCP_KMS_MAX_AAD 65536
/* A ciphertext is the plaintext plus Google's envelope (a few dozen
 * bytes); anything near this is not ours. */
#define GCP_KMS_MAX_CIPHERTEXT (GCP_KMS_MAX_PLAINTEXT + 4096)
/* Largest request body: base64 of the largest input and AAD, plus names. */
#define GCP_KMS_MAX_BODY ((GCP_KMS_MAX_CIPHERTEXT + GCP_KMS_MAX_AAD) / 3 * 4 \
	+ 512)
/* Longest key id: Google's ids are at most 63 characters a segment
 * (projects 30), so a whole name stays well below this. */
#define GCP_MAX_KEY_ID 512

/* 1 when key_id is projects/P/locations/L/keyRings/R/cryptoKeys/K with
 * every segment 1-100 of [A-Za-z0-9._:-] and not "." or "..", so it can
 * go into a URL path as is. A cryptoKeyVersions/N suffix is refused:
 * decrypt needs the CryptoKey itself. */
int gcp_key_id_valid(const char *key_id);

/* Printable ASCII copy of a remote text for a message (others become
 * '?'), cut to fit outlen. */
void gcp_text_safe(char *out, size_t outlen, const char *s, size_t n);

/*
 * The :encrypt / :decrypt request JSON, appended to out: the input
 * (plaintext or ciphertext) with its CRC32C, and, when has_aad, the AAD
 * with its CRC32C (has_aad with aad_len 0 is refused: the canonical JSON
 * of a present context is "{}" at least). 0, ERR_TOO_LARGE (over the
 * GCP_KMS_MAX_* limits or out's cap), ERR_BAD_REQUEST (empty input), or
 * ERR_NOMEM.
 */
int gcp_kms_encrypt_body(const uint8_t *pt, size_t pt_len,
    const uint8_t *aad, size_t aad_len, int has_aad, struct buf *out);
int gcp_kms_decrypt_body(const uint8_t *ct, size_t ct_len,
    const uint8_t *aad, size_t aad_len, int has_aad, struct buf *out);

/*
 * A 200 :encrypt response: ciphertext into out after checking
 * ciphertextCrc32c against the bytes, verifiedPlaintextCrc32c (and
 * verifiedAdditionalAuthenticatedDataCrc32c when sent_aad) true, and a
 * `name` under key_id when present. 0, ERR_PROVIDER_UNAVAILABLE (msg says
 * which check failed; retryable), ERR_NOMEM. out is cleared on failure.
 */
int gcp_kms_encrypt_result(const uint8_t *body, size_t len,
    const char *key_id, int sent_aad, struct buf *out, char *msg,
    size_t msglen);
/* A 200 :decrypt response: plaintext into out after checking
 * plaintextCrc32c against the bytes. Same returns. */
int gcp_kms_decrypt_result(const uint8_t *body, size_t len, struct buf *out,
    char *msg, size_t msglen);

/*
 * A non-200 Cloud KMS answer as kmsd's error (issue 5): INVALID_ARGUMENT
 * "Decryption failed..." -> ERR_DECRYPTION_FAILED; a checksum mismatch
 * Google saw in our request -> ERR_PROVIDER_UNAVAILABLE, retry; other
 * INVALID_ARGUMENT, OUT_OF_RANGE -> ERR_BAD_REQUEST; UNAUTHENTICATED,
 * PERMISSION_DENIED, NOT_FOUND, FAILED_PRECONDITION -> ERR_PROVIDER_DENIED;
 * RESOURCE_EXHAUSTED -> ERR_THROTTLED, retry; UNAVAILABLE,
 * DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, ABORTED, CANCELLED and any 5xx ->
 * ERR_PROVIDER_UNAVAILABLE, retry. Without a parseable body the HTTP
 * status decides the same way. *ret_retry says whether another try may
 * help; msg gets "Cloud KMS STATUS: message" (sanitised).
 */
int gcp_kms_error(long status, const uint8_t *body, size_t len,
    int *ret_retry, char *msg, size_t msglen);

#endif
