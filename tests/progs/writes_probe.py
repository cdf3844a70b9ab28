"""Calls that change the file system, on the host, with the kernel's answers printed:
run in an empty directory, natively and under umvu with a mount elsewhere (where umvu
makes these calls itself, umvu/core/hostcalls.py): the outputs must be the same."""
import ctypes
import errno
import os
import stat
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def sys_call(nr, *args):
    ret = libc.syscall(nr, *args)
    if ret < 0:
        raise OSError(ctypes.get_errno(), "")
    return ret


def res(name, fn):
    try:
        out = fn()
        print(name, "ok" if out is None else out)
    except OSError as e:
        print(name, errno.errorcode.get(e.errno, e.errno))


def opened(path, flags, mode=0o666):
    fd = os.open(path, flags, mode)
    st = os.fstat(fd)
    fl = __import__("fcntl").fcntl(fd, 3)  # F_GETFL
    os.close(fd)
    return "%s fl=%o" % (stat.filemode(st.st_mode), fl & ~0o100000)


def show(path):
    st = os.lstat(path)
    return "%s %d" % (stat.filemode(st.st_mode), st.st_size)


os.umask(0o027)
os.mkdir("d")
os.mkdir("full")
open("full/x", "w").close()
with open("f", "w") as fh:
    fh.write("data\n")
os.symlink("f", "lf")
os.symlink("d", "ld")
os.symlink("nothere", "dangling")
os.mkfifo("fifo")
W, C, T, X = os.O_WRONLY, os.O_CREAT, os.O_TRUNC, os.O_EXCL

res("open new", lambda: opened("n1", W | C))
res("open excl", lambda: opened("f", W | C | X))
res("open nx/ creat", lambda: opened("nx/", W | C))
res("open nx/", lambda: opened("nx/", W))
res("open f/", lambda: opened("f/", W))
res("open dir w", lambda: opened("d", W))
res("open d/ rdwr", lambda: opened("d/", os.O_RDWR))
res("open link trunc", lambda: opened("lf", W | T))
res("after trunc", lambda: show("f"))
res("open link nofollow", lambda: opened("lf", W | os.O_NOFOLLOW))
res("open dangling creat", lambda: opened("dangling", W | C))
res("dangling target", lambda: show("nothere"))
res("open dangling excl", lambda: opened("dangling", W | C | X))
res("open append", lambda: opened("f", W | os.O_APPEND))
res("open nonblock", lambda: opened("f", W | os.O_NONBLOCK))
res("open append nonblock", lambda: opened("f", W | os.O_APPEND | os.O_NONBLOCK))
res("open sync", lambda: opened("f", W | os.O_SYNC))
res("open dsync", lambda: opened("f", W | os.O_DSYNC))
res("open noatime", lambda: opened("f", W | os.O_NOATIME))
res("open nofollow file", lambda: opened("f", os.O_RDWR | os.O_NOFOLLOW))
res("open directory file", lambda: opened("f", W | os.O_DIRECTORY))
res("open creat directory", lambda: opened("n0", W | C | os.O_DIRECTORY))
res("open unknown bits", lambda: opened("f", W | 0o10000000000 | 0o2000000000))
res("open accmode 3", lambda: opened("f", 3))
res("open mode bits", lambda: opened("f", W | C, 0o177777))
res("open dir rdwr creat", lambda: opened("d", os.O_RDWR | C))
res("open tmpfile", lambda: opened("d", os.O_TMPFILE | W))
res("open fifo rdwr", lambda: opened("fifo", os.O_RDWR))
res("open fifo nb", lambda: opened("fifo", W | os.O_NONBLOCK))
res("open devnull", lambda: opened("/dev/null", W | C | T))
r, w = os.pipe()
res("reopen pipe", lambda: opened("/proc/self/fd/%d" % w, W))
res("open missing dir", lambda: opened("no/such", W | C))
res("open through file", lambda: opened("f/x", W | C))
res("open long name", lambda: opened("x" * 300, W | C))
res("new mode", lambda: show("n1"))

res("mkdir", lambda: os.mkdir("m1/", 0o777))
res("mkdir mode", lambda: show("m1"))
res("mkdir exists/", lambda: os.mkdir("d/"))
res("mkdir file/", lambda: os.mkdir("f/"))
res("mkdir link", lambda: os.mkdir("ld"))
res("mkdir dot", lambda: os.mkdir("d/."))
res("rmdir dot", lambda: os.rmdir("d/."))
res("rmdir dotdot", lambda: os.rmdir("d/.."))
res("rmdir file", lambda: os.rmdir("f"))
res("rmdir full", lambda: os.rmdir("full"))
res("rmdir ld/", lambda: os.rmdir("ld/"))
res("rmdir ld", lambda: os.rmdir("ld"))
res("unlink dir", lambda: os.unlink("d"))
res("unlink f/", lambda: os.unlink("f/"))
res("unlink missing", lambda: os.unlink("nope"))
res("mknod fifo", lambda: os.mknod("fifo2", stat.S_IFIFO | 0o666))
res("fifo2 mode", lambda: show("fifo2"))
res("mknod exists", lambda: os.mknod("f", stat.S_IFIFO | 0o666))
res("symlink", lambda: os.symlink("target", "s1"))
res("symlink exists", lambda: os.symlink("target", "f"))
res("symlink empty", lambda: os.symlink("", "s2"))
res("symlink into file", lambda: os.symlink("t", "f/s"))
res("readlink", lambda: os.readlink("s1"))

res("rename f->d/", lambda: os.rename("n1", "d/"))
res("rename d->full", lambda: os.rename("m1", "full"))
res("rename self", lambda: os.rename("n1", "n1"))
res("rename f/ ", lambda: os.rename("n1/", "n2"))
res("rename m1/ m2/", lambda: os.rename("m1/", "m2/"))
res("rename dot", lambda: os.rename("m2/.", "m3"))
res("rename into self", lambda: os.rename("m2", "m2/sub"))
res("renameat2 noreplace", lambda: sys_call(316, -100, b"n1", -100, b"f", 1))
res("renameat2 exchange", lambda: sys_call(316, -100, b"n1", -100, b"s1", 2))
res("after exchange", lambda: (show("n1"), show("s1")))
res("link", lambda: os.link("f", "hard"))
res("nlink", lambda: os.stat("f").st_nlink)
res("link dir", lambda: os.link("d", "hd"))
res("link exists", lambda: os.link("f", "s1"))
res("link follow", lambda: os.link("lf", "hard2", follow_symlinks=True))
res("hard2", lambda: show("hard2"))
res("link nofollow", lambda: os.link("lf", "hard3", follow_symlinks=False))
res("hard3", lambda: show("hard3"))

res("chmod", lambda: os.chmod("f", 0o4751))
res("chmod link", lambda: os.chmod("lf", 0o640))
res("f mode", lambda: show("f"))
res("chmod missing", lambda: os.chmod("nope", 0o600))
res("fchmodat2 nofollow", lambda: sys_call(452, -100, b"lf", 0o600, 0x100))
res("fchmodat2 bad flag", lambda: sys_call(452, -100, b"f", 0o600, 0x1))
res("chown same", lambda: os.chown("f", -1, -1))
res("lchown", lambda: os.lchown("lf", os.getuid(), -1))
res("fchownat bad", lambda: sys_call(260, -100, b"f", -1, -1, 0x2))
res("utime", lambda: os.utime("f", (100, 200)))
res("f times", lambda: (os.stat("f").st_atime, os.stat("f").st_mtime))
res("utime ns", lambda: os.utime("lf", ns=(5, 123456789)))
res("f ns", lambda: os.stat("f").st_mtime_ns)
res("utime link nofollow", lambda: os.utime("lf", (7, 8), follow_symlinks=False))
res("lf mtime", lambda: os.lstat("lf").st_mtime)
res("utime now", lambda: os.utime("f") or os.stat("f").st_mtime > 1000)
res("utimes bad usec", lambda: libc.utimes(b"f", (ctypes.c_long * 4)(1, 2000000, 1, 0))
    and (_ for _ in ()).throw(OSError(ctypes.get_errno(), "")))
res("utime missing", lambda: os.utime("nope", (1, 1)))
res("truncate", lambda: os.truncate("lf", 2))
res("f size", lambda: show("f"))
res("truncate dir", lambda: os.truncate("d", 0))
res("truncate fifo", lambda: os.truncate("fifo", 0))
res("truncate neg", lambda: os.truncate("f", -1))
for name, fn in (("setxattr", lambda: os.setxattr("f", "user.k", b"v")),
                 ("getxattr", lambda: os.getxattr("f", "user.k")),
                 ("setxattr link", lambda: os.setxattr("lf", "user.j", b"w")),
                 ("getxattr via link", lambda: os.getxattr("f", "user.j")),
                 ("setxattr create", lambda: os.setxattr("f", "user.k", b"v",
                                                         os.XATTR_CREATE)),
                 ("removexattr", lambda: os.removexattr("f", "user.k")),
                 ("removexattr gone", lambda: os.removexattr("f", "user.k")),
                 ("setxattr missing", lambda: os.setxattr("nope", "user.k", b"v"))):
    res(name, fn)
res("unlink link", lambda: os.unlink("lf"))
res("f kept", lambda: show("f"))
res("listing", lambda: " ".join(sorted(os.listdir("."))))
sys.stdout.flush()
