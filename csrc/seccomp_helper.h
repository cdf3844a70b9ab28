/*
 * Interface of the umvu tracer core (libumvutracer.so, from the C files of csrc but
 * ext2_helper.c and umvu_main.c; tracer_internal.h says which file holds what); also
 * parsed by cffi (keep it plain C).
 *
 * The tracer core: everything about ptrace and seccomp that needs no decision.
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
#define UMVU_NOSECCOMP        1
#define UMVU_NOFILTER         8 /* no filter until a vu_* command knocks (umvu_knock) */
#define UMVU_DEFAULT_SPIN_NS  50000 /* umvu_launch's polling on more than one CPU */
#define UMVU_KNOCK_COOKIE     0x756d76756b6e6f63
#define UMVU_CLOSED_MAX       512 /* closes the C loop lets by before Python takes them */
#define UMVU_LOCAL_TRAP       0x4c54 /* SECCOMP_RET_DATA of a module's per-process trap
                                      * (umvu_local_traps): its stops are Python's */

#define UMVU_EV_SYSCALL      1 /* seccomp stop, or syscall-entry stop with -S */
#define UMVU_EV_SYSCALL_EXIT 2 /* exit stop asked for by umvu_sys_native/skip */
#define UMVU_EV_CLONE        3 /* fork/vfork/clone: msg = child tid */
#define UMVU_EV_EXEC         4 /* exec done: msg = former tid */
#define UMVU_EV_EXITED       5 /* tracee gone: status as from waitpid */
#define UMVU_EV_ABI32        6 /* a non-x86_64 syscall (int 0x80, x32) */
#define UMVU_EV_BOUNDARY     7 /* syscall entry/exit stop asked for by umvu_want_boundary */
#define UMVU_EV_KNOCK        8 /* umvu_knock(): the next boundary of tid will stop;
                                  * msg 1: a module is about to be loaded */
#define UMVU_EV_SIGNAL       9 /* umvu_trace_signals(1): a signal-delivery stop, msg = the
                                  * signal; umvu_resume(tid, msg) delivers it */

struct umvu_event {
	int kind;
	int tid;
	int status;
	long msg;
	unsigned long clone_flags;
	long nr;
	unsigned long args[6];
	long ret;
	unsigned long ip;
	unsigned long sp;
	int resumed; /* clone/exec event the C loop already resumed (umvu_set_autonomous) */
	int closed;  /* closes the C loop let by since the last umvu_closed_take (first!) */
	int notif;   /* the thread waits in a seccomp notification, not a ptrace stop */
};

struct user_regs_struct;

int umvu_spawn(char *const argv[], const unsigned char *bitmap, int nbits, int flags,
               int guest_umask);
int umvu_next(struct umvu_event *ev);
int umvu_clone_done(int parent, int child);
int umvu_resume(int tid, int sig);
int umvu_want_boundary(int tid);
int umvu_boundary_done(int tid, int do_resume);
int umvu_sys_native(int tid, int want_exit);
int umvu_sys_skip(int tid, long retval, int want_exit);
int umvu_sys_set(int tid, long nr, const unsigned long args[6]);
int umvu_sys_set_return(int tid, long retval);
long umvu_inject(int tid, long nr, const unsigned long args[6]);
long umvu_peek(int tid, unsigned long guest_addr, void *buf, unsigned long len);
long umvu_peekstr(int tid, unsigned long guest_addr, char *buf, unsigned long maxlen);
long umvu_poke(int tid, unsigned long guest_addr, const void *buf, unsigned long len);
int umvu_interrupt(int tid);
int umvu_build_filter(const unsigned char *bitmap, const unsigned char *notif, int nbits,
                      void *out, int max_insns);
int umvu_build_fd_filter(const unsigned char *fd_arg_table, int n, int fd, void *out,
                         int max_insns);
long umvu_raw_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5);
int umvu_set_fastpath(const unsigned char *table, int n, int enable);
int umvu_vfd_ref(int fd, int delta);
int umvu_set_scm(int watch, int inflight);
int umvu_fdstat_set(int tid, int fd, const void *st, int len, int close_in_c);
int umvu_closed_take(int *out, int max);
int umvu_entstat_set(int tid, int dirfd, const char *name, int namelen, const void *st,
                     int len, int is_link);
int umvu_fdstat_clear(void);
int umvu_set_pathfast(const unsigned char *table, int n, const char *prefixes_in, int len,
                      int enable);
int umvu_set_virtual_cwds(int n);
int umvu_steps_forget(void);
int umvu_callers_forget(void);
int umvu_set_cwrites(int on);
int umvu_set_wanted(const unsigned char *bitmap, int nbits, int enable);
int umvu_set_let_run(const unsigned char *bitmap, int nbits);
int umvu_trace_signals(int on);
int umvu_local_traps(int on);
int umvu_siginfo(int tid, void *buf128);
int umvu_set_autonomous(int on);
int umvu_run_autonomous(struct umvu_event *ev);
int umvu_handed_over(struct umvu_event *ev);
int umvu_launch(char *const argv[], int no_seccomp, int follow_in_c, long spin);
int umvu_guest_umask(void);
int umvu_exit_code(void);
int umvu_main_running(void);
int umvu_tree_rows(int *out, int max, int unseen_only);
int umvu_set_plain(int tid, int on);
int umvu_plain_reset(void);
int umvu_set_lazy(int clone_on, int exec_on);
int umvu_exec_events(void);
int umvu_restore_signals(void);
int umvu_knock(int module_next);
int umvu_listener_add(int tgid, int guest_fd, const unsigned char *notif, int nbits);
int umvu_notif_addfd(int tid, int host_fd, int flags);
int umvu_sys_park(int tid);
int umvu_sys_unpark(int tid);
int umvu_sys_reenter(int tid, long nr, const unsigned long args[6]);
int umvu_sys_interrupted(int tid, long nr, const unsigned long args[6]);
int umvu_poll(struct umvu_event *ev);
int umvu_wait_fd(void);
