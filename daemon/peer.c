/*
 * peer.c: who is on the other end of a Unix socket, as the kernel says.
 *
 * Read once at accept: pid, uid and gid (SO_PEERCRED), supplementary
 * groups (SO_PEERGROUPS), and, best effort, the executable (/proc/PID/exe)
 * and the systemd unit (sd_pid_get_unit, from /proc/PID/cgroup). The pid
 * based facts describe the process that connected, at the time it
 * connected; a process that passes its descriptor on keeps its identity
 * attached to the connection, which is what the policy means.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-login.h>

#include "server.h"

/* Supplementary groups kept per peer: Linux allows 65536, real accounts
 * have a handful; past this bound the rest are ignored (a peer can only
 * lose access by it, never gain). */
#define PEER_MAX_GROUPS 256

int
peer_read(int fd, struct peer *p)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t groups[PEER_MAX_GROUPS];
	char path[64], exe[PATH_MAX];
	char *unit = NULL;
	ssize_t n;

	memset(p, 0, sizeof(*p));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return -1;
	p->pid = cred.pid;
	p->uid = cred.uid;
	p->gid = cred.gid;

	len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0 ||
	    errno == ERANGE) {
		size_t ng = len / sizeof(gid_t);

		if (ng > PEER_MAX_GROUPS)
			ng = PEER_MAX_GROUPS;
		if (ng > 0 && (p->groups = calloc(ng, sizeof(gid_t))) != NULL) {
			memcpy(p->groups, groups, ng * sizeof(gid_t));
			p->n_groups = ng;
		}
	}
	if (p->pid > 0) {
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)p->pid);
		n = readlink(path, exe, sizeof(exe) - 1);
		if (n > 0) {
			exe[n] = '\0';
			p->exe = strdup(exe);
		}
		if (sd_pid_get_unit(p->pid, &unit) >= 0)
			p->unit = unit;
	}
	return 0;
}

void
peer_done(struct peer *p)
{
	free(p->groups);
	free(p->exe);
	free(p->unit);
	memset(p, 0, sizeof(*p));
}

void
peer_id(const struct peer *p, struct peer_id *ret)
{
	ret->pid = p->pid;
	ret->uid = p->uid;
	ret->gid = p->gid;
	ret->n_groups = p->n_groups;
	ret->groups = p->groups;
	ret->unit = p->unit;
}
