/*
 * test_audit.c: the audit log writer (daemon/audit.c) and its hash chain
 * verifier (common/auditchain.c): fields and their order, escaping, the
 * chain across reopen and rotation, tamper detection, fail-closed writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "audit.h"
#include "auditchain.h"
#include "err.h"

/* Lines a test file may hold. */
#define T_MAX_LINES 64

static char tdir[64];
static struct rlimit t_fsize;

struct lines {
	char *data;		/* the file, NUL-terminated */
	size_t size;
	size_t n;
	char *line[T_MAX_LINES];	/* each NUL-terminated in data */
	size_t len[T_MAX_LINES];
};

static void
setup(void)
{
	snprintf(tdir, sizeof(tdir), "/tmp/kmsd-test-audit-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &t_fsize), 0);
}

static void
teardown(void)
{
	DIR *d = opendir(tdir);
	struct dirent *de;
	char p[512];

	/* A test that failed mid-way must not leave the limit behind when
	 * Check runs the cases in one process (CK_FORK=no). */
	setrlimit(RLIMIT_FSIZE, &t_fsize);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", tdir, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(tdir);
}

static const char *
tp(char *out, size_t outlen, const char *name)
{
	snprintf(out, outlen, "%s/%s", tdir, name);
	return out;
}

static char *
read_all(const char *path, size_t *size)
{
	FILE *fp = fopen(path, "rb");
	char *p;
	long n;

	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	ck_assert_int_ge(n, 0);
	rewind(fp);
	p = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(fread(p, 1, (size_t)n, fp), (size_t)n);
	p[n] = '\0';
	fclose(fp);
	*size = (size_t)n;
	return p;
}

static void
write_all(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
	ck_assert_int_eq(fclose(fp), 0);
}

static void
append_str(const char *path, const char *s)
{
	FILE *fp = fopen(path, "ab");

	ck_assert_ptr_nonnull(fp);
	fputs(s, fp);
	ck_assert_int_eq(fclose(fp), 0);
}

/* Split a file of complete lines. */
static void
lines_read(struct lines *l, const char *path)
{
	char *p, *nl;

	memset(l, 0, sizeof(*l));
	l->data = read_all(path, &l->size);
	for (p = l->data; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		ck_assert_uint_lt(l->n, T_MAX_LINES);
		*nl = '\0';
		l->line[l->n] = p;
		l->len[l->n] = (size_t)(nl - p);
		l->n++;
	}
	ck_assert_str_eq(p, "");
}

/* Write lines back, in the order given by idx (n of them). */
static void
lines_write(const struct lines *l, const char *path, const size_t *idx,
    size_t n)
{
	FILE *fp = fopen(path, "wb");

	ck_assert_ptr_nonnull(fp);
	for (size_t i = 0; i < n; i++) {
		fwrite(l->line[idx[i]], 1, l->len[idx[i]], fp);
		fputc('\n', fp);
	}
	ck_assert_int_eq(fclose(fp), 0);
}

static json_t *
parse_line(const char *line, size_t len)
{
	json_error_t jerr;
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES |
	    JSON_ALLOW_NUL, &jerr);

	ck_assert_msg(o != NULL, "line does not parse: %s: %s", jerr.text,
	    line);
	ck_assert(json_is_object(o));
	return o;
}

/* The member names of o in text order, comma-separated. */
static void
member_order(json_t *o, char *out, size_t outlen)
{
	size_t n = 0;

	out[0] = '\0';
	for (void *it = json_object_iter(o); it != NULL;
	    it = json_object_iter_next(o, it))
		n += (size_t)snprintf(out + n, outlen - n, "%s%s",
		    n > 0 ? "," : "", json_object_iter_key(it));
}

static const char *
jstr(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	ck_assert_msg(json_is_string(v), "%s is not a string", name);
	return json_string_value(v);
}

static int
verify(const char *const *paths, size_t n, char *msg, size_t msglen)
{
	return auditchain_verify(paths, n, msg, msglen);
}

static int
verify1(const char *path, char *msg, size_t msglen)
{
	return auditchain_verify(&path, 1, msg, msglen);
}

static struct audit *
open_plain(const char *path)
{
	struct audit *a = NULL;
	char err[256];

	ck_assert_msg(audit_open(path, AUDIT_CTX_PLAIN, NULL, &a, err,
	    sizeof(err)) == 0, "audit_open: %s", err);
	ck_assert_ptr_nonnull(a);
	return a;
}

static struct audit_entry
entry(const char *op, const char *key)
{
	struct audit_entry e;

	memset(&e, 0, sizeof(e));
	e.op = op;
	e.key = key;
	e.result = "ok";
	e.duration_us = 42;
	return e;
}

static void
write_n(struct audit *a, int n)
{
	char key[32];

	for (int i = 0; i < n; i++) {
		struct audit_entry e = entry("decrypt", key);

		snprintf(key, sizeof(key), "key%d", i);
		ck_assert_int_eq(audit_write(a, &e), 0);
	}
}

static void
hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

START_TEST(test_write_verify)
{
	char path[256], msg[512], h[AUDIT_HASH_HEX + 1];
	struct audit *a;
	struct lines l;
	json_t *o;

	tp(path, sizeof(path), "audit.log");
	a = open_plain(path);
	ck_assert_str_eq(audit_head(a), AUDIT_GENESIS);
	write_n(a, 3);
	lines_read(&l, path);
	ck_assert_uint_eq(l.n, 3);
	auditchain_hash(l.line[2], l.len[2], h);
	ck_assert_str_eq(audit_head(a), h);
	audit_close(a);

	/* First line starts the chain; each later one names the one before. */
	for (size_t i = 0; i < l.n; i++) {
		o = parse_line(l.line[i], l.len[i]);
		if (i == 0)
			ck_assert_str_eq(jstr(o, "prev"), AUDIT_GENESIS);
		else {
			auditchain_hash(l.line[i - 1], l.len[i - 1], h);
			ck_assert_str_eq(jstr(o, "prev"), h);
		}
		json_decref(o);
	}
	free(l.data);

	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
	ck_assert_ptr_nonnull(strstr(msg, "3 lines"));
	ck_assert_ptr_nonnull(strstr(msg, "genesis"));
}
END_TEST

START_TEST(test_hash)
{
	char h[AUDIT_HASH_HEX + 1];

	/* SHA-256("abc"), FIPS 180-2. */
	auditchain_hash("abc", 3, h);
	ck_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
	auditchain_hash("", 0, h);
	ck_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855");
}
END_TEST

START_TEST(test_fields)
{
	static const uint8_t ctx[] = "{\"a\":\"1\",\"b\":\"x\"}";
	char path[256], order[512], msg[512];
	struct audit *a;
	struct audit_entry e;
	struct lines l;
	struct tm tm;
	json_t *o, *peer, *c;
	int usec = -1;
	time_t t;

	tp(path, sizeof(path), "audit.log");
	a = open_plain(path);

	/* Every member present. */
	memset(&e, 0, sizeof(e));
	e.op = "decrypt";
	e.key = "payments";
	e.version = 3;
	e.socket = "worker";
	e.has_peer = 1;
	e.pid = 4242;
	e.uid = 1001;
	e.gid = 1002;
	e.exe = "/usr/bin/worker";
	e.ctx_json = ctx;
	e.ctx_json_len = sizeof(ctx) - 1;
	e.result = "denied";
	e.error = "permission_denied";
	e.detail = "not in allow list";
	e.duration_us = 1234567;
	ck_assert_int_eq(audit_write(a, &e), 0);

	/* The least: no key, version, socket, context, error, detail. */
	e = entry("breaker_trip", NULL);
	e.has_peer = 1;
	e.exe = NULL;
	ck_assert_int_eq(audit_write(a, &e), 0);
	e = entry("reload", NULL);
	e.duration_us = 0;
	ck_assert_int_eq(audit_write(a, &e), 0);
	audit_close(a);

	lines_read(&l, path);
	ck_assert_uint_eq(l.n, 3);

	o = parse_line(l.line[0], l.len[0]);
	member_order(o, order, sizeof(order));
	ck_assert_str_eq(order, "time,op,key,version,socket,peer,context,"
	    "result,error,detail,duration_us,prev");
	ck_assert_str_eq(jstr(o, "op"), "decrypt");
	ck_assert_str_eq(jstr(o, "key"), "payments");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "version")), 3);
	ck_assert_str_eq(jstr(o, "socket"), "worker");
	peer = json_object_get(o, "peer");
	ck_assert(json_is_object(peer));
	member_order(peer, order, sizeof(order));
	ck_assert_str_eq(order, "pid,uid,gid,exe");
	ck_assert_int_eq(json_integer_value(json_object_get(peer, "pid")),
	    4242);
	ck_assert_int_eq(json_integer_value(json_object_get(peer, "uid")),
	    1001);
	ck_assert_int_eq(json_integer_value(json_object_get(peer, "gid")),
	    1002);
	ck_assert_str_eq(jstr(peer, "exe"), "/usr/bin/worker");
	/* The context is the canonical JSON, embedded byte for byte. */
	c = json_object_get(o, "context");
	ck_assert(json_is_object(c));
	ck_assert_str_eq(jstr(c, "a"), "1");
	ck_assert_str_eq(jstr(c, "b"), "x");
	ck_assert_ptr_nonnull(strstr(l.line[0],
	    ",\"context\":{\"a\":\"1\",\"b\":\"x\"},"));
	ck_assert_str_eq(jstr(o, "result"), "denied");
	ck_assert_str_eq(jstr(o, "error"), "permission_denied");
	ck_assert_str_eq(jstr(o, "detail"), "not in allow list");
	ck_assert_int_eq(json_integer_value(json_object_get(o,
	    "duration_us")), 1234567);
	ck_assert_str_eq(jstr(o, "prev"), AUDIT_GENESIS);

	/* RFC 3339 UTC with microseconds, and about now. */
	ck_assert_uint_eq(strlen(jstr(o, "time")), 27);
	memset(&tm, 0, sizeof(tm));
	ck_assert_int_eq(sscanf(jstr(o, "time"), "%4d-%2d-%2dT%2d:%2d:%2d.%6dZ",
	    &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
	    &tm.tm_sec, &usec), 7);
	ck_assert_int_ge(usec, 0);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm);
	ck_assert_int_le(labs((long)(time(NULL) - t)), 60);
	json_decref(o);

	o = parse_line(l.line[1], l.len[1]);
	member_order(o, order, sizeof(order));
	ck_assert_str_eq(order, "time,op,key,peer,result,duration_us,prev");
	ck_assert(json_is_null(json_object_get(o, "key")));
	peer = json_object_get(o, "peer");
	ck_assert(json_is_null(json_object_get(peer, "exe")));
	ck_assert_int_eq(json_integer_value(json_object_get(peer, "pid")), 0);
	json_decref(o);

	o = parse_line(l.line[2], l.len[2]);
	member_order(o, order, sizeof(order));
	ck_assert_str_eq(order, "time,op,key,result,duration_us,prev");
	ck_assert_int_eq(json_integer_value(json_object_get(o,
	    "duration_us")), 0);
	/* The writer's exact text: no spaces, prev last. */
	ck_assert_ptr_nonnull(strstr(l.line[2],
	    ",\"result\":\"ok\",\"duration_us\":0,\"prev\":\""));
	json_decref(o);
	free(l.data);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
}
END_TEST

START_TEST(test_file_mode)
{
	char path[256];
	struct audit *a;
	struct stat st;
	mode_t old = umask(0);

	tp(path, sizeof(path), "audit.log");
	a = open_plain(path);
	umask(old);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	audit_close(a);
}
END_TEST

START_TEST(test_reopen_existing)
{
	char path[256], msg[512], h[AUDIT_HASH_HEX + 1];
	struct audit *a;
	struct lines l;

	tp(path, sizeof(path), "audit.log");
	a = open_plain(path);
	write_n(a, 2);
	audit_close(a);

	lines_read(&l, path);
	auditchain_hash(l.line[1], l.len[1], h);
	free(l.data);
	a = open_plain(path);
	ck_assert_str_eq(audit_head(a), h);
	write_n(a, 2);
	audit_close(a);

	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
	ck_assert_ptr_nonnull(strstr(msg, "4 lines"));
	ck_assert_ptr_nonnull(strstr(msg, "genesis"));
}
END_TEST

START_TEST(test_rotation)
{
	char path[256], old[256], msg[512], err[256], want[512];
	const char *paths[2];
	struct audit *a;

	tp(path, sizeof(path), "audit.log");
	tp(old, sizeof(old), "audit.log.1");
	a = open_plain(path);
	write_n(a, 3);
	ck_assert_int_eq(rename(path, old), 0);
	ck_assert_int_eq(audit_reopen(a, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "");
	write_n(a, 2);
	audit_close(a);

	paths[0] = old;
	paths[1] = path;
	ck_assert_int_eq(verify(paths, 2, msg, sizeof(msg)), 0);
	ck_assert_ptr_nonnull(strstr(msg, "5 lines in 2 file(s)"));
	ck_assert_ptr_nonnull(strstr(msg, "genesis"));

	/* The new file alone: intact, but its first prev is not checkable. */
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
	ck_assert_ptr_nonnull(strstr(msg, "2 lines"));
	ck_assert_ptr_nonnull(strstr(msg, "starts mid-chain (a rotated file): "
	    "give the earlier file first to check line 1"));

	/* Wrong order: the old file's line 1 does not follow the new file. */
	paths[0] = path;
	paths[1] = old;
	ck_assert_int_eq(verify(paths, 2, msg, sizeof(msg)), 1);
	snprintf(want, sizeof(want), "%s:1: chain broken", old);
	ck_assert_msg(strncmp(msg, want, strlen(want)) == 0, "%s", msg);
}
END_TEST

START_TEST(test_reopen_same_file)
{
	char path[256], msg[512], err[256];
	struct audit *a;

	/* A reload reopens the file we are writing: no note, same chain. */
	tp(path, sizeof(path), "audit.log");
	a = open_plain(path);
	write_n(a, 2);
	ck_assert_int_eq(audit_reopen(a, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "");
	write_n(a, 2);
	audit_close(a);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
	ck_assert_ptr_nonnull(strstr(msg, "4 lines"));
}
END_TEST

START_TEST(test_reopen_foreign)
{
	char path[256], old[256], other[256], msg[512], err[256];
	char h[AUDIT_HASH_HEX + 1];
	struct audit *a, *b;
	struct lines l;

	tp(path, sizeof(path), "audit.log");
	tp(old, sizeof(old), "audit.log.1");
	tp(other, sizeof(other), "other.log");
	a = open_plain(path);
	write_n(a, 2);
	b = open_plain(other);
	write_n(b, 3);
	audit_close(b);

	/* Someone moved another chain's file to our path. */
	ck_assert_int_eq(rename(path, old), 0);
	ck_assert_int_eq(rename(other, path), 0);
	ck_assert_int_eq(audit_reopen(a, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "continuing the chain"));
	lines_read(&l, path);
	auditchain_hash(l.line[2], l.len[2], h);
	free(l.data);
	ck_assert_str_eq(audit_head(a), h);
	write_n(a, 1);
	audit_close(a);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
	ck_assert_ptr_nonnull(strstr(msg, "4 lines"));
}
END_TEST

START_TEST(test_reopen_refused_keeps_old)
{
	char path[256], old[256], msg[512], err[256];
	const char *head;
	struct audit *a;

	tp(path, sizeof(path), "audit.log");
	tp(old, sizeof(old), "audit.log.1");
	a = open_plain(path);
	write_n(a, 2);
	ck_assert_int_eq(rename(path, old), 0);
	write_all(path, "{\"partial", 9);
	ck_assert_int_eq(audit_reopen(a, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "incomplete"));
	/* Still writing to the old descriptor, on the same chain. */
	head = audit_head(a);
	ck_assert_str_ne(head, AUDIT_GENESIS);
	write_n(a, 1);
	audit_close(a);
	ck_assert_int_eq(verify1(old, msg, sizeof(msg)), 0);
	ck_assert_ptr_nonnull(strstr(msg, "3 lines"));
}
END_TEST

/* Tampering with a 5-line log: what is done, and where verify stops. */
enum tamper {
	T_EDIT_VALUE, T_EDIT_SYNTAX, T_DELETE, T_SWAP, T_INSERT,
	T_TRUNCATE_LAST, T_FORGED_APPEND, T_EDIT_PREV,
};

static const struct {
	enum tamper what;
	const char *name;
	int line;		/* first line verify names */
	const char *why;	/* substring of its message */
} tampers[] = {
	{ T_EDIT_VALUE, "one byte of line 3 (still JSON)", 4,
	    "chain broken: prev does not match the line before" },
	{ T_EDIT_SYNTAX, "one byte of line 3 (no longer JSON)", 3,
	    "not an audit entry" },
	{ T_DELETE, "line 3 deleted", 3, "chain broken" },
	{ T_SWAP, "lines 3 and 4 swapped", 3, "chain broken" },
	{ T_INSERT, "line 2 repeated", 3, "chain broken" },
	{ T_TRUNCATE_LAST, "last line cut short", 5, "truncated last line" },
	{ T_FORGED_APPEND, "forged line appended", 6, "chain broken" },
	{ T_EDIT_PREV, "line 2's prev rewritten", 2, "chain broken" },
};

START_TEST(test_tamper)
{
	char path[256], msg[512], want[300];
	size_t idx[T_MAX_LINES], n = 5;
	struct audit *a;
	struct lines l;
	char *p;

	tp(path, sizeof(path), "audit.log");
	a = open_plain(path);
	write_n(a, 5);
	audit_close(a);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
	lines_read(&l, path);
	ck_assert_uint_eq(l.n, 5);
	for (size_t i = 0; i < n; i++)
		idx[i] = i;

	switch (tampers[_i].what) {
	case T_EDIT_VALUE:
		p = strstr(l.line[2], "decrypt");
		ck_assert_ptr_nonnull(p);
		p[0] = 'D';
		break;
	case T_EDIT_SYNTAX:
		l.line[2][0] = '[';
		break;
	case T_DELETE:
		memmove(idx + 2, idx + 3, 2 * sizeof(idx[0]));
		n = 4;
		break;
	case T_SWAP:
		idx[2] = 3;
		idx[3] = 2;
		break;
	case T_INSERT:
		memmove(idx + 3, idx + 2, 3 * sizeof(idx[0]));
		idx[2] = 1;
		n = 6;
		break;
	case T_TRUNCATE_LAST:
		break;
	case T_FORGED_APPEND:
		break;
	case T_EDIT_PREV:
		/* A consistent-looking prev, of the wrong line. */
		p = strstr(l.line[1], "\"prev\":\"");
		ck_assert_ptr_nonnull(p);
		p[8] = p[8] == '0' ? '1' : '0';
		break;
	}
	lines_write(&l, path, idx, n);
	if (tampers[_i].what == T_TRUNCATE_LAST) {
		ck_assert_int_eq(truncate(path, (off_t)l.size - 10), 0);
	} else if (tampers[_i].what == T_FORGED_APPEND) {
		char line[256];

		snprintf(line, sizeof(line), "{\"time\":\"2026-01-01T00:00:00."
		    "000000Z\",\"op\":\"decrypt\",\"key\":null,\"result\":\"ok\","
		    "\"duration_us\":1,\"prev\":\"%.*s\"}\n", AUDIT_HASH_HEX,
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
		append_str(path, line);
	}
	free(l.data);

	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 1);
	snprintf(want, sizeof(want), "%s:%d: ", path, tampers[_i].line);
	ck_assert_msg(strncmp(msg, want, strlen(want)) == 0,
	    "%s: want %s..., got %s", tampers[_i].name, want, msg);
	ck_assert_msg(strstr(msg, tampers[_i].why) != NULL,
	    "%s: want %s, got %s", tampers[_i].name, tampers[_i].why, msg);
}
END_TEST

START_TEST(test_tamper_limits)
{
	char path[256], msg[512];
	size_t idx[] = { 1, 2, 3 };
	struct audit *a;
	struct lines l;

	/* Known limit of any chain: dropping the head looks like a rotated
	 * file. verify says so instead of claiming a clean start. */
	tp(path, sizeof(path), "audit.log");
	a = open_plain(path);
	write_n(a, 4);
	audit_close(a);
	lines_read(&l, path);
	lines_write(&l, path, idx, 3);
	free(l.data);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
	ck_assert_ptr_nonnull(strstr(msg, "starts mid-chain"));
	ck_assert_ptr_null(strstr(msg, "genesis"));
}
END_TEST

/* Handcrafted lines: the verifier's format rules, one case a line. */
static const struct {
	const char *name;
	const char *line;	/* $G: the genesis; $g: its first 63 digits */
	int want;
	const char *why;
} formats[] = {
	{ "minimal", "{\"prev\":\"$G\"}", 0, NULL },
	{ "NUL escaped in a value", "{\"a\":\"x\\u0000y\",\"prev\":\"$G\"}", 0,
	    NULL },
	{ "prev not last", "{\"prev\":\"$G\",\"a\":1}", 1,
	    "\"prev\" is not the last member" },
	{ "no prev", "{\"a\":\"$G\"}", 1, "no \"prev\" member" },
	{ "space in the prev member", "{\"a\":1,\"prev\": \"$G\"}", 1,
	    "does not end with" },
	{ "space before }", "{\"a\":1,\"prev\":\"$G\" }", 1,
	    "does not end with" },
	{ "escaped prev text", "{\"a\":1,\"pr\\u0065v\":\"$G\"}", 1,
	    "does not end with" },
	{ "duplicate prev", "{\"prev\":\"$G\",\"prev\":\"$G\"}", 1,
	    "duplicate" },
	{ "trailing garbage", "{\"prev\":\"$G\"}x", 1, "not valid JSON" },
	{ "two objects", "{\"a\":1}{\"prev\":\"$G\"}", 1, "not valid JSON" },
	{ "array", "[\"prev\",\"$G\"]", 1, "not a JSON object" },
	{ "prev a number", "{\"prev\":1}", 1, "64 lower-case hex" },
	{ "prev upper case", "{\"prev\":\"$gA\"}", 1, "64 lower-case hex" },
	{ "prev short", "{\"prev\":\"$g\"}", 1, "64 lower-case hex" },
	{ "invalid UTF-8", "{\"a\":\"\xff\",\"prev\":\"$G\"}", 1,
	    "not valid JSON" },
	{ "UTF-8 surrogate", "{\"a\":\"\xed\xa0\x80\",\"prev\":\"$G\"}", 1,
	    "not valid JSON" },
	{ "raw NUL", "{\"a\":1,\"prev\":\"$G\"}", 1, "not valid JSON" },
	{ "raw control byte", "{\"a\":\"\x01\",\"prev\":\"$G\"}", 1,
	    "not valid JSON" },
	{ "CRLF", "{\"prev\":\"$G\"}\r", 1, "does not end with" },
	{ "empty line", "", 1, "not valid JSON" },
	{ "not JSON", "hello $G", 1, "not valid JSON" },
};

static size_t
expand(char *out, size_t outlen, const char *in)
{
	size_t n = 0, k;

	while (*in != '\0') {
		if (in[0] == '$' && (in[1] == 'G' || in[1] == 'g')) {
			k = in[1] == 'G' ? AUDIT_HASH_HEX : AUDIT_HASH_HEX - 1;
			ck_assert_uint_lt(n + k, outlen - 2);
			memcpy(out + n, AUDIT_GENESIS, k);
			n += k;
			in += 2;
			continue;
		}
		ck_assert_uint_lt(n, outlen - 2);
		out[n++] = *in++;
	}
	out[n] = '\0';
	return n;
}

START_TEST(test_verify_format)
{
	char path[256], msg[512], line[512];
	int n;

	tp(path, sizeof(path), "audit.log");
	n = (int)expand(line, sizeof(line), formats[_i].line);
	if (strcmp(formats[_i].name, "raw NUL") == 0)
		line[1] = '\0';
	line[n++] = '\n';
	write_all(path, line, (size_t)n);
	ck_assert_msg(verify1(path, msg, sizeof(msg)) == formats[_i].want,
	    "%s: %s", formats[_i].name, msg);
	if (formats[_i].why != NULL) {
		ck_assert_msg(strstr(msg, formats[_i].why) != NULL,
		    "%s: want %s, got %s", formats[_i].name, formats[_i].why,
		    msg);
		snprintf(line, sizeof(line), "%s:1: ", path);
		ck_assert_msg(strncmp(msg, line, strlen(line)) == 0, "%s",
		    msg);
	}
}
END_TEST

START_TEST(test_verify_files)
{
	char path[256], empty[256], missing[256], msg[512];
	const char *paths[3];
	char *big;
	struct audit *a;

	tp(path, sizeof(path), "audit.log");
	tp(empty, sizeof(empty), "empty.log");
	tp(missing, sizeof(missing), "missing.log");

	write_all(empty, "", 0);
	ck_assert_int_eq(verify1(empty, msg, sizeof(msg)), 0);
	ck_assert_ptr_nonnull(strstr(msg, "0 lines"));
	ck_assert_int_eq(verify(NULL, 0, msg, sizeof(msg)), 0);

	/* Empty files anywhere in the sequence are fine. */
	a = open_plain(path);
	write_n(a, 2);
	audit_close(a);
	paths[0] = empty;
	paths[1] = path;
	paths[2] = empty;
	ck_assert_int_eq(verify(paths, 3, msg, sizeof(msg)), 0);
	ck_assert_ptr_nonnull(strstr(msg, "2 lines in 3 file(s)"));

	ck_assert_int_eq(verify1(missing, msg, sizeof(msg)), -1);
	ck_assert_ptr_nonnull(strstr(msg, "cannot open"));
	paths[1] = missing;
	ck_assert_int_eq(verify(paths, 2, msg, sizeof(msg)), -1);
	/* A directory opens but cannot be read. */
	ck_assert_int_eq(verify1(tdir, msg, sizeof(msg)), -1);
	/* msg may be absent. */
	ck_assert_int_eq(verify1(path, NULL, 0), 0);

	/* An over-long line is a break, read within the bound. */
	big = malloc(AUDITCHAIN_MAX_LINE + 100);
	ck_assert_ptr_nonnull(big);
	memset(big, 'x', AUDITCHAIN_MAX_LINE + 99);
	big[AUDITCHAIN_MAX_LINE + 99] = '\n';
	write_all(path, big, AUDITCHAIN_MAX_LINE + 100);
	free(big);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 1);
	ck_assert_ptr_nonnull(strstr(msg, ":1: line longer than 65536"));
}
END_TEST

START_TEST(test_dev_full)
{
	struct audit *a = NULL;
	struct audit_entry e = entry("decrypt", "k");
	char err[256];

	ck_assert_int_eq(audit_open("/dev/full", AUDIT_CTX_PLAIN, NULL, &a,
	    err, sizeof(err)), 0);
	ck_assert_int_eq(audit_write(a, &e), ERR_AUDIT_UNAVAILABLE);
	ck_assert_str_eq(audit_head(a), AUDIT_GENESIS);
	ck_assert_int_eq(audit_write(a, &e), ERR_AUDIT_UNAVAILABLE);
	ck_assert_str_eq(audit_head(a), AUDIT_GENESIS);
	audit_close(a);

	/* A device that takes the bytes advances the chain. */
	ck_assert_int_eq(audit_open("/dev/null", AUDIT_CTX_PLAIN, NULL, &a,
	    err, sizeof(err)), 0);
	ck_assert_int_eq(audit_write(a, &e), 0);
	ck_assert_str_ne(audit_head(a), AUDIT_GENESIS);
	audit_close(a);
}
END_TEST

START_TEST(test_short_write)
{
	char path[256], msg[512], head[AUDIT_HASH_HEX + 1];
	struct audit *a;
	struct audit_entry e = entry("decrypt", "k");
	struct rlimit rl = t_fsize;
	struct stat st;
	off_t size;
	void (*old)(int);
	int lim, r1, r2, restored;

	/* A file size limit makes the kernel write only part of the line,
	 * as a disk filling up mid-write would. */
	tp(path, sizeof(path), "audit.log");
	a = open_plain(path);
	write_n(a, 2);
	ck_assert_int_eq(stat(path, &st), 0);
	size = st.st_size;
	memcpy(head, audit_head(a), sizeof(head));
	/* No Check macro while the limit holds: Check passes its results
	 * through a temporary file, which the limit would cut too. */
	old = signal(SIGXFSZ, SIG_IGN);
	rl.rlim_cur = (rlim_t)st.st_size + 20;
	lim = setrlimit(RLIMIT_FSIZE, &rl);
	r1 = audit_write(a, &e);
	r2 = audit_write(a, &e);
	restored = setrlimit(RLIMIT_FSIZE, &t_fsize);
	signal(SIGXFSZ, old);
	ck_assert_int_eq(lim, 0);
	ck_assert_int_eq(restored, 0);
	ck_assert_int_eq(r1, ERR_AUDIT_UNAVAILABLE);
	ck_assert_int_eq(r2, ERR_AUDIT_UNAVAILABLE);

	/* The partial line was cut off and the chain did not move. */
	ck_assert_str_eq(audit_head(a), head);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, size);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
	ck_assert_int_eq(audit_write(a, &e), 0);
	audit_close(a);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
	ck_assert_ptr_nonnull(strstr(msg, "3 lines"));
}
END_TEST

/* A context JSON {"k":"xxx..."} of exactly len bytes. */
static uint8_t *
make_ctx(size_t len)
{
	uint8_t *c = malloc(len);

	ck_assert_uint_ge(len, 8);
	ck_assert_ptr_nonnull(c);
	memcpy(c, "{\"k\":\"", 6);
	memset(c + 6, 'x', len - 8);
	memcpy(c + len - 2, "\"}", 2);
	return c;
}

START_TEST(test_hmac)
{
	static const uint8_t ctx[] = "{\"user\":\"alice-secret-name\"}";
	uint8_t key[AUDIT_HMAC_KEY_LEN];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char path[256], want[2 * EVP_MAX_MD_SIZE + 1], order[256], msg[512];
	char err[256];
	struct audit *a = NULL;
	struct audit_entry e = entry("encrypt", "k");
	struct lines l;
	uint8_t *big;
	json_t *o;

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);
	tp(path, sizeof(path), "audit.log");
	ck_assert_int_eq(audit_open(path, AUDIT_CTX_HMAC, NULL, &a, err,
	    sizeof(err)), -1);
	ck_assert_ptr_null(a);
	ck_assert_int_eq(audit_open(path, AUDIT_CTX_HMAC, key, &a, err,
	    sizeof(err)), 0);
	e.ctx_json = ctx;
	e.ctx_json_len = sizeof(ctx) - 1;
	ck_assert_int_eq(audit_write(a, &e), 0);
	/* A context far over the line limit is still just its HMAC. */
	big = make_ctx(20000);
	e.ctx_json = big;
	e.ctx_json_len = 20000;
	ck_assert_int_eq(audit_write(a, &e), 0);
	audit_close(a);

	ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, sizeof(key), ctx,
	    sizeof(ctx) - 1, md, &mdlen));
	hex(md, mdlen, want);
	lines_read(&l, path);
	ck_assert_ptr_null(strstr(l.line[0], "alice"));
	o = parse_line(l.line[0], l.len[0]);
	member_order(o, order, sizeof(order));
	ck_assert_str_eq(order, "time,op,key,context_hmac,result,duration_us,"
	    "prev");
	ck_assert_str_eq(jstr(o, "context_hmac"), want);
	json_decref(o);
	ck_assert_ptr_null(strstr(l.line[1], "xxxx"));
	ck_assert_ptr_null(strstr(l.line[1], "context_truncated"));
	ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, sizeof(key), big, 20000,
	    md, &mdlen));
	hex(md, mdlen, want);
	o = parse_line(l.line[1], l.len[1]);
	ck_assert_str_eq(jstr(o, "context_hmac"), want);
	json_decref(o);
	free(big);
	free(l.data);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
}
END_TEST

static const struct {
	const char *in;
	const char *out;	/* NULL: same as in */
	const char *text;	/* substring of the line, NULL: no check */
} escapes[] = {
	{ "plain", NULL, "\"plain\"" },
	{ "q\"b\\s/", NULL, "\"q\\\"b\\\\s/\"" },
	{ "\b\f\n\r\t", NULL, "\"\\b\\f\\n\\r\\t\"" },
	{ "\x01\x1f\x7f", NULL, "\"\\u0001\\u001f\x7f\"" },
	{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf", NULL,
	    NULL },
	{ "<>&\xe2\x80\xa8", NULL, "\"<>&\xe2\x80\xa8\"" },
	/* Invalid UTF-8: one U+FFFD a bad byte. */
	{ "a\xff" "b", "a\xef\xbf\xbd" "b", "\"a\\ufffdb\"" },
	{ "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd", NULL },
	{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", NULL },
	{ "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	    "\xef\xbf\xbd", NULL },
	{ "cut\xc3", "cut\xef\xbf\xbd", NULL },
	{ "", NULL, "\"\"" },
};

START_TEST(test_escaping)
{
	char path[256], msg[512];
	const char *in = escapes[_i].in;
	const char *out = escapes[_i].out != NULL ? escapes[_i].out : in;
	struct audit *a;
	struct audit_entry e = entry(in, in);
	struct lines l;
	json_t *o;

	e.socket = in;
	e.has_peer = 1;
	e.exe = in;
	e.result = in;
	e.error = in;
	e.detail = in;
	tp(path, sizeof(path), "audit.log");
	a = open_plain(path);
	ck_assert_int_eq(audit_write(a, &e), 0);
	audit_close(a);
	lines_read(&l, path);
	o = parse_line(l.line[0], l.len[0]);
	ck_assert_str_eq(jstr(o, "op"), out);
	ck_assert_str_eq(jstr(o, "key"), out);
	ck_assert_str_eq(jstr(o, "socket"), out);
	ck_assert_str_eq(jstr(json_object_get(o, "peer"), "exe"), out);
	ck_assert_str_eq(jstr(o, "result"), out);
	ck_assert_str_eq(jstr(o, "error"), out);
	ck_assert_str_eq(jstr(o, "detail"), out);
	if (escapes[_i].text != NULL)
		ck_assert_msg(strstr(l.line[0], escapes[_i].text) != NULL,
		    "want %s in %s", escapes[_i].text, l.line[0]);
	json_decref(o);
	free(l.data);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
}
END_TEST

START_TEST(test_context_nul)
{
	/* The canonical context writes a NUL byte in a value as \u0000. */
	static const uint8_t ctx[] = "{\"a\":\"x\\u0000y\"}";
	char path[256], msg[512];
	struct audit *a;
	struct audit_entry e = entry("decrypt", "k");
	struct lines l;
	json_t *o, *v;

	e.ctx_json = ctx;
	e.ctx_json_len = sizeof(ctx) - 1;
	tp(path, sizeof(path), "audit.log");
	a = open_plain(path);
	ck_assert_int_eq(audit_write(a, &e), 0);
	audit_close(a);
	lines_read(&l, path);
	o = parse_line(l.line[0], l.len[0]);
	v = json_object_get(json_object_get(o, "context"), "a");
	ck_assert_uint_eq(json_string_length(v), 3);
	ck_assert_mem_eq(json_string_value(v), "x\0y", 3);
	json_decref(o);
	free(l.data);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
}
END_TEST

START_TEST(test_context_not_embeddable)
{
	static const char *const bad[] = {
		"not json", "{\"a\":\"\n\"}", "{\"a\":\"\xff\"}", "[]", "{",
		"",
	};
	char path[256], msg[512];
	struct audit *a;
	struct stat st;

	/* Plain mode embeds the bytes: anything that would break the line
	 * fails the write instead (the canonical context never does). */
	tp(path, sizeof(path), "audit.log");
	a = open_plain(path);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct audit_entry e = entry("decrypt", "k");

		e.ctx_json = (const uint8_t *)bad[i];
		e.ctx_json_len = strlen(bad[i]);
		ck_assert_int_eq(audit_write(a, &e), ERR_AUDIT_UNAVAILABLE);
		ck_assert_str_eq(audit_head(a), AUDIT_GENESIS);
	}
	audit_close(a);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
}
END_TEST

START_TEST(test_long_context)
{
	char path[256], msg[512], want[2 * EVP_MAX_MD_SIZE + 1];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t base, fit;
	struct audit *a;
	struct audit_entry e = entry("decrypt", "k");
	struct lines l;
	uint8_t *ctx;
	json_t *o;

	tp(path, sizeof(path), "audit.log");
	a = open_plain(path);
	/* Measure the line around a small context, then fill to the limit:
	 * AUDIT_MAX_LINE bytes exactly still embed, one more does not. */
	ctx = make_ctx(8);
	e.ctx_json = ctx;
	e.ctx_json_len = 8;
	ck_assert_int_eq(audit_write(a, &e), 0);
	free(ctx);
	lines_read(&l, path);
	base = l.len[0] - 8;
	free(l.data);
	fit = AUDIT_MAX_LINE - base;

	ctx = make_ctx(fit);
	e.ctx_json = ctx;
	e.ctx_json_len = fit;
	ck_assert_int_eq(audit_write(a, &e), 0);
	free(ctx);
	ctx = make_ctx(fit + 1);
	e.ctx_json = ctx;
	e.ctx_json_len = fit + 1;
	ck_assert_int_eq(audit_write(a, &e), 0);
	audit_close(a);

	ck_assert_int_eq(EVP_Digest(ctx, fit + 1, md, &mdlen, EVP_sha256(),
	    NULL), 1);
	hex(md, mdlen, want);
	free(ctx);

	lines_read(&l, path);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_uint_eq(l.len[1], AUDIT_MAX_LINE);
	o = parse_line(l.line[1], l.len[1]);
	ck_assert(json_is_object(json_object_get(o, "context")));
	json_decref(o);

	ck_assert_uint_le(l.len[2], AUDIT_MAX_LINE);
	o = parse_line(l.line[2], l.len[2]);
	ck_assert_ptr_null(json_object_get(o, "context"));
	ck_assert_str_eq(jstr(o, "context_sha256"), want);
	ck_assert(json_is_true(json_object_get(o, "context_truncated")));
	ck_assert_str_eq(jstr(o, "result"), "ok");
	json_decref(o);
	free(l.data);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
}
END_TEST

START_TEST(test_long_fields)
{
	char path[256], msg[512];
	char *exe, *key, *detail;
	struct audit *a;
	struct audit_entry e = entry("decrypt", NULL);
	struct lines l;
	uint8_t *ctx;
	const char *v;
	json_t *o;
	size_t i;

	/* Every string at many times its cap, and a big context: the
	 * strings are cut, the context digested, the line still fits. */
	exe = malloc(5001);
	key = malloc(3 * 2000 + 1);
	detail = malloc(2001);
	ck_assert(exe != NULL && key != NULL && detail != NULL);
	memset(exe, 'a', 5000);
	exe[5000] = '\0';
	for (i = 0; i < 2000; i++)
		memcpy(key + 3 * i, "\xe2\x82\xac", 3);
	key[3 * 2000] = '\0';
	memset(detail, '\x01', 2000);
	detail[2000] = '\0';
	ctx = make_ctx(6000);
	e.op = exe;
	e.key = key;
	e.socket = exe;
	e.has_peer = 1;
	e.exe = exe;
	e.result = key;
	e.error = detail;
	e.detail = detail;
	e.ctx_json = ctx;
	e.ctx_json_len = 6000;

	tp(path, sizeof(path), "audit.log");
	a = open_plain(path);
	ck_assert_int_eq(audit_write(a, &e), 0);
	audit_close(a);
	lines_read(&l, path);
	ck_assert_uint_le(l.len[0], AUDIT_MAX_LINE);
	o = parse_line(l.line[0], l.len[0]);
	v = jstr(json_object_get(o, "peer"), "exe");
	ck_assert_uint_eq(strlen(v), AUDIT_MAX_FIELD);
	ck_assert_int_eq(strncmp(v, exe, AUDIT_MAX_FIELD - 3), 0);
	ck_assert_str_eq(v + AUDIT_MAX_FIELD - 3, "...");
	/* Cut after a whole character: 340 euro signs and the mark. */
	v = jstr(o, "key");
	ck_assert_uint_eq(strlen(v), 340 * 3 + 3);
	ck_assert_int_eq(strncmp(v, key, 340 * 3), 0);
	ck_assert_str_eq(v + 340 * 3, "...");
	/* Escapes count at their written size (\u0001 is 6 bytes). */
	v = jstr(o, "detail");
	ck_assert_uint_eq(strlen(v), 170 + 3);
	ck_assert_ptr_nonnull(strstr(l.line[0], "\\u0001...\""));
	ck_assert_ptr_nonnull(json_object_get(o, "context_sha256"));
	json_decref(o);
	free(l.data);
	free(exe);
	free(key);
	free(detail);
	free(ctx);
	ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
}
END_TEST

/* The smallest well-formed first line. */
#define ENTRY1 "{\"prev\":\"" AUDIT_GENESIS "\"}\n"

START_TEST(test_open_refuses)
{
	char path[256], target[256], err[256];
	struct audit *a = (struct audit *)&err;	/* untouched on failure */
	struct stat st;

	tp(path, sizeof(path), "audit.log");
	tp(target, sizeof(target), "target.log");

	/* A symlink at the path, even to a file that does not exist yet. */
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert_int_eq(audit_open(path, AUDIT_CTX_PLAIN, NULL, &a, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "symbolic link"));
	ck_assert_int_eq(stat(target, &st), -1);
	ck_assert_ptr_eq(a, (struct audit *)&err);
	write_all(target, "", 0);
	ck_assert_int_eq(audit_open(path, AUDIT_CTX_PLAIN, NULL, &a, err,
	    sizeof(err)), -1);
	unlink(path);

	/* An incomplete last line: the operator looks first. */
	write_all(path, ENTRY1 "{\"time\":", strlen(ENTRY1) + 8);
	ck_assert_int_eq(audit_open(path, AUDIT_CTX_PLAIN, NULL, &a, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "incomplete"));
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, (off_t)strlen(ENTRY1) + 8);

	/* A last line that is not an entry. */
	write_all(path, "hello\n", 6);
	ck_assert_int_eq(audit_open(path, AUDIT_CTX_PLAIN, NULL, &a, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not an audit entry"));

	/* A last line longer than any verifier accepts. */
	{
		size_t n = AUDITCHAIN_MAX_LINE + 10;
		char *big = malloc(n);

		ck_assert_ptr_nonnull(big);
		memset(big, 'x', n - 1);
		big[n - 1] = '\n';
		write_all(path, big, n);
		free(big);
	}
	ck_assert_int_eq(audit_open(path, AUDIT_CTX_PLAIN, NULL, &a, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "longer than"));

	/* A directory; a bad mode. */
	ck_assert_int_eq(audit_open(tdir, AUDIT_CTX_PLAIN, NULL, &a, err,
	    sizeof(err)), -1);
	ck_assert_int_eq(audit_open(target, (enum audit_ctx_mode)7, NULL, &a,
	    err, sizeof(err)), -1);
	ck_assert_ptr_eq(a, (struct audit *)&err);

	/* A last line of exactly the verifier's limit, after another line,
	 * is read back whole and continued. */
	{
		size_t n = strlen(ENTRY1) + AUDITCHAIN_MAX_LINE + 1;
		char *big = malloc(n), *l2 = big + strlen(ENTRY1);
		char h[AUDIT_HASH_HEX + 1], msg[512];

		ck_assert_ptr_nonnull(big);
		memcpy(big, ENTRY1, strlen(ENTRY1));
		auditchain_hash(big, strlen(ENTRY1) - 1, h);
		memset(l2, 'x', AUDITCHAIN_MAX_LINE);
		memcpy(l2, "{\"x\":\"", 6);
		snprintf(l2 + AUDITCHAIN_MAX_LINE - 76, 77,
		    "\",\"prev\":\"%s\"}", h);
		big[n - 1] = '\n';
		write_all(path, big, n);
		ck_assert_int_eq(verify1(path, msg, sizeof(msg)), 0);
		auditchain_hash(l2, AUDITCHAIN_MAX_LINE, h);
		free(big);
		ck_assert_int_eq(audit_open(path, AUDIT_CTX_PLAIN, NULL, &a,
		    err, sizeof(err)), 0);
		ck_assert_str_eq(audit_head(a), h);
		audit_close(a);
		a = (struct audit *)&err;
	}

	/* A single complete entry (no newline before it) is accepted. */
	write_all(path, ENTRY1, strlen(ENTRY1));
	ck_assert_int_eq(audit_open(path, AUDIT_CTX_PLAIN, NULL, &a, err,
	    sizeof(err)), 0);
	audit_close(a);
	audit_close(NULL);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("audit");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_hash);
	tcase_add_test(tc, test_write_verify);
	tcase_add_test(tc, test_fields);
	tcase_add_test(tc, test_file_mode);
	tcase_add_test(tc, test_reopen_existing);
	tcase_add_test(tc, test_rotation);
	tcase_add_test(tc, test_reopen_same_file);
	tcase_add_test(tc, test_reopen_foreign);
	tcase_add_test(tc, test_reopen_refused_keeps_old);
	tcase_add_loop_test(tc, test_tamper, 0,
	    (int)(sizeof(tampers) / sizeof(tampers[0])));
	tcase_add_test(tc, test_tamper_limits);
	tcase_add_loop_test(tc, test_verify_format, 0,
	    (int)(sizeof(formats) / sizeof(formats[0])));
	tcase_add_test(tc, test_verify_files);
	tcase_add_test(tc, test_dev_full);
	tcase_add_test(tc, test_short_write);
	tcase_add_test(tc, test_hmac);
	tcase_add_loop_test(tc, test_escaping, 0,
	    (int)(sizeof(escapes) / sizeof(escapes[0])));
	tcase_add_test(tc, test_context_nul);
	tcase_add_test(tc, test_context_not_embeddable);
	tcase_add_test(tc, test_long_context);
	tcase_add_test(tc, test_long_fields);
	tcase_add_test(tc, test_open_refuses);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
