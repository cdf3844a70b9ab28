"""The one place where module results and exceptions become syscall return values."""
from __future__ import annotations

import errno

from umvu.core.log import log


# the kernel's own restart codes, seen as results at a syscall-exit stop (not in errno):
# ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND make the kernel run the same call again
# with the registers as they are then (ERESTART_RESTARTBLOCK, 516, runs restart_syscall)
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND = 512, 513, 514
RESTARTS = (-ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND)


# what gives up a call that waits (umvu.core.waiting): not an error, passed on
CANCELLATIONS: tuple = ()


def call_to_retval(fn, *args) -> int | object:
    """Call ``fn(*args)``; OSError -> -errno; any other exception (BaseException too:
    SystemExit, KeyboardInterrupt) -> logged, -EIO; a cancellation passes.

    A non-integer result is returned unchanged (the caller encodes it).
    """
    try:
        return fn(*args)
    except OSError as e:
        return -(e.errno or errno.EIO)
    except BaseException as e:  # a module bug must not kill the guest or umvu
        if isinstance(e, CANCELLATIONS):
            raise
        import traceback
        log.error("module error in %s, answering EIO:\n%s",
                  getattr(fn, "__qualname__", fn), traceback.format_exc().rstrip())
        return -errno.EIO

