/* A small program for the debug trace test (tests/test_trace.py): open, read, fstat,
 * mmap, write, ioctl TCGETS, a signal and its handler, fork, execve, wait, exit. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static volatile int got;
static void on_usr1(int sig) { got = sig; }

int main(int argc, char **argv)
{
	char buf[64];
	struct termios tio;
	struct stat st;
	int fd = open("data.txt", O_RDONLY);
	ssize_t n = read(fd, buf, sizeof buf);
	fstat(fd, &st);
	char *map = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	int out = open("out.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	write(out, buf, n);
	write(out, map, 5);
	close(out);
	munmap(map, 4096);
	ioctl(1, TCGETS, &tio);
	signal(SIGUSR1, on_usr1);
	kill(getpid(), SIGUSR1);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/bin/true", "true", "x", (char *)NULL);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	access("out.txt", R_OK | W_OK);
	unlink("out.txt");
	return got == SIGUSR1 ? 3 : 1;
}
