"""Calls whose arguments the kernel refuses before doing anything (issue: the kernel's
file semantics, extras): statx with unknown flags, both sync types or a reserved mask
bit; readv/writev whose lengths sum past SSIZE_MAX, or are huge but sum to less. Run in
an empty directory; prints one line per call."""
import ctypes
import errno
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def result(r):
    return "ok %d" % r if r >= 0 else errno.errorcode[ctypes.get_errno()]


with open("f", "w") as f:
    f.write("abc")
buf = ctypes.create_string_buffer(256)
fd = os.open("f", os.O_RDWR)
for flags, mask in ((0, 0xfff), (0x100, 0xfff), (0x4000, 0xfff), (0x6000, 0xfff),
                    (0x2, 0xfff), (0, 0x80000000)):
    print("statx", hex(flags), hex(mask), result(libc.syscall(332, -100, b"f", flags, mask,
                                                              buf)))
    print("fstatx", hex(flags), hex(mask),
          result(libc.syscall(332, fd, b"", flags | 0x1000, mask, buf)))


class Iov(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


data = ctypes.create_string_buffer(b"xyz", 3)
for lens in (((1 << 63) - 1, 1), (1 << 63, 0), (3, (1 << 62))):
    iov = (Iov * 2)(*[Iov(ctypes.addressof(data), n) for n in lens])
    print("preadv", result(libc.syscall(295, fd, iov, 2, ctypes.c_long(0), 0)))
os.close(fd)
print("size", os.stat("f").st_size)
