/*
 * fuzz_response.c: msg_decode_response (libkmsclient's decoder of what a
 * server sends) on a hostile frame body.
 *
 * Properties:
 * - the result is 0, ERR_BAD_REQUEST or ERR_NOMEM; on failure nothing is
 *   left allocated (msg_response_done is then a no-op) and a reason is set;
 * - on success the counts stay in bounds and every str is set with its
 *   bytes inside the body;
 * - a decoded response re-encodes and decodes back to the same fields (an
 *   error response to the same id, code and message).
 */
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "frame.h"
#include "fuzz.h"
#include "msg.h"

static const uint8_t *body_p;
static size_t body_n;

static int
same_str(struct str a, struct str b)
{
	if (a.p == NULL || b.p == NULL)
		return a.p == b.p && a.len == b.len;
	return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

/* An unset str, or a slice of the body. */
static void
check_in_body(struct str s)
{
	const uint8_t *p = (const uint8_t *)s.p;

	if (s.p == NULL) {
		FUZZ_CHECK(s.len == 0);
		return;
	}
	FUZZ_CHECK(p >= body_p && p <= body_p + body_n);
	FUZZ_CHECK(s.len <= (size_t)(body_p + body_n - p));
}

static void
check_fields(const struct response *r)
{
	FUZZ_CHECK(r->n_allow <= OP__COUNT);
	FUZZ_CHECK(r->n_keys == 0 || r->keys != NULL);
	check_in_body(r->error_code);
	check_in_body(r->message);
	check_in_body(r->ciphertext);
	check_in_body(r->plaintext);
	check_in_body(r->version);
	check_in_body(r->socket);
	check_in_body(r->body);
	for (size_t i = 0; i < r->n_allow; i++) {
		FUZZ_CHECK(r->allow[i].p != NULL);
		check_in_body(r->allow[i]);
	}
	for (size_t i = 0; i < r->n_keys; i++) {
		FUZZ_CHECK(r->keys[i].name.p != NULL &&
		    r->keys[i].provider.p != NULL);
		check_in_body(r->keys[i].name);
		check_in_body(r->keys[i].provider);
	}
	if (r->error != 0) {
		FUZZ_CHECK(r->error < 0 && r->error >= ERR_MIN &&
		    r->error != ERR_NOMEM);
		FUZZ_CHECK(r->error_code.p != NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct response rs, back;
	struct buf enc;
	const uint8_t *body;
	size_t blen;
	int r;

	body_p = data;
	body_n = size;
	r = msg_decode_response(data, size, &rs);
	FUZZ_CHECK(r == 0 || r == ERR_BAD_REQUEST || r == ERR_NOMEM);
	FUZZ_CHECK(memchr(rs.why, '\0', sizeof(rs.why)) != NULL);
	if (r != 0) {
		FUZZ_CHECK(r == ERR_NOMEM || rs.why[0] != '\0');
		FUZZ_CHECK(rs.keys == NULL && !rs.keys_owned);
		return 0;
	}
	check_fields(&rs);

	/* Room for every field once more plus msgpack headers. */
	buf_init(&enc, 2 * size + 1024);
	FUZZ_CHECK(msg_encode_response(&enc, &rs) == 0);
	FUZZ_CHECK(frame_parse(enc.data, enc.len, SIZE_MAX, &body, &blen) ==
	    FRAME_READY);
	FUZZ_CHECK(FRAME_HDR + blen == enc.len);
	body_p = body;
	body_n = blen;
	FUZZ_CHECK(msg_decode_response(body, blen, &back) == 0);
	check_fields(&back);
	FUZZ_CHECK(back.id == rs.id && back.error == rs.error);
	if (rs.error != 0) {
		/* Only the id and the error travel with an error. */
		FUZZ_CHECK(back.error_code.len == strlen(err_code(rs.error)) &&
		    memcmp(back.error_code.p, err_code(rs.error),
		    back.error_code.len) == 0);
		if (rs.message.p != NULL)
			FUZZ_CHECK(same_str(back.message, rs.message));
		FUZZ_CHECK(back.ciphertext.p == NULL && back.keys == NULL &&
		    back.n_allow == 0 && back.body.p == NULL);
	} else {
		FUZZ_CHECK(same_str(back.ciphertext, rs.ciphertext));
		FUZZ_CHECK(same_str(back.plaintext, rs.plaintext));
		FUZZ_CHECK(same_str(back.version, rs.version));
		FUZZ_CHECK(back.protocol == rs.protocol);
		FUZZ_CHECK(same_str(back.socket, rs.socket));
		FUZZ_CHECK(same_str(back.body, rs.body));
		FUZZ_CHECK(back.n_allow == rs.n_allow);
		for (size_t i = 0; i < rs.n_allow; i++)
			FUZZ_CHECK(same_str(back.allow[i], rs.allow[i]));
		FUZZ_CHECK((back.keys == NULL) == (rs.keys == NULL));
		FUZZ_CHECK(back.n_keys == rs.n_keys);
		FUZZ_CHECK(rs.n_keys == 0 ||
		    (rs.keys != NULL && back.keys != NULL));
		for (size_t i = 0; i < rs.n_keys; i++) {
			FUZZ_CHECK(same_str(back.keys[i].name,
			    rs.keys[i].name));
			FUZZ_CHECK(same_str(back.keys[i].provider,
			    rs.keys[i].provider));
			FUZZ_CHECK(back.keys[i].version == rs.keys[i].version);
		}
	}
	msg_response_done(&back);
	msg_response_done(&rs);
	buf_done(&enc);
	return 0;
}
