"""Fd system calls on virtual fds (the ``f_NAME`` handlers), and the calls on two fds
(sendfile, splice, copy_file_range) between virtual and real files."""
from __future__ import annotations

import errno
import os
import stat
import struct

from umvu.api import OpenPath, capability, implements
from umvu.core import guestabi
from umvu.core.abi import (F_DUPFD, F_DUPFD_CLOEXEC, F_GETFL, F_GETLK, F_SETFL, F_SETLK,
                           F_SETLKW, O_ACCMODE, O_APPEND, O_CLOEXEC, O_DIRECT, O_PATH,
                           SETFL_MASK, s32, s64)
from umvu.core.actions import Native
from umvu.core.log import log
from umvu.core.scmrights import SCM_CALLS
from umvu.core.syscalls import BY_NAME
from umvu.core.pathcalls import TARGET_OPS
from umvu.core.vfiles import PLUS

MAX_RW_COUNT = 0x7FFFF000  # what one read or write moves at most (INT_MAX & PAGE_MASK)
TASK_SIZE_MAX = (1 << 47) - 4096  # the end of x86_64 user space (access_ok)


# the fd calls the kernel allows on an O_PATH fd (open(2)); the others are EBADF
O_PATH_CALLS = frozenset((
    "close", "dup", "dup2", "dup3", "fcntl", "fstat", "newfstatat", "statx", "fstatfs",
    "fchdir", "close_range"))


def _clipped(data, size: int, vf) -> bytes:
    """What a module's read gave, no longer than the guest asked (a longer answer would
    be written past the guest's buffer)."""
    if len(data) > size:
        log.error("umvu: %s: a read of %d bytes got %d from its module; clipped",
                  vf.path.decode(errors="replace"), size, len(data))
        return data[:size]
    return data


class FdCalls:
    """Part of VirtualFS: the fd calls."""

    # ------------------------------------------------------------ fd syscalls
    def on_fd(self, t, sc, args):
        fd = s32(args[0])  # (every fd-chosen row has its fd first)
        vf = t.files.fds.get(fd)
        name = sc.name
        if vf is None:
            if name in ("dup2", "dup3") or (name == "fcntl" and args.int in (
                    F_DUPFD, F_DUPFD_CLOEXEC)):
                return self.real_dup(t, sc, args)
            if name == "fchdir":
                return Native(None, lambda ret: self._fchdir_done(t, ret))
            if name == "close_range":
                return self.on_close_range(t, args)
            if name in SCM_CALLS:
                return self.on_scm(t, sc, args)
            return None
        return self.fd_op(t, sc, args, vf, fd)

    def _fchdir_done(self, t, ret):
        if ret == 0:
            host = os.fsencode(os.readlink("/proc/%d/cwd" % t.tid))
            t.fs.cwd = self.guest_of_host(host)
            t.fs.kernel_cwd = t.fs.cwd == host

    def real_dup(self, t, sc, args):
        """dup2/dup3/F_DUPFD of a real fd over a virtual one: forget the virtual one."""
        target = args.fd2 if sc.name != "fcntl" else None
        if target is None or target not in t.files.fds:
            return None
        return Native(None, lambda ret: self.unbind(t.files, target) if ret >= 0 else None)

    def on_close_range(self, t, args):
        lo, hi, flags = args.uint, args.uint2, args.flags
        victims = [fd for fd in t.files.fds if lo <= fd <= hi]
        if not victims:
            return None

        def done(ret):
            if ret == 0 and not flags & 4:  # CLOSE_RANGE_CLOEXEC keeps them open
                for fd in victims:
                    self.unbind(t.files, fd)
        return Native(None, done)

    def fd_op(self, t, sc, args, vf, fd):
        if sc.name in vf.native:
            return None  # trapped by number (-d s, past FD_TRAPS_MAX, an earlier kind)
        if vf.flags & O_PATH and sc.name not in O_PATH_CALLS:
            return -errno.EBADF  # as the kernel: a location only, no file operation
        op = TARGET_OPS.get(sc.name)
        if op is not None and vf.entry is not None:  # (the path with the file's handle)
            return getattr(self, op)(t, args, vf.service, OpenPath(self._rel(vf), vf.handle))
        handler = getattr(self, "f_" + sc.name, None)
        if handler is None:
            if sc.choice == "sockaddr":
                return -errno.ENOTSOCK  # (a virtual file, not a socket)
            return -errno.EINVAL if sc.choice in ("fd", "fd2") else -errno.ENOSYS
        return handler(t, args, vf, fd)

    # data
    def _read(self, vf, size, offset=None):
        if vf.is_dir:
            raise OSError(errno.EISDIR, "is a directory")
        if (vf.flags & O_ACCMODE) == os.O_WRONLY or vf.flags & O_PATH:
            raise OSError(errno.EBADF, "not open for reading")
        svc = vf.service
        if implements(svc, "pread"):
            pos = vf.pos if offset is None else offset
            data = _clipped(self.hv.call(svc, "pread", vf.handle, size, pos), size, vf)
            if offset is None:
                vf.pos += len(data)
            return data
        if offset is not None:
            raise OSError(errno.ESPIPE, "not seekable")
        return _clipped(self.hv.call(svc, "read", vf.handle, size), size, vf)

    def _write(self, vf, data, offset=None):
        n = self._write_module(vf, data, offset)
        self.content_changed(vf)
        return n

    def _write_module(self, vf, data, offset):
        if (vf.flags & O_ACCMODE) == os.O_RDONLY or vf.flags & O_PATH:
            raise OSError(errno.EBADF, "not open for writing")
        svc = vf.service
        if implements(svc, "pwrite"):
            if offset is not None and vf.flags & O_APPEND:
                # Linux: pwrite on an O_APPEND file appends, whatever the offset
                end = self.hv.call(svc, "fstat", vf.handle).st_size
                return self.hv.call(svc, "pwrite", vf.handle, data, end)
            if offset is None:
                if vf.flags & O_APPEND:
                    vf.pos = self.hv.call(svc, "fstat", vf.handle).st_size
                n = self.hv.call(svc, "pwrite", vf.handle, data, vf.pos)
                vf.pos += n
                return n
            return self.hv.call(svc, "pwrite", vf.handle, data, offset)
        if offset is not None:
            raise OSError(errno.ESPIPE, "not seekable")
        return self.hv.call(svc, "write", vf.handle, data)

    @staticmethod
    def misaligned(vf, offset, pieces) -> bool:
        """O_DIRECT on a service with ``direct_io_align`` (bytes): as the kernel's ext4,
        the file offset and each buffer's address and length must be multiples of it
        (else EINVAL); pieces: (guest_addr, length)."""
        align = vf.flags & O_DIRECT and capability(vf.service, "direct_io_align")
        if not align:
            return False
        pos = vf.pos if offset is None else offset
        return bool(pos % align) or any(base % align or length % align
                                        for base, length in pieces)

    def f_read(self, t, args, vf, fd):
        offset = args.off if args.syscall.name == "pread64" else None
        if offset is not None and offset < 0:
            return -errno.EINVAL
        if self.misaligned(vf, offset, [(args.buf_out, args.size)]):
            return -errno.EINVAL
        data = self._read(vf, min(args.size, 1 << 24), offset)
        self.tracer.poke(t.tid, args.buf_out, data)
        return len(data)

    f_pread64 = f_read

    def f_write(self, t, args, vf, fd):
        offset = args.off if args.syscall.name == "pwrite64" else None
        if offset is not None and offset < 0:
            return -errno.EINVAL
        if self.misaligned(vf, offset, [(args.buf_in, args.size)]):
            return -errno.EINVAL
        data = self.tracer.peek(t.tid, args.buf_in, min(args.size, 1 << 24))
        return self._write(vf, data, offset)

    f_pwrite64 = f_write

    def _iov(self, t, guest_addr, count):
        """The guest's iovecs as the kernel takes them (import_iovec): EINVAL for a bad
        count or a negative length, EFAULT for a range past user space, the lengths cut
        to MAX_RW_COUNT in all."""
        if count < 0 or count > 1024:
            raise OSError(errno.EINVAL, "bad iovcnt")
        raw = self.tracer.peek(t.tid, guest_addr, 16 * count)
        iov = [struct.unpack_from("<QQ", raw, 16 * i) for i in range(count)]
        if any(length >= 1 << 63 for _, length in iov):
            raise OSError(errno.EINVAL, "negative iovec length")
        left, cut = MAX_RW_COUNT, []
        for base, length in iov:
            if length > TASK_SIZE_MAX or base > TASK_SIZE_MAX - length:
                raise OSError(errno.EFAULT, "iovec past user space")
            cut.append((base, min(length, left)))
            left -= cut[-1][1]
        return cut

    def _readv(self, t, args, vf, offset):
        iov = self._iov(t, args.ptr, args.int)
        if self.misaligned(vf, offset, iov):
            raise OSError(errno.EINVAL, "O_DIRECT: misaligned")
        if not vf.is_dir and not implements(vf.service, "pread"):
            # a stream (a device): one read scattered, as its read_iter takes a message
            data = self._read(vf, sum(length for _, length in iov), offset)
            at = 0
            for base, length in iov:
                if at >= len(data):
                    break
                self.tracer.poke(t.tid, base, data[at:at + length])
                at += length
            return len(data)
        total = 0
        for base, length in iov:
            if not length:
                continue
            data = self._read(vf, length, None if offset is None else offset + total)
            self.tracer.poke(t.tid, base, data)
            total += len(data)
            if len(data) < length:
                break
        return total

    def _writev(self, t, args, vf, offset):
        iov = self._iov(t, args.ptr, args.int)
        if self.misaligned(vf, offset, iov):
            raise OSError(errno.EINVAL, "O_DIRECT: misaligned")
        if not implements(vf.service, "pwrite"):
            # a stream (a device): the iovecs gathered into one write (a FUSE reply is
            # one message of a header and its body)
            data = b"".join(self.tracer.peek(t.tid, base, length)
                            for base, length in iov if length)
            return self._write(vf, data, offset) if data else 0
        total = 0
        for base, length in iov:
            if not length:
                continue
            data = self.tracer.peek(t.tid, base, length)
            n = self._write(vf, data, None if offset is None else offset + total)
            total += n
            if n < length:
                break
        return total

    def f_readv(self, t, args, vf, fd):
        return self._readv(t, args, vf, None)

    def f_writev(self, t, args, vf, fd):
        return self._writev(t, args, vf, None)

    def f_preadv(self, t, args, vf, fd):
        return self._readv(t, args, vf, None if args.off == -1 else args.off)

    def f_pwritev(self, t, args, vf, fd):
        return self._writev(t, args, vf, None if args.off == -1 else args.off)

    f_preadv2, f_pwritev2 = f_preadv, f_pwritev

    def f_lseek(self, t, args, vf, fd):
        off, whence = args.off, args.int
        if not implements(vf.service, "pread") and not vf.is_dir:
            return -errno.ESPIPE
        if whence == os.SEEK_SET:
            new = off
        elif whence == os.SEEK_CUR:
            new = vf.pos + off
        elif whence == os.SEEK_END:
            new = self._size(vf) + off
        elif whence in (3, 4):  # SEEK_DATA / SEEK_HOLE
            new = self._seek_data(vf, off, whence)
        else:
            return -errno.EINVAL
        if new < 0:
            return -errno.EINVAL
        vf.pos = new
        return new

    def _seek_data(self, vf, off: int, whence: int) -> int:
        """SEEK_DATA (3) or SEEK_HOLE (4) from off: the service's seek_data, else (or
        when it answers ENOSYS) as the kernel's generic answer, the whole file data.
        ENXIO from off at or past the end."""
        if off < 0:
            raise OSError(errno.ENXIO, "negative offset")
        if vf.handle is not None and implements(vf.service, "seek_data"):
            try:
                return self.hv.call(vf.service, "seek_data", vf.handle, off, whence)
            except OSError as e:
                if e.errno != errno.ENOSYS:
                    raise
        size = self._size(vf)
        if off >= size:
            raise OSError(errno.ENXIO, "past the end")
        return off if whence == 3 else size

    def f_fstat(self, t, args, vf, fd):
        st = self.fstat_of(vf)
        self.remember_stat(t, fd, st, vf)
        return self._stat_out(t, args.ptr, st)

    f_newfstatat = f_fstat

    def f_statx(self, t, args, vf, fd):
        refused = guestabi.statx_refusal(args.flags, args.uint, by_fd=True)
        if refused:
            return -refused
        self.tracer.poke(t.tid, args.ptr, guestabi.encode_statx(self.fstat_of(vf), args.uint))
        return 0

    def f_fstatfs(self, t, args, vf, fd):
        return -errno.ENOSYS  # (of a file no mount holds; the rest: TARGET_OPS)

    def f_getdents64(self, t, args, vf, fd):
        if not vf.is_dir:
            return -errno.ENOTDIR
        size = args.size
        out = bytearray()
        names = []
        for name, ino, d_type, next_off in self.hv.call(vf.service, "getdents",
                                                        vf.handle, vf.pos):
            rec = guestabi.encode_dirent(name, ino, d_type, next_off)
            if len(out) + len(rec) > size:
                if not out:
                    return -errno.EINVAL
                break
            out += rec
            vf.pos = next_off
            names.append(name)
        self.tracer.poke(t.tid, args.ptr, bytes(out))
        if names and self.hv.fdstat_enabled and t.process.data.get(PLUS):
            self.entries_plus(t, vf, fd, names)
        return len(out)

    def entries_plus(self, t, vf, fd: int, names: list) -> None:
        """Readdir plus: give the C loop the stat of each entry just listed, for the
        newfstatat(fd, name) that tar, find, du, rm -r... make next (a process gets it
        once it has made one). Only where any caller may search the directory and on
        file systems of plain data; mount points are left out."""
        try:
            if capability(vf.service, "plain_content") is None or \
                    self.fstat_of(vf).st_mode & 0o111 != 0o111:
                return
            rel = self.hv.table.lookup_path(vf.path)[1].rstrip(b"/")
            for name in names:
                if name in (b".", b".."):
                    continue
                if self.hv.table.lookup_path(vf.path.rstrip(b"/") + b"/" + name)[0] \
                        is not vf.entry:
                    continue
                st = self.hv.call(vf.service, "lstat", rel + b"/" + name)
                self.tracer.entstat_set(t.tid, fd, name, guestabi.encode_stat(st),
                                        stat.S_ISLNK(st.st_mode))
            self.stats_given = True
        except OSError:
            pass  # the calls will come to the core

    def f_getdents(self, t, args, vf, fd):
        return -errno.ENOSYS if not vf.is_dir else -errno.EINVAL

    def f_close(self, t, args, vf, fd):
        # the kernel frees a valid fd whatever close returns (even EINTR): no exit stop
        try:
            self.unbind(t.files, fd)
        except OSError as e:  # (the module's flush failed: the placeholder goes too)
            log.info("umvu: close of %s: %s", vf.path.decode(errors="replace"), e.strerror)
        return None

    def f_dup(self, t, args, vf, fd):
        return Native(None, lambda ret: self.bind(t.files, ret, vf) if ret >= 0 else None)

    def f_dup2(self, t, args, vf, fd):
        if args.fd2 == fd:
            return None
        return Native(None, lambda ret: self.bind(t.files, ret, vf) if ret >= 0 else None)

    f_dup3 = f_dup2

    def f_fcntl(self, t, args, vf, fd):
        cmd = args.int
        if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
            return self.f_dup(t, args, vf, fd)
        if cmd == F_GETFL:
            return (vf.flags & ~O_CLOEXEC) | (0o100000 if vf.entry else 0)
        if cmd == F_SETFL:
            vf.flags = (vf.flags & ~SETFL_MASK) | (s32(args.ptr) & SETFL_MASK)
            return 0
        if cmd in (F_SETLK, F_SETLKW, 37, 38):  # and OFD locks: advisory, granted
            return 0
        if cmd in (F_GETLK, 36):
            raw = bytearray(self.tracer.peek(t.tid, args.ptr, 32))
            raw[0:2] = struct.pack("<h", 2)  # F_UNLCK
            self.tracer.poke(t.tid, args.ptr, bytes(raw))
            return 0
        return None  # F_GETFD/F_SETFD and the rest act on the placeholder itself

    def f_flock(self, t, args, vf, fd):
        return 0

    def f_fsync(self, t, args, vf, fd):
        svc = vf.service
        if implements(svc, "fsync"):
            self.hv.call(svc, "fsync", vf.handle)
        return 0

    f_fdatasync = f_fsync

    def f_syncfs(self, t, args, vf, fd):
        svc = vf.service
        if implements(svc, "syncfs"):
            self.hv.call(svc, "syncfs")
            return 0
        return self.f_fsync(t, args, vf, fd)

    def f_ftruncate(self, t, args, vf, fd):
        if (vf.flags & O_ACCMODE) == os.O_RDONLY:
            return -errno.EINVAL
        if args.off < 0:
            return -errno.EINVAL
        ret = self.hv.call(vf.service, "ftruncate", vf.handle, args.off) or 0
        self.content_changed(vf)
        return ret

    def _rel(self, vf):
        return self.hv.table.lookup_path(vf.path)[1]

    def f_fchdir(self, t, args, vf, fd):
        if not vf.is_dir:
            return -errno.ENOTDIR
        t.fs.cwd = vf.path
        t.fs.kernel_cwd = False
        return 0

    def f_ioctl(self, t, args, vf, fd):
        svc = vf.service
        req = args.uint & 0xFFFFFFFF
        if req in (0x5451, 0x5450):  # FIOCLEX / FIONCLEX act on the placeholder
            return None
        if implements(svc, "ioctl"):
            return self.hv.call(svc, "ioctl", vf.handle, req, args.ptr)
        return -errno.ENOTTY

    def f_fadvise64(self, t, args, vf, fd):
        return 0

    def f_fallocate(self, t, args, vf, fd):
        svc = vf.service  # (the kernel's order of checks: vfs_fallocate)
        if args.offset < 0 or args.len <= 0:
            return -errno.EINVAL
        if (vf.flags & O_ACCMODE) == os.O_RDONLY or vf.flags & O_PATH:
            return -errno.EBADF
        if vf.is_dir:
            return -errno.EISDIR
        if not implements(svc, "fallocate"):
            return -errno.EOPNOTSUPP
        self.hv.call(svc, "fallocate", vf.handle, args.mode, args.offset, args.len)
        self.content_changed(vf)
        return 0

    def f_readahead(self, t, args, vf, fd):
        return 0

    def f_sync_file_range(self, t, args, vf, fd):
        return self.f_fsync(t, args, vf, fd)

    # sockets on a virtual file fd
    def _enotsock(self, t, args, vf, fd):
        return -errno.ENOTSOCK

    f_connect = f_accept = f_accept4 = f_sendto = f_recvfrom = f_sendmsg = f_recvmsg = \
        f_shutdown = f_bind = f_listen = f_getsockname = f_getpeername = f_setsockopt = \
        f_getsockopt = f_recvmmsg = f_sendmmsg = _enotsock

    def on_epoll_ctl(self, t, sc, args):
        """Regular files and directories cannot be watched by epoll (EPERM); the
        placeholder (an eventfd) could, so the core answers for them."""
        vf = t.files.fds.get(args.fd2)
        if vf is None or args.int != 1:  # EPOLL_CTL_ADD
            return None
        if vf.is_dir or (implements(vf.service, "pread") and
                         not capability(vf.service, "pollable", False)):
            return -errno.EPERM
        return None

    # ------------------------------------------------------------ two-fd syscalls
    def on_fd2(self, t, sc, args):
        name = sc.name
        if name in ("dup2", "dup3"):
            return self.on_fd(t, sc, args)
        if name in ("sendfile", "copy_file_range", "splice", "tee"):
            out_fd, in_fd = args.out_fd, args.in_fd
            vin, vout = t.files.fds.get(in_fd), t.files.fds.get(out_fd)
            in_content = vin is not None and vin.content is not None
            if in_content:  # a memfd: the kernel reads it
                vin = None
            if vout is not None and vout.content is not None:
                vout = None  # read-only: the kernel says EBADF
            if vin is None and vout is None:
                return None
            return self.copy_between(t, sc, args, in_fd, vin, out_fd, vout, in_content)
        return None

    CHUNK = 14 * 4096 - 256  # guest I/O through the scratch area (its last 256 bytes

    def guest_io(self, t, nr_name, fd, data_or_size, offset=None):
        """Inject read/write/pread64/pwrite64 on a real guest fd through the scratch
        area; returns bytes read, bytes written, or -errno."""
        buf = self.hv.scratch(t) + 8192
        nr = BY_NAME[nr_name].nr
        if isinstance(data_or_size, (bytes, bytearray)):
            data = bytes(data_or_size[:self.CHUNK])
            self.tracer.poke(t.tid, buf, data)
            args = (fd, buf, len(data)) + ((offset,) if offset is not None else ())
            return s64(self.tracer.inject(t.tid, nr, *args) & 0xFFFFFFFFFFFFFFFF)
        size = min(data_or_size, self.CHUNK)
        args = (fd, buf, size) + ((offset,) if offset is not None else ())
        n = s64(self.tracer.inject(t.tid, nr, *args) & 0xFFFFFFFFFFFFFFFF)
        return n if n < 0 else self.tracer.peek(t.tid, buf, n)

    def _offset(self, t, guest_addr):
        if not guest_addr:
            return None
        return struct.unpack("<q", self.tracer.peek(t.tid, guest_addr, 8))[0]

    def _set_offset(self, t, guest_addr, value):
        if guest_addr:
            self.tracer.poke(t.tid, guest_addr, struct.pack("<q", value))

    def copy_in_service(self, t, args, vin, vout):
        """copy_file_range(2) between two files of one service that copies itself (a
        FUSE daemon's COPY_FILE_RANGE), after the kernel's checks (generic_copy_file_
        checks: flags, access modes, O_APPEND, the length clipped to the input's end,
        no overlap within one file). None: the service does not (ENOSYS, EOPNOTSUPP),
        the core copies through reads and writes."""
        if args.flags:
            return -errno.EINVAL
        if (vin.flags & O_ACCMODE) == os.O_WRONLY or vin.flags & O_PATH or \
                (vout.flags & O_ACCMODE) == os.O_RDONLY or vout.flags & (O_PATH | O_APPEND):
            return -errno.EBADF
        if vin.is_dir or vout.is_dir:
            return -errno.EISDIR
        st_in, st_out = self.fstat_of(vin), self.fstat_of(vout)
        if not stat.S_ISREG(st_in.st_mode) or not stat.S_ISREG(st_out.st_mode):
            return -errno.EINVAL
        in_off_addr, out_off_addr = args.in_off, args.out_off
        in_off = self._offset(t, in_off_addr)
        out_off = self._offset(t, out_off_addr)
        pos_in = vin.pos if in_off is None else in_off
        pos_out = vout.pos if out_off is None else out_off
        if pos_in < 0 or pos_out < 0:
            return -errno.EINVAL
        count = args.size
        if pos_in + count >= 1 << 63 or pos_out + count >= 1 << 63:
            return -errno.EOVERFLOW
        count = 0 if pos_in >= st_in.st_size else min(count, st_in.st_size - pos_in)
        if (st_in.st_ino, st_in.st_dev) == (st_out.st_ino, st_out.st_dev) and \
                pos_out + count > pos_in and pos_out < pos_in + count:
            return -errno.EINVAL
        if not count:
            return 0
        try:
            n = self.hv.call(vout.service, "copy_file_range", vin.handle, pos_in,
                             vout.handle, pos_out, count)
        except OSError as e:
            if e.errno in (errno.ENOSYS, errno.EOPNOTSUPP):
                return None
            raise
        self.content_changed(vout)
        if in_off is None:
            vin.pos += n
        else:
            self._set_offset(t, in_off_addr, in_off + n)
        if out_off is None:
            vout.pos += n
        else:
            self._set_offset(t, out_off_addr, out_off + n)
        return n

    def copy_between(self, t, sc, args, in_fd, vin, out_fd, vout, in_content=False):
        """sendfile/copy_file_range/splice with a virtual end, done by the core: data
        moves through umvu, the real end is read or written by injected calls."""
        name = sc.name
        if name == "tee":
            return -errno.EINVAL  # both ends must be pipes
        if name == "splice":
            if vin is not None and vout is not None:
                return -errno.EINVAL  # the kernel needs one end to be a pipe
        elif name == "copy_file_range":  # both ends on the same file system
            if (vin is None and not in_content) or vout is None:
                return -errno.EXDEV
            if (vin is not None and vin.service is vout.service and
                    implements(vout.service, "copy_file_range")):
                done = self.copy_in_service(t, args, vin, vout)
                if done is not None:
                    return done
        in_off_addr, count = args.in_off, args.size
        out_off_addr = 0 if name == "sendfile" else args.out_off
        in_off = self._offset(t, in_off_addr)
        out_off = self._offset(t, out_off_addr)
        if (in_off is not None and in_off < 0) or (out_off is not None and out_off < 0):
            return -errno.EINVAL
        total = 0
        while total < count:
            want = min(count - total, self.CHUNK)
            if vin is not None:
                data = self._read(vin, want, None if in_off is None else in_off + total)
            else:
                data = self.guest_io(t, "pread64" if in_off is not None else "read",
                                     in_fd, want,
                                     None if in_off is None else in_off + total)
                if isinstance(data, int):
                    if total:
                        break
                    return data
            if not data:
                break
            if vout is not None:
                n = self._write(vout, data, None if out_off is None else out_off + total)
            else:
                n = self.guest_io(t, "pwrite64" if out_off is not None else "write",
                                  out_fd, data, None if out_off is None else out_off + total)
                if n < 0:
                    if vin is not None and in_off is None:
                        vin.pos -= len(data)
                    if total:
                        break
                    return n
            if n < len(data) and vin is not None and in_off is None:
                vin.pos -= len(data) - n  # not consumed
            total += n
            if n < len(data) or name == "splice":
                break  # splice moves at most one pipe buffer's worth per call
        if in_off is not None:
            self._set_offset(t, in_off_addr, in_off + total)
        if out_off is not None:
            self._set_offset(t, out_off_addr, out_off + total)
        return total
