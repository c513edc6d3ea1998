/*
 * test_stats.c: counters, their JSON and Prometheus renderings, and the
 * atomic textfile.
 *
 * JSON is checked by parsing it with jansson; the Prometheus text by a
 * small validator of the exposition grammar written here (so the test
 * does not depend on promtool) plus exact expected sample lines.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "err.h"
#include "op.h"
#include "stats.h"

/* Room for a render of STATS_MAX_ROWS rows in each table. */
#define TEST_OUT_MAX ((size_t)16 << 20)

/* ------------------------------------------------------------------ */
/* Rendering helpers */

static char *
render_prom(const struct stats *s, const struct stats_state *st,
    int64_t now)
{
	struct buf b;
	char *text;

	buf_init(&b, TEST_OUT_MAX);
	ck_assert_int_eq(stats_prometheus(s, st, now, &b), 0);
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_uint_eq(strlen((const char *)b.data), b.len);
	text = strdup((const char *)b.data);
	ck_assert_ptr_nonnull(text);
	buf_done(&b);
	return text;
}

static json_t *
render_json(const struct stats *s, const struct stats_state *st,
    int64_t now)
{
	struct buf b;
	json_error_t e;
	json_t *doc;

	buf_init(&b, TEST_OUT_MAX);
	ck_assert_int_eq(stats_json(s, st, now, &b), 0);
	doc = json_loadb((const char *)b.data, b.len, JSON_REJECT_DUPLICATES,
	    &e);
	ck_assert_msg(doc != NULL, "JSON does not parse: %s at %d: %.*s",
	    e.text, e.position, (int)b.len, (const char *)b.data);
	ck_assert(json_is_object(doc));
	buf_done(&b);
	return doc;
}

/* Count of the one operations row with these labels, or -1. */
static json_int_t
op_count(json_t *doc, const char *op, const char *key, const char *socket,
    const char *result)
{
	json_t *rows = json_object_get(doc, "operations"), *r;
	json_int_t found = -1;
	size_t i;

	ck_assert(json_is_array(rows));
	json_array_foreach(rows, i, r) {
		if (strcmp(json_string_value(json_object_get(r, "op")), op) ||
		    strcmp(json_string_value(json_object_get(r, "key")), key) ||
		    strcmp(json_string_value(json_object_get(r, "socket")),
		    socket) ||
		    strcmp(json_string_value(json_object_get(r, "result")),
		    result))
			continue;
		ck_assert_msg(found == -1, "duplicate row %s/%s/%s/%s", op,
		    key, socket, result);
		ck_assert(json_is_integer(json_object_get(r, "count")));
		found = json_integer_value(json_object_get(r, "count"));
	}
	return found;
}

/* Count of the one peers row; uid < 0 means the "other" row. */
static json_int_t
peer_count(json_t *doc, long long uid, const char *op, const char *result)
{
	json_t *rows = json_object_get(doc, "peers"), *r, *u;
	json_int_t found = -1;
	size_t i;

	ck_assert(json_is_array(rows));
	json_array_foreach(rows, i, r) {
		u = json_object_get(r, "uid");
		if (uid < 0 ? !json_is_string(u) ||
		    strcmp(json_string_value(u), "other") != 0 :
		    !json_is_integer(u) || json_integer_value(u) != uid)
			continue;
		if (strcmp(json_string_value(json_object_get(r, "op")), op) ||
		    strcmp(json_string_value(json_object_get(r, "result")),
		    result))
			continue;
		ck_assert_msg(found == -1, "duplicate peer row %lld/%s/%s",
		    uid, op, result);
		found = json_integer_value(json_object_get(r, "count"));
	}
	return found;
}

static json_int_t
json_path_int(json_t *doc, const char *obj, const char *field)
{
	json_t *v = json_object_get(json_object_get(doc, obj), field);

	ck_assert_msg(json_is_integer(v), "%s.%s not an integer", obj, field);
	return json_integer_value(v);
}

/* line (without newline) is one whole line of text. */
static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p;

	for (p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Prometheus text format validator */

#define PROM_MAX_FAMILIES 32

struct prom_family {
	char name[128];
	int help;
	int type;
	int samples;
	int closed;	/* another family's lines came after this one's */
};

/* Why the last prom_check failed. */
static char prom_err[256];

#define PROM_REQUIRE(cond, ...) do {					\
	if (!(cond)) {							\
		snprintf(prom_err, sizeof(prom_err), __VA_ARGS__);	\
		goto bad;						\
	}								\
} while (0)

static int
prom_name_start(int c, int colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	    (colon && c == ':');
}

static int
prom_name_char(int c, int colon)
{
	return prom_name_start(c, colon) || (c >= '0' && c <= '9');
}

/* Length of a metric name (colon = 1) or label name at p, 0 if none. */
static size_t
prom_name(const char *p, int colon)
{
	size_t n = 0;

	if (!prom_name_start((unsigned char)p[0], colon))
		return 0;
	while (prom_name_char((unsigned char)p[n], colon))
		n++;
	return n;
}

/* The family called name, made current; NULL (prom_err set) when its
 * lines are not grouped. */
static struct prom_family *
prom_family(struct prom_family *f, size_t *n_f, const char *name,
    size_t len, size_t *current, int line)
{
	size_t i;

	PROM_REQUIRE(len < sizeof(f[0].name), "line %d: name too long", line);
	for (i = 0; i < *n_f; i++)
		if (strlen(f[i].name) == len && memcmp(f[i].name, name, len) == 0)
			break;
	if (i == *n_f) {
		PROM_REQUIRE(*n_f < PROM_MAX_FAMILIES, "too many families");
		memset(&f[i], 0, sizeof(f[i]));
		memcpy(f[i].name, name, len);
		(*n_f)++;
	}
	PROM_REQUIRE(!f[i].closed, "line %d: family %s is not grouped",
	    line, f[i].name);
	if (*current != i && *current < *n_f)
		f[*current].closed = 1;
	*current = i;
	return &f[i];
bad:
	return NULL;
}

static int
prom_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Check text against the exposition format as kmsd writes it: only HELP
 * and TYPE comments; each family's HELP and TYPE exactly once and before
 * its samples; samples grouped by family; every sample line
 * `name{label="escaped",...} value` with the grammar's names and escapes;
 * no two samples with the same name and labels; a final newline. Returns
 * the number of samples, or -1 with prom_err set.
 */
static long
prom_check(const char *text)
{
	struct prom_family fam[PROM_MAX_FAMILIES], *f;
	size_t n_fam = 0, current = PROM_MAX_FAMILIES, n_samples = 0;
	size_t cap = 64, len, n;
	char **series = malloc(cap * sizeof(*series)), **ns;
	const char *p = text, *eol, *q;
	long ret = -1;
	int line = 0;

	PROM_REQUIRE(series != NULL, "out of memory");
	len = strlen(text);
	PROM_REQUIRE(len > 0 && text[len - 1] == '\n', "no final newline");
	for (; *p != '\0'; p = eol + 1) {
		eol = strchr(p, '\n');
		line++;
		PROM_REQUIRE(eol != p, "line %d: empty", line);
		if (p[0] == '#') {
			int is_help = strncmp(p, "# HELP ", 7) == 0;

			PROM_REQUIRE(is_help || strncmp(p, "# TYPE ", 7) == 0,
			    "line %d: unexpected comment", line);
			q = p + 7;
			n = prom_name(q, 1);
			PROM_REQUIRE(n > 0 && q[n] == ' ',
			    "line %d: bad family name", line);
			if ((f = prom_family(fam, &n_fam, q, n, &current,
			    line)) == NULL)
				goto bad;
			PROM_REQUIRE(f->samples == 0,
			    "line %d: HELP/TYPE after samples", line);
			q += n + 1;
			if (is_help) {
				PROM_REQUIRE(f->help == 0,
				    "line %d: second HELP", line);
				f->help = 1;
				/* Docstring: a backslash only as \\ or \n. */
				for (; q < eol; q++) {
					if (*q != '\\')
						continue;
					q++;
					PROM_REQUIRE(*q == '\\' || *q == 'n',
					    "line %d: bad escape in HELP",
					    line);
				}
			} else {
				PROM_REQUIRE(f->type == 0,
				    "line %d: second TYPE", line);
				f->type = 1;
				PROM_REQUIRE(
				    (eol - q == 7 && !strncmp(q, "counter", 7)) ||
				    (eol - q == 5 && !strncmp(q, "gauge", 5)),
				    "line %d: unexpected type", line);
			}
			continue;
		}

		n = prom_name(p, 1);
		PROM_REQUIRE(n > 0, "line %d: bad metric name", line);
		if ((f = prom_family(fam, &n_fam, p, n, &current, line)) ==
		    NULL)
			goto bad;
		PROM_REQUIRE(f->help && f->type,
		    "line %d: sample before HELP and TYPE", line);
		f->samples++;
		q = p + n;
		if (*q == '{') {
			q++;
			while (*q != '}') {
				n = prom_name(q, 0);
				PROM_REQUIRE(n > 0, "line %d: bad label name",
				    line);
				q += n;
				PROM_REQUIRE(q[0] == '=' && q[1] == '"',
				    "line %d: bad label", line);
				for (q += 2; *q != '"'; q++) {
					PROM_REQUIRE(q < eol,
					    "line %d: unterminated value", line);
					if (*q == '\\') {
						q++;
						PROM_REQUIRE(*q == '\\' ||
						    *q == '"' || *q == 'n',
						    "line %d: bad escape", line);
					}
				}
				q++;
				PROM_REQUIRE(*q == ',' || *q == '}',
				    "line %d: bad label list", line);
				if (*q == ',')
					q++;
			}
			q++;
		}
		/* The series (name and labels) must be unique. */
		if (n_samples == cap) {
			ns = realloc(series, 2 * cap * sizeof(*series));
			PROM_REQUIRE(ns != NULL, "out of memory");
			series = ns;
			cap *= 2;
		}
		series[n_samples] = strndup(p, (size_t)(q - p));
		PROM_REQUIRE(series[n_samples] != NULL, "out of memory");
		n_samples++;

		PROM_REQUIRE(*q == ' ', "line %d: no space before value",
		    line);
		q++;
		/* kmsd writes unsigned integers, no timestamps. */
		PROM_REQUIRE(q < eol && *q >= '0' && *q <= '9',
		    "line %d: bad value", line);
		while (*q >= '0' && *q <= '9')
			q++;
		PROM_REQUIRE(q == eol, "line %d: junk after value", line);
	}
	for (size_t i = 0; i < n_fam; i++)
		PROM_REQUIRE(fam[i].help && fam[i].type,
		    "family %s lacks HELP or TYPE", fam[i].name);
	qsort(series, n_samples, sizeof(*series), prom_cmp_str);
	for (size_t i = 0; i + 1 < n_samples; i++)
		PROM_REQUIRE(strcmp(series[i], series[i + 1]) != 0,
		    "duplicate series %s", series[i]);
	ret = (long)n_samples;
bad:
	for (size_t i = 0; series != NULL && i < n_samples; i++)
		free(series[i]);
	free(series);
	return ret;
}

/* prom_check that must pass. */
static size_t
prom_validate(const char *text)
{
	long n = prom_check(text);

	ck_assert_msg(n >= 0, "invalid exposition: %s", prom_err);
	return (size_t)n;
}

/* The validator itself must reject what it claims to reject. */
static const char *const prom_bad[] = {
	"",
	"# HELP m x\n# TYPE m counter\nm 1",		/* no newline */
	"# HELP m x\n# TYPE m counter\nm 1\n\n",	/* empty line */
	"m 1\n",					/* no HELP/TYPE */
	"# HELP m x\nm 1\n",
	"# TYPE m counter\n# HELP m x\n# HELP m y\nm 1\n",
	"# HELP m x\n# TYPE m counter\nm 1\n# TYPE m gauge\n",
	"# HELP m x\n# TYPE m counter\n# HELP n x\n# TYPE n gauge\n"
	    "n 1\nm 1\n",				/* not grouped */
	"# HELP m x\n# TYPE m counter\nm 1\n# HELP n x\n# TYPE n gauge\n"
	    "n 1\nm 2\n",				/* not grouped */
	"# HELP m x\n# TYPE m counter\n# HELP n x\n",	/* n lacks TYPE */
	"# HELP m x\n# TYPE m histogram\nm 1\n",
	"# HELP m a\\b\n# TYPE m gauge\nm 1\n",		/* HELP escape */
	"# HELP 1m x\n# TYPE 1m gauge\n1m 1\n",		/* bad name */
	"# HELP m x\n# TYPE m gauge\nm{a=\"x\"y\"} 1\n",	/* bad quote */
	"# HELP m x\n# TYPE m gauge\nm{a=\"x\\y\"} 1\n",	/* bad escape */
	"# HELP m x\n# TYPE m gauge\nm{a=\"x\n\"} 1\n",	/* raw newline */
	"# HELP m x\n# TYPE m gauge\nm{a-b=\"x\"} 1\n",	/* bad label */
	"# HELP m x\n# TYPE m gauge\nm{a:b=\"x\"} 1\n",	/* colon label */
	"# HELP m x\n# TYPE m gauge\nm{a=x} 1\n",	/* unquoted */
	"# HELP m x\n# TYPE m gauge\nm{a=\"x\"} 1\nm{a=\"x\"} 2\n",
	"# HELP m x\n# TYPE m gauge\nm{a=\"x\"}1\n",
	"# HELP m x\n# TYPE m gauge\nm 1 x\n",
	"# HELP m x\n# TYPE m gauge\nm \n",
	"# HELP m x\n# TYPE m gauge\n# other\nm 1\n",
};

#define PROM_BAD_LEN (sizeof(prom_bad) / sizeof(prom_bad[0]))

START_TEST(test_validator_rejects)
{
	ck_assert_msg(prom_check(prom_bad[_i]) == -1, "accepted: %s",
	    prom_bad[_i]);
}
END_TEST

START_TEST(test_validator_accepts)
{
	ck_assert_uint_eq(prom_validate(
	    "# HELP m A \\\\ help\\n.\n# TYPE m counter\n"
	    "m{a=\"x\\\"y\\\\z\\n\",b=\"\"} 1\nm{a=\"x\"} 0\n"
	    "# HELP g:x g\n# TYPE g:x gauge\ng:x 12\n"), 3);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Rows */

static const struct {
	int op;
	const char *key;
	const char *socket;
	uid_t uid;
	int result;
} row_events[] = {
	{ OP_DECRYPT, "default", "worker", 1000, STATS_OK },
	{ OP_DECRYPT, "default", "worker", 1000, STATS_OK },
	{ OP_DECRYPT, "default", "worker", 1001, STATS_OK },
	{ OP_DECRYPT, "default", "worker", 1000, STATS_DENIED },
	{ OP_DECRYPT, "default", "web", 1000, STATS_OK },
	{ OP_DECRYPT, "phone", "worker", 1000, STATS_FAILED },
	{ OP_ENCRYPT, "default", "worker", 1000, STATS_OK },
	{ OP_GENERATE, NULL, "worker", 33, STATS_DENIED },	/* unknown key */
	{ OP_DECRYPT, NULL, "worker", 33, STATS_DENIED },
	{ OP_STATS, NULL, "admin", 0, STATS_OK },
	{ 99, "default", "worker", 0, STATS_OK },	/* op out of range */
	{ OP_HELLO, "default", "worker", 0, 7 },	/* result out of range */
};

static const struct {
	const char *op, *key, *socket, *result;
	json_int_t count;
} row_ops[] = {
	{ "hello", "default", "worker", "failed", 1 },
	{ "generate", "", "worker", "denied", 1 },
	{ "encrypt", "default", "worker", "ok", 1 },
	{ "decrypt", "", "worker", "denied", 1 },
	{ "decrypt", "default", "web", "ok", 1 },
	{ "decrypt", "default", "worker", "ok", 3 },
	{ "decrypt", "default", "worker", "denied", 1 },
	{ "decrypt", "phone", "worker", "failed", 1 },
	{ "stats", "", "admin", "ok", 1 },
	{ "unknown", "default", "worker", "ok", 1 },
};

static const struct {
	long long uid;
	const char *op, *result;
	json_int_t count;
} row_peers[] = {
	{ 0, "hello", "failed", 1 },
	{ 0, "stats", "ok", 1 },
	{ 0, "unknown", "ok", 1 },
	{ 33, "generate", "denied", 1 },
	{ 33, "decrypt", "denied", 1 },
	{ 1000, "encrypt", "ok", 1 },
	{ 1000, "decrypt", "ok", 3 },
	{ 1000, "decrypt", "denied", 1 },
	{ 1000, "decrypt", "failed", 1 },
	{ 1001, "decrypt", "ok", 1 },
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static struct stats *
stats_with_rows(void)
{
	struct stats *s = stats_new();

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < ARRAY_LEN(row_events); i++)
		stats_count(s, row_events[i].op, row_events[i].key,
		    row_events[i].socket, row_events[i].uid,
		    (enum stats_result)row_events[i].result, 500);
	return s;
}

START_TEST(test_rows_json)
{
	struct stats *s = stats_with_rows();
	json_t *doc = render_json(s, NULL, 500);
	json_t *rows;
	size_t i;

	ck_assert_uint_eq(json_array_size(json_object_get(doc, "operations")),
	    ARRAY_LEN(row_ops));
	for (i = 0; i < ARRAY_LEN(row_ops); i++)
		ck_assert_msg(op_count(doc, row_ops[i].op, row_ops[i].key,
		    row_ops[i].socket, row_ops[i].result) == row_ops[i].count,
		    "row %zu", i);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "peers")),
	    ARRAY_LEN(row_peers));
	for (i = 0; i < ARRAY_LEN(row_peers); i++)
		ck_assert_msg(peer_count(doc, row_peers[i].uid, row_peers[i].op,
		    row_peers[i].result) == row_peers[i].count,
		    "peer row %zu", i);

	/* Sorted: the expectation tables above are in output order. */
	rows = json_object_get(doc, "operations");
	for (i = 0; i < ARRAY_LEN(row_ops); i++) {
		json_t *r = json_array_get(rows, i);

		ck_assert_str_eq(json_string_value(json_object_get(r, "op")),
		    row_ops[i].op);
		ck_assert_str_eq(json_string_value(json_object_get(r, "key")),
		    row_ops[i].key);
		ck_assert_str_eq(json_string_value(json_object_get(r,
		    "result")), row_ops[i].result);
	}
	rows = json_object_get(doc, "peers");
	for (i = 0; i < ARRAY_LEN(row_peers); i++)
		ck_assert_int_eq(json_integer_value(json_object_get(
		    json_array_get(rows, i), "uid")), row_peers[i].uid);

	ck_assert_int_eq(json_path_int(doc, "decrypts", "1m"), 4);
	ck_assert_int_eq(stats_decrypts(s, 500, 60), 4);
	json_decref(doc);
	stats_free(s);
}
END_TEST

START_TEST(test_rows_prometheus)
{
	struct stats *s = stats_with_rows();
	char *text = render_prom(s, NULL, 500);

	ck_assert_uint_eq(prom_validate(text),
	    ARRAY_LEN(row_ops) + ARRAY_LEN(row_peers) + 3 + 4);
	ck_assert(has_line(text, "kmsd_operations_total{op=\"decrypt\","
	    "key=\"default\",socket=\"worker\",result=\"ok\"} 3"));
	ck_assert(has_line(text, "kmsd_operations_total{op=\"generate\","
	    "key=\"\",socket=\"worker\",result=\"denied\"} 1"));
	ck_assert(has_line(text, "kmsd_peer_operations_total{uid=\"1000\","
	    "op=\"decrypt\",result=\"ok\"} 3"));
	ck_assert(has_line(text, "kmsd_peer_operations_total{uid=\"0\","
	    "op=\"unknown\",result=\"ok\"} 1"));
	free(text);
	stats_free(s);
}
END_TEST

/* Names are copied: the config that owned them may be freed by a reload
 * between counting and rendering (valgrind sees any use after free). */
START_TEST(test_names_copied)
{
	struct stats *s = stats_new();
	char *key = strdup("default"), *sock = strdup("worker");
	json_t *doc;

	ck_assert_ptr_nonnull(key);
	ck_assert_ptr_nonnull(sock);
	stats_count(s, OP_ENCRYPT, key, sock, 5, STATS_OK, 1);
	memset(key, 'x', strlen(key));
	memset(sock, 'y', strlen(sock));
	free(key);
	free(sock);
	stats_count(s, OP_ENCRYPT, "default", "worker", 5, STATS_OK, 2);
	doc = render_json(s, NULL, 2);
	ck_assert_int_eq(op_count(doc, "encrypt", "default", "worker", "ok"),
	    2);
	json_decref(doc);
	stats_free(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Document shape, state, escaping */

START_TEST(test_json_state)
{
	struct stats *s = stats_new();
	struct stats_state st = { 1, "said \"no\"\\\n\x01 \xff end", 4242 };
	static const char *const fields[] = { "operations", "peers",
		"decrypts", "breaker", "cache", "decrypt_disabled",
		"disabled_reason", "uptime_s" };
	json_t *doc;

	stats_breaker_trip(s);
	stats_breaker_trip(s);
	stats_cache_hit(s);
	doc = render_json(s, &st, 0);
	ck_assert_uint_eq(json_object_size(doc), ARRAY_LEN(fields));
	for (size_t i = 0; i < ARRAY_LEN(fields); i++)
		ck_assert_msg(json_object_get(doc, fields[i]) != NULL,
		    "missing %s", fields[i]);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "operations")),
	    0);
	ck_assert_int_eq(json_path_int(doc, "breaker", "trips"), 2);
	ck_assert_int_eq(json_path_int(doc, "cache", "hits"), 1);
	ck_assert(json_is_true(json_object_get(doc, "decrypt_disabled")));
	/* Invalid UTF-8 becomes U+FFFD rather than breaking the document. */
	ck_assert_str_eq(json_string_value(json_object_get(doc,
	    "disabled_reason")), "said \"no\"\\\n\x01 \xef\xbf\xbd end");
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "uptime_s")),
	    4242);
	json_decref(doc);

	doc = render_json(s, NULL, 0);
	ck_assert(json_is_false(json_object_get(doc, "decrypt_disabled")));
	ck_assert(json_is_null(json_object_get(doc, "disabled_reason")));
	json_decref(doc);
	stats_free(s);
}
END_TEST

START_TEST(test_prometheus_state)
{
	struct stats *s = stats_new();
	struct stats_state st = { 1, "breaker", 77 };
	char *text;

	stats_breaker_trip(s);
	stats_cache_hit(s);
	stats_cache_hit(s);
	text = render_prom(s, &st, 0);
	ck_assert_uint_eq(prom_validate(text), 7);
	ck_assert(has_line(text, "# TYPE kmsd_operations_total counter"));
	ck_assert(has_line(text, "# TYPE kmsd_peer_operations_total counter"));
	ck_assert(has_line(text, "# TYPE kmsd_decrypts_recent gauge"));
	ck_assert(has_line(text, "# TYPE kmsd_breaker_trips_total counter"));
	ck_assert(has_line(text, "# TYPE kmsd_decrypt_disabled gauge"));
	ck_assert(has_line(text, "# TYPE kmsd_uptime_seconds gauge"));
	ck_assert(has_line(text, "kmsd_breaker_trips_total 1"));
	ck_assert(has_line(text, "# TYPE kmsd_cache_hits_total counter"));
	ck_assert(has_line(text, "kmsd_cache_hits_total 2"));
	ck_assert(has_line(text, "kmsd_decrypt_disabled 1"));
	ck_assert(has_line(text, "kmsd_uptime_seconds 77"));
	free(text);
	st.decrypt_disabled = 0;
	text = render_prom(s, &st, 0);
	ck_assert(has_line(text, "kmsd_decrypt_disabled 0"));
	free(text);
	stats_free(s);
}
END_TEST

static const struct {
	const char *key;
	const char *socket;
	const char *prom;	/* expected sample line */
	const char *json_key;	/* expected after a JSON round trip */
	const char *json_socket;
} escape_table[] = {
	{ "default", "we\"ird\\so", "kmsd_operations_total{op=\"decrypt\","
	    "key=\"default\",socket=\"we\\\"ird\\\\so\",result=\"ok\"} 1",
	    "default", "we\"ird\\so" },
	{ "line\nbreak", "\\\"\\", "kmsd_operations_total{op=\"decrypt\","
	    "key=\"line\\nbreak\",socket=\"\\\\\\\"\\\\\",result=\"ok\"} 1",
	    "line\nbreak", "\\\"\\" },
	{ "cl\xc3\xa9", "tab\there", "kmsd_operations_total{op=\"decrypt\","
	    "key=\"cl\xc3\xa9\",socket=\"tab\there\",result=\"ok\"} 1",
	    "cl\xc3\xa9", "tab\there" },
	{ "bad\xff", "trunc\xc3", "kmsd_operations_total{op=\"decrypt\","
	    "key=\"bad\xef\xbf\xbd\",socket=\"trunc\xef\xbf\xbd\","
	    "result=\"ok\"} 1",
	    "bad\xef\xbf\xbd", "trunc\xef\xbf\xbd" },
	{ "surrogate\xed\xa0\x80", "overlong\xc0\xaf",
	    "kmsd_operations_total{op=\"decrypt\","
	    "key=\"surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\","
	    "socket=\"overlong\xef\xbf\xbd\xef\xbf\xbd\",result=\"ok\"} 1",
	    "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
	    "overlong\xef\xbf\xbd\xef\xbf\xbd" },
};

START_TEST(test_escaping)
{
	struct stats *s = stats_new();
	char *text;
	json_t *doc;

	stats_count(s, OP_DECRYPT, escape_table[_i].key,
	    escape_table[_i].socket, 1, STATS_OK, 0);
	text = render_prom(s, NULL, 0);
	prom_validate(text);
	ck_assert_msg(has_line(text, escape_table[_i].prom),
	    "want %s in\n%s", escape_table[_i].prom, text);
	free(text);
	doc = render_json(s, NULL, 0);
	ck_assert_int_eq(op_count(doc, "decrypt", escape_table[_i].json_key,
	    escape_table[_i].json_socket, "ok"), 1);
	json_decref(doc);
	stats_free(s);
}
END_TEST

/* A render that does not fit leaves the buffer as it was. */
START_TEST(test_render_too_large)
{
	struct stats *s = stats_with_rows();
	struct buf b;

	buf_init(&b, 64);
	ck_assert_int_eq(buf_append_str(&b, "prefix"), 0);
	ck_assert_int_eq(stats_json(s, NULL, 0, &b), ERR_TOO_LARGE);
	ck_assert_uint_eq(b.len, 6);
	ck_assert_int_eq(stats_prometheus(s, NULL, 0, &b), ERR_TOO_LARGE);
	ck_assert_uint_eq(b.len, 6);
	ck_assert_int_eq(memcmp(b.data, "prefix", 6), 0);
	buf_done(&b);
	stats_free(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Decrypt windows */

#define WIN_NOW 100000

/* Ok decrypts at these ages before WIN_NOW (oldest first). */
static const struct {
	int64_t age;
	unsigned n;
} win_events[] = {
	{ 900, 1 }, { 899, 2 }, { 300, 4 }, { 299, 8 }, { 60, 16 },
	{ 59, 32 }, { 0, 64 },
};

static const struct {
	int64_t now;
	uint64_t m1, m5, m15;
} win_expect[] = {
	{ WIN_NOW, 32 + 64, 8 + 16 + 32 + 64, 2 + 4 + 8 + 16 + 32 + 64 },
	{ WIN_NOW + 60, 0, 16 + 32 + 64, 4 + 8 + 16 + 32 + 64 },
	{ WIN_NOW - 5, 32 + 64, 8 + 16 + 32 + 64, 2 + 4 + 8 + 16 + 32 + 64 },
	{ WIN_NOW + 900, 0, 0, 0 },
};

START_TEST(test_decrypt_windows)
{
	struct stats *s = stats_new();
	int64_t now = win_expect[_i].now;
	char line[128], *text;
	json_t *doc;

	for (size_t i = 0; i < ARRAY_LEN(win_events); i++)
		for (unsigned j = 0; j < win_events[i].n; j++)
			stats_count(s, OP_DECRYPT, "default", "worker", 1,
			    STATS_OK, WIN_NOW - win_events[i].age);
	/* Not ok, or not decrypt: not in the windows. */
	stats_count(s, OP_DECRYPT, "default", "worker", 1, STATS_DENIED,
	    WIN_NOW);
	stats_count(s, OP_DECRYPT, "default", "worker", 1, STATS_FAILED,
	    WIN_NOW);
	stats_count(s, OP_ENCRYPT, "default", "worker", 1, STATS_OK, WIN_NOW);

	ck_assert_uint_eq(stats_decrypts(s, now, 60), win_expect[_i].m1);
	ck_assert_uint_eq(stats_decrypts(s, now, 300), win_expect[_i].m5);
	ck_assert_uint_eq(stats_decrypts(s, now, 900), win_expect[_i].m15);
	ck_assert_uint_eq(stats_decrypts(s, now, 100000), win_expect[_i].m15);

	doc = render_json(s, NULL, now);
	ck_assert_int_eq(json_path_int(doc, "decrypts", "1m"),
	    win_expect[_i].m1);
	ck_assert_int_eq(json_path_int(doc, "decrypts", "5m"),
	    win_expect[_i].m5);
	ck_assert_int_eq(json_path_int(doc, "decrypts", "15m"),
	    win_expect[_i].m15);
	json_decref(doc);

	text = render_prom(s, NULL, now);
	snprintf(line, sizeof(line), "kmsd_decrypts_recent{window=\"1m\"} %llu",
	    (unsigned long long)win_expect[_i].m1);
	ck_assert_msg(has_line(text, line), "want %s", line);
	snprintf(line, sizeof(line), "kmsd_decrypts_recent{window=\"5m\"} %llu",
	    (unsigned long long)win_expect[_i].m5);
	ck_assert_msg(has_line(text, line), "want %s", line);
	snprintf(line, sizeof(line),
	    "kmsd_decrypts_recent{window=\"15m\"} %llu",
	    (unsigned long long)win_expect[_i].m15);
	ck_assert_msg(has_line(text, line), "want %s", line);
	free(text);
	stats_free(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Row bound */

START_TEST(test_max_rows_fold)
{
	struct stats *s = stats_new();
	char key[32], *text;
	json_t *doc;

	for (unsigned i = 0; i < STATS_MAX_ROWS; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		stats_count(s, OP_DECRYPT, key, "s", 1 + i, STATS_OK, 0);
	}
	/* Existing rows still count in place. */
	stats_count(s, OP_DECRYPT, "k0", "s", 1, STATS_OK, 0);
	/* New rows fold, keeping op and result. */
	stats_count(s, OP_DECRYPT, "late1", "s", 1, STATS_OK, 0);
	stats_count(s, OP_DECRYPT, "late2", "s", 900000, STATS_OK, 0);
	stats_count(s, OP_DECRYPT, "k1", "s", 900001, STATS_DENIED, 0);
	stats_count(s, OP_ENCRYPT, NULL, "t", 900002, STATS_FAILED, 0);
	/* Names that spell the fold row count in it, never beside it. */
	stats_count(s, OP_DECRYPT, "_other", "_other", 2, STATS_OK, 0);

	doc = render_json(s, NULL, 0);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "operations")),
	    STATS_MAX_ROWS + 3);
	ck_assert_int_eq(op_count(doc, "decrypt", "k0", "s", "ok"), 2);
	ck_assert_int_eq(op_count(doc, "decrypt", "k4095", "s", "ok"), 1);
	ck_assert_int_eq(op_count(doc, "decrypt", "late1", "s", "ok"), -1);
	ck_assert_int_eq(op_count(doc, "decrypt", "_other", "_other", "ok"),
	    3);
	ck_assert_int_eq(op_count(doc, "decrypt", "_other", "_other",
	    "denied"), 1);
	ck_assert_int_eq(op_count(doc, "encrypt", "_other", "_other",
	    "failed"), 1);

	ck_assert_uint_eq(json_array_size(json_object_get(doc, "peers")),
	    STATS_MAX_ROWS + 3);
	ck_assert_int_eq(peer_count(doc, 1, "decrypt", "ok"), 3);
	ck_assert_int_eq(peer_count(doc, 2, "decrypt", "ok"), 2);
	ck_assert_int_eq(peer_count(doc, 900000, "decrypt", "ok"), -1);
	ck_assert_int_eq(peer_count(doc, -1, "decrypt", "ok"), 1);
	ck_assert_int_eq(peer_count(doc, -1, "decrypt", "denied"), 1);
	ck_assert_int_eq(peer_count(doc, -1, "encrypt", "failed"), 1);
	ck_assert_int_eq(json_path_int(doc, "decrypts", "1m"),
	    STATS_MAX_ROWS + 4);
	json_decref(doc);

	text = render_prom(s, NULL, 0);
	ck_assert_uint_eq(prom_validate(text), 2 * (STATS_MAX_ROWS + 3) + 7);
	ck_assert(has_line(text, "kmsd_operations_total{op=\"decrypt\","
	    "key=\"_other\",socket=\"_other\",result=\"ok\"} 3"));
	ck_assert(has_line(text, "kmsd_peer_operations_total{uid=\"other\","
	    "op=\"decrypt\",result=\"ok\"} 1"));
	free(text);
	stats_free(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Textfile */

static char test_dir[64];

static void
dir_setup(void)
{
	snprintf(test_dir, sizeof(test_dir), "/tmp/kmsd-test-stats-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
}

/* Remove everything under test_dir and the directory. */
static void
dir_teardown(void)
{
	DIR *d = opendir(test_dir);
	struct dirent *e;
	char p[sizeof(test_dir) + sizeof(((struct dirent *)0)->d_name) + 1];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", test_dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(test_dir);
}

/* The names in test_dir, sorted and joined with spaces. */
static void
dir_list(char *out, size_t len)
{
	struct dirent **names;
	int n = scandir(test_dir, &names, NULL, alphasort);
	size_t used = 0;

	ck_assert_int_ge(n, 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.')
			used += (size_t)snprintf(out + used, len - used, "%s%s",
			    used ? " " : "", names[i]->d_name);
		free(names[i]);
	}
	free(names);
	ck_assert_uint_lt(used, len);
}

static char *
read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *data;
	long n;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	data = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(data);
	ck_assert_uint_eq(fread(data, 1, (size_t)n, f), (size_t)n);
	data[n] = '\0';
	fclose(f);
	return data;
}

static void
check_textfile(const struct stats *s, const struct stats_state *st,
    int64_t now, const char *path)
{
	char *want = render_prom(s, st, now), *got = read_all(path);
	struct stat sb;

	ck_assert_str_eq(got, want);
	ck_assert_int_eq(lstat(path, &sb), 0);
	ck_assert(S_ISREG(sb.st_mode));
	ck_assert_uint_eq(sb.st_mode & 07777, 0644);
	free(want);
	free(got);
}

START_TEST(test_textfile)
{
	struct stats *s = stats_with_rows();
	struct stats_state st = { 0, NULL, 9 };
	char path[128], names[256];
	mode_t old;

	snprintf(path, sizeof(path), "%s/kmsd.prom", test_dir);
	/* A strict umask must not make the file unreadable to the
	 * collector. */
	old = umask(077);
	ck_assert_int_eq(stats_write_textfile(s, &st, 500, path), 0);
	umask(old);
	check_textfile(s, &st, 500, path);
	dir_list(names, sizeof(names));
	ck_assert_str_eq(names, "kmsd.prom");

	/* Replacing an existing file. */
	stats_count(s, OP_DECRYPT, "default", "worker", 1000, STATS_OK, 501);
	st.uptime_s = 10;
	ck_assert_int_eq(stats_write_textfile(s, &st, 501, path), 0);
	check_textfile(s, &st, 501, path);
	dir_list(names, sizeof(names));
	ck_assert_str_eq(names, "kmsd.prom");
	stats_free(s);
}
END_TEST

/* A temp name already taken (a crash of an earlier process with our pid,
 * or a planted symlink) is replaced, never written through. */
START_TEST(test_textfile_stale_temp)
{
	struct stats *s = stats_with_rows();
	char path[128], tmp[160], victim[128], names[256], *v;
	FILE *f;

	snprintf(path, sizeof(path), "%s/kmsd.prom", test_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	snprintf(victim, sizeof(victim), "%s/victim", test_dir);
	ck_assert_ptr_nonnull(f = fopen(victim, "w"));
	fputs("keep", f);
	fclose(f);
	ck_assert_int_eq(symlink(victim, tmp), 0);

	ck_assert_int_eq(stats_write_textfile(s, NULL, 0, path), 0);
	check_textfile(s, NULL, 0, path);
	v = read_all(victim);
	ck_assert_str_eq(v, "keep");
	free(v);
	dir_list(names, sizeof(names));
	ck_assert_str_eq(names, "kmsd.prom victim");
	stats_free(s);
}
END_TEST

START_TEST(test_textfile_missing_dir)
{
	struct stats *s = stats_with_rows();
	char path[128], names[256];

	snprintf(path, sizeof(path), "%s/missing/kmsd.prom", test_dir);
	errno = 0;
	ck_assert_int_eq(stats_write_textfile(s, NULL, 0, path), -1);
	ck_assert_int_eq(errno, ENOENT);
	dir_list(names, sizeof(names));
	ck_assert_str_eq(names, "");
	stats_free(s);
}
END_TEST

/* A rename that fails (the target is a directory) removes the temp. */
START_TEST(test_textfile_rename_fails)
{
	struct stats *s = stats_with_rows();
	char path[128], names[256];

	snprintf(path, sizeof(path), "%s/kmsd.prom", test_dir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(stats_write_textfile(s, NULL, 0, path), -1);
	ck_assert_int_eq(errno, EISDIR);
	dir_list(names, sizeof(names));
	ck_assert_str_eq(names, "kmsd.prom");
	ck_assert_int_eq(rmdir(path), 0);
	stats_free(s);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("validator");

	tcase_add_loop_test(tc, test_validator_rejects, 0, (int)PROM_BAD_LEN);
	tcase_add_test(tc, test_validator_accepts);
	suite_add_tcase(s, tc);

	tc = tcase_create("rows");
	tcase_add_test(tc, test_rows_json);
	tcase_add_test(tc, test_rows_prometheus);
	tcase_add_test(tc, test_names_copied);
	tcase_add_test(tc, test_max_rows_fold);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("render");
	tcase_add_test(tc, test_json_state);
	tcase_add_test(tc, test_prometheus_state);
	tcase_add_loop_test(tc, test_escaping, 0, (int)ARRAY_LEN(escape_table));
	tcase_add_test(tc, test_render_too_large);
	tcase_add_loop_test(tc, test_decrypt_windows, 0,
	    (int)ARRAY_LEN(win_expect));
	suite_add_tcase(s, tc);

	tc = tcase_create("textfile");
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_add_test(tc, test_textfile);
	tcase_add_test(tc, test_textfile_stale_temp);
	tcase_add_test(tc, test_textfile_missing_dir);
	tcase_add_test(tc, test_textfile_rename_fails);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
