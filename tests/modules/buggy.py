"""A deliberately buggy module: /buggy/file exists, reading it raises."""
import os
import stat

from umvu.api import Module


class File:
    def lstat(self, path):
        if path == b"/":
            return os.stat_result((stat.S_IFDIR | 0o755, 1, 0, 2, 0, 0, 0, 0, 0, 0))
        if path == b"/file":
            return os.stat_result((stat.S_IFREG | 0o644, 2, 0, 1, 0, 0, 10, 0, 0, 0))
        raise FileNotFoundError(path)

    def open(self, path, flags, mode):
        return 1

    def getdents(self, handle, offset):
        return [(b"file", 2, 8, 1)][offset:]

    def pread(self, handle, size, offset):
        raise ZeroDivisionError("deliberate bug in read")

    def close(self, handle):
        pass


class Buggy(Module):
    name = "buggy"
    description = "raises in read"

    def __init__(self, api):
        super().__init__(api)
        api.add_path(self, b"/buggy", File())
