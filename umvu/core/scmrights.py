"""Virtual fds passed over unix sockets (SCM_RIGHTS) arrive as the same virtual file.

A guest's virtual fd is, to the kernel, a placeholder (an eventfd, a memfd of the
content, an empty directory): sendmsg passes that placeholder, and the receiver would
get it bare. So, once a module is loaded, sendmsg and recvmsg (and their mmsg forms) on
real sockets are traced; the C loop runs them natively unless a virtual fd may be in
the message (some fd is virtual and the message has control data) or come out of it
(the receiver gave a control buffer: a receive may wait for a message sent later, of
an fd not even open yet).

- At a sendmsg that carries virtual fds in SCM_RIGHTS, umvu takes a copy of each
  placeholder (pidfd_getfd: the same open file, which the sender may close at once, as
  fusermount does) and keeps it with its VFile, in flight.
- At the exit of a recvmsg that received fds, each is compared with the files in flight
  (kcmp KCMP_FILE: the same open file); a match makes the receiver's fd that virtual
  file, as a dup would (the same open file: offset, handle, flags).
- A message never received keeps its files in flight until FLIGHT_MAX newer ones push
  it out (or the session ends).
"""
from __future__ import annotations

import os
import struct

from umvu.core.abi import s32
from umvu.core.actions import Native
from umvu.core.log import log
from umvu.core.tracer import raw_syscall

SOL_SOCKET, SCM_RIGHTS = 1, 1
NR_PIDFD_GETFD, NR_KCMP = 438, 312
KCMP_FILE = 0
FLIGHT_MAX = 256
MSGHDR = struct.Struct("<QIxxxxQQQQi")  # name, namelen, iov, iovlen, control, controllen, flags
MMSGHDR_SIZE = 64  # struct mmsghdr: a msghdr (56) and msg_len (4, padded)
SCM_CALLS = ("sendmsg", "sendmmsg", "recvmsg", "recvmmsg")


def _cmsg_fds(control: bytes) -> list[int]:
    """The fds of the SCM_RIGHTS messages in a control buffer."""
    fds, at = [], 0
    while at + 16 <= len(control):
        length, level, kind = struct.unpack_from("<Qii", control, at)
        if length < 16 or at + length > len(control):
            break
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            n = (length - 16) // 4
            fds.extend(struct.unpack_from("<%di" % n, control, at + 16))
        at += (length + 7) & ~7
    return fds


class ScmRights:
    """Part of VirtualFS: virtual fds through SCM_RIGHTS."""

    def scm_init(self) -> None:
        self.in_flight: list[tuple[int, object]] = []  # (umvu's copy, VFile)

    def on_scm(self, t, sc, args):
        """sendmsg/recvmsg (and mmsg) on a real socket, which the C loop left to
        Python: None (the kernel's), or a Native whose exit hook does the matching."""
        try:
            if sc.name.startswith("send"):
                return self._scm_send(t, sc, args)
            # (it may wait: what is in flight when it returns is what counts)
            return Native(None, lambda ret: self._scm_received(t, sc, args, ret))
        except OSError:
            pass  # (a bad pointer: the kernel's call answers EFAULT itself)
        return None

    def _headers(self, t, sc, args, count: int | None = None):
        """The guest's msghdrs of the call: [(guest_addr, MSGHDR fields)]."""
        if sc.name in ("sendmsg", "recvmsg"):
            addrs = [args[1]]
        else:
            vlen = min(count if count is not None else s32(args[2]), 1024)
            addrs = [args[1] + MMSGHDR_SIZE * i for i in range(max(vlen, 0))]
        return [(a, MSGHDR.unpack(self.tracer.peek(t.tid, a, MSGHDR.size))) for a in addrs]

    def _scm_send(self, t, sc, args):
        if not t.files.fds:
            return None
        copies = []
        for _, h in self._headers(t, sc, args):
            control, controllen = h[4], h[5]
            if not control or not controllen:
                continue
            for fd in _cmsg_fds(self.tracer.peek(t.tid, control, min(controllen, 4096))):
                vf = t.files.fds.get(fd)
                if vf is None:
                    continue
                copy = self._grab(t.process.tgid, fd)
                if copy is not None:
                    vf.refs += 1
                    copies.append((copy, vf))
        if not copies:
            return None
        self.in_flight.extend(copies)
        while len(self.in_flight) > FLIGHT_MAX:
            self._land(self.in_flight.pop(0))
        self.tracer.set_scm(True, len(self.in_flight))

        def sent(ret):
            if ret < 0:  # nothing went: nothing is on its way
                for item in copies:
                    if item in self.in_flight:
                        self.in_flight.remove(item)
                        self._land(item)
                self.tracer.set_scm(True, len(self.in_flight))
        return Native(None, sent)

    def _grab(self, tgid: int, guest_fd: int) -> int | None:
        """umvu's own fd of the open file behind guest_fd of process tgid."""
        try:
            pidfd = os.pidfd_open(tgid)
        except OSError:
            return None
        try:
            fd = raw_syscall(NR_PIDFD_GETFD, pidfd, guest_fd, 0)
        finally:
            os.close(pidfd)
        if fd < 0:
            log.warning("umvu: SCM_RIGHTS: no copy of fd %d of %d (%s)", guest_fd, tgid,
                        os.strerror(-fd))
            return None
        os.set_inheritable(fd, False)
        return fd

    def _land(self, item) -> None:
        copy, vf = item
        os.close(copy)
        try:
            self.release(vf)
        except OSError:  # (the module's close of a file nobody holds any more)
            pass

    def _scm_received(self, t, sc, args, ret: int) -> None:
        if not self.in_flight or ret < 0 or (ret == 0 and sc.name == "recvmmsg"):
            return
        try:
            headers = self._headers(t, sc, args, ret if sc.name == "recvmmsg" else None)
        except OSError:
            return
        me = os.getpid()
        for _, h in headers:
            control, controllen = h[4], h[5]
            if not control or not controllen:
                continue
            try:
                fds = _cmsg_fds(self.tracer.peek(t.tid, control, min(controllen, 4096)))
            except OSError:
                continue
            for fd in fds:
                for item in self.in_flight:
                    if raw_syscall(NR_KCMP, t.tid, me, KCMP_FILE, fd, item[0]) == 0:
                        self.in_flight.remove(item)
                        self.bind(t.files, fd, item[1])
                        self._land(item)
                        break
        self.tracer.set_scm(True, len(self.in_flight))
