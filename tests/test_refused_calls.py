"""Calls a view cannot hold against are refused once a module is loaded, with one line
in the log: io_uring (its submissions open, write and rename files with no syscall umvu
sees; a ring made before the module too) and open_by_handle_at; before any module they
run as natively."""
import os

from conftest import run

URING = r"""
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def result(r):
    return "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
params = ctypes.create_string_buffer(120)
ring = libc.syscall(425, 8, params)
print("setup", result(ring))
if len(sys.argv) > 1:
    os.system(sys.argv[1])
print("enter", result(libc.syscall(426, ring, 0, 0, 0, None, 0)))
print("setup again", result(libc.syscall(425, 8, ctypes.create_string_buffer(120))))
"""


def test_io_uring_is_refused_once_a_module_is_loaded(guest_mode, tmp_path):
    prog = tmp_path / "uring.py"
    prog.write_text(URING)
    native = run("native", ["python3", str(prog)])
    assert native.stdout == b"setup ok\nenter ok\nsetup again ok\n"
    plain = run(guest_mode, ["python3", str(prog)])
    assert plain.stdout == native.stdout
    log = tmp_path / "log"
    guest = run(guest_mode, ["python3", str(prog), "vu_insmod unreal"],
                umvu_opts=("-o", str(log)))
    assert guest.stdout == b"setup ok\nenter ENOSYS\nsetup again ENOSYS\n"
    text = log.read_text()
    assert "io_uring_enter refused while modules are loaded" in text
    assert text.count("io_uring_setup refused") == 1


def test_io_uring_is_refused_for_an_unprivileged_user(as_user):
    prog = as_user.work / "uring.py"
    prog.write_text(URING)
    os.chmod(prog, 0o644)
    guest = as_user(["python3", str(prog), "vu_insmod unreal"])
    assert guest.stdout == b"setup ok\nenter ENOSYS\nsetup again ENOSYS\n", guest.stderr
