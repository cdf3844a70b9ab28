"""O_DIRECT in module file systems as the kernel's driver of what they show: vufuseext2
(an ext4 on a loop device of the image: offsets, buffers and lengths aligned to 512
bytes, else EINVAL) against a native ext4 directory, vufusememfs against tmpfs (no
alignment asked) — tests/progs/odirect_probe.py's answers compared step by step."""
import os
import subprocess
import tempfile

import pytest

from conftest import BASE_ENV, REPO, run
from test_vufuseext2 import mkfs

PROBE = "/usr/bin/python3 %s " % (REPO / "tests" / "progs" / "odirect_probe.py")


def native(where):
    r = subprocess.run(PROBE + where, shell=True, capture_output=True, env=BASE_ENV)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


@pytest.mark.parametrize("mode", ["umvu", "umvu-S"])
def test_ext4_alignment(tmp_path, mode):
    (tmp_path / "n").mkdir()
    (tmp_path / "m").mkdir()
    expected = native(str(tmp_path / "n"))
    assert b"offset 100 EINVAL\n" in expected and b"buffer+512 512\n" in expected
    image = str(tmp_path / "disk.img")
    mkfs(image, size="16M")
    g = run(mode, ["bash", "-c", "vu_insmod vufuse && vumount -t vufuseext2 -o rw+ %s %s "
                   "&& %s%s && stat -f -c %%T %s" % (image, tmp_path / "m", PROBE,
                                                    tmp_path / "m", tmp_path / "m")],
            env=BASE_ENV)
    assert g.returncode == 0, g.stderr.decode()
    assert g.stdout == expected + b"ext2/ext3\n"  # (and statfs's magic is ext4's)


@pytest.mark.parametrize("mode", ["umvu", "umvu-S"])
def test_memfs_as_tmpfs(tmp_path, mode):
    shm = tempfile.mkdtemp(dir="/dev/shm")
    try:
        expected = native(shm)
    finally:
        subprocess.run(["rm", "-rf", shm], check=True)
    assert b"offset 100 4096\n" in expected
    (tmp_path / "m").mkdir()
    g = run(mode, ["bash", "-c", "vu_insmod vufuse && vumount -t vufusememfs none %s && %s%s"
                   % (tmp_path / "m", PROBE, tmp_path / "m")], env=BASE_ENV)
    assert g.returncode == 0, g.stderr.decode()
    assert g.stdout == expected
