"""Unix socket paths in the guest's view: bind(2) and connect(2) of an AF_UNIX address.

The kernel resolves a socket's path itself, on the host: a path inside a module's mount
would be made (bind) or looked for (connect) in the host directory under the mount point,
and a relative one from the kernel's cwd, which is not the guest's once its cwd is
virtual. So the address is resolved as any path is:
- outside every mount: the kernel's, rewritten to the canonical path when the kernel
  would not find it (a virtual cwd, a crossed mount);
- in a tree the kernel may serve (``native_host``): rewritten to that host path;
- in a module's file system: bind makes a socket node there (``mknod`` S_IFSOCK, the
  umask applied) and binds the host socket that stands for it (``special_path``, a
  private path of the session); connect needs write access to the node (``access``) and
  connects to the host socket standing for it (ECONNREFUSED when none listens).
"""
from __future__ import annotations

import errno
import os
import stat
import struct

from umvu.api import capability, implements
from umvu.core.actions import Native
from umvu.core.paths import AT_FDCWD

AF_UNIX = 1  # (socket's, not imported: its import costs umvu's start 10 ms)
SUN_PATH_MAX = 108  # sizeof(sockaddr_un.sun_path)


class SocketPaths:
    """Part of VirtualFS: the "sockaddr" choice (bind, connect)."""

    def on_sockaddr(self, t, sc, args):
        if args.fd in t.files.fds:
            return self.on_fd(t, sc, args)  # a virtual socket: its module's
        size = args.size
        if args.ptr == 0 or size <= 2:
            return None
        try:
            raw = self.tracer.peek(t.tid, args.ptr, min(size, 2 + SUN_PATH_MAX))
        except OSError:
            return None  # (EFAULT: the kernel says so)
        if struct.unpack_from("<H", raw)[0] != AF_UNIX or raw[2:3] in (b"", b"\0"):
            return None  # another family, or an abstract address
        guest_path = raw[2:].split(b"\0", 1)[0]
        binding = sc.name == "bind"
        try:
            r = self.resolver.resolve(self.base_dir(t, AT_FDCWD), guest_path,
                                      follow=not binding, entry_op=binding)
        except OSError as e:
            return -e.errno
        if r.entry is None:
            if r.crossed or (not t.fs.kernel_cwd and not guest_path.startswith(b"/")):
                return self._unix_at(t, args, r.path)
            return None
        native = self.native_path(r)
        if native is not None:
            return self._unix_at(t, args, native)
        svc = r.entry.service
        if not binding:
            if not r.exists:
                return -errno.ENOENT
            if not stat.S_ISSOCK(r.st.st_mode):
                return -errno.ECONNREFUSED
            if implements(svc, "access"):
                self.call(svc, "access", r.rel, os.W_OK)
            host = self._standing_for(svc, r.rel, r.st)
            if not os.path.lexists(host):
                return -errno.ECONNREFUSED  # (nobody listens: a node from an earlier run)
            return self._unix_at(t, args, host)
        if r.exists:
            return -errno.EADDRINUSE
        mode = stat.S_IFSOCK | (0o777 & ~t.fs.umask)
        self.call(svc, "mknod", r.rel, mode, 0)
        try:
            host = self._standing_for(svc, r.rel, self.call(svc, "lstat", r.rel))
            if os.path.lexists(host):
                os.unlink(host)  # (a socket of an inode number used before)
            new = self._unix_at(t, args, host)
        except BaseException:
            self.call(svc, "unlink", r.rel)
            raise
        if isinstance(new, int):
            self.call(svc, "unlink", r.rel)
            return new
        made = new.on_exit

        def bound(ret):
            if made is not None:
                made(ret)
            if ret < 0:  # the kernel refused: no node is left behind
                self.call(svc, "unlink", r.rel)
        return Native(new.args, bound)

    def _standing_for(self, svc, rel, st) -> bytes:
        special = capability(svc, "special_path")
        if special is None:
            raise OSError(errno.EOPNOTSUPP, "no sockets in this file system")
        return self.call(svc, "special_path", rel, st)

    def _unix_at(self, t, args, host: bytes):
        """The call with its address naming host: where that is 108 bytes or more, a
        short alias of host's directory and its last name (ENAMETOOLONG if even that
        is too long), the alias dropped once the call is made."""
        alias = None
        if len(host) >= SUN_PATH_MAX:
            parent, _, name = host.rpartition(b"/")
            if len(name) > SUN_PATH_MAX - 48:  # ("/tmp/umvu-at-XXXXXXXX/" + 16 + "/")
                return -errno.ENAMETOOLONG
            alias = self.hv.alias_of(parent or b"/")
            host = alias + b"/" + name
            if len(host) >= SUN_PATH_MAX:
                self.hv.drop_alias(alias)
                return -errno.ENAMETOOLONG
        addr = struct.pack("<H", AF_UNIX) + host + b"\0"
        guest_addr = self.hv.scratch(t)
        self.tracer.poke(t.tid, guest_addr, addr)
        if alias is None:
            return Native(args.changed(ptr=guest_addr, size=len(addr)))

        def made(ret):
            self.hv.drop_alias(alias)
        return Native(args.changed(ptr=guest_addr, size=len(addr)), made)
