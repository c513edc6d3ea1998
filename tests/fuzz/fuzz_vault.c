/*
 * fuzz_vault.c: the Vault transit provider's parsers of what Vault and its
 * token files hand it (daemon/providers/vault_parse.h).
 *
 * Input: a selector byte, a parameter byte, then the body.
 *   selector % 9:
 *   0  vault_resp_ciphertext (encrypt, rewrap)
 *   1  vault_resp_plaintext (decrypt)
 *   2  vault_resp_hash (sys/audit-hash)
 *   3  vault_resp_auth (login, renew-self)
 *   4  vault_resp_lookup (lookup-self)
 *   5  vault_error_map: kind = parameter % 7, status 400 + parameter
 *      (500 + p - 128 from 128 on)
 *   6  vault_ct_valid, then vault_body_ciphertext with it
 *   7  vault_secret_clean (a token / role id / secret id file)
 *   8  the settings syntax: name, path, duration, count
 *
 * Properties (the header's contracts): documented return codes only;
 * outputs unchanged or empty on failure; a ciphertext handed back passes
 * vault_ct_valid; a hash is "hmac-sha256:" and 64 hex digits; an error's
 * text is NUL-terminated printable ASCII; a ciphertext vault_ct_valid
 * accepts makes a request body that is valid JSON carrying it unchanged;
 * a cleaned secret is 1..VAULT_MAX_SECRET printable, spaceless bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "fuzz.h"
#include "vault_parse.h"

static const char prefill[] = "kept";

static void
check_text(const char *t, size_t size)
{
	FUZZ_CHECK(memchr(t, '\0', size) != NULL);
	for (const char *c = t; *c != '\0'; c++)
		FUZZ_CHECK(*c >= 0x20 && *c < 0x7f);
}

/* Responses appending to out: on failure out keeps exactly prefill. */
static void
fuzz_resp(int which, const char *p, size_t n)
{
	struct buf out;
	char err[256] = "";
	int r;

	buf_init(&out, 64 * 1024);
	FUZZ_CHECK(buf_append(&out, prefill, sizeof(prefill)) == 0);
	if (which == 0)
		r = vault_resp_ciphertext(p, n, &out, err, sizeof(err));
	else if (which == 1)
		r = vault_resp_plaintext(p, n, &out, err, sizeof(err));
	else
		r = vault_resp_hash(p, n, &out, err, sizeof(err));
	FUZZ_CHECK(r == 0 || r == ERR_PROVIDER_UNAVAILABLE ||
	    r == ERR_TOO_LARGE || r == ERR_NOMEM);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	FUZZ_CHECK(memcmp(out.data, prefill, sizeof(prefill)) == 0);
	if (r != 0) {
		FUZZ_CHECK(out.len == sizeof(prefill) && err[0] != '\0');
	} else if (which == 0) {
		FUZZ_CHECK(vault_ct_valid(out.data + sizeof(prefill),
		    out.len - sizeof(prefill), NULL));
	} else if (which == 2) {
		const char *h = (const char *)out.data + sizeof(prefill);

		FUZZ_CHECK(out.len - sizeof(prefill) == 12 + 64 &&
		    memcmp(h, "hmac-sha256:", 12) == 0);
		for (size_t i = 12; i < 12 + 64; i++)
			FUZZ_CHECK((h[i] >= '0' && h[i] <= '9') ||
			    (h[i] >= 'a' && h[i] <= 'f'));
	}
	buf_done(&out);
}

static void
fuzz_auth(int lookup, const char *p, size_t n)
{
	struct vault_lease lease = { 12345, 7 };
	struct buf tok;
	char err[256] = "";
	int r;

	buf_init(&tok, VAULT_MAX_SECRET + 3);
	r = lookup ? vault_resp_lookup(p, n, &lease, err, sizeof(err)) :
	    vault_resp_auth(p, n, &tok, &lease, err, sizeof(err));
	FUZZ_CHECK(r == 0 || r == ERR_PROVIDER_UNAVAILABLE ||
	    r == ERR_TOO_LARGE || r == ERR_NOMEM);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (r != 0) {
		FUZZ_CHECK(tok.len == 0 && err[0] != '\0');
	} else {
		FUZZ_CHECK(lease.ttl_s <= VAULT_MAX_TTL_S);
		FUZZ_CHECK(lease.renewable == 0 || lease.renewable == 1);
		if (!lookup)
			FUZZ_CHECK(tok.len > 0 && tok.cap > tok.len &&
			    tok.data[tok.len] == '\0' &&
			    memchr(tok.data, '\0', tok.len) == NULL);
	}
	buf_done(&tok);
}

static void
fuzz_error(uint8_t param, const char *p, size_t n)
{
	struct vault_error e;
	long status = param >= 128 ? 500 + (param - 128) : 400 + param;
	int r;

	r = vault_error_map((enum vault_req)(param % 7), status, p, n, &e);
	FUZZ_CHECK(r == e.err && e.status == status);
	FUZZ_CHECK(r == ERR_DECRYPTION_FAILED || r == ERR_BAD_REQUEST ||
	    r == ERR_PROVIDER_DENIED || r == ERR_THROTTLED ||
	    r == ERR_PROVIDER_UNAVAILABLE);
	check_text(e.text, sizeof(e.text));
	if (r == ERR_DECRYPTION_FAILED || r == ERR_BAD_REQUEST ||
	    r == ERR_PROVIDER_DENIED)
		FUZZ_CHECK(!e.retryable);
}

static void
fuzz_ct(const uint8_t *p, size_t n)
{
	static const uint8_t ctx[] = "{\"a\":\"1\"}";
	uint32_t v = 0;
	struct buf body;
	json_t *o;
	int ok, r;

	ok = vault_ct_valid(p, n, &v);
	buf_init(&body, 256 * 1024);
	r = vault_body_ciphertext(&body, p, n, ctx, sizeof(ctx) - 1);
	if (!ok) {
		FUZZ_CHECK(r == ERR_BAD_REQUEST || r == ERR_TOO_LARGE);
		FUZZ_CHECK(body.len == 0);
	} else {
		FUZZ_CHECK(n > 8 && memcmp(p, "vault:v", 7) == 0);
		FUZZ_CHECK(r == 0 || r == ERR_TOO_LARGE);
	}
	if (r == 0) {
		o = json_loadb((const char *)body.data, body.len, 0, NULL);
		FUZZ_CHECK(o != NULL);
		FUZZ_CHECK(json_string_length(json_object_get(o,
		    "ciphertext")) == n);
		FUZZ_CHECK(memcmp(json_string_value(json_object_get(o,
		    "ciphertext")), p, n) == 0);
		json_decref(o);
	}
	buf_done(&body);
}

static void
fuzz_secret(const uint8_t *p, size_t n)
{
	struct buf b;
	int r;

	buf_init(&b, VAULT_MAX_SECRET + 64);
	if (buf_append(&b, p, n) != 0) {
		buf_done(&b);
		return;
	}
	r = vault_secret_clean(&b);
	FUZZ_CHECK(r == 0 || r == ERR_BAD_REQUEST);
	if (r == 0) {
		FUZZ_CHECK(b.len >= 1 && b.len <= VAULT_MAX_SECRET);
		FUZZ_CHECK(b.cap > b.len && b.data[b.len] == '\0');
		for (size_t i = 0; i < b.len; i++)
			FUZZ_CHECK(b.data[i] > 0x20 && b.data[i] < 0x7f);
	}
	buf_done(&b);
}

static void
fuzz_settings(uint8_t param, const char *p, size_t n)
{
	char s[512];
	unsigned ms = 0, cnt = 0;

	if (n >= sizeof(s))
		n = sizeof(s) - 1;
	memcpy(s, p, n);
	s[n] = '\0';
	if (vault_name_valid(p, n))
		FUZZ_CHECK(n >= 1 && n <= VAULT_MAX_NAME &&
		    memchr(p, '/', n) == NULL);
	if (vault_path_valid(p, n))
		FUZZ_CHECK(n >= 1 && n <= VAULT_MAX_PATH && p[0] != '/' &&
		    strstr(s, "//") == NULL);
	if (vault_parse_duration(s, &ms) == 0)
		FUZZ_CHECK(ms >= 1 && ms <= 600000);
	if (vault_parse_count(s, 1, 1u + param, &cnt) == 0)
		FUZZ_CHECK(cnt >= 1 && cnt <= 1u + param);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t sel = fuzz_byte(&in), param = fuzz_byte(&in);
	const char *p = (const char *)in.p;

	switch (sel % 9) {
	case 0: fuzz_resp(0, p, in.n); break;
	case 1: fuzz_resp(1, p, in.n); break;
	case 2: fuzz_resp(2, p, in.n); break;
	case 3: fuzz_auth(0, p, in.n); break;
	case 4: fuzz_auth(1, p, in.n); break;
	case 5: fuzz_error(param, p, in.n); break;
	case 6: fuzz_ct(in.p, in.n); break;
	case 7: fuzz_secret(in.p, in.n); break;
	default: fuzz_settings(param, p, in.n); break;
	}
	return 0;
}
