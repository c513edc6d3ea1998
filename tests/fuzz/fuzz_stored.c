/*
 * fuzz_stored.c: the stored ciphertext string and the provider blobs it
 * carries (test and local providers).
 *
 * Input: one control byte, then the string.
 *   bits 0-1  the call's context: none, {}, a kms_encrypted-style model
 *             context, or a one-pair context
 *   bit 2     the context style (ActiveSupport or plain)
 *   bit 3     raw: the rest is the provider blob itself (what stored_parse
 *             would have produced), so the fuzzer reaches the providers'
 *             unwrap without having to find valid base64 first
 *
 * Properties:
 * - stored_version and stored_parse agree; every defect is
 *   ERR_DECRYPTION_FAILED; a string that parses formats back to exactly
 *   itself (strict base64 is canonical), version 1..STORED_MAX_VERSION;
 * - each provider calls done exactly once, fails with its documented
 *   errors and leaves no partial output on failure;
 * - a test blob that unwraps wraps back to the same bytes; the encrypt-only
 *   test key never unwraps;
 * - a local blob that unwraps (only seeds made with this fixed key can)
 *   unwraps again after a fresh wrap of its plaintext; any bytes wrapped by
 *   the local key unwrap to themselves under the same context.
 *
 * The local key is a fixed 32-byte file in a private temporary state_dir,
 * written before the first input, so checked-in local seeds stay valid.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fuzz.h"
#include "provider.h"
#include "stored.h"

#define FUZZ_LOCAL_KEY_ID "local/fuzz"

static char state_dir[64];
static char key_path[128];
static void *test_state, *test_enc_state, *local_state;

static void
fuzz_cleanup(void)
{
	provider_test.close(test_state);
	provider_test.close(test_enc_state);
	provider_local.close(local_state);
	unlink(key_path);
	rmdir(state_dir);
}

static void *
fuzz_open(const struct provider_ops *ops, const char *key_id)
{
	struct prov_env env = { .state_dir = state_dir };
	char err[256] = "";
	void *st = NULL;

	if (ops->open(key_id, &env, &st, err, sizeof(err)) != 0) {
		fprintf(stderr, "open %s: %s\n", key_id, err);
		abort();
	}
	return st;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t key[32];
	FILE *fp;

	(void)argc;
	(void)argv;
	snprintf(state_dir, sizeof(state_dir), "/tmp/kmsd-fuzz-XXXXXX");
	FUZZ_CHECK(mkdtemp(state_dir) != NULL);
	snprintf(key_path, sizeof(key_path), "%s/local-fuzz.key", state_dir);
	/* Bytes 0..31: tests/fuzz/make_corpus.py wraps seeds with it. */
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	FUZZ_CHECK((fp = fopen(key_path, "wxe")) != NULL);
	FUZZ_CHECK(fchmod(fileno(fp), 0600) == 0);
	FUZZ_CHECK(fwrite(key, 1, sizeof(key), fp) == sizeof(key));
	FUZZ_CHECK(fclose(fp) == 0);
	test_state = fuzz_open(&provider_test, "insecure-test-key");
	test_enc_state = fuzz_open(&provider_test, "insecure-test-key/encrypt");
	local_state = fuzz_open(&provider_local, FUZZ_LOCAL_KEY_ID);
	atexit(fuzz_cleanup);
	return 0;
}

struct fcall {
	struct prov_call call;
	int done;
};

static void
fcall_done(struct prov_call *call)
{
	struct fcall *f = call->arg;

	f->done++;
}

/* Run one provider call to completion; the caller frees f->call.out. */
static int
fcall_run(struct fcall *f, const struct provider_ops *ops, void *st,
    enum prov_op op, const uint8_t *in, size_t in_len,
    const struct context *ctx, const struct buf *json)
{
	memset(f, 0, sizeof(*f));
	f->call.op = op;
	f->call.in = in;
	f->call.in_len = in_len;
	f->call.ctx = ctx;
	if (ctx->present) {
		f->call.ctx_json = json->data;
		f->call.ctx_json_len = json->len;
	}
	buf_init(&f->call.out, PROV_MAX_OUT);
	f->call.done = fcall_done;
	f->call.arg = f;
	ops->start(st, &f->call);
	FUZZ_CHECK(f->done == 1);
	FUZZ_CHECK(memchr(f->call.msg, '\0', sizeof(f->call.msg)) != NULL);
	if (f->call.err != 0)
		FUZZ_CHECK(f->call.out.len == 0);
	return f->call.err;
}

static void
fuzz_test_provider(const uint8_t *blob, size_t n, const struct context *ctx,
    const struct buf *json)
{
	struct fcall u, w;
	int r;

	r = fcall_run(&u, &provider_test, test_enc_state, PROV_UNWRAP, blob, n,
	    ctx, json);
	FUZZ_CHECK(r == ERR_DECRYPTION_FAILED);
	buf_done(&u.call.out);

	r = fcall_run(&u, &provider_test, test_state, PROV_UNWRAP, blob, n, ctx,
	    json);
	FUZZ_CHECK(r == 0 || r == ERR_DECRYPTION_FAILED || r == ERR_TOO_LARGE);
	if (r == 0) {
		/* The format has one spelling: wrapping gives the blob. */
		r = fcall_run(&w, &provider_test, test_state, PROV_WRAP,
		    u.call.out.data, u.call.out.len, ctx, json);
		FUZZ_CHECK(r == 0 || r == ERR_TOO_LARGE);
		if (r == 0)
			FUZZ_CHECK(w.call.out.len == n &&
			    memcmp(w.call.out.data, blob, n) == 0);
		buf_done(&w.call.out);
	}
	buf_done(&u.call.out);
}

/* Wrap in[0..n) with the local key and unwrap it; must give in back. */
static void
local_roundtrip(const uint8_t *in, size_t n, const struct context *ctx,
    const struct buf *json)
{
	struct fcall w, u;
	int r;

	r = fcall_run(&w, &provider_local, local_state, PROV_WRAP, in, n, ctx,
	    json);
	FUZZ_CHECK(r == 0 || r == ERR_TOO_LARGE);
	if (r == 0) {
		FUZZ_CHECK(w.call.out.len == n + 1 + 12 + 16);
		r = fcall_run(&u, &provider_local, local_state, PROV_UNWRAP,
		    w.call.out.data, w.call.out.len, ctx, json);
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(u.call.out.len == n &&
		    (n == 0 || memcmp(u.call.out.data, in, n) == 0));
		buf_done(&u.call.out);
	}
	buf_done(&w.call.out);
}

static void
fuzz_local_provider(const uint8_t *blob, size_t n, const struct context *ctx,
    const struct buf *json)
{
	struct fcall u;
	int r;

	r = fcall_run(&u, &provider_local, local_state, PROV_UNWRAP, blob, n,
	    ctx, json);
	FUZZ_CHECK(r == 0 || r == ERR_DECRYPTION_FAILED || r == ERR_TOO_LARGE);
	if (r == 0) {
		FUZZ_CHECK(u.call.out.len + 1 + 12 + 16 == n);
		local_roundtrip(u.call.out.data, u.call.out.len, ctx, json);
	}
	buf_done(&u.call.out);
	/* Keep it cheap: the round trip of the blob's own bytes. */
	if (n <= 4096)
		local_roundtrip(blob, n, ctx, json);
}

static void
fuzz_context(uint8_t which, struct context *c)
{
	memset(c, 0, sizeof(*c));
	switch (which & 3) {
	case 0:
		break;
	case 1:
		c->present = 1;
		break;
	case 2:
		c->present = 1;
		c->n = 2;
		c->pairs[0].k = (struct str){ "model_name", 10 };
		c->pairs[0].v = (struct str){ "User", 4 };
		c->pairs[1].k = (struct str){ "model_id", 8 };
		c->pairs[1].v = (struct str){ "1", 1 };
		break;
	default:
		c->present = 1;
		c->n = 1;
		c->pairs[0].k = (struct str){ "user_id", 7 };
		c->pairs[0].v = (struct str){ "<42> & \xe2\x80\xa8", 10 };
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t ctl = fuzz_byte(&in);
	struct context ctx;
	struct buf json, blob, again;
	const char *s = (const char *)in.p;
	size_t n = in.n;
	uint32_t v1 = 0, v2 = 0;
	int r1, r2;

	fuzz_context(ctl, &ctx);
	buf_init(&json, 4096);
	FUZZ_CHECK(context_json(&ctx, (ctl & 4) ? CTX_PLAIN : CTX_ACTIVESUPPORT,
	    &json) == 0);
	if (ctl & 8) {
		fuzz_test_provider(in.p, n, &ctx, &json);
		fuzz_local_provider(in.p, n, &ctx, &json);
		buf_done(&json);
		return 0;
	}

	/* The daemon's bounds (daemon/ops.c): the blob buffer holds at most
	 * MSG_MAX_CIPHERTEXT bytes. */
	buf_init(&blob, 16384);
	r1 = stored_version(s, n, &v1);
	r2 = stored_parse(s, n, &v2, &blob);
	FUZZ_CHECK(r1 == 0 || r1 == ERR_DECRYPTION_FAILED);
	FUZZ_CHECK(r2 == 0 || r2 == ERR_DECRYPTION_FAILED || r2 == ERR_NOMEM);
	if (r1 != 0)
		FUZZ_CHECK(r2 != 0);
	if (r2 != 0) {
		FUZZ_CHECK(blob.len == 0);
	} else {
		FUZZ_CHECK(v1 == v2 && v2 >= 1 && v2 <= STORED_MAX_VERSION);
		FUZZ_CHECK(blob.len > 0);
		buf_init(&again, n + 8);
		FUZZ_CHECK(stored_format(v2, blob.data, blob.len, &again) == 0);
		FUZZ_CHECK(again.len == n && memcmp(again.data, s, n) == 0);
		buf_done(&again);
		fuzz_test_provider(blob.data, blob.len, &ctx, &json);
		fuzz_local_provider(blob.data, blob.len, &ctx, &json);
	}
	buf_done(&blob);
	buf_done(&json);
	return 0;
}
