"""vufusememfs keeps a file's data in pages made when first written (issue: the kernel's
file semantics, cause 10): holes cost nothing and read as zeros, st_blocks counts what
was written, a write at 2 GiB works; the capacity (size=) bounds what is written, a
write past it is short and then ENOSPC, as tmpfs's. Also the argument checks the kernel
makes before any file system sees a call (statx, readv/writev: the extras of that issue).
Each natively (a host directory; the capacity on a tmpfs of the same size, as root) and
in a memfs mount."""
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import REPO, run

HOLES = r"""
dd if=/dev/zero of=f bs=1 count=1 seek=2G status=none; stat -c '%s %b' f
tail -c 1 f | od -An -tx1
truncate -s 5G g; stat -c '%s %b' g
printf abc | dd of=g bs=1 seek=4097 conv=notrunc status=none; stat -c '%s %b' g
dd if=g bs=1 skip=4096 count=5 status=none | od -An -c
truncate -s 4098 g; stat -c '%s %b' g; od -An -c g | tail -2
truncate -s 8192 g; dd if=g bs=1 skip=4096 count=4 status=none | od -An -c
rm f g; echo done
"""

FULL = r"""
dd if=/dev/zero of=big bs=64k count=32 2>&1 | head -1 | sed 's/.*: //'
stat -c '%s' big
echo more >> big; echo append=$?
rm big && dd if=/dev/zero of=again bs=64k count=8 status=none; echo again=$?
"""


@pytest.mark.parametrize("script", [HOLES], ids=["holes"])
def test_holes_as_natively(tmp_path, guest_mode, script):
    (tmp_path / "n").mkdir()
    (tmp_path / "m").mkdir()
    native = run("native", ["bash", "-c", script], cwd=tmp_path / "n")
    assert native.returncode == 0, native.stderr
    guest = run(guest_mode, ["bash", "-c", "vu_insmod vufuse && vumount -t vufusememfs "
                             f"none {tmp_path}/m && cd {tmp_path}/m && {script}"])
    assert guest.returncode == 0, guest.stderr
    assert guest.stdout == native.stdout
    assert guest.stdout.decode().endswith("done\n")


@pytest.mark.skipif(os.getuid() != 0, reason="the native side is a tmpfs mount")
def test_capacity_as_a_tmpfs_of_that_size(tmp_path, guest_mode):
    top = tempfile.mkdtemp(dir=tmp_path)
    os.mkdir(top + "/t")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "none", top + "/t"],
                   check=True)
    try:
        native = run("native", ["bash", "-c", FULL], cwd=top + "/t")
    finally:
        subprocess.run(["umount", top + "/t"], check=True)
    assert native.stdout.decode().splitlines()[0] == "No space left on device"
    os.mkdir(top + "/m")
    guest = run(guest_mode, ["bash", "-c", "vu_insmod vufuse && vumount -t vufusememfs "
                             f"-o size=1M none {top}/m && cd {top}/m && {FULL}"])
    assert guest.returncode == native.returncode, guest.stderr
    assert guest.stdout == native.stdout


CHECKS = REPO / "tests" / "progs" / "call_checks.py"


def test_argument_checks_as_the_kernels(tmp_path, guest_mode):
    """statx's flags and mask, readv/writev's lengths: refused (EINVAL, EFAULT) or cut
    (MAX_RW_COUNT) in a memfs mount as natively, before the module sees anything."""
    (tmp_path / "n").mkdir()
    (tmp_path / "m").mkdir()
    native = run("native", ["python3", str(CHECKS)], cwd=tmp_path / "n")
    assert native.returncode == 0, native.stderr
    assert b"EINVAL" in native.stdout and b"EFAULT" in native.stdout
    guest = run(guest_mode, ["bash", "-c", "vu_insmod vufuse && vumount -t vufusememfs "
                             f"none {tmp_path}/m && cd {tmp_path}/m && python3 {CHECKS}"])
    assert guest.returncode == 0, guest.stderr
    assert guest.stdout == native.stdout


NOATIME = r"""
import errno, os, sys
for name in ("mine", "roots"):
    try:
        os.close(os.open(name, os.O_RDONLY | os.O_NOATIME))
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
"""


@pytest.mark.skipif(os.getuid() != 0, reason="two users: root's file, nobody's")
def test_o_noatime_only_for_the_owner(guest_mode):
    top = tempfile.mkdtemp(prefix="umvu-noatime-")  # (pytest's are root's only)
    try:
        os.chmod(top, 0o755)
        with open(top + "/p.py", "w") as f:
            f.write(NOATIME)
        os.chmod(top + "/p.py", 0o644)
        script = ("touch roots && chmod 644 roots && touch mine && chown nobody mine && "
                  f"setpriv --reuid=65534 --regid=65534 --clear-groups python3 {top}/p.py")
        os.mkdir(top + "/n", 0o755)
        os.mkdir(top + "/m")
        native = run("native", ["bash", "-c", script], cwd=top + "/n")
        assert native.stdout == b"mine ok\nroots EPERM\n", native.stderr
        guest = run(guest_mode, ["bash", "-c", "vu_insmod vufuse && vumount -t "
                                 f"vufusememfs none {top}/m && chmod 755 {top}/m && "
                                 f"cd {top}/m && {script}"])
        assert guest.stdout == native.stdout, guest.stderr
    finally:
        shutil.rmtree(top, ignore_errors=True)
