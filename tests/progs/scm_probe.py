"""Fds passed over unix sockets (SCM_RIGHTS) from files in argv[1]: a file, a directory
and a file open for writing go from a parent to a child (a socketpair) and to an
unrelated process (a socket bound by path, argv[2]), which use them as their own: read
at the shared offset, fstat, list, write. One line per step (tests/test_scm_rights.py
compares the output natively and in a mount)."""
import array
import os
import socket
import stat
import subprocess
import sys

d, sock_path = sys.argv[1], sys.argv[2]
os.chdir(d)
with open("data", "w") as f:
    f.write("0123456789" * 10)
os.mkdir("dir")
open("dir/a", "w").close()
open("dir/b", "w").close()


def send(s, fds, data=b"x"):
    s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])


def recv(s, n):
    msg, anc, flags, addr = s.recvmsg(16, socket.CMSG_SPACE(4 * n))
    fds = array.array("i")
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % 4])
    return msg, list(fds)


def show(who, fds):
    rfd, dfd, wfd = fds
    st = os.fstat(rfd)
    print(who, "file", stat.filemode(st.st_mode), st.st_size, os.read(rfd, 5))
    print(who, "dir", sorted(os.listdir(dfd)))
    print(who, "write", os.write(wfd, b"<%s>" % who.encode()))
    print(who, "flags", os.get_blocking(rfd), bool(os.get_inheritable(rfd)))


rfd = os.open("data", os.O_RDONLY)
os.read(rfd, 3)  # (the offset is the open file's: the receivers go on from 3)
dfd = os.open("dir", os.O_RDONLY | os.O_DIRECTORY)
wfd = os.open("data", os.O_WRONLY | os.O_APPEND)
a, b = socket.socketpair()
pid = os.fork()
if pid == 0:
    a.close()
    msg, fds = recv(b, 3)
    print("child got", msg, len(fds))
    show("child", fds)
    sys.stdout.flush()
    os._exit(0)
b.close()
send(a, [rfd, dfd, wfd])
os.waitpid(pid, 0)
print("parent offset after child", os.lseek(rfd, 0, os.SEEK_CUR))

# an unrelated process (its own program) gets them through a socket bound by path,
# after the sender closed its own fds (as fusermount hands its /dev/fuse fd over)
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sock_path)
srv.listen(1)
recv_prog = (
    "import array, os, socket, stat, sys\n"
    "c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.connect(sys.argv[1])\n"
    "msg, anc, fl, ad = c.recvmsg(16, socket.CMSG_SPACE(12))\n"
    "fds = array.array('i'); [fds.frombytes(x[2]) for x in anc]\n"
    "print('other got', msg, len(fds))\n"
    "st = os.fstat(fds[0]); print('other file', stat.filemode(st.st_mode), os.read(fds[0], 5))\n"
    "print('other dir', sorted(os.listdir(fds[1])))\n"
    "print('other write', os.write(fds[2], b'<other>'))\n")
child = subprocess.Popen([sys.executable, "-c", recv_prog, sock_path])
conn, _ = srv.accept()
fds = [os.open("data", os.O_RDONLY), os.open("dir", os.O_RDONLY | os.O_DIRECTORY),
       os.open("data", os.O_WRONLY | os.O_APPEND)]
send(conn, fds)
for fd in fds:
    os.close(fd)
child.wait()
sys.stdout.flush()
print("data now", open("data", "rb").read()[-20:])
x, y = socket.socketpair()
print("no fds sent", x.sendmsg([b"plain"]), recv(y, 1))
# a real fd (a pipe) and a virtual one in one message, the virtual one sent twice
pr, pw = os.pipe()
os.write(pw, b"pipe!")
vfd = os.open("data", os.O_RDONLY)
send(x, [pr, vfd, vfd])
msg, got = recv(y, 3)
print("mixed", len(got), os.read(got[0], 5), os.read(got[1], 4), os.read(got[2], 4))
print("mixed stat", stat.filemode(os.fstat(got[2]).st_mode), os.fstat(got[2]).st_size)
# sent by a thread other than the main one
import threading  # noqa: E402
t = threading.Thread(target=send, args=(x, [vfd]))
t.start()
t.join()
msg, got = recv(y, 1)
print("from a thread", len(got), stat.filemode(os.fstat(got[0]).st_mode), os.read(got[0], 3))
