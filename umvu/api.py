"""The module API: everything a module may use, and everything the core may ask of one.

A *module* is a :class:`Module` subclass in ``umvu/modules/NAME.py`` (or any file or
dotted name given to ``vu_insmod``); loading it makes one instance, whose ``api`` is the
hypervisor's :class:`HypervisorAPI`. A module serves one kind of virtualization and hands
the core *services*: one per mount (``Module.mount``), or objects it registers itself
(``api.add_path``, ``api.add_device``, ``api.claim_syscalls``).

A service answers syscall-shaped *operations* (:class:`Service` declares each, with its
contract) and may offer *capabilities*: facts and shortcuts the core uses when present
(a host path the kernel can serve, plain file content the guest may read natively...).
A service may subclass :class:`Service` or just define the methods it has; the core asks
for nothing not declared here (tests/test_api.py checks that), and calls operations
through one gate: ``OSError(errno)`` becomes -errno, any other exception is logged and
answers EIO, a method not defined answers ENOSYS.

Paths given to services are ``bytes``, absolute, relative to the mount's root (``b"/"``
is the mount point itself) and canonical: the core resolved ``.``, ``..`` and every
symlink (it calls ``lstat`` and ``readlink`` itself). Handles are whatever ``open``
returned. Stat results are any object with the ``os.stat_result`` fields (``st_mode``,
``st_ino``, ``st_nlink``, ``st_uid``, ``st_gid``, ``st_rdev``, ``st_size``,
``st_blksize``, ``st_blocks``, ``st_atime_ns``, ``st_mtime_ns``, ``st_ctime_ns``, and
optionally ``st_dev``).

Any operation may be ``async def``. One that awaits :func:`sleep`, :func:`wait_readable`,
:func:`wait_writable` or an :class:`Event` (or trio, once :func:`need_trio` was called)
makes the guest's call wait while umvu serves every other guest; a signal for that guest
cancels it (trio.Cancelled reaches the operation) as the kernel interrupts a blocking
call. See umvu.core.waiting.
"""
from __future__ import annotations

import errno

from umvu.core import syscalls  # noqa: F401  (the ABI: syscall rows by name and number)
from umvu.core.abi import s32, s64  # noqa: F401  (a register's signed 32/64-bit value)
from umvu.core.actions import PASS, Native  # noqa: F401
from umvu.core.errors import RESTARTS  # noqa: F401
from umvu.core.log import log  # noqa: F401  (umvu's log: log.error(fmt, *args)...)
from umvu.core.waiting import (Event, can_wait, drive, lazy_trio, need_trio,  # noqa: F401
                               shield_signals, sleep, wait_readable, wait_writable)


class Module:
    """Base of every module. ``api`` is the hypervisor's :class:`HypervisorAPI`.

    ``name``: what vu_insmod/vu_lsmod call it; ``description``: one line for vu_lsmod;
    ``filesystems``: the mount types it serves (``vumount -t TYPE``); ``creates_target``:
    its mounts make their target (vudev's device nodes) instead of needing one;
    ``source_is_path``: a relative source is a path in the caller's view (False: a name,
    kept as given, as FUSE's fsname)."""
    name = ""
    description = ""
    filesystems: tuple = ()
    creates_target = False
    source_is_path = True

    def __init__(self, api) -> None:
        self.api = api

    def accepts(self, fstype: str) -> bool:
        """Whether ``vumount -t fstype`` is this module's."""
        return fstype in self.filesystems

    def mount(self, source: bytes, target: bytes, fstype: str, flags: int,
              options: str):
        """The service of a new mount of fstype at target (flags: MS_*, 1 is MS_RDONLY;
        options: the -o string)."""
        raise OSError(errno.ENODEV, "no such file system type")

    def umount(self, service, flags: int) -> None:
        """A mount of this module goes away: flush and close what it holds."""
        destroy = getattr(service, "destroy", None)
        if destroy is not None:
            destroy()

    def command_ended(self) -> None:
        """The session's command (its first process) exited while other guests run on:
        a module stops what would keep the session alive for nothing (a FUSE daemon
        whose mount goes away exits)."""

    def cleanup(self) -> None:
        """The module is unloaded (vu_rmmod); raise OSError(EBUSY) to refuse."""


def _enosys(name):
    def op(self, *args):
        raise OSError(errno.ENOSYS, "%s not implemented" % name)
    op.__name__ = name
    op.default = True
    return op


class Service:
    """What the core may ask of a service. Operations (each answers ENOSYS unless the
    service defines it; ``None`` results of operations that return nothing are 0):

    lstat(path) -> stat              the entry itself (no symlink followed)
    walk_lstat(path) -> stat         (optional) the same for a directory or symlink the
                                     walk goes through to another path: only its type
                                     and mode are used (a cached one will do)
    access(path, mode) -> 0          mode: R_OK|W_OK|X_OK; raise EACCES (absent: every
                                     access is allowed; the core checks no mode bits)
    readlink(path) -> bytes          a symlink's target
    open(path, flags, mode) -> handle  flags: O_* (O_CREAT creates with mode, the umask
                                     applied already); directories too (O_DIRECTORY)
    tmpfile(path, flags, mode) -> handle   open(O_TMPFILE): a new regular file with no
                                     name in the directory path (absent: EOPNOTSUPP);
                                     linkable by link_open unless flags has O_EXCL
    link_open(handle, new)           linkat of an open file (AT_EMPTY_PATH, or
                                     /proc/self/fd/N followed): a new name for it (a
                                     file with no link left: ENOENT, unless a tmpfile)
    close(handle)                    the last guest fd of the open file is gone
    pread(handle, size, offset) -> bytes   at most size bytes (b"": end of file)
    pwrite(handle, data, offset) -> int    bytes written
    read(handle, size) / write(handle, data)   streams with no offsets (devices,
                                     fifos); used only when pread/pwrite are absent
    fstat(handle) -> stat            (absent: lstat of the file's path)
    getdents(handle, offset) -> [(name, ino, d_type, next_offset)]  from offset on
                                     (. and .. included, any number of entries)
    ftruncate(handle, length)        fsync(handle)      truncate(path, length)
    fallocate(handle, mode, offset, length)   fallocate(2) (mode: FALLOC_FL_*; absent:
                                     EOPNOTSUPP, as a file system without it)
    seek_data(handle, offset, whence) -> int  lseek's SEEK_DATA (3) or SEEK_HOLE (4)
                                     from offset: where the next data or hole is, ENXIO
                                     at or past the end (absent, or ENOSYS: the whole
                                     file is data, the kernel's generic answer)
    copy_file_range(handle_in, offset_in, handle_out, offset_out, length) -> int
                                     copy_file_range(2) between two open files of
                                     this service: bytes copied (absent, or ENOSYS or
                                     EOPNOTSUPP: the core copies through pread and
                                     pwrite, as the kernel's generic copy); the core
                                     has made the kernel's checks and clipped length
                                     to the end of the input
    syncfs()                         write back everything the mount holds to where it
                                     lives (sync(2), syncfs(2) of a file below it)
    mkdir(path, mode)  rmdir(path)  unlink(path)
    rename(old, new, flags)          flags: RENAME_NOREPLACE/EXCHANGE/WHITEOUT
    link(old, new)  symlink(target, path)  mknod(path, mode, rdev)
    chmod(path, mode)  chown(path, uid, gid)   (-1: leave that id as it is)
                                     (for fchmod, fchown, futimens, f*xattr and fstatfs
                                     the path is an OpenPath: its .handle names the file,
                                     which may have no name left)
    utimens(path, atime_ns, mtime_ns)         (None: leave it; a NowNs: the current time
                                     asked as UTIME_NOW or a NULL times: when both are,
                                     the kernel's touch rule applies: owner or write
                                     access, not ownership alone; see touching())
    statfs(path) -> os.statvfs_result-like    (optional f_type: the magic statfs shows)
    getxattr(path, name) -> bytes   setxattr(path, name, value, flags)
    listxattr(path) -> [bytes]      removexattr(path, name)
    ioctl(handle, request, guest_addr) -> int   (guest memory through api.guest_read/
                                     guest_write)

    Capabilities (absent: the core does without):

    native_host(path) -> bytes|None  a host path the kernel may serve path by (the
                                     call then runs natively on it)
    native_root                      attribute: the host directory this whole tree is
                                     (the C loop leaves paths there to Python, and host
                                     paths the kernel reports are shown in the guest's
                                     terms)
    host_path(path) -> bytes         the host file behind a regular file (exec runs it
                                     directly instead of a private copy)
    special_path(path, st) -> bytes  the host fifo/socket/device standing for a special
                                     file (a blocking fifo open blocks in the kernel)
    plain_content(handle) -> bool    the file is plain bytes up to st_size: a read-only
                                     open may be given a memfd of its data
    seek_size(handle) -> int         where SEEK_END is (a device's size)
    host_backing(path) -> (host_path, offset, size)  the host file window of a device
                                     (an image mounted from it is read there directly)
    excepts                          attribute: guest paths below the mount that it does
                                     not serve (what is below shows through)
    destroy()                        the mount goes away (Module.umount's default)
    shown_fstype                     attribute: the type /proc/mounts (so df -T, findmnt)
                                     shows, the kernel's name for what is mounted
                                     (absent or None: the vumount type)
    readonly                         attribute: True when the mount refuses every write
                                     (/proc/mounts shows it ro, whatever the options)
    shown_options                    attribute: the options /proc/mounts shows after ro
                                     or rw (absent: those the mount was given), as the
                                     kernel's file system shows its own
    direct_io_align                  attribute: bytes O_DIRECT I/O must be aligned to
                                     (offset, buffer, length; else EINVAL), as the
                                     kernel's driver of what is shown asks (absent or
                                     0: none asked)
    pollable                         attribute: True when its regular files can be
                                     watched by epoll (as FUSE's files, which have a
                                     poll; absent: EPERM, as a disk file system's)
    placeholder(handle) -> int|None  a host fd of the module's that the guest's fd of
                                     this open file is to be (a copy of it): what poll,
                                     select and epoll see of it (no eventfd then); the
                                     fd calls stay the module's

    Hooks (services given to api.claim_syscalls):

    syscall(thread, sc, args) -> action   before the core dispatches: an int (the
                                     result), None (the kernel), Native(...), or PASS
    after(thread, sc, args, ret) -> int|None   at the exit: a new result or None
    """
    native_root = None
    excepts = ()
    readonly = False
    pollable = False


OPERATIONS = frozenset((
    "lstat", "walk_lstat", "access", "readlink", "open", "tmpfile", "link_open", "close",
    "pread", "pwrite", "read", "write",
    "fstat", "getdents", "ftruncate", "fallocate", "seek_data", "copy_file_range",
    "fsync", "syncfs", "truncate", "mkdir", "rmdir", "unlink",
    "rename", "link", "symlink", "mknod", "chmod", "chown", "utimens", "statfs",
    "getxattr", "setxattr", "listxattr", "removexattr", "ioctl"))
CAPABILITIES = frozenset((
    "native_host", "native_root", "host_path", "special_path", "plain_content",
    "seek_size", "host_backing", "excepts", "destroy", "readonly", "shown_fstype",
    "placeholder", "shown_options", "direct_io_align", "pollable"))
HOOKS = frozenset(("syscall", "after"))
for _name in sorted(OPERATIONS):
    setattr(Service, _name, _enosys(_name))
for _name in ("native_host", "host_path", "special_path", "plain_content", "seek_size",
              "host_backing", "destroy", "placeholder"):
    setattr(Service, _name, None)  # absent unless a service defines it
del _name

def implements(service, name: str) -> bool:
    """Whether service has operation or capability name (not Service's default)."""
    fn = getattr(service, name, None)
    return fn is not None and not getattr(fn, "default", False)


def capability(service, name: str, default=None):
    """service's capability name (a method or a value), or default when it has none."""
    value = getattr(service, name, None)
    return default if value is None else value


class HypervisorAPI:
    """What a module may ask of the hypervisor (``Module.api``); the core implements it
    (umvu.core.hypervisor.ModuleAPI). Methods that say "the calling guest thread" are
    for use while serving that thread's call."""

    def add_path(self, module, prefix: bytes, service, source=b"", fstype="", flags=0,
                 options=""):
        """Claim the guest paths at and below prefix (a mount of the module's own)."""
        raise NotImplementedError

    def add_entry_path(self, module, path: bytes, service):
        """Claim one more path for a mount's service (a disk's partitions)."""
        raise NotImplementedError

    def add_device(self, module, kind: str, rdev: int, service):
        """Claim a device number (kind "blkdev" or "chrdev"): device nodes with it in
        virtual file systems open through service.open(b"/", flags, mode)."""
        raise NotImplementedError

    def claim_syscalls(self, module, names, service, notify: bool = False,
                       local: bool = False) -> list:
        """Claim system calls by name: service.syscall/after see each (Service hooks);
        notify: they come as seccomp notifications (calls of scalar arguments only);
        local: only where trap_in_process makes a process trap them."""
        raise NotImplementedError

    def remove_entry(self, entry) -> None:
        """Give up what add_path/add_entry_path/add_device/claim_syscalls made."""
        raise NotImplementedError

    def remove_path(self, module, prefix: bytes) -> None:
        """Give up the module's own claim of prefix."""
        raise NotImplementedError

    def open_path(self, path: bytes, flags: int = 0, mode: int = 0o644, below=None):
        """Open a guest-view path for the module's own use (an image, a device); below:
        the module (or its entry): mounts made at or after it are not seen."""
        raise NotImplementedError

    def remove_mount(self, service) -> None:
        """The module's own mount of service goes away, as a lazy umount2 (its umount
        is called): what fusermount's auto_unmount does when the daemon dies."""
        raise NotImplementedError

    def image_source(self, path: bytes, below=None, write=None, device_ok=False):
        """The host file behind a guest-view image path (host_path, offset, size), the
        device busy until release(). write True/False: the bytes are locked for this
        mount until then, for writing (no other mount of them, in any session) or for
        reading (no writing mount); EBUSY if another mount holds them. A device no host
        file holds is ENOTBLK, or with device_ok a source whose ``file`` is the device
        opened through its module (pread/pwrite/fsync/close)."""
        raise NotImplementedError

    def resolve(self, dirfd: int, guest_path: bytes, follow: bool = True):
        """The calling thread's view of a path: (canonical path, stat or None)."""
        raise NotImplementedError

    def stat_fd(self, guest_fd: int):
        """stat of an fd of the calling guest thread (virtual or real)."""
        raise NotImplementedError

    def fd_handle(self, guest_fd: int, service):
        """The handle of the calling thread's fd guest_fd when it is an open file of
        service (a device's own file handed to its mount, as FUSE's fd=N), else None."""
        raise NotImplementedError

    def thread(self):
        """The calling guest thread (``.process.data``: per-process module state, copied
        at fork, kept at exec)."""
        raise NotImplementedError

    def thread_of(self, tid: int):
        """Any guest thread by tid (None if it is not one)."""
        raise NotImplementedError

    def caller(self):
        """(fs uid, fs gid, pid, umask) of the calling guest thread."""
        raise NotImplementedError

    def caller_groups(self) -> set:
        """The supplementary groups of the calling guest thread."""
        raise NotImplementedError

    def set_credentials(self, source) -> None:
        """source(thread) -> an object with lists ``uid`` and ``gid`` ([real, effective,
        saved, fs]) and ``groups``, or None: the ids caller() reports (a uid module's
        virtual ids); None: the kernel's again."""
        raise NotImplementedError

    def credentials(self, thread):
        """What the set_credentials source says of thread (None: the kernel's ids)."""
        raise NotImplementedError

    def forget_ids(self, tid: int) -> None:
        """tid's ids may have changed: read them again."""
        raise NotImplementedError

    def mounter_ids(self):
        """A context in which the module acts with umvu's own ids, not the caller's (in
        a session umvu runs as root): for what the kernel does with the mounter's
        credentials, as overlayfs copies a file up, its owner kept."""
        raise NotImplementedError

    def guest_read(self, guest_addr: int, size: int) -> bytes:
        """Memory of the calling guest thread; EFAULT if bad."""
        raise NotImplementedError

    def guest_read_str(self, guest_addr: int) -> bytes:
        """A NUL-terminated string of the calling guest thread."""
        raise NotImplementedError

    def guest_write(self, guest_addr: int, data: bytes) -> None:
        raise NotImplementedError

    def read_memory(self, tid: int, guest_addr: int, size: int) -> bytes:
        """Memory of any stopped guest thread (exec hooks)."""
        raise NotImplementedError

    def write_memory(self, tid: int, guest_addr: int, data: bytes) -> None:
        raise NotImplementedError

    def trap_in_process(self, name: str, arg: int, lo: int, hi: int) -> bool:
        """The calling thread's process (and its descendants) traps syscall name when
        the low 32 bits of argument arg are in [lo, hi), for a local hook."""
        raise NotImplementedError

    def open_in(self, tid: int, host_path: bytes, flags: int = 0) -> int:
        """A host file opened in a stopped guest thread (an exec hook's): its fd."""
        raise NotImplementedError

    def close_in(self, tid: int, guest_fd: int) -> None:
        """close(guest_fd) in a stopped guest thread (undoes open_in)."""
        raise NotImplementedError

    def exec_path(self, guest_path: bytes) -> bytes:
        """The host file the kernel is to exec for a guest path (a copy of a virtual
        file's content if it has no host file): what an exec-rewriting hook runs."""
        raise NotImplementedError

    def scratch_addr(self, size: int) -> int:
        """Guest address of size bytes for one call's rewritten arguments (at most 256, or
        up to half the scratch area less 256: an exec's new argv)."""
        raise NotImplementedError

    def on_exec(self, callback) -> None:
        """callback(tid) after every successful exec, before the new program runs."""
        raise NotImplementedError

    def drop_exec_hook(self, callback) -> None:
        raise NotImplementedError

    def open_memfile(self, guest_path: bytes, data: bytes, cloexec: bool):
        """The action that makes the pending open() give the guest a read-only virtual
        file holding data."""
        raise NotImplementedError

    def private_dir(self) -> bytes:
        """A directory of this session's own, removed at the end."""
        raise NotImplementedError

    def may_run_code(self, path: str) -> None:
        """Raise OSError(EPERM) unless the calling guest may have umvu run the Python
        file path (a module, a FUSE operations file): in a session umvu runs as root,
        only a root caller, and only a file that only root could have written."""
        raise NotImplementedError


class OpenPath(bytes):
    """The path an open file was opened by, given to a path operation made through its
    fd (fchmod, fchown, futimens, f*xattr, fstatfs); ``handle`` is the service's handle
    of it, which names the file even when no name is left (unlinked, O_TMPFILE)."""

    def __new__(cls, path: bytes, handle):
        self = super().__new__(cls, path)
        self.handle = handle
        return self


def handle_of(path):
    """The handle a path operation's path carries (an OpenPath's), else None."""
    return getattr(path, "handle", None)


class NowNs(int):
    """A time in ns the caller gave as "now" (UTIME_NOW, or a NULL times argument)."""
    __slots__ = ()


def touching(atime_ns, mtime_ns) -> bool:
    """utimens sets both times to now as touch(1) does: the kernel lets the owner or
    anyone with write access do it, explicit times only the owner (EPERM)."""
    return isinstance(atime_ns, NowNs) and isinstance(mtime_ns, NowNs)


def parse_size(text: str) -> int:
    """A mount option's size: bytes, or with a k/M/G/T suffix (powers of 1024), as
    tmpfs's size= and the ramdisk's; ValueError unless positive."""
    text = text.strip()
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    mult = units.get(text[-1:].lower(), 1)
    number = text[:-1] if text[-1:].lower() in units else text
    value = int(number, 0) * mult
    if value <= 0:
        raise ValueError(text)
    return value


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
