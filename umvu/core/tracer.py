"""The one Python module that talks to the C tracer (cffi); nothing else uses cffi.

Every method takes guest-side values (``tid``, ``guest_addr``) and raises ``OSError``
with the errno the guest should see (EFAULT for unreadable guest memory).
"""
from __future__ import annotations

import errno
import os

from umvu.core._tracer import ffi, lib

EV_SYSCALL = lib.UMVU_EV_SYSCALL
EV_SYSCALL_EXIT = lib.UMVU_EV_SYSCALL_EXIT
EV_CLONE = lib.UMVU_EV_CLONE
EV_EXEC = lib.UMVU_EV_EXEC
EV_EXITED = lib.UMVU_EV_EXITED
EV_ABI32 = lib.UMVU_EV_ABI32
EV_BOUNDARY = lib.UMVU_EV_BOUNDARY
EV_KNOCK = lib.UMVU_EV_KNOCK
EV_SIGNAL = lib.UMVU_EV_SIGNAL
LOCAL_TRAP = lib.UMVU_LOCAL_TRAP
DEFAULT_SPIN_NS = lib.UMVU_DEFAULT_SPIN_NS

PATH_MAX = 4096


def _check(ret: int) -> int:
    if ret < 0:
        raise OSError(-ret, os.strerror(-ret))
    return ret


class Tracer:
    """Drives the guest tree. ``event`` is refilled in place by :meth:`next`."""

    def __init__(self) -> None:
        self.event = ffi.new("struct umvu_event *")
        self._buf = ffi.new("char[]", PATH_MAX + 1)
        self._args = ffi.new("unsigned long[6]")

    def launch(self, argv: list[bytes], noseccomp: bool, follow_in_c: bool,
               spin_ns: int) -> int:
        """Start the guest (see umvu_launch). umvu ignores SIGINT, SIGQUIT and the stop
        signals from now on (restore_signals gives its own dispositions back); the guest
        has umvu's."""
        c_args = [ffi.new("char[]", a) for a in argv]
        c_argv = ffi.new("char *[]", c_args + [ffi.NULL])
        return _check(lib.umvu_launch(c_argv, int(noseccomp), int(follow_in_c), spin_ns))

    def take_handed_over(self) -> None:
        """The event the C loop stopped at before this interpreter started."""
        lib.umvu_handed_over(self.event)

    @staticmethod
    def guest_umask() -> int:
        return lib.umvu_guest_umask()

    @staticmethod
    def main_running() -> bool:
        """Whether the first guest process (the session's command) is still alive."""
        return bool(lib.umvu_main_running())

    @staticmethod
    def exit_code() -> int:
        """The first guest process's status as a shell reports it."""
        return lib.umvu_exit_code()

    def next(self) -> bool:
        """Wait for the next event Python must handle; False when no tracee is left."""
        return _check(lib.umvu_next(self.event)) == 1

    def restore_signals(self) -> None:
        lib.umvu_restore_signals()

    def run_autonomous(self) -> bool:
        """Follow the guest in C alone (no module loaded, autonomous on) until an event
        needs Python (True: it is in ``event``) or no tracee is left (False)."""
        return _check(lib.umvu_run_autonomous(self.event)) == 1

    def tree_rows(self, unseen_only: bool = False) -> list[tuple[int, int, int, int, int]]:
        """Live tasks as (tid, tgid, fs group, files group, vm group), the groups being
        the state they share as the kernel shares it. unseen_only: only the threads the
        C loop followed alone (see set_lazy), which are Python's to know from now on."""
        size = 256
        while True:
            out = ffi.new("int[]", 5 * size)
            n = lib.umvu_tree_rows(out, size, int(unseen_only))
            if n <= size:
                return [tuple(out[5 * i:5 * i + 5]) for i in range(n)]
            size = n + 64

    def set_plain(self, tid: int, on: bool) -> None:
        """Whether a clone of tid may be followed by the C loop alone (set_lazy)."""
        lib.umvu_set_plain(tid, int(on))

    def plain_reset(self) -> None:
        """No thread is plain any more."""
        lib.umvu_plain_reset()

    def exec_events(self) -> None:
        """Every thread reports its execs from now on (followed in C alone, the guest
        ran without exec events)."""
        lib.umvu_exec_events()

    def set_lazy(self, clone: bool, exec_: bool) -> None:
        """clone: a clone by a plain or unseen thread is followed in C alone, its child
        unseen; exec_: so is the exec of an unseen thread (its exit always is)."""
        lib.umvu_set_lazy(int(clone), int(exec_))

    def args(self) -> tuple[int, ...]:
        return tuple(self.event.args)

    def clone_done(self, parent_tid: int, child_tid: int) -> None:
        lib.umvu_clone_done(parent_tid, child_tid)

    def resume(self, tid: int, sig: int = 0) -> None:
        lib.umvu_resume(tid, sig)

    def want_boundary(self, tid: int) -> None:
        lib.umvu_want_boundary(tid)

    def boundary_done(self, tid: int, resume: bool = True) -> None:
        lib.umvu_boundary_done(tid, resume)

    def native(self, tid: int, want_exit: bool = False) -> None:
        lib.umvu_sys_native(tid, want_exit)

    def skip(self, tid: int, retval: int, want_exit: bool = False) -> None:
        lib.umvu_sys_skip(tid, retval, want_exit)

    def set_syscall(self, tid: int, nr: int, args) -> None:
        for i, a in enumerate(args):
            self._args[i] = a & 0xFFFFFFFFFFFFFFFF
        _check(lib.umvu_sys_set(tid, nr, self._args))

    def set_return(self, tid: int, retval: int) -> None:
        _check(lib.umvu_sys_set_return(tid, retval))

    def inject(self, tid: int, nr: int, *args: int) -> int:
        """Run syscall ``nr`` in the stopped tracee; returns its raw result."""
        for i in range(6):
            self._args[i] = (args[i] if i < len(args) else 0) & 0xFFFFFFFFFFFFFFFF
        return lib.umvu_inject(tid, nr, self._args)

    def peek(self, tid: int, guest_addr: int, size: int) -> bytes:
        if size == 0:
            return b""
        buf = ffi.new("char[]", size)
        n = lib.umvu_peek(tid, guest_addr, buf, size)
        if n != size:
            raise OSError(errno.EFAULT, "bad guest address")
        return ffi.buffer(buf, size)[:]

    def peekstr(self, tid: int, guest_addr: int, maxlen: int = PATH_MAX) -> bytes:
        """A NUL-terminated guest string; ENAMETOOLONG if longer than maxlen - 1."""
        if guest_addr == 0:
            raise OSError(errno.EFAULT, "NULL guest address")
        buf = self._buf if maxlen <= PATH_MAX + 1 else ffi.new("char[]", maxlen)
        n = _check(lib.umvu_peekstr(tid, guest_addr, buf, maxlen))
        return ffi.buffer(buf, n)[:]

    def poke(self, tid: int, guest_addr: int, data: bytes) -> None:
        if not data:
            return
        n = lib.umvu_poke(tid, guest_addr, data, len(data))
        if n != len(data):
            raise OSError(errno.EFAULT, "bad guest address")

    def set_fastpath(self, fd_arg_of: bytes, enable: bool) -> None:
        """fd_arg_of[nr]: index of the fd argument (255: none) of syscalls the C loop may
        resume by itself when that fd is virtual in no fd table."""
        lib.umvu_set_fastpath(fd_arg_of, len(fd_arg_of), int(enable))

    def set_scm(self, watch: bool, inflight: int) -> None:
        """sendmsg/recvmsg on real sockets come to Python only when a virtual fd may be
        sent, or received (inflight: virtual files on their way; umvu.core.scmrights)."""
        lib.umvu_set_scm(int(watch), inflight)

    def set_pathfast(self, table: bytes, prefixes: list[bytes], enable: bool) -> None:
        """table: 6 bytes per syscall number (path, dirfd, path2, dirfd2 argument indexes,
        255: none; bits: 1 a NULL path means the dirfd itself, 2 getcwd, 4 the call writes;
        the index of the open flags argument, 255: none) of the path syscalls the C loop
        may resume by itself when no path walk enters one of the prefixes (and the call,
        by its row or its open flags, does not write)."""
        blob = b"".join(p + b"\0" for p in prefixes) + b"\0"
        _check(lib.umvu_set_pathfast(table, len(table) // 6, blob, len(blob), int(enable)))

    def set_wanted(self, bitmap: bytes, enable: bool) -> None:
        """-S: the syscall numbers whose entry stops Python wants (the others resume in
        the C loop); virtual numbers and foreign ABIs always come."""
        lib.umvu_set_wanted(bitmap, len(bitmap) * 8, int(enable))

    def trace_signals(self, on: bool) -> None:
        """Signal-delivery stops as EV_SIGNAL events (resume(tid, sig) delivers)."""
        lib.umvu_trace_signals(int(on))

    def local_traps(self, on: bool) -> None:
        """Seccomp stops of UMVU_LOCAL_TRAP filters (ModuleAPI.trap_in_process) are
        Python's, never the C loop's to decide."""
        lib.umvu_local_traps(int(on))

    def siginfo(self, tid: int) -> bytes:
        """The siginfo_t (128 bytes) of tid's signal-delivery stop."""
        buf = ffi.new("char[128]")
        _check(lib.umvu_siginfo(tid, buf))
        return bytes(ffi.buffer(buf, 128))

    def set_let_run(self, bitmap: bytes) -> None:
        """The numbers the C loop lets run as they come (no module claims them)."""
        lib.umvu_set_let_run(bitmap, len(bitmap) * 8)

    def set_autonomous(self, on: bool) -> None:
        """on: the C loop resumes tracees at clone and exec events by itself (the events
        still come, marked ``resumed``): for while no module needs to act on them."""
        lib.umvu_set_autonomous(int(on))

    def set_virtual_cwds(self, n: int) -> None:
        lib.umvu_set_virtual_cwds(n)

    def steps_forget(self) -> None:
        """A name just changed: the C walk forgets the steps it knew no symlink."""
        lib.umvu_steps_forget()

    def callers_forget(self) -> None:
        """A guest's umask or ids may have changed: the C loop reads them again."""
        lib.umvu_callers_forget()

    def set_cwrites(self, enable: bool) -> None:
        """Whether the C loop makes the calls that change the file system it can."""
        lib.umvu_set_cwrites(int(enable))

    def vfd_ref(self, guest_fd: int, delta: int) -> None:
        lib.umvu_vfd_ref(guest_fd, delta)

    def fdstat_set(self, tid: int, guest_fd: int, stat_bytes: bytes,
                   close_in_c: bool) -> None:
        """From now on the C loop answers tid's fstat(guest_fd) and newfstatat(guest_fd,
        "", AT_EMPTY_PATH) with stat_bytes (a struct stat); forgotten when guest_fd stops
        being virtual in some table (vfd_ref) or tid exits. close_in_c: tid's close of
        guest_fd runs at once too, the C loop counting it out (see closed_take)."""
        _check(lib.umvu_fdstat_set(tid, guest_fd, stat_bytes, len(stat_bytes),
                                   int(close_in_c)))

    def entstat_set(self, tid: int, dirfd: int, name: bytes, stat_bytes: bytes,
                    is_link: bool) -> None:
        """From now on the C loop answers tid's newfstatat(dirfd, name) with stat_bytes
        (only with AT_SYMLINK_NOFOLLOW if is_link); dropped as fdstat_set's answers."""
        _check(lib.umvu_entstat_set(tid, dirfd, name, len(name), stat_bytes,
                                    len(stat_bytes), int(is_link)))

    def closed_take(self) -> list[tuple[int, int]]:
        """The (tid, guest_fd) of the closes the C loop let by: each fd is no longer
        virtual in tid's table (already counted out of vfd_ref's counts). Take them
        before handling an event whose ``closed`` is not 0."""
        out = ffi.new("int[]", 2 * lib.UMVU_CLOSED_MAX)
        n = lib.umvu_closed_take(out, lib.UMVU_CLOSED_MAX)
        return [(out[2 * i], out[2 * i + 1]) for i in range(n)]

    def fdstat_clear(self) -> None:
        lib.umvu_fdstat_clear()

    def listener_add(self, tgid: int, guest_fd: int, notif_bitmap: bytes) -> None:
        """The filter just stacked into process tgid sends the calls of notif_bitmap to
        its listener, guest_fd in the guest: the C loop takes a copy (the guest must close
        its own)."""
        _check(lib.umvu_listener_add(tgid, guest_fd, notif_bitmap, len(notif_bitmap) * 8))

    def grant_fd(self, tid: int, host_fd: int, flags: int) -> int | None:
        """tid (at a notification) gets a new fd of its own for host_fd's open file
        (O_CLOEXEC from flags), its call still to be answered (skip with the number):
        the number; None when tid is at a ptrace stop, not a notification (the call must
        then make the fd itself)."""
        ret = lib.umvu_notif_addfd(tid, host_fd, flags)
        if ret == -errno.EAGAIN:
            return None
        return _check(ret)

    def interrupt(self, tid: int) -> None:
        lib.umvu_interrupt(tid)

    # calls that wait (see umvu.core.waiting)
    def park(self, tid: int) -> None:
        """At tid's syscall stop (or the exit stop of its earlier park): it waits in
        pause(2) until unparked, or until a signal brings its exit stop."""
        _check(lib.umvu_sys_park(tid))

    def unpark(self, tid: int) -> None:
        """The wait of parked tid is over: it is at the exit stop of its pause after."""
        _check(lib.umvu_sys_unpark(tid))

    def reenter(self, tid: int, nr: int, args) -> None:
        """At a parked thread's exit stop: back at the entry stop of call nr(args)."""
        for i, a in enumerate(args):
            self._args[i] = a & 0xFFFFFFFFFFFFFFFF
        _check(lib.umvu_sys_reenter(tid, nr, self._args))

    def interrupted(self, tid: int, nr: int, args) -> None:
        """At a parked thread's exit stop that a signal brought: call nr(args) answers
        -ERESTARTSYS (restarted, or EINTR under a handler without SA_RESTART)."""
        for i, a in enumerate(args):
            self._args[i] = a & 0xFFFFFFFFFFFFFFFF
        _check(lib.umvu_sys_interrupted(tid, nr, self._args))

    def poll(self) -> int:
        """The next event if one is there now: 1 (in ``event``), 2 none now (wait for
        wait_fd), 0 no tracee left."""
        return _check(lib.umvu_poll(self.event))

    @staticmethod
    def wait_fd() -> int:
        """Readable when poll may have an event."""
        return _check(lib.umvu_wait_fd())


MAX_INSNS = 4096


def _bpf(build, *args) -> bytes:
    """The BPF program (struct sock_filter[]) a umvu_build_*filter function writes."""
    out = ffi.new("unsigned char[]", 8 * MAX_INSNS)
    n = _check(build(*args, out, MAX_INSNS))
    return ffi.buffer(out, 8 * n)[:]


def build_filter(filter_bitmap: bytes, notif_bitmap: bytes | None = None) -> bytes:
    """The BPF program for a syscall bitmap: TRACE, or USER_NOTIF for the numbers also in
    notif_bitmap (a bitmap as long; None: no notification)."""
    return _bpf(lib.umvu_build_filter, filter_bitmap,
                ffi.NULL if notif_bitmap is None else notif_bitmap, len(filter_bitmap) * 8)


def knock(module_next: bool = False) -> None:
    """From a guest process, before its first virtual syscall: wake the hypervisor, which
    gives the process a seccomp filter (a guest starts without one while no module is
    loaded); module_next: a module is about to be loaded, so that filter is already the
    modules' one (one filter per process, not two stacked). Outside umvu nothing
    happens."""
    lib.umvu_knock(int(module_next))


def raw_syscall(nr: int, *args) -> int:
    """Make a system call from this process; bytes arguments are passed as pointers to
    copies, bytearray arguments as writable buffers. Returns the result or -errno."""
    keep = []
    c_args = []
    for a in args:
        if isinstance(a, (bytes, bytearray)):
            buf = ffi.from_buffer(a) if isinstance(a, bytearray) else ffi.new("char[]", a)
            keep.append(buf)
            c_args.append(int(ffi.cast("long", buf)))
        else:
            c_args.append(a)
    c_args += [0] * (6 - len(c_args))
    return lib.umvu_raw_syscall(nr, *c_args)


def build_fd_filter(fd_arg_table: bytes, guest_fd: int) -> bytes:
    """The BPF program that traps the calls of fd_arg_table (nr -> index of the fd
    argument, 255: none) made on guest_fd, and allows everything else."""
    return _bpf(lib.umvu_build_fd_filter, fd_arg_table, len(fd_arg_table), guest_fd)
