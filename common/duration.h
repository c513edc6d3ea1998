/*
 * duration.h: the configuration's durations: "10" or "10s" seconds,
 * "500ms", "5m".
 */
#ifndef KMSD_DURATION_H
#define KMSD_DURATION_H

/* s as milliseconds within [min_ms, max_ms] into *ret_ms: 0, or -1 when
 * it is not a duration or out of the range. */
int duration_parse_ms(const char *s, unsigned long min_ms,
    unsigned long max_ms, unsigned *ret_ms);

#endif
