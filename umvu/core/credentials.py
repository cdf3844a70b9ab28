"""Module code runs with the credentials of the guest it serves.

In a session umvu runs as root, a guest may have dropped its privileges (su, setpriv,
apt's sandbox): what a module does for it on the host (a cow or merge view reading and
writing its layers, a module opening an image) must be checked against the guest's ids,
not umvu's. ``Hypervisor.call`` switches umvu's effective uid, gid and groups to the
calling guest's fs ids around the module's code (``as_caller``) and back; a module call
that waits gives umvu its own ids back for the time it waits (``waiting.drive``), so
that the other guests' calls served meanwhile are not made with them. In a session of
an ordinary user, umvu and its guests have one uid: nothing is switched.

The ids are switched for the calling thread alone (the raw setresuid, setresgid and
setgroups calls: the kernel's credentials are per thread; glibc's seteuid would switch
every thread of umvu, by a signal that restarts what they wait in): a thread of umvu's
that waits for a guest (a fifo's open) keeps the ids it started with.
"""
from __future__ import annotations

import os
import struct

from umvu.core import syscalls
from umvu.core.tracer import raw_syscall

ROOT = os.geteuid() == 0  # the session's umvu is root
_OWN_GROUPS = os.getgroups() if ROOT else []
_NR = {name: syscalls.number(name) for name in ("setresuid", "setresgid", "setgroups")}
_KEEP = 0xFFFFFFFF  # (uid_t)-1: unchanged


def _thread_ids(uid: int, gid: int, groups) -> None:
    """This thread's effective ids and groups (only this thread's): to a guest's, its
    groups and gid while it is still root, then its uid; back to root's, the uid
    first."""
    packed = struct.pack("<%dI" % len(groups), *groups) if groups else b"\0" * 4
    steps = [(_NR["setgroups"], (len(groups), packed)),
             (_NR["setresgid"], (_KEEP, gid, _KEEP)),
             (_NR["setresuid"], (_KEEP, uid, _KEEP))]
    if uid == 0:
        steps.reverse()
    for nr, args in steps:
        ret = raw_syscall(nr, *args)
        if ret < 0:
            raise OSError(-ret, os.strerror(-ret))

active = None  # the AsCaller umvu's ids are switched to now, or None


class AsCaller:
    """The fs ids of one guest call; enter() takes them, leave() gives umvu's back."""
    __slots__ = ("uid", "gid", "groups")

    def __init__(self, uid: int, gid: int, groups) -> None:
        self.uid, self.gid, self.groups = uid, gid, sorted(groups)

    def enter(self) -> None:
        global active
        _thread_ids(self.uid, self.gid, self.groups)
        active = self

    def leave(self) -> None:
        global active
        _thread_ids(0, 0, _OWN_GROUPS)
        active = None


def as_caller(ids) -> AsCaller | None:
    """What to switch to for a call of a guest with ids (uid, gid, groups); None when
    nothing is to be switched (an ordinary user's session, a root caller, or a call
    made from inside a module call, which has its caller's ids already)."""
    if not ROOT or ids is None or active is not None:
        return None
    uid, gid, groups = ids
    if uid == 0:
        return None
    return AsCaller(uid, gid, groups)


class own_ids:
    """A context: umvu's own ids for its body, the caller's again after (what the kernel
    does with the mounter's credentials, as overlayfs's copy-up); nothing to switch
    outside a switched call."""
    __slots__ = ("caller",)

    def __enter__(self):
        self.caller = active
        if self.caller is not None:
            self.caller.leave()
        return self

    def __exit__(self, *exc):
        if self.caller is not None:
            self.caller.enter()
