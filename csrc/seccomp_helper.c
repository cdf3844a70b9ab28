/*
 * umvu tracer core: everything about ptrace and seccomp that needs no decision.
 *
 * Contract with the Python side (umvu/core/tracer.py is the only caller):
 *  - umvu_spawn() starts the guest seized with PTRACE_O_EXITKILL and, unless
 *    noseccomp, a seccomp filter that returns SECCOMP_RET_TRACE for the syscall
 *    numbers set in the bitmap, for every non-x86_64 ABI call and for every
 *    number outside the x86_64 table (the virtual syscalls are negative).
 *  - umvu_next() waits for tracees and handles by itself signal-delivery stops
 *    (the signal is re-injected once), group stops (PTRACE_LISTEN, so job control
 *    works), re-traps after SIGCONT, and syscall-exit stops nobody asked for.
 *    It returns only the events Python must see; the tracee stays stopped until
 *    Python resumes it with one of the umvu_sys_* / umvu_resume calls. It also
 *    decides by itself fd syscalls on fds virtual nowhere (umvu_set_fastpath), path
 *    syscalls whose walk stays out of every virtual prefix (umvu_set_pathfast), and
 *    under -S the entry stops of calls no module wants (umvu_set_wanted).
 *  - While autonomous (no module yet), clone and exec events are resumed here and
 *    only update the process tree kept here; umvu_run_autonomous() follows the guest
 *    without Python until an event needs it, umvu_tree_snapshot() hands the tree over
 *    (it is not kept afterwards).
 *  - umvu_spawn() makes umvu ignore the terminal's signals (umvu_restore_signals).
 *  - All ptrace calls come from the calling thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <time.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/kcmp.h>
#include <linux/ptrace.h>
#include <linux/sched.h>
#include <linux/seccomp.h>

#include "tracer_internal.h"

static int resume_request_for(int tid)
{
	const int exit_stop = TF_BOUNDARY | TF_PASS_NEXT | TF_WANT_EXIT | TF_SKIPRET;
	return (tr.noseccomp || (tr.tflags[tid] & exit_stop)) ? PTRACE_SYSCALL : PTRACE_CONT;
}

/* ------------------------------------------------------------------ filter */

/* The part of a filter (nr loaded in A) that returns act[i] for nr in one of the sorted
 * ranges [lo[a..b], hi[a..b]] and ALLOW otherwise, as a binary search: for the middle
 * range, nr < lo goes left, nr > hi goes right, else its action. Returns the instructions
 * written, or -1 when a jump is too long for BPF's 8-bit offsets. */
static int emit_tree(struct sock_filter *prog, int max, const int *lo, const int *hi,
		     const unsigned *act, int a, int b)
{
	if (max < 1)
		return -1;
	if (a > b) {
		prog[0] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
		return 1;
	}
	int m = (a + b) / 2;
	if (max < 4)
		return -1;
	/* [0] JGE lo: -> [1], else -> left; [1] JGT hi: -> right, else [2]; [2] act[m];
	 * [3..] right subtree; then the left subtree */
	int right = emit_tree(prog + 3, max - 3, lo, hi, act, m + 1, b);
	if (right < 0)
		return -1;
	int left = emit_tree(prog + 3 + right, max - 3 - right, lo, hi, act, a, m - 1);
	if (left < 0 || 2 + right > 255)
		return -1;
	prog[0] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, lo[m], 0, 2 + right);
	prog[1] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, hi[m], 1, 0);
	prog[2] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, act[m]);
	return 3 + right + left;
}

/* The filter returning TRACE for the numbers of bitmap, USER_NOTIF for those also in
 * notif (NULL: none), TRACE for other ABIs and numbers outside the table. */
int build_filter(struct sock_filter *prog, const unsigned char *bitmap,
			const unsigned char *notif, int nbits)
{
	int n = 0;
	const struct sock_filter trace = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE);
	const struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	prog[n++] = trace; /* int 0x80 and friends: the tracer refuses them */
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	/* x32 numbers and the negative virtual syscalls */
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1);
	prog[n++] = trace;
	/* ranges of consecutive set bits, searched as a balanced binary tree (a few
	 * compares for any number: this runs at every syscall of every guest) */
	int lo[FASTNR] = { 0 }, hi[FASTNR] = { 0 }, nr_ranges = 0;
	unsigned act[FASTNR] = { 0 };
#define ACT(i) (notif && BIT(notif, i) ? SECCOMP_RET_USER_NOTIF : SECCOMP_RET_TRACE)
	for (int i = 0; i < nbits; i++) {
		if (!BIT(bitmap, i))
			continue;
		if (nr_ranges == FASTNR)
			return -E2BIG;
		lo[nr_ranges] = i;
		act[nr_ranges] = ACT(i);
		while (i + 1 < nbits && BIT(bitmap, i + 1) && ACT(i + 1) == act[nr_ranges])
			i++;
		hi[nr_ranges++] = i;
	}
#undef ACT
	int tree_n = emit_tree(prog + n, MAXPROG - n - 1, lo, hi, act, 0, nr_ranges - 1);
	if (tree_n > 0)
		return n + tree_n;
	/* jumps too long: one compare pair per range, if lo <= nr <= hi -> its action */
	for (int r = 0; r < nr_ranges; r++) {
		if (n + 4 >= MAXPROG)
			return -E2BIG;
		/* if nr < lo skip 2; if nr > hi skip 1; else its action */
		prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, lo[r], 0, 2);
		prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, hi[r], 1, 0);
		prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, act[r]);
	}
	prog[n++] = allow;
	return n;
}

/* -------------------------------------------------------------------- wait */

static int fill_info(int tid, struct umvu_event *ev)
{
	struct ptrace_syscall_info info;
	if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof info, &info) <= 0)
		return -1;
	ev->ip = info.instruction_pointer;
	ev->sp = info.stack_pointer;
	if (info.op == PTRACE_SYSCALL_INFO_EXIT) {
		ev->ret = info.exit.rval;
		return info.op;
	}
	ev->nr = (long)info.entry.nr;
	for (int i = 0; i < 6; i++)
		ev->args[i] = info.entry.args[i];
	if (info.arch != AUDIT_ARCH_X86_64 || (ev->nr > 0 && (ev->nr & 0x40000000)))
		ev->kind = UMVU_EV_ABI32;
	else
		ev->kind = UMVU_EV_SYSCALL;
	return info.op;
}

/* The flags of the clone that made the event: the kernel reports a clone() with
 * SIGCHLD and no CLONE_VFORK as a fork, whatever else it shares (CLONE_FILES...). */
static unsigned long clone_flags_of(int tid, int event, const struct user_regs_struct *r)
{
	if (r->orig_rax == SYS_clone)
		return r->rdi;
	if (r->orig_rax == SYS_clone3) {
		uint64_t f = 0;
		struct iovec local = { &f, sizeof f }, remote = { (void *)r->rdi, sizeof f };
		if (process_vm_readv(tid, &local, 1, &remote, 1, 0) == sizeof f)
			return f;
	}
	if (event == PTRACE_EVENT_VFORK)
		return CLONE_VM | CLONE_VFORK | SIGCHLD;
	return event == PTRACE_EVENT_FORK ? SIGCHLD : 0;
}

/* A tracee is gone: forget it. */
static void forget_tid(int tid, int status)
{
	if (tid_ok(tid)) {
		tr.tflags[tid] = 0;
		tr.notif_id[tid] = 0;
		tr.notif_ran[tid] = 0;
		tree_del(tid);
	}
	fdstat_drop(tid, -1);
	if (tid == tr.main_tid)
		tr.main_status = status;
}

void queue_event(const struct umvu_event *ev)
{
	if (tr.nqueued == tr.queued_cap) {
		int cap = tr.queued_cap ? 2 * tr.queued_cap : 16;
		struct umvu_event *q = realloc(tr.queued, cap * sizeof *q);
		if (!q)
			return;
		tr.queued = q;
		tr.queued_cap = cap;
	}
	tr.queued[tr.nqueued++] = *ev;
}

/* A tracee found gone while waiting for another stop of it: its event comes later. */
void exited_meanwhile(int tid, int status)
{
	struct umvu_event ev;
	memset(&ev, 0, sizeof ev);
	forget_tid(tid, status);
	ev.kind = UMVU_EV_EXITED;
	ev.tid = tid;
	ev.status = status;
	queue_event(&ev);
}

/* Answer tid's notification: run the call in the kernel, or return retval. */
int notif_answer(int tid, long retval, int run)
{
	struct seccomp_notif_resp resp;
	memset(&resp, 0, sizeof resp);
	resp.id = tr.notif_id[tid];
	if (run) {
		resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		tr.notif_ran[tid] = tr.notif_nr[tid] + 1;
	} else if (retval < 0 && retval > -4096) {
		resp.error = (int)retval;
	} else {
		resp.val = retval;
	}
	tr.notif_id[tid] = 0;
	return ioctl(tr.notif_fd[tid], SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0 ? -errno : 0;
}

void resume(int tid, int sig)
{
	if (at_notif(tid))
		notif_answer(tid, 0, 1);
	else
		ptrace(resume_request_for(tid), tid, 0, sig);
}

/* Take one notification from listener lfd; decide it here if possible. Returns 1 with
 * *ev filled when Python must see it. */
static int notif_take(int lfd, struct umvu_event *ev)
{
	struct seccomp_notif req;
	memset(&req, 0, sizeof req);
	if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
		return 0; /* withdrawn meanwhile (a signal, a kill) */
	int tid = (int)req.pid;
	if (!tid_ok(tid))
		return 0;
	tr.notif_id[tid] = req.id;
	tr.notif_fd[tid] = lfd;
	tr.tflags[tid] &= ~TF_OWNRESTART;
	tr.notif_nr[tid] = req.data.nr;
	if (tr.tflags[tid] & (TF_INJECTING | TF_PASS_NEXT)) {
		if (!(tr.tflags[tid] & TF_INJECTING))
			tr.tflags[tid] &= ~TF_PASS_NEXT;
		notif_answer(tid, 0, 1);
		return 0;
	}
	memset(ev, 0, sizeof *ev);
	ev->kind = UMVU_EV_SYSCALL;
	ev->tid = tid;
	ev->nr = req.data.nr;
	for (int i = 0; i < 6; i++)
		ev->args[i] = req.data.args[i];
	ev->ip = req.data.instruction_pointer;
	ev->notif = 1;
	if ((ev->nr == SYS_execve || ev->nr == SYS_execveat) &&
	    (tr.tflags[tid] & (TF_NOEXEC | TF_RESTORE))) {
		/* an exec without exec events: fine for an unseen thread whose exec the C
		 * loop follows alone; anyone else first gets them */
		if ((tr.tflags[tid] & TF_UNSEEN) && tr.lazy_exec && decide_in_c(tid, ev))
			return 0;
		exec_events_now(tid);
		return 0;
	}
	return !decide_in_c(tid, ev);
}

/* SIGCHLD blocked and read from a signalfd (umvu starts no other children). */
int sigchld_init(void)
{
	if (tr.sigchld_fd >= 0)
		return 0;
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	tr.sigchld_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (tr.sigchld_fd < 0)
		return -1;
	sigprocmask(SIG_BLOCK, &chld, NULL);
	tr.chld_maybe = 1; /* (one may have come before, unseen) */
	return 0;
}

/* Serve the listeners' notifications (block: wait for one, or for SIGCHLD). Returns 1
 * with *ev filled when one is for Python (ev NULL: queued instead). */
int notif_poll(int block, struct umvu_event *ev)
{
	struct pollfd *p = tr.pollfds;
	int n = tr.nlisteners, got = 0;
	for (int i = 0; i < n; i++)
		p[i] = (struct pollfd){ tr.listeners[i], POLLIN, 0 };
	p[n] = (struct pollfd){ tr.sigchld_fd, POLLIN, 0 };
	int r = poll(p, n + block, block ? 100 : 0);
	if (block && (r == 0 || (p[n].revents & POLLIN))) {
		struct signalfd_siginfo si;
		while (read(tr.sigchld_fd, &si, sizeof si) > 0)
			;
		tr.chld_maybe = 1;
	}
	if (r <= 0)
		return 0;
	for (int i = 0; i < n; i++) {
		struct umvu_event e;
		if (p[i].revents & POLLIN) {
			if (notif_take(p[i].fd, &e)) {
				if (ev && !got) {
					*ev = e;
					got = 1;
				} else {
					queue_event(&e);
				}
			}
		} else if (p[i].revents & (POLLHUP | POLLERR | POLLNVAL)) {
			/* no process uses its filter any more */
			for (int j = 0; j < tr.nlisteners; j++) {
				if (tr.listeners[j] == p[i].fd) {
					close(tr.listeners[j]);
					tr.listeners[j] = tr.listeners[--tr.nlisteners];
					break;
				}
			}
		}
	}
	return got;
}

/* waitpid(which, status, __WALL), polling first while stops come in quick succession
 * (yielding, which lets a guest on the same CPU run): a sleeping tracer's wake-up is a
 * cross-CPU wake of a halted virtual CPU, 20-25 us here; a polling one sees the stop at
 * once. The last wait was short or it sleeps at once, so a guest that seldom stops
 * costs no CPU. Meanwhile it serves the notifications: returns 0 with *ev filled when
 * one is for Python (ev NULL: queued for next_event). With listeners SIGCHLD stays
 * blocked and comes through a signalfd: every ptrace stop and exit sends one, so
 * waitpid is asked only after one came (chld_maybe); the sleep is bounded all the same. */
pid_t wait_tracee(pid_t which, int *status, struct umvu_event *ev)
{
	long t0 = now_ns();
	pid_t r;
	if (tr.nowait && which == -1) {
		/* no sleep: what is there now, else EAGAIN (SIGCHLD's signalfd drained first,
		 * so a stop after this waitpid makes wait_epfd readable) */
		struct signalfd_siginfo si;
		while (read(tr.sigchld_fd, &si, sizeof si) > 0)
			;
		r = waitpid(-1, status, __WALL | WNOHANG);
		if (r != 0)
			return r;
		if (tr.nlisteners && notif_poll(0, ev))
			return 0;
		errno = EAGAIN;
		return -1;
	}
	for (;;) {
		if (tr.spin_ns > 0 && tr.last_wait_ns < 2 * tr.spin_ns) {
			for (;;) {
				r = waitpid(which, status, __WALL | WNOHANG);
				if (r != 0) {
					tr.last_wait_ns = now_ns() - t0;
					return r;
				}
				if (tr.nlisteners && notif_poll(0, ev)) {
					tr.last_wait_ns = now_ns() - t0;
					return 0;
				}
				if (now_ns() - t0 > tr.spin_ns)
					break;
				sched_yield();
			}
		}
		if (!tr.nlisteners) {
			r = waitpid(which, status, __WALL);
			tr.last_wait_ns = now_ns() - t0;
			return r;
		}
		if (tr.chld_maybe || which != -1) {
			r = waitpid(which, status, __WALL | WNOHANG);
			if (r != 0) {
				tr.last_wait_ns = now_ns() - t0;
				return r;
			}
			if (which == -1)
				tr.chld_maybe = 0;
		}
		/* sleep until a notification or a SIGCHLD */
		int got = notif_poll(1, ev);
		if (got) {
			tr.last_wait_ns = now_ns() - t0;
			return 0;
		}
	}
}

/* A signal came while tid waited in a notification nobody had taken yet: the kernel
 * says -ERESTARTSYS, which a handler without SA_RESTART turns into EINTR, an error such
 * a call never gives natively. It is restarted whatever the handler (not a call the
 * kernel itself interrupted: the last one let by from a notification). */
void restart_notified(int tid)
{
	struct user_regs_struct r;
	int ran = tr.notif_ran[tid];
	tr.notif_ran[tid] = 0;
	if (tr.tflags[tid] & TF_OWNRESTART) {
		tr.tflags[tid] &= ~TF_OWNRESTART;
		return;
	}
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0)
		return;
	long nr = (long)r.orig_rax;
	if ((long)r.rax != -ERESTARTSYS || nr < 0 || nr >= FASTNR || !BIT(tr.notif_nrs, nr) ||
	    ran == nr + 1)
		return;
	r.rax = (unsigned long)-ERESTARTNOINTR;
	ptrace(PTRACE_SETREGS, tid, 0, &r);
}

/* The signal tid stops with is the knock of umvu_knock() (a SIGURG queued with the
 * cookie): it is not delivered. */
static int is_knock(int tid)
{
	siginfo_t si;
	if (ptrace(PTRACE_GETSIGINFO, tid, 0, &si) < 0)
		return 0;
	unsigned long v = (unsigned long)si.si_value.sival_ptr;
	if (si.si_code != SI_QUEUE || v < UMVU_KNOCK_COOKIE || v > UMVU_KNOCK_COOKIE + 1)
		return 0;
	return 1 + (int)(v - UMVU_KNOCK_COOKIE);
}

/* From a guest process (the vu_* commands): wake the hypervisor before the first
 * virtual syscall, which traps only once the process has a filter (UMVU_NOFILTER).
 * Outside umvu the SIGURG is ignored (its default), so this is harmless there. */
int umvu_knock(int module_next)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = SIGURG;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_ptr = (void *)(UMVU_KNOCK_COOKIE + (module_next ? 1 : 0));
	return syscall(SYS_rt_tgsigqueueinfo, getpid(), syscall(SYS_gettid), SIGURG, &si) < 0
		? -errno : 0;
}

static int next_event(struct umvu_event *ev);

/* Returns 1 with *ev filled, 0 when no tracee is left, -errno on error. */
int umvu_next(struct umvu_event *ev)
{
	int r = next_event(ev);
	ev->closed = tr.nclosed;
	return r;
}

static int next_event(struct umvu_event *ev)
{
	for (;;) {
		int status;
		while (tr.nqueued) {
			*ev = tr.queued[0];
			memmove(tr.queued, tr.queued + 1, --tr.nqueued * sizeof *tr.queued);
			if (ev->kind != UMVU_EV_SYSCALL || at_notif(ev->tid))
				return 1;
		}
		pid_t tid = wait_tracee(-1, &status, ev);
		if (tid == 0)
			return 1; /* a notification for Python */
		if (tid < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && tr.nowait)
				return 2;
			return errno == ECHILD ? 0 : -errno;
		}
		memset(ev, 0, sizeof *ev);
		ev->tid = tid;
		ev->status = status;
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			int unseen = tid_ok(tid) && (tr.tflags[tid] & TF_UNSEEN);
			forget_tid(tid, status);
			if (unseen && tid != tr.main_tid)
				continue; /* Python never knew it */
			ev->kind = UMVU_EV_EXITED;
			return 1;
		}
		if (!WIFSTOPPED(status))
			continue;
		int sig = WSTOPSIG(status);
		int event = (unsigned)status >> 16;
		struct user_regs_struct r;
		int lacked = restore_opts(tid); /* (a child forked before has none either) */

		if (sig == (SIGTRAP | 0x80)) {
			/* syscall-entry (-S) or syscall-exit stop */
			int op = fill_info(tid, ev);
			if (op == PTRACE_SYSCALL_INFO_EXIT) {
				tr.tflags[tid] &= ~TF_PASS_NEXT;
				if (tr.tflags[tid] & TF_SKIPRET) {
					tr.tflags[tid] &= ~TF_SKIPRET;
					if (ptrace(PTRACE_GETREGS, tid, 0, &r) == 0) {
						r.rax = tr.skipret[tid];
						ptrace(PTRACE_SETREGS, tid, 0, &r);
						ev->ret = tr.skipret[tid];
					}
				}
				if (tr.tflags[tid] & TF_WANT_EXIT) {
					/* (before a boundary: a call taken from a notification may
					 * have been asked for one meanwhile; it comes at the next) */
					tr.tflags[tid] &= ~TF_WANT_EXIT;
					ev->kind = UMVU_EV_SYSCALL_EXIT;
					return 1;
				}
			}
			if (!tr.noseccomp && (tr.tflags[tid] & TF_BOUNDARY) &&
			    (op == PTRACE_SYSCALL_INFO_ENTRY || op == PTRACE_SYSCALL_INFO_EXIT)) {
				ev->kind = UMVU_EV_BOUNDARY;
				return 1;
			}
			if (op == PTRACE_SYSCALL_INFO_ENTRY) {
				/* -S: every call stops, but one nobody wants is let by here */
				if (tr.wanted_set && ev->kind == UMVU_EV_SYSCALL && ev->nr >= 0 &&
				    ev->nr < FASTNR && !(tr.wanted[ev->nr / 8] & (1 << (ev->nr % 8)))) {
					resume(tid, 0);
					continue;
				}
				return 1;
			}
			resume(tid, 0);
			continue;
		}
		switch (event) {
		case PTRACE_EVENT_SECCOMP:
			tr.tflags[tid] &= ~TF_OWNRESTART;
			if (tr.tflags[tid] & TF_PASS_NEXT) {
				/* the verdict on a call already decided at its entry stop */
				tr.tflags[tid] &= ~TF_PASS_NEXT;
				resume(tid, 0);
				continue;
			}
			if (fill_info(tid, ev) < 0)
				continue;
			if (decide_in_c(tid, ev))
				continue;
			return 1;
		case PTRACE_EVENT_FORK:
		case PTRACE_EVENT_VFORK:
		case PTRACE_EVENT_CLONE: {
			unsigned long child = 0;
			ptrace(PTRACE_GETEVENTMSG, tid, 0, &child);
			if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0)
				memset(&r, 0, sizeof r);
			ev->kind = UMVU_EV_CLONE;
			ev->msg = (long)child;
			ev->clone_flags = clone_flags_of(tid, event, &r);
			tree_clone(tid, (int)child, ev->clone_flags);
			if (tid_ok((int)child)) /* (a tid an unseen exec left: not this one) */
				tr.tflags[child] &= ~(TF_NOEXEC | TF_DROPEXEC);
			child_lacks((int)child, lacked);
			if (tr.lazy_clone && !tr.noseccomp && tid_ok((int)child) &&
			    (tr.tflags[tid] & (TF_PLAIN | TF_UNSEEN))) {
				if (tr.tflags[tid] & TF_NOEXEC)
					tr.tflags[child] |= TF_NOEXEC; /* its options are the parent's */
				else if (drop_exec_ok() && !(tr.tflags[child] & TF_RESTORE))
					tr.tflags[child] |= TF_DROPEXEC;
				umvu_clone_done(tid, (int)child);
				tr.tflags[child] |= TF_UNSEEN;
				continue;
			}
			if (tr.autonomous) {
				umvu_clone_done(tid, (int)child);
				ev->resumed = 1;
			}
			return 1;
		}
		case PTRACE_EVENT_EXEC: {
			unsigned long former = 0;
			ptrace(PTRACE_GETEVENTMSG, tid, 0, &former);
			/* an unseen thread's exec, when the leader it replaces is unseen too */
			int unseen = tid_ok((int)former) && (tr.tflags[former] & TF_UNSEEN) &&
				(tr.tflags[tid] & TF_UNSEEN);
			if (tid_ok((int)former) && (int)former != tid) {
				tr.tflags[tid] = tr.tflags[former] | TF_KNOWN;
				tr.tflags[former] = 0;
			}
			if ((int)former != tid)
				fdstat_drop((int)former, -1); /* that tid is gone */
			ev->kind = UMVU_EV_EXEC;
			ev->msg = (long)former;
			tree_exec(tid, (int)former);
			if (unseen && tr.lazy_exec && !tr.noseccomp) {
				resume(tid, 0);
				continue;
			}
			if (tr.autonomous) {
				resume(tid, 0);
				ev->resumed = 1;
			}
			return 1;
		}
		case PTRACE_EVENT_STOP:
			if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
				/* group stop: stay stopped, let the real parent see it */
				ptrace(PTRACE_LISTEN, tid, 0, 0);
				continue;
			}
			if (!(tr.tflags[tid] & TF_KNOWN)) {
				/* initial stop of a child whose parent's event is still to come */
				tr.tflags[tid] |= TF_PARKED;
				continue;
			}
			resume(tid, 0);
			continue;
		case 0:
			int knock = sig == SIGURG ? is_knock(tid) : 0;
			if (knock) {
				/* a vu_* command asks for the hypervisor; its next syscall
				 * boundary (the virtual call) gets the filter (UMVU_NOFILTER) */
				if (!tr.noseccomp)
					tr.tflags[tid] |= TF_BOUNDARY;
				ev->kind = UMVU_EV_KNOCK;
				ev->msg = knock - 1; /* 1: a module is about to be loaded */
				return 1;
			}
			/* signal-delivery stop: inject the signal once */
			if (tr.nlisteners)
				restart_notified(tid);
			resume(tid, sig);
			continue;
		default:
			resume(tid, 0);
			continue;
		}
	}
}

/* Python registered the child of a clone event: let both run. */
int umvu_clone_done(int parent, int child)
{
	if (tid_ok(child)) {
		int parked = tr.tflags[child] & TF_PARKED;
		tr.tflags[child] = TF_KNOWN |
			(tr.tflags[child] & (TF_RESTORE | TF_NOEXEC | TF_DROPEXEC));
		if (parked) {
			restore_opts(child);
			resume(child, 0);
		}
	}
	resume(parent, 0);
	return 0;
}

int umvu_resume(int tid, int sig)
{
	if (at_notif(tid))
		return notif_answer(tid, 0, 1);
	return ptrace(resume_request_for(tid), tid, 0, sig) < 0 ? -errno : 0;
}

/* Wait for tid's next stop: 0, or -ESRCH when it is gone (its exit event queued). */
int wait_stopped(int tid, int *status)
{
	for (;;) {
		if (wait_tracee(tid, status, NULL) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (WIFSTOPPED(*status)) {
			restore_opts(tid);
			return 0;
		}
		exited_meanwhile(tid, *status);
		return -ESRCH;
	}
}

/* tid waits in a notification: make it stop at the syscall-entry stop of that same call
 * (interrupted, answered "restart" -ERESTARTNOINTR, restarted under PTRACE_SYSCALL). From
 * there the call's filter verdict is let by (TF_PASS_NEXT) and its exit stop comes. A
 * group stop due at that moment is lost. */
int notif_stop(int tid)
{
	int status, pending_sig = 0, e;
	if (!at_notif(tid))
		return 0;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
		return -errno;
	notif_answer(tid, -ERESTARTNOINTR, 0);
	for (;;) {
		if ((e = wait_stopped(tid, &status)) < 0)
			return e;
		int sig = WSTOPSIG(status), event = (unsigned)status >> 16;
		if (event == PTRACE_EVENT_STOP)
			break;
		if (event == 0 && sig != SIGTRAP)
			pending_sig = sig;
		if (ptrace(PTRACE_CONT, tid, 0, 0) < 0)
			return -errno;
	}
	if (ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
		return -errno;
	if ((e = wait_op(tid, PTRACE_SYSCALL_INFO_ENTRY, &pending_sig)) < 0)
		return e;
	tr.tflags[tid] |= TF_PASS_NEXT;
	if (pending_sig)
		syscall(SYS_tkill, tid, pending_sig);
	return 0;
}

/* tid waits in a notification (its call is one Python answers): put host_fd's open
 * file in its fd table (O_CLOEXEC in flags if asked), the call still unanswered (the
 * number is then its result: umvu_sys_skip). Returns the guest's fd number, -EAGAIN when
 * tid is not at a notification (the caller then makes the call give it), or -errno. */
int umvu_notif_addfd(int tid, int host_fd, int flags)
{
	struct seccomp_notif_addfd a;
	if (!at_notif(tid))
		return -EAGAIN;
	memset(&a, 0, sizeof a);
	a.id = tr.notif_id[tid];
	a.srcfd = (unsigned)host_fd;
	a.newfd_flags = (unsigned)(flags & O_CLOEXEC);
	int fd = ioctl(tr.notif_fd[tid], SECCOMP_IOCTL_NOTIF_ADDFD, &a);
	return fd < 0 ? -errno : fd;
}

/* From now on the path calls of notif (a bitmap of nbits numbers) that the filter the
 * thread tid of process tgid has just stacked sends to its listener, guest_fd in the
 * guest (the guest closes it), reach the C loop as notifications. */
int umvu_listener_add(int tgid, int guest_fd, const unsigned char *notif, int nbits)
{
	if (tr.nlisteners == tr.listeners_cap) {
		int cap = tr.listeners_cap ? 2 * tr.listeners_cap : 64;
		int *l = realloc(tr.listeners, cap * sizeof *l);
		if (!l)
			return -ENOMEM;
		tr.listeners = l;
		struct pollfd *p = realloc(tr.pollfds, (cap + 1) * sizeof *p);
		if (!p)
			return -ENOMEM;
		tr.pollfds = p;
		tr.listeners_cap = cap;
	}
	if (sigchld_init() < 0)
		return -errno;
	int pidfd = (int)syscall(SYS_pidfd_open, tgid, 0);
	if (pidfd < 0)
		return -errno;
	int fd = (int)syscall(SYS_pidfd_getfd, pidfd, guest_fd, 0);
	int e = errno;
	close(pidfd);
	if (fd < 0)
		return -e;
	/* the guest and the C loop hand over on one CPU, as a ptrace stop cannot */
	ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 0);
	tr.listeners[tr.nlisteners++] = fd;
	if (tr.wait_epfd >= 0) {
		struct epoll_event ee = { .events = EPOLLIN, .data.fd = fd };
		epoll_ctl(tr.wait_epfd, EPOLL_CTL_ADD, fd, &ee);
	}
	for (int i = 0; i < nbits && i < FASTNR; i++)
		if (BIT(notif, i))
			tr.notif_nrs[i / 8] |= 1 << (i % 8);
	return 0;
}

/* Make tid report its next syscall boundary (entry or exit) as UMVU_EV_BOUNDARY. */
int umvu_want_boundary(int tid)
{
	if (!tid_ok(tid))
		return -ESRCH;
	tr.tflags[tid] |= TF_BOUNDARY;
	return ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 ? -errno : 0;
}

/* No more boundary stops for tid; resume it if resume is set. */
int umvu_boundary_done(int tid, int do_resume)
{
	if (!tid_ok(tid))
		return -ESRCH;
	tr.tflags[tid] &= ~TF_BOUNDARY;
	return do_resume ? umvu_resume(tid, 0) : 0;
}

/* At a syscall stop: run it natively; want_exit asks for the exit stop. */
int umvu_sys_native(int tid, int want_exit)
{
	if (!want_exit && at_notif(tid))
		return notif_answer(tid, 0, 1);
	int e = notif_stop(tid);
	if (e < 0)
		return e;
	if (want_exit) {
		tr.tflags[tid] |= TF_WANT_EXIT;
		return ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0 ? -errno : 0;
	}
	return umvu_resume(tid, 0);
}

/* At a syscall stop: do not run it; the guest sees retval. */
int umvu_sys_skip(int tid, long retval, int want_exit)
{
	struct user_regs_struct r;
	if (!want_exit && at_notif(tid))
		return notif_answer(tid, retval, 0);
	int e = notif_stop(tid);
	if (e < 0)
		return e;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0)
		return -errno;
	r.orig_rax = (unsigned long)-1;
	r.rax = (unsigned long)retval;
	if (ptrace(PTRACE_SETREGS, tid, 0, &r) < 0)
		return -errno;
	if (tr.noseccomp || (tr.tflags[tid] & TF_PASS_NEXT)) {
		/* at an entry stop: the exit stop writes the result */
		tr.skipret[tid] = retval;
		tr.tflags[tid] |= TF_SKIPRET;
	}
	return umvu_sys_native(tid, want_exit);
}

/* Registers of syscall nr(args) per the x86_64 syscall ABI. */
static void set_call(struct user_regs_struct *r, long nr, const unsigned long args[6])
{
	r->orig_rax = (unsigned long)nr;
	r->rdi = args[0];
	r->rsi = args[1];
	r->rdx = args[2];
	r->r10 = args[3];
	r->r8 = args[4];
	r->r9 = args[5];
}

/* At a syscall stop: change number and arguments, then run it natively. */
int umvu_sys_set(int tid, long nr, const unsigned long args[6])
{
	struct user_regs_struct r;
	int e = notif_stop(tid);
	if (e < 0)
		return e;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0)
		return -errno;
	set_call(&r, nr, args);
	return ptrace(PTRACE_SETREGS, tid, 0, &r) < 0 ? -errno : 0;
}

/* At a syscall-exit stop: change the result the guest sees, then resume. */
int umvu_sys_set_return(int tid, long retval)
{
	struct user_regs_struct r;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0)
		return -errno;
	r.rax = (unsigned long)retval;
	return ptrace(PTRACE_SETREGS, tid, 0, &r) < 0 ? -errno : 0;
}

static int syscall_op(int tid)
{
	struct ptrace_syscall_info info;
	if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof info, &info) <= 0)
		return -1;
	return info.op;
}

/* Run tid until it stops at a syscall stop of kind want_op, suppressing (and
 * remembering) signals on the way. */
int wait_op(int tid, int want_op, int *pending_sig)
{
	for (;;) {
		int status, e;
		if ((e = wait_stopped(tid, &status)) < 0)
			return e;
		int sig = WSTOPSIG(status);
		int event = (unsigned)status >> 16;
		if (sig == (SIGTRAP | 0x80) || event == PTRACE_EVENT_SECCOMP) {
			if (syscall_op(tid) == want_op)
				return 0;
		} else if (event == 0 && sig != SIGTRAP) {
			*pending_sig = sig;
		}
		if (ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
			return -errno;
	}
}

/* Run the injected call (its registers set, tid at a stop before it) to its exit
 * stop and read its result. */
static int finish_injected(int tid, int *pending_sig, long *result)
{
	struct user_regs_struct r;
	int e;

	if (ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
		return -errno;
	if ((e = wait_op(tid, PTRACE_SYSCALL_INFO_EXIT, pending_sig)) < 0)
		return e;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0)
		return -errno;
	*result = (long)r.rax;
	return 0;
}

/*
 * At a seccomp, syscall-entry or syscall-exit stop: run syscall nr(args) in the
 * tracee, then put it back at the same kind of stop with the same registers.
 * Returns the injected call's result (or -errno of ptrace).
 */
static long inject(int tid, long nr, const unsigned long args[6]);

long umvu_inject(int tid, long nr, const unsigned long args[6])
{
	long e = notif_stop(tid);
	if (e < 0)
		return e;
	tr.tflags[tid] |= TF_INJECTING;
	e = inject(tid, nr, args);
	if (tid_ok(tid) && tr.tflags[tid])
		tr.tflags[tid] &= ~TF_INJECTING;
	return e;
}

static long inject(int tid, long nr, const unsigned long args[6])
{
	struct user_regs_struct saved, r;
	int pending_sig = 0, e;
	long result;
	int op = syscall_op(tid);

	if (op < 0)
		return -EINVAL;
	if (ptrace(PTRACE_GETREGS, tid, 0, &saved) < 0)
		return -errno;
	r = saved;
	set_call(&r, nr, args);
	r.rax = nr;
	if (op == PTRACE_SYSCALL_INFO_EXIT) {
		/* back to the syscall instruction, run it as the injected call */
		r.rip -= 2;
		if (ptrace(PTRACE_SETREGS, tid, 0, &r) < 0 || ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
			return -errno;
		if ((e = wait_op(tid, PTRACE_SYSCALL_INFO_ENTRY, &pending_sig)) < 0)
			return e;
		if ((e = finish_injected(tid, &pending_sig, &result)) < 0)
			return e;
		if (ptrace(PTRACE_SETREGS, tid, 0, &saved) < 0)
			return -errno;
	} else {
		if (ptrace(PTRACE_SETREGS, tid, 0, &r) < 0)
			return -errno;
		if ((e = finish_injected(tid, &pending_sig, &result)) < 0)
			return e;
		/* re-execute the original syscall instruction to get back to its entry stop
		 * (from a seccomp stop too: the filter may have changed; its verdict on the
		 * call, decided already, is let by) */
		saved.rip -= 2;
		saved.rax = saved.orig_rax;
		if (ptrace(PTRACE_SETREGS, tid, 0, &saved) < 0)
			return -errno;
		if (ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
			return -errno;
		if ((e = wait_op(tid, PTRACE_SYSCALL_INFO_ENTRY, &pending_sig)) < 0)
			return e;
		if (op == PTRACE_SYSCALL_INFO_SECCOMP)
			tr.tflags[tid] |= TF_PASS_NEXT;
	}
	if (pending_sig)
		syscall(SYS_tkill, tid, pending_sig);
	return result;
}

/* ------------------------------------------------------------ calls that wait */

/*
 * A call Python serves may wait (for another guest, a socket, a timer) while the loop
 * serves every other guest. Its thread waits in the kernel meanwhile, in pause(2), so
 * that a signal for it interrupts the wait as it would interrupt a blocking call:
 *  - umvu_sys_park(): at the call's stop (entry, seccomp, notification, or the exit stop
 *    of an earlier pause), the call becomes pause() and its exit stop is asked for;
 *  - the wait is over: umvu_sys_unpark() interrupts pause and takes its exit stop, and
 *    umvu_sys_reenter() puts the thread back at the entry stop of the guest's own call,
 *    where Python answers it as it answers any call;
 *  - a signal came first: umvu_sys_interrupted() gives the guest's call back with
 *    -ERESTARTSYS at that exit stop, so the kernel restarts it (no handler, or
 *    SA_RESTART: it traps again and is served afresh) or fails it with EINTR.
 */
int umvu_sys_park(int tid)
{
	struct user_regs_struct r;
	int e = notif_stop(tid), pending_sig = 0;
	if (e < 0)
		return e;
	int op = syscall_op(tid);
	if (op < 0)
		return -EINVAL;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0)
		return -errno;
	r.orig_rax = SYS_pause;
	if (op == PTRACE_SYSCALL_INFO_EXIT) {
		/* back to the syscall instruction, as pause */
		r.rax = SYS_pause;
		r.rip -= 2;
		if (ptrace(PTRACE_SETREGS, tid, 0, &r) < 0 || ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
			return -errno;
		if ((e = wait_op(tid, PTRACE_SYSCALL_INFO_ENTRY, &pending_sig)) < 0)
			return e;
	} else if (ptrace(PTRACE_SETREGS, tid, 0, &r) < 0) {
		return -errno;
	}
	tr.tflags[tid] |= TF_WANT_EXIT;
	if (ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
		return -errno;
	if (pending_sig)
		syscall(SYS_tkill, tid, pending_sig);
	return 0;
}

/* The wait of a parked thread is over: interrupt its pause and take the exit stop. */
int umvu_sys_unpark(int tid)
{
	int pending_sig = 0, e;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
		return -errno;
	if ((e = wait_op(tid, PTRACE_SYSCALL_INFO_EXIT, &pending_sig)) < 0)
		return e;
	tr.tflags[tid] &= ~TF_WANT_EXIT;
	if (pending_sig)
		syscall(SYS_tkill, tid, pending_sig);
	return 0;
}

/* At the exit stop of a parked thread's pause: back to the entry stop of nr(args), the
 * guest's own call, whose filter verdict is then let by (TF_PASS_NEXT). */
int umvu_sys_reenter(int tid, long nr, const unsigned long args[6])
{
	struct user_regs_struct r;
	int pending_sig = 0, e;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0)
		return -errno;
	set_call(&r, nr, args);
	r.rax = (unsigned long)nr;
	r.rip -= 2;
	if (ptrace(PTRACE_SETREGS, tid, 0, &r) < 0 || ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
		return -errno;
	if ((e = wait_op(tid, PTRACE_SYSCALL_INFO_ENTRY, &pending_sig)) < 0)
		return e;
	tr.tflags[tid] |= TF_PASS_NEXT;
	if (pending_sig)
		syscall(SYS_tkill, tid, pending_sig);
	return 0;
}

/* At the exit stop of a parked thread's pause that a signal ended: the guest's call
 * nr(args) gives -ERESTARTSYS, as a blocking call a signal interrupts; resumed. */
int umvu_sys_interrupted(int tid, long nr, const unsigned long args[6])
{
	struct user_regs_struct r;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r) < 0)
		return -errno;
	set_call(&r, nr, args);
	r.rax = (unsigned long)-ERESTARTSYS;
	if (ptrace(PTRACE_SETREGS, tid, 0, &r) < 0)
		return -errno;
	tr.tflags[tid] |= TF_OWNRESTART;
	return umvu_resume(tid, 0);
}

/* The next event if there is one now: 1 with *ev filled, 2 when nothing is there now
 * (wait for umvu_wait_fd() to be readable), 0 when no tracee is left. */
int umvu_poll(struct umvu_event *ev)
{
	if (sigchld_init() < 0)
		return -errno;
	tr.nowait = 1;
	int r = umvu_next(ev);
	tr.nowait = 0;
	return r;
}

/* An fd that is readable when umvu_poll may have an event (SIGCHLD, notifications). */
int umvu_wait_fd(void)
{
	if (tr.wait_epfd >= 0)
		return tr.wait_epfd;
	if (sigchld_init() < 0)
		return -errno;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return -errno;
	struct epoll_event ee = { .events = EPOLLIN, .data.fd = tr.sigchld_fd };
	epoll_ctl(ep, EPOLL_CTL_ADD, tr.sigchld_fd, &ee);
	for (int i = 0; i < tr.nlisteners; i++) {
		ee.data.fd = tr.listeners[i];
		epoll_ctl(ep, EPOLL_CTL_ADD, tr.listeners[i], &ee);
	}
	tr.wait_epfd = ep;
	return ep;
}

/* ------------------------------------------------------------------ memory */

int umvu_interrupt(int tid)
{
	return ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 ? -errno : 0;
}

/* A filter that traps the calls of fd_arg_of (nr -> index of its fd argument, 0xff:
 * none) whose fd argument is fd, and allows everything else: stacked into a process
 * when fd becomes virtual in its fd table, so that calls on its real fds never stop. */
int umvu_build_fd_filter(const unsigned char *fd_arg_table, int n, int fd, void *out,
			 int max_insns)
{
	struct sock_filter *prog = out;
	int k = 0, njumps = 0;
	int jump_at[FASTNR], jump_arg[FASTNR];
	const struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	const struct sock_filter trace = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE);

	if (n > FASTNR)
		n = FASTNR;
#define EMIT(insn) do { if (k >= max_insns) return -E2BIG; prog[k++] = (insn); } while (0)
	EMIT(((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch))));
	EMIT(((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0)));
	EMIT(allow); /* other ABIs: the core's filter traps them */
	EMIT(((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))));
	/* ranges of consecutive numbers with the same argument index: jump to its check */
	for (int i = 0; i < n; i++) {
		if (fd_arg_table[i] > 5)
			continue;
		int arg = fd_arg_table[i], lo = i;
		while (i + 1 < n && fd_arg_table[i + 1] == arg)
			i++;
		EMIT(((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, lo, 0, 2)));
		EMIT(((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, i, 1, 0)));
		jump_at[njumps] = k;
		jump_arg[njumps++] = arg;
		EMIT(((struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, 0))); /* to its check */
	}
	EMIT(allow);
	/* one check per argument index used: the low 32 bits of the argument (an int fd) */
	for (int arg = 0; arg < 6; arg++) {
		int at = k, used = 0;
		for (int j = 0; j < njumps; j++) {
			if (jump_arg[j] == arg) {
				prog[jump_at[j]].k = at - (jump_at[j] + 1);
				used = 1;
			}
		}
		if (!used)
			continue;
		EMIT(((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						   offsetof(struct seccomp_data, args) + 8 * arg)));
		EMIT(((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)fd, 0, 1)));
		EMIT(trace);
		EMIT(allow);
	}
#undef EMIT
	return k;
}

/* The filter for a bitmap, for stacking onto running tracees (see umvu_spawn). */
int umvu_build_filter(const unsigned char *bitmap, const unsigned char *notif, int nbits,
		      void *out, int max_insns)
{
	static struct sock_filter prog[MAXPROG];
	int n = build_filter(prog, bitmap, notif, nbits);
	if (n < 0)
		return n;
	if (n > max_insns)
		return -E2BIG;
	memcpy(out, prog, n * sizeof prog[0]);
	return n;
}

/* A raw system call made by this process (the vu_* commands' virtual syscalls). */
long umvu_raw_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	long r = syscall(nr, a0, a1, a2, a3, a4, a5);
	return r < 0 ? -errno : r;
}

/* ------------------------------------------------------------ path fast path */

/* -S only: Python wants the entry stops of the numbers set in bitmap (n bits); the
 * virtual (negative) numbers and foreign ABIs always reach it. enable 0: all of them. */
int umvu_set_wanted(const unsigned char *bitmap, int nbits, int enable)
{
	memset(tr.wanted, 0, sizeof tr.wanted);
	if (nbits > FASTNR)
		nbits = FASTNR;
	memcpy(tr.wanted, bitmap, (nbits + 7) / 8);
	tr.wanted_set = enable;
	return 0;
}
