/*
 * http.h: asynchronous HTTPS for every network provider.
 *
 * One libcurl multi handle, driven by the daemon's libevent loop through
 * CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION; nothing here blocks the
 * loop. Connections are kept alive and reused across requests (libcurl's
 * connection cache on the shared multi handle), never more of them than
 * the clients' in-flight limits add up to. Each provider gets an
 * http_client: a bound on its requests in flight, a bounded queue behind
 * it (past which a request fails at once with ERR_BUSY), a per-request
 * deadline that covers every retry, and a retry policy with jittered
 * exponential backoff that the provider steers through its classify hook.
 *
 * TLS verification is always on; a CA file may be configured, and
 * CURLOPT_CAPATH is cleared unless one is configured (Debian's libcurl sets
 * a default CA path, which disables curl's CA cache, so every new
 * connection would re-parse the system bundle). Plain http:// is accepted
 * only for loopback hosts (tests). Never CURLOPT_VERBOSE: headers carry
 * credentials. Header lists that held secrets are wiped when freed, and
 * response bodies live in wipe-on-free buffers with a cap.
 */
#ifndef KMSD_HTTP_H
#define KMSD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct event_base;
struct http;
struct http_client;
struct http_req;

/* Largest response body kept; a larger one fails the request. */
#define HTTP_MAX_BODY (256 * 1024)
/* Defaults for an http_client. */
#define HTTP_DEFAULT_DEADLINE_MS 2000
#define HTTP_DEFAULT_MAX_INFLIGHT 64
#define HTTP_DEFAULT_MAX_QUEUE 1024
#define HTTP_DEFAULT_MAX_TRIES 4
/* Most headers a request may carry. */
#define HTTP_MAX_HEADERS 16

enum http_verdict {
	HTTP_DONE = 0,		/* hand the response to done() */
	HTTP_RETRY = 1,		/* retryable (throttled, 5xx): try again */
	HTTP_RETRY_FRESH = 2,	/* retry after prepare() runs again (e.g.
				 * a refreshed token or a new signature) */
};

/* A zero field takes its HTTP_DEFAULT_* value. */
struct http_client_opts {
	const char *name;		/* for log lines: "aws", "gcp", ... */
	unsigned deadline_ms;		/* whole request incl. retries */
	unsigned max_inflight;
	unsigned max_queue;
	unsigned max_tries;
	const char *ca_file;		/* NULL: system bundle */
};

/*
 * One request. The owner fills method, url, body and calls http_start;
 * prepare() (optional) runs before every try, so signatures and tokens
 * are fresh, and fills the headers with http_req_header. classify()
 * (optional; default: 429 and 5xx and transport errors retry) looks at a
 * finished try. done() runs exactly once, from the loop (never inside
 * http_start), with err = 0 and the status and body of the last try, or
 * err = ERR_TIMEOUT (deadline), ERR_BUSY (queue full),
 * ERR_PROVIDER_UNAVAILABLE (transport failure after the retries),
 * ERR_TOO_LARGE (body over HTTP_MAX_BODY).
 * The hooks may call http_req_header, and http_cancel on r itself, but no
 * other http_* function.
 */
struct http_req {
	const char *method;		/* "POST", "GET", "PUT" */
	char *url;			/* owned by the caller */
	const uint8_t *body;		/* copied (into a wiped buffer) */
	size_t body_len;		/* at each try */
	int (*prepare)(struct http_req *r);	/* 0 or ERR_*: fails the request */
	enum http_verdict (*classify)(struct http_req *r, long status,
	    const struct buf *body);
	void (*done)(struct http_req *r, int err, long status,
	    const struct buf *body);
	void *arg;

	/* filled by http.c */
	struct http_client *client;
	unsigned tries;
	int transport_err;		/* last try failed below HTTP */
	char errmsg[128];		/* transport error text, no secrets */
	void *priv;
};

struct http *http_new(struct event_base *base);
void http_free(struct http *h);

struct http_client *http_client_new(struct http *h,
    const struct http_client_opts *opts);
/* Fails every queued and in-flight request with ERR_PROVIDER_UNAVAILABLE
 * (their done() runs before this returns) and frees the client. */
void http_client_free(struct http_client *c);

/* Queue or start r. Returns 0 and failures arrive through done(), except
 * ERR_NOMEM when r's own state cannot be allocated (done() will not run). */
int http_start(struct http_client *c, struct http_req *r);
/* Stop r; its done() will not run, and r may be freed at once. No-op if
 * it already completed. A transfer already under way runs on without r
 * (its answer dropped, its slot held until it ends or r's deadline), so
 * its keep-alive connection is not lost. */
void http_cancel(struct http_req *r);

/* For prepare(): set a header for this try ("Name: value"). Values that
 * are secrets are wiped when the try ends. 0 or ERR_NOMEM/ERR_TOO_LARGE;
 * ERR_INTERNAL outside prepare() or for a bad name or a CR/LF in value. */
int http_req_header(struct http_req *r, const char *name, const char *value);

/* The plain-http rule (loopback, and the link-local cloud metadata
 * services): 1 when url may be used. */
int http_url_allowed(const char *url);

/* Counters for tests and stats: connections opened by libcurl so far. */
uint64_t http_connections_opened(const struct http *h);

#endif
