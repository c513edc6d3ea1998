/*
 * provider.h: the small asynchronous vtable every key provider implements.
 *
 * A provider is found by the form of a key id (DESIGN 3.1). For each
 * configured key version the daemon calls open() once; it then starts wrap
 * and unwrap calls on that state. start() must call call->done exactly once,
 * either before it returns (local providers) or later from the event loop
 * (network providers). The caller owns the call and everything it points to
 * until done runs; cancel() (optional) asks for an early done with
 * ERR_TIMEOUT or is a no-op when the call already completed.
 *
 * Providers never log secrets; call->msg must never contain key material.
 */
#ifndef KMSD_PROVIDER_H
#define KMSD_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "context.h"

struct cfg_section;
struct config;
struct event_base;
struct http;
struct prov_call;

typedef void (*prov_done_fn)(struct prov_call *call);

enum prov_op {
	PROV_WRAP = 0,		/* in = plaintext, out = provider ciphertext */
	PROV_UNWRAP = 1,	/* in = provider ciphertext, out = plaintext */
};

/* Largest provider ciphertext or plaintext a call may produce. */
#define PROV_MAX_OUT 16384
#define PROV_MSG_LEN 160

struct prov_call {
	enum prov_op op;
	const uint8_t *in;
	size_t in_len;
	/* The context: ctx->present == 0 means none. ctx_json is its canonical
	 * JSON in the configured style (NULL when absent). */
	const struct context *ctx;
	const uint8_t *ctx_json;
	size_t ctx_json_len;
	/* rewrap (provider_ops.rewrap): the context to wrap under, which may
	 * be ctx itself. */
	const struct context *new_ctx;
	const uint8_t *new_ctx_json;
	size_t new_ctx_json_len;
	/* context_hash: the audit device path ("file/" ...). */
	const char *audit_path;
	struct buf out;		/* initialised by the caller, cap PROV_MAX_OUT */
	int err;		/* 0 or ERR_* */
	char msg[PROV_MSG_LEN];	/* detail for errors; never secrets */
	prov_done_fn done;
	void *arg;
};

/* What open() may use from the daemon. */
struct prov_env {
	const char *state_dir;
	struct event_base *base;
	const struct config *cfg;	/* for config_section() */
	struct http *http;		/* shared HTTPS transport */
};

struct provider_ops {
	const char *name;	/* "test", "local", "aws", "gcp", "vault" */
	/* 1 when this provider serves key ids of this form. */
	int (*match)(const char *key_id);
	/* Prepare one key version. 0, or an ERR_* with a message in err. */
	int (*open)(const char *key_id, const struct prov_env *env,
	    void **ret_state, char *err, size_t errlen);
	void (*close)(void *state);
	void (*start)(void *state, struct prov_call *call);
	void (*cancel)(void *state, struct prov_call *call);
	/* Optional: rewrap in the provider itself between two versions it
	 * serves (the plaintext never leaves the KMS): in = provider
	 * ciphertext under from_state, out = provider ciphertext under
	 * to_state; ctx/ctx_json the old context, new_ctx/new_ctx_json the
	 * new one. Same completion rules as start. */
	void (*rewrap)(void *from_state, void *to_state, struct prov_call *call);
	/* Optional: the KMS's audit hash of the context (Vault's
	 * sys/audit-hash) into out as text. */
	void (*context_hash)(void *state, struct prov_call *call);
	/* Optional: check this provider's config section (section may be
	 * NULL when absent). 0, or -1 with "FILE:LINE: message" in err. */
	int (*check_config)(const struct config *cfg,
	    const struct cfg_section *section, char *err, size_t errlen);
	/* The config section name ("aws"), NULL when the provider has none. */
	const char *section;
};

/* The provider for a key id: the registered providers are tried in order,
 * AWS (anything else) last. Never NULL once every provider is built in;
 * NULL for a form whose provider is not compiled in. */
const struct provider_ops *provider_find(const char *key_id);

/* Run every compiled-in provider's check_config on its section. */
int provider_check_config(const struct config *cfg, char *err, size_t errlen);

/* Fill call->err and call->msg (printf-style) and run call->done. */
void provider_fail(struct prov_call *call, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

extern const struct provider_ops provider_test;
extern const struct provider_ops provider_local;
extern const struct provider_ops provider_gcp;
extern const struct provider_ops provider_vault;
extern const struct provider_ops provider_aws;

#endif
