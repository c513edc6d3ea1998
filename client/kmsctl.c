/*
 * kmsctl.c: the command-line client of kmsd (DESIGN 3.6).
 *
 * Built on the public libkmsclient API only, plus common/ for base64 and
 * wipe-on-free buffers. Invariants: every byte of a data key or plaintext
 * goes through a struct buf or a kms_free_secret buffer and is written with
 * write(2), never through stdio, whose buffers are not wiped; each is wiped
 * as soon as it is written. Exit status: 0 ok, 1 refused or failed (the
 * error code and message on stderr), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auditchain.h"
#include "b64.h"
#include "buf.h"

#include "kmsclient.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

/* Admin commands go to the admin socket unless told otherwise. */
#define KMSCTL_ADMIN_SOCKET "/run/kmsd/admin.sock"
/* Lines per batch in rewrap: big enough to keep the pipeline full, small
 * enough that a huge input never sits in memory whole. */
#define REWRAP_CHUNK 1000
/* Bytes asked of one read(2) on stdin. */
#define READ_CHUNK 4096
/* Longest --timeout: a day, what libkmsclient accepts. */
#define TIMEOUT_MAX_MS 86400000UL
/* Room for base64 of a data key or of the largest plaintext, plus JSON. */
#define OUT_MAX (2 * KMS_MAX_PLAINTEXT + KMS_MAX_STORED + 64)

/* Options a command accepts. */
enum {
	OPT_CTX = 1 << 0,	/* -c, --empty-context */
	OPT_NEW_CTX = 1 << 1,	/* --new-context, --new-empty-context */
	OPT_PROM = 1 << 2,	/* --prometheus */
	OPT_AUDIT = 1 << 3,	/* --audit-path */
	OPT_REASON = 1 << 4,	/* --reason */
};

/* Long-only options. */
enum {
	LO_JSON = 256,
	LO_EMPTY_CTX,
	LO_NEW_CTX,
	LO_NEW_EMPTY_CTX,
	LO_PROM,
	LO_AUDIT,
	LO_REASON,
	LO_TIMEOUT,
};

struct opts {
	const char *socket;
	int json;
	unsigned timeout_ms;
	kms_context *ctx;	/* NULL: no context */
	kms_context *new_ctx;	/* NULL: same context */
	int prometheus;
	const char *audit_path;
	const char *reason;
	int admin;
};

struct command {
	const char *name;
	int (*run)(kms_client *c, struct opts *o, int argc, char **argv);
	unsigned opts;
	int min_args;
	int max_args;
};

static const char usage_text[] =
    "usage: kmsctl [-s SOCKET] [--json] [--timeout MS] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  hello                       server version, this socket's permissions\n"
    "                              and keys\n"
    "  keys                        the keys this socket may use\n"
    "  generate KEY [-c k=v]... [--empty-context]\n"
    "                              new data key: prints the stored ciphertext,\n"
    "                              then the key in base64 (two lines)\n"
    "  encrypt KEY [-c k=v]... < PLAINTEXT\n"
    "                              prints the stored ciphertext (plaintext at\n"
    "                              most 4096 bytes)\n"
    "  decrypt KEY [-c k=v]... [CIPHERTEXT]\n"
    "                              writes the plaintext bytes (the ciphertext\n"
    "                              is read from stdin without an argument)\n"
    "  rewrap KEY [-c k=v]... [--new-context k=v]...\n"
    "                              stored ciphertexts on stdin, one a line; the\n"
    "                              new ones on stdout in the same order (a line\n"
    "                              that fails gives an empty line and an error\n"
    "                              on stderr, and the exit status is 1)\n"
    "  stats [--prometheus]        counters (JSON, or Prometheus text)\n"
    "  context-hash KEY -c k=v... --audit-path PATH\n"
    "                              Vault's context hash\n"
    "  admin status | disable-decrypt [--reason TEXT] | enable-decrypt |"
    " reload\n"
    "  audit verify FILE...        check the audit log's hash chain (files\n"
    "                              in order, oldest first; no daemon needed)\n"
    "\n"
    "options:\n"
    "  -s, --socket SOCKET         default $KMSD_SOCKET, else " KMS_DEFAULT_SOCKET
    "\n"
    "                              (admin: $KMSD_ADMIN_SOCKET, else\n"
    "                              $KMSD_SOCKET, else " KMSCTL_ADMIN_SOCKET ")\n"
    "      --json                  JSON output\n"
    "      --timeout MS            per-request timeout (default 5000)\n"
    "  -c, --context k=v           add a context pair (repeatable; split at the\n"
    "                              first '='); no -c at all sends no context\n"
    "      --empty-context         send the empty context {}\n"
    "      --new-context k=v       rewrap: a pair of the new context (default:\n"
    "                              the same context)\n"
    "      --new-empty-context     rewrap: the new context is {}\n"
    "  -h, --help                  this text\n"
    "\n"
    "exit status: 0 ok, 1 refused or failed, 2 usage\n";

static const struct option long_opts[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "json", no_argument, NULL, LO_JSON },
	{ "timeout", required_argument, NULL, LO_TIMEOUT },
	{ "help", no_argument, NULL, 'h' },
	{ "context", required_argument, NULL, 'c' },
	{ "empty-context", no_argument, NULL, LO_EMPTY_CTX },
	{ "new-context", required_argument, NULL, LO_NEW_CTX },
	{ "new-empty-context", no_argument, NULL, LO_NEW_EMPTY_CTX },
	{ "prometheus", no_argument, NULL, LO_PROM },
	{ "audit-path", required_argument, NULL, LO_AUDIT },
	{ "reason", required_argument, NULL, LO_REASON },
	{ NULL, 0, NULL, 0 },
};

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("kmsctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n\n", stderr);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

static int
fail(const kms_error *e)
{
	fprintf(stderr, "kmsctl: %s: %s\n", e->code, e->message);
	return EXIT_FAIL;
}

static int fail_local(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail_local(const char *code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kmsctl: %s: ", code);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAIL;
}

/* write(2) all of p to stdout: the secret-carrying path, no stdio copy. */
static int
write_all(const void *p, size_t n)
{
	const char *s = p;

	if (fflush(stdout) != 0)
		return -1;
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read all of stdin into b: 0, -1 I/O error, -2 more than b's cap. */
static int
read_stdin(struct buf *b)
{
	for (;;) {
		size_t room = b->max - b->len;
		ssize_t n;

		if (room == 0) {
			char extra;

			/* Full: is there more? */
			n = read(STDIN_FILENO, &extra, 1);
			if (n < 0 && errno == EINTR)
				continue;
			OPENSSL_cleanse(&extra, sizeof(extra));
			return n == 0 ? 0 : n > 0 ? -2 : -1;
		}
		if (room > READ_CHUNK)
			room = READ_CHUNK;
		if (buf_reserve(b, room) != 0)
			return -1;
		n = read(STDIN_FILENO, b->data + b->len, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		b->len += (size_t)n;
	}
}

/* JSON string literal of s on f (server strings: escape what JSON needs). */
static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* The same into a buffer (for output that also holds a secret). */
static int
buf_json_str(struct buf *b, const char *s)
{
	char esc[8];
	int r = buf_append_byte(b, '"');

	for (const unsigned char *p = (const unsigned char *)s; *p && !r; p++) {
		if (*p == '"' || *p == '\\' || *p < 0x20 || *p == 0x7f) {
			if (*p == '"' || *p == '\\')
				snprintf(esc, sizeof(esc), "\\%c", *p);
			else
				snprintf(esc, sizeof(esc), "\\u%04x", *p);
			r = buf_append_str(b, esc);
		} else {
			r = buf_append_byte(b, *p);
		}
	}
	return r != 0 ? r : buf_append_byte(b, '"');
}

/* Server text on a terminal: control bytes other than newline and tab
 * shown as '?'. */
static void
text_str(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		fputc((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f ?
		    '?' : *p, f);
}

static int
finish_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return fail_local("io_error", "writing stdout: %s",
		    strerror(errno));
	return 0;
}

/* --- commands ---------------------------------------------------------------- */

static void
print_keys_json(const kms_key_info *keys, size_t n)
{
	fputc('[', stdout);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
		json_str(stdout, keys[i].name);
		printf(",\"version\":%u,\"provider\":", keys[i].version);
		json_str(stdout, keys[i].provider);
		fputc('}', stdout);
	}
	fputc(']', stdout);
}

static void
print_keys_text(const kms_key_info *keys, size_t n, const char *indent)
{
	for (size_t i = 0; i < n; i++) {
		fputs(indent, stdout);
		text_str(stdout, keys[i].name);
		printf("\tversion %u\t", keys[i].version);
		text_str(stdout, keys[i].provider);
		fputc('\n', stdout);
	}
}

static int
cmd_hello(kms_client *c, struct opts *o, int argc, char **argv)
{
	kms_hello_info *h;
	kms_error e;

	if (kms_hello(c, &h, &e) != 0)
		return fail(&e);
	if (o->json) {
		fputs("{\"version\":", stdout);
		json_str(stdout, h->version);
		printf(",\"protocol\":%u,\"socket\":", h->protocol);
		json_str(stdout, h->socket);
		fputs(",\"allow\":[", stdout);
		for (size_t i = 0; i < h->n_allow; i++) {
			if (i > 0)
				fputc(',', stdout);
			json_str(stdout, h->allow[i]);
		}
		fputs("],\"keys\":", stdout);
		print_keys_json(h->keys, h->n_keys);
		fputs("}\n", stdout);
	} else {
		fputs("server: kmsd ", stdout);
		text_str(stdout, h->version);
		printf(" (protocol %u)\nsocket: ", h->protocol);
		text_str(stdout, h->socket);
		fputs("\nallow:", stdout);
		for (size_t i = 0; i < h->n_allow; i++) {
			fputc(' ', stdout);
			text_str(stdout, h->allow[i]);
		}
		fputs("\nkeys:\n", stdout);
		print_keys_text(h->keys, h->n_keys, "  ");
	}
	kms_free(h);
	return finish_stdout();
}

static int
cmd_keys(kms_client *c, struct opts *o, int argc, char **argv)
{
	kms_key_info *keys;
	kms_error e;
	size_t n;

	if (kms_keys(c, &keys, &n, &e) != 0)
		return fail(&e);
	if (o->json) {
		print_keys_json(keys, n);
		fputc('\n', stdout);
	} else {
		print_keys_text(keys, n, "");
	}
	kms_free(keys);
	return finish_stdout();
}

static int
cmd_generate(kms_client *c, struct opts *o, int argc, char **argv)
{
	unsigned char key[KMS_DATA_KEY_LEN];
	struct buf out;
	char *stored;
	kms_error e;
	int rc = EXIT_FAIL;

	if (kms_generate_data_key(c, argv[0], o->ctx, key, &stored, &e) != 0)
		return fail(&e);
	buf_init(&out, OUT_MAX);
	if (buf_append_str(&out, o->json ? "{\"ciphertext\":" : "") != 0 ||
	    (o->json ? buf_json_str(&out, stored) :
	    buf_append_str(&out, stored)) != 0 ||
	    buf_append_str(&out, o->json ? ",\"plaintext\":\"" : "\n") != 0 ||
	    b64_encode(&out, key, sizeof(key)) != 0 ||
	    buf_append_str(&out, o->json ? "\"}\n" : "\n") != 0) {
		fail_local("no_memory", "out of memory");
		goto out;
	}
	if (write_all(out.data, out.len) != 0) {
		fail_local("io_error", "writing stdout: %s", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	buf_done(&out);
	kms_free(stored);
	return rc;
}

static int
cmd_encrypt(kms_client *c, struct opts *o, int argc, char **argv)
{
	struct buf in;
	char *stored = NULL;
	kms_error e;
	int rc = EXIT_FAIL, r;

	/* read_stdin tells "over the limit" from "exactly 4096 bytes". */
	buf_init(&in, KMS_MAX_PLAINTEXT);
	if ((r = read_stdin(&in)) == -2) {
		fail_local("too_large", "plaintext on stdin is over %d bytes",
		    KMS_MAX_PLAINTEXT);
		goto out;
	}
	if (r != 0) {
		fail_local("io_error", "reading stdin: %s", strerror(errno));
		goto out;
	}
	if (in.len == 0) {
		fail_local("invalid_argument", "no plaintext on stdin");
		goto out;
	}
	if (kms_encrypt(c, argv[0], o->ctx, in.data, in.len, &stored,
	    &e) != 0) {
		fail(&e);
		goto out;
	}
	if (o->json) {
		fputs("{\"ciphertext\":", stdout);
		json_str(stdout, stored);
		fputs("}\n", stdout);
	} else {
		printf("%s\n", stored);
	}
	rc = finish_stdout();
out:
	buf_done(&in);
	kms_free(stored);
	return rc;
}

/* Drop one trailing "\n" (and a "\r" before it). */
static void
chomp(char *s, size_t *n)
{
	if (*n > 0 && s[*n - 1] == '\n')
		s[--*n] = '\0';
	if (*n > 0 && s[*n - 1] == '\r')
		s[--*n] = '\0';
}

static int
cmd_decrypt(kms_client *c, struct opts *o, int argc, char **argv)
{
	unsigned char *pt = NULL;
	size_t pt_len = 0;
	const char *stored;
	struct buf in, out;
	kms_error e;
	int rc = EXIT_FAIL, r;

	buf_init(&in, KMS_MAX_STORED + 2);	/* + "\r\n" */
	buf_init(&out, OUT_MAX);
	if (argc > 1) {
		stored = argv[1];
	} else {
		if ((r = read_stdin(&in)) == -2) {
			fail_local("too_large", "ciphertext on stdin is over "
			    "%d bytes", KMS_MAX_STORED);
			goto out;
		}
		if (r != 0 || buf_cstr(&in) != 0) {
			fail_local("io_error", "reading stdin: %s",
			    strerror(errno));
			goto out;
		}
		chomp((char *)in.data, &in.len);
		if (memchr(in.data, '\0', in.len) != NULL ||
		    memchr(in.data, '\n', in.len) != NULL) {
			fail_local("invalid_argument",
			    "stdin holds more than one ciphertext line");
			goto out;
		}
		stored = (const char *)in.data;
	}
	if (kms_decrypt(c, argv[0], o->ctx, stored, &pt, &pt_len, &e) != 0) {
		fail(&e);
		goto out;
	}
	if (o->json) {
		if (buf_append_str(&out, "{\"plaintext\":\"") != 0 ||
		    b64_encode(&out, pt, pt_len) != 0 ||
		    buf_append_str(&out, "\"}\n") != 0) {
			fail_local("no_memory", "out of memory");
			goto out;
		}
		r = write_all(out.data, out.len);
	} else {
		r = write_all(pt, pt_len);
	}
	if (r != 0) {
		fail_local("io_error", "writing stdout: %s", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	kms_free_secret(pt, pt_len);
	buf_done(&in);
	buf_done(&out);
	return rc;
}

/* One chunk of rewrap input: the lines and, per line, its batch item. */
struct rewrap_chunk {
	char *lines[REWRAP_CHUNK];
	long item[REWRAP_CHUNK];	/* -1: refused before sending */
	kms_error err[REWRAP_CHUNK];	/* for item -1 */
	size_t n;
};

/* Send one chunk as a batch and print its results in order. 0 all ok, 1 some
 * lines failed, -1 the batch as a whole failed (reported). */
static int
rewrap_chunk(kms_client *c, struct opts *o, const char *key,
    struct rewrap_chunk *ch, unsigned long first_line)
{
	kms_batch *b = NULL;
	kms_error e;
	int rc = 0;
	long k = 0;

	if (kms_batch_new(c, &b, &e) != 0) {
		fail(&e);
		return -1;
	}
	for (size_t i = 0; i < ch->n; i++) {
		if (ch->lines[i][0] == '\0') {
			snprintf(ch->err[i].code, sizeof(ch->err[i].code),
			    "invalid_argument");
			snprintf(ch->err[i].message,
			    sizeof(ch->err[i].message), "empty line");
			ch->item[i] = -1;
			continue;
		}
		if (kms_batch_add_rewrap(b, key, o->ctx, o->new_ctx,
		    ch->lines[i], &ch->err[i]) != 0) {
			if (strcmp(ch->err[i].code, "no_memory") == 0) {
				fail(&ch->err[i]);
				rc = -1;
				goto out;
			}
			ch->item[i] = -1;
			continue;
		}
		ch->item[i] = k++;
	}
	if (kms_batch_run(b, &e) != 0) {
		fail(&e);
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < ch->n; i++) {
		const char *stored;
		const kms_error *ie = &ch->err[i];

		if (ch->item[i] >= 0 && kms_batch_result(b,
		    (size_t)ch->item[i], &stored, NULL, NULL, &e) == 0) {
			printf("%s\n", stored);
			continue;
		}
		if (ch->item[i] >= 0)
			ie = &e;
		fprintf(stderr, "kmsctl: line %lu: %s: %s\n",
		    (unsigned long)(first_line + i), ie->code, ie->message);
		/* Keep output line N the answer to input line N. */
		fputc('\n', stdout);
		rc = 1;
	}
out:
	kms_batch_free(b);
	return rc;
}

static int
cmd_rewrap(kms_client *c, struct opts *o, int argc, char **argv)
{
	struct rewrap_chunk *ch;
	unsigned long line_no = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int failed = 0, r, rc = EXIT_FAIL;

	if ((ch = calloc(1, sizeof(*ch))) == NULL)
		return fail_local("no_memory", "out of memory");
	for (;;) {
		len = getline(&line, &cap, stdin);
		if (len >= 0) {
			size_t n = (size_t)len;

			chomp(line, &n);
			ch->lines[ch->n++] = line;
			line = NULL;
			cap = 0;
			line_no++;
		}
		if (ch->n == REWRAP_CHUNK || (len < 0 && ch->n > 0)) {
			r = rewrap_chunk(c, o, argv[0], ch,
			    line_no - ch->n + 1);
			for (size_t i = 0; i < ch->n; i++)
				free(ch->lines[i]);
			ch->n = 0;
			if (r < 0)
				goto out;
			failed |= r;
			if (fflush(stdout) != 0) {
				finish_stdout();
				goto out;
			}
		}
		if (len < 0)
			break;
	}
	if (ferror(stdin)) {
		fail_local("io_error", "reading stdin: %s", strerror(errno));
		goto out;
	}
	rc = finish_stdout() != 0 || failed ? EXIT_FAIL : 0;
out:
	for (size_t i = 0; i < ch->n; i++)
		free(ch->lines[i]);
	free(ch);
	free(line);
	return rc;
}

static void
print_text(const char *s)
{
	size_t n = strlen(s);

	fputs(s, stdout);
	if (n == 0 || s[n - 1] != '\n')
		fputc('\n', stdout);
}

static int
cmd_stats(kms_client *c, struct opts *o, int argc, char **argv)
{
	kms_error e;
	char *text;

	if (kms_stats(c, o->prometheus, &text, &e) != 0)
		return fail(&e);
	print_text(text);
	kms_free(text);
	return finish_stdout();
}

static int
cmd_context_hash(kms_client *c, struct opts *o, int argc, char **argv)
{
	kms_error e;
	char *hash;

	if (o->audit_path == NULL)
		return usage_error("context-hash needs --audit-path");
	if (kms_context_hash(c, argv[0], o->ctx, o->audit_path, &hash,
	    &e) != 0)
		return fail(&e);
	if (o->json) {
		fputs("{\"context_hash\":", stdout);
		json_str(stdout, hash);
		fputs("}\n", stdout);
	} else {
		print_text(hash);
	}
	kms_free(hash);
	return finish_stdout();
}

static int
cmd_admin(kms_client *c, struct opts *o, int argc, char **argv)
{
	const char *sub = argv[0];
	char *json;
	kms_error e;

	if (o->reason != NULL && strcmp(sub, "disable-decrypt") != 0)
		return usage_error("--reason goes with admin disable-decrypt");
	if (strcmp(sub, "status") == 0) {
		if (kms_admin_status(c, &json, &e) != 0)
			return fail(&e);
		print_text(json);
		kms_free(json);
		return finish_stdout();
	}
	if (strcmp(sub, "disable-decrypt") == 0) {
		if (kms_admin_disable_decrypt(c, o->reason, &e) != 0)
			return fail(&e);
	} else if (strcmp(sub, "enable-decrypt") == 0) {
		if (kms_admin_enable_decrypt(c, &e) != 0)
			return fail(&e);
	} else if (strcmp(sub, "reload") == 0) {
		if (kms_admin_reload(c, &e) != 0)
			return fail(&e);
	}
	return 0;
}

/* audit verify FILE...: the log's hash chain, offline (no daemon). */
static int
cmd_audit(kms_client *c, struct opts *o, int argc, char **argv)
{
	char msg[1024];
	int r;

	if (strcmp(argv[0], "verify") != 0)
		return usage_error("unknown audit command '%s'", argv[0]);
	if (argc < 2)
		return usage_error("audit verify needs at least one FILE");
	r = auditchain_verify((const char *const *)argv + 1,
	    (size_t)argc - 1, msg, sizeof(msg));
	if (r == 0) {
		printf("%s\n", msg);
		return finish_stdout();
	}
	fprintf(stderr, "kmsctl: %s\n", msg);
	return 1;
}

static const struct command commands[] = {
	{ "hello", cmd_hello, 0, 0, 0 },
	{ "keys", cmd_keys, 0, 0, 0 },
	{ "generate", cmd_generate, OPT_CTX, 1, 1 },
	{ "encrypt", cmd_encrypt, OPT_CTX, 1, 1 },
	{ "decrypt", cmd_decrypt, OPT_CTX, 1, 2 },
	{ "rewrap", cmd_rewrap, OPT_CTX | OPT_NEW_CTX, 1, 1 },
	{ "stats", cmd_stats, OPT_PROM, 0, 0 },
	{ "context-hash", cmd_context_hash, OPT_CTX | OPT_AUDIT, 1, 1 },
	{ "admin", cmd_admin, OPT_REASON, 1, 1 },
	{ "audit", cmd_audit, 0, 2, 64 },
};

/* --- arguments ---------------------------------------------------------------- */

/* Add "k=v" (split at the first '=') to *ctx, creating it. */
static int
add_pair(kms_context **ctx, const char *arg, const char *opt)
{
	const char *eq = strchr(arg, '=');
	kms_error e;
	char *k;
	int r;

	if (eq == NULL)
		return usage_error("%s wants k=v, not '%s'", opt, arg);
	if (*ctx == NULL && kms_context_new(ctx, &e) != 0)
		return fail(&e);
	if ((k = strndup(arg, (size_t)(eq - arg))) == NULL)
		return fail_local("no_memory", "out of memory");
	r = kms_context_set(*ctx, k, eq + 1, &e);
	free(k);
	if (r != 0)
		return usage_error("%s %s: %s", opt, arg, e.message);
	return 0;
}

static int
empty_ctx(kms_context **ctx)
{
	kms_error e;

	if (*ctx == NULL && kms_context_new(ctx, &e) != 0)
		return fail(&e);
	return 0;
}

static int
parse_timeout(const char *s, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0 ||
	    v > TIMEOUT_MAX_MS || s[0] == '-')
		return usage_error("--timeout wants 1 to %lu ms, not '%s'",
		    TIMEOUT_MAX_MS, s);
	*ret = (unsigned)v;
	return 0;
}

/*
 * One option, global or a command's. allowed is the command's option set
 * (~0u while reading the global options, where only the global ones appear
 * in the option string anyway).
 */
static int
take_option(int ch, unsigned allowed, struct opts *o, int *have_c,
    int *have_empty, int *have_new_c, int *have_new_empty)
{
	const char *name = NULL;
	unsigned need = 0;

	switch (ch) {
	case 'c':
		name = "-c";
		need = OPT_CTX;
		break;
	case LO_EMPTY_CTX:
		name = "--empty-context";
		need = OPT_CTX;
		break;
	case LO_NEW_CTX:
		name = "--new-context";
		need = OPT_NEW_CTX;
		break;
	case LO_NEW_EMPTY_CTX:
		name = "--new-empty-context";
		need = OPT_NEW_CTX;
		break;
	case LO_PROM:
		name = "--prometheus";
		need = OPT_PROM;
		break;
	case LO_AUDIT:
		name = "--audit-path";
		need = OPT_AUDIT;
		break;
	case LO_REASON:
		name = "--reason";
		need = OPT_REASON;
		break;
	default:
		break;
	}
	if (need != 0 && !(allowed & need))
		return usage_error("%s does not go with this command", name);
	switch (ch) {
	case 's':
		o->socket = optarg;
		return 0;
	case LO_JSON:
		o->json = 1;
		return 0;
	case LO_TIMEOUT:
		return parse_timeout(optarg, &o->timeout_ms);
	case 'h':
		fputs(usage_text, stdout);
		return -1;
	case 'c':
		*have_c = 1;
		return add_pair(&o->ctx, optarg, "-c");
	case LO_EMPTY_CTX:
		*have_empty = 1;
		return empty_ctx(&o->ctx);
	case LO_NEW_CTX:
		*have_new_c = 1;
		return add_pair(&o->new_ctx, optarg, "--new-context");
	case LO_NEW_EMPTY_CTX:
		*have_new_empty = 1;
		return empty_ctx(&o->new_ctx);
	case LO_PROM:
		o->prometheus = 1;
		return 0;
	case LO_AUDIT:
		o->audit_path = optarg;
		return 0;
	case LO_REASON:
		o->reason = optarg;
		return 0;
	default:
		/* getopt_long has said what was wrong. */
		fputc('\n', stderr);
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
}

static const char *
default_socket(int admin)
{
	const char *s;

	if (admin && (s = getenv("KMSD_ADMIN_SOCKET")) != NULL && *s != '\0')
		return s;
	if ((s = getenv("KMSD_SOCKET")) != NULL && *s != '\0')
		return s;
	return admin ? KMSCTL_ADMIN_SOCKET : KMS_DEFAULT_SOCKET;
}

static int
run(int argc, char **argv, struct opts *o)
{
	const struct command *cmd = NULL;
	int have_c = 0, have_empty = 0, have_new_c = 0, have_new_empty = 0;
	kms_client *c = NULL;
	char **args;
	int ch, r, nargs;
	kms_error e;

	/* getopt's own messages name argv[0]: make it "kmsctl" whatever path
	 * ran us, like every other message. */
	argv[0] = (char *)"kmsctl";
	/* Global options stop at the command ('+'). */
	while ((ch = getopt_long(argc, argv, "+s:h", long_opts, NULL)) != -1) {
		if (ch != 's' && ch != 'h' && ch != LO_JSON &&
		    ch != LO_TIMEOUT && ch != '?' && ch != ':')
			return usage_error("options of a command go after it");
		if ((r = take_option(ch, 0, o, &have_c, &have_empty,
		    &have_new_c, &have_new_empty)) != 0)
			return r < 0 ? 0 : r;
	}
	if (optind >= argc)
		return usage_error("no command");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (cmd == NULL)
		return usage_error("unknown command '%s'", argv[optind]);

	/* The command's own options, anywhere among its arguments. getopt
	 * names argv[0] in its messages, so that stays "kmsctl". */
	args = argv + optind;
	nargs = argc - optind;
	args[0] = argv[0];
	optind = 0;
	while ((ch = getopt_long(nargs, args, "s:hc:", long_opts,
	    NULL)) != -1) {
		if ((r = take_option(ch, cmd->opts, o, &have_c, &have_empty,
		    &have_new_c, &have_new_empty)) != 0)
			return r < 0 ? 0 : r;
	}
	/* The positional arguments, after the command name. */
	args += optind;
	nargs -= optind;
	if (nargs < cmd->min_args || nargs > cmd->max_args)
		return usage_error("wrong number of arguments for %s",
		    cmd->name);
	if (have_c && have_empty)
		return usage_error("-c and --empty-context exclude each other");
	if (have_new_c && have_new_empty)
		return usage_error("--new-context and --new-empty-context "
		    "exclude each other");
	if (cmd->run == cmd_admin) {
		o->admin = 1;
		if (strcmp(args[0], "status") != 0 &&
		    strcmp(args[0], "disable-decrypt") != 0 &&
		    strcmp(args[0], "enable-decrypt") != 0 &&
		    strcmp(args[0], "reload") != 0)
			return usage_error("unknown admin command '%s'",
			    args[0]);
	}
	if (cmd->run == cmd_audit)
		return cmd_audit(NULL, o, nargs, args);
	if (kms_connect(&c, o->socket != NULL ? o->socket :
	    default_socket(o->admin), &e) != 0)
		return fail(&e);
	if (o->timeout_ms != 0 && kms_set_timeout(c, o->timeout_ms, &e) != 0) {
		kms_close(c);
		return fail(&e);
	}
	r = cmd->run(c, o, nargs, args);
	kms_close(c);
	return r;
}

int
main(int argc, char **argv)
{
	struct opts o;
	int r;

	memset(&o, 0, sizeof(o));
	r = run(argc, argv, &o);
	kms_context_free(o.ctx);
	kms_context_free(o.new_ctx);
	return r;
}
