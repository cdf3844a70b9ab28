"""vudev: virtual block and character devices (VUOS's vudev).

``vumount -t vudevNAME [-o OPTS] SOURCE /dev/PATH`` makes a device at /dev/PATH (the
path need not exist on the host), served by submodule ``umvu.submodules.vudevNAME``:

    vudevpartx IMAGE /dev/hda     a disk image; partitions /dev/hda1... (MBR and GPT)
    vudevramdisk none /dev/ram0   -o size=64M[,mbr]: a disk in memory (mbr: partitions)
    vudevnull none /dev/mynull    a /dev/null; vudevzero: a /dev/zero

A device shows in stat as S_IFBLK/S_IFCHR with a stable st_rdev; read, write, pread,
pwrite, lseek (SEEK_END is the size), fsync and the block ioctls tools use (BLKGETSIZE64,
BLKSSZGET, BLKRRPART, BLKPG, HDIO_GETGEO, BLKDISCARD...) go to the device; unknown
ioctls answer ENOTTY. Partitions are windows of their disk: reads stop at their end,
writes past it answer ENOSPC, and never touch a neighbour. The partition table is read
at mount, on BLKRRPART and when a program that wrote the table closes the disk (EBUSY
while a partition is open or mounted). Device nodes with a claimed number inside other
virtual file systems open the device too. Other modules use a device as their source
(``vumount -t vufuseext2 /dev/hda1 /mnt``) through ``host_backing``.

A submodule module defines ``Device(source: bytes, options: dict, api)`` with: ``size``
(bytes), ``kind`` ("blk" or "chr"), ``partitioned`` (bool), ``rdev_base`` ((major,
minor) or None), ``pread(size, offset)``, ``pwrite(data, offset)``, ``fsync()``,
``close()``, optionally ``host_backing()`` -> (host_path, offset), ``readonly``, and an
``OPTIONS`` dict of its mount options.
"""
from __future__ import annotations

import errno
import importlib
import os
import stat
import struct
import time
import types
import zlib

from umvu.api import log, Module, parse_options

SECTOR = 512


def _IO(nr):
    return 0x1200 | nr


def _IOR(typ, nr, size):
    return (2 << 30) | (size << 16) | (typ << 8) | nr


def _IOW(typ, nr, size):
    return (1 << 30) | (size << 16) | (typ << 8) | nr


BLKROSET, BLKROGET, BLKRRPART, BLKGETSIZE, BLKFLSBUF = (_IO(93), _IO(94), _IO(95), _IO(96),
                                                        _IO(97))
BLKRASET, BLKRAGET, BLKFRASET, BLKFRAGET = _IO(98), _IO(99), _IO(100), _IO(101)
BLKSECTGET, BLKSSZGET, BLKPG = _IO(103), _IO(104), _IO(105)
BLKBSZGET, BLKBSZSET, BLKGETSIZE64 = _IOR(0x12, 112, 8), _IOW(0x12, 113, 8), _IOR(0x12, 114, 8)
BLKDISCARD, BLKIOMIN, BLKIOOPT, BLKALIGNOFF, BLKPBSZGET = (_IO(119), _IO(120), _IO(121),
                                                           _IO(122), _IO(123))
BLKDISCARDZEROES, BLKSECDISCARD, BLKROTATIONAL, BLKZEROOUT = (_IO(124), _IO(125), _IO(126),
                                                              _IO(127))
BLKGETDISKSEQ = _IOR(0x12, 128, 8)
BLKGETZONESZ, BLKGETNRZONES = _IOR(0x12, 132, 4), _IOR(0x12, 133, 4)
HDIO_GETGEO = 0x0301
BLKPG_ADD_PARTITION, BLKPG_DEL_PARTITION, BLKPG_RESIZE_PARTITION = 1, 2, 3
MBR_EXTENDED = (0x05, 0x0F, 0x85)
MAX_LOGICAL = 256
TABLE_AREA = 1 << 20  # writes here (or in the last 64 sectors, GPT's backup) re-read it


# ------------------------------------------------------------------ partition tables
def read_partitions(pread, size: int, name: str = "disk"):
    """[(number, start, length)] in bytes, as the kernel's msdos and efi parsers find
    them. Problems (cycles, entries past the end) are logged and skipped."""
    def sector(lba, count=1):
        data = pread(count * SECTOR, lba * SECTOR)
        return data if len(data) == count * SECTOR else None
    mbr = sector(0)
    if mbr is None or mbr[510:512] != b"\x55\xaa":
        return []
    entries = [struct.unpack_from("<B3sB3sII", mbr, 446 + 16 * i) for i in range(4)]
    if any(e[2] == 0xEE for e in entries):
        return _read_gpt(sector, size, name)
    parts = []
    nsect = size // SECTOR

    def add(pno, start, length, what):
        if length == 0:
            return
        if start >= nsect:
            log.warning("umvu: vudev: %s: partition %d starts past the end of the disk; "
                        "ignored", name, pno)
            return
        if start + length > nsect:
            log.warning("umvu: vudev: %s: partition %d goes past the end of the disk; "
                        "limited to it", name, pno)
            length = nsect - start
        parts.append((pno, start * SECTOR, length * SECTOR))
    for i, (_, _, ptype, _, start, length) in enumerate(entries):
        if ptype == 0 or length == 0:
            continue
        if ptype in MBR_EXTENDED:
            add(i + 1, start, min(length, 2), "extended")  # as Linux: 1 KiB of it
            _read_logical(sector, start, length, add, name)
        else:
            add(i + 1, start, length, "primary")
    return parts


def _read_logical(sector, ext_start, ext_length, add, name):
    pno = 5
    this = ext_start
    seen = set()
    while pno < 5 + MAX_LOGICAL:
        if this in seen or not ext_start <= this < ext_start + ext_length:
            if this in seen:
                log.warning("umvu: vudev: %s: the chain of logical partitions loops; "
                            "stopped at %d", name, pno - 1)
            return
        seen.add(this)
        ebr = sector(this)
        if ebr is None or ebr[510:512] != b"\x55\xaa":
            return
        first = struct.unpack_from("<B3sB3sII", ebr, 446)
        second = struct.unpack_from("<B3sB3sII", ebr, 462)
        if first[2] and first[5]:
            add(pno, this + first[4], first[5], "logical")
            pno += 1
        if not second[2] or second[2] not in MBR_EXTENDED:
            return
        this = ext_start + second[4]


def _gpt_header(sector, lba):
    hdr = sector(lba)
    if hdr is None or hdr[:8] != b"EFI PART":
        return None
    hsize = struct.unpack_from("<I", hdr, 12)[0]
    if not 92 <= hsize <= SECTOR:
        return None
    crc = struct.unpack_from("<I", hdr, 16)[0]
    if zlib.crc32(hdr[:16] + b"\0\0\0\0" + hdr[20:hsize]) != crc:
        return None
    first, last, table_lba, count, esize, table_crc = (
        struct.unpack_from("<Q", hdr, 40)[0], struct.unpack_from("<Q", hdr, 48)[0],
        struct.unpack_from("<Q", hdr, 72)[0], struct.unpack_from("<I", hdr, 80)[0],
        struct.unpack_from("<I", hdr, 84)[0], struct.unpack_from("<I", hdr, 88)[0])
    if esize < 128 or esize % 8 or count > 4096:
        return None
    table = sector(table_lba, (count * esize + SECTOR - 1) // SECTOR)
    if table is None or zlib.crc32(table[:count * esize]) != table_crc:
        return None
    return first, last, table, count, esize


def _read_gpt(sector, size, name):
    nsect = size // SECTOR
    found = _gpt_header(sector, 1) or _gpt_header(sector, nsect - 1)
    if found is None:
        log.warning("umvu: vudev: %s: a protective MBR but no valid GPT; no partitions",
                    name)
        return []
    _, _, table, count, esize = found
    parts = []
    for i in range(count):
        e = table[i * esize:(i + 1) * esize]
        if e[:16] == b"\0" * 16:
            continue
        start, end = struct.unpack_from("<QQ", e, 32)
        if end < start or start >= nsect:
            log.warning("umvu: vudev: %s: GPT entry %d is outside the disk; ignored",
                        name, i + 1)
            continue
        end = min(end, nsect - 1)
        parts.append((i + 1, start * SECTOR, (end - start + 1) * SECTOR))
    return parts


# ------------------------------------------------------------------ services
class Handle:
    __slots__ = ("flags", "wrote_table")

    def __init__(self, flags):
        self.flags = flags
        self.wrote_table = False


class DeviceService:
    """One device path: a whole device, or a partition (a window of its disk)."""

    def __init__(self, disk: "Disk", start: int, length: int, rdev: int, pno: int):
        self.disk, self.start, self.length, self.rdev, self.pno = disk, start, length, rdev, pno
        self.entry = None  # the table entry serving this path (partitions)

    @property
    def readonly(self) -> bool:
        """(as /proc/mounts shows it: BLKROSET may change it)"""
        return self.disk.readonly

    # -------------------------------------------------------- paths
    def lstat(self, path):
        if path != b"/":
            raise OSError(errno.ENOTDIR, "a device is not a directory")
        d = self.disk
        return types.SimpleNamespace(
            st_mode=(stat.S_IFBLK if d.device.kind == "blk" else stat.S_IFCHR) | 0o660,
            st_ino=0x1000 + (self.rdev & 0xFFFFF), st_dev=d.st_dev, st_nlink=1,
            st_uid=os.getuid(), st_gid=os.getgid(), st_rdev=self.rdev, st_size=0,
            st_blksize=4096, st_blocks=0, st_atime_ns=d.mounted_ns,
            st_mtime_ns=d.mounted_ns, st_ctime_ns=d.mounted_ns)

    def access(self, path, mode):
        self.lstat(path)
        if mode & 2 and self.disk.readonly:
            raise OSError(errno.EROFS, "read-only device")

    def open(self, path, flags, mode):
        if path != b"/":
            raise OSError(errno.ENOTDIR, "a device is not a directory")
        if flags & os.O_ACCMODE != os.O_RDONLY and self.disk.readonly:
            raise OSError(errno.EROFS, "read-only device")
        return Handle(flags)  # (the core counts the open in the entry's users)

    def close(self, h):
        if h.wrote_table and self.pno == 0:
            self.disk.reread(quiet=True)

    def fstat(self, h):
        return self.lstat(b"/")

    # a device node on a devtmpfs has no xattrs; its owner and mode stay
    def getxattr(self, path, name):
        raise OSError(errno.ENODATA, "no such attribute")

    def listxattr(self, path):
        return []

    def setxattr(self, path, name, value, flags):
        raise OSError(errno.EOPNOTSUPP, "no attributes on a virtual device")

    def removexattr(self, path, name):
        raise OSError(errno.ENODATA, "no such attribute")

    def chmod(self, path, mode):
        raise OSError(errno.EPERM, "the mode of a virtual device is fixed")

    def chown(self, path, uid, gid):
        raise OSError(errno.EPERM, "the owner of a virtual device is fixed")

    def utimens(self, path, atime_ns, mtime_ns):
        raise OSError(errno.EPERM, "the times of a virtual device are fixed")

    def seek_size(self, h):
        return self.length

    def statfs(self, path):
        raise OSError(errno.ENOSYS, "not a file system")

    def host_backing(self, path):
        backing = getattr(self.disk.device, "host_backing", None)
        where = backing() if backing else None
        if where is None or self.disk.device.kind != "blk":
            raise OSError(errno.ENOTBLK, "this device has no host image")
        host_path, offset = where
        return host_path, offset + self.start, self.length

    # -------------------------------------------------------- data
    def pread(self, h, size, offset):
        if self.disk.device.kind == "chr":  # a stream: no size, no bounds
            return self.disk.device.pread(size, offset)
        if offset < 0:
            raise OSError(errno.EINVAL, "negative offset")
        if offset >= self.length:
            return b""
        size = min(size, self.length - offset)
        return self.disk.device.pread(size, self.start + offset)

    def pwrite(self, h, data, offset):
        if self.disk.readonly:
            raise OSError(errno.EPERM, "read-only device")
        if self.disk.device.kind == "chr":
            return self.disk.device.pwrite(bytes(data), offset)
        if offset < 0:
            raise OSError(errno.EINVAL, "negative offset")
        if offset >= self.length and data:
            raise OSError(errno.ENOSPC, "past the end of the device")
        data = data[:self.length - offset]
        if self.pno == 0 and self.disk.partitioned and (
                offset < TABLE_AREA or offset + len(data) > self.length - 64 * SECTOR):
            h.wrote_table = True
        return self.disk.device.pwrite(bytes(data), self.start + offset)

    def fsync(self, h):
        self.disk.device.fsync()

    def syncfs(self):
        self.disk.device.fsync()

    def ftruncate(self, h, length):
        raise OSError(errno.EINVAL, "a device has a fixed size")

    def truncate(self, path, length):
        raise OSError(errno.EINVAL, "a device has a fixed size")

    # -------------------------------------------------------- ioctl
    def ioctl(self, h, req, arg):
        d = self.disk
        api = d.api
        if d.device.kind != "blk":
            raise OSError(errno.ENOTTY, "not a block device")

        def put(fmt, value):
            api.guest_write(arg, struct.pack(fmt, value))
            return 0
        if req == BLKGETSIZE64:
            return put("<Q", self.length)
        if req == BLKGETSIZE:
            return put("<Q", self.length // SECTOR)
        if req in (BLKSSZGET, BLKPBSZGET, BLKIOMIN):
            return put("<i", SECTOR)
        if req == BLKBSZGET:
            return put("<i", 4096)
        if req == BLKBSZSET:
            api.guest_read(arg, 4)
            return 0
        if req in (BLKIOOPT, BLKALIGNOFF, BLKDISCARDZEROES, BLKGETZONESZ, BLKGETNRZONES):
            return put("<i", 0)
        if req == BLKROTATIONAL:
            return put("<H", 0)
        if req == BLKROGET:
            return put("<i", 1 if d.readonly else 0)
        if req == BLKROSET:
            value = struct.unpack("<i", api.guest_read(arg, 4))[0]
            if value == 0 and getattr(d.device, "readonly", False):
                raise OSError(errno.EACCES, "the device is read-only")
            d.readonly = bool(value) or getattr(d.device, "readonly", False)
            return 0
        if req in (BLKRAGET, BLKFRAGET):
            return put("<q", 256)
        if req in (BLKRASET, BLKFRASET, BLKFLSBUF):
            self.disk.device.fsync()
            return 0
        if req == BLKSECTGET:
            return put("<H", 2048)
        if req == BLKGETDISKSEQ:
            return put("<Q", d.seq)
        if req == HDIO_GETGEO:
            cyl = min(self.length // (255 * 63 * SECTOR), 0xFFFF)
            api.guest_write(arg, struct.pack("<BBHxxxxQ", 255, 63, cyl,
                                             self.start // SECTOR))
            return 0
        if req in (BLKDISCARD, BLKSECDISCARD, BLKZEROOUT):
            start, length = struct.unpack("<QQ", api.guest_read(arg, 16))
            if start % SECTOR or length % SECTOR or start + length > self.length:
                raise OSError(errno.EINVAL, "range not aligned or past the end")
            if d.readonly:
                raise OSError(errno.EPERM, "read-only device")
            if req == BLKZEROOUT:
                zero = b"\0" * (1 << 20)
                pos = start
                while pos < start + length:
                    n = min(len(zero), start + length - pos)
                    self.disk.device.pwrite(zero[:n], self.start + pos)
                    pos += n
            return 0  # discard: the data may stay, as BLKDISCARDZEROES says 0
        if req == BLKRRPART:
            if self.pno != 0 or not d.partitioned:
                raise OSError(errno.EINVAL, "not a partitioned disk")
            d.reread()
            return 0
        if req == BLKPG:
            if self.pno != 0 or not d.partitioned:
                raise OSError(errno.EINVAL, "not a partitioned disk")
            return d.blkpg(arg)
        raise OSError(errno.ENOTTY, "inappropriate ioctl for device")


class Disk:
    """A mounted device and its partitions."""

    def __init__(self, module, api, device, target: bytes, rdev_base, name: str):
        self.module, self.api, self.device, self.target = module, api, device, target
        self.name = name
        self.partitioned = bool(getattr(device, "partitioned", False))
        self.readonly = bool(getattr(device, "readonly", False))
        self.rdev_base = rdev_base  # (major, first minor)
        self.st_dev = os.makedev(0, 0x60 + module.count)
        self.mounted_ns = time.time_ns()
        self.seq = module.count
        self.whole = DeviceService(self, 0, device.size,
                                   os.makedev(rdev_base[0], rdev_base[1]), 0)
        self.parts: dict[int, DeviceService] = {}
        self.dev_entries = [api.add_device(module, self._kind(), self.whole.rdev,
                                           self.whole)]

    def _kind(self):
        return "blkdev" if self.device.kind == "blk" else "chrdev"

    def part_path(self, pno: int) -> bytes:
        sep = b"p" if self.target[-1:].isdigit() else b""
        return self.target + sep + b"%d" % pno

    def busy_parts(self):
        return [p for p in self.parts.values() if p.entry is not None and p.entry.users]

    def reread(self, quiet: bool = False) -> None:
        if self.busy_parts():
            if quiet:
                log.warning("umvu: vudev: %s: a partition is in use; the new partition "
                            "table is read when it is free (BLKRRPART)", self.name)
                return
            raise OSError(errno.EBUSY, "a partition is in use")
        self._set_parts(read_partitions(self.device.pread, self.device.size, self.name))

    def _set_parts(self, table) -> None:
        for p in list(self.parts.values()):
            self._drop(p)
        for pno, start, length in table:
            self._add(pno, start, length)

    def _add(self, pno, start, length):
        rdev = os.makedev(self.rdev_base[0], self.rdev_base[1] + pno)
        svc = DeviceService(self, start, length, rdev, pno)
        svc.entry = self.api.add_entry_path(self.module, self.part_path(pno), svc)
        svc.dev_entry = self.api.add_device(self.module, self._kind(), rdev, svc)
        self.parts[pno] = svc

    def _drop(self, svc):
        self.api.remove_entry(svc.entry)
        self.api.remove_entry(svc.dev_entry)
        self.parts.pop(svc.pno, None)

    def blkpg(self, arg):
        op, _, datalen, data = _blkpg_arg(self.api.guest_read(arg, 24))
        if datalen < 148:
            raise OSError(errno.EINVAL, "short blkpg_partition")
        start, length, pno = struct.unpack("<qqi", self.api.guest_read(data, 20))
        if op == BLKPG_DEL_PARTITION:
            svc = self.parts.get(pno)
            if svc is None:
                raise OSError(errno.ENXIO, "no such partition")
            if svc.entry.users:
                raise OSError(errno.EBUSY, "partition in use")
            self._drop(svc)
            return 0
        if op not in (BLKPG_ADD_PARTITION, BLKPG_RESIZE_PARTITION):
            raise OSError(errno.EINVAL, "unknown BLKPG operation")
        if start < 0 or length <= 0 or start % SECTOR or length % SECTOR or \
                start + length > self.device.size or not 0 < pno < 256:
            raise OSError(errno.EINVAL, "bad partition")
        if op == BLKPG_RESIZE_PARTITION:
            svc = self.parts.get(pno)
            if svc is None:
                raise OSError(errno.ENXIO, "no such partition")
            if svc.start != start:
                raise OSError(errno.EINVAL, "a resize keeps the start")
            others = [p for p in self.parts.values() if p.pno != pno]
        else:
            if pno in self.parts:
                raise OSError(errno.EBUSY, "partition exists")
            others = list(self.parts.values())
        for p in others:  # as the kernel: no overlaps (the 1 KiB extended stub aside)
            if start < p.start + p.length and p.start < start + length and \
                    not p.length <= 2 * SECTOR:
                raise OSError(errno.EBUSY, "overlaps partition %d" % p.pno)
        if op == BLKPG_RESIZE_PARTITION:
            self.parts[pno].length = length
        else:
            self._add(pno, start, length)
        return 0

    def close(self) -> None:
        for p in list(self.parts.values()):
            self._drop(p)
        for e in self.dev_entries:
            self.api.remove_entry(e)
        self.device.close()


def _blkpg_arg(raw: bytes):
    op, flags, datalen = struct.unpack_from("<iii", raw, 0)
    data = struct.unpack_from("<Q", raw, 16)[0]
    return op, flags, datalen, data


class VuDev(Module):
    name = "vudev"
    description = "virtual block and character devices"
    creates_target = True

    def __init__(self, api) -> None:
        super().__init__(api)
        self.count = 0
        self.disks: dict[int, Disk] = {}  # id(service) -> disk
        self.next_minor: dict[int, int] = {}

    def accepts(self, fstype: str) -> bool:
        return fstype.startswith("vudev") and fstype[5:].isalnum()

    @property
    def filesystems(self):
        here = os.path.join(os.path.dirname(os.path.dirname(__file__)), "submodules")
        return tuple(sorted(f[:-3] for f in os.listdir(here)
                            if f.startswith("vudev") and f.endswith(".py")))

    def _rdev_base(self, device, target: bytes):
        base = getattr(device, "rdev_base", None)
        if base is not None and not device.partitioned:
            return base
        name = os.path.basename(target)
        major = base[0] if base else 3
        if major == 3 and len(name) == 3 and name[:2] in (b"hd", b"sd") and \
                name[2:].isalpha():
            return 3, (name[2] - ord("a")) * 64  # hda 3:0, hdb 3:64, as Linux's IDE
        minor = self.next_minor.get(major, 0)
        self.next_minor[major] = minor + 64
        return major, minor

    def mount(self, source, target, fstype, flags, options):
        try:
            sub = importlib.import_module("umvu.submodules." + fstype)
        except ModuleNotFoundError:
            raise OSError(errno.ENODEV, "no device submodule %s" % fstype) from None
        known = dict(getattr(sub, "OPTIONS", {}))
        known.setdefault("ro", bool)
        known.setdefault("rw", bool)
        opts = parse_options(options, known)
        if flags & 1:
            opts["ro"] = True
        if target in (b"/", b"/dev") or not target.startswith(b"/"):
            raise OSError(errno.EINVAL, "a device needs a path of its own")
        if any(d.target == target for d in self.disks.values()):
            raise OSError(errno.EBUSY, "%s is already a device" % os.fsdecode(target))
        device = sub.Device(source, opts, self.api)
        self.count += 1
        try:
            disk = Disk(self, self.api, device, target,
                        self._rdev_base(device, target), "%s (%s)" % (
                            os.fsdecode(target), os.fsdecode(source)))
            if disk.partitioned:
                disk.reread()
        except BaseException:
            device.close()
            raise
        self.disks[id(disk.whole)] = disk
        return disk.whole

    def umount(self, service, flags) -> None:
        disk = self.disks.get(id(service))
        if disk is None:
            return
        if disk.busy_parts() and not flags & 3:
            raise OSError(errno.EBUSY, "a partition is in use")
        del self.disks[id(service)]
        disk.close()

    def cleanup(self) -> None:
        if self.disks:
            raise OSError(errno.EBUSY, "devices are mounted")
