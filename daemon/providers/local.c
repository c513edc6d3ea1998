/*
 * local.c: kmsd's own AES-256-GCM master keys (key ids `local/NAME`).
 *
 * For a single host or development: the master key is a file in the state
 * directory instead of a key in a KMS. This module owns that file and the
 * blob format below; everything else about keys lives in the daemon.
 *
 * Key file: <state_dir>/local-NAME.key, exactly 32 raw bytes, a regular
 * file with no group or other permission bits. open() creates it when it
 * is missing (O_EXCL, mode 0600, fsync'd with its directory, so a crash
 * never leaves a key that wrapped data but did not survive), and refuses a
 * file of the wrong size, type or mode, and a symbolic link, rather than
 * trusting a key someone else could have read or planted. In memory the key
 * lives in OpenSSL's secure heap and is wiped on close.
 *
 * Blob format, version 1 (this is the format's contract; never change it,
 * add a version instead):
 *
 *   0x01 | nonce (12 bytes) | ciphertext (as long as the plaintext) | tag (16)
 *
 *   AES-256-GCM, a fresh random nonce per wrap, full 16-byte tag.
 *   AAD = "kmsd-local-v1" 0x00 0x00                        (no context)
 *   AAD = "kmsd-local-v1" 0x00 0x01 <canonical context JSON> (a context,
 *                                                             even {})
 *
 * The label ties the blob to this use and version; the presence byte keeps
 * "no context" and the empty context {} apart (DESIGN 3.3), since both would
 * otherwise add no JSON bytes and an empty-context blob would open without
 * one. The JSON is the canonical form (DESIGN 3.3), so the same context sent
 * in any order opens the blob.
 *
 * Wrap and unwrap complete before start() returns. Any failure to unwrap is
 * ERR_DECRYPTION_FAILED with partial plaintext wiped; messages never carry
 * key or data bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "err.h"
#include "keyfile.h"
#include "rand.h"
#include "provider.h"

#define LOCAL_PREFIX "local/"
#define LOCAL_PREFIX_LEN (sizeof(LOCAL_PREFIX) - 1)
/* Key names stay short enough that "local-NAME.key" is far below NAME_MAX. */
#define LOCAL_NAME_MAX 64
/* AES-256. */
#define LOCAL_KEY_LEN 32
/* GCM's native nonce size; random 96-bit nonces stay safe for 2^32 wraps
 * per key (NIST SP 800-38D 8.3), far beyond a single host's use. */
#define LOCAL_NONCE_LEN 12
/* The full GCM tag: shorter tags weaken forgery resistance. */
#define LOCAL_TAG_LEN 16
/* First byte of every blob; unknown versions are refused, not guessed. */
#define LOCAL_VERSION 0x01
#define LOCAL_HEADER_LEN (1 + LOCAL_NONCE_LEN)
#define LOCAL_OVERHEAD (LOCAL_HEADER_LEN + LOCAL_TAG_LEN)

/* "kmsd-local-v1" and its terminating 0x00: sizeof counts the NUL. */
static const char local_aad_label[] = "kmsd-local-v1";

/* open() helpers' results besides 0 and ERR_*. */

/* Allocated from the secure heap as a whole: the key never sits in
 * ordinary, swappable, dumpable memory. */
/*
 * One pre-keyed cipher context per direction, made at open: each call only
 * sets a new nonce, so the AES key schedule is computed once per key, not
 * once per request (about 1.4 us of the 2 us a fresh context costs). The
 * schedule lives in OpenSSL's memory for the key's lifetime; the process
 * is not dumpable and the contexts are freed (and cleansed by OpenSSL)
 * when the key closes. The daemon is one thread, so no locking.
 */
struct local_state {
	uint8_t key[LOCAL_KEY_LEN];
	EVP_CIPHER *cipher;	/* fetched once, not per call */
	EVP_CIPHER_CTX *enc;
	EVP_CIPHER_CTX *dec;
};

static int
local_match(const char *key_id)
{
	/* Every local/ id is ours, valid or not, so that a bad NAME gets
	 * open()'s clear message instead of falling through to AWS. */
	return strncmp(key_id, LOCAL_PREFIX, LOCAL_PREFIX_LEN) == 0;
}

/* 1..64 of [A-Za-z0-9._-], not starting with '.': no '/' means no path
 * traversal, no leading '.' means no hidden or "." / ".." names. */
static int
local_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > LOCAL_NAME_MAX || name[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static void
local_close(void *state)
{
	struct local_state *st = state;

	if (st == NULL)
		return;
	EVP_CIPHER_CTX_free(st->enc);
	EVP_CIPHER_CTX_free(st->dec);
	EVP_CIPHER_free(st->cipher);
	OPENSSL_secure_clear_free(st, sizeof(*st));
}

static int
local_open(const char *key_id, const struct prov_env *env, void **ret_state,
    char *err, size_t errlen)
{
	struct local_state *st = NULL;
	char path[PATH_MAX];
	const char *name, *dir;
	int n, r;

	if (!local_match(key_id) ||
	    !local_name_valid(name = key_id + LOCAL_PREFIX_LEN)) {
		err_printf(err, errlen, "bad local key id: want local/NAME, "
		    "NAME 1-%d of A-Z a-z 0-9 . _ - not starting with '.'",
		    LOCAL_NAME_MAX);
		return ERR_BAD_REQUEST;
	}
	if (env == NULL || env->state_dir == NULL ||
	    env->state_dir[0] == '\0') {
		err_printf(err, errlen, "local keys need a state_dir");
		return ERR_BAD_REQUEST;
	}
	dir = env->state_dir;
	n = snprintf(path, sizeof(path), "%s/local-%s.key", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		err_printf(err, errlen, "state_dir path too long");
		return ERR_BAD_REQUEST;
	}
	if ((st = OPENSSL_secure_zalloc(sizeof(*st))) == NULL) {
		err_printf(err, errlen, "out of memory");
		return ERR_NOMEM;
	}
	if ((st->cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL)) ==
	    NULL) {
		ERR_clear_error();
		err_printf(err, errlen, "AES-256-GCM is not available");
		r = ERR_INTERNAL;
		goto out;
	}
	if ((r = keyfile_get(dir, path, st->key, LOCAL_KEY_LEN, err,
	    errlen)) != 0)
		goto out;
	if ((st->enc = EVP_CIPHER_CTX_new()) == NULL ||
	    (st->dec = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex2(st->enc, st->cipher, st->key, NULL, NULL) != 1 ||
	    EVP_DecryptInit_ex2(st->dec, st->cipher, st->key, NULL, NULL) != 1) {
		ERR_clear_error();
		err_printf(err, errlen, "cannot set up AES-256-GCM");
		r = ERR_INTERNAL;
		goto out;
	}
	*ret_state = st;
	st = NULL;
out:
	local_close(st);
	return r;
}

static void
local_succeed(struct prov_call *call)
{
	call->err = 0;
	call->msg[0] = '\0';
	call->done(call);
}

/* Whether the call carries a context; a present context always comes with
 * its JSON ("{}" at least), so JSON missing is a caller bug. */
static int
local_context(const struct prov_call *call, int *ret_present)
{
	*ret_present = call->ctx != NULL && call->ctx->present;
	if (*ret_present && (call->ctx_json == NULL ||
	    call->ctx_json_len == 0 || call->ctx_json_len > INT_MAX))
		return ERR_INTERNAL;
	return 0;
}

/* An AAD up to this size goes to OpenSSL in one update: each EVP update
 * costs about 300 instructions of dispatch, more than hashing the bytes.
 * A longer one goes in its three parts; GCM hashes the same bytes. */
#define LOCAL_AAD_ONE 512

/* Feed the AAD of the format contract (see the top of this file). */
static int
local_aad(EVP_CIPHER_CTX *c, const struct prov_call *call, int present)
{
	uint8_t flag = present ? 0x01 : 0x00, one[LOCAL_AAD_ONE];
	size_t json = present ? call->ctx_json_len : 0;
	size_t n = sizeof(local_aad_label) + 1 + json;
	int outl;

	if (n <= sizeof(one)) {
		memcpy(one, local_aad_label, sizeof(local_aad_label));
		one[sizeof(local_aad_label)] = flag;
		if (json > 0)
			memcpy(one + sizeof(local_aad_label) + 1,
			    call->ctx_json, json);
		return EVP_CipherUpdate(c, NULL, &outl, one, (int)n) == 1 ?
		    0 : -1;
	}
	if (EVP_CipherUpdate(c, NULL, &outl, (const uint8_t *)local_aad_label,
	    sizeof(local_aad_label)) != 1 ||
	    EVP_CipherUpdate(c, NULL, &outl, &flag, 1) != 1 ||
	    EVP_CipherUpdate(c, NULL, &outl, call->ctx_json,
	    (int)json) != 1)
		return -1;
	return 0;
}

static void
local_wrap(struct local_state *st, struct prov_call *call)
{
	EVP_CIPHER_CTX *c;
	uint8_t *p = NULL;
	size_t need = 0;
	int present, outl, finl, r;

	if (local_context(call, &present) != 0) {
		provider_fail(call, ERR_INTERNAL, "context without its JSON");
		return;
	}
	if (call->in_len > PROV_MAX_OUT) {
		provider_fail(call, ERR_TOO_LARGE,
		    "plaintext over the output limit");
		return;
	}
	need = LOCAL_OVERHEAD + call->in_len;
	if ((r = buf_reserve(&call->out, need)) != 0) {
		provider_fail(call, r, r == ERR_TOO_LARGE ?
		    "ciphertext over the output limit" : "out of memory");
		return;
	}
	p = call->out.data + call->out.len;
	p[0] = LOCAL_VERSION;
	if (rand_fill(p + 1, LOCAL_NONCE_LEN) != 0)
		goto fail;
	c = st->enc;
	if (EVP_EncryptInit_ex2(c, NULL, NULL, p + 1, NULL) != 1 ||
	    local_aad(c, call, present) != 0)
		goto fail;
	outl = 0;
	if (call->in_len > 0 && EVP_EncryptUpdate(c, p + LOCAL_HEADER_LEN,
	    &outl, call->in, (int)call->in_len) != 1)
		goto fail;
	if ((size_t)outl != call->in_len ||
	    EVP_EncryptFinal_ex(c, p + LOCAL_HEADER_LEN + outl, &finl) != 1 ||
	    finl != 0 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, LOCAL_TAG_LEN,
	    p + LOCAL_HEADER_LEN + call->in_len) != 1)
		goto fail;
	call->out.len += need;
	local_succeed(call);
	return;
fail:
	ERR_clear_error();
	OPENSSL_cleanse(p, need);
	provider_fail(call, ERR_INTERNAL, "local encryption failed");
}

static void
local_unwrap(struct local_state *st, struct prov_call *call)
{
	EVP_CIPHER_CTX *c;
	const uint8_t *in = call->in;
	uint8_t tag[LOCAL_TAG_LEN];
	uint8_t *p = NULL;
	size_t ct_len = 0;
	int present, outl, finl, r;

	if (local_context(call, &present) != 0) {
		provider_fail(call, ERR_INTERNAL, "context without its JSON");
		return;
	}
	if (call->in_len < LOCAL_OVERHEAD) {
		provider_fail(call, ERR_DECRYPTION_FAILED,
		    "local ciphertext too short");
		return;
	}
	if (in[0] != LOCAL_VERSION) {
		provider_fail(call, ERR_DECRYPTION_FAILED,
		    "unknown local ciphertext version %u", (unsigned)in[0]);
		return;
	}
	ct_len = call->in_len - LOCAL_OVERHEAD;
	if (ct_len > INT_MAX) {
		provider_fail(call, ERR_TOO_LARGE,
		    "local ciphertext over the limit");
		return;
	}
	if ((r = buf_reserve(&call->out, ct_len)) != 0) {
		provider_fail(call, r, r == ERR_TOO_LARGE ?
		    "plaintext over the output limit" : "out of memory");
		return;
	}
	p = call->out.data + call->out.len;
	memcpy(tag, in + LOCAL_HEADER_LEN + ct_len, LOCAL_TAG_LEN);
	c = st->dec;
	if (EVP_DecryptInit_ex2(c, NULL, NULL, in + 1, NULL) != 1 ||
	    local_aad(c, call, present) != 0)
		goto internal;
	outl = 0;
	if (ct_len > 0 && EVP_DecryptUpdate(c, p, &outl,
	    in + LOCAL_HEADER_LEN, (int)ct_len) != 1)
		goto internal;
	if ((size_t)outl != ct_len ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, LOCAL_TAG_LEN,
	    tag) != 1)
		goto internal;
	if (EVP_DecryptFinal_ex(c, p + outl, &finl) != 1 || finl != 0) {
		/* The plaintext written so far is unauthenticated: wipe it. */
		ERR_clear_error();
		OPENSSL_cleanse(p, ct_len);
		provider_fail(call, ERR_DECRYPTION_FAILED, "local ciphertext "
		    "does not authenticate (wrong key or context, or damaged)");
		return;
	}
	call->out.len += ct_len;
	local_succeed(call);
	return;
internal:
	ERR_clear_error();
	OPENSSL_cleanse(p, ct_len);
	provider_fail(call, ERR_INTERNAL, "local decryption failed");
}

static void
local_start(void *state, struct prov_call *call)
{
	if (call->op == PROV_WRAP)
		local_wrap(state, call);
	else if (call->op == PROV_UNWRAP)
		local_unwrap(state, call);
	else
		provider_fail(call, ERR_INTERNAL, "unknown provider op");
}

const struct provider_ops provider_local = {
	.name = "local",
	.match = local_match,
	.open = local_open,
	.close = local_close,
	.start = local_start,
	.cancel = NULL,
};
