/*
 * fuzz.h: what every fuzz target shares.
 *
 * Each fuzz_*.c defines LLVMFuzzerTestOneInput for one decoder of untrusted
 * bytes (DESIGN 6). The same source builds two ways (tests/fuzz/meson.build):
 *
 * - -Dfuzzing=true (clang, ./dev fuzz): linked with -fsanitize=fuzzer,
 *   which supplies main() and drives the target with mutated inputs;
 * - otherwise: linked with replay.c, whose main() runs every corpus file
 *   once and prints TAP, so meson test replays the seeds and every past
 *   crash as a regression test (under ASan/UBSan in ./dev test --sanitize).
 *
 * Targets check properties, not just "no crash": FUZZ_CHECK aborts with the
 * failed condition, which libFuzzer reports as a crash and saves the input.
 */
#ifndef KMSD_FUZZ_H
#define KMSD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional, once before the first input (libFuzzer calls it when the
 * target defines it; so does replay.c). */
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: property failed: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

/* A cursor over the input for targets that take several values from it. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

/* Next byte, 0 when the input is used up. */
static inline uint8_t
fuzz_byte(struct fuzz_in *in)
{
	uint8_t b;

	if (in->n == 0)
		return 0;
	b = *in->p++;
	in->n--;
	return b;
}

/* Next n bytes (fewer when the input is shorter); *ret_len says how many. */
static inline const uint8_t *
fuzz_take(struct fuzz_in *in, size_t n, size_t *ret_len)
{
	const uint8_t *p = in->p;

	if (n > in->n)
		n = in->n;
	in->p += n;
	in->n -= n;
	*ret_len = n;
	return p;
}

#endif
