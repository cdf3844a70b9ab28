"""What umvu reports of a mount is what holds (issue: nothing written is lost, acceptance 3).

For every module and for the default, ro, rw and rw+ cases: /proc/mounts, findmnt (it
reads /proc/self/mountinfo) and `vuctl mounts` say ro exactly when a write there is
refused with EROFS; contradictory options are refused; size= takes the same values in
every module that has it.
"""
import subprocess

import pytest

from conftest import run
from test_vufuseext2 import mkfs

WRITE = "touch {m}/newfile 2>/dev/null; echo write=$?\n"
REPORT = ("echo mounts=$(awk '$2 == \"{m}\" {{split($4, o, \",\"); print o[1]}}' "
          "/proc/mounts)\n"
          "echo findmnt=$(findmnt -n -o OPTIONS {m} | cut -d, -f1)\n"
          "echo vuctl=$(vuctl mounts | awk -F'\\t' '$1 == \"{m}\" {{split($5, o, \",\"); "
          "print o[1]}}')\n")

# (module, vumount arguments (SRC is the source, M the mount point), read-only?)
CASES = [
    ("vufuse", "-t vufuseext2 IMG M", True),
    ("vufuse", "-t vufuseext2 -o ro IMG M", True),
    ("vufuse", "-t vufuseext2 -o rw IMG M", False),
    ("vufuse", "-t vufuseext2 -o rw+ IMG M", False),
    ("vufuse", "-t vufusememfs none M", False),
    ("vufuse", "-t vufusememfs -o ro none M", True),
    ("vufuse", "-t vufusememfs -o size=1M none M", False),
    ("vufuse", "-t vufusereal DIR M", False),
    ("vufuse", "-t vufusereal -o ro DIR M", True),
    ("vufs", "-t vufs DIR M", False),
    ("vufs", "-t vufs -o ro DIR M", True),
    ("vufs", "-r -t vufs DIR M", True),
]


@pytest.mark.parametrize("module, args, readonly", CASES, ids=[c[1] for c in CASES])
def test_reported_options_are_those_in_force(module, args, readonly, tmp_path):
    image = tmp_path / "disk.img"
    mkfs(image, size="16M")
    for d in ("dir", "m"):
        (tmp_path / d).mkdir()
    m = str(tmp_path / "m")
    argv = args.replace("IMG", str(image)).replace("DIR", str(tmp_path / "dir")).replace(
        " M", " " + m)
    script = ("vu_insmod %s || exit 99\nvumount %s || exit 98\n" % (module, argv)
              + WRITE.format(m=m) + REPORT.format(m=m))
    r = run("umvu", ["bash", "-c", script])
    shown = "ro" if readonly else "rw"
    assert r.stdout.decode().splitlines() == [
        "write=%d" % (1 if readonly else 0), "mounts=" + shown, "findmnt=" + shown,
        "vuctl=" + shown], r.stderr


@pytest.mark.parametrize("options", ["ro,rw", "ro,rw+", "rw,ro"])
def test_contradictory_options_refused(options, tmp_path):
    image = tmp_path / "disk.img"
    mkfs(image, size="16M")
    r = run("umvu", ["bash", "-c", "vu_insmod vufuse && vumount -t vufuseext2 -o %s %s /mnt"
                     % (options, image)])
    words = sorted(options.split(","))
    assert r.returncode == 1
    assert r.stderr.decode() == (
        "vumount: vufuseext2 on /mnt: contradictory options ro and %s: Invalid argument\n"
        % [w for w in words if w != "ro"][0])


@pytest.mark.parametrize("size, ok", [("1k", True), ("64M", True), ("4096", True),
                                      ("0", False), ("lots", False)])
def test_size_values_alike_in_memfs_and_ramdisk(size, ok):
    for module, fstype, target in (("vufuse", "vufusememfs", "/mnt"),
                                   ("vudev", "vudevramdisk", "/dev/ram0")):
        r = run("umvu", ["bash", "-c", "vu_insmod %s && vumount -t %s -o size=%s none %s"
                         % (module, fstype, size, target)])
        assert r.returncode == (0 if ok else 1), (fstype, r.stderr)
        if not ok:
            assert r.stderr.decode() == ("vumount: %s on %s: bad value for option 'size': "
                                         "Invalid argument\n" % (fstype, target))


def test_vufuseext2_default_is_read_only_and_says_so(tmp_path):
    image = tmp_path / "disk.img"
    mkfs(image, size="16M")
    r = run("umvu", ["bash", "-c", "vu_insmod vufuse && vumount -t vufuseext2 %s /mnt && "
                     "grep ' /mnt ' /proc/mounts" % image])
    # (the type: the file system's own, as a kernel mount of the image shows it)
    assert r.stdout == b"%s /mnt ext4 ro 0 0\n" % bytes(image), r.stderr
    assert subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True).returncode == 0


@pytest.mark.parametrize("fstype", ["ext2", "ext3", "ext4"])
def test_vufuseext2_shows_the_type_blkid_tells(tmp_path, fstype):
    """/proc/mounts, and so df -T, show what the image is, as a kernel mount of it
    would (pjdfstest asks ext4's own checks by it); vuctl mounts the vumount type."""
    image = tmp_path / "disk.img"
    mkfs(image, fstype=fstype, size="16M")
    told = subprocess.run(["blkid", "-o", "value", "-s", "TYPE", str(image)],
                          capture_output=True, check=True).stdout.strip()
    assert told == fstype.encode()
    r = run("umvu", ["bash", "-c", "vu_insmod vufuse && vumount -t vufuseext2 %s /mnt && "
                     "df -PT /mnt | tail -1 | awk '{print $2}'; vuctl mounts | "
                     "grep -c vufuseext2" % image])
    assert r.stdout == told + b"\n1\n", r.stderr
