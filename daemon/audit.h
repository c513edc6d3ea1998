/*
 * audit.h: the hash-chained audit log (DESIGN 3.9).
 *
 * One JSON object a line. Every line ends with "prev": the hex SHA-256 of
 * the previous line's bytes (without its newline); the first line of a
 * new chain has prev = 64 zeros (AUDIT_GENESIS). Any edit, insertion or
 * deletion breaks the chain, which `kmsctl audit verify` checks. When kmsd
 * opens an existing file it continues from the hash of its last line;
 * after a reopen (logrotate: SIGUSR1 or reload) the new file's first line
 * carries the hash of the last line written to the old one, so rotated
 * files verify as one chain when given in order.
 *
 * An entry is written (write(2) to an O_APPEND descriptor) before the
 * response is sent; when it cannot be written the caller fails the
 * operation with audit_unavailable (fail closed). A failed or short write
 * does not advance the chain, and a partial line is cut off again.
 * Plaintexts, data keys and credentials are never passed here.
 */
#ifndef KMSD_AUDIT_H
#define KMSD_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "auditchain.h"

/* Longest line written (without its newline); longer contexts are
 * replaced by their HMAC-less SHA-256 with "context_truncated": true. */
#define AUDIT_MAX_LINE 8192
/* Longest JSON text of one string member (between the quotes): longer
 * strings (a peer's exe path, a requested key name) are cut at a character
 * boundary and end with "...", so the members other than the context
 * always fit in AUDIT_MAX_LINE. */
#define AUDIT_MAX_FIELD 1024
/* HMAC key size for audit_context = hmac. */
#define AUDIT_HMAC_KEY_LEN 32

struct audit;

enum audit_ctx_mode {
	AUDIT_CTX_PLAIN = 0,	/* the context's pairs, as JSON */
	AUDIT_CTX_HMAC = 1,	/* HMAC-SHA256(key, canonical JSON), hex */
};

struct audit_entry {
	const char *op;			/* wire op name, or "breaker_trip" */
	const char *key;		/* NULL: none or unknown */
	uint32_t version;		/* 0: none */
	const char *socket;		/* NULL for daemon events */
	int has_peer;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	const char *exe;		/* NULL: unknown */
	/* canonical context JSON (as used for the request), NULL if none.
	 * In plain mode it is embedded as is, so it must be one JSON object
	 * in valid UTF-8 with no raw control bytes (the canonical form is);
	 * anything else fails the write rather than break the log. */
	const uint8_t *ctx_json;
	size_t ctx_json_len;
	const char *result;		/* "ok", "denied", "failed" */
	const char *error;		/* wire error code, NULL when ok */
	const char *detail;		/* e.g. disable reason; NULL if none */
	int cache_hit;			/* decrypt answered from the cache */
	uint64_t duration_us;
};

/* Open (create 0600, O_APPEND) path. hmac_key is AUDIT_HMAC_KEY_LEN
 * bytes when mode is AUDIT_CTX_HMAC (copied; wiped at close). A symlink,
 * or a file whose last line is incomplete or not an audit entry, is
 * refused (0 or -1 with err). */
int audit_open(const char *path, enum audit_ctx_mode mode,
    const uint8_t *hmac_key, struct audit **ret, char *err, size_t errlen);
/*
 * Entries are appended to a batch that one audit_flush writes with one
 * write(2); the daemon flushes once a loop turn and sends the answers of
 * the batch only after it. audit_append: 0, or ERR_AUDIT_UNAVAILABLE when
 * the line cannot be built or the log is unusable. audit_flush: 0, or
 * ERR_AUDIT_UNAVAILABLE when the batch did not reach the file; then none
 * of its lines is in the file and the chain goes on from the last line
 * that is. Strings are escaped; invalid UTF-8 in them becomes U+FFFD.
 * After a short write that could not be cut off again every append fails
 * until audit_reopen. audit_pending: bytes appended and not yet flushed
 * (callers flush at AUDIT_FLUSH_AT). audit_write: append, then flush.
 */
#define AUDIT_FLUSH_AT (256 * 1024)
int audit_append(struct audit *a, const struct audit_entry *e);
int audit_flush(struct audit *a);
size_t audit_pending(const struct audit *a);
int audit_write(struct audit *a, const struct audit_entry *e);
/* Reopen the same path (after rotation), keeping the chain. 0 or -1; on
 * -1 the old descriptor stays in use. Refused while entries are pending
 * (flush first). err is "" on a plain success and
 * says so when the file's last line is not the one kmsd wrote last (the
 * chain then continues from the file's last line). */
int audit_reopen(struct audit *a, char *err, size_t errlen);
/* The hash the next line's "prev" will carry (for status and tests). */
const char *audit_head(const struct audit *a);
void audit_close(struct audit *a);

#endif
