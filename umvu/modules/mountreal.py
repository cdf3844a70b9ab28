"""mountreal (VUOS test module): ``vumount -t mountreal [-o ro] HOSTDIR TARGET`` shows
the host directory HOSTDIR at TARGET, every operation done by umvu itself."""
from __future__ import annotations

import errno
import os

from umvu.api import Module, parse_options
from umvu.modules.unreal import HostTree


class MountReal(Module):
    name = "mountreal"
    description = "mount a host directory (VUOS test module)"
    filesystems = ("mountreal",)

    def mount(self, source, target, fstype, flags, options):
        opts = parse_options(options, {"ro": bool, "rw": bool})
        if not os.path.isdir(source):
            raise OSError(errno.ENOTDIR, "source is not a host directory")
        return HostTree(source, readonly=bool(flags & 1 or opts.get("ro")))
