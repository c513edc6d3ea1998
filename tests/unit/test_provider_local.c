/*
 * test_provider_local.c: the local AES-256-GCM provider: its key file, its
 * blob format (checked against an independent OpenSSL decryption of the
 * documented layout and AAD), and every way unwrap must refuse.
 *
 * Each test gets a fresh mkdtemp state directory, removed afterwards.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "err.h"
#include "provider.h"
#include "rand.h"

#define CTX_A "{\"model_id\":\"1\",\"model_name\":\"User\"}"
#define CTX_B "{\"model_id\":\"2\",\"model_name\":\"User\"}"
#define OVERHEAD (1 + 12 + 16)

static char dir[64];

static void
setup(void)
{
	strcpy(dir, "/tmp/kmsd-test-local-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) != 0)
			unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
	}
	closedir(d);
	rmdir(dir);
}

static void
key_path(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/local-%s.key", dir, name);
}

static int
try_open(const char *key_id, void **ret_state, char *err, size_t errlen)
{
	struct prov_env env = { .state_dir = dir, .base = NULL };

	*ret_state = NULL;
	err[0] = '\0';
	return provider_local.open(key_id, &env, ret_state, err, errlen);
}

static void *
open_key(const char *key_id)
{
	void *state;
	char err[512];

	ck_assert_msg(try_open(key_id, &state, err, sizeof(err)) == 0,
	    "open %s: %s", key_id, err);
	ck_assert_ptr_nonnull(state);
	return state;
}

/* Expect open to fail with a message containing want. */
static void
open_fails(const char *key_id, const char *want)
{
	void *state;
	char err[512];

	ck_assert_msg(try_open(key_id, &state, err, sizeof(err)) != 0,
	    "open %s succeeded", key_id);
	ck_assert_ptr_null(state);
	ck_assert_msg(strstr(err, want) != NULL, "open %s: \"%s\" lacks "
	    "\"%s\"", key_id, err, want);
}

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

/* json NULL: no context. The caller frees t->call.out. */
static int
tcall_run(struct tcall *t, void *state, enum prov_op op, const void *in,
    size_t in_len, const char *json)
{
	memset(t, 0, sizeof(*t));
	t->ctx.present = json != NULL;
	t->call.op = op;
	t->call.in = in;
	t->call.in_len = in_len;
	t->call.ctx = &t->ctx;
	t->call.ctx_json = (const uint8_t *)json;
	t->call.ctx_json_len = json != NULL ? strlen(json) : 0;
	buf_init(&t->call.out, PROV_MAX_OUT);
	t->call.done = tcall_done;
	t->call.arg = t;
	provider_local.start(state, &t->call);
	ck_assert_int_eq(t->done, 1);	/* synchronous, exactly once */
	if (t->call.err != 0) {
		ck_assert_uint_eq(t->call.out.len, 0);
		ck_assert_str_ne(t->call.msg, "");
	}
	return t->call.err;
}

/* Wrap into a malloc'd copy. */
static size_t
wrap(void *state, const void *pt, size_t n, const char *json, uint8_t **ret)
{
	struct tcall t;
	size_t len;

	ck_assert_msg(tcall_run(&t, state, PROV_WRAP, pt, n, json) == 0,
	    "wrap: %s", t.call.msg);
	len = t.call.out.len;
	ck_assert_uint_eq(len, n + OVERHEAD);
	*ret = malloc(len);
	ck_assert_ptr_nonnull(*ret);
	memcpy(*ret, t.call.out.data, len);
	buf_done(&t.call.out);
	return len;
}

static int
unwrap(void *state, const void *blob, size_t len, const char *json)
{
	struct tcall t;
	int r = tcall_run(&t, state, PROV_UNWRAP, blob, len, json);

	buf_done(&t.call.out);
	return r;
}

/* Unwrap must succeed and give back exactly pt. */
static void
unwrap_ok(void *state, const void *blob, size_t len, const char *json,
    const void *pt, size_t n)
{
	struct tcall t;

	ck_assert_msg(tcall_run(&t, state, PROV_UNWRAP, blob, len, json) == 0,
	    "unwrap: %s", t.call.msg);
	ck_assert_uint_eq(t.call.out.len, n);
	ck_assert(n == 0 || memcmp(t.call.out.data, pt, n) == 0);
	buf_done(&t.call.out);
}

static const uint8_t pt32[32] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};

static size_t
read_file(const char *path, uint8_t *out, size_t cap)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(out, 1, cap, f);
	fclose(f);
	return n;
}

static void
write_file(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

START_TEST(test_key_file_created)
{
	char path[256];
	struct stat sb;
	void *state;

	key_path(path, sizeof(path), "k1");
	ck_assert_int_ne(access(path, F_OK), 0);
	/* A permissive umask must not leak into the file's mode. */
	umask(0);
	state = open_key("local/k1");
	umask(022);
	ck_assert_int_eq(lstat(path, &sb), 0);
	ck_assert(S_ISREG(sb.st_mode));
	ck_assert_uint_eq(sb.st_mode & 07777, 0600);
	ck_assert_int_eq(sb.st_size, 32);
	provider_local.close(state);
}
END_TEST

START_TEST(test_reopen_same_key)
{
	char path[256];
	uint8_t before[64], after[64], *blob;
	size_t nb, na, len;
	void *st1, *st2, *other;

	key_path(path, sizeof(path), "k1");
	st1 = open_key("local/k1");
	nb = read_file(path, before, sizeof(before));
	ck_assert_uint_eq(nb, 32);
	len = wrap(st1, pt32, sizeof(pt32), CTX_A, &blob);
	provider_local.close(st1);

	st2 = open_key("local/k1");
	na = read_file(path, after, sizeof(after));
	ck_assert_uint_eq(na, 32);
	ck_assert_int_eq(memcmp(before, after, 32), 0);
	unwrap_ok(st2, blob, len, CTX_A, pt32, sizeof(pt32));

	/* Another name is another key. */
	other = open_key("local/k2");
	ck_assert_int_eq(unwrap(other, blob, len, CTX_A),
	    ERR_DECRYPTION_FAILED);
	provider_local.close(other);
	provider_local.close(st2);
	free(blob);
}
END_TEST

START_TEST(test_roundtrip_shapes)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 32, 1000 };
	static const char *const ctxs[] = { NULL, "{}", CTX_A };
	uint8_t pt[1000], *blob;
	void *state = open_key("local/k1");

	for (size_t i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (size_t j = 0; j < 3; j++) {
			size_t len = wrap(state, pt, sizes[i], ctxs[j], &blob);

			ck_assert_uint_eq(blob[0], 0x01);
			unwrap_ok(state, blob, len, ctxs[j], pt, sizes[i]);
			free(blob);
		}
	}
	provider_local.close(state);
}
END_TEST

START_TEST(test_output_limit)
{
	static uint8_t pt[PROV_MAX_OUT];
	struct tcall t;
	uint8_t *blob;
	void *state = open_key("local/k1");
	size_t len;

	/* The largest plaintext whose blob fits the output cap. */
	len = wrap(state, pt, PROV_MAX_OUT - OVERHEAD, NULL, &blob);
	unwrap_ok(state, blob, len, NULL, pt, PROV_MAX_OUT - OVERHEAD);
	free(blob);
	ck_assert_int_eq(tcall_run(&t, state, PROV_WRAP, pt,
	    PROV_MAX_OUT - OVERHEAD + 1, NULL), ERR_TOO_LARGE);
	buf_done(&t.call.out);
	ck_assert_int_eq(tcall_run(&t, state, PROV_WRAP, pt, sizeof(pt),
	    NULL), ERR_TOO_LARGE);
	buf_done(&t.call.out);
	provider_local.close(state);
}
END_TEST

START_TEST(test_context_binding)
{
	uint8_t *a, *bare, *empty;
	void *state = open_key("local/k1");
	size_t a_len = wrap(state, pt32, 32, CTX_A, &a);
	size_t bare_len = wrap(state, pt32, 32, NULL, &bare);
	size_t empty_len = wrap(state, pt32, 32, "{}", &empty);
	struct tcall t;

	unwrap_ok(state, a, a_len, CTX_A, pt32, 32);
	ck_assert_int_eq(unwrap(state, a, a_len, CTX_B),
	    ERR_DECRYPTION_FAILED);
	ck_assert_int_eq(unwrap(state, a, a_len,
	    "{\"model_name\":\"User\",\"model_id\":\"1\"}"),
	    ERR_DECRYPTION_FAILED);
	ck_assert_int_eq(unwrap(state, a, a_len, "{}"), ERR_DECRYPTION_FAILED);
	ck_assert_int_eq(unwrap(state, a, a_len, NULL), ERR_DECRYPTION_FAILED);
	/* No context and the empty context {} are different contexts. */
	unwrap_ok(state, bare, bare_len, NULL, pt32, 32);
	ck_assert_int_eq(unwrap(state, bare, bare_len, "{}"),
	    ERR_DECRYPTION_FAILED);
	unwrap_ok(state, empty, empty_len, "{}", pt32, 32);
	ck_assert_int_eq(unwrap(state, empty, empty_len, NULL),
	    ERR_DECRYPTION_FAILED);
	/* A present context must come with its JSON. */
	ck_assert_int_eq(tcall_run(&t, state, PROV_WRAP, pt32, 32, ""),
	    ERR_INTERNAL);
	buf_done(&t.call.out);
	free(a);
	free(bare);
	free(empty);
	provider_local.close(state);
}
END_TEST

START_TEST(test_flipped_bytes)
{
	uint8_t *blob;
	void *state = open_key("local/k1");
	size_t len = wrap(state, pt32, 32, CTX_A, &blob);
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };

	for (size_t i = 0; i < len; i++) {
		for (size_t m = 0; m < sizeof(masks); m++) {
			blob[i] ^= masks[m];
			ck_assert_msg(unwrap(state, blob, len, CTX_A) ==
			    ERR_DECRYPTION_FAILED, "byte %zu ^ %02x opened",
			    i, masks[m]);
			blob[i] ^= masks[m];
		}
	}
	unwrap_ok(state, blob, len, CTX_A, pt32, 32);
	free(blob);
	provider_local.close(state);
}
END_TEST

START_TEST(test_truncated_and_extended)
{
	uint8_t *blob, *longer;
	void *state = open_key("local/k1");
	size_t len = wrap(state, pt32, 32, NULL, &blob);
	struct tcall t;

	for (size_t n = 0; n < len; n++)
		ck_assert_msg(unwrap(state, blob, n, NULL) ==
		    ERR_DECRYPTION_FAILED, "%zu-byte prefix opened", n);
	/* Dropping bytes from the front fails too. */
	for (size_t n = 1; n < len; n++)
		ck_assert_int_eq(unwrap(state, blob + n, len - n, NULL),
		    ERR_DECRYPTION_FAILED);
	longer = malloc(len + 1);
	ck_assert_ptr_nonnull(longer);
	memcpy(longer, blob, len);
	longer[len] = 0;
	ck_assert_int_eq(unwrap(state, longer, len + 1, NULL),
	    ERR_DECRYPTION_FAILED);
	/* Short-blob messages say so. */
	ck_assert_int_eq(tcall_run(&t, state, PROV_UNWRAP, blob, 28, NULL),
	    ERR_DECRYPTION_FAILED);
	ck_assert_ptr_nonnull(strstr(t.call.msg, "too short"));
	buf_done(&t.call.out);
	free(longer);
	free(blob);
	provider_local.close(state);
}
END_TEST

START_TEST(test_unknown_version)
{
	static const uint8_t versions[] = { 0x00, 0x02, 0x7f, 0xff };
	uint8_t *blob;
	void *state = open_key("local/k1");
	size_t len = wrap(state, pt32, 32, CTX_A, &blob);
	struct tcall t;

	for (size_t i = 0; i < sizeof(versions); i++) {
		blob[0] = versions[i];
		ck_assert_int_eq(tcall_run(&t, state, PROV_UNWRAP, blob, len,
		    CTX_A), ERR_DECRYPTION_FAILED);
		ck_assert_ptr_nonnull(strstr(t.call.msg, "version"));
		buf_done(&t.call.out);
	}
	free(blob);
	provider_local.close(state);
}
END_TEST

START_TEST(test_nonce_random)
{
	uint8_t *a, *b;
	void *state = open_key("local/k1");
	size_t la = wrap(state, pt32, 32, CTX_A, &a);
	size_t lb = wrap(state, pt32, 32, CTX_A, &b);

	ck_assert_uint_eq(la, lb);
	ck_assert_int_ne(memcmp(a + 1, b + 1, 12), 0);	/* nonces */
	ck_assert_int_ne(memcmp(a + 13, b + 13, la - 13), 0);
	unwrap_ok(state, a, la, CTX_A, pt32, 32);
	unwrap_ok(state, b, lb, CTX_A, pt32, 32);
	free(a);
	free(b);
	provider_local.close(state);
}
END_TEST

/* Decrypt a blob with OpenSSL directly from the documented layout, so a
 * change to the format contract cannot pass unnoticed. */
static int
reference_decrypt(const uint8_t key[32], const uint8_t *blob, size_t len,
    const char *json, uint8_t *out)
{
	static const uint8_t label[] = "kmsd-local-v1";	/* + its 0x00 */
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	size_t ct_len = len - OVERHEAD;
	uint8_t flag = json != NULL ? 1 : 0, tag[16];
	int outl = 0, finl = 0, ok;

	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(sizeof(label), 14);
	memcpy(tag, blob + 13 + ct_len, 16);
	ok = blob[0] == 0x01 &&
	    EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
	    EVP_DecryptInit_ex(c, NULL, NULL, key, blob + 1) == 1 &&
	    EVP_DecryptUpdate(c, NULL, &outl, label, sizeof(label)) == 1 &&
	    EVP_DecryptUpdate(c, NULL, &outl, &flag, 1) == 1 &&
	    (json == NULL || EVP_DecryptUpdate(c, NULL, &outl,
	    (const uint8_t *)json, (int)strlen(json)) == 1) &&
	    EVP_DecryptUpdate(c, out, &outl, blob + 13, (int)ct_len) == 1 &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1 &&
	    EVP_DecryptFinal_ex(c, out + outl, &finl) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok;
}

START_TEST(test_format_contract)
{
	char path[256];
	uint8_t key[32], out[64], *a, *bare, *empty;
	void *state = open_key("local/k1");
	size_t la, lb, le;

	key_path(path, sizeof(path), "k1");
	ck_assert_uint_eq(read_file(path, key, sizeof(key)), 32);
	la = wrap(state, pt32, 32, CTX_A, &a);
	lb = wrap(state, pt32, 32, NULL, &bare);
	le = wrap(state, pt32, 32, "{}", &empty);

	ck_assert(reference_decrypt(key, a, la, CTX_A, out));
	ck_assert_int_eq(memcmp(out, pt32, 32), 0);
	ck_assert(reference_decrypt(key, bare, lb, NULL, out));
	ck_assert_int_eq(memcmp(out, pt32, 32), 0);
	ck_assert(reference_decrypt(key, empty, le, "{}", out));
	ck_assert_int_eq(memcmp(out, pt32, 32), 0);
	ck_assert(!reference_decrypt(key, empty, le, NULL, out));
	ck_assert(!reference_decrypt(key, a, la, CTX_B, out));
	/* Contexts around the size the AAD stops going in one update
	 * (label 14 + flag 1 + JSON: 512 bytes at a JSON of 497). */
	for (size_t jl = 495; jl <= 499; jl++) {
		char json[1024];
		uint8_t *l;
		size_t ll;

		memset(json, 'x', sizeof(json));
		memcpy(json, "{\"k\":\"", 6);
		memcpy(json + jl - 2, "\"}", 2);
		json[jl] = '\0';
		ll = wrap(state, pt32, 32, json, &l);
		ck_assert(reference_decrypt(key, l, ll, json, out));
		ck_assert_int_eq(memcmp(out, pt32, 32), 0);
		unwrap_ok(state, l, ll, json, pt32, 32);
		free(l);
	}
	OPENSSL_cleanse(key, sizeof(key));
	free(a);
	free(bare);
	free(empty);
	provider_local.close(state);
}
END_TEST

START_TEST(test_refuse_bad_files)
{
	char path[256], target[256];
	uint8_t key[33] = { 0 };

	key_path(path, sizeof(path), "k");

	write_file(path, key, 32, 0644);
	open_fails("local/k", "0644");
	write_file(path, key, 32, 0640);
	open_fails("local/k", "group or others");
	write_file(path, key, 32, 0604);
	open_fails("local/k", "0604");
	write_file(path, key, 31, 0600);
	open_fails("local/k", "31 bytes");
	write_file(path, key, 33, 0600);
	open_fails("local/k", "33 bytes");
	write_file(path, key, 0, 0600);
	open_fails("local/k", "0 bytes");
	/* The refused file is left alone, not replaced. */
	ck_assert_int_eq(access(path, F_OK), 0);
	unlink(path);

	/* A symlink, even to a good key file, is refused; so is a dangling
	 * one (never followed to create a file elsewhere). */
	snprintf(target, sizeof(target), "%s/real.key", dir);
	write_file(target, key, 32, 0600);
	ck_assert_int_eq(symlink(target, path), 0);
	open_fails("local/k", "symbolic link");
	unlink(path);
	snprintf(target, sizeof(target), "%s/nowhere.key", dir);
	ck_assert_int_eq(symlink(target, path), 0);
	open_fails("local/k", "symbolic link");
	ck_assert_int_ne(access(target, F_OK), 0);
	unlink(path);

	/* Not a regular file: a directory, a FIFO (must not hang). */
	ck_assert_int_eq(mkdir(path, 0700), 0);
	open_fails("local/k", "not a regular file");
	rmdir(path);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	open_fails("local/k", "not a regular file");
	unlink(path);

	/* With the obstacle gone, a key is created. */
	provider_local.close(open_key("local/k"));
}
END_TEST

START_TEST(test_bad_names)
{
	static const char *const bad[] = {
		"local/", "local/.hidden", "local/.", "local/..",
		"local/a/b", "local/../x", "local/a b", "local/a\tb",
		"local/a:b", "local/\xc3\xa4", "local/a*",
		("local/01234567890123456789012345678901234567890123456789"
		"012345678901234"),	/* 65 */
	};
	static const char *const good[] = {
		"local/a", "local/a.b_c-D9", "local/a..b", "local/-x",
		("local/01234567890123456789012345678901234567890123456789"
		"01234567890123"),	/* 64 */
	};
	char err[512];
	void *state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		open_fails(bad[i], "bad local key id");
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		provider_local.close(open_key(good[i]));

	/* Not ours at all. */
	ck_assert_int_ne(try_open("insecure-test-key", &state, err,
	    sizeof(err)), 0);
	ck_assert_int_ne(try_open("locals/a", &state, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_state_dir)
{
	struct prov_env env = { .state_dir = NULL };
	char err[512] = "", missing[128];
	void *state = NULL;

	ck_assert_int_ne(provider_local.open("local/a", &env, &state, err,
	    sizeof(err)), 0);
	ck_assert_ptr_null(state);
	ck_assert_str_ne(err, "");
	ck_assert_int_ne(provider_local.open("local/a", NULL, &state, err,
	    sizeof(err)), 0);
	snprintf(missing, sizeof(missing), "%s/no/such/dir", dir);
	env.state_dir = missing;
	err[0] = '\0';
	ck_assert_int_ne(provider_local.open("local/a", &env, &state, err,
	    sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "cannot create"));
	ck_assert_ptr_null(state);
}
END_TEST

START_TEST(test_find)
{
	ck_assert_ptr_eq(provider_find("local/a"), &provider_local);
	ck_assert_ptr_eq(provider_find("local/"), &provider_local);
	ck_assert_ptr_eq(provider_find("local/.bad"), &provider_local);
	/* Not the local form: these fall through to another provider. */
	ck_assert_ptr_ne(provider_find("local"), &provider_local);
	ck_assert_ptr_ne(provider_find("locals/a"), &provider_local);
	ck_assert_ptr_ne(provider_find("Local/a"), &provider_local);
	ck_assert_str_eq(provider_local.name, "local");
	provider_local.close(NULL);
}
END_TEST

/* As the daemon runs it: the key lives in the secure heap and leaves
 * nothing allocated there after close. */
START_TEST(test_secure_heap)
{
	uint8_t *blob;
	size_t used, len;
	void *state;

	if (CRYPTO_secure_malloc_init(1 << 15, 16) != 1)
		return;	/* no mlock allowance here: nothing to check */
	/* OpenSSL's DRBG keeps its seed material there for the process's
	 * life; start counting after it exists. */
	state = open_key("local/k0");
	provider_local.close(state);
	used = CRYPTO_secure_used();
	state = open_key("local/k1");
	ck_assert_int_eq(CRYPTO_secure_allocated(state), 1);
	len = wrap(state, pt32, 32, CTX_A, &blob);
	unwrap_ok(state, blob, len, CTX_A, pt32, 32);
	provider_local.close(state);
	/* The nonce pool (rand.c) also lives there, on purpose, until
	 * exit: release it so only the key's own memory is compared. */
	rand_done();
	ck_assert_uint_eq(CRYPTO_secure_used(), used);
	free(blob);
	CRYPTO_secure_malloc_done();
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("provider_local");
	TCase *tc = tcase_create("local");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_key_file_created);
	tcase_add_test(tc, test_reopen_same_key);
	tcase_add_test(tc, test_roundtrip_shapes);
	tcase_add_test(tc, test_output_limit);
	tcase_add_test(tc, test_context_binding);
	tcase_add_test(tc, test_flipped_bytes);
	tcase_add_test(tc, test_truncated_and_extended);
	tcase_add_test(tc, test_unknown_version);
	tcase_add_test(tc, test_nonce_random);
	tcase_add_test(tc, test_format_contract);
	tcase_add_test(tc, test_refuse_bad_files);
	tcase_add_test(tc, test_bad_names);
	tcase_add_test(tc, test_state_dir);
	tcase_add_test(tc, test_find);
	tcase_add_test(tc, test_secure_heap);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
