/* Waiting for tracees and the stops they report: umvu_next handles by itself what needs no
 * decision (see seccomp_helper.h) and returns the events Python must see; umvu_poll and
 * umvu_wait_fd serve a loop that waits on other things too. Also what the vu_* commands
 * call in a guest process: the knock that wakes the hypervisor, the raw syscall. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <linux/audit.h>
#include <linux/ptrace.h>
#include <linux/sched.h>

#include "tracer_internal.h"

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
	kick_loop();
}

/* The loop sleeping on wait_epfd is to look again (see tr.kick_fd). */
void kick_loop(void)
{
	if (tr.kick_fd >= 0) {
		uint64_t one = 1;
		if (write(tr.kick_fd, &one, sizeof one) < 0) {
			/* (full: it is readable anyway) */
		}
	}
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

/* waitpid(which, status, __WALL), polling first while stops come in quick succession
 * (yielding, which lets a guest on the same CPU run): a sleeping tracer's wake-up is a
 * cross-CPU wake of a halted virtual CPU, 20-25 us here; a polling one sees the stop at
 * once. The last wait was short or it sleeps at once, so a guest that seldom stops
 * costs no CPU. Meanwhile it serves the notifications: returns 0 with *ev filled when
 * one is for Python (ev NULL: queued for next_event). With listeners SIGCHLD stays
 * blocked and comes through a signalfd: every ptrace stop and exit sends one, so
 * waitpid is asked only after one came (chld_maybe); the sleep is bounded all the same. */
static pid_t wait_tracee_(pid_t which, int *status, struct umvu_event *ev);

pid_t wait_tracee(pid_t which, int *status, struct umvu_event *ev)
{
	pid_t r = wait_tracee_(which, status, ev);
	if (which != -1)
		kick_loop(); /* it may have taken what was to wake the loop */
	return r;
}

static pid_t wait_tracee_(pid_t which, int *status, struct umvu_event *ev)
{
	long t0 = now_ns();
	pid_t r;
	if (tr.nowait && which == -1) {
		/* no sleep: what is there now, else EAGAIN (SIGCHLD's signalfd drained first,
		 * so a stop after this waitpid makes wait_epfd readable) */
		struct signalfd_siginfo si;
		while (read(tr.sigchld_fd, &si, sizeof si) > 0)
			;
		uint64_t kicks;
		if (tr.kick_fd >= 0 && read(tr.kick_fd, &kicks, sizeof kicks) < 0) {
			/* (not kicked) */
		}
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

/* A raw system call made by this process (the vu_* commands' virtual syscalls). */
long umvu_raw_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	long r = syscall(nr, a0, a1, a2, a3, a4, a5);
	return r < 0 ? -errno : r;
}

/* The stops next_event meets, one function a kind: each returns 1 when *ev is an event
 * for Python (tid stays stopped), 0 when the stop was dealt with here. */

/* tid exited or was killed */
static int tracee_gone(int tid, int status, struct umvu_event *ev)
{
	int unseen = tid_ok(tid) && (tr.tflags[tid] & TF_UNSEEN);
	forget_tid(tid, status);
	if (unseen && tid != tr.main_tid)
		return 0; /* Python never knew it */
	ev->kind = UMVU_EV_EXITED;
	return 1;
}

/* syscall-entry (-S) or syscall-exit stop */
static int syscall_stop(int tid, struct umvu_event *ev)
{
	struct user_regs_struct r;
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
			/* (before a boundary: a call taken from a notification may have been
			 * asked for one meanwhile; it comes at the next) */
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
			return 0;
		}
		return 1;
	}
	resume(tid, 0);
	return 0;
}

static int seccomp_stop(int tid, struct umvu_event *ev)
{
	tr.tflags[tid] &= ~TF_OWNRESTART;
	if (tr.tflags[tid] & TF_PASS_NEXT) {
		/* the verdict on a call already decided at its entry stop */
		tr.tflags[tid] &= ~TF_PASS_NEXT;
		resume(tid, 0);
		return 0;
	}
	if (fill_info(tid, ev) < 0)
		return 0;
	if (tr.local_traps) {  /* a module's own trap: never decided here */
		unsigned long data = 0;
		if (ptrace(PTRACE_GETEVENTMSG, tid, 0, &data) == 0 && data == UMVU_LOCAL_TRAP)
			return 1;
	}
	if (decide_in_c(tid, ev))
		return 0;
	return 1;
}

/* fork, vfork or clone (event); lacked: tid had no exec events */
static int clone_event(int tid, int event, int lacked, struct umvu_event *ev)
{
	struct user_regs_struct r;
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
		return 0;
	}
	if (tr.autonomous) {
		umvu_clone_done(tid, (int)child);
		ev->resumed = 1;
	}
	return 1;
}

static int exec_event(int tid, struct umvu_event *ev)
{
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
	callers_forget(); /* (a set-user-ID program) */
	if (unseen && tr.lazy_exec && !tr.noseccomp) {
		resume(tid, 0);
		return 0;
	}
	if (tr.autonomous) {
		resume(tid, 0);
		ev->resumed = 1;
	}
	return 1;
}

/* PTRACE_EVENT_STOP: a group stop, a new child's first stop, or after an interrupt */
static int event_stop(int tid, int sig)
{
	if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
		/* group stop: stay stopped, let the real parent see it */
		ptrace(PTRACE_LISTEN, tid, 0, 0);
		return 0;
	}
	if (!(tr.tflags[tid] & TF_KNOWN)) {
		/* initial stop of a child whose parent's event is still to come */
		tr.tflags[tid] |= TF_PARKED;
		return 0;
	}
	resume(tid, 0);
	return 0;
}

/* signal-delivery stop: a knock, or a signal injected once */
static int signal_stop(int tid, int sig, struct umvu_event *ev)
{
	int knock = sig == SIGURG ? is_knock(tid) : 0;
	if (knock) {
		/* a vu_* command asks for the hypervisor; its next syscall boundary (the
		 * virtual call) gets the filter (UMVU_NOFILTER) */
		if (!tr.noseccomp)
			tr.tflags[tid] |= TF_BOUNDARY;
		ev->kind = UMVU_EV_KNOCK;
		ev->msg = knock - 1; /* 1: a module is about to be loaded */
		return 1;
	}
	if (tr.nlisteners)
		restart_notified(tid);
	take_reinjected(tid, sig); /* (a signal umvu sent again: its own siginfo back) */
	if (tid == tr.main_tid) {  /* (for forward_signal) */
		siginfo_t si;
		if (ptrace(PTRACE_GETSIGINFO, tid, 0, &si) == 0) {
			tr.main_sig = 0;
			tr.main_sig_pid = si.si_pid;
			tr.main_sig_ns = now_ns();
			tr.main_sig = sig;
		}
	}
	if (tr.trace_signals) {  /* (the debug trace shows it; Python delivers it) */
		ev->kind = UMVU_EV_SIGNAL;
		ev->msg = sig;
		return 1;
	}
	resume(tid, sig);
	return 0;
}

/* What waitpid said of tid, to the handler of its kind. */
static int tracee_status(int tid, int status, struct umvu_event *ev)
{
	memset(ev, 0, sizeof *ev);
	ev->tid = tid;
	ev->status = status;
	if (WIFEXITED(status) || WIFSIGNALED(status))
		return tracee_gone(tid, status, ev);
	if (!WIFSTOPPED(status))
		return 0;
	int sig = WSTOPSIG(status);
	int event = (unsigned)status >> 16;
	int lacked = restore_opts(tid); /* (a child forked before has none either) */

	if (sig == (SIGTRAP | 0x80))
		return syscall_stop(tid, ev);
	switch (event) {
	case PTRACE_EVENT_SECCOMP:
		return seccomp_stop(tid, ev);
	case PTRACE_EVENT_FORK:
	case PTRACE_EVENT_VFORK:
	case PTRACE_EVENT_CLONE:
		return clone_event(tid, event, lacked, ev);
	case PTRACE_EVENT_EXEC:
		return exec_event(tid, ev);
	case PTRACE_EVENT_STOP:
		return event_stop(tid, sig);
	case 0:
		return signal_stop(tid, sig, ev);
	default:
		resume(tid, 0);
		return 0;
	}
}

/* A queued event still for Python (a notification is no more when its thread left it)
 * into *ev: 1, else 0. */
static int take_queued(struct umvu_event *ev)
{
	while (tr.nqueued) {
		*ev = tr.queued[0];
		memmove(tr.queued, tr.queued + 1, --tr.nqueued * sizeof *tr.queued);
		if (ev->kind != UMVU_EV_SYSCALL || at_notif(ev->tid))
			return 1;
	}
	return 0;
}

/* 1 with *ev filled, 0 when no tracee is left, 2 when nothing is there now (nowait),
 * -errno on error. */
static int next_event(struct umvu_event *ev)
{
	for (;;) {
		int status;
		if (take_queued(ev))
			return 1;
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
		if (tracee_status(tid, status, ev))
			return 1;
	}
}

/* Returns 1 with *ev filled, 0 when no tracee is left, -errno on error. */
int umvu_next(struct umvu_event *ev)
{
	int r = next_event(ev);
	ev->closed = tr.nclosed;
	return r;
}

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

/* Signal-delivery stops as UMVU_EV_SIGNAL events (on), or delivered here (0). */
int umvu_trace_signals(int on)
{
	tr.trace_signals = on;
	return 0;
}

/* Some process has a filter of a module's own (its TRACE data UMVU_LOCAL_TRAP). */
int umvu_local_traps(int on)
{
	tr.local_traps = on;
	return 0;
}

/* The siginfo of tid's signal-delivery stop (128 bytes). */
int umvu_siginfo(int tid, void *buf128)
{
	return ptrace(PTRACE_GETSIGINFO, tid, 0, buf128) < 0 ? -errno : 0;
}

/* The numbers (n bits of bitmap) the C loop lets run as they are when they come
 * (notifications every module filter has, claimed by no module). */
int umvu_set_let_run(const unsigned char *bitmap, int nbits)
{
	memset(tr.let_run, 0, sizeof tr.let_run);
	if (nbits > FASTNR)
		nbits = FASTNR;
	memcpy(tr.let_run, bitmap, (nbits + 7) / 8);
	return 0;
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
	tr.kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (tr.kick_fd >= 0) {
		ee.data.fd = tr.kick_fd;
		epoll_ctl(ep, EPOLL_CTL_ADD, tr.kick_fd, &ee);
	}
	for (int i = 0; i < tr.nlisteners; i++) {
		ee.data.fd = tr.listeners[i];
		epoll_ctl(ep, EPOLL_CTL_ADD, tr.listeners[i], &ee);
	}
	tr.wait_epfd = ep;
	return ep;
}
