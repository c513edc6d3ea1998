/*
 * stats.c: operation counters and their JSON and Prometheus renderings
 * (see stats.h, DESIGN 3.9).
 *
 * Owns two tables of rows, (op, key, socket, result) and (uid, op,
 * result), each an insertion array indexed by an open-addressing hash;
 * a sliding window of ok decrypts; and the breaker trip count.
 * Invariants:
 *   - key and socket labels are this module's own copies: a reload may
 *     free the config whose names were passed in;
 *   - each table holds at most STATS_MAX_ROWS rows; past that, and when an
 *     allocation fails, a count goes to a fixed per-(op, result) "other"
 *     counter that needs no memory, so a count is never lost;
 *   - a config name pair that spells the other row ("_other", "_other")
 *     counts in it, so no two rendered rows ever carry the same labels;
 *   - every string rendered is escaped for its format whatever its source,
 *     and bytes that are not UTF-8 become U+FFFD, so the output always
 *     parses;
 *   - rows are rendered sorted, so output is stable across runs, and a
 *     render either appends the whole document or leaves `out` as it was.
 * No logging: the caller decides what a failure means.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "op.h"
#include "stats.h"
#include "window.h"

/* An op outside op.h's range counts as one extra "unknown" op, so a
 * caller's bug shows in the figures instead of vanishing. */
#define STATS_OPS (OP__COUNT + 1)
#define STATS_RESULTS 3

/* First row allocation of a table; most configs have a handful of keys
 * and sockets, so start small and double up to STATS_MAX_ROWS. */
#define STATS_MIN_ROWS 16

/* Cap on the Prometheus text written to the textfile: 2 x STATS_MAX_ROWS
 * sample lines of config-sized names fit many times over; a runaway
 * render fails instead of filling the collector's disk. */
#define STATS_TEXT_MAX ((size_t)16 << 20)

/* Labels of the fold row; also what a config name pair is folded into if
 * it happens to spell them, to keep rendered label sets unique. */
static const char stats_other_name[] = "_other";
static const char stats_other_uid[] = "other";

static const char *const stats_result_names[STATS_RESULTS] = {
	[STATS_OK] = "ok",
	[STATS_DENIED] = "denied",
	[STATS_FAILED] = "failed",
};

struct stats_row {
	char *key;		/* owned; NULL in peer rows */
	char *socket;		/* owned; NULL in peer rows */
	uint64_t count;
	uint64_t hash;
	uid_t uid;		/* peer rows only */
	unsigned op;
	unsigned result;
};

struct stats_table {
	struct stats_row *rows;
	size_t n;
	size_t cap;
	uint32_t *slots;	/* row index + 1; 0 = empty */
	size_t n_slots;		/* 0, or a power of two >= 2 * n */
	size_t last;		/* row index + 1 of the last match; 0 = none */
	uint64_t other[STATS_OPS][STATS_RESULTS];
};

struct stats {
	struct stats_table ops;
	struct stats_table peers;
	struct window decrypts;
	uint64_t breaker_trips;
	uint64_t cache_hits;		/* decrypts answered from the cache */
};

/* A row as rendered: a table row or a fold row. */
struct stats_view {
	const char *key;
	const char *socket;
	uint64_t count;
	uid_t uid;
	int other;
	unsigned op;
	unsigned result;
};

/* ------------------------------------------------------------------ */
/* Tables */

static uint64_t
stats_hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	/* FNV-1a: labels come from the config and the kernel, not from
	 * clients, so there is nobody to choose colliding inputs. */
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

static uint64_t
stats_hash(unsigned op, unsigned result, uid_t uid, const char *key,
    const char *socket)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	unsigned char head[2] = { (unsigned char)op, (unsigned char)result };

	h = stats_hash_bytes(h, head, sizeof(head));
	h = stats_hash_bytes(h, &uid, sizeof(uid));
	/* The terminators keep ("ab", "c") apart from ("a", "bc"). */
	if (key != NULL)
		h = stats_hash_bytes(h, key, strlen(key) + 1);
	if (socket != NULL)
		h = stats_hash_bytes(h, socket, strlen(socket) + 1);
	return h;
}

static int
stats_label_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
stats_row_is(const struct stats_row *r, unsigned op, unsigned result,
    uid_t uid, const char *key, const char *socket)
{
	return r->op == op && r->result == result && r->uid == uid &&
	    stats_label_eq(r->key, key) && stats_label_eq(r->socket, socket);
}

static size_t
stats_probe_free(const uint32_t *slots, size_t n_slots, uint64_t hash)
{
	size_t mask = n_slots - 1, i;

	for (i = (size_t)hash & mask; slots[i] != 0; i = (i + 1) & mask)
		;
	return i;
}

/* Room for one more row: rows array and an index at most half full. */
static int
stats_table_grow(struct stats_table *t)
{
	struct stats_row *nr;
	uint32_t *ns;
	size_t ncap, nslots;

	if (t->n == t->cap) {
		ncap = t->cap == 0 ? STATS_MIN_ROWS : t->cap * 2;
		if (ncap > STATS_MAX_ROWS)
			ncap = STATS_MAX_ROWS;
		if ((nr = realloc(t->rows, ncap * sizeof(*nr))) == NULL)
			return ERR_NOMEM;
		t->rows = nr;
		t->cap = ncap;
	}
	if ((t->n + 1) * 2 <= t->n_slots)
		return 0;
	nslots = t->n_slots == 0 ? STATS_MIN_ROWS * 2 : t->n_slots * 2;
	if ((ns = calloc(nslots, sizeof(*ns))) == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < t->n; i++)
		ns[stats_probe_free(ns, nslots, t->rows[i].hash)] =
		    (uint32_t)i + 1;
	free(t->slots);
	t->slots = ns;
	t->n_slots = nslots;
	return 0;
}

/* The count of the row with these labels, created if there is room and
 * memory; NULL means fold into the other row. key and socket are both
 * NULL for peer rows, both set for op rows. */
static uint64_t *
stats_table_get(struct stats_table *t, unsigned op, unsigned result,
    uid_t uid, const char *key, const char *socket)
{
	uint64_t hash;
	struct stats_row *r;
	char *kcopy = NULL, *scopy = NULL;
	size_t mask, i;

	/* A run of requests alike (one client, one key) counts into the
	 * same row: it is compared before anything is hashed. */
	if (t->last != 0) {
		r = &t->rows[t->last - 1];
		if (stats_row_is(r, op, result, uid, key, socket))
			return &r->count;
	}
	hash = stats_hash(op, result, uid, key, socket);
	if (t->n_slots != 0) {
		mask = t->n_slots - 1;
		for (i = (size_t)hash & mask; t->slots[i] != 0;
		    i = (i + 1) & mask) {
			r = &t->rows[t->slots[i] - 1];
			if (r->hash == hash &&
			    stats_row_is(r, op, result, uid, key, socket)) {
				t->last = t->slots[i];
				return &r->count;
			}
		}
	}
	if (t->n >= STATS_MAX_ROWS)
		return NULL;
	if (key != NULL &&
	    ((kcopy = strdup(key)) == NULL ||
	    (scopy = strdup(socket)) == NULL))
		goto fail;
	if (stats_table_grow(t) != 0)
		goto fail;
	r = &t->rows[t->n];
	r->key = kcopy;
	r->socket = scopy;
	r->count = 0;
	r->hash = hash;
	r->uid = uid;
	r->op = op;
	r->result = result;
	t->slots[stats_probe_free(t->slots, t->n_slots, hash)] =
	    (uint32_t)t->n + 1;
	t->n++;
	t->last = t->n;
	return &r->count;

fail:
	free(kcopy);
	free(scopy);
	return NULL;
}

static void
stats_table_done(struct stats_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->rows[i].key);
		free(t->rows[i].socket);
	}
	free(t->rows);
	free(t->slots);
}

static void
stats_table_bump(struct stats_table *t, unsigned op, unsigned result,
    uid_t uid, const char *key, const char *socket, int fold)
{
	uint64_t *c = NULL;

	if (!fold)
		c = stats_table_get(t, op, result, uid, key, socket);
	if (c == NULL)
		c = &t->other[op][result];
	(*c)++;
}

/* ------------------------------------------------------------------ */
/* Counting */

struct stats *
stats_new(void)
{
	struct stats *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	window_init(&s->decrypts);
	return s;
}

void
stats_free(struct stats *s)
{
	if (s == NULL)
		return;
	stats_table_done(&s->ops);
	stats_table_done(&s->peers);
	free(s);
}

void
stats_count(struct stats *s, int op, const char *key, const char *socket,
    uid_t uid, enum stats_result result, int64_t now)
{
	unsigned o = op >= 0 && op < OP__COUNT ? (unsigned)op : OP__COUNT;
	unsigned res = (unsigned)result < STATS_RESULTS ?
	    (unsigned)result : STATS_FAILED;
	int fold;

	if (key == NULL)
		key = "";
	if (socket == NULL)
		socket = "";
	fold = strcmp(key, stats_other_name) == 0 &&
	    strcmp(socket, stats_other_name) == 0;
	stats_table_bump(&s->ops, o, res, 0, key, socket, fold);
	stats_table_bump(&s->peers, o, res, uid, NULL, NULL, 0);
	if (op == OP_DECRYPT && result == STATS_OK)
		window_add(&s->decrypts, now, 1);
}

void
stats_breaker_trip(struct stats *s)
{
	s->breaker_trips++;
}

void
stats_cache_hit(struct stats *s)
{
	s->cache_hits++;
}

uint64_t
stats_decrypts(const struct stats *s, int64_t now, unsigned seconds)
{
	if (seconds > WINDOW_SECONDS)
		seconds = WINDOW_SECONDS;
	return window_sum(&s->decrypts, now, seconds);
}

/* ------------------------------------------------------------------ */
/* Sorted views for rendering */

static const char *
stats_op_name(unsigned op)
{
	const char *n = op_name((int)op);

	return n != NULL ? n : "unknown";
}

static int
stats_cmp_u(unsigned long long a, unsigned long long b)
{
	return a < b ? -1 : a > b;
}

static int
stats_cmp_ops(const void *pa, const void *pb)
{
	const struct stats_view *a = pa, *b = pb;
	int c;

	if ((c = stats_cmp_u(a->op, b->op)) != 0)
		return c;
	if ((c = strcmp(a->key, b->key)) != 0)
		return c;
	if ((c = strcmp(a->socket, b->socket)) != 0)
		return c;
	return stats_cmp_u(a->result, b->result);
}

static int
stats_cmp_peers(const void *pa, const void *pb)
{
	const struct stats_view *a = pa, *b = pb;
	int c;

	if ((c = stats_cmp_u(a->uid, b->uid)) != 0)
		return c;
	if ((c = stats_cmp_u(a->op, b->op)) != 0)
		return c;
	return stats_cmp_u(a->result, b->result);
}

/* The table's rows sorted, then its nonzero fold rows in (op, result)
 * order. 0 or ERR_NOMEM. */
static int
stats_views(const struct stats_table *t, int peers,
    struct stats_view **ret_v, size_t *ret_n)
{
	struct stats_view *v;
	size_t n = 0;

	v = calloc(t->n + STATS_OPS * STATS_RESULTS, sizeof(*v));
	if (v == NULL)
		return ERR_NOMEM;
	for (size_t i = 0; i < t->n; i++, n++) {
		v[n].key = t->rows[i].key;
		v[n].socket = t->rows[i].socket;
		v[n].count = t->rows[i].count;
		v[n].uid = t->rows[i].uid;
		v[n].op = t->rows[i].op;
		v[n].result = t->rows[i].result;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), peers ? stats_cmp_peers : stats_cmp_ops);
	for (unsigned op = 0; op < STATS_OPS; op++) {
		for (unsigned res = 0; res < STATS_RESULTS; res++) {
			if (t->other[op][res] == 0)
				continue;
			v[n].key = stats_other_name;
			v[n].socket = stats_other_name;
			v[n].count = t->other[op][res];
			v[n].other = 1;
			v[n].op = op;
			v[n].result = res;
			n++;
		}
	}
	*ret_v = v;
	*ret_n = n;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Output with a sticky error, so a render is one straight sequence of
 * appends checked once at the end. */

struct stats_out {
	struct buf *b;
	int err;
};

static void
stats_put_n(struct stats_out *o, const void *p, size_t n)
{
	if (o->err == 0)
		o->err = buf_append(o->b, p, n);
}

static void
stats_put(struct stats_out *o, const char *s)
{
	stats_put_n(o, s, strlen(s));
}

static void
stats_put_u64(struct stats_out *o, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);

	stats_put_n(o, tmp, (size_t)n);
}

/* Length of the well-formed UTF-8 sequence at p (NUL-terminated), or 0
 * for a byte that does not start one: overlongs, surrogates and code
 * points past U+10FFFF are not well-formed. */
static size_t
stats_utf8_len(const unsigned char *p)
{
	uint32_t cp, min;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1f;
		min = 0x80;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0f;
		min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		/* A NUL fails this test, so we never read past the end. */
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A JSON string, or null for NULL. */
static void
stats_put_json_str(struct stats_out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	if (s == NULL) {
		stats_put(o, "null");
		return;
	}
	stats_put(o, "\"");
	while (*p != '\0') {
		if (*p == '"') {
			stats_put(o, "\\\"");
			p++;
		} else if (*p == '\\') {
			stats_put(o, "\\\\");
			p++;
		} else if (*p < 0x20) {
			char esc[6] = { '\\', 'u', '0', '0',
			    hex[*p >> 4], hex[*p & 0xf] };

			stats_put_n(o, esc, sizeof(esc));
			p++;
		} else if ((n = stats_utf8_len(p)) == 0) {
			stats_put(o, "\\ufffd");
			p++;
		} else {
			stats_put_n(o, p, n);
			p += n;
		}
	}
	stats_put(o, "\"");
}

/* A Prometheus label value between quotes: backslash, double quote and
 * newline escaped, as the text format requires. */
static void
stats_put_label(struct stats_out *o, const char *name, const char *value,
    int first)
{
	const unsigned char *p = (const unsigned char *)value;
	size_t n;

	if (!first)
		stats_put(o, ",");
	stats_put(o, name);
	stats_put(o, "=\"");
	while (*p != '\0') {
		if (*p == '\\') {
			stats_put(o, "\\\\");
			p++;
		} else if (*p == '"') {
			stats_put(o, "\\\"");
			p++;
		} else if (*p == '\n') {
			stats_put(o, "\\n");
			p++;
		} else if ((n = stats_utf8_len(p)) == 0) {
			stats_put(o, "\xef\xbf\xbd");	/* U+FFFD */
			p++;
		} else {
			stats_put_n(o, p, n);
			p += n;
		}
	}
	stats_put(o, "\"");
}

static const struct stats_state stats_state_default = { 0, NULL, 0 };

/* The 1/5/15 minute figures, in both renderings. */
static const struct {
	const char *label;
	unsigned seconds;
} stats_recent[] = {
	{ "1m", 60 },
	{ "5m", 300 },
	{ "15m", 900 },
};

#define STATS_RECENT_LEN (sizeof(stats_recent) / sizeof(stats_recent[0]))

/* Finish a render: keep it whole or drop it whole. */
static int
stats_render_end(struct stats_out *o, size_t start)
{
	if (o->err != 0)
		o->b->len = start;
	return o->err;
}

/* ------------------------------------------------------------------ */
/* JSON */

int
stats_json(const struct stats *s, const struct stats_state *st,
    int64_t now, struct buf *out)
{
	struct stats_out o = { out, 0 };
	struct stats_view *ops = NULL, *peers = NULL;
	size_t n_ops, n_peers, start = out->len;

	if (st == NULL)
		st = &stats_state_default;
	if ((o.err = stats_views(&s->ops, 0, &ops, &n_ops)) != 0 ||
	    (o.err = stats_views(&s->peers, 1, &peers, &n_peers)) != 0)
		goto out;

	stats_put(&o, "{\"operations\":[");
	for (size_t i = 0; i < n_ops; i++) {
		stats_put(&o, i == 0 ? "{\"op\":" : ",{\"op\":");
		stats_put_json_str(&o, stats_op_name(ops[i].op));
		stats_put(&o, ",\"key\":");
		stats_put_json_str(&o, ops[i].key);
		stats_put(&o, ",\"socket\":");
		stats_put_json_str(&o, ops[i].socket);
		stats_put(&o, ",\"result\":");
		stats_put_json_str(&o, stats_result_names[ops[i].result]);
		stats_put(&o, ",\"count\":");
		stats_put_u64(&o, ops[i].count);
		stats_put(&o, "}");
	}
	stats_put(&o, "],\"peers\":[");
	for (size_t i = 0; i < n_peers; i++) {
		stats_put(&o, i == 0 ? "{\"uid\":" : ",{\"uid\":");
		if (peers[i].other)
			stats_put_json_str(&o, stats_other_uid);
		else
			stats_put_u64(&o, peers[i].uid);
		stats_put(&o, ",\"op\":");
		stats_put_json_str(&o, stats_op_name(peers[i].op));
		stats_put(&o, ",\"result\":");
		stats_put_json_str(&o, stats_result_names[peers[i].result]);
		stats_put(&o, ",\"count\":");
		stats_put_u64(&o, peers[i].count);
		stats_put(&o, "}");
	}
	stats_put(&o, "],\"decrypts\":{");
	for (size_t i = 0; i < STATS_RECENT_LEN; i++) {
		stats_put(&o, i == 0 ? "\"" : ",\"");
		stats_put(&o, stats_recent[i].label);
		stats_put(&o, "\":");
		stats_put_u64(&o,
		    stats_decrypts(s, now, stats_recent[i].seconds));
	}
	stats_put(&o, "},\"breaker\":{\"trips\":");
	stats_put_u64(&o, s->breaker_trips);
	stats_put(&o, "},\"cache\":{\"hits\":");
	stats_put_u64(&o, s->cache_hits);
	stats_put(&o, "},\"decrypt_disabled\":");
	stats_put(&o, st->decrypt_disabled ? "true" : "false");
	stats_put(&o, ",\"disabled_reason\":");
	stats_put_json_str(&o, st->disabled_reason);
	stats_put(&o, ",\"uptime_s\":");
	stats_put_u64(&o, st->uptime_s);
	stats_put(&o, "}");

out:
	free(ops);
	free(peers);
	return stats_render_end(&o, start);
}

/* ------------------------------------------------------------------ */
/* Prometheus text exposition format */

static void
stats_put_family(struct stats_out *o, const char *name, const char *type,
    const char *help)
{
	stats_put(o, "# HELP ");
	stats_put(o, name);
	stats_put(o, " ");
	stats_put(o, help);
	stats_put(o, "\n# TYPE ");
	stats_put(o, name);
	stats_put(o, " ");
	stats_put(o, type);
	stats_put(o, "\n");
}

/* A sample without labels. */
static void
stats_put_sample(struct stats_out *o, const char *name, uint64_t v)
{
	stats_put(o, name);
	stats_put(o, " ");
	stats_put_u64(o, v);
	stats_put(o, "\n");
}

int
stats_prometheus(const struct stats *s, const struct stats_state *st,
    int64_t now, struct buf *out)
{
	struct stats_out o = { out, 0 };
	struct stats_view *ops = NULL, *peers = NULL;
	size_t n_ops, n_peers, start = out->len;
	char uid[24];

	if (st == NULL)
		st = &stats_state_default;
	if ((o.err = stats_views(&s->ops, 0, &ops, &n_ops)) != 0 ||
	    (o.err = stats_views(&s->peers, 1, &peers, &n_peers)) != 0)
		goto out;

	stats_put_family(&o, "kmsd_operations_total", "counter",
	    "Requests that reached the policy gate, by op, key, socket and "
	    "result.");
	for (size_t i = 0; i < n_ops; i++) {
		stats_put(&o, "kmsd_operations_total{");
		stats_put_label(&o, "op", stats_op_name(ops[i].op), 1);
		stats_put_label(&o, "key", ops[i].key, 0);
		stats_put_label(&o, "socket", ops[i].socket, 0);
		stats_put_label(&o, "result",
		    stats_result_names[ops[i].result], 0);
		stats_put(&o, "} ");
		stats_put_u64(&o, ops[i].count);
		stats_put(&o, "\n");
	}

	stats_put_family(&o, "kmsd_peer_operations_total", "counter",
	    "Requests that reached the policy gate, by peer uid, op and "
	    "result.");
	for (size_t i = 0; i < n_peers; i++) {
		if (peers[i].other)
			snprintf(uid, sizeof(uid), "%s", stats_other_uid);
		else
			snprintf(uid, sizeof(uid), "%ju",
			    (uintmax_t)peers[i].uid);
		stats_put(&o, "kmsd_peer_operations_total{");
		stats_put_label(&o, "uid", uid, 1);
		stats_put_label(&o, "op", stats_op_name(peers[i].op), 0);
		stats_put_label(&o, "result",
		    stats_result_names[peers[i].result], 0);
		stats_put(&o, "} ");
		stats_put_u64(&o, peers[i].count);
		stats_put(&o, "\n");
	}

	stats_put_family(&o, "kmsd_decrypts_recent", "gauge",
	    "Successful decrypts in the last 1, 5 and 15 minutes.");
	for (size_t i = 0; i < STATS_RECENT_LEN; i++) {
		stats_put(&o, "kmsd_decrypts_recent{");
		stats_put_label(&o, "window", stats_recent[i].label, 1);
		stats_put(&o, "} ");
		stats_put_u64(&o,
		    stats_decrypts(s, now, stats_recent[i].seconds));
		stats_put(&o, "\n");
	}

	stats_put_family(&o, "kmsd_breaker_trips_total", "counter",
	    "Times the decrypt breaker tripped.");
	stats_put_sample(&o, "kmsd_breaker_trips_total", s->breaker_trips);

	stats_put_family(&o, "kmsd_cache_hits_total", "counter",
	    "Decrypts answered from the data-key cache (also counted in "
	    "kmsd_operations_total).");
	stats_put_sample(&o, "kmsd_cache_hits_total", s->cache_hits);

	stats_put_family(&o, "kmsd_decrypt_disabled", "gauge",
	    "1 while decrypt is disabled, else 0.");
	stats_put_sample(&o, "kmsd_decrypt_disabled",
	    st->decrypt_disabled ? 1 : 0);

	stats_put_family(&o, "kmsd_uptime_seconds", "gauge",
	    "Seconds since kmsd started.");
	stats_put_sample(&o, "kmsd_uptime_seconds", st->uptime_s);

out:
	free(ops);
	free(peers);
	return stats_render_end(&o, start);
}

/* ------------------------------------------------------------------ */
/* Textfile */

static int
stats_errno(int err)
{
	return err == ERR_NOMEM ? ENOMEM : EFBIG;
}

int
stats_write_textfile(const struct stats *s, const struct stats_state *st,
    int64_t now, const char *path)
{
	/* O_EXCL|O_NOFOLLOW: never write through a file or link someone
	 * else put at the temp name. */
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW;
	struct buf text;
	char *tmp = NULL;
	int fd = -1, created = 0, ret = -1, r, saved;
	size_t off;
	ssize_t w;

	buf_init(&text, STATS_TEXT_MAX);
	if (path == NULL) {
		errno = EINVAL;
		goto out;
	}
	if ((r = stats_prometheus(s, st, now, &text)) != 0) {
		errno = stats_errno(r);
		goto out;
	}
	/* Same directory, so the rename cannot cross filesystems and the
	 * collector sees either the old file or the new, never a part. */
	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) {
		tmp = NULL;
		errno = ENOMEM;
		goto out;
	}
	fd = open(tmp, flags, 0644);
	if (fd == -1 && errno == EEXIST && unlink(tmp) == 0) {
		/* Left by a crashed process that had our pid (pid 1 in a
		 * container restarts with the same one every time). */
		fd = open(tmp, flags, 0644);
	}
	if (fd == -1)
		goto out;
	created = 1;
	/* Exactly 0644 whatever the umask: the collector runs as another
	 * user and must be able to read it. */
	if (fchmod(fd, 0644) == -1)
		goto out;
	for (off = 0; off < text.len; off += (size_t)w) {
		w = write(fd, text.data + off, text.len - off);
		if (w == -1 && errno == EINTR) {
			w = 0;
			continue;
		}
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			goto out;
		}
	}
	if (fsync(fd) == -1)
		goto out;
	r = close(fd);
	fd = -1;
	if (r == -1)
		goto out;
	/* No fsync of the directory: the file is rewritten every few
	 * seconds, so losing the last rename in a crash costs nothing. */
	if (rename(tmp, path) == -1)
		goto out;
	created = 0;
	ret = 0;

out:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (created)
		unlink(tmp);
	free(tmp);
	buf_done(&text);
	errno = saved;
	return ret;
}
