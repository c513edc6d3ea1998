/*
 * frame.c: the length prefix and the bounded pre-scan (see frame.h).
 *
 * Invariant kept for msg.c: when frame_prescan returns 0, the body is one
 * msgpack map, nesting is at most FRAME_MAX_DEPTH, and the sum of the element
 * counts every container declared is at most the body length. msgpack-c
 * reserves memory for declared counts before it reads the elements, so this
 * bounds what it can allocate to a small multiple of the frame size instead
 * of what a hostile header claims (three nested array32 headers in 15 bytes
 * made it reserve 12 GB).
 *
 * Nothing here allocates; the scan is iterative with a fixed stack.
 */
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "frame.h"

int
frame_parse(const uint8_t *p, size_t len, size_t max,
    const uint8_t **body, size_t *body_len)
{
	uint32_t n;

	if (len < FRAME_HDR)
		return FRAME_MORE;
	n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
	/* Decided from the header alone, before any of the body is kept. */
	if (n > max)
		return ERR_TOO_LARGE;
	if (n == 0)
		return ERR_BAD_REQUEST;
	if (len - FRAME_HDR < n)
		return FRAME_MORE;
	*body = p + FRAME_HDR;
	*body_len = n;
	return FRAME_READY;
}

void
frame_put_header(uint8_t hdr[FRAME_HDR], uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}

/* Big-endian unsigned of w bytes at p (w <= 4). */
static uint32_t
frame_be(const uint8_t *p, size_t w)
{
	uint32_t v = 0;

	for (size_t i = 0; i < w; i++)
		v = v << 8 | p[i];
	return v;
}

/* What the head of one msgpack object says about it. */
struct frame_obj {
	size_t hdr;		/* bytes of type byte and length/count field */
	uint64_t data;		/* payload bytes after the head */
	uint64_t count;		/* child elements (a map's count doubled) */
	int container;		/* array or map, even when empty */
};

/*
 * Read the head of the object at p[0] with `left` (>= 1) bytes available.
 * ERR_BAD_REQUEST for the never-used byte 0xc1 or a head that is cut off.
 */
static inline int
frame_head(const uint8_t *p, size_t left, struct frame_obj *o)
{
	uint8_t t = p[0];
	size_t w = 0;		/* width of the length/count field */
	int kind = 0;		/* 1 payload, 2 array, 3 map */
	uint64_t extra = 0;	/* ext: the type byte after the length */

	o->hdr = 1;
	o->data = 0;
	o->count = 0;
	o->container = 0;
	/* Most of a request is fixstr and fixint: tested first. */
	if ((t & 0xe0) == 0xa0) {		/* fixstr */
		o->data = t & 0x1f;
		return 0;
	}
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
		return 0;
	if (t <= 0x8f) {			/* fixmap */
		o->count = 2u * (t & 0x0f);
		o->container = 1;
		return 0;
	}
	if (t <= 0x9f) {			/* fixarray */
		o->count = t & 0x0f;
		o->container = 1;
		return 0;
	}
	switch (t) {
	case 0xc4: w = 1; kind = 1; break;		/* bin8 */
	case 0xc5: w = 2; kind = 1; break;		/* bin16 */
	case 0xc6: w = 4; kind = 1; break;		/* bin32 */
	case 0xc7: w = 1; kind = 1; extra = 1; break;	/* ext8 */
	case 0xc8: w = 2; kind = 1; extra = 1; break;	/* ext16 */
	case 0xc9: w = 4; kind = 1; extra = 1; break;	/* ext32 */
	case 0xca: o->data = 4; return 0;		/* float32 */
	case 0xcb: o->data = 8; return 0;		/* float64 */
	case 0xcc: case 0xd0: o->data = 1; return 0;	/* (u)int8 */
	case 0xcd: case 0xd1: o->data = 2; return 0;
	case 0xce: case 0xd2: o->data = 4; return 0;
	case 0xcf: case 0xd3: o->data = 8; return 0;
	case 0xd4: o->data = 1 + 1; return 0;		/* fixext1 */
	case 0xd5: o->data = 1 + 2; return 0;
	case 0xd6: o->data = 1 + 4; return 0;
	case 0xd7: o->data = 1 + 8; return 0;
	case 0xd8: o->data = 1 + 16; return 0;
	case 0xd9: w = 1; kind = 1; break;		/* str8 */
	case 0xda: w = 2; kind = 1; break;		/* str16 */
	case 0xdb: w = 4; kind = 1; break;		/* str32 */
	case 0xdc: w = 2; kind = 2; break;		/* array16 */
	case 0xdd: w = 4; kind = 2; break;		/* array32 */
	case 0xde: w = 2; kind = 3; break;		/* map16 */
	case 0xdf: w = 4; kind = 3; break;		/* map32 */
	default:
		/* 0xc1: never used by msgpack. */
		return ERR_BAD_REQUEST;
	}
	if (left < 1 + w)
		return ERR_BAD_REQUEST;
	o->hdr = 1 + w;
	if (kind == 1) {
		o->data = frame_be(p + 1, w) + extra;
	} else {
		o->count = frame_be(p + 1, w);
		if (kind == 3)
			o->count *= 2;
		o->container = 1;
	}
	return 0;
}

/* 1 when the type byte starts a map (fixmap, map16, map32). */
static int
frame_is_map(uint8_t t)
{
	return (t & 0xf0) == 0x80 || t == 0xde || t == 0xdf;
}

int
frame_prescan(const uint8_t *body, size_t len)
{
	/* Elements still owed by each open container, innermost last. */
	uint64_t owed[FRAME_MAX_DEPTH];
	/* Sum of owed[]: each owed element needs at least one more byte. */
	uint64_t pending = 0;
	size_t depth = 0, off = 0;

	if (body == NULL || len == 0 || !frame_is_map(body[0]))
		return ERR_BAD_REQUEST;
	do {
		struct frame_obj o;
		size_t left = len - off;

		if (left == 0)
			return ERR_BAD_REQUEST;
		if (frame_head(body + off, left, &o) != 0)
			return ERR_BAD_REQUEST;
		if (o.data > left - o.hdr)
			return ERR_BAD_REQUEST;
		off += o.hdr + (size_t)o.data;
		left = len - off;
		/* This object was one of its parent's owed elements. */
		if (depth > 0) {
			owed[depth - 1]--;
			pending--;
		}
		if (o.container) {
			if (depth == FRAME_MAX_DEPTH)
				return ERR_BAD_REQUEST;
			/* Checking the sum, not each count alone, keeps nested
			 * headers from each claiming the same bytes. */
			if (o.count > left || pending + o.count > left)
				return ERR_BAD_REQUEST;
			owed[depth++] = o.count;
			pending += o.count;
		}
		/* Close every container that has all its elements. */
		while (depth > 0 && owed[depth - 1] == 0)
			depth--;
	} while (depth > 0);
	/* Exactly one object: nothing may follow it. */
	return off == len ? 0 : ERR_BAD_REQUEST;
}
