"""vudevramdisk: a disk in memory: ``vumount -t vudevramdisk -o size=64M[,mbr] none
/dev/ram0``. With ``mbr`` it takes a partition table (/dev/ram0p1...). Nothing is left
behind: the memory goes with the mount."""
from __future__ import annotations

import errno
import os

from umvu.api import parse_size

OPTIONS = {"size": parse_size, "mbr": bool}
DEFAULT_SIZE = 32 << 20


class Device:
    kind = "blk"
    rdev_base = (1, 0)  # as Linux's ram disks

    def __init__(self, source: bytes, options: dict, api):
        self.size = options.get("size", DEFAULT_SIZE)
        self.size -= self.size % 512
        if self.size <= 0:
            raise OSError(errno.EINVAL, "ramdisk size must be at least 512 bytes")
        self.partitioned = bool(options.get("mbr"))
        self.readonly = False
        # a memfd: sparse, and other modules (vufuseext2) can open it by /proc path
        self.fd = os.memfd_create("umvu-ramdisk", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, self.size)

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def pwrite(self, data: bytes, offset: int) -> int:
        return os.pwrite(self.fd, data, offset)

    def fsync(self) -> None:
        pass

    def host_backing(self):
        return b"/proc/%d/fd/%d" % (os.getpid(), self.fd), 0

    def close(self) -> None:
        os.close(self.fd)
