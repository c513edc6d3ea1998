/*
 * test.c: kms_encrypted's insecure test provider, byte for byte.
 *
 * Key ids `insecure-test-key` and `insecure-test-key/encrypt` (DESIGN 3.1).
 * There is no key: the "ciphertext" carries the plaintext in base64, so this
 * provider exists only for tests and for reading data written by
 * applications that used the gem's test key (DESIGN 3.2, PROVIDERS E5):
 *
 *   PREFIX ':' strict_base64(plaintext) [ ':' Base64.encode64(context JSON) ]
 *
 * PREFIX is the 11 bytes Base64.decode64("insecure+data+A") gives; the
 * context part is Ruby's 60-column form with a "\n" after every line, and
 * is absent exactly when the call has no context. Unwrap recomputes the
 * context part from the call and compares it exactly, as the gem does.
 * The /encrypt key wraps but never unwraps.
 *
 * Both operations complete before start() returns. Messages never carry
 * input bytes: the input holds the plaintext.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "err.h"
#include "provider.h"

#define TEST_KEY_ID "insecure-test-key"
#define TEST_KEY_ID_ENCRYPT "insecure-test-key/encrypt"

/* Base64.decode64("insecure+data+A"); no byte is ':'. */
static const uint8_t test_prefix[] = {
	0x8a, 0x7b, 0x1e, 0x72, 0xea, 0xde, 0xf9, 0xd6, 0xad, 0x6b, 0xe0,
};

#define TEST_PREFIX_LEN sizeof(test_prefix)

struct test_state {
	int encrypt_only;
};

static int
test_match(const char *key_id)
{
	return strcmp(key_id, TEST_KEY_ID) == 0 ||
	    strcmp(key_id, TEST_KEY_ID_ENCRYPT) == 0;
}

static int
test_open(const char *key_id, const struct prov_env *env, void **ret_state,
    char *err, size_t errlen)
{
	struct test_state *st;

	(void)env;
	if (!test_match(key_id)) {
		snprintf(err, errlen, "not a test key id (want %s or %s)",
		    TEST_KEY_ID, TEST_KEY_ID_ENCRYPT);
		return ERR_BAD_REQUEST;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return ERR_NOMEM;
	}
	st->encrypt_only = strcmp(key_id, TEST_KEY_ID_ENCRYPT) == 0;
	*ret_state = st;
	return 0;
}

static void
test_close(void *state)
{
	free(state);
}

static void
test_succeed(struct prov_call *call)
{
	call->err = 0;
	call->msg[0] = '\0';
	call->done(call);
}

/* Whether the call carries a context. A present context always comes with
 * its JSON ("{}" at least); JSON missing is a caller bug, not a mismatch. */
static int
test_context(const struct prov_call *call, int *ret_present)
{
	*ret_present = call->ctx != NULL && call->ctx->present;
	if (*ret_present && (call->ctx_json == NULL || call->ctx_json_len == 0))
		return ERR_INTERNAL;
	return 0;
}

/* Append the third part: Ruby's Base64.encode64 of the context JSON. */
static int
test_context_part(const struct prov_call *call, struct buf *out)
{
	return b64_encode_lines(out, call->ctx_json, call->ctx_json_len);
}

static void
test_wrap(struct prov_call *call)
{
	int present, r;

	if (test_context(call, &present) != 0) {
		provider_fail(call, ERR_INTERNAL, "context without its JSON");
		return;
	}
	if ((r = buf_append(&call->out, test_prefix, TEST_PREFIX_LEN)) != 0 ||
	    (r = buf_append_byte(&call->out, ':')) != 0 ||
	    (r = b64_encode(&call->out, call->in, call->in_len)) != 0)
		goto fail;
	if (present && ((r = buf_append_byte(&call->out, ':')) != 0 ||
	    (r = test_context_part(call, &call->out)) != 0))
		goto fail;
	test_succeed(call);
	return;
fail:
	provider_fail(call, r, r == ERR_TOO_LARGE ?
	    "test ciphertext over the output limit" : "out of memory");
}

static void
test_unwrap(struct test_state *st, struct prov_call *call)
{
	const uint8_t *in = call->in, *end = call->in + call->in_len;
	const uint8_t *data, *data_end, *ctx_part = NULL;
	size_t ctx_part_len = 0;
	struct buf want;
	int present, r, same;

	if (st->encrypt_only) {
		provider_fail(call, ERR_DECRYPTION_FAILED,
		    "encrypt-only test key");
		return;
	}
	if (test_context(call, &present) != 0) {
		provider_fail(call, ERR_INTERNAL, "context without its JSON");
		return;
	}
	if (call->in_len < TEST_PREFIX_LEN + 1 ||
	    memcmp(in, test_prefix, TEST_PREFIX_LEN) != 0 ||
	    in[TEST_PREFIX_LEN] != ':') {
		provider_fail(call, ERR_DECRYPTION_FAILED,
		    "not a test-provider ciphertext (bad prefix)");
		return;
	}
	data = in + TEST_PREFIX_LEN + 1;
	data_end = memchr(data, ':', (size_t)(end - data));
	if (data_end != NULL) {
		ctx_part = data_end + 1;
		ctx_part_len = (size_t)(end - ctx_part);
	} else {
		data_end = end;
	}

	/* The gem compares the stored context part with the one it would
	 * write; absent must meet absent. */
	if (present != (ctx_part != NULL)) {
		provider_fail(call, ERR_DECRYPTION_FAILED, present ?
		    "context given but the ciphertext has none" :
		    "ciphertext bound to a context but none given");
		return;
	}
	if (present) {
		/* Bounded by what it must equal; +2 leaves the encoder
		 * its scratch byte, so a longer recomputation fails as
		 * too large. */
		buf_init(&want, ctx_part_len + 2);
		r = test_context_part(call, &want);
		same = r == 0 && want.len == ctx_part_len &&
		    memcmp(want.data, ctx_part, ctx_part_len) == 0;
		buf_done(&want);
		if (r == ERR_NOMEM) {
			provider_fail(call, r, "out of memory");
			return;
		}
		if (!same) {
			provider_fail(call, ERR_DECRYPTION_FAILED,
			    "context does not match the ciphertext");
			return;
		}
	}

	r = b64_decode(&call->out, (const char *)data,
	    (size_t)(data_end - data));
	if (r == ERR_BAD_REQUEST) {
		provider_fail(call, ERR_DECRYPTION_FAILED,
		    "test ciphertext is not strict base64");
		return;
	}
	if (r != 0) {
		provider_fail(call, r, r == ERR_TOO_LARGE ?
		    "plaintext over the output limit" : "out of memory");
		return;
	}
	test_succeed(call);
}

static void
test_start(void *state, struct prov_call *call)
{
	if (call->op == PROV_WRAP)
		test_wrap(call);
	else if (call->op == PROV_UNWRAP)
		test_unwrap(state, call);
	else
		provider_fail(call, ERR_INTERNAL, "unknown provider op");
}

const struct provider_ops provider_test = {
	.name = "test",
	.match = test_match,
	.open = test_open,
	.close = test_close,
	.start = test_start,
	.cancel = NULL,
};
