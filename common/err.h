/*
 * err.h: the one internal error enum of kmsd.
 *
 * Values are negative and never renumbered; 0 is success. Each value maps to
 * exactly one stable wire string (DESIGN 3.7) in err.c, in both directions.
 * ERR_NOMEM is internal only and goes on the wire as "internal".
 */
#ifndef KMSD_ERR_H
#define KMSD_ERR_H

#include <stddef.h>

enum err {
	ERR_OK = 0,
	ERR_BAD_REQUEST = -1,
	ERR_TOO_LARGE = -2,
	ERR_UNKNOWN_OP = -3,
	ERR_UNKNOWN_KEY = -4,
	ERR_PERMISSION_DENIED = -5,
	ERR_DECRYPTION_FAILED = -6,
	ERR_VERSION_NOT_ACTIVE = -7,
	ERR_DECRYPT_DISABLED = -8,
	ERR_AUDIT_UNAVAILABLE = -9,
	ERR_PROVIDER_UNAVAILABLE = -10,
	ERR_PROVIDER_DENIED = -11,
	ERR_THROTTLED = -12,
	ERR_BUSY = -13,
	ERR_TIMEOUT = -14,
	ERR_INTERNAL = -15,
	ERR_NOMEM = -16,
};

#define ERR_MIN ERR_NOMEM

/* Stable wire string for an error ("bad_request", ...); "internal" for
 * anything not in the table. */
const char *err_code(int err);

/* Inverse of err_code over the wire strings; ERR_INTERNAL when unknown. */
int err_from_code(const char *s, size_t len);

/* printf into a caller's message buffer; no-op when buf is NULL or len 0
 * (callers that do not want the message pass NULL). */
void err_printf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A short human description ("malformed request", ...). */
const char *err_str(int err);

#endif
