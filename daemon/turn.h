/*
 * turn.h: whether the loop turn under way handled key material.
 *
 * After every turn that did, the main loop wipes the stack below its own
 * frame (main.c), where data keys and plaintexts spilled by code kmsd does
 * not control may remain. A turn that only answered hello, keys or stats,
 * accepted or closed connections, leaves nothing to wipe and skips it: on
 * a round trip of one hello, the 32 KiB wipe and the cache it evicts cost
 * more than the rest of kmsd's work.
 *
 * Marked: every request frame but a decoded hello, keys or stats
 * (conn.c), and every callback of the KMS clients (http.c, the providers)
 * and of the signals and timers in main.c. The metrics timer marks too,
 * so a path that should have marked and did not is wiped at the next
 * metrics interval at the latest.
 */
#ifndef KMSD_TURN_H
#define KMSD_TURN_H

extern int turn_secret;

/* This turn handled (or may have handled) key material. */
static inline void
turn_mark_secret(void)
{
	turn_secret = 1;
}

#endif
