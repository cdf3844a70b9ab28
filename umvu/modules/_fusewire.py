"""The kernel's FUSE protocol (linux/fuse.h), spoken by umvu to a FUSE daemon that runs
as a guest: the daemon reads requests from its /dev/fuse fd and writes replies, as it
does on the kernel. This file holds the wire format and the connection; the operations
that become requests are umvu.modules._fuseops's WireOps, a pyfuse3-shaped object that
vufuse's FuseService serves a mount with (the path walk, the caches, the open files and
the permission rules are vufuse's).

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

from umvu.api import Event, log, shield_signals

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
NOTIFY_POLL, NOTIFY_INVAL_INODE, NOTIFY_INVAL_ENTRY, NOTIFY_DELETE = 1, 2, 3, 6
POLL_SCHEDULE_NOTIFY = 1
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP = 0x1, 0x2, 0x4, 0x8, 0x10
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND = 0x40, 0x80, 0x100, 0x200
POLL_ASKED = POLLIN | POLLPRI | POLLOUT | POLLRDNORM | POLLRDBAND | POLLWRNORM | POLLWRBAND
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
POLL_IN = struct.Struct("<QQII")              # fuse_poll_in: fh, kh, flags, events
COPY_FILE_RANGE_IN = struct.Struct("<QQQQQQQ")  # fh_in, off_in, nodeid_out, fh_out...
DIRENT = struct.Struct("<QQII")
U32_PAIR = struct.Struct("<II")
U64 = struct.Struct("<Q")


def _fuse_error(code: int):
    from umvu.modules.vufuse import _pyfuse3
    return _pyfuse3().FUSEError(code)


class Readiness:
    """What poll, select and epoll see of an open file whose daemon answers POLL: the
    guest's fd is a copy of one end (g) of a datagram socket pair umvu holds both ends
    of. g is readable while a byte from the other end (u) waits in it (POLLIN), and
    writable unless g's own send buffer is full of datagrams u has not read (POLLOUT):
    the daemon's revents, set by umvu."""
    __slots__ = ("g", "u", "revents")

    def __init__(self) -> None:
        self.g, self.u = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for s in (self.g, self.u):
            s.setblocking(False)
        self.g.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # (the least: a few)
        self.revents = POLLOUT  # (as made: writable, not readable)

    def fd(self) -> int:
        return self.g.fileno()

    def set(self, revents: int) -> None:
        if self.g.fileno() < 0:
            return
        readable = bool(revents & (POLLIN | POLLRDNORM))
        writable = bool(revents & (POLLOUT | POLLWRNORM))
        was_readable = bool(self.revents & POLLIN)
        was_writable = bool(self.revents & POLLOUT)
        self.revents = (POLLIN if readable else 0) | (POLLOUT if writable else 0)
        try:
            if readable and not was_readable:
                self.u.send(b"r")
            elif was_readable and not readable:
                self.g.recv(16)
        except BlockingIOError:
            pass
        try:
            if was_writable and not writable:
                for _ in range(4096):  # (until the send buffer is full)
                    self.g.send(b"w")
            elif writable and not was_writable:
                for _ in range(4096):
                    self.u.recv(16)
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.g.close()
        self.u.close()


class Pending:
    """A request sent (or queued) whose reply is awaited."""
    __slots__ = ("unique", "opcode", "message", "done", "error", "body", "read",
                 "interrupted")

    def __init__(self, unique: int, opcode: int, message: bytes) -> None:
        self.unique, self.opcode, self.message = unique, opcode, message
        self.done = Event()
        self.error = 0
        self.body = b""
        self.read = False  # the daemon has read it
        self.interrupted = False  # a signal came for its client (INTERRUPT once read)


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
        self.posted: dict = {}  # unique -> callback(error, body) of a request not waited
        # nodes named by requests the daemon has not answered yet: a FORGET of one
        # waits until they are (libfuse drops a node at its FORGET, and a request
        # still to be served on it would abort the daemon: "node N not found")
        self.inflight: dict[int, int] = {}   # node id -> requests naming it
        self.uses: dict[int, tuple] = {}     # unique -> the node ids it names
        self.deferred: dict[int, int] = {}   # node id -> lookups to forget after
        self.where = "?"  # the mount point (for the log)
        self.service = None  # the mount's service, once mounted
        self.auto_unmount = False  # fusermount's auto_unmount: gone with the daemon
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
        # as the kernel's request_wait_answer: a signal the client catches sends
        # INTERRUPT and the wait goes on for the reply; only a fatal one ends it
        shield_signals(lambda: self._client_signalled(p))
        try:
            await p.done.wait()
        except BaseException:
            self._interrupted(p)
            raise
        finally:
            shield_signals(None)
        if p.error:
            raise _fuse_error(-p.error)
        return p.body

    def post(self, opcode: int, nodeid: int, body: bytes, on_reply) -> None:
        """Send a request nobody waits for: on_reply(error, body) when its reply comes
        (a POLL asked again after the daemon's NOTIFY_POLL, from the daemon's own call)."""
        if not self.initialized.is_set() or self.dead or self.unmounted or self.init_error:
            return
        unique = self._next_unique()
        self._naming(unique, (nodeid,))
        self.posted[unique] = on_reply
        self._push(None, self.header(opcode, nodeid, len(body), unique, (0, 0, 0)) + body)

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

    def _client_signalled(self, p: Pending) -> None:
        """A signal for the client of p, which waits on: the daemon is told (INTERRUPT)
        once it has read the request."""
        if p.interrupted or p.unique not in self.waiting:
            return
        p.interrupted = True
        if p.read:
            self._send_interrupt(p)

    def _send_interrupt(self, p: Pending) -> None:
        if INTERRUPT not in self.no and not self.dead and not self.unmounted:
            body = U64.pack(p.unique)
            self._push(None, self.header(INTERRUPT, 0, len(body), p.unique | INT_REQ_BIT,
                                         (0, 0, 0)) + body)

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
        if not p.interrupted:
            self._send_interrupt(p)

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
        self.posted.clear()
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
                if p.interrupted:  # (its INTERRUPT follows it, as the kernel queues it)
                    self._send_interrupt(p)
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
        on_reply = self.posted.pop(unique, None)
        if on_reply is not None:
            self._answered(unique)
            on_reply(error, data[OUT_HEADER.size:])
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
