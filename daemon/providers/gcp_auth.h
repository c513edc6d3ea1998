/*
 * gcp_auth.h: the pure parts of Google authentication (PROVIDERS.md C4):
 * credential files, the RS256 JWT-bearer assertion, token request bodies
 * and token responses.
 *
 * Secrets (the private key, refresh tokens, client secrets, assertions,
 * access tokens) live in OpenSSL structures or wipe-on-free bufs and never
 * reach a message. No I/O, no logging, no global state.
 */
#ifndef KMSD_GCP_AUTH_H
#define KMSD_GCP_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "buf.h"

/* Where tokens come from when a file names no token_uri. */
#define GCP_TOKEN_URI_DEFAULT "https://oauth2.googleapis.com/token"
/* The longest lifetime Google accepts for a JWT-bearer assertion. */
#define GCP_JWT_LIFETIME_S 3600
/* Access tokens are a few hundred bytes to ~2 KB; the cap keeps the
 * Authorization header under http.c's header limit. */
#define GCP_MAX_TOKEN 4096
/* A token promising a longer life than a day is not believed past it. */
#define GCP_MAX_EXPIRES_IN 86400
/* Largest credentials file: a service-account key is ~2.4 KB. */
#define GCP_MAX_CRED_FILE (64 * 1024)
/* Largest token request body: the assertion (~1 KB with a 2048-bit key,
 * ~1.4 KB with 4096) or a refresh-token form, percent-encoded. */
#define GCP_MAX_TOKEN_BODY 16384

enum gcp_cred_kind {
	GCP_CRED_NONE = 0,
	GCP_CRED_SERVICE_ACCOUNT = 1,	/* "service_account": sign a JWT */
	GCP_CRED_AUTHORIZED_USER = 2,	/* "authorized_user": refresh */
};

/* gcp_creds_parse's result for a valid file of a type kmsd does not use
 * (external_account, impersonated_service_account, ...). */
#define GCP_CREDS_UNSUPPORTED 1

struct gcp_creds {
	enum gcp_cred_kind kind;
	char *client_email;	/* service account: the JWT's iss */
	char *private_key_id;	/* service account: JWT kid, or NULL */
	char *token_uri;	/* both kinds */
	char *quota_project;	/* quota_project_id, or NULL */
	EVP_PKEY *pkey;		/* service account: RSA, >= 2048 bits */
	/* authorized_user, NUL-terminated */
	struct buf client_id;
	struct buf client_secret;
	struct buf refresh_token;
};

void gcp_creds_init(struct gcp_creds *c);
void gcp_creds_done(struct gcp_creds *c);

/*
 * Parse a credentials JSON file's bytes. 0; GCP_CREDS_UNSUPPORTED (a valid
 * JSON object whose "type" is another, named in err); ERR_BAD_REQUEST
 * (malformed: err names the field, never a value); ERR_NOMEM.
 */
int gcp_creds_parse(const char *data, size_t len, struct gcp_creds *c,
    char *err, size_t errlen);

/* Sign header.claims (both JSON text, base64url-encoded here without
 * padding) with RS256 (RSASSA-PKCS1-v1_5, SHA-256) and append the
 * whole JWT to out. 0 or ERR_*. */
int gcp_jwt_sign(EVP_PKEY *pkey, const char *header_json,
    const char *claims_json, struct buf *out);

/* The OAuth 2.0 JWT-bearer assertion of a service account: header
 * {"alg":"RS256","typ":"JWT","kid":private_key_id}, claims
 * {"iss":client_email,"scope":scope,"aud":aud,"iat":iat,"exp":iat+3600},
 * compact JSON in that order. 0 or ERR_*. */
int gcp_jwt_assertion(const struct gcp_creds *c, const char *scope,
    const char *aud, int64_t iat, struct buf *out);

/* application/x-www-form-urlencoded bodies for the token endpoint. */
int gcp_token_body_jwt(const char *assertion, size_t len, struct buf *out);
int gcp_token_body_refresh(const struct gcp_creds *c, struct buf *out);

/*
 * A 200 token response {"access_token","expires_in","token_type"}: the
 * header value "Bearer TOKEN" (NUL-terminated) into out, the lifetime in
 * seconds (1..GCP_MAX_EXPIRES_IN, longer is cut) into *ret_expires_in.
 * 0 or ERR_PROVIDER_UNAVAILABLE with err naming what was wrong.
 */
int gcp_token_parse(const uint8_t *body, size_t len, struct buf *out,
    uint32_t *ret_expires_in, char *err, size_t errlen);

/* A token endpoint's or metadata server's refusal as kmsd's error:
 * 400/401/403/404 -> ERR_PROVIDER_DENIED, 429 -> ERR_THROTTLED, others
 * ERR_PROVIDER_UNAVAILABLE. msg gets the OAuth error code and description
 * (sanitised) when the body has them. */
int gcp_token_error(long status, const uint8_t *body, size_t len, char *msg,
    size_t msglen);

#endif
