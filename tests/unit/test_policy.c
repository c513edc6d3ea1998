/*
 * test_policy.c: policy_check over every op and socket shape, and the
 * `allow` list parser.
 *
 * The expectations are written out by hand as one row per op rather than
 * recomputed from rules, so a change of behaviour shows up as a diff here.
 */
#include <stdio.h>
#include <string.h>

#include <check.h>

#include "err.h"
#include "op.h"
#include "policy.h"

/*
 * One character per case, in this order:
 *   non-admin socket, right not granted: key listed, key not listed, keys=*
 *   non-admin socket, right granted:     key listed, key not listed, keys=*
 *   admin socket, right not granted:     (same three)
 *   admin socket, right granted:         (same three)
 * Y allowed; O "op not allowed"; K "key not allowed"; A "admin op on a
 * non-admin socket".
 */
static const struct {
	int op;
	const char *expect;
} policy_table[] = {
	{ OP_HELLO, "YYYYYY" "YYYYYY" },
	{ OP_KEYS, "YYYYYY" "OOOOOO" },
	{ OP_GENERATE, "OOOYKY" "OOOOOO" },
	{ OP_ENCRYPT, "OOOYKY" "OOOOOO" },
	{ OP_DECRYPT, "OOOYKY" "OOOOOO" },
	{ OP_REWRAP, "OOOYKY" "OOOOOO" },
	{ OP_STATS, "OOOYYY" "OOOOOO" },
	{ OP_CONTEXT_HASH, "OOOYKY" "OOOOOO" },
	{ OP_STATUS, "AAAAAA" "YYYYYY" },
	{ OP_DISABLE_DECRYPT, "AAAAAA" "YYYYYY" },
	{ OP_ENABLE_DECRYPT, "AAAAAA" "YYYYYY" },
	{ OP_RELOAD, "AAAAAA" "YYYYYY" },
};

#define POLICY_TABLE_LEN (sizeof(policy_table) / sizeof(policy_table[0]))

static char key_default[] = "default";
static char key_phone[] = "phone";
static char *policy_keys[] = { key_default, key_phone };

static struct str
mkstr(const char *s)
{
	return (struct str){ s, strlen(s) };
}

static const char *
expect_reason(char c)
{
	switch (c) {
	case 'O':
		return "op not allowed on this socket";
	case 'K':
		return "key not allowed on this socket";
	case 'A':
		return "admin op on a non-admin socket";
	default:
		return NULL;
	}
}

START_TEST(test_table_covers_every_op)
{
	int seen[OP__COUNT] = { 0 };

	ck_assert_uint_eq(POLICY_TABLE_LEN, OP__COUNT);
	for (size_t i = 0; i < POLICY_TABLE_LEN; i++)
		seen[policy_table[i].op]++;
	for (int op = 0; op < OP__COUNT; op++)
		ck_assert_int_eq(seen[op], 1);
}
END_TEST

/* _i runs over the table rows. */
START_TEST(test_check_matrix)
{
	int op = policy_table[_i].op;
	const char *expect = policy_table[_i].expect;

	ck_assert_uint_eq(strlen(expect), 12);
	for (int c = 0; c < 12; c++) {
		int admin = c / 6;
		int granted = (c / 3) % 2;
		int keystate = c % 3;	/* listed, not listed, keys=* */
		struct sock_policy p = {
			.allow = granted ? POLICY_BIT(op) : 0,
			.admin = admin,
			.all_keys = keystate == 2,
			.n_keys = 2,
			.keys = policy_keys,
		};
		struct str key = mkstr(keystate == 1 ? "other" : "phone");
		const char *reason = "untouched";
		int r = policy_check(&p, op, key, &reason);

		if (expect[c] == 'Y') {
			ck_assert_msg(r == 0, "op %s case %d: denied (%s)",
			    op_name(op), c, reason);
			ck_assert_ptr_null(reason);
		} else {
			ck_assert_msg(r == ERR_PERMISSION_DENIED,
			    "op %s case %d: allowed", op_name(op), c);
			ck_assert_str_eq(reason, expect_reason(expect[c]));
		}
		/* A NULL ret_reason is accepted and changes nothing. */
		ck_assert_int_eq(policy_check(&p, op, key, NULL), r);
	}
}
END_TEST

/* Every other right granted must not let an op through that lacks its own. */
START_TEST(test_check_other_rights_do_not_help)
{
	int op = policy_table[_i].op;
	struct sock_policy p = {
		.allow = ~0u & ~POLICY_BIT(op),
		.all_keys = 1,
	};
	const char *reason;
	int r = policy_check(&p, op, mkstr("phone"), &reason);

	if (op == OP_HELLO || op == OP_KEYS)
		ck_assert_int_eq(r, 0);
	else
		ck_assert_int_eq(r, ERR_PERMISSION_DENIED);
}
END_TEST

START_TEST(test_check_out_of_range_op)
{
	struct sock_policy p = { .allow = ~0u, .admin = 0, .all_keys = 1 };
	const char *reason = NULL;

	ck_assert_int_eq(policy_check(&p, -1, mkstr("phone"), &reason),
	    ERR_PERMISSION_DENIED);
	ck_assert_ptr_nonnull(reason);
	ck_assert_int_eq(policy_check(&p, OP__COUNT, mkstr("phone"), &reason),
	    ERR_PERMISSION_DENIED);
	ck_assert_int_eq(policy_check(&p, 31, mkstr("phone"), &reason),
	    ERR_PERMISSION_DENIED);
	p.admin = 1;
	ck_assert_int_eq(policy_check(&p, OP__COUNT, mkstr("phone"), &reason),
	    ERR_PERMISSION_DENIED);
}
END_TEST

START_TEST(test_key_allowed)
{
	struct sock_policy p = { .n_keys = 2, .keys = policy_keys };
	char nul_key[] = { 'p', 'h', 'o', 'n', 'e', '\0', 'x' };

	ck_assert_int_eq(policy_key_allowed(&p, mkstr("default")), 1);
	ck_assert_int_eq(policy_key_allowed(&p, mkstr("phone")), 1);
	ck_assert_int_eq(policy_key_allowed(&p, mkstr("phon")), 0);
	ck_assert_int_eq(policy_key_allowed(&p, mkstr("phones")), 0);
	ck_assert_int_eq(policy_key_allowed(&p, mkstr("Phone")), 0);
	ck_assert_int_eq(policy_key_allowed(&p, mkstr("")), 0);
	ck_assert_int_eq(policy_key_allowed(&p, STR_NULL), 0);
	ck_assert_int_eq(policy_key_allowed(&p,
	    (struct str){ nul_key, sizeof(nul_key) }), 0);
	/* A prefix of the name is not the name. */
	ck_assert_int_eq(policy_key_allowed(&p,
	    (struct str){ "defaultX", 7 }), 1);
	ck_assert_int_eq(policy_key_allowed(&p,
	    (struct str){ "defaultX", 6 }), 0);

	p.n_keys = 0;
	ck_assert_int_eq(policy_key_allowed(&p, mkstr("phone")), 0);
	p.all_keys = 1;
	ck_assert_int_eq(policy_key_allowed(&p, mkstr("anything")), 1);
}
END_TEST

START_TEST(test_op_needs_key)
{
	static const int want[OP__COUNT] = {
		[OP_GENERATE] = 1, [OP_ENCRYPT] = 1, [OP_DECRYPT] = 1,
		[OP_REWRAP] = 1, [OP_CONTEXT_HASH] = 1,
	};

	for (int op = 0; op < OP__COUNT; op++)
		ck_assert_int_eq(policy_op_needs_key(op), want[op]);
	ck_assert_int_eq(policy_op_needs_key(-1), 0);
	ck_assert_int_eq(policy_op_needs_key(OP__COUNT), 0);
}
END_TEST

static const struct {
	const char *list;
	unsigned allow;
} parse_ok[] = {
	{ "", 0 },
	{ "   ", 0 },
	{ "generate", POLICY_BIT(OP_GENERATE) },
	{ "generate, encrypt",
	    POLICY_BIT(OP_GENERATE) | POLICY_BIT(OP_ENCRYPT) },
	{ "generate,encrypt",
	    POLICY_BIT(OP_GENERATE) | POLICY_BIT(OP_ENCRYPT) },
	{ "generate encrypt",
	    POLICY_BIT(OP_GENERATE) | POLICY_BIT(OP_ENCRYPT) },
	{ " generate ,\tencrypt ",
	    POLICY_BIT(OP_GENERATE) | POLICY_BIT(OP_ENCRYPT) },
	{ "decrypt", POLICY_BIT(OP_DECRYPT) },
	{ "rewrap", POLICY_BIT(OP_REWRAP) },
	{ "stats", POLICY_BIT(OP_STATS) },
	{ "context_hash", POLICY_BIT(OP_CONTEXT_HASH) },
	{ "encrypt, encrypt", POLICY_BIT(OP_ENCRYPT) },
	{ "generate, encrypt, decrypt, rewrap, stats, context_hash",
	    POLICY_BIT(OP_GENERATE) | POLICY_BIT(OP_ENCRYPT) |
	    POLICY_BIT(OP_DECRYPT) | POLICY_BIT(OP_REWRAP) |
	    POLICY_BIT(OP_STATS) | POLICY_BIT(OP_CONTEXT_HASH) },
};

#define PARSE_OK_LEN (sizeof(parse_ok) / sizeof(parse_ok[0]))

START_TEST(test_parse_ok)
{
	unsigned allow = 12345;
	const char *bad = NULL;

	ck_assert_msg(policy_parse_allow(parse_ok[_i].list, &allow, &bad) == 0,
	    "\"%s\" refused at \"%s\"", parse_ok[_i].list,
	    bad != NULL ? bad : "?");
	ck_assert_uint_eq(allow, parse_ok[_i].allow);
}
END_TEST

/* bad_at: offset of the word the parser must point at. */
static const struct {
	const char *list;
	size_t bad_at;
} parse_bad[] = {
	{ "hello", 0 },
	{ "keys", 0 },
	{ "status", 0 },
	{ "disable_decrypt", 0 },
	{ "enable_decrypt", 0 },
	{ "reload", 0 },
	{ "encrypt, reload", 9 },
	{ "Encrypt", 0 },
	{ "encrypts", 0 },
	{ "encryp", 0 },
	{ "generate, decrypt; rewrap", 10 },
	{ "*", 0 },
	{ "a,,b", 0 },
	{ "encrypt,,decrypt", 8 },
	{ "encrypt, ,decrypt", 9 },
	{ ",encrypt", 0 },
	{ " , encrypt", 1 },
	{ "encrypt,", 8 },
	{ "encrypt , ", 10 },
	{ ",", 0 },
	{ "encrypt\ndecrypt", 0 },
};

#define PARSE_BAD_LEN (sizeof(parse_bad) / sizeof(parse_bad[0]))

START_TEST(test_parse_bad)
{
	unsigned allow = 12345;
	const char *bad = NULL;
	const char *list = parse_bad[_i].list;

	ck_assert_msg(policy_parse_allow(list, &allow, &bad) ==
	    ERR_BAD_REQUEST, "\"%s\" accepted", list);
	ck_assert_uint_eq(allow, 12345);	/* untouched on failure */
	ck_assert_ptr_nonnull(bad);
	ck_assert_msg((size_t)(bad - list) == parse_bad[_i].bad_at,
	    "\"%s\": bad at %td, want %zu", list, bad - list,
	    parse_bad[_i].bad_at);
}
END_TEST

START_TEST(test_parse_null)
{
	unsigned allow = 12345;

	ck_assert_int_eq(policy_parse_allow(NULL, &allow, NULL), 0);
	ck_assert_uint_eq(allow, 0);
	ck_assert_int_eq(policy_parse_allow("hello", &allow, NULL),
	    ERR_BAD_REQUEST);
}
END_TEST

/* Parsed bits are exactly what policy_check tests. */
START_TEST(test_parse_then_check)
{
	unsigned allow;
	struct sock_policy p = { .all_keys = 1 };
	const char *reason;

	ck_assert_int_eq(policy_parse_allow("generate, encrypt", &allow, NULL),
	    0);
	p.allow = allow;
	ck_assert_int_eq(policy_check(&p, OP_GENERATE, mkstr("k"), &reason),
	    0);
	ck_assert_int_eq(policy_check(&p, OP_ENCRYPT, mkstr("k"), &reason), 0);
	ck_assert_int_eq(policy_check(&p, OP_DECRYPT, mkstr("k"), &reason),
	    ERR_PERMISSION_DENIED);
	ck_assert_int_eq(policy_check(&p, OP_REWRAP, mkstr("k"), &reason),
	    ERR_PERMISSION_DENIED);
	ck_assert_int_eq(policy_check(&p, OP_STATS, STR_NULL, &reason),
	    ERR_PERMISSION_DENIED);
}
END_TEST

/* Peer checks: every combination of policy lists and peer facts. */
static uid_t peer_users_1000[] = { 1000 };
static gid_t peer_groups_50[] = { 50 };
static char *peer_units_a[] = { "a.service" };

static const struct {
	int users, groups, units;	/* which lists the policy has */
} peer_policies[] = {
	{ 0, 0, 0 }, { 1, 0, 0 }, { 0, 1, 0 }, { 1, 1, 0 },
	{ 0, 0, 1 }, { 1, 0, 1 }, { 0, 1, 1 },
};

static const gid_t sup_7_50[] = { 7, 50 };
static const gid_t sup_7[] = { 7 };

static const struct peer_id peer_peers[] = {
	{ 1, 1000, 100, 0, NULL, "a.service" },
	{ 1, 2000, 50, 0, NULL, "a.service" },
	{ 1, 2000, 100, 2, sup_7_50, "a.service" },
	{ 1, 2000, 100, 1, sup_7, "a.service" },
	{ 1, 1000, 100, 0, NULL, "b.service" },
	{ 1, 1000, 100, 0, NULL, NULL },
	{ 1, 2000, 100, 0, NULL, NULL },
};

#define PEER_NPOL (sizeof(peer_policies) / sizeof(peer_policies[0]))
#define PEER_NPEER (sizeof(peer_peers) / sizeof(peer_peers[0]))

/* allowed[policy][peer], worked out by hand from the rule "uid listed or
 * a gid listed (when either list is set), and unit listed (when set)". */
static const int peer_allowed[PEER_NPOL][PEER_NPEER] = {
	{ 1, 1, 1, 1, 1, 1, 1 },
	{ 1, 0, 0, 0, 1, 1, 0 },
	{ 0, 1, 1, 0, 0, 0, 0 },
	{ 1, 1, 1, 0, 1, 1, 0 },
	{ 1, 1, 1, 1, 0, 0, 0 },
	{ 1, 0, 0, 0, 0, 0, 0 },
	{ 0, 1, 1, 0, 0, 0, 0 },
};

START_TEST(test_peer_matrix)
{
	size_t pi = (size_t)_i / PEER_NPEER, qi = (size_t)_i % PEER_NPEER;
	struct sock_policy p;
	const char *why = "unset";
	int r;

	memset(&p, 0, sizeof(p));
	if (peer_policies[pi].users) {
		p.users = peer_users_1000;
		p.n_users = 1;
	}
	if (peer_policies[pi].groups) {
		p.groups = peer_groups_50;
		p.n_groups = 1;
	}
	if (peer_policies[pi].units) {
		p.units = peer_units_a;
		p.n_units = 1;
	}
	r = policy_check_peer(&p, &peer_peers[qi], &why);
	if (peer_allowed[pi][qi]) {
		ck_assert_msg(r == 0, "policy %zu peer %zu denied: %s", pi, qi,
		    why);
		ck_assert_ptr_null(why);
	} else {
		ck_assert_msg(r == ERR_PERMISSION_DENIED, "policy %zu peer %zu "
		    "allowed", pi, qi);
		ck_assert_ptr_nonnull(why);
		/* the reason names the failing check: the same policy
		 * without its unit list (rows 4-6 drop to rows 0-2) tells
		 * whether user and groups passed */
		size_t ug = peer_policies[pi].units ? pi - 4 : pi;

		ck_assert_ptr_nonnull(strstr(why, peer_allowed[ug][qi] ?
		    "unit" : "user"));
	}
}
END_TEST

static struct ctx_pair req_billing[] = {
	{ { "service", 7 }, { "billing", 7 } },
	{ { "tier", 4 }, { "1", 1 } },
};

static const struct {
	size_t n_require;
	int op;
	int present;
	const char *pairs[6];	/* k, v, k, v, ... NULL */
	int allowed;
} ctx_cases[] = {
	{ 0, OP_DECRYPT, 0, { NULL }, 1 },
	{ 1, OP_DECRYPT, 0, { NULL }, 0 },
	{ 1, OP_DECRYPT, 1, { NULL }, 0 },
	{ 1, OP_DECRYPT, 1, { "service", "billing", NULL }, 1 },
	{ 1, OP_GENERATE, 1, { "service", "billing", NULL }, 1 },
	{ 1, OP_ENCRYPT, 1, { "x", "y", "service", "billing", NULL }, 1 },
	{ 1, OP_REWRAP, 1, { "service", "other", NULL }, 0 },
	{ 1, OP_DECRYPT, 1, { "Service", "billing", NULL }, 0 },
	{ 1, OP_DECRYPT, 1, { "service", "bill", NULL }, 0 },
	{ 1, OP_DECRYPT, 1, { "service", "billing2", NULL }, 0 },
	{ 2, OP_DECRYPT, 1, { "service", "billing", NULL }, 0 },
	{ 2, OP_DECRYPT, 1, { "tier", "1", "service", "billing", NULL }, 1 },
	{ 1, OP_HELLO, 0, { NULL }, 1 },
	{ 1, OP_KEYS, 0, { NULL }, 1 },
	{ 1, OP_STATS, 0, { NULL }, 1 },
};

START_TEST(test_context_require)
{
	struct sock_policy p;
	struct context c;
	const char *why = NULL;
	int r;

	memset(&p, 0, sizeof(p));
	memset(&c, 0, sizeof(c));
	p.require = req_billing;
	p.n_require = ctx_cases[_i].n_require;
	c.present = ctx_cases[_i].present;
	for (size_t j = 0; ctx_cases[_i].pairs[j] != NULL; j += 2) {
		c.pairs[c.n].k.p = ctx_cases[_i].pairs[j];
		c.pairs[c.n].k.len = strlen(ctx_cases[_i].pairs[j]);
		c.pairs[c.n].v.p = ctx_cases[_i].pairs[j + 1];
		c.pairs[c.n].v.len = strlen(ctx_cases[_i].pairs[j + 1]);
		c.n++;
	}
	r = policy_check_context(&p, ctx_cases[_i].op, &c, &why);
	if (ctx_cases[_i].allowed)
		ck_assert_int_eq(r, 0);
	else {
		ck_assert_int_eq(r, ERR_PERMISSION_DENIED);
		ck_assert_ptr_nonnull(strstr(why, "context"));
	}
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("check");

	tcase_add_test(tc, test_table_covers_every_op);
	tcase_add_loop_test(tc, test_check_matrix, 0, (int)POLICY_TABLE_LEN);
	tcase_add_loop_test(tc, test_check_other_rights_do_not_help, 0,
	    (int)POLICY_TABLE_LEN);
	tcase_add_test(tc, test_check_out_of_range_op);
	tcase_add_test(tc, test_key_allowed);
	tcase_add_test(tc, test_op_needs_key);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_parse_ok, 0, (int)PARSE_OK_LEN);
	tcase_add_loop_test(tc, test_parse_bad, 0, (int)PARSE_BAD_LEN);
	tcase_add_test(tc, test_parse_null);
	tcase_add_test(tc, test_parse_then_check);
	suite_add_tcase(s, tc);

	tc = tcase_create("peer");
	tcase_add_loop_test(tc, test_peer_matrix, 0,
	    (int)(PEER_NPOL * PEER_NPEER));
	tcase_add_loop_test(tc, test_context_require, 0,
	    (int)(sizeof(ctx_cases) / sizeof(ctx_cases[0])));
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
