/*
 * test_aws_parse.c: the AWS provider's parsers and builders, good inputs and
 * every kind of bad one (truncated, mistyped, oversized, missing): each bad
 * input must give its error code and a message that names no secret.
 *
 * Fixtures are written here, in the shapes of botocore's service models,
 * AWS's documentation examples and what moto 5.2 actually serialises (its
 * XML auth errors were produced by running moto's exception classes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "aws_parse.h"
#include "err.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define KMSD_BODY TEST_SRCDIR \
	"/../vectors/sigv4/kmsd-derived/kms-encrypt/body.json"

/* Planted in every secret slot of the fixtures: no message may show it. */
#define SECRET "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETKEY"
#define TOKEN "FQoGZXIvYXdzTOKENVALUE0123456789abcdef"

static char errbuf[512];

static void
assert_no_secret(const char *msg)
{
	ck_assert_msg(strstr(msg, SECRET) == NULL && strstr(msg, TOKEN) == NULL,
	    "message shows a secret: %s", msg);
}

static int
buf_is(const struct buf *b, const char *s)
{
	size_t n = strlen(s);

	return b->len == n && (n == 0 || memcmp(b->data, s, n) == 0);
}

/* ======== shared config / credentials files ======== */

START_TEST(test_profile_credentials_file)
{
	const char *f =
	    "# comment\n"
	    "; another\n"
	    "[default]\n"
	    "aws_access_key_id = AKIDDEFAULT\n"
	    "aws_secret_access_key=" SECRET "\n"
	    "\n"
	    "[prod]\r\n"
	    "AWS_Access_Key_ID\t=\tAKIDPROD   # the prod key\r\n"
	    "aws_secret_access_key = " SECRET " ; trailing\r\n"
	    "aws_session_token = " TOKEN "\r\n"
	    "region = eu-west-1\r\n"
	    "role_session_name = a#b;c\r\n"
	    "unknown_key = whatever\r\n"
	    "s3 =\r\n"
	    "  max_concurrent_requests = 20\r\n"
	    "[other]\n"
	    "credential_process = /bin/false\n";
	struct aws_profile p;

	aws_parse_profile_init(&p);
	ck_assert_int_eq(aws_parse_profile(f, strlen(f), AWS_FILE_CREDENTIALS,
	    "prod", &p, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(p.found, 1);
	ck_assert(buf_is(&p.creds.access_key_id, "AKIDPROD"));
	ck_assert(buf_is(&p.creds.secret_access_key, SECRET));
	ck_assert(buf_is(&p.creds.session_token, TOKEN));
	ck_assert_str_eq((const char *)p.creds.session_token.data, TOKEN);
	/* the SDKs take the region from the config file only */
	ck_assert_int_eq(p.region.len, 0);
	/* '#' and ';' only start a comment after whitespace */
	ck_assert(buf_is(&p.role_session_name, "a#b;c"));
	ck_assert_int_eq(p.creds.expiration, 0);
	aws_parse_profile_done(&p);

	aws_parse_profile_init(&p);
	ck_assert_int_eq(aws_parse_profile(f, strlen(f), AWS_FILE_CREDENTIALS,
	    NULL, &p, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(p.found, 1);
	ck_assert(buf_is(&p.creds.access_key_id, "AKIDDEFAULT"));
	ck_assert_int_eq(p.creds.session_token.len, 0);
	aws_parse_profile_done(&p);

	/* a profile that is not there is not an error */
	aws_parse_profile_init(&p);
	ck_assert_int_eq(aws_parse_profile(f, strlen(f), AWS_FILE_CREDENTIALS,
	    "missing", &p, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(p.found, 0);
	ck_assert_int_eq(p.creds.access_key_id.len, 0);
	aws_parse_profile_done(&p);

	/* nor is an empty file */
	aws_parse_profile_init(&p);
	ck_assert_int_eq(aws_parse_profile("", 0, AWS_FILE_CREDENTIALS,
	    NULL, &p, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(p.found, 0);
	aws_parse_profile_done(&p);
}
END_TEST

START_TEST(test_profile_config_file)
{
	const char *f =
	    "[default]\n"
	    "region = us-east-1\n"
	    "[prod]\n"				/* not a profile in config */
	    "region = eu-central-1\n"
	    "[profile prod]\n"
	    "region = eu-west-1\n"
	    "role_arn = arn:aws:iam::123456789012:role/kmsd\n"
	    "web_identity_token_file = /var/run/secrets/eks token\n"
	    "[sso-session corp]\n"
	    "sso_start_url = https://example.awsapps.com/start\n"
	    "[services x]\n"
	    "kms =\n"
	    "  endpoint_url = http://localhost:5000\n"
	    "[ profile   prod ]\n"		/* merges; last value wins */
	    "role_session_name = kmsd-1\n"
	    "region = eu-west-2\n";
	struct aws_profile p;

	aws_parse_profile_init(&p);
	ck_assert_int_eq(aws_parse_profile(f, strlen(f), AWS_FILE_CONFIG,
	    "prod", &p, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(p.found, 1);
	ck_assert(buf_is(&p.region, "eu-west-2"));
	ck_assert(buf_is(&p.role_arn, "arn:aws:iam::123456789012:role/kmsd"));
	ck_assert(buf_is(&p.web_identity_token_file,
	    "/var/run/secrets/eks token"));
	ck_assert(buf_is(&p.role_session_name, "kmsd-1"));
	ck_assert_int_eq(p.creds.access_key_id.len, 0);
	aws_parse_profile_done(&p);

	aws_parse_profile_init(&p);
	ck_assert_int_eq(aws_parse_profile(f, strlen(f), AWS_FILE_CONFIG,
	    "default", &p, errbuf, sizeof(errbuf)), 0);
	ck_assert(buf_is(&p.region, "us-east-1"));
	aws_parse_profile_done(&p);

	/* [profile default] names the default profile too */
	f = "[profile default]\nregion = ap-south-1\n";
	aws_parse_profile_init(&p);
	ck_assert_int_eq(aws_parse_profile(f, strlen(f), AWS_FILE_CONFIG,
	    NULL, &p, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(p.found, 1);
	ck_assert(buf_is(&p.region, "ap-south-1"));
	aws_parse_profile_done(&p);
}
END_TEST

/* Config first, then credentials: the credentials file wins. */
START_TEST(test_profile_precedence)
{
	const char *cfg = "[profile dev]\nregion = us-west-2\n"
	    "aws_access_key_id = AKIDCONFIG\n"
	    "aws_secret_access_key = configsecret\n";
	const char *cred = "[dev]\naws_access_key_id = AKIDCRED\n"
	    "aws_secret_access_key = " SECRET "\n"
	    "aws_security_token = LEGACYTOKEN\n";
	const char *both = "[dev]\naws_access_key_id = AKIDCRED\n"
	    "aws_secret_access_key = " SECRET "\n"
	    "aws_session_token = " TOKEN "\n"
	    "aws_security_token = LEGACYTOKEN\n";
	struct aws_profile p;

	aws_parse_profile_init(&p);
	ck_assert_int_eq(aws_parse_profile(cfg, strlen(cfg), AWS_FILE_CONFIG,
	    "dev", &p, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(aws_parse_profile(cred, strlen(cred),
	    AWS_FILE_CREDENTIALS, "dev", &p, errbuf, sizeof(errbuf)), 0);
	ck_assert(buf_is(&p.creds.access_key_id, "AKIDCRED"));
	ck_assert(buf_is(&p.creds.secret_access_key, SECRET));
	ck_assert(buf_is(&p.creds.session_token, "LEGACYTOKEN"));
	ck_assert(buf_is(&p.region, "us-west-2"));
	/* aws_session_token beats the legacy name in either order */
	ck_assert_int_eq(aws_parse_profile(both, strlen(both),
	    AWS_FILE_CREDENTIALS, "dev", &p, errbuf, sizeof(errbuf)), 0);
	ck_assert(buf_is(&p.creds.session_token, TOKEN));
	aws_parse_profile_done(&p);
}
END_TEST

static const struct {
	const char *name;
	enum aws_file_kind kind;
	const char *text;
	int want;
	const char *msg;	/* expected in the error message */
} bad_profiles[] = {
	{ "credential_process", AWS_FILE_CONFIG,
	    "[default]\ncredential_process = /usr/bin/get-creds " SECRET "\n",
	    ERR_BAD_REQUEST, "credential_process" },
	{ "credential_process in credentials", AWS_FILE_CREDENTIALS,
	    "[default]\naws_access_key_id = AKID\n"
	    "aws_secret_access_key = " SECRET "\n"
	    "Credential_Process = x\n", ERR_BAD_REQUEST, "credential_process" },
	{ "source_profile", AWS_FILE_CONFIG,
	    "[default]\nrole_arn = arn:aws:iam::1:role/x\n"
	    "source_profile = base\n", ERR_BAD_REQUEST, "source_profile" },
	{ "credential_source", AWS_FILE_CONFIG,
	    "[default]\ncredential_source = Ec2InstanceMetadata\n",
	    ERR_BAD_REQUEST, "credential_source" },
	{ "sso", AWS_FILE_CONFIG, "[default]\nsso_session = corp\n",
	    ERR_BAD_REQUEST, "sso_session" },
	{ "property outside section", AWS_FILE_CREDENTIALS,
	    "aws_access_key_id = AKID\n[default]\n", ERR_BAD_REQUEST,
	    "line 1" },
	{ "section without ]", AWS_FILE_CREDENTIALS,
	    "[default\naws_access_key_id = AKID\n", ERR_BAD_REQUEST,
	    "line 1" },
	{ "text after section", AWS_FILE_CREDENTIALS,
	    "[default] junk\n", ERR_BAD_REQUEST, "line 1" },
	{ "empty section", AWS_FILE_CREDENTIALS, "[ ]\n", ERR_BAD_REQUEST,
	    "line 1" },
	{ "no equals", AWS_FILE_CREDENTIALS,
	    "[default]\naws_secret_access_key " SECRET "\n", ERR_BAD_REQUEST,
	    "line 2" },
	{ "empty key", AWS_FILE_CREDENTIALS, "[default]\n= " SECRET "\n",
	    ERR_BAD_REQUEST, "line 2" },
	{ "continuation of our key", AWS_FILE_CREDENTIALS,
	    "[default]\naws_secret_access_key = a\n  " SECRET "\n",
	    ERR_BAD_REQUEST, "line 3" },
	{ "continuation first", AWS_FILE_CREDENTIALS,
	    "[default]\n  indented = 1\n", ERR_BAD_REQUEST, "line 2" },
	{ "NUL byte", AWS_FILE_CREDENTIALS,
	    "[default]\naws_access_key_id = AK\0ID\n", ERR_BAD_REQUEST,
	    "NUL" },
	{ "only the key id", AWS_FILE_CREDENTIALS,
	    "[default]\naws_access_key_id = AKID\n", ERR_BAD_REQUEST,
	    "only one" },
	{ "only the secret", AWS_FILE_CREDENTIALS,
	    "[default]\naws_secret_access_key = " SECRET "\n",
	    ERR_BAD_REQUEST, "only one" },
	{ "bad key id", AWS_FILE_CREDENTIALS,
	    "[default]\naws_access_key_id = AKID/" SECRET "\n"
	    "aws_secret_access_key = x\n", ERR_BAD_REQUEST, "line 2" },
	{ "token with space", AWS_FILE_CREDENTIALS,
	    "[default]\naws_session_token = " TOKEN " " TOKEN "\n",
	    ERR_BAD_REQUEST, "line 2" },
	{ "bad region", AWS_FILE_CONFIG,
	    "[default]\nregion = us-east-1.evil.example/\n", ERR_BAD_REQUEST,
	    "line 2" },
	{ "bad region case", AWS_FILE_CONFIG,
	    "[default]\nregion = US-EAST-1\n", ERR_BAD_REQUEST, "region" },
};

START_TEST(test_profile_bad)
{
	struct aws_profile p;
	size_t len = strlen(bad_profiles[_i].text);
	int r;

	/* the NUL case: its text runs past the embedded NUL */
	if (strcmp(bad_profiles[_i].name, "NUL byte") == 0)
		len = sizeof("[default]\naws_access_key_id = AK\0ID\n") - 1;
	errbuf[0] = '\0';
	aws_parse_profile_init(&p);
	r = aws_parse_profile(bad_profiles[_i].text, len,
	    bad_profiles[_i].kind, NULL, &p, errbuf, sizeof(errbuf));
	ck_assert_msg(r == bad_profiles[_i].want, "%s: got %d (%s)",
	    bad_profiles[_i].name, r, errbuf);
	ck_assert_msg(strstr(errbuf, bad_profiles[_i].msg) != NULL,
	    "%s: message '%s' lacks '%s'", bad_profiles[_i].name, errbuf,
	    bad_profiles[_i].msg);
	assert_no_secret(errbuf);
	aws_parse_profile_done(&p);
}
END_TEST

/* Unsupported keys and junk in other profiles do not matter; syntax
 * errors anywhere do. */
START_TEST(test_profile_other_sections)
{
	const char *f = "[default]\naws_access_key_id = AKID\n"
	    "aws_secret_access_key = s\n"
	    "[other]\ncredential_process = x\nsource_profile = y\n";
	const char *g = "[default]\naws_access_key_id = AKID\n"
	    "aws_secret_access_key = s\n[other]\nbroken line\n";
	struct aws_profile p;

	aws_parse_profile_init(&p);
	ck_assert_int_eq(aws_parse_profile(f, strlen(f), AWS_FILE_CREDENTIALS,
	    NULL, &p, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(aws_parse_profile(g, strlen(g), AWS_FILE_CREDENTIALS,
	    NULL, &p, errbuf, sizeof(errbuf)), ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(errbuf, "line 5"));
	aws_parse_profile_done(&p);
}
END_TEST

START_TEST(test_profile_limits)
{
	struct aws_profile p;
	size_t big = 1024 * 1024 + 1, n;
	char *f = malloc(big + 64);

	ck_assert_ptr_nonnull(f);
	memset(f, '#', big);
	aws_parse_profile_init(&p);
	ck_assert_int_eq(aws_parse_profile(f, big, AWS_FILE_CREDENTIALS,
	    NULL, &p, errbuf, sizeof(errbuf)), ERR_TOO_LARGE);
	/* a token value of 16385 bytes */
	n = (size_t)sprintf(f, "[default]\naws_session_token = ");
	memset(f + n, 'T', 16385);
	n += 16385;
	f[n++] = '\n';
	ck_assert_int_eq(aws_parse_profile(f, n, AWS_FILE_CREDENTIALS,
	    NULL, &p, errbuf, sizeof(errbuf)), ERR_TOO_LARGE);
	ck_assert_ptr_nonnull(strstr(errbuf, "aws_session_token"));
	/* 16384 is fine */
	n = (size_t)sprintf(f, "[default]\naws_session_token = ");
	memset(f + n, 'T', 16384);
	n += 16384;
	ck_assert_int_eq(aws_parse_profile(f, n, AWS_FILE_CREDENTIALS,
	    NULL, &p, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(p.creds.session_token.len, 16384);
	/* bad arguments */
	ck_assert_int_eq(aws_parse_profile(f, n, AWS_FILE_CREDENTIALS, "",
	    &p, errbuf, sizeof(errbuf)), ERR_BAD_REQUEST);
	ck_assert_int_eq(aws_parse_profile(NULL, 3, AWS_FILE_CREDENTIALS,
	    NULL, &p, NULL, 0), ERR_BAD_REQUEST);
	aws_parse_profile_done(&p);
	free(f);
}
END_TEST

/* ======== KMS request bodies ======== */

static const uint8_t key32[32] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};

static struct context
ctx2(const char *k1, const char *v1, const char *k2, const char *v2)
{
	struct context c;

	memset(&c, 0, sizeof(c));
	c.present = 1;
	c.n = 2;
	c.pairs[0] = (struct ctx_pair){ { k1, strlen(k1) },
	    { v1, strlen(v1) } };
	c.pairs[1] = (struct ctx_pair){ { k2, strlen(k2) },
	    { v2, strlen(v2) } };
	return c;
}

static char *
slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *p;
	long n;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert(fseek(f, 0, SEEK_END) == 0);
	n = ftell(f);
	ck_assert(n >= 0 && fseek(f, 0, SEEK_SET) == 0);
	p = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(p);
	ck_assert(fread(p, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	p[n] = '\0';
	*ret_len = (size_t)n;
	return p;
}

/* The Encrypt body kmsd sends equals the one the signing vector signs. */
START_TEST(test_request_encrypt_vector)
{
	struct context c = ctx2("model_name", "User", "model_id", "1");
	struct aws_kms_request req = { AWS_KMS_ENCRYPT, "alias/example", NULL,
	    key32, sizeof(key32), &c, NULL };
	struct buf out;
	size_t n;
	char *want = slurp(KMSD_BODY, &n);

	buf_init(&out, 65536);
	ck_assert_int_eq(aws_parse_kms_request(&req, &out), 0);
	ck_assert_msg(out.len == n && memcmp(out.data, want, n) == 0,
	    "got %.*s", (int)out.len, out.data);
	buf_done(&out);
	free(want);
	ck_assert_str_eq(aws_parse_kms_target(AWS_KMS_ENCRYPT),
	    "TrentService.Encrypt");
	ck_assert_str_eq(aws_parse_kms_target(AWS_KMS_DECRYPT),
	    "TrentService.Decrypt");
	ck_assert_str_eq(aws_parse_kms_target(AWS_KMS_REENCRYPT),
	    "TrentService.ReEncrypt");
	ck_assert_ptr_null(aws_parse_kms_target((enum aws_kms_op)7));
}
END_TEST

static const uint8_t blob[] = { 0x01, 0x02, 0x03, 0xfe, 0xff };

START_TEST(test_request_shapes)
{
	struct context c = ctx2("a\"b", "line\nbreak", "\xc3\xa9", "</x>");
	struct context empty = { .present = 1 };
	struct context absent = { .present = 0 };
	struct context d = ctx2("k", "v", "k2", "v2");
	static const struct {
		struct aws_kms_request req;
		const char *want;
	} cases[] = {
		{ { AWS_KMS_ENCRYPT, "k", NULL, blob, 5, NULL, NULL },
		    "{\"KeyId\":\"k\",\"Plaintext\":\"AQID/v8=\"}" },
		{ { AWS_KMS_DECRYPT, NULL, NULL, blob, 5, NULL, NULL },
		    "{\"CiphertextBlob\":\"AQID/v8=\"}" },
		{ { AWS_KMS_DECRYPT, "arn:aws:kms:us-east-1:111122223333:key/"
		    "x", NULL, blob, 5, NULL, NULL },
		    "{\"CiphertextBlob\":\"AQID/v8=\",\"KeyId\":\"arn:aws:kms:"
		    "us-east-1:111122223333:key/x\"}" },
	};
	struct aws_kms_request req;
	struct buf out;

	buf_init(&out, 65536);
	for (size_t i = 0; i < NELEM(cases); i++) {
		buf_clear(&out);
		ck_assert_int_eq(aws_parse_kms_request(&cases[i].req, &out), 0);
		ck_assert_msg(buf_is(&out, cases[i].want), "%zu: %.*s", i,
		    (int)out.len, out.data);
	}
	/* contexts: escaped JSON, sorted; empty present = {}; absent = none */
	req = (struct aws_kms_request){ AWS_KMS_ENCRYPT, "k", NULL, blob, 5,
	    &c, NULL };
	buf_clear(&out);
	ck_assert_int_eq(aws_parse_kms_request(&req, &out), 0);
	ck_assert(buf_is(&out, "{\"KeyId\":\"k\",\"Plaintext\":\"AQID/v8=\","
	    "\"EncryptionContext\":{\"a\\\"b\":\"line\\nbreak\","
	    "\"\xc3\xa9\":\"</x>\"}}"));
	req.ctx = &empty;
	buf_clear(&out);
	ck_assert_int_eq(aws_parse_kms_request(&req, &out), 0);
	ck_assert(buf_is(&out, "{\"KeyId\":\"k\",\"Plaintext\":\"AQID/v8=\","
	    "\"EncryptionContext\":{}}"));
	req.ctx = &absent;
	buf_clear(&out);
	ck_assert_int_eq(aws_parse_kms_request(&req, &out), 0);
	ck_assert(buf_is(&out, "{\"KeyId\":\"k\",\"Plaintext\":\"AQID/v8=\"}"));
	/* Decrypt with a context */
	req = (struct aws_kms_request){ AWS_KMS_DECRYPT, NULL, NULL, blob, 5,
	    &d, NULL };
	buf_clear(&out);
	ck_assert_int_eq(aws_parse_kms_request(&req, &out), 0);
	ck_assert(buf_is(&out, "{\"CiphertextBlob\":\"AQID/v8=\","
	    "\"EncryptionContext\":{\"k\":\"v\",\"k2\":\"v2\"}}"));
	/* ReEncrypt with everything */
	req = (struct aws_kms_request){ AWS_KMS_REENCRYPT, "alias/new",
	    "alias/old", blob, 5, &d, &empty };
	buf_clear(&out);
	ck_assert_int_eq(aws_parse_kms_request(&req, &out), 0);
	ck_assert(buf_is(&out, "{\"CiphertextBlob\":\"AQID/v8=\","
	    "\"SourceKeyId\":\"alias/old\",\"SourceEncryptionContext\":"
	    "{\"k\":\"v\",\"k2\":\"v2\"},\"DestinationKeyId\":\"alias/new\","
	    "\"DestinationEncryptionContext\":{}}"));
	/* and it is JSON jansson reads back */
	{
		json_t *j = json_loadb((const char *)out.data, out.len, 0,
		    NULL);

		ck_assert_ptr_nonnull(j);
		ck_assert_str_eq(json_string_value(json_object_get(j,
		    "DestinationKeyId")), "alias/new");
		json_decref(j);
	}
	/* ReEncrypt minimal */
	req = (struct aws_kms_request){ AWS_KMS_REENCRYPT, "alias/new", NULL,
	    blob, 5, NULL, NULL };
	buf_clear(&out);
	ck_assert_int_eq(aws_parse_kms_request(&req, &out), 0);
	ck_assert(buf_is(&out, "{\"CiphertextBlob\":\"AQID/v8=\","
	    "\"DestinationKeyId\":\"alias/new\"}"));
	buf_done(&out);
}
END_TEST

START_TEST(test_request_bad)
{
	static uint8_t big[6145];
	static char long_id[2050];
	struct context dup = ctx2("k", "1", "k", "2");
	struct context badutf = ctx2("k", "\xff", "j", "2");
	struct context d = ctx2("k", "v", "k2", "v2");
	const struct aws_kms_request cases[] = {
		{ AWS_KMS_ENCRYPT, "k", NULL, blob, 0, NULL, NULL },
		{ AWS_KMS_ENCRYPT, "k", NULL, NULL, 5, NULL, NULL },
		{ AWS_KMS_ENCRYPT, "k", NULL, big, 4097, NULL, NULL },
		{ AWS_KMS_DECRYPT, NULL, NULL, big, 6145, NULL, NULL },
		{ AWS_KMS_ENCRYPT, NULL, NULL, blob, 5, NULL, NULL },
		{ AWS_KMS_ENCRYPT, "", NULL, blob, 5, NULL, NULL },
		{ AWS_KMS_ENCRYPT, "a\"b", NULL, blob, 5, NULL, NULL },
		{ AWS_KMS_ENCRYPT, "a\\b", NULL, blob, 5, NULL, NULL },
		{ AWS_KMS_ENCRYPT, "a b", NULL, blob, 5, NULL, NULL },
		{ AWS_KMS_ENCRYPT, long_id, NULL, blob, 5, NULL, NULL },
		{ AWS_KMS_ENCRYPT, "k", "src", blob, 5, NULL, NULL },
		{ AWS_KMS_ENCRYPT, "k", NULL, blob, 5, NULL, &d },
		{ AWS_KMS_ENCRYPT, "k", NULL, blob, 5, &dup, NULL },
		{ AWS_KMS_ENCRYPT, "k", NULL, blob, 5, &badutf, NULL },
		{ AWS_KMS_REENCRYPT, NULL, NULL, blob, 5, NULL, NULL },
		{ AWS_KMS_REENCRYPT, "k", NULL, blob, 5, NULL, &dup },
		{ (enum aws_kms_op)9, "k", NULL, blob, 5, NULL, NULL },
	};
	struct buf out;

	memset(long_id, 'k', sizeof(long_id) - 1);
	buf_init(&out, 65536);
	ck_assert_int_eq(buf_append_str(&out, "prefix"), 0);
	for (size_t i = 0; i < NELEM(cases); i++) {
		ck_assert_msg(aws_parse_kms_request(&cases[i], &out) ==
		    ERR_BAD_REQUEST, "case %zu", i);
		/* nothing appended */
		ck_assert(buf_is(&out, "prefix"));
	}
	ck_assert_int_eq(aws_parse_kms_request(NULL, &out), ERR_BAD_REQUEST);
	buf_done(&out);

	/* an output cap too small fails cleanly and wipes its partial JSON */
	{
		struct aws_kms_request req = { AWS_KMS_ENCRYPT, "k", NULL, big,
		    4096, NULL, NULL };

		buf_init(&out, 100);
		ck_assert_int_eq(aws_parse_kms_request(&req, &out),
		    ERR_TOO_LARGE);
		ck_assert_int_eq(out.len, 0);
		buf_done(&out);
	}
}
END_TEST

/* ======== KMS responses ======== */

START_TEST(test_response_ok)
{
	const char *enc = "{\"CiphertextBlob\":\"AQID/v8=\",\"KeyId\":"
	    "\"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-"
	    "1234567890ab\",\"EncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"}";
	const char *dec = " {\"KeyId\":\"arn:aws:kms:us-east-1:111122223333:"
	    "key/k\",\"Plaintext\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"
	    "Hh8=\",\"EncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\","
	    "\"KeyMaterialId\":null} \n";
	const char *re = "{\"CiphertextBlob\":\"AQID/v8=\",\"SourceKeyId\":"
	    "\"arn:aws:kms:us-east-1:111122223333:key/old\",\"KeyId\":"
	    "\"arn:aws:kms:us-east-1:111122223333:key/new\","
	    "\"SourceEncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\","
	    "\"DestinationEncryptionAlgorithm\":\"SYMMETRIC_DEFAULT\"}";
	const char *nokey = "{\"CiphertextBlob\":\"AQID/v8=\"}";
	struct aws_kms_result r;

	aws_parse_kms_result_init(&r);
	ck_assert_int_eq(aws_parse_kms_response(AWS_KMS_ENCRYPT, enc,
	    strlen(enc), &r, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(r.data.len, 5);
	ck_assert(memcmp(r.data.data, blob, 5) == 0);
	ck_assert(buf_is(&r.key_id, "arn:aws:kms:us-east-1:111122223333:key/"
	    "1234abcd-12ab-34cd-56ef-1234567890ab"));

	ck_assert_int_eq(aws_parse_kms_response(AWS_KMS_DECRYPT, dec,
	    strlen(dec), &r, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(r.data.len, 32);
	ck_assert(memcmp(r.data.data, key32, 32) == 0);
	ck_assert(buf_is(&r.key_id, "arn:aws:kms:us-east-1:111122223333:"
	    "key/k"));

	ck_assert_int_eq(aws_parse_kms_response(AWS_KMS_REENCRYPT, re,
	    strlen(re), &r, errbuf, sizeof(errbuf)), 0);
	ck_assert(buf_is(&r.source_key_id, "arn:aws:kms:us-east-1:"
	    "111122223333:key/old"));
	ck_assert(buf_is(&r.key_id, "arn:aws:kms:us-east-1:111122223333:"
	    "key/new"));

	/* KeyId is optional (kms_encrypted never reads it) */
	ck_assert_int_eq(aws_parse_kms_response(AWS_KMS_ENCRYPT, nokey,
	    strlen(nokey), &r, errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(r.key_id.len, 0);
	aws_parse_kms_result_done(&r);
}
END_TEST

/* Bodies off the flat all-plain-strings shape (escapes, null, nesting,
 * many members, odd whitespace) read the same as the plain form. */
START_TEST(test_response_shapes)
{
	static const char *const same[] = {
		"{\"KeyId\":\"arn:k\",\"Plaintext\":\"AAECAw==\"}",
		"\r\n\t {\t\"KeyId\" :\n\"arn:k\" , \"Plaintext\":"
		    "\"AAECAw==\"\t}\r\n",
		"{\"KeyId\":\"arn\\u003ak\",\"Plaintext\":\"AAECAw==\"}",
		"{\"KeyId\":\"arn:k\",\"Plaint\\u0065xt\":\"AAECAw==\"}",
		"{\"KeyId\":\"arn:k\",\"Plaintext\":\"AAECAw\\u003d=\"}",
		"{\"KeyId\":\"arn:k\",\"Plaintext\":\"AAECAw==\",\"N\":1,"
		    "\"O\":{\"a\":[true,null]},\"E\":\"\\u00e9\"}",
		"{\"KeyId\":\"arn:k\",\"Plaintext\":\"AAECAw==\",\"a\":\"\","
		    "\"b\":\"\",\"c\":\"\",\"d\":\"\",\"e\":\"\",\"f\":\"\","
		    "\"g\":\"\",\"h\":\"\",\"i\":\"\",\"j\":\"\",\"k\":\"\","
		    "\"l\":\"\",\"m\":\"\",\"n\":\"\",\"o\":\"\"}",
	};
	static const char *const bad[] = {
		/* a name twice, once escaped: jansson sees the repeat */
		"{\"Plaintext\":\"AAECAw==\",\"Pl\\u0061intext\":\"AAEC\"}",
		"{\"Plaintext\":\"AAECAw==\",\"KeyId\":\"a\",\"KeyId\":\"a\"}",
		"{\"Plaintext\":\"AAECAw==\",}",
		"{\"Plaintext\":\"AAECAw==\"\"KeyId\":\"a\"}",
		"{\"Plaintext\" \"AAECAw==\"}",
		"{\"Plaintext\":\"AAECAw==\"}}",
		"{\"Plaintext\":\"AAECAw==\"}\v",
		"{\"Plaintext\":\"AAECAw==\"",
		"{\"Plaintext\":\"AAEC\tAw==\"}",
	};
	struct aws_kms_result r;

	aws_parse_kms_result_init(&r);
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		ck_assert_msg(aws_parse_kms_response(AWS_KMS_DECRYPT, same[i],
		    strlen(same[i]), &r, errbuf, sizeof(errbuf)) == 0,
		    "same[%zu]: %s", i, errbuf);
		ck_assert_int_eq(r.data.len, 4);
		ck_assert(memcmp(r.data.data, key32, 4) == 0);
		ck_assert(buf_is(&r.key_id, "arn:k"));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errbuf[0] = '\0';
		ck_assert_msg(aws_parse_kms_response(AWS_KMS_DECRYPT, bad[i],
		    strlen(bad[i]), &r, errbuf, sizeof(errbuf)) ==
		    ERR_BAD_REQUEST, "bad[%zu] accepted", i);
		ck_assert(errbuf[0] != '\0');
		ck_assert_int_eq(r.data.len, 0);
	}
	aws_parse_kms_result_done(&r);
}
END_TEST

#define P4096 "AAAA"	/* 3 zero bytes */

static const struct {
	const char *name;
	enum aws_kms_op op;
	const char *body;
	int want;
} bad_responses[] = {
	{ "empty", AWS_KMS_ENCRYPT, "", ERR_BAD_REQUEST },
	{ "open brace", AWS_KMS_ENCRYPT, "{", ERR_BAD_REQUEST },
	{ "truncated", AWS_KMS_DECRYPT,
	    "{\"Plaintext\":\"" SECRET, ERR_BAD_REQUEST },
	{ "truncated after value", AWS_KMS_DECRYPT,
	    "{\"Plaintext\":\"AAECAw==\",", ERR_BAD_REQUEST },
	{ "array", AWS_KMS_ENCRYPT, "[\"CiphertextBlob\"]", ERR_BAD_REQUEST },
	{ "string", AWS_KMS_ENCRYPT, "\"AQID\"", ERR_BAD_REQUEST },
	{ "null", AWS_KMS_ENCRYPT, "null", ERR_BAD_REQUEST },
	{ "html", AWS_KMS_ENCRYPT, "<html>502</html>", ERR_BAD_REQUEST },
	{ "trailing junk", AWS_KMS_ENCRYPT,
	    "{\"CiphertextBlob\":\"AQID\"} x", ERR_BAD_REQUEST },
	{ "missing field", AWS_KMS_DECRYPT, "{\"KeyId\":\"k\"}",
	    ERR_BAD_REQUEST },
	{ "wrong field for op", AWS_KMS_DECRYPT,
	    "{\"CiphertextBlob\":\"AQID\"}", ERR_BAD_REQUEST },
	{ "number", AWS_KMS_DECRYPT, "{\"Plaintext\":12}", ERR_BAD_REQUEST },
	{ "json null field", AWS_KMS_DECRYPT, "{\"Plaintext\":null}",
	    ERR_BAD_REQUEST },
	{ "object field", AWS_KMS_ENCRYPT, "{\"CiphertextBlob\":{}}",
	    ERR_BAD_REQUEST },
	{ "empty blob", AWS_KMS_ENCRYPT, "{\"CiphertextBlob\":\"\"}",
	    ERR_BAD_REQUEST },
	{ "not base64", AWS_KMS_DECRYPT, "{\"Plaintext\":\"" SECRET "!\"}",
	    ERR_BAD_REQUEST },
	{ "bad length", AWS_KMS_ENCRYPT, "{\"CiphertextBlob\":\"AQI\"}",
	    ERR_BAD_REQUEST },
	{ "non-canonical", AWS_KMS_ENCRYPT, "{\"CiphertextBlob\":\"QR==\"}",
	    ERR_BAD_REQUEST },
	{ "url-safe", AWS_KMS_ENCRYPT, "{\"CiphertextBlob\":\"AQID_v8=\"}",
	    ERR_BAD_REQUEST },
	{ "whitespace in base64", AWS_KMS_ENCRYPT,
	    "{\"CiphertextBlob\":\"AQID\\nAQID\"}", ERR_BAD_REQUEST },
	{ "duplicate field", AWS_KMS_ENCRYPT,
	    "{\"CiphertextBlob\":\"AQID\",\"CiphertextBlob\":\"AQIE\"}",
	    ERR_BAD_REQUEST },
	{ "KeyId number", AWS_KMS_ENCRYPT,
	    "{\"CiphertextBlob\":\"AQID\",\"KeyId\":5}", ERR_BAD_REQUEST },
	{ "KeyId empty", AWS_KMS_ENCRYPT,
	    "{\"CiphertextBlob\":\"AQID\",\"KeyId\":\"\"}", ERR_BAD_REQUEST },
	{ "KeyId control", AWS_KMS_ENCRYPT,
	    "{\"CiphertextBlob\":\"AQID\",\"KeyId\":\"a\\u0000b\"}",
	    ERR_BAD_REQUEST },
	{ "SourceKeyId array", AWS_KMS_REENCRYPT,
	    "{\"CiphertextBlob\":\"AQID\",\"SourceKeyId\":[]}",
	    ERR_BAD_REQUEST },
	{ "unknown op", (enum aws_kms_op)5, "{\"CiphertextBlob\":\"AQID\"}",
	    ERR_BAD_REQUEST },
};

START_TEST(test_response_bad)
{
	struct aws_kms_result r;
	int got;

	aws_parse_kms_result_init(&r);
	/* leave something in r to see that a failure clears it */
	ck_assert_int_eq(buf_append_str(&r.data, "stale"), 0);
	errbuf[0] = '\0';
	got = aws_parse_kms_response(bad_responses[_i].op,
	    bad_responses[_i].body, strlen(bad_responses[_i].body), &r,
	    errbuf, sizeof(errbuf));
	ck_assert_msg(got == bad_responses[_i].want, "%s: got %d (%s)",
	    bad_responses[_i].name, got, errbuf);
	if (got != 0) {
		ck_assert_msg(errbuf[0] != '\0', "%s: no message",
		    bad_responses[_i].name);
		ck_assert_int_eq(r.data.len, 0);
		ck_assert_int_eq(r.key_id.len, 0);
	}
	assert_no_secret(errbuf);
	aws_parse_kms_result_done(&r);
}
END_TEST

/* Oversized and hostile bodies: size caps before parsing. */
START_TEST(test_response_huge)
{
	struct aws_kms_result r;
	size_t n = 70000, k;
	char *b = malloc(n + 64);

	ck_assert_ptr_nonnull(b);
	aws_parse_kms_result_init(&r);
	/* body over the cap */
	k = (size_t)sprintf(b, "{\"CiphertextBlob\":\"");
	memset(b + k, 'A', n - k - 2);
	memcpy(b + n - 2, "\"}", 2);
	ck_assert_int_eq(aws_parse_kms_response(AWS_KMS_ENCRYPT, b, n, &r,
	    errbuf, sizeof(errbuf)), ERR_TOO_LARGE);
	/* a plaintext one byte over 4096 (5464 base64 chars = 4098 bytes) */
	k = (size_t)sprintf(b, "{\"Plaintext\":\"");
	memset(b + k, 'A', 5464);
	k += 5464;
	k += (size_t)sprintf(b + k, "\"}");
	ck_assert_int_eq(aws_parse_kms_response(AWS_KMS_DECRYPT, b, k, &r,
	    errbuf, sizeof(errbuf)), ERR_BAD_REQUEST);
	/* exactly 4096 bytes is fine: 5460 chars + "AA==" */
	k = (size_t)sprintf(b, "{\"Plaintext\":\"");
	memset(b + k, 'A', 5460);
	k += 5460;
	k += (size_t)sprintf(b + k, "AA==\"}");
	ck_assert_int_eq(aws_parse_kms_response(AWS_KMS_DECRYPT, b, k, &r,
	    errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(r.data.len, 4096);
	/* deep nesting within the size cap */
	memset(b, '[', 60000);
	ck_assert_int_eq(aws_parse_kms_response(AWS_KMS_ENCRYPT, b, 60000, &r,
	    errbuf, sizeof(errbuf)), ERR_BAD_REQUEST);
	memset(b, '{', 1);
	memcpy(b + 1, "\"a\":", 4);
	ck_assert_int_eq(aws_parse_kms_response(AWS_KMS_ENCRYPT, b, 60000, &r,
	    errbuf, sizeof(errbuf)), ERR_BAD_REQUEST);
	/* a NUL inside the body */
	ck_assert_int_eq(aws_parse_kms_response(AWS_KMS_ENCRYPT,
	    "{\"CiphertextBlob\":\"AQID\"}\0", 27, &r, errbuf, sizeof(errbuf)),
	    ERR_BAD_REQUEST);
	ck_assert_int_eq(aws_parse_kms_response(AWS_KMS_ENCRYPT, NULL, 0, &r,
	    errbuf, sizeof(errbuf)), ERR_BAD_REQUEST);
	aws_parse_kms_result_done(&r);
	free(b);
}
END_TEST

/* ======== error responses ======== */

#define MOTO_SIG "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ErrorResponse>" \
	"<Errors><Error><Code>SignatureDoesNotMatch</Code><Message>The " \
	"request signature we calculated does not match the signature you " \
	"provided. Check your AWS Secret Access Key and signing method. " \
	"Consult the service documentation for details.</Message><Type>" \
	"Sender</Type></Error></Errors></ErrorResponse>"
#define MOTO_DENIED "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n" \
	"<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>" \
	"User: arn:aws:iam::123456789012:user/x is not authorized to " \
	"perform: kms:Decrypt</Message><Type>Sender</Type></Error></Errors>" \
	"</ErrorResponse>"
#define STS_ERR "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/" \
	"2011-06-15/\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>" \
	"InvalidIdentityToken</Code>\n    <Message>Couldn&apos;t retrieve " \
	"verification key from your identity provider</Message>\n  " \
	"</Error>\n  <RequestId>e2b9-11e2</RequestId>\n</ErrorResponse>"

static const struct {
	const char *name;
	long status;
	const char *type;	/* x-amzn-ErrorType */
	const char *body;
	int err, retry, throttle, refresh;
	const char *code;
	const char *message;
} errs[] = {
	{ "moto InvalidCiphertext", 400, "InvalidCiphertextException",
	    "{\"__type\":\"InvalidCiphertextException\"}",
	    ERR_DECRYPTION_FAILED, 0, 0, 0, "InvalidCiphertextException", "" },
	{ "namespaced IncorrectKey", 400, NULL,
	    "{\"__type\":\"com.amazonaws.kms#IncorrectKeyException\","
	    "\"message\":\"The key ID in the request does not identify a CMK "
	    "that can perform this operation.\"}", ERR_DECRYPTION_FAILED, 0, 0,
	    0, "IncorrectKeyException", "The key ID in the request does not "
	    "identify a CMK that can perform this operation." },
	{ "NotFound Message", 400, NULL,
	    "{\"__type\":\"NotFoundException\",\"Message\":\"Key 'arn:aws:kms:"
	    "us-east-1:111122223333:key/x' does not exist\"}",
	    ERR_PROVIDER_DENIED, 0, 0, 0, "NotFoundException",
	    "Key 'arn:aws:kms:us-east-1:111122223333:key/x' does not exist" },
	{ "header only", 400, "AccessDeniedException:http://internal.amazon"
	    ".com/coral/com.amazon.coral.service/", "", ERR_PROVIDER_DENIED, 0,
	    0, 0, "AccessDeniedException", "" },
	{ "body before header", 400, "ThrottlingException",
	    "{\"__type\":\"DisabledException\"}", ERR_PROVIDER_DENIED, 0, 0, 0,
	    "DisabledException", "" },
	{ "moto SignatureDoesNotMatch", 403, "SignatureDoesNotMatch", MOTO_SIG,
	    ERR_PROVIDER_DENIED, 0, 0, 0, "SignatureDoesNotMatch",
	    "The request signature we calculated does not match the signature "
	    "you provided. Check your AWS Secret Access Key and signing method."
	    " Consult the service documentation for details." },
	{ "moto AccessDenied", 403, NULL, MOTO_DENIED, ERR_PROVIDER_DENIED, 0,
	    0, 0, "AccessDenied", "User: arn:aws:iam::123456789012:user/x is "
	    "not authorized to perform: kms:Decrypt" },
	{ "ErrorResponse/Error", 403, NULL, "<ErrorResponse><Error><Code>"
	    "UnrecognizedClientException</Code><Message>The security token "
	    "included in the request is invalid.</Message></Error>"
	    "</ErrorResponse>", ERR_PROVIDER_DENIED, 0, 0, 0,
	    "UnrecognizedClientException", "The security token included in "
	    "the request is invalid." },
	{ "Response/Errors", 401, NULL, "<Response><Errors><Error><Code>"
	    "AuthFailure</Code><Message><![CDATA[AWS was not able to validate "
	    "the provided access credentials]]></Message></Error></Errors>"
	    "<RequestID>x</RequestID></Response>", ERR_PROVIDER_DENIED, 0, 0,
	    0, "AuthFailure", "AWS was not able to validate the provided "
	    "access "
	    "credentials" },
	{ "STS InvalidIdentityToken", 400, NULL, STS_ERR, ERR_PROVIDER_DENIED,
	    0, 0, 0, "InvalidIdentityToken", "Couldn't retrieve verification "
	    "key from your identity provider" },
	{ "STS IDPCommunicationError", 400, NULL, "<ErrorResponse><Error>"
	    "<Code>IDPCommunicationError</Code></Error></ErrorResponse>",
	    ERR_PROVIDER_UNAVAILABLE, 1, 0, 0, "IDPCommunicationError", "" },
	{ "InvalidSignature", 400, NULL, "{\"__type\":"
	    "\"InvalidSignatureException\"}", ERR_PROVIDER_DENIED, 0, 0, 0,
	    "InvalidSignatureException", "" },
	{ "IncompleteSignature", 400, NULL, "{\"__type\":"
	    "\"IncompleteSignatureException\"}", ERR_PROVIDER_DENIED, 0, 0, 0,
	    "IncompleteSignatureException", "" },
	{ "MissingAuthenticationToken", 403, "MissingAuthenticationToken", "",
	    ERR_PROVIDER_DENIED, 0, 0, 0, "MissingAuthenticationToken", "" },
	{ "ExpiredToken", 400, NULL, "{\"__type\":\"ExpiredTokenException\","
	    "\"message\":\"The security token included in the request is "
	    "expired\"}", ERR_PROVIDER_DENIED, 0, 0, 1, "ExpiredTokenException",
	    "The security token included in the request is expired" },
	{ "KMSInvalidState", 400, NULL, "{\"__type\":"
	    "\"KMSInvalidStateException\"}", ERR_PROVIDER_DENIED, 0, 0, 0,
	    "KMSInvalidStateException", "" },
	{ "KeyUnavailable 500", 500, NULL, "{\"__type\":"
	    "\"KeyUnavailableException\"}", ERR_PROVIDER_DENIED, 0, 0, 0,
	    "KeyUnavailableException", "" },
	{ "InvalidKeyUsage", 400, NULL, "{\"__type\":"
	    "\"InvalidKeyUsageException\"}", ERR_PROVIDER_DENIED, 0, 0, 0,
	    "InvalidKeyUsageException", "" },
	{ "Validation", 400, NULL, "{\"__type\":\"ValidationException\","
	    "\"message\":\"1 validation error detected: Value at 'plaintext' "
	    "failed to satisfy constraint\"}", ERR_BAD_REQUEST, 0, 0, 0,
	    "ValidationException", "1 validation error detected: Value at "
	    "'plaintext' failed to satisfy constraint" },
	{ "Throttling", 400, NULL, "{\"__type\":\"ThrottlingException\","
	    "\"message\":\"Rate exceeded\"}", ERR_THROTTLED, 1, 1, 0,
	    "ThrottlingException", "Rate exceeded" },
	{ "LimitExceeded", 400, NULL, "{\"__type\":"
	    "\"LimitExceededException\"}", ERR_THROTTLED, 1, 1, 0,
	    "LimitExceededException", "" },
	{ "429 no body", 429, NULL, "", ERR_THROTTLED, 1, 1, 0, "", "" },
	{ "DependencyTimeout", 503, NULL, "{\"__type\":"
	    "\"DependencyTimeoutException\"}", ERR_PROVIDER_UNAVAILABLE, 1, 0,
	    0, "DependencyTimeoutException", "" },
	{ "KMSInternal", 500, NULL, "{\"__type\":\"KMSInternalException\"}",
	    ERR_PROVIDER_UNAVAILABLE, 1, 0, 0, "KMSInternalException", "" },
	{ "InternalFailure header", 500, "InternalFailure", "",
	    ERR_PROVIDER_UNAVAILABLE, 1, 0, 0, "InternalFailure", "" },
	{ "502 html", 502, NULL, "<html><body><h1>502 Bad Gateway</h1></body>"
	    "</html>", ERR_PROVIDER_UNAVAILABLE, 1, 0, 0, "", "" },
	{ "503 garbage", 503, NULL, "\x01\x02garbage", ERR_PROVIDER_UNAVAILABLE,
	    1, 0, 0, "", "" },
	{ "408", 408, NULL, "", ERR_PROVIDER_UNAVAILABLE, 1, 0, 0, "", "" },
	{ "unknown code 400", 400, NULL, "{\"__type\":\"SomethingNew\"}",
	    ERR_PROVIDER_DENIED, 0, 0, 0, "SomethingNew", "" },
	{ "unknown code 500", 500, NULL, "{\"__type\":\"SomethingNew\"}",
	    ERR_PROVIDER_UNAVAILABLE, 1, 0, 0, "SomethingNew", "" },
	{ "404 no body", 404, NULL, "", ERR_PROVIDER_DENIED, 0, 0, 0, "", "" },
	{ "302", 302, NULL, "", ERR_PROVIDER_UNAVAILABLE, 0, 0, 0, "", "" },
	{ "truncated JSON, header", 400, "ThrottlingException",
	    "{\"__type\": \"Thrott", ERR_THROTTLED, 1, 1, 0,
	    "ThrottlingException", "" },
	{ "__type not a string", 400, NULL, "{\"__type\":5,\"code\":"
	    "\"NotFoundException\"}", ERR_PROVIDER_DENIED, 0, 0, 0,
	    "NotFoundException", "" },
	{ "__type junk", 500, NULL, "{\"__type\":\"<script>\"}",
	    ERR_PROVIDER_UNAVAILABLE, 1, 0, 0, "", "" },
	{ "code too long", 400, NULL, "{\"__type\":\"AAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	    ERR_PROVIDER_DENIED, 0, 0, 0, "", "" },
	{ "message keeps one line", 403, NULL, "{\"__type\":"
	    "\"InvalidSignatureException\",\"message\":\"The request signature "
	    "we calculated does not match.\\n\\nThe Canonical String for this "
	    "request should have been\\n'POST\\n/\\n\\nx-amz-security-token:"
	    TOKEN "'\"}", ERR_PROVIDER_DENIED, 0, 0, 0,
	    "InvalidSignatureException", "The request signature we calculated "
	    "does not match." },
	{ "message not ASCII", 400, NULL, "{\"__type\":\"NotFoundException\","
	    "\"message\":\"cl\\u00e9 \\u0007absente\"}", ERR_PROVIDER_DENIED, 0,
	    0, 0, "NotFoundException", "cl?? ?absente" },
	{ "XML entities", 400, NULL, "<ErrorResponse><Error><Code>AccessDenied"
	    "</Code><Message>a &lt;b&gt; &amp; &quot;c&quot; &bogus; d"
	    "</Message></Error></ErrorResponse>", ERR_PROVIDER_DENIED, 0, 0, 0,
	    "AccessDenied", "a <b> & \"c\" ?bogus; d" },
	{ "XML truncated", 403, "AccessDenied", "<ErrorResponse><Error><Code>"
	    "AccessDen", ERR_PROVIDER_DENIED, 0, 0, 0, "AccessDenied", "" },
	{ "XML code with markup", 500, NULL, "<Error><Code><b>X</b></Code>"
	    "</Error>", ERR_PROVIDER_UNAVAILABLE, 1, 0, 0, "", "" },
	{ "JSON array", 400, NULL, "[\"ThrottlingException\"]",
	    ERR_PROVIDER_DENIED, 0, 0, 0, "", "" },
};

START_TEST(test_errors)
{
	struct aws_error e;
	int r;

	memset(&e, 0x5a, sizeof(e));
	r = aws_parse_error(errs[_i].status, errs[_i].type,
	    errs[_i].type != NULL ? strlen(errs[_i].type) : 0, errs[_i].body,
	    strlen(errs[_i].body), &e);
	ck_assert_msg(r == errs[_i].err && e.err == r, "%s: err %d",
	    errs[_i].name, r);
	ck_assert_msg(e.retryable == errs[_i].retry &&
	    e.throttled == errs[_i].throttle &&
	    e.refresh_creds == errs[_i].refresh, "%s: flags %d %d %d",
	    errs[_i].name, e.retryable, e.throttled, e.refresh_creds);
	ck_assert_msg(strcmp(e.code, errs[_i].code) == 0, "%s: code '%s'",
	    errs[_i].name, e.code);
	ck_assert_msg(strcmp(e.message, errs[_i].message) == 0,
	    "%s: message '%s'", errs[_i].name, e.message);
	ck_assert_int_eq(e.status, errs[_i].status);
	assert_no_secret(e.message);
}
END_TEST

START_TEST(test_errors_limits)
{
	struct aws_error e;
	size_t n = 70000;
	char *b = malloc(n + 1);
	char msg[1100];
	int k;

	ck_assert_ptr_nonnull(b);
	/* over the body cap: classify by header and status alone */
	memset(b, ' ', n);
	memcpy(b, "{\"__type\":\"NotFoundException\"}", 30);
	ck_assert_int_eq(aws_parse_error(500, NULL, 0, b, n, &e),
	    ERR_PROVIDER_UNAVAILABLE);
	ck_assert_str_eq(e.code, "");
	/* long messages are cut */
	k = snprintf(msg, sizeof(msg), "{\"__type\":\"NotFoundException\","
	    "\"message\":\"");
	memset(msg + k, 'm', 1000);
	memcpy(msg + k + 1000, "\"}", 3);
	ck_assert_int_eq(aws_parse_error(400, NULL, 0, msg, strlen(msg), &e),
	    ERR_PROVIDER_DENIED);
	ck_assert_int_eq(strlen(e.message), AWS_ERROR_MSG_MAX - 1);
	/* long XML messages too */
	k = snprintf(msg, sizeof(msg), "<Error><Code>AccessDenied</Code>"
	    "<Message>");
	memset(msg + k, 'x', 900);
	strcpy(msg + k + 900, "</Message></Error>");
	ck_assert_int_eq(aws_parse_error(400, NULL, 0, msg, strlen(msg), &e),
	    ERR_PROVIDER_DENIED);
	ck_assert_int_eq(strlen(e.message), AWS_ERROR_MSG_MAX - 1);
	/* NULL everything */
	ck_assert_int_eq(aws_parse_error(0, NULL, 0, NULL, 0, &e),
	    ERR_PROVIDER_UNAVAILABLE);
	ck_assert_int_eq(e.retryable, 0);
	free(b);
}
END_TEST

/* ======== container and STS credentials ======== */

#define IMDS_OK "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : " \
	"\"2012-04-26T16:39:16Z\",\n  \"Type\" : \"AWS-HMAC\",\n  " \
	"\"AccessKeyId\" : \"ASIAIOSFODNN7EXAMPLE\",\n  \"SecretAccessKey\" " \
	": \"" SECRET "\",\n  \"Token\" : \"" TOKEN "\",\n  \"Expiration\" : " \
	"\"2017-05-17T15:09:54Z\"\n}"
#define ECS_OK "{\"AccessKeyId\":\"ASIAIOSFODNN7EXAMPLE\",\"Expiration\":" \
	"\"2023-06-13T14:12:03.123Z\",\"RoleArn\":\"arn:aws:iam::" \
	"123456789012:role/task\",\"SecretAccessKey\":\"" SECRET "\"," \
	"\"Token\":\"" TOKEN "\",\"AccountId\":\"123456789012\"}"

#define MOTO_IMDS "{\"AccessKeyId\": \"test-key\", \"SecretAccessKey\": " \
	"\"test-secret-key\", \"Token\": \"test-session-token\", " \
	"\"Expiration\": \"2026-11-29T05:18:26Z\"}"

START_TEST(test_container_ok)
{
	struct aws_creds c;

	aws_parse_creds_init(&c);
	ck_assert_int_eq(aws_parse_container_creds(IMDS_OK, strlen(IMDS_OK),
	    &c, errbuf, sizeof(errbuf)), 0);
	ck_assert(buf_is(&c.access_key_id, "ASIAIOSFODNN7EXAMPLE"));
	ck_assert(buf_is(&c.secret_access_key, SECRET));
	ck_assert(buf_is(&c.session_token, TOKEN));
	ck_assert_str_eq((const char *)c.secret_access_key.data, SECRET);
	ck_assert_int_eq(c.expiration, 1495033794);
	ck_assert_int_eq(aws_parse_container_creds(ECS_OK, strlen(ECS_OK), &c,
	    errbuf, sizeof(errbuf)), 0);
	ck_assert_int_eq(c.expiration, 1686665523);
	ck_assert(buf_is(&c.session_token, TOKEN));
	/* moto's IMDS hands out "test-key": unreserved characters pass */
	ck_assert_int_eq(aws_parse_container_creds(MOTO_IMDS,
	    strlen(MOTO_IMDS), &c, errbuf, sizeof(errbuf)), 0);
	ck_assert(buf_is(&c.access_key_id, "test-key"));
	aws_parse_creds_done(&c);
}
END_TEST

static const struct {
	const char *name;
	const char *body;
	int want;
} bad_container[] = {
	{ "code failure", "{\"Code\":\"Failure\",\"Message\":\"no role\"}",
	    ERR_BAD_REQUEST },
	{ "code not a string", "{\"Code\":1,\"AccessKeyId\":\"A\","
	    "\"SecretAccessKey\":\"" SECRET "\",\"Token\":\"t\","
	    "\"Expiration\":\"2017-05-17T15:09:54Z\"}", ERR_BAD_REQUEST },
	{ "missing token", "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\""
	    SECRET "\",\"Expiration\":\"2017-05-17T15:09:54Z\"}",
	    ERR_BAD_REQUEST },
	{ "empty token", "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\""
	    SECRET "\",\"Token\":\"\",\"Expiration\":\"2017-05-17T15:09:54Z\"}",
	    ERR_BAD_REQUEST },
	{ "missing expiration", "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
	    "\"" SECRET "\",\"Token\":\"" TOKEN "\"}", ERR_BAD_REQUEST },
	{ "expiration number", "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
	    "\"" SECRET "\",\"Token\":\"" TOKEN "\",\"Expiration\":1495033794}",
	    ERR_BAD_REQUEST },
	{ "expiration junk", "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
	    "\"" SECRET "\",\"Token\":\"" TOKEN "\",\"Expiration\":\"soon\"}",
	    ERR_BAD_REQUEST },
	{ "key id with slash", "{\"AccessKeyId\":\"A/B\",\"SecretAccessKey\":"
	    "\"" SECRET "\",\"Token\":\"" TOKEN "\",\"Expiration\":"
	    "\"2017-05-17T15:09:54Z\"}", ERR_BAD_REQUEST },
	{ "empty secret", "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"\","
	    "\"Token\":\"" TOKEN "\",\"Expiration\":\"2017-05-17T15:09:54Z\"}",
	    ERR_BAD_REQUEST },
	{ "token with newline", "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
	    "\"" SECRET "\",\"Token\":\"" TOKEN "\\r\\nX: 1\",\"Expiration\":"
	    "\"2017-05-17T15:09:54Z\"}", ERR_BAD_REQUEST },
	{ "secret wrong type", "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
	    "[\"" SECRET "\"],\"Token\":\"" TOKEN "\",\"Expiration\":"
	    "\"2017-05-17T15:09:54Z\"}", ERR_BAD_REQUEST },
	{ "truncated", "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" SECRET,
	    ERR_BAD_REQUEST },
	{ "array", "[]", ERR_BAD_REQUEST },
	{ "empty", "", ERR_BAD_REQUEST },
	{ "text", "Not Found", ERR_BAD_REQUEST },
};

START_TEST(test_container_bad)
{
	struct aws_creds c;
	int r;

	aws_parse_creds_init(&c);
	/* stale values must not survive a failed refresh */
	ck_assert_int_eq(buf_append_str(&c.access_key_id, "OLD"), 0);
	errbuf[0] = '\0';
	r = aws_parse_container_creds(bad_container[_i].body,
	    strlen(bad_container[_i].body), &c, errbuf, sizeof(errbuf));
	ck_assert_msg(r == bad_container[_i].want, "%s: got %d (%s)",
	    bad_container[_i].name, r, errbuf);
	ck_assert(errbuf[0] != '\0');
	ck_assert_int_eq(c.access_key_id.len, 0);
	ck_assert_int_eq(c.secret_access_key.len, 0);
	ck_assert_int_eq(c.session_token.len, 0);
	assert_no_secret(errbuf);
	aws_parse_creds_done(&c);
}
END_TEST

START_TEST(test_container_limits)
{
	struct aws_creds c;
	size_t n = 70000, k;
	char *b = malloc(n);

	ck_assert_ptr_nonnull(b);
	aws_parse_creds_init(&c);
	k = (size_t)sprintf(b, "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
	    "\"s\",\"Expiration\":\"2017-05-17T15:09:54Z\",\"Token\":\"");
	memset(b + k, 'T', 16385);
	k += 16385;
	k += (size_t)sprintf(b + k, "\"}");
	ck_assert_int_eq(aws_parse_container_creds(b, k, &c, errbuf,
	    sizeof(errbuf)), ERR_BAD_REQUEST);
	ck_assert_int_eq(aws_parse_container_creds(b, n, &c, errbuf,
	    sizeof(errbuf)), ERR_TOO_LARGE);
	aws_parse_creds_done(&c);
	free(b);
}
END_TEST

/* AWS's AssumeRoleWithWebIdentity documentation example, with the
 * planted secret and token. */
#define STS_OK "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts." \
	"amazonaws.com/doc/2011-06-15/\">\n" \
	"  <AssumeRoleWithWebIdentityResult>\n" \
	"    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGX" \
	"K6HB" \
	"56KR2A</SubjectFromWebIdentityToken>\n" \
	"    <Audience>client.5498841531868486423.1548@apps.example.com" \
	"</Audience>\n" \
	"    <AssumedRoleUser>\n" \
	"      <Arn>arn:aws:sts::123456789012:assumed-role/FederatedWeb" \
	"Identity" \
	"Role/app1</Arn>\n" \
	"      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app1</AssumedRoleId>\n" \
	"    </AssumedRoleUser>\n" \
	"    <Credentials>\n" \
	"      <SessionToken>" TOKEN "</SessionToken>\n" \
	"      <SecretAccessKey>" SECRET "</SecretAccessKey>\n" \
	"      <Expiration>2014-10-24T23:00:23Z</Expiration>\n" \
	"      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>\n" \
	"    </Credentials>\n" \
	"    <SourceIdentity>SourceIdentityValue</SourceIdentity>\n" \
	"    <Provider>www.amazon.com</Provider>\n" \
	"  </AssumeRoleWithWebIdentityResult>\n" \
	"  <ResponseMetadata>\n" \
	"    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>\n" \
	"  </ResponseMetadata>\n" \
	"</AssumeRoleWithWebIdentityResponse>\n"

START_TEST(test_sts_ok)
{
	const char *ent = "<AssumeRoleWithWebIdentityResult><Credentials>"
	    "<AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>a&amp;b"
	    "</SecretAccessKey><SessionToken><![CDATA[tok&en]]></SessionToken>"
	    "<Expiration>2014-10-24T23:00:23.000Z</Expiration></Credentials>"
	    "</AssumeRoleWithWebIdentityResult>";
	struct aws_creds c;

	aws_parse_creds_init(&c);
	ck_assert_int_eq(aws_parse_sts_creds(STS_OK, strlen(STS_OK), &c,
	    errbuf, sizeof(errbuf)), 0);
	ck_assert(buf_is(&c.access_key_id, "ASgeIAIOSFODNN7EXAMPLE"));
	ck_assert(buf_is(&c.secret_access_key, SECRET));
	ck_assert(buf_is(&c.session_token, TOKEN));
	ck_assert_int_eq(c.expiration, 1414191623);
	ck_assert_int_eq(aws_parse_sts_creds(ent, strlen(ent), &c, errbuf,
	    sizeof(errbuf)), 0);
	ck_assert(buf_is(&c.secret_access_key, "a&b"));
	ck_assert(buf_is(&c.session_token, "tok&en"));
	aws_parse_creds_done(&c);
}
END_TEST

#define STS_WRAP(inner) "<AssumeRoleWithWebIdentityResponse>" \
	"<AssumeRoleWithWebIdentityResult><Credentials>" inner \
	"</Credentials></AssumeRoleWithWebIdentityResult>" \
	"</AssumeRoleWithWebIdentityResponse>"
#define STS_AK "<AccessKeyId>ASIA1</AccessKeyId>"
#define STS_SK "<SecretAccessKey>" SECRET "</SecretAccessKey>"
#define STS_TK "<SessionToken>" TOKEN "</SessionToken>"
#define STS_EX "<Expiration>2014-10-24T23:00:23Z</Expiration>"

static const struct {
	const char *name;
	const char *body;
	int want;
} bad_sts[] = {
	{ "error response", STS_ERR, ERR_BAD_REQUEST },
	{ "no credentials", "<AssumeRoleWithWebIdentityResult>"
	    "</AssumeRoleWithWebIdentityResult>", ERR_BAD_REQUEST },
	{ "missing token", STS_WRAP(STS_AK STS_SK STS_EX), ERR_BAD_REQUEST },
	{ "missing key id", STS_WRAP(STS_SK STS_TK STS_EX), ERR_BAD_REQUEST },
	{ "missing expiration", STS_WRAP(STS_AK STS_SK STS_TK),
	    ERR_BAD_REQUEST },
	{ "bad expiration", STS_WRAP(STS_AK STS_SK STS_TK
	    "<Expiration>2014-13-24T23:00:23Z</Expiration>"), ERR_BAD_REQUEST },
	{ "unknown entity", STS_WRAP(STS_AK "<SecretAccessKey>" SECRET
	    "&nbsp;</SecretAccessKey>" STS_TK STS_EX), ERR_BAD_REQUEST },
	{ "markup in value", STS_WRAP(STS_AK "<SecretAccessKey><b>" SECRET
	    "</b></SecretAccessKey>" STS_TK STS_EX), ERR_BAD_REQUEST },
	{ "empty token", STS_WRAP(STS_AK STS_SK "<SessionToken></SessionToken>"
	    STS_EX), ERR_BAD_REQUEST },
	{ "space in token", STS_WRAP(STS_AK STS_SK "<SessionToken>" TOKEN " x"
	    "</SessionToken>" STS_EX), ERR_BAD_REQUEST },
	{ "truncated", "<AssumeRoleWithWebIdentityResult><Credentials>"
	    STS_AK STS_SK "<SessionToken>" TOKEN, ERR_BAD_REQUEST },
	{ "unclosed element", STS_WRAP(STS_AK STS_SK "<SessionToken>" TOKEN
	    STS_EX), ERR_BAD_REQUEST },
	{ "JSON", "{\"Credentials\":{}}", ERR_BAD_REQUEST },
	{ "empty", "", ERR_BAD_REQUEST },
};

START_TEST(test_sts_bad)
{
	struct aws_creds c;
	int r;

	aws_parse_creds_init(&c);
	ck_assert_int_eq(buf_append_str(&c.secret_access_key, "OLD"), 0);
	errbuf[0] = '\0';
	r = aws_parse_sts_creds(bad_sts[_i].body, strlen(bad_sts[_i].body),
	    &c, errbuf, sizeof(errbuf));
	ck_assert_msg(r == bad_sts[_i].want, "%s: got %d (%s)",
	    bad_sts[_i].name, r, errbuf);
	ck_assert(errbuf[0] != '\0');
	ck_assert_int_eq(c.secret_access_key.len, 0);
	ck_assert_int_eq(c.session_token.len, 0);
	assert_no_secret(errbuf);
	aws_parse_creds_done(&c);
}
END_TEST

START_TEST(test_sts_limits)
{
	struct aws_creds c;
	size_t k;
	char *b = malloc(70000);

	ck_assert_ptr_nonnull(b);
	aws_parse_creds_init(&c);
	memset(b, ' ', 70000);
	ck_assert_int_eq(aws_parse_sts_creds(b, 70000, &c, errbuf,
	    sizeof(errbuf)), ERR_TOO_LARGE);
	k = (size_t)sprintf(b, "<AssumeRoleWithWebIdentityResult><Credentials>"
	    STS_AK STS_SK STS_EX "<SessionToken>");
	memset(b + k, 'T', 16385);
	k += 16385;
	k += (size_t)sprintf(b + k, "</SessionToken></Credentials>"
	    "</AssumeRoleWithWebIdentityResult>");
	ck_assert_int_eq(aws_parse_sts_creds(b, k, &c, errbuf,
	    sizeof(errbuf)), ERR_TOO_LARGE);
	aws_parse_creds_done(&c);
	free(b);
}
END_TEST

/* ======== time ======== */

static const struct {
	const char *s;
	int ok;
	long long t;
} times[] = {
	{ "2015-08-30T12:36:00Z", 1, 1440938160 },
	{ "2015-08-30T12:36:00.123456Z", 1, 1440938160 },
	{ "2015-08-30t12:36:00z", 1, 1440938160 },
	{ "2015-08-30T14:36:00+02:00", 1, 1440938160 },
	{ "2015-08-30T07:06:00-05:30", 1, 1440938160 },
	{ "2016-02-29T00:00:00Z", 1, 1456704000 },
	{ "1970-01-01T00:00:00Z", 1, 0 },
	{ "2000-02-29T00:00:00Z", 1, 951782400 },
	{ "2015-02-29T00:00:00Z", 0, 0 },
	{ "1900-02-29T00:00:00Z", 0, 0 },
	{ "2015-13-01T00:00:00Z", 0, 0 },
	{ "2015-00-01T00:00:00Z", 0, 0 },
	{ "2015-04-31T00:00:00Z", 0, 0 },
	{ "2015-08-30T24:00:00Z", 0, 0 },
	{ "2015-08-30T23:60:00Z", 0, 0 },
	{ "2015-08-30 12:36:00Z", 0, 0 },
	{ "2015-08-30T12:36:00", 0, 0 },
	{ "2015-08-30T12:36:00.Z", 0, 0 },
	{ "2015-08-30T12:36:00.1234567890Z", 0, 0 },
	{ "2015-08-30T12:36:00Zjunk", 0, 0 },
	{ "2015-08-30T12:36:00+0200", 0, 0 },
	{ "2015-08-30T12:36:00+24:00", 0, 0 },
	{ "1969-12-31T23:59:59Z", 0, 0 },
	{ "15-08-30T12:36:00Z", 0, 0 },
	{ "2015-8-30T12:36:00Z", 0, 0 },
	{ "", 0, 0 },
};

START_TEST(test_time)
{
	time_t t = 42;
	int r = aws_parse_time(times[_i].s, strlen(times[_i].s), &t);

	if (times[_i].ok) {
		ck_assert_msg(r == 0, "%s refused", times[_i].s);
		ck_assert_msg((long long)t == times[_i].t, "%s -> %lld",
		    times[_i].s, (long long)t);
	} else {
		ck_assert_msg(r == ERR_BAD_REQUEST, "%s accepted", times[_i].s);
		ck_assert_int_eq(t, 42);	/* untouched on failure */
	}
}
END_TEST

/* ======== ARNs ======== */

static const struct {
	const char *arn;
	int want;
	const char *region;	/* NULL: no region */
} arns[] = {
	{ "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-"
	    "1234567890ab", 0, "us-east-1" },
	{ "arn:aws:kms:eu-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef"
	    "1234567890ab", 0, "eu-west-2" },
	{ "arn:aws:kms:us-west-2:111122223333:alias/ExampleAlias", 0,
	    "us-west-2" },
	{ "arn:aws-cn:kms:cn-north-1:111122223333:alias/a:b/c_d-e", 0,
	    "cn-north-1" },
	{ "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/k", 0,
	    "us-gov-west-1" },
	{ "1234abcd-12ab-34cd-56ef-1234567890ab", 0, NULL },
	{ "alias/ExampleAlias", 0, NULL },
	{ "arn:aws:s3:::bucket", ERR_BAD_REQUEST, NULL },
	{ "arn:aws:kms::111122223333:key/k", ERR_BAD_REQUEST, NULL },
	{ "arn:aws:kms:us-east-1:1111:key/k", ERR_BAD_REQUEST, NULL },
	{ "arn:aws:kms:us-east-1:11112222333a:key/k", ERR_BAD_REQUEST, NULL },
	{ "arn:aws:kms:us-east-1:111122223333:keys/k", ERR_BAD_REQUEST, NULL },
	{ "arn:aws:kms:us-east-1:111122223333:key/", ERR_BAD_REQUEST, NULL },
	{ "arn:aws:kms:us-east-1:111122223333:alias/", ERR_BAD_REQUEST, NULL },
	{ "arn:aws:kms:us-east-1:111122223333:key/a b", ERR_BAD_REQUEST,
	    NULL },
	{ "arn:aws:kms:US-EAST-1:111122223333:key/k", ERR_BAD_REQUEST, NULL },
	{ "arn:aws:kms:us-east-1.evil.com/:111122223333:key/k",
	    ERR_BAD_REQUEST, NULL },
	{ "arn:aws:kms:us-east-1", ERR_BAD_REQUEST, NULL },
	{ "arn::kms:us-east-1:111122223333:key/k", ERR_BAD_REQUEST, NULL },
	{ "arn:aws:iam:us-east-1:111122223333:key/k", ERR_BAD_REQUEST, NULL },
	{ "", ERR_BAD_REQUEST, NULL },
};

START_TEST(test_arn)
{
	struct str region = { "x", 1 };
	int r = aws_parse_arn_region(arns[_i].arn, &region);

	ck_assert_msg(r == arns[_i].want, "%s: %d", arns[_i].arn, r);
	if (arns[_i].region != NULL)
		ck_assert_msg(str_eq(region, arns[_i].region), "%s: %.*s",
		    arns[_i].arn, (int)region.len, region.p);
	else
		ck_assert(region.p == NULL && region.len == 0);
}
END_TEST

START_TEST(test_arn_limits)
{
	char *a = malloc(2100);
	struct str region;
	int k;

	ck_assert_ptr_nonnull(a);
	k = sprintf(a, "arn:aws:kms:us-east-1:111122223333:alias/");
	memset(a + k, 'a', 2048 - (size_t)k);
	a[2048] = '\0';
	ck_assert_int_eq(aws_parse_arn_region(a, &region), 0);
	ck_assert(str_eq(region, "us-east-1"));
	memset(a + k, 'a', 2049 - (size_t)k);
	a[2049] = '\0';
	ck_assert_int_eq(aws_parse_arn_region(a, &region), ERR_BAD_REQUEST);
	ck_assert_int_eq(aws_parse_arn_region(NULL, &region),
	    ERR_BAD_REQUEST);
	free(a);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("aws_parse");
	TCase *tc;

	tc = tcase_create("profile");
	tcase_add_test(tc, test_profile_credentials_file);
	tcase_add_test(tc, test_profile_config_file);
	tcase_add_test(tc, test_profile_precedence);
	tcase_add_test(tc, test_profile_other_sections);
	tcase_add_test(tc, test_profile_limits);
	tcase_add_loop_test(tc, test_profile_bad, 0, NELEM(bad_profiles));
	suite_add_tcase(s, tc);

	tc = tcase_create("kms-request");
	tcase_add_test(tc, test_request_encrypt_vector);
	tcase_add_test(tc, test_request_shapes);
	tcase_add_test(tc, test_request_bad);
	suite_add_tcase(s, tc);

	tc = tcase_create("kms-response");
	tcase_add_test(tc, test_response_ok);
	tcase_add_test(tc, test_response_shapes);
	tcase_add_test(tc, test_response_huge);
	tcase_add_loop_test(tc, test_response_bad, 0, NELEM(bad_responses));
	suite_add_tcase(s, tc);

	tc = tcase_create("error");
	tcase_add_loop_test(tc, test_errors, 0, NELEM(errs));
	tcase_add_test(tc, test_errors_limits);
	suite_add_tcase(s, tc);

	tc = tcase_create("credentials");
	tcase_add_test(tc, test_container_ok);
	tcase_add_loop_test(tc, test_container_bad, 0, NELEM(bad_container));
	tcase_add_test(tc, test_container_limits);
	tcase_add_test(tc, test_sts_ok);
	tcase_add_loop_test(tc, test_sts_bad, 0, NELEM(bad_sts));
	tcase_add_test(tc, test_sts_limits);
	tcase_add_loop_test(tc, test_time, 0, NELEM(times));
	suite_add_tcase(s, tc);

	tc = tcase_create("arn");
	tcase_add_loop_test(tc, test_arn, 0, NELEM(arns));
	tcase_add_test(tc, test_arn_limits);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
