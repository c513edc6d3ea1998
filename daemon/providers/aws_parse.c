/*
 * aws_parse.c: parsers and builders for the AWS KMS provider (see
 * aws_parse.h).
 *
 * This module owns the shapes of what AWS sends and expects: the shared
 * config/credentials files, KMS JSON 1.1 bodies, error bodies, credential
 * endpoint responses and ARNs. It does no I/O and keeps no state; the
 * provider feeds it bytes and acts on the results.
 *
 * Invariants:
 * - every input is bounded before it is looked at (named limits below) and
 *   every bad input ends in an error code with a message, never a crash;
 * - secrets are copied only into wipe-on-free bufs; jansson's own copy of a
 *   secret string is wiped in place once read. jansson's lexer scratch is
 *   freed without wiping, which only a process-wide allocator
 *   (json_set_alloc_funcs) can fix; that choice belongs to the daemon;
 * - messages name lines, fields and keys, never values; jansson's error
 *   text is not passed on because it quotes the input near the error;
 * - outputs are left empty on failure.
 *
 * XML: no XML library is in the stack and only a few flat elements are
 * needed (<Code>, <Message>, the STS credential fields), so a tiny bounded
 * scanner finds `<Name>...</Name>` by exact tag text. It does not handle
 * attributes on those tags, comments or namespace prefixes, decodes only
 * the five predefined entities and CDATA, and is not a general XML parser.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "aws_parse.h"
#include "b64.h"
#include "err.h"

/* A shared config file is a few KB; refuse to scan more than 1 MiB. */
#define AWS_PARSE_MAX_FILE (1024 * 1024)
/* One value (a session token is the longest: a few KB). */
#define AWS_PARSE_MAX_VALUE 16384
/* Response bodies: a KMS response is under 10 KB (6144-byte blob in
 * base64 plus an ARN); credential responses are a few KB. */
#define AWS_PARSE_MAX_BODY 65536
/* IAM access key ids are 16..128 characters. */
#define AWS_PARSE_MAX_ACCESS_KEY 128
/* Region names are short ("us-gov-west-1"). */
#define AWS_PARSE_MAX_REGION 64
/* ARN partitions ("aws", "aws-us-gov", "aws-iso-b"). */
#define AWS_PARSE_MAX_PARTITION 32
/* Fractional seconds digits accepted in a timestamp (nanoseconds). */
#define AWS_PARSE_MAX_FRACTION 9
/* Longest tag the XML scanner looks for, with its brackets. */
#define AWS_PARSE_MAX_TAG 64
/* Members the flat-object fast path reads (a KMS answer has 3 or 4); an
 * object with more goes to jansson. */
#define AWS_PARSE_FLAT_MEMBERS 16

static int
aws_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static struct str
aws_trim(const char *p, size_t n)
{
	while (n > 0 && aws_is_space((unsigned char)p[0])) {
		p++;
		n--;
	}
	while (n > 0 && aws_is_space((unsigned char)p[n - 1]))
		n--;
	return (struct str){ p, n };
}

/* ASCII case-insensitive comparison with a lower-case literal. */
static int
aws_ieq(struct str s, const char *lit)
{
	size_t n = strlen(lit);

	if (s.len != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s.p[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c != (unsigned char)lit[i])
			return 0;
	}
	return 1;
}

/* Replace b's contents with p[0..n), NUL-terminated. */
static int
aws_set(struct buf *b, const char *p, size_t n)
{
	int r;

	buf_clear(b);
	if ((r = buf_append(b, p, n)) != 0 || (r = buf_cstr(b)) != 0)
		buf_clear(b);
	return r;
}

/* Cut b back to len, wiping what is dropped. */
static void
aws_truncate(struct buf *b, size_t len)
{
	if (b->data != NULL && b->len > len)
		OPENSSL_cleanse(b->data + len, b->len - len);
	if (b->len > len)
		b->len = len;
}

static int
aws_region_ok(struct str s)
{
	if (s.len == 0 || s.len > AWS_PARSE_MAX_REGION)
		return 0;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-'))
			return 0;
	}
	return 1;
}

/* Printable ASCII without spaces: what a key id or token may hold (it goes
 * into a header). */
static int
aws_visible(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
			return 0;
	return 1;
}

static int
aws_alnum(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9')))
			return 0;
	}
	return 1;
}

/* An access key id as it goes into the SigV4 credential scope: RFC 3986
 * unreserved characters, as aws_sigv4 accepts. AWS's own ids are
 * alphanumeric; emulators (moto's IMDS: "test-key") use '-' too. No '/',
 * ',' or '=', which would break the Authorization header's structure. */
static int
aws_access_key_chars(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~'))
			return 0;
	}
	return 1;
}

/* ---- credentials ---- */

void
aws_parse_creds_init(struct aws_creds *c)
{
	buf_init(&c->access_key_id, AWS_PARSE_MAX_ACCESS_KEY);
	buf_init(&c->secret_access_key, AWS_PARSE_MAX_VALUE);
	buf_init(&c->session_token, AWS_PARSE_MAX_VALUE);
	c->expiration = 0;
}

void
aws_parse_creds_done(struct aws_creds *c)
{
	buf_done(&c->access_key_id);
	buf_done(&c->secret_access_key);
	buf_done(&c->session_token);
	c->expiration = 0;
}

/* Validate and store one set of credentials; c is emptied on failure. */
static int
aws_creds_set(struct aws_creds *c, struct str ak, struct str sk,
    struct str tok, time_t exp, const char *what, char *err, size_t errlen)
{
	int r;

	if (ak.len == 0 || ak.len > AWS_PARSE_MAX_ACCESS_KEY ||
	    !aws_access_key_chars(ak.p, ak.len)) {
		err_printf(err, errlen, "%s: AccessKeyId is not a valid key id",
		    what);
		return ERR_BAD_REQUEST;
	}
	if (sk.len == 0 || sk.len > AWS_PARSE_MAX_VALUE ||
	    !aws_visible(sk.p, sk.len)) {
		err_printf(err, errlen,
		    "%s: SecretAccessKey is empty, too long "
		    "or holds bytes that are not printable", what);
		return ERR_BAD_REQUEST;
	}
	if (tok.len > AWS_PARSE_MAX_VALUE || !aws_visible(tok.p, tok.len)) {
		err_printf(err, errlen, "%s: session token too long or holds "
		    "bytes that are not printable", what);
		return ERR_BAD_REQUEST;
	}
	if ((r = aws_set(&c->access_key_id, ak.p, ak.len)) != 0 ||
	    (r = aws_set(&c->secret_access_key, sk.p, sk.len)) != 0 ||
	    (r = aws_set(&c->session_token, tok.p, tok.len)) != 0) {
		buf_clear(&c->access_key_id);
		buf_clear(&c->secret_access_key);
		buf_clear(&c->session_token);
		err_printf(err, errlen, "%s: out of memory", what);
		return r;
	}
	c->expiration = exp;
	return 0;
}

/* ---- time ---- */

static int
aws_digits(const char *s, size_t n, size_t pos, size_t count, int *ret)
{
	int v = 0;

	if (pos + count > n)
		return -1;
	for (size_t i = pos; i < pos + count; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static long long
aws_days_from_civil(int y, int m, int d)
{
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int
aws_parse_time(const char *s, size_t n, time_t *ret)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0, leap, dim;
	size_t pos = 19;
	long long t;

	if (s == NULL || n < 20 || aws_digits(s, n, 0, 4, &y) != 0 ||
	    s[4] != '-' || aws_digits(s, n, 5, 2, &mo) != 0 || s[7] != '-' ||
	    aws_digits(s, n, 8, 2, &d) != 0 ||
	    (s[10] != 'T' && s[10] != 't') ||
	    aws_digits(s, n, 11, 2, &h) != 0 || s[13] != ':' ||
	    aws_digits(s, n, 14, 2, &mi) != 0 || s[16] != ':' ||
	    aws_digits(s, n, 17, 2, &sec) != 0)
		return ERR_BAD_REQUEST;
	if (pos < n && s[pos] == '.') {
		size_t start = ++pos;

		while (pos < n && s[pos] >= '0' && s[pos] <= '9')
			pos++;
		if (pos == start || pos - start > AWS_PARSE_MAX_FRACTION)
			return ERR_BAD_REQUEST;
	}
	if (pos < n && (s[pos] == 'Z' || s[pos] == 'z')) {
		pos++;
	} else if (pos < n && (s[pos] == '+' || s[pos] == '-')) {
		sign = s[pos] == '-' ? -1 : 1;
		if (aws_digits(s, n, pos + 1, 2, &oh) != 0 ||
		    pos + 3 >= n || s[pos + 3] != ':' ||
		    aws_digits(s, n, pos + 4, 2, &om) != 0 || oh > 23 ||
		    om > 59)
			return ERR_BAD_REQUEST;
		pos += 6;
	} else {
		return ERR_BAD_REQUEST;	/* a local time means nothing here */
	}
	if (pos != n || y < 1970 || mo < 1 || mo > 12 || h > 23 || mi > 59 ||
	    sec > 60)
		return ERR_BAD_REQUEST;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	dim = mdays[mo - 1] + (mo == 2 && leap);
	if (d < 1 || d > dim)
		return ERR_BAD_REQUEST;
	t = aws_days_from_civil(y, mo, d) * 86400LL + h * 3600LL + mi * 60LL +
	    sec - sign * (oh * 3600LL + om * 60LL);
	if (t < 0 || (long long)(time_t)t != t)
		return ERR_BAD_REQUEST;
	*ret = (time_t)t;
	return 0;
}

/* ---- shared config / credentials files ---- */

void
aws_parse_profile_init(struct aws_profile *p)
{
	p->found = 0;
	aws_parse_creds_init(&p->creds);
	buf_init(&p->region, AWS_PARSE_MAX_REGION);
	buf_init(&p->role_arn, AWS_KMS_MAX_KEY_ID);
	buf_init(&p->web_identity_token_file, AWS_PARSE_MAX_VALUE);
	buf_init(&p->role_session_name, AWS_PARSE_MAX_VALUE);
}

void
aws_parse_profile_done(struct aws_profile *p)
{
	aws_parse_creds_done(&p->creds);
	buf_done(&p->region);
	buf_done(&p->role_arn);
	buf_done(&p->web_identity_token_file);
	buf_done(&p->role_session_name);
	p->found = 0;
}

enum aws_key {
	AWS_KEY_OTHER = 0,
	AWS_KEY_ACCESS_KEY_ID,
	AWS_KEY_SECRET_ACCESS_KEY,
	AWS_KEY_SESSION_TOKEN,
	AWS_KEY_SECURITY_TOKEN,		/* legacy alias of the session token */
	AWS_KEY_REGION,
	AWS_KEY_ROLE_ARN,
	AWS_KEY_WEB_IDENTITY_TOKEN_FILE,
	AWS_KEY_ROLE_SESSION_NAME,
	AWS_KEY_UNSUPPORTED,
};

static const struct {
	const char *name;
	enum aws_key key;
} aws_profile_keys[] = {
	{ "aws_access_key_id", AWS_KEY_ACCESS_KEY_ID },
	{ "aws_secret_access_key", AWS_KEY_SECRET_ACCESS_KEY },
	{ "aws_session_token", AWS_KEY_SESSION_TOKEN },
	{ "aws_security_token", AWS_KEY_SECURITY_TOKEN },
	{ "region", AWS_KEY_REGION },
	{ "role_arn", AWS_KEY_ROLE_ARN },
	{ "web_identity_token_file", AWS_KEY_WEB_IDENTITY_TOKEN_FILE },
	{ "role_session_name", AWS_KEY_ROLE_SESSION_NAME },
	/* Ways of getting credentials kmsd does not implement: refusing them
	 * beats silently using other credentials than the user configured. */
	{ "credential_process", AWS_KEY_UNSUPPORTED },
	{ "source_profile", AWS_KEY_UNSUPPORTED },
	{ "credential_source", AWS_KEY_UNSUPPORTED },
	{ "sso_session", AWS_KEY_UNSUPPORTED },
	{ "sso_start_url", AWS_KEY_UNSUPPORTED },
	{ "sso_account_id", AWS_KEY_UNSUPPORTED },
	{ "sso_role_name", AWS_KEY_UNSUPPORTED },
};

#define AWS_N_PROFILE_KEYS \
	(sizeof(aws_profile_keys) / sizeof(aws_profile_keys[0]))

enum aws_section {
	AWS_SECTION_NONE = 0,		/* before the first section header */
	AWS_SECTION_OTHER,		/* another profile or section kind */
	AWS_SECTION_SELECTED,		/* the profile asked for */
};

/* Does section header text (inside the brackets, trimmed) name profile? */
static int
aws_section_is(struct str in, enum aws_file_kind kind, const char *name)
{
	size_t nlen = strlen(name);

	if (kind == AWS_FILE_CONFIG) {
		/* [default] or [profile NAME] (also [profile default]) */
		if (in.len > 7 && memcmp(in.p, "profile", 7) == 0 &&
		    (in.p[7] == ' ' || in.p[7] == '\t')) {
			struct str rest = aws_trim(in.p + 7, in.len - 7);

			return rest.len == nlen &&
			    memcmp(rest.p, name, nlen) == 0;
		}
		return strcmp(name, "default") == 0 && str_eq(in, "default");
	}
	return in.len == nlen && memcmp(in.p, name, nlen) == 0;
}

/* A value ends where a '#' or ';' follows whitespace (the SDKs' rule, so
 * "a#b" stays whole). */
static struct str
aws_value_strip_comment(struct str v)
{
	for (size_t i = 1; i < v.len; i++)
		if ((v.p[i] == '#' || v.p[i] == ';') &&
		    (v.p[i - 1] == ' ' || v.p[i - 1] == '\t'))
			return aws_trim(v.p, i);
	return aws_trim(v.p, v.len);
}

static int
aws_profile_store(struct aws_profile *p, enum aws_key key, struct str v,
    size_t line, const char *keyname, int *have_session_key,
    enum aws_file_kind kind, const char *profile, char *err, size_t errlen)
{
	struct buf *dst = NULL;
	int r;

	switch (key) {
	case AWS_KEY_ACCESS_KEY_ID:
		if (v.len > 0 && (v.len > AWS_PARSE_MAX_ACCESS_KEY ||
		    !aws_access_key_chars(v.p, v.len))) {
			err_printf(err, errlen, "line %zu: %s is not a valid "
			    "access key id", line, keyname);
			return ERR_BAD_REQUEST;
		}
		dst = &p->creds.access_key_id;
		break;
	case AWS_KEY_SECRET_ACCESS_KEY:
		dst = &p->creds.secret_access_key;
		break;
	case AWS_KEY_SESSION_TOKEN:
		*have_session_key = 1;
		dst = &p->creds.session_token;
		break;
	case AWS_KEY_SECURITY_TOKEN:
		/* botocore prefers aws_session_token when both are set */
		if (*have_session_key)
			return 0;
		dst = &p->creds.session_token;
		break;
	case AWS_KEY_REGION:
		/* The SDKs read the region from the config file only. */
		if (kind != AWS_FILE_CONFIG)
			return 0;
		if (v.len > 0 && !aws_region_ok(v)) {
			err_printf(err, errlen, "line %zu: region is not a "
			    "region name", line);
			return ERR_BAD_REQUEST;
		}
		dst = &p->region;
		break;
	case AWS_KEY_ROLE_ARN:
		dst = &p->role_arn;
		break;
	case AWS_KEY_WEB_IDENTITY_TOKEN_FILE:
		dst = &p->web_identity_token_file;
		break;
	case AWS_KEY_ROLE_SESSION_NAME:
		dst = &p->role_session_name;
		break;
	case AWS_KEY_UNSUPPORTED:
		err_printf(err, errlen, "line %zu: profile %s uses %s, which "
		    "kmsd does not support; give it static keys, "
		    "role_arn with web_identity_token_file, or use the "
		    "environment, container or instance credentials", line,
		    profile, keyname);
		return ERR_BAD_REQUEST;
	case AWS_KEY_OTHER:
		return 0;
	}
	/* Everything but a file path ends up in a header or a form field. */
	if (key != AWS_KEY_WEB_IDENTITY_TOKEN_FILE &&
	    !aws_visible(v.p, v.len)) {
		err_printf(err, errlen,
		    "line %zu: %s holds spaces or bytes that "
		    "are not printable", line, keyname);
		return ERR_BAD_REQUEST;
	}
	if (v.len > dst->max) {
		err_printf(err, errlen, "line %zu: value of %s is too long",
		    line, keyname);
		return ERR_TOO_LARGE;
	}
	if ((r = aws_set(dst, v.p, v.len)) != 0)
		err_printf(err, errlen, "line %zu: out of memory", line);
	return r;
}

int
aws_parse_profile(const char *data, size_t len, enum aws_file_kind kind,
    const char *name, struct aws_profile *p, char *err, size_t errlen)
{
	enum aws_section section = AWS_SECTION_NONE;
	int have_prop = 0, last_ours = 0, have_session_key = 0;
	int set_ak = 0, set_sk = 0, r = 0;
	const char *last_key = "";
	size_t pos = 0, line = 0;

	if (name == NULL)
		name = "default";
	if (*name == '\0' || (data == NULL && len > 0) ||
	    (kind != AWS_FILE_CONFIG && kind != AWS_FILE_CREDENTIALS)) {
		err_printf(err, errlen, "bad arguments");
		return ERR_BAD_REQUEST;
	}
	if (len > AWS_PARSE_MAX_FILE) {
		err_printf(err, errlen, "file larger than %d bytes",
		    AWS_PARSE_MAX_FILE);
		return ERR_TOO_LARGE;
	}
	while (pos < len) {
		const char *l = data + pos, *nl;
		size_t ll;
		struct str t;

		nl = memchr(l, '\n', len - pos);
		ll = nl != NULL ? (size_t)(nl - l) : len - pos;
		pos += ll + 1;
		line++;
		if (memchr(l, '\0', ll) != NULL) {
			err_printf(err, errlen, "line %zu: NUL byte", line);
			return ERR_BAD_REQUEST;
		}
		if (ll > 0 && l[ll - 1] == '\r')
			ll--;
		t = aws_trim(l, ll);
		if (t.len == 0 || t.p[0] == '#' || t.p[0] == ';')
			continue;
		if (l[0] == ' ' || l[0] == '\t') {
			/* a continuation or sub-property of the last key */
			if (!have_prop) {
				err_printf(err, errlen,
				    "line %zu: indented line "
				    "outside a property", line);
				return ERR_BAD_REQUEST;
			}
			if (section == AWS_SECTION_SELECTED && last_ours) {
				err_printf(err, errlen,
				    "line %zu: %s continues "
				    "on an indented line, which is not "
				    "supported", line, last_key);
				return ERR_BAD_REQUEST;
			}
			continue;
		}
		if (t.p[0] == '[') {
			const char *close = memchr(t.p, ']', t.len);
			struct str after, in;

			if (close == NULL) {
				err_printf(err, errlen, "line %zu: section "
				    "header without ']'", line);
				return ERR_BAD_REQUEST;
			}
			after = aws_trim(close + 1,
			    t.len - (size_t)(close + 1 - t.p));
			if (after.len > 0 && after.p[0] != '#' &&
			    after.p[0] != ';') {
				err_printf(err, errlen, "line %zu: text after "
				    "section header", line);
				return ERR_BAD_REQUEST;
			}
			in = aws_trim(t.p + 1, (size_t)(close - t.p - 1));
			if (in.len == 0) {
				err_printf(err, errlen,
				    "line %zu: empty section "
				    "name", line);
				return ERR_BAD_REQUEST;
			}
			section = aws_section_is(in, kind, name) ?
			    AWS_SECTION_SELECTED : AWS_SECTION_OTHER;
			if (section == AWS_SECTION_SELECTED)
				p->found = 1;
			have_prop = 0;
			last_ours = 0;
			continue;
		}
		{
			const char *eq = memchr(t.p, '=', t.len);
			enum aws_key key = AWS_KEY_OTHER;
			struct str k, v;

			if (section == AWS_SECTION_NONE) {
				err_printf(err, errlen, "line %zu: property "
				    "outside a section", line);
				return ERR_BAD_REQUEST;
			}
			if (eq == NULL) {
				err_printf(err, errlen, "line %zu: expected "
				    "key = value", line);
				return ERR_BAD_REQUEST;
			}
			k = aws_trim(t.p, (size_t)(eq - t.p));
			v = aws_value_strip_comment((struct str){ eq + 1,
			    t.len - (size_t)(eq + 1 - t.p) });
			if (k.len == 0) {
				err_printf(err, errlen, "line %zu: empty key",
				    line);
				return ERR_BAD_REQUEST;
			}
			have_prop = 1;
			last_ours = 0;
			if (section != AWS_SECTION_SELECTED)
				continue;
			for (size_t i = 0; i < AWS_N_PROFILE_KEYS; i++)
				if (aws_ieq(k, aws_profile_keys[i].name)) {
					key = aws_profile_keys[i].key;
					last_key = aws_profile_keys[i].name;
				}
			if (key == AWS_KEY_OTHER)
				continue;
			last_ours = 1;
			if ((r = aws_profile_store(p, key, v, line, last_key,
			    &have_session_key, kind, name, err, errlen)) != 0)
				return r;
			if (key == AWS_KEY_ACCESS_KEY_ID)
				set_ak = v.len > 0;
			else if (key == AWS_KEY_SECRET_ACCESS_KEY)
				set_sk = v.len > 0;
		}
	}
	if (set_ak != set_sk) {
		err_printf(err, errlen, "profile %s sets only one of "
		    "aws_access_key_id and aws_secret_access_key", name);
		return ERR_BAD_REQUEST;
	}
	return 0;
}

/* ---- JSON ---- */

static int
aws_json_load(const char *body, size_t len, json_t **ret, const char *what,
    char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;

	*ret = NULL;
	if (body == NULL || len == 0) {
		err_printf(err, errlen, "%s: empty body", what);
		return ERR_BAD_REQUEST;
	}
	if (len > AWS_PARSE_MAX_BODY) {
		err_printf(err, errlen, "%s: body larger than %d bytes", what,
		    AWS_PARSE_MAX_BODY);
		return ERR_TOO_LARGE;
	}
	/* Duplicate keys would make "which value" ambiguous. */
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		err_printf(err, errlen, "%s: not valid JSON (at byte %d)", what,
		    jerr.position);
		return ERR_BAD_REQUEST;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		err_printf(err, errlen, "%s: JSON is not an object", what);
		return ERR_BAD_REQUEST;
	}
	*ret = root;
	return 0;
}

/* A string member: 0 with *ret set (STR_NULL when absent and optional),
 * or ERR_BAD_REQUEST. */
static int
aws_json_str(json_t *o, const char *key, int required, struct str *ret,
    const char *what, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);

	*ret = STR_NULL;
	if (v == NULL || (json_is_null(v) && !required)) {
		if (!required)
			return 0;
		err_printf(err, errlen, "%s: %s is missing", what, key);
		return ERR_BAD_REQUEST;
	}
	if (!json_is_string(v)) {
		err_printf(err, errlen, "%s: %s is not a string", what, key);
		return ERR_BAD_REQUEST;
	}
	*ret = (struct str){ json_string_value(v), json_string_length(v) };
	return 0;
}

/* Wipe jansson's copy of a secret string in place once it has been
 * copied out: the json_t is freed right after and never read again. */
static void
aws_json_wipe(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_string(v))
		OPENSSL_cleanse((void *)(uintptr_t)json_string_value(v),
		    json_string_length(v));
}

/* ---- KMS requests ---- */

const char *
aws_parse_kms_target(enum aws_kms_op op)
{
	switch (op) {
	case AWS_KMS_ENCRYPT:
		return "TrentService.Encrypt";
	case AWS_KMS_DECRYPT:
		return "TrentService.Decrypt";
	case AWS_KMS_REENCRYPT:
		return "TrentService.ReEncrypt";
	}
	return NULL;
}

static int
aws_key_id_ok(const char *id, int required)
{
	size_t n;

	if (id == NULL)
		return !required;
	n = strlen(id);
	return n > 0 && n <= AWS_KMS_MAX_KEY_ID && aws_visible(id, n);
}

/* ,"Name":"value" — key ids are printable ASCII without '"' or '\'. */
static int
aws_json_member_id(struct buf *out, const char *name, const char *id)
{
	int r;

	if (strchr(id, '"') != NULL || strchr(id, '\\') != NULL)
		return ERR_BAD_REQUEST;
	if ((r = buf_append_byte(out, '"')) != 0 ||
	    (r = buf_append_str(out, name)) != 0 ||
	    (r = buf_append_str(out, "\":\"")) != 0 ||
	    (r = buf_append_str(out, id)) != 0 ||
	    (r = buf_append_byte(out, '"')) != 0)
		return r;
	return 0;
}

static int
aws_json_member_b64(struct buf *out, const char *name, const uint8_t *p,
    size_t n)
{
	int r;

	if ((r = buf_append_byte(out, '"')) != 0 ||
	    (r = buf_append_str(out, name)) != 0 ||
	    (r = buf_append_str(out, "\":\"")) != 0 ||
	    (r = b64_encode(out, p, n)) != 0 ||
	    (r = buf_append_byte(out, '"')) != 0)
		return r;
	return 0;
}

/* The context as a JSON object: the plain json-gem form of context_json is
 * valid JSON and KMS compares the decoded map, so one escaper serves all
 * providers. */
static int
aws_json_member_ctx(struct buf *out, const char *name,
    const struct context *c)
{
	int r;

	if ((r = buf_append_byte(out, '"')) != 0 ||
	    (r = buf_append_str(out, name)) != 0 ||
	    (r = buf_append_str(out, "\":")) != 0 ||
	    (r = context_json(c, CTX_PLAIN, out)) != 0)
		return r;
	return 0;
}

int
aws_parse_kms_request(const struct aws_kms_request *req, struct buf *out)
{
	size_t start = out->len, max;
	int r;

	if (req == NULL || aws_parse_kms_target(req->op) == NULL)
		return ERR_BAD_REQUEST;
	max = req->op == AWS_KMS_ENCRYPT ? AWS_KMS_MAX_PLAINTEXT :
	    AWS_KMS_MAX_CIPHERTEXT;
	if (req->data == NULL || req->data_len == 0 || req->data_len > max ||
	    !aws_key_id_ok(req->key_id, req->op != AWS_KMS_DECRYPT) ||
	    !aws_key_id_ok(req->source_key_id, 0) ||
	    (req->source_key_id != NULL && req->op != AWS_KMS_REENCRYPT) ||
	    (req->dest_ctx != NULL && req->dest_ctx->present &&
	    req->op != AWS_KMS_REENCRYPT) ||
	    (req->ctx != NULL && req->ctx->present &&
	    context_check(req->ctx) != 0) ||
	    (req->dest_ctx != NULL && req->dest_ctx->present &&
	    context_check(req->dest_ctx) != 0))
		return ERR_BAD_REQUEST;

	if ((r = buf_append_byte(out, '{')) != 0)
		goto out;
	switch (req->op) {
	case AWS_KMS_ENCRYPT:
		if ((r = aws_json_member_id(out, "KeyId", req->key_id)) != 0 ||
		    (r = buf_append_byte(out, ',')) != 0 ||
		    (r = aws_json_member_b64(out, "Plaintext", req->data,
		    req->data_len)) != 0)
			goto out;
		if (req->ctx != NULL && req->ctx->present &&
		    ((r = buf_append_byte(out, ',')) != 0 ||
		    (r = aws_json_member_ctx(out, "EncryptionContext",
		    req->ctx)) != 0))
			goto out;
		break;
	case AWS_KMS_DECRYPT:
		if ((r = aws_json_member_b64(out, "CiphertextBlob", req->data,
		    req->data_len)) != 0)
			goto out;
		if (req->key_id != NULL &&
		    ((r = buf_append_byte(out, ',')) != 0 ||
		    (r = aws_json_member_id(out, "KeyId", req->key_id)) != 0))
			goto out;
		if (req->ctx != NULL && req->ctx->present &&
		    ((r = buf_append_byte(out, ',')) != 0 ||
		    (r = aws_json_member_ctx(out, "EncryptionContext",
		    req->ctx)) != 0))
			goto out;
		break;
	case AWS_KMS_REENCRYPT:
		if ((r = aws_json_member_b64(out, "CiphertextBlob", req->data,
		    req->data_len)) != 0)
			goto out;
		if (req->source_key_id != NULL &&
		    ((r = buf_append_byte(out, ',')) != 0 ||
		    (r = aws_json_member_id(out, "SourceKeyId",
		    req->source_key_id)) != 0))
			goto out;
		if (req->ctx != NULL && req->ctx->present &&
		    ((r = buf_append_byte(out, ',')) != 0 ||
		    (r = aws_json_member_ctx(out, "SourceEncryptionContext",
		    req->ctx)) != 0))
			goto out;
		if ((r = buf_append_byte(out, ',')) != 0 ||
		    (r = aws_json_member_id(out, "DestinationKeyId",
		    req->key_id)) != 0)
			goto out;
		if (req->dest_ctx != NULL && req->dest_ctx->present &&
		    ((r = buf_append_byte(out, ',')) != 0 ||
		    (r = aws_json_member_ctx(out,
		    "DestinationEncryptionContext", req->dest_ctx)) != 0))
			goto out;
		break;
	}
	r = buf_append_byte(out, '}');
out:
	if (r != 0)
		aws_truncate(out, start);
	return r;
}

/* ---- KMS responses ---- */

void
aws_parse_kms_result_init(struct aws_kms_result *r)
{
	buf_init(&r->data, AWS_KMS_MAX_CIPHERTEXT);
	buf_init(&r->key_id, AWS_KMS_MAX_KEY_ID);
	buf_init(&r->source_key_id, AWS_KMS_MAX_KEY_ID);
}

void
aws_parse_kms_result_done(struct aws_kms_result *r)
{
	buf_done(&r->data);
	buf_done(&r->key_id);
	buf_done(&r->source_key_id);
}

/* A key id member's value s (STR_NULL: absent) into dst. */
static int
aws_kms_key_set(struct str s, const char *key, struct buf *dst,
    const char *what, char *err, size_t errlen)
{
	if (s.p == NULL)
		return 0;
	if (s.len == 0 || s.len > AWS_KMS_MAX_KEY_ID ||
	    !aws_visible(s.p, s.len)) {
		err_printf(err, errlen, "%s: %s is not a key id", what, key);
		return ERR_BAD_REQUEST;
	}
	return aws_set(dst, s.p, s.len);
}

static int
aws_kms_key_field(json_t *root, const char *key, struct buf *dst,
    const char *what, char *err, size_t errlen)
{
	struct str s;
	int r;

	if ((r = aws_json_str(root, key, 0, &s, what, err, errlen)) != 0)
		return r;
	return aws_kms_key_set(s, key, dst, what, err, errlen);
}

/* The Plaintext or CiphertextBlob member's base64 value s, decoded. */
static int
aws_kms_data_set(struct str s, const char *field, size_t max,
    struct buf *dst, const char *what, char *err, size_t errlen)
{
	size_t dlen;
	int r;

	/* Check the size before decoding: the API never returns more. */
	dlen = b64_decoded_len(s.p, s.len);
	if (s.len % 4 != 0 || s.len > (max + 2) / 3 * 4 || dlen == 0 ||
	    dlen > max) {
		err_printf(err, errlen, "%s: %s is empty, too long or not "
		    "base64", what, field);
		return ERR_BAD_REQUEST;
	}
	if ((r = b64_decode(dst, s.p, s.len)) != 0) {
		err_printf(err, errlen, "%s: %s is not valid base64", what,
		    field);
		return r == ERR_NOMEM ? r : ERR_BAD_REQUEST;
	}
	return 0;
}

struct aws_member {
	struct str name;
	struct str value;
};

static size_t
aws_json_ws(const char *p, size_t len, size_t i)
{
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' ||
	    p[i] == '\r'))
		i++;
	return i;
}

/* A string of printable ASCII without escapes at p[i] ('"' included);
 * the index past it, or 0. */
static size_t
aws_json_plain_str(const char *p, size_t len, size_t i, struct str *ret)
{
	size_t start;

	if (i >= len || p[i] != '"')
		return 0;
	start = ++i;
	for (; i < len && p[i] != '"'; i++)
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e ||
		    p[i] == '\\')
			return 0;
	if (i == len)
		return 0;
	*ret = (struct str){ p + start, i - start };
	return i + 1;
}

/*
 * The shape every KMS answer has, read without jansson: one object whose
 * members are all strings of printable ASCII without escapes, no name
 * twice ({"KeyId":"arn:...","Plaintext":"...","EncryptionAlgorithm":
 * "SYMMETRIC_DEFAULT"}). That is a strict subset of JSON on which jansson
 * (JSON_REJECT_DUPLICATES) reads exactly these members, so for such a body
 * both paths give the same answer. 1 with m[0..*ret_n) set when body has
 * this shape; 0 for anything else (an escape, a byte outside printable
 * ASCII, a number, null, a nested value, more than max members, bad
 * JSON), which is then jansson's to judge.
 */
static int
aws_json_flat(const char *p, size_t len, struct aws_member *m, size_t max,
    size_t *ret_n)
{
	size_t i, n = 0;

	i = aws_json_ws(p, len, 0);
	if (i >= len || p[i] != '{')
		return 0;
	i = aws_json_ws(p, len, i + 1);
	if (i < len && p[i] == '}')
		goto end;
	for (;;) {
		if (n == max ||
		    (i = aws_json_plain_str(p, len, i, &m[n].name)) == 0)
			return 0;
		i = aws_json_ws(p, len, i);
		if (i >= len || p[i] != ':')
			return 0;
		i = aws_json_ws(p, len, i + 1);
		if ((i = aws_json_plain_str(p, len, i, &m[n].value)) == 0)
			return 0;
		for (size_t k = 0; k < n; k++)
			if (m[k].name.len == m[n].name.len &&
			    memcmp(m[k].name.p, m[n].name.p,
			    m[n].name.len) == 0)
				return 0;
		n++;
		i = aws_json_ws(p, len, i);
		if (i < len && p[i] == ',') {
			i = aws_json_ws(p, len, i + 1);
			continue;
		}
		if (i < len && p[i] == '}')
			break;
		return 0;
	}
end:
	if (aws_json_ws(p, len, i + 1) != len)
		return 0;
	*ret_n = n;
	return 1;
}

/* Member name's value, or STR_NULL. */
static struct str
aws_member_get(const struct aws_member *m, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (str_eq(m[i].name, name))
			return m[i].value;
	return STR_NULL;
}

/* aws_parse_kms_response for a body aws_json_flat read. */
static int
aws_kms_response_flat(enum aws_kms_op op, const struct aws_member *m,
    size_t n, struct aws_kms_result *res, const char *what,
    const char *field, size_t max, char *err, size_t errlen)
{
	struct str s = aws_member_get(m, n, field);
	int r;

	if (s.p == NULL) {
		err_printf(err, errlen, "%s: %s is missing", what, field);
		return ERR_BAD_REQUEST;
	}
	if ((r = aws_kms_data_set(s, field, max, &res->data, what, err,
	    errlen)) != 0 ||
	    (r = aws_kms_key_set(aws_member_get(m, n, "KeyId"), "KeyId",
	    &res->key_id, what, err, errlen)) != 0)
		return r;
	if (op == AWS_KMS_REENCRYPT)
		r = aws_kms_key_set(aws_member_get(m, n, "SourceKeyId"),
		    "SourceKeyId", &res->source_key_id, what, err, errlen);
	return r;
}

int
aws_parse_kms_response(enum aws_kms_op op, const char *body, size_t len,
    struct aws_kms_result *res, char *err, size_t errlen)
{
	struct aws_member m[AWS_PARSE_FLAT_MEMBERS];
	const char *field, *what;
	json_t *root = NULL;
	size_t max, n;
	struct str s;
	int r;

	buf_clear(&res->data);
	buf_clear(&res->key_id);
	buf_clear(&res->source_key_id);
	if ((what = aws_parse_kms_target(op)) == NULL) {
		err_printf(err, errlen, "unknown KMS operation");
		return ERR_BAD_REQUEST;
	}
	field = op == AWS_KMS_DECRYPT ? "Plaintext" : "CiphertextBlob";
	max = op == AWS_KMS_DECRYPT ? AWS_KMS_MAX_PLAINTEXT :
	    AWS_KMS_MAX_CIPHERTEXT;
	/* The usual answer without jansson's allocations and copies (of the
	 * plaintext among them); the body's size limits come first, as
	 * below. */
	if (body != NULL && len > 0 && len <= AWS_PARSE_MAX_BODY &&
	    aws_json_flat(body, len, m, AWS_PARSE_FLAT_MEMBERS, &n)) {
		r = aws_kms_response_flat(op, m, n, res, what, field, max, err,
		    errlen);
		goto out;
	}
	if ((r = aws_json_load(body, len, &root, what, err, errlen)) != 0)
		return r;
	if ((r = aws_json_str(root, field, 1, &s, what, err, errlen)) != 0 ||
	    (r = aws_kms_data_set(s, field, max, &res->data, what, err,
	    errlen)) != 0)
		goto out;
	if ((r = aws_kms_key_field(root, "KeyId", &res->key_id, what, err,
	    errlen)) != 0)
		goto out;
	if (op == AWS_KMS_REENCRYPT && (r = aws_kms_key_field(root,
	    "SourceKeyId", &res->source_key_id, what, err, errlen)) != 0)
		goto out;
out:
	if (op == AWS_KMS_DECRYPT && root != NULL)
		aws_json_wipe(root, field);
	json_decref(root);
	if (r != 0) {
		buf_clear(&res->data);
		buf_clear(&res->key_id);
		buf_clear(&res->source_key_id);
	}
	return r;
}

/* ---- XML (see the top of the file for what this scanner does not do) ---- */

/* The text between the first "<tag>" in p[0..n) and the next "</tag>". */
static int
aws_xml_elem(struct str in, const char *tag, struct str *ret)
{
	char open[AWS_PARSE_MAX_TAG], close[AWS_PARSE_MAX_TAG];
	const char *a, *b;
	int ol, cl;

	*ret = STR_NULL;
	ol = snprintf(open, sizeof(open), "<%s>", tag);
	cl = snprintf(close, sizeof(close), "</%s>", tag);
	if (in.p == NULL || ol <= 0 || cl <= 0 || (size_t)cl >= sizeof(close))
		return -1;
	a = memmem(in.p, in.len, open, (size_t)ol);
	if (a == NULL)
		return -1;
	a += ol;
	b = memmem(a, in.len - (size_t)(a - in.p), close, (size_t)cl);
	if (b == NULL)
		return -1;
	*ret = (struct str){ a, (size_t)(b - a) };
	return 0;
}

/* Element text with the five predefined entities or one CDATA section
 * decoded, trimmed, appended to out. strict: refuse markup and unknown
 * entities (credentials); otherwise replace them with '?' (messages). */
static int
aws_xml_text(struct str in, struct buf *out, int strict)
{
	static const struct {
		const char *ent;
		char c;
	} ents[] = {
		{ "&lt;", '<' }, { "&gt;", '>' }, { "&amp;", '&' },
		{ "&quot;", '"' }, { "&apos;", '\'' },
	};
	struct str t = aws_trim(in.p, in.len);
	int r;

	if (t.len >= 12 && memcmp(t.p, "<![CDATA[", 9) == 0 &&
	    memcmp(t.p + t.len - 3, "]]>", 3) == 0)
		return buf_append(out, t.p + 9, t.len - 12);
	for (size_t i = 0; i < t.len; i++) {
		char c = t.p[i];

		if (c == '<') {
			if (strict)
				return ERR_BAD_REQUEST;
			c = '?';
		} else if (c == '&') {
			size_t k, el = 0;

			for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
				el = strlen(ents[k].ent);
				if (t.len - i >= el &&
				    memcmp(t.p + i, ents[k].ent, el) == 0)
					break;
			}
			if (k < sizeof(ents) / sizeof(ents[0])) {
				c = ents[k].c;
				i += el - 1;
			} else if (strict) {
				return ERR_BAD_REQUEST;
			} else {
				c = '?';
			}
		}
		if ((r = buf_append_byte(out, (uint8_t)c)) != 0)
			return r;
	}
	return 0;
}

/* ---- credential endpoints ---- */

int
aws_parse_container_creds(const char *body, size_t len, struct aws_creds *c,
    char *err, size_t errlen)
{
	static const char what[] = "credentials response";
	struct str code, ak, sk, tok, exp;
	json_t *root = NULL;
	time_t t = 0;
	int r;

	aws_parse_creds_done(c);
	if ((r = aws_json_load(body, len, &root, what, err, errlen)) != 0)
		return r;
	if ((r = aws_json_str(root, "Code", 0, &code, what, err,
	    errlen)) != 0)
		goto out;
	if (code.p != NULL && !str_eq(code, "Success")) {
		/* Only an identifier-like code is worth echoing. */
		if (code.len > 0 && code.len < AWS_ERROR_CODE_MAX &&
		    aws_alnum(code.p, code.len))
			err_printf(err, errlen, "%s: Code is %.*s", what,
			    (int)code.len, code.p);
		else
			err_printf(err, errlen, "%s: Code is not Success",
			    what);
		r = ERR_BAD_REQUEST;
		goto out;
	}
	if ((r = aws_json_str(root, "AccessKeyId", 1, &ak, what, err,
	    errlen)) != 0 ||
	    (r = aws_json_str(root, "SecretAccessKey", 1, &sk, what, err,
	    errlen)) != 0 ||
	    (r = aws_json_str(root, "Token", 1, &tok, what, err,
	    errlen)) != 0 ||
	    (r = aws_json_str(root, "Expiration", 1, &exp, what, err,
	    errlen)) != 0)
		goto out;
	if (aws_parse_time(exp.p, exp.len, &t) != 0) {
		err_printf(err, errlen, "%s: Expiration is not an ISO 8601 UTC "
		    "time", what);
		r = ERR_BAD_REQUEST;
		goto out;
	}
	if (tok.len == 0) {
		err_printf(err, errlen, "%s: Token is empty", what);
		r = ERR_BAD_REQUEST;
		goto out;
	}
	r = aws_creds_set(c, ak, sk, tok, t, what, err, errlen);
out:
	aws_json_wipe(root, "SecretAccessKey");
	aws_json_wipe(root, "Token");
	json_decref(root);
	if (r != 0)
		aws_parse_creds_done(c);
	return r;
}

int
aws_parse_sts_creds(const char *body, size_t len, struct aws_creds *c,
    char *err, size_t errlen)
{
	static const char what[] = "STS response";
	static const char *const fields[] = {
		"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration",
	};
	struct str in = { body, len }, res, cred, v;
	struct buf val[4];
	time_t t = 0;
	int r = 0;

	aws_parse_creds_done(c);
	if (body == NULL || len == 0) {
		err_printf(err, errlen, "%s: empty body", what);
		return ERR_BAD_REQUEST;
	}
	if (len > AWS_PARSE_MAX_BODY) {
		err_printf(err, errlen, "%s: body larger than %d bytes", what,
		    AWS_PARSE_MAX_BODY);
		return ERR_TOO_LARGE;
	}
	if (aws_xml_elem(in, "AssumeRoleWithWebIdentityResult", &res) != 0 ||
	    aws_xml_elem(res, "Credentials", &cred) != 0) {
		err_printf(err, errlen,
		    "%s: no AssumeRoleWithWebIdentityResult/"
		    "Credentials element", what);
		return ERR_BAD_REQUEST;
	}
	for (size_t i = 0; i < 4; i++)
		buf_init(&val[i], AWS_PARSE_MAX_VALUE);
	for (size_t i = 0; i < 4; i++) {
		if (aws_xml_elem(cred, fields[i], &v) != 0) {
			err_printf(err, errlen, "%s: %s is missing", what,
			    fields[i]);
			r = ERR_BAD_REQUEST;
			goto out;
		}
		if (v.len > AWS_PARSE_MAX_VALUE) {
			err_printf(err, errlen, "%s: %s is too long", what,
			    fields[i]);
			r = ERR_TOO_LARGE;
			goto out;
		}
		if ((r = aws_xml_text(v, &val[i], 1)) != 0) {
			err_printf(err, errlen, "%s: %s holds markup or an "
			    "unknown entity", what, fields[i]);
			r = r == ERR_NOMEM ? r : ERR_BAD_REQUEST;
			goto out;
		}
	}
	if (aws_parse_time((const char *)val[3].data, val[3].len, &t) != 0) {
		err_printf(err, errlen, "%s: Expiration is not an ISO 8601 UTC "
		    "time", what);
		r = ERR_BAD_REQUEST;
		goto out;
	}
	if (val[2].len == 0) {
		err_printf(err, errlen, "%s: SessionToken is empty", what);
		r = ERR_BAD_REQUEST;
		goto out;
	}
	r = aws_creds_set(c,
	    (struct str){ (const char *)val[0].data, val[0].len },
	    (struct str){ (const char *)val[1].data, val[1].len },
	    (struct str){ (const char *)val[2].data, val[2].len }, t, what,
	    err, errlen);
out:
	for (size_t i = 0; i < 4; i++)
		buf_done(&val[i]);
	if (r != 0)
		aws_parse_creds_done(c);
	return r;
}

/* ---- errors ---- */

#define AWS_F_RETRY 0x1
#define AWS_F_THROTTLE 0x2
#define AWS_F_REFRESH 0x4

static const struct {
	const char *code;
	int err;
	unsigned int flags;
} aws_error_map[] = {
	/* wrong key, wrong context or a corrupt blob */
	{ "InvalidCiphertextException", ERR_DECRYPTION_FAILED, 0 },
	{ "IncorrectKeyException", ERR_DECRYPTION_FAILED, 0 },
	/* credentials, signature, permissions, key state: retrying the same
	 * request cannot help */
	{ "AccessDeniedException", ERR_PROVIDER_DENIED, 0 },
	{ "AccessDenied", ERR_PROVIDER_DENIED, 0 },
	{ "UnrecognizedClientException", ERR_PROVIDER_DENIED, 0 },
	{ "InvalidSignatureException", ERR_PROVIDER_DENIED, 0 },
	{ "IncompleteSignature", ERR_PROVIDER_DENIED, 0 },
	{ "IncompleteSignatureException", ERR_PROVIDER_DENIED, 0 },
	{ "SignatureDoesNotMatch", ERR_PROVIDER_DENIED, 0 },
	{ "MissingAuthenticationToken", ERR_PROVIDER_DENIED, 0 },
	{ "MissingAuthenticationTokenException", ERR_PROVIDER_DENIED, 0 },
	{ "InvalidClientTokenId", ERR_PROVIDER_DENIED, 0 },
	{ "AuthFailure", ERR_PROVIDER_DENIED, 0 },
	{ "NotAuthorizedException", ERR_PROVIDER_DENIED, 0 },
	{ "ExpiredTokenException", ERR_PROVIDER_DENIED, AWS_F_REFRESH },
	{ "ExpiredToken", ERR_PROVIDER_DENIED, AWS_F_REFRESH },
	{ "NotFoundException", ERR_PROVIDER_DENIED, 0 },
	{ "DisabledException", ERR_PROVIDER_DENIED, 0 },
	{ "KMSInvalidStateException", ERR_PROVIDER_DENIED, 0 },
	{ "KeyUnavailableException", ERR_PROVIDER_DENIED, 0 },
	{ "InvalidKeyUsageException", ERR_PROVIDER_DENIED, 0 },
	{ "InvalidGrantTokenException", ERR_PROVIDER_DENIED, 0 },
	{ "InvalidArnException", ERR_PROVIDER_DENIED, 0 },
	{ "DryRunOperationException", ERR_PROVIDER_DENIED, 0 },
	/* STS AssumeRoleWithWebIdentity */
	{ "InvalidIdentityToken", ERR_PROVIDER_DENIED, 0 },
	{ "IDPRejectedClaim", ERR_PROVIDER_DENIED, 0 },
	{ "RegionDisabledException", ERR_PROVIDER_DENIED, 0 },
	{ "IDPCommunicationError", ERR_PROVIDER_UNAVAILABLE, AWS_F_RETRY },
	/* the caller's input was refused (too long, empty): it always will */
	{ "ValidationException", ERR_BAD_REQUEST, 0 },
	/* botocore's throttling codes (retries/standard.py) */
	{ "Throttling", ERR_THROTTLED, AWS_F_RETRY | AWS_F_THROTTLE },
	{ "ThrottlingException", ERR_THROTTLED, AWS_F_RETRY | AWS_F_THROTTLE },
	{ "ThrottledException", ERR_THROTTLED, AWS_F_RETRY | AWS_F_THROTTLE },
	{ "RequestThrottledException", ERR_THROTTLED,
	    AWS_F_RETRY | AWS_F_THROTTLE },
	{ "TooManyRequestsException", ERR_THROTTLED,
	    AWS_F_RETRY | AWS_F_THROTTLE },
	{ "ProvisionedThroughputExceededException", ERR_THROTTLED,
	    AWS_F_RETRY | AWS_F_THROTTLE },
	{ "TransactionInProgressException", ERR_THROTTLED,
	    AWS_F_RETRY | AWS_F_THROTTLE },
	{ "RequestLimitExceeded", ERR_THROTTLED, AWS_F_RETRY | AWS_F_THROTTLE },
	{ "BandwidthLimitExceeded", ERR_THROTTLED,
	    AWS_F_RETRY | AWS_F_THROTTLE },
	{ "LimitExceededException", ERR_THROTTLED,
	    AWS_F_RETRY | AWS_F_THROTTLE },
	{ "RequestThrottled", ERR_THROTTLED, AWS_F_RETRY | AWS_F_THROTTLE },
	{ "SlowDown", ERR_THROTTLED, AWS_F_RETRY | AWS_F_THROTTLE },
	/* transient service-side failures */
	{ "DependencyTimeoutException", ERR_PROVIDER_UNAVAILABLE, AWS_F_RETRY },
	{ "KMSInternalException", ERR_PROVIDER_UNAVAILABLE, AWS_F_RETRY },
	{ "InternalFailure", ERR_PROVIDER_UNAVAILABLE, AWS_F_RETRY },
	{ "InternalError", ERR_PROVIDER_UNAVAILABLE, AWS_F_RETRY },
	{ "InternalServerError", ERR_PROVIDER_UNAVAILABLE, AWS_F_RETRY },
	{ "ServiceUnavailable", ERR_PROVIDER_UNAVAILABLE, AWS_F_RETRY },
	{ "ServiceUnavailableException", ERR_PROVIDER_UNAVAILABLE,
	    AWS_F_RETRY },
	{ "RequestTimeout", ERR_PROVIDER_UNAVAILABLE, AWS_F_RETRY },
	{ "RequestTimeoutException", ERR_PROVIDER_UNAVAILABLE, AWS_F_RETRY },
	{ "PriorRequestNotComplete", ERR_PROVIDER_UNAVAILABLE, AWS_F_RETRY },
};

#define AWS_N_ERRORS (sizeof(aws_error_map) / sizeof(aws_error_map[0]))

/* "com.amazonaws.kms#NotFoundException" or "NotFoundException:http://..."
 * to "NotFoundException"; "" unless it looks like an identifier. */
static void
aws_error_set_code(struct aws_error *out, struct str s)
{
	const char *colon, *hash;

	s = aws_trim(s.p, s.len);
	/* An empty <Code></Code> decodes to a buf that never allocated:
	 * memchr/memrchr must not see its NULL, even for 0 bytes. */
	if (s.p == NULL || s.len == 0)
		return;
	if ((colon = memchr(s.p, ':', s.len)) != NULL)
		s.len = (size_t)(colon - s.p);
	if ((hash = memrchr(s.p, '#', s.len)) != NULL) {
		s.len -= (size_t)(hash + 1 - s.p);
		s.p = hash + 1;
	}
	if (s.len == 0 || s.len >= sizeof(out->code))
		return;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.p[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return;
	}
	memcpy(out->code, s.p, s.len);
	out->code[s.len] = '\0';
}

/* Keep printable ASCII up to the first line break: AWS appends the
 * canonical request it expected (with the session token) after a blank
 * line in signature errors, and that must not reach a log. */
static void
aws_error_set_message(struct aws_error *out, const char *p, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 1 < sizeof(out->message); i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\n' || c == '\r')
			break;
		out->message[k++] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
	}
	while (k > 0 && out->message[k - 1] == ' ')
		k--;
	out->message[k] = '\0';
}

static void
aws_error_from_json(struct aws_error *out, const char *body, size_t len)
{
	static const char *const code_keys[] = { "__type", "code", "Code" };
	static const char *const msg_keys[] = { "message", "Message" };
	json_t *root = json_loadb(body, len, 0, NULL), *v;

	if (!json_is_object(root))
		goto out;
	for (size_t i = 0; i < 3 && out->code[0] == '\0'; i++)
		if (json_is_string(v = json_object_get(root, code_keys[i])))
			aws_error_set_code(out, (struct str){
			    json_string_value(v), json_string_length(v) });
	for (size_t i = 0; i < 2; i++)
		if (json_is_string(v = json_object_get(root, msg_keys[i]))) {
			aws_error_set_message(out, json_string_value(v),
			    json_string_length(v));
			break;
		}
out:
	json_decref(root);
}

static void
aws_error_from_xml(struct aws_error *out, const char *body, size_t len)
{
	struct str in = { body, len }, v;
	struct buf b;

	/* <ErrorResponse><Error>, <ErrorResponse><Errors><Error> and
	 * <Response><Errors><Error> all hold one <Code> and <Message>. */
	buf_init(&b, AWS_ERROR_MSG_MAX * 2);
	if (aws_xml_elem(in, "Code", &v) == 0 && aws_xml_text(v, &b, 1) == 0)
		aws_error_set_code(out, (struct str){ (const char *)b.data,
		    b.len });
	buf_clear(&b);
	if (aws_xml_elem(in, "Message", &v) == 0) {
		/* a message cut at the buf's cap is still worth keeping */
		if (v.len > AWS_ERROR_MSG_MAX)
			v.len = AWS_ERROR_MSG_MAX;
		if (aws_xml_text(v, &b, 0) == 0)
			aws_error_set_message(out, (const char *)b.data,
			    b.len);
	}
	buf_done(&b);
}

int
aws_parse_error(long status, const char *error_type, size_t type_len,
    const char *body, size_t len, struct aws_error *out)
{
	unsigned int flags = 0;
	struct str b;

	memset(out, 0, sizeof(*out));
	out->status = status;
	if (body != NULL && len > 0 && len <= AWS_PARSE_MAX_BODY) {
		b = aws_trim(body, len);
		if (b.len > 0 && b.p[0] == '{')
			aws_error_from_json(out, b.p, b.len);
		else if (b.len > 0 && b.p[0] == '<')
			aws_error_from_xml(out, b.p, b.len);
	}
	if (out->code[0] == '\0' && error_type != NULL && type_len > 0)
		aws_error_set_code(out, (struct str){ error_type, type_len });

	out->err = 0;
	for (size_t i = 0; i < AWS_N_ERRORS && out->code[0] != '\0'; i++)
		if (strcmp(out->code, aws_error_map[i].code) == 0) {
			out->err = aws_error_map[i].err;
			flags = aws_error_map[i].flags;
			break;
		}
	if (out->err == 0) {
		if (status == 429) {
			out->err = ERR_THROTTLED;
			flags = AWS_F_RETRY | AWS_F_THROTTLE;
		} else if ((status >= 500 && status <= 599) || status == 408) {
			out->err = ERR_PROVIDER_UNAVAILABLE;
			flags = AWS_F_RETRY;
		} else if (status >= 400 && status <= 499) {
			out->err = ERR_PROVIDER_DENIED;
		} else {
			/* not an error status, or not HTTP at all */
			out->err = ERR_PROVIDER_UNAVAILABLE;
		}
	}
	out->retryable = (flags & AWS_F_RETRY) != 0;
	out->throttled = (flags & AWS_F_THROTTLE) != 0;
	out->refresh_creds = (flags & AWS_F_REFRESH) != 0;
	return out->err;
}

/* ---- ARNs ---- */

static int
aws_arn_part_ok(struct str s, size_t max, int digits_only)
{
	if (s.len == 0 || s.len > max)
		return 0;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.p[i];

		if (digits_only ? !(c >= '0' && c <= '9') :
		    !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-'))
			return 0;
	}
	return 1;
}

int
aws_parse_arn_region(const char *key_id, struct str *ret_region)
{
	struct str part[5], res;
	const char *p, *end;
	size_t n;

	*ret_region = STR_NULL;
	if (key_id == NULL || (n = strlen(key_id)) == 0 ||
	    n > AWS_KMS_MAX_KEY_ID)
		return ERR_BAD_REQUEST;
	if (strncmp(key_id, "arn:", 4) != 0)
		return 0;		/* key id, alias/NAME */
	/* arn : partition : service : region : account : resource, where the
	 * resource (an alias name) may itself hold ':' */
	p = key_id;
	end = key_id + n;
	for (size_t i = 0; i < 5; i++) {
		const char *c = memchr(p, ':', (size_t)(end - p));

		if (c == NULL)
			return ERR_BAD_REQUEST;
		part[i] = (struct str){ p, (size_t)(c - p) };
		p = c + 1;
	}
	res = (struct str){ p, (size_t)(end - p) };
	if (!aws_arn_part_ok(part[1], AWS_PARSE_MAX_PARTITION, 0) ||
	    !str_eq(part[2], "kms") || !aws_region_ok(part[3]) ||
	    part[4].len != 12 || !aws_arn_part_ok(part[4], 12, 1))
		return ERR_BAD_REQUEST;
	if (!((res.len > 4 && memcmp(res.p, "key/", 4) == 0) ||
	    (res.len > 6 && memcmp(res.p, "alias/", 6) == 0)))
		return ERR_BAD_REQUEST;
	for (size_t i = 0; i < res.len; i++) {
		unsigned char c = (unsigned char)res.p[i];

		/* the KMS model's key id and alias name characters */
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == ':' || c == '/' ||
		    c == '_' || c == '-'))
			return ERR_BAD_REQUEST;
	}
	*ret_region = part[3];
	return 0;
}
