/*
 * state.c: the persisted decrypt kill switch.
 *
 * Disabling writes the flag file through a temporary file, fsync, rename
 * and a directory fsync, all before the admin call (or the breaker) lets
 * anyone know it happened: after a crash or restart decryption is still
 * off. Enabling unlinks it the same durable way. A flag file that cannot
 * be read counts as disabled (fail closed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "keyfile.h"
#include "state.h"

static int
state_path(char *out, size_t len, const char *dir, const char *name)
{
	int n = snprintf(out, len, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
state_read_disabled(const char *dir, char *reason, size_t len)
{
	char path[4096];
	ssize_t n;
	int fd;

	reason[0] = '\0';
	if (state_path(path, sizeof(path), dir, STATE_DISABLED_FILE) != 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	n = read(fd, reason, len - 1);
	close(fd);
	if (n < 0) {
		snprintf(reason, len, "(flag file unreadable)");
		return 1;
	}
	reason[n] = '\0';
	reason[strcspn(reason, "\n")] = '\0';
	return 1;
}

int
state_write_disabled(const char *dir, const char *reason)
{
	char path[4096], tmp[4096], line[STATE_MAX_REASON + 2];
	int fd, n, saved;

	if (state_path(path, sizeof(path), dir, STATE_DISABLED_FILE) != 0 ||
	    state_path(tmp, sizeof(tmp), dir, STATE_DISABLED_FILE ".tmp") != 0)
		return -1;
	n = snprintf(line, sizeof(line), "%.*s\n", STATE_MAX_REASON, reason);
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0)
		return -1;
	if (keyfile_write_all(fd, (const uint8_t *)line, (size_t)n) != 0 ||
	    fsync(fd) != 0) {
		saved = errno;
		close(fd);
		unlink(tmp);
		errno = saved;
		return -1;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	return keyfile_sync_dir(dir);
}

int
state_clear_disabled(const char *dir)
{
	char path[4096];

	if (state_path(path, sizeof(path), dir, STATE_DISABLED_FILE) != 0)
		return -1;
	if (unlink(path) != 0 && errno != ENOENT)
		return -1;
	return keyfile_sync_dir(dir);
}
