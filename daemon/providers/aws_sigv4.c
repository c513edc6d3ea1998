/*
 * aws_sigv4.c: AWS Signature Version 4 for request headers (see
 * aws_sigv4.h).
 *
 * This module owns the canonical request, the string to sign and the key
 * derivation; the HTTP layer owns everything that is sent. Invariants:
 * - nothing here does I/O, logs or keeps state between calls;
 * - every key in the HMAC chain ("AWS4" + secret, kDate, kRegion, kService,
 *   kSigning) lives on the stack and is wiped with OPENSSL_cleanse before
 *   return, on every path;
 * - output strings live in wipe-on-free bufs (the canonical request holds
 *   the session token); scratch bufs are wiped too, and a reused out is
 *   wiped before each signature and by sigv4_out_clear;
 * - the signature's HMAC runs on a kept EVP_MAC context (EVP_Q_mac
 *   fetches and allocates a MAC for every call, which cost more than the
 *   hashing itself);
 * - input that could not be sent as a well-formed HTTP/1.1 request (control
 *   bytes in names, values, path or token) is refused rather than signed;
 * - failure messages (out->why) are static text, never a value.
 *
 * The rules follow the aws-c-auth v4 suite and botocore's aws4_testsuite:
 * header names lower-cased and sorted (stable, so repeated names keep their
 * order and are joined with ','), values trimmed with inner whitespace runs
 * (including obs-fold line breaks) collapsed to one space, path dot-segment
 * removal and '//' collapsing when normalize_path (botocore's
 * remove_dot_segments), the path encoded once more, query pairs decoded,
 * re-encoded with the unreserved set and sorted by name then value.
 */
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "aws_sigv4.h"
#include "err.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_TERMINATOR "aws4_request"

/* Caller headers per request: kmsd signs four; the suites use six. */
#define SIGV4_MAX_HEADERS 32
/* Plus the three the signer may add (date, token, content hash). */
#define SIGV4_MAX_ENTRIES (SIGV4_MAX_HEADERS + 3)
/* Longest header name (with its NUL): kmsd's longest is 20; the bound keeps
 * the sort table on the stack. */
#define SIGV4_MAX_NAME 128
/* Query parameters: kmsd sends none; the bound keeps the sort trivial. */
#define SIGV4_MAX_QUERY 64
/* AWS secret keys are 40 characters; the bound sizes the stack buffer that
 * holds "AWS4" + secret. */
#define SIGV4_MAX_SECRET 256
/* STS and IMDS session tokens run to a few KB; 16 KiB is far above that and
 * still keeps a token from crowding out the canonical request. */
#define SIGV4_MAX_TOKEN 16384
/* IAM access key ids are at most 128 characters. */
#define SIGV4_MAX_ACCESS_KEY 128
/* Region and service names are short identifiers ("us-east-1", "kms"). */
#define SIGV4_MAX_SCOPE_PART 64
/* Method names ("POST"); anything longer is not a method we send. */
#define SIGV4_MAX_METHOD 16
/* Cap on every produced string: a KMS canonical request is well under
 * 1 KiB plus the token. */
#define SIGV4_MAX_TEXT 65536
/* "YYYYMMDDTHHMMSSZ" and "YYYYMMDD". */
#define SIGV4_DATE_LEN 16
#define SIGV4_DAY_LEN 8

struct sigv4_entry {
	char name[SIGV4_MAX_NAME];	/* lower-cased */
	size_t name_len;
	struct str value;		/* raw; canonicalised when written */
};

struct sigv4_query_pair {
	size_t k_off, k_len;		/* encoded name in the scratch buf */
	size_t v_off, v_len;		/* encoded value */
};

static const char sigv4_hex_digits[] = "0123456789abcdef";
static const char sigv4_hex_upper[] = "0123456789ABCDEF";

static void
sigv4_hex(const uint8_t *p, size_t n, char *dst)
{
	for (size_t i = 0; i < n; i++) {
		dst[2 * i] = sigv4_hex_digits[p[i] >> 4];
		dst[2 * i + 1] = sigv4_hex_digits[p[i] & 0x0f];
	}
}

static int
sigv4_append_hex(struct buf *b, const uint8_t *p, size_t n)
{
	char tmp[2 * SIGV4_KEY_LEN];
	int r;

	if (n > SIGV4_KEY_LEN)
		return ERR_INTERNAL;
	sigv4_hex(p, n, tmp);
	r = buf_append(b, tmp, 2 * n);
	return r;
}

/* SHA-256 over up to two pieces, with out's kept context. */
static int
sigv4_sha256(struct sigv4_out *out, const void *p1, size_t n1,
    const void *p2, size_t n2, uint8_t md[SIGV4_KEY_LEN])
{
	unsigned int mdlen = 0;

	if (out->sha256 == NULL &&
	    (out->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		return ERR_INTERNAL;
	if (out->md_ctx == NULL && (out->md_ctx = EVP_MD_CTX_new()) == NULL)
		return ERR_NOMEM;
	if (EVP_DigestInit_ex2(out->md_ctx, out->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(out->md_ctx, p1, n1) != 1 ||
	    (n2 > 0 && EVP_DigestUpdate(out->md_ctx, p2, n2) != 1) ||
	    EVP_DigestFinal_ex(out->md_ctx, md, &mdlen) != 1 ||
	    mdlen != SIGV4_KEY_LEN)
		return ERR_INTERNAL;
	return 0;
}

static int
sigv4_sha256_hex(struct sigv4_out *out, const void *p, size_t n,
    struct buf *dst)
{
	uint8_t md[SIGV4_KEY_LEN];
	int r;

	if ((r = sigv4_sha256(out, p, n, NULL, 0, md)) != 0)
		return r;
	return sigv4_append_hex(dst, md, sizeof(md));
}

/* HMAC-SHA256 keyed with a derived signing key, on out's kept MAC
 * context (EVP_Q_mac would fetch and allocate a MAC for every call). */
static int
sigv4_hmac_signing(struct sigv4_out *out, const uint8_t key[SIGV4_KEY_LEN],
    const void *data, size_t data_len, uint8_t mac[SIGV4_KEY_LEN])
{
	OSSL_PARAM params[2];
	size_t maclen = 0;

	if (out->mac_ctx == NULL) {
		if ((out->hmac == NULL &&
		    (out->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL) ||
		    (out->mac_ctx = EVP_MAC_CTX_new(out->hmac)) == NULL)
			return ERR_INTERNAL;
		params[0] = OSSL_PARAM_construct_utf8_string("digest",
		    (char *)"SHA256", 0);
		params[1] = OSSL_PARAM_construct_end();
		if (EVP_MAC_CTX_set_params(out->mac_ctx, params) != 1)
			return ERR_INTERNAL;
	}
	static const uint8_t nokey[SIGV4_KEY_LEN];
	int r = 0;

	if (EVP_MAC_init(out->mac_ctx, key, SIGV4_KEY_LEN, NULL) != 1 ||
	    EVP_MAC_update(out->mac_ctx, data, data_len) != 1 ||
	    EVP_MAC_final(out->mac_ctx, mac, &maclen, SIGV4_KEY_LEN) != 1 ||
	    maclen != SIGV4_KEY_LEN)
		r = ERR_INTERNAL;
	/* The context's pads stand for the signing key: replace them with
	 * an all-zero key's until the next signature. */
	if (EVP_MAC_init(out->mac_ctx, nokey, sizeof(nokey), NULL) != 1)
		r = ERR_INTERNAL;
	if (r != 0)
		ERR_clear_error();
	return r;
}

static int
sigv4_hmac(const uint8_t *key, size_t key_len, const void *data,
    size_t data_len, uint8_t mac[SIGV4_KEY_LEN])
{
	size_t out_len = 0;

	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len,
	    data, data_len, mac, SIGV4_KEY_LEN, &out_len) == NULL ||
	    out_len != SIGV4_KEY_LEN)
		return ERR_INTERNAL;
	return 0;
}

static int
sigv4_is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

/* RFC 7230 tchar: what a header name or a method may contain. */
static int
sigv4_is_tchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || (c != '\0' &&
	    strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int
sigv4_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
sigv4_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
sigv4_append_pct(struct buf *b, unsigned char c)
{
	char e[3] = { '%', sigv4_hex_upper[c >> 4], sigv4_hex_upper[c & 0x0f] };

	return buf_append(b, e, sizeof(e));
}

/* Percent-encode every byte outside the unreserved set (and '/' when
 * keep_slash). */
static int
sigv4_append_encoded(struct buf *b, const char *p, size_t n, int keep_slash)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (sigv4_is_unreserved(c) || (keep_slash && c == '/'))
			r = buf_append_byte(b, c);
		else
			r = sigv4_append_pct(b, c);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Decode one query name or value and re-encode it canonically. */
static int
sigv4_append_requoted(struct buf *b, const char *p, size_t n,
    const char **why)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3 ||
			    (hi = sigv4_hexval((unsigned char)p[i + 1])) < 0 ||
			    (lo = sigv4_hexval((unsigned char)p[i + 2])) < 0) {
				*why = "query has a malformed percent escape";
				return ERR_BAD_REQUEST;
			}
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c < 0x20 || c == 0x7f || c == ' ' || c == '#') {
			*why = "query has a byte that cannot be sent";
			return ERR_BAD_REQUEST;
		}
		if (sigv4_is_unreserved(c))
			r = buf_append_byte(b, c);
		else
			r = sigv4_append_pct(b, c);
		if (r != 0)
			return r;
	}
	return 0;
}

static int
sigv4_str_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int
sigv4_canonical_path(struct buf *cr, const char *path, int normalize,
    const char **why)
{
	struct buf np;
	size_t len, i;
	int r = 0;

	buf_init(&np, SIGV4_MAX_TEXT);
	if (path == NULL || *path == '\0') {
		r = buf_append_byte(cr, '/');
		goto out;
	}
	if (path[0] != '/') {
		*why = "path does not start with '/'";
		r = ERR_BAD_REQUEST;
		goto out;
	}
	len = strlen(path);
	if (len > SIGV4_MAX_TEXT) {
		r = ERR_TOO_LARGE;
		goto out;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)path[i];

		if (c < 0x20 || c == 0x7f || c == '?' || c == '#') {
			*why = "path has a byte that cannot be sent";
			r = ERR_BAD_REQUEST;
			goto out;
		}
	}
	if (!normalize) {
		r = sigv4_append_encoded(cr, path, len, 1);
		goto out;
	}
	/* botocore's remove_dot_segments: drop empty and "." segments, ".."
	 * removes the previous one, keep a trailing '/' unless nothing is
	 * left. np holds "/seg/seg", so popping cuts at the last '/'. */
	for (i = 0; i <= len; ) {
		size_t j = i, sl;

		while (j < len && path[j] != '/')
			j++;
		sl = j - i;
		if (sl == 0 || (sl == 1 && path[i] == '.')) {
			/* nothing */
		} else if (sl == 2 && path[i] == '.' && path[i + 1] == '.') {
			size_t k = np.len;

			while (k > 0 && np.data[k - 1] != '/')
				k--;
			np.len = k > 0 ? k - 1 : 0;
		} else if ((r = buf_append_byte(&np, '/')) != 0 ||
		    (r = buf_append(&np, path + i, sl)) != 0) {
			goto out;
		}
		i = j + 1;
	}
	if (np.len == 0)
		r = buf_append_byte(cr, '/');
	else if (path[len - 1] == '/' && (r = buf_append_byte(&np, '/')) != 0)
		goto out;
	if (np.len > 0)
		r = sigv4_append_encoded(cr, (const char *)np.data, np.len, 1);
out:
	buf_done(&np);
	return r;
}

static int
sigv4_canonical_query(struct buf *cr, const char *query, const char **why)
{
	struct sigv4_query_pair qp[SIGV4_MAX_QUERY];
	size_t nq = 0, len, i;
	struct buf qs;
	int r = 0;

	buf_init(&qs, SIGV4_MAX_TEXT);
	if (query == NULL || *query == '\0')
		goto out;
	len = strlen(query);
	if (len > SIGV4_MAX_TEXT) {
		r = ERR_TOO_LARGE;
		goto out;
	}
	for (i = 0; i <= len; ) {
		size_t j = i, eq;

		while (j < len && query[j] != '&')
			j++;
		if (j == i) {		/* "a&&b" or a trailing '&' */
			i = j + 1;
			continue;
		}
		if (nq == SIGV4_MAX_QUERY) {
			*why = "too many query parameters";
			r = ERR_TOO_LARGE;
			goto out;
		}
		for (eq = i; eq < j && query[eq] != '='; eq++)
			;
		qp[nq].k_off = qs.len;
		if ((r = sigv4_append_requoted(&qs, query + i, eq - i,
		    why)) != 0)
			goto out;
		qp[nq].k_len = qs.len - qp[nq].k_off;
		qp[nq].v_off = qs.len;
		/* "name" alone signs as "name=" */
		if (eq < j && (r = sigv4_append_requoted(&qs, query + eq + 1,
		    j - eq - 1, why)) != 0)
			goto out;
		qp[nq].v_len = qs.len - qp[nq].v_off;
		nq++;
		i = j + 1;
	}
	/* Insertion sort by encoded name, then value: n is small and the
	 * scratch buffer no longer moves. */
	for (i = 1; i < nq; i++) {
		struct sigv4_query_pair t = qp[i];
		size_t k = i;

		while (k > 0) {
			const struct sigv4_query_pair *p = &qp[k - 1];
			int c = sigv4_str_cmp(qs.data + p->k_off, p->k_len,
			    qs.data + t.k_off, t.k_len);

			if (c == 0)
				c = sigv4_str_cmp(qs.data + p->v_off, p->v_len,
				    qs.data + t.v_off, t.v_len);
			if (c <= 0)
				break;
			qp[k] = qp[k - 1];
			k--;
		}
		qp[k] = t;
	}
	for (i = 0; i < nq; i++) {
		if ((i > 0 && (r = buf_append_byte(cr, '&')) != 0) ||
		    (r = buf_append(cr, qs.data + qp[i].k_off,
		    qp[i].k_len)) != 0 ||
		    (r = buf_append_byte(cr, '=')) != 0 ||
		    (r = buf_append(cr, qs.data + qp[i].v_off,
		    qp[i].v_len)) != 0)
			goto out;
	}
out:
	buf_done(&qs);
	return r;
}

/* A header value may hold visible bytes, spaces and tabs, and line breaks
 * only as obs-fold (a break followed by a space or tab), which is how the
 * suites write multi-line values. Anything else could split the request. */
static int
sigv4_value_ok(struct str v)
{
	for (size_t i = 0; i < v.len; i++) {
		unsigned char c = (unsigned char)v.p[i];

		if (c == '\r') {
			if (i + 1 >= v.len || v.p[i + 1] != '\n')
				return 0;
		} else if (c == '\n') {
			if (i + 1 >= v.len ||
			    (v.p[i + 1] != ' ' && v.p[i + 1] != '\t'))
				return 0;
		} else if ((c < 0x20 && c != '\t') || c == 0x7f) {
			return 0;
		}
	}
	return 1;
}

/* Trim, and collapse each run of whitespace (line breaks included) to one
 * space: "Trimall" in AWS's description. */
static int
sigv4_append_value(struct buf *b, struct str v)
{
	int pending = 0, started = 0, r;

	for (size_t i = 0; i < v.len; i++) {
		unsigned char c = (unsigned char)v.p[i];

		if (sigv4_is_space(c)) {
			pending = started;
			continue;
		}
		if (pending && (r = buf_append_byte(b, ' ')) != 0)
			return r;
		if ((r = buf_append_byte(b, c)) != 0)
			return r;
		pending = 0;
		started = 1;
	}
	return 0;
}

static int
sigv4_name_is(const struct sigv4_entry *e, const char *lname)
{
	size_t n = strlen(lname);

	return e->name_len == n && memcmp(e->name, lname, n) == 0;
}

static int
sigv4_add_entry(struct sigv4_entry *tab, size_t *n, const char *name,
    size_t name_len, struct str value)
{
	struct sigv4_entry *e;

	if (*n == SIGV4_MAX_ENTRIES || name_len >= SIGV4_MAX_NAME)
		return ERR_TOO_LARGE;
	e = &tab[(*n)++];
	for (size_t i = 0; i < name_len; i++) {
		unsigned char c = (unsigned char)name[i];

		e->name[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	e->name[name_len] = '\0';
	e->name_len = name_len;
	e->value = value;
	return 0;
}

/* "name:v1,v2\n" lines and "name;name" in stable sorted order. */
static int
sigv4_canonical_headers(struct buf *cr, struct buf *signed_hdrs,
    struct sigv4_entry *tab, size_t n)
{
	int r;

	for (size_t i = 1; i < n; i++) {
		struct sigv4_entry t = tab[i];
		size_t k = i;

		while (k > 0 && sigv4_str_cmp((const uint8_t *)tab[k - 1].name,
		    tab[k - 1].name_len, (const uint8_t *)t.name,
		    t.name_len) > 0) {
			tab[k] = tab[k - 1];
			k--;
		}
		tab[k] = t;
	}
	for (size_t i = 0; i < n; i++) {
		int same = i > 0 && tab[i].name_len == tab[i - 1].name_len &&
		    memcmp(tab[i].name, tab[i - 1].name, tab[i].name_len) == 0;

		if (same) {
			if ((r = buf_append_byte(cr, ',')) != 0)
				return r;
		} else {
			if (i > 0 && ((r = buf_append_byte(cr, '\n')) != 0 ||
			    (r = buf_append_byte(signed_hdrs, ';')) != 0))
				return r;
			if ((r = buf_append(cr, tab[i].name,
			    tab[i].name_len)) != 0 ||
			    (r = buf_append_byte(cr, ':')) != 0 ||
			    (r = buf_append(signed_hdrs, tab[i].name,
			    tab[i].name_len)) != 0)
				return r;
		}
		if ((r = sigv4_append_value(cr, tab[i].value)) != 0)
			return r;
	}
	return n > 0 ? buf_append_byte(cr, '\n') : 0;
}

/* A credential-scope part: no '/', whitespace or control bytes. */
static int
sigv4_scope_part_ok(const char *s, size_t max)
{
	size_t n;

	if (s == NULL || (n = strlen(s)) == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!sigv4_is_unreserved(c))
			return 0;
	}
	return 1;
}

static int
sigv4_token_ok(const char *s)
{
	size_t n = strlen(s);

	if (n > SIGV4_MAX_TOKEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

int
sigv4_signing_key(const char *secret, const char *date8, const char *region,
    const char *service, uint8_t key[SIGV4_KEY_LEN])
{
	uint8_t ksecret[4 + SIGV4_MAX_SECRET];
	uint8_t k1[SIGV4_KEY_LEN], k2[SIGV4_KEY_LEN], k3[SIGV4_KEY_LEN];
	size_t slen;
	int r;

	if (secret == NULL || date8 == NULL || region == NULL ||
	    service == NULL || (slen = strlen(secret)) == 0 ||
	    slen > SIGV4_MAX_SECRET)
		return ERR_BAD_REQUEST;
	memcpy(ksecret, "AWS4", 4);
	memcpy(ksecret + 4, secret, slen);
	if ((r = sigv4_hmac(ksecret, 4 + slen, date8, strlen(date8),
	    k1)) != 0 ||
	    (r = sigv4_hmac(k1, sizeof(k1), region, strlen(region), k2)) != 0 ||
	    (r = sigv4_hmac(k2, sizeof(k2), service, strlen(service),
	    k3)) != 0 ||
	    (r = sigv4_hmac(k3, sizeof(k3), SIGV4_TERMINATOR,
	    strlen(SIGV4_TERMINATOR), key)) != 0)
		OPENSSL_cleanse(key, SIGV4_KEY_LEN);
	/* Each link of the chain is as good as the secret for this day. */
	OPENSSL_cleanse(ksecret, sizeof(ksecret));
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
	OPENSSL_cleanse(k3, sizeof(k3));
	return r;
}

void
sigv4_out_init(struct sigv4_out *out)
{
	buf_init(&out->canonical_request, SIGV4_MAX_TEXT);
	buf_init(&out->string_to_sign, SIGV4_MAX_TEXT);
	buf_init(&out->signature, SIGV4_MAX_TEXT);
	buf_init(&out->amz_date, SIGV4_MAX_TEXT);
	buf_init(&out->payload_hash, SIGV4_MAX_TEXT);
	buf_init(&out->session_token, SIGV4_MAX_TEXT);
	buf_init(&out->authorization, SIGV4_MAX_TEXT);
	buf_init(&out->signed_headers, SIGV4_MAX_TEXT);
	buf_init(&out->scope, SIGV4_MAX_TEXT);
	memset(out->add, 0, sizeof(out->add));
	out->n_add = 0;
	out->why = NULL;
	out->sha256 = NULL;
	out->md_ctx = NULL;
	out->hmac = NULL;
	out->mac_ctx = NULL;
}

void
sigv4_out_clear(struct sigv4_out *out)
{
	buf_clear(&out->canonical_request);
	buf_clear(&out->string_to_sign);
	buf_clear(&out->signature);
	buf_clear(&out->amz_date);
	buf_clear(&out->payload_hash);
	buf_clear(&out->session_token);
	buf_clear(&out->authorization);
	buf_clear(&out->signed_headers);
	buf_clear(&out->scope);
	memset(out->add, 0, sizeof(out->add));
	out->n_add = 0;
	out->why = NULL;
}

void
sigv4_out_done(struct sigv4_out *out)
{
	buf_done(&out->canonical_request);
	buf_done(&out->string_to_sign);
	buf_done(&out->signature);
	buf_done(&out->amz_date);
	buf_done(&out->payload_hash);
	buf_done(&out->session_token);
	buf_done(&out->authorization);
	buf_done(&out->signed_headers);
	buf_done(&out->scope);
	memset(out->add, 0, sizeof(out->add));
	out->n_add = 0;
	/* EVP_MD_CTX_free wipes the digest state it frees. */
	EVP_MD_CTX_free(out->md_ctx);
	out->md_ctx = NULL;
	EVP_MD_free(out->sha256);
	out->sha256 = NULL;
	/* EVP_MAC_CTX_free wipes the key schedule it frees. */
	EVP_MAC_CTX_free(out->mac_ctx);
	out->mac_ctx = NULL;
	EVP_MAC_free(out->hmac);
	out->hmac = NULL;
}

static int
sigv4_check_input(const struct sigv4_request *req,
    const struct sigv4_creds *creds, const struct sigv4_params *params,
    const char **why)
{
	size_t n;

	if (req == NULL || creds == NULL || params == NULL) {
		*why = "missing argument";
		return ERR_BAD_REQUEST;
	}
	if (req->method == NULL || (n = strlen(req->method)) == 0 ||
	    n > SIGV4_MAX_METHOD) {
		*why = "bad method";
		return ERR_BAD_REQUEST;
	}
	for (size_t i = 0; i < n; i++)
		if (!sigv4_is_tchar((unsigned char)req->method[i])) {
			*why = "bad method";
			return ERR_BAD_REQUEST;
		}
	if (req->n_headers > SIGV4_MAX_HEADERS) {
		*why = "too many headers";
		return ERR_TOO_LARGE;
	}
	if ((req->n_headers > 0 && req->headers == NULL) ||
	    (req->body_len > 0 && req->body == NULL)) {
		*why = "missing headers or body";
		return ERR_BAD_REQUEST;
	}
	if (!sigv4_scope_part_ok(creds->access_key, SIGV4_MAX_ACCESS_KEY)) {
		*why = "bad access key id";
		return ERR_BAD_REQUEST;
	}
	if (creds->secret_key == NULL || (n = strlen(creds->secret_key)) == 0 ||
	    n > SIGV4_MAX_SECRET) {
		*why = "bad secret key length";
		return ERR_BAD_REQUEST;
	}
	if (creds->session_token != NULL && !sigv4_token_ok(
	    creds->session_token)) {
		*why = "bad session token";
		return ERR_BAD_REQUEST;
	}
	if (!sigv4_scope_part_ok(params->region, SIGV4_MAX_SCOPE_PART)) {
		*why = "bad region";
		return ERR_BAD_REQUEST;
	}
	if (!sigv4_scope_part_ok(params->service, SIGV4_MAX_SCOPE_PART)) {
		*why = "bad service";
		return ERR_BAD_REQUEST;
	}
	return 0;
}

/* Fill tab with the caller's headers and the ones the signer signs. */
static int
sigv4_collect_headers(const struct sigv4_request *req,
    const struct sigv4_params *params, const struct sigv4_out *out,
    int sign_token, struct sigv4_entry *tab, size_t *n, const char **why)
{
	int have_host = 0, r;

	*n = 0;
	for (size_t i = 0; i < req->n_headers; i++) {
		const struct sigv4_header *h = &req->headers[i];
		struct sigv4_entry *e;

		if (h->name.p == NULL || h->name.len == 0 ||
		    h->name.len >= SIGV4_MAX_NAME) {
			*why = "bad header name";
			return ERR_BAD_REQUEST;
		}
		for (size_t k = 0; k < h->name.len; k++)
			if (!sigv4_is_tchar((unsigned char)h->name.p[k])) {
				*why = "bad header name";
				return ERR_BAD_REQUEST;
			}
		if ((h->value.p == NULL && h->value.len > 0) ||
		    !sigv4_value_ok(h->value)) {
			*why = "header value has a byte that cannot be sent";
			return ERR_BAD_REQUEST;
		}
		if ((r = sigv4_add_entry(tab, n, h->name.p, h->name.len,
		    h->value)) != 0)
			return r;
		e = &tab[*n - 1];
		if (sigv4_name_is(e, "authorization") ||
		    sigv4_name_is(e, "x-amz-date") ||
		    sigv4_name_is(e, "x-amz-security-token") ||
		    (params->sign_body &&
		    sigv4_name_is(e, "x-amz-content-sha256"))) {
			*why = "header is set by the signer";
			return ERR_BAD_REQUEST;
		}
		if (sigv4_name_is(e, "host"))
			have_host = 1;
	}
	if (!have_host) {
		*why = "no Host header";
		return ERR_BAD_REQUEST;
	}
	if ((r = sigv4_add_entry(tab, n, "x-amz-date", 10, (struct str){
	    (const char *)out->amz_date.data, out->amz_date.len })) != 0)
		return r;
	if (sign_token && (r = sigv4_add_entry(tab, n, "x-amz-security-token",
	    20, (struct str){ (const char *)out->session_token.data,
	    out->session_token.len })) != 0)
		return r;
	if (params->sign_body && (r = sigv4_add_entry(tab, n,
	    "x-amz-content-sha256", 20, (struct str){
	    (const char *)out->payload_hash.data,
	    out->payload_hash.len })) != 0)
		return r;
	return 0;
}

static struct str
sigv4_buf_str(const struct buf *b)
{
	return (struct str){ (const char *)b->data, b->len };
}

static void
sigv4_add(struct sigv4_out *out, const char *name, const struct buf *b)
{
	out->add[out->n_add].name = (struct str){ name, strlen(name) };
	out->add[out->n_add].value = sigv4_buf_str(b);
	out->n_add++;
}

/* "YYYYMMDDTHHMMSSZ" for a year 1000..9999 (strftime is locale-aware
 * and costs more than the signature's bookkeeping). */
static int
sigv4_format_date(time_t now, char date[SIGV4_DATE_LEN + 1])
{
	static const int w[6] = { 4, 2, 2, 2, 2, 2 };	/* digits */
	struct tm tm;
	char *p = date;
	int f[6];

	if (gmtime_r(&now, &tm) == NULL || tm.tm_year + 1900 < 1000 ||
	    tm.tm_year + 1900 > 9999)
		return -1;
	f[0] = tm.tm_year + 1900;
	f[1] = tm.tm_mon + 1;
	f[2] = tm.tm_mday;
	f[3] = tm.tm_hour;
	f[4] = tm.tm_min;
	f[5] = tm.tm_sec;
	for (int i = 0; i < 6; i++) {
		if (i == 3)
			*p++ = 'T';
		for (int k = w[i] - 1, x = f[i]; k >= 0; k--, x /= 10)
			p[k] = (char)('0' + x % 10);
		p += w[i];
	}
	*p++ = 'Z';
	*p = '\0';
	return 0;
}

int
sigv4_sign(const struct sigv4_request *req, const struct sigv4_creds *creds,
    const struct sigv4_params *params, struct sigv4_out *out)
{
	const char *why;
	int r;

	sigv4_out_init(out);
	if ((r = sigv4_sign_into(req, creds, params, out)) != 0) {
		why = out->why;
		sigv4_out_done(out);
		out->why = why;
	}
	return r;
}

int
sigv4_sign_into(const struct sigv4_request *req,
    const struct sigv4_creds *creds, const struct sigv4_params *params,
    struct sigv4_out *out)
{
	struct sigv4_entry tab[SIGV4_MAX_ENTRIES];
	uint8_t key[SIGV4_KEY_LEN], mac[SIGV4_KEY_LEN];
	char date[SIGV4_DATE_LEN + 1];
	struct buf *cr = &out->canonical_request, *sts = &out->string_to_sign;
	struct buf *sh = &out->signed_headers, *scope = &out->scope;
	struct buf *auth = &out->authorization;
	const char *why = NULL;
	size_t n_tab = 0;
	int have_token, r;

	sigv4_out_clear(out);
	memset(mac, 0, sizeof(mac));
	if ((r = sigv4_check_input(req, creds, params, &why)) != 0)
		goto out;
	have_token = creds->session_token != NULL &&
	    creds->session_token[0] != '\0';

	if (sigv4_format_date(params->now, date) != 0) {
		why = "signing time out of range";
		r = ERR_BAD_REQUEST;
		goto out;
	}
	if ((r = buf_append(&out->amz_date, date, SIGV4_DATE_LEN)) != 0 ||
	    (r = sigv4_sha256_hex(out, req->body_len > 0 ?
	    (const void *)req->body : "", req->body_len,
	    &out->payload_hash)) != 0 ||
	    (have_token && (r = buf_append_str(&out->session_token,
	    creds->session_token)) != 0))
		goto out;
	if ((r = sigv4_collect_headers(req, params, out,
	    have_token && !params->omit_session_token, tab, &n_tab,
	    &why)) != 0)
		goto out;

	/* The canonical request. */
	if ((r = buf_append_str(cr, req->method)) != 0 ||
	    (r = buf_append_byte(cr, '\n')) != 0 ||
	    (r = sigv4_canonical_path(cr, req->path, params->normalize_path,
	    &why)) != 0 ||
	    (r = buf_append_byte(cr, '\n')) != 0 ||
	    (r = sigv4_canonical_query(cr, req->query, &why)) != 0 ||
	    (r = buf_append_byte(cr, '\n')) != 0 ||
	    (r = sigv4_canonical_headers(cr, sh, tab, n_tab)) != 0 ||
	    (r = buf_append_byte(cr, '\n')) != 0 ||
	    (r = buf_append(cr, sh->data, sh->len)) != 0 ||
	    (r = buf_append_byte(cr, '\n')) != 0 ||
	    (r = buf_append(cr, out->payload_hash.data,
	    out->payload_hash.len)) != 0)
		goto out;

	/* The string to sign. */
	if ((r = buf_append(scope, date, SIGV4_DAY_LEN)) != 0 ||
	    (r = buf_append_byte(scope, '/')) != 0 ||
	    (r = buf_append_str(scope, params->region)) != 0 ||
	    (r = buf_append_byte(scope, '/')) != 0 ||
	    (r = buf_append_str(scope, params->service)) != 0 ||
	    (r = buf_append_str(scope, "/" SIGV4_TERMINATOR)) != 0 ||
	    (r = buf_append_str(sts, SIGV4_ALGORITHM "\n")) != 0 ||
	    (r = buf_append(sts, date, SIGV4_DATE_LEN)) != 0 ||
	    (r = buf_append_byte(sts, '\n')) != 0 ||
	    (r = buf_append(sts, scope->data, scope->len)) != 0 ||
	    (r = buf_append_byte(sts, '\n')) != 0 ||
	    (r = sigv4_sha256_hex(out, cr->data, cr->len, sts)) != 0)
		goto out;

	/* The signature: only the derived key touches the string to sign. */
	date[SIGV4_DAY_LEN] = '\0';
	if ((r = buf_cstr(scope)) != 0)
		goto out;
	if (params->signing_key != NULL)
		memcpy(key, params->signing_key, sizeof(key));
	else if ((r = sigv4_signing_key(creds->secret_key, date,
	    params->region, params->service, key)) != 0)
		goto out;
	r = sigv4_hmac_signing(out, key, sts->data, sts->len, mac);
	OPENSSL_cleanse(key, sizeof(key));
	if (r != 0 || (r = sigv4_append_hex(&out->signature, mac,
	    sizeof(mac))) != 0)
		goto out;

	if ((r = buf_append_str(auth, SIGV4_ALGORITHM " Credential=")) != 0 ||
	    (r = buf_append_str(auth, creds->access_key)) != 0 ||
	    (r = buf_append_byte(auth, '/')) != 0 ||
	    (r = buf_append(auth, scope->data, scope->len)) != 0 ||
	    (r = buf_append_str(auth, ", SignedHeaders=")) != 0 ||
	    (r = buf_append(auth, sh->data, sh->len)) != 0 ||
	    (r = buf_append_str(auth, ", Signature=")) != 0 ||
	    (r = buf_append(auth, out->signature.data,
	    out->signature.len)) != 0)
		goto out;

	/* NUL-terminate every output for C-string users. */
	if ((r = buf_cstr(cr)) != 0 ||
	    (r = buf_cstr(sts)) != 0 ||
	    (r = buf_cstr(&out->signature)) != 0 ||
	    (r = buf_cstr(&out->amz_date)) != 0 ||
	    (r = buf_cstr(&out->payload_hash)) != 0 ||
	    (r = buf_cstr(&out->session_token)) != 0 ||
	    (r = buf_cstr(sh)) != 0 ||
	    (r = buf_cstr(auth)) != 0)
		goto out;

	/* Only now do the bufs stop moving, so the header views are safe. */
	sigv4_add(out, "X-Amz-Date", &out->amz_date);
	if (have_token)
		sigv4_add(out, "X-Amz-Security-Token", &out->session_token);
	if (params->sign_body)
		sigv4_add(out, "X-Amz-Content-Sha256", &out->payload_hash);
	sigv4_add(out, "Authorization", auth);
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	if (r != 0) {
		sigv4_out_clear(out);
		out->why = why != NULL ? why : r == ERR_TOO_LARGE ?
		    "request too large to sign" : r == ERR_NOMEM ?
		    "out of memory" : "signing failed";
	}
	return r;
}
