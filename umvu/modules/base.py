"""The module API.

A *module* is a class (a subclass of :class:`Module`) in ``umvu/modules/NAME.py``, or in
any file or dotted module name given to ``vu_insmod``. Loading it creates one instance.
A module serves one kind of virtualization:

- file systems: ``filesystems`` names the mount types it serves; ``mount()`` returns a
  *service* object for one mount (``vumount -t TYPE SOURCE TARGET``); a module may also
  claim paths itself when loaded (``self.api.add_path``), as ``unreal`` does.
- services implement syscall-shaped methods. Paths are ``bytes``, absolute, relative to
  the mount's root (``b"/"`` is the mount point itself), already canonical: the core has
  resolved ``..`` and every symlink (it calls ``lstat``/``readlink`` itself).
  Methods return a value or raise ``OSError(errno)``; a method that is not defined
  answers ENOSYS; any other exception is logged and answers EIO.

Service methods (all optional):
    lstat(path) -> stat-like (st_mode, st_ino, st_nlink, st_uid, st_gid, st_rdev,
        st_size, st_blksize, st_blocks, st_atime_ns, st_mtime_ns, st_ctime_ns, st_dev)
    access(path, mode)                 readlink(path) -> bytes
    open(path, flags, mode) -> handle  close(handle)
    pread(handle, size, offset) -> bytes      pwrite(handle, data, offset) -> int
    read(handle, size) / write(handle, data)  for streams (no offsets)
    fstat(handle)                      getdents(handle, offset) -> [(name, ino, d_type, next_offset)]
    ftruncate(handle, length)          fsync(handle)     truncate(path, length)
    mkdir(path, mode) rmdir(path) unlink(path) rename(old, new, flags) link(old, new)
    symlink(target, path) mknod(path, mode, rdev) chmod(path, mode) chown(path, uid, gid)
    utimens(path, atime_ns, mtime_ns)  (None: leave unchanged)
    statfs(path) -> os.statvfs_result-like (+ optional f_type)
    getxattr(path, name) -> bytes  setxattr(path, name, value, flags)
    listxattr(path) -> [bytes]     removexattr(path, name)
    ioctl(handle, request, guest_arg)   poll(handle) -> POLLIN|POLLOUT mask

Any method may be ``async def``: one that awaits ``sleep``, ``wait_readable``,
``wait_writable`` or an ``Event`` (or trio, once ``need_trio()`` was called) waits while
umvu serves every other guest; a signal for the waiting guest cancels it as the kernel
interrupts a blocking call (umvu.core.waiting).
"""
from __future__ import annotations

import errno

# calls that wait: a service method may be ``async def`` and await these (or, after
# need_trio(), anything trio offers); see umvu.core.waiting
from umvu.core.waiting import Event, need_trio, sleep, wait_readable, wait_writable  # noqa: F401


class Module:
    """Base of every module. ``api`` is the hypervisor's :class:`ModuleAPI`."""
    name = ""
    description = ""
    filesystems: tuple = ()

    def __init__(self, api) -> None:
        self.api = api

    def accepts(self, fstype: str) -> bool:
        """Whether ``vumount -t fstype`` is this module's."""
        return fstype in self.filesystems

    def mount(self, source: bytes, target: bytes, fstype: str, flags: int,
              options: str):
        """Return the service for a new mount of ``fstype`` at ``target``."""
        raise OSError(errno.ENODEV, "no such file system type")

    def umount(self, service, flags: int) -> None:
        """A mount of this module goes away (flush, close images...)."""
        close = getattr(service, "destroy", None)
        if close is not None:
            close()

    def cleanup(self) -> None:
        """The module is unloaded (vu_rmmod); raise OSError(EBUSY) to refuse."""


def parse_options(options: str, known: dict) -> dict:
    """Parse ``a=1,b,c=x`` against ``known`` {name: type}; unknown -> EINVAL."""
    result = {}
    for item in filter(None, (options or "").split(",")):
        key, eq, value = item.partition("=")
        if key not in known:
            raise OSError(errno.EINVAL, "unknown mount option %r" % key)
        kind = known[key]
        if kind is bool:
            if eq:
                raise OSError(errno.EINVAL, "option %r takes no value" % key)
            result[key] = True
        else:
            try:
                result[key] = kind(value)
            except ValueError:
                raise OSError(errno.EINVAL, "bad value for option %r" % key) from None
    return result
