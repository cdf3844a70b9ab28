"""Process/thread table: which state threads share, exactly as the kernel shares it.

- ``FsState`` (cwd, root as guest paths, umask) is shared under CLONE_FS, else copied.
- ``FdTable`` (virtual fds: guest_fd -> entry) is shared under CLONE_FILES, else copied.
- ``MemState`` (the per-address-space scratch page) is shared under CLONE_VM; a fork
  copies it (the child has the same mappings); exec replaces it.
- ``Process`` is a thread group (CLONE_THREAD joins the parent's).
"""
from __future__ import annotations

import os

CLONE_VM = 0x100
CLONE_FS = 0x200
CLONE_FILES = 0x400
CLONE_VFORK = 0x4000
CLONE_THREAD = 0x10000
# what a virtual fd is in the guest: an eventfd, a memfd of a module file's data, a
# socket of a module's (a device's readiness: Service.placeholder), or the hypervisor's
# empty placeholder directory (Observers.placeholder_links)
PLACEHOLDER_LINKS = ("anon_inode:[eventfd]", "/memfd:umvu-content", "socket:[")


class Observers:
    """What the process table tells its owner (the hypervisor), each a callable it may
    replace; by default nobody listens.

    - ``vfd_count(guest_fd, delta)``: guest_fd became virtual in one more (+1) or one
      fewer (-1) fd table (the C fast path's per-fd counts);
    - ``vfd_added(table, guest_fd)``: guest_fd is a new virtual fd of table (the per-fd
      seccomp filters);
    - ``virtual_cwds(n)``: n live fs states have a cwd the kernel does not have (the C
      fast path decides relative paths only while there are none);
    - ``cwd_went_virtual(fs)``: fs's cwd left the kernel's;
    - ``data_changed(process)``: a module changed process.data.

    ``placeholder_links``: what the guest's /proc/PID/fd links of virtual fds start with
    (exec keeps those of them the kernel kept)."""

    def __init__(self) -> None:
        nothing = lambda *args: None  # noqa: E731
        self.vfd_count = self.vfd_added = self.virtual_cwds = nothing
        self.cwd_went_virtual = self.data_changed = nothing
        self.placeholder_links = PLACEHOLDER_LINKS
        self.virtual = 0  # fs states whose cwd the kernel does not have

    def count_virtual(self, delta: int) -> None:
        self.virtual += delta
        self.virtual_cwds(self.virtual)


class FsState:
    """``kernel_cwd``: the kernel's cwd of these threads is ``cwd`` (False while the
    guest's cwd is inside a virtual mount and the kernel's stays where it was).
    ``users``: threads sharing it. Reports to its Observers."""
    __slots__ = ("cwd", "root", "umask", "_kernel_cwd", "users", "obs")

    def __init__(self, obs: Observers, cwd: bytes, root: bytes = b"/",
                 umask: int = 0o022, kernel_cwd: bool = True) -> None:
        self.obs = obs
        self.cwd, self.root, self.umask, self._kernel_cwd = cwd, root, umask, kernel_cwd
        self.users = 1
        if not kernel_cwd:
            obs.count_virtual(1)

    @property
    def kernel_cwd(self) -> bool:
        return self._kernel_cwd

    @kernel_cwd.setter
    def kernel_cwd(self, value: bool) -> None:
        if value != self._kernel_cwd and self.users > 0:
            self.obs.count_virtual(-1 if value else 1)
        was, self._kernel_cwd = self._kernel_cwd, value
        if was and not value:
            self.obs.cwd_went_virtual(self)

    def drop(self) -> None:
        """One thread less uses it."""
        self.users -= 1
        if self.users == 0 and not self._kernel_cwd:
            self.obs.count_virtual(-1)

    def copy(self) -> "FsState":
        return FsState(self.obs, self.cwd, self.root, self.umask, self._kernel_cwd)


class FdTable:
    """guest_fd -> VFile (an open file description with a ``refs`` count).
    ``users``: threads sharing this table. Every change goes through the methods, which
    report to its Observers (vfd_count, vfd_added)."""
    __slots__ = ("fds", "users", "obs")

    def __init__(self, obs: Observers, fds: dict | None = None, users: int = 1) -> None:
        self.obs = obs
        self.fds = {} if fds is None else fds
        self.users = users

    def set(self, guest_fd: int, vf):
        """Map guest_fd to vf; returns the VFile it replaced, if any."""
        old = self.fds.get(guest_fd)
        self.fds[guest_fd] = vf
        if old is None:
            self.obs.vfd_count(guest_fd, 1)
        if old is not vf:  # new, or another kind of virtual fd (content or not)
            self.obs.vfd_added(self, guest_fd)
        return old

    def pop(self, guest_fd: int, counted: bool = True):
        """Unmap guest_fd; counted=False: the C loop already counted it out."""
        vf = self.fds.pop(guest_fd, None)
        if vf is not None and counted:
            self.obs.vfd_count(guest_fd, -1)
        return vf

    def clear(self) -> list:
        gone = list(self.fds.values())
        for fd in self.fds:
            self.obs.vfd_count(fd, -1)
        self.fds.clear()
        return gone

    def copy(self) -> "FdTable":
        for fd, vf in self.fds.items():
            vf.refs += 1
            self.obs.vfd_count(fd, 1)
        return FdTable(self.obs, dict(self.fds))


class MemState:
    """An address space: tid -> guest address of that thread's scratch area."""
    __slots__ = ("scratch",)

    def __init__(self, scratch: dict | None = None) -> None:
        self.scratch = {} if scratch is None else scratch

    def copy(self) -> "MemState":
        return MemState(dict(self.scratch))


class ProcessData(dict):
    """Modules' per-process state; Observers.data_changed(process) hears of every
    change (a child forked from then on must get a copy: see Hypervisor.update_plain)."""
    __slots__ = ("process", "obs")

    def __init__(self, obs: Observers, process, items=()) -> None:
        super().__init__(items)
        self.obs = obs
        self.process = process

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.obs.data_changed(self.process)

    def __delitem__(self, key) -> None:
        super().__delitem__(key)
        self.obs.data_changed(self.process)

    def update(self, *args, **kw) -> None:
        super().update(*args, **kw)
        self.obs.data_changed(self.process)

    def pop(self, *args):
        value = super().pop(*args)
        self.obs.data_changed(self.process)
        return value

    def __ior__(self, other):
        super().__ior__(other)
        self.obs.data_changed(self.process)
        return self

    def clear(self) -> None:
        super().clear()
        self.obs.data_changed(self.process)

    def popitem(self):
        item = super().popitem()
        self.obs.data_changed(self.process)
        return item

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]


class Process:
    __slots__ = ("tgid", "threads", "filter_gen", "fd_traps", "fd_pending", "data",
                 "unsynced")

    def __init__(self, obs: Observers, tgid: int, threads: set | None = None,
                 filter_gen: int = 0, fd_traps=(), fd_pending=()) -> None:
        self.tgid = tgid
        self.threads = set() if threads is None else threads
        self.filter_gen = filter_gen  # generation of the seccomp filter stack installed
        # fd -> the names of the fd calls the stacked per-fd filters let by on it (empty:
        # they trap all; None: every fd call is trapped by number); and the fds whose
        # filters are still to be stacked at the next syscall boundary
        self.fd_traps: dict | None = None if fd_traps is None else dict(fd_traps)
        self.fd_pending: set = set(fd_pending)
        # threads that were running when a filter was last stacked (TSYNC): one in the
        # middle of a fork may have given its child the filters from before
        self.unsynced: set = set()
        # modules' per-process state: copied at fork, kept at exec
        self.data: ProcessData = ProcessData(obs, self)


class Thread:
    """``plain``: what the C loop was told of it (Tracer.set_plain): its clones need
    nothing from this table, the C loop follows them alone."""
    __slots__ = ("tid", "process", "fs", "files", "mem", "plain")

    def __init__(self, tid: int, process: Process, fs: FsState, files: FdTable,
                 mem: MemState) -> None:
        self.tid, self.process, self.fs, self.files, self.mem = tid, process, fs, files, mem
        self.plain = False


class ProcessTable:
    """``release(vfile)`` is called for every reference an fd table drops; ``obs``: who
    hears of the changes (see Observers)."""

    def __init__(self, release=None, obs: Observers | None = None) -> None:
        self.threads: dict[int, Thread] = {}
        self.release = release or (lambda vf: None)
        self.obs = obs if obs is not None else Observers()

    def add_initial(self, tid: int, cwd: bytes | None = None) -> Thread:
        obs = self.obs
        fs = FsState(obs, cwd if cwd is not None else os.getcwdb(), umask=_current_umask())
        t = Thread(tid, Process(obs, tid, {tid}), fs, FdTable(obs), MemState())
        self.threads[tid] = t
        return t

    def adopt(self, rows, umask: int | None = None, known_rows=(),
              filter_gen: int = 0) -> list[Thread]:
        """Threads this table has not followed: rows of (tid, tgid, fs group, files
        group, vm group) from the tracer, sharing what the known threads of known_rows
        (rows of the same kind) share with them; cwds (and umask if None) read from the
        kernel, fd tables empty, filter stacks of generation filter_gen. Returns them."""
        fss: dict[int, FsState] = {}
        files: dict[int, FdTable] = {}
        mems: dict[int, MemState] = {}
        procs: dict[int, Process] = {}
        for tid, tgid, fsg, filesg, vmg in known_rows:
            t = self.threads.get(tid)
            if t is not None:
                fss[fsg], files[filesg], mems[vmg] = t.fs, t.files, t.mem
                procs[tgid] = t.process
        adopted = []
        for tid, tgid, fsg, filesg, vmg in rows:
            if tid in self.threads:
                continue
            fs = fss.get(fsg)
            if fs is None:
                fs = fss[fsg] = _kernel_fs(self.obs, tid, umask)
            else:
                fs.users += 1
            table = files.get(filesg)
            if table is None:
                table = files[filesg] = FdTable(self.obs)
            else:
                table.users += 1
            proc = procs.get(tgid)
            if proc is None:
                proc = procs[tgid] = Process(self.obs, tgid, filter_gen=filter_gen)
            proc.threads.add(tid)
            t = Thread(tid, proc, fs, table, mems.setdefault(vmg, MemState()))
            self.threads[tid] = t
            adopted.append(t)
        return adopted

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
            pp = parent.process  # the child has the parent's filter stack
            proc = Process(self.obs, child_tid, {child_tid}, pp.filter_gen, pp.fd_traps,
                           pp.fd_pending)
            proc.data = ProcessData(self.obs, proc, pp.data)
        if flags & CLONE_FILES:
            files = parent.files
            files.users += 1
        else:
            files = parent.files.copy()
        if flags & CLONE_FS:
            fs = parent.fs
            fs.users += 1
        else:
            fs = parent.fs.copy()
        child = Thread(
            child_tid, proc, fs,
            files,
            parent.mem if flags & CLONE_VM else parent.mem.copy(),
        )
        self.threads[child_tid] = child
        return child

    def exec(self, tid: int, former_tid: int) -> Thread | None:
        """An exec succeeded in ``tid``'s group (``former_tid`` is the thread that called
        it: the kernel gives it the leader's tid). Other threads are gone, memory is new,
        and a shared fd table is unshared."""
        t = self.threads.pop(former_tid, None) or self.threads.pop(tid, None)
        if t is None:
            return None
        for other in list(t.process.threads):
            if other != t.tid:
                self.exited(other)  # killed by the exec (the old leader included)
        t.tid = tid
        t.process.tgid = tid
        t.process.threads = {tid}
        t.mem = MemState()
        if t.files.users > 1:  # exec unshares a shared fd table
            t.files.users -= 1
            t.files = t.files.copy()
        # close-on-exec virtual fds are gone: keep the ones the kernel kept
        for fd in list(t.files.fds):
            try:
                alive = os.readlink("/proc/%d/fd/%d" % (tid, fd)).startswith(
                    self.obs.placeholder_links)
            except OSError:
                alive = False
            if not alive:
                self.release(t.files.pop(fd))
        self.threads[tid] = t
        return t

    def exited(self, tid: int) -> None:
        t = self.threads.pop(tid, None)
        if t is not None:
            t.process.threads.discard(tid)
            t.mem.scratch.pop(tid, None)
            t.fs.drop()
            t.files.users -= 1
            if t.files.users == 0:
                for vf in t.files.clear():
                    try:
                        self.release(vf)
                    except OSError:  # (a module's close failed: the fd is gone anyway)
                        pass

    def __len__(self) -> int:
        return len(self.threads)


def status_fields(tid: int, *names: bytes) -> dict[bytes, list[bytes]]:
    """Fields of /proc/TID/status (b"Uid", b"Umask"...): name -> its words; the names
    it does not have (or all, when it cannot be read) are missing."""
    out: dict[bytes, list[bytes]] = {}
    try:
        with open("/proc/%d/status" % tid, "rb") as f:
            for line in f:
                name, _, rest = line.partition(b":")
                if name in names:
                    out[name] = rest.split()
                    if len(out) == len(names):
                        break
    except OSError:
        pass
    return out


def kernel_umask(tid: int) -> int | None:
    """tid's umask as the kernel has it (None if it cannot be read)."""
    words = status_fields(tid, b"Umask").get(b"Umask")
    return int(words[0], 8) if words else None


def fs_ids(tid: int) -> tuple[int, int, set[int]] | None:
    """tid's fs uid, fs gid and groups, as the kernel checks a file access by them."""
    f = status_fields(tid, b"Uid", b"Gid", b"Groups")
    if b"Uid" not in f or b"Gid" not in f:
        return None
    return int(f[b"Uid"][3]), int(f[b"Gid"][3]), {int(g) for g in f.get(b"Groups", [])}


def _kernel_fs(obs: Observers, tid: int, umask: int | None) -> FsState:
    """tid's cwd (and umask if None) as the kernel has them."""
    try:
        cwd = os.fsencode(os.readlink("/proc/%d/cwd" % tid))
    except OSError:
        cwd = b"/"
    if umask is None:
        umask = kernel_umask(tid)
    return FsState(obs, cwd, umask=0o022 if umask is None else umask)


def _current_umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old
