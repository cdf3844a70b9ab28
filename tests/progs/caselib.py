"""What the probe programs (canon.py, pathcases.py, dot_names.py, unix_sockets.py,
long_paths.py) print for one attempt."""
import errno
import os
import stat


def show(st, with_ino=True):
    kind = stat.S_IFMT(st.st_mode)
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    return "ok %o %d %d" % (kind, size, st.st_ino) if with_ino else "ok %o %d" % (kind, size)


def attempt(fn, with_ino=True):
    """fn's answer: an errno name, a stat summary, or the repr of its value."""
    try:
        r = fn()
    except OSError as e:
        return errno.errorcode[e.errno]
    if isinstance(r, os.stat_result):
        return show(r, with_ino)
    return "ok %r" % (r,)


def say(name, fn, *args):
    """Print name and fn(*args)'s answer: its value (0 for None) or its errno name."""
    try:
        r = fn(*args)
        print(name, 0 if r is None else r)
    except OSError as e:
        print(name, errno.errorcode[e.errno])


def read(path, flags=0, dir_fd=None):
    fd = os.open(path, os.O_RDONLY | flags, dir_fd=dir_fd)
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)
