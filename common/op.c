/*
 * op.c: op numbers to wire names and back.
 */
#include <string.h>

#include "op.h"

static const char *const op_names[OP__COUNT] = {
	[OP_HELLO] = "hello",
	[OP_KEYS] = "keys",
	[OP_GENERATE] = "generate",
	[OP_ENCRYPT] = "encrypt",
	[OP_DECRYPT] = "decrypt",
	[OP_REWRAP] = "rewrap",
	[OP_STATS] = "stats",
	[OP_CONTEXT_HASH] = "context_hash",
	[OP_STATUS] = "status",
	[OP_DISABLE_DECRYPT] = "disable_decrypt",
	[OP_ENABLE_DECRYPT] = "enable_decrypt",
	[OP_RELOAD] = "reload",
};

const char *
op_name(int op)
{
	if (op < 0 || op >= OP__COUNT)
		return NULL;
	return op_names[op];
}

int
op_from_name(const char *s, size_t len)
{
	for (int i = 0; i < OP__COUNT; i++)
		if (strlen(op_names[i]) == len && memcmp(op_names[i], s, len) == 0)
			return i;
	return -1;
}

int
op_is_admin(int op)
{
	return op >= OP_STATUS && op <= OP_RELOAD;
}
