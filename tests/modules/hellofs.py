"""hellofs: ``vumount -t hellofs none DIR`` shows DIR/hello, holding "hello, world\\n".
Read-only: every change answers EROFS; any other name is ENOENT."""
import errno
import os
import stat
import time
import types

from umvu.api import Module, parse_options

DATA = b"hello, world\n"
ROOT_INO, HELLO_INO = 1, 2


class HelloService:
    """One mount: the directory b"/" with the file b"/hello"."""

    def __init__(self):
        t = int(time.time())  # every time of every file: the mount's
        uid, gid = os.getuid(), os.getgid()  # owned by who runs umvu
        self.root = os.stat_result((stat.S_IFDIR | 0o555, ROOT_INO, 0, 2, uid, gid,
                                    0, t, t, t))
        self.hello = os.stat_result((stat.S_IFREG | 0o444, HELLO_INO, 0, 1, uid, gid,
                                     len(DATA), t, t, t))

    def lstat(self, path):
        if path == b"/":
            return self.root
        if path == b"/hello":
            return self.hello
        raise OSError(errno.ENOENT, "no such file")

    def open(self, path, flags, mode):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC):
            raise OSError(errno.EROFS, "read-only file system")
        self.lstat(path)   # (the core opens only what exists without O_CREAT)
        return path        # the handle: which file

    def close(self, handle):
        pass

    def pread(self, handle, size, offset):
        if handle != b"/hello":
            raise OSError(errno.EISDIR, "is a directory")
        return DATA[offset:offset + size]

    def plain_content(self, handle):
        return True        # plain bytes up to st_size: reads may run in the kernel

    def getdents(self, handle, offset):
        if handle != b"/":
            raise OSError(errno.ENOTDIR, "not a directory")
        entries = [(b".", ROOT_INO, stat.S_IFDIR >> 12),
                   (b"..", 0, stat.S_IFDIR >> 12),
                   (b"hello", HELLO_INO, stat.S_IFREG >> 12)]
        return [(name, ino, dtype, i + 1)
                for i, (name, ino, dtype) in enumerate(entries)][offset:]

    def statfs(self, path):
        return types.SimpleNamespace(f_bsize=4096, f_frsize=4096, f_blocks=1, f_bfree=0,
                                     f_bavail=0, f_files=2, f_ffree=0, f_namemax=255)

    def _erofs(self, *args):
        raise OSError(errno.EROFS, "read-only file system")

    # every operation that would change something
    mkdir = rmdir = unlink = rename = link = symlink = mknod = _erofs
    chmod = chown = utimens = truncate = setxattr = removexattr = _erofs


class HelloFS(Module):
    name = "hellofs"
    description = "a read-only hello file system (docs/modules.md)"
    filesystems = ("hellofs",)

    def mount(self, source, target, fstype, flags, options):
        parse_options(options, {"ro": bool})  # no option but ro (it is read-only anyway)
        return HelloService()
