/*
 * test_aws_sigv4.c: the SigV4 signer against the published suites, case by
 * case, plus the KMS requests kmsd sends and every input it must refuse.
 *
 * - aws-c-auth v4 (38 cases): context.json + request.txt; the canonical
 *   request, string to sign, signature and the signed request (every header
 *   it carries must be a request header or one the signer told us to add).
 * - botocore aws4_testsuite (34 cases): .req/.creq/.sts/.authz with the
 *   fixed inputs of botocore's test_sigv4.py. The .req files already carry
 *   X-Amz-Date (and one X-Amz-Security-Token); like botocore's add_auth we
 *   take them out before signing and check the signer produced the same.
 * - kmsd-derived: a KMS Encrypt with and without a session token, plus the
 *   derived signing key.
 * Vectors live in tests/vectors/sigv4 (see SOURCE.md there).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <check.h>
#include <jansson.h>

#include "aws_sigv4.h"
#include "err.h"

#define VEC TEST_SRCDIR "/../vectors/sigv4"
#define AWSC_DIR VEC "/aws-c-auth-v4"
#define BOTO_DIR VEC "/botocore-aws4_testsuite"
#define KMSD_DIR VEC "/kmsd-derived"

/* Larger than any request in the suites. */
#define T_MAX_HEADERS 40
/* 2015-08-30T12:36:00Z, the suites' signing time. */
#define T_SUITE_TIME ((time_t)1440938160)

static const char *const awsc_cases[] = {
	"get-header-key-duplicate",
	"get-header-value-multiline",
	"get-header-value-order",
	"get-header-value-trim",
	"get-relative-normalized",
	"get-relative-relative-normalized",
	"get-relative-relative-unnormalized",
	"get-relative-unnormalized",
	"get-slash-dot-slash-normalized",
	"get-slash-dot-slash-unnormalized",
	"get-slash-normalized",
	"get-slash-pointless-dot-normalized",
	"get-slash-pointless-dot-unnormalized",
	"get-slash-unnormalized",
	"get-slashes-normalized",
	"get-slashes-unnormalized",
	"get-space-normalized",
	"get-space-unnormalized",
	"get-unreserved",
	"get-utf8",
	"get-vanilla",
	"get-vanilla-empty-query-key",
	"get-vanilla-query",
	"get-vanilla-query-order-encoded",
	"get-vanilla-query-order-key-case",
	"get-vanilla-query-unreserved",
	"get-vanilla-utf8-query",
	"get-vanilla-with-session-token",
	"post-header-key-case",
	"post-header-key-sort",
	"post-header-value-case",
	"post-sts-header-after",
	"post-sts-header-before",
	"post-vanilla",
	"post-vanilla-empty-query-value",
	"post-vanilla-query",
	"post-x-www-form-urlencoded",
	"post-x-www-form-urlencoded-parameters",
};

static const char *const boto_cases[] = {
	"get-header-key-duplicate",
	"get-header-value-multiline",
	"get-header-value-order",
	"get-header-value-trim",
	"get-unreserved",
	"get-utf8",
	"get-vanilla",
	"get-vanilla-empty-query-key",
	"get-vanilla-query",
	"get-vanilla-query-order-encoded",
	"get-vanilla-query-order-key",
	"get-vanilla-query-order-key-case",
	"get-vanilla-query-order-value",
	"get-vanilla-query-unreserved",
	"get-vanilla-utf8-query",
	"get-vanilla-with-session-token",
	"normalize-path/get-relative",
	"normalize-path/get-relative-relative",
	"normalize-path/get-slash",
	"normalize-path/get-slash-dot-slash",
	"normalize-path/get-slash-pointless-dot",
	"normalize-path/get-slashes",
	"normalize-path/get-space",
	"normalize-path/get-special-character",
	"post-header-key-case",
	"post-header-key-sort",
	"post-header-value-case",
	"post-sts-token/post-sts-header-after",
	"post-sts-token/post-sts-header-before",
	"post-vanilla",
	"post-vanilla-empty-query-value",
	"post-vanilla-query",
	"post-x-www-form-urlencoded",
	"post-x-www-form-urlencoded-parameters",
};

static const char *const kmsd_cases[] = {
	"kms-encrypt",
	"kms-encrypt-session-token",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- files ---- */

static char *
slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	long n;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert(fseek(f, 0, SEEK_END) == 0);
	n = ftell(f);
	ck_assert(n >= 0);
	ck_assert(fseek(f, 0, SEEK_SET) == 0);
	p = malloc((size_t)n + 1);
	ck_assert(p != NULL);
	ck_assert(fread(p, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	p[n] = '\0';
	*ret_len = (size_t)n;
	return p;
}

/* The expected-output files end without a newline; tolerate one anyway. */
static char *
slurp_text(const char *path)
{
	size_t n;
	char *p = slurp(path, &n);

	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		p[--n] = '\0';
	return p;
}

static char *
path2(const char *dir, const char *c, const char *file)
{
	size_t n = strlen(dir) + strlen(c) + strlen(file) + 3;
	char *p = malloc(n);

	ck_assert(p != NULL);
	snprintf(p, n, "%s/%s/%s", dir, c, file);
	return p;
}

/* ---- HTTP/1.1 request text: request line, headers (with continuation
 * lines), blank line, body. Names and values point into text. ---- */

struct treq {
	char *text;
	size_t text_len;
	char method[16];
	char *path;
	char *query;		/* NULL when no '?' */
	struct sigv4_header h[T_MAX_HEADERS];
	size_t n;
	const uint8_t *body;
	size_t body_len;
};

static size_t
line_end(const char *p, size_t pos, size_t len)
{
	while (pos < len && p[pos] != '\n')
		pos++;
	return pos;
}

/* Length of a line without its '\r'. */
static size_t
line_len(const char *p, size_t start, size_t eol)
{
	return eol > start && p[eol - 1] == '\r' ? eol - start - 1 :
	    eol - start;
}

static void
treq_parse(struct treq *r, char *text, size_t len)
{
	size_t eol, ll, pos, sp1, sp2;
	const char *target, *q;
	size_t tlen;

	memset(r, 0, sizeof(*r));
	r->text = text;
	r->text_len = len;
	eol = line_end(text, 0, len);
	ll = line_len(text, 0, eol);
	/* METHOD SP target SP HTTP/1.1; the target may hold spaces */
	for (sp1 = 0; sp1 < ll && text[sp1] != ' '; sp1++)
		;
	for (sp2 = ll; sp2 > sp1 && text[sp2 - 1] != ' '; sp2--)
		;
	ck_assert_msg(sp1 > 0 && sp1 < sizeof(r->method) && sp2 > sp1 + 1,
	    "bad request line");
	ck_assert(ll - sp2 == 8 && memcmp(text + sp2, "HTTP/1.1", 8) == 0);
	memcpy(r->method, text, sp1);
	r->method[sp1] = '\0';
	target = text + sp1 + 1;
	tlen = sp2 - 1 - (sp1 + 1);
	q = memchr(target, '?', tlen);
	r->path = strndup(target, q != NULL ? (size_t)(q - target) : tlen);
	ck_assert(r->path != NULL);
	if (q != NULL) {
		r->query = strndup(q + 1, tlen - (size_t)(q + 1 - target));
		ck_assert(r->query != NULL);
	}
	for (pos = eol + 1; pos < len; pos = eol + 1) {
		const char *line = text + pos, *colon;

		eol = line_end(text, pos, len);
		ll = line_len(text, pos, eol);
		if (ll == 0) {
			r->body = (const uint8_t *)text + eol + 1;
			r->body_len = eol + 1 <= len ? len - (eol + 1) : 0;
			if (eol + 1 > len)
				r->body = NULL;
			break;
		}
		if (line[0] == ' ' || line[0] == '\t') {
			/* obs-fold: the value runs on to this line's end */
			struct sigv4_header *h;

			ck_assert_msg(r->n > 0, "continuation before a header");
			h = &r->h[r->n - 1];
			h->value.len = (size_t)(line + ll - h->value.p);
			continue;
		}
		colon = memchr(line, ':', ll);
		ck_assert_msg(colon != NULL, "header line without ':'");
		ck_assert(r->n < T_MAX_HEADERS);
		r->h[r->n].name = (struct str){ line, (size_t)(colon - line) };
		r->h[r->n].value = (struct str){ colon + 1,
		    (size_t)(line + ll - colon - 1) };
		r->n++;
	}
}

static void
treq_free(struct treq *r)
{
	free(r->text);
	free(r->path);
	free(r->query);
}

static struct sigv4_request
treq_request(const struct treq *r)
{
	return (struct sigv4_request){
		.method = r->method,
		.path = r->path,
		.query = r->query,
		.headers = r->h,
		.n_headers = r->n,
		.body = r->body_len > 0 ? r->body : NULL,
		.body_len = r->body_len,
	};
}

static int
hname_is(const struct sigv4_header *h, const char *name)
{
	return h->name.len == strlen(name) &&
	    strncasecmp(h->name.p, name, h->name.len) == 0;
}

static int
hvalue_is(const struct sigv4_header *h, const char *p, size_t n)
{
	return h->value.len == n && memcmp(h->value.p, p, n) == 0;
}

/* Remove header name from r (all occurrences), returning the last value
 * (malloc'd) or NULL. */
static char *
treq_take(struct treq *r, const char *name)
{
	char *v = NULL;
	size_t k = 0;

	for (size_t i = 0; i < r->n; i++) {
		if (hname_is(&r->h[i], name)) {
			free(v);
			v = strndup(r->h[i].value.p, r->h[i].value.len);
			ck_assert(v != NULL);
		} else {
			r->h[k++] = r->h[i];
		}
	}
	r->n = k;
	return v;
}

static void
assert_buf_eq(const struct buf *b, const char *want, const char *what,
    const char *c)
{
	ck_assert_msg(b->len == strlen(want) && memcmp(b->data, want,
	    b->len) == 0, "%s: %s differs\n--- got\n%.*s\n--- want\n%s", c,
	    what, (int)b->len, b->data != NULL ? (const char *)b->data : "",
	    want);
}

/* ---- aws-c-auth style cases (also the kmsd-derived ones) ---- */

static time_t
parse_timestamp(const char *s)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	ck_assert_msg(end != NULL && *end == '\0', "bad timestamp %s", s);
	return timegm(&tm);
}

static const char *const context_keys[] = {
	"credentials", "expiration_in_seconds", "normalize", "region",
	"service", "sign_body", "timestamp", "omit_session_token",
};

static int
flag(json_t *ctx, const char *key)
{
	json_t *v = json_object_get(ctx, key);

	ck_assert_msg(v == NULL || json_is_boolean(v), "%s not a bool", key);
	return v != NULL && json_is_true(v);
}

static const char *
jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_string(v), "%s missing or not a string", key);
	return json_string_value(v);
}

/* The signed request must be exactly the request plus out->add. */
static void
check_signed_request(const char *dir, const char *c, const struct treq *rq,
    const struct sigv4_out *out)
{
	char *file = path2(dir, c, "header-signed-request.txt");
	struct treq sr;
	size_t n;
	char *text = slurp(file, &n);
	int found_auth = 0;

	treq_parse(&sr, text, n);
	ck_assert_str_eq(sr.method, rq->method);
	ck_assert_str_eq(sr.path, rq->path);
	ck_assert_int_eq(sr.n, rq->n + out->n_add);
	for (size_t i = 0; i < sr.n; i++) {
		const struct sigv4_header *h = &sr.h[i];
		int ok = 0;

		for (size_t k = 0; k < rq->n && !ok; k++)
			ok = (h->name.len == rq->h[k].name.len &&
			    strncasecmp(h->name.p, rq->h[k].name.p,
			    h->name.len) == 0 &&
			    hvalue_is(h, rq->h[k].value.p, rq->h[k].value.len));
		for (size_t k = 0; k < out->n_add && !ok; k++)
			ok = h->name.len == out->add[k].name.len &&
			    strncasecmp(h->name.p, out->add[k].name.p,
			    h->name.len) == 0 &&
			    hvalue_is(h, out->add[k].value.p,
			    out->add[k].value.len);
		ck_assert_msg(ok, "%s: signed request header %.*s: %.*s is "
		    "neither sent nor added", c, (int)h->name.len, h->name.p,
		    (int)h->value.len, h->value.p);
		if (hname_is(h, "Authorization")) {
			found_auth = 1;
			ck_assert_msg(hvalue_is(h,
			    (const char *)out->authorization.data,
			    out->authorization.len), "%s: Authorization", c);
		}
	}
	ck_assert_msg(found_auth, "%s: no Authorization line", c);
	ck_assert_int_eq(sr.body_len, rq->body_len);
	if (sr.body_len > 0)
		ck_assert(memcmp(sr.body, rq->body, sr.body_len) == 0);
	treq_free(&sr);
	free(file);
}

static void
run_json_case(const char *dir, const char *c)
{
	char *ctxfile = path2(dir, c, "context.json");
	char *reqfile = path2(dir, c, "request.txt");
	char *f_creq = path2(dir, c, "header-canonical-request.txt");
	char *f_sts = path2(dir, c, "header-string-to-sign.txt");
	char *f_sig = path2(dir, c, "header-signature.txt");
	char *creq, *sts, *sig, *text;
	json_error_t jerr;
	json_t *ctx, *cred, *v;
	const char *key;
	struct sigv4_creds creds;
	struct sigv4_params params;
	struct sigv4_request req;
	struct sigv4_out out;
	struct treq rq;
	size_t n, n_add;
	int r;

	ctx = json_load_file(ctxfile, 0, &jerr);
	ck_assert_msg(ctx != NULL, "%s: %s", ctxfile, jerr.text);
	/* A key this test does not know is a signing option it would
	 * silently not apply: fail instead. */
	json_object_foreach(ctx, key, v) {
		int known = 0;

		for (size_t i = 0; i < NELEM(context_keys); i++)
			known |= strcmp(key, context_keys[i]) == 0;
		ck_assert_msg(known, "%s: unknown context key %s", c, key);
	}
	cred = json_object_get(ctx, "credentials");
	ck_assert(json_is_object(cred));
	creds.access_key = jstr(cred, "access_key_id");
	creds.secret_key = jstr(cred, "secret_access_key");
	creds.session_token = json_object_get(cred, "token") != NULL ?
	    jstr(cred, "token") : NULL;
	memset(&params, 0, sizeof(params));
	params.region = jstr(ctx, "region");
	params.service = jstr(ctx, "service");
	params.now = parse_timestamp(jstr(ctx, "timestamp"));
	params.normalize_path = flag(ctx, "normalize");
	params.sign_body = flag(ctx, "sign_body");
	params.omit_session_token = flag(ctx, "omit_session_token");

	text = slurp(reqfile, &n);
	treq_parse(&rq, text, n);
	req = treq_request(&rq);

	r = sigv4_sign(&req, &creds, &params, &out);
	ck_assert_msg(r == 0, "%s: sign: %d %s", c, r,
	    out.why != NULL ? out.why : "");
	creq = slurp_text(f_creq);
	sts = slurp_text(f_sts);
	sig = slurp_text(f_sig);
	assert_buf_eq(&out.canonical_request, creq, "canonical request", c);
	assert_buf_eq(&out.string_to_sign, sts, "string to sign", c);
	assert_buf_eq(&out.signature, sig, "signature", c);
	/* Token added whenever there is one; content hash with sign_body. */
	n_add = 2 + (creds.session_token != NULL) + (params.sign_body != 0);
	ck_assert_int_eq(out.n_add, n_add);
	check_signed_request(dir, c, &rq, &out);
	sigv4_out_done(&out);

	/* A caller's precomputed signing key gives the same signature. */
	{
		uint8_t skey[SIGV4_KEY_LEN];
		char day[9];
		struct tm tm;

		gmtime_r(&params.now, &tm);
		strftime(day, sizeof(day), "%Y%m%d", &tm);
		ck_assert_int_eq(sigv4_signing_key(creds.secret_key, day,
		    params.region, params.service, skey), 0);
		params.signing_key = skey;
		r = sigv4_sign(&req, &creds, &params, &out);
		ck_assert_int_eq(r, 0);
		assert_buf_eq(&out.signature, sig, "signature (cached key)", c);
		sigv4_out_done(&out);

		/* One out reused (sigv4_sign_into): each signature replaces
		 * the last, every stage as from a fresh out. */
		sigv4_out_init(&out);
		for (int k = 0; k < 3; k++) {
			params.signing_key = k == 1 ? NULL : skey;
			r = sigv4_sign_into(&req, &creds, &params, &out);
			ck_assert_int_eq(r, 0);
			assert_buf_eq(&out.canonical_request, creq,
			    "canonical request (reused out)", c);
			assert_buf_eq(&out.string_to_sign, sts,
			    "string to sign (reused out)", c);
			assert_buf_eq(&out.signature, sig,
			    "signature (reused out)", c);
			ck_assert_int_eq(out.n_add, n_add);
			check_signed_request(dir, c, &rq, &out);
			sigv4_out_clear(&out);
			ck_assert_uint_eq(out.n_add, 0);
			ck_assert_uint_eq(out.authorization.len, 0);
		}
		sigv4_out_done(&out);
	}
	treq_free(&rq);
	json_decref(ctx);
	free(creq);
	free(sts);
	free(sig);
	free(ctxfile);
	free(reqfile);
	free(f_creq);
	free(f_sts);
	free(f_sig);
}

START_TEST(test_awsc)
{
	run_json_case(AWSC_DIR, awsc_cases[_i]);
}
END_TEST

/* ---- botocore cases ---- */

static void
run_boto_case(const char *c)
{
	const char *base = strrchr(c, '/') != NULL ? strrchr(c, '/') + 1 : c;
	char f_req[512], f_creq[512], f_sts[512], f_authz[512];
	char *creq, *sts, *authz, *text, *date, *tok_hdr, *token = NULL, *t;
	struct sigv4_creds creds = {
		.access_key = "AKIDEXAMPLE",
		.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	};
	struct sigv4_params params = {
		.region = "us-east-1",
		.service = "service",
		.now = T_SUITE_TIME,
		.normalize_path = 1,
	};
	struct sigv4_request req;
	struct sigv4_out out;
	struct treq rq;
	size_t n;
	int r;

	snprintf(f_req, sizeof(f_req), "%s/%s/%s.req", BOTO_DIR, c, base);
	snprintf(f_creq, sizeof(f_creq), "%s/%s/%s.creq", BOTO_DIR, c, base);
	snprintf(f_sts, sizeof(f_sts), "%s/%s/%s.sts", BOTO_DIR, c, base);
	snprintf(f_authz, sizeof(f_authz), "%s/%s/%s.authz", BOTO_DIR, c,
	    base);
	creq = slurp_text(f_creq);
	sts = slurp_text(f_sts);
	authz = slurp_text(f_authz);
	/* botocore's harness: the token is whatever the .creq signs. */
	if ((t = strstr(creq, "\nx-amz-security-token:")) != NULL) {
		t += strlen("\nx-amz-security-token:");
		token = strndup(t, strcspn(t, "\n"));
		ck_assert(token != NULL);
	}
	creds.session_token = token;

	text = slurp(f_req, &n);
	treq_parse(&rq, text, n);
	/* The signer owns these; botocore's add_auth replaces them too. */
	date = treq_take(&rq, "X-Amz-Date");
	tok_hdr = treq_take(&rq, "X-Amz-Security-Token");
	ck_assert_msg(date != NULL, "%s: .req has no X-Amz-Date", c);
	req = treq_request(&rq);

	r = sigv4_sign(&req, &creds, &params, &out);
	ck_assert_msg(r == 0, "%s: sign: %d %s", c, r,
	    out.why != NULL ? out.why : "");
	assert_buf_eq(&out.canonical_request, creq, "canonical request", c);
	assert_buf_eq(&out.string_to_sign, sts, "string to sign", c);
	assert_buf_eq(&out.authorization, authz, "authorization", c);
	assert_buf_eq(&out.amz_date, date, "x-amz-date", c);
	if (tok_hdr != NULL) {
		ck_assert(token != NULL);
		ck_assert_str_eq(tok_hdr, token);
	}
	if (token != NULL)
		assert_buf_eq(&out.session_token, token, "token", c);

	sigv4_out_done(&out);
	treq_free(&rq);
	free(date);
	free(tok_hdr);
	free(token);
	free(creq);
	free(sts);
	free(authz);
}

START_TEST(test_boto)
{
	run_boto_case(boto_cases[_i]);
}
END_TEST

/* ---- kmsd-derived KMS requests ---- */

static void
hex_decode(const char *hex, uint8_t *out, size_t n)
{
	ck_assert_int_eq(strlen(hex), 2 * n);
	for (size_t i = 0; i < n; i++) {
		unsigned int b;

		ck_assert(sscanf(hex + 2 * i, "%2x", &b) == 1);
		out[i] = (uint8_t)b;
	}
}

START_TEST(test_kmsd)
{
	const char *c = kmsd_cases[_i];
	char *f_body = path2(KMSD_DIR, c, "body.json");
	char *f_key = path2(KMSD_DIR, c, "signing-key.hex");
	char *f_req = path2(KMSD_DIR, c, "request.txt");
	char *body, *keyhex, *text;
	uint8_t want[SIGV4_KEY_LEN], got[SIGV4_KEY_LEN];
	struct treq rq;
	size_t n, blen;

	run_json_case(KMSD_DIR, c);

	/* The body signed is the JSON kmsd sends, byte for byte. */
	body = slurp(f_body, &blen);
	text = slurp(f_req, &n);
	treq_parse(&rq, text, n);
	ck_assert_int_eq(rq.body_len, blen);
	ck_assert(memcmp(rq.body, body, blen) == 0);

	keyhex = slurp_text(f_key);
	hex_decode(keyhex, want, sizeof(want));
	ck_assert_int_eq(sigv4_signing_key(
	    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830",
	    "us-east-1", "kms", got), 0);
	ck_assert(memcmp(got, want, sizeof(got)) == 0);

	treq_free(&rq);
	free(body);
	free(keyhex);
	free(f_body);
	free(f_key);
	free(f_req);
}
END_TEST

/* AWS's SigV4 documentation prints this key for 20150830/us-east-1/iam. */
START_TEST(test_signing_key_doc)
{
	uint8_t want[SIGV4_KEY_LEN], got[SIGV4_KEY_LEN];

	hex_decode("c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3"
	    "c154a4b9", want, sizeof(want));
	ck_assert_int_eq(sigv4_signing_key(
	    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830",
	    "us-east-1", "iam", got), 0);
	ck_assert(memcmp(got, want, sizeof(got)) == 0);
	ck_assert_int_eq(sigv4_signing_key("", "20150830", "us-east-1", "iam",
	    got), ERR_BAD_REQUEST);
	ck_assert_int_eq(sigv4_signing_key(NULL, "20150830", "us-east-1",
	    "iam", got), ERR_BAD_REQUEST);
}
END_TEST

/* ---- rules beyond the suites ---- */

#define HDR(n, v) { { n, sizeof(n) - 1 }, { v, sizeof(v) - 1 } }

static const struct sigv4_creds t_creds = {
	"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL,
};

static struct sigv4_params
t_params(void)
{
	return (struct sigv4_params){ .region = "us-east-1",
	    .service = "service", .now = T_SUITE_TIME, .normalize_path = 1 };
}

/* The second line (path) and third (query) of a canonical request. */
static void
canon_lines(const struct sigv4_out *out, char *path, size_t plen,
    char *query, size_t qlen)
{
	const char *p = (const char *)out->canonical_request.data;
	const char *a = strchr(p, '\n') + 1, *b = strchr(a, '\n'),
	    *e = strchr(b + 1, '\n');

	snprintf(path, plen, "%.*s", (int)(b - a), a);
	snprintf(query, qlen, "%.*s", (int)(e - b - 1), b + 1);
}

static const struct {
	const char *path;
	int normalize;
	const char *want;
} path_cases[] = {
	{ "/a/b/../c/./d", 1, "/a/c/d" },
	{ "/a/b/..", 1, "/a" },
	{ "/a/b/../", 1, "/a/" },
	{ "/../../a", 1, "/a" },
	{ "/foo//bar/", 1, "/foo/bar/" },
	{ "", 1, "/" },
	{ "", 0, "/" },
	{ "/a/../b", 0, "/a/../b" },
	/* already-encoded paths are encoded again (non-S3 double encoding) */
	{ "/a%20b", 1, "/a%2520b" },
	{ "/a%2Fb", 0, "/a%252Fb" },
	{ "/key/mrk-1=2:3", 1, "/key/mrk-1%3D2%3A3" },
	{ "/\xc3\xa9t\xc3\xa9", 1, "/%C3%A9t%C3%A9" },
};

START_TEST(test_path_rules)
{
	struct sigv4_header h[] = { HDR("Host", "example.amazonaws.com") };
	struct sigv4_request req = { "GET", path_cases[_i].path, NULL, h, 1,
	    NULL, 0 };
	struct sigv4_params params = t_params();
	struct sigv4_out out;
	char path[256], query[256];

	params.normalize_path = path_cases[_i].normalize;
	ck_assert_int_eq(sigv4_sign(&req, &t_creds, &params, &out), 0);
	canon_lines(&out, path, sizeof(path), query, sizeof(query));
	ck_assert_str_eq(path, path_cases[_i].want);
	ck_assert_str_eq(query, "");
	sigv4_out_done(&out);
}
END_TEST

static const struct {
	const char *query;
	const char *want;
} query_cases[] = {
	{ "b&a=&c=3&a=2", "a=&a=2&b=&c=3" },
	{ "k=v=w", "k=v%3Dw" },
	{ "%7e=%41%2f", "~=A%2F" },
	{ "&&x=1&", "x=1" },
	{ "a+b=1", "a%2Bb=1" },
	{ "=v", "=v" },
	{ "x=%e1%88%b4", "x=%E1%88%B4" },
	{ "", "" },
	{ "B=1&a=1&A=2", "A=2&B=1&a=1" },
};

START_TEST(test_query_rules)
{
	struct sigv4_header h[] = { HDR("Host", "example.amazonaws.com") };
	struct sigv4_request req = { "GET", "/", query_cases[_i].query, h, 1,
	    NULL, 0 };
	struct sigv4_params params = t_params();
	struct sigv4_out out;
	char path[256], query[256];

	ck_assert_int_eq(sigv4_sign(&req, &t_creds, &params, &out), 0);
	canon_lines(&out, path, sizeof(path), query, sizeof(query));
	ck_assert_str_eq(query, query_cases[_i].want);
	sigv4_out_done(&out);
}
END_TEST

START_TEST(test_header_values)
{
	struct sigv4_header h[] = {
		HDR("Host", "example.amazonaws.com"),
		HDR("X-A", "  a \t b  "),
		HDR("x-b", "one\r\n two\n\tthree"),
		HDR("X-C", ""),
		HDR("X-B", " four "),
	};
	struct sigv4_request req = { "POST", "/", NULL, h, NELEM(h), NULL, 0 };
	struct sigv4_params params = t_params();
	struct sigv4_out out;
	const char *want =
	    "POST\n/\n\n"
	    "host:example.amazonaws.com\n"
	    "x-a:a b\n"
	    "x-amz-date:20150830T123600Z\n"
	    "x-b:one two three,four\n"
	    "x-c:\n"
	    "\n"
	    "host;x-a;x-amz-date;x-b;x-c\n"
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

	ck_assert_int_eq(sigv4_sign(&req, &t_creds, &params, &out), 0);
	ck_assert_str_eq((const char *)out.canonical_request.data, want);
	sigv4_out_done(&out);
}
END_TEST

/* omit_session_token: the token is sent but not signed; sign_body adds
 * the content hash header, signed. */
START_TEST(test_token_and_body)
{
	struct sigv4_header h[] = {
		HDR("Host", "kms.us-east-1.amazonaws.com"),
	};
	struct sigv4_creds creds = t_creds;
	struct sigv4_request req = { "POST", "/", NULL, h, 1,
	    (const uint8_t *)"{}", 2 };
	struct sigv4_params params = t_params();
	struct sigv4_out out;

	creds.session_token = "TOKEN";
	params.omit_session_token = 1;
	params.sign_body = 1;
	ck_assert_int_eq(sigv4_sign(&req, &creds, &params, &out), 0);
	ck_assert_ptr_null(strstr((const char *)out.canonical_request.data,
	    "TOKEN"));
	ck_assert_ptr_nonnull(strstr((const char *)out.authorization.data,
	    "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"));
	ck_assert_int_eq(out.n_add, 4);
	ck_assert(str_eq(out.add[0].name, "X-Amz-Date"));
	ck_assert(str_eq(out.add[1].name, "X-Amz-Security-Token"));
	ck_assert(str_eq(out.add[1].value, "TOKEN"));
	ck_assert(str_eq(out.add[2].name, "X-Amz-Content-Sha256"));
	ck_assert(str_eq(out.add[2].value, "44136fa355b3678a1146ad16f7e8649e"
	    "94fb4fc21fe77e8310c060f61caaff8a"));
	ck_assert(str_eq(out.add[3].name, "Authorization"));
	ck_assert_ptr_eq(out.add[3].value.p, out.authorization.data);
	ck_assert_ptr_null(out.why);
	sigv4_out_done(&out);
	sigv4_out_done(&out);	/* done twice is harmless */

	/* signed when not omitted; an empty token is no token */
	params.omit_session_token = 0;
	ck_assert_int_eq(sigv4_sign(&req, &creds, &params, &out), 0);
	ck_assert_ptr_nonnull(strstr((const char *)out.canonical_request.data,
	    "\nx-amz-security-token:TOKEN\n"));
	sigv4_out_done(&out);
	creds.session_token = "";
	ck_assert_int_eq(sigv4_sign(&req, &creds, &params, &out), 0);
	ck_assert_int_eq(out.n_add, 3);
	sigv4_out_done(&out);
}
END_TEST

/* The signing date follows now. */
START_TEST(test_dates)
{
	struct sigv4_header h[] = { HDR("Host", "example.amazonaws.com") };
	struct sigv4_request req = { "GET", "/", NULL, h, 1, NULL, 0 };
	struct sigv4_params params = t_params();
	struct sigv4_out out;

	params.now = 0;
	ck_assert_int_eq(sigv4_sign(&req, &t_creds, &params, &out), 0);
	ck_assert_str_eq((const char *)out.amz_date.data, "19700101T000000Z");
	ck_assert_ptr_nonnull(strstr((const char *)out.authorization.data,
	    "Credential=AKIDEXAMPLE/19700101/us-east-1/service/aws4_request,"));
	sigv4_out_done(&out);
	params.now = (time_t)4102444799;	/* 2099-12-31T23:59:59Z */
	ck_assert_int_eq(sigv4_sign(&req, &t_creds, &params, &out), 0);
	ck_assert_str_eq((const char *)out.amz_date.data, "20991231T235959Z");
	sigv4_out_done(&out);
	params.now = (time_t)253402300800;	/* year 10000 */
	ck_assert_int_eq(sigv4_sign(&req, &t_creds, &params, &out),
	    ERR_BAD_REQUEST);
	sigv4_out_done(&out);

	/* A reused out: a failure leaves it empty and usable, and nothing
	 * of one signature (the token header) carries into the next. */
	sigv4_out_init(&out);
	ck_assert_int_eq(sigv4_sign_into(&req, &t_creds, &params, &out),
	    ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(out.why);
	ck_assert_uint_eq(out.n_add, 0);
	ck_assert_uint_eq(out.canonical_request.len, 0);
	params.now = 1;
	{
		struct sigv4_creds tok = t_creds;

		tok.session_token = "TOKEN";
		ck_assert_int_eq(sigv4_sign_into(&req, &tok, &params, &out),
		    0);
		ck_assert_uint_eq(out.n_add, 3);
	}
	params.now = 0;
	ck_assert_int_eq(sigv4_sign_into(&req, &t_creds, &params, &out), 0);
	ck_assert_ptr_null(out.why);
	ck_assert_uint_eq(out.n_add, 2);
	ck_assert_uint_eq(out.session_token.len, 0);
	ck_assert_str_eq((const char *)out.amz_date.data, "19700101T000000Z");
	ck_assert_ptr_null(strstr((const char *)out.canonical_request.data,
	    "TOKEN"));
	sigv4_out_done(&out);
}
END_TEST

/* ---- refusals: every bad input fails cleanly with a reason ---- */

enum bad_kind {
	BAD_NO_HOST, BAD_DATE_HDR, BAD_AUTH_HDR, BAD_TOKEN_HDR, BAD_SHA_HDR,
	BAD_NAME_SPACE, BAD_NAME_EMPTY, BAD_NAME_LONG, BAD_VALUE_LF,
	BAD_VALUE_CR, BAD_VALUE_NUL, BAD_VALUE_TRAIL_LF, BAD_QUERY_PCT,
	BAD_QUERY_HEX, BAD_QUERY_SPACE, BAD_PATH_REL, BAD_PATH_CTL,
	BAD_PATH_QMARK, BAD_SECRET_LONG, BAD_SECRET_EMPTY, BAD_AK_SLASH,
	BAD_AK_NULL, BAD_REGION_SPACE, BAD_REGION_SLASH, BAD_SERVICE_EMPTY,
	BAD_METHOD_EMPTY, BAD_METHOD_SPACE, BAD_TOKEN_LF, BAD_TOKEN_LONG,
	BAD_TOO_MANY_HEADERS, BAD_TOO_MANY_PARAMS, BAD_NULL_CREDS,
	BAD_BODY_NULL, BAD_COUNT
};

START_TEST(test_refusals)
{
	static char long_secret[300], long_token[17000], long_name[200];
	static struct sigv4_header many[40];
	static char many_q[64 * 4 + 16];
	struct sigv4_header h[3] = { HDR("Host", "example.amazonaws.com") };
	struct sigv4_creds creds = t_creds;
	struct sigv4_params params = t_params();
	struct sigv4_request req = { "GET", "/", NULL, h, 1, NULL, 0 };
	struct sigv4_out out;
	int want = ERR_BAD_REQUEST, r;

	memset(long_secret, 'a', sizeof(long_secret) - 1);
	memset(long_token, 'a', sizeof(long_token) - 1);
	memset(long_name, 'a', sizeof(long_name));
	switch ((enum bad_kind)_i) {
	case BAD_NO_HOST:
		h[0] = (struct sigv4_header)HDR("X-Host", "x");
		break;
	case BAD_DATE_HDR:
		h[1] = (struct sigv4_header)HDR("X-AMZ-Date",
		    "20150830T123600Z");
		req.n_headers = 2;
		break;
	case BAD_AUTH_HDR:
		h[1] = (struct sigv4_header)HDR("authorization", "x");
		req.n_headers = 2;
		break;
	case BAD_TOKEN_HDR:
		h[1] = (struct sigv4_header)HDR("X-Amz-Security-Token", "t");
		req.n_headers = 2;
		break;
	case BAD_SHA_HDR:
		params.sign_body = 1;
		h[1] = (struct sigv4_header)HDR("X-Amz-Content-Sha256", "x");
		req.n_headers = 2;
		break;
	case BAD_NAME_SPACE:
		h[1] = (struct sigv4_header)HDR("My Header", "x");
		req.n_headers = 2;
		break;
	case BAD_NAME_EMPTY:
		h[1] = (struct sigv4_header)HDR("", "x");
		req.n_headers = 2;
		break;
	case BAD_NAME_LONG:
		h[1].name = (struct str){ long_name, sizeof(long_name) };
		h[1].value = (struct str){ "x", 1 };
		req.n_headers = 2;
		break;
	case BAD_VALUE_LF:
		h[1] = (struct sigv4_header)HDR("X-A", "a\nX-Injected: 1");
		req.n_headers = 2;
		break;
	case BAD_VALUE_CR:
		h[1] = (struct sigv4_header)HDR("X-A", "a\rb");
		req.n_headers = 2;
		break;
	case BAD_VALUE_NUL:
		h[1] = (struct sigv4_header)HDR("X-A", "a\0b");
		req.n_headers = 2;
		break;
	case BAD_VALUE_TRAIL_LF:
		h[1] = (struct sigv4_header)HDR("X-A", "a\n");
		req.n_headers = 2;
		break;
	case BAD_QUERY_PCT:
		req.query = "a=%4";
		break;
	case BAD_QUERY_HEX:
		req.query = "a=%GG";
		break;
	case BAD_QUERY_SPACE:
		req.query = "a=b c";
		break;
	case BAD_PATH_REL:
		req.path = "example";
		break;
	case BAD_PATH_CTL:
		req.path = "/a\r\nb";
		break;
	case BAD_PATH_QMARK:
		req.path = "/a?b=c";
		break;
	case BAD_SECRET_LONG:
		creds.secret_key = long_secret;
		break;
	case BAD_SECRET_EMPTY:
		creds.secret_key = "";
		break;
	case BAD_AK_SLASH:
		creds.access_key = "AKID/EXAMPLE";
		break;
	case BAD_AK_NULL:
		creds.access_key = NULL;
		break;
	case BAD_REGION_SPACE:
		params.region = "us east-1";
		break;
	case BAD_REGION_SLASH:
		params.region = "us-east-1/x";
		break;
	case BAD_SERVICE_EMPTY:
		params.service = "";
		break;
	case BAD_METHOD_EMPTY:
		req.method = "";
		break;
	case BAD_METHOD_SPACE:
		req.method = "GET /";
		break;
	case BAD_TOKEN_LF:
		creds.session_token = "abc\r\nX-Injected: 1";
		break;
	case BAD_TOKEN_LONG:
		creds.session_token = long_token;
		break;
	case BAD_TOO_MANY_HEADERS:
		for (size_t i = 0; i < NELEM(many); i++)
			many[i] = (struct sigv4_header)HDR("Host", "x");
		req.headers = many;
		req.n_headers = NELEM(many);
		want = ERR_TOO_LARGE;
		break;
	case BAD_TOO_MANY_PARAMS:
		many_q[0] = '\0';
		for (int i = 0; i < 65; i++)
			strcat(many_q, "a=1&");
		req.query = many_q;
		want = ERR_TOO_LARGE;
		break;
	case BAD_NULL_CREDS:
		r = sigv4_sign(&req, NULL, &params, &out);
		ck_assert_int_eq(r, ERR_BAD_REQUEST);
		ck_assert_ptr_nonnull(out.why);
		sigv4_out_done(&out);
		return;
	case BAD_BODY_NULL:
		req.body_len = 3;
		break;
	case BAD_COUNT:
		break;
	}
	r = sigv4_sign(&req, &creds, &params, &out);
	ck_assert_msg(r == want, "case %d: got %d", _i, r);
	ck_assert_ptr_nonnull(out.why);
	/* nothing half-built is left behind */
	ck_assert_ptr_null(out.canonical_request.data);
	ck_assert_ptr_null(out.authorization.data);
	ck_assert_ptr_null(out.session_token.data);
	ck_assert_int_eq(out.n_add, 0);
	/* the reason never quotes the input */
	ck_assert_ptr_null(strstr(out.why, "Injected"));
	sigv4_out_done(&out);
}
END_TEST

/* The limits accept what they are sized for. */
START_TEST(test_limits_accept)
{
	static struct sigv4_header many[32];
	static char token[16385];
	struct sigv4_creds creds = t_creds;
	struct sigv4_params params = t_params();
	struct sigv4_request req = { "GET", "/", NULL, many, NELEM(many),
	    NULL, 0 };
	struct sigv4_out out;

	for (size_t i = 0; i < NELEM(many); i++)
		many[i] = (struct sigv4_header)HDR("Host", "x");
	memset(token, 'T', sizeof(token) - 1);
	creds.session_token = token;
	ck_assert_int_eq(sigv4_sign(&req, &creds, &params, &out), 0);
	ck_assert_int_eq(out.session_token.len, 16384);
	sigv4_out_done(&out);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("aws_sigv4");
	TCase *tc;

	tc = tcase_create("aws-c-auth-v4");
	tcase_add_loop_test(tc, test_awsc, 0, NELEM(awsc_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("botocore-aws4_testsuite");
	tcase_add_loop_test(tc, test_boto, 0, NELEM(boto_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("kmsd-derived");
	tcase_add_loop_test(tc, test_kmsd, 0, NELEM(kmsd_cases));
	tcase_add_test(tc, test_signing_key_doc);
	suite_add_tcase(s, tc);

	tc = tcase_create("rules");
	tcase_add_loop_test(tc, test_path_rules, 0, NELEM(path_cases));
	tcase_add_loop_test(tc, test_query_rules, 0, NELEM(query_cases));
	tcase_add_test(tc, test_header_values);
	tcase_add_test(tc, test_token_and_body);
	tcase_add_test(tc, test_dates);
	tcase_add_test(tc, test_limits_accept);
	tcase_add_loop_test(tc, test_refusals, 0, BAD_COUNT);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
