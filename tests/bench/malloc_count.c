/*
 * malloc_count.c: an LD_PRELOAD library that counts heap calls, to measure
 * allocations per request of an unmodified kmsd.
 *
 * Counts malloc, calloc, realloc, the aligned allocators and free (calls
 * and requested bytes) with relaxed atomics and forwards to glibc's
 * __libc_* functions (no dlsym, so no bootstrap recursion). On SIGUSR2 it
 * appends one line "malloc N calloc N realloc N memalign N free N bytes N"
 * to the file named by MALLOC_COUNT_OUT (opened at load); the bench takes
 * two snapshots around a known number of requests and divides.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
void *memalign(size_t al, size_t n);

static atomic_ulong mc_malloc, mc_calloc, mc_realloc, mc_memalign, mc_free,
    mc_bytes;
static int mc_fd = -1;

#define MC_ADD(c, n) atomic_fetch_add_explicit(&(c), (n), memory_order_relaxed)
#define MC_GET(c) atomic_load_explicit(&(c), memory_order_relaxed)

void *
malloc(size_t n)
{
	MC_ADD(mc_malloc, 1);
	MC_ADD(mc_bytes, n);
	return __libc_malloc(n);
}

void *
calloc(size_t a, size_t b)
{
	MC_ADD(mc_calloc, 1);
	MC_ADD(mc_bytes, a * b);
	return __libc_calloc(a, b);
}

void *
realloc(void *p, size_t n)
{
	MC_ADD(mc_realloc, 1);
	MC_ADD(mc_bytes, n);
	return __libc_realloc(p, n);
}

void
free(void *p)
{
	if (p != NULL)
		MC_ADD(mc_free, 1);
	__libc_free(p);
}

void *
memalign(size_t al, size_t n)
{
	MC_ADD(mc_memalign, 1);
	MC_ADD(mc_bytes, n);
	return __libc_memalign(al, n);
}

void *
aligned_alloc(size_t al, size_t n)
{
	return memalign(al, n);
}

int
posix_memalign(void **ret, size_t al, size_t n)
{
	void *p;

	if (al < sizeof(void *) || (al & (al - 1)) != 0)
		return EINVAL;
	if ((p = memalign(al, n)) == NULL)
		return ENOMEM;
	*ret = p;
	return 0;
}

/* Async-signal-safe decimal formatting. */
static size_t
mc_fmt(char *p, const char *label, unsigned long v)
{
	char tmp[24];
	size_t n = 0, k = 0;

	while (label[n] != '\0') {
		p[n] = label[n];
		n++;
	}
	do {
		tmp[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (k > 0)
		p[n++] = tmp[--k];
	return n;
}

static void
mc_dump(int sig)
{
	char line[256];
	size_t n = 0;
	int saved = errno;

	(void)sig;
	n += mc_fmt(line + n, "malloc ", MC_GET(mc_malloc));
	n += mc_fmt(line + n, " calloc ", MC_GET(mc_calloc));
	n += mc_fmt(line + n, " realloc ", MC_GET(mc_realloc));
	n += mc_fmt(line + n, " memalign ", MC_GET(mc_memalign));
	n += mc_fmt(line + n, " free ", MC_GET(mc_free));
	n += mc_fmt(line + n, " bytes ", MC_GET(mc_bytes));
	line[n++] = '\n';
	if (mc_fd >= 0)
		(void)!write(mc_fd, line, n);
	errno = saved;
}

__attribute__((constructor)) static void
mc_init(void)
{
	const char *out = getenv("MALLOC_COUNT_OUT");
	struct sigaction sa;

	if (out == NULL)
		return;
	mc_fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mc_dump;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR2, &sa, NULL);
}
