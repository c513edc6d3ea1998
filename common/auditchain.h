/*
 * auditchain.h: the hash chain of kmsd's audit log, shared by the daemon
 * (which writes it) and kmsctl (which verifies it).
 *
 * Each line is one JSON object whose last member is "prev": the hex
 * SHA-256 of the previous line's bytes, without its newline. The first
 * line of a chain has prev = AUDIT_GENESIS. No logging.
 */
#ifndef KMSD_AUDITCHAIN_H
#define KMSD_AUDITCHAIN_H

#include <stddef.h>

#define AUDIT_GENESIS \
	"0000000000000000000000000000000000000000000000000000000000000000"
#define AUDIT_HASH_HEX 64
/* Longest line auditchain_verify accepts (and audit_open reads back): far
 * above any line kmsd writes (AUDIT_MAX_LINE), so only damage reaches it,
 * and it bounds the memory a hostile file can make the verifier use. */
#define AUDITCHAIN_MAX_LINE 65536

/* hex SHA-256 of line[0..len) into out (65 bytes with the NUL). */
void auditchain_hash(const char *line, size_t len,
    char out[AUDIT_HASH_HEX + 1]);

/*
 * 0 when line[0..len) (no newline) ends with "prev":"<64 lower-case hex>"}
 * exactly as the writer puts it, copying the hex into out; -1 otherwise.
 * A cheap structural check: it does not parse the JSON.
 */
int auditchain_line_prev(const char *line, size_t len,
    char out[AUDIT_HASH_HEX + 1]);

/*
 * Check the lines of the files, in order, as one chain. Returns 0 when
 * intact (msg says how many lines and whether the first file starts at
 * the genesis or continues an earlier, absent file); 1 when broken, with
 * msg naming FILE:LINE of the first break and why; -1 on I/O error.
 */
int auditchain_verify(const char *const *paths, size_t n, char *msg,
    size_t msglen);

#endif
