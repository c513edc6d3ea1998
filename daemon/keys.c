/*
 * keys.c: build, share and release the keyring (see keys.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "keys.h"

static void
keyring_free(struct keyring *kr)
{
	for (size_t i = 0; i < kr->n; i++) {
		struct key *k = &kr->keys[i];

		for (size_t j = 0; j < k->n; j++) {
			if (k->v[j].prov != NULL && k->v[j].state != NULL)
				k->v[j].prov->close(k->v[j].state);
			free(k->v[j].key_id);
		}
		free(k->v);
		free(k->name);
	}
	free(kr->keys);
	free(kr);
}

int
keyring_open(const struct config *cfg, const struct prov_env *env,
    struct keyring **ret, char *err, size_t errlen)
{
	struct keyring *kr;
	char perr[256];

	if (provider_check_config(cfg, err, errlen) != 0)
		return -1;
	if ((kr = calloc(1, sizeof(*kr))) == NULL ||
	    (kr->keys = calloc(cfg->n_keys, sizeof(*kr->keys))) == NULL) {
		free(kr);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	kr->refs = 1;
	for (size_t i = 0; i < cfg->n_keys; i++) {
		const struct cfg_key *ck = &cfg->keys[i];
		struct key *k = &kr->keys[i];

		kr->n++;
		k->current = ck->current;
		if ((k->name = strdup(ck->name)) == NULL ||
		    (k->v = calloc(ck->n_versions, sizeof(*k->v))) == NULL)
			goto nomem;
		for (size_t j = 0; j < ck->n_versions; j++) {
			const struct cfg_version *cv = &ck->versions[j];
			struct key_version *v = &k->v[j];

			k->n++;
			v->version = cv->version;
			if ((v->key_id = strdup(cv->key_id)) == NULL)
				goto nomem;
			if ((v->prov = provider_find(cv->key_id)) == NULL) {
				snprintf(err, errlen, "%s:%d: [key %s] version "
				    "%u: no provider for key id '%s' in this "
				    "build", cfg->path, cv->line, ck->name,
				    cv->version, cv->key_id);
				keyring_free(kr);
				return -1;
			}
			perr[0] = '\0';
			if (v->prov->open(cv->key_id, env, &v->state, perr,
			    sizeof(perr)) != 0) {
				v->state = NULL;
				snprintf(err, errlen, "%s:%d: [key %s] version "
				    "%u (%s): %s", cfg->path, cv->line,
				    ck->name, cv->version, v->prov->name, perr);
				keyring_free(kr);
				return -1;
			}
		}
	}
	*ret = kr;
	return 0;
nomem:
	keyring_free(kr);
	snprintf(err, errlen, "out of memory");
	return -1;
}

struct keyring *
keyring_ref(struct keyring *kr)
{
	kr->refs++;
	return kr;
}

void
keyring_unref(struct keyring *kr)
{
	if (kr != NULL && --kr->refs == 0)
		keyring_free(kr);
}

const struct key *
keyring_find(const struct keyring *kr, struct str name)
{
	for (size_t i = 0; i < kr->n; i++)
		if (str_eq(name, kr->keys[i].name))
			return &kr->keys[i];
	return NULL;
}

const struct key_version *
key_version(const struct key *k, uint32_t version)
{
	for (size_t i = 0; i < k->n; i++)
		if (k->v[i].version == version)
			return &k->v[i];
	return NULL;
}
