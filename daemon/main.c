/*
 * main.c: kmsd's entry point: arguments, hardening, config, keyring,
 * listeners, signals, the loop, and a clean exit.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "keys.h"
#include "log.h"
#include "server.h"

/* OpenSSL secure heap for master keys and other long-lived secrets:
 * locked in memory, guard pages, left out of core dumps. */
#define MAIN_SECURE_HEAP (256 * 1024)
#define MAIN_SECURE_MIN 32

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: kmsd [--config FILE] [--check-config] [--debug] "
	    "[--version]\n"
	    "  -c, --config FILE   configuration (default %s)\n"
	    "  -t, --check-config  check the configuration and exit\n"
	    "  -d, --debug         log every request\n"
	    "  -V, --version       print the version and exit\n",
	    CONFIG_DEFAULT_PATH);
}

/* No core dumps, no ptrace by other users, private files by default. */
static void
main_harden(void)
{
	struct rlimit rl = { 0, 0 };

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		log_warn("prctl(PR_SET_DUMPABLE): %s", strerror(errno));
	if (setrlimit(RLIMIT_CORE, &rl) != 0)
		log_warn("setrlimit(RLIMIT_CORE): %s", strerror(errno));
	umask(077);
	if (CRYPTO_secure_malloc_init(MAIN_SECURE_HEAP, MAIN_SECURE_MIN) == 0)
		log_warn("OpenSSL secure heap unavailable (RLIMIT_MEMLOCK?); "
		    "secrets are still wiped after use");
}

static int
main_state_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		log_err("state_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		log_err("state_dir %s is not a directory", dir);
		return -1;
	}
	if ((st.st_mode & 022) != 0) {
		log_err("state_dir %s is writable by group or others", dir);
		return -1;
	}
	return 0;
}

static void
main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *s = arg;

	log_info("%s: finishing requests in flight, then exiting",
	    strsignal((int)sig));
	sd_notify(0, "STOPPING=1");
	server_drain(s);
}

static int
main_check_config(const char *path)
{
	struct config *cfg;
	char err[512];
	int bad = 0;

	if (config_load(path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (size_t i = 0; i < cfg->n_keys; i++)
		for (size_t j = 0; j < cfg->keys[i].n_versions; j++) {
			const struct cfg_version *v = &cfg->keys[i].versions[j];

			if (provider_find(v->key_id) == NULL && !bad) {
				fprintf(stderr, "%s:%d: [key %s]: no provider "
				    "for key id '%s' in this build\n", path,
				    v->line, cfg->keys[i].name, v->key_id);
				bad = 1;
			}
		}
	if (!bad)
		printf("%s: ok (%zu keys, %zu sockets)\n", path, cfg->n_keys,
		    cfg->n_sockets);
	config_free(cfg);
	return bad;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 't' },
		{ "debug", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = CONFIG_DEFAULT_PATH;
	struct event *sigterm = NULL, *sigint = NULL;
	struct event_base *base = NULL;
	struct keyring *kr = NULL;
	struct config *cfg = NULL;
	struct server srv;
	struct prov_env env;
	int ch, check = 0, debug = 0, rc = 1;
	char err[512];

	while ((ch = getopt_long(argc, argv, "c:tdVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'd':
			debug = 1;
			break;
		case 'V':
			printf("kmsd %s\n", KMSD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init(debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	if (check)
		return main_check_config(path);

	main_harden();
	signal(SIGPIPE, SIG_IGN);
	memset(&srv, 0, sizeof(srv));
	if (config_load(path, &cfg, err, sizeof(err)) != 0) {
		log_err("%s", err);
		goto out;
	}
	if (main_state_dir(cfg->state_dir) != 0)
		goto out;
	if ((base = event_base_new()) == NULL) {
		log_err("cannot create the event loop");
		goto out;
	}
	env.state_dir = cfg->state_dir;
	env.base = base;
	if (keyring_open(cfg, &env, &kr, err, sizeof(err)) != 0) {
		log_err("%s", err);
		goto out;
	}
	if (server_init(&srv, base, cfg, kr) != 0) {
		log_err("out of memory");
		goto out;
	}
	if (server_start(&srv, err, sizeof(err)) != 0) {
		log_err("%s", err);
		goto out;
	}
	sigterm = evsignal_new(base, SIGTERM, main_signal_cb, &srv);
	sigint = evsignal_new(base, SIGINT, main_signal_cb, &srv);
	if (sigterm == NULL || sigint == NULL ||
	    evsignal_add(sigterm, NULL) != 0 || evsignal_add(sigint, NULL) != 0) {
		log_err("cannot install signal handlers");
		goto out;
	}
	log_info("kmsd %s ready: %zu keys, %zu sockets", KMSD_VERSION,
	    cfg->n_keys, cfg->n_sockets);
	sd_notifyf(0, "READY=1\nSTATUS=serving %zu keys on %zu sockets",
	    cfg->n_keys, cfg->n_sockets);
	if (event_base_dispatch(base) < 0) {
		log_err("event loop failed");
		goto out;
	}
	rc = 0;
	log_info("stopped");
out:
	server_free(&srv);
	if (sigterm != NULL)
		event_free(sigterm);
	if (sigint != NULL)
		event_free(sigint);
	keyring_unref(kr);
	config_free(cfg);
	if (base != NULL)
		event_base_free(base);
	CRYPTO_secure_malloc_done();
	return rc;
}
