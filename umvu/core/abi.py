"""The ABI constants in one place: the kernel's (open, *at, fcntl, utimensat, mount
flags) and umvu's own interface (the vuctl requests, shared by umvu.commands and
umvu.core.vsys); the syscall numbers are in umvu.core.syscalls. And the signed views
of a register's value."""

VUCTL_GETNAME, VUCTL_SETNAME, VUCTL_GETDEBUGTAGS, VUCTL_SETDEBUGTAGS = 1, 2, 3, 4
VUCTL_SETLOGLEVEL, VUCTL_PS, VUCTL_LSOF, VUCTL_MOUNTS, VUCTL_FSTYPES = 5, 6, 7, 8, 9
VUCTL_LASTERROR = 10  # the message of this process's last failed mount/insmod
VUCTL_ACCEPTS = 11    # (const char *fstype): 0 if a loaded module serves it, else ENODEV

MS_RDONLY, MS_BIND, MS_MOVE, MS_REC = 1, 4096, 8192, 16384
MNT_FORCE, MNT_DETACH = 1, 2

O_ACCMODE = 3
O_CREAT, O_EXCL, O_TRUNC, O_APPEND = 0o100, 0o200, 0o1000, 0o2000
O_NONBLOCK, O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC = 0o4000, 0o200000, 0o400000, 0o2000000
O_PATH, O_TMPFILE, O_DIRECT = 0o10000000, 0o20200000, 0o40000
AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, AT_EMPTY_PATH = 0x100, 0x200, 0x400, 0x1000
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW, F_DUPFD_CLOEXEC = 5, 6, 7, 1030
SETFL_MASK = O_APPEND | O_NONBLOCK | 0o20000 | O_DIRECT | 0o1000000  # ASYNC, NOATIME


def s32(v: int) -> int:
    return ((v & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000


def s64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


# umvu's debug tags (-d TAGS, vudebug): s = one strace-like line per intercepted syscall
DEBUG_TAGS = frozenset("s")
