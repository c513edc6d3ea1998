/*
 * config.c: strict INI configuration (see config.h).
 *
 * libinih drives the parse; our reader counts lines so every error, from
 * the handler or from the checks after parsing, names file:line. A line
 * longer than libinih's buffer is an error rather than silently split.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <ini.h>

#include "cache.h"
#include "config.h"
#include "duration.h"
#include "err.h"
#include "stored.h"

/* libinih's line buffer (INI_MAX_LINE in ini.h). */
#define CONFIG_LINE_MAX 200
/* Defaults; each can be set in [kmsd]. */
#define CONFIG_DEFAULT_STATE_DIR "/var/lib/kmsd"
#define CONFIG_DEFAULT_MAX_CONNECTIONS 1024
#define CONFIG_DEFAULT_FRAME_TIMEOUT_MS 10000
#define CONFIG_DEFAULT_IDLE_TIMEOUT_MS 300000
/* Socket files are private unless the operator opens them up. */
#define CONFIG_DEFAULT_SOCKET_MODE 0600
/* The admin socket is root's alone unless the operator says otherwise. */
#define CONFIG_DEFAULT_ADMIN_MODE 0600
/* How often the metrics textfile is rewritten. */
#define CONFIG_DEFAULT_METRICS_INTERVAL_MS 5000
/* Largest decrypt_limit: the sliding window counts 32-bit buckets. */
#define CONFIG_MAX_DECRYPT_LIMIT 100000000UL
/* Hard ceiling for max_connections: each costs a descriptor and buffers. */
#define CONFIG_MAX_CONNECTIONS_CEIL 65536
/* The longest duration any of kmsd's own options takes: one day. */
#define CONFIG_MAX_DURATION_MS 86400000UL

struct parse {
	struct config *cfg;
	FILE *fp;
	int line;		/* line being handled */
	int section_line;	/* line of the last [section] header */
	int err_line;		/* first error's line, 0 = none */
	char err[256];
	int toolong;
	/* [kmsd] admin_* options, turned into a socket at the end */
	char *admin_path;
	mode_t admin_mode;
	gid_t admin_group;
	int admin_line;
};

static void parse_error(struct parse *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
parse_error(struct parse *p, int line, const char *fmt, ...)
{
	va_list ap;

	if (p->err_line != 0)
		return;
	p->err_line = line;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
}

static char *
config_reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	char *r;

	if ((r = fgets(str, num, p->fp)) == NULL)
		return NULL;
	p->line++;
	if (str[strspn(str, " \t")] == '[')
		p->section_line = p->line;
	if (strchr(str, '\n') == NULL && !feof(p->fp)) {
		parse_error(p, p->line, "line longer than %d characters",
		    CONFIG_LINE_MAX - 2);
		p->toolong = 1;
		/* Skip the rest of the line so counting stays right. */
		int c;
		while ((c = fgetc(p->fp)) != EOF && c != '\n')
			;
	}
	return r;
}

static int
config_valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CONFIG_MAX_NAME)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

static int
config_parse_uint(const char *s, unsigned long min, unsigned long max,
    unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*ret = v;
	return 0;
}

/* "10" or "10s" = seconds, "500ms", "5m". */
static int
config_parse_duration(const char *s, unsigned *ret_ms)
{
	/* a day is more than any sane timeout */
	return duration_parse_ms(s, 1, CONFIG_MAX_DURATION_MS, ret_ms);
}

static struct cfg_key *
config_find_key(struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_keys; i++)
		if (strcmp(c->keys[i].name, name) == 0)
			return &c->keys[i];
	return NULL;
}

static struct cfg_socket *
config_find_socket(struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_sockets; i++)
		if (strcmp(c->sockets[i].name, name) == 0)
			return &c->sockets[i];
	return NULL;
}

/* Set a string option once; a repeat is an error. */
static int
config_set_str(struct parse *p, char **dst, const char *name,
    const char *value)
{
	if (*dst != NULL) {
		parse_error(p, p->line, "'%s' given twice", name);
		return -1;
	}
	if (*value == '\0') {
		parse_error(p, p->line, "'%s' is empty", name);
		return -1;
	}
	if ((*dst = strdup(value)) == NULL) {
		parse_error(p, p->line, "out of memory");
		return -1;
	}
	return 0;
}

/* "600/min" or "0". */
static int
config_parse_rate(const char *s, uint32_t *ret)
{
	char buf[32];
	const char *slash = strchr(s, '/');
	unsigned long v;
	size_t n;

	if (strcmp(s, "0") == 0) {
		*ret = 0;
		return 0;
	}
	if (slash == NULL || strcmp(slash, "/min") != 0)
		return -1;
	n = (size_t)(slash - s);
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (config_parse_uint(buf, 0, CONFIG_MAX_DECRYPT_LIMIT, &v) != 0)
		return -1;
	*ret = (uint32_t)v;
	return 0;
}

static int
config_parse_mode(const char *value, mode_t *ret)
{
	char *end;
	unsigned long m;

	errno = 0;
	m = strtoul(value, &end, 8);
	if (errno != 0 || *end != '\0' || end == value || m > 0777 ||
	    (m & 0111) != 0 || (m & 0600) != 0600)
		return -1;
	*ret = (mode_t)m;
	return 0;
}

static int
config_resolve_user(const char *name, uid_t *ret)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	unsigned long v;

	if (isdigit((unsigned char)name[0]))
		return config_parse_uint(name, 0, (uid_t)-2, &v) == 0 ?
		    (*ret = (uid_t)v, 0) : -1;
	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
		return -1;
	*ret = pw.pw_uid;
	return 0;
}

static int
config_resolve_group(const char *name, gid_t *ret)
{
	struct group gr, *res = NULL;
	char buf[16384];
	unsigned long v;

	if (isdigit((unsigned char)name[0]))
		return config_parse_uint(name, 0, (gid_t)-2, &v) == 0 ?
		    (*ret = (gid_t)v, 0) : -1;
	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) != 0 || res == NULL)
		return -1;
	*ret = gr.gr_gid;
	return 0;
}

/* Split a "a, b c" list into at most CONFIG_MAX_LIST words; each word
 * goes to fn. */
static int
config_each_word(struct parse *p, const char *name, const char *value,
    int (*fn)(struct parse *, void *, const char *), void *arg)
{
	char *copy, *tok, *save = NULL;
	int n = 0, r = 0;

	if ((copy = strdup(value)) == NULL) {
		parse_error(p, p->line, "out of memory");
		return -1;
	}
	for (tok = strtok_r(copy, ", \t", &save); tok != NULL && r == 0;
	    tok = strtok_r(NULL, ", \t", &save)) {
		if (++n > CONFIG_MAX_LIST) {
			parse_error(p, p->line, "%s: more than %d entries",
			    name, CONFIG_MAX_LIST);
			r = -1;
			break;
		}
		r = fn(p, arg, tok);
	}
	free(copy);
	if (r == 0 && n == 0) {
		parse_error(p, p->line, "'%s' is empty", name);
		r = -1;
	}
	return r;
}

static int
config_add_user(struct parse *p, void *arg, const char *w)
{
	struct sock_policy *pol = arg;
	uid_t *n;

	if ((n = reallocarray(pol->users, pol->n_users + 1, sizeof(*n))) ==
	    NULL) {
		parse_error(p, p->line, "out of memory");
		return -1;
	}
	pol->users = n;
	if (config_resolve_user(w, &n[pol->n_users]) != 0) {
		parse_error(p, p->line, "peer_users: unknown user '%s'", w);
		return -1;
	}
	pol->n_users++;
	return 0;
}

static int
config_add_group(struct parse *p, void *arg, const char *w)
{
	struct sock_policy *pol = arg;
	gid_t *n;

	if ((n = reallocarray(pol->groups, pol->n_groups + 1, sizeof(*n))) ==
	    NULL) {
		parse_error(p, p->line, "out of memory");
		return -1;
	}
	pol->groups = n;
	if (config_resolve_group(w, &n[pol->n_groups]) != 0) {
		parse_error(p, p->line, "peer_groups: unknown group '%s'", w);
		return -1;
	}
	pol->n_groups++;
	return 0;
}

static int
config_add_unit(struct parse *p, void *arg, const char *w)
{
	struct sock_policy *pol = arg;
	char **n;

	for (const char *c = w; *c != '\0'; c++)
		if (!isalnum((unsigned char)*c) && strchr(":_.\\-@", *c) == NULL) {
			parse_error(p, p->line, "peer_units: bad unit name "
			    "'%s'", w);
			return -1;
		}
	if (strchr(w, '.') == NULL) {
		parse_error(p, p->line, "peer_units: '%s' needs its suffix "
		    "(e.g. %s.service)", w, w);
		return -1;
	}
	if ((n = reallocarray(pol->units, pol->n_units + 1, sizeof(*n))) ==
	    NULL || (n[pol->n_units] = strdup(w)) == NULL) {
		if (n != NULL)
			pol->units = n;
		parse_error(p, p->line, "out of memory");
		return -1;
	}
	pol->units = n;
	pol->n_units++;
	return 0;
}

static int
config_add_require(struct parse *p, void *arg, const char *w)
{
	struct sock_policy *pol = arg;
	struct ctx_pair *n;
	const char *eq = strchr(w, '=');
	char *k, *v;

	if (eq == NULL || eq == w) {
		parse_error(p, p->line, "context_require: '%s' is not "
		    "name=value", w);
		return -1;
	}
	if ((n = reallocarray(pol->require, pol->n_require + 1,
	    sizeof(*n))) == NULL) {
		parse_error(p, p->line, "out of memory");
		return -1;
	}
	pol->require = n;
	k = strndup(w, (size_t)(eq - w));
	v = strdup(eq + 1);
	if (k == NULL || v == NULL) {
		free(k);
		free(v);
		parse_error(p, p->line, "out of memory");
		return -1;
	}
	n[pol->n_require].k = (struct str){ k, strlen(k) };
	n[pol->n_require].v = (struct str){ v, strlen(v) };
	pol->n_require++;
	/* k and v now belong to pol->require (freed by config_free);
	 * cppcheck does not follow them into the struct str. */
	/* cppcheck-suppress memleak */
	return 0;
}

static int
config_kmsd_option(struct parse *p, const char *name, const char *value)
{
	struct config *c = p->cfg;
	unsigned long v;

	if (strcmp(name, "state_dir") == 0) {
		if (value[0] != '/') {
			parse_error(p, p->line, "state_dir must be an "
			    "absolute path");
			return -1;
		}
		return config_set_str(p, &c->state_dir, name, value);
	}
	if (strcmp(name, "context_json") == 0) {
		if (strcmp(value, "activesupport") == 0)
			c->ctx_style = CTX_ACTIVESUPPORT;
		else if (strcmp(value, "plain") == 0)
			c->ctx_style = CTX_PLAIN;
		else {
			parse_error(p, p->line, "context_json must be "
			    "activesupport or plain");
			return -1;
		}
		return 0;
	}
	if (strcmp(name, "max_connections") == 0) {
		if (config_parse_uint(value, 1, CONFIG_MAX_CONNECTIONS_CEIL,
		    &v) != 0) {
			parse_error(p, p->line, "max_connections must be "
			    "1..%d", CONFIG_MAX_CONNECTIONS_CEIL);
			return -1;
		}
		c->max_connections = (unsigned)v;
		return 0;
	}
	if (strcmp(name, "frame_timeout") == 0 ||
	    strcmp(name, "idle_timeout") == 0) {
		unsigned *dst = name[0] == 'f' ? &c->frame_timeout_ms :
		    &c->idle_timeout_ms;
		if (config_parse_duration(value, dst) != 0) {
			parse_error(p, p->line, "%s must be a duration like "
			    "10s, 500ms or 5m", name);
			return -1;
		}
		return 0;
	}
	if (strcmp(name, "admin_socket") == 0) {
		if (value[0] != '/' || strlen(value) >=
		    sizeof(((struct sockaddr_un *)0)->sun_path)) {
			parse_error(p, p->line, "admin_socket must be an "
			    "absolute path shorter than %zu bytes",
			    sizeof(((struct sockaddr_un *)0)->sun_path));
			return -1;
		}
		p->admin_line = p->line;
		return config_set_str(p, &p->admin_path, name, value);
	}
	if (strcmp(name, "admin_mode") == 0) {
		if (config_parse_mode(value, &p->admin_mode) != 0) {
			parse_error(p, p->line, "admin_mode must be octal "
			    "like 0600 (owner read-write, no execute bits)");
			return -1;
		}
		return 0;
	}
	if (strcmp(name, "admin_group") == 0) {
		if (config_resolve_group(value, &p->admin_group) != 0) {
			parse_error(p, p->line, "admin_group: unknown group "
			    "'%s'", value);
			return -1;
		}
		return 0;
	}
	if (strcmp(name, "audit_log") == 0) {
		if (value[0] != '/') {
			parse_error(p, p->line, "audit_log must be an "
			    "absolute path");
			return -1;
		}
		return config_set_str(p, &c->audit_log, name, value);
	}
	if (strcmp(name, "audit_context") == 0) {
		if (strcmp(value, "plain") == 0)
			c->audit_hmac = 0;
		else if (strcmp(value, "hmac") == 0)
			c->audit_hmac = 1;
		else {
			parse_error(p, p->line, "audit_context must be plain "
			    "or hmac");
			return -1;
		}
		return 0;
	}
	if (strcmp(name, "decrypt_limit") == 0) {
		if (config_parse_rate(value, &c->decrypt_limit) != 0) {
			parse_error(p, p->line, "decrypt_limit must be N/min "
			    "(N up to %lu) or 0", CONFIG_MAX_DECRYPT_LIMIT);
			return -1;
		}
		return 0;
	}
	if (strcmp(name, "metrics_textfile") == 0) {
		if (value[0] != '/') {
			parse_error(p, p->line, "metrics_textfile must be an "
			    "absolute path");
			return -1;
		}
		return config_set_str(p, &c->metrics_textfile, name, value);
	}
	if (strcmp(name, "metrics_interval") == 0) {
		if (config_parse_duration(value, &c->metrics_interval_ms) != 0) {
			parse_error(p, p->line, "metrics_interval must be a "
			    "duration like 5s");
			return -1;
		}
		return 0;
	}
	parse_error(p, p->line, "unknown option '%s' in [kmsd]", name);
	return -1;
}

static int
config_key_option(struct parse *p, struct cfg_key *k, const char *name,
    const char *value)
{
	struct cfg_version *v;
	unsigned long n;
	uint32_t ver = 0;	/* 0 = the current version's key_id */

	if (strcmp(name, "decrypt_limit") == 0) {
		if (config_parse_rate(value, &k->decrypt_limit) != 0) {
			parse_error(p, p->line, "decrypt_limit must be N/min "
			    "(N up to %lu) or 0", CONFIG_MAX_DECRYPT_LIMIT);
			return -1;
		}
		return 0;
	}
	if (strcmp(name, "cache_ttl") == 0) {
		unsigned ms;

		if (strcmp(value, "0") == 0)
			ms = 0;
		else if (config_parse_duration(value, &ms) != 0 ||
		    ms > CACHE_MAX_TTL_MS) {
			parse_error(p, p->line, "cache_ttl must be a duration "
			    "like 30s, at most 1h (60m), or 0 (no cache)");
			return -1;
		}
		k->cache_ttl_ms = ms;
		return 0;
	}
	if (strcmp(name, "cache_max_uses") == 0) {
		if (config_parse_uint(value, 0, 1000000000UL, &n) != 0) {
			parse_error(p, p->line, "cache_max_uses must be 0 (no "
			    "limit) or 1..1000000000");
			return -1;
		}
		k->cache_max_uses = (uint32_t)n;
		return 0;
	}
	if (strcmp(name, "version") == 0) {
		if (k->current != 0) {
			parse_error(p, p->line, "'version' given twice");
			return -1;
		}
		if (config_parse_uint(value, 1, STORED_MAX_VERSION, &n) != 0) {
			parse_error(p, p->line, "version must be 1..%u",
			    STORED_MAX_VERSION);
			return -1;
		}
		k->current = (uint32_t)n;
		return 0;
	}
	if (strncmp(name, "key_id.", 7) == 0) {
		if (config_parse_uint(name + 7, 1, STORED_MAX_VERSION,
		    &n) != 0) {
			parse_error(p, p->line, "'%s': the version after "
			    "key_id. must be 1..%u", name, STORED_MAX_VERSION);
			return -1;
		}
		ver = (uint32_t)n;
	} else if (strcmp(name, "key_id") != 0) {
		parse_error(p, p->line, "unknown option '%s' in [key %s]",
		    name, k->name);
		return -1;
	}
	if (*value == '\0') {
		parse_error(p, p->line, "'%s' is empty", name);
		return -1;
	}
	/* Versions are stored with 0 standing for "current" until the end of
	 * the section, when the current number is known. */
	for (size_t i = 0; i < k->n_versions; i++)
		if (k->versions[i].version == ver) {
			parse_error(p, p->line, "'%s' given twice", name);
			return -1;
		}
	if (k->n_versions == CONFIG_MAX_VERSIONS) {
		parse_error(p, p->line, "more than %d versions",
		    CONFIG_MAX_VERSIONS);
		return -1;
	}
	v = &k->versions[k->n_versions];
	if ((v->key_id = strdup(value)) == NULL) {
		parse_error(p, p->line, "out of memory");
		return -1;
	}
	v->version = ver;
	v->line = p->line;
	k->n_versions++;
	return 0;
}

static int
config_socket_option(struct parse *p, struct cfg_socket *s, const char *name,
    const char *value)
{
	const char *bad;
	if (strcmp(name, "path") == 0) {
		if (value[0] != '/') {
			parse_error(p, p->line, "path must be absolute");
			return -1;
		}
		if (strlen(value) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			parse_error(p, p->line, "path longer than %zu bytes",
			    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			return -1;
		}
		return config_set_str(p, &s->path, name, value);
	}
	if (strcmp(name, "mode") == 0) {
		if (config_parse_mode(value, &s->mode) != 0) {
			parse_error(p, p->line, "mode must be octal like 0660 "
			    "(owner read-write, no execute bits)");
			return -1;
		}
		return 0;
	}
	if (strcmp(name, "group") == 0) {
		if (config_resolve_group(value, &s->group) != 0) {
			parse_error(p, p->line, "group: unknown group '%s'",
			    value);
			return -1;
		}
		return 0;
	}
	if (strcmp(name, "peer_users") == 0) {
		if (s->policy.n_users > 0) {
			parse_error(p, p->line, "'%s' given twice", name);
			return -1;
		}
		return config_each_word(p, name, value, config_add_user,
		    &s->policy);
	}
	if (strcmp(name, "peer_groups") == 0) {
		if (s->policy.n_groups > 0) {
			parse_error(p, p->line, "'%s' given twice", name);
			return -1;
		}
		return config_each_word(p, name, value, config_add_group,
		    &s->policy);
	}
	if (strcmp(name, "peer_units") == 0) {
		if (s->policy.n_units > 0) {
			parse_error(p, p->line, "'%s' given twice", name);
			return -1;
		}
		return config_each_word(p, name, value, config_add_unit,
		    &s->policy);
	}
	if (strcmp(name, "context_require") == 0) {
		if (s->policy.n_require > 0) {
			parse_error(p, p->line, "'%s' given twice", name);
			return -1;
		}
		return config_each_word(p, name, value, config_add_require,
		    &s->policy);
	}
	if (strcmp(name, "allow") == 0) {
		if (policy_parse_allow(value, &s->policy.allow, &bad) != 0) {
			parse_error(p, p->line, "allow: unknown right at '%s' "
			    "(rights: generate encrypt decrypt rewrap stats "
			    "context_hash)", bad);
			return -1;
		}
		return 0;
	}
	if (strcmp(name, "keys") == 0) {
		char *copy, *tok, *save = NULL;

		if (s->policy.all_keys || s->policy.keys != NULL) {
			parse_error(p, p->line, "'keys' given twice");
			return -1;
		}
		if (strcmp(value, "*") == 0) {
			s->policy.all_keys = 1;
			return 0;
		}
		if ((copy = strdup(value)) == NULL) {
			parse_error(p, p->line, "out of memory");
			return -1;
		}
		s->policy.keys = calloc(CONFIG_MAX_KEYS, sizeof(char *));
		if (s->policy.keys == NULL) {
			free(copy);
			parse_error(p, p->line, "out of memory");
			return -1;
		}
		for (tok = strtok_r(copy, ", \t", &save); tok != NULL;
		    tok = strtok_r(NULL, ", \t", &save)) {
			if (!config_valid_name(tok) ||
			    s->policy.n_keys == CONFIG_MAX_KEYS) {
				parse_error(p, p->line, "keys: bad key name "
				    "'%s'", tok);
				free(copy);
				return -1;
			}
			if ((s->policy.keys[s->policy.n_keys++] =
			    strdup(tok)) == NULL) {
				free(copy);
				parse_error(p, p->line, "out of memory");
				return -1;
			}
		}
		free(copy);
		return 0;
	}
	parse_error(p, p->line, "unknown option '%s' in [socket %s]", name,
	    s->name);
	return -1;
}

/* Sections seen so far, to refuse a repeated [key X] / [socket X]. */
static int
config_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct parse *p = user;
	struct config *c = p->cfg;
	const char *sp;

	if (p->toolong)
		return 0;
	if (strcmp(section, "kmsd") == 0)
		return config_kmsd_option(p, name, value) == 0;
	for (size_t i = 0; i < CONFIG_N_PROVIDER_SECTIONS; i++) {
		static const char *const names[] = CONFIG_PROVIDER_SECTIONS;
		struct cfg_section *ps = &c->sections[i];
		struct cfg_opt *o;

		if (strcmp(section, names[i]) != 0)
			continue;
		if (ps->name == NULL) {
			if ((ps->name = strdup(names[i])) == NULL) {
				parse_error(p, p->line, "out of memory");
				return 0;
			}
			ps->line = p->section_line;
		}
		if (config_opt(ps, name, NULL) != NULL) {
			parse_error(p, p->line, "'%s' given twice", name);
			return 0;
		}
		if (ps->n == CONFIG_MAX_SECTION_OPTS) {
			parse_error(p, p->line, "more than %d options in [%s]",
			    CONFIG_MAX_SECTION_OPTS, names[i]);
			return 0;
		}
		o = &ps->opts[ps->n];
		if ((o->name = strdup(name)) == NULL ||
		    (o->value = strdup(value)) == NULL) {
			free(o->name);
			parse_error(p, p->line, "out of memory");
			return 0;
		}
		o->line = p->line;
		ps->n++;
		return 1;
	}
	sp = strchr(section, ' ');
	if (sp != NULL && strncmp(section, "key ", 4) == 0) {
		struct cfg_key *k = config_find_key(c, sp + 1);

		if (k == NULL) {
			if (!config_valid_name(sp + 1)) {
				parse_error(p, p->line, "bad key name '%s' "
				    "(letters, digits, . _ -; up to %d)",
				    sp + 1, CONFIG_MAX_NAME);
				return 0;
			}
			if (c->n_keys == CONFIG_MAX_KEYS) {
				parse_error(p, p->line, "more than %d keys",
				    CONFIG_MAX_KEYS);
				return 0;
			}
			k = &c->keys[c->n_keys++];
			if ((k->name = strdup(sp + 1)) == NULL) {
				parse_error(p, p->line, "out of memory");
				return 0;
			}
			k->line = p->section_line;
		}
		return config_key_option(p, k, name, value) == 0;
	}
	if (sp != NULL && strncmp(section, "socket ", 7) == 0) {
		struct cfg_socket *s = config_find_socket(c, sp + 1);

		if (s == NULL) {
			if (strcmp(sp + 1, CONFIG_ADMIN_NAME) == 0) {
				parse_error(p, p->line, "[socket %s] is "
				    "reserved: use [kmsd] admin_socket",
				    CONFIG_ADMIN_NAME);
				return 0;
			}
			if (!config_valid_name(sp + 1)) {
				parse_error(p, p->line, "bad socket name '%s' "
				    "(letters, digits, . _ -; up to %d)",
				    sp + 1, CONFIG_MAX_NAME);
				return 0;
			}
			if (c->n_sockets == CONFIG_MAX_SOCKETS) {
				parse_error(p, p->line, "more than %d sockets",
				    CONFIG_MAX_SOCKETS);
				return 0;
			}
			s = &c->sockets[c->n_sockets++];
			if ((s->name = strdup(sp + 1)) == NULL) {
				parse_error(p, p->line, "out of memory");
				return 0;
			}
			s->line = p->section_line;
			s->mode = CONFIG_DEFAULT_SOCKET_MODE;
			s->group = (gid_t)-1;
			s->policy.allow = 0;
		}
		return config_socket_option(p, s, name, value) == 0;
	}
	parse_error(p, p->line, "unknown section [%s] (expected [kmsd], "
	    "[key NAME], [socket NAME], [aws], [gcp] or [vault])", section);
	return 0;
}

/* Checks that need the whole file. */
static int
config_validate(struct parse *p)
{
	struct config *c = p->cfg;
	const char *env;

	if (c->n_keys == 0 && (env = getenv("KMS_KEY_ID")) != NULL &&
	    *env != '\0') {
		struct cfg_key *k = &c->keys[c->n_keys++];

		if ((k->name = strdup("default")) == NULL ||
		    (k->versions[0].key_id = strdup(env)) == NULL) {
			parse_error(p, 0, "out of memory");
			return -1;
		}
		k->n_versions = 1;
	}
	for (size_t i = 0; i < c->n_keys; i++) {
		struct cfg_key *k = &c->keys[i];
		int has_current = 0;

		if (k->current == 0)
			k->current = 1;
		for (size_t j = 0; j < k->n_versions; j++) {
			if (k->versions[j].version == 0) {
				has_current = 1;
				continue;
			}
			if (k->versions[j].version == k->current) {
				parse_error(p, k->versions[j].line, "key_id.%u "
				    "is the current version: use key_id",
				    k->current);
				return -1;
			}
		}
		if (!has_current) {
			parse_error(p, k->line, "[key %s] has no key_id",
			    k->name);
			return -1;
		}
		if (k->cache_max_uses != 0 && k->cache_ttl_ms == 0) {
			parse_error(p, k->line, "[key %s]: cache_max_uses "
			    "needs cache_ttl (without it nothing is cached)",
			    k->name);
			return -1;
		}
		for (size_t j = 0; j < k->n_versions; j++)
			if (k->versions[j].version == 0)
				k->versions[j].version = k->current;
	}
	for (size_t i = 0; i < c->n_sockets; i++) {
		struct cfg_socket *s = &c->sockets[i];

		if (s->path == NULL) {
			parse_error(p, s->line, "[socket %s] has no path",
			    s->name);
			return -1;
		}
		if (s->policy.allow == 0) {
			parse_error(p, s->line, "[socket %s] has no 'allow' "
			    "list: say what it may do", s->name);
			return -1;
		}
		if (!s->policy.all_keys && s->policy.keys == NULL)
			s->policy.all_keys = 1;
		for (size_t j = 0; s->policy.keys != NULL &&
		    j < s->policy.n_keys; j++)
			if (config_find_key(c, s->policy.keys[j]) == NULL) {
				parse_error(p, s->line, "[socket %s] names "
				    "unknown key '%s'", s->name,
				    s->policy.keys[j]);
				return -1;
			}
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->sockets[j].path, s->path) == 0) {
				parse_error(p, s->line, "[socket %s] uses the "
				    "path of [socket %s]", s->name,
				    c->sockets[j].name);
				return -1;
			}
	}
	if (c->n_keys == 0) {
		parse_error(p, 0, "no keys: add a [key NAME] section or set "
		    "KMS_KEY_ID");
		return -1;
	}
	if (c->n_sockets == 0) {
		parse_error(p, 0, "no sockets: add a [socket NAME] section");
		return -1;
	}
	if (c->audit_hmac && c->audit_log == NULL) {
		parse_error(p, 0, "audit_context = hmac needs audit_log");
		return -1;
	}
	if (p->admin_path != NULL) {
		struct cfg_socket *s = &c->sockets[c->n_sockets];

		for (size_t i = 0; i < c->n_sockets; i++)
			if (strcmp(c->sockets[i].path, p->admin_path) == 0) {
				parse_error(p, p->admin_line, "admin_socket "
				    "uses the path of [socket %s]",
				    c->sockets[i].name);
				return -1;
			}
		if ((s->name = strdup(CONFIG_ADMIN_NAME)) == NULL) {
			parse_error(p, 0, "out of memory");
			return -1;
		}
		c->n_sockets++;
		s->path = p->admin_path;
		p->admin_path = NULL;
		s->mode = p->admin_mode;
		s->group = p->admin_group;
		s->line = p->admin_line;
		s->policy.admin = 1;
	}
	if (c->state_dir == NULL &&
	    (c->state_dir = strdup(CONFIG_DEFAULT_STATE_DIR)) == NULL) {
		parse_error(p, 0, "out of memory");
		return -1;
	}
	return 0;
}

int
config_load(const char *path, struct config **ret, char *err, size_t errlen)
{
	struct parse p;
	struct config *c;
	int r;

	memset(&p, 0, sizeof(p));
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	c->ctx_style = CTX_ACTIVESUPPORT;
	c->max_connections = CONFIG_DEFAULT_MAX_CONNECTIONS;
	c->frame_timeout_ms = CONFIG_DEFAULT_FRAME_TIMEOUT_MS;
	c->idle_timeout_ms = CONFIG_DEFAULT_IDLE_TIMEOUT_MS;
	c->metrics_interval_ms = CONFIG_DEFAULT_METRICS_INTERVAL_MS;
	p.cfg = c;
	p.admin_mode = CONFIG_DEFAULT_ADMIN_MODE;
	p.admin_group = (gid_t)-1;
	if ((c->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		config_free(c);
		return -1;
	}
	if ((p.fp = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		config_free(c);
		return -1;
	}
	r = ini_parse_stream(config_reader, &p, config_handler, &p);
	fclose(p.fp);
	if (p.err_line == 0 && r > 0)
		parse_error(&p, r, "syntax error (expected [section] or "
		    "name = value)");
	if (p.err_line == 0 && r < 0)
		parse_error(&p, 0, "cannot parse");
	if (p.err_line == 0)
		config_validate(&p);
	free(p.admin_path);
	if (p.err_line != 0 || p.err[0] != '\0') {
		if (p.err_line > 0)
			snprintf(err, errlen, "%s:%d: %s", path, p.err_line,
			    p.err);
		else
			snprintf(err, errlen, "%s: %s", path, p.err);
		config_free(c);
		return -1;
	}
	*ret = c;
	return 0;
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < CONFIG_N_PROVIDER_SECTIONS; i++) {
		free(c->sections[i].name);
		for (size_t j = 0; j < c->sections[i].n; j++) {
			free(c->sections[i].opts[j].name);
			free(c->sections[i].opts[j].value);
		}
	}
	free(c->path);
	free(c->state_dir);
	free(c->audit_log);
	free(c->metrics_textfile);
	for (size_t i = 0; i < c->n_keys; i++) {
		free(c->keys[i].name);
		for (size_t j = 0; j < c->keys[i].n_versions; j++)
			free(c->keys[i].versions[j].key_id);
	}
	for (size_t i = 0; i < c->n_sockets; i++) {
		free(c->sockets[i].name);
		free(c->sockets[i].path);
		for (size_t j = 0; j < c->sockets[i].policy.n_keys; j++)
			free(c->sockets[i].policy.keys[j]);
		free(c->sockets[i].policy.keys);
		free(c->sockets[i].policy.users);
		free(c->sockets[i].policy.groups);
		for (size_t j = 0; j < c->sockets[i].policy.n_units; j++)
			free(c->sockets[i].policy.units[j]);
		free(c->sockets[i].policy.units);
		for (size_t j = 0; j < c->sockets[i].policy.n_require; j++) {
			free((char *)c->sockets[i].policy.require[j].k.p);
			free((char *)c->sockets[i].policy.require[j].v.p);
		}
		free(c->sockets[i].policy.require);
	}
	free(c);
}

const struct cfg_key *
config_key(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_keys; i++)
		if (strcmp(c->keys[i].name, name) == 0)
			return &c->keys[i];
	return NULL;
}

const struct cfg_version *
config_key_version(const struct cfg_key *k, uint32_t version)
{
	for (size_t i = 0; i < k->n_versions; i++)
		if (k->versions[i].version == version)
			return &k->versions[i];
	return NULL;
}

const struct cfg_section *
config_section(const struct config *c, const char *name)
{
	for (size_t i = 0; i < CONFIG_N_PROVIDER_SECTIONS; i++)
		if (c->sections[i].name != NULL &&
		    strcmp(c->sections[i].name, name) == 0)
			return &c->sections[i];
	return NULL;
}

const char *
config_opt(const struct cfg_section *s, const char *name, int *ret_line)
{
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->opts[i].name, name) == 0) {
			if (ret_line != NULL)
				*ret_line = s->opts[i].line;
			return s->opts[i].value;
		}
	return NULL;
}

int
config_file_path(const char *value, char *out, size_t outlen, char *err,
    size_t errlen)
{
	static const char prefix[] = "credential:";
	const char *dir, *name;
	int n;

	if (strncmp(value, prefix, sizeof(prefix) - 1) != 0) {
		n = snprintf(out, outlen, "%s", value);
		goto check;
	}
	name = value + sizeof(prefix) - 1;
	/* A credential name is one path component. */
	if (*name == '\0' || strchr(name, '/') != NULL ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		snprintf(err, errlen, "'%s': a credential name is one file "
		    "name", value);
		return -1;
	}
	if ((dir = getenv("CREDENTIALS_DIRECTORY")) == NULL || *dir == '\0') {
		snprintf(err, errlen, "'%s': CREDENTIALS_DIRECTORY is not set "
		    "(use LoadCredential= in the unit)", value);
		return -1;
	}
	n = snprintf(out, outlen, "%s/%s", dir, name);
check:
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "'%s': path too long", value);
		return -1;
	}
	return 0;
}
