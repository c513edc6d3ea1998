/*
 * kmsclient.c: libkmsclient, a blocking Unix-socket client of kmsd.
 *
 * Owns one connection per kms_client: a non-blocking socket driven by poll()
 * against a per-call deadline, the request ids, a read and a write buffer,
 * and the reconnect-once rule. Frames are built and parsed by proto/ only.
 *
 * Invariants:
 * - c->lock is held for the whole of every call that touches the connection,
 *   so a request and its response are never interleaved with another call's.
 * - The read and write buffers are struct buf: the plaintexts and data keys
 *   that pass through them are wiped as frames are consumed and on free.
 * - After a timeout or a protocol error the connection is dropped, so a late
 *   or stray response can never be read as the answer to a later request.
 * - Every `ret_` out-parameter is written only after everything else worked.
 *
 * No logging, no abort: every failure is a kms_error.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "context.h"
#include "err.h"
#include "frame.h"
#include "msg.h"
#include "op.h"
#include "stored.h"

#include "kmsclient.h"

/* The public limits are promises about what the protocol accepts. */
_Static_assert(KMS_MAX_PLAINTEXT == MSG_MAX_PLAINTEXT, "plaintext limit");
_Static_assert(KMS_MAX_KEY_NAME == MSG_MAX_KEY_NAME, "key name limit");
_Static_assert(KMS_MAX_STORED == MSG_MAX_CIPHERTEXT, "ciphertext limit");
_Static_assert(KMS_MAX_CONTEXT_PAIRS == CONTEXT_MAX_PAIRS, "context limit");
_Static_assert(STORED_MAX_VERSION <= UINT32_MAX, "version fits unsigned");

/* A whole response frame must fit: the protocol's body limit plus header. */
#define CLIENT_RBUF_MAX (FRAME_HDR + FRAME_MAX_DEFAULT)
/* Largest request frame the server accepts. */
#define CLIENT_FRAME_MAX (FRAME_HDR + FRAME_MAX_DEFAULT)
/* Queued outgoing bytes: a batch window of ordinary requests, and always
 * room for one largest frame. */
#define CLIENT_WBUF_MAX (4 * CLIENT_FRAME_MAX)
/* Bytes asked of one recv(); several small responses arrive in one. */
#define CLIENT_READ_CHUNK 16384
/* Longest timeout: a day keeps deadline arithmetic far from overflow. */
#define CLIENT_TIMEOUT_MAX 86400000u
/* Pause between connect attempts while the server's backlog is full or
 * the server is restarting. */
#define CLIENT_CONNECT_RETRY_MS 20
/* How many recent context copies a batch compares a new one against: bulk
 * jobs repeat one or two contexts (old and new), so a short scan shares
 * nearly all copies. */
#define BATCH_CTX_DEDUP 4

/* Helper results: 0 ok; IO_CLOSED means the peer went away (the caller may
 * reconnect and retry once); -1 means fail, err filled either way. */
#define IO_CLOSED 1

struct kms_pair {
	char *k;
	char *v;
	size_t klen;
	size_t vlen;
};

struct kms_context {
	size_t n;
	size_t cap;
	struct kms_pair *pairs;
};

struct kms_client {
	pthread_mutex_t lock;
	int fd;			/* -1 while disconnected */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	unsigned timeout_ms;
	uint64_t next_id;
	struct buf rbuf;	/* received bytes: may hold plaintexts */
	struct buf wbuf;	/* frames being sent: may hold plaintexts */
};

/* What an op produced: a stored string and/or plaintext bytes. */
struct result {
	char *stored;
	uint8_t *pt;		/* secret; pt_len bytes + an uncounted NUL */
	size_t pt_len;
};

enum item_state {
	ITEM_PENDING = 0,	/* not run, or the run it was in failed */
	ITEM_DONE = 1,		/* the server answered (ok or error) */
};

struct batch_item {
	int op;
	enum item_state state;
	int failed;		/* error holds this item's (or its run's) error */
	char *key;
	const struct kms_context *ctx;	/* owned by the batch's ctxs */
	const struct kms_context *new_ctx;
	char *stored_in;	/* decrypt, rewrap */
	uint8_t *pt_in;		/* encrypt: secret */
	size_t pt_in_len;
	kms_error error;
	struct result res;
};

struct kms_batch {
	kms_client *c;
	struct batch_item *items;
	size_t n;
	size_t cap;
	struct kms_context **ctxs;	/* copies the items point to */
	size_t n_ctxs;
	size_t cap_ctxs;
};

/* --- errors ---------------------------------------------------------------- */

static int kerr(kms_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
kerr(kms_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	snprintf(err->code, sizeof(err->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

static int
kerr_nomem(kms_error *err)
{
	return kerr(err, "no_memory", "out of memory");
}

static int
kerr_errno(kms_error *err, const char *code, const char *what, int e)
{
	char eb[128];

	/* strerror is not thread-safe; this is the GNU strerror_r. */
	return kerr(err, code, "%s: %s", what, strerror_r(e, eb, sizeof(eb)));
}

/* Copy a server-supplied string into a fixed field; control bytes become
 * '?' so a hostile or broken server cannot put escapes in a terminal. */
static void
copy_printable(char *dst, size_t size, struct str s)
{
	size_t n = s.len < size - 1 ? s.len : size - 1;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s.p[i];

		dst[i] = (char)((ch < 0x20 || ch == 0x7f) ? '?' : ch);
	}
	dst[n] = '\0';
}

static int
resp_is_error(const struct response *r)
{
	return r->error != 0 || (r->error_code.p != NULL &&
	    r->error_code.len > 0);
}

/* The one place a wire error becomes a kms_error. */
static int
kerr_wire(kms_error *err, const struct response *r)
{
	if (err == NULL)
		return -1;
	if (r->error_code.p != NULL && r->error_code.len > 0)
		copy_printable(err->code, sizeof(err->code), r->error_code);
	else
		snprintf(err->code, sizeof(err->code), "%s",
		    err_code(r->error));
	if (r->message.p != NULL && r->message.len > 0)
		copy_printable(err->message, sizeof(err->message),
		    r->message);
	else
		snprintf(err->message, sizeof(err->message), "%s",
		    err_str(r->error != 0 ? r->error :
		    err_from_code(r->error_code.p, r->error_code.len)));
	return -1;
}

/* --- argument checks --------------------------------------------------------- */

static int
check_key(const char *key, kms_error *err)
{
	size_t n;

	if (key == NULL)
		return kerr(err, "invalid_argument", "key name is NULL");
	n = strlen(key);
	if (n == 0 || n > KMS_MAX_KEY_NAME)
		return kerr(err, "invalid_argument",
		    "key name must be 1 to %d bytes", KMS_MAX_KEY_NAME);
	return 0;
}

static int
check_stored(const char *stored, kms_error *err)
{
	size_t n;

	if (stored == NULL)
		return kerr(err, "invalid_argument", "ciphertext is NULL");
	n = strlen(stored);
	if (n == 0 || n > KMS_MAX_STORED)
		return kerr(err, "invalid_argument",
		    "ciphertext must be 1 to %d bytes", KMS_MAX_STORED);
	return 0;
}

static int
check_plaintext(const void *pt, size_t len, kms_error *err)
{
	if (pt == NULL || len == 0)
		return kerr(err, "invalid_argument", "plaintext is empty");
	if (len > KMS_MAX_PLAINTEXT)
		return kerr(err, "invalid_argument",
		    "plaintext is over %d bytes", KMS_MAX_PLAINTEXT);
	return 0;
}

/* --- small helpers ------------------------------------------------------------- */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A NUL-terminated copy of s; NULL when out of memory. */
static char *
str_dup(struct str s)
{
	char *p = malloc(s.len + 1);

	if (p == NULL)
		return NULL;
	if (s.len > 0)
		memcpy(p, s.p, s.len);
	p[s.len] = '\0';
	return p;
}

void
kms_free_secret(void *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

void
kms_free(void *p)
{
	free(p);
}

int
kms_stored_version(const char *stored, unsigned *ret_version)
{
	uint32_t v;

	if (stored == NULL || ret_version == NULL)
		return -1;
	if (stored_version(stored, strlen(stored), &v) != 0)
		return -1;
	*ret_version = v;
	return 0;
}

static void
result_done(struct result *res)
{
	free(res->stored);
	kms_free_secret(res->pt, res->pt_len);
	res->stored = NULL;
	res->pt = NULL;
	res->pt_len = 0;
}

/* --- contexts ------------------------------------------------------------------- */

int
kms_context_new(kms_context **ret, kms_error *err)
{
	kms_context *ctx;

	if (ret == NULL)
		return kerr(err, "invalid_argument", "ret is NULL");
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
		return kerr_nomem(err);
	*ret = ctx;
	return 0;
}

void
kms_context_free(kms_context *ctx)
{
	if (ctx == NULL)
		return;
	for (size_t i = 0; i < ctx->n; i++) {
		free(ctx->pairs[i].k);
		free(ctx->pairs[i].v);
	}
	free(ctx->pairs);
	free(ctx);
}

int
kms_context_set(kms_context *ctx, const char *key, const char *value,
    kms_error *err)
{
	struct kms_pair *p = NULL;
	size_t klen, vlen;
	char *v;

	if (ctx == NULL || key == NULL || value == NULL)
		return kerr(err, "invalid_argument",
		    "context, key or value is NULL");
	klen = strlen(key);
	vlen = strlen(value);
	if (!utf8_valid(key, klen) || !utf8_valid(value, vlen))
		return kerr(err, "invalid_argument",
		    "context key or value is not valid UTF-8");
	for (size_t i = 0; i < ctx->n; i++)
		if (ctx->pairs[i].klen == klen &&
		    memcmp(ctx->pairs[i].k, key, klen) == 0)
			p = &ctx->pairs[i];
	if (p == NULL && ctx->n == KMS_MAX_CONTEXT_PAIRS)
		return kerr(err, "invalid_argument",
		    "context has more than %d pairs", KMS_MAX_CONTEXT_PAIRS);
	if ((v = strdup(value)) == NULL)
		return kerr_nomem(err);
	if (p != NULL) {
		free(p->v);
		p->v = v;
		p->vlen = vlen;
		return 0;
	}
	if (ctx->n == ctx->cap) {
		size_t ncap = ctx->cap == 0 ? 4 : ctx->cap * 2;
		struct kms_pair *np;

		if (ncap > KMS_MAX_CONTEXT_PAIRS)
			ncap = KMS_MAX_CONTEXT_PAIRS;
		if ((np = realloc(ctx->pairs, ncap * sizeof(*np))) == NULL) {
			free(v);
			return kerr_nomem(err);
		}
		ctx->pairs = np;
		ctx->cap = ncap;
	}
	p = &ctx->pairs[ctx->n];
	if ((p->k = strdup(key)) == NULL) {
		free(v);
		return kerr_nomem(err);
	}
	p->v = v;
	p->klen = klen;
	p->vlen = vlen;
	ctx->n++;
	return 0;
}

int
kms_context_set_int(kms_context *ctx, const char *key, long long value,
    kms_error *err)
{
	char num[32];

	snprintf(num, sizeof(num), "%lld", value);
	return kms_context_set(ctx, key, num, err);
}

/* The proto view of a context: pairs point into kc's strings. */
static void
ctx_view(const kms_context *kc, struct context *out)
{
	out->present = kc != NULL;
	out->n = 0;
	if (kc == NULL)
		return;
	for (size_t i = 0; i < kc->n; i++) {
		out->pairs[i].k = (struct str){ kc->pairs[i].k,
		    kc->pairs[i].klen };
		out->pairs[i].v = (struct str){ kc->pairs[i].v,
		    kc->pairs[i].vlen };
	}
	out->n = kc->n;
}

static kms_context *
ctx_dup(const kms_context *src)
{
	kms_context *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (src->n == 0)
		return c;
	if ((c->pairs = calloc(src->n, sizeof(*c->pairs))) == NULL) {
		free(c);
		return NULL;
	}
	c->cap = src->n;
	for (size_t i = 0; i < src->n; i++) {
		struct kms_pair *p = &c->pairs[i];

		p->k = strdup(src->pairs[i].k);
		p->v = strdup(src->pairs[i].v);
		p->klen = src->pairs[i].klen;
		p->vlen = src->pairs[i].vlen;
		c->n++;
		if (p->k == NULL || p->v == NULL) {
			kms_context_free(c);
			return NULL;
		}
	}
	return c;
}

/* Same pairs in the same order (enough to share a copy). */
static int
ctx_same(const kms_context *a, const kms_context *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->pairs[i].klen != b->pairs[i].klen ||
		    a->pairs[i].vlen != b->pairs[i].vlen ||
		    memcmp(a->pairs[i].k, b->pairs[i].k, a->pairs[i].klen) != 0 ||
		    memcmp(a->pairs[i].v, b->pairs[i].v, a->pairs[i].vlen) != 0)
			return 0;
	return 1;
}

/* --- connection --------------------------------------------------------------- */

/* Wait for events on fd until deadline: 1 ready, 0 timed out, -1 error. */
static int
wait_fd(int fd, short events, int64_t deadline, kms_error *err)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int n;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0) {
			kerr(err, "timeout", "no response within the timeout");
			return 0;
		}
		n = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return kerr_errno(err, "connection_failed", "poll",
			    errno);
	}
}

static void
client_drop(kms_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	buf_clear(&c->rbuf);
}

/* Errors that mean "nobody is listening yet", as while kmsd restarts. */
static int
connect_transient(int e)
{
	return e == ECONNREFUSED || e == ENOENT || e == EAGAIN;
}

/*
 * Open a new connection to c->path. A full listen backlog (EAGAIN) is
 * always waited out until the deadline; with patient set (the reconnect
 * after the server went away), so are a refused connection and a missing
 * socket file, so that a daemon restart within the timeout is invisible.
 */
static int
client_open(kms_client *c, int64_t deadline, int patient, kms_error *err)
{
	struct sockaddr_un sun;
	char eb[128];
	int fd, e, r;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, c->path, strlen(c->path) + 1);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
		if (fd < 0)
			return kerr_errno(err, "connection_failed", "socket",
			    errno);
		do {
			r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
			e = r == 0 ? 0 : errno;
		} while (e == EINTR);
		if (e == EINPROGRESS) {
			socklen_t elen = sizeof(e);

			if (wait_fd(fd, POLLOUT, deadline, err) <= 0) {
				close(fd);
				return -1;
			}
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e,
			    &elen) != 0)
				e = errno;
		}
		if (e == 0)
			break;
		close(fd);
		if ((e == EAGAIN || (patient && connect_transient(e))) &&
		    now_ms() + CLIENT_CONNECT_RETRY_MS < deadline) {
			poll(NULL, 0, CLIENT_CONNECT_RETRY_MS);
			continue;
		}
		return kerr(err, "connection_failed", "connect %s: %s",
		    c->path, strerror_r(e, eb, sizeof(eb)));
	}
	c->fd = fd;
	buf_clear(&c->rbuf);
	return 0;
}

/* Send what the socket takes now from p[0..n); *sent says how much. */
static int
client_write(kms_client *c, const uint8_t *p, size_t n, size_t *sent,
    kms_error *err)
{
	ssize_t w;

	*sent = 0;
	for (;;) {
		w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w >= 0) {
			*sent = (size_t)w;
			return 0;
		}
		switch (errno) {
		case EINTR:
			continue;
		case EAGAIN:
			return 0;
		case EPIPE:
		case ECONNRESET:
		case ENOTCONN:
			kerr(err, "connection_failed",
			    "connection to %s closed by the server", c->path);
			return IO_CLOSED;
		default:
			return kerr_errno(err, "connection_failed", "send",
			    errno);
		}
	}
}

/* Read what has arrived into rbuf (possibly nothing). */
static int
client_read(kms_client *c, kms_error *err)
{
	size_t room = c->rbuf.max - c->rbuf.len;
	ssize_t n;
	int r;

	if (room == 0)
		return kerr(err, "protocol_error", "response over the frame "
		    "limit");
	if (room > CLIENT_READ_CHUNK)
		room = CLIENT_READ_CHUNK;
	if ((r = buf_reserve(&c->rbuf, room)) != 0)
		return r == ERR_NOMEM ? kerr_nomem(err) :
		    kerr(err, "protocol_error", "response buffer full");
	for (;;) {
		n = recv(c->fd, c->rbuf.data + c->rbuf.len, room, 0);
		if (n > 0) {
			c->rbuf.len += (size_t)n;
			return 0;
		}
		if (n == 0 || errno == ECONNRESET || errno == ENOTCONN) {
			kerr(err, "connection_failed", "connection to %s "
			    "closed before the response", c->path);
			return IO_CLOSED;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return 0;
		return kerr_errno(err, "connection_failed", "recv", errno);
	}
}

/* 1: a whole frame is at the front of rbuf; 0: need more; -1: bad. */
static int
client_frame(kms_client *c, const uint8_t **body, size_t *body_len,
    kms_error *err)
{
	int r;

	if (c->rbuf.len < FRAME_HDR)
		return 0;
	r = frame_parse(c->rbuf.data, c->rbuf.len, FRAME_MAX_DEFAULT, body,
	    body_len);
	if (r == FRAME_READY)
		return 1;
	if (r == FRAME_MORE)
		return 0;
	return kerr(err, "protocol_error", "bad response frame: %s",
	    err_str(r));
}

static int
client_send_all(kms_client *c, int64_t deadline, kms_error *err)
{
	size_t off = 0, sent;
	int r;

	while (off < c->wbuf.len) {
		r = client_write(c, c->wbuf.data + off, c->wbuf.len - off,
		    &sent, err);
		if (r != 0)
			return r;
		off += sent;
		if (off < c->wbuf.len &&
		    wait_fd(c->fd, POLLOUT, deadline, err) <= 0)
			return -1;
	}
	return 0;
}

static int
client_recv_frame(kms_client *c, int64_t deadline, const uint8_t **body,
    size_t *body_len, kms_error *err)
{
	int r;

	for (;;) {
		if ((r = client_frame(c, body, body_len, err)) != 0)
			return r == 1 ? 0 : -1;
		if (wait_fd(c->fd, POLLIN, deadline, err) <= 0)
			return -1;
		if ((r = client_read(c, err)) != 0)
			return r;
	}
}

/*
 * One request, one response, with reconnect-and-retry-once when the peer
 * went away. On 0 the decoded response points into the frame at the front
 * of rbuf; the caller hands it back with client_release.
 */
static int
client_exchange(kms_client *c, struct request *req, struct response *resp,
    size_t *ret_frame_len, kms_error *err)
{
	const uint8_t *body = NULL;
	size_t body_len = 0;
	int64_t deadline;
	int r;

	req->id = c->next_id++;
	buf_clear(&c->wbuf);
	if ((r = msg_encode_request(&c->wbuf, req)) != 0)
		return r == ERR_NOMEM ? kerr_nomem(err) :
		    kerr(err, "invalid_argument", "request not encodable: %s",
		    err_str(r));
	if (c->wbuf.len > CLIENT_FRAME_MAX) {
		buf_clear(&c->wbuf);
		return kerr(err, "invalid_argument",
		    "request over the %d byte frame limit", FRAME_MAX_DEFAULT);
	}
	deadline = now_ms() + c->timeout_ms;
	for (int attempt = 0;; attempt++) {
		r = 0;
		if (c->fd < 0)
			r = client_open(c, deadline, attempt > 0, err);
		if (r == 0)
			r = client_send_all(c, deadline, err);
		if (r == 0)
			r = client_recv_frame(c, deadline, &body, &body_len,
			    err);
		if (r == 0)
			break;
		client_drop(c);
		if (r != IO_CLOSED || attempt > 0) {
			/* A timeout or failure is final: the retry is only
			 * for a server that went away (a restart). */
			buf_clear(&c->wbuf);
			return -1;
		}
	}
	/* The request may carry a plaintext: do not keep it around. */
	buf_clear(&c->wbuf);
	msg_response_init(resp);
	if ((r = msg_decode_response(body, body_len, resp)) != 0) {
		kerr(err, "protocol_error", "bad response: %s",
		    resp->why[0] != '\0' ? resp->why : err_str(r));
		msg_response_done(resp);
		client_drop(c);
		return -1;
	}
	if (resp->id != req->id) {
		kerr(err, "protocol_error", "response id %llu, expected %llu",
		    (unsigned long long)resp->id,
		    (unsigned long long)req->id);
		msg_response_done(resp);
		client_drop(c);
		return -1;
	}
	*ret_frame_len = FRAME_HDR + body_len;
	return 0;
}

static void
client_release(kms_client *c, struct response *resp, size_t frame_len)
{
	msg_response_done(resp);
	/* Wipes the frame (it may hold a plaintext or data key). */
	buf_consume(&c->rbuf, frame_len);
}

typedef int (*take_fn)(const struct response *r, void *arg,
    kms_error *err);

/* Lock, exchange, turn the response into the caller's result, unlock. */
static int
client_call(kms_client *c, struct request *req, take_fn take, void *arg,
    kms_error *err)
{
	struct response resp;
	size_t frame_len = 0;
	int rc;

	if (c == NULL)
		return kerr(err, "invalid_argument", "client is NULL");
	if (pthread_mutex_lock(&c->lock) != 0)
		return kerr(err, "invalid_argument", "client lock failed");
	/* Defined on every path (the analyzer cannot see through kerr). */
	msg_response_init(&resp);
	rc = client_exchange(c, req, &resp, &frame_len, err);
	if (rc == 0) {
		if (resp_is_error(&resp))
			rc = kerr_wire(err, &resp);
		else
			rc = take(&resp, arg, err);
		client_release(c, &resp, frame_len);
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int
kms_connect(kms_client **ret, const char *path, kms_error *err)
{
	kms_client *c;
	size_t n;

	if (ret == NULL)
		return kerr(err, "invalid_argument", "ret is NULL");
	if (path == NULL) {
		/* secure_getenv: a setuid caller is not redirected. */
		path = secure_getenv("KMSD_SOCKET");
		if (path == NULL || path[0] == '\0')
			path = KMS_DEFAULT_SOCKET;
	}
	n = strlen(path);
	if (n == 0 || n >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return kerr(err, "invalid_argument",
		    "socket path empty or too long");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return kerr_nomem(err);
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c);
		return kerr_nomem(err);
	}
	memcpy(c->path, path, n + 1);
	c->fd = -1;
	c->timeout_ms = KMS_DEFAULT_TIMEOUT_MS;
	c->next_id = 1;
	buf_init(&c->rbuf, CLIENT_RBUF_MAX);
	buf_init(&c->wbuf, CLIENT_WBUF_MAX);
	if (client_open(c, now_ms() + c->timeout_ms, 0, err) != 0) {
		kms_close(c);
		return -1;
	}
	*ret = c;
	return 0;
}

void
kms_close(kms_client *c)
{
	if (c == NULL)
		return;
	client_drop(c);
	buf_done(&c->rbuf);
	buf_done(&c->wbuf);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int
kms_set_timeout(kms_client *c, unsigned ms, kms_error *err)
{
	if (c == NULL || ms == 0 || ms > CLIENT_TIMEOUT_MAX)
		return kerr(err, "invalid_argument",
		    "timeout must be 1 to %u ms", CLIENT_TIMEOUT_MAX);
	pthread_mutex_lock(&c->lock);
	c->timeout_ms = ms;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* --- results ------------------------------------------------------------------ */

/* What op must have produced, copied out of the response. */
static int
result_take(int op, const struct response *r, struct result *res,
    kms_error *err)
{
	int want_stored = op == OP_GENERATE || op == OP_ENCRYPT ||
	    op == OP_REWRAP;
	int want_pt = op == OP_GENERATE || op == OP_DECRYPT;
	struct result out = { NULL, NULL, 0 };

	if (want_stored && (r->ciphertext.p == NULL ||
	    r->ciphertext.len == 0 || r->ciphertext.len > KMS_MAX_STORED ||
	    memchr(r->ciphertext.p, '\0', r->ciphertext.len) != NULL))
		return kerr(err, "protocol_error",
		    "response has no valid ciphertext");
	if (want_pt && r->plaintext.p == NULL)
		return kerr(err, "protocol_error", "response has no plaintext");
	if (op == OP_GENERATE && r->plaintext.len != KMS_DATA_KEY_LEN)
		return kerr(err, "protocol_error",
		    "data key is %zu bytes, not %d", r->plaintext.len,
		    KMS_DATA_KEY_LEN);
	if (want_stored && (out.stored = str_dup(r->ciphertext)) == NULL)
		return kerr_nomem(err);
	if (want_pt) {
		if ((out.pt = (uint8_t *)str_dup(r->plaintext)) == NULL) {
			result_done(&out);
			return kerr_nomem(err);
		}
		out.pt_len = r->plaintext.len;
	}
	*res = out;
	return 0;
}

struct take_result {
	int op;
	struct result res;
};

static int
take_result(const struct response *r, void *arg, kms_error *err)
{
	struct take_result *t = arg;

	return result_take(t->op, r, &t->res, err);
}

static int
take_body(const struct response *r, void *arg, kms_error *err)
{
	char **ret = arg;

	if (r->body.p == NULL)
		return kerr(err, "protocol_error", "response has no body");
	if ((*ret = str_dup(r->body)) == NULL)
		return kerr_nomem(err);
	return 0;
}

static int
take_nothing(const struct response *r, void *arg, kms_error *err)
{
	return 0;
}

/* Bytes needed for the key table and its strings. */
static size_t
keys_size(const struct response *r)
{
	size_t n = r->n_keys * sizeof(kms_key_info);

	for (size_t i = 0; i < r->n_keys; i++)
		n += r->keys[i].name.len + 1 + r->keys[i].provider.len + 1;
	return n;
}

/* Append a NUL-terminated copy of s at *pos. */
static const char *
block_str(char **pos, struct str s)
{
	char *p = *pos;

	if (s.len > 0)
		memcpy(p, s.p, s.len);
	p[s.len] = '\0';
	*pos += s.len + 1;
	return p;
}

static void
fill_keys(const struct response *r, kms_key_info *keys, char **pos)
{
	for (size_t i = 0; i < r->n_keys; i++) {
		keys[i].name = block_str(pos, r->keys[i].name);
		keys[i].provider = block_str(pos, r->keys[i].provider);
		keys[i].version = r->keys[i].version;
	}
}

static int
take_hello(const struct response *r, void *arg, kms_error *err)
{
	kms_hello_info **ret = arg, *h;
	size_t size;
	char *pos;

	if (r->n_allow > OP__COUNT)
		return kerr(err, "protocol_error", "too many ops in hello");
	/* One block: struct, pointer tables, then the strings; every part
	 * before the strings is pointer-aligned. */
	size = sizeof(*h) + r->n_allow * sizeof(char *) + keys_size(r) +
	    r->version.len + 1 + r->socket.len + 1;
	for (size_t i = 0; i < r->n_allow; i++)
		size += r->allow[i].len + 1;
	if ((h = calloc(1, size)) == NULL)
		return kerr_nomem(err);
	h->allow = (const char **)(h + 1);
	h->keys = (kms_key_info *)(h->allow + r->n_allow);
	pos = (char *)(h->keys + r->n_keys);
	h->version = block_str(&pos, r->version);
	h->socket = block_str(&pos, r->socket);
	h->protocol = r->protocol;
	h->n_allow = r->n_allow;
	for (size_t i = 0; i < r->n_allow; i++)
		h->allow[i] = block_str(&pos, r->allow[i]);
	h->n_keys = r->n_keys;
	fill_keys(r, h->keys, &pos);
	*ret = h;
	return 0;
}

struct take_keys {
	kms_key_info *keys;
	size_t n;
};

static int
take_keys(const struct response *r, void *arg, kms_error *err)
{
	struct take_keys *t = arg;
	kms_key_info *keys;
	char *pos;

	/* +1: a block even for zero keys, so success never returns NULL. */
	if ((keys = calloc(1, keys_size(r) + 1)) == NULL)
		return kerr_nomem(err);
	pos = (char *)(keys + r->n_keys);
	fill_keys(r, keys, &pos);
	t->keys = keys;
	t->n = r->n_keys;
	return 0;
}

/* --- operations --------------------------------------------------------------- */

/* Fill a request for one of the data ops; it points into the arguments. */
static void
request_data_op(struct request *req, int op, const char *key,
    const kms_context *ctx, const kms_context *new_ctx,
    const void *pt, size_t pt_len, const char *stored)
{
	msg_request_init(req);
	req->op = op;
	req->key = (struct str){ key, strlen(key) };
	ctx_view(ctx, &req->ctx);
	if (new_ctx != NULL)
		ctx_view(new_ctx, &req->new_ctx);
	if (pt != NULL)
		req->plaintext = (struct str){ pt, pt_len };
	if (stored != NULL)
		req->ciphertext = (struct str){ stored, strlen(stored) };
}

int
kms_generate_data_key(kms_client *c, const char *key, const kms_context *ctx,
    unsigned char out[KMS_DATA_KEY_LEN], char **ret_stored, kms_error *err)
{
	struct take_result t = { OP_GENERATE, { NULL, NULL, 0 } };
	struct request req;

	if (check_key(key, err) != 0)
		return -1;
	if (out == NULL || ret_stored == NULL)
		return kerr(err, "invalid_argument", "out or ret is NULL");
	request_data_op(&req, OP_GENERATE, key, ctx, NULL, NULL, 0, NULL);
	if (client_call(c, &req, take_result, &t, err) != 0)
		return -1;
	if (t.res.pt == NULL || t.res.pt_len != KMS_DATA_KEY_LEN) {
		result_done(&t.res);
		return kerr(err, "protocol_error", "response has no data key");
	}
	memcpy(out, t.res.pt, KMS_DATA_KEY_LEN);
	*ret_stored = t.res.stored;
	t.res.stored = NULL;
	result_done(&t.res);
	return 0;
}

int
kms_encrypt(kms_client *c, const char *key, const kms_context *ctx,
    const void *pt, size_t len, char **ret_stored, kms_error *err)
{
	struct take_result t = { OP_ENCRYPT, { NULL, NULL, 0 } };
	struct request req;

	if (check_key(key, err) != 0 || check_plaintext(pt, len, err) != 0)
		return -1;
	if (ret_stored == NULL)
		return kerr(err, "invalid_argument", "ret is NULL");
	request_data_op(&req, OP_ENCRYPT, key, ctx, NULL, pt, len, NULL);
	if (client_call(c, &req, take_result, &t, err) != 0)
		return -1;
	*ret_stored = t.res.stored;
	return 0;
}

int
kms_decrypt(kms_client *c, const char *key, const kms_context *ctx,
    const char *stored, unsigned char **ret_pt, size_t *ret_len,
    kms_error *err)
{
	struct take_result t = { OP_DECRYPT, { NULL, NULL, 0 } };
	struct request req;

	if (check_key(key, err) != 0 || check_stored(stored, err) != 0)
		return -1;
	if (ret_pt == NULL || ret_len == NULL)
		return kerr(err, "invalid_argument", "ret is NULL");
	request_data_op(&req, OP_DECRYPT, key, ctx, NULL, NULL, 0, stored);
	if (client_call(c, &req, take_result, &t, err) != 0)
		return -1;
	*ret_pt = t.res.pt;
	*ret_len = t.res.pt_len;
	return 0;
}

int
kms_rewrap(kms_client *c, const char *key, const kms_context *ctx,
    const kms_context *new_ctx, const char *stored, char **ret_stored,
    kms_error *err)
{
	struct take_result t = { OP_REWRAP, { NULL, NULL, 0 } };
	struct request req;

	if (check_key(key, err) != 0 || check_stored(stored, err) != 0)
		return -1;
	if (ret_stored == NULL)
		return kerr(err, "invalid_argument", "ret is NULL");
	request_data_op(&req, OP_REWRAP, key, ctx, new_ctx, NULL, 0, stored);
	if (client_call(c, &req, take_result, &t, err) != 0)
		return -1;
	*ret_stored = t.res.stored;
	return 0;
}

int
kms_stats(kms_client *c, int prometheus, char **ret_text, kms_error *err)
{
	const char *fmt = prometheus ? "prometheus" : "json";
	struct request req;

	if (ret_text == NULL)
		return kerr(err, "invalid_argument", "ret is NULL");
	msg_request_init(&req);
	req.op = OP_STATS;
	req.format = (struct str){ fmt, strlen(fmt) };
	return client_call(c, &req, take_body, ret_text, err);
}

int
kms_context_hash(kms_client *c, const char *key, const kms_context *ctx,
    const char *audit_path, char **ret, kms_error *err)
{
	struct request req;

	if (check_key(key, err) != 0)
		return -1;
	if (audit_path == NULL || ret == NULL)
		return kerr(err, "invalid_argument",
		    "audit path or ret is NULL");
	if (audit_path[0] == '\0' || strlen(audit_path) > MSG_MAX_AUDIT_PATH)
		return kerr(err, "invalid_argument",
		    "audit path must be 1 to %d bytes", MSG_MAX_AUDIT_PATH);
	request_data_op(&req, OP_CONTEXT_HASH, key, ctx, NULL, NULL, 0, NULL);
	req.audit_path = (struct str){ audit_path, strlen(audit_path) };
	return client_call(c, &req, take_body, ret, err);
}

int
kms_hello(kms_client *c, kms_hello_info **ret, kms_error *err)
{
	struct request req;

	if (ret == NULL)
		return kerr(err, "invalid_argument", "ret is NULL");
	msg_request_init(&req);
	req.op = OP_HELLO;
	return client_call(c, &req, take_hello, ret, err);
}

int
kms_keys(kms_client *c, kms_key_info **ret_keys, size_t *ret_n,
    kms_error *err)
{
	struct take_keys t = { NULL, 0 };
	struct request req;

	if (ret_keys == NULL || ret_n == NULL)
		return kerr(err, "invalid_argument", "ret is NULL");
	msg_request_init(&req);
	req.op = OP_KEYS;
	if (client_call(c, &req, take_keys, &t, err) != 0)
		return -1;
	*ret_keys = t.keys;
	*ret_n = t.n;
	return 0;
}

int
kms_admin_status(kms_client *c, char **ret_json, kms_error *err)
{
	struct request req;

	if (ret_json == NULL)
		return kerr(err, "invalid_argument", "ret is NULL");
	msg_request_init(&req);
	req.op = OP_STATUS;
	return client_call(c, &req, take_body, ret_json, err);
}

int
kms_admin_disable_decrypt(kms_client *c, const char *reason, kms_error *err)
{
	struct request req;

	if (reason != NULL && strlen(reason) > MSG_MAX_REASON)
		return kerr(err, "invalid_argument",
		    "reason is over %d bytes", MSG_MAX_REASON);
	msg_request_init(&req);
	req.op = OP_DISABLE_DECRYPT;
	if (reason != NULL)
		req.reason = (struct str){ reason, strlen(reason) };
	return client_call(c, &req, take_nothing, NULL, err);
}

int
kms_admin_enable_decrypt(kms_client *c, kms_error *err)
{
	struct request req;

	msg_request_init(&req);
	req.op = OP_ENABLE_DECRYPT;
	return client_call(c, &req, take_nothing, NULL, err);
}

int
kms_admin_reload(kms_client *c, kms_error *err)
{
	struct request req;

	msg_request_init(&req);
	req.op = OP_RELOAD;
	return client_call(c, &req, take_nothing, NULL, err);
}

/* --- batches ------------------------------------------------------------------- */

int
kms_batch_new(kms_client *c, kms_batch **ret, kms_error *err)
{
	kms_batch *b;

	if (c == NULL || ret == NULL)
		return kerr(err, "invalid_argument", "client or ret is NULL");
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return kerr_nomem(err);
	b->c = c;
	*ret = b;
	return 0;
}

static void
item_done(struct batch_item *it)
{
	free(it->key);
	free(it->stored_in);
	kms_free_secret(it->pt_in, it->pt_in_len);
	result_done(&it->res);
	OPENSSL_cleanse(it, sizeof(*it));
}

void
kms_batch_free(kms_batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		item_done(&b->items[i]);
	free(b->items);
	for (size_t i = 0; i < b->n_ctxs; i++)
		kms_context_free(b->ctxs[i]);
	free(b->ctxs);
	free(b);
}

size_t
kms_batch_count(const kms_batch *b)
{
	return b == NULL ? 0 : b->n;
}

/* A copy of ctx owned by the batch, shared with recent equal ones. */
static int
batch_ctx(kms_batch *b, const kms_context *ctx,
    const kms_context **ret, kms_error *err)
{
	kms_context *copy;
	size_t i;

	if (ctx == NULL) {
		*ret = NULL;
		return 0;
	}
	for (i = 0; i < b->n_ctxs && i < BATCH_CTX_DEDUP; i++) {
		if (ctx_same(b->ctxs[b->n_ctxs - 1 - i], ctx)) {
			*ret = b->ctxs[b->n_ctxs - 1 - i];
			return 0;
		}
	}
	if (b->n_ctxs == b->cap_ctxs) {
		size_t ncap = b->cap_ctxs == 0 ? 8 : b->cap_ctxs * 2;
		kms_context **n = realloc(b->ctxs, ncap * sizeof(kms_context *));

		if (n == NULL)
			return kerr_nomem(err);
		b->ctxs = n;
		b->cap_ctxs = ncap;
	}
	if ((copy = ctx_dup(ctx)) == NULL)
		return kerr_nomem(err);
	b->ctxs[b->n_ctxs++] = copy;
	*ret = copy;
	return 0;
}

/* Append an item; its owned fields are filled by the caller. */
static struct batch_item *
batch_add(kms_batch *b, int op, const char *key, const kms_context *ctx,
    const kms_context *new_ctx, kms_error *err)
{
	struct batch_item *it;

	if (b == NULL) {
		kerr(err, "invalid_argument", "batch is NULL");
		return NULL;
	}
	if (check_key(key, err) != 0)
		return NULL;
	if (b->n == KMS_BATCH_MAX) {
		kerr(err, "invalid_argument", "batch has %d items already",
		    KMS_BATCH_MAX);
		return NULL;
	}
	if (b->n == b->cap) {
		size_t ncap = b->cap == 0 ? 64 : b->cap * 2;
		struct batch_item *n;

		/* calloc + copy rather than realloc: the items hold no
		 * secrets themselves (only pointers), but keep it simple to
		 * wipe the old array anyway. */
		if ((n = calloc(ncap, sizeof(*n))) == NULL) {
			kerr_nomem(err);
			return NULL;
		}
		if (b->n > 0)
			memcpy(n, b->items, b->n * sizeof(*n));
		if (b->items != NULL) {
			OPENSSL_cleanse(b->items, b->n * sizeof(*n));
			free(b->items);
		}
		b->items = n;
		b->cap = ncap;
	}
	it = &b->items[b->n];
	memset(it, 0, sizeof(*it));
	it->op = op;
	if (batch_ctx(b, ctx, &it->ctx, err) != 0 ||
	    batch_ctx(b, new_ctx, &it->new_ctx, err) != 0)
		return NULL;
	if ((it->key = strdup(key)) == NULL) {
		kerr_nomem(err);
		return NULL;
	}
	return it;
}

int
kms_batch_add_generate(kms_batch *b, const char *key, const kms_context *ctx,
    kms_error *err)
{
	if (batch_add(b, OP_GENERATE, key, ctx, NULL, err) == NULL)
		return -1;
	b->n++;
	return 0;
}

int
kms_batch_add_encrypt(kms_batch *b, const char *key, const kms_context *ctx,
    const void *pt, size_t len, kms_error *err)
{
	struct batch_item *it;

	if (check_plaintext(pt, len, err) != 0)
		return -1;
	if ((it = batch_add(b, OP_ENCRYPT, key, ctx, NULL, err)) == NULL)
		return -1;
	if ((it->pt_in = malloc(len)) == NULL) {
		item_done(it);
		return kerr_nomem(err);
	}
	memcpy(it->pt_in, pt, len);
	it->pt_in_len = len;
	b->n++;
	return 0;
}

static int
batch_add_stored(kms_batch *b, int op, const char *key,
    const kms_context *ctx, const kms_context *new_ctx, const char *stored,
    kms_error *err)
{
	struct batch_item *it;

	if (check_stored(stored, err) != 0)
		return -1;
	if ((it = batch_add(b, op, key, ctx, new_ctx, err)) == NULL)
		return -1;
	if ((it->stored_in = strdup(stored)) == NULL) {
		item_done(it);
		return kerr_nomem(err);
	}
	b->n++;
	return 0;
}

int
kms_batch_add_decrypt(kms_batch *b, const char *key, const kms_context *ctx,
    const char *stored, kms_error *err)
{
	return batch_add_stored(b, OP_DECRYPT, key, ctx, NULL, stored, err);
}

int
kms_batch_add_rewrap(kms_batch *b, const char *key, const kms_context *ctx,
    const kms_context *new_ctx, const char *stored, kms_error *err)
{
	return batch_add_stored(b, OP_REWRAP, key, ctx, new_ctx, stored, err);
}

/* State of one kms_batch_run over one connection. */
struct run {
	kms_batch *b;
	size_t *pending;	/* item indexes still to be answered */
	size_t npending;
	uint64_t base;		/* id of pending[0]; pending[i] has base + i */
	size_t next;		/* pending[next] is the next to encode */
	size_t inflight;
	size_t ndone;
};

/* Collect the items without a result and give them fresh ids. */
static void
run_start(struct run *r, kms_client *c)
{
	r->npending = 0;
	for (size_t i = 0; i < r->b->n; i++)
		if (r->b->items[i].state == ITEM_PENDING)
			r->pending[r->npending++] = i;
	r->base = c->next_id;
	c->next_id += r->npending;
	r->next = 0;
	r->inflight = 0;
	r->ndone = 0;
}

/* Encode requests into wbuf up to the window. */
static int
run_fill(struct run *r, kms_client *c, kms_error *err)
{
	struct request req;

	while (r->next < r->npending && r->inflight < KMS_BATCH_WINDOW) {
		struct batch_item *it = &r->b->items[r->pending[r->next]];
		size_t before = c->wbuf.len;
		int e;

		request_data_op(&req, it->op, it->key, it->ctx, it->new_ctx,
		    it->pt_in, it->pt_in_len, it->stored_in);
		req.id = r->base + r->next;
		e = msg_encode_request(&c->wbuf, &req);
		if (e == ERR_NOMEM)
			return kerr_nomem(err);
		if (e == ERR_TOO_LARGE && before > 0)
			break;	/* send what is queued first */
		if (e == 0 && c->wbuf.len - before <= CLIENT_FRAME_MAX) {
			r->next++;
			r->inflight++;
			continue;
		}
		/* This one can never be sent: its own error, no request. */
		if (e == 0) {
			OPENSSL_cleanse(c->wbuf.data + before,
			    c->wbuf.len - before);
			c->wbuf.len = before;
		}
		kerr(&it->error, "invalid_argument",
		    "request over the %d byte frame limit", FRAME_MAX_DEFAULT);
		it->state = ITEM_DONE;
		it->failed = 1;
		r->next++;
		r->ndone++;
	}
	return 0;
}

/* Take every whole frame in rbuf as the answer to one pending item. */
static int
run_collect(struct run *r, kms_client *c, int64_t *deadline, kms_error *err)
{
	const uint8_t *body;
	size_t body_len;
	int f;

	while ((f = client_frame(c, &body, &body_len, err)) == 1) {
		struct response resp;
		struct batch_item *it;
		uint64_t idx;

		msg_response_init(&resp);
		if (msg_decode_response(body, body_len, &resp) != 0) {
			kerr(err, "protocol_error", "bad response: %s",
			    resp.why);
			msg_response_done(&resp);
			return -1;
		}
		idx = resp.id - r->base;
		if (resp.id < r->base || idx >= r->next ||
		    r->b->items[r->pending[idx]].state != ITEM_PENDING) {
			kerr(err, "protocol_error",
			    "response for unknown id %llu",
			    (unsigned long long)resp.id);
			msg_response_done(&resp);
			return -1;
		}
		it = &r->b->items[r->pending[idx]];
		it->state = ITEM_DONE;
		it->failed = resp_is_error(&resp) ?
		    (kerr_wire(&it->error, &resp), 1) :
		    result_take(it->op, &resp, &it->res, &it->error) != 0;
		if (it->op == OP_ENCRYPT) {
			/* Answered: the plaintext copy has no more use. */
			kms_free_secret(it->pt_in, it->pt_in_len);
			it->pt_in = NULL;
			it->pt_in_len = 0;
		}
		r->inflight--;
		r->ndone++;
		*deadline = now_ms() + c->timeout_ms;
		client_release(c, &resp, FRAME_HDR + body_len);
	}
	return f;
}

/* Pipeline the pending items over the connection until all are answered. */
static int
run_loop(struct run *r, kms_client *c, kms_error *err)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	struct pollfd pfd;
	size_t sent;
	int n, e;

	while (r->ndone < r->npending) {
		if (run_fill(r, c, err) != 0)
			return -1;
		if (r->ndone == r->npending)
			break;
		pfd.fd = c->fd;
		pfd.events = POLLIN | (c->wbuf.len > 0 ? POLLOUT : 0);
		pfd.revents = 0;
		n = poll(&pfd, 1, (int)(deadline - now_ms() > 0 ?
		    deadline - now_ms() : 0));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kerr_errno(err, "connection_failed", "poll",
			    errno);
		if (n == 0)
			return kerr(err, "timeout",
			    "no response within the timeout");
		if (c->wbuf.len > 0 && (pfd.revents & (POLLOUT | POLLERR))) {
			if ((e = client_write(c, c->wbuf.data, c->wbuf.len,
			    &sent, err)) != 0)
				return e;
			/* Wipes what was sent (it may hold plaintexts). */
			buf_consume(&c->wbuf, sent);
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			if ((e = client_read(c, err)) != 0)
				return e;
			if (run_collect(r, c, &deadline, err) != 0)
				return -1;
		}
	}
	return 0;
}

int
kms_batch_run(kms_batch *b, kms_error *err)
{
	struct run r = { .b = b };
	kms_error run_err;
	kms_client *c;
	int rc = -1, e = 0;

	if (b == NULL)
		return kerr(err, "invalid_argument", "batch is NULL");
	c = b->c;
	if (b->n > 0 && (r.pending = calloc(b->n, sizeof(size_t))) == NULL)
		return kerr_nomem(err);
	for (size_t i = 0; i < b->n; i++)
		b->items[i].failed = b->items[i].state == ITEM_DONE ?
		    b->items[i].failed : 0;
	pthread_mutex_lock(&c->lock);
	buf_clear(&c->wbuf);
	for (int attempt = 0;; attempt++) {
		run_start(&r, c);
		if (r.npending == 0) {
			rc = 0;
			break;
		}
		e = 0;
		if (c->fd < 0)
			e = client_open(c, now_ms() + c->timeout_ms,
			    attempt > 0, &run_err);
		if (e == 0)
			e = run_loop(&r, c, &run_err);
		buf_clear(&c->wbuf);
		if (e == 0) {
			rc = 0;
			break;
		}
		client_drop(c);
		/* Only a server that went away earns the one retry; the
		 * answered items keep their results. */
		if (e != IO_CLOSED || attempt > 0)
			break;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc != 0) {
		for (size_t i = 0; i < b->n; i++) {
			if (b->items[i].state == ITEM_PENDING) {
				b->items[i].error = run_err;
				b->items[i].failed = 1;
			}
		}
		if (err != NULL)
			*err = run_err;
	}
	free(r.pending);
	return rc;
}

int
kms_batch_result(const kms_batch *b, size_t i, const char **ret_stored,
    const unsigned char **ret_pt, size_t *ret_pt_len, kms_error *err)
{
	const struct batch_item *it;

	if (b == NULL || i >= b->n)
		return kerr(err, "invalid_argument", "no item %zu", i);
	it = &b->items[i];
	if (it->failed) {
		if (err != NULL)
			*err = it->error;
		return -1;
	}
	if (it->state != ITEM_DONE)
		return kerr(err, "invalid_argument", "item %zu has not run",
		    i);
	if (ret_stored != NULL)
		*ret_stored = it->res.stored;
	if (ret_pt != NULL)
		*ret_pt = it->res.pt;
	if (ret_pt_len != NULL)
		*ret_pt_len = it->res.pt_len;
	return 0;
}
