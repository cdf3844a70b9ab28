"""O_TMPFILE and linking an open file (linkat AT_EMPTY_PATH, /proc/self/fd/N with
AT_SYMLINK_FOLLOW) in the directory argv[1]: one line per step, what it answered
(tests/test_memfs_pages.py runs it natively and in a mount, and compares)."""
import ctypes
import errno
import os
import re
import stat
import sys

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, AT_SYMLINK_FOLLOW, AT_EMPTY_PATH = -100, 0x400, 0x1000
d = sys.argv[1]
os.chdir(d)


def res(what, fn):
    try:
        out = fn()
    except OSError as e:
        out = errno.errorcode[e.errno]
    print(what, out)


def linkat(old_fd, old, new, flags):
    if libc.linkat(old_fd, old, AT_FDCWD, new.encode(), flags) != 0:
        raise OSError(ctypes.get_errno(), "linkat")
    return 0


def shown(fd):
    """readlink of the fd's magic link, the inode number left out."""
    return re.sub(r"#\d+ ", "#N ", os.readlink("/proc/self/fd/%d" % fd).replace(d, "D"))


def st(fd_or_path):
    s = os.stat(fd_or_path) if isinstance(fd_or_path, int) else os.lstat(fd_or_path)
    return "%s %o nlink=%d size=%d" % (stat.filemode(s.st_mode), stat.S_IMODE(s.st_mode),
                                       s.st_nlink, s.st_size)


os.umask(0o022)
os.mkdir("sub")
with open("plain", "w") as f:
    f.write("x")
res("tmpfile rdonly", lambda: os.open("sub", os.O_TMPFILE | os.O_RDONLY))
res("tmpfile creat", lambda: os.open("sub", os.O_TMPFILE | os.O_CREAT | os.O_RDWR, 0o600))
res("tmpfile on a file", lambda: os.open("plain", os.O_TMPFILE | os.O_RDWR, 0o600))
res("tmpfile missing", lambda: os.open("nothing", os.O_TMPFILE | os.O_RDWR, 0o600))
fd = os.open("sub", os.O_TMPFILE | os.O_RDWR, 0o666)
res("write", lambda: os.write(fd, b"hello"))
res("fstat", lambda: st(fd))
res("readlink", lambda: shown(fd))
res("listing", lambda: sorted(os.listdir("sub")))
res("fchmod", lambda: os.fchmod(fd, 0o640))
res("fstat after fchmod", lambda: st(fd))
res("fsetxattr", lambda: os.setxattr(fd, "user.k", b"v"))
res("fgetxattr", lambda: os.getxattr(fd, "user.k"))
res("link proc fd", lambda: linkat(AT_FDCWD, b"/proc/self/fd/%d" % fd, "sub/named",
                                   AT_SYMLINK_FOLLOW))
res("named", lambda: st("sub/named"))
res("named data", lambda: open("sub/named", "rb").read())
res("link again, empty path", lambda: linkat(fd, b"", "sub/named2", AT_EMPTY_PATH))
res("named2", lambda: st("sub/named2"))
res("link onto a name", lambda: linkat(fd, b"", "plain", AT_EMPTY_PATH))
res("link without follow", lambda: linkat(AT_FDCWD, b"/proc/self/fd/%d" % fd, "sub/nf", 0))
res("nf is", lambda: stat.filemode(os.lstat("sub/nf").st_mode))
os.close(fd)
res("named after close", lambda: st("sub/named"))
fd = os.open("sub", os.O_TMPFILE | os.O_WRONLY | os.O_EXCL, 0o600)
res("excl write", lambda: os.write(fd, b"gone"))
res("excl link", lambda: linkat(fd, b"", "sub/never", AT_EMPTY_PATH))
res("excl link proc", lambda: linkat(AT_FDCWD, b"/proc/self/fd/%d" % fd, "sub/never",
                                     AT_SYMLINK_FOLLOW))
os.close(fd)
fd = os.open("sub/gone", os.O_CREAT | os.O_RDWR, 0o600)
os.unlink("sub/gone")
res("deleted file link", lambda: linkat(fd, b"", "sub/back", AT_EMPTY_PATH))
res("deleted fchmod", lambda: os.fchmod(fd, 0o644))
res("deleted fstat", lambda: st(fd))
os.close(fd)
fd = os.open("plain", os.O_RDONLY)
res("plain link empty path", lambda: linkat(fd, b"", "sub/plain2", AT_EMPTY_PATH))
res("plain2", lambda: st("sub/plain2"))
os.close(fd)
fd = os.open("sub", os.O_TMPFILE | os.O_RDWR, 0o600)
res("link to another dir", lambda: linkat(fd, b"", "across", AT_EMPTY_PATH))
os.close(fd)
os.chmod("sub", 0o555)
res("tmpfile in a read-only dir", lambda: os.close(os.open(
    "sub", os.O_TMPFILE | os.O_RDWR, 0o600)) if os.geteuid() else "EACCES")
os.chmod("sub", 0o755)
res("final listing", lambda: sorted(os.listdir("sub")))
