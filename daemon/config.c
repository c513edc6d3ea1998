/*
 * config.c: strict INI configuration (see config.h).
 *
 * libinih drives the parse; our reader counts lines so every error, from
 * the handler or from the checks after parsing, names file:line. A line
 * longer than libinih's buffer is an error rather than silently split.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <ini.h>

#include "config.h"
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
/* Hard ceiling for max_connections: each costs a descriptor and buffers. */
#define CONFIG_MAX_CONNECTIONS_CEIL 65536

struct parse {
	struct config *cfg;
	FILE *fp;
	int line;		/* line being handled */
	int section_line;	/* line of the last [section] header */
	int err_line;		/* first error's line, 0 = none */
	char err[256];
	int toolong;
};

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
	char *end;
	unsigned long v, mult;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "m") == 0)
		mult = 60000;
	else
		return -1;
	/* a day is more than any sane timeout */
	if (v == 0 || v > 86400000UL / mult)
		return -1;
	*ret_ms = (unsigned)(v * mult);
	return 0;
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
	char *end;
	unsigned long m;

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
		errno = 0;
		m = strtoul(value, &end, 8);
		if (errno != 0 || *end != '\0' || end == value || m > 0777 ||
		    (m & 0111) != 0 || (m & 0600) != 0600) {
			parse_error(p, p->line, "mode must be octal like 0660 "
			    "(owner read-write, no execute bits)");
			return -1;
		}
		s->mode = (mode_t)m;
		return 0;
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
			s->policy.allow = 0;
		}
		return config_socket_option(p, s, name, value) == 0;
	}
	parse_error(p, p->line, "unknown section [%s] (expected [kmsd], "
	    "[key NAME] or [socket NAME])", section);
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
		for (size_t j = 0; j < s->policy.n_keys; j++)
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
	p.cfg = c;
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
	free(c->path);
	free(c->state_dir);
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
