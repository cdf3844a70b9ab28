"""The kernel's file semantics in umvu's file systems (issue: pjdfstest clean, the causes
done): each scenario natively in a host directory and inside each module's mount, outputs
and errnos compared.

- `.` or `..` as the last component of rename, rmdir, unlink, mkdir, mknod, symlink and
  link names no entry of its own: EBUSY, EINVAL, ENOTEMPTY, EISDIR, EEXIST as natively
  (canonicalized, the path would name another directory: rename("a/c/..", "y") would
  rename a).
- The sticky bit: in a directory with S_ISVTX only the entry's owner, the directory's
  owner or root removes or renames an entry (EPERM), checked for a guest that dropped
  its ids in a session umvu runs as root.
- Owners and set-ID bits: only root gives a file away, its owner may give it one of its
  own groups; chown and a write by another than root drop S_ISUID (and S_ISGID as the
  kernel does); chmod by a non-member drops S_ISGID; a set-group-ID directory passes
  its group, and the bit to new directories.
- A unix socket bound by path inside a mount is a socket of that mount (none appears on
  the host), found there by connect, a relative path taken from the guest's cwd.
- Search (x) permission on every directory of a path (EACCES).
- A fifo (a host fifo of umvu's stands for it) opens by its own mode in the module.
- Times: touch (both now) needs ownership or write access (EACCES), explicit times or
  one time alone ownership (EPERM).
- truncate of what is not a regular file: EISDIR for a directory, EINVAL for a fifo.
- Paths as long as the kernel takes (PATH_MAX less one, relative), though the host path
  below a mount (a vufs layer's) is longer.
"""
import os
import shutil
import tempfile

import pytest

from conftest import REPO, run
from test_vufuseext2 import mkfs

DOTS = REPO / "tests" / "progs" / "dot_names.py"

STICKY = r"""
mkdir s && chmod 1777 s && touch s/rootfile s/rootfile2 && mkdir s/rootdir
mkdir s/own && chown nobody s/own && touch s/own/a
as() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
as rm -f s/rootfile; echo rm=$?
as mv s/rootfile2 s/x; echo mv=$?
as rmdir s/rootdir; echo rmdir=$?
as sh -c 'touch s/mine && rm s/mine'; echo mine=$?
as sh -c 'touch s/m2 && mv s/m2 s/rootfile'; echo onto=$?
chmod 1777 s/own; as rm s/own/a; echo dirowner=$?
ls s | sort | tr '\n' ' '; echo
"""

MODULES = ["vufusememfs", "vufuseext2", "vufs", "vufs-cow"]


@pytest.fixture
def place():
    """A directory every user may enter (pytest's own are root's only)."""
    top = tempfile.mkdtemp(prefix="umvu-sem-")
    os.chmod(top, 0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def mounted(module, top, script):
    """script run in a fresh mount of module at top/m (vufs: a bind of top/src)."""
    m = os.path.join(top, "m")
    os.mkdir(m)
    if module == "vufusememfs":
        mount = "vu_insmod vufuse && vumount -t vufusememfs none %s" % m
    elif module == "vufuseext2":
        image = os.path.join(top, "disk.img")
        mkfs(image, size="16M")
        mount = "vu_insmod vufuse && vumount -t vufuseext2 -o rw+ %s %s" % (image, m)
    else:  # vufs: a bind of top/src, or top/src as the upper layer of a cow view of m
        src = os.path.join(top, "src")
        os.mkdir(src)
        os.chmod(src, 0o755)
        mount = "vu_insmod vufs && vumount -t vufs %s%s %s" % (
            "-o cow " if module == "vufs-cow" else "", src, m)
    return "%s || exit 99\nchmod 755 %s && cd %s || exit 98\n%s" % (mount, m, m, script)


def native_and(module, top, script, mode):
    native_dir = os.path.join(top, "native")
    os.mkdir(native_dir, 0o755)
    os.chmod(native_dir, 0o755)
    native = run("native", ["bash", "-c", script], cwd=native_dir)
    guest = run(mode, ["bash", "-c", mounted(module, top, script)], cwd=top)
    return native, guest


PROGS = REPO / "tests" / "progs"
# (scenario, its script, a line natively printed that shows the rule at work, whether
# stderr (the refusals in the tools' own words) is compared too)
SCENARIOS = [
    ("dot names", "python3 %s" % DOTS, b"rename a/c/.. EBUSY\n", False),
    ("sticky", STICKY, b"rm=1\nmv=1\nrmdir=1\nmine=0\nonto=1\ndirowner=0\n", True),
    ("owners and set-id bits", (PROGS / "owners.sh").read_text(),
     b"give=1 4755:65534:65534\n", False),
    ("times", (PROGS / "utimes.sh").read_text(), b"closed touch : 1\n", True),
    ("fifo modes", (PROGS / "fifo_modes.sh").read_text(), b"closed r Permission denied\n",
     False),
    ("search permission", (PROGS / "search.sh").read_text(),
     b"d/f stat Permission denied\n", False),
    ("truncate of each kind", "python3 %s" % (PROGS / "truncate_kinds.py"),
     b"truncate p 0 EINVAL\n", False),
    ("long paths", "python3 %s" % (PROGS / "long_paths.py"), b"unlink g 0\n", False),
    # bind makes the socket in the module's file system, connect finds it there
    ("unix sockets", "python3 %s" % (PROGS / "unix_sockets.py"), b"got b'ping'\n", False),
]


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("name, script, shows, stderr_too", SCENARIOS,
                         ids=[c[0] for c in SCENARIOS])
def test_as_the_kernel(name, script, shows, stderr_too, module, place, guest_mode):
    native, guest = native_and(module, place, script, guest_mode)
    assert shows in native.stdout, native.stderr
    assert guest.stdout == native.stdout, guest.stderr
    if stderr_too:
        assert guest.stderr == native.stderr
    if name == "unix sockets" and not module.startswith("vufs"):  # (vufs: host trees)
        assert os.listdir(os.path.join(place, "m")) == []  # nothing on the host
