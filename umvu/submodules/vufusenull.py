"""vufusenull: an empty, read-only file system (a pyfuse3.Operations subclass)."""
import errno
import os
import stat
import time

import pyfuse3

READONLY = True


class NullFS(pyfuse3.Operations):
    def _root(self):
        a = pyfuse3.EntryAttributes()
        a.st_ino = pyfuse3.ROOT_INODE
        a.st_mode = stat.S_IFDIR | 0o555
        a.st_nlink = 2
        a.st_uid, a.st_gid = os.getuid(), os.getgid()
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = self.t
        return a

    def __init__(self):
        super().__init__()
        self.t = time.time_ns()

    async def getattr(self, inode, ctx=None):
        if inode != pyfuse3.ROOT_INODE:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._root()

    async def lookup(self, parent_inode, name, ctx=None):
        if name in (b".", b".."):
            return self._root()
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def opendir(self, inode, ctx):
        return inode

    async def readdir(self, fh, start_id, token):
        for i, name in list(enumerate((b".", b"..")))[start_id:]:
            if not pyfuse3.readdir_reply(token, name, self._root(), i + 1):
                break

    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_namemax = 255
        return s
