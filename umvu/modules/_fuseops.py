"""Operations over the FUSE wire: a pyfuse3-shaped object whose every call is a request
to the guest daemon (umvu.modules._fusewire's Connection), and the replies it decodes
(entries and attributes, open files, statfs). vufuse's FuseService serves a mount with
it (umvu.modules.fuse)."""
from __future__ import annotations

import errno
import os
import struct

from umvu.api import can_wait
from umvu.modules._fusewire import (
    COPY_FILE_RANGE, COPY_FILE_RANGE_IN, POLL, POLL_ASKED, POLL_IN, POLL_SCHEDULE_NOTIFY,
    ACCESS, ATTR_OUT, BATCH_FORGET, CREATE, DIRENT, DO_READDIRPLUS, ENTRY_OUT, FALLOCATE, LSEEK,
    FLUSH, FORGET, FSYNC, FSYNCDIR, GETATTR, GETATTR_FH, GETXATTR, KSTATFS, LINK,
    LISTXATTR, LOOKUP, MKDIR, MKNOD, OPEN, OPEN_OUT, OPENDIR, READ, READ_IN, READDIR,
    READDIRPLUS, READLINK, RELEASE, RELEASEDIR, REMOVEXATTR, RENAME, RENAME2, RMDIR,
    SETATTR, SETATTR_IN, SETXATTR, STATFS, SYMLINK, U32_PAIR, U64, UNLINK, WRITE, WRITE_IN,
    FATTR_ATIME, FATTR_CTIME, FATTR_FH, FATTR_GID, FATTR_MODE, FATTR_MTIME, FATTR_SIZE,
    FATTR_UID, FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FOPEN_NONSEEKABLE, Connection,
    _fuse_error)

class Attr:
    """What a reply says of a node, in the pyfuse3 EntryAttributes shape vufuse reads:
    ``st_ino`` is the node id (what requests name), ``shown_ino`` the file's inode."""
    __slots__ = ("st_ino", "shown_ino", "generation", "entry_timeout", "attr_timeout",
                 "st_size", "st_blocks", "st_atime_ns", "st_mtime_ns", "st_ctime_ns",
                 "st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev", "st_blksize",
                 "is_lookup")

    @classmethod
    def of_entry(cls, data: bytes, offset: int = 0) -> "Attr":
        (nodeid, gen, ev, av, evn, avn, ino, size, blocks, at, mt, ct, atn, mtn, ctn,
         mode, nlink, uid, gid, rdev, blksize, _flags) = ENTRY_OUT.unpack_from(data, offset)
        a = cls._attrs(ino, size, blocks, at, mt, ct, atn, mtn, ctn, mode, nlink, uid,
                       gid, rdev, blksize)
        a.st_ino, a.generation = nodeid, gen
        a.entry_timeout, a.attr_timeout = ev + evn / 1e9, av + avn / 1e9
        return a

    @classmethod
    def of_attr_out(cls, data: bytes, nodeid: int) -> "Attr":
        (av, avn, _dummy, ino, size, blocks, at, mt, ct, atn, mtn, ctn, mode, nlink, uid,
         gid, rdev, blksize, _flags) = ATTR_OUT.unpack_from(data)
        a = cls._attrs(ino, size, blocks, at, mt, ct, atn, mtn, ctn, mode, nlink, uid,
                       gid, rdev, blksize)
        a.st_ino, a.generation, a.entry_timeout = nodeid, 0, 0
        a.attr_timeout = av + avn / 1e9
        return a

    @classmethod
    def _attrs(cls, ino, size, blocks, at, mt, ct, atn, mtn, ctn, mode, nlink, uid, gid,
               rdev, blksize) -> "Attr":
        a = cls()
        a.shown_ino, a.st_size, a.st_blocks = ino, size, blocks
        a.st_atime_ns = at * 10**9 + atn
        a.st_mtime_ns = mt * 10**9 + mtn
        a.st_ctime_ns = ct * 10**9 + ctn
        a.st_mode, a.st_nlink, a.st_uid, a.st_gid = mode, nlink, uid, gid
        a.st_rdev, a.st_blksize = rdev, blksize
        a.is_lookup = True
        return a


class WireHandle:
    """An open file of the daemon's: the daemon's fh and the node it is of (requests on
    an open file name both)."""
    __slots__ = ("fh", "nodeid", "flags", "ahead", "kh", "readiness")

    def __init__(self, fh: int, nodeid: int, flags: int) -> None:
        self.fh, self.nodeid, self.flags = fh, nodeid, flags
        self.ahead = None  # (generation, offset, data) read ahead (fuse.WireService)
        self.kh = 0  # the poll handle POLL requests name (the daemon's NOTIFY_POLL too)
        self.readiness = None  # a Readiness once the daemon answered a POLL


class FileInfo:
    """An OPEN/CREATE reply (pyfuse3.FileInfo's fields; fh a WireHandle)."""
    __slots__ = ("fh", "direct_io", "keep_cache", "nonseekable")

    def __init__(self, data: bytes, nodeid: int, open_flags: int) -> None:
        fh, flags, _pad = OPEN_OUT.unpack_from(data)
        self.fh = WireHandle(fh, nodeid, open_flags)
        self.direct_io = bool(flags & FOPEN_DIRECT_IO)
        self.keep_cache = bool(flags & FOPEN_KEEP_CACHE)
        self.nonseekable = bool(flags & FOPEN_NONSEEKABLE)


class Statvfs:
    __slots__ = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                 "f_ffree", "f_favail", "f_namemax")


ACL_NAMES = (b"system.posix_acl_access", b"system.posix_acl_default")
ACL_NO_ID_TAGS = (0x01, 0x04, 0x10, 0x20)  # USER_OBJ, GROUP_OBJ, MASK, OTHER


def _canonical_acl(value: bytes) -> bytes:
    """A POSIX ACL as the kernel gives it back (it parses what the daemon says and
    writes it again): the entries that name no id carry ACL_UNDEFINED_ID."""
    if len(value) < 4 or (len(value) - 4) % 8 or value[:4] != b"\x02\0\0\0":
        return value
    out = bytearray(value)
    for pos in range(4, len(value), 8):
        tag = struct.unpack_from("<H", value, pos)[0]
        if tag in ACL_NO_ID_TAGS:
            struct.pack_into("<I", out, pos + 4, 0xFFFFFFFF)
    return bytes(out)


# pyfuse3's SetattrFields flags: the FATTR bit each sets and the attribute it sends
SETATTR_FIELDS = (("update_mode", FATTR_MODE, "st_mode"), ("update_uid", FATTR_UID, "st_uid"),
                  ("update_gid", FATTR_GID, "st_gid"), ("update_size", FATTR_SIZE, "st_size"),
                  ("update_atime", FATTR_ATIME, "st_atime_ns"),
                  ("update_mtime", FATTR_MTIME, "st_mtime_ns"),
                  ("update_ctime", FATTR_CTIME, "st_ctime_ns"))


def _name(name: bytes) -> bytes:
    if len(name) > 1024:  # FUSE_NAME_MAX
        raise _fuse_error(errno.ENAMETOOLONG)
    return bytes(name) + b"\0"


def _ids(ctx):
    return (ctx.uid, ctx.gid, ctx.pid)


def _ns(value: int):
    return value // 10**9, value % 10**9


class WireOps:
    """pyfuse3-shaped Operations whose every call is a FUSE request to the daemon."""

    # system.posix_acl_* are the daemon's xattrs like any other (the kernel without
    # FUSE_POSIX_ACL passes them on too; it enforces no ACL then)
    posix_acl = True

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def _entry(self, opcode, nodeid, body, ctx, also=()):
        data = await self.conn.request(opcode, nodeid, body, _ids(ctx), also=also)
        a = Attr.of_entry(data)
        if a.st_ino == 0:  # a negative entry
            raise _fuse_error(errno.ENOENT)
        return a

    async def lookup(self, parent_inode, name, ctx=None):
        return await self._entry(LOOKUP, parent_inode, _name(name), ctx)

    async def forget(self, inode_list):
        conn = self.conn
        if conn.dead or conn.unmounted:
            return
        inode_list = [(ino, n) for ino, n in inode_list if not conn.forget_later(ino, n)]
        if not inode_list:
            return
        ids = (0, 0, 0)
        if conn.minor >= 16:
            for i in range(0, len(inode_list), 256):
                part = inode_list[i:i + 256]
                body = U32_PAIR.pack(len(part), 0) + b"".join(
                    struct.pack("<QQ", ino, n) for ino, n in part)
                await conn.request(BATCH_FORGET, 0, body, ids, reply=False)
        else:
            for ino, n in inode_list:
                await conn.request(FORGET, ino, U64.pack(n), ids, reply=False)

    async def getattr(self, inode, ctx=None, fh=None):
        body = struct.pack("<IIQ", GETATTR_FH if fh is not None else 0, 0,
                           fh.fh if fh is not None else 0)
        data = await self.conn.request(GETATTR, inode, body, _ids(ctx) if ctx else None)
        return Attr.of_attr_out(data, inode)

    async def setattr(self, inode, attr, fields, fh, ctx):
        valid, v = 0, dict.fromkeys((name for _, _, name in SETATTR_FIELDS), 0)
        for flag, bit, name in SETATTR_FIELDS:
            if getattr(fields, flag):
                valid |= bit
                v[name] = getattr(attr, name)
        if fh is not None:
            valid |= FATTR_FH
        (a, an), (m, mn), (c, cn) = (_ns(v["st_atime_ns"]), _ns(v["st_mtime_ns"]),
                                     _ns(v["st_ctime_ns"]))
        body = SETATTR_IN.pack(valid, 0, fh.fh if fh is not None else 0, v["st_size"], 0,
                               a, m, c, an, mn, cn, v["st_mode"] & 0xFFFFFFFF, 0,
                               v["st_uid"] & 0xFFFFFFFF, v["st_gid"] & 0xFFFFFFFF, 0)
        data = await self.conn.request(SETATTR, inode, body, _ids(ctx))
        return Attr.of_attr_out(data, inode)

    async def readlink(self, inode, ctx):
        return await self.conn.request(READLINK, inode, b"", _ids(ctx))

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        body = struct.pack("<IIII", mode, rdev & 0xFFFFFFFF, 0, 0) + _name(name)
        return await self._entry(MKNOD, parent_inode, body, ctx)

    async def mkdir(self, parent_inode, name, mode, ctx):
        body = struct.pack("<II", mode, 0) + _name(name)
        return await self._entry(MKDIR, parent_inode, body, ctx)

    async def symlink(self, parent_inode, name, target, ctx):
        return await self._entry(SYMLINK, parent_inode, _name(name) + bytes(target) + b"\0",
                                 ctx)

    async def link(self, inode, new_parent_inode, new_name, ctx):
        return await self._entry(LINK, new_parent_inode, U64.pack(inode) + _name(new_name),
                                 ctx, also=(inode,))

    async def unlink(self, parent_inode, name, ctx):
        await self.conn.request(UNLINK, parent_inode, _name(name), _ids(ctx))

    async def rmdir(self, parent_inode, name, ctx):
        await self.conn.request(RMDIR, parent_inode, _name(name), _ids(ctx))

    async def rename(self, parent_old, name_old, parent_new, name_new, flags, ctx):
        names = _name(name_old) + _name(name_new)
        if flags or RENAME2 in self.conn.no or self.conn.minor < 23:
            if RENAME2 in self.conn.no or self.conn.minor < 23:
                if flags:
                    raise _fuse_error(errno.EINVAL)
            else:
                await self.conn.request(RENAME2, parent_old,
                                        struct.pack("<QII", parent_new, flags, 0) + names,
                                        _ids(ctx), also=(parent_new,))
                return
        await self.conn.request(RENAME, parent_old, U64.pack(parent_new) + names, _ids(ctx),
                                also=(parent_new,))

    async def open(self, inode, flags, ctx):
        data = await self.conn.request(OPEN, inode, struct.pack("<II", flags, 0), _ids(ctx))
        return FileInfo(data, inode, flags)

    async def create(self, parent_inode, name, mode, flags, ctx):
        if CREATE in self.conn.no:
            raise _fuse_error(errno.ENOSYS)
        body = struct.pack("<IIII", flags, mode, 0, 0) + _name(name)
        data = await self.conn.request(CREATE, parent_inode, body, _ids(ctx))
        a = Attr.of_entry(data)
        return FileInfo(data[ENTRY_OUT.size:], a.st_ino, flags), a

    async def read(self, fh, off, size):
        conn, out = self.conn, []
        while size > 0:
            n = min(size, conn.max_read)
            data = await conn.request(READ, fh.nodeid,
                                      READ_IN.pack(fh.fh, off, n, 0, 0, fh.flags, 0))
            out.append(data)
            if len(data) < n:
                break
            off += len(data)
            size -= len(data)
        return b"".join(out)

    async def write(self, fh, off, buf):
        conn, done = self.conn, 0
        buf = memoryview(buf)
        while done < len(buf):
            part = bytes(buf[done:done + conn.max_write])
            data = await conn.request(WRITE, fh.nodeid, WRITE_IN.pack(
                fh.fh, off + done, len(part), 0, 0, fh.flags, 0) + part)
            n = U32_PAIR.unpack_from(data)[0]
            done += n
            if n < len(part):
                break
        return done

    async def flush(self, fh):
        # (the last fd closed at a process's exit: nobody waits for the reply)
        if FLUSH not in self.conn.no:
            await self.conn.request(FLUSH, fh.nodeid, struct.pack("<QIIQ", fh.fh, 0, 0, 0),
                                    reply=True if can_wait() else "drop")

    async def release(self, fh):
        await self.conn.request(RELEASE, fh.nodeid, struct.pack("<QIIQ", fh.fh, fh.flags,
                                                                0, 0), reply="drop")

    async def fsync(self, fh, datasync):
        if FSYNC not in self.conn.no:
            await self.conn.request(FSYNC, fh.nodeid, struct.pack("<QII", fh.fh,
                                                                  1 if datasync else 0, 0))

    async def fallocate(self, fh, mode, offset, length):
        if FALLOCATE in self.conn.no:
            raise _fuse_error(errno.EOPNOTSUPP)  # (the kernel's answer after ENOSYS)
        try:
            await self.conn.request(FALLOCATE, fh.nodeid, struct.pack(
                "<QQQII", fh.fh, offset, length, mode & 0xFFFFFFFF, 0))
        except Exception as e:
            if getattr(e, "errno", None) == errno.ENOSYS:
                raise _fuse_error(errno.EOPNOTSUPP) from None
            raise

    async def poll(self, fh) -> int:
        """FUSE_POLL: the file's revents now, and a NOTIFY_POLL asked for when they
        change (ENOSYS once the daemon said so: the kernel's no_poll)."""
        if POLL in self.conn.no:
            raise _fuse_error(errno.ENOSYS)
        data = await self.conn.request(POLL, fh.nodeid, POLL_IN.pack(
            fh.fh, fh.kh, POLL_SCHEDULE_NOTIFY, POLL_ASKED))
        return struct.unpack_from("<I", data)[0]

    def poll_again(self, fh, on_revents) -> None:
        """POLL once more, waited for by nobody (after the daemon's NOTIFY_POLL):
        on_revents(revents) when it answers."""
        def answered(error, body):
            if not error and len(body) >= 4:
                on_revents(struct.unpack_from("<I", body)[0])
        self.conn.post(POLL, fh.nodeid, POLL_IN.pack(fh.fh, fh.kh, POLL_SCHEDULE_NOTIFY,
                                                     POLL_ASKED), answered)

    async def copy_file_range(self, fh_in, off_in, fh_out, off_out, length, flags):
        """FUSE_COPY_FILE_RANGE: bytes copied (ENOSYS once the daemon said so, then the
        core copies through reads and writes, as the kernel's no_copy_file_range)."""
        if COPY_FILE_RANGE in self.conn.no:
            raise _fuse_error(errno.ENOSYS)
        data = await self.conn.request(COPY_FILE_RANGE, fh_in.nodeid, COPY_FILE_RANGE_IN.pack(
            fh_in.fh, off_in, fh_out.nodeid, fh_out.fh, off_out, length, flags),
            also=(fh_out.nodeid,))
        return struct.unpack_from("<I", data)[0]

    async def lseek(self, fh, offset, whence):
        """FUSE_LSEEK (SEEK_DATA/SEEK_HOLE); ENOSYS once the daemon said so, then the
        core's generic answer, as the kernel's no_lseek."""
        if LSEEK in self.conn.no:
            raise _fuse_error(errno.ENOSYS)
        data = await self.conn.request(LSEEK, fh.nodeid, struct.pack(
            "<QQII", fh.fh, offset, whence, 0))
        return struct.unpack_from("<Q", data)[0]

    async def opendir(self, inode, ctx):
        data = await self.conn.request(OPENDIR, inode, struct.pack("<II", os.O_RDONLY, 0),
                                       _ids(ctx))
        return FileInfo(data, inode, os.O_RDONLY).fh

    async def readdir(self, fh, start_id, token):
        conn = self.conn
        plus = bool(conn.flags & DO_READDIRPLUS) and READDIRPLUS not in conn.no
        size = 65536
        body = READ_IN.pack(fh.fh, start_id, size, 0, 0, 0, 0)
        try:
            data = await conn.request(READDIRPLUS if plus else READDIR, fh.nodeid, body)
        except Exception as e:
            if not plus or getattr(e, "errno", None) != errno.ENOSYS:
                raise
            plus = False
            data = await conn.request(READDIR, fh.nodeid, body)
        pos = 0
        while pos < len(data) and len(token.entries) < token.limit:
            if plus:
                if pos + ENTRY_OUT.size + DIRENT.size > len(data):
                    break
                a = Attr.of_entry(data, pos)
                pos += ENTRY_OUT.size
            ino, off, namelen, typ = DIRENT.unpack_from(data, pos)
            name = data[pos + DIRENT.size:pos + DIRENT.size + namelen]
            pos += (DIRENT.size + namelen + 7) & ~7
            if not plus or a.st_ino == 0:
                a = Attr._attrs(ino, 0, 0, 0, 0, 0, 0, 0, 0, (typ & 0o17) << 12, 1, 0, 0, 0,
                                0)
                a.st_ino, a.is_lookup = ino or 1, False
                a.entry_timeout = a.attr_timeout = 0
            else:
                a.shown_ino = ino if ino else a.shown_ino
            token.entries.append((name, a, off))

    async def releasedir(self, fh):
        await self.conn.request(RELEASEDIR, fh.nodeid, struct.pack("<QIIQ", fh.fh, fh.flags,
                                                                   0, 0), reply="drop")

    async def fsyncdir(self, fh, datasync):
        if FSYNCDIR not in self.conn.no:
            await self.conn.request(FSYNCDIR, fh.nodeid, struct.pack("<QII", fh.fh,
                                                                     int(datasync), 0))

    async def statfs(self, ctx):
        data = await self.conn.request(STATFS, 1, b"", _ids(ctx))
        (blocks, bfree, bavail, files, ffree, bsize, namelen, frsize, _pad,
         *_spare) = KSTATFS.unpack_from(data.ljust(KSTATFS.size, b"\0"))
        sv = Statvfs()
        sv.f_bsize, sv.f_frsize, sv.f_blocks = bsize, frsize or bsize, blocks
        sv.f_bfree, sv.f_bavail, sv.f_files, sv.f_ffree = bfree, bavail, files, ffree
        sv.f_favail, sv.f_namemax = ffree, namelen
        return sv

    async def setxattr(self, inode, name, value, ctx, flags=0):
        body = struct.pack("<II", len(value), flags) + _name(name) + bytes(value)
        await self.conn.request(SETXATTR, inode, body, _ids(ctx))

    async def getxattr(self, inode, name, ctx):
        value = await self.conn.request(GETXATTR, inode, struct.pack("<II", 65536, 0) +
                                        _name(name), _ids(ctx))
        if bytes(name) in ACL_NAMES:
            value = _canonical_acl(value)
        return value

    async def listxattr(self, inode, ctx):
        data = await self.conn.request(LISTXATTR, inode, struct.pack("<II", 65536, 0),
                                       _ids(ctx))
        return [n for n in data.split(b"\0") if n]

    async def removexattr(self, inode, name, ctx):
        await self.conn.request(REMOVEXATTR, inode, _name(name), _ids(ctx))

    async def access(self, inode, mode, ctx):
        if ACCESS in self.conn.no:
            return True
        try:
            await self.conn.request(ACCESS, inode, struct.pack("<II", mode, 0), _ids(ctx))
        except Exception as e:
            if getattr(e, "errno", None) == errno.ENOSYS:
                return True
            if getattr(e, "errno", None) == errno.EACCES:
                return False
            raise
        return True

    async def syncfs(self):
        pass  # (a daemon writes back at fsync, flush and release)

    async def destroy(self):
        pass  # the daemon's read answers ENODEV and libfuse calls its destroy
