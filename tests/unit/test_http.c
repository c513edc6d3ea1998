/*
 * test_http.c: daemon/http.c against a loopback fake (http_fake.py).
 *
 * The fake is started once per test process by an unchecked fixture (and
 * killed by its teardown, by atexit, and by its own stdin lifeline if this
 * process dies). Each test runs its own event_base and http, dispatches
 * until its requests finish or a safety timer trips, and frees everything,
 * so `CK_FORK=no valgrind --leak-check=full` checks for leaks per test.
 * A self-signed certificate made here lets the fake serve https too.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "http.h"

/* Longest any single test may run its loop before it counts as stuck. */
#define T_SAFETY_MS 10000

/* ---- the fake server ---- */

static pid_t fake_pid = -1;
static pid_t fake_owner = -1;	/* forked Check children must not kill it */
static int fake_lifeline = -1;
static int fake_port;
static int fake_tls_port;
static char cert_dir[64];
static char cert_file[96];
static char key_file[96];

static int
cert_make(void)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	X509_EXTENSION *ext = NULL;
	X509V3_CTX v3;
	X509_NAME *name;
	FILE *f = NULL;
	int ok = 0;

	strcpy(cert_dir, "/tmp/kmsd-test-http-XXXXXX");
	if (mkdtemp(cert_dir) == NULL)
		return 0;
	snprintf(cert_file, sizeof(cert_file), "%s/cert.pem", cert_dir);
	snprintf(key_file, sizeof(key_file), "%s/key.pem", cert_dir);
	if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
	    (x = X509_new()) == NULL)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"kmsd test", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
	    "IP:127.0.0.1")) == NULL || !X509_add_ext(x, ext, -1))
		goto out;
	if (!X509_sign(x, pkey, EVP_sha256()))
		goto out;
	if ((f = fopen(key_file, "w")) == NULL ||
	    !PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL))
		goto out;
	fclose(f);
	if ((f = fopen(cert_file, "w")) == NULL || !PEM_write_X509(f, x))
		goto out;
	ok = 1;
out:
	if (f != NULL)
		fclose(f);
	X509_EXTENSION_free(ext);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ok;
}

static void
fake_stop(void)
{
	if (fake_pid <= 0 || getpid() != fake_owner)
		return;
	kill(fake_pid, SIGTERM);
	waitpid(fake_pid, NULL, 0);
	fake_pid = -1;
	close(fake_lifeline);
	fake_lifeline = -1;
	unlink(cert_file);
	unlink(key_file);
	rmdir(cert_dir);
}

static void
fake_start(void)
{
	int in[2], out[2];
	char line[64], script[512];
	ssize_t n;
	size_t got = 0;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!cert_make())
		ck_abort_msg("cannot make a test certificate");
	snprintf(script, sizeof(script), "%s/http_fake.py", TEST_SRCDIR);
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
		ck_abort_msg("pipe: %s", strerror(errno));
	fake_owner = getpid();
	atexit(fake_stop);
	if ((fake_pid = fork()) < 0)
		ck_abort_msg("fork: %s", strerror(errno));
	if (fake_pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execl("/usr/bin/python3", "python3", script, "--cert",
		    cert_file, "--key", key_file, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	fake_lifeline = in[1];
	while (got < sizeof(line) - 1 && (got == 0 || line[got - 1] != '\n')) {
		n = read(out[0], line + got, sizeof(line) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(out[0]);
	line[got] = '\0';
	if (sscanf(line, "%d %d", &fake_port, &fake_tls_port) != 2 ||
	    fake_port <= 0 || fake_tls_port <= 0)
		ck_abort_msg("http_fake.py did not start: '%s'", line);
}

static void
fake_teardown(void)
{
	fake_stop();
	curl_global_cleanup();
}

/* A blocking GET on a fresh connection, for the test's own probes. */
static json_t *
fake_get_json(const char *path)
{
	struct sockaddr_in sin;
	char req[512], resp[4096];
	size_t got = 0;
	ssize_t n;
	char *body;
	json_t *j;
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)fake_port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    "Connection: close\r\n\r\n", path);
	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	while (got < sizeof(resp) - 1 &&
	    (n = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	resp[got] = '\0';
	body = strstr(resp, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	j = json_loads(body + 4, 0, NULL);
	return j;
}

static void
fake_reset(void)
{
	json_decref(fake_get_json("/reset"));
}

/* "connections", "max_slow", or "count" of requests to path. */
static long
fake_stat(const char *key, const char *path)
{
	char q[300];
	json_t *j;
	long v;

	snprintf(q, sizeof(q), "/stats?path=%s", path != NULL ? path : "");
	j = fake_get_json(q);
	ck_assert_ptr_nonnull(j);
	v = (long)json_integer_value(json_object_get(j, key));
	json_decref(j);
	return v;
}

/* ---- one test's loop ---- */

struct tctx {
	struct event_base *base;
	struct http *h;
	struct event *safety;
	int pending;		/* done() calls still expected */
	int in_start;		/* inside http_start: done() must not run */
	int timed_out;
};

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static struct timeval
tv_ms(unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	return tv;
}

static void
tctx_safety_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tctx *t = arg;

	t->timed_out = 1;
	event_base_loopbreak(t->base);
}

static void
tctx_init(struct tctx *t)
{
	memset(t, 0, sizeof(*t));
	t->base = event_base_new();
	ck_assert_ptr_nonnull(t->base);
	t->h = http_new(t->base);
	ck_assert_ptr_nonnull(t->h);
	t->safety = evtimer_new(t->base, tctx_safety_cb, t);
	ck_assert_ptr_nonnull(t->safety);
}

/* Dispatch until every expected done() ran. */
static void
tctx_run(struct tctx *t)
{
	struct timeval tv = tv_ms(T_SAFETY_MS);

	evtimer_add(t->safety, &tv);
	if (t->pending > 0)
		event_base_dispatch(t->base);
	event_del(t->safety);
	ck_assert_msg(!t->timed_out, "loop stuck: %d requests pending",
	    t->pending);
	ck_assert_int_eq(t->pending, 0);
}

/* Run the loop a while longer to catch a done() that should not come. */
static void
tctx_idle(struct tctx *t, unsigned ms)
{
	struct timeval tv = tv_ms(ms);

	event_base_loopexit(t->base, &tv);
	event_base_dispatch(t->base);
}

static void
tctx_done(struct tctx *t)
{
	event_free(t->safety);
	http_free(t->h);
	event_base_free(t->base);
}

static struct http_client *
tclient(struct tctx *t, unsigned deadline_ms, unsigned inflight,
    unsigned queue, unsigned tries)
{
	struct http_client_opts o = {
		.name = "test",
		.deadline_ms = deadline_ms,
		.max_inflight = inflight,
		.max_queue = queue,
		.max_tries = tries,
	};
	struct http_client *c = http_client_new(t->h, &o);

	ck_assert_ptr_nonnull(c);
	return c;
}

/* ---- one request ---- */

#define T_MAX_HDR 24

struct treq {
	struct http_req r;
	struct tctx *t;
	char url[256];
	const char *hname[T_MAX_HDR];
	const char *hvalue[T_MAX_HDR];
	int hrc[T_MAX_HDR];
	unsigned nh;
	int prepare_ret;
	int cancel_in_prepare;
	int cancel_in_classify;
	int prepares;
	int classifies;
	enum http_verdict verdict;	/* classify's answer when set */
	void (*then)(struct treq *q);	/* runs at the end of done() */
	void *user;

	int dones;
	int err;
	long status;
	unsigned tries;
	int transport_err;
	char errmsg[128];
	size_t body_len;
	char body[8192];
	uint64_t start_us, done_us;
};

static int
treq_prepare(struct http_req *r)
{
	struct treq *q = r->arg;

	q->prepares++;
	for (unsigned i = 0; i < q->nh; i++)
		q->hrc[i] = http_req_header(r, q->hname[i], q->hvalue[i]);
	if (q->cancel_in_prepare)
		http_cancel(r);
	return q->prepare_ret;
}

static enum http_verdict
treq_classify(struct http_req *r, long status, const struct buf *body)
{
	struct treq *q = r->arg;

	q->classifies++;
	if (q->cancel_in_classify)
		http_cancel(r);
	return q->verdict;
}

static void
treq_done(struct http_req *r, int err, long status, const struct buf *body)
{
	struct treq *q = r->arg;
	struct tctx *t = q->t;

	ck_assert_msg(!t->in_start, "done() ran inside http_start");
	ck_assert_ptr_null(r->priv);
	q->dones++;
	q->err = err;
	q->status = status;
	q->tries = r->tries;
	q->transport_err = r->transport_err;
	memcpy(q->errmsg, r->errmsg, sizeof(q->errmsg));
	q->body_len = body->len;
	q->done_us = now_us();
	memcpy(q->body, body->data != NULL ? (const char *)body->data : "",
	    body->len < sizeof(q->body) - 1 ? body->len : sizeof(q->body) - 1);
	q->body[body->len < sizeof(q->body) - 1 ? body->len :
	    sizeof(q->body) - 1] = '\0';
	t->pending--;
	if (q->then != NULL)
		q->then(q);
	if (t->pending == 0)
		event_base_loopbreak(t->base);
}

static void
treq_init(struct treq *q, struct tctx *t, const char *method,
    const char *path)
{
	memset(q, 0, sizeof(*q));
	q->t = t;
	snprintf(q->url, sizeof(q->url), "http://127.0.0.1:%d%s", fake_port,
	    path);
	q->r.method = method;
	q->r.url = q->url;
	q->r.prepare = treq_prepare;
	q->r.done = treq_done;
	q->r.arg = q;
}

static void
treq_header(struct treq *q, const char *name, const char *value)
{
	ck_assert_uint_lt(q->nh, T_MAX_HDR);
	q->hname[q->nh] = name;
	q->hvalue[q->nh] = value;
	q->nh++;
}

/* Start q; expect_done says whether its done() is to be waited for. */
static void
treq_start(struct http_client *c, struct treq *q, int expect_done)
{
	struct tctx *t = q->t;

	if (expect_done)
		t->pending++;
	q->start_us = now_us();
	t->in_start = 1;
	ck_assert_int_eq(http_start(c, &q->r), 0);
	t->in_start = 0;
}

static unsigned
treq_ms(const struct treq *q)
{
	return (unsigned)((q->done_us - q->start_us) / 1000);
}

/* ---- cases ---- */

START_TEST(test_roundtrip)
{
	static const char payload[] = "{\"KeyId\":\"alias/test\"}";
	struct tctx t;
	struct http_client *c;
	struct treq post, get, put;

	tctx_init(&t);
	c = tclient(&t, 0, 0, 0, 0);
	treq_init(&post, &t, "POST", "/ok/roundtrip");
	post.r.body = (const uint8_t *)payload;
	post.r.body_len = strlen(payload);
	treq_header(&post, "Content-Type", "application/x-amz-json-1.1");
	treq_init(&get, &t, "GET", "/headers/roundtrip");
	treq_header(&get, "X-Test", "one");
	treq_header(&get, "X-Test", "two");	/* replaces */
	treq_header(&get, "Authorization", "Bearer secret-token");
	treq_init(&put, &t, "PUT", "/headers/put");
	put.r.body = (const uint8_t *)"abc";
	put.r.body_len = 3;
	treq_start(c, &post, 1);
	treq_start(c, &get, 1);
	treq_start(c, &put, 1);
	tctx_run(&t);

	ck_assert_int_eq(post.err, 0);
	ck_assert_int_eq(post.status, 200);
	ck_assert_str_eq(post.body, payload);
	ck_assert_uint_eq(post.tries, 1);
	ck_assert_int_eq(post.prepares, 1);
	ck_assert_int_eq(post.hrc[0], 0);

	ck_assert_int_eq(get.err, 0);
	ck_assert_int_eq(get.status, 200);
	ck_assert_int_eq(get.hrc[0], 0);
	ck_assert_int_eq(get.hrc[1], 0);
	ck_assert_ptr_nonnull(strstr(get.body, "GET /headers/roundtrip\n"));
	ck_assert_ptr_nonnull(strstr(get.body, "\nX-Test: two\n"));
	ck_assert_ptr_null(strstr(get.body, "X-Test: one"));
	ck_assert_ptr_nonnull(strstr(get.body,
	    "\nAuthorization: Bearer secret-token\n"));
	ck_assert_ptr_nonnull(strstr(get.body, "\nUser-Agent: kmsd/"));
	ck_assert_ptr_null(strstr(get.body, "Expect"));

	ck_assert_int_eq(put.err, 0);
	ck_assert_ptr_nonnull(strstr(put.body, "PUT /headers/put\n"));
	ck_assert_ptr_nonnull(strstr(put.body, "\nContent-Length: 3\n"));

	http_client_free(c);
	tctx_done(&t);
}
END_TEST

#define T_SEQ 20

static void
seq_next(struct treq *q)
{
	struct treq *all = q->user;
	struct http_client *c = q->r.client;

	if (q + 1 < all + T_SEQ)
		treq_start(c, q + 1, 1);
}

START_TEST(test_keepalive)
{
	static struct treq q[T_SEQ];
	struct tctx t;
	struct http_client *c;
	uint64_t t0;

	fake_reset();
	tctx_init(&t);
	c = tclient(&t, 0, 0, 0, 0);
	for (int i = 0; i < T_SEQ; i++) {
		treq_init(&q[i], &t, "POST", "/ok/seq");
		q[i].r.body = (const uint8_t *)"ping";
		q[i].r.body_len = 4;
		q[i].then = seq_next;
		q[i].user = q;
	}
	t0 = now_us();
	treq_start(c, &q[0], 1);	/* each done() starts the next */
	tctx_run(&t);
	fprintf(stderr, "# keep-alive: %d sequential requests, %.0f us each\n",
	    T_SEQ, (double)(now_us() - t0) / T_SEQ);
	for (int i = 0; i < T_SEQ; i++) {
		ck_assert_int_eq(q[i].err, 0);
		ck_assert_int_eq(q[i].status, 200);
		ck_assert_str_eq(q[i].body, "ping");
	}
	ck_assert_uint_eq(http_connections_opened(t.h), 1);
	ck_assert_int_eq(fake_stat("connections", NULL), 1);
	ck_assert_int_eq(fake_stat("count", "/ok/seq"), T_SEQ);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

/* One after the other, so each reuses the last one's kept curl handle:
 * nothing of one request's method or body carries into the next. */
START_TEST(test_reuse_shapes)
{
	static const struct {
		const char *method, *path, *body, *want;
	} seq[] = {
		{ "PUT", "/ok/shape1", "put-body", "put-body" },
		{ "GET", "/headers/shape2", NULL, "GET /headers/shape2\n" },
		{ "DELETE", "/headers/shape3", NULL, "DELETE /headers/shape3\n" },
		{ "POST", "/ok/shape4", "post", "post" },
		{ "GET", "/headers/shape5", NULL, "GET /headers/shape5\n" },
		{ "HEAD", "/headers/shape6", NULL, "" },
		{ "GET", "/headers/shape7", NULL, "GET /headers/shape7\n" },
		{ "POST", "/ok/shape8", "again", "again" },
	};
	static struct treq q[sizeof(seq) / sizeof(seq[0])];
	struct tctx t;
	struct http_client *c;

	fake_reset();
	tctx_init(&t);
	c = tclient(&t, 0, 1, 0, 0);
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		treq_init(&q[i], &t, seq[i].method, seq[i].path);
		if (seq[i].body != NULL) {
			q[i].r.body = (const uint8_t *)seq[i].body;
			q[i].r.body_len = strlen(seq[i].body);
		}
		treq_start(c, &q[i], 1);
		tctx_run(&t);
		ck_assert_int_eq(q[i].err, 0);
		ck_assert_int_eq(q[i].status, 200);
		if (seq[i].body != NULL)
			ck_assert_str_eq(q[i].body, seq[i].want);
		else if (seq[i].want[0] != '\0') {
			ck_assert_msg(strncmp(q[i].body, seq[i].want,
			    strlen(seq[i].want)) == 0, "%s: %s", seq[i].path,
			    q[i].body);
			ck_assert_ptr_null(strstr(q[i].body, "Content-Length"));
		} else
			ck_assert_uint_eq(q[i].body_len, 0);
	}
	ck_assert_uint_eq(http_connections_opened(t.h), 1);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

/* Default classify: what retries and what does not. */
static const struct {
	const char *path;
	long status;
	int fake_count;		/* with max_tries 3 */
} retry_cases[] = {
	{ "/status/503/retry", 503, 3 },
	{ "/status/500/retry", 500, 3 },
	{ "/status/429/retry", 429, 3 },
	{ "/status/404/retry", 404, 1 },
	{ "/status/400/retry", 400, 1 },
	{ "/status/403/retry", 403, 1 },
	{ "/ok/retry", 200, 1 },
};

START_TEST(test_retry_default)
{
	struct tctx t;
	struct http_client *c;
	struct treq q;

	fake_reset();
	tctx_init(&t);
	c = tclient(&t, 0, 0, 0, 3);
	treq_init(&q, &t, "GET", retry_cases[_i].path);
	q.r.prepare = NULL;
	treq_start(c, &q, 1);
	tctx_run(&t);
	ck_assert_int_eq(q.err, 0);
	ck_assert_int_eq(q.status, retry_cases[_i].status);
	ck_assert_uint_eq(q.tries, (unsigned)retry_cases[_i].fake_count);
	ck_assert_int_eq(fake_stat("count", retry_cases[_i].path),
	    retry_cases[_i].fake_count);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

START_TEST(test_flaky)
{
	struct tctx t;
	struct http_client *c;
	struct treq q;

	fake_reset();
	tctx_init(&t);
	c = tclient(&t, 0, 0, 0, 4);
	treq_init(&q, &t, "POST", "/flaky/2/a");
	treq_header(&q, "X-Amz-Date", "20260101T000000Z");
	treq_start(c, &q, 1);
	tctx_run(&t);
	ck_assert_int_eq(q.err, 0);
	ck_assert_int_eq(q.status, 200);
	ck_assert_uint_eq(q.tries, 3);
	ck_assert_int_eq(q.prepares, 3);
	ck_assert_int_eq(fake_stat("count", "/flaky/2/a"), 3);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

/* A provider's classify steers retries both ways. */
START_TEST(test_classify_hook)
{
	struct tctx t;
	struct http_client *c;
	struct treq fresh, done503;

	fake_reset();
	tctx_init(&t);
	c = tclient(&t, 0, 0, 0, 3);
	treq_init(&fresh, &t, "GET", "/status/401/fresh");
	fresh.r.classify = treq_classify;
	fresh.verdict = HTTP_RETRY_FRESH;
	treq_init(&done503, &t, "GET", "/status/503/final");
	done503.r.classify = treq_classify;
	done503.verdict = HTTP_DONE;
	treq_start(c, &fresh, 1);
	treq_start(c, &done503, 1);
	tctx_run(&t);
	ck_assert_int_eq(fresh.err, 0);
	ck_assert_int_eq(fresh.status, 401);
	ck_assert_int_eq(fresh.prepares, 3);
	ck_assert_int_eq(fresh.classifies, 3);
	ck_assert_int_eq(done503.status, 503);
	ck_assert_uint_eq(done503.tries, 1);
	ck_assert_int_eq(fake_stat("count", "/status/503/final"), 1);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

/* Retries never run past the deadline, however many are allowed. */
START_TEST(test_retry_within_deadline)
{
	struct tctx t;
	struct http_client *c;
	struct treq q;

	tctx_init(&t);
	c = tclient(&t, 300, 0, 0, 16);
	treq_init(&q, &t, "GET", "/status/503/deadline");
	treq_start(c, &q, 1);
	tctx_run(&t);
	/* Either the last 503 or the deadline, never later than it. */
	ck_assert(q.err == 0 || q.err == ERR_TIMEOUT);
	if (q.err == 0)
		ck_assert_int_eq(q.status, 503);
	ck_assert_uint_ge(q.tries, 2);
	ck_assert_uint_lt(treq_ms(&q), 450);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

START_TEST(test_hang_timeout)
{
	struct tctx t;
	struct http_client *c;
	struct treq q;

	tctx_init(&t);
	c = tclient(&t, 300, 0, 0, 0);
	treq_init(&q, &t, "GET", "/hang/timeout");
	treq_start(c, &q, 1);
	tctx_run(&t);
	ck_assert_int_eq(q.err, ERR_TIMEOUT);
	ck_assert_int_eq(q.dones, 1);
	ck_assert_uint_ge(treq_ms(&q), 300);
	ck_assert_uint_lt(treq_ms(&q), 600);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

/* Queued requests time out too, and never reach the server. */
START_TEST(test_queued_timeout)
{
	struct tctx t;
	struct http_client *c;
	struct treq a, b;

	fake_reset();
	tctx_init(&t);
	c = tclient(&t, 300, 1, 0, 0);
	treq_init(&a, &t, "GET", "/hang/queued");
	treq_init(&b, &t, "GET", "/ok/queued");
	treq_start(c, &a, 1);
	treq_start(c, &b, 1);
	tctx_run(&t);
	ck_assert_int_eq(a.err, ERR_TIMEOUT);
	ck_assert_int_eq(b.err, ERR_TIMEOUT);
	ck_assert_uint_eq(b.tries, 0);
	ck_assert_uint_ge(treq_ms(&b), 300);
	ck_assert_int_eq(fake_stat("count", "/ok/queued"), 0);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

struct tick {
	struct tctx *t;
	struct treq *q;
	int fired;
	int request_done_then;
	uint64_t at_us;
};

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tick *k = arg;

	k->fired++;
	k->at_us = now_us();
	k->request_done_then = k->q->dones;
}

START_TEST(test_loop_not_blocked)
{
	struct tctx t;
	struct http_client *c;
	struct treq q;
	struct tick k = { 0 };
	struct event *ev;
	struct timeval tv = tv_ms(50);
	uint64_t t0;

	tctx_init(&t);
	c = tclient(&t, 400, 0, 0, 0);
	treq_init(&q, &t, "GET", "/hang/blocked");
	k.t = &t;
	k.q = &q;
	ev = evtimer_new(t.base, tick_cb, &k);
	t0 = now_us();
	treq_start(c, &q, 1);
	evtimer_add(ev, &tv);
	tctx_run(&t);
	ck_assert_int_eq(k.fired, 1);
	ck_assert_int_eq(k.request_done_then, 0);
	ck_assert_uint_lt((k.at_us - t0) / 1000, 200);
	ck_assert_int_eq(q.err, ERR_TIMEOUT);
	event_free(ev);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

static const struct {
	const char *path;
	int err;
	size_t len;
} size_cases[] = {
	{ "/big/1", ERR_TOO_LARGE, 0 },		/* Content-Length says so */
	{ "/bigchunked/1", ERR_TOO_LARGE, 0 },	/* only the bytes say so */
	{ "/exact/1", 0, HTTP_MAX_BODY },
};

START_TEST(test_body_cap)
{
	struct tctx t;
	struct http_client *c;
	struct treq q;

	tctx_init(&t);
	c = tclient(&t, 0, 0, 0, 0);
	treq_init(&q, &t, "GET", size_cases[_i].path);
	treq_start(c, &q, 1);
	tctx_run(&t);
	ck_assert_int_eq(q.err, size_cases[_i].err);
	ck_assert_uint_eq(q.body_len, size_cases[_i].len);
	ck_assert_uint_eq(q.tries, 1);	/* too large is not retried */
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

START_TEST(test_inflight_bound)
{
	struct tctx t;
	struct http_client *c;
	struct treq q[5];

	fake_reset();
	tctx_init(&t);
	c = tclient(&t, 5000, 2, 0, 0);
	for (int i = 0; i < 5; i++) {
		treq_init(&q[i], &t, "GET", "/slow/150/bound");
		treq_start(c, &q[i], 1);
	}
	tctx_run(&t);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(q[i].err, 0);
		ck_assert_int_eq(q[i].status, 200);
	}
	/* FIFO: the last one finished last. */
	ck_assert_uint_ge(q[4].done_us, q[1].done_us);
	ck_assert_int_eq(fake_stat("max_slow", NULL), 2);
	ck_assert_int_eq(fake_stat("count", "/slow/150/bound"), 5);
	/* Two slots, two connections, both reused. */
	ck_assert_uint_eq(http_connections_opened(t.h), 2);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

/* Many at once with a generous bound: they overlap, not queue. */
START_TEST(test_overlap)
{
	struct tctx t;
	struct http_client *c;
	static struct treq q[16];
	uint64_t t0;

	fake_reset();
	tctx_init(&t);
	c = tclient(&t, 5000, 16, 0, 0);
	t0 = now_us();
	for (int i = 0; i < 16; i++) {
		treq_init(&q[i], &t, "GET", "/slow/200/overlap");
		treq_start(c, &q[i], 1);
	}
	tctx_run(&t);
	for (int i = 0; i < 16; i++)
		ck_assert_int_eq(q[i].status, 200);
	ck_assert_uint_lt((now_us() - t0) / 1000, 1500);
	ck_assert_int_eq(fake_stat("max_slow", NULL), 16);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

START_TEST(test_queue_busy)
{
	struct tctx t;
	struct http_client *c;
	struct treq q[3];

	tctx_init(&t);
	c = tclient(&t, 5000, 1, 1, 0);
	for (int i = 0; i < 3; i++) {
		treq_init(&q[i], &t, "GET", "/slow/100/busy");
		treq_start(c, &q[i], 1);	/* done() not inside: checked */
	}
	tctx_run(&t);
	ck_assert_int_eq(q[0].status, 200);
	ck_assert_int_eq(q[1].status, 200);
	ck_assert_int_eq(q[2].err, ERR_BUSY);
	ck_assert_uint_eq(q[2].tries, 0);
	ck_assert_int_eq(q[2].prepares, 0);
	/* busy is answered at once, not after the others. */
	ck_assert_uint_lt(q[2].done_us, q[0].done_us);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

struct canceller {
	struct treq *victim;
	struct treq *next;
	struct http_client *c;
};

static void
cancel_cb(evutil_socket_t fd, short what, void *arg)
{
	struct canceller *k = arg;

	http_cancel(&k->victim->r);
	http_cancel(&k->victim->r);	/* twice is harmless */
	if (k->next != NULL)
		treq_start(k->c, k->next, 0);	/* counted by the test */
}

START_TEST(test_cancel)
{
	struct tctx t;
	struct http_client *c;
	struct treq running, queued, after;
	struct canceller k;
	struct event *ev;
	struct timeval tv = tv_ms(50);

	fake_reset();
	tctx_init(&t);
	c = tclient(&t, 5000, 1, 0, 0);
	treq_init(&running, &t, "GET", "/slow/300/cancel");
	treq_init(&queued, &t, "GET", "/ok/cancel-queued");
	treq_init(&after, &t, "GET", "/ok/cancel-after");
	treq_start(c, &running, 0);
	treq_start(c, &queued, 0);
	http_cancel(&queued.r);			/* queued */
	ck_assert_ptr_null(queued.r.priv);
	k.victim = &running;			/* running, 50 ms in */
	k.next = &after;
	k.c = c;
	ev = evtimer_new(t.base, cancel_cb, &k);
	evtimer_add(ev, &tv);
	t.pending = 1;				/* after */
	tctx_run(&t);
	tctx_idle(&t, 100);
	ck_assert_int_eq(running.dones, 0);
	ck_assert_int_eq(queued.dones, 0);
	ck_assert_int_eq(after.dones, 1);
	ck_assert_int_eq(after.status, 200);	/* the slot came back */
	ck_assert_int_eq(fake_stat("count", "/ok/cancel-queued"), 0);
	/* The cancelled transfer ran to its end in the background, holding
	 * its slot, so its connection was kept and reused: one handshake. */
	ck_assert_uint_ge(after.done_us - running.start_us, 300000);
	ck_assert_uint_eq(http_connections_opened(t.h), 1);
	ck_assert_int_eq(fake_stat("connections", NULL), 1);
	event_free(ev);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

/* A cancelled transfer that never ends gives its slot back at its
 * deadline; a client freed with an orphan in flight drops it quietly. */
START_TEST(test_cancel_orphan_deadline)
{
	struct tctx t;
	struct http_client *c;
	struct treq hang, after, hang2;

	tctx_init(&t);
	c = tclient(&t, 500, 1, 0, 0);
	treq_init(&hang, &t, "GET", "/hang/orphan");
	treq_init(&after, &t, "GET", "/ok/orphan-after");
	treq_init(&hang2, &t, "GET", "/hang/orphan2");
	treq_start(c, &hang, 0);
	tctx_idle(&t, 200);
	http_cancel(&hang.r);
	ck_assert_ptr_null(hang.r.priv);
	treq_start(c, &after, 1);	/* waits for the orphan's slot */
	tctx_run(&t);
	ck_assert_int_eq(hang.dones, 0);
	ck_assert_int_eq(after.err, 0);
	ck_assert_int_eq(after.status, 200);
	ck_assert_uint_ge(after.done_us - hang.start_us, 500000);
	treq_start(c, &hang2, 0);
	tctx_idle(&t, 50);
	http_cancel(&hang2.r);
	http_client_free(c);
	tctx_idle(&t, 50);
	ck_assert_int_eq(hang2.dones, 0);
	tctx_done(&t);
}
END_TEST

static enum http_verdict
classify_then_cancel(struct http_req *r, long status, const struct buf *b)
{
	struct treq *q = r->arg;
	struct event *ev = q->user;

	q->classifies++;
	/* Runs on the next loop turn, while r waits in its backoff. */
	event_active(ev, 0, 0);
	return HTTP_RETRY;
}

START_TEST(test_cancel_backoff)
{
	struct tctx t;
	struct http_client *c;
	struct treq q, after;
	struct canceller k;
	struct event *ev;

	tctx_init(&t);
	c = tclient(&t, 5000, 1, 0, 4);
	treq_init(&q, &t, "GET", "/status/503/backoff");
	treq_init(&after, &t, "GET", "/ok/backoff-after");
	k.victim = &q;
	k.next = &after;
	k.c = c;
	ev = event_new(t.base, -1, 0, cancel_cb, &k);
	q.r.classify = classify_then_cancel;
	q.user = ev;
	treq_start(c, &q, 0);
	t.pending = 1;				/* after */
	tctx_run(&t);
	ck_assert_int_eq(after.dones, 1);
	tctx_idle(&t, 100);
	ck_assert_int_eq(q.dones, 0);
	ck_assert_int_eq(q.classifies, 1);
	ck_assert_int_eq(q.prepares, 1);
	event_free(ev);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

/* A hook may cancel its own request. */
START_TEST(test_cancel_in_hook)
{
	struct tctx t;
	struct http_client *c;
	struct treq q, after;

	tctx_init(&t);
	c = tclient(&t, 5000, 1, 0, 0);
	treq_init(&q, &t, "GET", "/status/503/hook");
	if (_i == 0)
		q.cancel_in_prepare = 1;
	else {
		q.cancel_in_classify = 1;
		q.r.classify = treq_classify;
		q.verdict = HTTP_RETRY;
	}
	treq_init(&after, &t, "GET", "/ok/hook-after");
	treq_start(c, &q, 0);
	ck_assert_ptr_null(_i == 0 ? q.r.priv : NULL);
	treq_start(c, &after, 1);
	tctx_run(&t);
	tctx_idle(&t, 50);
	ck_assert_int_eq(q.dones, 0);
	ck_assert_int_eq(after.status, 200);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

static void
free_client_cb(evutil_socket_t fd, short what, void *arg)
{
	struct canceller *k = arg;

	http_client_free(k->c);
}

START_TEST(test_client_free)
{
	struct tctx t;
	struct http_client *c;
	struct treq a, b;
	struct canceller k = { 0 };
	struct event *ev;
	struct timeval tv = tv_ms(50);

	tctx_init(&t);
	c = tclient(&t, 5000, 1, 0, 0);
	treq_init(&a, &t, "GET", "/hang/free");
	treq_init(&b, &t, "GET", "/ok/free");
	treq_start(c, &a, 1);
	treq_start(c, &b, 1);
	k.c = c;
	ev = evtimer_new(t.base, free_client_cb, &k);
	evtimer_add(ev, &tv);
	tctx_run(&t);
	ck_assert_int_eq(a.err, ERR_PROVIDER_UNAVAILABLE);
	ck_assert_int_eq(b.err, ERR_PROVIDER_UNAVAILABLE);
	ck_assert_int_eq(a.dones, 1);
	ck_assert_int_eq(b.dones, 1);
	event_free(ev);
	tctx_done(&t);
}
END_TEST

/* http_free with clients and requests still alive frees them all. */
START_TEST(test_free_with_requests)
{
	struct tctx t;
	struct http_client *c;
	struct treq a, b;

	tctx_init(&t);
	c = tclient(&t, 5000, 1, 0, 0);
	treq_init(&a, &t, "GET", "/hang/free2");
	treq_init(&b, &t, "GET", "/ok/free2");
	treq_start(c, &a, 1);
	treq_start(c, &b, 1);
	tctx_idle(&t, 50);
	tctx_done(&t);
	ck_assert_int_eq(a.err, ERR_PROVIDER_UNAVAILABLE);
	ck_assert_int_eq(b.err, ERR_PROVIDER_UNAVAILABLE);
}
END_TEST

START_TEST(test_prepare_error)
{
	struct tctx t;
	struct http_client *c;
	struct treq q;

	fake_reset();
	tctx_init(&t);
	c = tclient(&t, 0, 0, 0, 0);
	treq_init(&q, &t, "GET", "/ok/prepare-error");
	q.prepare_ret = ERR_PROVIDER_DENIED;
	treq_start(c, &q, 1);
	tctx_run(&t);
	ck_assert_int_eq(q.err, ERR_PROVIDER_DENIED);
	ck_assert_int_eq(fake_stat("count", "/ok/prepare-error"), 0);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

START_TEST(test_header_rules)
{
	struct tctx t;
	struct http_client *c;
	struct treq q;
	char big[HTTP_MAX_BODY / 16];
	static char names[HTTP_MAX_HEADERS + 1][16];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	tctx_init(&t);
	c = tclient(&t, 0, 0, 0, 0);
	treq_init(&q, &t, "GET", "/headers/rules");
	treq_header(&q, "X-Bad", "v\r\nX-Injected: 1");	/* 0 */
	treq_header(&q, "Bad Name", "v");		/* 1 */
	treq_header(&q, "", "v");			/* 2 */
	treq_header(&q, "X-Big", big);			/* 3 */
	for (int i = 0; i <= HTTP_MAX_HEADERS; i++) {	/* 4.. */
		snprintf(names[i], sizeof(names[i]), "X-H%d", i);
		treq_header(&q, names[i], "v");
	}
	treq_start(c, &q, 1);
	tctx_run(&t);
	ck_assert_int_eq(q.hrc[0], ERR_INTERNAL);
	ck_assert_int_eq(q.hrc[1], ERR_INTERNAL);
	ck_assert_int_eq(q.hrc[2], ERR_INTERNAL);
	ck_assert_int_eq(q.hrc[3], ERR_TOO_LARGE);
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		ck_assert_int_eq(q.hrc[4 + i], 0);
	ck_assert_int_eq(q.hrc[4 + HTTP_MAX_HEADERS], ERR_TOO_LARGE);
	ck_assert_int_eq(q.status, 200);
	ck_assert_ptr_null(strstr(q.body, "X-Injected"));
	ck_assert_ptr_nonnull(strstr(q.body, "\nX-H0: v\n"));
	/* Outside prepare there is no try to add to. */
	ck_assert_int_eq(http_req_header(&q.r, "X-Late", "v"), ERR_INTERNAL);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

START_TEST(test_transport_error)
{
	struct tctx t;
	struct http_client *c;
	struct treq q;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd;

	/* A port nobody listens on: bind, learn it, close. */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);

	tctx_init(&t);
	c = tclient(&t, 0, 0, 0, 3);
	treq_init(&q, &t, "GET", "/");
	snprintf(q.url, sizeof(q.url), "http://127.0.0.1:%d/",
	    ntohs(sin.sin_port));
	treq_start(c, &q, 1);
	tctx_run(&t);
	ck_assert_int_eq(q.err, ERR_PROVIDER_UNAVAILABLE);
	ck_assert_int_eq(q.transport_err, 1);
	ck_assert_uint_eq(q.tries, 3);
	ck_assert_str_ne(q.errmsg, "");
	ck_assert_int_eq(q.status, 0);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

START_TEST(test_refused_url)
{
	struct tctx t;
	struct http_client *c;
	struct treq q;

	tctx_init(&t);
	c = tclient(&t, 0, 0, 0, 0);
	treq_init(&q, &t, "GET", "/");
	snprintf(q.url, sizeof(q.url), "http://10.255.255.1:%d/", fake_port);
	treq_start(c, &q, 1);
	tctx_run(&t);
	ck_assert_int_eq(q.err, ERR_PROVIDER_UNAVAILABLE);
	ck_assert_int_eq(q.transport_err, 1);
	ck_assert_uint_eq(q.tries, 1);
	ck_assert_uint_lt(treq_ms(&q), 100);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

static const struct {
	const char *url;
	int ok;
} url_cases[] = {
	{ "http://127.0.0.1", 1 },
	{ "http://127.0.0.1:8080/x?y=1", 1 },
	{ "http://127.1.2.3/", 1 },
	{ "http://[::1]", 1 },
	{ "http://[::1]:9000/", 1 },
	{ "http://localhost", 1 },
	{ "http://LOCALHOST:1/", 1 },
	{ "https://anything", 1 },
	{ "https://kms.us-east-1.amazonaws.com/", 1 },
	{ "HTTPS://example.com", 1 },
	{ "http://10.0.0.1", 0 },
	{ "http://169.254.169.254/latest/api/token", 1 },
	{ "http://169.254.170.2/v2/credentials/x", 1 },
	{ "http://[fd00:ec2::254]/latest/api/token", 1 },
	{ "http://metadata.google.internal/computeMetadata/v1/", 1 },
	{ "http://169.254.169.253/", 0 },
	{ "http://169.254.1.1/", 0 },
	{ "http://[fd00:ec2::253]/", 0 },
	{ "http://metadata.google.internal.example.com/", 0 },
	{ "http://example.com", 0 },
	{ "http://127.0.0.1@example.com/", 0 },
	{ "http://127.0.0.1.example.com/", 0 },
	{ "http://localhost.example.com/", 0 },
	{ "http://[::2]/", 0 },
	{ "http://[::ffff:10.0.0.1]/", 0 },
	{ "http://128.0.0.1/", 0 },
	{ "ftp://127.0.0.1/", 0 },
	{ "file:///etc/passwd", 0 },
	{ "127.0.0.1", 0 },
	{ "", 0 },
};

START_TEST(test_url_allowed)
{
	ck_assert_msg(http_url_allowed(url_cases[_i].url) == url_cases[_i].ok,
	    "%s", url_cases[_i].url);
}
END_TEST

static void
https_seq_next(struct treq *q)
{
	struct treq *all = q->user;

	if (q + 1 < all + 10)
		treq_start(q->r.client, q + 1, 1);
}

/* TLS with verification: our CA file works and is reused; the system
 * bundle rejects the self-signed certificate. */
START_TEST(test_https)
{
	static struct treq q[10];
	struct http_client_opts o = { .name = "tls", .max_tries = 1,
		.ca_file = cert_file };
	struct http_client_opts sys = { .name = "sys", .max_tries = 1 };
	struct tctx t;
	struct http_client *c, *cs;
	struct treq bad;
	uint64_t t1;

	fake_reset();
	tctx_init(&t);
	c = http_client_new(t.h, &o);
	cs = http_client_new(t.h, &sys);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(cs);
	for (int i = 0; i < 10; i++) {
		treq_init(&q[i], &t, "POST", "/ok/tls");
		snprintf(q[i].url, sizeof(q[i].url),
		    "https://127.0.0.1:%d/ok/tls", fake_tls_port);
		q[i].r.body = (const uint8_t *)"sealed";
		q[i].r.body_len = 6;
		q[i].then = https_seq_next;
		q[i].user = q;
	}
	treq_start(c, &q[0], 1);
	tctx_run(&t);
	t1 = now_us();
	for (int i = 0; i < 10; i++) {
		ck_assert_msg(q[i].err == 0, "%d: %s", q[i].err, q[i].errmsg);
		ck_assert_str_eq(q[i].body, "sealed");
	}
	ck_assert_uint_eq(http_connections_opened(t.h), 1);
	fprintf(stderr, "# https: first request %u ms (handshake), then "
	    "%.0f us each on the kept-alive connection\n", treq_ms(&q[0]),
	    (double)(t1 - q[0].done_us) / 9);

	treq_init(&bad, &t, "GET", "/ok/tls-bad");
	snprintf(bad.url, sizeof(bad.url), "https://127.0.0.1:%d/ok/tls-bad",
	    fake_tls_port);
	treq_start(cs, &bad, 1);
	tctx_run(&t);
	ck_assert_int_eq(bad.err, ERR_PROVIDER_UNAVAILABLE);
	ck_assert_int_eq(bad.transport_err, 1);
	ck_assert_str_ne(bad.errmsg, "");
	ck_assert_int_eq(fake_stat("count", "/ok/tls-bad"), 0);
	http_client_free(cs);
	http_client_free(c);
	tctx_done(&t);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("http");

	tcase_add_unchecked_fixture(tc, fake_start, fake_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_keepalive);
	tcase_add_test(tc, test_reuse_shapes);
	tcase_add_loop_test(tc, test_retry_default, 0,
	    sizeof(retry_cases) / sizeof(retry_cases[0]));
	tcase_add_test(tc, test_flaky);
	tcase_add_test(tc, test_classify_hook);
	tcase_add_test(tc, test_retry_within_deadline);
	tcase_add_test(tc, test_hang_timeout);
	tcase_add_test(tc, test_queued_timeout);
	tcase_add_test(tc, test_loop_not_blocked);
	tcase_add_loop_test(tc, test_body_cap, 0,
	    sizeof(size_cases) / sizeof(size_cases[0]));
	tcase_add_test(tc, test_inflight_bound);
	tcase_add_test(tc, test_overlap);
	tcase_add_test(tc, test_queue_busy);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_cancel_orphan_deadline);
	tcase_add_test(tc, test_cancel_backoff);
	tcase_add_loop_test(tc, test_cancel_in_hook, 0, 2);
	tcase_add_test(tc, test_client_free);
	tcase_add_test(tc, test_free_with_requests);
	tcase_add_test(tc, test_prepare_error);
	tcase_add_test(tc, test_header_rules);
	tcase_add_test(tc, test_transport_error);
	tcase_add_test(tc, test_refused_url);
	tcase_add_loop_test(tc, test_url_allowed, 0,
	    sizeof(url_cases) / sizeof(url_cases[0]));
	tcase_add_test(tc, test_https);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
