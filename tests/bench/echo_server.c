/*
 * echo_server.c: the floor. A bare, single-threaded epoll server on a
 * Unix stream socket with kmsd's framing (4-byte big-endian length, body):
 * every frame read is answered with one frame, of the request's size or of
 * a fixed size (--resp N, to match kmsd's response sizes).
 *
 * Per wake-up it reads what is available (one read of up to 64 KiB),
 * answers every complete frame, and writes all answers in one send(): the
 * least a server with this framing can do per request.
 *
 * --busy-ns N makes it spin for N ns on every frame: a server with that
 * much work of its own per request, to compare kmsd with (the bench's
 * calibration rows).
 *
 * --seal makes every answer carry what a kmsd wrap of a 32-byte data key
 * computes, and nothing else of kmsd's: a 12-byte nonce from a 4 KiB pool
 * of RAND_bytes, an AES-256-GCM seal with one pre-keyed context (the
 * nonce set per call, ECHO_SEAL_AAD bytes of the request as AAD, 32 bytes
 * of it as plaintext) and its tag. The floor plus the cryptography the
 * operation cannot skip.
 *
 *   echo_server --socket PATH [--resp N] [--busy-ns N] [--seal] [--cpu N]
 * Prints "ready" once listening; runs until SIGTERM/SIGINT.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "benchutil.h"

/* One read asks for this much; it holds many small frames. */
#define ECHO_READ_CHUNK (64 * 1024)
/* The input buffer: a maximal frame plus one read. */
#define ECHO_IN_CAP (BENCH_HDR + BENCH_FRAME_MAX + ECHO_READ_CHUNK)
/* Events handled per epoll_wait. */
#define ECHO_EVENTS 256
/* --seal: the sizes of the bench's wrap: a 32-byte key, and as AAD the
 * local provider's label (14 bytes), flag (1) and the JSON of the
 * bench's context, {"model_id":"1","model_name":"User"} (36). */
#define ECHO_SEAL_POOL 4096
#define ECHO_SEAL_KEY 32
#define ECHO_SEAL_NONCE 12
#define ECHO_SEAL_AAD 51
#define ECHO_SEAL_PT 32
#define ECHO_SEAL_TAG 16
#define ECHO_SEAL_OUT (ECHO_SEAL_NONCE + ECHO_SEAL_PT + ECHO_SEAL_TAG)

struct echo_conn {
	int fd;
	uint8_t *in;
	size_t in_len;
	uint8_t *out;
	size_t out_len, out_cap;
	int want_out;
};

static volatile sig_atomic_t echo_stop;
static size_t echo_resp;	/* 0: echo the request's size */
static uint64_t echo_busy_ns;	/* spun per frame */
static EVP_CIPHER_CTX *echo_seal_ctx;	/* --seal: keyed once */
static uint8_t echo_pool[ECHO_SEAL_POOL];
static size_t echo_pool_left;

static void
echo_sig(int sig)
{
	(void)sig;
	echo_stop = 1;
}

static int
echo_out_reserve(struct echo_conn *c, size_t n)
{
	uint8_t *p;
	size_t cap;

	if (c->out_len + n <= c->out_cap)
		return 0;
	cap = c->out_cap == 0 ? 4096 : c->out_cap;
	while (cap < c->out_len + n)
		cap *= 2;
	if ((p = realloc(c->out, cap)) == NULL)
		return -1;
	c->out = p;
	c->out_cap = cap;
	return 0;
}

static void
echo_close(int ep, struct echo_conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

/* Send what is queued; arm EPOLLOUT only while something is left. */
static int
echo_flush(int ep, struct echo_conn *c)
{
	struct epoll_event ev;
	ssize_t n;
	size_t off = 0;

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

/* --seal: out[0..ECHO_SEAL_OUT) = nonce, ciphertext and tag of in[]. */
static int
echo_seal(uint8_t *out, const uint8_t *in)
{
	uint8_t *nonce = out, *ct = out + ECHO_SEAL_NONCE;
	int outl, finl;

	if (echo_pool_left < ECHO_SEAL_NONCE) {
		if (RAND_bytes(echo_pool, sizeof(echo_pool)) != 1)
			return -1;
		echo_pool_left = sizeof(echo_pool);
	}
	echo_pool_left -= ECHO_SEAL_NONCE;
	memcpy(nonce, echo_pool + echo_pool_left, ECHO_SEAL_NONCE);
	if (EVP_EncryptInit_ex2(echo_seal_ctx, NULL, NULL, nonce, NULL) != 1 ||
	    EVP_EncryptUpdate(echo_seal_ctx, NULL, &outl, in,
	    ECHO_SEAL_AAD) != 1 ||
	    EVP_EncryptUpdate(echo_seal_ctx, ct, &outl, in + ECHO_SEAL_AAD,
	    ECHO_SEAL_PT) != 1 || outl != ECHO_SEAL_PT ||
	    EVP_EncryptFinal_ex(echo_seal_ctx, ct + outl, &finl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(echo_seal_ctx, EVP_CTRL_GCM_GET_TAG,
	    ECHO_SEAL_TAG, ct + ECHO_SEAL_PT) != 1)
		return -1;
	return 0;
}

static int
echo_read(int ep, struct echo_conn *c)
{
	size_t off = 0, blen, rlen;
	ssize_t n;

	n = read(c->fd, c->in + c->in_len, ECHO_IN_CAP - c->in_len);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	c->in_len += (size_t)n;
	while (c->in_len - off >= BENCH_HDR) {
		blen = bench_get32(c->in + off);
		if (blen == 0 || blen > BENCH_FRAME_MAX)
			return -1;
		if (c->in_len - off < BENCH_HDR + blen)
			break;
		rlen = echo_resp != 0 ? echo_resp : blen;
		if (echo_out_reserve(c, BENCH_HDR + rlen) != 0)
			return -1;
		bench_put32(c->out + c->out_len, (uint32_t)rlen);
		if (rlen <= blen)
			memcpy(c->out + c->out_len + BENCH_HDR,
			    c->in + off + BENCH_HDR, rlen);
		else {
			memcpy(c->out + c->out_len + BENCH_HDR,
			    c->in + off + BENCH_HDR, blen);
			memset(c->out + c->out_len + BENCH_HDR + blen, 0,
			    rlen - blen);
		}
		if (echo_seal_ctx != NULL && (blen < ECHO_SEAL_AAD +
		    ECHO_SEAL_PT || rlen < ECHO_SEAL_OUT ||
		    echo_seal(c->out + c->out_len + BENCH_HDR,
		    c->in + off + BENCH_HDR) != 0))
			return -1;
		c->out_len += BENCH_HDR + rlen;
		off += BENCH_HDR + blen;
		if (echo_busy_ns > 0) {
			uint64_t until = bench_now_ns() + echo_busy_ns;

			while (bench_now_ns() < until)
				;
		}
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return echo_flush(ep, c);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "resp", required_argument, NULL, 'r' },
		{ "busy-ns", required_argument, NULL, 'b' },
		{ "seal", no_argument, NULL, 'e' },
		{ "cpu", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	struct epoll_event evs[ECHO_EVENTS], ev;
	struct sockaddr_un sun;
	const char *path = NULL;
	uint8_t key[ECHO_SEAL_KEY];
	int cpu = -1, ep, lfd, opt, n, seal = 0;

	while ((opt = getopt_long(argc, argv, "s:r:b:ec:", lo, NULL)) != -1) {
		switch (opt) {
		case 's': path = optarg; break;
		case 'r': echo_resp = strtoul(optarg, NULL, 10); break;
		case 'b': echo_busy_ns = strtoull(optarg, NULL, 10); break;
		case 'e': seal = 1; break;
		case 'c': cpu = atoi(optarg); break;
		default: return 2;
		}
	}
	if (path == NULL || strlen(path) >= sizeof(sun.sun_path) ||
	    echo_resp > BENCH_FRAME_MAX) {
		fprintf(stderr, "usage: echo_server --socket PATH [--resp N] "
		    "[--busy-ns N] [--seal] [--cpu N]\n");
		return 2;
	}
	if (seal) {
		/* A key of its own, never used outside this process. */
		int ok = RAND_bytes(key, sizeof(key)) == 1 &&
		    (echo_seal_ctx = EVP_CIPHER_CTX_new()) != NULL &&
		    EVP_EncryptInit_ex2(echo_seal_ctx, EVP_aes_256_gcm(), key,
		    NULL, NULL) == 1;

		OPENSSL_cleanse(key, sizeof(key));
		if (!ok) {
			fprintf(stderr, "echo_server: cannot key AES-256-GCM\n");
			return 1;
		}
	}
	if (bench_pin(cpu) != 0)
		return 1;
	bench_nofile(65536);
	signal(SIGTERM, echo_sig);
	signal(SIGINT, echo_sig);
	signal(SIGPIPE, SIG_IGN);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	unlink(path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    listen(lfd, 4096) != 0) {
		perror(path);
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;	/* NULL: the listener */
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("ready\n");
	fflush(stdout);

	while (!echo_stop) {
		n = epoll_wait(ep, evs, ECHO_EVENTS, 500);
		for (int i = 0; i < n; i++) {
			struct echo_conn *c = evs[i].data.ptr;

			if (c == NULL) {
				int fd;

				while ((fd = accept4(lfd, NULL, NULL,
				    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					c = calloc(1, sizeof(*c));
					c->fd = fd;
					c->in = malloc(ECHO_IN_CAP);
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			if (((evs[i].events & EPOLLOUT) &&
			    echo_flush(ep, c) != 0) ||
			    ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
			    echo_read(ep, c) != 0))
				echo_close(ep, c);
		}
	}
	unlink(path);
	EVP_CIPHER_CTX_free(echo_seal_ctx);
	return 0;
}
