/* Path calls under a storm of signals whose handler has no SA_RESTART: natively a
 * stat, an open of a regular file or a readlink never fails with EINTR, nor may it
 * under umvu (where such a call may be waiting for the tracer when the signal comes).
 * argv[1]: a directory to work in. Prints what it counted. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static void on_alarm(int sig) { (void)sig; got++; }

int main(int argc, char **argv)
{
	char file[4096], link[4096], buf[4096];
	struct sigaction sa;
	struct itimerval it = { { 0, 200 }, { 0, 200 } };
	struct stat st;
	int eintr = 0, other = 0, calls = 0;

	if (argc < 2)
		return 2;
	snprintf(file, sizeof file, "%s/f", argv[1]);
	snprintf(link, sizeof link, "%s/l", argv[1]);
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "data\n", 5) != 5 || close(fd) < 0 || symlink("f", link) < 0)
		return 3;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm; /* no SA_RESTART */
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	for (int i = 0; i < 3000; i++) {
		int r[4];
		r[0] = stat(file, &st);
		r[1] = fd = open(file, O_RDONLY);
		if (fd >= 0)
			close(fd);
		r[2] = (int)readlink(link, buf, sizeof buf);
		r[3] = access(argv[1], R_OK);
		for (int k = 0; k < 4; k++, calls++)
			if (r[k] < 0)
				(errno == EINTR ? eintr++ : other++);
	}
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	printf("calls %d eintr %d other errors %d signals %s\n", calls, eintr, other,
	       got > 0 ? "some" : "none");
	return 0;
}
