"""The kernel's rules vufuse applies before a file system's operation runs.

vufuse stands where the kernel's VFS and FUSE's ``default_permissions`` stand: a pyfuse3
file system is written for a kernel that checked mode bits, search permission, the
sticky bit, who may chown or chmod, and that dropped set-ID bits. ``KernelRules`` is the
part of ``FuseService`` that does so (it uses the service's ``_getattr``, ``inode``,
``lstat``, ``_setattr``, ``ctx`` and attribute cache).
"""
from __future__ import annotations

import errno
import stat
import time

O_NOATIME = 0o1000000


class KernelRules:
    """Part of FuseService: generic_permission, may_delete, inode_init_owner,
    setattr_should_drop_suidgid and the walk's search permission, as the kernel's."""

    def check(self, st, want: int, ctx=None) -> None:
        """The kernel's default_permissions: mode bits against the guest's ids."""
        if not self.default_permissions or not want:
            return
        ctx = ctx or self.ctx()
        if self.fakeroot or ctx.uid == 0:
            if want & 1 and not stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o111:
                raise OSError(errno.EACCES, "permission denied")
            return
        if ctx.uid == st.st_uid:
            bits = (st.st_mode >> 6) & 7
        elif ctx.gid == st.st_gid or st.st_gid in self.api.caller_groups():
            bits = (st.st_mode >> 3) & 7
        else:
            bits = st.st_mode & 7
        if want & ~bits:
            raise OSError(errno.EACCES, "permission denied")

    def check_noatime(self, st, flags: int, ctx) -> None:
        """As may_open: O_NOATIME only for the file's owner or root (EPERM), whatever
        default_permissions says (the VFS checks it above FUSE)."""
        if flags & O_NOATIME and not self.fakeroot and ctx.uid not in (0, st.st_uid):
            raise OSError(errno.EPERM, "O_NOATIME: not the owner")

    def check_parent(self, path: bytes, ctx=None) -> int:
        parent = self.split(path)[0]
        ino = self.inode(parent)
        self.check(self._getattr(ino), 3, ctx)  # write + search
        return ino

    def check_remove(self, path: bytes, ctx) -> int:
        """check_parent for an entry to be removed or renamed away, and the kernel's
        sticky rule: in a directory with S_ISVTX only the entry's owner, the directory's
        owner or root may do that (EPERM)."""
        ino = self.check_parent(path, ctx)
        if not self.default_permissions or self.fakeroot or ctx.uid == 0:
            return ino
        dst = self._getattr(ino)
        if dst.st_mode & stat.S_ISVTX and ctx.uid != dst.st_uid:
            try:
                victim = self.lstat(path)
            except OSError:
                return ino  # (the operation says ENOENT)
            if victim.st_uid != ctx.uid:
                raise OSError(errno.EPERM, "sticky directory: not the owner")
        return ino

    def _in_group(self, gid: int, ctx) -> bool:
        return gid == ctx.gid or gid in self.api.caller_groups()

    def _enforcing(self, ctx) -> bool:
        """The kernel's rules apply to this caller (not root, not fakeroot)."""
        return self.default_permissions and not self.fakeroot and ctx.uid != 0

    def creating(self, parent: int, mode: int, ctx) -> int:
        """As the kernel's inode_init_owner: in a set-group-ID directory a new entry
        takes the directory's group, and a new directory its S_ISGID too; a new file
        keeps S_ISGID (with group exec) only for a member of its group. ctx is changed
        for the file system; returns the mode to create with."""
        dst = self._getattr(parent)
        if dst.st_mode & stat.S_ISGID:
            ctx.gid = dst.st_gid
            if stat.S_ISDIR(mode):
                mode |= stat.S_ISGID
        if not stat.S_ISDIR(mode) and mode & (stat.S_ISGID | stat.S_IXGRP) == (
                stat.S_ISGID | stat.S_IXGRP) and self._enforcing(ctx) and \
                not self._in_group(ctx.gid, ctx):
            mode &= ~stat.S_ISGID
        return mode

    def _privs_dropped(self, mode: int, gid: int, ctx) -> int:
        """mode without S_ISUID, and without S_ISGID where the kernel drops it too: with
        group exec, or for a caller neither root nor of the group gid
        (setattr_should_drop_suidgid)."""
        mode &= ~stat.S_ISUID
        if mode & stat.S_ISGID and (mode & stat.S_IXGRP or (
                self._enforcing(ctx) and not self._in_group(gid, ctx))):
            mode &= ~stat.S_ISGID
        return mode

    def _kill_privs(self, ino: int, ctx, fh=None) -> None:
        """A write by a caller other than root drops set-user-ID and set-group-ID (the
        kernel's file_remove_privs)."""
        if not self._enforcing(ctx):
            return
        st = self._getattr(ino)
        if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            mode = self._privs_dropped(st.st_mode, st.st_gid, ctx)
            if mode != st.st_mode:
                self._setattr(ino, fh=fh, mode=mode)

    def _searchable(self, path: bytes, ctx) -> None:
        """Search (x) permission on every directory the path goes through, as the
        kernel's walk checks it (EACCES). A directory found searchable by its owner,
        group or other bits is remembered for those ids while its attributes are."""
        parent = path.rpartition(b"/")[0]
        uid, gid = ctx.uid, ctx.gid
        key = (uid, gid, parent)
        if self._searched.get(key, 0) > time.monotonic():
            return
        until = float("inf")
        cur = b""
        for name in parent.split(b"/"):
            cur = cur + b"/" + name if name else cur
            ino = self.inode(cur or b"/")
            st = self._getattr(ino)
            if not stat.S_ISDIR(st.st_mode):
                continue
            mode = st.st_mode
            if uid == st.st_uid:
                ok = mode & 0o100
            elif gid == st.st_gid:
                ok = mode & 0o010
            else:
                ok = mode & 0o001 or None  # (None: a supplementary group may have it)
            if ok is None:
                self.check(st, 1, ctx)
                until = 0
            elif not ok:
                raise OSError(errno.EACCES, "permission denied")
            hit = self._attr_cache.get(ino)
            until = min(until, hit[0] if hit is not None else 0)
        if until > 0:
            if len(self._searched) > 65536:
                self._searched.clear()
            self._searched[key] = until
