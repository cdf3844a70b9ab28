"""unreal (VUOS's test module): ``/unreal`` (and ``/unreal/unreal``) show the whole host
tree again.

Every operation is performed by umvu itself on the host path (no path rewriting in the
guest), so the complete virtual-fd path of the core is exercised.
"""
from __future__ import annotations

import errno
import os
import stat

from umvu.api import Module, touching
from umvu.modules._longpaths import PATH_MAX, Host

PREFIX = b"/unreal"


class _ExactMode:
    """The core has applied the guest's umask already: create with exactly ``mode``."""

    def __enter__(self):
        self.old = os.umask(0)

    def __exit__(self, *exc):
        os.umask(self.old)


exact_mode = _ExactMode()


def utime_ns(host_path: bytes, atime_ns, mtime_ns, dir_fd=None) -> None:
    """Set a host file's times; None leaves that time as it is (both now: as touch, with
    the kernel's own rule for who may)."""
    if touching(atime_ns, mtime_ns):
        os.utime(host_path, None, dir_fd=dir_fd, follow_symlinks=False)
        return
    st = os.stat(host_path, dir_fd=dir_fd, follow_symlinks=False)
    os.utime(host_path, ns=(st.st_atime_ns if atime_ns is None else atime_ns,
                            st.st_mtime_ns if mtime_ns is None else mtime_ns),
             dir_fd=dir_fd, follow_symlinks=False)


_O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class At:
    """A host path at or below a layer root, reached from the root one component at a
    time without following a symlink (openat O_PATH|O_NOFOLLOW): a symlink the guest
    made in the layer (or swapped in meanwhile) cannot lead an operation outside it.
    A context: ``dir_fd`` is the parent directory, ``name`` the last component; the
    operations below never follow ``name`` either. ``make_dirs``: make the missing
    parents (mode 0755), no more following them."""
    __slots__ = ("dir_fd", "name")

    def __init__(self, root: bytes, host: bytes, make_dirs: bool = False) -> None:
        comps = [c for c in host[len(root):].split(b"/") if c]
        if not comps:  # the root itself, as named
            parent, name = os.path.split(root.rstrip(b"/") or b"/")
            self.dir_fd = os.open(parent or b"/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            self.name = name or b"."
            return
        fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for c in comps[:-1]:
                if make_dirs:
                    try:
                        os.mkdir(c, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                new = os.open(c, _O_PATH_DIR, dir_fd=fd)
                os.close(fd)
                fd = new
        except BaseException:
            os.close(fd)
            raise
        self.dir_fd, self.name = fd, comps[-1]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.dir_fd)

    def open(self, flags: int, mode: int = 0o666) -> int:
        return os.open(self.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                       dir_fd=self.dir_fd)

    def lstat(self):
        return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)

    def _node(self, fn, *args, symlink_ok: bool = False):
        """fn(/proc/self/fd/N of name itself, *args): the inode, never a name again."""
        fd = os.open(self.name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dir_fd)
        try:
            if not symlink_ok and stat.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(errno.EOPNOTSUPP, "not on a symlink")
            return fn(b"/proc/self/fd/%d" % fd, *args)
        finally:
            os.close(fd)

    def chmod(self, mode: int) -> None:
        self._node(os.chmod, mode)  # (the kernel's answer for a symlink: EOPNOTSUPP)

    def chown(self, uid: int, gid: int) -> None:
        os.chown(self.name, uid, gid, dir_fd=self.dir_fd, follow_symlinks=False)

    def truncate(self, length: int) -> None:
        fd = self.open(os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.ftruncate(fd, length)
        finally:
            os.close(fd)

    def utimens(self, atime_ns, mtime_ns) -> None:
        if touching(atime_ns, mtime_ns):
            os.utime(self.name, None, dir_fd=self.dir_fd, follow_symlinks=False)
            return
        st = self.lstat()
        os.utime(self.name, ns=(st.st_atime_ns if atime_ns is None else atime_ns,
                                st.st_mtime_ns if mtime_ns is None else mtime_ns),
                 dir_fd=self.dir_fd, follow_symlinks=False)

    def setxattr(self, name: bytes, value: bytes, flags: int) -> None:
        self._node(os.setxattr, name, value, flags)

    def removexattr(self, name: bytes) -> None:
        self._node(os.removexattr, name)

    def mkdir(self, mode: int) -> None:
        os.mkdir(self.name, mode, dir_fd=self.dir_fd)

    def mknod(self, mode: int, rdev: int) -> None:
        os.mknod(self.name, mode, rdev, dir_fd=self.dir_fd)

    def symlink(self, target: bytes) -> None:
        os.symlink(target, self.name, dir_fd=self.dir_fd)

    def unlink(self) -> None:
        os.unlink(self.name, dir_fd=self.dir_fd)

    def rmdir(self) -> None:
        os.rmdir(self.name, dir_fd=self.dir_fd)

    def rmtree(self) -> None:
        import shutil  # (when needed: with re, 10 ms of a first module's load)
        shutil.rmtree(self.name, dir_fd=self.dir_fd)


class HostTree:
    """A service showing the host directory ``root`` (bytes)."""

    WRITE_METHODS = ("mkdir", "rmdir", "unlink", "rename", "link", "symlink", "mknod",
                     "chmod", "chown", "truncate", "utimens", "setxattr", "removexattr")

    def __init__(self, root: bytes = b"/", readonly: bool = False) -> None:
        self.root = root.rstrip(b"/")
        self.readonly = readonly
        if readonly:
            for name in self.WRITE_METHODS:
                setattr(self, name, self._erofs)
        self._listings: dict[int, list] = {}  # fd -> names read at offset 0
        # a writable tree is served by the kernel itself: the core rewrites path
        # arguments to host paths (as proot does), so fds, mmap and exec stay real
        self.native_root = None if readonly else (self.root or b"/")

    def native_host(self, path: bytes):
        if self.readonly:
            return None
        host = self.host(path)
        return host if len(host) < PATH_MAX else None  # (too long for the kernel: ours)

    def host(self, path: bytes) -> bytes:
        return self.root + path if path != b"/" else (self.root or b"/")

    # --- paths
    def lstat(self, path):
        return Host.lstat(self.host(path))

    def access(self, path, mode):
        if not Host.access(self.host(path), mode, follow_symlinks=False):
            raise OSError(errno.EACCES, "access")

    def readlink(self, path):
        return Host.readlink(self.host(path))

    def _erofs(self, *args):
        raise OSError(errno.EROFS, "read-only file system")

    def host_path(self, path):
        return self.host(path)

    def special_path(self, path, st):
        return self.host(path)

    def open(self, path, flags, mode):
        if self.readonly and (flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC)):
            raise OSError(errno.EROFS, "read-only file system")
        with exact_mode:
            return Host.open(self.host(path),
                             (flags | os.O_CLOEXEC | os.O_NOFOLLOW) & ~os.O_NOCTTY, mode)

    def mkdir(self, path, mode):
        with exact_mode:
            Host.at(os.mkdir, self.host(path), mode)

    def rmdir(self, path):
        Host.at(os.rmdir, self.host(path))

    def unlink(self, path):
        Host.at(os.unlink, self.host(path))

    def rename(self, old, new, flags):
        if flags:
            raise OSError(errno.EINVAL, "rename flags")
        Host.two(lambda a, b, da, db: os.rename(a, b, src_dir_fd=da, dst_dir_fd=db),
                 self.host(old), self.host(new))

    def link(self, old, new):
        Host.two(lambda a, b, da, db: os.link(a, b, src_dir_fd=da, dst_dir_fd=db,
                                              follow_symlinks=False),
                 self.host(old), self.host(new))

    def symlink(self, target, path):
        Host.at(lambda p, dir_fd=None: os.symlink(target, p, dir_fd=dir_fd), self.host(path))

    def mknod(self, path, mode, rdev):
        with exact_mode:
            Host.at(os.mknod, self.host(path), mode, rdev)

    def chmod(self, path, mode):
        if stat.S_ISLNK(Host.lstat(self.host(path)).st_mode):
            raise OSError(errno.EOPNOTSUPP, "chmod of a symlink")
        Host.at(os.chmod, self.host(path), mode)

    def chown(self, path, uid, gid):
        Host.at(os.chown, self.host(path), uid, gid, follow_symlinks=False)

    def truncate(self, path, length):
        Host.by_node(self.host(path), lambda p: os.truncate(p, length), follow_link=True)

    def utimens(self, path, atime_ns, mtime_ns):
        Host.at(utime_ns, self.host(path), atime_ns, mtime_ns)

    def statfs(self, path):
        return Host.by_node(self.host(path), os.statvfs, follow_link=True)

    def getxattr(self, path, name):
        return Host.getxattr(self.host(path), name)

    def setxattr(self, path, name, value, flags):
        Host.setxattr(self.host(path), name, value, flags)

    def listxattr(self, path):
        return [os.fsencode(n) for n in Host.listxattr(self.host(path))]

    def removexattr(self, path, name):
        Host.removexattr(self.host(path), name)

    # --- handles (host fds held by umvu)
    def close(self, fd):
        self._listings.pop(fd, None)
        os.close(fd)

    def pread(self, fd, size, offset):
        return os.pread(fd, size, offset)

    def pwrite(self, fd, data, offset):
        return os.pwrite(fd, data, offset)

    def fstat(self, fd):
        return os.fstat(fd)

    def ftruncate(self, fd, length):
        os.ftruncate(fd, length)

    def fsync(self, fd):
        os.fsync(fd)

    def getdents(self, fd, offset):
        """Entries from ``offset`` (an index into the sorted listing, with . and ..)."""
        st = os.fstat(fd)
        if offset == 0 or fd not in self._listings:
            os.lseek(fd, 0, os.SEEK_SET)
            self._listings[fd] = [b".", b".."] + sorted(os.fsencode(n) for n in os.listdir(fd))
        names = self._listings[fd]
        out = []
        for i in range(offset, len(names)):
            name = names[i]
            if name in (b".", b".."):
                out.append((name, st.st_ino if name == b"." else 0, 4, i + 1))
                continue
            try:
                est = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            out.append((name, est.st_ino, stat.S_IFMT(est.st_mode) >> 12, i + 1))
        return out


class Unreal(Module):
    """As VUOS's: /unreal shows the host tree, and so does /unreal/unreal (there, VUOS
    virtualizes the module's own calls on /unreal/... once more: a second layer of the
    same tree); /unreal/unreal/unreal is the host's /unreal (which does not exist)."""
    name = "unreal"
    description = "/unreal and /unreal/unreal show the host tree (VUOS test module)"

    def __init__(self, api) -> None:
        super().__init__(api)
        self.service = HostTree(b"/")
        self.again = HostTree(b"/")
        api.add_path(self, PREFIX, self.service, source=b"/", fstype="unreal")
        api.add_path(self, PREFIX + PREFIX, self.again, source=PREFIX, fstype="unreal")

    def cleanup(self) -> None:
        self.api.remove_path(self, PREFIX + PREFIX)
        self.api.remove_path(self, PREFIX)
