"""O_DIRECT reads and writes in argv[1]: aligned and misaligned offsets, lengths and
buffers, and O_DIRECT set by F_SETFL; one line per step, what it answered
(tests/test_odirect.py compares native ext4 with vufuseext2, tmpfs with vufusememfs)."""
import errno
import fcntl
import mmap
import os
import sys

path = os.path.join(sys.argv[1], "od")


def res(what, fn):
    try:
        out = fn()
    except OSError as e:
        out = errno.errorcode[e.errno]
    print(what, out)


res("open", lambda: os.close(os.open(path, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o644)))
fd = os.open(path, os.O_RDWR | os.O_DIRECT)
buf = memoryview(mmap.mmap(-1, 65536))  # (page aligned)
res("aligned write 4096", lambda: os.pwrite(fd, buf[:4096], 0))
res("aligned write 512", lambda: os.pwrite(fd, buf[:512], 4096))
res("length 100", lambda: os.pwrite(fd, buf[:100], 0))
res("offset 100", lambda: os.pwrite(fd, buf[:4096], 100))
res("buffer+1", lambda: os.pwrite(fd, buf[1:4097], 0))
res("buffer+512", lambda: os.pwrite(fd, buf[512:1024], 0))
res("writev misaligned", lambda: os.pwritev(fd, [buf[:512], buf[1024:1124]], 0))
res("read aligned", lambda: os.preadv(fd, [buf[:4096]], 0))
res("read length 100", lambda: os.preadv(fd, [buf[:100]], 0))
res("read offset 7", lambda: os.preadv(fd, [buf[:4096]], 7))
res("read buffer+3", lambda: os.preadv(fd, [buf[3:4099]], 0))
res("read past the end", lambda: os.preadv(fd, [buf[:4096]], 1 << 20))
res("read by position", lambda: os.lseek(fd, 0, os.SEEK_SET) + os.readv(fd, [buf[:1024]]))
res("read from position 1024+7", lambda: os.lseek(fd, 1031, os.SEEK_SET) and os.readv(
    fd, [buf[:1024]]))
os.close(fd)
fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
res("read-only open, misaligned read", lambda: len(os.pread(fd, 100, 3)))
os.close(fd)
fd = os.open(path, os.O_RDWR)
res("buffered write at 3", lambda: os.pwrite(fd, b"abc", 3))
res("F_SETFL O_DIRECT", lambda: fcntl.fcntl(fd, fcntl.F_SETFL, os.O_DIRECT))
res("F_GETFL has it", lambda: bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT))
res("then a write at 3", lambda: os.pwrite(fd, b"abc", 3))
res("F_SETFL 0", lambda: fcntl.fcntl(fd, fcntl.F_SETFL, 0))
res("then a write at 3 again", lambda: os.pwrite(fd, b"abc", 3))
