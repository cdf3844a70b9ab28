"""The binding to libext2fs (through csrc/ext2_helper.c): the only module that uses
umvu.submodules._ext2fs. Every call raises OSError with the errno the kernel's ext4
would give; libext2fs error codes are mapped here, in one place."""
from __future__ import annotations

import errno
import os
import time

from umvu.submodules._ext2fs import ffi, lib

# read buffers are filled by C (holes and tails zeroed there): not cleared first
_filled_by_c = ffi.new_allocator(should_clear_after_alloc=False)

_E = errno
_MAP = {
    "NO_MEMORY": _E.ENOMEM, "INVALID_ARGUMENT": _E.EINVAL, "LLSEEK_FAILED": _E.EINVAL,
    "NO_DIRECTORY": _E.ENOTDIR, "FILE_NOT_FOUND": _E.ENOENT, "DIR_NO_SPACE": _E.ENOSPC,
    "TOOSMALL": _E.ENOSPC, "BLOCK_ALLOC_FAIL": _E.ENOSPC, "INODE_ALLOC_FAIL": _E.ENOSPC,
    "EA_NO_SPACE": _E.ENOSPC, "INLINE_DATA_NO_SPACE": _E.ENOSPC,
    "DIR_NO_SPACE_FOR_CSUM": _E.ENOSPC, "SYMLINK_LOOP": _E.ELOOP,
    "FILE_TOO_BIG": _E.EFBIG, "FILE_EXISTS": _E.EEXIST, "DIR_EXISTS": _E.EEXIST,
    "MMP_FAILED": _E.EBUSY, "MMP_FSCK_ON": _E.EBUSY, "EA_KEY_NOT_FOUND": _E.ENODATA,
    "UNIMPLEMENTED": _E.EOPNOTSUPP, "RO_FILSYS": _E.EROFS, "UNSUPP_FEATURE": _E.EINVAL,
    "RO_UNSUPP_FEATURE": _E.EROFS, "SHORT_READ": _E.EIO, "SHORT_WRITE": _E.EIO,
    "MAGIC_EXT2_FILE": _E.EBADF, "EA_BAD_NAME_LEN": _E.ERANGE,
    "EA_BAD_VALUE_SIZE": _E.E2BIG, "DIRHASH_UNSUPP": _E.EOPNOTSUPP,
    "CANT_USE_LEGACY_BITMAPS": _E.EOPNOTSUPP, "BAD_MAGIC": _E.EINVAL,
}
# everything else the binding names is corruption: EUCLEAN (checksums: EBADMSG), as ext4
ERRNO_OF: dict[int, int] = {}
for _name in dir(lib):
    if _name.startswith("EXT2_ET_"):
        _short = _name[8:]
        ERRNO_OF[getattr(lib, _name)] = _MAP.get(
            _short, _E.EBADMSG if "CSUM" in _short or _short == "BAD_CRC" else _E.EUCLEAN)

# stat fields a setattr may change
SET_MODE, SET_UID, SET_GID = lib.UE2_SET_MODE, lib.UE2_SET_UID, lib.UE2_SET_GID
SET_ATIME, SET_MTIME, SET_CTIME = lib.UE2_SET_ATIME, lib.UE2_SET_MTIME, lib.UE2_SET_CTIME
ROOT_INO = 2


def message(code: int) -> str:
    return ffi.string(lib.ue2_strerror(code)).decode(errors="replace")


def error(code: int, what: str = "") -> OSError:
    if 0 < code < 4096:
        num = code
    else:
        num = ERRNO_OF.get(code, errno.EIO)
    text = message(code)
    return OSError(num, "%s: %s" % (what, text) if what else text)


def check(code: int, what: str = "") -> None:
    if code:
        raise error(code, what)


def now_ns() -> int:
    return time.time_ns()


def _kernel_acl(value: bytes) -> bytes:
    """libext2fs gives ACL entries without a qualifier id 0; the kernel gives them
    ACL_UNDEFINED_ID (USER_OBJ, GROUP_OBJ, MASK, OTHER)."""
    if len(value) < 4 or (len(value) - 4) % 8:
        return value
    out = bytearray(value)
    for pos in range(4, len(out), 8):
        tag = int.from_bytes(out[pos:pos + 2], "little")
        if tag in (0x01, 0x04, 0x10, 0x20):
            out[pos + 4:pos + 8] = b"\xff\xff\xff\xff"
    return bytes(out)


class Info:
    __slots__ = ("block_size", "inode_size", "inodes_count", "free_inodes", "state",
                 "errors", "feature_compat", "feature_incompat", "feature_ro_compat",
                 "blocks_count", "free_blocks", "r_blocks", "needs_recovery",
                 "has_journal", "volume_name")

    def __init__(self, c):
        for name in self.__slots__:
            setattr(self, name, getattr(c, name))
        self.volume_name = ffi.string(c.volume_name)


def _device_callbacks(device):
    """The C callbacks of ue2_open_dev over device.pread/pwrite (kept with the Image)."""
    @ffi.callback("ue2_dev_read")
    def read(ctx, buf, size, offset):
        try:
            data = device.pread(size, offset)
        except Exception:  # (libext2fs then says EXT2_ET_SHORT_READ: EIO)
            return -1
        ffi.memmove(buf, data, len(data))
        return len(data)

    @ffi.callback("ue2_dev_write")
    def write(ctx, buf, size, offset):
        try:
            return device.pwrite(bytes(ffi.buffer(buf, size)), offset)
        except Exception:
            return -1
    return read, write


class Image:
    """An open ext2/3/4 file system in an image file or device (host path), at byte
    ``offset`` in it. Read-only, it also keeps its own fd of the image, from which whole
    files are read run by run of blocks (ue2_read_raw)."""

    def __init__(self, host_path: bytes, rw: bool, offset: int = 0, device=None):
        """device: instead of a host file, an object whose pread(size, offset) and
        pwrite(data, offset) reach the bytes (a partition of a vudevqcow2 disk)."""
        self.rw = rw
        self.host_path = host_path
        self.offset = offset
        out = ffi.new("void **")
        self._callbacks = None
        if device is not None:
            self._callbacks = _device_callbacks(device)
            check(lib.ue2_open_dev(host_path, 1 if rw else 0, self._callbacks[0],
                                   self._callbacks[1], ffi.NULL, out))
        else:
            check(lib.ue2_open(host_path, b"offset=%d" % offset if offset else b"",
                               1 if rw else 0, out))
        self._fs = out[0]
        self._raw_fd = -1
        if not rw and device is None:
            try:
                self._raw_fd = os.open(host_path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                pass  # read block by block through libext2fs

    # ------------------------------------------------------------ whole fs
    def info(self) -> Info:
        c = ffi.new("struct ue2_info *")
        lib.ue2_info(self._fs, c)
        return Info(c)

    def mark_mounted(self) -> None:
        check(lib.ue2_mark_mounted(self._fs), "marking the image mounted")

    def close(self, clean: bool = True) -> None:
        """clean: write everything back (a rw image is marked cleanly unmounted);
        otherwise drop the in-memory state without writing a byte."""
        fs, self._fs = self._fs, None
        if self._raw_fd >= 0:
            os.close(self._raw_fd)
            self._raw_fd = -1
        if fs is not None:
            check(lib.ue2_close(fs, 1 if clean else 0), "closing the image")

    def flush(self) -> None:
        check(lib.ue2_flush(self._fs), "flushing the image")

    # ------------------------------------------------------------ inodes
    def getattr(self, ino: int):
        """An inode's stat fields: ino mode uid gid nlink flags generation size
        blocks (512-byte units) rdev atime_ns mtime_ns ctime_ns crtime_ns."""
        c = ffi.new("struct ue2_attr *")
        check(lib.ue2_getattr(self._fs, ino, c))
        return c

    def setattr(self, ino: int, which: int, mode=0, uid=0, gid=0, atime_ns=0,
                mtime_ns=0, ctime_ns=0) -> None:
        c = ffi.new("struct ue2_attr *")
        c.mode, c.uid, c.gid = mode, uid, gid
        c.atime_ns, c.mtime_ns, c.ctime_ns = atime_ns, mtime_ns, ctime_ns
        check(lib.ue2_setattr(self._fs, ino, c, which))

    def lookup(self, dir_ino: int, name: bytes) -> int:
        out = ffi.new("uint32_t *")
        check(lib.ue2_lookup(self._fs, dir_ino, name, len(name), out))
        return out[0]

    def _buffer(self, fn, *args):
        buf = ffi.new("char **")
        size = ffi.new("size_t *")
        check(fn(self._fs, *args, buf, size))
        try:
            return ffi.unpack(buf[0], size[0]) if size[0] else b""
        finally:
            lib.ue2_free(buf[0])

    def listdir(self, dir_ino: int) -> list[tuple[bytes, int, int]]:
        """[(name, inode, ext2 file type)], "." and ".." included."""
        raw = self._buffer(lib.ue2_dir_list, dir_ino)
        out = []
        pos = 0
        while pos < len(raw):
            ino = int.from_bytes(raw[pos:pos + 4], "little")
            nlen = raw[pos + 4]
            out.append((raw[pos + 6:pos + 6 + nlen], ino, raw[pos + 5]))
            pos += 6 + nlen
        return out

    def dir_is_empty(self, dir_ino: int) -> bool:
        out = ffi.new("int *")
        check(lib.ue2_dir_is_empty(self._fs, dir_ino, out))
        return bool(out[0])

    # ------------------------------------------------------------ data
    def read(self, ino: int, size: int, offset: int) -> bytes:
        buf = _filled_by_c("char[]", max(size, 1))
        if offset == 0 and self._raw_fd >= 0 and size:  # a whole file, most often
            done = ffi.new("int *")
            check(lib.ue2_read_raw(self._fs, ino, buf, size, self._raw_fd, self.offset,
                                   done))
            if done[0]:
                return ffi.unpack(buf, size)
        got = ffi.new("size_t *")
        check(lib.ue2_read(self._fs, ino, buf, size, offset, got))
        return ffi.unpack(buf, got[0])

    def write(self, ino: int, data: bytes, offset: int) -> int:
        done = ffi.new("size_t *")
        code = lib.ue2_write(self._fs, ino, data, len(data), offset, done, now_ns())
        if code and not done[0]:
            raise error(code)
        return done[0]

    def truncate(self, ino: int, size: int) -> None:
        check(lib.ue2_truncate(self._fs, ino, size, now_ns()))

    def seek_data(self, ino: int, offset: int, whence: int) -> int:
        """SEEK_DATA (3) / SEEK_HOLE (4) from offset, by the file's block map."""
        out = ffi.new("uint64_t *")
        check(lib.ue2_seek_data(self._fs, ino, offset, whence, out))
        return out[0]

    def readlink(self, ino: int) -> bytes:
        buf = ffi.new("char[]", 4096)
        got = ffi.new("size_t *")
        check(lib.ue2_readlink(self._fs, ino, buf, 4096, got))
        return ffi.unpack(buf, got[0])

    # ------------------------------------------------------------ namespace
    def mknode(self, parent: int, name: bytes, mode: int, uid: int, gid: int,
               rdev: int = 0) -> int:
        out = ffi.new("uint32_t *")
        check(lib.ue2_mknode(self._fs, parent, name, mode, uid, gid, rdev, now_ns(), out))
        return out[0]

    def mkdir(self, parent: int, name: bytes, mode: int, uid: int, gid: int) -> int:
        out = ffi.new("uint32_t *")
        check(lib.ue2_mkdir(self._fs, parent, name, mode, uid, gid, now_ns(), out))
        return out[0]

    def symlink(self, parent: int, name: bytes, target: bytes, uid: int, gid: int) -> int:
        out = ffi.new("uint32_t *")
        check(lib.ue2_symlink(self._fs, parent, name, target, uid, gid, now_ns(), out))
        return out[0]

    def link(self, dir_ino: int, name: bytes, ino: int) -> None:
        check(lib.ue2_link(self._fs, dir_ino, name, ino, now_ns()))

    def unlink(self, dir_ino: int, name: bytes, ino: int, is_dir: bool,
               free_now: bool) -> int:
        """Remove the entry; returns the links the inode has left."""
        left = ffi.new("uint32_t *")
        check(lib.ue2_unlink(self._fs, dir_ino, name, ino, 1 if is_dir else 0,
                             1 if free_now else 0, now_ns(), left))
        return left[0]

    def free_inode(self, ino: int) -> None:
        check(lib.ue2_free_inode(self._fs, ino))

    def rename(self, old_parent: int, old_name: bytes, new_parent: int, new_name: bytes,
               ino: int) -> None:
        """Move an entry (whatever new_name named was removed before)."""
        check(lib.ue2_rename(self._fs, old_parent, old_name, new_parent, new_name, ino,
                             now_ns()))

    # ------------------------------------------------------------ xattrs
    def getxattr(self, ino: int, key: bytes) -> bytes:
        value = ffi.new("void **")
        size = ffi.new("size_t *")
        check(lib.ue2_xattr_get(self._fs, ino, key, value, size))
        try:
            raw = ffi.unpack(ffi.cast("char *", value[0]), size[0]) if size[0] else b""
        finally:
            lib.ue2_free(value[0])
        return _kernel_acl(raw) if key.startswith(b"system.posix_acl_") else raw

    def setxattr(self, ino: int, key: bytes, value: bytes) -> None:
        check(lib.ue2_xattr_set(self._fs, ino, key, value, len(value), now_ns()))

    def removexattr(self, ino: int, key: bytes) -> None:
        check(lib.ue2_xattr_remove(self._fs, ino, key, now_ns()))

    def listxattr(self, ino: int) -> list[bytes]:
        raw = self._buffer(lib.ue2_xattr_list, ino)
        return [k for k in raw.split(b"\0") if k]
