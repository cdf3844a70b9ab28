"""Module loading and the responsibility table (VUOS's "hashtable").

Entries are keyed by kind: ``path`` (prefix), ``fstype``, ``family`` (socket),
``chrdev``/``blkdev`` (device numbers), ``syscall`` (number), ``ioctl``. For paths the
longest matching prefix wins, and among equal prefixes the newest entry. Every entry
records the module that made it, so a module's own calls can be resolved below it.
"""
from __future__ import annotations

import errno
import itertools
import os

from umvu.api import Module, capability

_seq = itertools.count(1)
NOTIFY_HOOK = 1  # Entry.flags of a "syscall" entry: its calls come as notifications
LOCAL_HOOK = 2  # ... or only where the module's own trap sends them (trap_in_process)


class Entry:
    __slots__ = ("kind", "key", "module", "service", "seq", "source", "fstype", "flags",
                 "options", "users", "mounted", "alias")

    def __init__(self, kind, key, module, service, source=b"", fstype="", flags=0,
                 options="", mounted=False):
        self.kind, self.key, self.module, self.service = kind, key, module, service
        self.mounted = mounted  # made by mount(2)/vumount (not by a module itself)
        self.seq = next(_seq)
        self.source, self.fstype, self.flags, self.options = source, fstype, flags, options
        self.users = 0  # open virtual fds and cwds inside (busy mounts refuse umount)
        self.alias = False  # an rbind copy of another mount (shares its service)


class Responsibility:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._paths: list[Entry] = []  # path entries, longest key first, newest first
        self.on_change = lambda: None  # called when path entries come or go

    def add(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        if entry.kind == "path":
            self._paths = sorted((e for e in self.entries if e.kind == "path"),
                                 key=lambda e: (-len(e.key), -e.seq))
            self.on_change()
        return entry

    def remove(self, entry: Entry) -> None:
        self.entries.remove(entry)
        if entry.kind == "path":
            self._paths = [e for e in self._paths if e is not entry]
            self.on_change()

    def path_keys(self) -> list[bytes]:
        return [e.key for e in self._paths]

    def has_paths(self) -> bool:
        return bool(self._paths)

    def lookup_path(self, path: bytes, below_seq: int | None = None):
        """(entry, path relative to it) for a canonical guest path, or (None, path).

        ``below_seq``: ignore entries of that sequence number and newer (the view a
        module has of the system: what was there before it)."""
        for e in self._paths:
            if below_seq is not None and e.seq >= below_seq:
                continue
            key = e.key
            if path == key:
                return e, b"/"
            if path.startswith(key) and (key == b"/" or path[len(key)] == 0x2F):
                excepts = capability(e.service, "excepts")
                if excepts and any(path == x or path.startswith(x + b"/") for x in excepts):
                    continue  # a hole: what is below shows through
                return e, path[len(key):] if key != b"/" else path
        return None, path

    def find(self, kind: str, key) -> Entry | None:
        best = None
        for e in self.entries:
            if e.kind == kind and e.key == key and (best is None or e.seq > best.seq):
                best = e
        return best

    def mounts(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "path"]


def load_module_class(name: str) -> type[Module]:
    """A module by short name (umvu.modules.NAME), dotted name, or file path."""
    import importlib
    import importlib.util
    if "/" in name or name.endswith(".py"):
        if not os.path.isfile(name):
            raise OSError(errno.ENOENT, "no module file %s" % name)
        spec = importlib.util.spec_from_file_location(
            "umvu_ext_" + os.path.basename(name).rsplit(".", 1)[0].replace("-", "_"), name)
        if spec is None or spec.loader is None:
            raise OSError(errno.ENOEXEC, "%s is not a Python file" % name)
        mod = importlib.util.module_from_spec(spec)
        import sys
        sys.modules[spec.name] = mod  # (as importlib does: dataclasses and others look)
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            del sys.modules[spec.name]
            raise
    else:
        if not name.replace("_", "").replace(".", "").isalnum():
            raise OSError(errno.EINVAL, "bad module name %r" % name)
        candidates = ["umvu.modules." + name] + ([name] if "." in name else [])
        mod = None
        for cand in candidates:
            try:
                mod = importlib.import_module(cand)
                break
            except ModuleNotFoundError as e:
                if e.name != cand and not cand.startswith(e.name or "\0"):
                    raise
        if mod is None:
            raise OSError(errno.ENOENT, "no module named %s" % name)
    classes = [c for c in vars(mod).values()
               if isinstance(c, type) and issubclass(c, Module) and c is not Module
               and c.__module__ == mod.__name__]
    explicit = getattr(mod, "MODULE", None)
    if explicit is not None:
        return explicit
    if len(classes) != 1:
        raise OSError(errno.ENOEXEC, "%s defines %d module classes" % (name, len(classes)))
    return classes[0]
