/*
 * keys.h: the keyring, configured keys bound to their providers.
 *
 * Built from a config in one go (every key version opened with its
 * provider) so a reload either gets a whole new keyring or keeps the old
 * one. Reference counted: an operation in flight holds the keyring it
 * started with, so a reload never pulls a provider from under it.
 */
#ifndef KMSD_KEYS_H
#define KMSD_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "provider.h"

struct key_version {
	uint32_t version;
	char *key_id;
	const struct provider_ops *prov;
	void *state;
};

struct key {
	char *name;
	uint32_t current;
	size_t n;
	struct key_version *v;
};

struct keyring {
	unsigned refs;
	size_t n;
	struct key *keys;
};

/* Open every key version of cfg. 0, or -1 with "[key NAME] ...: reason"
 * in err. */
int keyring_open(const struct config *cfg, const struct prov_env *env,
    struct keyring **ret, char *err, size_t errlen);
struct keyring *keyring_ref(struct keyring *kr);
void keyring_unref(struct keyring *kr);

const struct key *keyring_find(const struct keyring *kr, struct str name);
const struct key_version *key_version(const struct key *k, uint32_t version);

#endif
