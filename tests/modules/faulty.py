"""A module whose reads misbehave (tests/test_module_faults.py): /faulty/greedy answers
every read with 4096 bytes more than asked, /faulty/exit raises SystemExit,
/faulty/interrupt raises KeyboardInterrupt, /faulty/file is a plain file of 10 bytes."""
import errno
import os
import stat

from umvu.api import Module, Service

NAMES = {b"greedy": 2, b"exit": 3, b"interrupt": 4, b"file": 5}


class Faulty(Service):
    def lstat(self, path):
        if path == b"/":
            return os.stat_result((stat.S_IFDIR | 0o755, 1, 0, 2, 0, 0, 0, 0, 0, 0))
        ino = NAMES.get(path[1:])
        if ino is None:
            raise OSError(errno.ENOENT, "no such file")
        return os.stat_result((stat.S_IFREG | 0o644, ino, 0, 1, 0, 0, 10, 0, 0, 0))

    def open(self, path, flags, mode):
        return path[1:]

    def close(self, handle):
        pass

    def getdents(self, handle, offset):
        return [(n, i, 8, k + 1) for k, (n, i) in enumerate(NAMES.items())][offset:]

    def pread(self, handle, size, offset):
        if handle == b"greedy":
            return b"A" * (size + 4096)
        if handle == b"exit":
            raise SystemExit(3)
        if handle == b"interrupt":
            raise KeyboardInterrupt()
        return b"0123456789"[offset:offset + size]


class FaultyModule(Module):
    name = "faulty"
    description = "reads that misbehave"

    def __init__(self, api):
        super().__init__(api)
        api.add_path(self, b"/faulty", Faulty())
