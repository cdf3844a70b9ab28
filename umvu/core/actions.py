"""What a handler (or a module's syscall hook) answers for a guest call, besides a
result: let the kernel do it (``None``), the kernel with changes (:class:`Native`), or
"dispatch it as usual" (:data:`PASS`, from a hook)."""
from __future__ import annotations

PASS = object()  # a syscall hook's answer: "dispatch this call as usual"


class Native:
    """Run the call in the kernel (with new args, or as syscall nr), then on_exit(ret).
    grant (opener, flags, by_socket): the call's result is a new fd; where the thread
    waits in a seccomp notification the hypervisor gives it opener()'s host fd directly
    (flags: O_CLOEXEC) instead of running the call; at a ptrace stop too, over a socket,
    when by_socket (the call as rewritten could not make it: a memfd of umvu's)."""
    __slots__ = ("args", "on_exit", "nr", "grant")

    def __init__(self, args=None, on_exit=None, nr=None, grant=None):
        self.args, self.on_exit, self.nr, self.grant = args, on_exit, nr, grant
