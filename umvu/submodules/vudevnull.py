"""vudevnull: a /dev/null at any path (``vumount -t vudevnull none /dev/mynull``)."""
from __future__ import annotations


class Device:
    kind = "chr"
    partitioned = False
    rdev_base = (1, 3)
    size = 0

    def __init__(self, source: bytes, options: dict, api):
        pass

    def pread(self, size: int, offset: int) -> bytes:
        return b""

    def pwrite(self, data: bytes, offset: int) -> int:
        return len(data)

    def fsync(self) -> None:
        pass

    def close(self) -> None:
        pass
