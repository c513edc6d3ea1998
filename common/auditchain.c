/*
 * auditchain.c: the audit log's hash chain (see auditchain.h).
 *
 * A line is intact when it is one JSON object (valid UTF-8, no duplicate
 * members, nothing after it) whose last member is "prev", written last in
 * the text exactly as `"prev":"<64 lower-case hex>"}`, and whose prev is
 * the SHA-256 of the line before it (across files, in the order given).
 * The hash covers the raw bytes, so the strict text checks add nothing to
 * tamper evidence; they make a non-kmsd line a clear break instead of a
 * confusing hash mismatch further on. The verifier reads a line at a time
 * into one bounded buffer: a hostile file costs at most
 * AUDITCHAIN_MAX_LINE bytes. No logging; the caller prints msg.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "auditchain.h"

/* The tail every line ends with: "prev":"<hex>"} */
#define CHAIN_TAIL_HEAD "\"prev\":\""
#define CHAIN_TAIL_HEAD_LEN (sizeof(CHAIN_TAIL_HEAD) - 1)
#define CHAIN_TAIL_LEN (CHAIN_TAIL_HEAD_LEN + AUDIT_HASH_HEX + 2)

enum chain_read {
	CHAIN_LINE,		/* a complete line (newline dropped) */
	CHAIN_EOF,		/* clean end of file */
	CHAIN_PARTIAL,		/* bytes after the last newline */
	CHAIN_TOO_LONG,		/* more than AUDITCHAIN_MAX_LINE bytes */
	CHAIN_IO,		/* read error, errno set */
};

void
auditchain_hash(const char *line, size_t len, char out[AUDIT_HASH_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	/* EVP_Digest only fails on allocation failure inside OpenSSL; an
	 * all-zero result would then break the chain visibly, never silently
	 * pass, since no line hashes to a fixed value. */
	if (EVP_Digest(line, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != AUDIT_HASH_HEX / 2) {
		memset(out, 'x', AUDIT_HASH_HEX);
		out[AUDIT_HASH_HEX] = '\0';
		return;
	}
	for (unsigned int i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0x0f];
	}
	out[AUDIT_HASH_HEX] = '\0';
}

static int
chain_is_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int
auditchain_line_prev(const char *line, size_t len,
    char out[AUDIT_HASH_HEX + 1])
{
	const char *t;

	if (len < CHAIN_TAIL_LEN)
		return -1;
	t = line + len - CHAIN_TAIL_LEN;
	if (memcmp(t, CHAIN_TAIL_HEAD, CHAIN_TAIL_HEAD_LEN) != 0 ||
	    memcmp(line + len - 2, "\"}", 2) != 0 ||
	    !chain_is_hex(t + CHAIN_TAIL_HEAD_LEN, AUDIT_HASH_HEX))
		return -1;
	memcpy(out, t + CHAIN_TAIL_HEAD_LEN, AUDIT_HASH_HEX);
	out[AUDIT_HASH_HEX] = '\0';
	return 0;
}

static void chain_msg(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
chain_msg(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (msg == NULL || msglen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
}

/* One line into line[0..*len); see enum chain_read. */
static enum chain_read
chain_read_line(FILE *fp, char *line, size_t *len)
{
	size_t n = 0;
	int c;

	while ((c = getc_unlocked(fp)) != EOF) {
		if (c == '\n') {
			*len = n;
			return CHAIN_LINE;
		}
		if (n == AUDITCHAIN_MAX_LINE)
			return CHAIN_TOO_LONG;
		line[n++] = (char)c;
	}
	*len = n;
	if (ferror(fp))
		return CHAIN_IO;
	return n == 0 ? CHAIN_EOF : CHAIN_PARTIAL;
}

/*
 * Is line[0..len) a well-formed entry? 0 with its prev in out, or -1 with
 * the reason in why.
 */
static int
chain_check_line(const char *line, size_t len, char out[AUDIT_HASH_HEX + 1],
    char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *o = NULL, *prev;
	const char *last = NULL;
	void *it;
	char tail[AUDIT_HASH_HEX + 1];
	int r = -1;

	/* JSON_ALLOW_NUL: a context value may hold a NUL byte, which the
	 * canonical context writes as \u0000. */
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
	    &jerr);
	if (o == NULL) {
		snprintf(why, whylen, "not valid JSON (%s, near byte %d)",
		    jerr.text, jerr.position);
		goto out;
	}
	if (!json_is_object(o)) {
		snprintf(why, whylen, "not a JSON object");
		goto out;
	}
	/* jansson keeps members in the order of the text. */
	for (it = json_object_iter(o); it != NULL;
	    it = json_object_iter_next(o, it))
		last = json_object_iter_key(it);
	if ((prev = json_object_get(o, "prev")) == NULL) {
		snprintf(why, whylen, "no \"prev\" member");
		goto out;
	}
	if (last == NULL || strcmp(last, "prev") != 0) {
		snprintf(why, whylen, "\"prev\" is not the last member");
		goto out;
	}
	if (!json_is_string(prev) || json_string_length(prev) !=
	    AUDIT_HASH_HEX || !chain_is_hex(json_string_value(prev),
	    AUDIT_HASH_HEX)) {
		snprintf(why, whylen,
		    "\"prev\" is not 64 lower-case hex digits");
		goto out;
	}
	if (auditchain_line_prev(line, len, tail) != 0 ||
	    strcmp(tail, json_string_value(prev)) != 0) {
		snprintf(why, whylen, "the line does not end with "
		    "\"prev\":\"<hash>\"} as kmsd writes it");
		goto out;
	}
	memcpy(out, tail, sizeof(tail));
	r = 0;
out:
	json_decref(o);
	return r;
}

int
auditchain_verify(const char *const *paths, size_t n, char *msg,
    size_t msglen)
{
	char *line = NULL;
	char expect[AUDIT_HASH_HEX + 1], prev[AUDIT_HASH_HEX + 1];
	char why[256];
	const char *prevpath = NULL;
	size_t len, total = 0, lineno;
	int have_prev = 0, midchain = 0, r = -1;
	FILE *fp = NULL;

	chain_msg(msg, msglen, "%s", "");
	/* +1: chain_read_line stores at most AUDITCHAIN_MAX_LINE bytes. */
	if ((line = malloc(AUDITCHAIN_MAX_LINE + 1)) == NULL) {
		chain_msg(msg, msglen, "out of memory");
		goto out;
	}
	for (size_t f = 0; f < n; f++) {
		const char *path = paths[f];

		if ((fp = fopen(path, "re")) == NULL) {
			chain_msg(msg, msglen, "%s: cannot open: %s", path,
			    strerror(errno));
			r = -1;
			goto out;
		}
		for (lineno = 1;; lineno++) {
			switch (chain_read_line(fp, line, &len)) {
			case CHAIN_LINE:
				break;
			case CHAIN_EOF:
				goto next_file;
			case CHAIN_PARTIAL:
				chain_msg(msg, msglen, "%s:%zu: truncated last "
				    "line (no newline at the end)", path,
				    lineno);
				r = 1;
				goto out;
			case CHAIN_TOO_LONG:
				chain_msg(msg, msglen, "%s:%zu: line longer "
				    "than %d bytes", path, lineno,
				    AUDITCHAIN_MAX_LINE);
				r = 1;
				goto out;
			case CHAIN_IO:
				chain_msg(msg, msglen, "%s:%zu: read error: "
				    "%s", path, lineno, strerror(errno));
				r = -1;
				goto out;
			}
			if (chain_check_line(line, len, prev, why,
			    sizeof(why)) != 0) {
				chain_msg(msg, msglen, "%s:%zu: not an audit "
				    "entry: %s", path, lineno, why);
				r = 1;
				goto out;
			}
			if (!have_prev) {
				/* The first line of all: the genesis, or a
				 * file whose predecessor was not given. */
				if (strcmp(prev, AUDIT_GENESIS) != 0)
					midchain = 1;
			} else if (strcmp(prev, expect) != 0) {
				if (lineno == 1)
					chain_msg(msg, msglen, "%s:1: chain "
					    "broken: prev does not match the "
					    "last line of %s (files out of "
					    "order, or lines removed between "
					    "them)", path, prevpath);
				else
					chain_msg(msg, msglen, "%s:%zu: chain "
					    "broken: prev does not match the "
					    "line before (edited, inserted or "
					    "removed lines)", path, lineno);
				r = 1;
				goto out;
			}
			auditchain_hash(line, len, expect);
			have_prev = 1;
			prevpath = path;
			total++;
		}
next_file:
		fclose(fp);
		fp = NULL;
	}
	if (total == 0)
		chain_msg(msg, msglen, "0 lines: nothing to check");
	else if (midchain)
		chain_msg(msg, msglen, "%zu lines in %zu file(s), chain intact; "
		    "starts mid-chain (a rotated file): give the earlier file "
		    "first to check line 1", total, n);
	else
		chain_msg(msg, msglen, "%zu lines in %zu file(s), chain intact "
		    "from the genesis", total, n);
	r = 0;
out:
	if (fp != NULL)
		fclose(fp);
	free(line);
	return r;
}
