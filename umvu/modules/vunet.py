"""vunet: a network stack per process tree (VUOS's vunet).

``vumount -t vunetTYPE SOURCE PATH`` makes PATH a *stack*: a special file (a socket
node, so that ``ls -l`` shows ``s``) standing for a network stack of submodule
``umvu.submodules.vunetTYPE``: ``vunetvdestack`` (a kernel stack of its own, in a user and
network namespace, connected to a VDE network), ``vunetnull`` (no network) or
``vunetreal`` (the host's stack). Its target need not exist.

A process uses a stack for a family once it made it its *default* for that family
(``vustack [-f FAMILIES] STACK CMD``, or ``msocket(STACK, family, SOCK_DEFAULT, 0)``):
its ``socket()`` calls of that family are then the stack's. The defaults are copied at
fork and kept at exec, so a process's children and the programs it runs use the same
stacks; any other process keeps the host's stack. ``msocket(STACK, domain, type,
protocol)`` (virtual system call -5, as VUOS's) makes one socket in a stack without
changing any default; ``msocket(NULL, ...)`` in the caller's default stack.

A stack's sockets are real kernel sockets (of the stack's network namespace for
vdestack) given to the guest as its fd: connect, send, recv, poll, epoll, ioctl and
the rest run in the kernel without a stop; only ``socket()`` comes to umvu.

Unmounting a stack aborts its sockets (their next call fails, ECONNABORTED for TCP and
UDP) and its interfaces go; a process whose default it was gets EAFNOSUPPORT from
``socket()`` for those families from then on (never the host's stack in its place).
"""
from __future__ import annotations

import errno
import os
import stat
import time
import types

from umvu import kernelrules as kr
from umvu.api import PASS, Module, Native, log, parse_options, s32

KEY = "vunet"  # process.data: ((family, StackFile), ...), the process's defaults
TRAPPED = "vunet.ioctl"  # process.data: its netdevice ioctls come to umvu
AF_INET, AF_NETLINK = 2, 16
# what a network stack (vunetvdestack, vunetnull, vunetreal) serves: IPv4, IPv6,
# netlink and packet sockets (unix sockets and the rest stay the kernel's)
STACK_FAMILIES = frozenset((AF_INET, 10, AF_NETLINK, 17))  # (AF_INET6, AF_PACKET)
# the netdevice ioctls on a struct ifreq (netdevice(7)), those that change something,
# and SIOCGIFCONF: made in the process's stack whatever socket they are made on (as
# glibc's if_nametoindex makes them on a unix socket)
SIOCGIFCONF = 0x8912
IFREQ_IOCTLS = {0x8910, 0x8913, 0x8914, 0x8915, 0x8916, 0x8917, 0x8918, 0x8919, 0x891A,
                0x891B, 0x891C, 0x891D, 0x891E, 0x8921, 0x8922, 0x8923, 0x8924, 0x8927,
                0x8933, 0x8937, 0x8942, 0x8943, 0x8970, 0x8971}
SETTERS = {0x8914, 0x8916, 0x8918, 0x891A, 0x891C, 0x891E, 0x8922, 0x8923, 0x8924, 0x8937,
           0x8943, 0x8971}
NETDEV_RANGE = (0x8910, 0x8972)
SOCK_DEFAULT = 0  # msocket's type that makes the stack the caller's default
AF_UNSPEC = 0
SOCK_CLOEXEC = 0o2000000
O_CLOEXEC = 0o2000000
NR_SOCKET = 41
MAX_FAMILY = 45  # AF_MCTP, the last the kernel knows


class StackFile:
    """The service of a mounted stack: the special file at its path, and its stack."""

    def __init__(self, api, stack, fstype: str, mode: int = 0o666) -> None:
        self.api, self.stack, self.fstype = api, stack, fstype
        self.uid, self.gid = api.caller()[:2]  # (the mounter owns it)
        self.mode = mode
        self.made_ns = self.ctime_ns = time.time_ns()
        self.gone = False
        self.rdev_ino = id(self) & 0xFFFFFFFF

    # ------------------------------------------------------------ the special file
    def lstat(self, path):
        if path != b"/":
            raise OSError(errno.ENOTDIR, "a network stack is not a directory")
        return types.SimpleNamespace(
            st_mode=stat.S_IFSOCK | self.mode, st_ino=self.rdev_ino, st_dev=0x4E4554,
            st_nlink=1, st_uid=self.uid, st_gid=self.gid, st_rdev=0, st_size=0,
            st_blksize=4096, st_blocks=0, st_atime_ns=self.made_ns,
            st_mtime_ns=self.made_ns, st_ctime_ns=self.ctime_ns)

    def access(self, path, mode):
        self.lstat(path)
        if mode and not self._may(mode):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    def _may(self, mode: int) -> bool:
        """The caller's access to the stack file by its mode bits (root: always)."""
        return kr.permitted(self.lstat(b"/"), mode, kr.cred_of(self.api))

    def open(self, path, flags, mode):
        self.lstat(path)
        raise OSError(errno.ENXIO, "a network stack is not opened: use vustack or msocket")

    def chmod(self, path, mode):
        self.lstat(path)
        uid = self.api.caller()[0]
        if uid not in (0, self.uid):
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))
        self.mode = mode & 0o7777
        self.ctime_ns = time.time_ns()

    def chown(self, path, uid, gid):
        self.lstat(path)
        if self.api.caller()[0] != 0:
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))
        if uid != -1:
            self.uid = uid
        if gid != -1:
            self.gid = gid
        self.ctime_ns = time.time_ns()

    def utimens(self, path, atime_ns, mtime_ns):
        self.lstat(path)

    def getxattr(self, path, name):
        raise OSError(errno.ENODATA, os.strerror(errno.ENODATA))

    def listxattr(self, path):
        return []

    # ------------------------------------------------------------ sockets
    def socket_action(self, domain: int, type_: int, protocol: int, as_call: bool):
        """The answer to a socket() (as_call) or msocket() of this stack's."""
        if self.gone:
            return -errno.EAFNOSUPPORT
        if domain not in self.stack.families:
            return -errno.EAFNOSUPPORT
        host_fd = self.stack.socket(domain, type_ & ~SOCK_CLOEXEC, protocol)
        cloexec = O_CLOEXEC if type_ & SOCK_CLOEXEC else 0
        if host_fd is None:  # the host's own stack: the kernel makes it
            if as_call:
                return None
            return Native([domain, type_, protocol, 0, 0, 0], nr=NR_SOCKET)
        fds = [host_fd]
        return Native(grant=(fds.pop, cloexec, "must"))


class Hooks:
    """socket() and msocket(), claimed: a process's defaults decide."""

    def __init__(self, module) -> None:
        self.module = module
        self.api = module.api

    def syscall(self, t, sc, args):
        if sc.name == "ioctl":
            return self.ioctl(t, args)
        if sc.name == "socket":
            defaults = t.process.data.get(KEY)
            if not defaults:
                return PASS
            domain = s32(args[0])
            for family, sf in defaults:
                if family == domain:
                    return sf.socket_action(domain, s32(args[1]), s32(args[2]), True)
            return PASS
        return self.msocket(t, args[0], s32(args[1]), s32(args[2]), s32(args[3]))

    def msocket(self, t, guest_addr: int, domain: int, type_: int, protocol: int):
        if guest_addr == 0:  # the caller's default stack for domain
            if type_ == SOCK_DEFAULT:
                return -errno.EINVAL
            for family, sf in t.process.data.get(KEY, ()):
                if family == domain:
                    return sf.socket_action(domain, type_, protocol, False)
            return -errno.ENOENT
        try:
            guest_path = self.api.guest_read_str(guest_addr)
        except OSError as e:
            return -e.errno
        try:
            path, st = self.api.resolve(-100, guest_path, True)
        except OSError as e:
            return -e.errno
        if st is None:
            return -errno.ENOENT
        sf = self.module.stacks.get(path)
        if sf is None:
            return -errno.EOPNOTSUPP  # (no stack: VUOS's ENOTSUP)
        if not sf._may(2):
            return -errno.EACCES
        if type_ != SOCK_DEFAULT:
            return sf.socket_action(domain, type_, protocol, False)
        if domain == AF_UNSPEC:
            families = sf.stack.families
        elif 0 < domain <= MAX_FAMILY:
            families = (domain,)
        else:
            return -errno.EAFNOSUPPORT
        mine = dict(t.process.data.get(KEY, ()))
        for family in families:
            mine[family] = sf
        t.process.data[KEY] = tuple(sorted(mine.items(), key=lambda kv: kv[0]))
        if not t.process.data.get(TRAPPED) and (AF_NETLINK in mine or AF_INET in mine):
            if self.api.trap_in_process("ioctl", 1, *NETDEV_RANGE):
                t.process.data[TRAPPED] = True
        return 0

    def _netdev_stack(self, t):
        """The stack a process's netdevice ioctls are made in: its netlink default (as
        VUOS's), else its IPv4 one."""
        defaults = dict(t.process.data.get(KEY, ()))
        return defaults.get(AF_NETLINK) or defaults.get(AF_INET)

    def ioctl(self, t, args):
        """A netdevice ioctl of a process in a stack, on a socket not of the stack (a
        unix socket, a socket made before): made in the stack."""
        import fcntl
        req = args[1] & 0xFFFFFFFF
        if req not in IFREQ_IOCTLS and req != SIOCGIFCONF:
            return PASS
        sf = self._netdev_stack(t)
        if sf is None:
            return PASS
        try:
            target = os.readlink("/proc/%d/fd/%d" % (t.tid, s32(args[0])))
        except OSError:
            return PASS  # (the kernel says EBADF)
        if not target.startswith("socket:"):
            return PASS  # (ENOTTY, as the kernel's)
        if sf.gone:
            return -errno.ENODEV
        sock = sf.stack.netdev_socket()
        if sock is None:  # the host's own stack
            return PASS
        if req in SETTERS and self.api.caller()[0] not in (0, os.geteuid()):
            return -errno.EPERM  # (what umvu may do in its namespace, the caller may not)
        guest_addr = args[2]
        try:
            if req == SIOCGIFCONF:
                return self._ifconf(sock, guest_addr)
            buf = bytearray(self.api.guest_read(guest_addr, 40))
        except OSError as e:
            return -e.errno
        if sock is False:  # no network: no interface
            return -errno.ENODEV
        try:
            fcntl.ioctl(sock.fileno(), req, buf, True)
        except OSError as e:
            return -e.errno
        self.api.guest_write(guest_addr, bytes(buf))
        return 0

    def _ifconf(self, sock, guest_addr: int) -> int:
        import ctypes
        import fcntl
        import struct
        length, _, buf_addr = struct.unpack("<iiQ", self.api.guest_read(guest_addr, 16))
        if sock is False:
            self.api.guest_write(guest_addr, struct.pack("<i", 0))
            return 0
        room = max(0, length) if buf_addr else 0
        cbuf = ctypes.create_string_buffer(room) if room else None
        ifc = bytearray(struct.pack("<iiQ", room, 0, ctypes.addressof(cbuf) if cbuf else 0))
        try:
            fcntl.ioctl(sock.fileno(), SIOCGIFCONF, ifc, True)
        except OSError as e:
            return -e.errno
        got = struct.unpack_from("<i", ifc)[0]
        if buf_addr and cbuf is not None:
            self.api.guest_write(buf_addr, cbuf.raw[:got])
        self.api.guest_write(guest_addr, struct.pack("<i", got))
        return 0


class VuNet(Module):
    name = "vunet"
    description = "network stacks per process tree (vunetvdestack, vunetnull, vunetreal)"
    creates_target = True  # (the stack file need not exist)
    source_is_path = False  # (a VDE URL, a name)

    def __init__(self, api) -> None:
        super().__init__(api)
        self.stacks: dict[bytes, StackFile] = {}  # guest path -> mounted stack
        self.hooks = Hooks(self)
        # socket() as a notification: its arguments are registers, and a stack's socket
        # reaches the guest by ADDFD (a ptrace stop would hand it over a unix socket:
        # five injected calls)
        self.entries = api.claim_syscalls(self, ("socket",), self.hooks, notify=True) + \
            api.claim_syscalls(self, ("msocket",), self.hooks) + \
            api.claim_syscalls(self, ("ioctl",), self.hooks, local=True)

    @property
    def filesystems(self):
        here = os.path.join(os.path.dirname(os.path.dirname(__file__)), "submodules")
        return tuple(sorted(f[:-3] for f in os.listdir(here)
                            if f.startswith("vunet") and f.endswith(".py")))

    def accepts(self, fstype: str) -> bool:
        return fstype in self.filesystems

    def mount(self, source, target, fstype, flags, options):
        import importlib
        if target in self.stacks:
            raise OSError(errno.EBUSY, "%s is a network stack already"
                          % os.fsdecode(target))
        sub = importlib.import_module("umvu.submodules." + fstype)
        opts = parse_options(options, dict(getattr(sub, "OPTIONS", {}), ro=bool, rw=bool))
        opts.pop("ro", None)
        opts.pop("rw", None)
        stack = sub.Stack(self.api, source, opts)
        sf = StackFile(self.api, stack, fstype)
        self.stacks[target] = sf
        log.info("vunet: %s on %s (%s)", fstype, os.fsdecode(target),
                 os.fsdecode(source))
        return sf

    def umount(self, service, flags) -> None:
        for path, sf in list(self.stacks.items()):
            if sf is service:
                del self.stacks[path]
        service.gone = True
        service.stack.close()

    def cleanup(self) -> None:
        if self.stacks:
            raise OSError(errno.EBUSY, "network stacks are mounted")
        for e in self.entries:
            self.api.remove_entry(e)
