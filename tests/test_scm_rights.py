"""Virtual fds passed over unix sockets (SCM_RIGHTS) arrive as the same virtual file:
tests/progs/scm_probe.py natively in a host directory and under umvu (and -S) in a
vufusememfs mount, as root and as nobody, outputs compared. A file, a directory and a
file open for appending go to a forked child over a socketpair (it reads on at the
sender's offset, lists, appends) and to an unrelated program over a socket bound by
path after the sender closed its own fds; a real fd and a virtual one sent twice in one
message; a message with no fds."""
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import BASE_ENV, REPO, run

PROBE = "/usr/bin/python3 %s" % (REPO / "tests" / "progs" / "scm_probe.py")


@pytest.fixture
def place():
    top = tempfile.mkdtemp(prefix="umvu-scm-")  # (every user may enter it)
    os.chmod(top, 0o755)
    for d in ("n", "m"):
        os.mkdir(os.path.join(top, d))
        shutil.chown(os.path.join(top, d), "nobody")
    yield top
    shutil.rmtree(top, ignore_errors=True)


def script(place):
    m = os.path.join(place, "m")
    return "vu_insmod vufuse && vumount -t vufusememfs none %s && %s %s %s/m.sock" % (
        m, PROBE, m, place)


@pytest.mark.parametrize("mode", ["umvu", "umvu-S"])
def test_as_root(place, mode):
    n = os.path.join(place, "n")
    r = subprocess.run("%s %s %s/n.sock" % (PROBE, n, place), shell=True,
                       capture_output=True, env=BASE_ENV)
    assert r.returncode == 0, r.stderr.decode()
    assert b"other dir ['a', 'b']\n" in r.stdout
    g = run(mode, ["bash", "-c", script(place)], env=BASE_ENV)
    assert g.returncode == 0, g.stderr.decode()
    assert g.stdout == r.stdout
    assert os.listdir(os.path.join(place, "m")) == []  # (the files were the mount's)


def test_as_nobody(place, as_user):
    n = os.path.join(place, "n")
    os.chmod(place, 0o777)  # (nobody binds its sockets there)
    r = subprocess.run(["runuser", "-u", "nobody", "--"] + PROBE.split() +
                       [n, place + "/n.sock"], capture_output=True, env=BASE_ENV)
    assert r.returncode == 0, r.stderr.decode()
    os.unlink(place + "/n.sock")
    g = as_user(["bash", "-c", script(place)])
    assert g.returncode == 0, g.stderr.decode()
    assert g.stdout == r.stdout
