"""Calls that change the file system, made by umvu itself on what it checked.

A path call the kernel serves (its path outside every mount, or in a tree a module lets
the kernel serve) would read its path from the guest's memory a second time if it were
let run: a second thread of the guest that changes the buffer in between, or a rename
that swaps a symlink in, would make the call the core judged reach a tree a view
protects. So a call that changes something (its row says ``=writes``; an open when its
flags write, create or truncate) is made by umvu, from its own copy of the path, the
way the kernel walks it but with nothing left to chance:

- the directory of the last component is opened along the canonical path the resolver
  walked, with ``openat2(RESOLVE_NO_SYMLINKS)``: a symlink met there was not there when
  the resolver looked (the call is resolved again, ``Swapped``);
- the last component is acted on in that directory without following it (the resolver
  followed a last symlink already, when the call follows one): ``openat(O_NOFOLLOW)``,
  ``unlinkat``, ``renameat2``, ``fchmodat2(AT_SYMLINK_NOFOLLOW)``, ``fchownat``,
  ``utimensat``..., with pointer arguments (times, xattr values, a symlink's target)
  copied out of the guest once;
- with the guest's fs ids (in a session umvu runs as root) and its umask;
- an open's file reaches the guest by seccomp ADDFD or over the hand-off socket, never
  by the guest's own call.

A fifo opened for writing with no reader yet is a call that waits (``FifoWait``). What
umvu does not open for the guest (the open would not be the guest's: a tty, which the
opener may take as its controlling terminal, a device) is left to the guest's own call,
as before (docs/design.md says so).
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct

from umvu.core import syscalls
from umvu.core.abi import (AT_EMPTY_PATH, AT_REMOVEDIR, AT_SYMLINK_FOLLOW,
                           AT_SYMLINK_NOFOLLOW, O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY,
                           O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_PATH, O_TMPFILE, O_TRUNC)
from umvu.core.actions import Native
from umvu.core.tracer import raw_syscall
from umvu.core.waiting import drive, wait_readable

RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 0x02, 0x04, 0x08
# the open flags openat2 takes (it refuses others, where open ignores them), and those
# F_SETFL sets
OPEN_FLAGS_KNOWN = (O_ACCMODE | O_CREAT | O_EXCL | os.O_NOCTTY | O_TRUNC | os.O_APPEND |
                    O_NONBLOCK | os.O_DSYNC | fcntl.FASYNC | os.O_DIRECT | os.O_LARGEFILE |
                    O_DIRECTORY | O_NOFOLLOW | os.O_NOATIME | O_CLOEXEC | os.O_SYNC)
F_SETFL_KEPT = os.O_APPEND | fcntl.FASYNC | os.O_DIRECT | os.O_NOATIME
MEM_MAJOR = 1  # /dev/null, zero, full, random, urandom: the same whoever opens them
XATTR_SIZE_MAX, XATTR_NAME_MAX = 65536, 255
NR = {name: syscalls.number(name) for name in (
    "openat", "openat2", "mkdirat", "mknodat", "symlinkat", "unlinkat", "renameat2",
    "linkat", "fchmodat2", "fchownat", "utimensat", "truncate", "lsetxattr",
    "lremovexattr")}
TRIES = 8  # resolutions of one call a swapping guest may force before it gets ELOOP


class Swapped(Exception):
    """The host tree changed between the resolver's walk and the call: resolve again."""


def _check(ret: int) -> int:
    if ret < 0:
        raise OSError(-ret, os.strerror(-ret))
    return ret


def writes(sc, flags) -> bool:
    """Whether a call of row sc (an open: with these O_* flags) changes the file system."""
    if sc.writes:
        return True
    if flags is None:
        return False
    return (flags & (O_ACCMODE | O_CREAT | O_TRUNC)) != os.O_RDONLY or \
        flags & O_TMPFILE == O_TMPFILE


def split(host: bytes) -> tuple[bytes, bytes]:
    """A canonical host path as (its directory, its last component): "/" is ("/", ".")."""
    parent, _, last = host.rstrip(b"/").rpartition(b"/")
    return (parent or b"/", last) if last else (b"/", b".")


def is_fd_dir(parent: bytes) -> bool:
    """/proc/PID/fd or /proc/PID/task/TID/fd: its entries are magic links to reopen."""
    parts = parent.split(b"/")
    return parent.startswith(b"/proc/") and parts[-1] == b"fd" and (
        len(parts) == 4 and parts[2].isdigit() or
        len(parts) == 6 and parts[3] == b"task" and parts[2].isdigit() and parts[4].isdigit())


class FifoWait:
    """A fifo opened for writing with no reader yet (or, a module's fifo, for reading
    with no writer): the open waits in a thread of umvu's (signals blocked), the
    guest's call in the kernel (a call that waits, umvu.core.waiting), and the file is
    the guest's once the other side came. A signal that ends the wait makes the
    thread's open return (the other side for an instant) and the file is closed."""

    def __init__(self, pin: int, flags: int) -> None:
        self.pin, self.flags = pin, flags  # pin: O_PATH fd of the fifo

    async def opened(self) -> int:
        """The fd (or -errno) once the open in the thread returned."""
        import signal
        import threading
        again, cancelled, result = b"/proc/self/fd/%d" % self.pin, [], []
        ready_r, ready_w = os.pipe2(O_CLOEXEC)

        def blocking():
            try:
                # (O_NOFOLLOW would refuse the magic link: F_GETFL of this one file
                # shows none)
                fd = os.open(again, (self.flags | O_CLOEXEC) &
                             ~(O_CREAT | O_TRUNC | O_NOFOLLOW))
            except OSError as e:
                fd = -e.errno
            if cancelled and fd >= 0:
                os.close(fd)
                fd = -errno.EINTR
            result.append(fd)
            try:
                os.write(ready_w, b"x")
            except OSError:
                pass
            os.close(ready_w)
        # the thread takes no signal (SIGCHLD is the tracer's: a thread that took one
        # would hide a ptrace stop from umvu's loop)
        old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            threading.Thread(target=blocking, name="umvu-fifo-open", daemon=True).start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        try:
            await wait_readable(ready_r)  # (the core's wait: trio or not)
            return result[0]
        except BaseException:
            cancelled.append(True)
            other = os.O_WRONLY if self.flags & O_ACCMODE == os.O_RDONLY else os.O_RDONLY
            try:  # the other side for an instant: the thread's open returns
                os.close(os.open(again, other | O_NONBLOCK | O_CLOEXEC))
            except OSError:
                pass
            raise
        finally:
            os.close(ready_r)
            os.close(self.pin)  # (a thread still to open it finds nothing: ENOENT)


class HostCalls:
    """Part of VirtualFS: the host calls umvu makes for a guest (see the docstring)."""

    def host_dir(self, parent: bytes) -> int:
        """An O_PATH fd of the canonical directory parent, walked without a symlink."""
        how = struct.pack("<QQQ", O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                          RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
        fd = raw_syscall(NR["openat2"], -100, parent, how, len(how))
        if fd == -errno.ELOOP:
            raise Swapped()
        return _check(fd)

    def made_as(self, t, fn, *args):
        """fn(*args) with the guest's fs ids (a root session) and, as it creates, its
        umask."""
        old = os.umask(t.fs.umask)
        try:
            return self.hv.as_caller(fn, *args)
        finally:
            os.umask(old)

    def host_call(self, t, sc, args, hosts: list, follow: bool):
        """Make the call sc (args, the guest's registers) on hosts, canonical host paths
        each with whether the guest's ended with "/" (one, or two for rename and link):
        its result (an int, or a Native that grants an opened file), or None when the
        guest's own call is to make it."""
        fds = []
        try:
            places = []
            for host, slash in hosts:
                parent, last = split(host)
                fds.append(self.host_dir(parent))
                # "name/" of a call that makes, removes or renames: the kernel checks it
                # is a directory, and follows nothing
                if slash and (sc.entry or len(hosts) == 2) and last != b".":
                    last += b"/"
                places.append((fds[-1], last, parent))
            trailing = hosts[0][1]
            # what the call reads of the guest's memory, read now: with a dropped guest's
            # ids umvu could not (the guest is no longer dumpable)
            data = self._guest_data(t, sc, args)
            try:
                done = self.made_as(t, self._host_call, t, sc, args, places, follow,
                                    trailing, data)
                if isinstance(done, FifoWait):  # waited for with umvu's ids and umask
                    fd = _check(drive(done.opened()))
                    done = self.granted(fd, done.flags)
                return done
            finally:
                if sc.entry or len(hosts) == 2:  # a name changed (or may have)
                    self.tracer.steps_forget()
        except OSError as e:
            return -e.errno
        finally:
            for fd in fds:
                os.close(fd)

    def _guest_data(self, t, sc, args):
        """The call's pointer arguments as copies (a symlink's target, times, an xattr's
        name and value, an open_how)."""
        name = sc.name
        if name in ("symlink", "symlinkat"):
            return self.read_path(t, args.str)
        if name in ("utime", "utimes", "futimesat", "utimensat"):
            return self._host_times(t, name, args.ptr)
        if name in ("setxattr", "lsetxattr", "removexattr", "lremovexattr"):
            xname = self.tracer.peekstr(t.tid, args.str, XATTR_NAME_MAX + 2)
            if name.endswith("removexattr") or not args.size:
                return xname, b""
            if args.size > XATTR_SIZE_MAX:
                raise OSError(errno.E2BIG, "xattr value too large")
            return xname, self.tracer.peek(t.tid, args.buf_in, args.size)
        if sc.oflags is not None and sc.oflags[0] == "how":
            return struct.unpack("<QQQ", self.tracer.peek(t.tid, args[sc.oflags[1]], 24))
        return None

    def _host_call(self, t, sc, args, places, follow, trailing, data):
        name = sc.name
        dirfd, last, parent = places[0]
        if sc.oflags is not None:
            return self._host_open(t, sc, args, dirfd, last, parent, follow, trailing, data)
        if len(places) == 2:
            dirfd2, last2, _ = places[1]
            if name in ("link", "linkat"):
                flags = args.flags if name == "linkat" else 0
                if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
                    return -errno.EINVAL
                # the resolver followed a last symlink already where flags ask for it
                return raw_syscall(NR["linkat"], dirfd, last, dirfd2, last2, 0)
            flags = args.flags if name == "renameat2" else 0
            return raw_syscall(NR["renameat2"], dirfd, last, dirfd2, last2, flags)
        if name in ("mkdir", "mkdirat"):
            return raw_syscall(NR["mkdirat"], dirfd, last, args.mode)
        if name in ("mknod", "mknodat"):
            return raw_syscall(NR["mknodat"], dirfd, last, args.mode, args.uint)
        if name in ("symlink", "symlinkat"):
            return raw_syscall(NR["symlinkat"], data, dirfd, last)
        if name in ("unlink", "rmdir", "unlinkat"):
            flags = args.flags if name == "unlinkat" else AT_REMOVEDIR if name == "rmdir" \
                else 0
            return raw_syscall(NR["unlinkat"], dirfd, last, flags)
        if name in ("chmod", "fchmodat", "fchmodat2"):
            if name == "fchmodat2" and args.flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
                return -errno.EINVAL
            ret = raw_syscall(NR["fchmodat2"], dirfd, last, args.mode, AT_SYMLINK_NOFOLLOW)
            if ret == -errno.EOPNOTSUPP and follow:
                self._not_a_link(dirfd, last)
            if ret == -errno.ENOSYS:  # (a kernel before 6.6: on an fd of the file)
                fd = _check(raw_syscall(NR["openat"], dirfd, last,
                                        O_PATH | O_NOFOLLOW | O_CLOEXEC))
                try:
                    if stat.S_ISLNK(os.fstat(fd).st_mode):
                        if follow:
                            raise Swapped()
                        return -errno.EOPNOTSUPP
                    return raw_syscall(syscalls.number("chmod"), b"/proc/self/fd/%d" % fd,
                                       args.mode)
                finally:
                    os.close(fd)
            return ret
        if name in ("chown", "lchown", "fchownat"):
            if name == "fchownat" and args.flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
                return -errno.EINVAL
            return raw_syscall(NR["fchownat"], dirfd, last, args.uid & 0xFFFFFFFF,
                               args.gid & 0xFFFFFFFF, AT_SYMLINK_NOFOLLOW)
        if name in ("utime", "utimes", "futimesat", "utimensat"):
            if name == "utimensat" and args.flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
                return -errno.EINVAL
            times = data
            if follow:
                self._not_a_link(dirfd, last)
            return raw_syscall(NR["utimensat"], dirfd, last, times or 0, AT_SYMLINK_NOFOLLOW)
        if name == "truncate":
            fd = _check(raw_syscall(NR["openat"], dirfd, last,
                                    O_PATH | O_NOFOLLOW | O_CLOEXEC))
            try:
                if stat.S_ISLNK(os.fstat(fd).st_mode):
                    raise Swapped()
                return raw_syscall(NR["truncate"], b"/proc/self/fd/%d" % fd, args.off)
            finally:
                os.close(fd)
        if name in ("setxattr", "lsetxattr", "removexattr", "lremovexattr"):
            if follow:
                self._not_a_link(dirfd, last)
            where = b"/proc/self/fd/%d/%s" % (dirfd, last)
            xname, value = data
            if name.endswith("removexattr"):
                return raw_syscall(NR["lremovexattr"], where, xname)
            return raw_syscall(NR["lsetxattr"], where, xname, value, args.size, args.flags)
        return None  # (setxattrat, removexattrat: the guest's call, as checked)

    @staticmethod
    def _not_a_link(dirfd: int, last: bytes) -> None:
        """A call that follows was resolved to last, no symlink: it must still be none."""
        try:
            st = os.stat(last, dir_fd=dirfd, follow_symlinks=False)
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode):
            raise Swapped()

    def _host_times(self, t, name: str, guest_addr: int):
        """The guest's times as two struct timespec (None: now)."""
        if not guest_addr:
            return None
        if name == "utimensat":
            return self.tracer.peek(t.tid, guest_addr, 32)
        if name == "utime":  # struct utimbuf: two time_t
            a, m = struct.unpack("<qq", self.tracer.peek(t.tid, guest_addr, 16))
            return struct.pack("<qqqq", a, 0, m, 0)
        a, au, m, mu = struct.unpack("<qqqq", self.tracer.peek(t.tid, guest_addr, 32))
        if not (0 <= au < 1000000 and 0 <= mu < 1000000):
            raise OSError(errno.EINVAL, "bad timeval")
        return struct.pack("<qqqq", a, au * 1000, m, mu * 1000)

    def _host_open_at(self, dirfd, last, flags, mode, follow, trailing):
        """The open of last in dirfd, following nothing, its flags as the guest's (as
        csrc/hostwrites.c's open_at): what exists is looked at, then opened with openat2
        RESOLVE_NO_SYMLINKS, O_NONBLOCK and O_NOCTTY (what is swapped in meanwhile can
        neither be followed nor make umvu wait or take a tty) and checked to be what was
        looked at; O_NONBLOCK is then taken back unless the guest asked for it. What does
        not exist is made with O_EXCL."""
        try:
            st = os.stat(last, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            if trailing:
                return -(errno.EISDIR if flags & O_CREAT else errno.ENOENT)
            if not flags & O_CREAT:
                return _check(-errno.ENOENT)
            fd = raw_syscall(NR["openat"], dirfd, last, flags | O_EXCL | O_CLOEXEC, mode)
            if fd == -errno.EEXIST and not flags & O_EXCL:
                raise Swapped()  # made meanwhile
            return _check(fd)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFLNK:
            if follow:
                raise Swapped()  # the resolver followed it: it was no symlink then
            # O_NOFOLLOW or O_CREAT|O_EXCL: the kernel follows nothing either (ELOOP, EEXIST)
            return _check(raw_syscall(NR["openat"], dirfd, last, flags | O_CLOEXEC, mode))
        if kind in (stat.S_IFCHR, stat.S_IFBLK) and not (
                kind == stat.S_IFCHR and os.major(st.st_rdev) == MEM_MAJOR):
            return None  # a tty, a device: the guest's own open
        waits = kind == stat.S_IFIFO and not flags & O_NONBLOCK and \
            flags & O_ACCMODE == os.O_WRONLY
        if kind == stat.S_IFIFO and not flags & O_NONBLOCK and not waits and \
                flags & O_ACCMODE != os.O_RDWR:
            return None  # (a read-only open that truncates or creates a fifo)
        if flags & O_TMPFILE == O_TMPFILE:  # a new file in the directory st describes
            return self._reopen_pinned(dirfd, last, st, flags, mode)
        if flags & O_PATH:  # (the kernel's open keeps only these of an O_PATH's flags)
            how_flags = flags & (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) | O_CLOEXEC
        else:
            how_flags = flags & OPEN_FLAGS_KNOWN | O_NONBLOCK | os.O_NOCTTY | O_CLOEXEC
        how = struct.pack("<QQQ", how_flags, mode & 0o7777 if flags & O_CREAT else 0,
                          RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH)
        fd = raw_syscall(NR["openat2"], dirfd, last, how, len(how))
        if fd == -errno.ELOOP:
            raise Swapped()  # a symlink swapped in
        if fd == -errno.ENXIO and waits:
            return self._fifo_wait(dirfd, last, st, flags)
        if fd == -errno.EAGAIN and not flags & O_NONBLOCK:  # a lease to break: it waits
            return self._reopen_pinned(dirfd, last, st, flags, mode)
        fd = _check(fd)
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                raise Swapped()
            if not flags & (O_NONBLOCK | O_PATH):
                fcntl.fcntl(fd, fcntl.F_SETFL, flags & F_SETFL_KEPT)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _pin(dirfd, last, st):
        """An O_PATH fd of last, checked to be the file st describes."""
        pin = _check(raw_syscall(NR["openat"], dirfd, last, O_PATH | O_NOFOLLOW | O_CLOEXEC))
        now = os.fstat(pin)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            os.close(pin)
            raise Swapped()
        return pin

    def _fifo_wait(self, dirfd, last, st, flags):
        """A fifo for writing with no reader yet: a call that waits, on a pin of it."""
        return FifoWait(self._pin(dirfd, last, st), flags)

    def _reopen_pinned(self, dirfd, last, st, flags, mode):
        """The file st describes opened through a pin of it, as the guest's open would
        (waiting, for a lease held on it; O_TMPFILE: a new file in that directory;
        O_NOFOLLOW would refuse the magic link)."""
        pin = self._pin(dirfd, last, st)
        try:
            return _check(raw_syscall(NR["openat"], -100, b"/proc/self/fd/%d" % pin,
                                      (flags | O_CLOEXEC) & ~O_NOFOLLOW, mode))
        finally:
            os.close(pin)

    def _host_open(self, t, sc, args, dirfd, last, parent, follow, trailing, data):
        if sc.oflags[0] == "how":
            flags, mode, resolve = data
            if resolve:
                return None  # (RESOLVE_BENEATH...: the kernel's walk of the guest's call)
        else:
            flags, mode = self.open_flags(sc, args), args.mode
        if is_fd_dir(parent):  # /proc/PID/fd/N: the kernel reopens the guest's file
            fd = _check(raw_syscall(NR["openat"], dirfd, last, flags | O_CLOEXEC, mode))
        else:
            fd = self._host_open_at(dirfd, last, flags, mode, follow, trailing)
            if fd is None:
                return None
        if isinstance(fd, FifoWait):
            return fd
        if fd < 0:
            return fd
        return self.granted(fd, flags)

    def open_fifo_for(self, host: bytes, flags: int):
        """A module's fifo (a private host fifo umvu made, its mode umvu's: the module's
        rules were applied) opened by umvu for the guest, whose ids may not reach it,
        and handed over; an open that waits for the other side is a call that waits."""
        flags &= ~(O_CREAT | O_EXCL | O_TRUNC)
        acc = flags & O_ACCMODE
        if flags & O_NONBLOCK or acc == os.O_RDWR:
            return self.granted(_check(raw_syscall(NR["openat"], -100, host,
                                                   flags | O_NOFOLLOW | O_CLOEXEC, 0)),
                                flags)
        if acc == os.O_WRONLY:  # at once when a reader is there
            fd = raw_syscall(NR["openat"], -100, host,
                             flags | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0)
            if fd != -errno.ENXIO:
                fd = _check(fd)
                os.set_blocking(fd, True)
                return self.granted(fd, flags)
        pin = _check(raw_syscall(NR["openat"], -100, host, O_PATH | O_NOFOLLOW | O_CLOEXEC))
        return self.granted(_check(drive(FifoWait(pin, flags).opened())), flags)

    @staticmethod
    def granted(fd: int, flags: int):
        """The answer that gives the guest umvu's open file fd (never the guest's call)."""
        opened = [fd]

        def opener():
            return opened.pop()
        return Native(grant=(opener, flags & O_CLOEXEC, "must"))
