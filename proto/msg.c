/*
 * msg.c: the message codec, the only file that includes msgpack.h (see
 * msg.h and proto/PROTOCOL.md).
 *
 * Decoding: frame_prescan first, so msgpack-c only ever sees a body whose
 * declared sizes fit the bytes present; then msgpack_unpack into a zone that
 * is destroyed before returning. msgpack-c's str/bin objects point into the
 * caller's body and the decoded message keeps pointing there: nothing secret
 * is copied, so wiping the body wipes the message. Each known field is
 * checked for type, size and (for str) UTF-8, each exactly once.
 *
 * Encoding: msgpack_packer writes straight into the caller's struct buf
 * through buf_append (bounded, wipes on growth), never msgpack_sbuffer,
 * which reallocs and leaves old copies of a plaintext in freed memory. On
 * any failure the buffer is put back to its old length and what was written
 * is wiped.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <openssl/crypto.h>

#include "err.h"
#include "frame.h"
#include "msg.h"

/* Request fields; each may appear at most once. */
enum msg_rf {
	RF_ID,
	RF_OP,
	RF_KEY,
	RF_CONTEXT,
	RF_NEW_CONTEXT,
	RF_PLAINTEXT,
	RF_CIPHERTEXT,
	RF_REASON,
	RF_AUDIT_PATH,
	RF_FORMAT,
	RF__COUNT
};

static const char *const msg_rf_names[RF__COUNT] = {
	[RF_ID] = "id",
	[RF_OP] = "op",
	[RF_KEY] = "key",
	[RF_CONTEXT] = "context",
	[RF_NEW_CONTEXT] = "new_context",
	[RF_PLAINTEXT] = "plaintext",
	[RF_CIPHERTEXT] = "ciphertext",
	[RF_REASON] = "reason",
	[RF_AUDIT_PATH] = "audit_path",
	[RF_FORMAT] = "format",
};

#define RF_BIT(f) (1u << (f))

/* Fields each op cannot do without. Fields of other ops are type-checked
 * and otherwise ignored. */
static const unsigned msg_required[OP__COUNT] = {
	[OP_GENERATE] = RF_BIT(RF_KEY),
	[OP_ENCRYPT] = RF_BIT(RF_KEY) | RF_BIT(RF_PLAINTEXT),
	[OP_DECRYPT] = RF_BIT(RF_KEY) | RF_BIT(RF_CIPHERTEXT),
	[OP_REWRAP] = RF_BIT(RF_KEY) | RF_BIT(RF_CIPHERTEXT),
	[OP_CONTEXT_HASH] = RF_BIT(RF_KEY) | RF_BIT(RF_AUDIT_PATH),
};

/* Response fields. */
enum msg_sf {
	SF_ID,
	SF_ERROR,
	SF_CIPHERTEXT,
	SF_PLAINTEXT,
	SF_VERSION,
	SF_PROTOCOL,
	SF_SOCKET,
	SF_ALLOW,
	SF_KEYS,
	SF_BODY,
	SF__COUNT
};

static const char *const msg_sf_names[SF__COUNT] = {
	[SF_ID] = "id",
	[SF_ERROR] = "error",
	[SF_CIPHERTEXT] = "ciphertext",
	[SF_PLAINTEXT] = "plaintext",
	[SF_VERSION] = "version",
	[SF_PROTOCOL] = "protocol",
	[SF_SOCKET] = "socket",
	[SF_ALLOW] = "allow",
	[SF_KEYS] = "keys",
	[SF_BODY] = "body",
};

static void msg_why(char *why, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
msg_why(char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, MSG_WHY_LEN, fmt, ap);
	va_end(ap);
}

/* A slice of a decoded str/bin; never NULL, even when empty, so that
 * "present" stays distinguishable from "absent". */
static struct str
msg_slice(const char *p, uint32_t n, const uint8_t *body)
{
	struct str s = { p != NULL ? p : (const char *)body, n };

	return s;
}

static int
msg_is_str(const msgpack_object *o, const char *name)
{
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(name) &&
	    memcmp(o->via.str.ptr, name, o->via.str.size) == 0;
}

/*
 * Index the fields of map m by name into f[] (NULL when absent). Field names
 * must be str; a known name may appear once. Unknown names are skipped.
 */
static int
msg_index(const msgpack_object_map *m, const char *const *names, size_t nn,
    const msgpack_object **f, char *why)
{
	for (uint32_t i = 0; i < m->size; i++) {
		const msgpack_object *k = &m->ptr[i].key;

		if (k->type != MSGPACK_OBJECT_STR) {
			msg_why(why, "field names must be str");
			return ERR_BAD_REQUEST;
		}
		for (size_t j = 0; j < nn; j++) {
			if (!msg_is_str(k, names[j]))
				continue;
			if (f[j] != NULL) {
				msg_why(why, "field '%s' appears twice", names[j]);
				return ERR_BAD_REQUEST;
			}
			f[j] = &m->ptr[i].val;
			break;
		}
	}
	return 0;
}

/* A str field of 1..max bytes (min 0 when empty is allowed), UTF-8. */
static int
msg_str(const msgpack_object *o, const char *name, size_t min, size_t max,
    const uint8_t *body, struct str *ret, char *why)
{
	if (o->type != MSGPACK_OBJECT_STR) {
		msg_why(why, "field '%s': expected str", name);
		return ERR_BAD_REQUEST;
	}
	if (o->via.str.size > max) {
		msg_why(why, "field '%s': longer than %zu bytes", name, max);
		return ERR_TOO_LARGE;
	}
	if (o->via.str.size < min) {
		msg_why(why, "field '%s': empty", name);
		return ERR_BAD_REQUEST;
	}
	if (!utf8_valid(o->via.str.ptr, o->via.str.size)) {
		msg_why(why, "field '%s': invalid UTF-8", name);
		return ERR_BAD_REQUEST;
	}
	*ret = msg_slice(o->via.str.ptr, o->via.str.size, body);
	return 0;
}

/* A context: nil (no context) or a map of str to str. */
static int
msg_context(const msgpack_object *o, const char *name, const uint8_t *body,
    struct context *ret, char *why)
{
	const msgpack_object_map *m;

	ret->present = 0;
	ret->n = 0;
	if (o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (o->type != MSGPACK_OBJECT_MAP) {
		msg_why(why, "field '%s': expected map or nil", name);
		return ERR_BAD_REQUEST;
	}
	m = &o->via.map;
	if (m->size > CONTEXT_MAX_PAIRS) {
		msg_why(why, "field '%s': more than %d pairs", name,
		    CONTEXT_MAX_PAIRS);
		return ERR_TOO_LARGE;
	}
	for (uint32_t i = 0; i < m->size; i++) {
		const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
		struct ctx_pair *p = &ret->pairs[i];

		if (k->type != MSGPACK_OBJECT_STR ||
		    v->type != MSGPACK_OBJECT_STR) {
			msg_why(why, "field '%s': keys and values must be str",
			    name);
			return ERR_BAD_REQUEST;
		}
		p->k = msg_slice(k->via.str.ptr, k->via.str.size, body);
		p->v = msg_slice(v->via.str.ptr, v->via.str.size, body);
		if (!utf8_valid(p->k.p, p->k.len) ||
		    !utf8_valid(p->v.p, p->v.len)) {
			msg_why(why, "field '%s': invalid UTF-8", name);
			return ERR_BAD_REQUEST;
		}
		for (uint32_t j = 0; j < i; j++) {
			if (ret->pairs[j].k.len == p->k.len &&
			    memcmp(ret->pairs[j].k.p, p->k.p, p->k.len) == 0) {
				msg_why(why, "field '%s': duplicate key", name);
				return ERR_BAD_REQUEST;
			}
		}
	}
	ret->present = 1;
	ret->n = m->size;
	return 0;
}

/* Unpack a prescanned body. The zone owns every object; the caller destroys
 * it. */
static int
msg_unpack(const uint8_t *body, size_t len, msgpack_zone *zone,
    msgpack_object *obj, char *why)
{
	size_t off = 0;
	msgpack_unpack_return ur;

	if (frame_prescan(body, len) != 0) {
		msg_why(why, "body is not one well-formed msgpack map");
		return ERR_BAD_REQUEST;
	}
	ur = msgpack_unpack((const char *)body, len, &off, zone, obj);
	if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
		return ERR_NOMEM;
	if (ur != MSGPACK_UNPACK_SUCCESS || off != len ||
	    obj->type != MSGPACK_OBJECT_MAP) {
		msg_why(why, "body is not one well-formed msgpack map");
		return ERR_BAD_REQUEST;
	}
	return 0;
}

/* Fill the request fields other than id and op from f[]. */
static int
msg_request_fields(const msgpack_object **f, const uint8_t *body,
    struct request *ret)
{
	const msgpack_object *o;
	unsigned have = 0, need;
	int r;

	for (int i = 0; i < RF__COUNT; i++)
		if (f[i] != NULL)
			have |= RF_BIT(i);
	if ((o = f[RF_KEY]) != NULL && (r = msg_str(o, "key", 1,
	    MSG_MAX_KEY_NAME, body, &ret->key, ret->why)) != 0)
		return r;
	if ((o = f[RF_CONTEXT]) != NULL && (r = msg_context(o, "context",
	    body, &ret->ctx, ret->why)) != 0)
		return r;
	if ((o = f[RF_NEW_CONTEXT]) != NULL && (r = msg_context(o,
	    "new_context", body, &ret->new_ctx, ret->why)) != 0)
		return r;
	if ((o = f[RF_PLAINTEXT]) != NULL) {
		if (o->type != MSGPACK_OBJECT_BIN) {
			msg_why(ret->why, "field 'plaintext': expected bin");
			return ERR_BAD_REQUEST;
		}
		if (o->via.bin.size > MSG_MAX_PLAINTEXT) {
			msg_why(ret->why, "field 'plaintext': longer than %d "
			    "bytes", MSG_MAX_PLAINTEXT);
			return ERR_TOO_LARGE;
		}
		ret->plaintext = msg_slice(o->via.bin.ptr, o->via.bin.size,
		    body);
	}
	if ((o = f[RF_CIPHERTEXT]) != NULL && (r = msg_str(o, "ciphertext",
	    1, MSG_MAX_CIPHERTEXT, body, &ret->ciphertext, ret->why)) != 0)
		return r;
	if ((o = f[RF_REASON]) != NULL && (r = msg_str(o, "reason", 0,
	    MSG_MAX_REASON, body, &ret->reason, ret->why)) != 0)
		return r;
	if ((o = f[RF_AUDIT_PATH]) != NULL && (r = msg_str(o, "audit_path",
	    1, MSG_MAX_AUDIT_PATH, body, &ret->audit_path, ret->why)) != 0)
		return r;
	if ((o = f[RF_FORMAT]) != NULL) {
		/* An enumeration: any other value, however long, is simply
		 * not one of the two. */
		if ((r = msg_str(o, "format", 0, SIZE_MAX, body, &ret->format,
		    ret->why)) != 0)
			return r;
		if (!str_eq(ret->format, "json") &&
		    !str_eq(ret->format, "prometheus")) {
			msg_why(ret->why, "field 'format': expected \"json\" or "
			    "\"prometheus\"");
			return ERR_BAD_REQUEST;
		}
	}
	need = msg_required[ret->op] & ~have;
	for (int i = 0; i < RF__COUNT; i++) {
		if (need & RF_BIT(i)) {
			msg_why(ret->why, "op '%s' needs field '%s'",
			    op_name(ret->op), msg_rf_names[i]);
			return ERR_BAD_REQUEST;
		}
	}
	return 0;
}

struct msg_dec {
	msgpack_zone zone;
};

struct msg_dec *
msg_dec_new(void)
{
	struct msg_dec *d;

	if ((d = malloc(sizeof(*d))) == NULL)
		return NULL;
	if (!msgpack_zone_init(&d->zone, MSGPACK_ZONE_CHUNK_SIZE)) {
		free(d);
		return NULL;
	}
	return d;
}

void
msg_dec_free(struct msg_dec *d)
{
	if (d == NULL)
		return;
	msgpack_zone_destroy(&d->zone);
	free(d);
}

static int msg_decode_request_zone(msgpack_zone *zone, const uint8_t *body,
    size_t len, struct request *ret);

int
msg_decode_request(const uint8_t *body, size_t len, struct request *ret)
{
	msgpack_zone zone;
	int r;

	msg_request_init(ret);
	if (!msgpack_zone_init(&zone, MSGPACK_ZONE_CHUNK_SIZE))
		return ERR_NOMEM;
	r = msg_decode_request_zone(&zone, body, len, ret);
	msgpack_zone_destroy(&zone);
	return r;
}

int
msg_decode_request_with(struct msg_dec *d, const uint8_t *body, size_t len,
    struct request *ret)
{
	int r;

	msg_request_init(ret);
	r = msg_decode_request_zone(&d->zone, body, len, ret);
	/* Keeps the first chunk; what is in it (object headers pointing
	 * into body) is not looked at again. */
	msgpack_zone_clear(&d->zone);
	return r;
}

static int
msg_decode_request_zone(msgpack_zone *zone, const uint8_t *body, size_t len,
    struct request *ret)
{
	const msgpack_object *f[RF__COUNT] = { NULL };
	const msgpack_object *o;
	msgpack_object obj;
	int r;

	if ((r = msg_unpack(body, len, zone, &obj, ret->why)) != 0)
		goto out;

	/* The id first, so that every later failure can be answered to it. */
	for (uint32_t i = 0; i < obj.via.map.size; i++) {
		const msgpack_object_kv *kv = &obj.via.map.ptr[i];

		if (!msg_is_str(&kv->key, "id"))
			continue;
		if (ret->has_id) {
			/* Two ids: answer neither. */
			ret->has_id = 0;
			ret->id = 0;
			break;
		}
		if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    kv->val.via.u64 > 0) {
			ret->id = kv->val.via.u64;
			ret->has_id = 1;
		}
	}
	if ((r = msg_index(&obj.via.map, msg_rf_names, RF__COUNT, f,
	    ret->why)) != 0)
		goto out;
	r = ERR_BAD_REQUEST;
	if (f[RF_ID] == NULL) {
		msg_why(ret->why, "field 'id' missing");
		goto out;
	}
	if (!ret->has_id) {
		msg_why(ret->why, "field 'id': expected uint 1..2^64-1");
		goto out;
	}
	if ((o = f[RF_OP]) == NULL) {
		msg_why(ret->why, "field 'op' missing");
		goto out;
	}
	if (o->type != MSGPACK_OBJECT_STR) {
		msg_why(ret->why, "field 'op': expected str");
		goto out;
	}
	if ((ret->op = op_from_name(o->via.str.ptr, o->via.str.size)) < 0) {
		msg_why(ret->why, "unknown op");
		r = ERR_UNKNOWN_OP;
		goto out;
	}
	r = msg_request_fields(f, body, ret);
out:
	return r;
}

/* An unsigned integer field that must fit in 32 bits. */
static int
msg_u32(const msgpack_object *o, const char *name, uint32_t *ret, char *why)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    o->via.u64 > UINT32_MAX) {
		msg_why(why, "field '%s': expected uint32", name);
		return ERR_BAD_REQUEST;
	}
	*ret = (uint32_t)o->via.u64;
	return 0;
}

/* A str field of any length, no further checks (client side). */
static int
msg_any_str(const msgpack_object *o, const char *name, const uint8_t *body,
    struct str *ret, char *why)
{
	if (o->type != MSGPACK_OBJECT_STR) {
		msg_why(why, "field '%s': expected str", name);
		return ERR_BAD_REQUEST;
	}
	*ret = msg_slice(o->via.str.ptr, o->via.str.size, body);
	return 0;
}

static int
msg_error_field(const msgpack_object *o, const uint8_t *body,
    struct response *ret)
{
	static const char *const names[] = { "code", "message" };
	const msgpack_object *f[2] = { NULL, NULL };
	int r;

	if (o->type != MSGPACK_OBJECT_MAP) {
		msg_why(ret->why, "field 'error': expected map");
		return ERR_BAD_REQUEST;
	}
	if ((r = msg_index(&o->via.map, names, 2, f, ret->why)) != 0)
		return r;
	if (f[0] == NULL) {
		msg_why(ret->why, "field 'error': no 'code'");
		return ERR_BAD_REQUEST;
	}
	if ((r = msg_any_str(f[0], "code", body, &ret->error_code,
	    ret->why)) != 0)
		return r;
	if (f[1] != NULL && (r = msg_any_str(f[1], "message", body,
	    &ret->message, ret->why)) != 0)
		return r;
	/* Unknown codes (a newer server) read as internal; the code string
	 * stays in error_code for display. */
	ret->error = err_from_code(ret->error_code.p, ret->error_code.len);
	return 0;
}

static int
msg_keys_field(const msgpack_object *o, const uint8_t *body,
    struct response *ret)
{
	static const char *const names[] = { "name", "version", "provider" };
	const msgpack_object_array *a;
	int r;

	if (o->type != MSGPACK_OBJECT_ARRAY) {
		msg_why(ret->why, "field 'keys': expected array");
		return ERR_BAD_REQUEST;
	}
	a = &o->via.array;
	/* Non-NULL even for an empty list: "keys" was present. */
	if ((ret->keys = calloc(a->size > 0 ? a->size : 1,
	    sizeof(*ret->keys))) == NULL)
		return ERR_NOMEM;
	ret->keys_owned = 1;
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object *f[3] = { NULL, NULL, NULL };
		struct key_info *k = &ret->keys[i];

		if (a->ptr[i].type != MSGPACK_OBJECT_MAP) {
			msg_why(ret->why, "field 'keys': expected maps");
			return ERR_BAD_REQUEST;
		}
		if ((r = msg_index(&a->ptr[i].via.map, names, 3, f,
		    ret->why)) != 0)
			return r;
		if (f[0] == NULL || f[1] == NULL || f[2] == NULL) {
			msg_why(ret->why, "field 'keys': entry needs name, "
			    "version and provider");
			return ERR_BAD_REQUEST;
		}
		if ((r = msg_any_str(f[0], "name", body, &k->name,
		    ret->why)) != 0 ||
		    (r = msg_u32(f[1], "version", &k->version, ret->why)) != 0 ||
		    (r = msg_any_str(f[2], "provider", body, &k->provider,
		    ret->why)) != 0)
			return r;
	}
	ret->n_keys = a->size;
	return 0;
}

static int
msg_allow_field(const msgpack_object *o, const uint8_t *body,
    struct response *ret)
{
	const msgpack_object_array *a;
	int r;

	if (o->type != MSGPACK_OBJECT_ARRAY) {
		msg_why(ret->why, "field 'allow': expected array");
		return ERR_BAD_REQUEST;
	}
	a = &o->via.array;
	if (a->size > OP__COUNT) {
		msg_why(ret->why, "field 'allow': more than %d ops", OP__COUNT);
		return ERR_BAD_REQUEST;
	}
	for (uint32_t i = 0; i < a->size; i++)
		if ((r = msg_any_str(&a->ptr[i], "allow", body, &ret->allow[i],
		    ret->why)) != 0)
			return r;
	ret->n_allow = a->size;
	return 0;
}

int
msg_decode_response(const uint8_t *body, size_t len, struct response *ret)
{
	const msgpack_object *f[SF__COUNT] = { NULL };
	const msgpack_object *o;
	msgpack_zone zone;
	msgpack_object obj;
	int r;

	msg_response_init(ret);
	if (!msgpack_zone_init(&zone, MSGPACK_ZONE_CHUNK_SIZE))
		return ERR_NOMEM;
	if ((r = msg_unpack(body, len, &zone, &obj, ret->why)) != 0 ||
	    (r = msg_index(&obj.via.map, msg_sf_names, SF__COUNT, f,
	    ret->why)) != 0)
		goto out;
	r = ERR_BAD_REQUEST;
	if (f[SF_ID] == NULL) {
		msg_why(ret->why, "field 'id' missing");
		goto out;
	}
	if (f[SF_ID]->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		msg_why(ret->why, "field 'id': expected uint");
		goto out;
	}
	ret->id = f[SF_ID]->via.u64;
	if ((o = f[SF_ERROR]) != NULL &&
	    (r = msg_error_field(o, body, ret)) != 0)
		goto out;
	if ((o = f[SF_CIPHERTEXT]) != NULL && (r = msg_any_str(o,
	    "ciphertext", body, &ret->ciphertext, ret->why)) != 0)
		goto out;
	if ((o = f[SF_PLAINTEXT]) != NULL) {
		if (o->type != MSGPACK_OBJECT_BIN) {
			msg_why(ret->why, "field 'plaintext': expected bin");
			r = ERR_BAD_REQUEST;
			goto out;
		}
		ret->plaintext = msg_slice(o->via.bin.ptr, o->via.bin.size,
		    body);
	}
	if ((o = f[SF_VERSION]) != NULL && (r = msg_any_str(o, "version",
	    body, &ret->version, ret->why)) != 0)
		goto out;
	if ((o = f[SF_PROTOCOL]) != NULL && (r = msg_u32(o, "protocol",
	    &ret->protocol, ret->why)) != 0)
		goto out;
	if ((o = f[SF_SOCKET]) != NULL && (r = msg_any_str(o, "socket",
	    body, &ret->socket, ret->why)) != 0)
		goto out;
	if ((o = f[SF_ALLOW]) != NULL &&
	    (r = msg_allow_field(o, body, ret)) != 0)
		goto out;
	if ((o = f[SF_KEYS]) != NULL &&
	    (r = msg_keys_field(o, body, ret)) != 0)
		goto out;
	if ((o = f[SF_BODY]) != NULL && (r = msg_any_str(o, "body", body,
	    &ret->body, ret->why)) != 0)
		goto out;
	r = 0;
out:
	msgpack_zone_destroy(&zone);
	if (r != 0) {
		uint64_t id = ret->id;
		char why[MSG_WHY_LEN];

		memcpy(why, ret->why, sizeof(why));
		msg_response_done(ret);
		ret->id = id;
		memcpy(ret->why, why, sizeof(why));
	}
	return r;
}

void
msg_response_done(struct response *r)
{
	if (r == NULL)
		return;
	if (r->keys_owned)
		free(r->keys);
	msg_response_init(r);
}

/* Encoder state behind the msgpack_packer callback. */
struct msg_out {
	struct buf *b;
	int err;
};

static int
msg_write(void *data, const char *p, size_t n)
{
	struct msg_out *o = data;
	int r;

	if ((r = buf_append(o->b, p, n)) != 0) {
		if (o->err == 0)
			o->err = r;
		return -1;
	}
	return 0;
}

static int
msg_pack_cstr(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	if (msgpack_pack_str(pk, n) != 0 ||
	    msgpack_pack_str_body(pk, s, n) != 0)
		return -1;
	return 0;
}

static int
msg_pack_str(msgpack_packer *pk, struct str s)
{
	if (msgpack_pack_str(pk, s.len) != 0 ||
	    msgpack_pack_str_body(pk, s.p, s.len) != 0)
		return -1;
	return 0;
}

/* "name": str, when v is set. */
static int
msg_pack_kv_str(msgpack_packer *pk, const char *name, struct str v)
{
	if (v.p == NULL)
		return 0;
	return msg_pack_cstr(pk, name) != 0 || msg_pack_str(pk, v) != 0 ?
	    -1 : 0;
}

static int
msg_pack_context(msgpack_packer *pk, const char *name,
    const struct context *c)
{
	if (!c->present)
		return 0;
	if (msg_pack_cstr(pk, name) != 0 || msgpack_pack_map(pk, c->n) != 0)
		return -1;
	for (size_t i = 0; i < c->n; i++)
		if (msg_pack_str(pk, c->pairs[i].k) != 0 ||
		    msg_pack_str(pk, c->pairs[i].v) != 0)
			return -1;
	return 0;
}

/* Start a frame: reserve the header, to be patched by msg_frame_end. */
static int
msg_frame_begin(struct buf *out, size_t *start)
{
	static const uint8_t zero[FRAME_HDR];

	*start = out->len;
	return buf_append(out, zero, FRAME_HDR);
}

/* Patch the header, or on failure put out back as it was. */
static int
msg_frame_end(struct buf *out, size_t start, int r)
{
	size_t n = out->len - start;

	if (r == 0 && n - FRAME_HDR > UINT32_MAX)
		r = ERR_TOO_LARGE;
	if (r == 0) {
		frame_put_header(out->data + start, (uint32_t)(n - FRAME_HDR));
		return 0;
	}
	/* The partial frame may hold a plaintext or a data key. */
	if (n > 0)
		OPENSSL_cleanse(out->data + start, n);
	out->len = start;
	return r;
}

/* The packer's result: the buffer's own error when it refused, else
 * ERR_INTERNAL for a packer failure of any other kind. */
static int
msg_pack_result(int failed, const struct msg_out *o)
{
	if (!failed)
		return 0;
	return o->err != 0 ? o->err : ERR_INTERNAL;
}

int
msg_encode_request(struct buf *out, const struct request *r)
{
	struct msg_out o = { out, 0 };
	msgpack_packer pk;
	const char *op = op_name(r->op);
	size_t start, n = 2;
	int failed, err;

	if (op == NULL || r->ctx.n > CONTEXT_MAX_PAIRS ||
	    r->new_ctx.n > CONTEXT_MAX_PAIRS)
		return ERR_INTERNAL;
	if ((err = msg_frame_begin(out, &start)) != 0)
		return err;
	n += r->key.p != NULL;
	n += r->ctx.present != 0;
	n += r->new_ctx.present != 0;
	n += r->plaintext.p != NULL;
	n += r->ciphertext.p != NULL;
	n += r->reason.p != NULL;
	n += r->audit_path.p != NULL;
	n += r->format.p != NULL;
	msgpack_packer_init(&pk, &o, msg_write);
	failed = msgpack_pack_map(&pk, n) != 0 ||
	    msg_pack_cstr(&pk, "id") != 0 ||
	    msgpack_pack_uint64(&pk, r->id) != 0 ||
	    msg_pack_cstr(&pk, "op") != 0 ||
	    msg_pack_cstr(&pk, op) != 0 ||
	    msg_pack_kv_str(&pk, "key", r->key) != 0 ||
	    msg_pack_context(&pk, "context", &r->ctx) != 0 ||
	    msg_pack_context(&pk, "new_context", &r->new_ctx) != 0;
	if (!failed && r->plaintext.p != NULL)
		failed = msg_pack_cstr(&pk, "plaintext") != 0 ||
		    msgpack_pack_bin(&pk, r->plaintext.len) != 0 ||
		    msgpack_pack_bin_body(&pk, r->plaintext.p,
		    r->plaintext.len) != 0;
	if (!failed)
		failed = msg_pack_kv_str(&pk, "ciphertext", r->ciphertext) != 0 ||
		    msg_pack_kv_str(&pk, "reason", r->reason) != 0 ||
		    msg_pack_kv_str(&pk, "audit_path", r->audit_path) != 0 ||
		    msg_pack_kv_str(&pk, "format", r->format) != 0;
	return msg_frame_end(out, start, msg_pack_result(failed, &o));
}

static int
msg_pack_error(msgpack_packer *pk, const struct response *r)
{
	struct str msg = r->message;

	if (msg.p == NULL) {
		msg.p = err_str(r->error);
		msg.len = strlen(msg.p);
	}
	if (msg_pack_cstr(pk, "error") != 0 || msgpack_pack_map(pk, 2) != 0 ||
	    msg_pack_cstr(pk, "code") != 0 ||
	    msg_pack_cstr(pk, err_code(r->error)) != 0 ||
	    msg_pack_cstr(pk, "message") != 0 || msg_pack_str(pk, msg) != 0)
		return -1;
	return 0;
}

static int
msg_pack_keys(msgpack_packer *pk, const struct response *r)
{
	if (msg_pack_cstr(pk, "keys") != 0 ||
	    msgpack_pack_array(pk, r->n_keys) != 0)
		return -1;
	for (size_t i = 0; i < r->n_keys; i++) {
		const struct key_info *k = &r->keys[i];

		if (msgpack_pack_map(pk, 3) != 0 ||
		    msg_pack_cstr(pk, "name") != 0 ||
		    msg_pack_str(pk, k->name) != 0 ||
		    msg_pack_cstr(pk, "version") != 0 ||
		    msgpack_pack_uint32(pk, k->version) != 0 ||
		    msg_pack_cstr(pk, "provider") != 0 ||
		    msg_pack_str(pk, k->provider) != 0)
			return -1;
	}
	return 0;
}

int
msg_encode_response(struct buf *out, const struct response *r)
{
	struct msg_out o = { out, 0 };
	msgpack_packer pk;
	size_t start, n = 1;
	int failed, err;

	/* Incomplete messages are the caller's bug, not the peer's. */
	if (r->n_allow > OP__COUNT || (r->n_keys > 0 && r->keys == NULL))
		return ERR_INTERNAL;
	for (size_t i = 0; i < r->n_allow; i++)
		if (r->allow[i].p == NULL)
			return ERR_INTERNAL;
	for (size_t i = 0; i < r->n_keys; i++)
		if (r->keys[i].name.p == NULL || r->keys[i].provider.p == NULL)
			return ERR_INTERNAL;
	if ((err = msg_frame_begin(out, &start)) != 0)
		return err;
	msgpack_packer_init(&pk, &o, msg_write);
	if (r->error != 0) {
		/* An error answer carries nothing else (msg.h). */
		failed = msgpack_pack_map(&pk, 2) != 0 ||
		    msg_pack_cstr(&pk, "id") != 0 ||
		    msgpack_pack_uint64(&pk, r->id) != 0 ||
		    msg_pack_error(&pk, r) != 0;
		return msg_frame_end(out, start, msg_pack_result(failed, &o));
	}
	n += r->ciphertext.p != NULL;
	n += r->plaintext.p != NULL;
	n += r->version.p != NULL;
	n += r->protocol != 0;
	n += r->socket.p != NULL;
	n += r->n_allow > 0;
	n += r->keys != NULL;
	n += r->body.p != NULL;
	failed = msgpack_pack_map(&pk, n) != 0 ||
	    msg_pack_cstr(&pk, "id") != 0 ||
	    msgpack_pack_uint64(&pk, r->id) != 0 ||
	    msg_pack_kv_str(&pk, "ciphertext", r->ciphertext) != 0;
	if (!failed && r->plaintext.p != NULL)
		failed = msg_pack_cstr(&pk, "plaintext") != 0 ||
		    msgpack_pack_bin(&pk, r->plaintext.len) != 0 ||
		    msgpack_pack_bin_body(&pk, r->plaintext.p,
		    r->plaintext.len) != 0;
	if (!failed)
		failed = msg_pack_kv_str(&pk, "version", r->version) != 0;
	if (!failed && r->protocol != 0)
		failed = msg_pack_cstr(&pk, "protocol") != 0 ||
		    msgpack_pack_uint32(&pk, r->protocol) != 0;
	if (!failed)
		failed = msg_pack_kv_str(&pk, "socket", r->socket) != 0;
	if (!failed && r->n_allow > 0) {
		failed = msg_pack_cstr(&pk, "allow") != 0 ||
		    msgpack_pack_array(&pk, r->n_allow) != 0;
		for (size_t i = 0; i < r->n_allow && !failed; i++)
			failed = msg_pack_str(&pk, r->allow[i]) != 0;
	}
	if (!failed && r->keys != NULL)
		failed = msg_pack_keys(&pk, r) != 0;
	if (!failed)
		failed = msg_pack_kv_str(&pk, "body", r->body) != 0;
	return msg_frame_end(out, start, msg_pack_result(failed, &o));
}

void
msg_request_init(struct request *r)
{
	/* Everything but the two pair arrays (4 KiB, read only up to n):
	 * this runs for every request. */
	r->id = 0;
	r->has_id = 0;
	r->op = 0;
	r->key = STR_NULL;
	r->ctx.present = 0;
	r->ctx.n = 0;
	r->new_ctx.present = 0;
	r->new_ctx.n = 0;
	r->plaintext = STR_NULL;
	r->ciphertext = STR_NULL;
	r->reason = STR_NULL;
	r->audit_path = STR_NULL;
	r->format = STR_NULL;
	r->why[0] = '\0';
}

void
msg_response_init(struct response *r)
{
	memset(r, 0, sizeof(*r));
}

void
msg_response_error(struct response *r, uint64_t id, int err,
    const char *why)
{
	msg_response_init(r);
	r->id = id;
	r->error = err;
	r->message.p = why;
	r->message.len = strlen(why);
}
