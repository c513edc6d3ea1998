/*
 * aws_sigv4.h: AWS Signature Version 4 (AWS4-HMAC-SHA256) for request
 * headers.
 *
 * Pure: no I/O, no logging, no global state. The HTTP layer calls
 * sigv4_sign() once per try (the date is part of the signature), adds the
 * headers listed in out->add to what it sends, and calls sigv4_out_done().
 * A caller that signs often keeps one sigv4_out instead and calls
 * sigv4_sign_into() and sigv4_out_clear() around each use: its buffers and
 * hash context are reused, so a signature then allocates (almost) nothing.
 * Every intermediate string is exposed so tests compare each stage against
 * the published suites.
 *
 * What the caller passes in req->headers is exactly what gets signed: pass
 * Host and the headers the service requires signed (for KMS Content-Type and
 * X-Amz-Target), not the ones a proxy or curl may rewrite (User-Agent,
 * Accept, Content-Length, Expect). The signer owns Authorization, X-Amz-Date,
 * X-Amz-Security-Token and, with sign_body, X-Amz-Content-Sha256: passing
 * one of those is refused.
 *
 * req->path is the path as it goes on the request line (already
 * percent-encoded where the caller needed to); the canonical path encodes it
 * once more, which is the "double encoding" every service but S3 expects.
 * req->query is the raw query string without '?': each name and value is
 * percent-decoded and re-encoded with the RFC 3986 unreserved set, '+' is a
 * literal plus (AWS reads a space only as %20).
 */
#ifndef KMSD_AWS_SIGV4_H
#define KMSD_AWS_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

/* HMAC-SHA256 output, the size of every key in the derivation chain. */
#define SIGV4_KEY_LEN 32
/* Headers the signer adds: X-Amz-Date, X-Amz-Security-Token,
 * X-Amz-Content-Sha256, Authorization. */
#define SIGV4_MAX_ADD 4

struct sigv4_creds {
	const char *access_key;
	const char *secret_key;
	const char *session_token;	/* NULL or "" if none */
};

struct sigv4_header {
	struct str name;
	struct str value;
};

struct sigv4_request {
	const char *method;		/* "POST" */
	const char *path;		/* request-line path, "/" for KMS */
	const char *query;		/* raw, no '?'; NULL or "" if none */
	const struct sigv4_header *headers;
	size_t n_headers;
	const uint8_t *body;		/* NULL when body_len is 0 */
	size_t body_len;
};

struct sigv4_params {
	const char *region;		/* "us-east-1" */
	const char *service;		/* "kms" */
	time_t now;			/* signing time, UTC seconds */
	int normalize_path;		/* remove dot segments, collapse '//' */
	int sign_body;			/* add and sign X-Amz-Content-Sha256 */
	int omit_session_token;		/* send the token unsigned */
	/* The derived signing key for this secret, the UTC day of `now`,
	 * region and service (sigv4_signing_key), when the caller keeps one:
	 * deriving it is four HMACs, most of a signature's cost. NULL: derived
	 * here. */
	const uint8_t *signing_key;
};

struct evp_md_st;
struct evp_md_ctx_st;
struct evp_mac_st;
struct evp_mac_ctx_st;

struct sigv4_out {
	/* Each stage, NUL-terminated (not counted in len). Wipe-on-free:
	 * the canonical request carries the session token. */
	struct buf canonical_request;
	struct buf string_to_sign;
	struct buf signature;		/* 64 lower-case hex digits */
	struct buf amz_date;		/* "20150830T123600Z" */
	struct buf payload_hash;	/* hex SHA-256 of the body */
	struct buf session_token;	/* copy of the token, or empty */
	struct buf authorization;	/* the Authorization header value */
	struct buf signed_headers;	/* "content-type;host;x-amz-date" */
	struct buf scope;		/* "20150830/us-east-1/kms/aws4_request" */
	/* Headers to add to the request, values pointing into this struct:
	 * X-Amz-Date, X-Amz-Security-Token (when there is a token, signed or
	 * not), X-Amz-Content-Sha256 (sign_body), Authorization. */
	struct sigv4_header add[SIGV4_MAX_ADD];
	size_t n_add;
	/* After a failure: a static reason naming the bad part, never a
	 * value; NULL after success. */
	const char *why;
	/* The signer's SHA-256 and HMAC-SHA256, fetched once and kept with
	 * out (private). */
	struct evp_md_st *sha256;
	struct evp_md_ctx_st *md_ctx;
	struct evp_mac_st *hmac;
	struct evp_mac_ctx_st *mac_ctx;
};

/*
 * Sign req. Initialises *out itself (no prior init needed); call
 * sigv4_out_done(out) afterwards whether or not it succeeded. Returns 0,
 * ERR_BAD_REQUEST (invalid input: out->why says which), ERR_TOO_LARGE,
 * ERR_NOMEM or ERR_INTERNAL (OpenSSL failed). On failure out holds nothing.
 */
int sigv4_sign(const struct sigv4_request *req,
    const struct sigv4_creds *creds, const struct sigv4_params *params,
    struct sigv4_out *out);

/* Wipe and free everything in out; safe on a zeroed or done struct. */
void sigv4_out_done(struct sigv4_out *out);

/* An empty out for sigv4_sign_into; sigv4_out_done frees it. */
void sigv4_out_init(struct sigv4_out *out);
/*
 * sigv4_sign into an out from sigv4_out_init that earlier signatures may
 * have used: what it held is wiped first and its buffers and hash context
 * are reused. Same results and returns; on failure out holds nothing but
 * stays reusable.
 */
int sigv4_sign_into(const struct sigv4_request *req,
    const struct sigv4_creds *creds, const struct sigv4_params *params,
    struct sigv4_out *out);
/* Wipe out's contents, keeping its buffers for the next sigv4_sign_into. */
void sigv4_out_clear(struct sigv4_out *out);

/*
 * The derived signing key HMAC(HMAC(HMAC(HMAC("AWS4" secret, date8),
 * region), service), "aws4_request") for date8 "YYYYMMDD". Intermediate
 * keys are wiped; the caller wipes key. 0, ERR_BAD_REQUEST or ERR_INTERNAL.
 */
int sigv4_signing_key(const char *secret, const char *date8,
    const char *region, const char *service,
    uint8_t key[SIGV4_KEY_LEN]);

#endif
