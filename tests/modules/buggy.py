"""A deliberately buggy module: /buggy/file exists, reading it raises; /buggy/greedy
answers every read with 4096 bytes more than asked; /buggy/exit raises SystemExit and
/buggy/interrupt KeyboardInterrupt; /buggy/plain is a plain file of 10 bytes."""
import os
import stat

from umvu.api import Module

FILES = (b"file", b"greedy", b"exit", b"interrupt", b"plain")


class File:
    def lstat(self, path):
        if path == b"/":
            return os.stat_result((stat.S_IFDIR | 0o755, 1, 0, 2, 0, 0, 0, 0, 0, 0))
        if path[1:] in FILES:
            return os.stat_result((stat.S_IFREG | 0o644, 2 + FILES.index(path[1:]), 0, 1,
                                   0, 0, 10, 0, 0, 0))
        raise FileNotFoundError(path)

    def open(self, path, flags, mode):
        return path[1:]

    def getdents(self, handle, offset):
        return [(name, 2 + i, 8, i + 1) for i, name in enumerate(FILES)][offset:]

    def pread(self, handle, size, offset):
        if handle == b"greedy":
            return b"A" * (size + 4096)
        if handle == b"exit":
            raise SystemExit(3)
        if handle == b"interrupt":
            raise KeyboardInterrupt()
        if handle == b"plain":
            return b"0123456789"[offset:offset + size]
        raise ZeroDivisionError("deliberate bug in read")

    def close(self, handle):
        pass


class Buggy(Module):
    name = "buggy"
    description = "raises in read"

    def __init__(self, api):
        super().__init__(api)
        api.add_path(self, b"/buggy", File())
