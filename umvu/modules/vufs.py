"""vufs (VUOS semantics): ``vumount -t vufs [-o MODE[,ro][,except=PATH...]] SOURCE TARGET``

- ``bind`` (default): TARGET shows SOURCE (a directory or a single file).
- ``merge``: TARGET shows SOURCE over the real content of TARGET: names from both, SOURCE
  wins; changes go to the layer holding the name, new names to SOURCE.
- ``cow``: as merge, but every change lands in SOURCE (the upper layer): files are copied
  up before a write, chmod, chown, utimens or rename; deletions of lower names are kept
  as whiteouts under ``SOURCE/.-`` (VUOS's place); the real TARGET is never modified.
- ``mincow``: as cow, but a lower file the guest may write is changed in place; only
  what the guest may not change is copied up.
- ``except=PATH`` (repeatable, relative to TARGET or absolute inside it): holes where the
  real tree shows through.
"""
from __future__ import annotations

import errno
import os
import stat

from umvu import kernelrules as kr
from umvu.api import Module, touching
from umvu.modules._longpaths import Host as H
from umvu.modules.unreal import At, HostTree, exact_mode

WHITEOUT_DIR = b".-"
MODES = ("bind", "merge", "cow", "mincow")


def _exists(path: bytes) -> bool:
    """Whether path names something; what the walk to it meets but ENOENT and ENOTDIR
    (EACCES: a directory the caller may not search) is the caller's answer."""
    try:
        H.lstat(path)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False


class Handle:
    __slots__ = ("fd", "path", "listing")

    def __init__(self, fd, path):
        self.fd, self.path, self.listing = fd, path, None


class LayeredTree:
    """Upper (SOURCE) over lower (the real TARGET), per ``mode``."""

    def __init__(self, upper: bytes, lower: bytes, mode: str, readonly: bool,
                 api=None) -> None:
        self.api = api  # (its mounter_ids: copy-up as overlayfs's, owners kept)
        self.upper = upper.rstrip(b"/") or b"/"
        self.lower = lower.rstrip(b"/") or b"/"
        self.mode = mode
        self.readonly = readonly
        self.wdir = os.path.join(self.upper, WHITEOUT_DIR)

    # ------------------------------------------------------------ layers
    def up(self, path: bytes) -> bytes:
        return self.upper + path if path != b"/" else self.upper

    def low(self, path: bytes) -> bytes:
        return self.lower + path if path != b"/" else self.lower

    def whiteout(self, path: bytes) -> bytes:
        """The marker file of a deleted lower name: SOURCE/.-/DIR/.wh.NAME."""
        parent, _, name = path.rpartition(b"/")
        return self.wdir + parent + b"/.wh." + name

    def at(self, host: bytes, make_dirs: bool = False) -> At:
        """host (in a layer) reached from its layer's root, no symlink followed: a
        link the guest made in the upper layer cannot lead a change outside it."""
        for root in sorted((self.upper, self.lower), key=len, reverse=True):
            if host == root or host.startswith(root.rstrip(b"/") + b"/"):
                return At(root, host, make_dirs)
        raise OSError(errno.EXDEV, "outside the layers")

    def _mark_deleted(self, path: bytes) -> None:
        with self._mounter(), self.at(self.whiteout(path), make_dirs=True) as a:
            os.close(a.open(os.O_WRONLY | os.O_CREAT, 0o644))

    def hidden(self, path: bytes) -> bool:
        """A lower name deleted in this view (it, or a parent, has a whiteout); an upper
        name of the same path still shows (see where())."""
        if self.mode not in ("cow", "mincow"):
            return False
        p = path
        with self._mounter():  # (the whiteouts are the view's own bookkeeping)
            while p not in (b"/", b""):
                if _exists(self.whiteout(p)):
                    return True
                p = p.rpartition(b"/")[0] or b"/"
        return False

    def where(self, path: bytes) -> bytes | None:
        """The host path that holds ``path`` in this view, or None."""
        if path.startswith(b"/" + WHITEOUT_DIR) and self.mode in ("cow", "mincow"):
            return None
        u = self.up(path)
        if _exists(u):
            return u
        if self.hidden(path):
            return None
        lo = self.low(path)
        return lo if _exists(lo) else None

    def must(self, path: bytes) -> bytes:
        h = self.where(path)
        if h is None:
            raise OSError(errno.ENOENT, "no such file")
        return h

    def _rofs(self):
        if self.readonly:
            raise OSError(errno.EROFS, "read-only file system")

    def _mounter(self):
        """Copies up are made as overlayfs makes them: with the mounter's ids (umvu's,
        in a session it runs as root), the lower file's owner and group kept, so that
        the caller's own call on the copy meets the kernel's checks of the original."""
        return self.api.mounter_ids() if self.api is not None else _Nothing()

    def _parent_up(self, path: bytes) -> None:
        """Make the parent directories of path exist in the upper layer."""
        parent = path.rpartition(b"/")[0] or b"/"
        if parent == b"/" or _exists(self.up(parent)):
            return
        self._parent_up(parent)
        src = self.must(parent)
        with self._mounter(), self.at(self.up(parent)) as a:
            st = H.lstat(src)
            with exact_mode:
                a.mkdir(stat.S_IMODE(st.st_mode))
            _keep_owner(st, a)
            _copy_meta(src, a)

    def copy_up(self, path: bytes) -> bytes:
        """The upper copy of path (made now if it lives below)."""
        u = self.up(path)
        if _exists(u):
            return u
        lo = self.must(path)
        self._parent_up(path)
        with self._mounter(), self.at(u) as a:
            st = H.lstat(lo)
            if stat.S_ISDIR(st.st_mode):
                with exact_mode:
                    a.mkdir(stat.S_IMODE(st.st_mode))
            elif stat.S_ISLNK(st.st_mode):
                a.symlink(H.readlink(lo))
            elif stat.S_ISREG(st.st_mode):
                _copy_data(lo, a)
            else:
                raise OSError(errno.EOPNOTSUPP, "cannot copy up a special file")
            _keep_owner(st, a)  # (before the mode: a chown drops set-ID bits)
            _copy_meta(lo, a)
        return u

    def for_change(self, path: bytes, write_data: bool = True, check=None) -> bytes:
        """Where a change to an existing path goes. check(lower path, its lstat): the
        kernel's checks of the caller's change, made before a copy-up (as overlayfs's,
        the copy-up is made only for a change the caller may make)."""
        self._rofs()
        h = self.must(path)
        if self.mode in ("bind", "merge") or h.startswith(self.upper + b"/") or h == self.upper:
            return h
        if self.mode == "mincow" and H.access(h, os.W_OK, follow_symlinks=False):
            return h
        if check is not None:
            check(h, H.lstat(h))
        return self.copy_up(path)

    def _parent_may_change(self, path: bytes) -> None:
        """The caller may add or remove names in path's directory (write and search):
        checked before anything is copied up for it (EACCES)."""
        parent = path.rpartition(b"/")[0] or b"/"
        hp = self.where(parent)
        if hp is not None and not _may(hp, os.W_OK | os.X_OK):
            raise OSError(errno.EACCES, "permission denied")

    def for_new(self, path: bytes) -> bytes:
        """Where a new name goes (and its whiteout, if any, is dropped)."""
        self._rofs()
        if self.mode == "bind":
            return self.up(path)
        if self.mode == "mincow" and not self.hidden(path):
            parent = path.rpartition(b"/")[0] or b"/"
            lp = self.where(parent)
            if lp == self.low(parent) and H.access(lp, os.W_OK):
                return self.low(path)
        self._parent_may_change(path)
        self._parent_up(path)
        # a whiteout stays: the new upper name wins, and a directory made again over a
        # deleted lower one starts empty (its lower content stays hidden)
        return self.up(path)

    def remove(self, path: bytes, is_dir: bool) -> None:
        self._rofs()
        h = self.must(path)
        if is_dir and self.listdir(path) - {b".", b".."}:
            raise OSError(errno.ENOTEMPTY, "directory not empty")
        in_upper = h.startswith(self.upper + b"/")
        if self.mode in ("bind", "merge") or (self.mode == "mincow" and not in_upper and
                                               H.access(os.path.dirname(h), os.W_OK)):
            with self.at(h) as a:
                a.rmdir() if is_dir else a.unlink()
            return
        if in_upper:
            with self.at(h) as a:
                a.rmtree() if is_dir else a.unlink()
        else:  # (the whiteout is the view's: the kernel's may_delete checks the caller)
            self._may_delete(path, h)
        if _exists(self.low(path)):  # a lower name stays hidden
            self._mark_deleted(path)

    def _may_delete(self, path: bytes, h: bytes) -> None:
        """The caller may remove path's entry (h: where it lives): write and search on
        its directory, and in a sticky one only the entry's owner, the directory's or
        root (EPERM)."""
        self._parent_may_change(path)
        hp = self.where(path.rpartition(b"/")[0] or b"/")
        if hp is not None and kr.sticky_refuses(H.lstat(hp), H.lstat(h), kr.own_cred()):
            raise OSError(errno.EPERM, "sticky directory: not the owner")

    def listdir(self, path: bytes) -> set:
        names = set()
        u = self.up(path)
        if H.isdir(u):
            names |= set(H.listdir(u))
            if path == b"/" and self.mode in ("cow", "mincow"):
                names.discard(WHITEOUT_DIR)
        if self.mode != "bind" and not self.hidden(path):
            lo = self.low(path)
            if H.isdir(lo) and not (H.lexists(u) and not H.isdir(u)):
                for n in H.listdir(lo):
                    if not self.hidden(path.rstrip(b"/") + b"/" + n):
                        names.add(n)
        return names

    # ------------------------------------------------------------ the service API
    def lstat(self, path):
        return H.lstat(self.must(path))

    def access(self, path, mode):
        if mode & os.W_OK:
            self._rofs()
        if not H.access(self.must(path), mode, follow_symlinks=False):
            raise OSError(errno.EACCES, "permission denied")

    def readlink(self, path):
        return H.readlink(self.must(path))

    def host_path(self, path):
        return self.must(path)

    def special_path(self, path, st):
        return self.must(path)

    def open(self, path, flags, mode):
        writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC)
        h = self.where(path)
        if h is None:
            if not flags & os.O_CREAT:
                raise OSError(errno.ENOENT, "no such file")
            h = self.for_new(path)
        elif writing:
            h = self.for_change(path, check=_may_write)
        with self.at(h) as a, exact_mode:
            fd = a.open(flags & ~os.O_NOCTTY, mode)
        return Handle(fd, path)

    def close(self, h):
        os.close(h.fd)

    def pread(self, h, size, offset):
        return os.pread(h.fd, size, offset)

    def pwrite(self, h, data, offset):
        return os.pwrite(h.fd, data, offset)

    def fstat(self, h):
        return os.fstat(h.fd)

    def ftruncate(self, h, length):
        os.ftruncate(h.fd, length)

    def fsync(self, h):
        os.fsync(h.fd)

    def getdents(self, h, offset):
        if offset == 0 or h.listing is None:
            h.listing = [b".", b".."] + sorted(self.listdir(h.path))
        out = []
        for i in range(offset, len(h.listing)):
            name = h.listing[i]
            if name in (b".", b".."):
                out.append((name, 0, 4, i + 1))
                continue
            child = h.path.rstrip(b"/") + b"/" + name
            try:
                st = H.lstat(self.must(child))
            except OSError:
                continue
            out.append((name, st.st_ino, stat.S_IFMT(st.st_mode) >> 12, i + 1))
        return out

    def mkdir(self, path, mode):
        if self.where(path) is not None:
            raise OSError(errno.EEXIST, "exists")
        with self.at(self.for_new(path)) as a, exact_mode:
            a.mkdir(mode)

    def mknod(self, path, mode, rdev):
        if self.where(path) is not None:
            raise OSError(errno.EEXIST, "exists")
        with self.at(self.for_new(path)) as a, exact_mode:
            a.mknod(mode, rdev)

    def symlink(self, target, path):
        if self.where(path) is not None:
            raise OSError(errno.EEXIST, "exists")
        with self.at(self.for_new(path)) as a:
            a.symlink(target)

    def link(self, old, new):
        if self.where(new) is not None:
            raise OSError(errno.EEXIST, "exists")
        with self.at(self.for_change(old)) as a, self.at(self.for_new(new)) as b:
            os.link(a.name, b.name, src_dir_fd=a.dir_fd, dst_dir_fd=b.dir_fd,
                    follow_symlinks=False)

    def unlink(self, path):
        self.remove(path, False)

    def rmdir(self, path):
        self.remove(path, True)

    def rename(self, old, new, flags):
        if flags:
            raise OSError(errno.EINVAL, "rename flags")
        self._rofs()
        st = H.lstat(self.must(old))
        if self.mode != "bind":  # (checked before an upper directory is made for it)
            self._may_delete(old, self.must(old))
            there = self.where(new)
            if there is not None:
                self._may_delete(new, there)
            else:
                self._parent_may_change(new)
        if self.mode in ("cow", "mincow"):
            src = self.must(old)
            if not src.startswith(self.upper + b"/"):
                if stat.S_ISDIR(st.st_mode):  # copy the whole lower subtree up
                    self._copy_tree_up(old)
                else:
                    self.copy_up(old)
            src = self.up(old)
        else:
            src = self.must(old)
        target = self.where(new)
        if target is not None and H.isdir(target) and not H.islink(target):
            if not stat.S_ISDIR(st.st_mode):
                raise OSError(errno.EISDIR, "is a directory")
            if self.listdir(new) - {b".", b".."}:
                raise OSError(errno.ENOTEMPTY, "directory not empty")
        dst = self.for_new(new)  # a lower name there is hidden by the upper one
        with self.at(src) as a, self.at(dst) as b:
            os.rename(a.name, b.name, src_dir_fd=a.dir_fd, dst_dir_fd=b.dir_fd)
        if self.mode in ("cow", "mincow") and _exists(self.low(old)):
            self._mark_deleted(old)

    def _copy_tree_up(self, path: bytes) -> None:
        self.copy_up(path)
        for name in self.listdir(path) - {b".", b".."}:
            child = path.rstrip(b"/") + b"/" + name
            if H.isdir(self.must(child)) and not H.islink(self.must(child)):
                self._copy_tree_up(child)
            else:
                self.copy_up(child)

    def chmod(self, path, mode):
        if stat.S_ISLNK(self.lstat(path).st_mode):  # (no copy-up for it: At checks too)
            raise OSError(errno.EOPNOTSUPP, "chmod of a symlink")
        with self.at(self.for_change(path, check=_may_chmod)) as a:
            a.chmod(mode)

    def chown(self, path, uid, gid):
        def check(h, st):
            _may_chown(st, uid, gid)
        with self.at(self.for_change(path, check=check)) as a:
            a.chown(uid, gid)

    def truncate(self, path, length):
        with self.at(self.for_change(path, check=_may_write)) as a:
            a.truncate(length)

    def utimens(self, path, atime_ns, mtime_ns):
        with self.at(self.for_change(path, check=lambda h, st: _may_utimens(
                h, st, touching(atime_ns, mtime_ns)))) as a:
            a.utimens(atime_ns, mtime_ns)

    def statfs(self, path):
        return os.statvfs(self.upper if self.mode != "bind" or _exists(self.upper)
                          else self.lower)

    def getxattr(self, path, name):
        return H.getxattr(self.must(path), name)

    def setxattr(self, path, name, value, flags):
        def check(h, st):
            _may_xattr(h, st, name)
        with self.at(self.for_change(path, check=check)) as a:
            a.setxattr(name, value, flags)

    def listxattr(self, path):
        return [os.fsencode(n) for n in H.listxattr(self.must(path))]

    def removexattr(self, path, name):
        def check(h, st):
            _may_xattr(h, st, name)
        with self.at(self.for_change(path, check=check)) as a:
            a.removexattr(name)


# The kernel's checks of a change to a lower file, for the caller (umvu's effective ids
# are the caller's while a module serves it): write access by the host's own check
# (ACLs included), the rest by umvu.kernelrules.
def _may(h: bytes, mode: int) -> bool:
    return H.access(h, mode, effective_ids=True, follow_symlinks=False)


def _may_write(h, st) -> None:
    if not _may(h, os.W_OK):
        raise OSError(errno.EACCES, "permission denied")


def _may_chmod(h, st) -> None:
    kr.chmod_mode(st, st.st_mode, kr.own_cred())


def _may_chown(st, uid: int, gid: int) -> None:
    kr.may_chown(st, uid, gid, kr.own_cred())


def _may_utimens(h, st, now: bool) -> None:
    kr.may_utimens(st, now, kr.own_cred(), lambda: _may_write(h, st))


def _may_xattr(h, st, name: bytes) -> None:
    kr.may_xattr(st, name, kr.own_cred(), lambda: _may_write(h, st))


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def _keep_owner(st, a: At) -> None:
    """The copy a gets the owner and group of st where umvu may give them (root)."""
    if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
        a.chown(st.st_uid, st.st_gid)


def _copy_data(src: bytes, a: At) -> None:
    """A new regular file a with the data of the host file src."""
    in_fd = H.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        out_fd = a.open(os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            while True:
                chunk = os.read(in_fd, 1 << 20)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out_fd, view):]
        finally:
            os.close(out_fd)
    finally:
        os.close(in_fd)


def _copy_meta(src: bytes, a: At) -> None:
    """What shutil.copystat copies (extended attributes, mode, times) from the host
    file src to a, never following a."""
    st = H.lstat(src)
    if not stat.S_ISLNK(st.st_mode):
        try:
            names = H.listxattr(src)
        except OSError:
            names = []
        for name in names:
            try:
                a.setxattr(name, H.getxattr(src, name), 0)
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.ENODATA,
                                   errno.EINVAL, errno.EACCES):
                    raise
        a.chmod(stat.S_IMODE(st.st_mode))
    a.utimens(st.st_atime_ns, st.st_mtime_ns)


class VuFS(Module):
    name = "vufs"
    description = "bind, merge, cow and mincow mounts of host trees (VUOS vufs)"
    filesystems = ("vufs",)

    def mount(self, source, target, fstype, flags, options):
        mode = "bind"
        readonly = bool(flags & 1)
        excepts = []
        for item in filter(None, options.split(",")):
            key, eq, value = item.partition("=")
            if key in MODES and not eq:
                mode = key
            elif key == "ro" and not eq:
                readonly = True
            elif key == "rw" and not eq:
                readonly = False
            elif key == "except" and eq and value:
                excepts.append(value)
            else:
                raise OSError(errno.EINVAL, "unknown mount option %r" % item)
        if not _exists(source):
            raise OSError(errno.ENOENT, "source %s does not exist" % os.fsdecode(source))
        if mode != "bind" and not H.isdir(source):
            raise OSError(errno.ENOTDIR, "%s needs a source directory" % mode)
        if mode == "bind":
            tree = HostTree(source, readonly=readonly)
        else:
            tree = LayeredTree(source, target, mode, readonly, self.api)
        tree.excepts = [os.fsencode(e) if e.startswith("/") else
                        target.rstrip(b"/") + b"/" + os.fsencode(e) for e in excepts]
        return tree
