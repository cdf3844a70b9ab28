/* Fd tables shared and copied while fds become virtual: a process made with
 * CLONE_FILES (not a thread) reads an fd the other opened after the clone; threads read
 * fds another thread opened; one process holds many fds at once, each read, seeked,
 * stat'ed, mapped and closed. Prints what it read; run on a directory of files f0..f19. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *dir;
static int pipe_go[2], pipe_fd[2];
static char stack[256 * 1024];

static void show(const char *who, int fd)
{
	char buf[64] = "";
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	struct stat st;
	fstat(fd, &st);
	printf("%s: fd %s, %zd bytes, size %lld: %s", who, fd > 2 ? "ok" : "low", n,
	       (long long)st.st_size, buf);
}

static int sharer(void *arg)
{
	int fd;
	(void)arg;
	/* wait for the other process to open, then use the fd it got: same table */
	if (read(pipe_fd[0], &fd, sizeof fd) != sizeof fd)
		return 1;
	show("clone(CLONE_FILES) child", fd);
	lseek(fd, 2, SEEK_SET);
	char c;
	if (read(fd, &c, 1) == 1)
		printf("shared offset read: %c\n", c);
	close(fd);
	return 0;
}

static void *thread_main(void *arg)
{
	show("thread", *(int *)arg);
	return NULL;
}

int main(int argc, char **argv)
{
	char path[4096];
	setvbuf(stdout, NULL, _IOLBF, 0); /* children end with _exit */
	dir = argv[1];
	if (pipe(pipe_go) || pipe(pipe_fd))
		return 1;
	pid_t pid = clone(sharer, stack + sizeof stack, CLONE_FILES | SIGCHLD, NULL);
	if (pid < 0)
		return 1;
	snprintf(path, sizeof path, "%s/f1", dir);
	int fd = open(path, O_RDONLY);
	if (write(pipe_fd[1], &fd, sizeof fd) != sizeof fd)
		return 1;
	int status;
	waitpid(pid, &status, 0);
	printf("child status %d; fd closed by the child: %s\n", WEXITSTATUS(status),
	       fcntl(fd, F_GETFD) < 0 ? "yes" : "no");

	snprintf(path, sizeof path, "%s/f2", dir);
	int tfd = open(path, O_RDONLY);
	pthread_t th;
	pthread_create(&th, NULL, thread_main, &tfd);
	pthread_join(th, NULL);

	int fds[20];
	for (int i = 0; i < 20; i++) {
		snprintf(path, sizeof path, "%s/f%d", dir, i);
		fds[i] = open(path, O_RDONLY);
	}
	for (int i = 19; i >= 0; i--) {
		char name[32];
		snprintf(name, sizeof name, "many[%d]", i);
		show(name, fds[i]);
		char *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fds[i], 0);
		printf("  mmap: %.*s", m == MAP_FAILED ? 7 : 4, m == MAP_FAILED ? "failed\n" : m);
		printf("%s", m == MAP_FAILED ? "" : "\n");
		if (m != MAP_FAILED)
			munmap(m, 4096);
	}
	pid = fork();
	if (pid == 0) {
		show("forked child", fds[7]);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	for (int i = 0; i < 20; i++)
		close(fds[i]);
	return 0;
}
