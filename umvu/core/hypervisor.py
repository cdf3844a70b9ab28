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
import stat
import struct
import time
from types import CoroutineType

from umvu.api import HypervisorAPI, capability, implements
from umvu.core.log import log
from umvu.core import syscalls
from umvu.core.actions import PASS, Native
from umvu.core.errors import RESTARTS, call_to_retval
from umvu.core.process import Observers, ProcessTable, kernel_umask
from umvu.core.registry import Entry, Responsibility
from umvu.core.tracer import (EV_ABI32, EV_BOUNDARY, EV_CLONE, EV_EXEC, EV_EXITED,
                              EV_KNOCK, EV_SYSCALL, EV_SYSCALL_EXIT, Tracer, build_fd_filter,
                              build_filter)
from umvu.core.abi import s32, s64
from umvu.core.vfs import VirtualFS
from umvu.core.vsys import VirtualSyscalls
from umvu.core.waiting import Waits, drive


SCRATCH_SIZE = 16 * 4096
NR_MMAP = syscalls.number("mmap")
NR_SECCOMP = syscalls.number("seccomp")
NR_CLOSE = syscalls.number("close")
# what the core must see once any module is loaded
MODULE_CHOICES = {"path", "path2", "fd", "fd2", "mmap", "ioctl", "mount", "umount"}
SETID = {"setuid", "setgid", "setreuid", "setregid", "setgroups", "setresuid", "setresgid",
         "setfsuid", "setfsgid"}
MODULE_EXTRA = {"getcwd", "execve", "execveat", "umask", "epoll_ctl"} | SETID
# traced from the first MAP_SHARED mapping of a virtual file on (its write-back)
WRITE_BACK = {"msync", "munmap"}


class ModuleAPI(HypervisorAPI):
    """What a module may ask of the hypervisor (the contracts: umvu.api)."""

    def __init__(self, hv) -> None:
        self.hv = hv
        self._ids: dict[int, tuple] = {}  # tid -> (fs uid, fs gid, groups) from /proc
        self._credentials = None  # set_credentials

    def add_path(self, module, prefix: bytes, service, source=b"", fstype="", flags=0,
                 options="") -> Entry:
        return self.hv.table.add(Entry("path", prefix, module, service, source, fstype,
                                       flags, options))

    def open_path(self, path: bytes, flags: int = os.O_RDONLY, mode: int = 0o644,
                  below=None) -> "ModuleFile":
        """Open a guest-view path for a module's own use (an image file, a device).

        ``below``: the module's own entry (or the module): mounts made at or after it are
        not seen, so a module never calls into its own layer and modules stack (a vudev
        disk under a file system module). Real paths are opened on the host."""
        hv = self.hv
        entry, rel = self._lookup_below(path, below)
        if entry is None:
            return ModuleFile(None, os.open(path, flags | os.O_CLOEXEC, mode), path)
        handle = hv.call(entry.service, "open", rel, flags, mode)
        return ModuleFile(entry.service, handle, path)

    def _lookup_below(self, path: bytes, below):
        """(entry, rel) serving a guest path, not seeing mounts made at or after below."""
        seq = None
        if below is not None:
            entries = [e for e in self.hv.table.entries if e is below or e.module is below]
            seq = min((e.seq for e in entries), default=None)
        return self.hv.table.lookup_path(path, below_seq=seq)

    def image_source(self, path: bytes, below=None) -> "ImageSource":
        """The host file behind a guest-view image path: a real file is itself (size
        None); a device of a module is the window its service's ``host_backing(rel)``
        names, as (host_path, offset, size). The device counts as busy (vuumount says
        EBUSY) until the ImageSource is released."""
        hv = self.hv
        entry, rel = self._lookup_below(path, below)
        if entry is None:
            st = os.stat(path)  # ENOENT, EACCES... as the guest would see them
            if stat.S_ISDIR(st.st_mode):
                raise OSError(errno.EISDIR, "%s is a directory" % os.fsdecode(path))
            return ImageSource(path, 0, None, None)
        backing = capability(entry.service, "host_backing")
        if backing is None:
            raise OSError(errno.ENOTBLK, "%s is served by module %s, which offers no "
                          "image" % (os.fsdecode(path), entry.module.name))
        host_path, offset, size = hv.call(entry.service, "host_backing", rel)
        entry.users += 1
        return ImageSource(host_path, offset, size, entry)

    def claim_syscalls(self, module, names, service) -> list:
        """Claim system calls by name (VUOS's syscall choice): before the core's own
        dispatch, ``service.syscall(t, sc, args)`` may answer (an int, a Native, None for
        the kernel) or return PASS to let the core dispatch as usual; after the call,
        ``service.after(t, sc, args, ret)`` may look at (and change) the result."""
        entries = []
        for name in names:
            sc = syscalls.BY_NAME[name]
            entries.append(self.hv.table.add(Entry("syscall", sc.nr, module, service)))
        self.hv.update_hooks()
        return entries

    def add_device(self, module, kind: str, rdev: int, service) -> Entry:
        """Claim a device number (kind "blkdev" or "chrdev"): device nodes with it in
        virtual file systems open through service.open(b"/", flags, mode)."""
        return self.hv.table.add(Entry(kind, rdev, module, service))

    def add_entry_path(self, module, path: bytes, service) -> Entry:
        """Claim one more path for a mount's service family (a disk's partitions)."""
        return self.hv.table.add(Entry("path", path, module, service))

    def remove_entry(self, entry: Entry) -> None:
        if entry in self.hv.table.entries:
            self.hv.table.remove(entry)
            if entry.kind == "syscall":
                self.hv.update_hooks()

    def resolve(self, dirfd: int, guest_path: bytes, follow: bool = True):
        """The calling thread's view of a path: (canonical path, stat or None)."""
        hv = self.hv
        t = hv.procs.get(hv.cur_tid)
        r = hv.vfs.resolver.resolve(hv.vfs.base_dir(t, dirfd), guest_path, follow=follow)
        return r.path, (r.st if r.exists else None)

    def stat_fd(self, guest_fd: int):
        """stat of an fd of the calling thread (virtual or real)."""
        hv = self.hv
        t = hv.procs.get(hv.cur_tid)
        vf = t.files.fds.get(guest_fd)
        if vf is not None:
            return hv.vfs.fstat_of(vf)
        return os.stat("/proc/%d/fd/%d" % (t.tid, guest_fd))

    def scratch_addr(self, size: int) -> int:
        """Guest address of ``size`` bytes (at most 256) that a hook may use for one
        call's rewritten arguments (the end of the calling thread's scratch area)."""
        hv = self.hv
        if size > 256:
            raise ValueError("scratch request too large")
        return hv.scratch(hv.procs.get(hv.cur_tid)) + SCRATCH_SIZE - 256

    def on_exec(self, callback) -> None:
        """callback(tid) after every successful exec, before the new program runs."""
        self.hv.exec_hooks.append(callback)
        self.hv.set_lazy()

    def drop_exec_hook(self, callback) -> None:
        if callback in self.hv.exec_hooks:
            self.hv.exec_hooks.remove(callback)
        self.hv.set_lazy()

    def open_memfile(self, guest_path: bytes, data: bytes, cloexec: bool):
        """The action that makes the pending open() give the guest a read-only virtual
        file holding data (a module's own view of a /proc file)."""
        from umvu.core.vfiles import MemFile, VFile
        hv = self.hv
        t = hv.procs.get(hv.cur_tid)
        vf = VFile(None, MemFile(data), 0, guest_path, os.O_RDONLY, False)
        return hv.vfs.install(t, vf, cloexec)

    def thread_of(self, tid: int):
        """Any traced thread by tid (None if it is not a guest)."""
        return self.hv.known(tid)

    def thread(self):
        return self.hv.procs.get(self.hv.cur_tid)

    def set_credentials(self, source) -> None:
        self._credentials = source

    def credentials(self, thread):
        source = self._credentials
        return source(thread) if source is not None and thread is not None else None

    def guest_read(self, guest_addr: int, size: int) -> bytes:
        """Memory of the calling guest thread (an ioctl's argument); EFAULT if bad."""
        return self.hv.tracer.peek(self.hv.cur_tid, guest_addr, size)

    def guest_read_str(self, guest_addr: int) -> bytes:
        """A NUL-terminated string (a path) of the calling guest thread."""
        return self.hv.tracer.peekstr(self.hv.cur_tid, guest_addr)

    def read_memory(self, tid: int, guest_addr: int, size: int) -> bytes:
        """Memory of any stopped guest thread (exec hooks)."""
        return self.hv.tracer.peek(tid, guest_addr, size)

    def write_memory(self, tid: int, guest_addr: int, data: bytes) -> None:
        self.hv.tracer.poke(tid, guest_addr, data)

    def guest_write(self, guest_addr: int, data: bytes) -> None:
        self.hv.tracer.poke(self.hv.cur_tid, guest_addr, data)

    def private_dir(self) -> bytes:
        """A directory of this session's own (exec copies, fifos), removed at the end."""
        return os.fsencode(self.hv.private_dir())

    def _status(self):
        """(uid, gid, groups) of the calling guest thread: its fs ids, as the kernel
        checks them (or the virtual ones of set_credentials' source); read from /proc
        once and kept until the thread execs or calls a set*id."""
        hv = self.hv
        tid = hv.cur_tid
        t = hv.procs.get(tid)
        creds = self.credentials(t)
        if creds is not None:
            return creds.uid[3], creds.gid[3], set(creds.groups)
        ids = self._ids.get(tid)
        if ids is None:
            uid = gid = 0
            groups = set()
            try:
                with open("/proc/%d/status" % tid, "rb") as f:
                    for line in f:
                        if line.startswith(b"Uid:"):
                            uid = int(line.split()[4])
                        elif line.startswith(b"Gid:"):
                            gid = int(line.split()[4])
                        elif line.startswith(b"Groups:"):
                            groups = {int(g) for g in line.split()[1:]}
                            break
            except OSError:
                return 0, 0, set()
            ids = self._ids[tid] = (uid, gid, groups)
        return ids

    def forget_ids(self, tid: int) -> None:
        self._ids.pop(tid, None)

    def caller(self):
        """(uid, gid, pid, umask) of the guest thread whose call is being served."""
        hv = self.hv
        t = hv.procs.get(hv.cur_tid)
        uid, gid, _ = self._status()
        return uid, gid, t.process.tgid if t else hv.cur_tid, t.fs.umask if t else 0o022

    def caller_groups(self) -> set:
        return self._status()[2]

    def remove_path(self, module, prefix: bytes) -> None:
        for e in list(self.hv.table.entries):
            if e.kind == "path" and e.module is module and e.key == prefix:
                self.hv.table.remove(e)


class ImageSource:
    """What ModuleAPI.image_source found: host_path, offset, size; release() when the
    mount using it goes away."""

    def __init__(self, host_path: bytes, offset: int, size, entry) -> None:
        self.host_path, self.offset, self.size, self._entry = host_path, offset, size, entry

    def release(self) -> None:
        if self._entry is not None:
            self._entry.users -= 1
            self._entry = None


class ModuleFile:
    """A file a module opened through ModuleAPI.open_path: host fd or virtual handle."""

    def __init__(self, service, handle, path: bytes) -> None:
        self.service, self.handle, self.path = service, handle, path

    def pread(self, size: int, offset: int) -> bytes:
        if self.service is None:
            return os.pread(self.handle, size, offset)
        return self.service.pread(self.handle, size, offset)

    def pwrite(self, data: bytes, offset: int) -> int:
        if self.service is None:
            return os.pwrite(self.handle, data, offset)
        return self.service.pwrite(self.handle, data, offset)

    def fstat(self):
        if self.service is None:
            return os.fstat(self.handle)
        return self.service.fstat(self.handle)

    def fsync(self) -> None:
        if self.service is None:
            os.fsync(self.handle)
        elif implements(self.service, "fsync"):
            self.service.fsync(self.handle)

    def close(self) -> None:
        if self.service is None:
            os.close(self.handle)
        elif implements(self.service, "close"):
            self.service.close(self.handle)


class Hypervisor:
    def __init__(self, noseccomp: bool = False, debugtags: str = "",
                 view_name: bytes = b"", tracer: Tracer | None = None) -> None:
        # noseccomp (-S): no filter; every syscall stops (PTRACE_SYSCALL entry and exit
        # stops) and goes through the dispatcher
        self.noseccomp = noseccomp
        self.debugtags = set(debugtags)
        self.view_name = view_name
        self.tracer = tracer if tracer is not None else Tracer()
        self.table = Responsibility()
        self.modules: dict[str, object] = {}
        self.api = ModuleAPI(self)
        self.vfs = VirtualFS(self)
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
            "virtual": self.vsys.on_virtual,
        }
        self._by_name = {"getcwd": self.on_getcwd, "umask": self.on_umask,
                         "msync": self.vfs.on_msync_munmap,
                         "munmap": self.vfs.on_msync_munmap,
                         "execve": self.vfs.on_path, "execveat": self.vfs.on_path,
                         "epoll_ctl": self.vfs.on_epoll_ctl}
        for name in SETID:
            self._by_name[name] = self.on_setid
        self.hooks: dict = {}  # syscall number -> service (ModuleAPI.claim_syscalls)
        self.exec_hooks: list = []  # ModuleAPI.on_exec callbacks
        self.shared_maps: list = []  # vfs.SharedMap of live MAP_SHARED mappings
        self.shared_maps_made = False  # since then msync and munmap are traced
        self._exec_dir: str | None = None  # host copies of executed virtual files
        self._placeholder: bytes | None = None  # see placeholder_dir

    # ------------------------------------------------------------- lifecycle
    def run(self, launch) -> int:
        """Supervise the guest ``launch`` started (and followed in C until an event
        needed the hypervisor: that event waits in the tracer) to its end; returns the
        exit status a shell would report."""
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
        if self._exec_dir is not None:
            import shutil
            shutil.rmtree(self._exec_dir, ignore_errors=True)
        for e in list(self.table.entries)[::-1]:  # newest first: stacked mounts
            if e.mounted and not e.alias:             # go before what they stand on
                call_to_retval(e.module.umount, e.service, 0)
            if e in self.table.entries:
                self.table.remove(e)
        for name in list(self.modules)[::-1]:
            call_to_retval(self.modules.pop(name).cleanup)

    def _loop(self) -> None:
        ev = self.tracer.event
        if os.environ.get("UMVU_EVTIME"):
            return self._timed_loop(ev, os.environ["UMVU_EVTIME"])
        waits = self.waits
        while self.tracer.next():
            wait = self._dispatch(ev)
            if wait is not None or waits.trio_wanted:
                return waits.run_trio(self._trio_loop, wait)

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

    def _timed_loop(self, ev, path: str) -> None:
        """The loop, timing each event in Python by kind and call (UMVU_EVTIME=FILE:
        a table of events, their Python time and the time waited for them, written at
        the end; a tool for profiling the Python path)."""
        names = {EV_SYSCALL_EXIT: "exit of ", EV_CLONE: "clone", EV_EXEC: "exec",
                 EV_EXITED: "exited", EV_BOUNDARY: "boundary", EV_KNOCK: "knock"}
        clock = time.perf_counter_ns
        table: dict[str, list] = {}
        waited = 0
        t_wait = clock()
        while self.tracer.next():
            t0 = clock()
            waited += t0 - t_wait
            kind = ev.kind
            key = names.get(kind, "?")
            if kind in (EV_SYSCALL, EV_SYSCALL_EXIT):
                sc = syscalls.BY_NR.get(ev.nr)
                key = ("" if kind == EV_SYSCALL else key) + (sc.name if sc else str(ev.nr))
            wait = self._dispatch(ev)
            t_wait = clock()
            row = table.setdefault(key, [0, 0])
            row[0] += 1
            row[1] += t_wait - t0
            if wait is not None or self.waits.trio_wanted:  # (untimed from then on)
                self.waits.run_trio(self._trio_loop, wait)
                break
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
            self._pending_exit.pop(ev.msg, None)
            if not ev.resumed:
                tracer.resume(tid)
        elif kind == EV_EXITED:
            self.api.forget_ids(tid)
            if self.waits.parked:
                self.waits.gone(tid)
            procs.exited(tid)
            self._pending_exit.pop(tid, None)
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
        if self.lazy:
            t = procs.threads.get(tid)
            if t is not None:
                self.update_plain(t)
        return wait

    # ------------------------------------------------------------- lazy following
    def update_plain(self, t) -> None:
        """Tell the C loop whether t's clones may be followed without Python: nothing of
        t's that this table keeps would go to a child but what a fresh adoption from the
        kernel and the tree gives (current filter, no virtual fd, no virtual cwd, no
        module state). Going plain may come late (here, after an event); leaving it
        comes at once, before the guest runs on (on_vfd_added, on_fs_virtual,
        on_data_changed, new_filter_gen)."""
        p = t.process
        plain = (self.lazy and p.filter_gen == self.filter_gen and not p.data
                 and not t.files.fds and t.fs.kernel_cwd and t.fs.root == b"/")
        if plain != t.plain:
            t.plain = plain
            self.tracer.set_plain(t.tid, plain)

    def set_lazy(self) -> None:
        """What the C loop follows alone: clones of plain threads, and the execs of
        unseen ones unless a module hooks every exec."""
        self.tracer.set_lazy(self.lazy, self.lazy and not self.exec_hooks)

    def _not_plain(self, threads) -> None:
        for t in threads:
            if t.plain:
                t.plain = False
                self.tracer.set_plain(t.tid, False)

    def sync_unseen(self) -> None:
        """Adopt the threads the C loop followed alone (their state is what the kernel
        and the tree say: see update_plain), before anything looks at every thread."""
        if not self.lazy:
            return
        rows = self.tracer.tree_rows(unseen_only=True)
        if rows:
            for t in self.procs.adopt(rows, None, self.tracer.tree_rows(), self.filter_gen):
                self.update_plain(t)

    def all_threads(self) -> list:
        """Every guest thread (the unseen ones adopted first)."""
        self.sync_unseen()
        return list(self.procs.threads.values())

    def known(self, tid: int):
        """The thread tid (adopted if the C loop followed it alone), or None."""
        t = self.procs.get(tid)
        if t is None:
            self.sync_unseen()
            t = self.procs.get(tid)
        return t

    def new_filter_gen(self) -> None:
        """A new filter every process must stack: the unseen threads are adopted with the
        generation they have, and no thread is plain until it has the new one."""
        self.sync_unseen()
        self.filter_gen += 1
        self.tracer.plain_reset()
        for t in self.procs.threads.values():
            t.plain = False

    def on_fs_virtual(self, fs) -> None:
        """fs's cwd went inside a virtual mount: a child must copy it."""
        self._not_plain(t for t in self.all_threads() if t.fs is fs)

    def on_data_changed(self, process) -> None:
        self._not_plain(self.procs.threads[tid] for tid in process.threads
                        if tid in self.procs.threads)

    # ------------------------------------------------------------- calls into modules
    def call(self, service, method: str, *args):
        """Call a module/service method; a missing method is ENOSYS; a coroutine
        method is run to its end (it may wait: umvu.core.waiting)."""
        fn = getattr(service, method, None)
        if fn is None:
            raise OSError(errno.ENOSYS, "%s not implemented" % method)
        result = fn(*args)
        if type(result) is CoroutineType:
            return drive(result)
        return result

    # ------------------------------------------------------------- syscalls
    def thread(self, tid: int):
        t = self.known(tid)
        if t is None:  # a thread we missed: adopt it with the kernel's view
            t = self.procs.add_initial(tid, os.fsencode(os.readlink("/proc/%d/cwd" % tid)))
        return t

    def on_syscall(self, tid: int, nr: int):
        """Serve a call (in the server greenlet: it may wait); a Wait if it does."""
        return self.waits.run(self._serve_syscall, tid, nr, self.tracer.args())

    def _serve_syscall(self, tid: int, nr: int, args) -> None:
        self.stopped_tid = tid
        try:
            self._on_syscall(tid, nr, args)
        finally:
            self.stopped_tid = 0

    def _on_syscall(self, tid: int, nr: int, args) -> None:
        sc = syscalls.BY_NR.get(nr)
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
        """Answer tid's call, at a seccomp notification, with a new fd of action.grant's
        host file (then action.on_exit); False when tid is at a ptrace stop instead."""
        opener, flags = action.grant
        try:
            host_fd = opener()
        except OSError as e:
            log.error("umvu: cannot open what pid %d gets: %s", tid, e)
            return False  # made by the guest's call then
        try:
            ret = self.tracer.grant_fd(tid, host_fd, flags)
        except OSError as e:
            ret = -e.errno
        finally:
            os.close(host_fd)
        if ret is None:
            return False
        try:
            if action.on_exit is not None:  # binds the fd (and stacks its filter)
                action.on_exit(ret)          # before the guest can use it
        finally:
            self.tracer.skip(tid, ret)
        return True

    def update_hooks(self) -> None:
        self.hooks = {e.key: e.service for e in self.table.entries if e.kind == "syscall"}
        self.need_syscalls()

    def perform(self, t, sc, nr, args, action) -> None:
        tid = t.tid
        debug = "s" in self.debugtags
        line = self.format_call(tid, sc, args, nr) if debug else None
        if action is None:
            if debug:
                self._pending_exit[tid] = (line, None, None)
                self.tracer.native(tid, want_exit=True)
            else:
                self.tracer.native(tid)
        elif isinstance(action, int):
            if debug:
                log.info("%s = %s", line, _format_ret(action))
            self.tracer.skip(tid, action)
        else:
            if action.grant is not None and not debug and self.grant(tid, action):
                return
            new_args = action.args() if callable(action.args) else action.args
            original = None
            if new_args is not None or action.nr is not None:
                self.tracer.set_syscall(tid, nr if action.nr is None else action.nr,
                                        args if new_args is None else new_args)
                original = (nr, list(args))
            if action.on_exit is not None or debug:
                self._pending_exit[tid] = (line, action.on_exit, original)
                self.tracer.native(tid, want_exit=True)
            else:
                self.tracer.native(tid)

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

    # --- core-handled syscalls
    def on_getcwd(self, t, sc, args):
        if t.fs.kernel_cwd:
            return None
        return self.vfs.sized_out(t, args[0], max(args[1], 1), t.fs.cwd + b"\0") \
            if args[1] else -errno.ERANGE

    def on_setid(self, t, sc, args):
        """The thread's ids may change: read them again at its next call."""
        self.api.forget_ids(t.tid)
        return None

    def on_umask(self, t, sc, args):
        new = args[0] & 0o777

        def done(ret):
            if ret >= 0:
                t.fs.umask = new
        return Native(None, done)

    def on_mmap(self, t, sc, args):
        flags = s32(args[3])
        if flags & 0x20:  # MAP_ANONYMOUS
            return None
        vf = t.files.fds.get(s32(args[4]))
        if vf is None or "mmap" in vf.native:
            return None
        return self.vfs.f_mmap(t, args, vf, s32(args[4]))

    def placeholder_dir(self) -> bytes:
        """An empty directory the guest opens in place of a module's directory."""
        if self._placeholder is None:
            path = os.path.join(self.private_dir(), "dir")
            os.mkdir(path, 0o555)
            self.procs.obs.placeholder_links += (path,)
            self._placeholder = os.fsencode(path)
        return self._placeholder

    def private_dir(self) -> str:
        if self._exec_dir is None:
            import tempfile
            self._exec_dir = tempfile.mkdtemp(prefix="umvu-")
            os.chmod(self._exec_dir, 0o711)
        return self._exec_dir

    def exec_copy(self, entry, rel: bytes, st) -> bytes:
        """A host copy of a virtual executable, readable and executable by the guest."""
        import hashlib
        self.private_dir()
        handle = self.call(entry.service, "open", rel, os.O_RDONLY, 0)
        try:
            data = bytearray()
            while True:
                chunk = self.call(entry.service, "pread", handle, 1 << 20, len(data))
                if not chunk:
                    break
                data += chunk
        finally:
            self.call(entry.service, "close", handle)
        name = hashlib.sha256(entry.key + rel + bytes(data)).hexdigest()[:24]
        path = os.path.join(self._exec_dir, name)
        if not os.path.exists(path):
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.chmod(path + ".tmp", 0o755)
            os.rename(path + ".tmp", path)
        return os.fsencode(path)

    # ------------------------------------------------------------- guest memory
    def scratch(self, t) -> int:
        """Guest address of this thread's scratch area (made at first use)."""
        addr = t.mem.scratch.get(t.tid)
        if addr is None:
            ret = self.tracer.inject(t.tid, NR_MMAP, 0, SCRATCH_SIZE, 3, 0x22,
                                     0xFFFFFFFFFFFFFFFF, 0)
            if -4096 < ret < 0:
                raise OSError(-ret, "cannot map a scratch area in the guest")
            addr = ret
            t.mem.scratch[t.tid] = addr
        return addr

    # ------------------------------------------------------------- filter widening
    def need_syscalls(self) -> None:
        """A module was loaded: trace what modules need, in every process."""
        extra = MODULE_EXTRA | WRITE_BACK if self.shared_maps_made else MODULE_EXTRA
        want = {sc.nr for sc in syscalls.BY_NR.values() if sc.nr >= 0 and (
            sc.choice in MODULE_CHOICES or sc.name in extra)} | set(self.hooks)
        if self.fd_filtering:  # trapped per virtual fd instead (on_vfd_added)
            fd_arg = self.fd_arg_of()
            want = {nr for nr in want if nr >= len(fd_arg) or fd_arg[nr] == 255}
        if want <= self.filter_numbers or self.noseccomp:
            self.filter_numbers |= want
            self.update_fastpath()
            return
        self.filter_numbers |= want
        self.new_filter_gen()
        self.update_fastpath()
        self.want_upgrades()

    def need_write_back(self, t) -> None:
        """A first MAP_SHARED mapping of a virtual file: trace msync and munmap from now
        on, in t's process (at a syscall stop) at once."""
        if self.shared_maps_made:
            return
        self.shared_maps_made = True
        self.need_syscalls()
        if not self.noseccomp and t.process.filter_gen < self.filter_gen:
            self.upgrade_filter(t)

    def want_upgrades(self) -> None:
        """Every process whose filter is older than filter_gen (but the current
        thread's, upgraded at its next call) stops at its next syscall boundary."""
        seen = set()
        for t in self.waits.unparked_first(self.all_threads()):
            if t.process.tgid in seen or t.tid == self.cur_tid:
                continue
            seen.add(t.process.tgid)
            if t.process.filter_gen < self.filter_gen:
                self.tracer.want_boundary(t.tid)

    # fd-choice syscalls the C loop may resume by itself when their fd is virtual in no
    # fd table (fchdir and close_range need the core even for real fds)
    FASTPATH_EXCLUDE = {"fchdir", "close_range"}

    def fd_arg_of(self) -> bytes:
        """nr -> index of the fd argument (255: none) of the calls that need Python only
        when that fd is virtual."""
        table = bytearray([255]) * syscalls.NBITS
        for sc in syscalls.BY_NR.values():
            if not 0 <= sc.nr < syscalls.NBITS or sc.name in self.FASTPATH_EXCLUDE \
                    or sc.nr in self.hooks:  # a module looks at every such call
                continue
            if sc.choice in ("fd", "ioctl") and sc.args and sc.args[0] == "fd":
                table[sc.nr] = 0
            elif sc.choice == "mmap":
                table[sc.nr] = 4
        return bytes(table)

    def update_fastpath(self) -> None:
        table = self.fd_arg_of()
        if self.fd_filtering:
            self.fd_arg_table = table
        enable = not self.noseccomp and "s" not in self.debugtags
        self.tracer.set_fastpath(table, enable)
        # the C loop may answer fstat of virtual fds (vfs.remember_stat) unless a module
        # looks at those calls
        self.fdstat_enabled = enable and not {syscalls.BY_NAME[n].nr for n in (
            "fstat", "newfstatat")} & set(self.hooks)
        self.vfs.drop_stats()
        # -S: calls no module wants stop (twice) but need no Python; -d s shows them all
        self.tracer.set_wanted(syscalls.bitmap(self.filter_numbers),
                               self.noseccomp and "s" not in self.debugtags)
        self.update_pathfast()

    # path-choice syscalls the C loop never decides: chdir and chroot change what the
    # core follows; the rest are rare and have flags that change how paths resolve
    PATHFAST_EXCLUDE = {"chdir", "chroot", "openat2", "name_to_handle_at", "open_tree",
                        "open_tree_attr", "move_mount", "fspick", "mount_setattr",
                        "pivot_root", "acct", "swapon", "swapoff", "quotactl", "uselib",
                        "fanotify_mark"}
    # not path-choice calls, but the kernel's own whenever their path is (the exec event
    # is what the core follows)
    PATHFAST_EXTRA = {"execve", "execveat"}
    # always Python's: /proc (its magic links, /proc/self, virtual mounts tables)
    PATHFAST_ALWAYS = [b"/proc"]

    def update_pathfast(self) -> None:
        """Tell the C loop which path syscalls it may resume by itself and which prefixes
        (every path entry, every host tree served natively elsewhere, /proc) it must
        leave to Python."""
        table = bytearray([255]) * (5 * syscalls.NBITS)
        notif = set()
        for sc in syscalls.BY_NR.values():
            if not 0 <= sc.nr < syscalls.NBITS or sc.nr in self.hooks:
                continue
            if sc.name == "getcwd":  # Python's only while some cwd is virtual
                table[5 * sc.nr + 4] = 2
                notif.add(sc.nr)
                continue
            if (sc.choice not in ("path", "path2") and sc.name not in self.PATHFAST_EXTRA) \
                    or sc.name in self.PATHFAST_EXCLUDE:
                continue
            notif.add(sc.nr)
            for slot, idx in enumerate(sc.path_args()):
                table[5 * sc.nr + 2 * slot] = idx
                if idx and sc.args[idx - 1] == "dirfd":
                    table[5 * sc.nr + 2 * slot + 1] = idx - 1
            table[5 * sc.nr + 4] = 1 if sc.name == "utimensat" else 0
        prefixes = self.table.path_keys() + self.PATHFAST_ALWAYS
        for e in self.table.mounts():
            root = capability(e.service, "native_root")
            if root is not None:
                prefixes.append(root)
        enable = not self.noseccomp and "s" not in self.debugtags and \
            os.environ.get("UMVU_PATHFAST", "1") != "0"
        self.tracer.set_pathfast(bytes(table), prefixes, enable)
        # (a filter stacked earlier may still send a number no longer here: the C loop
        # then hands it to Python as any call)
        self.notif_numbers = notif if enable else set()

    # seccomp(SET_MODE_FILTER, flags): TSYNC, and for a filter with a listener
    # NEW_LISTENER | TSYNC_ESRCH | WAIT_KILLABLE_RECV (a notification taken is not
    # interrupted by the guest's signals: the C loop answers it soon)
    TSYNC = 1
    LISTENER = 8 | 16 | 32

    def stack_filter(self, t, prog: bytes, notif_bitmap: bytes | None = None) -> bool:
        """Stack the BPF program prog onto t's process (t is at a syscall stop); with
        notif_bitmap, the numbers prog sends to a listener (the C loop's)."""
        try:
            addr = self.scratch(t)
        except OSError as e:
            log.error("umvu: pid %d: cannot stack a seccomp filter: %s", t.tid, e)
            return False
        fprog = struct.pack("<HxxxxxxQ", len(prog) // 8, addr + 16)
        self.tracer.poke(t.tid, addr, fprog + prog)
        flags = self.TSYNC | (self.LISTENER if notif_bitmap is not None else 0)
        ret = s64(self.tracer.inject(t.tid, NR_SECCOMP, 1, flags, addr))  # SET_MODE_FILTER
        if notif_bitmap is not None and ret >= 0:
            try:
                self.tracer.listener_add(t.process.tgid, ret, notif_bitmap)
                return True
            except OSError as e:
                log.error("umvu: pid %d: no seccomp listener: %s", t.tid, e)
                return False  # (the filter's notifications then fail with ENOSYS)
            finally:
                self.tracer.inject(t.tid, NR_CLOSE, ret)
        if ret == -errno.EBUSY and notif_bitmap is not None:
            return False  # a listener is in the stack already (see upgrade_filter)
        if ret != 0:
            log.error("umvu: pid %d: stacking a seccomp filter failed (%d)", t.tid, ret)
            return False
        return True

    def upgrade_filter(self, t) -> None:
        """Stack the current filter onto t's process (t is at a syscall stop). A stack
        holds one listener at most (the kernel answers EBUSY to a second): a process that
        has one gets a filter without, whose numbers trap as ptrace stops where the older
        filter does not send them to its listener (the kernel takes USER_NOTIF over
        TRACE)."""
        numbers = syscalls.bitmap(self.filter_numbers)
        notif = self.notif_numbers & self.filter_numbers if self.notif_ok else set()
        ok = False
        if notif:
            notif_bitmap = syscalls.bitmap(notif)
            ok = self.stack_filter(t, build_filter(numbers, notif_bitmap), notif_bitmap)
            if ok:
                self.listeners_made = True
            elif not self.listeners_made:
                self.notif_ok = False  # a kernel without listeners: stops only
        if not ok:
            ok = self.stack_filter(t, build_filter(numbers))
        if ok:
            t.process.filter_gen = self.filter_gen
            self.refresh_fs(t)

    # a process gets a filter per fd number that becomes virtual in its fd table, up to
    # this many (each costs ~20 ns on every syscall of the process: measured 193 ns per
    # getppid with none, 273 with one, 424 with 8, 597 with 16); then one that traps
    # every fd call by number. tar of a tree 12 deep holds ~15 numbers.
    FD_TRAPS_MAX = int(os.environ.get("UMVU_FD_TRAPS", "24"))

    def on_vfd_added(self, table, guest_fd: int) -> None:
        """guest_fd became virtual in table (or another kind of virtual fd): every
        process using the table must trap its calls on it before it can make one. The
        thread at the stop being handled gets the filter at once; other processes at
        their next syscall boundary (asked for now, before this stop ends, so none of
        them can call on the fd before)."""
        sharers = self.waits.unparked_first(
            [t for t in self.all_threads() if t.files is table])
        self._not_plain(sharers)  # a child must copy the fd
        if not self.fd_filtering:
            return
        vf = table.fds.get(guest_fd)
        if vf is None:
            return
        stopped = self.procs.get(self.stopped_tid) if self.stopped_tid else None
        seen = set()
        for t in sharers:
            p = t.process
            if t.files is not table or p.tgid in seen:
                continue
            seen.add(p.tgid)
            if self.fd_trapped(p, guest_fd, vf.native):
                continue
            if stopped is not None and stopped.process is p:
                self.trap_fd(stopped, guest_fd)
            else:
                p.fd_pending.add(guest_fd)
                self.tracer.want_boundary(t.tid)

    @staticmethod
    def fd_trapped(p, guest_fd: int, native: frozenset) -> bool:
        """p's filters trap every call on guest_fd but (some of) those in native."""
        if p.fd_traps is None:
            return True
        let_by = p.fd_traps.get(guest_fd)
        return let_by is not None and let_by <= native

    def trap_fd(self, t, guest_fd: int) -> None:
        """Stack onto t's process (t at a syscall stop) the filter guest_fd needs now."""
        vf = t.files.fds.get(guest_fd)
        p = t.process
        if vf is None or self.fd_trapped(p, guest_fd, vf.native):
            return  # closed since it was asked for (asked again if it comes back)
        if len(p.fd_traps) >= self.FD_TRAPS_MAX:
            nrs = {nr for nr, arg in enumerate(self.fd_arg_table) if arg != 255}
            if self.stack_filter(t, build_filter(syscalls.bitmap(nrs))):
                p.fd_traps = None
            return
        table = self.fd_arg_table
        if vf.native:
            native = {syscalls.BY_NAME[n].nr for n in vf.native}
            table = bytes(255 if nr in native else arg for nr, arg in enumerate(table))
        if self.stack_filter(t, build_fd_filter(table, guest_fd)):
            let_by = p.fd_traps.get(guest_fd)
            p.fd_traps[guest_fd] = vf.native if let_by is None else let_by & vf.native

    @staticmethod
    def refresh_fs(t) -> None:
        """Read cwd and umask from the kernel: the core does not follow them while no
        module is loaded (nothing traps, or -S lets them by). A cwd inside a virtual
        mount is the core's own (the kernel's is elsewhere): kept."""
        try:
            if t.fs.kernel_cwd:
                t.fs.cwd = os.fsencode(os.readlink("/proc/%d/cwd" % t.tid))
        except OSError:
            return
        umask = kernel_umask(t.tid)
        if umask is not None:
            t.fs.umask = umask

    def on_boundary(self, tid: int) -> None:
        t = self.thread(tid)
        self.cur_tid = tid
        if t.process.filter_gen < self.filter_gen:
            self.upgrade_filter(t)
        pending, t.process.fd_pending = t.process.fd_pending, set()
        for guest_fd in sorted(pending):
            self.trap_fd(t, guest_fd)
        self.tracer.boundary_done(tid)

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

    # ------------------------------------------------------------- /proc/mounts
    def proc_mounts(self, t, mountinfo: bool) -> bytes:
        name = "mountinfo" if mountinfo else "mounts"
        try:
            with open("/proc/%d/%s" % (t.tid, name), "rb") as f:
                real = f.read()
        except OSError:
            real = b""
        lines = []
        for e in self.table.mounts():
            opts = ("ro" if e.flags & 1 else "rw") + ("," + e.options if e.options else "")
            src = _octal_escape(e.source or b"none")
            dst = _octal_escape(e.key)
            fstype = (e.fstype or "vu").encode()
            if mountinfo:
                lines.append(b"%d 1 0:%d / %s %s - %s %s %s\n" % (
                    100000 + e.seq, 200 + e.seq, dst, opts.split(",")[0].encode(), fstype,
                    src, opts.encode()))
            else:
                lines.append(b"%s %s %s %s 0 0\n" % (src, dst, fstype, opts.encode()))
        return real + b"".join(lines)


def _octal_escape(path: bytes) -> bytes:
    out = bytearray()
    for ch in path:
        if ch in b" \t\n\\":
            out += b"\\%03o" % ch
        else:
            out.append(ch)
    return bytes(out)


def _format_ret(ret: int) -> str:
    if -4096 < ret < 0:
        name = errno.errorcode.get(-ret, "E?")
        return "-1 %s (%s)" % (name, os.strerror(-ret))
    return str(ret) if -4096 < ret < 1 << 20 else hex(ret & 0xFFFFFFFFFFFFFFFF)
