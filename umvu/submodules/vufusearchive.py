"""vufusearchive: an archive as a read-only file system (VUOS's vufusearchive), on
libarchive (Debian's python3-libarchive-c): tar (plain, gzip, bzip2, xz, zstd, lz4),
pax, cpio, zip, 7z, ar, ISO 9660 and whatever else libarchive reads.

``vumount -t vufusearchive ARCHIVE DIR``: ARCHIVE is a file (or a device of another
module) in the session's view. The archive is read once at mount: every member's
metadata (mode, owner, times to the nanosecond where the format keeps them, symlink
targets, hard links, devices) makes the tree, and the regular files' data goes to a
spool file of the mount's own (unlinked at once, so nothing is left behind), from which
reads are served. A member libarchive cannot read (a truncated or corrupt archive) makes
the mount fail with the archive's error; nothing is written to the archive, ever."""
from __future__ import annotations

import errno
import os
import stat
import tempfile

from umvu.submodules._rotree import ReadOnlyTree

OPTIONS = {"offset": int, "size": int, "readonly": bool}
SOURCE_IMAGE = True  # vufuse hands over the host file behind the source (offset, size)
READONLY = True


def _ns(sec, nsec) -> int:
    return int(sec) * 1_000_000_000 + int(nsec)


class ArchiveFS(ReadOnlyTree):
    def __init__(self, source: bytes, options: dict | None = None) -> None:
        super().__init__()
        import libarchive
        from libarchive import ffi
        options = options or {}
        self.spool = tempfile.TemporaryFile(prefix="umvu-archive-")
        offset = options.get("offset", 0)
        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if offset:
                os.lseek(fd, offset, os.SEEK_SET)
            self.root.mtime = self.root.atime = self.root.ctime = st.st_mtime_ns
            self.root.uid, self.root.gid = st.st_uid, st.st_gid
            links = []
            spooled = 0
            try:
                with libarchive.fd_reader(fd) as archive:
                    for entry in archive:
                        p = entry._entry_p
                        mtime = _ns(ffi.entry_mtime(p), ffi.entry_mtime_nsec(p))
                        # (a format without them: 0, shown as the mtime, as tar x does)
                        atime = _ns(ffi.entry_atime(p), ffi.entry_atime_nsec(p)) \
                            if ffi.entry_atime(p) else mtime
                        ctime = _ns(ffi.entry_ctime(p), ffi.entry_ctime_nsec(p)) \
                            if ffi.entry_ctime(p) else mtime
                        path = os.fsencode(entry.pathname)
                        if entry.islnk:  # (after the tree is made: its target may follow)
                            # (cpio's newc gives the data with the last link: it is the
                            # file's then)
                            start = spooled
                            for block in entry.get_blocks():
                                self.spool.write(block)
                                spooled += len(block)
                            links.append((path, os.fsencode(entry.linkpath), start,
                                          spooled - start))
                            continue
                        mode = entry.mode
                        if not stat.S_IFMT(mode):
                            mode |= stat.S_IFREG
                        n = self.add(path, mode, entry.uid, entry.gid, mtime, atime, ctime)
                        if entry.issym:
                            n.target = os.fsencode(entry.linkpath)
                        elif entry.isdev:
                            n.rdev = os.makedev(entry.rdevmajor, entry.rdevminor)
                        elif stat.S_ISREG(mode):
                            start = spooled
                            for block in entry.get_blocks():
                                self.spool.write(block)
                                spooled += len(block)
                            n.size = spooled - start
                            n.data = self._reader(start)
            except libarchive.ArchiveError as e:
                raise OSError(errno.EINVAL, "%s: not an archive libarchive reads: %s" % (
                    os.fsdecode(source), e.msg if hasattr(e, "msg") else e)) from None
            for path, target, start, size in links:
                if not self.link(path, target):
                    raise OSError(errno.EINVAL, "%s: hard link %s to %s, which is not in "
                                  "the archive" % (os.fsdecode(source), os.fsdecode(path),
                                                   os.fsdecode(target)))
                if size:
                    n = self.lookup_path(target)
                    n.size, n.data = size, self._reader(start)
            self.spool.flush()
            self.blocks = (spooled + 4095) // 4096
        finally:
            os.close(fd)

    def _reader(self, start: int):
        fd = self.spool.fileno()
        return lambda off, size: os.pread(fd, size, start + off)


def vufuse_operations(source, options):
    return ArchiveFS(source, options)
