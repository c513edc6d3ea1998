/*
 * gcp.c: the Google Cloud KMS provider (key ids
 * projects/P/locations/L/keyRings/R/cryptoKeys/K; DESIGN 3.1, issue 5).
 *
 * Owns: one gcp_key per configured key version (its :encrypt/:decrypt
 * URLs), and a gcp_shared per distinct setting (the [gcp] options and the
 * credentials file's bytes) holding the credentials, the cached access
 * token, the one token fetch in flight and the two http clients (KMS
 * calls; token fetches, so a full KMS queue never starves a refresh).
 * Key versions with the same settings share it, across reloads too, so a
 * reload keeps the token unless the credentials changed.
 *
 * Credentials, in Application Default Credentials order (PROVIDERS.md
 * C4): `[gcp] credentials` or $GOOGLE_APPLICATION_CREDENTIALS (a
 * service_account key or authorized_user file; an unreadable or bad file
 * is an error at open); else gcloud's well-known file when it is one of
 * those two types; else the metadata server
 * (http://$GCE_METADATA_HOST or `[gcp] metadata_host`, default
 * metadata.google.internal). Files are read at open (start and reload),
 * never from the loop's request path.
 *
 * Invariants:
 * - A call waits for a token only when none is usable; all waiting calls
 *   wait behind the one fetch, which never blocks the loop. A token near
 *   its end (GCP_TOKEN_REFRESH_S) is refreshed in the background while
 *   calls keep using it.
 * - Every call has one deadline (`[gcp] timeout`) covering the token wait,
 *   the KMS tries and the one 401-driven refresh; done() runs exactly once.
 * - A 200 is success only after gcp_parse verified its checksums; a
 *   damaged response is retried by http.c and is never handed back.
 * - The token lives in the secure heap and is only ever copied into the
 *   Authorization header of one try (http.c wipes that); the private key
 *   stays in its EVP_PKEY; request bodies (plaintexts) are wiped.
 *   Messages name the key, the account and Google's status, never a token
 *   or a byte of data.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "config.h"
#include "duration.h"
#include "err.h"
#include "gcp_auth.h"
#include "gcp_parse.h"
#include "http.h"
#include "log.h"
#include "provider.h"
#include "turn.h"

#define GCP_PREFIX "projects/"
#define GCP_PREFIX_LEN (sizeof(GCP_PREFIX) - 1)
#define GCP_DEFAULT_ENDPOINT "https://cloudkms.googleapis.com"
#define GCP_DEFAULT_METADATA_HOST "metadata.google.internal"
#define GCP_METADATA_PATH \
	"/computeMetadata/v1/instance/service-accounts/default/token"
#define GCP_DEFAULT_SCOPE "https://www.googleapis.com/auth/cloudkms"
#define GCP_ADC_FILE "application_default_credentials.json"
/* kms_encrypted's Google client allows 2 s to connect plus 2 s to read;
 * one deadline over token wait and retries gets the same budget. */
#define GCP_DEFAULT_TIMEOUT_MS 4000
/* Bounds on `[gcp] timeout`: below a round trip nothing succeeds; above
 * GAPIC's overall 60 s a client has long given up. */
#define GCP_MIN_TIMEOUT_MS 100
#define GCP_MAX_TIMEOUT_MS 60000
/* google-auth refreshes a token when less than 3 min 45 s remain. */
#define GCP_TOKEN_REFRESH_S 225
/* No request starts with a token this close to its end: clocks drift and
 * the request itself takes time. */
#define GCP_TOKEN_SKEW_S 10
/* After a failed background refresh, wait this long before the next one
 * (the old token still works): a broken token endpoint is not hammered. */
#define GCP_REFRESH_RETRY_S 5
/* One token fetch at a time by construction; the auth client allows it. */
#define GCP_AUTH_INFLIGHT 1
/* Longest URL built here: endpoint + key id + verb. */
#define GCP_MAX_URL 1024
/* Longest [gcp] option value kept (a path, a URL, a scope list). */
#define GCP_MAX_OPT 512
/* SHA-256 of the settings: what key versions share a gcp_shared by. */
#define GCP_FP_LEN 32
/* A name in messages ("service account x@y"). */
#define GCP_WHO_LEN 96

#define GCP_US 1000000ull

/* ---- settings ([gcp] section) ---- */

static const char *const gcp_opt_names[] = {
	"credentials", "endpoint", "metadata_host", "scope", "timeout",
	"ca_file", "quota_project",
};

#define GCP_N_OPTS (sizeof(gcp_opt_names) / sizeof(gcp_opt_names[0]))

struct gcp_settings {
	const char *credentials;	/* NULL: ADC */
	char endpoint[GCP_MAX_OPT];	/* no trailing '/' */
	const char *metadata_host;	/* NULL: env or default */
	const char *scope;
	unsigned timeout_ms;
	const char *ca_file;
	const char *quota_project;
};

/* ---- state ---- */

struct gcp_call;
TAILQ_HEAD(gcp_call_list, gcp_call);

struct gcp_shared {
	LIST_ENTRY(gcp_shared) link;
	unsigned refs;
	uint8_t fp[GCP_FP_LEN];
	struct event_base *base;
	struct http_client *kms;
	struct http_client *auth;
	unsigned timeout_ms;
	char *scope;
	char *token_url;		/* token_uri, or the metadata URL */
	char *quota_project;		/* NULL: none */
	char who[GCP_WHO_LEN];		/* for messages and logs */
	struct gcp_creds creds;		/* kind NONE: metadata server */
	/* The cached token: "Bearer ..." in the secure heap. */
	char *bearer;
	size_t bearer_size;
	uint64_t gen;			/* bumped with each new token */
	uint64_t got_us, exp_us;	/* CLOCK_MONOTONIC */
	bool stale;			/* refused with a 401 */
	/* The one fetch. */
	bool fetching;
	uint64_t fetch_failed_us;	/* last failed fetch, 0: none */
	struct http_req fetch;
	struct buf fetch_body;		/* carries the assertion: wiped */
	struct gcp_call_list waiters;	/* calls waiting for a token */
	struct gcp_call_list calls;	/* every call in flight */
	bool closing;
};

struct gcp_key {
	struct gcp_shared *sh;
	char *key_id;
	char *url_encrypt;
	char *url_decrypt;
};

struct gcp_call {
	struct gcp_key *k;
	struct prov_call *pc;
	TAILQ_ENTRY(gcp_call) all;
	TAILQ_ENTRY(gcp_call) wait;
	bool waiting;
	bool in_http;
	bool refreshed;		/* the one 401-driven refresh is spent */
	bool parsed;		/* classify verified a 200 into pc->out */
	bool has_aad;
	int verr;		/* why the last 200 failed verification */
	char vmsg[PROV_MSG_LEN];
	uint64_t gen;		/* token generation the last try sent */
	struct http_req req;
	struct buf body;	/* request JSON with the plaintext: wiped */
	struct event *deadline;
};

static LIST_HEAD(, gcp_shared) gcp_shared_list =
    LIST_HEAD_INITIALIZER(gcp_shared_list);

static void gcp_call_go(struct gcp_call *c);
static void gcp_fetch_start(struct gcp_shared *sh);

static uint64_t
gcp_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * GCP_US + (uint64_t)ts.tv_nsec / 1000;
}

static void gcp_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
gcp_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
gcp_match(const char *key_id)
{
	/* Every projects/ id is ours, valid or not, so a malformed one gets
	 * open()'s clear message instead of falling through to AWS. */
	return strncmp(key_id, GCP_PREFIX, GCP_PREFIX_LEN) == 0;
}

/* ---- [gcp] options ---- */

/* "4", "4s", "500ms", "1m" (as config.c reads durations). */
static int
gcp_parse_duration(const char *s, unsigned *ret_ms)
{
	return duration_parse_ms(s, GCP_MIN_TIMEOUT_MS, GCP_MAX_TIMEOUT_MS,
	    ret_ms);
}

/* host, host:port, [v6]:port: what may follow "http://" alone. */
static int
gcp_host_valid(const char *s)
{
	size_t n = strlen(s);

	/* a DNS name (253) plus a port, or a bracketed IPv6 address */
	if (n == 0 || n > 255)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		    c == ':' || c == '[' || c == ']'))
			return 0;
	}
	return 1;
}

/* Text that goes into JSON or a header as is. */
static int
gcp_plain_valid(const char *s)
{
	if (*s == '\0' || strlen(s) >= GCP_MAX_OPT)
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f ||
		    *s == '"' || *s == '\\')
			return 0;
	return 1;
}

/*
 * Read the [gcp] section into set (defaults for what is absent). 0, or -1
 * with "FILE:LINE: [gcp] ..." in err. Pointers in set point into the
 * section, which lives as long as the config.
 */
static int
gcp_settings_load(const struct config *cfg, const struct cfg_section *sec,
    struct gcp_settings *set, char *err, size_t errlen)
{
	const char *path = cfg != NULL && cfg->path != NULL ? cfg->path :
	    "config";
	char probe[GCP_MAX_OPT + 16], perr[256];
	const char *v, *hostpart;
	int line = sec != NULL ? sec->line : 0;
	size_t n;

	memset(set, 0, sizeof(*set));
	snprintf(set->endpoint, sizeof(set->endpoint), "%s",
	    GCP_DEFAULT_ENDPOINT);
	set->scope = GCP_DEFAULT_SCOPE;
	set->timeout_ms = GCP_DEFAULT_TIMEOUT_MS;
	if (sec == NULL)
		return 0;
	for (size_t i = 0; i < sec->n; i++) {
		size_t j;

		for (j = 0; j < GCP_N_OPTS; j++)
			if (strcmp(sec->opts[i].name, gcp_opt_names[j]) == 0)
				break;
		if (j == GCP_N_OPTS) {
			gcp_err(err, errlen, "%s:%d: unknown option '%s' in "
			    "[gcp] (expected credentials, endpoint, "
			    "metadata_host, scope, timeout, ca_file or "
			    "quota_project)", path, sec->opts[i].line,
			    sec->opts[i].name);
			return -1;
		}
	}
	if ((v = config_opt(sec, "credentials", &line)) != NULL) {
		if (*v == '\0' || config_file_path(v, probe, sizeof(probe),
		    perr, sizeof(perr)) != 0) {
			gcp_err(err, errlen, "%s:%d: [gcp] credentials: %s",
			    path, line, *v == '\0' ? "empty" : perr);
			return -1;
		}
		set->credentials = v;
	}
	if ((v = config_opt(sec, "endpoint", &line)) != NULL) {
		n = strlen(v);
		while (n > 0 && v[n - 1] == '/')
			n--;
		hostpart = strstr(v, "://");
		if (n == 0 || n >= sizeof(set->endpoint) || hostpart == NULL ||
		    (size_t)(hostpart + 3 - v) >= n ||
		    memchr(hostpart + 3, '/', n - (size_t)(hostpart + 3 - v)) !=
		    NULL || strpbrk(v, "?# \t\"\\") != NULL) {
			gcp_err(err, errlen, "%s:%d: [gcp] endpoint: want "
			    "https://HOST[:PORT] (plain http only to "
			    "loopback)", path, line);
			return -1;
		}
		memcpy(set->endpoint, v, n);
		set->endpoint[n] = '\0';
		snprintf(probe, sizeof(probe), "%s/v1/x", set->endpoint);
		if (!http_url_allowed(probe)) {
			gcp_err(err, errlen, "%s:%d: [gcp] endpoint: want "
			    "https://HOST[:PORT] (plain http only to "
			    "loopback)", path, line);
			return -1;
		}
	}
	if ((v = config_opt(sec, "metadata_host", &line)) != NULL) {
		if (!gcp_host_valid(v)) {
			gcp_err(err, errlen, "%s:%d: [gcp] metadata_host: want "
			    "HOST or HOST:PORT", path, line);
			return -1;
		}
		set->metadata_host = v;
	}
	if ((v = config_opt(sec, "scope", &line)) != NULL) {
		if (!gcp_plain_valid(v)) {
			gcp_err(err, errlen, "%s:%d: [gcp] scope: want OAuth "
			    "scope URLs separated by spaces", path, line);
			return -1;
		}
		set->scope = v;
	}
	if ((v = config_opt(sec, "timeout", &line)) != NULL &&
	    gcp_parse_duration(v, &set->timeout_ms) != 0) {
		gcp_err(err, errlen, "%s:%d: [gcp] timeout: want a duration "
		    "from %dms to %ds (\"4s\", \"2500ms\")", path, line,
		    GCP_MIN_TIMEOUT_MS, GCP_MAX_TIMEOUT_MS / 1000);
		return -1;
	}
	if ((v = config_opt(sec, "ca_file", &line)) != NULL) {
		if (*v == '\0' || strlen(v) >= GCP_MAX_OPT) {
			gcp_err(err, errlen, "%s:%d: [gcp] ca_file: want a "
			    "path", path, line);
			return -1;
		}
		set->ca_file = v;
	}
	if ((v = config_opt(sec, "quota_project", &line)) != NULL) {
		if (!gcp_plain_valid(v) || strchr(v, ' ') != NULL) {
			gcp_err(err, errlen, "%s:%d: [gcp] quota_project: want "
			    "a project id", path, line);
			return -1;
		}
		set->quota_project = v;
	}
	return 0;
}

static int
gcp_check_config(const struct config *cfg, const struct cfg_section *section,
    char *err, size_t errlen)
{
	struct gcp_settings set;

	return gcp_settings_load(cfg, section, &set, err, errlen);
}

/* ---- credentials (open time) ---- */

/* Read a whole regular file of at most GCP_MAX_CRED_FILE bytes. 0, -1
 * with errno (ENOENT: absent), or -2 (not a regular file or too big). */
static int
gcp_read_file(const char *path, struct buf *out)
{
	struct stat st;
	uint8_t chunk[4096];	/* one read; wiped: it held key bytes */
	ssize_t got;
	int fd, r = 0;

	/* Symbolic links are fine: Kubernetes secret volumes are made of
	 * them. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return -1;
	if (fstat(fd, &st) != 0) {
		r = -1;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > GCP_MAX_CRED_FILE) {
		r = -2;
		goto out;
	}
	for (;;) {
		got = read(fd, chunk, sizeof(chunk));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = -1;
			break;
		}
		if (got == 0)
			break;
		if (buf_append(out, chunk, (size_t)got) != 0) {
			r = -2;
			break;
		}
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
out:
	if (r != 0)
		buf_clear(out);
	close(fd);
	return r;
}

/* The credentials an open() resolved, before they are shared. */
struct gcp_source {
	struct gcp_creds creds;		/* kind NONE: metadata server */
	struct buf file;		/* the file's bytes (fingerprint) */
	char path[PATH_MAX];
	const char *origin;		/* where the path came from */
	char metadata_url[GCP_MAX_URL];
};

/* Load a named file (explicit: any failure is an error). */
static int
gcp_load_named(struct gcp_source *src, char *err, size_t errlen)
{
	char perr[200];
	int r;

	r = gcp_read_file(src->path, &src->file);
	if (r == -2) {
		gcp_err(err, errlen, "%s %s: not a regular file of at most %d "
		    "bytes", src->origin, src->path, GCP_MAX_CRED_FILE);
		return ERR_BAD_REQUEST;
	}
	if (r != 0) {
		gcp_err(err, errlen, "%s %s: %s", src->origin, src->path,
		    strerror(errno));
		return ERR_BAD_REQUEST;
	}
	r = gcp_creds_parse((const char *)src->file.data, src->file.len,
	    &src->creds, perr, sizeof(perr));
	if (r != 0) {
		gcp_err(err, errlen, "%s %s: %s", src->origin, src->path, perr);
		return r == ERR_NOMEM ? r : ERR_BAD_REQUEST;
	}
	return 0;
}

/*
 * Application Default Credentials, in google-auth's order. 0 with src
 * filled (creds.kind NONE = metadata server), or ERR_* with err.
 */
static int
gcp_resolve(const struct gcp_settings *set, struct gcp_source *src,
    char *err, size_t errlen)
{
	const char *env, *host;
	char perr[200];
	int r, n;

	if (set->credentials != NULL) {
		src->origin = "[gcp] credentials";
		if (config_file_path(set->credentials, src->path,
		    sizeof(src->path), perr, sizeof(perr)) != 0) {
			gcp_err(err, errlen, "[gcp] credentials: %s", perr);
			return ERR_BAD_REQUEST;
		}
		return gcp_load_named(src, err, errlen);
	}
	if ((env = getenv("GOOGLE_APPLICATION_CREDENTIALS")) != NULL &&
	    *env != '\0') {
		src->origin = "GOOGLE_APPLICATION_CREDENTIALS";
		n = snprintf(src->path, sizeof(src->path), "%s", env);
		if (n < 0 || (size_t)n >= sizeof(src->path)) {
			gcp_err(err, errlen, "GOOGLE_APPLICATION_CREDENTIALS: "
			    "path too long");
			return ERR_BAD_REQUEST;
		}
		return gcp_load_named(src, err, errlen);
	}
	/* gcloud's well-known file, if there is one. */
	src->origin = "gcloud credentials";
	if ((env = getenv("CLOUDSDK_CONFIG")) != NULL && *env != '\0')
		n = snprintf(src->path, sizeof(src->path), "%s/%s", env,
		    GCP_ADC_FILE);
	else if ((env = getenv("HOME")) != NULL && *env != '\0')
		n = snprintf(src->path, sizeof(src->path),
		    "%s/.config/gcloud/%s", env, GCP_ADC_FILE);
	else
		n = -1;
	if (n > 0 && (size_t)n < sizeof(src->path)) {
		r = gcp_read_file(src->path, &src->file);
		if (r == 0) {
			r = gcp_creds_parse((const char *)src->file.data,
			    src->file.len, &src->creds, perr, sizeof(perr));
			if (r == 0)
				return 0;
			if (r != GCP_CREDS_UNSUPPORTED) {
				gcp_err(err, errlen, "%s %s: %s", src->origin,
				    src->path, perr);
				return r == ERR_NOMEM ? r : ERR_BAD_REQUEST;
			}
			log_warn("gcp: %s %s: %s; using the metadata server",
			    src->origin, src->path, perr);
		} else if (!(r == -1 && errno == ENOENT))
			log_warn("gcp: %s %s: unreadable; using the metadata "
			    "server", src->origin, src->path);
	}
	buf_clear(&src->file);
	src->path[0] = '\0';
	src->origin = "metadata server";
	if ((host = set->metadata_host) == NULL &&
	    ((host = getenv("GCE_METADATA_HOST")) == NULL || *host == '\0'))
		host = GCP_DEFAULT_METADATA_HOST;
	if (!gcp_host_valid(host)) {
		gcp_err(err, errlen, "GCE_METADATA_HOST: want HOST or "
		    "HOST:PORT");
		return ERR_BAD_REQUEST;
	}
	snprintf(src->metadata_url, sizeof(src->metadata_url), "http://%s%s",
	    host, GCP_METADATA_PATH);
	return 0;
}

/* ---- shared state ---- */

static void
gcp_fp_add(EVP_MD_CTX *md, const void *p, size_t n)
{
	uint64_t len = n;

	/* Length-prefixed, so ("ab","c") and ("a","bc") differ. */
	EVP_DigestUpdate(md, &len, sizeof(len));
	if (n > 0)
		EVP_DigestUpdate(md, p, n);
}

static void
gcp_fp_str(EVP_MD_CTX *md, const char *s)
{
	gcp_fp_add(md, s != NULL ? s : "", s != NULL ? strlen(s) + 1 : 0);
}

static int
gcp_fingerprint(const struct prov_env *env, const struct gcp_settings *set,
    const struct gcp_source *src, const char *quota, uint8_t *fp)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;
	int ok;

	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return ERR_NOMEM;
	}
	/* The transport too: unit tests may run several in one process. */
	gcp_fp_add(md, &env->http, sizeof(struct http *));
	gcp_fp_add(md, &env->base, sizeof(struct event_base *));
	gcp_fp_str(md, set->endpoint);
	gcp_fp_str(md, set->scope);
	gcp_fp_add(md, &set->timeout_ms, sizeof(set->timeout_ms));
	gcp_fp_str(md, set->ca_file);
	gcp_fp_str(md, quota);
	gcp_fp_str(md, src->metadata_url);
	gcp_fp_str(md, src->path);
	gcp_fp_add(md, src->file.data, src->file.len);
	ok = EVP_DigestFinal_ex(md, fp, &n) == 1 && n == GCP_FP_LEN;
	EVP_MD_CTX_free(md);
	return ok ? 0 : ERR_INTERNAL;
}

static void
gcp_token_drop(struct gcp_shared *sh)
{
	if (sh->bearer != NULL)
		OPENSSL_secure_clear_free(sh->bearer, sh->bearer_size);
	sh->bearer = NULL;
	sh->bearer_size = 0;
}

static void
gcp_shared_free(struct gcp_shared *sh)
{
	if (sh == NULL)
		return;
	sh->closing = true;
	/* Both deliver what is in flight before returning; closing makes the
	 * fetch's done() a no-op. */
	http_client_free(sh->kms);
	http_client_free(sh->auth);
	gcp_token_drop(sh);
	gcp_creds_done(&sh->creds);
	buf_done(&sh->fetch_body);
	free(sh->scope);
	free(sh->token_url);
	free(sh->quota_project);
	free(sh);
}

static void
gcp_shared_unref(struct gcp_shared *sh)
{
	if (sh == NULL || --sh->refs > 0)
		return;
	LIST_REMOVE(sh, link);
	gcp_shared_free(sh);
}

static int
gcp_shared_get(const struct prov_env *env, const struct gcp_settings *set,
    struct gcp_shared **ret, char *err, size_t errlen)
{
	struct http_client_opts kopts, aopts;
	struct gcp_shared *sh = NULL;
	struct gcp_source src;
	uint8_t fp[GCP_FP_LEN];
	const char *quota;
	char email[64];
	int r;

	memset(&src, 0, sizeof(src));
	gcp_creds_init(&src.creds);
	buf_init(&src.file, GCP_MAX_CRED_FILE);
	/* Caught here, not as a TLS error on every request. */
	if (set->ca_file != NULL && access(set->ca_file, R_OK) != 0) {
		gcp_err(err, errlen, "[gcp] ca_file %s: %s", set->ca_file,
		    strerror(errno));
		r = ERR_BAD_REQUEST;
		goto out;
	}
	if ((r = gcp_resolve(set, &src, err, errlen)) != 0)
		goto out;
	if ((quota = set->quota_project) == NULL &&
	    ((quota = getenv("GOOGLE_CLOUD_QUOTA_PROJECT")) == NULL ||
	    *quota == '\0'))
		quota = src.creds.quota_project;
	if (quota != NULL && (!gcp_plain_valid(quota) ||
	    strchr(quota, ' ') != NULL)) {
		gcp_err(err, errlen, "quota project id has characters a header "
		    "cannot carry");
		r = ERR_BAD_REQUEST;
		goto out;
	}
	if (src.creds.kind != GCP_CRED_NONE &&
	    !http_url_allowed(src.creds.token_uri)) {
		gcp_err(err, errlen, "%s %s: token_uri must be https (plain "
		    "http only to loopback)", src.origin, src.path);
		r = ERR_BAD_REQUEST;
		goto out;
	}
	if (src.creds.kind == GCP_CRED_NONE &&
	    !http_url_allowed(src.metadata_url)) {
		gcp_err(err, errlen, "no credentials file, and the metadata "
		    "server (%s) is plain http, which the HTTP transport "
		    "allows only to loopback: set [gcp] credentials",
		    src.metadata_url);
		r = ERR_BAD_REQUEST;
		goto out;
	}
	if ((r = gcp_fingerprint(env, set, &src, quota, fp)) != 0) {
		gcp_err(err, errlen, "cannot fingerprint the settings");
		goto out;
	}
	LIST_FOREACH(sh, &gcp_shared_list, link)
		if (CRYPTO_memcmp(sh->fp, fp, GCP_FP_LEN) == 0) {
			sh->refs++;
			*ret = sh;
			r = 0;
			goto out;
		}
	r = ERR_NOMEM;
	if ((sh = calloc(1, sizeof(*sh))) == NULL)
		goto nomem;
	memcpy(sh->fp, fp, GCP_FP_LEN);
	sh->refs = 1;
	sh->base = env->base;
	sh->timeout_ms = set->timeout_ms;
	TAILQ_INIT(&sh->waiters);
	TAILQ_INIT(&sh->calls);
	buf_init(&sh->fetch_body, GCP_MAX_TOKEN_BODY);
	sh->creds = src.creds;
	gcp_creds_init(&src.creds);	/* moved */
	if ((sh->scope = strdup(set->scope)) == NULL ||
	    (sh->token_url = strdup(sh->creds.kind == GCP_CRED_NONE ?
	    src.metadata_url : sh->creds.token_uri)) == NULL ||
	    (quota != NULL && (sh->quota_project = strdup(quota)) == NULL))
		goto nomem;
	switch (sh->creds.kind) {
	case GCP_CRED_SERVICE_ACCOUNT:
		gcp_text_safe(email, sizeof(email), sh->creds.client_email,
		    strlen(sh->creds.client_email));
		snprintf(sh->who, sizeof(sh->who), "service account %s",
		    email);
		break;
	case GCP_CRED_AUTHORIZED_USER:
		snprintf(sh->who, sizeof(sh->who), "gcloud user credentials");
		break;
	default:
		snprintf(sh->who, sizeof(sh->who), "metadata server");
		break;
	}
	memset(&kopts, 0, sizeof(kopts));
	kopts.name = "gcp";
	kopts.deadline_ms = set->timeout_ms;
	kopts.ca_file = set->ca_file;
	aopts = kopts;
	aopts.name = "gcp-auth";
	aopts.max_inflight = GCP_AUTH_INFLIGHT;
	if ((sh->kms = http_client_new(env->http, &kopts)) == NULL ||
	    (sh->auth = http_client_new(env->http, &aopts)) == NULL)
		goto nomem;
	LIST_INSERT_HEAD(&gcp_shared_list, sh, link);
	if (sh->creds.kind == GCP_CRED_NONE)
		log_info("gcp: no credentials file; tokens from the metadata "
		    "server at %s", sh->token_url);
	else
		log_info("gcp: authenticating as %s (%s %s)", sh->who,
		    src.origin, src.path);
	*ret = sh;
	sh = NULL;
	r = 0;
	goto out;
nomem:
	gcp_err(err, errlen, "out of memory");
	gcp_shared_free(sh);
	sh = NULL;
out:
	gcp_creds_done(&src.creds);
	buf_done(&src.file);
	return r;
}

/* ---- keys ---- */

static void
gcp_close(void *state)
{
	struct gcp_key *k = state;

	if (k == NULL)
		return;
	gcp_shared_unref(k->sh);
	free(k->key_id);
	free(k->url_encrypt);
	free(k->url_decrypt);
	free(k);
}

static char *
gcp_url(const char *endpoint, const char *key_id, const char *verb)
{
	char *u;

	if (asprintf(&u, "%s/v1/%s:%s", endpoint, key_id, verb) < 0)
		return NULL;
	if (strlen(u) >= GCP_MAX_URL) {
		free(u);
		return NULL;
	}
	return u;
}

static int
gcp_open(const char *key_id, const struct prov_env *env, void **ret_state,
    char *err, size_t errlen)
{
	const struct cfg_section *sec;
	struct gcp_settings set;
	struct gcp_key *k;
	int r;

	if (!gcp_key_id_valid(key_id)) {
		gcp_err(err, errlen, "bad Cloud KMS key id: want "
		    "projects/P/locations/L/keyRings/R/cryptoKeys/K (the key, "
		    "not a cryptoKeyVersions/N)");
		return ERR_BAD_REQUEST;
	}
	if (env == NULL || env->http == NULL || env->base == NULL) {
		gcp_err(err, errlen, "Cloud KMS keys need the HTTPS transport");
		return ERR_INTERNAL;
	}
	sec = env->cfg != NULL ? config_section(env->cfg, "gcp") : NULL;
	if (gcp_settings_load(env->cfg, sec, &set, err, errlen) != 0)
		return ERR_BAD_REQUEST;
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		gcp_err(err, errlen, "out of memory");
		return ERR_NOMEM;
	}
	if ((r = gcp_shared_get(env, &set, &k->sh, err, errlen)) != 0) {
		free(k);
		return r;
	}
	if ((k->key_id = strdup(key_id)) == NULL ||
	    (k->url_encrypt = gcp_url(set.endpoint, key_id, "encrypt")) ==
	    NULL ||
	    (k->url_decrypt = gcp_url(set.endpoint, key_id, "decrypt")) ==
	    NULL) {
		gcp_close(k);
		gcp_err(err, errlen, "out of memory or URL too long");
		return ERR_NOMEM;
	}
	*ret_state = k;
	return 0;
}

/* ---- calls ---- */

static void
gcp_call_free(struct gcp_call *c)
{
	struct gcp_shared *sh = c->k->sh;

	if (c->in_http)
		http_cancel(&c->req);
	if (c->waiting)
		TAILQ_REMOVE(&sh->waiters, c, wait);
	TAILQ_REMOVE(&sh->calls, c, all);
	if (c->deadline != NULL)
		event_free(c->deadline);
	buf_done(&c->body);
	free(c);
}

/* The single exit of a call: free it, then tell the caller. */
static void
gcp_call_finish(struct gcp_call *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
gcp_call_finish(struct gcp_call *c, int err, const char *fmt, ...)
{
	struct prov_call *pc = c->pc;
	char msg[PROV_MSG_LEN];
	va_list ap;

	msg[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	gcp_call_free(c);
	if (err == 0) {
		pc->err = 0;
		pc->msg[0] = '\0';
		pc->done(pc);
	} else
		provider_fail(pc, err, "%s", msg);
}

static int
gcp_call_prepare(struct http_req *r)
{
	struct gcp_call *c = r->arg;
	struct gcp_shared *sh = c->k->sh;
	int rc;

	if (sh->bearer == NULL)
		return ERR_INTERNAL;
	c->gen = sh->gen;
	if ((rc = http_req_header(r, "Authorization", sh->bearer)) != 0 ||
	    (rc = http_req_header(r, "Content-Type", "application/json")) !=
	    0)
		return rc;
	if (sh->quota_project != NULL)
		return http_req_header(r, "x-goog-user-project",
		    sh->quota_project);
	return 0;
}

static enum http_verdict
gcp_call_classify(struct http_req *r, long status, const struct buf *body)
{
	struct gcp_call *c = r->arg;
	struct prov_call *pc = c->pc;
	int retry, rc;
	char msg[PROV_MSG_LEN];

	if (r->transport_err)
		return HTTP_RETRY;
	if (status == 200) {
		/* Verified here so a damaged response is retried; the
		 * result stays in pc->out for done(). */
		if (pc->op == PROV_WRAP)
			rc = gcp_kms_encrypt_result(body->data, body->len,
			    c->k->key_id, c->has_aad, &pc->out, c->vmsg,
			    sizeof(c->vmsg));
		else
			rc = gcp_kms_decrypt_result(body->data, body->len,
			    &pc->out, c->vmsg, sizeof(c->vmsg));
		c->parsed = rc == 0;
		c->verr = rc;
		if (rc == ERR_NOMEM)
			snprintf(c->vmsg, sizeof(c->vmsg), "out of memory");
		return rc == 0 || rc == ERR_NOMEM ? HTTP_DONE : HTTP_RETRY;
	}
	/* done() refreshes the token once; http.c cannot wait for it. */
	if (status == 401)
		return HTTP_DONE;
	(void)gcp_kms_error(status, body->data, body->len, &retry, msg,
	    sizeof(msg));
	return retry ? HTTP_RETRY : HTTP_DONE;
}

static void
gcp_call_http_done(struct http_req *r, int err, long status,
    const struct buf *body)
{
	struct gcp_call *c = r->arg;
	struct gcp_shared *sh = c->k->sh;
	char msg[PROV_MSG_LEN];
	int retry, e;

	c->in_http = false;
	switch (err) {
	case 0:
		break;
	case ERR_TIMEOUT:
		gcp_call_finish(c, ERR_TIMEOUT, "Cloud KMS did not answer "
		    "within %u ms", sh->timeout_ms);
		return;
	case ERR_BUSY:
		gcp_call_finish(c, ERR_BUSY, "too many Cloud KMS requests "
		    "waiting");
		return;
	case ERR_NOMEM:
		gcp_call_finish(c, ERR_NOMEM, "out of memory");
		return;
	case ERR_TOO_LARGE:
		gcp_call_finish(c, ERR_PROVIDER_UNAVAILABLE, "Cloud KMS "
		    "response too large");
		return;
	default:
		gcp_call_finish(c, ERR_PROVIDER_UNAVAILABLE, "cannot reach "
		    "Cloud KMS after %u tries: %s", r->tries, r->errmsg);
		return;
	}
	if (status == 200) {
		if (c->parsed)
			gcp_call_finish(c, 0, NULL);
		else if (c->verr == ERR_NOMEM)
			gcp_call_finish(c, ERR_NOMEM, "out of memory");
		else
			gcp_call_finish(c, ERR_PROVIDER_UNAVAILABLE, "%s "
			    "(%u tries)", c->vmsg, r->tries);
		return;
	}
	if (status == 401 && !c->refreshed) {
		/* One refresh and retry: the token may have been revoked or
		 * rotated early. Only the token this try sent is dropped; a
		 * newer one is simply used. */
		c->refreshed = true;
		if (c->gen == sh->gen)
			sh->stale = true;
		gcp_call_go(c);
		return;
	}
	e = gcp_kms_error(status, body->data, body->len, &retry, msg,
	    sizeof(msg));
	if (retry && r->tries > 1)
		gcp_call_finish(c, e, "%s (%u tries)", msg, r->tries);
	else
		gcp_call_finish(c, e, "%s", msg);
}

static void
gcp_call_send(struct gcp_call *c)
{
	struct gcp_shared *sh = c->k->sh;
	struct prov_call *pc = c->pc;
	int r;

	memset(&c->req, 0, sizeof(c->req));
	c->req.method = "POST";
	c->req.url = pc->op == PROV_WRAP ? c->k->url_encrypt :
	    c->k->url_decrypt;
	c->req.body = c->body.data;
	c->req.body_len = c->body.len;
	c->req.prepare = gcp_call_prepare;
	c->req.classify = gcp_call_classify;
	c->req.done = gcp_call_http_done;
	c->req.arg = c;
	c->parsed = false;
	c->verr = 0;
	c->vmsg[0] = '\0';
	buf_clear(&pc->out);
	c->in_http = true;
	if ((r = http_start(sh->kms, &c->req)) != 0) {
		c->in_http = false;
		gcp_call_finish(c, r, "out of memory");
	}
}

static bool
gcp_token_usable(const struct gcp_shared *sh, uint64_t now)
{
	uint64_t life = sh->exp_us - sh->got_us, skew = GCP_TOKEN_SKEW_S *
	    GCP_US;

	/* Short-lived tokens (tests, some metadata servers) keep a
	 * proportional margin instead of being unusable at once. */
	if (skew > life / 4)
		skew = life / 4;
	return sh->bearer != NULL && !sh->stale && now + skew < sh->exp_us;
}

static bool
gcp_token_due(const struct gcp_shared *sh, uint64_t now)
{
	uint64_t life = sh->exp_us - sh->got_us, margin = GCP_TOKEN_REFRESH_S *
	    GCP_US;

	if (margin > life / 2)
		margin = life / 2;
	return now + margin >= sh->exp_us;
}

/* Send c now if a token is usable, else queue it behind the one fetch. c
 * may be finished (and freed) before this returns. */
static void
gcp_call_go(struct gcp_call *c)
{
	struct gcp_shared *sh = c->k->sh;
	uint64_t now = gcp_now_us();

	if (gcp_token_usable(sh, now)) {
		/* Refresh ahead of expiry without making anyone wait. */
		if (gcp_token_due(sh, now) && !sh->fetching &&
		    (sh->fetch_failed_us == 0 || now >= sh->fetch_failed_us +
		    GCP_REFRESH_RETRY_S * GCP_US))
			gcp_fetch_start(sh);
		gcp_call_send(c);
		return;
	}
	c->waiting = true;
	TAILQ_INSERT_TAIL(&sh->waiters, c, wait);
	gcp_fetch_start(sh);
}

static void
gcp_call_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gcp_call *c = arg;

	turn_mark_secret();

	gcp_call_finish(c, ERR_TIMEOUT, "Cloud KMS did not answer within "
	    "%u ms%s", c->k->sh->timeout_ms, c->waiting ? " (waiting for an "
	    "access token)" : "");
}

static void
gcp_start(void *state, struct prov_call *pc)
{
	struct gcp_key *k = state;
	struct gcp_shared *sh = k->sh;
	struct gcp_call *c;
	struct timeval tv;
	int has_aad = pc->ctx != NULL && pc->ctx->present, r;

	if (has_aad && (pc->ctx_json == NULL || pc->ctx_json_len == 0)) {
		provider_fail(pc, ERR_INTERNAL, "context without its JSON");
		return;
	}
	if (pc->in_len == 0) {
		provider_fail(pc, pc->op == PROV_WRAP ? ERR_BAD_REQUEST :
		    ERR_DECRYPTION_FAILED, "Cloud KMS cannot %s empty input",
		    pc->op == PROV_WRAP ? "encrypt" : "decrypt");
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		provider_fail(pc, ERR_NOMEM, "out of memory");
		return;
	}
	c->k = k;
	c->pc = pc;
	c->has_aad = has_aad;
	buf_init(&c->body, GCP_KMS_MAX_BODY);
	TAILQ_INSERT_TAIL(&sh->calls, c, all);
	r = pc->op == PROV_WRAP ?
	    gcp_kms_encrypt_body(pc->in, pc->in_len, pc->ctx_json,
	    pc->ctx_json_len, has_aad, &c->body) :
	    gcp_kms_decrypt_body(pc->in, pc->in_len, pc->ctx_json,
	    pc->ctx_json_len, has_aad, &c->body);
	if (r != 0) {
		if (r == ERR_TOO_LARGE)
			gcp_call_finish(c, pc->op == PROV_WRAP ? ERR_TOO_LARGE :
			    ERR_DECRYPTION_FAILED, "over Cloud KMS's limits "
			    "(%d bytes of data, %d of context)",
			    GCP_KMS_MAX_PLAINTEXT, GCP_KMS_MAX_AAD);
		else
			gcp_call_finish(c, r, "cannot build the request");
		return;
	}
	tv.tv_sec = sh->timeout_ms / 1000;
	tv.tv_usec = (suseconds_t)(sh->timeout_ms % 1000) * 1000;
	if ((c->deadline = evtimer_new(sh->base, gcp_call_deadline_cb, c)) ==
	    NULL || evtimer_add(c->deadline, &tv) != 0) {
		gcp_call_finish(c, ERR_NOMEM, "out of memory");
		return;
	}
	gcp_call_go(c);
}

static void
gcp_cancel(void *state, struct prov_call *pc)
{
	struct gcp_key *k = state;
	struct gcp_call *c;

	TAILQ_FOREACH(c, &k->sh->calls, all)
		if (c->pc == pc) {
			gcp_call_finish(c, ERR_TIMEOUT, "cancelled");
			return;
		}
}

/* ---- the token fetch ---- */

/* Fail every call waiting for a token. New calls their done() starts
 * wait for a new fetch, not this one's verdict. */
static void
gcp_fetch_fail(struct gcp_shared *sh, int err, const char *msg)
{
	struct gcp_call_list list = TAILQ_HEAD_INITIALIZER(list);
	struct gcp_call *c;

	TAILQ_CONCAT(&list, &sh->waiters, wait);
	if (TAILQ_EMPTY(&list))
		log_warn("gcp: background token refresh (%s) failed: %s; "
		    "the current token is used until it expires", sh->who,
		    msg);
	while ((c = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, c, wait);
		c->waiting = false;
		gcp_call_finish(c, err, "access token (%s): %s", sh->who, msg);
	}
}

static int
gcp_fetch_prepare(struct http_req *r)
{
	struct gcp_shared *sh = r->arg;

	if (sh->creds.kind == GCP_CRED_NONE)
		return http_req_header(r, "Metadata-Flavor", "Google");
	return http_req_header(r, "Content-Type",
	    "application/x-www-form-urlencoded");
}

static enum http_verdict
gcp_fetch_classify(struct http_req *r, long status, const struct buf *body)
{
	/* google-auth's retryable token answers (PROVIDERS.md C4). */
	if (r->transport_err || status == 408 || status == 429 ||
	    status >= 500)
		return HTTP_RETRY;
	return HTTP_DONE;
}

static void
gcp_fetch_done(struct http_req *r, int err, long status,
    const struct buf *body)
{
	struct gcp_shared *sh = r->arg;
	struct gcp_call_list list = TAILQ_HEAD_INITIALIZER(list);
	struct gcp_call *c;
	char msg[PROV_MSG_LEN];
	struct buf tok;
	uint32_t expires_in = 0;
	uint64_t now;
	int e;

	sh->fetching = false;
	buf_clear(&sh->fetch_body);
	if (sh->closing)
		return;
	now = gcp_now_us();
	buf_init(&tok, GCP_MAX_TOKEN + 16);
	if (err == ERR_TIMEOUT) {
		e = ERR_TIMEOUT;
		snprintf(msg, sizeof(msg), "no answer within %u ms",
		    sh->timeout_ms);
	} else if (err != 0) {
		e = err == ERR_NOMEM || err == ERR_BUSY ? err :
		    ERR_PROVIDER_UNAVAILABLE;
		snprintf(msg, sizeof(msg), "%s", r->errmsg[0] != '\0' ?
		    r->errmsg : "token endpoint unreachable");
	} else if (status != 200)
		e = gcp_token_error(status, body->data, body->len, msg,
		    sizeof(msg));
	else
		e = gcp_token_parse(body->data, body->len, &tok, &expires_in,
		    msg, sizeof(msg));
	if (e != 0) {
		buf_done(&tok);
		sh->fetch_failed_us = now;
		gcp_fetch_fail(sh, e, msg);
		return;
	}
	gcp_token_drop(sh);
	sh->bearer_size = tok.len + 1;
	if ((sh->bearer = OPENSSL_secure_malloc(sh->bearer_size)) == NULL) {
		buf_done(&tok);
		sh->bearer_size = 0;
		gcp_fetch_fail(sh, ERR_NOMEM, "out of memory");
		return;
	}
	memcpy(sh->bearer, tok.data, tok.len + 1);
	buf_done(&tok);
	sh->gen++;
	sh->got_us = now;
	sh->exp_us = now + (uint64_t)expires_in * GCP_US;
	sh->stale = false;
	sh->fetch_failed_us = 0;
	/* Everyone who waited goes now, with the token just issued. */
	TAILQ_CONCAT(&list, &sh->waiters, wait);
	while ((c = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, c, wait);
		c->waiting = false;
		gcp_call_send(c);
	}
}

/* Start the one token fetch unless it is running. May fail the waiting
 * calls before returning. */
static void
gcp_fetch_start(struct gcp_shared *sh)
{
	struct buf jwt;
	int r = 0;

	if (sh->fetching || sh->closing)
		return;
	buf_clear(&sh->fetch_body);
	memset(&sh->fetch, 0, sizeof(sh->fetch));
	sh->fetch.url = sh->token_url;
	sh->fetch.method = "POST";
	switch (sh->creds.kind) {
	case GCP_CRED_SERVICE_ACCOUNT:
		/* aud is the token URI the assertion is sent to. */
		buf_init(&jwt, GCP_MAX_TOKEN_BODY);
		if ((r = gcp_jwt_assertion(&sh->creds, sh->scope,
		    sh->token_url, (int64_t)time(NULL), &jwt)) == 0)
			r = gcp_token_body_jwt((const char *)jwt.data, jwt.len,
			    &sh->fetch_body);
		buf_done(&jwt);
		break;
	case GCP_CRED_AUTHORIZED_USER:
		r = gcp_token_body_refresh(&sh->creds, &sh->fetch_body);
		break;
	default:
		sh->fetch.method = "GET";
		break;
	}
	if (r != 0) {
		gcp_fetch_fail(sh, r == ERR_NOMEM ? r : ERR_INTERNAL,
		    "cannot build the token request");
		return;
	}
	sh->fetch.body = sh->fetch_body.data;
	sh->fetch.body_len = sh->fetch_body.len;
	sh->fetch.prepare = gcp_fetch_prepare;
	sh->fetch.classify = gcp_fetch_classify;
	sh->fetch.done = gcp_fetch_done;
	sh->fetch.arg = sh;
	sh->fetching = true;
	if ((r = http_start(sh->auth, &sh->fetch)) != 0) {
		sh->fetching = false;
		buf_clear(&sh->fetch_body);
		gcp_fetch_fail(sh, r, "out of memory");
	}
}

const struct provider_ops provider_gcp = {
	.name = "gcp",
	.match = gcp_match,
	.open = gcp_open,
	.close = gcp_close,
	.start = gcp_start,
	.cancel = gcp_cancel,
	/* Cloud KMS has no ReEncrypt: ops unwraps and wraps inside kmsd. */
	.rewrap = NULL,
	.context_hash = NULL,
	.check_config = gcp_check_config,
	.section = "gcp",
};
