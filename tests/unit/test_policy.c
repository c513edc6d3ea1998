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
	return s;
}

#include "check_main.h"
