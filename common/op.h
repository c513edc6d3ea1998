/*
 * op.h: the operations of the wire protocol (DESIGN 3.7) and their names.
 * Values are never renumbered; new ops go at the end.
 */
#ifndef KMSD_OP_H
#define KMSD_OP_H

#include <stddef.h>

enum op {
	OP_HELLO = 0,
	OP_KEYS = 1,
	OP_GENERATE = 2,
	OP_ENCRYPT = 3,
	OP_DECRYPT = 4,
	OP_REWRAP = 5,
	OP_STATS = 6,
	OP_CONTEXT_HASH = 7,
	/* admin socket only */
	OP_STATUS = 8,
	OP_DISABLE_DECRYPT = 9,
	OP_ENABLE_DECRYPT = 10,
	OP_RELOAD = 11,
	OP__COUNT
};

/* Wire name of an op ("hello", ...), NULL if out of range. */
const char *op_name(int op);
/* Op for a wire name, or -1. */
int op_from_name(const char *s, size_t len);
/* 1 for the ops that exist only on the admin socket. */
int op_is_admin(int op);

#endif
