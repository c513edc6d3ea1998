/*
 * bench_client.c: the one client harness every Unix-socket target is
 * measured with (bare echo server, ssh-agent, kmsd), so differences come
 * from the servers, not the clients.
 *
 * Framing is kmsd's and ssh-agent's: a 4-byte big-endian length, then the
 * body. Kinds of request:
 *   echo        a body of --req-bytes bytes (the echo server answers with
 *               its --resp size)
 *   ssh         SSH2_AGENTC_REQUEST_IDENTITIES (11)
 *   hello       kmsd {id, op: hello}
 *   wrap        kmsd encrypt of a 32-byte data key under --key with the
 *               context kms_encrypted sends ({model_id, model_name})
 *   unwrap      kmsd decrypt of a ciphertext made by one wrap at setup
 *               (or --ciphertext)
 * kmsd requests are encoded once; only the id (a uint32 at a fixed
 * offset) changes, so the client spends almost nothing per request.
 *
 * Shapes: --clients N connections, each keeping --depth D requests in
 * flight, spread over --threads T threads (epoll; a thread with one
 * connection at depth 1 uses blocking read/write, the lowest-latency
 * ping-pong). Responses are matched by id (kmsd may answer out of order)
 * or in order (echo, ssh). --warmup S, then --duration S measured; or
 * --count N requests in all. --cpu LIST pins thread i to LIST[i % n].
 *
 * --idle N opens N connections (--idle-hello: one hello on each first),
 * prints one JSON line, and holds them until stdin closes or a line comes.
 *
 * Output: one JSON object on stdout (ops/s, p50/p90/p99/p99.9 in us).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "benchutil.h"

/* Requests in flight per connection are tracked in a ring of this many
 * slots (id % slots), so depth may not exceed it. */
#define CL_SLOTS 1024
/* Read buffer per connection: many responses at once. */
#define CL_IN_CAP (BENCH_HDR + BENCH_FRAME_MAX + 64 * 1024)
/* Latency samples kept per thread; past it only counts grow. */
#define CL_MAX_SAMPLES (8u << 20)
#define CL_MAX_CPUS 64

enum cl_kind { K_ECHO, K_SSH, K_HELLO, K_WRAP, K_UNWRAP };

struct cl_conn {
	int fd;
	uint8_t *in;
	size_t in_len;
	uint8_t *out;
	size_t out_len, out_cap;
	int want_out;
	uint32_t next_id;
	uint64_t recv_seq;		/* in-order matching */
	unsigned inflight;
	uint64_t sent_ns[CL_SLOTS];
};

struct cl_thread {
	pthread_t tid;
	int cpu;
	size_t nconn;
	struct cl_conn **conns;
	uint64_t target;		/* --count share; 0: duration */
	uint64_t ops;			/* completed while measuring */
	uint64_t errors;
	uint64_t t_end_ns;
	struct bench_lat lat;
	int failed;
};

static const char *cl_sock;
static enum cl_kind cl_kind = K_ECHO;
static const char *cl_key = "default";
static unsigned cl_depth = 1;
static size_t cl_req_bytes = 64;
static uint8_t *cl_tmpl;		/* one request frame */
static size_t cl_tmpl_len;
static size_t cl_id_off;		/* offset of the uint32 id; 0: none */
static char *cl_ciphertext;
static atomic_int cl_phase;		/* 0 warmup, 1 measure, 2 stop */
static int cl_err_shown;
static int cl_made_ct;			/* setup wrapped to get a ciphertext */

/* ---- msgpack, by hand (the client must cost next to nothing) ---- */

struct mp {
	uint8_t b[BENCH_FRAME_MAX + BENCH_HDR];
	size_t n;
};

static void
mp_raw(struct mp *m, const void *p, size_t n)
{
	memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void
mp_byte(struct mp *m, uint8_t v)
{
	m->b[m->n++] = v;
}

static void
mp_str(struct mp *m, const char *s)
{
	size_t n = strlen(s);

	if (n < 32)
		mp_byte(m, (uint8_t)(0xa0 | n));
	else if (n < 256) {
		mp_byte(m, 0xd9);
		mp_byte(m, (uint8_t)n);
	} else {
		mp_byte(m, 0xda);
		mp_byte(m, (uint8_t)(n >> 8));
		mp_byte(m, (uint8_t)n);
	}
	mp_raw(m, s, n);
}

static void
mp_id(struct mp *m)
{
	mp_str(m, "id");
	mp_byte(m, 0xce);
	cl_id_off = m->n;
	mp_raw(m, "\0\0\0\1", 4);
}

static void
mp_context(struct mp *m)
{
	mp_str(m, "context");
	mp_byte(m, 0x82);
	mp_str(m, "model_id");
	mp_str(m, "1");
	mp_str(m, "model_name");
	mp_str(m, "User");
}

/* Build the request frame of the kind into cl_tmpl. */
static void
cl_build(void)
{
	static struct mp m;
	uint8_t key32[32];

	m.n = BENCH_HDR;
	cl_id_off = 0;
	switch (cl_kind) {
	case K_ECHO:
		memset(m.b + m.n, 'x', cl_req_bytes);
		m.n += cl_req_bytes;
		break;
	case K_SSH:
		mp_byte(&m, 11);	/* SSH2_AGENTC_REQUEST_IDENTITIES */
		break;
	case K_HELLO:
		mp_byte(&m, 0x82);
		mp_id(&m);
		mp_str(&m, "op");
		mp_str(&m, "hello");
		break;
	case K_WRAP:
		for (int i = 0; i < 32; i++)
			key32[i] = (uint8_t)(i * 37 + 11);
		mp_byte(&m, 0x85);
		mp_id(&m);
		mp_str(&m, "op");
		mp_str(&m, "encrypt");
		mp_str(&m, "key");
		mp_str(&m, cl_key);
		mp_context(&m);
		mp_str(&m, "plaintext");
		mp_byte(&m, 0xc4);
		mp_byte(&m, 32);
		mp_raw(&m, key32, 32);
		break;
	case K_UNWRAP:
		mp_byte(&m, 0x85);
		mp_id(&m);
		mp_str(&m, "op");
		mp_str(&m, "decrypt");
		mp_str(&m, "key");
		mp_str(&m, cl_key);
		mp_context(&m);
		mp_str(&m, "ciphertext");
		mp_str(&m, cl_ciphertext);
		break;
	}
	bench_put32(m.b, (uint32_t)(m.n - BENCH_HDR));
	free(cl_tmpl);
	cl_tmpl = malloc(m.n);
	memcpy(cl_tmpl, m.b, m.n);
	cl_tmpl_len = m.n;
}

/* The id of a kmsd response ({"id": uint, ...}), or -1. */
static int64_t
cl_resp_id(const uint8_t *b, size_t n)
{
	if (n < 5 || (b[0] & 0xf0) != 0x80 || b[1] != 0xa2 || b[2] != 'i' ||
	    b[3] != 'd')
		return -1;
	b += 4;
	n -= 4;
	if (b[0] < 0x80)
		return b[0];
	if (b[0] == 0xcc && n >= 2)
		return b[1];
	if (b[0] == 0xcd && n >= 3)
		return (int64_t)b[1] << 8 | b[2];
	if (b[0] == 0xce && n >= 5)
		return (int64_t)bench_get32(b + 1);
	if (b[0] == 0xcf && n >= 9)
		return (int64_t)bench_get32(b + 5);	/* low 32 bits */
	return -1;
}

static int
cl_resp_ok(const uint8_t *b, size_t n)
{
	switch (cl_kind) {
	case K_ECHO:
		return 1;
	case K_SSH:
		return n >= 1 && b[0] == 12;	/* IDENTITIES_ANSWER */
	default:
		return memmem(b, n, "\xa5" "error", 6) == NULL;
	}
}

static void
cl_show_error(const uint8_t *b, size_t n)
{
	if (cl_err_shown++)
		return;
	fprintf(stderr, "bench_client: error response (%zu bytes):", n);
	for (size_t i = 0; i < n && i < 200; i++)
		fputc(b[i] >= 32 && b[i] < 127 ? b[i] : '.', stderr);
	fputc('\n', stderr);
}

/* ---- connections ---- */

static int
cl_connect(int nonblock)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", cl_sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		close(fd);
		return -1;
	}
	if (nonblock)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static int
cl_read_full(int fd, uint8_t *p, size_t n)
{
	ssize_t r;

	while (n > 0) {
		r = read(fd, p, n);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int
cl_write_full(int fd, const uint8_t *p, size_t n)
{
	ssize_t r;

	while (n > 0) {
		r = write(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* One blocking round trip of frame (req, len); the body lands in resp
 * (BENCH_FRAME_MAX bytes). Returns the body length or -1. */
static ssize_t
cl_roundtrip(int fd, const uint8_t *req, size_t len, uint8_t *resp)
{
	uint8_t hdr[BENCH_HDR];
	uint32_t n;

	if (cl_write_full(fd, req, len) != 0 ||
	    cl_read_full(fd, hdr, BENCH_HDR) != 0)
		return -1;
	n = bench_get32(hdr);
	if (n > BENCH_FRAME_MAX || cl_read_full(fd, resp, n) != 0)
		return -1;
	return n;
}

static int
cl_out_reserve(struct cl_conn *c, size_t n)
{
	uint8_t *p;
	size_t cap;

	if (c->out_len + n <= c->out_cap)
		return 0;
	cap = c->out_cap == 0 ? 8192 : c->out_cap;
	while (cap < c->out_len + n)
		cap *= 2;
	if ((p = realloc(c->out, cap)) == NULL)
		return -1;
	c->out = p;
	c->out_cap = cap;
	return 0;
}

/* Queue one request on c. */
static void
cl_queue(struct cl_conn *c, uint64_t now)
{
	uint32_t id = c->next_id++;
	uint8_t *p;

	if (c->next_id == 0)
		c->next_id = 1;
	if (cl_out_reserve(c, cl_tmpl_len) != 0)
		abort();
	p = c->out + c->out_len;
	memcpy(p, cl_tmpl, cl_tmpl_len);
	if (cl_id_off != 0)
		bench_put32(p + cl_id_off, id);
	c->out_len += cl_tmpl_len;
	c->sent_ns[id % CL_SLOTS] = now;
	c->inflight++;
}

static int
cl_flush(int ep, struct cl_conn *c)
{
	struct epoll_event ev;
	size_t off = 0;
	ssize_t n;

	while (off < c->out_len) {
		n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -1;
		}
		off += (size_t)n;
	}
	memmove(c->out, c->out + off, c->out_len - off);
	c->out_len -= off;
	if ((c->out_len > 0) != c->want_out) {
		c->want_out = c->out_len > 0;
		ev.events = EPOLLIN | (c->want_out ? EPOLLOUT : 0);
		ev.data.ptr = c;
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
	return 0;
}

/* Should the thread send another request? */
static int
cl_more(struct cl_thread *t, uint64_t issued)
{
	if (atomic_load_explicit(&cl_phase, memory_order_relaxed) == 2)
		return 0;
	return t->target == 0 || issued < t->target;
}

/* The blocking ping-pong of a thread with one connection at depth 1. */
static void
cl_run_pingpong(struct cl_thread *t)
{
	struct cl_conn *c = t->conns[0];
	static __thread uint8_t resp[BENCH_FRAME_MAX];
	uint64_t t0, t1, issued = 0;
	uint8_t *req = malloc(cl_tmpl_len);	/* the id is per thread */
	ssize_t n;
	int phase;

	memcpy(req, cl_tmpl, cl_tmpl_len);
	while (cl_more(t, issued)) {
		if (cl_id_off != 0)
			bench_put32(req + cl_id_off, c->next_id++);
		t0 = bench_now_ns();
		n = cl_roundtrip(c->fd, req, cl_tmpl_len, resp);
		t1 = bench_now_ns();
		if (n < 0) {
			t->failed = 1;
			break;
		}
		phase = atomic_load_explicit(&cl_phase, memory_order_relaxed);
		if (phase != 1)
			continue;
		issued++;
		t->ops++;
		if (!cl_resp_ok(resp, (size_t)n)) {
			t->errors++;
			cl_show_error(resp, (size_t)n);
		}
		bench_lat_add(&t->lat, t1 - t0);
	}
	t->t_end_ns = bench_now_ns();
	free(req);
}

/* Handle the complete frames in c->in; queue replacements. */
static int
cl_consume(struct cl_thread *t, struct cl_conn *c, uint64_t now,
    uint64_t *issued)
{
	size_t off = 0, blen;
	int phase = atomic_load_explicit(&cl_phase, memory_order_relaxed);
	int64_t id;

	while (c->in_len - off >= BENCH_HDR) {
		blen = bench_get32(c->in + off);
		if (blen > BENCH_FRAME_MAX)
			return -1;
		if (c->in_len - off < BENCH_HDR + blen)
			break;
		const uint8_t *b = c->in + off + BENCH_HDR;

		id = cl_id_off != 0 ? cl_resp_id(b, blen) : -1;
		if (id < 0)
			id = (int64_t)(++c->recv_seq);
		c->inflight--;
		if (phase == 1) {
			t->ops++;
			if (!cl_resp_ok(b, blen)) {
				t->errors++;
				cl_show_error(b, blen);
			}
			bench_lat_add(&t->lat, now -
			    c->sent_ns[(uint64_t)id % CL_SLOTS]);
		}
		off += BENCH_HDR + blen;
		if (cl_more(t, *issued)) {
			if (phase == 1)
				(*issued)++;
			cl_queue(c, now);
		}
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return 0;
}

static void
cl_run_epoll(struct cl_thread *t)
{
	struct epoll_event evs[256], ev;
	uint64_t issued = 0, now;
	size_t live = 0;
	int ep, n;

	ep = epoll_create1(EPOLL_CLOEXEC);
	now = bench_now_ns();
	for (size_t i = 0; i < t->nconn; i++) {
		struct cl_conn *c = t->conns[i];

		c->in = malloc(CL_IN_CAP);
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
		for (unsigned d = 0; d < cl_depth; d++)
			cl_queue(c, now);
		if (cl_flush(ep, c) != 0)
			t->failed = 1;
		live++;
	}
	while (!t->failed && live > 0) {
		if (atomic_load_explicit(&cl_phase, memory_order_relaxed) == 2)
			break;
		n = epoll_wait(ep, evs, 256, 100);
		now = bench_now_ns();
		for (int i = 0; i < n; i++) {
			struct cl_conn *c = evs[i].data.ptr;
			ssize_t r;

			if (evs[i].events & EPOLLOUT && cl_flush(ep, c) != 0) {
				t->failed = 1;
				break;
			}
			if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			r = read(c->fd, c->in + c->in_len, CL_IN_CAP - c->in_len);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				fprintf(stderr, "bench_client: connection "
				    "closed by the server\n");
				t->failed = 1;
				break;
			}
			c->in_len += (size_t)r;
			if (cl_consume(t, c, now, &issued) != 0 ||
			    cl_flush(ep, c) != 0) {
				t->failed = 1;
				break;
			}
			if (c->inflight == 0 && c->out_len == 0)
				live--;
		}
	}
	t->t_end_ns = bench_now_ns();
	close(ep);
}

static void *
cl_thread_main(void *arg)
{
	struct cl_thread *t = arg;

	bench_pin(t->cpu);
	if (t->nconn == 1 && cl_depth == 1)
		cl_run_pingpong(t);
	else
		cl_run_epoll(t);
	return NULL;
}

/* Setup for kmsd kinds: one wrap to get a ciphertext (unwrap), and one
 * round trip of the kind itself to learn the sizes and check it works. */
static int
cl_setup(size_t *ret_resp)
{
	static uint8_t resp[BENCH_FRAME_MAX];
	enum cl_kind want = cl_kind;
	ssize_t n;
	int fd;

	if ((fd = cl_connect(0)) < 0) {
		fprintf(stderr, "bench_client: connect %s: %s\n", cl_sock,
		    strerror(errno));
		return -1;
	}
	if (want == K_UNWRAP && cl_ciphertext == NULL) {
		const uint8_t *p;
		size_t len;

		cl_kind = K_WRAP;
		cl_build();
		n = cl_roundtrip(fd, cl_tmpl, cl_tmpl_len, resp);
		/* "ciphertext": str8 or str16 */
		p = n > 0 ? memmem(resp, (size_t)n, "\xaa" "ciphertext", 11) :
		    NULL;
		if (p == NULL || !cl_resp_ok(resp, (size_t)n)) {
			if (n > 0)
				cl_show_error(resp, (size_t)n);
			fprintf(stderr, "bench_client: setup wrap failed\n");
			close(fd);
			return -1;
		}
		p += 11;
		if (p[0] == 0xd9) {
			len = p[1];
			p += 2;
		} else if (p[0] == 0xda) {
			len = (size_t)p[1] << 8 | p[2];
			p += 3;
		} else {
			len = p[0] & 0x1f;
			p += 1;
		}
		cl_ciphertext = strndup((const char *)p, len);
		cl_made_ct = 1;
		cl_kind = want;
	}
	cl_build();
	n = cl_roundtrip(fd, cl_tmpl, cl_tmpl_len, resp);
	close(fd);
	if (n < 0 || !cl_resp_ok(resp, (size_t)n)) {
		if (n > 0)
			cl_show_error(resp, (size_t)n);
		fprintf(stderr, "bench_client: setup request failed\n");
		return -1;
	}
	*ret_resp = (size_t)n;
	return 0;
}

static int
cl_idle(long nconn, int hello)
{
	static uint8_t resp[BENCH_FRAME_MAX];
	uint64_t t0 = bench_now_ns();
	long ok = 0, lim;
	char line[16];
	int *fds;

	lim = bench_nofile(nconn + 64);
	if (lim < nconn + 16) {
		fprintf(stderr, "bench_client: RLIMIT_NOFILE %ld is too low for "
		    "%ld connections\n", lim, nconn);
		return 1;
	}
	fds = calloc((size_t)nconn, sizeof(*fds));
	for (long i = 0; i < nconn; i++) {
		if ((fds[i] = cl_connect(0)) < 0) {
			fprintf(stderr, "bench_client: connection %ld: %s\n",
			    i, strerror(errno));
			break;
		}
		if (hello && cl_roundtrip(fds[i], cl_tmpl, cl_tmpl_len,
		    resp) < 0) {
			fprintf(stderr, "bench_client: hello on connection "
			    "%ld failed\n", i);
			close(fds[i]);
			break;
		}
		ok++;
	}
	printf("{\"idle\": %ld, \"connected\": %ld, \"hello\": %d, "
	    "\"secs\": %.3f}\n", nconn, ok, hello,
	    (bench_now_ns() - t0) / 1e9);
	fflush(stdout);
	/* A line or EOF: either ends the hold. */
	(void)!fgets(line, sizeof(line), stdin);
	for (long i = 0; i < ok; i++)
		close(fds[i]);
	free(fds);
	return ok == nconn ? 0 : 1;
}

static int
cl_parse_cpus(const char *s, int *cpus)
{
	int n = 0;
	char *end;

	while (*s != '\0' && n < CL_MAX_CPUS) {
		cpus[n++] = (int)strtol(s, &end, 10);
		if (end == s)
			return -1;
		s = *end == ',' ? end + 1 : end;
	}
	return n;
}

static void
cl_usage(void)
{
	fprintf(stderr,
	    "usage: bench_client --socket PATH --kind echo|ssh|hello|wrap|unwrap\n"
	    "  [--key NAME] [--ciphertext STR] [--req-bytes N]\n"
	    "  [--clients N] [--depth D] [--threads T] [--cpu LIST]\n"
	    "  [--warmup S] [--duration S] [--count N]\n"
	    "  [--idle N [--idle-hello]]\n");
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "kind", required_argument, NULL, 'k' },
		{ "key", required_argument, NULL, 'K' },
		{ "ciphertext", required_argument, NULL, 'C' },
		{ "req-bytes", required_argument, NULL, 'b' },
		{ "clients", required_argument, NULL, 'n' },
		{ "depth", required_argument, NULL, 'd' },
		{ "threads", required_argument, NULL, 't' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "duration", required_argument, NULL, 'D' },
		{ "count", required_argument, NULL, 'N' },
		{ "idle", required_argument, NULL, 'i' },
		{ "idle-hello", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct cl_thread *th;
	struct bench_lat all;
	double warmup = 0.5, duration = 2, secs;
	unsigned nclients = 1, nthreads = 1;
	uint64_t count = 0, ops = 0, errors = 0, t0, t1 = 0;
	long idle = 0;
	int cpus[CL_MAX_CPUS], ncpu = 0, idle_hello = 0, opt, failed = 0;
	size_t resp_len = 0;
	const char *kind = "echo";

	signal(SIGPIPE, SIG_IGN);
	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case 's': cl_sock = optarg; break;
		case 'k': kind = optarg; break;
		case 'K': cl_key = optarg; break;
		case 'C': cl_ciphertext = strdup(optarg); break;
		case 'b': cl_req_bytes = strtoul(optarg, NULL, 10); break;
		case 'n': nclients = (unsigned)atoi(optarg); break;
		case 'd': cl_depth = (unsigned)atoi(optarg); break;
		case 't': nthreads = (unsigned)atoi(optarg); break;
		case 'c':
			if ((ncpu = cl_parse_cpus(optarg, cpus)) < 0) {
				cl_usage();
				return 2;
			}
			break;
		case 'w': warmup = atof(optarg); break;
		case 'D': duration = atof(optarg); break;
		case 'N': count = strtoull(optarg, NULL, 10); break;
		case 'i': idle = atol(optarg); break;
		case 'H': idle_hello = 1; break;
		default: cl_usage(); return 2;
		}
	}
	if (strcmp(kind, "echo") == 0) cl_kind = K_ECHO;
	else if (strcmp(kind, "ssh") == 0) cl_kind = K_SSH;
	else if (strcmp(kind, "hello") == 0) cl_kind = K_HELLO;
	else if (strcmp(kind, "wrap") == 0) cl_kind = K_WRAP;
	else if (strcmp(kind, "unwrap") == 0) cl_kind = K_UNWRAP;
	else { cl_usage(); return 2; }
	if (cl_sock == NULL || nclients == 0 || cl_depth == 0 ||
	    cl_depth > CL_SLOTS || nthreads == 0 || cl_req_bytes == 0 ||
	    cl_req_bytes > BENCH_FRAME_MAX) {
		cl_usage();
		return 2;
	}
	if (nthreads > nclients)
		nthreads = nclients;
	if (idle > 0) {
		if (idle_hello)
			cl_kind = K_HELLO;
		cl_build();
		return cl_idle(idle, idle_hello);
	}
	bench_nofile((long)nclients + 64);
	if (cl_setup(&resp_len) != 0)
		return 1;

	th = calloc(nthreads, sizeof(*th));
	for (unsigned i = 0; i < nthreads; i++) {
		th[i].cpu = ncpu > 0 ? cpus[i % (unsigned)ncpu] : -1;
		th[i].conns = calloc(nclients, sizeof(*th[i].conns));
		bench_lat_init(&th[i].lat, CL_MAX_SAMPLES);
		if (count > 0)
			th[i].target = count / nthreads +
			    (i < count % nthreads ? 1 : 0);
	}
	for (unsigned i = 0; i < nclients; i++) {
		struct cl_thread *t = &th[i % nthreads];
		struct cl_conn *c = calloc(1, sizeof(*c));

		c->next_id = 1;
		if ((c->fd = cl_connect(!(nclients == nthreads &&
		    cl_depth == 1))) < 0) {
			fprintf(stderr, "bench_client: connect %s: %s\n",
			    cl_sock, strerror(errno));
			return 1;
		}
		t->conns[t->nconn++] = c;
	}
	atomic_store(&cl_phase, count > 0 ? 1 : 0);
	t0 = bench_now_ns();
	for (unsigned i = 0; i < nthreads; i++)
		pthread_create(&th[i].tid, NULL, cl_thread_main, &th[i]);
	if (count == 0) {
		struct timespec ts;

		ts.tv_sec = (time_t)warmup;
		ts.tv_nsec = (long)((warmup - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
		t0 = bench_now_ns();
		atomic_store(&cl_phase, 1);
		ts.tv_sec = (time_t)duration;
		ts.tv_nsec = (long)((duration - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
		atomic_store(&cl_phase, 2);
		t1 = bench_now_ns();
	}
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(th[i].tid, NULL);
		if (count > 0 && th[i].t_end_ns > t1)
			t1 = th[i].t_end_ns;
	}
	bench_lat_init(&all, SIZE_MAX);
	for (unsigned i = 0; i < nthreads; i++) {
		ops += th[i].ops;
		errors += th[i].errors;
		failed |= th[i].failed;
		bench_lat_merge(&all, &th[i].lat);
	}
	bench_lat_sort(&all);
	secs = (double)(t1 - t0) / 1e9;
	printf("{\"kind\": \"%s\", \"clients\": %u, \"depth\": %u, "
	    "\"threads\": %u, \"cpus\": \"", kind, nclients, cl_depth,
	    nthreads);
	for (int i = 0; i < ncpu; i++)
		printf("%s%d", i ? "," : "", cpus[i]);
	printf("\", \"req_body\": %zu, \"resp_body\": %zu, \"ops\": %llu, "
	    "\"errors\": %llu, \"secs\": %.4f, \"ops_per_s\": %.1f, "
	    "\"p50_us\": %.2f, \"p90_us\": %.2f, \"p99_us\": %.2f, "
	    "\"p999_us\": %.2f, \"failed\": %d, \"setup_requests\": %d}\n",
	    cl_tmpl_len - BENCH_HDR, resp_len, (unsigned long long)ops,
	    (unsigned long long)errors, secs, secs > 0 ? ops / secs : 0,
	    bench_lat_pct(&all, 0.5), bench_lat_pct(&all, 0.9),
	    bench_lat_pct(&all, 0.99), bench_lat_pct(&all, 0.999), failed,
	    cl_kind == K_UNWRAP && cl_made_ct ? 2 : 1);
	return failed || errors > 0 ? 1 : 0;
}
