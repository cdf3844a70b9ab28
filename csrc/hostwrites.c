/* Calls that change the file system, made by the C loop itself on what it checked, as
 * umvu.core.hostcalls makes them in Python, for the cases that need nothing of Python:
 * the path copied out of the guest once and walked outside every prefix (walk_outside),
 * the directory of its last component opened along that walk with openat2
 * RESOLVE_NO_SYMLINKS (a symlink met there was not there when the walk looked), the last
 * component acted on in it without following, with the guest's umask, and an open's file
 * handed over with seccomp ADDFD (SEND: the answer is the new fd). Whatever is not plain
 * (a last symlink the call follows, a fifo, a tty or another device, a trailing "/", "."
 * or "..", a path in /proc, a guest whose ids are not umvu's, an error on the way before
 * anything changed) is left to Python, which then does the whole call. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>

#include "tracer_internal.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452 /* (Linux 6.6; older kernels say ENOSYS: Python's then) */
#endif
#ifndef SECCOMP_ADDFD_FLAG_SEND
#define SECCOMP_ADDFD_FLAG_SEND (1UL << 1)
#endif

/* ------------------------------------------------------------------ the callers
 * What the C loop knows of a guest thread's credentials: its umask, and whether its ids
 * (uid, gid, groups, effective capabilities) are umvu's own, so that umvu's call is the
 * one the kernel would have checked for the guest. Read from /proc/TID/status at its
 * first call that needs them; forgotten (all at once, callers_gen) at every umask,
 * set*id and exec the guest starts and every exec event, and when Python says so (after
 * a umask ran: umvu_callers_forget); a new thread starts unknown (callers_new). A process
 * one of whose threads other than the leader started an exec is never known again (that
 * exec gives the leader's tid to the new program at a moment the C loop may not see). */
struct caller {
	unsigned gen;
	unsigned short umask;
	unsigned char ok, never;
};

static struct caller *callers;
static char own_ids[4][128]; /* umvu's Uid, Gid, Groups, CapEff lines */
static int own_read, own_root;

/* the values of the lines of a /proc status file this needs, in out[0..3]; umask */
static int status_read(const char *file, char out[4][128], int *umask)
{
	static const char *keys[4] = { "Uid:", "Gid:", "Groups:", "CapEff:" };
	char buf[4096];
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	int found = 0;
	*umask = -1;
	for (char *line = buf; line && *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = 0;
		if (strncmp(line, "Umask:", 6) == 0)
			*umask = (int)strtol(line + 6, NULL, 8);
		for (int k = 0; k < 4; k++) {
			size_t kl = strlen(keys[k]);
			if (strncmp(line, keys[k], kl) == 0) {
				snprintf(out[k], 128, "%s", line + kl);
				found |= 1 << k;
			}
		}
		line = end ? end + 1 : NULL;
	}
	return found == 15 && *umask >= 0 ? 0 : -1;
}

/* tid's umask when the C loop may act for it (its ids are umvu's), else -1 */
static int caller_umask(int tid)
{
	if (!callers && !(callers = calloc(tr.pid_max + 1, sizeof *callers)))
		return -1;
	if (!own_read) {
		int um;
		if (status_read("/proc/thread-self/status", own_ids, &um) < 0)
			return -1;
		own_read = 1;
		own_root = geteuid() == 0;
	}
	struct caller *c = &callers[tid];
	if (c->never)
		return -1;
	if (c->gen != tr.callers_gen) {
		char ids[4][128], path[64];
		int um;
		snprintf(path, sizeof path, "/proc/%d/status", tid);
		if (status_read(path, ids, &um) < 0)
			return -1;
		int ok = 1;
		for (int k = 0; k < 4; k++)
			ok &= strcmp(ids[k], own_ids[k]) == 0;
		*c = (struct caller){ tr.callers_gen, (unsigned short)um, (unsigned char)ok, 0 };
	}
	return c->ok ? c->umask : -1;
}

void callers_forget(void)
{
	tr.callers_gen++;
}

/* tid is a new thread (a clone): nothing is known of it */
void callers_new(int tid)
{
	if (callers && tid_ok(tid))
		callers[tid] = (struct caller){ 0, 0, 0, 0 };
}

/* tid starts a call that may change its umask, ids or program (see struct caller) */
void callers_call(int tid, long nr)
{
	int tgid;
	switch (nr) {
	case SYS_execve: case SYS_execveat:
		tgid = tree_tgid(tid);
		if (callers && tgid != tid && tid_ok(tgid))
			callers[tgid].never = 1;
		/* fall through */
	case SYS_umask: case SYS_setuid: case SYS_setgid: case SYS_setreuid:
	case SYS_setregid: case SYS_setresuid: case SYS_setresgid: case SYS_setfsuid:
	case SYS_setfsgid: case SYS_setgroups: case SYS_capset: case SYS_unshare:
	case SYS_setns:
		tr.callers_gen++;
	}
}

int umvu_callers_forget(void)
{
	callers_forget();
	return 0;
}

int umvu_set_cwrites(int on)
{
	tr.cwrites = on;
	return 0;
}

/* ------------------------------------------------------------------ the places */
struct place {
	int fd;         /* O_PATH fd of the directory of the last component */
	char last[256]; /* the last component */
	char full[WALK_MAX + 257]; /* the canonical path of last */
	size_t fulllen;
};

/* The place of the path at guest_addr (dirfd-relative): its directory walked outside
 * every prefix and, with open_dir, opened without a symlink (else place->fd is -1: an
 * open walks place->full itself, with RESOLVE_NO_SYMLINKS). 1 when found (place->fd to
 * close), 0 when Python is to decide. */
static int place_of(int tid, int dirfd, unsigned long guest_addr, struct place *place,
		    int open_dir)
{
	char path[4097], cur[WALK_MAX];
	size_t curlen;
	if (guest_addr == 0)
		return 0;
	long n = umvu_peekstr(tid, guest_addr, path, sizeof path);
	if (n <= 0 || path[n - 1] == '/')
		return 0;
	char *slash = strrchr(path, '/');
	char *last = slash ? slash + 1 : path;
	size_t lastlen = strlen(last);
	if (lastlen == 0 || lastlen > 255 || strcmp(last, ".") == 0 || strcmp(last, "..") == 0)
		return 0;
	memcpy(place->last, last, lastlen + 1);
	*last = 0; /* path: the directory part ("" for a bare name) */
	if (!walk_start(tid, dirfd, path, cur, &curlen))
		return 0;
	int complete = 0;
	if (!walk_outside(tid, cur, curlen, path, &complete) || !complete)
		return 0;
	curlen = strlen(cur);
	/* /proc (magic links, fd directories): Python's */
	if (curlen >= 5 && memcmp(cur, "/proc", 5) == 0 && (cur[5] == 0 || cur[5] == '/'))
		return 0;
	char *full = place->full;
	size_t fulllen = (size_t)snprintf(full, sizeof place->full, "%s%s%s", cur,
					  curlen > 1 ? "/" : "", place->last);
	place->fulllen = fulllen;
	if (in_prefix(full, fulllen) || above_prefix(full, fulllen))
		return 0;
	place->fd = -1;
	if (!open_dir)
		return 1;
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, cur, &how, sizeof how);
	if (fd < 0)
		return 0; /* (a symlink swapped in, or gone: Python resolves it again) */
	place->fd = fd;
	return 1;
}

/* last in place is no symlink (or is not there): a call that follows may act on it */
static int no_link(const struct place *p)
{
	struct stat st;
	if (fstatat(p->fd, p->last, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT;
	return !S_ISLNK(st.st_mode);
}

/* The open of place->full, its directory walked without a symlink and its last component
 * followed by nothing, its flags as the guest's: what exists is looked at (a symlink, a
 * fifo, a device or a socket is not opened here), then opened with openat2
 * RESOLVE_NO_SYMLINKS, O_NONBLOCK and O_NOCTTY (what was swapped in meanwhile can
 * neither be followed nor make umvu wait or take a tty) and looked at again through its
 * fd; O_NONBLOCK is then taken back unless the guest asked for it. What does not exist
 * is made with O_EXCL. The new fd, -errno, or -ECANCELED when Python is to make it
 * (nothing made yet). */
#define OPEN_FLAGS_KNOWN (O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | \
			  O_NONBLOCK | O_DSYNC | O_ASYNC | O_DIRECT | O_LARGEFILE | \
			  O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_SYNC)
static int plain_kind(mode_t m, dev_t rdev)
{
	return S_ISREG(m) || S_ISDIR(m) || (S_ISCHR(m) && major(rdev) == 1);
}

static int open_at(const struct place *p, int flags, int mode)
{
	struct stat st;
	struct open_how how = {
		.flags = (unsigned long)((flags & OPEN_FLAGS_KNOWN) | O_CLOEXEC),
		.mode = flags & O_CREAT ? (unsigned long)(mode & 07777) : 0,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	if (flags & O_PATH)
		return -ECANCELED; /* (whose other flags openat2 refuses where open drops them) */
	if (fstatat(AT_FDCWD, p->full, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			return -ECANCELED; /* (the kernel's answer, which Python's walk gives) */
		if (!(flags & O_CREAT))
			return -ENOENT;
		how.flags |= O_EXCL;
		int fd = (int)syscall(SYS_openat2, AT_FDCWD, p->full, &how, sizeof how);
		if (fd < 0 && (errno == ELOOP || (errno == EEXIST && !(flags & O_EXCL))))
			return -ECANCELED; /* made meanwhile, or a symlink swapped in */
		return fd < 0 ? -errno : fd;
	}
	if (!plain_kind(st.st_mode, st.st_rdev))
		return -ECANCELED; /* (a symlink not followed, a fifo, a tty, a device, a
				    * socket: Python's) */
	how.flags |= O_NONBLOCK | O_NOCTTY;
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, p->full, &how, sizeof how);
	if (fd < 0)
		/* a symlink or a socket swapped in (nothing made: Python's), or the
		 * kernel's answer */
		return errno == ELOOP || errno == ENXIO || errno == EAGAIN ? -ECANCELED : -errno;
	if (fstat(fd, &st) < 0 || !plain_kind(st.st_mode, st.st_rdev) ||
	    (!(flags & O_NONBLOCK) &&
	     /* (O_ASYNC as open left it: F_SETFL acts on a change only) */
	     fcntl(fd, F_SETFL, flags & (O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME)) < 0)) {
		close(fd); /* (swapped in meanwhile: Python's) */
		return -ECANCELED;
	}
	return fd;
}

/* An ADDFD wakes the guest's thread as the kernel wakes any sleeper: on another CPU
 * when this one is busy (it is: the ioctl runs here), which in a VM means waking an idle
 * vCPU (tens of µs), where the SEND of an answer wakes it on this CPU
 * (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP). So for the ADDFD the thread is held to this CPU
 * (it runs here as soon as the ioctl sleeps), and given its own affinity back once the
 * ioctl returned, unless the guest set another meanwhile. Where its affinity or a
 * cpuset does not allow this CPU, nothing is held. */
static int hold_here(int tid, cpu_set_t *old, int *cpu)
{
	cpu_set_t here;
	*cpu = sched_getcpu();
	if (*cpu < 0 || *cpu >= CPU_SETSIZE || sched_getaffinity(tid, sizeof *old, old) < 0 ||
	    !CPU_ISSET(*cpu, old) || CPU_COUNT(old) < 2)
		return 0;
	CPU_ZERO(&here);
	CPU_SET(*cpu, &here);
	return sched_setaffinity(tid, sizeof here, &here) == 0;
}

static void let_go(int tid, const cpu_set_t *old, int cpu)
{
	cpu_set_t now;
	if (sched_getaffinity(tid, sizeof now, &now) == 0 && CPU_COUNT(&now) == 1 &&
	    CPU_ISSET(cpu, &now))
		sched_setaffinity(tid, sizeof *old, old);
}

/* fd (or -errno) is the answer to tid's open, waiting in a notification */
static void give_fd(int tid, int fd, int flags)
{
	if (fd < 0) {
		umvu_sys_skip(tid, fd, 0);
		return;
	}
	struct seccomp_notif_addfd a;
	memset(&a, 0, sizeof a);
	a.id = tr.notif_id[tid];
	a.flags = SECCOMP_ADDFD_FLAG_SEND;
	a.srcfd = (unsigned)fd;
	a.newfd_flags = (unsigned)(flags & O_CLOEXEC);
	cpu_set_t old;
	int cpu, held = hold_here(tid, &old, &cpu);
	int ret = ioctl(tr.notif_fd[tid], SECCOMP_IOCTL_NOTIF_ADDFD, &a);
	int e = errno;
	if (held)
		let_go(tid, &old, cpu);
	close(fd);
	if (ret >= 0 || e == ENOENT) /* answered, or the thread left the call (killed) */
		tr.notif_id[tid] = 0;
	else
		umvu_sys_skip(tid, -e, 0); /* (EMFILE...) */
}

/* tid's call changes the file system: made here and answered (1), or left to Python
 * (0), which then makes it whole. */
int host_write_in_c(int tid, const struct umvu_event *ev)
{
	const struct path_desc *d = &tr.path_of[ev->nr];
	const unsigned long *a = ev->args;
	int flags = 0, mode = 0, follow = 0, creates = 0, is_open = 0;
	switch (ev->nr) {
	case SYS_open: case SYS_openat: case SYS_creat:
		if (!at_notif(tid))
			return 0; /* (a ptrace stop: the file would go over the hand-off socket) */
		is_open = 1;
		if (ev->nr == SYS_creat) {
			flags = O_CREAT | O_WRONLY | O_TRUNC;
			mode = (int)a[1];
		} else {
			flags = (int)a[d->oflags];
			mode = (int)a[d->oflags + 1];
		}
		if ((flags & __O_TMPFILE) == __O_TMPFILE)
			return 0;
		follow = !(flags & O_NOFOLLOW) && (flags & (O_CREAT | O_EXCL)) != (O_CREAT | O_EXCL);
		creates = (flags & O_CREAT) != 0;
		break;
	case SYS_mkdir: case SYS_mkdirat:
		creates = 1;
		break;
	case SYS_unlink: case SYS_rmdir: case SYS_unlinkat: case SYS_rename:
	case SYS_renameat: case SYS_renameat2: case SYS_symlink: case SYS_symlinkat:
	case SYS_link: case SYS_lchown:
		break;
	case SYS_linkat:
		if (a[4] != 0)
			return 0; /* (AT_SYMLINK_FOLLOW, AT_EMPTY_PATH: Python's) */
		break;
	case SYS_chmod: case SYS_fchmodat: case SYS_chown: case SYS_truncate:
		follow = 1;
		break;
	case SYS_fchownat:
		if (a[4] & ~(unsigned long)AT_SYMLINK_NOFOLLOW)
			return 0;
		follow = !(a[4] & AT_SYMLINK_NOFOLLOW);
		break;
	case SYS_utimensat:
		if (a[1] == 0 || (a[3] & ~(unsigned long)AT_SYMLINK_NOFOLLOW))
			return 0;
		follow = !(a[3] & AT_SYMLINK_NOFOLLOW);
		break;
	default:
		return 0;
	}
	int umask_guest = caller_umask(tid);
	if (umask_guest < 0)
		return 0;
	/* what the call reads of the guest's memory besides its paths, read once */
	char target[4097];
	struct timespec times[2];
	if (ev->nr == SYS_symlink || ev->nr == SYS_symlinkat) {
		if (umvu_peekstr(tid, a[0], target, sizeof target) < 0)
			return 0;
	}
	if (ev->nr == SYS_utimensat && a[2] &&
	    umvu_peek(tid, a[2], times, sizeof times) != sizeof times)
		return 0;
	struct place p[2];
	int np = d->path[1] < 6 ? 2 : 1;
	for (int i = 0; i < np; i++) {
		int dirfd = d->dirfd[i] < 6 ? (int)a[d->dirfd[i]] : AT_FDCWD;
		if (!place_of(tid, dirfd, a[d->path[i]], &p[i], !is_open)) {
			if (i)
				close(p[0].fd);
			return 0;
		}
	}
	long ret = -ECANCELED;
	int old_umask = creates ? umask((mode_t)umask_guest) : 0;
	if (follow && !is_open && !no_link(&p[0])) {
		ret = -ECANCELED;
	} else switch (ev->nr) {
	case SYS_open: case SYS_openat: case SYS_creat:
		ret = open_at(&p[0], flags, mode);
		break;
	case SYS_mkdir:
		ret = mkdirat(p[0].fd, p[0].last, (mode_t)a[1]);
		break;
	case SYS_mkdirat:
		ret = mkdirat(p[0].fd, p[0].last, (mode_t)a[2]);
		break;
	case SYS_unlink:
		ret = unlinkat(p[0].fd, p[0].last, 0);
		break;
	case SYS_rmdir:
		ret = unlinkat(p[0].fd, p[0].last, AT_REMOVEDIR);
		break;
	case SYS_unlinkat:
		ret = unlinkat(p[0].fd, p[0].last, (int)a[2]);
		break;
	case SYS_rename: case SYS_renameat:
		ret = syscall(SYS_renameat2, p[0].fd, p[0].last, p[1].fd, p[1].last, 0);
		break;
	case SYS_renameat2:
		ret = syscall(SYS_renameat2, p[0].fd, p[0].last, p[1].fd, p[1].last,
			      (unsigned)a[4]);
		break;
	case SYS_link: case SYS_linkat:
		ret = linkat(p[0].fd, p[0].last, p[1].fd, p[1].last, 0);
		break;
	case SYS_symlink: case SYS_symlinkat:
		ret = symlinkat(target, p[0].fd, p[0].last);
		break;
	case SYS_chmod:
		ret = syscall(SYS_fchmodat2, p[0].fd, p[0].last, (mode_t)a[1],
			      AT_SYMLINK_NOFOLLOW);
		break;
	case SYS_fchmodat:
		ret = syscall(SYS_fchmodat2, p[0].fd, p[0].last, (mode_t)a[2],
			      AT_SYMLINK_NOFOLLOW);
		break;
	case SYS_chown: case SYS_lchown:
		ret = fchownat(p[0].fd, p[0].last, (uid_t)a[1], (gid_t)a[2], AT_SYMLINK_NOFOLLOW);
		break;
	case SYS_fchownat:
		ret = fchownat(p[0].fd, p[0].last, (uid_t)a[2], (gid_t)a[3], AT_SYMLINK_NOFOLLOW);
		break;
	case SYS_utimensat:
		ret = utimensat(p[0].fd, p[0].last, a[2] ? times : NULL, AT_SYMLINK_NOFOLLOW);
		break;
	case SYS_truncate: {
		int pin = openat(p[0].fd, p[0].last, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (pin < 0) {
			ret = -errno;
		} else {
			if (fstat(pin, &st) == 0 && !S_ISLNK(st.st_mode)) {
				char again[32];
				snprintf(again, sizeof again, "/proc/self/fd/%d", pin);
				ret = truncate(again, (off_t)a[1]);
			}
			close(pin);
		}
		break;
	}
	}
	if (ret == -1 && !is_open)
		ret = -errno;
	/* fchmodat2 with AT_SYMLINK_NOFOLLOW said "a symlink" (swapped in meanwhile), or
	 * the kernel has none: Python's */
	if ((ev->nr == SYS_chmod || ev->nr == SYS_fchmodat) &&
	    (ret == -EOPNOTSUPP || ret == -ENOSYS))
		ret = -ECANCELED;
	if (creates)
		umask((mode_t)old_umask);
	for (int i = 0; i < np; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	if (ret == -ECANCELED)
		return 0;
	switch (ev->nr) { /* a name that went: the walks' steps of it go */
	case SYS_unlink: case SYS_rmdir: case SYS_unlinkat:
		step_forget(p[0].full, p[0].fulllen);
		break;
	case SYS_rename: case SYS_renameat: case SYS_renameat2:
		steps_forget(); /* (and all below it) */
	}
	if (is_open)
		give_fd(tid, (int)ret, flags);
	else
		umvu_sys_skip(tid, ret, 0);
	return 1;
}
