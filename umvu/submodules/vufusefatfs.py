"""vufusefatfs: FAT12/16/32 images read-write (VUOS's vufusefatfs), on pyfatfs.

``vumount -t vufusefatfs [-o rw+] IMAGE DIR`` (read-only unless rw or rw+; IMAGE a
file or a partition of a vudev disk). As the kernel's vfat: long names (VFAT), names
looked up without regard to case, no owners (every file is the mounter's, or
``uid=``/``gid=``), modes from ``umask=`` (default 022) with the read-only attribute as
no write bits (chmod may set or clear it; any other mode change, chown, symlinks, hard
links and device nodes are EPERM), times to FAT's precision. Everything is written back
through pyfatfs and the image closed (its FAT and directory entries flushed) at unmount.
A corrupt image makes the mount fail with pyfatfs's error; a failing operation answers
EIO (its traceback in umvu's log)."""
from __future__ import annotations

import errno
import logging
import os
import stat
import time

import pyfuse3

OPTIONS = {"offset": int, "size": int, "readonly": bool, "uid": int, "gid": int,
           "umask": lambda v: int(v, 8)}
SOURCE_IMAGE = True
DEFAULT_READONLY = True

logging.getLogger("pyfatfs").setLevel(logging.ERROR)  # (its warnings are not ours)


def _fserr(e: Exception) -> int:
    """The errno of a PyFilesystem2 error."""
    from fs import errors
    for cls, code in ((errors.ResourceNotFound, errno.ENOENT),
                      (errors.DirectoryExpected, errno.ENOTDIR),
                      (errors.FileExpected, errno.EISDIR),
                      (errors.DirectoryNotEmpty, errno.ENOTEMPTY),
                      (errors.DestinationExists, errno.EEXIST),
                      (errors.InsufficientStorage, errno.ENOSPC),
                      (errors.ResourceReadOnly, errno.EROFS),
                      (errors.InvalidCharsInPath, errno.EINVAL),
                      (errors.InvalidPath, errno.EINVAL),
                      (errors.Unsupported, errno.EPERM)):
        if isinstance(e, cls):
            return code
    if isinstance(e, OSError) and e.errno:
        return e.errno
    return errno.EIO


def _ops(fn):
    """A pyfilesystem error as the errno a file system answers."""
    import functools

    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except Exception as e:
            code = _fserr(e)
            if code == errno.EIO:
                raise
            raise pyfuse3.FUSEError(code) from None
    return wrapper


class FatFS(pyfuse3.Operations):
    enable_writeback_cache = False

    def __init__(self, source: bytes, options: dict | None = None) -> None:
        super().__init__()
        from pyfatfs.PyFatFS import PyFatFS
        options = options or {}
        self.readonly = bool(options.get("readonly", True))
        try:
            self.fs = PyFatFS(os.fsdecode(source), offset=options.get("offset", 0),
                              read_only=self.readonly, lazy_load=True)
        except Exception as e:
            raise OSError(errno.EINVAL, "%s: not a FAT file system pyfatfs reads: %s"
                          % (os.fsdecode(source), e)) from None
        self.source, self.offset = source, options.get("offset", 0)
        self.uid = options.get("uid", os.getuid())
        self.gid = options.get("gid", os.getgid())
        self.umask = options.get("umask", 0o022)
        self.paths = {pyfuse3.ROOT_INODE: "/"}  # inode -> path (FAT has no inodes)
        self.inodes = {"/": pyfuse3.ROOT_INODE}
        self.next_ino = pyfuse3.ROOT_INODE + 1
        self.fhs: dict[int, object] = {}
        self.next_fh = 1

    # ------------------------------------------------------------ paths and inodes
    def _ino(self, path: str) -> int:
        ino = self.inodes.get(path)
        if ino is None:
            ino = self.inodes[path] = self.next_ino
            self.paths[ino] = path
            self.next_ino += 1
        return ino

    def _path(self, inode) -> str:
        path = self.paths.get(inode)
        if path is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return path

    @staticmethod
    def _join(parent: str, name: bytes) -> str:
        return parent.rstrip("/") + "/" + os.fsdecode(name)

    def _child(self, parent: str, name: bytes) -> str:
        """parent/name as the directory spells it (looked up without regard to case)."""
        want = os.fsdecode(name)
        names = self.fs.listdir(parent)
        if want in names:
            return self._join(parent, name)
        folded = want.casefold()
        for n in names:
            if n.casefold() == folded:
                return parent.rstrip("/") + "/" + n
        raise pyfuse3.FUSEError(errno.ENOENT)

    def _moved(self, old: str, new: str) -> None:
        """Paths below old are below new now (the same inodes)."""
        for path in [p for p in self.inodes if p == old or p.startswith(old + "/")]:
            ino = self.inodes.pop(path)
            moved = new + path[len(old):]
            self.inodes.pop(moved, None)
            self.inodes[moved] = ino
            self.paths[ino] = moved

    def _forget_path(self, path: str) -> None:
        ino = self.inodes.pop(path, None)
        if ino is not None:
            self.paths.pop(ino, None)

    # ------------------------------------------------------------ attributes
    def _attr(self, path: str):
        info = self.fs.getinfo(path, namespaces=["details"])
        a = pyfuse3.EntryAttributes()
        a.st_ino = self._ino(path)
        if info.is_dir:
            a.st_mode = stat.S_IFDIR | (0o777 & ~self.umask)
            a.st_nlink = 2
            a.st_size = 4096
        else:
            writable = not self._read_only_attr(path)
            a.st_mode = stat.S_IFREG | (0o777 & ~self.umask & (0o777 if writable else 0o555))
            a.st_nlink = 1
            a.st_size = info.size
        a.st_uid, a.st_gid = self.uid, self.gid
        a.st_blksize = 4096
        a.st_blocks = (a.st_size + 511) // 512
        mtime = info.raw["details"].get("modified") or 0
        atime = info.raw["details"].get("accessed") or mtime
        a.st_mtime_ns = int(mtime * 1e9)
        a.st_atime_ns = int(atime * 1e9)
        a.st_ctime_ns = a.st_mtime_ns
        a.entry_timeout = a.attr_timeout = 1
        return a

    def _entry(self, path: str):
        try:
            return self.fs._get_dir_entry(path)
        except Exception:
            return None

    def _read_only_attr(self, path: str) -> bool:
        entry = self._entry(path)
        return bool(entry is not None and entry.is_read_only())

    # ------------------------------------------------------------ lookups
    @_ops
    async def lookup(self, parent_inode, name, ctx=None):
        parent = self._path(parent_inode)
        if name == b".":
            return self._attr(parent)
        if name == b"..":
            return self._attr(parent.rsplit("/", 1)[0] or "/")
        return self._attr(self._child(parent, name))

    @_ops
    async def getattr(self, inode, ctx=None):
        return self._attr(self._path(inode))

    @_ops
    async def setattr(self, inode, attr, fields, fh, ctx):
        path = self._path(inode)
        if fields.update_uid or fields.update_gid:
            if (fields.update_uid and attr.st_uid != self.uid) or \
                    (fields.update_gid and attr.st_gid != self.gid):
                raise pyfuse3.FUSEError(errno.EPERM)
        if fields.update_mode:
            self._chmod(path, attr.st_mode)
        if fields.update_size:
            if fh in self.fhs:
                self.fhs[fh].truncate(attr.st_size)
            else:
                with self.fs.openbin(path, "r+") as f:
                    f.truncate(attr.st_size)
        if fields.update_mtime or fields.update_atime:
            now = time.time()
            info = self.fs.getinfo(path, namespaces=["details"]).raw["details"]
            mtime = attr.st_mtime_ns / 1e9 if fields.update_mtime else info.get("modified")
            atime = attr.st_atime_ns / 1e9 if fields.update_atime else info.get("accessed")
            self.fs.settimes(path, accessed=atime or now, modified=mtime or now)
        return self._attr(path)

    def _chmod(self, path: str, mode: int) -> None:
        """As the kernel's vfat: only the write bits may change (the read-only
        attribute); any other change is EPERM."""
        info = self.fs.getinfo(path)
        base = 0o777 & ~self.umask
        if info.is_dir:
            if stat.S_IMODE(mode) != base:
                raise pyfuse3.FUSEError(errno.EPERM)
            return
        if stat.S_IMODE(mode) not in (base, base & 0o555):
            raise pyfuse3.FUSEError(errno.EPERM)
        entry = self._entry(path)
        if entry is None:
            raise pyfuse3.FUSEError(errno.EIO)
        read_only = not mode & 0o222
        entry.attr = (entry.attr | entry.ATTR_READ_ONLY) if read_only else \
            (entry.attr & ~entry.ATTR_READ_ONLY)
        self.fs.fs.update_directory_entry(entry.get_parent_dir())

    async def readlink(self, inode, ctx):
        raise pyfuse3.FUSEError(errno.EINVAL)

    # ------------------------------------------------------------ directories
    @_ops
    async def opendir(self, inode, ctx):
        path = self._path(inode)
        if not self.fs.isdir(path):
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    @_ops
    async def readdir(self, fh, start_id, token):
        path = self._path(fh)
        parent = path.rsplit("/", 1)[0] or "/"
        entries = [(b".", path), (b"..", parent)]
        entries += [(os.fsencode(n), self._join(path, os.fsencode(n)))
                    for n in sorted(self.fs.listdir(path))]
        for i in range(start_id, len(entries)):
            name, child = entries[i]
            if not pyfuse3.readdir_reply(token, name, self._attr(child), i + 1):
                break

    async def releasedir(self, fh):
        pass

    def _writable(self) -> None:
        if self.readonly:
            raise pyfuse3.FUSEError(errno.EROFS)

    def _new_name(self, parent_inode, name) -> str:
        parent = self._path(parent_inode)
        try:
            self._child(parent, name)
        except pyfuse3.FUSEError:
            return self._join(parent, name)
        raise pyfuse3.FUSEError(errno.EEXIST)

    @_ops
    async def mkdir(self, parent_inode, name, mode, ctx):
        self._writable()
        path = self._new_name(parent_inode, name)
        self.fs.makedir(path)
        return self._attr(path)

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        raise pyfuse3.FUSEError(errno.EPERM)

    async def symlink(self, parent_inode, name, target, ctx):
        raise pyfuse3.FUSEError(errno.EPERM)

    async def link(self, inode, new_parent_inode, new_name, ctx):
        raise pyfuse3.FUSEError(errno.EPERM)

    @_ops
    async def unlink(self, parent_inode, name, ctx):
        self._writable()
        path = self._child(self._path(parent_inode), name)
        if self.fs.isdir(path):
            raise pyfuse3.FUSEError(errno.EISDIR)
        self.fs.remove(path)
        self._forget_path(path)

    @_ops
    async def rmdir(self, parent_inode, name, ctx):
        self._writable()
        path = self._child(self._path(parent_inode), name)
        if not self.fs.isdir(path):
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        if self.fs.listdir(path):
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        self.fs.removedir(path)
        self._forget_path(path)

    @_ops
    async def rename(self, parent_old, name_old, parent_new, name_new, flags, ctx):
        self._writable()
        if flags:
            raise pyfuse3.FUSEError(errno.EINVAL)
        old = self._child(self._path(parent_old), name_old)
        new_parent = self._path(parent_new)
        try:
            existing = self._child(new_parent, name_new)
        except pyfuse3.FUSEError:
            existing = None
        new = self._join(new_parent, name_new)
        if existing is not None and existing.casefold() == old.casefold():
            existing = None  # (a change of case only)
        is_dir = self.fs.isdir(old)
        if is_dir and (new + "/").startswith(old + "/"):
            raise pyfuse3.FUSEError(errno.EINVAL)
        if existing is not None:
            if self.fs.isdir(existing) != is_dir:
                raise pyfuse3.FUSEError(errno.EISDIR if is_dir is False else errno.ENOTDIR)
            if is_dir:
                if self.fs.listdir(existing):
                    raise pyfuse3.FUSEError(errno.ENOTEMPTY)
                self.fs.removedir(existing)
            else:
                self.fs.remove(existing)
            self._forget_path(existing)
        self._move_entry(old, new_parent, os.fsdecode(name_new))
        self._moved(old, new)

    def _move_entry(self, old: str, new_parent: str, new_name: str) -> None:
        """rename(2) as FAT does it: the directory entry moves (a new short name and
        long name entry in the new parent), the data stays where it is."""
        from pyfatfs.EightDotThree import EightDotThree
        from pyfatfs.FATDirectoryEntry import make_lfn_entry
        fat = self.fs.fs
        entry = self.fs._get_dir_entry(old)
        parent = entry.get_parent_dir()
        base = self.fs._get_dir_entry(new_parent)
        parent.remove_dir_entry(str(entry))
        fat.update_directory_entry(parent)
        short = EightDotThree(encoding=fat.encoding)
        short.set_str_name(short.make_8dot3_name(new_name, base))
        entry.name = short
        entry.lfn_entry = None
        sfn = short.get_unpadded_filename()
        if sfn != new_name:
            entry.set_lfn_entry(make_lfn_entry(new_name, short))
        entry._parent = None
        base.add_subdirectory(entry)
        fat.update_directory_entry(base)
        if entry.is_directory() and parent is not base:  # its ".." names the new parent
            for child in entry.get_entries()[2]:  # (the special entries: . and ..)
                if child.get_short_name() == "..":
                    child.set_cluster(0 if base is fat.root_dir else base.get_cluster())
            fat.update_directory_entry(entry)
        fat.flush_fat()

    # ------------------------------------------------------------ files
    @_ops
    async def open(self, inode, flags, ctx):
        path = self._path(inode)
        if flags & 3:
            self._writable()
        f = self.fs.openbin(path, "r+" if flags & 3 else "r")
        if flags & os.O_TRUNC and flags & 3:
            f.truncate(0)
        fh = self.next_fh
        self.next_fh += 1
        self.fhs[fh] = f
        return pyfuse3.FileInfo(fh=fh)

    @_ops
    async def create(self, parent_inode, name, mode, flags, ctx):
        self._writable()
        path = self._new_name(parent_inode, name)
        self.fs.create(path)
        fi = await self.open(self._ino(path), flags | os.O_RDWR, ctx)
        return fi, self._attr(path)

    @_ops
    async def read(self, fh, off, size):
        f = self.fhs[fh]
        f.seek(off)
        return f.read(size)

    @_ops
    async def write(self, fh, off, buf):
        f = self.fhs[fh]
        end = f.seek(0, 2)
        if off > end:  # (FAT has no holes: zeros up to off)
            f.write(bytes(off - end))
        f.seek(off)
        return f.write(buf)

    @_ops
    async def flush(self, fh):
        self.fhs[fh].flush()

    @_ops
    async def fsync(self, fh, datasync):
        self.fhs[fh].flush()

    @_ops
    async def release(self, fh):
        f = self.fhs.pop(fh, None)
        if f is not None:
            f.close()

    @_ops
    async def statfs(self, ctx):
        fat = self.fs.fs
        s = pyfuse3.StatvfsData()
        cluster = fat.bytes_per_cluster
        total = self._clusters()
        free = sum(1 for v in fat.fat[2:2 + total] if v == 0)
        s.f_bsize = s.f_frsize = cluster
        s.f_blocks = total
        s.f_bfree = s.f_bavail = free
        s.f_files = s.f_ffree = s.f_favail = 0
        s.f_namemax = 255
        return s

    async def getxattr(self, inode, name, ctx):
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    async def listxattr(self, inode, ctx):
        return []

    def _clusters(self) -> int:
        """The data clusters (the FAT has entries past them, to its sector's end)."""
        fat = self.fs.fs
        bpb = fat.bpb_header
        sectors = bpb["BPB_TotSec16"] or bpb["BPB_TotSec32"]
        return (sectors - fat.first_data_sector) // bpb["BPB_SecPerClus"]

    def destroy(self):
        """Unmounted: what pyfatfs holds goes to the image."""
        for f in list(self.fhs.values()):
            try:
                f.close()
            except Exception:
                pass
        self.fhs.clear()
        fat = self.fs.fs
        free = next_free = None
        if not self.readonly and fat.fat_type == fat.FAT_TYPE_FAT32:
            entries = fat.fat[2:2 + self._clusters()]
            free = sum(1 for v in entries if v == 0)
            next_free = next((i + 2 for i, v in enumerate(entries) if v == 0), 0xFFFFFFFF)
            sector = fat.bpb_header["BPB_FSInfo"] * fat.bpb_header["BPB_BytsPerSec"]
        self.fs.close()
        if free is not None and sector:
            self._write_fsinfo(sector, free, next_free)

    def _write_fsinfo(self, sector: int, free: int, next_free: int) -> None:
        """FAT32's FSInfo sector counts the free clusters (pyfatfs leaves the count
        mkfs.vfat wrote): set as the kernel sets it at unmount, for fsck.vfat."""
        import struct
        fd = os.open(self.source, os.O_RDWR | os.O_CLOEXEC)
        try:
            where = self.offset + sector
            raw = os.pread(fd, 512, where)
            if raw[:4] == b"RRaA" and raw[484:488] == b"rrAa":
                os.pwrite(fd, struct.pack("<II", free, next_free), where + 488)
                os.fsync(fd)
        finally:
            os.close(fd)


def vufuse_operations(source, options):
    return FatFS(source, options)
