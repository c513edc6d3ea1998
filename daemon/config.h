/*
 * config.h: kmsd's INI configuration (DESIGN 3.4), parsed with libinih.
 *
 * Parsing is strict: an unknown section or option, a repeated option, a bad
 * value or a missing required option is an error naming file:line, so a
 * typo in a security policy never silently widens it. The result is a plain
 * immutable value; reload builds a new one and swaps it.
 */
#ifndef KMSD_CONFIG_H
#define KMSD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "context.h"
#include "policy.h"

/* Bounds on what one file may declare: far above real use, low enough
 * that a runaway generated config fails loudly instead of eating memory. */
#define CONFIG_MAX_KEYS 256
#define CONFIG_MAX_SOCKETS 32
#define CONFIG_MAX_VERSIONS 64
/* The admin socket's section name, reserved. */
#define CONFIG_ADMIN_NAME "admin"
/* Most peer_users / peer_groups / peer_units / context_require entries. */
#define CONFIG_MAX_LIST 64
/* Longest name of a key or socket section. */
#define CONFIG_MAX_NAME 64

#define CONFIG_DEFAULT_PATH "/etc/kmsd/kmsd.conf"

struct cfg_version {
	uint32_t version;
	char *key_id;
	int line;
};

/* A provider's section ([aws], [gcp], [vault]) kept as written: the
 * provider checks its own options (provider_ops.check_config), so config.c
 * needs no knowledge of them. */
#define CONFIG_MAX_SECTION_OPTS 32

struct cfg_opt {
	char *name;
	char *value;
	int line;
};

struct cfg_section {
	char *name;			/* NULL: absent */
	int line;
	size_t n;
	struct cfg_opt opts[CONFIG_MAX_SECTION_OPTS];
};

/* The provider sections config.c accepts. */
#define CONFIG_PROVIDER_SECTIONS { "aws", "gcp", "vault" }
#define CONFIG_N_PROVIDER_SECTIONS 3

struct cfg_key {
	char *name;
	uint32_t current;	/* version used to wrap */
	uint32_t decrypt_limit;	/* per minute; 0 = no per-key limit */
	uint32_t cache_ttl_ms;	/* data-key cache (cache.h); 0 = off */
	uint32_t cache_max_uses;	/* hits per entry; 0 = no limit */
	size_t n_versions;
	struct cfg_version versions[CONFIG_MAX_VERSIONS];
	int line;
};

struct cfg_socket {
	char *name;
	char *path;
	mode_t mode;
	gid_t group;		/* (gid_t)-1: leave the file's group alone */
	struct sock_policy policy;
	int line;
};

struct config {
	char *path;
	char *state_dir;
	char *audit_log;		/* NULL: no audit log */
	int audit_hmac;			/* audit_context = hmac */
	uint32_t decrypt_limit;		/* per minute, all keys; 0 = off */
	char *metrics_textfile;		/* NULL: none */
	unsigned metrics_interval_ms;
	enum ctx_style ctx_style;
	unsigned max_connections;	/* open client connections in all */
	unsigned frame_timeout_ms;	/* a started frame must complete */
	unsigned idle_timeout_ms;	/* a connection with nothing to do */
	struct cfg_section sections[CONFIG_N_PROVIDER_SECTIONS];
	size_t n_keys;
	struct cfg_key keys[CONFIG_MAX_KEYS];
	size_t n_sockets;		/* the admin socket, if any, is last */
	struct cfg_socket sockets[CONFIG_MAX_SOCKETS + 1];
};

/* Load and validate path. On failure *ret is untouched, err holds
 * "FILE:LINE: message" (or "FILE: message") and the result is -1. */
int config_load(const char *path, struct config **ret, char *err,
    size_t errlen);
void config_free(struct config *c);

/* A provider section, or NULL when the file has none. */
const struct cfg_section *config_section(const struct config *c,
    const char *name);
/* An option's value in a section (NULL section or option: NULL); *ret_line
 * (may be NULL) gets its line. */
const char *config_opt(const struct cfg_section *s, const char *name,
    int *ret_line);

/*
 * The path a file option names. "credential:NAME" reads a systemd
 * credential: $CREDENTIALS_DIRECTORY/NAME (LoadCredential= /
 * SetCredential=), so secrets need not sit in /etc. Anything else is a
 * path, used as given. 0, or -1 with a message in err.
 */
int config_file_path(const char *value, char *out, size_t outlen, char *err,
    size_t errlen);

const struct cfg_key *config_key(const struct config *c, const char *name);
const struct cfg_version *config_key_version(const struct cfg_key *k,
    uint32_t version);

#endif
