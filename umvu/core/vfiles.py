"""Virtual files: the open file descriptions modules serve (:class:`VFile`) and how the
guest holds them — installing a virtual fd (a placeholder made by the guest's own call:
an eventfd, an empty directory, or a memfd of the file's plain content, :class:`Content`),
binding and releasing it in fd tables, the C loop's fstat answers for such fds, and the
memfds behind MAP_SHARED mappings with their write-back (:class:`SharedMap`)."""
from __future__ import annotations

import errno
import os
import stat

from umvu.api import capability, implements
from umvu.core import guestabi
from umvu.core.abi import O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_NONBLOCK, O_TRUNC
from umvu.core.actions import Native
from umvu.core.log import log
from umvu.core.paths import AT_FDCWD
from umvu.core.syscalls import BY_NAME

NR_EVENTFD2 = BY_NAME["eventfd2"].nr
NR_OPENAT = BY_NAME["openat"].nr
# calls on a content fd (a memfd opened read-only) that the kernel answers as it would
# on the module's file opened read-only: the data itself, or EBADF/EINVAL/ENOTDIR
# (fsync and fdatasync are the module's: `sync FILE` opens it read-only, and what it
# asks is that the file system write the file back)
CONTENT_NATIVE = frozenset((
    "read", "pread64", "readv", "preadv", "preadv2", "lseek", "mmap", "readahead",
    "fadvise64", "write", "pwrite64", "writev", "pwritev", "pwritev2", "ftruncate",
    "fallocate", "getdents", "getdents64", "sync_file_range"))
# and on a directory's placeholder (a real empty directory): getdents and lseek (the
# position in the module's listing) are the core's
DIR_NATIVE = (CONTENT_NATIVE | {"fsync", "fdatasync"}) - {"getdents", "getdents64", "lseek"}
CONTENT_MAX = 32 << 20  # larger files stay served by their module call by call
# calls after which the C loop's answers to fstat of virtual fds (VirtualFS.remember_stat)
# still hold: the others may change some metadata of a module's file
KEEPS_STATS = frozenset((
    "stat", "lstat", "newfstatat", "statx", "fstat", "access", "faccessat", "faccessat2",
    "readlink", "readlinkat", "getdents", "getdents64", "read", "pread64", "readv",
    "preadv", "preadv2", "lseek", "close", "getxattr", "lgetxattr", "fgetxattr",
    "listxattr", "llistxattr", "flistxattr", "statfs", "fstatfs", "chdir", "fchdir",
    "getcwd", "dup", "dup2", "dup3", "fcntl", "mmap", "execve", "execveat", "fadvise64",
    "readahead", "flock", "ioctl"))
PLUS = "core.readdir_plus"  # Process.data: the process stats entries by dirfd and name
NO_NATIVE = frozenset()  # an eventfd placeholder: every fd call is the core's



class VFile:
    """An open file description served by a module."""
    __slots__ = ("entry", "service", "handle", "path", "flags", "pos", "refs", "is_dir",
                 "shared", "content", "native")

    def __init__(self, entry, service, handle, path, flags, is_dir):
        self.entry, self.service, self.handle = entry, service, handle
        self.path, self.flags, self.is_dir = path, flags, is_dir
        self.pos = 0
        self.refs = 0
        self.shared = None  # SharedMap while MAP_SHARED mappings may exist
        self.content = None  # Content: the guest's fd is a memfd of the file's data
        self.native = NO_NATIVE  # the calls the kernel answers on the guest's fd


class Content:
    """A memfd (held by umvu) with the data of one file of a module, opened through
    /proc/<umvu>/fd/N by every guest that opens that file read-only (each open gets its
    own file description, so its own offset). Writes through the module to the file
    are copied into it (:meth:`VirtualFS.content_changed`)."""
    __slots__ = ("memfd", "key", "users")

    def __init__(self, memfd: int, key) -> None:
        self.memfd, self.key = memfd, key
        self.users: list = []  # the VFiles handed this content


class SharedMap:
    """The memfd (held by umvu) behind MAP_SHARED mappings of one virtual file; its
    pages are the guest's mapped pages, so umvu can write them back at any time."""
    __slots__ = ("memfd", "entry", "rel", "snapshot")

    def __init__(self, memfd, entry, rel, snapshot):
        self.memfd, self.entry, self.rel, self.snapshot = memfd, entry, rel, snapshot

    def content(self) -> bytes:
        size = os.fstat(self.memfd).st_size
        return os.pread(self.memfd, size, 0)


class MemFile:
    """A read-only in-memory file (the core's /proc/mounts view)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def pread(self, handle, size, offset):
        return self.data[offset:offset + size]

    def fstat(self, handle):
        return os.stat_result((stat.S_IFREG | 0o444, 1, 0, 1, 0, 0, len(self.data),
                               0, 0, 0))

    def close(self, handle):
        pass


class VirtualFiles:
    """Part of VirtualFS: virtual files and their placeholders."""

    def remember_stat(self, t, guest_fd: int, st, vf) -> None:
        """The C loop answers t's next fstat of guest_fd (a virtual fd) by itself, and
        lets its close by when the placeholder is a memfd or a directory (the module's
        close comes when the C loop's closes are taken, before the next event)."""
        if self.hv.fdstat_enabled:
            self.tracer.fdstat_set(t.tid, guest_fd, guestabi.encode_stat(st),
                                   bool(vf.native))
            self.stats_given = True

    def closed_in_c(self, tid: int, guest_fd: int) -> None:
        """The C loop let tid's close of guest_fd by (see remember_stat)."""
        t = self.hv.procs.get(tid)
        if t is not None:
            vf = t.files.pop(guest_fd, counted=False)
            if vf is not None:
                self.release(vf)

    def forget_stats(self, sc, args) -> None:
        """Before a call that may change a module file's metadata (the hypervisor calls
        it for every call it sees while the C loop holds answers)."""
        if sc.name in KEEPS_STATS or (sc.name in ("open", "openat") and not (
                self.open_flags(sc, args) & (O_ACCMODE | O_CREAT | O_TRUNC))):
            return
        self.drop_stats()

    def drop_stats(self) -> None:
        """The C loop forgets every answer it holds (remember_stat, entries_plus)."""
        self.tracer.fdstat_clear()
        self.stats_given = False

    def sized_out(self, t, guest_addr, size, data: bytes):
        if size == 0:
            return len(data)
        if len(data) > size:
            return -errno.ERANGE
        self.tracer.poke(t.tid, guest_addr, data)
        return len(data)

    def content_call(self, t, vf: VFile, flags: int, st):
        """For a read-only open of a regular file whose module offers it as plain data
        (no more than CONTENT_MAX): the openat that gives the guest its own open file of
        a memfd holding the data (filled now, shared by the opens of the same file)."""
        plain = capability(vf.service, "plain_content")
        if plain is None or st.st_size > CONTENT_MAX or not plain(vf.handle):
            return None
        key = (vf.entry, st.st_ino)
        c = self.contents.get(key)
        if c is None:
            memfd = os.memfd_create("umvu-content", os.MFD_CLOEXEC)
            try:
                self._fill(memfd, vf, st.st_size)
            except OSError:
                os.close(memfd)
                return None  # served by the module call by call: its errors come then
            c = self.contents[key] = Content(memfd, key)
            self.content_entries[vf.entry] = self.content_entries.get(vf.entry, 0) + 1
        c.users.append(vf)
        vf.content, vf.native = c, CONTENT_NATIVE
        link = b"/proc/%d/fd/%d" % (os.getpid(), c.memfd)
        mode = os.O_RDONLY | (flags & O_NONBLOCK)
        return (NR_OPENAT, lambda: [AT_FDCWD & 0xFFFFFFFF, self.scratch_path(t, link, 1),
                                    mode | (flags & O_CLOEXEC), 0, 0, 0],
                lambda: os.open(link, mode | O_CLOEXEC))

    def _fill(self, memfd: int, vf: VFile, size: int | None = None) -> None:
        data = memoryview(self._whole(vf, size))
        done = 0
        while done < len(data):
            done += os.pwrite(memfd, data[done:], done)
        os.ftruncate(memfd, len(data))

    def content_changed(self, vf: VFile) -> None:
        """The module's file of vf may have new data: see content_changed_ino."""
        if vf.entry not in self.content_entries:
            return
        try:
            ino = self.fstat_of(vf).st_ino
        except OSError:
            return
        self.content_changed_ino(vf.entry, ino)

    def content_changed_ino(self, entry, ino: int) -> None:
        """Inode ino of the mount entry may have new data: copy it into the memfd that
        read-only opens of it were given, if any."""
        c = self.contents.get((entry, ino))
        if c is None:
            return
        try:
            self._fill(c.memfd, c.users[0])
        except OSError as e:
            log.error("umvu: %s: new data not seen by its read-only opens: %s",
                      c.users[0].path.decode(errors="replace"), e)

    def drop_content(self, vf: VFile) -> None:
        c, vf.content, vf.native = vf.content, None, NO_NATIVE
        c.users.remove(vf)
        if not c.users:
            os.close(c.memfd)
            del self.contents[c.key]
            entry = c.key[0]
            self.content_entries[entry] -= 1
            if not self.content_entries[entry]:
                del self.content_entries[entry]

    def install(self, t, vf: VFile, cloexec: int, call=None, st=None):
        """Turn the pending syscall into eventfd2 (or into call, (nr, args)) and map the
        fd it returns to vf (st: its stat, when the open just read it)."""
        def done(ret):
            if ret >= 0:
                self.bind(t.files, ret, vf)
                if vf.native and vf.handle is not None and self.hv.fdstat_enabled:
                    try:  # its first fstat (tar, cp...) needs no stop
                        self.remember_stat(t, ret, st or self.fstat_of(vf), vf)
                    except OSError:
                        pass
            self.release(vf)  # the hold taken below: the fd table holds it now, or none
        vf.refs += 1  # held until bound
        if vf.entry is not None:
            vf.entry.users += 1  # until the last reference goes
        by_socket = call is not None  # a memfd of umvu's: no guest can open it
        if call is None and vf.is_dir and vf.handle is not None:
            vf.native = DIR_NATIVE
            where = self.hv.placeholder_dir()
            call = (NR_OPENAT, lambda: [AT_FDCWD & 0xFFFFFFFF, self.scratch_path(t, where, 1),
                                        os.O_RDONLY | O_DIRECTORY | cloexec, 0, 0, 0],
                    lambda: os.open(where, os.O_RDONLY | O_DIRECTORY | O_CLOEXEC))
        if call is None and vf.handle is not None:
            own = capability(vf.service, "placeholder")
            host_fd = own(vf.handle) if own is not None else None
            if host_fd is not None:  # the module's own object (a device's readiness)
                return Native(None, done, grant=(lambda: os.dup(host_fd), cloexec, "must"))
        if call is None:
            call = (NR_EVENTFD2, lambda: [1, cloexec, 0, 0, 0, 0],
                    lambda: os.eventfd(1, os.EFD_CLOEXEC))
        nr, new, opener = call
        return Native(new, done, nr=nr, grant=(opener, cloexec, by_socket))

    def bind(self, files, fd: int, vf: VFile) -> None:
        old = files.set(fd, vf)
        vf.refs += 1
        if old is not None:
            if self.stats_given:  # the C loop's answers about fd were old's
                self.drop_stats()
            self.release(old)

    def release(self, vf: VFile) -> None:
        vf.refs -= 1
        if vf.refs == 0:
            if vf.shared is not None:  # the mapping may outlive the fd: write back now,
                self.writeback(vf.shared)  # and again at munmap/msync/session end
            if vf.content is not None:
                self.drop_content(vf)
            if vf.entry is not None:
                vf.entry.users -= 1
            if vf.handle is not None and implements(vf.service, "close"):
                self.hv.call(vf.service, "close", vf.handle)

    def unbind(self, files, fd: int) -> None:
        vf = files.pop(fd)
        if vf is not None:
            self.release(vf)

    def _size(self, vf) -> int:
        """Where SEEK_END is: a device's size (its stat says 0), else st_size."""
        if implements(vf.service, "seek_size"):
            return self.hv.call(vf.service, "seek_size", vf.handle)
        return self.hv.call(vf.service, "fstat", vf.handle).st_size

    def fstat_of(self, vf):
        svc = vf.service
        if vf.handle is not None and implements(svc, "fstat"):
            return self.hv.call(svc, "fstat", vf.handle)
        rel = self.hv.table.lookup_path(vf.path)[1]
        return self.hv.call(svc, "lstat", rel)

    def f_mmap(self, t, args, vf, fd):
        """Map a memfd holding the file's content in place of the virtual fd.
        MAP_PRIVATE gets a snapshot; MAP_SHARED shares one memfd per open file, written
        back to the module on msync, munmap, last close and at the end of the session."""
        prot, flags = args.int, args.flags
        shared = flags & 3 in (1, 3)
        acc = vf.flags & O_ACCMODE
        if vf.is_dir:
            return -errno.ENODEV
        if acc == os.O_WRONLY or (shared and prot & 2 and acc != os.O_RDWR):
            return -errno.EACCES
        if shared:
            self.hv.need_write_back(t)
            if vf.shared is None:
                data = self._whole(vf)
                mfd = os.memfd_create("umvu-shared", os.MFD_CLOEXEC)
                os.write(mfd, data)
                rel = self.hv.table.lookup_path(vf.path)[1]
                vf.shared = SharedMap(mfd, vf.entry, rel, data)
                self.hv.shared_maps.append(vf.shared)
            mfd = vf.shared.memfd
        else:
            mfd = os.memfd_create("umvu-private", os.MFD_CLOEXEC)
            os.write(mfd, self._whole(vf))
        try:
            link = b"/proc/self/fd/%d" % mfd
            mode = os.O_RDWR if shared and prot & 2 else os.O_RDONLY
            opened = os.open(link, mode | O_CLOEXEC)  # (its own open file: that access)
            try:
                guest_fd = self.hv.handoff.give(t, opened, True)
            finally:
                os.close(opened)
        finally:
            if not shared:
                os.close(mfd)
        if guest_fd < 0:
            return guest_fd
        new = list(args)
        new[4] = guest_fd

        def done(ret):
            self.tracer.inject(t.tid, BY_NAME["close"].nr, guest_fd)
        return Native(new, done)

    def _whole(self, vf, size: int | None = None) -> bytes:
        if size is None:
            size = self.fstat_of(vf).st_size
        data = self.hv.call(vf.service, "pread", vf.handle, size, 0) if size else b""
        if len(data) >= size or not data:
            return bytes(data)
        out = bytearray(data)
        while len(out) < size:
            data = self.hv.call(vf.service, "pread", vf.handle, size - len(out), len(out))
            if not data:
                break
            out += data
        return bytes(out)

    def writeback(self, sm: SharedMap) -> None:
        """Write the changed bytes of a shared mapping back to its module."""
        data = sm.content()
        if data == sm.snapshot:
            return
        svc = sm.entry.service
        handle = self.hv.call(svc, "open", sm.rel, os.O_WRONLY, 0)
        try:
            old = sm.snapshot
            start = 0
            while start < len(data) and start < len(old) and data[start] == old[start]:
                start += 1
            self.hv.call(svc, "pwrite", handle, data[start:], start)
            if self.stats_given:
                self.drop_stats()
            if sm.entry in self.content_entries:
                self.content_changed_ino(sm.entry, self.hv.call(svc, "fstat", handle).st_ino)
        finally:
            self.hv.call(svc, "close", handle)
        sm.snapshot = data

    def writeback_all(self) -> None:
        for sm in list(self.hv.shared_maps):
            try:
                self.writeback(sm)
            except Exception as e:  # keep going: other files still need theirs
                log.error("umvu: write-back of %s failed: %s",
                                                sm.rel, e)

    def on_msync_munmap(self, t, sc, args):
        if not self.hv.shared_maps:
            return None
        return Native(None, lambda ret: self.writeback_all())
