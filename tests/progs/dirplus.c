/* Entries listed with getdents64 on a directory fd, then looked at with fstatat on that
 * fd (as tar, find, du and rm -r do), before and after changes made by this process, by
 * a child and through other names: every answer as the kernel's.
 * usage: dirplus DIR   (prints one line per check) */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int dfd;

static void list(const char *tag)
{
	char buf[4096], *names[64];
	int n = 0;
	lseek(dfd, 0, SEEK_SET);
	for (;;) {
		long got = syscall(SYS_getdents64, dfd, buf, sizeof buf);
		if (got <= 0)
			break;
		for (long off = 0; off < got;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			if (strcmp(d->d_name, ".") && strcmp(d->d_name, "..") && n < 64)
				names[n++] = strdup(d->d_name);
			off += d->d_reclen;
		}
	}
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (strcmp(names[j], names[i]) < 0) {
				char *x = names[i];
				names[i] = names[j];
				names[j] = x;
			}
	for (int i = 0; i < n; i++) {
		struct stat l, f;
		int rl = fstatat(dfd, names[i], &l, AT_SYMLINK_NOFOLLOW);
		int rf = fstatat(dfd, names[i], &f, 0);
		/* (a directory's size is the file system's own) */
		printf("%s %s: %d %o %lld %ld / %d %o %lld\n", tag, names[i], rl, l.st_mode,
		       S_ISDIR(l.st_mode) ? 0LL : (long long)l.st_size, (long)l.st_nlink, rf,
		       rf ? 0 : f.st_mode, rf || S_ISDIR(f.st_mode) ? 0LL : (long long)f.st_size);
		free(names[i]);
	}
}

static void one(const char *tag, const char *name)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		printf("%s %s: %s\n", tag, name, strerror(errno));
	else
		printf("%s %s: %o %lld %ld %lld\n", tag, name, st.st_mode, (long long)st.st_size,
		       (long)st.st_nlink, st.st_mtim.tv_sec < 3000 ? (long long)st.st_mtim.tv_sec
		       : -1LL);
}

int main(int argc, char **argv)
{
	if (argc < 2 || chdir(argv[1]) < 0)
		return 2;
	mkdir("d", 0755);
	int fd = open("d/a", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "abc", 3) != 3)
		return 3;
	close(fd);
	symlink("a", "d/l");
	symlink("none", "d/dangling");
	mkdir("d/s", 0700);
	dfd = open("d", O_RDONLY | O_DIRECTORY);
	one("first", "a");
	list("listed");
	list("again");
	chmod("d/a", 0600);
	one("chmod", "a");
	struct timespec times[2] = { { 1000, 0 }, { 2000, 0 } };
	utimensat(AT_FDCWD, "d/a", times, 0);
	one("utimens", "a");
	list("relisted");
	pid_t pid = fork();
	if (pid == 0) {
		truncate("d/a", 10);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	one("child truncate", "a");
	list("relisted");
	rename("d/a", "d/b");
	one("renamed", "a");
	one("renamed", "b");
	list("relisted");
	link("d/b", "d/c");
	one("linked", "b");
	list("relisted");
	unlink("d/c");
	one("unlinked", "c");
	one("unlinked", "b");
	fd = open("d/b", O_WRONLY | O_APPEND);
	write(fd, "more", 4);
	close(fd);
	one("appended", "b");
	list("final");
	close(dfd);
	printf("done\n");
	return 0;
}
