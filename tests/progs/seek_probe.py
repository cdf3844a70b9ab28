"""SEEK_DATA and SEEK_HOLE on a sparse file made in argv[1] (data at 1 MiB and 3 MiB of a
5 MiB file): the answers from offsets around them, and st_blocks
(tests/test_seek_data.py compares them with the kernel's)."""
import errno
import os
import sys

path = os.path.join(sys.argv[1], "sp")
fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.pwrite(fd, b"a" * 4096, 1 << 20)
os.pwrite(fd, b"b" * 10, 3 << 20)
os.ftruncate(fd, 5 << 20)
for off in (0, 4096, 1 << 20, (1 << 20) + 100, (1 << 20) + 4096, 3 << 20,
            (3 << 20) + 4096, 5 << 20, 6 << 20):
    out = []
    for whence, name in ((os.SEEK_DATA, "DATA"), (os.SEEK_HOLE, "HOLE")):
        try:
            out.append("%s=%d" % (name, os.lseek(fd, off, whence)))
        except OSError as e:
            out.append("%s=%s" % (name, errno.errorcode[e.errno]))
    print(off, *out)
try:
    os.lseek(fd, -1, os.SEEK_DATA)
except OSError as e:
    print("negative", errno.errorcode[e.errno])
print("position", os.lseek(fd, 0, os.SEEK_CUR))
