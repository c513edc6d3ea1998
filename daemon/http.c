/*
 * http.c: libcurl multi driven by the libevent loop, for every provider.
 *
 * Owns: the one CURLM of a struct http (and through it the connection
 * cache, DNS cache and CA cache shared by all clients), one libevent event
 * per socket curl watches, one timer for curl's timeouts, and one http_op
 * per started request (private to this file, reached from http_req.priv).
 *
 * Invariants:
 * - An op is in exactly one state and at most one list: QUEUED (c->queue),
 *   RUNNING or BACKOFF (c->active, holding one of the client's
 *   max_inflight slots across its retries), COMPLETING (c->completing,
 *   result kept, done() pending on a zero-delay event).
 * - done() runs only from the op's own event on a later loop turn, never
 *   inside http_start, http_cancel or a curl callback; the one exception is
 *   http_client_free, whose caller asked for it. Before done() runs the op
 *   is unlinked and r->priv is NULL, so done() may free r, cancel or start
 *   other requests, or free the client.
 * - Queued requests are admitted from a per-client zero-delay event, FIFO.
 * - curl callbacks only (re)arm events and record what curl reported;
 *   easy handles are added and removed, and hooks run, only between
 *   curl_multi_socket_action calls.
 * - Header strings exist only for one try and are wiped when it ends, so a
 *   credential or signature does not outlive the try in our memory.
 * - A request cancelled while its transfer runs becomes an orphan: its
 *   owner is gone (r is NULL, no hook or done() runs), but the transfer
 *   finishes, its body discarded, so its keep-alive connection goes back
 *   to the pool instead of being torn down (a client that disconnects
 *   with requests in flight would otherwise cost a TCP and TLS handshake
 *   each). An orphan keeps its slot until then, and ends by its deadline.
 * - So every transfer holds a slot, and the connection cache is sized to
 *   the slots: kmsd never holds more connections than the in-flight
 *   limits add up to (CURLMOPT_MAX_TOTAL_CONNECTIONS as a backstop).
 * - Finished ops (with their curl easy handle, timers and wiped buffers)
 *   and socket records are kept for reuse, at most one per slot, so a
 *   steady stream of requests allocates almost nothing here.
 * - Nothing here logs: errors go to the owner through done() and errmsg.
 *
 * Hooks (prepare, classify) may call http_req_header and http_cancel on
 * their own request, nothing else of this API.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "err.h"
#include "http.h"
#include "libmem.h"
#include "turn.h"

/* First retry waits up to this long (full jitter: uniform in [0, cap]). */
#define HTTP_BACKOFF_BASE_MS 50
/* Cap on one backoff step, so a long deadline does not sleep for seconds
 * while the provider has likely recovered. */
#define HTTP_BACKOFF_MAX_MS 1000
/* A try started from the queue or as a retry needs at least this much of
 * the deadline left: less cannot finish a round trip to a remote endpoint. */
#define HTTP_MIN_TRY_MS 10
/* Idle keep-alive connections the shared cache may hold: each is a file
 * descriptor, and a dead provider's connections should not pile up. */
#define HTTP_MAX_CONNECTS 256
/* Finished ops and socket records kept for reuse, at most: each op keeps
 * a curl easy handle (several KB), so idle memory stays bounded. */
#define HTTP_MAX_KEPT 256
/* A kept op keeps a buffer up to this size; a larger one (a rare big body)
 * is freed rather than held by an idle op. */
#define HTTP_MAX_KEPT_BUF 16384
/* Longest single header line ("Name: value"): a GCP access token is ~2 KB,
 * a SigV4 Authorization ~300 bytes; more is a bug upstream. */
#define HTTP_MAX_HEADER_LEN 8192
/* A request body: larger than any provider builds (AWS_BODY_MAX is
 * 1 MiB); the copy's cap. */
#define HTTP_MAX_REQUEST_BODY (4 * 1024 * 1024)
/* All header bytes of one try, replaced values included: every header at
 * its longest, twice over. */
#define HTTP_MAX_HEADER_BYTES (2 * HTTP_MAX_HEADERS * (HTTP_MAX_HEADER_LEN + 1))
/* curl's receive buffer (CURLOPT_BUFFERSIZE): its minimum; with the
 * terminator curl adds, still a size glibc's per-thread cache serves. */
#define HTTP_RECV_BUFFER 1024L
/* curl's https send buffer (CURLOPT_UPLOAD_BUFFERSIZE): its minimum, far
 * above a signed KMS request. */
#define HTTP_SEND_BUFFER 16384L
/* Bound on a try count so a bad configuration cannot spin for long. */
#define HTTP_MAX_TRIES_CAP 16

enum http_state {
	HTTP_S_NEW,
	HTTP_S_QUEUED,
	HTTP_S_RUNNING,
	HTTP_S_BACKOFF,
	HTTP_S_COMPLETING,
};

struct http_sock {
	struct http *h;
	struct event *ev;
	LIST_ENTRY(http_sock) link;	/* h->socks, or h->free_socks */
};

struct http_op {
	struct http_req *r;		/* NULL for an orphan */
	struct http_client *c;
	TAILQ_ENTRY(http_op) link;	/* c's lists, or h->free_ops */
	enum http_state state;
	uint64_t deadline_us;		/* CLOCK_MONOTONIC */
	struct event *deadline_ev;
	struct event *step;		/* backoff timer, then done() */
	CURL *easy;			/* kept across tries and reuses */
	bool easy_used;			/* has options set: reset first */
	/* What easy was last set up for (http_op_setup): client id (0: not
	 * set up), method, with a body, plain http. */
	uint64_t shape_client;
	char shape_method[8];
	bool shape_body;
	bool shape_plain;
	bool in_multi;
	bool in_hook;			/* inside prepare() or classify() */
	bool cancelled;			/* http_cancel while in_hook */
	bool orphan;			/* cancelled mid-transfer (see top) */
	int write_err;			/* body over the cap (or no memory) */
	size_t discarded;		/* orphan: body bytes dropped */
	/* This try's header lines, each "Name: value\0", back to back in
	 * one wipe-on-free buffer; hdr_off[i] is where line i starts. */
	struct buf hdrs;
	size_t hdr_off[HTTP_MAX_HEADERS];
	unsigned nhdr;
	/* Our own list nodes: curl_slist_append would keep unwiped copies. */
	struct curl_slist nodes[HTTP_MAX_HEADERS + 1];
	/* This try's request body: curl reads it while the transfer runs,
	 * which for an orphan is after its owner (and r->body) are gone. */
	struct buf req_body;
	struct buf body;
	int err;
	long status;
	char errbuf[CURL_ERROR_SIZE];
};

TAILQ_HEAD(http_op_list, http_op);

struct http_client {
	struct http *h;
	TAILQ_ENTRY(http_client) link;
	uint64_t id;			/* unique in h, never 0 */
	unsigned deadline_ms;
	unsigned max_inflight;
	unsigned max_queue;
	unsigned max_tries;
	char *ca_file;
	char *url_ok;			/* last URL http_url_allowed passed */
	unsigned inflight;		/* ops in RUNNING or BACKOFF */
	unsigned queued;
	struct http_op_list queue;
	struct http_op_list active;
	struct http_op_list completing;
	struct event *pump;		/* admits queued ops */
	bool closing;
};

struct http {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	LIST_HEAD(, http_sock) socks;
	TAILQ_HEAD(, http_client) clients;
	uint64_t connects;
	uint64_t client_ids;		/* the last id given */
	unsigned slots;			/* max_inflight over every client */
	/* Kept for reuse, each list at most `slots` long. */
	TAILQ_HEAD(, http_op) free_ops;
	unsigned n_free_ops;
	LIST_HEAD(, http_sock) free_socks;
	unsigned n_free_socks;
	/* TLS sessions shared by every easy handle, so a connection opened
	 * after the pool shrank resumes a session (an abbreviated
	 * handshake) instead of a full one. One thread: no lock callbacks. */
	CURLSH *share;
};

/* Disables "Expect: 100-continue": it costs a round trip (or a one second
 * wait on servers that ignore it) for no gain on small API bodies. */
static char http_no_expect[] = "Expect:";

static void http_op_try(struct http_op *op);
static void http_op_free(struct http_op *op);
static void http_op_step_cb(evutil_socket_t fd, short what, void *arg);
static void http_op_deadline_cb(evutil_socket_t fd, short what, void *arg);

static uint64_t
http_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static struct timeval
http_tv_ms(uint64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	return tv;
}

/* Wipe this try's header lines; the buffer stays for the next try. */
static void
http_headers_clear(struct http_op *op)
{
	buf_clear(&op->hdrs);
	op->nhdr = 0;
}

/* ---- curl <-> libevent ---- */

static void
http_check_done(struct http *h);

static void
http_sock_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_sock *s = arg;
	struct http *h = s->h;	/* s may be freed inside socket_action */
	int action = 0, running;

	turn_mark_secret();

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(h->multi, fd, action, &running);
	http_check_done(h);
}

static void
http_sock_free(struct http_sock *s)
{
	LIST_REMOVE(s, link);
	event_free(s->ev);
	free(s);
}

/* curl is done with s's socket: keep s for the next one, within bounds.
 * (curl reports a keep-alive connection's socket removed whenever no
 * transfer uses it, and added again when one does.) */
static void
http_sock_put(struct http_sock *s)
{
	struct http *h = s->h;

	if (h->n_free_socks >= h->slots || h->n_free_socks >= HTTP_MAX_KEPT) {
		http_sock_free(s);
		return;
	}
	event_del(s->ev);
	LIST_REMOVE(s, link);
	LIST_INSERT_HEAD(&h->free_socks, s, link);
	h->n_free_socks++;
}

/* CURLMOPT_SOCKETFUNCTION: one persistent event per socket curl uses. */
static int
http_sock_cb(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct http *h = arg;
	struct http_sock *s = sockp;
	short flags;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL)
			http_sock_put(s);
		return 0;
	}
	flags = EV_PERSIST;
	if (what & CURL_POLL_IN)
		flags |= EV_READ;
	if (what & CURL_POLL_OUT)
		flags |= EV_WRITE;
	if (s == NULL && (s = LIST_FIRST(&h->free_socks)) != NULL) {
		LIST_REMOVE(s, link);
		h->n_free_socks--;
		LIST_INSERT_HEAD(&h->socks, s, link);
		if (event_assign(s->ev, h->base, fd, flags, http_sock_event_cb,
		    s) != 0 || curl_multi_assign(h->multi, fd, s) != CURLM_OK) {
			http_sock_free(s);
			return -1;
		}
	} else if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		s->h = h;
		s->ev = event_new(h->base, fd, flags, http_sock_event_cb, s);
		if (s->ev == NULL) {
			free(s);
			return -1;
		}
		LIST_INSERT_HEAD(&h->socks, s, link);
		if (curl_multi_assign(h->multi, fd, s) != CURLM_OK) {
			http_sock_free(s);
			return -1;
		}
	} else {
		event_del(s->ev);
		if (event_assign(s->ev, h->base, fd, flags, http_sock_event_cb,
		    s) != 0)
			return -1;
	}
	return event_add(s->ev, NULL) == 0 ? 0 : -1;
}

static void
http_timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;
	int running;

	turn_mark_secret();

	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_check_done(h);
}

/* CURLMOPT_TIMERFUNCTION: only re-arms; curl is driven from the event. */
static int
http_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct http *h = arg;
	struct timeval tv;

	if (timeout_ms < 0)
		return event_del(h->timer) == 0 ? 0 : -1;
	tv = http_tv_ms((uint64_t)timeout_ms);
	return evtimer_add(h->timer, &tv) == 0 ? 0 : -1;
}

/* ---- op state ---- */

/* Take op out of curl and count the connections its try opened. */
static void
http_op_unplug(struct http_op *op)
{
	long n = 0;

	if (!op->in_multi)
		return;
	if (curl_easy_getinfo(op->easy, CURLINFO_NUM_CONNECTS, &n) ==
	    CURLE_OK && n > 0)
		op->c->h->connects += (uint64_t)n;
	curl_multi_remove_handle(op->c->h->multi, op->easy);
	op->in_multi = false;
}

static void
http_client_kick(struct http_client *c)
{
	if (!c->closing && !TAILQ_EMPTY(&c->queue) &&
	    c->inflight < c->max_inflight)
		event_active(c->pump, 0, 0);
}

/* Leave the current state: no list, no timer, no transfer, no headers. */
static void
http_op_detach(struct http_op *op)
{
	struct http_client *c = op->c;

	switch (op->state) {
	case HTTP_S_NEW:
		break;
	case HTTP_S_QUEUED:
		TAILQ_REMOVE(&c->queue, op, link);
		c->queued--;
		break;
	case HTTP_S_RUNNING:
	case HTTP_S_BACKOFF:
		TAILQ_REMOVE(&c->active, op, link);
		c->inflight--;
		http_client_kick(c);
		break;
	case HTTP_S_COMPLETING:
		TAILQ_REMOVE(&c->completing, op, link);
		break;
	}
	op->state = HTTP_S_NEW;
	http_op_unplug(op);
	http_headers_clear(op);
	event_del(op->step);
	event_del(op->deadline_ev);
}

/* Done with op (no done() call): back to the pool, wiped, or freed. Its
 * easy handle keeps its options (http_op_setup resets or refreshes them
 * before the next use): an idle handle is never touched by curl, so what
 * it points at meanwhile is moot. */
static void
http_op_put(struct http *h, struct http_op *op)
{
	struct buf *keep[] = { &op->hdrs, &op->req_body, &op->body };

	op->r = NULL;
	op->c = NULL;
	if (h->n_free_ops >= h->slots || h->n_free_ops >= HTTP_MAX_KEPT) {
		http_op_free(op);
		return;
	}
	op->nhdr = 0;
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		if (keep[i]->cap > HTTP_MAX_KEPT_BUF) {
			size_t max = keep[i]->max;

			buf_done(keep[i]);
			buf_init(keep[i], max);
		} else
			buf_clear(keep[i]);
	}
	TAILQ_INSERT_HEAD(&h->free_ops, op, link);
	h->n_free_ops++;
}

/* An orphan's transfer ended (or its deadline came): let it go. */
static void
http_op_drop(struct http_op *op)
{
	struct http *h = op->c->h;

	http_op_detach(op);
	http_op_put(h, op);
}

/* Record the result; done() runs from op->step on the next loop turn. */
static void
http_op_complete(struct http_op *op, int err, long status)
{
	if (op->orphan) {
		http_op_drop(op);
		return;
	}
	http_op_detach(op);
	op->err = err;
	op->status = status;
	if (err != 0)
		buf_clear(&op->body);
	op->state = HTTP_S_COMPLETING;
	TAILQ_INSERT_TAIL(&op->c->completing, op, link);
	event_active(op->step, 0, 0);
}

/* Hand the result to the owner; op is gone afterwards. */
static void
http_op_deliver(struct http_op *op)
{
	struct http_req *r = op->r;
	struct http *h = op->c->h;	/* done() may free the client */

	http_op_detach(op);
	if (op->orphan) {
		http_op_put(h, op);
		return;
	}
	r->priv = NULL;
	if (r->done != NULL)
		r->done(r, op->err, op->status, &op->body);
	/* r may be freed now; op is ours alone. */
	http_op_put(h, op);
}

static void
http_op_free(struct http_op *op)
{
	buf_done(&op->hdrs);
	if (op->easy != NULL)
		curl_easy_cleanup(op->easy);
	buf_done(&op->req_body);
	buf_done(&op->body);
	if (op->step != NULL)
		event_free(op->step);
	if (op->deadline_ev != NULL)
		event_free(op->deadline_ev);
	free(op);
}

/* An op for a new request: a kept one, or a new one. NULL: no memory. */
static struct http_op *
http_op_get(struct http *h)
{
	struct http_op *op;

	if ((op = TAILQ_FIRST(&h->free_ops)) != NULL) {
		TAILQ_REMOVE(&h->free_ops, op, link);
		h->n_free_ops--;
	} else {
		if ((op = calloc(1, sizeof(*op))) == NULL)
			return NULL;
		buf_init(&op->body, HTTP_MAX_BODY);
		buf_init(&op->req_body, HTTP_MAX_REQUEST_BODY);
		buf_init(&op->hdrs, HTTP_MAX_HEADER_BYTES);
		op->step = evtimer_new(h->base, http_op_step_cb, op);
		op->deadline_ev = evtimer_new(h->base, http_op_deadline_cb,
		    op);
		if (op->step == NULL || op->deadline_ev == NULL) {
			http_op_free(op);
			return NULL;
		}
	}
	op->state = HTTP_S_NEW;
	op->in_multi = false;
	op->in_hook = false;
	op->cancelled = false;
	op->orphan = false;
	op->write_err = 0;
	op->discarded = 0;
	op->nhdr = 0;
	op->err = 0;
	op->status = 0;
	return op;
}

/* Drop op without a done() call (http_cancel). */
static void
http_op_destroy(struct http_op *op)
{
	struct http *h = op->c->h;

	op->r->priv = NULL;
	http_op_detach(op);
	http_op_put(h, op);
}

/* http_cancel of a transfer in progress: see "orphan" at the top. */
static void
http_op_orphan(struct http_op *op)
{
	op->r->priv = NULL;
	op->r = NULL;
	op->orphan = true;
	buf_clear(&op->body);
}

static void
http_op_step_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_op *op = arg;

	turn_mark_secret();

	if (op->state == HTTP_S_BACKOFF)
		http_op_try(op);
	else if (op->state == HTTP_S_COMPLETING)
		http_op_deliver(op);
}

static void
http_op_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_op *op = arg;
	uint64_t now = http_now_us();
	struct timeval tv;

	turn_mark_secret();

	/* libevent may use a coarse clock and fire up to a tick early; a
	 * deadline is never reported before it has passed. */
	if (now < op->deadline_us) {
		tv.tv_sec = (time_t)((op->deadline_us - now) / 1000000);
		tv.tv_usec = (suseconds_t)((op->deadline_us - now) % 1000000);
		evtimer_add(op->deadline_ev, &tv);
		return;
	}
	if (op->state != HTTP_S_COMPLETING)
		http_op_complete(op, ERR_TIMEOUT, 0);
}

static void
http_client_pump_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *c = arg;
	struct http_op *op, *next;
	uint64_t now = http_now_us();

	turn_mark_secret();

	for (op = TAILQ_FIRST(&c->queue); op != NULL && !c->closing &&
	    c->inflight < c->max_inflight; op = next) {
		/* Hooks touch only their own request, so next stays valid. */
		next = TAILQ_NEXT(op, link);
		/* Too little time left for a useful try: leave it queued for
		 * its deadline event instead of spending a connection. */
		if (op->deadline_us < now + HTTP_MIN_TRY_MS * 1000)
			continue;
		/* Not http_op_detach: the deadline keeps running. */
		TAILQ_REMOVE(&c->queue, op, link);
		c->queued--;
		op->state = HTTP_S_RUNNING;
		TAILQ_INSERT_TAIL(&c->active, op, link);
		c->inflight++;
		http_op_try(op);
	}
}

/* ---- one try ---- */

static size_t
http_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct http_op *op = arg;
	int r;

	/* size is 1 by contract; the cap turns an endless or hostile body
	 * into CURLE_WRITE_ERROR instead of memory. */
	if (op->orphan) {
		/* Nobody reads it; the same cap bounds how long it runs. */
		op->discarded += size * n;
		return op->discarded > HTTP_MAX_BODY ? 0 : size * n;
	}
	if ((r = buf_append(&op->body, p, size * n)) != 0) {
		op->write_err = r;
		return 0;
	}
	return size * n;
}

static int
http_is_plain(const char *url)
{
	return strncasecmp(url, "http://", 7) == 0;
}

#define HTTP_SETOPT(e, opt, val) do { \
	if ((cc = curl_easy_setopt((e), (opt), (val))) != CURLE_OK) \
		goto out; \
} while (0)

/*
 * Configure op->easy for one try. 0 or ERR_*. A handle already set up for
 * a try of the same shape (client, method, body or not, plain http or
 * not) keeps the options that only depend on the shape and gets just the
 * per-try ones (curl keeps options between transfers); any other gets
 * curl_easy_reset and everything.
 */
static int
http_op_setup(struct http_op *op, long timeout_ms)
{
	struct http_req *r = op->r;
	CURL *e = op->easy;
	const char *method = r->method != NULL ? r->method : "GET";
	bool is_get = strcmp(method, "GET") == 0;
	bool is_post = strcmp(method, "POST") == 0;
	bool is_head = strcmp(method, "HEAD") == 0;
	bool has_body = r->body_len > 0 || is_post || strcmp(method, "PUT") == 0;
	bool plain = http_is_plain(r->url);
	size_t mlen = strlen(method);
	CURLcode cc = CURLE_OK;
	unsigned i;

	/* The lines stay put: nothing is added while the try runs. */
	for (i = 0; i < op->nhdr; i++) {
		op->nodes[i].data = (char *)op->hdrs.data + op->hdr_off[i];
		op->nodes[i].next = &op->nodes[i + 1];
	}
	op->nodes[i].data = http_no_expect;
	op->nodes[i].next = NULL;
	op->errbuf[0] = '\0';

	if (op->shape_client == op->c->id && op->shape_body == has_body &&
	    op->shape_plain == plain && mlen < sizeof(op->shape_method) &&
	    strcmp(op->shape_method, method) == 0)
		goto per_try;
	if (op->easy_used)
		curl_easy_reset(e);
	op->easy_used = true;
	op->shape_client = 0;
	HTTP_SETOPT(e, CURLOPT_PRIVATE, op);
	HTTP_SETOPT(e, CURLOPT_NOSIGNAL, 1L);
	HTTP_SETOPT(e, CURLOPT_SHARE, op->c->h->share);
	HTTP_SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
	HTTP_SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L);
	HTTP_SETOPT(e, CURLOPT_SSL_VERIFYPEER, 1L);
	HTTP_SETOPT(e, CURLOPT_SSL_VERIFYHOST, 2L);
	/* Debian's default CA path turns off curl's CA cache, which would
	 * re-parse the system bundle (~30 ms CPU) on every new connection. */
	HTTP_SETOPT(e, CURLOPT_CAPATH, NULL);
	if (op->c->ca_file != NULL)
		HTTP_SETOPT(e, CURLOPT_CAINFO, op->c->ca_file);
	/* curl allocates its receive buffer and (for https) its send buffer
	 * for every transfer and frees them after: at these sizes that is a
	 * cached small block and 16 KB instead of 16 KB and 64 KB churned
	 * through the heap (64 KB freed at the top made glibc give memory
	 * back to the kernel and take it again, page faults included, every
	 * few requests). API answers and requests are a few KB at most;
	 * larger ones take more reads or writes. */
	HTTP_SETOPT(e, CURLOPT_BUFFERSIZE, HTTP_RECV_BUFFER);
	HTTP_SETOPT(e, CURLOPT_UPLOAD_BUFFERSIZE, HTTP_SEND_BUFFER);
	HTTP_SETOPT(e, CURLOPT_WRITEFUNCTION, http_write_cb);
	HTTP_SETOPT(e, CURLOPT_WRITEDATA, op);
	/* Fails early on a declared Content-Length over the cap. */
	HTTP_SETOPT(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)HTTP_MAX_BODY);
	HTTP_SETOPT(e, CURLOPT_ERRORBUFFER, op->errbuf);
	HTTP_SETOPT(e, CURLOPT_USERAGENT, "kmsd/" KMSD_VERSION);
	HTTP_SETOPT(e, CURLOPT_HTTPHEADER, op->nodes);
	/* Loopback test endpoints never go through a proxy from the
	 * environment; https honours it (admins may need one). */
	if (plain)
		HTTP_SETOPT(e, CURLOPT_PROXY, "");
	if (is_head)
		HTTP_SETOPT(e, CURLOPT_NOBODY, 1L);
	else if (!is_post && (has_body || !is_get))
		HTTP_SETOPT(e, CURLOPT_CUSTOMREQUEST, method);
	if (mlen < sizeof(op->shape_method)) {
		memcpy(op->shape_method, method, mlen + 1);
		op->shape_body = has_body;
		op->shape_plain = plain;
		op->shape_client = op->c->id;
	}
per_try:
	HTTP_SETOPT(e, CURLOPT_URL, r->url);
	HTTP_SETOPT(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	if (has_body) {
		HTTP_SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)op->req_body.len);
		HTTP_SETOPT(e, CURLOPT_POSTFIELDS, op->req_body.len > 0 ?
		    (const char *)op->req_body.data : "");
	}
out:
	if (cc == CURLE_OK)
		return 0;
	/* Half set up: the next try starts from a reset. */
	op->shape_client = 0;
	return cc == CURLE_OUT_OF_MEMORY ? ERR_NOMEM : ERR_INTERNAL;
}

#undef HTTP_SETOPT

static void
http_op_set_errmsg(struct http_op *op, const char *msg)
{
	size_t n = strnlen(msg, sizeof(op->r->errmsg) - 1);

	/* curl's messages can be longer; a cut one is still useful. */
	memcpy(op->r->errmsg, msg, n);
	op->r->errmsg[n] = '\0';
}

/* http_url_allowed, remembering the last URL that passed: a provider
 * sends every request to the same few URLs, and parsing one costs more
 * than the comparison. */
static bool
http_client_url_ok(struct http_client *c, const char *url)
{
	if (c->url_ok != NULL && strcmp(c->url_ok, url) == 0)
		return true;
	if (!http_url_allowed(url))
		return false;
	free(c->url_ok);
	c->url_ok = strdup(url);	/* NULL: nothing remembered */
	return true;
}

/* Start a try: op is RUNNING in c->active and holds a slot. */
static void
http_op_try(struct http_op *op)
{
	struct http_req *r = op->r;
	uint64_t now = http_now_us();
	long timeout_ms;
	int rc;

	if (now >= op->deadline_us) {
		http_op_complete(op, ERR_TIMEOUT, 0);
		return;
	}
	/* Round up: CURLOPT_TIMEOUT_MS 0 would mean "no timeout". */
	timeout_ms = (long)((op->deadline_us - now + 999) / 1000);
	op->state = HTTP_S_RUNNING;
	r->tries++;
	r->transport_err = 0;
	r->errmsg[0] = '\0';
	op->write_err = 0;
	buf_clear(&op->body);
	http_headers_clear(op);

	if (r->prepare != NULL) {
		op->in_hook = true;
		rc = r->prepare(r);
		op->in_hook = false;
		if (op->cancelled) {
			http_op_destroy(op);
			return;
		}
		if (rc != 0) {
			http_op_complete(op, rc, 0);
			return;
		}
	}
	if (r->url == NULL || !http_client_url_ok(op->c, r->url)) {
		r->transport_err = 1;
		http_op_set_errmsg(op, "URL refused: plain http is for "
		    "loopback only");
		http_op_complete(op, ERR_PROVIDER_UNAVAILABLE, 0);
		return;
	}
	if (op->easy == NULL && (op->easy = curl_easy_init()) == NULL) {
		http_op_complete(op, ERR_NOMEM, 0);
		return;
	}
	buf_clear(&op->req_body);
	if (r->body_len > 0 && (r->body == NULL ||
	    (rc = buf_append(&op->req_body, r->body, r->body_len)) != 0)) {
		http_op_complete(op, r->body == NULL ? ERR_INTERNAL : rc, 0);
		return;
	}
	if ((rc = http_op_setup(op, timeout_ms)) != 0) {
		http_op_complete(op, rc, 0);
		return;
	}
	if (curl_multi_add_handle(op->c->h->multi, op->easy) != CURLM_OK) {
		http_op_complete(op, ERR_INTERNAL, 0);
		return;
	}
	op->in_multi = true;
}

static enum http_verdict
http_classify_default(long status, int transport_err)
{
	if (transport_err || status == 429 || (status >= 500 && status <= 599))
		return HTTP_RETRY;
	return HTTP_DONE;
}

/* Backoff before try number r->tries + 1; false when there is no time
 * left for another try. Full jitter over a doubling cap (AWS's
 * "exponential backoff and jitter"): retries from many requests spread
 * out instead of arriving together. */
static bool
http_op_backoff(struct http_op *op, uint64_t *ret_ms)
{
	uint64_t now = http_now_us(), left_ms, cap = HTTP_BACKOFF_BASE_MS;
	uint64_t ms;

	if (now >= op->deadline_us)
		return false;
	left_ms = (op->deadline_us - now) / 1000;
	if (left_ms <= HTTP_MIN_TRY_MS)
		return false;
	for (unsigned i = 1; i < op->r->tries && cap < HTTP_BACKOFF_MAX_MS; i++)
		cap *= 2;
	if (cap > HTTP_BACKOFF_MAX_MS)
		cap = HTTP_BACKOFF_MAX_MS;
	ms = arc4random_uniform((uint32_t)cap + 1);
	if (ms > left_ms - HTTP_MIN_TRY_MS)
		ms = left_ms - HTTP_MIN_TRY_MS;
	*ret_ms = ms;
	return true;
}

/* A try finished inside curl (called between socket_action calls). */
static void
http_op_try_done(struct http_op *op, CURLcode res)
{
	struct http_req *r = op->r;
	enum http_verdict v;
	struct timeval tv;
	long status = 0;
	uint64_t ms;

	if (op->orphan) {
		/* Its connection is back in the cache (unless the try
		 * failed, when curl closed it); nobody waits for the rest. */
		http_op_drop(op);
		return;
	}
	curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &status);
	http_op_unplug(op);
	http_headers_clear(op);

	if (op->write_err != 0 || res == CURLE_FILESIZE_EXCEEDED) {
		http_op_complete(op, op->write_err == ERR_NOMEM ? ERR_NOMEM :
		    ERR_TOO_LARGE, status);
		return;
	}
	if (res != CURLE_OK) {
		r->transport_err = 1;
		http_op_set_errmsg(op, op->errbuf[0] != '\0' ? op->errbuf :
		    curl_easy_strerror(res));
		/* The try's timeout is what was left of the deadline. */
		if (res == CURLE_OPERATION_TIMEDOUT) {
			http_op_complete(op, ERR_TIMEOUT, 0);
			return;
		}
		/* A half-read response is not a response. */
		status = 0;
		buf_clear(&op->body);
	}

	if (r->classify != NULL) {
		op->in_hook = true;
		v = r->classify(r, status, &op->body);
		op->in_hook = false;
		if (op->cancelled) {
			http_op_destroy(op);
			return;
		}
	} else
		v = http_classify_default(status, r->transport_err);

	if ((v == HTTP_RETRY || v == HTTP_RETRY_FRESH) &&
	    op->r->tries < op->c->max_tries && http_op_backoff(op, &ms)) {
		/* prepare() runs before every try, so RETRY_FRESH needs
		 * nothing more here. */
		op->state = HTTP_S_BACKOFF;
		tv = http_tv_ms(ms);
		evtimer_add(op->step, &tv);
		return;
	}
	if (r->transport_err)
		http_op_complete(op, ERR_PROVIDER_UNAVAILABLE, 0);
	else
		http_op_complete(op, 0, status);
}

/* Handle every finished transfer; curl is not inside any call here. */
static void
http_check_done(struct http *h)
{
	struct http_op *op;
	CURLMsg *msg;
	int left;
	void *p;

	while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		p = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
		op = p;
		if (op != NULL && op->in_multi && op->state == HTTP_S_RUNNING)
			http_op_try_done(op, msg->data.result);
	}
}

/* ---- public API ---- */

struct http *
http_new(struct event_base *base)
{
	struct http *h;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->base = base;
	LIST_INIT(&h->socks);
	TAILQ_INIT(&h->clients);
	TAILQ_INIT(&h->free_ops);
	LIST_INIT(&h->free_socks);
	/* Reference counted in libcurl; balanced in http_free. Its buffers
	 * hold what goes to and comes from a KMS: freed wiped (libmem.h). */
	if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, libmem_malloc,
	    libmem_free, libmem_realloc, libmem_strdup,
	    libmem_calloc) != CURLE_OK) {
		free(h);
		return NULL;
	}
	if ((h->multi = curl_multi_init()) == NULL)
		goto fail;
	if ((h->timer = evtimer_new(base, http_timer_event_cb, h)) == NULL)
		goto fail;
	if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION,
	    http_sock_cb) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION,
	    http_timer_cb) != CURLM_OK ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK)
		goto fail;
	if ((h->share = curl_share_init()) == NULL ||
	    curl_share_setopt(h->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)
		goto fail;
	return h;
fail:
	if (h->timer != NULL)
		event_free(h->timer);
	if (h->multi != NULL)
		curl_multi_cleanup(h->multi);
	if (h->share != NULL)
		curl_share_cleanup(h->share);
	curl_global_cleanup();
	free(h);
	return NULL;
}

/* Free kept ops and socket records down to what the slots allow. */
static void
http_trim(struct http *h, unsigned keep)
{
	struct http_op *op;
	struct http_sock *s;

	while (h->n_free_ops > keep &&
	    (op = TAILQ_FIRST(&h->free_ops)) != NULL) {
		TAILQ_REMOVE(&h->free_ops, op, link);
		h->n_free_ops--;
		http_op_free(op);
	}
	while (h->n_free_socks > keep &&
	    (s = LIST_FIRST(&h->free_socks)) != NULL) {
		h->n_free_socks--;
		/* unlinks s first (see http_free on NOLINT) */
		http_sock_free(s);	/* NOLINT(clang-analyzer-unix.Malloc) */
	}
}

void
http_free(struct http *h)
{
	struct http_client *c;
	struct http_sock *s;

	if (h == NULL)
		return;
	/* Each free unlinks its element first. clang-analyzer (./dev lint)
	 * loses that through the sys/queue.h macros and reports a use after
	 * free of the list head here and in http_client_free; ASan and
	 * valgrind runs see none. */
	while ((c = TAILQ_FIRST(&h->clients)) != NULL)
		http_client_free(c);	/* NOLINT(clang-analyzer-unix.Malloc) */
	/* Kept easy handles go before the share they are attached to. */
	http_trim(h, 0);
	curl_multi_cleanup(h->multi);
	if (h->share != NULL)
		curl_share_cleanup(h->share);
	/* Sockets curl did not report removed before it went away. */
	while ((s = LIST_FIRST(&h->socks)) != NULL)
		http_sock_free(s);	/* NOLINT(clang-analyzer-unix.Malloc) */
	event_free(h->timer);
	curl_global_cleanup();
	free(h);
}

/*
 * One connection per request slot. Every transfer holds a slot (orphans
 * included), so the slots are all the connections kmsd needs: the cache
 * keeps that many (within HTTP_MAX_CONNECTS), and curl may not open more,
 * a backstop that makes a transfer wait for a connection rather than
 * open one past the pool. (Handshakes past the pool size came from
 * transfers aborted by a cancel, each closing its connection; see
 * "orphan" at the top.)
 */
static void
http_tune_cache(struct http *h)
{
	struct http_client *c;
	unsigned long n = 0;

	TAILQ_FOREACH(c, &h->clients, link)
		n += c->max_inflight;
	h->slots = n > UINT_MAX ? UINT_MAX : (unsigned)n;
	curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
	    (long)(n > 0 ? n : 1));
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
	    (long)(n < 1 ? 1 : n > HTTP_MAX_CONNECTS ? HTTP_MAX_CONNECTS : n));
	http_trim(h, h->slots);
}

struct http_client *
http_client_new(struct http *h, const struct http_client_opts *opts)
{
	struct http_client *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->h = h;
	c->id = ++h->client_ids;
	TAILQ_INIT(&c->queue);
	TAILQ_INIT(&c->active);
	TAILQ_INIT(&c->completing);
	c->deadline_ms = HTTP_DEFAULT_DEADLINE_MS;
	c->max_inflight = HTTP_DEFAULT_MAX_INFLIGHT;
	c->max_queue = HTTP_DEFAULT_MAX_QUEUE;
	c->max_tries = HTTP_DEFAULT_MAX_TRIES;
	if (opts != NULL) {
		if (opts->deadline_ms != 0)
			c->deadline_ms = opts->deadline_ms;
		if (opts->max_inflight != 0)
			c->max_inflight = opts->max_inflight;
		if (opts->max_queue != 0)
			c->max_queue = opts->max_queue;
		if (opts->max_tries != 0)
			c->max_tries = opts->max_tries;
		if (c->max_tries > HTTP_MAX_TRIES_CAP)
			c->max_tries = HTTP_MAX_TRIES_CAP;
		if (opts->ca_file != NULL &&
		    (c->ca_file = strdup(opts->ca_file)) == NULL)
			goto fail;
	}
	if ((c->pump = event_new(h->base, -1, 0, http_client_pump_cb, c)) ==
	    NULL)
		goto fail;
	TAILQ_INSERT_TAIL(&h->clients, c, link);
	http_tune_cache(h);
	return c;
fail:
	free(c->ca_file);
	free(c);
	return NULL;
}

void
http_client_free(struct http_client *c)
{
	struct http_op *op;
	struct http *h;

	if (c == NULL)
		return;
	h = c->h;
	c->closing = true;
	/* done() runs synchronously here: the owner is going away and must
	 * not get callbacks after this returns. A done() that starts a new
	 * request on c only queues it, and the loop fails it too. */
	for (;;) {
		/* detach unlinks op by its state (see http_free on NOLINT) */
		if ((op = TAILQ_FIRST(&c->completing)) != NULL) {
			http_op_deliver(op); /* NOLINT(clang-analyzer-unix.Malloc) */
			continue;
		}
		if ((op = TAILQ_FIRST(&c->active)) == NULL &&
		    (op = TAILQ_FIRST(&c->queue)) == NULL)
			break;
		http_op_detach(op);	/* NOLINT(clang-analyzer-unix.Malloc) */
		op->err = ERR_PROVIDER_UNAVAILABLE;
		op->status = 0;
		buf_clear(&op->body);
		http_op_deliver(op);
	}
	TAILQ_REMOVE(&h->clients, c, link);
	event_free(c->pump);
	free(c->ca_file);
	free(c->url_ok);
	free(c);
	http_tune_cache(h);
}

int
http_start(struct http_client *c, struct http_req *r)
{
	struct http_op *op;
	struct timeval tv;

	r->client = c;
	r->tries = 0;
	r->transport_err = 0;
	r->errmsg[0] = '\0';
	r->priv = NULL;
	if ((op = http_op_get(c->h)) == NULL)
		return ERR_NOMEM;
	op->r = r;
	op->c = c;
	r->priv = op;
	op->deadline_us = http_now_us() + (uint64_t)c->deadline_ms * 1000;
	tv = http_tv_ms(c->deadline_ms);

	if (c->closing || !TAILQ_EMPTY(&c->queue) ||
	    c->inflight >= c->max_inflight) {
		if (!c->closing && c->queued >= c->max_queue) {
			http_op_complete(op, ERR_BUSY, 0);
			return 0;
		}
		op->state = HTTP_S_QUEUED;
		TAILQ_INSERT_TAIL(&c->queue, op, link);
		c->queued++;
		evtimer_add(op->deadline_ev, &tv);
		http_client_kick(c);
		return 0;
	}
	op->state = HTTP_S_RUNNING;
	TAILQ_INSERT_TAIL(&c->active, op, link);
	c->inflight++;
	evtimer_add(op->deadline_ev, &tv);
	http_op_try(op);
	return 0;
}

void
http_cancel(struct http_req *r)
{
	struct http_op *op = r->priv;

	if (op == NULL)
		return;
	if (op->in_hook) {
		/* Unwound by the hook's caller once the hook returns. */
		op->cancelled = true;
		return;
	}
	if (op->state == HTTP_S_RUNNING && op->in_multi)
		http_op_orphan(op);
	else
		http_op_destroy(op);
}

static bool
http_header_name_ok(const char *name, size_t n)
{
	/* RFC 9110 token characters. */
	static const char tchar[] = "!#$%&'*+-.^_`|~";

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= 'A' && ch <= 'Z') || strchr(tchar, ch) != NULL))
			return false;
	}
	return true;
}

int
http_req_header(struct http_req *r, const char *name, const char *value)
{
	struct http_op *op = r->priv;
	size_t nlen, vlen, len;
	unsigned i;
	char *line;
	int rc;

	if (op == NULL || op->in_multi || op->state != HTTP_S_RUNNING)
		return ERR_INTERNAL;
	nlen = strlen(name);
	vlen = strlen(value);
	/* A CR or LF in a value (say, a token from a metadata server) would
	 * let it inject headers; refuse rather than send it. */
	if (!http_header_name_ok(name, nlen) || strpbrk(value, "\r\n") != NULL)
		return ERR_INTERNAL;
	if (nlen + vlen + 2 > HTTP_MAX_HEADER_LEN)
		return ERR_TOO_LARGE;
	for (i = 0; i < op->nhdr; i++) {
		line = (char *)op->hdrs.data + op->hdr_off[i];
		if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':')
			break;
	}
	if (i == op->nhdr && op->nhdr == HTTP_MAX_HEADERS)
		return ERR_TOO_LARGE;
	len = nlen + 2 + vlen + 1;
	/* Reserve first: a replaced line's offset must stay valid. */
	if ((rc = buf_reserve(&op->hdrs, len)) != 0)
		return rc;
	if (i < op->nhdr) {
		/* The new value goes at the end; the old one is wiped where
		 * it is and no longer listed. */
		line = (char *)op->hdrs.data + op->hdr_off[i];
		OPENSSL_cleanse(line, strlen(line));
	} else
		op->nhdr++;
	op->hdr_off[i] = op->hdrs.len;
	line = (char *)op->hdrs.data + op->hdrs.len;
	memcpy(line, name, nlen);
	memcpy(line + nlen, ": ", 2);
	memcpy(line + nlen + 2, value, vlen);
	line[len - 1] = '\0';
	op->hdrs.len += len;
	return 0;
}

/*
 * Plain http is allowed to loopback (tests) and to the cloud instance
 * metadata services, which only speak plain http by design and sit on
 * link-local addresses no other host can answer from: 169.254.169.254
 * (EC2 IMDS, GCE metadata), 169.254.170.2 (ECS task credentials),
 * fd00:ec2::254 (EC2 IMDS over IPv6) and metadata.google.internal.
 *
 * Parsed with curl's own URL parser, so the host judged here is the host
 * curl connects to (no userinfo, port or IPv4 shorthand tricks).
 */
int
http_url_allowed(const char *url)
{
	char *scheme = NULL, *host = NULL;
	unsigned char a[sizeof(struct in6_addr)];
	CURLU *u;
	int ok = 0;
	size_t n;

	if (url == NULL || (u = curl_url()) == NULL)
		return 0;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (strcasecmp(scheme, "https") == 0) {
		ok = 1;
		goto out;
	}
	if (strcasecmp(scheme, "http") != 0)
		goto out;
	n = strlen(host);
	if (strcasecmp(host, "localhost") == 0 ||
	    strcasecmp(host, "metadata.google.internal") == 0)
		ok = 1;
	else if (inet_pton(AF_INET, host, a) == 1)
		ok = a[0] == 127 || (a[0] == 169 && a[1] == 254 &&
		    ((a[2] == 169 && a[3] == 254) || (a[2] == 170 && a[3] == 2)));
	else if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
		static const unsigned char imds6[16] = { 0xfd, 0x00, 0x0e, 0xc2,
		    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54 };

		host[n - 1] = '\0';
		ok = inet_pton(AF_INET6, host + 1, a) == 1 &&
		    (memcmp(a, &in6addr_loopback, sizeof(a)) == 0 ||
		    memcmp(a, imds6, sizeof(a)) == 0);
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

uint64_t
http_connections_opened(const struct http *h)
{
	return h->connects;
}
