"""The one place where module results and exceptions become syscall return values."""
from __future__ import annotations

import errno
import logging

log = logging.getLogger("umvu")


def call_to_retval(fn, *args) -> int | object:
    """Call ``fn(*args)``; OSError -> -errno; any other exception -> logged, -EIO.

    A non-integer result is returned unchanged (the caller encodes it).
    """
    try:
        return fn(*args)
    except OSError as e:
        return -(e.errno or errno.EIO)
    except Exception:  # a module bug must not kill the guest or umvu
        import traceback
        log.error("module error in %s, answering EIO:\n%s",
                  getattr(fn, "__qualname__", fn), traceback.format_exc().rstrip())
        return -errno.EIO


def errno_of(exc: BaseException) -> int:
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return errno.EIO
