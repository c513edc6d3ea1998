/*
 * conn.c: one client connection: bounded buffers, framing, pipelining,
 * backpressure, timeouts.
 *
 * Invariants:
 * - c->in never holds more than one maximal frame plus one read chunk, and
 *   a frame whose header announces more than the limit is answered with
 *   too_large and the connection closed, before any of its body is kept.
 * - Decoded requests point into c->in; the bytes of a handled frame are
 *   wiped as they are consumed (buf_consume), so request plaintexts do not
 *   linger.
 * - Reading stops while CONN_MAX_INFLIGHT requests are in flight or
 *   CONN_OUT_HIGH bytes wait to be written; it resumes as they drain.
 * - A connection is freed only from the reaper, on a later loop turn.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "err.h"
#include "frame.h"
#include "log.h"
#include "op.h"
#include "server.h"
#include "turn.h"

/* Bytes asked of read() at a time. */
#define CONN_READ_CHUNK (16 * 1024)
/* Buffers larger than this are given back once empty: a burst of
 * pipelined requests must not leave every connection holding its
 * high-water mark (10,000 idle connections would then cost gigabytes);
 * smaller ones stay allocated, so ping-pong traffic allocates nothing. */
#define CONN_KEEP_CAP (32 * 1024 + 1)
/* Records of answers held for the turn's commit: the first allocation,
 * and the size past which a burst's array is given back. */
#define CONN_HELD_MIN 8
#define CONN_HELD_KEEP 64
/* The input buffer: one maximal frame plus a read chunk. */
#define CONN_IN_MAX (FRAME_HDR + FRAME_MAX_DEFAULT + CONN_READ_CHUNK)

static void conn_process(struct conn *c);
static size_t conn_frames(struct conn *c, const uint8_t *data, size_t len);
static void conn_update(struct conn *c);

void
conn_flush(struct conn *c)
{
	ssize_t n;

	while (c->out_ready > 0) {
		n = send(c->fd, c->out.data, c->out_ready, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_kill(c, errno == EPIPE || errno == ECONNRESET ?
			    "client went away" : strerror(errno));
			return;
		}
		buf_consume(&c->out, (size_t)n);
		c->out_ready -= (size_t)n;
		for (size_t i = 0; i < c->n_held; i++)
			c->held[i].end -= (size_t)n;
	}
	conn_update(c);
}

/* Arm or disarm the read and write events and the timer to match the
 * state; close when there is nothing left to do. */
static void
conn_update(struct conn *c)
{
	const struct config *cfg = c->srv->cfg;
	int want_read, idle;
	struct timeval tv;
	unsigned ms;

	if (c->dead)
		return;
	idle = c->inflight == 0 && c->out.len == 0;
	if (idle && c->in.len == 0 && (c->eof || c->closing)) {
		conn_kill(c, c->closing ? "closed after an error" :
		    "closed by client");
		return;
	}
	if (idle && c->srv->draining && c->in.len == 0) {
		conn_kill(c, "server shutting down");
		return;
	}
	if (c->in.len == 0 && c->in.cap > CONN_KEEP_CAP)
		buf_done(&c->in);
	if (c->out.len == 0 && c->out.cap > CONN_KEEP_CAP)
		buf_done(&c->out);
	want_read = !c->eof && !c->closing && c->inflight < CONN_MAX_INFLIGHT &&
	    c->out.len < CONN_OUT_HIGH && c->in.len < CONN_IN_MAX;
	if (want_read && !c->reading)
		event_add(c->rev, NULL);
	else if (!want_read && c->reading)
		event_del(c->rev);
	c->reading = want_read;
	if (c->out_ready > 0)
		event_add(c->wev, NULL);
	else
		event_del(c->wev);

	/* One timer. A frame that has started must be complete within
	 * frame_timeout of its first byte (more bytes of the same frame do not
	 * extend it: a client trickling one byte at a time is still cut off).
	 * A connection with nothing to do, or whose client does not read its
	 * answers, is closed after idle_timeout of that. While requests are in
	 * flight the provider deadlines apply instead. */
	if (c->reading && c->in.len > 0) {
		if (c->timer_kind == CONN_TIMER_FRAME && !c->frame_done)
			return;
		c->timer_kind = CONN_TIMER_FRAME;
		ms = cfg->frame_timeout_ms;
	} else if (idle || c->out.len >= CONN_OUT_HIGH) {
		/* The idle clock restarts now. An idle timer already running
		 * is left alone (re-arming it for every request would cost a
		 * timer-heap update each): when it fires it re-arms itself for
		 * what is left since this moment. */
		c->active_us = ops_now_us();
		if (c->timer_kind == CONN_TIMER_IDLE)
			return;
		c->timer_kind = CONN_TIMER_IDLE;
		ms = cfg->idle_timeout_ms;
	} else {
		c->timer_kind = CONN_TIMER_NONE;
		event_del(c->timer);
		return;
	}
	c->frame_done = 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_add(c->timer, &tv);
}

/* After handling c's input or a completion: answers queued now go out
 * with the turn's commit (which also re-arms c); otherwise re-arm now. */
static void
conn_settle(struct conn *c)
{
	if (!c->dead && !c->held_listed)
		conn_flush(c);
}

/*
 * Bytes are read into one buffer shared by every connection and handled
 * from there; only a partial frame left at the end is copied into the
 * connection's own buffer. So a connection between requests holds no
 * input buffer at all (10,000 idle clients cost no read buffers), and the
 * common whole-frames case copies nothing. The shared buffer is wiped
 * after each use: frames may carry plaintexts.
 */
static uint8_t conn_scratch[CONN_READ_CHUNK];

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	size_t room, used;
	ssize_t n;

	if (c->in.len == 0) {
		n = read(fd, conn_scratch, sizeof(conn_scratch));
		if (n <= 0)
			goto read_failed;
		c->processing = 1;
		used = conn_frames(c, conn_scratch, (size_t)n);
		if (!c->dead && !c->closing && used < (size_t)n &&
		    buf_append(&c->in, conn_scratch + used,
		    (size_t)n - used) != 0)
			conn_kill(c, "out of memory");
		wipe(conn_scratch, (size_t)n);
		c->processing = 0;
		conn_settle(c);
		return;
	}
	room = CONN_IN_MAX - c->in.len;
	if (room > CONN_READ_CHUNK)
		room = CONN_READ_CHUNK;
	if (room == 0)
		goto process;
	if (buf_reserve(&c->in, room) != 0) {
		conn_kill(c, "out of memory");
		return;
	}
	n = read(fd, c->in.data + c->in.len, room);
	if (n <= 0)
		goto read_failed;
	c->in.len += (size_t)n;
process:
	conn_process(c);
	return;
read_failed:
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		conn_kill(c, strerror(errno));
		return;
	}
	c->eof = 1;	/* complete frames still get answered */
	conn_process(c);
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_flush(arg);
}

static void
conn_more_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_process(arg);
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t idle_us, since;
	struct timeval tv;

	if (c->timer_kind == CONN_TIMER_IDLE) {
		idle_us = (uint64_t)c->srv->cfg->idle_timeout_ms * 1000;
		since = ops_now_us() - c->active_us;
		if (since < idle_us) {
			/* Active since the timer was armed: wait the rest. */
			idle_us -= since;
			tv.tv_sec = (time_t)(idle_us / 1000000);
			tv.tv_usec = (suseconds_t)(idle_us % 1000000);
			event_add(c->timer, &tv);
			return;
		}
	}
	if (c->timer_kind == CONN_TIMER_FRAME) {
		log_info("conn %llu (uid %u pid %d): partial frame not "
		    "completed in time, closing", (unsigned long long)c->serial,
		    (unsigned)c->peer.uid, (int)c->peer.pid);
		conn_kill(c, "partial frame timeout");
	} else
		conn_kill(c, "idle timeout");
}

/* Answer a request that never reached ops: framing or decoding failed. */
static void
conn_reject(struct conn *c, uint64_t id, int err, const char *why)
{
	struct response rs;

	log_info("conn %llu (socket %s uid %u pid %d): %s: %s",
	    (unsigned long long)c->serial, c->lst->name,
	    (unsigned)c->peer.uid, (int)c->peer.pid, err_code(err), why);
	msg_response_error(&rs, id, err, why);
	conn_respond(c, &rs);
}

/*
 * Handle the whole frames at the front of data[0..len): returns how many
 * bytes were used. Stops at a partial frame, at the in-flight and output
 * limits, and after CONN_FRAMES_PER_WAKE frames (then it schedules itself
 * again). A frame whose header is unacceptable answers an error and marks
 * the connection closing; everything is then "used" (dropped).
 */
static size_t
conn_frames(struct conn *c, const uint8_t *data, size_t len)
{
	struct request req;
	const uint8_t *body;
	size_t blen, off = 0;
	int r, frames = 0;

	while (!c->dead && !c->closing && c->inflight < CONN_MAX_INFLIGHT &&
	    c->out.len < CONN_OUT_HIGH) {
		if (frames++ == CONN_FRAMES_PER_WAKE) {
			/* Let other clients run; continue on the next turn. */
			event_active(c->more, EV_READ, 0);
			break;
		}
		r = frame_parse(data + off, len - off, FRAME_MAX_DEFAULT, &body,
		    &blen);
		if (r == FRAME_MORE)
			break;
		if (r < 0) {
			turn_mark_secret();
			/* The stream cannot be resynchronised: answer, then
			 * close once the answer is out. */
			conn_reject(c, 0, r, r == ERR_TOO_LARGE ?
			    "frame longer than the 65536-byte limit" :
			    "empty frame");
			c->closing = 1;
			return len;
		}
		r = msg_decode_request_with(c->srv->dec, body, blen, &req);
		/* Any frame but a hello, keys or stats may carry a data key
		 * or plaintext, read or not (turn.h). */
		if (r != 0 || (req.op != OP_HELLO && req.op != OP_KEYS &&
		    req.op != OP_STATS))
			turn_mark_secret();
		if (r != 0)
			conn_reject(c, req.has_id ? req.id : 0, r,
			    req.why[0] != '\0' ? req.why : err_str(r));
		else
			ops_dispatch(c, &req);
		off += FRAME_HDR + blen;
		c->frame_done = 1;
	}
	return off;
}

/* Frames waiting in c->in (a partial frame completed, or processing
 * resumed after a limit). */
static void
conn_process(struct conn *c)
{
	const uint8_t *body;
	size_t used, blen;

	c->processing = 1;
	used = conn_frames(c, c->in.data, c->in.len);
	/* Wipes the handled frames: they may have carried plaintexts. */
	buf_consume(&c->in, used);
	if (c->eof && c->in.len > 0 && !c->closing && !c->dead &&
	    frame_parse(c->in.data, c->in.len, FRAME_MAX_DEFAULT, &body,
	    &blen) == FRAME_MORE) {
		log_info("conn %llu: client closed in the middle of a frame "
		    "(%zu bytes dropped)", (unsigned long long)c->serial,
		    c->in.len);
		buf_clear(&c->in);
	}
	c->processing = 0;
	conn_settle(c);
}

void
conn_respond(struct conn *c, const struct response *r)
{
	struct conn_held *h;
	int rc, audited = c->audited;

	c->audited = 0;
	if (c->dead)
		return;
	if ((rc = msg_encode_response(&c->out, r)) != 0) {
		log_err("conn %llu: cannot encode a response: %s",
		    (unsigned long long)c->serial, err_str(rc));
		conn_kill(c, "response too large");
		return;
	}
	/* Every answer waits for the end of the loop turn (server_commit):
	 * all the answers of a turn then go out together, after the turn's
	 * audit batch, instead of one wake-up of the client per answer. An
	 * audited one is answered audit_unavailable instead if the batch
	 * fails, so each is recorded. */
	if (c->n_held == c->cap_held) {
		size_t ncap = c->cap_held == 0 ? CONN_HELD_MIN :
		    2 * c->cap_held;

		if ((h = reallocarray(c->held, ncap, sizeof(*h))) == NULL) {
			conn_kill(c, "out of memory");
			return;
		}
		c->held = h;
		c->cap_held = ncap;
	}
	h = &c->held[c->n_held++];
	h->end = c->out.len;
	h->id = r->id;
	h->audited = audited;
	if (!c->held_listed) {
		TAILQ_INSERT_TAIL(&c->srv->held, c, held_entry);
		c->held_listed = 1;
	}
}

void
conn_release(struct conn *c, int failed)
{
	struct response rs;
	struct buf tail;
	size_t start = c->out_ready;
	int rc = 0;

	if (c->held_listed) {
		TAILQ_REMOVE(&c->srv->held, c, held_entry);
		c->held_listed = 0;
	}
	if (c->dead)
		return;
	if (failed) {
		/* Rebuild the held part: each audited answer becomes
		 * audit_unavailable (no key, no plaintext), the others stay
		 * as they were. */
		buf_init(&tail, CONN_OUT_MAX);
		for (size_t i = 0; i < c->n_held && rc == 0; i++) {
			const struct conn_held *h = &c->held[i];

			if (h->audited) {
				msg_response_error(&rs, h->id,
				    ERR_AUDIT_UNAVAILABLE,
				    err_str(ERR_AUDIT_UNAVAILABLE));
				rc = msg_encode_response(&tail, &rs);
			} else
				rc = buf_append(&tail, c->out.data + start,
				    h->end - start);
			start = h->end;
		}
		/* Wipes what the failed answers carried. */
		wipe(c->out.data + c->out_ready,
		    c->out.len - c->out_ready);
		c->out.len = c->out_ready;
		if (rc == 0)
			rc = buf_append(&c->out, tail.data, tail.len);
		buf_done(&tail);
		if (rc != 0) {
			c->n_held = 0;
			conn_kill(c, "out of memory");
			return;
		}
	}
	c->n_held = 0;
	if (c->cap_held > CONN_HELD_KEEP) {
		free(c->held);
		c->held = NULL;
		c->cap_held = 0;
	}
	c->out_ready = c->out.len;
}

void
conn_op_finished(struct conn *c)
{
	c->inflight--;
	if (c->dead || c->processing)
		return;		/* conn_process flushes when it is done */
	/* Reading may have been paused at the in-flight cap, and frames may
	 * be waiting in c->in. */
	if (c->in.len > 0)
		event_active(c->more, EV_READ, 0);
	conn_settle(c);
}

void
conn_new(struct listener *l, int fd, struct peer *peer)
{
	struct server *s = l->srv;
	struct conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_err("out of memory accepting a connection");
		peer_done(peer);
		close(fd);
		return;
	}
	c->srv = s;
	c->lst = l;
	c->fd = fd;
	c->peer = *peer;	/* takes the owned fields */
	memset(peer, 0, sizeof(*peer));
	c->serial = ++s->next_serial;
	TAILQ_INIT(&c->ops);
	buf_init(&c->in, CONN_IN_MAX);
	buf_init(&c->out, CONN_OUT_MAX);
	c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->wev = event_new(s->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb,
	    c);
	c->timer = evtimer_new(s->base, conn_timer_cb, c);
	c->more = event_new(s->base, -1, 0, conn_more_cb, c);
	if (c->rev == NULL || c->wev == NULL || c->timer == NULL ||
	    c->more == NULL) {
		log_err("out of memory accepting a connection");
		conn_free(c);
		close(fd);
		return;
	}
	TAILQ_INSERT_TAIL(&s->conns, c, entry);
	s->nconns++;
	log_debug("conn %llu: socket %s uid %u gid %u pid %d",
	    (unsigned long long)c->serial, l->name, (unsigned)peer->uid,
	    (unsigned)peer->gid, (int)peer->pid);
	conn_update(c);
}

void
conn_kill(struct conn *c, const char *why)
{
	struct server *s = c->srv;

	if (c->dead)
		return;
	c->dead = 1;
	log_debug("conn %llu: closed: %s", (unsigned long long)c->serial, why);
	ops_detach(c);
	event_del(c->rev);
	event_del(c->wev);
	event_del(c->timer);
	event_del(c->more);
	if (c->held_listed) {
		TAILQ_REMOVE(&s->held, c, held_entry);
		c->held_listed = 0;
	}
	c->n_held = 0;
	close(c->fd);
	c->fd = -1;
	TAILQ_REMOVE(&s->conns, c, entry);
	TAILQ_INSERT_TAIL(&s->dead, c, entry);
	s->nconns--;
	event_active(s->reaper, EV_READ, 0);
}

void
conn_orphan(struct conn *c)
{
	c->closing = 1;
	buf_clear(&c->in);
	conn_update(c);
}

void
conn_drain(struct conn *c)
{
	conn_update(c);
}

void
conn_free(struct conn *c)
{
	if (c->rev != NULL)
		event_free(c->rev);
	if (c->wev != NULL)
		event_free(c->wev);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->more != NULL)
		event_free(c->more);
	buf_done(&c->in);
	buf_done(&c->out);
	free(c->held);
	peer_done(&c->peer);
	free(c);
}
