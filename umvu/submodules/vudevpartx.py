"""vudevpartx: a disk image (a file, or a device of another module) as a partitioned
disk: ``vumount -t vudevpartx [-o ro] disk.img /dev/hda`` gives /dev/hda and one device
per MBR or GPT partition (/dev/hda1...)."""
from __future__ import annotations

import errno
import os

OPTIONS = {"ro": bool, "rw": bool}


class Device:
    kind = "blk"
    partitioned = True
    rdev_base = (3, 0)  # IDE disks: hda is 3:0, hdb 3:64 (the module picks the minor)

    def __init__(self, source: bytes, options: dict, api):
        if source in (b"", b"none"):
            raise OSError(errno.EINVAL, "vudevpartx needs a disk image")
        self.readonly = bool(options.get("ro")) and not options.get("rw")
        flags = os.O_RDONLY if self.readonly else os.O_RDWR
        self.source = source
        # through the guest's view: the image may itself live in a virtual file system
        self.file = api.open_path(source, flags)
        try:
            st = self.file.fstat()
            if not (st.st_mode & 0o170000 == 0o100000):
                raise OSError(errno.EINVAL, "%s is not a regular file"
                              % os.fsdecode(source))
            self.size = st.st_size - st.st_size % 512
            if self.size == 0:
                raise OSError(errno.EINVAL, "%s is empty (make it with truncate -s SIZE)"
                              % os.fsdecode(source))
        except BaseException:
            self.file.close()
            raise

    def pread(self, size: int, offset: int) -> bytes:
        return self.file.pread(size, offset)

    def pwrite(self, data: bytes, offset: int) -> int:
        return self.file.pwrite(data, offset)

    def fsync(self) -> None:
        self.file.fsync()

    def host_backing(self):
        if self.file.service is not None:
            return None  # an image inside a virtual file system: no host file to share
        return os.path.abspath(self.source), 0

    def close(self) -> None:
        self.file.close()
