/*
 * turn.c: the flag of turn.h, read and cleared by the main loop.
 */
#include "turn.h"

/* The start (config, key files) counts as a turn that handled keys. */
int turn_secret = 1;
