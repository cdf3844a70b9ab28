"""Process/thread table: which state threads share, exactly as the kernel shares it.

- ``FsState`` (cwd, root as guest paths, umask) is shared under CLONE_FS, else copied.
- ``FdTable`` (virtual fds: guest_fd -> entry) is shared under CLONE_FILES, else copied.
- ``MemState`` (the per-address-space scratch page) is shared under CLONE_VM; a fork
  copies it (the child has the same mappings); exec replaces it.
- ``Process`` is a thread group (CLONE_THREAD joins the parent's).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

CLONE_VM = 0x100
CLONE_FS = 0x200
CLONE_FILES = 0x400
CLONE_VFORK = 0x4000
CLONE_THREAD = 0x10000


@dataclass
class FsState:
    cwd: bytes
    root: bytes = b"/"
    umask: int = 0o022

    def copy(self) -> "FsState":
        return FsState(self.cwd, self.root, self.umask)


@dataclass
class FdTable:
    """guest_fd -> virtual fd entry (opaque to this module)."""
    fds: dict = field(default_factory=dict)

    def copy(self) -> "FdTable":
        return FdTable(dict(self.fds))


@dataclass
class MemState:
    scratch_guest_addr: int = 0

    def copy(self) -> "MemState":
        return MemState(self.scratch_guest_addr)


@dataclass
class Process:
    tgid: int
    threads: set = field(default_factory=set)


@dataclass
class Thread:
    tid: int
    process: Process
    fs: FsState
    files: FdTable
    mem: MemState


class ProcessTable:
    def __init__(self) -> None:
        self.threads: dict[int, Thread] = {}

    def add_initial(self, tid: int, cwd: bytes | None = None) -> Thread:
        fs = FsState(cwd if cwd is not None else os.getcwdb(), umask=_current_umask())
        t = Thread(tid, Process(tid, {tid}), fs, FdTable(), MemState())
        self.threads[tid] = t
        return t

    def get(self, tid: int) -> Thread | None:
        return self.threads.get(tid)

    def clone(self, parent_tid: int, child_tid: int, flags: int) -> Thread:
        parent = self.threads.get(parent_tid)
        if parent is None:  # should not happen; keep the child traceable anyway
            parent = self.add_initial(parent_tid)
        if flags & CLONE_THREAD:
            proc = parent.process
            proc.threads.add(child_tid)
        else:
            proc = Process(child_tid, {child_tid})
        child = Thread(
            child_tid, proc,
            parent.fs if flags & CLONE_FS else parent.fs.copy(),
            parent.files if flags & CLONE_FILES else parent.files.copy(),
            parent.mem if flags & CLONE_VM else parent.mem.copy(),
        )
        self.threads[child_tid] = child
        return child

    def exec(self, tid: int, former_tid: int) -> Thread | None:
        """An exec succeeded in ``tid``'s group (``former_tid`` is the thread that called
        it: the kernel gives it the leader's tid). Other threads are gone, memory is new,
        and a shared fd table is unshared."""
        t = self.threads.pop(former_tid, None) or self.threads.get(tid)
        if t is None:
            return None
        for other in list(t.process.threads):
            if other not in (tid, former_tid):
                self.threads.pop(other, None)
        t.tid = tid
        t.process.tgid = tid
        t.process.threads = {tid}
        t.mem = MemState()
        t.files = t.files.copy()
        self.threads[tid] = t
        return t

    def exited(self, tid: int) -> None:
        t = self.threads.pop(tid, None)
        if t is not None:
            t.process.threads.discard(tid)

    def __len__(self) -> int:
        return len(self.threads)


def _current_umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old
