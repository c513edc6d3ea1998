/*
 * test_vault_parse.c: the Vault provider's pure parts: request bodies
 * (byte-compatible with kms_encrypted, checked against the transit
 * vectors), "vault:vN:" ciphertexts, response shapes good and bad, the
 * error mapping table, settings syntax, and the [vault] section check
 * with FILE:LINE errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "b64.h"
#include "config.h"
#include "err.h"
#include "provider.h"
#include "vault_parse.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
/* A string literal and its length. */
#define SL(s) (s), strlen(s)
#define VECTORS TEST_SRCDIR "/../vectors/vault/transit_derived.json"
/* Planted in secret slots: no message may show it. */
#define TOKEN "hvs.CAESIJSECRETTOKENVALUE0123456789"

static int
buf_is(const struct buf *b, const char *s)
{
	size_t n = strlen(s);

	return b->len == n && (n == 0 || memcmp(b->data, s, n) == 0);
}

static const char *
vec(const char *obj, const char *field)
{
	static json_t *root;
	json_t *o;

	if (root == NULL) {
		root = json_load_file(VECTORS, 0, NULL);
		ck_assert_msg(root != NULL, "cannot read %s", VECTORS);
	}
	o = obj != NULL ? json_object_get(root, obj) : root;
	ck_assert_ptr_nonnull(json_string_value(json_object_get(o, field)));
	return json_string_value(json_object_get(o, field));
}

/* ======== bodies ======== */

START_TEST(test_body_context_as_kms_encrypted)
{
	const char *ctx = vec(NULL, "context_bytes_utf8");
	const char *sent = vec(NULL, "context_field_as_sent_by_kms_encrypted");
	char want[512];
	struct buf b;
	json_t *root;

	buf_init(&b, 4096);
	ck_assert_int_eq(vault_body_encrypt(&b, (const uint8_t *)"\x00\x01",
	    2, (const uint8_t *)ctx, strlen(ctx)), 0);
	/* the JSON is exact: plaintext then context, Base64.encode64 text */
	snprintf(want, sizeof(want), "{\"plaintext\":\"AAE=\\n\",\"context\":"
	    "\"%.*s\\n\"}", (int)strlen(sent) - 1, sent);
	ck_assert_msg(buf_is(&b, want), "%.*s", (int)b.len, b.data);
	root = json_loadb((const char *)b.data, b.len, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(root, "context")),
	    sent);
	json_decref(root);

	buf_clear(&b);
	ck_assert_int_eq(vault_body_audit_hash(&b, (const uint8_t *)ctx,
	    strlen(ctx)), 0);
	root = json_loadb((const char *)b.data, b.len, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(root, "input")),
	    sent);
	json_decref(root);
	buf_done(&b);
}
END_TEST

/* The input we send, HMAC'd with the device salt, is the vector's hash:
 * kmsd's context_hash finds what Vault's audit log holds. */
START_TEST(test_audit_hash_input_matches_vector)
{
	const char *ctx = vec(NULL, "context_bytes_utf8");
	const char *salt = vec("audit_hash", "salt_example");
	const char *want = vec("audit_hash",
	    "hash_of_context_as_sent_by_kms_encrypted");
	uint8_t mac[32];
	unsigned maclen = 0;
	char hex[80] = "hmac-sha256:";
	json_t *root;
	const char *input;
	struct buf b;

	buf_init(&b, 4096);
	ck_assert_int_eq(vault_body_audit_hash(&b, (const uint8_t *)ctx,
	    strlen(ctx)), 0);
	root = json_loadb((const char *)b.data, b.len, 0, NULL);
	input = json_string_value(json_object_get(root, "input"));
	ck_assert_ptr_nonnull(HMAC(EVP_sha256(), salt, (int)strlen(salt),
	    (const uint8_t *)input, strlen(input), mac, &maclen));
	for (unsigned i = 0; i < maclen; i++)
		snprintf(hex + 12 + 2 * i, 3, "%02x", mac[i]);
	ck_assert_str_eq(hex, want);
	json_decref(root);
	buf_done(&b);
}
END_TEST

START_TEST(test_body_shapes)
{
	struct buf b;
	uint8_t big[100];
	json_t *root;
	const char *s;

	buf_init(&b, 4096);
	/* no context: no field at all */
	ck_assert_int_eq(vault_body_encrypt(&b, (const uint8_t *)"hi", 2,
	    NULL, 0), 0);
	ck_assert(buf_is(&b, "{\"plaintext\":\"aGk=\\n\"}"));
	/* the empty context {} is a context */
	buf_clear(&b);
	ck_assert_int_eq(vault_body_encrypt(&b, (const uint8_t *)"", 0,
	    (const uint8_t *)"{}", 2), 0);
	ck_assert(buf_is(&b, "{\"plaintext\":\"\",\"context\":\"e30=\\n\"}"));
	/* 100 bytes: three lines of 60, 60 and 16 characters */
	memset(big, 0xab, sizeof(big));
	buf_clear(&b);
	ck_assert_int_eq(vault_body_encrypt(&b, big, sizeof(big), NULL, 0),
	    0);
	root = json_loadb((const char *)b.data, b.len, 0, NULL);
	s = json_string_value(json_object_get(root, "plaintext"));
	ck_assert_uint_eq(strlen(s), 60 + 1 + 60 + 1 + 16 + 1);
	ck_assert(s[60] == '\n' && s[121] == '\n' && s[138] == '\n');
	json_decref(root);
	/* decrypt / rewrap */
	buf_clear(&b);
	ck_assert_int_eq(vault_body_ciphertext(&b,
	    (const uint8_t *)"vault:v2:QUJD", 13, (const uint8_t *)"{}", 2), 0);
	ck_assert(buf_is(&b, "{\"ciphertext\":\"vault:v2:QUJD\",\"context\":"
	    "\"e30=\\n\"}"));
	buf_clear(&b);
	ck_assert_int_eq(vault_body_ciphertext(&b,
	    (const uint8_t *)"vault:v2:\"}", 11, NULL, 0), ERR_BAD_REQUEST);
	ck_assert_uint_eq(b.len, 0);
	/* login: role and secret ids escaped */
	ck_assert_int_eq(vault_body_login(&b, "r\"1", "s\\2"), 0);
	ck_assert(buf_is(&b, "{\"role_id\":\"r\\\"1\","
	    "\"secret_id\":\"s\\\\2\"}"));
	/* audit hash needs a context */
	buf_clear(&b);
	ck_assert_int_eq(vault_body_audit_hash(&b, NULL, 0), ERR_BAD_REQUEST);
	buf_done(&b);
}
END_TEST

START_TEST(test_body_too_large_leaves_nothing)
{
	uint8_t pt[64];
	struct buf b;

	memset(pt, 0x5a, sizeof(pt));
	buf_init(&b, 60);
	ck_assert_int_eq(vault_body_encrypt(&b, pt, sizeof(pt), NULL, 0),
	    ERR_TOO_LARGE);
	ck_assert_uint_eq(b.len, 0);
	for (size_t i = 0; i < b.cap; i++)
		ck_assert_uint_eq(b.data[i], 0);
	buf_done(&b);
}
END_TEST

/* ======== ciphertexts ======== */

START_TEST(test_ciphertext_strings)
{
	static const struct {
		const char *s;
		int ok;
		uint32_t version;
	} t[] = {
		{ "vault:v1:AAAA", 1, 1 },
		{ "vault:v0:AA==", 1, 0 },
		{ "vault:v123456789:x+/=", 1, 123456789 },
		{ "vault:v1234567890:AAAA", 0, 0 },
		{ "vault:v1:", 0, 0 },
		{ "vault:v:AAAA", 0, 0 },
		{ "vault:1:AAAA", 0, 0 },
		{ "vault:v1AAAA", 0, 0 },
		{ "vault:v1:AA AA", 0, 0 },
		{ "vault:v1:AA\nAA", 0, 0 },
		{ "vault:v1:AA\"", 0, 0 },
		{ "vault:v1:AA:BB", 0, 0 },
		{ "Vault:v1:AAAA", 0, 0 },
		{ "", 0, 0 },
	};
	const char *vct = vec("encrypt_derived", "ciphertext_field");
	const char *stored = vec("encrypt_derived", "kms_encrypted_stored");
	struct buf b;
	uint32_t v;

	for (size_t i = 0; i < NELEM(t); i++) {
		v = 77;
		ck_assert_msg(vault_ct_valid((const uint8_t *)t[i].s,
		    strlen(t[i].s), &v) == t[i].ok, "%s", t[i].s);
		if (t[i].ok)
			ck_assert_uint_eq(v, t[i].version);
	}
	ck_assert(vault_ct_valid((const uint8_t *)vct, strlen(vct), &v));
	ck_assert_uint_eq(v, 1);
	/* kms_encrypted's stored value: "v1:" + base64 of Vault's string */
	buf_init(&b, 1024);
	ck_assert_int_eq(buf_append_str(&b, "v1:"), 0);
	ck_assert_int_eq(b64_encode(&b, vct, strlen(vct)), 0);
	ck_assert(buf_is(&b, stored));
	buf_done(&b);
}
END_TEST

/* ======== responses ======== */

START_TEST(test_response_ciphertext)
{
	static const char *const bad[] = {
		"", "[]", "{}", "{\"data\":null}", "{\"data\":{}}",
		"{\"data\":{\"ciphertext\":1}}",
		"{\"data\":{\"ciphertext\":\"AAAA\"}}",
		"{\"data\":{\"ciphertext\":\"vault:v1:A\",\"x\":1,\"x\":2}}",
		"{\"data\":{\"ciphertext\":\"vault:v1:AA\\u0000\"}}",
	};
	char err[128];
	struct buf b;

	buf_init(&b, 64);
	ck_assert_int_eq(vault_resp_ciphertext(SL("{\"request_id\":\"x\","
	    "\"data\":"
	    "{\"ciphertext\":\"vault:v3:QUJD\",\"key_version\":3},"
	    "\"auth\":null}"), &b, err, sizeof(err)), 0);
	ck_assert(buf_is(&b, "vault:v3:QUJD"));
	for (size_t i = 0; i < NELEM(bad); i++) {
		buf_clear(&b);
		ck_assert_msg(vault_resp_ciphertext(bad[i], strlen(bad[i]), &b,
		    err, sizeof(err)) == ERR_PROVIDER_UNAVAILABLE, "%s",
		    bad[i]);
		ck_assert_uint_eq(b.len, 0);
	}
	/* larger than the output cap */
	buf_done(&b);
	buf_init(&b, 8);
	ck_assert_int_eq(vault_resp_ciphertext(SL("{\"data\":{\"ciphertext\":"
	    "\"vault:v1:QUJDRA==\"}}"), &b, err, sizeof(err)),
	    ERR_TOO_LARGE);
	buf_done(&b);
}
END_TEST

START_TEST(test_response_plaintext)
{
	static const char *const bad[] = {
		"{\"data\":{\"plaintext\":\"aGk\"}}",
		"{\"data\":{\"plaintext\":\"aGk=\\n\"}}",
		"{\"data\":{\"plaintext\":\"a Gk=\"}}",
		"{\"data\":{\"plaintext\":null}}",
		"{\"data\":\"aGk=\"}",
		"not json",
	};
	char err[128];
	struct buf b;

	buf_init(&b, 64);
	ck_assert_int_eq(vault_resp_plaintext(SL("{\"data\":{\"plaintext\":"
	    "\"aGk=\"}}"), &b, err, sizeof(err)), 0);
	ck_assert(buf_is(&b, "hi"));
	buf_clear(&b);
	ck_assert_int_eq(vault_resp_plaintext(SL("{\"data\":{"
	    "\"plaintext\":\"\"}}"),
	    &b, err, sizeof(err)), 0);
	ck_assert_uint_eq(b.len, 0);
	for (size_t i = 0; i < NELEM(bad); i++) {
		buf_clear(&b);
		ck_assert_msg(vault_resp_plaintext(bad[i], strlen(bad[i]), &b,
		    err, sizeof(err)) == ERR_PROVIDER_UNAVAILABLE, "%s",
		    bad[i]);
		ck_assert_uint_eq(b.len, 0);
	}
	buf_done(&b);
}
END_TEST

START_TEST(test_response_hash)
{
	const char *h = vec("audit_hash", "hash_of_strict_base64_context");
	char body[256], err[128];
	struct buf b;

	buf_init(&b, 256);
	snprintf(body, sizeof(body), "{\"data\":{\"hash\":\"%s\"}}", h);
	ck_assert_int_eq(vault_resp_hash(body, strlen(body), &b, err,
	    sizeof(err)), 0);
	ck_assert(buf_is(&b, h));
	/* the legacy sys/ shape: data fields at the top level too, or only */
	snprintf(body, sizeof(body), "{\"hash\":\"%s\"}", h);
	buf_clear(&b);
	ck_assert_int_eq(vault_resp_hash(body, strlen(body), &b, err,
	    sizeof(err)), 0);
	ck_assert(buf_is(&b, h));
	buf_clear(&b);
	ck_assert_int_eq(vault_resp_hash(SL("{\"data\":{\"hash\":\"hmac-sha256:"
	    "ABCD\"}}"), &b, err, sizeof(err)), ERR_PROVIDER_UNAVAILABLE);
	snprintf(body, sizeof(body), "{\"data\":{\"hash\":\"%.75sG\"}}", h);
	ck_assert_int_eq(vault_resp_hash(body, strlen(body), &b, err,
	    sizeof(err)), ERR_PROVIDER_UNAVAILABLE);
	ck_assert_uint_eq(b.len, 0);
	buf_done(&b);
}
END_TEST

START_TEST(test_response_auth_and_lookup)
{
	const char *login = "{\"auth\":{\"client_token\":\"" TOKEN "\","
	    "\"accessor\":\"a\",\"policies\":[\"default\"],\"lease_duration\":"
	    "2764800,\"renewable\":true,\"metadata\":{\"role_name\":\"r\"}},"
	    "\"data\":null}";
	static const char *const bad[] = {
		"{\"auth\":null}",
		"{\"auth\":{\"client_token\":\"\",\"lease_duration\":1}}",
		"{\"auth\":{\"client_token\":\"" TOKEN " x\","
		    "\"lease_duration\":1}}",
		"{\"auth\":{\"client_token\":\"" TOKEN "\"}}",
		"{\"auth\":{\"client_token\":\"" TOKEN "\","
		    "\"lease_duration\":-1}}",
		"{\"auth\":{\"client_token\":\"" TOKEN "\","
		    "\"lease_duration\":\"1h\"}}",
	};
	struct vault_lease l;
	char err[128];
	struct buf tok;

	buf_init(&tok, VAULT_MAX_SECRET + 3);
	ck_assert_int_eq(vault_resp_auth(login, strlen(login), &tok, &l, err,
	    sizeof(err)), 0);
	ck_assert_str_eq((const char *)tok.data, TOKEN);
	ck_assert_uint_eq(l.ttl_s, 2764800);
	ck_assert_int_eq(l.renewable, 1);
	for (size_t i = 0; i < NELEM(bad); i++) {
		err[0] = '\0';
		ck_assert_msg(vault_resp_auth(bad[i], strlen(bad[i]), &tok, &l,
		    err, sizeof(err)) == ERR_PROVIDER_UNAVAILABLE, "%s",
		    bad[i]);
		ck_assert_uint_eq(tok.len, 0);
		ck_assert_msg(strstr(err, "hvs.") == NULL, "%s", err);
		ck_assert(err[0] != '\0');
	}
	ck_assert_int_eq(vault_resp_lookup(SL("{\"data\":{\"ttl\":0,"
	    "\"renewable\":"
	    "false,\"policies\":[\"root\"]}}"), &l, err, sizeof(err)), 0);
	ck_assert_uint_eq(l.ttl_s, 0);
	ck_assert_int_eq(l.renewable, 0);
	ck_assert_int_eq(vault_resp_lookup(SL("{\"data\":{\"ttl\":31,"
	    "\"renewable\":"
	    "true}}"), &l, err, sizeof(err)), 0);
	ck_assert_uint_eq(l.ttl_s, 31);
	ck_assert_int_eq(l.renewable, 1);
	ck_assert_int_eq(vault_resp_lookup(SL("{\"data\":{\"ttl\":0,"
	    "\"expire_time\":\"2024-01-01T00:00:00.5Z\"}}"), &l, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(l.ttl_s, 1);
	ck_assert_int_eq(vault_resp_lookup(SL("{\"data\":{}}"), &l, err,
	    sizeof(err)), ERR_PROVIDER_UNAVAILABLE);
	buf_done(&tok);
}
END_TEST

/* ======== errors ======== */

START_TEST(test_error_mapping)
{
	static const struct {
		enum vault_req kind;
		long status;
		const char *body;
		int err, retryable, auth;
	} t[] = {
		{ VAULT_REQ_DECRYPT, 400, "{\"errors\":[\"cipher: message "
		    "authentication failed\"]}", ERR_DECRYPTION_FAILED, 0, 0 },
		{ VAULT_REQ_DECRYPT, 400, "{\"errors\":[\"invalid ciphertext: "
		    "no prefix\"]}", ERR_DECRYPTION_FAILED, 0, 0 },
		{ VAULT_REQ_REWRAP, 400, "{\"errors\":[\"unable to decrypt\"]}",
		    ERR_DECRYPTION_FAILED, 0, 0 },
		{ VAULT_REQ_DECRYPT, 400, "{\"errors\":[\"missing 'context' "
		    "for key derivation; the key was created using a derived "
		    "key\"]}",
		    ERR_DECRYPTION_FAILED, 0, 0 },
		{ VAULT_REQ_DECRYPT, 400, "{\"errors\":[\"ciphertext or "
		    "signature version is disallowed by policy (too old)\"]}",
		    ERR_DECRYPTION_FAILED, 0, 0 },
		{ VAULT_REQ_DECRYPT, 400, "{\"errors\":[\"encryption key not "
		    "found\"]}", ERR_PROVIDER_DENIED, 0, 0 },
		{ VAULT_REQ_ENCRYPT, 400, "{\"errors\":[\"missing 'context' "
		    "for key derivation\"]}", ERR_BAD_REQUEST, 0, 0 },
		{ VAULT_REQ_ENCRYPT, 400, "{\"errors\":[\"cipher: message "
		    "authentication failed\"]}", ERR_PROVIDER_DENIED, 0, 0 },
		{ VAULT_REQ_ENCRYPT, 403, "{\"errors\":[\"permission "
		    "denied\"]}", ERR_PROVIDER_DENIED, 0, 1 },
		{ VAULT_REQ_RENEW, 401, "", ERR_PROVIDER_DENIED, 0, 1 },
		{ VAULT_REQ_ENCRYPT, 404, "{\"errors\":[]}",
		    ERR_PROVIDER_DENIED, 0, 0 },
		{ VAULT_REQ_ENCRYPT, 429, "{\"errors\":[\"rate limit quota "
		    "exceeded\"]}", ERR_THROTTLED, 1, 0 },
		{ VAULT_REQ_ENCRYPT, 412, "", ERR_PROVIDER_UNAVAILABLE, 1, 0 },
		{ VAULT_REQ_ENCRYPT, 503, "{\"errors\":[\"Vault is sealed\"]}",
		    ERR_PROVIDER_UNAVAILABLE, 1, 0 },
		{ VAULT_REQ_LOGIN, 500, "{\"errors\":[\"local node not active "
		    "but active cluster node not found\"]}",
		    ERR_PROVIDER_UNAVAILABLE, 1, 0 },
		{ VAULT_REQ_ENCRYPT, 501, "", ERR_PROVIDER_UNAVAILABLE, 0, 0 },
		{ VAULT_REQ_DECRYPT, 500, "{\"errors\":[\"cipher: message "
		    "authentication failed\"]}", ERR_DECRYPTION_FAILED, 0, 0 },
		{ VAULT_REQ_ENCRYPT, 500, "{\"errors\":[\"cipher: message "
		    "authentication failed\"]}", ERR_PROVIDER_UNAVAILABLE, 1,
		    0 },
		{ VAULT_REQ_ENCRYPT, 302, "", ERR_PROVIDER_UNAVAILABLE, 0, 0 },
		{ VAULT_REQ_DECRYPT, 400, "<html>", ERR_PROVIDER_DENIED, 0, 0 },
	};
	struct vault_error e;

	for (size_t i = 0; i < NELEM(t); i++) {
		ck_assert_msg(vault_error_map(t[i].kind, t[i].status, t[i].body,
		    strlen(t[i].body), &e) == t[i].err, "case %zu", i);
		ck_assert_msg(e.retryable == t[i].retryable &&
		    e.auth == t[i].auth && e.status == t[i].status,
		    "case %zu", i);
	}
}
END_TEST

START_TEST(test_error_text)
{
	const char *body = "{\"errors\":[\"1 error occurred:\\n\\t* permission "
	    "denied\\n\\n\",\"second\\u0001one\"]}";
	struct vault_error e;
	char big[600];

	vault_error_map(VAULT_REQ_ENCRYPT, 403, body, strlen(body), &e);
	ck_assert_str_eq(e.text, "1 error occurred: * permission denied; "
	    "second one");
	/* cut to the bound */
	snprintf(big, sizeof(big), "{\"errors\":[\"%0500d\"]}", 0);
	vault_error_map(VAULT_REQ_ENCRYPT, 500, big, strlen(big), &e);
	ck_assert_uint_eq(strlen(e.text), VAULT_MAX_ERRTEXT);
	vault_error_map(VAULT_REQ_ENCRYPT, 500, NULL, 0, &e);
	ck_assert_str_eq(e.text, "");
}
END_TEST

/* ======== settings syntax ======== */

START_TEST(test_names_and_paths)
{
	static const char *const good_names[] = {
		"orders", "a", "_", "my-key.v2", "K_9",
	};
	static const char *const bad_names[] = {
		"", "-a", "a-", ".a", "a.", "a/b", "a b", "a%2f", "ä",
	};
	static const char *const good_paths[] = {
		"transit", "transit/", "kv/transit", "ns1/ns2/", "file",
		"team-a", "a.b_c",
	};
	static const char *const bad_paths[] = {
		"", "/", "/transit", "a//b", "..", "a/../b", "./a", "a/.",
		"a b", "a?b", "a%2e", "a\nb", "a//",
	};
	char longname[VAULT_MAX_NAME + 2];

	for (size_t i = 0; i < NELEM(good_names); i++)
		ck_assert_msg(vault_name_valid(good_names[i],
		    strlen(good_names[i])), "%s", good_names[i]);
	for (size_t i = 0; i < NELEM(bad_names); i++)
		ck_assert_msg(!vault_name_valid(bad_names[i],
		    strlen(bad_names[i])), "%s", bad_names[i]);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert(!vault_name_valid(longname, strlen(longname)));
	ck_assert(vault_name_valid(longname, VAULT_MAX_NAME));
	for (size_t i = 0; i < NELEM(good_paths); i++)
		ck_assert_msg(vault_path_valid(good_paths[i],
		    strlen(good_paths[i])), "%s", good_paths[i]);
	for (size_t i = 0; i < NELEM(bad_paths); i++)
		ck_assert_msg(!vault_path_valid(bad_paths[i],
		    strlen(bad_paths[i])), "%s", bad_paths[i]);
}
END_TEST

START_TEST(test_durations_counts_secrets)
{
	unsigned v;
	struct buf b;

	ck_assert_int_eq(vault_parse_duration("2", &v), 0);
	ck_assert_uint_eq(v, 2000);
	ck_assert_int_eq(vault_parse_duration("1500ms", &v), 0);
	ck_assert_uint_eq(v, 1500);
	ck_assert_int_eq(vault_parse_duration("10m", &v), 0);
	ck_assert_uint_eq(v, 600000);
	ck_assert_int_eq(vault_parse_duration("11m", &v), -1);
	ck_assert_int_eq(vault_parse_duration("0", &v), -1);
	ck_assert_int_eq(vault_parse_duration("-1s", &v), -1);
	ck_assert_int_eq(vault_parse_duration("1h", &v), -1);
	ck_assert_int_eq(vault_parse_count("64", 1, 1024, &v), 0);
	ck_assert_uint_eq(v, 64);
	ck_assert_int_eq(vault_parse_count("0", 1, 1024, &v), -1);
	ck_assert_int_eq(vault_parse_count("1025", 1, 1024, &v), -1);
	ck_assert_int_eq(vault_parse_count("1x", 1, 1024, &v), -1);

	buf_init(&b, VAULT_MAX_SECRET + 3);
	buf_append_str(&b, TOKEN "\r\n \t\n");
	ck_assert_int_eq(vault_secret_clean(&b), 0);
	ck_assert_str_eq((const char *)b.data, TOKEN);
	buf_clear(&b);
	buf_append_str(&b, "two words\n");
	ck_assert_int_eq(vault_secret_clean(&b), ERR_BAD_REQUEST);
	buf_clear(&b);
	buf_append_str(&b, "\n\n");
	ck_assert_int_eq(vault_secret_clean(&b), ERR_BAD_REQUEST);
	buf_clear(&b);
	buf_append_str(&b, "tok\x7f");
	ck_assert_int_eq(vault_secret_clean(&b), ERR_BAD_REQUEST);
	buf_done(&b);
}
END_TEST

/* ======== the [vault] section ======== */

static int
check_section(const char *section, char *err, size_t errlen)
{
	char path[] = "/tmp/kmsd-test-vault-XXXXXX";
	struct config *cfg = NULL;
	FILE *fp;
	int fd, r;

	ck_assert_int_ge(fd = mkstemp(path), 0);
	ck_assert_ptr_nonnull(fp = fdopen(fd, "w"));
	fprintf(fp, "[kmsd]\nstate_dir = /tmp\n\n[vault]\n%s\n"
	    "[key k]\nkey_id = vault/k\n\n[socket s]\npath = /tmp/x.sock\n"
	    "allow = encrypt\n", section);
	fclose(fp);
	r = config_load(path, &cfg, err, errlen);
	ck_assert_msg(r == 0, "%s", err);
	r = provider_vault.check_config(cfg, config_section(cfg, "vault"),
	    err, errlen);
	config_free(cfg);
	unlink(path);
	return r;
}

START_TEST(test_check_config)
{
	static const struct {
		const char *section;
		int line;
		const char *text;
	} bad[] = {
		{ "address = https://v\nbogus = 1", 6,
		    "unknown option 'bogus'" },
		{ "address = http://10.0.0.1:8200", 5, "loopback" },
		{ "address = ftp://v", 5, "https://" },
		{ "address = https://v/?x=1", 5, "query" },
		{ "secret_id_file = /s", 5, "both role_id_file" },
		{ "token_file = /t\nrole_id_file = /r\nsecret_id_file = /s", 5,
		    "exclude each other" },
		{ "namespace = /root", 5, "namespace" },
		{ "mount = a//b", 5, "Vault path" },
		{ "timeout = 0", 5, "duration" },
		{ "max_inflight = 5000", 5, "1 to 1024" },
		{ "token_file =", 5, "empty path" },
	};
	char err[512], want[64];

	ck_assert_int_eq(check_section("address = https://vault:8200\n"
	    "token_file = /run/t\nnamespace = ns1/\nmount = transit/\n"
	    "timeout = 3s\nmax_inflight = 8\nmax_queue = 100\n"
	    "ca_file = /etc/ca.pem", err, sizeof(err)), 0);
	ck_assert_int_eq(check_section("address = http://127.0.0.1:8200\n"
	    "role_id_file = /r\nsecret_id_file = /s", err, sizeof(err)), 0);
	for (size_t i = 0; i < NELEM(bad); i++) {
		err[0] = '\0';
		ck_assert_int_eq(check_section(bad[i].section, err,
		    sizeof(err)), -1);
		snprintf(want, sizeof(want), ":%d: ", bad[i].line);
		ck_assert_msg(strstr(err, want) != NULL &&
		    strstr(err, bad[i].text) != NULL, "case %zu: %s", i, err);
	}
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("vault_parse");
	TCase *tc = tcase_create("vault_parse");

	tcase_add_test(tc, test_body_context_as_kms_encrypted);
	tcase_add_test(tc, test_audit_hash_input_matches_vector);
	tcase_add_test(tc, test_body_shapes);
	tcase_add_test(tc, test_body_too_large_leaves_nothing);
	tcase_add_test(tc, test_ciphertext_strings);
	tcase_add_test(tc, test_response_ciphertext);
	tcase_add_test(tc, test_response_plaintext);
	tcase_add_test(tc, test_response_hash);
	tcase_add_test(tc, test_response_auth_and_lookup);
	tcase_add_test(tc, test_error_mapping);
	tcase_add_test(tc, test_error_text);
	tcase_add_test(tc, test_names_and_paths);
	tcase_add_test(tc, test_durations_counts_secrets);
	tcase_add_test(tc, test_check_config);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
