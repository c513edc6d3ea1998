/*
 * test_config.c: the INI configuration: values, defaults, and an error
 * naming file:line for every kind of mistake.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "config.h"

static char conf_path[64];

static void
write_conf(const char *text)
{
	FILE *fp;
	int fd;

	strcpy(conf_path, "/tmp/kmsd-test-conf-XXXXXX");
	fd = mkstemp(conf_path);
	ck_assert_int_ge(fd, 0);
	fp = fdopen(fd, "w");
	ck_assert_ptr_nonnull(fp);
	fputs(text, fp);
	fclose(fp);
}

static struct config *
load_ok(const char *text)
{
	struct config *c = NULL;
	char err[512] = "";

	write_conf(text);
	ck_assert_msg(config_load(conf_path, &c, err, sizeof(err)) == 0,
	    "unexpected error: %s", err);
	unlink(conf_path);
	return c;
}

static void
load_bad(const char *text, int line, const char *word)
{
	struct config *c = NULL;
	char err[512] = "", want[128];

	write_conf(text);
	ck_assert_int_eq(config_load(conf_path, &c, err, sizeof(err)), -1);
	ck_assert_ptr_null(c);
	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: ", conf_path, line);
	else
		snprintf(want, sizeof(want), "%s: ", conf_path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
	    "error '%s' does not start with '%s'", err, want);
	ck_assert_msg(strstr(err, word) != NULL, "'%s' not in '%s'", word, err);
	unlink(conf_path);
}

#define GOOD_TAIL "[socket s]\npath = /run/s.sock\nallow = encrypt\n"

START_TEST(full_config)
{
	struct config *c = load_ok(
	    "; comment\n"
	    "[kmsd]\n"
	    "state_dir = /var/lib/x   ; inline comment\n"
	    "context_json = plain\n"
	    "max_connections = 10\n"
	    "frame_timeout = 500ms\n"
	    "idle_timeout = 2m\n"
	    "\n"
	    "[key default]\n"
	    "key_id = arn:aws:kms:us-east-1:111122223333:key/abc\n"
	    "version = 3\n"
	    "key_id.1 = vault/old\n"
	    "key_id.2 = insecure-test-key\n"
	    "[key phone]\n"
	    "key_id = local/phone\n"
	    "[socket web]\n"
	    "path = /run/kmsd/encrypt.sock\n"
	    "mode = 0660\n"
	    "allow = generate, encrypt\n"
	    "keys = default phone\n"
	    "[socket worker]\n"
	    "path = /run/kmsd/decrypt.sock\n"
	    "allow = decrypt,rewrap\n");
	const struct cfg_key *k;

	ck_assert_str_eq(c->state_dir, "/var/lib/x");
	ck_assert_int_eq(c->ctx_style, CTX_PLAIN);
	ck_assert_uint_eq(c->max_connections, 10);
	ck_assert_uint_eq(c->frame_timeout_ms, 500);
	ck_assert_uint_eq(c->idle_timeout_ms, 120000);
	ck_assert_uint_eq(c->n_keys, 2);
	k = config_key(c, "default");
	ck_assert_ptr_nonnull(k);
	ck_assert_uint_eq(k->current, 3);
	ck_assert_uint_eq(k->n_versions, 3);
	ck_assert_str_eq(config_key_version(k, 3)->key_id,
	    "arn:aws:kms:us-east-1:111122223333:key/abc");
	ck_assert_str_eq(config_key_version(k, 1)->key_id, "vault/old");
	ck_assert_str_eq(config_key_version(k, 2)->key_id, "insecure-test-key");
	ck_assert_ptr_null(config_key_version(k, 4));
	k = config_key(c, "phone");
	ck_assert_uint_eq(k->current, 1);
	ck_assert_ptr_null(config_key(c, "nope"));
	ck_assert_uint_eq(c->n_sockets, 2);
	ck_assert_str_eq(c->sockets[0].name, "web");
	ck_assert_uint_eq(c->sockets[0].mode, 0660);
	ck_assert_uint_eq(c->sockets[0].policy.allow,
	    POLICY_BIT(OP_GENERATE) | POLICY_BIT(OP_ENCRYPT));
	ck_assert_int_eq(c->sockets[0].policy.all_keys, 0);
	ck_assert_uint_eq(c->sockets[0].policy.n_keys, 2);
	ck_assert_str_eq(c->sockets[0].policy.keys[1], "phone");
	ck_assert_uint_eq(c->sockets[1].mode, 0600);
	ck_assert_int_eq(c->sockets[1].policy.all_keys, 1);
	ck_assert_uint_eq(c->sockets[1].policy.allow,
	    POLICY_BIT(OP_DECRYPT) | POLICY_BIT(OP_REWRAP));
	config_free(c);
}
END_TEST

START_TEST(defaults)
{
	struct config *c = load_ok("[key a]\nkey_id = local/a\n" GOOD_TAIL);

	ck_assert_str_eq(c->state_dir, "/var/lib/kmsd");
	ck_assert_int_eq(c->ctx_style, CTX_ACTIVESUPPORT);
	ck_assert_uint_eq(c->max_connections, 1024);
	ck_assert_uint_eq(c->frame_timeout_ms, 10000);
	ck_assert_uint_eq(c->idle_timeout_ms, 300000);
	config_free(c);
}
END_TEST

START_TEST(kms_key_id_env_defines_default)
{
	struct config *c;

	setenv("KMS_KEY_ID", "insecure-test-key", 1);
	c = load_ok(GOOD_TAIL);
	ck_assert_uint_eq(c->n_keys, 1);
	ck_assert_str_eq(c->keys[0].name, "default");
	ck_assert_str_eq(config_key_version(&c->keys[0], 1)->key_id,
	    "insecure-test-key");
	config_free(c);
	/* keys in the file win over the environment */
	c = load_ok("[key x]\nkey_id = local/x\n" GOOD_TAIL);
	ck_assert_uint_eq(c->n_keys, 1);
	ck_assert_str_eq(c->keys[0].name, "x");
	config_free(c);
	unsetenv("KMS_KEY_ID");
}
END_TEST

static const struct {
	const char *text;
	int line;
	const char *word;
} bad_cases[] = {
	{ "[kmsd]\nnope = 1\n", 2, "unknown option 'nope'" },
	{ "[kmsd]\nstate_dir = relative\n", 2, "absolute" },
	{ "[kmsd]\nstate_dir = /a\nstate_dir = /b\n", 3, "twice" },
	{ "[kmsd]\ncontext_json = xml\n", 2, "context_json" },
	{ "[kmsd]\nmax_connections = 0\n", 2, "max_connections" },
	{ "[kmsd]\nmax_connections = 12x\n", 2, "max_connections" },
	{ "[kmsd]\nframe_timeout = soon\n", 2, "duration" },
	{ "[kmsd]\nidle_timeout = 0\n", 2, "duration" },
	{ "[what]\n", 0, "no keys" },
	{ "[what ever]\nx = 1\n", 2, "unknown section" },
	{ "[key a]\nkey_id = local/a\nversion = 0\n", 3, "version" },
	{ "[key a]\nkey_id = local/a\nversion = 1\nversion = 2\n", 4, "twice" },
	{ "[key a]\nkey_id = local/a\nkey_id.x = local/b\n", 3, "key_id." },
	{ "[key a]\nkey_id = local/a\nkey_id.1 = local/b\n" GOOD_TAIL, 3,
	    "current version" },
	{ "[key a]\nkey_id =\n", 2, "empty" },
	{ "[key a]\nfoo = bar\n", 2, "unknown option 'foo'" },
	{ "[key a/b]\nkey_id = local/a\n", 2, "bad key name" },
	{ "\n[key a]\n\nversion = 2\n" GOOD_TAIL, 2, "no key_id" },
	{ "[key a]\nkey_id = local/a\n[socket s]\nallow = encrypt\n", 3,
	    "no path" },
	{ "[key a]\nkey_id = local/a\n[socket s]\npath = /x\n", 3,
	    "no 'allow'" },
	{ "[key a]\nkey_id = local/a\n[socket s]\npath = /x\nallow = fly\n", 5,
	    "allow" },
	{ "[key a]\nkey_id = local/a\n[socket s]\npath = /x\n"
	    "allow = encrypt\nmode = 0755\n", 6, "mode" },
	{ "[key a]\nkey_id = local/a\n[socket s]\npath = /x\n"
	    "allow = encrypt\nmode = 9\n", 6, "mode" },
	{ "[key a]\nkey_id = local/a\n[socket s]\npath = /x\n"
	    "allow = encrypt\nkeys = a, zz\n", 3, "unknown key 'zz'" },
	{ "[key a]\nkey_id = local/a\n[socket s]\npath = /x\n"
	    "allow = encrypt\n[socket t]\npath = /x\nallow = encrypt\n", 6,
	    "path of [socket s]" },
	{ "[key a]\nkey_id = local/a\n[socket s]\npath = /"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 4,
	    "longer than" },
	{ "[key a]\nkey_id = local/a\n", 0, "no sockets" },
	{ "[key a]\nkey_id = local/a\nnot an option line\n", 3, "syntax" },
	{ "[key a]\nkey_id = local/"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "\n[socket s]\n", 2, "line longer" },
};

START_TEST(errors_name_file_and_line)
{
	load_bad(bad_cases[_i].text, bad_cases[_i].line, bad_cases[_i].word);
}
END_TEST

START_TEST(missing_file)
{
	struct config *c = NULL;
	char err[256];

	ck_assert_int_eq(config_load("/nonexistent/kmsd.conf", &c, err,
	    sizeof(err)), -1);
	ck_assert_ptr_null(c);
	ck_assert_str_eq(err, "/nonexistent/kmsd.conf: No such file or "
	    "directory");
}
END_TEST

START_TEST(credential_paths)
{
	char out[256], err[256];

	ck_assert_int_eq(config_file_path("/etc/kmsd/token", out, sizeof(out),
	    err, sizeof(err)), 0);
	ck_assert_str_eq(out, "/etc/kmsd/token");
	unsetenv("CREDENTIALS_DIRECTORY");
	ck_assert_int_eq(config_file_path("credential:vault-token", out,
	    sizeof(out), err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "CREDENTIALS_DIRECTORY"));
	setenv("CREDENTIALS_DIRECTORY", "/run/credentials/kmsd.service", 1);
	ck_assert_int_eq(config_file_path("credential:vault-token", out,
	    sizeof(out), err, sizeof(err)), 0);
	ck_assert_str_eq(out, "/run/credentials/kmsd.service/vault-token");
	ck_assert_int_eq(config_file_path("credential:../etc/shadow", out,
	    sizeof(out), err, sizeof(err)), -1);
	ck_assert_int_eq(config_file_path("credential:", out, sizeof(out),
	    err, sizeof(err)), -1);
	ck_assert_int_eq(config_file_path("credential:..", out, sizeof(out),
	    err, sizeof(err)), -1);
	ck_assert_int_eq(config_file_path("/x/y", out, 3, err, sizeof(err)),
	    -1);
	unsetenv("CREDENTIALS_DIRECTORY");
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_test(tc, full_config);
	tcase_add_test(tc, defaults);
	tcase_add_test(tc, kms_key_id_env_defines_default);
	tcase_add_loop_test(tc, errors_name_file_and_line, 0,
	    sizeof(bad_cases) / sizeof(bad_cases[0]));
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, credential_paths);
	suite_add_tcase(s, tc);
	return s;
}

#include "check_main.h"
