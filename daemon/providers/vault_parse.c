/*
 * vault_parse.c: request bodies, responses, ciphertexts, errors and
 * settings syntax of the Vault transit provider (see vault_parse.h).
 *
 * Bodies are written by hand into wipe-on-free bufs: every value is
 * base64, a checked ciphertext or a checked secret, so the only escaping
 * needed is "\n" (Base64.encode64's line ends) and '"' / '\\' in role and
 * secret ids. Responses are read with jansson, whose strings the daemon
 * wipes on free (main.c sets its allocator).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "b64.h"
#include "duration.h"
#include "err.h"
#include "vault_parse.h"

/* "vault:v" + at most this many version digits: Vault versions are ints. */
#define VAULT_CT_MAX_DIGITS 9
/* "hmac-sha256:" and the hex of a SHA-256. */
#define VAULT_HASH_PREFIX "hmac-sha256:"
#define VAULT_HASH_HEX 64
/* Longest duration setting: a request that waits ten minutes is a hang. */
#define VAULT_MAX_DURATION_MS (10u * 60 * 1000)

static void
vault_seterr(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

/* ---- settings syntax ---- */

static int
vault_word_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '_';
}

int
vault_name_valid(const char *s, size_t n)
{
	if (s == NULL || n == 0 || n > VAULT_MAX_NAME)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!vault_word_char(s[i]) && s[i] != '.' && s[i] != '-')
			return 0;
	return vault_word_char(s[0]) && vault_word_char(s[n - 1]);
}

int
vault_path_valid(const char *s, size_t n)
{
	size_t seg = 0, i;

	if (s == NULL || n == 0 || n > VAULT_MAX_PATH)
		return 0;
	if (s[n - 1] == '/')
		n--;
	if (n == 0)
		return 0;
	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == '/') {
			size_t len = i - seg;

			if (len == 0 || (len == 1 && s[seg] == '.') ||
			    (len == 2 && s[seg] == '.' && s[seg + 1] == '.'))
				return 0;
			seg = i + 1;
			continue;
		}
		if (!vault_word_char(s[i]) && s[i] != '.' && s[i] != '-')
			return 0;
	}
	return 1;
}

int
vault_parse_duration(const char *s, unsigned *ret_ms)
{
	return duration_parse_ms(s, 1, VAULT_MAX_DURATION_MS, ret_ms);
}

int
vault_parse_count(const char *s, unsigned min, unsigned max, unsigned *ret)
{
	unsigned long v;
	char *end;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*ret = (unsigned)v;
	return 0;
}

int
vault_secret_clean(struct buf *b)
{
	while (b->len > 0 && (b->data[b->len - 1] == '\n' ||
	    b->data[b->len - 1] == '\r' || b->data[b->len - 1] == ' ' ||
	    b->data[b->len - 1] == '\t')) {
		b->len--;
		b->data[b->len] = 0;
	}
	if (b->len == 0 || b->len > VAULT_MAX_SECRET)
		return ERR_BAD_REQUEST;
	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] < 0x21 || b->data[i] > 0x7e)
			return ERR_BAD_REQUEST;
	return buf_cstr(b) == 0 ? 0 : ERR_BAD_REQUEST;
}

/* ---- ciphertexts ---- */

int
vault_ct_valid(const uint8_t *p, size_t n, uint32_t *ret_version)
{
	static const char prefix[] = "vault:v";
	size_t i = sizeof(prefix) - 1, d0;
	uint32_t v = 0;

	if (p == NULL || n <= i || memcmp(p, prefix, i) != 0)
		return 0;
	for (d0 = i; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
		if (i - d0 == VAULT_CT_MAX_DIGITS)
			return 0;
		v = v * 10 + (uint32_t)(p[i] - '0');
	}
	if (i == d0 || i >= n || p[i] != ':')
		return 0;
	if (++i == n)
		return 0;
	for (; i < n; i++) {
		uint8_t c = p[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '='))
			return 0;
	}
	if (ret_version != NULL)
		*ret_version = v;
	return 1;
}

/* ---- request bodies ---- */

/* Append s as the inside of a JSON string: only '"', '\\' and '\n' can
 * occur in what we write (checked secrets, base64 text). */
static int
vault_json_chars(struct buf *out, const uint8_t *s, size_t n)
{
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++) {
		if (s[i] == '\n')
			r = buf_append(out, "\\n", 2);
		else if (s[i] == '"' || s[i] == '\\') {
			if ((r = buf_append_byte(out, '\\')) == 0)
				r = buf_append_byte(out, s[i]);
		} else if (s[i] < 0x20)
			return ERR_BAD_REQUEST;
		else
			r = buf_append_byte(out, s[i]);
	}
	return r;
}

/* ,"name":"<Base64.encode64(p)>" (lead = "," or "{"). The base64 text
 * of a plaintext is a secret too: it lives in a wiped buf. */
static int
vault_field_b64lines(struct buf *out, const char *lead, const char *name,
    const uint8_t *p, size_t n)
{
	struct buf t;
	int r;

	buf_init(&t, out->max);
	if ((r = b64_encode_lines(&t, p, n)) == 0 &&
	    (r = buf_append_str(out, lead)) == 0 &&
	    (r = buf_append_byte(out, '"')) == 0 &&
	    (r = buf_append_str(out, name)) == 0 &&
	    (r = buf_append(out, "\":\"", 3)) == 0 &&
	    (r = vault_json_chars(out, t.data, t.len)) == 0)
		r = buf_append_byte(out, '"');
	buf_done(&t);
	return r;
}

/* Append body to out only when all of it fits: no half body is left. */
static int
vault_body_finish(struct buf *out, size_t start, int r)
{
	if (r == 0)
		r = buf_append_byte(out, '}');
	if (r != 0 && out->len > start) {
		/* Wipe what was appended (it may hold a plaintext). */
		OPENSSL_cleanse(out->data + start, out->len - start);
		out->len = start;
	}
	return r;
}

int
vault_body_encrypt(struct buf *out, const uint8_t *pt, size_t pt_len,
    const uint8_t *ctx_json, size_t ctx_len)
{
	size_t start = out->len;
	int r;

	r = vault_field_b64lines(out, "{", "plaintext", pt, pt_len);
	if (r == 0 && ctx_json != NULL)
		r = vault_field_b64lines(out, ",", "context", ctx_json,
		    ctx_len);
	return vault_body_finish(out, start, r);
}

int
vault_body_ciphertext(struct buf *out, const uint8_t *ct, size_t ct_len,
    const uint8_t *ctx_json, size_t ctx_len)
{
	size_t start = out->len;
	int r;

	if (!vault_ct_valid(ct, ct_len, NULL))
		return ERR_BAD_REQUEST;
	if ((r = buf_append_str(out, "{\"ciphertext\":\"")) == 0 &&
	    (r = buf_append(out, ct, ct_len)) == 0)
		r = buf_append_byte(out, '"');
	if (r == 0 && ctx_json != NULL)
		r = vault_field_b64lines(out, ",", "context", ctx_json,
		    ctx_len);
	return vault_body_finish(out, start, r);
}

int
vault_body_audit_hash(struct buf *out, const uint8_t *ctx_json,
    size_t ctx_len)
{
	size_t start = out->len;

	if (ctx_json == NULL)
		return ERR_BAD_REQUEST;
	return vault_body_finish(out, start, vault_field_b64lines(out, "{",
	    "input", ctx_json, ctx_len));
}

int
vault_body_login(struct buf *out, const char *role_id, const char *secret_id)
{
	size_t start = out->len;
	int r;

	if ((r = buf_append_str(out, "{\"role_id\":\"")) == 0 &&
	    (r = vault_json_chars(out, (const uint8_t *)role_id,
	    strlen(role_id))) == 0 &&
	    (r = buf_append_str(out, "\",\"secret_id\":\"")) == 0 &&
	    (r = vault_json_chars(out, (const uint8_t *)secret_id,
	    strlen(secret_id))) == 0)
		r = buf_append_byte(out, '"');
	return vault_body_finish(out, start, r);
}

/* ---- responses ---- */

static json_t *
vault_json_load(const char *body, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;

	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL || !json_is_object(root)) {
		json_decref(root);
		vault_seterr(err, errlen, "Vault's answer is not a JSON "
		    "object");
		return NULL;
	}
	return root;
}

/* The string at root.obj.field, or NULL with err set. */
static json_t *
vault_json_str(json_t *root, const char *obj, const char *field, char *err,
    size_t errlen)
{
	json_t *o = json_object_get(root, obj), *v;
	char msg[96];

	v = json_is_object(o) ? json_object_get(o, field) : NULL;
	if (!json_is_string(v)) {
		snprintf(msg, sizeof(msg), "Vault's answer has no %s.%s string",
		    obj, field);
		vault_seterr(err, errlen, msg);
		return NULL;
	}
	return v;
}

int
vault_resp_ciphertext(const char *body, size_t len, struct buf *out,
    char *err, size_t errlen)
{
	json_t *root, *v;
	int r = ERR_PROVIDER_UNAVAILABLE;

	if ((root = vault_json_load(body, len, err, errlen)) == NULL)
		return ERR_PROVIDER_UNAVAILABLE;
	if ((v = vault_json_str(root, "data", "ciphertext", err, errlen)) ==
	    NULL)
		goto out;
	if (!vault_ct_valid((const uint8_t *)json_string_value(v),
	    json_string_length(v), NULL)) {
		vault_seterr(err, errlen, "Vault's data.ciphertext is not a "
		    "\"vault:vN:\" string");
		goto out;
	}
	if ((r = buf_append(out, json_string_value(v),
	    json_string_length(v))) != 0)
		vault_seterr(err, errlen, "Vault's ciphertext is too large");
out:
	json_decref(root);
	return r;
}

int
vault_resp_plaintext(const char *body, size_t len, struct buf *out,
    char *err, size_t errlen)
{
	size_t start = out->len;
	json_t *root, *v;
	int r = ERR_PROVIDER_UNAVAILABLE;

	if ((root = vault_json_load(body, len, err, errlen)) == NULL)
		return ERR_PROVIDER_UNAVAILABLE;
	if ((v = vault_json_str(root, "data", "plaintext", err, errlen)) ==
	    NULL)
		goto out;
	if ((r = b64_decode(out, json_string_value(v),
	    json_string_length(v))) != 0) {
		if (out->len > start)
			OPENSSL_cleanse(out->data + start, out->len - start);
		out->len = start;
		if (r == ERR_BAD_REQUEST) {
			r = ERR_PROVIDER_UNAVAILABLE;
			vault_seterr(err, errlen, "Vault's data.plaintext is "
			    "not base64");
		} else
			vault_seterr(err, errlen, "Vault's plaintext is too "
			    "large");
	}
out:
	json_decref(root);
	return r;
}

int
vault_resp_hash(const char *body, size_t len, struct buf *out, char *err,
    size_t errlen)
{
	const size_t plen = sizeof(VAULT_HASH_PREFIX) - 1;
	json_t *root, *v;
	const char *s;
	int r = ERR_PROVIDER_UNAVAILABLE;

	if ((root = vault_json_load(body, len, err, errlen)) == NULL)
		return ERR_PROVIDER_UNAVAILABLE;
	/* Vault's Go client reads data.hash; its API docs show the legacy
	 * sys/ form with the data fields at the top level. Take either. */
	if (!json_is_string(v = json_object_get(root, "hash")) &&
	    (v = vault_json_str(root, "data", "hash", err, errlen)) == NULL)
		goto out;
	s = json_string_value(v);
	if (json_string_length(v) != plen + VAULT_HASH_HEX ||
	    memcmp(s, VAULT_HASH_PREFIX, plen) != 0 ||
	    strspn(s + plen, "0123456789abcdef") != VAULT_HASH_HEX) {
		vault_seterr(err, errlen, "Vault's data.hash is not "
		    "\"hmac-sha256:\" and 64 hex digits");
		goto out;
	}
	if ((r = buf_append(out, s, plen + VAULT_HASH_HEX)) != 0)
		vault_seterr(err, errlen, "out of memory");
out:
	json_decref(root);
	return r;
}

/* A TTL in seconds; absurd values are "no expiry we can plan for". */
static int
vault_json_ttl(json_t *v, uint64_t *ret)
{
	json_int_t n;

	if (!json_is_integer(v) || (n = json_integer_value(v)) < 0)
		return -1;
	*ret = (uint64_t)n > VAULT_MAX_TTL_S ? 0 : (uint64_t)n;
	return 0;
}

int
vault_resp_auth(const char *body, size_t len, struct buf *token,
    struct vault_lease *lease, char *err, size_t errlen)
{
	json_t *root, *auth, *v;
	int r = ERR_PROVIDER_UNAVAILABLE;

	buf_clear(token);
	if ((root = vault_json_load(body, len, err, errlen)) == NULL)
		return ERR_PROVIDER_UNAVAILABLE;
	auth = json_object_get(root, "auth");
	if ((v = vault_json_str(root, "auth", "client_token", err, errlen)) ==
	    NULL)
		goto out;
	if (vault_json_ttl(json_object_get(auth, "lease_duration"),
	    &lease->ttl_s) != 0) {
		vault_seterr(err, errlen, "Vault's answer has no "
		    "auth.lease_duration");
		goto out;
	}
	lease->renewable = json_is_true(json_object_get(auth, "renewable"));
	buf_clear(token);
	if (buf_append(token, json_string_value(v), json_string_length(v)) !=
	    0 || vault_secret_clean(token) != 0) {
		buf_clear(token);
		vault_seterr(err, errlen, "Vault's auth.client_token is empty, "
		    "too long or not printable");
		goto out;
	}
	r = 0;
out:
	json_decref(root);
	return r;
}

int
vault_resp_lookup(const char *body, size_t len, struct vault_lease *lease,
    char *err, size_t errlen)
{
	json_t *root, *data;
	int r = ERR_PROVIDER_UNAVAILABLE;

	if ((root = vault_json_load(body, len, err, errlen)) == NULL)
		return ERR_PROVIDER_UNAVAILABLE;
	data = json_object_get(root, "data");
	if (!json_is_object(data) ||
	    vault_json_ttl(json_object_get(data, "ttl"), &lease->ttl_s) != 0) {
		vault_seterr(err, errlen, "Vault's answer has no data.ttl");
		goto out;
	}
	/* ttl is whole seconds left: 0 is also a token about to expire,
	 * which, unlike one that never expires, has an expire_time. */
	if (lease->ttl_s == 0 &&
	    json_is_string(json_object_get(data, "expire_time")))
		lease->ttl_s = 1;
	lease->renewable = json_is_true(json_object_get(data, "renewable"));
	r = 0;
out:
	json_decref(root);
	return r;
}

/* ---- errors ---- */

/* Append s to out[cap] as printable ASCII, whitespace runs as one space. */
static void
vault_text_add(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = strlen(out);

	for (size_t i = 0; i < n && o + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c > 0x7e) {
			if (o == 0 || out[o - 1] == ' ')
				continue;
			c = ' ';
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
}

static void
vault_error_text(const char *body, size_t len, char *out, size_t cap)
{
	json_t *root, *errs, *e;
	size_t i;

	out[0] = '\0';
	root = json_loadb(body, len, 0, NULL);
	errs = json_is_object(root) ? json_object_get(root, "errors") : NULL;
	if (json_is_array(errs))
		json_array_foreach(errs, i, e) {
			if (!json_is_string(e))
				continue;
			if (out[0] != '\0')
				vault_text_add(out, cap, "; ", 2);
			vault_text_add(out, cap, json_string_value(e),
			    json_string_length(e));
			/* Vault's multierror text ends in blank lines. */
			for (size_t n = strlen(out); n > 0 &&
			    out[n - 1] == ' '; n--)
				out[n - 1] = '\0';
		}
	json_decref(root);
}

static int
vault_has(const char *text, const char *const *needles)
{
	for (size_t i = 0; needles[i] != NULL; i++)
		if (strcasestr(text, needles[i]) != NULL)
			return 1;
	return 0;
}

int
vault_error_map(enum vault_req kind, long status, const char *body,
    size_t len, struct vault_error *out)
{
	static const char *const undecryptable[] = {
		"message authentication failed", "unable to decrypt",
		"invalid ciphertext", "could not decode", "missing 'context'",
		"disallowed by policy", "context should be set", NULL,
	};
	static const char *const authfail[] = {
		"message authentication failed", NULL,
	};
	static const char *const nocontext[] = { "missing 'context'", NULL };
	int unwrapping = kind == VAULT_REQ_DECRYPT || kind == VAULT_REQ_REWRAP;

	memset(out, 0, sizeof(*out));
	out->status = status;
	if (body != NULL && len > 0)
		vault_error_text(body, len, out->text, sizeof(out->text));

	if (status == 400 && unwrapping && vault_has(out->text, undecryptable))
		out->err = ERR_DECRYPTION_FAILED;
	else if (status == 400 && kind == VAULT_REQ_ENCRYPT &&
	    vault_has(out->text, nocontext))
		out->err = ERR_BAD_REQUEST;
	else if (status == 401 || status == 403) {
		out->err = ERR_PROVIDER_DENIED;
		out->auth = 1;
	} else if (status == 429) {
		out->err = ERR_THROTTLED;
		out->retryable = 1;
	} else if (status == 412) {
		out->err = ERR_PROVIDER_UNAVAILABLE;
		out->retryable = 1;
	} else if (status >= 500 && status <= 599) {
		if (unwrapping && vault_has(out->text, authfail))
			out->err = ERR_DECRYPTION_FAILED;
		else {
			out->err = ERR_PROVIDER_UNAVAILABLE;
			out->retryable = status != 501;
		}
	} else if (status >= 400 && status <= 499)
		out->err = ERR_PROVIDER_DENIED;
	else
		out->err = ERR_PROVIDER_UNAVAILABLE;
	return out->err;
}
