/*
 * fuzz_gcp.c: the Google Cloud KMS provider's parsers of what the network
 * and the credentials file hand it (daemon/providers/gcp_parse.h,
 * gcp_auth.h).
 *
 * Input: a selector byte, a parameter byte, then the body.
 *   selector % 7:
 *   0  gcp_kms_encrypt_result (AAD sent when the parameter's bit 0 is set)
 *   1  gcp_kms_decrypt_result
 *   2  gcp_kms_error, status 400 + parameter (500 + p - 128 from 128 on)
 *   3  gcp_creds_parse (service-account or authorized-user JSON)
 *   4  gcp_token_parse
 *   5  gcp_token_error, status as for 2
 *   6  gcp_key_id_valid (up to the first NUL)
 *
 * Properties (the headers' contracts): documented return codes only;
 * outputs cleared on failure; messages NUL-terminated printable ASCII
 * (they reach logs); a token is "Bearer " + a token, NUL-terminated, with
 * a lifetime of 1..GCP_MAX_EXPIRES_IN seconds.
 */
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "gcp_auth.h"
#include "gcp_parse.h"

#define FUZZ_KEY_ID "projects/p/locations/global/keyRings/r/cryptoKeys/k"

static void
check_msg(const char *msg, size_t size)
{
	FUZZ_CHECK(memchr(msg, '\0', size) != NULL);
	for (const char *c = msg; *c != '\0'; c++)
		FUZZ_CHECK(*c >= 0x20 && *c < 0x7f);
}

static long
fuzz_status(uint8_t param)
{
	return param >= 128 ? 500 + (param - 128) : 400 + param;
}

static void
fuzz_result(int decrypt, uint8_t param, const uint8_t *p, size_t n)
{
	struct buf out;
	char msg[256] = "";
	int r;

	buf_init(&out, GCP_KMS_MAX_CIPHERTEXT);
	r = decrypt ? gcp_kms_decrypt_result(p, n, &out, msg, sizeof(msg)) :
	    gcp_kms_encrypt_result(p, n, FUZZ_KEY_ID, param & 1, &out, msg,
	    sizeof(msg));
	FUZZ_CHECK(r == 0 || r == ERR_PROVIDER_UNAVAILABLE || r == ERR_NOMEM ||
	    r == ERR_TOO_LARGE);
	check_msg(msg, sizeof(msg));
	if (r != 0)
		FUZZ_CHECK(out.len == 0 && msg[0] != '\0');
	buf_done(&out);
}

static void
fuzz_kms_error(uint8_t param, const uint8_t *p, size_t n)
{
	char msg[256] = "";
	int retry = -1, r;

	r = gcp_kms_error(fuzz_status(param), p, n, &retry, msg, sizeof(msg));
	FUZZ_CHECK(r == ERR_DECRYPTION_FAILED || r == ERR_PROVIDER_UNAVAILABLE ||
	    r == ERR_BAD_REQUEST || r == ERR_PROVIDER_DENIED ||
	    r == ERR_THROTTLED);
	FUZZ_CHECK(retry == 0 || retry == 1);
	if (r == ERR_DECRYPTION_FAILED || r == ERR_BAD_REQUEST ||
	    r == ERR_PROVIDER_DENIED)
		FUZZ_CHECK(!retry);
	check_msg(msg, sizeof(msg));
}

static void
fuzz_creds(const uint8_t *p, size_t n)
{
	struct gcp_creds c;
	char err[256] = "";
	int r;

	gcp_creds_init(&c);
	r = gcp_creds_parse((const char *)p, n, &c, err, sizeof(err));
	FUZZ_CHECK(r == 0 || r == GCP_CREDS_UNSUPPORTED ||
	    r == ERR_BAD_REQUEST || r == ERR_NOMEM || r == ERR_TOO_LARGE);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (r != 0)
		FUZZ_CHECK(err[0] != '\0');
	if (r == 0) {
		FUZZ_CHECK(c.token_uri != NULL);
		if (c.kind == GCP_CRED_SERVICE_ACCOUNT)
			FUZZ_CHECK(c.client_email != NULL && c.pkey != NULL);
		else
			FUZZ_CHECK(c.kind == GCP_CRED_AUTHORIZED_USER &&
			    c.refresh_token.len > 0);
	}
	gcp_creds_done(&c);
}

static void
fuzz_token(const uint8_t *p, size_t n)
{
	struct buf out;
	uint32_t exp = 0;
	char err[256] = "";
	int r;

	buf_init(&out, GCP_MAX_TOKEN + 16);
	r = gcp_token_parse(p, n, &out, &exp, err, sizeof(err));
	FUZZ_CHECK(r == 0 || r == ERR_PROVIDER_UNAVAILABLE || r == ERR_NOMEM);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (r == 0) {
		FUZZ_CHECK(out.len > 7 && memcmp(out.data, "Bearer ", 7) == 0);
		FUZZ_CHECK(out.cap > out.len && out.data[out.len] == '\0');
		FUZZ_CHECK(memchr(out.data, '\0', out.len) == NULL);
		FUZZ_CHECK(exp >= 1 && exp <= GCP_MAX_EXPIRES_IN);
	} else {
		FUZZ_CHECK(out.len == 0 && err[0] != '\0');
	}
	buf_done(&out);
}

static void
fuzz_token_error(uint8_t param, const uint8_t *p, size_t n)
{
	char msg[256] = "";
	int r = gcp_token_error(fuzz_status(param), p, n, msg, sizeof(msg));

	FUZZ_CHECK(r == ERR_PROVIDER_DENIED || r == ERR_THROTTLED ||
	    r == ERR_PROVIDER_UNAVAILABLE);
	check_msg(msg, sizeof(msg));
}

static void
fuzz_key_id(const uint8_t *p, size_t n)
{
	char id[GCP_MAX_KEY_ID + 64];

	if (n >= sizeof(id))
		n = sizeof(id) - 1;
	memcpy(id, p, n);
	id[n] = '\0';
	if (gcp_key_id_valid(id)) {
		/* It goes into a URL path as is: no dot segments. */
		size_t k = strlen(id);

		FUZZ_CHECK(strncmp(id, "projects/", 9) == 0);
		FUZZ_CHECK(strstr(id, "/../") == NULL &&
		    strstr(id, "/./") == NULL && strstr(id, "//") == NULL);
		FUZZ_CHECK(!(k >= 3 && strcmp(id + k - 3, "/..") == 0) &&
		    !(k >= 2 && strcmp(id + k - 2, "/.") == 0));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t sel = fuzz_byte(&in), param = fuzz_byte(&in);

	switch (sel % 7) {
	case 0: fuzz_result(0, param, in.p, in.n); break;
	case 1: fuzz_result(1, param, in.p, in.n); break;
	case 2: fuzz_kms_error(param, in.p, in.n); break;
	case 3: fuzz_creds(in.p, in.n); break;
	case 4: fuzz_token(in.p, in.n); break;
	case 5: fuzz_token_error(param, in.p, in.n); break;
	default: fuzz_key_id(in.p, in.n); break;
	}
	return 0;
}
