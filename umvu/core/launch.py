"""Starting the guest before the hypervisor.

The guest is spawned as soon as umvu has read its options, and while no module is loaded
the C loop follows it alone: clone, exec and exit events only update the process tree the
C loop keeps (as the kernel shares fs, fd tables and memory). The hypervisor is imported
and built only when an event needs it (a virtual syscall such as vu_insmod's, a call of a
foreign ABI), from that tree; a session that never loads a module never imports it.
"""
from __future__ import annotations

import os

from umvu.core.tracer import Tracer

EMPTY_FILTER = bytes(8)  # no syscall numbers: only virtual ones and foreign ABIs trap


class Launch:
    """follow_in_c False (every call shown by -d s): the hypervisor sees every event.
    spin_ns: how long the C loop polls for the next stop before it sleeps (0: never)."""

    def __init__(self, noseccomp: bool, follow_in_c: bool = True, spin_ns: int = 0) -> None:
        self.tracer = Tracer()
        self.spin_ns = spin_ns
        # followed in C: no seccomp filter at all (no syscall pays for one) until a vu_*
        # command knocks; the hypervisor then gives every process the filter it needs
        self.filtered = noseccomp or not follow_in_c
        self.noseccomp = noseccomp
        self.follow_in_c = follow_in_c
        self.guest_umask = 0o022

    def start(self, argv: list[bytes]) -> None:
        self.guest_umask = os.umask(0o022)  # the guest starts with umvu's own
        os.umask(self.guest_umask)
        try:  # (umvu ignores the terminal's signals from here: the C side does it)
            self.tracer.spawn(argv, EMPTY_FILTER, self.noseccomp,
                              guest_umask=self.guest_umask, nofilter=not self.filtered)
        except OSError:
            self.restore()
            raise
        # -S: every call stops, and the C loop lets by those no module wants (all, now)
        self.tracer.set_wanted(EMPTY_FILTER, self.noseccomp and self.follow_in_c)
        self.tracer.set_autonomous(self.follow_in_c)
        self.tracer.set_spin(self.spin_ns)

    def follow(self) -> bool:
        """Follow the guest in C; True when an event needs the hypervisor (it waits in
        ``tracer.event``), False when the guest tree is over."""
        if not self.follow_in_c:
            return True
        return self.tracer.run_autonomous()

    def restore(self) -> None:
        self.tracer.restore_signals()

    def exit_code(self) -> int:
        """The main guest process's status as a shell reports it."""
        status = self.tracer.main_status()
        if status is None:
            return 1
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)
