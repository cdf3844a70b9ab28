"""unrealuidgid: virtual user and group ids (VUOS's unrealuidgid), with fakeroot's
ownership table.

Loaded, it serves getuid/geteuid/getresuid/setuid/setreuid/setresuid/setfsuid, the gid
twins, getgroups/setgroups from per-process virtual credentials (inherited at fork, kept
at exec) that start as the real ones. As in VUOS, any process may take any identity
(that is how ``vusu`` works without a password); the calls keep the kernel's shape
(setuid sets all four ids, setreuid moves the saved id...). The real process keeps its
real ids, so the kernel still checks file access against the real user.

Beyond VUOS, like fakeroot: chown by the virtual root, and mknod of a character or block
device by it (an empty regular file stands for the device on the host), are recorded in
a table keyed by the file's (st_dev, st_ino), and stat/lstat/fstat/newfstatat/statx show
them, so ls, tar and cp -a see root-owned files and devices while the host sees files of
the real user. The table lives in this module (not in vufs), so it covers real files and
every virtual file system alike; it lasts for the session, or across sessions in a file
named by the environment variable UMVU_FAKEROOT_DB when the module is loaded.
"""
from __future__ import annotations

import errno
import json
import re
import os
import stat
import struct

from umvu.api import PASS, Module, Native, s32

KEY = "unrealuidgid.creds"  # process.data: the virtual ids (api.set_credentials)
ID_CALLS = ("getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "setuid",
            "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid",
            "setfsgid", "getgroups", "setgroups")
TABLE_CALLS = ("chown", "fchown", "lchown", "fchownat", "mknod", "mknodat")
STAT_CALLS = ("stat", "lstat", "fstat", "newfstatat", "statx")
OPEN_CALLS = ("open", "openat")
PROC_STATUS = re.compile(rb"^/proc/(self|thread-self|\d+)(?:/task/(\d+))?/status$")
O_ACCMODE, O_CLOEXEC = 3, 0o2000000
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH = 0x100, 0x1000
NO_CHANGE = 0xFFFFFFFF
NGROUPS_MAX = 65536



class Creds:
    __slots__ = ("uid", "gid", "groups")

    def __init__(self, uid, gid, groups):
        self.uid = list(uid)  # real, effective, saved, fs
        self.gid = list(gid)
        self.groups = list(groups)

    def copy(self):
        return Creds(self.uid, self.gid, self.groups)


class UnrealUidGid(Module):
    name = "unrealuidgid"
    description = "virtual uid/gid, and a fakeroot table of owners and devices"

    def __init__(self, api) -> None:
        super().__init__(api)
        self.db_path = os.environ.get("UMVU_FAKEROOT_DB")
        self.table: dict[tuple, list] = {}  # (dev, ino) -> [uid, gid, fmt, rdev]
        if self.db_path and os.path.exists(self.db_path):
            try:
                with open(self.db_path) as f:
                    for row in json.load(f):
                        self.table[(row[0], row[1])] = row[2:]
            except (OSError, ValueError, IndexError, TypeError) as e:
                raise OSError(errno.EINVAL, "bad fakeroot table %s: %s"
                              % (self.db_path, e)) from None
        self.entries = api.claim_syscalls(
            self, ID_CALLS + TABLE_CALLS + STAT_CALLS + OPEN_CALLS, self)
        api.set_credentials(lambda t: t.process.data.get(KEY))

    def cleanup(self) -> None:
        self.api.set_credentials(None)
        self.save()
        for e in self.entries:
            self.api.remove_entry(e)

    def save(self) -> None:
        if self.db_path:
            rows = [[k[0], k[1]] + v for k, v in sorted(self.table.items())]
            tmp = self.db_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(rows, f)
            os.replace(tmp, self.db_path)

    # ------------------------------------------------------------ credentials
    def creds(self, t) -> Creds:
        c = t.process.data.get(KEY)
        if c is None:
            uid = gid = [os.getuid()] * 4
            groups = []
            try:
                with open("/proc/%d/status" % t.tid, "rb") as f:
                    for line in f:
                        if line.startswith(b"Uid:"):
                            uid = [int(x) for x in line.split()[1:5]]
                        elif line.startswith(b"Gid:"):
                            gid = [int(x) for x in line.split()[1:5]]
                        elif line.startswith(b"Groups:"):
                            groups = [int(x) for x in line.split()[1:]]
            except OSError:
                pass
            c = Creds(uid, gid, groups)
        else:
            c = c.copy()  # copy on write: forks share the object until one changes
        t.process.data[KEY] = c
        return c

    def _set(self, ids: list, new: list, privileged: bool) -> None:
        """setres*id rules: each new id (or -1) must be one of the old three unless
        privileged; the fs id follows the effective one."""
        allowed = set(ids[:3])
        for v in new:
            if v != NO_CHANGE and not privileged and v not in allowed:
                raise OSError(errno.EPERM, "not permitted")
        for i, v in enumerate(new):
            if v != NO_CHANGE:
                ids[i] = v
        ids[3] = ids[1]

    def _poke_ids(self, args, values):
        for addr, v in zip(args, values):
            self.api.guest_write(addr, struct.pack("<I", v))
        return 0

    def syscall(self, t, sc, args):
        name = sc.name
        if name in STAT_CALLS:
            return PASS
        if name in OPEN_CALLS:
            return self._open_status(t, name, args)
        if name in TABLE_CALLS:
            return self._table_call(t, name, args)
        c = self.creds(t)
        u = [a & 0xFFFFFFFF for a in args[:3]]
        # as VUOS: a virtual identity; every process may take any (vusu needs no
        # password), the calls keep the kernel's shape (setuid sets all four ids)
        root = True
        if name == "getuid":
            return c.uid[0]
        if name == "geteuid":
            return c.uid[1]
        if name == "getgid":
            return c.gid[0]
        if name == "getegid":
            return c.gid[1]
        if name == "getresuid":
            return self._poke_ids(args[:3], c.uid[:3])
        if name == "getresgid":
            return self._poke_ids(args[:3], c.gid[:3])
        if name == "setuid":
            if root:
                c.uid[:] = [u[0]] * 4
            else:
                self._set(c.uid, [NO_CHANGE, u[0], NO_CHANGE], False)
            return 0
        if name == "setgid":
            if root:
                c.gid[:] = [u[0]] * 4
            else:
                self._set(c.gid, [NO_CHANGE, u[0], NO_CHANGE], False)
            return 0
        if name in ("setreuid", "setregid"):
            ids = c.uid if name == "setreuid" else c.gid
            real, eff = u[0], u[1]
            if not root and (real != NO_CHANGE and real not in ids[:2] or
                             eff != NO_CHANGE and eff not in ids[:3]):
                raise OSError(errno.EPERM, "not permitted")
            # the saved id follows the new effective one when the real id is set or
            # the effective one becomes something other than the old real id
            saved = NO_CHANGE
            if real != NO_CHANGE or (eff != NO_CHANGE and eff != ids[0]):
                saved = eff if eff != NO_CHANGE else ids[1]
            self._set(ids, [real, eff, saved], True)
            return 0
        if name in ("setresuid", "setresgid"):
            self._set(c.uid if name == "setresuid" else c.gid, u, root)
            return 0
        if name in ("setfsuid", "setfsgid"):
            ids = c.uid if name == "setfsuid" else c.gid
            old = ids[3]
            if root or u[0] in ids[:4]:
                ids[3] = u[0]
            return old
        if name == "getgroups":
            size = s32(args[0])
            if size < 0:
                return -errno.EINVAL
            if size == 0:
                return len(c.groups)
            if size < len(c.groups):
                return -errno.EINVAL
            self.api.guest_write(args[1], struct.pack("<%dI" % len(c.groups), *c.groups))
            return len(c.groups)
        if name == "setgroups":
            size = s32(args[0])
            if not root:
                return -errno.EPERM
            if not 0 <= size <= NGROUPS_MAX:
                return -errno.EINVAL
            raw = self.api.guest_read(args[1], 4 * size) if size else b""
            c.groups = list(struct.unpack("<%dI" % size, raw))
            return 0
        return PASS

    def _open_status(self, t, name, args):
        """/proc/PID/status shows the process's virtual ids."""
        path_addr, flags = args.path, args.flags
        if name == "openat" and args.dirfd != AT_FDCWD:
            return PASS
        path = self.api.guest_read_str(path_addr)
        m = PROC_STATUS.match(path)
        if m is None or flags & O_ACCMODE:
            return PASS
        who = m.group(2) or m.group(1)
        tid = t.tid if who in (b"self", b"thread-self") else int(who)
        target = self.api.thread_of(tid)
        if target is None:
            return PASS
        with open("/proc/%d/status" % tid, "rb") as f:
            lines = f.read().split(b"\n")
        c = self.creds(target)
        for i, line in enumerate(lines):
            if line.startswith(b"Uid:"):
                lines[i] = b"Uid:\t" + b"\t".join(b"%d" % v for v in c.uid)
            elif line.startswith(b"Gid:"):
                lines[i] = b"Gid:\t" + b"\t".join(b"%d" % v for v in c.gid)
            elif line.startswith(b"Groups:"):
                lines[i] = b"Groups:\t" + b" ".join(b"%d" % v for v in c.groups) + \
                    (b" " if c.groups else b"")
        return self.api.open_memfile(path, b"\n".join(lines), bool(flags & O_CLOEXEC))

    # ------------------------------------------------------------ the fakeroot table
    def _key_of_path(self, dirfd, path_addr, follow, empty_ok=False):
        guest_path = self.api.guest_read_str(path_addr)
        if not guest_path and empty_ok:
            st = self.api.stat_fd(dirfd)
        else:
            _, st = self.api.resolve(dirfd, guest_path, follow)
            if st is None:
                raise OSError(errno.ENOENT, "no such file")
        return (st.st_dev, st.st_ino), st

    def _table_call(self, t, name, args):
        c = self.creds(t)
        if c.uid[1] != 0:
            return PASS  # an ordinary virtual user: the kernel decides
        if name in ("mknod", "mknodat"):
            dirfd = AT_FDCWD if name == "mknod" else args.dirfd
            path_addr, mode, dev = args.path, args.mode, args.uint
            fmt = stat.S_IFMT(mode & 0xFFFFFFFF)
            if fmt not in (stat.S_IFCHR, stat.S_IFBLK):
                return PASS
            new = args.changed(mode=stat.S_IFREG | (mode & 0o7777), uint=0)
            uid, gid = c.uid[3], c.gid[3]

            def done(ret):
                if ret == 0:
                    key, _ = self._key_of_path(dirfd, path_addr, False)
                    self.table[key] = [uid, gid, fmt, dev & 0xFFFFFFFFFFFFFFFF]
                    self.save()
                return ret
            return Native(new, done)
        uid, gid = args.uid, args.gid
        if name == "fchown":
            st = self.api.stat_fd(args.fd)
            key = (st.st_dev, st.st_ino)
        elif name == "fchownat":
            key, st = self._key_of_path(args.dirfd, args.path,
                                        not args.flags & AT_SYMLINK_NOFOLLOW,
                                        empty_ok=bool(args.flags & AT_EMPTY_PATH))
        else:
            key, st = self._key_of_path(AT_FDCWD, args.path, name == "chown")
        row = self.table.get(key) or [st.st_uid, st.st_gid, 0, 0]
        uid, gid = uid & 0xFFFFFFFF, gid & 0xFFFFFFFF
        if uid != NO_CHANGE:
            row[0] = uid
        if gid != NO_CHANGE:
            row[1] = gid
        self.table[key] = row
        self.save()
        return 0

    def after(self, t, sc, args, ret):
        """stat results of files in the table show the recorded owner and type."""
        if ret != 0 or sc.name not in STAT_CALLS or not self.table:
            return None
        if sc.name == "statx":
            addr = args.ptr
            raw = bytearray(self.api.guest_read(addr, 144))
            ino = struct.unpack_from("<Q", raw, 32)[0]
            dev = os.makedev(*struct.unpack_from("<II", raw, 136))
            row = self.table.get((dev, ino))
            if row is None:
                return None
            struct.pack_into("<II", raw, 20, row[0], row[1])
            if row[2]:
                mode = struct.unpack_from("<H", raw, 28)[0]
                struct.pack_into("<H", raw, 28, row[2] | (mode & 0o7777))
                struct.pack_into("<II", raw, 128, os.major(row[3]), os.minor(row[3]))
            self.api.guest_write(addr, bytes(raw))
            return None
        addr = args.ptr  # (stat, lstat, fstat, newfstatat)
        raw = bytearray(self.api.guest_read(addr, 48))
        dev, ino = struct.unpack_from("<QQ", raw, 0)
        row = self.table.get((dev, ino))
        if row is None:
            return None
        struct.pack_into("<II", raw, 28, row[0], row[1])
        if row[2]:
            mode = struct.unpack_from("<I", raw, 24)[0]
            struct.pack_into("<I", raw, 24, row[2] | (mode & 0o7777))
            struct.pack_into("<Q", raw, 40, row[3])
        self.api.guest_write(addr, bytes(raw))
        return None
