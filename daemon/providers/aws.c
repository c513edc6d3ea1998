/*
 * aws.c: the AWS KMS provider (key ids: ARNs, alias/NAME, key ids: every
 * form no other provider claims, DESIGN 3.1).
 *
 * wrap = Encrypt, unwrap = Decrypt (with KeyId, so KMS checks the blob
 * belongs to the configured key), rewrap between two AWS versions =
 * ReEncrypt (the data key never leaves KMS), all over the JSON 1.1
 * protocol on http.c, signed with SigV4 (aws_sigv4.c) in prepare() before
 * every try, so retries carry a fresh date and the current credentials.
 * Bodies and responses are built and read by aws_parse.c; credentials come
 * from the chain in aws_creds.c.
 *
 * Owns:
 * - one aws_ctx per configuration (settings, the "aws" http_client with
 *   its in-flight bound, queue and deadline, and the credential chain),
 *   shared by every AWS key version opened from that configuration, so
 *   all AWS keys share one credential cache and one request bound;
 * - one aws_key per key version (key id, region, URL, signed Host);
 * - one aws_call per started operation, owned by this file from start()
 *   until it calls the caller's done() exactly once. A call is in exactly
 *   one place: waiting for credentials (ctx's chain queue) or in http.c.
 *   Finished calls are kept on the context for reuse (their buffers wiped,
 *   at most max_inflight of them), as are one signer output and one
 *   parsed result, used and wiped within a single callback: a request
 *   then costs few allocations here.
 *   cancel() takes it out of either and completes it with ERR_TIMEOUT at
 *   once; http.c and the chain promise no later callback for it, so a late
 *   completion never reaches freed memory.
 *
 * Errors (aws_parse_error): InvalidCiphertext/IncorrectKey ->
 * decryption_failed; access, signature and key-state errors ->
 * provider_denied with KMS's message; throttling and 429 -> retried by
 * http.c with jittered backoff inside the deadline, then throttled; 5xx
 * and transport errors -> retried, then provider_unavailable; the deadline
 * -> timeout. An ExpiredToken answer refreshes refreshable credentials
 * and repeats the request once.
 *
 * Encryption context: the map goes to KMS as EncryptionContext. KMS treats
 * an empty map exactly like no context, so for AWS keys {} and "no
 * context" are interchangeable (a value wrapped with one unwraps with the
 * other). kmsd sends {} as given rather than refusing it, because that is
 * what kms_encrypted and the AWS SDKs do and data written by them must
 * keep working; the local, test and Google providers keep the two apart.
 *
 * Nothing here logs a secret or puts one in a message: bodies carrying
 * plaintexts live in wipe-on-free bufs, and KMS messages are cut at the
 * first line break by aws_parse_error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "aws_creds.h"
#include "aws_parse.h"
#include "aws_sigv4.h"
#include "config.h"
#include "duration.h"
#include "err.h"
#include "http.h"
#include "log.h"
#include "provider.h"

/* Tries per request, as botocore's standard retry mode: enough to ride
 * out a throttling burst or one bad connection inside the deadline. */
#define AWS_MAX_TRIES 3
/* [aws] timeout bounds: less cannot reach a region, more would let one
 * client wait longer than any caller does. */
#define AWS_TIMEOUT_MIN_MS 10
#define AWS_TIMEOUT_MAX_MS 300000
/* [aws] max_inflight and max_queue bounds (each queued request is a few
 * hundred bytes; each in-flight one may hold a connection). */
#define AWS_INFLIGHT_MAX 4096
#define AWS_QUEUE_MAX 65536
/* A request body: a 6144-byte blob in base64 plus two contexts (a
 * context is bounded by the frame size, JSON escaping at most six times
 * that). */
#define AWS_BODY_MAX (1024 * 1024)
/* A finished call is kept for reuse only with a body buffer up to this
 * size (a body is under 1 KB unless its context is large), so idle calls
 * do not hold the rare large one. */
#define AWS_KEEP_BODY 16384
/* Region names ("us-gov-west-1") and profile names. */
#define AWS_NAME_MAX 64

static const char aws_content_type[] = "application/x-amz-json-1.1";

TAILQ_HEAD(aws_call_list, aws_call);

/* One per configuration; see the top of the file. */
struct aws_ctx {
	unsigned refs;
	/* what the context was made for: reused only for the same ones */
	const struct config *cfg;
	struct http *http;
	struct event_base *base;
	struct http_client *hc;
	struct aws_chain *chain;
	char *region;			/* default region, or NULL */
	char *endpoint;			/* override for every key, or NULL */
	unsigned timeout_ms;
	struct aws_call_list calls;	/* every live call */
	struct aws_sigkey *sigkey;	/* secure heap; NULL until first use */
	/* Kept for reuse; see the top of the file. */
	struct aws_call_list free_calls;
	unsigned n_free_calls;
	unsigned max_free_calls;	/* [aws] max_inflight */
	struct sigv4_out sig;		/* wiped once its headers are set */
	struct aws_kms_result res;	/* wiped once read */
};

/* The last derived SigV4 signing key, for one credential generation, UTC
 * day and region: a signature then costs one HMAC instead of five. In the
 * secure heap, wiped when replaced or freed. */
struct aws_sigkey {
	int valid;
	uint64_t gen;
	time_t day;			/* UTC days since the epoch */
	char region[64];
	uint8_t key[SIGV4_KEY_LEN];
};

/*
 * The context opened last. keyring_open opens every key version of one
 * configuration in a row, so versions of that configuration find it here
 * and share it; a reload (a new config) gets a new one. Cleared when that
 * context is freed, so a stale pointer never matches a new configuration
 * allocated at the same address.
 */
static struct aws_ctx *aws_latest;

struct aws_key {
	struct aws_ctx *ctx;
	char *key_id;
	char *region;
	char *url;
	char *host;			/* Host header, signed and sent */
	char *path;			/* request-line path, signed */
};

struct aws_call {
	struct aws_ctx *ctx;
	struct aws_key *key;		/* where the request goes now */
	struct aws_key *dest;		/* rewrap in two steps: where next */
	struct prov_call *pc;
	enum aws_kms_op op;
	struct http_req req;
	struct buf body;		/* the JSON; may hold a plaintext */
	struct buf plain;		/* two-step rewrap: the data key */
	struct aws_chain_waiter w;
	uint64_t gen;			/* credentials last signed with */
	const char *why;		/* why prepare() failed, static text */
	int creds_retried;
	int in_http;
	TAILQ_ENTRY(aws_call) link;
};

/* Settings from [aws]; strings point into the config. */
struct aws_conf {
	const char *region;
	const char *endpoint;
	const char *sts_endpoint;
	const char *imds_endpoint;
	const char *profile;
	const char *ca_file;
	unsigned timeout_ms;
	unsigned max_inflight;
	unsigned max_queue;
};

static const char *
aws_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* ---- settings ---- */

/* "10" or "10s" = seconds, "500ms", "5m": config.c's duration syntax. */
static int
aws_parse_duration(const char *s, unsigned *ret_ms)
{
	return duration_parse_ms(s, AWS_TIMEOUT_MIN_MS, AWS_TIMEOUT_MAX_MS,
	    ret_ms);
}

static int
aws_parse_count(const char *s, unsigned long max, unsigned *ret)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v == 0 || v > max)
		return -1;
	*ret = (unsigned)v;
	return 0;
}

static int
aws_region_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > AWS_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

static int
aws_visible(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/*
 * Check an endpoint URL and split out what SigV4 signs: the Host header
 * as curl would send it (host[:port], the port only when not the
 * scheme's default) and the path. Parsed by curl's own parser, so what
 * is signed is where curl connects. ret_host/ret_path may be NULL.
 */
static int
aws_url_parts(const char *url, char **ret_host, char **ret_path, char *err,
    size_t errlen)
{
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	char *q = NULL, *user = NULL, *frag = NULL;
	CURLU *u;
	int r = ERR_BAD_REQUEST;

	if ((u = curl_url()) == NULL) {
		err_printf(err, errlen, "out of memory");
		return ERR_NOMEM;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		err_printf(err, errlen, "not a URL");
		goto out;
	}
	if (strcasecmp(scheme, "https") != 0 && strcasecmp(scheme, "http") !=
	    0) {
		err_printf(err, errlen, "only https:// (or http:// to a "
		    "loopback address) is accepted");
		goto out;
	}
	if (!http_url_allowed(url)) {
		err_printf(err, errlen, "plain http is only for loopback "
		    "addresses and the metadata services");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
		/* not echoed: a user part may carry a password */
		err_printf(err, errlen, "a user, query or fragment is not "
		    "accepted in an endpoint URL");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT) !=
	    CURLUE_OK)
		port = NULL;
	r = ERR_NOMEM;
	if (ret_host != NULL) {
		if (port != NULL ? asprintf(ret_host, "%s:%s", host, port) < 0 :
		    (*ret_host = strdup(host)) == NULL) {
			*ret_host = NULL;
			err_printf(err, errlen, "out of memory");
			goto out;
		}
	}
	if (ret_path != NULL && (*ret_path = strdup(path)) == NULL) {
		if (ret_host != NULL) {
			free(*ret_host);
			*ret_host = NULL;
		}
		err_printf(err, errlen, "out of memory");
		goto out;
	}
	r = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(q);
	curl_free(user);
	curl_free(frag);
	curl_url_cleanup(u);
	return r;
}

/*
 * Read and check [aws] (s may be NULL). 0, or -1 with "FILE:LINE: ..."
 * in err. check_config and open share it, so what passed the check is
 * what runs.
 */
static int
aws_conf_read(const struct config *cfg, const struct cfg_section *s,
    struct aws_conf *c, char *err, size_t errlen)
{
	static const char *const known[] = { "region", "endpoint",
	    "sts_endpoint", "imds_endpoint", "profile", "ca_file", "timeout",
	    "max_inflight", "max_queue" };
	const char *path = cfg != NULL && cfg->path != NULL ? cfg->path :
	    "config";
	char why[256];

	memset(c, 0, sizeof(*c));
	c->timeout_ms = HTTP_DEFAULT_DEADLINE_MS;
	c->max_inflight = HTTP_DEFAULT_MAX_INFLIGHT;
	c->max_queue = HTTP_DEFAULT_MAX_QUEUE;
	if (s == NULL)
		return 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct cfg_opt *o = &s->opts[i];
		const char *v = o->value;
		size_t k;

		for (k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			if (strcmp(o->name, known[k]) == 0)
				break;
		if (k == sizeof(known) / sizeof(known[0])) {
			err_printf(err, errlen, "%s:%d: unknown option '%s' in "
			    "[aws] (known: region, endpoint, sts_endpoint, "
			    "imds_endpoint, profile, ca_file, timeout, "
			    "max_inflight, max_queue)", path, o->line, o->name);
			return -1;
		}
		if (strcmp(o->name, "region") == 0) {
			if (!aws_region_ok(v))
				goto bad_region;
			c->region = v;
		} else if (strcmp(o->name, "profile") == 0) {
			if (!aws_visible(v, AWS_NAME_MAX)) {
				err_printf(err, errlen,
				    "%s:%d: profile must be "
				    "1-%d printable characters without spaces",
				    path, o->line, AWS_NAME_MAX);
				return -1;
			}
			c->profile = v;
		} else if (strcmp(o->name, "ca_file") == 0) {
			if (access(v, R_OK) != 0) {
				err_printf(err, errlen, "%s:%d: ca_file %s is "
				    "not readable", path, o->line, v);
				return -1;
			}
			c->ca_file = v;
		} else if (strcmp(o->name, "timeout") == 0) {
			if (aws_parse_duration(v, &c->timeout_ms) != 0) {
				err_printf(err, errlen,
				    "%s:%d: timeout must be "
				    "a duration from %dms to %ds, like 2s or "
				    "500ms", path, o->line, AWS_TIMEOUT_MIN_MS,
				    AWS_TIMEOUT_MAX_MS / 1000);
				return -1;
			}
		} else if (strcmp(o->name, "max_inflight") == 0) {
			if (aws_parse_count(v, AWS_INFLIGHT_MAX,
			    &c->max_inflight) != 0) {
				err_printf(err, errlen, "%s:%d: max_inflight "
				    "must be 1-%d", path, o->line,
				    AWS_INFLIGHT_MAX);
				return -1;
			}
		} else if (strcmp(o->name, "max_queue") == 0) {
			if (aws_parse_count(v, AWS_QUEUE_MAX,
			    &c->max_queue) != 0) {
				err_printf(err, errlen, "%s:%d: max_queue must "
				    "be 1-%d", path, o->line, AWS_QUEUE_MAX);
				return -1;
			}
		} else {
			/* the three endpoints */
			if (aws_url_parts(v, NULL, NULL, why,
			    sizeof(why)) != 0) {
				err_printf(err, errlen, "%s:%d: %s: %s", path,
				    o->line, o->name, why);
				return -1;
			}
			if (strcmp(o->name, "endpoint") == 0)
				c->endpoint = v;
			else if (strcmp(o->name, "sts_endpoint") == 0)
				c->sts_endpoint = v;
			else
				c->imds_endpoint = v;
		}
		continue;
bad_region:
		err_printf(err, errlen, "%s:%d: region must be like us-east-1 "
		    "(a-z 0-9 -)", path, o->line);
		return -1;
	}
	return 0;
}

static int
aws_check_config(const struct config *cfg, const struct cfg_section *s,
    char *err, size_t errlen)
{
	struct aws_conf c;

	return aws_conf_read(cfg, s, &c, err, errlen);
}

/* ---- the shared context ---- */

static void
aws_call_destroy(struct aws_call *ac)
{
	buf_done(&ac->body);
	buf_done(&ac->plain);
	free(ac);
}

static void
aws_ctx_unref(struct aws_ctx *ctx)
{
	struct aws_call *ac;

	if (ctx == NULL || --ctx->refs > 0)
		return;
	if (aws_latest == ctx)
		aws_latest = NULL;
	/* No call can be live: each pins its keyring, so its key. */
	while ((ac = TAILQ_FIRST(&ctx->free_calls)) != NULL) {
		TAILQ_REMOVE(&ctx->free_calls, ac, link);
		aws_call_destroy(ac);
	}
	sigv4_out_done(&ctx->sig);
	aws_parse_kms_result_done(&ctx->res);
	aws_chain_free(ctx->chain);
	http_client_free(ctx->hc);
	if (ctx->sigkey != NULL)
		OPENSSL_secure_clear_free(ctx->sigkey, sizeof(*ctx->sigkey));
	free(ctx->region);
	free(ctx->endpoint);
	free(ctx);
}

static int
aws_ctx_new(const struct prov_env *env, struct aws_ctx **ret, char *err,
    size_t errlen)
{
	struct http_client_opts ho;
	struct aws_chain_conf cc;
	struct aws_ctx *ctx;
	struct aws_conf c;
	const char *region, *endpoint, *ca;
	int r;

	if (env == NULL || env->http == NULL || env->base == NULL) {
		err_printf(err, errlen, "AWS keys need the HTTPS transport");
		return ERR_INTERNAL;
	}
	if (aws_conf_read(env->cfg, env->cfg != NULL ?
	    config_section(env->cfg, "aws") : NULL, &c, err, errlen) != 0)
		return ERR_BAD_REQUEST;
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL) {
		err_printf(err, errlen, "out of memory");
		return ERR_NOMEM;
	}
	ctx->refs = 1;
	ctx->cfg = env->cfg;
	ctx->http = env->http;
	ctx->base = env->base;
	ctx->timeout_ms = c.timeout_ms;
	TAILQ_INIT(&ctx->calls);
	TAILQ_INIT(&ctx->free_calls);
	ctx->max_free_calls = c.max_inflight;
	sigv4_out_init(&ctx->sig);
	aws_parse_kms_result_init(&ctx->res);

	/* region: [aws], AWS_REGION, AWS_DEFAULT_REGION, then the profile
	 * (below); a key ARN's own region wins for that key (aws_open) */
	if ((region = c.region) == NULL && (region = aws_env("AWS_REGION")) ==
	    NULL)
		region = aws_env("AWS_DEFAULT_REGION");
	if (region != NULL && !aws_region_ok(region)) {
		err_printf(err, errlen,
		    "AWS_REGION / AWS_DEFAULT_REGION is not "
		    "a region name");
		r = ERR_BAD_REQUEST;
		goto fail;
	}
	if ((ca = c.ca_file) == NULL)
		ca = aws_env("AWS_CA_BUNDLE");
	memset(&cc, 0, sizeof(cc));
	cc.profile = c.profile;
	cc.region = region;
	cc.sts_endpoint = c.sts_endpoint;
	cc.imds_endpoint = c.imds_endpoint;
	cc.ca_file = ca;
	cc.timeout_ms = c.timeout_ms;
	cc.max_waiters = c.max_inflight + c.max_queue;
	if ((r = aws_chain_new(&cc, env->base, env->http, &ctx->chain, err,
	    errlen)) != 0)
		goto fail;
	if (region == NULL)
		region = aws_chain_profile_region(ctx->chain);
	if (region != NULL && (!aws_region_ok(region) ||
	    (ctx->region = strdup(region)) == NULL)) {
		err_printf(err, errlen, "bad region in the AWS profile");
		r = ERR_BAD_REQUEST;
		goto fail;
	}

	/* endpoint: [aws], AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL */
	if ((endpoint = c.endpoint) == NULL) {
		const char *ign;

		ign = aws_env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
		if ((ign == NULL || strcasecmp(ign, "true") != 0) &&
		    (endpoint = aws_env("AWS_ENDPOINT_URL_KMS")) == NULL)
			endpoint = aws_env("AWS_ENDPOINT_URL");
	}
	if (endpoint != NULL) {
		char why[160];

		if ((r = aws_url_parts(endpoint, NULL, NULL, why,
		    sizeof(why))) != 0) {
			err_printf(err, errlen, "KMS endpoint (%s): %s",
			    c.endpoint != NULL ? "[aws] endpoint" :
			    "AWS_ENDPOINT_URL_KMS or AWS_ENDPOINT_URL", why);
			goto fail;
		}
		if ((ctx->endpoint = strdup(endpoint)) == NULL) {
			err_printf(err, errlen, "out of memory");
			r = ERR_NOMEM;
			goto fail;
		}
	}

	memset(&ho, 0, sizeof(ho));
	ho.name = "aws";
	ho.deadline_ms = c.timeout_ms;
	ho.max_inflight = c.max_inflight;
	ho.max_queue = c.max_queue;
	ho.max_tries = AWS_MAX_TRIES;
	ho.ca_file = ca;
	if ((ctx->hc = http_client_new(env->http, &ho)) == NULL) {
		err_printf(err, errlen, "out of memory");
		r = ERR_NOMEM;
		goto fail;
	}
	log_info("aws: credentials from %s, region %s, endpoint %s, "
	    "timeout %u ms", aws_chain_source(ctx->chain),
	    ctx->region != NULL ? ctx->region : "(from each key ARN)",
	    ctx->endpoint != NULL ? ctx->endpoint : "(per region)",
	    ctx->timeout_ms);
	*ret = ctx;
	return 0;
fail:
	ctx->refs = 1;
	aws_ctx_unref(ctx);
	return r;
}

/* ---- keys ---- */

static int
aws_match(const char *key_id)
{
	/* Anything else (DESIGN 3.1), but never the forms the other
	 * providers own: a build without one of them then refuses its key
	 * ids instead of sending them to AWS. */
	static const char *const others[] = { "insecure-test-key", "local/",
	    "vault/", "projects/" };

	if (key_id == NULL || key_id[0] == '\0')
		return 0;
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		if (strncmp(key_id, others[i], strlen(others[i])) == 0)
			return 0;
	return 1;
}

static void
aws_close(void *state)
{
	struct aws_key *k = state;

	if (k == NULL)
		return;
	aws_ctx_unref(k->ctx);
	free(k->key_id);
	free(k->region);
	free(k->url);
	free(k->host);
	free(k->path);
	free(k);
}

static int
aws_open(const char *key_id, const struct prov_env *env, void **ret_state,
    char *err, size_t errlen)
{
	struct aws_key *k;
	struct str arn_region;
	const char *region;
	int r;

	if (!aws_visible(key_id, AWS_KMS_MAX_KEY_ID) ||
	    aws_parse_arn_region(key_id, &arn_region) != 0) {
		err_printf(err, errlen, "bad AWS key id: want a key ARN, an "
		    "alias ARN, alias/NAME or a key id");
		return ERR_BAD_REQUEST;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		err_printf(err, errlen, "out of memory");
		return ERR_NOMEM;
	}
	if (aws_latest != NULL && aws_latest->cfg == env->cfg &&
	    aws_latest->http == env->http && aws_latest->base == env->base) {
		k->ctx = aws_latest;
		k->ctx->refs++;
	} else if ((r = aws_ctx_new(env, &k->ctx, err, errlen)) != 0) {
		free(k);
		return r;
	} else
		aws_latest = k->ctx;

	/* A key lives in exactly one region: an ARN's region is where the
	 * request must go, whatever the default says. */
	if (arn_region.p != NULL)
		k->region = strndup(arn_region.p, arn_region.len);
	else if ((region = k->ctx->region) != NULL)
		k->region = strdup(region);
	else {
		err_printf(err, errlen, "no AWS region for '%s': set [aws] "
		    "region, AWS_REGION or AWS_DEFAULT_REGION, or use the key "
		    "ARN", key_id);
		r = ERR_BAD_REQUEST;
		goto fail;
	}
	if (k->region == NULL || (k->key_id = strdup(key_id)) == NULL)
		goto nomem;
	if (k->ctx->endpoint != NULL)
		k->url = strdup(k->ctx->endpoint);
	else if (asprintf(&k->url, "https://kms.%s.amazonaws.com%s/",
	    k->region, strncmp(k->region, "cn-", 3) == 0 ? ".cn" : "") < 0)
		k->url = NULL;
	if (k->url == NULL)
		goto nomem;
	if ((r = aws_url_parts(k->url, &k->host, &k->path, err, errlen)) != 0)
		goto fail;
	*ret_state = k;
	return 0;
nomem:
	err_printf(err, errlen, "out of memory");
	r = ERR_NOMEM;
fail:
	aws_close(k);
	return r;
}

/* ---- one call ---- */

static void aws_call_go(struct aws_call *ac);
static void aws_call_send(struct aws_call *ac);

static const char *
aws_op_name(enum aws_kms_op op)
{
	switch (op) {
	case AWS_KMS_ENCRYPT:
		return "Encrypt";
	case AWS_KMS_DECRYPT:
		return "Decrypt";
	case AWS_KMS_REENCRYPT:
		return "ReEncrypt";
	}
	return "?";
}

/* Done with ac: wiped and kept for the next call, or freed. */
static void
aws_call_free(struct aws_call *ac)
{
	struct aws_ctx *ctx = ac->ctx;

	if (ctx->n_free_calls >= ctx->max_free_calls ||
	    ac->body.cap > AWS_KEEP_BODY) {
		aws_call_destroy(ac);
		return;
	}
	buf_clear(&ac->body);
	buf_clear(&ac->plain);
	TAILQ_INSERT_HEAD(&ctx->free_calls, ac, link);
	ctx->n_free_calls++;
}

/*
 * The single exit: detach ac from wherever it waits, free it, then hand
 * the result to the caller. done() comes last because it may free the
 * keyring, and with it the key and the context.
 */
static void
aws_call_finish(struct aws_call *ac, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
aws_call_finish(struct aws_call *ac, int err, const char *fmt, ...)
{
	struct prov_call *pc = ac->pc;
	char msg[PROV_MSG_LEN];
	va_list ap;

	msg[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	TAILQ_REMOVE(&ac->ctx->calls, ac, link);
	aws_chain_cancel(ac->ctx->chain, &ac->w);
	if (ac->in_http)
		http_cancel(&ac->req);
	aws_call_free(ac);
	if (err != 0) {
		provider_fail(pc, err, "%s", msg);
		return;
	}
	pc->err = 0;
	pc->msg[0] = '\0';
	pc->done(pc);
}

/* Build the body of ac->op; the data and contexts come from pc. */
static int
aws_call_body(struct aws_call *ac, const uint8_t *data, size_t len,
    const struct context *ctx, const struct context *dest_ctx)
{
	struct aws_kms_request kr;

	if (ac->op == AWS_KMS_REENCRYPT && ac->dest == NULL)
		return ERR_INTERNAL;
	memset(&kr, 0, sizeof(kr));
	kr.op = ac->op;
	kr.data = data;
	kr.data_len = len;
	kr.ctx = ctx;
	if (ac->op == AWS_KMS_REENCRYPT) {
		kr.key_id = ac->dest->key_id;
		kr.source_key_id = ac->key->key_id;
		kr.dest_ctx = dest_ctx;
	} else
		kr.key_id = ac->key->key_id;
	buf_clear(&ac->body);
	return aws_parse_kms_request(&kr, &ac->body);
}


/* The signing key for (generation, day, region), derived once a day per
 * credential generation; NULL (derive per request) when it cannot be
 * kept. */
static const uint8_t *
aws_sigkey(struct aws_ctx *ctx, uint64_t gen, const char *secret,
    const char *region, time_t now)
{
	struct aws_sigkey *sk = ctx->sigkey;
	/* POSIX time has no leap seconds: UTC days are 86400 s each. */
	time_t day = now / 86400;
	char day8[9];
	struct tm tm;

	if (now < 0 || strlen(region) >= sizeof(sk->region))
		return NULL;
	if (sk != NULL && sk->valid && sk->gen == gen && sk->day == day &&
	    strcmp(sk->region, region) == 0)
		return sk->key;
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(day8, sizeof(day8), "%Y%m%d", &tm) != 8)
		return NULL;
	if (sk == NULL &&
	    (sk = ctx->sigkey = OPENSSL_secure_zalloc(sizeof(*sk))) == NULL)
		return NULL;
	OPENSSL_cleanse(sk->key, sizeof(sk->key));
	sk->valid = 0;
	if (sigv4_signing_key(secret, day8, region, "kms", sk->key) != 0)
		return NULL;
	sk->gen = gen;
	sk->day = day;
	snprintf(sk->region, sizeof(sk->region), "%s", region);
	sk->valid = 1;
	return sk->key;
}

static int
aws_prepare(struct http_req *r)
{
	struct aws_call *ac = r->arg;
	struct aws_key *k = ac->key;
	const struct aws_creds *cr;
	struct sigv4_header h[3];
	struct sigv4_request sr;
	struct sigv4_params sp;
	struct sigv4_creds sc;
	struct sigv4_out *out = &ac->ctx->sig;
	const char *target = aws_parse_kms_target(ac->op);
	int rc;

	if ((cr = aws_chain_current(ac->ctx->chain, &ac->gen)) == NULL) {
		ac->why = "no credentials to sign with";
		return ERR_PROVIDER_UNAVAILABLE;
	}
	h[0] = (struct sigv4_header){ { "Host", 4 },
	    { k->host, strlen(k->host) } };
	h[1] = (struct sigv4_header){ { "Content-Type", 12 },
	    { aws_content_type, sizeof(aws_content_type) - 1 } };
	h[2] = (struct sigv4_header){ { "X-Amz-Target", 12 },
	    { target, strlen(target) } };
	memset(&sr, 0, sizeof(sr));
	sr.method = "POST";
	sr.path = k->path;
	sr.headers = h;
	sr.n_headers = 3;
	sr.body = ac->body.data;
	sr.body_len = ac->body.len;
	memset(&sp, 0, sizeof(sp));
	sp.region = k->region;
	sp.service = "kms";
	sp.now = time(NULL);
	/* aws_parse keeps credential bufs NUL-terminated (aws_creds.c) */
	sc.access_key = (const char *)cr->access_key_id.data;
	sc.secret_key = (const char *)cr->secret_access_key.data;
	sc.session_token = cr->session_token.len > 0 ?
	    (const char *)cr->session_token.data : NULL;
	sp.signing_key = aws_sigkey(ac->ctx, ac->gen, sc.secret_key,
	    k->region, sp.now);
	if ((rc = sigv4_sign_into(&sr, &sc, &sp, out)) != 0) {
		/* out->why is static text naming the part, never a value */
		ac->why = out->why;
		sigv4_out_clear(out);
		return rc == ERR_NOMEM ? rc : ERR_PROVIDER_UNAVAILABLE;
	}
	rc = http_req_header(r, "Host", k->host);
	if (rc == 0)
		rc = http_req_header(r, "Content-Type", aws_content_type);
	if (rc == 0)
		rc = http_req_header(r, "X-Amz-Target", target);
	/* the signer's values are NUL-terminated bufs (aws_sigv4.h) */
	for (size_t i = 0; rc == 0 && i < out->n_add; i++)
		rc = http_req_header(r, out->add[i].name.p,
		    out->add[i].value.p);
	/* http.c has its own copy, wiped when the try ends. */
	sigv4_out_clear(out);
	return rc;
}

static enum http_verdict
aws_classify(struct http_req *r, long status, const struct buf *body)
{
	struct aws_error e;

	if (r->transport_err)
		return HTTP_RETRY;
	if (status >= 200 && status <= 299)
		return HTTP_DONE;
	(void)aws_parse_error(status, NULL, 0, (const char *)body->data,
	    body->len, &e);
	return e.retryable ? HTTP_RETRY : HTTP_DONE;
}

/* Wipe a parsed result (a plaintext among it), keeping its buffers. */
static void
aws_kms_result_clear(struct aws_kms_result *res)
{
	buf_clear(&res->data);
	buf_clear(&res->key_id);
	buf_clear(&res->source_key_id);
}

/* A 2xx answer: the result into pc->out, or the next step. */
static void
aws_call_result(struct aws_call *ac, const struct buf *body)
{
	/* The context's, wiped (not freed) after each use below. */
	struct aws_kms_result *res = &ac->ctx->res;
	char why[PROV_MSG_LEN];
	int rc;

	why[0] = '\0';
	if ((rc = aws_parse_kms_response(ac->op, (const char *)body->data,
	    body->len, res, why, sizeof(why))) != 0) {
		aws_call_finish(ac, rc == ERR_NOMEM ? rc :
		    ERR_PROVIDER_UNAVAILABLE, "AWS KMS sent an unreadable "
		    "answer: %s", why);
		return;
	}
	if (ac->dest != NULL && ac->op == AWS_KMS_DECRYPT) {
		/* Rewrap across regions: the data key goes straight into an
		 * Encrypt under the new version, then is wiped. */
		buf_clear(&ac->plain);
		rc = buf_append(&ac->plain, res->data.data, res->data.len);
		aws_kms_result_clear(res);
		ac->key = ac->dest;
		ac->dest = NULL;
		ac->op = AWS_KMS_ENCRYPT;
		ac->creds_retried = 0;
		if (rc == 0)
			rc = aws_call_body(ac, ac->plain.data, ac->plain.len,
			    ac->pc->new_ctx != NULL ? ac->pc->new_ctx :
			    ac->pc->ctx, NULL);
		buf_clear(&ac->plain);
		if (rc != 0) {
			aws_call_finish(ac, rc == ERR_NOMEM ? rc :
			    ERR_BAD_REQUEST, "cannot build the AWS KMS "
			    "Encrypt request");
			return;
		}
		aws_call_go(ac);
		return;
	}
	rc = buf_append(&ac->pc->out, res->data.data, res->data.len);
	aws_kms_result_clear(res);
	if (rc != 0) {
		aws_call_finish(ac, rc, "AWS KMS answer over the output limit");
		return;
	}
	aws_call_finish(ac, 0, NULL);
}

static void
aws_done(struct http_req *r, int err, long status, const struct buf *body)
{
	struct aws_call *ac = r->arg;
	const char *op = aws_op_name(ac->op);
	struct aws_error e;

	ac->in_http = 0;
	switch (err) {
	case 0:
		break;
	case ERR_TIMEOUT:
		aws_call_finish(ac, err, "AWS KMS %s: no answer within %u ms "
		    "(%u tries)", op, ac->ctx->timeout_ms, r->tries);
		return;
	case ERR_BUSY:
		aws_call_finish(ac, err, "too many AWS KMS requests queued");
		return;
	case ERR_PROVIDER_UNAVAILABLE:
		if (ac->why != NULL) {
			aws_call_finish(ac, err, "AWS KMS %s: cannot sign: %s",
			    op, ac->why);
			return;
		}
		aws_call_finish(ac, err, "AWS KMS %s: %s (%u tries)", op,
		    r->errmsg[0] != '\0' ? r->errmsg : "unreachable",
		    r->tries);
		return;
	case ERR_TOO_LARGE:
		aws_call_finish(ac, ERR_PROVIDER_UNAVAILABLE, "AWS KMS %s: "
		    "answer too large", op);
		return;
	default:
		aws_call_finish(ac, err, "AWS KMS %s: %s", op, err_str(err));
		return;
	}
	if (status >= 200 && status <= 299) {
		aws_call_result(ac, body);
		return;
	}
	(void)aws_parse_error(status, NULL, 0, (const char *)body->data,
	    body->len, &e);
	if (e.refresh_creds && !ac->creds_retried &&
	    aws_chain_expired(ac->ctx->chain, ac->gen)) {
		/* Once: fetch fresh credentials (or use ones fetched since)
		 * and send the same request again. */
		ac->creds_retried = 1;
		aws_call_go(ac);
		return;
	}
	if (e.err == ERR_DECRYPTION_FAILED && e.message[0] == '\0')
		aws_call_finish(ac, e.err, "AWS KMS %s: %s (wrong key or "
		    "context, or a damaged ciphertext)", op, e.code);
	else
		aws_call_finish(ac, e.err, "AWS KMS %s: %s%s%s (HTTP %ld%s)",
		    op, e.code[0] != '\0' ? e.code : "error",
		    e.message[0] != '\0' ? ": " : "", e.message, status,
		    r->tries > 1 ? ", retried" : "");
}

static void
aws_send_ready(struct aws_chain_waiter *w, int err, const char *msg)
{
	struct aws_call *ac = w->arg;

	if (err != 0) {
		aws_call_finish(ac, err, "%s", msg != NULL ? msg :
		    "no AWS credentials");
		return;
	}
	aws_call_send(ac);
}

static void
aws_call_send(struct aws_call *ac)
{
	struct http_req *r = &ac->req;
	int rc;

	memset(r, 0, sizeof(*r));
	ac->why = NULL;
	r->method = "POST";
	r->url = ac->key->url;
	r->body = ac->body.data;
	r->body_len = ac->body.len;
	r->prepare = aws_prepare;
	r->classify = aws_classify;
	r->done = aws_done;
	r->arg = ac;
	if ((rc = http_start(ac->ctx->hc, r)) != 0) {
		aws_call_finish(ac, rc, "out of memory");
		return;
	}
	ac->in_http = 1;
}

/* Send once credentials are there. */
static void
aws_call_go(struct aws_call *ac)
{
	char msg[PROV_MSG_LEN];
	int r;

	msg[0] = '\0';
	r = aws_chain_get(ac->ctx->chain, &ac->w, msg, sizeof(msg));
	if (r == 0)
		aws_call_send(ac);
	else if (r < 0)
		aws_call_finish(ac, r, "%s", msg);
	/* 1: queued; aws_send_ready continues */
}

static struct aws_call *
aws_call_new(struct aws_key *k, struct prov_call *pc, enum aws_kms_op op)
{
	struct aws_ctx *ctx = k->ctx;
	struct aws_call *ac;
	struct buf body, plain;

	if ((ac = TAILQ_FIRST(&ctx->free_calls)) != NULL) {
		/* its buffers were wiped when it was kept */
		TAILQ_REMOVE(&ctx->free_calls, ac, link);
		ctx->n_free_calls--;
		body = ac->body;
		plain = ac->plain;
		memset(ac, 0, sizeof(*ac));
		ac->body = body;
		ac->plain = plain;
	} else {
		if ((ac = calloc(1, sizeof(*ac))) == NULL)
			return NULL;
		buf_init(&ac->body, AWS_BODY_MAX);
		buf_init(&ac->plain, AWS_KMS_MAX_PLAINTEXT);
	}
	ac->ctx = ctx;
	ac->key = k;
	ac->pc = pc;
	ac->op = op;
	ac->w.ready = aws_send_ready;
	ac->w.arg = ac;
	TAILQ_INSERT_TAIL(&k->ctx->calls, ac, link);
	return ac;
}

/* Check sizes against the KMS limits before anything is sent. 0 or an
 * error already reported through pc. */
static int
aws_check_input(struct prov_call *pc, enum aws_kms_op op)
{
	if (op == AWS_KMS_ENCRYPT) {
		if (pc->in_len == 0) {
			provider_fail(pc, ERR_BAD_REQUEST, "AWS KMS cannot "
			    "encrypt an empty plaintext");
			return -1;
		}
		if (pc->in_len > AWS_KMS_MAX_PLAINTEXT) {
			provider_fail(pc, ERR_TOO_LARGE, "AWS KMS encrypts at "
			    "most %d bytes", AWS_KMS_MAX_PLAINTEXT);
			return -1;
		}
		return 0;
	}
	if (pc->in_len == 0 || pc->in_len > AWS_KMS_MAX_CIPHERTEXT) {
		provider_fail(pc, ERR_DECRYPTION_FAILED, "not an AWS KMS "
		    "ciphertext (%zu bytes)", pc->in_len);
		return -1;
	}
	return 0;
}

static void
aws_start_op(struct aws_key *k, struct aws_key *dest, struct prov_call *pc,
    enum aws_kms_op op)
{
	struct aws_call *ac;
	int rc;

	if (aws_check_input(pc, op) != 0)
		return;
	if ((ac = aws_call_new(k, pc, op)) == NULL) {
		provider_fail(pc, ERR_NOMEM, "out of memory");
		return;
	}
	ac->dest = dest;
	if ((rc = aws_call_body(ac, pc->in, pc->in_len, pc->ctx,
	    op != AWS_KMS_REENCRYPT ? NULL : pc->new_ctx != NULL ?
	    pc->new_ctx : pc->ctx)) != 0) {
		aws_call_finish(ac, rc == ERR_NOMEM ? rc : ERR_BAD_REQUEST,
		    "the request cannot be sent to AWS KMS (context or key id "
		    "out of its limits)");
		return;
	}
	aws_call_go(ac);
}

static void
aws_start(void *state, struct prov_call *call)
{
	if (call->op == PROV_WRAP)
		aws_start_op(state, NULL, call, AWS_KMS_ENCRYPT);
	else if (call->op == PROV_UNWRAP)
		aws_start_op(state, NULL, call, AWS_KMS_DECRYPT);
	else
		provider_fail(call, ERR_INTERNAL, "unknown provider op");
}

static void
aws_rewrap(void *from_state, void *to_state, struct prov_call *call)
{
	struct aws_key *from = from_state, *to = to_state;

	/* ReEncrypt runs in the source key's region; a version in another
	 * region (or behind another endpoint) is reached by Decrypt there
	 * and Encrypt here, the data key held only in between. (Both keys
	 * come from one keyring, so they share one context.) */
	if (strcmp(from->region, to->region) != 0 ||
	    strcmp(from->url, to->url) != 0)
		aws_start_op(from, to, call, AWS_KMS_DECRYPT);
	else
		aws_start_op(from, to, call, AWS_KMS_REENCRYPT);
}

static void
aws_cancel(void *state, struct prov_call *call)
{
	struct aws_key *k = state;
	struct aws_call *ac;

	TAILQ_FOREACH(ac, &k->ctx->calls, link)
		if (ac->pc == call) {
			aws_call_finish(ac, ERR_TIMEOUT, "cancelled");
			return;
		}
}

const struct provider_ops provider_aws = {
	.name = "aws",
	.match = aws_match,
	.open = aws_open,
	.close = aws_close,
	.start = aws_start,
	.cancel = aws_cancel,
	.rewrap = aws_rewrap,
	.check_config = aws_check_config,
	.section = "aws",
};
