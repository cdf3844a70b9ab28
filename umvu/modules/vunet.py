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

from umvu.api import PASS, Module, Native, log, parse_options, s32

KEY = "vunet"  # process.data: ((family, StackFile), ...), the process's defaults
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
        uid, gid, _, _ = self.api.caller()
        if uid == 0:
            return True
        if uid == self.uid:
            bits = self.mode >> 6
        elif gid == self.gid or self.gid in self.api.caller_groups():
            bits = self.mode >> 3
        else:
            bits = self.mode
        return (bits & mode & 7) == (mode & 7)

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
            api.claim_syscalls(self, ("msocket",), self.hooks)

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
