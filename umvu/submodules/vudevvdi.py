"""vudevvdi: a VirtualBox disk image (VDI 1.1, dynamic or static) as a partitioned disk
(VUOS's vudevvdi): ``vumount -t vudevvdi [-o ro] disk.vdi /dev/hda``, read-write.

A block the map says is not allocated (or is zero) reads as zeros; writing one makes it
a new block at the end of the data (its map entry and the header's count of allocated
blocks written after it), as VirtualBox and qemu do. Refused at mount: what is not a VDI
1.1 image, a block map or data area past the file, a differencing image (a parent
image is not read)."""
from __future__ import annotations

import errno
import os
import struct

from umvu.submodules._vmdisk import ImageDevice, refused

OPTIONS = {"ro": bool, "rw": bool}
SIGNATURE = 0xBEDA107F
UNALLOCATED, ZERO = 0xFFFFFFFF, 0xFFFFFFFE
TYPE_DYNAMIC, TYPE_STATIC, TYPE_DIFF = 1, 2, 4




class Vdi:
    def __init__(self, path: bytes, writable: bool) -> None:
        self.path = path
        self.fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
        try:
            self._header()
        except BaseException:
            os.close(self.fd)
            raise

    def _header(self) -> None:
        h = os.pread(self.fd, 512, 0)
        if len(h) < 400 or struct.unpack_from("<I", h, 64)[0] != SIGNATURE:
            raise refused(self.path, "not a VDI image")
        if struct.unpack_from("<I", h, 68)[0] != 0x00010001:
            raise refused(self.path, "VDI version %#x (1.1 is read)"
                        % struct.unpack_from("<I", h, 68)[0])
        self.kind = struct.unpack_from("<I", h, 76)[0]
        if self.kind == TYPE_DIFF:
            raise refused(self.path, "a differencing VDI image (its parent is not read)")
        if self.kind not in (TYPE_DYNAMIC, TYPE_STATIC):
            raise refused(self.path, "VDI image type %d" % self.kind)
        self.off_blocks, self.off_data = struct.unpack_from("<II", h, 340)
        self.size = struct.unpack_from("<Q", h, 368)[0]
        self.block, self.extra, self.nblocks, self.allocated = struct.unpack_from(
            "<IIII", h, 376)
        if self.block == 0 or self.block & (self.block - 1) or \
                self.nblocks * self.block < self.size:
            raise refused(self.path, "bad block size or count")
        raw = os.pread(self.fd, 4 * self.nblocks, self.off_blocks)
        if len(raw) != 4 * self.nblocks:
            raise refused(self.path, "the block map is past the end of the file")
        self.map = list(struct.unpack("<%dI" % self.nblocks, raw))
        used = [b for b in self.map if b < ZERO]
        if used and max(used) >= self.allocated:
            raise refused(self.path, "a block past the allocated ones")

    def _where(self, index: int) -> int:
        return self.off_data + index * (self.block + self.extra) + self.extra

    def read(self, offset: int, size: int) -> bytes:
        out = []
        end = min(offset + size, self.size)
        while offset < end:
            b, within = divmod(offset, self.block)
            n = min(end - offset, self.block - within)
            index = self.map[b]
            if index >= ZERO:
                out.append(bytes(n))
            else:
                data = os.pread(self.fd, n, self._where(index) + within)
                if len(data) != n:
                    raise OSError(errno.EIO, "%s: a block past the end of the file"
                                  % os.fsdecode(self.path))
                out.append(data)
            offset += n
        return b"".join(out)

    def write(self, data: bytes, offset: int) -> int:
        if offset + len(data) > self.size:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done = 0
        while done < len(data):
            b, within = divmod(offset + done, self.block)
            n = min(len(data) - done, self.block - within)
            index = self.map[b]
            if index >= ZERO:  # a new block: its data first, then the map, the count
                index = self.allocated
                block = bytearray(self.block)
                block[within:within + n] = data[done:done + n]
                if self.extra:
                    os.pwrite(self.fd, bytes(self.extra), self._where(index) - self.extra)
                os.pwrite(self.fd, bytes(block), self._where(index))
                self.map[b] = index
                os.pwrite(self.fd, struct.pack("<I", index), self.off_blocks + 4 * b)
                self.allocated += 1
                os.pwrite(self.fd, struct.pack("<I", self.allocated), 388)
            else:
                os.pwrite(self.fd, data[done:done + n], self._where(index) + within)
            done += n
        return done

    def fsync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class Device(ImageDevice):
    image_format, format_name = Vdi, "VDI"
