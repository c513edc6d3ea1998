/*
 * aws_creds.c: the AWS credential chain (see aws_creds.h for the order and
 * the refresh rules).
 *
 * Owns: the chosen source and its settings, the current credentials, the
 * one fetch in flight (a small state machine over http.c: STS, container,
 * or IMDSv2's token -> role -> credentials), the cached IMDSv2 session
 * token, and the queue of requests waiting for credentials.
 *
 * Invariants:
 * - at most one fetch runs; a waiter is queued only while one runs, tagged
 *   with that fetch's number, and is woken exactly once by the end of that
 *   fetch (or leaves by aws_chain_cancel);
 * - the current credentials change only when a fetch succeeds, in one
 *   swap, and their generation number goes up, so a request can tell
 *   whether the credentials KMS called expired are still the current ones;
 * - after a failed fetch, requests fail at once for AWS_CREDS_HOLD_MS with
 *   the same error instead of each starting a fetch: an outage of IMDS or
 *   STS is not answered with a storm of requests to it;
 * - waiters' ready() callbacks may end the chain's owner; the chain then
 *   frees itself after the callback loop (in_cb / dying);
 * - secrets live in wipe-on-free bufs only; messages and logs name the
 *   source and the failing step, never a key, token or response body.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "aws_creds.h"
#include "err.h"
#include "http.h"
#include "log.h"

/* Shared config and credentials files are a few KB (aws_parse's cap). */
#define AWS_CREDS_MAX_FILE (1024 * 1024)
/* STS WebIdentityToken is 4..20000 characters (sts service-2.json). */
#define AWS_CREDS_MAX_WEB_TOKEN 20000
/* A container authorization token is a short bearer string; an IMDSv2
 * session token is ~56 characters. Bounds only. */
#define AWS_CREDS_MAX_TOKEN 4096
/* STS form body: the web identity token percent-encoded (at most three
 * bytes each) plus the role ARN and names. */
#define AWS_CREDS_MAX_FORM (3 * AWS_CREDS_MAX_WEB_TOKEN + 8192)
/* IMDSv2 session token lifetime we ask for: the maximum, six hours. */
#define AWS_IMDS_TOKEN_TTL_S 21600
/* Re-fetch the IMDS session token this long before it lapses. */
#define AWS_IMDS_TOKEN_MARGIN_S 60
/* IAM role names: 1..64 of [\w+=,.@-]. */
#define AWS_IMDS_MAX_ROLE 64
/* After a failed fetch, fail requests at once for this long. */
#define AWS_CREDS_HOLD_MS 1000
/* Fetch attempts per step: one retry for a transient error, as the
 * metadata services are local and either answer or are absent. */
#define AWS_CREDS_MAX_TRIES 2
/* RoleSessionName: 2..64 of [\w+=,.@-] (sts service-2.json). */
#define AWS_ROLE_SESSION_MAX 64

#define AWS_MSG_LEN 160

enum aws_src {
	AWS_SRC_STATIC,
	AWS_SRC_WEB_IDENTITY,
	AWS_SRC_CONTAINER,
	AWS_SRC_IMDS,
};

enum aws_step {
	AWS_STEP_NONE,
	AWS_STEP_STS,
	AWS_STEP_CONTAINER,
	AWS_STEP_IMDS_TOKEN,
	AWS_STEP_IMDS_ROLE,
	AWS_STEP_IMDS_CREDS,
};

TAILQ_HEAD(aws_waiter_list, aws_chain_waiter);

struct aws_chain {
	enum aws_src src;
	char source[96];		/* for logs */
	char *profile_region;
	unsigned timeout_ms;
	unsigned max_waiters;
	struct http_client *hc;

	/* current credentials */
	struct aws_creds cur;
	int have;
	int stale;			/* refused as expired: fetch first */
	uint64_t gen;
	time_t refresh_at, must_at;	/* wall clock; 0 = never */

	/* the fetch */
	struct http_req req;
	enum aws_step step;
	int fetching;
	int imds_retried;		/* a 401 restarted from the token */
	uint64_t fetch_no;		/* number of the fetch running/last */
	uint64_t fetch_t0_us;
	char *url;
	struct buf form;		/* STS body: holds the identity token */
	struct buf imds_token;		/* IMDSv2 session token */
	time_t imds_token_exp;
	char role[AWS_IMDS_MAX_ROLE + 1];

	/* the last failure, repeated during the hold */
	int last_err;
	char last_msg[AWS_MSG_LEN];
	uint64_t hold_until_us;

	struct aws_waiter_list waiters;
	unsigned n_waiters;
	int in_cb;
	int dying;

	/* source settings */
	char *sts_url;
	char *role_arn;
	char *web_token_file;
	char *session_name;
	char *container_url;
	char *container_token_file;
	struct buf container_token;	/* from the environment */
	char *imds_url;			/* base, no trailing '/' */
};

static uint64_t
aws_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* An environment variable, NULL when unset or empty. */
static const char *
aws_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

static int
aws_env_true(const char *name)
{
	const char *v = aws_env(name);

	return v != NULL && strcasecmp(v, "true") == 0;
}

/*
 * Read a small file whole into out (wipe-on-free, NUL-terminated).
 * 0, 1 when it does not exist (and missing_ok), or ERR_* with a reason.
 * Only at chain creation and once per refresh for token files.
 */
static int
aws_read_file(const char *path, struct buf *out, int missing_ok, char *err,
    size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	buf_clear(out);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		if (errno == ENOENT && missing_ok)
			return 1;
		err_printf(err, errlen, "%s: %s", path, strerror(errno));
		return ERR_PROVIDER_UNAVAILABLE;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		err_printf(err, errlen, "%s: not a regular file", path);
		r = ERR_PROVIDER_UNAVAILABLE;
		goto out;
	}
	if ((size_t)st.st_size > out->max) {
		err_printf(err, errlen, "%s: larger than %zu bytes", path,
		    out->max);
		r = ERR_TOO_LARGE;
		goto out;
	}
	if ((r = buf_reserve(out, (size_t)st.st_size + 1)) != 0) {
		err_printf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		if (out->len == out->cap) {
			/* grew since fstat: read no further than the cap */
			if ((r = buf_reserve(out, 1)) != 0) {
				err_printf(err, errlen, "%s: larger than %zu "
				    "bytes", path, out->max);
				goto out;
			}
		}
		n = read(fd, out->data + out->len, out->cap - out->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_printf(err, errlen, "%s: %s", path,
			    strerror(errno));
			r = ERR_PROVIDER_UNAVAILABLE;
			goto out;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
	}
	r = buf_cstr(out);
	if (r != 0)
		err_printf(err, errlen, "%s: larger than %zu bytes", path,
		    out->max);
out:
	close(fd);
	if (r != 0)
		buf_clear(out);
	return r;
}

/* Strip surrounding whitespace from a token read from a file. */
static void
aws_trim_buf(struct buf *b)
{
	size_t s = 0, e = b->len;

	while (s < e && (b->data[s] == ' ' || b->data[s] == '\t' ||
	    b->data[s] == '\r' || b->data[s] == '\n'))
		s++;
	while (e > s && (b->data[e - 1] == ' ' || b->data[e - 1] == '\t' ||
	    b->data[e - 1] == '\r' || b->data[e - 1] == '\n'))
		e--;
	if (s > 0)
		memmove(b->data, b->data + s, e - s);
	if (b->len > e - s)
		OPENSSL_cleanse(b->data + (e - s), b->len - (e - s));
	b->len = e - s;
	(void)buf_cstr(b);
}

/* Printable ASCII without spaces: what a token or key may hold. */
static int
aws_token_ok(const uint8_t *p, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return 0;
	return 1;
}

/* [\w+=,.@-]: IAM role and session names. */
static int
aws_iam_name_ok(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s);

	if (n < min || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || strchr("_+=,.@-", c) != NULL))
			return 0;
	}
	return 1;
}

/* x-www-form-urlencoded value (RFC 3986 unreserved kept). */
static int
aws_form_append(struct buf *b, const char *name, const char *v, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	int r;

	if (b->len > 0 && (r = buf_append_byte(b, '&')) != 0)
		return r;
	if ((r = buf_append_str(b, name)) != 0 ||
	    (r = buf_append_byte(b, '=')) != 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~')
			r = buf_append_byte(b, c);
		else if ((r = buf_append_byte(b, '%')) == 0 &&
		    (r = buf_append_byte(b, (uint8_t)hex[c >> 4])) == 0)
			r = buf_append_byte(b, (uint8_t)hex[c & 15]);
		if (r != 0)
			return r;
	}
	return 0;
}

/* "https://SERVICE.REGION.amazonaws.com" (".com.cn" in China). */
static char *
aws_service_url(const char *service, const char *region)
{
	char *s = NULL;

	if (region == NULL) {
		if (asprintf(&s, "https://%s.amazonaws.com", service) < 0)
			return NULL;
		return s;
	}
	if (asprintf(&s, "https://%s.%s.amazonaws.com%s", service, region,
	    strncmp(region, "cn-", 3) == 0 ? ".cn" : "") < 0)
		return NULL;
	return s;
}

void
aws_chain_schedule(time_t now, time_t exp, time_t *ret_refresh,
    time_t *ret_must)
{
	time_t life, a, m;

	if (exp == 0) {
		*ret_refresh = 0;
		*ret_must = 0;
		return;
	}
	/* Short-lived credentials (a test server, a 15-minute role) get
	 * windows in proportion, so they are used at all before the next
	 * fetch instead of refreshed on every request. */
	life = exp > now ? exp - now : 0;
	a = life / 2 < AWS_CREDS_REFRESH_S ? life / 2 : AWS_CREDS_REFRESH_S;
	m = life / 4 < AWS_CREDS_MUST_S ? life / 4 : AWS_CREDS_MUST_S;
	*ret_refresh = exp - a;
	*ret_must = exp - m;
}

/* ---- chain set-up ---- */

static int
aws_chain_profile(struct aws_chain *ch, const struct aws_chain_conf *conf,
    struct aws_profile *p, const char **ret_name, char *err, size_t errlen)
{
	static const struct {
		const char *env;
		const char *home_rel;
		enum aws_file_kind kind;
	} files[] = {
		{ "AWS_CONFIG_FILE", ".aws/config", AWS_FILE_CONFIG },
		{ "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials",
		    AWS_FILE_CREDENTIALS },
	};
	const char *name = conf->profile, *home = aws_env("HOME");
	char perr[128], *path = NULL;
	struct buf data;
	int r = 0;

	if (name == NULL && (name = aws_env("AWS_PROFILE")) == NULL &&
	    (name = aws_env("AWS_DEFAULT_PROFILE")) == NULL)
		name = "default";
	*ret_name = name;
	buf_init(&data, AWS_CREDS_MAX_FILE);
	/* config first, credentials second: the latter's keys win */
	for (size_t i = 0; i < 2; i++) {
		const char *f = aws_env(files[i].env);

		free(path);
		path = NULL;
		if (f == NULL && home != NULL &&
		    asprintf(&path, "%s/%s", home, files[i].home_rel) < 0) {
			err_printf(err, errlen, "out of memory");
			r = ERR_NOMEM;
			goto out;
		}
		if (f == NULL && (f = path) == NULL)
			continue;
		perr[0] = '\0';
		r = aws_read_file(f, &data, 1, perr, sizeof(perr));
		if (r == 1) {
			r = 0;
			continue;
		}
		if (r != 0) {
			err_printf(err, errlen, "%s", perr);
			goto out;
		}
		if ((r = aws_parse_profile((const char *)data.data, data.len,
		    files[i].kind, name, p, perr, sizeof(perr))) != 0) {
			err_printf(err, errlen, "%s: %s", f, perr);
			goto out;
		}
	}
	if (conf->profile != NULL && !p->found) {
		err_printf(err, errlen, "[aws] profile '%s' is in neither the "
		    "config nor the credentials file", conf->profile);
		r = ERR_BAD_REQUEST;
		goto out;
	}
	if (p->region.len > 0 && (ch->profile_region =
	    strndup((const char *)p->region.data, p->region.len)) == NULL) {
		err_printf(err, errlen, "out of memory");
		r = ERR_NOMEM;
	}
out:
	free(path);
	buf_done(&data);
	return r;
}

static int
aws_chain_set_static(struct aws_chain *ch, const char *ak, size_t ak_len,
    const char *sk, size_t sk_len, const char *tok, size_t tok_len,
    char *err, size_t errlen)
{
	if (!aws_token_ok((const uint8_t *)ak, ak_len) ||
	    !aws_token_ok((const uint8_t *)sk, sk_len) ||
	    (tok_len > 0 && !aws_token_ok((const uint8_t *)tok, tok_len))) {
		err_printf(err, errlen, "%s: access key, secret or session "
		    "token is empty or holds spaces or control bytes",
		    ch->source);
		return ERR_BAD_REQUEST;
	}
	if (buf_append(&ch->cur.access_key_id, ak, ak_len) != 0 ||
	    buf_cstr(&ch->cur.access_key_id) != 0 ||
	    buf_append(&ch->cur.secret_access_key, sk, sk_len) != 0 ||
	    buf_cstr(&ch->cur.secret_access_key) != 0 ||
	    buf_append(&ch->cur.session_token, tok, tok_len) != 0 ||
	    buf_cstr(&ch->cur.session_token) != 0) {
		err_printf(err, errlen, "%s: credentials too long", ch->source);
		return ERR_BAD_REQUEST;
	}
	ch->src = AWS_SRC_STATIC;
	ch->have = 1;
	ch->gen = 1;
	return 0;
}

static int
aws_chain_web_identity(struct aws_chain *ch, const char *role_arn,
    const char *token_file, const char *session, const struct
    aws_chain_conf *conf, char *err, size_t errlen)
{
	const char *ep = conf->sts_endpoint;
	char def[32];

	if (session == NULL) {
		snprintf(def, sizeof(def), "kmsd-%lld", (long long)time(NULL));
		session = def;
	}
	if (!aws_iam_name_ok(session, 2, AWS_ROLE_SESSION_MAX)) {
		err_printf(err, errlen, "role session name must be 2-%d of "
		    "A-Z a-z 0-9 _+=,.@-", AWS_ROLE_SESSION_MAX);
		return ERR_BAD_REQUEST;
	}
	if (ep == NULL &&
	    !aws_env_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") &&
	    (ep = aws_env("AWS_ENDPOINT_URL_STS")) == NULL)
		ep = aws_env("AWS_ENDPOINT_URL");
	ch->sts_url = ep != NULL ? strdup(ep) :
	    aws_service_url("sts", conf->region);
	if (ch->sts_url == NULL || (ch->role_arn = strdup(role_arn)) == NULL ||
	    (ch->web_token_file = strdup(token_file)) == NULL ||
	    (ch->session_name = strdup(session)) == NULL) {
		err_printf(err, errlen, "out of memory");
		return ERR_NOMEM;
	}
	ch->src = AWS_SRC_WEB_IDENTITY;
	snprintf(ch->source, sizeof(ch->source), "web identity");
	return 0;
}

static int
aws_chain_container(struct aws_chain *ch, char *err, size_t errlen)
{
	const char *rel = aws_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = aws_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *tok = aws_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	const char *tokf = aws_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");

	if (rel != NULL) {
		if (rel[0] != '/') {
			err_printf(err, errlen, "AWS_CONTAINER_CREDENTIALS_"
			    "RELATIVE_URI must start with '/'");
			return ERR_BAD_REQUEST;
		}
		if (asprintf(&ch->container_url, "http://169.254.170.2%s",
		    rel) < 0) {
			ch->container_url = NULL;
			err_printf(err, errlen, "out of memory");
			return ERR_NOMEM;
		}
	} else if ((ch->container_url = strdup(full)) == NULL) {
		err_printf(err, errlen, "out of memory");
		return ERR_NOMEM;
	}
	if (tokf != NULL) {
		if ((ch->container_token_file = strdup(tokf)) == NULL) {
			err_printf(err, errlen, "out of memory");
			return ERR_NOMEM;
		}
	} else if (tok != NULL) {
		if (strpbrk(tok, "\r\n") != NULL ||
		    buf_append_str(&ch->container_token, tok) != 0 ||
		    buf_cstr(&ch->container_token) != 0) {
			err_printf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_"
			    "TOKEN is too long or holds a line break");
			return ERR_BAD_REQUEST;
		}
	}
	ch->src = AWS_SRC_CONTAINER;
	snprintf(ch->source, sizeof(ch->source), "container");
	return 0;
}

static int
aws_chain_imds(struct aws_chain *ch, const struct aws_chain_conf *conf,
    char *err, size_t errlen)
{
	const char *ep = conf->imds_endpoint;
	const char *mode = aws_env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
	size_t n;

	if (ep == NULL && (ep = aws_env("AWS_EC2_METADATA_SERVICE_ENDPOINT")) ==
	    NULL)
		ep = mode != NULL && strcasecmp(mode, "IPv6") == 0 ?
		    "http://[fd00:ec2::254]" : "http://169.254.169.254";
	if ((ch->imds_url = strdup(ep)) == NULL) {
		err_printf(err, errlen, "out of memory");
		return ERR_NOMEM;
	}
	n = strlen(ch->imds_url);
	while (n > 0 && ch->imds_url[n - 1] == '/')
		ch->imds_url[--n] = '\0';
	ch->src = AWS_SRC_IMDS;
	snprintf(ch->source, sizeof(ch->source), "IMDS");
	return 0;
}

static void aws_fetch_done(struct http_req *r, int err, long status,
    const struct buf *body);
static int aws_fetch_prepare(struct http_req *r);

int
aws_chain_new(const struct aws_chain_conf *conf, struct event_base *base,
    struct http *http, struct aws_chain **ret, char *err, size_t errlen)
{
	struct http_client_opts ho;
	struct aws_chain *ch;
	struct aws_profile p;
	const char *pname = NULL, *ak, *sk, *tok, *wf, *ra;
	int r;

	if ((ch = calloc(1, sizeof(*ch))) == NULL) {
		err_printf(err, errlen, "out of memory");
		return ERR_NOMEM;
	}
	aws_parse_creds_init(&ch->cur);
	buf_init(&ch->form, AWS_CREDS_MAX_FORM);
	buf_init(&ch->imds_token, AWS_CREDS_MAX_TOKEN);
	buf_init(&ch->container_token, AWS_CREDS_MAX_TOKEN);
	TAILQ_INIT(&ch->waiters);
	ch->timeout_ms = conf->timeout_ms != 0 ? conf->timeout_ms :
	    HTTP_DEFAULT_DEADLINE_MS;
	ch->max_waiters = conf->max_waiters != 0 ? conf->max_waiters :
	    HTTP_DEFAULT_MAX_QUEUE;
	aws_parse_profile_init(&p);

	if ((r = aws_chain_profile(ch, conf, &p, &pname, err, errlen)) != 0)
		goto out;

	/* 1. environment, unless a profile was named in kmsd's config */
	ak = aws_env("AWS_ACCESS_KEY_ID");
	sk = aws_env("AWS_SECRET_ACCESS_KEY");
	if (conf->profile == NULL && (ak != NULL || sk != NULL)) {
		if (ak == NULL || sk == NULL) {
			err_printf(err, errlen, "AWS_ACCESS_KEY_ID and "
			    "AWS_SECRET_ACCESS_KEY must be set together");
			r = ERR_BAD_REQUEST;
			goto out;
		}
		if ((tok = aws_env("AWS_SESSION_TOKEN")) == NULL)
			tok = aws_env("AWS_SECURITY_TOKEN");
		snprintf(ch->source, sizeof(ch->source), "environment");
		r = aws_chain_set_static(ch, ak, strlen(ak), sk, strlen(sk),
		    tok, tok != NULL ? strlen(tok) : 0, err, errlen);
		goto out;
	}
	/* 2. web identity: the profile's, then the environment's */
	if (p.role_arn.len > 0 && p.web_identity_token_file.len > 0) {
		r = aws_chain_web_identity(ch,
		    (const char *)p.role_arn.data,
		    (const char *)p.web_identity_token_file.data,
		    p.role_session_name.len > 0 ?
		    (const char *)p.role_session_name.data : NULL, conf, err,
		    errlen);
		goto out;
	}
	wf = aws_env("AWS_WEB_IDENTITY_TOKEN_FILE");
	ra = aws_env("AWS_ROLE_ARN");
	if (wf != NULL && ra != NULL) {
		r = aws_chain_web_identity(ch, ra, wf,
		    aws_env("AWS_ROLE_SESSION_NAME"), conf, err, errlen);
		goto out;
	}
	if (p.role_arn.len > 0) {
		err_printf(err, errlen, "profile '%s': role_arn without "
		    "web_identity_token_file (assume-role chains) is not "
		    "supported", pname);
		r = ERR_BAD_REQUEST;
		goto out;
	}
	/* 3. the profile's static keys */
	if (p.creds.access_key_id.len > 0) {
		snprintf(ch->source, sizeof(ch->source), "profile %.64s",
		    pname);
		r = aws_chain_set_static(ch,
		    (const char *)p.creds.access_key_id.data,
		    p.creds.access_key_id.len,
		    (const char *)p.creds.secret_access_key.data,
		    p.creds.secret_access_key.len,
		    (const char *)p.creds.session_token.data,
		    p.creds.session_token.len, err, errlen);
		goto out;
	}
	if (conf->profile != NULL) {
		err_printf(err, errlen, "[aws] profile '%s' has no credentials "
		    "kmsd can use", conf->profile);
		r = ERR_BAD_REQUEST;
		goto out;
	}
	/* 4. container, 5. IMDS */
	if (aws_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") != NULL ||
	    aws_env("AWS_CONTAINER_CREDENTIALS_FULL_URI") != NULL)
		r = aws_chain_container(ch, err, errlen);
	else if (!aws_env_true("AWS_EC2_METADATA_DISABLED"))
		r = aws_chain_imds(ch, conf, err, errlen);
	else {
		err_printf(err, errlen,
		    "no AWS credentials: set AWS_ACCESS_KEY_"
		    "ID/AWS_SECRET_ACCESS_KEY, a profile, web identity or "
		    "container credentials (IMDS is off: AWS_EC2_METADATA_"
		    "DISABLED)");
		r = ERR_BAD_REQUEST;
	}
out:
	aws_parse_profile_done(&p);
	if (r == 0 && ch->src != AWS_SRC_STATIC) {
		memset(&ho, 0, sizeof(ho));
		ho.name = "aws-credentials";
		ho.deadline_ms = ch->timeout_ms;
		/* one fetch at a time; its queue never holds more */
		ho.max_inflight = 1;
		ho.max_queue = 1;
		ho.max_tries = AWS_CREDS_MAX_TRIES;
		ho.ca_file = conf->ca_file;
		if ((ch->hc = http_client_new(http, &ho)) == NULL) {
			err_printf(err, errlen, "out of memory");
			r = ERR_NOMEM;
		}
	}
	if (r != 0) {
		aws_chain_free(ch);
		return r;
	}
	ch->req.prepare = aws_fetch_prepare;
	ch->req.done = aws_fetch_done;
	ch->req.arg = ch;
	*ret = ch;
	return 0;
}

static void
aws_chain_destroy(struct aws_chain *ch)
{
	if (ch->fetching)
		http_cancel(&ch->req);
	http_client_free(ch->hc);
	aws_parse_creds_done(&ch->cur);
	buf_done(&ch->form);
	buf_done(&ch->imds_token);
	buf_done(&ch->container_token);
	free(ch->url);
	free(ch->profile_region);
	free(ch->sts_url);
	free(ch->role_arn);
	free(ch->web_token_file);
	free(ch->session_name);
	free(ch->container_url);
	free(ch->container_token_file);
	free(ch->imds_url);
	free(ch);
}

void
aws_chain_free(struct aws_chain *ch)
{
	if (ch == NULL)
		return;
	if (ch->in_cb > 0) {
		/* inside our own fetch callback: finish it, then free */
		ch->dying = 1;
		return;
	}
	aws_chain_destroy(ch);
}

const char *
aws_chain_source(const struct aws_chain *ch)
{
	return ch->source;
}

const char *
aws_chain_profile_region(const struct aws_chain *ch)
{
	return ch->profile_region;
}

const struct aws_creds *
aws_chain_current(const struct aws_chain *ch, uint64_t *ret_gen)
{
	if (ret_gen != NULL)
		*ret_gen = ch->gen;
	return ch->have ? &ch->cur : NULL;
}

int
aws_chain_expired(struct aws_chain *ch, uint64_t gen)
{
	if (ch->src == AWS_SRC_STATIC)
		return 0;
	if (gen == ch->gen)
		ch->stale = 1;
	return 1;
}

/* ---- the fetch ---- */

static int
aws_fetch_step(struct aws_chain *ch, enum aws_step step, char *msg,
    size_t msglen)
{
	struct http_req *r = &ch->req;
	int rc;

	free(ch->url);
	ch->url = NULL;
	r->body = NULL;
	r->body_len = 0;
	r->method = "GET";
	switch (step) {
	case AWS_STEP_STS:
		ch->url = strdup(ch->sts_url);
		r->method = "POST";
		r->body = ch->form.data;
		r->body_len = ch->form.len;
		break;
	case AWS_STEP_CONTAINER:
		ch->url = strdup(ch->container_url);
		break;
	case AWS_STEP_IMDS_TOKEN:
		r->method = "PUT";
		if (asprintf(&ch->url, "%s/latest/api/token", ch->imds_url) < 0)
			ch->url = NULL;
		break;
	case AWS_STEP_IMDS_ROLE:
		if (asprintf(&ch->url, "%s/latest/meta-data/iam/security-"
		    "credentials/", ch->imds_url) < 0)
			ch->url = NULL;
		break;
	case AWS_STEP_IMDS_CREDS:
		if (asprintf(&ch->url, "%s/latest/meta-data/iam/security-"
		    "credentials/%s", ch->imds_url, ch->role) < 0)
			ch->url = NULL;
		break;
	case AWS_STEP_NONE:
		break;
	}
	if (ch->url == NULL) {
		err_printf(msg, msglen, "AWS credentials (%s): out of memory",
		    ch->source);
		return ERR_NOMEM;
	}
	r->url = ch->url;
	ch->step = step;
	if ((rc = http_start(ch->hc, r)) != 0) {
		err_printf(msg, msglen, "AWS credentials (%s): out of memory",
		    ch->source);
		return rc;
	}
	ch->fetching = 1;
	return 0;
}

/* Begin a fetch. 0 (it runs), or ERR_* with msg when it cannot start. */
static int
aws_fetch_start(struct aws_chain *ch, char *msg, size_t msglen)
{
	char why[128];
	struct buf tok;
	int r;

	ch->fetch_no++;
	ch->fetch_t0_us = aws_mono_us();
	ch->imds_retried = 0;
	switch (ch->src) {
	case AWS_SRC_WEB_IDENTITY:
		/* Re-read at every refresh: the token file rotates. */
		buf_init(&tok, AWS_CREDS_MAX_WEB_TOKEN);
		why[0] = '\0';
		r = aws_read_file(ch->web_token_file, &tok, 0, why,
		    sizeof(why));
		if (r == 0) {
			aws_trim_buf(&tok);
			if (!aws_token_ok(tok.data, tok.len))
				r = ERR_PROVIDER_DENIED;
		}
		if (r != 0) {
			buf_done(&tok);
			err_printf(msg, msglen,
			    "AWS credentials (web identity): "
			    "token file %s", why[0] != '\0' ? why :
			    "is empty or not a token");
			return r == ERR_NOMEM ? r : ERR_PROVIDER_UNAVAILABLE;
		}
		buf_clear(&ch->form);
		r = aws_form_append(&ch->form, "Action",
		    "AssumeRoleWithWebIdentity", 25);
		if (r == 0)
			r = aws_form_append(&ch->form, "Version", "2011-06-15",
			    10);
		if (r == 0)
			r = aws_form_append(&ch->form, "RoleArn", ch->role_arn,
			    strlen(ch->role_arn));
		if (r == 0)
			r = aws_form_append(&ch->form, "RoleSessionName",
			    ch->session_name, strlen(ch->session_name));
		if (r == 0)
			r = aws_form_append(&ch->form, "WebIdentityToken",
			    (const char *)tok.data, tok.len);
		buf_done(&tok);
		if (r != 0) {
			buf_clear(&ch->form);
			err_printf(msg, msglen,
			    "AWS credentials (web identity): "
			    "request too large");
			return r;
		}
		return aws_fetch_step(ch, AWS_STEP_STS, msg, msglen);
	case AWS_SRC_CONTAINER:
		return aws_fetch_step(ch, AWS_STEP_CONTAINER, msg, msglen);
	case AWS_SRC_IMDS:
		return aws_fetch_step(ch, ch->imds_token.len > 0 &&
		    time(NULL) < ch->imds_token_exp ? AWS_STEP_IMDS_ROLE :
		    AWS_STEP_IMDS_TOKEN, msg, msglen);
	case AWS_SRC_STATIC:
		break;
	}
	err_printf(msg, msglen, "AWS credentials: nothing to fetch");
	return ERR_INTERNAL;
}

static int
aws_fetch_prepare(struct http_req *r)
{
	struct aws_chain *ch = r->arg;
	char ttl[16];
	struct buf tok;
	int rc = 0;

	switch (ch->step) {
	case AWS_STEP_STS:
		return http_req_header(r, "Content-Type", "application/"
		    "x-www-form-urlencoded; charset=utf-8");
	case AWS_STEP_CONTAINER:
		if (ch->container_token_file != NULL) {
			/* re-read each time: the agent rotates it */
			buf_init(&tok, AWS_CREDS_MAX_TOKEN);
			if (aws_read_file(ch->container_token_file, &tok, 0,
			    NULL, 0) != 0) {
				buf_done(&tok);
				return ERR_PROVIDER_UNAVAILABLE;
			}
			aws_trim_buf(&tok);
			rc = http_req_header(r, "Authorization",
			    (const char *)tok.data);
			buf_done(&tok);
			return rc;
		}
		if (ch->container_token.len > 0)
			rc = http_req_header(r, "Authorization",
			    (const char *)ch->container_token.data);
		return rc;
	case AWS_STEP_IMDS_TOKEN:
		snprintf(ttl, sizeof(ttl), "%d", AWS_IMDS_TOKEN_TTL_S);
		return http_req_header(r,
		    "X-aws-ec2-metadata-token-ttl-seconds", ttl);
	case AWS_STEP_IMDS_ROLE:
	case AWS_STEP_IMDS_CREDS:
		return http_req_header(r, "X-aws-ec2-metadata-token",
		    (const char *)ch->imds_token.data);
	case AWS_STEP_NONE:
		break;
	}
	return ERR_INTERNAL;
}

/* Wake the waiters of the fetch that just ended. */
static void
aws_chain_wake(struct aws_chain *ch, uint64_t fetch_no, int err,
    const char *msg)
{
	struct aws_chain_waiter *w;

	/* Waiters queued by these callbacks wait for a later fetch (higher
	 * seq) and stay queued. */
	while (!ch->dying && (w = TAILQ_FIRST(&ch->waiters)) != NULL &&
	    w->seq <= fetch_no) {
		TAILQ_REMOVE(&ch->waiters, w, link);
		w->queued = 0;
		ch->n_waiters--;
		w->ready(w, err, msg);
	}
}

static void
aws_fetch_end(struct aws_chain *ch, int err, const char *msg)
{
	uint64_t no = ch->fetch_no;

	ch->fetching = 0;
	ch->step = AWS_STEP_NONE;
	buf_clear(&ch->form);
	if (err != 0) {
		ch->last_err = err;
		snprintf(ch->last_msg, sizeof(ch->last_msg), "%s", msg);
		ch->hold_until_us = aws_mono_us() +
		    (uint64_t)AWS_CREDS_HOLD_MS * 1000;
		log_warn("aws: %s", msg);
	}
	aws_chain_wake(ch, no, err, err != 0 ? msg : NULL);
}

static int
aws_fetch_creds(struct aws_chain *ch, const struct buf *body, char *msg,
    size_t msglen)
{
	struct aws_creds nc;
	char why[128];
	time_t now = time(NULL);
	int first = !ch->have, r;

	aws_parse_creds_init(&nc);
	why[0] = '\0';
	if (ch->step == AWS_STEP_STS)
		r = aws_parse_sts_creds((const char *)body->data, body->len,
		    &nc, why, sizeof(why));
	else
		r = aws_parse_container_creds((const char *)body->data,
		    body->len, &nc, why, sizeof(why));
	if (r == 0 && (buf_cstr(&nc.access_key_id) != 0 ||
	    buf_cstr(&nc.secret_access_key) != 0 ||
	    buf_cstr(&nc.session_token) != 0))
		r = ERR_NOMEM;
	if (r == 0 && nc.expiration != 0 && nc.expiration <= now) {
		snprintf(why, sizeof(why), "credentials have already expired "
		    "(is the clock right?)");
		r = ERR_PROVIDER_UNAVAILABLE;
	}
	if (r != 0) {
		aws_parse_creds_done(&nc);
		err_printf(msg, msglen, "AWS credentials (%s): %s", ch->source,
		    why[0] != '\0' ? why : "unusable response");
		return r == ERR_NOMEM ? r : ERR_PROVIDER_UNAVAILABLE;
	}
	/* the swap: the old secrets are wiped as they go */
	aws_parse_creds_done(&ch->cur);
	ch->cur = nc;
	ch->have = 1;
	ch->stale = 0;
	ch->gen++;
	ch->last_err = 0;
	aws_chain_schedule(now, nc.expiration, &ch->refresh_at, &ch->must_at);
	if (first)
		log_info("aws: credentials from %s, valid for %lld s",
		    ch->source, nc.expiration != 0 ?
		    (long long)(nc.expiration - now) : -1LL);
	else
		log_debug("aws: credentials from %s refreshed, valid for "
		    "%lld s", ch->source, nc.expiration != 0 ?
		    (long long)(nc.expiration - now) : -1LL);
	return 0;
}

static const char *
aws_step_name(enum aws_step step)
{
	switch (step) {
	case AWS_STEP_STS:
		return "STS AssumeRoleWithWebIdentity";
	case AWS_STEP_CONTAINER:
		return "container endpoint";
	case AWS_STEP_IMDS_TOKEN:
		return "IMDSv2 token";
	case AWS_STEP_IMDS_ROLE:
		return "IMDS role name";
	case AWS_STEP_IMDS_CREDS:
		return "IMDS role credentials";
	case AWS_STEP_NONE:
		break;
	}
	return "?";
}

/*
 * One step ended. Returns 0 when the fetch ended well, 1 when the next
 * step was started, ERR_* with msg when the fetch failed.
 */
static int
aws_fetch_next(struct aws_chain *ch, int err, long status,
    const struct buf *body, char *msg, size_t msglen)
{
	enum aws_step step = ch->step;
	struct aws_error ae;
	size_t n;
	int r;

	if (err != 0) {
		err_printf(msg, msglen, "AWS credentials (%s): %s: %s",
		    ch->source, aws_step_name(step),
		    ch->req.errmsg[0] != '\0' ? ch->req.errmsg :
		    err_str(err));
		return err == ERR_TIMEOUT ? ERR_TIMEOUT :
		    ERR_PROVIDER_UNAVAILABLE;
	}
	/* An expired IMDSv2 session token: get a new one, once. */
	if (status == 401 && (step == AWS_STEP_IMDS_ROLE ||
	    step == AWS_STEP_IMDS_CREDS) && !ch->imds_retried) {
		ch->imds_retried = 1;
		buf_clear(&ch->imds_token);
		step = AWS_STEP_IMDS_TOKEN;
		goto next;
	}
	if (status < 200 || status > 299) {
		if (step == AWS_STEP_STS) {
			(void)aws_parse_error(status, NULL, 0,
			    (const char *)body->data, body->len, &ae);
			err_printf(msg, msglen,
			    "AWS credentials (web identity): "
			    "STS %s%s%s", ae.code[0] != '\0' ? ae.code :
			    "error", ae.message[0] != '\0' ? ": " : "",
			    ae.message);
			return ae.err == ERR_PROVIDER_DENIED ?
			    ERR_PROVIDER_DENIED : ERR_PROVIDER_UNAVAILABLE;
		}
		err_printf(msg, msglen, "AWS credentials (%s): %s: HTTP %ld%s",
		    ch->source, aws_step_name(step), status,
		    status == 404 && step == AWS_STEP_IMDS_ROLE ?
		    " (no IAM role attached to this instance)" : "");
		return status == 401 || status == 403 ? ERR_PROVIDER_DENIED :
		    ERR_PROVIDER_UNAVAILABLE;
	}
	switch (step) {
	case AWS_STEP_IMDS_TOKEN:
		buf_clear(&ch->imds_token);
		if (!aws_token_ok(body->data, body->len) ||
		    buf_append(&ch->imds_token, body->data, body->len) != 0 ||
		    buf_cstr(&ch->imds_token) != 0) {
			buf_clear(&ch->imds_token);
			err_printf(msg, msglen, "AWS credentials (IMDS): the "
			    "token response is not a token");
			return ERR_PROVIDER_UNAVAILABLE;
		}
		ch->imds_token_exp = time(NULL) + AWS_IMDS_TOKEN_TTL_S -
		    AWS_IMDS_TOKEN_MARGIN_S;
		step = AWS_STEP_IMDS_ROLE;
		goto next;
	case AWS_STEP_IMDS_ROLE:
		/* the first line is the role name */
		for (n = 0; n < body->len && body->data[n] != '\n' &&
		    body->data[n] != '\r'; n++)
			;
		if (n == 0 || n > AWS_IMDS_MAX_ROLE) {
			err_printf(msg, msglen, "AWS credentials (IMDS): no "
			    "usable role name");
			return ERR_PROVIDER_UNAVAILABLE;
		}
		memcpy(ch->role, body->data, n);
		ch->role[n] = '\0';
		if (!aws_iam_name_ok(ch->role, 1, AWS_IMDS_MAX_ROLE)) {
			ch->role[0] = '\0';
			err_printf(msg, msglen, "AWS credentials (IMDS): the "
			    "role name holds unexpected characters");
			return ERR_PROVIDER_UNAVAILABLE;
		}
		step = AWS_STEP_IMDS_CREDS;
		goto next;
	default:
		return aws_fetch_creds(ch, body, msg, msglen);
	}
next:
	/* The steps share one deadline so requests waiting on IMDS are not
	 * held for three timeouts. */
	if (aws_mono_us() - ch->fetch_t0_us >= (uint64_t)ch->timeout_ms *
	    1000) {
		err_printf(msg, msglen,
		    "AWS credentials (%s): timed out before "
		    "the %s request", ch->source, aws_step_name(step));
		return ERR_TIMEOUT;
	}
	if ((r = aws_fetch_step(ch, step, msg, msglen)) != 0)
		return r;
	return 1;
}

static void
aws_fetch_done(struct http_req *r, int err, long status,
    const struct buf *body)
{
	struct aws_chain *ch = r->arg;
	char msg[AWS_MSG_LEN];
	int rc;

	ch->fetching = 0;
	ch->in_cb++;
	msg[0] = '\0';
	rc = aws_fetch_next(ch, err, status, body, msg, sizeof(msg));
	if (rc != 1)
		aws_fetch_end(ch, rc, msg);
	ch->in_cb--;
	if (ch->dying && ch->in_cb == 0)
		aws_chain_destroy(ch);
}

static int
aws_chain_held(const struct aws_chain *ch)
{
	return ch->last_err != 0 && aws_mono_us() < ch->hold_until_us;
}

/* aws_fetch_start, with a failure to start held like a failed fetch. */
static int
aws_fetch_begin(struct aws_chain *ch, char *msg, size_t msglen)
{
	int r;

	if ((r = aws_fetch_start(ch, msg, msglen)) != 0) {
		ch->last_err = r;
		snprintf(ch->last_msg, sizeof(ch->last_msg), "%s", msg);
		ch->hold_until_us = aws_mono_us() +
		    (uint64_t)AWS_CREDS_HOLD_MS * 1000;
	}
	return r;
}

int
aws_chain_get(struct aws_chain *ch, struct aws_chain_waiter *w, char *msg,
    size_t msglen)
{
	time_t now = time(NULL);
	char why[AWS_MSG_LEN];
	int r;

	/* Static credentials are what they are: if AWS calls them expired,
	 * each request says so (provider_denied) until they are replaced
	 * and kmsd reloaded. */
	if (ch->src == AWS_SRC_STATIC)
		return 0;
	if (ch->have && !ch->stale && (ch->must_at == 0 || now < ch->must_at)) {
		/* Usable: refresh in the background when due; a failure
		 * there is logged and the old credentials stay in use. */
		if (ch->refresh_at != 0 && now >= ch->refresh_at &&
		    !ch->fetching && !aws_chain_held(ch) &&
		    aws_fetch_begin(ch, why, sizeof(why)) != 0)
			log_warn("aws: %s", why);
		return 0;
	}
	if (!ch->fetching) {
		if (aws_chain_held(ch)) {
			err_printf(msg, msglen, "%s", ch->last_msg);
			return ch->last_err;
		}
		if ((r = aws_fetch_begin(ch, msg, msglen)) != 0)
			return r;
	}
	if (ch->n_waiters >= ch->max_waiters) {
		err_printf(msg, msglen, "too many requests waiting for AWS "
		    "credentials");
		return ERR_BUSY;
	}
	w->seq = ch->fetch_no;
	w->queued = 1;
	TAILQ_INSERT_TAIL(&ch->waiters, w, link);
	ch->n_waiters++;
	return 1;
}

void
aws_chain_cancel(struct aws_chain *ch, struct aws_chain_waiter *w)
{
	if (!w->queued)
		return;
	TAILQ_REMOVE(&ch->waiters, w, link);
	w->queued = 0;
	ch->n_waiters--;
}
