"""Path canonicalization in the guest's view (cwd, dirfd, ``..``, symlinks inside and
across virtual mounts, trailing slashes), with the kernel's errors:
ENOENT, ENOTDIR, ELOOP (more than 40 symlinks), ENAMETOOLONG (component > 255 bytes).
"""
from __future__ import annotations

import errno
import os
import stat

from umvu.api import implements

AT_FDCWD = -100
MAXSYMLINKS = 40
NAME_MAX = 255


class Resolved:
    """``path``: canonical absolute guest path; ``entry``: the responsible mount or None
    (the real kernel); ``rel``: the path inside the mount; ``crossed``: the walk went
    through a virtual mount (so the kernel could not resolve the guest's string);
    ``st``: the final object's lstat result when it was looked at (None if absent)."""
    __slots__ = ("path", "entry", "rel", "crossed", "st", "exists", "trailing")

    def __init__(self, path, entry, rel, crossed, st, exists, trailing=False):
        self.path, self.entry, self.rel = path, entry, rel
        self.crossed, self.st, self.exists = crossed, st, exists
        self.trailing = trailing  # the guest's string ended with "/"


def within(path: bytes, prefix: bytes) -> bool:
    """Is the canonical path prefix itself or below it?"""
    return path == prefix or path.startswith(prefix.rstrip(b"/") + b"/")


def rebase(path: bytes, old: bytes, new: bytes) -> bytes:
    """A path within old, moved to the same place within new."""
    tail = path[len(old.rstrip(b"/")):]
    return new.rstrip(b"/") + (b"" if tail == b"/" else tail) or b"/"


def _err(code):
    return OSError(code, os.strerror(code))


class Resolver:
    """Resolves guest paths against the responsibility table of ``hv``."""

    def __init__(self, hv) -> None:
        self.hv = hv

    def lstat_at(self, path: bytes, crossing: bool = False):
        """(entry, rel, lstat or None) of a canonical guest path (crossing: a component
        the walk goes through, whose type is what matters: a service's walk_lstat)."""
        entry, rel = self.hv.table.lookup_path(path)
        try:
            if entry is None:
                return None, rel, os.lstat(path)
            if crossing and implements(entry.service, "walk_lstat"):
                return entry, rel, self.hv.call(entry.service, "walk_lstat", rel)
            return entry, rel, self.hv.call(entry.service, "lstat", rel)
        except FileNotFoundError:
            return entry, rel, None
        except OSError as e:
            if e.errno == errno.ENOENT:
                return entry, rel, None
            raise

    def readlink_at(self, entry, rel, path):
        if entry is None:
            return os.readlink(path)
        return self.hv.call(entry.service, "readlink", rel)

    def proc_magic(self, comps: list[bytes]):
        """For /proc/{self,thread-self,PID[/task/TID]}/{cwd,fd/N}...: (how many
        components the magic link takes, the guest path it stands for) when that is a
        virtual cwd or a virtual fd of a guest thread, else (0, None)."""
        hv = self.hv
        i = 2
        who = comps[1]
        if who == b"self" or who == b"thread-self":
            t = hv.procs.get(hv.cur_tid)
        elif who.isdigit():
            t = hv.procs.get(int(who))
            if len(comps) > 3 and comps[2] == b"task" and comps[3].isdigit():
                t = hv.procs.get(int(comps[3]))
                i = 4
        else:
            return 0, None
        if t is None or len(comps) <= i:
            return 0, None
        if comps[i] == b"cwd" and not t.fs.kernel_cwd:
            return i + 1, t.fs.cwd
        if comps[i] == b"fd" and len(comps) > i + 1 and comps[i + 1].isdigit():
            vf = t.files.fds.get(int(comps[i + 1]))
            if vf is not None and vf.entry is not None:
                return i + 2, vf.path
        return 0, None

    def magic_target(self, stack: list[bytes]) -> bytes | None:
        """What the /proc symlink ``stack`` (/proc/PID[/task/TID]/...) points at in the
        guest's view: root is the view's root, cwd the thread's cwd, fd/N the file
        (virtual, or the host path of a real one, as the guest sees it); None for what
        names no path (pipes, sockets, deleted files, exe, ns...): the kernel's. Errors
        as the kernel's readlink of it (a missing fd: ENOENT)."""
        path = b"/" + b"/".join(stack)
        host = os.readlink(path)  # (the kernel's checks: a missing fd is ENOENT)
        i = 4 if len(stack) > 4 and stack[2] == b"task" else 2
        who, rest = stack[i - 1], stack[i:]
        if stack[1] == b"%d" % os.getpid():  # umvu's own links, which umvu itself may
            ids = self.hv.api.kernel_ids()   # read: as the kernel answers the guest
            if ids is None or ids[0] != 0:   # (umvu is not dumpable: root's alone)
                raise _err(errno.EACCES)
        t = self.hv.procs.get(int(who)) if who.isdigit() else None
        if rest == [b"root"]:
            return b"/"
        if rest == [b"cwd"]:
            if t is not None:
                return t.fs.cwd
        elif len(rest) == 2 and rest[0] == b"fd" and rest[1].isdigit():
            vf = t.files.fds.get(int(rest[1])) if t is not None else None
            if vf is not None:
                return vf.path if vf.entry is not None else None
        else:
            return None
        if not host.startswith(b"/") or host.endswith(b" (deleted)"):
            return None
        return self.hv.vfs.guest_of_host(host)

    def resolve(self, base: bytes, path: bytes, follow: bool = True,
                must_exist: bool = False, entry_op: bool = False) -> Resolved:
        """Resolve ``path`` (bytes) relative to the canonical directory ``base``.

        ``entry_op``: the call acts on the directory entry itself (unlink, rmdir,
        mkdir, rename, link...): a trailing slash does not make it follow a symlink."""
        if path == b"":
            raise _err(errno.ENOENT)
        trailing = path.endswith(b"/")
        if path.startswith(b"/"):
            stack: list[bytes] = []
        else:
            stack = [c for c in base.split(b"/") if c]
        # "." is kept: "x/." requires x to be a directory, as in the kernel
        todo = [c for c in path.split(b"/") if c][::-1]
        if (trailing and not entry_op) or path.endswith(b"/.") or path in (b".", b".."):
            follow = True
        links = 0
        crossed = False
        opaque = False  # the rest is a /proc magic link's business: the kernel's
        st = None
        entry, rel = None, b""
        exists = True
        while todo:
            c = todo.pop()
            if c == b".":
                continue
            if c == b"..":
                if stack and st is not None and entry is None and stat.S_ISDIR(st.st_mode) \
                        and not os.access(b"/" + b"/".join(stack), os.X_OK):
                    raise _err(errno.EACCES)  # ".." is looked up inside that directory
                if stack:
                    stack.pop()
                st = None
                continue
            if len(c) > NAME_MAX:
                raise _err(errno.ENAMETOOLONG)
            stack.append(c)
            if len(stack) == 2 and stack[0] == b"proc" and c in (b"self", b"thread-self") \
                    and (todo or follow):
                # the caller's /proc/self, not umvu's: walked on as /proc/PID[/task/TID]
                me = self.hv.procs.get(self.hv.cur_tid)
                if me is None:
                    stack, todo, opaque = stack + todo[::-1], [], True
                    break
                stack = [b"proc", b"%d" % me.process.tgid]
                if c == b"thread-self":
                    stack += [b"task", b"%d" % me.tid]
                st = None
                continue
            cur = b"/" + b"/".join(stack)
            last = not todo
            entry, rel, st = self.lstat_at(cur, crossing=not last)
            crossed = crossed or entry is not None
            if last and not follow:
                exists = st is not None
                break
            if st is None:
                if last:
                    exists = False
                    break
                raise _err(errno.ENOENT)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAXSYMLINKS:
                    raise _err(errno.ELOOP)
                if entry is None and stack[0] == b"proc":
                    target = self.magic_target(stack)
                    if target is None:
                        stack, todo, opaque = stack + todo[::-1], [], True
                        st = None
                        break
                    crossed = True
                else:
                    target = self.readlink_at(entry, rel, cur)
                if entry is not None:
                    crossed = True
                stack.pop()
                if target.startswith(b"/"):
                    stack = []
                if target.endswith(b"/"):
                    todo.append(b".")  # popped after the target: it must be a directory
                todo.extend(reversed([t for t in target.split(b"/") if t]))
                st = None
                continue
            if not last and not stat.S_ISDIR(st.st_mode):
                raise _err(errno.ENOTDIR)
        path_out = b"/" + b"/".join(stack)
        if st is None and exists and not opaque:
            entry, rel, st = self.lstat_at(path_out)  # after "..": look again
            exists = st is not None
        else:
            entry, rel = self.hv.table.lookup_path(path_out)
        crossed = crossed or entry is not None
        if trailing and st is not None and not stat.S_ISDIR(st.st_mode) and \
                not (entry_op and entry is None):  # (the kernel's "name/": EEXIST first)
            raise _err(errno.ENOTDIR)
        if must_exist and not exists:
            raise _err(errno.ENOENT)
        return Resolved(path_out, entry, rel, crossed, st, exists, trailing)
