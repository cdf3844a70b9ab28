"""lseek's SEEK_DATA and SEEK_HOLE in module file systems as on the kernel's:
vufusememfs against tmpfs (pages never written are holes), vufuseext2 against a native
ext4 directory (the image's block map; a 4 KiB-block image, as the host's), and fuse2fs
inside umvu's fuse module against fuse2fs on kernel FUSE (a daemon without FUSE_LSEEK:
the kernel's generic answer) — tests/progs/seek_probe.py's answers compared."""
import os
import subprocess
import tempfile

import pytest

from conftest import BASE_ENV, REPO, run

PROBE = "/usr/bin/python3 %s " % (REPO / "tests" / "progs" / "seek_probe.py")


def native(where):
    r = subprocess.run(PROBE + where, shell=True, capture_output=True, env=BASE_ENV)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def image(tmp_path):
    img = str(tmp_path / "disk.img")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", img, "32M"], check=True)
    return img


@pytest.mark.parametrize("mode", ["umvu", "umvu-S"])
def test_memfs_as_tmpfs(tmp_path, mode):
    shm = tempfile.mkdtemp(dir="/dev/shm")
    try:
        expected = native(shm)
    finally:
        subprocess.run(["rm", "-rf", shm], check=True)
    assert b"1048576 DATA=1048576 HOLE=1052672\n" in expected
    (tmp_path / "m").mkdir()
    g = run(mode, ["bash", "-c", "vu_insmod vufuse && vumount -t vufusememfs none %s && %s%s"
                   % (tmp_path / "m", PROBE, tmp_path / "m")], env=BASE_ENV)
    assert g.returncode == 0, g.stderr.decode()
    assert g.stdout == expected


@pytest.mark.parametrize("mode", ["umvu", "umvu-S"])
def test_ext2_as_ext4(tmp_path, mode):
    (tmp_path / "n").mkdir()
    (tmp_path / "m").mkdir()
    expected = native(str(tmp_path / "n"))
    img = image(tmp_path)
    g = run(mode, ["bash", "-c", "vu_insmod vufuse && vumount -t vufuseext2 -o rw+ %s %s && "
                   "%s%s" % (img, tmp_path / "m", PROBE, tmp_path / "m")], env=BASE_ENV)
    assert g.returncode == 0, g.stderr.decode()
    assert g.stdout == expected
    assert subprocess.run(["e2fsck", "-fn", img], capture_output=True).returncode == 0


def test_fuse_daemon_as_on_kernel_fuse(tmp_path):
    img = image(tmp_path)
    (tmp_path / "m").mkdir()
    mnt = tmp_path / "m"
    r = subprocess.run("fuse2fs %s %s && %s%s; fusermount -u %s" % (img, mnt, PROBE, mnt, mnt),
                       shell=True, capture_output=True, env=BASE_ENV)
    assert r.returncode == 0, r.stderr.decode()
    g = run("umvu", ["bash", "-c", "vu_insmod fuse && fuse2fs %s %s && %s%s; vuumount %s"
                     % (img, mnt, PROBE, mnt, mnt)], env=BASE_ENV)
    assert g.returncode == 0, g.stderr.decode()
    assert g.stdout == r.stdout
