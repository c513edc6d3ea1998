/*
 * server.c: listening sockets, accept, peer credentials, shutdown.
 *
 * Socket files are created with their configured mode from the start (the
 * umask is narrowed around bind), a stale file left by a crashed daemon is
 * replaced, a live one is never stolen. Peer credentials are read before a
 * connection is allocated. Running out of descriptors pauses the listener
 * for a moment instead of spinning; past max_connections a client gets a
 * `busy` answer and is closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "audit.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "server.h"

/* Pending connections the kernel may queue per socket. */
#define SERVER_BACKLOG 128

static void
server_fill_addr(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	/* config.c bounds the length */
	memcpy(sun->sun_path, path, strlen(path) + 1);
}

/* Remove a socket file nobody listens on; refuse to touch anything else. */
static int
server_clear_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, r;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	server_fill_addr(&sun, path);
	r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	if (r == 0) {
		snprintf(err, errlen, "%s is in use by another process", path);
		return -1;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static void
server_refuse(int fd, const char *why)
{
	struct response rs;
	struct buf b;

	/* Best effort: a non-blocking write of one small frame. */
	buf_init(&b, 512);
	msg_response_error(&rs, 0, ERR_BUSY, why);
	if (msg_encode_response(&b, &rs) == 0)
		(void)send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	buf_done(&b);
	close(fd);
}

static void
server_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	l->paused = 0;
	event_add(l->ev, NULL);
}

static void
server_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *l = arg;
	struct server *s = l->srv;
	struct peer peer;
	int fd;

	for (int i = 0; i < SERVER_ACCEPTS_PER_WAKE; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				struct timeval tv = {
					SERVER_EMFILE_PAUSE_MS / 1000,
					(SERVER_EMFILE_PAUSE_MS % 1000) * 1000
				};
				log_warn("socket %s: accept: %s; pausing for "
				    "%d ms", l->name, strerror(errno),
				    SERVER_EMFILE_PAUSE_MS);
				event_del(l->ev);
				l->paused = 1;
				event_add(l->resume, &tv);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("socket %s: accept: %s", l->name,
				    strerror(errno));
			return;
		}
		if (peer_read(fd, &peer) != 0) {
			log_warn("socket %s: SO_PEERCRED: %s", l->name,
			    strerror(errno));
			close(fd);
			continue;
		}
		if (s->draining) {
			peer_done(&peer);
			server_refuse(fd, "server shutting down");
			continue;
		}
		if (s->nconns >= s->cfg->max_connections) {
			log_warn("socket %s: refusing uid %u pid %d: "
			    "max_connections (%u) reached", l->name,
			    (unsigned)peer.uid, (int)peer.pid,
			    s->cfg->max_connections);
			peer_done(&peer);
			server_refuse(fd, "too many connections");
			continue;
		}
		conn_new(l, fd, &peer);
	}
}

/* Descriptors passed by systemd socket activation, by name; taken by
 * server_start, the rest closed. */
struct activated {
	int n;
	int *fds;
	char **names;
};

static void
server_activated_done(struct activated *a)
{
	for (int i = 0; i < a->n; i++) {
		if (a->fds[i] >= 0) {
			log_warn("systemd passed a socket named '%s' that no "
			    "[socket NAME] in the config takes; closing it",
			    a->names != NULL && a->names[i] != NULL ?
			    a->names[i] : "?");
			close(a->fds[i]);
		}
		if (a->names != NULL)
			free(a->names[i]);
	}
	free(a->names);
	free(a->fds);
	memset(a, 0, sizeof(*a));
}

static int
server_activated_get(struct activated *a, char *err, size_t errlen)
{
	char **names = NULL;
	int n;

	memset(a, 0, sizeof(*a));
	n = sd_listen_fds_with_names(1, &names);
	if (n < 0) {
		snprintf(err, errlen, "socket activation: %s", strerror(-n));
		return -1;
	}
	if (n == 0) {
		free(names);
		return 0;
	}
	if ((a->fds = calloc((size_t)n, sizeof(int))) == NULL) {
		for (int i = 0; i < n; i++) {
			free(names[i]);
			close(SD_LISTEN_FDS_START + i);
		}
		free(names);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->n = n;
	a->names = names;
	for (int i = 0; i < n; i++)
		a->fds[i] = SD_LISTEN_FDS_START + i;
	return 0;
}

/* Adopt a descriptor systemd passed for this socket: it must be a
 * listening Unix stream socket; its file stays systemd's. */
static int
server_adopt(struct server *s, struct listener *l, int fd, char *err,
    size_t errlen)
{
	int flags;

	if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
		snprintf(err, errlen, "[socket %s]: the descriptor systemd "
		    "passed is not a listening Unix stream socket",
		    l->cfg->name);
		return -1;
	}
	if ((flags = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
		snprintf(err, errlen, "[socket %s]: fcntl: %s", l->cfg->name,
		    strerror(errno));
		return -1;
	}
	l->fd = fd;
	l->activated = 1;
	if ((l->path = strdup(l->cfg->path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->ev = event_new(s->base, fd, EV_READ | EV_PERSIST, server_accept_cb,
	    l);
	l->resume = evtimer_new(s->base, server_resume_cb, l);
	if (l->ev == NULL || l->resume == NULL || event_add(l->ev, NULL) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int
server_listen(struct server *s, struct listener *l, char *err, size_t errlen)
{
	const struct cfg_socket *cs = l->cfg;
	struct sockaddr_un sun;
	mode_t old;
	int fd, r;

	if (server_clear_stale(cs->path, err, errlen) != 0) {
		if (err[0] == '\0')
			snprintf(err, errlen, "%s: %s", cs->path,
			    strerror(errno));
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	server_fill_addr(&sun, cs->path);
	/* The file is born with the configured mode: no window in which it
	 * is more open than configured. */
	old = umask((mode_t)(~cs->mode & 0777));
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r != 0) {
		snprintf(err, errlen, "[socket %s] bind %s: %s", cs->name,
		    cs->path, strerror(errno));
		close(fd);
		return -1;
	}
	/* The group is set before listen(): until then nobody can connect,
	 * so the file is never reachable by more than the configured group. */
	if (cs->group != (gid_t)-1 && chown(cs->path, (uid_t)-1, cs->group) != 0) {
		snprintf(err, errlen, "[socket %s] chown %s: %s", cs->name,
		    cs->path, strerror(errno));
		unlink(cs->path);
		close(fd);
		return -1;
	}
	if ((l->path = strdup(cs->path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		unlink(cs->path);
		close(fd);
		return -1;
	}
	if (listen(fd, SERVER_BACKLOG) != 0) {
		snprintf(err, errlen, "[socket %s] listen: %s", cs->name,
		    strerror(errno));
		close(fd);
		return -1;
	}
	l->fd = fd;
	l->ev = event_new(s->base, fd, EV_READ | EV_PERSIST, server_accept_cb,
	    l);
	l->resume = evtimer_new(s->base, server_resume_cb, l);
	if (l->ev == NULL || l->resume == NULL || event_add(l->ev, NULL) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static void
server_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct conn *c;

	while ((c = TAILQ_FIRST(&s->dead)) != NULL) {
		TAILQ_REMOVE(&s->dead, c, entry);
		conn_free(c);
	}
	if (s->draining && s->nconns == 0)
		event_base_loopbreak(s->base);
}

int
server_init(struct server *s, struct event_base *base, struct config *cfg,
    struct keyring *kr)
{
	memset(s, 0, sizeof(*s));
	s->base = base;
	s->cfg = cfg;
	s->kr = kr;
	TAILQ_INIT(&s->conns);
	TAILQ_INIT(&s->dead);
	TAILQ_INIT(&s->held);
	TAILQ_INIT(&s->gone);
	if ((s->reaper = event_new(base, -1, 0, server_reap_cb, s)) == NULL ||
	    (s->dec = msg_dec_new()) == NULL)
		return -1;
	return 0;
}

static struct listener *
server_listener_new(struct server *s, const struct cfg_socket *cs)
{
	struct listener *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->srv = s;
	l->fd = -1;
	l->cfg = cs;
	if ((l->name = strdup(cs->name)) == NULL) {
		free(l);
		return NULL;
	}
	return l;
}

static void
server_listener_close(struct listener *l)
{
	if (l->ev != NULL) {
		event_free(l->ev);
		l->ev = NULL;
	}
	if (l->resume != NULL) {
		event_free(l->resume);
		l->resume = NULL;
	}
	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
	if (l->path != NULL) {
		if (!l->activated)
			unlink(l->path);
		free(l->path);
		l->path = NULL;
	}
}

int
server_start(struct server *s, char *err, size_t errlen)
{
	struct activated act;
	int r = -1;

	if (server_activated_get(&act, err, errlen) != 0)
		return -1;
	s->lst = calloc(CONFIG_MAX_SOCKETS + 1, sizeof(struct listener *));
	if (s->lst == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < s->cfg->n_sockets; i++) {
		struct listener *l;
		int fd = -1;

		if ((l = server_listener_new(s, &s->cfg->sockets[i])) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		s->lst[s->n_lst++] = l;
		for (int j = 0; j < act.n && fd < 0; j++)
			if (act.fds[j] >= 0 && act.names[j] != NULL &&
			    strcmp(act.names[j], l->cfg->name) == 0) {
				fd = act.fds[j];
				act.fds[j] = -1;
			}
		err[0] = '\0';
		if (fd >= 0) {
			if (server_adopt(s, l, fd, err, errlen) != 0) {
				if (l->fd < 0)
					close(fd);
				goto out;
			}
			log_info("socket %s: using the socket systemd passed "
			    "(%s)", l->name, l->path);
			continue;
		}
		if (server_listen(s, l, err, errlen) != 0)
			goto out;
		log_info("socket %s: listening on %s (mode %04o)",
		    l->name, l->path, (unsigned)l->cfg->mode);
	}
	r = 0;
out:
	server_activated_done(&act);
	return r;
}

/*
 * Move to a new config: sockets keep their listener (and connections)
 * when name and path are unchanged, new ones start listening, removed ones
 * stop and their connections finish what is in flight and close. On any
 * failure nothing has changed and -1 is returned.
 */
int
server_reconfigure(struct server *s, struct config *cfg, char *err,
    size_t errlen)
{
	struct listener *fresh[CONFIG_MAX_SOCKETS + 1] = { 0 };
	struct listener *keep[CONFIG_MAX_SOCKETS + 1] = { 0 };
	struct conn *c, *next;
	size_t nf = 0;

	for (size_t i = 0; i < cfg->n_sockets; i++) {
		const struct cfg_socket *cs = &cfg->sockets[i];

		for (size_t j = 0; j < s->n_lst && keep[i] == NULL; j++)
			if (strcmp(s->lst[j]->cfg->name, cs->name) == 0 &&
			    strcmp(s->lst[j]->cfg->path, cs->path) == 0)
				keep[i] = s->lst[j];
		if (keep[i] != NULL)
			continue;
		if ((fresh[nf] = server_listener_new(s, cs)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		err[0] = '\0';
		if (server_listen(s, fresh[nf++], err, errlen) != 0)
			goto fail;
	}
	/* Commit: removed listeners close, their connections drain. */
	for (size_t j = 0; j < s->n_lst; j++) {
		struct listener *l = s->lst[j];
		int kept = 0;

		for (size_t i = 0; i < cfg->n_sockets && !kept; i++)
			kept = keep[i] == l;
		if (kept)
			continue;
		log_info("socket %s: removed by reload", l->name);
		server_listener_close(l);
		for (c = TAILQ_FIRST(&s->conns); c != NULL; c = next) {
			next = TAILQ_NEXT(c, entry);
			if (c->lst == l)
				conn_orphan(c);
		}
		l->cfg = NULL;
		TAILQ_INSERT_TAIL(&s->gone, l, gone_entry);
	}
	s->n_lst = 0;
	nf = 0;
	for (size_t i = 0; i < cfg->n_sockets; i++) {
		struct listener *l = keep[i] != NULL ? keep[i] : fresh[nf++];

		l->cfg = &cfg->sockets[i];
		s->lst[s->n_lst++] = l;
		if (keep[i] == NULL)
			log_info("socket %s: listening on %s (mode %04o)",
			    l->name, l->path, (unsigned)l->cfg->mode);
	}
	s->cfg = cfg;
	return 0;
fail:
	for (size_t i = 0; i < nf; i++) {
		server_listener_close(fresh[i]);
		free(fresh[i]->name);
		free(fresh[i]);
	}
	return -1;
}

static void
server_close_listeners(struct server *s)
{
	for (size_t i = 0; i < s->n_lst; i++)
		server_listener_close(s->lst[i]);
}

static void
server_drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	log_warn("shutdown: %u connection(s) still busy after %d ms, "
	    "exiting anyway", s->nconns, SERVER_DRAIN_MS);
	event_base_loopbreak(s->base);
}

void
server_drain(struct server *s)
{
	struct conn *c, *next;
	struct timeval tv = { SERVER_DRAIN_MS / 1000,
	    (SERVER_DRAIN_MS % 1000) * 1000 };

	if (s->draining)
		return;
	s->draining = 1;
	server_close_listeners(s);
	for (c = TAILQ_FIRST(&s->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		conn_drain(c);
	}
	if (s->nconns == 0) {
		event_base_loopbreak(s->base);
		return;
	}
	s->drain_timer = evtimer_new(s->base, server_drain_timeout_cb, s);
	if (s->drain_timer == NULL || evtimer_add(s->drain_timer, &tv) != 0)
		event_base_loopbreak(s->base);
}

void
server_commit(struct server *s)
{
	struct conn *c;
	size_t bytes = audit_pending(s->audit);
	int failed = 0;

	if (bytes > 0 && audit_flush(s->audit) != 0) {
		log_err("audit log %s: cannot write %zu bytes of entries: "
		    "answering audit_unavailable to the operations they "
		    "record", s->cfg->audit_log, bytes);
		failed = 1;
	}
	while ((c = TAILQ_FIRST(&s->held)) != NULL) {
		conn_release(c, failed);
		/* One being handled sends at the end of its own turn. */
		if (!c->dead && !c->processing)
			conn_flush(c);
	}
}

int
server_audit(struct server *s, const struct audit_entry *e)
{
	/* A big batch is written now, the rest at the end of the turn. */
	if (audit_pending(s->audit) >= AUDIT_FLUSH_AT)
		server_commit(s);
	return audit_append(s->audit, e);
}

void
server_free(struct server *s)
{
	struct listener *l;
	struct conn *c;

	server_close_listeners(s);
	while ((c = TAILQ_FIRST(&s->conns)) != NULL)
		conn_kill(c, "exit");
	while ((c = TAILQ_FIRST(&s->dead)) != NULL) {
		TAILQ_REMOVE(&s->dead, c, entry);
		conn_free(c);
	}
	for (size_t i = 0; i < s->n_lst; i++) {
		free(s->lst[i]->name);
		free(s->lst[i]);
	}
	free(s->lst);
	s->lst = NULL;
	s->n_lst = 0;
	while ((l = TAILQ_FIRST(&s->gone)) != NULL) {
		TAILQ_REMOVE(&s->gone, l, gone_entry);
		free(l->name);
		free(l);
	}
	if (s->reaper != NULL)
		event_free(s->reaper);
	s->reaper = NULL;
	msg_dec_free(s->dec);
	s->dec = NULL;
	if (s->drain_timer != NULL)
		event_free(s->drain_timer);
	s->drain_timer = NULL;
}
