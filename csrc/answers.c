/* Python's answers the C loop gives by itself: fstat and newfstatat of virtual fds, and of
 * the entries of a directory just listed; the closes Python lets by. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "tracer_internal.h"

static unsigned ent_hash(int tid, int fd, const char *name, size_t n)
{
	unsigned h = 2166136261u ^ (unsigned)tid * 16777619u ^ (unsigned)fd * 2654435761u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)name[i]) * 16777619u;
	return h;
}

static void ents_clear(void)
{
	if (!tr.ents)
		return;
	for (int i = 0; i < ENTS_CAP; i++) {
		if (tr.ents[i].tid > 0)
			free(tr.ents[i].name);
		tr.ents[i].tid = 0;
	}
	tr.nents = tr.ents_taken = 0;
	memset(tr.ent_fds, 0, sizeof tr.ent_fds);
}

static struct entstat *ent_find(int tid, int fd, const char *name, size_t n, unsigned h)
{
	for (unsigned i = h & (ENTS_CAP - 1);; i = (i + 1) & (ENTS_CAP - 1)) {
		struct entstat *e = &tr.ents[i];
		if (e->tid == 0)
			return NULL;
		if (e->tid == tid && e->fd == fd && e->hash == h && strlen(e->name) == n &&
		    memcmp(e->name, name, n) == 0)
			return e;
	}
}

/* The answers of tid (-1: any) about fd (-1: any) are gone. */
void fdstat_drop(int tid, int fd)
{
	/* (a close of a file's fd, the common case, has no entries to scan for) */
	int scan = fd < 0 || fd >= FASTFD || (tr.ent_fds[fd / 8] & (1 << (fd % 8)));
	if (tr.nents && scan) {
		if (fd >= 0 && fd < FASTFD && tid < 0)
			tr.ent_fds[fd / 8] &= ~(1 << (fd % 8));
		for (int i = 0; i < ENTS_CAP; i++) {
			struct entstat *e = &tr.ents[i];
			if (e->tid > 0 && (tid < 0 || e->tid == tid) && (fd < 0 || e->fd == fd)) {
				free(e->name);
				e->tid = -1;
				tr.nents--;
			}
		}
		if (!tr.nents)
			ents_clear();
	}
	for (int i = 0; i < tr.nfdstats; i++)
		if (tr.fdstats[i].tid && (tid < 0 || tr.fdstats[i].tid == tid) &&
		    (fd < 0 || tr.fdstats[i].fd == fd))
			tr.fdstats[i].tid = 0;
	while (tr.nfdstats > 0 && tr.fdstats[tr.nfdstats - 1].tid == 0)
		tr.nfdstats--;
}

static struct fdstat *fdstat_find(int tid, int fd)
{
	for (int i = 0; i < tr.nfdstats; i++)
		if (tr.fdstats[i].tid == tid && tr.fdstats[i].fd == fd)
			return &tr.fdstats[i];
	return NULL;
}

/* Write the answer st to the guest's buffer and skip the call (a bad buffer is left to
 * Python, which says EFAULT). */
static int answer_stat(int tid, unsigned long guest_buf, const unsigned char *st)
{
	struct iovec local = { (void *)st, STATSIZE }, remote = { (void *)guest_buf, STATSIZE };
	if (process_vm_writev(tid, &local, 1, &remote, 1, 0) != STATSIZE)
		return 0;
	return umvu_sys_skip(tid, 0, 0) == 0;
}

/* tid's call is one the C loop has Python's answer for: fstat(fd) or newfstatat(fd, "",
 * buf, AT_EMPTY_PATH) of a virtual fd, newfstatat(dirfd, name) of a listed entry, or the
 * close of a content or directory fd. Answer it and resume tid (1), or leave it (0). */
int answer_in_c(int tid, const struct umvu_event *ev)
{
	unsigned long buf;
	if (ev->nr == SYS_close) {
		int fd = (int)ev->args[0];
		if (tr.nclosed == UMVU_CLOSED_MAX || fd < 0 || fd >= FASTFD ||
		    tr.vfd_count[fd] == 0)
			return 0;
		struct fdstat *f = fdstat_find(tid, fd);
		if (!f || !f->close_in_c)
			return 0;
		fdstat_drop(-1, fd);
		tr.vfd_count[fd]--;
		tr.vfd_total--;
		tr.closed[2 * tr.nclosed] = tid;
		tr.closed[2 * tr.nclosed + 1] = fd;
		tr.nclosed++;
		resume(tid, 0);
		return 1;
	}
	if (ev->nr == SYS_newfstatat && tr.nents && !(ev->args[3] & AT_EMPTY_PATH)) {
		/* an entry of a directory Python listed: name alone, no "." or ".." */
		int fd = (int)ev->args[0];
		char name[256];
		if (fd < 0 || fd >= FASTFD || tr.vfd_count[fd] == 0)
			return 0;
		long n = umvu_peekstr(tid, ev->args[1], name, sizeof name);
		if (n <= 0 || memchr(name, '/', n) || strcmp(name, ".") == 0 ||
		    strcmp(name, "..") == 0)
			return 0;
		struct entstat *e = ent_find(tid, fd, name, n, ent_hash(tid, fd, name, n));
		if (!e || (e->is_link && !(ev->args[3] & AT_SYMLINK_NOFOLLOW)) ||
		    now_ns() > e->until)
			return 0;
		return answer_stat(tid, ev->args[2], e->st);
	}
	if (ev->nr == SYS_fstat) {
		buf = ev->args[1];
	} else if (ev->nr == SYS_newfstatat && (ev->args[3] & AT_EMPTY_PATH)) {
		char c;
		if (umvu_peek(tid, ev->args[1], &c, 1) != 1 || c != 0)
			return 0;
		buf = ev->args[2];
	} else {
		return 0;
	}
	struct fdstat *f = fdstat_find(tid, (int)ev->args[0]);
	if (!f || now_ns() > f->until)
		return 0;
	return answer_stat(tid, buf, f->st);
}

/* From now on the C loop answers tid's fstat of fd with st (a struct stat), and with
 * close_in_c lets its close of fd by (see umvu_closed_take). */
int umvu_fdstat_set(int tid, int fd, const void *st, int len, int close_in_c)
{
	if (len != STATSIZE)
		return -EINVAL;
	struct fdstat *f = fdstat_find(tid, fd);
	for (int i = 0; !f && i < tr.nfdstats; i++)
		if (tr.fdstats[i].tid == 0)
			f = &tr.fdstats[i]; /* a free slot */
	if (!f) {
		if (tr.nfdstats == FDSTATS)
			tr.nfdstats = 0; /* full: start again */
		f = &tr.fdstats[tr.nfdstats++];
	}
	*f = (struct fdstat){ tid, fd, close_in_c, now_ns() + ANSWER_NS, { 0 } };
	memcpy(f->st, st, STATSIZE);
	return 0;
}

/* The (tid, fd) pairs of the closes let by since the last call (at most max). */
int umvu_closed_take(int *out, int max)
{
	int n = tr.nclosed < max ? tr.nclosed : max;
	memcpy(out, tr.closed, 2 * n * sizeof tr.closed[0]);
	memmove(tr.closed, tr.closed + 2 * n, 2 * (tr.nclosed - n) * sizeof tr.closed[0]);
	tr.nclosed -= n;
	return n;
}

/* From now on the C loop answers tid's newfstatat(dirfd, name) with st (a struct
 * stat; is_link: only with AT_SYMLINK_NOFOLLOW). A full table starts again. */
int umvu_entstat_set(int tid, int dirfd, const char *name, int namelen, const void *st,
		     int len, int is_link)
{
	if (len != STATSIZE || namelen <= 0 || namelen > 255)
		return -EINVAL;
	if (!tr.ents && !(tr.ents = calloc(ENTS_CAP, sizeof *tr.ents)))
		return -ENOMEM;
	unsigned h = ent_hash(tid, dirfd, name, namelen);
	struct entstat *e = ent_find(tid, dirfd, name, namelen, h);
	if (!e) {
		if (tr.ents_taken >= ENTS_CAP / 4 * 3)
			ents_clear(); /* hints only: start again */
		unsigned i = h & (ENTS_CAP - 1);
		while (tr.ents[i].tid != 0)
			i = (i + 1) & (ENTS_CAP - 1);
		e = &tr.ents[i];
		e->name = strndup(name, namelen);
		if (!e->name)
			return -ENOMEM;
		e->tid = tid;
		e->fd = dirfd;
		e->hash = h;
		if (dirfd >= 0 && dirfd < FASTFD)
			tr.ent_fds[dirfd / 8] |= 1 << (dirfd % 8);
		tr.nents++;
		tr.ents_taken++;
	}
	e->is_link = is_link;
	e->until = now_ns() + ANSWER_NS;
	memcpy(e->st, st, STATSIZE);
	return 0;
}

/* Forget every answer (some metadata may have changed). */
int umvu_fdstat_clear(void)
{
	tr.nfdstats = 0;
	ents_clear();
	return 0;
}
