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

MODULES = ["vufusememfs", "vufuseext2", "vufs"]


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
    else:
        src = os.path.join(top, "src")
        os.mkdir(src)
        os.chmod(src, 0o755)
        mount = "vu_insmod vufs && vumount -t vufs %s %s" % (src, m)
    return "%s || exit 99\nchmod 755 %s && cd %s || exit 98\n%s" % (mount, m, m, script)


def native_and(module, top, script, mode):
    native_dir = os.path.join(top, "native")
    os.mkdir(native_dir, 0o755)
    os.chmod(native_dir, 0o755)
    native = run("native", ["bash", "-c", script], cwd=native_dir)
    guest = run(mode, ["bash", "-c", mounted(module, top, script)], cwd=top)
    return native, guest


@pytest.mark.parametrize("module", MODULES)
def test_dot_names_as_the_last_component(module, place, guest_mode):
    native, guest = native_and(module, place, "python3 %s" % DOTS, guest_mode)
    assert native.returncode == 0, native.stderr
    assert guest.stdout.decode().splitlines() == native.stdout.decode().splitlines(), \
        guest.stderr


@pytest.mark.parametrize("module", MODULES)
def test_sticky_directories(module, place, guest_mode):
    native, guest = native_and(module, place, STICKY, guest_mode)
    assert b"rm=1\nmv=1\nrmdir=1\nmine=0\nonto=1\ndirowner=0\n" in native.stdout
    assert guest.stdout == native.stdout, guest.stderr
    # (the same refusals, in the same words)
    assert guest.stderr == native.stderr


# who may change owner, group and mode bits, and what writes and chown take away; a
# set-group-ID directory passes its group (and the bit to directories)
OWNERS = (REPO / "tests" / "progs" / "owners.sh").read_text()


@pytest.mark.parametrize("module", MODULES)
def test_owners_groups_and_set_id_bits(module, place, guest_mode):
    native, guest = native_and(module, place, OWNERS, guest_mode)
    assert b"give=1 4755:65534:65534\n" in native.stdout, native.stderr
    assert guest.stdout == native.stdout, guest.stderr


UTIMES = (REPO / "tests" / "progs" / "utimes.sh").read_text()


@pytest.mark.parametrize("module", MODULES)
def test_who_may_set_times(module, place, guest_mode):
    native, guest = native_and(module, place, UTIMES, guest_mode)
    assert b"closed touch : 1\n" in native.stdout and b"Permission denied" in \
        native.stderr and b"Operation not permitted" in native.stderr
    assert guest.stdout == native.stdout, guest.stderr
    assert guest.stderr == native.stderr


FIFOS = (REPO / "tests" / "progs" / "fifo_modes.sh").read_text()


@pytest.mark.parametrize("module", MODULES)
def test_a_fifo_opens_by_its_own_mode(module, place, guest_mode):
    native, guest = native_and(module, place, FIFOS, guest_mode)
    assert b"closed r Permission denied\n" in native.stdout, native.stderr
    assert guest.stdout == native.stdout, guest.stderr


SEARCH = (REPO / "tests" / "progs" / "search.sh").read_text()


@pytest.mark.parametrize("module", MODULES)
def test_search_permission_on_every_directory(module, place, guest_mode):
    native, guest = native_and(module, place, SEARCH, guest_mode)
    assert b"d/f stat Permission denied\n" in native.stdout, native.stderr
    assert guest.stdout == native.stdout, guest.stderr


SOCKETS = REPO / "tests" / "progs" / "unix_sockets.py"


@pytest.mark.parametrize("module", MODULES)
def test_unix_sockets_live_in_the_mount(module, place, guest_mode):
    """bind makes the socket in the module's file system (nothing on the host under
    the mount point), connect finds it there, relative paths from the guest's cwd."""
    native, guest = native_and(module, place, "python3 %s" % SOCKETS, guest_mode)
    assert b"got b'ping'\n" in native.stdout, native.stderr
    assert guest.stdout == native.stdout, guest.stderr
    if module != "vufs":  # (a bind of a host directory: the kernel's own sockets)
        assert os.listdir(os.path.join(place, "m")) == []
