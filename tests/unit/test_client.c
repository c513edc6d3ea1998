/*
 * test_client.c: libkmsclient without a daemon.
 *
 * A fake server thread listens on a Unix socket in a temporary directory
 * and answers with frames built by proto's own encoder (or with raw bytes
 * for the malformed cases). It plays a tiny test provider: encrypt gives
 * "v1:" + base64(plaintext), decrypt reverses it, rewrap gives "v2:" + the
 * same base64. Each fake records what it saw so the tests can check what
 * the client put on the wire (contexts, ids, fields).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "b64.h"
#include "buf.h"
#include "err.h"
#include "frame.h"
#include "msg.h"
#include "stored.h"

#include "kmsclient.h"

/* Requests the fake remembers the details of. */
#define FAKE_SEEN 8
/* A rendered context: "-" for none, else "{k=v,...}". */
#define FAKE_CTX_LEN 512

enum fake_mode {
	FAKE_SERVE,		/* answer each request at once */
	FAKE_REVERSE,		/* answer each group of requests backwards */
	FAKE_SILENT,		/* read, never answer */
	FAKE_CLOSE_AT_ACCEPT,	/* first connection: close at once */
	FAKE_CLOSE_AFTER_READ,	/* first connection: read one, close */
	FAKE_CLOSE_AFTER_N,	/* first connection: answer n, then close */
	FAKE_RESTART,		/* answer one, then close everything, relisten */
	FAKE_GARBAGE,		/* answer with a frame that is not msgpack */
	FAKE_WRONG_ID,		/* answer with another id */
	FAKE_HUGE,		/* answer with a header over the frame limit */
	FAKE_RAW,		/* answer with f->raw as it is */
};

struct seen {
	uint64_t id;
	int op;
	char key[64];
	char ctx[FAKE_CTX_LEN];
	char new_ctx[FAKE_CTX_LEN];
	char format[16];
	char reason[64];
	char audit_path[64];
	size_t pt_len;
};

struct fake {
	char dir[48];
	char path[100];
	int lfd;
	enum fake_mode mode;
	int n;			/* FAKE_CLOSE_AFTER_N */
	const uint8_t *raw;
	size_t raw_len;
	pthread_t th;
	int stopping;		/* set by fake_stop */
	/* written by the server thread, read after join */
	int conns;
	size_t requests;
	uint64_t max_id;
	struct seen seen[FAKE_SEEN];
};

/* --- the fake server ------------------------------------------------------------ */

static void
render_ctx(const struct context *c, char *out, size_t size)
{
	size_t off;

	if (!c->present) {
		snprintf(out, size, "-");
		return;
	}
	off = (size_t)snprintf(out, size, "{");
	for (size_t i = 0; i < c->n && off < size; i++)
		off += (size_t)snprintf(out + off, size - off, "%s%.*s=%.*s",
		    i ? "," : "", (int)c->pairs[i].k.len, c->pairs[i].k.p,
		    (int)c->pairs[i].v.len, c->pairs[i].v.p);
	if (off < size)
		snprintf(out + off, size - off, "}");
}

static void
copy_str(char *dst, size_t size, struct str s)
{
	snprintf(dst, size, "%.*s", (int)s.len, s.p != NULL ? s.p : "");
}

static int
fake_write(int fd, const void *p, size_t n)
{
	const uint8_t *s = p;

	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until one whole frame is in rb; 1 ready, 0 EOF (or fake_stop), -1
 * error. Waits at most wait_ms (-1: until fake_stop); returns 2 when that
 * passed. */
static int
fake_read_frame(struct fake *f, int fd, struct buf *rb, int wait_ms,
    const uint8_t **body, size_t *body_len)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int r = frame_parse(rb->data, rb->len, FRAME_MAX_DEFAULT, body,
		    body_len);

		if (rb->len >= FRAME_HDR && r == FRAME_READY)
			return 1;
		if (rb->len >= FRAME_HDR && r < 0)
			return -1;
		if (__atomic_load_n(&f->stopping, __ATOMIC_SEQ_CST))
			return 0;
		/* Short slices so that fake_stop is noticed. */
		if (poll(&pfd, 1, wait_ms < 0 ? 20 : wait_ms) == 0) {
			if (wait_ms < 0)
				continue;
			return 2;
		}
		if (buf_reserve(rb, 4096) != 0)
			return -1;
		n = recv(fd, rb->data + rb->len, 4096, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? 0 : -1;
		rb->len += (size_t)n;
	}
}

static void
fake_record(struct fake *f, const struct request *q)
{
	struct seen *s;

	if (q->id > f->max_id)
		f->max_id = q->id;
	if (f->requests++ >= FAKE_SEEN)
		return;
	s = &f->seen[f->requests - 1];
	s->id = q->id;
	s->op = q->op;
	copy_str(s->key, sizeof(s->key), q->key);
	render_ctx(&q->ctx, s->ctx, sizeof(s->ctx));
	render_ctx(&q->new_ctx, s->new_ctx, sizeof(s->new_ctx));
	copy_str(s->format, sizeof(s->format), q->format);
	copy_str(s->reason, sizeof(s->reason), q->reason);
	copy_str(s->audit_path, sizeof(s->audit_path), q->audit_path);
	s->pt_len = q->plaintext.len;
}

/* The answer of the fake provider to q, appended to out as a frame. */
static void
fake_answer(const struct request *q, struct buf *out)
{
	static const uint8_t data_key[KMS_DATA_KEY_LEN] = {
		0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
		0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
		0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
		0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x43,
	};
	static struct str allow[2] = { { "generate", 8 }, { "encrypt", 7 } };
	static struct key_info keys[2] = {
		{ { "default", 7 }, { "local", 5 }, 2 },
		{ { "test", 4 }, { "test", 4 }, 1 },
	};
	struct response r;
	struct buf tmp;
	uint32_t v;

	buf_init(&tmp, 65536);
	msg_response_init(&r);
	r.id = q->id;
	if (str_eq(q->key, "missing")) {
		r.error = ERR_UNKNOWN_KEY;
		r.message = (struct str){ "no key 'missing'", 16 };
		goto send;
	}
	switch (q->op) {
	case OP_GENERATE:
		buf_append_str(&tmp, "v1:R0VO");
		r.ciphertext = (struct str){ (char *)tmp.data, tmp.len };
		r.plaintext = (struct str){ (const char *)data_key,
		    sizeof(data_key) };
		break;
	case OP_ENCRYPT:
		buf_append_str(&tmp, "v1:");
		b64_encode(&tmp, q->plaintext.p, q->plaintext.len);
		r.ciphertext = (struct str){ (char *)tmp.data, tmp.len };
		break;
	case OP_DECRYPT:
		if (stored_parse(q->ciphertext.p, q->ciphertext.len, &v,
		    &tmp) != 0) {
			r.error = ERR_DECRYPTION_FAILED;
			break;
		}
		r.plaintext = (struct str){ (char *)tmp.data, tmp.len };
		break;
	case OP_REWRAP:
		if (q->ciphertext.len < 3) {
			r.error = ERR_DECRYPTION_FAILED;
			break;
		}
		buf_append_str(&tmp, "v2");
		buf_append(&tmp, q->ciphertext.p + 2, q->ciphertext.len - 2);
		r.ciphertext = (struct str){ (char *)tmp.data, tmp.len };
		break;
	case OP_HELLO:
		r.version = (struct str){ "9.9.9", 5 };
		r.protocol = 1;
		r.socket = (struct str){ "web", 3 };
		r.n_allow = 2;
		memcpy(r.allow, allow, sizeof(allow));
		/* fallthrough */
	case OP_KEYS:
		r.n_keys = 2;
		r.keys = keys;
		break;
	case OP_STATS:
		r.body = str_eq(q->format, "prometheus") ?
		    (struct str){ "kmsd_up 1\n", 10 } :
		    (struct str){ "{\"up\":1}", 8 };
		break;
	case OP_CONTEXT_HASH:
		r.body = (struct str){ "hmac-sha256:abc", 15 };
		break;
	case OP_STATUS:
		r.body = (struct str){ "{\"decrypt\":\"enabled\"}", 21 };
		break;
	default:
		break;
	}
send:
	ck_assert_int_eq(msg_encode_response(out, &r), 0);
	buf_done(&tmp);
}

static int
fake_accept(struct fake *f)
{
	int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd >= 0)
		f->conns++;
	return fd;
}

static int
fake_listen(struct fake *f)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	return fd;
}

/* Answer the gathered requests of reverse mode, last first. */
static void
fake_flush(int fd, struct request *q, struct buf *keep, size_t *nq,
    struct buf *wb)
{
	while (*nq > 0) {
		--*nq;
		fake_answer(&q[*nq], wb);
		buf_done(&keep[*nq]);
	}
	fake_write(fd, wb->data, wb->len);
	buf_clear(wb);
}

/*
 * Serve one connection until EOF. Returns 1 when the script closed the
 * connection on purpose.
 */
static int
fake_conn(struct fake *f, int fd)
{
	static const uint8_t garbage[] = { 0, 0, 0, 3, 'a', 'b', 'c' };
	static const uint8_t huge[] = { 0, 0x10, 0, 0 };
	struct request q[KMS_BATCH_WINDOW];
	struct buf keep[KMS_BATCH_WINDOW];	/* reverse mode: the frames */
	const uint8_t *body;
	size_t body_len, nq = 0, answered = 0;
	struct buf rb, wb;
	int r, first = f->conns == 1, rc = 0;

	buf_init(&rb, 1 << 20);
	buf_init(&wb, 1 << 20);
	if (first && f->mode == FAKE_CLOSE_AT_ACCEPT) {
		rc = 1;
		goto out;
	}
	for (;;) {
		/* In reverse mode, gather until the client pauses. */
		r = fake_read_frame(f, fd, &rb, nq > 0 ? 50 : -1, &body,
		    &body_len);
		if (r == 2 || (r != 1 && nq > 0))
			fake_flush(fd, q, keep, &nq, &wb);
		if (r == 2)
			continue;
		if (r != 1)
			break;
		if (f->mode == FAKE_REVERSE) {
			buf_init(&keep[nq], 65536);
			buf_append(&keep[nq], body, body_len);
			ck_assert_int_eq(msg_decode_request(keep[nq].data,
			    keep[nq].len, &q[nq]), 0);
			fake_record(f, &q[nq]);
			nq++;
			buf_consume(&rb, FRAME_HDR + body_len);
			if (nq == KMS_BATCH_WINDOW)
				fake_flush(fd, q, keep, &nq, &wb);
			continue;
		}
		ck_assert_int_eq(msg_decode_request(body, body_len, &q[0]), 0);
		fake_record(f, &q[0]);
		if (first && f->mode == FAKE_CLOSE_AFTER_READ) {
			rc = 1;
			goto out;
		}
		if (f->mode == FAKE_SILENT) {
			buf_consume(&rb, FRAME_HDR + body_len);
			continue;
		}
		if (f->mode == FAKE_GARBAGE)
			buf_append(&wb, garbage, sizeof(garbage));
		else if (f->mode == FAKE_HUGE)
			buf_append(&wb, huge, sizeof(huge));
		else if (f->mode == FAKE_RAW)
			buf_append(&wb, f->raw, f->raw_len);
		else {
			if (f->mode == FAKE_WRONG_ID)
				q[0].id += 100;
			fake_answer(&q[0], &wb);
		}
		fake_write(fd, wb.data, wb.len);
		buf_clear(&wb);
		buf_consume(&rb, FRAME_HDR + body_len);
		answered++;
		if (first && f->mode == FAKE_CLOSE_AFTER_N &&
		    answered == (size_t)f->n) {
			rc = 1;
			goto out;
		}
		if (first && f->mode == FAKE_RESTART) {
			/* As a daemon stops: no more listening, then its
			 * connections close. */
			close(f->lfd);
			unlink(f->path);
			rc = 1;
			goto out;
		}
	}
out:
	buf_done(&rb);
	buf_done(&wb);
	close(fd);
	return rc;
}

static void *
fake_main(void *arg)
{
	struct fake *f = arg;
	int fd;

	while (!__atomic_load_n(&f->stopping, __ATOMIC_SEQ_CST) &&
	    (fd = fake_accept(f)) >= 0) {
		if (fake_conn(f, fd) == 1 && f->mode == FAKE_RESTART &&
		    f->conns == 1) {
			/* A daemon restart: the socket is gone for a while,
			 * then a new listener appears at the same path. */
			poll(NULL, 0, 150);
			f->lfd = fake_listen(f);
		}
	}
	return NULL;
}

/* One fake at a time; static so that its record outlives fake_stop. */
static struct fake fake_storage;

static struct fake *
fake_start(enum fake_mode mode)
{
	struct fake *f = &fake_storage;

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kmsclient-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	ck_assert_uint_lt(strlen(f->dir) + sizeof("/kmsd.sock"),
	    sizeof(f->path));
	memcpy(f->path, f->dir, strlen(f->dir));
	memcpy(f->path + strlen(f->dir), "/kmsd.sock", sizeof("/kmsd.sock"));
	f->lfd = fake_listen(f);
	return f;
}

static void
fake_go(struct fake *f)
{
	ck_assert_int_eq(pthread_create(&f->th, NULL, fake_main, f), 0);
}

/* Stop accepting, end the connection being served, wait for the thread
 * and clean up. */
static void
fake_stop(struct fake *f)
{
	__atomic_store_n(&f->stopping, 1, __ATOMIC_SEQ_CST);
	shutdown(f->lfd, SHUT_RDWR);
	pthread_join(f->th, NULL);
	close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
}

static kms_client *
connect_ok(struct fake *f)
{
	kms_client *c = NULL;
	kms_error e;

	if (kms_connect(&c, f->path, &e) != 0)
		ck_abort_msg("connect: %s: %s", e.code, e.message);
	return c;
}

/* --- tests without a server ------------------------------------------------------ */

START_TEST(test_stored_version)
{
	static const struct {
		const char *s;
		int ok;
		unsigned v;
	} cases[] = {
		{ "v1:abc=", 1, 1 },
		{ "v12:", 1, 12 },
		{ "v1000000:x", 1, 1000000 },
		{ "v1000001:x", 0, 0 },
		{ "v0:abc", 0, 0 },
		{ "v01:abc", 0, 0 },
		{ "x1:abc", 0, 0 },
		{ "v:abc", 0, 0 },
		{ "v1", 0, 0 },
		{ "v1abc", 0, 0 },
		{ "", 0, 0 },
		{ "v99999999999:", 0, 0 },
	};
	unsigned v;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = 77;
		ck_assert_msg(kms_stored_version(cases[i].s, &v) ==
		    (cases[i].ok ? 0 : -1), "case %s", cases[i].s);
		ck_assert_uint_eq(v, cases[i].ok ? cases[i].v : 77);
	}
	ck_assert_int_eq(kms_stored_version(NULL, &v), -1);
	ck_assert_int_eq(kms_stored_version("v1:", NULL), -1);
}
END_TEST

START_TEST(test_free_null)
{
	kms_free_secret(NULL, 10);
	kms_free(NULL);
	kms_context_free(NULL);
	kms_batch_free(NULL);
	kms_close(NULL);
	ck_assert_uint_eq(kms_batch_count(NULL), 0);
}
END_TEST

START_TEST(test_free_secret)
{
	unsigned char *p = malloc(16);

	ck_assert_ptr_nonnull(p);
	memset(p, 0xaa, 16);
	kms_free_secret(p, 16);
}
END_TEST

START_TEST(test_connect_missing)
{
	kms_client *c = (kms_client *)&c;
	kms_error e;

	ck_assert_int_eq(kms_connect(&c, "/nonexistent/kmsd.sock", &e), -1);
	ck_assert_str_eq(e.code, "connection_failed");
	ck_assert_ptr_nonnull(strstr(e.message, "/nonexistent/kmsd.sock"));
	/* ret untouched on failure */
	ck_assert_ptr_eq(c, (kms_client *)&c);
	/* err may be NULL */
	ck_assert_int_eq(kms_connect(&c, "/nonexistent/kmsd.sock", NULL), -1);
}
END_TEST

START_TEST(test_connect_bad_path)
{
	char longpath[200];
	kms_client *c = NULL;
	kms_error e;

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	ck_assert_int_eq(kms_connect(&c, longpath, &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_connect(&c, "", &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_connect(NULL, "/x", &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_args_without_server)
{
	unsigned char key[KMS_DATA_KEY_LEN], *pt = NULL;
	char big[KMS_MAX_PLAINTEXT + 1];
	char *stored = NULL;
	kms_context *ctx = NULL;
	size_t len = 0;
	kms_error e;

	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(kms_generate_data_key(NULL, NULL, NULL, key, &stored,
	    &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_generate_data_key(NULL, "default", NULL, key,
	    &stored, &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_encrypt(NULL, "default", NULL, big, sizeof(big),
	    &stored, &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_encrypt(NULL, "default", NULL, big, 0, &stored,
	    &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_decrypt(NULL, "default", NULL, NULL, &pt, &len,
	    &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_rewrap(NULL, "", NULL, NULL, "v1:x", &stored,
	    &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_stats(NULL, 0, NULL, &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_context_new(NULL, &e), -1);
	ck_assert_int_eq(kms_context_new(&ctx, &e), 0);
	ck_assert_int_eq(kms_context_set(ctx, NULL, "v", &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_context_set(ctx, "k", NULL, &e), -1);
	ck_assert_int_eq(kms_context_set(ctx, "\xff", "v", &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_context_set(ctx, "k", "\xc0\x80", &e), -1);
	ck_assert_int_eq(kms_batch_new(NULL, NULL, &e), -1);
	ck_assert_ptr_null(stored);
	ck_assert_ptr_null(pt);
	kms_context_free(ctx);
}
END_TEST

START_TEST(test_context_limit)
{
	kms_context *ctx;
	kms_error e;
	char k[16];

	ck_assert_int_eq(kms_context_new(&ctx, &e), 0);
	for (int i = 0; i < KMS_MAX_CONTEXT_PAIRS; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		ck_assert_int_eq(kms_context_set(ctx, k, "v", &e), 0);
	}
	ck_assert_int_eq(kms_context_set(ctx, "one-more", "v", &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	/* Replacing an existing key is still fine when full. */
	ck_assert_int_eq(kms_context_set(ctx, "k0", "w", &e), 0);
	kms_context_free(ctx);
}
END_TEST

/* --- tests with the fake server ------------------------------------------------ */

START_TEST(test_generate_ok)
{
	struct fake *f = fake_start(FAKE_SERVE);
	unsigned char key[KMS_DATA_KEY_LEN];
	kms_client *c;
	char *stored = NULL;
	kms_error e;

	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_generate_data_key(c, "default", NULL, key,
	    &stored, &e), 0);
	ck_assert_str_eq(stored, "v1:R0VO");
	ck_assert_uint_eq(key[0], 0x42);
	ck_assert_uint_eq(key[31], 0x43);
	kms_free(stored);
	kms_close(c);
	fake_stop(f);
	ck_assert_int_eq(f->requests, 1);
}
END_TEST

START_TEST(test_roundtrip_and_ids)
{
	struct fake *f = fake_start(FAKE_SERVE);
	unsigned char *pt = NULL;
	char *stored = NULL, *re = NULL;
	kms_client *c;
	size_t len;
	kms_error e;
	size_t nreq;
	uint64_t ids[3];

	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_encrypt(c, "default", NULL, "hello", 5, &stored,
	    &e), 0);
	ck_assert_str_eq(stored, "v1:aGVsbG8=");
	ck_assert_int_eq(kms_decrypt(c, "default", NULL, stored, &pt, &len,
	    &e), 0);
	ck_assert_uint_eq(len, 5);
	ck_assert_mem_eq(pt, "hello", 5);
	ck_assert_uint_eq(pt[5], 0);	/* the uncounted NUL */
	ck_assert_int_eq(kms_rewrap(c, "default", NULL, NULL, stored, &re,
	    &e), 0);
	ck_assert_str_eq(re, "v2:aGVsbG8=");
	kms_free_secret(pt, len);
	kms_free(stored);
	kms_free(re);
	kms_close(c);
	fake_stop(f);
	nreq = f->requests;
	ck_assert_uint_eq(nreq, 3);
	for (size_t i = 0; i < 3; i++)
		ids[i] = f->seen[i].id;
	ck_assert(ids[0] < ids[1] && ids[1] < ids[2]);
	ck_assert_int_eq(f->seen[0].op, OP_ENCRYPT);
	ck_assert_uint_eq(f->seen[0].pt_len, 5);
	ck_assert_int_eq(f->seen[1].op, OP_DECRYPT);
	ck_assert_int_eq(f->seen[2].op, OP_REWRAP);
	ck_assert_str_eq(f->seen[2].new_ctx, "-");
}
END_TEST

START_TEST(test_context_on_wire)
{
	struct fake *f = fake_start(FAKE_SERVE);
	kms_context *ctx, *empty, *nctx;
	unsigned char key[KMS_DATA_KEY_LEN];
	char *stored, *re;
	kms_client *c;
	kms_error e;

	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_context_new(&ctx, &e), 0);
	ck_assert_int_eq(kms_context_new(&empty, &e), 0);
	ck_assert_int_eq(kms_context_new(&nctx, &e), 0);
	ck_assert_int_eq(kms_context_set(ctx, "a", "1", &e), 0);
	ck_assert_int_eq(kms_context_set(ctx, "b", "x=y", &e), 0);
	ck_assert_int_eq(kms_context_set_int(ctx, "n", -42, &e), 0);
	ck_assert_int_eq(kms_context_set_int(ctx, "big",
	    9223372036854775807LL, &e), 0);
	/* overwrite keeps the position, replaces the value */
	ck_assert_int_eq(kms_context_set(ctx, "a", "2", &e), 0);
	ck_assert_int_eq(kms_context_set(nctx, "Model", "User", &e), 0);

	ck_assert_int_eq(kms_generate_data_key(c, "default", NULL, key,
	    &stored, &e), 0);
	kms_free(stored);
	ck_assert_int_eq(kms_generate_data_key(c, "default", empty, key,
	    &stored, &e), 0);
	kms_free(stored);
	ck_assert_int_eq(kms_generate_data_key(c, "default", ctx, key,
	    &stored, &e), 0);
	ck_assert_int_eq(kms_rewrap(c, "default", ctx, nctx, stored, &re,
	    &e), 0);
	kms_free(stored);
	kms_free(re);
	ck_assert_int_eq(kms_rewrap(c, "default", NULL, empty, "v1:YQ==",
	    &re, &e), 0);
	kms_free(re);
	kms_close(c);
	kms_context_free(ctx);
	kms_context_free(empty);
	kms_context_free(nctx);
	fake_stop(f);
	ck_assert_str_eq(f->seen[0].ctx, "-");
	ck_assert_str_eq(f->seen[1].ctx, "{}");
	ck_assert_str_eq(f->seen[2].ctx,
	    "{a=2,b=x=y,n=-42,big=9223372036854775807}");
	ck_assert_str_eq(f->seen[3].ctx,
	    "{a=2,b=x=y,n=-42,big=9223372036854775807}");
	ck_assert_str_eq(f->seen[3].new_ctx, "{Model=User}");
	ck_assert_str_eq(f->seen[4].ctx, "-");
	ck_assert_str_eq(f->seen[4].new_ctx, "{}");
}
END_TEST

START_TEST(test_error_response)
{
	struct fake *f = fake_start(FAKE_SERVE);
	char *stored = (char *)"untouched";
	kms_client *c;
	kms_error e;

	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_encrypt(c, "missing", NULL, "x", 1, &stored,
	    &e), -1);
	ck_assert_str_eq(e.code, "unknown_key");
	ck_assert_str_eq(e.message, "no key 'missing'");
	ck_assert_str_eq(stored, "untouched");
	/* the connection stays usable after an error answer */
	ck_assert_int_eq(kms_encrypt(c, "default", NULL, "x", 1, &stored,
	    &e), 0);
	kms_free(stored);
	kms_close(c);
	fake_stop(f);
	ck_assert_int_eq(f->conns, 1);
}
END_TEST

START_TEST(test_unknown_error_code)
{
	/* {"id": 1, "error": {"code": "brand_new", "message": "m\x01"}} */
	static const uint8_t raw[] = {
		0, 0, 0, 38,
		0x82, 0xa2, 'i', 'd', 0x01,
		0xa5, 'e', 'r', 'r', 'o', 'r',
		0x82, 0xa4, 'c', 'o', 'd', 'e',
		0xa9, 'b', 'r', 'a', 'n', 'd', '_', 'n', 'e', 'w',
		0xa7, 'm', 'e', 's', 's', 'a', 'g', 'e',
		0xa2, 'm', 0x01,
	};
	struct fake *f = fake_start(FAKE_RAW);
	char *text = NULL;
	kms_client *c;
	kms_error e;

	ck_assert_uint_eq(sizeof(raw), 4 + 38);
	f->raw = raw;
	f->raw_len = sizeof(raw);
	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_stats(c, 0, &text, &e), -1);
	ck_assert_str_eq(e.code, "brand_new");
	/* control bytes from the server are not passed through */
	ck_assert_str_eq(e.message, "m?");
	kms_close(c);
	fake_stop(f);
}
END_TEST

START_TEST(test_info_calls)
{
	struct fake *f = fake_start(FAKE_SERVE);
	kms_hello_info *h;
	kms_key_info *keys;
	char *text;
	kms_client *c;
	kms_error e;
	size_t n;

	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_hello(c, &h, &e), 0);
	ck_assert_str_eq(h->version, "9.9.9");
	ck_assert_uint_eq(h->protocol, 1);
	ck_assert_str_eq(h->socket, "web");
	ck_assert_uint_eq(h->n_allow, 2);
	ck_assert_str_eq(h->allow[0], "generate");
	ck_assert_str_eq(h->allow[1], "encrypt");
	ck_assert_uint_eq(h->n_keys, 2);
	ck_assert_str_eq(h->keys[0].name, "default");
	ck_assert_str_eq(h->keys[0].provider, "local");
	ck_assert_uint_eq(h->keys[0].version, 2);
	ck_assert_str_eq(h->keys[1].name, "test");
	kms_free(h);
	ck_assert_int_eq(kms_keys(c, &keys, &n, &e), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(keys[1].provider, "test");
	kms_free(keys);
	ck_assert_int_eq(kms_stats(c, 1, &text, &e), 0);
	ck_assert_str_eq(text, "kmsd_up 1\n");
	kms_free(text);
	ck_assert_int_eq(kms_stats(c, 0, &text, &e), 0);
	ck_assert_str_eq(text, "{\"up\":1}");
	kms_free(text);
	ck_assert_int_eq(kms_context_hash(c, "vault", NULL, "/audit", &text,
	    &e), 0);
	ck_assert_str_eq(text, "hmac-sha256:abc");
	kms_free(text);
	ck_assert_int_eq(kms_admin_status(c, &text, &e), 0);
	ck_assert_str_eq(text, "{\"decrypt\":\"enabled\"}");
	kms_free(text);
	ck_assert_int_eq(kms_admin_disable_decrypt(c, "incident 7", &e), 0);
	ck_assert_int_eq(kms_admin_enable_decrypt(c, &e), 0);
	ck_assert_int_eq(kms_admin_reload(c, &e), 0);
	kms_close(c);
	fake_stop(f);
	ck_assert_str_eq(f->seen[2].format, "prometheus");
	ck_assert_str_eq(f->seen[3].format, "json");
	ck_assert_str_eq(f->seen[4].audit_path, "/audit");
	ck_assert_int_eq(f->seen[6].op, OP_DISABLE_DECRYPT);
	ck_assert_str_eq(f->seen[6].reason, "incident 7");
	ck_assert_int_eq(f->seen[7].op, OP_ENABLE_DECRYPT);
}
END_TEST

START_TEST(test_env_socket)
{
	struct fake *f = fake_start(FAKE_SERVE);
	kms_client *c = NULL;
	char *text;
	kms_error e;

	fake_go(f);
	setenv("KMSD_SOCKET", f->path, 1);
	ck_assert_int_eq(kms_connect(&c, NULL, &e), 0);
	unsetenv("KMSD_SOCKET");
	ck_assert_int_eq(kms_stats(c, 0, &text, &e), 0);
	kms_free(text);
	kms_close(c);
	fake_stop(f);
	ck_assert_int_eq(f->conns, 1);
}
END_TEST

START_TEST(test_timeout)
{
	struct fake *f = fake_start(FAKE_SILENT);
	unsigned char key[KMS_DATA_KEY_LEN];
	struct timespec t0, t1;
	char *stored = NULL;
	kms_client *c;
	kms_error e;
	long ms;

	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_set_timeout(c, 0, &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_set_timeout(c, 200, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(kms_generate_data_key(c, "default", NULL, key,
	    &stored, &e), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_str_eq(e.code, "timeout");
	ck_assert_ptr_null(stored);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ck_assert_int_ge(ms, 150);
	ck_assert_int_lt(ms, 3000);
	kms_close(c);
	fake_stop(f);
	/* a timeout is not retried */
	ck_assert_int_eq(f->conns, 1);
}
END_TEST

static void
reconnect_case(enum fake_mode mode)
{
	struct fake *f = fake_start(mode);
	char *stored = NULL;
	kms_client *c;
	kms_error e;

	fake_go(f);
	c = connect_ok(f);
	if (mode == FAKE_RESTART) {
		ck_assert_int_eq(kms_encrypt(c, "default", NULL, "a", 1,
		    &stored, &e), 0);
		kms_free(stored);
		stored = NULL;
	}
	if (kms_encrypt(c, "default", NULL, "abc", 3, &stored, &e) != 0)
		ck_abort_msg("after reconnect: %s: %s", e.code, e.message);
	ck_assert_str_eq(stored, "v1:YWJj");
	kms_free(stored);
	kms_close(c);
	fake_stop(f);
	ck_assert_int_eq(f->conns, 2);
}

START_TEST(test_reconnect_closed_at_accept)
{
	reconnect_case(FAKE_CLOSE_AT_ACCEPT);
}
END_TEST

START_TEST(test_reconnect_closed_before_answer)
{
	reconnect_case(FAKE_CLOSE_AFTER_READ);
}
END_TEST

START_TEST(test_reconnect_restart)
{
	reconnect_case(FAKE_RESTART);
}
END_TEST

START_TEST(test_reconnect_only_once)
{
	struct fake *f = fake_start(FAKE_SERVE);
	char *stored = NULL;
	kms_client *c;
	kms_error e;

	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_set_timeout(c, 300, &e), 0);
	/* The server goes away for good: the one retry finds nobody. */
	fake_stop(f);
	ck_assert_int_eq(kms_encrypt(c, "default", NULL, "abc", 3, &stored,
	    &e), -1);
	ck_assert_str_eq(e.code, "connection_failed");
	ck_assert_ptr_null(stored);
	kms_close(c);
}
END_TEST

static void
protocol_error_case(enum fake_mode mode)
{
	struct fake *f = fake_start(mode);
	unsigned char key[KMS_DATA_KEY_LEN];
	char *stored = NULL;
	kms_client *c;
	kms_error e;

	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_generate_data_key(c, "default", NULL, key,
	    &stored, &e), -1);
	ck_assert_str_eq(e.code, "protocol_error");
	ck_assert_ptr_null(stored);
	kms_close(c);
	fake_stop(f);
}

START_TEST(test_garbage_frame)
{
	protocol_error_case(FAKE_GARBAGE);
}
END_TEST

START_TEST(test_wrong_id)
{
	protocol_error_case(FAKE_WRONG_ID);
}
END_TEST

START_TEST(test_huge_frame)
{
	protocol_error_case(FAKE_HUGE);
}
END_TEST

START_TEST(test_protocol_error_then_reconnect)
{
	struct fake *f = fake_start(FAKE_GARBAGE);
	char *stored = NULL;
	kms_client *c;
	kms_error e;

	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_encrypt(c, "default", NULL, "a", 1, &stored,
	    &e), -1);
	ck_assert_str_eq(e.code, "protocol_error");
	/* the bad connection was dropped; the next call opens a new one */
	ck_assert_int_eq(kms_encrypt(c, "default", NULL, "a", 1, &stored,
	    &e), -1);
	kms_close(c);
	fake_stop(f);
	ck_assert_int_eq(f->conns, 2);
}
END_TEST

/* --- batches ------------------------------------------------------------------------ */

static void
batch_case(enum fake_mode mode, size_t n, int close_after)
{
	struct fake *f = fake_start(mode);
	const unsigned char *pt;
	const char *stored;
	kms_batch *b;
	kms_client *c;
	kms_error e;
	size_t len;
	char text[32], want[64];
	struct buf enc;

	f->n = close_after;
	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_batch_new(c, &b, &e), 0);
	for (size_t i = 0; i < n; i++) {
		snprintf(text, sizeof(text), "item-%zu", i);
		switch (i % 5) {
		case 0:
			ck_assert_int_eq(kms_batch_add_encrypt(b, "default",
			    NULL, text, strlen(text), &e), 0);
			break;
		case 1:
			buf_init(&enc, 64);
			buf_append_str(&enc, "v1:");
			b64_encode(&enc, text, strlen(text));
			buf_cstr(&enc);
			ck_assert_int_eq(kms_batch_add_decrypt(b, "default",
			    NULL, (char *)enc.data, &e), 0);
			buf_done(&enc);
			break;
		case 2:
			ck_assert_int_eq(kms_batch_add_rewrap(b, "default",
			    NULL, NULL, "v1:YQ==", &e), 0);
			break;
		case 3:
			ck_assert_int_eq(kms_batch_add_generate(b, "default",
			    NULL, &e), 0);
			break;
		case 4:
			ck_assert_int_eq(kms_batch_add_encrypt(b, "missing",
			    NULL, text, strlen(text), &e), 0);
			break;
		}
	}
	ck_assert_uint_eq(kms_batch_count(b), n);
	ck_assert_int_eq(kms_batch_result(b, 0, &stored, NULL, NULL, &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	if (kms_batch_run(b, &e) != 0)
		ck_abort_msg("batch: %s: %s", e.code, e.message);
	for (size_t i = 0; i < n; i++) {
		int r;

		snprintf(text, sizeof(text), "item-%zu", i);
		stored = NULL;
		pt = NULL;
		len = 99;
		r = kms_batch_result(b, i, &stored, &pt, &len, &e);
		switch (i % 5) {
		case 0:
			ck_assert_int_eq(r, 0);
			buf_init(&enc, 64);
			b64_encode(&enc, text, strlen(text));
			snprintf(want, sizeof(want), "v1:%.*s", (int)enc.len,
			    enc.data);
			buf_done(&enc);
			ck_assert_str_eq(stored, want);
			ck_assert_ptr_null(pt);
			ck_assert_uint_eq(len, 0);
			break;
		case 1:
			ck_assert_int_eq(r, 0);
			ck_assert_uint_eq(len, strlen(text));
			ck_assert_mem_eq(pt, text, len);
			ck_assert_ptr_null(stored);
			break;
		case 2:
			ck_assert_int_eq(r, 0);
			ck_assert_str_eq(stored, "v2:YQ==");
			break;
		case 3:
			ck_assert_int_eq(r, 0);
			ck_assert_str_eq(stored, "v1:R0VO");
			ck_assert_uint_eq(len, KMS_DATA_KEY_LEN);
			ck_assert_uint_eq(pt[31], 0x43);
			break;
		case 4:
			ck_assert_int_eq(r, -1);
			ck_assert_str_eq(e.code, "unknown_key");
			break;
		}
	}
	ck_assert_int_eq(kms_batch_result(b, n, &stored, NULL, NULL, &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	/* running again has nothing left to do */
	ck_assert_int_eq(kms_batch_run(b, &e), 0);
	kms_batch_free(b);
	kms_close(c);
	fake_stop(f);
	if (close_after == 0)
		ck_assert_uint_eq(f->requests, n);
	else
		ck_assert_uint_ge(f->requests, n);
}

START_TEST(test_batch_in_order)
{
	batch_case(FAKE_SERVE, 300, 0);
}
END_TEST

START_TEST(test_batch_reverse_order)
{
	/* under one window, and over several windows */
	batch_case(FAKE_REVERSE, 40, 0);
	batch_case(FAKE_REVERSE, 500, 0);
}
END_TEST

START_TEST(test_batch_reconnect)
{
	batch_case(FAKE_CLOSE_AFTER_N, 200, 17);
}
END_TEST

START_TEST(test_batch_protocol_error)
{
	struct fake *f = fake_start(FAKE_GARBAGE);
	kms_batch *b;
	kms_client *c;
	kms_error e;

	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_batch_new(c, &b, &e), 0);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(kms_batch_add_generate(b, "default", NULL,
		    &e), 0);
	ck_assert_int_eq(kms_batch_run(b, &e), -1);
	ck_assert_str_eq(e.code, "protocol_error");
	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(kms_batch_result(b, 3, NULL, NULL, NULL, &e), -1);
	ck_assert_str_eq(e.code, "protocol_error");
	kms_batch_free(b);
	kms_close(c);
	fake_stop(f);
}
END_TEST

START_TEST(test_batch_timeout)
{
	struct fake *f = fake_start(FAKE_SILENT);
	kms_batch *b;
	kms_client *c;
	kms_error e;

	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_set_timeout(c, 200, &e), 0);
	ck_assert_int_eq(kms_batch_new(c, &b, &e), 0);
	ck_assert_int_eq(kms_batch_add_rewrap(b, "default", NULL, NULL,
	    "v1:YQ==", &e), 0);
	ck_assert_int_eq(kms_batch_run(b, &e), -1);
	ck_assert_str_eq(e.code, "timeout");
	kms_batch_free(b);
	kms_close(c);
	fake_stop(f);
}
END_TEST

START_TEST(test_batch_args)
{
	struct fake *f = fake_start(FAKE_SERVE);
	char big[KMS_MAX_STORED + 2];
	kms_context *ctx;
	kms_batch *b;
	kms_client *c;
	kms_error e;

	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	fake_go(f);
	c = connect_ok(f);
	ck_assert_int_eq(kms_batch_new(c, &b, &e), 0);
	ck_assert_int_eq(kms_batch_add_generate(b, NULL, NULL, &e), -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_batch_add_decrypt(b, "default", NULL, big, &e),
	    -1);
	ck_assert_str_eq(e.code, "invalid_argument");
	ck_assert_int_eq(kms_batch_add_encrypt(b, "default", NULL, NULL, 3,
	    &e), -1);
	ck_assert_uint_eq(kms_batch_count(b), 0);
	/* contexts are copied: freeing them right after adding is fine */
	ck_assert_int_eq(kms_context_new(&ctx, &e), 0);
	ck_assert_int_eq(kms_context_set(ctx, "id", "7", &e), 0);
	ck_assert_int_eq(kms_batch_add_generate(b, "default", ctx, &e), 0);
	ck_assert_int_eq(kms_batch_add_generate(b, "default", ctx, &e), 0);
	kms_context_free(ctx);
	ck_assert_int_eq(kms_batch_run(b, &e), 0);
	ck_assert_int_eq(kms_batch_result(b, 1, NULL, NULL, NULL, &e), 0);
	kms_batch_free(b);
	kms_close(c);
	fake_stop(f);
	ck_assert_str_eq(f->seen[0].ctx, "{id=7}");
	ck_assert_str_eq(f->seen[1].ctx, "{id=7}");
}
END_TEST

/* --- threads -------------------------------------------------------------------- */

static void *
thread_main(void *arg)
{
	kms_client *c = arg;
	char text[32];

	for (int i = 0; i < 50; i++) {
		unsigned char *pt = NULL;
		char *stored = NULL;
		size_t len = 0;
		kms_error e;

		snprintf(text, sizeof(text), "t%p-%d", (void *)&text, i);
		if (kms_encrypt(c, "default", NULL, text, strlen(text),
		    &stored, &e) != 0 ||
		    kms_decrypt(c, "default", NULL, stored, &pt, &len,
		    &e) != 0 || len != strlen(text) ||
		    memcmp(pt, text, len) != 0) {
			kms_free(stored);
			kms_free_secret(pt, len);
			return (void *)1;
		}
		kms_free(stored);
		kms_free_secret(pt, len);
	}
	return NULL;
}

START_TEST(test_threads_share_client)
{
	struct fake *f = fake_start(FAKE_SERVE);
	pthread_t th[4];
	kms_client *c;
	void *r;

	fake_go(f);
	c = connect_ok(f);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main, c),
		    0);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], &r);
		ck_assert_ptr_null(r);
	}
	kms_close(c);
	fake_stop(f);
	ck_assert_uint_eq(f->requests, 400);
	ck_assert_uint_eq(f->max_id, 400);
	ck_assert_int_eq(f->conns, 1);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("client");
	TCase *tc = tcase_create("client");

	/* valgrind runs these too: leave room */
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_stored_version);
	tcase_add_test(tc, test_free_null);
	tcase_add_test(tc, test_free_secret);
	tcase_add_test(tc, test_connect_missing);
	tcase_add_test(tc, test_connect_bad_path);
	tcase_add_test(tc, test_args_without_server);
	tcase_add_test(tc, test_context_limit);
	tcase_add_test(tc, test_generate_ok);
	tcase_add_test(tc, test_roundtrip_and_ids);
	tcase_add_test(tc, test_context_on_wire);
	tcase_add_test(tc, test_error_response);
	tcase_add_test(tc, test_unknown_error_code);
	tcase_add_test(tc, test_info_calls);
	tcase_add_test(tc, test_env_socket);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_reconnect_closed_at_accept);
	tcase_add_test(tc, test_reconnect_closed_before_answer);
	tcase_add_test(tc, test_reconnect_restart);
	tcase_add_test(tc, test_reconnect_only_once);
	tcase_add_test(tc, test_garbage_frame);
	tcase_add_test(tc, test_wrong_id);
	tcase_add_test(tc, test_huge_frame);
	tcase_add_test(tc, test_protocol_error_then_reconnect);
	tcase_add_test(tc, test_batch_in_order);
	tcase_add_test(tc, test_batch_reverse_order);
	tcase_add_test(tc, test_batch_reconnect);
	tcase_add_test(tc, test_batch_protocol_error);
	tcase_add_test(tc, test_batch_timeout);
	tcase_add_test(tc, test_batch_args);
	tcase_add_test(tc, test_threads_share_client);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
