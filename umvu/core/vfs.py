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

import errno
import os
import stat
import struct

from umvu.api import capability, implements
from umvu.core.log import log
from umvu.core import guestabi
from umvu.core.actions import PASS, Native  # noqa: F401
from umvu.core.paths import AT_FDCWD, Resolver, rebase, within
from umvu.core.syscalls import BY_NAME

O_ACCMODE = 3
O_CREAT, O_EXCL, O_TRUNC, O_APPEND = 0o100, 0o200, 0o1000, 0o2000
O_NONBLOCK, O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC = 0o4000, 0o200000, 0o400000, 0o2000000
O_PATH, O_TMPFILE = 0o10000000, 0o20200000
AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, AT_EMPTY_PATH = 0x100, 0x200, 0x400, 0x1000
NR_EVENTFD2 = BY_NAME["eventfd2"].nr
NR_OPENAT = BY_NAME["openat"].nr
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW, F_DUPFD_CLOEXEC = 5, 6, 7, 1030
SETFL_MASK = O_APPEND | O_NONBLOCK | 0o20000 | 0o40000 | 0o1000000  # ASYNC DIRECT NOATIME
# calls on a content fd (a memfd opened read-only) that the kernel answers as it would
# on the module's file opened read-only: the data itself, or EBADF/EINVAL/ENOTDIR
CONTENT_NATIVE = frozenset((
    "read", "pread64", "readv", "preadv", "preadv2", "lseek", "mmap", "readahead",
    "fadvise64", "write", "pwrite64", "writev", "pwritev", "pwritev2", "ftruncate",
    "fallocate", "getdents", "getdents64", "fsync", "fdatasync", "sync_file_range"))
# and on a directory's placeholder (a real empty directory): getdents and lseek (the
# position in the module's listing) are the core's
DIR_NATIVE = CONTENT_NATIVE - {"getdents", "getdents64", "lseek"}
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


def proc_rest(path: bytes) -> bytes | None:
    """What follows /proc/PID/ (or /proc/PID/task/TID/, PID a number, self or
    thread-self) in path; None if path is not below such a directory."""
    if not path.startswith(b"/proc/"):
        return None
    parts = path[6:].split(b"/", 3)
    if len(parts) < 2 or not (parts[0].isdigit() or parts[0] in (b"self", b"thread-self")):
        return None
    if parts[1] == b"task" and len(parts) == 4 and parts[2].isdigit():
        return parts[3]
    return b"/".join(parts[1:])


def is_proc_link(path: bytes) -> bool:
    """/proc/PID/{fd/N,cwd,exe,root}: a magic link the kernel answers with a host path."""
    rest = proc_rest(path)
    return rest in (b"cwd", b"exe", b"root") or (
        rest is not None and rest.startswith(b"fd/") and rest[3:].isdigit())


def is_proc_mounts(path: bytes) -> bool:
    """/proc/mounts, /proc/PID/mounts, mountinfo (the virtual mount table)."""
    return path in (b"/proc/mounts", b"/proc/mountinfo") or \
        proc_rest(path) in (b"mounts", b"mountinfo")


def s32(v: int) -> int:
    return ((v & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000


def s64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


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


# follow-last-symlink rules: name -> (default follow, flags arg index, nofollow bit/follow bit)
_NOFOLLOW = {"lstat", "lchown", "lgetxattr", "lsetxattr", "llistxattr", "lremovexattr",
             "readlink", "readlinkat", "unlink", "unlinkat", "rmdir", "mkdir", "mkdirat",
             "symlink", "symlinkat", "mknod", "mknodat", "rename", "renameat", "renameat2",
             "link", "linkat"}
_ENTRY_OPS = {"unlink", "unlinkat", "rmdir", "mkdir", "mkdirat", "symlink", "symlinkat",
              "mknod", "mknodat"}
_AT_FLAGS = {"newfstatat": 3, "fchownat": 4, "utimensat": 3, "fchmodat2": 3,
             "faccessat2": 3, "statx": 2, "name_to_handle_at": 4, "open_tree": 2,
             "mount_setattr": 2, "setxattrat": 2, "getxattrat": 2, "listxattrat": 2,
             "removexattrat": 2, "file_getattr": 5, "file_setattr": 5}


class VirtualFS:
    def __init__(self, hv) -> None:
        self.hv = hv
        self.tracer = hv.tracer
        self.resolver = Resolver(hv)
        self.stats_given = False  # the C loop holds answers to fstat (remember_stat)
        self.contents: dict = {}  # (mount entry, st_ino) -> Content
        self.content_entries: dict = {}  # mount entry -> how many Contents it has

    # ------------------------------------------------------------ helpers
    def call(self, service, method, *args):
        return self.hv.call(service, method, *args)

    def base_dir(self, t, dirfd: int) -> bytes:
        if dirfd == AT_FDCWD:
            return t.fs.cwd
        vf = t.files.fds.get(dirfd)
        if vf is not None:
            if not vf.is_dir:
                raise OSError(errno.ENOTDIR, "not a directory")
            return vf.path
        try:
            target = os.readlink("/proc/%d/fd/%d" % (t.tid, dirfd))
        except OSError:
            raise OSError(errno.EBADF, "bad dirfd") from None
        target = os.fsencode(target)
        if not target.startswith(b"/"):
            raise OSError(errno.ENOTDIR, "not a directory")
        return self.guest_of_host(target)

    def read_path(self, t, guest_addr: int) -> bytes:
        return self.tracer.peekstr(t.tid, guest_addr)

    def follow_of(self, sc, args) -> bool:
        name = sc.name
        if name in _NOFOLLOW:
            if name == "linkat":
                return bool(s32(args[4]) & AT_SYMLINK_FOLLOW)
            return False
        idx = _AT_FLAGS.get(name)
        if idx is not None:
            return not (s32(args[idx]) & AT_SYMLINK_NOFOLLOW)
        if name in ("open", "openat", "creat", "openat2"):
            flags = self.open_flags(sc, args)
            return not (flags & O_NOFOLLOW) and not (flags & O_CREAT and flags & O_EXCL)
        return True

    def open_flags(self, sc, args) -> int:
        if sc.name == "open":
            return s32(args[1])
        if sc.name == "openat":
            return s32(args[2])
        if sc.name == "creat":
            return os.O_CREAT | os.O_WRONLY | os.O_TRUNC
        # openat2: struct open_how {u64 flags, mode, resolve} at args[2]
        raw = self.tracer.peek(self.hv.cur_tid, args[2], 24)
        return struct.unpack("<QQQ", raw)[0]

    def empty_path_ok(self, sc, args) -> bool:
        idx = _AT_FLAGS.get(sc.name)
        return idx is not None and bool(s32(args[idx]) & AT_EMPTY_PATH)

    def scratch_path(self, t, path: bytes, slot: int = 0) -> int:
        addr = self.hv.scratch(t) + slot * 4096
        self.tracer.poke(t.tid, addr, path + b"\0")
        return addr

    # ------------------------------------------------------------ path syscalls
    def on_path(self, t, sc, args):
        """Syscalls whose choice is one path (possibly dirfd-relative)."""
        idx = sc.args.index("path")
        dirfd = s32(args[idx - 1]) if idx and sc.args[idx - 1] == "dirfd" else AT_FDCWD
        name = sc.name
        if name == "utimensat" and args[1] == 0:  # Linux: a NULL path means the fd itself
            vf = t.files.fds.get(dirfd)
            return None if vf is None else self.fd_op(t, sc, args, vf, dirfd)
        try:
            guest_path = self.read_path(t, args[idx])
        except OSError as e:
            return -e.errno
        if guest_path == b"" and self.empty_path_ok(sc, args):
            vf = t.files.fds.get(dirfd)
            if vf is None:
                return None
            return self.fd_op(t, sc, args, vf, dirfd)
        virtual_base = (dirfd == AT_FDCWD and not t.fs.kernel_cwd) or \
            (dirfd != AT_FDCWD and dirfd in t.files.fds)
        if name == "newfstatat" and virtual_base and dirfd != AT_FDCWD:
            t.process.data[PLUS] = True  # see entries_plus
        try:
            if guest_path == b"" or (not self.hv.table.has_paths() and not virtual_base):
                return self.real_path_hook(t, sc, args, None)
            if is_proc_mounts(guest_path) and name in ("open", "openat", "openat2"):
                return self.open_proc_mounts(t, sc, args, guest_path)
            r = self.resolver.resolve(self.base_dir(t, dirfd), guest_path,
                                      follow=self.follow_of(sc, args),
                                      entry_op=name in _ENTRY_OPS)
        except OSError as e:
            return -e.errno
        if r.entry is None:
            if is_proc_mounts(r.path) and name in ("open", "openat", "openat2"):
                return self.open_proc_mounts(t, sc, args, r.path)
            rewrite = None
            if r.crossed or (virtual_base and not guest_path.startswith(b"/")):
                new = list(args)
                new[idx] = self.scratch_path(t, r.path)
                if idx and sc.args[idx - 1] == "dirfd":
                    new[idx - 1] = AT_FDCWD & 0xFFFFFFFF
                rewrite = new
            return self.real_path_hook(t, sc, args, r, rewrite)
        native = self.native_path(r)
        if native is not None and name not in ("execve", "execveat"):
            new = list(args)
            new[idx] = self.scratch_path(t, native)
            if idx and sc.args[idx - 1] == "dirfd":
                new[idx - 1] = AT_FDCWD & 0xFFFFFFFF
            if name == "chdir":
                def chdir_done(ret):
                    if ret == 0:
                        t.fs.cwd, t.fs.kernel_cwd = r.path, r.path == native.rstrip(b"/")
                return Native(new, chdir_done)
            return Native(new, self.readlink_fixer(t, sc, args, r.path))
        handler = getattr(self, "v_" + name, None)
        if handler is None:
            return -errno.ENOSYS
        return handler(t, sc, args, r)

    @staticmethod
    def native_path(r):
        """The host path the kernel can serve r by, for services that say so (with the
        guest's trailing slash: it means "a directory" to the kernel)."""
        fn = capability(r.entry.service, "native_host") if r.entry is not None else None
        host = fn(r.rel) if fn is not None else None
        if host is not None and r.trailing and not host.endswith(b"/"):
            host += b"/"
        return host

    def guest_of_host(self, host: bytes) -> bytes:
        """A host path the kernel gave (an fd's or a cwd's) as the guest sees it: itself
        where the guest sees it at its own place, else, inside a tree served natively at
        another place, that place."""
        entry, rel = self.hv.table.lookup_path(host)
        if entry is None:
            return host
        fn = capability(entry.service, "native_host")
        if fn is not None and fn(rel) == host:
            return host
        best, best_len = host, -1
        for e in self.hv.table.mounts():
            root = capability(e.service, "native_root")
            if root is None or root == e.key or len(root) <= best_len:
                continue
            if within(host, root):
                best, best_len = rebase(host, root, e.key), len(root)
        return best

    def readlink_fixer(self, t, sc, args, guest_path: bytes):
        """readlink of /proc/PID/{fd/N,cwd,exe,root}: the kernel answers host paths."""
        if sc.name not in ("readlink", "readlinkat") or not is_proc_link(guest_path):
            return None
        buf_idx = 1 if sc.name == "readlink" else 2
        addr, size = args[buf_idx], args[buf_idx + 1]

        comps = [c for c in guest_path.split(b"/") if c]
        n, virtual = self.resolver.proc_magic(comps)

        def fix(ret):
            if virtual is not None and n == len(comps):  # a virtual cwd or fd
                guest = virtual[:size]
                self.tracer.poke(t.tid, addr, guest)
                return len(guest)
            if ret <= 0:
                return ret
            target = self.tracer.peek(t.tid, addr, ret)
            guest = self.guest_of_host(target)
            if guest == target:
                return ret
            guest = guest[:size]
            self.tracer.poke(t.tid, addr, guest)
            return len(guest)
        return fix

    def real_path_hook(self, t, sc, args, r, rewrite=None):
        """A path the kernel serves; chdir must be followed to keep the cwd."""
        if sc.name == "chdir":
            def done(ret):
                if ret == 0:
                    t.fs.cwd = os.fsencode(os.readlink("/proc/%d/cwd" % t.tid))
                    t.fs.kernel_cwd = True
                return None
            return Native(rewrite, done)
        fixer = self.readlink_fixer(t, sc, args, r.path if r is not None else b"") \
            if self.hv.table.has_paths() else None
        if fixer is not None:
            return Native(rewrite, fixer)
        return Native(rewrite) if rewrite else None

    def on_path2(self, t, sc, args):
        """rename/link family: both paths must be on the same side (else EXDEV)."""
        idxs = [i for i, k in enumerate(sc.args) if k == "path"]
        res = []
        for n, idx in enumerate(idxs):
            dirfd = s32(args[idx - 1]) if idx and sc.args[idx - 1] == "dirfd" else AT_FDCWD
            try:
                guest_path = self.read_path(t, args[idx])
                follow = (n == 0 and sc.name == "linkat" and
                          bool(s32(args[4]) & AT_SYMLINK_FOLLOW))
                if sc.name == "pivot_root":
                    follow = True
                r = self.resolver.resolve(self.base_dir(t, dirfd), guest_path, follow=follow,
                                          entry_op=True)
            except OSError as e:
                return -e.errno
            res.append((idx, r))
        (i0, r0), (i1, r1) = res
        hosts = [(r.path + b"/" if r.trailing and r.path != b"/" else r.path)
                 if r.entry is None else self.native_path(r) for r in (r0, r1)]
        if None not in hosts:  # both real or natively served: the kernel decides
            if r0.entry is None and r1.entry is None and \
                    not (r0.crossed or r1.crossed or not t.fs.kernel_cwd):
                return None
            new = list(args)
            for slot, (idx, host) in enumerate(zip((i0, i1), hosts)):
                new[idx] = self.scratch_path(t, host, slot)
                if idx and sc.args[idx - 1] == "dirfd":
                    new[idx - 1] = AT_FDCWD & 0xFFFFFFFF
            return Native(new)
        if r0.entry is not r1.entry:
            return -errno.EXDEV
        if sc.name in ("rename", "renameat", "renameat2"):
            flags = s32(args[4]) if sc.name == "renameat2" else 0
            if not r0.exists:
                return -errno.ENOENT
            return self.call(r0.entry.service, "rename", r0.rel, r1.rel, flags) or 0
        if sc.name in ("link", "linkat"):
            if not r0.exists:
                return -errno.ENOENT
            if r1.exists:
                return -errno.EEXIST
            return self.call(r0.entry.service, "link", r0.rel, r1.rel) or 0
        return -errno.EINVAL

    # --- virtual path handlers: (t, sc, args, resolved) -> action
    def _need(self, r):
        if not r.exists:
            raise OSError(errno.ENOENT, "no such file")

    def _stat_out(self, t, guest_addr, st):
        self.tracer.poke(t.tid, guest_addr, guestabi.encode_stat(st))
        return 0

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

    def v_stat(self, t, sc, args, r):
        self._need(r)
        return self._stat_out(t, args[1], r.st)

    v_lstat = v_stat

    def v_newfstatat(self, t, sc, args, r):
        self._need(r)
        return self._stat_out(t, args[2], r.st)

    def v_statx(self, t, sc, args, r):
        self._need(r)
        self.tracer.poke(t.tid, args[4], guestabi.encode_statx(r.st, args[3]))
        return 0

    def _access(self, t, r, mode):
        self._need(r)
        svc = r.entry.service
        if implements(svc, "access"):
            return self.call(svc, "access", r.rel, mode) or 0
        return 0

    def v_access(self, t, sc, args, r):
        return self._access(t, r, s32(args[1]))

    def v_faccessat(self, t, sc, args, r):
        return self._access(t, r, s32(args[2]))

    v_faccessat2 = v_faccessat

    def v_readlink(self, t, sc, args, r):
        buf_i = 1 if sc.name == "readlink" else 2
        self._need(r)
        if not stat.S_ISLNK(r.st.st_mode):
            return -errno.EINVAL
        size = s32(args[buf_i + 1])
        if size <= 0:
            return -errno.EINVAL
        target = self.call(r.entry.service, "readlink", r.rel)[:size]
        self.tracer.poke(t.tid, args[buf_i], target)
        return len(target)

    v_readlinkat = v_readlink

    def v_mkdir(self, t, sc, args, r):
        if r.exists:
            return -errno.EEXIST
        mode = s32(args[1] if sc.name == "mkdir" else args[2]) & 0o7777 & ~t.fs.umask
        return self.call(r.entry.service, "mkdir", r.rel, mode) or 0

    v_mkdirat = v_mkdir

    def v_mknod(self, t, sc, args, r):
        if r.exists:
            return -errno.EEXIST
        base = 1 if sc.name == "mknod" else 2
        mode = s32(args[base])
        mode = (mode & ~0o7777) | (mode & 0o7777 & ~t.fs.umask)
        if stat.S_IFMT(mode) == 0:
            mode |= stat.S_IFREG
        return self.call(r.entry.service, "mknod", r.rel, mode, args[base + 1]) or 0

    v_mknodat = v_mknod

    def v_rmdir(self, t, sc, args, r):
        self._need(r)
        if not stat.S_ISDIR(r.st.st_mode):
            return -errno.ENOTDIR
        if r.rel == b"/":
            return -errno.EBUSY
        return self.call(r.entry.service, "rmdir", r.rel) or 0

    def v_unlink(self, t, sc, args, r):
        self._need(r)
        if stat.S_ISDIR(r.st.st_mode):
            return -errno.EISDIR
        return self.call(r.entry.service, "unlink", r.rel) or 0

    def v_unlinkat(self, t, sc, args, r):
        if s32(args[2]) & AT_REMOVEDIR:
            return self.v_rmdir(t, sc, args, r)
        return self.v_unlink(t, sc, args, r)

    def v_symlink(self, t, sc, args, r):
        try:
            target = self.read_path(t, args[0])
        except OSError as e:
            return -e.errno
        if r.exists:
            return -errno.EEXIST
        return self.call(r.entry.service, "symlink", target, r.rel) or 0

    v_symlinkat = v_symlink

    def v_chmod(self, t, sc, args, r):
        self._need(r)
        mode = s32(args[1] if sc.name == "chmod" else args[2]) & 0o7777
        return self.call(r.entry.service, "chmod", r.rel, mode) or 0

    v_fchmodat = v_fchmodat2 = v_chmod

    def v_chown(self, t, sc, args, r):
        self._need(r)
        base = 1 if sc.name in ("chown", "lchown") else 2
        return self.call(r.entry.service, "chown", r.rel, s32(args[base]),
                         s32(args[base + 1])) or 0

    v_lchown = v_fchownat = v_chown

    def v_truncate(self, t, sc, args, r):
        self._need(r)
        if s64(args[1]) < 0:
            return -errno.EINVAL
        if stat.S_ISDIR(r.st.st_mode):
            return -errno.EISDIR
        ret = self.call(r.entry.service, "truncate", r.rel, s64(args[1])) or 0
        self.content_changed_ino(r.entry, r.st.st_ino)
        return ret

    def _times(self, t, guest_addr, kind):
        """(atime_ns, mtime_ns) from a guest timespec[2]/timeval[2]/utimbuf; None = omit."""
        import time as _time
        now = _time.time_ns()
        if guest_addr == 0:
            return now, now
        if kind == "utimbuf":
            a, m = struct.unpack("<qq", self.tracer.peek(t.tid, guest_addr, 16))
            return a * 10**9, m * 10**9
        a_s, a_x, m_s, m_x = struct.unpack("<qqqq", self.tracer.peek(t.tid, guest_addr, 32))
        if kind == "timeval":
            return a_s * 10**9 + a_x * 1000, m_s * 10**9 + m_x * 1000
        out = []
        for sec, nsec in ((a_s, a_x), (m_s, m_x)):
            if nsec == UTIME_OMIT:
                out.append(None)
            elif nsec == UTIME_NOW:
                out.append(now)
            elif not 0 <= nsec < 10**9:
                raise OSError(errno.EINVAL, "bad timespec")
            else:
                out.append(sec * 10**9 + nsec)
        return tuple(out)

    def _utimens(self, r, times):
        self._need(r)
        return self.call(r.entry.service, "utimens", r.rel, *times) or 0

    def v_utimensat(self, t, sc, args, r):
        return self._utimens(r, self._times(t, args[2], "timespec"))

    def v_utimes(self, t, sc, args, r):
        return self._utimens(r, self._times(t, args[1], "timeval"))

    def v_futimesat(self, t, sc, args, r):
        return self._utimens(r, self._times(t, args[2], "timeval"))

    def v_utime(self, t, sc, args, r):
        return self._utimens(r, self._times(t, args[1], "utimbuf"))

    def v_statfs(self, t, sc, args, r):
        self._need(r)
        sv = self.call(r.entry.service, "statfs", r.rel)
        self.tracer.poke(t.tid, args[1], guestabi.encode_statfs(sv))
        return 0

    def v_chdir(self, t, sc, args, r):
        self._need(r)
        if not stat.S_ISDIR(r.st.st_mode):
            return -errno.ENOTDIR
        self._access(t, r, os.X_OK)
        t.fs.cwd = r.path
        t.fs.kernel_cwd = False
        return 0

    def _xattr_name(self, t, guest_addr):
        name = self.tracer.peekstr(t.tid, guest_addr, 256)
        if not name:
            raise OSError(errno.ERANGE, "empty name")
        return name

    def v_getxattr(self, t, sc, args, r):
        self._need(r)
        value = self.call(r.entry.service, "getxattr", r.rel, self._xattr_name(t, args[1]))
        return self._sized_out(t, args[2], args[3], value)

    v_lgetxattr = v_getxattr

    def v_setxattr(self, t, sc, args, r):
        self._need(r)
        value = self.tracer.peek(t.tid, args[2], args[3]) if args[3] else b""
        return self.call(r.entry.service, "setxattr", r.rel, self._xattr_name(t, args[1]),
                         value, s32(args[4])) or 0

    v_lsetxattr = v_setxattr

    def v_listxattr(self, t, sc, args, r):
        self._need(r)
        names = self.call(r.entry.service, "listxattr", r.rel)
        return self._sized_out(t, args[1], args[2], b"".join(n + b"\0" for n in names))

    v_llistxattr = v_listxattr

    def v_removexattr(self, t, sc, args, r):
        self._need(r)
        return self.call(r.entry.service, "removexattr", r.rel,
                         self._xattr_name(t, args[1])) or 0

    v_lremovexattr = v_removexattr

    def _sized_out(self, t, guest_addr, size, data: bytes):
        if size == 0:
            return len(data)
        if len(data) > size:
            return -errno.ERANGE
        self.tracer.poke(t.tid, guest_addr, data)
        return len(data)

    def v_execve(self, t, sc, args, r):
        """The kernel execs a real file: the module's own host file when it has one,
        else a private copy of the content (the kernel then reads #! lines from it)."""
        self._need(r)
        if not stat.S_ISREG(r.st.st_mode):
            return -errno.EACCES
        self._access(t, r, os.X_OK)
        host = capability(r.entry.service, "host_path")
        if host is not None:
            real = host(r.rel)
        else:
            real = self.hv.exec_copy(r.entry, r.rel, r.st)
        idx = sc.args.index("path")
        new = list(args)
        new[idx] = self.scratch_path(t, real)
        if sc.name == "execveat":
            new[0] = AT_FDCWD & 0xFFFFFFFF
        return Native(new)

    v_execveat = v_execve

    # --- open
    def v_open(self, t, sc, args, r):
        flags = self.open_flags(sc, args)
        if sc.name == "open":
            mode = args[2]
        elif sc.name == "openat":
            mode = args[3]
        elif sc.name == "creat":
            mode = args[1]
        else:
            mode = struct.unpack("<QQQ", self.tracer.peek(t.tid, args[2], 24))[1]
        mode = mode & 0o7777 & ~t.fs.umask
        if flags & O_TMPFILE == O_TMPFILE:
            return -errno.EOPNOTSUPP
        if r.exists:
            if flags & O_CREAT and flags & O_EXCL:
                return -errno.EEXIST
            if stat.S_ISLNK(r.st.st_mode) and flags & O_NOFOLLOW and not flags & O_PATH:
                return -errno.ELOOP
            if flags & O_DIRECTORY and not stat.S_ISDIR(r.st.st_mode):
                return -errno.ENOTDIR
            if stat.S_ISDIR(r.st.st_mode) and (flags & O_ACCMODE) != os.O_RDONLY:
                return -errno.EISDIR
        elif not flags & O_CREAT:
            return -errno.ENOENT
        elif r.trailing:
            return -errno.EISDIR
        elif flags & O_DIRECTORY:
            return -errno.EINVAL
        if flags & O_PATH:  # a location only: no module open (fstat, *at, fchdir work)
            if not r.exists:
                return -errno.ENOENT
            vf = VFile(r.entry, r.entry.service, None, r.path, flags & ~O_CLOEXEC,
                       stat.S_ISDIR(r.st.st_mode))
            return self.install(t, vf, flags & O_CLOEXEC)
        kind = stat.S_IFMT(r.st.st_mode) if r.exists else 0
        if kind in (stat.S_IFCHR, stat.S_IFBLK):
            # a device node of a virtual file system whose number a module claims
            dev = self.hv.table.find("blkdev" if kind == stat.S_IFBLK else "chrdev",
                                     r.st.st_rdev)
            if dev is not None and dev.service is not r.entry.service:
                handle = self.call(dev.service, "open", b"/", flags & ~O_CLOEXEC, mode)
                vf = VFile(dev, dev.service, handle, r.path, flags & ~O_CLOEXEC, False)
                return self.install(t, vf, flags & O_CLOEXEC)
        special = capability(r.entry.service, "special_path")
        if r.exists and special is not None and kind in (
                stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK):
            # fifos (devices, sockets) of a module: the kernel opens a real object the
            # module names (a blocking fifo open must block the guest, not umvu)
            idx = sc.args.index("path")
            new = list(args)
            new[idx] = self.scratch_path(t, self.call(r.entry.service, "special_path",
                                                      r.rel, r.st))
            if sc.args[idx - 1:idx] == ("dirfd",):
                new[idx - 1] = AT_FDCWD & 0xFFFFFFFF
            return Native(new)
        handle = self.call(r.entry.service, "open", r.rel, flags & ~O_CLOEXEC, mode)
        is_dir = stat.S_ISDIR(r.st.st_mode) if r.exists else False
        vf = VFile(r.entry, r.entry.service, handle, r.path, flags & ~O_CLOEXEC, is_dir)
        if r.exists and flags & O_TRUNC:
            self.content_changed(vf)
        if kind == stat.S_IFREG and flags & (O_ACCMODE | O_TRUNC) == os.O_RDONLY:
            call = self.content_call(t, vf, flags, r.st)
            if call is not None:
                return self.install(t, vf, flags & O_CLOEXEC, call, r.st)
        return self.install(t, vf, flags & O_CLOEXEC, st=r.st if r.exists else None)

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
            ino = self._fstat(vf).st_ino
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

    v_openat = v_creat = v_openat2 = v_open

    def open_proc_mounts(self, t, sc, args, path):
        data = self.hv.proc_mounts(t, path.endswith(b"mountinfo"))
        vf = VFile(None, MemFile(data), 0, path, os.O_RDONLY, False)
        return self.install(t, vf, self.open_flags(sc, args) & O_CLOEXEC)

    def install(self, t, vf: VFile, cloexec: int, call=None, st=None):
        """Turn the pending syscall into eventfd2 (or into call, (nr, args)) and map the
        fd it returns to vf (st: its stat, when the open just read it)."""
        def done(ret):
            if ret >= 0:
                self.bind(t.files, ret, vf)
                if vf.native and vf.handle is not None and self.hv.fdstat_enabled:
                    try:  # its first fstat (tar, cp...) needs no stop
                        self.remember_stat(t, ret, st or self._fstat(vf), vf)
                    except OSError:
                        pass
            self.release(vf)  # the hold taken below: the fd table holds it now, or none
        vf.refs += 1  # held until bound
        if vf.entry is not None:
            vf.entry.users += 1  # until the last reference goes
        if call is None and vf.is_dir and vf.handle is not None:
            vf.native = DIR_NATIVE
            where = self.hv.placeholder_dir()
            call = (NR_OPENAT, lambda: [AT_FDCWD & 0xFFFFFFFF, self.scratch_path(t, where, 1),
                                        os.O_RDONLY | O_DIRECTORY | cloexec, 0, 0, 0],
                    lambda: os.open(where, os.O_RDONLY | O_DIRECTORY | O_CLOEXEC))
        if call is None:
            call = (NR_EVENTFD2, lambda: [1, cloexec, 0, 0, 0, 0],
                    lambda: os.eventfd(1, os.EFD_CLOEXEC))
        nr, new, opener = call
        return Native(new, done, nr=nr, grant=(opener, cloexec))

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

    # ------------------------------------------------------------ fd syscalls
    def on_fd(self, t, sc, args):
        fd = s32(args[0])
        vf = t.files.fds.get(fd)
        name = sc.name
        if vf is None:
            if name in ("dup2", "dup3") or (name == "fcntl" and s32(args[1]) in (
                    F_DUPFD, F_DUPFD_CLOEXEC)):
                return self.real_dup(t, sc, args)
            if name == "fchdir":
                return Native(None, lambda ret: self._fchdir_done(t, ret))
            if name == "close_range":
                return self.on_close_range(t, args)
            return None
        return self.fd_op(t, sc, args, vf, fd)

    def _fchdir_done(self, t, ret):
        if ret == 0:
            host = os.fsencode(os.readlink("/proc/%d/cwd" % t.tid))
            t.fs.cwd = self.guest_of_host(host)
            t.fs.kernel_cwd = t.fs.cwd == host

    def real_dup(self, t, sc, args):
        """dup2/dup3/F_DUPFD of a real fd over a virtual one: forget the virtual one."""
        target = s32(args[1]) if sc.name != "fcntl" else None
        if target is None or target not in t.files.fds:
            return None
        return Native(None, lambda ret: self.unbind(t.files, target) if ret >= 0 else None)

    def on_close_range(self, t, args):
        lo, hi, flags = args[0], args[1], s32(args[2])
        victims = [fd for fd in t.files.fds if lo <= fd <= hi]
        if not victims:
            return None

        def done(ret):
            if ret == 0 and not flags & 4:  # CLOSE_RANGE_CLOEXEC keeps them open
                for fd in victims:
                    self.unbind(t.files, fd)
        return Native(None, done)

    def fd_op(self, t, sc, args, vf, fd):
        if sc.name in vf.native:
            return None  # trapped by number (-d s, past FD_TRAPS_MAX, an earlier kind)
        handler = getattr(self, "f_" + sc.name, None)
        if handler is None:
            return -errno.EINVAL if sc.choice in ("fd", "fd2") else -errno.ENOSYS
        return handler(t, args, vf, fd)

    # data
    def _read(self, vf, size, offset=None):
        if vf.is_dir:
            raise OSError(errno.EISDIR, "is a directory")
        if (vf.flags & O_ACCMODE) == os.O_WRONLY or vf.flags & O_PATH:
            raise OSError(errno.EBADF, "not open for reading")
        svc = vf.service
        if implements(svc, "pread"):
            pos = vf.pos if offset is None else offset
            data = self.hv.call(svc, "pread", vf.handle, size, pos)
            if offset is None:
                vf.pos += len(data)
            return data
        if offset is not None:
            raise OSError(errno.ESPIPE, "not seekable")
        return self.hv.call(svc, "read", vf.handle, size)

    def _write(self, vf, data, offset=None):
        n = self._write_module(vf, data, offset)
        self.content_changed(vf)
        return n

    def _write_module(self, vf, data, offset):
        if (vf.flags & O_ACCMODE) == os.O_RDONLY or vf.flags & O_PATH:
            raise OSError(errno.EBADF, "not open for writing")
        svc = vf.service
        if implements(svc, "pwrite"):
            if offset is not None and vf.flags & O_APPEND:
                # Linux: pwrite on an O_APPEND file appends, whatever the offset
                end = self.hv.call(svc, "fstat", vf.handle).st_size
                return self.hv.call(svc, "pwrite", vf.handle, data, end)
            if offset is None:
                if vf.flags & O_APPEND:
                    vf.pos = self.hv.call(svc, "fstat", vf.handle).st_size
                n = self.hv.call(svc, "pwrite", vf.handle, data, vf.pos)
                vf.pos += n
                return n
            return self.hv.call(svc, "pwrite", vf.handle, data, offset)
        if offset is not None:
            raise OSError(errno.ESPIPE, "not seekable")
        return self.hv.call(svc, "write", vf.handle, data)

    def f_read(self, t, args, vf, fd):
        data = self._read(vf, min(args[2], 1 << 24))
        self.tracer.poke(t.tid, args[1], data)
        return len(data)

    def f_pread64(self, t, args, vf, fd):
        if s64(args[3]) < 0:
            return -errno.EINVAL
        data = self._read(vf, min(args[2], 1 << 24), s64(args[3]))
        self.tracer.poke(t.tid, args[1], data)
        return len(data)

    def f_write(self, t, args, vf, fd):
        data = self.tracer.peek(t.tid, args[1], min(args[2], 1 << 24))
        return self._write(vf, data)

    def f_pwrite64(self, t, args, vf, fd):
        if s64(args[3]) < 0:
            return -errno.EINVAL
        data = self.tracer.peek(t.tid, args[1], min(args[2], 1 << 24))
        return self._write(vf, data, s64(args[3]))

    def _iov(self, t, guest_addr, count):
        if count < 0 or count > 1024:
            raise OSError(errno.EINVAL, "bad iovcnt")
        raw = self.tracer.peek(t.tid, guest_addr, 16 * count)
        return [struct.unpack_from("<QQ", raw, 16 * i) for i in range(count)]

    def _readv(self, t, args, vf, offset):
        total = 0
        for base, length in self._iov(t, args[1], s32(args[2])):
            if not length:
                continue
            data = self._read(vf, length, None if offset is None else offset + total)
            self.tracer.poke(t.tid, base, data)
            total += len(data)
            if len(data) < length:
                break
        return total

    def _writev(self, t, args, vf, offset):
        total = 0
        for base, length in self._iov(t, args[1], s32(args[2])):
            if not length:
                continue
            data = self.tracer.peek(t.tid, base, length)
            n = self._write(vf, data, None if offset is None else offset + total)
            total += n
            if n < length:
                break
        return total

    def f_readv(self, t, args, vf, fd):
        return self._readv(t, args, vf, None)

    def f_writev(self, t, args, vf, fd):
        return self._writev(t, args, vf, None)

    def f_preadv(self, t, args, vf, fd):
        off = s64(args[3])
        return self._readv(t, args, vf, None if off == -1 else off)

    def f_pwritev(self, t, args, vf, fd):
        off = s64(args[3])
        return self._writev(t, args, vf, None if off == -1 else off)

    f_preadv2, f_pwritev2 = f_preadv, f_pwritev

    def f_lseek(self, t, args, vf, fd):
        off, whence = s64(args[1]), s32(args[2])
        if not implements(vf.service, "pread") and not vf.is_dir:
            return -errno.ESPIPE
        if whence == os.SEEK_SET:
            new = off
        elif whence == os.SEEK_CUR:
            new = vf.pos + off
        elif whence == os.SEEK_END:
            new = self._size(vf) + off
        elif whence in (3, 4):  # SEEK_DATA / SEEK_HOLE: the whole file is data
            size = self._size(vf)
            if off >= size:
                return -errno.ENXIO
            new = off if whence == 3 else size
        else:
            return -errno.EINVAL
        if new < 0:
            return -errno.EINVAL
        vf.pos = new
        return new

    def _size(self, vf) -> int:
        """Where SEEK_END is: a device's size (its stat says 0), else st_size."""
        if implements(vf.service, "seek_size"):
            return self.hv.call(vf.service, "seek_size", vf.handle)
        return self.hv.call(vf.service, "fstat", vf.handle).st_size

    def _fstat(self, vf):
        svc = vf.service
        if vf.handle is not None and implements(svc, "fstat"):
            return self.hv.call(svc, "fstat", vf.handle)
        rel = self.hv.table.lookup_path(vf.path)[1]
        return self.hv.call(svc, "lstat", rel)

    def f_fstat(self, t, args, vf, fd):
        st = self._fstat(vf)
        self.remember_stat(t, fd, st, vf)
        return self._stat_out(t, args[1], st)

    def f_newfstatat(self, t, args, vf, fd):
        st = self._fstat(vf)
        self.remember_stat(t, fd, st, vf)
        return self._stat_out(t, args[2], st)

    def f_statx(self, t, args, vf, fd):
        self.tracer.poke(t.tid, args[4], guestabi.encode_statx(self._fstat(vf), args[3]))
        return 0

    def f_fstatfs(self, t, args, vf, fd):
        if vf.entry is None:
            return -errno.ENOSYS
        sv = self.hv.call(vf.service, "statfs", self.hv.table.lookup_path(vf.path)[1])
        self.tracer.poke(t.tid, args[1], guestabi.encode_statfs(sv))
        return 0

    def f_getdents64(self, t, args, vf, fd):
        if not vf.is_dir:
            return -errno.ENOTDIR
        size = args[2]
        out = bytearray()
        names = []
        for name, ino, d_type, next_off in self.hv.call(vf.service, "getdents",
                                                        vf.handle, vf.pos):
            rec = guestabi.encode_dirent(name, ino, d_type, next_off)
            if len(out) + len(rec) > size:
                if not out:
                    return -errno.EINVAL
                break
            out += rec
            vf.pos = next_off
            names.append(name)
        self.tracer.poke(t.tid, args[1], bytes(out))
        if names and self.hv.fdstat_enabled and t.process.data.get(PLUS):
            self.entries_plus(t, vf, fd, names)
        return len(out)

    def entries_plus(self, t, vf, fd: int, names: list) -> None:
        """Readdir plus: give the C loop the stat of each entry just listed, for the
        newfstatat(fd, name) that tar, find, du, rm -r... make next (a process gets it
        once it has made one). Only where any caller may search the directory and on
        file systems of plain data; mount points are left out."""
        try:
            if capability(vf.service, "plain_content") is None or \
                    self._fstat(vf).st_mode & 0o111 != 0o111:
                return
            rel = self.hv.table.lookup_path(vf.path)[1].rstrip(b"/")
            for name in names:
                if name in (b".", b".."):
                    continue
                if self.hv.table.lookup_path(vf.path.rstrip(b"/") + b"/" + name)[0] \
                        is not vf.entry:
                    continue
                st = self.hv.call(vf.service, "lstat", rel + b"/" + name)
                self.tracer.entstat_set(t.tid, fd, name, guestabi.encode_stat(st),
                                        stat.S_ISLNK(st.st_mode))
            self.stats_given = True
        except OSError:
            pass  # the calls will come to the core

    def f_getdents(self, t, args, vf, fd):
        return -errno.ENOSYS if not vf.is_dir else -errno.EINVAL

    def f_close(self, t, args, vf, fd):
        # the kernel frees a valid fd whatever close returns (even EINTR): no exit stop
        self.unbind(t.files, fd)
        return None

    def f_dup(self, t, args, vf, fd):
        return Native(None, lambda ret: self.bind(t.files, ret, vf) if ret >= 0 else None)

    def f_dup2(self, t, args, vf, fd):
        new = s32(args[1])
        if new == fd:
            return None
        return Native(None, lambda ret: self.bind(t.files, ret, vf) if ret >= 0 else None)

    f_dup3 = f_dup2

    def f_fcntl(self, t, args, vf, fd):
        cmd = s32(args[1])
        if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
            return self.f_dup(t, args, vf, fd)
        if cmd == F_GETFL:
            return (vf.flags & ~O_CLOEXEC) | (0o100000 if vf.entry else 0)
        if cmd == F_SETFL:
            vf.flags = (vf.flags & ~SETFL_MASK) | (s32(args[2]) & SETFL_MASK)
            return 0
        if cmd in (F_SETLK, F_SETLKW, 37, 38):  # and OFD locks: advisory, granted
            return 0
        if cmd in (F_GETLK, 36):
            raw = bytearray(self.tracer.peek(t.tid, args[2], 32))
            raw[0:2] = struct.pack("<h", 2)  # F_UNLCK
            self.tracer.poke(t.tid, args[2], bytes(raw))
            return 0
        return None  # F_GETFD/F_SETFD and the rest act on the placeholder itself

    def f_flock(self, t, args, vf, fd):
        return 0

    def f_fsync(self, t, args, vf, fd):
        svc = vf.service
        if implements(svc, "fsync"):
            self.hv.call(svc, "fsync", vf.handle)
        return 0

    f_fdatasync = f_syncfs = f_fsync

    def f_ftruncate(self, t, args, vf, fd):
        if (vf.flags & O_ACCMODE) == os.O_RDONLY:
            return -errno.EINVAL
        if s64(args[1]) < 0:
            return -errno.EINVAL
        ret = self.hv.call(vf.service, "ftruncate", vf.handle, s64(args[1])) or 0
        self.content_changed(vf)
        return ret

    def _rel(self, vf):
        return self.hv.table.lookup_path(vf.path)[1]

    def f_fchmod(self, t, args, vf, fd):
        return self.hv.call(vf.service, "chmod", self._rel(vf), s32(args[1]) & 0o7777) or 0

    def f_fchmodat(self, t, args, vf, fd):
        return self.hv.call(vf.service, "chmod", self._rel(vf), s32(args[2]) & 0o7777) or 0

    def f_fchown(self, t, args, vf, fd):
        return self.hv.call(vf.service, "chown", self._rel(vf), s32(args[1]),
                            s32(args[2])) or 0

    def f_fchownat(self, t, args, vf, fd):
        return self.hv.call(vf.service, "chown", self._rel(vf), s32(args[2]),
                            s32(args[3])) or 0

    def f_utimensat(self, t, args, vf, fd):
        return self.hv.call(vf.service, "utimens", self._rel(vf),
                            *self._times(t, args[2], "timespec")) or 0

    def f_fchdir(self, t, args, vf, fd):
        if not vf.is_dir:
            return -errno.ENOTDIR
        t.fs.cwd = vf.path
        t.fs.kernel_cwd = False
        return 0

    def f_fgetxattr(self, t, args, vf, fd):
        value = self.hv.call(vf.service, "getxattr", self._rel(vf),
                             self._xattr_name(t, args[1]))
        return self._sized_out(t, args[2], args[3], value)

    def f_fsetxattr(self, t, args, vf, fd):
        value = self.tracer.peek(t.tid, args[2], args[3]) if args[3] else b""
        return self.hv.call(vf.service, "setxattr", self._rel(vf),
                            self._xattr_name(t, args[1]), value, s32(args[4])) or 0

    def f_flistxattr(self, t, args, vf, fd):
        names = self.hv.call(vf.service, "listxattr", self._rel(vf))
        return self._sized_out(t, args[1], args[2], b"".join(n + b"\0" for n in names))

    def f_fremovexattr(self, t, args, vf, fd):
        return self.hv.call(vf.service, "removexattr", self._rel(vf),
                            self._xattr_name(t, args[1])) or 0

    def f_ioctl(self, t, args, vf, fd):
        svc = vf.service
        req = args[1] & 0xFFFFFFFF
        if req in (0x5451, 0x5450):  # FIOCLEX / FIONCLEX act on the placeholder
            return None
        if implements(svc, "ioctl"):
            return self.hv.call(svc, "ioctl", vf.handle, req, args[2])
        return -errno.ENOTTY

    def f_fadvise64(self, t, args, vf, fd):
        return 0

    def f_fallocate(self, t, args, vf, fd):
        return -errno.EOPNOTSUPP

    def f_readahead(self, t, args, vf, fd):
        return 0

    def f_sync_file_range(self, t, args, vf, fd):
        return self.f_fsync(t, args, vf, fd)

    def f_mmap(self, t, args, vf, fd):
        """Map a memfd holding the file's content in place of the virtual fd.
        MAP_PRIVATE gets a snapshot; MAP_SHARED shares one memfd per open file, written
        back to the module on msync, munmap, last close and at the end of the session."""
        prot, flags = s32(args[2]), s32(args[3])
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
            link = b"/proc/%d/fd/%d" % (os.getpid(), mfd)
            mode = os.O_RDWR if shared and prot & 2 else os.O_RDONLY
            guest_fd = self.tracer.inject(t.tid, NR_OPENAT, AT_FDCWD & 0xFFFFFFFF,
                                          self.scratch_path(t, link, 1), mode | O_CLOEXEC)
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
            size = self._fstat(vf).st_size
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

    # sockets on a virtual file fd
    def _enotsock(self, t, args, vf, fd):
        return -errno.ENOTSOCK

    f_connect = f_accept = f_accept4 = f_sendto = f_recvfrom = f_sendmsg = f_recvmsg = \
        f_shutdown = f_bind = f_listen = f_getsockname = f_getpeername = f_setsockopt = \
        f_getsockopt = f_recvmmsg = f_sendmmsg = _enotsock

    def on_epoll_ctl(self, t, sc, args):
        """Regular files and directories cannot be watched by epoll (EPERM); the
        placeholder (an eventfd) could, so the core answers for them."""
        vf = t.files.fds.get(s32(args[2]))
        if vf is None or s32(args[1]) != 1:  # EPOLL_CTL_ADD
            return None
        if vf.is_dir or implements(vf.service, "pread"):
            return -errno.EPERM
        return None

    # ------------------------------------------------------------ two-fd syscalls
    def on_fd2(self, t, sc, args):
        name = sc.name
        if name in ("dup2", "dup3"):
            return self.on_fd(t, sc, args)
        if name in ("sendfile", "copy_file_range", "splice", "tee"):
            out_fd = s32(args[0] if name == "sendfile" else args[2])
            in_fd = s32(args[1] if name == "sendfile" else args[0])
            if name == "tee":
                out_fd = s32(args[1])
            vin, vout = t.files.fds.get(in_fd), t.files.fds.get(out_fd)
            in_content = vin is not None and vin.content is not None
            if in_content:  # a memfd: the kernel reads it
                vin = None
            if vout is not None and vout.content is not None:
                vout = None  # read-only: the kernel says EBADF
            if vin is None and vout is None:
                return None
            return self.copy_between(t, sc, args, in_fd, vin, out_fd, vout, in_content)
        return None

    CHUNK = 14 * 4096 - 256  # guest I/O through the scratch area (its last 256 bytes
    # are ModuleAPI.scratch_addr's), one chunk per call

    def guest_io(self, t, nr_name, fd, data_or_size, offset=None):
        """Inject read/write/pread64/pwrite64 on a real guest fd through the scratch
        area; returns bytes read, bytes written, or -errno."""
        buf = self.hv.scratch(t) + 8192
        nr = BY_NAME[nr_name].nr
        if isinstance(data_or_size, (bytes, bytearray)):
            data = bytes(data_or_size[:self.CHUNK])
            self.tracer.poke(t.tid, buf, data)
            args = (fd, buf, len(data)) + ((offset,) if offset is not None else ())
            return s64(self.tracer.inject(t.tid, nr, *args) & 0xFFFFFFFFFFFFFFFF)
        size = min(data_or_size, self.CHUNK)
        args = (fd, buf, size) + ((offset,) if offset is not None else ())
        n = s64(self.tracer.inject(t.tid, nr, *args) & 0xFFFFFFFFFFFFFFFF)
        return n if n < 0 else self.tracer.peek(t.tid, buf, n)

    def _offset(self, t, guest_addr):
        if not guest_addr:
            return None
        return struct.unpack("<q", self.tracer.peek(t.tid, guest_addr, 8))[0]

    def _set_offset(self, t, guest_addr, value):
        if guest_addr:
            self.tracer.poke(t.tid, guest_addr, struct.pack("<q", value))

    def copy_between(self, t, sc, args, in_fd, vin, out_fd, vout, in_content=False):
        """sendfile/copy_file_range/splice with a virtual end, done by the core: data
        moves through umvu, the real end is read or written by injected calls."""
        name = sc.name
        if name == "tee":
            return -errno.EINVAL  # both ends must be pipes
        if name == "splice":
            in_off_addr, out_off_addr, count = args[1], args[3], args[4]
            if vin is not None and vout is not None:
                return -errno.EINVAL  # the kernel needs one end to be a pipe
        elif name == "sendfile":
            in_off_addr, out_off_addr, count = args[2], 0, args[3]
        else:  # copy_file_range: both ends on the same file system
            if (vin is None and not in_content) or vout is None:
                return -errno.EXDEV
            in_off_addr, out_off_addr, count = args[1], args[3], args[4]
        in_off = self._offset(t, in_off_addr)
        out_off = self._offset(t, out_off_addr)
        if (in_off is not None and in_off < 0) or (out_off is not None and out_off < 0):
            return -errno.EINVAL
        total = 0
        while total < count:
            want = min(count - total, self.CHUNK)
            if vin is not None:
                data = self._read(vin, want, None if in_off is None else in_off + total)
            else:
                data = self.guest_io(t, "pread64" if in_off is not None else "read",
                                     in_fd, want,
                                     None if in_off is None else in_off + total)
                if isinstance(data, int):
                    if total:
                        break
                    return data
            if not data:
                break
            if vout is not None:
                n = self._write(vout, data, None if out_off is None else out_off + total)
            else:
                n = self.guest_io(t, "pwrite64" if out_off is not None else "write",
                                  out_fd, data, None if out_off is None else out_off + total)
                if n < 0:
                    if vin is not None and in_off is None:
                        vin.pos -= len(data)
                    if total:
                        break
                    return n
            if n < len(data) and vin is not None and in_off is None:
                vin.pos -= len(data) - n  # not consumed
            total += n
            if n < len(data) or name == "splice":
                break  # splice moves at most one pipe buffer's worth per call
        if in_off is not None:
            self._set_offset(t, in_off_addr, in_off + total)
        if out_off is not None:
            self._set_offset(t, out_off_addr, out_off + total)
        return total
