"""The debug trace (-d s, -d S, vudebug s): strace's lines for the calls umvu handles.

A call is formatted in two steps, as strace does: at its entry what the call reads
(paths, strings, flags, structs given to it, execve's argv), at its exit what it wrote
(read's buffer, stat's struct, wait4's status) and its result. Each line ends with who
answered it: ``[kernel]``, ``[umvu]`` (the core itself: virtual calls, a refusal) or
the module and mount (``[vufuse /mnt]``). Signal deliveries are ``--- SIGCHLD {...} ---``
lines and a process's end ``+++ exited with N +++``.

python-ptrace (Debian's python3-ptrace) gives the argument names and types of the calls
decoded here by no rule of our own (its SYSCALL_PROTOTYPES), its flag tables and signal
names; the rest (strace's quoting, structs, the calls strace decodes specially) is ours.
"""
from __future__ import annotations

import errno
import os
import struct

from umvu.core.abi import s32

STRLEN = 32  # strace's -s: bytes of a buffer shown
MAX_ARGV = 64  # strings of an argv shown

try:  # (python3-ptrace: the argument table of every call)
    from ptrace.syscall import SYSCALL_PROTOTYPES
    from ptrace.syscall.linux_constants import RLIMIT_RESOURCE
    from ptrace.syscall.posix_arg import MMAP_PROT_BITMASK
    from ptrace.syscall.socketcall_constants import SOCKET_FAMILY
except ImportError:  # (without it: the calls decoded here by name, the rest in hex)
    SYSCALL_PROTOTYPES = {}
    RLIMIT_RESOURCE = {3: "RLIMIT_STACK", 7: "RLIMIT_NOFILE"}
    MMAP_PROT_BITMASK = ((1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"))
    SOCKET_FAMILY = {1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK"}

SIGNALS = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
           7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV",
           12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT",
           17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN",
           22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM",
           27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS"}


def signame(sig: int) -> str:
    if sig in SIGNALS:
        return SIGNALS[sig]
    if sig == 32:
        return "SIGRT_0"
    if sig == 33:
        return "SIGRT_1"
    if 34 <= sig <= 64:
        return "SIGRTMIN" if sig == 34 else "SIGRT_%d" % (sig - 32)
    return str(sig)


# strace's order and names (O_ACCMODE first, then by bit)
OPEN_FLAGS = [(0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"),
              (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"),
              (0o4010000, "O_SYNC"), (0o10000, "O_DSYNC"), (0o20000, "FASYNC"),
              (0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"), (0o400000, "O_NOFOLLOW"),
              (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
              (0o20200000, "O_TMPFILE"), (0o200000, "O_DIRECTORY")]
MAP_FLAGS = [(0x01, "MAP_SHARED"), (0x02, "MAP_PRIVATE"), (0x03, "MAP_SHARED_VALIDATE"),
             (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"),
             (0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"),
             (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"),
             (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"),
             (0x80000, "MAP_SYNC"), (0x100000, "MAP_FIXED_NOREPLACE")]
AT_FLAGS = [(0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"),
            (0x400, "AT_SYMLINK_FOLLOW"), (0x800, "AT_NO_AUTOMOUNT"),
            (0x1000, "AT_EMPTY_PATH"), (0x2000, "AT_STATX_FORCE_SYNC"),
            (0x4000, "AT_STATX_DONT_SYNC"), (0x8000, "AT_RECURSIVE")]
CLONE_FLAGS = [(0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"),
               (0x800, "CLONE_SIGHAND"), (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"),
               (0x4000, "CLONE_VFORK"), (0x8000, "CLONE_PARENT"), (0x10000, "CLONE_THREAD"),
               (0x20000, "CLONE_NEWNS"), (0x40000, "CLONE_SYSVSEM"),
               (0x80000, "CLONE_SETTLS"), (0x100000, "CLONE_PARENT_SETTID"),
               (0x200000, "CLONE_CHILD_CLEARTID"), (0x400000, "CLONE_DETACHED"),
               (0x800000, "CLONE_UNTRACED"), (0x1000000, "CLONE_CHILD_SETTID"),
               (0x2000000, "CLONE_NEWCGROUP"), (0x4000000, "CLONE_NEWUTS"),
               (0x8000000, "CLONE_NEWIPC"), (0x10000000, "CLONE_NEWUSER"),
               (0x20000000, "CLONE_NEWPID"), (0x40000000, "CLONE_NEWNET"),
               (0x80000000, "CLONE_IO")]
SA_FLAGS = [(0x1, "SA_NOCLDSTOP"), (0x2, "SA_NOCLDWAIT"), (0x4, "SA_SIGINFO"),
            (0x04000000, "SA_RESTORER"), (0x08000000, "SA_ONSTACK"),
            (0x10000000, "SA_RESTART"), (0x40000000, "SA_NODEFER"),
            (0x80000000, "SA_RESETHAND")]
WAIT_FLAGS = [(1, "WNOHANG"), (2, "WUNTRACED"), (4, "WEXITED"), (8, "WCONTINUED"),
              (0x01000000, "WNOWAIT"), (0x20000000, "__WNOTHREAD"), (0x40000000, "__WALL"),
              (0x80000000, "__WCLONE")]
SOCK_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM",
              5: "SOCK_SEQPACKET", 10: "SOCK_PACKET"}
IOCTLS = {0x5401: "TCGETS", 0x5402: "TCSETS", 0x5403: "TCSETSW", 0x5404: "TCSETSF",
          0x540B: "TCFLSH", 0x540E: "TIOCSCTTY", 0x540F: "TIOCGPGRP", 0x5410: "TIOCSPGRP",
          0x5413: "TIOCGWINSZ", 0x5414: "TIOCSWINSZ", 0x541B: "FIONREAD", 0x5421: "FIONBIO",
          0x5422: "TIOCNOTTY", 0x5429: "TIOCGSID", 0x5450: "FIONCLEX", 0x5451: "FIOCLEX",
          0x5452: "FIOASYNC", 0x80045430: "TIOCGPTN", 0x40045431: "TIOCSPTLCK",
          0x80081272: "BLKGETSIZE64", 0x1260: "BLKGETSIZE", 0x1268: "BLKSSZGET",
          0x127B: "BLKPBSZGET", 0x125F: "BLKRRPART", 0x8004E500: "FUSE_DEV_IOC_CLONE",
          0x5405: "TCGETA", 0x5406: "TCSETA", 0x8933: "SIOCGIFINDEX", 0x8912: "SIOCGIFCONF",
          0x8913: "SIOCGIFFLAGS", 0x8914: "SIOCSIFFLAGS", 0x4020940D: "FS_IOC_FIEMAP"}
ARCH_PRCTL = {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS",
              0x1004: "ARCH_GET_GS"}
FUTEX_OPS = {0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 9: "FUTEX_WAIT_BITSET",
             10: "FUTEX_WAKE_BITSET", 5: "FUTEX_WAKE_OP", 6: "FUTEX_LOCK_PI",
             7: "FUTEX_UNLOCK_PI", 4: "FUTEX_CMP_REQUEUE"}
FCNTL_CMDS = {0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL",
              5: "F_GETLK", 6: "F_SETLK", 7: "F_SETLKW", 1030: "F_DUPFD_CLOEXEC",
              1033: "F_ADD_SEALS", 1034: "F_GET_SEALS", 36: "F_OFD_GETLK",
              37: "F_OFD_SETLK", 38: "F_OFD_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN"}
SIGPROCMASK_HOW = {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"}
SEEK = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
ACCESS_MODE_BITMASK = [(4, "R_OK"), (2, "W_OK"), (1, "X_OK")]  # (strace's order)
GRND = [(1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")]
# the errnos a call sees only when a signal stops it (strace's names)
RESTART_NAMES = {512: ("ERESTARTSYS", "To be restarted if SA_RESTART is set"),
                 513: ("ERESTARTNOINTR", "To be restarted"),
                 514: ("ERESTARTNOHAND", "To be restarted if no handler"),
                 516: ("ERESTART_RESTARTBLOCK", "Interrupted by signal")}
SI_CODES = {0: "SI_USER", 0x80: "SI_KERNEL", -1: "SI_QUEUE", -2: "SI_TIMER",
            -3: "SI_MESGQ", -4: "SI_ASYNCIO", -5: "SI_SIGIO", -6: "SI_TKILL"}
CLD_CODES = {1: "CLD_EXITED", 2: "CLD_KILLED", 3: "CLD_DUMPED", 4: "CLD_TRAPPED",
             5: "CLD_STOPPED", 6: "CLD_CONTINUED"}
SEGV_CODES = {1: "SEGV_MAPERR", 2: "SEGV_ACCERR"}
S_IFMT = {0o140000: "S_IFSOCK", 0o120000: "S_IFLNK", 0o100000: "S_IFREG",
          0o60000: "S_IFBLK", 0o40000: "S_IFDIR", 0o20000: "S_IFCHR", 0o10000: "S_IFIFO"}
# calls that never return to their caller when they succeed
NO_RETURN = {"exit", "exit_group"}


def bits(value: int, table, zero: str = "0") -> str:
    """value as NAME|NAME|0xREST (zero: what 0 is)."""
    names = []
    for bit, name in table:
        if bit and value & bit == bit:
            names.append(name)
            value &= ~bit
    if value:
        names.append(hex(value))
    return "|".join(names) if names else zero


def quote(data: bytes, limit: int | None = STRLEN, more: bool = False,
          force_hex: bool = False) -> str:
    """strace's quoting of a string: "..." with C escapes (octal for the rest), the
    first ``limit`` bytes and ``...`` after when there were more (or more is set)."""
    if limit is not None and len(data) > limit:
        data, more = data[:limit], True
    out = ['"']
    for i, c in enumerate(data):
        if force_hex:
            out.append("\\x%02x" % c)
        elif c == 0x22:
            out.append('\\"')
        elif c == 0x5C:
            out.append("\\\\")
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        elif c in (9, 10, 11, 12, 13):
            out.append("\\" + "tnvfr"[c - 9])
        else:
            nxt = data[i + 1] if i + 1 < len(data) else 0
            if 0x30 <= nxt <= 0x37:
                out.append("\\%03o" % c)
            else:
                out.append("\\%o" % c)
    out.append('"')
    if more:
        out.append("...")
    return "".join(out)


def addr(value: int) -> str:
    return "NULL" if value == 0 else "0x%x" % value


def sigset(raw: bytes) -> str:
    """A sigset_t as strace shows it: [CHLD USR1], or ~[...] when most are set."""
    mask = int.from_bytes(raw[:8].ljust(8, b"\0"), "little")
    members = [n for n in range(1, 65) if mask >> (n - 1) & 1]
    if len(members) > 32:
        rest = [n for n in range(1, 65) if not mask >> (n - 1) & 1]
        return "~[" + " ".join(signame(n)[3:] for n in rest) + "]"
    return "[" + " ".join(signame(n)[3:] for n in members) + "]"


def file_mode(mode: int) -> str:
    """st_mode as strace shows it: S_IFDIR|S_ISVTX|0777."""
    kind = S_IFMT.get(mode & 0o170000, "%#o" % (mode & 0o170000))
    special = [n for bit, n in ((0o4000, "S_ISUID"), (0o2000, "S_ISGID"),
                                (0o1000, "S_ISVTX")) if mode & bit]
    return "|".join([kind] + special + ["%04o" % (mode & 0o777)])


def format_ret(ret: int, name: str = "") -> str:
    if -4096 < ret < 0:
        code = -ret
        if code in RESTART_NAMES:
            return "? %s (%s)" % RESTART_NAMES[code]
        return "-1 %s (%s)" % (errno.errorcode.get(code, "E%d" % code), os.strerror(code))
    if name in ("mmap", "brk", "mremap", "shmat"):
        return "0x%x" % (ret & 0xFFFFFFFFFFFFFFFF)
    return str(ret) if -4096 < ret < 1 << 63 else hex(ret & 0xFFFFFFFFFFFFFFFF)


class Entry:
    """A call between its entry and its exit: the arguments shown (str, or a callable
    given the result at the exit: what the call wrote)."""
    __slots__ = ("tid", "name", "parts", "ret_fmt")

    def __init__(self, tid: int, name: str) -> None:
        self.tid, self.name, self.parts, self.ret_fmt = tid, name, [], None


class CallFormatter:
    """strace's lines for the calls of guests (their memory read through tracer)."""

    def __init__(self, tracer) -> None:
        self.tracer = tracer

    # ------------------------------------------------------------ memory
    def _peek(self, tid: int, guest_addr: int, size: int) -> bytes | None:
        if guest_addr == 0 or size < 0:
            return None
        try:
            return self.tracer.peek(tid, guest_addr, size)
        except OSError:
            return None

    def _str(self, tid: int, guest_addr: int, limit: int | None = None) -> str:
        """A NUL-terminated string (a path: whole; limit: strace's -s)."""
        if guest_addr == 0:
            return "NULL"
        try:
            s = self.tracer.peekstr(tid, guest_addr)
        except OSError:
            return addr(guest_addr)
        return quote(s, limit)

    def _buf(self, tid: int, guest_addr: int, size: int, force_hex=False) -> str:
        data = self._peek(tid, guest_addr, min(size, STRLEN)) if size > 0 else b""
        if data is None:
            return addr(guest_addr)
        return quote(data, STRLEN, more=size > STRLEN, force_hex=force_hex)

    def _struct(self, tid, guest_addr, size, render) -> str:
        data = self._peek(tid, guest_addr, size)
        if data is None:
            return addr(guest_addr)
        return render(data)

    # ------------------------------------------------------------ the line
    def enter(self, tid: int, sc, args, nr: int | None = None, sp: int = 0) -> Entry:
        """What the call reads, at its entry."""
        name = sc.name if sc is not None else "syscall_%d" % (nr if nr is not None else -1)
        e = Entry(tid, name)
        decoder = getattr(self, "d_" + name, None)
        try:
            if decoder is not None:
                decoder(e, tid, list(args), sp)
            else:
                self._generic(e, tid, name, list(args), sc)
        except Exception:  # (a trace line must never cost a call)
            e.parts = ["0x%x" % a for a in list(args)[:len(sc.args) if sc else 6]]
        return e

    def finish(self, e: Entry, ret: int | None, who: str = "") -> str:
        """The whole line at the exit (ret None: the call does not return)."""
        shown = []
        for part in e.parts:
            if callable(part):
                try:
                    part = part(ret)
                except Exception:
                    part = "?"
            shown.append(part)
        text = "%s(%s)" % (e.name, ", ".join(shown))
        if ret is None:
            result = "?"
        elif e.ret_fmt is not None and ret >= 0:
            result = e.ret_fmt(ret)
        else:
            result = format_ret(ret, e.name)
        line = "[pid %d] %-39s = %s" % (e.tid, text, result)
        return line + ("  [%s]" % who if who else "")

    # ------------------------------------------------------------ generic
    def _generic(self, e: Entry, tid: int, name: str, args, sc) -> None:
        proto = SYSCALL_PROTOTYPES.get(name)
        if proto is not None:
            kinds = [t for t, _ in proto[1]]
        elif sc is not None:
            kinds = list(sc.args)
        else:
            kinds = ["ptr"] * 6
        for kind, value in zip(kinds, args):
            e.parts.append(self._generic_arg(tid, kind, value))

    def _generic_arg(self, tid: int, kind: str, value: int) -> str:
        if kind in ("const char *", "path", "str"):
            return self._str(tid, value)
        if kind in ("int", "pid_t", "uid_t", "gid_t", "fd", "dirfd", "sig", "pid", "uid",
                    "gid", "clockid_t", "key_t", "mqd_t", "timer_t"):
            v = s32(value)
            return "AT_FDCWD" if kind == "dirfd" and v == -100 else str(v)
        if kind in ("umode_t", "mode_t", "mode"):
            return "0%o" % value if value else "0"
        if kind in ("off", "loff_t", "off_t", "long"):
            return str(value - (1 << 64) if value >= 1 << 63 else value)
        if kind.endswith("*") or kind in ("ptr", "buf_in", "buf_out", "addr"):
            return addr(value)
        return str(value)

    # ------------------------------------------------------------ decoders (strace's)
    def d_read(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])),
                    lambda ret: self._buf(tid, a[1], ret) if ret is not None and ret >= 0
                    else addr(a[1]), str(a[2])]

    def d_pread64(self, e, tid, a, sp):
        self.d_read(e, tid, a, sp)
        e.parts.append(str(a[3]))

    def d_write(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), self._buf(tid, a[1], a[2]), str(a[2])]

    def d_pwrite64(self, e, tid, a, sp):
        self.d_write(e, tid, a, sp)
        e.parts.append(str(a[3]))

    def _iov(self, tid, guest_addr, count, limit=None) -> str:
        raw = self._peek(tid, guest_addr, 16 * min(count, 16))
        if raw is None:
            return addr(guest_addr)
        items, left = [], limit
        for i in range(min(count, 16)):
            base, length = struct.unpack_from("<QQ", raw, 16 * i)
            shown = length if left is None else max(0, min(length, left))
            if left is not None:
                left -= shown
            items.append("{iov_base=%s, iov_len=%d}" % (
                self._buf(tid, base, shown) if shown or length == 0 else addr(base), length))
        return "[" + ", ".join(items) + ("..." if count > 16 else "") + "]"

    def d_writev(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), self._iov(tid, a[1], a[2]), str(a[2])]

    def d_readv(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), lambda ret: self._iov(tid, a[1], a[2], ret)
                    if ret is not None and ret >= 0 else addr(a[1]), str(a[2])]

    @staticmethod
    def _dirfd(v: int) -> str:
        v = s32(v)
        return "AT_FDCWD" if v == -100 else str(v)

    @staticmethod
    def _oflags(v: int) -> str:
        acc = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}.get(v & 3, "0x3")
        rest = bits(v & ~3, OPEN_FLAGS, "")
        return acc + ("|" + rest if rest else "")

    def _open_tail(self, e, flags, mode):
        e.parts.append(self._oflags(flags))
        if flags & 0o100 or flags & 0o20200000 == 0o20200000:
            e.parts.append("0%o" % mode if mode else "000")

    def d_open(self, e, tid, a, sp):
        e.parts.append(self._str(tid, a[0]))
        self._open_tail(e, a[1], a[2])

    def d_openat(self, e, tid, a, sp):
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1])]
        self._open_tail(e, a[2], a[3])

    def d_creat(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), "0%o" % a[1] if a[1] else "000"]

    def d_close(self, e, tid, a, sp):
        e.parts.append(str(s32(a[0])))

    def _stat(self, data: bytes) -> str:
        mode = struct.unpack_from("<I", data, 24)[0]
        size = struct.unpack_from("<q", data, 48)[0]
        rdev = struct.unpack_from("<Q", data, 40)[0]
        text = "{st_mode=%s" % file_mode(mode)
        if mode & 0o170000 in (0o20000, 0o60000):
            text += ", st_rdev=makedev(%#x, %#x)" % (os.major(rdev), os.minor(rdev))
        else:
            text += ", st_size=%d" % size
        return text + ", ...}"

    def _stat_out(self, tid, guest_addr):
        return lambda ret: self._struct(tid, guest_addr, 144, self._stat) \
            if ret == 0 else addr(guest_addr)

    def d_newfstatat(self, e, tid, a, sp):
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]), self._stat_out(tid, a[2]),
                    bits(a[3], AT_FLAGS)]

    def d_fstat(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), self._stat_out(tid, a[1])]

    def d_stat(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), self._stat_out(tid, a[1])]

    d_lstat = d_stat

    STATX_MASK = [(0x1, "STATX_TYPE"), (0x2, "STATX_MODE"), (0x4, "STATX_NLINK"),
                  (0x8, "STATX_UID"), (0x10, "STATX_GID"), (0x20, "STATX_ATIME"),
                  (0x40, "STATX_MTIME"), (0x80, "STATX_CTIME"), (0x100, "STATX_INO"),
                  (0x200, "STATX_SIZE"), (0x400, "STATX_BLOCKS"), (0x800, "STATX_BTIME"),
                  (0x1000, "STATX_MNT_ID"), (0x2000, "STATX_DIOALIGN")]

    def _statx_mask(self, mask: int) -> str:
        lead = ""
        if mask & 0xFFF == 0xFFF:
            lead, mask = "STATX_ALL", mask & ~0xFFF
        elif mask & 0x7FF == 0x7FF:
            lead, mask = "STATX_BASIC_STATS", mask & ~0x7FF
        rest = bits(mask, self.STATX_MASK, "")
        return "|".join(x for x in (lead, rest) if x) or "0"

    def _statx(self, data: bytes) -> str:
        mask, attrs = struct.unpack_from("<I", data)[0], struct.unpack_from("<Q", data, 8)[0]
        mode = struct.unpack_from("<H", data, 28)[0]
        size = struct.unpack_from("<Q", data, 40)[0]
        return "{stx_mask=%s, stx_attributes=%s, stx_mode=%s, stx_size=%d, ...}" % (
            self._statx_mask(mask), "%#x" % attrs if attrs else "0", file_mode(mode), size)

    def d_statx(self, e, tid, a, sp):
        flags = a[2] & 0xFFFFFFFF
        sync = "" if flags & 0x6000 else "AT_STATX_SYNC_AS_STAT"
        shown = "|".join(x for x in (sync, bits(flags, AT_FLAGS, "")) if x)
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]), shown,
                    self._statx_mask(a[3] & 0xFFFFFFFF),
                    lambda ret: self._struct(tid, a[4], 256, self._statx)
                    if ret == 0 else addr(a[4])]

    def d_mmap(self, e, tid, a, sp):
        e.parts += [addr(a[0]), str(a[1]), bits(a[2], MMAP_PROT_BITMASK, "PROT_NONE"),
                    bits(a[3], MAP_FLAGS), str(s32(a[4])), "0x%x" % a[5] if a[5] else "0"]

    def d_mprotect(self, e, tid, a, sp):
        e.parts += [addr(a[0]), str(a[1]), bits(a[2], MMAP_PROT_BITMASK, "PROT_NONE")]

    def d_munmap(self, e, tid, a, sp):
        e.parts += [addr(a[0]), str(a[1])]

    def d_brk(self, e, tid, a, sp):
        e.parts.append(addr(a[0]))

    def d_access(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), bits(a[1], ACCESS_MODE_BITMASK, "F_OK")]

    def d_faccessat(self, e, tid, a, sp):
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]),
                    bits(a[2], ACCESS_MODE_BITMASK, "F_OK")]

    def d_faccessat2(self, e, tid, a, sp):
        self.d_faccessat(e, tid, a, sp)
        e.parts.append(bits(a[3], AT_FLAGS))

    def d_unlinkat(self, e, tid, a, sp):
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]), bits(a[2], AT_FLAGS)]

    def d_mkdirat(self, e, tid, a, sp):
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]), "0%o" % a[2] if a[2] else "000"]

    def d_mkdir(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), "0%o" % a[1] if a[1] else "000"]

    def d_chmod(self, e, tid, a, sp):
        self.d_mkdir(e, tid, a, sp)

    def d_fchmodat(self, e, tid, a, sp):
        self.d_mkdirat(e, tid, a, sp)

    def d_renameat(self, e, tid, a, sp):
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]), self._dirfd(a[2]),
                    self._str(tid, a[3])]

    def d_renameat2(self, e, tid, a, sp):
        self.d_renameat(e, tid, a, sp)
        e.parts.append(bits(a[4], [(1, "RENAME_NOREPLACE"), (2, "RENAME_EXCHANGE"),
                                   (4, "RENAME_WHITEOUT")]))

    def d_getcwd(self, e, tid, a, sp):
        e.parts += [lambda ret: self._str(tid, a[0]) if ret is not None and ret > 0
                    else addr(a[0]), str(a[1])]

    def d_readlink(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), lambda ret: self._buf(tid, a[1], ret)
                    if ret is not None and ret >= 0 else addr(a[1]), str(a[2])]

    def d_readlinkat(self, e, tid, a, sp):
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]),
                    lambda ret: self._buf(tid, a[2], ret) if ret is not None and ret >= 0
                    else addr(a[2]), str(a[3])]

    def d_arch_prctl(self, e, tid, a, sp):
        code = a[0] & 0xFFFFFFFF
        e.parts += [ARCH_PRCTL.get(code, "%#x /* ARCH_??? */" % code), addr(a[1])]

    def d_set_tid_address(self, e, tid, a, sp):
        e.parts.append(addr(a[0]))

    def d_set_robust_list(self, e, tid, a, sp):
        e.parts += [addr(a[0]), str(a[1])]

    def d_rseq(self, e, tid, a, sp):
        e.parts += [addr(a[0]), "%#x" % a[1], str(s32(a[2])), "%#x" % (a[3] & 0xFFFFFFFF)]

    @staticmethod
    def _rlim(v: int) -> str:
        if v == 0xFFFFFFFFFFFFFFFF:
            return "RLIM64_INFINITY"
        if v and v % 1024 == 0:
            return "%d*1024" % (v // 1024)
        return str(v)

    def _rlimit(self, data: bytes) -> str:
        cur, mx = struct.unpack_from("<QQ", data)
        return "{rlim_cur=%s, rlim_max=%s}" % (self._rlim(cur), self._rlim(mx))

    def d_prlimit64(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), RLIMIT_RESOURCE.get(a[1], str(a[1])),
                    self._struct(tid, a[2], 16, self._rlimit) if a[2] else "NULL",
                    lambda ret: self._struct(tid, a[3], 16, self._rlimit)
                    if a[3] and ret == 0 else addr(a[3])]

    def d_getrandom(self, e, tid, a, sp):
        e.parts += [lambda ret: self._buf(tid, a[0], ret, force_hex=True)
                    if ret is not None and ret >= 0 else addr(a[0]), str(a[1]),
                    bits(a[2], GRND)]

    def d_futex(self, e, tid, a, sp):
        op = a[1] & 0xFFFFFFFF
        base = FUTEX_OPS.get(op & 0x7F, str(op & 0x7F))
        name = base + ("_PRIVATE" if op & 128 else "") + \
            ("|FUTEX_CLOCK_REALTIME" if op & 256 else "")
        e.parts += [addr(a[0]), name, str(s32(a[2]))]
        if op & 0x7F in (0, 9):
            e.parts.append(self._struct(tid, a[3], 16, lambda d: "{tv_sec=%d, tv_nsec=%d}"
                                        % struct.unpack_from("<qq", d)) if a[3] else "NULL")
        if op & 0x7F == 9:
            e.parts += ["FUTEX_BITSET_MATCH_ANY" if a[5] & 0xFFFFFFFF == 0xFFFFFFFF
                        else "%#x" % a[5]]

    def _termios(self, data: bytes) -> str:
        iflag, oflag, cflag, lflag = struct.unpack_from("<IIII", data)
        speeds = {0o17: "B38400", 0o15: "B9600", 0o10002: "B115200", 0o10001: "B57600"}
        speed = speeds.get(cflag & 0o10017, "B%#o" % (cflag & 0o10017))
        flags = [("opost", oflag & 1), ("isig", lflag & 1), ("icanon", lflag & 2),
                 ("echo", lflag & 8)]
        return "{%s %s ...}" % (speed, " ".join(n if on else "-" + n for n, on in flags))

    def d_ioctl(self, e, tid, a, sp):
        req = a[1] & 0xFFFFFFFF
        e.parts += [str(s32(a[0])), IOCTLS.get(req, "%#x" % req)]
        if req == 0x5401:
            e.parts.append(lambda ret: self._struct(tid, a[2], 36, self._termios)
                           if ret == 0 else addr(a[2]))
        elif req == 0x5413:
            e.parts.append(lambda ret: self._struct(
                tid, a[2], 8, lambda d: "{ws_row=%d, ws_col=%d, ws_xpixel=%d, ws_ypixel=%d}"
                % struct.unpack_from("<HHHH", d)) if ret == 0 else addr(a[2]))
        elif req in (0x540F, 0x541B, 0x5429):
            e.parts.append(lambda ret: self._struct(
                tid, a[2], 4, lambda d: "[%d]" % struct.unpack_from("<i", d)[0])
                if ret == 0 else addr(a[2]))
        elif req in (0x5410, 0x5421):
            e.parts.append(self._struct(tid, a[2], 4, lambda d: "[%d]"
                                        % struct.unpack_from("<i", d)[0]))
        elif req in (0x5450, 0x5451, 0x5422):
            pass
        else:
            e.parts.append(addr(a[2]))

    def _sigaction(self, data: bytes) -> str:
        handler, flags, restorer = struct.unpack_from("<QQQ", data)
        mask = data[24:32]
        shown = {0: "SIG_DFL", 1: "SIG_IGN"}.get(handler, "0x%x" % handler)
        text = "{sa_handler=%s, sa_mask=%s, sa_flags=%s" % (shown, sigset(mask),
                                                           bits(flags, SA_FLAGS))
        if flags & 0x04000000:
            text += ", sa_restorer=0x%x" % restorer
        return text + "}"

    def d_rt_sigaction(self, e, tid, a, sp):
        e.parts += [signame(s32(a[0])),
                    self._struct(tid, a[1], 32, self._sigaction) if a[1] else "NULL",
                    lambda ret: self._struct(tid, a[2], 32, self._sigaction)
                    if a[2] and ret == 0 else addr(a[2]), str(a[3])]

    def d_rt_sigprocmask(self, e, tid, a, sp):
        e.parts += [SIGPROCMASK_HOW.get(s32(a[0]), str(s32(a[0]))),
                    self._struct(tid, a[1], 8, sigset) if a[1] else "NULL",
                    lambda ret: self._struct(tid, a[2], 8, sigset)
                    if a[2] and ret == 0 else addr(a[2]), str(a[3])]

    def d_rt_sigreturn(self, e, tid, a, sp):
        # (the frame's ucontext is at the stack pointer: its sigmask 296 bytes in)
        e.parts.append("{mask=%s}" % self._struct(tid, sp + 296, 8, sigset) if sp else "")

    def d_kill(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), signame(s32(a[1])) if s32(a[1]) else "0"]

    def d_tgkill(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), str(s32(a[1])), signame(s32(a[2])) if s32(a[2]) else "0"]

    def d_tkill(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), signame(s32(a[1])) if s32(a[1]) else "0"]

    def d_clone(self, e, tid, a, sp):
        flags = a[0]
        sig = flags & 0xFF
        names = bits(flags & ~0xFF, CLONE_FLAGS, "")
        shown = "|".join(x for x in (names, signame(sig) if sig else "") if x) or "0"
        e.parts += ["child_stack=%s" % addr(a[1]), "flags=%s" % shown]
        if flags & 0x100000:
            e.parts.append("parent_tid=%s" % addr(a[2]))
        if flags & (0x1000000 | 0x200000):
            e.parts.append("child_tidptr=%s" % addr(a[3]))
        if flags & 0x80000:
            e.parts.append("tls=%s" % addr(a[4]))

    def d_clone3(self, e, tid, a, sp):
        raw = self._peek(tid, a[0], min(a[1], 88))
        if raw is None or len(raw) < 64:
            e.parts += [addr(a[0]), str(a[1])]
            return
        flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls = \
            struct.unpack_from("<8Q", raw)
        items = ["flags=%s" % bits(flags, CLONE_FLAGS)]
        if flags & 0x1000:
            items.append("pidfd=%s" % addr(pidfd))
        if flags & (0x1000000 | 0x200000):
            items.append("child_tid=%s" % addr(child_tid))
        if flags & 0x100000:
            items.append("parent_tid=%s" % addr(parent_tid))
        items.append("exit_signal=%s" % (signame(exit_signal) if exit_signal else "0"))
        items += ["stack=%s" % addr(stack), "stack_size=%#x" % stack_size]
        if flags & 0x80000:
            items.append("tls=%s" % addr(tls))
        e.parts += ["{" + ", ".join(items) + "}", str(a[1])]

    @staticmethod
    def _status(data: bytes) -> str:
        s = struct.unpack_from("<i", data)[0]
        if s & 0x7F == 0:
            return "[{WIFEXITED(s) && WEXITSTATUS(s) == %d}]" % ((s >> 8) & 0xFF)
        if s & 0xFF == 0x7F:
            return "[{WIFSTOPPED(s) && WSTOPSIG(s) == %s}]" % signame((s >> 8) & 0xFF)
        core = " && WCOREDUMP(s)" if s & 0x80 else ""
        return "[{WIFSIGNALED(s) && WTERMSIG(s) == %s%s}]" % (signame(s & 0x7F), core)

    def d_wait4(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), lambda ret: self._struct(tid, a[1], 4, self._status)
                    if a[1] and ret is not None and ret > 0 else addr(a[1]),
                    bits(a[2] & 0xFFFFFFFF, WAIT_FLAGS), addr(a[3])]

    def d_execve(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), self._argv(tid, a[1]), self._envp(tid, a[2])]

    def d_execveat(self, e, tid, a, sp):
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]), self._argv(tid, a[2]),
                    self._envp(tid, a[3]), bits(a[4], AT_FLAGS)]

    def _pointers(self, tid, guest_addr, most):
        out = []
        for i in range(most + 1):
            raw = self._peek(tid, guest_addr + 8 * i, 8)
            if raw is None:
                return None
            p = struct.unpack("<Q", raw)[0]
            if p == 0:
                break
            out.append(p)
        return out

    def _argv(self, tid, guest_addr) -> str:
        if guest_addr == 0:
            return "NULL"
        ptrs = self._pointers(tid, guest_addr, MAX_ARGV)
        if ptrs is None:
            return addr(guest_addr)
        shown = [self._str(tid, p, STRLEN) for p in ptrs[:MAX_ARGV]]
        return "[" + ", ".join(shown) + (", ..." if len(ptrs) > MAX_ARGV else "") + "]"

    def _envp(self, tid, guest_addr) -> str:
        if guest_addr == 0:
            return "NULL"
        ptrs = self._pointers(tid, guest_addr, 4096)
        count = len(ptrs) if ptrs is not None else 0
        return "0x%x /* %d var%s */" % (guest_addr, count, "" if count == 1 else "s")

    def d_exit_group(self, e, tid, a, sp):
        e.parts.append(str(s32(a[0])))

    d_exit = d_exit_group

    def d_getdents64(self, e, tid, a, sp):
        def entries(ret):
            if ret is None or ret < 0:
                return addr(a[1])
            data = self._peek(tid, a[1], ret) or b""
            n, off = 0, 0
            while off + 19 <= len(data):
                reclen = struct.unpack_from("<H", data, off + 16)[0]
                if reclen == 0:
                    break
                n, off = n + 1, off + reclen
            return "0x%x /* %d entries */" % (a[1], n)
        e.parts += [str(s32(a[0])), entries, str(a[2])]

    def d_lseek(self, e, tid, a, sp):
        off = a[1] - (1 << 64) if a[1] >= 1 << 63 else a[1]
        e.parts += [str(s32(a[0])), str(off), SEEK.get(a[2], str(a[2]))]

    def d_fcntl(self, e, tid, a, sp):
        cmd = s32(a[1])
        e.parts += [str(s32(a[0])), FCNTL_CMDS.get(cmd, str(cmd))]
        if cmd == 2:
            e.parts.append("FD_CLOEXEC" if a[2] == 1 else str(a[2]))
            return
        if cmd == 4:
            e.parts.append(self._oflags(a[2]))
        elif cmd in (0, 1030, 1033, 8):
            e.parts.append(str(s32(a[2])))
        if cmd == 1:
            e.ret_fmt = lambda r: "%#x (flags FD_CLOEXEC)" % r if r == 1 else str(r)
        elif cmd == 3:
            e.ret_fmt = lambda r: "%#x (flags %s)" % (r, self._oflags(r))

    def d_pipe2(self, e, tid, a, sp):
        e.parts += [lambda ret: self._struct(tid, a[0], 8, lambda d: "[%d, %d]"
                                             % struct.unpack_from("<ii", d))
                    if ret == 0 else addr(a[0]), self._oflags(a[1]).replace("O_RDONLY|", "")
                    if a[1] else "0"]

    def d_pipe(self, e, tid, a, sp):
        e.parts.append(lambda ret: self._struct(tid, a[0], 8, lambda d: "[%d, %d]"
                                                % struct.unpack_from("<ii", d))
                       if ret == 0 else addr(a[0]))

    def d_dup2(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), str(s32(a[1]))]

    def d_dup3(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), str(s32(a[1])), "O_CLOEXEC" if a[2] & 0o2000000
                    else str(a[2])]

    def d_socket(self, e, tid, a, sp):
        t = a[1] & 0xFFFFFFFF
        kind = SOCK_TYPES.get(t & 0xF, str(t & 0xF))
        kind += "|SOCK_CLOEXEC" if t & 0o2000000 else ""
        kind += "|SOCK_NONBLOCK" if t & 0o4000 else ""
        e.parts += [SOCKET_FAMILY.get(s32(a[0]), str(s32(a[0]))), kind, str(s32(a[2]))]

    def _sockaddr(self, tid, guest_addr, size) -> str:
        data = self._peek(tid, guest_addr, min(size, 128))
        if data is None or len(data) < 2:
            return addr(guest_addr)
        family = struct.unpack_from("<H", data)[0]
        if family == 1:
            path = data[2:]
            if path[:1] == b"\0":
                return '{sa_family=AF_UNIX, sun_path=@%s}' % quote(path[1:], None)
            return '{sa_family=AF_UNIX, sun_path=%s}' % quote(path.split(b"\0")[0], None)
        if family == 2 and len(data) >= 8:
            port = struct.unpack_from(">H", data, 2)[0]
            return '{sa_family=AF_INET, sin_port=htons(%d), sin_addr=inet_addr("%s")}' % (
                port, ".".join(str(b) for b in data[4:8]))
        return "{sa_family=%s, ...}" % SOCKET_FAMILY.get(family, str(family))

    def d_connect(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), self._sockaddr(tid, a[1], a[2]), str(a[2])]

    d_bind = d_connect

    def d_uname(self, e, tid, a, sp):
        def uts(ret):
            if ret != 0:
                return addr(a[0])
            data = self._peek(tid, a[0], 65 * 6) or b""
            fields = [data[65 * i:65 * (i + 1)].split(b"\0")[0] for i in range(6)]
            return "{sysname=%s, nodename=%s, ...}" % (quote(fields[0], None),
                                                      quote(fields[1], None))
        e.parts.append(uts)

    def d_chdir(self, e, tid, a, sp):
        e.parts.append(self._str(tid, a[0]))

    d_unlink = d_rmdir = d_chroot = d_chdir

    def d_rename(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), self._str(tid, a[1])]

    d_symlink = d_link = d_rename

    CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
              3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW",
              5: "CLOCK_REALTIME_COARSE", 6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME"}

    def _timespec(self, tid, guest_addr) -> str:
        if guest_addr == 0:
            return "NULL"
        return self._struct(tid, guest_addr, 16, lambda d: "{tv_sec=%d, tv_nsec=%d}"
                            % struct.unpack_from("<qq", d))

    def d_nanosleep(self, e, tid, a, sp):
        e.parts += [self._timespec(tid, a[0]), addr(a[1])]

    def d_clock_nanosleep(self, e, tid, a, sp):
        e.parts += [self.CLOCKS.get(s32(a[0]), str(s32(a[0]))),
                    "TIMER_ABSTIME" if a[1] & 1 else "0", self._timespec(tid, a[2]),
                    addr(a[3])]

    def d_clock_gettime(self, e, tid, a, sp):
        e.parts += [self.CLOCKS.get(s32(a[0]), str(s32(a[0]))),
                    lambda ret: self._timespec(tid, a[1]) if ret == 0 else addr(a[1])]

    def d_mount(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), self._str(tid, a[1]), self._str(tid, a[2]),
                    bits(a[3], [(1, "MS_RDONLY"), (2, "MS_NOSUID"), (4, "MS_NODEV"),
                                (8, "MS_NOEXEC"), (0x1000, "MS_BIND"), (0x2000, "MS_MOVE"),
                                (0x4000, "MS_REC")]),
                    self._str(tid, a[4], STRLEN)]

    def d_umount2(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), bits(a[1], [(1, "MNT_FORCE"), (2, "MNT_DETACH"),
                                                    (4, "MNT_EXPIRE"),
                                                    (8, "UMOUNT_NOFOLLOW")])]

    def d_vu_insmod(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), str(s32(a[1]))]

    d_vu_rmmod = d_chdir

    def d_msocket(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), SOCKET_FAMILY.get(s32(a[1]), str(s32(a[1]))),
                    str(s32(a[2])), str(s32(a[3]))]

    # ------------------------------------------------------------ signals and exits
    def signal_line(self, tid: int, sig: int, info: bytes) -> str:
        """--- SIGNAL {siginfo} --- at its delivery."""
        signo, err, code = struct.unpack_from("<iii", info)
        name = signame(sig)
        if sig == 17:
            pid, uid, status = struct.unpack_from("<iIi", info, 16)
            utime, stime = struct.unpack_from("<qq", info, 32)
            code_s = CLD_CODES.get(code, str(code))
            shown = signame(status) if code in (2, 3, 4, 5) else str(status)
            body = ("si_signo=SIGCHLD, si_code=%s, si_pid=%d, si_uid=%d, si_status=%s, "
                    "si_utime=%d, si_stime=%d" % (code_s, pid, uid, shown, utime, stime))
        elif sig in (4, 7, 8, 11) and code > 0:
            fault = struct.unpack_from("<Q", info, 16)[0]
            code_s = SEGV_CODES.get(code, str(code)) if sig == 11 else str(code)
            body = "si_signo=%s, si_code=%s, si_addr=%s" % (name, code_s, addr(fault))
        else:
            pid, uid = struct.unpack_from("<iI", info, 16)
            code_s = SI_CODES.get(code, str(code))
            body = "si_signo=%s, si_code=%s" % (name, code_s)
            if code <= 0:
                body += ", si_pid=%d, si_uid=%d" % (pid, uid)
        return "[pid %d] --- %s {%s} ---" % (tid, name, body)

    @staticmethod
    def exit_line(tid: int, status: int) -> str:
        if os.WIFEXITED(status):
            return "[pid %d] +++ exited with %d +++" % (tid, os.WEXITSTATUS(status))
        if os.WIFSIGNALED(status):
            core = " (core dumped)" if os.WCOREDUMP(status) else ""
            return "[pid %d] +++ killed by %s%s +++" % (tid, signame(os.WTERMSIG(status)),
                                                      core)
        return "[pid %d] +++ gone +++" % tid
