"""fuse: unmodified FUSE daemons inside umvu, on a virtual /dev/fuse (VUOS's vudevfuse).

``vu_insmod fuse`` makes /dev/fuse, in the session's view, a character device that
speaks the kernel's FUSE protocol (umvu.modules._fusewire). A FUSE program (libfuse 2
or 3, pyfuse3, anything that opens /dev/fuse) run inside the session opens it and calls
mount(2) with type ``fuse``, ``fuse.NAME`` or ``fuseblk`` and the options libfuse gives
(``fd=N,rootmode=M,user_id=U,group_id=G`` and ``default_permissions``, ``allow_other``,
``max_read=``, ``blksize=``); umvu serves that mount(2) for any user, as it serves
vumount, so libfuse's own direct mount works without root, fusermount or kernel FUSE.

The daemon is a guest like any other: its reads of /dev/fuse wait in umvu until a
client's call makes a request (the client's call waits until the daemon's reply), its
own file accesses go through the session's view. The mount is served by vufuse's
FuseService (path walk, attribute and entry caches by the daemon's timeouts, open
files, and the kernel's permission rules when the daemon asks ``default_permissions``).

When the last /dev/fuse fd of a mounted connection closes (the daemon exited or was
killed), every call on the mount answers ENOTCONN until it is unmounted — or it is
unmounted at once when fusermount made it with ``auto_unmount`` (libfuse's option,
which only fusermount implements: it stays to unmount when the daemon is gone; inside
the session its own unmount cannot run, so umvu does it). Unmounting
(umount, fusermount -u, vuumount) makes the daemon's reads answer ENODEV: libfuse then
calls the file system's destroy and the daemon exits, as on the kernel.
"""
from __future__ import annotations

import errno
import os
import stat
import struct
import time
import types

from umvu.api import log, Module
from umvu.modules import _fusewire as wire
from umvu.modules._fuseops import WireOps
from umvu.modules.vufuse import FuseService

DEV_FUSE = b"/dev/fuse"
FUSE_RDEV = os.makedev(10, 229)
FUSE_DEV_IOC_CLONE = 0x8004E500  # _IOR(229, 0, uint32_t)
KERNEL_OPTIONS = {"fd", "rootmode", "user_id", "group_id", "default_permissions",
                  "allow_other", "max_read", "blksize", "subtype", "source"}
MS_RDONLY = 1


class DevHandle:
    """An open file of /dev/fuse: its connection (FUSE_DEV_IOC_CLONE shares one)."""
    __slots__ = ("conn", "flags")

    def __init__(self, conn, flags: int) -> None:
        self.conn, self.flags = conn, flags


class DevFuse:
    """The /dev/fuse device of the session."""

    def __init__(self, api) -> None:
        self.api = api
        self.made_ns = time.time_ns()

    def lstat(self, path):
        if path != b"/":
            raise OSError(errno.ENOTDIR, "/dev/fuse is not a directory")
        return types.SimpleNamespace(
            st_mode=stat.S_IFCHR | 0o666, st_ino=229, st_dev=5, st_nlink=1, st_uid=0,
            st_gid=0, st_rdev=FUSE_RDEV, st_size=0, st_blksize=4096, st_blocks=0,
            st_atime_ns=self.made_ns, st_mtime_ns=self.made_ns, st_ctime_ns=self.made_ns)

    def access(self, path, mode):
        self.lstat(path)

    def open(self, path, flags, mode):
        self.lstat(path)
        conn = wire.Connection(self.api)
        conn.files += 1
        return DevHandle(conn, flags)

    def fstat(self, h):
        return self.lstat(b"/")

    def close(self, h):
        conn = h.conn
        conn.files -= 1
        if conn.files == 0:
            if conn.mounted and not conn.unmounted and not conn.dead:
                conn.dead = True  # the daemon is gone: the mount answers ENOTCONN
                log.info("umvu: fuse: the daemon of %s closed /dev/fuse", conn.where)
                conn.abort(errno.ENOTCONN)
                if conn.service is not None and conn.auto_unmount:
                    self.api.remove_mount(conn.service)  # (fusermount's auto_unmount)
            conn.close()

    def placeholder(self, h):
        """The guest's fd is a socket whose readiness is the connection's: readable
        while a request waits, POLLERR once unmounted (libfuse polls for that)."""
        return h.conn.ready_fd()

    async def read(self, h, size):
        conn = h.conn
        while True:
            message = conn.read_request(size)
            if message is not None:
                return message
            if h.flags & os.O_NONBLOCK:
                raise OSError(errno.EAGAIN, "no FUSE request yet")
            await conn.wait_request()

    def write(self, h, data):
        return h.conn.write_reply(bytes(data))

    def ioctl(self, h, req, guest_addr):
        if req != FUSE_DEV_IOC_CLONE:
            raise OSError(errno.ENOTTY, "no such ioctl on /dev/fuse")
        old_fd = struct.unpack("<I", self.api.guest_read(guest_addr, 4))[0]
        old = self.api.fd_handle(old_fd, self)
        if old is None or not old.conn.mounted:
            raise OSError(errno.EINVAL, "fd %d is no mounted /dev/fuse" % old_fd)
        if h.conn is not old.conn:
            fresh = h.conn
            fresh.files -= 1
            if fresh.files == 0:
                fresh.close()  # (never mounted: its sockets go)
            h.conn = old.conn
            h.conn.files += 1
        return 0

    # a device node: no xattrs, its owner and mode stay
    def getxattr(self, path, name):
        raise OSError(errno.ENODATA, "no such attribute")

    def listxattr(self, path):
        return []

    def chmod(self, path, mode):
        raise OSError(errno.EPERM, "the mode of /dev/fuse is fixed")

    def chown(self, path, uid, gid):
        raise OSError(errno.EPERM, "the owner of /dev/fuse is fixed")

    def utimens(self, path, atime_ns, mtime_ns):
        raise OSError(errno.EPERM, "the times of /dev/fuse are fixed")


class WireService(FuseService):
    """A mount served by a guest daemon (vufuse's service over WireOps)."""
    pollable = True  # (a FUSE file has a poll: epoll may watch it)

    def __init__(self, ops, api, dev, readonly, default_permissions, allow_other,
                 user_id, group_id):
        super().__init__(ops, api, dev, readonly, default_permissions, timeout=1e9)
        self._generation: dict = {}  # inode -> writes through this mount (read-ahead)
        self.polled: dict = {}  # kh -> the WireHandle of an open file with a Readiness
        self.allow_other = allow_other
        self.user_id, self.group_id = user_id, group_id

    def _allowed(self):
        """Without allow_other only the mounter's uid and gid reach the mount, root
        included (the kernel's fuse_allow_current_process)."""
        if not self.allow_other:
            uid, gid = self.api.caller()[:2]
            if uid != self.user_id or gid != self.group_id:
                raise OSError(errno.EACCES, "permission denied")

    def lstat(self, path):
        self._allowed()
        return super().lstat(path)

    def walk_lstat(self, path):
        self._allowed()
        return super().walk_lstat(path)

    def statfs(self, path):
        self._allowed()
        return super().statfs(path)

    def creating(self, parent, mode, ctx):
        return mode  # the daemon makes the entry with the caller's ids, as on the kernel

    # ------------------------------------------------------------ read-ahead
    # As the kernel's page cache reads ahead: a small read asks the daemon for max_read
    # bytes, and the reads after it that fall inside are answered from them, until the
    # file is written through this mount (not for direct_io files).
    def _changed(self, ino) -> None:
        self._generation[ino] = self._generation.get(ino, 0) + 1

    def pread(self, h, size, offset):
        w = h.fh
        if h.direct:
            data = super().pread(h, size, offset)
            self._repoll(h)
            return data
        gen = self._generation.get(h.inode, 0)
        a = w.ahead
        if a is not None and a[0] == gen:
            start, data = a[1], a[2]
            end = start + len(data)
            if start <= offset and (offset + size <= end or
                                    (offset <= end and len(data) < self.conn.max_read)):
                return data[offset - start:offset - start + size]  # (short: the end)
        want = max(size, self.conn.max_read)
        data = super().pread(h, want, offset)
        self._repoll(h)
        w.ahead = (gen, offset, data) if len(data) > size else None
        return data[:size]

    def pwrite(self, h, data, offset):
        self._changed(h.inode)
        n = super().pwrite(h, data, offset)
        self._repoll(h)
        return n

    def copy_file_range(self, h_in, off_in, h_out, off_out, length):
        """copy_file_range(2) between two open files of this mount: one
        FUSE_COPY_FILE_RANGE (ENOSYS: the core copies through reads and writes, as the
        kernel does)."""
        self._rofs()
        self._changed(h_out.inode)
        n = self.call("copy_file_range", h_in.fh, off_in, h_out.fh, off_out, length, 0)
        if n:
            self._kill_privs(h_out.inode, self.ctx(), h_out.fh)
        self._repoll(h_in)
        self._repoll(h_out)
        return n

    # ------------------------------------------------------------ poll
    # The kernel asks the daemon (POLL) each time a client polls a file, and again
    # when the daemon notifies (NOTIFY_POLL). A client's poll, select and epoll run
    # natively here, on the guest's fd: so umvu asks when the file is opened, after
    # every read or write of it and when the daemon notifies, and shows the answer
    # on that fd (a Readiness). A daemon with no poll (ENOSYS) is never asked again;
    # its files are always ready, the kernel's DEFAULT_POLLMASK.
    def _opened(self, h):
        h = super()._opened(h)
        if not h.is_dir and wire.POLL not in self.conn.no:
            w = h.fh
            w.kh = self.conn._next_unique()  # (one per open file, as the kernel's ff->kh)
            try:
                revents = self.call("poll", w)
            except OSError:
                revents = None  # (ENOSYS: no poll; an error: the kernel's POLLERR)
            if revents is not None:
                w.readiness = wire.Readiness()
                w.readiness.set(revents)
                self.polled[w.kh] = w
        return h

    def _repoll(self, h) -> None:
        w = h.fh
        if w.readiness is not None and wire.POLL not in self.conn.no:
            try:
                revents = self.call("poll", w)
            except OSError:
                return
            w.readiness.set(revents)

    def notify_poll(self, kh: int) -> None:
        """The daemon's NOTIFY_POLL: its file's readiness is asked again."""
        w = self.polled.get(kh)
        if w is not None and w.readiness is not None:
            self.ops.poll_again(w, w.readiness.set)

    def placeholder(self, h):
        w = h.fh
        return w.readiness.fd() if w.readiness is not None else None

    def plain_content(self, h):
        return super().plain_content(h) and h.fh.readiness is None

    def close(self, h):
        try:
            super().close(h)
        finally:
            w = h.fh
            if w.readiness is not None:
                self.polled.pop(w.kh, None)
                w.readiness.close()
                w.readiness = None

    def fallocate(self, h, mode, offset, length):
        self._rofs()
        self._changed(h.inode)
        self.call("fallocate", h.fh, mode, offset, length)

    def seek_data(self, h, offset, whence):
        return self.call("lseek", h.fh, offset, whence)

    def _setattr(self, ino, fh=None, **values):
        self._changed(ino)
        return super()._setattr(ino, fh=fh, **values)


def _fusermount_auto_unmount(pid: int) -> bool:
    """The mount(2) is fusermount's, asked for with -o auto_unmount (libfuse passes it
    to fusermount only; the kernel never sees it)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    if not argv or os.path.basename(argv[0]) not in (b"fusermount", b"fusermount3"):
        return False
    for i, arg in enumerate(argv[:-1]):
        if arg == b"-o" and b"auto_unmount" in argv[i + 1].split(b","):
            return True
    return any(a.startswith(b"-o") and b"auto_unmount" in a[2:].split(b",") for a in argv)


def parse_kernel_options(options: str) -> dict:
    """The kernel FUSE mount data: EINVAL for what the kernel does not take."""
    opts = {}
    for item in filter(None, options.split(",")):
        key, eq, value = item.partition("=")
        if key in ("ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec",
                   "noatime", "atime", "relatime", "sync", "async", "dirsync"):
            opts[key] = True
            continue
        if key not in KERNEL_OPTIONS:
            raise OSError(errno.EINVAL, "unknown FUSE mount option %r" % key)
        opts[key] = value if eq else True
    for need in ("fd", "rootmode", "user_id", "group_id"):
        if need not in opts:
            raise OSError(errno.EINVAL, "a FUSE mount needs %s=" % need)
    try:
        opts["fd"] = int(opts["fd"])
        opts["rootmode"] = int(opts["rootmode"], 8)
        opts["user_id"] = int(opts["user_id"])
        opts["group_id"] = int(opts["group_id"])
        if "max_read" in opts:
            opts["max_read"] = int(opts["max_read"])
    except (TypeError, ValueError):
        raise OSError(errno.EINVAL, "bad FUSE mount option value") from None
    return opts


class Fuse(Module):
    name = "fuse"
    description = "FUSE daemons inside the session, on a virtual /dev/fuse"
    filesystems = ("fuse", "fuseblk")
    source_is_path = False  # (libfuse's fsname: /proc/mounts shows it as given)

    def __init__(self, api) -> None:
        super().__init__(api)
        self.dev = DevFuse(api)
        api.add_path(self, DEV_FUSE, self.dev, source=b"none", fstype="")
        self.mounts = 0
        self.services: list = []

    def accepts(self, fstype: str) -> bool:
        return fstype in ("fuse", "fuseblk") or fstype.startswith(("fuse.", "fuseblk."))

    def mount(self, source, target, fstype, flags, options):
        opts = parse_kernel_options(options)
        h = self.api.fd_handle(opts["fd"], self.dev)
        if h is None:
            raise OSError(errno.EINVAL, "fd=%d is no /dev/fuse of the caller" % opts["fd"])
        conn = h.conn
        if conn.mounted:
            raise OSError(errno.EINVAL, "this /dev/fuse is mounted already")
        if not stat.S_ISDIR(opts["rootmode"]) and not stat.S_ISREG(opts["rootmode"]):
            raise OSError(errno.EINVAL, "bad rootmode")
        if "max_read" in opts and opts["max_read"] > 0:
            conn.max_read = min(conn.max_read, max(4096, opts["max_read"]))
        conn.mounted = True
        conn.where = os.fsdecode(target)
        conn.auto_unmount = _fusermount_auto_unmount(self.api.caller()[2])
        conn.send_init()
        self.mounts += 1
        readonly = bool(flags & MS_RDONLY or opts.get("ro"))
        service = WireService(WireOps(conn), self.api, os.makedev(0, 0x180 + self.mounts),
                              readonly, bool(opts.get("default_permissions")),
                              bool(opts.get("allow_other")), opts["user_id"],
                              opts["group_id"])
        service.conn = conn
        conn.service = service
        shown = [name for bit, name in ((2, "nosuid"), (4, "nodev"), (8, "noexec"),
                                        (16, "sync")) if flags & bit]
        shown.append("noatime" if flags & 1024 else "relatime")
        shown += ["user_id=%d" % opts["user_id"], "group_id=%d" % opts["group_id"]]
        shown += [w for w in ("default_permissions", "allow_other") if opts.get(w)]
        if "max_read" in opts:
            shown.append("max_read=%d" % opts["max_read"])
        if fstype.startswith("fuseblk") and "blksize" in opts:
            shown.append("blksize=%s" % opts["blksize"])
        service.shown_options = ",".join(shown)
        conn.on_notify = lambda code, body: self._notified(service, code, body)
        self.services.append(service)
        return service

    @staticmethod
    def _notified(service, code, body) -> None:
        """The daemon's notifications: what they invalidate is dropped from the caches;
        a NOTIFY_POLL has the file's readiness asked again."""
        if code == wire.NOTIFY_POLL:
            if len(body) >= 8:
                service.notify_poll(struct.unpack_from("<Q", body)[0])
            return
        service._attr_cache.clear()
        service._searched.clear()
        if code in (wire.NOTIFY_INVAL_ENTRY, wire.NOTIFY_DELETE) and len(body) >= 16:
            parent = struct.unpack_from("<Q", body)[0]
            namelen = struct.unpack_from("<I", body, 8 if code == wire.NOTIFY_INVAL_ENTRY
                                         else 16)[0]
            name = body[(16 if code == wire.NOTIFY_INVAL_ENTRY else 24):][:namelen]
            for path, ino in list(service.inodes.items()):
                if ino == parent:
                    service.forget_path(path.rstrip(b"/") + b"/" + name)

    def umount(self, service, flags) -> None:
        if service in self.services:
            self.services.remove(service)
        service.forget_path(b"/")
        self._release(service.conn)

    @staticmethod
    def _release(conn) -> None:
        if not conn.unmounted:
            conn.unmounted = True  # the daemon's reads answer ENODEV: it exits
            conn.abort(errno.ECONNABORTED)

    def command_ended(self) -> None:
        """The session's command is over: its daemons are let go (their reads answer
        ENODEV, libfuse calls the file system's destroy and exits), so the session
        ends with every image written back."""
        for service in self.services:
            service.forget_path(b"/")
            self._release(service.conn)

    def cleanup(self) -> None:
        if self.services:
            raise OSError(errno.EBUSY, "FUSE file systems are mounted")
