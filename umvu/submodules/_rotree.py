"""A read-only tree of nodes as a pyfuse3.Operations: what vufusearchive and
vufuseiso9660 build from an archive or an image at mount, each node's data read by a
callable of the submodule's (the same classes mount on kernel FUSE with pyfuse3)."""
from __future__ import annotations

import errno
import stat
import time

import pyfuse3


class Node:
    __slots__ = ("ino", "mode", "uid", "gid", "rdev", "nlink", "size", "target", "children",
                 "atime", "mtime", "ctime", "data")

    def __init__(self, ino, mode, uid=0, gid=0, mtime=None):
        now = time.time_ns()
        self.ino, self.mode, self.uid, self.gid = ino, mode, uid, gid
        self.rdev = 0
        self.nlink = 2 if stat.S_ISDIR(mode) else 1
        self.size = 0
        self.target = b""
        self.children = {} if stat.S_ISDIR(mode) else None
        self.atime = self.mtime = self.ctime = now if mtime is None else mtime
        self.data = None  # (offset, size) -> bytes: a regular file's reader


class ReadOnlyTree(pyfuse3.Operations):
    """Subclasses fill the tree with add(); names are bytes, paths relative ("a/b")."""
    enable_writeback_cache = False

    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[int, Node] = {}
        self.parents: dict[int, int] = {}
        self.root = self._node(stat.S_IFDIR | 0o755)
        self.next_fh = 1
        self.fhs: dict[int, Node] = {}
        self.blocks = 0

    # ------------------------------------------------------------ building
    def _node(self, mode, uid=0, gid=0, mtime=None, ino=None) -> Node:
        ino = ino if ino is not None else len(self.nodes) + pyfuse3.ROOT_INODE
        n = Node(ino, mode, uid, gid, mtime)
        self.nodes[ino] = n
        return n

    def dir_of(self, parts: list[bytes], mtime=None) -> Node:
        """The directory at parts, made (0755) where missing."""
        d = self.root
        for name in parts:
            ino = d.children.get(name)
            if ino is None:
                sub = self._node(stat.S_IFDIR | 0o755, d.uid, d.gid, mtime)
                d.children[name] = sub.ino
                d.nlink += 1
                self.parents[sub.ino] = d.ino
                d = sub
            else:
                d = self.nodes[ino]
                if d.children is None:
                    raise OSError(errno.ENOTDIR, "%s is not a directory" % name.decode(
                        errors="replace"))
        return d

    @staticmethod
    def split(path: bytes) -> list[bytes]:
        return [p for p in path.split(b"/") if p not in (b"", b".")]

    def add(self, path: bytes, mode: int, uid=0, gid=0, mtime=None, atime=None,
            ctime=None) -> Node:
        """The node at path (made, or the directory there already, updated)."""
        parts = self.split(path)
        if not parts:
            n = self.root
            n.mode, n.uid, n.gid = mode, uid, gid
        else:
            d = self.dir_of(parts[:-1])
            old = d.children.get(parts[-1])
            if old is not None and stat.S_ISDIR(mode) and \
                    stat.S_ISDIR(self.nodes[old].mode):
                n = self.nodes[old]  # (a directory met again: its own attributes now)
                n.mode, n.uid, n.gid = mode, uid, gid
            else:
                if old is not None:
                    self._unlink(d, parts[-1])
                n = self._node(mode, uid, gid, mtime)
                d.children[parts[-1]] = n.ino
                if n.children is not None:
                    d.nlink += 1
                    self.parents[n.ino] = d.ino
        if mtime is not None:
            n.mtime = mtime
        n.atime = atime if atime is not None else n.mtime
        n.ctime = ctime if ctime is not None else n.mtime
        return n

    def link(self, path: bytes, target: bytes) -> bool:
        """A hard link at path to the node at target; False if there is none."""
        n = self.lookup_path(target)
        if n is None or n.children is not None:
            return False
        parts = self.split(path)
        d = self.dir_of(parts[:-1])
        if parts[-1] in d.children:
            self._unlink(d, parts[-1])
        d.children[parts[-1]] = n.ino
        n.nlink += 1
        return True

    def _unlink(self, d: Node, name: bytes) -> None:
        n = self.nodes[d.children.pop(name)]
        if n.children is not None:
            d.nlink -= 1
        else:
            n.nlink -= 1

    def lookup_path(self, path: bytes) -> Node | None:
        n = self.root
        for name in self.split(path):
            if n.children is None or name not in n.children:
                return None
            n = self.nodes[n.children[name]]
        return n

    # ------------------------------------------------------------ operations
    def _get(self, inode) -> Node:
        n = self.nodes.get(inode)
        if n is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return n

    def _attr(self, n: Node):
        a = pyfuse3.EntryAttributes()
        a.st_ino = n.ino
        a.st_mode = n.mode
        a.st_nlink = n.nlink
        a.st_uid, a.st_gid, a.st_rdev = n.uid, n.gid, n.rdev
        a.st_size = 4096 if n.children is not None else (
            len(n.target) if stat.S_ISLNK(n.mode) else n.size)
        a.st_blksize = 4096
        a.st_blocks = (a.st_size + 511) // 512 if stat.S_ISREG(n.mode) else 0
        a.st_atime_ns, a.st_mtime_ns, a.st_ctime_ns = n.atime, n.mtime, n.ctime
        a.generation = 0
        a.entry_timeout = a.attr_timeout = 300
        return a

    async def lookup(self, parent_inode, name, ctx=None):
        d = self._get(parent_inode)
        if d.children is None:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        if name == b".":
            return self._attr(d)
        if name == b"..":
            return self._attr(self.nodes[self.parents.get(d.ino, d.ino)])
        ino = d.children.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(self.nodes[ino])

    async def getattr(self, inode, ctx=None):
        return self._attr(self._get(inode))

    async def readlink(self, inode, ctx):
        n = self._get(inode)
        if not stat.S_ISLNK(n.mode):
            raise pyfuse3.FUSEError(errno.EINVAL)
        return n.target

    async def opendir(self, inode, ctx):
        if self._get(inode).children is None:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    async def readdir(self, fh, start_id, token):
        d = self.nodes[fh]
        entries = [(b".", d.ino), (b"..", self.parents.get(d.ino, d.ino))]
        entries += sorted(d.children.items())
        for i in range(start_id, len(entries)):
            name, ino = entries[i]
            if not pyfuse3.readdir_reply(token, name, self._attr(self.nodes[ino]), i + 1):
                break

    async def releasedir(self, fh):
        pass

    async def open(self, inode, flags, ctx):
        n = self._get(inode)
        if flags & 3:
            raise pyfuse3.FUSEError(errno.EROFS)
        fh = self.next_fh
        self.next_fh += 1
        self.fhs[fh] = n
        return pyfuse3.FileInfo(fh=fh, keep_cache=True)

    async def read(self, fh, off, size):
        n = self.fhs[fh]
        if n.data is None or off >= n.size:
            return b""
        try:
            return n.data(off, min(size, n.size - off))
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno or errno.EIO) from None

    async def release(self, fh):
        self.fhs.pop(fh, None)

    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = self.blocks
        s.f_bfree = s.f_bavail = 0
        s.f_files = len(self.nodes)
        s.f_ffree = s.f_favail = 0
        s.f_namemax = 255
        return s

    async def getxattr(self, inode, name, ctx):
        self._get(inode)
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    async def listxattr(self, inode, ctx):
        self._get(inode)
        return []
