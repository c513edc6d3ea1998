/*
 * aws_parse.h: the pure parsers and builders the AWS KMS provider needs.
 *
 * - shared config and credentials files (INI) from a memory buffer;
 * - KMS JSON 1.1 request bodies (Encrypt, Decrypt, ReEncrypt) and their
 *   success responses;
 * - AWS error responses (JSON, x-amzn-ErrorType, XML) mapped to kmsd's
 *   error codes with retry hints;
 * - IMDS / ECS credential JSON and STS AssumeRoleWithWebIdentity XML;
 * - the region of a KMS key or alias ARN.
 *
 * No I/O, no logging, no global state. Secrets (keys, tokens, plaintexts)
 * are copied only into wipe-on-free bufs. Error messages (err/errlen) name
 * a line, a field or a key, never a value.
 */
#ifndef KMSD_AWS_PARSE_H
#define KMSD_AWS_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "context.h"

/* KMS API limits (service-2.json): Plaintext 1..4096 bytes, CiphertextBlob
 * 1..6144 bytes, key ids 1..2048 characters. */
#define AWS_KMS_MAX_PLAINTEXT 4096
#define AWS_KMS_MAX_CIPHERTEXT 6144
#define AWS_KMS_MAX_KEY_ID 2048

/* ---- credentials ---- */

struct aws_creds {
	struct buf access_key_id;	/* all NUL-terminated when set */
	struct buf secret_access_key;
	struct buf session_token;	/* empty when none */
	time_t expiration;		/* 0 = does not expire */
};

void aws_parse_creds_init(struct aws_creds *c);
void aws_parse_creds_done(struct aws_creds *c);

/* ---- shared config / credentials files ---- */

enum aws_file_kind {
	AWS_FILE_CONFIG = 0,		/* ~/.aws/config: [profile X] */
	AWS_FILE_CREDENTIALS = 1,	/* ~/.aws/credentials: [X] */
};

struct aws_profile {
	int found;			/* a section of this profile was seen */
	struct aws_creds creds;		/* aws_access_key_id, ... */
	struct buf region;		/* config file only */
	struct buf role_arn;
	struct buf web_identity_token_file;
	struct buf role_session_name;
};

void aws_parse_profile_init(struct aws_profile *p);
void aws_parse_profile_done(struct aws_profile *p);

/*
 * Read profile `name` (NULL = "default") from one file's bytes into p.
 * Values found overwrite what p holds, so parse the config file first and
 * the credentials file second to get the SDKs' precedence. Sections of the
 * same profile merge and a repeated key keeps its last value, as the AWS
 * SDKs' profile parser does. Keys are matched case-insensitively; a '#' or
 * ';' after whitespace starts a comment in a value.
 * Returns 0 (p->found says whether the profile exists), ERR_BAD_REQUEST
 * (syntax error anywhere in the file; the profile sets only one of key id
 * and secret; the profile uses credential_process, source_profile,
 * credential_source or SSO, which kmsd does not support) or ERR_TOO_LARGE.
 */
int aws_parse_profile(const char *data, size_t len, enum aws_file_kind kind,
    const char *name, struct aws_profile *p, char *err, size_t errlen);

/* IMDS (.../security-credentials/ROLE) or ECS/EKS container credentials
 * JSON: AccessKeyId, SecretAccessKey, Token, Expiration (ISO 8601); an IMDS
 * "Code" other than "Success" is an error. 0 or ERR_BAD_REQUEST /
 * ERR_TOO_LARGE / ERR_NOMEM; on failure c is left empty. */
int aws_parse_container_creds(const char *body, size_t len,
    struct aws_creds *c, char *err, size_t errlen);

/* STS AssumeRoleWithWebIdentityResponse XML:
 * AssumeRoleWithWebIdentityResult/Credentials/{AccessKeyId,
 * SecretAccessKey, SessionToken, Expiration}. Same returns. */
int aws_parse_sts_creds(const char *body, size_t len, struct aws_creds *c,
    char *err, size_t errlen);

/* "2015-08-30T12:36:00Z", with optional fraction and a "Z" or "+hh:mm" /
 * "-hh:mm" offset, to UTC seconds. 0 or ERR_BAD_REQUEST. */
int aws_parse_time(const char *s, size_t n, time_t *ret);

/* ---- KMS requests and responses ---- */

enum aws_kms_op {
	AWS_KMS_ENCRYPT = 0,
	AWS_KMS_DECRYPT = 1,
	AWS_KMS_REENCRYPT = 2,
};

/* "TrentService.Encrypt" etc., the X-Amz-Target value; NULL if unknown. */
const char *aws_parse_kms_target(enum aws_kms_op op);

struct aws_kms_request {
	enum aws_kms_op op;
	/* Encrypt: KeyId (required). Decrypt: KeyId (optional, NULL).
	 * ReEncrypt: DestinationKeyId (required). */
	const char *key_id;
	/* ReEncrypt: SourceKeyId (optional, NULL). */
	const char *source_key_id;
	/* Encrypt: the Plaintext; Decrypt and ReEncrypt: the CiphertextBlob. */
	const uint8_t *data;
	size_t data_len;
	/* EncryptionContext (ReEncrypt: SourceEncryptionContext); NULL or
	 * !present = field omitted. */
	const struct context *ctx;
	/* ReEncrypt: DestinationEncryptionContext. */
	const struct context *dest_ctx;
};

/* Append the JSON body to out (a wipe-on-free buf: Encrypt carries the
 * plaintext). 0, ERR_BAD_REQUEST (missing or oversized field, invalid
 * UTF-8, repeated context key), ERR_TOO_LARGE or ERR_NOMEM. */
int aws_parse_kms_request(const struct aws_kms_request *req,
    struct buf *out);

struct aws_kms_result {
	/* Decrypt: Plaintext (a secret); Encrypt, ReEncrypt: CiphertextBlob. */
	struct buf data;
	struct buf key_id;		/* KeyId (the key ARN), may be empty */
	struct buf source_key_id;	/* ReEncrypt: SourceKeyId or empty */
};

void aws_parse_kms_result_init(struct aws_kms_result *r);
void aws_parse_kms_result_done(struct aws_kms_result *r);

/* Parse a 2xx response body of op. 0, ERR_BAD_REQUEST (not JSON, missing or
 * mistyped field, bad base64, sizes outside the API limits),
 * ERR_TOO_LARGE, ERR_NOMEM. On failure r is left empty. */
int aws_parse_kms_response(enum aws_kms_op op, const char *body, size_t len,
    struct aws_kms_result *r, char *err, size_t errlen);

/* ---- errors ---- */

/* AWS error codes are identifiers (InvalidCiphertextException: 26). */
#define AWS_ERROR_CODE_MAX 64
/* Enough of AWS's message to log; longer ones are cut. */
#define AWS_ERROR_MSG_MAX 256

struct aws_error {
	int err;		/* ERR_* */
	int retryable;		/* the same request may succeed later */
	int throttled;		/* back off harder: the service asked to */
	int refresh_creds;	/* fetch fresh credentials, then retry once */
	long status;		/* HTTP status */
	char code[AWS_ERROR_CODE_MAX];		/* "" when none was found */
	char message[AWS_ERROR_MSG_MAX];	/* printable ASCII, may be "" */
};

/*
 * Classify a non-2xx response. The code comes from the body (JSON
 * "__type", "code"/"Code"; XML <Code>), else from the x-amzn-ErrorType
 * header (error_type, may be NULL), reduced to the bare name (after the
 * last '#', before any ':'). Mapping, code before status:
 *   InvalidCiphertextException, IncorrectKeyException
 *       -> ERR_DECRYPTION_FAILED
 *   authentication, authorisation and key-state errors (AccessDenied*,
 *   UnrecognizedClient, InvalidSignature, IncompleteSignature,
 *   SignatureDoesNotMatch, MissingAuthenticationToken, InvalidClientTokenId,
 *   AuthFailure, NotAuthorized, ExpiredToken* (refresh_creds), NotFound,
 *   Disabled, KMSInvalidState, KeyUnavailable, InvalidKeyUsage,
 *   InvalidGrantToken, InvalidArn, DryRunOperation) -> ERR_PROVIDER_DENIED
 *   ValidationException -> ERR_BAD_REQUEST: KMS refused the caller's input
 *   (a plaintext over 4096 bytes, an empty field) and the same request
 *   will always fail
 *   throttling codes (botocore's list) or 429 -> ERR_THROTTLED, retryable
 *   DependencyTimeout, KMSInternal, InternalFailure, ServiceUnavailable,
 *   RequestTimeout, 5xx, 408 -> ERR_PROVIDER_UNAVAILABLE, retryable
 *   any other 4xx -> ERR_PROVIDER_DENIED; anything else ->
 *   ERR_PROVIDER_UNAVAILABLE, not retryable.
 * Returns out->err. Never fails: an unparsable body classifies by status.
 */
int aws_parse_error(long status, const char *error_type, size_t type_len,
    const char *body, size_t len, struct aws_error *out);

/* ---- ARNs ---- */

/* The region of "arn:PARTITION:kms:REGION:ACCOUNT:key/ID" or ".../alias/NAME"
 * as a slice of key_id. 0 with *ret_region = STR_NULL for the non-ARN forms
 * (key id, "alias/NAME"); ERR_BAD_REQUEST for a malformed ARN or one that
 * is not a KMS key or alias. */
int aws_parse_arn_region(const char *key_id, struct str *ret_region);

#endif
