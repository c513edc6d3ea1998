/*
 * ops.c: request -> peer and policy gate -> key -> provider -> audit ->
 * response.
 *
 * Every request passes the one gate (peer identity, then the socket's
 * policy) before any handler runs. An operation that reaches a provider
 * becomes a struct job that owns copies of everything it needs (the
 * request points into the connection's input buffer, which moves on),
 * holds a reference to the keyring it started with, and has exactly one
 * owner: its connection while that lives, itself once the connection is
 * gone (a late completion is then wiped and dropped). job_finish is the
 * single exit: it writes the audit entry before anything is answered (an
 * entry that cannot be written turns the answer into audit_unavailable and
 * nothing else), counts, logs failures once, and wipes every buffer that
 * held a key or a plaintext.
 *
 * Rewrap unwraps with the version named in the stored string and wraps
 * with the current one inside the daemon; the data key never leaves.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "audit.h"
#include "cache.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "policy.h"
#include "rand.h"
#include "server.h"
#include "stats.h"
#include "stored.h"

/* A data key as kms_encrypted makes it: 32 random bytes (AES-256). */
#define OPS_DATA_KEY_LEN 32
/* Room for the canonical JSON of one context: a frame bounds the pairs,
 * and escaping at most sextuples a byte. */
#define OPS_CTX_JSON_MAX (6 * FRAME_MAX_DEFAULT + 2)
/* Longest client-supplied name echoed into a log line. */
#define OPS_LOG_NAME_MAX 64

enum job_stage {
	STAGE_WRAP,
	STAGE_UNWRAP,
	STAGE_REWRAP_UNWRAP,
	STAGE_REWRAP_WRAP,
	STAGE_REWRAP_DIRECT,	/* the provider rewraps itself */
	STAGE_CONTEXT_HASH,
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
	enum job_stage stage;
	uint64_t t0_us;
	uint32_t version;		/* the version the request is about */
	struct keyring *kr;
	const struct key *key;
	const struct key_version *kv;	/* version being called */
	struct ctx_copy ctx;
	struct ctx_copy new_ctx;	/* rewrap: the context to wrap under */
	struct buf in;			/* plaintext or provider ciphertext */
	struct buf datakey;		/* generate: fresh key; rewrap: unwrapped */
	struct buf stored;		/* the answer's "vN:..." string */
	char *audit_path;		/* context_hash */
	struct prov_call call;
	/* decrypt of a key with a cache_ttl (cache.h) */
	int cached;			/* a cache_ttl applies */
	uint32_t cache_ttl_ms, cache_max_uses;	/* copied: reloads free
						 * the config */
	struct cache_id cache_id;
	uint64_t cache_gen;
	int cache_hit;
};

static void job_call(struct job *job, enum prov_op pop,
    const struct key_version *kv, const uint8_t *in, size_t in_len,
    const struct ctx_copy *cc);

/*
 * The clock is read once a loop turn: on this kind of VM a clock read is
 * a few percent of a request, and a request asked it three times (its
 * start, its counters' window, its connection's idle clock). A turn's
 * requests then share the time the turn's first one read; audit
 * durations are measured from it to a fresh read.
 */
static uint64_t ops_clock_us;
static int ops_clock_valid;

uint64_t
ops_clock_read_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void
ops_clock_tick(void)
{
	ops_clock_valid = 0;
}

uint64_t
ops_now_us(void)
{
	if (!ops_clock_valid) {
		ops_clock_us = ops_clock_read_us();
		ops_clock_valid = 1;
	}
	return ops_clock_us;
}

int64_t
ops_now_s(void)
{
	return (int64_t)(ops_now_us() / 1000000u);
}

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
	/* Request contexts were checked by the decoder (UTF-8, no
	 * duplicate keys, the pair bound); only what the copy relies on is
	 * looked at again. */
	if (src->n > CONTEXT_MAX_PAIRS)
		return ERR_TOO_LARGE;
	for (size_t i = 0; i < src->n; i++) {
		if ((src->pairs[i].k.p == NULL && src->pairs[i].k.len > 0) ||
		    (src->pairs[i].v.p == NULL && src->pairs[i].v.len > 0))
			return ERR_BAD_REQUEST;
		total += src->pairs[i].k.len + src->pairs[i].v.len;
	}
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
	return context_json_valid(&cc->c, style, &cc->json);
}

/* A client-supplied name made safe for one log line: printable ASCII
 * only, bounded. */
static const char *
ops_log_name(struct str s, char out[OPS_LOG_NAME_MAX + 4])
{
	size_t n = 0;

	if (s.p == NULL)
		return "-";
	for (size_t i = 0; i < s.len && n < OPS_LOG_NAME_MAX; i++)
		out[n++] = isprint((unsigned char)s.p[i]) ? s.p[i] : '?';
	if (s.len > OPS_LOG_NAME_MAX) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

static int
ops_is_denial(int err)
{
	return err == ERR_PERMISSION_DENIED || err == ERR_DECRYPT_DISABLED;
}

int
ops_record(struct conn *c, int op, struct str key, int configured,
    uint32_t version, const uint8_t *ctx_json, size_t ctx_json_len, int err,
    uint64_t t0_us, const char *detail, int cache_hit)
{
	struct server *s = c->srv;
	char name[OPS_LOG_NAME_MAX + 4], keybuf[MSG_MAX_KEY_NAME + 1];
	enum stats_result res;
	struct audit_entry e;
	int r = 0;

	res = err == 0 ? STATS_OK : ops_is_denial(err) ? STATS_DENIED :
	    STATS_FAILED;
	if (key.p != NULL) {
		size_t n = key.len < MSG_MAX_KEY_NAME ? key.len :
		    MSG_MAX_KEY_NAME;

		memcpy(keybuf, key.p, n);
		keybuf[n] = '\0';
	}
	if (s->audit != NULL && op != OP_HELLO && op != OP_KEYS &&
	    op != OP_STATS) {
		memset(&e, 0, sizeof(e));
		e.op = op_name(op);
		e.key = key.p != NULL ? keybuf : NULL;
		e.version = version;
		e.socket = c->lst->name;
		e.has_peer = 1;
		e.pid = c->peer.pid;
		e.uid = c->peer.uid;
		e.gid = c->peer.gid;
		e.exe = c->peer.exe;
		e.ctx_json = ctx_json;
		e.ctx_json_len = ctx_json_len;
		e.result = res == STATS_OK ? "ok" : res == STATS_DENIED ?
		    "denied" : "failed";
		e.error = err != 0 ? err_code(err) : NULL;
		e.detail = detail;
		e.cache_hit = cache_hit;
		e.duration_us = ops_clock_read_us() - t0_us;
		/* The answer waits for the entry's batch (c->audited). */
		if ((r = server_audit(s, &e)) != 0)
			log_err("audit log %s: cannot write the entry for %s "
			    "by uid %u pid %d: answering audit_unavailable",
			    s->cfg->audit_log, op_name(op),
			    (unsigned)c->peer.uid, (int)c->peer.pid);
		else
			c->audited = 1;
	}
	stats_count(s->stats, op, configured && key.p != NULL ? keybuf : NULL,
	    c->lst->name, c->peer.uid, res, ops_now_s());
	if (cache_hit)
		stats_cache_hit(s->stats);
	if (err != 0)
		log_info("%s key=%s socket=%s uid=%u pid=%d: %s: %s",
		    op_name(op) != NULL ? op_name(op) : "?",
		    ops_log_name(key, name), c->lst->name,
		    (unsigned)c->peer.uid, (int)c->peer.pid, err_code(err),
		    detail != NULL ? detail : err_str(err));
	else
		log_debug("%s key=%s socket=%s uid=%u pid=%d: ok",
		    op_name(op), ops_log_name(key, name), c->lst->name,
		    (unsigned)c->peer.uid, (int)c->peer.pid);
	return r == 0 ? 0 : ERR_AUDIT_UNAVAILABLE;
}

/* Answer a request that never became a job; it is audited and counted. */
static void
ops_reject(struct conn *c, const struct request *r, int configured, int err,
    const char *why, uint64_t t0_us)
{
	struct response rs;

	if (ops_record(c, r->op, r->key, configured, 0, NULL, 0, err, t0_us,
	    why, 0) != 0) {
		err = ERR_AUDIT_UNAVAILABLE;
		why = err_str(ERR_AUDIT_UNAVAILABLE);
	}
	msg_response_error(&rs, r->id, err, why);
	conn_respond(c, &rs);
}

/*
 * Finished jobs are kept on a short free list with their buffers wiped but
 * still allocated, so the steady state makes no heap allocation per
 * request. Bounded: a burst of many in-flight jobs returns to malloc's
 * pool afterwards.
 */
#define OPS_FREE_JOBS_MAX 128

static struct job *ops_free_jobs[OPS_FREE_JOBS_MAX];
static size_t ops_n_free_jobs;

static void
job_bufs_init(struct job *job)
{
	ctx_copy_init(&job->ctx);
	ctx_copy_init(&job->new_ctx);
	buf_init(&job->in, MSG_MAX_CIPHERTEXT);
	buf_init(&job->datakey, PROV_MAX_OUT);
	buf_init(&job->stored, MSG_MAX_CIPHERTEXT);
	buf_init(&job->call.out, PROV_MAX_OUT);
}

/* job_bufs_init's opposite: wipes and frees every buffer. */
static void
job_bufs_done(struct job *job)
{
	ctx_copy_done(&job->ctx);
	ctx_copy_done(&job->new_ctx);
	buf_done(&job->in);
	buf_done(&job->datakey);
	buf_done(&job->stored);
	buf_done(&job->call.out);
}

static struct job *
job_new(struct conn *c, const struct request *r, const struct key *key,
    uint64_t t0_us)
{
	struct job *job;

	if (ops_n_free_jobs > 0)
		job = ops_free_jobs[--ops_n_free_jobs];
	else if ((job = calloc(1, sizeof(*job))) != NULL)
		job_bufs_init(job);
	else
		return NULL;
	job->conn = c;
	job->id = r->id;
	job->opcode = r->op;
	job->t0_us = t0_us;
	job->version = key->current;
	job->kr = keyring_ref(c->srv->kr);
	job->key = key;
	job->cached = 0;
	job->cache_hit = 0;
	TAILQ_INSERT_TAIL(&c->ops, job, entry);
	c->inflight++;
	return job;
}

static void
job_free(struct job *job)
{
	free(job->audit_path);
	job->audit_path = NULL;
	keyring_unref(job->kr);
	job->kr = NULL;
	job->kv = NULL;
	job->key = NULL;
	job->conn = NULL;
	/* The pairs point into the wiped mem buffers; only n is read. */
	job->ctx.c.present = 0;
	job->ctx.c.n = 0;
	job->new_ctx.c.present = 0;
	job->new_ctx.c.n = 0;
	if (ops_n_free_jobs < OPS_FREE_JOBS_MAX) {
		/* Wipe, keep the allocations. */
		buf_clear(&job->ctx.mem);
		buf_clear(&job->ctx.json);
		buf_clear(&job->new_ctx.mem);
		buf_clear(&job->new_ctx.json);
		buf_clear(&job->in);
		buf_clear(&job->datakey);
		buf_clear(&job->stored);
		buf_clear(&job->call.out);
		ops_free_jobs[ops_n_free_jobs++] = job;
		return;
	}
	job_bufs_done(job);
	free(job);
}

/* At exit: the free list's buffers are already wiped. */
void
ops_shutdown(void)
{
	while (ops_n_free_jobs > 0) {
		struct job *job = ops_free_jobs[--ops_n_free_jobs];

		job_bufs_done(job);
		free(job);
	}
}

/* The single exit of a job: audit, count, answer (when the connection is
 * still there), then wipe and free. */
static void
job_finish(struct job *job, struct response *rs)
{
	struct conn *c = job->conn;
	struct response fail;
	const char *why;

	if (c != NULL) {
		TAILQ_REMOVE(&c->ops, job, entry);
		job->conn = NULL;
		why = rs->error != 0 ? (rs->message.p != NULL ?
		    rs->message.p : err_str(rs->error)) : NULL;
		if (ops_record(c, job->opcode, (struct str){ job->key->name,
		    strlen(job->key->name) }, 1, job->version,
		    job->ctx.c.present ? job->ctx.json.data : NULL,
		    job->ctx.json.len, rs->error, job->t0_us, why,
		    job->cache_hit) != 0) {
			/* Fail closed: no plaintext, no ciphertext. */
			msg_response_error(&fail, job->id,
			    ERR_AUDIT_UNAVAILABLE,
			    err_str(ERR_AUDIT_UNAVAILABLE));
			rs = &fail;
		}
		conn_respond(c, rs);
		conn_op_finished(c);
	}
	job_free(job);
}

static void
job_fail(struct job *job, int err, const char *why)
{
	struct response rs;

	msg_response_error(&rs, job->id, err, why);
	job_finish(job, &rs);
}

/* Format the provider ciphertext in call.out as "vN:..." and answer. */
static void
job_answer_wrapped(struct job *job)
{
	struct response rs;

	if (stored_format(job->key->current, job->call.out.data,
	    job->call.out.len, &job->stored) != 0) {
		job_fail(job, ERR_INTERNAL, "provider ciphertext too large");
		return;
	}
	msg_response_init(&rs);
	rs.id = job->id;
	rs.ciphertext.p = (const char *)job->stored.data;
	rs.ciphertext.len = job->stored.len;
	if (job->opcode == OP_GENERATE) {
		rs.plaintext.p = (const char *)job->datakey.data;
		rs.plaintext.len = job->datakey.len;
	}
	job_finish(job, &rs);
}

static void
job_call_done(struct prov_call *call)
{
	struct job *job = call->arg;
	struct response rs;
	struct buf tmp;

	if (job->conn == NULL) {
		/* Nobody to answer: drop the result, wiped by job_free. */
		job_free(job);
		return;
	}
	if (call->err != 0) {
		job_fail(job, call->err, call->msg[0] != '\0' ? call->msg :
		    err_str(call->err));
		return;
	}
	switch (job->stage) {
	case STAGE_WRAP:
	case STAGE_REWRAP_WRAP:
	case STAGE_REWRAP_DIRECT:
		job_answer_wrapped(job);
		return;
	case STAGE_CONTEXT_HASH:
		msg_response_init(&rs);
		rs.id = job->id;
		rs.body.p = (const char *)job->call.out.data;
		rs.body.len = job->call.out.len;
		job_finish(job, &rs);
		return;
	case STAGE_UNWRAP:
		/* Not when a reload came between (the key may have changed):
		 * the keyring is replaced by every reload. */
		if (job->cached && !job->cache_hit &&
		    job->kr == job->conn->srv->kr)
			cache_put(job->conn->srv->cache, job->cache_gen,
			    &job->cache_id, job->call.out.data,
			    job->call.out.len, ops_now_us() / 1000,
			    job->cache_ttl_ms, job->cache_max_uses);
		msg_response_init(&rs);
		rs.id = job->id;
		rs.plaintext.p = (const char *)job->call.out.data;
		rs.plaintext.len = job->call.out.len;
		job_finish(job, &rs);
		return;
	case STAGE_REWRAP_UNWRAP:
		/* The unwrapped key moves to datakey (no copy left behind)
		 * and is wrapped again under the current version. */
		tmp = job->datakey;
		job->datakey = job->call.out;
		job->call.out = tmp;
		buf_clear(&job->call.out);
		job->stage = STAGE_REWRAP_WRAP;
		job_call(job, PROV_WRAP, key_version(job->key,
		    job->key->current), job->datakey.data, job->datakey.len,
		    job->new_ctx.c.present ? &job->new_ctx : &job->ctx);
		return;
	}
}

static void
job_call(struct job *job, enum prov_op pop, const struct key_version *kv,
    const uint8_t *in, size_t in_len, const struct ctx_copy *cc)
{
	struct prov_call *call = &job->call;

	if (kv == NULL) {
		job_fail(job, ERR_VERSION_NOT_ACTIVE, "current version has no "
		    "key id");
		return;
	}
	job->kv = kv;
	call->op = pop;
	call->in = in;
	call->in_len = in_len;
	call->ctx = &cc->c;
	call->ctx_json = cc->c.present ? cc->json.data : NULL;
	call->ctx_json_len = cc->c.present ? cc->json.len : 0;
	call->new_ctx = NULL;
	call->new_ctx_json = NULL;
	call->new_ctx_json_len = 0;
	call->audit_path = job->audit_path;
	call->err = 0;
	call->msg[0] = '\0';
	call->done = job_call_done;
	call->arg = job;
	/* Each may complete (and free job) before returning. */
	if (job->stage == STAGE_CONTEXT_HASH) {
		kv->prov->context_hash(kv->state, call);
		return;
	}
	if (job->stage == STAGE_REWRAP_DIRECT) {
		const struct ctx_copy *nc = job->new_ctx.c.present ?
		    &job->new_ctx : &job->ctx;
		const struct key_version *to = key_version(job->key,
		    job->key->current);

		call->new_ctx = &nc->c;
		call->new_ctx_json = nc->c.present ? nc->json.data : NULL;
		call->new_ctx_json_len = nc->c.present ? nc->json.len : 0;
		kv->prov->rewrap(kv->state, to->state, call);
		return;
	}
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
		conn_kill(c, "out of memory");
		return;
	}
	for (size_t i = 0; i < kr->n && !pol->admin; i++) {
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
		rs.socket.p = c->lst->name;
		rs.socket.len = strlen(c->lst->name);
		for (int op = 0; op < OP__COUNT; op++)
			if ((pol->admin && op_is_admin(op)) ||
			    (pol->allow & POLICY_BIT(op))) {
				rs.allow[rs.n_allow].p = op_name(op);
				rs.allow[rs.n_allow].len = strlen(op_name(op));
				rs.n_allow++;
			}
	}
	conn_respond(c, &rs);
	free(ki);
}

static void
ops_stats(struct conn *c, const struct request *r, uint64_t t0_us)
{
	struct server *s = c->srv;
	struct stats_state st;
	struct response rs;
	struct buf out;
	int64_t now = ops_now_s();
	int rc;

	st.decrypt_disabled = s->decrypt_disabled;
	st.disabled_reason = s->decrypt_disabled ? s->disabled_reason : NULL;
	st.uptime_s = (uint64_t)(now - s->started_s);
	buf_init(&out, FRAME_MAX_DEFAULT - 1024);
	if (r->format.p != NULL && str_eq(r->format, "prometheus"))
		rc = stats_prometheus(s->stats, &st, now, &out);
	else if (r->format.p == NULL || str_eq(r->format, "json"))
		rc = stats_json(s->stats, &st, now, &out);
	else {
		buf_done(&out);
		ops_reject(c, r, 0, ERR_BAD_REQUEST, "format must be json or "
		    "prometheus", t0_us);
		return;
	}
	if (rc != 0) {
		buf_done(&out);
		ops_reject(c, r, 0, rc == ERR_TOO_LARGE ? ERR_TOO_LARGE :
		    ERR_INTERNAL, "counters do not fit in one frame", t0_us);
		return;
	}
	(void)ops_record(c, OP_STATS, STR_NULL, 0, 0, NULL, 0, 0, t0_us, NULL,
	    0);
	msg_response_init(&rs);
	rs.id = r->id;
	rs.body.p = (const char *)out.data;
	rs.body.len = out.len;
	conn_respond(c, &rs);
	buf_done(&out);
}

static struct key_window *
ops_key_window(struct server *s, const char *name)
{
	struct key_window *kw;

	for (size_t i = 0; i < s->n_kw; i++)
		if (strcmp(s->kw[i].name, name) == 0)
			return &s->kw[i];
	kw = reallocarray(s->kw, s->n_kw + 1, sizeof(*kw));
	if (kw == NULL)
		return NULL;
	s->kw = kw;
	kw = &s->kw[s->n_kw];
	if ((kw->name = strdup(name)) == NULL)
		return NULL;
	window_init(&kw->w);
	s->n_kw++;
	return kw;
}

int
ops_disable_decrypt(struct server *s, const char *reason)
{
	int r = 0;

	/* Off in memory at once, whatever happens on disk: turning
	 * decryption off is the safe direction. */
	s->decrypt_disabled = 1;
	snprintf(s->disabled_reason, sizeof(s->disabled_reason), "%s", reason);
	/* Cached data keys would outlive the switch: gone now. */
	cache_flush(s->cache);
	if (state_write_disabled(s->cfg->state_dir, reason) != 0) {
		log_err("decryption disabled, but the switch could not be "
		    "written to %s (%m): it will not survive a restart",
		    s->cfg->state_dir);
		r = -1;
	}
	log_event(LOG_LEVEL_WARN, LOG_MSGID_DECRYPT_DISABLED,
	    "decryption disabled: %s", reason);
	return r;
}

int
ops_enable_decrypt(struct server *s)
{
	if (state_clear_disabled(s->cfg->state_dir) != 0) {
		log_err("cannot clear the decrypt kill switch in %s: %m",
		    s->cfg->state_dir);
		return -1;
	}
	s->decrypt_disabled = 0;
	s->disabled_reason[0] = '\0';
	log_info("decryption enabled");
	return 0;
}

/*
 * The decrypt breaker: one more decrypt of key k now. Returns 0 when it
 * may go ahead, or 1 when it would exceed a limit, in which case
 * decryption is now disabled (durably), the trip is audited and logged
 * with its MESSAGE_ID, and counted.
 */
static int
ops_breaker(struct conn *c, const struct key *k, const struct cfg_key *ck,
    uint64_t t0_us)
{
	struct server *s = c->srv;
	struct key_window *kw = NULL;
	int64_t now = ops_now_s();
	char reason[STATE_MAX_REASON];

	if (ck != NULL && ck->decrypt_limit != 0 &&
	    (kw = ops_key_window(s, k->name)) != NULL &&
	    window_would_exceed(window_sum(&kw->w, now, 60),
	    ck->decrypt_limit))
		snprintf(reason, sizeof(reason), "breaker: more than %u "
		    "decrypts of key %s in one minute", ck->decrypt_limit,
		    k->name);
	else if (s->cfg->decrypt_limit != 0 &&
	    window_would_exceed(window_sum(&s->breaker, now, 60),
	    s->cfg->decrypt_limit))
		snprintf(reason, sizeof(reason), "breaker: more than %u "
		    "decrypts in one minute", s->cfg->decrypt_limit);
	else {
		window_add(&s->breaker, now, 1);
		if (kw != NULL)
			window_add(&kw->w, now, 1);
		return 0;
	}
	log_event(LOG_LEVEL_ERR, LOG_MSGID_BREAKER_TRIP, "%s (uid %u pid %d "
	    "socket %s): decryption disabled until an operator enables it",
	    reason, (unsigned)c->peer.uid, (int)c->peer.pid, c->lst->name);
	stats_breaker_trip(s->stats);
	if (s->audit != NULL) {
		struct audit_entry e;

		memset(&e, 0, sizeof(e));
		e.op = "breaker_trip";
		e.key = k->name;
		e.socket = c->lst->name;
		e.has_peer = 1;
		e.pid = c->peer.pid;
		e.uid = c->peer.uid;
		e.gid = c->peer.gid;
		e.exe = c->peer.exe;
		e.result = "ok";
		e.detail = reason;
		e.duration_us = ops_clock_read_us() - t0_us;
		/* Written with the loop turn's batch (server_commit logs a
		 * batch that cannot be written). */
		if (server_audit(s, &e) != 0)
			log_err("audit log: cannot record the breaker trip");
	}
	/* Off in memory even when the disk refuses (logged there). */
	(void)ops_disable_decrypt(s, reason);
	return 1;
}

void
ops_dispatch(struct conn *c, const struct request *r)
{
	struct server *s = c->srv;
	const struct config *cfg = s->cfg;
	const struct sock_policy *pol = &c->lst->cfg->policy;
	uint64_t t0 = ops_now_us();
	const struct key *key;
	const struct key_version *kv;
	const struct cfg_key *ck;
	struct peer_id pid;
	const char *why;
	struct job *job;
	uint32_t version;
	int rc;

	peer_id(&c->peer, &pid);
	if ((rc = policy_check_peer(pol, &pid, &why)) != 0 ||
	    (rc = policy_check(pol, r->op, r->key, &why)) != 0) {
		ops_reject(c, r, 0, rc, why, t0);
		return;
	}
	switch (r->op) {
	case OP_HELLO:
	case OP_KEYS:
		ops_hello(c, r);
		return;
	case OP_STATS:
		ops_stats(c, r, t0);
		return;
	case OP_STATUS:
	case OP_DISABLE_DECRYPT:
	case OP_ENABLE_DECRYPT:
	case OP_RELOAD:
		admin_dispatch(c, r, t0);
		return;
	case OP_GENERATE:
	case OP_ENCRYPT:
	case OP_DECRYPT:
	case OP_REWRAP:
	case OP_CONTEXT_HASH:
		break;
	default:
		ops_reject(c, r, 0, ERR_UNKNOWN_OP, "op not served by this "
		    "version of kmsd", t0);
		return;
	}
	if ((key = keyring_find(s->kr, r->key)) == NULL) {
		ops_reject(c, r, 0, ERR_UNKNOWN_KEY, "no such key", t0);
		return;
	}
	if ((rc = policy_check_context(pol, r->op, &r->ctx, &why)) != 0 ||
	    (r->op == OP_REWRAP && r->new_ctx.present &&
	    (rc = policy_check_context(pol, r->op, &r->new_ctx, &why)) != 0)) {
		ops_reject(c, r, 1, rc, why, t0);
		return;
	}
	if ((r->op == OP_DECRYPT || r->op == OP_REWRAP) && s->decrypt_disabled) {
		ops_reject(c, r, 1, ERR_DECRYPT_DISABLED, s->disabled_reason,
		    t0);
		return;
	}
	if (r->op == OP_DECRYPT &&
	    ops_breaker(c, key, config_key(cfg, key->name), t0) != 0) {
		ops_reject(c, r, 1, ERR_DECRYPT_DISABLED, s->disabled_reason,
		    t0);
		return;
	}
	if ((job = job_new(c, r, key, t0)) == NULL) {
		ops_reject(c, r, 1, ERR_NOMEM, "out of memory", t0);
		return;
	}
	if (ctx_copy_set(&job->ctx, &r->ctx, cfg->ctx_style) != 0 ||
	    ctx_copy_set(&job->new_ctx, &r->new_ctx, cfg->ctx_style) != 0) {
		job_fail(job, ERR_BAD_REQUEST, "context is not valid UTF-8 or "
		    "repeats a key");
		return;
	}
	switch (r->op) {
	case OP_GENERATE:
		if (buf_reserve(&job->datakey, OPS_DATA_KEY_LEN) != 0 ||
		    rand_fill(job->datakey.data, OPS_DATA_KEY_LEN) != 0) {
			job_fail(job, ERR_INTERNAL, "random generator failed");
			return;
		}
		job->datakey.len = OPS_DATA_KEY_LEN;
		job->stage = STAGE_WRAP;
		job_call(job, PROV_WRAP, key_version(key, key->current),
		    job->datakey.data, job->datakey.len, &job->ctx);
		return;
	case OP_CONTEXT_HASH:
		kv = key_version(key, key->current);
		if (kv == NULL || kv->prov->context_hash == NULL) {
			job_fail(job, ERR_BAD_REQUEST, "this key's provider "
			    "keeps no audit hash (context_hash is for Vault "
			    "keys)");
			return;
		}
		if ((job->audit_path = strndup(r->audit_path.p,
		    r->audit_path.len)) == NULL) {
			job_fail(job, ERR_NOMEM, "out of memory");
			return;
		}
		job->stage = STAGE_CONTEXT_HASH;
		job_call(job, PROV_UNWRAP, kv, NULL, 0, &job->ctx);
		return;
	case OP_ENCRYPT:
		if (buf_append(&job->in, r->plaintext.p, r->plaintext.len) != 0) {
			job_fail(job, ERR_TOO_LARGE, "plaintext too large");
			return;
		}
		job->stage = STAGE_WRAP;
		job_call(job, PROV_WRAP, key_version(key, key->current),
		    job->in.data, job->in.len, &job->ctx);
		return;
	default:	/* decrypt, rewrap */
		break;
	}
	if (stored_parse(r->ciphertext.p, r->ciphertext.len, &version,
	    &job->in) != 0) {
		job->version = 0;
		job_fail(job, ERR_DECRYPTION_FAILED, "ciphertext is not a "
		    "\"vN:\" + base64 stored string");
		return;
	}
	job->version = version;
	if ((kv = key_version(key, version)) == NULL) {
		job_fail(job, ERR_VERSION_NOT_ACTIVE, "ciphertext names a key "
		    "version that is not configured");
		return;
	}
	job->stage = r->op == OP_DECRYPT ? STAGE_UNWRAP : STAGE_REWRAP_UNWRAP;
	if (r->op == OP_DECRYPT && s->cache != NULL &&
	    (ck = config_key(cfg, key->name)) != NULL && ck->cache_ttl_ms > 0) {
		job->cached = 1;
		job->cache_ttl_ms = ck->cache_ttl_ms;
		job->cache_max_uses = ck->cache_max_uses;
		job->cache_gen = cache_gen(s->cache);
		cache_id(s->cache, key->name, version, job->in.data,
		    job->in.len, job->ctx.c.present ? job->ctx.json.data :
		    NULL, job->ctx.json.len, &job->cache_id);
		if (cache_get(s->cache, &job->cache_id, ops_now_us() / 1000,
		    &job->call.out)) {
			/* Answered as the provider would have: audited and
			 * counted as a hit. */
			job->cache_hit = 1;
			job->kv = kv;
			job->call.err = 0;
			job->call.msg[0] = '\0';
			job->call.arg = job;
			job_call_done(&job->call);
			return;
		}
	}
	if (r->op == OP_REWRAP) {
		const struct key_version *to = key_version(key, key->current);

		/* Both versions in one KMS that can rewrap: let it, so the
		 * data key never leaves the KMS at all. */
		if (to != NULL && to->prov == kv->prov &&
		    kv->prov->rewrap != NULL)
			job->stage = STAGE_REWRAP_DIRECT;
	}
	job_call(job, PROV_UNWRAP, kv, job->in.data, job->in.len, &job->ctx);
}

void
ops_detach(struct conn *c)
{
	struct job *job;

	/* A provider still holds these calls; job_call_done frees them when
	 * they complete, without a connection to answer. */
	while ((job = TAILQ_FIRST(&c->ops)) != NULL) {
		TAILQ_REMOVE(&c->ops, job, entry);
		job->conn = NULL;
		if (job->kv != NULL && job->kv->prov->cancel != NULL)
			job->kv->prov->cancel(job->kv->state, &job->call);
	}
}
