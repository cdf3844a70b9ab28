"""Virtual system calls (numbers Linux does not use, as VUOS) and mount/umount2.

ABI (all return -errno on error):
    vu_insmod(-1)  (const char *name, int flags)         load one module
    vu_rmmod(-2)   (const char *name)                    unload it (EBUSY if in use)
    vu_lsmod(-3)   (char *buf, size_t size)              "name\\tdescription\\n"...
    vuctl(-4)      (int op, ...)                         see VUCTL_* below
Results that fill a buffer return the length needed; with size 0 (or too small) nothing
is written (size too small: ERANGE), like listxattr.
``mount(2)`` with a file system type served by a loaded module mounts it virtually;
``umount2(2)`` of a virtual mount point unmounts it (EBUSY while in use, unless
MNT_FORCE or MNT_DETACH).
"""
from __future__ import annotations

import errno
import os
import stat

from umvu.api import capability, implements
from umvu.core.errors import call_to_retval
from umvu.core.log import INFO, log
from umvu.core.mounts import options_shown
from umvu.core.paths import AT_FDCWD, rebase, within
from umvu.core.registry import Entry, load_module_class


from umvu.core.abi import DEBUG_TAGS
from umvu.core.abi import (MNT_DETACH, MNT_FORCE, MS_BIND, MS_MOVE, MS_RDONLY,  # noqa: F401
                           MS_REC, VUCTL_ACCEPTS, VUCTL_FSTYPES, VUCTL_GETDEBUGTAGS,
                           VUCTL_GETNAME, VUCTL_LASTERROR, VUCTL_LSOF, VUCTL_MOUNTS,
                           VUCTL_PS, VUCTL_SETDEBUGTAGS, VUCTL_SETLOGLEVEL, VUCTL_SETNAME,
                           s32)


class VirtualSyscalls:
    def __init__(self, hv) -> None:
        self.hv = hv
        self.tracer = hv.tracer
        self.last_error: dict[int, str] = {}  # tgid -> message

    def _failed(self, t, e: OSError, what: str) -> None:
        msg = e.strerror or os.strerror(e.errno or 0)
        if e.errno and msg != os.strerror(e.errno):
            msg = "%s: %s" % (msg, os.strerror(e.errno))
        if e.filename is not None:  # (the file the module could not have)
            msg = "%s: %s" % (os.fsdecode(e.filename), msg)
        self.last_error[t.process.tgid] = "%s: %s" % (what, msg)

    def on_virtual(self, t, sc, args):
        handler = getattr(self, sc.name, None)
        if handler is None:
            return -errno.ENOSYS
        return handler(t, args)

    def _out(self, t, guest_addr, size, data: bytes) -> int:
        return self.hv.vfs.sized_out(t, guest_addr, size, data)

    # ------------------------------------------------------------ modules
    def vu_insmod(self, t, args):
        name = self.tracer.peekstr(t.tid, args.module).decode("utf-8", "surrogateescape")
        try:
            self.may_load(name)
            ret = self.insmod(name)
        except OSError as e:
            self.last_error[t.process.tgid] = e.strerror or ""
            raise
        if ret == -errno.ENOEXEC:
            self.last_error[t.process.tgid] = self._load_error
        return ret

    def may_load(self, name: str) -> None:
        """umvu's own modules (a short or dotted name) may be loaded by anyone; a
        module file as api.may_run_code says."""
        if "/" in name or name.endswith(".py"):
            self.hv.api.may_run_code(name)

    def insmod(self, name: str) -> int:
        hv = self.hv
        short = os.path.basename(name)[:-3] if name.endswith(".py") else name
        if short in hv.modules:
            return -errno.EEXIST
        try:
            cls = load_module_class(name)
        except OSError:
            raise
        except Exception as e:  # a module that does not even import
            self._load_error = "%s: %s" % (type(e).__name__, e)
            log.info("umvu: module %s: %s", name, self._load_error)
            return -errno.ENOEXEC
        key = cls.name or short
        if key in hv.modules:
            return -errno.EEXIST
        if not hv.modules:  # cwds and umasks went unfollowed until now
            hv.tracer.set_autonomous(False)  # modules act at clone and exec from now on
            for thread in hv.all_threads():
                hv.refresh_fs(thread)
        hv.need_syscalls()
        hv.modules[key] = cls(hv.api)
        return 0

    def vu_rmmod(self, t, args):
        name = self.tracer.peekstr(t.tid, args.module).decode("utf-8", "surrogateescape")
        hv = self.hv
        mod = hv.modules.get(name)
        if mod is None:
            return -errno.ENOENT
        for e in hv.table.entries:
            if e.module is mod and (e.users > 0 or e.mounted):
                return -errno.EBUSY
        if self._cwd_inside([e.key for e in hv.table.entries
                             if e.module is mod and e.kind == "path"]):
            return -errno.EBUSY
        mod.cleanup()
        for e in list(hv.table.entries):
            if e.module is mod:
                hv.table.remove(e)
        del hv.modules[name]
        return 0

    def vu_lsmod(self, t, args):
        text = "".join("%s\t%s\n" % (n, m.description) for n, m in self.hv.modules.items())
        return self._out(t, args.buf_out, args.size, text.encode())

    # ------------------------------------------------------------ vuctl
    def vuctl(self, t, args):
        op = args.op
        hv = self.hv
        if op == VUCTL_GETNAME:
            return self._out(t, args.arg, args.arg_size, hv.view_name)
        if op == VUCTL_SETNAME:
            hv.view_name = self.tracer.peekstr(t.tid, args.arg, 256)
            return 0
        if op == VUCTL_GETDEBUGTAGS:
            return self._out(t, args.arg, args.arg_size, "".join(sorted(hv.debugtags)).encode())
        if op == VUCTL_SETDEBUGTAGS:
            tags = self.tracer.peekstr(t.tid, args.arg, 256).decode()
            unknown = sorted(set(tags.lstrip("+-")) - DEBUG_TAGS)
            if unknown:
                self.last_error[t.process.tgid] = "unknown debug tag %r (known: %s)" % (
                    "".join(unknown), "".join(sorted(DEBUG_TAGS)))
                return -errno.EINVAL
            tracing = "s" in hv.debugtags
            if tags.startswith("+"):
                hv.debugtags |= set(tags[1:])
            elif tags.startswith("-"):
                hv.debugtags -= set(tags[1:])
            else:
                hv.debugtags = set(tags)
            if "s" in hv.debugtags:
                log.setLevel(min(log.level, INFO))
            self.tracer.trace_signals("s" in hv.debugtags)
            if "s" in hv.debugtags and not tracing:
                hv.trace_note()
            hv.update_fastpath()
            return 0
        if op == VUCTL_SETLOGLEVEL:
            log.setLevel(s32(args.arg))
            return 0
        if op == VUCTL_PS:
            return self._out(t, args.arg, args.arg_size, self.ps())
        if op == VUCTL_LSOF:
            return self._out(t, args.arg, args.arg_size, self.lsof())
        if op == VUCTL_MOUNTS:
            return self._out(t, args.arg, args.arg_size, self.mounts())
        if op == VUCTL_LASTERROR:
            return self._out(t, args.arg, args.arg_size,
                             self.last_error.get(t.process.tgid, "").encode())
        if op == VUCTL_ACCEPTS:
            fstype = self.tracer.peekstr(t.tid, args.arg, 256).decode(errors="replace")
            return 0 if self.fs_module(fstype) else -errno.ENODEV
        if op == VUCTL_FSTYPES:
            types = sorted({ft for m in hv.modules.values() for ft in m.filesystems})
            return self._out(t, args.arg, args.arg_size, "".join(x + "\n" for x in types).encode())
        return -errno.EINVAL

    def ps(self) -> bytes:
        lines = [b"PID\tTGID\tCWD\tCOMMAND\n"]
        for t in sorted(self.hv.all_threads(), key=lambda t: t.tid):
            tid = t.tid
            try:
                with open("/proc/%d/comm" % tid, "rb") as f:
                    comm = f.read().strip()
            except OSError:
                comm = b"?"
            lines.append(b"%d\t%d\t%s\t%s\n" % (tid, t.process.tgid, t.fs.cwd, comm))
        return b"".join(lines)

    def lsof(self) -> bytes:
        lines = [b"PID\tFD\tMOUNT\tPATH\n"]
        seen = set()
        for t in sorted(self.hv.all_threads(), key=lambda t: t.tid):
            if (t.process.tgid, id(t.files)) in seen:
                continue
            seen.add((t.process.tgid, id(t.files)))
            for fd, vf in sorted(t.files.fds.items()):
                mnt = vf.entry.key if vf.entry is not None else b"(core)"
                lines.append(b"%d\t%d\t%s\t%s\n" % (t.process.tgid, fd, mnt, vf.path))
        return b"".join(lines)

    def mounts(self) -> bytes:
        lines = [b"TARGET\tSOURCE\tTYPE\tMODULE\tOPTIONS\tUSERS\n"]
        for e in self.hv.table.mounts():
            opts = options_shown(e)
            lines.append(b"%s\t%s\t%s\t%s\t%s\t%d\n" % (
                e.key, e.source or b"none", (e.fstype or "-").encode(),
                e.module.name.encode(), opts.encode(), e.users))
        return b"".join(lines)

    # ------------------------------------------------------------ mount / umount2
    def fs_module(self, fstype: str):
        for mod in self.hv.modules.values():
            if mod.accepts(fstype):
                return mod
        return None

    def on_mount(self, t, sc, args):
        try:
            fstype = self.tracer.peekstr(t.tid, args.fstype, 256).decode() if args.fstype else ""
        except OSError as e:
            return -e.errno
        if args.flags & MS_MOVE:
            return self._move(t, args)
        mod = self.fs_module(fstype)
        if mod is None:
            return None  # the kernel's (usually EPERM for an ordinary user)
        vfs = self.hv.vfs
        source = self.tracer.peekstr(t.tid, args.source) if args.source else b"none"
        target = self.tracer.peekstr(t.tid, args.target)
        options = self.tracer.peekstr(t.tid, args.data, 4096).decode() if args.data else ""
        # a device module makes its target (/dev/hda need not exist on the host)
        r = vfs.resolver.resolve(vfs.base_dir(t, AT_FDCWD), target, follow=True,
                                 must_exist=not mod.creates_target)
        if source not in (b"none", b"") and not source.startswith(b"/") and \
                mod.source_is_path:
            # a path source is taken in the guest's view, relative to its cwd
            try:
                source = vfs.resolver.resolve(t.fs.cwd, source, follow=True).path
            except OSError:
                pass
        flags = args.flags & 0xFFFFFFFF
        what = "%s on %s" % (fstype, r.path.decode(errors="replace"))
        refused = self._refused_mount(r, source, options, mod)
        if refused is not None:
            self._failed(t, refused, what)
            raise refused
        try:
            service = self.hv.as_caller(mod.mount, source, r.path, fstype, flags, options)
        except OSError as e:
            self._failed(t, e, what)
            raise
        words = [w for w in options.split(",") if w]
        if "ro" in words:
            flags |= MS_RDONLY
        shown = ",".join(w for w in words if w not in ("ro", "rw"))
        self.hv.table.add(Entry("path", r.path, mod, service, source, fstype, flags,
                                shown, mounted=True))
        if flags & MS_BIND and flags & MS_REC and source.startswith(b"/"):
            self._replicate(source, r.path)
        return 0

    @staticmethod
    def _refused_mount(r, source: bytes, options: str, mod):
        """What the kernel would refuse of this mount (an OSError), or None: a target
        that is not a directory, unless a file is bound onto it or the module makes its
        target (a device); ro with rw or rw+."""
        if r.exists and r.st is not None and not stat.S_ISDIR(r.st.st_mode) and \
                not mod.creates_target:
            try:
                file_source = source.startswith(b"/") and not os.path.isdir(source) and \
                    os.path.lexists(source)
            except OSError:
                file_source = False
            if not file_source:
                return OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        words = set(w for w in options.split(",") if w)
        if "ro" in words and words & {"rw", "rw+"}:
            return OSError(errno.EINVAL, "contradictory options ro and %s" %
                           "/".join(sorted(words & {"rw", "rw+"})))
        return None

    def _resolve_mount_point(self, t, guest_addr):
        vfs = self.hv.vfs
        path = self.tracer.peekstr(t.tid, guest_addr)
        return vfs.resolver.resolve(vfs.base_dir(t, AT_FDCWD), path, follow=True,
                                    must_exist=True).path

    def _move(self, t, args):
        """vumount -M OLD NEW: a virtual mount (with what is mounted below it) moves."""
        old = self._resolve_mount_point(t, args.source)
        new = self._resolve_mount_point(t, args.target)
        moving = [e for e in self.hv.table.mounts() if e.mounted and within(e.key, old)]
        if not any(e.key == old for e in moving):
            return None  # not ours: the kernel answers
        if within(new, old):
            return -errno.EINVAL
        for e in moving:
            self.hv.table.remove(e)
            e.key = rebase(e.key, old, new)
            self.hv.table.add(e)
        return 0

    def _replicate(self, source: bytes, target: bytes) -> None:
        """rbind: the virtual mounts below source show below target too (the same
        services; unmounting the copies leaves the originals alone)."""
        for e in list(self.hv.table.mounts()):
            if e.mounted and e.key != source and within(e.key, source) and not e.alias:
                copy = Entry("path", rebase(e.key, source, target), e.module, e.service,
                             e.source, e.fstype, e.flags, e.options, mounted=True)
                copy.alias = True
                self.hv.table.add(copy)

    def _native_fds_inside(self, entry) -> bool:
        """Files of a natively served tree are real fds: look for one in the guests
        (a tree of the whole host, as /unreal, cannot tell its fds from real ones)."""
        root = capability(entry.service, "native_root")
        if root is None or root == b"/":
            return False
        for tgid in {t.process.tgid for t in self.hv.all_threads()}:
            try:
                fds = os.listdir("/proc/%d/fd" % tgid)
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.fsencode(os.readlink("/proc/%d/fd/%s" % (tgid, fd)))
                except OSError:
                    continue
                if within(target, root):
                    return True
        return False

    def _cwd_inside(self, prefixes) -> bool:
        for t in self.hv.all_threads():
            for p in prefixes:
                if within(t.fs.cwd, p):
                    return True
        return False

    def on_sync(self, t, sc, args):
        """sync(2): every mount writes back what it holds (shared mappings of virtual
        files first), then the kernel syncs the host's."""
        hv = self.hv
        hv.vfs.writeback_all()
        for e in hv.table.mounts():
            if not e.alias and implements(e.service, "syncfs"):
                ret = call_to_retval(hv.call, e.service, "syncfs")
                if isinstance(ret, int) and ret < 0:  # (sync(2) has no error to give)
                    log.error("umvu: sync of %s failed: %s",
                              e.key.decode(errors="replace"), os.strerror(-ret))
        return None

    def on_umount(self, t, sc, args):
        try:
            target = self.tracer.peekstr(t.tid, args.target)
        except OSError as e:
            return -e.errno
        flags = args.flags
        vfs = self.hv.vfs
        try:
            path = vfs.resolver.resolve(vfs.base_dir(t, AT_FDCWD), target,
                                        follow=not flags & 8).path
        except OSError:
            path = None
        entry = None
        for e in self.hv.table.mounts():
            if e.key in (path, target) and e.fstype and (entry is None or e.seq > entry.seq):
                entry = e
        if entry is None:
            return None  # not ours: the kernel answers
        if not flags & (MNT_FORCE | MNT_DETACH):
            if entry.users > 0 or self._cwd_inside([entry.key]) or \
                    self._native_fds_inside(entry):
                return -errno.EBUSY
        if not entry.alias:  # (an rbind copy shares its original's service)
            entry.module.umount(entry.service, flags)
        self.hv.table.remove(entry)
        return 0
