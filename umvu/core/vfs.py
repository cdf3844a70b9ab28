"""Path and fd system calls: route each to the kernel or to the responsible module.

A handler gets (thread, syscall row, raw args) and returns an *action*:
    None              run it natively
    int               skip it; the guest sees this value (-errno for errors)
    Native(...)       run it natively after rewriting some arguments, optionally with a
                      callback at the exit stop that may change the result
Virtual fds are real fds in the guest (eventfds made by rewriting the guest's own open
into eventfd2, counter 1 so poll/select/epoll see them readable and writable) mapped
per fd table to a :class:`VFile` (the open file description: service, handle, offset).
A regular file a module offers as plain content and the guest opens read-only is a
memfd holding that content instead (:class:`Content`): read, lseek, mmap and the rest
of :data:`CONTENT_NATIVE` run in the kernel without a stop; fstat, close, dup... still
come to the core (the per-fd filter of such an fd traps only those). A directory's is an
empty real directory, on which the kernel answers read, write, mmap... as on any
(:data:`DIR_NATIVE`). ``VFile.native`` names the calls its placeholder answers.
"""
from __future__ import annotations

from umvu.core.fdcalls import FdCalls
from umvu.core.pathcalls import PathCalls, is_proc_link, is_proc_mounts, proc_rest  # noqa: F401
from umvu.core.paths import Resolver
from umvu.core.scmrights import ScmRights
from umvu.core.sockpaths import SocketPaths
from umvu.core.vfiles import MemFile, VFile, VirtualFiles  # noqa: F401


class VirtualFS(PathCalls, FdCalls, SocketPaths, ScmRights, VirtualFiles):
    """The virtual file system view: path calls (umvu.core.pathcalls), fd calls
    (umvu.core.fdcalls), unix socket paths (umvu.core.sockpaths), virtual fds through
    SCM_RIGHTS (umvu.core.scmrights) and the virtual files behind them
    (umvu.core.vfiles)."""

    def __init__(self, hv) -> None:
        self.hv = hv
        self.tracer = hv.tracer
        self.resolver = Resolver(hv)
        self.stats_given = False  # the C loop holds answers to fstat (remember_stat)
        self.contents: dict = {}  # (mount entry, st_ino) -> Content
        self.content_entries: dict = {}  # mount entry -> how many Contents it has
        self.scm_init()

    # ------------------------------------------------------------ helpers
    def call(self, service, method, *args):
        return self.hv.call(service, method, *args)
