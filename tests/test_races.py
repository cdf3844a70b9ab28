"""Views that hold against a guest that races umvu (issue: views that hold, check then
use): a thread flips the path buffer of a call between a name outside every view and
one inside it, or swaps (RENAME_EXCHANGE) a directory with a symlink into the view while
the call writes through the directory's name. umvu judges the path it read; the call
that runs must be that one (umvu makes it on its own copy: in the C loop,
csrc/hostwrites.c, or in Python, umvu/core/hostcalls.py, UMVU_CWRITES=0), so
the host tree under a read-only, copy-on-write or memfs view stays byte for byte.

Each attack runs for a bounded time (ATTACK_S seconds) and the guest must have made
calls that succeeded on its own directory (the attack really ran)."""
import os
import shutil
import subprocess

import pytest

from conftest import REPO, run
from test_vufs import tree_listing

ATTACK_S = "1"  # each attack alone; "0.5" each where a session makes several
OPS = ["open", "creat", "unlink", "rename", "chmod", "truncate", "mkdir", "symlink",
       "link", "utime", "chown", "exchange"]
VIEWS = ["ro", "cow", "memfs"]


@pytest.fixture(scope="module")
def flipper(tmp_path_factory):
    d = tmp_path_factory.mktemp("flipper")
    os.chmod(d, 0o755)
    exe = d / "flipper"
    subprocess.run(["gcc", "-O2", "-Wall", "-pthread", "-o", str(exe),
                    str(REPO / "tests/progs/flipper.c")], check=True)
    os.chmod(exe, 0o755)
    return exe


def mount_line(view, top):
    if view == "ro":
        return f"vu_insmod vufs && vumount -t vufs -o ro {top}/tree {top}/tree"
    if view == "cow":
        return f"vu_insmod vufs && vumount -t vufs -o cow {top}/upper {top}/tree"
    return f"vu_insmod vufuse && vumount -t vufusememfs none {top}/tree"


def make(top):
    if top.exists():
        shutil.rmtree(top)
    for d in ("tree/sub", "upper", "real"):
        (top / d).mkdir(parents=True)
    (top / "tree" / "f").write_text("protected\n")
    (top / "tree" / "sub" / "g").write_text("also protected\n")
    os.chmod(top / "tree" / "f", 0o644)
    return tree_listing(top / "tree")


def attack(runner, flipper, top, view, ops, root=os.getuid() == 0):
    before = make(top)
    secs = ATTACK_S if len(ops) == 1 else "0.5"
    lines = [f"{flipper} {op} {top}/real {top}/tree {secs} || exit 8" for op in ops]
    r = runner(["bash", "-c", mount_line(view, top) + " || exit 9\n" + "\n".join(lines)])
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode().split()
    made = {w.split("=")[1] for w in out if w.startswith("calls=")}
    assert len(made) and "0" not in made, r.stdout  # every attack made calls
    # the guest's own directory got the calls that were meant for it
    oks = [int(w.split("=")[1]) for w in out if w.startswith("ok=")]
    assert len(oks) == len(ops) and all(oks[i] > 0 for i, op in enumerate(ops)
                                        if op != "chown" or root), r.stdout
    assert tree_listing(top / "tree") == before, "the host tree under the view changed"


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("view", VIEWS)
def test_flipped_paths_never_reach_the_view(tmp_path, flipper, view, op):
    attack(lambda argv: run("umvu", argv, timeout=120), flipper, tmp_path / "t", view, [op])


@pytest.mark.parametrize("how", ["-S", "UMVU_NOTIF=0", "UMVU_PATHFAST=0", "UMVU_CWRITES=0"])
@pytest.mark.parametrize("view", VIEWS)
def test_flipped_paths_every_way_of_tracing(tmp_path, flipper, view, how):
    opts, env = ((how,), None) if how.startswith("-") else ((), dict([how.split("=")]))
    attack(lambda argv: run("umvu", argv, timeout=300, umvu_opts=opts, env=env), flipper,
           tmp_path / "t", view, ["open", "unlink", "rename", "chmod", "mkdir", "exchange"])


@pytest.mark.parametrize("view", VIEWS)
def test_flipped_paths_as_an_unprivileged_user(as_user, flipper, view):
    top = as_user.work / ("race-" + view)
    mine = as_user.work / "flipper"  # (pytest's directories are root's alone)
    shutil.copy(flipper, mine)

    def runner(argv):
        if os.getuid() == 0:
            subprocess.run(["chown", "-R", "nobody", str(top)], check=True)
        return as_user(argv, timeout=300)
    attack(runner, mine, top, view, OPS, root=False)
