"""The kernel's FUSE protocol (linux/fuse.h), spoken by umvu to a FUSE daemon that runs
as a guest: the daemon reads requests from its /dev/fuse fd and writes replies, as it
does on the kernel; umvu's side is a pyfuse3-shaped Operations object (:class:`WireOps`)
that vufuse's FuseService serves a mount with, so the path walk, the caches, the open
files and the permission rules are vufuse's.

A :class:`Connection` is one open of /dev/fuse: unmounted until a mount(2) names its fd,
then a queue of requests for the daemon and the replies awaited. A client's request
waits in umvu (the call that waits: umvu.api.Event) while the daemon works; a signal
for the client ends its wait (a request the daemon had not read yet is taken back, one
it had gets an INTERRUPT), and the daemon's reply to it is dropped.
"""
from __future__ import annotations

import collections
import errno
import os
import socket
import struct

from umvu.api import Event, can_wait, log

# opcodes
LOOKUP, FORGET, GETATTR, SETATTR, READLINK, SYMLINK = 1, 2, 3, 4, 5, 6
MKNOD, MKDIR, UNLINK, RMDIR, RENAME, LINK, OPEN, READ, WRITE = 8, 9, 10, 11, 12, 13, 14, 15, 16
STATFS, RELEASE, FSYNC, SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR = 17, 18, 20, 21, 22, 23, 24
FLUSH, INIT, OPENDIR, READDIR, RELEASEDIR, FSYNCDIR = 25, 26, 27, 28, 29, 30
ACCESS, CREATE, INTERRUPT, DESTROY, POLL = 34, 35, 36, 38, 40
BATCH_FORGET, FALLOCATE, READDIRPLUS, RENAME2, LSEEK, COPY_FILE_RANGE = 42, 43, 44, 45, 46, 47
SYNCFS = 50
NAMES = {v: k for k, v in list(globals().items()) if k.isupper() and isinstance(v, int)}

# INIT flags
ASYNC_READ, ATOMIC_O_TRUNC, BIG_WRITES = 1 << 0, 1 << 3, 1 << 5
DO_READDIRPLUS, PARALLEL_DIROPS, MAX_PAGES = 1 << 13, 1 << 18, 1 << 22
OFFERED = ASYNC_READ | BIG_WRITES | DO_READDIRPLUS | PARALLEL_DIROPS | MAX_PAGES
PROTO_MAJOR, PROTO_MINOR = 7, 31  # what umvu speaks (RENAME2, LSEEK, COPY_FILE_RANGE...)
MIN_MINOR = 12  # the structures below (umask in mknod, 64-bit attributes)
MAX_PAGES_DEFAULT = 32  # as the kernel: 128 KiB per read or write request

# setattr valid bits
FATTR_MODE, FATTR_UID, FATTR_GID, FATTR_SIZE = 1, 2, 4, 8
FATTR_ATIME, FATTR_MTIME, FATTR_FH, FATTR_CTIME = 16, 32, 64, 1024
FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FOPEN_NONSEEKABLE = 1, 2, 4
GETATTR_FH = 1
NOTIFY_INVAL_INODE, NOTIFY_INVAL_ENTRY, NOTIFY_DELETE = 2, 3, 6
INT_REQ_BIT = 1  # the unique of an INTERRUPT request (requests' own are even)

IN_HEADER = struct.Struct("<IIQQIIIHH")       # fuse_in_header (40)
OUT_HEADER = struct.Struct("<IiQ")            # fuse_out_header (16)
ATTR = "QQQQQQIIIIIIIIII"                     # fuse_attr (88)
ENTRY_OUT = struct.Struct("<QQQQII" + ATTR)   # fuse_entry_out (128)
ATTR_OUT = struct.Struct("<QII" + ATTR)       # fuse_attr_out (104)
OPEN_OUT = struct.Struct("<QII")
INIT_IN = struct.Struct("<IIIII11I")
INIT_OUT = struct.Struct("<IIIIHHIIHHI7I")
KSTATFS = struct.Struct("<QQQQQIIII6I")
SETATTR_IN = struct.Struct("<IIQQQQQQIIIIIIII")
READ_IN = WRITE_IN = struct.Struct("<QQIIQII")
DIRENT = struct.Struct("<QQII")
U32_PAIR = struct.Struct("<II")
U64 = struct.Struct("<Q")


def _fuse_error(code: int):
    from umvu.modules.vufuse import _pyfuse3
    return _pyfuse3().FUSEError(code)


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
    __slots__ = ("fh", "nodeid", "flags", "ahead")

    def __init__(self, fh: int, nodeid: int, flags: int) -> None:
        self.fh, self.nodeid, self.flags = fh, nodeid, flags
        self.ahead = None  # (generation, offset, data) read ahead (fuse.WireService)


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


class Pending:
    """A request sent (or queued) whose reply is awaited."""
    __slots__ = ("unique", "opcode", "message", "done", "error", "body", "read")

    def __init__(self, unique: int, opcode: int, message: bytes) -> None:
        self.unique, self.opcode, self.message = unique, opcode, message
        self.done = Event()
        self.error = 0
        self.body = b""
        self.read = False  # the daemon has read it


class Connection:
    """One open file of /dev/fuse and, once mounted, its FUSE connection."""

    def __init__(self, api) -> None:
        self.api = api
        self.queue: collections.deque = collections.deque()  # (Pending or None, bytes)
        self.waiting: dict[int, Pending] = {}  # unique -> Pending
        # the daemon's readers waiting for a request, first come first woken: one per
        # request queued (the kernel wakes one reader of /dev/fuse per request too)
        self.readers: collections.deque = collections.deque()
        self.unique = 0
        self.mounted = False     # a mount(2) named this fd
        self.unmounted = False   # the mount went away: reads answer ENODEV
        self.dead = False        # no more daemon: requests answer ENOTCONN
        self.initialized = Event()
        self.init_error = 0
        self.minor = PROTO_MINOR
        self.flags = 0
        self.max_write = 4096
        self.max_read = MAX_PAGES_DEFAULT * 4096
        self.no = set()  # opcodes the daemon answered ENOSYS (not sent again)
        self.files = 0   # open file descriptions of /dev/fuse on this connection
        self.on_notify = None  # callback(code, body) for the daemon's notifications
        self.dropped: set = set()  # uniques whose replies nobody awaits
        # nodes named by requests the daemon has not answered yet: a FORGET of one
        # waits until they are (libfuse drops a node at its FORGET, and a request
        # still to be served on it would abort the daemon: "node N not found")
        self.inflight: dict[int, int] = {}   # node id -> requests naming it
        self.uses: dict[int, tuple] = {}     # unique -> the node ids it names
        self.deferred: dict[int, int] = {}   # node id -> lookups to forget after
        self.where = "?"  # the mount point (for the log)
        # what the guest's fd is (Service.placeholder): one end of a socket pair, made
        # readable (a byte from the other end) while requests wait, and with an error
        # (POLLERR) when the mount goes (the other end closed with data unread)
        self._ready = None
        self._signalled = False

    # ------------------------------------------------------------ umvu's side
    def _next_unique(self) -> int:
        self.unique += 2
        return self.unique

    def ready_fd(self) -> int:
        if self._ready is None:
            self._ready = socket.socketpair()
            for s in self._ready:
                s.setblocking(False)
        return self._ready[0].fileno()

    def _readiness(self) -> None:
        """The guest's fd is readable exactly while a request is queued."""
        if self._ready is None or self._ready[1].fileno() < 0:
            return
        want = bool(self.queue)
        if want == self._signalled:
            return
        try:
            if want:
                self._ready[1].send(b"r")
            else:
                self._ready[0].recv(16)
        except OSError:
            pass
        self._signalled = want

    def _gone(self) -> None:
        """POLLERR on the guest's fd, as the kernel's /dev/fuse of an unmounted or
        aborted connection."""
        if self._ready is None or self._ready[1].fileno() < 0:
            return
        try:
            self._ready[0].send(b"x")  # unread by the end that closes: an error
        except OSError:
            pass
        self._ready[1].close()

    def close(self) -> None:
        if self._ready is not None:
            for s in self._ready:
                s.close()

    def wake_reader(self) -> None:
        while self.readers:
            ev = self.readers.popleft()
            if not ev.is_set():
                ev.set()
                return

    async def wait_request(self) -> None:
        """(a reader of the daemon's) Wait until woken for a request or the end."""
        ev = Event()
        self.readers.append(ev)
        try:
            await ev.wait()
        except BaseException:
            if ev in self.readers:
                self.readers.remove(ev)
            elif self.queue or self.unmounted or self.dead:
                self.wake_reader()  # (woken, then interrupted: another takes it)
            raise

    def _push(self, pending, message: bytes) -> None:
        self.queue.append((pending, message))
        self._readiness()
        self.wake_reader()

    def header(self, opcode: int, nodeid: int, body_len: int, unique: int, ids) -> bytes:
        uid, gid, pid = ids
        return IN_HEADER.pack(IN_HEADER.size + body_len, opcode, unique, nodeid,
                              uid & 0xFFFFFFFF, gid & 0xFFFFFFFF, pid, 0, 0)

    def send_init(self) -> None:
        """Queued at mount (the daemon that mounts reads it after mount(2) returns);
        every other request waits until the reply comes."""
        unique = self._next_unique()
        body = INIT_IN.pack(PROTO_MAJOR, PROTO_MINOR, 128 * 1024, OFFERED, 0, *([0] * 11))
        p = Pending(unique, INIT, b"")
        self.waiting[unique] = p
        self._push(p, self.header(INIT, 0, len(body), unique, (0, 0, 0)) + body)

    def _init_reply(self, p: Pending) -> None:
        if p.error:
            log.error("umvu: fuse: the daemon refused INIT: %s", os.strerror(-p.error))
            self.init_error = errno.EPROTO
        else:
            (major, minor, _ra, flags, _bg, _cong, max_write, _gran, max_pages, _align,
             _flags2, *_unused) = INIT_OUT.unpack(p.body.ljust(INIT_OUT.size, b"\0"))
            if major != PROTO_MAJOR or minor < MIN_MINOR:
                log.error("umvu: fuse: the daemon speaks FUSE %d.%d; umvu needs 7.%d or "
                          "later", major, minor, MIN_MINOR)
                self.init_error = errno.EPROTO
            else:
                self.minor = min(minor, PROTO_MINOR)
                self.flags = flags & OFFERED
                pages = max_pages if flags & MAX_PAGES and max_pages else MAX_PAGES_DEFAULT
                limit = pages * 4096
                self.max_write = max(4096, min(max_write, limit)) \
                    if flags & BIG_WRITES else 4096
                self.max_read = min(self.max_read, limit)
        self.initialized.set()

    async def request(self, opcode: int, nodeid: int, body: bytes = b"", ids=None,
                      reply=True, also=()):
        """Send a request; its reply's body (an error reply raises FUSEError). reply
        False: the request has none (FORGET); "drop": the daemon's reply is not awaited
        (RELEASE, as the kernel sends it in the background). also: other node ids the
        request names (RENAME's new directory, LINK's file)."""
        if not self.initialized.is_set() and not self.dead:
            await self.initialized.wait()
        if self.dead or self.unmounted:
            raise _fuse_error(errno.ENOTCONN)
        if self.init_error:
            raise _fuse_error(self.init_error)
        if ids is None:
            ids = self.api.caller()[:3]
        unique = self._next_unique()
        message = self.header(opcode, nodeid, len(body), unique, ids) + body
        if reply:
            self._naming(unique, (nodeid,) + tuple(also))
        if not reply or reply == "drop":
            if reply:
                self.dropped.add(unique)
            self._push(None, message)
            return b""
        p = Pending(unique, opcode, message)
        self.waiting[unique] = p
        self._push(p, message)
        try:
            await p.done.wait()
        except BaseException:
            self._interrupted(p)
            raise
        if p.error:
            raise _fuse_error(-p.error)
        return p.body

    def _naming(self, unique: int, nodes) -> None:
        nodes = tuple(n for n in nodes if n)
        if nodes:
            self.uses[unique] = nodes
            for n in nodes:
                self.inflight[n] = self.inflight.get(n, 0) + 1

    def _answered(self, unique: int) -> None:
        """unique's reply came (or never will): its nodes may be forgotten now."""
        for n in self.uses.pop(unique, ()):
            left = self.inflight.get(n, 0) - 1
            if left > 0:
                self.inflight[n] = left
                continue
            self.inflight.pop(n, None)
            count = self.deferred.pop(n, 0)
            if count and not self.dead and not self.unmounted:
                body = U64.pack(count)
                self._push(None, self.header(FORGET, n, len(body), self._next_unique(),
                                             (0, 0, 0)) + body)

    def forget_later(self, nodeid: int, count: int) -> bool:
        """A FORGET of nodeid waits while requests naming it are unanswered."""
        if self.inflight.get(nodeid):
            self.deferred[nodeid] = self.deferred.get(nodeid, 0) + count
            return True
        return False

    def _interrupted(self, p: Pending) -> None:
        """The client's wait ended (a signal, its thread gone): the request is taken
        back if the daemon has not read it, else the daemon is told (INTERRUPT)."""
        if self.waiting.pop(p.unique, None) is None:
            return  # (answered meanwhile)
        if not p.read:
            for item in self.queue:
                if item[0] is p:
                    self.queue.remove(item)
                    self._readiness()
                    self._answered(p.unique)
                    return
        self.dropped.add(p.unique)  # (its reply, when it comes, is nobody's)
        if INTERRUPT not in self.no and not self.dead and not self.unmounted:
            body = U64.pack(p.unique)
            self._push(None, self.header(INTERRUPT, 0, len(body), p.unique | INT_REQ_BIT,
                                         (0, 0, 0)) + body)

    def abort(self, code: int) -> None:
        """Every request awaited ends with code (ENOTCONN: the daemon is gone;
        ECONNABORTED: the mount is); the daemon's readers are woken."""
        for p in list(self.waiting.values()):
            p.error = -code
            if p.opcode == INIT:
                self.init_error = code
            p.done.set()
        self.waiting.clear()
        self.dropped.clear()
        self.uses.clear()
        self.inflight.clear()
        self.deferred.clear()
        self.queue.clear()
        self._gone()
        self.initialized.set()
        self.wake_reader()  # (it wakes the next when it has its ENODEV)

    # ------------------------------------------------------------ the daemon's side
    def read_request(self, size: int):
        """The next request for the daemon (bytes), or None if there is none yet."""
        if not self.mounted:
            raise OSError(errno.EPERM, "this /dev/fuse is not mounted")
        if self.unmounted or self.dead:
            self.wake_reader()  # the next reader has its ENODEV too
            raise OSError(errno.ENODEV, "the FUSE file system was unmounted")
        if size < max(8192, IN_HEADER.size + WRITE_IN.size + self.max_write):
            raise OSError(errno.EINVAL, "buffer too small for a FUSE request")
        while self.queue:
            p, message = self.queue.popleft()
            if p is not None:
                if p.unique not in self.waiting:
                    continue  # (taken back)
                p.read = True
            self._readiness()
            if self.queue:
                self.wake_reader()  # (more requests: another reader may take one)
            return message
        self._readiness()
        return None

    def write_reply(self, data: bytes) -> int:
        if not self.mounted:
            raise OSError(errno.EPERM, "this /dev/fuse is not mounted")
        if len(data) < OUT_HEADER.size:
            raise OSError(errno.EINVAL, "short FUSE reply")
        length, error, unique = OUT_HEADER.unpack_from(data)
        if length != len(data):
            raise OSError(errno.EINVAL, "FUSE reply length %d of %d bytes" % (length,
                                                                              len(data)))
        if unique == 0:  # a notification
            if self.on_notify is not None:
                self.on_notify(error, data[OUT_HEADER.size:])
            return len(data)
        if error > 0 or error <= -512:
            raise OSError(errno.EINVAL, "bad FUSE error %d" % error)
        if unique & INT_REQ_BIT:  # the daemon's answer to an INTERRUPT (EAGAIN...)
            return len(data)
        if unique in self.dropped:
            self.dropped.discard(unique)
            self._answered(unique)
            return len(data)
        p = self.waiting.pop(unique, None)
        if p is None:
            if self.unmounted or self.dead:
                raise OSError(errno.ENODEV, "the FUSE file system was unmounted")
            raise OSError(errno.ENOENT, "no FUSE request %d awaits a reply" % unique)
        p.error, p.body = error, data[OUT_HEADER.size:]
        self._answered(unique)
        if error == -errno.ENOSYS:
            self.no.add(p.opcode)
        if p.opcode == INIT:
            self._init_reply(p)
        p.done.set()
        return len(data)


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
        valid = 0
        mode = uid = gid = size = 0
        at = mt = ct = 0
        if fields.update_mode:
            valid |= FATTR_MODE
            mode = attr.st_mode
        if fields.update_uid:
            valid |= FATTR_UID
            uid = attr.st_uid
        if fields.update_gid:
            valid |= FATTR_GID
            gid = attr.st_gid
        if fields.update_size:
            valid |= FATTR_SIZE
            size = attr.st_size
        if fields.update_atime:
            valid |= FATTR_ATIME
            at = attr.st_atime_ns
        if fields.update_mtime:
            valid |= FATTR_MTIME
            mt = attr.st_mtime_ns
        if fields.update_ctime:
            valid |= FATTR_CTIME
            ct = attr.st_ctime_ns
        if fh is not None:
            valid |= FATTR_FH
        (a, an), (m, mn), (c, cn) = _ns(at), _ns(mt), _ns(ct)
        body = SETATTR_IN.pack(valid, 0, fh.fh if fh is not None else 0, size, 0, a, m, c, an, mn, cn,
                               mode & 0xFFFFFFFF, 0, uid & 0xFFFFFFFF, gid & 0xFFFFFFFF, 0)
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
