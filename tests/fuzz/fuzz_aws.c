/*
 * fuzz_aws.c: the AWS provider's parsers of what the network and the
 * shared files hand it (daemon/providers/aws_parse.h).
 *
 * Input: a selector byte, a parameter byte, then the body.
 *   selector % 7:
 *   0  aws_parse_error: status from the parameter (400 + p, or 500 + p
 *      when p >= 128: the 4xx and 5xx ranges plus odd values); with the
 *      parameter's low bit set the body up to its first '\n' is the
 *      x-amzn-ErrorType header and the rest the body
 *   1  aws_parse_kms_response for op = parameter % 3
 *   2  aws_parse_container_creds (IMDS / ECS JSON)
 *   3  aws_parse_sts_creds (STS XML)
 *   4  aws_parse_profile: config then credentials kind over the same
 *      bytes into one profile, profile "default" or "dev" (parameter bit 0)
 *   5  aws_parse_time
 *   6  aws_parse_arn_region (up to the first NUL)
 *
 * Properties (the header's contracts): documented return codes only;
 * outputs left empty on failure; credentials set together and
 * NUL-terminated; KMS results within the API's size limits; an error's
 * code an identifier and its message one line of printable ASCII, both
 * NUL-terminated inside their arrays; err messages NUL-terminated.
 */
#include <stdint.h>
#include <string.h>

#include "aws_parse.h"
#include "err.h"
#include "fuzz.h"

static int
is_cstr(const struct buf *b)
{
	/* Set values are NUL-terminated just past len. */
	return b->len == 0 || (b->cap > b->len && b->data[b->len] == '\0');
}

static void
check_creds_ok(const struct aws_creds *c)
{
	FUZZ_CHECK(c->access_key_id.len > 0 && is_cstr(&c->access_key_id));
	FUZZ_CHECK(c->secret_access_key.len > 0 &&
	    is_cstr(&c->secret_access_key));
	FUZZ_CHECK(is_cstr(&c->session_token));
}

static void
check_creds_empty(const struct aws_creds *c)
{
	FUZZ_CHECK(c->access_key_id.len == 0 &&
	    c->secret_access_key.len == 0 && c->session_token.len == 0);
}

static void
fuzz_error(uint8_t param, const char *p, size_t n)
{
	struct aws_error e;
	const char *type = NULL, *body = p;
	size_t type_len = 0, len = n;
	long status = param >= 128 ? 500 + (param - 128) : 400 + param;
	int r;

	if (param & 1) {
		const char *nl = memchr(p, '\n', n);

		type = p;
		type_len = nl != NULL ? (size_t)(nl - p) : n;
		body = nl != NULL ? nl + 1 : p + n;
		len = n - (size_t)(body - p);
	}
	r = aws_parse_error(status, type, type_len, body, len, &e);
	FUZZ_CHECK(r == e.err && e.status == status);
	FUZZ_CHECK(r == ERR_DECRYPTION_FAILED || r == ERR_PROVIDER_DENIED ||
	    r == ERR_BAD_REQUEST || r == ERR_THROTTLED ||
	    r == ERR_PROVIDER_UNAVAILABLE);
	FUZZ_CHECK(memchr(e.code, '\0', sizeof(e.code)) != NULL);
	FUZZ_CHECK(memchr(e.message, '\0', sizeof(e.message)) != NULL);
	for (const char *c = e.code; *c != '\0'; c++)
		FUZZ_CHECK((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		    (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' ||
		    *c == '-');
	for (const char *c = e.message; *c != '\0'; c++)
		FUZZ_CHECK(*c >= 0x20 && *c < 0x7f);
	if (e.throttled)
		FUZZ_CHECK(e.retryable);
	if (r == ERR_DECRYPTION_FAILED || r == ERR_BAD_REQUEST)
		FUZZ_CHECK(!e.retryable);
}

static void
fuzz_kms_response(uint8_t param, const char *p, size_t n)
{
	enum aws_kms_op op = (enum aws_kms_op)(param % 3);
	struct aws_kms_result res;
	char err[256] = "";
	int r;

	aws_parse_kms_result_init(&res);
	r = aws_parse_kms_response(op, p, n, &res, err, sizeof(err));
	FUZZ_CHECK(r == 0 || r == ERR_BAD_REQUEST || r == ERR_TOO_LARGE ||
	    r == ERR_NOMEM);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (r != 0) {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(res.data.len == 0 && res.key_id.len == 0 &&
		    res.source_key_id.len == 0);
	} else if (op == AWS_KMS_DECRYPT) {
		FUZZ_CHECK(res.data.len >= 1 &&
		    res.data.len <= AWS_KMS_MAX_PLAINTEXT);
	} else {
		FUZZ_CHECK(res.data.len >= 1 &&
		    res.data.len <= AWS_KMS_MAX_CIPHERTEXT);
	}
	aws_parse_kms_result_done(&res);
}

static void
fuzz_creds(int sts, const char *p, size_t n)
{
	struct aws_creds c;
	char err[256] = "";
	int r;

	aws_parse_creds_init(&c);
	r = sts ? aws_parse_sts_creds(p, n, &c, err, sizeof(err)) :
	    aws_parse_container_creds(p, n, &c, err, sizeof(err));
	FUZZ_CHECK(r == 0 || r == ERR_BAD_REQUEST || r == ERR_TOO_LARGE ||
	    r == ERR_NOMEM);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (r == 0) {
		check_creds_ok(&c);
	} else {
		FUZZ_CHECK(err[0] != '\0');
		check_creds_empty(&c);
	}
	aws_parse_creds_done(&c);
}

static void
fuzz_profile(uint8_t param, const char *p, size_t n)
{
	const char *name = (param & 1) ? "dev" : NULL;
	struct aws_profile prof;
	char err[256] = "";
	int r;

	aws_parse_profile_init(&prof);
	r = aws_parse_profile(p, n, AWS_FILE_CONFIG, name, &prof, err,
	    sizeof(err));
	FUZZ_CHECK(r == 0 || r == ERR_BAD_REQUEST || r == ERR_TOO_LARGE ||
	    r == ERR_NOMEM);
	FUZZ_CHECK(r == 0 || err[0] != '\0');
	if (r == 0) {
		err[0] = '\0';
		r = aws_parse_profile(p, n, AWS_FILE_CREDENTIALS, name, &prof,
		    err, sizeof(err));
		FUZZ_CHECK(r == 0 || r == ERR_BAD_REQUEST ||
		    r == ERR_TOO_LARGE || r == ERR_NOMEM);
		FUZZ_CHECK(r == 0 || err[0] != '\0');
	}
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	FUZZ_CHECK(is_cstr(&prof.creds.access_key_id) &&
	    is_cstr(&prof.creds.secret_access_key) &&
	    is_cstr(&prof.creds.session_token) && is_cstr(&prof.region) &&
	    is_cstr(&prof.role_arn) && is_cstr(&prof.web_identity_token_file) &&
	    is_cstr(&prof.role_session_name));
	if (r == 0)
		FUZZ_CHECK((prof.creds.access_key_id.len > 0) ==
		    (prof.creds.secret_access_key.len > 0));
	aws_parse_profile_done(&prof);
}

static void
fuzz_time(const char *p, size_t n)
{
	time_t t = 12345;
	int r = aws_parse_time(p, n, &t);

	FUZZ_CHECK(r == 0 || r == ERR_BAD_REQUEST);
}

static void
fuzz_arn(const char *p, size_t n)
{
	char id[AWS_KMS_MAX_KEY_ID + 64];
	struct str region = { "x", 1 };
	int r;

	if (n >= sizeof(id))
		n = sizeof(id) - 1;
	memcpy(id, p, n);
	id[n] = '\0';
	r = aws_parse_arn_region(id, &region);
	FUZZ_CHECK(r == 0 || r == ERR_BAD_REQUEST);
	if (r == 0 && region.p != NULL) {
		FUZZ_CHECK(region.p >= id && region.len > 0 &&
		    region.p + region.len <= id + strlen(id));
		FUZZ_CHECK(strncmp(id, "arn:", 4) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t sel = fuzz_byte(&in), param = fuzz_byte(&in);
	const char *p = (const char *)in.p;
	size_t n = in.n;

	switch (sel % 7) {
	case 0: fuzz_error(param, p, n); break;
	case 1: fuzz_kms_response(param, p, n); break;
	case 2: fuzz_creds(0, p, n); break;
	case 3: fuzz_creds(1, p, n); break;
	case 4: fuzz_profile(param, p, n); break;
	case 5: fuzz_time(p, n); break;
	default: fuzz_arn(p, n); break;
	}
	return 0;
}
