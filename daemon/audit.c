/*
 * audit.c: the hash-chained audit log writer (see audit.h, DESIGN 3.9).
 *
 * Owns one O_APPEND descriptor, the chain head (hex SHA-256 of the last
 * line written, or of the file's last line at open) and, in HMAC mode, the
 * context key. Invariants: a.prev changes only after the whole line and
 * its newline reached the file in one write(2); every line is at most
 * AUDIT_MAX_LINE bytes of valid UTF-8 JSON whose last member is "prev", so
 * auditchain_verify accepts what we write; the file never keeps a partial
 * line that we know of (it is cut off, or every later write fails).
 * The line is built in a wipe-on-free buffer: contexts may carry
 * application data. No logging: the caller logs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "audit.h"
#include "buf.h"
#include "err.h"

/* String members of a line: op, key, socket, exe, result, error, detail. */
#define AUDIT_STRING_FIELDS 7
/* Upper bound of everything else with the context as its SHA-256: member
 * names, punctuation, time, numbers at their widest, prev (about 420). */
#define AUDIT_FIXED_MAX 512
/* Pending lines are flushed by the caller once a loop turn; the buffer
 * is bounded (callers flush past AUDIT_FLUSH_AT) and given back when a
 * burst has grown it past AUDIT_KEEP_CAP. */
#define AUDIT_MAX_PENDING (AUDIT_FLUSH_AT + AUDIT_MAX_LINE + 1)
#define AUDIT_KEEP_CAP (64 * 1024)
/* Marks a string member cut to AUDIT_MAX_FIELD. */
#define AUDIT_CUT_MARK "..."

/* With every string at its cap the line still fits, so only the context
 * ever needs replacing. +3: the quotes and a comma. */
_Static_assert(AUDIT_STRING_FIELDS * (AUDIT_MAX_FIELD + 3) + AUDIT_FIXED_MAX
    <= AUDIT_MAX_LINE, "audit string fields must fit in one line");
_Static_assert(AUDIT_MAX_LINE < AUDITCHAIN_MAX_LINE,
    "the verifier must accept every line we write");

struct audit {
	char *path;
	int fd;
	/* A short write left a partial line we could not cut off: appending
	 * after it would glue two lines together, so fail until reopen. */
	int damaged;
	enum audit_ctx_mode mode;
	uint8_t hmac_key[AUDIT_HMAC_KEY_LEN];
	/* The chain head after the last line appended (pending or not). */
	char prev[AUDIT_HASH_HEX + 1];
	/* Lines appended since the last flush, newlines included, and the
	 * head as it was before the first of them (what the file ends with). */
	struct buf pending;
	size_t n_pending;
	char committed[AUDIT_HASH_HEX + 1];
};

static void
audit_hex(const unsigned char *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

/*
 * Length of the UTF-8 sequence at p[0..n) (1 to 4), or 0 when it is not
 * valid UTF-8 (overlong forms, surrogates and code points past U+10FFFF
 * are invalid, as jansson's reader insists).
 */
static size_t
audit_utf8_len(const uint8_t *p, size_t n)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xbf;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/* 1 when p[0..n) can go between JSON quotes as it is and within
 * AUDIT_MAX_FIELD: printable ASCII other than '"' and '\\'. */
static int
audit_plain(const uint8_t *p, size_t n)
{
	if (n > AUDIT_MAX_FIELD)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] >= 0x7f || p[i] == '"' || p[i] == '\\')
			return 0;
	return 1;
}

/*
 * s as a JSON string, or null. At most AUDIT_MAX_FIELD bytes between the
 * quotes: a longer string is cut after a whole character and ends with
 * AUDIT_CUT_MARK. Invalid UTF-8 becomes U+FFFD, one per bad byte.
 */
static int
audit_json_str(struct buf *b, const char *s)
{
	/* JSON's two-character escapes; other control bytes get \u00XX. */
	static const char short_esc[0x20] = {
		['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r',
		['\t'] = 't',
	};
	const uint8_t *p = (const uint8_t *)s;
	size_t n, start, cut = 0, mark = sizeof(AUDIT_CUT_MARK) - 1;
	char esc[8];
	int r;

	if (s == NULL)
		return buf_append(b, "null", 4);
	n = strlen(s);
	if (audit_plain(p, n)) {
		/* Nothing to escape, nothing to cut: the usual case. */
		if ((r = buf_append_byte(b, '"')) != 0 ||
		    (r = buf_append(b, s, n)) != 0)
			return r;
		return buf_append_byte(b, '"');
	}
	if ((r = buf_append_byte(b, '"')) != 0)
		return r;
	start = b->len;
	while (n > 0) {
		const void *out = p;
		size_t in = 1, outlen = 1;

		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			out = esc;
			outlen = 2;
		} else if (*p < 0x20) {
			if (short_esc[*p] != '\0') {
				esc[0] = '\\';
				esc[1] = short_esc[*p];
				outlen = 2;
			} else {
				snprintf(esc, sizeof(esc), "\\u%04x", *p);
				outlen = 6;
			}
			out = esc;
		} else if (*p >= 0x80) {
			if ((in = audit_utf8_len(p, n)) == 0) {
				in = 1;
				out = "\\ufffd";
				outlen = 6;
			} else
				outlen = in;
		}
		if (b->len - start + outlen > AUDIT_MAX_FIELD) {
			/* Drop what follows the last cut point; buf_done
			 * wipes the dropped bytes with the rest. */
			b->len = start + cut;
			if ((r = buf_append_str(b, AUDIT_CUT_MARK)) != 0)
				return r;
			break;
		}
		if ((r = buf_append(b, out, outlen)) != 0)
			return r;
		if (b->len - start + mark <= AUDIT_MAX_FIELD)
			cut = b->len - start;
		p += in;
		n -= in;
	}
	return buf_append_byte(b, '"');
}

static int
audit_member(struct buf *b, const char *name)
{
	char m[32];
	size_t n = 0;

	/* ,"name": in one append (names are our own short literals). */
	m[n++] = ',';
	m[n++] = '"';
	for (const char *p = name; *p != '\0'; p++) {
		if (n == sizeof(m) - 2)
			return ERR_INTERNAL;
		m[n++] = *p;
	}
	m[n++] = '"';
	m[n++] = ':';
	return buf_append(b, m, n);
}

static int
audit_member_str(struct buf *b, const char *name, const char *s)
{
	int r;

	if ((r = audit_member(b, name)) != 0)
		return r;
	return audit_json_str(b, s);
}

static int
audit_num(struct buf *b, intmax_t sv, uintmax_t uv, int is_signed)
{
	char num[24];
	size_t i = sizeof(num);
	int neg = is_signed && sv < 0;

	/* By hand: every entry has four or five numbers. */
	if (is_signed)
		uv = neg ? (uintmax_t)0 - (uintmax_t)sv : (uintmax_t)sv;
	do {
		num[--i] = (char)('0' + uv % 10);
		uv /= 10;
	} while (uv > 0);
	if (neg)
		num[--i] = '-';
	return buf_append(b, num + i, sizeof(num) - i);
}

static int
audit_member_u(struct buf *b, const char *name, uintmax_t v)
{
	int r;

	if ((r = audit_member(b, name)) != 0)
		return r;
	return audit_num(b, 0, v, 0);
}

/* Is ctx safe to embed as it is: one object, valid UTF-8, no raw control
 * byte (a raw newline would split the line)? Not a full parse: the
 * canonical context is produced by our own writer. */
static int
audit_ctx_embeddable(const uint8_t *ctx, size_t len)
{
	size_t i = 0, l;

	if (len < 2 || ctx[0] != '{' || ctx[len - 1] != '}')
		return 0;
	while (i < len) {
		if (ctx[i] < 0x20 || (l = audit_utf8_len(ctx + i, len - i)) == 0)
			return 0;
		i += l;
	}
	return 1;
}

/*
 * The context member(s): "context" (plain, unless digest), "context_hmac"
 * (HMAC mode) or "context_sha256" + "context_truncated" (digest).
 */
static int
audit_context(struct audit *a, const struct audit_entry *e, struct buf *b,
    int digest)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	int r;

	if (e->ctx_json == NULL)
		return 0;
	if (a->mode == AUDIT_CTX_HMAC) {
		if (HMAC(EVP_sha256(), a->hmac_key, sizeof(a->hmac_key),
		    e->ctx_json, e->ctx_json_len, md, &mdlen) == NULL)
			return ERR_INTERNAL;
		audit_hex(md, mdlen, hex);
		if ((r = audit_member(b, "context_hmac")) != 0 ||
		    (r = buf_append_byte(b, '"')) != 0 ||
		    (r = buf_append_str(b, hex)) != 0)
			return r;
		return buf_append_byte(b, '"');
	}
	if (!digest) {
		if (!audit_ctx_embeddable(e->ctx_json, e->ctx_json_len))
			return ERR_INTERNAL;
		if ((r = audit_member(b, "context")) != 0)
			return r;
		return buf_append(b, e->ctx_json, e->ctx_json_len);
	}
	if (EVP_Digest(e->ctx_json, e->ctx_json_len, md, &mdlen, EVP_sha256(),
	    NULL) != 1)
		return ERR_INTERNAL;
	audit_hex(md, mdlen, hex);
	if ((r = audit_member(b, "context_sha256")) != 0 ||
	    (r = buf_append_byte(b, '"')) != 0 ||
	    (r = buf_append_str(b, hex)) != 0 ||
	    (r = buf_append_byte(b, '"')) != 0)
		return r;
	return buf_append_str(b, ",\"context_truncated\":true");
}

static int audit_build_line(struct audit *a, const struct audit_entry *e,
    const char *time, struct buf *b, int digest);

/* Put b back to len bytes, wiping what is cut off (contexts may carry
 * application data). */
static void
audit_truncate(struct buf *b, size_t len)
{
	if (b->len > len) {
		OPENSSL_cleanse(b->data + len, b->len - len);
		b->len = len;
	}
}

/* The whole line (no newline) appended to b from offset start: at most
 * AUDIT_MAX_LINE bytes, else ERR_TOO_LARGE. */
static int
audit_build(struct audit *a, const struct audit_entry *e, const char *time,
    struct buf *b, size_t start, int digest)
{
	int r;

	if ((r = audit_build_line(a, e, time, b, digest)) != 0)
		return r;
	return b->len - start > AUDIT_MAX_LINE ? ERR_TOO_LARGE : 0;
}

static int
audit_build_line(struct audit *a, const struct audit_entry *e,
    const char *time, struct buf *b, int digest)
{
	int r;

	if ((r = buf_append_str(b, "{\"time\":\"")) != 0 ||
	    (r = buf_append_str(b, time)) != 0 ||
	    (r = buf_append_byte(b, '"')) != 0 ||
	    (r = audit_member_str(b, "op", e->op)) != 0 ||
	    (r = audit_member_str(b, "key", e->key)) != 0)
		return r;
	if (e->version != 0 &&
	    (r = audit_member_u(b, "version", e->version)) != 0)
		return r;
	if (e->socket != NULL &&
	    (r = audit_member_str(b, "socket", e->socket)) != 0)
		return r;
	if (e->has_peer) {
		if ((r = audit_member(b, "peer")) != 0 ||
		    (r = buf_append_str(b, "{\"pid\":")) != 0 ||
		    (r = audit_num(b, e->pid, 0, 1)) != 0 ||
		    (r = audit_member_u(b, "uid", e->uid)) != 0 ||
		    (r = audit_member_u(b, "gid", e->gid)) != 0 ||
		    (r = audit_member_str(b, "exe", e->exe)) != 0 ||
		    (r = buf_append_byte(b, '}')) != 0)
			return r;
	}
	if ((r = audit_context(a, e, b, digest)) != 0 ||
	    (r = audit_member_str(b, "result", e->result)) != 0)
		return r;
	if (e->error != NULL &&
	    (r = audit_member_str(b, "error", e->error)) != 0)
		return r;
	if (e->detail != NULL &&
	    (r = audit_member_str(b, "detail", e->detail)) != 0)
		return r;
	if (e->cache_hit &&
	    (r = audit_member_str(b, "cache", "hit")) != 0)
		return r;
	/* prev goes last: auditchain_verify checks the line's tail. */
	if ((r = audit_member_u(b, "duration_us", e->duration_us)) != 0 ||
	    (r = audit_member(b, "prev")) != 0 ||
	    (r = buf_append_byte(b, '"')) != 0 ||
	    (r = buf_append_str(b, a->prev)) != 0 ||
	    (r = buf_append_str(b, "\"}")) != 0)
		return r;
	return 0;
}

/* RFC 3339 UTC with microseconds: 2026-11-28T05:03:41.123456Z */
static int
audit_time(char *out, size_t outlen)
{
	/* The text up to the seconds is kept per second: only the
	 * microseconds change between most entries. */
	static time_t sec = -1;
	static char head[32];
	static size_t head_len;
	struct timespec ts;
	struct tm tm;
	long us;
	int n;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return -1;
	if (ts.tv_sec != sec) {
		if (gmtime_r(&ts.tv_sec, &tm) == NULL)
			return -1;
		n = snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d.",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
		if (n < 0 || (size_t)n >= sizeof(head))
			return -1;
		head_len = (size_t)n;
		sec = ts.tv_sec;
	}
	if (outlen < head_len + 8)
		return -1;
	memcpy(out, head, head_len);
	us = ts.tv_nsec / 1000;
	for (int i = 5; i >= 0; i--) {
		out[head_len + (size_t)i] = (char)('0' + us % 10);
		us /= 10;
	}
	out[head_len + 6] = 'Z';
	out[head_len + 7] = '\0';
	return 0;
}

/*
 * A write of len bytes put only done of them at the end of the file: cut
 * them off again so the next line starts on a line boundary. Assumes we
 * are the only writer (kmsd is). Best effort: a device or pipe cannot be
 * cut, and then the log is marked damaged.
 */
static void
audit_cut(struct audit *a, size_t done)
{
	struct stat st;

	if (fstat(a->fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uintmax_t)st.st_size < done ||
	    ftruncate(a->fd, st.st_size - (off_t)done) != 0)
		a->damaged = 1;
}

int
audit_append(struct audit *a, const struct audit_entry *e)
{
	char time[64];
	size_t start;
	int r;

	if (a == NULL || a->fd == -1 || a->damaged)
		return ERR_AUDIT_UNAVAILABLE;
	if (audit_time(time, sizeof(time)) != 0)
		return ERR_AUDIT_UNAVAILABLE;
	/* Built in place at the end of the pending lines. */
	start = a->pending.len;
	r = audit_build(a, e, time, &a->pending, start, 0);
	if (r == ERR_TOO_LARGE && a->mode == AUDIT_CTX_PLAIN &&
	    e->ctx_json != NULL) {
		/* Only the context can overflow (see the _Static_assert). */
		audit_truncate(&a->pending, start);
		r = audit_build(a, e, time, &a->pending, start, 1);
	}
	if (r != 0 || buf_append_byte(&a->pending, '\n') != 0) {
		audit_truncate(&a->pending, start);
		return ERR_AUDIT_UNAVAILABLE;
	}
	if (a->n_pending++ == 0)
		memcpy(a->committed, a->prev, sizeof(a->prev));
	auditchain_hash((const char *)a->pending.data + start,
	    a->pending.len - start - 1, a->prev);
	return 0;
}

int
audit_flush(struct audit *a)
{
	ssize_t n;
	int r = 0;

	if (a == NULL || a->n_pending == 0)
		return 0;
	/* One write(2): O_APPEND puts the lines at the end as one piece, so
	 * the file only ever grows by whole lines. */
	do
		n = write(a->fd, a->pending.data, a->pending.len);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)a->pending.len) {
		if (n > 0)
			audit_cut(a, (size_t)n);
		/* None of them is in the file: the chain goes on from the
		 * last line that is. */
		memcpy(a->prev, a->committed, sizeof(a->prev));
		r = ERR_AUDIT_UNAVAILABLE;
	}
	a->n_pending = 0;
	buf_clear(&a->pending);
	if (a->pending.cap > AUDIT_KEEP_CAP)
		buf_done(&a->pending);
	return r;
}

size_t
audit_pending(const struct audit *a)
{
	return a == NULL ? 0 : a->pending.len;
}

int
audit_write(struct audit *a, const struct audit_entry *e)
{
	int r;

	if ((r = audit_append(a, e)) != 0)
		return r;
	return audit_flush(a);
}

/*
 * Hash of the last line of the regular file open on fd (size bytes) into
 * out. Refuses a last line with no newline or without a "prev" tail: that
 * file was not left by a clean kmsd write, and appending to it would hide
 * the damage in a chain break; the operator must look first.
 */
static int
audit_read_tail(int fd, off_t size, char out[AUDIT_HASH_HEX + 1], char *err,
    size_t errlen)
{
	char tail[AUDIT_HASH_HEX + 1];
	char *p = NULL;
	const char *nl, *line;
	size_t want, got = 0, len;
	ssize_t n;
	int r = -1;

	/* The longest line the verifier accepts, its newline and the one
	 * before it; a longer last line is damage too. */
	want = (uintmax_t)size < AUDITCHAIN_MAX_LINE + 2 ? (size_t)size :
	    AUDITCHAIN_MAX_LINE + 2;
	if ((p = malloc(want)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while (got < want) {
		n = pread(fd, p + got, want - got,
		    size - (off_t)want + (off_t)got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "cannot read its last line: %s",
			    n == 0 ? "the file shrank" : strerror(errno));
			goto out;
		}
		got += (size_t)n;
	}
	if (p[want - 1] != '\n') {
		snprintf(err, errlen, "the last line is incomplete (no "
		    "newline at the end); look at the file before kmsd "
		    "appends to it");
		goto out;
	}
	nl = want > 1 ? memrchr(p, '\n', want - 1) : NULL;
	if (nl == NULL && (uintmax_t)want < (uintmax_t)size) {
		snprintf(err, errlen, "the last line is longer than %d bytes",
		    AUDITCHAIN_MAX_LINE);
		goto out;
	}
	line = nl == NULL ? p : nl + 1;
	len = (size_t)(p + want - 1 - line);
	if (auditchain_line_prev(line, len, tail) != 0) {
		snprintf(err, errlen, "the last line is not an audit entry "
		    "(it does not end with \"prev\"); look at the file "
		    "before kmsd appends to it");
		goto out;
	}
	auditchain_hash(line, len, out);
	r = 0;
out:
	free(p);
	return r;
}

/*
 * Open path for appending; when it is a non-empty regular file, put the
 * hash of its last line in tail and set *has_tail. Devices and pipes
 * (/dev/null, /dev/full) have no last line to read.
 */
static int
audit_open_file(const char *path, int *ret_fd, char tail[AUDIT_HASH_HEX + 1],
    int *has_tail, char *err, size_t errlen)
{
	struct stat st, rst;
	int fd = -1, rfd = -1, r = -1;

	/* O_NOFOLLOW: a symlink planted at the path must not redirect
	 * root's appends. O_NONBLOCK: a FIFO with no reader fails at once
	 * instead of hanging the daemon (no effect on regular files). */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0600);
	if (fd == -1) {
		if (errno == ELOOP)
			snprintf(err, errlen, "the path is a symbolic link: "
			    "refused");
		else
			snprintf(err, errlen, "cannot open: %s",
			    strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "fstat: %s", strerror(errno));
		goto out;
	}
	*has_tail = 0;
	if (S_ISREG(st.st_mode) && st.st_size > 0) {
		/* The append descriptor is write-only; read through a second
		 * one and make sure it is the same file. */
		rfd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
		if (rfd == -1 || fstat(rfd, &rst) != 0) {
			snprintf(err, errlen, "cannot open it for reading: %s",
			    strerror(errno));
			goto out;
		}
		if (rst.st_dev != st.st_dev || rst.st_ino != st.st_ino) {
			snprintf(err, errlen, "the file was replaced while "
			    "being opened");
			goto out;
		}
		if (audit_read_tail(rfd, rst.st_size, tail, err, errlen) != 0)
			goto out;
		*has_tail = 1;
	}
	*ret_fd = fd;
	fd = -1;
	r = 0;
out:
	if (fd != -1)
		close(fd);
	if (rfd != -1)
		close(rfd);
	return r;
}

int
audit_open(const char *path, enum audit_ctx_mode mode,
    const uint8_t *hmac_key, struct audit **ret, char *err, size_t errlen)
{
	struct audit *a = NULL;
	char tail[AUDIT_HASH_HEX + 1];
	int has_tail = 0, r = -1;

	snprintf(err, errlen, "%s", "");
	if (mode != AUDIT_CTX_PLAIN && mode != AUDIT_CTX_HMAC) {
		snprintf(err, errlen, "bad context mode");
		goto out;
	}
	if (mode == AUDIT_CTX_HMAC && hmac_key == NULL) {
		snprintf(err, errlen, "HMAC mode needs a key");
		goto out;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	a->fd = -1;
	if ((a->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	a->mode = mode;
	if (mode == AUDIT_CTX_HMAC)
		memcpy(a->hmac_key, hmac_key, sizeof(a->hmac_key));
	if (audit_open_file(path, &a->fd, tail, &has_tail, err, errlen) != 0)
		goto out;
	/* An existing file continues its own chain; a new one starts it. */
	memcpy(a->prev, has_tail ? tail : AUDIT_GENESIS, sizeof(a->prev));
	buf_init(&a->pending, AUDIT_MAX_PENDING);
	*ret = a;
	a = NULL;
	r = 0;
out:
	audit_close(a);
	return r;
}

int
audit_reopen(struct audit *a, char *err, size_t errlen)
{
	char tail[AUDIT_HASH_HEX + 1];
	int fd = -1, has_tail = 0;

	snprintf(err, errlen, "%s", "");
	if (a->n_pending != 0) {
		/* The caller flushes first (its answers wait on the result). */
		snprintf(err, errlen, "entries not yet written");
		return -1;
	}
	if (audit_open_file(a->path, &fd, tail, &has_tail, err, errlen) != 0)
		return -1;
	if (a->fd != -1)
		close(a->fd);
	a->fd = fd;
	/* The old file's partial line stays behind in the old file. */
	a->damaged = 0;
	/* Usually the new file is empty (rotated) or is the one we were
	 * writing (reload). Anything else: its own last line is what a
	 * verifier will check our next line against. */
	if (has_tail && strcmp(tail, a->prev) != 0) {
		snprintf(err, errlen, "its last line is not the last line "
		    "kmsd wrote; continuing the chain from the file's last "
		    "line");
		memcpy(a->prev, tail, sizeof(a->prev));
	}
	return 0;
}

const char *
audit_head(const struct audit *a)
{
	return a->prev;
}

void
audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	/* Lines not flushed were never answered for: nothing is lost by
	 * dropping them, and they may hold contexts. */
	buf_done(&a->pending);
	if (a->fd != -1)
		close(a->fd);
	free(a->path);
	/* The HMAC key would let anyone holding a memory image test
	 * guesses of contexts against the log. */
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}
