/*
 * state.h: what kmsd keeps in its state directory besides master keys:
 * the decrypt kill switch, which must survive restarts.
 */
#ifndef KMSD_STATE_H
#define KMSD_STATE_H

#include <stddef.h>

/* File in state_dir whose presence means decryption is disabled; it holds
 * the reason and when. */
#define STATE_DISABLED_FILE "decrypt-disabled"
/* Longest reason kept. */
#define STATE_MAX_REASON 256

/* 1 (disabled; reason copied into reason), 0 (enabled) or -1 (cannot
 * tell: the caller must treat that as disabled). */
int state_read_disabled(const char *dir, char *reason, size_t len);
/* Durably record "disabled because reason" before returning 0; -1 with
 * errno when that could not be made durable. */
int state_write_disabled(const char *dir, const char *reason);
/* Durably remove the flag. 0 or -1 (errno). */
int state_clear_disabled(const char *dir);

#endif
