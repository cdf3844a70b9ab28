"""vufuse: FUSE file systems inside umvu, with no kernel FUSE, on the pyfuse3 API.

``vumount -t vufuseNAME [-o OPTS] SOURCE TARGET`` mounts submodule
``umvu.submodules.vufuseNAME``; ``vumount -t vufuse -o fs=PATH_OR_DOTTED[:Class]`` mounts
any ``pyfuse3.Operations`` subclass (a third party's, or pyfuse3's own examples). The class
is built as ``Class(SOURCE, options)``, ``Class(SOURCE)`` or ``Class()``, whichever its
constructor takes (a module-level ``vufuse_operations(source, options)`` wins if present),
then its ``init()`` runs, as pyfuse3.init would.

Options: ``ro``; ``rw`` and ``rw+`` (fuse-ext2's spelling) for read-write (the default);
``fs=`` as above; ``timeout=SECONDS`` (30): an operation blocked longer answers EIO; ``default_permissions`` (on by default: mode bits are checked against
the guest's credentials like the kernel does); anything else is offered to the
submodule's ``OPTIONS`` (a {name: type} dict) and otherwise rejected.

Operations methods may be ``async def`` (pyfuse3) or plain functions. A coroutine that
really waits (trio.sleep, a trio.Lock, trio sockets...) makes the guest's call wait while
umvu serves the others: trio's first use makes umvu's loop run on trio
(umvu.core.waiting).
"""
from __future__ import annotations

import errno
import importlib
import importlib.util
import inspect
import os
import signal
import stat
import sys
import time
import types

from umvu.api import capability, drive, handle_of, lazy_trio, log, Module, touching
from umvu import kernelrules as kr
from umvu.modules._vufuse_rules import KernelRules

ROOT_INODE = 1
FUSE_SUPER_MAGIC = 0x65735546
O_TMPFILE = 0o20200000  # (with O_DIRECTORY)
READDIR_BATCH = 128
# readdir keeps its entries as lookups only while fewer paths than this are kept (a huge
# tree listed once would otherwise hold a path per file until the unmount)
READDIR_KEEP_MAX = 100000
# what the kernel does when a FUSE file system answers ENOSYS
ENOSYS_IS_OK = {"release", "releasedir", "flush", "fsync", "forget", "destroy", "init",
                "access"}
ENOSYS_IS_EOPNOTSUPP = {"getxattr", "setxattr", "listxattr", "removexattr"}
# operations that change nothing the attribute cache holds. "open" and "release" are
# among them as for the kernel's FUSE, which keeps attributes over both: an open that
# writes or truncates has dropped the cache before (_rofs), and so has every write.
READING_OPS = {"lookup", "getattr", "readlink", "open", "opendir", "read", "readdir",
               "statfs", "getxattr", "listxattr", "access", "flush", "release",
               "releasedir", "fsync"}
BASE_OPTIONS = {"ro", "rw", "rw+", "fs", "timeout", "default_permissions", "allow_other",
                "fakeroot", "nofakeroot",
                "suid", "nosuid", "dev", "nodev", "exec", "noexec", "atime", "noatime"}


def _pyfuse3():
    """pyfuse3 with the calls that talk to the kernel replaced for use in umvu (trio,
    which it imports, is imported when a file system uses it)."""
    lazy_trio()
    import pyfuse3
    if not getattr(pyfuse3, "_umvu_patched", False):
        pyfuse3.readdir_reply = _readdir_reply
        pyfuse3.invalidate_inode = lambda *a, **k: None
        pyfuse3.invalidate_entry = lambda *a, **k: None
        pyfuse3._umvu_patched = True
    return pyfuse3


class ReaddirToken:
    __slots__ = ("entries", "limit")

    def __init__(self, limit):
        self.entries = []
        self.limit = limit


def _readdir_reply(token, name, attr, next_id):
    if len(token.entries) >= token.limit:
        return False
    token.entries.append((name, attr, next_id))
    return True


class _Alarm:
    """While an operation waits (drive) its timeout is off: the others are served."""
    __slots__ = ("saved",)

    def leave(self):
        self.saved, _active[0] = _active[0], 0
        signal.setitimer(signal.ITIMER_REAL, 0)

    def enter(self):
        _active[0] = self.saved
        if self.saved:
            signal.setitimer(signal.ITIMER_REAL, _timeouts[0] if _timeouts else 30.0)


def run_op(result):
    """Run a coroutine to its end (it may wait); plain values pass through."""
    while inspect.iscoroutine(result):  # (a returned coroutine is awaited too)
        result = drive(result, _Alarm())
    return result


class Ctx:
    """A pyfuse3.RequestContext look-alike for the calling guest thread, read only when
    an operation looks at it."""
    __slots__ = ("_api", "_ids")

    def __init__(self, api):
        self._api = api
        self._ids = None

    def _get(self, i):
        if self._ids is None:
            self._ids = list(self._api.caller())
        return self._ids[i]

    def _set(self, i, value):
        self._get(i)
        self._ids[i] = value

    uid = property(lambda self: self._get(0), lambda self, v: self._set(0, v))
    gid = property(lambda self: self._get(1), lambda self, v: self._set(1, v))
    pid = property(lambda self: self._get(2), lambda self, v: self._set(2, v))
    umask = property(lambda self: self._get(3), lambda self, v: self._set(3, v))


class Fields:
    """A pyfuse3.SetattrFields look-alike."""
    __slots__ = ("update_atime", "update_mtime", "update_ctime", "update_mode",
                 "update_uid", "update_gid", "update_size")

    def __init__(self, **flags):
        for name in self.__slots__:
            setattr(self, name, flags.get(name, False))


class Handle:
    """An open file or directory of a vufuse mount. ``direct``: the file system's open
    asked for direct_io or nonseekable (its data is not plain bytes up to st_size).
    ``linkable``: an O_TMPFILE file not yet linked (nor opened with O_EXCL)."""
    __slots__ = ("fh", "inode", "is_dir", "direct", "path", "linkable")

    def __init__(self, fh, inode, is_dir, fi=None, path=None):
        self.fh, self.inode, self.is_dir, self.path = fh, inode, is_dir, path
        self.linkable = False
        self.direct = bool(getattr(fi, "direct_io", False) or getattr(fi, "nonseekable", False))


class OperationTimeout(Exception):
    pass


# operations under way (nested ones included); the alarm is armed when the outermost
# starts and left to ring when it is over: it then finds nothing under way
_active = [0]
_timeouts: list = []  # the timeout of the outermost operation under way


def _on_alarm(signum, frame):
    if _active[0]:
        raise OperationTimeout()


def _fuse_errno(e):
    code = getattr(e, "errno", None)
    return code if isinstance(code, int) and code > 0 else errno.EIO


class FuseService(KernelRules):
    """Serves one mount: the core's path/handle calls become pyfuse3 Operations calls."""

    def __init__(self, ops, api, dev: int, readonly: bool, default_permissions: bool,
                 timeout: float = 30.0, fakeroot: bool = False):
        self.ops = ops
        self.timeout = timeout  # seconds an operation may block before it answers EIO
        signal.signal(signal.SIGALRM, _on_alarm)
        self.api = api
        self.dev = dev
        self.readonly = readonly
        # what /proc/mounts and df show as its type: the file system's own name where
        # the submodule gives one (vufuseext2: ext2, ext3 or ext4, as the kernel's)
        self.shown_fstype = getattr(ops, "fstype", None)
        # what the kernel's own driver of that type would show and ask: statfs's magic,
        # O_DIRECT's alignment (a block device's logical block size; 0: none, as FUSE)
        self.statfs_type = getattr(ops, "statfs_type", FUSE_SUPER_MAGIC)
        self.direct_io_align = getattr(ops, "direct_io_align", 0)
        self.default_permissions = default_permissions
        self.fakeroot = fakeroot  # permission checks treat every caller as root
        self.pf = _pyfuse3()
        self.inodes: dict[bytes, int] = {b"/": ROOT_INODE}  # lookup cache
        self.expires: dict[bytes, float] = {}  # path -> end of its entry_timeout
        self.lookups: dict[int, int] = {}  # inode -> lookup count (for forget)
        self.opened: dict[int, int] = {}  # inode -> open handles (no forget while open)
        self.pending_forget: dict[int, int] = {}
        self._attr_cache: dict[int, tuple] = {}  # inode -> (valid until, stat)
        self._seen: dict[int, object] = {}  # inode -> its last stat (see walk_lstat)
        self._searched: dict[tuple, float] = {}  # (cred, dir) -> searchable until
        self.image = None  # the ImageSource under this mount, if any

    # ---------------------------------------------------------------- plumbing
    def call(self, name, *args):
        fn = getattr(self.ops, name, None)
        if fn is None:
            raise OSError(errno.ENOSYS, name)
        if not _active[0]:  # a nested call keeps the outer one's deadline
            signal.setitimer(signal.ITIMER_REAL, self.timeout)
            _timeouts[:] = [self.timeout]
        _active[0] += 1
        try:
            return run_op(fn(*args))
        except OperationTimeout:
            log.error("umvu: vufuse: %s blocked for more than %gs, answering EIO",
                      name, self.timeout)
            raise OSError(errno.EIO, "file system operation timed out") from None
        except self.pf.FUSEError as e:
            code = _fuse_errno(e)
            if code == errno.ENOSYS and name in ENOSYS_IS_OK:
                return None
            if code == errno.ENOSYS and name in ENOSYS_IS_EOPNOTSUPP:
                code = errno.EOPNOTSUPP
            raise OSError(code, os.strerror(code)) from None
        finally:
            _active[0] -= 1
            if name not in READING_OPS:
                self._attr_cache.clear()
                self._searched.clear()

    def ctx(self):
        return Ctx(self.api)

    def attr(self, ea):
        """EntryAttributes -> a stat-like object (attributes checked: garbage is EIO).
        ``st_ino`` is the inode operations take; a ``shown_ino`` the guest sees instead
        (the kernel's FUSE: a node id and the file's own inode number)."""
        try:
            st = types.SimpleNamespace(
                st_mode=int(ea.st_mode), st_ino=int(getattr(ea, "shown_ino", ea.st_ino)),
                st_dev=self.dev,
                st_nlink=int(ea.st_nlink), st_uid=int(ea.st_uid), st_gid=int(ea.st_gid),
                st_rdev=int(ea.st_rdev), st_size=int(ea.st_size),
                st_blksize=int(ea.st_blksize) or 4096, st_blocks=int(ea.st_blocks),
                st_atime_ns=int(ea.st_atime_ns), st_mtime_ns=int(ea.st_mtime_ns),
                st_ctime_ns=int(ea.st_ctime_ns))
        except (AttributeError, TypeError, ValueError, OverflowError):
            raise OSError(errno.EIO, "bad attributes from the file system") from None
        if stat.S_IFMT(st.st_mode) == 0 or st.st_size < 0 or st.st_ino <= 0:
            raise OSError(errno.EIO, "bad attributes from the file system")
        return st

    def _counted(self, ea):
        ino = int(ea.st_ino)
        self.lookups[ino] = self.lookups.get(ino, 0) + 1
        return ino

    def forget_path(self, path: bytes) -> None:
        """Drop cached lookups of path and everything below it."""
        below = path.rstrip(b"/") + b"/"
        victims = [p for p in self.inodes if p == path or p.startswith(below)]
        dropped = {self.inodes.pop(p) for p in victims if p != b"/"}
        for p in victims:
            self.expires.pop(p, None)
        still = set(self.inodes.values())  # hard links: other names keep the inode
        todo = []
        for ino in dropped - still:
            self._seen.pop(ino, None)  # (a forgotten node id may name another file)
            n = self.lookups.pop(ino, 0)
            if n and self.opened.get(ino):  # as the kernel: not while a file is open
                self.pending_forget[ino] = self.pending_forget.get(ino, 0) + n
            elif n:
                todo.append((ino, n))
        self._forget(todo)

    def _forget(self, todo) -> None:
        if todo and hasattr(self.ops, "forget"):
            try:
                self.call("forget", todo)
            except OSError:
                pass

    def inode(self, path: bytes) -> int:
        """The inode of a path, from the lookup cache while its entry_timeout lasts
        (changes made through vufuse itself update the cache at once); for an fd's
        call, the inode of its open file."""
        h = handle_of(path)
        if h is not None:
            return h.inode
        ino = self.inodes.get(path)
        if ino is not None:
            if time.monotonic() < self.expires.get(path, float("inf")):
                return ino
            # expired: look it up again (the old reference is forgotten at umount,
            # unlink or rename, as the kernel drops a dentry it revalidated)
            del self.inodes[path]
        parent, name = self.split(path)
        ea = self.call("lookup", self.inode(parent), name, self.ctx())
        ino = self._counted(ea)
        if ino <= 0:
            raise OSError(errno.EIO, "bad inode")
        self._entered(path, ino, ea)
        return ino

    def _entered(self, path: bytes, ino: int, ea) -> None:
        """Keep what a lookup (or a readdir entry) said of path for its entry_timeout."""
        self.inodes[path] = ino
        timeout = getattr(ea, "entry_timeout", 300)
        if timeout < 300:
            self.expires[path] = time.monotonic() + timeout
        else:
            self.expires.pop(path, None)

    @staticmethod
    def split(path: bytes):
        parent, _, name = path.rpartition(b"/")
        return parent or b"/", name

    def _getattr(self, ino):
        """getattr, kept for the attr_timeout the file system gives (as the kernel
        does); every change made through this mount drops what is kept."""
        hit = self._attr_cache.get(ino)
        now = time.monotonic()
        if hit is not None and now < hit[0]:
            return hit[1]
        return self._keep_attr(ino, self.call("getattr", ino, self.ctx()), now)

    def _keep_attr(self, ino, ea, now):
        st = self.attr(ea)
        if len(self._seen) > 65536:
            self._seen.clear()
        self._seen[ino] = st
        timeout = getattr(ea, "attr_timeout", 0) or 0
        if timeout > 0:
            if len(self._attr_cache) > 65536:
                self._attr_cache.clear()
                self._searched.clear()
            self._attr_cache[ino] = (now + timeout, st)
        return st

    def _rofs(self):
        """Every operation that changes the file system starts here."""
        self._attr_cache.clear()
        self._searched.clear()
        if self.readonly:
            raise OSError(errno.EROFS, "read-only file system")

    # ---------------------------------------------------------------- paths
    def lstat(self, path):
        """(every path the core serves is looked at here first: the walk's search
        permission is checked here)"""
        if path != b"/" and self.default_permissions and not self.fakeroot and \
                handle_of(path) is None:  # (an fd's call walks no path)
            ctx = self.ctx()
            if ctx.uid != 0:
                self._searchable(path, ctx)
        return self._getattr(self.inode(path))

    def walk_lstat(self, path):
        """A directory (or symlink) the walk goes through: as the kernel's walk, which
        looks up the entry (for its entry_timeout) but uses the inode's attributes it
        has, the last ones seen of that inode will do (an inode's type never changes)
        unless permissions are checked here (default_permissions: lstat's own)."""
        if self.default_permissions and not self.fakeroot:
            return self.lstat(path)
        st = self._seen.get(self.inode(path))
        return st if st is not None else self.lstat(path)

    def access(self, path, mode):
        st = self.lstat(path)
        if mode & 2 and stat.S_IFMT(st.st_mode) in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            self._rofs()  # (a fifo or a device of a read-only mount is writable)
        self.check(st, mode & 7)
        if hasattr(self.ops, "access") and not self.default_permissions:
            if not self.call("access", self.inode(path), mode, self.ctx()):
                raise OSError(errno.EACCES, "permission denied")

    def readlink(self, path):
        return bytes(self.call("readlink", self.inode(path), self.ctx()))

    def open(self, path, flags, mode):
        ctx = self.ctx()
        acc = flags & os.O_ACCMODE
        writing = acc != os.O_RDONLY or flags & os.O_TRUNC
        try:
            ino = self.inode(path)
        except FileNotFoundError:
            ino = None
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
            ino = None
        if ino is None:
            self._rofs()
            parent = self.check_parent(path, ctx)
            ctx.umask = 0  # the core already applied the guest's umask
            name = self.split(path)[1]
            mode = self.creating(parent, stat.S_IFREG | (mode & 0o7777), ctx)
            try:
                fi, ea = self.call("create", parent, name, mode, flags, ctx)
            except OSError as e:
                if e.errno != errno.ENOSYS:
                    raise
                # as the kernel: no create() means mknod() then open()
                ea = self.call("mknod", parent, name, mode, 0, ctx)
                fi = self.call("open", int(ea.st_ino), flags & ~(os.O_CREAT | os.O_EXCL),
                               ctx)
            self.inodes[path] = self._counted(ea)
            return self._opened(Handle(getattr(fi, "fh", fi), int(ea.st_ino), False, fi))
        st = self._getattr(ino)
        if stat.S_ISDIR(st.st_mode):
            self.check(st, 4, ctx)
            self.check_noatime(st, flags, ctx)
            fh = self.call("opendir", ino, ctx)
            return self._opened(Handle(fh, ino, True, path=path))
        if writing:
            self._rofs()
        self.check(st, (4 if acc in (os.O_RDONLY, os.O_RDWR) else 0) |
                   (2 if acc in (os.O_WRONLY, os.O_RDWR) or flags & os.O_TRUNC else 0), ctx)
        self.check_noatime(st, flags, ctx)
        if flags & os.O_TRUNC and st.st_size:
            self._setattr(ino, size=0)
        fi = self.call("open", ino, flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC), ctx)
        return self._opened(Handle(getattr(fi, "fh", fi), ino, False, fi))

    def tmpfile(self, path, flags, mode):
        """open(O_TMPFILE) in the directory path: the file system's ``tmpfile(
        parent_inode, mode, flags, ctx) -> (FileInfo, EntryAttributes)`` (libfuse
        3.15's, FUSE_TMPFILE), as the kernel's vfs_tmpfile checks it."""
        if not hasattr(self.ops, "tmpfile"):
            raise OSError(errno.EOPNOTSUPP, "no O_TMPFILE in this file system")
        self._rofs()
        ctx = self.ctx()
        parent = self.inode(path)
        self.check(self._getattr(parent), kr.W | kr.X, ctx)
        ctx.umask = 0
        mode = self.creating(parent, stat.S_IFREG | (mode & 0o7777), ctx)
        fi, ea = self.call("tmpfile", parent, mode, flags & ~(O_TMPFILE | os.O_EXCL), ctx)
        h = Handle(getattr(fi, "fh", fi), int(ea.st_ino), False, fi)
        h.linkable = not flags & os.O_EXCL
        return self._opened(h)

    def link_open(self, h, new):
        """A name for the open file h: ENOENT once it has no link left, unless it is an
        O_TMPFILE file linkable still (the kernel's I_LINKABLE, gone once linked)."""
        self._rofs()
        if h.is_dir:
            raise OSError(errno.EPERM, "a directory")
        if self._getattr(h.inode).st_nlink == 0 and not h.linkable:
            raise OSError(errno.ENOENT, "no link left")
        ctx = self.ctx()
        parent = self.check_parent(new, ctx)
        ea = self.call("link", h.inode, parent, self.split(new)[1], ctx)
        self.inodes[new] = self._counted(ea)
        h.linkable = False

    def mkdir(self, path, mode):
        self._rofs()
        ctx = self.ctx()
        parent = self.check_parent(path, ctx)
        ctx.umask = 0
        mode = self.creating(parent, stat.S_IFDIR | mode, ctx)
        ea = self.call("mkdir", parent, self.split(path)[1], mode, ctx)
        self.inodes[path] = self._counted(ea)

    def mknod(self, path, mode, rdev):
        self._rofs()
        ctx = self.ctx()
        parent = self.check_parent(path, ctx)
        ctx.umask = 0
        mode = self.creating(parent, mode, ctx)
        ea = self.call("mknod", parent, self.split(path)[1], mode, rdev, ctx)
        self.inodes[path] = self._counted(ea)

    def symlink(self, target, path):
        self._rofs()
        ctx = self.ctx()
        parent = self.check_parent(path, ctx)
        self.creating(parent, stat.S_IFLNK, ctx)
        ea = self.call("symlink", parent, self.split(path)[1], target, ctx)
        self.inodes[path] = self._counted(ea)

    def link(self, old, new):
        self._rofs()
        ctx = self.ctx()
        parent = self.check_parent(new, ctx)
        ea = self.call("link", self.inode(old), parent, self.split(new)[1], ctx)
        self.inodes[new] = self._counted(ea)

    def _remove(self, op, path):
        self._rofs()
        ctx = self.ctx()
        parent = self.check_remove(path, ctx)
        self.call(op, parent, self.split(path)[1], ctx)
        self.forget_path(path)

    def unlink(self, path):
        self._remove("unlink", path)

    def rmdir(self, path):
        self._remove("rmdir", path)

    def rename(self, old, new, flags):
        self._rofs()
        ctx = self.ctx()
        p_old = self.check_remove(old, ctx)
        p_new = self.check_remove(new, ctx)  # (a target that exists goes too)
        if self.default_permissions and p_old != p_new:
            st = self.lstat(old)  # a directory moved elsewhere gets a new ..: writable
            if stat.S_ISDIR(st.st_mode):
                self.check(st, 2, ctx)
        self.call("rename", p_old, self.split(old)[1], p_new, self.split(new)[1], flags, ctx)
        self.forget_path(old)
        self.forget_path(new)

    def _setattr(self, ino, fh=None, **values):
        ea = self.pf.EntryAttributes()
        flags = {}
        for key, value in values.items():
            setattr(ea, "st_" + key if not key.endswith("_ns") else "st_" + key, value)
            flags["update_" + key.replace("_ns", "")] = True
        self.call("setattr", ino, ea, Fields(**flags), fh, self.ctx())

    def chmod(self, path, mode):
        self._rofs()
        ino = self.inode(path)
        st = self._getattr(ino)
        mode = kr.chmod_mode(st, mode, self._rules_cred(self.ctx()))
        self._setattr(ino, mode=stat.S_IFMT(st.st_mode) | mode)

    def chown(self, path, uid, gid):
        self._rofs()
        ino = self.inode(path)
        values = {}
        if uid != -1:
            values["uid"] = uid
        if gid != -1:
            values["gid"] = gid
        cred = self._rules_cred(self.ctx())
        st = self._getattr(ino)
        kr.may_chown(st, uid, gid, cred)
        # chown drops set-user-ID, whoever calls it, and set-group-ID as a write does
        mode = kr.mode_after_chown(st, gid, cred)
        if mode is not None:
            values["mode"] = mode
        if not values:  # (the kernel's chown changes the ctime whatever it is given)
            values["ctime_ns"] = time.time_ns()
        self._setattr(ino, **values)

    def truncate(self, path, length):
        self._rofs()
        ino = self.inode(path)
        self.check(self._getattr(ino), 2)
        self._setattr(ino, size=length)

    def utimens(self, path, atime_ns, mtime_ns):
        self._rofs()
        ctx = self.ctx()
        if atime_ns is not None or mtime_ns is not None:
            st = self.lstat(path)
            kr.may_utimens(st, touching(atime_ns, mtime_ns), self._rules_cred(ctx),
                           lambda: self.check(st, kr.W, ctx))
        values = {}
        if atime_ns is not None:
            values["atime_ns"] = atime_ns
        if mtime_ns is not None:
            values["mtime_ns"] = mtime_ns
        if values:
            self._setattr(self.inode(path), **values)

    def statfs(self, path):
        sv = self.call("statfs", self.ctx())
        return types.SimpleNamespace(
            f_bsize=sv.f_bsize, f_frsize=sv.f_frsize or sv.f_bsize, f_blocks=sv.f_blocks,
            f_bfree=sv.f_bfree, f_bavail=sv.f_bavail, f_files=sv.f_files,
            f_ffree=sv.f_ffree, f_namemax=sv.f_namemax or 255, f_type=self.statfs_type,
            f_flag=1 if self.readonly else 0)

    def _acl(self, name):
        # as the kernel for a FUSE file system without FUSE_POSIX_ACL
        if name.startswith(b"system.posix_acl_") and not getattr(self.ops, "posix_acl", False):
            raise OSError(errno.EOPNOTSUPP, "no POSIX ACLs")

    def getxattr(self, path, name):
        self._acl(name)
        return bytes(self.call("getxattr", self.inode(path), name, self.ctx()))

    def _may_xattr(self, ino, name):
        st = self._getattr(ino)
        ctx = self.ctx()
        kr.may_xattr(st, name, self.cred(ctx), lambda: self.check(st, kr.W, ctx))

    def setxattr(self, path, name, value, flags):
        self._rofs()
        self._acl(name)
        ino = self.inode(path)
        self._may_xattr(ino, name)
        if flags & 3:  # XATTR_CREATE / XATTR_REPLACE: pyfuse3 does not pass them on
            try:
                self.call("getxattr", ino, name, self.ctx())
                exists = True
            except OSError as e:
                if e.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
                    raise
                exists = False
            if flags & 1 and exists:
                raise OSError(errno.EEXIST, "attribute exists")
            if flags & 2 and not exists:
                raise OSError(errno.ENODATA, "no such attribute")
        self.call("setxattr", ino, name, value, self.ctx())

    def listxattr(self, path):
        return [bytes(n) for n in self.call("listxattr", self.inode(path), self.ctx())]

    def removexattr(self, path, name):
        self._rofs()
        self._acl(name)
        ino = self.inode(path)
        self._may_xattr(ino, name)
        self.call("removexattr", ino, name, self.ctx())

    def special_path(self, path, st):
        """FIFOs and sockets of a FUSE file system live in the kernel, not in the
        daemon: the guest opens a private host fifo standing for this inode, binds and
        connects to a private host socket path (made by its bind)."""
        if stat.S_ISSOCK(st.st_mode):
            return os.path.join(self.api.private_dir(), b"sock-%d-%d" % (self.dev, st.st_ino))
        if not stat.S_ISFIFO(st.st_mode):
            raise OSError(errno.ENXIO, "device files of a vufuse mount")
        fifo = os.path.join(self.api.private_dir(), b"fifo-%d-%d" % (self.dev, st.st_ino))
        # umvu's own, for umvu alone: the file's permissions were checked (access) and
        # umvu opens it for the guest (a guest that dropped its ids could not reach it,
        # and no other user may talk into it)
        with self.api.mounter_ids():
            try:
                os.mkfifo(fifo, 0o600)
            except FileExistsError:
                pass
        return fifo

    # ---------------------------------------------------------------- handles
    def _opened(self, h):
        self.opened[h.inode] = self.opened.get(h.inode, 0) + 1
        return h

    def close(self, h):
        try:
            if h.is_dir:
                if hasattr(self.ops, "releasedir"):
                    self.call("releasedir", h.fh)
                return
            if hasattr(self.ops, "flush"):
                self.call("flush", h.fh)
            if hasattr(self.ops, "release"):
                self.call("release", h.fh)
        finally:
            left = self.opened.get(h.inode, 1) - 1
            if left:
                self.opened[h.inode] = left
            else:
                self.opened.pop(h.inode, None)
                n = self.pending_forget.pop(h.inode, 0)
                if n:
                    self._forget([(h.inode, n)])

    def plain_content(self, h):
        """The core may hand read-only opens of this file a memfd of its data: as the
        kernel's FUSE page cache, which reads a file up to st_size unless direct_io."""
        return not h.is_dir and not h.direct

    def pread(self, h, size, offset):
        return bytes(self.call("read", h.fh, offset, size))

    def pwrite(self, h, data, offset):
        self._rofs()
        n = self.call("write", h.fh, offset, data)
        if n:
            self._kill_privs(h.inode, self.ctx(), h.fh)
        return n

    def seek_data(self, h, offset, whence):
        """SEEK_DATA/SEEK_HOLE: the file system's ``lseek(fh, offset, whence)``
        (libfuse's lseek, FUSE_LSEEK); absent or ENOSYS: the core's generic answer."""
        if h.is_dir or not hasattr(self.ops, "lseek"):
            raise OSError(errno.ENOSYS, "no lseek")
        return self.call("lseek", h.fh, offset, whence)

    def fstat(self, h):
        return self._getattr(h.inode)

    def ftruncate(self, h, length):
        self._rofs()
        self._setattr(h.inode, fh=h.fh, size=length)

    def fsync(self, h):
        if hasattr(self.ops, "fsync"):
            self.call("fsync", h.fh, False)

    def syncfs(self):
        """FUSE_SYNCFS: a file system's ``syncfs()``, where it has one (pyfuse3's
        Operations has none; ours write back there what they hold)."""
        if hasattr(self.ops, "syncfs"):
            self.call("syncfs")

    def getdents(self, h, offset):
        token = ReaddirToken(READDIR_BATCH)
        self.call("readdir", h.fh, offset, token)
        # as the kernel's READDIRPLUS: each entry counts as a lookup (the file system
        # counted it), and its inode and attributes are kept as a lookup's would be, while
        # the directory is still known by the path it was opened by
        here = h.path is not None and self.inodes.get(h.path) == h.inode and \
            len(self.inodes) < READDIR_KEEP_MAX
        below = h.path.rstrip(b"/") + b"/" if here else b""
        now = time.monotonic()
        out = []
        for name, ea, next_id in token.entries:
            name = bytes(name)
            if name in (b".", b"..") or not getattr(ea, "is_lookup", True):
                ino = int(ea.st_ino)  # (is_lookup False: a plain READDIR entry)
            else:
                ino = self._counted(ea)
                if here and ino > 0:
                    try:
                        self._keep_attr(ino, ea, now)
                        self._entered(below + name, ino, ea)
                    except OSError:  # bad attributes: not kept (a lookup says EIO)
                        pass
            out.append((name, int(getattr(ea, "shown_ino", ino)),
                        stat.S_IFMT(int(ea.st_mode)) >> 12, int(next_id)))
        return out

    def destroy(self):
        self.forget_path(b"/")
        try:
            if hasattr(self.ops, "destroy"):
                try:
                    self.call("destroy")
                except OSError:
                    pass
        finally:
            if self.image is not None:  # the device under this mount is free again
                self.image.release()
                self.image = None


def load_operations_class(spec: str, api=None):
    """``PATH.py[:Class]`` or ``dotted.module[:Class]``: the Operations class in it
    (a file only if api.may_run_code allows the caller)."""
    where, _, clsname = spec.partition(":")
    if where.endswith(".py") or "/" in where:
        if not os.path.isfile(where):
            raise OSError(errno.ENOENT, "no file system module %s" % where)
        if api is not None:
            api.may_run_code(where)
        name = "vufuse_ext_" + os.path.basename(where).rsplit(".", 1)[0]
        mspec = importlib.util.spec_from_file_location(name, where)
        if mspec is None or mspec.loader is None:
            raise OSError(errno.ENOEXEC, "%s is not a Python file" % where)
        mod = importlib.util.module_from_spec(mspec)
        sys.modules[name] = mod
        mspec.loader.exec_module(mod)
    else:
        try:
            mod = importlib.import_module(where)
        except ModuleNotFoundError as e:
            raise OSError(errno.ENODEV, "no file system module %s (%s)" % (where, e)) from None
    factory = getattr(mod, "vufuse_operations", None)
    if factory is not None and not clsname:
        return mod, factory
    pf = _pyfuse3()
    if clsname:
        cls = getattr(mod, clsname, None)
        if cls is None:
            raise OSError(errno.ENODEV, "%s has no class %s" % (where, clsname))
        return mod, cls
    classes = [c for _, c in inspect.getmembers(mod, inspect.isclass)
               if issubclass(c, pf.Operations) and c is not pf.Operations
               and c.__module__ == mod.__name__]
    if len(classes) != 1:
        raise OSError(errno.ENODEV, "%s defines %d Operations classes; name one with "
                      "fs=%s:Class" % (where, len(classes), where))
    return mod, classes[0]


def build_operations(factory, source: bytes, options: dict):
    if not inspect.isclass(factory):
        return factory(source, options)
    params = [p for p in inspect.signature(factory.__init__).parameters.values()][1:]
    names = {p.name for p in params}
    if "options" in names:  # (by name, as vufusememfs's: defaults of its own too)
        kw = {"options": options}
        if "source" in names:
            kw["source"] = os.fsdecode(source)
        return factory(**kw)
    required = [p for p in params if p.default is p.empty and
                p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(required) >= 2:
        return factory(os.fsdecode(source), options)
    if len(required) == 1:
        return factory(os.fsdecode(source))
    return factory()


class VuFuse(Module):
    name = "vufuse"
    description = "FUSE file systems (pyfuse3 API) without the kernel"

    def __init__(self, api) -> None:
        super().__init__(api)
        self.mounts = 0

    def accepts(self, fstype: str) -> bool:
        return fstype == "vufuse" or (fstype.startswith("vufuse") and
                                      fstype[6:].replace("_", "").isalnum())

    @property
    def filesystems(self):
        here = os.path.join(os.path.dirname(os.path.dirname(__file__)), "submodules")
        names = sorted(f[:-3] for f in os.listdir(here)
                       if f.startswith("vufuse") and f.endswith(".py"))
        return tuple(["vufuse"] + names)

    def mount(self, source, target, fstype, flags, options):
        opts = {}
        for item in filter(None, options.split(",")):
            key, eq, value = item.partition("=")
            opts[key] = value if eq else True
        spec = opts.pop("fs", None)
        if fstype == "vufuse":
            if not spec or spec is True:
                raise OSError(errno.EINVAL, "vufuse needs -o fs=MODULE[:Class]")
        else:
            spec = "umvu.submodules." + fstype
        lazy_trio()  # (before the file system's module imports trio)
        mod, factory = load_operations_class(spec, self.api)
        accepted = dict(getattr(mod, "OPTIONS", {}))
        sub_opts = {}
        for key, value in opts.items():
            if key in BASE_OPTIONS:
                continue
            if key not in accepted:
                raise OSError(errno.EINVAL, "unknown mount option %r" % key)
            try:
                sub_opts[key] = True if accepted[key] is bool else accepted[key](value)
            except (TypeError, ValueError):
                raise OSError(errno.EINVAL, "bad value for option %r" % key) from None
        writable = bool(opts.get("rw") or opts.get("rw+"))
        readonly = (bool(flags & 1 or opts.get("ro")) or getattr(mod, "READONLY", False)
                    or getattr(mod, "DEFAULT_READONLY", False)) and not writable
        if "readonly" in accepted:
            sub_opts["readonly"] = readonly
        try:
            timeout = float(opts.get("timeout", 30))
        except ValueError:
            raise OSError(errno.EINVAL, "bad value for option 'timeout'") from None
        if getattr(mod, "SOURCE_IMAGE", False):
            # an image file or a device of another module: the host file behind it
            if source in (b"", b"none"):
                raise OSError(errno.EINVAL, "%s needs an image file or device" % fstype)
            # locked (a second mount of the bytes a writing one holds is EBUSY), except
            # for a read-only mount the user asked for by name (-r, -o ro): it may read
            # an image mounted read-write elsewhere, as debugfs -c does
            asked_ro = bool(flags & 1 or opts.get("ro")) and not writable
            # (a device whose bytes no host file holds, a partition of a qcow2 disk: a
            # submodule that can is given the device itself)
            image = self.api.image_source(source, below=self,
                                          write=None if asked_ro else not readonly,
                                          device_ok=getattr(mod, "DEVICE_SOURCE", False))
            if image.file is not None:
                sub_opts["device"] = image.file
            guest_source, source = source, image.host_path
            if image.offset:
                sub_opts["offset"] = image.offset
            if image.size is not None:
                sub_opts["size"] = image.size
        else:
            image = None
        lazy_trio()  # (trio imported by the module itself: the loop is to run on it)
        try:
            ops = build_operations(factory, source, sub_opts)
            if hasattr(ops, "init"):
                run_op(ops.init())
        except BaseException as e:
            if image is not None:
                image.release()
                if isinstance(e, OSError) and isinstance(e.strerror, str) and \
                        source != guest_source:  # (the guest's name of the image)
                    raise OSError(e.errno, e.strerror.replace(
                        os.fsdecode(source), os.fsdecode(guest_source))) from None
            raise
        self.mounts += 1
        dev = os.makedev(0, 0x80 + self.mounts)
        # fakeroot (as fuse2fs): an unprivileged user who mounts an image owns all of
        # its bytes anyway; image submodules default to it when umvu is not root
        fakeroot = bool(opts.get("fakeroot")) or (
            getattr(mod, "FAKEROOT_UNPRIVILEGED", False) and os.getuid() != 0
            and not opts.get("nofakeroot"))
        service = FuseService(ops, self.api, dev, readonly, default_permissions=True,
                              timeout=timeout, fakeroot=fakeroot)
        service.image = image
        return service
