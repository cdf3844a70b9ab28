"""The guest's /proc/mounts and /proc/PID/mountinfo: the kernel's table with the virtual
mounts after it."""
from __future__ import annotations

from umvu.api import capability


def proc_mounts(table, t, mountinfo: bool) -> bytes:
    """The mounts (or mountinfo) file thread t reads: the kernel's, then one line per
    path entry of the responsibility table."""
    name = "mountinfo" if mountinfo else "mounts"
    try:
        with open("/proc/%d/%s" % (t.tid, name), "rb") as f:
            real = f.read()
    except OSError:
        real = b""
    lines = []
    for e in table.mounts():
        opts = options_shown(e)
        src = _octal_escape(e.source or b"none")
        dst = _octal_escape(e.key)
        fstype = (capability(e.service, "shown_fstype") or e.fstype or "vu").encode()
        if mountinfo:
            lines.append(b"%d 1 0:%d / %s %s - %s %s %s\n" % (
                100000 + e.seq, 200 + e.seq, dst, opts.split(",")[0].encode(), fstype,
                src, opts.encode()))
        else:
            lines.append(b"%s %s %s %s 0 0\n" % (src, dst, fstype, opts.encode()))
    return real + b"".join(lines)


def options_shown(e) -> str:
    """A mount's options as /proc/mounts and vuctl mounts show them: ro or rw as the
    mount holds (its service's readonly, whatever the options asked), then the rest."""
    ro = e.flags & 1 or capability(e.service, "readonly", False)
    options = capability(e.service, "shown_options", e.options)
    return ("ro" if ro else "rw") + ("," + options if options else "")


def _octal_escape(path: bytes) -> bytes:
    out = bytearray()
    for ch in path:
        if ch in b" \t\n\\":
            out += b"\\%03o" % ch
        else:
            out.append(ch)
    return bytes(out)
