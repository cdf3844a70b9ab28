"""vudevzero: a /dev/zero at any path (``vumount -t vudevzero none /dev/myzero``)."""
from __future__ import annotations


class Device:
    kind = "chr"
    partitioned = False
    rdev_base = (1, 5)
    size = 1 << 62  # endless

    def __init__(self, source: bytes, options: dict, api):
        pass

    def pread(self, size: int, offset: int) -> bytes:
        return bytes(size)

    def pwrite(self, data: bytes, offset: int) -> int:
        return len(data)

    def fsync(self) -> None:
        pass

    def close(self) -> None:
        pass
