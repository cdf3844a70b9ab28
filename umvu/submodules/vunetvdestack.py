"""vunetvdestack: a kernel network stack of its own, connected to a VDE network.

``vumount -t vunetvdestack [-o iface=NAME] VDE_URL STACK`` (``vde:///tmp/sw``, a switch
started with ``vde_switch -s /tmp/sw``, or any URL libvdeplug takes). The stack is a
network namespace (in a user namespace of umvu's user: no root, no device node) holding
``lo`` and ``vde0`` (or NAME), both down and without addresses until the guest
configures them (``ip addr add 10.10.0.1/24 dev vde0; ip link set vde0 up``). Its
sockets are the kernel's, made in that namespace: IPv4, IPv6, netlink (so ``ip`` shows
and configures the stack) and packet.

The namespace is kept by a small program of umvu's (csrc/vunet_stack.c), which also
copies Ethernet frames between the VDE network and the other end of vde0's veth pair
(an AF_PACKET socket in a second namespace of the same user namespace, so the stack
shows only lo and vde0). libvdestack does the same with a tap device, which needs
/dev/net/tun (root only on many systems): a veth pair needs nothing."""
import errno
import os
import socket
import struct
import subprocess

from umvu.api import log
from umvu.modules.vunet import STACK_FAMILIES

OPTIONS = {"iface": str}
HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vunet_stack")
OP_SOCKET, OP_DESTROY = 1, 2
ANSWER_TIMEOUT = 20.0  # seconds for the stack to come up or answer


class Stack:
    families = STACK_FAMILIES

    def __init__(self, api, source: bytes, options: dict) -> None:
        url = os.fsdecode(source)
        if url in ("", "none"):
            raise OSError(errno.EINVAL, "vunetvdestack needs a VDE network as its source "
                          "(vde:///tmp/sw: a switch started with vde_switch -s /tmp/sw)")
        iface = options.get("iface", "vde0")
        if not iface or len(iface) > 15 or "/" in iface or iface in ("lo", "vdeport"):
            raise OSError(errno.EINVAL, "bad interface name %r" % iface)
        if not os.access(HELPER, os.X_OK):
            raise OSError(errno.ENOENT, "%s is not built (run: make setup)" % HELPER)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            first = subprocess.Popen([HELPER, str(theirs.fileno()), url, iface],
                                     pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                     close_fds=True)
            first.wait()  # (it leaves the keeper running, nobody's child of umvu's)
        finally:
            theirs.close()
        mine.settimeout(ANSWER_TIMEOUT)
        try:
            answer = mine.recv(600)
        except OSError as e:
            mine.close()
            raise OSError(errno.EIO, "the stack for %s did not come up: %s" % (url, e))
        code = struct.unpack("<i", answer[:4])[0] if len(answer) >= 4 else errno.EIO
        if code:
            mine.close()
            raise OSError(code, answer[4:].decode(errors="replace")
                          or "the stack for %s did not come up" % url)
        self.ctl, self.url, self.iface = mine, url, iface
        self._netdev = None
        self.keeper_pid = struct.unpack("<i", answer[4:8])[0] if len(answer) >= 8 else 0

    def _ask(self, op: int, domain: int = 0, type_: int = 0, protocol: int = 0):
        if self.ctl is None:
            raise OSError(errno.EAFNOSUPPORT, "the stack is unmounted")
        try:
            self.ctl.send(struct.pack("<4i", op, domain, type_, protocol))
            msg, fds, _, _ = socket.recv_fds(self.ctl, 4, 1)
        except OSError as e:
            log.error("vunetvdestack %s: the stack's keeper does not answer: %s",
                      self.url, e)
            raise OSError(errno.EIO, "the stack's keeper does not answer") from None
        if len(msg) != 4:
            for fd in fds:
                os.close(fd)
            raise OSError(errno.EIO, "the stack's keeper is gone")
        return struct.unpack("<i", msg)[0], fds

    def socket(self, domain: int, type_: int, protocol: int) -> int:
        ret, fds = self._ask(OP_SOCKET, domain, type_, protocol)
        if ret < 0 or not fds:
            for fd in fds:
                os.close(fd)
            raise OSError(-ret if ret < 0 else errno.EIO, os.strerror(-ret or errno.EIO))
        return fds[0]

    def netdev_socket(self):
        """A datagram socket of the stack's, umvu's own, for netdevice ioctls."""
        if self._netdev is None:
            self._netdev = socket.socket(fileno=self.socket(socket.AF_INET,
                                                            socket.SOCK_DGRAM, 0))
        return self._netdev

    def close(self) -> None:
        """Unmounted: every socket of the stack aborted, then the keeper goes (and the
        interface with it)."""
        if self._netdev is not None:
            self._netdev.close()
            self._netdev = None
        if self.ctl is None:
            return
        try:
            ret, _ = self._ask(OP_DESTROY)
            log.info("vunetvdestack %s: %d sockets aborted", self.url, max(ret, 0))
        except OSError:
            pass
        self.ctl.close()
        self.ctl = None
