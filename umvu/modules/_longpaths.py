"""Host paths longer than the kernel takes (PATH_MAX): a module's file system shows a
host tree below a mount point, and the guest's path, which fits, becomes the host
directory's path and the rest, which may not. Each call here is made on the path as
it is where it fits, else on its last part from its directory, opened a part of at most
PATH_MAX at a time as the kernel would walk it (symlinks on the way followed as the
kernel follows them)."""
from __future__ import annotations

import errno
import os
import stat


PATH_MAX = 4096


def _long(fn, host: bytes, *args, **kw):
    """fn(host, ...), or where host is too long for the kernel, fn(rest, ...,
    dir_fd=fd): fd the directory of its first parts (each opened from the last, of at
    most PATH_MAX), rest what is left, which fits."""
    if len(host) < PATH_MAX:
        return fn(host, *args, **kw)
    fd, rest = None, host
    try:
        while len(rest) >= PATH_MAX:
            cut = rest.rfind(b"/", 0, PATH_MAX - 1)
            if cut <= 0:
                raise OSError(errno.ENAMETOOLONG, "File name too long")
            new = os.open(rest[:cut], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            if fd is not None:
                os.close(fd)
            fd, rest = new, rest[cut + 1:]
        return fn(rest, *args, dir_fd=fd, **kw)
    finally:
        if fd is not None:
            os.close(fd)


class Host:
    """os calls on host paths of the layers, each as long as the view allows (_long)."""

    @staticmethod
    def lstat(h):
        return _long(lambda p, dir_fd=None: os.stat(p, dir_fd=dir_fd, follow_symlinks=False),
                     h)

    @staticmethod
    def stat(h):
        return _long(lambda p, dir_fd=None: os.stat(p, dir_fd=dir_fd), h)

    @staticmethod
    def access(h, mode, **kw):
        return _long(lambda p, dir_fd=None: os.access(p, mode, dir_fd=dir_fd, **kw), h)

    @staticmethod
    def readlink(h):
        return _long(lambda p, dir_fd=None: os.readlink(p, dir_fd=dir_fd), h)

    @staticmethod
    def open(h, flags, mode=0o777):
        return _long(lambda p, dir_fd=None: os.open(p, flags, mode, dir_fd=dir_fd), h)

    @staticmethod
    def listdir(h):
        if len(h) < PATH_MAX:
            return os.listdir(h)
        fd = Host.open(h, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return [os.fsencode(n) for n in os.listdir(fd)]  # (an fd's: str names)
        finally:
            os.close(fd)

    @staticmethod
    def isdir(h):
        try:
            return stat.S_ISDIR(Host.stat(h).st_mode)
        except OSError:
            return False

    @staticmethod
    def islink(h):
        try:
            return stat.S_ISLNK(Host.lstat(h).st_mode)
        except OSError:
            return False

    @staticmethod
    def lexists(h):
        try:
            Host.lstat(h)
            return True
        except OSError:
            return False

    @staticmethod
    def _node(h, fn):
        """fn on the inode h names (not followed), for calls with no dir_fd form."""
        if len(h) < PATH_MAX:
            return fn(h, False)
        fd = Host.open(h, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(errno.ENOTSUP, "xattrs of a symlink this deep")
            return fn(b"/proc/self/fd/%d" % fd, True)
        finally:
            os.close(fd)

    @staticmethod
    def getxattr(h, name):
        return Host._node(h, lambda p, f: os.getxattr(p, name, follow_symlinks=f))

    @staticmethod
    def listxattr(h):
        return Host._node(h, lambda p, f: os.listxattr(p, follow_symlinks=f))

    @staticmethod
    def setxattr(h, name, value, flags):
        return Host._node(h, lambda p, f: os.setxattr(p, name, value, flags,
                                                      follow_symlinks=f))

    @staticmethod
    def removexattr(h, name):
        return Host._node(h, lambda p, f: os.removexattr(p, name, follow_symlinks=f))

    @staticmethod
    def at(fn, h: bytes, *args, **kw):
        """fn(name, *args, dir_fd=fd, **kw): any call with a dir_fd form."""
        return _long(fn, h, *args, **kw)

    @staticmethod
    def two(fn, a: bytes, b: bytes):
        """fn(a_name, b_name, a_dir_fd, b_dir_fd): rename and link."""
        return _long(lambda pa, dir_fd=None: _long(
            lambda pb, dir_fd=None, _da=dir_fd: fn(pa, pb, _da, dir_fd), b), a)

    @staticmethod
    def by_node(h: bytes, fn, follow_link: bool = False):
        """fn(path) on what h names: h itself where it fits, else /proc/self/fd/N of an
        O_PATH fd of it (a call with no dir_fd form: truncate, statvfs)."""
        if len(h) < PATH_MAX:
            return fn(h)
        fd = Host.open(h, os.O_PATH | os.O_CLOEXEC | (0 if follow_link else os.O_NOFOLLOW))
        try:
            return fn(b"/proc/self/fd/%d" % fd)
        finally:
            os.close(fd)
