"""O_TMPFILE and links of open files (linkat with AT_EMPTY_PATH, or of a followed
/proc/self/fd/N): tests/progs/tmpfile_probe.py natively on ext4 and tmpfs, and under
umvu (and -S) in a host directory and in a vufusememfs mount, as root and as nobody.
Every step's answer is compared: the flag errors (EINVAL, ENOTDIR, ENOENT), a tmpfile's
fstat and /proc/self/fd link ("#INO (deleted)"), fchmod and fsetxattr on it, the name a
link gives it and its data, O_EXCL tmpfiles and deleted files not linkable (ENOENT),
the write permission the directory needs."""
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import BASE_ENV, REPO, run

PROBE = REPO / "tests" / "progs" / "tmpfile_probe.py"


@pytest.fixture
def place():
    top = tempfile.mkdtemp(prefix="umvu-tmpfile-")  # (every user may enter it)
    os.chmod(top, 0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def probe(where):
    return "/usr/bin/python3 %s %s" % (PROBE, where)


def made(*paths, owner=None):
    for p in paths:
        os.mkdir(p)
        if owner:
            shutil.chown(p, owner)


@pytest.mark.parametrize("mode", ["umvu", "umvu-S"])
def test_as_root(place, mode):
    native = os.path.join(place, "native")
    shm = tempfile.mkdtemp(dir="/dev/shm")
    host, mnt = os.path.join(place, "host"), os.path.join(place, "m")
    made(native, host, mnt)
    try:
        r = subprocess.run(probe(native), shell=True, capture_output=True, env=BASE_ENV)
        assert r.returncode == 0, r.stderr.decode()
        assert b"link proc fd 0\n" in r.stdout and b"excl link ENOENT\n" in r.stdout
        r2 = subprocess.run(probe(shm), shell=True, capture_output=True, env=BASE_ENV)
        assert r2.stdout == r.stdout  # (tmpfs and ext4 answer alike)
    finally:
        shutil.rmtree(shm)
    for where in (host, mnt):
        g = run(mode, ["bash", "-c", "vu_insmod vufuse && vumount -t vufusememfs none %s "
                       "&& %s" % (mnt, probe(where))], env=BASE_ENV)
        assert g.returncode == 0, g.stderr.decode()
        assert g.stdout == r.stdout, where
    assert sorted(os.listdir(host)) == ["across", "plain", "sub"]
    assert os.listdir(mnt) == []  # (the mount's files were the mount's)


def test_as_nobody(place, as_user):
    native, host, mnt = (os.path.join(place, n) for n in ("native", "host", "m"))
    made(native, host, mnt, owner="nobody")
    r = subprocess.run(["runuser", "-u", "nobody", "--"] + probe(native).split(),
                       capture_output=True, env=BASE_ENV)
    assert r.returncode == 0, r.stderr.decode()
    assert b"tmpfile in a read-only dir EACCES\n" in r.stdout
    for where in (host, mnt):
        g = as_user(["bash", "-c", "vu_insmod vufuse && vumount -t vufusememfs none %s "
                     "&& %s" % (mnt, probe(where))])
        assert g.returncode == 0, g.stderr.decode()
        assert g.stdout == r.stdout, where
