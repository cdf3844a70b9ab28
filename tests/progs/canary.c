/* canary FILE SIZE: read SIZE bytes of FILE into a buffer followed by a canary; prints
 * what read gave and whether the canary is intact. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static struct { char buf[64]; char canary[8192]; } m;
	size_t size = (size_t)atol(argv[2]);
	memset(m.canary, 'c', sizeof m.canary);
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		printf("open: %s\n", strerror(errno));
		return 1;
	}
	ssize_t n = read(fd, m.buf, size);
	int intact = 1;
	for (size_t i = 0; i < sizeof m.canary; i++)
		intact &= m.canary[i] == 'c';
	if (n < 0)
		printf("read: %s, canary %s\n", strerror(errno), intact ? "intact" : "overwritten");
	else
		printf("read %zd, canary %s\n", n, intact ? "intact" : "overwritten");
	return 0;
}
