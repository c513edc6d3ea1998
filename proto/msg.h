/*
 * msg.h: strict encode and decode of every request and response of the
 * kmsd wire protocol (proto/PROTOCOL.md is the full spec).
 *
 * Decoding runs frame_prescan first, then msgpack-c. Decoded strings point
 * into the body the caller passed (they are not copied), so the caller keeps
 * the body alive while it uses the message and wipes it afterwards when the
 * message carried a secret. Unknown fields are ignored; a known field with the
 * wrong type, a missing required field or an over-limit field is
 * ERR_BAD_REQUEST (or ERR_TOO_LARGE) with a reason in `why`.
 *
 * Only this module includes msgpack.h. No I/O, no logging.
 */
#ifndef KMSD_MSG_H
#define KMSD_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "context.h"
#include "op.h"

/* Wire protocol version reported by hello. */
#define MSG_PROTOCOL_VERSION 1
/* Largest plaintext for encrypt: AWS KMS's Encrypt limit, so a value that
 * works with one provider works with all. */
#define MSG_MAX_PLAINTEXT 4096
/* Largest key name. */
#define MSG_MAX_KEY_NAME 128
/* Largest stored ciphertext string accepted in a request. */
#define MSG_MAX_CIPHERTEXT 16384
/* Largest disable_decrypt reason: it goes into the state file and the
 * audit log, a sentence, not a document. */
#define MSG_MAX_REASON 256
/* Largest context_hash audit_path: a Vault audit device path. */
#define MSG_MAX_AUDIT_PATH 256
/* Room for a decode failure reason. */
#define MSG_WHY_LEN 96

/*
 * Conventions (also in PROTOCOL.md):
 * - A request id is 1..2^64-1. 0 is reserved for responses that cannot name
 *   a request (a frame refused before it was decoded).
 * - A struct str field is "set" when p != NULL; an empty bin or str is sent
 *   by pointing p at any byte with len 0. Decoded present fields always have
 *   p != NULL.
 * - Every str field of a request must be valid UTF-8.
 * - An error response (error != 0) is encoded with id and error only; any
 *   result field also set is not written.
 * - When a decoder fails only id/has_id (request) and why are meaningful;
 *   msg_decode_response has then freed what it allocated.
 */

struct request {
	uint64_t id;
	int has_id;		/* set even when decoding fails later */
	int op;			/* enum op */
	struct str key;		/* generate encrypt decrypt rewrap context_hash */
	struct context ctx;	/* "context": absent, nil, or a map */
	struct context new_ctx;	/* "new_context" (rewrap) */
	struct str plaintext;	/* encrypt: bin */
	struct str ciphertext;	/* decrypt rewrap: stored string */
	struct str reason;	/* disable_decrypt */
	struct str audit_path;	/* context_hash */
	struct str format;	/* stats: "json" (default) or "prometheus" */
	char why[MSG_WHY_LEN];	/* decode failure reason */
};

struct key_info {
	struct str name;
	struct str provider;
	uint32_t version;
};

struct response {
	uint64_t id;
	int error;		/* 0 or an ERR_* value */
	struct str error_code;	/* decoded wire code (client side) */
	struct str message;	/* error message */
	struct str ciphertext;	/* generate encrypt rewrap */
	struct str plaintext;	/* generate decrypt: bin */
	struct str version;	/* hello: server version */
	uint32_t protocol;	/* hello */
	struct str socket;	/* hello: socket name */
	size_t n_allow;		/* hello: ops this socket allows */
	struct str allow[OP__COUNT];
	size_t n_keys;		/* hello, keys */
	struct key_info *keys;
	int keys_owned;		/* decoder allocated keys */
	struct str body;	/* stats (JSON or text), status (JSON), context_hash */
	char why[MSG_WHY_LEN];
};

/* Request: validates op-specific required fields. 0, ERR_BAD_REQUEST,
 * ERR_TOO_LARGE or ERR_UNKNOWN_OP (has_id/id set when they could be read). */
int msg_decode_request(const uint8_t *body, size_t len, struct request *ret);

/* The same with memory kept between calls (the daemon decodes every
 * request through one; it holds no request bytes between calls, only the
 * decoder's own bookkeeping). NULL from msg_dec_new: out of memory. */
struct msg_dec;
struct msg_dec *msg_dec_new(void);
void msg_dec_free(struct msg_dec *d);
int msg_decode_request_with(struct msg_dec *d, const uint8_t *body,
    size_t len, struct request *ret);

/* Response (client side). Free with msg_response_done. */
int msg_decode_response(const uint8_t *body, size_t len,
    struct response *ret);
void msg_response_done(struct response *r);

/* Append one whole frame (header + body) to out. Fields left NULL/zero are
 * not written. ERR_TOO_LARGE when out's cap would be passed; out is then
 * unchanged. */
int msg_encode_request(struct buf *out, const struct request *r);
int msg_encode_response(struct buf *out, const struct response *r);

void msg_request_init(struct request *r);
void msg_response_init(struct response *r);
/* An error answer to request id: err with the message why (kept by
 * pointer: it must outlive the encoding). */
void msg_response_error(struct response *r, uint64_t id, int err,
    const char *why);

#endif
