"""A pyfuse3 file system whose operations really wait in trio: ``lookup`` takes a
trio.Lock (and yields inside it), ``read`` sleeps 0.3 s with trio.sleep. One directory
with files f0 .. f9, each holding b"file N\\n". Mounted by vufuse inside umvu, or by
pyfuse3 on kernel FUSE."""
import errno
import stat

import pyfuse3
import trio

NAP = 0.3
FILES = {("f%d" % i).encode(): pyfuse3.ROOT_INODE + 1 + i for i in range(10)}
DATA = {ino: b"file %d\n" % (ino - pyfuse3.ROOT_INODE - 1) for ino in FILES.values()}
STATS = pyfuse3.ROOT_INODE + 20
FILES[b"stats"] = STATS


class TrioFS(pyfuse3.Operations):
    def __init__(self, source):
        super().__init__()
        self.lock = trio.Lock()
        self.gate = int(source) if source.isdigit() else 0
        self.opened = trio.Event()  # the gate: gate reads under way at once
        self.under_way = self.most = 0

    def _attr(self, ino):
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.st_mode = (stat.S_IFDIR | 0o755) if ino == pyfuse3.ROOT_INODE else \
            (stat.S_IFREG | 0o444)
        a.st_nlink = 2 if ino == pyfuse3.ROOT_INODE else 1
        a.st_size = 64 if ino == STATS else len(DATA.get(ino, b""))
        a.st_blksize = 4096
        return a

    async def getattr(self, inode, ctx=None):
        if inode not in (pyfuse3.ROOT_INODE, STATS) and inode not in DATA:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(inode)

    async def lookup(self, parent_inode, name, ctx=None):
        async with self.lock:
            await trio.sleep(0)  # a real yield while the lock is held
            ino = FILES.get(bytes(name))
        if parent_inode != pyfuse3.ROOT_INODE or ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(ino)

    async def opendir(self, inode, ctx):
        return inode

    async def readdir(self, fh, start_id, token):
        for i, (name, ino) in enumerate(sorted(FILES.items())):
            if i < start_id:
                continue
            if not pyfuse3.readdir_reply(token, name, self._attr(ino), i + 1):
                break

    async def open(self, inode, flags, ctx):
        if inode not in DATA and inode != STATS:
            raise pyfuse3.FUSEError(errno.ENOENT)
        fi = pyfuse3.FileInfo(fh=inode)
        fi.direct_io = True  # every read reaches read(), none is cached
        return fi

    async def read(self, fh, off, size):
        if fh == STATS:
            return (b"most %d\n" % self.most)[off:off + size]
        self.under_way += 1
        self.most = max(self.most, self.under_way)
        try:
            if self.most >= self.gate:
                self.opened.set()
            with trio.move_on_after(20):
                await self.opened.wait()
            await trio.sleep(NAP)
        finally:
            self.under_way -= 1
        return DATA[fh][off:off + size]
