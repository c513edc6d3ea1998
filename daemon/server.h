/*
 * server.h: the daemon's listeners, connections and shared state.
 *
 * One libevent loop owns everything here. Listeners accept, read the
 * peer's credentials and hand the descriptor to a new connection;
 * connections frame, decode and dispatch requests to ops, and write the
 * responses back. A connection that fails or closes is marked dead and
 * freed on a later loop turn, never inside its own callback.
 */
#ifndef KMSD_SERVER_H
#define KMSD_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "buf.h"
#include "config.h"
#include "keys.h"
#include "msg.h"

struct event;
struct event_base;
struct job;

/* Requests being processed at once on one connection; past it the
 * connection is not read until some complete (backpressure, not error). */
#define CONN_MAX_INFLIGHT 256
/* Queued output past which reading stops until the client reads. */
#define CONN_OUT_HIGH (256 * 1024)
/* Hard cap on queued output: only reached by a bug, and then the
 * connection is dropped rather than memory grown. */
#define CONN_OUT_MAX (8 * 1024 * 1024)
/* Frames handled per wake-up, so one busy client cannot starve others. */
#define CONN_FRAMES_PER_WAKE 64
/* Connections accepted per wake-up of a listener. */
#define SERVER_ACCEPTS_PER_WAKE 32
/* How long a listener sleeps after running out of descriptors. */
#define SERVER_EMFILE_PAUSE_MS 1000
/* How long SIGTERM waits for requests in flight before exiting anyway. */
#define SERVER_DRAIN_MS 10000

struct peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

struct listener {
	struct server *srv;
	const struct cfg_socket *cfg;	/* of srv->cfg; swapped on reload */
	int fd;
	int paused;
	struct event *ev;
	struct event *resume;
	char *path;			/* removed at exit */
};

struct conn {
	struct server *srv;
	struct listener *lst;
	int fd;
	uint64_t serial;		/* for log lines */
	struct peer peer;
	struct event *rev;
	struct event *wev;
	struct event *timer;
	struct event *more;		/* resume framing without new input */
	struct buf in;
	struct buf out;
	unsigned inflight;
	int reading;
	int eof;			/* peer shut its side: finish, then close */
	int closing;			/* flush out, then close */
	int processing;			/* inside conn_process: flush later */
	int frame_done;			/* a frame completed since the timer
					 * was armed */
	enum conn_timer {
		CONN_TIMER_NONE,
		CONN_TIMER_FRAME,
		CONN_TIMER_IDLE,
	} timer_kind;
	int dead;
	TAILQ_ENTRY(conn) entry;
	TAILQ_HEAD(, job) ops;		/* in flight, detached when dead */
};

TAILQ_HEAD(conn_list, conn);

struct server {
	struct event_base *base;
	struct config *cfg;
	struct keyring *kr;
	size_t n_lst;
	struct listener *lst;
	struct conn_list conns;
	struct conn_list dead;
	struct event *reaper;
	struct event *drain_timer;
	unsigned nconns;
	int draining;
	uint64_t next_serial;
};

/* Set up s (loop, config, keyring are the caller's, kept by s). */
int server_init(struct server *s, struct event_base *base,
    struct config *cfg, struct keyring *kr);
/* Bind and listen on every configured socket. */
int server_start(struct server *s, char *err, size_t errlen);
/* SIGTERM: stop accepting, remove socket files, let requests in flight
 * finish (up to SERVER_DRAIN_MS), then break the loop. */
void server_drain(struct server *s);
void server_free(struct server *s);

/* conn.c */
void conn_new(struct listener *l, int fd, const struct peer *peer);
/* Encode and queue a response. */
void conn_respond(struct conn *c, const struct response *r);
/* An op of c finished (after its response was queued). */
void conn_op_finished(struct conn *c);
/* Mark dead and schedule the free. */
void conn_kill(struct conn *c, const char *why);
/* Server is draining: close c once it has nothing in flight. */
void conn_drain(struct conn *c);
void conn_free(struct conn *c);

/* ops.c */
/* Handle one decoded request; the request points into c->in and is only
 * valid during the call. */
void ops_dispatch(struct conn *c, const struct request *r);
/* The connection goes away: completions of its ops are dropped. */
void ops_detach(struct conn *c);

#endif
