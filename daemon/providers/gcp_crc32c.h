/*
 * gcp_crc32c.h: CRC32C (Castagnoli), the checksum Cloud KMS uses to catch
 * corruption of request and response bytes (PROVIDERS.md C2).
 *
 * Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF,
 * no length suffix: gcp_crc32c("123456789", 9) == 0xE3069283. No I/O.
 */
#ifndef KMSD_GCP_CRC32C_H
#define KMSD_GCP_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC32C of n bytes at p (p may be NULL when n is 0). */
uint32_t gcp_crc32c(const void *p, size_t n);

/* Continue a CRC over more bytes: gcp_crc32c_update(gcp_crc32c(a), b)
 * equals the CRC of a followed by b. Start from 0. */
uint32_t gcp_crc32c_update(uint32_t crc, const void *p, size_t n);

#endif
