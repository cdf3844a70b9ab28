/* The calls the C loop decides alone, without Python: fd calls on fds virtual nowhere
 * (the fd fast path), path calls whose walk, done here as the kernel does it, stays out
 * of every virtual prefix (the path fast path), and those Python left answers for. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "tracer_internal.h"

/* path (canonical, len n) is at or below one of the prefixes */
int in_prefix(const char *path, size_t n)
{
	for (const char *p = tr.prefixes; p && *p; p += strlen(p) + 1) {
		size_t k = strlen(p);
		if (k == 1 && p[0] == '/')
			return 1;
		if (n >= k && memcmp(path, p, k) == 0 && (n == k || path[k] == '/'))
			return 1;
	}
	return 0;
}

/* a prefix lies strictly below path (canonical, len n) */
int above_prefix(const char *path, size_t n)
{
	for (const char *p = tr.prefixes; p && *p; p += strlen(p) + 1) {
		size_t k = strlen(p);
		if (k > n && memcmp(path, p, n) == 0 && (n == 1 || p[n] == '/'))
			return 1;
	}
	return 0;
}

static unsigned long step_hash(const char *path, size_t n)
{
	unsigned long h = 1469598103934665603UL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)path[i]) * 1099511628211UL;
	return h;
}

static int step_known(const char *path, size_t n, unsigned long h, long now)
{
	struct step *e = &tr.steps[h % STEPS];
	return e->path && e->hash == h && e->gen == tr.steps_gen && e->until > now &&
	       e->len == n && memcmp(e->path, path, n) == 0;
}

static void step_add(const char *path, size_t n, unsigned long h, long now)
{
	struct step *e = &tr.steps[h % STEPS];
	char *copy = malloc(n + 1);
	if (!copy)
		return;
	memcpy(copy, path, n);
	copy[n] = 0;
	free(e->path);
	*e = (struct step){ h, now + ANSWER_NS, tr.steps_gen, n, copy };
}

void steps_forget(void)
{
	tr.steps_gen++;
}

/* path (canonical, len n) is gone: its step goes */
void step_forget(const char *path, size_t n)
{
	unsigned long h = step_hash(path, n);
	struct step *e = &tr.steps[h % STEPS];
	if (e->path && e->hash == h && e->len == n && memcmp(e->path, path, n) == 0)
		e->until = 0;
}

/*
 * Walk path from cur (a canonical absolute directory, len *curlen, buffer WALK_MAX) the
 * way the kernel does: component by component, "." and ".." physically, every symlink
 * met followed (the last one too: that can only widen what is checked). /proc/self and
 * /proc/thread-self are tid's (walked on as /proc/TID[/task/TID]); a symlink below /proc
 * is a magic link (a cwd, a root, an fd, which the tracer's readlink cannot tell as
 * the guest's view has them): Python decides. Returns 1 when
 * no step is at or below a prefix (the kernel's walk never enters one), 0 when one is, or
 * when the walk cannot be sure (too long, too many links, an lstat that failed for
 * another reason than ENOENT/ENOTDIR): Python then decides. *complete (if not NULL) says
 * whether the walk reached the end of path (cur is then where it leads), not a name the
 * host lacks.
 */
int walk_outside(int tid, char *cur, size_t curlen, const char *path, int *complete)
{
	char rest[WALK_MAX], target[WALK_MAX];
	size_t restlen = strlen(path);
	int links = 0;

	if (restlen >= WALK_MAX)
		return 0;
	memcpy(rest, path, restlen + 1);
	char *p = rest;
	long now = now_ns();
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p) {
			if (complete)
				*complete = 1;
			return 1;
		}
		char *end = strchrnul(p, '/');
		size_t clen = end - p;
		if (clen == 1 && p[0] == '.') {
			p = end;
			continue;
		}
		if (clen == 2 && p[0] == '.' && p[1] == '.') {
			while (curlen > 1 && cur[curlen - 1] != '/')
				curlen--;
			if (curlen > 1)
				curlen--;
			cur[curlen] = 0;
			p = end;
			if (in_prefix(cur, curlen))
				return 0;
			continue;
		}
		if (curlen + 1 + clen >= WALK_MAX)
			return 0;
		size_t parentlen = curlen;
		if (curlen > 1)
			cur[curlen++] = '/';
		memcpy(cur + curlen, p, clen);
		curlen += clen;
		cur[curlen] = 0;
		p = end;
		if (parentlen == 5 && memcmp(cur, "/proc/", 6) == 0) {
			if (strcmp(cur, "/proc/self") == 0)
				curlen = snprintf(cur, WALK_MAX, "/proc/%d", tid);
			else if (strcmp(cur, "/proc/thread-self") == 0)
				curlen = snprintf(cur, WALK_MAX, "/proc/%d/task/%d", tid, tid);
		}
		if (in_prefix(cur, curlen))
			return 0;
		unsigned long h = step_hash(cur, curlen);
		if (step_known(cur, curlen, h, now))
			continue;
		struct stat st;
		if (lstat(cur, &st) < 0) {
			/* the kernel stops here too (or creates the last component), unless a
			 * prefix hides below a name the host does not have */
			if (errno == ENOENT || errno == ENOTDIR)
				return !above_prefix(cur, curlen);
			return 0;
		}
		if (!S_ISLNK(st.st_mode)) {
			step_add(cur, curlen, h, now);
			continue;
		}
		if (++links > 40 || (curlen > 6 && memcmp(cur, "/proc/", 6) == 0))
			return 0;
		ssize_t tn = readlink(cur, target, WALK_MAX - 1);
		if (tn <= 0)
			return 0;
		size_t left = strlen(p);
		if ((size_t)tn + left + 1 >= WALK_MAX)
			return 0;
		memmove(rest + tn, p, left + 1);
		memcpy(rest, target, tn);
		p = rest;
		if (target[0] == '/') {
			cur[0] = '/';
			curlen = 1;
			cur[1] = 0;
			if (in_prefix(cur, curlen))
				return 0;
		} else {
			curlen = parentlen;
			cur[curlen] = 0;
		}
	}
}

/* The canonical host path of tid's cwd or of its fd, in cur; 0 when there is none. */
static int base_of(int tid, int dirfd, char *cur, size_t *curlen)
{
	char link[64];
	if (dirfd == AT_FDCWD)
		snprintf(link, sizeof link, "/proc/%d/cwd", tid);
	else
		snprintf(link, sizeof link, "/proc/%d/fd/%d", tid, dirfd);
	ssize_t n = readlink(link, cur, WALK_MAX - 1);
	if (n <= 0 || cur[0] != '/')
		return 0;
	cur[n] = 0;
	if (n > 10 && strcmp(cur + n - 10, " (deleted)") == 0)
		return 0;
	*curlen = (size_t)n;
	return !in_prefix(cur, *curlen);
}

static int fd_real(int fd)
{
	return fd >= 0 && fd < FASTFD && tr.vfd_count[fd] == 0;
}

/* Where the walk of path (relative to dirfd) starts, in cur: "/" or the cwd's or the
 * dirfd's canonical host path; 0 when that is virtual, in a prefix, or unknown. */
int walk_start(int tid, int dirfd, const char *path, char *cur, size_t *curlen)
{
	if (path[0] == '/') {
		cur[0] = '/';
		cur[1] = 0;
		*curlen = 1;
		return !in_prefix(cur, *curlen);
	}
	if (dirfd == AT_FDCWD)
		return !tr.virtual_cwds && base_of(tid, dirfd, cur, curlen);
	return fd_real(dirfd) && base_of(tid, dirfd, cur, curlen);
}

/* Every path argument of this path syscall is served by the kernel in the guest's view
 * exactly as on the host: no virtual cwd or dirfd under it, no walk into a prefix. */
static int path_native(int tid, const struct umvu_event *ev)
{
	const struct path_desc *d = &tr.path_of[ev->nr];
	char path[4097], cur[WALK_MAX];

	if (d->cwd_only)
		return !tr.virtual_cwds;

	for (int i = 0; i < 2 && d->path[i] < 6; i++) {
		unsigned long addr = ev->args[d->path[i]];
		int dirfd = d->dirfd[i] < 6 ? (int)ev->args[d->dirfd[i]] : AT_FDCWD;
		size_t curlen;
		if (addr == 0) {
			/* utimensat(fd, NULL, ...) works on the fd itself */
			if (!(d->null_is_fd && fd_real(dirfd)))
				return 0;
			continue;
		}
		long n = umvu_peekstr(tid, addr, path, sizeof path);
		if (n < 0)
			return 0;
		/* "" from a real fd: the fd itself (AT_EMPTY_PATH: fstat, statx...) or ENOENT,
		 * both the kernel's answer, wherever the fd's file is */
		if (path[0] == 0 && dirfd != AT_FDCWD && fd_real(dirfd))
			continue;
		if (!walk_start(tid, dirfd, path, cur, &curlen) ||
		    !walk_outside(tid, cur, curlen, path, NULL))
			return 0;
	}
	return 1;
}

/* A call that changes the file system is never let run on the guest's memory once a
 * prefix exists: the guest could change its path between this walk and the kernel's
 * (it is made on a copy, by the C loop where it can: hostwrites.c, else by Python:
 * umvu.core.hostcalls). */
static int writes(const struct path_desc *d, const struct umvu_event *ev)
{
	if (d->writes)
		return 1;
	if (d->oflags < 6) {
		long flags = (long)ev->args[d->oflags];
		return (flags & (O_ACCMODE | O_CREAT | O_TRUNC)) != O_RDONLY ||
		       (flags & __O_TMPFILE) == __O_TMPFILE;
	}
	return 0;
}

/* sendmsg/sendmmsg/recvmsg/recvmmsg on a real socket (scm_watch): natively when no
 * virtual fd can go in the message (none is virtual anywhere, or it has no control
 * data) or come out of it (no control buffer); else Python's. */
static int scm_native(int tid, const struct umvu_event *ev)
{
	int send;
	switch (ev->nr) {
	case SYS_sendmsg: case SYS_sendmmsg:
		send = 1;
		break;
	case SYS_recvmsg: case SYS_recvmmsg:
		send = 0;
		break;
	default:
		return 0;
	}
	int fd = (int)ev->args[0];
	if (fd < 0 || fd >= FASTFD || tr.vfd_count[fd])
		return 0; /* a virtual socket's call (or a large fd): Python's */
	/* (a receive may block until after a send of a virtual fd opened meanwhile: what
	 * is on its way when it ends counts, so any receive with a control buffer is
	 * Python's) */
	if (send && tr.vfd_total == 0)
		return 1;
	if (ev->nr == SYS_sendmsg || ev->nr == SYS_recvmsg) {
		unsigned long ctl[2]; /* struct msghdr's msg_control, msg_controllen */
		if (umvu_peek(tid, ev->args[1] + 32, ctl, sizeof ctl) == sizeof ctl &&
		    (ctl[0] == 0 || ctl[1] == 0))
			return 1;
	}
	return 0;
}

/* Python says whether it traces SCM_RIGHTS, and how many virtual files are on their way. */
int umvu_set_scm(int watch, int inflight)
{
	tr.scm_watch = watch;
	tr.scm_inflight = inflight;
	return 0;
}

/* The calls the C loop decides alone: answered, or run in the kernel (tid resumed). */
int decide_in_c(int tid, const struct umvu_event *ev)
{
	if (ev->kind != UMVU_EV_SYSCALL || ev->nr < 0 || ev->nr >= FASTNR)
		return 0;
	callers_call(tid, ev->nr);
	if (tr.let_run[ev->nr / 8] & (1 << (ev->nr % 8))) {
		resume(tid, 0);
		return 1;
	}
	switch (ev->nr) {
	case SYS_rename: case SYS_renameat: case SYS_renameat2: case SYS_unlink:
	case SYS_unlinkat: case SYS_rmdir: case SYS_symlink: case SYS_symlinkat:
	case SYS_mount: case SYS_umount2: case SYS_pivot_root: case SYS_move_mount:
		/* a name may change: the walks' steps go (a call umvu makes, a "writes" one,
		 * forgets them once made: hostwrites.c, umvu.core.hostcalls) */
		if (!tr.path_of[ev->nr].writes)
			steps_forget();
	}
	if ((tr.nfdstats || tr.nents) && answer_in_c(tid, ev))
		return 1;
	if (tr.fastpath && tr.fd_arg_of[ev->nr] < 6) {
		int fd = (int)ev->args[tr.fd_arg_of[ev->nr]];
		if (fd < 0 || (fd < FASTFD && tr.vfd_count[fd] == 0)) {
			resume(tid, 0);
			return 1;
		}
	}
	if (tr.fastpath && tr.scm_watch && scm_native(tid, ev)) {
		resume(tid, 0);
		return 1;
	}
	if (!tr.pathfast || (tr.path_of[ev->nr].path[0] >= 6 && !tr.path_of[ev->nr].cwd_only))
		return 0;
	if (writes(&tr.path_of[ev->nr], ev))
		return tr.cwrites && host_write_in_c(tid, ev);
	if (path_native(tid, ev)) {
		resume(tid, 0);
		return 1;
	}
	return 0;
}

/* Configure the path fast path: table holds n descriptors of 6 bytes (path, dirfd,
 * path2, dirfd2; 0xff: none; then bits: 1 a NULL path means the dirfd, 2 no path, native
 * while no thread has a virtual cwd, as getcwd, 4 the call writes; then the index of the
 * open flags argument that says whether it writes, 0xff: none) indexed by syscall number;
 * prefixes_in the NUL-separated canonical prefixes (len bytes, ending with an empty
 * string). */
int umvu_set_pathfast(const unsigned char *table, int n, const char *prefixes_in, int len,
		      int enable)
{
	char *copy = malloc(len + 2);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, prefixes_in, len);
	copy[len] = 0;
	copy[len + 1] = 0;
	free(tr.prefixes);
	tr.prefixes = copy;
	steps_forget();
	memset(tr.path_of, 0xff, sizeof tr.path_of);
	if (n > FASTNR)
		n = FASTNR;
	for (int i = 0; i < n; i++) {
		const unsigned char *t = table + 6 * i;
		tr.path_of[i] = (struct path_desc){ { t[0], t[2] }, { t[1], t[3] }, t[4] & 1,
						 (t[4] & 2) != 0, (t[4] & 4) != 0, t[5] };
	}
	tr.pathfast = enable;
	return 0;
}

/* A name changed (a rename, unlink... umvu made for a guest): the walks' steps go, after
 * the change as before it (a walk between the two cached what was true before). */
int umvu_steps_forget(void)
{
	steps_forget();
	return 0;
}

/* How many fs states have a cwd the kernel does not have (relative paths need Python). */
int umvu_set_virtual_cwds(int n)
{
	tr.virtual_cwds = n;
	return 0;
}

/* Configure the fd fast path: table[nr] = fd argument index or 0xff; enable 0/1. */
int umvu_set_fastpath(const unsigned char *table, int n, int enable)
{
	memset(tr.fd_arg_of, 0xff, sizeof tr.fd_arg_of);
	if (n > FASTNR)
		n = FASTNR;
	memcpy(tr.fd_arg_of, table, n);
	tr.fastpath = enable;
	return 0;
}

/* Count fd as virtual in one more (delta 1) or one less (delta -1) fd table. */
int umvu_vfd_ref(int fd, int delta)
{
	if (delta < 0)
		fdstat_drop(-1, fd);
	if (fd < 0 || fd >= FASTFD)
		return 0;
	if (delta < 0 && tr.vfd_count[fd] == 0)
		return -EINVAL;
	tr.vfd_count[fd] += delta;
	tr.vfd_total += delta;
	return 0;
}
