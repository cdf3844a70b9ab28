"""Path system calls: resolve the guest's path in its view and route the call to the
kernel (rewritten when the path crosses into a host tree served natively elsewhere) or
to the module serving it (the ``v_NAME`` handlers, one per call family)."""
from __future__ import annotations

import errno
import os
import stat
import struct

from umvu import kernelrules
from umvu.api import NowNs, capability, implements
from umvu.core import guestabi
from umvu.core.abi import (AT_EMPTY_PATH, AT_REMOVEDIR, AT_SYMLINK_FOLLOW,
                           AT_SYMLINK_NOFOLLOW, O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY,
                           O_DIRECT, O_EXCL, O_NOFOLLOW, O_PATH, O_TMPFILE, O_TRUNC, UTIME_NOW,
                           UTIME_OMIT, s32)
from umvu.core.actions import Native
from umvu.core.hostcalls import NR, TRIES, HostCalls, Swapped, raw_syscall, split, writes
from umvu.core.paths import AT_FDCWD, rebase, within
from umvu.core.vfiles import MemFile, PLUS, VFile


def proc_rest(path: bytes) -> bytes | None:
    """What follows /proc/PID/ (or /proc/PID/task/TID/, PID a number, self or
    thread-self) in path; None if path is not below such a directory."""
    if not path.startswith(b"/proc/"):
        return None
    parts = path[6:].split(b"/", 3)
    if len(parts) < 2 or not (parts[0].isdigit() or parts[0] in (b"self", b"thread-self")):
        return None
    if parts[1] == b"task" and len(parts) == 4 and parts[2].isdigit():
        return parts[3]
    return b"/".join(parts[1:])


def is_proc_link(path: bytes) -> bool:
    """/proc/PID/{fd/N,cwd,exe,root}: a magic link the kernel answers with a host path."""
    rest = proc_rest(path)
    return rest in (b"cwd", b"exe", b"root") or (
        rest is not None and rest.startswith(b"fd/") and rest[3:].isdigit())


def is_proc_mounts(path: bytes) -> bool:
    """/proc/mounts, /proc/PID/mounts, mountinfo (the virtual mount table)."""
    return path in (b"/proc/mounts", b"/proc/mountinfo") or \
        proc_rest(path) in (b"mounts", b"mountinfo")


# the calls that are one operation on a target, a path's or an fd's: t_NAME(service, rel)
# calls that make, remove or rename the entry their path names: . or .. as its last
# component is an error of its own (PathCalls.dot_refusal)
DOT_CHECKED = frozenset(("rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir",
                         "mkdir", "mkdirat", "mknod", "mknodat", "symlink", "symlinkat",
                         "link", "linkat"))
TARGET_OPS = {name: "t_" + op for op, names in (
    ("chmod", "chmod fchmodat fchmodat2 fchmod"),
    ("chown", "chown lchown fchownat fchown"),
    ("utimens", "utimensat utimes futimesat utime"),
    ("statfs", "statfs fstatfs"),
    ("getxattr", "getxattr lgetxattr fgetxattr"),
    ("setxattr", "setxattr lsetxattr fsetxattr"),
    ("listxattr", "listxattr llistxattr flistxattr"),
    ("removexattr", "removexattr lremovexattr fremovexattr")) for name in names.split()}


class PathCalls(HostCalls):
    """Part of VirtualFS: the path calls."""

    def base_dir(self, t, dirfd: int) -> bytes:
        if dirfd == AT_FDCWD:
            return t.fs.cwd
        vf = t.files.fds.get(dirfd)
        if vf is not None:
            if not vf.is_dir:
                raise OSError(errno.ENOTDIR, "not a directory")
            return vf.path
        try:
            target = os.readlink("/proc/%d/fd/%d" % (t.tid, dirfd))
        except OSError:
            raise OSError(errno.EBADF, "bad dirfd") from None
        target = os.fsencode(target)
        if not target.startswith(b"/"):
            raise OSError(errno.ENOTDIR, "not a directory")
        return self.guest_of_host(target)

    def read_path(self, t, guest_addr: int) -> bytes:
        return self.tracer.peekstr(t.tid, guest_addr)

    def follow_of(self, sc, args) -> bool:
        """Whether the call follows a last symlink (its row's rules)."""
        follow = sc.follow
        if follow is not True:
            return bool(s32(args[follow]) & AT_SYMLINK_FOLLOW) if follow is not False \
                else False
        if sc.at_flags is not None:
            return not (s32(args[sc.at_flags]) & AT_SYMLINK_NOFOLLOW)
        if sc.oflags is not None:
            flags = self.open_flags(sc, args)
            return not (flags & O_NOFOLLOW) and not (flags & O_CREAT and flags & O_EXCL)
        return True

    def open_flags(self, sc, args) -> int:
        """The O_* flags of an open-family call (its row's oflags rule)."""
        kind, idx = sc.oflags
        if kind == "oflags":
            return s32(args[idx])
        if kind == "creat":
            return os.O_CREAT | os.O_WRONLY | os.O_TRUNC
        # openat2: struct open_how {u64 flags, mode, resolve}
        raw = self.tracer.peek(self.hv.cur_tid, args[idx], 24)
        return struct.unpack("<QQQ", raw)[0]

    def empty_path_ok(self, sc, args) -> bool:
        idx = sc.at_flags
        return idx is not None and bool(s32(args[idx]) & AT_EMPTY_PATH)

    def scratch_path(self, t, path: bytes, slot: int = 0) -> int:
        addr = self.hv.scratch(t) + slot * 4096
        self.tracer.poke(t.tid, addr, path + b"\0")
        return addr

    def on_host(self, t, args, hosts) -> list:
        """args with its path arguments naming hosts (absolute: their dirfds AT_FDCWD)."""
        new = list(args)
        for slot, ((path_i, dirfd_i), host) in enumerate(zip(args.syscall.paths, hosts)):
            new[path_i] = self.scratch_path(t, host, slot)
            if dirfd_i is not None:
                new[dirfd_i] = AT_FDCWD & 0xFFFFFFFF
        return new

    # ------------------------------------------------------------ path syscalls
    @staticmethod
    def dot_refusal(name: str, guest_path: bytes, args, second: bool = False) -> int:
        """The kernel's error when the last component of a path that names an entry to
        make, remove or rename is . or .. (0 if it is neither): canonicalized, the path
        would name another directory (rename("a/c/..", "y") would rename a)."""
        last = guest_path.rstrip(b"/").rpartition(b"/")[2]
        if guest_path.strip(b"/") == b"" and guest_path:
            last = b"/"
        if last not in (b".", b"..", b"/"):
            return 0
        if name in ("rename", "renameat", "renameat2"):
            return errno.EBUSY
        if name == "unlinkat" and not args.flags & AT_REMOVEDIR or name == "unlink":
            return errno.EISDIR
        if name in ("rmdir", "unlinkat"):
            return {b".": errno.EINVAL, b"..": errno.ENOTEMPTY}.get(last, errno.EBUSY)
        if name in ("mkdir", "mkdirat", "mknod", "mknodat", "symlink", "symlinkat") or (
                second and name in ("link", "linkat")):
            return errno.EEXIST
        return 0

    def on_path(self, t, sc, args):
        """Syscalls whose choice is one path (possibly dirfd-relative)."""
        dirfd = args.dirfd if sc.paths[0][1] is not None else AT_FDCWD
        name = sc.name
        if name == "utimensat" and args.path == 0:  # Linux: a NULL path means the fd itself
            vf = t.files.fds.get(dirfd)
            return None if vf is None else self.fd_op(t, sc, args, vf, dirfd)
        try:
            guest_path = self.read_path(t, args.path)
        except OSError as e:
            return -e.errno
        if guest_path == b"" and self.empty_path_ok(sc, args):
            vf = t.files.fds.get(dirfd)
            if vf is None:
                return None
            return self.fd_op(t, sc, args, vf, dirfd)
        for _ in range(TRIES):  # (a swapping guest: the host tree changed meanwhile)
            try:
                return self.path_call(t, sc, args, dirfd, guest_path)
            except Swapped:
                continue
        return -errno.ELOOP

    def path_call(self, t, sc, args, dirfd: int, guest_path: bytes):
        """on_path, on the guest's path as read once."""
        name = sc.name
        virtual_base = (dirfd == AT_FDCWD and not t.fs.kernel_cwd) or \
            (dirfd != AT_FDCWD and dirfd in t.files.fds)
        if name == "newfstatat" and virtual_base and dirfd != AT_FDCWD:
            t.process.data[PLUS] = True  # see entries_plus
        try:
            if guest_path == b"" or (not self.hv.table.has_paths() and not virtual_base):
                return self.real_path_hook(t, sc, args, None)
            if is_proc_mounts(guest_path) and name in ("open", "openat", "openat2"):
                return self.open_proc_mounts(t, sc, args, guest_path)
            follow = self.follow_of(sc, args)
            r = self.resolver.resolve(self.base_dir(t, dirfd), guest_path, follow=follow,
                                      entry_op=sc.entry)
            # a call that changes the file system: umvu makes it on what it checked
            made = writes(sc, self.open_flags(sc, args) if sc.oflags else None)
        except OSError as e:
            return -e.errno
        if name in DOT_CHECKED:  # (and the host's canonical path lost the dots)
            refused = self.dot_refusal(name, guest_path, args)
            if refused:
                return -(refused if r.exists else errno.ENOENT)
        if r.entry is None:
            if is_proc_mounts(r.path) and name in ("open", "openat", "openat2"):
                return self.open_proc_mounts(t, sc, args, r.path)
            if made:
                done = self.host_call(t, sc, args, [(r.path, r.trailing)], follow)
                if done is not None:
                    return done
            rewrite = None
            if r.crossed or (virtual_base and not guest_path.startswith(b"/")):
                rewrite = self.on_host(t, args, (r.path,))
            return self.real_path_hook(t, sc, args, r, rewrite)
        native = self.native_path(r)
        if native is not None and name not in ("execve", "execveat"):
            if made:
                done = self.host_call(t, sc, args, [(native.rstrip(b"/") or b"/",
                                                     native.endswith(b"/"))], follow)
                if done is not None:
                    return done
            new = self.on_host(t, args, (native,))
            if name == "chdir":
                def chdir_done(ret):
                    if ret == 0:
                        t.fs.cwd, t.fs.kernel_cwd = r.path, r.path == native.rstrip(b"/")
                return Native(new, chdir_done)
            return Native(new, self.readlink_fixer(t, sc, args, r.path))
        op = TARGET_OPS.get(name)
        if op is not None:
            self._need(r)
            return getattr(self, op)(t, args, r.entry.service, r.rel)
        handler = getattr(self, "v_" + name, None)
        if handler is None:
            return -errno.ENOSYS
        return handler(t, sc, args, r)

    @staticmethod
    def native_path(r):
        """The host path the kernel can serve r by, for services that say so (with the
        guest's trailing slash: it means "a directory" to the kernel)."""
        fn = capability(r.entry.service, "native_host") if r.entry is not None else None
        host = fn(r.rel) if fn is not None else None
        if host is not None and r.trailing and not host.endswith(b"/"):
            host += b"/"
        return host

    def guest_of_host(self, host: bytes) -> bytes:
        """A host path the kernel gave (an fd's or a cwd's) as the guest sees it: itself
        where the guest sees it at its own place, else, inside a tree served natively at
        another place, that place."""
        entry, rel = self.hv.table.lookup_path(host)
        if entry is None:
            return host
        fn = capability(entry.service, "native_host")
        if fn is not None and fn(rel) == host:
            return host
        best, best_len = host, -1
        for e in self.hv.table.mounts():
            root = capability(e.service, "native_root")
            if root is None or root == e.key or len(root) <= best_len:
                continue
            if within(host, root):
                best, best_len = rebase(host, root, e.key), len(root)
        return best

    def readlink_fixer(self, t, sc, args, guest_path: bytes):
        """readlink of /proc/PID/{fd/N,cwd,exe,root}: the kernel answers host paths."""
        if sc.name not in ("readlink", "readlinkat") or not is_proc_link(guest_path):
            return None
        addr, size = args.buf_out, args.size

        comps = [c for c in guest_path.split(b"/") if c]
        n, virtual = self.resolver.proc_magic(comps)

        def fix(ret):
            if virtual is not None and n == len(comps):  # a virtual cwd or fd
                guest = virtual[:size]
                self.tracer.poke(t.tid, addr, guest)
                return len(guest)
            if ret <= 0:
                return ret
            target = self.tracer.peek(t.tid, addr, ret)
            guest = self.guest_of_host(target)
            if guest == target:
                return ret
            guest = guest[:size]
            self.tracer.poke(t.tid, addr, guest)
            return len(guest)
        return fix

    def real_path_hook(self, t, sc, args, r, rewrite=None):
        """A path the kernel serves; chdir must be followed to keep the cwd."""
        if sc.name == "chdir":
            def done(ret):
                if ret == 0:
                    t.fs.cwd = os.fsencode(os.readlink("/proc/%d/cwd" % t.tid))
                    t.fs.kernel_cwd = True
                return None
            return Native(rewrite, done)
        fixer = self.readlink_fixer(t, sc, args, r.path if r is not None else b"") \
            if self.hv.table.has_paths() else None
        if fixer is not None:
            return Native(rewrite, fixer)
        return Native(rewrite) if rewrite else None

    def on_path2(self, t, sc, args):
        """rename/link family: both paths must be on the same side (else EXDEV)."""
        try:
            guest_paths = [self.read_path(t, args[path_i]) for path_i, _ in sc.paths]
        except OSError as e:
            return -e.errno
        for _ in range(TRIES):  # (a swapping guest: the host tree changed meanwhile)
            try:
                return self.path2_call(t, sc, args, guest_paths)
            except Swapped:
                continue
        return -errno.ELOOP

    def path2_call(self, t, sc, args, guest_paths):
        """on_path2, on the guest's paths as read once."""
        try:
            linked = self.open_file_linked(t, sc, args, guest_paths[0])
            if linked is not None:
                return self.link_open_file(t, sc, args, linked, guest_paths[1])
        except OSError as e:
            return -e.errno
        res = []
        for n, ((path_i, dirfd_i), guest_path) in enumerate(zip(sc.paths, guest_paths)):
            dirfd = s32(args[dirfd_i]) if dirfd_i is not None else AT_FDCWD
            # the new name never follows, the old one as the row says (linkat's flag)
            follow = self.follow_of(sc, args) if n == 0 or sc.name == "pivot_root" else False
            try:
                r = self.resolver.resolve(self.base_dir(t, dirfd), guest_path, follow=follow,
                                          entry_op=True)
            except OSError as e:
                return -e.errno
            res.append((r, guest_path))
        (r0, p0), (r1, p1) = res
        if sc.name in DOT_CHECKED:  # (and the host's canonical path lost the dots)
            for r, path, second in ((r0, p0, False), (r1, p1, True)):
                refused = self.dot_refusal(sc.name, path, args, second)
                if refused:
                    return -(refused if r.exists else errno.ENOENT)
        hosts = [(r.path + b"/" if r.trailing and r.path != b"/" else r.path)
                 if r.entry is None else self.native_path(r) for r in (r0, r1)]
        if None not in hosts:  # both real or natively served: the kernel decides
            if sc.writes and self.hv.table.has_paths():  # on what umvu checked (hostcalls)
                done = self.host_call(t, sc, args, [(h.rstrip(b"/") or b"/", h.endswith(b"/"))
                                                    for h in hosts],
                                      self.follow_of(sc, args))
                if done is not None:
                    return done
            if r0.entry is None and r1.entry is None and \
                    not (r0.crossed or r1.crossed or not t.fs.kernel_cwd):
                return None
            return Native(self.on_host(t, args, hosts))
        if r0.entry is not r1.entry:
            return -errno.EXDEV
        if r0.rel == b"/" or (r1.rel == b"/" and sc.name not in ("link", "linkat")):
            return -errno.EBUSY  # a mount point (the module never gets its root)
        if sc.name in ("rename", "renameat", "renameat2"):
            flags = args.flags if sc.name == "renameat2" else 0
            if not r0.exists:
                return -errno.ENOENT
            return self.call(r0.entry.service, "rename", r0.rel, r1.rel, flags) or 0
        if sc.name in ("link", "linkat"):
            if not r0.exists:
                return -errno.ENOENT
            if r1.exists:
                return -errno.EEXIST
            return self.call(r0.entry.service, "link", r0.rel, r1.rel) or 0
        return -errno.EINVAL

    # --- virtual path handlers: (t, sc, args, resolved) -> action
    def _need(self, r):
        if not r.exists:
            raise OSError(errno.ENOENT, "no such file")

    def _stat_out(self, t, guest_addr, st):
        self.tracer.poke(t.tid, guest_addr, guestabi.encode_stat(st))
        return 0

    def v_stat(self, t, sc, args, r):
        self._need(r)
        return self._stat_out(t, args.ptr, r.st)

    v_lstat = v_newfstatat = v_stat

    def v_statx(self, t, sc, args, r):
        refused = guestabi.statx_refusal(args.flags, args.uint)
        if refused:
            return -refused
        self._need(r)
        self.tracer.poke(t.tid, args.ptr, guestabi.encode_statx(r.st, args.uint))
        return 0

    def _access(self, t, r, mode):
        self._need(r)
        svc = r.entry.service
        if implements(svc, "access"):
            return self.call(svc, "access", r.rel, mode) or 0
        return 0

    def v_access(self, t, sc, args, r):
        return self._access(t, r, args.mode)

    v_faccessat = v_faccessat2 = v_access

    def v_readlink(self, t, sc, args, r):
        self._need(r)
        if not stat.S_ISLNK(r.st.st_mode):
            return -errno.EINVAL
        size = s32(args.size)  # (the kernel's bufsiz is an int)
        if size <= 0:
            return -errno.EINVAL
        target = self.call(r.entry.service, "readlink", r.rel)[:size]
        self.tracer.poke(t.tid, args.buf_out, target)
        return len(target)

    v_readlinkat = v_readlink

    def v_mkdir(self, t, sc, args, r):
        if r.exists:
            return -errno.EEXIST
        mode = kernelrules.mkdir_mode(args.mode) & ~t.fs.umask
        return self.call(r.entry.service, "mkdir", r.rel, mode) or 0

    v_mkdirat = v_mkdir

    def v_mknod(self, t, sc, args, r):
        if r.exists:
            return -errno.EEXIST
        mode = args.mode
        mode = (mode & ~0o7777) | (mode & 0o7777 & ~t.fs.umask)
        if stat.S_IFMT(mode) == 0:
            mode |= stat.S_IFREG
        return self.call(r.entry.service, "mknod", r.rel, mode, args.uint) or 0

    v_mknodat = v_mknod

    def v_rmdir(self, t, sc, args, r):
        self._need(r)
        if not stat.S_ISDIR(r.st.st_mode):
            return -errno.ENOTDIR
        if r.rel == b"/":
            return -errno.EBUSY
        return self.call(r.entry.service, "rmdir", r.rel) or 0

    def v_unlink(self, t, sc, args, r):
        self._need(r)
        if stat.S_ISDIR(r.st.st_mode):
            return -errno.EISDIR
        return self.call(r.entry.service, "unlink", r.rel) or 0

    def v_unlinkat(self, t, sc, args, r):
        if args.flags & AT_REMOVEDIR:
            return self.v_rmdir(t, sc, args, r)
        return self.v_unlink(t, sc, args, r)

    def v_symlink(self, t, sc, args, r):
        try:
            target = self.read_path(t, args.str)
        except OSError as e:
            return -e.errno
        if r.exists:
            return -errno.EEXIST
        return self.call(r.entry.service, "symlink", target, r.rel) or 0

    v_symlinkat = v_symlink

    def v_truncate(self, t, sc, args, r):
        self._need(r)
        if args.off < 0:
            return -errno.EINVAL
        if stat.S_ISDIR(r.st.st_mode):
            return -errno.EISDIR
        if not stat.S_ISREG(r.st.st_mode):  # (a fifo, a device, a socket: vfs_truncate)
            return -errno.EINVAL
        ret = self.call(r.entry.service, "truncate", r.rel, args.off) or 0
        self.content_changed_ino(r.entry, r.st.st_ino)
        return ret

    def _times(self, t, guest_addr, kind):
        """(atime_ns, mtime_ns) from a guest timespec[2]/timeval[2]/utimbuf; None = omit."""
        import time as _time
        now = NowNs(_time.time_ns())
        if guest_addr == 0:
            return now, now
        if kind == "utimbuf":
            a, m = struct.unpack("<qq", self.tracer.peek(t.tid, guest_addr, 16))
            return a * 10**9, m * 10**9
        a_s, a_x, m_s, m_x = struct.unpack("<qqqq", self.tracer.peek(t.tid, guest_addr, 32))
        if kind == "timeval":
            return a_s * 10**9 + a_x * 1000, m_s * 10**9 + m_x * 1000
        out = []
        for sec, nsec in ((a_s, a_x), (m_s, m_x)):
            if nsec == UTIME_OMIT:
                out.append(None)
            elif nsec == UTIME_NOW:
                out.append(now)
            elif not 0 <= nsec < 10**9:
                raise OSError(errno.EINVAL, "bad timespec")
            else:
                out.append(sec * 10**9 + nsec)
        return tuple(out)

    TIMES = {"utimensat": "timespec", "utimes": "timeval", "futimesat": "timeval",
             "utime": "utimbuf"}

    def v_chdir(self, t, sc, args, r):
        self._need(r)
        if not stat.S_ISDIR(r.st.st_mode):
            return -errno.ENOTDIR
        self._access(t, r, os.X_OK)
        t.fs.cwd = r.path
        t.fs.kernel_cwd = False
        return 0

    def _xattr_name(self, t, guest_addr):
        name = self.tracer.peekstr(t.tid, guest_addr, 256)
        if not name:
            raise OSError(errno.ERANGE, "empty name")
        return name

    # --- the operations of a path and of an fd alike: (service, rel) names the target;
    # the calls of each (path, *at, l*, f*): TARGET_OPS
    def t_chmod(self, t, args, svc, rel):
        return self.call(svc, "chmod", rel, args.mode & 0o7777) or 0

    def t_chown(self, t, args, svc, rel):
        return self.call(svc, "chown", rel, args.uid, args.gid) or 0

    def t_utimens(self, t, args, svc, rel):
        times = self._times(t, args.ptr, self.TIMES[args.syscall.name])
        return self.call(svc, "utimens", rel, *times) or 0

    def t_statfs(self, t, args, svc, rel):
        sv = self.call(svc, "statfs", rel)
        self.tracer.poke(t.tid, args.ptr, guestabi.encode_statfs(sv))
        return 0

    def t_getxattr(self, t, args, svc, rel):
        value = self.call(svc, "getxattr", rel, self._xattr_name(t, args.str))
        return self.sized_out(t, args.buf_out, args.size, value)

    def t_setxattr(self, t, args, svc, rel):
        value = self.tracer.peek(t.tid, args.buf_in, args.size) if args.size else b""
        return self.call(svc, "setxattr", rel, self._xattr_name(t, args.str), value,
                         args.flags) or 0

    def t_listxattr(self, t, args, svc, rel):
        names = self.call(svc, "listxattr", rel)
        return self.sized_out(t, args.buf_out, args.size, b"".join(n + b"\0" for n in names))

    def t_removexattr(self, t, args, svc, rel):
        return self.call(svc, "removexattr", rel, self._xattr_name(t, args.str)) or 0

    def v_execve(self, t, sc, args, r):
        """The kernel execs a real file: the module's own host file when it has one,
        else a private copy of the content (the kernel then reads #! lines from it)."""
        self._need(r)
        if not stat.S_ISREG(r.st.st_mode):
            return -errno.EACCES
        self._access(t, r, os.X_OK)
        host = capability(r.entry.service, "host_path")
        if host is not None:
            real = host(r.rel)
        else:
            real = self.hv.exec_copy(r.entry, r.rel, r.st)
        return Native(self.on_host(t, args, (real,)))

    v_execveat = v_execve

    # --- open
    def v_open(self, t, sc, args, r):
        flags = self.open_flags(sc, args)
        if sc.name == "openat2":
            mode = struct.unpack("<QQQ", self.tracer.peek(t.tid, args.ptr, 24))[1]
        else:
            mode = args.mode
        mode = mode & 0o7777 & ~t.fs.umask
        if flags & O_TMPFILE == O_TMPFILE:
            return self.open_tmpfile(t, flags, mode, r)
        if r.exists:
            if flags & O_CREAT and flags & O_EXCL:
                return -errno.EEXIST
            if stat.S_ISLNK(r.st.st_mode) and flags & O_NOFOLLOW and not flags & O_PATH:
                return -errno.ELOOP
            if flags & O_DIRECTORY and not stat.S_ISDIR(r.st.st_mode):
                return -errno.ENOTDIR
            if stat.S_ISDIR(r.st.st_mode) and (flags & O_ACCMODE) != os.O_RDONLY:
                return -errno.EISDIR
        elif not flags & O_CREAT:
            return -errno.ENOENT
        elif r.trailing:
            return -errno.EISDIR
        elif flags & O_DIRECTORY:
            return -errno.EINVAL
        if flags & O_PATH:  # a location only: no module open (fstat, *at, fchdir work)
            if not r.exists:
                return -errno.ENOENT
            vf = VFile(r.entry, r.entry.service, None, r.path, flags & ~O_CLOEXEC,
                       stat.S_ISDIR(r.st.st_mode))
            return self.install(t, vf, flags & O_CLOEXEC)
        kind = stat.S_IFMT(r.st.st_mode) if r.exists else 0
        if kind in (stat.S_IFCHR, stat.S_IFBLK):
            # a device node of a virtual file system whose number a module claims
            dev = self.hv.table.find("blkdev" if kind == stat.S_IFBLK else "chrdev",
                                     r.st.st_rdev)
            if dev is not None and dev.service is not r.entry.service:
                handle = self.call(dev.service, "open", b"/", flags & ~O_CLOEXEC, mode)
                vf = VFile(dev, dev.service, handle, r.path, flags & ~O_CLOEXEC, False)
                return self.install(t, vf, flags & O_CLOEXEC)
        special = capability(r.entry.service, "special_path")
        if r.exists and special is not None and kind in (
                stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK):
            # fifos (devices, sockets) of a module: the kernel opens a real object the
            # module names (a blocking fifo open must block the guest, not umvu), once
            # the module's own file allows it (the object's mode is umvu's)
            if implements(r.entry.service, "access"):
                acc = flags & O_ACCMODE
                want = (os.R_OK if acc in (os.O_RDONLY, os.O_RDWR) else 0) | \
                    (os.W_OK if acc in (os.O_WRONLY, os.O_RDWR) or flags & O_TRUNC else 0)
                if want:
                    self.call(r.entry.service, "access", r.rel, want)
            host = self.call(r.entry.service, "special_path", r.rel, r.st)
            if kind == stat.S_IFIFO and within(host, os.fsencode(self.hv.private_dir())):
                # umvu's own fifo standing for the module's (its rules were applied
                # above): umvu opens it for the guest
                try:
                    return self.open_fifo_for(host, flags)
                except OSError as e:
                    return -e.errno
            return Native(self.on_host(t, args, (host,)))
        handle = self.call(r.entry.service, "open", r.rel, flags & ~O_CLOEXEC, mode)
        is_dir = stat.S_ISDIR(r.st.st_mode) if r.exists else False
        vf = VFile(r.entry, r.entry.service, handle, r.path, flags & ~O_CLOEXEC, is_dir)
        if r.exists and flags & O_TRUNC:
            self.content_changed(vf)
        if kind == stat.S_IFREG and flags & (O_ACCMODE | O_TRUNC) == os.O_RDONLY and not (
                flags & O_DIRECT and capability(r.entry.service, "direct_io_align")):
            call = self.content_call(t, vf, flags, r.st)
            if call is not None:
                return self.install(t, vf, flags & O_CLOEXEC, call, r.st)
        return self.install(t, vf, flags & O_CLOEXEC, st=r.st if r.exists else None)

    v_openat = v_creat = v_openat2 = v_open

    def open_tmpfile(self, t, flags, mode, r):
        """open(O_TMPFILE): a new file with no name in the directory r (the service's
        tmpfile; absent: EOPNOTSUPP), its fd's path shown as the kernel shows it."""
        if flags & O_CREAT or flags & O_ACCMODE not in (os.O_WRONLY, os.O_RDWR):
            return -errno.EINVAL
        if not r.exists:
            return -errno.ENOENT
        if not stat.S_ISDIR(r.st.st_mode):
            return -errno.ENOTDIR
        if not implements(r.entry.service, "tmpfile"):
            return -errno.EOPNOTSUPP
        handle = self.call(r.entry.service, "tmpfile", r.rel, flags & ~O_CLOEXEC, mode)
        vf = VFile(r.entry, r.entry.service, handle, r.path, flags & ~O_CLOEXEC, False)
        st = self.fstat_of(vf)
        vf.path = r.path.rstrip(b"/") + b"/#%d (deleted)" % st.st_ino
        return self.install(t, vf, flags & O_CLOEXEC, st=st)

    def open_file_linked(self, t, sc, args, guest_path):
        """linkat of an open file, by AT_EMPTY_PATH or by a followed /proc/PID/fd/N
        (/dev/fd/N): (its VFile, None) when virtual, (None, the /proc path umvu links
        it by) when real; None when the old path names no open file."""
        if sc.name != "linkat":
            return None
        flags = s32(args.flags)
        if guest_path == b"" and flags & AT_EMPTY_PATH:
            dirfd = s32(args.dirfd)
            if dirfd == AT_FDCWD:
                return None
            tid, fd = t.tid, dirfd
        elif flags & AT_SYMLINK_FOLLOW:
            if guest_path.startswith(b"/dev/fd/"):
                guest_path = b"/proc/self/fd/" + guest_path[8:]
            parts = guest_path.split(b"/")
            if len(parts) == 7 and parts[3] == b"task":
                del parts[2:4]  # /proc/PID/task/TID/fd/N: the thread's
            if len(parts) != 5 or parts[:2] != [b"", b"proc"] or parts[3] != b"fd" or \
                    not parts[4].isdigit():
                return None
            who = parts[2]
            tid = t.tid if who in (b"self", b"thread-self") else \
                int(who) if who.isdigit() else None
            if tid is None or self.hv.procs.get(tid) is None:
                return None  # (not a guest's: the kernel's own rules)
            fd = int(parts[4])
        else:
            return None
        owner = self.hv.procs.get(tid)
        vf = owner.files.fds.get(fd) if owner is not None else None
        if vf is not None:
            return vf, None
        if not os.path.lexists("/proc/%d/fd/%d" % (tid, fd)):
            raise OSError(errno.EBADF if guest_path == b"" else errno.ENOENT, "no such fd")
        return None, b"/proc/%d/fd/%d" % (tid, fd)

    def link_open_file(self, t, sc, args, linked, new_path):
        """linkat of an open file (open_file_linked's answer) to new_path: a virtual one
        by its service (link_open, else link of its path), a real one by umvu on the
        checked directory of the new name, with the guest's ids."""
        vf, magic = linked
        dirfd = s32(args[sc.paths[1][1]])
        r1 = self.resolver.resolve(self.base_dir(t, dirfd), new_path, follow=False,
                                   entry_op=True)
        refused = self.dot_refusal(sc.name, new_path, args, True)
        if refused or r1.exists:
            return -(refused or errno.EEXIST)
        if vf is not None:
            if vf.entry is None or r1.entry is not vf.entry:
                return -errno.EXDEV
            if vf.is_dir:
                return -errno.EPERM
            if vf.handle is not None and implements(vf.service, "link_open"):
                return self.call(vf.service, "link_open", vf.handle, r1.rel) or 0
            return self.call(vf.service, "link", self.hv.table.lookup_path(vf.path)[1],
                             r1.rel) or 0
        host = r1.path if r1.entry is None else self.native_path(r1)
        if host is None:
            return -errno.EXDEV
        parent, last = split(host.rstrip(b"/") or b"/")
        fd = self.host_dir(parent)
        try:
            return self.made_as(t, raw_syscall, NR["linkat"], AT_FDCWD, magic, fd, last,
                                AT_SYMLINK_FOLLOW)
        finally:
            os.close(fd)
            self.tracer.steps_forget()

    def open_proc_mounts(self, t, sc, args, path):
        data = self.hv.proc_mounts(t, path.endswith(b"mountinfo"))
        vf = VFile(None, MemFile(data), 0, path, os.O_RDONLY, False)
        return self.install(t, vf, self.open_flags(sc, args) & O_CLOEXEC)
