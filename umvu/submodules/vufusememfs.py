"""vufusememfs: a complete in-memory read-write file system (like tmpfs), written as an
ordinary pyfuse3.Operations subclass: the same class mounts on the host with pyfuse3.

Inodes live until their last link is gone and the kernel (or vufuse) has forgotten them
and closed every handle, as FUSE requires. A file's data is kept in pages of 4096 bytes
made when first written: holes (a write far past the end, a truncate that grows) cost no
memory and read as zeros, st_blocks counts the pages, and the capacity (size=, by
default half the machine's memory, as tmpfs's) bounds the pages of all files and the
offset a write reaches (not tmpfs's: umvu maps a virtual file by copying it)."""
from __future__ import annotations

import errno
import os
import stat
import time

import pyfuse3

from umvu.api import parse_size

# size=BYTES (k/M/G suffixes as tmpfs's): the capacity statfs reports and writes respect
OPTIONS = {"size": parse_size}
PAGE = 4096


def _half_the_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError):
        return 1 << 30


def _now():
    return time.time_ns()


class Node:
    __slots__ = ("ino", "mode", "uid", "gid", "rdev", "nlink", "pages", "size", "children",
                 "target", "atime", "mtime", "ctime", "xattrs", "lookups", "opens")

    def __init__(self, ino, mode, uid, gid, rdev=0):
        self.ino, self.mode, self.uid, self.gid, self.rdev = ino, mode, uid, gid, rdev
        self.nlink = 2 if stat.S_ISDIR(mode) else 1
        self.pages = {}  # page number -> bytearray(PAGE): the pages written
        self.size = 0
        self.children = {} if stat.S_ISDIR(mode) else None
        self.target = b""
        self.atime = self.mtime = self.ctime = _now()
        self.xattrs = {}
        self.lookups = 0
        self.opens = 0


class MemFS(pyfuse3.Operations):
    enable_writeback_cache = False

    def __init__(self, source=None, options=None):
        super().__init__()
        self.capacity = (options or {}).get("size") or _half_the_memory()
        self.used_pages = 0
        self.nodes = {}
        self.next_ino = pyfuse3.ROOT_INODE
        root = self._new(stat.S_IFDIR | 0o755, os.getuid(), os.getgid())
        root.nlink = 2
        self.parents = {root.ino: root.ino}  # directory -> its parent, for ".."
        self.fhs = {}
        self.next_fh = 1

    # ------------------------------------------------------------ helpers
    def _new(self, mode, uid, gid, rdev=0):
        node = Node(self.next_ino, mode, uid, gid, rdev)
        self.nodes[node.ino] = node
        self.next_ino += 1
        return node

    def _node(self, ino):
        try:
            return self.nodes[ino]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def _attr(self, n):
        a = pyfuse3.EntryAttributes()
        a.st_ino = n.ino
        a.st_mode = n.mode
        a.st_nlink = n.nlink
        a.st_uid, a.st_gid, a.st_rdev = n.uid, n.gid, n.rdev
        if stat.S_ISDIR(n.mode):
            a.st_size = 4096  # as ext4 shows a small directory: trees compare equal
        else:
            a.st_size = len(n.target) if stat.S_ISLNK(n.mode) else n.size
        a.st_blksize = 4096
        a.st_blocks = 8 if stat.S_ISDIR(n.mode) else len(n.pages) * 8
        a.st_atime_ns, a.st_mtime_ns, a.st_ctime_ns = n.atime, n.mtime, n.ctime
        a.generation = 0
        a.entry_timeout = a.attr_timeout = 300
        return a

    def _maybe_free(self, n):
        if n.nlink == 0 and n.lookups == 0 and n.opens == 0:
            if self.nodes.pop(n.ino, None) is not None:
                self.used_pages -= len(n.pages)
                n.pages = {}
            self.parents.pop(n.ino, None)

    # ------------------------------------------------------------ pages
    def _read(self, n, off, size):
        end = min(off + size, n.size)
        if off >= end:
            return b""
        out = bytearray(end - off)
        for p in range(off // PAGE, (end - 1) // PAGE + 1):
            page = n.pages.get(p)
            if page is not None:
                lo, hi = max(off, p * PAGE), min(end, (p + 1) * PAGE)
                out[lo - off:hi - off] = page[lo - p * PAGE:hi - p * PAGE]
        return bytes(out)

    def _write(self, n, off, buf):
        """buf at off: as much as the capacity leaves room for (a short count), ENOSPC
        when nothing fits."""
        if not buf:
            return 0
        # no file larger than the capacity, holes included: umvu maps a virtual file
        # by copying it (a 5 GiB sparse file would be 5 GiB of umvu's memory)
        if off >= self.capacity:
            raise pyfuse3.FUSEError(errno.ENOSPC)
        end = min(off + len(buf), self.capacity)
        buf = buf[:end - off]
        room = self.capacity // PAGE - self.used_pages
        done = off
        for p in range(off // PAGE, (end - 1) // PAGE + 1):
            page = n.pages.get(p)
            if page is None:
                if room <= 0:
                    break
                page = n.pages[p] = bytearray(PAGE)
                self.used_pages += 1
                room -= 1
            lo, hi = max(off, p * PAGE), min(end, (p + 1) * PAGE)
            page[lo - p * PAGE:hi - p * PAGE] = buf[lo - off:hi - off]
            done = hi
        if done == off:
            raise pyfuse3.FUSEError(errno.ENOSPC)
        n.size = max(n.size, done)
        return done - off

    def _truncate(self, n, size):
        if size < n.size:
            keep = (size + PAGE - 1) // PAGE
            for p in [p for p in n.pages if p >= keep]:
                del n.pages[p]
                self.used_pages -= 1
            tail = n.pages.get(size // PAGE)
            if tail is not None and size % PAGE:
                tail[size % PAGE:] = bytes(PAGE - size % PAGE)
        n.size = size

    def _dir(self, ino):
        d = self._node(ino)
        if d.children is None:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return d

    def _add(self, parent_ino, name, node):
        d = self._dir(parent_ino)
        if name in d.children:
            raise pyfuse3.FUSEError(errno.EEXIST)
        d.children[name] = node.ino
        d.mtime = d.ctime = _now()
        if node.children is not None:
            d.nlink += 1
            self.parents[node.ino] = d.ino
        node.lookups += 1
        return self._attr(node)

    # ------------------------------------------------------------ lookups
    async def lookup(self, parent_inode, name, ctx=None):
        d = self._dir(parent_inode)
        if name == b".":
            ino = d.ino
        elif name == b"..":
            ino = self.parents.get(d.ino, d.ino)
        else:
            ino = d.children.get(name)
            if ino is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
        n = self._node(ino)
        n.lookups += 1
        return self._attr(n)

    async def forget(self, inode_list):
        for ino, count in inode_list:
            n = self.nodes.get(ino)
            if n is not None:
                n.lookups = max(0, n.lookups - count)
                self._maybe_free(n)

    async def getattr(self, inode, ctx=None):
        return self._attr(self._node(inode))

    async def setattr(self, inode, attr, fields, fh, ctx):
        n = self._node(inode)
        if fields.update_size:
            self._truncate(n, attr.st_size)  # (growing: a hole, as tmpfs's)
            n.mtime = _now()
        if fields.update_mode:
            n.mode = (n.mode & stat.S_IFMT(n.mode)) | stat.S_IMODE(attr.st_mode)
        if fields.update_uid:
            n.uid = attr.st_uid
        if fields.update_gid:
            n.gid = attr.st_gid
        if fields.update_atime:
            n.atime = attr.st_atime_ns
        if fields.update_mtime:
            n.mtime = attr.st_mtime_ns
        n.ctime = _now()
        return self._attr(n)

    async def readlink(self, inode, ctx):
        n = self._node(inode)
        if not stat.S_ISLNK(n.mode):
            raise pyfuse3.FUSEError(errno.EINVAL)
        return n.target

    # ------------------------------------------------------------ directories
    async def opendir(self, inode, ctx):
        self._dir(inode)
        return inode

    async def readdir(self, fh, start_id, token):
        d = self._dir(fh)
        entries = [(b".", d.ino), (b"..", self.parents.get(d.ino, d.ino))]
        entries += sorted(d.children.items())
        for i in range(start_id, len(entries)):
            name, ino = entries[i]
            if not pyfuse3.readdir_reply(token, name, self._attr(self._node(ino)), i + 1):
                break

    async def releasedir(self, fh):
        pass

    async def mkdir(self, parent_inode, name, mode, ctx):
        n = self._new(stat.S_IFDIR | (mode & ~ctx.umask & 0o7777), ctx.uid, ctx.gid)
        return self._add(parent_inode, name, n)

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        n = self._new(stat.S_IFMT(mode) | (mode & ~ctx.umask & 0o7777), ctx.uid, ctx.gid,
                      rdev)
        return self._add(parent_inode, name, n)

    async def symlink(self, parent_inode, name, target, ctx):
        n = self._new(stat.S_IFLNK | 0o777, ctx.uid, ctx.gid)
        n.target = bytes(target)
        return self._add(parent_inode, name, n)

    async def link(self, inode, new_parent_inode, new_name, ctx):
        n = self._node(inode)
        if n.children is not None:
            raise pyfuse3.FUSEError(errno.EPERM)
        attr = self._add(new_parent_inode, new_name, n)
        n.nlink += 1
        n.ctime = _now()
        return self._attr(n) if attr else attr

    def _unlink_entry(self, d, name):
        ino = d.children.pop(name)
        n = self._node(ino)
        d.mtime = d.ctime = _now()
        if n.children is not None:
            d.nlink -= 1
            n.nlink = 0
        else:
            n.nlink -= 1
            n.ctime = _now()
        self._maybe_free(n)

    async def unlink(self, parent_inode, name, ctx):
        d = self._dir(parent_inode)
        ino = d.children.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if self._node(ino).children is not None:
            raise pyfuse3.FUSEError(errno.EISDIR)
        self._unlink_entry(d, name)

    async def rmdir(self, parent_inode, name, ctx):
        d = self._dir(parent_inode)
        ino = d.children.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        n = self._node(ino)
        if n.children is None:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        if n.children:
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        self._unlink_entry(d, name)

    async def rename(self, parent_old, name_old, parent_new, name_new, flags, ctx):
        src, dst = self._dir(parent_old), self._dir(parent_new)
        ino = src.children.get(name_old)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        n = self._node(ino)
        other = dst.children.get(name_new)
        if flags & pyfuse3.RENAME_NOREPLACE and other is not None:
            raise pyfuse3.FUSEError(errno.EEXIST)
        if flags & pyfuse3.RENAME_EXCHANGE:
            if other is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            src.children[name_old], dst.children[name_new] = other, ino
            return
        if n.children is not None:  # no directory into its own subtree
            p = dst.ino
            while True:
                if p == ino:
                    raise pyfuse3.FUSEError(errno.EINVAL)
                up = self.parents.get(p, p)
                if up == p:
                    break
                p = up
        if other is not None:
            if other == ino:
                return
            o = self._node(other)
            if o.children is not None:
                if n.children is None:
                    raise pyfuse3.FUSEError(errno.EISDIR)
                if o.children:
                    raise pyfuse3.FUSEError(errno.ENOTEMPTY)
            elif n.children is not None:
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            self._unlink_entry(dst, name_new)
        del src.children[name_old]
        dst.children[name_new] = ino
        if n.children is not None and src is not dst:
            src.nlink -= 1
            dst.nlink += 1
            self.parents[ino] = dst.ino
        now = _now()
        src.mtime = src.ctime = dst.mtime = dst.ctime = n.ctime = now

    # ------------------------------------------------------------ files
    async def open(self, inode, flags, ctx):
        n = self._node(inode)
        n.opens += 1
        fh = self.next_fh
        self.next_fh += 1
        self.fhs[fh] = n
        return pyfuse3.FileInfo(fh=fh)

    async def create(self, parent_inode, name, mode, flags, ctx):
        n = self._new(stat.S_IFREG | (mode & ~ctx.umask & 0o7777), ctx.uid, ctx.gid)
        attr = self._add(parent_inode, name, n)
        fi = await self.open(n.ino, flags, ctx)
        return fi, attr

    async def tmpfile(self, parent_inode, mode, flags, ctx):
        """O_TMPFILE (libfuse 3.15's tmpfile): a file in no directory yet, gone at its
        last close unless linked."""
        self._dir(parent_inode)
        n = self._new(stat.S_IFREG | (mode & ~ctx.umask & 0o7777), ctx.uid, ctx.gid)
        n.nlink = 0
        fi = await self.open(n.ino, flags, ctx)
        return fi, self._attr(n)

    async def lseek(self, fh, off, whence):
        """SEEK_DATA (3) / SEEK_HOLE (4) as tmpfs answers them: pages never written are
        holes (the end of the file is one too)."""
        n = self.fhs[fh]
        if off >= n.size:
            raise pyfuse3.FUSEError(errno.ENXIO)
        page = off // PAGE
        last = (n.size - 1) // PAGE
        want_data = whence == 3
        while page <= last and (page in n.pages) != want_data:
            page += 1
        if page > last:
            if want_data:
                raise pyfuse3.FUSEError(errno.ENXIO)
            return n.size
        return max(off, page * PAGE)

    async def read(self, fh, off, size):
        n = self.fhs[fh]
        n.atime = _now()
        return self._read(n, off, size)

    async def write(self, fh, off, buf):
        n = self.fhs[fh]
        done = self._write(n, off, buf)
        n.mtime = n.ctime = _now()
        return done

    async def flush(self, fh):
        pass

    async def fsync(self, fh, datasync):
        pass

    async def release(self, fh):
        n = self.fhs.pop(fh)
        n.opens -= 1
        self._maybe_free(n)

    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = self.capacity // 4096
        s.f_bfree = s.f_bavail = max(0, self.capacity // PAGE - self.used_pages)
        s.f_files = 1 << 20
        s.f_ffree = s.f_favail = (1 << 20) - len(self.nodes)
        s.f_namemax = 255
        return s

    # ------------------------------------------------------------ xattrs
    async def getxattr(self, inode, name, ctx):
        try:
            return self._node(inode).xattrs[name]
        except KeyError:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR) from None

    async def setxattr(self, inode, name, value, ctx):
        self._node(inode).xattrs[name] = bytes(value)

    async def listxattr(self, inode, ctx):
        return list(self._node(inode).xattrs)

    async def removexattr(self, inode, name, ctx):
        try:
            del self._node(inode).xattrs[name]
        except KeyError:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR) from None
