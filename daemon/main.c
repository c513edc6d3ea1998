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

#include "audit.h"
#include "cache.h"
#include "config.h"
#include "http.h"
#include "keyfile.h"
#include "keys.h"
#include "libmem.h"
#include "log.h"
#include "rand.h"
#include "server.h"
#include "state.h"
#include "stats.h"
#include "turn.h"

/* OpenSSL secure heap for master keys and other long-lived secrets:
 * locked in memory, guard pages, left out of core dumps. */
#define MAIN_SECURE_HEAP (256 * 1024)
#define MAIN_SECURE_MIN 32

/* The file reloads read again. */
static const char *main_config_path = CONFIG_DEFAULT_PATH;

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

	turn_mark_secret();

	log_info("%s: finishing requests in flight, then exiting",
	    strsignal((int)sig));
	sd_notify(0, "STOPPING=1");
	server_drain(s);
}

/* Open cfg's audit log, with the HMAC key from state_dir when asked. */
static int
main_audit_open(const struct config *cfg, struct audit **ret, char *err,
    size_t errlen)
{
	uint8_t key[AUDIT_HMAC_KEY_LEN];
	char path[4096];
	int r;

	*ret = NULL;
	if (cfg->audit_log == NULL)
		return 0;
	if (cfg->audit_hmac) {
		snprintf(path, sizeof(path), "%s/audit-hmac.key",
		    cfg->state_dir);
		if (keyfile_get(cfg->state_dir, path, key, sizeof(key), err,
		    errlen) != 0)
			return -1;
	}
	r = audit_open(cfg->audit_log, cfg->audit_hmac ? AUDIT_CTX_HMAC :
	    AUDIT_CTX_PLAIN, cfg->audit_hmac ? key : NULL, ret, err, errlen);
	OPENSSL_cleanse(key, sizeof(key));
	return r;
}

static void
main_status(struct server *s)
{
	sd_notifyf(0, "STATUS=%zu keys, %zu sockets, decryption %s",
	    s->cfg->n_keys, s->n_lst, s->decrypt_disabled ? "DISABLED" :
	    "enabled");
}

/*
 * Stack the loop turn's callbacks used, wiped at its end: data keys and
 * plaintexts pass through registers, and code kmsd does not control
 * spills registers to the stack and leaves them there. The memory scan of
 * tests/integration/test_secrets.py found the first data key of a run
 * twice in the save area of the dynamic linker's lazy binding (the first
 * call of a library function saves every vector register), 8 KiB below
 * this frame. Called from the loop, this frame lies where the callbacks'
 * frames did; the cost is one 32 KiB clear after each turn that handled
 * key material (turn.h; wipe(), not OPENSSL_cleanse, see buf.h).
 */
#define MAIN_STACK_SCRUB (32 * 1024)

static __attribute__((noinline)) void
main_scrub_stack(void)
{
	uint8_t pad[MAIN_STACK_SCRUB];

	wipe(pad, sizeof(pad));
}

/* The data-key cache exists while some key has a cache_ttl (cache.h). */
static void
main_cache(struct server *s, const struct config *cfg)
{
	int want = 0;

	for (size_t i = 0; i < cfg->n_keys; i++)
		want |= cfg->keys[i].cache_ttl_ms > 0;
	if (!want) {
		cache_free(s->cache);
		s->cache = NULL;
		return;
	}
	if (s->cache == NULL && (s->cache = cache_new()) == NULL)
		log_warn("no room in the secure heap for the data-key cache: "
		    "every decrypt goes to its KMS");
}

/* SIGHUP and the admin op: keys, policies and sockets change without
 * dropping connections; a bad config leaves the running one in place. */
static int
main_reload(struct server *s, char *err, size_t errlen)
{
	struct config *cfg = NULL;
	struct keyring *kr = NULL;
	struct audit *au = NULL;
	struct prov_env env;
	int same_audit;

	sd_notify(0, "RELOADING=1");
	if (config_load(main_config_path, &cfg, err, errlen) != 0)
		goto fail;
	if (strcmp(cfg->state_dir, s->cfg->state_dir) != 0) {
		snprintf(err, errlen, "%s: state_dir cannot change on reload; "
		    "restart kmsd", main_config_path);
		goto fail;
	}
	env.state_dir = cfg->state_dir;
	env.base = s->base;
	env.cfg = cfg;
	env.http = s->http;
	if (keyring_open(cfg, &env, &kr, err, errlen) != 0)
		goto fail;
	same_audit = s->audit != NULL && cfg->audit_log != NULL &&
	    strcmp(cfg->audit_log, s->cfg->audit_log) == 0 &&
	    cfg->audit_hmac == s->cfg->audit_hmac;
	if (!same_audit && main_audit_open(cfg, &au, err, errlen) != 0)
		goto fail;
	if (server_reconfigure(s, cfg, err, errlen) != 0)
		goto fail;
	/* Committed. Entries batched so far go to the file open now. */
	server_commit(s);
	/* Keys, versions or their cache settings may have changed. */
	cache_flush(s->cache);
	main_cache(s, cfg);
	if (same_audit) {
		char aerr[256] = "";

		if (audit_reopen(s->audit, aerr, sizeof(aerr)) != 0)
			log_err("audit log %s: reopen failed (%s); entries "
			    "keep going to the file open before",
			    cfg->audit_log, aerr);
		else if (aerr[0] != '\0')
			log_warn("audit log %s: %s", cfg->audit_log, aerr);
	} else {
		audit_close(s->audit);
		s->audit = au;
	}
	keyring_unref(s->kr);
	s->kr = kr;
	config_free(s->srv_cfg_owned);
	s->srv_cfg_owned = cfg;
	log_info("reloaded %s: %zu keys, %zu sockets", main_config_path,
	    cfg->n_keys, cfg->n_sockets);
	sd_notify(0, "READY=1");
	main_status(s);
	return 0;
fail:
	log_err("reload failed, keeping the running configuration: %s", err);
	audit_close(au);
	keyring_unref(kr);
	config_free(cfg);
	sd_notify(0, "READY=1");
	return -1;
}

static void
main_hup_cb(evutil_socket_t sig, short what, void *arg)
{
	char err[512];

	turn_mark_secret();

	(void)main_reload(arg, err, sizeof(err));
}

static void
main_usr1_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *s = arg;
	char err[256] = "";

	turn_mark_secret();

	if (s->audit == NULL)
		return;
	server_commit(s);
	if (audit_reopen(s->audit, err, sizeof(err)) != 0)
		log_err("audit log %s: reopen failed: %s", s->cfg->audit_log,
		    err);
	else if (err[0] != '\0')
		log_warn("audit log %s reopened: %s", s->cfg->audit_log, err);
	else
		log_info("audit log %s reopened", s->cfg->audit_log);
}

static void
main_metrics_cb(evutil_socket_t fd, short what, void *arg)
{
	static int failing;
	struct server *s = arg;
	struct stats_state st;
	int64_t now = ops_now_s();

	/* The periodic wipe behind turn.h's marks. */
	turn_mark_secret();

	if (s->cfg->metrics_textfile == NULL)
		return;
	st.decrypt_disabled = s->decrypt_disabled;
	st.disabled_reason = s->decrypt_disabled ? s->disabled_reason : NULL;
	st.uptime_s = (uint64_t)(now - s->started_s);
	if (stats_write_textfile(s->stats, &st, now,
	    s->cfg->metrics_textfile) != 0) {
		if (!failing)
			log_err("metrics_textfile %s: %m",
			    s->cfg->metrics_textfile);
		failing = 1;
	} else
		failing = 0;
}

/* WATCHDOG=1 from the loop itself: if the loop stalls, the pings stop and
 * systemd restarts kmsd. */
static void
main_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	turn_mark_secret();

	sd_notify(0, "WATCHDOG=1");
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
	if (!bad && provider_check_config(cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		bad = 1;
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
	struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
	struct event *sigusr1 = NULL, *metrics = NULL, *watchdog = NULL;
	uint64_t wd_usec = 0;
	struct timeval tv;
	int dis;
	struct event_base *base = NULL;
	struct keyring *kr = NULL;
	struct config *cfg = NULL;
	struct http *http = NULL;
	struct server srv;
	struct prov_env env;
	int ch, check = 0, debug = 0, rc = 1;
	char err[512];

	/* Before anything can allocate through OpenSSL. */
	if (libmem_install() != 0) {
		log_err("cannot give OpenSSL allocation functions that wipe "
		    "what they free");
		return 1;
	}
	while ((ch = getopt_long(argc, argv, "c:tdVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			main_config_path = path = optarg;
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
	/* A file-size limit on the audit log must fail writes (closed), not
	 * kill the daemon. */
	signal(SIGXFSZ, SIG_IGN);
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
	if ((http = http_new(base)) == NULL) {
		log_err("cannot set up the HTTPS transport");
		goto out;
	}
	env.state_dir = cfg->state_dir;
	env.base = base;
	env.cfg = cfg;
	env.http = http;
	if (keyring_open(cfg, &env, &kr, err, sizeof(err)) != 0) {
		log_err("%s", err);
		goto out;
	}
	if (server_init(&srv, base, cfg, kr) != 0 ||
	    (srv.stats = stats_new()) == NULL) {
		log_err("out of memory");
		goto out;
	}
	srv.srv_cfg_owned = cfg;
	srv.http = http;
	cfg = NULL;
	kr = NULL;
	srv.reload = main_reload;
	srv.started_s = ops_now_s();
	window_init(&srv.breaker);
	dis = state_read_disabled(srv.cfg->state_dir, srv.disabled_reason,
	    sizeof(srv.disabled_reason));
	if (dis != 0) {
		srv.decrypt_disabled = 1;
		if (dis < 0)
			snprintf(srv.disabled_reason,
			    sizeof(srv.disabled_reason), "kill switch state "
			    "in %s unreadable", srv.cfg->state_dir);
		log_event(LOG_LEVEL_WARN, LOG_MSGID_DECRYPT_DISABLED,
		    "decryption is disabled (%s); `kmsctl admin "
		    "enable-decrypt` turns it back on", srv.disabled_reason);
	}
	if (main_audit_open(srv.cfg, &srv.audit, err, sizeof(err)) != 0) {
		log_err("audit log %s: %s", srv.cfg->audit_log, err);
		goto out;
	}
	main_cache(&srv, srv.cfg);
	if (server_start(&srv, err, sizeof(err)) != 0) {
		log_err("%s", err);
		goto out;
	}
	sigterm = evsignal_new(base, SIGTERM, main_signal_cb, &srv);
	sigint = evsignal_new(base, SIGINT, main_signal_cb, &srv);
	sighup = evsignal_new(base, SIGHUP, main_hup_cb, &srv);
	sigusr1 = evsignal_new(base, SIGUSR1, main_usr1_cb, &srv);
	metrics = event_new(base, -1, EV_PERSIST, main_metrics_cb, &srv);
	tv.tv_sec = srv.cfg->metrics_interval_ms / 1000;
	tv.tv_usec = (srv.cfg->metrics_interval_ms % 1000) * 1000;
	if (sigterm == NULL || sigint == NULL || sighup == NULL ||
	    sigusr1 == NULL || metrics == NULL ||
	    evsignal_add(sigterm, NULL) != 0 || evsignal_add(sigint, NULL) != 0 ||
	    evsignal_add(sighup, NULL) != 0 || evsignal_add(sigusr1, NULL) != 0 ||
	    event_add(metrics, &tv) != 0) {
		log_err("cannot install signal handlers");
		goto out;
	}
	main_metrics_cb(-1, 0, &srv);
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
		/* Twice per period, as sd_watchdog_enabled(3) advises. */
		struct timeval wtv = { (time_t)(wd_usec / 2 / 1000000),
		    (suseconds_t)(wd_usec / 2 % 1000000) };

		watchdog = event_new(base, -1, EV_PERSIST, main_watchdog_cb,
		    NULL);
		if (watchdog == NULL || event_add(watchdog, &wtv) != 0) {
			log_err("cannot arm the watchdog timer");
			goto out;
		}
		log_info("watchdog: pinging every %llu ms",
		    (unsigned long long)(wd_usec / 2000));
	}
	log_info("kmsd %s ready: %zu keys, %zu sockets", KMSD_VERSION,
	    srv.cfg->n_keys, srv.n_lst);
	sd_notify(0, "READY=1");
	main_status(&srv);
	/* One loop turn at a time: after each, the audit entries of the
	 * turn go out in one write and the answers waiting on them follow
	 * (server_commit), then the stack is wiped if the turn handled key
	 * material, as the start did. */
	for (;;) {
		int lr;

		if (turn_secret) {
			main_scrub_stack();
			turn_secret = 0;
		}
		ops_clock_tick();
		lr = event_base_loop(base, EVLOOP_ONCE);
		server_commit(&srv);
		if (lr < 0) {
			log_err("event loop failed");
			goto out;
		}
		if (lr == 1 || event_base_got_break(base) ||
		    event_base_got_exit(base))
			break;
	}
	main_scrub_stack();
	rc = 0;
	log_info("stopped");
out:
	server_free(&srv);
	ops_shutdown();
	rand_done();
	if (sigterm != NULL)
		event_free(sigterm);
	if (sigint != NULL)
		event_free(sigint);
	if (sighup != NULL)
		event_free(sighup);
	if (sigusr1 != NULL)
		event_free(sigusr1);
	if (metrics != NULL)
		event_free(metrics);
	if (watchdog != NULL)
		event_free(watchdog);
	audit_close(srv.audit);
	cache_free(srv.cache);
	stats_free(srv.stats);
	keyring_unref(srv.kr);
	config_free(srv.srv_cfg_owned);
	for (size_t i = 0; i < srv.n_kw; i++)
		free(srv.kw[i].name);
	free(srv.kw);
	keyring_unref(kr);
	config_free(cfg);
	/* After every key: providers' requests are cancelled by then. */
	http_free(http);
	if (base != NULL)
		event_base_free(base);
	CRYPTO_secure_malloc_done();
	return rc;
}
