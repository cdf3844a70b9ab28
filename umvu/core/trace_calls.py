"""The debug trace's decoders: the calls strace shows its own way (flags, structs,
buffers, execve's argv), as d_NAME methods of umvu.core.trace.CallFormatter, which
gives them the guest's memory (_peek, _str, _buf, _struct)."""
from __future__ import annotations

import os
import struct

from umvu.core import trace as _t
from umvu.core.abi import s32


class Decoders:
    """Mixin of CallFormatter: one d_NAME(entry, tid, args, sp) per decoded call."""

    # ------------------------------------------------------------ decoders (strace's)
    def d_read(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])),
                    lambda ret: self._buf(tid, a[1], ret) if ret is not None and ret >= 0
                    else _t.addr(a[1]), str(a[2])]

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
            return _t.addr(guest_addr)
        items, left = [], limit
        for i in range(min(count, 16)):
            base, length = struct.unpack_from("<QQ", raw, 16 * i)
            shown = length if left is None else max(0, min(length, left))
            if left is not None:
                left -= shown
            items.append("{iov_base=%s, iov_len=%d}" % (
                self._buf(tid, base, shown) if shown or length == 0 else _t.addr(base), length))
        return "[" + ", ".join(items) + ("..." if count > 16 else "") + "]"

    def d_writev(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), self._iov(tid, a[1], a[2]), str(a[2])]

    def d_readv(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), lambda ret: self._iov(tid, a[1], a[2], ret)
                    if ret is not None and ret >= 0 else _t.addr(a[1]), str(a[2])]

    @staticmethod
    def _dirfd(v: int) -> str:
        v = s32(v)
        return "AT_FDCWD" if v == -100 else str(v)

    @staticmethod
    def _oflags(v: int) -> str:
        acc = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}.get(v & 3, "0x3")
        rest = _t.bits(v & ~3, _t.OPEN_FLAGS, "")
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
        text = "{st_mode=%s" % _t.file_mode(mode)
        if mode & 0o170000 in (0o20000, 0o60000):
            text += ", st_rdev=makedev(%#x, %#x)" % (os.major(rdev), os.minor(rdev))
        else:
            text += ", st_size=%d" % size
        return text + ", ...}"

    def _stat_out(self, tid, guest_addr):
        return lambda ret: self._struct(tid, guest_addr, 144, self._stat) \
            if ret == 0 else _t.addr(guest_addr)

    def d_newfstatat(self, e, tid, a, sp):
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]), self._stat_out(tid, a[2]),
                    _t.bits(a[3], _t.AT_FLAGS)]

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
        rest = _t.bits(mask, self.STATX_MASK, "")
        return "|".join(x for x in (lead, rest) if x) or "0"

    def _statx(self, data: bytes) -> str:
        mask, attrs = struct.unpack_from("<I", data)[0], struct.unpack_from("<Q", data, 8)[0]
        mode = struct.unpack_from("<H", data, 28)[0]
        size = struct.unpack_from("<Q", data, 40)[0]
        return "{stx_mask=%s, stx_attributes=%s, stx_mode=%s, stx_size=%d, ...}" % (
            self._statx_mask(mask), "%#x" % attrs if attrs else "0", _t.file_mode(mode), size)

    def d_statx(self, e, tid, a, sp):
        flags = a[2] & 0xFFFFFFFF
        sync = "" if flags & 0x6000 else "AT_STATX_SYNC_AS_STAT"
        shown = "|".join(x for x in (sync, _t.bits(flags, _t.AT_FLAGS, "")) if x)
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]), shown,
                    self._statx_mask(a[3] & 0xFFFFFFFF),
                    lambda ret: self._struct(tid, a[4], 256, self._statx)
                    if ret == 0 else _t.addr(a[4])]

    def d_mmap(self, e, tid, a, sp):
        e.parts += [_t.addr(a[0]), str(a[1]), _t.bits(a[2], _t.MMAP_PROT_BITMASK, "PROT_NONE"),
                    _t.bits(a[3], _t.MAP_FLAGS), str(s32(a[4])), "0x%x" % a[5] if a[5] else "0"]

    def d_mprotect(self, e, tid, a, sp):
        e.parts += [_t.addr(a[0]), str(a[1]), _t.bits(a[2], _t.MMAP_PROT_BITMASK, "PROT_NONE")]

    def d_munmap(self, e, tid, a, sp):
        e.parts += [_t.addr(a[0]), str(a[1])]

    def d_brk(self, e, tid, a, sp):
        e.parts.append(_t.addr(a[0]))

    def d_access(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), _t.bits(a[1], _t.ACCESS_MODE_BITMASK, "F_OK")]

    def d_faccessat(self, e, tid, a, sp):
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]),
                    _t.bits(a[2], _t.ACCESS_MODE_BITMASK, "F_OK")]

    def d_faccessat2(self, e, tid, a, sp):
        self.d_faccessat(e, tid, a, sp)
        e.parts.append(_t.bits(a[3], _t.AT_FLAGS))

    def d_unlinkat(self, e, tid, a, sp):
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]), _t.bits(a[2], _t.AT_FLAGS)]

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
        e.parts.append(_t.bits(a[4], [(1, "RENAME_NOREPLACE"), (2, "RENAME_EXCHANGE"),
                                   (4, "RENAME_WHITEOUT")]))

    def d_getcwd(self, e, tid, a, sp):
        e.parts += [lambda ret: self._str(tid, a[0]) if ret is not None and ret > 0
                    else _t.addr(a[0]), str(a[1])]

    def d_readlink(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), lambda ret: self._buf(tid, a[1], ret)
                    if ret is not None and ret >= 0 else _t.addr(a[1]), str(a[2])]

    def d_readlinkat(self, e, tid, a, sp):
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]),
                    lambda ret: self._buf(tid, a[2], ret) if ret is not None and ret >= 0
                    else _t.addr(a[2]), str(a[3])]

    def d_arch_prctl(self, e, tid, a, sp):
        code = a[0] & 0xFFFFFFFF
        e.parts += [_t.ARCH_PRCTL.get(code, "%#x /* ARCH_??? */" % code), _t.addr(a[1])]

    def d_set_tid_address(self, e, tid, a, sp):
        e.parts.append(_t.addr(a[0]))

    def d_set_robust_list(self, e, tid, a, sp):
        e.parts += [_t.addr(a[0]), str(a[1])]

    def d_rseq(self, e, tid, a, sp):
        e.parts += [_t.addr(a[0]), "%#x" % a[1], str(s32(a[2])), "%#x" % (a[3] & 0xFFFFFFFF)]

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
        e.parts += [str(s32(a[0])), _t.RLIMIT_RESOURCE.get(a[1], str(a[1])),
                    self._struct(tid, a[2], 16, self._rlimit) if a[2] else "NULL",
                    lambda ret: self._struct(tid, a[3], 16, self._rlimit)
                    if a[3] and ret == 0 else _t.addr(a[3])]

    def d_getrandom(self, e, tid, a, sp):
        e.parts += [lambda ret: self._buf(tid, a[0], ret, force_hex=True)
                    if ret is not None and ret >= 0 else _t.addr(a[0]), str(a[1]),
                    _t.bits(a[2], _t.GRND)]

    def d_futex(self, e, tid, a, sp):
        op = a[1] & 0xFFFFFFFF
        base = _t.FUTEX_OPS.get(op & 0x7F, str(op & 0x7F))
        name = base + ("_PRIVATE" if op & 128 else "") + \
            ("|FUTEX_CLOCK_REALTIME" if op & 256 else "")
        e.parts += [_t.addr(a[0]), name, str(s32(a[2]))]
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
        e.parts += [str(s32(a[0])), _t.IOCTLS.get(req, "%#x" % req)]
        if req == 0x5401:
            e.parts.append(lambda ret: self._struct(tid, a[2], 36, self._termios)
                           if ret == 0 else _t.addr(a[2]))
        elif req == 0x5413:
            e.parts.append(lambda ret: self._struct(
                tid, a[2], 8, lambda d: "{ws_row=%d, ws_col=%d, ws_xpixel=%d, ws_ypixel=%d}"
                % struct.unpack_from("<HHHH", d)) if ret == 0 else _t.addr(a[2]))
        elif req in (0x540F, 0x541B, 0x5429):
            e.parts.append(lambda ret: self._struct(
                tid, a[2], 4, lambda d: "[%d]" % struct.unpack_from("<i", d)[0])
                if ret == 0 else _t.addr(a[2]))
        elif req in (0x5410, 0x5421):
            e.parts.append(self._struct(tid, a[2], 4, lambda d: "[%d]"
                                        % struct.unpack_from("<i", d)[0]))
        elif req in (0x5450, 0x5451, 0x5422):
            pass
        else:
            e.parts.append(_t.addr(a[2]))

    def _sigaction(self, data: bytes) -> str:
        handler, flags, restorer = struct.unpack_from("<QQQ", data)
        mask = data[24:32]
        shown = {0: "SIG_DFL", 1: "SIG_IGN"}.get(handler, "0x%x" % handler)
        text = "{sa_handler=%s, sa_mask=%s, sa_flags=%s" % (shown, _t.sigset(mask),
                                                           _t.bits(flags, _t.SA_FLAGS))
        if flags & 0x04000000:
            text += ", sa_restorer=0x%x" % restorer
        return text + "}"

    def d_rt_sigaction(self, e, tid, a, sp):
        e.parts += [_t.signame(s32(a[0])),
                    self._struct(tid, a[1], 32, self._sigaction) if a[1] else "NULL",
                    lambda ret: self._struct(tid, a[2], 32, self._sigaction)
                    if a[2] and ret == 0 else _t.addr(a[2]), str(a[3])]

    def d_rt_sigprocmask(self, e, tid, a, sp):
        e.parts += [_t.SIGPROCMASK_HOW.get(s32(a[0]), str(s32(a[0]))),
                    self._struct(tid, a[1], 8, _t.sigset) if a[1] else "NULL",
                    lambda ret: self._struct(tid, a[2], 8, _t.sigset)
                    if a[2] and ret == 0 else _t.addr(a[2]), str(a[3])]

    def d_rt_sigreturn(self, e, tid, a, sp):
        # (the frame's ucontext is at the stack pointer: its sigmask 296 bytes in)
        e.parts.append("{mask=%s}" % self._struct(tid, sp + 296, 8, _t.sigset) if sp else "")

    def d_kill(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), _t.signame(s32(a[1])) if s32(a[1]) else "0"]

    def d_tgkill(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), str(s32(a[1])), _t.signame(s32(a[2])) if s32(a[2]) else "0"]

    def d_tkill(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), _t.signame(s32(a[1])) if s32(a[1]) else "0"]

    def d_clone(self, e, tid, a, sp):
        flags = a[0]
        sig = flags & 0xFF
        names = _t.bits(flags & ~0xFF, _t.CLONE_FLAGS, "")
        shown = "|".join(x for x in (names, _t.signame(sig) if sig else "") if x) or "0"
        e.parts += ["child_stack=%s" % _t.addr(a[1]), "flags=%s" % shown]
        if flags & 0x100000:
            e.parts.append("parent_tid=%s" % _t.addr(a[2]))
        if flags & (0x1000000 | 0x200000):
            e.parts.append("child_tidptr=%s" % _t.addr(a[3]))
        if flags & 0x80000:
            e.parts.append("tls=%s" % _t.addr(a[4]))

    def d_clone3(self, e, tid, a, sp):
        raw = self._peek(tid, a[0], min(a[1], 88))
        if raw is None or len(raw) < 64:
            e.parts += [_t.addr(a[0]), str(a[1])]
            return
        flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls = \
            struct.unpack_from("<8Q", raw)
        items = ["flags=%s" % _t.bits(flags, _t.CLONE_FLAGS)]
        if flags & 0x1000:
            items.append("pidfd=%s" % _t.addr(pidfd))
        if flags & (0x1000000 | 0x200000):
            items.append("child_tid=%s" % _t.addr(child_tid))
        if flags & 0x100000:
            items.append("parent_tid=%s" % _t.addr(parent_tid))
        items.append("exit_signal=%s" % (_t.signame(exit_signal) if exit_signal else "0"))
        items += ["stack=%s" % _t.addr(stack), "stack_size=%#x" % stack_size]
        if flags & 0x80000:
            items.append("tls=%s" % _t.addr(tls))
        e.parts += ["{" + ", ".join(items) + "}", str(a[1])]

    @staticmethod
    def _status(data: bytes) -> str:
        s = struct.unpack_from("<i", data)[0]
        if s & 0x7F == 0:
            return "[{WIFEXITED(s) && WEXITSTATUS(s) == %d}]" % ((s >> 8) & 0xFF)
        if s & 0xFF == 0x7F:
            return "[{WIFSTOPPED(s) && WSTOPSIG(s) == %s}]" % _t.signame((s >> 8) & 0xFF)
        core = " && WCOREDUMP(s)" if s & 0x80 else ""
        return "[{WIFSIGNALED(s) && WTERMSIG(s) == %s%s}]" % (_t.signame(s & 0x7F), core)

    def d_wait4(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), lambda ret: self._struct(tid, a[1], 4, self._status)
                    if a[1] and ret is not None and ret > 0 else _t.addr(a[1]),
                    _t.bits(a[2] & 0xFFFFFFFF, _t.WAIT_FLAGS), _t.addr(a[3])]

    def d_execve(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), self._argv(tid, a[1]), self._envp(tid, a[2])]

    def d_execveat(self, e, tid, a, sp):
        e.parts += [self._dirfd(a[0]), self._str(tid, a[1]), self._argv(tid, a[2]),
                    self._envp(tid, a[3]), _t.bits(a[4], _t.AT_FLAGS)]

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
        ptrs = self._pointers(tid, guest_addr, _t.MAX_ARGV)
        if ptrs is None:
            return _t.addr(guest_addr)
        shown = [self._str(tid, p, _t.STRLEN) for p in ptrs[:_t.MAX_ARGV]]
        return "[" + ", ".join(shown) + (", ..." if len(ptrs) > _t.MAX_ARGV else "") + "]"

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
                return _t.addr(a[1])
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
        e.parts += [str(s32(a[0])), str(off), _t.SEEK.get(a[2], str(a[2]))]

    def d_fcntl(self, e, tid, a, sp):
        cmd = s32(a[1])
        e.parts += [str(s32(a[0])), _t.FCNTL_CMDS.get(cmd, str(cmd))]
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
                    if ret == 0 else _t.addr(a[0]), self._oflags(a[1]).replace("O_RDONLY|", "")
                    if a[1] else "0"]

    def d_pipe(self, e, tid, a, sp):
        e.parts.append(lambda ret: self._struct(tid, a[0], 8, lambda d: "[%d, %d]"
                                                % struct.unpack_from("<ii", d))
                       if ret == 0 else _t.addr(a[0]))

    def d_dup2(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), str(s32(a[1]))]

    def d_dup3(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), str(s32(a[1])), "O_CLOEXEC" if a[2] & 0o2000000
                    else str(a[2])]

    def d_socket(self, e, tid, a, sp):
        t = a[1] & 0xFFFFFFFF
        kind = _t.SOCK_TYPES.get(t & 0xF, str(t & 0xF))
        kind += "|SOCK_CLOEXEC" if t & 0o2000000 else ""
        kind += "|SOCK_NONBLOCK" if t & 0o4000 else ""
        e.parts += [_t.SOCKET_FAMILY.get(s32(a[0]), str(s32(a[0]))), kind, str(s32(a[2]))]

    def _sockaddr(self, tid, guest_addr, size) -> str:
        data = self._peek(tid, guest_addr, min(size, 128))
        if data is None or len(data) < 2:
            return _t.addr(guest_addr)
        family = struct.unpack_from("<H", data)[0]
        if family == 1:
            path = data[2:]
            if path[:1] == b"\0":
                return '{sa_family=AF_UNIX, sun_path=@%s}' % _t.quote(path[1:], None)
            return '{sa_family=AF_UNIX, sun_path=%s}' % _t.quote(path.split(b"\0")[0], None)
        if family == 2 and len(data) >= 8:
            port = struct.unpack_from(">H", data, 2)[0]
            return '{sa_family=AF_INET, sin_port=htons(%d), sin_addr=inet_addr("%s")}' % (
                port, ".".join(str(b) for b in data[4:8]))
        return "{sa_family=%s, ...}" % _t.SOCKET_FAMILY.get(family, str(family))

    def d_connect(self, e, tid, a, sp):
        e.parts += [str(s32(a[0])), self._sockaddr(tid, a[1], a[2]), str(a[2])]

    d_bind = d_connect

    def d_uname(self, e, tid, a, sp):
        def uts(ret):
            if ret != 0:
                return _t.addr(a[0])
            data = self._peek(tid, a[0], 65 * 6) or b""
            fields = [data[65 * i:65 * (i + 1)].split(b"\0")[0] for i in range(6)]
            return "{sysname=%s, nodename=%s, ...}" % (_t.quote(fields[0], None),
                                                      _t.quote(fields[1], None))
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
        e.parts += [self._timespec(tid, a[0]), _t.addr(a[1])]

    def d_clock_nanosleep(self, e, tid, a, sp):
        e.parts += [self.CLOCKS.get(s32(a[0]), str(s32(a[0]))),
                    "TIMER_ABSTIME" if a[1] & 1 else "0", self._timespec(tid, a[2]),
                    _t.addr(a[3])]

    def d_clock_gettime(self, e, tid, a, sp):
        e.parts += [self.CLOCKS.get(s32(a[0]), str(s32(a[0]))),
                    lambda ret: self._timespec(tid, a[1]) if ret == 0 else _t.addr(a[1])]

    def d_mount(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), self._str(tid, a[1]), self._str(tid, a[2]),
                    _t.bits(a[3], [(1, "MS_RDONLY"), (2, "MS_NOSUID"), (4, "MS_NODEV"),
                                (8, "MS_NOEXEC"), (0x1000, "MS_BIND"), (0x2000, "MS_MOVE"),
                                (0x4000, "MS_REC")]),
                    self._str(tid, a[4], _t.STRLEN)]

    def d_umount2(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), _t.bits(a[1], [(1, "MNT_FORCE"), (2, "MNT_DETACH"),
                                                    (4, "MNT_EXPIRE"),
                                                    (8, "UMOUNT_NOFOLLOW")])]

    def d_vu_insmod(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), str(s32(a[1]))]

    d_vu_rmmod = d_chdir

    def d_msocket(self, e, tid, a, sp):
        e.parts += [self._str(tid, a[0]), _t.SOCKET_FAMILY.get(s32(a[1]), str(s32(a[1]))),
                    str(s32(a[2])), str(s32(a[3]))]
