/*
 * policy.h: pure decisions about who may do what on a socket.
 *
 * (socket policy, op, key name) -> allow, or deny with a reason. No I/O, no
 * logging, no allocation in the decision; the caller logs and audits.
 */
#ifndef KMSD_POLICY_H
#define KMSD_POLICY_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "context.h"
#include "op.h"

/* Bit for an op in sock_policy.allow. */
#define POLICY_BIT(op) (1u << (unsigned)(op))

struct sock_policy {
	unsigned allow;		/* POLICY_BIT of each allowed right */
	int admin;		/* the admin socket: admin ops allowed */
	int all_keys;		/* keys = * */
	size_t n_keys;
	char **keys;		/* key names when !all_keys */
	/* Who may connect: a peer passes when its uid is in users or its
	 * primary or a supplementary gid is in groups; both empty = anyone
	 * who can open the socket file. */
	size_t n_users;
	uid_t *users;
	size_t n_groups;
	gid_t *groups;
	/* When set, the peer's systemd unit must be one of these. */
	size_t n_units;
	char **units;
	/* Pairs every request's context must carry (context_require). */
	size_t n_require;
	struct ctx_pair *require;	/* strings owned by the config */
};

/* What the kernel says about a peer, read at accept. */
struct peer_id {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	size_t n_groups;
	const gid_t *groups;	/* supplementary (SO_PEERGROUPS) */
	const char *unit;	/* systemd unit, NULL if unknown */
};

/* 0 when op on key is allowed; ERR_PERMISSION_DENIED with *ret_reason set
 * to a static string otherwise. hello and keys are always allowed; admin
 * ops only on an admin socket; key-bearing ops need both the right and the
 * key in the list. */
int policy_check(const struct sock_policy *p, int op, struct str key,
    const char **ret_reason);

/* 0 when the peer may use a socket with this policy at all;
 * ERR_PERMISSION_DENIED with a static reason otherwise. */
int policy_check_peer(const struct sock_policy *p, const struct peer_id *peer,
    const char **ret_reason);

/* 0 when ctx carries every context_require pair with the same value
 * (ops that name a key only; a socket without requirements passes). */
int policy_check_context(const struct sock_policy *p, int op,
    const struct context *ctx, const char **ret_reason);

/* 1 when the op names a key (generate encrypt decrypt rewrap
 * context_hash). */
int policy_op_needs_key(int op);

/* 1 when key is in p's key list (or the list is *). */
int policy_key_allowed(const struct sock_policy *p, struct str key);

/*
 * Parse an `allow` list ("generate, encrypt") into bits. Rights are the
 * non-admin op names minus hello and keys (always allowed). 0 or
 * ERR_BAD_REQUEST with *ret_bad pointing at the offending word's start.
 */
int policy_parse_allow(const char *list, unsigned *ret_allow,
    const char **ret_bad);

#endif
