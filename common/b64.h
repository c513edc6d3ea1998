/*
 * b64.h: base64 as kms_encrypted writes it.
 *
 * Strict: the standard alphabet, padding required, no whitespace, no bits
 * set in the unused low bits of the last quantum. Ruby's 60-column form
 * too. The coder is table-driven (b64.c says why not OpenSSL's); the unit
 * tests hold it to EVP_EncodeBlock / EVP_DecodeBlock.
 */
#ifndef KMSD_B64_H
#define KMSD_B64_H

#include <stddef.h>

#include "buf.h"

/* Strict base64 of p (Ruby's Base64.strict_encode64) appended to out. */
int b64_encode(struct buf *out, const void *p, size_t n);
/* Ruby's Base64.encode64: 60 characters a line, each line ending in "\n"
 * (including the last); no output at all for empty input. */
int b64_encode_lines(struct buf *out, const void *p, size_t n);
/* Strict decode appended to out: ERR_BAD_REQUEST on any deviation. */
int b64_decode(struct buf *out, const char *s, size_t n);
/* Decoded length of a valid strict base64 string of length n. */
size_t b64_decoded_len(const char *s, size_t n);

#endif
