/*
 * test_gcp_auth.c: Google credentials files, the RS256 JWT-bearer
 * assertion (byte for byte against tests/vectors/gcp/jwt_vectors.json,
 * signed with the public TEST key), token request bodies, token responses
 * and token endpoint errors; and that no secret reaches a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "err.h"
#include "gcp_auth.h"

#define VEC TEST_SRCDIR "/../vectors/gcp"
/* Any test file is far below this. */
#define T_FILE_MAX 65536

static char *
slurp(const char *path, size_t *ret_len)
{
	FILE *fp = fopen(path, "rb");
	char *p = malloc(T_FILE_MAX);
	size_t n;

	ck_assert_msg(fp != NULL, "%s", path);
	ck_assert_ptr_nonnull(p);
	n = fread(p, 1, T_FILE_MAX - 1, fp);
	fclose(fp);
	p[n] = '\0';
	if (ret_len != NULL)
		*ret_len = n;
	return p;
}

static json_t *
vectors(void)
{
	json_error_t jerr;
	json_t *v = json_load_file(VEC "/jwt_vectors.json", 0, &jerr);

	ck_assert_msg(v != NULL, "%s", jerr.text);
	return v;
}

static void
load_sa(struct gcp_creds *c)
{
	char err[256] = "";
	size_t n;
	char *data = slurp(VEC "/service_account.json", &n);

	gcp_creds_init(c);
	ck_assert_msg(gcp_creds_parse(data, n, c, err, sizeof(err)) == 0, "%s",
	    err);
	free(data);
}

/* A creds JSON object with the test key's PEM and the given type. */
static char *
sa_json_with(const char *field, const char *value)
{
	size_t n;
	char *data = slurp(VEC "/service_account.json", &n), *out;
	json_error_t jerr;
	json_t *o = json_loadb(data, n, 0, &jerr);

	ck_assert_ptr_nonnull(o);
	if (value == NULL)
		json_object_del(o, field);
	else
		json_object_set_new(o, field, json_string(value));
	out = json_dumps(o, 0);
	json_decref(o);
	free(data);
	return out;
}

static int
parse_str(const char *s, struct gcp_creds *c, char *err, size_t errlen)
{
	gcp_creds_init(c);
	return gcp_creds_parse(s, strlen(s), c, err, errlen);
}

START_TEST(service_account_file)
{
	struct gcp_creds c;

	load_sa(&c);
	ck_assert_int_eq(c.kind, GCP_CRED_SERVICE_ACCOUNT);
	ck_assert_str_eq(c.client_email, "service-account@example.com");
	ck_assert_str_eq(c.private_key_id, "1");
	ck_assert_str_eq(c.token_uri, "https://accounts.google.com/o/oauth2/"
	    "token");
	ck_assert_ptr_null(c.quota_project);
	ck_assert_ptr_nonnull(c.pkey);
	ck_assert_int_eq(EVP_PKEY_get_bits(c.pkey), 2048);
	gcp_creds_done(&c);
	ck_assert_ptr_null(c.pkey);
}
END_TEST

START_TEST(jwt_vectors_exact)
{
	static const char *const names[] = {
		"oauth2_jwt_bearer_assertion", "self_signed_jwt_for_cloudkms",
	};
	json_t *root = vectors();
	struct gcp_creds c;
	struct buf out;

	load_sa(&c);
	buf_init(&out, 8192);
	for (size_t i = 0; i < 2; i++) {
		json_t *v = json_object_get(root, names[i]);

		buf_clear(&out);
		ck_assert_int_eq(gcp_jwt_sign(c.pkey,
		    json_string_value(json_object_get(v, "header_json")),
		    json_string_value(json_object_get(v, "claims_json")),
		    &out), 0);
		ck_assert_int_eq(buf_cstr(&out), 0);
		ck_assert_str_eq((char *)out.data,
		    json_string_value(json_object_get(v, "jwt")));
	}
	buf_done(&out);
	gcp_creds_done(&c);
	json_decref(root);
}
END_TEST

START_TEST(assertion_and_body)
{
	json_t *root = vectors(),
	    *v = json_object_get(root, "oauth2_jwt_bearer_assertion");
	struct gcp_creds c;
	struct buf jwt, body;

	load_sa(&c);
	buf_init(&jwt, 8192);
	buf_init(&body, GCP_MAX_TOKEN_BODY);
	ck_assert_int_eq(gcp_jwt_assertion(&c,
	    "https://www.googleapis.com/auth/cloudkms",
	    "https://oauth2.googleapis.com/token", 1700000000, &jwt), 0);
	ck_assert_int_eq(buf_cstr(&jwt), 0);
	ck_assert_str_eq((char *)jwt.data, json_string_value(json_object_get(v,
	    "jwt")));
	ck_assert_int_eq(gcp_token_body_jwt((char *)jwt.data, jwt.len, &body),
	    0);
	ck_assert_int_eq(buf_cstr(&body), 0);
	ck_assert_str_eq((char *)body.data, json_string_value(
	    json_object_get(v, "token_request_body")));
	buf_done(&jwt);
	buf_done(&body);
	gcp_creds_done(&c);
	json_decref(root);
}
END_TEST

START_TEST(assertion_without_kid)
{
	struct gcp_creds c;
	struct buf jwt;
	char *dot;

	load_sa(&c);
	free(c.private_key_id);
	c.private_key_id = NULL;
	buf_init(&jwt, 8192);
	ck_assert_int_eq(gcp_jwt_assertion(&c, "s", "https://a/token", 5,
	    &jwt), 0);
	ck_assert_int_eq(buf_cstr(&jwt), 0);
	dot = strchr((char *)jwt.data, '.');
	ck_assert_ptr_nonnull(dot);
	/* base64url of {"alg":"RS256","typ":"JWT"} */
	ck_assert_int_eq(strncmp((char *)jwt.data,
	    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.", 37), 0);
	buf_done(&jwt);
	gcp_creds_done(&c);
}
END_TEST

START_TEST(authorized_user)
{
	static const char user[] =
	    "{\"type\":\"authorized_user\",\"client_id\":\"id 1&x\","
	    "\"client_secret\":\"s/e+c=\",\"refresh_token\":\"1//r~t.\","
	    "\"quota_project_id\":\"qp\"}";
	struct gcp_creds c;
	struct buf body;
	char err[256] = "";

	ck_assert_int_eq(parse_str(user, &c, err, sizeof(err)), 0);
	ck_assert_int_eq(c.kind, GCP_CRED_AUTHORIZED_USER);
	ck_assert_str_eq(c.token_uri, GCP_TOKEN_URI_DEFAULT);
	ck_assert_str_eq(c.quota_project, "qp");
	buf_init(&body, GCP_MAX_TOKEN_BODY);
	ck_assert_int_eq(gcp_token_body_refresh(&c, &body), 0);
	ck_assert_int_eq(buf_cstr(&body), 0);
	ck_assert_str_eq((char *)body.data, "grant_type=refresh_token"
	    "&client_id=id%201%26x&client_secret=s%2Fe%2Bc%3D"
	    "&refresh_token=1%2F%2Fr~t.");
	/* A service-account-only call refuses user credentials. */
	ck_assert_int_eq(gcp_jwt_assertion(&c, "s", "a", 1, &body),
	    ERR_INTERNAL);
	buf_done(&body);
	gcp_creds_done(&c);
}
END_TEST

START_TEST(bad_files)
{
	static const struct {
		const char *json;
		int want;
		const char *word;
	} cases[] = {
		{ "", ERR_BAD_REQUEST, "JSON" },
		{ "[1]", ERR_BAD_REQUEST, "JSON" },
		{ "{\"a\":1,\"a\":2}", ERR_BAD_REQUEST, "JSON" },
		{ "{}", ERR_BAD_REQUEST, "type" },
		{ "{\"type\":7}", ERR_BAD_REQUEST, "type" },
		{ "{\"type\":\"external_account\"}", GCP_CREDS_UNSUPPORTED,
		    "external_account" },
		{ "{\"type\":\"impersonated_service_account\"}",
		    GCP_CREDS_UNSUPPORTED, "not supported" },
		{ "{\"type\":\"authorized_user\",\"client_id\":\"a\","
		    "\"client_secret\":\"b\"}", ERR_BAD_REQUEST,
		    "refresh_token" },
		{ "{\"type\":\"service_account\",\"client_email\":\"a@b\"}",
		    ERR_BAD_REQUEST, "private_key" },
		{ "{\"type\":\"service_account\",\"client_email\":\"a@b\","
		    "\"private_key\":\"-----BEGIN PRIVATE KEY-----\\nAAAA\\n"
		    "-----END PRIVATE KEY-----\\n\"}", ERR_BAD_REQUEST,
		    "PEM" },
	};
	struct gcp_creds c;
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(parse_str(cases[i].json, &c, err, sizeof(err)) ==
		    cases[i].want, "case %zu", i);
		ck_assert_msg(strstr(err, cases[i].word) != NULL,
		    "case %zu: '%s' lacks '%s'", i, err, cases[i].word);
		ck_assert_ptr_null(c.pkey);
		gcp_creds_done(&c);
	}
}
END_TEST

START_TEST(service_account_lacks_email)
{
	char *j = sa_json_with("client_email", NULL), err[256] = "";
	struct gcp_creds c;

	ck_assert_int_eq(parse_str(j, &c, err, sizeof(err)), ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "client_email"));
	/* The key's text never reaches a message. */
	ck_assert_ptr_null(strstr(err, "MII"));
	free(j);
}
END_TEST

START_TEST(default_token_uri)
{
	char *j = sa_json_with("token_uri", NULL), err[256] = "";
	struct gcp_creds c;

	ck_assert_int_eq(parse_str(j, &c, err, sizeof(err)), 0);
	ck_assert_str_eq(c.token_uri, "https://oauth2.googleapis.com/token");
	gcp_creds_done(&c);
	free(j);
}
END_TEST

/* A PEM private key of another kind or size. */
static char *
sa_json_with_key(EVP_PKEY *pk)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *pem, *j;
	long n;

	ck_assert_int_eq(PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL,
	    NULL), 1);
	n = BIO_get_mem_data(b, &pem);
	pem = strndup(pem, (size_t)n);
	BIO_free(b);
	j = sa_json_with("private_key", pem);
	free(pem);
	return j;
}

START_TEST(weak_or_wrong_keys)
{
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *keys[2] = { small, ec };
	struct gcp_creds c;
	char err[256];

	for (size_t i = 0; i < 2; i++) {
		char *j;

		ck_assert_ptr_nonnull(keys[i]);
		j = sa_json_with_key(keys[i]);
		err[0] = '\0';
		ck_assert_int_eq(parse_str(j, &c, err, sizeof(err)),
		    ERR_BAD_REQUEST);
		ck_assert_ptr_nonnull(strstr(err, "RSA key of at least 2048"));
		free(j);
		EVP_PKEY_free(keys[i]);
	}
}
END_TEST

START_TEST(pkcs8_key_accepted)
{
	/* Real downloaded key files carry PKCS#8 ("BEGIN PRIVATE KEY"). */
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	struct gcp_creds c;
	char *j, err[256] = "";

	ck_assert_ptr_nonnull(k);
	j = sa_json_with_key(k);
	ck_assert_ptr_nonnull(strstr(j, "BEGIN PRIVATE KEY"));
	ck_assert_int_eq(parse_str(j, &c, err, sizeof(err)), 0);
	ck_assert_int_eq(EVP_PKEY_eq(k, c.pkey), 1);
	gcp_creds_done(&c);
	EVP_PKEY_free(k);
	free(j);
}
END_TEST

static int
tparse(const char *body, struct buf *out, uint32_t *exp, char *err,
    size_t errlen)
{
	return gcp_token_parse((const uint8_t *)body, strlen(body), out, exp,
	    err, errlen);
}

START_TEST(token_responses)
{
	struct buf out;
	uint32_t exp = 0;
	char err[256];

	buf_init(&out, GCP_MAX_TOKEN + 16);
	ck_assert_int_eq(tparse("{\"access_token\":\"ya29.a-b_c\","
	    "\"expires_in\":3599,\"token_type\":\"Bearer\"}", &out, &exp, err,
	    sizeof(err)), 0);
	ck_assert_str_eq((char *)out.data, "Bearer ya29.a-b_c");
	ck_assert_uint_eq(exp, 3599);
	/* a string lifetime and a lower-case type; no type at all */
	ck_assert_int_eq(tparse("{\"access_token\":\"t\",\"expires_in\":"
	    "\"60\",\"token_type\":\"bearer\"}", &out, &exp, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(exp, 60);
	ck_assert_int_eq(tparse("{\"access_token\":\"t\",\"expires_in\":"
	    "999999}", &out, &exp, err, sizeof(err)), 0);
	ck_assert_uint_eq(exp, GCP_MAX_EXPIRES_IN);
	buf_done(&out);
}
END_TEST

START_TEST(bad_token_responses)
{
	static const char *const bodies[] = {
		"",
		"not json",
		"[]",
		"{\"expires_in\":3600}",
		"{\"access_token\":\"\",\"expires_in\":3600}",
		"{\"access_token\":\"a b\",\"expires_in\":3600}",
		"{\"access_token\":\"a\\r\\nX-Evil: 1\",\"expires_in\":3600}",
		"{\"access_token\":\"t\"}",
		"{\"access_token\":\"t\",\"expires_in\":0}",
		"{\"access_token\":\"t\",\"expires_in\":-5}",
		"{\"access_token\":\"t\",\"expires_in\":\"1e3\"}",
		"{\"access_token\":\"t\",\"expires_in\":60,\"token_type\":"
		    "\"MAC\"}",
	};
	struct buf out;
	uint32_t exp = 0;
	char err[256];

	buf_init(&out, GCP_MAX_TOKEN + 16);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(tparse(bodies[i], &out, &exp, err, sizeof(err)) ==
		    ERR_PROVIDER_UNAVAILABLE, "case %zu", i);
		ck_assert_msg(err[0] != '\0', "case %zu", i);
		ck_assert_uint_eq(out.len, 0);
	}
	buf_done(&out);
}
END_TEST

START_TEST(token_too_long)
{
	size_t n = GCP_MAX_TOKEN + 1;
	char *body = malloc(n + 64), err[256];
	struct buf out;
	uint32_t exp;

	strcpy(body, "{\"access_token\":\"");
	memset(body + strlen(body), 'a', n);
	strcpy(body + 17 + n, "\",\"expires_in\":60}");
	buf_init(&out, GCP_MAX_TOKEN + 16);
	ck_assert_int_eq(tparse(body, &out, &exp, err, sizeof(err)),
	    ERR_PROVIDER_UNAVAILABLE);
	buf_done(&out);
	free(body);
}
END_TEST

START_TEST(token_errors)
{
	static const struct {
		long status;
		const char *body;
		int want;
		const char *msg;
	} cases[] = {
		{ 400, "{\"error\":\"invalid_grant\",\"error_description\":"
		    "\"Invalid JWT Signature.\"}", ERR_PROVIDER_DENIED,
		    "HTTP 400 invalid_grant: Invalid JWT Signature." },
		{ 401, "{\"error\":\"invalid_client\"}", ERR_PROVIDER_DENIED,
		    "HTTP 401 invalid_client" },
		{ 403, "", ERR_PROVIDER_DENIED, "HTTP 403" },
		{ 404, "Not Found", ERR_PROVIDER_DENIED, "HTTP 404" },
		{ 429, "{\"error\":\"rate_limit_exceeded\"}", ERR_THROTTLED,
		    "HTTP 429 rate_limit_exceeded" },
		{ 503, "<html>", ERR_PROVIDER_UNAVAILABLE, "HTTP 503" },
		{ 500, "{\"error\":\"x\\u0001y\"}", ERR_PROVIDER_UNAVAILABLE,
		    "HTTP 500 x?y" },
	};
	char msg[160];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(gcp_token_error(cases[i].status,
		    (const uint8_t *)cases[i].body, strlen(cases[i].body), msg,
		    sizeof(msg)), cases[i].want);
		ck_assert_str_eq(msg, cases[i].msg);
	}
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("gcp_auth");
	TCase *tc = tcase_create("creds");
	TCase *jwt = tcase_create("jwt");
	TCase *tok = tcase_create("token");

	tcase_add_test(tc, service_account_file);
	tcase_add_test(tc, authorized_user);
	tcase_add_test(tc, bad_files);
	tcase_add_test(tc, service_account_lacks_email);
	tcase_add_test(tc, default_token_uri);
	tcase_add_test(tc, weak_or_wrong_keys);
	tcase_add_test(tc, pkcs8_key_accepted);
	suite_add_tcase(s, tc);
	tcase_add_test(jwt, jwt_vectors_exact);
	tcase_add_test(jwt, assertion_and_body);
	tcase_add_test(jwt, assertion_without_kid);
	suite_add_tcase(s, jwt);
	tcase_add_test(tok, token_responses);
	tcase_add_test(tok, bad_token_responses);
	tcase_add_test(tok, token_too_long);
	tcase_add_test(tok, token_errors);
	suite_add_tcase(s, tok);
	return s;
}

#include "check_main.h"
