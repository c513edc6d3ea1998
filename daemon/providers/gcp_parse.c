/*
 * gcp_parse.c: Cloud KMS key ids, request bodies, response verification
 * and error mapping (see gcp_parse.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "b64.h"
#include "err.h"
#include "gcp_crc32c.h"
#include "gcp_parse.h"

/* One segment of a resource name; Google's own limit is 63 (keys, rings)
 * or 30 (projects), so 100 leaves room without inviting abuse. */
#define GCP_MAX_SEGMENT 100
/* "4294967295": a uint32 CRC as a decimal string. */
#define GCP_CRC_DIGITS 10

/* The resource name's fixed words, between the ids. */
static const char *const gcp_key_words[] = {
	"projects", "locations", "keyRings", "cryptoKeys",
};

#define GCP_N_KEY_WORDS (sizeof(gcp_key_words) / sizeof(gcp_key_words[0]))

static int
gcp_segment_valid(const char *s, size_t n)
{
	if (n == 0 || n > GCP_MAX_SEGMENT || (n == 1 && s[0] == '.') ||
	    (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		/* ':' appears in domain-scoped project ids
		 * ("example.com:proj"); nothing here needs URL escaping. */
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-' || c == ':'))
			return 0;
	}
	return 1;
}

int
gcp_key_id_valid(const char *key_id)
{
	const char *p = key_id, *slash;

	if (key_id == NULL || strlen(key_id) > GCP_MAX_KEY_ID)
		return 0;
	for (size_t i = 0; i < GCP_N_KEY_WORDS; i++) {
		size_t wl = strlen(gcp_key_words[i]);

		if (strncmp(p, gcp_key_words[i], wl) != 0 || p[wl] != '/')
			return 0;
		p += wl + 1;
		slash = strchr(p, '/');
		if (i + 1 < GCP_N_KEY_WORDS) {
			if (slash == NULL ||
			    !gcp_segment_valid(p, (size_t)(slash - p)))
				return 0;
			p = slash + 1;
		} else if (slash != NULL || !gcp_segment_valid(p, strlen(p)))
			return 0;
	}
	return 1;
}

void
gcp_text_safe(char *out, size_t outlen, const char *s, size_t n)
{
	size_t j = 0;

	if (outlen == 0)
		return;
	for (size_t i = 0; i < n && j + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		out[j++] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
	}
	out[j] = '\0';
}

static int
gcp_body_field(struct buf *out, const char *name, const uint8_t *p,
    size_t n, int first)
{
	char crc[GCP_CRC_DIGITS + 1];
	int r;

	snprintf(crc, sizeof(crc), "%u", (unsigned)gcp_crc32c(p, n));
	if ((r = buf_append_str(out, first ? "{\"" : ",\"")) != 0 ||
	    (r = buf_append_str(out, name)) != 0 ||
	    (r = buf_append_str(out, "\":\"")) != 0 ||
	    (r = b64_encode(out, p, n)) != 0 ||
	    (r = buf_append_str(out, "\",\"")) != 0 ||
	    (r = buf_append_str(out, name)) != 0 ||
	    (r = buf_append_str(out, "Crc32c\":\"")) != 0 ||
	    (r = buf_append_str(out, crc)) != 0 ||
	    (r = buf_append_byte(out, '"')) != 0)
		return r;
	return 0;
}

static int
gcp_kms_body(const char *field, size_t max, const uint8_t *in, size_t in_len,
    const uint8_t *aad, size_t aad_len, int has_aad, struct buf *out)
{
	int r;

	if (in_len == 0 || (has_aad && aad_len == 0))
		return ERR_BAD_REQUEST;
	if (in_len > max || (has_aad && aad_len > GCP_KMS_MAX_AAD))
		return ERR_TOO_LARGE;
	if ((r = gcp_body_field(out, field, in, in_len, 1)) != 0)
		return r;
	if (has_aad && (r = gcp_body_field(out, "additionalAuthenticatedData",
	    aad, aad_len, 0)) != 0)
		return r;
	return buf_append_byte(out, '}');
}

int
gcp_kms_encrypt_body(const uint8_t *pt, size_t pt_len, const uint8_t *aad,
    size_t aad_len, int has_aad, struct buf *out)
{
	return gcp_kms_body("plaintext", GCP_KMS_MAX_PLAINTEXT, pt, pt_len, aad,
	    aad_len, has_aad, out);
}

int
gcp_kms_decrypt_body(const uint8_t *ct, size_t ct_len, const uint8_t *aad,
    size_t aad_len, int has_aad, struct buf *out)
{
	return gcp_kms_body("ciphertext", GCP_KMS_MAX_CIPHERTEXT, ct, ct_len,
	    aad, aad_len, has_aad, out);
}

/* An Int64Value CRC: a decimal string (what proto3 JSON writes) or a
 * number (what proto3 JSON parsers also accept), 0..2^32-1. */
static int
gcp_crc_field(json_t *v, uint32_t *ret)
{
	const char *s;
	size_t n;
	uint64_t x = 0;

	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);

		if (i < 0 || i > (json_int_t)UINT32_MAX)
			return -1;
		*ret = (uint32_t)i;
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 || n > GCP_CRC_DIGITS)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	if (x > UINT32_MAX)
		return -1;
	*ret = (uint32_t)x;
	return 0;
}

static int
gcp_fail(struct buf *out, char *msg, size_t msglen, const char *what)
{
	buf_clear(out);
	snprintf(msg, msglen, "Cloud KMS response failed verification: %s",
	    what);
	return ERR_PROVIDER_UNAVAILABLE;
}

/* Decode the base64 bytes field `name` of o into out and check them
 * against the CRC32C field `crc_name`. absent_ok: proto3 JSON omits empty
 * bytes fields. 0 or what gcp_fail returns. */
static int
gcp_bytes_checked(json_t *o, const char *name, const char *crc_name,
    int absent_ok, struct buf *out, char *msg, size_t msglen)
{
	json_t *v = json_object_get(o, name);
	char what[96];
	uint32_t crc;
	int r;

	if (v == NULL && !absent_ok) {
		snprintf(what, sizeof(what), "no %s", name);
		return gcp_fail(out, msg, msglen, what);
	}
	if (v != NULL && !json_is_string(v)) {
		snprintf(what, sizeof(what), "%s is not a string", name);
		return gcp_fail(out, msg, msglen, what);
	}
	if (v != NULL && (r = b64_decode(out, json_string_value(v),
	    json_string_length(v))) != 0) {
		if (r == ERR_NOMEM) {
			buf_clear(out);
			return r;
		}
		snprintf(what, sizeof(what), "%s is %s", name, r ==
		    ERR_TOO_LARGE ? "too large" : "not strict base64");
		return gcp_fail(out, msg, msglen, what);
	}
	if (gcp_crc_field(json_object_get(o, crc_name), &crc) != 0) {
		snprintf(what, sizeof(what), "%s missing or malformed",
		    crc_name);
		return gcp_fail(out, msg, msglen, what);
	}
	if (crc != gcp_crc32c(out->data, out->len)) {
		snprintf(what, sizeof(what), "%s does not match the %s "
		    "received (CRC32C integrity check)", crc_name, name);
		return gcp_fail(out, msg, msglen, what);
	}
	return 0;
}

static json_t *
gcp_load(const uint8_t *body, size_t len)
{
	json_error_t jerr;
	json_t *o;

	o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o != NULL && !json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
gcp_kms_encrypt_result(const uint8_t *body, size_t len, const char *key_id,
    int sent_aad, struct buf *out, char *msg, size_t msglen)
{
	json_t *o, *name;
	size_t kl = strlen(key_id);
	int r;

	buf_clear(out);
	if ((o = gcp_load(body, len)) == NULL)
		return gcp_fail(out, msg, msglen, "not a JSON object");
	if (!json_is_true(json_object_get(o, "verifiedPlaintextCrc32c"))) {
		r = gcp_fail(out, msg, msglen, "verifiedPlaintextCrc32c is "
		    "not true (the plaintext may have been damaged on the "
		    "way)");
		goto out;
	}
	if (sent_aad && !json_is_true(json_object_get(o,
	    "verifiedAdditionalAuthenticatedDataCrc32c"))) {
		r = gcp_fail(out, msg, msglen, "verifiedAdditionalAuthenticated"
		    "DataCrc32c is not true");
		goto out;
	}
	/* The version Google used must belong to the key we asked for. */
	name = json_object_get(o, "name");
	if (name != NULL && (!json_is_string(name) ||
	    strncmp(json_string_value(name), key_id, kl) != 0 ||
	    strncmp(json_string_value(name) + kl, "/cryptoKeyVersions/",
	    19) != 0)) {
		r = gcp_fail(out, msg, msglen, "name is not a version of "
		    "this key");
		goto out;
	}
	r = gcp_bytes_checked(o, "ciphertext", "ciphertextCrc32c", 0, out, msg,
	    msglen);
	if (r == 0 && out->len == 0)
		r = gcp_fail(out, msg, msglen, "empty ciphertext");
out:
	json_decref(o);
	return r;
}

int
gcp_kms_decrypt_result(const uint8_t *body, size_t len, struct buf *out,
    char *msg, size_t msglen)
{
	json_t *o;
	int r;

	buf_clear(out);
	if ((o = gcp_load(body, len)) == NULL)
		return gcp_fail(out, msg, msglen, "not a JSON object");
	r = gcp_bytes_checked(o, "plaintext", "plaintextCrc32c", 1, out, msg,
	    msglen);
	json_decref(o);
	return r;
}

/* google.rpc.Code names (PROVIDERS.md C3) and what kmsd makes of them. */
static const struct {
	const char *status;
	int err;
	int retry;
} gcp_status_map[] = {
	{ "INVALID_ARGUMENT", ERR_BAD_REQUEST, 0 },
	{ "OUT_OF_RANGE", ERR_BAD_REQUEST, 0 },
	/* credentials, IAM, a missing or disabled key: the same request
	 * will be refused again */
	{ "UNAUTHENTICATED", ERR_PROVIDER_DENIED, 0 },
	{ "PERMISSION_DENIED", ERR_PROVIDER_DENIED, 0 },
	{ "NOT_FOUND", ERR_PROVIDER_DENIED, 0 },
	{ "FAILED_PRECONDITION", ERR_PROVIDER_DENIED, 0 },
	{ "ALREADY_EXISTS", ERR_PROVIDER_DENIED, 0 },
	/* per-second quota: back off and try again */
	{ "RESOURCE_EXHAUSTED", ERR_THROTTLED, 1 },
	/* transient on Google's side */
	{ "UNAVAILABLE", ERR_PROVIDER_UNAVAILABLE, 1 },
	{ "DEADLINE_EXCEEDED", ERR_PROVIDER_UNAVAILABLE, 1 },
	{ "INTERNAL", ERR_PROVIDER_UNAVAILABLE, 1 },
	{ "UNKNOWN", ERR_PROVIDER_UNAVAILABLE, 1 },
	{ "ABORTED", ERR_PROVIDER_UNAVAILABLE, 1 },
	{ "CANCELLED", ERR_PROVIDER_UNAVAILABLE, 1 },
	{ "DATA_LOSS", ERR_PROVIDER_UNAVAILABLE, 1 },
	{ "UNIMPLEMENTED", ERR_PROVIDER_UNAVAILABLE, 0 },
};

#define GCP_N_STATUS (sizeof(gcp_status_map) / sizeof(gcp_status_map[0]))

static int
gcp_status_default(long status, int *ret_retry)
{
	*ret_retry = 0;
	if (status == 400)
		return ERR_BAD_REQUEST;
	if (status == 401 || status == 403 || status == 404)
		return ERR_PROVIDER_DENIED;
	*ret_retry = status == 429 || status == 408 || status >= 500;
	return status == 429 ? ERR_THROTTLED : ERR_PROVIDER_UNAVAILABLE;
}

int
gcp_kms_error(long status, const uint8_t *body, size_t len, int *ret_retry,
    char *msg, size_t msglen)
{
	const char *st = NULL, *text = "";
	char safe_st[40], safe_text[128];
	json_t *o = NULL, *e;
	size_t text_len = 0;
	int err, retry;

	if (body != NULL && len > 0 && (o = gcp_load(body, len)) != NULL)
		e = json_object_get(o, "error");
	else
		e = NULL;
	if (json_is_object(e)) {
		if (json_is_string(json_object_get(e, "status")))
			st = json_string_value(json_object_get(e, "status"));
		if (json_is_string(json_object_get(e, "message"))) {
			text = json_string_value(json_object_get(e, "message"));
			text_len = json_string_length(json_object_get(e,
			    "message"));
		}
	}
	err = gcp_status_default(status, &retry);
	for (size_t i = 0; st != NULL && i < GCP_N_STATUS; i++)
		if (strcmp(st, gcp_status_map[i].status) == 0) {
			err = gcp_status_map[i].err;
			retry = gcp_status_map[i].retry;
			break;
		}
	if (err == ERR_BAD_REQUEST && (st == NULL ||
	    strcmp(st, "INVALID_ARGUMENT") == 0)) {
		/* kms_encrypted matches this substring too. */
		if (strstr(text, "Decryption failed") != NULL)
			err = ERR_DECRYPTION_FAILED;
		/* Google found our CRC32C did not match what arrived: the
		 * request was damaged on the way; a new try may pass. */
		else if (strcasestr(text, "checksum") != NULL) {
			err = ERR_PROVIDER_UNAVAILABLE;
			retry = 1;
		}
	}
	gcp_text_safe(safe_st, sizeof(safe_st), st != NULL ? st : "HTTP",
	    st != NULL ? strlen(st) : 4);
	gcp_text_safe(safe_text, sizeof(safe_text), text, text_len);
	if (err == ERR_DECRYPTION_FAILED)
		snprintf(msg, msglen, "Cloud KMS: Decryption failed (wrong "
		    "key, context or ciphertext)");
	else if (safe_text[0] != '\0')
		snprintf(msg, msglen, "Cloud KMS %s (HTTP %ld): %s", safe_st,
		    status, safe_text);
	else
		snprintf(msg, msglen, "Cloud KMS %s (HTTP %ld)", safe_st,
		    status);
	json_decref(o);
	*ret_retry = retry;
	return err;
}
