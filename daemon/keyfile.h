/*
 * keyfile.h: secret files of a fixed size in the state directory.
 */
#ifndef KMSD_KEYFILE_H
#define KMSD_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

/* Load path into key (len bytes), creating it with random bytes, mode
 * 0600, durably, when it does not exist. 0, or an ERR_* with a message
 * (never the key) in err. */
int keyfile_get(const char *dir, const char *path, uint8_t *key, size_t len,
    char *err, size_t errlen);
/* write(2) all of p; 0 or -1 (errno). */
int keyfile_write_all(int fd, const uint8_t *p, size_t n);
/* fsync a directory so a new or renamed entry in it is durable. */
int keyfile_sync_dir(const char *dir);

#endif
