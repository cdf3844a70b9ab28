"""Constants of umvu's own interface (the vuctl requests) and the kernel's mount flags,
shared by the commands (umvu.commands) and the core (umvu.core.vsys). The syscall
numbers are in umvu.core.syscalls."""

VUCTL_GETNAME, VUCTL_SETNAME, VUCTL_GETDEBUGTAGS, VUCTL_SETDEBUGTAGS = 1, 2, 3, 4
VUCTL_SETLOGLEVEL, VUCTL_PS, VUCTL_LSOF, VUCTL_MOUNTS, VUCTL_FSTYPES = 5, 6, 7, 8, 9
VUCTL_LASTERROR = 10  # the message of this process's last failed mount/insmod
VUCTL_ACCEPTS = 11    # (const char *fstype): 0 if a loaded module serves it, else ENODEV

MS_RDONLY, MS_BIND, MS_MOVE, MS_REC = 1, 4096, 8192, 16384
MNT_FORCE, MNT_DETACH = 1, 2
