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


CLK_TCK = os.sysconf("SC_CLK_TCK")


def clock_t(ticks: int) -> str:
    """A clock_t as strace shows it: the ticks, and the seconds in a comment when any."""
    if ticks <= 0 or CLK_TCK <= 0:
        return str(ticks)
    width = min(len(str(CLK_TCK)) - 1, 9)
    return "%d /* %d.%0*d s */" % (ticks, ticks // CLK_TCK, width, ticks % CLK_TCK)


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


from umvu.core.trace_calls import Decoders  # noqa: E402  (it uses the tables above)


class Entry:
    """A call between its entry and its exit: the arguments shown (str, or a callable
    given the result at the exit: what the call wrote)."""
    __slots__ = ("tid", "name", "parts", "ret_fmt")

    def __init__(self, tid: int, name: str) -> None:
        self.tid, self.name, self.parts, self.ret_fmt = tid, name, [], None


class CallFormatter(Decoders):
    """strace's lines for the calls of guests (their memory read through tracer); the
    calls strace decodes its own way are decoded by the d_NAME methods of
    umvu.core.trace_calls."""

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
                    "si_utime=%s, si_stime=%s" % (code_s, pid, uid, shown, clock_t(utime),
                                                  clock_t(stime)))
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
