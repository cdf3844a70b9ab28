"""The kernel's permission rules, in one place for every module that serves files.

A module that keeps its own inodes (vufuse's emulation of ``default_permissions``, the
virtual stack file of vunet, vubinfmt's exec check) or that changes a host tree for a
guest (vufs's layers) decides as the kernel's VFS does. The reference is the kernel's
``generic_permission`` (fs/namei.c), ``may_delete``'s sticky rule (``check_sticky``),
``inode_init_owner``, ``setattr_prepare`` with ``chown_ok``/``chgrp_ok`` and chmod's
S_ISGID rule, ``setattr_should_drop_suidgid``, ``file_remove_privs``, ``may_open``'s
O_NOATIME and ``xattr_permission``.

Every rule takes the caller's credentials (``Cred``: fs uid, fs gid, supplementary
groups; ``cred_of(api)`` gives the guest's being served) and the ``os.stat_result``-like
attributes of what it acts on. A rule either returns what the kernel would use or raises
the ``OSError`` the kernel answers. Root (fs uid 0) holds the capabilities the rules ask
for (CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_CHOWN, CAP_FSETID).
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Callable, NamedTuple

R, W, X = 4, 2, 1
UNCHANGED = (-1, 0xFFFFFFFF)  # chown's "leave it"


class Cred(NamedTuple):
    uid: int
    gid: int
    groups: frozenset = frozenset()

    def in_group(self, gid: int) -> bool:
        return gid == self.gid or gid in self.groups

    @property
    def root(self) -> bool:
        return self.uid == 0


def cred_of(api) -> Cred:
    """The credentials of the guest thread whose call the module is serving."""
    uid, gid, _, _ = api.caller()
    return Cred(uid, gid, frozenset(api.caller_groups()))


def own_cred() -> Cred:
    """umvu's own effective ids: those of the caller while a module serves it with
    the caller's credentials (vufs)."""
    return Cred(os.geteuid(), os.getegid(), frozenset(os.getgroups()))


def _err(code: int, what: str) -> OSError:
    return OSError(code, "%s: %s" % (os.strerror(code), what))


# ------------------------------------------------------------------ access
def mode_bits(st, cred: Cred) -> int:
    """The rwx bits of st's mode that apply to cred (owner, group, other)."""
    if cred.uid == st.st_uid:
        return (st.st_mode >> 6) & 7
    if cred.in_group(st.st_gid):
        return (st.st_mode >> 3) & 7
    return st.st_mode & 7


def permitted(st, want: int, cred: Cred) -> bool:
    """generic_permission: want (R|W|X bits) allowed to cred on st. Root may read and
    write anything, search any directory, and execute a file with any x bit."""
    want &= 7
    if cred.root:
        return not (want & X and not stat.S_ISDIR(st.st_mode) and not st.st_mode & 0o111)
    return not want & ~mode_bits(st, cred)


def permission(st, want: int, cred: Cred) -> None:
    """permitted, or EACCES."""
    if not permitted(st, want, cred):
        raise _err(errno.EACCES, "mode %o" % stat.S_IMODE(st.st_mode))


def owner_or_root(st, cred: Cred) -> bool:
    """inode_owner_or_capable."""
    return cred.root or cred.uid == st.st_uid


def may_noatime(st, cred: Cred) -> None:
    """open(O_NOATIME): the file's owner or root only (EPERM)."""
    if not owner_or_root(st, cred):
        raise _err(errno.EPERM, "O_NOATIME: not the owner")


def sticky_refuses(dir_st, victim_st, cred: Cred) -> bool:
    """check_sticky: in a directory with S_ISVTX only the entry's owner, the directory's
    owner or root may remove or rename the entry."""
    return bool(dir_st.st_mode & stat.S_ISVTX) and not cred.root and \
        cred.uid not in (dir_st.st_uid, victim_st.st_uid)


def may_delete(dir_st, victim_st, cred: Cred) -> None:
    """may_delete: write and search on the directory (EACCES), then the sticky rule
    (EPERM). victim_st None: the entry's absence is the operation's to report."""
    permission(dir_st, W | X, cred)
    if victim_st is not None and sticky_refuses(dir_st, victim_st, cred):
        raise _err(errno.EPERM, "sticky directory: not the owner")


# ------------------------------------------------------------------ creation
def mkdir_mode(mode: int) -> int:
    """vfs_prepare_mode for mkdir: the permission bits and S_ISVTX of the mode asked
    (set-user-ID and set-group-ID come only from the parent, by init_owner)."""
    return mode & 0o1777


def init_owner(dir_st, mode: int, cred: Cred) -> tuple[int, int]:
    """inode_init_owner: (gid, mode) of a new entry of the given mode (type included)
    in the directory dir_st. A set-group-ID directory gives its group, and to a new
    directory its S_ISGID; a new file keeps S_ISGID with group exec only for a member
    of its group (or root)."""
    gid = cred.gid
    if dir_st.st_mode & stat.S_ISGID:
        gid = dir_st.st_gid
        if stat.S_ISDIR(mode):
            mode |= stat.S_ISGID
    if not stat.S_ISDIR(mode) and mode & (stat.S_ISGID | stat.S_IXGRP) == (
            stat.S_ISGID | stat.S_IXGRP) and not cred.root and not cred.in_group(gid):
        mode &= ~stat.S_ISGID
    return gid, mode


# ------------------------------------------------------------------ attributes
def drop_suidgid(mode: int, gid: int, cred: Cred) -> int:
    """setattr_should_drop_suidgid: mode without S_ISUID, and without S_ISGID when it
    comes with group exec, or when the caller is neither root nor of the group gid."""
    mode &= ~stat.S_ISUID
    if mode & stat.S_ISGID and (mode & stat.S_IXGRP or (
            not cred.root and not cred.in_group(gid))):
        mode &= ~stat.S_ISGID
    return mode


def mode_after_write(st, cred: Cred) -> int | None:
    """file_remove_privs: the mode a write by cred leaves (a caller other than root
    drops set-user-ID and set-group-ID), None when it stays."""
    if cred.root or not st.st_mode & (stat.S_ISUID | stat.S_ISGID):
        return None
    mode = drop_suidgid(st.st_mode, st.st_gid, cred)
    return mode if mode != st.st_mode else None


def chmod_mode(st, mode: int, cred: Cred) -> int:
    """setattr_prepare for chmod: the owner or root only (EPERM); S_ISGID set by one
    neither root nor of the file's group is dropped. Returns the permission bits."""
    if not owner_or_root(st, cred):
        raise _err(errno.EPERM, "chmod: not the owner")
    mode &= 0o7777
    if mode & stat.S_ISGID and not cred.root and not cred.in_group(st.st_gid):
        mode &= ~stat.S_ISGID
    return mode


def may_chown(st, uid: int, gid: int, cred: Cred) -> None:
    """chown_ok and chgrp_ok: only root gives a file away; its owner may change the
    group to one of its own (EPERM)."""
    if cred.root:
        return
    if uid not in UNCHANGED and (cred.uid != st.st_uid or uid != st.st_uid):
        raise _err(errno.EPERM, "only root gives a file away")
    if gid not in UNCHANGED and (cred.uid != st.st_uid or (
            gid != st.st_gid and not cred.in_group(gid))):
        raise _err(errno.EPERM, "chgrp: not the owner, or not one of its groups")
    if cred.uid != st.st_uid and mode_after_chown(st, gid, cred) is not None:
        # (dropping set-ID bits is a change of mode: the owner's, setattr_prepare)
        raise _err(errno.EPERM, "chown of a set-ID file: not the owner")


def mode_after_chown(st, gid: int, cred: Cred) -> int | None:
    """The mode a chown leaves on a file that is no directory or symlink (chown_common,
    then setattr_copy): S_ISUID goes whoever calls; S_ISGID with group exec, or for a
    caller other than root outside the file's group, the old one or the new one (gid;
    unchanged: -1). None when it stays."""
    if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
        return None
    mode = drop_suidgid(st.st_mode, st.st_gid, cred)
    if gid not in UNCHANGED and not cred.root and not cred.in_group(gid):
        mode &= ~stat.S_ISGID
    return mode if mode != st.st_mode else None


def may_utimens(st, touch: bool, cred: Cred, check_write: Callable[[], None]) -> None:
    """utimensat: the owner or root sets any times; anyone else only both to now (touch,
    needing write access: check_write raises EACCES), explicit times EPERM."""
    if owner_or_root(st, cred):
        return
    if not touch:
        raise _err(errno.EPERM, "explicit times: not the owner")
    check_write()


def may_xattr(st, name: bytes, cred: Cred, check_write: Callable[[], None]) -> None:
    """xattr_permission for a change: trusted.* is root's (EPERM); user.* only on
    regular files and directories (EPERM) and needs write access (check_write), as
    does any other namespace."""
    if name.startswith(b"trusted."):
        if not cred.root:
            raise _err(errno.EPERM, "trusted xattrs are root's")
        return
    if name.startswith(b"user.") and not (stat.S_ISREG(st.st_mode) or
                                          stat.S_ISDIR(st.st_mode)):
        raise _err(errno.EPERM, "user xattrs only on files and directories")
    check_write()
