"""vufuseext2: ext2, ext3 and ext4 images through libext2fs, as a pyfuse3 file system.

``vumount -t vufuseext2 [-o ro|rw+] IMAGE MOUNTPOINT``. Read-only unless ``rw`` or
``rw+`` is given (as fuse-ext2). IMAGE is a file or a device another module offers
(``/dev/hda1`` of vudev: a window of a host image).

Checked at mount: an image that is not ext2/3/4, is corrupt (superblock, group
descriptors, checksums), has features libext2fs cannot handle, or has a journal that
needs recovery is refused with a clear error and nothing written; a read-only mount never
writes a byte. A read-write mount marks the image "not clean" while mounted (as the kernel
does) and clean again when it is unmounted, the session ends or umvu is told to stop.
The journal is not used for writing (as fuse2fs): a crash leaves an image for e2fsck.
"""
from __future__ import annotations

import errno
import functools
import inspect
import os
import stat
from collections import OrderedDict

import pyfuse3

from umvu.api import log

from umvu.submodules import ext2fs
from umvu.submodules.ext2fs import SET_ATIME, SET_CTIME, SET_GID, SET_MODE, SET_MTIME, SET_UID

OPTIONS = {"readonly": bool, "offset": int, "size": int}
DEVICE_SOURCE = True  # a device with no host file (a qcow2 disk's partition) is read
                      # through the device itself (vufuse's "device" option)
SOURCE_IMAGE = True  # vufuse hands over the host file behind the source (offset, size)
DEFAULT_READONLY = True
FAKEROOT_UNPRIVILEGED = True  # an unprivileged umvu: permission checks as for root
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
HIDDEN_XATTRS = {b"system.data"}  # where ext4 keeps inline data: the kernel hides it
ACL_ACCESS, ACL_DEFAULT = b"system.posix_acl_access", b"system.posix_acl_default"
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = \
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def acl_parse(value: bytes):
    """The kernel's xattr form of a POSIX ACL -> [[tag, perm, id]] (EINVAL if bad)."""
    if len(value) < 4 or (len(value) - 4) % 8 or int.from_bytes(value[:4], "little") != 2:
        raise pyfuse3.FUSEError(errno.EINVAL)
    out = []
    for pos in range(4, len(value), 8):
        out.append([int.from_bytes(value[pos:pos + 2], "little"),
                    int.from_bytes(value[pos + 2:pos + 4], "little"),
                    int.from_bytes(value[pos + 4:pos + 8], "little")])
    tags = [e[0] for e in out]
    if any(tags.count(t) != 1 for t in (ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER)) or \
            tags.count(ACL_MASK) > 1 or any(e[1] & ~7 for e in out) or \
            ((ACL_USER in tags or ACL_GROUP in tags) and ACL_MASK not in tags):
        raise pyfuse3.FUSEError(errno.EINVAL)
    return out


def acl_bytes(entries) -> bytes:
    return (2).to_bytes(4, "little") + b"".join(
        t.to_bytes(2, "little") + p.to_bytes(2, "little") + i.to_bytes(4, "little")
        for t, p, i in entries)


def acl_mode(entries) -> int:
    """The permission bits an access ACL stands for (the mask is the group's)."""
    perm = {t: p for t, p, _ in entries}
    group = perm.get(ACL_MASK, perm[ACL_GROUP_OBJ])
    return perm[ACL_USER_OBJ] << 6 | group << 3 | perm[ACL_OTHER]


def _e(fuse_ino: int) -> int:
    """FUSE inode -> ext2 inode (the root is 1 for FUSE, 2 for ext2)."""
    return ext2fs.ROOT_INO if fuse_ino == pyfuse3.ROOT_INODE else fuse_ino


def _f(ext2_ino: int) -> int:
    return pyfuse3.ROOT_INODE if ext2_ino == ext2fs.ROOT_INO else ext2_ino


def _fail(exc: OSError):
    return pyfuse3.FUSEError(exc.errno or errno.EIO)


def _errnos(fn):
    """An Operations method whose OSErrors (libext2fs' errors, mapped) become
    FUSEErrors, as pyfuse3 wants them."""
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except OSError as e:
            raise _fail(e) from None
    return wrapper


def _refuse(code: int, text: str):
    return OSError(code, text)


# features only ext4 has (as blkid tells ext4 from ext3 and ext2)
EXT4_INCOMPAT = 0x0040 | 0x0080 | 0x0200 | 0x0400 | 0x1000 | 0x8000 | 0x10000  # extents,
# 64bit, flex_bg, ea_inode, dirdata, inline_data, encrypt
EXT4_RO_COMPAT = 0x0008 | 0x0010 | 0x0020 | 0x0040 | 0x0400  # huge_file, gdt_csum,
# dir_nlink, extra_isize, metadata_csum


def _kind(info) -> str:
    """ext4, ext3 or ext2: the type a kernel mount of this file system shows."""
    if info.feature_incompat & EXT4_INCOMPAT or info.feature_ro_compat & EXT4_RO_COMPAT:
        return "ext4"
    return "ext3" if info.has_journal else "ext2"


class Ext2Operations(pyfuse3.Operations):
    """A pyfuse3 file system on an ext2/3/4 image (libext2fs does the on-disk work)."""

    posix_acl = True  # system.posix_acl_* are stored and read as raw xattrs
    supports_dot_lookup = True
    enable_writeback_cache = False
    # as the kernel's ext2/3/4 on a loop device of the image: statfs's EXT2_SUPER_MAGIC
    # (stat -f says ext2/ext3, /proc/mounts the type), O_DIRECT aligned to its 512-byte
    # logical blocks
    statfs_type = 0xEF53
    direct_io_align = 512

    def __init__(self, source: str, options: dict | None = None):
        super().__init__()
        options = options or {}
        self.readonly = bool(options.get("readonly", False))
        self.source = os.fsencode(source)
        offset = int(options.get("offset", 0) or 0)
        size = options.get("size")
        name = os.fsdecode(self.source)
        device = options.get("device")
        try:
            self.img = ext2fs.Image(self.source, rw=not self.readonly, offset=offset,
                                    device=device)
        except OSError as e:
            if e.errno in (errno.EUCLEAN, errno.EBADMSG):
                raise _refuse(e.errno, "%s: corrupt ext2/3/4 file system (%s); run e2fsck"
                              % (name, e.strerror)) from None
            if e.errno == errno.EROFS and not self.readonly:
                raise _refuse(errno.EROFS, "%s: has features that can only be mounted "
                              "read-only (%s)" % (name, e.strerror)) from None
            raise _refuse(e.errno or errno.EINVAL, "%s: cannot mount as ext2/3/4 (%s)"
                          % (name, e.strerror)) from None
        info = self.img.info()
        self.info = info
        self.fstype = _kind(info)
        problem = None
        if info.needs_recovery:
            problem = (errno.EUCLEAN, "%s: the journal needs recovery; run e2fsck on it "
                       "first (nothing was written)" % name)
        elif size is not None and info.blocks_count * info.block_size > size:
            problem = (errno.EINVAL, "%s: the file system (%d bytes) is larger than its "
                       "device (%d bytes)" % (name, info.blocks_count * info.block_size,
                                              size))
        elif not self.readonly and info.state & 2:  # EXT2_ERROR_FS
            problem = (errno.EUCLEAN, "%s: the file system has errors; run e2fsck on it "
                       "before mounting it read-write" % name)
        if problem:
            self.img.close(clean=False)
            raise _refuse(*problem)
        if not self.readonly:
            self.img.mark_mounted()
        elif info.state & 2:
            log.warning("umvu: vufuseext2: %s has errors; e2fsck is recommended", name)
        self.block_size = info.block_size
        self.open_count: dict[int, int] = {}   # ext2 inode -> open handles
        self.orphans: set[int] = set()         # unlinked while open: freed at last close
        self.handles: dict[int, int] = {}      # fh -> ext2 inode
        self.dirs: dict[int, list] = {}        # fh -> directory snapshot
        self.next_fh = 1
        # directory inode -> {name: inode}: libext2fs looks names up by a linear scan,
        # so lookups go through these (every change of a directory goes through here)
        self.dcache: OrderedDict[int, dict] = OrderedDict()

    # ------------------------------------------------------------ helpers
    DCACHE_DIRS = 256

    def _children(self, dir_ino: int) -> dict:
        d = self.dcache.get(dir_ino)
        if d is None:
            d = {name: ino for name, ino, _ in self.img.listdir(dir_ino)}
            self.dcache[dir_ino] = d
            if len(self.dcache) > self.DCACHE_DIRS:
                self.dcache.popitem(last=False)
        else:
            self.dcache.move_to_end(dir_ino)
        return d

    def _lookup(self, dir_ino: int, name: bytes) -> int:
        ino = self._children(dir_ino).get(name)
        if ino is None:
            raise OSError(errno.ENOENT, "no such entry")
        return ino

    def _added(self, dir_ino: int, name: bytes, ino: int) -> int:
        d = self.dcache.get(dir_ino)
        if d is not None:
            d[name] = ino
        return ino

    def _removed(self, dir_ino: int, name: bytes) -> None:
        d = self.dcache.get(dir_ino)
        if d is not None:
            d.pop(name, None)

    def _entry(self, a) -> pyfuse3.EntryAttributes:
        ea = pyfuse3.EntryAttributes()
        ea.st_ino = _f(a.ino)
        ea.generation = a.generation
        ea.st_mode = a.mode
        ea.st_nlink = a.nlink
        ea.st_uid = a.uid
        ea.st_gid = a.gid
        ea.st_rdev = a.rdev
        ea.st_size = a.size
        ea.st_blksize = self.block_size
        ea.st_blocks = a.blocks
        ea.st_atime_ns = a.atime_ns
        ea.st_mtime_ns = a.mtime_ns
        ea.st_ctime_ns = a.ctime_ns
        ea.entry_timeout = 300
        ea.attr_timeout = 300
        return ea

    def _attr(self, ino: int) -> pyfuse3.EntryAttributes:
        return self._entry(self.img.getattr(ino))

    def _writable(self):
        if self.readonly:
            raise pyfuse3.FUSEError(errno.EROFS)

    def _absent(self, parent: int, name: bytes) -> None:
        if len(name) > 255:
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        if name in self._children(parent):
            raise pyfuse3.FUSEError(errno.EEXIST)

    def _new_ids(self, parent: int, ctx, mode: int):
        """Owner and group of a new node; a set-group-ID directory passes its group (and,
        to subdirectories, the bit)."""
        pa = self.img.getattr(parent)
        gid = ctx.gid
        if pa.mode & stat.S_ISGID:
            gid = pa.gid
            if stat.S_ISDIR(mode):
                mode |= stat.S_ISGID
        return ctx.uid, gid, mode

    def _release_inode(self, ino: int) -> None:
        n = self.open_count.get(ino, 1) - 1
        if n > 0:
            self.open_count[ino] = n
            return
        self.open_count.pop(ino, None)
        if ino in self.orphans:
            self.orphans.discard(ino)
            self.img.free_inode(ino)

    def _new_fh(self, ino: int) -> int:
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = ino
        self.open_count[ino] = self.open_count.get(ino, 0) + 1
        return fh

    # ------------------------------------------------------------ Operations
    async def lookup(self, parent_inode, name, ctx=None):
        return self._attr(self._lookup(_e(parent_inode), bytes(name)))

    async def getattr(self, inode, ctx=None):
        return self._attr(_e(inode))

    async def setattr(self, inode, attr, fields, fh, ctx):
        ino = _e(inode)
        self._writable()
        if fields.update_size:
            self.img.truncate(ino, attr.st_size)
        which = 0
        cur = self.img.getattr(ino)
        mode = cur.mode
        if fields.update_mode:
            which |= SET_MODE
            mode = attr.st_mode
        if fields.update_uid or fields.update_gid:
            which |= SET_UID | SET_GID
            # a change of owner drops set-user-ID and set-group-ID (with group x)
            if stat.S_ISREG(cur.mode) and not fields.update_mode and \
                    cur.mode & (stat.S_ISUID | stat.S_ISGID):
                mode = cur.mode & ~stat.S_ISUID
                if mode & stat.S_IXGRP:
                    mode &= ~stat.S_ISGID
                which |= SET_MODE
        if fields.update_atime:
            which |= SET_ATIME
        if fields.update_mtime:
            which |= SET_MTIME
        if which & SET_MODE:
            self._chmod_acl(ino, mode)
        if which or fields.update_size or getattr(fields, "update_ctime", False):
            which |= SET_CTIME
            self.img.setattr(
                ino, which, mode=mode,
                uid=attr.st_uid if fields.update_uid else cur.uid,
                gid=attr.st_gid if fields.update_gid else cur.gid,
                atime_ns=attr.st_atime_ns, mtime_ns=attr.st_mtime_ns,
                ctime_ns=ext2fs.now_ns())
        return self._attr(ino)

    async def readlink(self, inode, ctx):
        return self.img.readlink(_e(inode))

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        self._writable()
        parent, name = _e(parent_inode), bytes(name)
        self._absent(parent, name)
        uid, gid, mode = self._new_ids(parent, ctx, mode)
        mode = stat.S_IFMT(mode) | (mode & ~ctx.umask & 0o7777)
        return self._attr(self._added(parent, name, self.img.mknode(
            parent, name, mode, uid, gid, rdev)))

    async def mkdir(self, parent_inode, name, mode, ctx):
        self._writable()
        parent, name = _e(parent_inode), bytes(name)
        self._absent(parent, name)
        uid, gid, mode = self._new_ids(parent, ctx, stat.S_IFDIR | mode)
        return self._attr(self._added(parent, name, self.img.mkdir(
            parent, name, mode & ~ctx.umask & 0o7777, uid, gid)))

    async def symlink(self, parent_inode, name, target, ctx):
        self._writable()
        parent, name = _e(parent_inode), bytes(name)
        target = bytes(target)
        if len(target) >= min(4096, self.info.block_size):  # (as ext4_symlink: the
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)        # target and its NUL in a block)
        self._absent(parent, name)
        uid, gid, _ = self._new_ids(parent, ctx, stat.S_IFLNK)
        return self._attr(self._added(parent, name, self.img.symlink(
            parent, name, target, uid, gid)))

    async def link(self, inode, new_parent_inode, new_name, ctx):
        self._writable()
        parent, name = _e(new_parent_inode), bytes(new_name)
        self._absent(parent, name)
        self.img.link(parent, name, _e(inode))
        return self._attr(self._added(parent, name, _e(inode)))

    def _remove(self, parent: int, name: bytes, want_dir: bool) -> None:
        ino = self._lookup(parent, name)
        a = self.img.getattr(ino)
        is_dir = stat.S_ISDIR(a.mode)
        if want_dir and not is_dir:
            raise OSError(errno.ENOTDIR, "not a directory")
        if not want_dir and is_dir:
            raise OSError(errno.EISDIR, "is a directory")
        if is_dir and not self.img.dir_is_empty(ino):
            raise OSError(errno.ENOTEMPTY, "directory not empty")
        busy = bool(self.open_count.get(ino))
        left = self.img.unlink(parent, name, ino, is_dir, free_now=not busy)
        self._removed(parent, name)
        if is_dir:
            self.dcache.pop(ino, None)
        if not left and busy:
            self.orphans.add(ino)

    async def unlink(self, parent_inode, name, ctx):
        self._writable()
        self._remove(_e(parent_inode), bytes(name), False)

    async def rmdir(self, parent_inode, name, ctx):
        self._writable()
        if bytes(name) in (b".", b".."):
            raise pyfuse3.FUSEError(errno.EINVAL if name == b"." else errno.ENOTEMPTY)
        self._remove(_e(parent_inode), bytes(name), True)

    def _inside(self, ino: int, dir_ino: int) -> bool:
        """Is dir_ino ino itself or below it?"""
        seen = 0
        while True:
            if dir_ino == ino:
                return True
            if dir_ino == ext2fs.ROOT_INO or seen > 4096:
                return False
            dir_ino = self._lookup(dir_ino, b"..")
            seen += 1

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags,
                     ctx):
        self._writable()
        po, pn = _e(parent_inode_old), _e(parent_inode_new)
        old, new = bytes(name_old), bytes(name_new)
        if flags & RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        try:
            ino = self._lookup(po, old)
            is_dir = stat.S_ISDIR(self.img.getattr(ino).mode)
            target = self._children(pn).get(new)
            if target is not None and flags & RENAME_NOREPLACE:
                raise OSError(errno.EEXIST, "exists")
            if target == ino:
                return  # two names of one file: nothing to do, as POSIX says
            if is_dir and self._inside(ino, pn):
                raise OSError(errno.EINVAL, "a directory cannot move below itself")
            if target is not None:
                t_dir = stat.S_ISDIR(self.img.getattr(target).mode)
                if is_dir and not t_dir:
                    raise OSError(errno.ENOTDIR, "not a directory")
                if not is_dir and t_dir:
                    raise OSError(errno.EISDIR, "is a directory")
                self._remove(pn, new, t_dir)
            elif len(new) > 255:
                raise OSError(errno.ENAMETOOLONG, "name too long")
            self.img.rename(po, old, pn, new, ino)
            self._removed(po, old)
            self._added(pn, new, ino)
            if is_dir:
                self._added(ino, b"..", pn)
        except OSError as e:
            for d in (po, pn):  # a half-done change: read the directories again
                self.dcache.pop(d, None)
            raise _fail(e) from None

    async def open(self, inode, flags, ctx):
        ino = _e(inode)
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            self._writable()
        if flags & os.O_TRUNC:
            self.img.truncate(ino, 0)
        return pyfuse3.FileInfo(fh=self._new_fh(ino))

    async def create(self, parent_inode, name, mode, flags, ctx):
        self._writable()
        parent, name = _e(parent_inode), bytes(name)
        self._absent(parent, name)
        uid, gid, mode = self._new_ids(parent, ctx, mode)
        ino = self._added(parent, name, self.img.mknode(
            parent, name, stat.S_IFREG | (mode & ~ctx.umask & 0o7777), uid, gid))
        return pyfuse3.FileInfo(fh=self._new_fh(ino)), self._attr(ino)

    def _ino_of(self, fh: int) -> int:
        ino = self.handles.get(fh)
        if ino is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return ino

    async def read(self, fh, off, size):
        return self.img.read(self._ino_of(fh), size, off)

    async def lseek(self, fh, off, whence):
        return self.img.seek_data(self._ino_of(fh), off, whence)

    async def write(self, fh, off, buf):
        self._writable()
        return self.img.write(self._ino_of(fh), bytes(buf), off)

    async def flush(self, fh):
        pass

    async def release(self, fh):
        ino = self.handles.pop(fh, None)
        if ino is not None:
            self._release_inode(ino)

    async def fsync(self, fh, datasync):
        self.img.flush()

    async def syncfs(self):
        if not self.readonly:
            self.img.flush()

    async def opendir(self, inode, ctx):
        ino = _e(inode)
        entries = self.img.listdir(ino)
        fh = self._new_fh(ino)
        self.dirs[fh] = entries
        return fh

    async def readdir(self, fh, start_id, token):
        entries = self.dirs.get(fh)
        if entries is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        if start_id == 0:  # from the start again (rewinddir): the directory as it is now
            entries = self.dirs[fh] = self.img.listdir(self.handles[fh])
        for i in range(start_id, len(entries)):
            name, ino, _ = entries[i]
            try:
                attr = self._attr(ino)
            except OSError as e:
                if e.errno == errno.ENOENT:
                    continue
                raise _fail(e) from None
            if not pyfuse3.readdir_reply(token, name, attr, i + 1):
                break

    async def releasedir(self, fh):
        self.dirs.pop(fh, None)
        await self.release(fh)

    async def fsyncdir(self, fh, datasync):
        await self.fsync(fh, datasync)

    async def statfs(self, ctx):
        i = self.img.info()
        sv = pyfuse3.StatvfsData()
        sv.f_bsize = sv.f_frsize = i.block_size
        sv.f_blocks = i.blocks_count
        sv.f_bfree = i.free_blocks
        sv.f_bavail = max(0, i.free_blocks - i.r_blocks)
        sv.f_files = i.inodes_count
        sv.f_ffree = sv.f_favail = i.free_inodes
        sv.f_namemax = 255
        return sv

    async def getxattr(self, inode, name, ctx):
        if bytes(name) in HIDDEN_XATTRS:
            raise pyfuse3.FUSEError(errno.ENODATA)
        return self.img.getxattr(_e(inode), bytes(name))

    async def setxattr(self, inode, name, value, ctx):
        self._writable()
        name, value, ino = bytes(name), bytes(value), _e(inode)
        if name in HIDDEN_XATTRS:
            raise pyfuse3.FUSEError(errno.EPERM)
        if name in (ACL_ACCESS, ACL_DEFAULT) and value in (b"", b"\2\0\0\0"):
            return self._drop_xattr(ino, name)  # an empty ACL: none
        if name == ACL_ACCESS:
            return self._set_access_acl(ino, value)
        if name == ACL_DEFAULT:
            if not stat.S_ISDIR(self.img.getattr(ino).mode):
                raise OSError(errno.EACCES, "default ACLs are for directories")
            acl_parse(value)
        self.img.setxattr(ino, name, value)

    def _drop_xattr(self, ino: int, name: bytes) -> None:
        try:
            self.img.removexattr(ino, name)
        except OSError as e:
            if e.errno != errno.ENODATA:
                raise

    def _set_access_acl(self, ino: int, value: bytes) -> None:
        """As ext4: the ACL sets the mode bits; an ACL the mode says all of is not kept."""
        entries = acl_parse(value)
        cur = self.img.getattr(ino)
        mode = (cur.mode & 0o7000) | acl_mode(entries)
        self.img.setattr(ino, SET_MODE | SET_CTIME, mode=mode, ctime_ns=ext2fs.now_ns())
        if len(entries) == 3:
            self._drop_xattr(ino, ACL_ACCESS)
        else:
            self.img.setxattr(ino, ACL_ACCESS, value)

    def _chmod_acl(self, ino: int, mode: int) -> None:
        """chmod of a file with an access ACL changes its owner, mask and other entries."""
        try:
            entries = acl_parse(self.img.getxattr(ino, ACL_ACCESS))
        except OSError as e:
            if e.errno in (errno.ENODATA, errno.EOPNOTSUPP):
                return
            raise
        has_mask = any(t == ACL_MASK for t, _, _ in entries)
        for e in entries:
            if e[0] == ACL_USER_OBJ:
                e[1] = (mode >> 6) & 7
            elif e[0] == ACL_MASK or (e[0] == ACL_GROUP_OBJ and not has_mask):
                e[1] = (mode >> 3) & 7
            elif e[0] == ACL_OTHER:
                e[1] = mode & 7
        self.img.setxattr(ino, ACL_ACCESS, acl_bytes(entries))

    async def listxattr(self, inode, ctx):
        return [n for n in self.img.listxattr(_e(inode)) if n not in HIDDEN_XATTRS]

    async def removexattr(self, inode, name, ctx):
        self._writable()
        if bytes(name) in HIDDEN_XATTRS:
            raise pyfuse3.FUSEError(errno.ENODATA)
        self.img.removexattr(_e(inode), bytes(name))

    async def forget(self, inode_list):
        pass

    def destroy(self):
        """Unmount: free what was unlinked while open, then write everything back."""
        try:
            for ino in sorted(self.orphans):
                self.img.free_inode(ino)
            self.orphans.clear()
        finally:
            self.img.close(clean=True)


for _name, _fn in list(vars(Ext2Operations).items()):
    if inspect.iscoroutinefunction(_fn):
        setattr(Ext2Operations, _name, _errnos(_fn))


def vufuse_operations(source, options):
    return Ext2Operations(source, options)
