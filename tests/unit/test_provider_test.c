/*
 * test_provider_test.c: the insecure test provider against the vectors the
 * kms_encrypted gem produced, plus every way its unwrap must refuse.
 *
 * The context JSON is taken from the vectors' bytes, not from context_json,
 * so this suite checks the provider alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "b64.h"
#include "err.h"
#include "provider.h"

#define VECTORS TEST_SRCDIR "/../vectors/kms_encrypted_test_provider.json"

static const uint8_t prefix[] = {
	0x8a, 0x7b, 0x1e, 0x72, 0xea, 0xde, 0xf9, 0xd6, 0xad, 0x6b, 0xe0,
};

static const uint8_t key32[32] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};

#define CTX_A "{\"model_id\":\"1\",\"model_name\":\"User\"}"

/* One provider call and the context it points at. */
struct tcall {
	struct context ctx;
	struct prov_call call;
	int done;
};

static void
tcall_done(struct prov_call *call)
{
	struct tcall *t = call->arg;

	t->done++;
}

/* json NULL: no context. Runs synchronously; checks done ran once and
 * that a failure left no output. The caller frees t->call.out. */
static int
tcall_run(struct tcall *t, void *state, enum prov_op op, const void *in,
    size_t in_len, const void *json, size_t json_len)
{
	memset(t, 0, sizeof(*t));
	t->ctx.present = json != NULL;
	t->call.op = op;
	t->call.in = in;
	t->call.in_len = in_len;
	t->call.ctx = &t->ctx;
	t->call.ctx_json = json;
	t->call.ctx_json_len = json_len;
	buf_init(&t->call.out, PROV_MAX_OUT);
	t->call.done = tcall_done;
	t->call.arg = t;
	provider_test.start(state, &t->call);
	ck_assert_int_eq(t->done, 1);
	if (t->call.err != 0) {
		ck_assert_uint_eq(t->call.out.len, 0);
		ck_assert_str_ne(t->call.msg, "");
	}
	return t->call.err;
}

static void *
open_key(const char *key_id)
{
	void *state = NULL;
	char err[256] = "";

	ck_assert_msg(provider_test.open(key_id, NULL, &state, err,
	    sizeof(err)) == 0, "open %s: %s", key_id, err);
	ck_assert_ptr_nonnull(state);
	return state;
}

static size_t
hex_decode(const char *hex, uint8_t **ret)
{
	size_t n = strlen(hex) / 2;
	uint8_t *p = malloc(n + 1);

	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(strlen(hex) % 2, 0);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		p[i] = (uint8_t)v;
	}
	*ret = p;
	return n;
}

/* Wrap then unwrap under one context; the wrap must give want exactly. */
static void
check_vector(void *state, const char *name, const uint8_t *pt, size_t pt_len,
    const uint8_t *want, size_t want_len, const char *json, size_t json_len)
{
	struct tcall t;

	ck_assert_msg(tcall_run(&t, state, PROV_WRAP, pt, pt_len, json,
	    json_len) == 0, "%s: wrap: %s", name, t.call.msg);
	ck_assert_msg(t.call.out.len == want_len &&
	    memcmp(t.call.out.data, want, want_len) == 0,
	    "%s: wrap differs from the gem's bytes", name);
	buf_done(&t.call.out);

	ck_assert_msg(tcall_run(&t, state, PROV_UNWRAP, want, want_len, json,
	    json_len) == 0, "%s: unwrap: %s", name, t.call.msg);
	ck_assert_msg(t.call.out.len == pt_len &&
	    memcmp(t.call.out.data, pt, pt_len) == 0,
	    "%s: unwrap gave another plaintext", name);
	buf_done(&t.call.out);

	/* Absent and present contexts never meet. */
	if (json != NULL) {
		ck_assert_int_eq(tcall_run(&t, state, PROV_UNWRAP, want,
		    want_len, NULL, 0), ERR_DECRYPTION_FAILED);
		ck_assert_int_eq(tcall_run(&t, state, PROV_UNWRAP, want,
		    want_len, "{}", 2), ERR_DECRYPTION_FAILED);
	} else {
		ck_assert_int_eq(tcall_run(&t, state, PROV_UNWRAP, want,
		    want_len, "{}", 2), ERR_DECRYPTION_FAILED);
		ck_assert_int_eq(tcall_run(&t, state, PROV_UNWRAP, want,
		    want_len, CTX_A, strlen(CTX_A)), ERR_DECRYPTION_FAILED);
	}
	buf_done(&t.call.out);
}

/* The vector's own cross-checks: its context_encode64 is
 * b64_encode_lines(context_json), and stored is "vN:" + base64(blob). */
static void
check_vector_fields(const char *name, json_t *v, const char *json,
    size_t json_len, const uint8_t *blob, size_t blob_len)
{
	json_t *enc = json_object_get(v, "context_encode64");
	const char *stored = json_string_value(json_object_get(v, "stored"));
	const char *colon;
	struct buf b;

	buf_init(&b, 1 << 20);
	if (json != NULL) {
		ck_assert_ptr_nonnull(enc);
		ck_assert_int_eq(b64_encode_lines(&b, json, json_len), 0);
		ck_assert_msg(b.len == json_string_length(enc) &&
		    memcmp(b.data, json_string_value(enc), b.len) == 0,
		    "%s: context_encode64", name);
		buf_clear(&b);
	}
	ck_assert_ptr_nonnull(stored);
	ck_assert_int_eq(stored[0], 'v');
	colon = strchr(stored, ':');
	ck_assert_ptr_nonnull(colon);
	ck_assert_int_eq(b64_encode(&b, blob, blob_len), 0);
	ck_assert_msg(b.len == strlen(colon + 1) &&
	    memcmp(b.data, colon + 1, b.len) == 0, "%s: stored", name);
	buf_done(&b);
}

START_TEST(test_vectors)
{
	json_error_t jerr;
	json_t *root = json_load_file(VECTORS, 0, &jerr);
	json_t *vectors, *v;
	void *state = open_key("insecure-test-key");
	size_t i, n_ctx = 0, n_none = 0, n_as = 0;

	ck_assert_msg(root != NULL, "%s: %s", VECTORS, jerr.text);
	vectors = json_object_get(root, "vectors");
	ck_assert(json_is_array(vectors));
	json_array_foreach(vectors, i, v) {
		const char *name = json_string_value(json_object_get(v,
		    "name"));
		json_t *ctx = json_object_get(v, "context_json");
		json_t *as = json_object_get(v, "activesupport");
		uint8_t *pt, *want;
		size_t pt_len, want_len;

		ck_assert_ptr_nonnull(name);
		pt_len = hex_decode(json_string_value(json_object_get(v,
		    "plaintext_hex")), &pt);
		want_len = hex_decode(json_string_value(json_object_get(v,
		    "provider_ciphertext_hex")), &want);
		if (ctx != NULL) {
			ck_assert(json_is_string(ctx));
			check_vector(state, name, pt, pt_len, want, want_len,
			    json_string_value(ctx), json_string_length(ctx));
			check_vector_fields(name, v, json_string_value(ctx),
			    json_string_length(ctx), want, want_len);
			n_ctx++;
		} else {
			check_vector(state, name, pt, pt_len, want, want_len,
			    NULL, 0);
			check_vector_fields(name, v, NULL, 0, want, want_len);
			n_none++;
		}
		if (json_is_object(as)) {
			json_t *actx = json_object_get(as, "context_json");
			uint8_t *awant;
			size_t awant_len;
			struct tcall t;

			ck_assert(json_is_string(actx));
			awant_len = hex_decode(json_string_value(
			    json_object_get(as, "provider_ciphertext_hex")),
			    &awant);
			check_vector(state, name, pt, pt_len, awant, awant_len,
			    json_string_value(actx), json_string_length(actx));
			check_vector_fields(name, as, json_string_value(actx),
			    json_string_length(actx), awant, awant_len);
			/* Each style's blob opens only under its own bytes. */
			ck_assert_int_eq(tcall_run(&t, state, PROV_UNWRAP,
			    awant, awant_len, json_string_value(ctx),
			    json_string_length(ctx)), ERR_DECRYPTION_FAILED);
			ck_assert_int_eq(tcall_run(&t, state, PROV_UNWRAP,
			    want, want_len, json_string_value(actx),
			    json_string_length(actx)), ERR_DECRYPTION_FAILED);
			free(awant);
			n_as++;
		}
		free(pt);
		free(want);
	}
	/* A vector file that lost its cases must not pass quietly. */
	ck_assert_uint_ge(n_ctx, 7);
	ck_assert_uint_ge(n_none, 1);
	ck_assert_uint_ge(n_as, 2);
	json_decref(root);
	provider_test.close(state);
}
END_TEST

/* A fresh blob: prefix ':' base64(key32) [':' encode64(json)]. */
static size_t
make_blob(void *state, const char *json, uint8_t **ret)
{
	struct tcall t;
	uint8_t *p;
	size_t n;

	ck_assert_int_eq(tcall_run(&t, state, PROV_WRAP, key32,
	    sizeof(key32), json, json != NULL ? strlen(json) : 0), 0);
	n = t.call.out.len;
	p = malloc(n);
	ck_assert_ptr_nonnull(p);
	memcpy(p, t.call.out.data, n);
	*ret = p;
	buf_done(&t.call.out);
	return n;
}

static int
unwrap(void *state, const void *blob, size_t len, const char *json)
{
	struct tcall t;
	int r = tcall_run(&t, state, PROV_UNWRAP, blob, len, json,
	    json != NULL ? strlen(json) : 0);

	if (r != 0) {
		/* Messages name the problem, never the data. */
		ck_assert_ptr_null(strstr(t.call.msg, "AAECAwQF"));
	}
	buf_done(&t.call.out);
	return r;
}

START_TEST(test_wrap_shapes)
{
	void *state = open_key("insecure-test-key");
	struct tcall t;
	static const char want_empty_ctx[] = ":e30=\n";

	/* Empty context {}: the third part is Base64.encode64("{}"). */
	ck_assert_int_eq(tcall_run(&t, state, PROV_WRAP, key32, sizeof(key32),
	    "{}", 2), 0);
	ck_assert_uint_eq(t.call.out.len, 11 + 1 + 44 + 6);
	ck_assert_int_eq(memcmp(t.call.out.data, prefix, 11), 0);
	ck_assert_int_eq(memcmp(t.call.out.data + 56, want_empty_ctx, 6), 0);
	buf_done(&t.call.out);

	/* Empty plaintext: prefix and a colon, nothing else. */
	ck_assert_int_eq(tcall_run(&t, state, PROV_WRAP, "", 0, NULL, 0), 0);
	ck_assert_uint_eq(t.call.out.len, 12);
	ck_assert_int_eq(t.call.out.data[11], ':');
	buf_done(&t.call.out);
	ck_assert_int_eq(tcall_run(&t, state, PROV_UNWRAP, prefix, 11, NULL,
	    0), ERR_DECRYPTION_FAILED);
	{
		uint8_t b[12];

		memcpy(b, prefix, 11);
		b[11] = ':';
		ck_assert_int_eq(tcall_run(&t, state, PROV_UNWRAP, b, 12,
		    NULL, 0), 0);
		ck_assert_uint_eq(t.call.out.len, 0);
		buf_done(&t.call.out);
	}

	/* Over the output cap: refused whole, nothing left behind. */
	{
		static uint8_t big[PROV_MAX_OUT];

		ck_assert_int_eq(tcall_run(&t, state, PROV_WRAP, big,
		    sizeof(big), NULL, 0), ERR_TOO_LARGE);
		buf_done(&t.call.out);
	}

	/* A present context must come with its JSON. */
	ck_assert_int_eq(tcall_run(&t, state, PROV_WRAP, key32, sizeof(key32),
	    "", 0), ERR_INTERNAL);
	buf_done(&t.call.out);
	provider_test.close(state);
}
END_TEST

START_TEST(test_context_mismatch)
{
	void *state = open_key("insecure-test-key");
	uint8_t *blob, *bare, *empty;
	size_t len = make_blob(state, CTX_A, &blob);
	size_t bare_len = make_blob(state, NULL, &bare);
	size_t empty_len = make_blob(state, "{}", &empty);

	ck_assert_int_eq(unwrap(state, blob, len, CTX_A), 0);
	ck_assert_int_eq(unwrap(state, blob, len,
	    "{\"model_id\":\"2\",\"model_name\":\"User\"}"),
	    ERR_DECRYPTION_FAILED);
	ck_assert_int_eq(unwrap(state, blob, len,
	    "{\"model_name\":\"User\",\"model_id\":\"1\"}"),
	    ERR_DECRYPTION_FAILED);
	ck_assert_int_eq(unwrap(state, blob, len, "{}"),
	    ERR_DECRYPTION_FAILED);
	ck_assert_int_eq(unwrap(state, blob, len, NULL),
	    ERR_DECRYPTION_FAILED);
	/* No context vs the empty context {} both ways. */
	ck_assert_int_eq(unwrap(state, bare, bare_len, NULL), 0);
	ck_assert_int_eq(unwrap(state, bare, bare_len, "{}"),
	    ERR_DECRYPTION_FAILED);
	ck_assert_int_eq(unwrap(state, empty, empty_len, "{}"), 0);
	ck_assert_int_eq(unwrap(state, empty, empty_len, NULL),
	    ERR_DECRYPTION_FAILED);
	free(blob);
	free(bare);
	free(empty);
	provider_test.close(state);
}
END_TEST

START_TEST(test_truncated)
{
	void *state = open_key("insecure-test-key");
	uint8_t *blob, *bare;
	size_t len = make_blob(state, CTX_A, &blob);
	size_t bare_len = make_blob(state, NULL, &bare);

	/* With a context every proper prefix fails: at the least the
	 * context part's final "\n" is gone. */
	for (size_t n = 0; n < len; n++)
		ck_assert_msg(unwrap(state, blob, n, CTX_A) ==
		    ERR_DECRYPTION_FAILED, "prefix of %zu bytes opened", n);
	/* Without one the format has no integrity: a cut on a base64
	 * quantum boundary still decodes (as in the gem); any other cut,
	 * or one into the prefix, fails. */
	for (size_t n = 0; n < bare_len; n++) {
		int r = unwrap(state, bare, n, NULL);

		if (n >= 12 && (n - 12) % 4 == 0)
			ck_assert_int_eq(r, 0);
		else
			ck_assert_msg(r == ERR_DECRYPTION_FAILED,
			    "prefix of %zu bytes opened", n);
	}
	free(blob);
	free(bare);
	provider_test.close(state);
}
END_TEST

START_TEST(test_bad_prefix)
{
	void *state = open_key("insecure-test-key");
	uint8_t *blob;
	size_t len = make_blob(state, CTX_A, &blob);

	for (size_t i = 0; i < 12; i++) {
		blob[i] ^= 0x01;
		ck_assert_msg(unwrap(state, blob, len, CTX_A) ==
		    ERR_DECRYPTION_FAILED, "byte %zu flipped", i);
		blob[i] ^= 0x01;
	}
	/* The text form of the prefix is not the prefix. */
	{
		static const char text[] = "insecure+data+A:AAAA";

		ck_assert_int_eq(unwrap(state, text, strlen(text), NULL),
		    ERR_DECRYPTION_FAILED);
	}
	ck_assert_int_eq(unwrap(state, blob, len, CTX_A), 0);
	free(blob);
	provider_test.close(state);
}
END_TEST

/* Blobs built by hand: prefix ':' then the given tail. */
static int
unwrap_tail(void *state, const char *tail, const char *json)
{
	uint8_t b[512];
	size_t n = strlen(tail);

	ck_assert_uint_le(n + 12, sizeof(b));
	memcpy(b, prefix, 11);
	b[11] = ':';
	memcpy(b + 12, tail, n);
	return unwrap(state, b, n + 12, json);
}

START_TEST(test_bad_base64)
{
	void *state = open_key("insecure-test-key");
	static const char *const bad[] = {
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",	 /* no pad */
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=",	 /* bits */
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==", /* pad */
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxw\nHh8=",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxw Hh8=",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh.=",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd-h8=",
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd_h8=",
		"AAEC=AwQ",
		"====",
		"A",
	};

	ck_assert_int_eq(unwrap_tail(state,
	    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(unwrap_tail(state, bad[i], NULL) ==
		    ERR_DECRYPTION_FAILED, "bad[%zu] accepted", i);
	provider_test.close(state);
}
END_TEST

START_TEST(test_bad_context_part)
{
	void *state = open_key("insecure-test-key");
	static const char data[] =
	    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
	char tail[256];

	/* The right part opens; near misses do not. */
	snprintf(tail, sizeof(tail), "%s:e30=\n", data);
	ck_assert_int_eq(unwrap_tail(state, tail, "{}"), 0);
	snprintf(tail, sizeof(tail), "%s:e30=", data);	/* strict, no \n */
	ck_assert_int_eq(unwrap_tail(state, tail, "{}"),
	    ERR_DECRYPTION_FAILED);
	snprintf(tail, sizeof(tail), "%s:e30=\n\n", data);
	ck_assert_int_eq(unwrap_tail(state, tail, "{}"),
	    ERR_DECRYPTION_FAILED);
	snprintf(tail, sizeof(tail), "%s:e30=\n:", data);	/* 4th part */
	ck_assert_int_eq(unwrap_tail(state, tail, "{}"),
	    ERR_DECRYPTION_FAILED);
	snprintf(tail, sizeof(tail), "%s:e30=\n:x", data);
	ck_assert_int_eq(unwrap_tail(state, tail, "{}"),
	    ERR_DECRYPTION_FAILED);
	snprintf(tail, sizeof(tail), "%s:", data);	/* empty 3rd part */
	ck_assert_int_eq(unwrap_tail(state, tail, NULL),
	    ERR_DECRYPTION_FAILED);
	ck_assert_int_eq(unwrap_tail(state, tail, "{}"),
	    ERR_DECRYPTION_FAILED);
	/* A long context: 60-column lines, each with its "\n". */
	{
		static const char json[] =
		    "{\"model_id\":\"1234567890\",\"model_name\":\"VeryLongMod"
		    "elNameVeryLongModelNameVeryLongModelNameVeryLongModelNa"
		    "me\"}";
		static const char part[] =
		    "eyJtb2RlbF9pZCI6IjEyMzQ1Njc4OTAiLCJtb2RlbF9uYW1lIjoiVmVyeUxv\n"
		    "bmdNb2RlbE5hbWVWZXJ5TG9uZ01vZGVsTmFtZVZlcnlMb25nTW9kZWxOYW1l\n"
		    "VmVyeUxvbmdNb2RlbE5hbWUifQ==\n";
		char *t = malloc(sizeof(data) + sizeof(part) + 1);

		ck_assert_ptr_nonnull(t);
		sprintf(t, "%s:%s", data, part);
		ck_assert_int_eq(unwrap_tail(state, t, json), 0);
		/* The same text without the line breaks is not it. */
		sprintf(t, "%s:%s", data,
		    "eyJtb2RlbF9pZCI6IjEyMzQ1Njc4OTAiLCJtb2RlbF9uYW1lIjoiVmVyeUxv"
		    "bmdNb2RlbE5hbWVWZXJ5TG9uZ01vZGVsTmFtZVZlcnlMb25nTW9kZWxOYW1l"
		    "VmVyeUxvbmdNb2RlbE5hbWUifQ==\n");
		ck_assert_int_eq(unwrap_tail(state, t, json),
		    ERR_DECRYPTION_FAILED);
		free(t);
	}
	provider_test.close(state);
}
END_TEST

START_TEST(test_encrypt_only)
{
	void *plain = open_key("insecure-test-key");
	void *enc = open_key("insecure-test-key/encrypt");
	uint8_t *blob, *blob2;
	size_t len = make_blob(plain, CTX_A, &blob);
	size_t len2 = make_blob(enc, CTX_A, &blob2);
	struct tcall t;

	/* Wrap is the same format; unwrap is always refused. */
	ck_assert_uint_eq(len, len2);
	ck_assert_int_eq(memcmp(blob, blob2, len), 0);
	ck_assert_int_eq(tcall_run(&t, enc, PROV_UNWRAP, blob, len, CTX_A,
	    strlen(CTX_A)), ERR_DECRYPTION_FAILED);
	ck_assert_str_eq(t.call.msg, "encrypt-only test key");
	buf_done(&t.call.out);
	ck_assert_int_eq(unwrap(enc, blob, len, NULL), ERR_DECRYPTION_FAILED);
	ck_assert_int_eq(unwrap(enc, "", 0, NULL), ERR_DECRYPTION_FAILED);
	ck_assert_int_eq(unwrap(plain, blob2, len2, CTX_A), 0);
	free(blob);
	free(blob2);
	provider_test.close(plain);
	provider_test.close(enc);
}
END_TEST

START_TEST(test_open_and_find)
{
	static const char *const not_test[] = {
		"insecure-test-key2", "insecure-test-key/", "Insecure-test-key",
		"insecure-test-key/encrypt/", "insecure-test-key/decrypt",
		" insecure-test-key", "",
	};
	/* DESIGN 3.1: the form picks the provider; AWS takes anything
	 * else. */
	static const struct {
		const char *id, *provider;
	} routes[] = {
		{ "arn:aws:kms:us-east-1:111122223333:key/1234abcd", "aws" },
		{ "alias/foo", "aws" },
		{ "1234abcd-12ab-34cd-56ef-1234567890ab", "aws" },
		/* AWS refuses the other providers' prefixes, so a typo never
		 * goes to AWS */
		{ "insecure-test-key2", NULL },
		{ "vault/k", "vault" },
		{ "projects/p/locations/l/keyRings/r/cryptoKeys/k", "gcp" },
	};
	char err[256];
	void *state = NULL;

	ck_assert_ptr_eq(provider_find("insecure-test-key"), &provider_test);
	ck_assert_ptr_eq(provider_find("insecure-test-key/encrypt"),
	    &provider_test);
	ck_assert_ptr_eq(provider_find("local/a"), &provider_local);
	ck_assert_ptr_null(provider_find(NULL));
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct provider_ops *p = provider_find(routes[i].id);

		if (routes[i].provider == NULL)
			ck_assert_msg(p == NULL, "%s -> %s", routes[i].id,
			    p != NULL ? p->name : "none");
		else
			ck_assert_msg(p != NULL && strcmp(p->name,
			    routes[i].provider) == 0, "%s -> %s", routes[i].id,
			    p != NULL ? p->name : "none");
	}
	for (size_t i = 0; i < sizeof(not_test) / sizeof(not_test[0]); i++) {
		err[0] = '\0';
		ck_assert_int_ne(provider_test.open(not_test[i], NULL, &state,
		    err, sizeof(err)), 0);
		ck_assert_str_ne(err, "");
		ck_assert_ptr_null(state);
	}
	ck_assert_str_eq(provider_test.name, "test");
}
END_TEST

static int fail_done;

static void
fail_done_cb(struct prov_call *call)
{
	fail_done++;
	(void)call;
}

START_TEST(test_provider_fail)
{
	struct prov_call call;
	int r;

	memset(&call, 0, sizeof(call));
	buf_init(&call.out, PROV_MAX_OUT);
	buf_append(&call.out, "secret", 6);
	call.done = fail_done_cb;
	fail_done = 0;
	provider_fail(&call, ERR_DECRYPTION_FAILED, "bad %s %d", "thing", 7);
	ck_assert_int_eq(fail_done, 1);
	ck_assert_int_eq(call.err, ERR_DECRYPTION_FAILED);
	ck_assert_str_eq(call.msg, "bad thing 7");
	ck_assert_uint_eq(call.out.len, 0);
	/* The partial output is wiped, not just forgotten. */
	ck_assert_int_ne(memcmp(call.out.data, "secret", 6), 0);
	/* Long messages are cut, never overrun. */
	r = 0;
	provider_fail(&call, ERR_INTERNAL, "%0300d", r);
	ck_assert_uint_eq(strlen(call.msg), PROV_MSG_LEN - 1);
	/* A success code is not a failure: it becomes internal. */
	provider_fail(&call, 0, "oops");
	ck_assert_int_eq(call.err, ERR_INTERNAL);
	ck_assert_int_eq(fail_done, 3);
	buf_done(&call.out);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("provider_test");
	TCase *tc = tcase_create("vectors");

	tcase_add_test(tc, test_vectors);
	suite_add_tcase(s, tc);

	tc = tcase_create("refusals");
	tcase_add_test(tc, test_wrap_shapes);
	tcase_add_test(tc, test_context_mismatch);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_bad_prefix);
	tcase_add_test(tc, test_bad_base64);
	tcase_add_test(tc, test_bad_context_part);
	tcase_add_test(tc, test_encrypt_only);
	suite_add_tcase(s, tc);

	tc = tcase_create("registry");
	tcase_add_test(tc, test_open_and_find);
	tcase_add_test(tc, test_provider_fail);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
