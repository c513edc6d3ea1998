/*
 * test_gcp_parse.c: Cloud KMS key ids, request bodies (against
 * tests/vectors/gcp/kms_rest_examples.json), the verification of 200
 * responses (every way a checksum or flag can be wrong), and the mapping
 * of Google's errors to kmsd's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "b64.h"
#include "err.h"
#include "gcp_crc32c.h"
#include "gcp_parse.h"

#define VEC TEST_SRCDIR "/../vectors/gcp/kms_rest_examples.json"
#define KEY "projects/p/locations/global/keyRings/r/cryptoKeys/k"
#define AAD "{\"model_id\":\"1\",\"model_name\":\"User\"}"

START_TEST(key_ids)
{
	static const struct {
		const char *id;
		int ok;
	} cases[] = {
		{ KEY, 1 },
		{ "projects/my-project/locations/us-east1/keyRings/my_ring/"
		    "cryptoKeys/my-key.2", 1 },
		{ "projects/example.com:proj/locations/global/keyRings/r/"
		    "cryptoKeys/k", 1 },
		{ KEY "/cryptoKeyVersions/1", 0 },
		{ KEY "/", 0 },
		{ "projects/p/locations/global/keyRings/r/cryptoKeys/", 0 },
		{ "projects/p/locations/global/keyRings//cryptoKeys/k", 0 },
		{ "projects/p/locations/global/keyrings/r/cryptoKeys/k", 0 },
		{ "projects/p/locations/global/keyRings/r", 0 },
		{ "projects/../locations/global/keyRings/r/cryptoKeys/k", 0 },
		{ "projects/p/locations/global/keyRings/./cryptoKeys/k", 0 },
		{ "projects/p/locations/global/keyRings/r/cryptoKeys/k?x", 0 },
		{ "projects/p/locations/global/keyRings/r/cryptoKeys/k%2f", 0 },
		{ "projects/p/locations/global/keyRings/r/cryptoKeys/k k", 0 },
		{ "projects/p/locations/gl\nobal/keyRings/r/cryptoKeys/k", 0 },
		{ "projects/p", 0 },
		{ "", 0 },
		{ "alias/x", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(gcp_key_id_valid(cases[i].id) == cases[i].ok,
		    "%s", cases[i].id);
	ck_assert_int_eq(gcp_key_id_valid(NULL), 0);
}
END_TEST

START_TEST(key_id_length)
{
	char id[GCP_MAX_KEY_ID + 64];

	snprintf(id, sizeof(id), "projects/%0100d/locations/%0100d/keyRings/"
	    "%0100d/cryptoKeys/%0100d", 1, 2, 3, 4);
	ck_assert_int_eq(gcp_key_id_valid(id), 1);
	snprintf(id, sizeof(id), "projects/%0101d/locations/l/keyRings/r/"
	    "cryptoKeys/k", 1);
	ck_assert_int_eq(gcp_key_id_valid(id), 0);
}
END_TEST

static json_t *
load_json(const uint8_t *p, size_t n)
{
	json_error_t jerr;
	json_t *o = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES,
	    &jerr);

	ck_assert_msg(o != NULL, "%s", jerr.text);
	return o;
}

START_TEST(encrypt_body_matches_example)
{
	json_error_t jerr;
	json_t *root = json_load_file(VEC, 0, &jerr), *want, *got;
	uint8_t pt[32];
	struct buf out;

	ck_assert_ptr_nonnull(root);
	want = json_object_get(json_object_get(root, "encrypt"), "body");
	for (size_t i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)i;
	buf_init(&out, GCP_KMS_MAX_BODY);
	ck_assert_int_eq(gcp_kms_encrypt_body(pt, sizeof(pt),
	    (const uint8_t *)AAD, strlen(AAD), 1, &out), 0);
	got = load_json(out.data, out.len);
	ck_assert_msg(json_equal(got, want), "%.*s", (int)out.len,
	    (char *)out.data);
	/* Our exact bytes, field order included. */
	ck_assert_int_eq(buf_cstr(&out), 0);
	ck_assert_str_eq((char *)out.data,
	    "{\"plaintext\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
	    "\"plaintextCrc32c\":\"1188919630\","
	    "\"additionalAuthenticatedData\":"
	    "\"eyJtb2RlbF9pZCI6IjEiLCJtb2RlbF9uYW1lIjoiVXNlciJ9\","
	    "\"additionalAuthenticatedDataCrc32c\":\"1284191253\"}");
	json_decref(got);
	json_decref(root);
	buf_done(&out);
}
END_TEST

START_TEST(bodies_without_aad)
{
	struct buf out;

	buf_init(&out, GCP_KMS_MAX_BODY);
	ck_assert_int_eq(gcp_kms_encrypt_body((const uint8_t *)"123456789", 9,
	    NULL, 0, 0, &out), 0);
	ck_assert_int_eq(buf_cstr(&out), 0);
	ck_assert_str_eq((char *)out.data, "{\"plaintext\":\"MTIzNDU2Nzg5\","
	    "\"plaintextCrc32c\":\"3808858755\"}");
	buf_clear(&out);
	ck_assert_int_eq(gcp_kms_decrypt_body((const uint8_t *)"123456789", 9,
	    (const uint8_t *)"{}", 2, 1, &out), 0);
	ck_assert_int_eq(buf_cstr(&out), 0);
	ck_assert_str_eq((char *)out.data, "{\"ciphertext\":\"MTIzNDU2Nzg5\","
	    "\"ciphertextCrc32c\":\"3808858755\","
	    "\"additionalAuthenticatedData\":\"e30=\","
	    "\"additionalAuthenticatedDataCrc32c\":\"695980202\"}");
	ck_assert_uint_eq(gcp_crc32c("{}", 2), 695980202u);
	buf_done(&out);
}
END_TEST

START_TEST(body_limits)
{
	uint8_t *big = calloc(1, GCP_KMS_MAX_CIPHERTEXT + 1);
	struct buf out;

	buf_init(&out, GCP_KMS_MAX_BODY);
	ck_assert_int_eq(gcp_kms_encrypt_body(big, 0, NULL, 0, 0, &out),
	    ERR_BAD_REQUEST);
	ck_assert_int_eq(gcp_kms_encrypt_body(big, 1, big, 0, 1, &out),
	    ERR_BAD_REQUEST);
	ck_assert_int_eq(gcp_kms_encrypt_body(big, GCP_KMS_MAX_PLAINTEXT + 1,
	    NULL, 0, 0, &out), ERR_TOO_LARGE);
	ck_assert_int_eq(gcp_kms_encrypt_body(big, 1, big,
	    GCP_KMS_MAX_AAD + 1, 1, &out), ERR_TOO_LARGE);
	ck_assert_int_eq(gcp_kms_decrypt_body(big, GCP_KMS_MAX_CIPHERTEXT + 1,
	    NULL, 0, 0, &out), ERR_TOO_LARGE);
	/* The largest inputs fit the body cap. */
	buf_clear(&out);
	ck_assert_int_eq(gcp_kms_decrypt_body(big, GCP_KMS_MAX_CIPHERTEXT,
	    big, GCP_KMS_MAX_AAD, 1, &out), 0);
	buf_done(&out);
	free(big);
}
END_TEST

/* An :encrypt response for ciphertext "ct-bytes" with the given parts. */
static char *
enc_response(const char *ct_b64, const char *crc, const char *vpt,
    const char *vaad, const char *name)
{
	char *s;

	ck_assert_int_ge(asprintf(&s, "{%s%s%s%s%s%s%s%s%s%s"
	    "\"protectionLevel\":\"SOFTWARE\"}",
	    ct_b64 ? "\"ciphertext\":\"" : "", ct_b64 ? ct_b64 : "",
	    ct_b64 ? "\"," : "",
	    crc ? "\"ciphertextCrc32c\":" : "", crc ? crc : "",
	    crc ? "," : "",
	    vpt ? vpt : "", vaad ? vaad : "",
	    name ? name : "", name ? "," : ""), 0);
	return s;
}

#define CT_B64 "Y3QtYnl0ZXM="	/* "ct-bytes" */
#define VPT "\"verifiedPlaintextCrc32c\":true,"
#define VAAD "\"verifiedAdditionalAuthenticatedDataCrc32c\":true,"
#define NAME "\"name\":\"" KEY "/cryptoKeyVersions/3\""

static char ct_crc[16], wrong[16], big[32];

static void
crc_setup(void)
{
	snprintf(ct_crc, sizeof(ct_crc), "\"%u\"", (unsigned)gcp_crc32c(
	    "ct-bytes", 8));
	/* the CRC of other bytes; one past uint32 */
	snprintf(wrong, sizeof(wrong), "\"%u\"", (unsigned)gcp_crc32c(
	    "ct-bytez", 8));
	snprintf(big, sizeof(big), "\"%llu\"", 0x100000000ull);
}

START_TEST(encrypt_result_ok)
{
	char *r = enc_response(CT_B64, ct_crc, VPT, VAAD, NAME), msg[160];
	char num[16];
	struct buf out;

	buf_init(&out, 16384);
	ck_assert_int_eq(gcp_kms_encrypt_result((uint8_t *)r, strlen(r), KEY,
	    1, &out, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(out.len, 8);
	ck_assert_int_eq(memcmp(out.data, "ct-bytes", 8), 0);
	free(r);
	/* No AAD sent: its flag is not needed; name is optional; the CRC
	 * may come as a JSON number. */
	snprintf(num, sizeof(num), "%u", (unsigned)gcp_crc32c("ct-bytes", 8));
	r = enc_response(CT_B64, num, VPT, NULL, NULL);
	ck_assert_int_eq(gcp_kms_encrypt_result((uint8_t *)r, strlen(r), KEY,
	    0, &out, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(out.len, 8);
	free(r);
	buf_done(&out);
}
END_TEST

START_TEST(encrypt_result_refused)
{
	struct {
		char *body;
		int sent_aad;
		const char *word;
	} cases[] = {
		{ enc_response(CT_B64, wrong, VPT, VAAD, NAME), 1,
		    "integrity" },
		{ enc_response(CT_B64, ct_crc, NULL, VAAD, NAME), 1,
		    "verifiedPlaintextCrc32c" },
		{ enc_response(CT_B64, ct_crc,
		    "\"verifiedPlaintextCrc32c\":false,", VAAD, NAME), 1,
		    "verifiedPlaintextCrc32c" },
		{ enc_response(CT_B64, ct_crc, VPT, NULL, NAME), 1,
		    "verifiedAdditionalAuthenticatedDataCrc32c" },
		{ enc_response(CT_B64, ct_crc, VPT,
		    "\"verifiedAdditionalAuthenticatedDataCrc32c\":\"true\",",
		    NAME), 1, "verifiedAdditionalAuthenticatedDataCrc32c" },
		{ enc_response(CT_B64, NULL, VPT, VAAD, NAME), 1,
		    "ciphertextCrc32c" },
		{ enc_response(CT_B64, big, VPT, VAAD, NAME), 1,
		    "ciphertextCrc32c" },
		{ enc_response(CT_B64, "\"-1\"", VPT, VAAD, NAME), 1,
		    "ciphertextCrc32c" },
		{ enc_response(CT_B64, "\"12a\"", VPT, VAAD, NAME), 1,
		    "ciphertextCrc32c" },
		{ enc_response(CT_B64, "true", VPT, VAAD, NAME), 1,
		    "ciphertextCrc32c" },
		{ enc_response(NULL, ct_crc, VPT, VAAD, NAME), 1,
		    "no ciphertext" },
		{ enc_response("Y3QtYnl0ZXM", ct_crc, VPT, VAAD, NAME), 1,
		    "base64" },
		{ enc_response("Y3QtYnl0ZXN=", ct_crc, VPT, VAAD, NAME), 1,
		    "base64" },
		{ enc_response(CT_B64, ct_crc, VPT, VAAD,
		    "\"name\":\"projects/p/locations/global/keyRings/r/"
		    "cryptoKeys/other/cryptoKeyVersions/1\""), 1, "name" },
		{ enc_response(CT_B64, ct_crc, VPT, VAAD, "\"name\":\"" KEY
		    "x/cryptoKeyVersions/1\""), 1, "name" },
		{ enc_response("", "\"0\"", VPT, VAAD, NAME), 1, "empty" },
		{ strdup("[]"), 0, "JSON" },
		{ strdup("{\"ciphertext\":\"" CT_B64 "\",\"ciphertext\":\""
		    CT_B64 "\"}"), 0, "JSON" },
		{ strdup(""), 0, "JSON" },
	};
	struct buf out;
	char msg[160];

	buf_init(&out, 16384);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		msg[0] = '\0';
		ck_assert_msg(gcp_kms_encrypt_result((uint8_t *)cases[i].body,
		    strlen(cases[i].body), KEY, cases[i].sent_aad, &out, msg,
		    sizeof(msg)) == ERR_PROVIDER_UNAVAILABLE, "case %zu: %s", i,
		    cases[i].body);
		ck_assert_msg(strstr(msg, cases[i].word) != NULL,
		    "case %zu: '%s' lacks '%s'", i, msg, cases[i].word);
		ck_assert_uint_eq(out.len, 0);
		free(cases[i].body);
	}
	buf_done(&out);
}
END_TEST

START_TEST(decrypt_result)
{
	char body[256], msg[160];
	struct buf out;
	uint32_t crc = gcp_crc32c("123456789", 9);

	buf_init(&out, 16384);
	snprintf(body, sizeof(body), "{\"plaintext\":\"MTIzNDU2Nzg5\","
	    "\"plaintextCrc32c\":\"%u\",\"usedPrimary\":true}", crc);
	ck_assert_int_eq(gcp_kms_decrypt_result((uint8_t *)body, strlen(body),
	    &out, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(out.len, 9);
	ck_assert_int_eq(memcmp(out.data, "123456789", 9), 0);
	/* One flipped byte in the plaintext, its CRC left as it was. */
	snprintf(body, sizeof(body), "{\"plaintext\":\"MTIzNDU2Nzg4\","
	    "\"plaintextCrc32c\":\"%u\"}", crc);
	ck_assert_int_eq(gcp_kms_decrypt_result((uint8_t *)body, strlen(body),
	    &out, msg, sizeof(msg)), ERR_PROVIDER_UNAVAILABLE);
	ck_assert_ptr_nonnull(strstr(msg, "plaintextCrc32c"));
	ck_assert_uint_eq(out.len, 0);
	/* No CRC at all. */
	snprintf(body, sizeof(body), "{\"plaintext\":\"MTIzNDU2Nzg5\"}");
	ck_assert_int_eq(gcp_kms_decrypt_result((uint8_t *)body, strlen(body),
	    &out, msg, sizeof(msg)), ERR_PROVIDER_UNAVAILABLE);
	ck_assert_uint_eq(out.len, 0);
	/* proto3 omits empty bytes: an absent plaintext is empty, CRC 0. */
	snprintf(body, sizeof(body), "{\"plaintextCrc32c\":\"0\"}");
	ck_assert_int_eq(gcp_kms_decrypt_result((uint8_t *)body, strlen(body),
	    &out, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(out.len, 0);
	/* Larger than the caller's buffer. */
	buf_done(&out);
	buf_init(&out, 4);
	snprintf(body, sizeof(body), "{\"plaintext\":\"MTIzNDU2Nzg5\","
	    "\"plaintextCrc32c\":\"%u\"}", crc);
	ck_assert_int_eq(gcp_kms_decrypt_result((uint8_t *)body, strlen(body),
	    &out, msg, sizeof(msg)), ERR_PROVIDER_UNAVAILABLE);
	ck_assert_ptr_nonnull(strstr(msg, "too large"));
	buf_done(&out);
}
END_TEST

START_TEST(error_mapping)
{
	static const struct {
		long status;
		const char *body;
		int err;
		int retry;
		const char *msg;
	} cases[] = {
		{ 400, "{\"error\":{\"code\":400,\"message\":\"Decryption "
		    "failed: verify that 'name' refers to the correct "
		    "CryptoKey.\",\"status\":\"INVALID_ARGUMENT\"}}",
		    ERR_DECRYPTION_FAILED, 0, "Cloud KMS: Decryption failed" },
		{ 400, "{\"error\":{\"code\":400,\"message\":\"Decryption "
		    "failed: the ciphertext is invalid.\",\"status\":"
		    "\"INVALID_ARGUMENT\"}}", ERR_DECRYPTION_FAILED, 0,
		    "Cloud KMS: Decryption failed" },
		{ 400, "{\"error\":{\"code\":400,\"message\":\"The checksum in "
		    "field plaintext_crc32c did not match the data in field "
		    "plaintext.\",\"status\":\"INVALID_ARGUMENT\"}}",
		    ERR_PROVIDER_UNAVAILABLE, 1, "Cloud KMS INVALID_ARGUMENT" },
		{ 400, "{\"error\":{\"code\":400,\"message\":\"Plaintext too "
		    "long\",\"status\":\"INVALID_ARGUMENT\"}}", ERR_BAD_REQUEST,
		    0, "Cloud KMS INVALID_ARGUMENT (HTTP 400): Plaintext too "
		    "long" },
		{ 400, "{\"error\":{\"code\":400,\"message\":\"x\",\"status\":"
		    "\"FAILED_PRECONDITION\"}}", ERR_PROVIDER_DENIED, 0,
		    "Cloud KMS FAILED_PRECONDITION" },
		{ 401, "{\"error\":{\"code\":401,\"message\":\"Request had "
		    "invalid authentication credentials.\",\"status\":"
		    "\"UNAUTHENTICATED\"}}", ERR_PROVIDER_DENIED, 0,
		    "Cloud KMS UNAUTHENTICATED (HTTP 401): Request had" },
		{ 403, "{\"error\":{\"code\":403,\"message\":\"Permission "
		    "'cloudkms.cryptoKeyVersions.useToDecrypt' denied\","
		    "\"status\":\"PERMISSION_DENIED\"}}", ERR_PROVIDER_DENIED,
		    0, "Cloud KMS PERMISSION_DENIED (HTTP 403): Permission" },
		{ 404, "{\"error\":{\"code\":404,\"message\":\"k not found\","
		    "\"status\":\"NOT_FOUND\"}}", ERR_PROVIDER_DENIED, 0,
		    "NOT_FOUND" },
		{ 429, "{\"error\":{\"code\":429,\"message\":\"Quota "
		    "exceeded\",\"status\":\"RESOURCE_EXHAUSTED\"}}",
		    ERR_THROTTLED, 1, "RESOURCE_EXHAUSTED" },
		{ 503, "{\"error\":{\"code\":503,\"message\":\"The service is "
		    "currently unavailable.\",\"status\":\"UNAVAILABLE\"}}",
		    ERR_PROVIDER_UNAVAILABLE, 1, "UNAVAILABLE" },
		{ 504, "{\"error\":{\"code\":504,\"status\":"
		    "\"DEADLINE_EXCEEDED\"}}", ERR_PROVIDER_UNAVAILABLE, 1,
		    "Cloud KMS DEADLINE_EXCEEDED (HTTP 504)" },
		{ 500, "{\"error\":{\"code\":500,\"status\":\"INTERNAL\"}}",
		    ERR_PROVIDER_UNAVAILABLE, 1, "INTERNAL" },
		{ 501, "{\"error\":{\"code\":501,\"status\":"
		    "\"UNIMPLEMENTED\"}}", ERR_PROVIDER_UNAVAILABLE, 0,
		    "UNIMPLEMENTED" },
		/* no Google JSON: the HTTP status decides */
		{ 502, "<html>Bad Gateway</html>", ERR_PROVIDER_UNAVAILABLE, 1,
		    "Cloud KMS HTTP (HTTP 502)" },
		{ 429, "", ERR_THROTTLED, 1, "HTTP 429" },
		{ 400, "", ERR_BAD_REQUEST, 0, "HTTP 400" },
		{ 403, "nope", ERR_PROVIDER_DENIED, 0, "HTTP 403" },
		{ 418, "", ERR_PROVIDER_UNAVAILABLE, 0, "HTTP 418" },
		/* remote text is made safe for a log line */
		{ 403, "{\"error\":{\"message\":\"a\\nb\\u0001c\",\"status\":"
		    "\"PERMISSION_DENIED\"}}", ERR_PROVIDER_DENIED, 0,
		    "PERMISSION_DENIED (HTTP 403): a?b?c" },
	};
	char msg[160];
	int retry;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		retry = -1;
		ck_assert_msg(gcp_kms_error(cases[i].status,
		    (const uint8_t *)cases[i].body, strlen(cases[i].body),
		    &retry, msg, sizeof(msg)) == cases[i].err, "case %zu", i);
		ck_assert_msg(retry == cases[i].retry, "case %zu retry", i);
		ck_assert_msg(strstr(msg, cases[i].msg) != NULL,
		    "case %zu: '%s' lacks '%s'", i, msg, cases[i].msg);
	}
}
END_TEST

START_TEST(text_safe)
{
	char out[8];

	gcp_text_safe(out, sizeof(out), "ab\x01\xff" "cdefgh", 10);
	ck_assert_str_eq(out, "ab??cde");
	gcp_text_safe(out, 1, "abc", 3);
	ck_assert_str_eq(out, "");
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("gcp_parse");
	TCase *ids = tcase_create("key_ids");
	TCase *req = tcase_create("requests");
	TCase *resp = tcase_create("responses");
	TCase *errs = tcase_create("errors");

	tcase_add_test(ids, key_ids);
	tcase_add_test(ids, key_id_length);
	suite_add_tcase(s, ids);
	tcase_add_test(req, encrypt_body_matches_example);
	tcase_add_test(req, bodies_without_aad);
	tcase_add_test(req, body_limits);
	suite_add_tcase(s, req);
	tcase_add_checked_fixture(resp, crc_setup, NULL);
	tcase_add_test(resp, encrypt_result_ok);
	tcase_add_test(resp, encrypt_result_refused);
	tcase_add_test(resp, decrypt_result);
	suite_add_tcase(s, resp);
	tcase_add_test(errs, error_mapping);
	tcase_add_test(errs, text_safe);
	suite_add_tcase(s, errs);
	return s;
}

#include "check_main.h"
