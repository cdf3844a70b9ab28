"""The seccomp filters of the guests: what they trap (the core's and the modules'
numbers, per-fd traps of virtual fds, the calls the C loop decides), stacking them into
each process at its next syscall boundary, and the tables the C loop decides from."""
from __future__ import annotations

import errno
import os
import struct

from umvu.api import capability
from umvu.core import syscalls
from umvu.core.abi import s64
from umvu.core.log import log
from umvu.core.process import kernel_umask, status_fields
from umvu.core.scmrights import SCM_CALLS
from umvu.core.tracer import build_fd_filter, build_filter

NR_SECCOMP = syscalls.number("seccomp")
NR_CLOSE = syscalls.number("close")
# what the core must see once any module is loaded
MODULE_CHOICES = {"path", "path2", "fd", "fd2", "mmap", "ioctl", "mount", "umount",
                  "sockaddr"}
SETID = {"setuid", "setgid", "setreuid", "setregid", "setgroups", "setresuid", "setresgid",
         "setfsuid", "setfsgid"}
# calls that would act on files past every check of the core: refused once a module is
# loaded (io_uring's submissions open, write and rename with no syscall umvu sees;
# open_by_handle_at opens by inode, past every path), as a sandbox refuses them
REFUSED = {"io_uring_setup": 38, "io_uring_enter": 38, "io_uring_register": 38,
           "open_by_handle_at": 1}  # -> errno: ENOSYS (so programs fall back), EPERM
# calls of scalar arguments a module may claim as notifications (claim_syscalls with
# notify): every module filter sends them to its listener from the first on (a process
# gets one listener only, so a later module could not add them), and the C loop lets
# them run as they are while no module claims them (socket(): vunet)
NOTIF_READY = {"socket"}
MODULE_EXTRA = {"getcwd", "execve", "execveat", "umask", "epoll_ctl", "sync"} | SETID | \
    set(REFUSED) | NOTIF_READY
# traced from the first MAP_SHARED mapping of a virtual file on (its write-back)
WRITE_BACK = {"msync", "munmap"}


class Filters:
    """Part of the Hypervisor: the filters and the C loop's tables."""

    # ------------------------------------------------------------- filter widening
    def need_syscalls(self) -> None:
        """A module was loaded: trace what modules need, in every process."""
        extra = MODULE_EXTRA | WRITE_BACK if self.shared_maps_made else MODULE_EXTRA
        want = {sc.nr for sc in syscalls.BY_NR.values() if sc.nr >= 0 and (
            sc.choice in MODULE_CHOICES or sc.name in extra)} | \
            (set(self.hooks) - self.local_hooks)
        if self.fd_filtering:  # trapped per virtual fd instead (on_vfd_added)
            fd_arg = self.fd_arg_of()
            want = {nr for nr in want if nr >= len(fd_arg) or fd_arg[nr] == 255}
        if want <= self.filter_numbers or self.noseccomp:
            self.filter_numbers |= want
            self.update_fastpath()
            return
        self.filter_numbers |= want
        self.new_filter_gen()
        self.update_fastpath()
        self.want_upgrades()

    def need_write_back(self, t) -> None:
        """A first MAP_SHARED mapping of a virtual file: trace msync and munmap from now
        on, in t's process (at a syscall stop) at once."""
        if self.shared_maps_made:
            return
        self.shared_maps_made = True
        self.need_syscalls()
        if not self.noseccomp and t.process.filter_gen < self.filter_gen:
            self.upgrade_filter(t)

    def want_upgrades(self) -> None:
        """Every process whose filter is older than filter_gen (but the current
        thread's, upgraded at its next call) stops at its next syscall boundary."""
        seen = set()
        for t in self.waits.unparked_first(self.all_threads()):
            if t.process.tgid in seen or t.tid == self.cur_tid:
                continue
            seen.add(t.process.tgid)
            if t.process.filter_gen < self.filter_gen:
                self.tracer.want_boundary(t.tid)

    # fd-choice syscalls the C loop may resume by itself when their fd is virtual in no
    # fd table (fchdir and close_range need the core even for real fds; sendmsg and
    # recvmsg, the C loop's scm_native, for virtual fds in SCM_RIGHTS)
    FASTPATH_EXCLUDE = {"fchdir", "close_range"} | set(SCM_CALLS)

    def fd_arg_of(self) -> bytes:
        """nr -> index of the fd argument (255: none) of the calls that need Python only
        when that fd is virtual."""
        table = bytearray([255]) * syscalls.NBITS
        for sc in syscalls.BY_NR.values():
            if not 0 <= sc.nr < syscalls.NBITS or sc.name in self.FASTPATH_EXCLUDE \
                    or (sc.nr in self.hooks and sc.nr not in self.local_hooks):
                continue  # (a module looks at every such call)
            if sc.choice in ("fd", "ioctl") and sc.args and sc.args[0] == "fd":
                table[sc.nr] = 0
            elif sc.choice == "mmap":
                table[sc.nr] = 4
        return bytes(table)

    def update_fastpath(self) -> None:
        table = self.fd_arg_of()
        if self.fd_filtering:
            self.fd_arg_table = table
        enable = not self.noseccomp and "s" not in self.debugtags
        self.tracer.set_fastpath(table, enable)
        self.tracer.set_scm(enable, len(self.vfs.in_flight))
        # the C loop may answer fstat of virtual fds (vfs.remember_stat) unless a module
        # looks at those calls
        self.fdstat_enabled = enable and not {syscalls.BY_NAME[n].nr for n in (
            "fstat", "newfstatat")} & set(self.hooks)
        self.vfs.drop_stats()
        # -S: calls no module wants stop (twice) but need no Python; -d s shows them all
        self.tracer.set_wanted(syscalls.bitmap(self.filter_numbers | self.local_hooks),
                               self.noseccomp and "s" not in self.debugtags)
        self.update_pathfast()

    # path-choice syscalls the C loop never decides: chdir and chroot change what the
    # core follows; the rest are rare and have flags that change how paths resolve
    PATHFAST_EXCLUDE = {"chdir", "chroot", "openat2", "name_to_handle_at", "open_tree",
                        "open_tree_attr", "move_mount", "fspick", "mount_setattr",
                        "pivot_root", "acct", "swapon", "swapoff", "quotactl", "uselib",
                        "fanotify_mark"}

    # not path-choice calls, but the kernel's own whenever their path is (the exec event
    # is what the core follows)
    PATHFAST_EXTRA = {"execve", "execveat"}

    # always Python's: /proc (its magic links, /proc/self, virtual mounts tables)
    PATHFAST_ALWAYS = [b"/proc"]

    def update_pathfast(self) -> None:
        """Tell the C loop which path syscalls it may resume by itself and which prefixes
        (every path entry, every host tree served natively elsewhere, /proc) it must
        leave to Python."""
        # 6 bytes a number: path, dirfd, path2, dirfd2 (255: none), bits (1 a NULL path
        # is the dirfd, 2 getcwd, 4 it writes), the open flags argument (255: none)
        table = bytearray([255, 255, 255, 255, 0, 255]) * syscalls.NBITS
        notif = set()
        let_run = set()
        for sc in syscalls.BY_NR.values():
            if sc.name in NOTIF_READY and sc.nr not in self.hooks:
                notif.add(sc.nr)
                let_run.add(sc.nr)
                continue
            if 0 <= sc.nr < syscalls.NBITS and sc.nr in self.notif_hooks:
                notif.add(sc.nr)  # (no path: the C loop hands each to Python)
                continue
            if not 0 <= sc.nr < syscalls.NBITS or sc.nr in self.hooks:
                continue
            if sc.name == "getcwd":  # Python's only while some cwd is virtual
                table[6 * sc.nr + 4] = 2
                notif.add(sc.nr)
                continue
            if (sc.choice not in ("path", "path2") and sc.name not in self.PATHFAST_EXTRA) \
                    or sc.name in self.PATHFAST_EXCLUDE:
                continue
            notif.add(sc.nr)
            for slot, idx in enumerate(sc.path_args()):
                table[6 * sc.nr + 2 * slot] = idx
                if idx and sc.args[idx - 1] == "dirfd":
                    table[6 * sc.nr + 2 * slot + 1] = idx - 1
            table[6 * sc.nr + 4] = (1 if sc.name == "utimensat" else 0) | \
                (4 if sc.writes or (sc.oflags and sc.oflags[0] != "oflags") else 0)
            if sc.oflags and sc.oflags[0] == "oflags":
                table[6 * sc.nr + 5] = sc.oflags[1]
        prefixes = self.table.path_keys() + self.PATHFAST_ALWAYS
        for e in self.table.mounts():
            root = capability(e.service, "native_root")
            if root is not None:
                prefixes.append(root)
        enable = not self.noseccomp and "s" not in self.debugtags and \
            os.environ.get("UMVU_PATHFAST", "1") != "0"
        self.tracer.set_pathfast(bytes(table), prefixes, enable)
        # ... and which calls that change the file system it makes itself (hostwrites.c)
        self.tracer.set_cwrites(enable and os.environ.get("UMVU_CWRITES", "1") != "0")
        # (a filter stacked earlier may still send a number no longer here: the C loop
        # then hands it to Python as any call)
        self.notif_numbers = notif if enable else set()
        self.tracer.set_let_run(syscalls.bitmap(let_run if enable else set()))

    def stack_local_trap(self, t, nr: int, arg: int, lo: int, hi: int) -> bool:
        """A filter of a module's own into t's process (t at a syscall stop): syscall nr
        with the low 32 bits of argument arg in [lo, hi) stops as TRACE with data
        LOCAL_TRAP, which the C loop hands to Python; kept by children and execs. -S: no
        filter (every call stops there anyway)."""
        if self.noseccomp:
            return True
        from umvu.core.tracer import LOCAL_TRAP
        ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
        allow, trace = 0x7FFF0000, 0x7FF00000 | LOCAL_TRAP
        insns = [(ld, 0, 0, 4), (jeq, 0, 6, 0xC000003E),  # x86_64 only
                 (ld, 0, 0, 0), (jeq, 0, 4, nr),
                 (ld, 0, 0, 16 + 8 * arg), (jge, 0, 2, lo), (jge, 1, 0, hi),
                 (ret, 0, 0, trace), (ret, 0, 0, allow)]
        prog = b"".join(struct.pack("<HBBI", *i) for i in insns)
        self.tracer.local_traps(True)
        return self.stack_filter(t, prog)

    # seccomp(SET_MODE_FILTER, flags): TSYNC, and for a filter with a listener
    # NEW_LISTENER | TSYNC_ESRCH | WAIT_KILLABLE_RECV (a notification taken is not
    # interrupted by the guest's signals: the C loop answers it soon)
    TSYNC = 1

    LISTENER = 8 | 16 | 32

    def stack_filter(self, t, prog: bytes, notif_bitmap: bytes | None = None) -> bool:
        """Stack the BPF program prog onto t's process (t is at a syscall stop); with
        notif_bitmap, the numbers prog sends to a listener (the C loop's)."""
        try:
            addr = self.scratch(t)
        except OSError as e:
            log.error("umvu: pid %d: cannot stack a seccomp filter: %s", t.tid, e)
            return False
        fprog = struct.pack("<HxxxxxxQ", len(prog) // 8, addr + 16)
        self.tracer.poke(t.tid, addr, fprog + prog)
        flags = self.TSYNC | (self.LISTENER if notif_bitmap is not None else 0)
        ret = s64(self.tracer.inject(t.tid, NR_SECCOMP, 1, flags, addr))  # SET_MODE_FILTER
        if ret >= 0 and len(t.process.threads) > 1:
            # (TSYNC gives it to the others too, but one in the middle of a fork may
            # have given its child the stack from before: see clone_filters)
            t.process.unsynced = t.process.threads - {t.tid}
        if notif_bitmap is not None and ret >= 0:
            try:
                self.tracer.listener_add(t.process.tgid, ret, notif_bitmap)
                return True
            except OSError as e:
                log.error("umvu: pid %d: no seccomp listener: %s", t.tid, e)
                return False  # (the filter's notifications then fail with ENOSYS)
            finally:
                self.tracer.inject(t.tid, NR_CLOSE, ret)
        if ret == -errno.EBUSY and notif_bitmap is not None:
            return False  # a listener is in the stack already (see upgrade_filter)
        if ret != 0:
            log.error("umvu: pid %d: stacking a seccomp filter failed (%d)", t.tid, ret)
            return False
        return True

    def clone_filters(self, parent_tid: int, child) -> None:
        """A clone by a thread that was running when its process last got a filter: if
        the child has fewer filters than its parent (the fork copied the stack from
        before), it gets them all again at its first syscall boundary."""
        p = self.procs.threads[parent_tid].process
        p.unsynced.discard(parent_tid)
        if seccomp_filters(child.tid) >= seccomp_filters(parent_tid):
            return
        cp = child.process
        cp.filter_gen = 0
        if cp.fd_traps is not None:
            cp.fd_traps = {}
            cp.fd_pending = set(child.files.fds)

    def upgrade_filter(self, t) -> None:
        """Stack the current filter onto t's process (t is at a syscall stop). A stack
        holds one listener at most (the kernel answers EBUSY to a second): a process that
        has one gets a filter without, whose numbers trap as ptrace stops where the older
        filter does not send them to its listener (the kernel takes USER_NOTIF over
        TRACE)."""
        numbers = syscalls.bitmap(self.filter_numbers)
        notif = self.notif_numbers & self.filter_numbers if self.notif_ok else set()
        ok = False
        if notif:
            notif_bitmap = syscalls.bitmap(notif)
            ok = self.stack_filter(t, build_filter(numbers, notif_bitmap), notif_bitmap)
            if ok:
                self.listeners_made = True
            elif not self.listeners_made:
                self.notif_ok = False  # a kernel without listeners: stops only
        if not ok:
            ok = self.stack_filter(t, build_filter(numbers))
        if ok:
            t.process.filter_gen = self.filter_gen
            self.refresh_fs(t)

    # a process gets a filter per fd number that becomes virtual in its fd table, up to
    # this many (each costs ~20 ns on every syscall of the process: measured 193 ns per
    # getppid with none, 273 with one, 424 with 8, 597 with 16); then one that traps
    # every fd call by number. tar of a tree 12 deep holds ~15 numbers.
    FD_TRAPS_MAX = int(os.environ.get("UMVU_FD_TRAPS", "24"))

    def on_vfd_added(self, table, guest_fd: int) -> None:
        """guest_fd became virtual in table (or another kind of virtual fd): every
        process using the table must trap its calls on it before it can make one. The
        thread at the stop being handled gets the filter at once; other processes at
        their next syscall boundary (asked for now, before this stop ends, so none of
        them can call on the fd before)."""
        sharers = self.waits.unparked_first(
            [t for t in self.all_threads() if t.files is table])
        self._not_plain(sharers)  # a child must copy the fd
        if not self.fd_filtering:
            return
        vf = table.fds.get(guest_fd)
        if vf is None:
            return
        stopped = self.procs.get(self.stopped_tid) if self.stopped_tid else None
        seen = set()
        for t in sharers:
            p = t.process
            if t.files is not table or p.tgid in seen:
                continue
            seen.add(p.tgid)
            if self.fd_trapped(p, guest_fd, vf.native):
                continue
            if stopped is not None and stopped.process is p:
                self.trap_fd(stopped, guest_fd)
            else:
                p.fd_pending.add(guest_fd)
                self.tracer.want_boundary(t.tid)

    @staticmethod
    def fd_trapped(p, guest_fd: int, native: frozenset) -> bool:
        """p's filters trap every call on guest_fd but (some of) those in native."""
        if p.fd_traps is None:
            return True
        let_by = p.fd_traps.get(guest_fd)
        return let_by is not None and let_by <= native

    def trap_fd(self, t, guest_fd: int) -> None:
        """Stack onto t's process (t at a syscall stop) the filter guest_fd needs now."""
        vf = t.files.fds.get(guest_fd)
        p = t.process
        if vf is None or self.fd_trapped(p, guest_fd, vf.native):
            return  # closed since it was asked for (asked again if it comes back)
        if len(p.fd_traps) >= self.FD_TRAPS_MAX:
            nrs = {nr for nr, arg in enumerate(self.fd_arg_table) if arg != 255}
            if self.stack_filter(t, build_filter(syscalls.bitmap(nrs))):
                p.fd_traps = None
            return
        table = self.fd_arg_table
        if vf.native:
            native = {syscalls.BY_NAME[n].nr for n in vf.native}
            table = bytes(255 if nr in native else arg for nr, arg in enumerate(table))
        if self.stack_filter(t, build_fd_filter(table, guest_fd)):
            let_by = p.fd_traps.get(guest_fd)
            p.fd_traps[guest_fd] = vf.native if let_by is None else let_by & vf.native

    @staticmethod
    def refresh_fs(t) -> None:
        """Read cwd and umask from the kernel: the core does not follow them while no
        module is loaded (nothing traps, or -S lets them by). A cwd inside a virtual
        mount is the core's own (the kernel's is elsewhere): kept."""
        try:
            if t.fs.kernel_cwd:
                t.fs.cwd = os.fsencode(os.readlink("/proc/%d/cwd" % t.tid))
        except OSError:
            return
        umask = kernel_umask(t.tid)
        if umask is not None:
            t.fs.umask = umask

    def on_boundary(self, tid: int) -> None:
        t = self.thread(tid)
        self.cur_tid = tid
        if t.process.filter_gen < self.filter_gen:
            self.upgrade_filter(t)
        pending, t.process.fd_pending = t.process.fd_pending, set()
        for guest_fd in sorted(pending):
            self.trap_fd(t, guest_fd)
        self.tracer.boundary_done(tid)


def seccomp_filters(tid: int) -> int:
    """How many seccomp filters thread tid has (-1 if it cannot be read)."""
    words = status_fields(tid, b"Seccomp_filters").get(b"Seccomp_filters")
    return int(words[0]) if words else -1
