/*
 * gcp_auth.c: Google credential files, JWT-bearer assertions and token
 * responses (see gcp_auth.h).
 *
 * The private key is parsed straight from the file's JSON string into an
 * EVP_PKEY (OpenSSL keeps RSA private components in constant-time BNs and
 * clears them in EVP_PKEY_free); a key file with a passphrase is refused
 * rather than prompted for. jansson's copies of the file's strings are
 * wiped on free in the daemon (main.c routes jansson through a wiping
 * free), and everything we copy out of them that is secret goes into
 * wipe-on-free bufs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "b64.h"
#include "err.h"
#include "gcp_auth.h"
#include "gcp_parse.h"

/* RSA keys shorter than this are not accepted for signing (Google issues
 * 2048-bit keys; anything smaller is weak or not Google's). */
#define GCP_MIN_RSA_BITS 2048
/* Room for the JWT header or claims JSON: a scope list, an e-mail address
 * and a token URI, each far below this. */
#define GCP_JWT_JSON_MAX 2048
/* Longest authorized_user field copied (client ids ~75 bytes, refresh
 * tokens ~100-200). */
#define GCP_MAX_USER_FIELD 4096
/* Longest credential "type" named back in a message. */
#define GCP_TYPE_SHOWN 40

static void
gcp_auth_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
gcp_auth_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void
gcp_creds_init(struct gcp_creds *c)
{
	memset(c, 0, sizeof(*c));
	buf_init(&c->client_id, GCP_MAX_USER_FIELD);
	buf_init(&c->client_secret, GCP_MAX_USER_FIELD);
	buf_init(&c->refresh_token, GCP_MAX_USER_FIELD);
}

void
gcp_creds_done(struct gcp_creds *c)
{
	free(c->client_email);
	free(c->private_key_id);
	free(c->token_uri);
	free(c->quota_project);
	EVP_PKEY_free(c->pkey);
	buf_done(&c->client_id);
	buf_done(&c->client_secret);
	buf_done(&c->refresh_token);
	c->client_email = c->private_key_id = c->token_uri = NULL;
	c->quota_project = NULL;
	c->pkey = NULL;
	c->kind = GCP_CRED_NONE;
}

/* A non-empty string member, or NULL. */
static const char *
gcp_json_str(json_t *o, const char *name, size_t *ret_len)
{
	json_t *v = json_object_get(o, name);

	if (!json_is_string(v) || json_string_length(v) == 0)
		return NULL;
	if (ret_len != NULL)
		*ret_len = json_string_length(v);
	return json_string_value(v);
}

/* Never prompt for a passphrase: the daemon has no terminal, and an
 * encrypted key file is not what Google issues. */
static int
gcp_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static int
gcp_load_key(const char *pem, size_t len, EVP_PKEY **ret, char *err,
    size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	BIO *bio;

	if (len > INT32_MAX ||
	    (bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		gcp_auth_err(err, errlen, "out of memory");
		return ERR_NOMEM;
	}
	pkey = PEM_read_bio_PrivateKey_ex(bio, NULL, gcp_no_passphrase, NULL,
	    NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (pkey == NULL) {
		gcp_auth_err(err, errlen, "private_key is not an unencrypted "
		    "PEM private key");
		return ERR_BAD_REQUEST;
	}
	if (!EVP_PKEY_is_a(pkey, "RSA") ||
	    EVP_PKEY_get_bits(pkey) < GCP_MIN_RSA_BITS) {
		EVP_PKEY_free(pkey);
		gcp_auth_err(err, errlen, "private_key is not an RSA key of "
		    "at least %d bits", GCP_MIN_RSA_BITS);
		return ERR_BAD_REQUEST;
	}
	*ret = pkey;
	return 0;
}

static int
gcp_dup(char **dst, const char *s)
{
	if (s == NULL)
		return 0;
	return (*dst = strdup(s)) == NULL ? ERR_NOMEM : 0;
}

static int
gcp_copy_field(json_t *o, const char *name, struct buf *dst, char *err,
    size_t errlen)
{
	size_t n = 0;
	const char *s = gcp_json_str(o, name, &n);
	int r;

	if (s == NULL) {
		gcp_auth_err(err, errlen, "authorized_user credentials lack "
		    "%s", name);
		return ERR_BAD_REQUEST;
	}
	if ((r = buf_append(dst, s, n)) != 0 || (r = buf_cstr(dst)) != 0) {
		gcp_auth_err(err, errlen, "%s too long", name);
		return r;
	}
	return 0;
}

int
gcp_creds_parse(const char *data, size_t len, struct gcp_creds *c, char *err,
    size_t errlen)
{
	const char *type, *pem;
	char shown[GCP_TYPE_SHOWN + 1];
	json_error_t jerr;
	size_t n = 0;
	json_t *o;
	int r = ERR_BAD_REQUEST;

	o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(o)) {
		gcp_auth_err(err, errlen, "not a JSON object (line %d)",
		    jerr.line);
		goto out;
	}
	if ((type = gcp_json_str(o, "type", &n)) == NULL) {
		gcp_auth_err(err, errlen, "no \"type\"");
		goto out;
	}
	if (strcmp(type, "service_account") == 0) {
		c->kind = GCP_CRED_SERVICE_ACCOUNT;
		if (gcp_json_str(o, "client_email", NULL) == NULL) {
			gcp_auth_err(err, errlen, "service_account credentials "
			    "lack client_email");
			goto out;
		}
		if ((pem = gcp_json_str(o, "private_key", &n)) == NULL) {
			gcp_auth_err(err, errlen, "service_account credentials "
			    "lack private_key");
			goto out;
		}
		if ((r = gcp_load_key(pem, n, &c->pkey, err, errlen)) != 0)
			goto out;
		if ((r = gcp_dup(&c->client_email, gcp_json_str(o,
		    "client_email", NULL))) != 0 ||
		    (r = gcp_dup(&c->private_key_id, gcp_json_str(o,
		    "private_key_id", NULL))) != 0)
			goto nomem;
	} else if (strcmp(type, "authorized_user") == 0) {
		c->kind = GCP_CRED_AUTHORIZED_USER;
		if ((r = gcp_copy_field(o, "client_id", &c->client_id, err,
		    errlen)) != 0 ||
		    (r = gcp_copy_field(o, "client_secret", &c->client_secret,
		    err, errlen)) != 0 ||
		    (r = gcp_copy_field(o, "refresh_token", &c->refresh_token,
		    err, errlen)) != 0)
			goto out;
	} else {
		gcp_text_safe(shown, sizeof(shown), type, n);
		gcp_auth_err(err, errlen, "credentials type '%s' is not "
		    "supported (use a service_account key or gcloud's "
		    "authorized_user credentials)", shown);
		r = GCP_CREDS_UNSUPPORTED;
		goto out;
	}
	if ((r = gcp_dup(&c->token_uri, gcp_json_str(o, "token_uri", NULL) !=
	    NULL ? gcp_json_str(o, "token_uri", NULL) :
	    GCP_TOKEN_URI_DEFAULT)) != 0 ||
	    (r = gcp_dup(&c->quota_project, gcp_json_str(o,
	    "quota_project_id", NULL))) != 0)
		goto nomem;
	r = 0;
	goto out;
nomem:
	gcp_auth_err(err, errlen, "out of memory");
out:
	json_decref(o);
	if (r != 0)
		gcp_creds_done(c);
	return r;
}

/* base64url without padding (RFC 7515 2) of p, appended to out. */
static int
gcp_b64url(struct buf *out, const void *p, size_t n)
{
	size_t start = out->len;
	int r;

	if ((r = b64_encode(out, p, n)) != 0)
		return r;
	for (size_t i = start; i < out->len; i++) {
		if (out->data[i] == '+')
			out->data[i] = '-';
		else if (out->data[i] == '/')
			out->data[i] = '_';
	}
	while (out->len > start && out->data[out->len - 1] == '=')
		out->len--;
	return 0;
}

int
gcp_jwt_sign(EVP_PKEY *pkey, const char *header_json, const char *claims_json,
    struct buf *out)
{
	EVP_MD_CTX *md = NULL;
	uint8_t *sig = NULL;
	size_t start = out->len, siglen = 0;
	int r;

	if ((r = gcp_b64url(out, header_json, strlen(header_json))) != 0 ||
	    (r = buf_append_byte(out, '.')) != 0 ||
	    (r = gcp_b64url(out, claims_json, strlen(claims_json))) != 0)
		goto out;
	r = ERR_INTERNAL;
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, pkey,
	    NULL) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, out->data + start,
	    out->len - start) != 1 ||
	    (sig = malloc(siglen)) == NULL ||
	    EVP_DigestSign(md, sig, &siglen, out->data + start,
	    out->len - start) != 1)
		goto out;
	if ((r = buf_append_byte(out, '.')) != 0 ||
	    (r = gcp_b64url(out, sig, siglen)) != 0)
		goto out;
	r = 0;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	free(sig);
	if (r != 0) {
		buf_clear(out);
	}
	return r;
}

/* Compact JSON of o into a NUL-terminated array of GCP_JWT_JSON_MAX. */
static int
gcp_dump(json_t *o, char *dst)
{
	size_t n;

	/* json_pack refuses a string that is not valid UTF-8. */
	if (o == NULL)
		return ERR_BAD_REQUEST;
	n = json_dumpb(o, dst, GCP_JWT_JSON_MAX - 1, JSON_COMPACT);
	json_decref(o);
	if (n == 0 || n >= GCP_JWT_JSON_MAX)
		return ERR_TOO_LARGE;
	dst[n] = '\0';
	return 0;
}

int
gcp_jwt_assertion(const struct gcp_creds *c, const char *scope,
    const char *aud, int64_t iat, struct buf *out)
{
	char header[GCP_JWT_JSON_MAX], claims[GCP_JWT_JSON_MAX];
	json_t *h;
	int r;

	if (c->kind != GCP_CRED_SERVICE_ACCOUNT || c->pkey == NULL)
		return ERR_INTERNAL;
	h = json_pack("{s:s,s:s}", "alg", "RS256", "typ", "JWT");
	if (h != NULL && c->private_key_id != NULL &&
	    json_object_set_new(h, "kid", json_string(c->private_key_id)) !=
	    0) {
		json_decref(h);
		h = NULL;
	}
	if ((r = gcp_dump(h, header)) != 0 ||
	    (r = gcp_dump(json_pack("{s:s,s:s,s:s,s:I,s:I}",
	    "iss", c->client_email, "scope", scope, "aud", aud,
	    "iat", (json_int_t)iat,
	    "exp", (json_int_t)iat + GCP_JWT_LIFETIME_S), claims)) != 0)
		return r;
	return gcp_jwt_sign(c->pkey, header, claims, out);
}

/* name=value with value percent-encoded (RFC 3986 unreserved kept). */
static int
gcp_form(struct buf *out, const char *name, const char *value, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	int r;

	if (out->len > 0 && (r = buf_append_byte(out, '&')) != 0)
		return r;
	if ((r = buf_append_str(out, name)) != 0 ||
	    (r = buf_append_byte(out, '=')) != 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)value[i];

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
		    ch == '_' || ch == '~')
			r = buf_append_byte(out, ch);
		else if ((r = buf_append_byte(out, '%')) == 0 &&
		    (r = buf_append_byte(out, (uint8_t)hex[ch >> 4])) == 0)
			r = buf_append_byte(out, (uint8_t)hex[ch & 0x0f]);
		if (r != 0)
			return r;
	}
	return 0;
}

int
gcp_token_body_jwt(const char *assertion, size_t len, struct buf *out)
{
	static const char grant[] =
	    "urn:ietf:params:oauth:grant-type:jwt-bearer";
	int r;

	if ((r = gcp_form(out, "grant_type", grant, sizeof(grant) - 1)) != 0 ||
	    (r = gcp_form(out, "assertion", assertion, len)) != 0)
		buf_clear(out);
	return r;
}

int
gcp_token_body_refresh(const struct gcp_creds *c, struct buf *out)
{
	int r;

	if (c->kind != GCP_CRED_AUTHORIZED_USER)
		return ERR_INTERNAL;
	if ((r = gcp_form(out, "grant_type", "refresh_token", 13)) != 0 ||
	    (r = gcp_form(out, "client_id", (const char *)c->client_id.data,
	    c->client_id.len)) != 0 ||
	    (r = gcp_form(out, "client_secret",
	    (const char *)c->client_secret.data, c->client_secret.len)) != 0 ||
	    (r = gcp_form(out, "refresh_token",
	    (const char *)c->refresh_token.data, c->refresh_token.len)) != 0)
		buf_clear(out);
	return r;
}

int
gcp_token_parse(const uint8_t *body, size_t len, struct buf *out,
    uint32_t *ret_expires_in, char *err, size_t errlen)
{
	const char *tok, *type;
	json_error_t jerr;
	json_int_t exp = -1;
	json_t *o, *v;
	size_t n = 0;
	int r = ERR_PROVIDER_UNAVAILABLE;

	o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(o)) {
		gcp_auth_err(err, errlen, "token response is not a JSON "
		    "object");
		goto out;
	}
	if ((tok = gcp_json_str(o, "access_token", &n)) == NULL ||
	    n > GCP_MAX_TOKEN) {
		gcp_auth_err(err, errlen, "token response has no usable "
		    "access_token");
		goto out;
	}
	/* It goes into a header: visible ASCII only, no spaces. */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)tok[i] <= 0x20 ||
		    (unsigned char)tok[i] >= 0x7f) {
			gcp_auth_err(err, errlen, "access_token has characters "
			    "a header cannot carry");
			goto out;
		}
	if ((type = gcp_json_str(o, "token_type", NULL)) != NULL &&
	    strcasecmp(type, "Bearer") != 0) {
		gcp_auth_err(err, errlen, "token_type is not Bearer");
		goto out;
	}
	v = json_object_get(o, "expires_in");
	if (json_is_integer(v))
		exp = json_integer_value(v);
	else if (json_is_string(v) && json_string_length(v) > 0 &&
	    json_string_length(v) <= 9 &&
	    strspn(json_string_value(v), "0123456789") ==
	    json_string_length(v))
		exp = (json_int_t)strtol(json_string_value(v), NULL, 10);
	if (exp < 1) {
		gcp_auth_err(err, errlen, "token response has no positive "
		    "expires_in");
		goto out;
	}
	if (exp > GCP_MAX_EXPIRES_IN)
		exp = GCP_MAX_EXPIRES_IN;
	buf_clear(out);
	if ((r = buf_append_str(out, "Bearer ")) != 0 ||
	    (r = buf_append(out, tok, n)) != 0 || (r = buf_cstr(out)) != 0) {
		buf_clear(out);
		gcp_auth_err(err, errlen, "access_token too long");
		r = r == ERR_NOMEM ? r : ERR_PROVIDER_UNAVAILABLE;
		goto out;
	}
	*ret_expires_in = (uint32_t)exp;
	r = 0;
out:
	json_decref(o);
	return r;
}

int
gcp_token_error(long status, const uint8_t *body, size_t len, char *msg,
    size_t msglen)
{
	char code[48] = "", desc[112] = "";
	json_error_t jerr;
	json_t *o = NULL, *e;
	int err;

	if (status == 400 || status == 401 || status == 403 || status == 404)
		err = ERR_PROVIDER_DENIED;
	else if (status == 429)
		err = ERR_THROTTLED;
	else
		err = ERR_PROVIDER_UNAVAILABLE;
	if (body != NULL && len > 0)
		o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES,
		    &jerr);
	if (json_is_object(o)) {
		e = json_object_get(o, "error");
		if (json_is_string(e))
			gcp_text_safe(code, sizeof(code), json_string_value(e),
			    json_string_length(e));
		e = json_object_get(o, "error_description");
		if (json_is_string(e))
			gcp_text_safe(desc, sizeof(desc), json_string_value(e),
			    json_string_length(e));
	}
	json_decref(o);
	snprintf(msg, msglen, "HTTP %ld%s%s%s%s", status, code[0] ? " " : "",
	    code, desc[0] ? ": " : "", desc);
	return err;
}
