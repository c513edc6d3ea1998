/*
 * stats.h: operation counters for alerting (DESIGN 3.9).
 *
 * Counts every request that reached the policy gate, by op, key, socket
 * and result (ok, denied, failed), and separately by peer uid, op and
 * result; decrypts in the last 1, 5 and 15 minutes; breaker trips; and
 * the decrypt state. Rendered as JSON (op `stats`) or as the Prometheus
 * text exposition format (`--prometheus`, and the node-exporter textfile
 * written atomically every few seconds when configured).
 *
 * Label values come from configuration (key and socket names) or from
 * the kernel (uid), never from what a client sent: a request for an
 * unknown key counts under key "" so a client cannot grow the table.
 */
#ifndef KMSD_STATS_H
#define KMSD_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

struct stats;

enum stats_result {
	STATS_OK = 0,
	STATS_DENIED = 1,	/* refused by policy, disabled, breaker */
	STATS_FAILED = 2,	/* provider or input failure */
};

/* Bound on distinct (op, key, socket, result) and (uid, op, result)
 * rows: keys and sockets are bounded by the config, uids by the host;
 * past the bound new rows are folded into an "other" row. */
#define STATS_MAX_ROWS 4096

struct stats *stats_new(void);
void stats_free(struct stats *s);

/* key may be NULL (unknown key); socket is a configured name. now is a
 * monotonic second, used for the decrypt windows. */
void stats_count(struct stats *s, int op, const char *key,
    const char *socket, uid_t uid, enum stats_result result, int64_t now);
void stats_breaker_trip(struct stats *s);
/* A decrypt answered from the data-key cache. */
void stats_cache_hit(struct stats *s);

/* Decrypts (ok results) in the last `seconds`, for the breaker and the
 * 1/5/15 minute figures. */
uint64_t stats_decrypts(const struct stats *s, int64_t now,
    unsigned seconds);

struct stats_state {
	int decrypt_disabled;
	const char *disabled_reason;	/* NULL when enabled */
	uint64_t uptime_s;
};

/* Append the JSON document / the Prometheus text to out, rows sorted
 * and folded rows last (the peer fold row has uid "other", a string, in
 * JSON). st may be NULL (enabled, uptime 0). 0, ERR_TOO_LARGE (out's
 * cap) or ERR_NOMEM; on failure out is left as it was. */
int stats_json(const struct stats *s, const struct stats_state *st,
    int64_t now, struct buf *out);
int stats_prometheus(const struct stats *s, const struct stats_state *st,
    int64_t now, struct buf *out);
/* Write the Prometheus text to path atomically (temp file in the same
 * directory, mode 0644, fsync, rename). 0 or -1 with errno (ENOMEM or
 * EFBIG when rendering failed); no temp file is left on failure. */
int stats_write_textfile(const struct stats *s, const struct stats_state *st,
    int64_t now, const char *path);

#endif
