/*
 * users.c: a users table with an encrypted email, as a Rails model with
 * kms_encrypted and Lockbox keeps it, in C with SQLite and libkmsclient.
 *
 *   class User < ApplicationRecord
 *     has_kms_key                          # encrypted_kms_key column
 *     has_encrypted :email, key: :kms_key  # email_ciphertext column
 *   end
 *
 * Each user has its own 32-byte data key. `create` asks kmsd for one on the
 * encrypt-only socket, under the context kms_encrypted sends for the record
 * ({model_name: "User", model_id: ID}), seals the email with it (a Lockbox
 * box, strict base64) and stores the box and the wrapped key; the plaintext
 * key is wiped. `show` unwraps the key on the decrypt socket and opens the
 * email. `rotate` has kmsd rewrap every stored key to the master key's
 * current version: the data keys, and so the email boxes, stay as they are,
 * and this program never sees a plaintext key. `--context k=v` changes a
 * pair of the record's context, which makes the record unreadable.
 *
 * Rows written by the Rails application and by this program are the same
 * bytes (tests/integration/test_example.py reads a row the gems wrote).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include <kmsclient.h>

#define EXIT_FAIL 1
#define EXIT_USAGE 2

/* kms_encrypted's context for a record of this model. */
#define MODEL_NAME "User"
/* Rows rewrapped per batch: enough to keep kmsd's pipeline full, few
 * enough that a large table never sits in memory whole. */
#define ROTATE_CHUNK 1000
/* --context pairs accepted. */
#define MAX_OVERRIDES 16

static const char *const SCHEMA =
    "CREATE TABLE IF NOT EXISTS users ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
    " email_ciphertext TEXT,"
    " encrypted_kms_key TEXT)";

struct opts {
	const char *db;
	const char *encrypt_socket;
	const char *decrypt_socket;
	const char *key;
	size_t n_over;
	char *over_k[MAX_OVERRIDES];	/* --context pairs, in order */
	const char *over_v[MAX_OVERRIDES];
};

static int
fail_kms(const char *what, const kms_error *e)
{
	fprintf(stderr, "users: %s: %s: %s\n", what, e->code, e->message);
	return EXIT_FAIL;
}

static int
fail_db(sqlite3 *db, const char *what)
{
	fprintf(stderr, "users: %s: %s\n", what, sqlite3_errmsg(db));
	return EXIT_FAIL;
}

/* The context kms_encrypted sends for user id, then the --context pairs
 * (a pair with a key already present replaces its value). */
static int
record_context(const struct opts *o, long long id, kms_context **ret,
    kms_error *e)
{
	kms_context *ctx = NULL;

	if (kms_context_new(&ctx, e) != 0 ||
	    kms_context_set(ctx, "model_name", MODEL_NAME, e) != 0 ||
	    kms_context_set_int(ctx, "model_id", id, e) != 0)
		goto bad;
	for (size_t i = 0; i < o->n_over; i++)
		if (kms_context_set(ctx, o->over_k[i], o->over_v[i], e) != 0)
			goto bad;
	*ret = ctx;
	return 0;
bad:
	kms_context_free(ctx);
	return -1;
}

/* Plaintext goes out with write(2): stdio's buffers are never wiped. */
static int
write_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
open_db(const char *path, sqlite3 **ret)
{
	sqlite3 *db = NULL;

	if (sqlite3_open(path, &db) != SQLITE_OK) {
		fprintf(stderr, "users: %s: %s\n", path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
		fail_db(db, "create table");
		sqlite3_close(db);
		return -1;
	}
	*ret = db;
	return 0;
}

/* --- create EMAIL ------------------------------------------------------- */

static int
cmd_create(const struct opts *o, sqlite3 *db, const char *email)
{
	unsigned char key[KMS_DATA_KEY_LEN];
	kms_client *c = NULL;
	kms_context *ctx = NULL;
	char *stored = NULL, *box = NULL;
	sqlite3_stmt *st = NULL;
	long long id;
	kms_error e;
	int rc = EXIT_FAIL;

	/* The id is part of the context, so the row comes first; the
	 * transaction keeps a half-made user from ever being seen. */
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return fail_db(db, "begin");
	if (sqlite3_exec(db, "INSERT INTO users DEFAULT VALUES", NULL, NULL,
	    NULL) != SQLITE_OK) {
		fail_db(db, "insert");
		goto out;
	}
	id = sqlite3_last_insert_rowid(db);
	if (record_context(o, id, &ctx, &e) != 0 ||
	    kms_connect(&c, o->encrypt_socket, &e) != 0 ||
	    kms_generate_data_key(c, o->key, ctx, key, &stored, &e) != 0) {
		fail_kms("generate", &e);
		goto out;
	}
	if (kms_box_seal_b64(key, email, strlen(email), NULL, 0, &box,
	    &e) != 0) {
		fail_kms("seal", &e);
		goto out;
	}
	if (sqlite3_prepare_v2(db, "UPDATE users SET email_ciphertext = ?,"
	    " encrypted_kms_key = ? WHERE id = ?", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, box, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, stored, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, id) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		fail_db(db, "update");
		goto out;
	}
	printf("%lld\n", id);
	rc = 0;
out:
	explicit_bzero(key, sizeof(key));
	if (rc != 0)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_finalize(st);
	kms_free(box);
	kms_free(stored);
	kms_context_free(ctx);
	kms_close(c);
	return rc;
}

/* --- show ID ------------------------------------------------------------ */

static int
cmd_show(const struct opts *o, sqlite3 *db, long long id)
{
	kms_client *c = NULL;
	kms_context *ctx = NULL;
	unsigned char *key = NULL, *email = NULL;
	size_t key_len = 0, email_len = 0;
	sqlite3_stmt *st = NULL;
	const char *box, *stored;
	kms_error e;
	int rc = EXIT_FAIL;

	if (sqlite3_prepare_v2(db, "SELECT email_ciphertext, encrypted_kms_key"
	    " FROM users WHERE id = ?", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, id) != SQLITE_OK)
		return fail_db(db, "select");
	if (sqlite3_step(st) != SQLITE_ROW) {
		fprintf(stderr, "users: no user %lld\n", id);
		goto out;
	}
	box = (const char *)sqlite3_column_text(st, 0);
	stored = (const char *)sqlite3_column_text(st, 1);
	if (box == NULL || stored == NULL) {
		fprintf(stderr, "users: user %lld has no email\n", id);
		goto out;
	}
	if (record_context(o, id, &ctx, &e) != 0 ||
	    kms_connect(&c, o->decrypt_socket, &e) != 0 ||
	    kms_decrypt(c, o->key, ctx, stored, &key, &key_len, &e) != 0) {
		fail_kms("decrypt", &e);
		goto out;
	}
	if (key_len != KMS_DATA_KEY_LEN) {
		fprintf(stderr, "users: user %lld: stored key is %zu bytes, "
		    "not a data key\n", id, key_len);
		goto out;
	}
	if (kms_box_open_b64(key, box, NULL, 0, &email, &email_len,
	    &e) != 0) {
		fail_kms("open", &e);
		goto out;
	}
	if (write_all(STDOUT_FILENO, email, email_len) != 0 ||
	    write_all(STDOUT_FILENO, "\n", 1) != 0) {
		perror("users: stdout");
		goto out;
	}
	rc = 0;
out:
	kms_free_secret(email, email_len);
	kms_free_secret(key, key_len);
	sqlite3_finalize(st);
	kms_context_free(ctx);
	kms_close(c);
	return rc;
}

/* --- list --------------------------------------------------------------- */

static int
cmd_list(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int r;

	if (sqlite3_prepare_v2(db, "SELECT id, encrypted_kms_key FROM users"
	    " ORDER BY id", -1, &st, NULL) != SQLITE_OK)
		return fail_db(db, "select");
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *stored = (const char *)sqlite3_column_text(st, 1);
		unsigned v = 0;

		if (stored != NULL && kms_stored_version(stored, &v) == 0)
			printf("%lld\tv%u\t%s\n", sqlite3_column_int64(st, 0),
			    v, stored);
		else
			printf("%lld\t-\t%s\n", sqlite3_column_int64(st, 0),
			    stored ? stored : "");
	}
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? 0 : fail_db(db, "select");
}

/* --- rotate ------------------------------------------------------------- */

/* The key's current version, as the decrypt socket reports it. */
static int
current_version(kms_client *c, const char *name, unsigned *ret)
{
	kms_key_info *keys = NULL;
	size_t n = 0;
	kms_error e;
	int found = 0;

	if (kms_keys(c, &keys, &n, &e) != 0)
		return fail_kms("keys", &e);
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].name, name) == 0) {
			*ret = keys[i].version;
			found = 1;
		}
	kms_free(keys);
	if (!found) {
		fprintf(stderr, "users: key %s is not on the decrypt socket\n",
		    name);
		return EXIT_FAIL;
	}
	return 0;
}

/* Counts over a whole rotate. */
struct rotate_count {
	size_t seen;		/* rows with a stored key */
	size_t done;		/* rewrapped and stored */
	size_t failed;		/* refused by kmsd */
};

/* One chunk: the rows after *after_id; those whose key is not at version
 * cur are rewrapped in one batch and the results stored in one
 * transaction. *after_id moves on; *more says whether rows remain. */
static int
rotate_chunk(const struct opts *o, sqlite3 *db, kms_client *c, unsigned cur,
    long long *after_id, int *more, struct rotate_count *cnt)
{
	long long ids[ROTATE_CHUNK];
	size_t n = 0;
	kms_batch *b = NULL;
	sqlite3_stmt *sel = NULL, *upd = NULL;
	kms_error e;
	int rc = EXIT_FAIL, r;

	if (sqlite3_prepare_v2(db, "SELECT id, encrypted_kms_key FROM users"
	    " WHERE id > ? AND encrypted_kms_key IS NOT NULL ORDER BY id"
	    " LIMIT ?", -1, &sel, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(sel, 1, *after_id) != SQLITE_OK ||
	    sqlite3_bind_int(sel, 2, ROTATE_CHUNK) != SQLITE_OK)
		return fail_db(db, "select");
	if (kms_batch_new(c, &b, &e) != 0) {
		fail_kms("batch", &e);
		goto out;
	}
	*more = 0;
	while ((r = sqlite3_step(sel)) == SQLITE_ROW) {
		long long id = sqlite3_column_int64(sel, 0);
		const char *stored = (const char *)sqlite3_column_text(sel, 1);
		kms_context *ctx = NULL;
		unsigned v;

		*after_id = id;
		*more = 1;
		cnt->seen++;
		if (kms_stored_version(stored, &v) == 0 && v == cur)
			continue;	/* already current */
		/* The batch copies the context and the stored string. */
		if (record_context(o, id, &ctx, &e) != 0 ||
		    kms_batch_add_rewrap(b, o->key, ctx, NULL, stored,
		    &e) != 0) {
			kms_context_free(ctx);
			fail_kms("rewrap", &e);
			goto out;
		}
		kms_context_free(ctx);
		ids[n++] = id;
	}
	if (r != SQLITE_DONE) {
		fail_db(db, "select");
		goto out;
	}
	if (n == 0) {
		rc = 0;
		goto out;
	}
	if (kms_batch_run(b, &e) != 0) {
		fail_kms("rewrap", &e);
		goto out;
	}
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		fail_db(db, "begin");
		goto out;
	}
	if (sqlite3_prepare_v2(db, "UPDATE users SET encrypted_kms_key = ?"
	    " WHERE id = ?", -1, &upd, NULL) != SQLITE_OK) {
		fail_db(db, "update");
		goto rollback;
	}
	for (size_t i = 0; i < n; i++) {
		const char *nstored = NULL;
		char what[64];

		if (kms_batch_result(b, i, &nstored, NULL, NULL, &e) != 0) {
			snprintf(what, sizeof(what), "user %lld", ids[i]);
			fail_kms(what, &e);
			cnt->failed++;
			continue;
		}
		if (sqlite3_bind_text(upd, 1, nstored, -1, SQLITE_STATIC) !=
		    SQLITE_OK ||
		    sqlite3_bind_int64(upd, 2, ids[i]) != SQLITE_OK ||
		    sqlite3_step(upd) != SQLITE_DONE ||
		    sqlite3_reset(upd) != SQLITE_OK) {
			fail_db(db, "update");
			goto rollback;
		}
		cnt->done++;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		fail_db(db, "commit");
		goto rollback;
	}
	rc = 0;
	goto out;
rollback:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
	sqlite3_finalize(upd);
	sqlite3_finalize(sel);
	kms_batch_free(b);
	return rc;
}

static int
cmd_rotate(const struct opts *o, sqlite3 *db)
{
	kms_client *c = NULL;
	struct rotate_count cnt = { 0, 0, 0 };
	long long after = 0;
	unsigned cur = 0;
	int more = 1, rc;
	kms_error e;

	if (kms_connect(&c, o->decrypt_socket, &e) != 0)
		return fail_kms("connect", &e);
	rc = current_version(c, o->key, &cur);
	while (rc == 0 && more)
		rc = rotate_chunk(o, db, c, cur, &after, &more, &cnt);
	kms_close(c);
	if (rc != 0)
		return rc;
	/* The rest of the rows were at v<cur> already. */
	printf("rotated %zu of %zu users to v%u\n", cnt.done, cnt.seen, cur);
	return cnt.failed == 0 ? 0 : EXIT_FAIL;
}

/* --- main --------------------------------------------------------------- */

static int
usage(FILE *f)
{
	fputs("usage: users [OPTIONS] create EMAIL | show ID | list | rotate\n"
	    "  -f, --db FILE               SQLite database (default users.db)\n"
	    "  -e, --encrypt-socket PATH   kmsd socket for create\n"
	    "                              (default $KMSD_ENCRYPT_SOCKET, else "
	    "/run/kmsd/encrypt.sock)\n"
	    "  -d, --decrypt-socket PATH   kmsd socket for show and rotate\n"
	    "                              (default $KMSD_DECRYPT_SOCKET, else "
	    "/run/kmsd/decrypt.sock)\n"
	    "  -k, --key NAME              kmsd key (default \"default\")\n"
	    "  -c, --context K=V           set a pair of the record's context\n"
	    "                              (default {model_name: User, "
	    "model_id: ID}); repeatable\n", f);
	return EXIT_USAGE;
}

static const char *
env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : dflt;
}

static int
parse_id(const char *s, long long *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1)
		return -1;
	*ret = v;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "db", required_argument, NULL, 'f' },
		{ "encrypt-socket", required_argument, NULL, 'e' },
		{ "decrypt-socket", required_argument, NULL, 'd' },
		{ "key", required_argument, NULL, 'k' },
		{ "context", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = {
		.db = "users.db",
		.encrypt_socket = env_or("KMSD_ENCRYPT_SOCKET",
		    "/run/kmsd/encrypt.sock"),
		.decrypt_socket = env_or("KMSD_DECRYPT_SOCKET",
		    "/run/kmsd/decrypt.sock"),
		.key = "default",
	};
	sqlite3 *db = NULL;
	const char *cmd;
	long long id = 0;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "f:e:d:k:c:h", long_opts,
	    NULL)) != -1) {
		char *eq;

		switch (ch) {
		case 'f':
			o.db = optarg;
			break;
		case 'e':
			o.encrypt_socket = optarg;
			break;
		case 'd':
			o.decrypt_socket = optarg;
			break;
		case 'k':
			o.key = optarg;
			break;
		case 'c':
			eq = strchr(optarg, '=');
			if (eq == NULL || eq == optarg ||
			    o.n_over == MAX_OVERRIDES) {
				fprintf(stderr, "users: --context wants K=V "
				    "(at most %d)\n", MAX_OVERRIDES);
				return EXIT_USAGE;
			}
			*eq = '\0';	/* argv is ours to split */
			o.over_k[o.n_over] = optarg;
			o.over_v[o.n_over++] = eq + 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return usage(stderr);
		}
	}
	if (optind >= argc)
		return usage(stderr);
	cmd = argv[optind++];
	if (strcmp(cmd, "create") == 0 && argc - optind == 1) {
		if (argv[optind][0] == '\0') {
			fprintf(stderr, "users: the email is empty\n");
			return EXIT_USAGE;
		}
	} else if (strcmp(cmd, "show") == 0 && argc - optind == 1) {
		if (parse_id(argv[optind], &id) != 0) {
			fprintf(stderr, "users: %s is not a user id\n",
			    argv[optind]);
			return EXIT_USAGE;
		}
	} else if ((strcmp(cmd, "list") != 0 && strcmp(cmd, "rotate") != 0) ||
	    argc != optind) {
		return usage(stderr);
	}
	if (open_db(o.db, &db) != 0)
		return EXIT_FAIL;
	if (strcmp(cmd, "create") == 0)
		rc = cmd_create(&o, db, argv[optind]);
	else if (strcmp(cmd, "show") == 0)
		rc = cmd_show(&o, db, id);
	else if (strcmp(cmd, "list") == 0)
		rc = cmd_list(db);
	else
		rc = cmd_rotate(&o, db);
	if (fflush(stdout) != 0 && rc == 0)
		rc = EXIT_FAIL;
	sqlite3_close(db);
	return rc;
}
