/*
 * table.h: lookup tables written by the preprocessor.
 *
 * TABLE_256(F) expands to F(0), F(1), ..., F(255), and TABLE_4096(F) to
 * F(0) ... F(4095): an initializer built from the rule F that defines each
 * entry, instead of hundreds of hand-typed values.
 */
#ifndef KMSD_TABLE_H
#define KMSD_TABLE_H

#define TABLE_4(F, i)		F(i), F((i) + 1), F((i) + 2), F((i) + 3)
#define TABLE_16(F, i)		TABLE_4(F, i), TABLE_4(F, (i) + 4), \
				TABLE_4(F, (i) + 8), TABLE_4(F, (i) + 12)
#define TABLE_64(F, i)		TABLE_16(F, i), TABLE_16(F, (i) + 16), \
				TABLE_16(F, (i) + 32), TABLE_16(F, (i) + 48)
#define TABLE_256_AT(F, i)	TABLE_64(F, i), TABLE_64(F, (i) + 64), \
				TABLE_64(F, (i) + 128), TABLE_64(F, (i) + 192)
#define TABLE_1024_AT(F, i)	TABLE_256_AT(F, i), \
				TABLE_256_AT(F, (i) + 256), \
				TABLE_256_AT(F, (i) + 512), \
				TABLE_256_AT(F, (i) + 768)

#define TABLE_256(F)		TABLE_256_AT(F, 0)
#define TABLE_4096(F)		TABLE_1024_AT(F, 0), TABLE_1024_AT(F, 1024), \
				TABLE_1024_AT(F, 2048), TABLE_1024_AT(F, 3072)

#endif
