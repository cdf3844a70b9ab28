/* Starting the guest (umvu_spawn, umvu_launch), the signals the supervisor ignores while
 * it runs, the autonomous run of the umvu program and the exit code it ends with. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "tracer_internal.h"

/* umvu_spawn's own flags: umvu's SIGINT / SIGQUIT was ignored, the guest's stays so */
#define UMVU_KEEP_SIGINT_IGN  2
#define UMVU_KEEP_SIGQUIT_IGN 4

/* what the supervisor must survive; the guest gets its dispositions back */
static const int supervisor_ignores[] = { SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU };
_Static_assert(sizeof supervisor_ignores / sizeof supervisor_ignores[0] == NIGNORES,
	       "one saved disposition per signal ignored");

/* What would end the supervisor, and with it every guest and every byte a module holds,
 * is passed on to the first guest process instead (umvu CMD stands for CMD to whoever
 * signals it: a hangup of the terminal umvu leads, `kill`, systemd, a CI runner); the
 * supervisor goes on until the last guest is gone, and unmounts. A disposition umvu was
 * started with ignored stays so, for umvu and the guest (nohup umvu ...). SIGINT and
 * SIGQUIT come from the terminal to the whole foreground process group: ignored. */
static const int supervisor_forwards[] = { SIGHUP, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM,
					   SIGVTALRM, SIGPROF, SIGIO, SIGPWR, SIGSTKFLT,
					   SIGXCPU };
_Static_assert(sizeof supervisor_forwards / sizeof supervisor_forwards[0] == NFORWARDS,
	       "one saved disposition per signal passed on");

/* Whether pid's TracerPid is this process (a guest), or sig is pending for the process
 * (SigPnd of its leader, ShdPnd), read from /proc/pid/status: async-signal-safe. */
static int status_says(int pid, int sig, int *traced_by_me)
{
	char path[40] = "/proc/", digits[12], buf[4096];
	int n = 0, pending = 0;
	do
		digits[n++] = '0' + pid % 10;
	while ((pid /= 10) > 0);
	char *p = path + 6;
	while (n > 0)
		*p++ = digits[--n];
	memcpy(p, "/status", 8);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	for (char *line = buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : 0) {
		if (traced_by_me && !strncmp(line, "TracerPid:", 10))
			*traced_by_me = atoi(line + 10) == getpid();
		else if (!strncmp(line, "SigPnd:", 7) || !strncmp(line, "ShdPnd:", 7))
			pending |= (strtoull(line + 7, NULL, 16) >> (sig - 1)) & 1;
	}
	return pending;
}

/* The handler of the signals passed on (see supervisor_forwards). Not passed on: what a
 * guest sent (its group's signal reached umvu too, or it signalled its parent), and what
 * the first guest process has from the same sender already: pending, at its delivery
 * stop, or delivered last (the sender signalled the whole process group umvu and the
 * guest are in). */
#define FORWARD_SAME_NS 2000000000L
static void forward_signal(int sig, siginfo_t *si, void *uctx)
{
	(void)uctx;
	int saved = errno, guest = 0, main = tr.main_tid;
	if (main <= 0 || tr.main_status != -1)
		goto out;  /* gone (and reaped: its pid may be another's now) */
	int user = si->si_code == SI_USER || si->si_code == SI_QUEUE || si->si_code == SI_TKILL;
	if (user && si->si_pid > 0 && si->si_pid != getpid()) {
		status_says(si->si_pid, sig, &guest);
		if (guest)
			goto out;
	}
	if (status_says(main, sig, NULL))
		goto out;
	siginfo_t at;
	if (ptrace(PTRACE_GETSIGINFO, main, 0, &at) == 0 && at.si_signo == sig &&
	    at.si_pid == si->si_pid)
		goto out;  /* at its delivery stop with the same signal */
	if (tr.main_sig == sig && tr.main_sig_pid == si->si_pid &&
	    now_ns() - tr.main_sig_ns < FORWARD_SAME_NS)
		goto out;  /* delivered already (a stale record is not believed) */
	kill(main, sig);
out:
	tr.main_sig = 0;
	errno = saved;
}

static void supervisor_signals(void)
{
	struct sigaction ign, fwd, old;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	for (int i = 0; i < NIGNORES; i++)
		sigaction(supervisor_ignores[i], &ign,
			  tr.signals_saved ? NULL : &tr.saved_actions[i]);
	memset(&fwd, 0, sizeof fwd);
	fwd.sa_sigaction = forward_signal;
	fwd.sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&fwd.sa_mask);
	for (int i = 0; i < NFORWARDS; i++) {
		sigaction(supervisor_forwards[i], NULL, &old);
		if (!tr.signals_saved)
			tr.saved_forwards[i] = old;
		if (old.sa_handler != SIG_IGN)
			sigaction(supervisor_forwards[i], &fwd, NULL);
	}
	tr.signals_saved = 1;
}

/* Give umvu its own dispositions back (the guest tree is over). */
int umvu_restore_signals(void)
{
	if (tr.signals_saved) {
		for (int i = 0; i < NIGNORES; i++)
			sigaction(supervisor_ignores[i], &tr.saved_actions[i], NULL);
		for (int i = 0; i < NFORWARDS; i++)
			sigaction(supervisor_forwards[i], &tr.saved_forwards[i], NULL);
	}
	tr.signals_saved = 0;
	return 0;
}

int umvu_spawn(char *const argv[], const unsigned char *bitmap, int nbits, int flags,
	       int guest_umask)
{
	int pipefd[2];
	static struct sock_filter prog[MAXPROG];
	int plen = 0;

	tr.noseccomp = (flags & UMVU_NOSECCOMP) != 0;
	if (tables_init() < 0)
		return -ENOMEM;
	supervisor_signals();
	if (tr.saved_actions[0].sa_handler == SIG_IGN)
		flags |= UMVU_KEEP_SIGINT_IGN;
	if (tr.saved_actions[1].sa_handler == SIG_IGN)
		flags |= UMVU_KEEP_SIGQUIT_IGN;
	if (!tr.noseccomp) {
		plen = build_filter(prog, bitmap, NULL, nbits);
		if (plen < 0)
			return plen;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return -e;
	}
	if (pid == 0) {
		char c;
		close(pipefd[1]);
		/* the dispositions the hypervisor changed for itself are not the guest's */
		signal(SIGPIPE, SIG_DFL);
		signal(SIGXFSZ, SIG_DFL);
		if (!(flags & UMVU_KEEP_SIGINT_IGN))
			signal(SIGINT, SIG_DFL);
		if (!(flags & UMVU_KEEP_SIGQUIT_IGN))
			signal(SIGQUIT, SIG_DFL);
		signal(SIGTSTP, SIG_DFL);
		signal(SIGTTIN, SIG_DFL);
		signal(SIGTTOU, SIG_DFL);
		for (int i = 0; i < NFORWARDS; i++)
			if (tr.saved_forwards[i].sa_handler != SIG_IGN)
				signal(supervisor_forwards[i], SIG_DFL);
		sigset_t empty;
		sigemptyset(&empty);
		sigprocmask(SIG_SETMASK, &empty, NULL);
		umask(guest_umask);
		/* wait until the parent has seized us; EOF means it died */
		if (read(pipefd[0], &c, 1) != 1)
			_exit(127);
		if (!tr.noseccomp) {
			struct sock_fprog fprog = { .len = (unsigned short)plen, .filter = prog };
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
			    (!(flags & UMVU_NOFILTER) &&
			     syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0)) {
				dprintf(2, "umvu: cannot install the seccomp filter: %s\n", strerror(errno));
				_exit(126);
			}
		}
		execvp(argv[0], argv);
		int e = errno;
		dprintf(2, "umvu: %s: %s\n", argv[0], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	close(pipefd[0]);
	long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
		    PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
	if (!tr.noseccomp)
		opts |= PTRACE_O_TRACESECCOMP;
	tr.full_opts = opts;
	tr.exec_events_off = (flags & UMVU_NOFILTER) != 0;
	if (tr.exec_events_off)
		opts &= ~PTRACE_O_TRACEEXEC;
	if (ptrace(PTRACE_SEIZE, pid, 0, opts) < 0) {
		int e = errno;
		kill(pid, SIGKILL);
		close(pipefd[1]);
		waitpid(pid, NULL, 0);
		return -e;
	}
	tr.tflags[pid] = TF_KNOWN;
	tree_new(pid, pid);
	tr.main_tid = pid;
	tr.nthreads = 1;
	if (write(pipefd[1], "g", 1) != 1) {
		int e = errno;
		close(pipefd[1]);
		return -e;
	}
	close(pipefd[1]);
	return pid;
}

/* on: resume tracees at clone and exec events (Python only follows the tree) */
int umvu_set_autonomous(int on)
{
	tr.autonomous = on;
	return 0;
}

/* While no module is loaded: follow the guest without Python until an event needs it
 * (1, *ev filled, the tracee stopped) or no tracee is left (0). Clone, exec and exit
 * events only update the tree (umvu_set_autonomous must be on). */
int umvu_run_autonomous(struct umvu_event *ev)
{
	for (;;) {
		int r = umvu_next(ev);
		if (r <= 0)
			return r;
		if ((ev->kind == UMVU_EV_CLONE || ev->kind == UMVU_EV_EXEC) && ev->resumed)
			continue;
		if (ev->kind == UMVU_EV_EXITED)
			continue;
		tr.handed_over = *ev;
		return 1;
	}
}

/* The event umvu_run_autonomous returned last (for an interpreter started after it). */
int umvu_handed_over(struct umvu_event *ev)
{
	*ev = tr.handed_over;
	return 0;
}

/* Start the guest as umvu does (umvu's own umask, no syscall trapped but the virtual
 * ones; no filter at all when followed in C), with follow_in_c the C loop following
 * it alone. spin: how long wait_tracee polls (ns); < 0: UMVU_DEFAULT_SPIN_NS when this
 * process may use more than one CPU, else 0. Returns the guest's pid or -errno. */
int umvu_launch(char *const argv[], int no_seccomp, int follow_in_c, long spin)
{
	static const unsigned char empty[8];
	int flags = no_seccomp ? UMVU_NOSECCOMP : (follow_in_c ? UMVU_NOFILTER : 0);
	tr.launch_umask = umask(022);
	umask(tr.launch_umask);
	int pid = umvu_spawn(argv, empty, 64, flags, tr.launch_umask);
	if (pid < 0) {
		umvu_restore_signals();
		return pid;
	}
	/* No guest reaches into umvu: its memory (/proc/PID/mem, process_vm_writev), its
	 * fds (/proc/PID/fd: the images, the memfds), ptrace. (After the spawn: the child
	 * was traced before its exec made it dumpable again.) Files go to guests by
	 * seccomp ADDFD or over a unix socket (umvu.core.handoff), never by /proc. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* -S: every call stops, and the C loop lets by those no module wants (all, now) */
	umvu_set_wanted(empty, 64, no_seccomp && follow_in_c);
	umvu_set_autonomous(follow_in_c);
	if (spin < 0) {
		cpu_set_t cpus;
		spin = sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) > 1
			? UMVU_DEFAULT_SPIN_NS : 0;
	}
	tr.spin_ns = spin;
	tr.last_wait_ns = 0;
	return pid;
}

int umvu_guest_umask(void)
{
	return tr.launch_umask;
}

/* The first guest process's status as a shell reports it (1 if unknown). */
/* 1 while the first guest process (the session's command) has not exited */
int umvu_main_running(void)
{
	return tr.main_status == -1;
}

int umvu_exit_code(void)
{
	if (tr.main_status == -1)
		return 1;
	if (WIFSIGNALED(tr.main_status))
		return 128 + WTERMSIG(tr.main_status);
	return WEXITSTATUS(tr.main_status);
}
