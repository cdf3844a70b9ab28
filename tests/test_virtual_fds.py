"""Virtual fds behave like the kernel's fds (issue: modules framework, virtual fds)."""
import os

from conftest import REPO, run

PROG = str(REPO / "tests" / "progs" / "vfd.py")


def test_virtual_fds_match_kernel(tmp_path, guest_mode):
    native_dir, guest_dir = tmp_path / "n", tmp_path / "g"
    native_dir.mkdir()
    guest_dir.mkdir()
    native = run("native", ["python3", PROG, str(native_dir)])
    guest = run(guest_mode, ["bash", "-c", "vu_insmod unreal && python3 %s /unreal%s"
                             % (PROG, guest_dir)])
    assert native.returncode == 0, native.stderr
    assert guest.returncode == 0, guest.stderr
    n_lines = native.stdout.decode().splitlines()
    assert len(n_lines) >= 29
    assert guest.stdout.decode().splitlines() == n_lines
    # and the files landed on the host, through the module
    assert (guest_dir / "data").read_bytes() == (native_dir / "data").read_bytes()
    assert sorted(os.listdir(guest_dir / "dir")) == ["a", "b", "c"]
