"""Module faults the session survives: an answer longer than the guest's buffer is
clipped (the memory after the buffer stays as it was), SystemExit and KeyboardInterrupt
from a module answer EIO with a traceback in the log, and O_PATH fds are EBADF for the
calls the kernel refuses them (a module never gets such a call without a handle)."""
import pytest

from conftest import REPO, compile_prog, run

MODULES = REPO / "tests" / "modules"


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    return compile_prog(tmp_path_factory, "canary")


def test_answers_longer_than_the_buffer_are_clipped(guest_mode, tmp_path, canary):
    log = tmp_path / "log"
    r = run(guest_mode, ["bash", "-c", f"vu_insmod {MODULES}/buggy.py && "
                         f"{canary} /buggy/greedy 16 && {canary} /buggy/plain 64"],
            umvu_opts=("-o", str(log)))
    assert r.stdout == b"read 16, canary intact\nread 10, canary intact\n", r.stderr
    assert "a read of 16 bytes got 4112 from its module; clipped" in log.read_text()


def test_base_exceptions_of_a_module_answer_eio(guest_mode, tmp_path):
    log = tmp_path / "log"
    r = run(guest_mode, ["bash", "-c", f"vu_insmod {MODULES}/buggy.py && "
                         "cat /buggy/exit; cat /buggy/interrupt; cat /buggy/plain; "
                         "echo; echo alive"], umvu_opts=("-o", str(log)))
    assert r.returncode == 0
    assert r.stdout == b"0123456789\nalive\n"
    assert r.stderr.count(b"Input/output error") == 2
    text = log.read_text()
    assert "SystemExit: 3" in text and "KeyboardInterrupt" in text


PATH_FD = r"""
import errno, os, sys
fd = os.open(sys.argv[1], os.O_PATH)
def try_(name, fn):
    try:
        fn()
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
try_("read", lambda: os.read(fd, 4))
try_("pread", lambda: os.pread(fd, 4, 0))
try_("write", lambda: os.write(fd, b"x"))
try_("fstat", lambda: os.fstat(fd))
try_("fchmod", lambda: os.fchmod(fd, 0o600))
try_("fsync", lambda: os.fsync(fd))
try_("ftruncate", lambda: os.ftruncate(fd, 0))
try_("lseek", lambda: os.lseek(fd, 0, 0))
try_("dup", lambda: os.close(os.dup(fd)))
try_("listxattr", lambda: os.listxattr(fd))
"""


def test_o_path_fds_as_the_kernel(guest_mode, tmp_path):
    (tmp_path / "prog.py").write_text(PATH_FD)
    host = tmp_path / "f"
    host.write_text("0123456789")
    native = run("native", ["python3", str(tmp_path / "prog.py"), str(host)])
    guest = run(guest_mode, ["bash", "-c", f"vu_insmod {MODULES}/buggy.py && "
                             f"python3 {tmp_path}/prog.py /buggy/plain"])
    assert native.returncode == 0, native.stderr
    assert guest.stdout == native.stdout, guest.stderr
