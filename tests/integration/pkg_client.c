/*
 * pkg_client.c: the smallest real application of an installed
 * libkmsclient, built by test_packaging.py with nothing but
 * `pkg-config --cflags --libs kmsclient`: it proves the installed header,
 * library and .pc file are enough to talk to a live kmsd.
 *
 * usage: pkg_client ENCRYPT_SOCKET DECRYPT_SOCKET
 * A data key made on the encrypt socket must come back unchanged from the
 * decrypt socket under the same context; the encrypt socket must refuse to
 * decrypt. Prints "ok" and exits 0, or names what failed and exits 1.
 */
#include <stdio.h>
#include <string.h>

#include <kmsclient.h>

static int
fail(const char *what, const kms_error *e)
{
	fprintf(stderr, "pkg_client: %s: %s: %s\n", what, e->code, e->message);
	return 1;
}

int
main(int argc, char **argv)
{
	unsigned char key[KMS_DATA_KEY_LEN], *pt = NULL;
	kms_client *enc = NULL, *dec = NULL;
	kms_context *ctx = NULL;
	char *stored = NULL;
	size_t pt_len = 0;
	unsigned version;
	kms_error e;
	int rc = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: pkg_client ENCRYPT_SOCKET "
		    "DECRYPT_SOCKET\n");
		return 2;
	}
	if (kms_connect(&enc, argv[1], &e) != 0) {
		rc = fail("connect encrypt", &e);
		goto out;
	}
	if (kms_connect(&dec, argv[2], &e) != 0) {
		rc = fail("connect decrypt", &e);
		goto out;
	}
	if (kms_context_new(&ctx, &e) != 0 ||
	    kms_context_set_int(ctx, "user_id", 42, &e) != 0) {
		rc = fail("context", &e);
		goto out;
	}
	if (kms_generate_data_key(enc, "default", ctx, key, &stored,
	    &e) != 0) {
		rc = fail("generate", &e);
		goto out;
	}
	if (kms_stored_version(stored, &version) != 0 || version != 1) {
		fprintf(stderr, "pkg_client: unexpected stored value %s\n",
		    stored);
		goto out;
	}
	if (kms_decrypt(enc, "default", ctx, stored, &pt, &pt_len, &e) == 0 ||
	    strcmp(e.code, "permission_denied") != 0) {
		fprintf(stderr, "pkg_client: the encrypt socket did not refuse "
		    "decrypt (%s)\n", pt != NULL ? "it decrypted" : e.code);
		goto out;
	}
	if (kms_decrypt(dec, "default", ctx, stored, &pt, &pt_len, &e) != 0) {
		rc = fail("decrypt", &e);
		goto out;
	}
	if (pt_len != sizeof(key) || memcmp(pt, key, sizeof(key)) != 0) {
		fprintf(stderr, "pkg_client: decrypted key differs\n");
		goto out;
	}
	printf("ok\n");
	rc = 0;
out:
	explicit_bzero(key, sizeof(key));
	kms_free_secret(pt, pt_len);
	kms_free(stored);
	kms_context_free(ctx);
	kms_close(enc);
	kms_close(dec);
	return rc;
}
