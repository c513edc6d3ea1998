/*
 * policy.c: the one gate every request passes before a handler runs.
 *
 * Owns the decision (socket policy, op, key name) -> allow / deny(reason)
 * and the parser of a socket's `allow` list. Invariants:
 *   - the decision is a pure function of its arguments: no I/O, no logging,
 *     no allocation, so the caller can log and audit it once;
 *   - deny reasons are static strings naming what was missing, never
 *     echoing the key name or anything else the peer sent;
 *   - the admin socket is a separate world: it serves hello and the admin
 *     ops only, so a leaked admin fd cannot decrypt, and an ordinary socket
 *     can never run an admin op whatever its allow bits say.
 */
#include <string.h>

#include "err.h"
#include "policy.h"

static const char policy_reason_op[] = "op not allowed on this socket";
static const char policy_reason_key[] = "key not allowed on this socket";
static const char policy_reason_admin[] = "admin op on a non-admin socket";
static const char policy_reason_unknown[] = "unknown op";
static const char policy_reason_peer[] =
    "peer user and groups not allowed on this socket";
static const char policy_reason_unit[] =
    "peer's systemd unit not allowed on this socket";
static const char policy_reason_context[] =
    "context lacks a pair this socket requires";

/* The rights an `allow` list may grant: hello and keys are always allowed
 * and the admin ops come only with the admin socket, so neither is a right. */
static int
policy_is_right(int op)
{
	switch (op) {
	case OP_GENERATE:
	case OP_ENCRYPT:
	case OP_DECRYPT:
	case OP_REWRAP:
	case OP_STATS:
	case OP_CONTEXT_HASH:
		return 1;
	default:
		return 0;
	}
}

int
policy_op_needs_key(int op)
{
	switch (op) {
	case OP_GENERATE:
	case OP_ENCRYPT:
	case OP_DECRYPT:
	case OP_REWRAP:
	case OP_CONTEXT_HASH:
		return 1;
	default:
		return 0;
	}
}

int
policy_key_allowed(const struct sock_policy *p, struct str key)
{
	if (p->all_keys)
		return 1;
	if (key.p == NULL)
		return 0;
	for (size_t i = 0; i < p->n_keys; i++) {
		const char *k = p->keys[i];

		if (k != NULL && strlen(k) == key.len &&
		    memcmp(k, key.p, key.len) == 0)
			return 1;
	}
	return 0;
}

static int
policy_deny(const char **ret_reason, const char *reason)
{
	if (ret_reason != NULL)
		*ret_reason = reason;
	return ERR_PERMISSION_DENIED;
}

int
policy_check(const struct sock_policy *p, int op, struct str key,
    const char **ret_reason)
{
	if (op < 0 || op >= OP__COUNT)
		return policy_deny(ret_reason, policy_reason_unknown);
	if (op == OP_HELLO)
		goto allow;
	if (p->admin) {
		/* Admin socket: admin ops and hello, nothing else. */
		if (!op_is_admin(op))
			return policy_deny(ret_reason, policy_reason_op);
		goto allow;
	}
	if (op_is_admin(op))
		return policy_deny(ret_reason, policy_reason_admin);
	if (op == OP_KEYS)
		goto allow;
	if (!policy_is_right(op) || (p->allow & POLICY_BIT(op)) == 0)
		return policy_deny(ret_reason, policy_reason_op);
	if (policy_op_needs_key(op) && !policy_key_allowed(p, key))
		return policy_deny(ret_reason, policy_reason_key);
allow:
	if (ret_reason != NULL)
		*ret_reason = NULL;
	return 0;
}

static int
policy_gid_listed(const struct sock_policy *p, gid_t gid)
{
	for (size_t i = 0; i < p->n_groups; i++)
		if (p->groups[i] == gid)
			return 1;
	return 0;
}

int
policy_check_peer(const struct sock_policy *p, const struct peer_id *peer,
    const char **ret_reason)
{
	int ok;

	if (p->n_users > 0 || p->n_groups > 0) {
		ok = 0;
		for (size_t i = 0; i < p->n_users && !ok; i++)
			ok = p->users[i] == peer->uid;
		if (!ok)
			ok = policy_gid_listed(p, peer->gid);
		for (size_t i = 0; i < peer->n_groups && !ok; i++)
			ok = policy_gid_listed(p, peer->groups[i]);
		if (!ok)
			return policy_deny(ret_reason, policy_reason_peer);
	}
	if (p->n_units > 0) {
		ok = 0;
		for (size_t i = 0; i < p->n_units && !ok; i++)
			ok = peer->unit != NULL &&
			    strcmp(p->units[i], peer->unit) == 0;
		if (!ok)
			return policy_deny(ret_reason, policy_reason_unit);
	}
	if (ret_reason != NULL)
		*ret_reason = NULL;
	return 0;
}

int
policy_check_context(const struct sock_policy *p, int op,
    const struct context *ctx, const char **ret_reason)
{
	if (p->n_require == 0 || !policy_op_needs_key(op))
		goto allow;
	if (!ctx->present)
		return policy_deny(ret_reason, policy_reason_context);
	for (size_t i = 0; i < p->n_require; i++) {
		const struct ctx_pair *want = &p->require[i];
		int found = 0;

		for (size_t j = 0; j < ctx->n && !found; j++) {
			const struct ctx_pair *have = &ctx->pairs[j];

			found = have->k.len == want->k.len &&
			    have->v.len == want->v.len &&
			    memcmp(have->k.p, want->k.p, want->k.len) == 0 &&
			    memcmp(have->v.p, want->v.p, want->v.len) == 0;
		}
		if (!found)
			return policy_deny(ret_reason, policy_reason_context);
	}
allow:
	if (ret_reason != NULL)
		*ret_reason = NULL;
	return 0;
}

static int
policy_is_space(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Words are separated by a comma, by blanks, or by a comma with blanks
 * around it. Two commas with nothing but blanks between, or a comma at
 * either end, make an empty word, which is refused: "a,,b" is more likely a
 * deleted right than an intended one.
 */
int
policy_parse_allow(const char *list, unsigned *ret_allow,
    const char **ret_bad)
{
	unsigned allow = 0;
	const char *s = list != NULL ? list : "";
	int want_word = 0;	/* a comma was seen: a word must follow */

	for (;;) {
		const char *w;
		size_t n;
		int op;

		while (policy_is_space(*s))
			s++;
		if (*s == '\0') {
			if (want_word)
				goto bad;
			break;
		}
		if (*s == ',') {
			/* A comma before any word, or right after another. */
			goto bad;
		}
		w = s;
		while (*s != '\0' && *s != ',' && !policy_is_space(*s))
			s++;
		n = (size_t)(s - w);
		op = op_from_name(w, n);
		if (op < 0 || !policy_is_right(op)) {
			s = w;
			goto bad;
		}
		allow |= POLICY_BIT(op);
		while (policy_is_space(*s))
			s++;
		want_word = 0;
		if (*s == ',') {
			s++;
			want_word = 1;
		}
	}
	*ret_allow = allow;
	return 0;
bad:
	if (ret_bad != NULL)
		*ret_bad = s;
	return ERR_BAD_REQUEST;
}
