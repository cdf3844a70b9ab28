/* The seccomp side of the tracer core: the BPF filters (the guest's own, those stacked
 * onto running tracees, the fd filters), and the user-notification listeners: taking a
 * notification, answering it, ADDFD, turning it into a ptrace stop. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "tracer_internal.h"

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
		if (event == 0 && sig != SIGTRAP) {
			pending_sig = sig;
			hold_signal(tid, sig);
		}
		if (ptrace(PTRACE_CONT, tid, 0, 0) < 0)
			return -errno;
	}
	if ((e = rerun_to_entry(tid, NULL, &pending_sig)) < 0)
		return e;
	entry_reached(tid, pending_sig, 1);
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
