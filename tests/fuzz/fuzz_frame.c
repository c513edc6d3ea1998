/*
 * fuzz_frame.c: the daemon's framing loop over a hostile byte stream that
 * arrives in arbitrary pieces.
 *
 * Input: one byte k, then k & 15 chunk sizes (cycled), then the stream.
 * The stream is fed through the loops daemon/conn.c runs (frames handled
 * in place in the read scratch buffer when nothing is buffered, else
 * bounded reads appended to an input buffer of CONN_IN_MAX): frame_parse,
 * and for each whole frame msg_decode_request (which runs frame_prescan)
 * and buf_consume; the first framing error ends the stream, as it closes
 * the connection. Each decode failure is answered the way conn_reject
 * answers it.
 *
 * Properties:
 * - the sequence of frames and their decode results, and how the stream
 *   ends, do not depend on how it was split;
 * - the loop never stalls with a full buffer and no frame;
 * - a body frame_prescan refuses is refused by the decoder as malformed
 *   and gets no id; a body frame_prescan accepts is one msgpack-c accepts
 *   (the pre-scan never hides a body msgpack-c would refuse, so it is the
 *   only gate between hostile bytes and msgpack-c's allocator);
 * - a decode failure has a reason, and its error answer encodes and
 *   decodes back to the same id and wire code.
 */
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "frame.h"
#include "fuzz.h"
#include "msg.h"

/* daemon/conn.c's read size and input cap. */
#define CONN_READ_CHUNK (16 * 1024)
#define CONN_IN_MAX (FRAME_HDR + FRAME_MAX_DEFAULT + CONN_READ_CHUNK)
#define MALFORMED "body is not one well-formed msgpack map"
/* Longest stream also fed one byte at a time. */
#define FRAME_BYTEWISE_MAX 1024

/* What a pass saw: a running hash of every frame's result, the frame
 * count and the way the stream ended. */
struct pass {
	uint64_t hash;
	size_t frames;
	int end;		/* FRAME_MORE or the framing error */
	size_t left;		/* bytes of an unfinished frame at the end */
};

static void
pass_mix(struct pass *ps, uint64_t v)
{
	/* FNV-1a over 64-bit words: enough to tell two sequences apart. */
	for (int i = 0; i < 8; i++) {
		ps->hash ^= (v >> (8 * i)) & 0xff;
		ps->hash *= 0x100000001b3ULL;
	}
}

static void
frame_check_answer(uint64_t id, int err, const char *why)
{
	struct response rs, back;
	struct buf out;
	const uint8_t *body;
	size_t blen;

	msg_response_init(&rs);
	rs.id = id;
	rs.error = err;
	rs.message.p = why;
	rs.message.len = strlen(why);
	buf_init(&out, 4096);
	FUZZ_CHECK(msg_encode_response(&out, &rs) == 0);
	FUZZ_CHECK(frame_parse(out.data, out.len, FRAME_MAX_DEFAULT, &body,
	    &blen) == FRAME_READY);
	FUZZ_CHECK(FRAME_HDR + blen == out.len);
	FUZZ_CHECK(msg_decode_response(body, blen, &back) == 0);
	FUZZ_CHECK(back.id == id);
	FUZZ_CHECK(back.error == (err == ERR_NOMEM ? ERR_INTERNAL : err));
	FUZZ_CHECK(back.message.len == rs.message.len &&
	    memcmp(back.message.p, why, rs.message.len) == 0);
	msg_response_done(&back);
	buf_done(&out);
}

/* One whole frame body, as conn_process handles it. */
static void
frame_one(struct pass *ps, size_t off, const uint8_t *body, size_t blen)
{
	struct request req;
	int pre, r;

	pre = frame_prescan(body, blen);
	FUZZ_CHECK(pre == 0 || pre == ERR_BAD_REQUEST);
	r = msg_decode_request(body, blen, &req);
	FUZZ_CHECK(r == 0 || r == ERR_BAD_REQUEST || r == ERR_TOO_LARGE ||
	    r == ERR_UNKNOWN_OP || r == ERR_NOMEM);
	FUZZ_CHECK(memchr(req.why, '\0', sizeof(req.why)) != NULL);
	if (pre != 0) {
		FUZZ_CHECK(r == ERR_BAD_REQUEST && !req.has_id);
		FUZZ_CHECK(strcmp(req.why, MALFORMED) == 0);
	} else if (r == ERR_BAD_REQUEST) {
		FUZZ_CHECK(strcmp(req.why, MALFORMED) != 0);
	}
	if (r == 0) {
		FUZZ_CHECK(req.has_id && req.id != 0);
		FUZZ_CHECK(req.op >= 0 && req.op < OP__COUNT);
	} else {
		FUZZ_CHECK(r == ERR_NOMEM || req.why[0] != '\0');
		FUZZ_CHECK(!req.has_id || req.id != 0);
		frame_check_answer(req.has_id ? req.id : 0, r,
		    req.why[0] != '\0' ? req.why : err_str(r));
	}
	ps->frames++;
	pass_mix(ps, off);
	pass_mix(ps, blen);
	pass_mix(ps, (uint64_t)(int64_t)r);
	pass_mix(ps, req.has_id ? req.id : 0);
	pass_mix(ps, r == 0 ? (uint64_t)req.op : 0);
}

/*
 * conn_frames: every whole frame at the front of data[0..len), each handled
 * as conn_frames handles it. Returns the bytes used; a framing error sets
 * ps->end and uses everything (the connection closes). off is where data
 * starts in the stream, for the record.
 */
static size_t
frame_all(struct pass *ps, const uint8_t *data, size_t len, size_t off)
{
	const uint8_t *body;
	size_t blen, used = 0;
	int r;

	for (;;) {
		r = frame_parse(data + used, len - used, FRAME_MAX_DEFAULT, &body,
		    &blen);
		FUZZ_CHECK(r == FRAME_MORE || r == FRAME_READY ||
		    r == ERR_TOO_LARGE || r == ERR_BAD_REQUEST);
		if (r == FRAME_MORE)
			return used;
		if (r < 0) {
			/* Answered, then the connection is closed. */
			frame_check_answer(0, r, "framing error");
			ps->end = r;
			return len;
		}
		FUZZ_CHECK(blen > 0 && blen <= FRAME_MAX_DEFAULT);
		FUZZ_CHECK(FRAME_HDR + blen <= len - used);
		frame_one(ps, off + used, body, blen);
		used += FRAME_HDR + blen;
	}
}

/*
 * Feed stream[0..n) in reads of sizes[i % nsizes] bytes (nsizes 0: reads
 * as large as conn.c makes them), through daemon/conn.c's two paths: with nothing buffered a
 * read goes to a scratch buffer, its whole frames are handled in place and
 * only the rest is kept; otherwise a read (bounded by the buffer's room)
 * is appended to the input buffer, whose whole frames are handled and
 * consumed. (conn.c's per-wake frame cap only defers frames to the next
 * turn; every frame complete now is handled here.)
 */
static void
frame_run(const uint8_t *stream, size_t n, const uint8_t *sizes,
    size_t nsizes, struct pass *ps)
{
	static uint8_t scratch[CONN_READ_CHUNK];
	struct buf in;
	size_t fed = 0, consumed = 0, turn = 0;

	memset(ps, 0, sizeof(*ps));
	ps->hash = 0xcbf29ce484222325ULL;
	ps->end = FRAME_MORE;
	buf_init(&in, CONN_IN_MAX);
	while (fed < n && ps->end == FRAME_MORE) {
		size_t want, room, used;

		if (nsizes == 0) {
			want = n;
		} else {
			uint8_t sz = sizes[turn++ % nsizes];

			want = sz == 0xff ? CONN_READ_CHUNK : sz + 1u;
		}
		if (want > n - fed)
			want = n - fed;
		if (in.len == 0) {
			if (want > sizeof(scratch))
				want = sizeof(scratch);
			memcpy(scratch, stream + fed, want);
			used = frame_all(ps, scratch, want, fed);
			if (ps->end == FRAME_MORE && used < want)
				FUZZ_CHECK(buf_append(&in, scratch + used,
				    want - used) == 0);
			consumed += used;
			fed += want;
			continue;
		}
		room = CONN_IN_MAX - in.len;
		if (room > CONN_READ_CHUNK)
			room = CONN_READ_CHUNK;
		/* Never full without a whole frame in it: a frame is at
		 * most FRAME_HDR + FRAME_MAX_DEFAULT bytes. */
		FUZZ_CHECK(room > 0);
		if (want > room)
			want = room;
		FUZZ_CHECK(buf_append(&in, stream + fed, want) == 0);
		fed += want;
		used = frame_all(ps, in.data, in.len, consumed);
		if (ps->end != FRAME_MORE)
			break;
		buf_consume(&in, used);
		consumed += used;
	}
	if (ps->end == FRAME_MORE) {
		FUZZ_CHECK(fed == n && consumed + in.len == n);
		ps->left = in.len;
	}
	buf_done(&in);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	const uint8_t *sizes, *stream;
	size_t nsizes, n;
	struct pass whole, split;

	sizes = fuzz_take(&in, fuzz_byte(&in) & 15, &nsizes);
	stream = fuzz_take(&in, in.n, &n);
	frame_run(stream, n, NULL, 0, &whole);
	/* One byte at a time is the harshest split; the chosen sizes are the
	 * fuzzer's own. Byte-wise only for short streams: each frame is
	 * moved to the buffer's front once per byte behind it. */
	if (n <= FRAME_BYTEWISE_MAX) {
		static const uint8_t one[1] = { 0 };

		frame_run(stream, n, one, 1, &split);
		FUZZ_CHECK(split.hash == whole.hash &&
		    split.frames == whole.frames && split.end == whole.end &&
		    split.left == whole.left);
	}
	if (nsizes > 0) {
		frame_run(stream, n, sizes, nsizes, &split);
		FUZZ_CHECK(split.hash == whole.hash &&
		    split.frames == whole.frames && split.end == whole.end &&
		    split.left == whole.left);
	}
	return 0;
}
