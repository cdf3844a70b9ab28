"""msocket for Python programs run inside umvu (VUOS's msocket(3)).

    from umvu.net import msocket, set_default_stack
    s = msocket("/dev/net/myvde", socket.AF_INET, socket.SOCK_STREAM)  # in that stack
    set_default_stack("/dev/net/myvde")  # socket() of this process and its children

The stack is a file ``vumount -t vunetTYPE`` made (module vunet). Outside umvu, or with
no vunet module, these raise OSError (ENOSYS)."""
from __future__ import annotations

import errno
import os
import socket

from umvu.core import syscalls
from umvu.core.tracer import knock, raw_syscall

SOCK_DEFAULT = 0  # msocket's type: make the stack the caller's default
NR_MSOCKET = syscalls.number("msocket")
_knocked = False


def msocket_raw(stack: bytes | int | None, domain: int, type_: int, protocol: int) -> int:
    """The virtual system call: a new fd (or 0 for SOCK_DEFAULT), or -errno."""
    global _knocked
    if not _knocked:
        knock()  # (the hypervisor gives this process the filter of virtual calls)
        _knocked = True
    return raw_syscall(NR_MSOCKET, 0 if stack is None else stack, domain, type_, protocol)


def _check(ret: int, stack) -> int:
    if ret < 0:
        if ret == -errno.ENOSYS:
            raise OSError(errno.ENOSYS, "msocket: not running under umvu with vunet loaded")
        raise OSError(-ret, os.strerror(-ret), stack)
    return ret


def msocket(stack: str | bytes | None, family: int = socket.AF_INET,
            type: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
    """A socket of the stack at path ``stack`` (None: the caller's default stack for
    family), as a socket.socket."""
    path = os.fsencode(stack) if stack is not None else None
    fd = _check(msocket_raw(path, family, type, proto), stack)
    return socket.socket(fileno=fd)


def set_default_stack(stack: str | bytes, family: int = 0) -> None:
    """Make ``stack`` this process's stack for family (0: every family it has), and so
    its children's."""
    _check(msocket_raw(os.fsencode(stack), family, SOCK_DEFAULT, 0), stack)
