"""vufusereal: passthrough of a host directory (SOURCE), written as an ordinary
pyfuse3.Operations subclass, in the manner of pyfuse3's passthroughfs."""
from __future__ import annotations

import errno
import os
import stat

import pyfuse3


def _err(e: OSError):
    return pyfuse3.FUSEError(e.errno or errno.EIO)


class RealFS(pyfuse3.Operations):
    def __init__(self, source):
        super().__init__()
        if not os.path.isdir(source):
            raise OSError(errno.ENOTDIR, "source %s is not a directory" % source)
        self.paths = {pyfuse3.ROOT_INODE: os.fsencode(os.path.abspath(source))}
        self.lookups = {}
        self.fds = {}

    def _path(self, ino):
        try:
            return self.paths[ino]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def _attr(self, st, ino=None):
        a = pyfuse3.EntryAttributes()
        for name in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev", "st_size",
                     "st_atime_ns", "st_mtime_ns", "st_ctime_ns", "st_blksize", "st_blocks"):
            setattr(a, name, getattr(st, name))
        a.st_ino = ino or st.st_ino
        a.entry_timeout = a.attr_timeout = 0
        return a

    def _remember(self, path):
        try:
            st = os.lstat(path)
        except OSError as e:
            raise _err(e) from None
        ino = st.st_ino
        if ino == pyfuse3.ROOT_INODE:
            ino = st.st_ino | (1 << 62)
        self.paths[ino] = path
        self.lookups[ino] = self.lookups.get(ino, 0) + 1
        return self._attr(st, ino)

    def _child(self, parent, name):
        return os.path.join(self._path(parent), name)

    async def lookup(self, parent_inode, name, ctx=None):
        if name == b".":
            path = self._path(parent_inode)
        elif name == b"..":
            path = os.path.dirname(self._path(parent_inode))
        else:
            path = self._child(parent_inode, name)
        return self._remember(path)

    async def forget(self, inode_list):
        for ino, n in inode_list:
            left = self.lookups.get(ino, 0) - n
            if left <= 0:
                self.lookups.pop(ino, None)
                if ino != pyfuse3.ROOT_INODE:
                    self.paths.pop(ino, None)
            else:
                self.lookups[ino] = left

    async def getattr(self, inode, ctx=None):
        try:
            return self._attr(os.lstat(self._path(inode)), inode)
        except OSError as e:
            raise _err(e) from None

    async def setattr(self, inode, attr, fields, fh, ctx):
        path = self._path(inode)
        try:
            if fields.update_size:
                if fh is not None:
                    os.ftruncate(fh, attr.st_size)
                else:
                    os.truncate(path, attr.st_size)
            if fields.update_mode:
                os.chmod(path, stat.S_IMODE(attr.st_mode))
            if fields.update_uid or fields.update_gid or \
                    getattr(fields, "update_ctime", False):  # (-1, -1: the ctime alone)
                os.chown(path, attr.st_uid if fields.update_uid else -1,
                         attr.st_gid if fields.update_gid else -1, follow_symlinks=False)
            if fields.update_atime or fields.update_mtime:
                st = os.lstat(path)
                os.utime(path, ns=(attr.st_atime_ns if fields.update_atime else st.st_atime_ns,
                                   attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns),
                         follow_symlinks=False)
            return self._attr(os.lstat(path), inode)
        except OSError as e:
            raise _err(e) from None

    async def readlink(self, inode, ctx):
        try:
            return os.readlink(self._path(inode))
        except OSError as e:
            raise _err(e) from None

    async def opendir(self, inode, ctx):
        return inode

    async def readdir(self, fh, start_id, token):
        path = self._path(fh)
        try:
            names = [b".", b".."] + sorted(os.listdir(path))
        except OSError as e:
            raise _err(e) from None
        for i in range(start_id, len(names)):
            try:
                st = os.lstat(os.path.join(path, names[i]))
            except OSError:
                continue
            if not pyfuse3.readdir_reply(token, names[i], self._attr(st), i + 1):
                break

    async def releasedir(self, fh):
        pass

    def _do(self, fn, *args):
        try:
            return fn(*args)
        except OSError as e:
            raise _err(e) from None

    async def mkdir(self, parent_inode, name, mode, ctx):
        path = self._child(parent_inode, name)
        self._do(os.mkdir, path, mode & ~ctx.umask)
        self._do(os.chmod, path, mode & ~ctx.umask & 0o7777)  # not this process's umask
        return self._remember(path)

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        path = self._child(parent_inode, name)
        self._do(os.mknod, path, mode & ~ctx.umask, rdev)
        self._do(os.chmod, path, mode & ~ctx.umask & 0o7777)
        return self._remember(path)

    async def symlink(self, parent_inode, name, target, ctx):
        path = self._child(parent_inode, name)
        self._do(os.symlink, target, path)
        return self._remember(path)

    async def link(self, inode, new_parent_inode, new_name, ctx):
        path = self._child(new_parent_inode, new_name)
        self._do(lambda: os.link(self._path(inode), path, follow_symlinks=False))
        return self._remember(path)

    async def unlink(self, parent_inode, name, ctx):
        self._do(os.unlink, self._child(parent_inode, name))

    async def rmdir(self, parent_inode, name, ctx):
        self._do(os.rmdir, self._child(parent_inode, name))

    async def rename(self, parent_old, name_old, parent_new, name_new, flags, ctx):
        if flags:
            raise pyfuse3.FUSEError(errno.EINVAL)
        old, new = self._child(parent_old, name_old), self._child(parent_new, name_new)
        self._do(os.rename, old, new)
        for ino, p in list(self.paths.items()):  # keep the remembered paths right
            if p == old or p.startswith(old + b"/"):
                self.paths[ino] = new + p[len(old):]

    async def open(self, inode, flags, ctx):
        fd = self._do(os.open, self._path(inode), (flags & ~os.O_CREAT) | os.O_CLOEXEC)
        return pyfuse3.FileInfo(fh=fd)

    async def create(self, parent_inode, name, mode, flags, ctx):
        path = self._child(parent_inode, name)
        fd = self._do(os.open, path, flags | os.O_CREAT | os.O_CLOEXEC, mode & ~ctx.umask)
        self._do(os.fchmod, fd, mode & ~ctx.umask & 0o7777)
        return pyfuse3.FileInfo(fh=fd), self._remember(path)

    async def read(self, fh, off, size):
        return self._do(os.pread, fh, size, off)

    async def write(self, fh, off, buf):
        return self._do(os.pwrite, fh, buf, off)

    async def flush(self, fh):
        pass

    async def fsync(self, fh, datasync):
        self._do(os.fsync, fh)

    async def release(self, fh):
        os.close(fh)

    async def statfs(self, ctx):
        sv = self._do(os.statvfs, self.paths[pyfuse3.ROOT_INODE])
        s = pyfuse3.StatvfsData()
        for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                     "f_ffree", "f_favail", "f_namemax"):
            setattr(s, name, getattr(sv, name))
        return s

    async def getxattr(self, inode, name, ctx):
        return self._do(lambda: os.getxattr(self._path(inode), name, follow_symlinks=False))

    async def setxattr(self, inode, name, value, ctx):
        self._do(lambda: os.setxattr(self._path(inode), name, value, follow_symlinks=False))

    async def listxattr(self, inode, ctx):
        return [os.fsencode(n) for n in
                self._do(lambda: os.listxattr(self._path(inode), follow_symlinks=False))]

    async def removexattr(self, inode, name, ctx):
        self._do(lambda: os.removexattr(self._path(inode), name, follow_symlinks=False))
