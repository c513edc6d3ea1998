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
#include "state.h"
#include "window.h"

struct audit;
struct http;
struct stats;

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
	size_t n_groups;
	gid_t *groups;			/* supplementary */
	char *exe;			/* NULL: unknown */
	char *unit;			/* systemd unit; NULL: none */
};

struct listener {
	struct server *srv;
	/* Of srv->cfg, swapped on reload; NULL once a reload removed the
	 * socket (its connections are then orphaned and closing). */
	const struct cfg_socket *cfg;
	TAILQ_ENTRY(listener) gone_entry;
	char *name;			/* copy: outlives a reload */
	int fd;
	int paused;
	struct event *ev;
	struct event *resume;
	char *path;			/* removed at exit, unless activated */
	int activated;			/* fd from systemd: not ours to unlink */
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
	uint64_t active_us;		/* idle clock start (ops_now_us) */
	TAILQ_ENTRY(conn) entry;
	TAILQ_HEAD(, job) ops;		/* in flight, detached when dead */
	/* Answers wait in out until the end of the loop turn, after the
	 * turn's audit batch is written (server_commit): only
	 * out[0..out_ready) may be sent. Each held answer is recorded, so
	 * the audited ones of a batch that fails can be answered
	 * audit_unavailable instead. */
	size_t out_ready;
	struct conn_held *held;
	size_t n_held, cap_held;
	int audited;			/* ops_record: the next answer waits */
	int held_listed;		/* on srv->held */
	TAILQ_ENTRY(conn) held_entry;
};

/* One answer in a connection's output waiting for the audit batch. */
struct conn_held {
	size_t end;			/* offset in out just past it */
	uint64_t id;
	int audited;			/* else held only to keep the order */
};

TAILQ_HEAD(conn_list, conn);

/* Decrypt breaker window of one key, kept by name across reloads. */
struct key_window {
	char *name;
	struct window w;
};

struct server {
	struct event_base *base;
	struct config *cfg;		/* current; == srv_cfg_owned */
	struct config *srv_cfg_owned;	/* freed by main at exit/reload */
	struct keyring *kr;
	struct stats *stats;
	struct http *http;		/* shared HTTPS transport (main's) */
	struct audit *audit;		/* NULL: no audit log configured */
	struct msg_dec *dec;		/* decodes every request */
	struct cache *cache;		/* NULL: no key has a cache_ttl */
	int decrypt_disabled;
	char disabled_reason[STATE_MAX_REASON + 1];
	struct window breaker;		/* decrypts of all keys */
	size_t n_kw;
	struct key_window *kw;
	int64_t started_s;		/* monotonic */
	/* main.c's reload, for the admin op: 0, or -1 with err set. */
	int (*reload)(struct server *s, char *err, size_t errlen);
	size_t n_lst;
	struct listener **lst;		/* stable addresses: conns point here */
	struct conn_list conns;
	struct conn_list dead;
	TAILQ_HEAD(, conn) held;	/* conns with answers held for audit */
	TAILQ_HEAD(, listener) gone;	/* removed by reload, freed at exit */
	struct event *reaper;
	struct event *drain_timer;
	unsigned nconns;
	int draining;
	uint64_t next_serial;
};

/* Set up s (loop, config, keyring are the caller's, kept by s). */
int server_init(struct server *s, struct event_base *base,
    struct config *cfg, struct keyring *kr);
/* Bind and listen on every configured socket, adopting the ones systemd
 * passed (LISTEN_FDS, matched by FileDescriptorName = socket name). */
int server_start(struct server *s, char *err, size_t errlen);
/* Switch to cfg (already validated, keyring swapped by the caller). */
int server_reconfigure(struct server *s, struct config *cfg, char *err,
    size_t errlen);
/* SIGTERM: stop accepting, remove socket files, let requests in flight
 * finish (up to SERVER_DRAIN_MS), then break the loop. */
void server_drain(struct server *s);
/* Write the audit batch, then release the answers that waited for it
 * (as audit_unavailable when it could not be written). Called at the end
 * of every loop turn, and before the audit log is reopened or closed. */
void server_commit(struct server *s);
/* Add an entry to the turn's audit batch (written first when the batch
 * is big): audit_append's result. */
struct audit_entry;
int server_audit(struct server *s, const struct audit_entry *e);
void server_free(struct server *s);

/* peer.c */
/* Read the peer's identity from a connected socket. 0 or -1 (errno). */
int peer_read(int fd, struct peer *p);
void peer_done(struct peer *p);
/* The policy's view of p (pointers into p). */
void peer_id(const struct peer *p, struct peer_id *ret);

/* conn.c */
/* Takes over fd and the peer's owned fields. */
void conn_new(struct listener *l, int fd, struct peer *peer);
/* Encode and queue a response; it is sent by server_commit at the end of
 * the loop turn (after the turn's audit batch, which it depends on when
 * ops_record just audited it: c->audited). */
void conn_respond(struct conn *c, const struct response *r);
/* Send what may be sent; re-arm events and timers to match. */
void conn_flush(struct conn *c);
/* server_commit's part: release c's held answers; failed: the audit batch
 * was not written. */
void conn_release(struct conn *c, int failed);
/* An op of c finished (after its response was queued). */
void conn_op_finished(struct conn *c);
/* Mark dead and schedule the free. */
void conn_kill(struct conn *c, const char *why);
/* Its socket was removed by a reload: refuse new requests, finish the
 * ones in flight, close. */
void conn_orphan(struct conn *c);
/* Server is draining: close c once it has nothing in flight. */
void conn_drain(struct conn *c);
void conn_free(struct conn *c);

/* ops.c */
/* Monotonic clock, microseconds and seconds, read once a loop turn
 * (ops_clock_tick, from the loop, starts a new turn); ops_clock_read_us
 * reads it now. */
uint64_t ops_now_us(void);
int64_t ops_now_s(void);
uint64_t ops_clock_read_us(void);
void ops_clock_tick(void);
/* Audit and count one decision or outcome. key is the name the client
 * asked for (NULL: none); configured says whether it names a configured
 * key (stats label) or not. Returns 0, or ERR_AUDIT_UNAVAILABLE when the
 * audit entry could not be written: the caller must then answer
 * audit_unavailable and nothing else. */
int ops_record(struct conn *c, int op, struct str key, int configured,
    uint32_t version, const uint8_t *ctx_json, size_t ctx_json_len, int err,
    uint64_t t0_us, const char *detail, int cache_hit);
/* Turn decryption off (admin op or breaker): in memory at once, then
 * durably; -1 when the flag could not be written (it is off anyway). */
int ops_disable_decrypt(struct server *s, const char *reason);
int ops_enable_decrypt(struct server *s);

/* admin.c */
void admin_dispatch(struct conn *c, const struct request *r, uint64_t t0_us);
/* Status JSON (admin status, and the body of the other admin replies). */
int admin_status_json(struct server *s, struct buf *out);

/* Handle one decoded request; the request points into c->in and is only
 * valid during the call. */
void ops_dispatch(struct conn *c, const struct request *r);
/* The connection goes away: completions of its ops are dropped. */
void ops_detach(struct conn *c);
/* Free what ops keeps between requests (at exit). */
void ops_shutdown(void);

#endif
