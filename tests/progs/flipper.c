/* A hostile guest: one thread flips a path buffer between a name outside every view
 * and one inside a view while the main thread makes a call on that buffer, or renames
 * (RENAME_EXCHANGE) a directory with a symlink into the view while the main thread
 * writes through the directory's name. For SECONDS seconds; prints how many calls were
 * made and how many answered 0.
 *
 *   flipper OP REAL VIEW SECONDS
 *     OP: open creat unlink rename chmod truncate mkdir symlink link utime chown exchange
 *     REAL: a directory outside every view (the guest may write it)
 *     VIEW: the directory of the view (its host tree is what must not change)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char buf[8192];
static char real_name[4096], view_name[4096], real_dir[4096], link_dir[4096];
static atomic_int stop;

static void *flip(void *arg)
{
	(void)arg;
	size_t n = strlen(real_name) + 1, m = strlen(view_name) + 1;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		memcpy(buf, real_name, n);
		for (volatile int i = 0; i < 50; i++)
			;
		memcpy(buf, view_name, m);
		for (volatile int i = 0; i < 50; i++)
			;
	}
	return NULL;
}

static void *exchange(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		syscall(SYS_renameat2, AT_FDCWD, real_dir, AT_FDCWD, link_dir, 2 /* EXCHANGE */);
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: flipper OP REAL VIEW SECONDS\n");
		return 2;
	}
	const char *op = argv[1], *real = argv[2], *view = argv[3];
	double end = now() + atof(argv[4]);
	char src[4200], aside[4200];
	snprintf(src, sizeof src, "%s/src", real);
	snprintf(aside, sizeof aside, "%s/aside", real);
	/* the name each call is made on: REAL/N or VIEW/N (N: "f", an existing file of the
	 * view's tree, or "new" for the calls that make an entry) */
	const char *leaf = strcmp(op, "mkdir") == 0 || strcmp(op, "symlink") == 0 ||
			   strcmp(op, "link") == 0 ? "new" : "f";
	snprintf(real_name, sizeof real_name, "%s/%s", real, leaf);
	snprintf(view_name, sizeof view_name, "%s/%s", view, leaf);
	pthread_t th;
	if (strcmp(op, "exchange") == 0) {
		/* REAL/d a directory, REAL/l a symlink to VIEW: swapped all the time, while
		 * REAL/d/f is written */
		snprintf(real_dir, sizeof real_dir, "%s/d", real);
		snprintf(link_dir, sizeof link_dir, "%s/l", real);
		mkdir(real_dir, 0755);
		if (symlink(view, link_dir) < 0 && access(link_dir, F_OK) < 0)
			return 3;
		snprintf(buf, sizeof buf, "%s/f", real_dir);
		pthread_create(&th, NULL, exchange, NULL);
	} else {
		strcpy(buf, real_name);
		pthread_create(&th, NULL, flip, NULL);
	}
	long calls = 0, zero = 0;
	while (now() < end) {
		long r = -1;
		int fd;
		/* what REAL needs before the call */
		if (strcmp(op, "unlink") == 0 || strcmp(op, "chmod") == 0 ||
		    strcmp(op, "truncate") == 0 || strcmp(op, "utime") == 0 ||
		    strcmp(op, "chown") == 0) {
			fd = open(real_name, O_WRONLY | O_CREAT, 0644);
			if (fd >= 0) {
				write(fd, "real\n", 5);
				close(fd);
			}
		}
		if (strcmp(op, "rename") == 0 || strcmp(op, "link") == 0) {
			fd = open(src, O_WRONLY | O_CREAT, 0644);
			if (fd >= 0)
				close(fd);
		}
		if (strcmp(op, "open") == 0 || strcmp(op, "exchange") == 0) {
			fd = open(buf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd >= 0) {
				write(fd, "PWNED\n", 6);
				close(fd);
				r = 0;
			}
		} else if (strcmp(op, "creat") == 0) {
			fd = creat(buf, 0644);
			if (fd >= 0) {
				write(fd, "PWNED\n", 6);
				close(fd);
				r = 0;
			}
		} else if (strcmp(op, "unlink") == 0) {
			r = unlink(buf);
		} else if (strcmp(op, "rename") == 0) {
			/* alternately: a file of REAL's onto the name, and the name away */
			r = (calls & 1) ? rename(src, buf) : rename(buf, aside);
		} else if (strcmp(op, "chmod") == 0) {
			r = chmod(buf, 0777);
		} else if (strcmp(op, "truncate") == 0) {
			r = truncate(buf, 0);
		} else if (strcmp(op, "mkdir") == 0) {
			r = mkdir(buf, 0755);
			rmdir(real_name);
		} else if (strcmp(op, "symlink") == 0) {
			r = symlink("PWNED", buf);
			unlink(real_name);
		} else if (strcmp(op, "link") == 0) {
			r = link(src, buf);
			unlink(real_name);
		} else if (strcmp(op, "utime") == 0) {
			struct timeval tv[2] = { { 1, 0 }, { 1, 0 } };
			r = utimes(buf, tv);
		} else if (strcmp(op, "chown") == 0) {
			r = chown(buf, getuid(), 12345);
		} else {
			fprintf(stderr, "flipper: unknown op %s\n", op);
			return 2;
		}
		calls++;
		zero += r == 0;
	}
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	printf("%s calls=%ld ok=%ld\n", op, calls, zero);
	return 0;
}
