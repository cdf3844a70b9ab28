"""Read-only opens of a file system's regular files, and directory fds: offsets shared by
dup and fork, mmap, data written through another fd seen at once, truncation, unlink,
exec inheritance, errors of the calls a read-only fd or a directory fd refuses.
usage: contentfd.py DIR   (prints one line per check)"""
import errno
import mmap
import os
import stat
import subprocess
import sys

d = sys.argv[1]
p = os.path.join(d, "data")


def err(f, *args, **kw):
    try:
        f(*args, **kw)
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]


with open(p, "wb") as f:
    f.write(b"".join(b"line %04d\n" % i for i in range(2000)))
a = os.open(p, os.O_RDONLY)
print("read", os.read(a, 10), os.lseek(a, 0, os.SEEK_CUR))
print("pread", os.pread(a, 9, 100), os.lseek(a, 0, os.SEEK_CUR))
print("readv", os.readv(a, [bytearray(3), bytearray(4)]), os.lseek(a, 0, os.SEEK_CUR))
print("seek_end", os.lseek(a, -5, os.SEEK_END), os.read(a, 100))
print("seek_data", os.lseek(a, 7, os.SEEK_DATA), os.lseek(a, 7, os.SEEK_HOLE))
b = os.dup(a)
os.lseek(a, 30, os.SEEK_SET)
print("dup shares offset", os.read(b, 9), os.lseek(a, 0, os.SEEK_CUR))
pid = os.fork()
if pid == 0:
    os.read(a, 20)
    os._exit(0)
os.waitpid(pid, 0)
print("fork shares offset", os.lseek(a, 0, os.SEEK_CUR))
st = os.fstat(a)
print("fstat", stat.S_ISREG(st.st_mode), st.st_size, st.st_nlink,
      st.st_ino == os.stat(p).st_ino, st.st_mtime_ns == os.stat(p).st_mtime_ns)
os.chmod(p, 0o600)
os.utime(p, ns=(1_000_000_123, 2_000_000_456))
st = os.fstat(a)
print("fstat after chmod, utime", oct(st.st_mode), st.st_mtime_ns, os.fstat(b).st_mtime_ns)
os.rename(p, p + ".new")
os.rename(p + ".new", p)
print("fstat after rename", os.fstat(a).st_ino == os.stat(p).st_ino, os.fstat(a).st_nlink)
other = os.path.join(d, "other")
with open(other, "wb") as f:
    f.write(b"7 bytes")
o = os.open(other, os.O_RDONLY)
x = os.open(p, os.O_RDONLY)
os.fstat(x)
os.dup2(o, x)
print("dup2 over", os.fstat(x).st_size, os.fstat(x).st_ino == os.stat(other).st_ino,
      os.read(x, 3))
os.close(x)
os.close(o)
print("getfl", os.get_blocking(a), os.get_inheritable(a))
print("link", os.readlink("/proc/self/fd/%d" % a) == p)
with mmap.mmap(a, 0, mmap.MAP_PRIVATE, mmap.PROT_READ) as m:
    print("mmap private", len(m), m[10:19])
shared = mmap.mmap(a, 0, mmap.MAP_SHARED, mmap.PROT_READ)
print("mmap shared", shared[20:29])
print("write", err(os.write, a, b"x"), "ftruncate", err(os.ftruncate, a, 0),
      "fchdir", err(os.fchdir, a), "listdir", err(os.listdir, a))
print("mmap write", err(mmap.mmap, a, 0, mmap.MAP_SHARED, mmap.PROT_WRITE))

# another fd writes: the read-only one sees it
w = os.open(p, os.O_WRONLY)
os.pwrite(w, b"LINE", 0)
print("sees write", os.pread(a, 10, 0), shared[0:4])
os.lseek(w, 0, os.SEEK_END)
os.write(w, b"tail\n")
print("sees append", os.fstat(a).st_size, os.pread(a, 10, os.fstat(a).st_size - 5))
os.close(w)
os.truncate(p, 25)
print("sees truncate", os.fstat(a).st_size, os.pread(a, 100, 0))
shared.close()

# data moves in the kernel from a read-only fd
r, wp = os.pipe()
print("sendfile", os.sendfile(wp, a, 0, 12), os.read(r, 100))
print("splice", os.splice(a, wp, 5, offset_src=3), os.read(r, 100))
out = os.open(os.path.join(d, "copy"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
try:
    n = os.copy_file_range(a, out, 25, 0)
except OSError as e:
    n = errno.errorcode[e.errno]
os.close(out)
print("copy_file_range", n, open(os.path.join(d, "copy"), "rb").read())

# exec keeps it (not close-on-exec), and the new program reads it
os.set_inheritable(a, True)
os.lseek(a, 0, os.SEEK_SET)
child = subprocess.run([sys.executable, "-c", "import os, sys; fd = int(sys.argv[1]); "
                        "print(os.read(fd, 8), os.fstat(fd).st_size)", str(a)],
                       pass_fds=[a], capture_output=True)
print("exec child", child.stdout.strip(), child.returncode)
print("after child", os.lseek(a, 0, os.SEEK_CUR))
cat = subprocess.run(["cat", "/dev/fd/%d" % a], pass_fds=[a], capture_output=True)
print("cat /dev/fd", cat.stdout, cat.returncode)

# unlinked while open: the data stays
os.unlink(p)
print("unlinked", os.pread(a, 4, 0), os.fstat(a).st_size)
os.close(a)
os.close(b)

# a directory fd
sub = os.path.join(d, "sub")
os.mkdir(sub)
for name in ("x", "y", "z"):
    open(os.path.join(sub, name), "w").close()
dfd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)
print("dir read", err(os.read, dfd, 10), "write", err(os.write, dfd, b"x"),
      "mmap", err(mmap.mmap, dfd, 10, mmap.MAP_PRIVATE, mmap.PROT_READ))
print("dir list", sorted(os.listdir(dfd)), sorted(os.listdir(dfd)))
print("dir fstat", stat.S_ISDIR(os.fstat(dfd).st_mode), os.lseek(dfd, 0, os.SEEK_SET))
print("dir openat", os.stat("x", dir_fd=dfd).st_size, err(os.open, "none", os.O_RDONLY,
                                                         0, dir_fd=dfd))
cwd = os.getcwd()
os.fchdir(dfd)
print("dir fchdir", os.getcwd() == sub, sorted(os.listdir(".")))
os.chdir(cwd)
os.close(dfd)
print("done")
