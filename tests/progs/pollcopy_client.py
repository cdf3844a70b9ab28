"""A client of tests/progs/fuse_pollcopy.c's mount (argv[1]): copy_file_range between
its files (offsets given and not, clipped at the end, past it, the kernel's EBADF and
EINVAL cases) and poll, select and epoll of its file "ready", woken by a write of
"trigger" from another process. Prints what it saw; run natively on kernel FUSE and
inside umvu, the outputs are compared (tests/test_fuse.py)."""
import ctypes
import errno
import hashlib
import os
import select
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.copy_file_range.argtypes = (ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.c_int,
                                 ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t,
                                 ctypes.c_uint)
libc.copy_file_range.restype = ctypes.c_ssize_t


def cfr(fd_in, off_in, fd_out, off_out, length, flags=0):
    """copy_file_range(2): (result or errno name, offsets after, file positions)."""
    p_in = None if off_in is None else ctypes.pointer(ctypes.c_int64(off_in))
    p_out = None if off_out is None else ctypes.pointer(ctypes.c_int64(off_out))
    n = libc.copy_file_range(fd_in, p_in, fd_out, p_out, length, flags)
    got = errno.errorcode[ctypes.get_errno()] if n < 0 else n
    return (got, p_in and p_in.contents.value, p_out and p_out.contents.value,
            os.lseek(fd_in, 0, os.SEEK_CUR), os.lseek(fd_out, 0, os.SEEK_CUR))


def main(mnt):
    a = os.open(mnt + "/a", os.O_RDONLY)
    b = os.open(mnt + "/b", os.O_RDWR)
    print("copy", cfr(a, 100, b, 0, 10000))
    print("clipped", cfr(a, 60000, b, 10000, 1 << 20))
    print("past the end", cfr(a, 70000, b, 0, 10))
    print("positions", cfr(a, None, b, None, 300))
    print("positions again", cfr(a, None, b, None, 300))
    print("flags", cfr(a, 0, b, 0, 10, 1))
    print("to a read-only fd", cfr(b, 0, a, 0, 10))
    print("overlapping", cfr(b, 0, b, 100, 1000))
    print("within one file", cfr(b, 0, b, 20000, 1000))
    print("nothing", cfr(a, 0, b, 0, 0))
    ro = os.open(mnt + "/b", os.O_WRONLY | os.O_APPEND)
    print("to O_APPEND", cfr(a, 0, ro, 0, 10))
    os.close(ro)
    st = os.fstat(b)
    print("b", st.st_size, hashlib.sha256(os.pread(b, 1 << 20, 0)).hexdigest())
    native = os.memfd_create("out")
    print("across file systems", cfr(a, 0, native, 0, 10)[0])
    os.close(native)

    r = os.open(mnt + "/ready", os.O_RDONLY)
    p = select.poll()
    p.register(r, select.POLLIN | select.POLLOUT)
    print("poll before", [ev for _fd, ev in p.poll(0)])
    print("select before", [bool(x) for x in select.select([r], [r], [], 0)])
    ep = select.epoll()
    ep.register(r, select.EPOLLIN)
    print("epoll before", ep.poll(0))
    pid = os.fork()
    if pid == 0:
        fd = os.open(mnt + "/trigger", os.O_WRONLY)
        os.write(fd, b"go")
        os._exit(0)
    wait = select.poll()
    wait.register(r, select.POLLIN)
    print("poll woken", [ev for _fd, ev in wait.poll(60000)])
    os.waitpid(pid, 0)
    print("epoll after", [ev for _fd, ev in ep.poll(60)])
    print("select after", [bool(x) for x in select.select([r], [], [], 60)[0]])
    print("read", os.read(r, 100))
    print("poll after the read", [ev for _fd, ev in p.poll(0)])
    print("read again", os.read(r, 100))
    d = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        select.epoll().register(d, select.EPOLLIN)
        print("epoll of the directory", "ok")
    except OSError as e:
        print("epoll of the directory", errno.errorcode[e.errno])


if __name__ == "__main__":
    main(sys.argv[1])
