/*
 * frame.h: framing of the kmsd wire protocol and the bounded pre-scan.
 *
 * A frame is a 4-byte big-endian body length followed by the body, one
 * msgpack map. frame_parse decides from the header alone whether a frame is
 * acceptable, so an oversized frame is refused before its body is buffered.
 * frame_prescan walks a body without allocating and checks that every
 * declared container count and string length fits in the bytes actually
 * present, that nesting stays shallow, and that exactly one object fills the
 * body; only then may msgpack-c (which reserves memory for declared sizes)
 * see the bytes.
 *
 * No I/O, no allocation, no logging.
 */
#ifndef KMSD_FRAME_H
#define KMSD_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Length prefix size. */
#define FRAME_HDR 4
/* Default largest body: a request carries at most a 4 KiB plaintext plus a
 * context and names; 64 KiB leaves room without letting one client pin much
 * memory. */
#define FRAME_MAX_DEFAULT (64 * 1024)
/* Deepest container nesting in a valid message is 3 (request map ->
 * context map -> string; response map -> keys array -> key map). */
#define FRAME_MAX_DEPTH 4

enum frame_status {
	FRAME_MORE = 0,		/* need more bytes */
	FRAME_READY = 1,	/* a whole frame is present */
};

/*
 * Look at the front of p[0..len). Returns FRAME_READY and sets *body and
 * *body_len when a whole frame is there (it occupies FRAME_HDR + *body_len
 * bytes), FRAME_MORE when more bytes are needed, ERR_TOO_LARGE when the
 * declared length exceeds max, ERR_BAD_REQUEST when it is zero.
 */
int frame_parse(const uint8_t *p, size_t len, size_t max,
    const uint8_t **body, size_t *body_len);

/* Write the 4-byte header for a body of len bytes. */
void frame_put_header(uint8_t hdr[FRAME_HDR], uint32_t len);

/* 0 when body is exactly one well-bounded msgpack object whose top level is
 * a map; ERR_BAD_REQUEST otherwise. */
int frame_prescan(const uint8_t *body, size_t len);

#endif
