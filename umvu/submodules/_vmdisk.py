"""What vudevqcow2 and vudevvdi share: a VM image format (a class with size, read,
write, fsync, close) as a partitioned vudev disk, the image locked as a mount's."""
from __future__ import annotations

import errno
import os


def refused(path, what) -> OSError:
    return OSError(errno.EINVAL, "%s: %s" % (os.fsdecode(path), what))


class ImageDevice:
    kind = "blk"
    partitioned = True
    rdev_base = (3, 0)
    image_format = None  # the subclass's: format(host_path, writable)
    format_name = ""

    def __init__(self, source: bytes, options: dict, api):
        if source in (b"", b"none"):
            raise OSError(errno.EINVAL, "%s needs a %s image" % (type(self).__module__
                                                                 .rsplit(".", 1)[-1],
                                                                 self.format_name))
        self.readonly = bool(options.get("ro")) and not options.get("rw")
        image = api.image_source(source, write=not self.readonly)
        if image.size is not None:
            image.release()
            raise OSError(errno.EINVAL, "%s: a %s image is a file, not a device"
                          % (os.fsdecode(source), self.format_name))
        self.image = image
        try:
            self.disk = type(self).image_format(image.host_path, not self.readonly)
        except BaseException:
            image.release()
            raise
        self.size = self.disk.size - self.disk.size % 512

    def pread(self, size: int, offset: int) -> bytes:
        return self.disk.read(offset, size)

    def pwrite(self, data: bytes, offset: int) -> int:
        if self.readonly:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return self.disk.write(bytes(data), offset)

    def fsync(self) -> None:
        self.disk.fsync()

    def close(self) -> None:
        try:
            self.disk.close()
        finally:
            self.image.release()
