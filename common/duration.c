/*
 * duration.c: the configuration's durations (see duration.h); kmsd's own
 * options and every provider section read them the same way.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"

int
duration_parse_ms(const char *s, unsigned long min_ms, unsigned long max_ms,
    unsigned *ret_ms)
{
	unsigned long v, mult;
	char *end;

	if (s == NULL || *s < '0' || *s > '9' || max_ms > UINT_MAX)
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "m") == 0)
		mult = 60000;
	else
		return -1;
	if (v > max_ms / mult || v * mult < min_ms)
		return -1;
	*ret_ms = (unsigned)(v * mult);
	return 0;
}
