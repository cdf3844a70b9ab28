"""Virtual fd behaviour: dup family, offsets, flags, close_range, poll/select/epoll,
fork, exec with close-on-exec, threads, fstat, getdents, sendfile/splice.
usage: vfd.py DIR   (prints one line per check)"""
import fcntl
import os
import select
import stat
import subprocess
import sys
import threading

d = sys.argv[1]
p = os.path.join(d, "data")
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o640)
print("write", os.write(fd, b"0123456789"))
fd2 = os.dup(fd)
os.lseek(fd2, 2, os.SEEK_SET)
print("shared offset", os.read(fd, 3))
os.dup2(fd, 20)
print("dup2", os.read(20, 2), os.get_inheritable(20))
fd3 = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 30)
print("dupfd_cloexec", fd3 >= 30, os.get_inheritable(fd3))
fd4 = os.dup(fd)
os.dup2(fd4, fd3, inheritable=False)
print("dup3 over virtual", os.lseek(fd3, 0, os.SEEK_CUR))
print("getfl", fcntl.fcntl(fd, fcntl.F_GETFL) & (os.O_ACCMODE | os.O_APPEND))
fcntl.fcntl(fd, fcntl.F_SETFL, os.O_APPEND)
os.write(fd, b"A")
print("append", os.pread(fd, 20, 0), os.lseek(fd2, 0, os.SEEK_CUR))
print("seek_end", os.lseek(fd, -3, os.SEEK_END))
print("readv", os.preadv(fd, [bytearray(2), bytearray(3)], 1))
print("writev", os.pwritev(fd, [b"xy", b"z"], 0), os.pread(fd, 5, 0))
st = os.fstat(fd)
print("fstat", stat.S_ISREG(st.st_mode), oct(st.st_mode & 0o777), st.st_size)
r, w, _ = select.select([fd], [fd], [], 0)
print("select", r == [fd], w == [fd])
pl = select.poll()
pl.register(fd, select.POLLIN | select.POLLOUT)
print("poll", pl.poll(0))
ep = select.epoll()
try:
    ep.register(fd, select.EPOLLIN)
    print("epoll_ctl", "ok")
except OSError as e:
    print("epoll_ctl", e.errno)
os.closerange(30, 40)
try:
    os.fstat(fd3)
    print("closerange", "still open")
except OSError as e:
    print("closerange", e.errno)
pid = os.fork()
if pid == 0:
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(1, b"child " + os.read(fd, 4) + b"\n")
    os._exit(0)
os.waitpid(pid, 0)
print("after fork offset", os.lseek(fd2, 0, os.SEEK_CUR))
os.set_inheritable(fd, True)
fd5 = os.dup(fd)
os.set_inheritable(fd5, False)
code = ("import os\nfor f in (%d, %d):\n    try:\n        os.fstat(f); print('exec fd', f, 'open')\n"
        "    except OSError as e:\n        print('exec fd', f, e.errno)\n"
        "os.lseek(%d, 0, 0); print('exec read', os.read(%d, 3))\n") % (fd, fd5, fd, fd)
sys.stdout.flush()
subprocess.run([sys.executable, "-c", code], pass_fds=(fd,), check=True)
box = []
t = threading.Thread(target=lambda: box.append(os.open(p, os.O_RDONLY)))
t.start()
t.join()
print("thread fd", os.pread(box[0], 4, 0))
os.mkdir(os.path.join(d, "dir"))
for n in ("b", "a", "c"):
    open(os.path.join(d, "dir", n), "w").close()
print("listdir", sorted(os.listdir(os.path.join(d, "dir"))))
with os.scandir(os.path.join(d, "dir")) as it:
    print("scandir", sorted((e.name, e.is_file()) for e in it))
rp, wp = os.pipe()
print("sendfile", os.sendfile(wp, fd, 0, 4), os.read(rp, 4))
os.write(wp, b"spl")
out = os.open(os.path.join(d, "spliced"), os.O_RDWR | os.O_CREAT, 0o600)
print("splice", os.splice(rp, out, 3), os.pread(out, 3, 0))
print("copy_file_range", os.copy_file_range(fd, out, 4, 0, 0), os.pread(out, 4, 0))
os.ftruncate(fd, 2)
print("ftruncate", os.fstat(fd).st_size, os.pread(fd, 10, 0))
os.close(fd)
try:
    os.read(fd, 1)
except OSError as e:
    print("closed", e.errno)
print("still via dup", os.pread(fd2, 2, 0))
