"""A mount's root is a mount point: rename onto it or of it is EBUSY, as the kernel
answers, and the module never gets a rename with its root as a name (an ext4 image
stays e2fsck-clean, memfs lists no empty name)."""
import os
import shutil
import subprocess

import pytest

from conftest import run

RENAMES = r"""
import errno, os, sys
m = sys.argv[1]
os.makedirs(m + "/d/sub")
for old, new in ((m + "/d/sub", m), (m, m + "/d/x"), (m + "/d/sub", m + "/")):
    try:
        os.rename(old, new)
        print("renamed")
    except OSError as e:
        print(errno.errorcode[e.errno])
print(sorted(os.listdir(m)), sorted(os.listdir(m + "/d")))
"""


@pytest.mark.parametrize("fs", ["vufusememfs", "vufuseext2"])
def test_rename_onto_a_mount_root_is_ebusy(guest_mode, tmp_path, fs):
    (tmp_path / "prog.py").write_text(RENAMES)
    mnt = tmp_path / "m"
    mnt.mkdir()
    if fs == "vufuseext2":
        img = tmp_path / "img"
        subprocess.run(["mkfs.ext4", "-q", "-F", str(img), "8M"], check=True)
        source, opts = str(img), "-o rw+"
    else:
        source, opts = "none", ""
    r = run(guest_mode, ["bash", "-c", f"vu_insmod vufuse && vumount -t {fs} {opts} "
                         f"{source} {mnt} && python3 {tmp_path}/prog.py {mnt}"])
    assert r.returncode == 0, r.stderr
    listing = ["d"] + (["lost+found"] if fs == "vufuseext2" else [])
    assert r.stdout.decode().splitlines() == ["EBUSY", "EBUSY", "EBUSY",
                                              "%r ['sub']" % listing]
    if fs == "vufuseext2":
        check = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True)
        assert check.returncode == 0, check.stdout


def test_rename_onto_a_mount_root_as_an_unprivileged_user(as_user):
    top = as_user.work / "mount-roots"
    shutil.rmtree(top, ignore_errors=True)
    (top / "m").mkdir(parents=True)
    (top / "prog.py").write_text(RENAMES)
    img = top / "img"
    subprocess.run(["mkfs.ext4", "-q", "-F", str(img), "8M"], check=True)
    if os.getuid() == 0:
        subprocess.run(["chown", "-R", "nobody", str(top)], check=True)
    r = as_user(["bash", "-c", f"vu_insmod vufuse && vumount -t vufuseext2 -o rw+ {img} "
                 f"{top}/m && python3 {top}/prog.py {top}/m"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == ["EBUSY", "EBUSY", "EBUSY",
                                              "['d', 'lost+found'] ['sub']"]
    check = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True)
    assert check.returncode == 0, check.stdout
