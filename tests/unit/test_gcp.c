/*
 * test_gcp.c: the Cloud KMS provider's configuration and open(): [gcp]
 * options with FILE:LINE errors, the Application Default Credentials
 * order (config, GOOGLE_APPLICATION_CREDENTIALS, gcloud's well-known file,
 * the metadata server), and every credentials file open() must refuse.
 * The network half runs in tests/integration/test_gcp.py against a fake.
 *
 * Check forks each test, so the environment variables set here stay in
 * the test that set them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>

#include "config.h"
#include "err.h"
#include "http.h"
#include "provider.h"

#define VEC TEST_SRCDIR "/../vectors/gcp"
#define KEY "projects/p/locations/global/keyRings/r/cryptoKeys/k"

static char dir[64];
static char conf_path[128];

static void
setup(void)
{
	strcpy(dir, "/tmp/kmsd-test-gcp-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	/* No credentials from the machine running the tests. */
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	unsetenv("CLOUDSDK_CONFIG");
	unsetenv("GCE_METADATA_HOST");
	unsetenv("GOOGLE_CLOUD_QUOTA_PROJECT");
	setenv("HOME", dir, 1);
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	ck_assert_msg(fp != NULL, "%s", path);
	fputs(text, fp);
	fclose(fp);
}

static char *
read_vector(const char *name)
{
	char path[256], *p = calloc(1, 65536);
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", VEC, name);
	fp = fopen(path, "r");
	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_gt(fread(p, 1, 65535, fp), 0);
	fclose(fp);
	return p;
}

/* A whole config with a [gcp] section (gcp NULL: none). */
static struct config *
load(const char *gcp)
{
	struct config *c = NULL;
	char text[4096], err[512] = "";

	snprintf(conf_path, sizeof(conf_path), "%s/kmsd.conf", dir);
	snprintf(text, sizeof(text), "[kmsd]\nstate_dir = %s/state\n\n"
	    "[key k]\nkey_id = " KEY "\n\n"
	    "[socket s]\npath = %s/s.sock\nallow = encrypt\n%s%s", dir, dir,
	    gcp != NULL ? "\n[gcp]\n" : "", gcp != NULL ? gcp : "");
	write_file(conf_path, text);
	ck_assert_msg(config_load(conf_path, &c, err, sizeof(err)) == 0, "%s",
	    err);
	return c;
}

static int
check(const char *gcp, char *err, size_t errlen)
{
	struct config *c = load(gcp);
	int r;

	err[0] = '\0';
	r = provider_gcp.check_config(c, config_section(c, "gcp"), err,
	    errlen);
	config_free(c);
	return r;
}

START_TEST(matches_projects_ids)
{
	ck_assert_ptr_eq(provider_find(KEY), &provider_gcp);
	/* a malformed one too, so open() explains it instead of AWS */
	ck_assert_ptr_eq(provider_find("projects/x"), &provider_gcp);
	ck_assert_ptr_ne(provider_find("local/x"), &provider_gcp);
	ck_assert_ptr_ne(provider_find("vault/x"), &provider_gcp);
	ck_assert_str_eq(provider_gcp.section, "gcp");
	ck_assert_ptr_null(provider_gcp.rewrap);
}
END_TEST

START_TEST(good_sections)
{
	char err[512];

	ck_assert_int_eq(check(NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(check("credentials = /x.json\n"
	    "endpoint = https://cloudkms.googleapis.com/\n"
	    "metadata_host = 127.0.0.1:8080\n"
	    "scope = https://www.googleapis.com/auth/cloud-platform\n"
	    "timeout = 2500ms\nca_file = /etc/ssl/x.pem\n"
	    "quota_project = my-proj\n", err, sizeof(err)), 0);
	ck_assert_int_eq(check("endpoint = http://127.0.0.1:9\ntimeout = 1m\n",
	    err, sizeof(err)), 0);
}
END_TEST

START_TEST(bad_sections)
{
	static const struct {
		const char *text;
		int line;	/* in the [gcp] section, 1 = first option */
		const char *word;
	} cases[] = {
		{ "nope = 1\n", 1, "unknown option 'nope'" },
		{ "timeout = 2s\ntimout = 1\n", 2, "unknown option" },
		{ "timeout = 0\n", 1, "timeout" },
		{ "timeout = 50ms\n", 1, "timeout" },
		{ "timeout = 2h\n", 1, "timeout" },
		{ "timeout = 61s\n", 1, "timeout" },
		{ "endpoint = http://example.com\n", 1, "endpoint" },
		{ "endpoint = https://h/v1\n", 1, "endpoint" },
		{ "endpoint = https://\n", 1, "endpoint" },
		{ "endpoint = cloudkms.googleapis.com\n", 1, "endpoint" },
		{ "endpoint = https://h?x=1\n", 1, "endpoint" },
		{ "metadata_host = http://h\n", 1, "metadata_host" },
		{ "scope = a\"b\n", 1, "scope" },
		{ "quota_project = a b\n", 1, "quota_project" },
		{ "credentials = credential:k\n", 1, "CREDENTIALS_DIRECTORY" },
	};
	char err[512], want[256];

	unsetenv("CREDENTIALS_DIRECTORY");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(check(cases[i].text, err, sizeof(err)) == -1,
		    "case %zu", i);
		/* the [gcp] header is line 11 of load()'s file */
		snprintf(want, sizeof(want), "%s:%d: ", conf_path,
		    11 + cases[i].line);
		ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
		    "case %zu: '%s' does not start with '%s'", i, err, want);
		ck_assert_msg(strstr(err, cases[i].word) != NULL,
		    "case %zu: '%s' lacks '%s'", i, err, cases[i].word);
	}
}
END_TEST

/* open() KEY under a config with this [gcp] section. */
static int
open_with(const char *key_id, const char *gcp, char *err, size_t errlen,
    void **ret_state)
{
	struct event_base *base = event_base_new();
	struct http *h = http_new(base);
	struct config *c = load(gcp);
	struct prov_env env = { dir, base, c, h };
	void *st = NULL;
	int r;

	ck_assert_ptr_nonnull(h);
	err[0] = '\0';
	r = provider_gcp.open(key_id, &env, &st, err, errlen);
	if (r == 0 && ret_state == NULL)
		provider_gcp.close(st);
	else if (ret_state != NULL)
		*ret_state = st;
	if (ret_state == NULL) {
		config_free(c);
		http_free(h);
		event_base_free(base);
	}
	return r;
}

static const char *
sa_file(const char *token_uri)
{
	static char path[128];
	char *text = read_vector("service_account.json"), *p;

	snprintf(path, sizeof(path), "%s/sa.json", dir);
	if (token_uri != NULL) {
		char *fixed;

		p = strstr(text, "https://accounts.google.com/o/oauth2/token");
		ck_assert_ptr_nonnull(p);
		*p = '\0';
		ck_assert_int_ge(asprintf(&fixed, "%s%s\"\n}\n", text,
		    token_uri), 0);
		write_file(path, fixed);
		free(fixed);
	} else
		write_file(path, text);
	free(text);
	return path;
}

START_TEST(bad_key_ids)
{
	char err[512];

	ck_assert_int_eq(open_with(KEY "/cryptoKeyVersions/1", NULL, err,
	    sizeof(err), NULL), ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "cryptoKeyVersions"));
	ck_assert_int_eq(open_with("projects/p", NULL, err, sizeof(err),
	    NULL), ERR_BAD_REQUEST);
}
END_TEST

START_TEST(configured_service_account)
{
	char gcp[256], err[512];

	snprintf(gcp, sizeof(gcp), "credentials = %s\n", sa_file(NULL));
	ck_assert_msg(open_with(KEY, gcp, err, sizeof(err), NULL) == 0, "%s",
	    err);
}
END_TEST

START_TEST(env_service_account)
{
	char err[512];

	setenv("GOOGLE_APPLICATION_CREDENTIALS", sa_file(NULL), 1);
	ck_assert_msg(open_with(KEY, NULL, err, sizeof(err), NULL) == 0, "%s",
	    err);
}
END_TEST

START_TEST(config_wins_over_env)
{
	char gcp[256], err[512];

	snprintf(gcp, sizeof(gcp), "credentials = %s\n", sa_file(NULL));
	setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/x.json", 1);
	ck_assert_msg(open_with(KEY, gcp, err, sizeof(err), NULL) == 0, "%s",
	    err);
}
END_TEST

START_TEST(named_files_must_work)
{
	char path[128], gcp[256], err[512];

	/* missing */
	ck_assert_int_eq(open_with(KEY, "credentials = /nonexistent/c.json\n",
	    err, sizeof(err), NULL), ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/c.json"));
	setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/e.json", 1);
	ck_assert_int_eq(open_with(KEY, NULL, err, sizeof(err), NULL),
	    ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "GOOGLE_APPLICATION_CREDENTIALS"));
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	/* a type kmsd does not use */
	snprintf(path, sizeof(path), "%s/ext.json", dir);
	write_file(path, "{\"type\":\"external_account\"}");
	snprintf(gcp, sizeof(gcp), "credentials = %s\n", path);
	ck_assert_int_eq(open_with(KEY, gcp, err, sizeof(err), NULL),
	    ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "not supported"));
	/* a directory */
	snprintf(gcp, sizeof(gcp), "credentials = %s\n", dir);
	ck_assert_int_eq(open_with(KEY, gcp, err, sizeof(err), NULL),
	    ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "regular file"));
	/* a token_uri kmsd would send the assertion to in the clear */
	snprintf(gcp, sizeof(gcp), "credentials = %s\n",
	    sa_file("http://example.com/token"));
	ck_assert_int_eq(open_with(KEY, gcp, err, sizeof(err), NULL),
	    ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "token_uri"));
	ck_assert_ptr_null(strstr(err, "PRIVATE"));
}
END_TEST

START_TEST(missing_ca_file)
{
	char gcp[512], err[512];

	snprintf(gcp, sizeof(gcp), "credentials = %s\nca_file = %s/none.pem\n",
	    sa_file(NULL), dir);
	ck_assert_int_eq(open_with(KEY, gcp, err, sizeof(err), NULL),
	    ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "ca_file"));
}
END_TEST

static void
gcloud_file(const char *text)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/.config", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/.config/gcloud", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/.config/gcloud/"
	    "application_default_credentials.json", dir);
	write_file(path, text);
}

START_TEST(gcloud_user_file)
{
	char err[512];

	gcloud_file("{\"type\":\"authorized_user\",\"client_id\":\"a\","
	    "\"client_secret\":\"b\",\"refresh_token\":\"c\"}");
	ck_assert_msg(open_with(KEY, NULL, err, sizeof(err), NULL) == 0, "%s",
	    err);
}
END_TEST

START_TEST(gcloud_other_type_falls_to_metadata)
{
	char err[512];

	gcloud_file("{\"type\":\"external_account\"}");
	setenv("GCE_METADATA_HOST", "127.0.0.1:9", 1);
	ck_assert_msg(open_with(KEY, NULL, err, sizeof(err), NULL) == 0, "%s",
	    err);
}
END_TEST

START_TEST(gcloud_malformed_is_an_error)
{
	char err[512];

	gcloud_file("{\"type\":\"authorized_user\"");
	setenv("GCE_METADATA_HOST", "127.0.0.1:9", 1);
	ck_assert_int_eq(open_with(KEY, NULL, err, sizeof(err), NULL),
	    ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "application_default_credentials"));
}
END_TEST

START_TEST(metadata_host_from_config)
{
	char err[512];

	setenv("GCE_METADATA_HOST", "bad/host", 1);
	ck_assert_msg(open_with(KEY, "metadata_host = 127.0.0.1:9\n", err,
	    sizeof(err), NULL) == 0, "%s", err);
	ck_assert_int_eq(open_with(KEY, NULL, err, sizeof(err), NULL),
	    ERR_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "GCE_METADATA_HOST"));
}
END_TEST

static int sync_done_calls;

static void
sync_done(struct prov_call *call)
{
	sync_done_calls++;
}

START_TEST(empty_input_fails_at_once)
{
	struct event_base *base = event_base_new();
	struct http *h = http_new(base);
	struct config *c;
	struct prov_env env;
	struct prov_call call;
	struct context ctx;
	char gcp[256], err[512] = "";
	void *st = NULL;

	snprintf(gcp, sizeof(gcp), "credentials = %s\n", sa_file(NULL));
	c = load(gcp);
	env = (struct prov_env){ dir, base, c, h };
	ck_assert_msg(provider_gcp.open(KEY, &env, &st, err, sizeof(err)) == 0,
	    "%s", err);
	memset(&call, 0, sizeof(call));
	memset(&ctx, 0, sizeof(ctx));
	buf_init(&call.out, PROV_MAX_OUT);
	call.op = PROV_WRAP;
	call.in = (const uint8_t *)"";
	call.ctx = &ctx;
	call.done = sync_done;
	provider_gcp.start(st, &call);
	ck_assert_int_eq(sync_done_calls, 1);
	ck_assert_int_eq(call.err, ERR_BAD_REQUEST);
	call.op = PROV_UNWRAP;
	provider_gcp.start(st, &call);
	ck_assert_int_eq(sync_done_calls, 2);
	ck_assert_int_eq(call.err, ERR_DECRYPTION_FAILED);
	buf_done(&call.out);
	provider_gcp.close(st);
	config_free(c);
	http_free(h);
	event_base_free(base);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("gcp");
	TCase *cfg = tcase_create("config");
	TCase *op = tcase_create("open");

	tcase_add_checked_fixture(cfg, setup, teardown);
	tcase_add_test(cfg, matches_projects_ids);
	tcase_add_test(cfg, good_sections);
	tcase_add_test(cfg, bad_sections);
	suite_add_tcase(s, cfg);
	tcase_add_checked_fixture(op, setup, teardown);
	tcase_add_test(op, bad_key_ids);
	tcase_add_test(op, configured_service_account);
	tcase_add_test(op, env_service_account);
	tcase_add_test(op, config_wins_over_env);
	tcase_add_test(op, named_files_must_work);
	tcase_add_test(op, missing_ca_file);
	tcase_add_test(op, gcloud_user_file);
	tcase_add_test(op, gcloud_other_type_falls_to_metadata);
	tcase_add_test(op, gcloud_malformed_is_an_error);
	tcase_add_test(op, metadata_host_from_config);
	tcase_add_test(op, empty_input_fails_at_once);
	suite_add_tcase(s, op);
	return s;
}

#include "check_main.h"
