/* The process tree the C loop keeps (threads, and the fs, fd table and memory they share),
 * and the exec events of the threads it follows alone (lazy following). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <linux/kcmp.h>
#include <linux/sched.h>

#include "tracer_internal.h"

/* The process tree as the kernel shares state (Python's process table rebuilt from it
 * when the hypervisor starts after the guest: umvu_tree_snapshot). */
static struct tree_node *tree_slot(int tid)
{
	unsigned i = (unsigned)tid * 2654435761u & (tr.tree_cap - 1);
	struct tree_node *deleted = NULL;
	for (;; i = (i + 1) & (tr.tree_cap - 1)) {
		if (tr.tree[i].tid == tid)
			return &tr.tree[i];
		if (tr.tree[i].tid == -1 && !deleted)
			deleted = &tr.tree[i];
		if (tr.tree[i].tid == 0)
			return deleted ? deleted : &tr.tree[i];
	}
}

static struct tree_node *tree_get(int tid)
{
	if (!tr.tree)
		return NULL; /* out of memory at the start */
	struct tree_node *n = tree_slot(tid);
	return n->tid == tid ? n : NULL;
}

void tree_del(int tid)
{
	struct tree_node *n = tree_get(tid);
	if (n)
		n->tid = -1;
}

static int tree_live(void)
{
	int live = 0;
	for (unsigned i = 0; i < tr.tree_cap; i++)
		live += tr.tree[i].tid > 0;
	return live;
}

/* room for one more: rebuilt (twice as large if half is live) past 3/4 taken */
static int tree_room(void)
{
	if (tr.tree_taken + 1 <= tr.tree_cap / 4 * 3)
		return 0;
	unsigned old_cap = tr.tree_cap, live = tree_live();
	struct tree_node *old = tr.tree;
	unsigned cap = old_cap;
	while (live * 2 >= cap)
		cap *= 2;
	tr.tree = calloc(cap, sizeof *tr.tree);
	if (!tr.tree) {
		tr.tree = old;
		return -ENOMEM;
	}
	tr.tree_cap = cap;
	tr.tree_taken = 0;
	for (unsigned i = 0; i < old_cap; i++)
		if (old[i].tid > 0) {
			*tree_slot(old[i].tid) = old[i];
			tr.tree_taken++;
		}
	free(old);
	return 0;
}

struct tree_node *tree_new(int tid, int tgid)
{
	if (!tr.tree || tree_room() < 0)
		return NULL;
	struct tree_node *n = tree_slot(tid);
	if (n->tid == 0)
		tr.tree_taken++;
	*n = (struct tree_node){ tid, tgid, tr.next_group, tr.next_group + 1,
				 tr.next_group + 2 };
	tr.next_group += 3;
	return n;
}

/* tid's thread group (tid itself when the tree lacks it) */
int tree_tgid(int tid)
{
	struct tree_node *n = tree_get(tid);
	return n ? n->tgid : tid;
}

void tree_clone(int parent, int child, unsigned long flags)
{
	callers_new(child);
	struct tree_node *pn = tree_get(parent);
	if (!pn || child <= 0)
		return;
	struct tree_node p = *pn;
	struct tree_node *c = tree_new(child, (flags & CLONE_THREAD) ? p.tgid : child);
	if (!c)
		return;
	if (flags & CLONE_FS)
		c->fs = p.fs;
	if (flags & CLONE_FILES)
		c->files = p.files;
	if (flags & CLONE_VM)
		c->vm = p.vm;
}

/* exec in tid's group by former (the kernel gives it the leader's tid): memory and the fd
 * table are its own now; the other threads report their exits */
void tree_exec(int tid, int former)
{
	struct tree_node *f = tree_get(former);
	if (!f)
		return;
	int fs = f->fs;
	if (former != tid)
		tree_del(former);
	struct tree_node *n = tree_new(tid, tid);
	if (n)
		n->fs = fs;
}

/* At a stop of tid: give it exec events if it lacks them (umvu_exec_events). Returns
 * whether it lacked them. */
int restore_opts(int tid)
{
	if (!tid_ok(tid))
		return 0;
	if (tr.tflags[tid] & TF_DROPEXEC) {
		tr.tflags[tid] &= ~TF_DROPEXEC;
		if (!(tr.tflags[tid] & (TF_NOEXEC | TF_RESTORE)) &&
		    ptrace(PTRACE_SETOPTIONS, tid, 0, tr.full_opts & ~PTRACE_O_TRACEEXEC) == 0)
			tr.tflags[tid] |= TF_NOEXEC;
		return 0;
	}
	if (!(tr.tflags[tid] & TF_RESTORE))
		return 0;
	if (ptrace(PTRACE_SETOPTIONS, tid, 0, tr.full_opts) == 0)
		tr.tflags[tid] &= ~TF_RESTORE;
	return 1;
}

/* child was forked by a thread that had no exec events: it has none either */
void child_lacks(int child, int lacked)
{
	if (!lacked || !tid_ok(child))
		return;
	tr.tflags[child] |= TF_RESTORE;
	restore_opts(child); /* fails unless it is parked at its initial stop already */
}

/* An unseen thread may run without exec events (one ptrace stop less per exec: the
 * C loop follows its exec without them, see tree_rows_fix) when every exec it can make
 * reaches the C loop first as a notification: there, a thread Python knows (or whose
 * exec Python must see) gets them back before the call runs (exec_events_now). */
int drop_exec_ok(void)
{
	return tr.lazy_exec && !tr.noseccomp && !tr.exec_events_off &&
		BIT(tr.notif_nrs, SYS_execve) && BIT(tr.notif_nrs, SYS_execveat);
}

/* tid waits in the notification of an exec and lacks exec events: it is made to stop
 * (PTRACE_INTERRUPT, the call answered "restart"), gets them at that stop (restore_opts
 * in next_event), and makes the call again: a new notification. */
void exec_events_now(int tid)
{
	tr.tflags[tid] = (tr.tflags[tid] & ~(TF_NOEXEC | TF_DROPEXEC)) | TF_RESTORE;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) == 0)
		notif_answer(tid, -ERESTARTNOINTR, 0);
	else
		notif_answer(tid, 0, 1); /* (gone, or not ours to stop: it runs as it is) */
}

/* The hypervisor starts: every thread gets exec events, at once if it is stopped, else
 * at the stop PTRACE_INTERRUPT makes (before it runs any more of its own code). */
int umvu_exec_events(void)
{
	if (!tr.exec_events_off)
		return 0;
	tr.exec_events_off = 0;
	for (unsigned i = 0; i < tr.tree_cap; i++) {
		int tid = tr.tree[i].tid;
		if (tid <= 0)
			continue;
		tr.tflags[tid] |= TF_RESTORE;
		if (ptrace(PTRACE_SETOPTIONS, tid, 0, tr.full_opts) == 0) {
			tr.tflags[tid] &= ~TF_RESTORE;
		} else if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 && errno == ESRCH) {
			/* not a tracee: a thread that was not the leader exec'd (its new
			 * tid is the leader's, the tree kept the old one) */
			tr.tflags[tid] = 0;
			tree_del(tid);
		}
	}
	return 0;
}

/* The threads that ran without exec events (TF_NOEXEC) may have exec'd unseen (no
 * tree_exec): one that was not its group's leader then left its tid (gone: its row goes),
 * and the fd table and memory a process shared with another (vfork, CLONE_FILES) are its
 * own now. Their groups are made again from what the kernel says (kcmp): a thread keeps
 * the group of a thread outside the set it still shares with, else joins one of the set
 * already done that it shares with, else gets a group of its own. */
static int *group_of(struct tree_node *n, int files)
{
	return files ? &n->files : &n->vm;
}

static void tree_rows_fix(void)
{
	int nfix = 0;
	for (unsigned i = 0; i < tr.tree_cap; i++) {
		int tid = tr.tree[i].tid;
		if (tid <= 0 || !(tr.tflags[tid] & TF_NOEXEC))
			continue;
		if (tid != tr.tree[i].tgid &&
		    syscall(SYS_tgkill, tr.tree[i].tgid, tid, 0) < 0 && errno == ESRCH) {
			tr.tflags[tid] = 0;
			tree_del(tid);
			continue;
		}
		nfix++;
	}
	if (!nfix)
		return;
	struct tree_node *old = malloc(tr.tree_cap * sizeof *old); /* the groups before */
	unsigned char *done = calloc(tr.tree_cap, 1);
	if (!old || !done) {
		free(old);
		free(done);
		return;
	}
	memcpy(old, tr.tree, tr.tree_cap * sizeof *old);
	for (unsigned i = 0; i < tr.tree_cap; i++) {
		struct tree_node *n = &tr.tree[i];
		if (n->tid <= 0 || !(tr.tflags[n->tid] & TF_NOEXEC))
			continue;
		for (int files = 1; files >= 0; files--) {
			int type = files ? KCMP_FILES : KCMP_VM, was = *group_of(&old[i], files);
			int group = 0;
			for (unsigned j = 0; j < tr.tree_cap && !group; j++) {
				struct tree_node *o = &tr.tree[j];
				if (j == i || o->tid <= 0 || *group_of(&old[j], files) != was)
					continue;
				int trusted = !(tr.tflags[o->tid] & TF_NOEXEC);
				if ((trusted || done[j]) &&
				    syscall(SYS_kcmp, n->tid, o->tid, type, 0, 0) == 0)
					group = *group_of(o, files);
			}
			*group_of(n, files) = group ? group : tr.next_group++;
		}
		done[i] = 1;
	}
	free(old);
	free(done);
}

/* Live tasks as 5 ints each (tid, tgid, fs, files, vm group); returns how many, or
 * more than max (nothing written) when they do not fit. unseen_only: only the threads
 * the C loop followed alone (TF_UNSEEN), which Python now knows: the flag goes. */
int umvu_tree_rows(int *out, int max, int unseen_only)
{
	int n = 0;
	if (unseen_only)
		tree_rows_fix();
	for (unsigned i = 0; i < tr.tree_cap; i++)
		if (tr.tree[i].tid > 0 &&
		    (!unseen_only || (tr.tflags[tr.tree[i].tid] & TF_UNSEEN)))
			n++;
	if (n > max)
		return n;
	n = 0;
	for (unsigned i = 0; i < tr.tree_cap; i++) {
		int tid = tr.tree[i].tid;
		if (tid <= 0 || (unseen_only && !(tr.tflags[tid] & TF_UNSEEN)))
			continue;
		if (unseen_only) {
			/* known now: its execs must be reported (from its next stop on,
			 * or before an exec, see notif_take) */
			if (tr.tflags[tid] & TF_NOEXEC)
				tr.tflags[tid] |= TF_RESTORE;
			tr.tflags[tid] &= ~(TF_UNSEEN | TF_NOEXEC | TF_DROPEXEC);
		}
		int *o = out + 5 * n++;
		o[0] = tid;
		o[1] = tr.tree[i].tgid;
		o[2] = tr.tree[i].fs;
		o[3] = tr.tree[i].files;
		o[4] = tr.tree[i].vm;
	}
	return n;
}

/* Python on tid: its clones may be followed in C alone (on), or not. */
int umvu_set_plain(int tid, int on)
{
	if (!tid_ok(tid))
		return -EINVAL;
	if (on)
		tr.tflags[tid] |= TF_PLAIN;
	else
		tr.tflags[tid] &= ~TF_PLAIN;
	return 0;
}

/* No thread is plain any more (the filter changed: Python first took the unseen ones). */
int umvu_plain_reset(void)
{
	for (unsigned i = 0; i < tr.tree_cap; i++)
		if (tr.tree[i].tid > 0)
			tr.tflags[tr.tree[i].tid] &= ~TF_PLAIN;
	return 0;
}

/* Follow clones of plain threads (and clones, execs and exits of unseen ones) in C. */
int umvu_set_lazy(int clone_on, int exec_on)
{
	tr.lazy_clone = clone_on;
	tr.lazy_exec = exec_on;
	return 0;
}
