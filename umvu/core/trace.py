"""The debug trace (-d s, vudebug s): one line per call the hypervisor handles."""
from __future__ import annotations

import errno
import os

from umvu.core.abi import s32


class CallFormatter:
    """Formats a guest's call from its row and raw arguments (strings read from the
    guest through tracer)."""

    def __init__(self, tracer) -> None:
        self.tracer = tracer

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
            v = s32(value)
            return "AT_FDCWD" if kind == "dirfd" and v == -100 else str(v)
        if kind == "mode":
            return "0%o" % value
        if kind in ("size", "uint"):
            return str(value)
        if value == 0:
            return "NULL" if kind in ("ptr", "buf_in", "buf_out") else "0"
        return hex(value)


def format_ret(ret: int) -> str:
    if -4096 < ret < 0:
        name = errno.errorcode.get(-ret, "E?")
        return "-1 %s (%s)" % (name, os.strerror(-ret))
    return str(ret) if -4096 < ret < 1 << 20 else hex(ret & 0xFFFFFFFFFFFFFFFF)
