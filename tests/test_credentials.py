"""In a session umvu runs as root, a guest that dropped its privileges gets none back
(issue: views that hold, credentials): a module file it could have written is not run
by umvu, and what a module does on the host for it is checked against its own ids."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import run

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="a root session")


@pytest.fixture
def top():
    """A directory every user may search (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="umvu-cred-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)

DROP = "setpriv --reuid=nobody --regid=nogroup --clear-groups"

# A module whose import leaves a mark in a directory only root may write.
EVIL = '''
import os
from umvu.api import Module
open(os.path.join(%r, "pwned"), "w").write("umvu ran me as uid %%d\\n" %% os.geteuid())


class Evil(Module):
    name = "evil"
    description = "marks"
'''


def make_evil(top, owner):
    vault = top / "vault"  # root's, 0700: nobody cannot write the mark itself
    vault.mkdir(mode=0o700)
    place = top / "evil"
    place.mkdir()
    (place / "evil.py").write_text(EVIL % str(vault))
    subprocess.run(["chown", "-R", owner, str(place)], check=True)
    return place / "evil.py", vault / "pwned"


def test_a_dropped_guest_cannot_have_umvu_run_its_module(top, guest_mode):
    evil, mark = make_evil(top, "nobody")
    r = run(guest_mode, ["bash", "-c", f"{DROP} vu_insmod {evil}; echo st=$?"])
    assert r.stdout == b"st=1\n"
    assert b"Operation not permitted" in r.stderr or b"uid 65534" in r.stderr, r.stderr
    assert not mark.exists()


def test_root_does_not_load_a_module_file_another_user_could_write(top, guest_mode):
    evil, mark = make_evil(top, "nobody")
    r = run(guest_mode, ["bash", "-c", f"vu_insmod {evil}; echo st=$?"])
    assert r.stdout == b"st=1\n" and b"not root's" in r.stderr, r.stderr
    subprocess.run(["chown", "-R", "root", str(evil.parent)], check=True)
    os.chmod(evil.parent, 0o777)  # a directory others may write (not sticky)
    r = run(guest_mode, ["bash", "-c", f"vu_insmod {evil}; echo st=$?"])
    assert r.stdout == b"st=1\n" and b"writable by others" in r.stderr, r.stderr
    assert not mark.exists()
    os.chmod(evil.parent, 0o755)  # root's alone: loaded
    r = run(guest_mode, ["bash", "-c", f"vu_insmod {evil} && vu_lsmod | cut -f1"])
    assert r.returncode == 0, r.stderr
    assert b"evil" in r.stdout.split()
    assert mark.read_text() == "umvu ran me as uid 0\n"


def test_a_dropped_guest_cannot_have_vufuse_run_its_file_system(top, guest_mode):
    evil, mark = make_evil(top, "nobody")
    mnt = top / "m"
    mnt.mkdir()
    r = run(guest_mode, ["bash", "-c", f"vu_insmod vufuse && {DROP} vumount -t vufuse "
                         f"-o fs={evil} none {mnt}; echo st=$?"])
    assert r.stdout == b"st=1\n", r.stderr
    assert not mark.exists()


# What the dropped guest tries on a tree of root's: natively, and under a cow or merge
# view that root made, the same answers.
PROBES = f"""
cd {{tree}}
{DROP} cat secret >/dev/null 2>&1; echo read-secret=$?
{DROP} cat pub; echo read-pub=$?
{DROP} sh -c 'echo x >> pub' 2>/dev/null; echo write-pub=$?
{DROP} sh -c 'echo x > new' 2>/dev/null; echo create=$?
{DROP} ls private >/dev/null 2>&1; echo list-private=$?
{DROP} rm -f pub 2>/dev/null; echo unlink-pub=$?
{DROP} rm -f sticky/roots 2>/dev/null; echo unlink-sticky=$?
{DROP} mv sticky/roots sticky/mine 2>/dev/null; echo rename-sticky=$?
"""


@pytest.mark.parametrize("view", ["cow", "merge"])
def test_a_view_checks_the_dropped_guests_own_ids(top, guest_mode, view):
    tree, layer = top / "tree", top / "layer"
    for d in (tree, layer):
        d.mkdir()
        os.chmod(d, 0o755)
    (tree / "secret").write_text("root only\n")
    os.chmod(tree / "secret", 0o600)
    (tree / "pub").write_text("public\n")
    (tree / "private").mkdir(mode=0o700)
    (tree / "private" / "inner").write_text("inner\n")
    (tree / "sticky").mkdir()
    os.chmod(tree / "sticky", 0o1777)  # (root's file in it: only root removes it)
    (tree / "sticky" / "roots").write_text("root's\n")
    before = sorted(os.walk(tree))
    native = run("native", ["bash", "-c", PROBES.format(tree=tree)])
    mount = f"vu_insmod vufs && vumount -t vufs -o {view} {layer} {tree} || exit 9\n"
    guest = run(guest_mode, ["bash", "-c", mount + PROBES.format(tree=tree)])
    assert guest.returncode == native.returncode == 0, guest.stderr
    assert guest.stdout == native.stdout
    assert b"read-secret=1" in native.stdout  # (the probes do probe)
    assert sorted(os.walk(tree)) == before
    assert (tree / "secret").read_text() == "root only\n"
    assert (tree / "pub").read_text() == "public\n"
    assert os.listdir(layer) in ([], [".-"])  # nothing made for the dropped guest


# A dropped guest changing files of root's and of its own under a cow view root made:
# the kernel's answers (EPERM, EACCES), no copy-up for a change it may not make, and a
# copy-up that keeps the owner for one it may (its own file in root's tree).
CHANGES = f"""
cd {{tree}}
{DROP} chown nobody pub 2>/dev/null; echo chown-pub=$?
{DROP} chmod 600 pub 2>/dev/null; echo chmod-pub=$?
{DROP} touch pub 2>/dev/null; echo touch-pub=$?
{DROP} touch -d 2001-01-01 pub 2>/dev/null; echo touch-d-pub=$?
{DROP} truncate -s 0 pub 2>/dev/null; echo truncate-pub=$?
{DROP} mv pub pub2 2>/dev/null; echo mv-pub=$?
{DROP} chmod 600 mine; echo chmod-mine=$?
{DROP} chown root mine 2>/dev/null; echo chown-mine-root=$?
{DROP} chgrp nogroup mine; echo chgrp-mine=$?
{DROP} touch -d 2001-01-01 mine; echo touch-d-mine=$?
stat -c '%n %U %G %a %s' pub mine
"""


def test_changes_a_dropped_guest_makes_under_cow(top, guest_mode):
    tree, layer = top / "tree", top / "layer"
    for d in (tree, layer):
        d.mkdir()
        os.chmod(d, 0o755)
    (tree / "pub").write_text("public\n")
    os.chmod(tree / "pub", 0o644)
    (tree / "mine").write_text("nobody's\n")
    subprocess.run(["chown", "nobody:root", str(tree / "mine")], check=True)
    native_tree = top / "native"
    shutil.copytree(tree, native_tree)
    subprocess.run(["chown", "nobody:root", str(native_tree / "mine")], check=True)
    native = run("native", ["bash", "-c", CHANGES.format(tree=native_tree)])
    mount = f"vu_insmod vufs && vumount -t vufs -o cow {layer} {tree} || exit 9\n"
    guest = run(guest_mode, ["bash", "-c", mount + CHANGES.format(tree=tree)])
    assert guest.returncode == native.returncode == 0, guest.stderr
    assert b"chown-pub=1" in native.stdout and b"chgrp-mine=0" in native.stdout
    assert guest.stdout == native.stdout.replace(str(native_tree).encode(),
                                                 str(tree).encode())
    assert sorted(os.listdir(layer)) in (["mine"], [".-", "mine"])  # (pub never copied)
    assert os.stat(layer / "mine").st_uid == 65534  # its owner kept
    assert (tree / "pub").read_text() == "public\n"
