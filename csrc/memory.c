/* The guest's memory: read, read a string, write (read-only mappings too). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include "tracer_internal.h"

long umvu_peek(int tid, unsigned long guest_addr, void *buf, unsigned long len)
{
	struct iovec local = { buf, len }, remote = { (void *)guest_addr, len };
	ssize_t n = process_vm_readv(tid, &local, 1, &remote, 1, 0);
	return n < 0 ? -errno : n;
}

/* Read a NUL-terminated string of at most maxlen bytes (NUL included).
 * Returns its length without NUL, -EFAULT, or -ENAMETOOLONG when no NUL was found. */
long umvu_peekstr(int tid, unsigned long guest_addr, char *buf, unsigned long maxlen)
{
	unsigned long done = 0;
	while (done < maxlen) {
		unsigned long addr = guest_addr + done;
		unsigned long chunk = 4096 - (addr & 4095);
		if (done == 0 && chunk > 256)
			chunk = 256; /* most paths are short: copy no more at first */
		if (chunk > maxlen - done)
			chunk = maxlen - done;
		long n = umvu_peek(tid, addr, buf + done, chunk);
		if (n <= 0)
			return -EFAULT;
		char *z = memchr(buf + done, 0, n);
		if (z)
			return z - buf;
		done += n;
	}
	return -ENAMETOOLONG;
}

long umvu_poke(int tid, unsigned long guest_addr, const void *buf, unsigned long len)
{
	struct iovec local = { (void *)buf, len }, remote = { (void *)guest_addr, len };
	ssize_t n = process_vm_writev(tid, &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return n;
	/* read-only mappings: /proc/PID/mem writes with FOLL_FORCE */
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/mem", tid);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pwrite(fd, buf, len, (off_t)guest_addr);
	int e = errno;
	close(fd);
	return n < 0 ? -e : n;
}
