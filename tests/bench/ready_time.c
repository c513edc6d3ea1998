/*
 * ready_time.c: time from exec to READY=1, as systemd sees it.
 *
 *   ready_time --runs N -- PROGRAM ARGS...
 *
 * Each run binds a fresh datagram socket, starts PROGRAM with
 * NOTIFY_SOCKET pointing at it, waits for a datagram carrying READY=1,
 * then stops the program with SIGTERM and waits for it to exit. The clock
 * starts just before fork(), so the figure includes fork+exec, dynamic
 * linking, configuration, keys and sockets. Prints one JSON object with
 * every run in milliseconds.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"

/* A start slower than this is reported as a failure. */
#define RT_TIMEOUT_MS 20000
#define RT_MAX_RUNS 1000

static int
rt_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	static double ms[RT_MAX_RUNS], sorted[RT_MAX_RUNS];
	struct sockaddr_un sun;
	int runs = 10, argi = 1;
	char path[sizeof(sun.sun_path)];

	if (argc > 2 && strcmp(argv[1], "--runs") == 0) {
		runs = atoi(argv[2]);
		argi = 3;
	}
	if (argi < argc && strcmp(argv[argi], "--") == 0)
		argi++;
	if (argi >= argc || runs < 1 || runs > RT_MAX_RUNS) {
		fprintf(stderr, "usage: ready_time [--runs N] -- PROGRAM "
		    "ARGS...\n");
		return 2;
	}
	snprintf(path, sizeof(path), "/tmp/kmsd-bench-notify.%d", (int)getpid());
	for (int r = 0; r < runs; r++) {
		char buf[4096];
		uint64_t t0;
		pid_t pid;
		int fd, st, ready = 0;

		unlink(path);
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		strcpy(sun.sun_path, path);
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sun,
		    sizeof(sun)) != 0) {
			perror(path);
			return 1;
		}
		setenv("NOTIFY_SOCKET", path, 1);
		t0 = bench_now_ns();
		if ((pid = fork()) == 0) {
			execv(argv[argi], argv + argi);
			_exit(127);
		}
		while (!ready) {
			struct pollfd pfd = { fd, POLLIN, 0 };
			ssize_t n;

			if (poll(&pfd, 1, RT_TIMEOUT_MS) <= 0)
				break;
			n = recv(fd, buf, sizeof(buf) - 1, 0);
			if (n <= 0)
				continue;
			buf[n] = '\0';
			for (char *l = strtok(buf, "\n"); l != NULL;
			    l = strtok(NULL, "\n"))
				if (strcmp(l, "READY=1") == 0)
					ready = 1;
		}
		ms[r] = ready ? (double)(bench_now_ns() - t0) / 1e6 : -1;
		kill(pid, SIGTERM);
		waitpid(pid, &st, 0);
		close(fd);
		unlink(path);
		if (!ready) {
			fprintf(stderr, "ready_time: no READY=1 within %d ms\n",
			    RT_TIMEOUT_MS);
			return 1;
		}
	}
	memcpy(sorted, ms, sizeof(double) * (size_t)runs);
	qsort(sorted, (size_t)runs, sizeof(double), rt_cmp);
	printf("{\"runs\": %d, \"median_ms\": %.3f, \"min_ms\": %.3f, "
	    "\"max_ms\": %.3f, \"all_ms\": [", runs, sorted[runs / 2],
	    sorted[0], sorted[runs - 1]);
	for (int r = 0; r < runs; r++)
		printf("%s%.3f", r ? ", " : "", ms[r]);
	printf("]}\n");
	return 0;
}
