/*
 * gcp_crc32c.c: table-driven CRC32C (see gcp_crc32c.h).
 *
 * The inputs are a few kilobytes at most (a data key, a context, a
 * ciphertext), so a byte-at-a-time table is fast enough and simpler to
 * check than a hardware (SSE4.2) or slicing version. The table is built at
 * compile time from nothing but the polynomial, so there is no lazy
 * initialisation to race and no magic constant list to mistype.
 */
#include "gcp_crc32c.h"

/* Castagnoli's polynomial, bit-reflected. */
#define GCP_CRC32C_POLY 0x82F63B78u

#define GCP_CRC_B1(c) (((c) >> 1) ^ (((c) & 1u) ? GCP_CRC32C_POLY : 0u))
#define GCP_CRC_B2(c) GCP_CRC_B1(GCP_CRC_B1(c))
#define GCP_CRC_B4(c) GCP_CRC_B2(GCP_CRC_B2(c))
#define GCP_CRC_B8(c) GCP_CRC_B4(GCP_CRC_B4(c))
#define GCP_CRC_E(n) GCP_CRC_B8((uint32_t)(n))
#define GCP_CRC_R4(n) GCP_CRC_E(n), GCP_CRC_E((n) + 1), GCP_CRC_E((n) + 2), \
	GCP_CRC_E((n) + 3)
#define GCP_CRC_R16(n) GCP_CRC_R4(n), GCP_CRC_R4((n) + 4), \
	GCP_CRC_R4((n) + 8), GCP_CRC_R4((n) + 12)
#define GCP_CRC_R64(n) GCP_CRC_R16(n), GCP_CRC_R16((n) + 16), \
	GCP_CRC_R16((n) + 32), GCP_CRC_R16((n) + 48)

static const uint32_t gcp_crc32c_table[256] = {
	GCP_CRC_R64(0), GCP_CRC_R64(64), GCP_CRC_R64(128), GCP_CRC_R64(192)
};

uint32_t
gcp_crc32c_update(uint32_t crc, const void *p, size_t n)
{
	const uint8_t *b = p;

	crc = ~crc;
	for (size_t i = 0; i < n; i++)
		crc = (crc >> 8) ^ gcp_crc32c_table[(crc ^ b[i]) & 0xffu];
	return ~crc;
}

uint32_t
gcp_crc32c(const void *p, size_t n)
{
	return gcp_crc32c_update(0, p, n);
}
