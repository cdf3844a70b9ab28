"""The kernel's rules vufuse applies before a file system's operation runs.

vufuse stands where the kernel's VFS and FUSE's ``default_permissions`` stand: a pyfuse3
file system is written for a kernel that checked mode bits, search permission, the
sticky bit, who may chown or chmod, and that dropped set-ID bits. ``KernelRules`` is the
part of ``FuseService`` that does so, with the rules of ``umvu.kernelrules`` (it uses
the service's ``_getattr``, ``inode``, ``lstat``, ``_setattr``, ``ctx`` and attribute
cache).
"""
from __future__ import annotations

import stat
import time

from umvu import kernelrules as kr

O_NOATIME = 0o1000000


class KernelRules:
    """Part of FuseService: umvu.kernelrules applied for the calling guest, as the
    kernel's VFS applies them above FUSE (mode bits only with default_permissions;
    fakeroot: every caller is root)."""

    def cred(self, ctx=None) -> kr.Cred:
        ctx = ctx or self.ctx()
        if self.fakeroot:
            return kr.Cred(0, ctx.gid)
        return kr.Cred(ctx.uid, ctx.gid, frozenset(self.api.caller_groups()))

    def check(self, st, want: int, ctx=None) -> None:
        """The kernel's default_permissions: mode bits against the guest's ids."""
        if self.default_permissions and want:
            kr.permission(st, want, self.cred(ctx))

    def check_noatime(self, st, flags: int, ctx) -> None:
        """As may_open: O_NOATIME only for the file's owner or root (EPERM), whatever
        default_permissions says (the VFS checks it above FUSE)."""
        if flags & O_NOATIME:
            kr.may_noatime(st, self.cred(ctx))

    def check_parent(self, path: bytes, ctx=None) -> int:
        parent = self.split(path)[0]
        ino = self.inode(parent)
        self.check(self._getattr(ino), kr.W | kr.X, ctx)
        return ino

    def check_remove(self, path: bytes, ctx) -> int:
        """check_parent for an entry to be removed or renamed away, and the kernel's
        sticky rule (EPERM)."""
        ino = self.check_parent(path, ctx)
        if not self.default_permissions:
            return ino
        dst = self._getattr(ino)
        if dst.st_mode & stat.S_ISVTX:
            try:
                victim = self.lstat(path)
            except OSError:
                return ino  # (the operation says ENOENT)
            kr.may_delete(dst, victim, self.cred(ctx))
        return ino

    def _enforcing(self, ctx) -> bool:
        """The kernel's rules apply to this caller (not root, not fakeroot)."""
        return self.default_permissions and not self.cred(ctx).root

    def _rules_cred(self, ctx) -> kr.Cred:
        """The caller's credentials where default_permissions applies, else root's
        (FUSE without it: ATTR_FORCE, the daemon decides)."""
        return self.cred(ctx) if self.default_permissions else kr.Cred(0, ctx.gid)

    def creating(self, parent: int, mode: int, ctx) -> int:
        """inode_init_owner for a new entry in parent: ctx.gid is changed for the file
        system; returns the mode to create with."""
        gid, mode = kr.init_owner(self._getattr(parent), mode, self._rules_cred(ctx))
        ctx.gid = gid
        return mode

    def _kill_privs(self, ino: int, ctx, fh=None) -> None:
        """A write by a caller other than root drops set-user-ID and set-group-ID (the
        kernel's file_remove_privs)."""
        if not self._enforcing(ctx):
            return
        mode = kr.mode_after_write(self._getattr(ino), self.cred(ctx))
        if mode is not None:
            self._setattr(ino, fh=fh, mode=mode)

    def _searchable(self, path: bytes, ctx) -> None:
        """Search (x) permission on every directory the path goes through, as the
        kernel's walk checks it (EACCES). A directory found searchable by its owner,
        group or other bits is remembered for those credentials while its attributes
        are."""
        parent = path.rpartition(b"/")[0]
        cred = self.cred(ctx)
        key = (cred, parent)
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
            kr.permission(st, kr.X, cred)
            hit = self._attr_cache.get(ino)
            until = min(until, hit[0] if hit is not None else 0)
        if until > 0:
            if len(self._searched) > 65536:
                self._searched.clear()
            self._searched[key] = until
