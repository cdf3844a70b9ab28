/* What Python does with a stopped thread: resume it, run its call natively or skip it,
 * change the call or its result, inject another call, park it while its call waits. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <linux/ptrace.h>

#include "tracer_internal.h"

static int resume_request_for(int tid)
{
	const int exit_stop = TF_BOUNDARY | TF_PASS_NEXT | TF_WANT_EXIT | TF_SKIPRET;
	return (tr.noseccomp || (tr.tflags[tid] & exit_stop)) ? PTRACE_SYSCALL : PTRACE_CONT;
}

void resume(int tid, int sig)
{
	if (at_notif(tid))
		notif_answer(tid, 0, 1);
	else
		ptrace(resume_request_for(tid), tid, 0, sig);
}

int umvu_resume(int tid, int sig)
{
	if (at_notif(tid))
		return notif_answer(tid, 0, 1);
	return ptrace(resume_request_for(tid), tid, 0, sig) < 0 ? -errno : 0;
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

static int syscall_op(int tid)
{
	struct ptrace_syscall_info info;
	if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof info, &info) <= 0)
		return -1;
	return info.op;
}

/* A signal taken while the tracer waits for a stop of its own (an injection, a
 * notification turned into a stop...): held, then sent again with its own siginfo, so
 * that a queued signal keeps its code and value (a vu_* command's knock is one: sent
 * again by tkill it was no knock any more and the command never got its filter). */
static struct {
	int tid, sig, have;
	siginfo_t si;
} held;

void hold_signal(int tid, int sig)
{
	held.tid = tid;
	held.sig = sig;
	held.have = ptrace(PTRACE_GETSIGINFO, tid, 0, &held.si) == 0;
}

static int tgid_of(int tid)
{
	char path[64], line[128];
	snprintf(path, sizeof path, "/proc/%d/status", tid);
	FILE *f = fopen(path, "r");
	int tgid = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	fclose(f);
	return tgid;
}

/* Signals sent again whose siginfo the kernel would not let umvu queue (a tgkill's
 * SI_TKILL from the guest itself, as glibc's SIGCANCEL and SIGSETXID: their handlers
 * ignore them from another process, and pthread_cancel's target then waits for the
 * signal forever): the siginfo is put back at their signal-delivery stop. */
#define REINJECT_MAX 32
static struct {
	int tid, sig;
	siginfo_t si;
} reinject[REINJECT_MAX];

int take_reinjected(int tid, int sig)
{
	for (int i = 0; i < REINJECT_MAX; i++) {
		if (reinject[i].tid == tid && reinject[i].sig == sig) {
			reinject[i].tid = 0;
			ptrace(PTRACE_SETSIGINFO, tid, 0, &reinject[i].si);
			return 1;
		}
	}
	return 0;
}

void resend_signal(int tid, int sig)
{
	if (held.have && held.tid == tid && held.sig == sig) {
		held.have = 0;
		int tgid = tgid_of(tid);
		/* (the kernel's own codes, si_code >= 0, cannot be queued by a process) */
		if (tgid > 0 && held.si.si_code < 0 && held.si.si_code != SI_TKILL &&
		    syscall(SYS_rt_tgsigqueueinfo, tgid, tid, sig, &held.si) == 0)
			return;
		int slot = -1;
		for (int i = 0; i < REINJECT_MAX; i++) {
			if (reinject[i].tid == tid && reinject[i].sig == sig) {
				slot = -2; /* held again on its way: the first siginfo stays */
				break;
			}
			if (reinject[i].tid == 0 && slot == -1)
				slot = i;
		}
		if (slot >= 0) {
			reinject[slot].tid = tid;
			reinject[slot].sig = sig;
			reinject[slot].si = held.si;
		}
	}
	syscall(SYS_tkill, tid, sig);
}

/* Run tid until it stops at a syscall stop of kind want_op, suppressing (and
 * remembering: hold_signal) signals on the way. */
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
			hold_signal(tid, sig);
		}
		if (ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
			return -errno;
	}
}

/* Run tid to the entry stop of a call: r given (tid at a syscall stop), back to its
 * syscall instruction first, to run it as the call in r. Signals on the way are held
 * (*pending_sig); entry_reached() sends them again. */
int rerun_to_entry(int tid, struct user_regs_struct *r, int *pending_sig)
{
	if (r) {
		r->rip -= 2;
		if (ptrace(PTRACE_SETREGS, tid, 0, r) < 0)
			return -errno;
	}
	if (ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
		return -errno;
	return wait_op(tid, PTRACE_SYSCALL_INFO_ENTRY, pending_sig);
}

/* tid is at the entry stop rerun_to_entry() reached: its filter verdict, decided
 * already, is let by when pass is set; the signals held on the way are sent again. */
void entry_reached(int tid, int pending_sig, int pass)
{
	if (pass)
		tr.tflags[tid] |= TF_PASS_NEXT;
	if (pending_sig)
		resend_signal(tid, pending_sig);
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

/* tid's registers at its syscall stop (*r) and which stop it is (PTRACE_SYSCALL_INFO_*),
 * or -errno */
static int regs_at_stop(int tid, struct user_regs_struct *r)
{
	int op = syscall_op(tid);
	if (op < 0)
		return -EINVAL;
	return ptrace(PTRACE_GETREGS, tid, 0, r) < 0 ? -errno : op;
}

static long inject(int tid, long nr, const unsigned long args[6])
{
	struct user_regs_struct saved, r;
	int pending_sig = 0, e;
	long result;
	int op = regs_at_stop(tid, &saved);

	if (op < 0)
		return op;
	r = saved;
	set_call(&r, nr, args);
	r.rax = nr;
	if (op == PTRACE_SYSCALL_INFO_EXIT) {
		/* back to the syscall instruction, run it as the injected call */
		if ((e = rerun_to_entry(tid, &r, &pending_sig)) < 0)
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
		saved.rax = saved.orig_rax;
		if ((e = rerun_to_entry(tid, &saved, &pending_sig)) < 0)
			return e;
	}
	entry_reached(tid, pending_sig, op == PTRACE_SYSCALL_INFO_SECCOMP);
	return result;
}

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
	int op = regs_at_stop(tid, &r);
	if (op < 0)
		return op;
	r.orig_rax = SYS_pause;
	if (op == PTRACE_SYSCALL_INFO_EXIT) {
		/* back to the syscall instruction, as pause */
		r.rax = SYS_pause;
		if ((e = rerun_to_entry(tid, &r, &pending_sig)) < 0)
			return e;
	} else if (ptrace(PTRACE_SETREGS, tid, 0, &r) < 0) {
		return -errno;
	}
	tr.tflags[tid] |= TF_WANT_EXIT;
	if (ptrace(PTRACE_SYSCALL, tid, 0, 0) < 0)
		return -errno;
	if (pending_sig)
		resend_signal(tid, pending_sig);
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
		resend_signal(tid, pending_sig);
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
	if ((e = rerun_to_entry(tid, &r, &pending_sig)) < 0)
		return e;
	entry_reached(tid, pending_sig, 1);
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

int umvu_interrupt(int tid)
{
	return ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 ? -errno : 0;
}
