/*
 * fuzz_request.c: msg_decode_request on a hostile frame body.
 *
 * Properties:
 * - the result is one of the documented codes, a failure has a reason and
 *   never an id of 0;
 * - a request that decodes re-encodes, and the re-encoded frame decodes to
 *   the same fields (every str compared byte for byte, contexts pair for
 *   pair in order); encoding that again gives the same bytes;
 * - every decoded context is valid (context_check) and has canonical JSON
 *   in both styles, as the daemon computes next.
 */
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "frame.h"
#include "fuzz.h"
#include "msg.h"

static int
same_str(struct str a, struct str b)
{
	if (a.p == NULL || b.p == NULL)
		return a.p == b.p && a.len == b.len;
	return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

static int
same_ctx(const struct context *a, const struct context *b)
{
	if (a->present != b->present || a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (!same_str(a->pairs[i].k, b->pairs[i].k) ||
		    !same_str(a->pairs[i].v, b->pairs[i].v))
			return 0;
	return 1;
}

static void
check_ctx(const struct context *c)
{
	struct buf json;

	FUZZ_CHECK(c->n <= CONTEXT_MAX_PAIRS);
	FUZZ_CHECK(c->present || c->n == 0);
	FUZZ_CHECK(context_check(c) == 0);
	/* daemon/ops.c's bound: 6 bytes a source byte, plus the braces. */
	buf_init(&json, 6 * FRAME_MAX_DEFAULT + 2);
	FUZZ_CHECK(context_json(c, CTX_ACTIVESUPPORT, &json) == 0);
	FUZZ_CHECK(!c->present || json.len >= 2);
	buf_clear(&json);
	FUZZ_CHECK(context_json(c, CTX_PLAIN, &json) == 0);
	buf_done(&json);
}

/* Encode r as a whole frame into out and decode it into back. */
static void
reencode(const struct request *r, struct buf *out, struct request *back)
{
	const uint8_t *body;
	size_t blen;

	FUZZ_CHECK(msg_encode_request(out, r) == 0);
	FUZZ_CHECK(frame_parse(out->data, out->len, SIZE_MAX, &body, &blen) ==
	    FRAME_READY);
	FUZZ_CHECK(FRAME_HDR + blen == out->len);
	FUZZ_CHECK(msg_decode_request(body, blen, back) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The daemon's way: one decoder reused across every input. */
	static struct msg_dec *dec;
	struct request req, back;
	struct buf enc, enc2;
	int r, r2;

	if (dec == NULL)
		FUZZ_CHECK((dec = msg_dec_new()) != NULL);
	r2 = msg_decode_request_with(dec, data, size, &back);
	r = msg_decode_request(data, size, &req);
	/* ... decodes every input as a fresh one does. */
	FUZZ_CHECK(r2 == r || r == ERR_NOMEM || r2 == ERR_NOMEM);
	FUZZ_CHECK(back.has_id == req.has_id && back.id == req.id);
	FUZZ_CHECK(strcmp(back.why, req.why) == 0 || r == ERR_NOMEM ||
	    r2 == ERR_NOMEM);
	FUZZ_CHECK(r == 0 || r == ERR_BAD_REQUEST || r == ERR_TOO_LARGE ||
	    r == ERR_UNKNOWN_OP || r == ERR_NOMEM);
	FUZZ_CHECK(memchr(req.why, '\0', sizeof(req.why)) != NULL);
	FUZZ_CHECK(!req.has_id || req.id != 0);
	if (r != 0) {
		FUZZ_CHECK(r == ERR_NOMEM || req.why[0] != '\0');
		return 0;
	}
	FUZZ_CHECK(req.has_id && req.op >= 0 && req.op < OP__COUNT);
	check_ctx(&req.ctx);
	check_ctx(&req.new_ctx);
	FUZZ_CHECK(req.key.p == NULL ||
	    (req.key.len >= 1 && req.key.len <= MSG_MAX_KEY_NAME));
	FUZZ_CHECK(req.plaintext.len <= MSG_MAX_PLAINTEXT);
	FUZZ_CHECK(req.ciphertext.len <= MSG_MAX_CIPHERTEXT);

	/* Minimal msgpack forms never take more room than the input's, and
	 * fields the encoder drops (unknown, nil contexts) only shrink it;
	 * the slack covers the header and an id widened to 64 bits. */
	buf_init(&enc, size + 64);
	buf_init(&enc2, size + 64);
	reencode(&req, &enc, &back);
	FUZZ_CHECK(back.id == req.id && back.op == req.op);
	FUZZ_CHECK(same_str(back.key, req.key));
	FUZZ_CHECK(same_ctx(&back.ctx, &req.ctx));
	FUZZ_CHECK(same_ctx(&back.new_ctx, &req.new_ctx));
	FUZZ_CHECK(same_str(back.plaintext, req.plaintext));
	FUZZ_CHECK(same_str(back.ciphertext, req.ciphertext));
	FUZZ_CHECK(same_str(back.reason, req.reason));
	FUZZ_CHECK(same_str(back.audit_path, req.audit_path));
	FUZZ_CHECK(same_str(back.format, req.format));
	FUZZ_CHECK(msg_encode_request(&enc2, &back) == 0);
	FUZZ_CHECK(enc2.len == enc.len &&
	    memcmp(enc2.data, enc.data, enc.len) == 0);
	buf_done(&enc2);
	buf_done(&enc);
	return 0;
}
