/*
 * vault.c: HashiCorp Vault / OpenBao transit keys (key ids `vault/NAME`).
 *
 * Owns one session per distinct [vault] configuration, shared by every
 * key version that uses it and kept across reloads that do not change it:
 * the token, its renewal timer, the one auth sub-request (AppRole login,
 * token lookup-self or renew-self) that may be in flight, the queue of
 * requests waiting for a token, and the session's http_client (shared
 * transport, http.c: deadline, retries, in-flight bound, queue and busy).
 *
 * Protocol (PROVIDERS.md D): POST {mount}/encrypt|decrypt|rewrap/NAME with
 * `plaintext` and `context` as kms_encrypted sends them (Ruby's
 * Base64.encode64 text, newlines included: Vault's decoder skips them and
 * its audit log then holds the same HMACs as for the gem); the provider
 * ciphertext kept in the stored value is the bytes of Vault's own
 * "vault:vK:..." string; context_hash is sys/audit-hash/PATH over exactly
 * the context string we send.
 *
 * Invariants:
 * - The loop never blocks on the network: login, lookup and renewal are
 *   asynchronous requests through http.c. Reading a token or AppRole file
 *   is local and small (at open, at login, and once after a refusal).
 * - A request runs only with a token believed valid; otherwise it waits
 *   (bounded by max_queue) behind the one login, and all waiters go when
 *   it ends, or fail with its error.
 * - Each request re-authenticates at most once: a 401/403 answer with a
 *   token that may be stale makes one AppRole login (or one re-read of the
 *   token file) and one retry; a second refusal is provider_denied.
 * - The token lives only in the session's wipe-on-free buffer and in the
 *   header http.c builds per try and wipes; it is never logged and never
 *   in a message. Bodies carrying plaintexts are wiped buffers.
 * - Every op holds a reference on its session, so a session outlives its
 *   keys until its last request has completed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "config.h"
#include "err.h"
#include "http.h"
#include "log.h"
#include "provider.h"
#include "turn.h"
#include "vault_parse.h"

#define VAULT_PREFIX "vault/"
#define VAULT_PREFIX_LEN (sizeof(VAULT_PREFIX) - 1)
/* kms_encrypted hard-codes the transit engine at transit/. */
#define VAULT_DEFAULT_MOUNT "transit"
/* Longest address: a URL with a host, a port and maybe a path prefix. */
#define VAULT_MAX_ADDR 1024
/* A request body: the context JSON may reach ~6x a 64 KiB frame once
 * escaped (ops.c), and base64 adds a third and a newline every 60. */
#define VAULT_MAX_BODY (1024 * 1024)
/* Renew (or log in again) when two thirds of the TTL have passed: the
 * last third is time for a slow or briefly unreachable Vault. */
#define VAULT_RENEW_NUM 2
#define VAULT_RENEW_DEN 3
/* A failed renewal or lookup is tried again this much later, doubling
 * with each failure in a row up to the cap (a Vault that is down for an
 * hour gets a try a minute, not a log line every two seconds), and never
 * later than halfway to the token's expiry. */
#define VAULT_AUTH_RETRY_MS 2000
#define VAULT_AUTH_RETRY_MAX_MS 60000
/* After a failed login, requests fail at once with its error for this
 * long instead of each starting another login against a Vault that just
 * refused (no login storm). */
#define VAULT_LOGIN_HOLDOFF_MS 1000
/* A 403 for a token younger than this is a policy refusal, not a stale
 * token: no re-login, or every request to a denied path would log in. */
#define VAULT_RELOGIN_MIN_MS 1000
/* A token this close to its expiry counts as expired: a request sent now
 * could reach Vault after it. */
#define VAULT_EXPIRY_MARGIN_MS 250
/* Shortest timer step, so a tiny TTL cannot make the loop spin. */
#define VAULT_MIN_TIMER_MS 100
/* Limits on [vault] max_inflight / max_queue: beyond these a single
 * daemon is misconfigured rather than busy. */
#define VAULT_MAX_INFLIGHT 1024
#define VAULT_MAX_QUEUE 100000

enum vault_mode {
	VAULT_MODE_TOKEN = 0,	/* token_file, VAULT_TOKEN, ~/.vault-token */
	VAULT_MODE_APPROLE = 1,	/* role_id_file + secret_id_file */
};

/* The auth sub-request in flight (at most one). */
enum vault_job {
	VAULT_JOB_NONE = 0,
	VAULT_JOB_LOGIN,
	VAULT_JOB_LOOKUP,
	VAULT_JOB_RENEW,
};

/* What the session timer does when it fires. */
enum vault_next {
	VAULT_NEXT_NONE = 0,
	VAULT_NEXT_RENEW,	/* renew-self */
	VAULT_NEXT_LOGIN,	/* AppRole login */
	VAULT_NEXT_RELOAD,	/* re-read the token file */
	VAULT_NEXT_LOOKUP,	/* lookup-self again after a failure */
};

/* The [vault] section plus the environment, before a session exists.
 * Strings point into the config or the environment. */
struct vault_settings {
	const char *addr;
	const char *mount;
	const char *ns;
	const char *ca_file;
	const char *token_file;
	const char *role_id_file;
	const char *secret_id_file;
	unsigned timeout_ms;
	unsigned max_inflight;
	unsigned max_queue;
	/* file options after "credential:NAME" resolution (config.h) */
	char ca_buf[PATH_MAX];
	char token_buf[PATH_MAX];
	char role_buf[PATH_MAX];
	char secret_buf[PATH_MAX];
};

struct vault_op;
TAILQ_HEAD(vault_op_list, vault_op);

struct vault_sess {
	LIST_ENTRY(vault_sess) link;
	unsigned refs;			/* keys + ops + guards */
	char *id;			/* the settings, to share equal ones */
	struct event_base *base;
	struct http_client *hc;
	char *addr;			/* no trailing '/' */
	char *mount;			/* no trailing '/' */
	char *ns;			/* NULL: no namespace header */
	unsigned timeout_ms;
	unsigned max_queue;
	enum vault_mode mode;
	char *token_path;		/* token mode: file to re-read */
	const char *token_src;		/* for messages: where the token is */
	char *role_id_file;
	char *secret_id_file;

	struct buf token;		/* NUL-terminated when have_token */
	int have_token;
	int valid;			/* not refused since it was obtained */
	unsigned gen;			/* bumped when the token changes */
	uint64_t token_at_us;		/* when the current token came */
	uint64_t expires_us;		/* 0: no expiry known */
	uint64_t login_ttl_ms;		/* AppRole: the last login's TTL */
	int renewable;

	struct event *timer;
	enum vault_next next;

	enum vault_job job;
	struct http_req areq;
	struct buf abody;
	char *aurl;

	unsigned auth_failures;		/* transient auth failures in a row */
	uint64_t fail_at_us;		/* last failed login, 0 = none */
	int fail_err;
	char fail_msg[PROV_MSG_LEN];

	struct vault_op_list ops;	/* every op of this session */
	struct vault_op_list waiting;	/* ops waiting for a token */
	unsigned nwaiting;
};

struct vault_key {
	struct vault_sess *sess;
	char name[VAULT_MAX_NAME + 1];
};

/* The rewrap that transit cannot do in one call (another key or another
 * context): decrypt, then encrypt here, the data key held in pt. */
enum vault_phase {
	VAULT_PHASE_ONE = 0,		/* one Vault call does it all */
	VAULT_PHASE_UNWRAP,		/* fallback rewrap, first half */
	VAULT_PHASE_WRAP,		/* fallback rewrap, second half */
};

struct vault_op {
	TAILQ_ENTRY(vault_op) link;	/* sess->ops */
	TAILQ_ENTRY(vault_op) wlink;	/* sess->waiting */
	struct vault_sess *sess;
	struct prov_call *call;
	enum vault_req kind;
	enum vault_phase phase;
	int waiting;
	int in_http;
	int auth_retried;		/* one re-login / re-read per op */
	unsigned gen;			/* token generation of the last try */
	char *url;
	struct buf body;		/* may hold a plaintext: wiped */
	struct http_req req;
	char to_name[VAULT_MAX_NAME + 1];	/* fallback rewrap target */
	struct buf pt;			/* fallback rewrap: the data key */
};

static LIST_HEAD(, vault_sess) vault_sessions =
    LIST_HEAD_INITIALIZER(vault_sessions);

static void vault_sess_get_token(struct vault_sess *s);
static void vault_sess_submit(struct vault_op *op);
static void vault_job_start(struct vault_sess *s, enum vault_job job);

static uint64_t
vault_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void vault_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
vault_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const char *
vault_req_name(enum vault_req kind)
{
	switch (kind) {
	case VAULT_REQ_ENCRYPT:
		return "encrypt";
	case VAULT_REQ_DECRYPT:
		return "decrypt";
	case VAULT_REQ_REWRAP:
		return "rewrap";
	case VAULT_REQ_AUDIT_HASH:
		return "audit-hash";
	case VAULT_REQ_LOGIN:
		return "AppRole login";
	case VAULT_REQ_LOOKUP:
		return "token lookup-self";
	case VAULT_REQ_RENEW:
		return "token renew-self";
	}
	return "request";
}

/* ---- settings ---- */

static int
vault_match(const char *key_id)
{
	/* Every vault/ id is ours, valid or not, so a bad NAME gets open()'s
	 * clear message instead of falling through to AWS. */
	return strncmp(key_id, VAULT_PREFIX, VAULT_PREFIX_LEN) == 0;
}

/* NULL when a is a usable address, else why not. */
static const char *
vault_addr_problem(const char *a)
{
	size_t n = strlen(a);

	if (n == 0 || n > VAULT_MAX_ADDR)
		return "empty or too long";
	if (strncmp(a, "https://", 8) != 0 && strncmp(a, "http://", 7) != 0)
		return "must start with https:// (or http:// for loopback)";
	if (strpbrk(a, "?#") != NULL)
		return "must not have a query or fragment";
	if (!http_url_allowed(a))
		return "plain http:// is for loopback addresses only; use "
		    "https://";
	return NULL;
}

/* Files are read when used (a token agent may create them later); only
 * what is wrong on its face is refused here. */
/* A file option: a path, or "credential:NAME" for a systemd credential;
 * resolved into buf. NULL with why set when it cannot be. */
static const char *
vault_file_option(const char *v, char *buf, size_t len, char *why,
    size_t whylen)
{
	if (v[0] == '\0') {
		snprintf(why, whylen, "empty path");
		return NULL;
	}
	if (config_file_path(v, buf, len, why, whylen) != 0)
		return NULL;
	return buf;
}

/* Read cfg's [vault] section (sec may be NULL) into st; FILE:LINE
 * errors. The environment is not looked at here. */
static int
vault_settings_read(const struct config *cfg, const struct cfg_section *sec,
    struct vault_settings *st, char *err, size_t errlen)
{
	int role_line = 0, secret_line = 0, token_line = 0;
	char why[128];

	memset(st, 0, sizeof(*st));
	st->timeout_ms = HTTP_DEFAULT_DEADLINE_MS;
	st->max_inflight = HTTP_DEFAULT_MAX_INFLIGHT;
	st->max_queue = HTTP_DEFAULT_MAX_QUEUE;
	for (size_t i = 0; sec != NULL && i < sec->n; i++) {
		const struct cfg_opt *o = &sec->opts[i];
		const char *v = o->value, *p;

		why[0] = '\0';
		if (strcmp(o->name, "address") == 0) {
			if ((p = vault_addr_problem(v)) != NULL)
				snprintf(why, sizeof(why), "%s", p);
			st->addr = v;
		} else if (strcmp(o->name, "mount") == 0) {
			if (!vault_path_valid(v, strlen(v)))
				snprintf(why, sizeof(why), "not a Vault path "
				    "(segments of A-Z a-z 0-9 _ . -)");
			st->mount = v;
		} else if (strcmp(o->name, "namespace") == 0) {
			if (!vault_path_valid(v, strlen(v)))
				snprintf(why, sizeof(why), "not a Vault "
				    "namespace path (like ns1/ns2)");
			st->ns = v;
		} else if (strcmp(o->name, "ca_file") == 0) {
			st->ca_file = vault_file_option(v, st->ca_buf,
			    sizeof(st->ca_buf), why, sizeof(why));
		} else if (strcmp(o->name, "token_file") == 0) {
			st->token_file = vault_file_option(v, st->token_buf,
			    sizeof(st->token_buf), why, sizeof(why));
			token_line = o->line;
		} else if (strcmp(o->name, "role_id_file") == 0) {
			st->role_id_file = vault_file_option(v, st->role_buf,
			    sizeof(st->role_buf), why, sizeof(why));
			role_line = o->line;
		} else if (strcmp(o->name, "secret_id_file") == 0) {
			st->secret_id_file = vault_file_option(v, st->secret_buf,
			    sizeof(st->secret_buf), why, sizeof(why));
			secret_line = o->line;
		} else if (strcmp(o->name, "timeout") == 0) {
			if (vault_parse_duration(v, &st->timeout_ms) != 0)
				snprintf(why, sizeof(why), "want a duration "
				    "like 2s or 500ms, at most 10m");
		} else if (strcmp(o->name, "max_inflight") == 0) {
			if (vault_parse_count(v, 1, VAULT_MAX_INFLIGHT,
			    &st->max_inflight) != 0)
				snprintf(why, sizeof(why), "want 1 to %u",
				    (unsigned)VAULT_MAX_INFLIGHT);
		} else if (strcmp(o->name, "max_queue") == 0) {
			if (vault_parse_count(v, 1, VAULT_MAX_QUEUE,
			    &st->max_queue) != 0)
				snprintf(why, sizeof(why), "want 1 to %u",
				    (unsigned)VAULT_MAX_QUEUE);
		} else {
			vault_err(err, errlen, "%s:%d: unknown option '%s' in "
			    "[vault] (expected address, token_file, "
			    "role_id_file, secret_id_file, namespace, ca_file, "
			    "mount, timeout, max_inflight, max_queue)",
			    cfg->path, o->line, o->name);
			return -1;
		}
		if (why[0] != '\0') {
			vault_err(err, errlen, "%s:%d: [vault] %s: %s",
			    cfg->path, o->line, o->name, why);
			return -1;
		}
	}
	if ((st->role_id_file == NULL) != (st->secret_id_file == NULL)) {
		vault_err(err, errlen, "%s:%d: [vault] AppRole needs both "
		    "role_id_file and secret_id_file", cfg->path,
		    role_line != 0 ? role_line : secret_line);
		return -1;
	}
	if (st->role_id_file != NULL && st->token_file != NULL) {
		vault_err(err, errlen, "%s:%d: [vault] token_file and AppRole "
		    "(role_id_file, secret_id_file) exclude each other",
		    cfg->path, token_line);
		return -1;
	}
	return 0;
}

/* The environment fills what the section left unset (VAULT_ADDR,
 * VAULT_NAMESPACE, VAULT_CACERT, as Vault's own client reads them). */
static int
vault_settings_env(struct vault_settings *st, char *err, size_t errlen)
{
	const char *v, *p;

	if (st->addr == NULL && (v = getenv("VAULT_ADDR")) != NULL &&
	    v[0] != '\0') {
		if ((p = vault_addr_problem(v)) != NULL) {
			vault_err(err, errlen, "VAULT_ADDR: %s", p);
			return -1;
		}
		st->addr = v;
	}
	if (st->addr == NULL) {
		vault_err(err, errlen, "no Vault address: set [vault] address "
		    "or VAULT_ADDR");
		return -1;
	}
	if (st->ns == NULL && (v = getenv("VAULT_NAMESPACE")) != NULL &&
	    v[0] != '\0') {
		if (!vault_path_valid(v, strlen(v))) {
			vault_err(err, errlen, "VAULT_NAMESPACE is not a "
			    "namespace path (like ns1/ns2)");
			return -1;
		}
		st->ns = v;
	}
	if (st->ca_file == NULL && (v = getenv("VAULT_CACERT")) != NULL &&
	    v[0] != '\0')
		st->ca_file = v;
	if (st->mount == NULL)
		st->mount = VAULT_DEFAULT_MOUNT;
	return 0;
}

static int
vault_check_config(const struct config *cfg, const struct cfg_section *sec,
    char *err, size_t errlen)
{
	struct vault_settings st;

	return vault_settings_read(cfg, sec, &st, err, errlen);
}

/* ---- files ---- */

/*
 * A token, role id or secret id file into out (NUL-terminated). The file
 * may be a symbolic link (Kubernetes secret volumes are), must be a
 * regular file and small. 0 or -1 with why (never the contents).
 */
static int
vault_read_secret(const char *path, struct buf *out, char *why, size_t whylen)
{
	uint8_t chunk[512];
	struct stat sb;
	ssize_t n;
	int fd, r = -1;

	buf_clear(out);
	/* O_NONBLOCK: a FIFO put at the path must not stall the loop on
	 * open; only a regular file is read. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK)) < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(why, whylen, "%s: not a regular file", path);
		goto out;
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, whylen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (out->len + (size_t)n > VAULT_MAX_SECRET + 2 ||
		    buf_append(out, chunk, (size_t)n) != 0) {
			snprintf(why, whylen, "%s: larger than a token", path);
			goto out;
		}
	}
	if (vault_secret_clean(out) != 0) {
		snprintf(why, whylen, "%s: empty, or not one line of "
		    "printable text", path);
		goto out;
	}
	r = 0;
out:
	OPENSSL_cleanse(chunk, sizeof(chunk));
	if (r != 0)
		buf_clear(out);
	close(fd);
	return r;
}

/* ---- session ---- */

static void
vault_sess_ref(struct vault_sess *s)
{
	s->refs++;
}

static void
vault_sess_free(struct vault_sess *s)
{
	LIST_REMOVE(s, link);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->job != VAULT_JOB_NONE)
		http_cancel(&s->areq);
	/* No op is left: each holds a reference. */
	http_client_free(s->hc);
	buf_done(&s->token);
	buf_done(&s->abody);
	free(s->aurl);
	free(s->id);
	free(s->addr);
	free(s->mount);
	free(s->ns);
	free(s->token_path);
	free(s->role_id_file);
	free(s->secret_id_file);
	free(s);
}

static void
vault_sess_unref(struct vault_sess *s)
{
	if (s != NULL && --s->refs == 0)
		vault_sess_free(s);
}

static int
vault_sess_usable(const struct vault_sess *s)
{
	return s->have_token && s->valid && (s->expires_us == 0 ||
	    vault_now_us() + VAULT_EXPIRY_MARGIN_MS * 1000u < s->expires_us);
}

static void
vault_sess_schedule(struct vault_sess *s, enum vault_next next,
    uint64_t delay_ms)
{
	struct timeval tv;

	if (delay_ms < VAULT_MIN_TIMER_MS)
		delay_ms = VAULT_MIN_TIMER_MS;
	s->next = next;
	tv.tv_sec = (time_t)(delay_ms / 1000);
	tv.tv_usec = (suseconds_t)((delay_ms % 1000) * 1000);
	evtimer_add(s->timer, &tv);
}

/* The renewal point of a TTL: two thirds of it. */
static uint64_t
vault_renew_at_ms(uint64_t ttl_ms)
{
	return ttl_ms / VAULT_RENEW_DEN * VAULT_RENEW_NUM;
}

/* When to try again after a transient failure: soon, and well before the
 * token expires. */
static uint64_t
vault_retry_ms(struct vault_sess *s)
{
	uint64_t now = vault_now_us(), left, ms = VAULT_AUTH_RETRY_MS;

	for (unsigned i = 0; i < s->auth_failures &&
	    ms < VAULT_AUTH_RETRY_MAX_MS; i++)
		ms *= 2;
	if (ms > VAULT_AUTH_RETRY_MAX_MS)
		ms = VAULT_AUTH_RETRY_MAX_MS;
	s->auth_failures++;
	if (s->expires_us == 0)
		return ms;
	left = s->expires_us > now ? (s->expires_us - now) / 1000 : 0;
	return left / 2 < ms ? left / 2 : ms;
}

static void
vault_sess_set_lease(struct vault_sess *s, const struct vault_lease *l)
{
	s->expires_us = l->ttl_s == 0 ? 0 :
	    vault_now_us() + l->ttl_s * 1000000u;
	s->renewable = l->renewable;
}

/* Install a new token (from a login, a renewal that changed it, or the
 * token file). */
static void
vault_sess_set_token(struct vault_sess *s, struct buf *tok)
{
	struct buf old = s->token;

	s->token = *tok;
	*tok = old;
	buf_clear(tok);
	s->have_token = 1;
	s->valid = 1;
	s->gen++;
	s->token_at_us = vault_now_us();
	s->expires_us = 0;
}

static int
vault_same_token(const struct vault_sess *s, const struct buf *tok)
{
	return s->have_token && s->token.len == tok->len &&
	    CRYPTO_memcmp(s->token.data, tok->data, tok->len) == 0;
}

/* Token mode: read the token source again. 1 when it holds a new token
 * (installed, lookup started), 0 when unchanged or unreadable. */
static int
vault_sess_reload_token(struct vault_sess *s)
{
	struct buf tok;
	char why[PATH_MAX + 64];
	int r = 0;

	if (s->token_path == NULL)
		return 0;
	buf_init(&tok, VAULT_MAX_SECRET + 3);
	if (vault_read_secret(s->token_path, &tok, why, sizeof(why)) != 0)
		log_warn("vault: cannot read the token again: %s", why);
	else if (!vault_same_token(s, &tok)) {
		vault_sess_set_token(s, &tok);
		log_info("vault: new token read from %s", s->token_path);
		vault_job_start(s, VAULT_JOB_LOOKUP);
		r = 1;
	}
	buf_done(&tok);
	return r;
}

/* ---- ops ---- */

static void
vault_op_free(struct vault_op *op)
{
	free(op->url);
	buf_done(&op->body);
	buf_done(&op->pt);
	free(op);
}

/* The single exit of an op: unlink, wipe, then complete the call. */
static void
vault_op_finish(struct vault_op *op, int err, const char *msg)
{
	struct vault_sess *s = op->sess;
	struct prov_call *call = op->call;

	TAILQ_REMOVE(&s->ops, op, link);
	if (op->waiting) {
		TAILQ_REMOVE(&s->waiting, op, wlink);
		s->nwaiting--;
	}
	if (op->in_http)
		http_cancel(&op->req);
	vault_op_free(op);
	if (err != 0)
		provider_fail(call, err, "%s", msg);
	else {
		call->err = 0;
		call->msg[0] = '\0';
		call->done(call);
	}
	vault_sess_unref(s);
}

static void vault_op_fail(struct vault_op *op, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
vault_op_fail(struct vault_op *op, int err, const char *fmt, ...)
{
	char msg[PROV_MSG_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vault_op_finish(op, err, msg);
}

/* Headers of every try; the token header is rebuilt (and wiped by
 * http.c) per try, so a refreshed token is picked up by retries. */
static int
vault_headers(struct vault_sess *s, struct http_req *r, int with_token)
{
	int rc;

	if (with_token && (rc = http_req_header(r, "X-Vault-Token",
	    (const char *)s->token.data)) != 0)
		return rc;
	if (s->ns != NULL && (rc = http_req_header(r, "X-Vault-Namespace",
	    s->ns)) != 0)
		return rc;
	if ((rc = http_req_header(r, "X-Vault-Request", "true")) != 0)
		return rc;
	if (strcmp(r->method, "POST") == 0)
		return http_req_header(r, "Content-Type", "application/json");
	return 0;
}

static int
vault_op_prepare(struct http_req *r)
{
	struct vault_op *op = r->arg;
	struct vault_sess *s = op->sess;

	if (!s->have_token)
		return ERR_PROVIDER_DENIED;
	op->gen = s->gen;
	return vault_headers(s, r, 1);
}

static enum http_verdict
vault_op_classify(struct http_req *r, long status, const struct buf *body)
{
	struct vault_op *op = r->arg;
	struct vault_sess *s = op->sess;
	struct vault_error e;

	if (r->transport_err)
		return HTTP_RETRY;
	if (status >= 200 && status <= 299)
		return HTTP_DONE;
	/* Another request already replaced the token this try used. */
	if ((status == 401 || status == 403) && op->gen != s->gen &&
	    vault_sess_usable(s))
		return HTTP_RETRY_FRESH;
	vault_error_map(op->kind, status, (const char *)body->data, body->len,
	    &e);
	return e.retryable ? HTTP_RETRY : HTTP_DONE;
}

/* A 401/403: maybe one re-login (or token file re-read) and a retry. */
static void
vault_op_refused(struct vault_op *op, const struct vault_error *e)
{
	struct vault_sess *s = op->sess;

	if (!op->auth_retried) {
		op->auth_retried = 1;
		if (op->gen != s->gen && vault_sess_usable(s)) {
			vault_sess_submit(op);
			return;
		}
		if (s->mode == VAULT_MODE_APPROLE && s->valid &&
		    vault_now_us() - s->token_at_us >=
		    VAULT_RELOGIN_MIN_MS * 1000u) {
			log_info("vault: Vault refused the token (%ld); "
			    "logging in again", e->status);
			s->valid = 0;
			vault_sess_submit(op);
			return;
		}
		if (s->mode == VAULT_MODE_APPROLE && !s->valid) {
			/* A login is already due: wait for it. */
			vault_sess_submit(op);
			return;
		}
		if (s->mode == VAULT_MODE_TOKEN &&
		    vault_sess_reload_token(s) == 1) {
			vault_sess_submit(op);
			return;
		}
	}
	vault_op_fail(op, ERR_PROVIDER_DENIED, "Vault denied %s (%ld): %s",
	    vault_req_name(op->kind), e->status, e->text[0] != '\0' ?
	    e->text : "permission denied");
}

static int vault_op_setup(struct vault_op *op, enum vault_req kind,
    const char *name, const uint8_t *in, size_t in_len,
    const uint8_t *ctx_json, size_t ctx_len);

/* The fallback rewrap's first half is done: wrap the data key again. */
static void
vault_op_rewrap_second(struct vault_op *op)
{
	const struct prov_call *call = op->call;
	int present = call->new_ctx != NULL && call->new_ctx->present;
	int rc;

	op->phase = VAULT_PHASE_WRAP;
	op->auth_retried = 0;
	rc = vault_op_setup(op, VAULT_REQ_ENCRYPT, op->to_name, op->pt.data,
	    op->pt.len, present ? call->new_ctx_json : NULL,
	    present ? call->new_ctx_json_len : 0);
	buf_clear(&op->pt);
	if (rc != 0) {
		vault_op_fail(op, rc == ERR_NOMEM ? ERR_NOMEM : ERR_TOO_LARGE,
		    "cannot build the Vault request");
		return;
	}
	vault_sess_submit(op);
}

static void
vault_op_done(struct http_req *r, int err, long status, const struct buf *body)
{
	struct vault_op *op = r->arg;
	struct vault_sess *s = op->sess;
	struct vault_error e;
	char why[PROV_MSG_LEN];
	int rc;

	/* The body stays until the op ends: a 403 retry sends it again. */
	op->in_http = 0;
	switch (err) {
	case 0:
		break;
	case ERR_TIMEOUT:
		vault_op_fail(op, ERR_PROVIDER_UNAVAILABLE, "Vault %s: no "
		    "answer within the %u ms timeout", vault_req_name(op->kind),
		    s->timeout_ms);
		return;
	case ERR_BUSY:
		vault_op_fail(op, ERR_BUSY, "too many Vault requests queued");
		return;
	case ERR_PROVIDER_UNAVAILABLE:
		vault_op_fail(op, ERR_PROVIDER_UNAVAILABLE, "cannot reach "
		    "Vault: %s", r->errmsg[0] != '\0' ? r->errmsg :
		    "transport failure");
		return;
	case ERR_TOO_LARGE:
		vault_op_fail(op, ERR_PROVIDER_UNAVAILABLE, "Vault's answer "
		    "is too large");
		return;
	default:
		vault_op_fail(op, err, "Vault %s failed",
		    vault_req_name(op->kind));
		return;
	}
	if (status < 200 || status > 299) {
		vault_error_map(op->kind, status, (const char *)body->data,
		    body->len, &e);
		if (e.auth) {
			vault_op_refused(op, &e);
			return;
		}
		vault_op_fail(op, e.err, "Vault %s (%ld): %s",
		    vault_req_name(op->kind), status, e.text[0] != '\0' ?
		    e.text : "no error text");
		return;
	}
	why[0] = '\0';
	switch (op->kind) {
	case VAULT_REQ_ENCRYPT:
	case VAULT_REQ_REWRAP:
		rc = vault_resp_ciphertext((const char *)body->data, body->len,
		    &op->call->out, why, sizeof(why));
		break;
	case VAULT_REQ_DECRYPT:
		rc = vault_resp_plaintext((const char *)body->data, body->len,
		    op->phase == VAULT_PHASE_UNWRAP ? &op->pt : &op->call->out,
		    why, sizeof(why));
		if (rc == 0 && op->phase == VAULT_PHASE_UNWRAP) {
			vault_op_rewrap_second(op);
			return;
		}
		break;
	case VAULT_REQ_AUDIT_HASH:
		rc = vault_resp_hash((const char *)body->data, body->len,
		    &op->call->out, why, sizeof(why));
		break;
	default:
		rc = ERR_INTERNAL;
		snprintf(why, sizeof(why), "unexpected request kind");
		break;
	}
	if (rc != 0) {
		vault_op_fail(op, rc == ERR_NOMEM ? ERR_NOMEM :
		    ERR_PROVIDER_UNAVAILABLE, "%s", why);
		return;
	}
	vault_op_finish(op, 0, NULL);
}

/* URL and body of op for kind on key name. 0 or ERR_*. */
static int
vault_op_setup(struct vault_op *op, enum vault_req kind, const char *name,
    const uint8_t *in, size_t in_len, const uint8_t *ctx_json,
    size_t ctx_len)
{
	struct vault_sess *s = op->sess;
	int n, rc;

	op->kind = kind;
	free(op->url);
	op->url = NULL;
	buf_clear(&op->body);
	switch (kind) {
	case VAULT_REQ_ENCRYPT:
		rc = vault_body_encrypt(&op->body, in, in_len, ctx_json,
		    ctx_len);
		break;
	case VAULT_REQ_DECRYPT:
	case VAULT_REQ_REWRAP:
		rc = vault_body_ciphertext(&op->body, in, in_len, ctx_json,
		    ctx_len);
		break;
	case VAULT_REQ_AUDIT_HASH:
		rc = vault_body_audit_hash(&op->body, ctx_json, ctx_len);
		break;
	default:
		return ERR_INTERNAL;
	}
	if (rc != 0)
		return rc;
	if (kind == VAULT_REQ_AUDIT_HASH)
		n = asprintf(&op->url, "%s/v1/sys/audit-hash/%s", s->addr,
		    name);
	else
		n = asprintf(&op->url, "%s/v1/%s/%s/%s", s->addr, s->mount,
		    vault_req_name(kind), name);
	if (n < 0) {
		op->url = NULL;
		return ERR_NOMEM;
	}
	op->req.method = "POST";
	op->req.url = op->url;
	op->req.body = op->body.data;
	op->req.body_len = op->body.len;
	op->req.prepare = vault_op_prepare;
	op->req.classify = vault_op_classify;
	op->req.done = vault_op_done;
	op->req.arg = op;
	return 0;
}

/* Run op now if there is a token, else queue it behind the login. */
static void
vault_sess_submit(struct vault_op *op)
{
	struct vault_sess *s = op->sess;
	int rc;

	if (!vault_sess_usable(s)) {
		if (s->nwaiting >= s->max_queue) {
			vault_op_fail(op, ERR_BUSY, "too many requests waiting "
			    "for a Vault login");
			return;
		}
		op->waiting = 1;
		TAILQ_INSERT_TAIL(&s->waiting, op, wlink);
		s->nwaiting++;
		vault_sess_get_token(s);
		return;
	}
	op->in_http = 1;
	if ((rc = http_start(s->hc, &op->req)) != 0) {
		op->in_http = 0;
		vault_op_fail(op, rc, "out of memory");
	}
}

static struct vault_op *
vault_op_new(struct vault_sess *s, struct prov_call *call)
{
	struct vault_op *op;

	if ((op = calloc(1, sizeof(*op))) == NULL)
		return NULL;
	op->sess = s;
	op->call = call;
	buf_init(&op->body, VAULT_MAX_BODY);
	buf_init(&op->pt, PROV_MAX_OUT);
	TAILQ_INSERT_TAIL(&s->ops, op, link);
	vault_sess_ref(s);
	return op;
}

/* Release every waiting op: run those a token now allows. */
static void
vault_sess_wake(struct vault_sess *s)
{
	struct vault_op *op;

	vault_sess_ref(s);
	while (vault_sess_usable(s) &&
	    (op = TAILQ_FIRST(&s->waiting)) != NULL) {
		TAILQ_REMOVE(&s->waiting, op, wlink);
		s->nwaiting--;
		op->waiting = 0;
		vault_sess_submit(op);
	}
	vault_sess_unref(s);
}

static void
vault_sess_fail_waiters(struct vault_sess *s, int err, const char *msg)
{
	struct vault_op *op;

	vault_sess_ref(s);
	/* vault_op_finish unlinks op (op->waiting is set for every op on
	 * this list); clang-analyzer cannot see that invariant. */
	while ((op = TAILQ_FIRST(&s->waiting)) != NULL)
		vault_op_finish(op, err, msg); /* NOLINT(clang-analyzer-unix.Malloc) */
	vault_sess_unref(s);
}

/* Requests are waiting and there is no usable token: get one. */
static void
vault_sess_get_token(struct vault_sess *s)
{
	uint64_t now = vault_now_us();

	if (s->job == VAULT_JOB_LOGIN)
		return;		/* the waiters go when it ends */
	if (s->mode == VAULT_MODE_APPROLE) {
		if (s->fail_at_us != 0 &&
		    now - s->fail_at_us < VAULT_LOGIN_HOLDOFF_MS * 1000u) {
			vault_sess_fail_waiters(s, s->fail_err, s->fail_msg);
			return;
		}
		vault_job_start(s, VAULT_JOB_LOGIN);
		return;
	}
	(void)vault_sess_reload_token(s);
	if (vault_sess_usable(s))
		vault_sess_wake(s);
	else
		vault_sess_fail_waiters(s, ERR_PROVIDER_DENIED, s->have_token ?
		    "the Vault token has expired and no fresh one was found; "
		    "put one where kmsd reads it" : "no Vault token");
}

/* ---- auth sub-requests ---- */

static int
vault_job_prepare(struct http_req *r)
{
	struct vault_sess *s = r->arg;

	return vault_headers(s, r, s->job != VAULT_JOB_LOGIN);
}

static enum vault_req
vault_job_kind(enum vault_job job)
{
	return job == VAULT_JOB_LOGIN ? VAULT_REQ_LOGIN :
	    job == VAULT_JOB_LOOKUP ? VAULT_REQ_LOOKUP : VAULT_REQ_RENEW;
}

static enum http_verdict
vault_job_classify(struct http_req *r, long status, const struct buf *body)
{
	struct vault_sess *s = r->arg;
	struct vault_error e;

	if (r->transport_err)
		return HTTP_RETRY;
	if (status >= 200 && status <= 299)
		return HTTP_DONE;
	vault_error_map(vault_job_kind(s->job), status,
	    (const char *)body->data, body->len, &e);
	return e.retryable ? HTTP_RETRY : HTTP_DONE;
}

/* err/status of a finished sub-request as (ERR_*, message). */
static int
vault_job_error(struct vault_sess *s, enum vault_job job, int err,
    long status, const struct buf *body, char *msg, size_t msglen,
    int *ret_refused)
{
	const char *what = vault_req_name(vault_job_kind(job));
	struct vault_error e;

	*ret_refused = 0;
	if (err == ERR_TIMEOUT) {
		snprintf(msg, msglen, "Vault %s: no answer within the %u ms "
		    "timeout", what, s->timeout_ms);
		return ERR_PROVIDER_UNAVAILABLE;
	}
	if (err != 0) {
		snprintf(msg, msglen, "Vault %s: %s", what,
		    s->areq.errmsg[0] != '\0' ? s->areq.errmsg :
		    err_str(err));
		return err == ERR_BUSY || err == ERR_NOMEM ? err :
		    ERR_PROVIDER_UNAVAILABLE;
	}
	vault_error_map(vault_job_kind(job), status, (const char *)body->data,
	    body->len, &e);
	snprintf(msg, msglen, "Vault %s (%ld): %s", what, status,
	    e.text[0] != '\0' ? e.text : "no error text");
	/* A 4xx is Vault's answer; anything else may pass. */
	*ret_refused = !e.retryable && status >= 400 && status <= 499;
	return status == 400 ? ERR_PROVIDER_DENIED : e.err;
}

static void
vault_login_done(struct vault_sess *s, int err, long status,
    const struct buf *body)
{
	struct vault_lease lease;
	char msg[PROV_MSG_LEN];
	struct buf tok;
	int refused, rc;

	/* Set by vault_resp_auth; zeroed so no path reads it unset. */
	memset(&lease, 0, sizeof(lease));
	buf_init(&tok, VAULT_MAX_SECRET + 3);
	msg[0] = '\0';
	if (err == 0 && status >= 200 && status <= 299) {
		rc = vault_resp_auth((const char *)body->data, body->len, &tok,
		    &lease, msg, sizeof(msg));
		if (rc != 0)
			rc = ERR_PROVIDER_UNAVAILABLE;
	} else
		rc = vault_job_error(s, VAULT_JOB_LOGIN, err, status, body,
		    msg, sizeof(msg), &refused);
	if (rc != 0) {
		buf_done(&tok);
		s->fail_at_us = vault_now_us();
		s->fail_err = rc;
		snprintf(s->fail_msg, sizeof(s->fail_msg), "%s", msg);
		log_err("vault: %s", msg);
		if (vault_sess_usable(s))
			vault_sess_schedule(s, VAULT_NEXT_LOGIN,
			    vault_retry_ms(s));
		vault_sess_fail_waiters(s, rc, msg);
		return;
	}
	vault_sess_set_token(s, &tok);
	buf_done(&tok);
	vault_sess_set_lease(s, &lease);
	s->fail_at_us = 0;
	s->auth_failures = 0;
	s->login_ttl_ms = lease.ttl_s * 1000u;
	if (lease.ttl_s != 0)
		vault_sess_schedule(s, lease.renewable ? VAULT_NEXT_RENEW :
		    VAULT_NEXT_LOGIN, vault_renew_at_ms(s->login_ttl_ms));
	log_info("vault: AppRole login ok (token TTL %llus%s)",
	    (unsigned long long)lease.ttl_s, lease.renewable ?
	    ", renewable" : "");
	vault_sess_wake(s);
}

static void
vault_lookup_done(struct vault_sess *s, int err, long status,
    const struct buf *body)
{
	struct vault_lease lease;
	char msg[PROV_MSG_LEN];
	int refused;

	msg[0] = '\0';
	if (err == 0 && status >= 200 && status <= 299) {
		if (vault_resp_lookup((const char *)body->data, body->len,
		    &lease, msg, sizeof(msg)) != 0) {
			log_warn("vault: token lookup-self: %s; the token "
			    "will not be renewed", msg);
			return;
		}
		vault_sess_set_lease(s, &lease);
		s->auth_failures = 0;
		if (lease.ttl_s == 0) {
			log_info("vault: token from %s does not expire",
			    s->token_src);
			return;
		}
		log_info("vault: token from %s: TTL %llus, %s", s->token_src,
		    (unsigned long long)lease.ttl_s, lease.renewable ?
		    "renewed by kmsd" : "not renewable");
		if (lease.renewable)
			vault_sess_schedule(s, VAULT_NEXT_RENEW,
			    vault_renew_at_ms(lease.ttl_s * 1000u));
		else if (s->token_path != NULL)
			vault_sess_schedule(s, VAULT_NEXT_RELOAD,
			    vault_renew_at_ms(lease.ttl_s * 1000u));
		return;
	}
	(void)vault_job_error(s, VAULT_JOB_LOOKUP, err, status, body, msg,
	    sizeof(msg), &refused);
	if (refused) {
		log_warn("vault: %s; kmsd cannot see the token's TTL and will "
		    "not renew it", msg);
		return;
	}
	log_warn("vault: %s; trying again", msg);
	vault_sess_schedule(s, VAULT_NEXT_LOOKUP, vault_retry_ms(s));
}

static void
vault_renew_done(struct vault_sess *s, int err, long status,
    const struct buf *body)
{
	struct vault_lease lease;
	char msg[PROV_MSG_LEN];
	struct buf tok;
	uint64_t ttl_ms;
	int refused;

	msg[0] = '\0';
	if (err == 0 && status >= 200 && status <= 299) {
		buf_init(&tok, VAULT_MAX_SECRET + 3);
		if (vault_resp_auth((const char *)body->data, body->len, &tok,
		    &lease, msg, sizeof(msg)) != 0) {
			buf_done(&tok);
			log_warn("vault: token renew-self: %s", msg);
			vault_sess_schedule(s, VAULT_NEXT_RENEW,
			    vault_retry_ms(s));
			return;
		}
		if (!vault_same_token(s, &tok))
			vault_sess_set_token(s, &tok);
		buf_done(&tok);
		vault_sess_set_lease(s, &lease);
		s->auth_failures = 0;
		ttl_ms = lease.ttl_s * 1000u;
		log_debug("vault: token renewed, TTL %llus",
		    (unsigned long long)lease.ttl_s);
		if (lease.ttl_s == 0)
			return;
		/* Renewal stops paying when the max TTL caps it: an AppRole
		 * session logs in afresh once no more than half the login's
		 * TTL comes back. */
		if (s->mode == VAULT_MODE_APPROLE && (!lease.renewable ||
		    ttl_ms * 2 <= s->login_ttl_ms))
			vault_sess_schedule(s, VAULT_NEXT_LOGIN,
			    vault_renew_at_ms(ttl_ms));
		else
			vault_sess_schedule(s, lease.renewable ?
			    VAULT_NEXT_RENEW : VAULT_NEXT_RELOAD,
			    vault_renew_at_ms(ttl_ms));
		return;
	}
	(void)vault_job_error(s, VAULT_JOB_RENEW, err, status, body, msg,
	    sizeof(msg), &refused);
	if (!refused) {
		log_warn("vault: %s; trying again", msg);
		vault_sess_schedule(s, VAULT_NEXT_RENEW, vault_retry_ms(s));
		return;
	}
	log_warn("vault: %s", msg);
	s->renewable = 0;
	if (s->mode == VAULT_MODE_APPROLE) {
		vault_job_start(s, VAULT_JOB_LOGIN);
		return;
	}
	if (vault_sess_reload_token(s) == 1)
		return;
	if (s->token_path != NULL && s->expires_us != 0)
		vault_sess_schedule(s, VAULT_NEXT_RELOAD, vault_retry_ms(s));
}

static void
vault_job_done(struct http_req *r, int err, long status,
    const struct buf *body)
{
	struct vault_sess *s = r->arg;
	enum vault_job job = s->job;

	s->job = VAULT_JOB_NONE;
	buf_clear(&s->abody);
	free(s->aurl);
	s->aurl = NULL;
	/* Failing waiters may drop the last other reference. */
	vault_sess_ref(s);
	switch (job) {
	case VAULT_JOB_LOGIN:
		vault_login_done(s, err, status, body);
		break;
	case VAULT_JOB_LOOKUP:
		vault_lookup_done(s, err, status, body);
		break;
	case VAULT_JOB_RENEW:
		vault_renew_done(s, err, status, body);
		break;
	case VAULT_JOB_NONE:
		break;
	}
	vault_sess_unref(s);
}

/* Fail the waiters of a login that could not even start. */
static void
vault_job_failed_start(struct vault_sess *s, enum vault_job job, int err,
    const char *msg)
{
	if (job != VAULT_JOB_LOGIN)
		return;
	s->fail_at_us = vault_now_us();
	s->fail_err = err;
	snprintf(s->fail_msg, sizeof(s->fail_msg), "%s", msg);
	if (vault_sess_usable(s))
		vault_sess_schedule(s, VAULT_NEXT_LOGIN, vault_retry_ms(s));
	vault_sess_fail_waiters(s, err, msg);
}

/* Start an auth sub-request, replacing one in flight (a login wins over
 * a renewal; a new token's lookup over the old one's renewal). */
static void
vault_job_start(struct vault_sess *s, enum vault_job job)
{
	struct buf role, secret;
	char why[PATH_MAX + 64];
	const char *path;
	int rc = 0;

	if (s->job != VAULT_JOB_NONE) {
		if (s->job == VAULT_JOB_LOGIN)
			return;
		http_cancel(&s->areq);
		s->job = VAULT_JOB_NONE;
	}
	evtimer_del(s->timer);
	s->next = VAULT_NEXT_NONE;
	buf_clear(&s->abody);
	free(s->aurl);
	s->aurl = NULL;
	memset(&s->areq, 0, sizeof(s->areq));
	s->areq.method = "POST";
	switch (job) {
	case VAULT_JOB_LOGIN:
		path = "auth/approle/login";
		buf_init(&role, VAULT_MAX_SECRET + 3);
		buf_init(&secret, VAULT_MAX_SECRET + 3);
		/* Read at each login: an operator or an agent may have put
		 * a new secret id there. */
		if (vault_read_secret(s->role_id_file, &role, why,
		    sizeof(why)) != 0 || vault_read_secret(s->secret_id_file,
		    &secret, why, sizeof(why)) != 0)
			rc = ERR_PROVIDER_DENIED;
		else
			rc = vault_body_login(&s->abody,
			    (const char *)role.data, (const char *)secret.data);
		buf_done(&role);
		buf_done(&secret);
		if (rc != 0) {
			if (rc != ERR_PROVIDER_DENIED)
				snprintf(why, sizeof(why), "cannot build the "
				    "login request");
			log_err("vault: AppRole login: %s", why);
			vault_job_failed_start(s, job, ERR_PROVIDER_DENIED,
			    "Vault AppRole login: cannot read the role or "
			    "secret id file");
			return;
		}
		break;
	case VAULT_JOB_LOOKUP:
		path = "auth/token/lookup-self";
		s->areq.method = "GET";
		break;
	case VAULT_JOB_RENEW:
		path = "auth/token/renew-self";
		rc = buf_append_str(&s->abody, "{}");
		break;
	default:
		return;
	}
	if (rc != 0 || asprintf(&s->aurl, "%s/v1/%s", s->addr, path) < 0) {
		s->aurl = NULL;
		vault_job_failed_start(s, job, ERR_NOMEM, "out of memory");
		return;
	}
	s->areq.url = s->aurl;
	s->areq.body = s->abody.data;
	s->areq.body_len = s->abody.len;
	s->areq.prepare = vault_job_prepare;
	s->areq.classify = vault_job_classify;
	s->areq.done = vault_job_done;
	s->areq.arg = s;
	s->job = job;
	if (http_start(s->hc, &s->areq) != 0) {
		s->job = VAULT_JOB_NONE;
		vault_job_failed_start(s, job, ERR_NOMEM, "out of memory");
	}
}

static void
vault_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vault_sess *s = arg;
	enum vault_next next = s->next;
	uint64_t now, left;

	turn_mark_secret();

	s->next = VAULT_NEXT_NONE;
	if (s->job == VAULT_JOB_LOGIN)
		return;		/* its end schedules what comes next */
	vault_sess_ref(s);
	switch (next) {
	case VAULT_NEXT_RENEW:
		vault_job_start(s, VAULT_JOB_RENEW);
		break;
	case VAULT_NEXT_LOGIN:
		vault_job_start(s, VAULT_JOB_LOGIN);
		break;
	case VAULT_NEXT_LOOKUP:
		vault_job_start(s, VAULT_JOB_LOOKUP);
		break;
	case VAULT_NEXT_RELOAD:
		if (vault_sess_reload_token(s) == 1 || s->expires_us == 0)
			break;
		now = vault_now_us();
		left = s->expires_us > now ? (s->expires_us - now) / 1000 : 0;
		if (left > 2 * VAULT_MIN_TIMER_MS)
			vault_sess_schedule(s, VAULT_NEXT_RELOAD,
			    vault_renew_at_ms(left));
		else
			log_warn("vault: the token from %s expires now and "
			    "cannot be renewed; put a fresh one there",
			    s->token_src);
		break;
	case VAULT_NEXT_NONE:
		break;
	}
	vault_sess_unref(s);
}

/* The session identity: sessions with equal settings are shared. */
static char *
vault_settings_id(const struct vault_settings *st, const char *token_path,
    enum vault_mode mode)
{
	char *id;

	if (asprintf(&id, "%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%u\x1f"
	    "%u\x1f%u\x1f%d", st->addr, st->mount, st->ns ? st->ns : "",
	    st->ca_file ? st->ca_file : "", token_path ? token_path : "",
	    st->role_id_file ? st->role_id_file : "",
	    st->secret_id_file ? st->secret_id_file : "", st->timeout_ms,
	    st->max_inflight, st->max_queue, (int)mode) < 0)
		return NULL;
	return id;
}

static char *
vault_strdup_trim(const char *s)
{
	size_t n = strlen(s);

	while (n > 1 && s[n - 1] == '/')
		n--;
	return strndup(s, n);
}

/* A session for env's configuration: an existing equal one, or a new one
 * with its token read and its first auth request started. */
static struct vault_sess *
vault_sess_get(const struct prov_env *env, char *err, size_t errlen)
{
	struct vault_settings st;
	struct http_client_opts ho;
	struct vault_sess *s;
	enum vault_mode mode;
	char path[PATH_MAX], why[PATH_MAX + 64];
	const char *token_path = NULL, *src = NULL, *home, *envtok;
	char *id;

	if (vault_settings_read(env->cfg, config_section(env->cfg, "vault"),
	    &st, err, errlen) != 0 || vault_settings_env(&st, err, errlen) != 0)
		return NULL;
	if (env->http == NULL || env->base == NULL) {
		vault_err(err, errlen, "no HTTP transport");
		return NULL;
	}
	mode = st.role_id_file != NULL ? VAULT_MODE_APPROLE : VAULT_MODE_TOKEN;
	envtok = getenv("VAULT_TOKEN");
	if (mode == VAULT_MODE_TOKEN) {
		if (st.token_file != NULL) {
			token_path = st.token_file;
			src = "[vault] token_file";
		} else if (envtok != NULL && envtok[0] != '\0')
			src = "VAULT_TOKEN";
		else if ((home = getenv("HOME")) != NULL && home[0] != '\0' &&
		    (size_t)snprintf(path, sizeof(path), "%s/.vault-token",
		    home) < sizeof(path) && access(path, F_OK) == 0) {
			token_path = path;
			src = "~/.vault-token";
		} else {
			vault_err(err, errlen, "no Vault token: set [vault] "
			    "token_file or VAULT_TOKEN, write ~/.vault-token, "
			    "or use AppRole (role_id_file, secret_id_file)");
			return NULL;
		}
	}
	if ((id = vault_settings_id(&st, token_path, mode)) == NULL) {
		vault_err(err, errlen, "out of memory");
		return NULL;
	}
	LIST_FOREACH(s, &vault_sessions, link)
		if (strcmp(s->id, id) == 0) {
			/* A reload keeps the session (and its token); an
			 * operator who put a new token in the file and sent
			 * SIGHUP gets it used. */
			free(id);
			vault_sess_ref(s);
			(void)vault_sess_reload_token(s);
			return s;
		}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		free(id);
		vault_err(err, errlen, "out of memory");
		return NULL;
	}
	s->id = id;
	s->refs = 1;
	s->base = env->base;
	s->mode = mode;
	s->timeout_ms = st.timeout_ms;
	s->max_queue = st.max_queue;
	s->token_src = src != NULL ? src : "AppRole";
	TAILQ_INIT(&s->ops);
	TAILQ_INIT(&s->waiting);
	buf_init(&s->token, VAULT_MAX_SECRET + 3);
	buf_init(&s->abody, VAULT_MAX_SECRET * 2 + 64);
	LIST_INSERT_HEAD(&vault_sessions, s, link);
	if ((s->addr = vault_strdup_trim(st.addr)) == NULL ||
	    (s->mount = vault_strdup_trim(st.mount)) == NULL ||
	    (st.ns != NULL && (s->ns = strdup(st.ns)) == NULL) ||
	    (token_path != NULL &&
	    (s->token_path = strdup(token_path)) == NULL) ||
	    (st.role_id_file != NULL &&
	    (s->role_id_file = strdup(st.role_id_file)) == NULL) ||
	    (st.secret_id_file != NULL &&
	    (s->secret_id_file = strdup(st.secret_id_file)) == NULL) ||
	    (s->timer = evtimer_new(env->base, vault_timer_cb, s)) == NULL) {
		vault_err(err, errlen, "out of memory");
		goto fail;
	}
	if (st.ca_file != NULL && access(st.ca_file, R_OK) != 0) {
		vault_err(err, errlen, "CA file %s: %s", st.ca_file,
		    strerror(errno));
		goto fail;
	}
	memset(&ho, 0, sizeof(ho));
	ho.name = "vault";
	ho.deadline_ms = st.timeout_ms;
	ho.max_inflight = st.max_inflight;
	ho.max_queue = st.max_queue;
	ho.ca_file = st.ca_file;
	if ((s->hc = http_client_new(env->http, &ho)) == NULL) {
		vault_err(err, errlen, "out of memory");
		goto fail;
	}
	if (mode == VAULT_MODE_APPROLE) {
		struct buf probe;

		/* Refuse at start what every login would refuse. */
		buf_init(&probe, VAULT_MAX_SECRET + 3);
		if (vault_read_secret(st.role_id_file, &probe, why,
		    sizeof(why)) != 0 || vault_read_secret(st.secret_id_file,
		    &probe, why, sizeof(why)) != 0) {
			buf_done(&probe);
			vault_err(err, errlen, "AppRole: %s", why);
			goto fail;
		}
		buf_done(&probe);
		vault_job_start(s, VAULT_JOB_LOGIN);
		return s;
	}
	if (token_path != NULL) {
		if (vault_read_secret(token_path, &s->token, why,
		    sizeof(why)) != 0) {
			vault_err(err, errlen, "Vault token: %s", why);
			goto fail;
		}
	} else if (buf_append_str(&s->token, envtok) != 0 ||
	    vault_secret_clean(&s->token) != 0) {
		vault_err(err, errlen, "VAULT_TOKEN is too long or not "
		    "printable");
		goto fail;
	}
	s->have_token = 1;
	s->valid = 1;
	s->gen = 1;
	s->token_at_us = vault_now_us();
	vault_job_start(s, VAULT_JOB_LOOKUP);
	return s;
fail:
	vault_sess_unref(s);
	return NULL;
}

/* ---- provider ops ---- */

static int
vault_open(const char *key_id, const struct prov_env *env, void **ret_state,
    char *err, size_t errlen)
{
	const char *name = key_id + VAULT_PREFIX_LEN;
	struct vault_key *k;

	if (!vault_match(key_id) || !vault_name_valid(name, strlen(name))) {
		vault_err(err, errlen, "bad Vault key id: want vault/NAME, "
		    "NAME 1-%d of A-Z a-z 0-9 _ . - (starting and ending with "
		    "a letter, digit or _)", VAULT_MAX_NAME);
		return ERR_BAD_REQUEST;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		vault_err(err, errlen, "out of memory");
		return ERR_NOMEM;
	}
	snprintf(k->name, sizeof(k->name), "%s", name);
	if ((k->sess = vault_sess_get(env, err, errlen)) == NULL) {
		free(k);
		return ERR_BAD_REQUEST;
	}
	*ret_state = k;
	return 0;
}

static void
vault_close(void *state)
{
	struct vault_key *k = state;

	if (k == NULL)
		return;
	vault_sess_unref(k->sess);
	free(k);
}

static void
vault_start(void *state, struct prov_call *call)
{
	struct vault_key *k = state;
	int present = call->ctx != NULL && call->ctx->present;
	const uint8_t *cj = present ? call->ctx_json : NULL;
	size_t cl = present ? call->ctx_json_len : 0;
	struct vault_op *op;
	int rc;

	if (call->op == PROV_UNWRAP &&
	    !vault_ct_valid(call->in, call->in_len, NULL)) {
		provider_fail(call, ERR_DECRYPTION_FAILED, "not a Vault "
		    "ciphertext (\"vault:vN:...\")");
		return;
	}
	if ((op = vault_op_new(k->sess, call)) == NULL) {
		provider_fail(call, ERR_NOMEM, "out of memory");
		return;
	}
	rc = vault_op_setup(op, call->op == PROV_WRAP ? VAULT_REQ_ENCRYPT :
	    VAULT_REQ_DECRYPT, k->name, call->in, call->in_len, cj, cl);
	if (rc != 0) {
		vault_op_fail(op, rc == ERR_NOMEM ? ERR_NOMEM : ERR_TOO_LARGE,
		    "request too large for Vault");
		return;
	}
	vault_sess_submit(op);
}

static int
vault_ctx_same(const struct prov_call *call)
{
	int a = call->ctx != NULL && call->ctx->present;
	int b = call->new_ctx != NULL && call->new_ctx->present;

	if (a != b)
		return 0;
	return !a || (call->ctx_json_len == call->new_ctx_json_len &&
	    memcmp(call->ctx_json, call->new_ctx_json,
	    call->ctx_json_len) == 0);
}

/*
 * Rewrap between two versions. Transit's own rewrap (the data key never
 * leaves Vault) works within one key and one context; to another key or
 * another context it is decrypt then encrypt here, the data key held in a
 * wiped buffer between the two.
 */
static void
vault_rewrap(void *from_state, void *to_state, struct prov_call *call)
{
	struct vault_key *from = from_state, *to = to_state;
	int present = call->ctx != NULL && call->ctx->present;
	struct vault_op *op;
	int same, rc;

	if (!vault_ct_valid(call->in, call->in_len, NULL)) {
		provider_fail(call, ERR_DECRYPTION_FAILED, "not a Vault "
		    "ciphertext (\"vault:vN:...\")");
		return;
	}
	if ((op = vault_op_new(from->sess, call)) == NULL) {
		provider_fail(call, ERR_NOMEM, "out of memory");
		return;
	}
	same = strcmp(from->name, to->name) == 0 && vault_ctx_same(call);
	if (!same) {
		op->phase = VAULT_PHASE_UNWRAP;
		snprintf(op->to_name, sizeof(op->to_name), "%s", to->name);
	}
	rc = vault_op_setup(op, same ? VAULT_REQ_REWRAP : VAULT_REQ_DECRYPT,
	    from->name, call->in, call->in_len,
	    present ? call->ctx_json : NULL, present ? call->ctx_json_len : 0);
	if (rc != 0) {
		vault_op_fail(op, rc == ERR_NOMEM ? ERR_NOMEM : ERR_TOO_LARGE,
		    "request too large for Vault");
		return;
	}
	vault_sess_submit(op);
}

static void
vault_context_hash(void *state, struct prov_call *call)
{
	struct vault_key *k = state;
	const char *path = call->audit_path;
	char dev[VAULT_MAX_PATH + 1];
	struct vault_op *op;
	size_t n;
	int rc;

	if (call->ctx == NULL || !call->ctx->present) {
		provider_fail(call, ERR_BAD_REQUEST, "context_hash needs a "
		    "context");
		return;
	}
	if (path == NULL || !vault_path_valid(path, n = strlen(path))) {
		provider_fail(call, ERR_BAD_REQUEST, "audit path must be a "
		    "Vault audit device path, like file/");
		return;
	}
	/* "file/" and "file" name one device; one URL for both keeps the
	 * Vault policy path (sys/audit-hash/file) predictable. */
	if (path[n - 1] == '/')
		n--;
	snprintf(dev, sizeof(dev), "%.*s", (int)n, path);
	if ((op = vault_op_new(k->sess, call)) == NULL) {
		provider_fail(call, ERR_NOMEM, "out of memory");
		return;
	}
	if ((rc = vault_op_setup(op, VAULT_REQ_AUDIT_HASH, dev, NULL, 0,
	    call->ctx_json, call->ctx_json_len)) != 0) {
		vault_op_fail(op, rc == ERR_NOMEM ? ERR_NOMEM : ERR_TOO_LARGE,
		    "context too large for Vault");
		return;
	}
	vault_sess_submit(op);
}

/* The daemon gives up on call (its client went away): complete it now. */
static void
vault_cancel(void *state, struct prov_call *call)
{
	struct vault_key *k = state;
	struct vault_op *op;

	TAILQ_FOREACH(op, &k->sess->ops, link)
		if (op->call == call) {
			vault_op_finish(op, ERR_TIMEOUT, "cancelled");
			return;
		}
}

const struct provider_ops provider_vault = {
	.name = "vault",
	.match = vault_match,
	.open = vault_open,
	.close = vault_close,
	.start = vault_start,
	.cancel = vault_cancel,
	.rewrap = vault_rewrap,
	.context_hash = vault_context_hash,
	.check_config = vault_check_config,
	.section = "vault",
};
