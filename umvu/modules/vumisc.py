"""vumisc: virtual time and host name for the view (VUOS's vumisc).

``vumount -t vumisctime none DIR`` makes DIR hold three files, ``base``, ``frequency``
and ``offset``; guests then see CLOCK_REALTIME (clock_gettime, gettimeofday, time) as

    T = (t - base) * frequency + base + offset

(t: the host's time, in seconds). Writing a file changes the clock: a new frequency
takes the current host time as base and moves offset so that T does not jump.
clock_settime/settimeofday (``date -s``) by the virtual root (unrealuidgid's euid 0, or
the real root) move the view's clock only; others get EPERM. Relative sleeps
(nanosleep, clock_nanosleep, select/pselect/poll/ppoll/epoll_wait timeouts) and the
alarm and ITIMER_REAL timers last 1/frequency as long on the host; absolute CLOCK_REALTIME sleeps end at the virtual
deadline. Programs exec'd while the module is loaded run without the vDSO (its entry
in their auxiliary vector is hidden), so their time calls reach umvu.

``vumount -t vumiscuname [-o nodename=NAME,domainname=NAME] none DIR`` gives the view
its own host name: uname shows it, sethostname/setdomainname (by the virtual root) change
it inside the view only; DIR holds ``nodename`` and ``domainname`` files.
"""
from __future__ import annotations

import errno
import os
import stat
import struct
import time
import types

from umvu.api import PASS, RESTARTS, Module, Native, parse_options, s32, s64, syscalls

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW = 0, 1, 4
CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME = 5, 6, 7
REALTIME_CLOCKS = (CLOCK_REALTIME, CLOCK_REALTIME_COARSE)
# the clocks that follow the frequency (realtime also follows base and offset)
CLOCK_KIND = {CLOCK_REALTIME: CLOCK_REALTIME, CLOCK_REALTIME_COARSE: CLOCK_REALTIME,
              CLOCK_MONOTONIC: CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW: CLOCK_MONOTONIC,
              CLOCK_MONOTONIC_COARSE: CLOCK_MONOTONIC, CLOCK_BOOTTIME: CLOCK_BOOTTIME}
TIMER_ABSTIME = 1
AT_SYSINFO_EHDR, AT_IGNORE, AT_NULL = 33, 1, 0
TIME_CALLS = ("clock_gettime", "gettimeofday", "time", "clock_settime", "settimeofday",
              "nanosleep", "clock_nanosleep", "select", "pselect6", "poll", "ppoll",
              "epoll_wait", "epoll_pwait", "alarm", "setitimer", "getitimer")
ITIMER_REAL = 0
NR_SETITIMER = syscalls.number("setitimer")
UNAME_CALLS = ("uname", "sethostname", "setdomainname")




def is_virtual_root(api) -> bool:
    creds = api.credentials(api.thread())
    if creds is not None:
        return creds.uid[1] == 0
    return api.caller()[0] == 0


class PseudoFiles:
    """A directory of small text files a module computes (read) and takes (written,
    applied at close)."""

    def __init__(self, names, read, write):
        self.names, self.read, self.write = names, read, write
        self.born = time.time_ns()

    def _name(self, path):
        name = path[1:]
        if path != b"/" and name not in self.names:
            raise OSError(errno.ENOENT, "no such file")
        return name

    def lstat(self, path):
        name = self._name(path)
        if path == b"/":
            mode, size = stat.S_IFDIR | 0o755, 0
        else:
            mode, size = stat.S_IFREG | 0o644, len(self.read(name))
        return types.SimpleNamespace(
            st_mode=mode, st_ino=1 + (self.names.index(name) + 1 if name else 0),
            st_dev=os.makedev(0, 0x70), st_nlink=2 if path == b"/" else 1,
            st_uid=os.getuid(), st_gid=os.getgid(), st_rdev=0, st_size=size,
            st_blksize=4096, st_blocks=0, st_atime_ns=self.born, st_mtime_ns=self.born,
            st_ctime_ns=self.born)

    def access(self, path, mode):
        self.lstat(path)

    def open(self, path, flags, mode):
        name = self._name(path)
        if path == b"/":
            return types.SimpleNamespace(name=None, dir=True)
        data = b"" if flags & os.O_TRUNC else self.read(name)
        return types.SimpleNamespace(name=name, data=bytearray(data), dirty=False,
                                     dir=False)

    def getdents(self, h, offset):
        entries = [b".", b".."] + list(self.names)
        return [(n, i + 1, 4 if i < 2 else 8, i + 1)
                for i, n in enumerate(entries)][offset:]

    def pread(self, h, size, offset):
        return bytes(h.data[offset:offset + size])

    def pwrite(self, h, data, offset):
        if len(h.data) < offset:
            h.data.extend(bytes(offset - len(h.data)))
        h.data[offset:offset + len(data)] = data
        h.dirty = True
        return len(data)

    def ftruncate(self, h, length):
        del h.data[length:]
        h.data.extend(bytes(max(0, length - len(h.data))))
        h.dirty = True

    def truncate(self, path, length):
        if length == 0:
            return
        raise OSError(errno.EINVAL, "write the whole value")

    def fstat(self, h):
        return self.lstat(b"/" + h.name if h.name else b"/")

    def close(self, h):
        if not h.dir and h.dirty:
            self.write(h.name, bytes(h.data))

    def statfs(self, path):
        return types.SimpleNamespace(f_bsize=4096, f_frsize=4096, f_blocks=0, f_bfree=0,
                                     f_bavail=0, f_files=0, f_ffree=0, f_namemax=255,
                                     f_type=0x9fa0, f_flag=0)


class VirtualClock:
    """T = (t - base) * freq + base + offset, t read from the host clock ``clock_id``."""

    def __init__(self, clock_id: int):
        self.clock_id = clock_id
        self.base = 0.0
        self.freq = 1.0
        self.offset = 0.0

    def host(self) -> float:
        return time.clock_gettime(self.clock_id)

    def now(self, host: float | None = None) -> float:
        t = self.host() if host is None else host
        return (t - self.base) * self.freq + self.base + self.offset

    def host_of(self, virtual: float) -> float:
        return (virtual - self.base - self.offset) / self.freq + self.base

    def set_now(self, virtual: float) -> None:
        self.offset += virtual - self.now()

    def set_freq(self, freq: float) -> None:
        host = self.host()
        old = self.now(host)
        self.base = host
        self.freq = freq
        self.offset += old - self.now(host)

    def changed(self) -> bool:
        return self.freq != 1.0 or self.offset != 0.0


def _ts(seconds: float) -> bytes:
    sec = int(seconds // 1)
    return struct.pack("<qq", sec, min(int((seconds - sec) * 1e9), 999999999))


def _tv(seconds: float, scale: float) -> bytes:
    """A timeval of seconds * scale (a nonzero time stays nonzero)."""
    if seconds <= 0:
        return bytes(16)
    us = max(1, round(seconds * scale * 1e6))
    return struct.pack("<qq", us // 1000000, us % 1000000)


class TimeService(PseudoFiles):
    """One vumisctime mount: the clock, its files, and the syscalls it serves."""

    def __init__(self, api):
        self.api = api
        self.clocks = {k: VirtualClock(k) for k in set(CLOCK_KIND.values())}
        self.clock = self.clocks[CLOCK_REALTIME]
        super().__init__((b"base", b"frequency", b"offset"), self._read, self._write)

    def _read(self, name):
        c = self.clock
        value = {b"base": c.base, b"frequency": c.freq, b"offset": c.offset}[name]
        return b"%.9f\n" % value if name != b"frequency" else b"%f\n" % value

    def _write(self, name, data):
        try:
            value = float(data.strip() or b"x")
        except ValueError:
            raise OSError(errno.EINVAL, "not a number") from None
        if name == b"frequency":
            if not value > 0:
                raise OSError(errno.EINVAL, "the frequency must be positive")
            for clock in self.clocks.values():
                clock.set_freq(value)
        elif name == b"offset":
            self.clock.offset = value
        else:
            self.clock.base = value

    # ------------------------------------------------------------ the syscalls
    def syscall(self, t, sc, args):
        api, c = self.api, self.clock
        name = sc.name
        if name == "clock_gettime":
            clock = self.clocks.get(CLOCK_KIND.get(s32(args[0])))
            if clock is None or not clock.changed():
                return PASS
            api.guest_write(args[1], _ts(clock.now()))
            return 0
        if name == "gettimeofday":
            now = c.now()
            if args[0]:
                sec = int(now // 1)
                api.guest_write(args[0], struct.pack("<qq", sec, int((now - sec) * 1e6)))
            if args[1]:
                api.guest_write(args[1], bytes(8))
            return 0
        if name == "time":
            now = int(c.now() // 1)
            if args[0]:
                api.guest_write(args[0], struct.pack("<q", now))
            return now
        if name in ("clock_settime", "settimeofday"):
            if name == "clock_settime" and s32(args[0]) != CLOCK_REALTIME:
                return PASS
            addr = args[1] if name == "clock_settime" else args[0]
            if not addr:
                return 0 if name == "settimeofday" else -errno.EFAULT
            sec, frac = struct.unpack("<qq", api.guest_read(addr, 16))
            scale = 1e9 if name == "clock_settime" else 1e6
            if not 0 <= frac < scale:
                return -errno.EINVAL
            if not is_virtual_root(api):
                return -errno.EPERM
            c.set_now(sec + frac / scale)
            return 0
        if c.freq == 1.0 and not (name == "clock_nanosleep" and s32(args[1]) & TIMER_ABSTIME):
            return PASS  # relative timeouts are host time at frequency 1
        return self._sleep(t, name, args)

    def _scaled_ts(self, addr, fmt="<qq", unit=1e9):
        """A copy of a guest timespec/timeval scaled to host time, in scratch memory."""
        a, b = struct.unpack(fmt, self.api.guest_read(addr, 16))
        host = (a + b / unit) / self.clock.freq
        sec = int(host // 1)
        out = self.api.scratch_addr(16)
        self.api.guest_write(out, struct.pack(fmt, sec, int((host - sec) * unit)))
        return out

    def _sleep(self, t, name, args):
        new = list(args)
        c = self.clock
        if name == "nanosleep":
            if not args[0]:
                return PASS
            new[0] = self._scaled_ts(args[0])
            return Native(new, self._rem_fixer(args[1]))
        if name == "clock_nanosleep":
            clk, flags = s32(args[0]), s32(args[1])
            if not args[2]:
                return PASS
            if flags & TIMER_ABSTIME:
                clock = self.clocks.get(CLOCK_KIND.get(clk))
                if clock is None or not clock.changed():
                    return PASS
                sec, nsec = struct.unpack("<qq", self.api.guest_read(args[2], 16))
                out = self.api.scratch_addr(16)
                self.api.guest_write(out, _ts(clock.host_of(sec + nsec / 1e9)))
                new[2] = out
                return Native(new)
            new[2] = self._scaled_ts(args[2])
            return Native(new, self._rem_fixer(args[3]))
        if name in ("poll", "epoll_wait", "epoll_pwait"):
            ms = s32(args[2] if name == "poll" else args[3])
            if ms <= 0:
                return PASS
            new[2 if name == "poll" else 3] = max(1, int(ms / c.freq))
            return Native(new)
        if name == "alarm":
            # alarm counts whole seconds: made a setitimer, which counts microseconds
            secs = args[0] & 0xFFFFFFFF
            buf = self.api.scratch_addr(64)
            self.api.guest_write(buf, bytes(16) + _tv(secs, 1 / c.freq))
            api = self.api

            def left(ret):
                if ret < 0:
                    return ret
                _, _, x, y = struct.unpack("<qqqq", api.guest_read(buf + 32, 32))
                remaining = (x + y / 1e6) * c.freq
                return int(remaining) + (1 if remaining % 1 >= 0.5 or
                                         (0 < remaining < 1) else 0)
            return Native([ITIMER_REAL, buf, buf + 32, 0, 0, 0], left, nr=NR_SETITIMER)
        if name in ("setitimer", "getitimer"):
            if s32(args[0]) != ITIMER_REAL:
                return PASS
            old_idx = 2 if name == "setitimer" else 1
            if name == "setitimer" and args[1]:  # it_interval, it_value: two timevals
                a, b, x, y = struct.unpack("<qqqq", self.api.guest_read(args[1], 32))
                out = self.api.scratch_addr(32)
                self.api.guest_write(out, _tv(a + b / 1e6, 1 / c.freq) +
                                     _tv(x + y / 1e6, 1 / c.freq))
                new[1] = out
            return Native(new, self._itimer_fixer(args[old_idx]))
        if name in ("select", "pselect6", "ppoll"):
            idx = {"select": 4, "pselect6": 4, "ppoll": 2}[name]
            if not args[idx]:
                return PASS
            unit = 1e6 if name == "select" else 1e9  # a timeval, or a timespec
            new[idx] = self._scaled_ts(args[idx], "<qq", unit)
            return Native(new, self._left_fixer(args[idx], new[idx], unit))
        return PASS

    def _left_fixer(self, guest_addr, host_addr, unit):
        """select, pselect6 and ppoll write the time left into their timeout (Linux):
        the kernel wrote it into the scaled copy; the guest's own gets it in virtual
        time (also before the kernel restarts the call, -ERESTART*: the hypervisor then
        puts the guest's own call back, which reads it again)."""
        api, freq = self.api, self.clock.freq

        def fix(ret):
            if ret >= 0 or ret == -errno.EINTR or ret in RESTARTS:
                a, b = struct.unpack("<qq", api.guest_read(host_addr, 16))
                left = (a + b / unit) * freq
                api.guest_write(guest_addr, _tv(left, 1) if unit == 1e6 else _ts(left))
            return ret
        return fix

    def _itimer_fixer(self, addr):
        """What the kernel wrote back (the old or current timer) in virtual time."""
        if not addr:
            return None
        api, freq = self.api, self.clock.freq

        def fix(ret):
            if ret == 0:
                a, b, x, y = struct.unpack("<qqqq", api.guest_read(addr, 32))
                api.guest_write(addr, _tv(a + b / 1e6, freq) + _tv(x + y / 1e6, freq))
            return ret
        return fix

    def _rem_fixer(self, rem_addr):
        if not rem_addr:
            return None
        api, freq = self.api, self.clock.freq

        def fix(ret):
            if ret == -errno.EINTR:
                sec, nsec = struct.unpack("<qq", api.guest_read(rem_addr, 16))
                api.guest_write(rem_addr, _ts((sec + nsec / 1e9) * freq))
            return ret
        return fix


class UnameService(PseudoFiles):
    def __init__(self, api, nodename: bytes, domainname: bytes):
        self.api = api
        self.values = {b"nodename": nodename, b"domainname": domainname}
        super().__init__((b"nodename", b"domainname"), self._read, self._write)

    def _read(self, name):
        return self.values[name] + b"\n"

    def _write(self, name, data):
        value = data.strip()
        if len(value) > 64:
            raise OSError(errno.EINVAL, "at most 64 bytes")
        self.values[name] = value

    def syscall(self, t, sc, args):
        if sc.name == "uname":
            return PASS
        size = s64(args[1])
        if not 0 <= size <= 64:
            return -errno.EINVAL
        if not is_virtual_root(self.api):
            return -errno.EPERM
        value = self.api.guest_read(args[0], size) if size else b""
        self.values[b"nodename" if sc.name == "sethostname" else b"domainname"] = value
        return 0

    def after(self, t, sc, args, ret):
        if sc.name != "uname" or ret != 0:
            return None
        # struct utsname: six fields of 65 bytes; nodename is the second, domainname
        # the sixth
        for index, key in ((1, b"nodename"), (5, b"domainname")):
            value = self.values[key][:64]
            self.api.guest_write(args[0] + 65 * index, value + bytes(65 - len(value)))
        return None


class VuMisc(Module):
    name = "vumisc"
    description = "virtual time (vumisctime) and host name (vumiscuname)"
    filesystems = ("vumisctime", "vumiscuname")

    def __init__(self, api) -> None:
        super().__init__(api)
        self.active: dict[str, object] = {}  # fstype -> its (single) service
        self.claims: dict[str, list] = {}

    def mount(self, source, target, fstype, flags, options):
        if fstype in self.active:
            raise OSError(errno.EBUSY, "%s is already mounted in this view" % fstype)
        if fstype == "vumisctime":
            parse_options(options, {})
            service = TimeService(self.api)
            self.claims[fstype] = self.api.claim_syscalls(self, TIME_CALLS, service)
            self.api.on_exec(self.hide_vdso)
        else:
            opts = parse_options(options, {"nodename": str, "domainname": str})
            uts = os.uname()
            service = UnameService(self.api, os.fsencode(opts.get("nodename", uts.nodename)),
                                   os.fsencode(opts.get("domainname", "(none)")))
            self.claims[fstype] = self.api.claim_syscalls(self, UNAME_CALLS, service)
        self.active[fstype] = service
        return service

    def umount(self, service, flags) -> None:
        for fstype, svc in list(self.active.items()):
            if svc is service:
                for e in self.claims.pop(fstype, []):
                    self.api.remove_entry(e)
                if fstype == "vumisctime":
                    self.api.drop_exec_hook(self.hide_vdso)
                del self.active[fstype]

    def hide_vdso(self, tid: int) -> None:
        """Blank AT_SYSINFO_EHDR in a new program's auxiliary vector (its stack starts
        with argc, argv, envp, auxv), so that libc makes real time syscalls."""
        with open("/proc/%d/stat" % tid, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        sp = int(fields[25])  # startstack: where argc is
        def api_read(addr, size):
            return self.api.read_memory(tid, addr, size)
        argc = struct.unpack("<Q", api_read(sp, 8))[0]
        pos = sp + 8 * (argc + 2)  # past argc, argv[] and its NULL
        for _ in range(100000):  # envp up to its NULL
            if struct.unpack("<Q", api_read(pos, 8))[0] == 0:
                break
            pos += 8
        pos += 8
        for _ in range(64):
            key = struct.unpack("<Q", api_read(pos, 8))[0]
            if key == AT_NULL:
                return
            if key == AT_SYSINFO_EHDR:
                self.api.write_memory(tid, pos, struct.pack("<Q", AT_IGNORE))
                return
            pos += 16
