/*
 * provider.c: the registry of key providers and the shared failure path.
 *
 * A key id's form picks its provider (DESIGN 3.1). The list is tried in
 * order, so the more specific forms come first and AWS, which takes
 * "anything else", must stay last. Adding a provider is one line here plus
 * its file.
 */
#include <stdarg.h>
#include <stdio.h>

#include "config.h"
#include "err.h"
#include "provider.h"

static const struct provider_ops *const provider_list[] = {
	&provider_test,
	&provider_local,
	&provider_vault,
	&provider_gcp,
	/* AWS takes "anything else" (DESIGN 3.1): keep it last. */
	&provider_aws,
};

#define PROVIDER_LIST_LEN (sizeof(provider_list) / sizeof(provider_list[0]))

const struct provider_ops *
provider_find(const char *key_id)
{
	if (key_id == NULL)
		return NULL;
	for (size_t i = 0; i < PROVIDER_LIST_LEN; i++)
		if (provider_list[i]->match(key_id))
			return provider_list[i];
	return NULL;
}

int
provider_check_config(const struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < PROVIDER_LIST_LEN; i++) {
		const struct provider_ops *p = provider_list[i];

		if (p->check_config != NULL && p->check_config(cfg,
		    p->section != NULL ? config_section(cfg, p->section) : NULL,
		    err, errlen) != 0)
			return -1;
	}
	return 0;
}

void
provider_fail(struct prov_call *call, int err, const char *fmt, ...)
{
	va_list ap;

	/* A failed call never hands back half an output: a partial plaintext
	 * is wiped here, whatever path the provider took to get here. */
	buf_clear(&call->out);
	call->err = err < 0 ? err : ERR_INTERNAL;
	va_start(ap, fmt);
	vsnprintf(call->msg, sizeof(call->msg), fmt, ap);
	va_end(ap);
	call->done(call);
}
