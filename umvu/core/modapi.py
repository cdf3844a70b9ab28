"""The hypervisor's side of the module API (umvu.api.HypervisorAPI): what a module may
ask, and the files and images it opens through the guest's view."""
from __future__ import annotations

import errno
import os
import stat

from umvu.api import HypervisorAPI, capability, implements
from umvu.core import credentials, syscalls
from umvu.core.guests import SCRATCH_SIZE
from umvu.core.process import fs_ids
from umvu.core.registry import LOCAL_HOOK, NOTIFY_HOOK, Entry


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

    def image_source(self, path: bytes, below=None, write=None,
                     device_ok: bool = False) -> "ImageSource":
        """The host file behind a guest-view image path: a real file is itself (size
        None); a device of a module is the window its service's ``host_backing(rel)``
        names, as (host_path, offset, size). The device counts as busy (vuumount says
        EBUSY) until the ImageSource is released. write True/False: those bytes locked
        (ImageSource.lock). A device whose bytes no host file holds (a partition of a
        qcow2 disk) is ENOTBLK, unless device_ok: then the source's ``file`` is that
        device opened through its module (a ModuleFile; host_path is the guest path,
        size its seek_size), written back and closed at release()."""
        hv = self.hv
        entry, rel = self._lookup_below(path, below)
        if entry is None:
            st = os.stat(path)  # ENOENT, EACCES... as the guest would see them
            if stat.S_ISDIR(st.st_mode):
                raise OSError(errno.EISDIR, "%s is a directory" % os.fsdecode(path))
            source = ImageSource(path, 0, None, None)
        else:
            try:
                if capability(entry.service, "host_backing") is None:
                    raise OSError(errno.ENOTBLK, "%s is served by module %s, which offers "
                                  "no image" % (os.fsdecode(path), entry.module.name))
                host_path, offset, size = hv.call(entry.service, "host_backing", rel)
            except OSError as e:
                if e.errno != errno.ENOTBLK or not device_ok:
                    raise
                return self._device_source(path, below, write)
            entry.users += 1
            source = ImageSource(host_path, offset, size, entry)
        if write is not None:
            try:
                source.lock(write, path)
            except BaseException:
                source.release()
                raise
        return source

    def _device_source(self, path: bytes, below, write) -> "ImageSource":
        file = self.open_path(path, os.O_RDWR if write else os.O_RDONLY, below=below)
        seek_size = capability(file.service, "seek_size")  # (a device's size)
        size = self.hv.call(file.service, "seek_size", file.handle) \
            if seek_size is not None else None
        source = ImageSource(file.path, 0, size, None)
        source.file = file
        return source

    def claim_syscalls(self, module, names, service, notify: bool = False,
                       local: bool = False) -> list:
        """Claim system calls by name (VUOS's syscall choice): before the core's own
        dispatch, ``service.syscall(t, sc, args)`` may answer (an int, a Native, None for
        the kernel) or return PASS to let the core dispatch as usual; after the call,
        ``service.after(t, sc, args, ret)`` may look at (and change) the result.
        notify: the calls come as seccomp notifications, not ptrace stops (a result, a
        granted fd or the kernel's own call answer them cheaply; a rewrite or an exit
        stop costs more): for calls of scalar arguments (a decision on memory the guest
        can change must not let the call run as it is). local: no process traps them
        but where trap_in_process asked it (one request range of one call)."""
        entries = []
        flags = (NOTIFY_HOOK if notify else 0) | (LOCAL_HOOK if local else 0)
        for name in names:
            sc = syscalls.BY_NAME[name]
            entries.append(self.hv.table.add(Entry("syscall", sc.nr, module, service,
                                                   flags=flags)))
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

    def fd_handle(self, guest_fd: int, service):
        hv = self.hv
        vf = hv.procs.get(hv.cur_tid).files.fds.get(guest_fd)
        if vf is None or vf.service is not service:
            return None
        return vf.handle

    def scratch_addr(self, size: int) -> int:
        """Guest address of ``size`` bytes that a hook may use for one call's rewritten
        arguments: at most 256 (the end of the calling thread's scratch area), or up
        to SCRATCH_SIZE / 2 - 256 (its upper half: an exec's new argv)."""
        hv = self.hv
        base = hv.scratch(hv.procs.get(hv.cur_tid))
        if size <= 256:
            return base + SCRATCH_SIZE - 256
        if size > SCRATCH_SIZE // 2 - 256:
            raise ValueError("scratch request too large")
        return base + SCRATCH_SIZE // 2

    def trap_in_process(self, name: str, arg: int, lo: int, hi: int) -> bool:
        """The calling thread's process (and its children, across execs) traps syscall
        name when the low 32 bits of argument arg are in [lo, hi): to a hook claimed
        with local=True (netdevice ioctls of a process in a network stack)."""
        hv = self.hv
        return hv.stack_local_trap(hv.procs.get(hv.cur_tid), syscalls.number(name), arg,
                                   lo, hi)

    def open_in(self, tid: int, host_path: bytes, flags: int = os.O_RDONLY) -> int:
        """A host file opened in a stopped guest thread's fd table (an openat made by
        the thread, injected at its syscall stop): the fd, or OSError."""
        hv = self.hv
        t = hv.procs.get(tid)
        if t is None:
            raise OSError(errno.ESRCH, os.strerror(errno.ESRCH))
        addr = hv.scratch(t) + SCRATCH_SIZE - 4096
        hv.tracer.poke(tid, addr, host_path + b"\0")
        ret = hv.tracer.inject(tid, syscalls.number("openat"), -100 & 0xFFFFFFFFFFFFFFFF,
                               addr, flags, 0)
        ret = ret - (1 << 64) if ret >= 1 << 63 else ret
        if ret < 0:
            raise OSError(-ret, os.strerror(-ret))
        return ret

    def close_in(self, tid: int, guest_fd: int) -> None:
        """close(guest_fd), injected at a stopped guest thread's stop (open_in's undo)."""
        self.hv.tracer.inject(tid, syscalls.number("close"), guest_fd)

    def exec_path(self, guest_path: bytes) -> bytes:
        """The host file the kernel is to exec for a guest path (the calling thread's
        view): a real file itself, a module's own host file, else a private copy of its
        content (as an exec of a virtual file runs). OSError as the exec would fail."""
        hv = self.hv
        t = hv.procs.get(hv.cur_tid)
        r = hv.vfs.resolver.resolve(hv.vfs.base_dir(t, -100), guest_path, follow=True)
        if not r.exists:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        if not stat.S_ISREG(r.st.st_mode):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        if r.entry is None:
            return r.path
        native = hv.vfs.native_path(r)
        if native is not None:
            return native
        host = capability(r.entry.service, "host_path")
        if host is not None:
            return host(r.rel)
        return os.fsencode(hv.exec_copy(r.entry, r.rel, r.st))

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
            ids = fs_ids(tid)
            if ids is None:
                return 0, 0, set()
            self._ids[tid] = ids
        return ids

    def kernel_ids(self):
        """(fs uid, fs gid, groups) of the calling guest thread as the kernel has them
        (never the virtual ones), kept until it execs or calls a set*id; None if gone."""
        tid = self.hv.cur_tid
        ids = self._ids.get(tid)
        if ids is None:
            ids = fs_ids(tid)
            if ids is not None:
                self._ids[tid] = ids
        return ids

    def forget_ids(self, tid: int) -> None:
        self._ids.pop(tid, None)

    def mounter_ids(self):
        return credentials.own_ids()

    def caller(self):
        """(uid, gid, pid, umask) of the guest thread whose call is being served."""
        hv = self.hv
        t = hv.procs.get(hv.cur_tid)
        uid, gid, _ = self._status()
        return uid, gid, t.process.tgid if t else hv.cur_tid, t.fs.umask if t else 0o022

    def caller_groups(self) -> set:
        return self._status()[2]

    def may_run_code(self, path: str) -> None:
        """Code umvu runs has umvu's privileges. In a session whose umvu is root, the
        caller must be root too (its fs uid, or the virtual one of set_credentials), and
        the file one only root could have written: it and every directory above it
        owned by root, writable by no other user (others, or a group other than root's;
        a sticky directory, as /tmp, keeps others from replacing root's entries)."""
        if os.geteuid() != 0:
            return  # the caller is umvu's own user: nothing to gain
        uid = self.caller()[0]
        if uid != 0:
            raise OSError(errno.EPERM, "%s: code files are loaded by root only in a "
                          "session umvu runs as root (caller uid %d)" % (path, uid))
        here = os.path.abspath(path)
        while True:
            try:
                st = os.stat(here)  # (as the loader will read it: links followed)
            except OSError:
                return  # the loader says what is missing
            # writable by others, or by a group other than root's own
            writers = st.st_mode & (0o002 | (0o020 if st.st_gid else 0))
            shared = writers and not (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX)
            if st.st_uid != 0 or shared:
                raise OSError(errno.EPERM, "%s: %s is %s" % (
                    path, here, "not root's" if st.st_uid else "writable by others"))
            if here == "/":
                return
            here = os.path.dirname(here)

    def remove_mount(self, service) -> None:
        """A module's own mount of service goes away, as a lazy umount2 of it
        (MNT_DETACH: open files stay the module's until closed); the module's umount is
        called once."""
        entries = [e for e in self.hv.table.mounts() if e.service is service]
        for e in entries:
            self.hv.table.remove(e)
        if entries:
            entries[0].module.umount(service, 2)

    def remove_path(self, module, prefix: bytes) -> None:
        for e in list(self.hv.table.entries):
            if e.kind == "path" and e.module is module and e.key == prefix:
                self.hv.table.remove(e)


class ImageSource:
    """What ModuleAPI.image_source found: host_path, offset, size; release() when the
    mount using it goes away."""

    def __init__(self, host_path: bytes, offset: int, size, entry) -> None:
        self.host_path, self.offset, self.size, self._entry = host_path, offset, size, entry
        self._lock_fd = -1
        self.file = None  # a device opened through its module (image_source's device_ok)

    def lock(self, write: bool, guest_path: bytes) -> None:
        """Lock the image's bytes for this mount: for writing, no other mount may have
        them; for reading, no writing one. An open file description lock (F_OFD_SETLK)
        on the byte range: it holds against every mount in every umvu session (and
        any program that locks so), as the kernel refuses a second mount of a busy
        block device; it goes with release(), or with umvu."""
        import fcntl
        import struct
        fd = os.open(self.host_path, (os.O_RDWR if write else os.O_RDONLY) | os.O_CLOEXEC)
        flock = struct.pack("hhqqi4x", fcntl.F_WRLCK if write else fcntl.F_RDLCK, os.SEEK_SET,
                            self.offset, self.size or 0, 0)
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise OSError(errno.EBUSY, "%s is mounted%s already (in this or another "
                              "umvu session)" % (os.fsdecode(guest_path),
                                                 "" if write else " read-write")) from None
            raise
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        if self._entry is not None:
            self._entry.users -= 1
            self._entry = None
        if self.file is not None:
            file, self.file = self.file, None
            try:
                file.fsync()
            finally:
                file.close()


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
