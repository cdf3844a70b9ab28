"""Giving a guest a file of umvu's (a memfd of a file's content, a shared mapping's)
where no seccomp notification can carry it (SECCOMP_IOCTL_NOTIF_ADDFD).

umvu is not dumpable (csrc/spawn.c), so a guest cannot open /proc/UMVU/fd/N: the file
goes over a unix socket instead. The guest, at a ptrace stop, is made to connect a
stream socket to umvu's listening one (an abstract name of 16 random bytes); umvu
accepts the connection whose peer (SO_PEERCRED) is that guest — any other is closed —
and sends the file with SCM_RIGHTS; the guest receives it, and dup3 puts it where the
socket was (the lowest free number, as the guest's own open would have given). Five
injected calls (socket, connect, recvmsg, dup3, close).
"""
from __future__ import annotations

import errno
import os
import struct

from umvu.core.abi import O_CLOEXEC, s64
from umvu.core.log import log
from umvu.core.syscalls import number

NR_SOCKET, NR_CONNECT, NR_RECVMSG = number("socket"), number("connect"), number("recvmsg")
NR_DUP3, NR_CLOSE = number("dup3"), number("close")
SOCK_CLOEXEC = 0o2000000
MSG_CMSG_CLOEXEC = 0x40000000
CMSG_SPACE_1FD = 24  # cmsghdr (16) + one int, aligned


class Handoff:
    """umvu's listening socket and the hand-over of one file to a stopped guest."""

    def __init__(self, tracer, scratch) -> None:
        self.tracer, self.scratch = tracer, scratch  # scratch(t): the guest's area
        self._listener = None
        self._addr = b""

    def _listen(self) -> bytes:
        import socket  # (when first needed: 10 ms of umvu's start otherwise)
        if self._listener is None:
            name = b"\0umvu-" + os.urandom(16).hex().encode()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            s.bind(name)
            s.listen(64)
            s.setblocking(False)
            self._listener, self._addr = s, name
        return self._addr

    def _call(self, tid: int, nr: int, *args) -> int:
        return s64(self.tracer.inject(tid, nr, *args) & 0xFFFFFFFFFFFFFFFF)

    def give(self, t, host_fd: int, cloexec: bool) -> int:
        """host_fd's open file as a new fd of t's process (the lowest free number):
        the number, or -errno."""
        import socket
        tid = t.tid
        addr = self._listen()
        base = self.scratch(t) + 4096  # sockaddr, iovec, msghdr, cmsg, one byte
        sa = struct.pack("<H", socket.AF_UNIX) + addr
        iov, msg, cmsg, byte = base + 128, base + 160, base + 224, base + 256
        self.tracer.poke(tid, base, sa)
        self.tracer.poke(tid, iov, struct.pack("<QQ", byte, 1))
        self.tracer.poke(tid, msg, struct.pack("<QI4xQQQQi4x", 0, 0, iov, 1, cmsg,
                                               CMSG_SPACE_1FD, 0))
        sock = self._call(tid, NR_SOCKET, socket.AF_UNIX, socket.SOCK_STREAM | SOCK_CLOEXEC,
                          0)
        if sock < 0:
            return sock
        got = -1
        try:
            ret = self._call(tid, NR_CONNECT, sock, base, len(sa))
            if ret < 0:
                return ret
            conn = self._accept_from(t.process.tgid)
            if conn is None:
                return -errno.ECONNREFUSED
            with conn:
                conn.sendmsg([b"f"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                       struct.pack("<i", host_fd))])
            ret = self._call(tid, NR_RECVMSG, sock, msg, MSG_CMSG_CLOEXEC)
            if ret < 0:
                return ret
            length, level, kind, got = struct.unpack(
                "<QiiI", self.tracer.peek(tid, cmsg, 20))
            if (level, kind) != (socket.SOL_SOCKET, socket.SCM_RIGHTS) or length < 20:
                got = -1
                return -errno.EPROTO
            ret = self._call(tid, NR_DUP3, got, sock, O_CLOEXEC if cloexec else 0)
            if ret < 0:
                return ret
            sock = -1  # it is the file now
            return ret
        finally:
            for fd in (got, sock):
                if fd >= 0:
                    self._call(tid, NR_CLOSE, fd)

    def _accept_from(self, tgid: int):
        """The pending connection whose peer is process tgid (others are closed)."""
        import socket
        while True:
            try:
                conn, _ = self._listener.accept()
            except BlockingIOError:
                return None
            pid = struct.unpack("<iII", conn.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
            if pid == tgid:
                return conn
            log.warning("umvu: a connection to umvu's hand-off socket from pid %d, "
                        "not the guest %d: closed", pid, tgid)
            conn.close()
