"""The dispatch loop: gets the stops the C tracer cannot decide and answers them.

Each syscall row's *choice* picks a handler (path, fd, mount, virtual...). A handler
returns an action (see umvu.core.vfs): run natively, skip with a result, or run natively
with rewritten arguments and an exit callback. Handler exceptions become results in
exactly one place (umvu.core.errors.call_to_retval).

A guest followed in C starts with no seccomp filter at all; the first vu_* command
knocks (a queued SIGURG with a cookie, seen at its signal-delivery stop), and the
hypervisor gives every process the core's filter (the virtual syscalls); with -S or -d s
the guest starts with that filter. Loading a module widens it by stacking a further
filter into every process (an injected ``seccomp(SET_MODE_FILTER, TSYNC)``), each at its
next syscall boundary.
"""
from __future__ import annotations

import errno
import os
import signal
import time
from types import CoroutineType

from umvu.api import implements
from umvu.core import syscalls
from umvu.core.abi import O_CLOEXEC
from umvu.core.actions import PASS, Native
from umvu.core.credentials import ROOT, as_caller
from umvu.core.errors import RESTARTS, call_to_retval
from umvu.core.filters import REFUSED, SETID, Filters
from umvu.core.guests import Guests
from umvu.core.handoff import Handoff
from umvu.core.log import log
from umvu.core.modapi import ModuleAPI
from umvu.core.mounts import proc_mounts as render_proc_mounts
from umvu.core.process import Observers, ProcessTable
from umvu.core.registry import LOCAL_HOOK, NOTIFY_HOOK, Responsibility
from umvu.core.trace import NO_RETURN, CallFormatter
from umvu.core.tracer import (EV_ABI32, EV_BOUNDARY, EV_CLONE, EV_EXEC, EV_EXITED, EV_KNOCK,
                              EV_SIGNAL, EV_SYSCALL, EV_SYSCALL_EXIT, Tracer)
from umvu.core.vfs import VirtualFS
from umvu.core.vsys import VirtualSyscalls
from umvu.core.waiting import Waits, drive


class Hypervisor(Guests, Filters):
    def __init__(self, noseccomp: bool = False, debugtags: str = "",
                 view_name: bytes = b"", tracer: Tracer | None = None) -> None:
        # noseccomp (-S): no filter; every syscall stops (PTRACE_SYSCALL entry and exit
        # stops) and goes through the dispatcher
        self.noseccomp = noseccomp
        self.debugtags = set(debugtags)
        self.view_name = view_name
        self.tracer = tracer if tracer is not None else Tracer()
        self.formatter = CallFormatter(self.tracer)
        self.table = Responsibility()
        self.modules: dict[str, object] = {}
        self.api = ModuleAPI(self)
        self.vfs = VirtualFS(self)
        self.handoff = Handoff(self.tracer, self.scratch)
        obs = Observers()
        obs.vfd_count = self.tracer.vfd_ref
        obs.vfd_added = self.on_vfd_added
        obs.virtual_cwds = self.tracer.set_virtual_cwds
        obs.cwd_went_virtual = self.on_fs_virtual
        obs.data_changed = self.on_data_changed
        self.procs = ProcessTable(release=self.vfs.release, obs=obs)
        self.table.on_change = self.update_pathfast
        self.vsys = VirtualSyscalls(self)
        self.waits = Waits(self)
        self.cur_tid = 0
        self.stopped_tid = 0  # the thread at the syscall stop being handled (0: none)
        self._pending_exit: dict[int, tuple] = {}
        # the debug trace: each call's stack pointer at its entry (rt_sigreturn's mask),
        # and the module service that answered it (the line says who did)
        self._trace_sp: dict[int, int] = {}
        self._trace_svc: dict[int, object] = {}
        self._granted = 0  # (the fd the last grant gave)
        self.tracer.trace_signals("s" in self.debugtags)
        self._abi32_warned: set[int] = set()
        # the filter: numbers traced, and its generation (processes catch up lazily)
        self.filter_numbers: set[int] = set()
        self.filter_gen = 0
        # threads the C loop may follow alone (Tracer.set_lazy): clones of plain threads,
        # their children till an event of theirs needs Python (UMVU_LAZY=0: never)
        self.lazy = not noseccomp and os.environ.get("UMVU_LAZY", "1") != "0"
        # the numbers the C loop decides (update_pathfast): they reach it as seccomp
        # notifications, not ptrace stops (UMVU_NOTIF=0: as stops)
        self.notif_numbers: set[int] = set()
        self.notif_ok = not noseccomp and os.environ.get("UMVU_NOTIF", "1") != "0"
        self.listeners_made = False  # then EBUSY means a listener in the stack already
        # fd syscalls trap only on the fds virtual in the caller's fd table (a filter per
        # such fd, see on_vfd_added), not by number; -d s shows every fd call instead
        self.fd_filtering = not noseccomp and "s" not in self.debugtags and \
            os.environ.get("UMVU_FDFILTER", "1") != "0"
        self.fd_arg_table = bytes([255]) * syscalls.NBITS
        self.fdstat_enabled = False  # see update_fastpath
        self._choice = {
            "path": self.vfs.on_path, "path2": self.vfs.on_path2, "fd": self.vfs.on_fd,
            "fd2": self.vfs.on_fd2, "mmap": self.on_mmap, "ioctl": self.vfs.on_fd,
            "mount": self.vsys.on_mount, "umount": self.vsys.on_umount,
            "virtual": self.vsys.on_virtual, "sockaddr": self.vfs.on_sockaddr,
        }
        self._by_name = {"getcwd": self.on_getcwd, "umask": self.on_umask,
                         "msync": self.vfs.on_msync_munmap,
                         "munmap": self.vfs.on_msync_munmap,
                         "execve": self.vfs.on_path, "execveat": self.vfs.on_path,
                         "epoll_ctl": self.vfs.on_epoll_ctl, "sync": self.vsys.on_sync}
        for name in SETID:
            self._by_name[name] = self.on_setid
        for name in REFUSED:
            self._by_name[name] = self.on_refused
        self._refused_said: set = set()  # (tgid, name) already in the log
        self.hooks: dict = {}  # syscall number -> service (ModuleAPI.claim_syscalls)
        self.notif_hooks: set = set()  # of those, the ones claimed with notify
        self.local_hooks: set = set()  # ... and with local (ModuleAPI.trap_in_process)
        self.exec_hooks: list = []  # ModuleAPI.on_exec callbacks
        self.shared_maps: list = []  # vfs.SharedMap of live MAP_SHARED mappings
        self.shared_maps_made = False  # since then msync and munmap are traced
        self._exec_dir: str | None = None  # host copies of executed virtual files
        self._alias_dir: bytes | None = None  # see alias_of
        self._placeholder: bytes | None = None  # see placeholder_dir
        self.command_over = False  # the first guest process exited (Module.command_ended)

    # ------------------------------------------------------------- lifecycle
    def run(self, launch) -> int:
        """Supervise the guest ``launch`` started (and followed in C until an event
        needed the hypervisor: that event waits in the tracer) to its end; returns the
        exit status a shell would report."""
        # SIGCHLD is the tracer's (waited for, or read from a signalfd): blocked before
        # any thread of umvu's or of a module's starts, so that every thread inherits
        # the block and none takes a SIGCHLD that should wake the loop
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        if "s" in self.debugtags:
            self.trace_note()
        try:
            self.tracer.exec_events()  # before anything an exec changes is kept
            self.procs.adopt(self.tracer.tree_rows(), launch.guest_umask)
            self.set_lazy()
            if not launch.filtered:  # the guest has no filter yet: each process needs one
                self.new_filter_gen()
            self.update_fastpath()
            if launch.follow_in_c:
                self._dispatch(self.tracer.event)
            self._loop()
        finally:
            launch.restore()
            self.unload_all()
        return launch.exit_code()

    def unload_all(self) -> None:
        self.vfs.writeback_all()
        for sm in self.shared_maps:
            os.close(sm.memfd)
        self.shared_maps.clear()
        for made in (self._exec_dir, self._alias_dir):
            if made is not None:
                import shutil
                shutil.rmtree(made, ignore_errors=True)
        for e in list(self.table.entries)[::-1]:  # newest first: stacked mounts
            if e.mounted and not e.alias:             # go before what they stand on
                call_to_retval(e.module.umount, e.service, 0)
            if e in self.table.entries:
                self.table.remove(e)
        for name in list(self.modules)[::-1]:
            call_to_retval(self.modules.pop(name).cleanup)

    def _loop(self) -> None:
        """The event loop: plain (in the loop greenlet) until a call waits or a module
        wants trio, then on trio (umvu.core.waiting)."""
        waits = self.waits
        timed = os.environ.get("UMVU_EVTIME")
        wait = waits.run_plain(
            (lambda: self._timed_loop(timed)) if timed else self._plain_loop)
        if wait is not None or waits.trio_wanted:
            waits.run_trio(self._trio_loop, wait)

    def _plain_loop(self) -> None:
        tracer, waits = self.tracer, self.waits
        ev = tracer.event
        me = waits.loop
        while tracer.next():
            self._dispatch(ev)
            if waits.loop is not me or waits.trio_wanted:
                return  # a call waited (it is over now) or trio is wanted

    async def _trio_loop(self) -> None:
        """The loop as a trio task (umvu.core.waiting): while no call waits it blocks in
        the tracer as the plain loop does; meanwhile it polls, and waits for the tracer's
        fd in trio. A call that waits makes this task its owner: a new one loops on."""
        tracer, waits = self.tracer, self.waits
        trio = waits.trio
        ev = tracer.event
        wait = None
        with trio.CancelScope() as scope:  # (before any module code: see Waits.own)
            while True:
                if waits.count:
                    await trio.lowlevel.checkpoint()
                    got = tracer.poll()
                    if got == 2:
                        await trio.lowlevel.wait_readable(tracer.wait_fd())
                        continue
                    if got == 0:
                        break
                elif not tracer.next():
                    break
                wait = self._dispatch(ev)
                if wait is not None:
                    waits.nursery.start_soon(self._trio_loop)
                    await waits.own(wait, scope)  # (its cancellation ends here too)
                    return
        if wait is None:  # no guest is left
            waits.nursery.cancel_scope.cancel()

    def _timed_loop(self, path: str) -> None:
        """The loop, timing each event in Python by kind and call (UMVU_EVTIME=FILE:
        a table of events, their Python time and the time waited for them, written at
        the end; a tool for profiling the Python path)."""
        names = {EV_SYSCALL_EXIT: "exit of ", EV_CLONE: "clone", EV_EXEC: "exec",
                 EV_EXITED: "exited", EV_BOUNDARY: "boundary", EV_KNOCK: "knock"}
        clock = time.perf_counter_ns
        table: dict[str, list] = {}
        waited = 0
        ev = self.tracer.event
        me = self.waits.loop
        t_wait = clock()
        while self.tracer.next():
            t0 = clock()
            waited += t0 - t_wait
            kind = ev.kind
            key = names.get(kind, "?")
            if kind in (EV_SYSCALL, EV_SYSCALL_EXIT):
                sc = syscalls.BY_NR.get(ev.nr)
                key = ("" if kind == EV_SYSCALL else key) + (sc.name if sc else str(ev.nr))
            self._dispatch(ev)
            t_wait = clock()
            row = table.setdefault(key, [0, 0])
            row[0] += 1
            row[1] += t_wait - t0
            if self.waits.loop is not me or self.waits.trio_wanted:
                break  # (untimed from then on)
        with open(path, "w") as f:
            total = sum(r[1] for r in table.values())
            f.write("%-24s %8s %10s %8s\n" % ("event", "count", "python ms", "µs each"))
            for key, (n, ns) in sorted(table.items(), key=lambda kv: -kv[1][1]):
                f.write("%-24s %8d %10.1f %8.1f\n" % (key, n, ns / 1e6, ns / n / 1e3))
            f.write("%-24s %8d %10.1f\nwaited for events: %.1f ms\n" % (
                "all", sum(r[0] for r in table.values()), total / 1e6, waited / 1e6))

    def _dispatch(self, ev):
        """Handle one event; a Wait (umvu.core.waiting) when a call waits."""
        tracer = self.tracer
        procs = self.procs
        if ev.closed:  # before anything: the C loop's closes happened before this event
            for closer, guest_fd in tracer.closed_take():
                self.vfs.closed_in_c(closer, guest_fd)
        kind = ev.kind
        tid = ev.tid
        if tid not in procs.threads and kind != EV_EXITED:
            self.sync_unseen()  # a thread the C loop followed alone
        wait = None
        if kind == EV_SYSCALL:
            wait = self.on_syscall(tid, ev.nr)
        elif kind == EV_SYSCALL_EXIT:
            if not (self.waits.parked and self.waits.exit_stop(tid)):
                self.on_syscall_exit(tid, ev.ret)
        elif kind == EV_CLONE:
            child = procs.clone(tid, ev.msg, ev.clone_flags)
            if tid in procs.threads[tid].process.unsynced:
                self.clone_filters(tid, child)
            self.update_plain(child)
            if not ev.resumed:
                tracer.clone_done(tid, ev.msg)
            if child.process.filter_gen < self.filter_gen or child.process.fd_pending:
                tracer.want_boundary(ev.msg)
        elif kind == EV_EXEC:
            self.api.forget_ids(ev.msg)  # a set-user-ID program, a new leader tid
            self.api.forget_ids(tid)
            if ev.msg != tid and self.waits.parked:
                self.waits.gone(tid)  # the leader this exec replaced
            procs.exec(tid, ev.msg)
            for hook in list(self.exec_hooks):
                call_to_retval(hook, tid)
            pending = self._pending_exit.pop(ev.msg, None)
            if pending is not None and isinstance(pending[0], tuple):
                self._trace_line(pending[0], 0)  # (execve's line: it did not fail)
            if not ev.resumed:
                tracer.resume(tid)
        elif kind == EV_EXITED:
            if "s" in self.debugtags:
                log.info("%s", self.formatter.exit_line(tid, ev.status))
            self.api.forget_ids(tid)
            if self.waits.parked:
                self.waits.gone(tid)
            procs.exited(tid)
            self._pending_exit.pop(tid, None)
            if not self.command_over and not tracer.main_running():
                self.command_over = True  # the session's command is over: the daemons
                for mod in list(self.modules.values())[::-1]:  # it left are told to go
                    call_to_retval(mod.command_ended)
        elif kind == EV_BOUNDARY:
            self.on_boundary(tid)
        elif kind == EV_KNOCK:  # a vu_* command: its next call gets the filter (boundary)
            self.thread(tid)
            self.cur_tid = tid  # (so want_upgrades leaves it, not a thread handled before)
            if ev.msg == 1 and not self.modules:  # vu_insmod: the modules' filter now, so
                self.need_syscalls()               # no process stacks two
            self.want_upgrades()
            tracer.resume(tid)
        elif kind == EV_ABI32:
            self.on_abi32(tid, ev.nr)
        elif kind == EV_SIGNAL:  # (the debug trace only: tracer.trace_signals)
            if "s" in self.debugtags:
                try:
                    log.info("%s", self.formatter.signal_line(tid, ev.msg,
                                                              tracer.siginfo(tid)))
                except OSError:
                    pass
            tracer.resume(tid, ev.msg)
        if self.lazy:
            t = procs.threads.get(tid)
            if t is not None:
                self.update_plain(t)
        return wait

    # ------------------------------------------------------------- calls into modules
    def call(self, service, method: str, *args):
        """Call a module/service method; a missing method is ENOSYS; a coroutine
        method is run to its end (it may wait: umvu.core.waiting)."""
        fn = getattr(service, method, None)
        if fn is None:
            raise OSError(errno.ENOSYS, "%s not implemented" % method)
        if self.stopped_tid and "s" in self.debugtags:
            self._trace_svc.setdefault(self.stopped_tid, service)
        return self.as_caller(fn, *args)

    def as_caller(self, fn, *args):
        """fn(*args) (a coroutine: run to its end) with the fs ids of the guest whose
        call is served, in a session umvu runs as root (umvu.core.credentials)."""
        caller = as_caller(self.api.kernel_ids()) if ROOT and self.stopped_tid else None
        if caller is None:
            result = fn(*args)
            return drive(result) if type(result) is CoroutineType else result
        caller.enter()
        try:
            result = fn(*args)
            return drive(result) if type(result) is CoroutineType else result
        finally:
            caller.leave()

    def on_syscall(self, tid: int, nr: int):
        """Serve a call (it may wait: umvu.core.waiting); a Wait if it does in a server
        greenlet."""
        if "s" in self.debugtags:
            self._trace_sp[tid] = self.tracer.event.sp
        return self.waits.run(self._serve_syscall, tid, nr, self.tracer.args())

    def _serve_syscall(self, tid: int, nr: int, args) -> None:
        self.stopped_tid = tid
        try:
            self._on_syscall(tid, nr, args)
        finally:
            self.stopped_tid = 0

    def _on_syscall(self, tid: int, nr: int, args) -> None:
        sc = syscalls.BY_NR.get(nr)
        if sc is not None:
            args = sc.bind(args)  # by name: args.path, args.mode...
        t = self.thread(tid)
        self.cur_tid = tid
        if not self.noseccomp and t.process.filter_gen < self.filter_gen:
            self.upgrade_filter(t)
        if self.vfs.stats_given and sc is not None:  # the C loop's answers may go stale
            self.vfs.forget_stats(sc, args)
        hook = self.hooks.get(nr)
        action = PASS
        if hook is not None and implements(hook, "syscall"):
            action = call_to_retval(hook.syscall, t, sc, args)
        if action is not PASS and "s" in self.debugtags:
            self._trace_svc.setdefault(tid, hook)
        if action is PASS:
            handler = None
            if sc is not None:
                handler = self._by_name.get(sc.name) or self._choice.get(sc.choice)
            if handler is None or (not self.modules and sc.choice != "virtual"):
                action = None
            else:
                action = call_to_retval(handler, t, sc, args)
        if hook is not None and implements(hook, "after"):
            action = self._with_after(hook, t, sc, args, action)
        if self.waits.parked:
            if not self.waits.answering(tid):
                return  # the thread is gone
            if not self.noseccomp and t.process.filter_gen < self.filter_gen:
                self.upgrade_filter(t)  # (a module came while it waited)
        self.perform(t, sc, nr, args, action)

    @staticmethod
    def _with_after(hook, t, sc, args, action):
        """Run hook.after on the result of whatever serves the call."""
        def after(ret):
            new = call_to_retval(hook.after, t, sc, args, ret)
            return ret if new is None else new
        if isinstance(action, int):
            return after(action)
        if action is None:
            return Native(None, after)
        inner = action.on_exit

        def chained(ret):
            if inner is not None:
                new = inner(ret)
                ret = ret if new is None else new
            return after(ret)
        return Native(action.args, chained, action.nr)

    def grant(self, tid: int, action) -> bool:
        """Answer tid's call with a new fd of action.grant's host file (then
        action.on_exit): at a seccomp notification by ADDFD, at a ptrace stop over a
        socket (umvu.core.handoff); False when neither could (the guest's call, as
        rewritten, makes it then)."""
        opener, flags, by_socket = action.grant
        must = by_socket == "must"  # (a file umvu opened for the guest: never its call)
        try:
            host_fd = opener()
        except OSError as e:
            log.error("umvu: cannot open what pid %d gets: %s", tid, e)
            return False  # made by the guest's call then
        try:
            ret = self.tracer.grant_fd(tid, host_fd, flags)
            if ret is None:
                if not by_socket:
                    return False  # (the guest's rewritten call makes it: cheaper)
                ret = self.handoff.give(self.thread(tid), host_fd, bool(flags & O_CLOEXEC))
                if ret < 0 and not must:
                    log.info("umvu: handing a file to pid %d: %s", tid, os.strerror(-ret))
                    return False
        except OSError as e:
            ret = -e.errno
        finally:
            os.close(host_fd)
        self._granted = ret
        try:
            if action.on_exit is not None:  # binds the fd (and stacks its filter)
                action.on_exit(ret)          # before the guest can use it
        finally:
            self.tracer.skip(tid, ret)
        return True

    def update_hooks(self) -> None:
        self.hooks = {e.key: e.service for e in self.table.entries if e.kind == "syscall"}
        # (claimed with notify: they come as seccomp notifications, see claim_syscalls)
        self.notif_hooks = {e.key for e in self.table.entries
                            if e.kind == "syscall" and e.flags & NOTIFY_HOOK}
        self.local_hooks = {e.key for e in self.table.entries
                            if e.kind == "syscall" and e.flags & LOCAL_HOOK}
        self.need_syscalls()

    def perform(self, t, sc, nr, args, action) -> None:
        tid = t.tid
        debug = "s" in self.debugtags
        line = self._trace_enter(tid, sc, nr, args, action) if debug else None
        if line is not None and line[0].name in NO_RETURN:
            self._trace_line(line, None)  # (its process ends in it: shown now)
            line = None
        if action is None:
            if line is not None:
                self._pending_exit[tid] = (line, None, None)
                self.tracer.native(tid, want_exit=True)
            else:
                self.tracer.native(tid)
        elif isinstance(action, int):
            if line is not None:
                self._trace_line(line, action)
            self.tracer.skip(tid, action)
        else:
            # (traced, a file the guest's rewritten call can open itself is left to it,
            # so the trace shows that call; one of umvu's own is always handed over:
            # umvu is not dumpable, a guest's open of /proc/UMVU/fd/N fails EACCES)
            if action.grant is not None and (not debug or action.grant[2]) and \
                    self.grant(tid, action):
                if line is not None:
                    self._trace_line(line, self._granted)
                return
            new_args = action.args() if callable(action.args) else action.args
            original = None
            if new_args is not None or action.nr is not None:
                self.tracer.set_syscall(tid, nr if action.nr is None else action.nr,
                                        args if new_args is None else new_args)
                original = (nr, list(args))
            if action.on_exit is not None or line is not None:
                self._pending_exit[tid] = (line, action.on_exit, original)
                self.tracer.native(tid, want_exit=True)
            else:
                self.tracer.native(tid)

    # ------------------------------------------------------------- the debug trace
    def trace_note(self) -> None:
        """Said once as the trace starts: what it leaves out."""
        if not self.noseccomp:
            log.info("umvu: -d s shows the calls umvu intercepts (a process's others run "
                     "unseen, and all of them until a module is loaded); -d S shows every "
                     "call")

    def _trace_enter(self, tid, sc, nr, args, action):
        """(what the call reads, formatted now; who answers): the trace line's start."""
        entry = self.formatter.enter(tid, sc, args, nr, self._trace_sp.pop(tid, 0))
        svc = self._trace_svc.pop(tid, None)
        if svc is not None:
            who = self._service_name(svc)
        elif isinstance(action, int) or (action is not None and action.grant is not None):
            who = "umvu"
        else:
            who = "kernel"
        return entry, who

    def _trace_line(self, line, ret) -> None:
        entry, who = line
        log.info("%s", self.formatter.finish(entry, ret, who))

    def _service_name(self, service) -> str:
        """A service as the trace names it: its module and mount point (or claim)."""
        for e in self.table.entries:
            if e.service is service:
                if e.kind == "path":
                    return "%s %s" % (e.module.name, os.fsdecode(e.key))
                return e.module.name
        for name, mod in self.modules.items():
            if mod is service:
                return name
        return type(service).__name__

    def on_syscall_exit(self, tid: int, ret: int) -> None:
        line, callback, original = self._pending_exit.pop(tid, (None, None, None))
        if original is not None and ret in RESTARTS:
            # the kernel makes the call again with the registers as they are now: the
            # guest's own call, trapped and served afresh (a rewritten one, such as
            # vumisc's scaled timeout, must not be served twice)
            self.tracer.set_syscall(tid, *original)
        if callback is not None:
            self.cur_tid = self.stopped_tid = tid
            try:
                new = call_to_retval(callback, ret)
            finally:
                self.stopped_tid = 0
            if isinstance(new, int) and new != ret:
                self.tracer.set_return(tid, new)
                ret = new
        if line is not None:
            self._trace_line(line, ret)
        self.tracer.resume(tid)

    def on_abi32(self, tid: int, nr: int) -> None:
        t = self.procs.get(tid)
        tgid = t.process.tgid if t else tid
        if tgid not in self._abi32_warned:
            self._abi32_warned.add(tgid)
            log.warning("umvu: pid %d: 32-bit/x32 system call %d refused with ENOSYS "
                        "(umvu virtualizes the x86_64 ABI only)", tid, nr)
        self.tracer.skip(tid, -errno.ENOSYS)

    # --- core-handled syscalls
    def on_getcwd(self, t, sc, args):
        if t.fs.kernel_cwd:
            return None
        return self.vfs.sized_out(t, args.buf_out, max(args.size, 1), t.fs.cwd + b"\0") \
            if args.size else -errno.ERANGE

    def on_setid(self, t, sc, args):
        """The thread's ids may change: read them again at its next call."""
        self.api.forget_ids(t.tid)
        return None

    def on_refused(self, t, sc, args):
        """A call a view cannot hold against (filters.REFUSED): refused, said once per
        process in the log."""
        key = (t.process.tgid, sc.name)
        if key not in self._refused_said:
            self._refused_said.add(key)
            log.warning("umvu: pid %d: %s refused while modules are loaded (it would act "
                        "on files past umvu's checks)", t.tid, sc.name)
        return -REFUSED[sc.name]

    def on_umask(self, t, sc, args):
        new = args.mode & 0o777

        def done(ret):
            if ret >= 0:
                t.fs.umask = new
                self.tracer.callers_forget()  # (another thread's call read the old one)
        return Native(None, done)

    def on_mmap(self, t, sc, args):
        flags = args.flags
        if flags & 0x20:  # MAP_ANONYMOUS
            return None
        vf = t.files.fds.get(args.fd)
        if vf is None or "mmap" in vf.native:
            return None
        return self.vfs.f_mmap(t, args, vf, args.fd)

    def proc_mounts(self, t, mountinfo: bool) -> bytes:
        return render_proc_mounts(self.table, t, mountinfo)
