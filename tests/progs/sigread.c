/* sigread READPATH WRITEPATH restart|norestart: a read that blocks, interrupted by
 * SIGALRM with or without SA_RESTART. A child opens WRITEPATH, waits until this process
 * sleeps (its state S in /proc: blocked in the read), sends it SIGALRM, and once the
 * handler has run (it says so through a pipe) writes "late\n" to WRITEPATH. Prints what
 * each read gives. Natively READPATH and WRITEPATH are one fifo. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int go[2];

static void on_alarm(int sig)
{
	(void)sig;
	if (write(go[1], "x", 1) < 0)
		_exit(3);
}

static char state_of(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

static void show(const char *what, ssize_t n, const char *buf)
{
	if (n < 0)
		printf("%s: %s\n", what, strerror(errno));
	else
		printf("%s %zd: %.*s", what, n, (int)n, buf);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	int restart = strcmp(argv[3], "restart") == 0;
	if (pipe(go) < 0)
		return 2;
	pid_t parent = getpid();
	pid_t child = fork();
	if (child == 0) {
		close(go[1]);
		int w = open(argv[2], O_WRONLY);
		if (w < 0)
			_exit(4);
		for (long i = 0; state_of(parent) != 'S'; i++) {
			if (i > 20000000)
				_exit(5);
			sched_yield();
		}
		kill(parent, SIGALRM);
		char c;
		if (read(go[0], &c, 1) != 1)
			_exit(6);
		if (write(w, "late\n", 5) != 5)
			_exit(7);
		_exit(0);
	}
	close(go[0]);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigaction(SIGALRM, &sa, NULL);
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	char buf[64];
	ssize_t n = read(fd, buf, sizeof buf);
	show("read", n, buf);
	if (n < 0) {
		n = read(fd, buf, sizeof buf);
		show("again", n, buf);
	}
	int status;
	waitpid(child, &status, 0);
	printf("child %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}
