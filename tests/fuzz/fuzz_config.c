/*
 * fuzz_config.c: config_load on a file holding the fuzzer's bytes, then
 * what the daemon does next with a loaded config (provider checks, key and
 * socket lookups, the policy decisions each socket will make).
 *
 * The file is a memfd read through /proc/self/fd, so no input touches the
 * disk. KMS_KEY_ID and CREDENTIALS_DIRECTORY are cleared so the result
 * depends on the bytes alone.
 *
 * Properties:
 * - failure: -1, nothing returned, a message naming the file;
 * - success: at least one key and one socket; every key has a key_id for
 *   its current version and versions are distinct; every socket has a
 *   path (distinct) and an allow list; lookups by name find each key and
 *   section; policy_check gives a documented answer for every op.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "fuzz.h"
#include "op.h"
#include "policy.h"
#include "provider.h"

static int memfd = -1;
static char path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	unsetenv("KMS_KEY_ID");
	unsetenv("CREDENTIALS_DIRECTORY");
	FUZZ_CHECK((memfd = memfd_create("kmsd-fuzz-config", MFD_CLOEXEC)) >= 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	return 0;
}

/* Peers as the kernel reports them: root, a user in two groups under a
 * unit, and one with no unit. */
static const gid_t peer_groups[] = { 27, 1001 };
static const struct peer_id peers[] = {
	{ 1, 0, 0, 0, NULL, NULL },
	{ 2, 1000, 1000, 2, peer_groups, "app.service" },
	{ 3, 65534, 65534, 0, NULL, NULL },
};

static void
check_config(const struct config *c)
{
	char err[512];

	FUZZ_CHECK(c->n_keys >= 1 && c->n_keys <= CONFIG_MAX_KEYS);
	FUZZ_CHECK(c->n_sockets >= 1 && c->n_sockets <= CONFIG_MAX_SOCKETS + 1);
	FUZZ_CHECK(c->state_dir != NULL);
	for (size_t i = 0; i < c->n_keys; i++) {
		const struct cfg_key *k = &c->keys[i];
		const struct cfg_version *cur;

		FUZZ_CHECK(config_key(c, k->name) == k);
		FUZZ_CHECK((cur = config_key_version(k, k->current)) != NULL);
		FUZZ_CHECK(cur->key_id != NULL);
		for (size_t j = 0; j < k->n_versions; j++) {
			FUZZ_CHECK(k->versions[j].key_id != NULL);
			FUZZ_CHECK(config_key_version(k,
			    k->versions[j].version) == &k->versions[j]);
			/* Which provider serves it; none is fine here (one
			 * not compiled in), a crash is not. */
			(void)provider_find(k->versions[j].key_id);
		}
	}
	for (size_t i = 0; i < c->n_sockets; i++) {
		const struct cfg_socket *s = &c->sockets[i];

		FUZZ_CHECK(s->name != NULL && s->path != NULL);
		FUZZ_CHECK(s->policy.allow != 0 || s->policy.admin);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(c->sockets[j].path, s->path) != 0);
		for (size_t j = 0; j < sizeof(peers) / sizeof(peers[0]); j++) {
			const char *why = NULL;
			int r = policy_check_peer(&s->policy, &peers[j], &why);

			FUZZ_CHECK(r == 0 || (r == ERR_PERMISSION_DENIED &&
			    why != NULL));
		}
		for (int op = 0; op < OP__COUNT; op++) {
			for (size_t j = 0; j <= c->n_keys; j++) {
				const char *why = NULL;
				const char *name = j < c->n_keys ?
				    c->keys[j].name : "no-such-key";
				struct str key = { name, strlen(name) };
				int r = policy_check(&s->policy, op, key, &why);

				FUZZ_CHECK(r == 0 ||
				    r == ERR_PERMISSION_DENIED ||
				    r == ERR_UNKNOWN_KEY);
				FUZZ_CHECK(r == 0 || why != NULL);
			}
		}
	}
	for (size_t i = 0; i < CONFIG_N_PROVIDER_SECTIONS; i++) {
		const struct cfg_section *sec = &c->sections[i];
		char out[4096];

		if (sec->name == NULL)
			continue;
		FUZZ_CHECK(config_section(c, sec->name) == sec);
		for (size_t j = 0; j < sec->n; j++) {
			FUZZ_CHECK(config_opt(sec, sec->opts[j].name, NULL) !=
			    NULL);
			if (config_file_path(sec->opts[j].value, out,
			    sizeof(out), err, sizeof(err)) != 0)
				FUZZ_CHECK(err[0] != '\0');
		}
	}
	err[0] = '\0';
	if (provider_check_config(c, err, sizeof(err)) != 0)
		FUZZ_CHECK(err[0] != '\0');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c = NULL;
	char err[512] = "";
	size_t off = 0;

	FUZZ_CHECK(ftruncate(memfd, 0) == 0);
	while (off < size) {
		ssize_t n = pwrite(memfd, data + off, size - off, (off_t)off);

		FUZZ_CHECK(n > 0);
		off += (size_t)n;
	}
	if (config_load(path, &c, err, sizeof(err)) != 0) {
		FUZZ_CHECK(c == NULL);
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0);
		return 0;
	}
	FUZZ_CHECK(c != NULL);
	check_config(c);
	config_free(c);
	return 0;
}
