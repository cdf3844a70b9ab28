"""read(2) of argv[1] (a file a FUSE daemon stalls on) by libc itself, a SIGUSR1 handler
installed with SA_RESTART: what the read answered, and then that the handler ran
(tests/test_fuse.py sends the signal once the daemon has the READ)."""
import ctypes
import errno
import os
import signal
import sys

got = []
signal.signal(signal.SIGUSR1, lambda sig, frame: got.append(sig))
signal.siginterrupt(signal.SIGUSR1, False)  # (SA_RESTART)
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY)
buf = ctypes.create_string_buffer(100)
n = libc.read(fd, buf, 100)
print("read", buf.raw[:n] if n >= 0 else errno.errorcode[ctypes.get_errno()], flush=True)
signal.pthread_sigmask(signal.SIG_SETMASK, [])  # (a checkpoint: the handler has run)
print("handler ran", got == [signal.SIGUSR1])
