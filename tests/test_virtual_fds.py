"""Virtual fds behave like the kernel's fds (issue: modules framework, virtual fds)."""
import os
import subprocess

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


def test_fd_tables_shared_and_copied(tmp_path, guest_mode):
    """Calls on a real fd stop nowhere; on a virtual one the caller's process traps them
    from the moment it has it: a CLONE_FILES process, threads, a forked child, and one
    process with more virtual fds than per-fd filters (memfs files, read by a C
    program)."""
    prog = tmp_path / "sharedfds"
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(prog),
                    str(REPO / "tests" / "progs" / "sharedfds.c")], check=True)
    native_dir = tmp_path / "n"
    native_dir.mkdir()
    make = "; ".join("printf 'file %d\\n' > f%d" % (i, i) for i in range(20))
    subprocess.run(["sh", "-c", make], cwd=native_dir, check=True)
    native = run("native", [str(prog), str(native_dir)])
    mnt = tmp_path / "m"
    mnt.mkdir()
    guest = run(guest_mode, ["sh", "-c", "vu_insmod vufuse && vumount -t vufusememfs none "
                             "%s && cd %s && %s && %s %s" % (mnt, mnt, make, prog, mnt)])
    assert native.returncode == 0 and guest.returncode == 0, guest.stderr
    lines = native.stdout.decode().splitlines()
    assert "shared offset read: l" in lines and len(lines) == 45, lines
    assert guest.stdout.decode().splitlines() == lines
