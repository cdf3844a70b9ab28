"""vudevqcow2 and vudevvdi: VM disk images made by qemu-img as vudev disks, partitioned and
formatted inside umvu; qemu-img (check, convert) is the oracle on the host. Backing
files, compressed images and a corrupt one."""
from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess

import pytest

from conftest import run

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None,
                                reason="qemu-utils is installed by make setup")


def sha(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_listing(top) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            out.append("%s %s" % (os.path.relpath(p, top), sha(p)))
    return out


def first_partition(tmp_path, image, mib: int):
    """On the host: the image qemu-img checks clean, converted to raw; its partition
    at sector 2048 (mib MiB) cut out as a file, e2fsck -fn clean. Returns (raw, part)."""
    check = subprocess.run(["qemu-img", "check", str(image)], capture_output=True)
    assert check.returncode == 0 and b"No errors were found" in check.stdout, check.stdout
    raw = tmp_path / "vm.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)], check=True)
    part = tmp_path / "p1.img"
    with open(raw, "rb") as f, open(part, "wb") as out:
        f.seek(2048 * 512)
        out.write(f.read(mib << 20))
    fsck = subprocess.run(["e2fsck", "-fn", str(part)], capture_output=True)
    assert fsck.returncode == 0, fsck.stdout.decode()
    return raw, part


def dumped(tmp_path, part, what: str):
    """debugfs's rdump of what (a directory of the ext4 part) into a new directory."""
    dump = tmp_path / "dump"
    dump.mkdir()
    subprocess.run(["debugfs", "-R", "rdump %s %s" % (what, dump), str(part)], check=True,
                   capture_output=True)
    return dump


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    top = tmp_path_factory.mktemp("imgtree") / "t"
    shutil.copytree("/usr/share/doc/coreutils", top / "coreutils")
    (top / "blob").write_bytes(os.urandom(3 << 20))
    (top / "deep" / "er").mkdir(parents=True)
    (top / "deep" / "er" / "leaf").write_text("leaf\n")
    return top


@pytest.mark.parametrize("fmt", ["qcow2", "vdi"])
def test_partitioned_formatted_image_checks_clean(tmp_path, tree, fmt):
    """qemu-img create; inside umvu: the image as /dev/hda, two GPT partitions, an ext4
    with the tree on the first; on the host: qemu-img check finds no errors, and the raw
    disk qemu-img converts it to has the partitions and an e2fsck-clean ext4 holding the
    tree."""
    image = tmp_path / ("vm." + fmt)
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(image), "1G"], check=True)
    script = ("set -e; vu_insmod vudev; vumount -t vudev%s %s /dev/hda; "
              "/usr/sbin/sgdisk -n 1:2048:+300M -n 2:0:+100M /dev/hda > /dev/null; "
              "/usr/sbin/mkfs.ext4 -q -d %s /dev/hda1; vuumount /dev/hda"
              % (fmt, image, tree))
    r = run("umvu", ["bash", "-c", script], cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    raw, part = first_partition(tmp_path, image, 300)
    table = subprocess.run(["sgdisk", "-p", str(raw)], capture_output=True, check=True)
    assert b"   1            2048          616447" in table.stdout
    assert b"   2          616448          821247" in table.stdout
    dump = dumped(tmp_path, part, "/")
    shutil.rmtree(dump / "lost+found")
    assert tree_listing(dump) == tree_listing(tree)


def test_qcow2_backing_file_and_compressed(tmp_path):
    """An overlay reads its backing file's data and takes the writes, the backing file
    unchanged; a compressed image (qemu-img convert -c) reads back equal to its raw
    source."""
    base = tmp_path / "base.raw"
    data = os.urandom(4 << 20) + bytes(4 << 20) + os.urandom(8 << 20)
    base.write_bytes(data)
    before = sha(base)
    over = tmp_path / "over.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "raw",
                    str(over)], check=True)
    comp = tmp_path / "comp.qcow2"
    subprocess.run(["qemu-img", "convert", "-c", "-O", "qcow2", str(base), str(comp)],
                   check=True)
    script = """set -e
        vu_insmod vudev
        vumount -t vudevqcow2 over.qcow2 /dev/hda
        cat /dev/hda | sha256sum | cut -d' ' -f1
        printf 'overlay' | dd of=/dev/hda bs=1 seek=100000 conv=notrunc status=none
        head -c 9000000 /dev/zero | tr '\\0' 'z' | dd of=/dev/hda bs=4096 seek=1000 \\
            conv=notrunc status=none
        vuumount /dev/hda
        vumount -t vudevqcow2 -o ro comp.qcow2 /dev/hdb
        cat /dev/hdb | sha256sum | cut -d' ' -f1
        """
    r = run("umvu", ["bash", "-c", script], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    lines = r.stdout.decode().split()
    assert lines == [hashlib.sha256(data).hexdigest()] * 2
    assert sha(base) == before  # (the backing file is read, never written)
    check = subprocess.run(["qemu-img", "check", str(over)], capture_output=True)
    assert check.returncode == 0, check.stdout
    out = tmp_path / "over.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(over), str(out)], check=True)
    want = bytearray(data)
    want[100000:100007] = b"overlay"
    want[4096000:4096000 + 9000000] = b"z" * 9000000
    assert out.read_bytes() == bytes(want)


def test_qcow2_with_a_snapshot(tmp_path):
    """Writes over clusters a snapshot shares: copied first, the snapshot's data and
    every refcount left as qemu-img check wants them; the snapshot listed in the log."""
    image = tmp_path / "sn.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x11 0 8M", str(image)], check=True,
                   capture_output=True)
    subprocess.run(["qemu-img", "snapshot", "-c", "before", str(image)], check=True)
    script = """set -e
        vu_insmod vudev
        vumount -t vudevqcow2 sn.qcow2 /dev/hda
        printf changed | dd of=/dev/hda bs=1 seek=1000 conv=notrunc status=none
        head -c 2000000 /dev/zero | tr '\\0' q | dd of=/dev/hda bs=4096 seek=256 \\
            conv=notrunc status=none
        vuumount /dev/hda
        """
    r = run("umvu", ["bash", "-c", script], cwd=tmp_path, timeout=120,
            umvu_opts=("-l", "info"))
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert b"has snapshots before" in r.stderr
    check = subprocess.run(["qemu-img", "check", str(image)], capture_output=True)
    assert check.returncode == 0 and b"No errors were found" in check.stdout, check.stdout
    old, new = tmp_path / "old.raw", tmp_path / "new.raw"
    subprocess.run(["qemu-img", "convert", "-l", "snapshot.name=before", "-O", "raw",
                    str(image), str(old)], check=True)
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(new)], check=True)
    assert old.read_bytes() == b"\x11" * (8 << 20) + bytes(56 << 20)
    want = bytearray(old.read_bytes())
    want[1000:1007] = b"changed"
    want[1 << 20:(1 << 20) + 2000000] = b"q" * 2000000
    assert new.read_bytes() == bytes(want)


def test_corrupt_qcow2_is_refused_and_the_session_lives(tmp_path):
    image = tmp_path / "bad.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x55 0 1M", str(image)], check=True,
                   capture_output=True)
    with open(image, "r+b") as f:
        l1_off = struct.unpack(">Q", (f.seek(40), f.read(8))[1])[0]
        f.seek(l1_off)
        f.write(os.urandom(4096))
    (tmp_path / "notimg").write_bytes(os.urandom(1 << 16))
    script = """
        vu_insmod vudev
        vumount -t vudevqcow2 bad.qcow2 /dev/hda; echo "mount $?"
        [ -e /dev/hda ] && { cat /dev/hda > /dev/null; echo "read $?"; }
        vumount -t vudevqcow2 notimg /dev/hdb; echo "junk $?"
        vumount -t vudevvdi notimg /dev/hdc; echo "vdi junk $?"
        echo alive
        """
    r = run("umvu", ["bash", "-c", script], cwd=tmp_path, timeout=120)
    out = r.stdout.decode().split("\n")
    assert out[0] == "mount 1" or (out[0] == "mount 0" and out[1] == "read 1"), out
    assert "junk 1" in out and "vdi junk 1" in out and "alive" in out, out
    err = r.stderr.decode()
    assert "Traceback" not in err, err
    assert "notimg: not a qcow2 image" in err and "notimg: not a VDI image" in err, err


@pytest.mark.parametrize("fmt", ["qcow2", "vdi"])
def test_vufuseext2_on_a_partition_of_a_vm_image(tmp_path, tree, fmt):
    """The VM image's partition mounted rw+ by vufuseext2 (no host file holds its bytes:
    libext2fs reads and writes through the device); what is written there is on the
    host afterwards, the image and the ext4 clean."""
    image = tmp_path / ("vm." + fmt)
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(image), "512M"], check=True)
    script = ("set -e; vu_insmod vudev vufuse; vumount -t vudev%s %s /dev/hda; "
              "/usr/sbin/sgdisk -n 1:2048:+300M /dev/hda > /dev/null; "
              "/usr/sbin/mkfs.ext4 -q /dev/hda1; mkdir m; "
              "vumount -t vufuseext2 -o rw+ /dev/hda1 m; cp -r %s m/tree; "
              "echo inside > m/new.txt; df -k m | tail -1 | tr -s ' ' | cut -d' ' -f2; "
              "vuumount m; vuumount /dev/hda" % (fmt, image, tree))
    r = run("umvu", ["bash", "-c", script], cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert 280000 < int(r.stdout.split()[0]) < 310000  # (the partition's ext4)
    _, part = first_partition(tmp_path, image, 300)
    assert tree_listing(dumped(tmp_path, part, "/tree") / "tree") == tree_listing(tree)
    cat = subprocess.run(["debugfs", "-R", "cat /new.txt", str(part)], capture_output=True)
    assert cat.stdout == b"inside\n"
