"""The dispatch loop: gets the stops the C tracer cannot decide and answers them.

Today every real syscall goes to the kernel; virtual syscalls (negative numbers) are
answered here. A module layer plugs in through ``Hypervisor.vsyscalls`` and
``Hypervisor.filter_numbers``.
"""
from __future__ import annotations

import errno
import logging
import os
import signal

from umvu.core import syscalls
from umvu.core.errors import call_to_retval
from umvu.core.process import ProcessTable
from umvu.core.tracer import (EV_ABI32, EV_CLONE, EV_EXEC, EV_EXITED, EV_SYSCALL,
                              EV_SYSCALL_EXIT, Tracer)

log = logging.getLogger("umvu")

# signals a shell-like supervisor leaves to its foreground job
_SUPERVISOR_IGNORES = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP,
                       signal.SIGTTIN, signal.SIGTTOU)


class Hypervisor:
    def __init__(self, noseccomp: bool = False, debugtags: str = "",
                 view_name: bytes = b"") -> None:
        self.noseccomp = noseccomp
        self.debugtags = set(debugtags)
        self.view_name = view_name
        self.tracer = Tracer()
        self.procs = ProcessTable()
        self.main_tid = 0
        self.main_status: int | None = None
        self._pending_debug: dict[int, str] = {}
        self._abi32_warned: set[int] = set()
        # virtual syscalls: nr -> handler(tid, args) -> int (return value or -errno)
        self.vsyscalls = {}
        # syscall numbers the seccomp filter must send to the tracer
        self.filter_numbers: set[int] = set()

    # ------------------------------------------------------------- lifecycle
    def run(self, argv: list[bytes]) -> int:
        """Run the guest tree to its end; returns the exit status a shell would report."""
        keep_int = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        keep_quit = signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN
        saved = {s: signal.signal(s, signal.SIG_IGN) for s in _SUPERVISOR_IGNORES}
        try:
            self.main_tid = self.tracer.spawn(
                argv, syscalls.bitmap(self.filter_numbers), self.noseccomp,
                keep_sigint_ign=keep_int, keep_sigquit_ign=keep_quit)
            self.procs.add_initial(self.main_tid)
            self._loop()
        finally:
            for s, h in saved.items():
                signal.signal(s, h)
        status = self.main_status
        if status is None:
            return 1
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)

    def _loop(self) -> None:
        tracer = self.tracer
        ev = tracer.event
        while tracer.next():
            kind = ev.kind
            tid = ev.tid
            if kind == EV_SYSCALL:
                self.on_syscall(tid, ev.nr)
            elif kind == EV_SYSCALL_EXIT:
                self.on_syscall_exit(tid, ev.ret)
            elif kind == EV_CLONE:
                self.procs.clone(tid, ev.msg, ev.clone_flags)
                tracer.clone_done(tid, ev.msg)
            elif kind == EV_EXEC:
                self.procs.exec(tid, ev.msg)
                tracer.resume(tid)
            elif kind == EV_EXITED:
                self.procs.exited(tid)
                self._pending_debug.pop(tid, None)
                if tid == self.main_tid:
                    self.main_status = ev.status
            elif kind == EV_ABI32:
                self.on_abi32(tid, ev.nr)

    # ------------------------------------------------------------- syscalls
    def on_syscall(self, tid: int, nr: int) -> None:
        sc = syscalls.BY_NR.get(nr)
        debug = "s" in self.debugtags
        if sc is not None and sc.choice == "virtual":
            handler = self.vsyscalls.get(nr)
            args = self.tracer.args()
            if handler is None:
                ret = -errno.ENOSYS
            else:
                ret = call_to_retval(handler, tid, args)
            if debug:
                log.info("%s = %s", self.format_call(tid, sc, args), _format_ret(ret))
            self.tracer.skip(tid, ret)
            return
        if debug:
            self._pending_debug[tid] = self.format_call(tid, sc, self.tracer.args(), nr)
            self.tracer.native(tid, want_exit=True)
            return
        self.tracer.native(tid)

    def on_syscall_exit(self, tid: int, ret: int) -> None:
        line = self._pending_debug.pop(tid, None)
        if line is not None:
            log.info("%s = %s", line, _format_ret(ret))
        self.tracer.resume(tid)

    def on_abi32(self, tid: int, nr: int) -> None:
        t = self.procs.get(tid)
        tgid = t.process.tgid if t else tid
        if tgid not in self._abi32_warned:
            self._abi32_warned.add(tgid)
            log.warning("umvu: pid %d: 32-bit/x32 system call %d refused with ENOSYS "
                        "(umvu virtualizes the x86_64 ABI only)", tid, nr)
        self.tracer.skip(tid, -errno.ENOSYS)

    # ------------------------------------------------------------- debug output
    def format_call(self, tid: int, sc, args, nr: int | None = None) -> str:
        if sc is None:
            return "[%d] syscall_%d(%s)" % (tid, nr, ", ".join(hex(a) for a in args))
        parts = []
        for kind, value in zip(sc.args, args):
            parts.append(self._format_arg(tid, kind, value))
        return "[%d] %s(%s)" % (tid, sc.name, ", ".join(parts))

    def _format_arg(self, tid: int, kind: str, value: int) -> str:
        if kind in ("path", "str"):
            if value == 0:
                return "NULL"
            try:
                s = self.tracer.peekstr(tid, value)
            except OSError:
                return "0x%x" % value
            text = repr(s[:96])[1:]
            return text[:-1] + '..."' if len(s) > 96 else text
        if kind == "off":
            return str(value - (1 << 64) if value >= 1 << 63 else value)
        if kind in ("fd", "dirfd", "int", "pid", "sig", "uid", "gid"):
            v = ((value & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000  # C int
            return "AT_FDCWD" if kind == "dirfd" and v == -100 else str(v)
        if kind == "mode":
            return "0%o" % value
        if kind in ("size", "uint"):
            return str(value)
        if value == 0:
            return "NULL" if kind in ("ptr", "buf_in", "buf_out") else "0"
        return hex(value)


def _format_ret(ret: int) -> str:
    if -4096 < ret < 0:
        name = errno.errorcode.get(-ret, "E?")
        return "-1 %s (%s)" % (name, os.strerror(-ret))
    return str(ret) if -4096 < ret < 1 << 20 else hex(ret & 0xFFFFFFFFFFFFFFFF)
