/*
 * ops.c: request -> policy -> key -> provider -> response.
 *
 * Every request passes the one policy gate before any handler runs. An
 * operation that reaches a provider becomes a struct job that owns copies
 * of everything it needs (the request points into the connection's input
 * buffer, which moves on), holds a reference to the keyring it started
 * with, and has exactly one owner: its connection while that lives, itself
 * once the connection is gone (a late completion is then wiped and
 * dropped). op_finish is the single exit: it answers, logs failures once
 * and wipes every buffer that held a key or a plaintext.
 *
 * Rewrap unwraps with the version named in the stored string and wraps
 * with the current one inside the daemon; the data key never leaves.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "err.h"
#include "frame.h"
#include "log.h"
#include "policy.h"
#include "server.h"
#include "stored.h"

/* A data key as kms_encrypted makes it: 32 random bytes (AES-256). */
#define OPS_DATA_KEY_LEN 32
/* Room for the canonical JSON of one context: a frame bounds the pairs,
 * and escaping at most sextuples a byte. */
#define OPS_CTX_JSON_MAX (6 * 64 * 1024 + 2)

enum op_stage {
	STAGE_WRAP,
	STAGE_UNWRAP,
	STAGE_REWRAP_UNWRAP,
	STAGE_REWRAP_WRAP,
};

/* An owned copy of a context: the pairs point into mem. */
struct ctx_copy {
	struct context c;
	struct buf mem;
	struct buf json;
};

struct job {
	struct conn *conn;		/* NULL once detached */
	TAILQ_ENTRY(job) entry;
	uint64_t id;
	int opcode;
	enum op_stage stage;
	struct keyring *kr;
	const struct key *key;
	const struct key_version *kv;	/* version being called */
	struct ctx_copy ctx;
	struct ctx_copy new_ctx;	/* rewrap: the context to wrap under */
	struct buf in;			/* plaintext or provider ciphertext */
	struct buf datakey;		/* generate: fresh key; rewrap: unwrapped */
	struct prov_call call;
};

static void op_call(struct job *op, enum prov_op pop,
    const struct key_version *kv, const uint8_t *in, size_t in_len,
    const struct ctx_copy *cc);

static void
ctx_copy_init(struct ctx_copy *cc)
{
	memset(&cc->c, 0, sizeof(cc->c));
	buf_init(&cc->mem, FRAME_MAX_DEFAULT);
	buf_init(&cc->json, OPS_CTX_JSON_MAX);
}

static void
ctx_copy_done(struct ctx_copy *cc)
{
	buf_done(&cc->mem);
	buf_done(&cc->json);
}

/* Copy src's pairs into owned memory and compute its canonical JSON. */
static int
ctx_copy_set(struct ctx_copy *cc, const struct context *src,
    enum ctx_style style)
{
	size_t total = 0, off = 0;
	int r;

	if (!src->present)
		return 0;
	if ((r = context_check(src)) != 0)
		return r;
	for (size_t i = 0; i < src->n; i++)
		total += src->pairs[i].k.len + src->pairs[i].v.len;
	/* Reserve once so the slices below never move. */
	if ((r = buf_reserve(&cc->mem, total)) != 0)
		return r;
	cc->c.present = 1;
	cc->c.n = src->n;
	for (size_t i = 0; i < src->n; i++) {
		const struct ctx_pair *sp = &src->pairs[i];
		struct ctx_pair *dp = &cc->c.pairs[i];

		buf_append(&cc->mem, sp->k.p, sp->k.len);
		dp->k.p = (const char *)cc->mem.data + off;
		dp->k.len = sp->k.len;
		off += sp->k.len;
		buf_append(&cc->mem, sp->v.p, sp->v.len);
		dp->v.p = (const char *)cc->mem.data + off;
		dp->v.len = sp->v.len;
		off += sp->v.len;
	}
	return context_json(&cc->c, style, &cc->json);
}

static struct job *
op_new(struct conn *c, const struct request *r, const struct key *key)
{
	struct job *op;

	if ((op = calloc(1, sizeof(*op))) == NULL)
		return NULL;
	op->conn = c;
	op->id = r->id;
	op->opcode = r->op;
	op->kr = keyring_ref(c->srv->kr);
	op->key = key;
	ctx_copy_init(&op->ctx);
	ctx_copy_init(&op->new_ctx);
	buf_init(&op->in, MSG_MAX_CIPHERTEXT);
	buf_init(&op->datakey, PROV_MAX_OUT);
	buf_init(&op->call.out, PROV_MAX_OUT);
	TAILQ_INSERT_TAIL(&c->ops, op, entry);
	c->inflight++;
	return op;
}

static void
op_free(struct job *op)
{
	ctx_copy_done(&op->ctx);
	ctx_copy_done(&op->new_ctx);
	buf_done(&op->in);
	buf_done(&op->datakey);
	buf_done(&op->call.out);
	keyring_unref(op->kr);
	free(op);
}

static const char *
ops_socket_name(const struct conn *c)
{
	return c->lst->cfg->name;
}

/* Log a refused or failed request once, with who asked for what. */
static void
ops_log_failure(const struct conn *c, int opcode, struct str key, int err,
    const char *why)
{
	log_info("%s key=%.*s socket=%s uid=%u pid=%d: %s: %s",
	    op_name(opcode) != NULL ? op_name(opcode) : "?",
	    (int)(key.len > 64 ? 64 : key.len), key.p != NULL ? key.p : "",
	    ops_socket_name(c), (unsigned)c->peer.uid, (int)c->peer.pid,
	    err_code(err), why);
}

/* Answer a request that never became an op. */
static void
ops_reject(struct conn *c, const struct request *r, int err, const char *why)
{
	struct response rs;

	ops_log_failure(c, r->op, r->key, err, why);
	msg_response_init(&rs);
	rs.id = r->id;
	rs.error = err;
	rs.message.p = why;
	rs.message.len = strlen(why);
	conn_respond(c, &rs);
}

/* The single exit of an op: answer (when the connection is still there),
 * then wipe and free. */
static void
op_finish(struct job *op, struct response *rs)
{
	struct conn *c = op->conn;

	if (c != NULL) {
		TAILQ_REMOVE(&c->ops, op, entry);
		op->conn = NULL;
		if (rs->error != 0)
			ops_log_failure(c, op->opcode,
			    (struct str){ op->key->name, strlen(op->key->name) },
			    rs->error, rs->message.p != NULL ? rs->message.p :
			    err_str(rs->error));
		else
			log_debug("%s key=%s socket=%s uid=%u pid=%d: ok",
			    op_name(op->opcode), op->key->name,
			    ops_socket_name(c), (unsigned)c->peer.uid,
			    (int)c->peer.pid);
		conn_respond(c, rs);
		conn_op_finished(c);
	}
	op_free(op);
}

static void
op_fail(struct job *op, int err, const char *why)
{
	struct response rs;

	msg_response_init(&rs);
	rs.id = op->id;
	rs.error = err;
	rs.message.p = why;
	rs.message.len = strlen(why);
	op_finish(op, &rs);
}

/* Format the provider ciphertext in call.out as "vN:..." and answer. */
static void
op_answer_wrapped(struct job *op)
{
	struct response rs;
	struct buf stored;
	int r;

	buf_init(&stored, MSG_MAX_CIPHERTEXT);
	if ((r = stored_format(op->key->current, op->call.out.data,
	    op->call.out.len, &stored)) != 0) {
		buf_done(&stored);
		op_fail(op, ERR_INTERNAL, "provider ciphertext too large");
		return;
	}
	msg_response_init(&rs);
	rs.id = op->id;
	rs.ciphertext.p = (const char *)stored.data;
	rs.ciphertext.len = stored.len;
	if (op->opcode == OP_GENERATE) {
		rs.plaintext.p = (const char *)op->datakey.data;
		rs.plaintext.len = op->datakey.len;
	}
	op_finish(op, &rs);
	buf_done(&stored);
}

static void
op_call_done(struct prov_call *call)
{
	struct job *op = call->arg;
	struct response rs;
	struct buf tmp;

	if (op->conn == NULL) {
		/* Nobody to answer: drop the result, wiped by op_free. */
		op_free(op);
		return;
	}
	if (call->err != 0) {
		op_fail(op, call->err, call->msg[0] != '\0' ? call->msg :
		    err_str(call->err));
		return;
	}
	switch (op->stage) {
	case STAGE_WRAP:
	case STAGE_REWRAP_WRAP:
		op_answer_wrapped(op);
		return;
	case STAGE_UNWRAP:
		msg_response_init(&rs);
		rs.id = op->id;
		rs.plaintext.p = (const char *)op->call.out.data;
		rs.plaintext.len = op->call.out.len;
		op_finish(op, &rs);
		return;
	case STAGE_REWRAP_UNWRAP:
		/* The unwrapped key moves to datakey (no copy left behind)
		 * and is wrapped again under the current version. */
		tmp = op->datakey;
		op->datakey = op->call.out;
		op->call.out = tmp;
		buf_clear(&op->call.out);
		op->stage = STAGE_REWRAP_WRAP;
		op_call(op, PROV_WRAP, key_version(op->key, op->key->current),
		    op->datakey.data, op->datakey.len,
		    op->new_ctx.c.present ? &op->new_ctx : &op->ctx);
		return;
	}
}

static void
op_call(struct job *op, enum prov_op pop, const struct key_version *kv,
    const uint8_t *in, size_t in_len, const struct ctx_copy *cc)
{
	struct prov_call *call = &op->call;

	if (kv == NULL) {
		op_fail(op, ERR_VERSION_NOT_ACTIVE, "current version has no "
		    "key id");
		return;
	}
	op->kv = kv;
	call->op = pop;
	call->in = in;
	call->in_len = in_len;
	call->ctx = &cc->c;
	call->ctx_json = cc->c.present ? cc->json.data : NULL;
	call->ctx_json_len = cc->c.present ? cc->json.len : 0;
	call->err = 0;
	call->msg[0] = '\0';
	call->done = op_call_done;
	call->arg = op;
	/* May complete (and free op) before returning. */
	kv->prov->start(kv->state, call);
}

/* hello and keys: the keys this socket may use. */
static void
ops_hello(struct conn *c, const struct request *r)
{
	const struct sock_policy *pol = &c->lst->cfg->policy;
	const struct keyring *kr = c->srv->kr;
	struct key_info *ki;
	struct response rs;
	size_t n = 0;

	msg_response_init(&rs);
	rs.id = r->id;
	if ((ki = calloc(kr->n + 1, sizeof(*ki))) == NULL) {
		ops_reject(c, r, ERR_NOMEM, "out of memory");
		return;
	}
	for (size_t i = 0; i < kr->n; i++) {
		const struct key *k = &kr->keys[i];
		const struct key_version *kv = key_version(k, k->current);
		struct str name = { k->name, strlen(k->name) };

		if (!policy_key_allowed(pol, name))
			continue;
		ki[n].name = name;
		ki[n].version = k->current;
		ki[n].provider.p = kv->prov->name;
		ki[n].provider.len = strlen(kv->prov->name);
		n++;
	}
	rs.keys = ki;
	rs.n_keys = n;
	if (r->op == OP_HELLO) {
		rs.version.p = KMSD_VERSION;
		rs.version.len = strlen(KMSD_VERSION);
		rs.protocol = MSG_PROTOCOL_VERSION;
		rs.socket.p = c->lst->cfg->name;
		rs.socket.len = strlen(c->lst->cfg->name);
		for (int op = 0; op < OP__COUNT; op++)
			if (pol->allow & POLICY_BIT(op)) {
				rs.allow[rs.n_allow].p = op_name(op);
				rs.allow[rs.n_allow].len = strlen(op_name(op));
				rs.n_allow++;
			}
	}
	conn_respond(c, &rs);
	free(ki);
}

void
ops_dispatch(struct conn *c, const struct request *r)
{
	const struct config *cfg = c->srv->cfg;
	const struct key *key;
	const struct key_version *kv;
	const char *why;
	struct job *op;
	uint32_t version;
	int rc;

	if ((rc = policy_check(&c->lst->cfg->policy, r->op, r->key,
	    &why)) != 0) {
		ops_reject(c, r, rc, why);
		return;
	}
	switch (r->op) {
	case OP_HELLO:
	case OP_KEYS:
		ops_hello(c, r);
		return;
	case OP_GENERATE:
	case OP_ENCRYPT:
	case OP_DECRYPT:
	case OP_REWRAP:
		break;
	default:
		ops_reject(c, r, ERR_UNKNOWN_OP, "op not served by this "
		    "version of kmsd");
		return;
	}
	if ((key = keyring_find(c->srv->kr, r->key)) == NULL) {
		ops_reject(c, r, ERR_UNKNOWN_KEY, "no such key");
		return;
	}
	if ((op = op_new(c, r, key)) == NULL) {
		ops_reject(c, r, ERR_NOMEM, "out of memory");
		return;
	}
	if (ctx_copy_set(&op->ctx, &r->ctx, cfg->ctx_style) != 0 ||
	    ctx_copy_set(&op->new_ctx, &r->new_ctx, cfg->ctx_style) != 0) {
		op_fail(op, ERR_BAD_REQUEST, "context is not valid UTF-8 or "
		    "repeats a key");
		return;
	}
	switch (r->op) {
	case OP_GENERATE:
		if (buf_reserve(&op->datakey, OPS_DATA_KEY_LEN) != 0 ||
		    RAND_bytes(op->datakey.data, OPS_DATA_KEY_LEN) != 1) {
			op_fail(op, ERR_INTERNAL, "random generator failed");
			return;
		}
		op->datakey.len = OPS_DATA_KEY_LEN;
		op->stage = STAGE_WRAP;
		op_call(op, PROV_WRAP, key_version(key, key->current),
		    op->datakey.data, op->datakey.len, &op->ctx);
		return;
	case OP_ENCRYPT:
		if (buf_append(&op->in, r->plaintext.p, r->plaintext.len) != 0) {
			op_fail(op, ERR_TOO_LARGE, "plaintext too large");
			return;
		}
		op->stage = STAGE_WRAP;
		op_call(op, PROV_WRAP, key_version(key, key->current),
		    op->in.data, op->in.len, &op->ctx);
		return;
	default:	/* decrypt, rewrap */
		break;
	}
	if (stored_parse(r->ciphertext.p, r->ciphertext.len, &version,
	    &op->in) != 0) {
		op_fail(op, ERR_DECRYPTION_FAILED, "ciphertext is not a "
		    "\"vN:\" + base64 stored string");
		return;
	}
	if ((kv = key_version(key, version)) == NULL) {
		op_fail(op, ERR_VERSION_NOT_ACTIVE, "ciphertext names a key "
		    "version that is not configured");
		return;
	}
	op->stage = r->op == OP_DECRYPT ? STAGE_UNWRAP : STAGE_REWRAP_UNWRAP;
	op_call(op, PROV_UNWRAP, kv, op->in.data, op->in.len, &op->ctx);
}

void
ops_detach(struct conn *c)
{
	struct job *op;

	/* A provider still holds these calls; op_finish frees them when
	 * they complete, without a connection to answer. */
	while ((op = TAILQ_FIRST(&c->ops)) != NULL) {
		TAILQ_REMOVE(&c->ops, op, entry);
		op->conn = NULL;
		if (op->kv != NULL && op->kv->prov->cancel != NULL)
			op->kv->prov->cancel(op->kv->state, &op->call);
	}
}
