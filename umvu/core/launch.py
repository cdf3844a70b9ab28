"""Starting the guest before the hypervisor.

The guest is spawned as soon as umvu has read its options, and while no module is loaded
the C loop follows it alone: clone, exec and exit events only update the process tree the
C loop keeps (as the kernel shares fs, fd tables and memory). The hypervisor is imported
and built only when an event needs it (the knock of a vu_* command, or with a filter a
virtual syscall or a call of a foreign ABI), from that tree; a session that never loads a
module never imports it. The ``umvu`` program (csrc/umvu_main.c) does the same before
any Python runs, and starts the interpreter only then (``Launch.handed_over``).
"""
from __future__ import annotations

from umvu.core.tracer import Tracer


class Launch:
    """follow_in_c False (every call shown by -d s): the hypervisor sees every event.
    spin_ns: how long the C loop polls for the next stop before it sleeps (0: never,
    negative: the default for the CPUs umvu may use)."""

    def __init__(self, noseccomp: bool, follow_in_c: bool = True, spin_ns: int = -1) -> None:
        self.tracer = Tracer()
        self.noseccomp = noseccomp
        self.follow_in_c = follow_in_c
        self.spin_ns = spin_ns
        # followed in C: no seccomp filter at all (no syscall pays for one) until a vu_*
        # command knocks; the hypervisor then gives every process the filter it needs
        self.filtered = noseccomp or not follow_in_c

    @classmethod
    def handed_over(cls) -> "Launch":
        """The launch the umvu program made in C, followed until the event now waiting
        in ``tracer.event``."""
        launch = cls(noseccomp=False)
        launch.tracer.take_handed_over()
        return launch

    @property
    def guest_umask(self) -> int:
        return self.tracer.guest_umask()

    def start(self, argv: list[bytes]) -> None:
        """Spawn the guest (umvu ignores the terminal's signals from then on)."""
        self.tracer.launch(argv, self.noseccomp, self.follow_in_c, self.spin_ns)

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
        return self.tracer.exit_code()
