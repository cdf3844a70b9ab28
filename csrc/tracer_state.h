/*
 * The tracer core's state: one struct, struct tracer, and its one instance tr
 * (tracer_state.c), which every file of the core reads and writes. Also what the state
 * is made of: the per-thread flags, the sizes of its tables, the kinds of their entries.
 */
#ifndef UMVU_TRACER_STATE_H
#define UMVU_TRACER_STATE_H

#include <poll.h>
#include <signal.h>
#include <stddef.h>

#include "seccomp_helper.h"

/* per-thread flags, indexed by tid (pid_max entries, allocated lazily by the kernel) */
#define TF_KNOWN     0x01 /* Python knows this thread */
#define TF_PARKED    0x02 /* initial stop seen before the parent's clone event */
#define TF_WANT_EXIT 0x04 /* report the next syscall-exit stop */
#define TF_SKIPRET   0x08 /* -S mode: write skip_ret at the exit stop */
#define TF_BOUNDARY  0x10 /* stop at the next syscall boundary (filter upgrade) */
#define TF_PASS_NEXT 0x20 /* at a syscall-entry stop made by the C loop (from a
                           * notification, after an injection): the filter's verdict on
                           * that call is let by, and its exit stop comes */
#define TF_INJECTING 0x40 /* umvu_inject runs a call: its notification is let by */
#define TF_PLAIN     0x80 /* Python: a child of this thread needs nothing from it but
                           * what the kernel and the tree tell (umvu_set_plain) */
#define TF_UNSEEN   0x100 /* followed by the C loop alone: Python does not know it yet
                           * (umvu_tree_rows with unseen_only hands it over) */
#define TF_RESTORE  0x200 /* its ptrace options lack exec events: set them at its next
                           * stop (umvu_exec_events), or before it execs (exec_events_now) */
#define TF_NOEXEC   0x400 /* unseen, it runs without exec events: its execs are not
                           * reported (see drop_exec_ok) */
#define TF_DROPEXEC 0x800 /* unseen: to lose its exec events at its next stop */
#define TF_OWNRESTART 0x1000 /* the restart code Python set at an exit stop stands
                              * (umvu_sys_interrupted: a waiting call a signal ended) */

struct tree_node {
	int tid;                 /* 0: free slot, -1: deleted */
	int tgid, fs, files, vm; /* the others: sharing groups */
};

#define FASTNR 512   /* syscall numbers the fast paths know */
#define FASTFD 65536 /* fds the fd fast path knows */

/* path fast path: for a path-choice syscall, where its path (and second path) and their
 * dirfds are (0xff: none). A seccomp stop for it resumes at once, without Python, when
 * the kernel's own walk of every path stays out of every prefix Python gave (see
 * path_native). */
struct path_desc {
	unsigned char path[2], dirfd[2], null_is_fd, cwd_only;
	/* the call changes the file system (always, or when the open flags in argument
	 * oflags ask to write, create or truncate): Python makes it on what it checked */
	unsigned char writes, oflags;
};

/* Walked steps known to be no symlink (a directory or a file the host has), as the
 * kernel's FUSE keeps a lookup for its entry_timeout: for ANSWER_NS, and forgotten at
 * once when the prefixes change and before any call that may change a name (rename,
 * unlink, symlink... let by or sent to Python: see steps_forget). Direct-mapped. */
#define STEPS 4096
struct step {
	unsigned long hash;
	long until;
	unsigned gen; /* steps of an older generation are forgotten */
	size_t len;
	char *path;
};

/* Python's answers to fstat(fd) and newfstatat(fd, "", AT_EMPTY_PATH) on virtual fds,
 * per thread: the C loop writes them itself (umvu_fdstat_set). They go when the fd stops
 * being virtual in some table (umvu_vfd_ref), when the thread exits, and all at once when
 * a module may have changed some metadata (umvu_fdstat_clear). */
#define FDSTATS 256
#define STATSIZE 144 /* struct stat, x86_64 */
#define ANSWER_NS 1000000000L /* answers last 1 s, as FUSE's default attr_timeout */
struct fdstat {
	int tid, fd; /* tid 0: free */
	int close_in_c;
	long until; /* now_ns() after which the stat is not answered */
	unsigned char st[STATSIZE];
};

/* Python's answers to newfstatat(dirfd, name, buf, flags) for the entries of a virtual
 * directory it has just listed to a thread (readdir plus): an open-addressing table
 * keyed by (tid, dirfd, name), dropped as the fstat answers are. */
#define ENTS_CAP 8192 /* slots; filled to 3/4 at most */
struct entstat {
	int tid, fd;          /* tid 0: free, -1: deleted */
	unsigned hash;
	int is_link;
	long until;
	char *name;
	unsigned char st[STATSIZE];
};

#define NIGNORES 5 /* the signals the supervisor ignores (supervisor_ignores, spawn.c) */
#define NFORWARDS 11 /* ... and those it passes on to the guest (supervisor_forwards) */

struct tracer {
	/* per thread, indexed by tid: pid_max + 1 entries each (tables_init) */
	long pid_max;
	unsigned short *tflags;       /* TF_* */
	long *skipret;                /* the result TF_SKIPRET writes at the exit stop */
	unsigned long long *notif_id; /* the notification it waits in (0: none) */
	int *notif_fd;                /* ... on that listener */
	int *notif_nr;                /* ... for that call */
	int *notif_ran;               /* nr + 1 of the last call let by from a notification */

	/* The process tree as the kernel shares state: open addressing by tid, sized to
	 * the live tasks (no growth with pid numbers) */
	struct tree_node *tree;
	unsigned tree_cap, tree_taken; /* slots; slots live or deleted */
	int next_group;

	/* the guest */
	int main_tid, main_status;     /* the first guest process, its status once gone */
	int nthreads;
	int noseccomp;
	int launch_umask;              /* the guest's umask as umvu_launch found it */
	struct umvu_event handed_over; /* the event umvu_run_autonomous stopped at */
	/* the dispositions of the signals the supervisor ignores, the guest's */
	struct sigaction saved_actions[NIGNORES];
	struct sigaction saved_forwards[NFORWARDS];
	int signals_saved;
	/* the last signal the first guest process's leader stopped with (signal-delivery
	 * stop) and who sent it: a signal sent to umvu and to the guest's process group
	 * alike is not passed on a second time (forward_signal) */
	volatile int main_sig, main_sig_pid;
	volatile long main_sig_ns;

	/* How the guest is followed. No module yet (autonomous): clone and exec events are
	 * only news for Python, the tracee goes on at once (Python follows the process
	 * tree without holding anybody). */
	int autonomous;
	/* With modules: clones of a plain or unseen thread, and the exec and exit of an
	 * unseen one, are followed here without Python (umvu_set_lazy): Python adopts such
	 * a thread from the tree when it first needs it (the fork/exec of a shell's
	 * commands costs no Python and no wait for it). */
	int lazy_clone, lazy_exec;
	/* Followed in C alone from the start (no module, no Python), the guest runs without
	 * exec events (one ptrace stop less per exec: the C loop's tree needs them only
	 * when a thread that is not the leader execs, and nobody else does); the
	 * hypervisor asks for them when it starts (umvu_exec_events), before it keeps
	 * anything an exec changes. */
	long full_opts;
	int exec_events_off;
	/* -S: the syscall numbers Python wants at their entry stop (others resume at
	 * once) */
	unsigned char wanted[FASTNR / 8];
	int wanted_set;
	/* numbers every module filter sends to the listener that run as they are unless a
	 * module claims them (umvu_set_let_run) */
	unsigned char let_run[FASTNR / 8];
	int trace_signals; /* signal-delivery stops reach Python (the debug trace) */
	int local_traps;   /* some process has a module's own trap (UMVU_LOCAL_TRAP) */

	/* Waiting. How long the tracer polls for the next stop before it sleeps in waitpid
	 * (ns, 0: never polls; see wait_tracee), and how long the last wait lasted. */
	long spin_ns;
	long last_wait_ns;
	int sigchld_fd;
	int chld_maybe; /* a SIGCHLD came since waitpid(-1) last found nothing */
	/* Python waits on other things too (calls that wait: umvu_poll, umvu_wait_fd):
	 * then next_event does not sleep but says "nothing now", and the epoll fd
	 * wait_epfd (SIGCHLD's signalfd and every listener) tells when to ask again. */
	int nowait;
	int wait_epfd;
	/* an eventfd in wait_epfd: made readable when a wait for one tracee (Python's
	 * unpark, an injected call) may have taken the SIGCHLD or a notification that was
	 * to wake the loop sleeping on wait_epfd, or an event was queued meanwhile */
	int kick_fd;
	/* notifications for Python taken while waiting for one thread (umvu_inject...) */
	struct umvu_event *queued;
	int nqueued, queued_cap;

	/* Seccomp user notifications: the path calls the C loop decides (pathfast) reach
	 * it as notifications, not ptrace stops (umvu_listener_add): the thread waits in
	 * the kernel, the C loop reads its path and lets the call run (or answers it) with
	 * one ioctl, about four times cheaper than a ptrace stop. A call Python must see
	 * comes to it as an ordinary syscall event ("notif" set); answering it by a result
	 * or running it natively answers the notification; anything else (new arguments,
	 * an injection, an exit stop) first turns it into a ptrace syscall-entry stop
	 * (notif_stop). */
	int *listeners; /* one per filter stacked with a listener, while it has users */
	struct pollfd *pollfds;
	int nlisteners, listeners_cap;
	unsigned char notif_nrs[FASTNR / 8]; /* the numbers some listener is sent */

	/* fd fast path: fd_arg_of[nr] is the index of the fd argument of an fd-choice
	 * syscall (0xff: none); vfd_count[fd] counts the fd tables in which fd is virtual.
	 * A seccomp stop for such a syscall on an fd virtual nowhere resumes at once,
	 * without Python. */
	unsigned char fd_arg_of[FASTNR];
	unsigned int vfd_count[FASTFD];
	unsigned int vfd_total; /* the sum of vfd_count */
	int fastpath;
	/* SCM_RIGHTS (umvu.core.scmrights): sendmsg/recvmsg on real sockets are traced
	 * (scm_watch) and run natively unless a virtual fd may be sent (some fd is
	 * virtual, the message has control data) or received (scm_inflight files are on
	 * their way) */
	int scm_watch, scm_inflight;

	/* path fast path */
	struct path_desc path_of[FASTNR];
	char *prefixes;   /* NUL-separated canonical paths, "" ends the list */
	int pathfast;
	int virtual_cwds; /* > 0: some thread's cwd is not the kernel's */
	struct step steps[STEPS];
	unsigned steps_gen;
	/* the calls that change the file system the C loop makes itself (hostwrites.c):
	 * on or off, and the generation of what it knows of the callers */
	int cwrites;
	unsigned callers_gen;

	/* Python's answers the C loop gives */
	struct fdstat fdstats[FDSTATS];
	int nfdstats; /* slots used (some may be free again): the scan's end */
	struct entstat *ents;
	int nents, ents_taken;             /* live answers; slots live or deleted */
	unsigned char ent_fds[FASTFD / 8]; /* dirfds that may have answers */
	/* closes of such fds Python allowed (close_in_c) run at once; Python unbinds the
	 * fds from its tables (umvu_closed_take) before it handles the next event */
	int closed[2 * UMVU_CLOSED_MAX]; /* (tid, fd) pairs */
	int nclosed;
};

#pragma GCC visibility push(hidden)
extern struct tracer tr;
#pragma GCC visibility pop

#endif
