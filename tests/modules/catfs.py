"""A stacking test module: ``vumount -t catfs SOURCE TARGET`` shows TARGET/content, the
bytes of SOURCE read through the guest's view as it was below this module (SOURCE may
itself be a file in another virtual mount)."""
import errno
import os
import stat

from umvu.api import Module


class Content:
    def __init__(self, f):
        self.f = f

    def lstat(self, path):
        if path == b"/":
            return os.stat_result((stat.S_IFDIR | 0o555, 1, 0, 2, 0, 0, 0, 0, 0, 0))
        if path == b"/content":
            size = self.f.fstat().st_size
            return os.stat_result((stat.S_IFREG | 0o444, 2, 0, 1, 0, 0, size, 0, 0, 0))
        raise OSError(errno.ENOENT, "no such file")

    def open(self, path, flags, mode):
        return path

    def pread(self, handle, size, offset):
        return self.f.pread(size, offset)

    def getdents(self, handle, offset):
        return [(b"content", 2, 8, 1)][offset:]

    def destroy(self):
        self.f.close()


class CatFS(Module):
    name = "catfs"
    filesystems = ("catfs",)

    def mount(self, source, target, fstype, flags, options):
        return Content(self.api.open_path(source, below=self))
