/*
 * err.c: the only place wire error strings and internal codes meet.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

static const struct {
	int err;
	const char *code;
	const char *text;
} err_table[] = {
	{ ERR_OK, "ok", "success" },
	{ ERR_BAD_REQUEST, "bad_request", "malformed request" },
	{ ERR_TOO_LARGE, "too_large", "frame or field over the limit" },
	{ ERR_UNKNOWN_OP, "unknown_op", "unknown operation" },
	{ ERR_UNKNOWN_KEY, "unknown_key", "unknown key" },
	{ ERR_PERMISSION_DENIED, "permission_denied", "permission denied" },
	{ ERR_DECRYPTION_FAILED, "decryption_failed", "decryption failed" },
	{ ERR_VERSION_NOT_ACTIVE, "version_not_active", "version not active" },
	{ ERR_DECRYPT_DISABLED, "decrypt_disabled", "decryption is disabled" },
	{ ERR_AUDIT_UNAVAILABLE, "audit_unavailable", "audit log unavailable" },
	{ ERR_PROVIDER_UNAVAILABLE, "provider_unavailable", "provider unavailable" },
	{ ERR_PROVIDER_DENIED, "provider_denied", "provider denied the request" },
	{ ERR_THROTTLED, "throttled", "provider throttled the request" },
	{ ERR_BUSY, "busy", "server busy" },
	{ ERR_TIMEOUT, "timeout", "timed out" },
	{ ERR_INTERNAL, "internal", "internal error" },
	{ ERR_NOMEM, "internal", "out of memory" },
};

#define ERR_TABLE_LEN (sizeof(err_table) / sizeof(err_table[0]))

const char *
err_code(int err)
{
	for (size_t i = 0; i < ERR_TABLE_LEN; i++)
		if (err_table[i].err == err)
			return err_table[i].code;
	return "internal";
}

const char *
err_str(int err)
{
	for (size_t i = 0; i < ERR_TABLE_LEN; i++)
		if (err_table[i].err == err)
			return err_table[i].text;
	return "internal error";
}

int
err_from_code(const char *s, size_t len)
{
	/* ERR_NOMEM shares "internal" and is never produced from the wire. */
	for (size_t i = 1; i < ERR_TABLE_LEN; i++) {
		const char *c = err_table[i].code;
		if (err_table[i].err == ERR_NOMEM)
			continue;
		if (strlen(c) == len && memcmp(c, s, len) == 0)
			return err_table[i].err;
	}
	return ERR_INTERNAL;
}

void
err_printf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}
