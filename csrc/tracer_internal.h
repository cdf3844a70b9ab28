/*
 * The tracer core (libumvutracer.so), file by file:
 *  - tracer_state.c    the state's one instance and its per-thread tables
 *  - spawn.c           starting the guest, the signals the supervisor ignores, the
 *                      autonomous run, the exit code
 *  - tree.c            the process tree, and the exec events of the threads followed in
 *                      C alone (lazy following)
 *  - stops.c           waiting for tracees and the stops they report (umvu_next); the
 *                      knock
 *  - control.c         what Python does with a stopped thread: resume, run natively,
 *                      skip, change, inject, park (calls that wait)
 *  - seccomp_helper.c  the seccomp filters and the user-notification listeners
 *  - pathwalk.c        the calls the C loop decides alone: the fd and path fast paths
 *  - hostwrites.c      the calls that change the file system it makes itself
 *  - answers.c         Python's fstat/newfstatat answers, the closes it lets by
 *  - memory.c          the guest's memory
 * This header holds what they share besides the public interface (seccomp_helper.h) and
 * the state (tracer_state.h); include it after the system headers (it defines what older
 * ones lack). Nothing declared here leaves the library: only the umvu_* functions are
 * exported.
 */
#ifndef UMVU_TRACER_INTERNAL_H
#define UMVU_TRACER_INTERNAL_H

#include <sys/types.h>
#include <sys/user.h>
#include <time.h>

#include "tracer_state.h"

#ifndef PTRACE_GET_SYSCALL_INFO
#define PTRACE_GET_SYSCALL_INFO 0x420e
#endif
#ifndef PTRACE_EVENT_STOP
#define PTRACE_EVENT_STOP 128
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif
#define ERESTARTSYS    512 /* the kernel's own restart codes (not in userspace headers) */
#define ERESTARTNOINTR 513

#define MAXPROG 4096 /* instructions of a filter */
#define BIT(map, i) ((map)[(i) / 8] & (1 << ((i) % 8)))

struct sock_filter;

static inline int tid_ok(int tid) { return tid > 0 && tid <= tr.pid_max; }

static inline long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000L + t.tv_nsec;
}

static inline int at_notif(int tid)
{
	return tr.nlisteners && tid_ok(tid) && tr.notif_id[tid] != 0;
}

#pragma GCC visibility push(hidden)

/* tracer_state.c */
int tables_init(void);

/* tree.c */
void tree_del(int tid);
struct tree_node *tree_new(int tid, int tgid);
void tree_clone(int parent, int child, unsigned long flags);
void tree_exec(int tid, int former);
int tree_tgid(int tid);
int restore_opts(int tid);
void child_lacks(int child, int lacked);
int drop_exec_ok(void);
void exec_events_now(int tid);

/* stops.c */
void queue_event(const struct umvu_event *ev);
void kick_loop(void);
void exited_meanwhile(int tid, int status);
pid_t wait_tracee(pid_t which, int *status, struct umvu_event *ev);

/* control.c */
void resume(int tid, int sig);
int wait_stopped(int tid, int *status);
int wait_op(int tid, int want_op, int *pending_sig);
void hold_signal(int tid, int sig);
int take_reinjected(int tid, int sig);
void resend_signal(int tid, int sig);
int rerun_to_entry(int tid, struct user_regs_struct *r, int *pending_sig);
void entry_reached(int tid, int pending_sig, int pass);

/* seccomp_helper.c */
int build_filter(struct sock_filter *prog, const unsigned char *bitmap,
		 const unsigned char *notif, int nbits);
int notif_answer(int tid, long retval, int run);
int sigchld_init(void);
int notif_poll(int block, struct umvu_event *ev);
void restart_notified(int tid);
int notif_stop(int tid);

/* pathwalk.c */
#define WALK_MAX 8192
int decide_in_c(int tid, const struct umvu_event *ev);
int in_prefix(const char *path, size_t n);
int above_prefix(const char *path, size_t n);
int walk_outside(int tid, char *cur, size_t curlen, const char *path, int *complete);
int walk_start(int tid, int dirfd, const char *path, char *cur, size_t *curlen);
void steps_forget(void);
void step_forget(const char *path, size_t n);

/* hostwrites.c */
int host_write_in_c(int tid, const struct umvu_event *ev);
void callers_forget(void);
void callers_new(int tid);
void callers_call(int tid, long nr);

/* answers.c */
void fdstat_drop(int tid, int fd);
int answer_in_c(int tid, const struct umvu_event *ev);

#pragma GCC visibility pop

#endif
