/*
 * keyfile.c: small secret files in the state directory (local master keys,
 * the audit HMAC key): created once, atomically and durably, with mode
 * 0600 and random contents; afterwards refused unless they are regular
 * files of exactly the right size that nobody else can read. A FIFO or a
 * symbolic link planted in their place is refused, never followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "err.h"
#include "keyfile.h"

#define KEYFILE_MISSING 1	/* no key file yet */
#define KEYFILE_EXISTS 2	/* created by another process meanwhile */

/* Read an existing key file into key; KEYFILE_MISSING when there is none. */
static int
keyfile_load(const char *path, uint8_t *key, size_t len, char *err,
    size_t errlen)
{
	struct stat sb;
	size_t got = 0;
	uint8_t extra;
	ssize_t n;
	int fd, r = ERR_PROVIDER_UNAVAILABLE;

	/* O_NONBLOCK: a FIFO planted in place of the key must not hang us
	 * before fstat can refuse it. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return KEYFILE_MISSING;
		if (errno == ELOOP)
			err_printf(err, errlen, "%s is a symbolic link; "
			    "refusing it as a key file", path);
		else
			err_printf(err, errlen, "cannot open %s: %s", path,
			    strerror(errno));
		return ERR_PROVIDER_UNAVAILABLE;
	}
	if (fstat(fd, &sb) != 0) {
		err_printf(err, errlen, "cannot stat %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		err_printf(err, errlen, "%s is not a regular file", path);
		goto out;
	}
	if ((sb.st_mode & 077) != 0) {
		err_printf(err, errlen, "%s is accessible by group or others "
		    "(mode %04o); it must be 0600", path,
		    (unsigned)(sb.st_mode & 07777));
		goto out;
	}
	if ((size_t)sb.st_size != len) {
		err_printf(err, errlen, "%s is %lld bytes; a key file is "
		    "exactly %zu", path, (long long)sb.st_size, len);
		goto out;
	}
	while (got < len) {
		n = read(fd, key + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	/* The size was checked, but the file may have changed since. */
	do {
		n = read(fd, &extra, 1);
	} while (n < 0 && errno == EINTR);
	OPENSSL_cleanse(&extra, sizeof(extra));
	if (got != len || n != 0) {
		err_printf(err, errlen, "%s changed while being read or could "
		    "not be read", path);
		goto out;
	}
	r = 0;
out:
	if (r != 0)
		OPENSSL_cleanse(key, len);
	close(fd);
	return r;
}

int
keyfile_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Make the new file's directory entry durable too. */
int
keyfile_sync_dir(const char *dir)
{
	int fd, r;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

/* Create a new key file with a fresh random key; KEYFILE_EXISTS when another
 * process created it first. On failure no file is left behind: a short or
 * unsynced key file would be refused (or worse, used) on the next start. */
static int
keyfile_create(const char *dir, const char *path, uint8_t *key, size_t len, char *err,
    size_t errlen)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
	    O_NOCTTY, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return KEYFILE_EXISTS;
		err_printf(err, errlen, "cannot create %s: %s", path,
		    strerror(errno));
		return ERR_PROVIDER_UNAVAILABLE;
	}
	if (len > INT_MAX || RAND_bytes(key, (int)len) != 1) {
		ERR_clear_error();
		err_printf(err, errlen, "random generator failed creating %s",
		    path);
		goto fail;
	}
	/* 0600 exactly, whatever the umask left. */
	if (fchmod(fd, 0600) != 0 || keyfile_write_all(fd, key, len) ||
	    fsync(fd) != 0) {
		err_printf(err, errlen, "cannot write %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		err_printf(err, errlen, "cannot write %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	fd = -1;
	if (keyfile_sync_dir(dir) != 0) {
		err_printf(err, errlen, "cannot sync %s: %s", dir,
		    strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(path);
	OPENSSL_cleanse(key, len);
	return ERR_PROVIDER_UNAVAILABLE;
}

int
keyfile_get(const char *dir, const char *path, uint8_t *key, size_t len,
    char *err, size_t errlen)
{
	int r;

	/* Load, else create; if another process wins the creation race,
	 * load what it wrote. */
	r = keyfile_load(path, key, len, err, errlen);
	if (r == KEYFILE_MISSING) {
		r = keyfile_create(dir, path, key, len, err, errlen);
		if (r == KEYFILE_EXISTS)
			r = keyfile_load(path, key, len, err, errlen);
		if (r == KEYFILE_MISSING) {
			err_printf(err, errlen, "%s vanished while being "
			    "created", path);
			r = ERR_PROVIDER_UNAVAILABLE;
		}
	}
	return r;
}
