"""truncate(2) and ftruncate(2) of each kind of file: a regular file, a directory, a
fifo, a symlink to the file, a negative length (EINVAL, EISDIR as the kernel's
vfs_truncate). Run in an empty directory."""
import errno
import os

os.mkfifo("p")
os.mkdir("d")
with open("f", "w") as f:
    f.write("data")
os.symlink("f", "l")
for name, length in (("f", 2), ("l", 1), ("d", 0), ("p", 0), ("f", -1), ("none", 0)):
    try:
        os.truncate(name, length)
        print("truncate", name, length, "ok")
    except OSError as e:
        print("truncate", name, length, errno.errorcode[e.errno])
fd = os.open("p", os.O_RDWR)
try:
    os.ftruncate(fd, 0)
    print("ftruncate p ok")
except OSError as e:
    print("ftruncate p", errno.errorcode[e.errno])
os.close(fd)
print("size", os.stat("f").st_size)
