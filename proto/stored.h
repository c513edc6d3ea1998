/*
 * stored.h: the stored ciphertext string, "v{N}:" + strict base64 of the
 * provider's ciphertext bytes (DESIGN 3.2), as kms_encrypted writes it.
 *
 * No I/O, no logging.
 */
#ifndef KMSD_STORED_H
#define KMSD_STORED_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Highest key version accepted; a bound so "v99999999999:" is simply bad. */
#define STORED_MAX_VERSION 1000000u

/* Read N from "vN:..." without decoding the rest. 0 or
 * ERR_DECRYPTION_FAILED (no prefix, N not a decimal in 1..max). */
int stored_version(const char *s, size_t n, uint32_t *ret_version);

/* Parse "vN:" + base64: sets *ret_version, appends the decoded bytes to
 * blob. ERR_DECRYPTION_FAILED when the prefix or the base64 is bad. */
int stored_parse(const char *s, size_t n, uint32_t *ret_version,
    struct buf *blob);

/* Append "v{version}:" + strict base64(blob) to out. */
int stored_format(uint32_t version, const uint8_t *blob, size_t n,
    struct buf *out);

#endif
