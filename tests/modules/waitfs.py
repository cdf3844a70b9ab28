"""A test module whose calls wait (umvu.core.waiting): ``vumount -t waitfs none TARGET``
shows
  TARGET/in   a read waits until TARGET/out has been written, then gives what was written
              there (and empties it); a write here is EINVAL
  TARGET/out  a write stores its bytes for the next read of TARGET/in and wakes it
  TARGET/nap  a read sleeps SECONDS (``-o nap=SECONDS``, 0.3) and gives b"nap\\n"
The readers are other guests than the writers: each read waits in umvu while every other
guest goes on."""
import errno
import os
import stat

from umvu.api import Event, Module, parse_options, sleep

NAMES = {b"in": 2, b"out": 3, b"nap": 4}


class Box:
    def __init__(self, nap):
        self.data = b""
        self.ready = Event()
        self.nap = nap
        self.reads = 0  # reads that got to the end

    STATS = {b"/" + name: os.stat_result((stat.S_IFREG | 0o666, ino) + (0, 1) + (0,) * 6)
             for name, ino in NAMES.items()}
    STATS[b"/"] = os.stat_result((stat.S_IFDIR | 0o777, 1, 0, 2) + (0,) * 6)

    def lstat(self, path):
        try:
            return self.STATS[path]
        except KeyError:
            raise OSError(errno.ENOENT, "no such file") from None

    def open(self, path, flags, mode):
        self.lstat(path)
        return [path[1:], False]  # name, read already (nap)

    def close(self, handle):
        pass

    def fstat(self, handle):
        return self.lstat(b"/" + handle[0])

    def getdents(self, handle, offset):
        return [(n, i, 8, k + 1) for k, (n, i) in enumerate(NAMES.items())][offset:]

    async def read(self, handle, size):
        name = handle[0]
        if name == b"nap":
            if handle[1]:
                return b""
            await sleep(self.nap)
            handle[1] = True
            self.reads += 1
            return b"nap\n"
        if name != b"in":
            return b""
        while not self.data:
            await self.ready.wait()
            self.ready = Event()
        data, self.data = self.data[:size], self.data[size:]
        self.reads += 1
        return data

    def write(self, handle, data):
        if handle[0] != b"out":
            raise OSError(errno.EINVAL, "read-only")
        self.data += data
        self.ready.set()
        return len(data)


class WaitFS(Module):
    name = "waitfs"
    filesystems = ("waitfs",)

    def mount(self, source, target, fstype, flags, options):
        opts = parse_options(options, {"nap": float})
        return Box(opts.get("nap", 0.3))
