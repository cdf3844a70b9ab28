"""As an ordinary user (nobody): a qcow2 VM disk partitioned, formatted and mounted with
vufuseext2; an archive and a FAT image mounted; an arm64 program run through vubinfmt
and qemu-user-static. No root, no kernel FUSE, no loop devices, no binfmt_misc."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tarfile

import pytest

DEBS = glob.glob("/var/cache/umvu/busybox-static_*_arm64.deb")
QEMU_RULE = (r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00"
             r"\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff"
             r"\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F")


def give(path):
    """path made nobody's, in nobody's work directory."""
    subprocess.run(["chown", "-R", "nobody", str(path)], check=True)
    return path


def test_vm_disk_archive_and_fat_as_nobody(as_user):
    work = as_user.work / "images"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    give(work)
    subprocess.run(["runuser", "-u", "nobody", "--", "qemu-img", "create", "-q", "-f",
                    "qcow2", str(work / "vm.qcow2"), "256M"], check=True)
    src = work / "src"
    src.mkdir()
    (src / "hello.txt").write_text("hello from the archive\n")
    with tarfile.open(work / "t.tar.gz", "w:gz") as tf:
        tf.add(src, arcname=".")
    subprocess.run(["truncate", "-s", "40M", str(work / "fat.img")], check=True)
    subprocess.run(["mkfs.vfat", str(work / "fat.img")], check=True, capture_output=True)
    give(work)
    script = """set -e
        cd %s
        id -u
        vu_insmod vudev vufuse
        vumount -t vudevqcow2 vm.qcow2 /dev/hda
        /usr/sbin/sgdisk -n 1:2048:0 /dev/hda > /dev/null
        /usr/sbin/mkfs.ext4 -q /dev/hda1
        mkdir -p m a f
        vumount -t vufuseext2 -o rw+ /dev/hda1 m
        echo on the vm disk > m/new.txt; cat m/new.txt
        vuumount m; vuumount /dev/hda
        vumount -t vufusearchive t.tar.gz a; cat a/hello.txt
        vumount -t vufusefatfs -o rw+ fat.img f; echo fat > "f/A Long Name.txt"; vuumount f
        """ % work
    r = as_user(["bash", "-c", script], timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert r.stdout.decode().splitlines() == ["65534", "on the vm disk",
                                              "hello from the archive"]
    check = subprocess.run(["qemu-img", "check", str(work / "vm.qcow2")], capture_output=True)
    assert check.returncode == 0, check.stdout
    got = subprocess.run(["mtype", "-i", str(work / "fat.img"), "::/A Long Name.txt"],
                         capture_output=True, check=True).stdout
    assert got == b"fat\n"


@pytest.mark.skipif(not DEBS or shutil.which("qemu-aarch64-static") is None,
                    reason="make setup installs qemu-user-static and busybox:arm64")
def test_arm64_program_as_nobody(as_user):
    work = as_user.work / "arm"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    subprocess.run(["dpkg-deb", "-x", DEBS[0], str(work)], check=True)
    give(work)
    b = "/proc/sys/fs/binfmt_misc"
    script = ("set -e; vu_insmod vubinfmt; vumount -t vubinfmt none %s; "
              "echo '%s' > %s/register; %s/bin/busybox sh -c 'uname -m; id -u'"
              % (b, QEMU_RULE, b, work))
    r = as_user(["bash", "-c", script], timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert r.stdout.decode().split() == ["aarch64", "65534"]
    assert not os.path.isdir(b) or os.listdir(b) == []
