/*
 * test_aws_provider.c: the AWS KMS provider (aws.c) and its credential
 * chain (aws_creds.c) on a real event loop against an in-process fake
 * (libevent's evhttp on loopback) that plays KMS and a container
 * credential endpoint.
 *
 * Covers what the moto integration test cannot pin down precisely: many
 * requests waiting behind one credential fetch, the ExpiredToken refresh
 * done once, cancel() while waiting for credentials and while in http.c
 * (no late callback), the hold after a failed fetch, the refresh schedule,
 * source selection, [aws] checking with FILE:LINE, and key id matching.
 *
 * Each test runs in its own forked process (Check's default), so the AWS_*
 * environment it sets does not leak into the next.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>

#include "aws_creds.h"
#include "config.h"
#include "err.h"
#include "http.h"
#include "provider.h"

#define T_ARN "arn:aws:kms:us-east-1:111122223333:key/" \
	"1234abcd-12ab-34cd-56ef-1234567890ab"
#define T_AKID "AKIDFAKEFAKEFAKE"
/* Longest a test lets its loop run. */
#define T_SAFETY_MS 5000

/* ---- the fake ---- */

enum kms_mode { KMS_OK, KMS_EXPIRED_ONCE, KMS_EXPIRED, KMS_THROTTLE,
    KMS_HANG };
enum creds_mode { CREDS_OK, CREDS_HANG, CREDS_500 };

static struct {
	struct event_base *base;
	struct evhttp *http;
	int port;
	enum kms_mode kms;
	enum creds_mode creds;
	int creds_fetches;
	int creds_requests;
	int kms_requests;
	char last_token[64];
	char last_target[64];
	int auth_ok;
} fk;

static void
fk_reply(struct evhttp_request *req, int code, const char *body)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, code, code == 200 ? "OK" : "ERR", b);
	evbuffer_free(b);
}

static void
fk_cb(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *uri = evhttp_request_get_uri(req);
	const char *v;
	char body[512];

	if (strcmp(uri, "/creds") == 0) {
		fk.creds_requests++;
		if (fk.creds == CREDS_HANG)
			return;		/* never answered */
		if (fk.creds == CREDS_500) {
			fk_reply(req, 500, "oops");
			return;
		}
		fk.creds_fetches++;
		snprintf(body, sizeof(body), "{\"AccessKeyId\":\"" T_AKID "\","
		    "\"SecretAccessKey\":\"secret\",\"Token\":\"tok-%d\","
		    "\"Expiration\":\"2999-01-01T00:00:00Z\"}",
		    fk.creds_fetches);
		fk_reply(req, 200, body);
		return;
	}
	fk.kms_requests++;
	v = evhttp_find_header(h, "X-Amz-Security-Token");
	snprintf(fk.last_token, sizeof(fk.last_token), "%s", v ? v : "");
	v = evhttp_find_header(h, "X-Amz-Target");
	snprintf(fk.last_target, sizeof(fk.last_target), "%s", v ? v : "");
	v = evhttp_find_header(h, "Authorization");
	fk.auth_ok = v != NULL && strstr(v, "Credential=" T_AKID "/") != NULL &&
	    strstr(v, "/us-east-1/kms/aws4_request") != NULL;
	switch (fk.kms) {
	case KMS_HANG:
		return;
	case KMS_THROTTLE:
		fk_reply(req, 400, "{\"__type\":\"ThrottlingException\"}");
		return;
	case KMS_EXPIRED_ONCE:
		fk.kms = KMS_OK;
		/* FALLTHROUGH */
	case KMS_EXPIRED:
		fk_reply(req, 400, "{\"__type\":\"ExpiredTokenException\","
		    "\"message\":\"expired\"}");
		return;
	case KMS_OK:
		break;
	}
	if (strcmp(fk.last_target, "TrentService.Decrypt") == 0)
		fk_reply(req, 200, "{\"Plaintext\":\"cGxhaW4=\",\"KeyId\":\""
		    T_ARN "\"}");
	else
		fk_reply(req, 200, "{\"CiphertextBlob\":\"YmxvYg==\","
		    "\"KeyId\":\"" T_ARN "\"}");
}

/* ---- the provider under test ---- */

static struct config *cfg;
static struct http *hh;

struct t_call {
	struct prov_call pc;
	struct context ctx;
	int done;
	int err;
	char msg[PROV_MSG_LEN];
};

static int t_done_total;

static void
t_done(struct prov_call *pc)
{
	struct t_call *c = pc->arg;

	c->done++;
	c->err = pc->err;
	snprintf(c->msg, sizeof(c->msg), "%s", pc->msg);
	t_done_total++;
	if (pc->err == 0)
		ck_assert_uint_gt(pc->out.len, 0);
}

static void
t_call_init(struct t_call *c, enum prov_op op)
{
	memset(c, 0, sizeof(*c));
	c->pc.op = op;
	c->pc.in = (const uint8_t *)"0123456789abcdef0123456789abcdef";
	c->pc.in_len = 32;
	c->pc.ctx = &c->ctx;
	buf_init(&c->pc.out, PROV_MAX_OUT);
	c->pc.done = t_done;
	c->pc.arg = c;
}

static void
t_add_opt(const char *name, const char *value)
{
	struct cfg_section *s = &cfg->sections[0];

	s->name = "aws";
	s->opts[s->n].name = (char *)name;
	s->opts[s->n].value = (char *)value;
	s->opts[s->n].line = (int)s->n + 10;
	s->n++;
}

static void
t_clear_env(void)
{
	extern char **environ;

	for (;;) {
		char name[256];
		size_t i;

		for (i = 0; environ[i] != NULL; i++)
			if (strncmp(environ[i], "AWS_", 4) == 0)
				break;
		if (environ[i] == NULL)
			break;
		snprintf(name, sizeof(name), "%.*s",
		    (int)strcspn(environ[i], "="), environ[i]);
		unsetenv(name);
	}
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	setenv("HOME", "/nonexistent", 1);
}

static void
setup(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char url[64];

	t_clear_env();
	memset(&fk, 0, sizeof(fk));
	ck_assert_ptr_nonnull(fk.base = event_base_new());
	ck_assert_ptr_nonnull(fk.http = evhttp_new(fk.base));
	ck_assert_ptr_nonnull(bs = evhttp_bind_socket_with_handle(fk.http,
	    "127.0.0.1", 0));
	ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&sa, &sl), 0);
	fk.port = ntohs(sa.sin_port);
	evhttp_set_gencb(fk.http, fk_cb, NULL);
	ck_assert_ptr_nonnull(hh = http_new(fk.base));
	ck_assert_ptr_nonnull(cfg = calloc(1, sizeof(*cfg)));
	cfg->path = "/etc/kmsd/kmsd.conf";
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", fk.port);
	setenv("AWS_ENDPOINT_URL_KMS", url, 1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/creds", fk.port);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
	setenv("AWS_REGION", "us-east-1", 1);
}

static void
teardown(void)
{
	http_free(hh);
	evhttp_free(fk.http);
	event_base_free(fk.base);
	free(cfg);
}

static void *
t_open(const char *key_id)
{
	struct prov_env env = { "/nonexistent", fk.base, cfg, hh };
	char err[256] = "";
	void *st = NULL;

	ck_assert_msg(provider_aws.open(key_id, &env, &st, err,
	    sizeof(err)) == 0, "open: %s", err);
	return st;
}

static void
t_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(fk.base);
}

/* Run the loop until `want` calls have completed in all (-1: just run
 * for ms), or ms pass. */
static void
t_run(int want, unsigned ms)
{
	struct event *ev = evtimer_new(fk.base, t_stop_cb, NULL);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
	while (want < 0 || t_done_total < want)
		if (event_base_loop(fk.base, EVLOOP_ONCE) != 0 ||
		    event_base_got_break(fk.base))
			break;
	event_free(ev);
}

/* ---- tests ---- */

START_TEST(test_queue_behind_one_fetch)
{
	struct t_call c[5];
	void *k = t_open(T_ARN);

	t_done_total = 0;
	for (int i = 0; i < 5; i++) {
		t_call_init(&c[i], i % 2 ? PROV_UNWRAP : PROV_WRAP);
		provider_aws.start(k, &c[i].pc);
	}
	/* nothing completes inside start: all wait for the one fetch */
	ck_assert_int_eq(t_done_total, 0);
	t_run(5, T_SAFETY_MS);
	for (int i = 0; i < 5; i++) {
		ck_assert_msg(c[i].err == 0, "%d: %s", i, c[i].msg);
		buf_done(&c[i].pc.out);
	}
	ck_assert_int_eq(fk.creds_fetches, 1);
	ck_assert_int_eq(fk.kms_requests, 5);
	ck_assert_str_eq(fk.last_token, "tok-1");
	ck_assert(fk.auth_ok);
	provider_aws.close(k);
}
END_TEST

START_TEST(test_expired_token_refetches_once)
{
	struct t_call c;
	void *k = t_open(T_ARN);

	t_done_total = 0;
	fk.kms = KMS_EXPIRED_ONCE;
	t_call_init(&c, PROV_WRAP);
	provider_aws.start(k, &c.pc);
	t_run(1, T_SAFETY_MS);
	ck_assert_msg(c.err == 0, "%s", c.msg);
	ck_assert_int_eq(fk.creds_fetches, 2);
	ck_assert_int_eq(fk.kms_requests, 2);
	ck_assert_str_eq(fk.last_token, "tok-2");
	buf_done(&c.pc.out);

	/* always expired: one refresh, then provider_denied */
	fk.kms = KMS_EXPIRED;
	t_done_total = 0;
	t_call_init(&c, PROV_UNWRAP);
	provider_aws.start(k, &c.pc);
	t_run(1, T_SAFETY_MS);
	ck_assert_int_eq(c.err, ERR_PROVIDER_DENIED);
	ck_assert_ptr_nonnull(strstr(c.msg, "ExpiredTokenException"));
	ck_assert_int_eq(fk.creds_fetches, 3);
	ck_assert_int_eq(fk.kms_requests, 4);
	buf_done(&c.pc.out);
	provider_aws.close(k);
}
END_TEST

START_TEST(test_throttled_after_retries)
{
	struct t_call c;
	void *k = t_open(T_ARN);

	t_done_total = 0;
	fk.kms = KMS_THROTTLE;
	t_call_init(&c, PROV_WRAP);
	provider_aws.start(k, &c.pc);
	t_run(1, T_SAFETY_MS);
	ck_assert_int_eq(c.err, ERR_THROTTLED);
	ck_assert_int_eq(fk.kms_requests, 3);
	ck_assert_int_eq(c.pc.out.len, 0);
	buf_done(&c.pc.out);
	provider_aws.close(k);
}
END_TEST

START_TEST(test_cancel_while_waiting_for_credentials)
{
	struct t_call a, b;
	void *k;

	t_add_opt("timeout", "200ms");
	k = t_open(T_ARN);
	fk.creds = CREDS_HANG;
	t_done_total = 0;
	t_call_init(&a, PROV_WRAP);
	t_call_init(&b, PROV_WRAP);
	provider_aws.start(k, &a.pc);
	provider_aws.start(k, &b.pc);
	t_run(-1, 50);
	ck_assert_int_eq(t_done_total, 0);
	provider_aws.cancel(k, &a.pc);
	/* done at once, with ERR_TIMEOUT, and only once */
	ck_assert_int_eq(a.done, 1);
	ck_assert_int_eq(a.err, ERR_TIMEOUT);
	provider_aws.cancel(k, &a.pc);		/* already done: no-op */
	ck_assert_int_eq(a.done, 1);
	t_run(2, T_SAFETY_MS);
	ck_assert_int_eq(b.done, 1);
	ck_assert_int_eq(b.err, ERR_TIMEOUT);
	ck_assert_ptr_nonnull(strstr(b.msg, "AWS credentials (container)"));
	ck_assert_int_eq(a.done, 1);
	ck_assert_int_eq(fk.kms_requests, 0);
	buf_done(&a.pc.out);
	buf_done(&b.pc.out);
	provider_aws.close(k);
}
END_TEST

START_TEST(test_cancel_in_http_no_late_callback)
{
	struct t_call c;
	void *k;

	setenv("AWS_ACCESS_KEY_ID", T_AKID, 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
	t_add_opt("timeout", "300ms");
	k = t_open(T_ARN);
	fk.kms = KMS_HANG;
	t_done_total = 0;
	t_call_init(&c, PROV_UNWRAP);
	provider_aws.start(k, &c.pc);
	t_run(-1, 50);
	ck_assert_int_eq(fk.kms_requests, 1);
	ck_assert_int_eq(c.done, 0);
	provider_aws.cancel(k, &c.pc);
	ck_assert_int_eq(c.done, 1);
	ck_assert_int_eq(c.err, ERR_TIMEOUT);
	/* past the deadline: http.c must not call back */
	t_run(-1, 500);
	ck_assert_int_eq(c.done, 1);
	ck_assert_int_eq(fk.creds_requests, 0);
	buf_done(&c.pc.out);
	provider_aws.close(k);
}
END_TEST

START_TEST(test_failed_fetch_is_held)
{
	struct t_call a, b;
	void *k = t_open(T_ARN);

	fk.creds = CREDS_500;
	t_done_total = 0;
	t_call_init(&a, PROV_WRAP);
	provider_aws.start(k, &a.pc);
	t_run(1, T_SAFETY_MS);
	ck_assert_int_eq(a.err, ERR_PROVIDER_UNAVAILABLE);
	ck_assert_ptr_nonnull(strstr(a.msg, "HTTP 500"));
	ck_assert_int_eq(fk.creds_requests, 2);	/* one retry */
	/* right after: the same error, no new fetch */
	t_call_init(&b, PROV_WRAP);
	provider_aws.start(k, &b.pc);
	ck_assert_int_eq(b.done, 1);
	ck_assert_int_eq(b.err, ERR_PROVIDER_UNAVAILABLE);
	ck_assert_int_eq(fk.creds_requests, 2);
	buf_done(&a.pc.out);
	buf_done(&b.pc.out);
	provider_aws.close(k);
}
END_TEST

START_TEST(test_static_credentials_expired)
{
	struct t_call c;
	void *k;

	setenv("AWS_ACCESS_KEY_ID", T_AKID, 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
	k = t_open(T_ARN);
	fk.kms = KMS_EXPIRED;
	t_done_total = 0;
	t_call_init(&c, PROV_WRAP);
	provider_aws.start(k, &c.pc);
	t_run(1, T_SAFETY_MS);
	/* nothing to refresh: denied after one request */
	ck_assert_int_eq(c.err, ERR_PROVIDER_DENIED);
	ck_assert_int_eq(fk.kms_requests, 1);
	ck_assert_str_eq(fk.last_token, "");
	buf_done(&c.pc.out);
	provider_aws.close(k);
}
END_TEST

START_TEST(test_input_limits)
{
	struct t_call c;
	void *k;

	setenv("AWS_ACCESS_KEY_ID", T_AKID, 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
	k = t_open("alias/app");
	t_call_init(&c, PROV_WRAP);
	c.pc.in_len = 0;
	provider_aws.start(k, &c.pc);
	ck_assert_int_eq(c.err, ERR_BAD_REQUEST);
	t_call_init(&c, PROV_WRAP);
	c.pc.in_len = 4097;
	provider_aws.start(k, &c.pc);
	ck_assert_int_eq(c.err, ERR_TOO_LARGE);
	t_call_init(&c, PROV_UNWRAP);
	c.pc.in_len = 0;
	provider_aws.start(k, &c.pc);
	ck_assert_int_eq(c.err, ERR_DECRYPTION_FAILED);
	ck_assert_int_eq(fk.kms_requests, 0);
	provider_aws.close(k);
}
END_TEST

START_TEST(test_versions_share_one_context)
{
	struct t_call c[2];
	void *k1 = t_open(T_ARN), *k2 = t_open("alias/other");

	/* two versions of one configuration: one credential fetch */
	t_done_total = 0;
	t_call_init(&c[0], PROV_WRAP);
	t_call_init(&c[1], PROV_WRAP);
	provider_aws.start(k1, &c[0].pc);
	provider_aws.start(k2, &c[1].pc);
	t_run(2, T_SAFETY_MS);
	ck_assert_int_eq(c[0].err, 0);
	ck_assert_int_eq(c[1].err, 0);
	ck_assert_int_eq(fk.creds_fetches, 1);
	/* rewrap between them: one ReEncrypt */
	t_done_total = 0;
	buf_done(&c[0].pc.out);
	t_call_init(&c[0], PROV_UNWRAP);
	c[0].pc.new_ctx = &c[0].ctx;
	provider_aws.rewrap(k1, k2, &c[0].pc);
	t_run(1, T_SAFETY_MS);
	ck_assert_msg(c[0].err == 0, "%s", c[0].msg);
	ck_assert_str_eq(fk.last_target, "TrentService.ReEncrypt");
	ck_assert_int_eq(fk.kms_requests, 3);
	buf_done(&c[0].pc.out);
	buf_done(&c[1].pc.out);
	provider_aws.close(k1);
	provider_aws.close(k2);
}
END_TEST

/* ---- no network ---- */

START_TEST(test_schedule)
{
	time_t r, m;

	aws_chain_schedule(1000, 0, &r, &m);
	ck_assert(r == 0 && m == 0);
	/* an hour: 5 min and 1 min early */
	aws_chain_schedule(1000, 1000 + 3600, &r, &m);
	ck_assert_int_eq(r, 1000 + 3600 - AWS_CREDS_REFRESH_S);
	ck_assert_int_eq(m, 1000 + 3600 - AWS_CREDS_MUST_S);
	/* eight seconds: windows in proportion (half, quarter) */
	aws_chain_schedule(1000, 1008, &r, &m);
	ck_assert_int_eq(r, 1004);
	ck_assert_int_eq(m, 1006);
	/* already expired: due now */
	aws_chain_schedule(1000, 900, &r, &m);
	ck_assert(r == 900 && m == 900);
}
END_TEST

static int
t_chain(struct aws_chain_conf *cc, struct aws_chain **ret, char *err,
    size_t n)
{
	err[0] = '\0';
	return aws_chain_new(cc, fk.base, hh, ret, err, n);
}

START_TEST(test_sources)
{
	struct aws_chain_conf cc = { 0 };
	struct aws_chain *ch = NULL;
	const struct aws_creds *cr;
	char err[256], path[64], cpath[64];
	uint64_t gen;
	FILE *f;

	/* container (set in setup) */
	ck_assert_int_eq(t_chain(&cc, &ch, err, sizeof(err)), 0);
	ck_assert_str_eq(aws_chain_source(ch), "container");
	ck_assert_ptr_null(aws_chain_current(ch, NULL));
	aws_chain_free(ch);

	/* environment wins */
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	setenv("AWS_SESSION_TOKEN", "envtoken", 1);
	ck_assert_int_eq(t_chain(&cc, &ch, err, sizeof(err)), 0);
	ck_assert_str_eq(aws_chain_source(ch), "environment");
	ck_assert_ptr_nonnull(cr = aws_chain_current(ch, &gen));
	ck_assert_str_eq((const char *)cr->access_key_id.data, "AKIDENV");
	ck_assert_str_eq((const char *)cr->session_token.data, "envtoken");
	ck_assert_int_eq(aws_chain_get(ch, NULL, err, sizeof(err)), 0);
	/* nothing to refresh: the caller reports the refusal */
	ck_assert_int_eq(aws_chain_expired(ch, gen), 0);
	ck_assert_int_eq(aws_chain_get(ch, NULL, err, sizeof(err)), 0);
	aws_chain_free(ch);

	/* half a pair is an error */
	unsetenv("AWS_SECRET_ACCESS_KEY");
	ck_assert_int_eq(t_chain(&cc, &ch, err, sizeof(err)),
	    ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "must be set together"));

	/* an explicit profile skips the environment; files give keys and
	 * the region */
	strcpy(path, "/tmp/kmsd-aws-creds-XXXXXX");
	ck_assert_int_ne(mkstemp(path), -1);
	strcpy(cpath, "/tmp/kmsd-aws-config-XXXXXX");
	ck_assert_int_ne(mkstemp(cpath), -1);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("[app]\naws_access_key_id = AKIDFILE\n"
	    "aws_secret_access_key = filesecret\n"
	    "[rolechain]\nrole_arn = arn:aws:iam::1:role/x\n", f);
	fclose(f);
	ck_assert_ptr_nonnull(f = fopen(cpath, "w"));
	fputs("[profile app]\nregion = eu-west-3\n", f);
	fclose(f);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	setenv("AWS_CONFIG_FILE", cpath, 1);
	cc.profile = "app";
	ck_assert_msg(t_chain(&cc, &ch, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(aws_chain_source(ch), "profile app");
	ck_assert_str_eq(aws_chain_profile_region(ch), "eu-west-3");
	ck_assert_str_eq((const char *)aws_chain_current(ch,
	    NULL)->access_key_id.data, "AKIDFILE");
	aws_chain_free(ch);
	cc.profile = "missing";
	ck_assert_int_eq(t_chain(&cc, &ch, err, sizeof(err)),
	    ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "'missing'"));
	cc.profile = "rolechain";
	ck_assert_int_eq(t_chain(&cc, &ch, err, sizeof(err)),
	    ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "not supported"));
	cc.profile = NULL;

	/* web identity from the environment before container */
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", path, 1);
	setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/web", 1);
	ck_assert_int_eq(t_chain(&cc, &ch, err, sizeof(err)), 0);
	ck_assert_str_eq(aws_chain_source(ch), "web identity");
	aws_chain_free(ch);
	unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");

	/* IMDS last, unless switched off */
	unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	ck_assert_int_eq(t_chain(&cc, &ch, err, sizeof(err)),
	    ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "no AWS credentials"));
	setenv("AWS_EC2_METADATA_DISABLED", "false", 1);
	ck_assert_int_eq(t_chain(&cc, &ch, err, sizeof(err)), 0);
	ck_assert_str_eq(aws_chain_source(ch), "IMDS");
	aws_chain_free(ch);
	unlink(path);
	unlink(cpath);
}
END_TEST

static const struct {
	const char *name;
	const char *value;
	const char *want;	/* NULL: accepted */
} conf_cases[] = {
	{ "region", "eu-central-1", NULL },
	{ "region", "EU", "region must be" },
	{ "timeout", "500ms", NULL },
	{ "timeout", "2s", NULL },
	{ "timeout", "0", "timeout must be" },
	{ "timeout", "2h", "timeout must be" },
	{ "max_inflight", "8", NULL },
	{ "max_inflight", "0", "max_inflight must be" },
	{ "max_queue", "x", "max_queue must be" },
	{ "endpoint", "https://kms.example.com", NULL },
	{ "endpoint", "http://127.0.0.1:4566", NULL },
	{ "endpoint", "http://kms.example.com", "loopback" },
	{ "sts_endpoint", "ftp://x", "https://" },
	{ "imds_endpoint", "http://[::1]:80", NULL },
	{ "profile", "two words", "profile must be" },
	{ "ca_file", "/nonexistent/ca.pem", "not readable" },
	{ "regoin", "us-east-1", "unknown option 'regoin' in [aws]" },
};

START_TEST(test_check_config)
{
	char err[512] = "";
	int r;

	t_add_opt(conf_cases[_i].name, conf_cases[_i].value);
	r = provider_aws.check_config(cfg, &cfg->sections[0], err,
	    sizeof(err));
	if (conf_cases[_i].want == NULL) {
		ck_assert_msg(r == 0, "%s = %s: %s", conf_cases[_i].name,
		    conf_cases[_i].value, err);
		return;
	}
	ck_assert_int_eq(r, -1);
	ck_assert_msg(strncmp(err, "/etc/kmsd/kmsd.conf:10: ", 24) == 0 &&
	    strstr(err, conf_cases[_i].want) != NULL, "%s", err);
}
END_TEST

START_TEST(test_match_and_open)
{
	struct prov_env env = { "/nonexistent", fk.base, cfg, hh };
	char err[256];
	void *st = NULL;

	ck_assert(provider_aws.match(T_ARN));
	ck_assert(provider_aws.match("alias/app"));
	ck_assert(provider_aws.match("1234abcd-12ab-34cd-56ef-1234567890ab"));
	ck_assert(!provider_aws.match("local/dev"));
	ck_assert(!provider_aws.match("vault/k"));
	ck_assert(!provider_aws.match("projects/p/locations/l/keyRings/r/"
	    "cryptoKeys/k"));
	ck_assert(!provider_aws.match("insecure-test-key"));
	ck_assert(!provider_aws.match(""));
	ck_assert_ptr_eq(provider_find(T_ARN), &provider_aws);
	ck_assert_ptr_eq(provider_find("local/x"), &provider_local);

	ck_assert_int_eq(provider_aws.open("arn:aws:s3:::bucket", &env, &st,
	    err, sizeof(err)), ERR_BAD_REQUEST);
	ck_assert_int_eq(provider_aws.open("alias/has space", &env, &st, err,
	    sizeof(err)), ERR_BAD_REQUEST);
	unsetenv("AWS_REGION");
	ck_assert_int_eq(provider_aws.open("alias/app", &env, &st, err,
	    sizeof(err)), ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "no AWS region"));
	/* an ARN brings its region */
	ck_assert_int_eq(provider_aws.open(T_ARN, &env, &st, err,
	    sizeof(err)), 0);
	provider_aws.close(st);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("aws_provider");
	TCase *tc = tcase_create("provider");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_queue_behind_one_fetch);
	tcase_add_test(tc, test_expired_token_refetches_once);
	tcase_add_test(tc, test_throttled_after_retries);
	tcase_add_test(tc, test_cancel_while_waiting_for_credentials);
	tcase_add_test(tc, test_cancel_in_http_no_late_callback);
	tcase_add_test(tc, test_failed_fetch_is_held);
	tcase_add_test(tc, test_static_credentials_expired);
	tcase_add_test(tc, test_input_limits);
	tcase_add_test(tc, test_versions_share_one_context);
	tcase_add_test(tc, test_schedule);
	tcase_add_test(tc, test_sources);
	tcase_add_loop_test(tc, test_check_config, 0,
	    sizeof(conf_cases) / sizeof(conf_cases[0]));
	tcase_add_test(tc, test_match_and_open);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
